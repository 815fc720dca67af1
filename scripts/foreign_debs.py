#!/usr/bin/env python3
"""Debian packages of another architecture, fetched and unpacked into a private folder without touching
the host's apt state (no `dpkg --add-architecture`, no host package lists): apt-get runs with its own
state, cache and sources under CACHE/apt-ARCH/, and each .deb is unpacked with `dpkg-deb -x` into
CACHE/root-ARCH/ (a sysroot: headers, static libraries, binaries to copy).

    python3 scripts/foreign_debs.py arm64 build libseccomp-dev busybox-static   # prints the sysroot

A package set fetched once is reused (no network) by later builds.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def _apt_options(state: Path, arch: str) -> list[str]:
    return ["-o", f"Dir::State={state / 'state'}", "-o", f"Dir::State::status={state / 'status'}",
            "-o", f"Dir::Cache={state / 'cache'}", "-o", f"Dir::Etc::SourceList={state / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/dev/null", "-o", f"APT::Architecture={arch}",
            "-o", f"APT::Architectures={arch}", "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root", "-q"]


def _apt(arch: str, cache: Path) -> tuple[Path, list[str]]:
    """The private apt state for `arch` under CACHE (made, with its package lists, the first time)."""
    state = cache / f"apt-{arch}"
    for folder in (state / "state" / "lists" / "partial", state / "cache" / "archives" / "partial"):
        folder.mkdir(parents=True, exist_ok=True)
    (state / "status").touch()
    (state / "sources.list").write_text(f"deb [signed-by={KEYRING}] {MIRROR} {SUITE} main\n")
    options = _apt_options(state, arch)
    if not any((state / "state" / "lists").glob("*Packages*")):
        subprocess.run(["apt-get", *options, "update"], check=True)
    return state, options


def depends(arch: str, cache: Path, package: str) -> list[str]:
    """The packages `package` depends on (names only): what a metapackage such as linux-image-arm64
    stands for today."""
    _, options = _apt(arch, cache)
    out = subprocess.run(["apt-cache", *options, "show", "--no-all-versions", package], check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("Depends:"):
            return [alt.split("|")[0].split()[0] for alt in line[len("Depends:"):].split(",")]
    return []


def sysroot(arch: str, cache: Path, packages: list[str]) -> Path:
    """CACHE/root-ARCH with `packages` unpacked into it (each once: a stamp file per package)."""
    root = cache / f"root-{arch}"
    stamps = root / ".debs"
    missing = [p for p in packages if not (stamps / p).exists()]
    if not missing:
        return root
    stamps.mkdir(parents=True, exist_ok=True)
    state, options = _apt(arch, cache)
    debs = state / "debs"
    debs.mkdir(exist_ok=True)
    if subprocess.run(["apt-get", *options, "download", *missing], cwd=debs).returncode != 0:
        # lists fetched long ago may name versions the mirror no longer has
        subprocess.run(["apt-get", *options, "update"], check=True)
        subprocess.run(["apt-get", *options, "download", *missing], check=True, cwd=debs)
    for package in missing:
        found = sorted(debs.glob(f"{package}_*_{arch}.deb")) or sorted(debs.glob(f"{package}_*_all.deb"))
        if not found:
            raise SystemExit(f"foreign_debs: apt-get download {package} left no .deb in {debs}")
        subprocess.run(["dpkg-deb", "-x", str(found[-1]), str(root)], check=True)
        (stamps / package).write_text(found[-1].name + "\n")
    return root


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    print(sysroot(sys.argv[1], Path(sys.argv[2]).resolve(), sys.argv[3:]))
