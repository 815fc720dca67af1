"""Refusals and failures in dockerd's words and exit codes: bad create settings, an exec whose user or
working directory is not there, bad list filters, an unknown volume driver."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("args, message", [
    (["--stop-signal", "bogus"], "Invalid signal: bogus"),
    (["--mount", "type=bogus,dst=/x"], 'invalid mount config for type "bogus": mount type unknown'),
    (["--isolation", "bogus"], 'Invalid isolation: "bogus" - linux only supports \'default\''),
    (["--storage-opt", "size=1g"], "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"),
])
def test_create_refuses(daemon, busybox, args, message):
    r = daemon.docker("create", *args, busybox, "true")
    assert r.returncode == 1 and f"Error response from daemon: {message}" in r.stderr, r.stderr


def test_exec_of_a_missing_user_or_directory(daemon, busybox):
    cid = daemon.docker("run", "-d", busybox, "sleep", "300", check=True).stdout.strip()
    try:
        r = daemon.docker("exec", "-u", "nosuch", cid, "id")
        assert (r.returncode, r.stdout) == (126, "unable to find user nosuch: no matching entries in passwd file\r\n")
        r = daemon.docker("exec", "-w", "/nonexist", cid, "pwd")
        assert r.returncode == 126
        assert 'chdir to cwd ("/nonexist") set in config.json failed: no such file or directory' in r.stdout
    finally:
        daemon.docker("rm", "-f", cid)


def test_run_refusals_at_start(daemon, busybox):
    r = daemon.docker("run", "--rm", busybox, "")
    assert r.returncode == 127 and 'exec: "": executable file not found in $PATH' in r.stderr, r.stderr
    r = daemon.docker("run", "--rm", "--group-add", "nosuch", busybox, "true")
    assert r.returncode == 125 and "Unable to find group nosuch: no matching entries in group file" in r.stderr


def test_update_checks_without_the_cannot_update_prefix(daemon, busybox):
    cid = daemon.docker("create", busybox, "true", check=True).stdout.strip()
    try:
        r = daemon.docker("update", "--memory", "1k", cid)
        assert r.returncode == 1 and r.stderr == "Error response from daemon: Minimum memory limit allowed is 6MB\n"
    finally:
        daemon.docker("rm", "-f", cid)


def test_list_and_volume_refusals(daemon, busybox):
    r = daemon.docker("images", "--filter", "dangling=maybe")
    assert r.returncode == 1 and "Invalid filter 'dangling=[maybe]'" in r.stderr
    r = daemon.docker("volume", "create", "--driver", "bogus", "rf-vol")
    assert r.returncode == 1 and 'create rf-vol: error looking up volume plugin bogus: plugin "bogus" not found' \
        in r.stderr


def test_dev_shm_is_named_shm(daemon, busybox):
    r = daemon.docker("run", "--rm", busybox, "sh", "-c", "grep ' /dev/shm ' /proc/mounts")
    assert r.stdout.split()[:3] == ["shm", "/dev/shm", "tmpfs"], r.stdout
