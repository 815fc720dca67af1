"""Container cgroups with the cgroupfs driver: one cgroup per container, limits from the HostConfig.

cgroup v1 (one hierarchy per controller): ``<mount of controller>/<cgroup-parent or "pyd">/<id>`` for
memory, cpu, cpuacct, cpuset, pids, blkio, devices, freezer. cgroup v2 (unified): ``/sys/fs/cgroup/<parent>/<id>``
with the same knobs in v2 spelling. The daemon creates and fills the cgroup before execd starts the
container; execd moves the container's init into it (``join_cgroup``); the daemon reads the OOM count at
exit and removes the cgroup.
"""
from __future__ import annotations

import errno
import logging
import os
import signal
import time
from typing import Any

from pyd.daemon.errors import BadParameter

log = logging.getLogger("pyd")

V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "devices", "freezer")
MIN_MEMORY = 6 * 1024 * 1024          # dockerd's linuxMinMemory
CFS_PERIOD = 100_000                  # microseconds, as Docker uses for --cpus
RESOURCE_KEYS = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota",
                 "CpusetCpus", "CpusetMems", "PidsLimit", "BlkioWeight", "KernelMemory", "CpuRealtimePeriod",
                 "CpuRealtimeRuntime")


# ---------------------------------------------------------------- validation (dockerd's words)

def _cpu_count() -> int:
    return os.cpu_count() or 1


def check_resources(hc: dict[str, Any], update: bool = False) -> list[str]:
    """Validate and complete the resource fields of a HostConfig in place; returns warnings."""
    warnings: list[str] = []
    for key in ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota",
                "BlkioWeight"):
        if hc.get(key) is None:
            hc[key] = 0
    mem, swap, resv = hc["Memory"], hc["MemorySwap"], hc["MemoryReservation"]
    if mem and mem < MIN_MEMORY:
        raise BadParameter("Minimum memory limit allowed is 6MB")
    if mem > 0 and swap > 0 and swap < mem:
        raise BadParameter("Minimum memoryswap limit should be larger than memory limit, see usage for details")
    if mem == 0 and swap > 0 and not update:
        raise BadParameter("You should always set the Memory limit when using Memoryswap limit, see usage for details")
    if resv and resv < MIN_MEMORY:
        raise BadParameter("Minimum memory reservation allowed is 6MB")
    if mem > 0 and resv > 0 and mem < resv:
        raise BadParameter("Minimum memory limit can not be less than memory reservation limit, see usage for details")
    if mem > 0 and swap == 0 and not update:
        hc["MemorySwap"] = mem * 2   # dockerd's default: as much swap as memory
    ncpu = _cpu_count()
    nano = hc["NanoCpus"]
    if nano and (hc["CpuPeriod"] or hc["CpuQuota"]):
        which = "Period" if hc["CpuPeriod"] else "Quota"
        raise BadParameter(f"Conflicting options: Nano CPUs and CPU {which} cannot both be set")
    if nano < 0 or nano > ncpu * 10**9:
        raise BadParameter(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if hc["CpuPeriod"] and not 1000 <= hc["CpuPeriod"] <= 1_000_000:
        raise BadParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if hc["CpuQuota"] and 0 < hc["CpuQuota"] < 1000:
        raise BadParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if hc["CpuShares"] < 0:
        raise BadParameter("shares: invalid argument")
    cpus = hc.get("CpusetCpus") or ""
    if cpus:
        wanted = parse_cpu_list(cpus)
        available = parse_cpu_list(read_file(_cpuset_root() + "/cpuset.cpus") or f"0-{ncpu - 1}")
        if not wanted <= available:
            raise BadParameter(f"Requested CPUs are not available - requested {cpus}, available: "
                               f"{read_file(_cpuset_root() + '/cpuset.cpus') or f'0-{ncpu - 1}'}")
    weight = hc["BlkioWeight"]
    if weight and not 10 <= weight <= 1000:
        raise BadParameter("Range of blkio weight is from 10 to 1000")
    if weight and not blkio_weight_supported():
        # dockerd's verifyPlatformContainerResources: warn and discard
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                        "Weight discarded.")
        hc["BlkioWeight"] = 0
    pids = hc.get("PidsLimit")
    if pids is not None and pids <= 0:
        hc["PidsLimit"] = None if not update else 0   # 0 and -1 mean unlimited
    return warnings


def parse_cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise BadParameter(f"invalid value {text} for cpuset cpus") from None
        if a > b:
            raise BadParameter(f"invalid value {text} for cpuset cpus")
        cpus.update(range(a, b + 1))
    return cpus


def blkio_weight_supported() -> bool:
    """What dockerd's sysinfo calls BlkioWeight: v1 blkio.weight (or the BFQ one), v2 the io controller."""
    v1 = "/sys/fs/cgroup/blkio"
    if os.path.isdir(v1):
        return any(os.path.exists(os.path.join(v1, n)) for n in ("blkio.weight", "blkio.bfq.weight"))
    return "io" in read_file("/sys/fs/cgroup/cgroup.controllers").split()


def _cpuset_root() -> str:
    return "/sys/fs/cgroup/cpuset" if os.path.isdir("/sys/fs/cgroup/cpuset") else "/sys/fs/cgroup"


def read_file(path: str) -> str:
    """A cgroup (or /proc) file's text, stripped; "" when it cannot be read."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _write(path: str, value: str | int) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def parse_exec_opts(opts: list[str]) -> dict[str, str]:
    """dockerd's --exec-opt: only native.cgroupdriver=cgroupfs is known here."""
    out = {}
    for opt in opts or []:
        key, sep, value = opt.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep:
            raise ValueError(f"unable to parse exec-opt {opt!r}: expected key=value")
        if key != "native.cgroupdriver":
            raise ValueError(f"unknown option {key!r} for exec-opt")
        if value != "cgroupfs":
            raise ValueError(f"native.cgroupdriver option {value} not supported")
        out[key] = value
    return out


# ---------------------------------------------------------------- the manager

def _v1_mounts(mountinfo: str = "/proc/self/mountinfo") -> dict[str, str]:
    """controller -> mount point of its v1 hierarchy."""
    found: dict[str, str] = {}
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = right.split()
        if len(fields) < 3 or fields[0] != "cgroup":
            continue
        point = left.split()[4]
        for opt in fields[2].split(","):
            if opt in V1_CONTROLLERS:
                found.setdefault(opt, point)
    return found


class Cgroups:
    """cgroupfs driver: creates, fills, updates and removes container cgroups."""

    def __init__(self, parent: str = "pyd") -> None:
        self.parent = parent.strip("/") or "pyd"
        self.v1 = _v1_mounts()
        self.version = 1 if self.v1 else (2 if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else 0)

    # ---- paths
    def _relative(self, cid: str, hc: dict[str, Any]) -> str:
        parent = (hc.get("CgroupParent") or self.parent).strip("/")
        return f"{parent}/{cid}" if parent else cid

    def dirs(self, cid: str, hc: dict[str, Any]) -> dict[str, str]:
        """controller -> directory of the container's cgroup (v2: {"unified": dir})."""
        rel = self._relative(cid, hc)
        if self.version == 1:
            return {ctl: os.path.join(point, rel) for ctl, point in self.v1.items()}
        if self.version == 2:
            return {"unified": os.path.join("/sys/fs/cgroup", rel)}
        return {}

    def join_paths(self, cid: str, hc: dict[str, Any]) -> list[str]:
        """The distinct directories execd writes the init into (co-mounted controllers share one)."""
        seen: list[str] = []
        for d in self.dirs(cid, hc).values():
            if d not in seen:
                seen.append(d)
        return seen

    # ---- life cycle
    def create(self, cid: str, hc: dict[str, Any]) -> list[str]:
        """Make the cgroup and apply every limit; returns the warnings. Removes what it made on failure."""
        try:
            for ctl, d in self.dirs(cid, hc).items():
                self._mkdir(ctl, d)
            if self.version == 2:
                self._enable_v2_controllers(os.path.dirname(self.dirs(cid, hc)["unified"]))
            self._set_devices(cid, hc)
            return self.apply(cid, hc)
        except OSError as e:
            self.remove(cid, hc)
            raise BadParameter(f"failed to create container cgroup: {e}") from None

    def _mkdir(self, ctl: str, path: str) -> None:
        """mkdir -p; cpuset levels get their parent's cpus and mems, or nothing could join them."""
        missing = []
        p = path
        while not os.path.isdir(p):
            missing.append(p)
            p = os.path.dirname(p)
        for d in reversed(missing):
            try:
                os.mkdir(d)
            except FileExistsError:
                pass
            if ctl == "cpuset":
                for f in ("cpuset.cpus", "cpuset.mems"):
                    if not read_file(os.path.join(d, f)):
                        _write(os.path.join(d, f), read_file(os.path.join(os.path.dirname(d), f)))

    def _enable_v2_controllers(self, parent: str) -> None:
        root = "/sys/fs/cgroup"
        chain = []
        p = parent
        while p.startswith(root) and p != root:
            chain.append(p)
            p = os.path.dirname(p)
        for d in [root, *reversed(chain)]:
            available = read_file(os.path.join(d, "cgroup.controllers")).split()
            for ctl in ("cpu", "cpuset", "memory", "pids", "io"):
                if ctl in available:
                    try:
                        _write(os.path.join(d, "cgroup.subtree_control"), f"+{ctl}")
                    except OSError:
                        pass

    def _set_devices(self, cid: str, hc: dict[str, Any]) -> None:
        from pyd.daemon.spec.security import DEFAULT_DEVICE_RULES, resolve_devices
        devices = [f"{d.kind} {d.major}:{d.minor} {d.permissions}" for d in resolve_devices(hc)]
        d = self.dirs(cid, hc).get("devices")
        if d is None:
            return   # v2 uses a BPF program; not done here
        if hc.get("Privileged"):
            _write(os.path.join(d, "devices.allow"), "a")
            return
        _write(os.path.join(d, "devices.deny"), "a")
        for rule in [*DEFAULT_DEVICE_RULES, *devices]:
            _write(os.path.join(d, "devices.allow"), rule)

    def apply(self, cid: str, hc: dict[str, Any]) -> list[str]:
        """Write the HostConfig's limits (at create and on update)."""
        dirs = self.dirs(cid, hc)
        warnings: list[str] = []
        if self.version == 1:
            self._apply_v1(dirs, hc, warnings)
        elif self.version == 2:
            self._apply_v2(dirs["unified"], hc, warnings)
        return warnings

    def _apply_v1(self, dirs: dict[str, str], hc: dict[str, Any], warnings: list[str]) -> None:
        mem_dir = dirs.get("memory")
        if mem_dir:
            mem, swap = hc.get("Memory") or 0, hc.get("MemorySwap") or 0
            limit = mem if mem > 0 else -1
            memsw = swap if swap > 0 else -1
            if mem <= 0:
                memsw = -1
            has_swap = os.path.exists(os.path.join(mem_dir, "memory.memsw.limit_in_bytes"))
            pairs = [("memory.limit_in_bytes", limit)]
            if has_swap:
                pairs.append(("memory.memsw.limit_in_bytes", memsw))
            try:
                for name, value in pairs:
                    _write(os.path.join(mem_dir, name), value)
            except OSError as e:
                if e.errno != errno.EINVAL or not has_swap:
                    raise
                # memsw must stay >= memory: raise it first when growing
                for name, value in reversed(pairs):
                    _write(os.path.join(mem_dir, name), value)
            _write(os.path.join(mem_dir, "memory.soft_limit_in_bytes"), hc.get("MemoryReservation") or -1)
        cpu_dir = dirs.get("cpu")
        if cpu_dir:
            shares = hc.get("CpuShares") or 0
            _write(os.path.join(cpu_dir, "cpu.shares"), shares if shares else 1024)
            period, quota = self._cfs(hc)
            _write(os.path.join(cpu_dir, "cpu.cfs_period_us"), period)
            _write(os.path.join(cpu_dir, "cpu.cfs_quota_us"), quota)
        cpuset_dir = dirs.get("cpuset")
        if cpuset_dir:
            parent = os.path.dirname(cpuset_dir)
            _write(os.path.join(cpuset_dir, "cpuset.cpus"), hc.get("CpusetCpus") or read_file(parent + "/cpuset.cpus"))
            _write(os.path.join(cpuset_dir, "cpuset.mems"), hc.get("CpusetMems") or read_file(parent + "/cpuset.mems"))
        pids_dir = dirs.get("pids")
        if pids_dir:
            limit = hc.get("PidsLimit") or 0
            _write(os.path.join(pids_dir, "pids.max"), limit if limit > 0 else "max")
        blkio_dir = dirs.get("blkio")
        weight = hc.get("BlkioWeight") or 0
        if blkio_dir and weight:
            for name in ("blkio.weight", "blkio.bfq.weight"):
                if os.path.exists(os.path.join(blkio_dir, name)):
                    _write(os.path.join(blkio_dir, name), weight)
                    break
            else:
                warnings.append("Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                                "Weight discarded.")

    def _apply_v2(self, d: str, hc: dict[str, Any], warnings: list[str]) -> None:
        def put(name: str, value: Any) -> None:
            if os.path.exists(os.path.join(d, name)):
                _write(os.path.join(d, name), value)
        mem, swap = hc.get("Memory") or 0, hc.get("MemorySwap") or 0
        put("memory.max", mem if mem > 0 else "max")
        put("memory.swap.max", (swap - mem) if mem > 0 and swap > 0 else "max")
        put("memory.low", hc.get("MemoryReservation") or 0)
        period, quota = self._cfs(hc)
        put("cpu.max", f"{quota if quota > 0 else 'max'} {period}")
        shares = hc.get("CpuShares") or 0
        if shares:
            put("cpu.weight", 1 + ((shares - 2) * 9999) // 262142)
        if hc.get("CpusetCpus"):
            put("cpuset.cpus", hc["CpusetCpus"])
        limit = hc.get("PidsLimit") or 0
        put("pids.max", limit if limit > 0 else "max")
        if hc.get("BlkioWeight"):
            put("io.bfq.weight", hc["BlkioWeight"])

    @staticmethod
    def _cfs(hc: dict[str, Any]) -> tuple[int, int]:
        nano = hc.get("NanoCpus") or 0
        if nano:
            return CFS_PERIOD, nano * CFS_PERIOD // 10**9
        return hc.get("CpuPeriod") or CFS_PERIOD, hc.get("CpuQuota") or -1

    def oom_killed(self, cid: str, hc: dict[str, Any]) -> bool:
        """Did the kernel's OOM killer act in this cgroup (memory.oom_control / memory.events)?"""
        dirs = self.dirs(cid, hc)
        if "memory" in dirs:
            text = read_file(os.path.join(dirs["memory"], "memory.oom_control"))
        elif "unified" in dirs:
            text = read_file(os.path.join(dirs["unified"], "memory.events"))
        else:
            return False
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value) > 0
        return False

    def set_frozen(self, cid: str, hc: dict[str, Any], frozen: bool, timeout: float = 5.0) -> None:
        """docker pause/unpause: freeze or thaw every process of the container (v1 freezer.state, v2
        cgroup.freeze) and wait until the kernel reports it done. OSError when there is no freezer."""
        dirs = self.dirs(cid, hc)
        if "freezer" in dirs:
            path, want = os.path.join(dirs["freezer"], "freezer.state"), "FROZEN" if frozen else "THAWED"
            check, done = path, want
        elif "unified" in dirs:
            path, want = os.path.join(dirs["unified"], "cgroup.freeze"), "1" if frozen else "0"
            check, done = os.path.join(dirs["unified"], "cgroup.events"), f"frozen {want}"
        else:
            raise OSError(errno.ENOTSUP, "no freezer cgroup")
        deadline = time.monotonic() + timeout
        while True:
            _write(path, want)       # v1 may stay FREEZING while a task is busy in the kernel: write again
            text = read_file(check)
            if done in text.splitlines() or text == done:
                return
            if time.monotonic() > deadline:
                raise OSError(errno.ETIMEDOUT, f"{path} did not reach {want}")
            time.sleep(0.005)

    def finish(self, cid: str, hc: dict[str, Any]) -> bool:
        """At the container's exit: whether it was OOM-killed; the cgroup is removed."""
        oom = self.oom_killed(cid, hc)
        self.remove(cid, hc)
        return oom

    def remove(self, cid: str, hc: dict[str, Any], timeout: float = 2.0) -> None:
        """rmdir every level made for the container; leftover processes (shared pid namespace) are killed."""
        for d in self.join_paths(cid, hc):
            deadline = time.monotonic() + timeout
            while os.path.isdir(d):
                try:
                    os.rmdir(d)
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        log.warning("cannot remove cgroup %s: %s", d, e)
                        break
                    for pid in read_file(os.path.join(d, "cgroup.procs")).split():
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except (OSError, ValueError):
                            pass
                    time.sleep(0.01)


# ---------------------------------------------------------------- docker update

def update_host_config(hc: dict[str, Any], body: dict[str, Any], warnings: list[str] | None = None) -> dict[str, Any]:
    """The HostConfig after POST /containers/{id}/update (validated; dockerd's rules for swap)."""
    new = dict(hc)
    for key in RESOURCE_KEYS:
        if key in body and body[key] is not None and body[key] != "":
            new[key] = body[key]
    if "PidsLimit" in body and body["PidsLimit"] is not None:
        new["PidsLimit"] = body["PidsLimit"] if body["PidsLimit"] > 0 else 0
    if body.get("RestartPolicy") and body["RestartPolicy"].get("Name") is not None:
        new["RestartPolicy"] = body["RestartPolicy"]
    mem, swap = new.get("Memory") or 0, new.get("MemorySwap") or 0
    if body.get("Memory") and not body.get("MemorySwap") and swap > 0 and mem > swap:
        raise BadParameter("Memory limit should be smaller than already set memoryswap limit, update the "
                           "memoryswap at the same time")
    if body.get("Memory") and not (hc.get("Memory") or 0) and not body.get("MemorySwap"):
        new["MemorySwap"] = mem * 2
    if body.get("NanoCpus"):
        new["CpuPeriod"] = new["CpuQuota"] = 0
    elif body.get("CpuPeriod") or body.get("CpuQuota"):
        new["NanoCpus"] = 0
    found = check_resources(new, update=True)
    if warnings is not None:
        warnings.extend(found)
    return new


def update_container(cg: Cgroups, c: Any, body: Any) -> list[str]:
    """docker update: validate, store in the HostConfig, and write the cgroup of a running container."""
    if not isinstance(body, dict):
        raise BadParameter("invalid JSON: body is empty")
    try:
        checked: list[str] = []
        new = update_host_config(c.HostConfig, body, checked)
    except BadParameter as e:
        raise BadParameter(f"Cannot update container {c.ID}: {e}") from None
    warnings: list[str] = []
    if c.State.Running and os.path.isdir(cg.join_paths(c.ID, new)[0] if cg.join_paths(c.ID, new) else "/nonexistent"):
        try:
            warnings = cg.apply(c.ID, new)
        except OSError as e:
            raise BadParameter(f"Cannot update container {c.ID}: {e}") from None
    warnings = checked + [w for w in warnings if w not in checked]
    c.HostConfig.clear()
    c.HostConfig.update(new)
    return warnings
