"""run/create's security and resource flags (--cap-add, --privileged, --security-opt, --read-only,
--shm-size, --ulimit, --sysctl, --ipc, --pid, --uts, --group-add, --device, -m, --cpus, ...) turned into the
API's HostConfig as docker's CLI does; `update` takes the resource flags too."""
from __future__ import annotations

from pyd.client.flags import BOOL, INT, LIST, STRING, Flag, Options
from pyd.formats.devices import parse_device
from pyd.formats.sysctls import cli_allows
from pyd.formats.ulimits import parse_ulimit


def _bytes(raw: str) -> int:
    from pyd.formats.units import ram_in_bytes
    return ram_in_bytes(raw)


def _swap(raw: str) -> int:
    return -1 if raw == "-1" else _bytes(raw)


def _cpus(raw: str) -> int:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"failed to parse {raw} as a rational number") from None
    nano = round(value * 1e9)
    if value < 0 or nano != value * 1e9 and abs(nano - value * 1e9) > 1:
        raise ValueError("value is too precise")
    return nano


def _sysctl(raw: str) -> str:
    key, sep, _ = raw.partition("=")
    if not sep:
        raise ValueError(f"sysctl '{raw}' is not allowed")
    if cli_allows(key):
        return raw
    raise ValueError(f"sysctl '{raw}' is not allowed")


def security_flags() -> list[Flag]:
    return [
        Flag("cap-add", "", LIST, help="Add Linux capabilities"),
        Flag("cap-drop", "", LIST, help="Drop Linux capabilities"),
        Flag("privileged", "", BOOL, help="Give extended privileges to this container"),
        Flag("security-opt", "", LIST, help="Security Options"),
        Flag("read-only", "", BOOL, help="Mount the container's root filesystem as read only"),
        Flag("shm-size", "", STRING, metavar="bytes", help="Size of /dev/shm", validate=_bytes),
        Flag("ulimit", "", LIST, metavar="ulimit", help="Ulimit options", validate=parse_ulimit),
        Flag("sysctl", "", LIST, metavar="map", help="Sysctl options", validate=_sysctl),
        Flag("ipc", "", STRING, help="IPC mode to use"),
        Flag("pid", "", STRING, help="PID namespace to use"),
        Flag("uts", "", STRING, help="UTS namespace to use"),
        Flag("group-add", "", LIST, help="Add additional groups to join"),
        Flag("device", "", LIST, help="Add a host device to the container", validate=parse_device),
        Flag("cgroup-parent", "", STRING, help="Optional parent cgroup for the container"),
        *resource_flags(),
    ]


def resource_flags() -> list[Flag]:
    return [
        Flag("memory", "m", STRING, metavar="bytes", help="Memory limit", validate=_bytes),
        Flag("memory-swap", "", STRING, metavar="bytes",
             help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap", validate=_swap),
        Flag("memory-reservation", "", STRING, metavar="bytes", help="Memory soft limit", validate=_bytes),
        Flag("cpus", "", STRING, metavar="decimal", help="Number of CPUs", validate=_cpus),
        Flag("cpu-shares", "c", INT, help="CPU shares (relative weight)"),
        Flag("cpu-period", "", INT, help="Limit CPU CFS (Completely Fair Scheduler) period"),
        Flag("cpu-quota", "", INT, help="Limit CPU CFS (Completely Fair Scheduler) quota"),
        Flag("cpuset-cpus", "", STRING, help="CPUs in which to allow execution (0-3, 0,1)"),
        Flag("cpuset-mems", "", STRING, help="MEMs in which to allow execution (0-3, 0,1)"),
        Flag("pids-limit", "", INT, help="Tune container pids limit (set -1 for unlimited)"),
        Flag("blkio-weight", "", INT, help="Block IO (relative weight), between 10 and 1000, or 0 to disable"),
    ]


def resources(opts: Options) -> dict:
    """HostConfig's resource fields for the resource flags given."""
    out: dict = {}
    pairs = (("memory", "Memory"), ("memory_swap", "MemorySwap"), ("memory_reservation", "MemoryReservation"),
             ("cpus", "NanoCpus"), ("cpu_shares", "CpuShares"), ("cpu_period", "CpuPeriod"),
             ("cpu_quota", "CpuQuota"), ("cpuset_cpus", "CpusetCpus"), ("cpuset_mems", "CpusetMems"),
             ("pids_limit", "PidsLimit"), ("blkio_weight", "BlkioWeight"))
    for dest, key in pairs:
        if opts.given(dest):
            out[key] = getattr(opts, dest)
    return out


def apply_security_flags(opts: Options, body: dict) -> None:
    hc = body["HostConfig"]
    hc.update(resources(opts))
    if opts.cap_add:
        hc["CapAdd"] = opts.cap_add
    if opts.cap_drop:
        hc["CapDrop"] = opts.cap_drop
    hc["Privileged"] = opts.privileged
    hc["ReadonlyRootfs"] = opts.read_only
    if opts.security_opt:
        hc["SecurityOpt"] = [_inline_seccomp(o) for o in opts.security_opt]
    if opts.shm_size:
        hc["ShmSize"] = opts.shm_size
    if opts.ulimit:
        hc["Ulimits"] = opts.ulimit
    if opts.sysctl:
        hc["Sysctls"] = dict(s.split("=", 1) for s in opts.sysctl)
    for dest, key in (("ipc", "IpcMode"), ("pid", "PidMode"), ("uts", "UTSMode"), ("cgroup_parent", "CgroupParent")):
        if getattr(opts, dest):
            hc[key] = getattr(opts, dest)
    if opts.group_add:
        hc["GroupAdd"] = opts.group_add
    if opts.device:
        hc["Devices"] = opts.device


def _inline_seccomp(opt: str) -> str:
    """docker's CLI reads a seccomp profile's file and sends its JSON."""
    key, sep, value = opt.partition("=")
    if key == "seccomp" and sep and value not in ("unconfined", "builtin"):
        try:
            with open(value) as f:
                return "seccomp=" + f.read()
        except OSError as e:
            from pyd.client.flags import FlagError
            raise FlagError(f"opening seccomp profile ({value}) failed: open {value}: "
                            f"{(e.strerror or str(e)).lower()}") from None
    return opt
