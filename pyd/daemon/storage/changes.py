"""`docker import --change` and `docker commit --change`: Dockerfile-like lines applied to a container config."""
from __future__ import annotations

import json
import posixpath
from typing import Callable

from pyd.daemon.errors import BadParameter


def default_container_config() -> dict:
    return {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
            "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
            "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
            "OnBuild": None, "Labels": None}


def apply_changes(config: dict, changes: list[str]) -> dict:
    """Apply CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME, STOPSIGNAL lines (JSON or shell
    form) to a container config; BadParameter for anything else."""
    for change in changes:
        for line in change.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            instr, _, rest = line.partition(" ")
            handler = _CHANGE_HANDLERS.get(instr.upper())
            if handler is None:
                raise BadParameter(f"{instr.lower()} is not a valid change command")
            handler(config, rest.strip())
    return config


def _json_or_shell(rest: str) -> list[str]:
    if rest.startswith("["):
        try:
            value = json.loads(rest)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
        except ValueError:
            pass
    return ["/bin/sh", "-c", rest]


def _pairs(rest: str, what: str) -> list[tuple[str, str]]:
    words = _split_words(rest)
    if words and "=" not in words[0]:   # legacy form: "ENV key value with spaces"
        key, _, value = rest.partition(" ")
        return [(key, value.strip())]
    out = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq or not key:
            raise BadParameter(f"{what} names can not be blank" if not key else f"Syntax error - can't find = in {w!r}. Must be of the form: name=value")
        out.append((key, value))
    return out


def _split_words(rest: str) -> list[str]:
    import shlex   # only for import/commit --change: not resident in an idle daemon
    try:
        return shlex.split(rest)
    except ValueError as exc:
        raise BadParameter(f"invalid change: {exc}") from None


def _change_cmd(config: dict, rest: str) -> None:
    config["Cmd"] = _json_or_shell(rest)


def _change_entrypoint(config: dict, rest: str) -> None:
    config["Entrypoint"] = _json_or_shell(rest)


def _change_env(config: dict, rest: str) -> None:
    env = list(config.get("Env") or [])
    for key, value in _pairs(rest, "ENV"):
        env = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={value}"]
    config["Env"] = env


def _change_label(config: dict, rest: str) -> None:
    labels = dict(config.get("Labels") or {})
    labels.update(_pairs(rest, "LABEL"))
    config["Labels"] = labels


def _change_expose(config: dict, rest: str) -> None:
    ports = dict(config.get("ExposedPorts") or {})
    for spec in rest.split():
        port, _, proto = spec.partition("/")
        proto = (proto or "tcp").lower()
        low, _, high = port.partition("-")
        if not low.isdigit() or (high and not high.isdigit()) or proto not in ("tcp", "udp", "sctp"):
            raise BadParameter(f"invalid containerPort: {spec}")
        for p in range(int(low), int(high or low) + 1):
            ports[f"{p}/{proto}"] = {}
    config["ExposedPorts"] = ports


def _change_volume(config: dict, rest: str) -> None:
    volumes = dict(config.get("Volumes") or {})
    paths = _json_or_shell(rest)
    for path in (rest.split() if paths[:2] == ["/bin/sh", "-c"] else paths):
        if not path:
            raise BadParameter("VOLUME specified can not be an empty string")
        volumes[path] = {}
    config["Volumes"] = volumes


def _change_workdir(config: dict, rest: str) -> None:
    config["WorkingDir"] = posixpath.join("/", config.get("WorkingDir") or "/", rest)


def _change_user(config: dict, rest: str) -> None:
    config["User"] = rest


def _change_stopsignal(config: dict, rest: str) -> None:
    config["StopSignal"] = rest


_CHANGE_HANDLERS: dict[str, Callable[[dict, str], None]] = {
    "CMD": _change_cmd, "ENTRYPOINT": _change_entrypoint, "ENV": _change_env, "LABEL": _change_label,
    "EXPOSE": _change_expose, "VOLUME": _change_volume, "WORKDIR": _change_workdir, "USER": _change_user,
    "STOPSIGNAL": _change_stopsignal,
}
