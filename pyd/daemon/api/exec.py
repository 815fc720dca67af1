"""/containers/{id}/exec and /exec/...: create, start (hijacked or detached), inspect, resize."""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from pyd.daemon.containers.attach import ExecAttachment
from pyd.daemon.errors import BadParameter, Conflict
from pyd.http.server import Response
from pyd.daemon.api.hijack import hijack
from pyd.daemon.api import compat
from pyd.daemon.api.version import api_at_least, api_version

if TYPE_CHECKING:
    from pyd.daemon.containers.execs import ExecInstance, ExecService
    from pyd.daemon.containers.store import ContainerStore
    from pyd.http.server import Request, Router

log = logging.getLogger("pyd")

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def register(router: Router, execs: ExecService) -> None:
    async def create(req, id: str) -> Response:
        body = await req.json()
        if isinstance(body, dict):
            body = compat.exec_body(api_version(req), body)
        return Response(201, {"Id": execs.create(id, body)})

    async def start(req, id: str) -> Any:
        body = await req.json() or {}
        if not isinstance(body, dict):
            raise BadParameter("invalid exec start options")
        inst = execs.get(id)
        if body.get("Detach"):
            await execs.start(inst, with_stdin=False)
            return Response(200, b"", content_type="application/json")
        from pyd.daemon.spec.process import console_size
        size = console_size(compat.exec_body(api_version(req), body).get("ConsoleSize"))
        if size and inst.config.tty and not inst.config.console_size:
            inst.config.console_size = size
        await start_attached(req, execs, inst, multiplexed=not body.get("Tty"))
        return None

    async def inspect(req, id: str) -> dict:
        return execs.get(id).inspect()

    async def resize(req, id: str) -> None:
        inst = execs.get(id)
        height, width = resize_args(req)
        execs.resize(inst, height, width)
        return Response(200, b"", content_type="text/plain")

    router.add("POST", "/containers/{id}/exec", create)
    router.add("POST", "/exec/{id}/start", start)
    router.add("GET", "/exec/{id}/json", inspect)
    router.add("POST", "/exec/{id}/resize", resize)


def resize_args(req: Request) -> tuple[int, int]:
    """h and w of a resize: non-negative integers (Docker: 400 on junk)."""
    values = []
    for name in ("h", "w"):
        raw = req.arg(name) or "0"
        if not raw.isdigit():
            raise BadParameter(f'strconv.Atoi: parsing "{raw}": invalid syntax')
        values.append(min(int(raw), 65535))
    return values[0], values[1]


async def start_attached(req: Request, execs: ExecService, inst: ExecInstance, multiplexed: bool) -> None:
    """Hijack, then the exec runs attached to the connection. dockerd frames the output by the start
    request's Tty (docker-py sends false unless told), whatever the exec was created with; the frames
    are labelled multiplexed since 1.42, raw before."""
    attachment = ExecAttachment(execs, inst, multiplexed)
    try:
        labelled = multiplexed and api_at_least(req, "1.42")
        reader, writer = await hijack(req, MULTIPLEXED if labelled else RAW)
        await attachment.run(reader, writer)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        attachment.close()


async def resize_container(req: Request, containers: ContainerStore, id: str) -> Response:
    """POST /containers/{id}/resize: the pty of a running container started with -t."""
    c = containers.get(id)
    height, width = resize_args(req)
    if not c.State.Running or c.execd is None:
        raise Conflict(f"container {c.ID} is not running")
    c.execd.resize(height, width)
    return Response(200, b"", content_type="text/plain")
