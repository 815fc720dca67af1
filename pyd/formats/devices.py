"""Docker's device mappings: the CLI's `--device HOST[:CONTAINER][:PERMS]` and the device cgroup
permissions (a non-empty mix of r, w, m) both sides check. Stdlib only, no I/O."""
from __future__ import annotations

DEFAULT_PERMISSIONS = "rwm"


def valid_permissions(text: str) -> bool:
    """A device cgroup access string: one or more of "r", "w", "m"."""
    return bool(text) and all(ch in "rwm" for ch in text)


def parse_device(text: str) -> dict[str, str]:
    """"/dev/fuse:/dev/f:rw" -> {"PathOnHost", "PathInContainer", "CgroupPermissions"}, as the docker CLI's
    parseDevice: a second field that reads as permissions is permissions. Raises ValueError."""
    parts = text.split(":")
    host = parts[0]
    inside, perms = host, DEFAULT_PERMISSIONS
    if len(parts) == 2:
        if valid_permissions(parts[1]):
            perms = parts[1]
        else:
            inside = parts[1]
    elif len(parts) == 3:
        inside, perms = parts[1], parts[2]
    elif len(parts) > 3:
        raise ValueError(f"invalid device specification: {text}")
    return {"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": perms}
