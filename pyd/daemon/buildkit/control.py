"""moby.buildkit.v1.Control as buildx's `docker` driver calls it: ListWorkers, Info, DiskUsage, Prune.

One worker, as dockerd's graph-driver worker reports it: the engine ID, the host's platform, BuildKit's
generic worker labels (no snapshotter label: buildx reads that one as "containerd image store" and would
offer exporters pyd does not have) and BuildKit's default GC policy. Solve finds the client's session and
runs the Dockerfile frontend (frontend.py) through pyd's builder; Status streams that Solve's progress by
its ref (it may be called first). Every other method answers UNIMPLEMENTED.
"""
from __future__ import annotations

import asyncio
import logging
import os
import platform
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator

from pyd.daemon.buildkit import messages as m
from pyd.daemon.buildkit.cache import CacheRecord, ClassicBuildCache
from pyd.daemon.buildkit.frontend import (FRONTEND, BuildBackend, DockerfileSolve, parse_cache_imports, parse_exporters,
                                          parse_frontend_attrs, solve_cache_options)
from pyd.daemon.buildkit.grpc import (CANCELLED, FAILED_PRECONDITION, INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED,
                                      GrpcError, GrpcServer)
from pyd.daemon.buildkit.progress import Jobs
from pyd.daemon.buildkit.protobuf import DecodeError, Message, timestamp
from pyd.daemon.buildkit.session import Session, SessionManager

if TYPE_CHECKING:
    from pyd.daemon.build.builder import Builder

log = logging.getLogger("pyd.buildkit")
SESSION_WAIT = 5.0      # how long a Solve waits for the session it names (the client opens both at once)

SERVICE = "/moby.buildkit.v1.Control/"
BRIDGE = "/moby.buildkit.v1.frontend.LLBBridge/"
BUILD_ID = "buildkit-controlapi-buildid"    # the metadata naming the Solve a bridge call belongs to
# The gateway API the bridge serves: solve a frontend, return its result (no LLB, no ReadFile: the client's
# build function only hands the Dockerfile frontend its options, as buildx's does)
BRIDGE_CAPS = ("solve.base", "solve.inlinereturn", "return")
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


class ControlService:
    """The Control methods pyd serves; `server()` is the gRPC router for /grpc connections."""

    def __init__(self, worker: WorkerInfo, cache: ClassicBuildCache, sessions: SessionManager,
                 backend: BuildBackend) -> None:
        self._worker = worker
        self._cache = cache
        self._sessions = sessions
        self._backend = backend
        self._jobs = Jobs()
        self._running: set[Builder] = set()     # builds under way: prune keeps what they stand on
        self._gateways: dict[str, _Gateway] = {}  # Solves driven by the client's build function, by ref
        self._gateway_added = asyncio.Event()

    def server(self) -> GrpcServer:
        return GrpcServer(
            unary={SERVICE + "ListWorkers": self.list_workers, SERVICE + "Info": self.info,
                   SERVICE + "DiskUsage": self.disk_usage, SERVICE + "Solve": self.solve},
            streaming={SERVICE + "Prune": self.prune, SERVICE + "Status": self.status},
            with_metadata={BRIDGE + "Ping": self.bridge_ping, BRIDGE + "Solve": self.bridge_solve,
                           BRIDGE + "Return": self.bridge_return})

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
        held = {i for b in self._running for i in b.held_images()}
        removed = await asyncio.to_thread(self._cache.prune, keep_duration, req["keepBytes"], held)
        for record in removed:
            yield m.USAGE_RECORD.encode(_usage_record(record))


    async def solve(self, request: bytes) -> bytes:
        req = _decode(m.SOLVE_REQUEST, request)
        ref = req["Ref"]
        job = self._jobs.get(ref)
        error = ""
        try:
            if not req["Session"]:
                raise GrpcError(INVALID_ARGUMENT, "a Solve needs the client's session")
            session = await self._sessions.wait_for(req["Session"], SESSION_WAIT)
            if session is None:
                raise GrpcError(FAILED_PRECONDITION, f"no active session for {req['Session']}: context deadline exceeded")
            log.debug("solve %s: frontend %s, session %s exposing %s", ref, req["Frontend"] or "(none)", session.id,
                      ", ".join(sorted(session.methods)))
            export = parse_exporters(req["Exporters"], req["ExporterDeprecated"], req["ExporterAttrsDeprecated"])
            cache_from = solve_cache_options(req["Cache"])
            solver = DockerfileSolve(self._backend, job, session, self._running, cache_from)
            if not req["Frontend"] and not req["Definition"]:
                image_id = await self._gateway(ref, solver, session)
            elif req["Frontend"] == FRONTEND:
                image_id = await solver.build(parse_frontend_attrs(req["FrontendAttrs"], _platform_name()))
            else:
                raise GrpcError(UNIMPLEMENTED, f"frontend {req['Frontend'] or '(an LLB definition)'} is not supported "
                                               f"by this daemon: it builds Dockerfiles ({FRONTEND})")
            response = await solver.export(image_id, export) if image_id else {}
            return m.SOLVE_RESPONSE.encode({"ExporterResponse": response})
        except GrpcError as exc:
            error = exc.message
            raise
        except asyncio.CancelledError:
            error = "context canceled"
            raise
        finally:
            self._jobs.finish(ref, error)

    async def _gateway(self, ref: str, solver: DockerfileSolve, session: Session) -> str | None:
        """A Solve whose frontend runs in the client: wait for its Return; the image it returned."""
        gateway = self._gateways[ref] = _Gateway(solver, asyncio.get_running_loop().create_future())
        self._gateway_added.set()
        try:
            closed = asyncio.ensure_future(session.closed())
            try:
                await asyncio.wait([gateway.returned, closed], return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
            if not gateway.returned.done():
                raise GrpcError(CANCELLED, "the build's session closed before its result was returned")
            result_ref = gateway.returned.result()
            if not result_ref:
                return None     # nothing built (buildx probes the builder so): nothing to export
            image_id = gateway.results.get(result_ref)
            if image_id is None:
                raise GrpcError(INVALID_ARGUMENT, f"the build returned an unknown result {result_ref!r}")
            return image_id
        finally:
            del self._gateways[ref]

    async def _bridge(self, metadata: dict[str, str]) -> _Gateway:
        """The Solve a bridge call belongs to (the client calls it while its Solve is still being set up)."""
        ref = metadata.get(BUILD_ID, "")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SESSION_WAIT
        while ref not in self._gateways:
            left = deadline - loop.time()
            if left <= 0:
                raise GrpcError(NOT_FOUND, f"no such job {ref}")
            self._gateway_added.clear()
            try:
                await asyncio.wait_for(self._gateway_added.wait(), left)
            except asyncio.TimeoutError:
                pass
        return self._gateways[ref]

    async def bridge_ping(self, request: bytes, metadata: dict[str, str]) -> bytes:
        await self._bridge(metadata)
        return m.PONG_RESPONSE.encode({"FrontendAPICaps": [{"ID": c, "Enabled": True} for c in BRIDGE_CAPS],
                                       "Workers": [self.worker_record()]})

    async def bridge_solve(self, request: bytes, metadata: dict[str, str]) -> bytes:
        gateway = await self._bridge(metadata)
        req = _decode(m.GATEWAY_SOLVE_REQUEST, request)
        if req["Frontend"] != FRONTEND:
            raise GrpcError(UNIMPLEMENTED, f"frontend {req['Frontend'] or '(an LLB definition)'} is not supported "
                                           f"by this daemon: it builds Dockerfiles ({FRONTEND})")
        opts = req["FrontendOpt"]
        if opts.get("requestid", "").startswith("frontend."):
            raise GrpcError(UNIMPLEMENTED, f"unsupported request {opts['requestid']}")
        frontend_req = parse_frontend_attrs(opts, _platform_name())
        frontend_req.cache_from += parse_cache_imports(req["CacheImports"])
        image_id = await gateway.solver.build(frontend_req)
        result_ref = "pyd-" + image_id.split(":", 1)[-1][:32]
        gateway.results[result_ref] = image_id
        return m.GATEWAY_SOLVE_RESPONSE.encode({"ref": result_ref})

    async def bridge_return(self, request: bytes, metadata: dict[str, str]) -> bytes:
        gateway = await self._bridge(metadata)
        req = _decode(m.RETURN_REQUEST, request)
        if not gateway.returned.done():
            error, result = req["error"], req["result"]
            if error and error["code"]:
                gateway.returned.set_exception(GrpcError(error["code"], error["message"]))
            else:
                ref = (result or {}).get("refDeprecated") or ((result or {}).get("ref") or {}).get("id", "")
                gateway.returned.set_result(ref)
        return m.RETURN_RESPONSE.encode({})

    async def status(self, request: bytes) -> AsyncIterator[bytes]:
        req = _decode(m.STATUS_REQUEST, request)
        async for update in self._jobs.get(req["Ref"]).follow():
            yield update


@dataclass
class _Gateway:
    solver: DockerfileSolve
    returned: asyncio.Future[str]                          # the ref the client's build function returned
    results: dict[str, str] = field(default_factory=dict)  # refs its Solves answered -> image IDs


def _platform_name() -> str:
    p = host_platform()
    return "/".join(filter(None, (p["OS"], p["Architecture"], p.get("Variant"))))


def _usage_record(r: CacheRecord) -> dict:
    return {"ID": r.id, "Mutable": False, "InUse": r.in_use, "Size": r.size, "Parent": r.parents[0] if r.parents else "",
            "CreatedAt": timestamp(r.created), "LastUsedAt": timestamp(r.created), "UsageCount": 1,
            "Description": r.description, "RecordType": "regular", "Shared": False, "Parents": r.parents}
