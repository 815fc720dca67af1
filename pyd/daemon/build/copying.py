"""COPY and ADD at the file level: finding the sources (globs, --parents pivots, --exclude), dockerd's
content checksum of them, and copying them into a root filesystem with the ownership and mode asked for.

No daemon state: paths in, files out. Errors are the builder's `CopyError` (its text is the step's error).
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import stat
from typing import Any, NamedTuple

from pyd.daemon.containers import etcfiles
from pyd.daemon.errors import BadParameter
from pyd.daemon.storage import archive
from pyd.formats import dockerignore


class CopyError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def has_glob(s: str) -> bool:
    return any(c in s for c in "*?[")


class Found(NamedTuple):
    path: str          # the host path
    rel: str           # relative to the source root
    keep: str = ""     # --parents: the path kept under the destination


def resolve_sources(root: str, srcs: list[str], what: str, from_image: bool, parents: bool = False,
                    exclude: dockerignore.Matcher | None = None) -> list[Found]:
    """Every source (globs matched as Go's filepath.Match; with --parents, `**` too, and the part after a
    `/./` pivot, or the whole path, is kept under the destination); --exclude'd matches left out."""
    out: list[Found] = []
    for src in srcs:
        pivot = ""
        if parents and "/./" in src:
            pivot, _, _ = src.partition("/./")
            pivot = posixpath.normpath(pivot.lstrip("/")) if pivot.strip("/") else ""
            if pivot == ".":
                pivot = ""
        rel = posixpath.normpath(src.lstrip("/")) if src.strip("/") else "."
        if rel.startswith("../") or rel == "..":
            if not from_image:
                raise CopyError(f"{what} failed: forbidden path outside the build context: {src} ()")
            rel = "."

        def kept(r: str) -> str:
            if not parents:
                return ""
            return posixpath.relpath(r, pivot) if pivot else r

        if has_glob(rel):
            if parents:
                pattern = dockerignore.Matcher([rel])
                matches = [r for r in _walk_rel(root) if pattern.excluded(r)
                           and not any(pattern.excluded(p) for p in _parents_of(r))]
            else:
                matches = [r for r in _walk_rel(root) if dockerignore.go_match(rel, r)]
            matches = [r for r in matches if not (exclude and exclude.excluded(r))]
            if not matches and not parents:
                raise CopyError(f"{what} failed: no source files were specified")
            out.extend(Found(archive.secure_join(root, r), r, kept(r)) for r in matches)
            continue
        path = archive.secure_join(root, rel) if rel != "." else root
        if not os.path.lexists(path):
            if from_image:
                raise CopyError(f"{what} failed: stat {posixpath.join('/', rel)}: file does not exist")
            raise CopyError(f"{what} failed: file not found in build context or excluded by .dockerignore: "
                            f"stat {src}: file does not exist")
        if exclude and rel != "." and exclude.excluded(rel) and not os.path.isdir(path):
            continue
        out.append(Found(path, rel, kept(rel) if rel != "." else ""))
    return out


def _parents_of(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _walk_rel(root: str) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = os.path.relpath(dirpath, root)
        for name in sorted(dirnames + filenames):
            out.append(name if base == "." else f"{base}/{name}")
    return out


def _skipped(exclude: dockerignore.Matcher | None, rel: str, inner: str) -> bool:
    """An --exclude pattern matches the entry, relative to the source or to the source root."""
    if exclude is None:
        return False
    return exclude.excluded(inner) or (rel not in ("", ".") and exclude.excluded(posixpath.join(rel, inner)))


def hash_sources(found: list[Found] | list[tuple[str, str]], exclude: dockerignore.Matcher | None = None) -> str:
    """dockerd's source checksum: file:<sha256> / dir:<sha256> / multi:<sha256>, metadata included."""
    digests = []
    for entry in found:
        path, rel = entry[0], entry[1]
        h = hashlib.sha256()
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames.sort()
                for name in sorted(dirnames + filenames):
                    full = os.path.join(dirpath, name)
                    inner = os.path.relpath(full, path)
                    if not _skipped(exclude, rel, inner):
                        _hash_entry(h, inner, full)
            digests.append("dir:" + h.hexdigest())
        else:
            _hash_entry(h, "", path, follow=True)
            digests.append("file:" + h.hexdigest())
    if len(digests) == 1:
        return digests[0]
    return "multi:" + hashlib.sha256(",".join(digests).encode()).hexdigest()


def _hash_entry(h: Any, rel: str, path: str, follow: bool = False) -> None:
    st = os.stat(path) if follow else os.lstat(path)
    h.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode):o}\0{st.st_size}\0".encode())
    if stat.S_ISLNK(st.st_mode):
        h.update(os.readlink(path).encode() + b"\0")
    elif stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)


def chown_ids(rootfs: str, chown: str) -> tuple[int, int]:
    if not chown:
        return 0, 0
    user, sep, group = chown.partition(":")
    try:
        found = etcfiles.lookup_user(rootfs, user)
        uid = found.uid
        if sep:
            gid = etcfiles.lookup_user(rootfs, f"{user}:{group}").gid
        else:
            try:
                gid = etcfiles.lookup_user(rootfs, f"{user}:{user}").gid
            except BadParameter:
                gid = found.gid if not user.isdigit() else int(user)
    except BadParameter as exc:
        raise CopyError(exc.message) from None
    return uid, gid


def mkdir_in(rootfs: str, path: str, uid: int, gid: int, mode: int = 0o755) -> str:
    """mkdir -p inside rootfs (symlinks resolved within it); the host path."""
    current = rootfs
    rel = ""
    for part in [p for p in path.split("/") if p]:
        rel = f"{rel}/{part}"
        target = archive.secure_join(rootfs, rel.lstrip("/"))
        if not os.path.isdir(target):
            if os.path.lexists(target):
                os.unlink(target)
            os.mkdir(target, mode)
            os.chown(target, uid, gid)
        current = target
    return current


def is_archive(path: str) -> bool:
    """A local tar (plain, gzip, bzip2, xz) that ADD unpacks."""
    import tarfile
    try:
        with open(path, "rb") as f:
            head = f.read(6)
        if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")):
            return True
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def copy_one(src: str, rootfs: str, dest: str, dest_is_dir: bool, uid: int, gid: int, mode: int | None,
             extract: bool, exclude: dockerignore.Matcher | None = None, rel: str = "", keep: str = "") -> None:
    st = os.stat(src)
    if keep:
        dest, dest_is_dir = posixpath.join(dest, keep), stat.S_ISDIR(st.st_mode)
        if not dest_is_dir:
            parent = mkdir_in(rootfs, posixpath.dirname(dest), uid, gid)
            _copy_file(src, os.path.join(parent, posixpath.basename(dest)), st, uid, gid, mode)
            return
    if stat.S_ISDIR(st.st_mode):
        target = mkdir_in(rootfs, dest, uid, gid)
        _copy_tree(src, target, uid, gid, mode, exclude, rel, "")
        return
    if extract and is_archive(src):
        target = mkdir_in(rootfs, dest, uid, gid)
        with open(src, "rb") as f:
            try:
                archive.extract_layer(f, target, whiteouts=None)
            except archive.ArchiveError as exc:
                raise CopyError(f"ADD failed: {exc}") from None
        return
    existing = archive.secure_join(rootfs, dest.lstrip("/"))
    if dest_is_dir or os.path.isdir(existing):
        parent = mkdir_in(rootfs, dest, uid, gid)
        target = os.path.join(parent, os.path.basename(src.rstrip("/")))
    else:
        parent = mkdir_in(rootfs, posixpath.dirname(dest), uid, gid)
        target = os.path.join(parent, posixpath.basename(dest))
    _copy_file(src, target, st, uid, gid, mode)


def _copy_file(src: str, target: str, st: os.stat_result, uid: int, gid: int, mode: int | None) -> None:
    if os.path.lexists(target) and not os.path.isdir(target):
        os.unlink(target)
    elif os.path.isdir(target) and not os.path.islink(target):
        shutil.rmtree(target)
    shutil.copyfile(src, target, follow_symlinks=True)
    os.chown(target, uid, gid)
    os.chmod(target, mode if mode is not None else stat.S_IMODE(st.st_mode))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_tree(src: str, dst: str, uid: int, gid: int, mode: int | None,
               exclude: dockerignore.Matcher | None = None, rel: str = "", inner: str = "") -> None:
    for name in sorted(os.listdir(src)):
        s, d = os.path.join(src, name), os.path.join(dst, name)
        here = posixpath.join(inner, name) if inner else name
        if _skipped(exclude, rel, here):
            if not (exclude and os.path.isdir(s) and exclude.may_reinclude_under(here)):
                continue
        st = os.lstat(s)
        if stat.S_ISLNK(st.st_mode):
            if os.path.lexists(d):
                shutil.rmtree(d) if os.path.isdir(d) and not os.path.islink(d) else os.unlink(d)
            os.symlink(os.readlink(s), d)
            os.lchown(d, uid, gid)
        elif stat.S_ISDIR(st.st_mode):
            if not os.path.isdir(d) or os.path.islink(d):
                if os.path.lexists(d):
                    os.unlink(d)
                os.mkdir(d)
            os.chown(d, uid, gid)
            os.chmod(d, mode if mode is not None else stat.S_IMODE(st.st_mode))
            _copy_tree(s, d, uid, gid, mode, exclude, rel, here)
            os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
        elif stat.S_ISREG(st.st_mode):
            _copy_file(s, d, st, uid, gid, mode)
