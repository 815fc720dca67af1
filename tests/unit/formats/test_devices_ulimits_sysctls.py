"""pyd.formats.devices, .ulimits and .sysctls: the docker CLI's --device, --ulimit and --sysctl, and the
tables the daemon checks HostConfig against."""
from __future__ import annotations

import resource

import pytest

from pyd.formats.devices import parse_device, valid_permissions
from pyd.formats.sysctls import IPC_SYSCTLS, cli_allows
from pyd.formats.ulimits import RLIMITS, parse_ulimit


@pytest.mark.parametrize("text, host, inside, perms", [
    ("/dev/fuse", "/dev/fuse", "/dev/fuse", "rwm"),
    ("/dev/fuse:/dev/f", "/dev/fuse", "/dev/f", "rwm"),
    ("/dev/fuse:rw", "/dev/fuse", "/dev/fuse", "rw"),
    ("/dev/fuse:/dev/f:r", "/dev/fuse", "/dev/f", "r"),
    ("/dev/fuse:mrw", "/dev/fuse", "/dev/fuse", "mrw"),
    ("/dev/fuse:", "/dev/fuse", "", "rwm"),
    ("/dev/fuse:/dev/f:", "/dev/fuse", "/dev/f", ""),
])
def test_parse_device(text, host, inside, perms):
    assert parse_device(text) == {"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": perms}


def test_parse_device_refuses_four_fields():
    with pytest.raises(ValueError, match="^invalid device specification: /a:/b:r:x$"):
        parse_device("/a:/b:r:x")


def test_device_permissions():
    assert all(valid_permissions(p) for p in ("r", "w", "m", "rw", "rwm", "mwr", "rr"))
    assert not any(valid_permissions(p) for p in ("", "x", "rwx", "RW", " r"))


@pytest.mark.parametrize("text, name, soft, hard", [
    ("nofile=1024:2048", "nofile", 1024, 2048), ("nproc=512", "nproc", 512, 512), ("core=-1", "core", -1, -1),
    ("rtprio=0:0", "rtprio", 0, 0),
])
def test_parse_ulimit(text, name, soft, hard):
    assert parse_ulimit(text) == {"Name": name, "Soft": soft, "Hard": hard}


@pytest.mark.parametrize("text, message", [
    ("nofile", "invalid ulimit argument: nofile"), ("nofile=a", "invalid ulimit argument: nofile=a"),
    ("nofile=1:b", "invalid ulimit argument: nofile=1:b"), ("files=1", "invalid ulimit type: files"),
    ("nofile=5:2", "ulimit soft limit must be less than or equal to hard limit: 5 > 2"),
])
def test_parse_ulimit_errors_use_the_clis_words(text, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        parse_ulimit(text)


def test_rlimit_numbers_are_linuxs():
    for name, number in RLIMITS.items():
        const = getattr(resource, "RLIMIT_" + name.upper(), None)
        if const is not None:
            assert const == number, name
    assert sorted(RLIMITS.values()) == list(range(16))


def test_sysctl_whitelist():
    assert all(cli_allows(k) for k in ("net.ipv4.ip_forward", "fs.mqueue.msg_max", *IPC_SYSCTLS))
    assert not any(cli_allows(k) for k in ("kernel.hostname", "vm.swappiness", "kernel.domainname", "fs.file-max"))
