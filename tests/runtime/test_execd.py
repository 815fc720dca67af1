"""execd and its Python driver, driven directly (no daemon): a busybox rootfs in a tmp dir, real namespaces."""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))   # run from anywhere, without an installed pyd

from pyd.daemon.runtime import execdriver  # noqa: E402
from pyd.daemon.runtime.execdriver import ContainerSpec, ExecDriver, ExecError, Execd, ExitStatus, Mount, Process  # noqa: E402

EXECD_BIN = REPO / "pyd" / "execd"
APPLETS = ["sh", "echo", "cat", "sleep", "id", "hostname", "ls", "env", "pwd", "true", "false", "printf", "dd"]
TIME_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z"
TIMEOUT = 20

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="execd needs root (namespaces, mounts)")


# ---- fixtures ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def execd_path() -> str:
    """pyd/execd as the build makes it (build.py recompiles it only when a file in execd/ is newer)."""
    subprocess.run([sys.executable, str(REPO / "build.py"), "--execd-only"], check=True)
    return str(EXECD_BIN)


@pytest.fixture(scope="session")
def rootfs():
    top = tempfile.mkdtemp(prefix="pyd-execd-rootfs-", dir="/tmp")
    root = Path(top) / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("busybox", root / "bin" / applet)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                         "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")
    yield str(root)
    shutil.rmtree(top)


class Harness:
    """Builds specs under one tmp dir and kills whatever the test left running."""

    def __init__(self, driver: ExecDriver, rootfs: str, top: Path):
        self.driver = driver
        self.rootfs = rootfs
        self.top = top
        self.state_dirs: list[Path] = []
        self.count = 0

    def spec(self, args: list[str], *, env: list[str] | None = None, hostname: str | None = None,
             log_path: str | None | bool = True, cwd: str = "/", uid: int = 0, gid: int = 0,
             groups: list[int] | None = None, stdin: bool = False, **spec_kw) -> ContainerSpec:
        self.count += 1
        name = f"c{self.count}"
        state = self.top / "run" / name
        self.state_dirs.append(state)
        proc = Process(args=args, env=["PATH=/bin"] if env is None else env, cwd=cwd, uid=uid, gid=gid,
                       groups=groups or [], stdin=stdin)
        if log_path is True:
            log_path = str(self.top / f"{name}-json.log")
        return ContainerSpec(id=name, rootfs=self.rootfs, process=proc, hostname=hostname or name,
                             state_dir=str(state), log_path=log_path, **spec_kw)

    def cleanup(self) -> None:
        for state in self.state_dirs:
            pid_file = state / "pid"
            if pid_file.exists() and not (state / "exit").exists():
                try:
                    os.kill(int(pid_file.read_text()), signal.SIGKILL)
                except ProcessLookupError:
                    pass
                wait_for(lambda: (state / "exit").exists() or not process_alive(int(pid_file.read_text())))


def process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


@pytest.fixture
def harness(execd_path, rootfs):
    top = Path(tempfile.mkdtemp(prefix="pyd-execd-", dir="/tmp"))
    h = Harness(ExecDriver(execd_path, str(top / "run")), rootfs, top)
    yield h
    h.cleanup()
    shutil.rmtree(top)


def run(coro, loop: str = "asyncio"):
    factory = None
    if loop == "uvloop":
        import uvloop
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(asyncio.wait_for(coro, TIMEOUT))


async def run_container(h: Harness, spec: ContainerSpec) -> tuple[ExitStatus, dict[int, bytes]]:
    out: dict[int, bytes] = {1: b"", 2: b""}

    def on_output(stream: int, data: bytes) -> None:
        out[stream] += data

    ex = await h.driver.start(spec, on_output)
    return await ex.exit, out


def log_lines(spec: ContainerSpec) -> list[dict]:
    return [json.loads(line) for line in Path(spec.log_path).read_text().splitlines()]


# ---- output and logs --------------------------------------------------------------------------------

@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_echo_reaches_callback_and_json_log(harness, loop):
    spec = harness.spec(["echo", "hello"])
    status, out = run(run_container(harness, spec), loop)
    assert status.exit_code == 0 and status.signal is None
    assert out == {1: b"hello\n", 2: b""}
    raw = Path(spec.log_path).read_text()
    assert re.fullmatch(r'\{"log":"hello\\n","stream":"stdout","time":"' + TIME_RE + r'"\}\n', raw), raw
    assert abs(status.finished_at - time.time()) < 60


def test_log_escapes_like_docker(harness):
    script = r"""printf 'q"b\\s\t<&>\001\377\342\200\250é\n'; printf 'err\n' >&2; printf 'no newline'"""
    spec = harness.spec(["sh", "-c", script])
    status, out = run(run_container(harness, spec))
    assert status.exit_code == 0
    assert out[1] == b'q"b\\s\t<&>\x01\xff\xe2\x80\xa8\xc3\xa9\nno newline'
    raw = Path(spec.log_path).read_bytes().decode()
    entries = [line.split(',"time"')[0] for line in raw.splitlines()]
    stdout = [e for e in entries if e.endswith('"stdout"')]
    assert stdout == [r'{"log":"q\"b\\s\u0009\u003c\u0026\u003e\u0001\ufffd\u2028é\n","stream":"stdout"',
                      r'{"log":"no newline","stream":"stdout"']
    assert [e for e in entries if e.endswith('"stderr"')] == [r'{"log":"err\n","stream":"stderr"']


def test_log_escapes_after_long_plain_runs(harness):
    """The encoder scans plain text 16 bytes at a time: specials right after long plain runs, at every
    offset within a 16-byte block, are escaped like the rest."""
    # printf's format: \\ is a backslash, \001 and \377 are those bytes
    lines = ["p" * k + '<"\\\\' + "q" * (31 - k) + "\\001" + "r" * k + "\\377&>" for k in range(17, 34)]
    spec = harness.spec(["sh", "-c", "printf '" + "\\n".join(lines) + "\\n'"])
    status, _ = run(run_container(harness, spec))
    assert status.exit_code == 0
    raw = Path(spec.log_path).read_text()
    got = [json.loads(line)["log"] for line in raw.splitlines()]
    assert got == ["p" * k + '<"\\' + "q" * (31 - k) + "\x01" + "r" * k + "\ufffd&>\n" for k in range(17, 34)]
    assert raw.count("\\u003c") == raw.count("\\u0026") == raw.count("\\u003e") == raw.count("\\ufffd") == 17


def test_bulk_log_keeps_order_and_the_last_partial_line(harness):
    """Bulk output is logged by execd's second thread: every line in order, stderr's own entries, and the
    unterminated last line as an entry of its own."""
    spec = harness.spec(["sh", "-c", "seq 1 200000; echo warn >&2; seq 200001 300000; printf tail"])
    status, out = run(run_container(harness, spec))
    assert status.exit_code == 0
    entries = log_lines(spec)
    stdout = [e["log"] for e in entries if e["stream"] == "stdout"]
    assert stdout == [f"{i}\n" for i in range(1, 300001)] + ["tail"]
    assert [e["log"] for e in entries if e["stream"] == "stderr"] == ["warn\n"]


def test_long_lines_are_split_at_16k(harness):
    spec = harness.spec(["sh", "-c", "printf '%040000d\\n' 0"])
    status, out = run(run_container(harness, spec))
    assert status.exit_code == 0 and len(out[1]) == 40001
    pieces = [entry["log"] for entry in log_lines(spec)]
    assert [len(p) for p in pieces] == [16384, 16384, 40001 - 2 * 16384]
    assert "".join(pieces) == out[1].decode()


def test_lines_at_the_16k_boundary(harness):
    """A line of 16384 bytes with its newline is one entry; one byte more and the newline is an entry of its
    own; escapes in a line that is split land in their own pieces."""
    spec = harness.spec(["sh", "-c", "printf '%016383d\\n%016384d\\n' 0 0; printf 'a%016382d\\t\\n' 0"])
    status, out = run(run_container(harness, spec))
    assert status.exit_code == 0
    pieces = [entry["log"] for entry in log_lines(spec)]
    assert [len(p) for p in pieces] == [16384, 16384, 1, 16384, 1]
    assert pieces[0].endswith("0\n") and pieces[2] == "\n" and pieces[3].endswith("0\t") and pieces[4] == "\n"
    assert "".join(pieces) == out[1].decode()


def test_bulk_output_with_slow_reader_loses_nothing(harness):
    spec = harness.spec(["dd", "if=/dev/zero", "bs=65536", "count=160"])

    async def main():
        got = bytearray()
        ex = await harness.driver.start(spec, lambda s, d: got.extend(d) if s == 1 else None)
        ex.pause_output()            # execd must stop reading the pipe, not drop or hoard output
        await asyncio.sleep(0.5)
        assert not ex.exit.done()    # dd is blocked on its pipe
        ex.resume_output()
        status = await ex.exit
        return status, got

    status, got = run(main())
    assert status.exit_code == 0
    assert len(got) == 160 * 65536 and not got.strip(b"\0")
    assert sum(len(e["log"]) for e in log_lines(spec) if e["stream"] == "stdout") == 160 * 65536


def test_no_log_when_log_path_is_none(harness):
    spec = harness.spec(["echo", "x"], log_path=None)
    status, out = run(run_container(harness, spec))
    assert status.exit_code == 0 and out[1] == b"x\n"
    assert not list(harness.top.glob("*.log"))


# ---- exit codes and exec errors ---------------------------------------------------------------------

@pytest.mark.parametrize("args,code", [(["true"], 0), (["false"], 1), (["sh", "-c", "exit 3"], 3)])
def test_exit_codes(harness, args, code):
    status, _ = run(run_container(harness, harness.spec(args)))
    assert (status.exit_code, status.signal) == (code, None)


def test_kill_gives_128_plus_signal(harness):
    async def main():
        ex = await harness.driver.start(harness.spec(["sleep", "100"]), lambda s, d: None)
        ex.kill(signal.SIGKILL)
        return await ex.exit

    status = run(main())
    assert (status.exit_code, status.signal) == (137, 9)


@pytest.mark.parametrize("args,message,code", [
    (["nosuchcmd"], 'exec: "nosuchcmd": executable file not found in $PATH', 127),
    (["/nope"], 'exec: "/nope": stat /nope: no such file or directory', 127),
    (["/etc"], 'exec: "/etc": permission denied', 126),
    (["/etc/passwd"], 'exec: "/etc/passwd": permission denied', 126),
])
def test_exec_errors_use_dockers_words(harness, args, message, code):
    spec = harness.spec(args)
    with pytest.raises(ExecError) as info:
        run(harness.driver.start(spec, lambda s, d: None))
    assert (info.value.message, info.value.exit_code) == (message, code)
    assert str(info.value) == message
    assert not (Path(spec.state_dir) / "execd.sock").exists()


def test_setup_failure_names_the_step(harness):
    spec = harness.spec(["true"], mounts=[Mount("/data", "bind", "/nonexistent/source")])
    with pytest.raises(ExecError) as info:
        run(harness.driver.start(spec, lambda s, d: None))
    assert info.value.exit_code == 125
    assert info.value.message == "mount /data: stat /nonexistent/source: No such file or directory"


# ---- what the process sees --------------------------------------------------------------------------

def test_hostname_cwd_env_and_user(harness):
    spec = harness.spec(["sh", "-c", "hostname; pwd; echo $FOO; echo $HOME; id -u; id -g; id -G"],
                        hostname="boxy", cwd="/work/dir", env=["PATH=/bin", "FOO=bar baz"],
                        uid=65534, gid=65534, groups=[65534, 5])
    status, out = run(run_container(harness, spec))
    assert status.exit_code == 0, out
    assert out[1].decode().splitlines() == ["boxy", "/work/dir", "bar baz", "/nonexistent", "65534", "65534",
                                            "65534 5"]
    assert os.path.isdir(os.path.join(harness.rootfs, "work/dir"))


def test_command_found_in_default_path_without_path_env(harness):
    status, out = run(run_container(harness, harness.spec(["sh", "-c", "echo $HOME"], env=[])))
    assert (status.exit_code, out[1]) == (0, b"/root\n")


def test_pid_1_and_private_proc(harness):
    spec = harness.spec(["sh", "-c", "echo $$; echo /proc/[0-9]*; cat /proc/1/cmdline; ls /dev/pts /dev/shm /sys"])
    status, out = run(run_container(harness, spec))
    assert status.exit_code == 0, out
    lines = out[1].decode().splitlines()
    assert lines[0] == "1"
    pids = {int(p.rsplit("/", 1)[1]) for p in lines[1].split()}
    assert 1 in pids and max(pids) < 10
    assert lines[2].startswith("sh\0-c")


def test_dev_nodes_and_mounts(harness):
    script = ("echo x > /dev/null && head=$(dd if=/dev/zero bs=4 count=1 2>/dev/null | cat) && "
              "ls -l /dev/ptmx /dev/fd && cat /proc/mounts")
    hosts = harness.top / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    spec = harness.spec(["sh", "-c", script], mounts=[Mount("/etc/hosts", "bind", str(hosts), ["rbind", "ro"])])
    status, out = run(run_container(harness, spec))
    assert status.exit_code == 0, out
    text = out[1].decode()
    assert "/dev/ptmx -> pts/ptmx" in text and "/dev/fd -> /proc/self/fd" in text
    mounts = {line.split()[1]: line.split() for line in text.splitlines() if line.count(" ") >= 5}
    assert mounts["/proc"][2] == "proc"
    assert mounts["/dev"][2] == "tmpfs"
    assert mounts["/dev/pts"][2] == "devpts"
    assert mounts["/dev/shm"][2] == "tmpfs"
    assert mounts["/dev/mqueue"][2] == "mqueue"
    assert mounts["/sys"][3].startswith("ro,")
    assert mounts["/etc/hosts"][3].startswith("ro,")


def test_stdin_is_echoed_through_cat(harness):
    async def main():
        chunks: list[bytes] = []
        ex = await harness.driver.start(harness.spec(["cat"], stdin=True), lambda s, d: chunks.append(d))
        ex.write_stdin(b"ping\n")
        ex.write_stdin(b"pong\n")
        ex.close_stdin()
        status = await ex.exit
        return status, b"".join(chunks)

    status, data = run(main(), "uvloop")
    assert (status.exit_code, data) == (0, b"ping\npong\n")


def test_every_attached_daemon_gets_the_output(harness):
    spec = harness.spec(["cat"], stdin=True)

    async def main():
        first: list[bytes] = []
        second: list[bytes] = []
        ex = await harness.driver.start(spec, lambda s, d: first.append(d))
        other = await harness.driver.reattach(spec.state_dir, lambda s, d: second.append(d))
        assert isinstance(other, Execd) and other.pid == ex.pid
        other.write_stdin(b"both\n")
        other.close_stdin()
        return await ex.exit, await other.exit, b"".join(first), b"".join(second)

    status1, status2, first, second = run(main())
    assert status1 == status2 and status1.exit_code == 0
    assert first == second == b"both\n"


def test_attach_sink_gets_docker_frames_while_the_muted_daemon_gets_none(harness):
    """An attach connection handed to execd with the spec gets Docker's multiplexed frames from execd itself
    and EOF at the exit; the daemon, muted by the spec (output 0), gets no OUTPUT until it asks again."""
    ours, theirs = socket.socketpair()
    flags = execdriver.ATTACH_STDOUT | execdriver.ATTACH_STDERR
    spec = harness.spec(["sh", "-c", "read x; echo out-$x; echo err-$x >&2; read y; echo late-$y"], stdin=True,
                        output=False, attach=[(theirs.fileno(), flags)])

    def log_has(text: str) -> bool:
        return Path(spec.log_path).exists() and text in Path(spec.log_path).read_text()

    async def main():
        seen: list[bytes] = []
        ex = await harness.driver.start(spec, lambda s, d: seen.append(d))
        theirs.close()                                       # execd has its own copy now
        ex.write_stdin(b"1\n")
        while not log_has("err-1"):
            await asyncio.sleep(0.01)
        muted = list(seen)
        ex.want_output(True)
        ex.write_stdin(b"2\n")
        ex.close_stdin()
        return await ex.exit, muted, b"".join(seen)

    status, muted, later = run(main())
    stream = b""
    while chunk := ours.recv(65536):                         # EOF: execd closed the sink at the exit
        stream += chunk
    ours.close()
    assert status.exit_code == 0 and muted == [] and later == b"late-2\n"
    frames = []
    while stream:
        kind, size = stream[0], struct.unpack(">I", stream[4:8])[0]
        frames.append((kind, stream[8:8 + size]))
        stream = stream[8 + size:]
    assert frames == [(1, b"out-1\n"), (2, b"err-1\n"), (1, b"late-2\n")]


def test_spec_with_attach_records_but_no_descriptors_is_refused(harness):
    spec = harness.spec(["true"], attach=[])
    end = execdriver.encode_frame(execdriver.SPEC_END)
    records = execdriver.encode_spec(spec).replace(end, execdriver._kv("attach", "1") + end)
    frames = raw_execd(harness.driver.execd_path, records)
    assert "1 attach records but 0 descriptors" in execdriver.decode_error(frames[0][1]).message


def test_without_stdin_the_process_reads_eof(harness):
    status, out = run(run_container(harness, harness.spec(["cat"])))
    assert (status.exit_code, out[1]) == (0, b"")


# ---- detach, reattach, survival ---------------------------------------------------------------------

def test_detach_then_reattach_to_running_container(harness):
    spec = harness.spec(["sleep", "100"])

    async def main():
        ex = await harness.driver.start(spec, lambda s, d: None)
        pid = ex.pid
        ex.detach()
        assert ex.exit.cancelled()
        again = await harness.driver.reattach(spec.state_dir, lambda s, d: None)
        assert isinstance(again, Execd) and again.pid == pid == int(Path(spec.state_dir, "pid").read_text())
        again.kill(signal.SIGKILL)
        return await again.exit

    status = run(main())
    assert (status.exit_code, status.signal) == (137, 9)


def test_exit_reports_255_when_execd_dies(harness):
    spec = harness.spec(["sleep", "100"])

    async def main():
        ex = await harness.driver.start(spec, lambda s, d: None)
        os.kill(ex.execd_pid, signal.SIGKILL)
        return await ex.exit, ex.pid

    status, pid = run(main())
    assert (status.exit_code, status.signal) == (255, None)
    assert process_alive(pid)   # the container is orphaned, not killed; the harness kills it


def test_output_while_detached_goes_to_log_and_reattach_after_exit(harness):
    spec = harness.spec(["sh", "-c", "sleep 0.3; echo late; exit 5"])

    async def main():
        ex = await harness.driver.start(spec, lambda s, d: None)
        ex.detach()
        assert wait_for(lambda: Path(spec.state_dir, "exit").exists())
        return await harness.driver.reattach(spec.state_dir, lambda s, d: None)

    status = run(main())
    assert isinstance(status, ExitStatus) and (status.exit_code, status.signal) == (5, None)
    assert [e["log"] for e in log_lines(spec)] == ["late\n"]
    assert not Path(spec.state_dir, "execd.sock").exists()


def test_reattach_with_nothing_there_returns_none(harness):
    empty = harness.top / "run" / "empty"
    empty.mkdir(parents=True)
    assert run(harness.driver.reattach(str(empty), lambda s, d: None)) is None
    assert run(harness.driver.reattach(str(harness.top / "missing"), lambda s, d: None)) is None


STARTER = """
import asyncio, json, sys
sys.path.insert(0, {repo!r})
from pyd.daemon.runtime.execdriver import ContainerSpec, ExecDriver, Process
async def main():
    spec = ContainerSpec(id="survivor", rootfs={rootfs!r}, process=Process(args=["sleep", "100"], env=[]),
                         hostname="survivor", state_dir={state!r}, log_path=None)
    ex = await ExecDriver({execd!r}, {top!r}).start(spec, lambda s, d: None)
    print(json.dumps({{"pid": ex.pid, "execd": ex.execd_pid}}), flush=True)
    await asyncio.sleep(100)
asyncio.run(main())
"""


def test_container_survives_the_killed_starter(harness, execd_path):
    state = harness.top / "run" / "survivor"
    harness.state_dirs.append(state)
    code = STARTER.format(repo=str(REPO), rootfs=harness.rootfs, state=str(state), execd=execd_path,
                          top=str(harness.top))
    starter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        info = json.loads(starter.stdout.readline())
    finally:
        starter.kill()
        starter.wait()
        starter.stdout.close()
    os.kill(info["pid"], 0)       # the container still runs
    os.kill(info["execd"], 0)     # and so does its execd

    async def main():
        ex = await harness.driver.reattach(str(state), lambda s, d: None)
        assert isinstance(ex, Execd) and (ex.pid, ex.execd_pid) == (info["pid"], info["execd"])
        ex.kill(signal.SIGKILL)
        return await ex.exit

    status = run(main())
    assert status.exit_code == 137
    assert run(harness.driver.reattach(str(state), lambda s, d: None)) == status


# ---- protocol checks --------------------------------------------------------------------------------

def raw_execd(execd_path: str, payload: bytes) -> list[tuple[int, bytes]]:
    """Send raw bytes to a fresh execd and collect what it answers until it hangs up."""
    ours, theirs = socket.socketpair()
    pid = os.posix_spawn(execd_path, [execd_path, "3"], {},
                         file_actions=[(os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)])
    theirs.close()
    try:
        ours.settimeout(TIMEOUT)
        try:
            ours.sendall(payload)
        except OSError:
            pass
        data = b""
        while chunk := ours.recv(65536):
            data += chunk
    finally:
        ours.close()
        os.waitpid(pid, 0)
    return execdriver.FrameParser().feed(data)


def test_oversized_record_is_rejected(execd_path):
    hello = execdriver.encode_frame(execdriver.HELLO, struct.pack(">I", 1))
    frames = raw_execd(execd_path, hello + struct.pack(">IHH", 1 << 30, execdriver.SPEC, 0))
    assert frames[0][0] == execdriver.ERROR
    err = execdriver.decode_error(frames[0][1])
    assert "too large" in err.message and err.exit_code == 125


def test_seccomp_profile_is_compiled_once_and_enforced(harness):
    """The driver has execd compile a profile once (`execd --seccomp-bpf`) and sends the filter with every
    start: the container is filtered (mkdir -> EPERM here) and the second start reuses the same bytes."""
    from pyd.daemon.runtime.execdriver import Security
    profile = [("seccomp_default", str(0x7FFF0000)), ("seccomp_arch", "x86_64"),
               ("seccomp_rule", f"{0x00050000 | 1} mkdir 0"), ("seccomp_rule", f"{0x00050000 | 1} mkdirat 0")]
    script = "mkdir /tmp/x 2>/dev/null; echo mkdir=$?"
    specs = [harness.spec(["sh", "-c", script], mounts=[Mount("/tmp", "tmpfs", "tmpfs")],
                          security=Security(seccomp=list(profile))) for _ in range(2)]
    for spec in specs:
        status, out = run(run_container(harness, spec))
        assert (status.exit_code, out[1]) == (0, b"mkdir=1\n")
    first, second = (spec.security.seccomp_bpf for spec in specs)
    assert first and len(first) % 8 == 0 and second is first     # one compile, 8-byte BPF instructions
    assert len(harness.driver._filters) == 1


def test_seccomp_compile_mode_rejects_a_spec_without_a_profile(execd_path):
    hello = execdriver.encode_frame(execdriver.HELLO, struct.pack(">I", execdriver.PROTOCOL_VERSION))
    r = subprocess.run([execd_path, "--seccomp-bpf"], input=hello + execdriver.encode_frame(execdriver.SPEC_END),
                       capture_output=True, timeout=TIMEOUT)
    assert (r.returncode, r.stdout) == (1, b"")
    assert b"no seccomp profile" in r.stderr


def test_unknown_key_and_wrong_version_are_rejected(execd_path):
    hello = execdriver.encode_frame(execdriver.HELLO, struct.pack(">I", 1))
    frames = raw_execd(execd_path, hello + execdriver._kv("seccomp", "x"))
    assert execdriver.decode_error(frames[0][1]).message == 'spec: unknown key "seccomp"'
    frames = raw_execd(execd_path, execdriver.encode_frame(execdriver.HELLO, struct.pack(">I", 99)))
    assert "protocol version 99 is not supported" in execdriver.decode_error(frames[0][1]).message


def test_joining_another_containers_namespaces(harness):
    """--network/--ipc/--pid container:X: the second container enters the first one's namespaces."""
    async def main():
        first = await harness.driver.start(harness.spec(["sleep", "100"]), lambda s, d: None)
        try:
            joins = {kind: f"/proc/{first.pid}/ns/{kind}" for kind in ("net", "ipc", "pid")}
            spec = harness.spec(["sh", "-c", "for n in net ipc; do readlink /proc/self/ns/$n; done; ps -o pid,args"])
            spec.namespaces = ["mnt", "uts"]
            spec.join_namespaces = joins
            status, out = await run_container(harness, spec)
            return status, out, [os.readlink(p) for p in joins.values()]
        finally:
            first.kill(signal.SIGKILL)
            await first.exit

    status, out, theirs = run(main())
    assert status.exit_code == 0, out
    lines = out[1].decode().splitlines()
    assert lines[:2] == theirs[:2]
    assert any(line.split()[1:] == ["sleep", "100"] for line in lines[3:])  # the first container's init


def test_invalid_join_is_rejected(harness):
    spec = harness.spec(["true"])
    spec.join_namespaces = {"mnt": "/proc/1/ns/mnt"}
    with pytest.raises(ExecError, match="invalid namespace join"):
        run(harness.driver.start(spec, lambda s, d: None))
