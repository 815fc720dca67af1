"""The engine: the daemon's services, and the one place that wires them.

Each service is made here with exactly the collaborators it uses (stores, drivers, the event bus, the
settings it reads); no service is handed the engine. Where two services need each other, the shared part
is its own object (ContainerStore: the containers both the container service and the network controller
look up). The route table is wired here too: each api module registers with the services its routes call.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from pyd.daemon import repair
from pyd.daemon.cgroups.base import Cgroups
from pyd.daemon.storage.drivers import parse_storage_opts
from pyd.daemon.cgroups.driver import for_host
from pyd.daemon.cgroups.resources import parse_exec_opts
from pyd.daemon.config import DaemonConfig
from pyd.daemon.containers import mounts
from pyd.daemon.containers.service import ContainerService
from pyd.daemon.containers.settings import ContainerSettings
from pyd.daemon.containers.store import ContainerStore
from pyd.daemon.events import EventBus
from pyd.daemon.images.pull import PullService, RegistrySettings
from pyd.daemon.images.service import ImageService
from pyd.daemon.network.controller import NetworkController, NetworkOptions
from pyd.daemon.runtime.execdriver import ExecDriver
from pyd.daemon.storage.graph import Graph
from pyd.daemon.sysinfo import SystemInfo
from pyd.daemon.volumes.store import VolumeStore

if TYPE_CHECKING:
    from pyd.http.server import Router

log = logging.getLogger("pyd")

DATA_DIRS = ("containers", "image", "volumes", "network", "trust", "tmp")


class StartupError(Exception):
    """The daemon cannot start; the message says exactly why."""


class Engine:
    cfg: DaemonConfig
    events: EventBus
    graph: Graph
    driver: ExecDriver
    cgroups: Cgroups
    store: ContainerStore
    volumes: VolumeStore
    networks: NetworkController
    containers: ContainerService
    pulls: PullService
    images: ImageService
    system: SystemInfo

    def __init__(self, cfg: DaemonConfig, execd_path: str) -> None:
        """Make the data-root layout and every service (nothing runs yet: see start())."""
        self.cfg = cfg
        for d in DATA_DIRS:
            os.makedirs(os.path.join(cfg.data_root, d), mode=0o710, exist_ok=True)
        os.makedirs(cfg.exec_root, mode=0o700, exist_ok=True)
        self.tmp_dir = os.path.join(cfg.data_root, "tmp")
        repair.sweep_tmp(self.tmp_dir)
        self.events = EventBus()
        try:
            self.graph = Graph(cfg.data_root, cfg.storage_driver or None, parse_storage_opts(cfg.storage_opts))
        except ValueError as e:
            raise StartupError(str(e)) from None
        log.info("graph driver %s on %s", self.graph.driver_name, self.graph.backing_fs)
        self.driver = ExecDriver(execd_path, cfg.exec_root)
        self.store = ContainerStore()
        store = self.store
        self.volumes = VolumeStore(os.path.join(cfg.data_root, "volumes"),
                                   users=lambda name: mounts.volume_users(store, name))
        try:
            parse_exec_opts(cfg.exec_opts)
        except ValueError as e:
            raise StartupError(str(e)) from None
        self.cgroups: Cgroups = for_host(cfg.cgroup_parent or "pyd")
        self.cgroups.prepare()
        try:
            self.networks = NetworkController(
                NetworkOptions(data_root=cfg.data_root, exec_root=cfg.exec_root, bridge=cfg.bridge, bip=cfg.bip,
                               default_address_pools=cfg.default_address_pools, mtu=cfg.mtu,
                               ip_forward=cfg.ip_forward, iptables=cfg.iptables),
                self.store, self.events)
        except Exception as e:  # netlink, pools, flags: the daemon cannot run without its networks
            raise StartupError(f"error initializing network controller: {e}") from None
        self.containers = ContainerService(
            ContainerSettings(data_root=cfg.data_root, exec_root=cfg.exec_root, live_restore=cfg.live_restore,
                              log_driver=cfg.log_driver, log_opts=cfg.log_opts),
            self.store, self.graph, self.driver, self.cgroups, self.volumes, self.networks, self.events)
        self.pulls = PullService(self.graph, RegistrySettings(
            tmp_dir=self.tmp_dir, insecure_registries=cfg.insecure_registries, certs_dirs=cfg.registry_certs_dirs,
            mirrors=cfg.registry_mirrors, max_concurrent_downloads=cfg.max_concurrent_downloads,
            max_concurrent_uploads=cfg.max_concurrent_uploads, upload_chunk_size=cfg.upload_chunk_size))
        self.images = ImageService(self.graph, self.pulls, self.events, self.containers, self.cgroups)
        self.system = SystemInfo(cfg, self.store, self.graph, self.events, self.networks, self.cgroups)

    async def start(self) -> None:
        """Networks up, containers loaded and reattached to their execds, then the networks' state
        reconciled with what runs."""
        try:
            await self.networks.init()
        except Exception as e:
            raise StartupError(f"error initializing network controller: {e}") from None
        await self.containers.restore()
        await self.networks.reconcile()

    def begin_shutdown(self) -> None:
        """From now on an exit restarts nothing and removes no --rm container."""
        self.containers.shutting_down = True

    async def shutdown(self) -> None:
        """Stop the containers (bounded by --shutdown-timeout; execd keeps the rest), then the networks."""
        self.begin_shutdown()
        try:
            await asyncio.wait_for(self.containers.shutdown(), self.cfg.shutdown_timeout + 5)
        except asyncio.TimeoutError:
            log.error("shutdown timed out; leaving remaining containers to execd")
        await self.networks.shutdown()

    def router(self) -> Router:
        """The route table: each resource's routes with the services they call."""
        from pyd.daemon.api import archive, build, buildkit, containers, df, exec as exec_, images, networks
        from pyd.daemon.api import plugins, processes, swarm, system, volumes
        from pyd.daemon.api.validate import BodyCheckingRouter

        router = BodyCheckingRouter()
        system.register(router, self.system, self.events)
        containers.register(router, self.containers, self.networks, self.graph)
        processes.register(router, self.containers, self.cgroups)
        images.register(router, self.images, self.graph, self.tmp_dir)
        exec_.register(router, self.containers.execs)
        networks.register(router, self.networks)
        volumes.register(router, self.volumes, self.events)
        archive.register(router, self.containers, self.graph, self.events, self.tmp_dir)
        build.register(router, self.graph, self.containers, self.containers.image_in_use, self.pulls.pull_for_build,
                       self.events, self.tmp_dir)
        df.register(router, self.graph, self.containers, self.networks, self.volumes)
        buildkit.register(router, self.graph, self.containers, self.containers.image_in_use, self.pulls.pull_for_build,
                          self.events, self.tmp_dir, self.system.engine_id)
        swarm.register(router)      # answered as a dockerd outside a swarm, with no plugins
        plugins.register(router)
        return router
