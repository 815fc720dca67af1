"""Fixtures for end-to-end tests: the built dist/pyd, test images, daemons in their own network namespaces,
and a registry. Every fixture cleans up what it made (processes by PID, mounts, temp dirs), pass or fail.

    def test_hello(daemon, busybox):
        r = daemon.pyd("run", "--rm", busybox, "echo", "hello")
        assert r.returncode == 0 and r.stdout == "hello\n"
        assert daemon.docker("run", "--rm", busybox, "echo", "hi").stdout == "hi\n"
        assert daemon.api.containers.run(busybox, ["echo", "x"], remove=True) == b"x\n"

A test that needs its own daemon (restarts, flags, daemon.json) uses `make_daemon`.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "kit"))
import images  # noqa: E402  (tests/kit/images.py)
from hostkit import (  # noqa: E402,F401  (the clean-up kit, shared with bench/; re-exported for tests)
    CLONE_NEWNET, MNT_DETACH, SBIN_PATH, NetNamespace, kill_processes_under, mounts_under, remove_cgroups,
    remove_tree, socket_in_netns, unmount_under, _http_status, answers_ping, wait_answering,
)

REPO = Path(__file__).resolve().parent.parent
PYD_DIST = REPO / "dist" / "pyd"
DOCKER_CLI = "/usr/local/bin/docker"
DOCKER_REGISTRY = "/usr/bin/docker-registry"
API_VERSION = "1.47"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
LOG_TAIL = 100_000           # characters of daemon log shown with a failed test

LIVE_DAEMONS = pytest.StashKey[set]()       # daemons running now, to show their logs when a test fails
LOG_OFFSETS = pytest.StashKey[dict]()       # per test: where each daemon's log stood when it began


# ---------------------------------------------------------------------------------------------------------
# command results

class Result(subprocess.CompletedProcess):
    """A finished command: stdout/stderr as text (undecodable bytes kept with surrogateescape), the raw
    bytes as stdout_bytes/stderr_bytes."""

    def __init__(self, args: list[str], returncode: int, out: bytes, err: bytes) -> None:
        text_out, text_err = out.decode(errors="surrogateescape"), err.decode(errors="surrogateescape")
        super().__init__(args, returncode, text_out, text_err)
        self.stdout_bytes, self.stderr_bytes = out, err

    def describe(self) -> str:
        command = " ".join(map(str, self.args))
        return f"$ {command}\nexit {self.returncode}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


def run_command(argv: list[str], input: bytes | str | None = None, check: bool = False, timeout: float = 60,
                env: dict[str, str] | None = None, cwd: str | None = None) -> Result:
    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run(argv, input=data, stdin=None if data is not None else subprocess.DEVNULL,
                          capture_output=True, timeout=timeout, env=env, cwd=cwd)
    result = Result(argv, proc.returncode, proc.stdout, proc.stderr)
    if check and result.returncode != 0:
        raise AssertionError(f"command failed\n{result.describe()}")
    return result


# ---------------------------------------------------------------------------------------------------------
# the daemon under test

class Daemon:
    """`pyd daemon` on its own data-root, exec-root, socket, pidfile and network namespace, all under
    `root` (a fresh temp dir). The log (-D) goes to `log_path` and is shown when a test fails."""

    def __init__(self, pyd_bin: Path, root: Path, shiv_root: Path, args: tuple[str, ...] = (),
                 config: dict | None = None, python: str | None = None) -> None:
        self.pyd_bin, self.root, self.shiv_root = Path(pyd_bin), Path(root), Path(shiv_root)
        # another interpreter than the file's #! line runs both the daemon and its clients (as `python -IS pyd`)
        self.launcher = [python, "-IS"] if python else []
        self.args = list(args)
        self.data_root, self.exec_root = self.root / "data", self.root / "exec"
        self.pidfile = self.root / "pyd.pid"
        self.sock = str(self.root / "pyd.sock")          # a str: socket.connect() takes no Path
        self.log_path, self.config_file = self.root / "daemon.log", self.root / "daemon.json"
        self.docker_config = self.root / "docker-config"
        self.docker_config.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(json.dumps(config or {}))
        self.host = f"unix://{self.sock}"
        self.netns = NetNamespace()
        self.proc: subprocess.Popen | None = None
        self._api: Any = None

    # -- life cycle -------------------------------------------------------------------------------------
    def command(self) -> list[str]:
        return [*self.launcher, str(self.pyd_bin), "daemon", "-D", "--data-root", str(self.data_root),
                "--exec-root", str(self.exec_root), "--pidfile", str(self.pidfile), "-H", self.host,
                "--config-file", str(self.config_file), "--cgroup-parent", self.cgroup_parent, *self.args]

    @property
    def cgroup_parent(self) -> str:
        """Each test daemon's containers go under their own parent cgroup, removed at clean-up."""
        return self.root.name

    def env(self) -> dict[str, str]:
        """The environment of every pyd process: SHIV_ROOT keeps the session's extraction out of ~/.shiv;
        PYD_TEST_ROOT marks the daemon and what it spawns, so clean-up can find them."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "PYD_"))}
        return {**env, "PATH": SBIN_PATH, "SHIV_ROOT": str(self.shiv_root), "PYD_TEST_ROOT": str(self.root)}

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> Daemon:
        """Start the daemon and wait until GET /_ping answers; fail the test with the log if it doesn't."""
        assert not self.running, "daemon already running"
        with self.log_path.open("ab") as log:
            log.write(f"===== pyd test: starting {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.netns.enter_argv() + self.command(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=self.root)
        if not wait_answering(self.proc, self.sock, timeout):
            if self.proc.poll() is not None:
                pytest.fail(f"pyd daemon exited with {self.proc.returncode} before answering /_ping\n"
                            f"{self.log_text()[-LOG_TAIL:]}", pytrace=False)
            pytest.fail(f"pyd daemon did not answer /_ping within {timeout:.0f} s\n"
                        f"{self.log_text()[-LOG_TAIL:]}", pytrace=False)
        return self

    def ping(self) -> bool:
        return answers_ping(self.sock)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM by PID, wait up to `timeout`, then SIGKILL. Returns the exit status (None: not started)."""
        self._close_api()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill9(self) -> None:
        """SIGKILL the daemon (a crash): containers and their execd go on."""
        self._close_api()
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self, timeout: float = START_TIMEOUT) -> Daemon:
        self.stop()
        return self.start(timeout)

    def cleanup(self) -> None:
        """Stop the daemon, kill every process it left (execd, containers), unmount, remove the tree."""
        try:
            self.stop()
        finally:
            remove_tree(self.root)
            remove_cgroups(self.cgroup_parent)
            self.netns.close()

    # -- clients ----------------------------------------------------------------------------------------
    def pyd(self, *args: str, input: bytes | str | None = None, check: bool = False, timeout: float = 60,
            env: dict[str, str] | None = None) -> Result:
        """Run `dist/pyd -H unix://SOCK ARGS...` (a client command)."""
        return run_command([*self.launcher, str(self.pyd_bin), "-H", self.host, *map(str, args)], input, check,
                           timeout,
                           {**self.env(), **(env or {})})

    def docker(self, *args: str, input: bytes | str | None = None, check: bool = False, timeout: float = 60,
               env: dict[str, str] | None = None) -> Result:
        """Run the real docker CLI against this daemon, with an empty config dir (not the user's)."""
        if not os.access(DOCKER_CLI, os.X_OK):
            pytest.fail(f"this test needs the docker CLI at {DOCKER_CLI} (see README: Requirements)", pytrace=False)
        base = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        base.update(DOCKER_HOST=self.host, DOCKER_BUILDKIT="0", DOCKER_CONFIG=str(self.docker_config),
                    DOCKER_CLI_HINTS="false")
        return run_command([DOCKER_CLI, *map(str, args)], input, check, timeout, {**base, **(env or {})})

    @property
    def api(self) -> Any:
        """A docker-py client (docker.DockerClient) on this daemon, API version 1.47."""
        if self._api is None:
            import docker
            self._api = docker.DockerClient(base_url=self.host, version=API_VERSION, timeout=60)
        return self._api

    def _close_api(self) -> None:
        if self._api is not None:
            with contextlib.suppress(Exception):
                self._api.close()
            self._api = None

    def netns_run(self, *argv: str, input: bytes | str | None = None, check: bool = False,
                  timeout: float = 60) -> Result:
        """Run a host command in the daemon's network namespace (to reach published ports, the registry)."""
        return run_command(self.netns.enter_argv() + list(map(str, argv)), input, check, timeout,
                           {**os.environ, "PATH": SBIN_PATH})

    def import_image(self, rootfs_tar: Path, ref: str) -> str:
        self.pyd("import", str(rootfs_tar), ref, check=True, timeout=120)
        return ref if ":" in ref.rsplit("/", 1)[-1] else f"{ref}:latest"

    # -- logs -------------------------------------------------------------------------------------------
    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_text(self, since: int = 0) -> str:
        """The daemon's log (stdout and stderr of every start), from byte offset `since`."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")

    def __repr__(self) -> str:
        return f"<Daemon {self.host} pid={self.pid}>"


class Registry:
    """Debian's docker-registry (distribution v2) serving on 127.0.0.1:PORT inside a daemon's network
    namespace (where that daemon pulls and pushes), storage under the daemon's temp dir.
    str(registry) is "127.0.0.1:PORT", so f"{registry}/busybox:1" is an image name. With `htpasswd` (a
    file made by `htpasswd -B`) it wants HTTP basic auth."""

    def __init__(self, daemon: Daemon, name: str = "registry", htpasswd: Path | None = None) -> None:
        if not os.access(DOCKER_REGISTRY, os.X_OK):
            pytest.fail(f"this test needs {DOCKER_REGISTRY} (apt-get install docker-registry)", pytrace=False)
        self.daemon = daemon
        self.root = daemon.root / name
        self.root.mkdir(parents=True)
        self.port = daemon.netns.free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.log_path = self.root / "registry.log"
        config = self.root / "config.yml"
        auth = f"auth:\n  htpasswd:\n    realm: pyd-test\n    path: {htpasswd}\n" if htpasswd else ""
        config.write_text(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'storage'}\n  delete:\n    enabled: true\n"
            f"{auth}http:\n  addr: {self.addr}\n")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(daemon.netns.enter_argv() + [DOCKER_REGISTRY, "serve", str(config)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.status("/v2/") not in (200, 401):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"docker-registry did not start on {self.addr}:\n{self.log_path.read_text()}",
                            pytrace=False)
            time.sleep(0.05)

    def status(self, path: str) -> int:
        """HTTP status of GET path on the registry (from inside the daemon's namespace)."""
        try:
            with self.daemon.netns.socket() as s:
                s.settimeout(2)
                s.connect(("127.0.0.1", self.port))
                return _http_status(s, path, self.addr)
        except OSError:
            return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __str__(self) -> str:
        return self.addr

    def __format__(self, spec: str) -> str:
        return format(self.addr, spec)


# ---------------------------------------------------------------------------------------------------------
# fixtures

def _sources_newer_than(target: Path) -> bool:
    built = target.stat().st_mtime
    sources = [REPO / "build.py", *(REPO / "pyd").rglob("*.py"), *(REPO / "execd").glob("*")]
    return any(p.exists() and p.stat().st_mtime > built for p in sources)


@pytest.fixture(scope="session")
def pyd_bin() -> Path:
    """dist/pyd (`make test` builds it first; built here when missing or older than the sources)."""
    if not PYD_DIST.exists() or _sources_newer_than(PYD_DIST):
        subprocess.run([sys.executable, str(REPO / "build.py")], check=True, cwd=REPO)
    return PYD_DIST


@pytest.fixture(scope="session")
def shiv_root() -> Iterator[Path]:
    """Where dist/pyd extracts itself during the session (SHIV_ROOT), instead of ~/.shiv."""
    path = Path(tempfile.mkdtemp(prefix="pyd-shiv-", dir="/tmp"))
    yield path
    remove_tree(path)        # kills any execd still running from it: nothing outlives the session


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("images")


@pytest.fixture(scope="session")
def busybox_rootfs_tar(image_dir: Path) -> Path:
    """A tar of a minimal busybox root filesystem (for `pyd import`, `docker import`)."""
    path = image_dir / "busybox-rootfs.tar"
    path.write_bytes(images.busybox_rootfs())
    return path


@pytest.fixture(scope="session")
def busybox_archive(image_dir: Path) -> Path:
    """busybox:latest as a docker-archive (manifest.json, config, one layer; Cmd ["sh"], Env PATH)."""
    path = image_dir / "busybox-archive.tar"
    path.write_bytes(images.busybox_archive())
    return path


def _new_daemon(request: pytest.FixtureRequest, pyd_bin: Path, shiv_root: Path, args: tuple[str, ...],
                config: dict | None, python: str | None = None) -> Daemon:
    root = Path(tempfile.mkdtemp(prefix="pyd-t-", dir="/tmp"))     # short: unix socket paths under it
    try:
        daemon = Daemon(pyd_bin, root, shiv_root, args, config, python)
    except BaseException:
        remove_tree(root)
        raise
    live = request.config.stash.setdefault(LIVE_DAEMONS, set())
    live.add(daemon)

    def finalize() -> None:
        live.discard(daemon)
        daemon.cleanup()

    request.addfinalizer(finalize)
    return daemon


@pytest.fixture(scope="module")
def daemon(request: pytest.FixtureRequest, pyd_bin: Path, shiv_root: Path) -> Daemon:
    """One running daemon per test module."""
    return _new_daemon(request, pyd_bin, shiv_root, (), None).start()


@pytest.fixture
def make_daemon(request: pytest.FixtureRequest, pyd_bin: Path, shiv_root: Path) -> Callable[..., Daemon]:
    """Factory for daemons owned by one test: make_daemon("--storage-driver", "vfs", config={...},
    start=True, python="/path/to/python3.13"). Each is stopped and cleaned up when the test ends."""
    def make(*args: str, config: dict | None = None, start: bool = True, python: str | None = None) -> Daemon:
        d = _new_daemon(request, pyd_bin, shiv_root, args, config, python)
        return d.start() if start else d

    return make


@pytest.fixture(scope="module")
def busybox(daemon: Daemon, busybox_rootfs_tar: Path) -> str:
    """"busybox:latest", imported into the module's daemon from the busybox rootfs tar (no Cmd: pass one)."""
    return daemon.import_image(busybox_rootfs_tar, "busybox")


@pytest.fixture
def make_registry(request: pytest.FixtureRequest) -> Callable[[Daemon], Registry]:
    """Factory: make_registry(daemon) starts a registry in that daemon's network namespace."""
    def make(daemon: Daemon) -> Registry:
        registry = Registry(daemon, f"registry-{int(time.monotonic() * 1e6)}")
        request.addfinalizer(registry.stop)
        return registry

    return make


@pytest.fixture(scope="module")
def registry(request: pytest.FixtureRequest, daemon: Daemon) -> Registry:
    """A registry reachable by the module's daemon at str(registry) == "127.0.0.1:PORT"."""
    reg = Registry(daemon)
    request.addfinalizer(reg.stop)
    return reg


# ---------------------------------------------------------------------------------------------------------
# daemon logs beside failed tests

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    live = item.config.stash.get(LIVE_DAEMONS, set())
    item.stash[LOG_OFFSETS] = {d: d.log_size() for d in live}
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    offsets = item.stash.get(LOG_OFFSETS, {})
    for d in list(item.config.stash.get(LIVE_DAEMONS, set())):
        report.sections.append((f"pyd daemon log {d.host} ({call.when})", _log_excerpt(d, offsets.get(d, 0))))


def _log_excerpt(d: Daemon, test_began: int) -> str:
    """The end of the log up to the test (context), a marker, then what the daemon logged during it."""
    before, during = d.log_text()[:test_began], d.log_text(test_began)
    during = during if len(during) <= LOG_TAIL else "[...]\n" + during[-LOG_TAIL:]
    context = before[-max(2000, LOG_TAIL - len(during)):]
    return f"{context}===== pyd test: {'this test began here' if test_began else 'log start'} =====\n{during}"
