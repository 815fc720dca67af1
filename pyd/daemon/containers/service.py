"""Container operations: the daemon methods the API routes call (create, start, stop, kill, wait, rm...).

The path of a request: api/containers.py parses and validates, calls a method here, which drives the
graph (rootfs), the exec driver (execd) and the event bus, and persists the container after each change.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import shutil
import signal as signal_mod
import time
from typing import TYPE_CHECKING, Any

from pyd.daemon.containers import etcfiles, initlayer
from pyd.daemon.containers import mounts
from pyd.daemon.containers.execs import ExecService
from pyd.daemon.containers.health import HealthMonitor
from pyd.daemon.containers.image_platform import check_platform
from pyd.daemon.containers.model import Container, config_env
from pyd.formats import rfc3339
from pyd.daemon.containers.restart import RestartManager
from pyd.daemon.containers.settings import ContainerSettings
from pyd.daemon.containers.store import ContainerStore
from pyd.daemon.errors import BadParameter, Conflict, NotFound, NotModified, ServerError
from pyd.daemon.network import links
from pyd.daemon.storage.trees import tree_size
from pyd.daemon.api.validate import strslice

if TYPE_CHECKING:
    from pyd.daemon.cgroups.base import Cgroups
    from pyd.daemon.containers.spec_inputs import SpecSources
    from pyd.daemon.events import EventBus
    from pyd.daemon.network.controller import NetworkController
    from pyd.daemon.runtime.execdriver import ExecDriver, Execd, ExitStatus
    from pyd.daemon.storage.graph import Graph
    from pyd.daemon.volumes.store import VolumeStore

log = logging.getLogger("pyd")

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
DEFAULT_STOP_TIMEOUT = 10
KILL_WAIT = 10


def parse_signal(value: str | int | None, default: int = signal_mod.SIGKILL) -> int:
    """Docker accepts "KILL", "SIGKILL" or "9"."""
    if value in (None, ""):
        return default
    text = str(value).upper()
    if text.isdigit():
        num = int(text)
        if 0 < num < 65:
            return num
    else:
        name = text if text.startswith("SIG") else "SIG" + text
        sig = getattr(signal_mod.Signals, name, None) if name in signal_mod.Signals.__members__ else None
        if sig is not None:
            return int(sig)
    raise BadParameter(f"Invalid signal: {value}")


class ContainerService:
    """The container verbs; owns the exec instances, the restart policies and the healthchecks."""

    def __init__(self, settings: ContainerSettings, store: ContainerStore, graph: "Graph", driver: "ExecDriver",
                 cgroups: "Cgroups", volumes: "VolumeStore", networks: "NetworkController",
                 events: "EventBus") -> None:
        self.settings = settings
        self.store = store
        self.graph = graph
        self.driver = driver
        self.cgroups = cgroups
        self.volumes = volumes
        self.networks = networks
        self.events = events
        self.root = os.path.join(settings.data_root, "containers")
        self.shutting_down = False               # set by the engine: no restarts and no --rm removals then
        self.tasks: set[asyncio.Future[Any]] = set()   # exit watchers and removals, kept referenced
        # what spec building reads (spec/, shm) besides the container
        self.execs = ExecService(self)           # docker exec instances (in memory, as in Docker)
        self.restarts = RestartManager(self)     # restart policies and their back-off
        self.health = HealthMonitor(self.execs, self.publish_event)   # healthcheck probes

    def keep(self, task: asyncio.Future[Any]) -> None:
        """Hold a background task (exit watcher, removal) until it is done."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # ------------------------------------------------------------ lookup
    @property
    def by_id(self) -> dict[str, Container]:
        return self.store.by_id

    @property
    def names(self) -> dict[str, str]:
        return self.store.names

    def all(self) -> list[Container]:
        return self.store.all()

    def get(self, ref: str) -> Container:
        return self.store.get(ref)

    def find(self, cid: str) -> Container | None:
        return self.store.find(cid)

    def image_in_use(self, image_id: str) -> str | None:
        """ID of a container using the image, for rmi's conflict check."""
        return next((c.ID for c in self.by_id.values() if c.Image == image_id), None)

    def image_running(self, image_id: str) -> str | None:
        """ID of a running container using the image: a conflict rmi -f cannot override."""
        return next((c.ID for c in self.by_id.values() if c.Image == image_id and c.State.Running), None)

    def publish_event(self, c: Container, action: str, **extra: str) -> None:
        """A container event with Docker's attributes: image, name, the labels, and `extra`."""
        attrs = {"image": c.Config.get("Image", ""), "name": c.Name.lstrip("/"),
                 **{k: v for k, v in (c.Config.get("Labels") or {}).items()}, **extra}
        self.events.publish("container", action, c.ID, attrs)

    # ------------------------------------------------------------ create
    async def create(self, name: str | None, body: Any, platform: str = "") -> dict[str, Any]:
        host_config = dict(body.get("HostConfig") or {})
        image_ref = body.get("Image") or ""
        if not image_ref:
            raise BadParameter("config cannot be empty in order to create a container")
        image = self.graph.resolve_image(image_ref)
        platform_warnings = check_platform(image_ref, image.config, platform, self.graph.platform)
        if name:
            if not NAME_RE.match(name):
                raise BadParameter(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
            full = "/" + name.lstrip("/")
            if full in self.names:
                raise Conflict(f'Conflict. The container name "{full}" is already in use by container '
                               f'"{self.names[full]}". You have to remove (or rename) that container to be '
                               "able to reuse that name.")
        else:
            from pyd.daemon.containers.names import random_name
            full = "/" + random_name({n.lstrip("/") for n in self.names})
        config = merge_image_config(body, image.container_config())
        working_dir = config.get("WorkingDir") or ""
        if working_dir and not working_dir.startswith("/"):
            raise BadParameter(f"the working directory '{working_dir}' is invalid, it needs to be an absolute path")
        if not config.get("Cmd") and not config.get("Entrypoint"):
            raise BadParameter("no command specified")
        if config.get("StopSignal"):
            parse_signal(config["StopSignal"])       # dockerd refuses a bad one at create
        warnings: list[str] = list(platform_warnings)
        host_config = normalize_host_config(host_config, warnings, self.settings.log_driver)
        if host_config.get("StorageOpt") and self.graph.driver_name == "overlay2":   # no xfs project quotas here
            raise BadParameter("--storage-opt is supported only for overlay over xfs with 'pquota' mount option")
        cid = secrets.token_hex(32)
        config["Hostname"] = config.get("Hostname") or cid[:12]
        path, args = entrypoint_and_args(config)
        root = os.path.join(self.root, cid)
        c = Container(ID=cid, Name=full, Image=image.id, Config=config, HostConfig=host_config, root=root,
                      Path=path, Args=args, Driver=self.graph.driver_name)
        self.networks.configure_container(c, body.get("NetworkingConfig"))
        mounts.check(self.store, c)             # bad -v/--mount/--tmpfs: 400 before anything is made
        self.names[full] = cid   # reserve before the first await
        try:
            os.makedirs(root, mode=0o710)
            await asyncio.to_thread(self.graph.create_rw, cid, image.id)
            await asyncio.to_thread(self._init_layer, cid)
            c.MountPoints = await asyncio.to_thread(mounts.resolve, self.volumes, self.store, self.graph, c)
            self._write_etc_files(c)
            await c.persist()                    # fsyncs off the loop; durable before the 201
        except BaseException:
            self.names.pop(full, None)
            shutil.rmtree(root, ignore_errors=True)
            raise
        self.by_id[cid] = c
        self.publish_event(c, "create")
        return {"Id": cid, "Warnings": warnings}

    def _init_layer(self, cid: str) -> None:
        rootfs = self.graph.mount_rw(cid)
        try:
            initlayer.populate(rootfs)
        finally:
            self.graph.unmount_rw(cid)

    def _write_etc_files(self, c: Container) -> None:
        hc = c.HostConfig
        if hc.get("NetworkMode") == "host":
            import socket
            c.Config["Hostname"] = socket.gethostname()
        etcfiles.write_hostname(c.path("hostname"), c.Config["Hostname"])
        extra = [tuple(h.split(":", 1)[::-1]) for h in hc.get("ExtraHosts") or [] if ":" in h]
        etcfiles.write_hosts(c.path("hosts"), extra)  # type: ignore[arg-type]
        etcfiles.write_resolv_conf(c.path("resolv.conf"), dns=hc.get("Dns"), search=hc.get("DnsSearch"),
                                   options=hc.get("DnsOptions"))

    # ------------------------------------------------------------ start
    async def start(self, ref: str, manual: bool = True) -> None:
        """manual: a user's start (resets the restart policy's count); False for the policy's own restarts."""
        c = self.get(ref)
        if c.State.Running and not (c.State.Restarting and not manual):
            raise NotModified("container already started")
        if c.State.Status == "removing":
            raise Conflict(f"cannot start container {c.short_id}: removal in progress")
        from pyd.daemon.runtime.execdriver import ExecError
        from pyd.daemon.containers import shm, spec_inputs
        from pyd.daemon.spec.build import build_spec

        graph = self.graph
        if not etcfiles.etc_files_intact(c.root):   # written without fsync: a machine crash may lose them
            self._write_etc_files(c)
        # independent, so side by side: the root filesystem, the network sandbox (addresses, DNS, ports:
        # before execd joins it), the cgroups (execd joins them)
        steps = [asyncio.ensure_future(asyncio.to_thread(graph.mount_rw, c.ID)),
                 asyncio.ensure_future(self.networks.setup(c)),
                 asyncio.ensure_future(asyncio.to_thread(self.cgroups.create, c.ID, c.HostConfig))]
        try:
            await asyncio.gather(*steps)
            rootfs = steps[0].result()
            await asyncio.to_thread(mounts.activate, self.volumes, c)   # option volumes (tmpfs...) mounted
            inputs, ipc = spec_inputs.gather(c, rootfs, self.spec_sources())
            spec = build_spec(inputs)
            shm.prepare(ipc)                     # the shareable /dev/shm tmpfs, mounted once
            spec.output = self._output_wanted(c)
            spec.attach = list(c.attach_sinks)   # attached before start: execd writes to them itself
            os.makedirs(spec.state_dir, mode=0o700, exist_ok=True)
            execd = await self.driver.start(spec, self._output_sink(c))
        except ExecError as e:
            await self._undo_start(c, steps)
            c.State.set_stopped(e.exit_code, error=e.message)
            c.save()
            self.publish_event(c, "die", exitCode=str(e.exit_code))
            self._end_attaches(c)
            if c.HostConfig.get("AutoRemove"):  # `run --rm` waits for the removal, as dockerd does it
                await self.remove(c.ID, force=True, volumes=True)   # --rm takes anonymous volumes too
            status = 400 if e.exit_code in (126, 127) else 500
            raise (BadParameter if status == 400 else ServerError)(
                f"failed to create task for container: failed to start container process: {e.message}: unknown")
        except BaseException as e:
            await self._undo_start(c, steps)
            self._end_attaches(c)
            if isinstance(e, Exception) and c.HostConfig.get("AutoRemove"):   # dockerd removes --rm ones too
                await self.remove(c.ID, force=True)
            raise
        finally:
            self._close_attach_sinks(c)   # execd has its own copies now (or the start failed: the stream ends)
        self._track(c, execd)
        if manual:
            self.restarts.on_manual_start(c)
        c.State.set_running(execd.pid)
        saved = c.persist()                      # snapshot now: a quick exit's state is staged after it
        self.publish_event(c, "start")
        await saved                              # durable before the 204

    @staticmethod
    def _end_attaches(c: Container) -> None:
        """A start that failed ends the attach streams waiting for it, as an exit does."""
        for queue in c.subscribers:
            queue.put_nowait(None)

    def spec_sources(self) -> SpecSources:
        """Where the inputs of a container's spec come from (start, and exec, which builds it again)."""
        from pyd.daemon.containers.spec_inputs import SpecSources
        from pyd.daemon.spec.inputs import LogDefaults
        s = self.settings
        return SpecSources(exec_root=s.exec_root, execd_path=self.driver.execd_path,
                           log=LogDefaults(s.log_driver, s.log_opts or {}), containers=self,
                           cgroups=self.cgroups, networks=self.networks)

    async def _undo_start(self, c: Container, steps: list) -> None:
        """A failed start: once its parallel steps have settled, undo them (the rootfs only if it was mounted:
        the mount is reference-counted)."""
        await asyncio.gather(*steps, return_exceptions=True)
        self.networks.release(c)
        mounts.deactivate(self.volumes, c)
        if not steps[0].cancelled() and steps[0].exception() is None:
            await asyncio.to_thread(self.graph.unmount_rw, c.ID)
        await asyncio.to_thread(self.cgroups.remove, c.ID, c.HostConfig)

    def _output_sink(self, c: Container):
        def on_output(stream: int, data: bytes) -> None:
            for queue in c.subscribers:
                queue.put_nowait((stream, data))
            self._wake(c)
            if not c.subscribers and not c.followers and c.execd is not None:
                c.execd.want_output(False)   # nobody reads along now
        return on_output

    # The daemon gets a container's output from execd only while something reads it live: attach streams
    # (subscribers) and `logs -f` (followers, woken by the output). Everything is in the json log anyway.
    def _output_wanted(self, c: Container) -> bool:
        return bool(c.subscribers) or c.followers > 0 or c.wakeup is not None

    def follow(self, c: Container, on: bool) -> None:
        """A logs -f stream starts (on) or ends: while any follows, every output wakes them."""
        c.followers += 1 if on else -1
        self._sync_output(c)

    def _sync_output(self, c: Container) -> None:
        if c.execd is not None:
            c.execd.want_output(self._output_wanted(c))

    def subscribe(self, c: Container, queue: asyncio.Queue) -> None:
        """queue gets (stream, bytes) of c's output from now on, and None at its end."""
        c.subscribers.add(queue)
        self._sync_output(c)

    def unsubscribe(self, c: Container, queue: asyncio.Queue) -> None:
        c.subscribers.discard(queue)
        self._sync_output(c)

    def add_attach_sink(self, c: Container, fd: int, flags: int) -> None:
        """An attach connection (fd, ours to close) that c's execd will write to itself from c's start."""
        c.attach_sinks.append((fd, flags))

    def _close_attach_sinks(self, c: Container) -> None:
        for fd, _ in c.attach_sinks:
            os.close(fd)
        c.attach_sinks.clear()

    def _wake(self, c: Container) -> None:
        if c.wakeup is not None:
            c.wakeup.set()
            c.wakeup = None

    def wakeup_event(self, c: Container) -> asyncio.Event:
        """An event set at the next output or exit of c (logs -f waits on it)."""
        if c.wakeup is None:
            c.wakeup = asyncio.Event()
            self._sync_output(c)
        return c.wakeup

    def _track(self, c: Container, execd: "Execd") -> None:
        c.execd = execd
        self.health.start(c)
        task = asyncio.ensure_future(self._watch_exit(c, execd))
        c.exit_task = task
        self.keep(task)

    async def _watch_exit(self, c: Container, execd: "Execd") -> None:
        status = await execd.exit
        await self._on_exit(c, status)

    async def _on_exit(self, c: Container, status: "ExitStatus") -> None:
        c.execd = None
        self.health.stop(c)
        oom = await asyncio.to_thread(self.cgroups.finish, c.ID, c.HostConfig)   # OOM count, then rmdir
        c.State.set_stopped(status.exit_code, finished_at=rfc3339.from_unix(status.finished_at),
                            oom_killed=status.oom_killed or oom)
        left = self.networks.release(c)   # the veths die with the namespace, off this path
        mounts.deactivate(self.volumes, c)
        try:
            await asyncio.to_thread(self.graph.unmount_rw, c.ID)
        except OSError as e:
            log.warning("unmount of %s failed: %s", c.short_id, e)
        shutil.rmtree(os.path.join(self.settings.exec_root, c.ID), ignore_errors=True)
        if c.ID in self.by_id:
            try:
                await c.persist()                # fsyncs off the loop
            except FileNotFoundError:
                if c.ID in self.by_id:           # removed meanwhile: nothing left to record
                    raise
        if c.State.OOMKilled:
            self.publish_event(c, "oom")
        self.publish_event(c, "die", exitCode=str(status.exit_code))
        self.networks.announce_disconnect(c, left)
        restarting = self.restarts.on_exit(c, status)
        for queue in c.subscribers:
            queue.put_nowait(None)
        self._wake(c)
        self._resolve_waiters(c, ("not-running", "next-exit"))   # dockerd: restarting too ends a wait
        if not restarting and c.HostConfig.get("AutoRemove") and not self.shutting_down and c.ID in self.by_id:
            try:
                await self.remove(c.ID, force=True, volumes=True)   # --rm takes anonymous volumes too
            except Exception:  # a failed auto-remove must not kill the watcher; it is logged
                log.exception("auto-remove of %s failed", c.short_id)

    def _resolve_waiters(self, c: Container, conditions: tuple[str, ...]) -> None:
        result = {"StatusCode": c.State.ExitCode, "Error": None}
        keep = []
        for cond, fut in c.waiters:
            if cond in conditions and not fut.done():
                fut.set_result(result)
            elif not fut.done():
                keep.append((cond, fut))
        c.waiters = keep

    # ------------------------------------------------------------ stop / kill / wait
    async def kill(self, ref: str, sig: str | int | None = None) -> None:
        c = self.get(ref)
        signum = parse_signal(sig)
        if c.State.Restarting:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.ID} is restarting, "
                           "wait until the container is running")
        if not c.State.Running or c.execd is None:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.ID} is not running")
        stop_signal = c.Config.get("StopSignal")
        # dockerd: KILL, the stop signal, or any signal when there is none ends the container for good
        exits = signum == signal_mod.SIGKILL or not stop_signal or signum == parse_signal(stop_signal)
        self.restarts.on_kill(c, exits)
        c.save()
        c.execd.kill(signum)
        self.publish_event(c, "kill", signal=str(signum))
        if c.State.Paused and exits:
            await self._thaw(c)   # dockerd resumes a paused container so the signal lands
        if signum == signal_mod.SIGKILL:     # dockerd's Kill returns once the container is down (10 s at most)
            try:
                await asyncio.wait_for(self.wait(c.ID, "not-running"), KILL_WAIT)
            except asyncio.TimeoutError:
                log.warning("kill: container %s still running after %s s", c.short_id, KILL_WAIT)

    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        c = self.get(ref)
        if c.State.Restarting and self.restarts.cancel(c):
            c.HasBeenManuallyStopped = True
            c.save()
            self._resolve_waiters(c, ("not-running",))
            self.publish_event(c, "stop")
            return
        await self.restarts.settle(c)
        if not c.State.Running or c.execd is None:
            raise NotModified("container already stopped")
        self.restarts.on_manual_stop(c)
        await self._stop(c, timeout, sig)

    async def _stop(self, c: Container, timeout: int | None, sig: str | None) -> None:
        if timeout is None:
            timeout = c.Config.get("StopTimeout")
            timeout = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
        signum = parse_signal(sig or c.Config.get("StopSignal"), default=signal_mod.SIGTERM)
        execd = c.execd
        execd.kill(signum)
        self.publish_event(c, "kill", signal=str(signum))
        if c.State.Paused:
            await self._thaw(c)
        if timeout < 0:
            await asyncio.shield(execd.exit)
        else:
            try:
                await asyncio.wait_for(asyncio.shield(execd.exit), timeout)
            except asyncio.TimeoutError:
                log.info("Container %s failed to exit within %ds of signal %d - using the force",
                         c.short_id, timeout, signum)
                if c.execd is not None:
                    c.execd.kill(signal_mod.SIGKILL)
                    self.publish_event(c, "kill", signal=str(int(signal_mod.SIGKILL)))
                await asyncio.shield(execd.exit)
        await self._settled(c)
        self.publish_event(c, "stop")

    async def _settled(self, c: Container) -> None:
        """Wait until the exit watcher has recorded the exit (state saved, rootfs unmounted)."""
        task = c.exit_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            await asyncio.shield(task)

    async def wait(self, ref: str, condition: str = "not-running") -> dict[str, Any]:
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise BadParameter(f"invalid condition: {condition!r}")
        c = self.get(ref)
        condition = condition or "not-running"
        if condition == "not-running" and not c.State.Running:
            return {"StatusCode": c.State.ExitCode, "Error": None}
        fut = asyncio.get_running_loop().create_future()
        c.waiters.append((condition, fut))
        return await fut

    # ------------------------------------------------------------ pause / unpause (cgroup freezer)
    async def pause(self, ref: str) -> None:
        c = self.get(ref)
        if not c.State.Running or c.execd is None:
            raise Conflict(f"Container {c.ID} is not running")
        if c.State.Paused:
            raise Conflict(f"Container {c.ID} is already paused")
        if c.State.Restarting:
            raise Conflict(f"Container {c.ID} is restarting, wait until the container is running")
        try:
            await asyncio.to_thread(self.cgroups.set_frozen, c.ID, c.HostConfig, True)
        except OSError as e:
            await asyncio.to_thread(self._try_thaw, c)
            raise ServerError(f"Cannot pause container {c.ID}: {e}") from None
        c.State.Paused, c.State.Status = True, "paused"
        c.save()
        self.publish_event(c, "pause")

    async def unpause(self, ref: str) -> None:
        c = self.get(ref)
        if not c.State.Paused:
            raise Conflict(f"Container {c.ID} is not paused")
        try:
            await asyncio.to_thread(self.cgroups.set_frozen, c.ID, c.HostConfig, False)
        except OSError as e:
            raise ServerError(f"Cannot unpause container {c.ID}: {e}") from None
        self._mark_thawed(c)

    async def _thaw(self, c: Container) -> None:
        """Resume a paused container that was just signalled to exit (kill, stop, rm -f)."""
        await asyncio.to_thread(self._try_thaw, c)
        if c.State.Paused:
            self._mark_thawed(c)

    def _try_thaw(self, c: Container) -> None:
        try:
            self.cgroups.set_frozen(c.ID, c.HostConfig, False)
        except OSError as e:
            log.warning("cannot unpause %s: %s", c.short_id, e)

    def _mark_thawed(self, c: Container) -> None:
        c.State.Paused = False
        if c.State.Running:
            c.State.Status = "running"
        if c.ID in self.by_id:
            c.save()
        self.publish_event(c, "unpause")

    # ------------------------------------------------------------ remove
    def linked(self, parent_ref: str, alias: str) -> Container:
        """The container the legacy link PARENT/ALIAS names."""
        try:
            parent = self.get(parent_ref)
        except NotFound:
            raise NotFound(f"No such container: {parent_ref}/{alias}") from None
        for link_name, child in links.children(parent, self.store):
            if child is not None and link_name == f"{parent.Name}/{alias}":
                return child
        raise NotFound(f"No such container: {parent_ref}/{alias}")

    async def remove_link(self, parent_ref: str, alias: str) -> None:
        """DELETE /containers/PARENT/ALIAS?link=1: the parent forgets the link (both containers stay)."""
        self.linked(parent_ref, alias)
        parent = self.get(parent_ref)
        links.remove(parent, alias)
        await parent.persist()

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        if c.State.Status == "removing":
            raise Conflict(f"removal of container {c.short_id} is already in progress")
        if c.State.Restarting and not force:
            raise Conflict(f'cannot remove container "{c.Name}": container is restarting: stop the container '
                           "before removing or force remove")
        if c.State.Paused and not force:
            raise Conflict(f'cannot remove container "{c.Name}": container is paused and must be unpaused first')
        if c.State.Running and c.execd is not None and not force:
            raise Conflict(f'cannot remove container "{c.Name}": container is running: stop the container '
                           "before removing or force remove")
        self.restarts.forget(c)
        await self.restarts.settle(c)
        if c.State.Running and c.execd is not None:
            c.execd.kill(signal_mod.SIGKILL)
            self.publish_event(c, "kill", signal=str(int(signal_mod.SIGKILL)))
            if c.State.Paused:
                await self._thaw(c)
            await asyncio.shield(c.execd.exit) if c.execd else None
            await self._settled(c)
        c.State.Status = "removing"
        try:
            await asyncio.to_thread(self.graph.remove_rw, c.ID)
        except OSError as e:
            c.State.Status = "dead"
            c.State.Dead = True
            c.save()
            raise ServerError(f"unable to remove filesystem for {c.ID}: {e}") from None
        # Rename first so that a crash mid-removal leaves no half container that would load (repair sweeps
        # the rest). The files go in the background: a busy container's logs are ~100 MB of page cache,
        # ~20 ms to drop, and neither the loop nor `run --rm` should wait for that.
        doomed = c.root + ".removing"
        os.replace(c.root, doomed)
        self.keep(asyncio.ensure_future(asyncio.to_thread(shutil.rmtree, doomed, ignore_errors=True)))
        self.by_id.pop(c.ID, None)
        self.names.pop(c.Name, None)
        self._close_attach_sinks(c)
        self.publish_event(c, "destroy")
        if volumes:
            await asyncio.to_thread(mounts.remove_anonymous, self.volumes, c)
        for queue in c.subscribers:
            queue.put_nowait(None)
        self._resolve_waiters(c, ("not-running", "next-exit", "removed"))

    # ------------------------------------------------------------ update (docker update)
    async def update(self, ref: str, body: Any) -> dict[str, Any]:
        from pyd.daemon.cgroups.update import update_container
        c = self.get(ref)
        if isinstance(body, dict) and body.get("RestartPolicy"):
            from pyd.daemon.containers.restart import checked_update
            body["RestartPolicy"] = checked_update(c, body["RestartPolicy"])   # 400 before anything changes
        warnings = await asyncio.to_thread(update_container, self.cgroups, c, body)
        c.save()
        self.publish_event(c, "update")
        return {"Warnings": warnings}

    # ------------------------------------------------------------ rename / prune
    async def rename(self, ref: str, new_name: str) -> None:
        c = self.get(ref)
        if not new_name:
            raise BadParameter("Neither old nor new names may be empty")
        if not NAME_RE.match(new_name):
            raise BadParameter(f"Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        full = "/" + new_name.lstrip("/")
        if full == c.Name:
            raise BadParameter("Renaming a container with the same name as its current name")
        if full in self.names:
            raise Conflict(f'Conflict. The container name "{full}" is already in use by container '
                           f'"{self.names[full]}". You have to remove (or rename) that container to be '
                           "able to reuse that name.")
        old = c.Name
        self.names[full] = c.ID
        c.Name = full
        try:
            c.save()
        except BaseException:
            c.Name = old
            self.names.pop(full, None)
            raise
        self.names.pop(old, None)
        for other in links.renamed(self.all(), old, full):   # legacy links name their containers
            other.save()
        self.publish_event(c, "rename", oldName=old)

    async def prune(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        """Remove every stopped container matching filters (until, label, label!)."""
        for key in filters:
            if key not in ("until", "label", "label!"):
                raise BadParameter(f"invalid filter '{key}'")
        from pyd.daemon.api.util import until_filter
        until = [until_filter(v) for v in filters.get("until") or []]
        deleted, reclaimed = [], 0
        for c in list(self.by_id.values()):
            if c.State.Running or c.State.Status == "removing":
                continue
            labels = c.Config.get("Labels") or {}
            created = rfc3339.parse(c.Created)
            if any(created >= u for u in until):
                continue
            if not all(_label_ok(labels, v) for v in filters.get("label") or []):
                continue
            if any(_label_ok(labels, v) for v in filters.get("label!") or []):
                continue
            size = await asyncio.to_thread(self._rw_size, c.ID)
            try:
                await self.remove(c.ID)
            except Exception as e:  # one that cannot go does not stop the others (dockerd logs it too)
                log.warning("prune: could not remove container %s: %s", c.short_id, e)
                continue
            deleted.append(c.ID)
            reclaimed += size
        self.events.publish("container", "prune", "", {"reclaimed": str(reclaimed)})
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def _rw_size(self, cid: str) -> int:
        try:
            top = self.graph.rw_dir(cid)
        except Exception:
            return 0
        return tree_size(top)

    # ------------------------------------------------------------ restore / shutdown
    async def restore(self) -> None:
        """Load every container; reattach to live execds; record exits that happened meanwhile."""
        from pyd.daemon import repair
        os.makedirs(self.root, exist_ok=True)
        repair.before_restore(self)
        for entry in sorted(os.listdir(self.root)):
            path = os.path.join(self.root, entry)
            if entry.endswith(".removing"):
                log.warning("repair: finishing the removal of %s", entry)
                shutil.rmtree(path, ignore_errors=True)
                continue
            try:
                c = Container.load(path)
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("repair: skipping container dir %s without valid metadata: %s", entry, e)
                continue
            self.by_id[c.ID] = c
            self.names[c.Name] = c.ID
            if c.State.Running:
                await self._reattach(c)
        log.info("Loaded containers: %d", len(self.by_id))
        await repair.after_restore(self)

    async def _reattach(self, c: Container) -> None:
        from pyd.daemon.runtime.execdriver import Execd, ExitStatus

        state_dir = os.path.join(self.settings.exec_root, c.ID)
        result = await self.driver.reattach(state_dir, self._output_sink(c))
        if isinstance(result, Execd):
            await asyncio.to_thread(self.graph.mount_rw, c.ID)  # take the mount reference again
            self._track(c, result)
            self._sync_output(c)
            c.State.Pid = result.pid
            return
        if result is None:  # execd gone (reboot, exec-root wiped)
            result = ExitStatus(exit_code=255, signal=None, finished_at=time.time())
        await self._on_exit(c, result)

    async def shutdown(self) -> None:
        running = [c for c in self.by_id.values() if c.State.Running and c.execd is not None]
        if self.settings.live_restore:
            for c in running:
                c.execd.detach()
            return
        await asyncio.gather(*(self._stop(c, None, None) for c in running), return_exceptions=True)


def _label_ok(labels: dict[str, str], expr: str) -> bool:
    key, eq, value = expr.partition("=")
    return key in labels and (not eq or labels[key] == value)


# ---------------------------------------------------------------- config merging (dockerd's rules)

def merge_image_config(body: dict[str, Any], image_cfg: dict[str, Any]) -> dict[str, Any]:
    """The container Config: what the user gave, completed from the image as dockerd's merge() does."""
    config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
    config["Cmd"] = strslice(config.get("Cmd"))
    config["Entrypoint"] = strslice(config.get("Entrypoint"))
    image_env = image_cfg.get("Env") or []
    config["Env"] = config_env(config.get("Env") or [], image_env)
    if not config["Entrypoint"]:
        if not config["Cmd"]:
            config["Cmd"] = image_cfg.get("Cmd")
        if config["Entrypoint"] is None:
            config["Entrypoint"] = image_cfg.get("Entrypoint")
    if config["Entrypoint"] == [""]:
        config["Entrypoint"] = None
    for key in ("WorkingDir", "User", "StopSignal", "OnBuild", "Shell"):
        if not config.get(key) and image_cfg.get(key):
            config[key] = image_cfg[key]
    from pyd.daemon.containers.health import merge_healthcheck   # field by field, as dockerd's merge()
    config["Healthcheck"] = merge_healthcheck(config.get("Healthcheck"), image_cfg.get("Healthcheck"))
    if config["Healthcheck"] is None:
        del config["Healthcheck"]
    labels = dict(image_cfg.get("Labels") or {})
    labels.update(config.get("Labels") or {})
    config["Labels"] = labels
    for key in ("ExposedPorts", "Volumes"):
        merged = dict(image_cfg.get(key) or {})
        merged.update(config.get(key) or {})
        config[key] = merged or None
    config.setdefault("Tty", False)
    config.setdefault("OpenStdin", False)
    config.setdefault("StdinOnce", False)
    for key in ("AttachStdin", "AttachStdout", "AttachStderr"):
        config.setdefault(key, False)
    config.setdefault("Domainname", "")
    config.setdefault("User", "")
    config.setdefault("WorkingDir", "")
    return config


def entrypoint_and_args(config: dict[str, Any]) -> tuple[str, list[str]]:
    argv = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    return (argv[0], argv[1:]) if argv else ("", [])


def normalize_host_config(hc: dict[str, Any], warnings: list[str] | None = None,
                          log_driver: str = "json-file") -> dict[str, Any]:
    mode = hc.get("NetworkMode") or "default"
    if mode == "default":
        mode = "bridge"
    # user networks and container:<id> are checked by network.configure_container (it knows them)
    hc["NetworkMode"] = mode
    log_type = (hc.get("LogConfig") or {}).get("Type")
    if log_type not in (None, "", "json-file", "none"):
        # dockerd looks an unknown driver up as a logging plugin
        raise BadParameter(f'error looking up logging plugin {log_type}: plugin "{log_type}" not found')
    from pyd.daemon.containers.logs import validate_log_config
    try:
        validate_log_config(hc.get("LogConfig") or {})
    except ValueError as e:
        raise BadParameter(f"failed to create container: {e}") from None
    isolation = hc.get("Isolation") or ""
    if isolation.lower() not in ("", "default"):
        raise BadParameter(f'Invalid isolation: "{isolation}" - linux only supports \'default\'')
    restart = hc.get("RestartPolicy") or {}
    if restart.get("Name") and hc.get("AutoRemove") and restart["Name"] != "no":
        raise BadParameter("can't create 'AutoRemove' container with restart policy")
    hc.setdefault("AutoRemove", False)
    hc.setdefault("Binds", None)
    log_config = hc.get("LogConfig") or {}
    hc["LogConfig"] = {**log_config, "Type": log_config.get("Type") or log_driver,   # "": the daemon's driver
                       "Config": log_config.get("Config") or {}}
    # execd is the one runtime; containers report dockerd's default name for it, which clients compare with
    runtime = hc.get("Runtime") or "runc"
    if runtime not in ("execd", "runc"):
        raise BadParameter(f"Unknown runtime specified {runtime}")
    hc["Runtime"] = runtime
    from pyd.daemon.containers.restart import validate_policy
    hc["RestartPolicy"] = validate_policy(hc.get("RestartPolicy"))
    from pyd.daemon.cgroups.resources import check_resources
    from pyd.daemon.spec import security
    security.normalize_host_config(hc)   # caps, security options, ulimits, devices, namespace modes
    found = check_resources(hc)          # dockerd's resource checks and defaults
    if warnings is not None:
        warnings.extend(found)
    return hc
