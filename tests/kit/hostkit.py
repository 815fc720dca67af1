"""The host clean-up kit shared by the tests and the benchmarks (no pytest here): find and kill the
processes that live under a folder, unmount what is mounted under it, remove cgroups, and hold a network
namespace of our own. Only processes that reference our own folders are ever touched."""
from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import warnings
from pathlib import Path
from typing import Any

CLONE_NEWNET = 0x40000000
MNT_DETACH = 2
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _parent_of(pid: int) -> int:
    stat = _read(f"/proc/{pid}/stat").decode(errors="replace")
    fields = stat.rsplit(")", 1)[-1].split()      # comm may hold spaces and parentheses
    return int(fields[1]) if len(fields) > 1 else 0


def _ancestors_of_self() -> set[int]:
    pids, pid = {0}, os.getpid()
    while pid > 1:
        pids.add(pid)
        pid = _parent_of(pid)
    return pids | {1}


def _references(pid: int, prefixes: list[str]) -> bool:
    """Does the process point into one of `prefixes`: its binary, cwd, root, an open file, argv or env?"""
    def hit(text: str) -> bool:
        return any(p in text for p in prefixes)

    base = f"/proc/{pid}"
    if any(hit(_readlink(f"{base}/{link}")) for link in ("exe", "cwd", "root")):
        return True
    if hit(_read(f"{base}/cmdline").decode(errors="replace")) or hit(_read(f"{base}/environ").decode(errors="replace")):
        return True
    with contextlib.suppress(OSError):
        return any(hit(_readlink(f"{base}/fd/{fd}")) for fd in os.listdir(f"{base}/fd"))
    return False


def _with_descendants(pids: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        children.setdefault(_parent_of(pid), []).append(pid)
    found, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def processes_under(prefixes: list[str]) -> set[int]:
    """Processes that refer to a path under `prefixes` (binary, cwd, root, argv, environment or an open
    file), with their descendants (containers in their own PID namespaces); never this process or its
    ancestors."""
    spare = _ancestors_of_self()
    return _with_descendants({pid for pid in _all_pids() if pid not in spare and _references(pid, prefixes)}) - spare


def kill_processes_under(prefixes: list[str]) -> list[int]:
    """SIGKILL every process of processes_under(prefixes). Returns the PIDs killed."""
    killed: list[int] = []
    for _ in range(5):                            # a dying execd may have forked meanwhile: look again
        targets = processes_under(prefixes)
        if not targets:
            break
        for pid in targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed.extend(targets)
        time.sleep(0.05)
    return killed


def _unescape_mountinfo(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(prefix: str) -> list[str]:
    """Mount points at or below `prefix` in this mount namespace, deepest (and latest) first."""
    points = []
    for line in _read("/proc/self/mountinfo").decode(errors="replace").splitlines():
        point = _unescape_mountinfo(line.split()[4])
        if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
            points.append(point)
    return sorted(reversed(points), key=lambda p: p.count("/"), reverse=True)


def unmount_under(prefix: str) -> None:
    libc = _libc()
    for _ in range(10):                           # stacked mounts show up again after the top one goes
        points = mounts_under(prefix)
        if not points:
            return
        for point in points:
            libc.umount2(point.encode(), MNT_DETACH)


def remove_tree(path: Path | str) -> None:
    """Kill what lives in `path`, unmount what is mounted there, delete it."""
    path = Path(path)
    if not path.exists():
        return
    kill_processes_under([str(path)])
    unmount_under(str(path))
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        warnings.warn(f"could not remove {path}: {os.listdir(path)}")


def remove_cgroups(name: str, root: str = "/sys/fs/cgroup") -> None:
    """Remove the cgroup `name` in every hierarchy (v1 controllers and v2), children first; any process
    still inside is killed first (the daemon under test is gone by now)."""
    tops = [os.path.join(root, name)] + [os.path.join(root, c, name) for c in os.listdir(root)]
    for top in tops:
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            for pid in _read(os.path.join(dirpath, "cgroup.procs")).split():
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)
            for _ in range(50):
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)  # killed tasks leave the cgroup asynchronously


def socket_in_netns(netns: str, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket that lives in the network namespace `netns` (e.g. /proc/PID/ns/net). setns() changes only
    the calling thread, so a short-lived thread makes it; the socket keeps its namespace afterwards."""
    made: dict[str, Any] = {}

    def make() -> None:
        fd = os.open(netns, os.O_RDONLY)
        try:
            libc = _libc()
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns {netns}: {os.strerror(err)}")
            made["sock"] = socket.socket(family, type)
        except BaseException as exc:  # handed to the caller's thread
            made["error"] = exc
        finally:
            os.close(fd)

    thread = threading.Thread(target=make)
    thread.start()
    thread.join()
    if "error" in made:
        raise made["error"]
    return made["sock"]


def _http_status(sock: socket.socket, path: str, host: str = "localhost") -> int:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    head = sock.recv(4096).split(b"\r\n", 1)[0].split()
    return int(head[1]) if len(head) > 1 and head[1].isdigit() else 0


def answers_ping(sock_path: str | Path) -> bool:
    """True when a daemon answers GET /_ping with 200 on the unix socket at sock_path."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(sock_path))
            return _http_status(s, "/_ping") == 200
    except OSError:
        return False


def wait_answering(proc: subprocess.Popen, sock_path: str | Path, timeout: float, step: float = 0.05) -> bool:
    """Poll until the daemon we started answers /_ping on sock_path; False when it exits first or
    `timeout` s pass (proc.poll() tells which)."""
    deadline = time.monotonic() + timeout
    while not answers_ping(sock_path):
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def terminate(proc: subprocess.Popen, wait: float = 30) -> int:
    """SIGTERM the process we started, SIGKILL it after `wait` s; its exit status."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


class NetNamespace:
    """A network namespace with lo up, held open by a sleeping process so that a daemon can be stopped and
    started again in the same one (containers and bridges survive the daemon there)."""

    def __init__(self) -> None:
        script = 'ip link set lo up && echo ready && exec sleep infinity'
        self.holder = subprocess.Popen(["unshare", "--net", "--", "sh", "-c", script], stdout=subprocess.PIPE,
                                       stdin=subprocess.DEVNULL, env={**os.environ, "PATH": SBIN_PATH})
        ready = self.holder.stdout.readline() if self.holder.stdout else b""
        if ready.strip() != b"ready":
            self.close()
            raise RuntimeError("could not make a network namespace (unshare --net, ip link set lo up)")
        self.path = f"/proc/{self.holder.pid}/ns/net"

    def enter_argv(self) -> list[str]:
        """Prefix for a command to run inside (nsenter execs it: same PID, no fork)."""
        return ["nsenter", f"--net={self.path}", "--"]

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
        return socket_in_netns(self.path, family, type)

    def free_port(self) -> int:
        with self.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def close(self) -> None:
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait()
        if self.holder.stdout:
            self.holder.stdout.close()
