"""Resource limits through cgroups (v1 here and in CI), as Docker sets them: memory with OOM kills, CPU
quota/shares/cpuset, pids, docker update on a running container, and the cgroup's removal."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import remove_cgroups

V1 = "/sys/fs/cgroup/memory"


def host_cgroup(controller: str, cid: str, parent: str) -> str:
    """The container's cgroup on the host, under the test daemon's own parent (daemon.cgroup_parent)."""
    if os.path.isdir(f"/sys/fs/cgroup/{controller}"):
        return f"/sys/fs/cgroup/{controller}/{parent}/{cid}"
    return f"/sys/fs/cgroup/{parent}/{cid}"


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def inspect(daemon, cid):
    return json.loads(daemon.docker("inspect", cid, check=True).stdout)[0]


def run(daemon, *args):
    return daemon.docker("run", "--rm", "--network", "none", *args)


pytestmark = pytest.mark.skipif(not os.path.isdir(V1) and not os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
                                reason="no cgroup filesystem")


def test_memory_limit_visible_in_container(daemon, busybox):
    r = run(daemon, "-m", "32m", busybox, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert r.stdout.strip() == str(32 * 1024 * 1024), r.stderr


def test_memory_hog_is_oom_killed(daemon, busybox):
    import time
    since = str(time.time())
    cid = daemon.docker("run", "-d", "--network", "none", "-m", "32m", "--memory-swap", "32m", busybox,
                        "tail", "/dev/zero", check=True).stdout.strip()
    try:
        r = daemon.docker("wait", cid, timeout=60)
        assert r.stdout.strip() == "137"
        state = inspect(daemon, cid)["State"]
        assert state["OOMKilled"] is True and state["ExitCode"] == 137
        assert not os.path.exists(host_cgroup("memory", cid, daemon.cgroup_parent))   # gone at exit
        events = daemon.docker("events", "--since", since, "--until", str(time.time() + 1), "--filter",
                               f"container={cid}", "--format", "{{.Action}}", check=True).stdout.split()
        assert events.index("oom") < events.index("die")
    finally:
        daemon.docker("rm", "-f", cid)


def test_pids_limit_stops_fork(daemon, busybox):
    r = run(daemon, "--pids-limit", "10", busybox, "sh", "-c",
            "cat /sys/fs/cgroup/pids/pids.max; for i in $(seq 20); do sleep 2 & done 2>&1; echo done")
    assert r.stdout.splitlines()[0] == "10"
    assert "can't fork" in r.stdout + r.stderr or "Resource temporarily unavailable" in r.stdout + r.stderr


def test_cpus_sets_quota_and_period(daemon, busybox):
    r = run(daemon, "--cpus", "0.5", "--cpu-shares", "512", "--cpuset-cpus", "0", busybox, "sh", "-c",
            "cd /sys/fs/cgroup; cat cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us cpu/cpu.shares cpuset/cpuset.cpus")
    assert r.stdout.split() == ["50000", "100000", "512", "0"], r.stderr


def test_inspect_shows_resources(daemon, busybox):
    cid = daemon.docker("create", "-m", "64m", "--memory-reservation", "32m", "--cpus", "1.5", "--pids-limit", "50",
                        "--cpu-shares", "256", busybox, "true", check=True).stdout.strip()
    try:
        hc = inspect(daemon, cid)["HostConfig"]
        assert hc["Memory"] == 64 * 1024 * 1024 and hc["MemorySwap"] == 128 * 1024 * 1024
        assert hc["MemoryReservation"] == 32 * 1024 * 1024
        assert hc["NanoCpus"] == 1_500_000_000 and hc["PidsLimit"] == 50 and hc["CpuShares"] == 256
    finally:
        daemon.docker("rm", "-f", cid)


def test_update_running_container(daemon, busybox):
    cid = daemon.docker("run", "-d", "--network", "none", "-m", "32m", busybox, "sleep", "300",
                        check=True).stdout.strip()
    try:
        memdir = host_cgroup("memory", cid, daemon.cgroup_parent)
        assert read(f"{memdir}/memory.limit_in_bytes") == str(32 * 1024 * 1024)
        r = daemon.docker("update", "--memory", "48m", "--pids-limit", "20", "--cpus", "0.25", cid)
        assert r.returncode == 0, r.stderr
        assert read(f"{memdir}/memory.limit_in_bytes") == str(48 * 1024 * 1024)
        assert read(host_cgroup("pids", cid, daemon.cgroup_parent) + "/pids.max") == "20"
        assert read(host_cgroup("cpu", cid, daemon.cgroup_parent) + "/cpu.cfs_quota_us") == "25000"
        hc = inspect(daemon, cid)["HostConfig"]
        assert hc["Memory"] == 48 * 1024 * 1024 and hc["PidsLimit"] == 20 and hc["NanoCpus"] == 250_000_000
        r = daemon.docker("update", "--memory", "1m", cid)
        assert r.returncode != 0 and "Minimum memory limit allowed is 6MB" in r.stderr
        # docker-py's update answers Docker's {"Warnings": [...]}
        assert daemon.api.api.update_container(cid, mem_limit="40m", memswap_limit="80m") == {"Warnings": []}
        assert read(f"{memdir}/memory.limit_in_bytes") == str(40 * 1024 * 1024)
    finally:
        daemon.docker("rm", "-f", cid)
    assert not os.path.exists(memdir), "the cgroup must go with the container"


def test_update_changes_only_the_named_limits(daemon, busybox):
    cid = daemon.docker("run", "-d", "--network", "none", "-m", "64m", "--cpus", "0.5", busybox, "sleep", "300",
                        check=True).stdout.strip()
    try:
        memdir, cpudir = (host_cgroup(c, cid, daemon.cgroup_parent) for c in ("memory", "cpu"))
        v1 = os.path.isdir("/sys/fs/cgroup/memory")

        def limits() -> tuple[str, str, str]:
            if v1:
                swap = memdir + "/memory.memsw.limit_in_bytes"
                return (read(memdir + "/memory.limit_in_bytes"), read(cpudir + "/cpu.cfs_quota_us"),
                        read(swap) if os.path.exists(swap) else "")
            swap = memdir + "/memory.swap.max"
            return (read(memdir + "/memory.max"), read(cpudir + "/cpu.max").split()[0],
                    read(swap) if os.path.exists(swap) else "")

        mem, quota, swap = limits()
        assert (mem, quota) == (str(64 << 20), "50000")
        daemon.docker("update", "-m", "128m", "--memory-swap", "256m", cid, check=True)
        mem, quota, swap = limits()
        assert (mem, quota) == (str(128 << 20), "50000"), "a memory update must keep the CPU quota"
        daemon.docker("update", "--cpus", "1.5", cid, check=True)
        assert limits() == (str(128 << 20), "150000", swap), "a CPU update must keep the memory and swap limits"
        hc = inspect(daemon, cid)["HostConfig"]
        assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"]) == (128 << 20, 256 << 20, 1_500_000_000)
        daemon.docker("update", "--pids-limit", "30", cid, check=True)
        hc = inspect(daemon, cid)["HostConfig"]
        assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["PidsLimit"]) == \
            (128 << 20, 256 << 20, 1_500_000_000, 30)
        assert limits() == (str(128 << 20), "150000", swap)
    finally:
        daemon.docker("rm", "-f", cid)


def test_cgroup_removed_with_container(daemon, busybox):
    cid = daemon.docker("run", "-d", "--network", "none", busybox, "sleep", "300", check=True).stdout.strip()
    dirs = [host_cgroup(c, cid, daemon.cgroup_parent) for c in ("memory", "pids", "cpu", "devices", "freezer")]
    assert all(os.path.isdir(d) for d in dirs)
    pid = inspect(daemon, cid)["State"]["Pid"]
    assert str(pid) in read(dirs[0] + "/cgroup.procs")
    daemon.docker("rm", "-f", cid, check=True)
    assert not any(os.path.exists(d) for d in dirs)


def test_cgroup_parent(daemon, busybox):
    try:
        r = run(daemon, "--cgroup-parent", "pyd-test-parent", busybox, "cat", "/proc/self/cgroup")
        assert "/pyd-test-parent/" in r.stdout, r.stdout + r.stderr
    finally:
        remove_cgroups("pyd-test-parent")   # the parent stays, as with Docker: in every hierarchy, ours to remove


@pytest.mark.parametrize("flags,message", [
    (["-m", "1k"], "Minimum memory limit allowed is 6MB"),
    (["-m", "32m", "--memory-swap", "16m"], "Minimum memoryswap limit should be larger than memory limit"),
    (["--memory-reservation", "1k"], "Minimum memory reservation allowed is 6MB"),
    (["--cpus", "999"], "Range of CPUs is from 0.01 to"),
    (["--cpuset-cpus", "999"], "Requested CPUs are not available"),
])
def test_bad_values_have_dockers_messages(daemon, busybox, flags, message):
    r = run(daemon, *flags, busybox, "true")
    assert r.returncode == 125 and message in r.stderr, r.stderr


def test_failed_start_leaves_no_cgroup(daemon, busybox):
    r = daemon.docker("run", "-d", "--name", "cg-fail", "--network", "none", busybox, "nosuchcmd")
    try:
        assert r.returncode == 127
        cid = inspect(daemon, "cg-fail")["Id"]
        assert not os.path.exists(host_cgroup("memory", cid, daemon.cgroup_parent))
    finally:
        daemon.docker("rm", "-f", "cg-fail")


def test_docker_py_limits(daemon, busybox):
    out = daemon.api.containers.run(busybox, ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                              "/sys/fs/cgroup/pids/pids.max"],
                                    remove=True, network_mode="none", mem_limit="16m", pids_limit=7)
    assert out.split() == [str(16 * 1024 * 1024).encode(), b"7"]


def test_pyd_client_flags_and_update(daemon, busybox):
    r = daemon.pyd("run", "--rm", "--network", "none", "--cap-drop", "ALL", "-m", "32m", "--ulimit", "nofile=64",
                   busybox, "sh", "-c", "grep CapEff /proc/self/status; ulimit -n; "
                                        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert r.stdout.split() == ["CapEff:", "0000000000000000", "64", str(32 * 1024 * 1024)], r.stderr
    cid = daemon.pyd("run", "-d", "--network", "none", "-m", "32m", busybox, "sleep", "300",
                     check=True).stdout.strip()
    try:
        r = daemon.pyd("update", "--memory", "40m", cid)
        assert r.returncode == 0 and r.stdout.strip() == cid, r.stderr
        assert read(host_cgroup("memory", cid, daemon.cgroup_parent) + "/memory.limit_in_bytes") == str(40 * 1024 * 1024)
        r = daemon.pyd("update", cid)
        assert r.returncode != 0
    finally:
        daemon.pyd("rm", "-f", cid)


def _a_disk() -> str:
    """A disk of this machine (not a loop, zram or ram device), for the per-device limits."""
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "zram", "ram")) and os.path.exists(f"/dev/{name}"):
            return f"/dev/{name}"
    pytest.fail("no disk found under /sys/block")


def test_device_throttles_reach_the_cgroup(daemon, busybox):
    dev = _a_disk()
    numbers = Path(f"/sys/block/{dev[5:]}/dev").read_text().strip()
    cid = daemon.docker("run", "-d", "--network", "none", "--device-read-bps", f"{dev}:1mb",
                        "--device-write-iops", f"{dev}:200", busybox, "sleep", "300", check=True).stdout.strip()
    try:
        if os.path.isdir(V1):
            blkio = host_cgroup("blkio", cid, daemon.cgroup_parent)
            assert Path(f"{blkio}/blkio.throttle.read_bps_device").read_text().split() == [numbers, "1048576"]
            assert Path(f"{blkio}/blkio.throttle.write_iops_device").read_text().split() == [numbers, "200"]
        else:
            io_max = Path(host_cgroup("io", cid, daemon.cgroup_parent), "io.max").read_text().split()
            assert io_max[:3] == [numbers, "rbps=1048576", "wbps=max"] and "wiops=200" in io_max
    finally:
        daemon.docker("rm", "-f", cid)


def test_a_missing_throttled_device_fails_the_start(daemon, busybox):
    daemon.docker("create", "--name", "thr-missing", "--device-read-bps", "/dev/pyd-nosuch:1mb", busybox, "true",
                  check=True)
    try:
        r = daemon.docker("start", "thr-missing")
        assert r.returncode == 1
        assert "Error response from daemon: stat /dev/pyd-nosuch: no such file or directory" in r.stderr
    finally:
        daemon.docker("rm", "-f", "thr-missing")
