"""The classic JSON stream of a build whose independent stages run at once, in dockerd's order.

dockerd's classic builder runs the stages one after another; pyd runs those that do not wait for each
other concurrently. So that the stream still reads stage after stage, a stage's messages go out as they
come while it is the earliest unfinished stage, and are held until it becomes that stage otherwise.
Held messages stay in memory up to HOLD_IN_MEMORY bytes a stage, then go to a file (a RUN that logs
gigabytes while it waits its turn must not grow the daemon).
"""
from __future__ import annotations

import asyncio
import json
import tempfile
from typing import IO, Awaitable, Callable, Iterator

Emit = Callable[[dict], Awaitable[None]]

HOLD_IN_MEMORY = 1 << 20


class _Held:
    """One stage's messages waiting for their turn, as JSON lines."""

    def __init__(self, tmp: str | None) -> None:
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=HOLD_IN_MEMORY, dir=tmp)

    def append(self, message: dict) -> None:
        self._file.write(json.dumps(message).encode() + b"\n")

    def drain(self) -> Iterator[dict]:
        self._file.seek(0)
        for line in self._file:
            yield json.loads(line)
        self._file.close()


class OrderedOutput:
    def __init__(self, emit: Emit, tmp: str | None = None) -> None:
        self._emit = emit
        self._tmp = tmp                          # where held output spills to
        self._order: list[int] = []             # unfinished stages, in the order their output goes out
        self._held: dict[int, _Held] = {}
        self._finished: set[int] = set()
        self._lock = asyncio.Lock()

    def add(self, stage: int) -> None:
        """A stage that will run (stages are added in the order their output goes out)."""
        if stage not in self._order and stage not in self._finished:
            self._order.append(stage)

    async def send(self, stage: int | None, message: dict) -> None:
        """A message of `stage` (None: of the build itself, which goes out at once)."""
        async with self._lock:
            if stage is None or not self._order or stage == self._order[0]:
                await self._emit(message)
            else:
                held = self._held.get(stage)
                if held is None:
                    held = self._held[stage] = _Held(self._tmp)
                held.append(message)

    async def finished(self, stage: int) -> None:
        """The stage is done: the next one's held messages go out, and so on past those already done."""
        async with self._lock:
            self._finished.add(stage)
            while self._order and self._order[0] in self._finished:
                self._order.pop(0)
                if self._order:
                    await self._release(self._order[0])

    async def flush(self) -> None:
        """The build ended (failed, say): everything held goes out, stage after stage."""
        async with self._lock:
            for stage in self._order:
                await self._release(stage)
            self._order.clear()

    async def _release(self, stage: int) -> None:
        held = self._held.pop(stage, None)
        if held is not None:
            for message in held.drain():
                await self._emit(message)
