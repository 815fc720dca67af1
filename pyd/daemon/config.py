"""Daemon configuration: dockerd's flags and daemon.json keys, merged and checked."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, NamedTuple

DEFAULT_SOCKET = "unix:///var/run/pyd.sock"
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal", "panic")


class ConfigError(Exception):
    """A flag or daemon.json problem; the daemon prints it and exits 1."""


@dataclass
class DaemonConfig:
    debug: bool = False
    log_level: str = "info"
    hosts: list[str] = field(default_factory=list)
    group: str = "docker"          # the unix sockets' group (dockerd's -G); missing "docker": root's group
    data_root: str = "/var/lib/pyd"
    exec_root: str = "/run/pyd"
    pidfile: str = "/var/run/pyd.pid"
    config_file: str = "/etc/pyd/daemon.json"
    storage_driver: str | None = None
    storage_opts: list[str] = field(default_factory=list)
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


class Option(NamedTuple):
    """One daemon option: its flag, its daemon.json key, its kind and its help (defaults: DaemonConfig)."""
    short: str          # "" when the flag has no shorthand
    long: str
    dest: str           # the DaemonConfig field
    kind: str           # "bool" (switch), "str", "int", "list" (repeatable flag)
    help: str           # "" hides the flag from --help
    json: bool = True   # also a daemon.json key, named as the long flag unless json_key says otherwise
    json_key: str = ""
    json_type: type | None = None   # the key's JSON type when it differs from the flag's kind

    def file_key(self) -> str:
        return self.json_key or self.long

    def file_type(self) -> type:
        return self.json_type or {"bool": bool, "str": str, "int": int, "list": list}[self.kind]


# The daemon's flags, parsed as dockerd's (pflag) are: --name value, --name=value, -x value, -xvalue,
# repeatable lists, switches that also take =true/=false. (A table, not argparse: argparse and gettext
# would stay resident in the daemon for one call at start-up, ~0.4 MB.)
OPTIONS: tuple[Option, ...] = (
    Option("D", "debug", "debug", "bool", "Enable debug mode"),
    Option("l", "log-level", "log_level", "str", 'Set the logging level ("debug"|"info"|"warn"|"error"|"fatal") '
                                                 '(default "info")'),
    Option("H", "host", "hosts", "list", "Daemon socket(s) to connect to", json_key="hosts"),
    Option("G", "group", "group", "str", 'Group for the unix socket (default "docker")'),
    Option("", "data-root", "data_root", "str", 'Root directory of persistent state (default "/var/lib/pyd")'),
    Option("", "exec-root", "exec_root", "str", 'Root directory for execution state files (default "/run/pyd")'),
    Option("p", "pidfile", "pidfile", "str", 'Path to use for daemon PID file (default "/var/run/pyd.pid")'),
    Option("", "config-file", "config_file", "str", 'Daemon configuration file (default "/etc/pyd/daemon.json")',
           json=False),
    Option("s", "storage-driver", "storage_driver", "str", "Storage driver to use (overlay2, vfs)"),
    Option("", "storage-opt", "storage_opts", "list",
           "Storage driver options (overlay2.mount_api=new|mount2: only that way of mounting)",
           json_key="storage-opts"),
    Option("", "tls", "tls", "bool", "Use TLS; implied by --tlsverify"),
    Option("", "tlsverify", "tlsverify", "bool", "Use TLS and verify the remote"),
    Option("", "tlscacert", "tlscacert", "str", "Trust certs signed only by this CA"),
    Option("", "tlscert", "tlscert", "str", "Path to TLS certificate file"),
    Option("", "tlskey", "tlskey", "str", "Path to TLS key file"),
    Option("", "shutdown-timeout", "shutdown_timeout", "int", "Default shutdown timeout in seconds (default 15)"),
    Option("", "live-restore", "live_restore", "bool", "Enable live restore of containers when the daemon stops"),
    Option("", "log-driver", "log_driver", "str", 'Default driver for container logs (default "json-file")'),
    Option("", "log-opt", "log_opts", "list", "Default log driver options", json_key="log-opts", json_type=dict),
    Option("", "execd", "execd", "str", "", json=False),
    Option("", "exec-opt", "exec_opts", "list", "Runtime execution options", json_key="exec-opts"),
    Option("", "cgroup-parent", "cgroup_parent", "str", "Set parent cgroup for all containers"),
    Option("", "insecure-registry", "insecure_registries", "list", "Enable insecure registry communication",
           json_key="insecure-registries"),
    Option("", "max-concurrent-downloads", "max_concurrent_downloads", "int",
           "Set the max concurrent downloads (default 3)"),
    Option("", "max-concurrent-uploads", "max_concurrent_uploads", "int",
           "Set the max concurrent uploads (default 5)"),
    Option("", "registry-certs-dir", "registry_certs_dirs", "list", "", json=False),
    Option("", "registry-mirror", "registry_mirrors", "list", "Preferred Docker registry mirror",
           json_key="registry-mirrors"),
    Option("", "upload-chunk-size", "upload_chunk_size", "int", "", json=False),
    Option("b", "bridge", "bridge", "str", 'Attach containers to a network bridge (default "pyd0")'),
    Option("", "bip", "bip", "str", "Specify network bridge IP"),
    Option("", "default-address-pool", "default_address_pools", "list",
           "Default address pools for node specific local networks (base=CIDR,size=N)",
           json_key="default-address-pools"),
    Option("", "mtu", "mtu", "int", "Set the containers network MTU (default 1500)"),
    Option("", "ip-forward", "ip_forward", "bool", "Enable net.ipv4.ip_forward"),
    Option("", "iptables", "iptables", "bool", "Enable addition of iptables rules"),
)
_FILE_KEYS: dict[str, Option] = {o.dest: o for o in OPTIONS if o.json}


def _bool_value(value: str, flag: str) -> bool:
    if value.lower() in ("1", "true", "t", "yes"):
        return True
    if value.lower() in ("0", "false", "f", "no"):
        return False
    raise ConfigError(f'invalid argument "{value}" for "{flag}" flag: not a boolean')


def help_text() -> str:
    lines = ["Usage:\tpyd daemon [OPTIONS]", "", "A self-sufficient runtime for containers.", "", "Options:"]
    for o in OPTIONS:
        if o.help:
            name = (f"-{o.short}, " if o.short else "    ") + f"--{o.long}" + ("" if o.kind == "bool" else f" {o.kind}")
            lines.append(f"  {name:<34} {o.help}")
    lines.append(f"  {'-h, --help':<34} Print usage")
    return "\n".join(lines) + "\n"


def parse_flags(argv: list[str]) -> dict[str, Any]:
    """The flags given (dest -> value); -h/--help prints the usage and exits 0."""
    by_long = {o.long: o for o in OPTIONS}
    by_short = {o.short: o for o in OPTIONS if o.short}
    values: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg, i = argv[i], i + 1
        if arg in ("-h", "--help"):
            import sys
            sys.stdout.write(help_text())
            raise SystemExit(0)
        if arg == "--":
            if i < len(argv):
                raise ConfigError(f"pyd daemon takes no arguments, got {argv[i]!r}")
            break
        if arg.startswith("--"):
            name, eq, inline = arg[2:].partition("=")
            spec = by_long.get(name)
            if spec is None:
                raise ConfigError(f"unknown flag: --{name}")
            value = inline if eq else None
        elif arg.startswith("-") and len(arg) > 1:
            spec = by_short.get(arg[1])
            if spec is None:
                raise ConfigError(f"unknown shorthand flag: {arg[1]!r} in {arg}")
            value = None
            if len(arg) > 2:
                if spec.kind == "bool" and arg[2] != "=":   # -Dl debug: more switches in one word
                    argv = argv[:i] + [f"-{arg[2:]}"] + argv[i:]
                else:
                    value = arg[2:].removeprefix("=")
        else:
            raise ConfigError(f"pyd daemon takes no arguments, got {arg!r}")
        dest, kind = spec.dest, spec.kind
        flag = f"-{spec.short}, --{spec.long}" if spec.short else f"--{spec.long}"   # pflag's name in messages
        if kind == "bool":
            values[dest] = True if value is None else _bool_value(value, flag)
            continue
        if value is None:
            if i >= len(argv):
                raise ConfigError(f"flag needs an argument: {flag}")
            value, i = argv[i], i + 1
        if kind == "int":
            try:
                values[dest] = int(value)
            except ValueError:
                raise ConfigError(f'invalid argument "{value}" for "{flag}" flag: not an integer') from None
        elif dest == "log_level" and value not in LOG_LEVELS:
            raise ConfigError(f'invalid argument "{value}" for "{flag}" flag: not a valid logging level')
        elif kind == "list":
            values.setdefault(dest, []).append(value)
        else:
            values[dest] = value
    return values


def parse(argv: list[str]) -> DaemonConfig:
    """Flags, then daemon.json, then PYD_DRIVER; a key set both ways is an error as in dockerd."""
    flags = parse_flags(argv)
    config_file = flags.pop("config_file", None)
    if "log_opts" in flags:
        flags["log_opts"] = dict(opt.partition("=")[::2] for opt in flags["log_opts"])
    cfg = DaemonConfig()
    explicit_file = config_file is not None
    cfg.config_file = config_file or cfg.config_file
    file_values = _read_config_file(cfg.config_file, required=explicit_file)
    both = sorted(k for k in file_values if k in flags)
    if both:
        detail = ", ".join(f"{_FILE_KEYS[k].file_key()}: (from flag: {_show(flags[k])}, from file: {_show(file_values[k])})"
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
        from pyd.daemon.images.registry import normalize_mirror
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
    by_key = {o.file_key(): (o.dest, o.file_type()) for o in _FILE_KEYS.values()}
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
