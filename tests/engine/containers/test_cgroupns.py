"""--cgroupns: a private cgroup namespace shows the container's cgroups as the root; the default is dockerd's
for the host (private on cgroup v2, host on v1) and host for clients before API 1.41."""
from __future__ import annotations

import json
from pathlib import Path

import docker

V2_HOST = not Path("/sys/fs/cgroup/memory").is_dir() and Path("/sys/fs/cgroup/cgroup.controllers").exists()


def cgroup_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def test_private_namespace_roots_every_hierarchy_at_the_container(daemon, busybox):
    r = daemon.docker("run", "--rm", "--cgroupns", "private", busybox, "cat", "/proc/self/cgroup", check=True)
    lines = cgroup_lines(r.stdout)
    assert lines and all(line.endswith(":/") for line in lines), r.stdout
    cid = daemon.docker("run", "-d", "--cgroupns", "private", busybox, "sleep", "300", check=True).stdout.strip()
    try:
        out = daemon.docker("exec", cid, "cat", "/proc/self/cgroup", check=True).stdout
        assert all(line.endswith(":/") for line in cgroup_lines(out)), out
        assert daemon.docker("inspect", "-f", "{{.HostConfig.CgroupnsMode}}", cid).stdout.strip() == "private"
    finally:
        daemon.docker("rm", "-f", cid)


def test_host_namespace_shows_the_containers_path(daemon, busybox):
    cid = daemon.docker("run", "-d", "--cgroupns", "host", busybox, "sleep", "300", check=True).stdout.strip()
    try:
        out = daemon.docker("exec", cid, "cat", "/proc/self/cgroup", check=True).stdout
        assert any(line.endswith(cid) for line in cgroup_lines(out)), out
    finally:
        daemon.docker("rm", "-f", cid)


def test_default_is_the_hosts_and_host_before_api_1_41(daemon, busybox):
    made = daemon.api.api.create_container(busybox, "true")
    want = "private" if V2_HOST else "host"
    assert daemon.api.api.inspect_container(made)["HostConfig"]["CgroupnsMode"] == want
    old = docker.APIClient(base_url=daemon.host, version="1.40", timeout=60)
    try:
        made_old = old.create_container(busybox, "true")
        assert old.inspect_container(made_old)["HostConfig"]["CgroupnsMode"] == "host"
    finally:
        old.close()
    for c in (made, made_old):
        daemon.api.api.remove_container(c)


def test_an_unknown_mode_is_refused(daemon, busybox):
    api = daemon.api.api
    r = api._post_json(api._url("/containers/create"), data={"Image": busybox, "Cmd": ["true"],
                                                            "HostConfig": {"CgroupnsMode": "bogus"}})
    assert r.status_code == 400
    assert json.loads(r.text)["message"] == "invalid cgroup namespace mode: bogus"
