"""What every container's root holds as dockerd's init layer makes it (/.dockerenv, /etc/mtab, the /etc
mount points), in the container, in export and in cp; the /etc files over a mount on /etc; the process
settings applied as runc applies them (--oom-score-adj, --domainname)."""
from __future__ import annotations

import io
import tarfile

import pytest


def run(daemon, *args: str):
    return daemon.docker("run", "--rm", *args)


def tar_of(data: bytes) -> tarfile.TarFile:
    return tarfile.open(fileobj=io.BytesIO(data))


def test_dockerenv_and_mtab_in_the_container(daemon, busybox):
    r = run(daemon, busybox, "sh", "-c", "stat -c '%A %s' /.dockerenv; readlink /etc/mtab; head -1 /etc/mtab")
    lines = r.stdout.splitlines()
    assert lines[:2] == ["-rwxr-xr-x 0", "/proc/mounts"], r.stderr
    assert lines[2].split()[1] == "/"             # the container's own mount table: its root first


def test_export_and_cp_of_a_container_that_never_ran(daemon, busybox):
    daemon.docker("create", "--name", "cf-new", "--hostname", "cfh", busybox, "true", check=True)
    try:
        r = daemon.docker("export", "cf-new", check=True)
        members = {m.name: m for m in tar_of(r.stdout_bytes).getmembers()}
        assert members["etc/mtab"].issym() and members["etc/mtab"].linkname == "/proc/mounts"
        for name in (".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf", "dev/console"):
            assert members[name].isfile() and members[name].size == 0 and members[name].mode == 0o100755, name   # with the type bits, as dockerd
        assert members["dev/pts"].isdir() and members["dev/shm"].isdir()
        # dockerd has no /etc files of its own for it yet: cp finds the empty ones, inspect names none
        r = daemon.docker("cp", "cf-new:/etc/hostname", "-", check=True)
        assert [(m.name, m.size) for m in tar_of(r.stdout_bytes).getmembers()] == [("hostname", 0)]
        assert daemon.docker("inspect", "-f", "[{{.HostnamePath}}{{.HostsPath}}{{.ResolvConfPath}}]",
                             "cf-new").stdout == "[]\n"
        # they are not the container's changes
        assert daemon.docker("diff", "cf-new", check=True).stdout == ""
        daemon.docker("start", "-a", "cf-new", check=True)
        r = daemon.docker("cp", "cf-new:/etc/hostname", "-", check=True)
        assert tar_of(r.stdout_bytes).extractfile("hostname").read() == b"cfh\n"     # after a start: its own
        assert daemon.docker("inspect", "-f", "{{.HostnamePath}}", "cf-new").stdout.strip().endswith("/hostname")
    finally:
        daemon.docker("rm", "-f", "cf-new")


def test_commit_leaves_the_init_files_out(daemon, busybox):
    daemon.docker("run", "--name", "cf-commit", busybox, "touch", "/made", check=True)
    try:
        daemon.docker("commit", "cf-commit", "cf-committed", check=True)
        r = daemon.docker("save", "cf-committed", check=True)
        saved = tar_of(r.stdout_bytes)
        layers = [n for n in saved.getnames() if n.endswith("layer.tar") or n.startswith("blobs/")]
        names = set()
        for layer in layers:
            member = saved.getmember(layer)
            if member.isfile():
                try:
                    names |= set(tar_of(saved.extractfile(member).read()).getnames())
                except tarfile.ReadError:
                    pass                    # a config or manifest blob
        assert "made" in names and not names & {".dockerenv", "etc/mtab", "etc/hosts", "dev/console"}
    finally:
        daemon.docker("rm", "-f", "cf-commit")
        daemon.docker("rmi", "cf-committed")


@pytest.mark.parametrize("mount", [["-v", "cf-etc:/etc"], ["--tmpfs", "/etc"]])
def test_etc_files_over_a_mount_on_etc(daemon, busybox, mount):
    r = run(daemon, *mount, "--hostname", "cfv", busybox, "sh", "-c",
            "cat /etc/hostname; grep -c localhost /etc/hosts; grep -c nameserver /etc/resolv.conf")
    daemon.docker("volume", "rm", "cf-etc")
    lines = r.stdout.splitlines()
    assert lines[0] == "cfv" and int(lines[1]) > 0 and int(lines[2]) > 0, (r.stdout, r.stderr)


def test_oom_score_adj_applied_to_the_process_and_its_execs(daemon, busybox):
    assert run(daemon, "--oom-score-adj", "300", busybox, "cat", "/proc/1/oom_score_adj").stdout == "300\n"
    assert run(daemon, busybox, "cat", "/proc/1/oom_score_adj").stdout == "0\n"
    # (lowering it needs CAP_SYS_RESOURCE, which a test host run in a container may lack)
    cid = daemon.docker("run", "-d", "--oom-score-adj", "500", busybox, "sleep", "300", check=True).stdout.strip()
    try:
        assert daemon.docker("exec", cid, "cat", "/proc/self/oom_score_adj").stdout == "500\n"
    finally:
        daemon.docker("rm", "-f", cid)
    r = run(daemon, "--oom-score-adj", "1001", busybox, "true")
    assert r.returncode == 125 and "Invalid value 1001, range for oom score adj is [-1000, 1000]" in r.stderr


def test_domainname_applied(daemon, busybox):
    r = run(daemon, "--hostname", "h1", "--domainname", "example.test", busybox, "sh", "-c",
            "hostname; cat /proc/sys/kernel/domainname; tail -1 /etc/hosts")
    lines = r.stdout.splitlines()
    assert lines[:2] == ["h1", "example.test"], r.stderr
    assert lines[2].split()[1:] == ["h1.example.test", "h1"]       # libnetwork's FQDN, then the bare name
    assert run(daemon, busybox, "cat", "/proc/sys/kernel/domainname").stdout == "(none)\n"
    r = run(daemon, "--hostname", "a.b", busybox, "tail", "-1", "/etc/hosts")
    assert r.stdout.split()[1:] == ["a.b", "a"]
