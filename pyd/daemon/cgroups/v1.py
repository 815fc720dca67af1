"""cgroup v1: one hierarchy per controller, the container's cgroup is
``<mount of controller>/<cgroup-parent or "pyd">/<id>`` for memory, cpu, cpuacct, cpuset, pids, blkio,
devices and freezer."""
from __future__ import annotations

import errno
import os
from typing import Any, Mapping

from pyd.daemon.cgroups.base import Cgroups, cfs, read_file, write_file
from pyd.daemon.cgroups.blkio_devices import THROTTLES, device_io
from pyd.daemon.cgroups.devices import DeviceRule

CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "devices", "freezer")


def mounts(mountinfo: str = "/proc/self/mountinfo") -> dict[str, str]:
    """controller -> mount point of its v1 hierarchy."""
    found: dict[str, str] = {}
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = right.split()
        if len(fields) < 3 or fields[0] != "cgroup":
            continue
        point = left.split()[4]
        for opt in fields[2].split(","):
            if opt in CONTROLLERS:
                found.setdefault(opt, point)
    return found


class CgroupsV1(Cgroups):
    def __init__(self, parent: str, points: Mapping[str, str]) -> None:
        super().__init__(parent)
        self.points = dict(points)

    @property
    def mount_points(self) -> Mapping[str, str]:
        return self.points

    def dirs(self, cid: str, hc: Mapping[str, Any]) -> dict[str, str]:
        rel = self._relative(cid, hc)
        return {ctl: os.path.join(point, rel) for ctl, point in self.points.items()}

    def _init_level(self, ctl: str, path: str) -> None:
        # cpuset levels get their parent's cpus and mems, or nothing could join them
        if ctl == "cpuset":
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not read_file(os.path.join(path, f)):
                    write_file(os.path.join(path, f), read_file(os.path.join(os.path.dirname(path), f)))

    def _write_devices(self, cid: str, hc: Mapping[str, Any], rules: list[DeviceRule]) -> None:
        d = self.dirs(cid, hc).get("devices")
        if d is None:
            return
        first, rest = rules[0], rules[1:]     # "a" allow (privileged) or "a" deny, then the allowlist
        write_file(os.path.join(d, "devices.allow" if first.allow else "devices.deny"), "a")
        for rule in rest:
            write_file(os.path.join(d, "devices.allow" if rule.allow else "devices.deny"), str(rule))

    def apply(self, cid: str, hc: Mapping[str, Any]) -> list[str]:
        dirs = self.dirs(cid, hc)
        warnings: list[str] = []
        mem_dir = dirs.get("memory")
        if mem_dir:
            mem, swap = hc.get("Memory") or 0, hc.get("MemorySwap") or 0
            limit = mem if mem > 0 else -1
            memsw = swap if swap > 0 else -1
            if mem <= 0:
                memsw = -1
            has_swap = os.path.exists(os.path.join(mem_dir, "memory.memsw.limit_in_bytes"))
            pairs = [("memory.limit_in_bytes", limit)]
            if has_swap:
                pairs.append(("memory.memsw.limit_in_bytes", memsw))
            try:
                for name, value in pairs:
                    write_file(os.path.join(mem_dir, name), value)
            except OSError as e:
                if e.errno != errno.EINVAL or not has_swap:
                    raise
                # memsw must stay >= memory: raise it first when growing
                for name, value in reversed(pairs):
                    write_file(os.path.join(mem_dir, name), value)
            write_file(os.path.join(mem_dir, "memory.soft_limit_in_bytes"), hc.get("MemoryReservation") or -1)
        cpu_dir = dirs.get("cpu")
        if cpu_dir:
            shares = hc.get("CpuShares") or 0
            write_file(os.path.join(cpu_dir, "cpu.shares"), shares if shares else 1024)
            period, quota = cfs(hc)
            write_file(os.path.join(cpu_dir, "cpu.cfs_period_us"), period)
            write_file(os.path.join(cpu_dir, "cpu.cfs_quota_us"), quota)
        cpuset_dir = dirs.get("cpuset")
        if cpuset_dir:
            parent = os.path.dirname(cpuset_dir)
            write_file(os.path.join(cpuset_dir, "cpuset.cpus"), hc.get("CpusetCpus") or read_file(parent + "/cpuset.cpus"))
            write_file(os.path.join(cpuset_dir, "cpuset.mems"), hc.get("CpusetMems") or read_file(parent + "/cpuset.mems"))
        pids_dir = dirs.get("pids")
        if pids_dir:
            limit = hc.get("PidsLimit") or 0
            write_file(os.path.join(pids_dir, "pids.max"), limit if limit > 0 else "max")
        blkio_dir = dirs.get("blkio")
        weight = hc.get("BlkioWeight") or 0
        if blkio_dir and weight:
            for name in ("blkio.weight", "blkio.bfq.weight"):
                if os.path.exists(os.path.join(blkio_dir, name)):
                    write_file(os.path.join(blkio_dir, name), weight)
                    break
            else:
                warnings.append("Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                                "Weight discarded.")
        if blkio_dir:
            self._write_device_io(blkio_dir, hc)
        return warnings

    @staticmethod
    def _write_device_io(blkio_dir: str, hc: Mapping[str, Any]) -> None:
        """One line per device and limit (a rate of 0 lifts it), as runc writes blkio.throttle.*."""
        for dev in device_io(hc):
            for _, name, v1_name in THROTTLES:
                if name in dev.limits:
                    write_file(os.path.join(blkio_dir, f"blkio.throttle.{v1_name}_device"),
                               f"{dev.numbers} {dev.limits[name]}")
            if dev.weight:
                for weight_file in ("blkio.weight_device", "blkio.bfq.weight_device"):
                    if os.path.exists(os.path.join(blkio_dir, weight_file)):
                        write_file(os.path.join(blkio_dir, weight_file), f"{dev.numbers} {dev.weight}")
                        break

    def _oom_file(self, dirs: Mapping[str, str]) -> str | None:
        return os.path.join(dirs["memory"], "memory.oom_control") if "memory" in dirs else None

    def _freezer(self, dirs: Mapping[str, str], frozen: bool) -> tuple[str, str, str, str]:
        if "freezer" not in dirs:
            return super()._freezer(dirs, frozen)
        path, want = os.path.join(dirs["freezer"], "freezer.state"), "FROZEN" if frozen else "THAWED"
        return path, want, path, want
