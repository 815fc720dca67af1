"""A session of host tests: the inputs disk every guest gets, the accelerator choice, and one run (image,
boot, results) per host."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import qemu
import vmimage
from hosts import Host

# A guest under TCG boots in about a minute; the scenarios take a few more.
HOST_TIMEOUT = 900.0


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
    """The session's shared parts: the inputs disk, the accelerator choice, a temp folder, the runs."""

    def __init__(self, workdir: Path, inputs: Path, runs: dict[str, HostRun]) -> None:
        self.workdir, self.inputs, self.runs = workdir, inputs, runs
        self.accel = qemu.Accelerator()

    def run(self, host: Host) -> HostRun:
        began = time.monotonic()
        try:
            image = vmimage.guest_image(host.suite)
        except Exception as e:                        # noqa: BLE001  (reported as every scenario's failure)
            run = HostRun(host, None, None, time.monotonic() - began, f"no {host.suite} image: {e}")
            self.runs[host.name] = run
            return run
        folder = self.workdir / host.name
        folder.mkdir()
        accel = self.accel.get(image)
        result = qemu.boot(image, self.inputs, host.init, accel, HOST_TIMEOUT, folder)
        if accel == "kvm" and not result.results:
            self.accel.fall_back(f"the {host.name} guest reported nothing under KVM ({result.fatal or 'exited'})")
            result = qemu.boot(image, self.inputs, host.init, "tcg", HOST_TIMEOUT, folder)
        run = HostRun(host, image, result, time.monotonic() - began)
        self.runs[host.name] = run
        return run
