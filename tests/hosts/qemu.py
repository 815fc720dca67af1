"""Boot a guest image in qemu with no network device at all: the guest's own kernel and initrd, the cached
root image as /dev/vda (`-snapshot`: the guest's writes go to a temp file qemu deletes, never to the
cache), an inputs disk as /dev/vdb, the console on ttyS0 to a log file and the scenario results on
ttyS1 to another (an arm64 guest on qemu's virt machine: the console on its one UART, ttyAMA0, and the
results on the second port of a PCI 16550 card, which the kernel's 8250 driver names ttyS1). KVM is tried once per run for x86_64 guests; where it aborts (nested KVM on these machines) or the guest
dies early, the run falls back to TCG and stays there."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from vmimage import GuestImage

QEMU = "/usr/bin/qemu-system-x86_64"
MEMORY_MB = 2048
CPUS = 2
KVM_PROBE_TIMEOUT = 30.0
PREFIX = "PYD-HOSTS "
# the marker a kernel that booted as far as looking for its root prints before it panics
PROBE_MARKER = "Kernel panic"


@dataclass(frozen=True)
class Machine:
    """How qemu emulates one guest architecture: its binary, machine and CPU under TCG, the kernel's console
    and where the results port comes from."""
    qemu: str
    tcg_args: tuple[str, ...]
    console: str
    kvm: bool                         # the build machine's own architecture: KVM may be tried
    pci_results: bool                 # the results port is on a PCI serial card (no second UART)


MACHINES = {
    "amd64": Machine(QEMU, ("-cpu", "max"), "ttyS0", True, False),
    "arm64": Machine("/usr/bin/qemu-system-aarch64", ("-M", "virt", "-cpu", "cortex-a57"), "ttyAMA0", False, True),
}


@dataclass
class Boot:
    """What one guest run produced: the scenario records (by name), the closing record, the logs."""
    accel: str
    seconds: float
    exit_status: int | None           # None: killed at the timeout
    results: dict[str, dict] = field(default_factory=dict)
    closing: dict = field(default_factory=dict)
    console_tail: str = ""
    fatal: str = ""


class Accelerator:
    """Which accelerator this run uses: KVM if one probe boot gets through, TCG otherwise; asked once."""

    def __init__(self) -> None:
        self.choice: str | None = None
        self.reason = ""
        self._lock = threading.Lock()             # guests boot side by side; the probe runs once

    def get(self, image: GuestImage) -> str:
        if not MACHINES[image.arch].kvm:
            return "tcg"                          # another architecture: emulated, whatever KVM does
        with self._lock:
            if self.choice is None:
                self.choice, self.reason = _probe_kvm(image)
            return self.choice

    def fall_back(self, why: str) -> None:
        with self._lock:
            self.choice, self.reason = "tcg", why


def _accel_args(accel: str, machine: Machine) -> list[str]:
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg,thread=multi", *machine.tcg_args]


def _results_args(machine: Machine, results: Path) -> list[str]:
    if machine.pci_results:
        # two ports: the 8250 driver numbers them ttyS0 (unused) and ttyS1, where pyd-hosts-run writes
        return ["-chardev", "null,id=unused", "-chardev", f"file,id=results,path={results}",
                "-device", "pci-serial-2x,chardev1=unused,chardev2=results"]
    return ["-serial", f"file:{results}"]


def _base_args(accel: str, image: GuestImage, append: str, console: Path) -> list[str]:
    machine = MACHINES[image.arch]
    return [machine.qemu, *_accel_args(accel, machine), "-m", str(MEMORY_MB), "-smp", str(CPUS), "-nic", "none",
            "-display", "none", "-vga", "none", "-monitor", "none", "-no-reboot",
            "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", append,
            "-serial", f"file:{console}"]


def _stop(proc: subprocess.Popen[bytes]) -> int | None:
    """Kill the qemu we started (by its PID), if it still runs; its status, None when it had to be killed."""
    if proc.poll() is not None:
        return proc.returncode
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return None


def _probe_kvm(image: GuestImage) -> tuple[str, str]:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "no usable /dev/kvm"
    with tempfile.TemporaryDirectory(prefix="pyd-hosts-probe-") as tmp:
        console = Path(tmp) / "console.log"
        # No root disk: a kernel that runs properly gets as far as failing to mount its root and panics;
        # panic=-1 reboots, and -no-reboot turns that into qemu's exit.
        argv = _base_args("kvm", image, "console=ttyS0 panic=-1 root=/dev/nonexistent rootdelay=0 "
                          "rdinit=/nonexistent", console)
        argv.remove("-initrd")
        argv.remove(str(image.initrd))
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, err = proc.communicate(timeout=KVM_PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            _stop(proc)
            _, err = proc.communicate()
        text = console.read_text(errors="replace") if console.exists() else ""
        if proc.returncode == 0 and PROBE_MARKER in text:
            return "kvm", "a probe boot under KVM reached the kernel's root mount"
        why = err.decode(errors="replace").strip().splitlines()[-1:] or [f"no '{PROBE_MARKER}' on the console"]
        return "tcg", f"KVM probe failed (qemu status {proc.returncode}): {why[0]}"


def make_inputs_disk(files: dict[str, Path], out: Path) -> None:
    """An ext4 image holding `files` (name in the image -> source), made with `mke2fs -d` from a folder."""
    folder = out.parent / (out.name + ".d")
    folder.mkdir()
    size = 64 << 20
    for name, source in files.items():
        shutil.copy2(source, folder / name)
        size += source.stat().st_size
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "pyd-inputs", "-d", str(folder), str(out),
                    f"{size * 2 // 1024}k"], check=True, timeout=300, capture_output=True)
    shutil.rmtree(folder)


def parse_results(text: str, boot: Boot) -> None:
    for line in text.replace("\r", "").splitlines():
        start = line.find(PREFIX)
        if start < 0:
            continue
        try:
            record = json.loads(line[start + len(PREFIX):])
        except ValueError:
            continue
        if "scenario" in record:
            boot.results[record["scenario"]] = record
        elif record.get("done"):
            boot.closing = record
        elif "fatal" in record:
            boot.fatal = record["fatal"]


def boot(image: GuestImage, inputs: Path, init: str | None, accel: str, timeout: float, workdir: Path,
         cancel: threading.Event, scenarios: tuple[str, ...] | None = None) -> Boot:
    """Boot `image` with the inputs disk; return when the guest powers off, or at `timeout` or `cancel`
    (then qemu is killed). `scenarios`: only these run (on the kernel command line, pyd.scenarios=)."""
    console, results = workdir / f"console-{accel}.log", workdir / f"results-{accel}.log"
    machine = MACHINES[image.arch]
    append = f"root=/dev/vda rw console={machine.console} panic=-1 net.ifnames=0"
    if init:
        append += f" init={init}"
    if scenarios is not None:
        append += " pyd.scenarios=" + ",".join(scenarios)
    argv = _base_args(accel, image, append, console) + [
        *_results_args(machine, results), "-snapshot",
        "-drive", f"file={image.rootfs},if=virtio,format=raw",
        "-drive", f"file={inputs},if=virtio,format=raw,readonly=on"]
    env = {**os.environ, "TMPDIR": str(workdir)}       # where -snapshot puts its (unlinked) overlay
    began = time.monotonic()
    with open(workdir / f"qemu-{accel}.err", "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = began + timeout
            while proc.poll() is None and time.monotonic() < deadline and not cancel.is_set():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1.0)
        finally:
            status = _stop(proc)
    result = Boot(accel, time.monotonic() - began, status)
    if results.exists():
        parse_results(results.read_text(errors="replace"), result)
    text = console.read_text(errors="replace") if console.exists() else ""
    qemu_err = (workdir / f"qemu-{accel}.err").read_text(errors="replace")
    result.console_tail = (text[-6000:] + ("\n[qemu] " + qemu_err[-2000:] if qemu_err.strip() else ""))
    if status is None and not result.fatal:
        result.fatal = ("the run was stopped (qemu killed)" if cancel.is_set()
                        else f"the guest did not power off within {timeout:.0f}s (qemu killed)")
    return result
