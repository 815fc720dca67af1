"""POST /build/prune (docker builder prune, docker-py prune_builds): the classic builder's dangling
intermediate images go, the cache under tagged images stays."""
from __future__ import annotations

import json


def _build(daemon, ctx, dockerfile: str, *args: str):
    (ctx / "Dockerfile").write_text(dockerfile)
    return daemon.docker("build", *args, str(ctx), timeout=120)


def _image_ids(daemon) -> set[str]:
    return set(daemon.docker("images", "-a", "-q", "--no-trunc", check=True).stdout.split())


def test_builder_prune_removes_dangling_cache_only(daemon, busybox, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f.txt").write_text("one\n")
    keep_df = f"FROM {busybox}\nCOPY f.txt /f.txt\nRUN echo kept > /kept\nENV KEPT=1\n"
    r = _build(daemon, ctx, keep_df, "-t", "prune-keep:latest")
    assert r.returncode == 0, r.describe()
    kept_history = daemon.docker("history", "-q", "prune-keep:latest", check=True).stdout.split()
    before = _image_ids(daemon)
    # a failed build and an earlier version whose tag moved leave dangling intermediate images behind
    r = _build(daemon, ctx, f"FROM {busybox}\nENV FAILED=1\nRUN echo partial > /p\nRUN exit 3\n", "--force-rm")
    assert r.returncode != 0
    r = _build(daemon, ctx, f"FROM {busybox}\nLABEL v=1\nRUN echo old > /v\n", "-t", "prune-moved:latest")
    assert r.returncode == 0, r.describe()
    r = _build(daemon, ctx, f"FROM {busybox}\nLABEL v=2\nRUN echo new > /v\n", "-t", "prune-moved:latest")
    assert r.returncode == 0, r.describe()
    moved = json.loads(daemon.docker("inspect", "prune-moved:latest", check=True).stdout)[0]["Id"]
    moved_chain = set(daemon.docker("history", "-q", "--no-trunc", moved, check=True).stdout.split())
    dangling = _image_ids(daemon) - before - moved_chain
    assert len(dangling) >= 4, dangling
    # an untagged build image a container uses is kept
    used_ctx = tmp_path / "used"
    used_ctx.mkdir()
    r = _build(daemon, used_ctx, f"FROM {busybox}\nENV USED=1\n", "-q")
    used = r.stdout.strip()
    daemon.docker("create", "--name", "prune-user", used, "true", check=True)
    try:
        r = daemon.docker("builder", "prune", "-f")
        assert r.returncode == 0, r.describe()
        assert "Total reclaimed space:" in r.stdout, r.describe()
        left = _image_ids(daemon)
        assert not (dangling & left), dangling & left
        assert used in left and moved_chain - {"<missing>"} <= left
        assert set(kept_history) - {"<missing>"} <= {i.split(":")[-1][:12] for i in left}
        # the cache under the tagged image still serves a rebuild
        r = _build(daemon, ctx, keep_df, "-t", "prune-keep:latest")
        assert r.returncode == 0 and r.stdout.count("Using cache") == 3, r.describe()
    finally:
        daemon.docker("rm", "prune-user")
    # docker-py: the report's shape; the container is gone, so its image is dangling cache now
    report = daemon.api.api.prune_builds()
    assert used in (report["CachesDeleted"] or []) and report["SpaceReclaimed"] >= 0
    report = daemon.api.api.prune_builds()
    assert report == {"CachesDeleted": None, "SpaceReclaimed": 0}
    assert daemon.docker("image", "inspect", busybox).returncode == 0
    daemon.docker("rmi", "prune-keep:latest", "prune-moved:latest")


def test_builder_prune_until_filter(daemon, busybox, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    r = _build(daemon, ctx, f"FROM {busybox}\nENV RECENT=1\n", "-q")
    recent = r.stdout.strip()
    r = daemon.docker("builder", "prune", "-f", "--filter", "until=1h")
    assert r.returncode == 0, r.describe()
    assert recent in _image_ids(daemon)          # younger than an hour: kept
    assert recent in (daemon.api.api.prune_builds()["CachesDeleted"] or [])


def test_run_steps_discard_changes_under_volume_paths(daemon, busybox, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    volumes_before = set(daemon.docker("volume", "ls", "-q", check=True).stdout.split())
    r = _build(daemon, ctx, f"FROM {busybox}\nRUN mkdir /data && echo before > /data/kept\nVOLUME /data\n"
                            "RUN echo lost > /data/lost && echo also > /data/kept\n"
                            "RUN ls /data > /listing; cat /data/kept >> /listing\n", "-t", "vol-steps:latest")
    assert r.returncode == 0, r.describe()
    try:
        out = daemon.docker("run", "--rm", "vol-steps:latest", "cat", "/listing").stdout
        assert out == "kept\nbefore\n", out        # what RUN wrote under the VOLUME was discarded
        # the RUN containers' anonymous volumes went with them
        assert set(daemon.docker("volume", "ls", "-q", check=True).stdout.split()) == volumes_before
    finally:
        daemon.docker("rmi", "vol-steps:latest")
