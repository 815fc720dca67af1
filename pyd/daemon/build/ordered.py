"""The classic JSON stream of a build whose independent stages run at once, in dockerd's order.

dockerd's classic builder runs the stages one after another; pyd runs those that do not wait for each
other concurrently. So that the stream still reads stage after stage, a stage's messages go out as they
come while it is the earliest unfinished stage, and are held until it becomes that stage otherwise.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

Emit = Callable[[dict], Awaitable[None]]


class OrderedOutput:
    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._order: list[int] = []             # unfinished stages, in the order their output goes out
        self._held: dict[int, list[dict]] = {}
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
                self._held.setdefault(stage, []).append(message)

    async def finished(self, stage: int) -> None:
        """The stage is done: the next one's held messages go out, and so on past those already done."""
        async with self._lock:
            self._finished.add(stage)
            while self._order and self._order[0] in self._finished:
                self._order.pop(0)
                if self._order:
                    for message in self._held.pop(self._order[0], []):
                        await self._emit(message)

    async def flush(self) -> None:
        """The build ended (failed, say): everything held goes out, stage after stage."""
        async with self._lock:
            for stage in self._order:
                for message in self._held.pop(stage, []):
                    await self._emit(message)
            self._order.clear()
