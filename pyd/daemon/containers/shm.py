"""/dev/shm for the IPC modes, as dockerd sets it up.

private (default): execd's own tmpfs inside the container. shareable: a tmpfs the daemon mounts at
``<container root>/mounts/shm`` (Docker's ShmPath) and binds into the container, so that containers in
``--ipc container:<id>`` mode can bind the same one. host: the host's /dev/shm. The daemon's tmpfs goes
when the container stops.

plan() decides which directory is bound (no I/O: the spec is built from it); prepare() then mounts the
shareable tmpfs, or checks that the donor's is there.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Protocol

from pyd.daemon.containers.model import Container
from pyd.daemon.runtime import native
from pyd.daemon.runtime.execdriver import ExecError

log = logging.getLogger("pyd")

HOST_SHM = "/dev/shm"
DEFAULT_SIZE = 64 << 20


class ContainerLookup(Protocol):
    def get(self, ref: str) -> Container: ...


@dataclass(frozen=True)
class ShmPlan:
    source: str | None = None   # the host directory bound at /dev/shm; None: execd's private tmpfs
    mount_size: int = 0         # shareable: the tmpfs to mount at source, of this size (once)
    donor: str = ""             # container:<donor>: whose shareable tmpfs source must be


def shm_path(c: Container) -> str:
    return os.path.join(c.root, "mounts", "shm")


def plan(c: Container, containers: ContainerLookup) -> ShmPlan:
    hc = c.HostConfig
    return _plan(c, containers, hc.get("IpcMode") or "private", int(hc.get("ShmSize") or DEFAULT_SIZE))


def _plan(c: Container, containers: ContainerLookup, mode: str, shm_size: int) -> ShmPlan:
    if mode == "host":
        return ShmPlan(HOST_SHM)
    if mode == "shareable":
        return ShmPlan(shm_path(c), mount_size=shm_size)
    if mode.startswith("container:"):
        ref = mode.split(":", 1)[1]
        donor = containers.get(ref)
        donor_mode = donor.HostConfig.get("IpcMode") or ""
        if donor_mode == "host":
            return ShmPlan(HOST_SHM)
        if donor_mode.startswith("container:"):   # a chain: the shm the donor itself has
            return _plan(donor, containers, donor_mode, shm_size)
        return ShmPlan(shm_path(donor), donor=ref)
    return ShmPlan()


def prepare(p: ShmPlan) -> None:
    """Mount the shareable tmpfs unless it is there (exec prepares again), or check the donor's is.
    ExecError with dockerd's words when the donor has no shareable shm."""
    if p.source is None:
        return
    if p.donor:
        if not os.path.ismount(p.source):
            raise ExecError(f"container {p.donor}: non-shareable IPC "
                            "(hint: use IpcMode:shareable for the donor container)", 125, "ipc")
        return
    if not p.mount_size or os.path.ismount(p.source):
        return
    try:
        os.makedirs(p.source, mode=0o700, exist_ok=True)
        native.mount("shm", p.source, "tmpfs", native.MS_NOSUID | native.MS_NODEV | native.MS_NOEXEC,
                     f"mode=1777,size={p.mount_size}")
    except OSError as e:
        raise ExecError(f"mounting shm tmpfs: {e}", 125, "ipc") from None


def release(c: Container) -> None:
    """After the container stopped: unmount the shareable tmpfs (lazily: a joiner may still hold it)."""
    path = shm_path(c)
    if os.path.ismount(path):
        try:
            native.umount2(path, native.MNT_DETACH)
        except OSError as e:
            log.warning("unmount of %s failed: %s", path, e)
