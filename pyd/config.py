"""Daemon configuration: dockerd's flags and daemon.json keys, merged and checked."""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from typing import Any

DEFAULT_SOCKET = "unix:///var/run/pyd.sock"
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal", "panic")


class ConfigError(Exception):
    """A flag or daemon.json problem; the daemon prints it and exits 1."""


@dataclass
class DaemonConfig:
    debug: bool = False
    log_level: str = "info"
    hosts: list[str] = field(default_factory=list)
    data_root: str = "/var/lib/pyd"
    exec_root: str = "/run/pyd"
    pidfile: str = "/var/run/pyd.pid"
    config_file: str = "/etc/pyd/daemon.json"
    storage_driver: str | None = None
    tls: bool | None = None
    tlsverify: bool = False
    tlscacert: str = ""
    tlscert: str = ""
    tlskey: str = ""
    shutdown_timeout: int = 15
    live_restore: bool = False
    log_driver: str = "json-file"
    log_opts: dict[str, str] = field(default_factory=dict)
    execd: str = ""
    exec_opts: list[str] = field(default_factory=list)   # native.cgroupdriver=cgroupfs
    cgroup_parent: str = ""                              # containers' cgroups go under it (default "pyd")
    insecure_registries: list[str] = field(default_factory=list)
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    registry_certs_dirs: list[str] = field(default_factory=list)   # default: /etc/pyd/certs.d, /etc/docker/certs.d
    registry_mirrors: list[str] = field(default_factory=list)      # tried before Docker Hub for docker.io names
    upload_chunk_size: int = 16 << 20                              # pushed blobs above this go up in chunks
    bridge: str = "pyd0"                  # networking (network.py)
    bip: str = ""
    default_address_pools: list = field(default_factory=list)
    mtu: int = 1500
    ip_forward: bool = True
    iptables: bool = True


# flag dest -> (daemon.json key, type)
_FILE_KEYS: dict[str, tuple[str, type]] = {
    "debug": ("debug", bool), "log_level": ("log-level", str), "hosts": ("hosts", list),
    "data_root": ("data-root", str), "exec_root": ("exec-root", str), "pidfile": ("pidfile", str),
    "storage_driver": ("storage-driver", str), "tls": ("tls", bool), "tlsverify": ("tlsverify", bool),
    "tlscacert": ("tlscacert", str), "tlscert": ("tlscert", str), "tlskey": ("tlskey", str),
    "shutdown_timeout": ("shutdown-timeout", int), "live_restore": ("live-restore", bool),
    "log_driver": ("log-driver", str), "log_opts": ("log-opts", dict),
    "exec_opts": ("exec-opts", list), "cgroup_parent": ("cgroup-parent", str),
    "insecure_registries": ("insecure-registries", list), "registry_mirrors": ("registry-mirrors", list),
    "max_concurrent_downloads": ("max-concurrent-downloads", int),
    "max_concurrent_uploads": ("max-concurrent-uploads", int),
    "bridge": ("bridge", str), "bip": ("bip", str), "default_address_pools": ("default-address-pools", list),
    "mtu": ("mtu", int), "ip_forward": ("ip-forward", bool), "iptables": ("iptables", bool),
}


def _bool_flag(value: str) -> bool:
    if value.lower() in ("1", "true", "t", "yes"):
        return True
    if value.lower() in ("0", "false", "f", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {value!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyd daemon", description="A self-sufficient runtime for containers.")
    p.add_argument("-D", "--debug", action="store_true", default=None, help="Enable debug mode")
    p.add_argument("-l", "--log-level", choices=LOG_LEVELS, help='Set the logging level (default "info")')
    p.add_argument("-H", "--host", dest="hosts", action="append", help="Daemon socket(s) to connect to")
    p.add_argument("--data-root", help='Root directory of persistent state (default "/var/lib/pyd")')
    p.add_argument("--exec-root", help='Root directory for execution state files (default "/run/pyd")')
    p.add_argument("-p", "--pidfile", help='Path to use for daemon PID file (default "/var/run/pyd.pid")')
    p.add_argument("--config-file", help='Daemon configuration file (default "/etc/pyd/daemon.json")')
    p.add_argument("-s", "--storage-driver", help="Storage driver to use (overlay2, vfs)")
    p.add_argument("--tls", nargs="?", const=True, type=_bool_flag, help="Use TLS; implied by --tlsverify")
    p.add_argument("--tlsverify", nargs="?", const=True, type=_bool_flag, help="Use TLS and verify the remote")
    p.add_argument("--tlscacert", help="Trust certs signed only by this CA")
    p.add_argument("--tlscert", help="Path to TLS certificate file")
    p.add_argument("--tlskey", help="Path to TLS key file")
    p.add_argument("--shutdown-timeout", type=int, help="Default shutdown timeout in seconds (default 15)")
    p.add_argument("--live-restore", action="store_true", default=None,
                   help="Enable live restore of containers when the daemon stops")
    p.add_argument("--log-driver", help='Default driver for container logs (default "json-file")')
    p.add_argument("--log-opt", dest="log_opts", action="append", help="Default log driver options")
    p.add_argument("--execd", help=argparse.SUPPRESS)
    p.add_argument("--exec-opt", dest="exec_opts", action="append", help="Runtime execution options")
    p.add_argument("--cgroup-parent", help="Set parent cgroup for all containers")
    p.add_argument("--insecure-registry", dest="insecure_registries", action="append",
                   help="Enable insecure registry communication")
    p.add_argument("--max-concurrent-downloads", type=int, help="Set the max concurrent downloads (default 3)")
    p.add_argument("--max-concurrent-uploads", type=int, help="Set the max concurrent uploads (default 5)")
    p.add_argument("--registry-certs-dir", dest="registry_certs_dirs", action="append", help=argparse.SUPPRESS)
    p.add_argument("--registry-mirror", dest="registry_mirrors", action="append",
                   help="Preferred Docker registry mirror")
    p.add_argument("--upload-chunk-size", type=int, help=argparse.SUPPRESS)
    p.add_argument("-b", "--bridge", help='Attach containers to a network bridge (default "pyd0")')
    p.add_argument("--bip", help="Specify network bridge IP")
    p.add_argument("--default-address-pool", dest="default_address_pools", action="append",
                   help="Default address pools for node specific local networks (base=CIDR,size=N)")
    p.add_argument("--mtu", type=int, help="Set the containers network MTU (default 1500)")
    p.add_argument("--ip-forward", nargs="?", const=True, type=_bool_flag, help="Enable net.ipv4.ip_forward")
    p.add_argument("--iptables", nargs="?", const=True, type=_bool_flag, help="Enable addition of iptables rules")
    return p


def parse(argv: list[str]) -> DaemonConfig:
    """Flags, then daemon.json, then PYD_DRIVER; a key set both ways is an error as in dockerd."""
    args = build_parser().parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if v is not None and k != "config_file"}
    if "log_opts" in flags:
        flags["log_opts"] = dict(opt.partition("=")[::2] for opt in flags["log_opts"])
    cfg = DaemonConfig()
    explicit_file = args.config_file is not None
    cfg.config_file = args.config_file or cfg.config_file
    file_values = _read_config_file(cfg.config_file, required=explicit_file)
    both = sorted(k for k in file_values if k in flags)
    if both:
        detail = ", ".join(f"{_FILE_KEYS[k][0]}: (from flag: {_show(flags[k])}, from file: {_show(file_values[k])})"
                           for k in both)
        raise ConfigError("the following directives are specified both as a flag and in the configuration "
                          f"file: {detail}")
    for key, value in {**file_values, **flags}.items():
        setattr(cfg, key, value)
    if not cfg.storage_driver and os.environ.get("PYD_DRIVER"):
        cfg.storage_driver = os.environ["PYD_DRIVER"]
    if cfg.debug:
        cfg.log_level = "debug"
    if cfg.log_level not in LOG_LEVELS:
        raise ConfigError(f"unable to parse logging level: {cfg.log_level}")
    if not cfg.hosts:
        cfg.hosts = [DEFAULT_SOCKET]
    if cfg.registry_mirrors:
        from pyd.registry import normalize_mirror
        try:
            cfg.registry_mirrors = [normalize_mirror(m) for m in cfg.registry_mirrors]
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return cfg


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _read_config_file(path: str, required: bool) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"unable to configure the pyd daemon with file {path}: "
                              "open: no such file or directory") from None
        return {}
    try:
        data = json.loads(raw or b"{}")
    except ValueError as e:
        raise ConfigError(f"unable to configure the pyd daemon with file {path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"unable to configure the pyd daemon with file {path}: not a JSON object")
    by_key = {key: (dest, typ) for dest, (key, typ) in _FILE_KEYS.items()}
    unknown = sorted(k for k in data if k not in by_key)
    if unknown:
        raise ConfigError("the following directives don't match any configuration option: " + ", ".join(unknown))
    values: dict[str, Any] = {}
    for key, value in data.items():
        dest, typ = by_key[key]
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise ConfigError(f"unable to configure the pyd daemon with file {path}: "
                              f"{key} must be of type {typ.__name__}")
        values[dest] = value
    return values
