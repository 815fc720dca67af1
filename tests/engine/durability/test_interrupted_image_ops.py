"""kill -9 of the daemon in the middle of a load, a pull and a build: after the restart the data root is
back to its size before the operation (start-up repair removes the layers the interrupted operation
registered, its read-write scratch layers and everything in data/tmp), and the daemon logs no traceback."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from engine.registry.test_hostile_pull import layer_dirs, layer_records, put_image, tree_bytes
from runtime.storage.tarkit import add_file, docker_archive, make_tar

pytestmark = pytest.mark.slow

BIG = 48 << 20
WAIT = 60


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _state(d) -> tuple[set, set, list]:
    return layer_dirs(d), layer_records(d), sorted(os.listdir(d.data_root / "tmp"))


def _tmp_bytes(d) -> int:
    return tree_bytes(d.data_root / "tmp")


def _restart_and_check(d, before: tuple, size_before: int) -> None:
    d.kill9()
    d.start()
    after = _state(d)
    print(f"\ninterrupted: layers left {len(after[1] - before[1])}, temp entries left {len(after[2])}, "
          f"data root {tree_bytes(d.data_root) - size_before:+d} bytes")
    assert after == before, "the interrupted operation left layers or temp files"
    # the layers' bytes are back too (a little slack for the metadata the daemon itself rewrites)
    assert abs(tree_bytes(d.data_root) - size_before) < (2 << 20), (tree_bytes(d.data_root), size_before)
    assert "Traceback" not in d.log_text()


@pytest.fixture
def d(make_daemon, busybox_rootfs_tar):
    daemon = make_daemon()
    daemon.import_image(busybox_rootfs_tar, "busybox")
    return daemon


def test_kill_during_load(d, tmp_path):
    small = make_tar(lambda t: add_file(t, "first", b"1"))
    big = make_tar(lambda t: add_file(t, "big", os.urandom(BIG)))
    archive = tmp_path / "big.tar"
    archive.write_bytes(docker_archive([small, big], ["interrupted:load"]))
    before, size_before = _state(d), tree_bytes(d.data_root)
    proc = subprocess.Popen([str(d.pyd_bin), "-H", d.host, "load", "-i", str(archive)], env=d.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:   # the first layer registered, the second on its way
        _wait_for(lambda: len(layer_records(d)) > len(before[1]), "the first layer")
        _restart_and_check(d, before, size_before)
    finally:
        proc.kill()
        proc.wait()


def test_kill_during_pull(d, make_registry):
    registry = make_registry(d)
    put_image(registry, "interrupted/pull", "1",
              [make_tar(lambda t: add_file(t, "first", b"1")), make_tar(lambda t: add_file(t, "big", os.urandom(BIG)))])
    before, size_before = _state(d), tree_bytes(d.data_root)
    proc = subprocess.Popen([str(d.pyd_bin), "-H", d.host, "pull", f"{registry}/interrupted/pull:1"], env=d.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: len(layer_records(d)) > len(before[1]) and _tmp_bytes(d) > (4 << 20),
                  "a layer applied and the big blob on its way")
        _restart_and_check(d, before, size_before)
    finally:
        proc.kill()
        proc.wait()


def test_kill_during_build(d, tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "big").write_bytes(os.urandom(BIG))
    (context / "Dockerfile").write_text("FROM busybox\nCOPY big /big\n")
    before, size_before = _state(d), tree_bytes(d.data_root)
    proc = subprocess.Popen([str(d.pyd_bin), "-H", d.host, "build", "-t", "interrupted:build", str(context)],
                            env=d.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mounts = next((d.data_root / "image").glob("*/layerdb/mounts"))
    try:   # the COPY on its way into the builder's scratch layer, the context in data/tmp
        _wait_for(lambda: any(p.name.startswith("build-") for p in mounts.iterdir()), "the COPY's scratch layer")
        _restart_and_check(d, before, size_before)
    finally:
        proc.kill()
        proc.wait()
