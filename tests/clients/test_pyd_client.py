"""The engine core through pyd's own client."""
from __future__ import annotations

import json
import time


def test_run_rm_echo_hello(daemon, busybox):
    r = daemon.pyd("run", "--rm", busybox, "echo", "hello")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello\n"
    assert daemon.pyd("ps", "-aq", check=True).stdout == ""


def test_exit_codes(daemon, busybox):
    assert daemon.pyd("run", "--rm", busybox, "sh", "-c", "exit 3").returncode == 3
    r = daemon.pyd("run", "--rm", busybox, "nosuchcmd")
    assert r.returncode == 127
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in r.stderr


def test_env_workdir_user(daemon, busybox):
    r = daemon.pyd("run", "--rm", "-e", "X=1", "-w", "/tmp", "-u", "nobody", busybox,
                   "sh", "-c", 'echo "$X $(pwd) $(id -u)"', check=True)
    assert r.stdout == "1 /tmp 65534\n"


def test_hostname_hosts_resolv(daemon, busybox):
    cid = daemon.pyd("create", busybox, "sh", "-c", "hostname; cat /etc/hostname; grep -c localhost /etc/hosts",
                     check=True).stdout.strip()
    try:
        daemon.pyd("start", cid, check=True)
        assert daemon.pyd("wait", cid, check=True).stdout.strip() == "0"
        out = daemon.pyd("logs", cid, check=True).stdout.split()
        assert out[0] == cid[:12] and out[1] == cid[:12] and int(out[2]) >= 1
    finally:
        daemon.pyd("rm", "-f", cid)


def test_detached_ps_logs_inspect_stop_rm(daemon, busybox):
    cid = daemon.pyd("run", "-d", "--name", "pyd-web", "-l", "tier=web", busybox, "sh", "-c",
                     "echo one; echo two; exec sleep 300", check=True).stdout.strip()
    try:
        assert "pyd-web" in daemon.pyd("ps", check=True).stdout
        assert daemon.pyd("ps", "-q", check=True).stdout.split() == [cid[:12]]
        deadline = time.time() + 10
        while "two" not in daemon.pyd("logs", "pyd-web").stdout and time.time() < deadline:
            time.sleep(0.1)
        assert daemon.pyd("logs", "--tail", "1", "pyd-web", check=True).stdout == "two\n"
        ts = daemon.pyd("logs", "-t", "pyd-web", check=True).stdout.splitlines()
        assert ts[0].endswith("Z one") and ts[0][:4].isdigit()
        info = json.loads(daemon.pyd("inspect", "pyd-web", check=True).stdout)[0]
        assert info["Id"] == cid and info["Config"]["Labels"] == {"tier": "web"}
        assert daemon.pyd("inspect", "-f", "{{.State.Running}}", "pyd-web", check=True).stdout.strip() == "true"
        daemon.pyd("stop", "-t", "1", "pyd-web", check=True)
        assert daemon.pyd("inspect", "-f", "{{.State.ExitCode}}", "pyd-web", check=True).stdout.strip() == "137"
    finally:
        daemon.pyd("rm", "-f", "pyd-web")
    r = daemon.pyd("inspect", "pyd-web")
    assert r.returncode == 1 and "No such object: pyd-web" in r.stderr


def test_logs_follow_until_exit(daemon, busybox):
    cid = daemon.pyd("run", "-d", busybox, "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done",
                     check=True).stdout.strip()
    try:
        r = daemon.pyd("logs", "-f", cid, timeout=20, check=True)
        assert r.stdout == "1\n2\n3\n"
    finally:
        daemon.pyd("rm", "-f", cid)


def test_images_tag_rmi(daemon, busybox):
    daemon.pyd("tag", busybox, "pyd-copy:v2", check=True)
    assert "pyd-copy" in daemon.pyd("images", check=True).stdout
    r = daemon.pyd("rmi", "pyd-copy:v2", check=True)
    assert "Untagged: pyd-copy:v2" in r.stdout


def test_events_stream_sees_lifecycle(daemon, busybox):
    since = str(time.time())
    daemon.pyd("run", "--rm", "--name", "pyd-evt", busybox, "true", check=True)
    r = daemon.pyd("events", "--since", since, "--until", str(time.time() + 1), "--filter", "container=pyd-evt",
                   "--format", "{{.Action}}", check=True, timeout=20)
    actions = r.stdout.split()
    assert actions[:1] == ["create"] and "start" in actions and "die" in actions and actions[-1] == "destroy"


def test_no_daemon_message(pyd_bin, tmp_path):
    import subprocess
    r = subprocess.run([str(pyd_bin), "-H", f"unix://{tmp_path}/none.sock", "ps"], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"Cannot connect to the pyd daemon at unix://{tmp_path}/none.sock. Is the pyd daemon running?" in r.stderr
