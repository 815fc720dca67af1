"""Test images built from scratch: a busybox root filesystem from Debian's busybox-static, layer tars and
docker-archive files (what `docker save` writes and `docker load` reads). Deterministic: the same input
gives the same bytes, so image IDs are stable across runs.

    python3 tests/kit/images.py rootfs OUT.tar            # rootfs tar for `pyd import OUT.tar busybox`
    python3 tests/kit/images.py archive OUT.tar [TAG]     # docker-archive for `pyd load -i OUT.tar`
    python3 tests/kit/images.py archive OUT.tar [TAG] --arch arm64 --busybox PATH   # another machine's
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

BUSYBOX = "/bin/busybox"
# Listing another architecture's busybox applets runs it under Debian's qemu-user-static (no binfmt needed:
# busybox-static is one static binary).
QEMU_USER = {"arm64": "qemu-aarch64-static"}
# the variant Docker records for each architecture that has one
VARIANT = {"arm64": "v8"}
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# A fixed time keeps tars and configs byte-identical between runs.
EPOCH = 1700000000
CREATED = "2023-11-14T22:13:20Z"

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
GROUP = "root:x:0:\nnobody:x:65534:\n"


@dataclass(frozen=True)
class Entry:
    """One member of a layer tar. kind: "file", "dir", "symlink" or "hardlink" (target for the last two)."""
    path: str
    kind: str = "file"
    data: bytes = b""
    mode: int | None = None
    target: str = ""
    uid: int = 0
    gid: int = 0


def file(path: str, data: bytes | str, mode: int = 0o644) -> Entry:
    return Entry(path, "file", data.encode() if isinstance(data, str) else data, mode)


def directory(path: str, mode: int = 0o755) -> Entry:
    return Entry(path, "dir", mode=mode)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, "symlink", target=target)


def whiteout(path: str) -> Entry:
    """An AUFS-style whiteout (what Docker layers use): deletes `path` from the layers below."""
    parent, name = os.path.split(path.strip("/"))
    return file(os.path.join(parent, ".wh." + name), b"", 0o644)


def opaque_dir(path: str) -> Entry:
    """Marks `path` opaque: the layers below contribute nothing to it."""
    return file(os.path.join(path.strip("/"), ".wh..wh..opq"), b"", 0o644)


def _tarinfo(entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path.strip("/") or ".")
    info.mtime, info.uid, info.gid = EPOCH, entry.uid, entry.gid
    info.uname = info.gname = "root" if entry.uid == 0 else ""
    kinds = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}
    info.type = kinds[entry.kind]
    default_mode = {"dir": 0o755, "symlink": 0o777}.get(entry.kind, 0o644)
    info.mode = default_mode if entry.mode is None else entry.mode
    info.linkname = entry.target
    info.size = len(entry.data) if entry.kind == "file" else 0
    return info


def tar_bytes(entries: list[Entry]) -> bytes:
    """A tar of `entries` in the given order (parents before children is the caller's job)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = _tarinfo(entry)
            tar.addfile(info, io.BytesIO(entry.data) if entry.kind == "file" else None)
    return out.getvalue()


def busybox_applets(busybox: str = BUSYBOX, arch: str = "amd64") -> list[str]:
    runner = [QEMU_USER[arch]] if arch in QEMU_USER else []
    listed = subprocess.run([*runner, busybox, "--list"], check=True, capture_output=True, text=True).stdout.split()
    return sorted(set(listed) - {"busybox"})


def busybox_entries(busybox: str = BUSYBOX, arch: str = "amd64") -> list[Entry]:
    """A minimal busybox root filesystem: /bin/busybox plus a symlink per applet, users, empty dirs."""
    entries = [directory(d) for d in ("bin", "dev", "etc", "home", "proc", "sys", "var")]
    entries += [directory("root", 0o700), directory("tmp", 0o1777)]
    entries.append(file("bin/busybox", Path(busybox).read_bytes(), 0o755))
    entries += [symlink(f"bin/{applet}", "busybox") for applet in busybox_applets(busybox, arch)]
    entries += [file("etc/passwd", PASSWD), file("etc/group", GROUP)]
    return entries


def busybox_rootfs(busybox: str = BUSYBOX, arch: str = "amd64") -> bytes:
    return tar_bytes(busybox_entries(busybox, arch))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_config(layers: list[bytes], cmd: list[str] | None = None, env: list[str] | None = None,
                 architecture: str = "amd64", **config: object) -> dict:
    """An image config (application/vnd.docker.container.image.v1+json) for `layers`, bottom first."""
    container_config: dict = {"Env": env if env is not None else [DEFAULT_PATH], **config}
    if cmd is not None:
        container_config["Cmd"] = cmd
    platform = {"architecture": architecture, "os": "linux"}
    if architecture in VARIANT:
        platform["variant"] = VARIANT[architecture]
    return {
        **platform, "created": CREATED,
        "config": container_config,
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]},
        "history": [{"created": CREATED, "created_by": f"pyd tests: layer {i}"} for i in range(len(layers))],
    }


def docker_archive(layers: list[bytes], config: dict, repo_tags: list[str]) -> bytes:
    """A docker-archive tar (manifest.json, <config>.json, <layer>/layer.tar) as `docker save` wrote it
    before OCI layouts; every Docker since 1.10 loads it."""
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_name = sha256(config_bytes).split(":")[1] + ".json"
    entries, layer_paths = [], []
    for layer in layers:
        folder = sha256(layer).split(":")[1]
        entries += [directory(folder), file(f"{folder}/VERSION", "1.0"), file(f"{folder}/layer.tar", layer)]
        layer_paths.append(f"{folder}/layer.tar")
    manifest = [{"Config": config_name, "RepoTags": repo_tags, "Layers": layer_paths}]
    entries += [file(config_name, config_bytes), file("manifest.json", json.dumps(manifest))]
    return tar_bytes(entries)


def busybox_archive(tag: str = "busybox:latest", busybox: str = BUSYBOX, arch: str = "amd64") -> bytes:
    """The busybox image as a docker-archive: one layer, Cmd ["sh"], Env PATH (like Docker Hub's)."""
    layer = busybox_rootfs(busybox, arch)
    return docker_archive([layer], image_config([layer], cmd=["sh"], architecture=arch), [tag])


def image_id(config: dict) -> str:
    """The ID Docker gives an image loaded from `docker_archive(..., config, ...)`."""
    return sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode())


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "rootfs":
        Path(argv[1]).write_bytes(busybox_rootfs())
    elif len(argv) >= 2 and argv[0] == "archive":
        options = {"--arch": "amd64", "--busybox": BUSYBOX}
        rest = argv[2:]
        for name in options:
            if name in rest:
                at = rest.index(name)
                options[name] = rest[at + 1]
                del rest[at:at + 2]
        Path(argv[1]).write_bytes(busybox_archive(*rest[:1], busybox=options["--busybox"], arch=options["--arch"]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
