"""The shipped artefact: dist/pyd is one small executable file that runs on Debian's /usr/bin/python3."""
from __future__ import annotations

import os
import stat
import subprocess
import zipfile
from pathlib import Path

MAX_SIZE = 6 * 1024 * 1024   # with the compiled modules of four CPython ABIs


def run_pyd(pyd_bin: Path, shiv_root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "PYD_"))}
    return subprocess.run([str(pyd_bin), *args], capture_output=True, text=True, timeout=60,
                          env={**env, "SHIV_ROOT": str(shiv_root)}, stdin=subprocess.DEVNULL)


def test_one_executable_file_under_6_mb(pyd_bin: Path) -> None:
    st = pyd_bin.stat()
    assert stat.S_ISREG(st.st_mode)
    assert st.st_mode & 0o111 == 0o111
    assert st.st_size <= MAX_SIZE, f"dist/pyd is {st.st_size} bytes"


def test_runs_on_debian_python(pyd_bin: Path) -> None:
    first_line = pyd_bin.read_bytes().split(b"\n", 1)[0]
    assert first_line.startswith(b"#!/usr/bin/python3"), first_line


def test_embeds_an_executable_execd(pyd_bin: Path) -> None:
    with zipfile.ZipFile(pyd_bin) as archive:
        info = archive.getinfo("site-packages/pyd/execd")
        head = archive.read(info)[:4]
    assert head == b"\x7fELF"
    assert (info.external_attr >> 16) & 0o111 == 0o111


def test_help_works(pyd_bin: Path, shiv_root: Path) -> None:
    result = run_pyd(pyd_bin, shiv_root, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout or "usage" in result.stdout


def test_help_works_again_once_extracted(pyd_bin: Path, shiv_root: Path) -> None:
    # the second start takes the fast path (no shiv bootstrap): it must behave the same
    first = run_pyd(pyd_bin, shiv_root, "--help")
    second = run_pyd(pyd_bin, shiv_root, "--help")
    assert (first.returncode, first.stdout) == (second.returncode, second.stdout)


def test_version_without_a_daemon_says_it_cannot_connect(pyd_bin: Path, shiv_root: Path, tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/missing.sock"
    result = run_pyd(pyd_bin, shiv_root, "-H", host, "version")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"Cannot connect to the pyd daemon at {host}. Is the pyd daemon running?" in result.stderr


def test_read_only_home_unpacks_beside_the_data_root(pyd_bin: Path, tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    subprocess.run(["mount", "--bind", str(home), str(home)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(home)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "PYD_", "SHIV_"))}
        result = subprocess.run([str(pyd_bin), "daemon", "--data-root", str(data), "--help"], capture_output=True,
                                text=True, timeout=120, env={**env, "HOME": str(home)}, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr
        assert "Usage:\tpyd daemon" in result.stdout
        assert not os.listdir(home)
        unpacked = list((data / "shiv").glob("pyd_*/site-packages/pyd/__main__.py"))
        assert len(unpacked) == 1, sorted(p.name for p in (data / "shiv").iterdir())
    finally:
        subprocess.run(["umount", str(home)], check=True)


def test_debug_log_says_where_the_file_unpacked(make_daemon, shiv_root: Path) -> None:
    d = make_daemon()
    assert f"unpacked at {shiv_root}/pyd_" in d.log_text()
