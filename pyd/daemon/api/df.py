"""GET /system/df (docker system df, docker-py's df()): the disk used by images, containers, volumes and the
build cache, in dockerd's shape for the API version asked."""
from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING, Any

from pyd.daemon.api.containers import container_sizes, list_entry
from pyd.daemon.api.version import api_at_least
from pyd.daemon.errors import BadParameter
from pyd.daemon.images.service import image_summary

if TYPE_CHECKING:
    from pyd.daemon.containers.service import ContainerService
    from pyd.daemon.network.controller import NetworkController
    from pyd.daemon.storage.graph import Graph
    from pyd.daemon.volumes.store import VolumeStore
    from pyd.http.server import Request, Router

TYPES = ("container", "image", "volume", "build-cache")


def wanted_types(req: Request) -> set[str]:
    """`type` (repeatable, 1.42+) picks what is computed; before 1.42, or without it, everything is."""
    asked = req.query.get("type", [])
    if not asked or not api_at_least(req, "1.42"):
        return set(TYPES)
    for t in asked:
        if t not in TYPES:
            raise BadParameter(f"unknown object type: {t}")
    return set(asked)


def image_usage(graph: Graph, containers: ContainerService) -> tuple[int, list[dict[str, Any]]]:
    """(LayersSize, Images): every image with the containers on it and the bytes it shares with others."""
    images = graph.images()
    users = Counter(c.Image for c in containers.all())
    layer_users = Counter(chain for img in images for chain in set(img.chain_ids()))
    sizes = {chain: graph.layer(chain).size for chain in layer_users if graph.has_layer(chain)}
    entries = []
    for img in images:
        entry = image_summary(graph, img)
        entry["Containers"] = users.get(img.id, 0)
        entry["SharedSize"] = sum(sizes.get(ch, 0) for ch in set(img.chain_ids()) if layer_users[ch] > 1)
        entries.append(entry)
    return sum(sizes.values()), sorted(entries, key=lambda e: e["Created"], reverse=True)


def container_usage(graph: Graph, containers: ContainerService, networks: NetworkController) -> list[dict]:
    out = []
    for c in sorted(containers.all(), key=lambda c: c.Created, reverse=True):
        entry = list_entry(c, networks)
        entry.update(container_sizes(graph, c.ID, c.Image))
        out.append(entry)
    return out


def volume_usage(volumes: VolumeStore) -> list[dict[str, Any]]:
    out = []
    for v in volumes.list():
        entry = v.to_api()
        entry["UsageData"] = {"Size": volumes.size(v.name), "RefCount": len(volumes.users(v.name))}
        out.append(entry)
    return out


def register(router: Router, graph: Graph, containers: ContainerService, networks: NetworkController,
             volumes: VolumeStore) -> None:
    async def df(req) -> dict[str, Any]:
        types = wanted_types(req)

        def compute() -> dict[str, Any]:
            layers, images = image_usage(graph, containers) if "image" in types else (0, None)
            body: dict[str, Any] = {
                "LayersSize": layers, "Images": images,
                "Containers": container_usage(graph, containers, networks) if "container" in types else None,
                "Volumes": volume_usage(volumes) if "volume" in types else None,
                "BuildCache": [] if "build-cache" in types else None,   # the classic builder keeps images
            }
            if not api_at_least(req, "1.44"):
                for entry in images or []:
                    entry["VirtualSize"] = entry["Size"]
            if not api_at_least(req, "1.42"):
                body["BuilderSize"] = 0
            return body
        return await asyncio.to_thread(compute)

    router.add("GET", "/system/df", df)
