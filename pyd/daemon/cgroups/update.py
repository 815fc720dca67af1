"""docker update: the new resource limits, checked, stored in the HostConfig and written into the cgroup
of a running container."""
from __future__ import annotations

import os
from typing import Any

from pyd.daemon.cgroups.base import Cgroups
from pyd.daemon.cgroups.resources import SwapBelowMemory, update_host_config
from pyd.daemon.containers.model import Container
from pyd.daemon.errors import BadParameter


def update_container(cg: Cgroups, c: Container, body: Any) -> list[str]:
    """Validate, store in the HostConfig, and write the cgroup of a running container; the warnings."""
    if not isinstance(body, dict):
        raise BadParameter("invalid JSON: body is empty")
    try:
        checked: list[str] = []
        new = update_host_config(c.HostConfig, body, checked)
    except SwapBelowMemory as e:
        raise BadParameter(f"Cannot update container {c.ID}: {e}") from None
    warnings: list[str] = []
    if c.State.Running and os.path.isdir(cg.join_paths(c.ID, new)[0] if cg.join_paths(c.ID, new) else "/nonexistent"):
        try:
            warnings = cg.apply(c.ID, new)
        except OSError as e:
            raise BadParameter(f"Cannot update container {c.ID}: {e}") from None
    warnings = checked + [w for w in warnings if w not in checked]
    c.HostConfig.clear()
    c.HostConfig.update(new)
    return warnings
