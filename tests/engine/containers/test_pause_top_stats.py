"""docker pause/unpause (cgroup freezer), top, stats, restart and kill -s, through the docker CLI and
docker-py against pyd daemon."""
from __future__ import annotations

import json
import time

import docker.errors
import pytest

ORPHAN = "sh -c 'sleep 0.1 &'; exec sleep 100"
COUNTER = "i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done"


def inspect(daemon, cid):
    return json.loads(daemon.docker("inspect", cid, check=True).stdout)[0]


def log_lines(daemon, cid) -> int:
    return len(daemon.docker("logs", cid, check=True).stdout.split())


@pytest.fixture
def counter(daemon, busybox):
    cid = daemon.docker("run", "-d", "--network", "none", busybox, "sh", "-c", COUNTER, check=True).stdout.strip()
    yield cid
    daemon.docker("rm", "-f", cid)


def test_pause_freezes_and_unpause_resumes(daemon, counter):
    since = time.time()
    time.sleep(0.3)
    assert daemon.docker("pause", counter, check=True).stdout.strip() == counter
    state = inspect(daemon, counter)["State"]
    assert state["Paused"] is True and state["Status"] == "paused" and state["Running"] is True
    ps = daemon.docker("ps", "--filter", f"id={counter}", "--format", "{{.Status}}|{{.State}}").stdout.strip()
    assert ps.endswith("(Paused)|paused") and ps.startswith("Up "), ps
    frozen = log_lines(daemon, counter)
    time.sleep(0.5)
    assert log_lines(daemon, counter) == frozen                    # no output while frozen
    r = daemon.docker("exec", counter, "true")
    assert r.returncode != 0 and "is paused" in r.stderr
    assert daemon.docker("unpause", counter, check=True).stdout.strip() == counter
    time.sleep(0.5)
    assert log_lines(daemon, counter) > frozen + 3
    state = inspect(daemon, counter)["State"]
    assert state["Paused"] is False and state["Status"] == "running"
    r = daemon.docker("events", "--since", str(since), "--until", str(time.time()),
                      "--filter", f"container={counter}", "--format", "{{.Action}}")
    actions = r.stdout.split()
    assert actions.index("pause") < actions.index("unpause"), actions


def test_pause_errors_as_docker(daemon, busybox, counter):
    cid = daemon.docker("create", busybox, "true", check=True).stdout.strip()
    try:
        r = daemon.docker("pause", cid)
        assert r.returncode == 1 and f"Error response from daemon: Container {cid} is not running" in r.stderr
        r = daemon.docker("unpause", counter)
        assert r.returncode == 1 and f"Error response from daemon: Container {counter} is not paused" in r.stderr
        api = daemon.api.api
        with pytest.raises(docker.errors.APIError) as e:
            api.unpause(cid)
        assert e.value.status_code == 409
        api.pause(counter)
        with pytest.raises(docker.errors.APIError) as e:
            api.pause(counter)
        assert e.value.status_code == 409 and "already paused" in str(e.value)
        r = daemon.docker("rm", counter)
        assert r.returncode == 1 and "container is paused and must be unpaused first" in r.stderr
    finally:
        daemon.docker("rm", "-f", cid)


def test_stop_kill_rm_of_paused_container(daemon, busybox):
    ids = [daemon.docker("run", "-d", "--network", "none", busybox, "sleep", "100", check=True).stdout.strip()
           for _ in range(3)]
    try:
        for cid in ids:
            daemon.docker("pause", cid, check=True)
        t0 = time.monotonic()
        daemon.docker("stop", "-t", "1", ids[0], check=True)   # PID 1 ignores TERM: KILL after 1 s
        assert time.monotonic() - t0 < 4
        st = inspect(daemon, ids[0])["State"]
        assert st["Running"] is False and st["Paused"] is False and st["Status"] == "exited"
        daemon.docker("kill", ids[1], check=True)
        assert daemon.docker("wait", ids[1], timeout=10).stdout.strip() == "137"
        assert inspect(daemon, ids[1])["State"]["Paused"] is False
        daemon.docker("rm", "-f", ids[2], check=True)
        assert daemon.docker("inspect", ids[2]).returncode == 1
    finally:
        daemon.docker("rm", "-f", *ids)


def test_top_lists_container_processes(daemon, busybox):
    cid = daemon.docker("run", "-d", "--network", "none", busybox, "sh", "-c", "sleep 101 & sleep 102; true",
                        check=True).stdout.strip()
    try:
        deadline = time.monotonic() + 5
        out = daemon.docker("top", cid, check=True).stdout.splitlines()
        while len(out) < 4 and time.monotonic() < deadline:       # sh forks its sleeps after the start
            time.sleep(0.05)
            out = daemon.docker("top", cid, check=True).stdout.splitlines()
        assert out[0].split()[:3] == ["UID", "PID", "PPID"] and out[0].split()[-1] == "CMD"
        cmds = " ".join(out[1:])
        assert "sleep 101" in cmds and "sleep 102" in cmds and "sh -c" in cmds
        assert len(out) == 4                                   # only the container's three processes
        out = daemon.docker("top", cid, "-o", "pid,comm").stdout.splitlines()
        assert out[0].split() == ["PID", "COMMAND"] and sorted(l.split()[1] for l in out[1:]) == ["sh", "sleep",
                                                                                                   "sleep"]
        top = daemon.api.api.top(cid, ps_args="aux")
        assert top["Titles"][:2] == ["USER", "PID"] and len(top["Processes"]) == 3
        assert top["Processes"][0][-1].startswith("sh -c")     # the command keeps its spaces
        r = daemon.docker("top", cid, "-o", "user=PID")
        assert r.returncode == 1 and 'specifying "user=PID" is not allowed' in r.stderr
        r = daemon.docker("top", cid, "-o", "comm")
        assert r.returncode == 1 and "Couldn't find PID field in ps output" in r.stderr
    finally:
        daemon.docker("rm", "-f", cid)
    stopped = daemon.docker("create", busybox, "true", check=True).stdout.strip()
    try:
        r = daemon.docker("top", stopped)
        assert r.returncode == 1 and f"Container {stopped} is not running" in r.stderr
    finally:
        daemon.docker("rm", "-f", stopped)


def test_stats(daemon, busybox):
    cid = daemon.docker("run", "-d", busybox, "sh", "-c", "x=$(head -c 4000000 /dev/zero | tr '\\0' a); "
                        "while true; do :; done", check=True).stdout.strip()
    try:
        c = daemon.api.containers.get(cid)
        s = c.stats(stream=False)
        assert s["id"] == cid and s["name"] == "/" + c.name
        assert s["memory_stats"]["usage"] > 0 and s["memory_stats"]["limit"] > 0
        assert "total_inactive_file" in s["memory_stats"]["stats"]
        cpu, pre = s["cpu_stats"], s["precpu_stats"]
        assert cpu["cpu_usage"]["total_usage"] > pre["cpu_usage"]["total_usage"] > 0   # primed: CPU% not 0
        assert cpu["system_cpu_usage"] > pre["system_cpu_usage"] > 0 and cpu["online_cpus"] >= 1
        assert s["pids_stats"]["current"] >= 1
        assert "eth0" in s["networks"] and s["networks"]["eth0"]["rx_bytes"] >= 0
        one = c.stats(stream=False, one_shot=True)
        assert one["precpu_stats"]["cpu_usage"]["total_usage"] == 0 and one["memory_stats"]["usage"] > 0
        stream = c.stats(stream=True, decode=True)
        first, second = next(stream), next(stream)
        assert second["precpu_stats"] == first["cpu_stats"] and second["preread"] == first["read"]
        stream._response.close() if hasattr(stream, "_response") else None
        out = daemon.docker("stats", "--no-stream", "--format",
                            "{{.ID}}|{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}|{{.NetIO}}", cid,
                            check=True).stdout.strip()
        short, name, cpu_perc, mem, pids, net = out.split("|")
        assert short == cid[:12] and name == c.name
        assert float(cpu_perc.rstrip("%")) > 10                    # the busy loop
        usage = mem.split(" / ")[0]
        assert usage[0].isdigit() and not usage.startswith("0B"), mem
        assert int(pids) >= 1 and "/" in net
    finally:
        daemon.docker("rm", "-f", cid)


def test_stats_of_stopped_container(daemon, busybox):
    cid = daemon.docker("create", busybox, "true", check=True).stdout.strip()
    try:
        s = daemon.api.containers.get(cid).stats(stream=False)
        assert s["id"] == cid and s["read"] == "0001-01-01T00:00:00Z" and s["memory_stats"] == {}
    finally:
        daemon.docker("rm", "-f", cid)


def test_restart_and_kill_signal(daemon, busybox):
    trap = "trap 'echo got-usr1' USR1; trap 'echo got-term; exit 3' TERM; while true; do sleep 0.05; done"
    cid = daemon.docker("run", "-d", "--network", "none", busybox, "sh", "-c", trap, check=True).stdout.strip()
    try:
        since = time.time()
        time.sleep(0.2)
        deadline = time.monotonic() + 5
        for n, sig in enumerate(("USR1", "SIGUSR1"), 1):        # one at a time: pending signals merge
            daemon.docker("kill", "--signal" if n == 2 else "-s", sig, cid, check=True)
            while daemon.docker("logs", cid).stdout.count("got-usr1") < n and time.monotonic() < deadline:
                time.sleep(0.05)
        assert daemon.docker("logs", cid).stdout.count("got-usr1") == 2
        assert inspect(daemon, cid)["State"]["Running"] is True
        r = daemon.docker("kill", "-s", "NOPE", cid)
        assert r.returncode == 1 and "Invalid signal: NOPE" in r.stderr
        started = inspect(daemon, cid)["State"]["StartedAt"]
        t0 = time.monotonic()
        daemon.docker("restart", "-t", "5", cid, check=True)     # TERM is trapped: exit 3, well before 5 s
        assert time.monotonic() - t0 < 4
        st = inspect(daemon, cid)["State"]
        assert st["Running"] is True and st["StartedAt"] != started
        assert "got-term" in daemon.docker("logs", cid).stdout
        r = daemon.docker("events", "--since", str(since), "--until", str(time.time()),
                          "--filter", f"container={cid}", "--format", "{{.Action}}")
        actions = r.stdout.split()
        assert "restart" in actions and actions.index("die") < actions.index("start"), actions
    finally:
        daemon.docker("rm", "-f", cid)


def test_pyd_client_pause_top_stats(daemon, busybox):
    cid = daemon.docker("run", "-d", "--network", "none", busybox, "sleep", "100", check=True).stdout.strip()
    try:
        assert daemon.pyd("pause", cid).stdout.strip() == cid
        assert inspect(daemon, cid)["State"]["Paused"] is True
        r = daemon.pyd("container", "pause", cid)
        assert r.returncode == 1 and "already paused" in r.stderr
        assert daemon.pyd("unpause", cid).stdout.strip() == cid
        r = daemon.pyd("unpause", cid)
        assert r.returncode == 1 and f"Error response from daemon: Container {cid} is not paused" in r.stderr
        out = daemon.pyd("top", cid, "-o", "pid,args").stdout.splitlines()
        assert out[0].split() == ["PID", "COMMAND"] and out[1].split()[1:] == ["sleep", "100"]
        out = daemon.pyd("stats", "--no-stream", cid).stdout.splitlines()
        assert out[0].split()[:3] == ["CONTAINER", "ID", "NAME"] and out[1].startswith(cid[:12])
        row = daemon.pyd("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", cid).stdout
        name, usage, _, _limit, pids = row.split()
        assert name == inspect(daemon, cid)["Name"].lstrip("/") and usage[0] in "123456789" and pids == "1"
    finally:
        daemon.docker("rm", "-f", cid)


def test_init_reaps_zombies_and_forwards_signals(daemon, busybox):
    # the inner sh leaves an orphan that PID 1 inherits; when it exits, only PID 1 can reap it
    cid = daemon.docker("run", "-d", "--init", "--network", "none", busybox, "sh", "-c", ORPHAN,
                        check=True).stdout.strip()
    try:
        assert inspect(daemon, cid)["HostConfig"]["Init"] is True
        deadline = time.monotonic() + 5
        ps = ""
        while time.monotonic() < deadline:
            ps = daemon.docker("exec", cid, "ps", "-o", "pid,stat,args").stdout
            if "sleep 0.1" not in ps and "[sleep]" not in ps and "sleep 100" in ps:
                break
            time.sleep(0.1)
        lines = [line.split(None, 2) for line in ps.splitlines()[1:]]
        assert lines[0][0] == "1" and lines[0][2].startswith("/sbin/docker-init -- sh -c"), ps
        assert not any(stat.startswith("Z") for _, stat, _ in lines), ps           # the zombie was reaped
        top = daemon.api.api.top(cid, ps_args="-o pid,ppid,args")["Processes"]
        assert len(top) == 2 and top[1][1] == top[0][0] and top[1][2] == "sleep 100"   # init's child
        t0 = time.monotonic()
        daemon.docker("stop", cid, check=True)                 # TERM reaches sleep through the init
        assert time.monotonic() - t0 < 5
        assert inspect(daemon, cid)["State"]["ExitCode"] == 143
    finally:
        daemon.docker("rm", "-f", cid)
    r = daemon.docker("run", "--rm", "--init", "--network", "none", busybox, "sh", "-c", "exit 7")
    assert r.returncode == 7


def test_without_init_the_zombie_stays(daemon, busybox):
    cid = daemon.docker("run", "-d", "--network", "none", busybox, "sh", "-c", ORPHAN, check=True).stdout.strip()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            ps = daemon.docker("exec", cid, "ps", "-o", "pid,stat,args").stdout
            if any(line.split()[1].startswith("Z") for line in ps.splitlines()[1:]):
                break
            time.sleep(0.1)
        else:
            pytest.fail("no zombie without --init:\n" + ps)
    finally:
        daemon.docker("rm", "-f", cid)
