"""Networking: the default bridge, user networks with embedded DNS, published ports, IPAM, clean-up.

Everything happens inside the daemon fixture's own network namespace: traffic only goes to containers
this module created, or to the daemon's loopback through published ports."""
from __future__ import annotations

import json
import socket
import time

import pytest

HTTPD = ["sh", "-c", "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"]


def links(daemon) -> list[dict]:
    return json.loads(daemon.netns_run("ip", "-j", "link", "show", check=True).stdout)


def inspect(daemon, ref: str) -> dict:
    return json.loads(daemon.docker("inspect", ref, check=True).stdout)[0]


def wait_gone(daemon, predicate, timeout: float = 5.0) -> list:
    """Poll `ip link` until no link matches (veths go with their namespace, asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [l["ifname"] for l in links(daemon) if predicate(l)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def wait_http(daemon, container: str, timeout: float = 10.0) -> None:
    """Until the container's httpd answers on its own loopback (it starts a moment after `run -d`)."""
    deadline = time.monotonic() + timeout
    while True:
        r = daemon.docker("exec", container, "wget", "-qO-", "http://127.0.0.1/index.html")
        if r.returncode == 0 or time.monotonic() > deadline:
            assert r.returncode == 0, r.describe()
            return
        time.sleep(0.1)


def test_default_bridge_distinct_ips(daemon, busybox):
    a = daemon.docker("run", "-d", "--name", "bra", busybox, *HTTPD, check=True).stdout.strip()
    b = daemon.docker("run", "-d", "--name", "brb", busybox, "sleep", "60", check=True).stdout.strip()
    try:
        ia, ib = inspect(daemon, a), inspect(daemon, b)
        ipa = ia["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        ipb = ib["NetworkSettings"]["IPAddress"]
        assert ipa and ipb and ipa != ipb
        net = json.loads(daemon.docker("network", "inspect", "bridge", check=True).stdout)[0]
        subnet = net["IPAM"]["Config"][0]["Subnet"]
        import ipaddress
        assert ipaddress.ip_address(ipa) in ipaddress.ip_network(subnet)
        assert ia["NetworkSettings"]["Gateway"] == net["IPAM"]["Config"][0]["Gateway"]
        assert ia["NetworkSettings"]["MacAddress"].startswith("02:42:")
        assert a in net["Containers"] and net["Options"]["com.docker.network.bridge.name"] == "pyd0"
        wait_http(daemon, a)
        r = daemon.docker("exec", b, "wget", "-qO-", f"http://{ipa}/index.html")
        assert r.stdout.startswith("hello-from-"), r.describe()
    finally:
        daemon.docker("rm", "-f", a, b)


@pytest.fixture
def netnames(daemon):
    """Networks and containers a test makes, removed afterwards even when it fails."""
    made: dict[str, list[str]] = {"containers": [], "networks": []}
    yield made
    if made["containers"]:
        daemon.docker("rm", "-f", *made["containers"])
    for n in made["networks"]:
        daemon.docker("network", "rm", n)


def test_user_network_dns_and_isolation(daemon, busybox, netnames):
    netnames["networks"] += ["front", "back"]
    daemon.docker("network", "create", "--label", "tier=front", "front", check=True)
    daemon.docker("network", "create", "back", check=True)
    netnames["containers"] += ["web"]
    web = daemon.docker("run", "-d", "--name", "web", "--network", "front", "--network-alias", "www", busybox,
                        *HTTPD, check=True).stdout.strip()
    wait_http(daemon, "web")
    for target in ("web", "www", web[:12]):
        r = daemon.docker("run", "--rm", "--network", "front", busybox, "wget", "-qO-", f"http://{target}/index.html")
        assert r.returncode == 0 and r.stdout == f"hello-from-{web[:12]}\n", r.describe()
    r = daemon.docker("run", "--rm", "--network", "front", busybox, "cat", "/etc/resolv.conf", check=True)
    assert "nameserver 127.0.0.11" in r.stdout
    # another network: neither the name nor the address reaches web
    ip = inspect(daemon, "web")["NetworkSettings"]["Networks"]["front"]["IPAddress"]
    for target in ("web", ip):
        r = daemon.docker("run", "--rm", "--network", "back", busybox, "wget", "-qO-", "-T", "1",
                          f"http://{target}/index.html")
        assert r.returncode != 0 and "hello" not in r.stdout, r.describe()
    net = json.loads(daemon.docker("network", "inspect", "front", check=True).stdout)[0]
    assert net["Driver"] == "bridge" and net["Scope"] == "local" and net["Labels"] == {"tier": "front"}
    assert net["Containers"][web]["IPv4Address"].startswith(ip + "/")
    ls = daemon.docker("network", "ls", "--format", "{{.Name}}", check=True).stdout.split()
    assert {"bridge", "host", "none", "front", "back"} <= set(ls)
    # in use: Docker's 403 and message
    r = daemon.docker("network", "rm", "front")
    assert r.returncode == 1 and "error while removing network: network front has active endpoints" in r.stderr
    import docker
    with pytest.raises(docker.errors.APIError) as err:
        daemon.api.networks.get("front").remove()
    assert err.value.response.status_code == 403


def test_subnet_static_ip_and_connect(daemon, busybox, netnames):
    netnames["networks"] += ["fixed", "extra"]
    api = daemon.api
    import docker
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.123.0.0/24", gateway="10.123.0.254",
                                                                        iprange="10.123.0.128/25")])
    api.networks.create("fixed", driver="bridge", ipam=ipam)
    daemon.docker("network", "create", "--internal", "extra", check=True)
    netnames["containers"] += ["fixed1", "fixed2"]
    daemon.docker("run", "-d", "--name", "fixed1", "--network", "fixed", "--ip", "10.123.0.7", busybox,
                  "sleep", "60", check=True)
    c2 = api.containers.run(busybox, ["sleep", "60"], name="fixed2", network="fixed", detach=True)
    c2.reload()
    ip2 = c2.attrs["NetworkSettings"]["Networks"]["fixed"]["IPAddress"]
    assert ip2.startswith("10.123.0.") and int(ip2.rsplit(".", 1)[1]) >= 128          # from --ip-range
    assert c2.attrs["NetworkSettings"]["Networks"]["fixed"]["Gateway"] == "10.123.0.254"
    r = daemon.docker("run", "--rm", "--network", "fixed", busybox, "ping", "-c1", "-W2", "fixed1")
    assert r.returncode == 0 and "10.123.0.7" in r.stdout, r.describe()
    r = daemon.docker("run", "--rm", "--network", "fixed", "--ip", "10.123.0.7", busybox, "true")
    assert r.returncode != 0 and "Address already in use" in r.stderr
    # connect a running container to a second network: a new interface, resolvable there
    daemon.docker("network", "connect", "--alias", "second", "extra", "fixed1", check=True)
    r = daemon.docker("run", "--rm", "--network", "extra", busybox, "ping", "-c1", "-W2", "second")
    assert r.returncode == 0, r.describe()
    daemon.docker("network", "disconnect", "extra", "fixed1", check=True)
    assert "extra" not in inspect(daemon, "fixed1")["NetworkSettings"]["Networks"]


def test_published_tcp_port(daemon, busybox, netnames):
    port = daemon.netns.free_port()
    netnames["containers"] += ["pub"]
    daemon.docker("run", "-d", "--name", "pub", "-p", f"127.0.0.1:{port}:80", "-p", "80", busybox, *HTTPD,
                  check=True)
    wait_http(daemon, "pub")
    body = b""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and b"hello-from" not in body:
        with daemon.netns.socket() as s:
            s.settimeout(3)
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
            body = b"".join(iter(lambda: s.recv(4096), b""))
        time.sleep(0.05)
    assert b"200 OK" in body and b"hello-from" in body
    out = daemon.docker("port", "pub", check=True).stdout.splitlines()
    assert f"80/tcp -> 127.0.0.1:{port}" in out
    rand = [line for line in out if line.startswith("80/tcp -> 0.0.0.0:")]
    assert rand and 32768 <= int(rand[0].rsplit(":", 1)[1]) <= 60999
    assert f"127.0.0.1:{port}" in daemon.docker("port", "pub", "80/tcp", check=True).stdout.splitlines()
    ps = daemon.docker("ps", "--filter", "name=pub", "--format", "{{.Ports}}", check=True).stdout
    assert f"127.0.0.1:{port}->80/tcp" in ps
    assert f"127.0.0.1:{port}" in daemon.pyd("port", "pub", "80", check=True).stdout.splitlines()


UDP_ECHO_C = r"""
#include <netinet/in.h>
#include <sys/socket.h>
int main(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(5000) };
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0) return 1;
    for (;;) {
        char buf[2048]; struct sockaddr_in peer; socklen_t len = sizeof peer;
        ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&peer, &len);
        if (n >= 0) sendto(s, buf, n, 0, (struct sockaddr *)&peer, len);
    }
}
"""


@pytest.fixture(scope="module")
def udpecho(daemon, tmp_path_factory) -> str:
    """An image with a static UDP echo server on port 5000 (busybox's nc has no -u here)."""
    import subprocess
    import images
    d = tmp_path_factory.mktemp("udpecho")
    (d / "echo.c").write_text(UDP_ECHO_C)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "udpecho"), str(d / "echo.c")], check=True)
    tar = d / "rootfs.tar"
    tar.write_bytes(images.tar_bytes([images.file("udpecho", (d / "udpecho").read_bytes(), 0o755)]))
    return daemon.import_image(tar, "udpecho")


def test_published_udp_port(daemon, udpecho, netnames):
    netnames["containers"] += ["udp"]
    daemon.docker("run", "-d", "--name", "udp", "-p", "127.0.0.1::5000/udp", udpecho, "/udpecho", check=True)
    port = int(daemon.docker("port", "udp", "5000/udp", check=True).stdout.split(":")[-1])
    got = b""
    with daemon.netns.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        for _ in range(20):       # nc may not listen yet: resend until the echo comes back
            s.sendto(b"ping\n", ("127.0.0.1", port))
            try:
                got = s.recv(100)
                break
            except socket.timeout:
                continue
    assert got == b"ping\n"


def test_container_network_mode_and_none_host(daemon, busybox, netnames):
    netnames["containers"] += ["owner"]
    daemon.docker("run", "-d", "--name", "owner", busybox, *HTTPD, check=True)
    wait_http(daemon, "owner")
    r = daemon.docker("run", "--rm", "--network", "container:owner", busybox, "wget", "-qO-",
                      "http://127.0.0.1/index.html")
    assert r.returncode == 0 and r.stdout.startswith("hello-from"), r.describe()
    r = daemon.docker("run", "--rm", "--network", "none", busybox, "ip", "-o", "link", check=True)
    assert "eth0" not in r.stdout
    r = daemon.docker("run", "--rm", "--network", "nosuchnet", busybox, "true")
    assert r.returncode == 125 and "network nosuchnet not found" in r.stderr, r.describe()


def test_ipam_survives_daemon_restart(daemon, busybox):
    a = daemon.docker("run", "-d", "--name", "keep", busybox, "sleep", "300", check=True).stdout.strip()
    ip_a = inspect(daemon, a)["NetworkSettings"]["IPAddress"]
    daemon.kill9()           # the container goes on; its address stays taken
    daemon.start()
    try:
        ips = set()
        for i in range(3):
            b = daemon.docker("run", "-d", busybox, "sleep", "300", check=True).stdout.strip()
            ips.add(inspect(daemon, b)["NetworkSettings"]["IPAddress"])
            daemon.docker("rm", "-f", b, check=True)
        assert ip_a not in ips and all(ips)
        assert inspect(daemon, a)["NetworkSettings"]["IPAddress"] == ip_a
    finally:
        daemon.docker("rm", "-f", "keep")


def test_nothing_left_behind(daemon, busybox):
    daemon.pyd("network", "create", "--subnet", "10.77.0.0/24", "tmpnet", check=True)      # pyd's own client
    assert "tmpnet" in daemon.pyd("network", "ls", "--format", "{{.Name}}", check=True).stdout.split()
    daemon.docker("run", "--rm", "--network", "tmpnet", busybox, "true", check=True)
    assert daemon.pyd("network", "rm", "tmpnet", check=True).stdout == "tmpnet\n"
    leftover = [n for n in daemon.api.containers.list(all=True)]
    for c in leftover:
        c.remove(force=True)
    for n in daemon.api.networks.list():
        if n.name not in ("bridge", "host", "none"):
            n.remove()
    assert wait_gone(daemon, lambda l: l.get("linkinfo", {}).get("info_kind") == "veth") == []
    names = [l["ifname"] for l in links(daemon)]
    assert [n for n in names if n.startswith("br-")] == [] and "pyd0" in names
    assert list((daemon.exec_root / "netns").iterdir()) == []


def test_network_mtu_option_on_bridge_and_veths(daemon, busybox):
    daemon.docker("network", "create", "-o", "com.docker.network.driver.mtu=1400", "mtunet", check=True)
    try:
        daemon.docker("run", "-d", "--name", "mtuc", "--network", "mtunet", busybox, "sleep", "60", check=True)
        inside = daemon.docker("exec", "mtuc", "ip", "link", "show", "eth0", check=True).stdout
        assert " mtu 1400 " in inside, inside
        bridge = "br-" + json.loads(daemon.docker("network", "inspect", "mtunet", check=True).stdout)[0]["Id"][:12]
        host_side = {l["ifname"]: l["mtu"] for l in links(daemon) if l.get("master") == bridge or l["ifname"] == bridge}
        assert len(host_side) == 2 and set(host_side.values()) == {1400}, host_side
        bad = daemon.docker("network", "create", "-o", "com.docker.network.driver.mtu=abc", "mtubad")
        assert bad.returncode == 1 and 'failed to parse com.docker.network.driver.mtu value: abc' in bad.stderr
    finally:
        daemon.docker("rm", "-f", "mtuc")
        daemon.docker("network", "rm", "mtunet")


def test_network_prune_until_keeps_newer_networks(daemon):
    daemon.docker("network", "create", "prune-new", check=True)
    try:
        r = daemon.docker("network", "prune", "-f", "--filter", "until=1h", check=True)
        assert "prune-new" not in r.stdout
        assert daemon.docker("network", "inspect", "prune-new").returncode == 0     # made within the hour
        r = daemon.docker("network", "prune", "-f", "--filter", "until=bogus")
        assert r.returncode == 1 and 'failed to parse value as time or duration: "bogus"' in r.stderr
        time.sleep(1.1)                       # until=0s is now in whole seconds
        r = daemon.docker("network", "prune", "-f", "--filter", "until=0s", check=True)
        assert "prune-new" in r.stdout
    finally:
        daemon.docker("network", "rm", "prune-new")
