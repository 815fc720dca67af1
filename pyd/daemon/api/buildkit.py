"""/grpc and /session: BuildKit for buildx's `docker` driver (the services live in pyd.daemon.buildkit).

Both are hijacked ("101 Switching Protocols", Upgrade: h2c) and then speak HTTP/2 with prior knowledge on
the bare connection. The BuildKit modules and h2 are imported by the first such request, so an idle
daemon does not carry them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from pyd.daemon.api.util import releasing_memory
from pyd.daemon.errors import BadParameter

if TYPE_CHECKING:
    from pyd.daemon.build.builder import BuildContainers, PullForBuild
    from pyd.daemon.buildkit.service import BuildKit
    from pyd.daemon.events import EventBus
    from pyd.daemon.storage.graph import Graph
    from pyd.http.server import Request, Router


def _check_upgrade(req: Request) -> None:
    proto = (req.headers.get("upgrade") or "").lower()
    if proto != "h2c":
        raise BadParameter(f"protocol {proto or 'none'} not supported")


def register(router: Router, graph: Graph, containers: BuildContainers, in_use: Callable[[str], str | None],
             pull: PullForBuild, events: EventBus, tmp_dir: str, engine_id: Callable[[], str]) -> None:
    """The classic builder's collaborators (builds run through it); in_use(image_id): a container using the
    image (the cache keeps it); tmp_dir: where the locals are copied; engine_id(): the worker's ID."""
    services: list[BuildKit] = []     # made by the first request

    def buildkit() -> BuildKit:
        if not services:
            from pyd.daemon.buildkit.cache import ClassicBuildCache
            from pyd.daemon.buildkit.control import ControlService, WorkerInfo
            from pyd.daemon.buildkit.frontend import BuildBackend
            from pyd.daemon.buildkit.service import BuildKit
            from pyd.daemon.buildkit.session import SessionManager
            worker = WorkerInfo(id=engine_id(), data_root=tmp_dir)
            sessions = SessionManager()
            backend = BuildBackend(graph, containers, pull, events, tmp_dir)
            control = ControlService(worker, ClassicBuildCache(graph, in_use), sessions, backend)
            services.append(BuildKit(control, sessions))
        return services[0]

    async def grpc(req: Request) -> None:
        _check_upgrade(req)
        service = buildkit()
        reader, writer = await req.hijack(None, protocol="h2c")
        await service.serve_control(reader, writer)

    async def session(req: Request) -> None:
        _check_upgrade(req)
        service = buildkit()
        service.sessions.check(req.headers)
        reader, writer = await req.hijack(None, protocol="h2c")
        await service.serve_session(reader, writer, req.headers)

    router.add("POST", "/grpc", releasing_memory(grpc))        # once the client hangs up, builds are over
    router.add("POST", "/session", releasing_memory(session))
