"""Layer tars and image archives built with tarfile, for the storage tests."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from typing import Callable, Iterator

MTIME = 1_700_000_000
BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "ls", "cat", "echo", "true"]


def add_file(tar: tarfile.TarFile, name: str, data: bytes = b"", mode: int = 0o644, **kw) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, MTIME
    for k, v in kw.items():
        setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, MTIME
    tar.addfile(info)


def add_link(tar: tarfile.TarFile, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = kind, target, MTIME
    tar.addfile(info)


def make_tar(build: Callable[[tarfile.TarFile], object], gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    return buf.getvalue()


def busybox_entries(tar: tarfile.TarFile) -> None:
    add_dir(tar, "bin")
    with open(BUSYBOX, "rb") as f:
        add_file(tar, "bin/busybox", f.read(), 0o755)
    for applet in APPLETS:
        add_link(tar, f"bin/{applet}", "busybox")
    add_dir(tar, "etc")
    add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    add_dir(tar, "tmp", 0o1777)


def chunks(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def docker_archive(layers: list[bytes], tags: list[str], gzip_layers: frozenset[int] = frozenset()) -> bytes:
    """A `docker save`-style archive (legacy <id>/layer.tar paths)."""
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
              "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    paths = []

    def build(tar: tarfile.TarFile) -> None:
        add_file(tar, config_name, config_bytes)
        for i, layer in enumerate(layers):
            d = f"{i:064x}"
            add_dir(tar, d)
            add_file(tar, f"{d}/layer.tar", gzip.compress(layer) if i in gzip_layers else layer)
            paths.append(f"{d}/layer.tar")
        add_file(tar, "manifest.json", json.dumps([{"Config": config_name, "RepoTags": tags,
                                                     "Layers": paths}]).encode())
    return make_tar(build)


def tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def files_under(top: str) -> list[str]:
    """Every non-directory under `top` (symlinks not followed), relative to it."""
    out = []
    for dirpath, _dirs, files in os.walk(top):
        out.extend(os.path.relpath(os.path.join(dirpath, f), top) for f in files)
    return sorted(out)


def mounts_under(root: str) -> list[str]:
    """Mount points at or below `root`."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split()[4].replace("\\040", " ")
            if target == root or target.startswith(root + "/"):
                out.append(target)
    return out
