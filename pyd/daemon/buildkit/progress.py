"""A Solve's progress as BuildKit's Status stream carries it: vertexes (one per step, with a digest, a name,
started/completed, cached, error), their statuses (named counters: "transferring context: 12kB") and logs.

A Job keeps every update of its Solve, so a Status call that comes after the Solve began (or after it
ended, within FINISHED_KEPT solves) replays them from the start, as BuildKit's does.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field

from pyd.daemon.buildkit import messages as m
from pyd.daemon.buildkit.protobuf import timestamp

FINISHED_KEPT = 64      # finished solves remembered for a Status that comes late


@dataclass
class Vertex:
    digest: str
    name: str
    inputs: list[str] = field(default_factory=list)
    started: float | None = None
    completed: float | None = None
    cached: bool = False
    error: str = ""

    def record(self) -> dict:
        out: dict = {"digest": self.digest, "name": self.name, "inputs": self.inputs, "cached": self.cached,
                     "error": self.error}
        if self.started is not None:
            out["started"] = timestamp(self.started)
        if self.completed is not None:
            out["completed"] = timestamp(self.completed)
        return out


class Job:
    """One Solve's updates (encoded StatusResponse messages), in order, and whether it has ended."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.updates: list[bytes] = []
        self.done = False
        self._changed = asyncio.Event()
        self._count = 0
        self.vertexes: list[Vertex] = []

    # ---- writing
    def _push(self, message: dict) -> None:
        self.updates.append(m.STATUS_RESPONSE.encode(message))
        self._changed.set()

    def vertex(self, name: str, inputs: list[str] | None = None) -> Vertex:
        """A new vertex, started now."""
        self._count += 1
        digest = "sha256:" + hashlib.sha256(f"{self.ref}\0{self._count}\0{name}".encode()).hexdigest()
        v = Vertex(digest, name, list(inputs or []), started=time.time())
        self.vertexes.append(v)
        self._push({"vertexes": [v.record()]})
        return v

    def complete(self, v: Vertex, cached: bool = False, error: str = "") -> None:
        if v.completed is not None:
            return
        v.completed = time.time()
        v.cached = v.cached or cached
        v.error = error
        self._push({"vertexes": [v.record()]})

    def status(self, v: Vertex, status_id: str, current: int = 0, total: int = 0, done: bool = False,
               started: float | None = None) -> None:
        now = time.time()
        record: dict = {"ID": status_id, "vertex": v.digest, "current": current, "total": total,
                        "timestamp": timestamp(now), "started": timestamp(started or now)}
        if done:
            record["completed"] = timestamp(now)
        self._push({"statuses": [record]})

    def log(self, v: Vertex, stream: int, data: bytes) -> None:
        self._push({"logs": [{"vertex": v.digest, "timestamp": timestamp(time.time()), "stream": stream,
                              "msg": data}]})

    def finish(self, error: str = "") -> None:
        """The Solve ended: vertexes still open end now (with the error, if it failed)."""
        for v in self.vertexes:
            if v.completed is None:
                self.complete(v, error=error or "context canceled")
        self.done = True
        self._changed.set()

    # ---- reading
    async def follow(self):
        """Every update from the first, then the new ones as they come, until the Solve ends."""
        sent = 0
        while True:
            while sent < len(self.updates):
                sent += 1
                yield self.updates[sent - 1]
            if self.done:
                return
            self._changed.clear()
            await self._changed.wait()


class Jobs:
    """Solves by ref: Status (a separate call, often made before Solve) finds its Solve here."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def get(self, ref: str) -> Job:
        job = self._jobs.get(ref)
        if job is None:
            job = self._jobs[ref] = Job(ref)
        return job

    def finish(self, ref: str, error: str = "") -> None:
        self.get(ref).finish(error)
        finished = [r for r, j in self._jobs.items() if j.done]
        for r in finished[:-FINISHED_KEPT]:
            del self._jobs[r]
