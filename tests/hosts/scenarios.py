"""The end-to-end subset that runs inside a guest VM, as root, on the guest's own python3 (standard library
only; 3.11 and later). Its folder (the read-only inputs disk) holds `pyd`, `docker` and `busybox.tar`.
Each scenario prints one line `PYD-HOSTS {json}` to RESULTS as soon as it ends: its name, ok, the error,
and every step (command, exit code, output), so a guest that hangs half-way still reports what it did.

    python3 scenarios.py RESULTS        # RESULTS: the second serial port in a guest, or a file
"""
from __future__ import annotations

import json
import os
import platform
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, TextIO

SCENARIOS = ("daemon-start", "load", "run-echo", "limits", "pause", "stats", "update", "device-probe",
             "overlay2", "bind-and-volume", "daemon-restart", "seccomp", "escape-probes", "platform")
PREFIX = "PYD-HOSTS "
INPUTS = Path(__file__).resolve().parent
PYD = "/usr/local/bin/pyd"
DOCKER = "/usr/local/bin/docker"
SOCKET = "/var/run/pyd.sock"
NOTIFY = "/run/pyd-hosts-notify.sock"
DAEMON_LOG = "/var/log/pyd-daemon.log"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Generous: the guest may run under TCG, where everything is several times slower, and the first start
# unpacks dist/pyd.
START_TIMEOUT = 300.0
STOP_TIMEOUT = 90.0
STEP_TIMEOUT = 150.0
OUTPUT_LIMIT = 4000
LIMIT_ARGS = ("--memory", "64m", "--pids-limit", "20", "--cpus", "0.5", "--cpu-shares", "512",
              "--cpuset-cpus", "0", "--device-read-bps", "/dev/vda:1mb", "--device-write-iops", "/dev/vda:200")
# What Docker writes for LIMIT_ARGS on cgroup v2 (cpu.weight: runc's conversion of 512 shares).
LIMIT_FILES = {"memory.max": "67108864", "pids.max": "20", "cpu.max": "50000 100000", "cpu.weight": "20",
               "cpuset.cpus": "0"}


class Failed(Exception):
    """A scenario's check did not hold; the message says which and what was seen."""


class Guest:
    """The state the scenarios share: the running daemon, and the steps of the scenario under way."""

    def __init__(self) -> None:
        self.daemon: subprocess.Popen[bytes] | None = None
        self.steps: list[dict[str, object]] = []
        self.facts: dict[str, object] = {}
        self.env = {"PATH": PATH, "HOME": "/root", "DOCKER_HOST": "unix://" + SOCKET, "LC_ALL": "C.UTF-8"}

    def run(self, *argv: str, timeout: float = STEP_TIMEOUT) -> tuple[int, str]:
        """Run a command, record it as a step, return (exit code, stdout+stderr as text)."""
        began = time.monotonic()
        try:
            proc = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
            code, out = proc.returncode, proc.stdout.decode(errors="replace")
        except subprocess.TimeoutExpired as e:
            code, out = -1, (e.output or b"").decode(errors="replace") + f"\n[timed out after {timeout:.0f}s]"
        except OSError as e:
            code, out = -1, f"[cannot run: {e}]"
        self.steps.append({"cmd": " ".join(argv), "rc": code, "out": out[-OUTPUT_LIMIT:],
                           "seconds": round(time.monotonic() - began, 2)})
        return code, out

    def ok(self, *argv: str, timeout: float = STEP_TIMEOUT) -> str:
        code, out = self.run(*argv, timeout=timeout)
        if code != 0:
            raise Failed(f"`{' '.join(argv)}` exited {code}: {out.strip()[-500:]}")
        return out

    def note(self, what: str, value: object) -> None:
        self.steps.append({"cmd": what, "rc": 0, "out": str(value)[-OUTPUT_LIMIT:]})

    def read(self, path: str) -> str:
        try:
            value = Path(path).read_text().strip()
        except OSError as e:
            self.steps.append({"cmd": f"cat {path}", "rc": 1, "out": str(e)})
            raise Failed(f"cannot read {path}: {e}") from None
        self.steps.append({"cmd": f"cat {path}", "rc": 0, "out": value})
        return value

    def docker(self, *args: str, timeout: float = STEP_TIMEOUT) -> str:
        return self.ok(DOCKER, *args, timeout=timeout).strip()

    # the daemon, started as a user would: `pyd daemon &` with the default data root and socket

    def start_daemon(self) -> None:
        Path(NOTIFY).unlink(missing_ok=True)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(NOTIFY)
        began = time.monotonic()
        try:
            with open(DAEMON_LOG, "ab") as log:
                self.daemon = subprocess.Popen([PYD, "daemon"], stdout=log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, env={**self.env, "NOTIFY_SOCKET": NOTIFY},
                                               start_new_session=True)
            while True:
                if self.daemon.poll() is not None:
                    raise Failed(f"pyd daemon exited {self.daemon.returncode} before READY; log:\n{log_tail()}")
                if time.monotonic() - began > START_TIMEOUT:
                    raise Failed(f"no READY=1 from pyd daemon within {START_TIMEOUT:.0f}s; log:\n{log_tail()}")
                if select.select([notify], [], [], 1.0)[0] and b"READY=1" in notify.recv(4096):
                    break
        finally:
            notify.close()
            Path(NOTIFY).unlink(missing_ok=True)
        self.note("pyd daemon: READY=1 after", f"{time.monotonic() - began:.1f}s")

    def stop_daemon(self) -> None:
        if self.daemon is None or self.daemon.poll() is not None:
            return
        began = time.monotonic()
        self.daemon.send_signal(signal.SIGTERM)
        try:
            code = self.daemon.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
            raise Failed(f"pyd daemon did not stop within {STOP_TIMEOUT:.0f}s of SIGTERM; killed") from None
        self.note("pyd daemon: SIGTERM, exited", f"{code} after {time.monotonic() - began:.1f}s")

    def require_daemon(self) -> None:
        if self.daemon is None or self.daemon.poll() is not None:
            raise Failed(f"pyd daemon is not running; log:\n{log_tail()}")

    def cgroup_dir(self, container: str) -> str:
        pid = self.docker("inspect", "-f", "{{.State.Pid}}", container)
        lines = self.read(f"/proc/{pid}/cgroup").splitlines()
        unified = [line.split(":", 2)[2] for line in lines if line.startswith("0::")]
        if not unified or len(lines) > 1:
            raise Failed(f"container {container} is not in a cgroup v2-only hierarchy: {lines}")
        return "/sys/fs/cgroup" + unified[0]


def log_tail(chars: int = 2500) -> str:
    try:
        return Path(DAEMON_LOG).read_text(errors="replace")[-chars:]
    except OSError:
        return "(no daemon log)"


# ---------------------------------------------------------------------------------------------------------
# the scenarios, in order; each may rely on those before it

def daemon_start(g: Guest) -> None:
    shutil.copyfile(INPUTS / "pyd", PYD)
    shutil.copyfile(INPUTS / "docker", DOCKER)
    os.chmod(PYD, 0o755)
    os.chmod(DOCKER, 0o755)
    g.facts.update(kernel=platform.release(), python=platform.python_version(),
                   init=Path("/proc/1/comm").read_text().strip())
    g.start_daemon()
    info = json.loads(g.docker("info", "--format", "{{json .}}"))
    backing = dict((k, v) for k, v in info.get("DriverStatus") or [] if isinstance(k, str))
    g.facts.update(cgroup_driver=info.get("CgroupDriver"), cgroup_version=info.get("CgroupVersion"),
                   storage_driver=info.get("Driver"), backing_filesystem=backing.get("Backing Filesystem"),
                   warnings=info.get("Warnings") or [], server_version=info.get("ServerVersion"))
    g.note("facts", json.dumps(g.facts))


def load(g: Guest) -> None:
    g.require_daemon()
    g.docker("load", "-i", str(INPUTS / "busybox.tar"))
    g.docker("image", "inspect", "-f", "{{.Id}}", "busybox:latest")


def run_echo(g: Guest) -> None:
    out = g.docker("run", "--rm", "busybox", "echo", "hello from the guest")
    if out != "hello from the guest":
        raise Failed(f"docker run --rm busybox echo printed {out!r}")
    # every guest is cgroup v2: a container gets its own cgroup namespace by default, as with dockerd
    out = g.docker("run", "--rm", "busybox", "cat", "/proc/self/cgroup")
    if out != "0::/":
        raise Failed(f"/proc/self/cgroup in a container is {out!r}, not a private namespace's 0::/")


def limits(g: Guest) -> None:
    g.docker("run", "-d", "--name", "lim", *LIMIT_ARGS, "busybox", "sleep", "3600")
    cgroup = g.cgroup_dir("lim")
    wrong = {}
    for name, want in LIMIT_FILES.items():
        try:
            got = g.read(f"{cgroup}/{name}")
        except Failed as e:
            got = str(e)
        if got != want:
            wrong[name] = f"{got!r} (want {want!r})"
    vda = g.read("/sys/block/vda/dev")     # the guest's root disk: io.max names it by its numbers
    want = f"{vda} rbps=1048576 wbps=max riops=max wiops=200"
    got = g.read(f"{cgroup}/io.max")
    if got != want:
        wrong["io.max"] = f"{got!r} (want {want!r})"
    if wrong:
        raise Failed(f"cgroup files of {cgroup} after {' '.join(LIMIT_ARGS)}: {wrong}")


def _frozen(g: Guest, cgroup: str, want: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        events = dict(line.split(" ", 1) for line in g.read(f"{cgroup}/cgroup.events").splitlines() if " " in line)
        if events.get("frozen") == want:
            return
        if time.monotonic() > deadline:
            raise Failed(f"{cgroup}/cgroup.events says frozen {events.get('frozen')}, want {want}")
        time.sleep(0.5)


def pause(g: Guest) -> None:
    cgroup = g.cgroup_dir("lim")
    g.docker("pause", "lim")
    status = g.docker("inspect", "-f", "{{.State.Status}}", "lim")
    if status != "paused":
        raise Failed(f"after docker pause, State.Status is {status!r}")
    _frozen(g, cgroup, "1")
    g.docker("unpause", "lim")
    status = g.docker("inspect", "-f", "{{.State.Status}}", "lim")
    if status != "running":
        raise Failed(f"after docker unpause, State.Status is {status!r}")
    _frozen(g, cgroup, "0")


STATS_ATTEMPTS = 3


def stats(g: Guest) -> None:
    # The CLI waits 2 s for the daemon's answer and then prints a row of zeros ("0B / 0B"); stream=false
    # takes two samples a second apart, so an emulated CPU busy with other guests can miss that window.
    # Such a row is asked again; any other answer is the result.
    for _ in range(STATS_ATTEMPTS):
        out = g.docker("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} pids={{.PIDs}}", "lim")
        if "0B / 0B" not in out:
            break
    if not out.startswith("lim ") or "64MiB" not in out:
        raise Failed(f"docker stats --no-stream says {out!r}; want the name and the 64MiB limit")


def update(g: Guest) -> None:
    g.docker("update", "--memory", "100m", "lim")
    got = g.read(f"{g.cgroup_dir('lim')}/memory.max")
    if got != "104857600":
        raise Failed(f"after docker update --memory 100m, memory.max is {got!r}")
    shown = g.docker("inspect", "-f", "{{.HostConfig.Memory}}", "lim")
    if shown != "104857600":
        raise Failed(f"after docker update --memory 100m, HostConfig.Memory is {shown!r}")


BLOCK_PROBE = "mknod /tmp/blk b {major} 0; head -c 512 /tmp/blk"


def _probe(g: Guest, *run: str, major: str) -> tuple[int, str]:
    """Make a block node in a container and read it: (exit code, output); the bytes are not kept."""
    code, out = g.run(DOCKER, *run, "sh", "-c", BLOCK_PROBE.format(major=major))
    g.steps[-1]["out"] = f"{len(out)} characters: {out[:200]!r}"      # the disk's bytes, escaped
    return code, out


def _refused(code: int, out: str) -> bool:
    return code != 0 and "Operation not permitted" in out


def _disk_major(g: Guest) -> str:
    disk = Path("/sys/block/vda/dev").read_text().strip().split(":")[0]
    g.note("the guest's disk /dev/vda is major", disk)
    return disk


def device_probe(g: Guest) -> None:
    disk = _disk_major(g)
    leaks = []
    for major in dict.fromkeys(["254", disk]):
        code, out = _probe(g, "run", "--rm", "busybox", major=major)
        if not _refused(code, out):
            leaks.append(f"block {major}:0 (exit {code}, {len(out)} characters of output)")
    if leaks:
        raise Failed("a default container could open a block device: " + ", ".join(leaks))
    # the filter follows the rules, it does not refuse everything
    for run in (("run", "--rm", "--device-cgroup-rule", f"b {disk}:* r", "busybox"),
                ("run", "--rm", "--privileged", "busybox")):
        code, out = _probe(g, *run, major=disk)
        if code != 0 or len(out) < 512:
            raise Failed(f"`docker {' '.join(run)}` could not read block {disk}:0: exit {code}, {out[:200]!r}")
    code, out = _probe(g, "exec", "lim", major=disk)     # after docker update: exec is filtered too
    if not _refused(code, out):
        raise Failed(f"docker exec in `lim` (after docker update) could read block {disk}:0 (exit {code})")


def overlay2(g: Guest) -> None:
    driver = g.docker("info", "--format", "{{.Driver}}")
    if driver != "overlay2":
        raise Failed(f"docker info says Storage Driver {driver!r} (daemon started without -s); log:\n"
                     + "\n".join(line for line in log_tail(20000).splitlines() if "overlay" in line.lower())[-1500:])
    mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if " - overlay " in line]
    g.note("overlay mounts", "\n".join(mounts))
    if not mounts:
        raise Failed("docker info says overlay2 but no overlay file system is mounted while `lim` runs")


def bind_and_volume(g: Guest) -> None:
    source = Path("/tmp/pyd-bind")
    source.mkdir(exist_ok=True)
    (source / "in").write_text("from the host\n")
    out = g.docker("run", "--rm", "-v", f"{source}:/b", "-v", "pydvol:/v", "busybox", "sh", "-c",
                   "cat /b/in && echo from-container > /b/out && echo kept > /v/f")
    if out != "from the host":
        raise Failed(f"the bind mount showed {out!r}")
    if not (source / "out").is_file() or (source / "out").read_text() != "from-container\n":
        raise Failed("a file written to the bind mount is not in its source folder")
    g.docker("volume", "inspect", "pydvol")
    again = g.docker("run", "--rm", "-v", "pydvol:/v", "busybox", "cat", "/v/f")
    if again != "kept":
        raise Failed(f"the named volume did not keep its file: {again!r}")


def daemon_restart(g: Guest) -> None:
    g.docker("run", "-d", "--name", "keep", "--restart", "always", "busybox", "sleep", "3600")
    g.stop_daemon()
    g.start_daemon()
    deadline = time.monotonic() + 60
    while True:
        state = g.docker("inspect", "-f", "{{.State.Running}} {{.RestartCount}}", "keep")
        if state.startswith("true"):
            break
        if time.monotonic() > deadline:
            raise Failed(f"after the daemon's restart, `keep` (--restart always) is not running: {state!r}")
        time.sleep(2)
    names = g.docker("ps", "--format", "{{.Names}}").split()
    if "keep" not in names:
        raise Failed(f"docker ps after the restart lists {names}")
    g.docker("exec", "keep", "true")
    code, out = _probe(g, "exec", "keep", major=_disk_major(g))     # started again by its policy
    if not _refused(code, out):
        raise Failed(f"after the daemon's restart, docker exec in `keep` could read the disk (exit {code})")


def seccomp(g: Guest) -> None:
    """Docker's default profile is loaded for this machine's architecture and refuses what it refuses
    (unshare: Docker's documented example); seccomp=unconfined loads none."""
    mode = g.docker("run", "--rm", "busybox", "grep", "^Seccomp:", "/proc/self/status").split()
    if mode != ["Seccomp:", "2"]:
        raise Failed(f"a default container's /proc/self/status says {mode} (want Seccomp: 2, a filter)")
    code, out = g.run(DOCKER, "run", "--rm", "busybox", "unshare", "-U", "true")
    if code == 0 or "Operation not permitted" not in out:
        raise Failed(f"unshare -U under the default profile exited {code}: {out.strip()[-300:]!r}")
    mode = g.docker("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "grep", "^Seccomp:",
                    "/proc/self/status").split()
    if mode != ["Seccomp:", "0"]:
        raise Failed(f"with seccomp=unconfined, /proc/self/status says {mode} (want Seccomp: 0)")


ESCAPE_PROBES = ("mount -t proc proc /mnt 2>/dev/null && echo escaped:mount; "
                 "(echo c > /proc/sysrq-trigger) 2>/dev/null && echo escaped:sysrq; "
                 "echo kcore=$(head -c 64 /proc/kcore 2>/dev/null | wc -c); "
                 "echo firmware=$(ls -A /sys/firmware 2>/dev/null | wc -l); "
                 "grep -q ' /sys sysfs ro[ ,]' /proc/mounts && echo sysfs=ro; "
                 "grep -q ' /proc/sys proc ro[ ,]' /proc/mounts && echo procsys=ro")


def escape_probes(g: Guest) -> None:
    """What a default container must not do to its host: mount, write sysrq, read kernel memory or the
    firmware tables, write to sysfs or /proc/sys."""
    out = g.docker("run", "--rm", "busybox", "sh", "-c", ESCAPE_PROBES).split()
    want = ["kcore=0", "firmware=0", "sysfs=ro", "procsys=ro"]
    if out != want:
        raise Failed(f"the escape probes printed {out} (want {want}: nothing escaped, masks and read-only "
                     "mounts in place)")


GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}
VARIANT = {"aarch64": "v8"}


def platform_arch(g: Guest) -> None:
    """The daemon says the machine it runs on, as dockerd does: uname's name in info, Go's in version,
    images (loaded, committed) and containers of this architecture."""
    machine = platform.machine()
    checks = {"info Architecture": (g.docker("info", "--format", "{{.Architecture}}"), machine),
              "version Server.Arch": (g.docker("version", "--format", "{{.Server.Arch}}"), GOARCH[machine]),
              "the loaded image": (g.docker("image", "inspect", "-f", "{{.Architecture}}", "busybox"),
                                   GOARCH[machine]),
              "uname -m in a container": (g.docker("run", "--name", "plat", "busybox", "uname", "-m"), machine)}
    g.docker("commit", "plat", "plat:committed")
    g.docker("rm", "plat")
    committed = g.docker("image", "inspect", "-f", "{{.Architecture}} {{.Os}} {{.Variant}}", "plat:committed")
    checks["a committed image"] = (committed.strip(), f"{GOARCH[machine]} linux {VARIANT.get(machine, '')}".strip())
    wrong = {what: f"{got!r} (want {want!r})" for what, (got, want) in checks.items() if got != want}
    if wrong:
        raise Failed(f"on {machine}: {wrong}")


STEPS: dict[str, Callable[[Guest], None]] = {
    "daemon-start": daemon_start, "load": load, "run-echo": run_echo, "limits": limits, "pause": pause,
    "stats": stats, "update": update, "device-probe": device_probe, "overlay2": overlay2,
    "bind-and-volume": bind_and_volume, "daemon-restart": daemon_restart, "seccomp": seccomp,
    "escape-probes": escape_probes, "platform": platform_arch,
}


def emit(out: TextIO, record: dict[str, object]) -> None:
    out.write(PREFIX + json.dumps(record) + "\n")
    out.flush()


def chosen() -> tuple[str, ...]:
    """The scenarios to run: pyd.scenarios=a,b on the kernel command line (a slow guest's short list), else
    all of them."""
    try:
        words = Path("/proc/cmdline").read_text().split()
    except OSError:
        words = []
    for word in words:
        if word.startswith("pyd.scenarios="):
            names = word.split("=", 1)[1].split(",")
            return tuple(name for name in SCENARIOS if name in names)
    return SCENARIOS


def main(argv: list[str]) -> int:
    results = open(argv[0] if argv else "/dev/stdout", "w", buffering=1)
    g = Guest()
    failed = 0
    for name in chosen():
        g.steps = []
        began = time.monotonic()
        error = ""
        try:
            STEPS[name](g)
        except Failed as e:
            error = str(e)
        except Exception as e:              # a bug in a scenario is still a result, not a silent guest
            error = f"{type(e).__name__}: {e}"
        failed += bool(error)
        emit(results, {"scenario": name, "ok": not error, "error": error, "steps": g.steps,
                       "seconds": round(time.monotonic() - began, 1)})
    g.steps = []
    try:
        g.stop_daemon()
    except Failed as e:
        g.note("stop", e)
    emit(results, {"done": True, "facts": g.facts, "daemon_log": log_tail(6000)})
    results.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
