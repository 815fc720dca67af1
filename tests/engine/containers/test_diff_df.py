"""docker diff (GET /containers/{id}/changes), docker system df (GET /system/df) and ps -s, as dockerd shows
them."""
from __future__ import annotations

import json


def test_diff_lists_added_changed_and_deleted_paths(daemon, busybox):
    script = "touch /tmp/new; rm /bin/ls; echo x >> /etc/passwd; mkdir -p /newdir/sub"
    daemon.docker("run", "--name", "df-diff", busybox, "sh", "-c", script, check=True)
    try:
        r = daemon.docker("diff", "df-diff", check=True)
        # a parent before what changed in it (pyd walks in name order; dockerd's order varies from run to
        # run); execd's mount points (/etc/hosts, /proc...) are not changes
        assert r.stdout.splitlines() == ["C /bin", "D /bin/ls", "C /etc", "C /etc/passwd", "A /newdir",
                                         "A /newdir/sub", "C /tmp", "A /tmp/new"]
        changes = daemon.api.api.diff("df-diff")
        assert {"Path": "/bin/ls", "Kind": 2} in changes and {"Path": "/tmp/new", "Kind": 1} in changes
    finally:
        daemon.docker("rm", "-f", "df-diff")


def test_diff_of_an_unchanged_container_is_empty(daemon, busybox):
    daemon.docker("create", "--name", "df-same", busybox, "true", check=True)
    try:
        r = daemon.docker("diff", "df-same", check=True)
        assert r.stdout == ""
        assert daemon.api.api.diff("df-same") is None       # dockerd's nil slice
        missing = daemon.docker("diff", "no-such-container")
        assert missing.returncode == 1 and "No such container: no-such-container" in missing.stderr
    finally:
        daemon.docker("rm", "-f", "df-same")


def test_system_df_counts_images_containers_and_volumes(daemon, busybox):
    daemon.docker("volume", "create", "df-vol", check=True)
    daemon.docker("run", "--name", "df-c", "-v", "df-vol:/data", busybox, "sh", "-c",
                  "head -c 100000 /dev/zero > /data/f; head -c 5000 /dev/zero > /f", check=True)
    try:
        rows = [json.loads(line) for line in
                daemon.docker("system", "df", "--format", "{{json .}}", check=True).stdout.splitlines()]
        by_type = {row["Type"]: row for row in rows}
        assert list(by_type) == ["Images", "Containers", "Local Volumes", "Build Cache"]
        assert by_type["Images"]["TotalCount"] == "1" and by_type["Images"]["Active"] == "1"
        assert by_type["Containers"]["TotalCount"] == "1" and by_type["Containers"]["Active"] == "0"
        assert by_type["Local Volumes"]["TotalCount"] == "1"
        df = daemon.api.df()
        volume = next(v for v in df["Volumes"] if v["Name"] == "df-vol")
        assert volume["UsageData"] == {"Size": 100000, "RefCount": 1}
        container = next(c for c in df["Containers"] if c["Names"] == ["/df-c"])
        image = next(i for i in df["Images"] if "busybox:latest" in i["RepoTags"])
        assert container["SizeRw"] >= 5000
        assert container["SizeRootFs"] == container["SizeRw"] + image["Size"]
        assert image["Containers"] == 1 and df["LayersSize"] >= image["Size"]
        verbose = daemon.docker("system", "df", "-v", check=True).stdout
        assert "df-vol" in verbose and "df-c" in verbose
    finally:
        daemon.docker("rm", "-f", "df-c")
        daemon.docker("volume", "rm", "df-vol")


def test_ps_size_shows_the_virtual_size(daemon, busybox):
    daemon.docker("run", "--name", "df-ps", busybox, "sh", "-c", "head -c 3000 /dev/zero > /f", check=True)
    try:
        r = daemon.docker("ps", "-a", "-s", "--filter", "name=df-ps", "--format", "{{.Size}}", check=True)
        assert r.stdout.strip().endswith(")") and "(virtual " in r.stdout, r.stdout
        # its own 3000 bytes only (not the init layer's /etc/mtab link); inspect -s gives the same
        assert r.stdout.startswith("3kB (virtual "), r.stdout
        sizes = daemon.docker("inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", "df-ps", check=True).stdout.split()
        image = json.loads(daemon.docker("image", "inspect", busybox, check=True).stdout)[0]["Size"]
        assert [int(s) for s in sizes] == [3000, 3000 + image]
        assert daemon.docker("inspect", "-f", "{{.SizeRw}}", "df-ps").stdout == "<nil>\n"   # only with -s
        # COMMAND quotes an argument with a space, as dockerd does
        r = daemon.docker("ps", "-a", "--no-trunc", "--filter", "name=df-ps", "--format", "{{.Command}}")
        assert r.stdout == '"sh -c \'head -c 3000 /dev/zero > /f\'"\n'
    finally:
        daemon.docker("rm", "-f", "df-ps")
