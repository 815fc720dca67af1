"""The inputs of build_spec, gathered for a container before its spec is built: everything the pure
steps read that comes from files, the kernel or other containers (the image's /etc/passwd, the network
sandbox, the namespaces of the containers it joins, the host's capabilities and device nodes, the cgroup,
the /dev/shm to bind). The errors are the start's: in the order the steps would meet them.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Protocol

from pyd.daemon.cgroups.base import Cgroups
from pyd.daemon.containers import etcfiles, shm
from pyd.daemon.containers.model import Container
from pyd.daemon.runtime.execdriver import ExecError
from pyd.daemon.spec.devices import host_devices, stat_devices
from pyd.daemon.spec.inputs import CgroupPlacement, HostFacts, LogDefaults, SpecInputs, User
from pyd.daemon.spec.mounts import ETC_FILES
from pyd.daemon.spec.namespaces import NAMESPACE_MODES
from pyd.daemon.spec.security import all_caps
from pyd.formats.platforms import host_machine


class NetworkFiles(Protocol):
    """What the network controller knows of a started container."""
    def join_for(self, c: Container) -> dict[str, str]: ...
    def etc_file(self, c: Container, name: str) -> str: ...
    def linked_env(self, c: Container) -> list[str]: ...


@dataclass(frozen=True)
class SpecSources:
    """The daemon's parts the inputs come from."""
    exec_root: str
    execd_path: str
    log: LogDefaults
    containers: shm.ContainerLookup
    cgroups: Cgroups
    networks: NetworkFiles | None


def gather(c: Container, rootfs: str, src: SpecSources) -> tuple[SpecInputs, shm.ShmPlan]:
    """The inputs, and the /dev/shm they bind: shm.prepare(plan) mounts it once the spec is built."""
    hc = c.HostConfig
    found = etcfiles.lookup_user(rootfs, c.Config.get("User") or "", hc.get("GroupAdd"))
    join = src.networks.join_for(c) if src.networks else {}   # the sandbox made by the network controller
    peers = peer_namespaces(hc, src.containers)
    ipc = shm.plan(c, src.containers)
    inputs = SpecInputs(
        id=c.ID, rootfs=rootfs, args=(c.Path, *c.Args),
        config=MappingProxyType(dict(c.Config)), host_config=MappingProxyType(dict(hc)),
        host=host_facts(hc),
        state_dir=os.path.join(src.exec_root, c.ID), log_path=c.log_path, execd_path=src.execd_path,
        user=User(found.uid, found.gid, tuple(found.groups), found.home),
        log=src.log,
        mount_points=MappingProxyType(dict(c.MountPoints or {})),
        etc_files={n: src.networks.etc_file(c, n) if src.networks else c.path(n) for n in ETC_FILES},
        network_join=join, peer_namespaces=peers,
        cgroup=CgroupPlacement(src.cgroups.dirs(c.ID, hc), src.cgroups.mount_points),
        shm_source=ipc.source,
        linked_env=tuple(src.networks.linked_env(c)) if src.networks else (),
    )
    return inputs, ipc


def peer_namespaces(hc: Mapping[str, Any], containers: shm.ContainerLookup) -> dict[str, str]:
    """kind -> /proc/<pid>/ns/<kind> of the running container a container:<id> mode names."""
    out = {}
    for kind, key, word in NAMESPACE_MODES:
        mode = hc.get(key) or ""
        if not mode.startswith("container:"):
            continue
        ref = mode.split(":", 1)[1]
        try:
            other = containers.get(ref)
        except Exception:
            raise ExecError(f"No such container: {ref}", 125, "namespaces") from None
        if not other.State.Running or not other.State.Pid:
            raise ExecError(f"cannot join {word} of a non running container: {ref}", 125, "namespaces")
        out[kind] = f"/proc/{other.State.Pid}/ns/{kind}"
    return out


def host_facts(hc: Mapping[str, Any]) -> HostFacts:
    """What the security steps read of the host; /proc and /dev only when the container asks for all."""
    privileged = bool(hc.get("Privileged"))
    wants_all = privileged or any(str(a).strip().upper() == "ALL" for a in hc.get("CapAdd") or [])
    return HostFacts(kernel=platform.release(), machine=host_machine(),
                     capabilities=tuple(all_caps()) if wants_all else (),
                     devices=tuple(host_devices()) if privileged else (),
                     device_nodes=stat_devices(hc))
