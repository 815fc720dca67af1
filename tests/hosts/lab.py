"""A session of host tests: the inputs disk every guest of an architecture gets, the accelerator choice, and one run (image,
boot, results) per host."""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import qemu
import vmimage
from hosts import Host

# A guest under TCG boots in about a minute; the scenarios take a few more.
HOST_TIMEOUT = 900.0
# another architecture, emulated instruction by instruction: several times slower
EMULATED_TIMEOUT = 2700.0


@dataclass
class HostRun:
    host: Host
    image: vmimage.GuestImage | None
    boot: qemu.Boot | None
    seconds: float
    error: str = ""                   # the image or the boot could not be had at all

    def describe(self) -> str:
        if self.error:
            return self.error
        assert self.boot is not None
        return (f"accel {self.boot.accel}, qemu status {self.boot.exit_status}, {self.boot.seconds:.0f}s"
                + (f"; {self.boot.fatal}" if self.boot.fatal else ""))


class Lab:
    """The session's shared parts: the inputs disk, the accelerator choice, a temp folder, the runs.
    Images are built one after another in a background thread and each host boots as soon as its image
    is there, up to `parallel` guests at once: a guest under TCG leaves most of a core idle (timers,
    udev, sleeps), so booting them side by side costs far less than one after another. An emulated
    guest (another architecture) keeps its CPUs busy translating instructions: it boots after the
    others have finished, so that it neither slows them past their timeout nor is slowed itself."""

    def __init__(self, workdir: Path, inputs: dict[str, Path], runs: dict[str, HostRun], hosts: tuple[Host, ...],
                 parallel: int) -> None:
        self.workdir, self.inputs, self.runs = workdir, inputs, runs       # inputs: by architecture
        self.parallel = parallel
        self.accel = qemu.Accelerator()
        self._cancel = threading.Event()
        self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyd-hosts-image")
        self._booter = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="pyd-hosts-boot")
        self._images: dict[str, Future[vmimage.GuestImage]] = {}
        for host in hosts:
            label = vmimage.image_label(host.suite, host.arch)
            if label not in self._images:
                self._images[label] = self._builder.submit(vmimage.guest_image, host.suite, host.arch)
        self._emulator = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyd-hosts-emulated")
        self._boots = {host.name: self._booter.submit(self._run, host) for host in hosts
                       if qemu.MACHINES[host.arch].kvm}
        natives = list(self._boots.values())
        for host in hosts:
            if host.name not in self._boots:
                self._boots[host.name] = self._emulator.submit(self._run_after, natives, host)

    def close(self) -> None:
        """Stop what still runs (qemu killed by its PID, builds not yet begun dropped) and wait for it."""
        self._cancel.set()
        for future in [*self._boots.values(), *self._images.values()]:
            future.cancel()
        self._booter.shutdown(wait=True)
        self._emulator.shutdown(wait=True)
        self._builder.shutdown(wait=True)

    def run(self, host: Host) -> HostRun:
        """The host's run, waiting for it when it is still under way."""
        run = self._boots[host.name].result()
        self.runs[host.name] = run
        return run

    def _run_after(self, others: list[Future[HostRun]], host: Host) -> HostRun:
        wait(others)
        return self._run(host)

    def _run(self, host: Host) -> HostRun:
        began = time.monotonic()
        try:
            image = self._images[vmimage.image_label(host.suite, host.arch)].result()
        except Exception as e:                        # noqa: BLE001  (reported as every scenario's failure)
            return HostRun(host, None, None, time.monotonic() - began, f"no {host.suite} image: {e}")
        if self._cancel.is_set():
            return HostRun(host, image, None, 0.0, "the run was stopped before this host booted")
        began = time.monotonic()                      # a host's wall time is its boot, not the wait for its image
        folder = self.workdir / host.name
        folder.mkdir()
        accel = self.accel.get(image)
        inputs = self.inputs[host.arch]
        timeout = HOST_TIMEOUT if qemu.MACHINES[host.arch].kvm else EMULATED_TIMEOUT
        result = qemu.boot(image, inputs, host.init, accel, timeout, folder, self._cancel, host.scenarios)
        if accel == "kvm" and not result.results and not self._cancel.is_set():
            self.accel.fall_back(f"the {host.name} guest reported nothing under KVM ({result.fatal or 'exited'})")
            result = qemu.boot(image, inputs, host.init, "tcg", timeout, folder, self._cancel, host.scenarios)
        return HostRun(host, image, result, time.monotonic() - began)
