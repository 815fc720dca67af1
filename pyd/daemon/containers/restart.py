"""Restart policies: `no`, `always`, `unless-stopped`, `on-failure[:max]`, with dockerd's back-off.

dockerd's restart manager: the delay before a restart starts at 100 ms and doubles on every restart up
to one minute; it goes back to 100 ms when the container had run for 10 s or more. `docker stop` (or a
kill with the container's stop signal) cancels restarts until the next manual start; `unless-stopped`
also stays stopped over daemon restarts, `always` comes back at the next daemon start.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from pyd.formats import rfc3339
from pyd.daemon.errors import BadParameter

if TYPE_CHECKING:
    from pyd.daemon.containers.model import Container
    from pyd.daemon.runtime.execdriver import ExitStatus

log = logging.getLogger("pyd")


class Restartable(Protocol):
    """What the restart manager needs of the container service."""
    @property
    def shutting_down(self) -> bool: ...
    def find(self, cid: str) -> Container | None: ...
    async def start(self, ref: str, manual: bool = True) -> None: ...

POLICIES = ("no", "always", "unless-stopped", "on-failure")
FIRST_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0


def validate_policy(policy: dict[str, Any] | None) -> dict[str, Any]:
    """The RestartPolicy as stored; BadParameter with dockerd's words for a bad one."""
    policy = dict(policy or {})
    name = policy.get("Name") or "no"
    count = policy.get("MaximumRetryCount") or 0
    if name not in POLICIES:
        raise BadParameter(f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
                           "'on-failure', or 'unless-stopped'")
    if not isinstance(count, int) or isinstance(count, bool):
        raise BadParameter("invalid restart policy: maximum retry count must be an integer")
    if count < 0:
        raise BadParameter("invalid restart policy: maximum retry count cannot be negative")
    if count and name != "on-failure":
        raise BadParameter("invalid restart policy: maximum retry count can only be used with 'on-failure'")
    return {"Name": name, "MaximumRetryCount": count}


def checked_update(c: "Container", policy: Any) -> dict[str, Any]:
    """`docker update --restart`: the validated policy (it takes effect at the container's next exit)."""
    if not isinstance(policy, dict):
        raise BadParameter("invalid restart policy: must be an object")
    new = validate_policy(policy)
    if c.HostConfig.get("AutoRemove") and new["Name"] != "no":
        raise BadParameter("Restart policy cannot be updated because AutoRemove is enabled for the container")
    return new


def _policy(c: "Container") -> tuple[str, int]:
    p = c.HostConfig.get("RestartPolicy") or {}
    return (p.get("Name") or "no"), int(p.get("MaximumRetryCount") or 0)


def wants_restart(c: "Container", exit_code: int, manually_stopped: bool) -> bool:
    """dockerd's ShouldRestart decision, without the back-off."""
    name, max_count = _policy(c)
    if name == "always":
        return True
    if name == "unless-stopped":
        return not manually_stopped
    if name == "on-failure":
        return exit_code != 0 and (max_count == 0 or c.RestartCount < max_count)
    return False


class RestartManager:
    """Owned by the ContainerService: schedules restarts and remembers each container's back-off."""

    def __init__(self, svc: Restartable) -> None:
        self.svc = svc
        self.delay: dict[str, float] = {}            # container ID -> last back-off delay
        self.pending: dict[str, asyncio.Task] = {}   # container ID -> the waiting restart
        self.canceled: set[str] = set()              # stopped by the user while running
        self.starting: set[str] = set()              # a restart's start() in progress

    # ---- hooks called by ContainerService
    def on_manual_start(self, c: "Container") -> None:
        """`docker start`/`restart`: a fresh restart manager, as dockerd's ResetRestartManager(true)."""
        self.delay.pop(c.ID, None)
        self.canceled.discard(c.ID)
        c.RestartCount = 0
        c.HasBeenManuallyStopped = False

    def on_manual_stop(self, c: "Container") -> None:
        """`docker stop`: no restart for this exit; unless-stopped stays down over daemon restarts."""
        if self.svc.shutting_down:
            return
        self.canceled.add(c.ID)
        c.HasBeenManuallyStopped = True

    def on_kill(self, c: "Container", exits: bool) -> None:
        """`docker kill`: a manual stop (unless-stopped stays down); when the signal is one that ends the
        container (KILL, its stop signal), its next exit is not restarted under any policy."""
        if self.svc.shutting_down:
            return
        c.HasBeenManuallyStopped = True
        if exits:
            self.canceled.add(c.ID)

    def cancel(self, c: "Container") -> bool:
        """Cancel a waiting restart (stop/rm of a restarting container); True when one was waiting."""
        self.canceled.add(c.ID)
        task = self.pending.pop(c.ID, None)
        if task is None:
            return False
        task.cancel()
        if c.State.Restarting:
            c.State.Restarting = c.State.Running = False
            c.State.Status = "exited"
        return True

    def forget(self, c: "Container") -> None:
        """The container is being removed: no restart, ever."""
        self.cancel(c)
        self.delay.pop(c.ID, None)

    def on_exit(self, c: "Container", status: "ExitStatus") -> bool:
        """Called once the exit is recorded; schedules a restart when the policy says so (then True)."""
        if self.svc.shutting_down or self.svc.find(c.ID) is None:
            return False
        if c.ID in self.canceled:
            self.canceled.discard(c.ID)
            return False
        if not wants_restart(c, status.exit_code, c.HasBeenManuallyStopped):
            return False
        ran_for = status.finished_at - rfc3339.parse(c.State.StartedAt)
        delay = self._next_delay(c.ID, ran_for)
        c.RestartCount += 1
        st = c.State
        st.Status, st.Running, st.Restarting, st.Pid = "restarting", True, True, 0
        c.save()
        self._schedule(c, delay)
        return True

    def on_daemon_start(self, c: "Container") -> None:
        """A stopped container found at daemon start: always (even if stopped by hand), unless-stopped
        (unless stopped by hand) and on-failure after a failure are started again."""
        name, _ = _policy(c)
        if name == "no" or c.State.Running or c.State.Status in ("created", "removing", "dead"):
            return
        if name == "always" or wants_restart(c, c.State.ExitCode, c.HasBeenManuallyStopped):
            self._schedule(c, 0.0, manual=True)

    # ---- internals
    def _next_delay(self, cid: str, ran_for: float) -> float:
        last = self.delay.get(cid, 0.0)
        if ran_for >= RESET_AFTER:
            last = 0.0
        delay = FIRST_DELAY if last == 0.0 else min(last * 2, MAX_DELAY)
        self.delay[cid] = delay
        return delay

    def _schedule(self, c: "Container", delay: float, manual: bool = False) -> None:
        old = self.pending.pop(c.ID, None)
        if old:
            old.cancel()
        task = asyncio.ensure_future(self._restart_later(c, delay, manual))
        self.pending[c.ID] = task
        task.add_done_callback(lambda t, cid=c.ID: self.pending.pop(cid, None) if self.pending.get(cid) is t else None)

    async def _restart_later(self, c: "Container", delay: float, manual: bool) -> None:
        await asyncio.sleep(delay)
        if self.svc.shutting_down or self.svc.find(c.ID) is None:
            return
        if self.pending.get(c.ID) is asyncio.current_task():
            self.pending.pop(c.ID, None)
        self.starting.add(c.ID)
        try:
            await self.svc.start(c.ID, manual=manual)
        except Exception as e:  # the start failure is recorded in the state; the policy ends here
            log.warning("restart of container %s failed: %s", c.short_id, e)
            if c.State.Restarting:
                c.State.set_stopped(c.State.ExitCode, finished_at=rfc3339.from_unix(time.time()), error=str(e))
                c.save()
        finally:
            self.starting.discard(c.ID)

    async def settle(self, c: "Container", timeout: float = 10.0) -> None:
        """Wait for a restart whose start() is under way (a stop then acts on the started container)."""
        deadline = time.monotonic() + timeout
        while c.ID in self.starting and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
