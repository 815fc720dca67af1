#!/usr/bin/env python3
"""docker-py's own integration suite (github:docker/docker-py, tests/integration) against `dist/pyd daemon`
or Debian's dockerd, offline: an outside measure of Engine API compatibility, not part of `make test`.

    python3 scripts/dockerpy_suite.py --api 1.47                  # pyd, docker-py's tests at 1.47
    python3 scripts/dockerpy_suite.py --daemon dockerd --api 1.41  # the baseline
    python3 scripts/dockerpy_suite.py --api 1.41 -- -k logs -x     # after --: more pytest arguments

What it does, each run from scratch except the cached checkout and virtualenv:
1. Checks docker-py's tests out of --source (a git repository or URL) at the tag of --docker-py (the
   version installed from PyPI, with its websockets extra, into a virtualenv beside it, with pytest,
   pytest-timeout and paramiko),
   under --scratch (default /var/tmp/dockerpy-suite; never inside this repository).
2. Starts the daemon on private paths (data-root, exec-root, socket, pidfile, cgroup parent) in a network
   namespace of its own, with loopback only, and loads the busybox image built by tests/kit/images.py from
   Debian's busybox-static, as busybox and, with alpine's postgres user and /var/opt, as alpine:3.10 and
   alpine:latest (the names the suite runs).
3. Runs the suite inside that namespace (published ports are reached on its loopback), leaving out what
   cannot work offline or is out of scope: swarm (and its services, secrets, configs, nodes), plugins,
   logins and credential stores, and every test that pulls from Docker Hub (found by reading the tests).
4. Writes junit XML and a summary (passed / failed / skipped, the failures by test file) to
   SCRATCH/results/<daemon>-<api>.{xml,txt}; prints the summary. Exit status 0 when the suite ran.
"""
from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "kit"))
import images  # noqa: E402  (tests/kit/images.py)
from hostkit import SBIN_PATH, NetNamespace, remove_cgroups, remove_tree, terminate, wait_answering  # noqa: E402

DOCKERD = "/usr/sbin/dockerd"
DOCKER_CLI = "/usr/local/bin/docker"
DEFAULT_SOURCE = "https://github.com/docker/docker-py.git"
# the image names the suite runs (TEST_IMG is alpine:3.10); busybox stands in for all of them, with alpine's
# postgres user and /var/opt under the alpine names
IMAGE_NAMES = ("alpine:3.10", "alpine:latest")
# out of scope or impossible offline, whole files
LEFT_OUT_FILES = {
    "api_swarm_test.py": "swarm", "api_service_test.py": "swarm", "api_secret_test.py": "swarm",
    "api_config_test.py": "swarm", "models_nodes_test.py": "swarm", "models_services_test.py": "swarm",
    "models_swarm_test.py": "swarm", "api_plugin_test.py": "plugins", "credentials": "credential stores",
}
# a test whose source says one of these is left out (Docker Hub pulls, swarm, plugins, logins)
LEFT_OUT_WORDS = {".pull(": "pulls from Docker Hub", "init_swarm(": "swarm", "plugin(": "plugins",
                  ".login(": "login"}


def alpine_stand_in() -> bytes:
    """busybox with what the suite's tests expect of alpine: a postgres user (exec -u) and /var/opt (exec -w)."""
    entries = [e for e in images.busybox_entries() if e.path not in ("etc/passwd", "etc/group")]
    entries += [images.file("etc/passwd", images.PASSWD + "postgres:x:70:70::/var/lib/postgresql:/bin/sh\n"),
                images.file("etc/group", images.GROUP + "postgres:x:70:\n"), images.directory("var/opt")]
    layer = images.tar_bytes(entries)
    return images.docker_archive([layer], images.image_config([layer], cmd=["sh"]), list(IMAGE_NAMES))


def sh(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, **kw)


# -- the suite and its virtualenv ------------------------------------------------------------------------

def checkout(source: str, version: str, scratch: Path) -> Path:
    """docker-py's tests at tag `version`: scratch/docker-py-<version>/tests (a bare clone is cached)."""
    dest = scratch / f"docker-py-{version}"
    if (dest / "tests" / "integration").is_dir():
        return dest
    src = Path(source)
    git_dir = src if src.is_dir() else scratch / "docker-py.git"
    if not src.is_dir() and not git_dir.exists():
        sh(["git", "clone", "--bare", "--quiet", source, str(git_dir)])
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", f"--git-dir={git_dir}", "archive", version, "tests", "pytest.ini"],
                             check=True, capture_output=True).stdout
    sh(["tar", "-x", "-C", str(dest)], input=archive)
    return dest


def virtualenv(version: str, scratch: Path) -> Path:
    """A virtualenv with docker==version from PyPI and what its tests import (the websockets extra for
    attach over a websocket); returns its python."""
    venv = scratch / f"venv-{version}-ws"
    python = venv / "bin" / "python"
    if not python.exists():
        sh([sys.executable, "-m", "venv", str(venv)])
        sh([str(python), "-m", "pip", "install", "-q", f"docker[websockets]=={version}", "pytest==7.4.2",
            "pytest-timeout==2.1.0", "paramiko"])
    return python


def left_out(suite: Path) -> tuple[list[str], list[str], Counter]:
    """(--ignore paths, --deselect node ids, reasons counted) for the suite under suite/tests/integration."""
    base = suite / "tests" / "integration"
    ignores = [str(base / name) for name in LEFT_OUT_FILES]
    reasons: Counter = Counter()
    deselect: list[str] = []
    for path in sorted(base.glob("*_test.py")):
        if path.name in LEFT_OUT_FILES:
            continue
        text = path.read_text()
        for node in ast.parse(text).body:
            members = node.body if isinstance(node, ast.ClassDef) else [node]
            for fn in members:
                if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or not fn.name.startswith("test"):
                    continue
                body = ast.get_source_segment(text, fn) or ""
                why = next((r for w, r in LEFT_OUT_WORDS.items() if w in body), None)
                if why:
                    prefix = f"{node.name}::" if isinstance(node, ast.ClassDef) else ""
                    deselect.append(f"tests/integration/{path.name}::{prefix}{fn.name}")
                    reasons[why] += 1
    return ignores, deselect, reasons


# -- the daemons -----------------------------------------------------------------------------------------

class Engine:
    """pyd or dockerd on private paths under `root`, in its own network namespace."""

    def __init__(self, kind: str, root: Path, pyd_bin: Path) -> None:
        self.kind, self.root, self.pyd_bin = kind, root, pyd_bin
        self.sock = str(root / f"{kind}.sock")
        self.cgroup_parent = f"dockerpy-suite-{root.name}"
        self.log_path = root / f"{kind}.log"
        self.netns = NetNamespace()
        self.proc: subprocess.Popen | None = None
        (root / "daemon.json").write_text("{}")
        (root / "cli").mkdir()
        # docker-py keeps contexts beside the config file it finds (else in the working directory)
        (root / "cli" / "config.json").write_text("{}")

    def command(self) -> list[str]:
        paths = ["--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                 "--pidfile", str(self.root / "daemon.pid"), "-H", f"unix://{self.sock}",
                 "--config-file", str(self.root / "daemon.json"), "--cgroup-parent", self.cgroup_parent]
        if self.kind == "pyd":
            return [str(self.pyd_bin), "daemon", "-D", *paths]
        return [DOCKERD, *paths, "--exec-opt", "native.cgroupdriver=cgroupfs", "--log-level", "warn"]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "PYD_", "SHIV_"))}
        return {**env, "PATH": SBIN_PATH, "SHIV_ROOT": str(self.root / "shiv")}

    def start(self, timeout: float = 60) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.netns.enter_argv() + self.command(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=self.root)
        if not wait_answering(self.proc, self.sock, timeout, 0.1):
            raise RuntimeError(f"{self.kind} did not start:\n{self.log_path.read_text()[-3000:]}")

    def docker(self, *args: str) -> None:
        env = {**self.env(), "DOCKER_HOST": f"unix://{self.sock}", "DOCKER_CONFIG": str(self.root / "cli")}
        sh([DOCKER_CLI, *args], env=env, stdout=subprocess.DEVNULL, timeout=300)

    def stop(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                env = {**self.env(), "DOCKER_HOST": f"unix://{self.sock}", "DOCKER_CONFIG": str(self.root / "cli")}
                ids = subprocess.run([DOCKER_CLI, "ps", "-aq"], env=env, capture_output=True, text=True,
                                     timeout=60).stdout.split()
                if ids:
                    subprocess.run([DOCKER_CLI, "rm", "-f", *ids], env=env, capture_output=True, timeout=300)
                terminate(self.proc)
        finally:
            remove_tree(self.root)
            remove_cgroups(self.cgroup_parent)
            self.netns.close()


# -- results ---------------------------------------------------------------------------------------------

def summarise(xml_path: Path, title: str) -> str:
    counts: Counter = Counter()
    failed: dict[str, list[str]] = {}
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
            failed.setdefault(case.get("classname", "").split(".")[2], []).append(name)
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    lines = [f"{title}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"]
    for module, names in sorted(failed.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"  {module}: {len(names)} failed")
        lines.extend(f"    {n.split('.', 3)[-1]}" for n in names)
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--daemon", choices=("pyd", "dockerd"), default="pyd")
    parser.add_argument("--api", default="1.47", help="DOCKER_TEST_API_VERSION (default 1.47)")
    parser.add_argument("--docker-py", default="7.2.0", help="docker-py's version: PyPI package and git tag")
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="docker-py's git repository (path or URL)")
    parser.add_argument("--scratch", type=Path, default=Path("/var/tmp/dockerpy-suite"))
    parser.add_argument("--pyd", type=Path, default=REPO / "dist" / "pyd", help="the pyd executable")
    parser.add_argument("--timeout", type=int, default=180, help="seconds per test")
    parser.add_argument("pytest_args", nargs="*", help="after --: more pytest arguments")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (namespaces, mounts)")
    if args.daemon == "pyd" and not args.pyd.exists():
        parser.error(f"{args.pyd} is missing: run `make build` first")
    scratch = args.scratch.resolve()
    if scratch.is_relative_to(REPO):
        parser.error("--scratch must be outside the repository")
    scratch.mkdir(parents=True, exist_ok=True)
    suite = checkout(args.source, args.docker_py, scratch)
    python = virtualenv(args.docker_py, scratch)
    ignores, deselect, reasons = left_out(suite)
    results = scratch / "results"
    results.mkdir(exist_ok=True)
    stem = results / f"{args.daemon}-{args.api}"

    engine = Engine(args.daemon, Path(tempfile.mkdtemp(prefix="dpys-", dir="/tmp")), args.pyd.resolve())
    try:
        engine.start()
        archive = engine.root / "busybox.tar"
        archive.write_bytes(images.busybox_archive())
        engine.docker("load", "-i", str(archive))
        archive.write_bytes(alpine_stand_in())
        engine.docker("load", "-i", str(archive))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "PYD_"))}
        env.update(DOCKER_HOST=f"unix://{engine.sock}", DOCKER_TEST_API_VERSION=args.api,
                   DOCKER_CONFIG=str(engine.root / "cli"), PATH=SBIN_PATH)
        pytest_argv = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--timeout={args.timeout}",
                       f"--junitxml={stem}.xml", *(f"--ignore={p}" for p in ignores),
                       *(f"--deselect={d}" for d in deselect), *args.pytest_args, "tests/integration"]
        print(f"left out: {', '.join(sorted(set(LEFT_OUT_FILES)))}; "
              f"{sum(reasons.values())} tests ({dict(reasons)})", flush=True)
        subprocess.run(engine.netns.enter_argv() + pytest_argv, cwd=suite, env=env)
    finally:
        log = engine.log_path.read_bytes() if engine.log_path.exists() else b""
        Path(f"{stem}.daemon.log").write_bytes(log)
        engine.stop()
    summary = summarise(Path(f"{stem}.xml"), f"docker-py {args.docker_py} suite, {args.daemon}, API {args.api}")
    Path(f"{stem}.txt").write_text(summary)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
