"""Container logs: json-file rotation by execd, reading across rotated files, follow, since/until/tail/-t,
details, the none driver."""
from __future__ import annotations

import os
import re
import time

from pyd.daemon.containers.logs import parse_size, rotation_limits


def log_files(daemon, cid: str) -> list[str]:
    root = daemon.data_root / "containers" / cid
    return sorted(n for n in os.listdir(root) if n.startswith(f"{cid}-json.log"))


def run_to_end(daemon, *args: str) -> str:
    cid = daemon.docker("run", "-d", *args, check=True).stdout.strip()
    daemon.docker("wait", cid, check=True, timeout=120)
    return cid


def test_rotation_keeps_at_most_max_file_and_logs_reads_across(daemon, busybox):
    cid = run_to_end(daemon, "--log-opt", "max-size=1k", "--log-opt", "max-file=2", busybox,
                     "sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done")
    files = log_files(daemon, cid)
    assert files == [f"{cid}-json.log", f"{cid}-json.log.1"], files
    root = daemon.data_root / "containers" / cid
    assert all(os.path.getsize(root / f) <= 1024 for f in files)
    lines = daemon.docker("logs", cid, check=True).stdout.split()
    first = int(lines[0].split("-")[1])
    live = (root / files[0]).read_text().splitlines()
    assert lines == [f"line-{i}" for i in range(first, 300)] and len(lines) > len(live)   # both files, in order
    # the tail crosses from the live file into the rotated one (the live file holds fewer lines)
    n = len(live) + 3
    assert daemon.docker("logs", "--tail", str(n), cid).stdout.split() == [f"line-{i}" for i in range(300 - n, 300)]


def test_rotation_50mb_max_size_1m_max_file_3(daemon, busybox):
    cid = run_to_end(daemon, "--log-opt", "max-size=1m", "--log-opt", "max-file=3", busybox,
                     "sh", "-c", "yes 0123456789012345678901234567890123456789012345678901234567890123456789 "
                                 "| head -c 50000000")
    files = log_files(daemon, cid)
    root = daemon.data_root / "containers" / cid
    sizes = [os.path.getsize(root / f) for f in files]
    assert len(files) <= 3 and all(s <= 1024 * 1024 for s in sizes), sizes
    assert daemon.docker("logs", "--tail", "1", cid).stdout.startswith("0123456789")


def test_default_rotation_is_bounded(daemon, busybox):
    assert rotation_limits({}, {}) == (20 * 1024 * 1024, 5)
    assert rotation_limits({"max-size": "-1"}, {}) == (0, 1)
    assert rotation_limits({}, {"max-size": "10m", "max-file": "2"}) == (10 * 1024 * 1024, 2)
    assert parse_size("1k") == 1024 and parse_size("1.5m") == 1572864
    r = daemon.docker("run", "--rm", "--log-opt", "max-size=abc", busybox, "true")
    assert r.returncode == 125 and "invalid size: 'abc'" in r.stderr
    r = daemon.docker("run", "--rm", "--log-opt", "bogus=1", busybox, "true")
    assert r.returncode == 125 and "unknown log opt 'bogus' for json-file log driver" in r.stderr


def test_daemon_log_opts_default(make_daemon, busybox_rootfs_tar):
    d = make_daemon(config={"log-opts": {"max-size": "1k", "max-file": "3"}})
    bb = d.import_image(busybox_rootfs_tar, "busybox")
    cid = run_to_end(d, bb, "sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done")
    assert len(log_files(d, cid)) == 3


def test_follow_across_rotation(daemon, busybox):
    # ~25 lines fill a 2k file; a pause after each lets a follower on a loaded machine keep within the
    # four files kept (one that falls further behind loses lines, with dockerd's json-file too)
    cid = daemon.docker("run", "-d", "--log-opt", "max-size=2k", "--log-opt", "max-file=4", busybox, "sh", "-c",
                        "sleep 0.5; i=0; while [ $i -lt 500 ]; do echo line-$i; i=$((i+1)); "
                        "[ $((i % 25)) -eq 0 ] && usleep 100000; done", check=True).stdout.strip()
    r = daemon.docker("logs", "-f", cid, timeout=60)
    assert r.stdout.split() == [f"line-{i}" for i in range(500)]
    assert len(log_files(daemon, cid)) == 4


def test_since_until_tail_timestamps_details(daemon, busybox):
    cid = run_to_end(daemon, "--label", "team=blue", "-e", "STAGE=test", "--log-opt", "labels=team",
                     "--log-opt", "env=STAGE", busybox, "sh", "-c", "echo a; sleep 1.1; echo b; sleep 1.1; echo c")
    stamped = daemon.docker("logs", "-t", cid, check=True).stdout.splitlines()
    assert len(stamped) == 3
    for line in stamped:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z [abc]", line), line
    t_b = stamped[1].split()[0]
    assert daemon.docker("logs", "--since", t_b, cid).stdout.split() == ["b", "c"]
    assert daemon.docker("logs", "--until", t_b, cid).stdout.split() == ["a", "b"]
    assert daemon.docker("logs", "--tail", "1", cid).stdout.split() == ["c"]
    assert daemon.docker("logs", "--tail", "0", cid).stdout == ""
    assert daemon.docker("logs", "--details", cid).stdout.splitlines() == [
        "STAGE=test,team=blue a", "STAGE=test,team=blue b", "STAGE=test,team=blue c"]
    # docker-py: since as a unix time
    out = daemon.api.containers.get(cid).logs(since=int(time.time()) + 5)
    assert out == b""


def test_log_driver_none(daemon, busybox):
    cid = run_to_end(daemon, "--log-driver", "none", busybox, "echo", "hi")
    assert log_files(daemon, cid) == []
    r = daemon.docker("logs", cid)
    assert r.returncode != 0 and "does not support reading" in r.stderr
