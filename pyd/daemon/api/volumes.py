"""/volumes/...: create, list, inspect, remove, prune (the local driver in pyd/volume.py)."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pyd.daemon.api.util import check_filter_keys, filters_arg
from pyd.daemon.api.version import api_at_least
from pyd.daemon.errors import BadParameter
from pyd.http.server import Response

if TYPE_CHECKING:
    from pyd.daemon.events import EventBus
    from pyd.daemon.volumes.store import Volume, VolumeStore
    from pyd.http.server import Router

LIST_FILTERS = {"dangling", "name", "label", "driver"}
PRUNE_FILTERS = {"label", "label!", "all"}


def _bool_filter(key: str, values: list[str]) -> bool | None:
    if not values:
        return None
    value = values[-1].lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise BadParameter(f"invalid filter '{key}={values[-1]}'")


def _labels_match(v: "Volume", exprs: list[str]) -> bool:
    for expr in exprs:
        key, eq, value = expr.partition("=")
        if key not in v.labels or (eq and v.labels[key] != value):
            return False
    return True


def matches(v: "Volume", filters: dict[str, list[str]], in_use: bool) -> bool:
    dangling = _bool_filter("dangling", filters.get("dangling", []))
    if dangling is not None and dangling == in_use:
        return False
    if filters.get("name") and not any(n in v.name for n in filters["name"]):
        return False
    if filters.get("driver") and v.driver not in filters["driver"]:
        return False
    if filters.get("label") and not _labels_match(v, filters["label"]):
        return False
    if filters.get("label!") and any(_labels_match(v, [e]) for e in filters["label!"]):
        return False
    return True


def register(router: Router, store: VolumeStore, events: EventBus) -> None:
    def publish(action: str, v: "Volume") -> None:
        events.publish("volume", action, v.name, {"driver": v.driver})

    async def create(req) -> Response:
        body = await req.json() or {}     # its types checked at the edge (validate.BodyCheckingRouter)
        existed = bool(body.get("Name")) and store.find(body["Name"]) is not None
        v = await asyncio.to_thread(store.create, body.get("Name") or None, body.get("Driver") or None,
                                    body.get("Labels"), body.get("DriverOpts"))
        if not existed:
            publish("create", v)
        return Response(201, v.to_api())

    async def list_(req) -> dict:
        filters = filters_arg(req)
        check_filter_keys(filters, LIST_FILTERS)
        out = [v.to_api() for v in store.list() if matches(v, filters, bool(store.users(v.name)))]
        return {"Volumes": out, "Warnings": None}

    async def inspect(req, name: str) -> dict:
        return store.get(name).to_api()

    async def remove(req, name: str) -> None:
        v = store.find(name)
        await asyncio.to_thread(store.remove, name, req.arg_bool("force"))
        if v is not None:
            publish("destroy", v)

    async def prune(req) -> dict:
        filters = filters_arg(req)
        check_filter_keys(filters, PRUNE_FILTERS)
        prune_all = _bool_filter("all", filters.pop("all", []))
        if not api_at_least(req, "1.42"):
            prune_all = True      # before 1.42 a prune took named volumes too
        deleted, reclaimed = [], 0
        for v in store.list():
            if store.users(v.name) or not matches(v, filters, False):
                continue
            if not prune_all and not v.anonymous:
                continue      # Docker 23+: named volumes only with all=true
            size = await asyncio.to_thread(store.size, v.name)
            try:
                await asyncio.to_thread(store.remove, v.name)
            except Exception:   # in use meanwhile: skipped, as dockerd does
                continue
            deleted.append(v.name)
            reclaimed += size
            publish("destroy", v)
        events.publish("volume", "prune", "", {"reclaimed": str(reclaimed)})
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    router.add("POST", "/volumes/create", create)
    router.add("GET", "/volumes", list_)
    router.add("POST", "/volumes/prune", prune)
    router.add("GET", "/volumes/{name}", inspect)
    router.add("DELETE", "/volumes/{name}", remove)
