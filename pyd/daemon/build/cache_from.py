"""`cache_from` (POST /build?cachefrom=[...]) as dockerd's classic builder uses it (daemon/images/cache.go).

With cache sources given, only they are trusted: a cache hit among the local step images counts only when
a source image stands on it; otherwise a step matches a source whose history continues the current
image's history (equal entries and layers so far) with an entry made by the same command, and that
entry becomes an image of its own (the source's layer for it, if any, on top of the current image). A
source that matches one step is the only one tried for the next steps (dockerd's rule). References that
name no image are skipped with a warning.
"""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from pyd.daemon.errors import HTTPError

if TYPE_CHECKING:
    from pyd.daemon.storage.graph import Graph, Image

log = logging.getLogger("pyd.builder")


class CacheSources:
    def __init__(self, graph: Graph, refs: list[str]) -> None:
        self._graph = graph
        self.sources: list[Image] = []
        for ref in refs:
            try:
                self.sources.append(graph.resolve_image(ref))
            except HTTPError as exc:
                log.warning("Could not look up %s for cache resolution, skipping: %s", ref, exc.message)

    def allows(self, image_id: str) -> bool:
        """A local cache hit counts when a source is that image or stands on it."""
        for source in self.sources:
            current: Image | None = source
            while current is not None:
                if current.id == image_id:
                    return True
                current = self._graph.find_image(current.parent) if current.parent else None
        return False

    def restore(self, parent: Image | None, created_by: str, config: dict, container_config: dict) -> Image | None:
        """The image a source gives for the step `created_by` on `parent`, or None."""
        history = list(parent.config.get("history") or []) if parent else []
        diff_ids = parent.diff_ids() if parent else []
        n = len(history)
        for target in self.sources:
            theirs, their_layers = list(target.config.get("history") or []), target.diff_ids()
            if not _continues(theirs, their_layers, history, diff_ids):
                continue
            if (theirs[n].get("created_by") or "") != created_by:
                continue
            self.sources = [target]
            if n == len(theirs) - 1:       # its last step: the source itself, now a child of parent
                return self._graph.store_image(self._graph.config_bytes(target.id), parent.id if parent else "")
            layers = list(diff_ids)
            if not theirs[n].get("empty_layer"):
                layers.append(their_layers[sum(1 for h in theirs[:n] if not h.get("empty_layer"))])
            made = {"architecture": target.config.get("architecture"), "os": target.config.get("os"),
                    "config": config, "container_config": container_config,
                    "created": theirs[n].get("created"), "docker_version": "pyd",
                    "history": history + [theirs[n]], "rootfs": {"type": "layers", "diff_ids": layers}}
            data = json.dumps(made, separators=(",", ":"), ensure_ascii=False).encode()
            return self._graph.store_image(data, parent.id if parent else "")
        return None


def _continues(theirs: list[dict], their_layers: list[str], history: list[dict], layers: list[str]) -> bool:
    """dockerd's isValidParent: the source has a history entry past ours, and begins with our history and layers."""
    if not theirs or len(history) >= len(theirs) or len(layers) > len(their_layers):
        return False
    return theirs[:len(history)] == history and their_layers[:len(layers)] == layers
