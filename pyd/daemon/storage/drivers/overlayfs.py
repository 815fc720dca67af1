"""Mounting overlayfs: the new mount API where the kernel has "lowerdir+", else mount(2)."""
from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile

from pyd.daemon.runtime import native

log = logging.getLogger("pyd.graph")


def mount_overlay(target: str, lowers: list[str], upper: str, work: str, new_api: bool = True) -> None:
    """Mount overlayfs on `target`. Lowers are absolute paths, topmost first.

    The new mount API passes each lower on its own ("lowerdir+", Linux 6.8+), so there is no page-size
    limit on the layer count and no chdir. Older kernels get mount(2), with absolute paths when they fit in
    a page, else relative ones from a forked child that chdirs (the daemon's cwd never moves)."""
    if new_api:
        try:
            _mount_overlay_fsconfig(target, lowers, upper, work)
            return
        except _NoLowerdirPlus as exc:
            log.debug("new mount API unusable for overlay (%s), falling back to mount(2)", exc)
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


class _NoLowerdirPlus(Exception):
    """The kernel lacks fsopen() or overlay's "lowerdir+" (before Linux 6.8)."""


def _mount_overlay_fsconfig(target: str, lowers: list[str], upper: str, work: str) -> None:
    try:
        fd = native.fsopen("overlay")
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            raise _NoLowerdirPlus(str(exc)) from None
        raise
    try:
        for i, lower in enumerate(lowers):
            try:
                native.fsconfig(fd, native.FSCONFIG_SET_STRING, "lowerdir+", lower)
            except OSError as exc:
                if i == 0 and exc.errno == errno.EINVAL and "nknown parameter" in str(exc):
                    raise _NoLowerdirPlus(str(exc)) from None
                raise
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


def overlay_supported(root: str) -> bool:
    """Try a real overlay mount in a scratch dir under the data-root."""
    scratch_parent = os.path.join(root, "tmp")
    os.makedirs(scratch_parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="overlay-check-", dir=scratch_parent)
    try:
        dirs = {n: os.path.join(scratch, n) for n in ("lower1", "lower2", "upper", "work", "merged")}
        for d in dirs.values():
            os.mkdir(d)
        mount_overlay(dirs["merged"], [dirs["lower1"], dirs["lower2"]], dirs["upper"], dirs["work"])
        unmount(dirs["merged"])
        return True
    except OSError as exc:
        log.info("overlayfs not usable on %s: %s", root, exc)
        return False
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
