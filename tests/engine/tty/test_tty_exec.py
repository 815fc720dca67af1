"""Interactive use: -t (a pty from the container's devpts), resize, docker exec, attach and detach keys,
and the client's raw terminal. Real terminals come from python's pty module; every wait is bounded."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import termios
import time

import pytest

from conftest import DOCKER_CLI

DEADLINE = 20.0


class PtyProcess:
    """A command on the slave side of a fresh pty (its controlling terminal), driven from the master."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 24, cols: int = 80) -> None:
        pid, fd = pty.fork()
        if pid == 0:     # child: the terminal gets its size before the command starts
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.output = b""
        self.status: int | None = None

    def read_until(self, needle: bytes, timeout: float = DEADLINE) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {needle!r}; output so far: {self.output!r}")
            if not self._read(min(left, 0.5)):
                if needle not in self.output and self.poll() is not None:
                    raise AssertionError(f"exited ({self.status}) before {needle!r}; output: {self.output!r}")
        return self.output

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:        # EIO: the slave side is closed
            return False
        self.output += data
        return bool(data)

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def termios(self) -> list:
        return termios.tcgetattr(self.fd)     # on a master: the slave's settings

    def poll(self) -> int | None:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def wait(self, timeout: float = DEADLINE) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"still running after {timeout} s; output: {self.output!r}")
            self._read(0.1)
        while self._read(0.05):
            pass
        return self.status

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.status = -9

    def close(self) -> None:
        self.kill()
        os.close(self.fd)


@pytest.fixture
def term(daemon):
    """Start docker/pyd commands on a real terminal; all are killed (by PID) at the end."""
    procs: list[PtyProcess] = []

    def start(*argv: str, tool: str = "docker", rows: int = 24, cols: int = 80) -> PtyProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        if tool == "docker":
            env.update(DOCKER_HOST=daemon.host, DOCKER_CONFIG=str(daemon.docker_config), DOCKER_CLI_HINTS="false")
            full = [DOCKER_CLI, *argv]
        else:
            env.update(daemon.env())
            full = [str(daemon.pyd_bin), "-H", daemon.host, *argv]
        env["TERM"] = "xterm"
        p = PtyProcess(full, env, rows, cols)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.close()


def _running(daemon, busybox, *args: str) -> str:
    r = daemon.docker("run", "-d", *args, busybox, "sleep", "300", check=True)
    return r.stdout.strip()


# ---------------------------------------------------------------- -t


def test_run_t_gets_a_pty_of_its_devpts_and_raw_output(daemon, busybox):
    r = daemon.docker("run", "--rm", "-t", busybox, "sh", "-c", "tty; echo out; echo err >&2", timeout=30)
    assert r.returncode == 0, r.describe()
    # one raw stream (no stdcopy header), the pty's ONLCR turns \n into \r\n, stderr comes through it too
    assert r.stdout_bytes == b"/dev/pts/0\r\nout\r\nerr\r\n", r.describe()
    assert r.stderr == ""


def test_run_t_logs_pty_output_as_stdout(daemon, busybox):
    cid = daemon.docker("run", "-d", "-t", busybox, "sh", "-c", "echo hello; echo oops >&2", check=True).stdout.strip()
    assert daemon.docker("wait", cid, timeout=30).stdout.strip() == "0"
    logs = daemon.docker("logs", cid)
    assert logs.stdout == "hello\r\noops\r\n" and logs.stderr == ""
    daemon.docker("rm", cid, check=True)


def test_stty_size_follows_console_size_and_resize(daemon, busybox, term):
    p = term("run", "--rm", "-t", busybox, "stty", "size", rows=33, cols=101)
    assert p.wait() == 0
    assert b"33 101" in p.output, p.output
    cid = _running(daemon, busybox, "-t")
    try:
        daemon.api.api.resize(cid, height=40, width=120)
        r = daemon.docker("exec", cid, "stty", "size", "-F", "/dev/pts/0")
        assert r.returncode == 0 and r.stdout == "40 120\n", r.describe()
    finally:
        daemon.docker("rm", "-f", cid)


def test_resize_of_a_stopped_container_is_a_conflict(daemon, busybox):
    import docker
    cid = daemon.docker("create", "-t", busybox, "true", check=True).stdout.strip()
    with pytest.raises(docker.errors.APIError) as e:
        daemon.api.api.resize(cid, height=10, width=10)
    assert e.value.status_code == 409 and "is not running" in str(e.value)
    daemon.docker("rm", cid, check=True)


# ---------------------------------------------------------------- exec


def test_exec_basics_through_the_docker_cli(daemon, busybox):
    cid = _running(daemon, busybox, "-w", "/", "-e", "FROM_RUN=1")
    try:
        r = daemon.docker("exec", cid, "echo", "hi")
        assert (r.returncode, r.stdout, r.stderr) == (0, "hi\n", ""), r.describe()
        r = daemon.docker("exec", "-i", cid, "cat", input="piped stdin\n")
        assert (r.returncode, r.stdout) == (0, "piped stdin\n"), r.describe()
        r = daemon.docker("exec", cid, "sh", "-c", "echo to-err >&2; exit 3")
        assert (r.returncode, r.stdout, r.stderr) == (3, "", "to-err\n"), r.describe()
        assert daemon.docker("exec", "-u", "nobody", cid, "id", "-u").stdout == "65534\n"
        assert daemon.docker("exec", "-w", "/tmp", cid, "pwd").stdout == "/tmp\n"
        env = daemon.docker("exec", "-e", "X=y", cid, "env").stdout.splitlines()
        assert "X=y" in env and "FROM_RUN=1" in env and "HOME=/root" in env
        # the container's processes, files and hostname
        daemon.docker("exec", cid, "sh", "-c", "echo made-by-exec > /tmp/f", check=True)
        ps = daemon.docker("exec", cid, "ps", "-o", "pid,args").stdout
        assert "sleep 300" in ps and " 1 sleep 300" in ps.replace("    ", " ").replace("  ", " "), ps
        assert daemon.docker("exec", cid, "cat", "/tmp/f").stdout == "made-by-exec\n"
        assert daemon.docker("exec", cid, "hostname").stdout == cid[:12] + "\n"
        host_ns = os.readlink("/proc/self/ns/mnt")
        assert daemon.docker("exec", cid, "readlink", "/proc/1/ns/mnt").stdout.strip() != host_ns
    finally:
        daemon.docker("rm", "-f", cid)


def test_exec_of_a_missing_or_unrunnable_command(daemon, busybox):
    cid = _running(daemon, busybox)
    try:
        r = daemon.docker("exec", cid, "nosuchcmd")
        assert r.returncode == 127, r.describe()
        assert ('exec: "nosuchcmd": executable file not found in $PATH' in r.stdout + r.stderr), r.describe()
        r = daemon.docker("exec", cid, "/etc")
        assert r.returncode == 126, r.describe()
        assert "permission denied" in r.stdout + r.stderr
    finally:
        daemon.docker("rm", "-f", cid)


def test_exec_on_a_stopped_container_is_409(daemon, busybox):
    import docker
    cid = daemon.docker("create", busybox, "true", check=True).stdout.strip()
    try:
        r = daemon.docker("exec", cid, "echo", "hi")
        assert r.returncode != 0 and f"container {cid} is not running" in r.stderr, r.describe()
        with pytest.raises(docker.errors.APIError) as e:
            daemon.api.api.exec_create(cid, ["echo"])
        assert e.value.status_code == 409
    finally:
        daemon.docker("rm", cid)


def test_exec_through_docker_py(daemon, busybox):
    c = daemon.api.containers.run(busybox, ["sleep", "300"], detach=True)
    try:
        assert c.exec_run("echo hi") == (0, b"hi\n")
        code, out = c.exec_run(["sh", "-c", "echo o; echo e >&2; exit 4"], demux=True)
        assert code == 4 and out == (b"o\n", b"e\n")
        chunks = list(c.exec_run(["sh", "-c", "echo a; echo b"], stream=True).output)
        assert b"".join(chunks) == b"a\nb\n"
        # inspect of a finished exec, and a detached one
        api = daemon.api.api
        eid = api.exec_create(c.id, ["sh", "-c", "exit 5"])["Id"]
        assert api.exec_inspect(eid)["ExitCode"] is None and not api.exec_inspect(eid)["Running"]
        api.exec_start(eid, detach=True)
        deadline = time.monotonic() + 10
        while api.exec_inspect(eid)["Running"] or api.exec_inspect(eid)["ExitCode"] is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        info = api.exec_inspect(eid)
        assert info["ExitCode"] == 5 and info["ContainerID"] == c.id
        assert info["ProcessConfig"]["entrypoint"] == "sh"
        eid = api.exec_create(c.id, ["sleep", "30"])["Id"]
        api.exec_start(eid, detach=True)
        deadline = time.monotonic() + 10
        while not api.exec_inspect(eid)["Pid"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert api.exec_inspect(eid)["Running"]
        assert eid in (api.inspect_container(c.id)["ExecIDs"] or [])
    finally:
        c.remove(force=True)


def test_exec_events(daemon, busybox):
    cid = _running(daemon, busybox)
    try:
        since = str(time.time() - 1)
        daemon.docker("exec", cid, "true", check=True)
        until = str(time.time() + 1)
        r = daemon.docker("events", "--since", since, "--until", until, "--format", "{{json .}}", timeout=30)
        actions = [json.loads(line)["Action"] for line in r.stdout.splitlines()]
        assert "exec_create: true" in actions and "exec_start: true" in actions and "exec_die" in actions, actions
    finally:
        daemon.docker("rm", "-f", cid)


# ---------------------------------------------------------------- interactive sessions on a real terminal


def test_docker_run_it_shell_answers_and_exits_with_its_code(daemon, busybox, term):
    p = term("run", "--rm", "-it", busybox, "sh")
    p.read_until(b"# ")
    p.send(b"echo $((6*7)); tty\r")
    p.read_until(b"/dev/pts/0")
    assert b"42" in p.output
    p.send(b"exit 7\r")
    assert p.wait() == 7


def test_docker_attach_then_detach_keys_leave_it_running(daemon, busybox, term):
    cid = daemon.docker("run", "-d", "-it", busybox, "sh", "-c", "while true; do echo tick; sleep 0.2; done",
                        check=True).stdout.strip()
    try:
        p = term("attach", cid)
        p.read_until(b"tick")
        p.send(b"\x10\x11")                       # ctrl-p ctrl-q
        assert p.wait() == 1                       # docker's status after a detach
        assert b"read escape sequence" in p.output
        assert daemon.api.containers.get(cid).status == "running"
        p = term("attach", "--detach-keys", "ctrl-x", cid)
        p.read_until(b"tick")
        p.send(b"\x18")
        assert p.wait() == 1 and daemon.api.containers.get(cid).status == "running"
    finally:
        daemon.docker("rm", "-f", cid)


def test_run_it_detach_then_attach_runs_typed_commands(daemon, busybox, term):
    # the CLI that sees ctrl-p ctrl-q itself only closes its side: the shell's stdin must stay open
    p = term("run", "-it", "--name", "detach-attach", busybox, "sh")
    try:
        p.read_until(b"# ")
        p.send(b"echo one\r")
        p.read_until(b"one\r\n")
        p.send(b"\x10\x11")
        assert p.wait() == 0
        p = term("attach", "detach-attach")
        p.send(b"echo tw''o\r")                   # the quotes: the echoed line is not the output
        p.read_until(b"two\r\n")
        p.send(b"exit 7\r")
        assert p.wait() == 7                       # attach ends with the container's exit code
    finally:
        daemon.docker("rm", "-f", "detach-attach")


def test_tty_exec_session_ends_when_the_client_closes_stdin(daemon, busybox):
    # dockerd: with a tty the client's EOF ends the session (no output after it), the process goes on
    import socket
    cid = _running(daemon, busybox)
    api = daemon.api.api
    try:
        eid = api.exec_create(cid, ["sh", "-c", "echo started; sleep 2; echo late; sleep 300"], stdin=True,
                              tty=True)["Id"]
        sock = api.exec_start(eid, tty=True, socket=True)._sock
        sock.settimeout(10)
        got = b""
        while b"started" not in got:
            got += sock.recv(4096)
        sock.shutdown(socket.SHUT_WR)
        while (chunk := sock.recv(4096)):
            got += chunk
        sock.close()
        assert b"late" not in got and api.exec_inspect(eid)["Running"]
    finally:
        daemon.docker("rm", "-f", cid)


def test_start_a_again_shows_the_new_run(daemon, busybox):
    # the CLI attaches before it starts: a stopped container's attach waits for its next run
    daemon.docker("create", "--name", "start-again", busybox, "sh", "-c", "echo ran; exit 4", check=True)
    try:
        for _ in range(2):
            r = daemon.docker("start", "-a", "start-again", timeout=30)
            assert (r.returncode, r.stdout) == (4, "ran\n"), r.describe()
        daemon.docker("rm", "start-again", check=True)
        daemon.docker("create", "--name", "start-again", busybox, "no-such-command", check=True)
        r = daemon.docker("start", "-a", "start-again", timeout=30)     # a failed start ends the attach
        assert r.returncode == 1 and "executable file not found" in r.stderr, r.describe()
    finally:
        daemon.docker("rm", "-f", "start-again")


def test_docker_attach_gets_output_and_exit_code(daemon, busybox):
    cid = daemon.docker("run", "-d", busybox, "sh", "-c", "sleep 1; echo done; exit 3", check=True).stdout.strip()
    r = daemon.docker("attach", cid, timeout=30)
    assert (r.returncode, r.stdout) == (3, "done\n"), r.describe()
    r = daemon.docker("attach", cid)
    assert r.returncode == 1 and "You cannot attach to a stopped container, start it first" in r.stderr
    daemon.docker("rm", cid, check=True)


def test_docker_exec_it_on_a_terminal(daemon, busybox, term):
    cid = _running(daemon, busybox)
    try:
        p = term("exec", "-it", cid, "sh", rows=21, cols=77)
        p.read_until(b"# ")
        p.send(b"stty size; echo $TERM\r")
        p.read_until(b"xterm")
        assert b"21 77" in p.output
        p.resize(30, 90)
        time.sleep(0.3)                       # SIGWINCH -> docker -> POST /exec/{id}/resize
        p.send(b"stty size\r")
        p.read_until(b"30 90")
        p.send(b"exit 2\r")
        assert p.wait() == 2
    finally:
        daemon.docker("rm", "-f", cid)


def test_pyd_run_it_raw_mode_is_restored(daemon, busybox, term):
    p = term("run", "--rm", "-it", busybox, "sh", tool="pyd", rows=25, cols=100)
    before = p.termios()
    p.read_until(b"# ")
    during = p.termios()
    assert not during[3] & termios.ECHO and not during[3] & termios.ICANON     # raw while attached
    p.send(b"stty size\r")
    p.read_until(b"25 100")
    p.resize(40, 132)
    time.sleep(0.3)
    p.send(b"stty size\r")
    p.read_until(b"40 132")
    p.send(b"exit 5\r")
    assert p.wait() == 5
    assert p.termios() == before


def test_pyd_exec_and_attach(daemon, busybox, term):
    cid = daemon.pyd("run", "-d", "-it", busybox, "sh", "-c", "while true; do echo tock; sleep 0.2; done",
                     check=True).stdout.strip()
    try:
        assert daemon.pyd("exec", cid, "echo", "hi").stdout == "hi\n"
        assert daemon.pyd("exec", "-i", cid, "cat", input="x\n").stdout == "x\n"
        r = daemon.pyd("exec", "-u", "nobody", "-w", "/tmp", cid, "sh", "-c", "id -u; pwd; exit 3")
        assert (r.returncode, r.stdout) == (3, "65534\n/tmp\n"), r.describe()
        r = daemon.pyd("exec", cid, "nosuchcmd")
        assert r.returncode == 127 and "executable file not found" in r.stdout + r.stderr
        p = term("exec", "-it", cid, "sh", tool="pyd")
        p.read_until(b"# ")
        p.send(b"exit 4\r")
        assert p.wait() == 4
        p = term("attach", cid, tool="pyd")
        before = p.termios()
        p.read_until(b"tock")
        p.send(b"\x10\x11")
        assert p.wait() == 1 and b"read escape sequence" in p.output
        assert p.termios() == before
        assert daemon.api.containers.get(cid).status == "running"
    finally:
        daemon.pyd("rm", "-f", cid)


def test_pyd_run_it_detach_keys_leave_it_running(daemon, busybox, term):
    p = term("run", "-it", "--name", "detach-me", busybox, "sh", tool="pyd")
    before = p.termios()
    p.read_until(b"# ")
    p.send(b"\x10\x11")
    assert p.wait() == 0 and p.termios() == before
    try:
        assert daemon.api.containers.get("detach-me").status == "running"
    finally:
        daemon.pyd("rm", "-f", "detach-me")
