"""The container's cgroup as execd sees it: the directories its init joins and /sys/fs/cgroup inside."""
from __future__ import annotations

import os
from typing import Mapping

from pyd.daemon.runtime.execdriver import ContainerSpec, Mount
from pyd.daemon.spec.inputs import SpecInputs


def cgroup_mounts(dirs: Mapping[str, str], points: Mapping[str, str], privileged: bool) -> list[Mount]:
    """/sys/fs/cgroup as Docker shows it on cgroup v1: a tmpfs with the container's own cgroup of each
    controller (read-only unless privileged); on v2 the container's cgroup directory itself."""
    access = [] if privileged else ["ro"]
    flags = ["nosuid", "nodev", "noexec"]
    if not dirs:
        return []
    if "unified" in dirs:
        return [Mount("/sys/fs/cgroup", "bind", dirs["unified"], ["rbind", *access, *flags])]
    mounts = [Mount("/sys/fs/cgroup", "tmpfs", "tmpfs", [*flags, "mode=755"])]
    for ctl, d in sorted(dirs.items()):
        point = os.path.basename(points[ctl])
        mounts.append(Mount(f"/sys/fs/cgroup/{point}", "bind", d, ["rbind", *access, *flags]))
    return mounts


def with_cgroup(spec: ContainerSpec, inputs: SpecInputs) -> None:
    """The cgroup directories execd moves the init into (co-mounted controllers share one), and their view."""
    privileged = bool(inputs.host_config.get("Privileged"))
    dirs = inputs.cgroup.dirs
    spec.join_cgroups = list(dict.fromkeys(dirs.values()))
    spec.mounts += cgroup_mounts(dirs, inputs.cgroup.mount_points, privileged)
    if not privileged and spec.join_cgroups and spec.security is not None:
        spec.security.readonly_paths.append("/sys/fs/cgroup")
