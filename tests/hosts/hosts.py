"""The hosts the host tests boot: a Debian suite (its image), the init it boots with, its architecture
(qemu-system-x86_64 or, TCG only, qemu-system-aarch64) and, for the slow emulated ones, a short list of
scenarios."""
from __future__ import annotations

from dataclasses import dataclass

BARE_INIT = "/usr/local/sbin/pyd-hosts-init"
# Emulating arm64 on x86_64 is several times slower than an x86_64 guest (its scenarios take ~1 min under
# TCG): the daemon, an image, containers with limits and the default seccomp profile, the device filter,
# the escape probes, and the machine it says it is.
ARM64_SCENARIOS = ("daemon-start", "load", "run-echo", "limits", "seccomp", "device-probe", "escape-probes",
                   "platform")


@dataclass(frozen=True)
class Host:
    name: str
    suite: str
    init: str | None = None           # None: the image's own init (systemd)
    arch: str = "amd64"               # Debian's name for the guest's architecture
    scenarios: tuple[str, ...] | None = None      # None: every scenario

    def __post_init__(self) -> None:
        if self.arch != "amd64" and self.init is None:
            raise ValueError(f"{self.name}: another architecture's image has no systemd (vmimage.py): give an init")

    def __str__(self) -> str:
        return self.name


HOSTS = (
    Host("bookworm", "bookworm"),                         # Debian 12: kernel 6.1, CPython 3.11, systemd
    Host("trixie", "trixie"),                             # Debian 13: kernel 6.12, CPython 3.13, systemd
    Host("bookworm-bare", "bookworm", BARE_INIT),         # the bookworm image, a shell script as PID 1
    Host("bookworm-arm64", "bookworm", BARE_INIT, "arm64", ARM64_SCENARIOS),   # Debian 12 arm64, bare init
)
