"""Where each cgroup driver puts a container's cgroup, and the pure resource rules; no cgroup is made."""
from __future__ import annotations

import errno
from pathlib import Path

import pytest

from pyd.daemon.cgroups import v1, v2
from pyd.daemon.cgroups.base import Cgroups, cfs
from pyd.daemon.cgroups.resources import parse_cpu_list, parse_exec_opts
from pyd.daemon.errors import BadParameter

MOUNTINFO = """\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
33 25 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
37 33 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
38 33 0:33 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
39 33 0:34 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,xattr,name=systemd
"""


def test_v1_mounts_of_a_hybrid_host(tmp_path: Path):
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    assert v1.mounts(str(info)) == {"memory": "/sys/fs/cgroup/memory", "cpu": "/sys/fs/cgroup/cpu,cpuacct",
                                    "cpuacct": "/sys/fs/cgroup/cpu,cpuacct"}
    assert v1.mounts(str(tmp_path / "missing")) == {}


def test_v1_dirs_share_co_mounted_controllers():
    cg = v1.CgroupsV1("pyd", {"memory": "/m", "cpu": "/c,a", "cpuacct": "/c,a"})
    assert cg.dirs("id", {}) == {"memory": "/m/pyd/id", "cpu": "/c,a/pyd/id", "cpuacct": "/c,a/pyd/id"}
    assert cg.join_paths("id", {"CgroupParent": "/custom/"}) == ["/m/custom/id", "/c,a/custom/id"]
    assert cg.mount_points["memory"] == "/m"


def test_v2_and_none():
    assert v2.CgroupsV2("").dirs("id", {}) == {"unified": "/sys/fs/cgroup/pyd/id"}
    assert v2.CgroupsV2("pyd").mount_points == {}
    none = Cgroups("pyd")
    assert none.dirs("id", {}) == {} and none.apply("id", {}) == [] and not none.oom_killed("id", {})
    with pytest.raises(OSError) as e:
        none.set_frozen("id", {}, True)
    assert e.value.errno == errno.ENOTSUP


def test_cfs_and_cpu_lists():
    assert cfs({"NanoCpus": 1_500_000_000}) == (100_000, 150_000)
    assert cfs({"CpuPeriod": 50_000, "CpuQuota": 25_000}) == (50_000, 25_000)
    assert cfs({}) == (100_000, -1)
    assert parse_cpu_list("0-2,5") == {0, 1, 2, 5}
    with pytest.raises(BadParameter):
        parse_cpu_list("3-1")


def test_exec_opts():
    assert parse_exec_opts(["native.cgroupdriver=cgroupfs"]) == {"native.cgroupdriver": "cgroupfs"}
    with pytest.raises(ValueError, match="not supported"):
        parse_exec_opts(["native.cgroupdriver=systemd"])
