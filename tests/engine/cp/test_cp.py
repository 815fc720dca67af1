"""docker cp (GET/PUT/HEAD /containers/{id}/archive) and export, through the docker CLI, docker-py and pyd,
including a hostile container whose symlinks point at the host and race with the copies."""
from __future__ import annotations

import io
import os
import tarfile
import time

import pytest

import images

CANARY = "HOST SECRET: must never be read or replaced\n"


def _tar(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _members(chunks) -> dict[str, tarfile.TarInfo]:
    data = b"".join(chunks)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar}


@pytest.fixture
def running(daemon, busybox):
    cid = daemon.docker("run", "-d", busybox, "sleep", "300", check=True).stdout.strip()
    yield cid
    daemon.docker("rm", "-f", cid)


def test_cp_file_and_folder_round_trip(daemon, running, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.txt").write_text("beta\n")
    os.chmod(src / "a.txt", 0o604)
    r = daemon.docker("cp", str(src), f"{running}:/tmp/")
    assert r.returncode == 0, r.describe()
    r = daemon.docker("exec", running, "sh", "-c", "cat /tmp/src/a.txt /tmp/src/sub/b.txt; stat -c %a /tmp/src/a.txt")
    assert r.stdout == "alpha\nbeta\n604\n", r.describe()
    r = daemon.docker("cp", str(src / "a.txt"), f"{running}:/tmp/renamed.txt")      # file to a new name
    assert r.returncode == 0 and daemon.docker("exec", running, "cat", "/tmp/renamed.txt").stdout == "alpha\n"
    out = tmp_path / "back"
    r = daemon.docker("cp", f"{running}:/tmp/src", str(out))
    assert r.returncode == 0, r.describe()
    assert (out / "a.txt").read_text() == "alpha\n" and (out / "sub" / "b.txt").read_text() == "beta\n"
    # contents of a folder with /. into an existing folder
    (tmp_path / "dot").mkdir()
    assert daemon.docker("cp", f"{running}:/tmp/src/.", str(tmp_path / "dot")).returncode == 0
    assert sorted(os.listdir(tmp_path / "dot")) == ["a.txt", "sub"]
    # stdout as a tar stream
    r = daemon.docker("cp", f"{running}:/tmp/src/a.txt", "-")
    assert list(_members([r.stdout_bytes])) == ["a.txt"]


def test_cp_symlinks_and_follow(daemon, running, tmp_path):
    daemon.docker("exec", running, "sh", "-c", "echo target > /tmp/t && ln -s /tmp/t /tmp/link", check=True)
    out = tmp_path / "link-copy"
    assert daemon.docker("cp", f"{running}:/tmp/link", str(out)).returncode == 0
    assert os.path.islink(out) and os.readlink(out) == "/tmp/t"
    followed = tmp_path / "followed"
    assert daemon.docker("cp", "-L", f"{running}:/tmp/link", str(followed)).returncode == 0
    assert not os.path.islink(followed) and followed.read_text() == "target\n"
    # a local symlink goes in as a symlink
    os.symlink("/somewhere/else", tmp_path / "mylink")
    assert daemon.docker("cp", str(tmp_path / "mylink"), f"{running}:/tmp/").returncode == 0
    assert daemon.docker("exec", running, "readlink", "/tmp/mylink").stdout == "/somewhere/else\n"
    # HEAD: the stat header of a symlink names its target inside the container
    _, stat = daemon.api.api.get_archive(running, "/tmp/link")
    assert stat["name"] == "link" and stat["linkTarget"] == "/tmp/t" and stat["mode"] & (1 << 27)


def test_cp_ownership_with_archive_mode(daemon, running, tmp_path):
    f = tmp_path / "owned"
    f.write_text("mine\n")
    os.chown(f, 1234, 5678)
    assert daemon.docker("cp", "-a", str(f), f"{running}:/tmp/owned").returncode == 0
    assert daemon.docker("exec", running, "stat", "-c", "%u:%g", "/tmp/owned").stdout == "1234:5678\n"
    daemon.docker("exec", running, "sh", "-c", "echo c > /tmp/cowned && chown 42:43 /tmp/cowned", check=True)
    # the archive carries the container's ownership; the CLI then creates files as the invoking user
    member = _members([daemon.docker("cp", f"{running}:/tmp/cowned", "-").stdout_bytes])["cowned"]
    assert (member.uid, member.gid) == (42, 43)
    chunks, _ = daemon.api.api.get_archive(running, "/tmp/cowned")
    assert _members(chunks)["cowned"].gid == 43
    mine = tmp_path / "mine"
    assert daemon.docker("cp", "-a", f"{running}:/tmp/cowned", str(mine)).returncode == 0
    assert (os.stat(mine).st_uid, os.stat(mine).st_gid) == (os.getuid(), os.getgid())
    # copyUIDGID with a configured user: what is copied in belongs to that user
    cid = daemon.docker("create", "-u", "nobody", "busybox", "true", check=True).stdout.strip()
    try:
        assert daemon.docker("cp", "-a", str(f), f"{cid}:/tmp/for-nobody").returncode == 0
        member = _members([daemon.docker("cp", f"{cid}:/tmp/for-nobody", "-").stdout_bytes])["for-nobody"]
        assert (member.uid, member.gid) == (65534, 65534)
        assert daemon.docker("cp", str(f), f"{cid}:/tmp/kept-owner").returncode == 0
        member = _members([daemon.docker("cp", f"{cid}:/tmp/kept-owner", "-").stdout_bytes])["kept-owner"]
        assert (member.uid, member.gid) == (1234, 5678)
    finally:
        daemon.docker("rm", cid)


def test_cp_stopped_container_and_errors(daemon, busybox, tmp_path):
    cid = daemon.docker("create", "--name", "cp-stopped", busybox, "true", check=True).stdout.strip()
    try:
        (tmp_path / "x").write_text("into a stopped one\n")
        assert daemon.docker("cp", str(tmp_path / "x"), "cp-stopped:/x").returncode == 0
        assert daemon.docker("start", "-a", cid).returncode == 0
        assert daemon.docker("cp", "cp-stopped:/x", str(tmp_path / "y")).returncode == 0
        assert (tmp_path / "y").read_text() == "into a stopped one\n"
        r = daemon.docker("cp", "cp-stopped:/nope", str(tmp_path / "z"))
        assert r.returncode == 1 and "Could not find the file /nope in container cp-stopped" in r.stderr
        import docker
        with pytest.raises(docker.errors.NotFound):
            daemon.api.api.get_archive(cid, "/nope")
        with pytest.raises(docker.errors.APIError) as info:
            daemon.api.api.put_archive(cid, "/x", _tar({"f": b"1"}))      # not a directory
        assert info.value.status_code == 400
        # docker cp sends noOverwriteDirNonDir: a folder may not replace a file (docker-py's put_archive may)
        daemon.api.api.put_archive(cid, "/tmp", _tar({"clash": b"a file"}))
        (tmp_path / "clash").mkdir()
        r = daemon.docker("cp", str(tmp_path / "clash"), "cp-stopped:/tmp/")
        assert r.returncode == 1 and 'cannot overwrite non-directory "/tmp/clash" with directory' in r.stderr
    finally:
        daemon.docker("rm", "-f", cid)


def test_cp_into_volume_lands_in_volume(daemon, busybox, tmp_path):
    cid = daemon.docker("create", "-v", "cpvol:/data", busybox, "cat", "/data/in", check=True).stdout.strip()
    try:
        (tmp_path / "in").write_text("via cp\n")
        assert daemon.docker("cp", str(tmp_path / "in"), f"{cid}:/data/in").returncode == 0
        mountpoint = daemon.api.volumes.get("cpvol").attrs["Mountpoint"]
        assert open(os.path.join(mountpoint, "in")).read() == "via cp\n"
        assert daemon.docker("start", "-a", cid).stdout == "via cp\n"
        assert daemon.docker("cp", f"{cid}:/data/in", str(tmp_path / "out")).returncode == 0
        assert (tmp_path / "out").read_text() == "via cp\n"
    finally:
        daemon.docker("rm", "-f", cid)
        daemon.docker("volume", "rm", "cpvol")


def test_export(daemon, running, tmp_path):
    daemon.docker("exec", running, "sh", "-c", "echo exported > /marker", check=True)
    out = tmp_path / "export.tar"
    assert daemon.docker("export", "-o", str(out), running).returncode == 0
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert {"bin/busybox", "marker", "etc/passwd"} <= names
        assert tar.extractfile("marker").read() == b"exported\n"
    assert daemon.pyd("export", "-o", str(tmp_path / "p.tar"), running).returncode == 0
    assert "marker" in tarfile.open(tmp_path / "p.tar").getnames()


def test_pyd_cp(daemon, running, tmp_path):
    (tmp_path / "p").write_text("pyd cp\n")
    r = daemon.pyd("cp", str(tmp_path / "p"), f"{running}:/tmp/")
    assert r.returncode == 0, r.describe()
    r = daemon.pyd("cp", f"{running}:/tmp/p", str(tmp_path / "q"))
    assert r.returncode == 0 and (tmp_path / "q").read_text() == "pyd cp\n"
    r = daemon.pyd("cp", f"{running}:/nope", str(tmp_path / "z"))
    assert r.returncode == 1 and "Could not find the file /nope" in r.stderr


# ---------------------------------------------------------------- a hostile container

@pytest.fixture(scope="module")
def hostile_image(daemon, tmp_path_factory):
    """busybox whose /etc is a symlink to / (passwd and group at the top)."""
    entries = [e for e in images.busybox_entries() if not e.path.startswith("etc")]
    entries += [images.symlink("etc", "/"), images.file("passwd", images.PASSWD), images.file("group", images.GROUP)]
    path = tmp_path_factory.mktemp("hostile") / "rootfs.tar"
    path.write_bytes(images.tar_bytes(entries))
    daemon.docker("import", str(path), "hostile:latest", check=True)
    return "hostile:latest"


def test_hostile_symlinks_never_reach_the_host(daemon, hostile_image, tmp_path):
    canary_dir = tmp_path / "canary-dir"
    canary_dir.mkdir()
    canary = canary_dir / "canary"
    canary.write_text(CANARY)
    decoy = f"mkdir -p {canary_dir} && echo decoy > {canary_dir}/canary"
    swap = ("end=$(( $(date +%s) + 6 )); while [ $(date +%s) -lt $end ]; do "
            "for i in 1 2 3 4 5 6 7 8 9 10; do "
            f"rm -rf /race; mkdir /race; rm -rf /race; ln -s {canary_dir} /race; "
            f"rm -f /race2; echo c > /race2; rm -f /race2; ln -s {canary} /race2; done; done")
    cid = daemon.docker("run", "-d", hostile_image, "sh", "-c", f"{decoy}; {swap}; sleep 60",
                        check=True).stdout.strip()
    try:
        payload = tmp_path / "payload"
        payload.write_text("pwned\n")
        # through /etc -> /: lands in the container's own copy of the path
        r = daemon.docker("cp", str(payload), f"{cid}:/etc{canary_dir}/")
        assert r.returncode == 0, r.describe()
        r = daemon.docker("cp", f"{cid}:/etc{canary_dir}/canary", "-")
        assert b"decoy" in r.stdout_bytes and CANARY.encode() not in r.stdout_bytes
        # racing: the container swaps /race between a folder and a symlink to the host path
        api = daemon.api.api
        deadline, rounds, reads = time.monotonic() + 4, 0, 0
        while time.monotonic() < deadline and rounds < 400:
            rounds += 1
            for target in ("/race", "/race/", "/etc/race"):
                try:
                    api.put_archive(cid, target, _tar({"pwned": b"x", "canary": b"replaced"}))
                except Exception:
                    pass
            for source in ("/race/canary", "/race2", "/race2/.", "/race/."):
                try:
                    chunks, _ = api.get_archive(cid, source)
                    data = b"".join(chunks)
                except Exception:
                    continue
                reads += 1
                assert CANARY.encode() not in data
        assert rounds > 5 and reads > 0
        assert sorted(os.listdir(canary_dir)) == ["canary"]
        assert canary.read_text() == CANARY
        # and the container's side did receive what was sent
        r = daemon.docker("exec", cid, "cat", f"{canary_dir}/payload")
        assert r.stdout == "pwned\n", r.describe()
    finally:
        daemon.docker("rm", "-f", cid)
    assert sorted(os.listdir(canary_dir)) == ["canary"] and canary.read_text() == CANARY
