"""Seccomp: Docker's default profile, or a user's JSON in Docker's format, evaluated against the
container's capabilities, the machine and the kernel release, and compiled into flat rule records so
execd only has to hand them to libseccomp."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from pyd.daemon.errors import BadParameter
from pyd.daemon.runtime.execdriver import ContainerSpec
from pyd.daemon.spec.inputs import SpecInputs
from pyd.formats.platforms import goarch as machine_goarch
from pyd.daemon.spec.security import SecurityOpts, container_caps, parse_security_opts, security_step

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


def _kernel_at_least(release: str, minimum: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        out = []
        for p in v.split("-")[0].split(".")[:2]:
            digits = "".join(ch for ch in p if ch.isdigit())
            out.append(int(digits or 0))
        return tuple(out)
    return parts(release) >= parts(minimum)


@dataclass
class SeccompFilter:
    default_action: int
    arches: list[str]
    rules: list[str]   # "ACTION NAME NARGS [INDEX OP VALUE VALUE_TWO]...", numbers in decimal

    def records(self) -> list[tuple[str, str]]:
        """execd's spec records: seccomp_default, seccomp_arch*, seccomp_rule*."""
        return [("seccomp_default", str(self.default_action)), *[("seccomp_arch", a) for a in self.arches],
                *[("seccomp_rule", r) for r in self.rules]]


def compile_profile(profile: dict[str, Any], caps: list[str], machine: str, kernel: str) -> SeccompFilter:
    """Docker's profile semantics: include/exclude by caps, arches (Go names) and minKernel, for the host's
    machine (uname -m) and kernel release (uname -r)."""
    if not isinstance(profile, dict):
        raise BadParameter("Decoding seccomp profile failed: json: cannot unmarshal into seccomp.Seccomp")
    goarch = machine_goarch(machine)
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
        if inc.get("minKernel") and not _kernel_at_least(kernel, inc["minKernel"]):
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


def seccomp_filter(opts: SecurityOpts, hc: Mapping[str, Any], caps: list[str], machine: str,
                   kernel: str) -> SeccompFilter | None:
    """None when the container runs unconfined (--privileged or seccomp=unconfined), as in Docker."""
    if hc.get("Privileged") or opts.seccomp == "unconfined":
        return None
    if opts.seccomp == "builtin":
        return compile_profile(DEFAULT_PROFILE, caps, machine, kernel)
    try:
        profile = json.loads(opts.seccomp)
    except ValueError as e:
        raise BadParameter(f"Decoding seccomp profile failed: {e}") from None
    return compile_profile(profile, caps, machine, kernel)


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


@security_step
def with_seccomp(spec: ContainerSpec, inputs: SpecInputs) -> None:
    """The compiled profile; none for --privileged or seccomp=unconfined."""
    assert spec.security is not None
    hc = inputs.host_config
    caps, _ = container_caps(hc, inputs.user.uid, inputs.host.capabilities)
    seccomp = seccomp_filter(parse_security_opts(hc.get("SecurityOpt")), hc, caps, inputs.host.machine,
                             inputs.host.kernel)
    spec.security.seccomp = seccomp.records() if seccomp else []
