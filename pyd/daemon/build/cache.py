"""The classic builder's cache and `POST /build/prune` (docker builder prune, docker-py prune_builds).

The cache is the builder's intermediate images (each step's image, its parent the previous step's). What
prune removes is the dangling part: untagged builder images that no tagged image, container or running
build stands on (failed builds, stages only used by COPY --from, chains left behind when a tag moved).
Removing a leaf takes its untagged, childless parents with it (graph.delete_image's rule).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from pyd.daemon.errors import Conflict, NotFound


def is_build_image(img: Any) -> bool:
    """Made by our builder: it records the step's container_config (commit and import do not)."""
    return img.config.get("docker_version") == "pyd" and "container_config" in img.config


def with_ancestors(graph: Any, ids: Iterable[str]) -> set[str]:
    """The images `ids` and every parent below them."""
    out: set[str] = set()
    todo = [i for i in ids if i]
    while todo:
        iid = todo.pop()
        if iid in out:
            continue
        out.add(iid)
        try:
            parent = graph.image(iid).parent
        except NotFound:
            continue
        if parent:
            todo.append(parent)
    return out


def prune_build_cache(graph: Any, in_use: Callable[[str], str | None], held: Iterable[str],
                      until: float | None = None) -> dict[str, Any]:
    """Remove the dangling build cache; Docker's BuildCachePruneReport. `held`: images running builds use."""
    from pyd.formats import rfc3339

    keep = with_ancestors(graph, held)
    deleted: list[str] = []
    reclaimed = 0
    for _ in range(len(graph.images()) + 1):        # each pass removes at least one leaf, or ends
        leaves = [i for i in graph.images() if is_build_image(i) and i.id not in keep
                  and not graph.image_refs(i.id) and not graph.children(i.id) and not in_use(i.id)
                  and (until is None or rfc3339.parse(i.created or "1970-01-01T00:00:00Z") < until)]
        if not leaves:
            break
        for img in sorted(leaves, key=lambda i: i.created, reverse=True):
            sizes = {c: graph.layer(c).size for c in img.chain_ids() if graph.has_layer(c)}
            try:
                records = graph.delete_image(img.id, force=False, in_use=in_use)
            except (Conflict, NotFound):
                keep.add(img.id)
                continue
            for r in records:
                gone = r.get("Deleted")
                if gone in sizes:
                    reclaimed += sizes[gone]
                elif gone:
                    deleted.append(gone)
    return {"CachesDeleted": deleted or None, "SpaceReclaimed": reclaimed}


def until_arg(values: list[str]) -> float | None:
    """The `until` filter (dockerd's GetTimestamp); None without one."""
    from pyd.daemon.api.util import until_filter
    return until_filter(values[0]) if values else None
