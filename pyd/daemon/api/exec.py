"""/containers/{id}/exec and /exec/...: create, start (hijacked or detached), inspect, resize."""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from pyd.daemon.errors import BadParameter
from pyd.daemon.api.hijack import hijack
from pyd.formats.stdcopy import stdcopy_frame
from pyd.http.server import Response

if TYPE_CHECKING:
    from pyd.daemon.main import Daemon
    from pyd.daemon.containers.execs import ExecInstance, ExecService

log = logging.getLogger("pyd")

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def register(router: Any, daemon: "Daemon") -> None:
    def execs() -> "ExecService":
        return daemon.containers.execs

    async def create(req, id: str) -> Response:
        body = await req.json()
        return Response(201, {"Id": execs().create(id, body)})

    async def start(req, id: str) -> Any:
        body = await req.json() or {}
        if not isinstance(body, dict):
            raise BadParameter("invalid exec start options")
        inst = execs().get(id)
        if body.get("Detach"):
            await execs().start(inst, with_stdin=False)
            return Response(200, b"", content_type="application/json")
        from pyd.daemon.spec.build import console_size
        size = console_size(body.get("ConsoleSize"))
        if size and inst.config.tty and not inst.config.console_size:
            inst.config.console_size = size
        await start_attached(req, execs(), inst)
        return None

    async def inspect(req, id: str) -> dict:
        return execs().get(id).inspect()

    async def resize(req, id: str) -> None:
        inst = execs().get(id)
        height, width = resize_args(req)
        execs().resize(inst, height, width)
        return Response(200, b"", content_type="text/plain")

    router.add("POST", "/containers/{id}/exec", create)
    router.add("POST", "/exec/{id}/start", start)
    router.add("GET", "/exec/{id}/json", inspect)
    router.add("POST", "/exec/{id}/resize", resize)


def resize_args(req: Any) -> tuple[int, int]:
    """h and w of a resize: non-negative integers (Docker: 400 on junk)."""
    values = []
    for name in ("h", "w"):
        raw = req.arg(name) or "0"
        if not raw.isdigit():
            raise BadParameter(f'strconv.Atoi: parsing "{raw}": invalid syntax')
        values.append(min(int(raw), 65535))
    return values[0], values[1]


async def start_attached(req: Any, svc: "ExecService", inst: "ExecInstance") -> None:
    """Hijack, start, copy output (stdcopy frames without a tty) until the process exits."""
    from pyd.daemon.runtime.execdriver import ExecError
    from pyd.daemon.containers.execs import DetachScanner, detach_keys_arg

    cfg = inst.config
    multiplexed = not cfg.tty
    keys = detach_keys_arg(cfg.detach_keys)
    queue: asyncio.Queue = asyncio.Queue()
    inst.subscribers.add(queue)
    pump = None
    try:
        reader, writer = await hijack(req, RAW if cfg.tty else MULTIPLEXED)
        try:
            await svc.start(inst, with_stdin=cfg.attach_stdin)
        except ExecError as e:
            # dockerd writes the failure into the stream; the client reads the exit code from inspect
            text = f"OCI runtime exec failed: exec failed: unable to start container process: {e.message}: unknown\r\n"
            writer.write(stdcopy_frame(1, text.encode()) if multiplexed else text.encode())
            await writer.drain()
            return
        if cfg.attach_stdin:
            pump = asyncio.ensure_future(_pump_stdin(reader, inst, DetachScanner(keys) if cfg.tty else None))
        wants = {1: cfg.attach_stdout, 2: cfg.attach_stderr}
        while True:
            getter = asyncio.ensure_future(queue.get())
            waiters = {getter} | ({pump} if pump is not None else set())
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                if pump.result() == "detached":
                    return
                pump = None
                continue
            item = getter.result()
            if item is None:
                break
            stream_id, data = item
            if wants.get(stream_id):
                writer.write(stdcopy_frame(stream_id, data) if multiplexed else data)
                await writer.drain()
        await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        inst.subscribers.discard(queue)
        if pump is not None:
            pump.cancel()


async def _pump_stdin(reader: Any, inst: "ExecInstance", scanner: Any) -> str:
    """Client stdin → the exec's stdin; EOF closes it. "detached" when the detach keys were typed."""
    while True:
        data = await reader.read(1 << 16)
        execd = inst.execd
        if execd is None:
            return "gone"
        if not data:
            execd.close_stdin()
            return "eof"
        if scanner is not None:
            data, detached = scanner.feed(data)
            if data:
                execd.write_stdin(data)
            if detached:
                return "detached"
            continue
        execd.write_stdin(data)


async def resize_container(req: Any, svc: Any, id: str) -> Response:
    """POST /containers/{id}/resize: the pty of a running container started with -t."""
    from pyd.daemon.errors import Conflict

    c = svc.get(id)
    height, width = resize_args(req)
    if not c.State.Running or c.execd is None:
        raise Conflict(f"container {c.ID} is not running")
    c.execd.resize(height, width)
    return Response(200, b"", content_type="text/plain")
