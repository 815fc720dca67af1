"""/grpc and /session: BuildKit for buildx's `docker` driver (the services live in pyd.daemon.buildkit).

Both are hijacked and then speak HTTP/2 (h2c, prior knowledge) on the bare connection. The BuildKit
modules and h2 are imported by the first such request, so an idle daemon does not carry them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyd.daemon.errors import BadParameter

if TYPE_CHECKING:
    from pyd.daemon.buildkit.service import BuildKit
    from pyd.daemon.main import Daemon
    from pyd.proto import Request, Router


def _check_upgrade(req: "Request") -> None:
    proto = (req.headers.get("upgrade") or "").lower()
    if proto != "h2c":
        raise BadParameter(f"protocol {proto or 'none'} not supported")


def register(router: "Router", daemon: "Daemon") -> None:
    services: list["BuildKit"] = []     # made by the first request

    def buildkit() -> "BuildKit":
        if not services:
            from pyd.daemon.buildkit.cache import ClassicBuildCache
            from pyd.daemon.buildkit.control import ControlService, WorkerInfo
            from pyd.daemon.buildkit.service import BuildKit
            from pyd.daemon.buildkit.session import SessionManager
            worker = WorkerInfo(id=daemon.info()["ID"], data_root=daemon.cfg.data_root)
            cache = ClassicBuildCache(daemon.graph, daemon.containers.image_in_use)
            sessions = SessionManager()
            services.append(BuildKit(ControlService(worker, cache, sessions), sessions))
        return services[0]

    async def grpc(req: "Request") -> None:
        _check_upgrade(req)
        service = buildkit()
        reader, writer = await req.hijack()
        await service.serve_control(reader, writer)

    async def session(req: "Request") -> None:
        _check_upgrade(req)
        service = buildkit()
        service.sessions.check(req.headers)
        reader, writer = await req.hijack()
        await service.serve_session(reader, writer, req.headers)

    router.add("POST", "/grpc", grpc)
    router.add("POST", "/session", session)
