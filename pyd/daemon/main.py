"""`pyd daemon`: start-up and shutdown around the engine.

Start-up follows dockerd's order: flags, PID file, platform checks, the engine (data-root layout, graph
driver, image/layer/reference stores, containers reattached to their execd), API listeners, signals,
READY=1. The services and their wiring are in engine.py.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING, Coroutine

from pyd import API_VERSION, MIN_API_VERSION, __version__
from pyd.daemon.config import ConfigError, DaemonConfig, parse
from pyd.daemon.engine import Engine, StartupError
from pyd.formats import rfc3339

if TYPE_CHECKING:
    import ssl

    from pyd.http.server import Server

log = logging.getLogger("pyd")
# execd is package data at the top of the pyd package (build.py stages it there)
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

REQUIRED_NAMESPACES = ("mnt", "pid", "uts", "ipc", "net")
REQUIRED_FILESYSTEMS = ("proc", "tmpfs", "devpts", "sysfs", "mqueue")


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


# ---------------------------------------------------------------- running

async def run(cfg: DaemonConfig) -> None:
    """The engine, its API listeners and signal handlers; returns after a clean shutdown."""
    from pyd.daemon.api.util import release_memory
    from pyd.daemon.api.version import APIVersion
    from pyd.daemon.errors import error_response
    from pyd.http.server import Server

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    gid = socket_gid(cfg.group)   # before anything starts: a wrong -G stops the daemon at once
    engine = Engine(cfg, find_execd(cfg))
    await engine.start()
    server = Server(engine.router(), middleware=[APIVersion(API_VERSION, MIN_API_VERSION)],
                    error_response=error_response, server_header=f"pyd/{__version__} (linux)", log=log)
    for host in cfg.hosts:
        await _listen(server, cfg, host, gid)

    def on_signal(sig: int) -> None:
        log.info("Processing signal '%s'", signal.Signals(sig).name)
        stop.set()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        loop.add_signal_handler(sig, on_signal, sig)
    release_memory()   # what start-up (restore, reconcile) freed
    _notify_ready()
    log.info("Daemon has completed initialization (pyd %s, API %s)", __version__, API_VERSION)
    await stop.wait()
    # no restarts from here on; then the listeners close, the containers stop, the networks go
    engine.begin_shutdown()
    await server.close()
    await engine.shutdown()
    log.info("Daemon shutdown complete")


def socket_gid(group: str) -> int:
    """The group of a unix socket, as dockerd picks it: the group named (or numbered) by -G; when the
    default group "docker" does not exist, the daemon's own group."""
    import grp
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        pass
    if group.isdigit():
        try:
            grp.getgrgid(int(group))
        except KeyError:
            log.warning("Could not find GID %s", group)
        return int(group)
    if group and group != DaemonConfig.group:
        raise StartupError(f"failed to load listeners: group {group} not found")
    if group:
        log.warning("could not change the API sockets' group to %s: group %s not found", group, group)
    return os.getgid()


async def _listen(server: Server, cfg: DaemonConfig, host: str, gid: int) -> None:
    if host.startswith("unix://"):
        path = host[len("unix://"):] or "/var/run/pyd.sock"
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        await server.listen_unix(path, mode=0o660)
        os.chown(path, 0, gid)
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
        await server.listen_tcp(addr.strip("[]") or "0.0.0.0", int(port), ssl_context=ssl_ctx)
        log.info("API listen on %s", hostport)
    elif host.startswith("fd://"):
        for sock in _activation_sockets(host[len("fd://"):]):
            await server.listen_socket(sock)
    else:
        raise StartupError(f"invalid protocol in host {host!r}: use unix://, tcp:// or fd://")


def _server_tls(cfg: DaemonConfig) -> ssl.SSLContext:
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


# ---------------------------------------------------------------- entry point

class _Formatter(logging.Formatter):
    """dockerd's text log shape: time="..." level=info msg="..." """

    def format(self, record: logging.LogRecord) -> str:
        level = {"WARNING": "warning", "CRITICAL": "fatal"}.get(record.levelname, record.levelname.lower())
        msg = record.getMessage().replace('"', '\\"')
        line = f'time="{rfc3339.from_unix(record.created)}" level={level} msg="{msg}"'
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


def _run_loop(coro: Coroutine[None, None, None]) -> None:
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
    log.debug("pyd %s on Python %s, unpacked at %s", __version__, sys.version.split()[0], os.path.dirname(PACKAGE_DIR))
    try:
        write_pidfile(cfg.pidfile)
    except (StartupError, OSError) as e:
        log.critical("failed to start daemon: %s", e)
        return 1
    try:
        check_platform()
        _tune_malloc()
        _run_loop(run(cfg))
        return 0
    except StartupError as e:
        log.critical("failed to start daemon: %s", e)
        return 1
    finally:
        remove_pidfile(cfg.pidfile)
