"""The engine core through the real docker CLI pointed at `pyd daemon`."""
from __future__ import annotations

import json
import time

import pytest


def test_version_shows_pyd_server(daemon):
    r = daemon.docker("version", "--format", "{{json .Server}}", check=True)
    server = json.loads(r.stdout)
    assert server["ApiVersion"] == "1.47"
    assert server["Platform"]["Name"] == "pyd"
    assert server["Os"] == "linux"


def test_run_rm_echo(daemon, busybox):
    r = daemon.docker("run", "--rm", busybox, "echo", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"
    assert daemon.docker("ps", "-aq", check=True).stdout == ""


@pytest.mark.parametrize("cmd,code", [
    (["true"], 0),
    (["sh", "-c", "exit 3"], 3),
])
def test_exit_codes(daemon, busybox, cmd, code):
    r = daemon.docker("run", "--rm", "--network", "none", busybox, *cmd)
    assert r.returncode == code, r.stderr


def test_killed_run_exits_137(daemon, busybox):
    """`docker run` of a container killed from outside exits 128+9, like Docker."""
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        run = pool.submit(daemon.docker, "run", "--rm", "--name", "cli-victim", busybox, "sleep", "300")
        deadline = time.time() + 10
        while "cli-victim" not in daemon.docker("ps", check=True).stdout and time.time() < deadline:
            time.sleep(0.05)
        daemon.docker("kill", "cli-victim", check=True)
        assert run.result(timeout=30).returncode == 137


def test_command_not_found_is_127(daemon, busybox):
    r = daemon.docker("run", "--rm", busybox, "nosuchcmd")
    assert r.returncode == 127
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in r.stderr


def test_not_executable_is_126(daemon, busybox):
    r = daemon.docker("run", "--rm", busybox, "/etc")
    assert r.returncode == 126
    assert "permission denied" in r.stderr


def test_stderr_and_stdout_are_separate(daemon, busybox):
    r = daemon.docker("run", "--rm", busybox, "sh", "-c", "echo out; echo err >&2")
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"


def test_stdin_with_i(daemon, busybox):
    r = daemon.docker("run", "--rm", "-i", busybox, "sh", "-c", "tr a-z A-Z", input="hello pyd\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "HELLO PYD\n"


def test_detached_lifecycle_ps_logs_inspect_stop_rm(daemon, busybox):
    cid = daemon.docker("run", "-d", "--name", "cli-web", "-e", "GREETING=bonjour", busybox,
                        "sh", "-c", "echo $GREETING; echo oops >&2; exec sleep 300", check=True).stdout.strip()
    assert len(cid) == 64
    try:
        ps = daemon.docker("ps", check=True).stdout.splitlines()
        assert ps[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
        row = next(line for line in ps[1:] if line.startswith(cid[:12]))
        assert "cli-web" in row and "Up " in row
        deadline = time.time() + 10
        while time.time() < deadline:
            logs = daemon.docker("logs", "cli-web")
            if "bonjour" in logs.stdout and "oops" in logs.stderr:
                break
            time.sleep(0.1)
        assert logs.stdout == "bonjour\n" and logs.stderr == "oops\n"
        assert daemon.docker("inspect", "-f", "{{.State.Status}} {{.Config.Hostname}}", "cli-web",
                             check=True).stdout.split() == ["running", cid[:12]]
        assert daemon.docker("inspect", "-f", "{{json .Config.Env}}", cid[:8], check=True).stdout.count("GREETING")
        start = time.time()
        assert daemon.docker("stop", "-t", "1", "cli-web", check=True).stdout.strip() == "cli-web"
        assert time.time() - start < 8
        state = json.loads(daemon.docker("inspect", "cli-web", check=True).stdout)[0]["State"]
        assert state["Status"] == "exited" and state["ExitCode"] == 137
        assert "cli-web" in daemon.docker("ps", "-a", check=True).stdout
    finally:
        daemon.docker("rm", "-f", "cli-web")
    assert "cli-web" not in daemon.docker("ps", "-a", check=True).stdout


def test_stop_honours_sigterm(daemon, busybox):
    daemon.docker("run", "-d", "--name", "cli-term", busybox, "sh", "-c",
                  "trap 'exit 7' TERM; while true; do sleep 0.1; done", check=True)
    try:
        time.sleep(0.5)
        daemon.docker("stop", "cli-term", check=True)
        assert daemon.docker("inspect", "-f", "{{.State.ExitCode}}", "cli-term", check=True).stdout.strip() == "7"
    finally:
        daemon.docker("rm", "-f", "cli-term")


def test_rm_running_needs_force(daemon, busybox):
    daemon.docker("run", "-d", "--name", "cli-busy", busybox, "sleep", "300", check=True)
    try:
        r = daemon.docker("rm", "cli-busy")
        assert r.returncode == 1
        assert "container is running" in r.stderr
    finally:
        assert daemon.docker("rm", "-f", "cli-busy").returncode == 0


def test_wait_returns_exit_code(daemon, busybox):
    cid = daemon.docker("run", "-d", busybox, "sh", "-c", "sleep 0.2; exit 5", check=True).stdout.strip()
    try:
        assert daemon.docker("wait", cid, check=True).stdout.strip() == "5"
    finally:
        daemon.docker("rm", "-f", cid)


def test_unknown_container_and_duplicate_name(daemon, busybox):
    r = daemon.docker("inspect", "nosuchcontainer")
    assert r.returncode == 1 and "No such object: nosuchcontainer" in r.stderr
    daemon.docker("create", "--name", "cli-dup", busybox, "true", check=True)
    try:
        r = daemon.docker("create", "--name", "cli-dup", busybox, "true")
        assert r.returncode == 1  # docker 28's create (unlike run) reports daemon errors with 1
        assert 'The container name "/cli-dup" is already in use' in r.stderr
    finally:
        daemon.docker("rm", "cli-dup")


def test_images_and_tag_and_rmi(daemon, busybox):
    daemon.docker("tag", busybox, "127.0.0.1:5999/team/bb:v1", check=True)
    out = daemon.docker("images", check=True).stdout.splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(line.startswith("127.0.0.1:5999/team/bb") and " v1 " in line for line in out)
    r = daemon.docker("rmi", "127.0.0.1:5999/team/bb:v1", check=True)
    assert "Untagged: 127.0.0.1:5999/team/bb:v1" in r.stdout
    assert daemon.docker("image", "inspect", busybox).returncode == 0


def test_load_archive(daemon, busybox_archive):
    r = daemon.docker("load", "-i", str(busybox_archive), check=True)
    assert "Loaded image" in r.stdout


def test_an_api_1_41_client_reads_stdcopy_frames_without_a_tty(daemon, busybox) -> None:
    # before 1.42 dockerd names the stream raw-stream, yet without a tty its bytes are still stdcopy frames:
    # docker 20.10 (Debian 12's docker.io) reads them so
    r = daemon.docker("run", "--rm", busybox, "sh", "-c", "echo out; echo err >&2",
                      env={"DOCKER_API_VERSION": "1.41"})
    assert r.returncode == 0, r.stderr
    assert (r.stdout, r.stderr) == ("out\n", "err\n")
    cid = daemon.docker("run", "-d", busybox, "echo", "logged", env={"DOCKER_API_VERSION": "1.41"}).stdout.strip()
    daemon.docker("wait", cid)
    logs = daemon.docker("logs", cid, env={"DOCKER_API_VERSION": "1.41"})
    assert logs.stdout == "logged\n", logs
