"""cffi bindings (ABI mode: dlopen of the running libc, no compiler at run time) for syscalls Python lacks.

cffi is imported on first use only, so the CLI never pays for it. Every failure raises OSError with the
errno and a message naming what was being done.
"""
from __future__ import annotations

import functools
import os
from typing import Any

from pyd.formats.platforms import host_machine

# mount(2) flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

# umount2(2) flags
MNT_FORCE = 1
MNT_DETACH = 2
MNT_EXPIRE = 4
UMOUNT_NOFOLLOW = 8

# new mount API (Linux 5.2+); syscall numbers are the same on every architecture
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_FSOPEN = 430
SYS_FSCONFIG = 431
SYS_FSMOUNT = 432
FSOPEN_CLOEXEC = 1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 1
MOVE_MOUNT_F_EMPTY_PATH = 4
AT_FDCWD = -100

# statfs f_type magic numbers -> the names dockerd reports as "Backing Filesystem"
FS_MAGIC_NAMES = {
    0xEF53: "extfs",
    0x58465342: "xfs",
    0x01021994: "tmpfs",
    0x9123683E: "btrfs",
    0x794C7630: "overlayfs",
    0x2FC12FC1: "zfs",
    0x6969: "nfs",
    0xF2F52010: "f2fs",
    0x73717368: "squashfs",
    0x858458F6: "ramfs",
    0x65735546: "fuse",
    0x61756673: "aufs",
    0x4244: "hfs",
    0x3153464A: "jfs",
    0x52654973: "reiserfs",
    0x012FF7B4: "xenix",
    0x6E736673: "nsfs",
}

_CDEF = """
int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data);
int umount2(const char *target, int flags);
int statfs(const char *path, void *buf);
int setns(int fd, int nstype);
int unshare(int flags);
long syscall(long number, ...);
int mallopt(int param, int value);
int malloc_trim(size_t pad);
"""


# glibc mallopt(3) parameter
M_ARENA_MAX = -8


# build.py pre-parses _CDEF into this pure-Python module (cffi's out-of-line ABI mode), so the shipped
# daemon never imports pycparser (~1.3 MB of RSS); a source tree without it parses _CDEF at run time.
GENERATED_MODULE = "pyd._native_cffi"


def ffi_builder() -> Any:
    """The cffi builder whose emit_python_code() writes GENERATED_MODULE (used by build.py)."""
    import cffi

    builder = cffi.FFI()
    builder.set_source(GENERATED_MODULE, None)
    builder.cdef(_CDEF)
    return builder


@functools.lru_cache(maxsize=None)
def _libc() -> tuple[Any, Any]:
    """The FFI object and libc handle, built once per process on first use."""
    try:  # lazy: keeps cffi off the CLI's start-up path
        from pyd._native_cffi import ffi
    except ImportError:
        import cffi

        ffi = cffi.FFI()
        ffi.cdef(_CDEF)
    return ffi, ffi.dlopen(None)


def _raise(ffi: Any, what: str) -> None:
    err = ffi.errno
    raise OSError(err, f"{what}: {os.strerror(err)}")


def _s(ffi: Any, value: str | None) -> Any:
    return ffi.NULL if value is None else value.encode()


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    ffi, lib = _libc()
    if lib.mount(_s(ffi, source), target.encode(), _s(ffi, fstype), flags, _s(ffi, data)) != 0:
        _raise(ffi, f"mount {source or 'none'} on {target} (type {fstype or 'none'}, flags {flags:#x})")


def umount2(target: str, flags: int = 0) -> None:
    ffi, lib = _libc()
    if lib.umount2(target.encode(), flags) != 0:
        _raise(ffi, f"unmount {target}")


def statfs_type(path: str) -> int:
    """f_type of statfs(2): the filesystem magic number of `path`."""
    ffi, lib = _libc()
    buf = ffi.new("long[64]")   # struct statfs is 120 bytes on 64-bit Linux; f_type is its first long
    if lib.statfs(path.encode(), buf) != 0:
        _raise(ffi, f"statfs {path}")
    return int(buf[0]) & 0xFFFFFFFF


def fs_name(path: str) -> str:
    """dockerd's name for the filesystem `path` lives on ("extfs", "xfs", ...), "<unknown>" if unknown."""
    return FS_MAGIC_NAMES.get(statfs_type(path), "<unknown>")


def setns(fd: int, nstype: int = 0) -> None:
    ffi, lib = _libc()
    if lib.setns(fd, nstype) != 0:
        _raise(ffi, f"setns fd {fd}")


def unshare(flags: int) -> None:
    ffi, lib = _libc()
    if lib.unshare(flags) != 0:
        _raise(ffi, f"unshare {flags:#x}")


def _syscall(name: str, number: int, *args: Any) -> int:
    ffi, lib = _libc()
    cargs = [a if isinstance(a, ffi.CData) else
             (ffi.new("char[]", a.encode()) if isinstance(a, str) else
              ffi.NULL if a is None else ffi.cast("long", a)) for a in args]
    ret = lib.syscall(number, *cargs)
    if ret < 0:
        _raise(ffi, name)
    return int(ret)


def fsopen(fstype: str, flags: int = FSOPEN_CLOEXEC) -> int:
    return _syscall(f"fsopen {fstype}", SYS_FSOPEN, fstype, flags)


def fsconfig(fd: int, cmd: int, key: str | None = None, value: str | None = None, aux: int = 0) -> None:
    try:
        _syscall(f"fsconfig {key}={value}" if key else "fsconfig create", SYS_FSCONFIG, fd, cmd, key, value, aux)
    except OSError as exc:
        detail = fs_context_messages(fd)
        if detail:
            raise OSError(exc.errno, f"{exc.strerror} ({detail})") from None
        raise


def fsmount(fd: int, flags: int = FSMOUNT_CLOEXEC, attr_flags: int = 0) -> int:
    return _syscall("fsmount", SYS_FSMOUNT, fd, flags, attr_flags)


def move_mount(from_dfd: int, from_path: str, to_dfd: int, to_path: str, flags: int) -> None:
    _syscall(f"move_mount to {to_path}", SYS_MOVE_MOUNT, from_dfd, from_path, to_dfd, to_path, flags)


def fs_context_messages(fd: int) -> str:
    """The kernel's error/warning lines queued on an fsopen() context ("e overlay: ...")."""
    lines = []
    try:
        os.set_blocking(fd, False)
        while True:
            msg = os.read(fd, 4096)
            if not msg:
                break
            lines.append(msg.decode(errors="replace").strip())
    except OSError:
        pass
    return "; ".join(lines)


# openat2(2) (Linux 5.6+): resolve a path with the kernel's guarantees, e.g. never leaving a root
SYS_OPENAT2 = 437
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """An fd for `path` relative to `dirfd` (struct open_how {flags, mode, resolve}); O_CLOEXEC always."""
    ffi, _ = _libc()
    how = ffi.new("unsigned long long[3]", [flags | os.O_CLOEXEC, mode, resolve])
    return _syscall(f"openat2 {path}", SYS_OPENAT2, dirfd, path, how, 24)


def mallopt(param: int, value: int) -> bool:
    """glibc's mallopt(3); False when the C library refused (or is not glibc)."""
    _, lib = _libc()
    try:
        return lib.mallopt(param, value) == 1
    except AttributeError:   # no such symbol: not glibc
        return False


def malloc_trim() -> bool:
    """Give the C heap's free pages back to the kernel (glibc malloc_trim(0)); True when some were."""
    _, lib = _libc()
    try:
        return lib.malloc_trim(0) == 1
    except AttributeError:
        return False


# bpf(2): cgroup device programs. The syscall's number differs per architecture; its commands do not.
SYS_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361, "s390x": 351, "riscv64": 280}
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_DETACH = 9
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2


def _bpf(what: str, cmd: int, attr: bytes) -> tuple[int, bytes]:
    """bpf(cmd, attr): the result and the attr as the kernel left it (queries write into it)."""
    ffi, _ = _libc()
    machine = host_machine()
    number = SYS_BPF.get(machine)
    if number is None:
        raise OSError(38, f"{what}: bpf(2) is not known on {machine}")
    buf = ffi.new("char[]", attr)
    ret = _syscall(what, number, cmd, buf, len(attr))
    return ret, bytes(ffi.buffer(buf, len(attr)))


def bpf_load_device_program(insns: bytes, license: str = "Apache") -> int:
    """Load a BPF_PROG_TYPE_CGROUP_DEVICE program; its fd (close-on-exec). When the kernel refuses it,
    the load is tried again with the verifier's log, whose last word goes into the error."""
    import struct

    ffi, _ = _libc()
    code = ffi.new("char[]", insns)
    lic = ffi.new("char[]", license.encode())
    addr = lambda p: int(ffi.cast("uintptr_t", p))   # noqa: E731

    def load(log_level: int, log: Any, log_size: int) -> int:
        # union bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, log_level, log_size, log_buf
        attr = struct.pack("=IIQQIIQ", BPF_PROG_TYPE_CGROUP_DEVICE, len(insns) // 8, addr(code), addr(lic),
                           log_level, log_size, addr(log) if log_size else 0)
        return _bpf("load device program", BPF_PROG_LOAD, attr)[0]

    try:
        fd = load(0, ffi.NULL, 0)
    except OSError as e:
        log = ffi.new("char[]", 1 << 16)
        try:
            fd = load(1, log, 1 << 16)
        except OSError:
            lines = [ln for ln in ffi.string(log).decode(errors="replace").splitlines()
                     if ln.strip() and not ln.startswith("processed ")]
            raise OSError(e.errno, f"{e.strerror}{': ' + lines[-1] if lines else ''}") from None
    os.set_inheritable(fd, False)
    return fd


def bpf_attach_device_program(cgroup_fd: int, prog_fd: int, flags: int = 0) -> None:
    """Attach to a cgroup v2 directory; with flags 0 the program replaces the one attached before."""
    import struct

    _bpf("attach device program", BPF_PROG_ATTACH, struct.pack("=IIII", cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, flags))


def bpf_device_program_ids(cgroup_fd: int) -> list[int]:
    """The ids of the device programs attached to the cgroup itself (not inherited), oldest first."""
    import struct

    ffi, _ = _libc()
    # BPF_PROG_QUERY: target_fd, attach_type, query_flags, attach_flags (out), prog_ids, prog_cnt (in: room)
    ids = ffi.new("uint32_t[]", 64)
    _, attr = _bpf("query device programs", BPF_PROG_QUERY,
                   struct.pack("=IIIIQI4x", cgroup_fd, BPF_CGROUP_DEVICE, 0, 0,
                               int(ffi.cast("uintptr_t", ids)), 64))
    count = struct.unpack_from("=I", attr, 24)[0]
    return [int(ids[i]) for i in range(min(count, 64))]


def bpf_device_programs(cgroup_fd: int) -> int:
    """How many device programs are attached to the cgroup itself (not inherited)."""
    return len(bpf_device_program_ids(cgroup_fd))


def bpf_prog_fd_by_id(prog_id: int) -> int:
    """An fd (close-on-exec) for the loaded program with this id."""
    import struct

    fd, _ = _bpf(f"get program {prog_id}", BPF_PROG_GET_FD_BY_ID, struct.pack("=III", prog_id, 0, 0))
    os.set_inheritable(fd, False)
    return fd


def bpf_detach_device_program(cgroup_fd: int, prog_fd: int) -> None:
    """Detach one program of a cgroup's BPF_F_ALLOW_MULTI list."""
    import struct

    _bpf("detach device program", BPF_PROG_DETACH, struct.pack("=IIII", cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, 0))
