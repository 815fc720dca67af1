"""docker logs: a container's json log read back (tail, since/until, timestamps, details), and followed
while it runs (woken by its output)."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable, Protocol

from pyd.daemon.containers.logs import LogReader, detail_prefix, fixed_time, in_window
from pyd.daemon.errors import BadParameter
from pyd.formats.stdcopy import stdcopy_frame

if TYPE_CHECKING:
    from pyd.daemon.containers.model import Container

BATCH = 1 << 16          # bytes per write while catching up


class Followed(Protocol):
    """What a follow needs of the container service."""
    def follow(self, c: Container, on: bool) -> None: ...
    def wakeup_event(self, c: Container) -> asyncio.Event: ...


@dataclass(frozen=True)
class LogOptions:
    stdout: bool
    stderr: bool
    follow: bool = False
    timestamps: bool = False
    since: float = 0.0
    until: float = 0.0
    tail: str = "all"             # "all" or a count
    details: bool = False
    raw: bool = False             # no stdcopy frames (a tty, or an old API version)


class LogStream:
    """One logs request; close() it when done (a follow holds the container's output on)."""

    def __init__(self, containers: Followed, c: Container, opts: LogOptions) -> None:
        if (c.HostConfig.get("LogConfig") or {}).get("Type") == "none":
            raise BadParameter('configured logging driver does not support reading')
        self.containers, self.c, self.opts = containers, c, opts
        self.details = detail_prefix(c) if opts.details else b""
        self.reader = LogReader(c.log_path)
        if opts.tail != "all":
            self.reader.skip_to_tail(max(int(opts.tail), 0))
        if opts.follow:
            containers.follow(c, True)

    async def pump(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        c, opts = self.c, self.opts
        want = {1: opts.stdout, 2: opts.stderr}
        while True:
            wake = self.containers.wakeup_event(c) if opts.follow else None
            batch = bytearray()
            for entry in self.reader.read_new():
                if not want.get(entry.stream) or not in_window(entry, opts.since, opts.until):
                    continue
                data = self.details + entry.data
                if opts.timestamps:
                    data = fixed_time(entry.time) + b" " + data
                batch += data if opts.raw else stdcopy_frame(entry.stream, data)
                if len(batch) >= BATCH:
                    await write(bytes(batch))
                    batch.clear()
            if batch:
                await write(bytes(batch))
            if wake is None or not c.State.Running or (opts.until and time.time() > opts.until):
                break
            try:
                await asyncio.wait_for(wake.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    def close(self) -> None:
        if self.opts.follow:
            self.containers.follow(self.c, False)
