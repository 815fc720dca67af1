"""Full copies: every layer directory holds its whole tree. Works on any filesystem.

    <home>/dir/<cache-id>/
"""
from __future__ import annotations

import os
from typing import Iterator

from pyd.daemon.storage import archive, trees
from pyd.daemon.storage.drivers.base import StorageOptions, WhiteoutFormat


class VfsDriver:
    name = "vfs"
    whiteouts: WhiteoutFormat = "vfs"

    def __init__(self, home: str):
        self.home = home
        os.makedirs(os.path.join(home, "dir"), 0o700, exist_ok=True)

    @staticmethod
    def unusable(data_root: str) -> str | None:
        return None

    @classmethod
    def start(cls, data_root: str, opts: StorageOptions) -> VfsDriver:
        return cls(os.path.join(data_root, cls.name))

    def diff_dir(self, cache_id: str) -> str:
        return os.path.join(self.home, "dir", cache_id)

    def cache_ids(self) -> list[str]:
        top = os.path.join(self.home, "dir")
        return os.listdir(top) if os.path.isdir(top) else []

    def exists(self, cache_id: str) -> bool:
        return os.path.isdir(self.diff_dir(cache_id))

    def create(self, cache_id: str, parent: str | None) -> None:
        d = self.diff_dir(cache_id)
        if parent is None:
            os.mkdir(d, 0o755)
        else:
            trees.copy_tree(self.diff_dir(parent), d)

    def create_rw(self, cache_id: str, parent: str | None) -> None:
        self.create(cache_id, parent)   # a container layer is a copy of its parent, as an image layer is

    def repair(self, cache_id: str, parent: str | None) -> None:
        pass

    def mount(self, cache_id: str) -> str:
        return self.diff_dir(cache_id)

    def unmount(self, cache_id: str) -> None:
        pass

    def remove(self, cache_id: str) -> None:
        trees.remove_tree(self.diff_dir(cache_id))

    def diff(self, cache_id: str, parent: str | None) -> Iterator[bytes]:
        """No native diff: the tree is compared with the parent's copy."""
        lowers = [self.diff_dir(parent)] if parent else []
        return archive.write_diff_tar(self.diff_dir(cache_id), lowers, overlay=False)

    def lower_dirs(self, cache_id: str, parent: str | None) -> list[str]:
        return [self.diff_dir(parent)] if parent else []      # the parent's copy is a whole tree

    def size(self, cache_id: str) -> int:
        return trees.tree_size(self.diff_dir(cache_id))

    def data(self, cache_id: str) -> dict[str, str] | None:
        return None
