"""Start-up checks and repairs of what a crash (kill -9, power loss) can leave behind.

Every metadata write is atomic, so a crash leaves whole files; what it can leave is work half done:
a container directory whose create never finished, a removal that never finished, a root filesystem
still mounted for a container that is no longer running, execd state directories of containers that are
gone, containers started with --rm that exited while no daemon was there, the temp files of an
interrupted load, pull, build or upload (and, in Graph, the layers such an operation registered). Each repair is logged as
`level=warning msg="repair: ..."`.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import signal
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pyd.daemon.cgroups.base import Cgroups
    from pyd.daemon.containers.model import Container
    from pyd.daemon.containers.settings import ContainerSettings
    from pyd.daemon.storage.graph import Graph


class StartupRestarts(Protocol):
    def on_daemon_start(self, c: Container) -> None: ...


class Restored(Protocol):
    """The container service as start-up finds it: containers loaded, their execds reattached."""
    @property
    def root(self) -> str: ...
    @property
    def settings(self) -> ContainerSettings: ...
    @property
    def graph(self) -> Graph: ...
    @property
    def cgroups(self) -> Cgroups: ...
    @property
    def by_id(self) -> dict[str, Container]: ...
    @property
    def restarts(self) -> StartupRestarts: ...
    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None: ...

log = logging.getLogger("pyd")

CONTAINER_ID = re.compile(r"^[0-9a-f]{64}$")
MNT_DETACH = 2


def sweep_tmp(tmp_dir: str) -> None:
    """data-root/tmp holds only what running operations spool (upload-*, load-*, blob-*, build-*): at
    start-up none runs, so whatever is there was left by an interrupted one."""
    from pyd.daemon.storage.trees import remove_tree
    try:
        entries = sorted(os.listdir(tmp_dir))
    except FileNotFoundError:
        return
    for entry in entries:
        path = os.path.join(tmp_dir, entry)
        log.warning("repair: removing %s left by an interrupted operation", path)
        try:
            remove_tree(path)
        except OSError as e:
            log.warning("repair: could not remove %s: %s", path, e)


def before_restore(svc: Restored) -> None:
    """Before containers are loaded: drop half-created container directories."""
    for entry in sorted(os.listdir(svc.root)):
        path = os.path.join(svc.root, entry)
        if not CONTAINER_ID.match(entry) or not os.path.isdir(path):
            continue
        missing = [n for n in ("config.v2.json", "hostconfig.json") if not os.path.exists(os.path.join(path, n))]
        if not missing:
            continue
        log.warning("repair: removing half-created container %s (no %s)", entry[:12], " or ".join(missing))
        try:
            svc.graph.remove_rw(entry)
        except Exception as e:  # a layer that cannot go now is reported; the directory still goes
            log.warning("repair: could not remove the read-write layer of %s: %s", entry[:12], e)
        doomed = path + ".removing"
        os.replace(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


async def after_restore(svc: Restored) -> None:
    """After containers are loaded and reattached: stale exec state, orphan mounts, --rm leftovers, and
    the restart policies' start-up restarts."""
    clean_exec_root(svc)
    unmount_orphans(svc)
    remove_orphan_rw_layers(svc)
    remove_stale_cgroups(svc)
    for c in list(svc.by_id.values()):
        if c.HostConfig.get("AutoRemove") and not c.State.Running and c.State.Status not in ("created",):
            log.warning("repair: removing --rm container %s that exited while the daemon was down", c.short_id)
            try:
                await svc.remove(c.ID, force=True)
            except Exception as e:
                log.warning("repair: could not remove container %s: %s", c.short_id, e)
    for c in list(svc.by_id.values()):
        svc.restarts.on_daemon_start(c)


def remove_orphan_rw_layers(svc: Restored) -> None:
    """Read-write layers no container owns: the scratch layers of a build (COPY, ADD) a crash interrupted."""
    for owner in svc.graph.rw_ids():
        if owner in svc.by_id:
            continue
        log.warning("repair: removing read-write layer %s that no container owns", owner[:24])
        try:
            svc.graph.remove_rw(owner)
        except Exception as e:   # reported; start-up goes on
            log.warning("repair: could not remove read-write layer %s: %s", owner[:24], e)


def clean_exec_root(svc: Restored) -> None:
    """exec-root/<id>/ of containers that are not running: leftovers of a crash (or of a container that
    was removed while its execd lived on: that execd and its container are killed)."""
    root = svc.settings.exec_root
    try:
        entries = os.listdir(root)
    except OSError:
        return
    for entry in entries:
        path = os.path.join(root, entry)
        if not CONTAINER_ID.match(entry) or not os.path.isdir(path):
            continue
        c = svc.by_id.get(entry)
        if c is not None and c.State.Running and c.execd is not None:
            continue
        if c is None:
            _kill_orphan_execd(path, entry)
        log.warning("repair: removing stale exec state of %s", entry[:12])
        shutil.rmtree(path, ignore_errors=True)


def _kill_orphan_execd(state_dir: str, cid: str) -> None:
    try:
        with open(os.path.join(state_dir, "pid")) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return
    try:   # a recycled PID of a host process has the host's root: only a pivoted process is killed
        in_container = pid > 1 and os.readlink(f"/proc/{pid}/root") != "/"
    except OSError:
        in_container = False
    if in_container:
        log.warning("repair: killing process %d of removed container %s", pid, cid[:12])
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def remove_stale_cgroups(svc: Restored) -> None:
    """cgroups (pyd/daemon/cgroups/) of containers that are not running: left when the daemon died at an exit."""
    cg = svc.cgroups
    for c in svc.by_id.values():
        if c.State.Running and c.execd is not None:
            continue
        try:
            stale = [d for d in cg.join_paths(c.ID, c.HostConfig) if os.path.isdir(d)]
            if stale:
                log.warning("repair: removing leftover cgroup of %s (%s)", c.short_id, ", ".join(stale))
                cg.remove(c.ID, c.HostConfig)
        except Exception as e:   # a cgroup that cannot go is reported, start-up goes on
            log.warning("repair: could not remove the cgroup of %s: %s", c.short_id, e)


def mounts_under(prefix: str) -> list[str]:
    """Mount points below prefix, deepest first (from /proc/self/mountinfo)."""
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = _unescape(line.split()[4])
                if point.startswith(prefix.rstrip("/") + "/"):
                    out.append(point)
    except OSError:
        return []
    return sorted(set(out), key=len, reverse=True)


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def unmount_orphans(svc: Restored) -> None:
    """Mounts under the graph driver's home that belong to no running container."""
    from pyd.daemon.runtime import native

    graph = svc.graph
    home = os.path.join(svc.settings.data_root, graph.driver_name)
    expected = set()
    for c in svc.by_id.values():
        if c.State.Running and c.execd is not None:
            try:
                data = graph.rw_metadata(c.ID) or {}
            except Exception:
                continue
            if data.get("MergedDir"):
                expected.add(os.path.realpath(data["MergedDir"]))
    for point in mounts_under(os.path.realpath(home)):
        if point in expected:
            continue
        log.warning("repair: unmounting orphaned mount %s", point)
        try:
            native.umount2(point, MNT_DETACH)
        except OSError as e:
            log.warning("repair: could not unmount %s: %s", point, e)
