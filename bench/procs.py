"""Processes, memory, mounts and network namespaces for the benchmark: find what an engine runs, sum its
RSS, and clean up everything under a directory (by PID, never by name)."""
from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import time

SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MNT_DETACH = 2


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def parent_of(pid: int) -> int:
    fields = _read(f"/proc/{pid}/stat").rsplit(")", 1)[-1].split()
    return int(fields[1]) if len(fields) > 1 else 0


def with_descendants(pids: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        children.setdefault(parent_of(pid), []).append(pid)
    found, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def references(pid: int, prefixes: list[str]) -> bool:
    """Does the process point into one of `prefixes`: binary, cwd, root, argv, env or an open file?"""
    def hit(text: str) -> bool:
        return any(p in text for p in prefixes)

    base = f"/proc/{pid}"
    if any(hit(_readlink(f"{base}/{link}")) for link in ("exe", "cwd", "root")):
        return True
    if hit(_read(f"{base}/cmdline")) or hit(_read(f"{base}/environ")):
        return True
    with contextlib.suppress(OSError):
        return any(hit(_readlink(f"{base}/fd/{fd}")) for fd in os.listdir(f"{base}/fd"))
    return False


def own_ancestors() -> set[int]:
    pids, pid = {0, 1}, os.getpid()
    while pid > 1:
        pids.add(pid)
        pid = parent_of(pid)
    return pids


def processes_under(prefixes: list[str]) -> set[int]:
    """Processes referring to `prefixes`, with their descendants; never this process or its ancestors."""
    spare = own_ancestors()
    return with_descendants({p for p in all_pids() if p not in spare and references(p, prefixes)}) - spare


def rss_bytes(pid: int) -> int:
    m = re.search(r"^VmRSS:\s+(\d+) kB", _read(f"/proc/{pid}/status"), re.M)
    return int(m.group(1)) * 1024 if m else 0


def pid_namespace(pid: int) -> str:
    return _readlink(f"/proc/{pid}/ns/pid")


def engine_rss(roots: list[str], extra: set[int] = frozenset()) -> tuple[int, list[int]]:
    """Sum of RSS of an engine's own processes: everything referring to `roots` (daemon, containerd,
    shims, execd, conmon) plus `extra` PIDs and their descendants, but only those in this PID namespace —
    container processes live in their own PID namespaces and are not the engine's cost."""
    host_ns = pid_namespace(os.getpid())
    pids = with_descendants(set(extra) | processes_under(roots))
    pids = {p for p in pids if pid_namespace(p) == host_ns and p not in own_ancestors()}
    return sum(rss_bytes(p) for p in pids), sorted(pids)


def kill_pid(proc: subprocess.Popen | None, timeout: float = 15) -> None:
    """SIGTERM a process we started, wait, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kill_processes_under(prefixes: list[str]) -> list[int]:
    killed: list[int] = []
    for _ in range(5):                       # a dying helper may fork meanwhile: look again
        targets = processes_under(prefixes)
        if not targets:
            break
        for pid in targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed.extend(targets)
        time.sleep(0.1)
    return killed


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(prefix: str) -> list[str]:
    points = []
    for line in _read("/proc/self/mountinfo").splitlines():
        point = _unescape(line.split()[4])
        if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
            points.append(point)
    return sorted(reversed(points), key=lambda p: p.count("/"), reverse=True)


def unmount_under(prefix: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(10):                      # stacked mounts show up again after the top one goes
        points = mounts_under(prefix)
        if not points:
            return
        for point in points:
            libc.umount2(point.encode(), MNT_DETACH)


def remove_tree(path: str) -> None:
    """Kill what lives in `path`, unmount what is mounted there, delete it."""
    if not os.path.exists(path):
        return
    kill_processes_under([path])
    unmount_under(path)
    shutil.rmtree(path, ignore_errors=True)


def remove_cgroups(name: str) -> None:
    """rmdir cgroup directories called `name` (a parent an engine was told to use) in every hierarchy,
    deepest first; only empty ones go, so nothing alive is touched."""
    for hierarchy in _read("/proc/self/mountinfo").splitlines():
        fields = hierarchy.split()
        if " - cgroup" not in hierarchy:
            continue
        top = os.path.join(_unescape(fields[4]), name)
        if not os.path.isdir(top):
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: w[0].count("/"), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


class NetNamespace:
    """A network namespace with lo up, held by a sleeping process we started (so several processes can
    join it with nsenter, and it goes away with the holder)."""

    def __init__(self) -> None:
        script = "ip link set lo up && echo ready && exec sleep infinity"
        self.holder = subprocess.Popen(["unshare", "--net", "--", "sh", "-c", script], stdout=subprocess.PIPE,
                                       stdin=subprocess.DEVNULL, env={**os.environ, "PATH": SBIN_PATH})
        ready = self.holder.stdout.readline() if self.holder.stdout else b""
        if ready.strip() != b"ready":
            self.close()
            raise RuntimeError("could not make a network namespace (unshare --net, ip link set lo up)")
        self.path = f"/proc/{self.holder.pid}/ns/net"

    def enter(self) -> list[str]:
        return ["nsenter", f"--net={self.path}", "--"]

    def close(self) -> None:
        kill_pid(self.holder, 5)
        if self.holder.stdout:
            self.holder.stdout.close()
