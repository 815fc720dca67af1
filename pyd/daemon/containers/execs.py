"""docker exec: exec instances (config, state), starting them in a running container, detach keys.

An exec is a process that execd starts in exec mode: it joins every namespace (mnt included) and the
cgroups of the container's init, and gets the container's security settings (the spec is built the same
way as the container's, then its process is replaced). Exec instances live in memory only, as in Docker.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pyd.daemon.containers.model import DEFAULT_PATH, Container, merge_env
from pyd.formats.detachkeys import DEFAULT_DETACH_KEYS, parse_detach_keys
from pyd.daemon.errors import BadParameter, Conflict, NotFound
from pyd.daemon.api.validate import strslice

if TYPE_CHECKING:
    from pyd.daemon.containers.settings import ContainerSettings
    from pyd.daemon.containers.spec_inputs import SpecSources
    from pyd.daemon.runtime.execdriver import ContainerSpec, Execd, ExecDriver

log = logging.getLogger("pyd")


class ExecHost(Protocol):
    """What exec instances need of the container service."""
    @property
    def driver(self) -> ExecDriver: ...
    @property
    def settings(self) -> ContainerSettings: ...
    @property
    def spec_sources(self) -> SpecSources: ...
    def get(self, ref: str) -> Container: ...
    def find(self, cid: str) -> Container | None: ...
    def publish_event(self, c: Container, action: str, **extra: str) -> None: ...
    def keep(self, task: asyncio.Future[Any]) -> None: ...

FINISHED_TTL = 300.0     # Docker's exec GC drops finished execs after about five minutes


# ---------------------------------------------------------------- detach keys

def detach_keys_arg(value: str | None) -> bytes:
    """The detachKeys of attach / exec: Docker's default when empty, 400 when unparsable."""
    try:
        return parse_detach_keys(value or DEFAULT_DETACH_KEYS)
    except ValueError:
        raise BadParameter(f"Invalid detach keys ({value}) provided") from None


# ---------------------------------------------------------------- exec instances

@dataclass
class ExecConfig:
    """Docker's ExecConfig (POST /containers/{id}/exec)."""
    cmd: list[str]
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    tty: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    privileged: bool = False
    detach_keys: str = ""
    console_size: tuple[int, int] | None = None

    @classmethod
    def from_body(cls, body: Any) -> "ExecConfig":
        if not isinstance(body, dict):
            raise BadParameter("config cannot be empty in order to create an exec")
        cmd = strslice(body.get("Cmd"))
        if not cmd:
            raise BadParameter("No exec command specified")
        env = body.get("Env") or []
        if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
            raise BadParameter("invalid Env: expected a list of strings")
        for e in env:
            if e.partition("=")[0] == "":
                raise BadParameter(f"invalid environment variable: {e}")
        working_dir = body.get("WorkingDir") or ""
        if working_dir and not working_dir.startswith("/"):
            raise BadParameter(f"the working directory '{working_dir}' is invalid, it needs to be an absolute path")
        detach_keys = body.get("DetachKeys") or body.get("detachKeys") or ""   # Go's JSON ignores the case
        if detach_keys:
            detach_keys_arg(detach_keys)
        from pyd.daemon.spec.process import console_size
        return cls(cmd=[str(a) for a in cmd], env=list(env), working_dir=working_dir,
                   user=str(body.get("User") or ""), tty=bool(body.get("Tty")),
                   attach_stdin=bool(body.get("AttachStdin")), attach_stdout=bool(body.get("AttachStdout")),
                   attach_stderr=bool(body.get("AttachStderr")), privileged=bool(body.get("Privileged")),
                   detach_keys=detach_keys, console_size=console_size(body.get("ConsoleSize")))


@dataclass
class ExecInstance:
    id: str
    container: Container
    config: ExecConfig
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    started: bool = False
    finished_at: float = 0.0
    execd: Execd | None = None                             # while running
    subscribers: set = field(default_factory=set)          # asyncio.Queue of (stream, data), None at the end
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def inspect(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
            "ProcessConfig": {"tty": cfg.tty, "entrypoint": cfg.cmd[0], "arguments": cfg.cmd[1:],
                              "privileged": cfg.privileged, "user": cfg.user},
            "OpenStdin": cfg.attach_stdin, "OpenStderr": cfg.attach_stderr, "OpenStdout": cfg.attach_stdout,
            "CanRemove": False, "ContainerID": self.container.ID, "DetachKeys": cfg.detach_keys,
            "Pid": self.pid,
        }


class ExecService:
    """The exec instances of every container, and running them through the exec driver."""

    def __init__(self, containers: ExecHost) -> None:
        self.containers = containers
        self.by_id: dict[str, ExecInstance] = {}

    # ------------------------------------------------------------ create / lookup
    def create(self, ref: str, body: Any) -> str:
        c = self.containers.get(ref)
        config = ExecConfig.from_body(body)
        check_running(c)
        self._prune()
        inst = ExecInstance(id=secrets.token_hex(32), container=c, config=config)
        self.by_id[inst.id] = inst
        self.containers.publish_event(c, "exec_create: " + " ".join(config.cmd), execID=inst.id)
        return inst.id

    def get(self, exec_id: str) -> ExecInstance:
        inst = self.by_id.get(exec_id)
        if inst is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return inst

    def ids_for(self, c: Container) -> list[str] | None:
        """ExecIDs of container inspect: Docker lists the running ones (null when none)."""
        ids = [i.id for i in self.by_id.values() if i.container is c and i.running]
        return ids or None

    def _prune(self) -> None:
        now = time.time()
        for inst in list(self.by_id.values()):
            gone = self.containers.find(inst.container.ID) is None
            if gone or (inst.exit_code is not None and now - inst.finished_at > FINISHED_TTL):
                del self.by_id[inst.id]

    # ------------------------------------------------------------ start
    async def start(self, inst: ExecInstance, with_stdin: bool) -> None:
        """Start the process; raises ExecError (after recording exit code 126/127) when it cannot run."""
        from pyd.daemon.runtime.execdriver import ExecError

        if inst.exit_code is not None:
            raise Conflict(f"Error: Exec command {inst.id} has already run")
        if inst.started:
            raise Conflict(f"Error: Exec command {inst.id} is already running")
        c = inst.container
        check_running(c)
        inst.started = True
        try:
            spec = self._spec(inst, with_stdin)
        except BadParameter:          # its user or group is not in the container's files: exit 126
            self._finish(inst, 126, None)
            raise
        self.containers.publish_event(c, "exec_start: " + " ".join(inst.config.cmd), execID=inst.id)
        try:
            os.makedirs(spec.state_dir, mode=0o700, exist_ok=True)
            execd = await self.containers.driver.exec(spec, self._output_sink(inst))
        except ExecError as e:
            self._finish(inst, 127 if e.exit_code == 127 else 126, spec.state_dir)
            raise
        except BaseException:
            self._finish(inst, 126, spec.state_dir)
            raise
        inst.execd, inst.pid, inst.running = execd, execd.pid, True
        task = asyncio.ensure_future(self._watch(inst, execd, spec.state_dir))
        self.containers.keep(task)

    def _spec(self, inst: ExecInstance, with_stdin: bool) -> ContainerSpec:
        from pyd.daemon.containers import etcfiles, shm, spec_inputs
        from pyd.daemon.runtime.execdriver import Process
        from pyd.daemon.spec.build import build_spec

        c, cfg = inst.container, inst.config
        rootfs = f"/proc/{c.State.Pid}/root"      # the container's own view of its files
        inputs, ipc = spec_inputs.gather(c, rootfs, self.containers.spec_sources())
        spec = build_spec(inputs)                 # the container's security settings come along
        shm.prepare(ipc)
        user = etcfiles.lookup_user(rootfs, cfg.user or c.Config.get("User") or "", c.HostConfig.get("GroupAdd"))
        # dockerd's CreateDaemonEnvironment, then the container's Env, then the exec's
        env = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={c.Config.get('Hostname', '')}"]
        if cfg.tty:
            env.append("TERM=xterm")
        env = merge_env(merge_env(env, c.Config.get("Env") or []), cfg.env)
        process = Process(args=list(cfg.cmd), env=env, cwd=cfg.working_dir or c.Config.get("WorkingDir") or "/",
                          uid=user.uid, gid=user.gid, groups=user.groups, tty=cfg.tty, stdin=with_stdin,
                          console_size=cfg.console_size)
        if spec.security is not None:
            # the exec's own user decides the capability sets; --privileged gives all of them (seccomp stays)
            from pyd.daemon.spec.security import container_caps
            hc = dict(c.HostConfig, Privileged=bool(c.HostConfig.get("Privileged") or cfg.privileged))
            spec.security = dataclasses.replace(spec.security, caps=container_caps(hc, user.uid)[1].encode())
        return dataclasses.replace(
            spec, process=process, log_path=None, exec_pid=c.State.Pid,
            join_cgroups=spec.join_cgroups or cgroup_dirs_to_join(c.State.Pid),
            state_dir=os.path.join(self.containers.settings.exec_root, c.ID, "exec", inst.id))

    def _output_sink(self, inst: ExecInstance):
        def on_output(stream: int, data: bytes) -> None:
            for queue in inst.subscribers:
                queue.put_nowait((stream, data))
        return on_output

    async def _watch(self, inst: ExecInstance, execd: "Execd", state_dir: str) -> None:
        try:
            status = await execd.exit
            code = status.exit_code
        except asyncio.CancelledError:
            code = 137
        self._finish(inst, code, state_dir)

    def _finish(self, inst: ExecInstance, code: int, state_dir: str | None) -> None:
        inst.execd, inst.running, inst.exit_code = None, False, code
        inst.finished_at = time.time()
        for queue in inst.subscribers:
            queue.put_nowait(None)
        inst.done.set()
        if state_dir is not None:
            shutil.rmtree(state_dir, ignore_errors=True)
        if inst.started:
            self.containers.publish_event(inst.container, "exec_die", execID=inst.id, exitCode=str(code))

    def resize(self, inst: ExecInstance, height: int, width: int) -> None:
        if inst.execd is None:
            raise Conflict(f"exec {inst.id} is not running")
        inst.execd.resize(height, width)


def check_running(c: Container) -> None:
    if c.State.Paused:
        raise Conflict(f"container {c.ID} is paused, unpause the container before exec")
    if not c.State.Running or c.execd is None:
        raise Conflict(f"container {c.ID} is not running")


def cgroup_dirs_to_join(pid: int) -> list[str]:
    """Host paths of the cgroups of `pid` that differ from ours (with no cgroup of its own, nothing)."""
    ours = _cgroup_paths(os.getpid())
    theirs = _cgroup_paths(pid)
    mounts = _cgroup_mounts()
    dirs = []
    for key, path in theirs.items():
        if ours.get(key) == path or key not in mounts:
            continue
        mountpoint, root = mounts[key]
        rel = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
        if not rel.startswith(".."):
            dirs.append(os.path.normpath(os.path.join(mountpoint, rel)))
    return dirs


def _cgroup_paths(pid: int) -> dict[str, str]:
    """/proc/PID/cgroup as {controllers: path}; "" is the v2 (unified) hierarchy."""
    out = {}
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                out[controllers] = path
    except (OSError, ValueError):
        pass
    return out


def _cgroup_mounts() -> dict[str, tuple[str, str]]:
    """{controllers: (mount point, root)} of the cgroup hierarchies mounted in our mount namespace."""
    out: dict[str, tuple[str, str]] = {}
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.readlines()
    except OSError:
        return out
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, mountpoint = fields[3], fields[4].replace("\\040", " ")
        if tail[0] == "cgroup2":
            out.setdefault("", (mountpoint, root))
        elif tail[0] == "cgroup":
            opts = tail[2].split(",")
            names = [o for o in opts if o.startswith("name=")]
            key = names[0] if names else ",".join(
                o for o in opts if o not in ("rw", "ro", "nosuid", "nodev", "noexec", "relatime", "clone_children")
                and "=" not in o and not o.startswith("no"))
            out.setdefault(key, (mountpoint, root))
    return out
