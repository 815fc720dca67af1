"""Crash-safe file writes and whole-tree copies."""
from __future__ import annotations

import json
import os
import shutil
import stat
from typing import Any


def atomic_write(path: str, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Write `data` to `path` so that a reader (or a crash) sees the old content or the new, never a mix:
    temp file in the same folder, fsync, rename over, fsync the folder.

    durable=False skips both fsyncs (still atomic against a killed daemon): only for files that are
    derived from durable metadata and re-created when found missing or empty after a machine crash."""
    folder = os.path.dirname(path) or "."
    tmp = _write_temp(path, data, mode, durable)
    try:
        os.rename(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    if durable:
        fsync_dir(folder)


def atomic_write_files(folder: str, files: list[tuple[str, bytes]], mode: int = 0o644) -> None:
    """atomic_write of several files of one folder, in order, with one fsync of the folder for all."""
    temps: list[str] = []
    try:
        for name, data in files:
            temps.append(_write_temp(os.path.join(folder, name), data, mode, True))
        for tmp, (name, _data) in zip(temps, files):
            os.rename(tmp, os.path.join(folder, name))
    except BaseException:
        for tmp in temps:
            _unlink_quietly(tmp)
        raise
    fsync_dir(folder)


def _write_temp(path: str, data: bytes, mode: int, sync: bool) -> str:
    """A new temp file beside `path` holding `data` (fsynced when sync); its path."""
    folder = os.path.dirname(path) or "."
    tmp = os.path.join(folder, f".tmp-{os.path.basename(path)}-{os.urandom(6).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)   # the umask must not change the mode asked for
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return tmp


def atomic_write_json(path: str, obj: Any, mode: int = 0o644) -> None:
    atomic_write(path, json.dumps(obj, separators=(",", ":")).encode(), mode)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_text(path: str, default: str | None = None) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return default


def remove_tree(path: str) -> None:
    """rm -rf that tolerates a missing path."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def copy_tree(src: str, dst: str) -> None:
    """cp -a: a full copy keeping types (devices, fifos), hard links, owners, modes, xattrs and times."""
    os.makedirs(dst, exist_ok=True)
    inodes: dict[tuple[int, int], str] = {}
    _copy_dir(src, dst, inodes)
    _copy_meta(src, dst, os.lstat(src))


def _copy_dir(src: str, dst: str, inodes: dict[tuple[int, int], str]) -> None:
    with os.scandir(src) as entries:
        for entry in entries:
            s, d = entry.path, os.path.join(dst, entry.name)
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(d, 0o700)
                _copy_dir(s, d, inodes)
                _copy_meta(s, d, st)
                continue
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in inodes:
                os.link(inodes[key], d, follow_symlinks=False)
                continue
            _copy_node(s, d, st)
            _copy_meta(s, d, st)
            if st.st_nlink > 1:
                inodes[key] = d


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


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def tree_size(top: str) -> int:
    """Bytes of the files under `top` (links not followed), as `docker system df` counts them."""
    total = 0
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass   # removed while we walked
    return total
