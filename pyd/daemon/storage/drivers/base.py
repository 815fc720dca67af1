"""The graph-driver contract: what the graph and the containers ask of a driver, and nothing else.

A driver keeps layers as directories named by a cache id under its home (`<data-root>/<name>/`). A layer
is created on an optional parent, filled by extracting a layer tar into its diff dir, mounted (get) to
give a whole root filesystem, unmounted (put), diffed against its parent and removed. The graph owns all
metadata (layerdb); a driver never reads or writes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Literal, Protocol

WhiteoutFormat = Literal["overlay", "vfs"]


@dataclass(frozen=True)
class StorageOptions:
    """The daemon's settings for its driver."""
    overlay_mount_api: str | None = None
    """overlay2: "new" (the new mount API) or "mount2" only; None: the first of the two this kernel takes."""


class DriverUnusable(Exception):
    """This driver cannot serve the data-root: the message says why."""


class GraphDriver(Protocol):
    name: str
    """"overlay2", "vfs": the home's folder name, the API's Driver and GraphDriver.Name."""
    home: str
    whiteouts: WhiteoutFormat
    """How extraction stores a layer's whiteouts: "overlay" keeps them as overlayfs reads them (0/0 char
    devices, the opaque xattr); "vfs" applies them by deleting from the parent's copy."""

    def exists(self, cache_id: str) -> bool:
        """The layer's directory is there."""

    def cache_ids(self) -> list[str]:
        """The names of the layer directories in the home, complete or not."""

    def create(self, cache_id: str, parent: str | None) -> None:
        """A new image layer on `parent` (a cache id), durable once this returns."""

    def create_rw(self, cache_id: str, parent: str | None) -> None:
        """A new container layer on `parent`. A driver whose `repair` can rebuild it from the parent may
        skip the fsyncs."""

    def repair(self, cache_id: str, parent: str | None) -> None:
        """Re-create what a machine crash lost of a container layer made by `create_rw` (kept parts stay)."""

    def diff_dir(self, cache_id: str) -> str:
        """Where the layer's own files are: the target of a layer tar's extraction."""

    def mount(self, cache_id: str) -> str:
        """Make the layer's whole tree (its parents' files beneath its own) visible; return its path."""

    def unmount(self, cache_id: str) -> None:
        """Undo `mount`; a no-op when it is not mounted (also after a daemon restart)."""

    def remove(self, cache_id: str) -> None:
        """Unmount and delete the layer's directory and everything the driver keeps for it."""

    def diff(self, cache_id: str, parent: str | None) -> Iterator[bytes]:
        """A layer tar of what the layer changes over `parent`, with `.wh.` whiteouts for deletions; ends
        with the tar's end blocks (just those when nothing changed)."""

    def lower_dirs(self, cache_id: str, parent: str | None) -> list[str]:
        """The trees beneath the layer where its paths are looked up, topmost first."""

    def size(self, cache_id: str) -> int:
        """Bytes of the files in the layer's diff dir."""

    def data(self, cache_id: str) -> dict[str, str] | None:
        """`docker inspect`'s GraphDriver.Data of a layer (None when the driver has none)."""
