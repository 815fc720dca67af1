"""dockerd's init layer: what every container's root has from its create on, whatever its image holds
(/.dockerenv, /etc/mtab -> /proc/mounts, empty mount points for the /etc files, /dev/console, /dev/pts,
/dev/shm, /proc, /sys), so `docker export` and `docker cp` of a container that never ran see them too.

pyd writes them into the container's writable layer; commits and diffs leave them out
(storage.archive.COMMIT_SKIP), as dockerd's separate "-init" layer is never part of an image.
"""
from __future__ import annotations

import os
import stat

from pyd.daemon.storage.rootpath import resolve_in_root

DIRS = ("dev/pts", "dev/shm", "proc", "sys")
FILES = (".dockerenv", "dev/console", "etc/hostname", "etc/hosts", "etc/resolv.conf")
LINKS = {"etc/mtab": "/proc/mounts"}
MODE = 0o755


def _entry(rootfs: str, rel: str) -> str:
    """Host path of rel's last component, its folder resolved inside rootfs (the component itself is
    replaced, not followed)."""
    parent, base = os.path.split(rel)
    folder = resolve_in_root(rootfs, parent) if parent else rootfs
    os.makedirs(folder, MODE, exist_ok=True)
    return os.path.join(folder, base)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def entries_size(top: str) -> int:
    """Bytes the init layer's files and link take in a writable layer (what `ps -s` leaves out)."""
    total = 0
    for rel in (*FILES, *LINKS):
        try:
            st = os.lstat(os.path.join(top, rel))
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            total += st.st_size
    return total


def populate(rootfs: str) -> None:
    """Create the init layer's entries in a mounted container root (not yet running)."""
    for rel in DIRS:
        path = _entry(rootfs, rel)
        st = _lstat(path)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            os.unlink(path)
            st = None
        if st is None:
            os.mkdir(path, MODE)
            os.chmod(path, MODE)
    for rel in FILES:
        path = _entry(rootfs, rel)
        st = _lstat(path)
        if st is not None and stat.S_ISDIR(st.st_mode):
            continue                     # a directory stays: execd's mount over it fails as runc's would
        if st is not None and not stat.S_ISREG(st.st_mode):
            os.unlink(path)              # a symlink must not lead the mount (or this write) elsewhere
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, MODE)
        try:
            os.fchmod(fd, MODE)
        finally:
            os.close(fd)
    for rel, target in LINKS.items():
        path = _entry(rootfs, rel)
        st = _lstat(path)
        if st is not None and stat.S_ISLNK(st.st_mode) and os.readlink(path) == target:
            continue
        if st is not None and stat.S_ISDIR(st.st_mode):
            continue
        if st is not None:
            os.unlink(path)
        os.symlink(target, path)
