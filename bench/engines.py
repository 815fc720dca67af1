"""The engines under comparison, each on its own directories, socket and network namespace:
dockerd (with the containerd it starts itself), `dist/pyd daemon`, and podman (daemonless, runc).
Each engine offers clients (the columns of the table) and stops everything it started."""
from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from procs import SBIN_PATH, NetNamespace, kill_pid, remove_cgroups, remove_tree, wait_answering

DOCKER_CLI = "/usr/local/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
PODMAN = "/usr/bin/podman"
RUNC = "/usr/sbin/runc"
REGISTRY = "/usr/bin/docker-registry"
REGISTRY_PORT = 5000          # the same in every namespace, so image names are the same for every engine
DOCKERD_CGROUP_PARENT = "pydbench-dockerd"
PYD_CGROUP_PARENT = "pydbench-pyd"
PODMAN_CGROUP_PARENT = "libpod_parent"      # podman's default with cgroupfs; removed only if we made it


class NotAvailable(Exception):
    """A figure cannot be measured for a column (feature missing, command failed): the reason says why."""


class Client:
    """A command-line client bound to one engine: argv prefix + environment."""

    def __init__(self, column: str, argv: list[str], env: dict[str, str]) -> None:
        self.column, self.argv, self.env = column, argv, env

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen([*self.argv, *args], env=self.env, stdin=subprocess.DEVNULL, **kw)

    def run(self, *args: str, timeout: float = 120, quiet: bool = True) -> subprocess.CompletedProcess:
        """Run the client; NotAvailable (with its error message) when it fails or times out."""
        try:
            proc = subprocess.run([*self.argv, *args], env=self.env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
                                  stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise NotAvailable(f"`{' '.join(args[:3])} …` timed out after {timeout:.0f} s") from None
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip() or f"exit status {proc.returncode}"
            raise NotAvailable(err)
        return proc

    def timed(self, *args: str, timeout: float = 120) -> float:
        start = time.perf_counter()
        self.run(*args, timeout=timeout)
        return time.perf_counter() - start


def docker_cli_env(host: str, config_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "PYD_"))}
    return {**env, "PATH": SBIN_PATH, "DOCKER_HOST": host, "DOCKER_CONFIG": str(config_dir),
            "DOCKER_BUILDKIT": "0", "DOCKER_CLI_HINTS": "false"}


class Engine:
    """Base: a directory `root` (removed at stop), a network namespace, a log, processes we started."""
    name = "engine"
    daemon_based = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_path = self.root / "engine.log"
        # The runtime state (dockerd's exec-root with containerd's and runc's, pyd's exec-root, podman's
        # runroot) lives on a tmpfs, as /run is on a host: on this VM's ext4 (no journal) creating a file
        # in some directories costs ~0.1-0.7 ms (the inode allocator skips recently freed inodes), which
        # would weigh per container on whichever engine keeps more state files there.
        self.run_dir = self.root / "run"
        self.run_dir.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=512m", "pydbench-run", str(self.run_dir)],
                       check=True)
        self.netns: NetNamespace | None = None
        self.proc: subprocess.Popen | None = None
        self.registry: subprocess.Popen | None = None
        self.clients: dict[str, Client] = {}

    @property
    def primary(self) -> Client:
        return next(iter(self.clients.values()))

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {**os.environ, "PATH": SBIN_PATH}

    def start(self, timeout: float = 60) -> None:
        self.netns = NetNamespace()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.netns.enter_argv() + self.command(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=self.root)
        if not wait_answering(self.proc, self.sock, timeout):
            raise NotAvailable(f"{self.name} did not start: {self.log_tail()}")

    def log_tail(self, n: int = 600) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def daemon_pids(self) -> set[int]:
        return {self.proc.pid} if self.proc and self.proc.poll() is None else set()

    def remove_all_containers(self) -> float:
        """rm -f every container, 10 requests at a time (not a figure: just quick). Returns seconds."""
        start = time.perf_counter()
        try:
            ids = self.primary.run("ps", "-aq", quiet=False, timeout=60).stdout.decode().split()
            chunks = [ids[i::10] for i in range(min(10, len(ids)))]
            with ThreadPoolExecutor(10) as pool:
                for future in [pool.submit(self.primary.run, "rm", "-f", *chunk, timeout=300) for chunk in chunks]:
                    future.result()
        except NotAvailable:
            pass
        return time.perf_counter() - start

    def start_registry(self, storage: Path) -> None:
        """Debian's docker-registry on 127.0.0.1:5000 in this engine's namespace, serving `storage`."""
        config = self.root / "registry.yml"
        config.write_text("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
                          f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
                          f"http:\n  addr: 127.0.0.1:{REGISTRY_PORT}\n")
        with (self.root / "registry.log").open("ab") as log:
            self.registry = subprocess.Popen(self.netns.enter_argv() + [REGISTRY, "serve", str(config)],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        probe = self.netns.enter_argv() + ["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{REGISTRY_PORT}"]
        while subprocess.run(probe, stderr=subprocess.DEVNULL).returncode != 0:
            if self.registry.poll() is not None or time.monotonic() > deadline:
                raise NotAvailable("docker-registry did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        """Remove containers, stop the daemon and registry by PID, kill leftovers, unmount, delete."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.remove_all_containers()
        finally:
            kill_pid(self.registry, 10)
            kill_pid(self.proc, 30)
            remove_tree(str(self.root))
            if self.netns:
                self.netns.close()


class Dockerd(Engine):
    name = "dockerd"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.sock = str(root / "docker.sock")
        (root / "daemon.json").write_text("{}")
        (root / "cli").mkdir(exist_ok=True)
        self.clients = {"dockerd": Client("dockerd", [DOCKER_CLI], docker_cli_env(f"unix://{self.sock}", root / "cli"))}

    def command(self) -> list[str]:
        # dockerd starts its own containerd under exec-root/data-root; its bridge, iptables rules and
        # sysctls live in the private network namespace, so the host's stay untouched.
        return [DOCKERD, "--data-root", str(self.root / "data"), "--exec-root", str(self.run_dir / "exec"),
                "--pidfile", str(self.root / "docker.pid"), "-H", f"unix://{self.sock}",
                "--config-file", str(self.root / "daemon.json"), "--storage-driver", "overlay2",
                "--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", DOCKERD_CGROUP_PARENT,
                "--log-level", "warn"]

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            remove_cgroups(DOCKERD_CGROUP_PARENT)


class Pyd(Engine):
    name = "pyd"

    def __init__(self, root: Path, pyd_bin: Path) -> None:
        super().__init__(root)
        self.pyd_bin = pyd_bin
        self.sock = str(root / "pyd.sock")
        (root / "daemon.json").write_text("{}")
        (root / "cli").mkdir(exist_ok=True)
        host = f"unix://{self.sock}"
        self.clients = {"pyd": Client("pyd", [DOCKER_CLI], docker_cli_env(host, root / "cli")),
                        "pyd-cli": Client("pyd-cli", [str(pyd_bin), "-H", host], self.env())}

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "PYD_", "SHIV_"))}
        return {**env, "PATH": SBIN_PATH, "SHIV_ROOT": str(self.root / "shiv")}

    def command(self) -> list[str]:
        return [str(self.pyd_bin), "daemon", "--data-root", str(self.root / "data"),
                "--exec-root", str(self.run_dir / "exec"), "--pidfile", str(self.root / "pyd.pid"),
                "-H", f"unix://{self.sock}", "--config-file", str(self.root / "daemon.json"),
                "--cgroup-parent", PYD_CGROUP_PARENT]

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            remove_cgroups(PYD_CGROUP_PARENT)


class Podman(Engine):
    """Daemonless: every command is `podman --root … --runtime runc` inside the engine's namespace."""
    name = "podman"
    daemon_based = False

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.sock = ""
        self.made_cgroup_parent = not os.path.isdir(f"/sys/fs/cgroup/memory/{PODMAN_CGROUP_PARENT}")
        conf = root / "containers.conf"
        # without CAP_SYS_RESOURCE (as here) runc cannot raise rlimits: ask for limits below the hard ones
        conf.write_text('[containers]\nlog_driver = "k8s-file"\n'
                        'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n[engine]\ncgroup_manager = "cgroupfs"\n'
                        'events_logger = "file"\nruntime = "runc"\n')
        self.conf = conf

    def start(self, timeout: float = 60) -> None:
        self.netns = NetNamespace()
        argv = self.netns.enter_argv() + [PODMAN, "--root", str(self.root / "storage"), "--runroot",
                                     str(self.run_dir / "exec"), "--tmpdir", str(self.root / "tmp"),
                                     "--runtime", RUNC, "--cgroup-manager", "cgroupfs",
                                     "--events-backend", "file", "--storage-driver", "overlay"]
        env = {**os.environ, "PATH": SBIN_PATH, "CONTAINERS_CONF": str(self.conf),
               "XDG_RUNTIME_DIR": str(self.root / "xdg")}
        (self.root / "xdg").mkdir(exist_ok=True)
        self.clients = {"podman": Client("podman", argv, env)}
        self.primary.run("info", timeout=timeout)

    def daemon_pids(self) -> set[int]:
        return set()

    def remove_all_containers(self) -> float:
        # -t 0: podman's rm -f otherwise waits the stop timeout for `sleep` (PID 1 ignores SIGTERM)
        start = time.perf_counter()
        try:
            self.primary.run("rm", "-af", "-t", "0", timeout=300)
        except NotAvailable:
            pass
        return time.perf_counter() - start

    def stop(self) -> None:
        try:
            if self.clients:
                self.remove_all_containers()
        finally:
            super().stop()
            if self.made_cgroup_parent:
                remove_cgroups(PODMAN_CGROUP_PARENT)


def load_image(engine: Engine, archive: Path) -> None:
    engine.primary.run("load", "-i", str(archive), timeout=120)


def engine_info(engine: Engine) -> dict:
    try:
        out = engine.primary.run("version", "--format", "{{json .}}", quiet=False, timeout=30).stdout
        return json.loads(out)
    except (NotAvailable, ValueError):
        return {}
