"""Processes and memory for the benchmark: find what an engine runs and sum its RSS. The clean-up kit
(processes, mounts, cgroups, network namespaces under a directory, by PID, never by name) is the tests'
tests/kit/hostkit.py, shared."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "kit"))
from hostkit import (  # noqa: E402,F401  (re-exported for the bench modules)
    SBIN_PATH, NetNamespace, _ancestors_of_self, _read, _readlink, _with_descendants,
    processes_under, remove_cgroups, remove_tree, wait_answering,
)


def rss_bytes(pid: int) -> int:
    m = re.search(r"^VmRSS:\s+(\d+) kB", _read(f"/proc/{pid}/status").decode(errors="replace"), re.M)
    return int(m.group(1)) * 1024 if m else 0


def pid_namespace(pid: int) -> str:
    return _readlink(f"/proc/{pid}/ns/pid")


def engine_rss(roots: list[str], extra: set[int] = frozenset()) -> tuple[int, list[int]]:
    """Sum of RSS of an engine's own processes: everything referring to `roots` (daemon, containerd,
    shims, execd, conmon) plus `extra` PIDs and their descendants, but only those in this PID namespace —
    container processes live in their own PID namespaces and are not the engine's cost."""
    host_ns = pid_namespace(os.getpid())
    pids = _with_descendants(set(extra) | processes_under(roots))
    pids = {p for p in pids if pid_namespace(p) == host_ns and p not in _ancestors_of_self()}
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
