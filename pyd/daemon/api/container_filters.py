"""GET /containers/json?filters=...: dockerd's rules for each filter (values checked first, then matched)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from pyd.daemon.api.util import check_filter_keys
from pyd.daemon.containers import mounts
from pyd.daemon.containers.model import Container
from pyd.daemon.errors import BadParameter, NotFound

if TYPE_CHECKING:
    from pyd.daemon.containers.service import ContainerService
    from pyd.daemon.storage.graph import Graph

LIST_FILTERS = {"id", "name", "label", "status", "exited", "ancestor", "before", "since", "network",
                "health", "is-task", "volume", "expose", "publish"}
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
HEALTH = ("starting", "healthy", "unhealthy", "none")
GO_INT = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class ListFilters:
    """The checked filters of one list request; before/since already resolved to creation times."""
    values: dict[str, list[str]]
    publish: frozenset[str]
    expose: frozenset[str]
    before: str | None
    since: str | None
    is_task: bool | None


def parse_filters(filters: dict[str, list[str]], svc: ContainerService) -> ListFilters:
    """The 400s (and 404s) dockerd gives before listing anything."""
    check_filter_keys(filters, LIST_FILTERS)
    for value in filters.get("status") or []:
        if value not in STATUSES:
            raise BadParameter(f"Invalid filter 'status={value}'")
    for value in filters.get("health") or []:
        if value not in HEALTH:
            raise BadParameter(f"Unrecognised filter value for health: {value}")
    for value in filters.get("exited") or []:
        if not GO_INT.fullmatch(value):
            raise BadParameter(f'strconv.Atoi: parsing "{value}": invalid syntax')
    is_task = None
    if filters.get("is-task"):
        task = filters["is-task"]
        if "true" in task:
            is_task = True
        elif "false" in task:
            is_task = False
        else:
            raise BadParameter(f"Invalid filter 'is-task=[{' '.join(task)}]'")
    ports = {key: frozenset().union(*(port_set(key, v) for v in filters.get(key) or []))
             for key in ("publish", "expose")}
    before = _created(svc, filters["before"][0]) if filters.get("before") else None
    since = _created(svc, filters["since"][0]) if filters.get("since") else None
    return ListFilters(filters, ports["publish"], ports["expose"], before, since, is_task)


def _created(svc: ContainerService, ref: str) -> str:
    try:
        return svc.get(ref).Created
    except NotFound:
        raise NotFound(f"no such container {ref}") from None     # the words of dockerd's container view


def _port_number(text: str) -> int:
    if not GO_INT.fullmatch(text) or text[0] in "+-":
        raise BadParameter(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    if int(text) > 65535:
        raise BadParameter(f'strconv.ParseUint: parsing "{text}": value out of range')
    return int(text)


def port_set(key: str, value: str) -> set[str]:
    """`80`, `80/udp`, `8000-8002/tcp` as the "port/proto" keys they cover, in dockerd's words when bad."""
    if ":" in value:
        raise BadParameter(f"filter for '{key}' should not contain ':': {value}")
    port, _, proto = value.partition("/")
    proto = proto.split("/")[0] or "tcp"
    try:
        if not port:
            raise BadParameter("Empty string specified for ports.")
        start, dash, end = port.partition("-")
        lo = _port_number(start)
        hi = _port_number(end) if dash else lo
        if hi < lo:
            raise BadParameter(f"Invalid range specified for the Port: {port}")
    except BadParameter as e:
        raise BadParameter(f"error while looking up for {key} {value}: {e}") from None
    return {f"{p}/{proto}" for p in range(lo, hi + 1)}


def filter_containers(items: list[Container], flt: ListFilters, graph: Graph,
                      networks_of: Callable[[Container], dict[str, Any]],
                      ports_of: Callable[[Container], list[dict[str, Any]]]) -> list[Container]:
    def ok(c: Container) -> bool:
        for key, values in flt.values.items():
            if not values:
                continue
            if key == "id" and not any(c.ID.startswith(v) for v in values):
                return False
            if key == "name" and not any(_regexp_match(v, c.Name) or _regexp_match(v, c.Name.lstrip("/"))
                                         for v in values):
                return False
            if key == "status" and c.State.Status not in values:
                return False
            if key == "exited" and (c.State.Running or c.State.Status == "created"
                                    or c.State.ExitCode not in {int(v) for v in values}):
                return False
            if key == "label":
                labels = c.Config.get("Labels") or {}
                for v in values:
                    k, eq, val = v.partition("=")
                    if k not in labels or (eq and labels[k] != val):
                        return False
            if key == "ancestor" and not any(_is_ancestor(c, v, graph) for v in values):
                return False
            if key == "health" and ((c.State.Health or {}).get("Status") or "none") not in values:
                return False
            if key == "network" and not _on_network(networks_of(c), values):
                return False
            if key == "volume" and not _has_volume(c, values):
                return False
        if flt.before is not None and not c.Created < flt.before:
            return False
        if flt.since is not None and not c.Created > flt.since:
            return False
        if flt.is_task is True:              # no container is a swarm task here
            return False
        if (flt.publish or flt.expose) and not _port_matches(ports_of(c), flt):
            return False
        return True
    return [c for c in items if ok(c)]


def _port_matches(ports: list[dict[str, Any]], flt: ListFilters) -> bool:
    """dockerd looks at the listed Ports: publish= at the host side, expose= at the container side."""
    return any(f"{p.get('PublicPort', 0)}/{p['Type']}" in flt.publish
               or f"{p['PrivatePort']}/{p['Type']}" in flt.expose for p in ports)


def _regexp_match(pattern: str, text: str) -> bool:
    """dockerd's filters.Match: a regular expression search; one that does not compile matches nothing."""
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def _on_network(nets: dict[str, Any], values: list[str]) -> bool:
    """A network's name exactly, or a prefix of its ID."""
    return any(v in nets or any((ep or {}).get("NetworkID", "").startswith(v) for ep in nets.values())
               for v in values)


def _has_volume(c: Container, values: list[str]) -> bool:
    """A mount's destination, or its volume name (a bind's source)."""
    found = set()
    for m in mounts.inspect_mounts(c):
        found.add(m.get("Destination"))
        found.add(m.get("Name") or m.get("Source"))
    return any(v in found for v in values)


def _is_ancestor(c: Container, ref: str, graph: Graph) -> bool:
    try:
        return graph.resolve_image(ref).id == c.Image
    except Exception:
        return c.Config.get("Image") == ref
