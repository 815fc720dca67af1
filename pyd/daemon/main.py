"""`pyd daemon`: the start-up sequence, the Daemon object that owns every store, and shutdown.

Start-up follows dockerd's order: flags, PID file, platform checks, data-root layout, graph driver,
image/layer/reference stores, containers (reattached to their execd), API listeners, signals, READY=1.
Container operations live in containers.py (ContainerService); the Daemon wires the parts together.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

from pyd import API_VERSION, MIN_API_VERSION, __version__
from pyd.daemon.config import ConfigError, DaemonConfig, parse

log = logging.getLogger("pyd")
# execd is package data at the top of the pyd package (build.py stages it there)
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

REQUIRED_NAMESPACES = ("mnt", "pid", "uts", "ipc", "net")
REQUIRED_FILESYSTEMS = ("proc", "tmpfs", "devpts", "sysfs", "mqueue")
DATA_DIRS = ("containers", "image", "volumes", "network", "trust", "tmp")


class StartupError(Exception):
    """The daemon cannot start; the message says exactly why."""


# ---------------------------------------------------------------- start-up checks

def check_platform(proc: str = "/proc") -> None:
    if not sys.platform.startswith("linux"):
        raise StartupError("pyd daemon is only supported on Linux")
    if os.geteuid() != 0:
        raise StartupError("pyd daemon needs to be run as root")
    for ns in REQUIRED_NAMESPACES:
        if not os.path.exists(f"{proc}/self/ns/{ns}"):
            raise StartupError(f"kernel support for {ns} namespaces is missing ({proc}/self/ns/{ns} does not exist)")
    try:
        with open(f"{proc}/filesystems") as f:
            known = {line.split()[-1] for line in f if line.strip()}
    except OSError as e:
        raise StartupError(f"cannot read {proc}/filesystems: {e.strerror}") from None
    for fs in REQUIRED_FILESYSTEMS:
        if fs not in known:
            raise StartupError(f"kernel support for the {fs} filesystem is missing (not in {proc}/filesystems)")


def write_pidfile(path: str) -> None:
    """Refuse to start when another live daemon holds the PID file (dockerd's rule)."""
    try:
        with open(path) as f:
            other = int(f.read().strip() or 0)
    except (OSError, ValueError):
        other = 0
    if other and other != os.getpid() and os.path.exists(f"/proc/{other}"):
        raise StartupError(f"pid file found, ensure pyd is not running or delete {path}")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    from pyd.daemon.fsutil import atomic_write
    atomic_write(path, f"{os.getpid()}".encode())


def remove_pidfile(path: str) -> None:
    try:
        with open(path) as f:
            if f.read().strip() == str(os.getpid()):
                os.unlink(path)
    except OSError:
        pass


def find_execd(cfg: DaemonConfig) -> str:
    path = cfg.execd or os.environ.get("PYD_EXECD") or os.path.join(PACKAGE_DIR, "execd")
    if not os.access(path, os.X_OK):
        raise StartupError(f"execd helper not found or not executable at {path} (build it with `make execd`)")
    return path


# ---------------------------------------------------------------- the Daemon

class Daemon:
    """Owns the configuration, the stores, the exec driver, the event bus and the API server."""

    def __init__(self, cfg: DaemonConfig) -> None:
        self.cfg = cfg
        self.started = time.time()
        self.graph: Any = None
        self.containers: Any = None       # ContainerService
        self.cgroups: Any = None          # cgroups.Cgroups (cgroupfs driver)
        self.volumes: Any = None          # volume.VolumeStore
        self.networks: Any = None         # network.NetworkController
        self.events: Any = None
        self.server: Any = None
        self.shutting_down = False
        self.stop_event: asyncio.Event | None = None

    async def init(self) -> None:
        from pyd.daemon.containers.service import ContainerService
        from pyd.daemon.events import EventBus
        from pyd.daemon.runtime.execdriver import ExecDriver
        from pyd.daemon.storage.graph import Graph

        cfg = self.cfg
        for d in DATA_DIRS:
            os.makedirs(os.path.join(cfg.data_root, d), mode=0o710, exist_ok=True)
        os.makedirs(cfg.exec_root, mode=0o700, exist_ok=True)
        self.events = EventBus()
        try:
            self.graph = Graph(cfg.data_root, cfg.storage_driver or None)
        except ValueError as e:
            raise StartupError(str(e)) from None
        log.info("graph driver %s on %s", self.graph.driver_name, self.graph.backing_fs)
        driver = ExecDriver(find_execd(cfg), cfg.exec_root)
        self._init_volumes()
        from pyd.daemon.cgroups.manager import Cgroups, parse_exec_opts
        try:
            parse_exec_opts(cfg.exec_opts)
        except ValueError as e:
            raise StartupError(str(e)) from None
        self.cgroups = Cgroups(cfg.cgroup_parent or "pyd")
        self.containers = ContainerService(self, driver)
        await self._init_networks()
        await self.containers.restore()
        await self.networks.reconcile()

    async def _init_networks(self) -> None:
        from pyd.daemon.network.controller import NetworkController
        try:
            self.networks = NetworkController(self)
            await self.networks.init()
        except Exception as e:  # netlink, pools, flags: the daemon cannot run without its networks
            raise StartupError(f"error initializing network controller: {e}") from None

    def _init_volumes(self) -> None:
        from pyd.daemon.containers import mounts
        from pyd.daemon.volumes.store import VolumeStore
        self.volumes = VolumeStore(os.path.join(self.cfg.data_root, "volumes"))
        self.volumes.users = lambda name: mounts.volume_users(self, name)

    async def serve(self) -> None:
        from pyd.daemon.api import build_router
        from pyd.daemon.api.version import APIVersion
        from pyd.daemon.errors import error_response
        from pyd.http.server import Server

        self.server = Server(build_router(self), middleware=[APIVersion(API_VERSION, MIN_API_VERSION)],
                             error_response=error_response, server_header=f"pyd/{__version__} (linux)", log=log)
        for host in self.cfg.hosts:
            await self._listen(host)

    async def _listen(self, host: str) -> None:
        cfg = self.cfg
        if host.startswith("unix://"):
            path = host[len("unix://"):] or "/var/run/pyd.sock"
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            await self.server.listen_unix(path, mode=0o660)
            log.info("API listen on %s", path)
        elif host.startswith("tcp://"):
            hostport = host[len("tcp://"):].rstrip("/")
            addr, _, port = hostport.rpartition(":")
            if not port.isdigit():
                raise StartupError(f"invalid bind address format: {host}")
            ssl_ctx = None
            if cfg.tlsverify or cfg.tls:
                ssl_ctx = _server_tls(cfg)
            elif cfg.tls is None:
                raise StartupError(
                    f"refusing to listen on {host} without TLS: use --tlsverify with --tlscacert, --tlscert and "
                    "--tlskey, or pass --tls=false to accept an unauthenticated root-equivalent API")
            else:
                log.warning("!!! Binding to %s without TLS: anyone who can reach this port has root on this "
                            "host. Use --tlsverify. !!!", host)
            await self.server.listen_tcp(addr.strip("[]") or "0.0.0.0", int(port), ssl_context=ssl_ctx)
            log.info("API listen on %s", hostport)
        elif host.startswith("fd://"):
            for sock in _activation_sockets(host[len("fd://"):]):
                await self.server.listen_socket(sock)
        else:
            raise StartupError(f"invalid protocol in host {host!r}: use unix://, tcp:// or fd://")

    async def run(self) -> None:
        self.stop_event = asyncio.Event()
        loop = asyncio.get_running_loop()
        await self.init()
        await self.serve()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        self.release_memory()   # what start-up (restore, reconcile) freed
        _notify_ready()
        log.info("Daemon has completed initialization (pyd %s, API %s)", __version__, API_VERSION)
        await self.stop_event.wait()
        await self.shutdown()

    def _on_signal(self, sig: int) -> None:
        log.info("Processing signal '%s'", signal.Signals(sig).name)
        if self.stop_event:
            self.stop_event.set()

    async def shutdown(self) -> None:
        """Stop containers (bounded by --shutdown-timeout), close listeners, unmount."""
        self.shutting_down = True
        if self.server:
            await self.server.close()
        if self.containers:
            try:
                await asyncio.wait_for(self.containers.shutdown(), self.cfg.shutdown_timeout + 5)
            except asyncio.TimeoutError:
                log.error("shutdown timed out; leaving remaining containers to execd")
        if self.networks:
            await self.networks.shutdown()
        log.info("Daemon shutdown complete")

    def release_memory(self) -> None:
        """After a big one-off operation (image load, import, pull, push, save, commit, build): give the C
        heap's free pages back to the kernel, so an idle daemon does not keep its last peak resident.
        In a worker thread: after a 200 MB pull the trim can take half a second, and the response's end
        must not wait for it."""
        import asyncio
        from pyd.daemon.runtime import native
        try:
            asyncio.get_running_loop().run_in_executor(None, native.malloc_trim)
        except RuntimeError:   # no loop (start-up): here and now
            native.malloc_trim()

    # ---- facts for /info and /version
    def info(self) -> dict[str, Any]:
        import platform
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
            "ID": _daemon_id(self.cfg.data_root), "Containers": len(cs), "ContainersRunning": running,
            "ContainersPaused": paused, "ContainersStopped": len(cs) - running - paused,
            "Images": len(self.graph.images()), "Driver": self.graph.driver_name,
            "DriverStatus": [["Backing Filesystem", self.graph.backing_fs]],
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": None,
                        "Log": ["json-file", "none"]},
            "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True,
            "CPUShares": True, "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": True,
            "Debug": self.cfg.debug, "NFd": len(os.listdir("/proc/self/fd")),
            "NGoroutines": len(asyncio.all_tasks()), "SystemTime": _now_rfc3339(),
            "LoggingDriver": self.cfg.log_driver, "CgroupDriver": "cgroupfs",
            "CgroupVersion": "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1",
            "NEventsListener": len(self.events.subscribers), "KernelVersion": platform.release(),
            "OperatingSystem": _os_name(), "OSVersion": "", "OSType": "linux",
            "Architecture": platform.machine(), "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": _registry_config(self.cfg),
            "NCPU": os.cpu_count() or 1, "MemTotal": mem, "DockerRootDir": self.cfg.data_root,
            "Name": socket.gethostname(), "Labels": [], "ExperimentalBuild": False,
            "ServerVersion": __version__, "Runtimes": {"execd": {"path": "execd"}}, "DefaultRuntime": "execd",
            "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": False,
                      "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": self.cfg.live_restore, "Isolation": "", "InitBinary": "execd",
            "SecurityOptions": ["name=seccomp,profile=builtin"],
            "Warnings": list(self.networks.warnings) if self.networks else [],
            "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
        }

    def version(self) -> dict[str, Any]:
        import platform
        details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
                   "Arch": _go_arch(), "KernelVersion": platform.release(), "GitCommit": "",
                   "GoVersion": "python" + platform.python_version(), "BuildTime": "", "Experimental": "false"}
        return {
            "Platform": {"Name": "pyd"},
            "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
            "Version": __version__, **{k: v for k, v in details.items() if k != "Experimental"},
        }


def _server_tls(cfg: DaemonConfig):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cfg.tlscert, cfg.tlskey)
        if cfg.tlsverify:
            ctx.load_verify_locations(cfg.tlscacert)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as e:
        raise StartupError(f"could not load TLS material: {e}") from None
    return ctx


def _activation_sockets(names: str) -> list[socket.socket]:
    """systemd socket activation: LISTEN_FDS sockets from fd 3 on."""
    if os.environ.get("LISTEN_PID") not in (None, str(os.getpid())):
        raise StartupError("fd:// given but LISTEN_PID does not name this process")
    count = int(os.environ.get("LISTEN_FDS", "0") or 0)
    if not count:
        raise StartupError("no sockets found via socket activation: make sure the service was started by systemd")
    return [socket.socket(fileno=fd) for fd in range(3, 3 + count)]


def _notify_ready() -> None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"READY=1", path)
    except OSError as e:
        log.warning("could not notify systemd: %s", e)


def _registry_config(cfg: DaemonConfig) -> dict[str, Any]:
    """docker info's RegistryConfig: loopback and --insecure-registry CIDRs; named insecure registries."""
    mirrors = list(getattr(cfg, "registry_mirrors", []))
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


def _now_rfc3339() -> str:
    from pyd.daemon.containers.model import rfc3339
    return rfc3339()


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _go_arch() -> str:
    import platform
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


# ---------------------------------------------------------------- entry point

class _Formatter(logging.Formatter):
    """dockerd's text log shape: time="..." level=info msg="..." """

    def format(self, record: logging.LogRecord) -> str:
        from pyd.daemon.containers.model import rfc3339
        level = {"WARNING": "warning", "CRITICAL": "fatal"}.get(record.levelname, record.levelname.lower())
        msg = record.getMessage().replace('"', '\\"')
        line = f'time="{rfc3339(record.created)}" level={level} msg="{msg}"'
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger("pyd")
    root.handlers[:] = [handler]
    root.setLevel({"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
                   "error": logging.ERROR, "fatal": logging.CRITICAL, "panic": logging.CRITICAL}[level])
    root.propagate = False


def _tune_malloc() -> None:
    """Before any thread starts: one malloc arena. The daemon's threads run Python under the GIL, so
    per-thread arenas buy no parallelism, while each keeps its own free memory (over 1 MB after one
    `docker load`) out of reach of the main heap and of release_memory()."""
    from pyd.daemon.runtime import native
    try:
        native.mallopt(native.M_ARENA_MAX, 1)
    except OSError:   # no libc handle: keep glibc's defaults
        pass


def _run_loop(coro) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)


def main(argv: list[str]) -> int:
    try:
        cfg = parse(argv)
    except ConfigError as e:
        print(f"pyd daemon: {e}", file=sys.stderr)
        return 1
    _setup_logging(cfg.log_level)
    try:
        write_pidfile(cfg.pidfile)
    except (StartupError, OSError) as e:
        log.critical("failed to start daemon: %s", e)
        return 1
    try:
        check_platform()
        _tune_malloc()
        _run_loop(Daemon(cfg).run())
        return 0
    except StartupError as e:
        log.critical("failed to start daemon: %s", e)
        return 1
    finally:
        remove_pidfile(cfg.pidfile)
