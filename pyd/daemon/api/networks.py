"""/networks/...: list, inspect, create, remove, connect, disconnect, prune."""
from __future__ import annotations

from typing import TYPE_CHECKING

from pyd.daemon.api.util import check_filter_keys, filters_arg, until_filter
from pyd.daemon.errors import BadParameter
from pyd.daemon.network.controller import PREDEFINED, label_match
from pyd.http.server import Response

if TYPE_CHECKING:
    from pyd.daemon.network.controller import Network, NetworkController
    from pyd.http.server import Router

LIST_FILTERS = {"name", "id", "label", "driver", "type", "scope", "dangling"}


def _matches(net: Network, filters: dict[str, list[str]], in_use: bool) -> bool:
    checks = {
        "name": lambda v: v in net.Name,
        "id": lambda v: net.Id.startswith(v),
        "label": lambda v: label_match(net.Labels, v),
        "driver": lambda v: v == net.Driver,
        "scope": lambda v: v == "local",
        "type": lambda v: v == ("builtin" if net.Name in PREDEFINED else "custom"),
        "dangling": lambda v: (v in ("true", "1")) == (not in_use and net.Name not in PREDEFINED),
    }
    for key, values in filters.items():
        if key == "type" and any(v not in ("builtin", "custom") for v in values):
            raise BadParameter(f"invalid filter: 'type'='{values[0]}'")
        if key == "label":
            if not all(checks[key](v) for v in values):
                return False
        elif not any(checks[key](v) for v in values):
            return False
    return True


def register(router: Router, networks: NetworkController) -> None:
    async def list_(req) -> list:
        filters = filters_arg(req)
        check_filter_keys(filters, LIST_FILTERS)
        out = []
        for net in sorted(networks.all(), key=lambda n: n.Created):
            if _matches(net, filters, bool(net.endpoints) or networks.referenced(net)):
                out.append(net.inspect())
        return out

    async def inspect(req, id: str) -> dict:
        return networks.get(id).inspect()

    async def create(req) -> Response:
        body = await req.json()
        if not isinstance(body, dict):
            raise BadParameter("invalid JSON body")
        return Response(201, await networks.create(body))

    async def remove(req, id: str) -> None:
        await networks.remove(id)

    async def connect(req, id: str) -> None:
        body = await req.json() or {}
        if not body.get("Container"):
            raise BadParameter("Container is required")
        await networks.connect(id, body["Container"], body.get("EndpointConfig") or {})

    async def disconnect(req, id: str) -> None:
        body = await req.json() or {}
        if not body.get("Container"):
            raise BadParameter("Container is required")
        await networks.disconnect(id, body["Container"], bool(body.get("Force")))

    async def prune(req) -> dict:
        filters = filters_arg(req)
        check_filter_keys(filters, {"label", "until"})
        until = [until_filter(v) for v in filters.get("until") or []]
        gone = await networks.prune(filters.get("label"), min(until) if until else None)
        return {"NetworksDeleted": gone or None}

    router.add("GET", "/networks", list_)
    router.add("GET", "/networks/{id}", inspect)
    router.add("POST", "/networks/create", create)
    router.add("POST", "/networks/prune", prune)
    router.add("DELETE", "/networks/{id}", remove)
    router.add("POST", "/networks/{id}/connect", connect)
    router.add("POST", "/networks/{id}/disconnect", disconnect)
