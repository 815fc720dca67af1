"""Image commands beyond pull/push: commit, history, image prune, images filters, save/load formats."""
from __future__ import annotations

import json
import tarfile
import time


def test_commit_then_run_shows_the_file(daemon, busybox):
    name = "commit-src"
    r = daemon.docker("run", "--name", name, "--network", "none", busybox, "sh", "-c",
                      "echo committed > /hello.txt && rm /bin/true")
    assert r.returncode == 0, r.describe()
    c = daemon.docker("commit", "-m", "add hello", "-a", "Tester <t@example.com>",
                      "--change", "ENV GREETING=hi", "--change", 'CMD ["cat", "/hello.txt"]', name, "committed:1")
    assert c.returncode == 0 and c.stdout.startswith("sha256:"), c.describe()
    out = daemon.docker("run", "--rm", "--network", "none", "committed:1")
    assert out.returncode == 0 and out.stdout == "committed\n", out.describe()
    gone = daemon.docker("run", "--rm", "--network", "none", "committed:1", "sh", "-c",
                         "test -e /bin/true && echo present || echo deleted; echo $GREETING")
    assert gone.stdout == "deleted\nhi\n", gone.describe()
    info = json.loads(daemon.docker("image", "inspect", "committed:1", check=True).stdout)[0]
    assert info["Author"] == "Tester <t@example.com>" and info["Comment"] == "add hello"
    assert len(info["RootFS"]["Layers"]) == 2
    # pyd's own client, and docker-py
    p = daemon.pyd("commit", name, "committed:2")
    assert p.returncode == 0 and p.stdout.startswith("sha256:"), p.describe()
    img = daemon.api.containers.get(name).commit(repository="committed", tag="3")
    assert "committed:3" in img.tags
    daemon.docker("rm", name, check=True)


def test_history_lists_layers(daemon, busybox):
    daemon.docker("run", "--name", "hist-src", "--network", "none", busybox, "sh", "-c", "echo x > /x").returncode
    daemon.docker("commit", "-m", "second layer", "hist-src", "hist:1", check=True)
    daemon.docker("rm", "hist-src", check=True)
    h = daemon.docker("history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Comment}}", "hist:1")
    assert h.returncode == 0, h.describe()
    lines = h.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("sha256:") and lines[0].endswith("|second layer")
    assert "sh -c echo x > /x" in lines[0]
    api = daemon.api.images.get("hist:1").history()
    assert len(api) == 2 and api[0]["Tags"] == ["hist:1"] and api[0]["Size"] > 0
    table = daemon.pyd("history", "hist:1")
    assert table.returncode == 0 and table.stdout.startswith("IMAGE"), table.describe()
    assert "second layer" in table.stdout


def test_image_prune_removes_dangling_images(daemon, busybox):
    daemon.docker("run", "--name", "prune-src", "--network", "none", busybox, "true", check=True)
    dangling = daemon.docker("commit", "prune-src", check=True).stdout.strip()
    daemon.docker("commit", "prune-src", "keep:1", check=True)
    daemon.docker("rm", "prune-src", check=True)
    listed = daemon.docker("images", "-q", "--no-trunc", "--filter", "dangling=true").stdout.split()
    assert dangling in listed
    r = daemon.docker("image", "prune", "-f")
    assert r.returncode == 0, r.describe()
    assert f"deleted: {dangling}" in r.stdout and "Total reclaimed space:" in r.stdout
    assert daemon.docker("image", "inspect", dangling).returncode == 1
    assert daemon.docker("image", "inspect", "keep:1").returncode == 0
    again = daemon.pyd("image", "prune", "-f")
    assert again.returncode == 0 and "Total reclaimed space: 0B" in again.stdout, again.describe()
    daemon.docker("tag", "keep:1", "labelled:1", check=True)
    allp = daemon.api.images.prune(filters={"dangling": False, "label": "nope=1"})
    assert not allp["ImagesDeleted"]


def test_images_filters_and_digests(daemon, busybox):
    daemon.docker("tag", busybox, "filt/a:1", check=True)
    refs = daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=filt/*").stdout
    assert refs.split() == ["filt/a:1"]
    # a `*` stays within one path component, as Go's path.Match
    daemon.docker("tag", busybox, "filtb:1", check=True)
    starred = daemon.docker("images", "--format", "{{.Repository}}", "--filter", "reference=*il*").stdout
    assert starred.split() == ["filtb"]
    # since= compares the times to the fraction of a second: two commits in one second are ordered
    first = daemon.docker("commit", daemon.docker("create", busybox, "true", check=True).stdout.strip(),
                          "since-a:1", check=True).stdout.strip()
    daemon.docker("commit", daemon.docker("create", busybox, "true", check=True).stdout.strip(), "since-b:1",
                  check=True)
    newer = daemon.docker("images", "--format", "{{.Repository}}", "--filter", f"since={first}").stdout
    assert newer.split() == ["since-b"]
    d = daemon.docker("images", "--digests", "filt/a")
    assert d.returncode == 0 and "DIGEST" in d.stdout.splitlines()[0]


def test_save_writes_oci_layout_and_loads_back(daemon, busybox):
    daemon.docker("tag", busybox, "saved:1", check=True)
    out = daemon.root / "saved.tar"
    daemon.docker("save", "-o", str(out), "saved:1", check=True)
    with tarfile.open(out) as t:
        names = t.getnames()
        assert "oci-layout" in names and "index.json" in names and "manifest.json" in names
        index = json.load(t.extractfile("index.json"))
        assert index["manifests"][0]["annotations"]["io.containerd.image.name"].endswith("saved:1")
    daemon.docker("rmi", "saved:1", check=True)
    loaded = daemon.docker("load", "-i", str(out))
    assert loaded.returncode == 0 and "Loaded image: saved:1" in loaded.stdout, loaded.describe()


def test_commit_of_a_running_container_pauses_and_resumes_it(daemon, busybox):
    cid = daemon.docker("run", "-d", "--network", "none", busybox, "sh", "-c",
                        "echo live > /live; while true; do sleep 0.1; done", check=True).stdout.strip()
    try:
        deadline = time.monotonic() + 10
        while daemon.docker("exec", cid, "cat", "/live").stdout != "live\n":
            assert time.monotonic() < deadline, "the container never wrote /live"
            time.sleep(0.1)
        image = daemon.docker("commit", cid, "live:1")
        assert image.returncode == 0, image.describe()
        state = json.loads(daemon.docker("inspect", cid, check=True).stdout)[0]["State"]
        assert state["Running"] and not state["Paused"]
        assert daemon.docker("exec", cid, "true").returncode == 0   # thawed: it still runs commands
        out = daemon.docker("run", "--rm", "--network", "none", "live:1", "cat", "/live")
        assert out.stdout == "live\n", out.describe()
        assert f"commit: froze {cid[:12]}" in daemon.log_text()
    finally:
        daemon.docker("rm", "-f", cid)
