"""docker info's warnings for what the host's cgroups lack: dockerd's texts, per cgroup version."""
from __future__ import annotations

from pyd.daemon.cgroups.features import CgroupFeatures

ALL = dict(memory=True, swap=True, kernel_memory_tcp=True, oom_kill_disable=True, cpu_shares=True,
           cfs_period=True, cfs_quota=True, cpu_realtime=True, cpuset=True, pids=True, blkio_weight=True,
           blkio_weight_device=True, read_bps=True, write_bps=True, read_iops=True, write_iops=True)


def test_a_complete_host_has_no_warnings():
    assert CgroupFeatures("1", **ALL).warnings() == []
    assert CgroupFeatures("2", **ALL).warnings() == []


def test_v2_without_swap_accounting_or_io_weight():
    f = CgroupFeatures("2", **{**ALL, "swap": False, "blkio_weight": False, "blkio_weight_device": False,
                               "kernel_memory_tcp": False, "oom_kill_disable": False})
    assert f.warnings() == ["WARNING: No swap limit support", "WARNING: No io.weight support",
                            "WARNING: No io.weight (per device) support"]


def test_v1_spells_the_throttles_as_blkio_files():
    f = CgroupFeatures("1", **{**ALL, "read_bps": False, "oom_kill_disable": False})
    assert f.warnings() == ["WARNING: No oom kill disable support",
                            "WARNING: No blkio throttle.read_bps_device support"]
    assert CgroupFeatures("2", **{**ALL, "read_bps": False}).warnings() == ["WARNING: No io.max (rbps) support"]
