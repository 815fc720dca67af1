"""Volumes and mounts through the docker CLI, docker-py and pyd: named, anonymous and image volumes,
binds, --mount, tmpfs, --volumes-from, copy-up, the volume commands and their errors."""
from __future__ import annotations

import json
import os

import docker
import pytest

import images


@pytest.fixture(scope="module")
def seeded(daemon, tmp_path_factory):
    """An image with VOLUME /data whose /data/seed (owned 123:456) exists in the image."""
    entries = images.busybox_entries() + [
        images.directory("data", 0o750),
        images.Entry("data/seed", "file", b"from the image\n", 0o640, uid=123, gid=456),
    ]
    path = tmp_path_factory.mktemp("seeded") / "rootfs.tar"
    path.write_bytes(images.tar_bytes(entries))
    r = daemon.docker("import", "--change", "VOLUME /data", str(path), "seeded:latest")
    assert r.returncode == 0, r.describe()
    return "seeded:latest"


def _volumes(daemon) -> set[str]:
    return set(daemon.docker("volume", "ls", "-q").stdout.split())


def test_named_volume_shared_between_containers(daemon, busybox):
    assert daemon.docker("volume", "create", "--label", "team=pyd", "shared").stdout == "shared\n"
    try:
        r = daemon.docker("run", "--rm", "-v", "shared:/v", busybox, "sh", "-c", "echo written > /v/file")
        assert r.returncode == 0, r.describe()
        r = daemon.docker("run", "--rm", "-v", "shared:/w:ro", busybox, "cat", "/w/file")
        assert r.stdout == "written\n", r.describe()
        info = json.loads(daemon.docker("volume", "inspect", "shared").stdout)[0]
        assert info["Driver"] == "local" and info["Scope"] == "local" and info["Labels"] == {"team": "pyd"}
        assert info["Mountpoint"].endswith("/volumes/shared/_data")
        assert open(info["Mountpoint"] + "/file").read() == "written\n"
        assert "shared" in daemon.docker("volume", "ls", "--filter", "label=team=pyd", "-q").stdout.split()
        assert "shared" not in daemon.docker("volume", "ls", "--filter", "label=team=other", "-q").stdout.split()
    finally:
        daemon.docker("volume", "rm", "shared")
    assert "shared" not in _volumes(daemon)


def test_volume_in_use_cannot_be_removed(daemon, busybox):
    daemon.docker("volume", "create", "busy", check=True)
    cid = daemon.docker("create", "-v", "busy:/v", busybox, "true", check=True).stdout.strip()
    try:
        r = daemon.docker("volume", "rm", "busy")
        assert r.returncode == 1
        assert f"remove busy: volume is in use - [{cid}]" in r.stderr
        with pytest.raises(docker.errors.APIError) as info:
            daemon.api.volumes.get("busy").remove()
        assert info.value.status_code == 409
        dangling = daemon.docker("volume", "ls", "-q", "--filter", "dangling=true").stdout.split()
        assert "busy" not in dangling
    finally:
        daemon.docker("rm", "-f", cid)
    assert daemon.docker("volume", "rm", "busy").returncode == 0


def test_volume_errors(daemon):
    r = daemon.docker("volume", "inspect", "nope")
    assert r.returncode == 1 and "no such volume" in r.stderr
    with pytest.raises(docker.errors.NotFound):
        daemon.api.volumes.get("nope")
    r = daemon.docker("volume", "create", "bad/name")
    assert r.returncode == 1 and "includes invalid characters for a local volume name" in r.stderr
    r = daemon.docker("volume", "create", "--opt", "bogus=1", "optbad")
    assert r.returncode == 1 and 'invalid option key: "bogus"' in r.stderr


def test_image_volume_content_copied_into_fresh_named_volume(daemon, seeded):
    try:
        r = daemon.docker("run", "--rm", "-v", "fresh:/data", seeded, "sh", "-c",
                          "cat /data/seed; stat -c '%u:%g %a' /data/seed /data")
        assert r.stdout == "from the image\n123:456 640\n0:0 750\n", r.describe()
        info = daemon.api.volumes.get("fresh").attrs
        assert open(os.path.join(info["Mountpoint"], "seed")).read() == "from the image\n"
    finally:
        daemon.docker("volume", "rm", "fresh")


def test_anonymous_volumes_of_image_and_flag(daemon, seeded):
    before = _volumes(daemon)
    cid = daemon.docker("create", "-v", "/scratch", seeded, "cat", "/data/seed", check=True).stdout.strip()
    info = json.loads(daemon.docker("inspect", cid).stdout)[0]
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert set(mounts) == {"/data", "/scratch"}
    for m in mounts.values():
        assert m["Type"] == "volume" and m["Driver"] == "local" and m["RW"] is True and len(m["Name"]) == 64
        assert m["Source"].endswith(f"/volumes/{m['Name']}/_data")
    assert _volumes(daemon) - before == {m["Name"] for m in mounts.values()}
    assert daemon.docker("start", "-a", cid).stdout == "from the image\n"
    assert daemon.docker("rm", "-v", cid).returncode == 0
    assert _volumes(daemon) == before
    # run --rm takes its anonymous volumes along; a named one stays
    r = daemon.docker("run", "--rm", "-v", "/anon", "-v", "kept:/kept", seeded, "true")
    assert r.returncode == 0, r.describe()
    assert _volumes(daemon) - before == {"kept"}
    daemon.docker("volume", "rm", "kept", check=True)


def test_prune_removes_only_anonymous_unless_all(daemon, busybox):
    daemon.docker("volume", "create", "named-prune", check=True)
    anon = daemon.api.volumes.create().name         # docker-py: no name -> an anonymous volume
    assert len(anon) == 64
    result = daemon.api.volumes.prune()
    assert anon in (result["VolumesDeleted"] or []) and "named-prune" in _volumes(daemon)
    result = daemon.api.volumes.prune(filters={"all": "true"})
    assert "named-prune" in result["VolumesDeleted"]
    assert "named-prune" not in _volumes(daemon)


def test_bind_mounts_read_only_and_created(daemon, busybox, tmp_path):
    host = tmp_path / "shared"
    host.mkdir()
    (host / "in").write_text("host data\n")
    r = daemon.docker("run", "--rm", "-v", f"{host}:/h:ro", busybox, "sh", "-c",
                      "cat /h/in; echo x > /h/new")
    assert r.stdout == "host data\n" and r.returncode != 0
    assert "Read-only file system" in r.stderr
    assert not (host / "new").exists()
    r = daemon.docker("run", "--rm", "-v", f"{host}:/h", busybox, "sh", "-c", "echo y > /h/new")
    assert r.returncode == 0 and (host / "new").read_text() == "y\n"
    missing = tmp_path / "made" / "by" / "v"
    assert daemon.docker("run", "--rm", "-v", f"{missing}:/m", busybox, "true").returncode == 0
    assert missing.is_dir()
    r = daemon.docker("run", "--rm", "--mount", f"type=bind,source={tmp_path}/absent,target=/m", busybox, "true")
    assert r.returncode == 125 and "bind source path does not exist" in r.stderr
    cid = daemon.docker("create", "--mount", f"type=bind,src={host},dst=/b,readonly,bind-propagation=rslave",
                        busybox, "true", check=True).stdout.strip()
    m = json.loads(daemon.docker("inspect", cid).stdout)[0]["Mounts"][0]
    assert m == {"Type": "bind", "Source": str(host), "Destination": "/b", "Mode": "", "RW": False,
                 "Propagation": "rslave"}
    daemon.docker("rm", cid)


def test_mount_flag_volume_and_tmpfs(daemon, seeded):
    r = daemon.docker("run", "--rm", "--mount", "type=volume,src=nocopy-vol,dst=/data,volume-nocopy",
                      "--mount", "type=tmpfs,dst=/scratch,tmpfs-size=2m,tmpfs-mode=1770",
                      seeded, "sh", "-c", "ls /data | wc -l; df -k /scratch | tail -n 1; stat -c %a /scratch")
    assert r.returncode == 0, r.describe()
    count, df, mode = r.stdout.splitlines()
    assert count.strip() == "0"                 # volume-nocopy: nothing copied up
    assert df.split()[1] == "2048"              # 2 MiB tmpfs
    assert mode == "1770"
    daemon.docker("volume", "rm", "nocopy-vol", check=True)


def test_tmpfs_option_volume(daemon, busybox):
    v = daemon.api.volumes.create("tmpvol", driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=3m"})
    try:
        assert v.attrs["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=3m"}
        out = daemon.api.containers.run(busybox, ["sh", "-c", "df -k /t | tail -n 1; echo hi > /t/f"],
                                        volumes={"tmpvol": {"bind": "/t", "mode": "rw"}}, remove=True)
        assert out.split()[1] == b"3072"
        assert not os.path.ismount(v.attrs["Mountpoint"])      # unmounted when the container is gone
    finally:
        v.remove()


def test_volumes_from(daemon, busybox):
    daemon.docker("create", "--name", "vsrc", "-v", "/shared-data", busybox, "true", check=True)
    try:
        r = daemon.docker("run", "--rm", "--volumes-from", "vsrc", busybox, "sh", "-c", "echo via > /shared-data/f")
        assert r.returncode == 0, r.describe()
        r = daemon.docker("run", "--rm", "--volumes-from", "vsrc:ro", busybox, "sh", "-c",
                          "cat /shared-data/f; touch /shared-data/g")
        assert r.stdout == "via\n" and r.returncode != 0
        r = daemon.docker("run", "--rm", "--volumes-from", "nope", busybox, "true")
        assert r.returncode == 125 and "No such container: nope" in r.stderr
    finally:
        daemon.docker("rm", "-v", "vsrc")


def test_bad_volume_specs(daemon, busybox):
    r = daemon.docker("run", "--rm", "-v", "/a:/b:bogus", busybox, "true")
    assert r.returncode == 125 and "invalid mode: bogus" in r.stderr
    r = daemon.docker("run", "--rm", "-v", "/tmp:/", busybox, "true")
    assert r.returncode == 125 and "destination can't be '/'" in r.stderr
    r = daemon.docker("run", "--rm", "-v", "v1:/d", "-v", "v2:/d", busybox, "true")
    assert r.returncode == 125 and "Duplicate mount point: /d" in r.stderr
    assert not {"v1", "v2"} & _volumes(daemon)


def test_pyd_volume_commands(daemon, busybox):
    assert daemon.pyd("volume", "create", "pv").stdout == "pv\n"
    r = daemon.pyd("volume", "ls")
    assert r.stdout.splitlines()[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert ["local", "pv"] in [line.split() for line in r.stdout.splitlines()]
    assert json.loads(daemon.pyd("volume", "inspect", "pv").stdout)[0]["Name"] == "pv"
    assert daemon.pyd("volume", "inspect", "--format", "{{.Driver}}", "pv").stdout == "local\n"
    r = daemon.pyd("run", "--rm", "-v", "pv:/pv", busybox, "sh", "-c", "echo pyd > /pv/x && cat /pv/x")
    assert r.stdout == "pyd\n", r.describe()
    assert daemon.pyd("volume", "rm", "pv").stdout == "pv\n"
    r = daemon.pyd("volume", "rm", "pv")
    assert r.returncode == 1 and "no such volume" in r.stderr


def test_volumes_and_mounts_survive_a_daemon_restart(daemon, busybox):
    cid = daemon.docker("create", "-v", "persist:/p", "-v", "/anon", busybox, "cat", "/p/f",
                        check=True).stdout.strip()
    daemon.docker("run", "--rm", "-v", "persist:/p", busybox, "sh", "-c", "echo kept > /p/f", check=True)
    before = json.loads(daemon.docker("inspect", cid).stdout)[0]["Mounts"]
    daemon.restart()
    assert json.loads(daemon.docker("inspect", cid).stdout)[0]["Mounts"] == before
    assert daemon.docker("start", "-a", cid).stdout == "kept\n"
    anon = next(m["Name"] for m in before if m["Destination"] == "/anon")
    assert {"persist", anon} <= _volumes(daemon)
    daemon.docker("rm", "-v", cid, check=True)
    assert anon not in _volumes(daemon) and "persist" in _volumes(daemon)
    daemon.docker("volume", "rm", "persist", check=True)


def test_volume_subpath_mount(daemon, busybox):
    """--mount type=volume,volume-subpath=DIR (API 1.45): only that directory of the volume, no copy-up."""
    daemon.docker("volume", "create", "subvol", check=True)
    try:
        daemon.docker("run", "--rm", "-v", "subvol:/vol", busybox, "sh", "-c",
                      "mkdir -p /vol/sub/deeper && echo inside > /vol/sub/f && echo top > /vol/top "
                      "&& ln -s ../.. /vol/sub/up", check=True)
        r = daemon.docker("run", "--rm", "--mount", "type=volume,src=subvol,dst=/mnt,volume-subpath=sub,readonly",
                          busybox, "sh", "-c", "cat /mnt/f; ls /mnt; touch /mnt/x", check=False)
        assert r.stdout.split() == ["inside", "deeper", "f", "up"] and "Read-only file system" in r.stderr, r.describe()
        r = daemon.pyd("run", "--rm", "--mount", "type=volume,src=subvol,dst=/mnt,volume-subpath=sub/deeper",
                       busybox, "sh", "-c", "touch /mnt/made && ls /mnt", check=True)
        assert r.stdout == "made\n"
        r = daemon.docker("run", "--rm", "--mount", "type=volume,src=subvol,dst=/mnt,volume-subpath=nothere",
                          busybox, "true")
        assert r.returncode != 0 and "no such file or directory" in r.stderr, r.describe()
        r = daemon.docker("run", "--rm", "--mount", "type=volume,src=subvol,dst=/mnt,volume-subpath=sub/up",
                          busybox, "true")
        assert r.returncode != 0 and "the subpath leaves the volume" in r.stderr, r.describe()
        r = daemon.docker("create", "--mount", "type=volume,src=subvol,dst=/mnt,volume-subpath=../x", busybox, "true")
        assert r.returncode != 0 and "subpath must be a relative path within the volume" in r.stderr, r.describe()
    finally:
        daemon.docker("volume", "rm", "-f", "subvol")
