"""A host port a container already publishes is refused to the next one with dockerd's words, which
scripts grep for; the port is free again once the first container stops."""
from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_port_already_allocated(daemon, busybox):
    port = free_port()
    first = daemon.docker("run", "-d", "-p", f"{port}:80", busybox, "sleep", "300", check=True).stdout.strip()
    try:
        r = daemon.docker("run", "-d", "--name", "pc-second", "-p", f"{port}:80", busybox, "sleep", "300")
        assert r.returncode == 125
        assert ("driver failed programming external connectivity on endpoint pc-second "
                in r.stderr and f"Bind for 0.0.0.0:{port} failed: port is already allocated" in r.stderr), r.stderr
        daemon.docker("stop", "-t", "0", first, check=True)
        daemon.docker("start", "pc-second", check=True)
    finally:
        daemon.docker("rm", "-f", first, "pc-second")
