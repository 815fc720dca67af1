"""run/create's mount flags (-v, --mount, --tmpfs, --volumes-from) turned into the create request as
docker's CLI does."""
from __future__ import annotations

import os

TYPE_CHECKING = False     # typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

from pyd.client.flags import LIST, Flag, Options
from pyd.formats.units import ram_in_bytes


def mount_flags() -> list[Flag]:
    return [
        Flag("volume", "v", LIST, help="Bind mount a volume"),
        Flag("mount", "", LIST, metavar="mount", help="Attach a filesystem mount to the container",
             validate=parse_mount_flag),
        Flag("tmpfs", "", LIST, help="Mount a tmpfs directory"),
        Flag("volumes-from", "", LIST, help="Mount volumes from the specified container(s)"),
    ]


def _truthy(key: str, value: str | None) -> bool:
    if value is None:
        return True
    if value.lower() in ("1", "true"):
        return True
    if value.lower() in ("0", "false"):
        return False
    raise ValueError(f"invalid value for {key}: {value}")


def parse_mount_flag(raw: str) -> dict[str, Any]:
    """--mount type=bind,src=/a,dst=/b,readonly -> an API Mount object."""
    m: dict[str, Any] = {"Type": "volume"}
    bind: dict[str, Any] = {}
    vol: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}
    for field in [f for f in raw.split(",") if f]:
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        val = value if eq else None
        if key == "type":
            m["Type"] = value
        elif key in ("source", "src"):
            m["Source"] = value
        elif key in ("target", "dst", "destination"):
            m["Target"] = value
        elif key in ("readonly", "ro"):
            m["ReadOnly"] = _truthy(key, val)
        elif key == "consistency":
            m["Consistency"] = value
        elif key == "bind-propagation":
            bind["Propagation"] = value
        elif key == "bind-nonrecursive":
            bind["NonRecursive"] = _truthy(key, val)
        elif key == "bind-create-mountpoint":
            bind["CreateMountpoint"] = _truthy(key, val)
        elif key == "volume-nocopy":
            vol["NoCopy"] = _truthy(key, val)
        elif key == "volume-subpath":
            vol["Subpath"] = value
        elif key == "volume-label":
            k, _, v = value.partition("=")
            vol.setdefault("Labels", {})[k] = v
        elif key == "volume-driver":
            vol.setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            k, _, v = value.partition("=")
            vol.setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "tmpfs-size":
            tmpfs["SizeBytes"] = ram_in_bytes(value)
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(value, 8)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {value}") from None
        else:
            raise ValueError(f"unexpected key '{key}' in '{field}'")
    if m["Type"] not in ("bind", "volume", "tmpfs", "npipe", "cluster", "image"):
        raise ValueError(f"invalid value for type: {m['Type']}")
    if not m.get("Target"):
        raise ValueError("target is required")
    if bind:
        m["BindOptions"] = bind
    if vol:
        m["VolumeOptions"] = vol
    if tmpfs:
        m["TmpfsOptions"] = tmpfs
    return m


def apply_mount_flags(opts: Options, body: dict[str, Any]) -> None:
    """-v, --mount, --tmpfs, --volumes-from into the create request, as docker's CLI splits them: a -v with
    a source is a Bind (relative host paths made absolute), a bare path an anonymous volume."""
    binds, volumes = [], {}
    for spec in opts.volume:
        parts = spec.split(":")
        if len(parts) == 1 or (len(parts) == 2 and parts[0].startswith("/") and not parts[1].startswith("/")):
            volumes[parts[0]] = {}
            continue
        if parts[0].startswith("."):
            parts[0] = os.path.abspath(parts[0])
        binds.append(":".join(parts))
    hc = body["HostConfig"]
    if binds:
        hc["Binds"] = binds
    if volumes:
        body["Volumes"] = volumes
    if opts.mount:
        hc["Mounts"] = list(opts.mount)
    if opts.tmpfs:
        tmpfs = {}
        for item in opts.tmpfs:
            dest, _, options = item.partition(":")
            tmpfs[dest] = options
        hc["Tmpfs"] = tmpfs
    if opts.volumes_from:
        hc["VolumesFrom"] = list(opts.volumes_from)
