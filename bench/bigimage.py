"""A docker-archive of a large image (one layer holding one file of random bytes), written in streaming
fashion so it never sits in memory; loaded into dockerd and pushed once to seed the loopback registry."""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

CHUNK = 1 << 20
EPOCH = 1700000000


class _Random(io.RawIOBase):
    """`size` random bytes as a readable file (what tarfile.addfile copies from)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return os.urandom(n)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_archive(out: Path, size: int, tag: str) -> None:
    """out: a docker-archive (manifest.json, config, layer.tar) of `tag` with a `size`-byte layer."""
    layer = out.with_suffix(".layer.tar")
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("big.bin")
        info.size, info.mtime, info.mode = size, EPOCH, 0o644
        tar.addfile(info, _Random(size))
    digest = hashlib.sha256()
    with layer.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    diff_id = "sha256:" + digest.hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z",
                         "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                         "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "bench"}]},
                        sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    layer_name = diff_id.split(":")[1] + "/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": [layer_name]}]).encode()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, config_name, config)
        info = tar.gettarinfo(str(layer), arcname=layer_name)
        info.mtime = EPOCH
        with layer.open("rb") as f:
            tar.addfile(info, f)
        _add_bytes(tar, "manifest.json", manifest)
    layer.unlink()
