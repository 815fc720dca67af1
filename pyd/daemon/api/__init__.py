"""The route table: one module per resource; each handler parses and validates, then calls the Daemon."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyd.daemon.main import Daemon
    from pyd.http.server import Router


def build_router(daemon: "Daemon") -> "Router":
    from pyd.daemon.api import archive, build, containers, containers_extra, exec as exec_, images, networks, system, volumes
    from pyd.http.server import Router

    router = Router()
    for module in (system, containers, containers_extra, images, exec_, networks, volumes, archive, build):
        module.register(router, daemon)
    return router
