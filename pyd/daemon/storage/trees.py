"""Files and trees under the data-root. Tree operations are iterative: a layer may nest directories deeper
than Python's recursion limit (shutil.rmtree, os.walk and os.makedirs recurse); symlinks are never followed."""
from __future__ import annotations

import errno
import os
import shutil
import stat
from typing import Iterator


def write_new(path: str, data: bytes, sync: bool) -> None:
    """A new file in a folder nobody reads yet (its commit point is a later rename); fsynced when sync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def walk(top: str) -> Iterator[tuple[str, os.stat_result]]:
    """(path, lstat) of everything under `top`, parents before their children, sorted within a folder."""
    stack = [top]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name, reverse=True)
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            yield entry.path, st
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)


def remove_tree(path: str) -> None:
    """rm -rf that tolerates a missing path and any depth."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    stack = [path]
    while stack:
        folder = stack[-1]
        subdirs = []
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                else:
                    _unlink(entry.path)
        if subdirs:
            stack.extend(subdirs)
            continue
        stack.pop()
        try:
            os.rmdir(folder)
        except FileNotFoundError:
            pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def tree_size(top: str) -> int:
    """Bytes of the files under `top` (links not followed), as `docker system df` counts them."""
    total = 0
    for _path, st in walk(top):
        if not stat.S_ISDIR(st.st_mode):
            total += st.st_size
    return total


def make_dirs(path: str, mode: int = 0o755) -> None:
    """os.makedirs(path, exist_ok=True) without recursion."""
    missing = []
    while not os.path.isdir(path):
        if os.path.lexists(path):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, mode)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise


def copy_tree(src: str, dst: str) -> None:
    """cp -a: a full copy keeping types (devices, fifos), hard links, owners, modes, xattrs and times.
    A folder's metadata is applied after its children were copied (they would bump its times)."""
    os.makedirs(dst, exist_ok=True)
    inodes: dict[tuple[int, int], str] = {}
    finished: list[tuple[str, str, os.stat_result]] = [(src, dst, os.lstat(src))]
    stack = [(src, dst)]
    while stack:
        s_dir, d_dir = stack.pop()
        with os.scandir(s_dir) as it:
            entries = list(it)
        for entry in entries:
            s, d = entry.path, os.path.join(d_dir, entry.name)
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(d, 0o700)
                stack.append((s, d))
                finished.append((s, d, st))
                continue
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in inodes:
                os.link(inodes[key], d, follow_symlinks=False)
                continue
            _copy_node(s, d, st)
            _copy_meta(s, d, st)
            if st.st_nlink > 1:
                inodes[key] = d
    for s, d, st in reversed(finished):   # children before parents
        _copy_meta(s, d, st)


def _copy_node(src: str, dst: str, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISREG(st.st_mode):
        with open(src, "rb") as fin, open(dst, "xb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst, 0o600)
    else:   # character and block devices, sockets
        os.mknod(dst, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev)


def _copy_meta(src: str, dst: str, st: os.stat_result) -> None:
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    for name in _listxattr(src):
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
        except OSError:
            pass   # e.g. a trusted.* attribute on a filesystem that refuses it: not worth failing a copy
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))   # after chown, which clears setuid bits
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _listxattr(path: str) -> list[str]:
    try:
        return os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
