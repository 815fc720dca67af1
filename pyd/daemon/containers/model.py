"""A container: its config, its state machine and its files under containers/<id>/.

The on-disk shape follows dockerd's config.v2.json / hostconfig.json so that the inspect output is a
projection of what is stored, and a restarted daemon rebuilds every container from these two files.
"""
from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable

from pyd.daemon.fsutil import atomic_write_files
from pyd.formats import rfc3339
from pyd.formats.rfc3339 import ZERO_TIME
from pyd.formats.units import human_duration

if TYPE_CHECKING:
    from pyd.daemon.runtime.execdriver import Execd

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class State:
    Status: str = "created"          # created running paused restarting removing exited dead
    Running: bool = False
    Paused: bool = False
    Restarting: bool = False
    OOMKilled: bool = False
    Dead: bool = False
    Pid: int = 0
    ExitCode: int = 0
    Error: str = ""
    StartedAt: str = ZERO_TIME
    FinishedAt: str = ZERO_TIME
    Health: dict[str, Any] | None = None   # {Status, FailingStreak, Log} when a healthcheck is configured

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        if out["Health"] is None:   # dockerd omits it for containers without a healthcheck
            del out["Health"]
        return out

    def set_running(self, pid: int) -> None:
        self.Status, self.Running, self.Pid = "running", True, pid
        self.Paused = self.Restarting = self.OOMKilled = self.Dead = False
        self.ExitCode, self.Error = 0, ""
        self.StartedAt = rfc3339.now()
        self.FinishedAt = ZERO_TIME

    def set_stopped(self, exit_code: int, finished_at: str | None = None, error: str = "",
                    oom_killed: bool = False) -> None:
        self.Status, self.Running, self.Pid = "exited", False, 0
        self.Paused = self.Restarting = False
        self.ExitCode, self.Error, self.OOMKilled = exit_code, error, oom_killed
        self.FinishedAt = finished_at or rfc3339.now()


@dataclass
class Container:
    """One container; `root` is containers/<id>/ under the data-root."""
    ID: str
    Name: str                         # with Docker's leading "/"
    Image: str                        # image ID (sha256:...)
    Config: dict[str, Any]            # Docker's container Config (Image holds the name the user gave)
    HostConfig: dict[str, Any]
    root: str
    Created: str = field(default_factory=rfc3339.now)
    Path: str = ""
    Args: list[str] = field(default_factory=list)
    State: State = field(default_factory=State)
    Driver: str = ""
    RestartCount: int = 0
    HasBeenManuallyStopped: bool = False   # docker stop: restart policies wait for the next start
    NetworkSettings: dict[str, Any] = field(default_factory=dict)
    MountPoints: dict[str, Any] = field(default_factory=dict)   # destination -> mount (pyd/mounts.py)
    # Not persisted: the live handle on execd and the attach subscribers.
    execd: Execd | None = None                             # while running
    subscribers: set = field(default_factory=set)          # attach streams (asyncio.Queue)
    attach_sinks: list = field(default_factory=list)       # (fd, flags) attach connections for execd at start
    followers: int = 0                                     # logs -f streams reading along
    waiters: list = field(default_factory=list)            # (condition, Future) of POST /wait
    wakeup: asyncio.Event | None = None                    # set on output/exit (logs -f)
    exit_task: asyncio.Future[None] | None = None          # the task recording the exit (_on_exit)
    saved: dict = field(default_factory=dict, repr=False, compare=False)   # file name -> bytes on disk
    # save() stages a snapshot (generation, files) on the loop; writers (loop or worker thread) take the
    # lock and write the newest staged snapshot, so an older state never lands after a newer one.
    staged: tuple = field(default=(0, ()), repr=False, compare=False)
    written_gen: int = field(default=0, repr=False, compare=False)
    write_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    # ---- files ----
    @property
    def log_path(self) -> str:
        return os.path.join(self.root, f"{self.ID}-json.log")

    def path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def save(self) -> None:
        """Persist config and state atomically (dockerd's two-file split), on the calling thread. Only the
        files whose content changed since they were last written or loaded are rewritten (each write costs
        fsyncs); hostconfig.json goes first, so that a config.v2.json on disk always has its hostconfig.json."""
        self._write_staged(self._stage())

    def persist(self) -> Awaitable[None]:
        """save() with the writes and fsyncs on a worker thread. The state is snapshotted NOW (call it
        where save() would be called); await the result before acknowledging the API call (kill -9)."""
        return asyncio.to_thread(self._write_staged, self._stage())

    def _stage(self) -> int:
        files = tuple((name, json.dumps(obj, separators=(",", ":")).encode())
                      for name, obj in (("hostconfig.json", self.HostConfig), ("config.v2.json", self.to_disk())))
        gen = self.staged[0] + 1
        self.staged = (gen, files)
        return gen

    def _write_staged(self, gen: int) -> None:
        """Make generation `gen` (or a newer one) durable."""
        with self.write_lock:
            if self.written_gen >= gen:
                return           # a later writer already wrote this snapshot or a newer one
            newest, files = self.staged
            changed = [(name, data) for name, data in files if self.saved.get(name) != data]
            if changed:
                atomic_write_files(self.root, changed)
                self.saved.update(changed)
            self.written_gen = newest

    def to_disk(self) -> dict[str, Any]:
        return {
            "ID": self.ID, "Name": self.Name, "Image": self.Image, "Config": self.Config,
            "Created": self.Created, "Path": self.Path, "Args": self.Args, "State": self.State.to_json(),
            "Driver": self.Driver, "RestartCount": self.RestartCount,
            "HasBeenManuallyStopped": self.HasBeenManuallyStopped, "NetworkSettings": self.NetworkSettings,
            "MountPoints": self.MountPoints,
        }

    @classmethod
    def load(cls, root: str) -> "Container":
        with open(os.path.join(root, "config.v2.json"), "rb") as f:
            raw_config = f.read()
        with open(os.path.join(root, "hostconfig.json"), "rb") as f:
            raw_host = f.read()
        data, host_config = json.loads(raw_config), json.loads(raw_host)
        state = State(**{k: v for k, v in data.get("State", {}).items() if k in State.__dataclass_fields__})
        return cls(
            ID=data["ID"], Name=data["Name"], Image=data["Image"], Config=data["Config"],
            HostConfig=host_config, root=root, Created=data["Created"], Path=data.get("Path", ""),
            Args=data.get("Args", []), State=state, Driver=data.get("Driver", ""),
            RestartCount=data.get("RestartCount", 0),
            HasBeenManuallyStopped=bool(data.get("HasBeenManuallyStopped")), NetworkSettings=data.get("NetworkSettings", {}),
            MountPoints=data.get("MountPoints") or {},
            saved={"config.v2.json": raw_config, "hostconfig.json": raw_host},
        )

    # ---- derived views ----
    @property
    def short_id(self) -> str:
        return self.ID[:12]

    @property
    def running(self) -> bool:
        return self.State.Running

    @property
    def tty(self) -> bool:
        return bool(self.Config.get("Tty"))

    def command_line(self) -> str:
        """The COMMAND of `docker ps`: dockerd quotes an argument that holds a space, and only those."""
        return " ".join([self.Path, *(f"'{a}'" if " " in a else a for a in self.Args)]).strip()

    def status_text(self, now: float | None = None) -> str:
        """The STATUS column of `docker ps`."""
        now = time.time() if now is None else now
        st = self.State
        if st.Restarting:
            return f"Restarting ({st.ExitCode}) {human_duration(now - rfc3339.parse(st.FinishedAt))} ago"
        if st.Running:
            text = "Up " + human_duration(now - rfc3339.parse(st.StartedAt))
            if st.Paused:
                return text + " (Paused)"
            health = (st.Health or {}).get("Status")
            if health == "starting":
                return text + " (health: starting)"
            return text + f" ({health})" if health in ("healthy", "unhealthy") else text
        if st.Status == "created":
            return "Created"
        if st.Status == "removing":
            return "Removal In Progress"
        if st.Status == "dead":
            return "Dead"
        finished = rfc3339.parse(st.FinishedAt)
        if not finished:
            return f"Exited ({st.ExitCode})"
        return f"Exited ({st.ExitCode}) {human_duration(now - finished)} ago"


def config_env(user: list[str], image: list[str]) -> list[str]:
    """A container's Config.Env as dockerd's merge() makes it: the user's entries as given (a bare KEY
    too: it unsets KEY in the process), then the image's whose key the user did not name."""
    if not user:
        return list(image)
    named = {e.partition("=")[0] for e in user}
    return list(user) + [e for e in image if e.partition("=")[0] not in named]


def merge_env(base: list[str], override: list[str]) -> list[str]:
    """Docker's ReplaceOrAppendEnvValues: later KEY=... replace earlier ones; a bare KEY removes it."""
    out: dict[str, str | None] = {}
    for item in base + override:
        key, eq, _ = item.partition("=")
        out[key] = item if eq else None
        if not eq:
            out.pop(key)
    return [v for v in out.values() if v is not None]
