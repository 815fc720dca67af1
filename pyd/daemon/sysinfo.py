"""The facts of GET /info and GET /version."""
from __future__ import annotations

import asyncio
import os
import socket
from typing import TYPE_CHECKING, Any

from pyd import API_VERSION, MIN_API_VERSION, __version__
from pyd.formats import rfc3339
from pyd.formats.platforms import goarch, host_machine

if TYPE_CHECKING:
    from pyd.daemon.cgroups.base import Cgroups
    from pyd.daemon.config import DaemonConfig
    from pyd.daemon.containers.store import ContainerStore
    from pyd.daemon.events import EventBus
    from pyd.daemon.network.controller import NetworkController
    from pyd.daemon.storage.graph import Graph


class SystemInfo:
    def __init__(self, cfg: DaemonConfig, containers: ContainerStore, graph: Graph, events: EventBus,
                 networks: NetworkController, cgroups: Cgroups, machine: str | None = None) -> None:
        self.cfg = cfg
        self.cgroups = cgroups
        self.machine = machine or host_machine()      # uname -m: info's Architecture; Go's name in version
        self.containers = containers
        self.graph = graph
        self.events = events
        self.networks = networks

    def engine_id(self) -> str:
        """The engine's ID (made on first use, kept in the data root)."""
        return _daemon_id(self.cfg.data_root)

    def info(self) -> dict[str, Any]:
        import platform
        from pyd.daemon.cgroups import features
        from pyd.daemon.cgroups.base import read_file
        cg = features.probe(self.cgroups)
        forwarding = read_file("/proc/sys/net/ipv4/ip_forward") == "1"
        warnings = cg.warnings() + ([] if forwarding else ["WARNING: IPv4 forwarding is disabled"])
        cs = self.containers.all()
        running = sum(1 for c in cs if c.State.Running and not c.State.Paused)
        paused = sum(1 for c in cs if c.State.Paused)
        mem = 0
        try:
            with open("/proc/meminfo") as f:
                mem = int(f.readline().split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return {
            "ID": self.engine_id(), "Containers": len(cs), "ContainersRunning": running,
            "ContainersPaused": paused, "ContainersStopped": len(cs) - running - paused,
            "Images": len(self.graph.images()), "Driver": self.graph.driver_name,
            "DriverStatus": [["Backing Filesystem", self.graph.backing_fs]],
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": None,
                        "Log": ["json-file", "none"]},
            "MemoryLimit": cg.memory, "SwapLimit": cg.swap, "KernelMemoryTCP": cg.kernel_memory_tcp,
            "CpuCfsPeriod": cg.cfs_period, "CpuCfsQuota": cg.cfs_quota, "CPUShares": cg.cpu_shares,
            "CPUSet": cg.cpuset, "PidsLimit": cg.pids, "OomKillDisable": cg.oom_kill_disable,
            "IPv4Forwarding": forwarding,
            "Debug": self.cfg.debug, "NFd": len(os.listdir("/proc/self/fd")),
            "NGoroutines": len(asyncio.all_tasks()), "SystemTime": rfc3339.now(),
            "LoggingDriver": self.cfg.log_driver, "CgroupDriver": "cgroupfs" if cg.version else "none",
            "CgroupVersion": cg.version or "1",
            "NEventsListener": len(self.events.subscribers), "KernelVersion": platform.release(),
            "OperatingSystem": _os_name(), "OSVersion": "", "OSType": "linux",
            "Architecture": self.machine, "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": _registry_config(self.cfg),
            "NCPU": os.cpu_count() or 1, "MemTotal": mem, "DockerRootDir": self.cfg.data_root,
            "Name": socket.gethostname(), "Labels": [], "ExperimentalBuild": False,
            "ServerVersion": __version__, "Runtimes": {"execd": {"path": "execd"}, "runc": {"path": "execd"}},
            "DefaultRuntime": "runc",   # the name containers report (clients compare them); execd runs both
            "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": False,
                      "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": self.cfg.live_restore, "Isolation": "", "InitBinary": "execd",
            "SecurityOptions": ["name=seccomp,profile=builtin"],
            "Warnings": warnings + [w for w in self.networks.warnings if w not in warnings],
            "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
        }

    def version(self) -> dict[str, Any]:
        import platform
        details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
                   "Arch": goarch(self.machine), "KernelVersion": platform.release(), "GitCommit": "",
                   "GoVersion": "python" + platform.python_version(), "BuildTime": "", "Experimental": "false"}
        return {
            "Platform": {"Name": "pyd"},
            "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
            "Version": __version__, **{k: v for k, v in details.items() if k != "Experimental"},
        }


def _registry_config(cfg: DaemonConfig) -> dict[str, Any]:
    """docker info's RegistryConfig: loopback and --insecure-registry CIDRs; named insecure registries."""
    mirrors = list(cfg.registry_mirrors)
    cidrs, index = ["127.0.0.0/8"], {"docker.io": {"Name": "docker.io", "Mirrors": mirrors, "Secure": True,
                                                   "Official": True}}
    for entry in cfg.insecure_registries:
        if "/" in entry:
            cidrs.append(entry)
        else:
            index[entry] = {"Name": entry, "Mirrors": [], "Secure": False, "Official": False}
    return {"IndexConfigs": index, "InsecureRegistryCIDRs": cidrs, "Mirrors": mirrors}


def _daemon_id(data_root: str) -> str:
    import uuid
    path = os.path.join(data_root, "engine-id")
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        from pyd.daemon.fsutil import atomic_write
        value = str(uuid.uuid4())
        atomic_write(path, value.encode())
        return value




def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


