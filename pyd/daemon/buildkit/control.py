"""moby.buildkit.v1.Control as buildx's `docker` driver calls it: ListWorkers, Info, DiskUsage, Prune.

One worker, as dockerd's graph-driver worker reports it: the engine ID, the host's platform, BuildKit's
generic worker labels (no snapshotter label: buildx reads that one as "containerd image store" and would
offer exporters pyd does not have) and BuildKit's default GC policy. Solve finds the client's session
and then answers UNIMPLEMENTED (running it is the next step); Status follows a Solve by its ref until it
ends. Every other method answers UNIMPLEMENTED.
"""
from __future__ import annotations

import asyncio
import logging
import os
import platform
import socket
from dataclasses import dataclass
from typing import AsyncIterator

from pyd.daemon.buildkit import messages as m
from pyd.daemon.buildkit.cache import CacheRecord, ClassicBuildCache
from pyd.daemon.buildkit.grpc import FAILED_PRECONDITION, INVALID_ARGUMENT, UNIMPLEMENTED, GrpcError, GrpcServer
from pyd.daemon.buildkit.protobuf import DecodeError, Message, timestamp
from pyd.daemon.buildkit.session import SessionManager

log = logging.getLogger("pyd.buildkit")
SESSION_WAIT = 5.0      # how long a Solve waits for the session it names (the client opens both at once)
FINISHED_KEPT = 64      # finished solves remembered for a Status that comes late

SERVICE = "/moby.buildkit.v1.Control/"
BUILDKIT_PACKAGE = "github.com/moby/buildkit"
BUILDKIT_VERSION = "v0.13.0-pyd"    # the BuildKit API level served; buildx gates features on the version

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def host_platform() -> dict[str, str]:
    machine = platform.machine()
    out = {"OS": "linux", "Architecture": _ARCH.get(machine, machine)}
    if machine == "armv7l":
        out["Variant"] = "v7"
    return out


def default_gc_policy(data_root: str) -> list[dict[str, object]]:
    """BuildKit's default policy (worker/base DefaultGCPolicy) with its cap: 10% of the data-root's disk."""
    try:
        st = os.statvfs(data_root)
        keep = st.f_blocks * st.f_frsize // 10
    except OSError:
        keep = 2 << 30
    return [
        {"filters": ["type==source.local,type==exec.cachemount,type==source.git.checkout"],
         "keepDuration": 48 * 3600 * 10**9, "keepBytes": 512 << 20},
        {"keepDuration": 60 * 24 * 3600 * 10**9, "keepBytes": keep},
        {"keepBytes": keep},
        {"all": True, "keepBytes": keep},
    ]


@dataclass
class WorkerInfo:
    id: str                    # the engine's ID, as dockerd names its worker
    data_root: str
    host_gateway_ip: str = ""


def _decode(schema: Message, data: bytes) -> dict:
    try:
        return schema.decode(data)
    except DecodeError as exc:
        raise GrpcError(INVALID_ARGUMENT, f"cannot decode {schema.name}: {exc}") from None


class Jobs:
    """Solves by ref, so that Status (a separate call, often first) can follow one to its end."""

    def __init__(self) -> None:
        self._done: dict[str, asyncio.Event] = {}

    def event(self, ref: str) -> asyncio.Event:
        event = self._done.get(ref)
        if event is None:
            event = self._done[ref] = asyncio.Event()
        return event

    def finish(self, ref: str) -> None:
        self.event(ref).set()
        finished = [r for r, e in self._done.items() if e.is_set()]
        for r in finished[:-FINISHED_KEPT]:
            del self._done[r]


class ControlService:
    """The Control methods pyd serves; `server()` is the gRPC router for /grpc connections."""

    def __init__(self, worker: WorkerInfo, cache: ClassicBuildCache, sessions: SessionManager) -> None:
        self._worker = worker
        self._cache = cache
        self._sessions = sessions
        self._jobs = Jobs()

    def server(self) -> GrpcServer:
        return GrpcServer(
            unary={SERVICE + "ListWorkers": self.list_workers, SERVICE + "Info": self.info,
                   SERVICE + "DiskUsage": self.disk_usage, SERVICE + "Solve": self.solve},
            streaming={SERVICE + "Prune": self.prune, SERVICE + "Status": self.status})

    def _version(self) -> dict[str, str]:
        return {"package": BUILDKIT_PACKAGE, "version": BUILDKIT_VERSION, "revision": ""}

    def worker_record(self) -> dict:
        labels = {
            "org.mobyproject.buildkit.worker.executor": "oci",
            "org.mobyproject.buildkit.worker.hostname": socket.gethostname(),
            "org.mobyproject.buildkit.worker.network": "host",
            "org.mobyproject.buildkit.worker.oci.process-mode": "sandbox",
            "org.mobyproject.buildkit.worker.selinux.enabled": "false",
        }
        if self._worker.host_gateway_ip:
            labels["org.mobyproject.buildkit.worker.moby.host-gateway-ip"] = self._worker.host_gateway_ip
        return {"ID": self._worker.id, "Labels": labels, "platforms": [host_platform()],
                "GCPolicy": default_gc_policy(self._worker.data_root), "BuildkitVersion": self._version()}

    async def list_workers(self, request: bytes) -> bytes:
        _decode(m.LIST_WORKERS_REQUEST, request)   # containerd-style filters: the one worker matches them all
        return m.LIST_WORKERS_RESPONSE.encode({"record": [self.worker_record()]})

    async def info(self, request: bytes) -> bytes:
        return m.INFO_RESPONSE.encode({"buildkitVersion": self._version()})

    async def disk_usage(self, request: bytes) -> bytes:
        _decode(m.DISK_USAGE_REQUEST, request)
        records = await asyncio.to_thread(self._cache.records)
        return m.DISK_USAGE_RESPONSE.encode({"record": [_usage_record(r) for r in records]})

    async def prune(self, request: bytes) -> AsyncIterator[bytes]:
        req = _decode(m.PRUNE_REQUEST, request)
        keep_duration = req["keepDuration"] / 1e9
        removed = await asyncio.to_thread(self._cache.prune, keep_duration, req["keepBytes"])
        for record in removed:
            yield m.USAGE_RECORD.encode(_usage_record(record))


    async def solve(self, request: bytes) -> bytes:
        req = _decode(m.SOLVE_REQUEST, request)
        ref = req["Ref"]
        try:
            session = await self._sessions.wait_for(req["Session"], SESSION_WAIT) if req["Session"] else None
            if req["Session"] and session is None:
                raise GrpcError(FAILED_PRECONDITION, f"no active session for {req['Session']}: context deadline exceeded")
            log.debug("solve %s: frontend %s, session %s exposing %s", ref, req["Frontend"] or "(none)",
                      session.id if session else "(none)", ", ".join(sorted(session.methods)) if session else "-")
            raise GrpcError(UNIMPLEMENTED, "pyd does not run BuildKit solves yet: build with DOCKER_BUILDKIT=0")
        finally:
            self._jobs.finish(ref)

    async def status(self, request: bytes) -> AsyncIterator[bytes]:
        req = _decode(m.STATUS_REQUEST, request)
        await self._jobs.event(req["Ref"]).wait()
        return
        yield b""   # unreached: it makes this an async generator, whose items will be the Solve's progress


def _usage_record(r: CacheRecord) -> dict:
    return {"ID": r.id, "Mutable": False, "InUse": r.in_use, "Size": r.size, "Parent": r.parents[0] if r.parents else "",
            "CreatedAt": timestamp(r.created), "LastUsedAt": timestamp(r.created), "UsageCount": 1,
            "Description": r.description, "RecordType": "regular", "Shared": False, "Parents": r.parents}
