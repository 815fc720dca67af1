"""The ContainerSpec execd receives: what a container's process sees, derived from its config.

One place turns Docker's Config/HostConfig into namespaces, mounts, user, environment (and, as features
land, security, resources and network), so containers.py only sequences the life cycle.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pyd.daemon.containers import etcfiles
from pyd.daemon.containers import mounts
from pyd.daemon.spec import security
from pyd.daemon.containers.model import DEFAULT_PATH, Container, merge_env
from pyd.daemon.runtime.execdriver import ContainerSpec, Mount, Process

if TYPE_CHECKING:
    from pyd.daemon.containers.speccontext import SpecContext as Daemon


def build_spec(daemon: "Daemon", c: Container, rootfs: str) -> ContainerSpec:
    user = etcfiles.lookup_user(rootfs, c.Config.get("User") or "", c.HostConfig.get("GroupAdd"))
    join = daemon.networks.join_for(c) if daemon.networks else {}   # the sandbox made by network.py
    spec = ContainerSpec(
        id=c.ID, rootfs=rootfs, hostname=c.Config["Hostname"],
        state_dir=os.path.join(daemon.cfg.exec_root, c.ID),
        log_path=None if log_driver(daemon, c) == "none" else c.log_path,
        **log_rotation(daemon, c),
        process=Process(args=[c.Path, *c.Args], env=process_env(c, user.home),
                        cwd=c.Config.get("WorkingDir") or "/", uid=user.uid, gid=user.gid,
                        groups=user.groups, tty=c.tty, stdin=bool(c.Config.get("OpenStdin")),
                        console_size=console_size(c.HostConfig.get("ConsoleSize"))),
        mounts=[Mount(destination=f"/etc/{n}", type="bind", options=["rbind"],
                      source=daemon.networks.etc_file(c, n) if daemon.networks else c.path(n))
                for n in ("hostname", "hosts", "resolv.conf") if not mounts.etc_overridden(c, f"/etc/{n}")]
        + mounts.spec_mounts(c),   # volumes, binds, --mount tmpfs (pyd/mounts.py)
        namespaces=[n for n in namespaces_for(c.HostConfig) if n not in join],
        join_namespaces=join,
        readonly_rootfs=bool(c.HostConfig.get("ReadonlyRootfs")),
    )
    if c.HostConfig.get("Init"):
        add_init(daemon, spec)
    security.configure(daemon, c, spec)   # caps, seccomp, paths, limits, cgroup, pid/ipc/uts modes
    return spec


INIT_PATH = "/sbin/docker-init"   # where dockerd puts its init (tini) in the container


def add_init(daemon: "Daemon", spec: ContainerSpec) -> None:
    """--init: execd itself, bind-mounted read-only, runs as PID 1 (`docker-init -- CMD...`, execd.c init_main)."""
    spec.mounts.append(Mount(destination=INIT_PATH, type="bind", source=daemon.containers.driver.execd_path,
                             options=["bind", mounts.DEFAULT_PROPAGATION, "ro"]))
    spec.process.args = [INIT_PATH, "--", *spec.process.args]


def console_size(value: Any) -> tuple[int, int] | None:
    """HostConfig.ConsoleSize / ExecConfig.ConsoleSize [height, width]; docker sends [0, 0] without a tty."""
    try:
        h, w = (max(0, min(int(v), 65535)) for v in value)
    except (TypeError, ValueError):
        return None
    return (h, w) if h and w else None


def log_rotation(daemon: "Daemon", c: Container) -> dict[str, int]:
    """max-size/max-file of the container's LogConfig, else the daemon's log-opts, else pyd's default."""
    from pyd.daemon.containers.logs import rotation_limits
    size, files = rotation_limits((c.HostConfig.get("LogConfig") or {}).get("Config") or {}, daemon.cfg.log_opts)
    return {"log_max_size": size, "log_max_file": files}


def log_driver(daemon: "Daemon", c: Container) -> str:
    return (c.HostConfig.get("LogConfig") or {}).get("Type") or daemon.cfg.log_driver


def process_env(c: Container, home: str) -> list[str]:
    """What the process sees: PATH and HOSTNAME defaults (and TERM for a TTY), then the config's Env."""
    env = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={c.Config['Hostname']}"]
    if c.tty:
        env.append("TERM=xterm")
    env = merge_env(env, c.Config.get("Env") or [])
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home}")
    return env


def namespaces_for(hc: dict[str, Any]) -> list[str]:
    ns = ["mnt", "pid", "uts", "ipc"]
    if hc.get("NetworkMode") != "host":
        ns.append("net")
    return ns
