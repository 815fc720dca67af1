"""Graph drivers and the one picker. A new driver is a module here and a line in DRIVERS."""
from __future__ import annotations

import os
from typing import Callable, Protocol

from pyd.daemon.storage.drivers.base import GraphDriver, WhiteoutFormat
from pyd.daemon.storage.drivers.overlay2 import Overlay2Driver
from pyd.daemon.storage.drivers.vfs import VfsDriver

__all__ = ["DRIVERS", "GraphDriver", "GraphDriverError", "WhiteoutFormat", "pick_driver"]


class DriverClass(Protocol):
    """What the picker needs of a driver's class: the name, a usability probe and the constructor."""
    name: str
    unusable: Callable[[str], str | None]

    def __call__(self, home: str) -> GraphDriver: ...


# In order of preference when the daemon is given no --storage-driver.
DRIVERS: dict[str, DriverClass] = {
    "overlay2": Overlay2Driver,
    "vfs": VfsDriver,
}


class GraphDriverError(ValueError):
    """The storage driver asked for cannot be used on this data-root (the daemon refuses to start)."""


def pick_driver(data_root: str, name: str | None) -> GraphDriver:
    """The driver named, or with None the first usable one, preferring what the data-root already holds
    (as dockerd does). Its home is `<data_root>/<name>`."""
    if name is not None:
        cls = DRIVERS.get(name)
        if cls is None:
            raise GraphDriverError(f"graph driver {name!r} is not supported (choose one of: {', '.join(DRIVERS)})")
        why = cls.unusable(data_root)
        if why:
            raise GraphDriverError(f"driver not supported: {name} ({why})")
        return cls(os.path.join(data_root, name))
    used = [n for n in DRIVERS if _used_before(data_root, n)]
    for candidate in used + [n for n in DRIVERS if n not in used]:
        cls = DRIVERS[candidate]
        if cls.unusable(data_root) is None:
            return cls(os.path.join(data_root, candidate))
    raise GraphDriverError(f"no graph driver can be used on {data_root}")


def _used_before(data_root: str, name: str) -> bool:
    return os.path.isdir(os.path.join(data_root, "image", name, "layerdb", "sha256"))
