"""The namespaces a container gets: its own, or the host's (--network/--pid/--ipc/--uts host), or another
container's or the network sandbox's (joined by path)."""
from __future__ import annotations

from typing import Any, Mapping

from pyd.daemon.runtime.execdriver import ContainerSpec
from pyd.daemon.spec.inputs import SpecInputs

# (namespace, HostConfig key, the word in Docker's messages)
NAMESPACE_MODES = (("pid", "PidMode", "PID"), ("ipc", "IpcMode", "IPC"), ("uts", "UTSMode", "UTS"))


def namespaces_for(hc: Mapping[str, Any]) -> list[str]:
    ns = ["mnt", "pid", "uts", "ipc"]
    if hc.get("NetworkMode") != "host":
        ns.append("net")
    if hc.get("CgroupnsMode") == "private":
        ns.append("cgroup")
    return ns


def with_namespaces(spec: ContainerSpec, inputs: SpecInputs) -> None:
    hc = inputs.host_config
    join = dict(inputs.network_join)
    own = [n for n in namespaces_for(hc) if n not in join]
    for kind, key, _ in NAMESPACE_MODES:
        mode = hc.get(key) or ""
        if kind in own and (mode == "host" or mode.startswith("container:")):
            own.remove(kind)
        if mode.startswith("container:"):
            join[kind] = inputs.peer_namespaces[kind]
    spec.namespaces = own
    spec.join_namespaces = join
