"""The route table: one module per resource; each handler parses and validates, then calls the Daemon."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyd.daemon.main import Daemon
    from pyd.proto import Router


def build_router(daemon: "Daemon") -> "Router":
    from pyd.daemon.api import (archive, build, buildkit, containers, containers_extra, exec as exec_, images, networks,
                                plugins, swarm, system, volumes)
    from pyd.proto import Router

    router = Router()
    for module in (system, containers, containers_extra, images, exec_, networks, volumes, archive, build, buildkit):
        module.register(router, daemon)
    for stub in (swarm, plugins):   # answered as dockerd without swarm mode or plugins
        stub.register(router)
    return router
