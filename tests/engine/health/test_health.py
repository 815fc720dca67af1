"""Healthchecks: --health-* flags and the image's HEALTHCHECK, State.Health, `(healthy)` in ps, events."""
from __future__ import annotations

import json
import time


def health(daemon, ref: str) -> dict:
    return json.loads(daemon.docker("inspect", ref, check=True).stdout)[0]["State"].get("Health") or {}


def wait_status(daemon, ref: str, status: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = health(daemon, ref)
        if h.get("Status") == status:
            return h
        time.sleep(0.1)
    raise AssertionError(f"health of {ref} never became {status}: {health(daemon, ref)}")


def test_starting_then_healthy(daemon, busybox):
    since = str(time.time())
    daemon.docker("run", "-d", "--name", "hc-ok", "--health-cmd", "echo probe-ok", "--health-interval", "200ms",
                  busybox, "sleep", "300", check=True)
    assert health(daemon, "hc-ok")["Status"] == "starting"
    assert "(health: starting)" in daemon.docker("ps", "--filter", "name=hc-ok", "--format", "{{.Status}}").stdout
    h = wait_status(daemon, "hc-ok", "healthy")
    assert h["FailingStreak"] == 0 and h["Log"][-1]["ExitCode"] == 0 and h["Log"][-1]["Output"] == "probe-ok\n"
    assert "(healthy)" in daemon.docker("ps", "--filter", "name=hc-ok", "--format", "{{.Status}}").stdout
    time.sleep(1.5)
    assert len(health(daemon, "hc-ok")["Log"]) == 5            # the last five results only
    events = daemon.docker("events", "--since", since, "--until", str(time.time()), "--filter", "container=hc-ok",
                           "--filter", "event=health_status", "--format", "{{.Action}}").stdout.split("\n")
    assert "health_status: healthy" in events
    daemon.docker("stop", "-t", "0", "hc-ok", check=True)
    assert health(daemon, "hc-ok")["Status"] == "unhealthy"     # dockerd's rule once the monitor stops
    daemon.docker("rm", "hc-ok", check=True)


def test_unhealthy_after_retries_and_timeout(daemon, busybox):
    daemon.docker("run", "-d", "--name", "hc-bad", "--health-cmd", "exit 3", "--health-interval", "100ms",
                  "--health-retries", "2", busybox, "sleep", "300", check=True)
    h = wait_status(daemon, "hc-bad", "unhealthy")
    assert h["FailingStreak"] >= 2 and h["Log"][-1]["ExitCode"] == 3
    daemon.docker("run", "-d", "--name", "hc-slow", "--health-cmd", "sleep 5", "--health-interval", "100ms",
                  "--health-timeout", "200ms", "--health-retries", "1", busybox, "sleep", "300", check=True)
    h = wait_status(daemon, "hc-slow", "unhealthy")
    assert h["Log"][-1]["ExitCode"] == -1 and "Health check exceeded timeout" in h["Log"][-1]["Output"]
    daemon.docker("rm", "-f", "hc-bad", "hc-slow", check=True)


def test_start_period_and_no_healthcheck(daemon, busybox):
    daemon.docker("run", "-d", "--name", "hc-sp", "--health-cmd", "exit 1", "--health-interval", "100ms",
                  "--health-retries", "1", "--health-start-period", "1s", "--health-start-interval", "100ms",
                  busybox, "sleep", "300", check=True)
    time.sleep(0.6)
    h = health(daemon, "hc-sp")
    assert h["Status"] == "starting" and h["FailingStreak"] == 0   # failures in the start period do not count
    wait_status(daemon, "hc-sp", "unhealthy", 5)
    daemon.docker("run", "-d", "--name", "hc-none", "--no-healthcheck", busybox, "sleep", "300", check=True)
    assert "Health" not in json.loads(daemon.docker("inspect", "hc-none").stdout)[0]["State"]
    daemon.docker("rm", "-f", "hc-sp", "hc-none", check=True)


def test_docker_py_healthcheck(daemon, busybox):
    c = daemon.api.containers.run(busybox, ["sleep", "300"], detach=True, name="hc-py",
                                  healthcheck={"test": ["CMD", "true"], "interval": 100_000_000})
    try:
        wait_status(daemon, "hc-py", "healthy")
        c.reload()
        assert c.attrs["State"]["Health"]["Status"] == "healthy"
    finally:
        c.remove(force=True)
