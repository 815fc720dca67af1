"""Container cgroups with the cgroupfs driver: one cgroup per container, limits from the HostConfig.

The daemon creates and fills the cgroup before execd starts the container; execd moves the container's
init into it (``join_cgroup``); the daemon reads the OOM count at exit and removes the cgroup. What
differs between cgroup v1 (v1.py) and v2 (v2.py) is where the directories are and how limits, the
OOM count and the freezer are spelled; the life cycle is here.
"""
from __future__ import annotations

import errno
import logging
import os
import signal
import time
from typing import Any, Mapping

from pyd.daemon.cgroups.blkio_devices import device_io
from pyd.daemon.cgroups.devices import DeviceRule, host_config_rules
from pyd.daemon.errors import BadParameter

log = logging.getLogger("pyd")

CFS_PERIOD = 100_000                  # microseconds, as Docker uses for --cpus


def read_file(path: str) -> str:
    """A cgroup (or /proc) file's text, stripped; "" when it cannot be read."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def write_file(path: str, value: str | int) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def cfs(hc: Mapping[str, Any]) -> tuple[int, int]:
    """(period, quota) in microseconds from --cpus, or --cpu-period/--cpu-quota (-1: no quota)."""
    nano = hc.get("NanoCpus") or 0
    if nano:
        return CFS_PERIOD, nano * CFS_PERIOD // 10**9
    return hc.get("CpuPeriod") or CFS_PERIOD, hc.get("CpuQuota") or -1


def device_rules(hc: Mapping[str, Any]) -> list[DeviceRule]:
    """Docker's device rules for the HostConfig; BadParameter when a --device node is missing or a
    --device-cgroup-rule is malformed."""
    from pyd.daemon.spec.devices import resolve_devices
    from pyd.daemon.spec.security import DEFAULT_DEVICE_RULES
    devices = [f"{d.kind} {d.major}:{d.minor} {d.permissions}" for d in resolve_devices(hc)]
    try:
        return host_config_rules(hc, devices, DEFAULT_DEVICE_RULES)
    except ValueError as e:
        raise BadParameter(str(e)) from None


class Cgroups:
    """The cgroupfs driver's interface; this base is the host without cgroups (nothing to make or limit)."""

    # a container's cgroup namespace when its HostConfig names none (dockerd's default for the host)
    default_cgroupns = "host"

    def __init__(self, parent: str = "pyd") -> None:
        self.parent = parent.strip("/") or "pyd"

    # ---- paths
    @property
    def mount_points(self) -> Mapping[str, str]:
        """controller -> mount point of its v1 hierarchy (empty on v2)."""
        return {}

    def parent_dir(self) -> str | None:
        """v2: the cgroup the containers' cgroups are made in (None elsewhere, or when it cannot be made)."""
        return None

    def prepare(self) -> None:
        """At daemon start: what every container's cgroup needs above it."""

    def _relative(self, cid: str, hc: Mapping[str, Any]) -> str:
        parent = (hc.get("CgroupParent") or self.parent).strip("/")
        return f"{parent}/{cid}" if parent else cid

    def dirs(self, cid: str, hc: Mapping[str, Any]) -> dict[str, str]:
        """controller -> directory of the container's cgroup (v2: {"unified": dir})."""
        return {}

    def join_paths(self, cid: str, hc: Mapping[str, Any]) -> list[str]:
        """The distinct directories execd writes the init into (co-mounted controllers share one)."""
        seen: list[str] = []
        for d in self.dirs(cid, hc).values():
            if d not in seen:
                seen.append(d)
        return seen

    # ---- life cycle
    def create(self, cid: str, hc: dict[str, Any]) -> list[str]:
        """Make the cgroup and apply every limit; returns the warnings. Removes what it made on failure."""
        rules = device_rules(hc)   # before anything is made: the requested devices must exist
        device_io(hc)              # and those the block I/O settings name
        try:
            self._make(cid, hc)
            self._write_devices(cid, hc, rules)
            return self.apply(cid, hc)
        except OSError as e:
            self.remove(cid, hc)
            raise BadParameter(f"failed to create container cgroup: {e}") from None

    def _make(self, cid: str, hc: Mapping[str, Any]) -> None:
        for ctl, d in self.dirs(cid, hc).items():
            self._mkdir(ctl, d)

    def _mkdir(self, ctl: str, path: str) -> None:
        """mkdir -p, calling _init_level on each level made."""
        missing = []
        p = path
        while not os.path.isdir(p):
            missing.append(p)
            p = os.path.dirname(p)
        for d in reversed(missing):
            try:
                os.mkdir(d)
            except FileExistsError:
                pass
            self._init_level(ctl, d)

    def _init_level(self, ctl: str, path: str) -> None:
        """A cgroup directory just made under its parent."""

    def _write_devices(self, cid: str, hc: Mapping[str, Any], rules: list[DeviceRule]) -> None:
        """Enforce `rules` on the container's cgroup (nothing to write on a host without cgroups)."""

    def apply(self, cid: str, hc: Mapping[str, Any]) -> list[str]:
        """Write the HostConfig's limits (at create and on update); returns the warnings."""
        return []

    def _oom_file(self, dirs: Mapping[str, str]) -> str | None:
        """The file with the "oom_kill N" line, or None without a memory controller."""
        return None

    def oom_killed(self, cid: str, hc: Mapping[str, Any]) -> bool:
        """Did the kernel's OOM killer act in this cgroup?"""
        path = self._oom_file(self.dirs(cid, hc))
        if path is None:
            return False
        for line in read_file(path).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value) > 0
        return False

    def _freezer(self, dirs: Mapping[str, str], frozen: bool) -> tuple[str, str, str, str]:
        """(file to write, value, file to read, the state it shows when done)."""
        raise OSError(errno.ENOTSUP, "no freezer cgroup")

    def set_frozen(self, cid: str, hc: Mapping[str, Any], frozen: bool, timeout: float = 5.0) -> None:
        """docker pause/unpause: freeze or thaw every process of the container and wait until the kernel
        reports it done. OSError when there is no freezer."""
        path, want, check, done = self._freezer(self.dirs(cid, hc), frozen)
        deadline = time.monotonic() + timeout
        while True:
            write_file(path, want)   # v1 may stay FREEZING while a task is busy in the kernel: write again
            text = read_file(check)
            if done in text.splitlines() or text == done:
                return
            if time.monotonic() > deadline:
                raise OSError(errno.ETIMEDOUT, f"{path} did not reach {want}")
            time.sleep(0.005)

    def finish(self, cid: str, hc: Mapping[str, Any]) -> bool:
        """At the container's exit: whether it was OOM-killed; the cgroup is removed."""
        oom = self.oom_killed(cid, hc)
        self.remove(cid, hc)
        return oom

    def remove(self, cid: str, hc: Mapping[str, Any], timeout: float = 2.0) -> None:
        """rmdir every level made for the container; leftover processes (shared pid namespace) are killed."""
        for d in self.join_paths(cid, hc):
            deadline = time.monotonic() + timeout
            while os.path.isdir(d):
                try:
                    os.rmdir(d)
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        log.warning("cannot remove cgroup %s: %s", d, e)
                        break
                    for pid in read_file(os.path.join(d, "cgroup.procs")).split():
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except (OSError, ValueError):
                            pass
                    time.sleep(0.01)
