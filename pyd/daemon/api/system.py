"""/_ping, /version, /info, /events."""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from pyd import API_VERSION
from pyd.daemon.api import compat
from pyd.daemon.api.util import filters_arg, parse_time_arg
from pyd.daemon.api.version import api_version
from pyd.daemon.events import matches
from pyd.http.server import Response

if TYPE_CHECKING:
    from pyd.daemon.events import EventBus
    from pyd.daemon.sysinfo import SystemInfo
    from pyd.http.server import Router

PING_HEADERS = {"Api-Version": API_VERSION, "Builder-Version": "2", "Swarm": "inactive",
                "Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}


def register(router: Router, system: SystemInfo, bus: EventBus) -> None:
    async def ping(req) -> Response:
        return Response(200, b"OK", content_type="text/plain; charset=utf-8", headers=PING_HEADERS)

    async def version(req) -> dict:
        return system.version()

    async def info(req) -> dict:
        return compat.info(api_version(req), system.info())

    async def events(req) -> None:
        filters = filters_arg(req)
        since = parse_time_arg(req.arg("since"), "since")
        until = parse_time_arg(req.arg("until"), "until")
        queue = bus.subscribe()
        try:
            out = await req.stream(200, "application/json")
            replayed = 0  # the queue also holds events the history replay already sent
            if since:
                for event in bus.since(int(since * 1e9)):
                    replayed = event["timeNano"]
                    if (not until or event["timeNano"] <= until * 1e9) and matches(event, filters):
                        await out.write_json(event)
            while True:
                timeout = None
                if until:
                    timeout = until - time.time()
                    if timeout <= 0:
                        break
                try:
                    event = await asyncio.wait_for(queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                if event["timeNano"] <= replayed or (since and event["timeNano"] < since * 1e9):
                    continue
                if matches(event, filters):
                    await out.write_json(event)
            await out.close()
        except ConnectionError:
            pass
        finally:
            bus.unsubscribe(queue)

    router.add("GET", "/_ping", ping)
    router.add("GET", "/version", version)
    router.add("GET", "/info", info)
    router.add("GET", "/events", events)
