"""The container's process: its command, user, working directory, environment, terminal, and where
its output goes."""
from __future__ import annotations

from typing import Any, Mapping

from pyd.daemon.containers.logs import rotation_limits
from pyd.daemon.containers.model import DEFAULT_PATH, merge_env
from pyd.daemon.containers.mounts import DEFAULT_PROPAGATION
from pyd.daemon.runtime.execdriver import ContainerSpec, Mount
from pyd.daemon.spec.inputs import SpecInputs

INIT_PATH = "/sbin/docker-init"   # where dockerd puts its init (tini) in the container


def console_size(value: Any) -> tuple[int, int] | None:
    """HostConfig.ConsoleSize / ExecConfig.ConsoleSize [height, width]; docker sends [0, 0] without a tty."""
    try:
        h, w = (max(0, min(int(v), 65535)) for v in value)
    except (TypeError, ValueError):
        return None
    return (h, w) if h and w else None


def process_env(config: Mapping[str, Any], home: str, linked: tuple[str, ...] = ()) -> list[str]:
    """What the process sees: PATH and HOSTNAME defaults (and TERM for a TTY), the legacy links' variables,
    then the config's Env."""
    env = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={config['Hostname']}"]
    if config.get("Tty"):
        env.append("TERM=xterm")
    env += linked
    env = merge_env(env, config.get("Env") or [])
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home}")
    return env


def log_driver(inputs: SpecInputs) -> str:
    return (inputs.host_config.get("LogConfig") or {}).get("Type") or inputs.log.driver


def with_process(spec: ContainerSpec, inputs: SpecInputs) -> None:
    config = inputs.config
    p = spec.process
    p.args = list(inputs.args)
    p.cwd = config.get("WorkingDir") or "/"
    p.tty = bool(config.get("Tty"))
    p.stdin = bool(config.get("OpenStdin"))
    p.console_size = console_size(inputs.host_config.get("ConsoleSize"))


def with_user(spec: ContainerSpec, inputs: SpecInputs) -> None:
    spec.process.uid, spec.process.gid = inputs.user.uid, inputs.user.gid
    spec.process.groups = list(inputs.user.groups)


def with_env(spec: ContainerSpec, inputs: SpecInputs) -> None:
    spec.process.env = process_env(inputs.config, inputs.user.home, inputs.linked_env)


def with_log(spec: ContainerSpec, inputs: SpecInputs) -> None:
    """The json-file log execd writes and its rotation: LogConfig's max-size/max-file, else the daemon's
    log-opts, else pyd's default; no log for --log-driver none."""
    spec.log_path = None if log_driver(inputs) == "none" else inputs.log_path
    opts = (inputs.host_config.get("LogConfig") or {}).get("Config") or {}
    spec.log_max_size, spec.log_max_file = rotation_limits(opts, dict(inputs.log.opts))


def with_init(spec: ContainerSpec, inputs: SpecInputs) -> None:
    """--init: execd itself, bound read-only, runs as PID 1 (`docker-init -- CMD...`, execd.c init_main)."""
    if not inputs.host_config.get("Init"):
        return
    spec.mounts.append(Mount(destination=INIT_PATH, type="bind", source=inputs.execd_path,
                             options=["bind", DEFAULT_PROPAGATION, "ro"]))
    spec.process.args = [INIT_PATH, "--", *spec.process.args]
