"""Per-device block I/O settings of a HostConfig (--device-read-bps, --device-write-bps,
--device-read-iops, --device-write-iops, --blkio-weight-device), resolved to the devices' numbers."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from pyd.daemon.errors import BadParameter

# HostConfig key -> the limit's name (v2's io.max key; v1 file blkio.throttle.<v1 name>_device)
THROTTLES = (("BlkioDeviceReadBps", "rbps", "read_bps"), ("BlkioDeviceWriteBps", "wbps", "write_bps"),
             ("BlkioDeviceReadIOps", "riops", "read_iops"), ("BlkioDeviceWriteIOps", "wiops", "write_iops"))


@dataclass
class DeviceIO:
    """One device's settings: limits by io.max key (rbps, wbps, riops, wiops) and a weight (0: none)."""
    numbers: str                                   # "MAJOR:MINOR"
    limits: dict[str, int] = field(default_factory=dict)
    weight: int = 0


def _numbers(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError as e:
        # dockerd's words (Go's *PathError) when the container starts
        raise BadParameter(f"stat {path}: {os.strerror(e.errno).lower()}") from None
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


def device_io(hc: Mapping[str, Any]) -> list[DeviceIO]:
    """Every device a setting names, in the order first named; BadParameter when a device is missing."""
    by_path: dict[str, DeviceIO] = {}

    def entry(path: str) -> DeviceIO:
        if path not in by_path:
            by_path[path] = DeviceIO(_numbers(path))
        return by_path[path]
    for key, name, _ in THROTTLES:
        for item in hc.get(key) or []:
            entry(item["Path"]).limits[name] = int(item.get("Rate") or 0)
    for item in hc.get("BlkioWeightDevice") or []:
        entry(item["Path"]).weight = int(item.get("Weight") or 0)
    return list(by_path.values())
