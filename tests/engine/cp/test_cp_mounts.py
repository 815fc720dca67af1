"""docker cp on a running container goes through the container's own mount namespace: tmpfs mounts
(--tmpfs and --mount type=tmpfs) and mounts nested below the destination receive what is copied, as in Docker."""
from __future__ import annotations

import os


def test_cp_into_and_out_of_tmpfs(daemon, busybox, tmp_path):
    cid = daemon.docker("run", "-d", "--tmpfs", "/scratch", "--mount", "type=tmpfs,destination=/mtmp",
                        busybox, "sleep", "300", check=True).stdout.strip()
    try:
        (tmp_path / "f").write_text("into tmpfs\n")
        for dest in ("/scratch/", "/mtmp/"):
            r = daemon.docker("cp", str(tmp_path / "f"), f"{cid}:{dest}")
            assert r.returncode == 0, r.describe()
        r = daemon.docker("exec", cid, "sh", "-c", "cat /scratch/f /mtmp/f; grep -c ' /scratch \\| /mtmp ' /proc/mounts")
        assert r.stdout == "into tmpfs\ninto tmpfs\n2\n", r.describe()
        daemon.docker("exec", cid, "sh", "-c", "echo made-in-tmpfs > /scratch/g", check=True)
        r = daemon.docker("cp", f"{cid}:/scratch/g", str(tmp_path / "g"))
        assert r.returncode == 0 and (tmp_path / "g").read_text() == "made-in-tmpfs\n", r.describe()
    finally:
        daemon.docker("rm", "-f", cid)
    # the image's /scratch was never written: the file went to the tmpfs only
    cid = daemon.docker("create", busybox, "true", check=True).stdout.strip()
    try:
        assert daemon.docker("cp", f"{cid}:/scratch/f", "-").returncode == 1
    finally:
        daemon.docker("rm", cid)


def test_cp_tree_with_a_mount_nested_below_the_destination(daemon, busybox, tmp_path):
    inner = tmp_path / "inner-bind"
    inner.mkdir()
    cid = daemon.docker("run", "-d", "-v", "cp-outer:/data", "-v", f"{inner}:/data/inner", busybox, "sleep", "300",
                        check=True).stdout.strip()
    try:
        tree = tmp_path / "tree"
        (tree / "inner").mkdir(parents=True)
        (tree / "top.txt").write_text("outer\n")
        (tree / "inner" / "deep.txt").write_text("nested\n")
        r = daemon.docker("cp", f"{tree}/.", f"{cid}:/data")
        assert r.returncode == 0, r.describe()
        assert (inner / "deep.txt").read_text() == "nested\n"       # in the bind mounted at /data/inner
        outer = daemon.api.volumes.get("cp-outer").attrs["Mountpoint"]
        assert open(os.path.join(outer, "top.txt")).read() == "outer\n"
        assert not os.path.exists(os.path.join(outer, "inner", "deep.txt"))
        # and back out: the archive of /data shows the nested mount's content
        out = tmp_path / "back"
        assert daemon.docker("cp", f"{cid}:/data", str(out)).returncode == 0
        assert (out / "inner" / "deep.txt").read_text() == "nested\n"
    finally:
        daemon.docker("rm", "-f", cid)
        daemon.docker("volume", "rm", "cp-outer")


def test_read_only_mounts_refuse_copies(daemon, busybox, tmp_path):
    cid = daemon.docker("run", "-d", "--read-only", "--mount", "type=tmpfs,destination=/rw",
                        "--mount", "type=tmpfs,destination=/ro,readonly", busybox, "sleep", "300",
                        check=True).stdout.strip()
    try:
        (tmp_path / "f").write_text("x\n")
        assert daemon.docker("cp", str(tmp_path / "f"), f"{cid}:/rw/").returncode == 0
        r = daemon.docker("cp", str(tmp_path / "f"), f"{cid}:/ro/")
        assert r.returncode == 1 and "mounted volume is marked read-only" in r.stderr, r.describe()
        r = daemon.docker("cp", str(tmp_path / "f"), f"{cid}:/tmp/")
        assert r.returncode == 1 and "container rootfs is marked read-only" in r.stderr, r.describe()
    finally:
        daemon.docker("rm", "-f", cid)


# ---------------------------------------------------------------- hard links and xattrs, both ways

CAP_NET_RAW = bytes.fromhex("0000000200200000000000000000000000000000")    # v2 file caps: cap_net_raw=p


def _tree_with_links_and_caps(root):
    root.mkdir()
    (root / "a").write_text("shared\n")
    os.link(root / "a", root / "b")
    os.setxattr(root / "a", "security.capability", CAP_NET_RAW)
    return root


def _check_tree(root):
    a, b = os.stat(root / "a"), os.stat(root / "b")
    assert a.st_ino == b.st_ino and a.st_nlink == 2, "hard link lost"
    assert os.getxattr(root / "a", "security.capability") == CAP_NET_RAW


def test_cp_keeps_hard_links_and_file_capabilities(daemon, busybox, tmp_path):
    import io
    import tarfile
    cid = daemon.docker("run", "-d", busybox, "sleep", "300", check=True).stdout.strip()
    try:
        for client in ("pyd", "docker"):
            run = getattr(daemon, client)
            src = _tree_with_links_and_caps(tmp_path / f"src-{client}")
            r = run("cp", str(src), f"{cid}:/{client}-in")
            assert r.returncode == 0, r.describe()
            r = daemon.docker("exec", cid, "sh", "-c", f"stat -c '%h %i' /{client}-in/a /{client}-in/b")
            links, ino_b = r.stdout.split("\n")[:2]
            assert links.split()[0] == "2" and links.split()[1] == ino_b.split()[1], r.describe()
            chunks, _ = daemon.api.api.get_archive(cid, f"/{client}-in/a")
            with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
                a = tar.getmember("a")
                assert a.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == \
                    CAP_NET_RAW
            out = tmp_path / f"out-{client}"
            r = run("cp", f"{cid}:/{client}-in", str(out))
            assert r.returncode == 0, r.describe()
            _check_tree(out)
    finally:
        daemon.docker("rm", "-f", cid)
