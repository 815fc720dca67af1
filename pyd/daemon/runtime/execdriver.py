"""The Python side of execd, the per-container helper (sources in execd/).

The daemon spawns ``execd FD`` with FD one end of a unix stream socketpair; execd detaches (own session,
second fork, child subreaper), so the container outlives the daemon. A restarted daemon reattaches through
``<state_dir>/execd.sock``. The frames, spec records and state files are described in
docs/execd-protocol.md; the constants below are execd/protocol.h's, which tests/unit/test_execd_protocol.py
compares with them.
"""
from __future__ import annotations

import array
import asyncio
import json
import os
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable

PROTOCOL_VERSION = 1
MAX_RECORD = 1 << 20
HEADER = struct.Struct(">IHH")
CONTROL_SOCKET = "execd.sock"
EXIT_FILE = "exit"          # JSON exit status, written by execd before it says EXIT
RECV_SIZE = 256 * 1024
MAX_FILTERS = 32              # compiled seccomp profiles kept (one per distinct profile)

HELLO, SPEC, SPEC_END, STARTED, ERROR, OUTPUT, STDIN, STDIN_CLOSE, KILL, RESIZE, EXIT, OUTPUT_MODE = range(1, 13)
ATTACH_STDOUT, ATTACH_STDERR, ATTACH_RAW = 1, 2, 4      # flags of an attach sink (spec key attach)
ATTACH_WAIT = 8        # a wait response execd ends at the exit when the daemon that started it is gone

OutputCallback = Callable[[int, bytes], None]


@dataclass
class Mount:
    destination: str
    type: str = "bind"
    source: str = ""
    options: list[str] = field(default_factory=list)


@dataclass
class Process:
    args: list[str]
    env: list[str]
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    groups: list[int] = field(default_factory=list)
    tty: bool = False
    stdin: bool = False
    console_size: tuple[int, int] | None = None   # (height, width) of the pty at start


@dataclass
class ContainerSpec:
    id: str
    rootfs: str
    process: Process
    hostname: str
    state_dir: str
    log_path: str | None
    log_max_size: int = 0       # json-file rotation (bytes; 0: never rotate) and files kept
    log_max_file: int = 1
    mounts: list[Mount] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=lambda: ["mnt", "pid", "uts", "ipc", "net"])
    readonly_rootfs: bool = False
    # existing namespaces to enter instead of new ones: {"net": "/run/pyd/netns/ID", "pid": "/proc/N/ns/pid"}
    join_namespaces: dict[str, str] = field(default_factory=dict)
    # exec mode (docker exec): run in the namespaces and cgroups of this container init; nothing is created
    exec_pid: int = 0
    join_cgroups: list[str] = field(default_factory=list)
    security: "Security | None" = None   # None: execd leaves caps, seccomp and paths as they are
    output: bool = True         # False: no OUTPUT frames to the daemon until Execd.want_output(True)
    attach: list[tuple[int, int]] = field(default_factory=list)   # (fd, ATTACH_* flags): sinks execd writes


@dataclass
class Security:
    """What pyd/security.py decided for the process; each field maps to execd spec keys."""
    caps: str | None = None                 # "bounding effective permitted inheritable ambient", hex
    no_new_privileges: bool = False
    privileged: bool = False
    masked_paths: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)
    seccomp: list[tuple[str, str]] = field(default_factory=list)   # (seccomp_default|seccomp_arch|seccomp_rule, value)
    seccomp_bpf: bytes | None = None        # the same profile compiled by `execd --seccomp-bpf`: sent instead
    rlimits: list[str] = field(default_factory=list)     # "RESOURCE SOFT HARD"
    sysctls: list[str] = field(default_factory=list)     # "key=value"
    devices: list[str] = field(default_factory=list)     # "c|b MAJOR MINOR MODE(octal) PATH"
    shm_size: int = 0                                    # bytes of /dev/shm, 0: execd's default
    oom_score_adj: int | None = None                     # None: inherited from execd


@dataclass
class ExitStatus:
    exit_code: int
    signal: int | None
    finished_at: float
    oom_killed: bool = False


class ExecError(Exception):
    """The container could not be started; message and exit_code are Docker's."""

    def __init__(self, message: str, exit_code: int = 125, step: str = "", errno: int = 0):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.step = step
        self.errno = errno


class ProtocolError(Exception):
    pass


# ---- frames (sans-IO) ----------------------------------------------------------------------------

def encode_frame(frame_type: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_RECORD:
        raise ProtocolError(f"frame of {len(payload)} bytes is too large")
    return HEADER.pack(len(payload), frame_type, 0) + payload


class FrameParser:
    """Bytes in, (type, payload) frames out."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        # Frames are cut straight out of `data` when nothing is pending (bulk output: one copy per payload).
        buf = self._buf
        if buf:
            buf += data
            src: bytes | bytearray = buf
        else:
            src = data
        frames = []
        pos = 0
        with memoryview(src) as view:
            while len(src) - pos >= HEADER.size:
                length, frame_type, reserved = HEADER.unpack_from(src, pos)
                if length > MAX_RECORD or reserved:
                    raise ProtocolError(f"bad frame header (length {length}, reserved {reserved})")
                end = pos + HEADER.size + length
                if len(src) < end:
                    break
                frames.append((frame_type, view[pos + HEADER.size:end].tobytes()))
                pos = end
        if src is buf:
            del buf[:pos]
        elif pos < len(src):
            buf += src[pos:]
        return frames


def _kv(key: str, value: str | bytes) -> bytes:
    raw = value if isinstance(value, bytes) else os.fsencode(value)
    return encode_frame(SPEC, key.encode() + b"\0" + raw)


def encode_spec(spec: ContainerSpec) -> bytes:
    """HELLO, the SPEC records and SPEC_END as one byte string."""
    proc = spec.process
    out = [encode_frame(HELLO, struct.pack(">I", PROTOCOL_VERSION)),
           _kv("id", spec.id), _kv("rootfs", spec.rootfs), _kv("hostname", spec.hostname),
           _kv("state_dir", spec.state_dir), _kv("cwd", proc.cwd or "/"),
           _kv("uid", str(proc.uid)), _kv("gid", str(proc.gid)),
           _kv("tty", "1" if proc.tty else "0"), _kv("stdin", "1" if proc.stdin else "0"),
           _kv("readonly_rootfs", "1" if spec.readonly_rootfs else "0")]
    if spec.log_path is not None:
        out.append(_kv("log_path", spec.log_path))
        if spec.log_max_size:
            out += [_kv("log_max_size", str(spec.log_max_size)), _kv("log_max_file", str(spec.log_max_file))]
    out += [_kv("group", str(g)) for g in proc.groups]
    out += [_kv("arg", a) for a in proc.args]
    out += [_kv("env", e) for e in proc.env]
    out += [_kv("namespace", ns) for ns in spec.namespaces]
    out += [_kv("join", f"{kind}:{path}") for kind, path in spec.join_namespaces.items()]
    if proc.tty and proc.console_size and all(proc.console_size):
        out += [_kv("console_height", str(proc.console_size[0])), _kv("console_width", str(proc.console_size[1]))]
    if spec.exec_pid:
        out.append(_kv("exec_pid", str(spec.exec_pid)))
    if not spec.output:
        out.append(_kv("output", "0"))
    out += [_kv("attach", str(flags)) for _, flags in spec.attach]
    out += [_kv("join_cgroup", path) for path in spec.join_cgroups]
    if spec.security is not None:
        out += encode_security(spec.security)
    for m in spec.mounts:
        fields = [m.destination, m.type, m.source, ",".join(m.options)]
        out.append(_kv("mount", b"\0".join(os.fsencode(f) for f in fields)))
    out.append(encode_frame(SPEC_END))
    return b"".join(out)


def encode_security(sec: Security) -> list[bytes]:
    out = [_kv("no_new_privs", "1" if sec.no_new_privileges else "0"),
           _kv("privileged", "1" if sec.privileged else "0")]
    if sec.caps is not None:
        out.append(_kv("caps", sec.caps))
    out += [_kv("masked_path", p) for p in sec.masked_paths]
    out += [_kv("readonly_path", p) for p in sec.readonly_paths]
    if sec.seccomp_bpf:
        out.append(_kv("seccomp_bpf", sec.seccomp_bpf))
    else:
        out += [_kv(key, value) for key, value in sec.seccomp]
    out += [_kv("rlimit", r) for r in sec.rlimits]
    out += [_kv("sysctl", kv) for kv in sec.sysctls]
    out += [_kv("device", d) for d in sec.devices]
    if sec.shm_size:
        out.append(_kv("shm_size", str(sec.shm_size)))
    if sec.oom_score_adj is not None:
        out.append(_kv("oom_score_adj", str(sec.oom_score_adj)))
    return out


def decode_error(payload: bytes) -> ExecError:
    if len(payload) < 8:
        return ExecError("execd sent a malformed error", 125)
    errno, exit_code = struct.unpack_from(">iI", payload)
    step, _, message = payload[8:].partition(b"\0")
    return ExecError(message.decode(errors="replace"), exit_code, step.decode(errors="replace"), errno)


def decode_exit(payload: bytes) -> ExitStatus:
    code, sig, ns = struct.unpack(">iiQ", payload)
    return ExitStatus(exit_code=code, signal=sig or None, finished_at=ns / 1e9)


def read_exit_status(state_dir: str) -> ExitStatus | None:
    """The status execd recorded when the container's init exited, or None."""
    try:
        with open(os.path.join(state_dir, EXIT_FILE), "rb") as f:
            data = json.loads(f.read())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return ExitStatus(exit_code=data["exit_code"], signal=data.get("signal"),
                      finished_at=data["finished_at_ns"] / 1e9, oom_killed=bool(data.get("oom_killed")))


def lost_status() -> ExitStatus:
    """What `exit` says when execd vanished without recording a status: Docker's 255 for a lost container."""
    return ExitStatus(exit_code=255, signal=None, finished_at=time.time())


# ---- a live execd ----------------------------------------------------------------------------------

class Execd:
    """Handle on one execd: its container's output arrives through on_output, its end through `exit`.

    `exit` resolves with the recorded ExitStatus; if execd vanished without recording one (killed,
    protocol error), with exit code 255. detach() cancels it.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, parser: FrameParser,
                 pending: list[tuple[int, bytes]], pid: int, execd_pid: int, state_dir: str,
                 on_output: OutputCallback):
        self.pid = pid
        self.execd_pid = execd_pid
        self.state_dir = state_dir
        self.exit: asyncio.Future[ExitStatus] = loop.create_future()
        self._loop = loop
        self._sock: socket.socket | None = sock
        self._parser = parser
        self._on_output = on_output
        self._outbuf = bytearray()
        self._paused = False
        self.output_wanted = True       # what this connection last asked execd for (OUTPUT_MODE)
        # frames that came with STARTED are handled first, then the socket is watched
        loop.call_soon(self._begin, pending)

    # -- daemon -> execd
    def write_stdin(self, data: bytes) -> None:
        for i in range(0, len(data), MAX_RECORD):
            self._send(encode_frame(STDIN, data[i:i + MAX_RECORD]))

    def close_stdin(self) -> None:
        self._send(encode_frame(STDIN_CLOSE))

    def kill(self, signal: int) -> None:
        self._send(encode_frame(KILL, struct.pack(">I", signal)))

    def want_output(self, wanted: bool) -> None:
        """Ask for OUTPUT frames or stop them (nothing reads them: everything is in the json log already)."""
        if wanted != self.output_wanted:
            self.output_wanted = wanted
            self._send(encode_frame(OUTPUT_MODE, b"\1" if wanted else b"\0"))

    def resize(self, height: int, width: int) -> None:
        self._send(encode_frame(RESIZE, struct.pack(">HH", height, width)))

    def detach(self) -> None:
        """Drop the connection; execd and the container go on. `exit` is cancelled."""
        self._close()
        if not self.exit.done():
            self.exit.cancel()

    # Extension: flow control for attach. While paused execd's socket fills up, and execd then stops
    # reading the container's pipes (the container blocks on write; nothing is lost).
    def pause_output(self) -> None:
        if self._sock is not None and not self._paused:
            self._loop.remove_reader(self._sock.fileno())
        self._paused = True

    def resume_output(self) -> None:
        if self._sock is not None and self._paused:
            self._loop.add_reader(self._sock.fileno(), self._on_readable)
        self._paused = False

    # -- internals
    def _begin(self, pending: list[tuple[int, bytes]]) -> None:
        if self._sock is None:
            return
        self._handle(pending)
        if self._sock is not None and not self._paused:
            self._loop.add_reader(self._sock.fileno(), self._on_readable)

    def _send(self, frame: bytes) -> None:
        if self._sock is None:
            return   # detached or execd gone: the container's fate is reported through `exit`
        if not self._outbuf:
            try:
                sent = self._sock.send(frame)
            except BlockingIOError:
                sent = 0
            except OSError:
                return   # execd is going away; its EOF arrives through the reader
            frame = frame[sent:]
            if not frame:
                return
            self._loop.add_writer(self._sock.fileno(), self._on_writable)
        self._outbuf += frame

    def _on_writable(self) -> None:
        if self._sock is None:
            return
        try:
            sent = self._sock.send(self._outbuf)
        except BlockingIOError:
            return
        except OSError:
            sent = len(self._outbuf)
        del self._outbuf[:sent]
        if not self._outbuf:
            self._loop.remove_writer(self._sock.fileno())

    def _on_readable(self) -> None:
        if self._sock is None:
            return
        try:
            data = self._sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._on_eof()
            return
        try:
            frames = self._parser.feed(data)
        except ProtocolError:
            self._finish(read_exit_status(self.state_dir) or lost_status())
            return
        self._handle(frames)

    def _handle(self, frames: list[tuple[int, bytes]]) -> None:
        for frame_type, payload in frames:
            if frame_type == OUTPUT and payload:
                self._on_output(payload[0], payload[1:])
            elif frame_type == EXIT:
                self._finish(decode_exit(payload))
                return

    def _on_eof(self) -> None:
        # execd records the exit file before it closes; without one it died abnormally (killed, OOM)
        self._finish(read_exit_status(self.state_dir) or lost_status())

    def _finish(self, status: ExitStatus) -> None:
        if not self.exit.done():
            self.exit.set_result(status)
        self._close()

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self._loop.remove_reader(sock.fileno())
        if self._outbuf:
            self._loop.remove_writer(sock.fileno())
        sock.close()


# ---- the driver ------------------------------------------------------------------------------------

async def _await_started(loop: asyncio.AbstractEventLoop, sock: socket.socket,
                         parser: FrameParser) -> tuple[int, int, list[tuple[int, bytes]]]:
    """Read until STARTED (-> pids and frames after it) or ERROR (-> ExecError raised)."""
    while True:
        try:
            data = await loop.sock_recv(sock, RECV_SIZE)
        except ConnectionError:
            data = b""
        if not data:
            raise ExecError("execd exited before starting the container", 125, "execd")
        frames = parser.feed(data)
        for i, (frame_type, payload) in enumerate(frames):
            if frame_type == ERROR:
                raise decode_error(payload)
            if frame_type == STARTED:
                pid, execd_pid = struct.unpack(">II", payload)
                return pid, execd_pid, frames[i + 1:]


def _reap(pid: int) -> None:
    # execd's first process exits right after its fork, before it sends anything: this never waits long
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


async def _connect(loop: asyncio.AbstractEventLoop, sock: socket.socket, state_dir: str) -> None:
    path = os.path.join(state_dir, CONTROL_SOCKET)
    if len(os.fsencode(path)) < 100:
        await loop.sock_connect(sock, path)
        return
    # sun_path holds 108 bytes; deep state dirs are reached through a directory fd
    dirfd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY)
    try:
        await loop.sock_connect(sock, f"/proc/self/fd/{dirfd}/{CONTROL_SOCKET}")
    finally:
        os.close(dirfd)


class ExecDriver:
    """Spawns execd for containers and reattaches to the ones that survived a daemon restart."""

    def __init__(self, execd_path: str, exec_root: str):
        self.execd_path = execd_path
        self.exec_root = exec_root
        self._filters: dict[tuple, bytes | None] = {}    # seccomp records -> compiled filter (None: failed)

    async def _compile_seccomp(self, sec: Security) -> None:
        """Give sec the compiled form of its seccomp profile: libseccomp takes ~10 ms to compile Docker's
        profile, so execd compiles each distinct profile once and the filter is reused by every start.
        A profile that fails to compile goes as rules, so that execd reports the error at start."""
        key = tuple(sec.seccomp)
        if key not in self._filters:
            records = b"".join([encode_frame(HELLO, struct.pack(">I", PROTOCOL_VERSION)),
                                *(_kv(k, v) for k, v in sec.seccomp), encode_frame(SPEC_END)])
            proc = await asyncio.to_thread(subprocess.run, [self.execd_path, "--seccomp-bpf"], input=records,
                                           capture_output=True, timeout=30)
            if len(self._filters) >= MAX_FILTERS:
                self._filters.pop(next(iter(self._filters)))
            self._filters[key] = proc.stdout if proc.returncode == 0 and proc.stdout else None
        sec.seccomp_bpf = self._filters[key]

    def _spawn(self, theirs: socket.socket) -> int:
        fd = theirs.fileno()
        target = 3 if fd != 3 else 4
        return os.posix_spawn(self.execd_path, [self.execd_path, str(target)], {},
                              file_actions=[(os.POSIX_SPAWN_DUP2, fd, target)], setsid=True)

    async def start(self, spec: ContainerSpec, on_output: OutputCallback) -> Execd:
        """Start the container; returns once its process is exec'd, or raises ExecError."""
        loop = asyncio.get_running_loop()
        if spec.security is not None and spec.security.seccomp and spec.security.seccomp_bpf is None:
            await self._compile_seccomp(spec.security)
        try:
            records = encode_spec(spec)
        except ProtocolError as exc:
            raise ExecError(f"container spec: {exc}", 125, "spec") from None
        os.makedirs(spec.state_dir, exist_ok=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = self._spawn(theirs)
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        parser = FrameParser()
        try:
            if spec.attach:   # the sinks travel with HELLO (12 bytes: a blocking send returns at once)
                fds = array.array("i", [fd for fd, _ in spec.attach])
                hello = HEADER.size + 4
                ours.sendmsg([records[:hello]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
                records = records[hello:]
            ours.setblocking(False)
            try:
                await loop.sock_sendall(ours, records)
            except (BrokenPipeError, ConnectionResetError):
                pass   # execd rejected the spec early; its ERROR frame says why
            init_pid, execd_pid, pending = await _await_started(loop, ours, parser)
        except BaseException:
            ours.close()
            raise
        finally:
            _reap(pid)
        execd = Execd(loop, ours, parser, pending, init_pid, execd_pid, spec.state_dir, on_output)
        execd.output_wanted = spec.output
        return execd

    async def exec(self, spec: ContainerSpec, on_output: OutputCallback) -> Execd:
        """Start a process in a running container (spec.exec_pid: its init); same contract as start()."""
        if not spec.exec_pid:
            raise ExecError("exec: no container process to join", 125, "spec")
        return await self.start(spec, on_output)

    async def reattach(self, state_dir: str, on_output: OutputCallback) -> Execd | ExitStatus | None:
        """A live execd -> Execd; one that finished -> its ExitStatus; nothing there -> None."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        parser = FrameParser()
        try:
            await _connect(loop, sock, state_dir)
            await loop.sock_sendall(sock, encode_frame(HELLO, struct.pack(">I", PROTOCOL_VERSION)))
            init_pid, execd_pid, pending = await _await_started(loop, sock, parser)
        except (OSError, ExecError):
            # no listener (gone, or finishing): whatever it recorded is the answer
            sock.close()
            return read_exit_status(state_dir)
        return Execd(loop, sock, parser, pending, init_pid, execd_pid, state_dir, on_output)
