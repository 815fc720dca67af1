"""IPv6, as dockerd 20.10 has it: `network create --ipv6 --subnet V6` (an IPv4 subnet beside it), addresses
in order or given by --ip6, a gateway on the bridge and a default route, AAAA answers from the embedded
DNS; and published ports that listen on [::] as well as 0.0.0.0 unless a host address is given."""
from __future__ import annotations

import json
import socket
import time

import docker
import pytest

HTTPD = ["sh", "-c", "mkdir -p /www && echo v6-hello > /www/index.html && exec httpd -f -p 80 -h /www"]


def inspect(daemon, *args: str) -> dict:
    return json.loads(daemon.docker(*args, check=True).stdout)[0]


@pytest.fixture
def v6net(daemon):
    daemon.docker("network", "create", "--ipv6", "--subnet", "fd00:389::/64", "--ip-range", "fd00:389::/96",
                  "--gateway", "fd00:389::ffff", "v6net", check=True)
    yield "v6net"
    ids = daemon.docker("ps", "-aq", "--filter", "network=v6net").stdout.split()
    if ids:
        daemon.docker("rm", "-f", *ids)
    daemon.docker("network", "rm", "v6net")


def test_ipv6_network_inspect_and_addresses(daemon, busybox, v6net):
    net = inspect(daemon, "network", "inspect", v6net)
    assert net["EnableIPv6"] is True
    v4, v6 = net["IPAM"]["Config"]
    assert ":" not in v4["Subnet"] and v4["Gateway"]
    assert v6 == {"Subnet": "fd00:389::/64", "IPRange": "fd00:389::/96", "Gateway": "fd00:389::ffff"}
    daemon.docker("run", "-d", "--name", "v6auto", "--network", v6net, busybox, "sleep", "300", check=True)
    daemon.docker("run", "-d", "--name", "v6fixed", "--network", v6net, "--ip6", "fd00:389::f00d", busybox,
                  "sleep", "300", check=True)
    auto = inspect(daemon, "inspect", "v6auto")["NetworkSettings"]["Networks"][v6net]
    assert (auto["GlobalIPv6Address"], auto["GlobalIPv6PrefixLen"], auto["IPv6Gateway"]) == \
        ("fd00:389::1", 64, "fd00:389::ffff")
    assert auto["IPAddress"]    # IPv4 alongside
    fixed = inspect(daemon, "inspect", "v6fixed")["NetworkSettings"]["Networks"][v6net]
    assert fixed["IPAMConfig"] == {"IPv6Address": "fd00:389::f00d"}
    assert fixed["GlobalIPv6Address"] == "fd00:389::f00d"
    members = inspect(daemon, "network", "inspect", v6net)["Containers"]
    assert sorted(m["IPv6Address"] for m in members.values()) == ["fd00:389::1/64", "fd00:389::f00d/64"]
    r = daemon.docker("exec", "v6fixed", "sh", "-c", "ip -6 addr show eth0; ip -6 route; cat /etc/hosts")
    assert "inet6 fd00:389::f00d/64 scope global" in r.stdout and "tentative" not in r.stdout.split("scope global")[1].split("\n")[0]
    assert "default via fd00:389::ffff dev eth0" in r.stdout, r.stdout
    hostname = daemon.docker("exec", "v6fixed", "hostname", check=True).stdout.strip()
    assert f"fd00:389::f00d\t{hostname}\n" in r.stdout
    # over the bridge, by the name the embedded DNS gives in AAAA
    r = daemon.docker("exec", "v6auto", "ping", "-6", "-c1", "-W3", "v6fixed")
    assert r.returncode == 0 and "fd00:389::f00d" in r.stdout, r.describe()
    # the address is free again once its container is gone; a taken one is refused
    r = daemon.docker("run", "--rm", "--network", v6net, "--ip6", "fd00:389::1", busybox, "true")
    assert r.returncode != 0 and "Address already in use" in r.stderr, r.describe()


def test_ipv6_network_errors_are_dockerds(daemon):
    r = daemon.docker("network", "create", "--ipv6", "v6nopool")
    assert r.returncode == 1 and "could not find an available, non-overlapping IPv6 address pool" in r.stderr
    with pytest.raises(docker.errors.NotFound, match="non-overlapping IPv6 address pool"):
        daemon.api.api.create_network("v6nopool2", enable_ipv6=True)
    ours = daemon.pyd("network", "create", "--ipv6", "v6nopool3")    # pyd's own client sends EnableIPv6 too
    assert (ours.returncode, ours.stderr) == (r.returncode, r.stderr)
    r = daemon.docker("network", "create", "--ipv6", "--subnet", "fd00:2::/64", "--subnet", "fd00:3::/64", "v6two")
    assert r.returncode == 1 and "bridge driver doesn't support multiple subnets" in r.stderr
    daemon.docker("network", "create", "--subnet", "fd00:4::/64", "v6off", check=True)   # recorded only
    try:
        net = inspect(daemon, "network", "inspect", "v6off")
        assert net["EnableIPv6"] is False and net["IPAM"]["Config"][1] == {"Subnet": "fd00:4::/64"}
        r = daemon.docker("network", "create", "--ipv6", "--subnet", "fd00:4::/64", "v6clash")
        assert r.returncode == 1 and "Pool overlaps with other one on this address space" in r.stderr
        r = daemon.docker("create", "--network", "v6off", "--ip6", "fd00:4::9", "busybox", "true")
        assert r.returncode != 0 and "user specified IP address is supported only when connecting to " \
            "networks with user configured subnets" in r.stderr
    finally:
        daemon.docker("network", "rm", "v6off")


def get_over(daemon, family: int, host: str, port: int, timeout: float = 10.0) -> bytes:
    deadline = time.monotonic() + timeout
    body = b""
    while b"v6-hello" not in body and time.monotonic() < deadline:
        try:
            with daemon.netns.socket(family) as s:
                s.settimeout(3)
                s.connect((host, port))
                s.sendall(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
                body = b"".join(iter(lambda: s.recv(4096), b""))
        except OSError:
            time.sleep(0.1)
    return body


def test_published_port_listens_on_ipv6_too(daemon, busybox):
    port, local = daemon.netns.free_port(), daemon.netns.free_port()
    daemon.docker("run", "-d", "--name", "v6pub", "-p", f"{port}:80", "-p", f"127.0.0.1:{local}:80",
                  "--expose", "90", "-P", busybox, *HTTPD, check=True)
    try:
        ports = inspect(daemon, "inspect", "v6pub")["NetworkSettings"]["Ports"]
        assert ports["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(port)},
                                   {"HostIp": "::", "HostPort": str(port)},
                                   {"HostIp": "127.0.0.1", "HostPort": str(local)}]
        rand = ports["90/tcp"]
        assert [b["HostIp"] for b in rand] == ["0.0.0.0", "::"] and rand[0]["HostPort"] == rand[1]["HostPort"]
        out = daemon.docker("port", "v6pub", "80", check=True).stdout.splitlines()
        assert sorted(out) == sorted([f"0.0.0.0:{port}", f"[::]:{port}", f"127.0.0.1:{local}"])
        ps = daemon.docker("ps", "--filter", "name=v6pub", "--format", "{{.Ports}}", check=True).stdout
        assert f"[::]:{port}->80/tcp" in ps and f"[::]:{rand[0]['HostPort']}->90/tcp" in ps, ps
        assert b"v6-hello" in get_over(daemon, socket.AF_INET6, "::1", port)
        assert b"v6-hello" in get_over(daemon, socket.AF_INET, "127.0.0.1", port)
        with daemon.netns.socket(socket.AF_INET6) as s:   # the 127.0.0.1 binding has no IPv6 twin
            s.settimeout(3)
            assert s.connect_ex(("::1", local)) != 0
        # a second container cannot take the port on either family
        r = daemon.docker("run", "--rm", "-p", f"[::]:{port}:80", busybox, "true")
        assert r.returncode != 0 and f"Bind for :::{port} failed: port is already allocated" in r.stderr, r.stderr
    finally:
        daemon.docker("rm", "-f", "v6pub")
