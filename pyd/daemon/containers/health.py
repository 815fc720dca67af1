"""Healthchecks: run the container's HEALTHCHECK command inside it (an exec) on dockerd's schedule.

dockerd's rules: the first probe comes one interval after the start (start-interval during the start
period); exit 0 is healthy; a failure inside the start period does not count; `retries` failures in a row
make the container unhealthy; a probe slower than `timeout` fails with exit code -1. The last 5 results
are kept in State.Health.Log, outputs cut at 4 KiB; each change of status is a `health_status: X` event.
When the container stops its health becomes unhealthy (dockerd does that "for compatibility").
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from pyd.formats import rfc3339

if TYPE_CHECKING:
    from pyd.daemon.containers.model import Container
    from pyd.daemon.containers.execs import ExecService

log = logging.getLogger("pyd")

NS = 1_000_000_000
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_INTERVAL = 5.0
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096


def probe_command(c: "Container") -> list[str] | None:
    """The argv of the check, or None when the container has no (or a disabled) healthcheck."""
    test = list((c.Config.get("Healthcheck") or {}).get("Test") or [])
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return test[1:] or None
    if test[0] == "CMD-SHELL":
        shell = c.Config.get("Shell") or ["/bin/sh", "-c"]
        return [*shell, " ".join(test[1:])]
    return None


HEALTH_DURATIONS = ("Interval", "Timeout", "StartPeriod", "StartInterval")


def merge_healthcheck(user: dict[str, Any] | None, image: dict[str, Any] | None) -> dict[str, Any] | None:
    """dockerd's merge(): the container's Healthcheck completed field by field from the image's. An empty
    Test takes the image's Test; zero durations/retries take the image's ({"Test": ["NONE"]} disables)."""
    if not image:
        return user or None
    if user is None:
        return dict(image)
    merged = dict(user)
    if not merged.get("Test"):
        merged["Test"] = image.get("Test")
    for key in (*HEALTH_DURATIONS, "Retries"):
        if not merged.get(key) and image.get(key):
            merged[key] = image[key]
    return merged


def _seconds(hc: dict[str, Any], key: str, default: float) -> float:
    value = hc.get(key) or 0
    return value / NS if value > 0 else default


class HealthMonitor:
    """Owned by the ContainerService: one probe task per running container with a healthcheck."""

    def __init__(self, execs: ExecService, publish_event: Callable[[Container, str], None]) -> None:
        self.execs = execs
        self.publish_event = publish_event
        self.tasks: dict[str, asyncio.Task] = {}

    def start(self, c: "Container") -> None:
        if probe_command(c) is None:
            return
        self.stop(c, mark=False)
        c.State.Health = {"Status": "starting", "FailingStreak": 0, "Log": list((c.State.Health or {}).get("Log") or [])}
        self.tasks[c.ID] = asyncio.ensure_future(self._monitor(c))

    def stop(self, c: "Container", mark: bool = True) -> None:
        task = self.tasks.pop(c.ID, None)
        if task is not None:
            task.cancel()
        if mark and c.State.Health is not None:
            c.State.Health["Status"] = "unhealthy"

    async def _monitor(self, c: "Container") -> None:
        hc = c.Config.get("Healthcheck") or {}
        interval = _seconds(hc, "Interval", DEFAULT_INTERVAL)
        start_interval = _seconds(hc, "StartInterval", DEFAULT_START_INTERVAL)
        start_period = _seconds(hc, "StartPeriod", 0.0)
        started = time.monotonic()
        try:
            while True:
                in_start = time.monotonic() - started < start_period
                await asyncio.sleep(min(start_interval, interval) if in_start else interval)
                if not c.State.Running or c.execd is None:
                    return
                if c.State.Paused:
                    continue
                await self._probe(c, hc, time.monotonic() - started < start_period)
        except asyncio.CancelledError:
            pass
        except Exception:   # a broken probe must not end silently: it is logged, the container goes on
            log.exception("healthcheck of %s failed", c.short_id)

    async def _probe(self, c: "Container", hc: dict[str, Any], in_start_period: bool) -> None:
        timeout = _seconds(hc, "Timeout", DEFAULT_TIMEOUT)
        begin = time.time()
        code, output = await self._run(c, probe_command(c) or [], timeout)
        health = c.State.Health
        if health is None or c.execd is None:
            return
        entries = (health.get("Log") or []) + [{"Start": rfc3339.from_unix(begin), "End": rfc3339.now(),
                                                "ExitCode": code, "Output": output}]
        health["Log"] = entries[-MAX_LOG_ENTRIES:]
        old = health["Status"]
        retries = hc.get("Retries") or DEFAULT_RETRIES
        if code == 0:
            health["Status"], health["FailingStreak"] = "healthy", 0
        elif not (in_start_period and old == "starting"):
            health["FailingStreak"] = health.get("FailingStreak", 0) + 1
            if health["FailingStreak"] >= retries:
                health["Status"] = "unhealthy"
        if health["Status"] != old:
            c.save()
            self.publish_event(c, "health_status: " + health["Status"])

    async def _run(self, c: "Container", argv: list[str], timeout: float) -> tuple[int, str]:
        """Run argv in the container as an exec; (exit code, output), -1 on timeout or failure to start."""
        from pyd.daemon.runtime.execdriver import ExecError

        execs = self.execs
        try:
            exec_id = execs.create(c.ID, {"Cmd": argv, "AttachStdout": True, "AttachStderr": True})
        except Exception as e:
            return -1, str(e)
        inst = execs.get(exec_id)
        queue: asyncio.Queue = asyncio.Queue()
        inst.subscribers.add(queue)
        out = bytearray()

        async def collect() -> None:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if len(out) < MAX_OUTPUT:
                    out.extend(item[1][:MAX_OUTPUT - len(out)])

        try:
            await execs.start(inst, with_stdin=False)
        except ExecError as e:
            return -1, e.message
        except Exception as e:
            return -1, str(e)
        try:
            await asyncio.wait_for(asyncio.gather(collect(), inst.done.wait()), timeout)
        except asyncio.TimeoutError:
            if inst.execd is not None:
                inst.execd.kill(9)
            return -1, f"Health check exceeded timeout ({_duration(timeout)})"
        finally:
            inst.subscribers.discard(queue)
        return (inst.exit_code if inst.exit_code is not None else -1), out.decode(errors="replace")


def _duration(seconds: float) -> str:
    """Go's Duration.String for whole and fractional seconds ("1s", "1.5s", "500ms")."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return text + "s"
