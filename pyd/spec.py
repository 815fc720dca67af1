"""The ContainerSpec execd receives: what a container's process sees, derived from its config.

One place turns Docker's Config/HostConfig into namespaces, mounts, user, environment (and, as features
land, security, resources and network), so containers.py only sequences the life cycle.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pyd import etcfiles
from pyd.container import DEFAULT_PATH, Container, merge_env
from pyd.execdriver import ContainerSpec, Mount, Process

if TYPE_CHECKING:
    from pyd.daemon import Daemon


def build_spec(daemon: "Daemon", c: Container, rootfs: str) -> ContainerSpec:
    user = etcfiles.lookup_user(rootfs, c.Config.get("User") or "", c.HostConfig.get("GroupAdd"))
    return ContainerSpec(
        id=c.ID, rootfs=rootfs, hostname=c.Config["Hostname"],
        state_dir=os.path.join(daemon.cfg.exec_root, c.ID),
        log_path=None if log_driver(daemon, c) == "none" else c.log_path,
        process=Process(args=[c.Path, *c.Args], env=process_env(c, user.home),
                        cwd=c.Config.get("WorkingDir") or "/", uid=user.uid, gid=user.gid,
                        groups=user.groups, tty=c.tty, stdin=bool(c.Config.get("OpenStdin"))),
        mounts=[Mount(destination=f"/etc/{n}", type="bind", source=c.path(n), options=["rbind"])
                for n in ("hostname", "hosts", "resolv.conf")],
        namespaces=namespaces_for(c.HostConfig),
        readonly_rootfs=bool(c.HostConfig.get("ReadonlyRootfs")),
    )


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
