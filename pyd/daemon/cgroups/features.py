"""What the host's cgroups can limit, as dockerd's sysinfo finds it, and the warnings `docker info` gives
for what is missing (dockerd's fillPlatformInfo texts). v1: the files of each controller's hierarchy;
v2: the controllers the container cgroups' parent is given and the files of a non-root cgroup."""
from __future__ import annotations

import os
from dataclasses import dataclass

from pyd.daemon.cgroups.base import Cgroups, read_file


@dataclass(frozen=True)
class CgroupFeatures:
    version: str                      # "1", "2", or "" without cgroups
    memory: bool = False
    swap: bool = False
    kernel_memory_tcp: bool = False
    oom_kill_disable: bool = False
    cpu_shares: bool = False
    cfs_period: bool = False
    cfs_quota: bool = False
    cpu_realtime: bool = False
    cpuset: bool = False
    pids: bool = False
    blkio_weight: bool = False
    blkio_weight_device: bool = False
    read_bps: bool = False
    write_bps: bool = False
    read_iops: bool = False
    write_iops: bool = False

    def warnings(self) -> list[str]:
        if not self.version:
            return ["WARNING: No cgroup support: resource limits are not enforced"]
        out = [text for ok, text in ((self.memory, "No memory limit support"), (self.swap, "No swap limit support"))
               if not ok]
        if self.version == "1":
            out += [text for ok, text in ((self.kernel_memory_tcp, "No kernel memory TCP limit support"),
                                          (self.oom_kill_disable, "No oom kill disable support")) if not ok]
        out += [text for ok, text in ((self.cfs_quota, "No cpu cfs quota support"),
                                      (self.cfs_period, "No cpu cfs period support"),
                                      (self.cpu_shares, "No cpu shares support"), (self.cpuset, "No cpuset support"))
                if not ok]
        if self.version == "2":
            out += [text for ok, text in ((self.blkio_weight, "No io.weight support"),
                                          (self.blkio_weight_device, "No io.weight (per device) support"))
                    if not ok]
        throttles = (("rbps", "read_bps_device", self.read_bps), ("wbps", "write_bps_device", self.write_bps),
                     ("riops", "read_iops_device", self.read_iops), ("wiops", "write_iops_device", self.write_iops))
        for v2_name, v1_name, ok in throttles:
            if not ok:
                out.append(f"No io.max ({v2_name}) support" if self.version == "2"
                           else f"No blkio throttle.{v1_name} support")
        return ["WARNING: " + text for text in out]


def probe(cgroups: Cgroups) -> CgroupFeatures:
    points = dict(cgroups.mount_points)
    if points:
        return _v1(points)
    parent = cgroups.parent_dir()
    if parent is None:
        return CgroupFeatures("")
    return _v2(parent)


def _v1(points: dict[str, str]) -> CgroupFeatures:
    def has(ctl: str, name: str) -> bool:
        return ctl in points and os.path.exists(os.path.join(points[ctl], name))
    return CgroupFeatures(
        "1", memory=has("memory", "memory.limit_in_bytes"), swap=has("memory", "memory.memsw.limit_in_bytes"),
        kernel_memory_tcp=has("memory", "memory.kmem.tcp.limit_in_bytes"),
        oom_kill_disable=has("memory", "memory.oom_control"), cpu_shares=has("cpu", "cpu.shares"),
        cfs_period=has("cpu", "cpu.cfs_period_us"), cfs_quota=has("cpu", "cpu.cfs_quota_us"),
        cpu_realtime=has("cpu", "cpu.rt_period_us"), cpuset=has("cpuset", "cpuset.cpus"),
        pids="pids" in points, blkio_weight=has("blkio", "blkio.weight") or has("blkio", "blkio.bfq.weight"),
        blkio_weight_device=has("blkio", "blkio.weight_device") or has("blkio", "blkio.bfq.weight_device"),
        read_bps=has("blkio", "blkio.throttle.read_bps_device"),
        write_bps=has("blkio", "blkio.throttle.write_bps_device"),
        read_iops=has("blkio", "blkio.throttle.read_iops_device"),
        write_iops=has("blkio", "blkio.throttle.write_iops_device"))


def _v2(parent: str) -> CgroupFeatures:
    """`parent`: where container cgroups are made (not the root cgroup, which has no memory.max, io.max...):
    a controller its children get, with the file it has itself."""
    controllers = set(read_file(os.path.join(parent, "cgroup.subtree_control")).split())

    def has(ctl: str, name: str) -> bool:
        return ctl in controllers and os.path.exists(os.path.join(parent, name))
    io_max = has("io", "io.max")
    return CgroupFeatures(
        "2", memory=has("memory", "memory.max"), swap=has("memory", "memory.swap.max"),
        cpu_shares=has("cpu", "cpu.weight"), cfs_period=has("cpu", "cpu.max"), cfs_quota=has("cpu", "cpu.max"),
        cpuset=has("cpuset", "cpuset.cpus"), pids=has("pids", "pids.max"),
        blkio_weight=has("io", "io.weight") or has("io", "io.bfq.weight"),
        blkio_weight_device=has("io", "io.weight") or has("io", "io.bfq.weight"),
        read_bps=io_max, write_bps=io_max, read_iops=io_max, write_iops=io_max)
