"""Hostile images through `docker pull` from a registry on 127.0.0.1, and what failed image operations
leave behind.

A pull that fails ends with the error in the progress stream (docker prints it, not `unexpected EOF`),
registers no layer (the layers it had applied before the failure go again), and leaves nothing in
data/tmp; a 1,000-deep layer pulls and runs. The blobs and manifests are put into the registry over
its HTTP API, byte for byte as written here (a client would refuse to push them)."""
from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
from pathlib import Path

import pytest

from runtime.storage.tarkit import add_dir, add_file, make_tar

pytestmark = pytest.mark.slow

MT_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


class _NetnsHTTP(http.client.HTTPConnection):
    def __init__(self, registry) -> None:
        super().__init__(registry.addr, timeout=30)
        self._registry = registry

    def connect(self) -> None:
        self.sock = self._registry.daemon.netns.socket()
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", self._registry.port))


def _call(registry, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> http.client.HTTPResponse:
    conn = _NetnsHTTP(registry)
    conn.request(method, path, body, headers or {})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def put_blob(registry, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    resp = _call(registry, "POST", f"/v2/{repo}/blobs/uploads/")
    assert resp.status == 202, resp.status
    location = resp.getheader("Location")
    location = location.split(registry.addr, 1)[-1]
    sep = "&" if "?" in location else "?"
    resp = _call(registry, "PUT", f"{location}{sep}digest={digest}", data,
                 {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))})
    assert resp.status == 201, resp.status
    return digest


def put_image(registry, repo: str, tag: str, layers: list[bytes], declared_sizes: list[int] | None = None) -> None:
    """Layers (plain tars) gzipped as blobs, a config with their diff IDs, the manifest, tagged."""
    blobs = [gzip.compress(layer, 1) for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers",
                                    "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in layers]}}).encode()
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                "config": {"mediaType": MT_CONFIG, "size": len(config), "digest": put_blob(registry, repo, config)},
                "layers": [{"mediaType": MT_LAYER, "size": (declared_sizes or [len(b) for b in blobs])[i],
                            "digest": put_blob(registry, repo, b)} for i, b in enumerate(blobs)]}
    resp = _call(registry, "PUT", f"/v2/{repo}/manifests/{tag}", json.dumps(manifest).encode(),
                 {"Content-Type": MT_MANIFEST})
    assert resp.status == 201, resp.status


def layer_dirs(d) -> set[str]:
    home = d.data_root / "overlay2"
    if not home.exists():
        home = d.data_root / "vfs" / "dir"
    return {p.name for p in home.iterdir() if p.name != "l"}


def layer_records(d) -> set[str]:
    return {p.name for p in (d.data_root / "image").glob("*/layerdb/sha256/*")}


def tree_bytes(top: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def _deep(depth: int) -> bytes:
    return make_tar(lambda t: add_file(t, "d/" * depth + "bottom", b"deep\n"))


GOOD = make_tar(lambda t: add_file(t, "good", b"good\n"))
PULL_REFUSED = {
    "whiteout-dotdot": ([GOOD, make_tar(lambda t: (add_dir(t, "sub"), add_file(t, "sub/.wh...")))],
                        None, "invalid whiteout 'sub/.wh...'"),
    "dotdot": ([GOOD, make_tar(lambda t: add_file(t, "a/../../x", b"evil"))], None, "invalid member 'a/../../x'"),
    "deeper-than-a-path": ([GOOD, _deep(2100)], None, "File name too long"),
    "blob-bigger-than-declared": ([GOOD, make_tar(lambda t: add_file(t, "big", os.urandom(300_000)))],
                                  "shrink", "more than the"),
}


@pytest.fixture(scope="module")
def base(daemon, busybox):
    daemon.pyd("run", "-d", "--name", "keep", busybox, "sleep", "1000", check=True)
    yield busybox
    daemon.pyd("rm", "-f", "keep")


@pytest.mark.parametrize("case", list(PULL_REFUSED))
def test_a_refused_pull_says_why_in_the_stream_and_leaves_nothing(daemon, registry, base, case):
    layers, declared, message = PULL_REFUSED[case]
    repo = f"hostile/{case}"
    sizes = None
    if declared == "shrink":
        sizes = [len(gzip.compress(GOOD, 1)), 1000]
    put_image(registry, repo, "1", layers, sizes)
    dirs, records, began = layer_dirs(daemon), layer_records(daemon), daemon.log_size()
    r = daemon.docker("pull", f"{registry}/{repo}:1", timeout=120)
    assert r.returncode != 0, r.describe()
    assert message in r.stderr and "unexpected EOF" not in r.stderr, r.describe()
    assert layer_dirs(daemon) == dirs and layer_records(daemon) == records, "a layer of the failed pull stayed"
    assert os.listdir(daemon.data_root / "tmp") == []
    assert "Traceback" not in daemon.log_text(began)
    assert daemon.pyd("exec", "keep", "true").returncode == 0


def test_a_1000_deep_layer_pulls_and_runs(daemon, registry, base):
    put_image(registry, "hostile/deep", "1", [GOOD, _deep(1000)])
    r = daemon.docker("pull", f"{registry}/hostile/deep:1", timeout=120)
    assert r.returncode == 0, r.describe()
    daemon.pyd("rmi", f"{registry}/hostile/deep:1", check=True)


def test_failed_load_and_import_register_no_layer(daemon, base, tmp_path):
    from runtime.storage.tarkit import docker_archive
    bad = make_tar(lambda t: (add_dir(t, "sub"), add_file(t, "sub/.wh...")))
    archive = tmp_path / "two.tar"
    archive.write_bytes(docker_archive([make_tar(lambda t: add_file(t, "first", b"1")), bad], ["hostile:two"]))
    dirs, records = layer_dirs(daemon), layer_records(daemon)
    r = daemon.docker("load", "-i", str(archive))
    assert r.returncode != 0 and "invalid whiteout" in r.stderr, r.describe()
    assert layer_dirs(daemon) == dirs and layer_records(daemon) == records
    assert os.listdir(daemon.data_root / "tmp") == []
