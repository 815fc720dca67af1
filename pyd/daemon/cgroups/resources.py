"""The resource fields of a HostConfig as dockerd checks them, at create and at `docker update`, and the
daemon's --exec-opt. Validation and defaults only; writing them into a cgroup is the drivers' job."""
from __future__ import annotations

import os
from typing import Any

from pyd.daemon.cgroups.base import read_file
from pyd.daemon.errors import BadParameter

MIN_MEMORY = 6 * 1024 * 1024          # dockerd's linuxMinMemory
RESOURCE_KEYS = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota",
                 "CpusetCpus", "CpusetMems", "PidsLimit", "BlkioWeight", "KernelMemory", "CpuRealtimePeriod",
                 "CpuRealtimeRuntime")


def _cpu_count() -> int:
    return os.cpu_count() or 1


def check_resources(hc: dict[str, Any], update: bool = False) -> list[str]:
    """Validate and complete the resource fields of a HostConfig in place; returns warnings."""
    warnings: list[str] = []
    for key in ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota",
                "BlkioWeight"):
        if hc.get(key) is None:
            hc[key] = 0
    mem, swap, resv = hc["Memory"], hc["MemorySwap"], hc["MemoryReservation"]
    if mem and mem < MIN_MEMORY:
        raise BadParameter("Minimum memory limit allowed is 6MB")
    if mem > 0 and swap > 0 and swap < mem:
        raise BadParameter("Minimum memoryswap limit should be larger than memory limit, see usage for details")
    if mem == 0 and swap > 0 and not update:
        raise BadParameter("You should always set the Memory limit when using Memoryswap limit, see usage for details")
    if resv and resv < MIN_MEMORY:
        raise BadParameter("Minimum memory reservation allowed is 6MB")
    if mem > 0 and resv > 0 and mem < resv:
        raise BadParameter("Minimum memory limit can not be less than memory reservation limit, see usage for details")
    if mem > 0 and swap == 0 and not update:
        hc["MemorySwap"] = mem * 2   # dockerd's default: as much swap as memory
    ncpu = _cpu_count()
    nano = hc["NanoCpus"]
    if nano and (hc["CpuPeriod"] or hc["CpuQuota"]):
        which = "Period" if hc["CpuPeriod"] else "Quota"
        raise BadParameter(f"Conflicting options: Nano CPUs and CPU {which} cannot both be set")
    if nano < 0 or nano > ncpu * 10**9:
        raise BadParameter(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if hc["CpuPeriod"] and not 1000 <= hc["CpuPeriod"] <= 1_000_000:
        raise BadParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if hc["CpuQuota"] and 0 < hc["CpuQuota"] < 1000:
        raise BadParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if hc["CpuShares"] < 0:
        raise BadParameter("shares: invalid argument")
    cpus = hc.get("CpusetCpus") or ""
    if cpus:
        wanted = parse_cpu_list(cpus)
        available = parse_cpu_list(read_file(_cpuset_root() + "/cpuset.cpus") or f"0-{ncpu - 1}")
        if not wanted <= available:
            raise BadParameter(f"Requested CPUs are not available - requested {cpus}, available: "
                               f"{read_file(_cpuset_root() + '/cpuset.cpus') or f'0-{ncpu - 1}'}")
    weight = hc["BlkioWeight"]
    if weight and not 10 <= weight <= 1000:
        raise BadParameter("Range of blkio weight is from 10 to 1000")
    if weight and not blkio_weight_supported():
        # dockerd's verifyPlatformContainerResources: warn and discard
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                        "Weight discarded.")
        hc["BlkioWeight"] = 0
    pids = hc.get("PidsLimit")
    if pids is not None and pids <= 0:
        hc["PidsLimit"] = None if not update else 0   # 0 and -1 mean unlimited
    return warnings


def parse_cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise BadParameter(f"invalid value {text} for cpuset cpus") from None
        if a > b:
            raise BadParameter(f"invalid value {text} for cpuset cpus")
        cpus.update(range(a, b + 1))
    return cpus


def blkio_weight_supported() -> bool:
    """What dockerd's sysinfo calls BlkioWeight: v1 blkio.weight (or the BFQ one), v2 the io controller."""
    v1 = "/sys/fs/cgroup/blkio"
    if os.path.isdir(v1):
        return any(os.path.exists(os.path.join(v1, n)) for n in ("blkio.weight", "blkio.bfq.weight"))
    return "io" in read_file("/sys/fs/cgroup/cgroup.controllers").split()


def _cpuset_root() -> str:
    return "/sys/fs/cgroup/cpuset" if os.path.isdir("/sys/fs/cgroup/cpuset") else "/sys/fs/cgroup"


def parse_exec_opts(opts: list[str]) -> dict[str, str]:
    """dockerd's --exec-opt: only native.cgroupdriver=cgroupfs is known here."""
    out = {}
    for opt in opts or []:
        key, sep, value = opt.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep:
            raise ValueError(f"unable to parse exec-opt {opt!r}: expected key=value")
        if key != "native.cgroupdriver":
            raise ValueError(f"unknown option {key!r} for exec-opt")
        if value != "cgroupfs":
            raise ValueError(f"native.cgroupdriver option {value} not supported")
        out[key] = value
    return out


class SwapBelowMemory(BadParameter):
    """An update's memory over the swap limit already set: refused where dockerd applies the update,
    so in its `Cannot update container` words (the other checks come before, without them)."""


def update_host_config(hc: dict[str, Any], body: dict[str, Any], warnings: list[str] | None = None) -> dict[str, Any]:
    """The HostConfig after POST /containers/{id}/update (validated; dockerd's rules for swap)."""
    new = dict(hc)
    # the CLI sends every field; as in dockerd, a zero or empty one leaves the current value
    for key in RESOURCE_KEYS:
        if body.get(key):
            new[key] = body[key]
    if "PidsLimit" in body and body["PidsLimit"] is not None:
        new["PidsLimit"] = body["PidsLimit"] if body["PidsLimit"] > 0 else 0
    if body.get("RestartPolicy") and body["RestartPolicy"].get("Name") is not None:
        new["RestartPolicy"] = body["RestartPolicy"]
    mem, swap = new.get("Memory") or 0, new.get("MemorySwap") or 0
    if body.get("Memory") and not body.get("MemorySwap") and swap > 0 and mem > swap:
        raise SwapBelowMemory("Memory limit should be smaller than already set memoryswap limit, update the "
                           "memoryswap at the same time")
    if body.get("Memory") and not (hc.get("Memory") or 0) and not body.get("MemorySwap"):
        new["MemorySwap"] = mem * 2
    if body.get("NanoCpus"):
        new["CpuPeriod"] = new["CpuQuota"] = 0
    elif body.get("CpuPeriod") or body.get("CpuQuota"):
        new["NanoCpus"] = 0
    found = check_resources(new, update=True)
    if warnings is not None:
        warnings.extend(found)
    return new
