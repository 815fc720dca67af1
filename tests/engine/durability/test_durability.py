"""Durability: containers outlive a killed daemon, restart policies, crash repairs, fault injection."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import mounts_under, unmount_under

COUNTER = "i=0; while true; do echo n$i; i=$((i+1)); usleep 50000; done"


def inspect(d, ref: str) -> dict:
    r = d.docker("inspect", ref)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def wait_for(pred, timeout: float = 10.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    return pred()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def counter_lines(d, name: str) -> list[int]:
    out = d.docker("logs", name).stdout.split()
    return [int(x[1:]) for x in out if x.startswith("n")]


@pytest.fixture
def bdaemon(make_daemon, busybox_rootfs_tar):
    """A daemon of this test's own with busybox imported; returns (daemon, image)."""
    def make(*args: str, config: dict | None = None):
        d = make_daemon(*args, config=config)
        return d, d.import_image(busybox_rootfs_tar, "busybox")
    return make


def test_kill9_containers_keep_running_and_are_reattached(bdaemon):
    d, bb = bdaemon()
    d.docker("run", "-d", "--name", "counter", bb, "sh", "-c", COUNTER, check=True)
    d.docker("run", "-d", "--name", "quitter", bb, "sh", "-c", "sleep 1.5; exit 3", check=True)
    pid = inspect(d, "counter")["State"]["Pid"]
    for round_ in range(2):   # two crashes: logs must have no gap and no duplicate over both
        time.sleep(0.3)
        d.kill9()
        killed_at = time.time()
        assert alive(pid), "the container died with the daemon"
        time.sleep(2.0 if round_ == 0 else 0.5)
        d.start()
        restarted_at = time.time()
        ps = d.docker("ps", "--format", "{{.Names}} {{.Status}}").stdout
        assert "counter Up" in ps
        assert inspect(d, "counter")["State"]["Pid"] == pid
        if round_ == 0:   # exited while no daemon was there: its real code and time
            st = inspect(d, "quitter")["State"]
            assert st["Status"] == "exited" and st["ExitCode"] == 3
            from datetime import datetime
            finished = datetime.fromisoformat(st["FinishedAt"][:26].rstrip("Z") + "+00:00").timestamp()
            assert killed_at - 0.5 < finished < restarted_at, (killed_at, st["FinishedAt"], restarted_at)
    # logs -f on the new daemon keeps receiving new lines
    follow = subprocess.Popen(["/usr/local/bin/docker", "logs", "-f", "--tail", "0", "counter"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "DOCKER_HOST": d.host})
    try:
        time.sleep(1.0)
    finally:
        follow.send_signal(signal.SIGTERM)
        fresh = follow.communicate(timeout=10)[0].split()
    assert len(fresh) >= 5, fresh
    lines = counter_lines(d, "counter")
    assert lines == list(range(len(lines))), "lines lost or duplicated across daemon kills"
    d.docker("rm", "-f", "counter", check=True)


def _kill_container_tree(pid: int) -> None:
    """A simulated reboot: the container's init and its execd (its parent) die."""
    with open(f"/proc/{pid}/stat") as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    for p in (ppid, pid):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not alive(pid), 5)


def test_reboot_restart_policies_and_repair(bdaemon):
    d, bb = bdaemon()
    for name, policy in (("always", "always"), ("never", "no"), ("unless", "unless-stopped"),
                         ("onfail", "on-failure")):
        d.docker("run", "-d", "--name", name, "--restart", policy, bb, "sleep", "300", check=True)
    pids = {n: inspect(d, n)["State"]["Pid"] for n in ("always", "never", "unless", "onfail")}
    d.kill9()
    for pid in pids.values():
        _kill_container_tree(pid)
    unmount_under(str(d.exec_root))          # exec-root is a tmpfs: gone at reboot
    for entry in os.listdir(d.exec_root):
        subprocess.run(["rm", "-rf", str(d.exec_root / entry)], check=True)
    log_start = d.log_size()
    d.start()
    assert wait_for(lambda: inspect(d, "always")["State"]["Running"] and inspect(d, "unless")["State"]["Running"]
                    and inspect(d, "onfail")["State"]["Running"], 30)   # 255 is a failure; 30 s: a loaded CI box
    never = inspect(d, "never")["State"]
    assert never["Status"] == "exited" and never["ExitCode"] == 255
    # the rootfs left mounted by the dead container is unmounted; its exec state is gone
    merged = (inspect(d, "never")["GraphDriver"]["Data"] or {}).get("MergedDir")
    assert merged is None or merged not in mounts_under(str(d.data_root))
    assert not (d.exec_root / inspect(d, "never")["Id"]).exists()
    assert "Traceback" not in d.log_text(log_start)
    d.docker("rm", "-f", "always", "never", "unless", "onfail", check=True)


def test_on_failure_max_retries(bdaemon):
    d, bb = bdaemon()
    d.docker("run", "-d", "--name", "ff", "--restart", "on-failure:2", bb, "sh", "-c", "exit 7", check=True)
    assert wait_for(lambda: (lambda s: s["RestartCount"] == 2 and s["State"]["Status"] == "exited")(
        inspect(d, "ff")), 10)
    time.sleep(0.8)
    info = inspect(d, "ff")
    assert info["RestartCount"] == 2 and info["State"]["ExitCode"] == 7 and not info["State"]["Running"]
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    # exit 0 is no failure: no restart
    d.docker("run", "-d", "--name", "ok", "--restart", "on-failure", bb, "true", check=True)
    time.sleep(0.8)
    assert inspect(d, "ok")["RestartCount"] == 0


def test_always_backoff_stop_and_daemon_restart(bdaemon):
    d, bb = bdaemon()
    d.docker("run", "-d", "--name", "aa", "--restart", "always", bb, "sh", "-c", "echo x; exit 1", check=True)
    time.sleep(2.0)
    # back-off 0.1 0.2 0.4 0.8 1.6 s: about 4 restarts in 2 s, not dozens
    count = inspect(d, "aa")["RestartCount"]
    assert 2 <= count <= 6, count
    statuses = {inspect(d, "aa")["State"]["Status"] for _ in range(20) if not time.sleep(0.05)}
    assert "restarting" in statuses
    assert "Restarting (1)" in d.docker("ps", "--format", "{{.Status}}").stdout or "running" in statuses
    # docker stop ends the restarts
    d.docker("stop", "-t", "1", "aa", check=True)
    time.sleep(1.0)
    st = inspect(d, "aa")
    assert not st["State"]["Running"] and st["State"]["Status"] == "exited"
    d.docker("run", "-d", "--name", "uu", "--restart", "unless-stopped", bb, "sleep", "300", check=True)
    d.docker("stop", "-t", "0", "uu", check=True)
    d.docker("run", "-d", "--name", "ss", "--restart", "always", bb, "sleep", "300", check=True)
    d.docker("stop", "-t", "0", "ss", check=True)
    # always comes back at the next daemon start even after a stop; unless-stopped does not
    d.restart()
    assert wait_for(lambda: inspect(d, "ss")["State"]["Running"], 10)
    time.sleep(0.5)
    assert not inspect(d, "uu")["State"]["Running"]
    # a running always container stopped by a graceful daemon shutdown comes back too
    d.restart()
    assert wait_for(lambda: inspect(d, "ss")["State"]["Running"], 10)
    d.docker("rm", "-f", "aa", "uu", "ss", check=True)


def test_update_restart_policy(bdaemon):
    d, bb = bdaemon()
    # the update must land before the exit: 3 s leaves room on a loaded machine
    d.docker("run", "-d", "--name", "up", bb, "sh", "-c", "sleep 3; exit 2", check=True)
    r = d.docker("update", "--restart", "on-failure:1", "up")
    assert r.returncode == 0, r.stderr
    assert inspect(d, "up")["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 1}
    assert wait_for(lambda: inspect(d, "up")["RestartCount"] == 1, 15)
    r = d.docker("run", "-d", "--restart", "bogus", bb, "true")
    assert r.returncode != 0 and "invalid restart policy" in r.stderr
    r = d.docker("create", "--rm", "--restart", "always", bb, "true")
    assert r.returncode != 0
    d.docker("rm", "-f", "up", check=True)


def test_live_restore_and_graceful_shutdown(bdaemon):
    d, bb = bdaemon("--live-restore")
    d.docker("run", "-d", "--name", "lr", "--stop-timeout", "1", bb, "sleep", "300", check=True)
    pid = inspect(d, "lr")["State"]["Pid"]
    assert d.stop() == 0
    assert alive(pid), "--live-restore: the container must survive a daemon shutdown"
    d.start()
    assert inspect(d, "lr")["State"]["Running"]
    d.args.remove("--live-restore")
    d.restart()    # the old daemon still had --live-restore: the container stays
    assert alive(pid) and inspect(d, "lr")["State"]["Running"]
    # without live-restore a shutdown stops containers: SIGTERM, then SIGKILL after the stop timeout
    d.docker("run", "-d", "--name", "term", "--stop-timeout", "1", bb, "sh", "-c",
             "trap 'exit 0' TERM; while true; do usleep 10000; done", check=True)
    d.restart()
    assert not alive(pid)
    lr, term = inspect(d, "lr")["State"], inspect(d, "term")["State"]
    assert lr["Status"] == "exited" and lr["ExitCode"] == 137   # sleep ignores SIGTERM as pid 1: killed
    assert term["Status"] == "exited" and term["ExitCode"] == 0


def test_rm_container_removed_after_crash(bdaemon):
    d, bb = bdaemon()
    cid = d.docker("run", "-d", "--rm", bb, "sh", "-c", "sleep 0.5", check=True).stdout.strip()
    d.kill9()
    time.sleep(1.0)
    d.start()
    assert wait_for(lambda: d.docker("inspect", cid).returncode != 0, 5)
    assert not (d.data_root / "containers" / cid).exists()


def test_repair_half_created_dir_and_orphan_mount(bdaemon):
    d, bb = bdaemon()
    d.docker("create", "--name", "keep", bb, "true", check=True)
    d.stop()
    half = d.data_root / "containers" / ("ab" * 32)
    half.mkdir()
    (half / "hostname").write_text("x\n")
    (d.data_root / "containers" / (("cd" * 32) + ".removing")).mkdir()
    driver = "overlay2" if (d.data_root / "overlay2").exists() else "vfs"
    orphan = d.data_root / driver / "orphan-test" / "merged"
    orphan.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(orphan)], check=True)
    try:
        start = d.log_size()
        d.start()
        text = d.log_text(start)
    finally:
        subprocess.run(["umount", "-l", str(orphan)], capture_output=True)
    assert 'level=warning msg="repair: removing half-created container abababababab' in text
    assert "repair: finishing the removal of" in text
    assert f'msg="repair: unmounting orphaned mount {orphan}' in text
    assert not half.exists() and str(orphan) not in mounts_under(str(d.data_root))
    names = d.docker("ps", "-a", "--format", "{{.Names}}", check=True).stdout.split()
    assert names == ["keep"]


def test_rename_and_prune(bdaemon):
    d, bb = bdaemon()
    d.docker("create", "--name", "one", bb, "true", check=True)
    d.docker("create", "--name", "two", "--label", "keep=1", bb, "true", check=True)
    d.docker("run", "-d", "--name", "up", bb, "sleep", "300", check=True)
    assert d.docker("rename", "one", "uno").returncode == 0
    assert inspect(d, "uno")["Name"] == "/uno"
    r = d.docker("rename", "uno", "two")
    assert r.returncode == 1 and 'The container name "/two" is already in use' in r.stderr
    r = d.api.api.prune_containers(filters={"label!": "keep=1"})
    assert len(r["ContainersDeleted"]) == 1 and isinstance(r["SpaceReclaimed"], int)
    assert d.docker("inspect", "uno").returncode == 1
    r = d.docker("container", "prune", "-f")
    assert r.returncode == 0 and "Total reclaimed space" in r.stdout
    names = d.docker("ps", "-a", "--format", "{{.Names}}", check=True).stdout.split()
    assert names == ["up"]


def test_fault_injection_kill9_during_churn(bdaemon, busybox_archive, capsys):
    """Kill the daemon at random moments of create/start/stop/rm churn; every acknowledged container must
    be whole afterwards, running ones really running, and no mount leaked."""
    d, bb = bdaemon()
    rng = random.Random(4)
    acked: dict[str, str] = {}        # id -> last acknowledged action
    results = []
    for round_ in range(30):
        procs = []
        ops = []
        for i in range(4):
            op = rng.choice(["create", "run", "rm", "stop", "load"])
            if op in ("rm", "stop") and acked:
                target = rng.choice(sorted(acked))
                argv = ["rm", "-f", target] if op == "rm" else ["stop", "-t", "0", target]
            elif op == "create":
                argv = ["create", bb, "true"]
            elif op == "load":
                argv = ["load", "-q", "-i", str(busybox_archive)]
            else:
                argv = ["run", "-d", bb, "sleep", "300"]
            ops.append(argv)
            procs.append(subprocess.Popen(["/usr/local/bin/docker", *argv], stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, text=True,
                                          env={**os.environ, "DOCKER_HOST": d.host}))
        time.sleep(rng.uniform(0.0, 0.4))
        d.kill9()
        for argv, p in zip(ops, procs):
            out, _ = p.communicate(timeout=30)
            if argv[0] == "rm":
                # a removal cut short by the kill may or may not have happened: either outcome is whole
                acked.pop(argv[-1], None)
            elif p.returncode == 0 and argv[0] in ("create", "run"):
                acked[out.strip()] = argv[0]
        d.start()
        ps = json.loads(d.docker("ps", "-a", "--no-trunc", "--format", "{{json .ID}}", check=True).stdout
                        .replace("\n", ",").rstrip(",").join("[]"))
        missing = [cid for cid in acked if cid not in ps]
        assert not missing, f"round {round_}: acknowledged containers lost: {missing}"
        for cid in ps:
            st = inspect(d, cid)["State"]
            if st["Running"]:
                assert alive(st["Pid"]), f"round {round_}: {cid[:12]} says running, pid {st['Pid']} is dead"
        assert d.docker("images", "-q", check=True).stdout.strip(), f"round {round_}: images lost"
        results.append((round_, len(acked), len(ps)))
        if len(ps) > 12:   # keep the churn bounded
            d.docker("rm", "-f", *ps[:8])
            acked = {k: v for k, v in acked.items() if k not in ps[:8]}
    d.docker("rm", "-f", *d.docker("ps", "-aq", "--no-trunc").stdout.split())
    mounts = [m for m in mounts_under(str(d.data_root)) if "/merged" in m]
    assert not mounts, f"leaked mounts: {mounts}"
    memory_parent = Path("/sys/fs/cgroup/memory") / d.cgroup_parent
    leaked = [p.name for p in memory_parent.iterdir() if p.is_dir()] if memory_parent.is_dir() else []
    assert not leaked, f"leaked cgroups: {leaked}"
    with capsys.disabled():
        print("\nfault injection rounds (round, acknowledged, present):", results)
