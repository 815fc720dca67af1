"""The cgroup v2 device filter in the real kernel: the program built from Docker's rules loads (the
verifier accepts it), attaches to a cgroup2 directory, and decides what a process in that cgroup may open.
On this cgroup v1 hybrid host the cgroup2 hierarchy is mounted at /sys/fs/cgroup/unified; programs
attached there are enforced as on a v2-only host."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyd.daemon.cgroups.devices import container_rules, compile_program
from pyd.daemon.runtime import native
from pyd.daemon.spec.security import DEFAULT_DEVICE_RULES

REPO = Path(__file__).resolve().parents[3]

PROBE = r"""
import json, os, sys
cgroup, tmp = sys.argv[1], sys.argv[2]
with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
    f.write(str(os.getpid()))
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as e:
        out[name] = e.errno
def mknod(path, kind, major, minor):
    os.mknod(path, 0o600 | kind, os.makedev(major, minor))
import stat
attempt("mknod_blk", lambda: mknod(os.path.join(tmp, "blk"), stat.S_IFBLK, 7, 0))
attempt("open_blk", lambda: os.close(os.open(os.path.join(tmp, "blk"), os.O_RDONLY)))
attempt("mknod_mem", lambda: mknod(os.path.join(tmp, "mem"), stat.S_IFCHR, 1, 1))
attempt("open_mem", lambda: os.close(os.open(os.path.join(tmp, "mem"), os.O_RDONLY)))
attempt("open_null", lambda: os.close(os.open("/dev/null", os.O_RDWR)))
attempt("open_tun", lambda: os.close(os.open("/dev/net/tun", os.O_RDWR)) if os.path.exists("/dev/net/tun") else None)
print(json.dumps(out))
"""


def cgroup2_root() -> Path:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2":
            return Path(fields[1])
    pytest.fail("no cgroup2 hierarchy mounted on this host (it needs one, v2 or hybrid)", pytrace=False)


@pytest.fixture
def cgroup(tmp_path: Path):
    path = cgroup2_root() / f"pyd-test-devices-{os.getpid()}-{tmp_path.name}"
    path.mkdir()
    try:
        yield path
    finally:
        path.rmdir()


def probe(cgroup: Path, tmp: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE, str(cgroup), str(tmp)], capture_output=True, text=True,
                       timeout=30, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def attach(cgroup: Path, privileged: bool) -> None:
    program = compile_program(container_rules(DEFAULT_DEVICE_RULES, [], [], privileged))
    prog = native.bpf_load_device_program(program)
    fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    try:
        native.bpf_attach_device_program(fd, prog)
        assert native.bpf_device_programs(fd) == 1
    finally:
        os.close(fd)
        os.close(prog)      # the attachment keeps the program alive


def test_docker_defaults_refuse_reading_a_host_disk(cgroup: Path, tmp_path: Path):
    attach(cgroup, privileged=False)
    seen = probe(cgroup, tmp_path)
    assert seen["mknod_blk"] == "ok"             # mknod of any node: Docker's "b *:* m"
    assert seen["open_blk"] == 1                 # EPERM: the node cannot be opened
    assert seen["mknod_mem"] == "ok" and seen["open_mem"] == 1
    assert seen["open_null"] == "ok"
    assert seen["open_tun"] == "ok"              # c 10:200 is in Docker's defaults


def test_privileged_may_open_any_device(cgroup: Path, tmp_path: Path):
    attach(cgroup, privileged=True)
    seen = probe(cgroup, tmp_path)
    assert seen["open_blk"] != 1                 # loop0 opens (or ENXIO without a loop device): not EPERM
    assert seen["open_mem"] != 1 and seen["open_null"] == "ok"


def test_a_second_attach_replaces_the_program(cgroup: Path, tmp_path: Path):
    attach(cgroup, privileged=True)
    attach(cgroup, privileged=False)             # docker update: the rules change in place
    seen = probe(cgroup, tmp_path)
    assert seen["open_blk"] == 1 and seen["open_null"] == "ok"


def test_without_a_program_the_node_opens(cgroup: Path, tmp_path: Path):
    # the control: on this host nothing else stops the probe (so the EPERMs above are the program's)
    seen = probe(cgroup, tmp_path)
    assert seen["open_blk"] != 1 and seen["open_mem"] != 1
