"""Events: container life-cycle actions with since/until/filters, and a live stream."""
from __future__ import annotations

import json
import subprocess
import time


def events(daemon, since: float, *filters: str) -> list[dict]:
    args = ["events", "--since", f"{since:.6f}", "--until", f"{time.time():.6f}", "--format", "{{json .}}"]
    for f in filters:
        args += ["--filter", f]
    out = daemon.docker(*args, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line]


def test_lifecycle_events_with_filters(daemon, busybox):
    since = time.time()
    daemon.docker("run", "--name", "ev1", busybox, "sh", "-c", "exit 4")
    daemon.docker("rename", "ev1", "ev2", check=True)
    daemon.docker("rm", "ev2", check=True)
    got = events(daemon, since, "type=container")
    actions = [e["Action"] for e in got]
    for a in ("create", "start", "die", "rename", "destroy"):
        assert a in actions, actions
    die = next(e for e in got if e["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "4" and die["Actor"]["Attributes"]["name"] == "ev1"
    rename = next(e for e in got if e["Action"] == "rename")
    assert rename["Actor"]["Attributes"]["oldName"] == "/ev1" and rename["Actor"]["Attributes"]["name"] == "ev2"
    assert [e["Action"] for e in events(daemon, since, "event=die")] == ["die"]
    assert events(daemon, time.time() + 0.0) == []


def test_events_stream_live(daemon, busybox):
    proc = subprocess.Popen(["/usr/local/bin/docker", "events", "--filter", "event=start", "--format",
                             "{{.Actor.Attributes.name}}"], stdout=subprocess.PIPE, text=True,
                            env={"DOCKER_HOST": daemon.host, "PATH": "/usr/bin:/bin"})
    try:
        time.sleep(0.5)
        daemon.docker("run", "--rm", "--name", "ev-live", busybox, "true", check=True)
        time.sleep(0.5)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    assert out.split() == ["ev-live"]


def test_attach_and_network_connect_disconnect_events(daemon, busybox):
    since = time.time()
    daemon.docker("network", "create", "ev-net", check=True)
    try:
        daemon.docker("run", "--name", "ev-net1", "--network", "ev-net", busybox, "true", check=True)
        daemon.docker("rm", "ev-net1", check=True)
        got = [(e["Type"], e["Action"]) for e in events(daemon, since) if e["Type"] in ("container", "network")]
        seq = [a for a in got if a[1] != "create" or a[0] == "container"]
        assert seq == [("container", "create"), ("container", "attach"), ("network", "connect"),
                       ("container", "start"), ("container", "die"), ("network", "disconnect"),
                       ("container", "destroy")], got
        net = [e for e in events(daemon, since, "type=network", "event=connect")][0]
        assert net["Actor"]["Attributes"]["name"] == "ev-net" and len(net["Actor"]["Attributes"]["container"]) == 64
    finally:
        daemon.docker("network", "rm", "ev-net")
