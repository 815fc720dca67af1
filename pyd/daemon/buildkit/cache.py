"""The classic builder's cache (its intermediate images) seen as BuildKit cache records, and its prune.

A record is one build step's image: its size is the step's own layer, its description the step, its
parent the previous step. It is "in use" (not reclaimable) while prune would keep it: a tagged image or
a container stands on it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

from pyd.daemon.build.cache import is_build_image, prune_build_cache, with_ancestors

if TYPE_CHECKING:
    from pyd.daemon.storage.graph import Graph, Image


@dataclass
class CacheRecord:
    id: str                  # the image's hex ID
    size: int
    created: float           # unix time
    description: str
    in_use: bool
    parents: list[str] = field(default_factory=list)


def _unix(rfc3339: str) -> float:
    from pyd.formats import rfc3339 as fmt
    try:
        return fmt.parse(rfc3339 or "1970-01-01T00:00:00Z")
    except ValueError:
        return 0.0


def _description(img: "Image") -> str:
    history = img.config.get("history") or []
    step = history[-1].get("created_by", "") if history else ""
    return step.replace("/bin/sh -c #(nop) ", "").replace("/bin/sh -c ", "RUN ").strip()


class ClassicBuildCache:
    """The build cache as BuildKit's DiskUsage and Prune report it."""

    def __init__(self, graph: "Graph", in_use: Callable[[str], str | None]) -> None:
        self._graph = graph
        self._in_use = in_use

    def _kept(self) -> set[str]:
        """Images prune keeps: tagged or used by a container, and everything below them."""
        graph = self._graph
        return with_ancestors(graph, [i.id for i in graph.images() if graph.image_refs(i.id) or self._in_use(i.id)])

    def records(self) -> list[CacheRecord]:
        graph = self._graph
        kept = self._kept()
        out = []
        for img in graph.images():
            if not is_build_image(img):
                continue
            chains = img.chain_ids()
            size = graph.layer(chains[-1]).size if chains and graph.has_layer(chains[-1]) else 0
            parent = img.parent[len("sha256:"):] if img.parent else ""
            out.append(CacheRecord(id=img.id[len("sha256:"):], size=size, created=_unix(img.created),
                                   description=_description(img), in_use=img.id in kept,
                                   parents=[parent] if parent else []))
        return sorted(out, key=lambda r: r.created)

    def prune(self, keep_duration: float = 0.0, keep_bytes: int = 0, held: Iterable[str] = ()) -> list[CacheRecord]:
        """Remove the reclaimable records (older than keep_duration seconds, when given; nothing while the
        whole cache fits in keep_bytes; never the images of `held` and below); the records removed."""
        before = self.records()
        if keep_bytes and sum(r.size for r in before) <= keep_bytes:
            return []
        until = time.time() - keep_duration if keep_duration else None
        prune_build_cache(self._graph, self._in_use, held, until)
        left = {r.id for r in self.records()}
        return [r for r in before if r.id not in left]
