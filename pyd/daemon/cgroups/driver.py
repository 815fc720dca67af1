"""Which cgroup driver the host needs: v1 where any v1 controller hierarchy is mounted (a hybrid host
counts as v1), else v2 where the unified hierarchy is, else none."""
from __future__ import annotations

from pyd.daemon.cgroups import v1, v2
from pyd.daemon.cgroups.base import Cgroups


def for_host(parent: str = "pyd") -> Cgroups:
    points = v1.mounts()
    if points:
        return v1.CgroupsV1(parent, points)
    if v2.present():
        return v2.CgroupsV2(parent)
    return Cgroups(parent)
