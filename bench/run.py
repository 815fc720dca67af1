"""`make bench`: pyd beside dockerd (and podman), measured in one run through the same docker CLI.

    python3 bench/run.py [--quick] [--budget SECONDS] [--only run_none,ps,...] [--no-podman]

Starts each engine on its own directories, socket and network namespace under a fresh /tmp directory,
loads the same busybox image into each, measures every figure alternating engines, prints one table and
writes bench/results/latest.json. Everything started is stopped by PID and removed, even on Ctrl-C."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bigimage  # noqa: E402
import figures  # noqa: E402
from engines import (DOCKER_CLI, DOCKERD, PODMAN, REGISTRY, Dockerd, Engine, NotAvailable, Podman, Pyd,  # noqa: E402
                     engine_info, load_image)
from stats import COLUMNS, format_table  # noqa: E402

REPO = HERE.parent
PYD_BIN = REPO / "dist" / "pyd"
RESULTS = HERE / "results" / "latest.json"
BIG_SIZE = 200 * figures.MB


class Interrupted(Exception):
    pass


def _on_signal(signum: int, _frame: object) -> None:
    raise Interrupted(f"signal {signum}")


def log(message: str, _t0: list[float] = [time.monotonic()]) -> None:   # noqa: B006 (start time)
    print(f"[{time.monotonic() - _t0[0]:6.1f}s] {message}", file=sys.stderr, flush=True)


def fresh_filesystem(work: Path, size: int = 32 << 30) -> Path:
    """A new ext4 on a sparse loop image (direct I/O) under `work`, mounted at work/fs, for every engine's
    data: the engines meet the same clean file system in every run instead of the host's /tmp, whose state
    drifts with everything done on the machine before. On this VM (ext4 without a journal) creating a file in
    /tmp came to cost 0.15-0.7 ms instead of ~0.02 (the inode allocator skips freed inodes it takes for
    recent ones), which moved the per-container figures by half between runs. The new file system has a
    journal only if the host's has one, so that the engines' file system work stays what it is here.
    Without mkfs.ext4 or loop devices: `work` itself."""
    image, mnt = work / "fs.img", work / "fs"
    features = [] if _host_has_journal(work) else ["-O", "^has_journal"]
    try:
        with image.open("wb") as f:
            f.truncate(size)
        subprocess.run(["mkfs.ext4", "-q", "-F", *features, str(image)], check=True, capture_output=True,
                       timeout=120)
        mnt.mkdir()
        subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True, capture_output=True, timeout=60)
        # direct I/O: the image's blocks go to the disk once, not through a second page cache whose
        # writeback (of the last pull's 200 MB, say) would run during the next sample
        subprocess.run(["losetup", "--direct-io=on", mount_source(mnt)], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        log(f"no fresh file system for the engines ({exc}): using {work}")
        return work
    log(f"engines' data on a fresh ext4 ({'with' if not features else 'without'} a journal, as the host's)")
    return mnt


def mount_source(path: Path) -> str:
    """The device of the file system holding `path` (e.g. /dev/vda, /dev/loop0)."""
    return subprocess.run(["findmnt", "-n", "-o", "SOURCE", "--target", str(path)], capture_output=True,
                          text=True, timeout=10).stdout.strip()


def _host_has_journal(path: Path) -> bool:
    """Whether the file system holding `path` has a jbd2 journal (/proc/fs/jbd2 lists them by device)."""
    try:
        device = os.path.basename(mount_source(path))
        journals = os.listdir("/proc/fs/jbd2")
    except (OSError, subprocess.SubprocessError):
        return True
    return any(name.rsplit("-", 1)[0] == device for name in journals)


def apt_install(package: str) -> bool:
    log(f"installing {package} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", package], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_tools(want_podman: bool) -> list[str]:
    """Install Debian's docker.io (and podman, docker-registry) when missing. Returns problems found."""
    problems = []
    if not os.access(DOCKERD, os.X_OK) and not apt_install("docker.io"):
        problems.append("docker.io could not be installed")
    if not os.access(REGISTRY, os.X_OK) and not apt_install("docker-registry"):
        problems.append("docker-registry could not be installed")
    if want_podman and not os.access(PODMAN, os.X_OK) and not apt_install("podman"):
        problems.append("podman could not be installed")
    if not os.access(DOCKER_CLI, os.X_OK):
        problems.append(f"no docker CLI at {DOCKER_CLI}")
    return problems


def seed_registry(bench: figures.Bench, engines: list[Engine]) -> Path | None:
    """Start a registry in each engine's namespace (all serving one storage dir) and push the 200 MB
    image into it through dockerd. None when that cannot be done."""
    dockerd = next((e for e in engines if isinstance(e, Dockerd)), None)
    if dockerd is None:
        return None
    storage = bench.work / "registry"
    storage.mkdir(exist_ok=True)
    try:
        for engine in engines:
            engine.start_registry(storage)
        archive = bench.work / "big.tar"
        log("  writing the 200 MB image and pushing it through dockerd")
        bigimage.write_archive(archive, BIG_SIZE, figures.BIG_IMAGE)
        load_image(dockerd, archive)
        archive.unlink()
        dockerd.primary.run("push", figures.BIG_IMAGE, timeout=300)
        dockerd.primary.run("rmi", "-f", figures.BIG_IMAGE, timeout=60)
        return storage
    except (NotAvailable, OSError) as exc:
        log(f"  registry not ready: {exc}")
        return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (development)")
    parser.add_argument("--budget", type=float, help="seconds for all measurements (default 540, quick 300)")
    parser.add_argument("--only", default="", help="comma-separated figure keys to measure")
    parser.add_argument("--no-podman", action="store_true")
    parser.add_argument("--json", default=str(RESULTS), help="where to write the results")
    args = parser.parse_args(argv)

    if os.geteuid() != 0:
        print("make bench: must run as root (it starts dockerd and pyd)", file=sys.stderr)
        return 2
    if not PYD_BIN.exists():
        print(f"make bench: {PYD_BIN} is missing (run make build)", file=sys.stderr)
        return 2
    problems = ensure_tools(not args.no_podman)
    for problem in problems:
        log(problem)
    if not os.access(DOCKER_CLI, os.X_OK):
        return 2

    catalogue = figures.catalogue()
    figs = {f.key: f for f in catalogue}
    only = {k for k in args.only.split(",") if k}
    wanted = lambda *keys: not only or bool(only & set(keys))   # noqa: E731
    budget = args.budget or (300 if args.quick else 540)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _on_signal)
    work = Path(tempfile.mkdtemp(prefix="pydb-", dir="/tmp"))     # short: unix socket paths live under it
    engines: list[Engine] = []
    interrupted = None
    bench = None
    try:
        roots = fresh_filesystem(work)
        candidates: list[Engine] = [Dockerd(roots / "d"), Pyd(roots / "p", PYD_BIN)]
        if not args.no_podman and os.access(PODMAN, os.X_OK):
            candidates.append(Podman(roots / "m"))
        archive = work / "busybox.tar"
        subprocess.run([sys.executable, str(REPO / "tests" / "kit" / "images.py"), "archive", str(archive)], check=True)
        clients, by_column = {}, {}
        for engine in candidates:
            log(f"starting {engine.name}")
            try:
                engine.start()
                engines.append(engine)
                load_image(engine, archive)
                for col, client in engine.clients.items():
                    clients[col], by_column[col] = client, engine
            except NotAvailable as exc:
                log(f"{engine.name} not available: {exc}")
                for col in COLUMNS:
                    if col == engine.name or (engine.name == "pyd" and col == "pyd-cli"):
                        for fig in catalogue:
                            fig.mark_na(col, f"{engine.name} did not start: {exc}")
        if "podman" not in clients:
            for fig in catalogue:
                fig.mark_na("podman", "podman not installed or skipped")
        bench = figures.Bench(clients, by_column, args.quick, time.monotonic() + budget, work, PYD_BIN, log)
        bench.extra["versions"] = {e.name: engine_info(e).get("Server", {}).get("Version") for e in engines}

        if wanted("rss_idle"):
            log("daemon RSS idle")
            figures.measure_rss(bench, figs, idle=True)
        steps = [
            (("run_none", "run_bridge"), "run latency", lambda: figures.measure_run(bench, figs)),
            (("rss_per",), "RSS per container", lambda: figures.measure_rss(bench, figs, idle=False)),
            (("throughput",), "attached output throughput", lambda: figures.measure_throughput(bench, figs)),
            (("logs",), "logs of a 100 MB log", lambda: figures.measure_logs(bench, figs)),
            (("build_nocache", "build_cached"), "classic build", lambda: figures.measure_build(bench, figs)),
            (("run_seq", "run_par", "ps"), "50 containers", lambda: figures.measure_many(bench, figs)),
            (("pull",), "pull from a loopback registry",
             lambda: figures.measure_pull(bench, figs, seed_registry(bench, engines))),
            (("size",), "sizes", lambda: figures.measure_size(bench, figs)),
        ]
        for keys, name, step in steps:
            if not wanted(*keys):
                for key in keys:
                    for col in COLUMNS:
                        figs[key].mark_na(col, "not selected (--only)")
                continue
            log(name)
            step()
    except Interrupted as exc:
        interrupted = str(exc)
        log(f"interrupted ({exc}): cleaning up")
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)        # let the clean-up finish
        for engine in reversed(engines):
            log(f"stopping {engine.name}")
            try:
                engine.stop()
            except Exception as exc:                   # keep cleaning the others
                log(f"stopping {engine.name}: {exc}")
        from procs import remove_tree
        remove_tree(str(work))
        shutil.rmtree(work, ignore_errors=True)

    print(format_table([f for f in catalogue if wanted(f.key)]))
    result = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": args.quick, "interrupted": interrupted,
              "extra": bench.extra if bench else {}, "figures": [f.as_json() for f in catalogue]}
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nresults: {out}")
    return 1 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
