"""`docker commit`: a container's read-write layer becomes a new layer on top of its image.

A running container is frozen (cgroup freezer) while its changes are read, as dockerd pauses it, unless
the client asks for pause=false.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any, Iterator, Protocol

from pyd.daemon.storage.graph import Graph, LayerHold, apply_changes
from pyd.formats.platforms import config_fields
from pyd.formats import rfc3339

if TYPE_CHECKING:
    from pyd.daemon.containers.model import Container


class Freezer(Protocol):
    """The cgroup directories a running container is frozen through."""
    def dirs(self, cid: str, hc: dict[str, Any]) -> dict[str, str]: ...


def commit_container(graph: Graph, c: Container, changes: list[str] | None = None, comment: str = "",
                     author: str = "", overrides: dict | None = None) -> str:
    """Make the image; returns its ID."""
    with graph.holding() as hold:     # a failure before the image is stored leaves no layer
        return _commit(graph, c, changes, comment, author, overrides, hold)


def _commit(graph: Graph, c: Container, changes: list[str] | None, comment: str, author: str,
            overrides: dict | None, hold: LayerHold) -> str:
    base = graph.image(c.Image) if c.Image else None
    layer = graph.commit_rw(c.ID, hold)   # None: nothing changed
    container_config = copy.deepcopy(c.Config or {})
    if overrides:
        for key, value in overrides.items():
            if value not in (None, "", [], {}):
                container_config[key] = value
    apply_changes(container_config, changes or [])
    now = rfc3339.now(rfc3339.FIXED)
    config: dict[str, Any] = copy.deepcopy(base.config) if base else config_fields(graph.platform)
    config.update({"config": container_config, "container": c.ID, "created": now})
    if author:
        config["author"] = author
    else:
        config.pop("author", None)
    if comment:
        config["comment"] = comment
    else:
        config.pop("comment", None)
    history = list(config.get("history") or [])
    entry: dict[str, Any] = {"created": now, "created_by": " ".join([c.Path, *(c.Args or [])]).strip()}
    if author:
        entry["author"] = author
    if comment:
        entry["comment"] = comment
    if layer is None:
        entry["empty_layer"] = True
    history.append(entry)
    config["history"] = history
    rootfs = dict(config.get("rootfs") or {"type": "layers"})
    rootfs["type"] = "layers"
    rootfs["diff_ids"] = list(rootfs.get("diff_ids") or []) + ([layer.diff_id] if layer else [])
    config["rootfs"] = rootfs
    image = graph.store_image(json.dumps(config, separators=(",", ":")).encode(), parent=base.id if base else "")
    return image.id



log = logging.getLogger("pyd.commit")


@contextlib.contextmanager
def frozen(cgroups: Freezer | None, c: Container, timeout: float = 2.0) -> Iterator[None]:
    """Freeze the container's processes for the duration (v1 freezer.state, v2 cgroup.freeze); a no-op when
    it is not running, already paused, or has no freezer."""
    dirs = cgroups.dirs(c.ID, c.HostConfig or {}) if cgroups is not None and c.State.Running \
        and not c.State.Paused else {}
    if "freezer" in dirs:
        path, on, off, done = os.path.join(dirs["freezer"], "freezer.state"), "FROZEN", "THAWED", "FROZEN"
    elif "unified" in dirs:
        path, on, off, done = os.path.join(dirs["unified"], "cgroup.freeze"), "1", "0", None
    else:
        yield
        return
    try:
        with open(path, "w") as f:
            f.write(on)
    except OSError as exc:
        log.warning("commit: cannot freeze %s (%s): committing it running", c.ID[:12], exc)
        yield
        return
    try:
        deadline = time.monotonic() + timeout
        try:
            while done and time.monotonic() < deadline:   # v1 passes through FREEZING
                with open(path) as f:
                    if f.read().strip() == done:
                        break
                time.sleep(0.005)
        except FileNotFoundError:      # it exited meanwhile and its cgroup went: nothing left to freeze
            pass
        log.debug("commit: froze %s (%s)", c.ID[:12], path)
        yield
    finally:
        try:
            with open(path, "w") as f:
                f.write(off)
        except FileNotFoundError:
            pass
