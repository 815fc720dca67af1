"""Graph drivers and the one picker. A new driver is a module here and a line in DRIVERS."""
from __future__ import annotations

import os
from typing import Callable, Protocol

from pyd.daemon.storage.drivers.base import DriverUnusable, GraphDriver, StorageOptions, WhiteoutFormat
from pyd.daemon.storage.drivers.overlay2 import Overlay2Driver
from pyd.daemon.storage.drivers.overlayfs import MOUNT_APIS
from pyd.daemon.storage.drivers.vfs import VfsDriver

__all__ = ["DRIVERS", "GraphDriver", "GraphDriverError", "StorageOptions", "WhiteoutFormat", "parse_storage_opts",
           "pick_driver"]


class DriverClass(Protocol):
    """What the picker needs of a driver's class: the name, a usability probe, and `start`: the driver
    for a data-root (its home `<data_root>/<name>`), or DriverUnusable saying why not."""
    name: str
    unusable: Callable[[str], str | None]
    start: Callable[[str, StorageOptions], GraphDriver]


# In order of preference when the daemon is given no --storage-driver.
DRIVERS: dict[str, DriverClass] = {
    "overlay2": Overlay2Driver,
    "vfs": VfsDriver,
}


class GraphDriverError(ValueError):
    """The storage driver asked for cannot be used on this data-root (the daemon refuses to start)."""


def pick_driver(data_root: str, name: str | None, opts: StorageOptions | None = None) -> GraphDriver:
    """The driver named, or with None the first usable one, preferring what the data-root already holds
    (as dockerd does). Its home is `<data_root>/<name>`."""
    opts = opts or StorageOptions()
    if name is not None:
        cls = DRIVERS.get(name)
        if cls is None:
            raise GraphDriverError(f"graph driver {name!r} is not supported (choose one of: {', '.join(DRIVERS)})")
        try:
            return cls.start(data_root, opts)
        except DriverUnusable as e:
            raise GraphDriverError(f"driver not supported: {name} ({e})") from None
    used = [n for n in DRIVERS if _used_before(data_root, n)]
    for candidate in used + [n for n in DRIVERS if n not in used]:
        try:
            return DRIVERS[candidate].start(data_root, opts)
        except DriverUnusable:
            continue
    raise GraphDriverError(f"no graph driver can be used on {data_root}")


def parse_storage_opts(opts: list[str]) -> StorageOptions:
    """dockerd's --storage-opt key=value list; GraphDriverError for what no driver here knows."""
    mount_api = None
    for opt in opts:
        key, sep, value = opt.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep:
            raise GraphDriverError(f"unable to parse storage-opt {opt!r}: expected key=value")
        if key != "overlay2.mount_api":
            raise GraphDriverError(f"{key.split('.')[0]}: unknown option {key}")
        if value not in MOUNT_APIS:
            raise GraphDriverError(f"overlay2.mount_api: {value!r} is not one of {', '.join(MOUNT_APIS)}")
        mount_api = value
    return StorageOptions(overlay_mount_api=mount_api)


def _used_before(data_root: str, name: str) -> bool:
    return os.path.isdir(os.path.join(data_root, "image", name, "layerdb", "sha256"))
