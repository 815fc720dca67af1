"""The figures: each measures one row of the table for every column, alternating columns within each
repetition, and records a reason instead of a number when a column cannot do it."""
from __future__ import annotations

import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from engines import (DOCKER_CLI, DOCKERD, PODMAN, REGISTRY_PORT, RUNC, Client, Engine, NotAvailable)
from procs import engine_rss
from stats import COLUMNS, Figure, Target

IMAGE = "busybox:latest"
BIG_IMAGE = f"127.0.0.1:{REGISTRY_PORT}/bench/big:1"
MB, MiB = 1_000_000, 1 << 20
THROUGHPUT_BYTES = 280 * MB
LOG_BYTES = 100 * MB
MANY = 50


def catalogue() -> list[Figure]:
    """Every row, in table order, with the issue's targets."""
    rows = [
        ("run_none", "run --rm --network none busybox true", "ms", Target("ratio_max", 0.20, "≤ 0.20 (≤ ~50 ms)")),
        ("run_bridge", "run --rm busybox true (default bridge)", "ms", Target("ratio_max", 0.25, "≤ 0.25")),
        ("run_seq", f"{MANY} × run -d sleep, one after another", "s", Target("ratio_max", 0.20, "≤ 0.20")),
        ("run_par", f"{MANY} × run -d sleep, 10 at a time", "s", Target("ratio_max", 0.25, "≤ 0.25")),
        ("ps", f"ps -a with {MANY} containers", "ms", Target("ratio_max", 1.0, "≤ 1.0")),
        ("rss_idle", "daemon RSS idle", "MiB", Target("ratio_max", 0.25, "≤ 0.25 (≤ 30 MiB)")),
        ("rss_per", "RSS added per running container", "MiB", Target("ratio_max", 0.10, "≤ 0.1 (≤ 1 MiB)")),
        ("throughput", "attached output, 280 MB of base64", "MB/s", Target("ratio_min", 4.0, "≥ 4× (≥ 110 MB/s)")),
        ("logs", "logs of a 100 MB json log", "s", Target("ratio_max", 1.0, "≤ 1.0")),
        ("pull", "pull of a 200 MB image, loopback registry", "s", Target("ratio_max", 0.65, "≤ 0.65")),
        ("build_nocache", "classic build, 3 steps, no cache", "ms", Target("ratio_max", 0.5, "≤ 0.5")),
        ("build_cached", "classic build, 3 steps, all cached", "ms", Target("ratio_max", 1.0, "≤ 1.0")),
        ("size", "size of what a user installs", "MB", Target("abs_max", 6.0, "pyd ≤ 6 MB")),
    ]
    return [Figure(key, title, unit, target) for key, title, unit, target in rows]


@dataclass
class Bench:
    """What the figures need: the columns' clients and engines, repetitions, the time budget."""
    clients: dict[str, Client]                  # column → client
    engines: dict[str, Engine]                  # column → engine it drives
    quick: bool
    deadline: float
    work: Path
    pyd_bin: Path
    log: Callable[[str], None] = print
    extra: dict = field(default_factory=dict)

    def reps(self, full: int, quick: int = 1) -> int:
        return quick if self.quick else full

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    def settle(self, idle: float = 0.85, window: float = 0.25, limit: float = 15.0) -> float:
        """Wait until the machine is idle (CPU idle >= `idle` over `window` s, and the kernel's count of
        network namespaces steady), at most `limit` s: an engine's removals finish in the background
        (shims exiting, the kernel tearing down network namespaces under the RTNL lock, mostly waiting, not
        computing) and must not slow the next engine's sample. Returns seconds waited."""
        start = time.monotonic()

        def ticks() -> tuple[int, int]:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
            return fields[3] + fields[4], sum(fields)    # idle + iowait, total

        def namespaces() -> int:
            try:
                with open("/proc/slabinfo") as f:
                    return next((int(line.split()[1]) for line in f if line.startswith("net_namespace ")), -1)
            except OSError:
                return -1
        while time.monotonic() - start < limit:
            idle0, total0, ns0 = *ticks(), namespaces()
            time.sleep(window)
            idle1, total1, ns1 = *ticks(), namespaces()
            if total1 > total0 and (idle1 - idle0) / (total1 - total0) >= idle and ns1 == ns0:
                break
        return time.monotonic() - start

    def columns(self) -> list[str]:
        return [c for c in COLUMNS if c in self.clients]

    def engine_list(self) -> list[Engine]:
        seen: list[Engine] = []
        for c in self.columns():
            if self.engines[c] not in seen:
                seen.append(self.engines[c])
        return seen

    def alternate(self, figs: list[Figure], reps: int, sample: Callable[[str, Client], list[float]],
                  columns: list[str] | None = None) -> None:
        """`reps` rounds; in each, every live column once, the order rotating each round. sample returns
        one value per figure in `figs`. A column that fails once is n/a with the reason."""
        cols = columns or self.columns()
        dead: set[str] = set()
        for rep in range(reps):
            order = cols[rep % len(cols):] + cols[:rep % len(cols)]
            for col in order:
                if col in dead:
                    continue
                if self.out_of_time():
                    for fig in figs:
                        fig.mark_na(col, "time budget used up")
                    dead.add(col)
                    continue
                try:
                    values = sample(col, self.clients[col])
                except NotAvailable as exc:
                    for fig in figs:
                        fig.mark_na(col, str(exc))
                    dead.add(col)
                    continue
                for fig, value in zip(figs, values):
                    fig.add(col, value)


def run_many(client: Client, count: int, parallel: int, args: list[str]) -> list[str]:
    """`count` × `run -d ARGS` with `parallel` at a time; returns the container IDs."""
    ids: list[str] = []
    lock = threading.Lock()

    def one(_: int) -> None:
        cid = client.run("run", "-d", *args, quiet=False, timeout=120).stdout.decode().strip()
        with lock:
            ids.append(cid)

    if parallel <= 1:
        for i in range(count):
            one(i)
    else:
        with ThreadPoolExecutor(parallel) as pool:
            for future in [pool.submit(one, i) for i in range(count)]:
                future.result()
    return ids


def remove(client: Client, ids: list[str]) -> None:
    if ids:
        client.run("rm", "-f", *ids, timeout=300)


# ---------------------------------------------------------------------------------------------------------
# the measurements

def measure_run(bench: Bench, figs: dict[str, Figure]) -> None:
    for key, args in (("run_none", ["--network", "none"]), ("run_bridge", [])):
        argv = ["run", "--rm", *args, IMAGE, "true"]
        bench.log(f"  {figs[key].title}")
        bench.alternate([figs[key]], 1, lambda col, c: [c.timed(*argv)])     # warm-up, discarded
        figs[key].samples.clear()
        bench.alternate([figs[key]], bench.reps(10, 3), lambda col, c: [c.timed(*argv) * 1000])


def measure_many(bench: Bench, figs: dict[str, Figure]) -> None:
    args = [IMAGE, "sleep", "3600"]
    for key, parallel in (("run_seq", 1), ("run_par", 10)):
        bench.log(f"  {figs[key].title}")

        def sample(col: str, client: Client, parallel: int = parallel) -> list[float]:
            try:
                start = time.perf_counter()
                run_many(client, MANY, parallel, args)
                return [time.perf_counter() - start]
            finally:
                took = bench.engines[col].remove_all_containers()
                bench.extra.setdefault("remove_50_s", {}).setdefault(col, []).append(round(took, 2))
                waited = bench.settle()
                bench.extra.setdefault("settle_after_remove_s", {}).setdefault(col, []).append(round(waited, 2))
        bench.alternate([figs[key]], bench.reps(2, 1), sample)

    bench.log(f"  {figs['ps'].title}")
    for engine in bench.engine_list():            # 50 containers in each engine, then ps -a from each column
        try:
            run_many(engine.primary, MANY, 10, args)
        except NotAvailable as exc:
            for col in bench.columns():
                if bench.engines[col] is engine:
                    figs["ps"].mark_na(col, f"could not start {MANY} containers: {exc}")
    ok = [c for c in bench.columns() if c not in figs["ps"].missing]
    if ok:
        bench.alternate([figs["ps"]], bench.reps(10, 3), lambda col, c: [c.timed("ps", "-a") * 1000], ok)
    for engine in bench.engine_list():
        engine.remove_all_containers()


def measure_rss(bench: Bench, figs: dict[str, Figure], idle: bool) -> None:
    """idle: daemon tree now (call right after start and load). Otherwise: RSS added by 20 running
    containers (shims/execd/conmon: processes of the engine outside the containers' PID namespaces)."""
    for engine in bench.engine_list():
        col = engine.name
        if col not in bench.clients:
            continue
        roots = [str(engine.root)]
        if idle:
            if not engine.daemon_based:
                figs["rss_idle"].mark_na(col, "daemonless: no idle process")
                continue
            readings = []
            for _ in range(3):
                readings.append(engine_rss(roots, engine.daemon_pids())[0] / MiB)
                time.sleep(0.2)
            figs["rss_idle"].add(col, sorted(readings)[1])
            continue
        count = 10 if bench.quick else 20
        base = engine_rss(roots, engine.daemon_pids())[0]
        try:
            run_many(engine.primary, count, 5, [IMAGE, "sleep", "3600"])
            time.sleep(1.0)
            after, pids = engine_rss(roots, engine.daemon_pids())
            figs["rss_per"].add(col, (after - base) / count / MiB)
            bench.extra.setdefault("rss_per_processes", {})[col] = len(pids)
        except NotAvailable as exc:
            figs["rss_per"].mark_na(col, str(exc))
        finally:
            engine.remove_all_containers()
    for fig in (figs["rss_idle"], figs["rss_per"]):
        fig.mark_na("pyd-cli", "")              # an engine figure: no client column


def _read_all(proc: subprocess.Popen, timeout: float) -> int:
    """Read the child's stdout to EOF into one reused 1 MiB buffer (the reader shares the 2 CPUs with the
    engine, so it must cost little), counting bytes; bounded by `timeout`."""
    total, deadline = 0, time.monotonic() + timeout
    fd = proc.stdout.fileno()
    buf = bytearray(1 << 20)
    while True:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise NotAvailable(f"timed out after {timeout:.0f} s")
        n = os.readv(fd, [buf])
        if not n:
            break
        total += n
    if proc.wait(30) != 0:
        raise NotAvailable((proc.stderr.read() or b"").decode(errors="replace") or f"exit {proc.returncode}")
    return total


def timed_read(client: Client, args: list[str], expect: int, timeout: float = 120) -> float:
    start = time.perf_counter()
    proc = client.popen(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        got = _read_all(proc, timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    elapsed = time.perf_counter() - start
    if got != expect:
        raise NotAvailable(f"read {got} bytes, expected {expect}")
    return elapsed


def measure_throughput(bench: Bench, figs: dict[str, Figure]) -> None:
    n = THROUGHPUT_BYTES
    script = f"base64 /dev/urandom | head -c {n}"
    bench.alternate([figs["throughput"]], bench.reps(3, 1),
                    lambda col, c: [n / MB / timed_read(c, ["run", "--rm", IMAGE, "sh", "-c", script], n)])


def measure_logs(bench: Bench, figs: dict[str, Figure]) -> None:
    n = LOG_BYTES
    script = f"base64 /dev/urandom | head -c {n}"
    names: dict[str, str] = {}
    for engine in bench.engine_list():
        try:
            # one log file big enough for all of it (pyd rotates at 20 MB by default; dockerd never does)
            cid = engine.primary.run("run", "-d", "--log-opt", "max-size=1g", IMAGE, "sh", "-c", script,
                                     quiet=False).stdout.decode().strip()
            engine.primary.run("wait", cid, timeout=120)
            names[engine.name] = cid
        except NotAvailable as exc:
            for col in bench.columns():
                if bench.engines[col] is engine:
                    figs["logs"].mark_na(col, f"could not write the log: {exc}")
    ok = [c for c in bench.columns() if bench.engines[c].name in names]
    if ok:
        bench.alternate([figs["logs"]], bench.reps(3, 1),
                        lambda col, c: [timed_read(c, ["logs", names[bench.engines[col].name]], n)], ok)
    for engine in bench.engine_list():
        engine.remove_all_containers()


def measure_pull(bench: Bench, figs: dict[str, Figure], archive: Path | None) -> None:
    fig = figs["pull"]
    if archive is None:
        for col in bench.columns():
            fig.mark_na(col, "no 200 MB image in the registry")
        return
    tls = {"podman": ["--tls-verify=false"]}

    def sample(col: str, client: Client) -> list[float]:
        try:
            client.run("rmi", "-f", BIG_IMAGE, timeout=120)
        except NotAvailable:
            pass
        os.sync()          # the last pull's 200 MB are written back now, not during this one
        bench.settle()
        return [client.timed("pull", *tls.get(col, []), BIG_IMAGE, timeout=180)]

    bench.alternate([fig], bench.reps(3, 1), sample)
    for col, client in bench.clients.items():
        try:
            client.run("rmi", "-f", BIG_IMAGE, timeout=120)
        except NotAvailable:
            pass


DOCKERFILE = """FROM busybox:latest
RUN echo one > /one
COPY hello.txt /hello.txt
RUN cat /one /hello.txt > /both
"""


def measure_build(bench: Bench, figs: dict[str, Figure]) -> None:
    context = bench.work / "build-context"
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "hello.txt").write_text("hello\n")
    tag = "bench-build:1"

    def sample(col: str, client: Client) -> list[float]:
        nocache = client.timed("build", "--no-cache", "-q", "-t", tag, str(context)) * 1000
        client.run("build", "-q", "-t", tag, str(context))           # warm the cache for this column
        cached = client.timed("build", "-q", "-t", tag, str(context)) * 1000
        return [nocache, cached]

    bench.alternate([figs["build_nocache"], figs["build_cached"]], bench.reps(3, 1), sample)
    for engine in bench.engine_list():
        try:
            engine.primary.run("rmi", "-f", tag, timeout=60)
        except NotAvailable:
            pass


def _size(paths: list[str]) -> tuple[float, list[str]]:
    found = [p for p in paths if os.path.exists(p)]
    return sum(os.path.getsize(p) for p in found) / MB, found


def measure_size(bench: Bench, figs: dict[str, Figure]) -> None:
    fig = figs["size"]
    docker_set = [DOCKERD, "/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2", RUNC,
                  "/usr/sbin/docker-proxy", DOCKER_CLI]
    podman_set = [PODMAN, "/usr/bin/conmon", "/usr/libexec/podman/conmon", RUNC]
    fig.add("dockerd", _size(docker_set)[0])
    fig.add("pyd", os.path.getsize(bench.pyd_bin) / MB)
    fig.mark_na("pyd-cli", "")
    if os.path.exists(PODMAN):
        fig.add("podman", _size(podman_set)[0])
    bench.extra["size_files"] = {"dockerd": _size(docker_set)[1], "podman": _size(podman_set)[1]}
