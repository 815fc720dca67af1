"""What build_spec reads from outside: the container's configuration and the facts gathered for it
before the spec is built (the resolved user, the network sandbox, the namespaces of the containers it
joins, the host's capabilities and device nodes, its cgroup, the /dev/shm to bind). Frozen, so that the
steps can only read it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from pyd.daemon.runtime.execdriver import ContainerSpec
from pyd.daemon.spec.devices import Device, DeviceNode


@dataclass(frozen=True)
class User:
    """The process's user as the image's /etc/passwd and /etc/group resolve `-u` and --group-add."""
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    home: str = "/"


@dataclass(frozen=True)
class LogDefaults:
    """The daemon's --log-driver and --log-opt, for containers whose LogConfig leaves them out."""
    driver: str = "json-file"
    opts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HostFacts:
    kernel: str                          # uname -r, for seccomp's minKernel
    machine: str                         # uname -m, for seccomp's arches
    capabilities: tuple[str, ...] = ()   # all the daemon holds: read only for --privileged or --cap-add ALL
    devices: tuple[Device, ...] = ()     # the host's device nodes: read only for --privileged
    device_nodes: Mapping[str, DeviceNode] = field(default_factory=dict)   # HostConfig.Devices' host paths


@dataclass(frozen=True)
class CgroupPlacement:
    dirs: Mapping[str, str] = field(default_factory=dict)           # controller -> the container's cgroup
    mount_points: Mapping[str, str] = field(default_factory=dict)   # v1 controller -> its hierarchy


@dataclass(frozen=True)
class SpecInputs:
    id: str
    rootfs: str                                   # host path of the mounted root filesystem
    args: tuple[str, ...]                         # Path, then Args
    config: Mapping[str, Any]                     # Config (Hostname, Env, WorkingDir, Tty, OpenStdin...)
    host_config: Mapping[str, Any]
    host: HostFacts
    state_dir: str                                # <exec-root>/<id>
    log_path: str                                 # the json-file log execd writes
    execd_path: str                               # bound in as the --init process
    user: User = User()
    log: LogDefaults = LogDefaults()
    mount_points: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)   # destination -> MountPoint
    etc_files: Mapping[str, str] = field(default_factory=dict)   # "hostname", "hosts", "resolv.conf" -> host file
    network_join: Mapping[str, str] = field(default_factory=dict)      # {"net": path} of the sandbox
    peer_namespaces: Mapping[str, str] = field(default_factory=dict)   # kind -> path, for container:<id> modes
    cgroup: CgroupPlacement = CgroupPlacement()
    shm_source: str | None = None                 # host directory bound at /dev/shm; None: a private tmpfs
    linked_env: tuple[str, ...] = ()              # the legacy links' ALIAS_* variables


# A step of build_spec: fills its part of the spec from the inputs, nothing else.
Step = Callable[[ContainerSpec, SpecInputs], None]
