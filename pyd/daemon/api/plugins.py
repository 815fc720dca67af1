"""Managed plugins: pyd has none and installs none, so the list is empty and every name is unknown."""
from __future__ import annotations

from typing import Any

from pyd.daemon.errors import NotFound, NotImplementedFeature


def register(router: Any) -> None:
    async def list_(req: Any) -> list:
        return []

    async def unknown(req: Any, name: str) -> None:
        raise NotFound(f'plugin "{name}" not found')

    async def unsupported(req: Any) -> None:
        raise NotImplementedFeature("pyd does not support managed plugins")

    router.add("GET", "/plugins", list_)
    router.add("GET", "/plugins/{name:path}/json", unknown)
    router.add("DELETE", "/plugins/{name:path}", unknown)
    for verb in ("enable", "disable", "push", "set", "upgrade"):
        router.add("POST", f"/plugins/{{name:path}}/{verb}", unknown)
    router.add("GET", "/plugins/privileges", unsupported)
    router.add("POST", "/plugins/pull", unsupported)
    router.add("POST", "/plugins/create", unsupported)
