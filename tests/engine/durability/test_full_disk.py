"""A data root on a small tmpfs: a gzip bomb (a small archive whose layer unpacks to far more than the
free space) stops at the first byte past the free space, with the full disk's message and no traceback,
leaving no layer and no temp file; then the daemon loads a good image as before."""
from __future__ import annotations

import gzip
import os
import subprocess

import pytest

from engine.registry.test_hostile_pull import layer_dirs, layer_records
from runtime.storage.tarkit import add_file, docker_archive, make_tar

pytestmark = pytest.mark.slow

TMPFS = 48 << 20


def _bomb(uncompressed: int) -> bytes:
    """A layer tar of one file of zeros, gzipped in pieces (never whole in memory)."""
    import io
    import tarfile
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        info = tarfile.TarInfo("zeros")
        info.size = uncompressed
        gz.write(info.tobuf(format=tarfile.PAX_FORMAT))
        block = b"\0" * (1 << 20)
        for _ in range(uncompressed >> 20):
            gz.write(block)
        gz.write(b"\0" * 1024)
    return out.getvalue()


@pytest.fixture
def small_daemon(make_daemon):
    d = make_daemon(start=False)
    d.data_root.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS}", "pyd-test-full", str(d.data_root)], check=True)
    return d.start()


def test_a_gzip_bomb_stops_at_the_free_space(small_daemon, tmp_path):
    d = small_daemon
    archive = tmp_path / "bomb.tar"
    archive.write_bytes(docker_archive([_bomb(512 << 20)], ["bomb:1"]))
    assert archive.stat().st_size < (2 << 20)
    dirs, records = layer_dirs(d), layer_records(d)
    r = d.pyd("load", "-i", str(archive), timeout=120)
    assert r.returncode != 0 and "no space left on device" in r.stderr, r.describe()
    assert "Traceback" not in d.log_text()
    assert layer_dirs(d) == dirs and layer_records(d) == records
    assert os.listdir(d.data_root / "tmp") == []
    good = tmp_path / "good.tar"
    good.write_bytes(docker_archive([make_tar(lambda t: add_file(t, "ok", b"ok"))], ["good:1"]))
    assert "Loaded image: good:1" in d.pyd("load", "-i", str(good), check=True).stdout
