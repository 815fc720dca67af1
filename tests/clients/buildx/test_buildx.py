"""buildx 0.13 (Debian 13's docker-buildx, placed by scripts/install-cli-plugins.sh) with its default `docker`
driver: the builder, its worker and the build cache over /grpc, the session over /session."""
from __future__ import annotations

import platform
import re
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[3]
PLUGINS = ROOT / "build" / "cli-plugins"


@pytest.fixture(scope="session")
def cli_plugins() -> Path:
    if not (PLUGINS / "docker-buildx").exists():
        done = subprocess.run(["bash", str(ROOT / "scripts" / "install-cli-plugins.sh")], capture_output=True,
                              text=True, timeout=600)
        if done.returncode != 0:
            pytest.fail(f"scripts/install-cli-plugins.sh failed:\n{done.stdout}{done.stderr}", pytrace=False)
    return PLUGINS


@pytest.fixture(scope="module")
def buildx(daemon: Any, cli_plugins: Path) -> Callable[..., Any]:
    """`docker buildx ARGS` through the docker CLI, its config folder holding the plugins."""
    plugins = daemon.docker_config / "cli-plugins"
    plugins.mkdir(exist_ok=True)
    for name in ("docker-buildx", "docker-compose"):
        link = plugins / name
        if not link.exists():
            link.symlink_to(cli_plugins / name)

    def run(*args: str, timeout: float = 60) -> Any:
        return daemon.docker("buildx", *args, timeout=timeout,
                             env={"BUILDX_NO_DEFAULT_ATTESTATIONS": "1", "DOCKER_BUILDKIT": "1"})
    return run


ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())

DOCKERFILE = "FROM busybox:latest\nRUN echo one > /one\nRUN echo two > /two\n"


def test_ls_shows_the_default_builder_on_the_docker_driver(daemon, buildx):
    out = buildx("ls")
    assert out.returncode == 0, out.describe()
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["NAME/NODE", "DRIVER/ENDPOINT", "STATUS", "BUILDKIT", "PLATFORMS"], out.stdout
    assert lines[1].split() == ["default*", "docker"], out.stdout
    assert lines[2].split() == ["\\_", "default", "\\_", "default", "running", "v0.13.0-pyd", f"linux/{ARCH}"], out.stdout


def test_inspect_shows_the_worker(daemon, buildx):
    out = buildx("inspect")
    assert out.returncode == 0, out.describe()
    fields = dict(line.split(":", 1) for line in out.stdout.splitlines() if ":" in line and not line.startswith(" "))
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    assert fields["Name"] == "default" and fields["Driver"] == "docker", out.stdout
    assert fields["Status"] == "running" and fields["BuildKit version"] == "v0.13.0-pyd", out.stdout
    assert fields["Platforms"] == f"linux/{ARCH}", out.stdout
    assert "org.mobyproject.buildkit.worker.executor:" in out.stdout, out.stdout


def test_du_lists_the_classic_build_cache_and_prune_removes_it(daemon, busybox, buildx, tmp_path):
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    built = daemon.docker("build", "-q", str(tmp_path), timeout=120)    # untagged: all of it reclaimable
    assert built.returncode == 0, built.describe()
    out = buildx("du")
    assert out.returncode == 0, out.describe()
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["ID", "RECLAIMABLE", "SIZE", "LAST", "ACCESSED"], out.stdout
    rows = [l.split() for l in lines[1:] if l and not l.startswith(("Reclaimable", "Total"))]
    assert len(rows) == 2 and all(r[1] == "true" for r in rows), out.stdout
    assert any(l.startswith("Reclaimable:") for l in lines) and any(l.startswith("Total:") for l in lines)

    pruned = buildx("prune", "-f")
    assert pruned.returncode == 0, pruned.describe()
    assert {r[0] for r in rows} <= set(pruned.stdout.split()), pruned.stdout
    assert "Total:" in pruned.stdout, pruned.stdout
    after = buildx("du")
    assert after.returncode == 0, after.describe()
    assert not [l for l in after.stdout.splitlines()[1:] if l and not l.startswith(("Reclaimable", "Total"))]
    assert daemon.docker("images", "-aq", check=True).stdout.split() == \
        daemon.docker("images", "-q", "busybox", check=True).stdout.split()


def test_build_opens_a_session_and_solve_is_not_served_yet(daemon, buildx, tmp_path):
    """buildx opens its session (/session) and calls Solve and Status (/grpc): Solve finds the session by
    its ID, then answers UNIMPLEMENTED (running it is the next step), which buildx reports."""
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    since = daemon.log_size()
    out = buildx("build", str(tmp_path), timeout=120)
    assert out.returncode != 0
    assert "failed to solve: Unimplemented: pyd does not run BuildKit solves yet" in out.stderr, out.stderr
    log = daemon.log_text(since)
    opened = re.search(r"session (\w+) \(\w+\) open, exposing .*/grpc.health.v1.Health/Check", log)
    assert opened, log
    assert re.search(rf"solve \w+: frontend \S+, session {opened[1]} exposing", log), log
    assert f"session {opened[1]} closed" in log, log
