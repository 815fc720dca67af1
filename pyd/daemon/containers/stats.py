"""docker stats and docker top: a container's resource counters in Docker's StatsJSON, and the host's
`ps` output restricted to the container's processes.

Counters come from the container's cgroup (v1: memory, cpuacct, cpu, pids, blkio; v2: the unified
files) and from /proc/<init pid>/net/dev, which shows the container's network namespace. One sample
is what dockerd's collector publishes each second; the precpu pair is filled in by the caller.
"""
from __future__ import annotations

import os
import re
import subprocess
from typing import Any

from pyd.daemon.cgroups.base import read_file
from pyd.formats import rfc3339
from pyd.formats.rfc3339 import ZERO_TIME
from pyd.daemon.errors import BadParameter, Conflict, ServerError

NANOS_PER_TICK = 1_000_000_000 // (os.sysconf("SC_CLK_TCK") or 100)


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _keyed(text: str) -> dict[str, int]:
    """ "key value" lines (memory.stat, cpu.stat, cpuacct.stat) -> {key: int}."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def empty_cpu() -> dict[str, Any]:
    """Go's zero CPUStats as dockerd encodes it (omitempty fields left out)."""
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def empty_stats(c: Any) -> dict[str, Any]:
    """What dockerd answers for a container that is not running."""
    return {"name": c.Name, "id": c.ID, "read": ZERO_TIME, "preread": ZERO_TIME,
            "pids_stats": {}, "blkio_stats": {"io_service_bytes_recursive": None, "io_serviced_recursive": None,
                                              "io_queue_recursive": None, "io_service_time_recursive": None,
                                              "io_wait_time_recursive": None, "io_merged_recursive": None,
                                              "io_time_recursive": None, "sectors_recursive": None},
            "num_procs": 0, "storage_stats": {}, "cpu_stats": empty_cpu(), "precpu_stats": empty_cpu(),
            "memory_stats": {}}


def _host_memory() -> int:
    for line in read_file("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _system_cpu_usage() -> int:
    """dockerd's getSystemCPUUsage: the host's busy+idle jiffies of /proc/stat in nanoseconds."""
    for line in read_file("/proc/stat").splitlines():
        if line.startswith("cpu "):
            return sum(int(v) for v in line.split()[1:8]) * NANOS_PER_TICK
    return 0


def _online_cpus() -> int:
    return os.sysconf("SC_NPROCESSORS_ONLN") or os.cpu_count() or 1


def _blkio_v1(path: str) -> list[dict[str, Any]] | None:
    rows = []
    for line in read_file(path).splitlines():
        fields = line.split()
        if len(fields) != 3 or ":" not in fields[0]:
            continue   # the trailing "Total N"
        major, _, minor = fields[0].partition(":")
        rows.append({"major": _int(major), "minor": _int(minor), "op": fields[1], "value": _int(fields[2])})
    return rows or None


def _networks(pid: int) -> dict[str, dict[str, int]]:
    """Per-interface counters of the netns of pid, loopback left out as dockerd does."""
    nets: dict[str, dict[str, int]] = {}
    for line in read_file(f"/proc/{pid}/net/dev").splitlines()[2:]:
        name, _, rest = line.partition(":")
        name, values = name.strip(), [_int(v) for v in rest.split()]
        if name == "lo" or len(values) < 16:
            continue
        nets[name] = {"rx_bytes": values[0], "rx_packets": values[1], "rx_errors": values[2],
                      "rx_dropped": values[3], "tx_bytes": values[8], "tx_packets": values[9],
                      "tx_errors": values[10], "tx_dropped": values[11]}
    return nets


def sample(cgroups: Any, c: Any) -> dict[str, Any]:
    """One StatsJSON sample of a running container (precpu_stats/preread left empty)."""
    out = empty_stats(c)
    out["read"] = rfc3339.now()
    dirs = cgroups.dirs(c.ID, c.HostConfig or {})
    cpu: dict[str, Any] = empty_cpu()
    if "memory" in dirs:
        out["memory_stats"] = _memory_v1(dirs["memory"])
        acct = dirs.get("cpuacct", "")
        percpu = [_int(v) for v in read_file(os.path.join(acct, "cpuacct.usage_percpu")).split()]
        ticks = _keyed(read_file(os.path.join(acct, "cpuacct.stat")))
        cpu["cpu_usage"] = {"total_usage": _int(read_file(os.path.join(acct, "cpuacct.usage"))),
                            "percpu_usage": percpu or None,
                            "usage_in_kernelmode": ticks.get("system", 0) * NANOS_PER_TICK,
                            "usage_in_usermode": ticks.get("user", 0) * NANOS_PER_TICK}
        if not percpu:
            del cpu["cpu_usage"]["percpu_usage"]
        throttle = _keyed(read_file(os.path.join(dirs.get("cpu", ""), "cpu.stat")))
        cpu["throttling_data"] = {"periods": throttle.get("nr_periods", 0),
                                  "throttled_periods": throttle.get("nr_throttled", 0),
                                  "throttled_time": throttle.get("throttled_time", 0)}
        pids_dir = dirs.get("pids", "")
        blk = dirs.get("blkio", "")
        out["blkio_stats"]["io_service_bytes_recursive"] = _blkio_v1(
            os.path.join(blk, "blkio.throttle.io_service_bytes_recursive"))
        out["blkio_stats"]["io_serviced_recursive"] = _blkio_v1(
            os.path.join(blk, "blkio.throttle.io_serviced_recursive"))
    elif "unified" in dirs:
        d = pids_dir = dirs["unified"]
        out["memory_stats"] = _memory_v2(d)
        stat = _keyed(read_file(os.path.join(d, "cpu.stat")))
        cpu["cpu_usage"] = {"total_usage": stat.get("usage_usec", 0) * 1000,
                            "usage_in_kernelmode": stat.get("system_usec", 0) * 1000,
                            "usage_in_usermode": stat.get("user_usec", 0) * 1000}
        cpu["throttling_data"] = {"periods": stat.get("nr_periods", 0),
                                  "throttled_periods": stat.get("nr_throttled", 0),
                                  "throttled_time": stat.get("throttled_usec", 0) * 1000}
    else:
        pids_dir = ""
    cpu["system_cpu_usage"] = _system_cpu_usage()
    cpu["online_cpus"] = _online_cpus()
    out["cpu_stats"] = cpu
    if pids_dir:
        pids: dict[str, int] = {"current": _int(read_file(os.path.join(pids_dir, "pids.current")))}
        limit = read_file(os.path.join(pids_dir, "pids.max"))
        if limit.isdigit():
            pids["limit"] = int(limit)
        out["pids_stats"] = pids
    if c.HostConfig.get("NetworkMode") != "host" and c.State.Pid:
        nets = _networks(c.State.Pid)
        if nets:
            out["networks"] = nets
    return out


def _memory_v1(d: str) -> dict[str, Any]:
    limit = _int(read_file(os.path.join(d, "memory.limit_in_bytes")))
    host = _host_memory()
    return {"usage": _int(read_file(os.path.join(d, "memory.usage_in_bytes"))),
            "max_usage": _int(read_file(os.path.join(d, "memory.max_usage_in_bytes"))),
            "stats": _keyed(read_file(os.path.join(d, "memory.stat"))),
            "failcnt": _int(read_file(os.path.join(d, "memory.failcnt"))),
            "limit": min(limit, host) if host and limit else limit or host}


def _memory_v2(d: str) -> dict[str, Any]:
    limit = read_file(os.path.join(d, "memory.max"))
    host = _host_memory()
    return {"usage": _int(read_file(os.path.join(d, "memory.current"))),
            "stats": _keyed(read_file(os.path.join(d, "memory.stat"))),
            "limit": min(int(limit), host) if limit.isdigit() and host else host}


# ---------------------------------------------------------------- docker top

_PS_ARG_RE = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")


def container_pids(cgroups: Any, c: Any) -> set[int]:
    """Every process in the container's cgroup (init, its children and execs)."""
    for d in cgroups.join_paths(c.ID, c.HostConfig or {}):
        text = read_file(os.path.join(d, "cgroup.procs"))
        if text:
            return {int(p) for p in text.split()}
    return {c.State.Pid} if c.State.Pid else set()


def top(cgroups: Any, c: Any, ps_args: str) -> dict[str, Any]:
    """dockerd's ContainerTop: run `ps ARGS -q PIDS` (or plain `ps ARGS` when ps refuses -q with those
    options) and keep the rows whose PID column names a process of the container."""
    ps_args = ps_args or "-ef"
    for key, value in _PS_ARG_RE.findall(ps_args):
        if key != "pid":
            raise BadParameter(f'specifying "{key}={value}" is not allowed')
    if not c.State.Running:
        raise Conflict(f"Container {c.ID} is not running")
    if c.State.Restarting:
        raise Conflict(f"Container {c.ID} is restarting, wait until the container is running")
    pids = container_pids(cgroups, c)
    args = ps_args.split(" ")
    done = _run_ps([*args, "-q", ",".join(str(p) for p in sorted(pids))]) if pids else None
    if done is None or done.returncode != 0:
        done = _run_ps(args)
        if done.returncode != 0:
            first = done.stderr.decode(errors="replace").split("\n", 1)[0]
            raise ServerError(f"ps: {first or f'exit status {done.returncode}'}")
    return parse_ps(done.stdout.decode(errors="replace"), pids)


def _run_ps(args: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["ps", *args], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ServerError(f"ps: {e}") from None


def parse_ps(output: str, pids: set[int]) -> dict[str, Any]:
    lines = output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise ServerError("Couldn't find PID field in ps output")
    at = titles.index("PID")
    processes = []
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        try:
            pid = int(fields[at])
        except (ValueError, IndexError):
            raise ServerError(f"Unexpected pid '{fields[at] if at < len(fields) else ''}'") from None
        if pid in pids:
            head = fields[:len(titles) - 1]
            processes.append([*head, " ".join(fields[len(titles) - 1:])])
    return {"Titles": titles, "Processes": processes}
