"""What execd mounts in the container besides its root: the shared /dev/shm, the /etc files, volumes
and binds, and --tmpfs. (The --init binary is process.py's, the cgroup tree resources.py's.)"""
from __future__ import annotations

from typing import Any, Mapping

from pyd.daemon.containers.mounts import DEFAULT_PROPAGATION, TMPFS_DEFAULTS
from pyd.daemon.runtime.execdriver import ContainerSpec, Mount
from pyd.daemon.spec.inputs import SpecInputs

ETC_FILES = ("hostname", "hosts", "resolv.conf")


def volume_mounts(points: Mapping[str, Mapping[str, Any]]) -> list[Mount]:
    """The MountPoints (volumes, binds, --mount tmpfs): parents before children (by path depth), as
    dockerd sorts them."""
    items = list(points.values())     # HostConfig.Tmpfs: with_tmpfs mounts those
    items.sort(key=lambda mp: len([p for p in mp["Destination"].split("/") if p]))
    out = []
    for mp in items:
        ro = [] if mp.get("RW", True) else ["ro"]
        if mp["Type"] == "tmpfs":
            out.append(Mount(destination=mp["Destination"], type="tmpfs", source="tmpfs",
                             options=list(mp.get("_Tmpfs") or TMPFS_DEFAULTS) + ro))
            continue
        bind = "bind" if mp.get("_NonRecursive") else "rbind"
        out.append(Mount(destination=mp["Destination"], type="bind", source=mp.get("_Bound") or mp["Source"],
                         options=[bind, mp.get("Propagation") or DEFAULT_PROPAGATION, *ro]))
    return out


def etc_overridden(inputs: SpecInputs, path: str) -> bool:
    """A user mount at /etc/hosts (etc.) replaces the file Docker would bind there."""
    return path in inputs.mount_points or path in (inputs.host_config.get("Tmpfs") or {})


def with_shm(spec: ContainerSpec, inputs: SpecInputs) -> None:
    """--ipc host|shareable|container:X: bind the shared /dev/shm (the private one is execd's own)."""
    if inputs.shm_source is not None:
        spec.mounts.append(Mount(destination="/dev/shm", type="bind", source=inputs.shm_source,
                                 options=["rbind", "rprivate"]))


def with_etc_files(spec: ContainerSpec, inputs: SpecInputs) -> None:
    """Docker's hosts, hostname and resolv.conf, over whatever user mount holds /etc (dockerd sorts them
    with the user's mounts by depth: they come after a mount on /etc or /)."""
    spec.mounts += [Mount(destination=f"/etc/{n}", type="bind", options=["rbind"], source=inputs.etc_files[n])
                    for n in ETC_FILES if not etc_overridden(inputs, f"/etc/{n}")]


def with_mounts(spec: ContainerSpec, inputs: SpecInputs) -> None:
    spec.mounts += volume_mounts(inputs.mount_points)


def with_tmpfs(spec: ContainerSpec, inputs: SpecInputs) -> None:
    """HostConfig.Tmpfs (--tmpfs), in path order."""
    for dest, options in sorted((inputs.host_config.get("Tmpfs") or {}).items()):
        extra = [o for o in (options or "").split(",") if o]
        spec.mounts.append(Mount(destination=dest, type="tmpfs", source="tmpfs",
                                 options=["nosuid", "nodev", "noexec", *extra]))


def with_rootfs(spec: ContainerSpec, inputs: SpecInputs) -> None:
    spec.readonly_rootfs = bool(inputs.host_config.get("ReadonlyRootfs"))
