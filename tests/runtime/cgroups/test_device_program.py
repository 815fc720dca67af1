"""The cgroup v2 device filter in the real kernel: the program built from Docker's rules loads (the
verifier accepts it), attaches to a cgroup2 directory, and decides what a process in that cgroup may open.
On this cgroup v1 hybrid host the cgroup2 hierarchy is mounted at /sys/fs/cgroup/unified; programs
attached there are enforced as on a v2-only host, so the cgroup v2 driver itself (CgroupsV2 rooted at that
mount) is exercised here: create, update and a second create (a restart) keep exactly one filter."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pyd.daemon.cgroups import device_filter
from pyd.daemon.cgroups.devices import container_rules
from pyd.daemon.cgroups.v2 import CgroupsV2
from pyd.daemon.errors import BadParameter
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
    device_filter.install(str(cgroup), container_rules(DEFAULT_DEVICE_RULES, [], [], privileged))
    assert len(device_filter.attached(str(cgroup))) == 1


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


def test_a_second_install_replaces_the_program(cgroup: Path, tmp_path: Path):
    attach(cgroup, privileged=True)
    first = device_filter.attached(str(cgroup))
    attach(cgroup, privileged=False)             # replaced, not stacked: one program, a new one
    assert device_filter.attached(str(cgroup)) != first
    seen = probe(cgroup, tmp_path)
    assert seen["open_blk"] == 1 and seen["open_null"] == "ok"


def test_without_a_program_the_node_opens(cgroup: Path, tmp_path: Path):
    # the control: on this host nothing else stops the probe (so the EPERMs above are the program's)
    seen = probe(cgroup, tmp_path)
    assert seen["open_blk"] != 1 and seen["open_mem"] != 1


# ---- the cgroup v2 driver: what container start, docker update and a restart do to the filter

@pytest.fixture
def driver(tmp_path: Path):
    parent = f"pyd-test-v2-{os.getpid()}-{tmp_path.name}"
    cg = CgroupsV2(parent, root=str(cgroup2_root()))
    made: list[str] = []
    yield cg, made
    for cid in made:
        cg.remove(cid, {})
    if (cgroup2_root() / parent).exists():
        (cgroup2_root() / parent).rmdir()


def start(driver, cid: str, hc: dict) -> Path:
    cg, made = driver
    made.append(cid)
    cg.create(cid, hc)
    return Path(cg.dirs(cid, hc)["unified"])


def test_container_cgroup_gets_dockers_default_filter(driver, tmp_path: Path):
    path = start(driver, "c1", {})
    assert len(device_filter.attached(str(path))) == 1
    seen = probe(path, tmp_path)
    assert seen["mknod_blk"] == "ok" and seen["open_blk"] == 1 and seen["open_mem"] == 1
    assert seen["open_null"] == "ok"


def test_device_and_cgroup_rule_are_allowed(driver, tmp_path: Path):
    host_node = tmp_path / "host-mem"            # the host's c 1:1 (this host has no /dev/mem)
    os.mknod(host_node, 0o600 | stat.S_IFCHR, os.makedev(1, 1))
    hc = {"Devices": [{"PathOnHost": str(host_node), "PathInContainer": "/dev/mem", "CgroupPermissions": "r"}],
          "DeviceCgroupRules": ["b 7:* rw"]}
    seen = probe(start(driver, "c2", hc), tmp_path)
    assert seen["open_mem"] != 1                 # --device <c 1:1>:/dev/mem:r: not EPERM (ENXIO: no driver)
    assert seen["open_blk"] != 1                 # --device-cgroup-rule 'b 7:* rw': loop devices


def test_privileged_container_opens_any_device(driver, tmp_path: Path):
    seen = probe(start(driver, "c3", {"Privileged": True}), tmp_path)
    assert seen["open_blk"] != 1 and seen["open_mem"] != 1


def test_update_and_a_second_start_keep_one_filter(driver, tmp_path: Path):
    cg, _ = driver
    path = start(driver, "c4", {})
    cg.apply("c4", {"Memory": 100 * 1024 * 1024, "PidsLimit": 10})   # docker update
    assert len(device_filter.attached(str(path))) == 1
    start(driver, "c4", {})                      # the cgroup survived (kill -9 of the daemon): start again
    assert len(device_filter.attached(str(path))) == 1
    assert probe(path, tmp_path)["open_blk"] == 1


def test_a_malformed_cgroup_rule_is_refused_before_anything_is_made(driver):
    cg, _ = driver
    with pytest.raises(BadParameter, match="invalid device cgroup rule format: 'b 7 rw'"):
        cg.create("c5", {"DeviceCgroupRules": ["b 7 rw"]})
    assert not os.path.exists(cg.dirs("c5", {})["unified"])
