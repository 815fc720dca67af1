"""Legacy links, as dockerd 20.10 makes them: `--link NAME:ALIAS` on the default bridge gives the ALIAS_*
variables and an /etc/hosts line; on a user network the alias is a DNS name only the linking container
resolves; DELETE /containers/PARENT/ALIAS?link=1 drops a link."""
from __future__ import annotations

import json

import docker
import pytest


def ip_of(daemon, name: str) -> str:
    out = daemon.docker("inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", name, check=True)
    return out.stdout.strip()


@pytest.fixture
def child(daemon, busybox):
    """A running container with an Env entry and two consecutive exposed ports plus a UDP one."""
    daemon.docker("run", "-d", "--name", "lkchild", "-e", "FOO=1", "-e", "HOME=/x", "--expose", "80-81",
                  "--expose", "53/udp", busybox, "sleep", "300", check=True)
    yield "lkchild"
    daemon.docker("rm", "-f", "lkchild")


def test_link_gives_alias_variables_and_hosts_line(daemon, busybox, child):
    r = daemon.docker("run", "--rm", "--name", "lkparent", "--link", f"{child}:my-link", busybox,
                      "sh", "-c", "env; echo ---; cat /etc/hosts", check=True)
    env_text, hosts = r.stdout.split("---\n")
    env = set(env_text.split())
    ip = ip_of(daemon, child)
    assert {"MY_LINK_NAME=/lkparent/my-link", "MY_LINK_ENV_FOO=1",
            f"MY_LINK_PORT=tcp://{ip}:80",
            f"MY_LINK_PORT_80_TCP=tcp://{ip}:80", f"MY_LINK_PORT_80_TCP_ADDR={ip}",
            "MY_LINK_PORT_80_TCP_PORT=80", "MY_LINK_PORT_80_TCP_PROTO=tcp",
            f"MY_LINK_PORT_81_TCP=tcp://{ip}:81",
            f"MY_LINK_PORT_80_TCP_START=tcp://{ip}:80", "MY_LINK_PORT_80_TCP_PORT_START=80",
            f"MY_LINK_PORT_80_TCP_END=tcp://{ip}:81", "MY_LINK_PORT_80_TCP_PORT_END=81",
            f"MY_LINK_PORT_53_UDP=udp://{ip}:53"} <= env, r.stdout
    assert not any(e.startswith("MY_LINK_ENV_HOME=") for e in env)   # HOME and PATH are not passed on
    child_id = daemon.docker("inspect", "-f", "{{.Id}}", child, check=True).stdout.strip()
    assert f"{ip}\tmy-link {child_id[:12]} {child}\n" in hosts


def test_link_without_alias_and_ping_by_alias(daemon, busybox, child):
    r = daemon.docker("run", "--rm", "--link", child, busybox,
                      "sh", "-c", f"env | grep ^LKCHILD_NAME=; ping -c1 -W2 {child} >/dev/null && echo reached")
    assert r.returncode == 0, r.describe()
    assert r.stdout.splitlines()[0].startswith("LKCHILD_NAME=/") and "reached" in r.stdout


def test_link_errors_are_dockerds(daemon, busybox):
    r = daemon.docker("run", "--rm", "--link", "lknothere:x", busybox, "true")
    assert r.returncode == 125 and "could not get container for lknothere: No such container: lknothere" in r.stderr
    daemon.docker("create", "--name", "lkstopped", busybox, "true", check=True)
    try:
        r = daemon.docker("run", "--name", "lkp2", "--link", "lkstopped:x", busybox, "true")
        assert r.returncode != 0 and "Cannot link to a non running container: /lkstopped AS /lkp2/x" in r.stderr
    finally:
        daemon.docker("rm", "-f", "lkstopped", "lkp2")


def test_remove_link_keeps_both_containers(daemon, busybox, child):
    daemon.docker("create", "--name", "lkholder", "--link", f"{child}:ln", busybox, "true", check=True)
    try:
        hc = json.loads(daemon.docker("inspect", "lkholder", check=True).stdout)[0]["HostConfig"]
        assert hc["Links"] == [f"/{child}:/lkholder/ln"]
        api = daemon.api.api
        listed = {c["Names"][0]: c["Names"] for c in api.containers(all=True)}
        assert listed[f"/{child}"] == [f"/{child}", "/lkholder/ln"]
        with pytest.raises(docker.errors.APIError, match="cannot remove the default link name"):
            api.remove_container(child, link=True)
        with pytest.raises(docker.errors.NotFound, match="No such container: lkholder/nope"):
            api.remove_container("lkholder/nope", link=True)
        api.remove_container("lkholder/ln", link=True)
        assert api.inspect_container("lkholder")["HostConfig"]["Links"] is None
        assert api.inspect_container(child)["State"]["Running"]
        listed = {c["Names"][0]: c["Names"] for c in api.containers(all=True)}
        assert listed[f"/{child}"] == [f"/{child}"]
        r = daemon.docker("start", "-a", "lkholder")    # the link is gone: nothing to check at start
        assert r.returncode == 0, r.describe()
    finally:
        daemon.docker("rm", "-f", "lkholder")


def test_link_on_user_network_is_a_name_only_the_linker_resolves(daemon, busybox):
    daemon.docker("network", "create", "lknet", check=True)
    try:
        # the target need not exist yet, as in dockerd
        daemon.docker("run", "-d", "--name", "lkclient", "--network", "lknet", "--link", "lkupstream:bar",
                      busybox, "sleep", "300", check=True)
        eps = json.loads(daemon.docker("inspect", "lkclient", check=True).stdout)[0]["NetworkSettings"]["Networks"]
        assert eps["lknet"]["Links"] == ["lkupstream:bar"]
        daemon.docker("run", "-d", "--name", "lkupstream", "--network", "lknet", busybox, "sleep", "300",
                      check=True)
        upstream_ip = daemon.docker("inspect", "-f", "{{.NetworkSettings.Networks.lknet.IPAddress}}",
                                    "lkupstream", check=True).stdout.strip()
        r = daemon.docker("exec", "lkclient", "nslookup", "bar")
        assert r.returncode == 0 and upstream_ip in r.stdout, r.describe()
        r = daemon.docker("run", "--rm", "--network", "lknet", busybox, "nslookup", "bar")
        assert upstream_ip not in r.stdout, r.describe()
    finally:
        daemon.docker("rm", "-f", "lkclient", "lkupstream")
        daemon.docker("network", "rm", "lknet")


def test_links_follow_renames(daemon, busybox, child):
    daemon.docker("create", "--name", "lkren", "--link", f"{child}:al", busybox, "sh", "-c", "echo $AL_NAME",
                  check=True)
    try:
        daemon.docker("rename", child, "lkchild2", check=True)
        daemon.docker("rename", "lkren", "lkren2", check=True)
        hc = json.loads(daemon.docker("inspect", "lkren2", check=True).stdout)[0]["HostConfig"]
        assert hc["Links"] == ["/lkchild2:/lkren2/al"]
        r = daemon.docker("start", "-a", "lkren2")
        assert r.returncode == 0 and r.stdout == "/lkren2/al\n", r.describe()
    finally:
        daemon.docker("rm", "-f", "lkren", "lkren2")
        daemon.docker("rename", "lkchild2", child)


def test_start_after_the_child_was_removed_fails_as_dockerd(daemon, busybox):
    daemon.docker("run", "-d", "--name", "lkgone", busybox, "sleep", "300", check=True)
    daemon.docker("create", "--name", "lkorphan", "--link", "lkgone:al", busybox, "true", check=True)
    try:
        daemon.docker("rm", "-f", "lkgone", check=True)
        hc = json.loads(daemon.docker("inspect", "lkorphan", check=True).stdout)[0]["HostConfig"]
        assert hc["Links"] == ["/lkgone:/lkorphan/al"]
        r = daemon.docker("start", "-a", "lkorphan")
        assert r.returncode != 0 and "Cannot link to a non running container: /lkgone AS /lkorphan/al" in r.stderr
    finally:
        daemon.docker("rm", "-f", "lkorphan")
