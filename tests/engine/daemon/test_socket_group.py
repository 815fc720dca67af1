"""The API socket's group, as dockerd sets it: `docker` when that group exists, another with -G/--group
(a name or a number), and a daemon that refuses to start on a group that does not exist."""
from __future__ import annotations

import grp
import os
import stat
import subprocess

import pytest


def _sock_mode_and_gid(d) -> tuple[int, int]:
    st = os.stat(d.sock)
    return stat.S_IMODE(st.st_mode), st.st_gid


def test_the_socket_is_group_docker_by_default(make_daemon):
    try:
        docker_gid = grp.getgrnam("docker").gr_gid
    except KeyError:
        pytest.skip("no group docker on this host")
    d = make_daemon()
    assert _sock_mode_and_gid(d) == (0o660, docker_gid)


@pytest.mark.parametrize("how", ["name", "number", "config-file"])
def test_group_picks_another(make_daemon, how):
    group = grp.getgrnam("adm") if "adm" in {g.gr_name for g in grp.getgrall()} else grp.getgrgid(os.getgid())
    if how == "config-file":
        d = make_daemon(config={"group": group.gr_name})
    else:
        d = make_daemon("-G" if how == "name" else "--group", group.gr_name if how == "name" else str(group.gr_gid))
    assert _sock_mode_and_gid(d) == (0o660, group.gr_gid)


def test_a_missing_group_stops_the_daemon_with_dockerds_words(make_daemon):
    d = make_daemon("--group", "no-such-group-pyd", start=False)
    proc = subprocess.run(d.netns.enter_argv() + d.command(), capture_output=True, text=True, timeout=60, env=d.env())
    assert proc.returncode != 0
    assert "failed to load listeners: group no-such-group-pyd not found" in proc.stderr + proc.stdout
