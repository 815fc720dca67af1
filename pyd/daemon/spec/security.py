"""What a container may do, as Docker decides it: capabilities, seccomp, masked and read-only paths,
devices, rlimits and sysctls, computed from the HostConfig into plain values execd applies.

Seccomp profiles (Docker's default, or a user's JSON in Docker's format) are evaluated here against the
container's capabilities, the native architecture and the kernel version, and compiled into flat rule
records so execd only has to hand them to libseccomp.
"""
from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from typing import Any

from pyd.daemon.errors import BadParameter
from pyd.formats.devices import valid_permissions
from pyd.formats.sysctls import IPC_SYSCTLS
from pyd.formats.ulimits import RLIMITS

# ---------------------------------------------------------------- capabilities

CAPABILITIES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
]
CAP_NUMBER = {f"CAP_{name}": i for i, name in enumerate(CAPABILITIES)}

# Docker's default set (moby oci/caps/defaults.go): CapEff 00000000a80425fb for root
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


def last_cap(proc: str = "/proc") -> int:
    try:
        with open(f"{proc}/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(CAPABILITIES) - 1


def own_bounding_set(proc: str = "/proc") -> int:
    try:
        with open(f"{proc}/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return (1 << 64) - 1


def all_caps() -> list[str]:
    """Every capability the kernel knows that the daemon itself holds (what --privileged gets)."""
    held = own_bounding_set()
    return [f"CAP_{n}" for i, n in enumerate(CAPABILITIES[:last_cap() + 1]) if held & (1 << i)]


def normalize_cap(name: str) -> str:
    """'net_admin', 'NET_ADMIN' and 'CAP_NET_ADMIN' are the same; ALL stays ALL."""
    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    if upper not in CAP_NUMBER:
        raise BadParameter(f"invalid CapAdd: unknown capability: \"{upper}\"")
    return upper


def tweak_caps(base: list[str], adds: list[str] | None, drops: list[str] | None) -> list[str]:
    """Docker's TweakCapabilities: drop ALL, then add; add ALL wins; an explicit add beats a drop."""
    add = [normalize_cap(c) for c in adds or []]
    try:
        drop = [normalize_cap(c) for c in drops or []]
    except BadParameter as e:
        raise BadParameter(str(e).replace("CapAdd", "CapDrop")) from None
    if "ALL" in add:
        return [c for c in all_caps() if c not in drop or c in add]
    caps = [] if "ALL" in drop else [c for c in base if c not in drop]
    for c in add:
        if c not in caps:
            caps.append(c)
    return caps


def caps_mask(caps: list[str]) -> int:
    mask = 0
    for c in caps:
        mask |= 1 << CAP_NUMBER[c]
    return mask


@dataclass
class CapSets:
    bounding: int
    effective: int
    permitted: int
    inheritable: int = 0
    ambient: int = 0

    def encode(self) -> str:
        return " ".join(f"{v:x}" for v in (self.bounding, self.effective, self.permitted, self.inheritable,
                                             self.ambient))


def container_caps(hc: dict[str, Any], uid: int) -> tuple[list[str], CapSets]:
    """The capability names and sets of a container's process.

    Non-root users keep the bounding set but get empty effective and permitted sets, as in Docker.
    """
    if hc.get("Privileged"):
        caps = all_caps()
    else:
        caps = tweak_caps(DEFAULT_CAPS, hc.get("CapAdd"), hc.get("CapDrop"))
    mask = caps_mask(caps)
    if uid != 0:
        return caps, CapSets(bounding=mask, effective=0, permitted=0)
    return caps, CapSets(bounding=mask, effective=mask, permitted=mask)


# ---------------------------------------------------------------- paths

MASKED_PATHS = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                "/sys/devices/virtual/powercap"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def masked_paths(hc: dict[str, Any]) -> list[str]:
    if hc.get("Privileged"):
        return []
    return list(hc["MaskedPaths"]) if hc.get("MaskedPaths") is not None else list(MASKED_PATHS)


def readonly_paths(hc: dict[str, Any]) -> list[str]:
    if hc.get("Privileged"):
        return []
    return list(hc["ReadonlyPaths"]) if hc.get("ReadonlyPaths") is not None else list(READONLY_PATHS)


# ---------------------------------------------------------------- security options

@dataclass
class SecurityOpts:
    seccomp: str = "builtin"           # "builtin", "unconfined", or a profile's JSON text
    no_new_privileges: bool = False
    labels: list[str] = field(default_factory=list)


def parse_security_opts(opts: list[str] | None) -> SecurityOpts:
    """HostConfig.SecurityOpt as dockerd reads it (the CLI already inlined a seccomp profile's file)."""
    result = SecurityOpts()
    for opt in opts or []:
        if opt == "no-new-privileges":
            result.no_new_privileges = True
            continue
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        if not sep:
            raise BadParameter(f"Invalid --security-opt 1: {opt!r}")
        if key == "no-new-privileges":
            if value not in ("true", "false", "1", "0"):
                raise BadParameter("invalid --security-opt 2: \"no-new-privileges=%s\"" % value)
            result.no_new_privileges = value in ("true", "1")
        elif key == "seccomp":
            result.seccomp = value if value in ("unconfined", "builtin") else value
        elif key in ("label", "apparmor", "systempaths", "writable-cgroups"):
            result.labels.append(opt)
        else:
            raise BadParameter(f"invalid --security-opt 2: {opt!r}")
    return result


# ---------------------------------------------------------------- seccomp

SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_ERRNO = 0x00050000
SCMP_ACT_TRACE = 0x7FF00000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000
EPERM, ENOSYS = 1, 38

SCMP_CMP = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
            "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
# libseccomp arch names, from the profile's SCMP_ARCH_* tokens
SCMP_ARCH = {"SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X32": "x32",
             "SCMP_ARCH_ARM": "arm", "SCMP_ARCH_AARCH64": "aarch64", "SCMP_ARCH_MIPS": "mips",
             "SCMP_ARCH_MIPS64": "mips64", "SCMP_ARCH_MIPS64N32": "mips64n32", "SCMP_ARCH_MIPSEL": "mipsel",
             "SCMP_ARCH_MIPSEL64": "mipsel64", "SCMP_ARCH_MIPSEL64N32": "mipsel64n32", "SCMP_ARCH_PPC": "ppc",
             "SCMP_ARCH_PPC64": "ppc64", "SCMP_ARCH_PPC64LE": "ppc64le", "SCMP_ARCH_S390": "s390",
             "SCMP_ARCH_S390X": "s390x", "SCMP_ARCH_RISCV64": "riscv64"}
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm", "s390x": "s390x",
          "ppc64le": "ppc64le", "riscv64": "riscv64"}
NATIVE_SCMP_ARCH = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "386": "SCMP_ARCH_X86",
                    "arm": "SCMP_ARCH_ARM", "s390x": "SCMP_ARCH_S390X", "ppc64le": "SCMP_ARCH_PPC64LE",
                    "riscv64": "SCMP_ARCH_RISCV64"}


def _action(name: str, errno_ret: int | None, default_errno: int) -> int:
    base = {"SCMP_ACT_KILL": SCMP_ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": SCMP_ACT_KILL_THREAD,
            "SCMP_ACT_KILL_PROCESS": SCMP_ACT_KILL_PROCESS, "SCMP_ACT_TRAP": SCMP_ACT_TRAP,
            "SCMP_ACT_ERRNO": SCMP_ACT_ERRNO, "SCMP_ACT_TRACE": SCMP_ACT_TRACE, "SCMP_ACT_LOG": SCMP_ACT_LOG,
            "SCMP_ACT_ALLOW": SCMP_ACT_ALLOW}.get(name)
    if base is None:
        raise BadParameter(f"invalid seccomp profile: unrecognized action {name!r}")
    if base == SCMP_ACT_ERRNO:
        return base | ((default_errno if errno_ret is None else errno_ret) & 0xFFFF)
    if base == SCMP_ACT_TRACE:
        return base | ((errno_ret or default_errno) & 0xFFFF)
    return base


def _kernel_at_least(minimum: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        out = []
        for p in v.split("-")[0].split(".")[:2]:
            digits = "".join(ch for ch in p if ch.isdigit())
            out.append(int(digits or 0))
        return tuple(out)
    return parts(platform.release()) >= parts(minimum)


@dataclass
class SeccompFilter:
    default_action: int
    arches: list[str]
    rules: list[str]   # "ACTION NAME NARGS [INDEX OP VALUE VALUE_TWO]...", numbers in decimal

    def records(self) -> list[tuple[str, str]]:
        """execd's spec records: seccomp_default, seccomp_arch*, seccomp_rule*."""
        return [("seccomp_default", str(self.default_action)), *[("seccomp_arch", a) for a in self.arches],
                *[("seccomp_rule", r) for r in self.rules]]


def compile_profile(profile: dict[str, Any], caps: list[str]) -> SeccompFilter:
    """Docker's profile semantics: include/exclude by caps, arches (Go names) and minKernel."""
    if not isinstance(profile, dict):
        raise BadParameter("Decoding seccomp profile failed: json: cannot unmarshal into seccomp.Seccomp")
    goarch = GOARCH.get(platform.machine(), platform.machine())
    default_errno = profile.get("defaultErrnoRet")
    default_errno = EPERM if default_errno is None else int(default_errno)
    default = _action(profile.get("defaultAction") or "", profile.get("defaultErrnoRet"), default_errno)
    arches: list[str] = []
    native = NATIVE_SCMP_ARCH.get(goarch)
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == native:
            arches = [entry["architecture"], *(entry.get("subArchitectures") or [])]
    if not arches:
        arches = list(profile.get("architectures") or [])
    arch_names = [SCMP_ARCH[a] for a in arches if a in SCMP_ARCH]
    rules = []
    for group in profile.get("syscalls") or []:
        names = list(group.get("names") or [])
        if group.get("name"):
            names.append(group["name"])
        inc, exc = group.get("includes") or {}, group.get("excludes") or {}
        if inc.get("arches") and goarch not in inc["arches"]:
            continue
        if inc.get("caps") and not all(c in caps for c in inc["caps"]):
            continue
        if inc.get("minKernel") and not _kernel_at_least(inc["minKernel"]):
            continue
        if exc.get("arches") and goarch in exc["arches"]:
            continue
        if exc.get("caps") and any(c in caps for c in exc["caps"]):
            continue
        action = _action(group.get("action") or "", group.get("errnoRet"), default_errno)
        if action == default:
            continue   # libseccomp refuses a rule that repeats the default action
        args = []
        for a in group.get("args") or []:
            op = SCMP_CMP.get(a.get("op"))
            if op is None:
                raise BadParameter(f"invalid seccomp profile: unrecognized operator {a.get('op')!r}")
            args.append(f"{int(a.get('index', 0))} {op} {int(a.get('value', 0))} {int(a.get('valueTwo', 0))}")
        for name in names:
            rules.append(" ".join([str(action), name, str(len(args)), *args]))
    return SeccompFilter(default_action=default, arches=arch_names, rules=rules)


def seccomp_filter(opts: SecurityOpts, hc: dict[str, Any], caps: list[str]) -> SeccompFilter | None:
    """None when the container runs unconfined (--privileged or seccomp=unconfined), as in Docker."""
    if hc.get("Privileged") or opts.seccomp == "unconfined":
        return None
    if opts.seccomp == "builtin":
        return compile_profile(DEFAULT_PROFILE, caps)
    try:
        profile = json.loads(opts.seccomp)
    except ValueError as e:
        raise BadParameter(f"Decoding seccomp profile failed: {e}") from None
    return compile_profile(profile, caps)


# Docker's default profile (moby profiles/seccomp/default.json) as data.
_ALLOWED = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 clock_adjtime
clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create
epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2
execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork
fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex
futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32
getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority
getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname
getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64
ioprio_get ioprio_set io_setup io_submit io_uring_enter io_uring_register io_uring_setup ipc kill
landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen
listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise membarrier memfd_create
memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr
mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap
msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect
open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll
ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64
pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending
rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64
rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
sched_get_priority_min sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64
sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select semctl semget
semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid setregid32
setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt
set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack
signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx
symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname
unlink unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
""".split()

_CLONE_NS_MASK = 2114060288   # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET


def _allow(names: str, **extra: Any) -> dict[str, Any]:
    return {"names": names.split(), "action": "SCMP_ACT_ALLOW", **extra}


def _with_cap(names: str, cap: str) -> dict[str, Any]:
    return _allow(names, includes={"caps": [cap]})


DEFAULT_PROFILE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        {"architecture": "SCMP_ARCH_MIPS64", "subArchitectures": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"]},
        {"architecture": "SCMP_ARCH_MIPS64N32", "subArchitectures": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"]},
        {"architecture": "SCMP_ARCH_MIPSEL64", "subArchitectures": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"]},
        {"architecture": "SCMP_ARCH_MIPSEL64N32", "subArchitectures": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"]},
        {"architecture": "SCMP_ARCH_S390X", "subArchitectures": ["SCMP_ARCH_S390"]},
        {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": None},
    ],
    "syscalls": [
        {"names": _ALLOWED, "action": "SCMP_ACT_ALLOW"},
        _allow("process_vm_readv process_vm_writev ptrace", includes={"minKernel": "4.8"}),
        _allow("socket", args=[{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]),
        *[_allow("personality", args=[{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}])
          for v in (0, 8, 131072, 131080, 4294967295)],
        _allow("sync_file_range2 swapcontext", includes={"arches": ["ppc64le"]}),
        _allow("arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
               includes={"arches": ["arm", "arm64"]}),
        _allow("arch_prctl", includes={"arches": ["amd64", "x32"]}),
        _allow("modify_ldt", includes={"arches": ["amd64", "x32", "x86"]}),
        _allow("s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr", includes={"arches": ["s390", "s390x"]}),
        _allow("riscv_flush_icache", includes={"arches": ["riscv64"]}),
        _with_cap("open_by_handle_at", "CAP_DAC_READ_SEARCH"),
        _with_cap("bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount "
                  "mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname "
                  "sethostname setns syslog umount umount2 unshare", "CAP_SYS_ADMIN"),
        _allow("clone", args=[{"index": 0, "value": _CLONE_NS_MASK, "op": "SCMP_CMP_MASKED_EQ"}],
               excludes={"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}),
        _allow("clone", args=[{"index": 1, "value": _CLONE_NS_MASK, "op": "SCMP_CMP_MASKED_EQ"}],
               includes={"arches": ["s390", "s390x"]}, excludes={"caps": ["CAP_SYS_ADMIN"]}),
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS,
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        _with_cap("reboot", "CAP_SYS_BOOT"),
        _with_cap("chroot", "CAP_SYS_CHROOT"),
        _with_cap("delete_module init_module finit_module", "CAP_SYS_MODULE"),
        _with_cap("acct", "CAP_SYS_PACCT"),
        _with_cap("kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace", "CAP_SYS_PTRACE"),
        _with_cap("iopl ioperm", "CAP_SYS_RAWIO"),
        _with_cap("settimeofday stime clock_settime clock_settime64", "CAP_SYS_TIME"),
        _with_cap("vhangup", "CAP_SYS_TTY_CONFIG"),
        _with_cap("get_mempolicy mbind set_mempolicy set_mempolicy_home_node", "CAP_SYS_NICE"),
        _with_cap("syslog", "CAP_SYSLOG"),
        _with_cap("bpf", "CAP_BPF"),
        _with_cap("perf_event_open", "CAP_PERFMON"),
    ],
}


# ---------------------------------------------------------------- rlimits

def rlimits(hc: dict[str, Any]) -> list[str]:
    """HostConfig.Ulimits [{"Name","Soft","Hard"}] as execd records "RESOURCE SOFT HARD"."""
    out = []
    for u in hc.get("Ulimits") or []:
        if not isinstance(u, dict):
            raise BadParameter("json: cannot unmarshal into Go struct field HostConfig.Ulimits")
        name = u.get("Name", "")
        if name not in RLIMITS:
            raise BadParameter(f"invalid ulimit type: {name}")
        soft, hard = int(u.get("Soft", 0)), int(u.get("Hard", 0))
        if soft > hard:
            raise BadParameter(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        conv = lambda v: 0xFFFFFFFFFFFFFFFF if v < 0 else v  # noqa: E731  (-1 is unlimited)
        out.append(f"{RLIMITS[name]} {conv(soft)} {conv(hard)}")
    return out


# ---------------------------------------------------------------- sysctls

def sysctls(hc: dict[str, Any], own_netns: bool, own_ipcns: bool, own_utsns: bool) -> list[str]:
    """Namespaced sysctls as "key=value" records; others refused with runc's words, as Docker reports them."""
    out = []
    for key, value in sorted((hc.get("Sysctls") or {}).items()):
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if not own_ipcns:
                raise BadParameter(f'sysctl "{key}" is not allowed in the hosts ipc namespace')
        elif key.startswith("net."):
            if not own_netns:
                raise BadParameter(f'sysctl "{key}" is not allowed in the hosts network namespace')
        elif key == "kernel.domainname" and own_utsns:
            pass
        elif key == "kernel.hostname":
            raise BadParameter(f'sysctl "{key}" is not allowed as it conflicts with the OCI "hostname" field')
        else:
            raise BadParameter(f'sysctl "{key}" is not in a separate kernel namespace')
        if "/" in key or ".." in key or "\0" in value or "\n" in value:
            raise BadParameter(f'sysctl "{key}" is not valid')
        out.append(f"{key}={value}")
    return out


# ---------------------------------------------------------------- devices

# Docker's default device cgroup rules (after "a" is denied)
DEFAULT_DEVICE_RULES = ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                        "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm"]


@dataclass
class Device:
    host_path: str
    container_path: str
    permissions: str
    kind: str        # "c" or "b"
    major: int
    minor: int
    mode: int


def resolve_devices(hc: dict[str, Any]) -> list[Device]:
    """HostConfig.Devices [{"PathOnHost","PathInContainer","CgroupPermissions"}] checked against the host."""
    import stat as stat_mod
    out = []
    for d in hc.get("Devices") or []:
        host = d.get("PathOnHost") or ""
        inside = d.get("PathInContainer") or host
        perms = d.get("CgroupPermissions") or "rwm"
        if not valid_permissions(perms):
            raise BadParameter(f"invalid device cgroup permissions: {perms}")
        try:
            st = os.stat(host)
        except OSError as e:
            raise BadParameter(f'error gathering device information while adding custom device "{host}": '
                               f"{e.strerror.lower() if e.strerror else e}") from None
        if stat_mod.S_ISCHR(st.st_mode):
            kind = "c"
        elif stat_mod.S_ISBLK(st.st_mode):
            kind = "b"
        else:
            raise BadParameter(f'error gathering device information while adding custom device "{host}": '
                               "not a device node")
        out.append(Device(host, inside, perms, kind, os.major(st.st_rdev), os.minor(st.st_rdev),
                          stat_mod.S_IMODE(st.st_mode)))
    return out


# runc's HostDevices skips these under /dev: the container has its own pts, shm, mqueue and fd
HOST_DEVICE_SKIP_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}
HOST_DEVICE_SKIP = {"/dev/console", "/dev/ptmx"}   # /dev/ptmx stays the link to the container's devpts


def host_devices(root: str = "/dev") -> list[Device]:
    """Every device node of the host's /dev (what --privileged gets, as in Docker)."""
    import stat as stat_mod
    out = []
    for top, dirs, files in os.walk(root):
        if top == root:
            dirs[:] = [d for d in dirs if d not in HOST_DEVICE_SKIP_DIRS]
        for name in sorted(files):
            path = os.path.join(top, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue   # gone meanwhile
            if path in HOST_DEVICE_SKIP or "\n" in path:
                continue
            if stat_mod.S_ISCHR(st.st_mode):
                kind = "c"
            elif stat_mod.S_ISBLK(st.st_mode):
                kind = "b"
            else:
                continue
            out.append(Device(path, path, "rwm", kind, os.major(st.st_rdev), os.minor(st.st_rdev),
                              stat_mod.S_IMODE(st.st_mode)))
    return out


# ---------------------------------------------------------------- HostConfig at create, spec at start

DEFAULT_SHM_SIZE = 64 * 1024 * 1024
NAMESPACE_MODES = (("pid", "PidMode", "PID"), ("ipc", "IpcMode", "IPC"), ("uts", "UTSMode", "UTS"))


def normalize_host_config(hc: dict[str, Any]) -> None:
    """Check the security fields at create and fill Docker's defaults (shown by inspect)."""
    if not hc.get("Privileged"):
        tweak_caps(DEFAULT_CAPS, hc.get("CapAdd"), hc.get("CapDrop"))   # unknown names are a 400 now
    opts = parse_security_opts(hc.get("SecurityOpt"))
    if opts.seccomp not in ("builtin", "unconfined"):
        try:
            json.loads(opts.seccomp)
        except ValueError as e:
            raise BadParameter(f"Decoding seccomp profile failed: {e}") from None
    rlimits(hc)
    resolve_devices(hc)
    for kind, key, word in NAMESPACE_MODES:
        mode = hc.get(key) or ""
        allowed = ("", "host", "private", "shareable") if kind == "ipc" else ("", "host")
        if mode not in allowed and not mode.startswith("container:"):
            raise BadParameter(f"invalid {word} mode: {mode}")
    hc.setdefault("CapAdd", None)
    hc.setdefault("CapDrop", None)
    hc.setdefault("Privileged", False)
    hc.setdefault("ReadonlyRootfs", False)
    hc.setdefault("SecurityOpt", None)
    hc["IpcMode"] = hc.get("IpcMode") or "private"
    hc.setdefault("PidMode", "")
    hc.setdefault("UTSMode", "")
    if not hc.get("ShmSize"):
        hc["ShmSize"] = DEFAULT_SHM_SIZE
    if hc["ShmSize"] < 0:
        raise BadParameter("SHM size can not be less than 0")
    if not hc["Privileged"]:
        if hc.get("MaskedPaths") is None:
            hc["MaskedPaths"] = list(MASKED_PATHS)
        if hc.get("ReadonlyPaths") is None:
            hc["ReadonlyPaths"] = list(READONLY_PATHS)


def configure(daemon: Any, c: Any, spec: Any) -> None:
    """Fill spec (an execdriver.ContainerSpec) with the container's security, namespaces and cgroup."""
    from pyd.daemon.runtime.execdriver import ExecError, Mount, Security
    hc = c.HostConfig
    privileged = bool(hc.get("Privileged"))
    for kind, key, word in NAMESPACE_MODES:
        mode = hc.get(key) or ""
        if kind in spec.namespaces and (mode == "host" or mode.startswith("container:")):
            spec.namespaces.remove(kind)
        if mode.startswith("container:"):
            ref = mode.split(":", 1)[1]
            try:
                other = daemon.containers.get(ref)
            except Exception:
                raise ExecError(f"No such container: {ref}", 125, "namespaces") from None
            if not other.State.Running or not other.State.Pid:
                raise ExecError(f"cannot join {word} of a non running container: {ref}", 125, "namespaces")
            spec.join_namespaces[kind] = f"/proc/{other.State.Pid}/ns/{kind}"
    try:
        opts = parse_security_opts(hc.get("SecurityOpt"))
        caps, sets = container_caps(hc, spec.process.uid)
        seccomp = seccomp_filter(opts, hc, caps)
        own_net = hc.get("NetworkMode") != "host"
        own_ipc = "ipc" in spec.namespaces or "ipc" in spec.join_namespaces
        own_uts = "uts" in spec.namespaces
        sec = Security(caps=sets.encode(), no_new_privileges=opts.no_new_privileges, privileged=privileged,
                       masked_paths=masked_paths(hc), readonly_paths=readonly_paths(hc),
                       seccomp=seccomp.records() if seccomp else [], rlimits=rlimits(hc),
                       sysctls=sysctls(hc, own_net, own_ipc, own_uts),
                       devices=[f"{d.kind} {d.major} {d.minor} {d.mode:o} {d.container_path}"
                                for d in (host_devices() if privileged else []) + resolve_devices(hc)],
                       shm_size=0 if (hc.get("ShmSize") or DEFAULT_SHM_SIZE) == DEFAULT_SHM_SIZE else hc["ShmSize"])
    except BadParameter as e:
        raise ExecError(str(e), 125, "security") from None
    for dest, options in sorted((hc.get("Tmpfs") or {}).items()):
        extra = [o for o in (options or "").split(",") if o]
        spec.mounts.append(Mount(destination=dest, type="tmpfs", source="tmpfs",
                                 options=["nosuid", "nodev", "noexec", *extra]))
    cg = daemon.cgroups
    spec.join_cgroups = cg.join_paths(c.ID, hc)
    spec.mounts += cgroup_mounts(cg, c.ID, hc, privileged)
    if not privileged and spec.join_cgroups:
        sec.readonly_paths.append("/sys/fs/cgroup")
    spec.security = sec
    from pyd.daemon.containers import shm
    shm.configure(daemon, c, spec)   # --ipc host|shareable|container:X share a /dev/shm


def cgroup_mounts(cg: Any, cid: str, hc: dict[str, Any], privileged: bool) -> list[Any]:
    """/sys/fs/cgroup as Docker shows it on cgroup v1: a tmpfs with the container's own cgroup of each
    controller (read-only unless privileged); on v2 the container's cgroup directory itself."""
    from pyd.daemon.runtime.execdriver import Mount
    access = [] if privileged else ["ro"]
    flags = ["nosuid", "nodev", "noexec"]
    dirs = cg.dirs(cid, hc)
    if not dirs:
        return []
    if "unified" in dirs:
        return [Mount("/sys/fs/cgroup", "bind", dirs["unified"], ["rbind", *access, *flags])]
    mounts = [Mount("/sys/fs/cgroup", "tmpfs", "tmpfs", [*flags, "mode=755"])]
    for ctl, d in sorted(dirs.items()):
        point = os.path.basename(cg.v1[ctl])
        mounts.append(Mount(f"/sys/fs/cgroup/{point}", "bind", d, ["rbind", *access, *flags]))
    return mounts
