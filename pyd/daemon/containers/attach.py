"""Attach streams: a client's view of a container's stdio (docker attach, docker run's attach).

Before the start, an output-only attach is handed to execd, which writes to the connection itself; any
other attach subscribes to the output the daemon gets from execd, replays the log first when asked, and
pumps the client's stdin into the container (the detach keys end the session with a tty)."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pyd.daemon.containers.execs import ExecInstance, ExecService, detach_keys_arg
from pyd.formats.detachkeys import DetachScanner
from pyd.daemon.containers.logs import LogReader
from pyd.daemon.runtime.execdriver import ATTACH_RAW, ATTACH_STDERR, ATTACH_STDOUT, ATTACH_WAIT
from pyd.daemon.errors import BadParameter
from pyd.formats.stdcopy import stdcopy_frame

if TYPE_CHECKING:
    from pyd.daemon.containers.model import Container


class StreamIn(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


class StreamOut(Protocol):
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...


class AttachHost(Protocol):
    """What attach streams need of the container service."""
    def subscribe(self, c: Container, queue: asyncio.Queue) -> None: ...
    def unsubscribe(self, c: Container, queue: asyncio.Queue) -> None: ...
    def add_attach_sink(self, c: Container, fd: int, flags: int) -> None: ...
    def publish_event(self, c: Container, action: str, **extra: str) -> None: ...


@dataclass(frozen=True)
class AttachOptions:
    stdin: bool
    stdout: bool
    stderr: bool
    stream: bool                  # live output from now on
    logs: bool                    # the log so far first
    raw: bool                     # no stdcopy frames (a tty, or an old API version)
    detach_keys: str | None = None


class Attachments:
    def __init__(self, containers: AttachHost) -> None:
        self.containers = containers

    def can_hand_over(self, c: Container, opts: AttachOptions) -> bool:
        """`docker run`'s attach: output only, before the start; execd writes to the connection itself."""
        return (opts.stream and not opts.logs and c.State.Status == "created" and (opts.stdout or opts.stderr)
                and not (opts.stdin and c.Config.get("OpenStdin")))

    def hand_over(self, c: Container, fd: int, opts: AttachOptions) -> None:
        """fd (ours to close) goes to c's execd at its start."""
        flags = ((ATTACH_STDOUT if opts.stdout else 0) | (ATTACH_STDERR if opts.stderr else 0)
                 | (ATTACH_RAW if opts.raw else 0))
        self.containers.add_attach_sink(c, fd, flags)
        self.containers.publish_event(c, "attach")

    def share_wait(self, c: Container, fd: int) -> None:
        """A wait on c before its start (`docker run`'s): fd (ours to close), a duplicate of the response's
        connection, goes to c's execd, which ends the response should this daemon die first."""
        self.containers.add_attach_sink(c, fd, ATTACH_WAIT)

    def open(self, c: Container, opts: AttachOptions) -> AttachSession:
        """A session subscribed to c's output from now on; close() it when done."""
        scanner = DetachScanner(detach_keys_arg(opts.detach_keys)) if c.tty else None   # Docker: tty only
        self.containers.publish_event(c, "attach")   # dockerd: every attach, streaming or not
        return AttachSession(self.containers, c, opts, scanner)


class AttachSession:
    def __init__(self, containers: AttachHost, c: Container, opts: AttachOptions,
                 scanner: DetachScanner | None) -> None:
        self.containers, self.c, self.opts, self.scanner = containers, c, opts, scanner
        self.queue: asyncio.Queue = asyncio.Queue()
        self.pump: asyncio.Future[None] | None = None
        if opts.stream:
            containers.subscribe(c, self.queue)   # before any await: no output may slip before the loop

    async def run(self, reader: StreamIn, writer: StreamOut) -> None:
        c, opts = self.c, self.opts
        wants = {1: opts.stdout, 2: opts.stderr}
        raw = opts.raw
        if opts.logs:
            for entry in LogReader(c.log_path).read_new():
                if wants.get(entry.stream):
                    writer.write(entry.data if raw else stdcopy_frame(entry.stream, entry.data))
            await writer.drain()
        # a stopped container's streams wait for its next run, as dockerd's do (`start -a` attaches first)
        if not opts.stream or c.State.Status in ("removing", "dead"):
            return
        if opts.stdin and c.Config.get("OpenStdin"):
            self.pump = asyncio.ensure_future(_pump_stdin(reader, c, self.scanner, self.queue))
        ended = False
        while not ended:
            items = [await self.queue.get()]
            while not self.queue.empty():   # whatever piled up goes out in one write
                items.append(self.queue.get_nowait())
            out = []
            for item in items:
                if item is None:
                    ended = True
                    break
                if item is False:  # the detach keys: the session ends, the container goes on
                    self.containers.publish_event(c, "detach")
                    ended = True
                    break
                stream_id, data = item
                if wants.get(stream_id):
                    out.append(data if raw else stdcopy_frame(stream_id, data))
            if out:
                writer.write(out[0] if len(out) == 1 else b"".join(out))
                await writer.drain()  # returns at once below the high-water mark: flow control only
        await writer.drain()

    def close(self) -> None:
        self.containers.unsubscribe(self.c, self.queue)
        if self.pump:
            self.pump.cancel()


async def _pump_stdin(reader: StreamIn, c: Container, scanner: DetachScanner | None,
                      queue: asyncio.Queue) -> None:
    """Client stdin → container stdin. EOF closes the container's stdin when StdinOnce without a tty
    (docker run -i); otherwise it ends the session, the container's stdin left open, as dockerd does: the
    CLI that saw the detach keys itself just closes its side (`docker attach` later types into the same
    shell). With a tty the detach keys end the session too: False goes into the output queue."""
    while True:
        data = await reader.read(1 << 16)
        if scanner is not None and data:
            data, detached = scanner.feed(data)
            if detached:
                if data and c.execd is not None:
                    c.execd.write_stdin(data)
                queue.put_nowait(False)
                return
            if not data:
                continue
        deadline = time.monotonic() + 30
        while c.execd is None and c.State.Status == "created" and time.monotonic() < deadline:
            await asyncio.sleep(0.005)  # attached before start: hold stdin until the process exists
        if c.execd is None:
            return
        if not data:
            if c.Config.get("StdinOnce") and not c.tty:
                c.execd.close_stdin()
            else:
                queue.put_nowait(None)     # the session's end, no detach event: dockerd saw no keys
            return
        c.execd.write_stdin(data)


class ExecAttachment:
    """docker exec without -d: the exec starts once the client's connection is ours; its output goes out
    (stdcopy frames without a tty) until the process exits or the detach keys are typed."""

    def __init__(self, execs: ExecService, inst: ExecInstance, multiplexed: bool) -> None:
        """multiplexed: the start request's Tty was false (dockerd frames by it, not by the exec's tty)."""
        self.execs, self.inst, self.multiplexed = execs, inst, multiplexed
        self.keys = detach_keys_arg(inst.config.detach_keys)
        self.queue: asyncio.Queue = asyncio.Queue()
        self.pump: asyncio.Future[str] | None = None
        inst.subscribers.add(self.queue)

    async def run(self, reader: StreamIn, writer: StreamOut) -> None:
        from pyd.daemon.runtime.execdriver import ExecError
        inst, cfg = self.inst, self.inst.config
        multiplexed = self.multiplexed
        try:
            await self.execs.start(inst, with_stdin=cfg.attach_stdin)
        except (ExecError, BadParameter) as e:
            # dockerd writes the failure into the stream; the client reads the exit code from inspect
            text = (f"OCI runtime exec failed: exec failed: unable to start container process: {e.message}: unknown"
                    if isinstance(e, ExecError) else e.message) + "\r\n"
            writer.write(stdcopy_frame(1, text.encode()) if multiplexed else text.encode())
            await writer.drain()
            return
        if cfg.attach_stdin:
            self.pump = asyncio.ensure_future(_pump_exec_stdin(reader, inst, DetachScanner(self.keys)
                                                               if cfg.tty else None))
        wants = {1: cfg.attach_stdout, 2: cfg.attach_stderr}
        while True:
            getter = asyncio.ensure_future(self.queue.get())
            waiters: set[asyncio.Future[Any]] = {getter} | ({self.pump} if self.pump is not None else set())
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                if self.pump is not None and self.pump.result() == "detached":
                    return
                self.pump = None
                continue
            item = getter.result()
            if item is None:
                break
            stream_id, data = item
            if wants.get(stream_id):
                writer.write(stdcopy_frame(stream_id, data) if multiplexed else data)
                await writer.drain()
        await writer.drain()

    def close(self) -> None:
        self.inst.subscribers.discard(self.queue)
        if self.pump is not None:
            self.pump.cancel()


async def _pump_exec_stdin(reader: StreamIn, inst: ExecInstance, scanner: DetachScanner | None) -> str:
    """Client stdin → the exec's stdin; EOF closes it without a tty, else ends the session as the detach
    keys do ("detached"), the process going on (dockerd's rule for a tty)."""
    while True:
        data = await reader.read(1 << 16)
        execd = inst.execd
        if execd is None:
            return "gone"
        if not data:
            if scanner is not None:
                return "detached"
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
