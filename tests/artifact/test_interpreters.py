"""The one file on every CPython a host may have as python3 (3.11 to 3.14): the daemon starts, runs a
container and serves its client under each interpreter found on this machine."""
from __future__ import annotations

import glob
import shutil
import zipfile
from pathlib import Path

import pytest

VERSIONS = ("3.11", "3.12", "3.13", "3.14")


def find_python(version: str) -> str | None:
    """Debian's /usr/bin/python3.X, else a pyenv build, else one on PATH (not pyenv's shim: it refuses
    versions that are not selected)."""
    for candidate in (f"/usr/bin/python{version}",
                      *sorted(glob.glob(f"/root/.pyenv/versions/{version}.*/bin/python{version}")),
                      shutil.which(f"python{version}")):
        if candidate and Path(candidate).is_file() and "/shims/" not in candidate:
            return candidate
    return None


@pytest.mark.parametrize("version", VERSIONS)
def test_the_file_carries_the_compiled_modules_for(pyd_bin: Path, version: str) -> None:
    tag = "cpython-" + version.replace(".", "")
    with zipfile.ZipFile(pyd_bin) as archive:
        names = archive.namelist()
    assert f"site-packages/_cffi_backend.{tag}-x86_64-linux-gnu.so" in names
    assert f"site-packages/uvloop/loop.{tag}-x86_64-linux-gnu.so" in names


@pytest.mark.slow
@pytest.mark.parametrize("version", VERSIONS)
def test_daemon_and_client_run_a_container_under(make_daemon, busybox_rootfs_tar: Path, version: str) -> None:
    python = find_python(version)
    if python is None:
        pytest.skip(f"no CPython {version} on this machine")
    d = make_daemon(python=python)
    info = d.pyd("info", "--format", "{{.OperatingSystem}}", check=True)
    assert info.stdout.strip()
    d.import_image(busybox_rootfs_tar, "busybox")
    r = d.pyd("run", "--rm", "busybox", "sh", "-c", "echo hello from $(cat /proc/1/comm)", check=True)
    assert r.stdout == "hello from sh\n"
    r = d.pyd("run", "--rm", "busybox", "sh", "-c", "exit 3")
    assert r.returncode == 3
    # the daemon really runs under that interpreter, with the cffi backend of its own ABI loaded
    exe = Path(f"/proc/{d.pid}/exe").resolve()
    assert exe.name.startswith("python") and Path(python).resolve() == exe
    maps = Path(f"/proc/{d.pid}/maps").read_text()
    tag = f"cpython-{version.replace('.', '')}-x86_64-linux-gnu.so"
    assert f"_cffi_backend.{tag}" in maps and f"uvloop/loop.{tag}" in maps
