"""Devices: the requested host device nodes and the host's whole /dev for --privileged."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Any, Mapping

from pyd.daemon.errors import BadParameter
from pyd.formats.devices import valid_permissions

@dataclass(frozen=True)
class Device:
    host_path: str
    container_path: str
    permissions: str
    kind: str        # "c" or "b"
    major: int
    minor: int
    mode: int


@dataclass(frozen=True)
class DeviceNode:
    """What stat(2) said of a requested device's host path: its mode and rdev, or the error."""
    mode: int = 0
    rdev: int = 0
    error: str | None = None


def stat_devices(hc: Mapping[str, Any]) -> dict[str, DeviceNode]:
    """stat of every HostConfig.Devices PathOnHost (the facts devices_from checks)."""
    nodes = {}
    for d in hc.get("Devices") or []:
        host = d.get("PathOnHost") or ""
        try:
            st = os.stat(host)
        except OSError as e:
            nodes[host] = DeviceNode(error=e.strerror.lower() if e.strerror else str(e))
        else:
            nodes[host] = DeviceNode(st.st_mode, st.st_rdev)
    return nodes


def devices_from(hc: Mapping[str, Any], nodes: Mapping[str, DeviceNode]) -> list[Device]:
    """HostConfig.Devices [{"PathOnHost","PathInContainer","CgroupPermissions"}] checked against the
    host's nodes."""
    out = []
    for d in hc.get("Devices") or []:
        host = d.get("PathOnHost") or ""
        inside = d.get("PathInContainer") or host
        perms = d.get("CgroupPermissions") or "rwm"
        if not valid_permissions(perms):
            raise BadParameter(f"invalid device cgroup permissions: {perms}")
        node = nodes.get(host) or DeviceNode(error="no such file or directory")
        if node.error is not None:
            raise BadParameter(f'error gathering device information while adding custom device "{host}": '
                               f"{node.error}")
        if stat.S_ISCHR(node.mode):
            kind = "c"
        elif stat.S_ISBLK(node.mode):
            kind = "b"
        else:
            raise BadParameter(f'error gathering device information while adding custom device "{host}": '
                               "not a device node")
        out.append(Device(host, inside, perms, kind, os.major(node.rdev), os.minor(node.rdev),
                          stat.S_IMODE(node.mode)))
    return out


def resolve_devices(hc: Mapping[str, Any]) -> list[Device]:
    """The requested devices as they are on the host now."""
    return devices_from(hc, stat_devices(hc))


# runc's HostDevices skips these under /dev: the container has its own pts, shm, mqueue and fd
HOST_DEVICE_SKIP_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}
HOST_DEVICE_SKIP = {"/dev/console", "/dev/ptmx"}   # /dev/ptmx stays the link to the container's devpts


def host_devices(root: str = "/dev") -> list[Device]:
    """Every device node of the host's /dev (what --privileged gets, as in Docker)."""
    out = []
    for top, dirs, files in os.walk(root):
        if top == root:
            dirs[:] = [d for d in dirs if d not in HOST_DEVICE_SKIP_DIRS]
        for name in sorted(files):
            path = os.path.join(top, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue   # gone meanwhile
            if path in HOST_DEVICE_SKIP or "\n" in path:
                continue
            if stat.S_ISCHR(st.st_mode):
                kind = "c"
            elif stat.S_ISBLK(st.st_mode):
                kind = "b"
            else:
                continue
            out.append(Device(path, path, "rwm", kind, os.major(st.st_rdev), os.minor(st.st_rdev),
                              stat.S_IMODE(st.st_mode)))
    return out
