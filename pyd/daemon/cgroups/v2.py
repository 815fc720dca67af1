"""cgroup v2 (unified): the container's cgroup is ``/sys/fs/cgroup/<parent>/<id>``, with the same knobs
in v2 spelling. Device rules, which v2 has no controller for, are an eBPF program attached to the
container's cgroup (device_filter.py) before its first process joins it."""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping

from pyd.daemon.cgroups import device_filter
from pyd.daemon.cgroups.base import Cgroups, cfs, read_file, write_file
from pyd.daemon.cgroups.blkio_devices import THROTTLES, device_io
from pyd.daemon.cgroups.devices import DeviceRule

ROOT = "/sys/fs/cgroup"
log = logging.getLogger("pyd")


def present() -> bool:
    return os.path.exists(os.path.join(ROOT, "cgroup.controllers"))


class CgroupsV2(Cgroups):
    default_cgroupns = "private"

    def __init__(self, parent: str = "pyd", root: str = ROOT) -> None:
        super().__init__(parent)
        self.root = root            # the unified hierarchy's mount (tests: a hybrid host's cgroup2 mount)

    def dirs(self, cid: str, hc: Mapping[str, Any]) -> dict[str, str]:
        return {"unified": os.path.join(self.root, self._relative(cid, hc))}

    def parent_dir(self) -> str | None:
        d = os.path.join(self.root, self.parent)
        return d if os.path.isdir(d) else None

    def prepare(self) -> None:
        """pyd's own subtree with the controllers enabled down to it, so `docker info` can tell what a
        container's cgroup will offer before the first one exists."""
        d = os.path.join(self.root, self.parent)
        try:
            self._mkdir("unified", d)
            self._enable_controllers(d)
        except OSError as e:
            log.warning("cannot prepare the cgroup %s: %s", d, e)

    def _make(self, cid: str, hc: Mapping[str, Any]) -> None:
        super()._make(cid, hc)
        self._enable_controllers(os.path.dirname(self.dirs(cid, hc)["unified"]))

    def _enable_controllers(self, parent: str) -> None:
        chain = []
        p = parent
        while p.startswith(self.root + "/"):
            chain.append(p)
            p = os.path.dirname(p)
        for d in [self.root, *reversed(chain)]:
            available = read_file(os.path.join(d, "cgroup.controllers")).split()
            for ctl in ("cpu", "cpuset", "memory", "pids", "io"):
                if ctl in available:
                    try:
                        write_file(os.path.join(d, "cgroup.subtree_control"), f"+{ctl}")
                    except OSError:
                        pass

    def _write_devices(self, cid: str, hc: Mapping[str, Any], rules: list[DeviceRule]) -> None:
        try:
            device_filter.install(self.dirs(cid, hc)["unified"], rules)
        except OSError as e:
            raise OSError(e.errno, f"cannot set the device filter (cgroup v2 eBPF): {e.strerror}") from None

    def apply(self, cid: str, hc: Mapping[str, Any]) -> list[str]:
        d = self.dirs(cid, hc)["unified"]

        def put(name: str, value: Any) -> None:
            if os.path.exists(os.path.join(d, name)):
                write_file(os.path.join(d, name), value)
        mem, swap = hc.get("Memory") or 0, hc.get("MemorySwap") or 0
        put("memory.max", mem if mem > 0 else "max")
        put("memory.swap.max", (swap - mem) if mem > 0 and swap > 0 else "max")
        put("memory.low", hc.get("MemoryReservation") or 0)
        period, quota = cfs(hc)
        put("cpu.max", f"{quota if quota > 0 else 'max'} {period}")
        shares = hc.get("CpuShares") or 0
        if shares:
            put("cpu.weight", 1 + ((shares - 2) * 9999) // 262142)
        if hc.get("CpusetCpus"):
            put("cpuset.cpus", hc["CpusetCpus"])
        limit = hc.get("PidsLimit") or 0
        put("pids.max", limit if limit > 0 else "max")
        if hc.get("BlkioWeight"):
            put("io.bfq.weight", hc["BlkioWeight"])
        for dev in device_io(hc):
            if dev.limits:   # io.max: the keys named; 0 (and the others) unlimited
                put("io.max", " ".join([dev.numbers] + [f"{name}={dev.limits.get(name) or 'max'}"
                                                        for _, name, _ in THROTTLES]))
            if dev.weight:
                put("io.bfq.weight", f"{dev.numbers} {dev.weight}")
        return []

    def _oom_file(self, dirs: Mapping[str, str]) -> str | None:
        return os.path.join(dirs["unified"], "memory.events")

    def _freezer(self, dirs: Mapping[str, str], frozen: bool) -> tuple[str, str, str, str]:
        want = "1" if frozen else "0"
        return (os.path.join(dirs["unified"], "cgroup.freeze"), want,
                os.path.join(dirs["unified"], "cgroup.events"), f"frozen {want}")
