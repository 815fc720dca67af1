"""What a container may do, as Docker decides it: capabilities, security options, masked and read-only
paths, rlimits and sysctls, computed from the HostConfig into plain values execd applies (seccomp.py
compiles the profile, devices.py finds the device nodes). The with_* steps fill a spec's Security."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from pyd.daemon.cgroups.devices import check_user_rule
from pyd.daemon.errors import BadParameter
from pyd.daemon.runtime.execdriver import ContainerSpec, ExecError, Security
from pyd.daemon.spec.devices import devices_from, resolve_devices
from pyd.daemon.spec.inputs import SpecInputs, Step
from pyd.daemon.spec.namespaces import NAMESPACE_MODES
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


def tweak_caps(base: list[str], adds: list[str] | None, drops: list[str] | None,
               held: Sequence[str] | None = None) -> list[str]:
    """Docker's TweakCapabilities: drop ALL, then add; add ALL wins; an explicit add beats a drop.
    held: every capability the daemon holds (read from /proc when not given)."""
    add = [normalize_cap(c) for c in adds or []]
    try:
        drop = [normalize_cap(c) for c in drops or []]
    except BadParameter as e:
        raise BadParameter(str(e).replace("CapAdd", "CapDrop")) from None
    if "ALL" in add:
        return [c for c in (all_caps() if held is None else held) if c not in drop or c in add]
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


def container_caps(hc: Mapping[str, Any], uid: int, held: Sequence[str] | None = None) -> tuple[list[str], CapSets]:
    """The capability names and sets of a container's process (held: as for tweak_caps).

    Non-root users keep the bounding set but get empty effective and permitted sets, as in Docker.
    """
    if hc.get("Privileged"):
        caps = all_caps() if held is None else list(held)
    else:
        caps = tweak_caps(DEFAULT_CAPS, hc.get("CapAdd"), hc.get("CapDrop"), held)
    mask = caps_mask(caps)
    if uid != 0:
        return caps, CapSets(bounding=mask, effective=0, permitted=0)
    return caps, CapSets(bounding=mask, effective=mask, permitted=mask)


# ---------------------------------------------------------------- paths

MASKED_PATHS = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                "/sys/devices/virtual/powercap"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def masked_paths(hc: Mapping[str, Any]) -> list[str]:
    if hc.get("Privileged"):
        return []
    return list(hc["MaskedPaths"]) if hc.get("MaskedPaths") is not None else list(MASKED_PATHS)


def readonly_paths(hc: Mapping[str, Any]) -> list[str]:
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


# ---------------------------------------------------------------- rlimits

def rlimits(hc: Mapping[str, Any]) -> list[str]:
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

def sysctls(hc: Mapping[str, Any], own_netns: bool, own_ipcns: bool, own_utsns: bool) -> list[str]:
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


# ---------------------------------------------------------------- HostConfig at create, spec at start

DEFAULT_SHM_SIZE = 64 * 1024 * 1024


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
    oom = hc.get("OomScoreAdj") or 0
    if not -1000 <= oom <= 1000:
        raise BadParameter(f"Invalid value {oom}, range for oom score adj is [-1000, 1000]")
    resolve_devices(hc)
    for rule in hc.get("DeviceCgroupRules") or []:
        try:
            check_user_rule(rule)
        except ValueError as e:
            raise BadParameter(str(e)) from None
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


# ---------------------------------------------------------------- the spec's steps

def security_step(step: Step) -> Step:
    """A refused setting fails the start as execd's own errors do: exit 125 at the "security" step."""
    @functools.wraps(step)
    def run(spec: ContainerSpec, inputs: SpecInputs) -> None:
        try:
            step(spec, inputs)
        except BadParameter as e:
            raise ExecError(str(e), 125, "security") from None
    return run


@security_step
def with_security_opts(spec: ContainerSpec, inputs: SpecInputs) -> None:
    """--security-opt and --privileged: the Security the next steps fill."""
    opts = parse_security_opts(inputs.host_config.get("SecurityOpt"))
    spec.security = Security(no_new_privileges=opts.no_new_privileges,
                             privileged=bool(inputs.host_config.get("Privileged")))


@security_step
def with_capabilities(spec: ContainerSpec, inputs: SpecInputs) -> None:
    assert spec.security is not None
    _, sets = container_caps(inputs.host_config, inputs.user.uid, inputs.host.capabilities)
    spec.security.caps = sets.encode()


def with_masked_paths(spec: ContainerSpec, inputs: SpecInputs) -> None:
    """Docker's masked and read-only paths (none for --privileged)."""
    assert spec.security is not None
    spec.security.masked_paths = masked_paths(inputs.host_config)
    spec.security.readonly_paths = readonly_paths(inputs.host_config)


@security_step
def with_rlimits(spec: ContainerSpec, inputs: SpecInputs) -> None:
    assert spec.security is not None
    spec.security.rlimits = rlimits(inputs.host_config)


@security_step
def with_sysctls(spec: ContainerSpec, inputs: SpecInputs) -> None:
    """Namespaced sysctls only: after with_namespaces, which decides what the container owns."""
    assert spec.security is not None
    hc = inputs.host_config
    own_ipc = "ipc" in spec.namespaces or "ipc" in spec.join_namespaces
    own_uts = "uts" in spec.namespaces
    spec.security.sysctls = sysctls(hc, hc.get("NetworkMode") != "host", own_ipc, own_uts)
    domain = inputs.config.get("Domainname") or ""
    if domain and own_uts and "kernel.domainname" not in (hc.get("Sysctls") or {}):
        if "\0" in domain or "\n" in domain:
            raise BadParameter(f"invalid domainname: {domain!r}")
        spec.security.sysctls.append(f"kernel.domainname={domain}")   # the OCI domainname, as runc sets it


@security_step
def with_devices(spec: ContainerSpec, inputs: SpecInputs) -> None:
    """The device nodes execd makes: the host's all for --privileged, then the requested ones."""
    assert spec.security is not None
    hc = inputs.host_config
    found = (list(inputs.host.devices) if hc.get("Privileged") else []) + devices_from(hc, inputs.host.device_nodes)
    spec.security.devices = [f"{d.kind} {d.major} {d.minor} {d.mode:o} {d.container_path}" for d in found]


def with_oom_score_adj(spec: ContainerSpec, inputs: SpecInputs) -> None:
    """--oom-score-adj; without one the process keeps execd's (the daemon's) score, which pyd leaves at
    its parent's: writing 0 would need CAP_SYS_RESOURCE under a parent with a positive score."""
    assert spec.security is not None
    spec.security.oom_score_adj = int(inputs.host_config.get("OomScoreAdj") or 0) or None


def with_shm_size(spec: ContainerSpec, inputs: SpecInputs) -> None:
    """--shm-size of execd's private /dev/shm; a shared one has the size of its own tmpfs."""
    assert spec.security is not None
    size = inputs.host_config.get("ShmSize") or DEFAULT_SHM_SIZE
    shared = inputs.shm_source is not None
    spec.security.shm_size = 0 if shared or size == DEFAULT_SHM_SIZE else inputs.host_config["ShmSize"]
