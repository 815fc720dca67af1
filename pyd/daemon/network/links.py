"""Legacy links (`--link NAME:ALIAS`): on the default bridge, the linked ("child") container's address and
exposed ports as ALIAS_* variables and an /etc/hosts line in the parent; on a user network, a name only
the linking container resolves (EndpointSettings.Links, served by the embedded DNS).

HostConfig.Links is kept as dockerd keeps it: "/CHILD:/PARENT/ALIAS", the child by name.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Protocol

from pyd.daemon.errors import BadParameter, NotFound, ServerError

if TYPE_CHECKING:
    from pyd.daemon.containers.model import Container


class Containers(Protocol):
    def get(self, ref: str) -> "Container": ...


def split(text: str) -> tuple[str, str]:
    """'name:alias' or 'name' -> (name, alias), without leading slashes."""
    name, _, alias = text.partition(":")
    name = name.strip("/")
    return name, (alias.rsplit("/", 1)[-1] if alias else name)


def normalize(links: Iterable[str], parent: "Container", containers: Containers) -> list[str]:
    """HostConfig.Links at create: each child must exist (dockerd's message when it does not)."""
    out = []
    for text in links:
        name, alias = split(str(text))
        if not name:
            raise BadParameter(f"invalid link {text!r}")
        try:
            child = containers.get(name)
        except NotFound as e:
            raise BadParameter(f"could not get container for {name}: {e.message}") from None
        if child.ID == parent.ID:
            raise BadParameter("cannot link to itself")
        out.append(f"{child.Name}:{parent.Name}/{alias}")
    return out


def children(parent: "Container", containers: Containers) -> list[tuple[str, "Container | None"]]:
    """(link name "/PARENT/ALIAS", the child or None when it is gone) for each of parent's links."""
    out = []
    for text in parent.HostConfig.get("Links") or []:
        child_name, _, link_name = str(text).partition(":")
        if not link_name.startswith(parent.Name + "/"):   # not registered (kept as given off the bridge)
            continue
        out.append((link_name, _find(containers, child_name)))
    return out


def _find(containers: Containers, name: str) -> "Container | None":
    try:
        return containers.get(name)
    except NotFound:
        return None


def names_by_child(parents: Iterable["Container"], containers: Containers) -> dict[str, list[str]]:
    """child ID -> its link names "/PARENT/ALIAS", as GET /containers/json lists them in Names."""
    out: dict[str, list[str]] = {}
    for parent in parents:
        for link_name, child in children(parent, containers):
            if child is not None:
                out.setdefault(child.ID, []).append(link_name)
    return out


def bridge_ip(c: "Container") -> str:
    return ((c.NetworkSettings.get("Networks") or {}).get("bridge") or {}).get("IPAddress") or ""


def running_children(parent: "Container", containers: Containers) -> list[tuple[str, "Container"]]:
    """The children at the parent's start: each must run on the default bridge (dockerd's errors; a removed
    child counts as not running, as in dockerd)."""
    out = []
    for text in parent.HostConfig.get("Links") or []:
        child_name, _, link_name = str(text).partition(":")
        if not link_name.startswith(parent.Name + "/"):
            continue
        child = _find(containers, child_name)
        if child is None or not child.State.Running:
            shown = child.Name if child else child_name
            raise ServerError(f"Cannot link to a non running container: {shown} AS {link_name}")
        if not bridge_ip(child):
            raise ServerError(f"Cannot link to {child.Name}, as it does not belong to the default network")
        out.append((link_name, child))
    return out


def hosts_line(link_name: str, child: "Container") -> tuple[str, str]:
    """(IP, names) of the child: the alias, its hostname, and its name when that differs from the alias."""
    alias = link_name.rsplit("/", 1)[-1]
    names = [alias, child.Config.get("Hostname") or child.ID[:12]]
    if alias != child.Name.lstrip("/"):
        names.append(child.Name.lstrip("/"))
    return bridge_ip(child), " ".join(names)


def _port_key(port: tuple[int, str]) -> tuple[int, str, int]:
    """TCP first, then by protocol and number (dockerd's withTCPPriority)."""
    number, proto = port
    return (0 if proto == "tcp" else 1, proto, number)


def env_vars(link_name: str, child_ip: str, child_env: Iterable[str], exposed: Iterable[str]) -> list[str]:
    """dockerd's Link.ToEnv: ALIAS_PORT*, ALIAS_NAME and ALIAS_ENV_* for one link."""
    alias = link_name.rsplit("/", 1)[-1].upper().replace("-", "_")
    ports = []
    for key in exposed:
        number, _, proto = str(key).partition("/")
        try:
            ports.append((int(number), proto or "tcp"))
        except ValueError:
            continue
    ports.sort(key=_port_key)
    env: list[str] = []
    start = end = None
    for i, (number, proto) in enumerate(ports):
        if i == 0:
            start = end = (number, proto)
            env.append(f"{alias}_PORT={proto}://{child_ip}:{number}")
        prefix = f"{alias}_PORT_{number}_{proto.upper()}"
        env += [f"{prefix}={proto}://{child_ip}:{number}", f"{prefix}_ADDR={child_ip}",
                f"{prefix}_PORT={number}", f"{prefix}_PROTO={proto}"]
        assert start is not None and end is not None
        if number == end[0] + 1 and proto == end[1]:
            end = (number, proto)
            if i < len(ports) - 1:
                continue
        if end != start:
            prefix = f"{alias}_PORT_{start[0]}_{start[1].upper()}"
            env += [f"{prefix}_START={start[1]}://{child_ip}:{start[0]}", f"{prefix}_PORT_START={start[0]}",
                    f"{prefix}_END={end[1]}://{child_ip}:{end[0]}", f"{prefix}_PORT_END={end[0]}"]
        start = end = (number, proto)
    env.append(f"{alias}_NAME={link_name}")
    for item in child_env:
        key, eq, value = str(item).partition("=")
        if eq and key not in ("HOME", "PATH"):
            env.append(f"{alias}_ENV_{key}={value}")
    return env


def linked_env(parent: "Container", containers: Containers) -> list[str]:
    """The variables of all of parent's links to running children (none off the default bridge)."""
    if not bridge_ip(parent):
        return []
    env: list[str] = []
    for link_name, child in children(parent, containers):
        if child is not None and child.State.Running and bridge_ip(child):
            env += env_vars(link_name, bridge_ip(child), child.Config.get("Env") or [],
                            child.Config.get("ExposedPorts") or {})
    return env


def endpoint_aliases(links: Iterable[str] | None) -> dict[str, str]:
    """EndpointSettings.Links on a user network: alias (lower case) -> the container name it stands for."""
    out = {}
    for text in links or []:
        name, alias = split(str(text))
        if name:
            out[alias.lower()] = name.lower()
    return out


def renamed(containers: Iterable["Container"], old: str, new: str) -> list["Container"]:
    """After a rename from `old` to `new` ("/name"): the links it is a child or a parent in, renamed as
    well; returns the containers whose HostConfig.Links changed."""
    changed = []
    for c in containers:
        links = c.HostConfig.get("Links") or []
        out = []
        for text in links:
            child, sep, link = str(text).partition(":")
            if child == old:
                child = new
            if link.startswith(old + "/"):
                link = new + link[len(old):]
            out.append(child + sep + link)
        if out != list(links):
            c.HostConfig["Links"] = out
            changed.append(c)
    return changed


def remove(parent: "Container", alias: str) -> str:
    """Drop the link ALIAS from parent's HostConfig.Links; the removed entry (NotFound when none)."""
    links: list[Any] = list(parent.HostConfig.get("Links") or [])
    wanted = f"{parent.Name}/{alias}"
    for text in links:
        if str(text).partition(":")[2] == wanted:
            links.remove(text)
            parent.HostConfig["Links"] = links or None
            return str(text)
    raise NotFound(f"No such container: {parent.Name.lstrip('/')}/{alias}")
