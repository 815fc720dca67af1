"""/dev/shm for the IPC modes, as dockerd sets it up.

private (default): execd's own tmpfs inside the container. shareable: a tmpfs the daemon mounts at
``<container root>/mounts/shm`` (Docker's ShmPath) and binds into the container, so that containers in
``--ipc container:<id>`` mode can bind the same one. host: the host's /dev/shm. The daemon's tmpfs goes
when the container stops.
"""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from pyd.daemon.runtime import native

if TYPE_CHECKING:
    from pyd.daemon.containers.model import Container
    from pyd.daemon.containers.speccontext import SpecContext as Daemon
    from pyd.daemon.runtime.execdriver import ContainerSpec

log = logging.getLogger("pyd")

HOST_SHM = "/dev/shm"


def shm_path(c: "Container") -> str:
    return os.path.join(c.root, "mounts", "shm")


def source_for(daemon: "Daemon", c: "Container", mode: str, shm_size: int) -> str | None:
    """The host directory bound at the container's /dev/shm, or None for execd's private tmpfs.

    Raises ValueError with dockerd's words when the donor of container:<id> has no shareable shm."""
    if mode == "host":
        return HOST_SHM
    if mode == "shareable":
        path = shm_path(c)
        if not os.path.ismount(path):   # exec builds the spec again: mount once
            os.makedirs(path, mode=0o700, exist_ok=True)
            native.mount("shm", path, "tmpfs", native.MS_NOSUID | native.MS_NODEV | native.MS_NOEXEC,
                         f"mode=1777,size={shm_size}")
        return path
    if mode.startswith("container:"):
        ref = mode.split(":", 1)[1]
        donor = daemon.containers.get(ref)
        donor_mode = donor.HostConfig.get("IpcMode") or ""
        if donor_mode == "host":
            return HOST_SHM
        if donor_mode.startswith("container:"):   # a chain: the shm the donor itself has
            return source_for(daemon, donor, donor_mode, shm_size)
        path = shm_path(donor)
        if not os.path.ismount(path):
            raise ValueError(f"container {ref}: non-shareable IPC "
                             "(hint: use IpcMode:shareable for the donor container)")
        return path
    return None


def configure(daemon: "Daemon", c: "Container", spec: "ContainerSpec") -> None:
    """Bind the shared /dev/shm into the spec (the private one needs nothing)."""
    from pyd.daemon.runtime.execdriver import ExecError, Mount
    hc = c.HostConfig
    try:
        source = source_for(daemon, c, hc.get("IpcMode") or "private", int(hc.get("ShmSize") or 64 << 20))
    except ValueError as e:
        raise ExecError(str(e), 125, "ipc") from None
    except OSError as e:
        raise ExecError(f"mounting shm tmpfs: {e}", 125, "ipc") from None
    if source is None:
        return
    spec.mounts.insert(0, Mount(destination="/dev/shm", type="bind", source=source, options=["rbind", "rprivate"]))
    if spec.security is not None:
        spec.security.shm_size = 0   # the size is the shared tmpfs's, not for execd to change


def release(c: Any) -> None:
    """After the container stopped: unmount the shareable tmpfs (lazily: a joiner may still hold it)."""
    path = shm_path(c)
    if os.path.ismount(path):
        try:
            native.umount2(path, native.MNT_DETACH)
        except OSError as e:
            log.warning("unmount of %s failed: %s", path, e)
