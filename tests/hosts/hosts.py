"""The hosts the host tests boot: a Debian suite (its image), and the init it boots with."""
from __future__ import annotations

from dataclasses import dataclass

BARE_INIT = "/usr/local/sbin/pyd-hosts-init"


@dataclass(frozen=True)
class Host:
    name: str
    suite: str
    init: str | None = None           # None: the image's own init (systemd)

    def __str__(self) -> str:
        return self.name


HOSTS = (
    Host("bookworm", "bookworm"),                         # Debian 12: kernel 6.1, CPython 3.11, systemd
    Host("trixie", "trixie"),                             # Debian 13: kernel 6.12, CPython 3.13, systemd
    Host("bookworm-bare", "bookworm", BARE_INIT),         # the bookworm image, a shell script as PID 1
)
