"""dist/pyd-aarch64, cross-built on this x86_64 machine: the same one file for 64-bit ARM. What can be
checked without an ARM CPU is checked here (every ELF inside is AArch64, execd is static, the wheels are
the aarch64 ones for every ABI the x86_64 file carries, the Python is the same); tests/hosts boots it on
an arm64 kernel."""
from __future__ import annotations

import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, PYD_DIST, _sources_newer_than

PYD_AARCH64 = REPO / "dist" / "pyd-aarch64"
MAX_SIZE = 6 * 1024 * 1024
EM_X86_64, EM_AARCH64 = 62, 183
PT_INTERP, PT_DYNAMIC = 3, 2


def elf_facts(data: bytes) -> tuple[int, set[int]]:
    """(e_machine, the program header types) of a 64-bit little-endian ELF."""
    assert data[:4] == b"\x7fELF", data[:4]
    assert data[4] == 2 and data[5] == 1, "not ELF64 little-endian"
    machine = struct.unpack_from("<H", data, 18)[0]
    phoff = struct.unpack_from("<Q", data, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    types = {struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)}
    return machine, types


@pytest.fixture(scope="module")
def aarch64_file() -> Path:
    """dist/pyd-aarch64 (`make test` builds it first; built here when missing or older than the sources)."""
    if not PYD_AARCH64.exists() or _sources_newer_than(PYD_AARCH64):
        subprocess.run([sys.executable, str(REPO / "build.py"), "--arch", "aarch64"], check=True, cwd=REPO)
    return PYD_AARCH64


def test_one_executable_file_under_6_mb(aarch64_file: Path) -> None:
    size = aarch64_file.stat().st_size
    assert size <= MAX_SIZE, f"dist/pyd-aarch64 is {size} bytes"
    assert aarch64_file.stat().st_mode & 0o111 == 0o111
    assert aarch64_file.read_bytes().split(b"\n", 1)[0].startswith(b"#!/usr/bin/python3")


def test_execd_is_a_static_aarch64_executable(aarch64_file: Path) -> None:
    with zipfile.ZipFile(aarch64_file) as archive:
        info = archive.getinfo("site-packages/pyd/execd")
        machine, segments = elf_facts(archive.read(info))
    assert machine == EM_AARCH64
    assert PT_INTERP not in segments and PT_DYNAMIC not in segments, "execd is not statically linked"
    assert (info.external_attr >> 16) & 0o111 == 0o111


def _extensions(path: Path) -> dict[str, int]:
    with zipfile.ZipFile(path) as archive:
        return {name.rsplit("/", 1)[-1]: elf_facts(archive.read(name))[0]
                for name in archive.namelist() if name.endswith(".so")}


def test_every_extension_module_is_aarch64_for_each_abi(aarch64_file: Path) -> None:
    modules = _extensions(aarch64_file)
    assert {m for m in modules.values()} == {EM_AARCH64}, modules
    for abi in ("311", "312", "313", "314"):
        assert f"_cffi_backend.cpython-{abi}-aarch64-linux-gnu.so" in modules
        assert f"loop.cpython-{abi}-aarch64-linux-gnu.so" in modules


def test_wheels_are_tagged_manylinux_aarch64(aarch64_file: Path) -> None:
    with zipfile.ZipFile(aarch64_file) as archive:
        wheels = {name: archive.read(name).decode() for name in archive.namelist()
                  if name.endswith(".dist-info/WHEEL") and name.split("/")[1].startswith(("cffi-", "uvloop-"))}
    assert len(wheels) == 2, sorted(wheels)
    for name, text in wheels.items():
        tags = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Tag:")]
        assert tags and all(t.endswith("aarch64") and "manylinux" in t for t in tags), (name, tags)


def test_same_abis_and_python_as_the_x86_64_file(aarch64_file: Path) -> None:
    if not PYD_DIST.exists() or _sources_newer_than(PYD_DIST):
        subprocess.run([sys.executable, str(REPO / "build.py")], check=True, cwd=REPO)
    x86 = _extensions(PYD_DIST)
    assert set(x86.values()) == {EM_X86_64}
    assert sorted(n.replace("x86_64", "aarch64") for n in x86) == sorted(_extensions(aarch64_file))
    with zipfile.ZipFile(PYD_DIST) as a, zipfile.ZipFile(aarch64_file) as b:
        sources = [n for n in a.namelist() if n.startswith("site-packages/pyd/") and n.endswith(".py")]
        assert sources
        different = [n for n in sources if a.read(n) != b.read(n)]
    assert not different, different
