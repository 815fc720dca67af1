"""Fixtures for the host tests: one VM boot per host per session, shared by that host's scenarios, and a
closing table (scenario × host: pass/FAIL) with each host's kernel, python, cgroup and storage facts and
wall time. Everything made for a run lives in one temp folder under /var/tmp, removed at the end."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import qemu  # noqa: E402
from hosts import HOSTS  # noqa: E402
from lab import HostRun, Lab  # noqa: E402
from scenarios import SCENARIOS  # noqa: E402

REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import foreign_debs  # noqa: E402  (scripts/foreign_debs.py)

DOCKER_CLI = Path("/usr/local/bin/docker")
RUNS = pytest.StashKey[dict]()
LAB = pytest.StashKey[Lab]()
# PYD_HOSTS=bookworm-arm64,trixie: boot only these (the others' tests are skipped); by default every host
_DEFAULT = ",".join(h.name for h in HOSTS)
SELECTED = tuple(h for h in HOSTS if h.name in os.environ.get("PYD_HOSTS", _DEFAULT).split(","))
# guests booted at once (PYD_HOSTS_PARALLEL=1: one after another); an emulated one boots after them (lab.py)
PARALLEL = max(1, int(os.environ.get("PYD_HOSTS_PARALLEL", sum(qemu.MACHINES[h.arch].kvm for h in SELECTED) or 1)))
# Another architecture's guest gets its own file (dist/pyd-ARCH), docker CLI and busybox, the last two
# from Debian's packages of that architecture (unpacked under build/ by scripts/foreign_debs.py).
FOREIGN = {"arm64": ("aarch64", "usr/bin/docker", "bin/busybox")}


def _stale(built: Path) -> bool:
    if not built.exists():
        return True
    sources = [REPO / "build.py", *(REPO / "pyd").rglob("*.py"), *(REPO / "execd").glob("*")]
    return any(p.stat().st_mtime > built.stat().st_mtime for p in sources)


def _inputs_disk(arch: str, workdir: Path, pyd_bin: Path) -> Path:
    """The inputs disk of `arch`'s guests: pyd, the docker CLI, the busybox archive, the scenarios."""
    archive = workdir / f"busybox-{arch}.tar"
    if arch in FOREIGN:
        machine, docker_path, busybox_path = FOREIGN[arch]
        pyd = REPO / "dist" / f"pyd-{machine}"
        if _stale(pyd):
            subprocess.run([sys.executable, str(REPO / "build.py"), "--arch", machine], check=True, cwd=REPO)
        root = foreign_debs.sysroot(arch, REPO / "build", ["docker.io", "busybox-static"])
        docker, extra = root / docker_path, ["--arch", arch, "--busybox", str(root / busybox_path)]
    else:
        pyd, docker, extra = pyd_bin, DOCKER_CLI, []
    subprocess.run([sys.executable, str(REPO / "tests/kit/images.py"), "archive", str(archive), *extra],
                   check=True, timeout=300)
    inputs = workdir / f"inputs-{arch}.img"
    qemu.make_inputs_disk({"pyd": pyd, "docker": docker, "busybox.tar": archive,
                           "scenarios.py": HERE / "scenarios.py"}, inputs)
    archive.unlink()
    return inputs


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest, pyd_bin: Path) -> Iterator[Lab]:
    """The inputs disk (dist/pyd, built by pyd_bin when stale; the docker CLI; the busybox archive; the
    scenarios) in a temp folder under /var/tmp that goes at the end, and the guests booting from it."""
    if not DOCKER_CLI.is_file():
        pytest.fail(f"no docker CLI at {DOCKER_CLI} to copy into the guests (see README, Requirements)")
    workdir = Path(tempfile.mkdtemp(prefix="pyd-hosts-run-", dir="/var/tmp"))
    try:
        inputs = {arch: _inputs_disk(arch, workdir, pyd_bin) for arch in sorted({h.arch for h in SELECTED})}
        lab = Lab(workdir, inputs, request.config.stash.setdefault(RUNS, {}), SELECTED, PARALLEL)
        request.config.stash[LAB] = lab
        try:
            yield lab
        finally:
            lab.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module", params=HOSTS, ids=str)
def host_run(request: pytest.FixtureRequest, lab: Lab) -> HostRun:
    """The host's one boot: made by its first scenario's test, read by the others."""
    if request.param not in SELECTED:
        pytest.skip(f"{request.param} is not in PYD_HOSTS")
    return lab.runs.get(request.param.name) or lab.run(request.param)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    runs: dict[str, HostRun] = config.stash.get(RUNS, {})
    if not runs:
        return
    write = terminalreporter.write_line
    terminalreporter.section("pyd on real hosts")
    names = [h.name for h in HOSTS if h.name in runs]
    width = max(len(s) for s in SCENARIOS) + 2
    write("scenario".ljust(width) + "".join(n.ljust(16) for n in names))
    for scenario in SCENARIOS:
        cells = []
        for name in names:
            boot = runs[name].boot
            record = boot.results.get(scenario) if boot else None
            cells.append("-" if record is None else "pass" if record["ok"] else "FAIL")
        write(scenario.ljust(width) + "".join(c.ljust(16) for c in cells))
    write("")
    for name in names:
        run = runs[name]
        facts = run.boot.closing.get("facts", {}) if run.boot else {}
        built = f", image built in {run.image.build_seconds:.0f}s" if run.image and run.image.build_seconds else ""
        scenarios = sum(r.get("seconds", 0) for r in run.boot.results.values()) if run.boot else 0
        write(f"{name}: {run.seconds:.0f}s wall ({scenarios:.0f}s of scenarios){built}; {run.describe()}")
        if facts:
            write(f"    kernel {facts.get('kernel')}, python {facts.get('python')}, init {facts.get('init')}, "
                  f"cgroup {facts.get('cgroup_driver')}/v{facts.get('cgroup_version')}, storage "
                  f"{facts.get('storage_driver')} on {facts.get('backing_filesystem')}")
            for warning in facts.get("warnings") or []:
                write(f"    warning: {warning}")
    lab = config.stash.get(LAB, None)
    if lab is not None:
        write(f"accelerator: {lab.accel.choice} ({lab.accel.reason}); up to {lab.parallel} guests at once")
