"""/containers/{id}/pause, /unpause, /top and /stats: what freezes, lists or measures a container's processes."""
from __future__ import annotations

import asyncio
import types
from typing import TYPE_CHECKING

from pyd.daemon.api.util import LazyModule
from pyd.daemon.api.version import api_at_least

stats: types.ModuleType = LazyModule("pyd.daemon.containers.stats")   # imported by the first top/stats request, not by an idle daemon

if TYPE_CHECKING:
    from pyd.daemon.cgroups.base import Cgroups
    from pyd.daemon.containers.model import Container
    from pyd.daemon.containers.service import ContainerService
    from pyd.http.server import Request, Router

STATS_INTERVAL = 1.0     # dockerd's collector publishes once a second


def register(router: Router, svc: ContainerService, cgroups: Cgroups) -> None:
    async def pause(req, id: str) -> None:
        await svc.pause(id)

    async def unpause(req, id: str) -> None:
        await svc.unpause(id)

    async def top(req, id: str) -> dict:
        c = svc.get(id)
        result = await asyncio.to_thread(stats.top, cgroups, c, req.arg("ps_args") or "")
        svc.publish_event(c, "top")
        return result

    async def stats_(req, id: str) -> None:
        await stats_stream(req, cgroups, svc.get(id))

    router.add("POST", "/containers/{id}/pause", pause)
    router.add("POST", "/containers/{id}/unpause", unpause)
    router.add("GET", "/containers/{id}/top", top)
    router.add("GET", "/containers/{id}/stats", stats_)


async def stats_stream(req: Request, cgroups: Cgroups, c: Container) -> None:
    """dockerd's ContainerStats: one sample a second with the previous one as precpu; stream=false sends
    the second sample (so CPU% is not 0); one-shot sends the first at once; a stopped container gets one
    empty sample. The stream ends when the container stops or the client goes."""
    stream = req.arg_bool("stream", True)
    one_shot = req.arg_bool("one-shot", False) and api_at_least(req, "1.41")     # one-shot came in 1.41
    if one_shot and stream:
        from pyd.daemon.errors import BadParameter
        raise BadParameter("cannot have stream=true and one-shot=true")
    out = await req.stream(200, "application/json")
    try:
        if not c.State.Running:
            await out.write_json(stats.empty_stats(c))
            return
        pre_cpu, pre_read = stats.empty_cpu(), stats.ZERO_TIME
        first, sent = True, False
        while c.State.Running:
            sample = await asyncio.to_thread(stats.sample, cgroups, c)
            sample["precpu_stats"], sample["preread"] = pre_cpu, pre_read
            pre_cpu, pre_read = sample["cpu_stats"], sample["read"]
            if not (first and not stream and not one_shot):   # stream=false: prime precpu first
                await out.write_json(sample)
                sent = True
                if not stream:
                    return
            first = False
            await asyncio.sleep(STATS_INTERVAL)
        if not sent:      # it stopped before the primed sample: what a stopped container gets
            await out.write_json(stats.empty_stats(c))
    except ConnectionError:
        pass
    finally:
        await out.close()
