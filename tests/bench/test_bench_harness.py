"""The benchmark harness: its pure parts (bench/stats.py: medians, ratios, targets, the table) and the
fresh file system it gives the engines. No timing: `make bench` is never a timed assertion in `make test`."""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import stats  # noqa: E402
from stats import Figure, Target  # noqa: E402


def test_median_and_ratio() -> None:
    assert stats.median([]) is None
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([1.0, 2.0, 3.0, 10.0]) == 2.5
    assert stats.ratio(None, 2.0) is None and stats.ratio(1.0, None) is None and stats.ratio(1.0, 0) is None
    assert stats.ratio(1.0, 4.0) == 0.25


def test_targets_each_kind() -> None:
    at_most = Target("ratio_max", 0.2, "≤ 0.20")
    assert at_most.met(10, 0.2) is True and at_most.met(10, 0.21) is False and at_most.met(10, None) is None
    at_least = Target("ratio_min", 4.0, "≥ 4×")
    assert at_least.met(120, 4.2) is True and at_least.met(50, 1.8) is False
    absolute = Target("abs_max", 5.0, "pyd ≤ 5 MB")
    assert absolute.met(1.7, None) is True and absolute.met(6.0, 0.01) is False and absolute.met(None, 1) is None


def test_figure_uses_medians_and_keeps_first_reason() -> None:
    fig = Figure("run_none", "run", "ms", Target("ratio_max", 0.2, "≤ 0.20"))
    for value in (240.0, 230.0, 260.0):
        fig.add("dockerd", value)
    for value in (40.0, 30.0, 500.0):                 # one outlier does not move the median
        fig.add("pyd", value)
    fig.mark_na("pyd", "ignored: pyd has samples")
    fig.mark_na("podman", "Error: something broke\nmore detail")
    assert fig.value("dockerd") == 240.0 and fig.value("pyd") == 40.0
    assert fig.ratio() == 40.0 / 240.0 and fig.verdict() is True
    assert "pyd" not in fig.missing and fig.missing["podman"] == "Error: something broke"
    data = fig.as_json()
    assert data["met"] is True and data["values"]["podman"] is None and data["na"]["podman"]


def test_table_shows_values_na_with_reasons_and_verdicts() -> None:
    run = Figure("run_none", "run --rm true", "ms", Target("ratio_max", 0.2, "≤ 0.20"))
    run.add("dockerd", 240.0)
    run.add("pyd", 60.0)
    run.add("pyd-cli", 70.0)
    run.mark_na("podman", "podman not installed")
    size = Figure("size", "size", "MB", Target("abs_max", 5.0, "pyd ≤ 5 MB"))
    size.add("dockerd", 188.0)
    size.add("pyd", 1.5)
    size.mark_na("pyd-cli", "")                       # does not apply: a dash, no note
    size.mark_na("podman", "podman not installed")    # same reason: same note number
    pull = Figure("pull", "pull", "s", Target("ratio_max", 0.65, "≤ 0.65"))
    pull.add("dockerd", 1.7)
    pull.mark_na("pyd", "Error response from daemon: pull is not implemented")
    lines = stats.format_table([run, size, pull]).splitlines()
    header, run_row, size_row, pull_row = lines[0], lines[2], lines[3], lines[4]
    assert "pyd (docker CLI)" in header and "pyd/dockerd" in header and "verdict" in header
    assert "240 ms" in run_row and "60 ms" in run_row and "0.25" in run_row and run_row.endswith("NOT met")
    assert "n/a [1]" in run_row and "n/a [1]" in size_row and size_row.endswith("met")
    assert " - " in size_row and "1.50 MB" in size_row
    assert "n/a [2]" in pull_row and pull_row.endswith("n/a")
    assert "[1] podman not installed" in lines and any("pull is not implemented" in line for line in lines)


def test_engines_get_a_fresh_filesystem_like_the_hosts(tmp_path: Path) -> None:
    """bench/run.py puts the engines' data on a new ext4 (journal only if the host's has one) on a loop
    device with direct I/O; the harness's remove_tree takes it away with everything else."""
    import subprocess

    import run
    from hostkit import mounts_under, remove_tree
    work = tmp_path / "work"
    work.mkdir()
    try:
        roots = run.fresh_filesystem(work, size=256 << 20)
        assert roots == work / "fs" and mounts_under(str(roots)) == [str(roots)]
        fstype = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", str(roots)], capture_output=True,
                                text=True).stdout.strip()
        assert fstype == "ext4"
        source = run.mount_source(roots)
        assert source.startswith("/dev/loop")
        journaled = any(j.rsplit("-", 1)[0] == Path(source).name for j in os.listdir("/proc/fs/jbd2"))
        assert journaled == run._host_has_journal(tmp_path)
        assert Path(f"/sys/block/{Path(source).name}/loop/dio").read_text().strip() == "1"   # one page cache
        (roots / "probe").write_text("x")
    finally:
        remove_tree(work)
    assert not work.exists() and not mounts_under(str(work))
