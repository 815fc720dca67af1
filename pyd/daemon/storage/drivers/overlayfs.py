"""Mounting overlayfs: the new mount API where the kernel takes overlay's options through it (each lower
its own "lowerdir+", Linux 6.8+), else mount(2) with one option string, which must fit in a page. Which
of the two a kernel takes is found by trying both on a scratch overlay, once, when the driver starts."""
from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile

from pyd.daemon.runtime import native

log = logging.getLogger("pyd.graph")


NEW_API, MOUNT2 = "new", "mount2"
MOUNT_APIS = (NEW_API, MOUNT2)


def mount_overlay(target: str, lowers: list[str], upper: str, work: str, new_api: bool = True) -> None:
    """Mount overlayfs on `target`. Lowers are absolute paths, topmost first.

    The new mount API passes each lower on its own, so there is no page-size limit on the layer count and
    no chdir. mount(2) gets absolute paths when they fit in a page, else paths relative to the deepest
    folder they share, from a forked child that chdirs there (the daemon's cwd never moves): with
    overlay2's short `l/` links about 128 lowers fit."""
    if new_api:
        _mount_overlay_fsconfig(target, lowers, upper, work)
        return
    data = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
    if len(data) < os.sysconf("SC_PAGE_SIZE"):
        native.mount("overlay", target, "overlay", 0, data)
        return
    home = os.path.commonpath([upper, work] + lowers)
    rel = [os.path.relpath(p, home) for p in lowers]
    data = f"lowerdir={':'.join(rel)},upperdir={os.path.relpath(upper, home)},workdir={os.path.relpath(work, home)}"
    if len(data) >= os.sysconf("SC_PAGE_SIZE"):
        raise OSError(errno.E2BIG, f"mount overlay on {target}: {len(lowers)} lower layers do not fit in "
                                   "one page of mount options on this kernel")
    _mount_from_dir(home, "overlay", target, "overlay", data)


def _mount_overlay_fsconfig(target: str, lowers: list[str], upper: str, work: str) -> None:
    # Before 6.5 overlayfs parses no fsconfig keys itself: the kernel joins them into one legacy option
    # string, and "lowerdir+" fails only at create (EINVAL); before 6.8 the key is unknown.
    fd = native.fsopen("overlay")
    try:
        for lower in lowers:
            native.fsconfig(fd, native.FSCONFIG_SET_STRING, "lowerdir+", lower)
        native.fsconfig(fd, native.FSCONFIG_SET_STRING, "source", "overlay")   # what mount(8) and df show
        native.fsconfig(fd, native.FSCONFIG_SET_STRING, "upperdir", upper)
        native.fsconfig(fd, native.FSCONFIG_SET_STRING, "workdir", work)
        native.fsconfig(fd, native.FSCONFIG_CMD_CREATE)
        mfd = native.fsmount(fd)
        try:
            native.move_mount(mfd, "", native.AT_FDCWD, target, native.MOVE_MOUNT_F_EMPTY_PATH)
        finally:
            os.close(mfd)
    finally:
        os.close(fd)


def _mount_from_dir(cwd: str, source: str, target: str, fstype: str, data: str) -> None:
    """mount(2) with paths relative to `cwd`, done in a child so that our own cwd never changes."""
    target = os.path.abspath(target)
    native._libc()   # load cffi before fork: the child must only chdir and mount
    pid = os.fork()
    if pid == 0:   # child: only chdir + one syscall, then _exit
        code = 1
        try:
            os.chdir(cwd)
            native.mount(source, target, fstype, 0, data)
            code = 0
        except OSError as exc:
            code = exc.errno or 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise OSError(code, f"mount {fstype} on {target}: {os.strerror(code)}")


def unmount(target: str) -> None:
    try:
        native.umount2(target, 0)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            native.umount2(target, native.MNT_DETACH)   # still busy: let it go when the last user leaves
        elif exc.errno != errno.EINVAL:   # EINVAL: not mounted
            raise


def choose_mount_api(root: str, wanted: str | None = None) -> str:
    """The way (NEW_API or MOUNT2) overlayfs mounts on this kernel under `root`, found by mounting a
    scratch overlay of two lowers; `wanted` tries only that one. OSError with each way's failure."""
    scratch_parent = os.path.join(root, "tmp")
    os.makedirs(scratch_parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="overlay-check-", dir=scratch_parent)
    failures = []
    try:
        dirs = {n: os.path.join(scratch, n) for n in ("lower1", "lower2", "upper", "work", "merged")}
        for d in dirs.values():
            os.mkdir(d)
        for api in [wanted] if wanted else MOUNT_APIS:
            try:
                mount_overlay(dirs["merged"], [dirs["lower1"], dirs["lower2"]], dirs["upper"], dirs["work"],
                              new_api=api == NEW_API)
            except OSError as exc:
                failures.append(f"{api}: {exc}")
                continue
            unmount(dirs["merged"])
            log.debug("overlayfs on %s: mounted with %s%s", root,
                      "the new mount API (lowerdir+)" if api == NEW_API else "mount(2)",
                      f" ({failures[0]})" if failures else "")
            return api
        raise OSError(errno.EINVAL, "; ".join(failures))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def overlay_supported(root: str) -> bool:
    """Does overlayfs mount under `root` one way or the other?"""
    try:
        choose_mount_api(root)
        return True
    except OSError as exc:
        log.info("overlayfs not usable on %s: %s", root, exc)
        return False
