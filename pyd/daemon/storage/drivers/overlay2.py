"""dockerd's overlay2 layout: a layer's own files in diff/, its parents as short `l/` links in lower.

    <home>/<cache-id>/{diff,work,merged,lower,link}   <home>/l/<short> -> ../<cache-id>/diff
"""
from __future__ import annotations

import base64
import logging
import os
from typing import Iterator

from pyd.daemon.fsutil import atomic_write, fsync_dir, read_text
from pyd.daemon.storage import archive, trees
from pyd.daemon.storage.drivers.base import DriverUnusable, StorageOptions, WhiteoutFormat
from pyd.daemon.storage.drivers.overlayfs import NEW_API, choose_mount_api, mount_overlay, overlay_supported, unmount

log = logging.getLogger("pyd.graph")


class Overlay2Driver:
    """Short `l/` links keep the lowerdir list compact (~128 lowers fit in one page for mount(2)).
    `new_api`: mount with the new mount API, else mount(2) (what start() found this kernel takes)."""
    name = "overlay2"
    whiteouts: WhiteoutFormat = "overlay"

    def __init__(self, home: str, new_api: bool = True):
        self.home = home
        self.new_api = new_api
        os.makedirs(os.path.join(home, "l"), 0o700, exist_ok=True)

    @staticmethod
    def unusable(data_root: str) -> str | None:
        """Why this driver cannot serve `data_root`, or None."""
        if overlay_supported(data_root):
            return None
        return f"overlayfs cannot be mounted on {data_root}"

    @classmethod
    def start(cls, data_root: str, opts: StorageOptions) -> Overlay2Driver:
        """The driver, mounting the way this kernel takes (tried once, here), every layer with its link."""
        try:
            api = choose_mount_api(data_root, opts.overlay_mount_api)
        except OSError as e:
            log.info("overlayfs not usable on %s: %s", data_root, e.strerror)
            raise DriverUnusable(f"overlayfs cannot be mounted on {data_root}: {e.strerror}") from None
        driver = cls(os.path.join(data_root, cls.name), new_api=api == NEW_API)
        driver.relink()
        return driver

    def relink(self) -> None:
        """Give every layer its `l/` link: one lost (or never made) would leave its children unmountable."""
        links = os.path.join(self.home, "l")
        for cache_id in os.listdir(self.home):
            d = self._dir(cache_id)
            if cache_id in ("l", "tmp") or not os.path.isdir(os.path.join(d, "diff")):
                continue
            link = read_text(os.path.join(d, "link"))
            path = os.path.join(links, link) if link else ""
            if link and os.path.islink(path):
                continue
            if link and "/" not in link:
                os.symlink(f"../{cache_id}/diff", path)      # the name the children's `lower` holds
            else:
                atomic_write(os.path.join(d, "link"), self._new_link(cache_id).encode())
            log.info("overlay2: layer %s had no l/ link; made one", cache_id[:12])

    def _dir(self, cache_id: str) -> str:
        return os.path.join(self.home, cache_id)

    def cache_ids(self) -> list[str]:
        return [n for n in os.listdir(self.home) if n != "l"] if os.path.isdir(self.home) else []

    def exists(self, cache_id: str) -> bool:
        return os.path.isdir(os.path.join(self._dir(cache_id), "diff"))

    def diff_dir(self, cache_id: str) -> str:
        return os.path.join(self._dir(cache_id), "diff")

    def create(self, cache_id: str, parent: str | None) -> None:
        self._create(cache_id, parent, durable=True)

    def create_rw(self, cache_id: str, parent: str | None) -> None:
        """No fsync: `repair` re-creates from the parent whatever a machine crash loses of it."""
        self._create(cache_id, parent, durable=False)

    def _create(self, cache_id: str, parent: str | None, durable: bool) -> None:
        """Nothing points at the new dir until the caller commits its own metadata: written in place."""
        d = self._dir(cache_id)
        os.makedirs(self.home, 0o710, exist_ok=True)
        os.mkdir(d, 0o710)
        os.mkdir(os.path.join(d, "diff"), 0o755)
        trees.write_new(os.path.join(d, "link"), self._new_link(cache_id).encode(), durable)
        if parent is not None:
            trees.write_new(os.path.join(d, "lower"), self._lower_of(parent).encode(), durable)
            os.mkdir(os.path.join(d, "work"), 0o700)
        if durable:
            fsync_dir(d)
            fsync_dir(os.path.join(self.home, "l"))
            fsync_dir(self.home)

    def _lower_of(self, parent: str) -> str:
        """The `lower` of a layer on `parent`: the parent's link, then the parent's lowers."""
        parent_link = read_text(os.path.join(self._dir(parent), "link"))
        parent_lower = read_text(os.path.join(self._dir(parent), "lower"))
        return f"l/{parent_link}" + (f":{parent_lower}" if parent_lower else "")

    def repair(self, cache_id: str, parent: str | None) -> None:
        d = self._dir(cache_id)
        os.makedirs(d, 0o710, exist_ok=True)
        os.makedirs(os.path.join(d, "diff"), 0o755, exist_ok=True)
        link = read_text(os.path.join(d, "link"))
        try:
            linked = bool(link) and os.readlink(os.path.join(self.home, "l", link)) == f"../{cache_id}/diff"
        except OSError:
            linked = False
        if not linked:
            atomic_write(os.path.join(d, "link"), self._new_link(cache_id).encode())
        if parent is not None:
            os.makedirs(os.path.join(d, "work"), 0o700, exist_ok=True)
            lower = self._lower_of(parent)
            if read_text(os.path.join(d, "lower")) != lower:
                atomic_write(os.path.join(d, "lower"), lower.encode())

    def _new_link(self, cache_id: str) -> str:
        while True:   # 26 chars of base32, as dockerd
            short = base64.b32encode(os.urandom(16)).decode().rstrip("=")
            try:
                os.symlink(f"../{cache_id}/diff", os.path.join(self.home, "l", short))
                return short
            except FileExistsError:
                continue

    def lowers(self, cache_id: str) -> list[str]:
        """The layer's parents' diff dirs (through their `l/` links), topmost first."""
        lower = read_text(os.path.join(self._dir(cache_id), "lower"))
        return [os.path.join(self.home, p) for p in lower.split(":")] if lower else []

    def mount(self, cache_id: str) -> str:
        d = self._dir(cache_id)
        lowers = self.lowers(cache_id)
        if not lowers:
            return os.path.join(d, "diff")   # nothing under it: the diff is the whole tree, as dockerd does
        merged = os.path.join(d, "merged")
        os.makedirs(merged, 0o700, exist_ok=True)
        if not os.path.ismount(merged):
            mount_overlay(merged, lowers, os.path.join(d, "diff"), os.path.join(d, "work"), self.new_api)
        return merged

    def unmount(self, cache_id: str) -> None:
        merged = os.path.join(self._dir(cache_id), "merged")
        if os.path.ismount(merged):
            unmount(merged)

    def remove(self, cache_id: str) -> None:
        d = self._dir(cache_id)
        self.unmount(cache_id)
        link = read_text(os.path.join(d, "link"))
        if link:
            try:
                os.unlink(os.path.join(self.home, "l", link))
            except FileNotFoundError:
                pass
        trees.remove_tree(d)

    def diff(self, cache_id: str, parent: str | None) -> Iterator[bytes]:
        """The upper dir is the diff already: its whiteout devices and opaque dirs become `.wh.` entries."""
        return archive.write_diff_tar(self.diff_dir(cache_id), self.lowers(cache_id), overlay=True)

    def lower_dirs(self, cache_id: str, parent: str | None) -> list[str]:
        return self.lowers(cache_id)

    def size(self, cache_id: str) -> int:
        return trees.tree_size(self.diff_dir(cache_id))

    def data(self, cache_id: str) -> dict[str, str] | None:
        """Full paths, lowers as their diff dirs."""
        d = self._dir(cache_id)
        out = {"MergedDir": os.path.join(d, "merged"), "UpperDir": os.path.join(d, "diff"),
               "WorkDir": os.path.join(d, "work")}
        lowers = [os.path.realpath(p) for p in self.lowers(cache_id)]
        if lowers:
            out["LowerDir"] = ":".join(lowers)
        return out
