"""Networking details beyond the basics: the embedded DNS forwarding to upstream servers, several subnets
on one network, container:<id> sharing the other container's etc files, Docker's error prefixes.

All traffic stays inside the daemon fixture's network namespace: the "upstream" DNS server is a fake one
this module runs on 127.0.0.1:53 there, and the daemon forwards to it from that namespace."""
from __future__ import annotations

import json
import socket
import struct
import threading

import pytest

FAKE_ADDR = "10.9.8.7"


def dns_answer(query: bytes, address: str) -> bytes:
    """A minimal response with one A record for the (single) question of `query`."""
    qid, flags = struct.unpack_from(">HH", query)
    pos = 12
    while query[pos]:
        pos += 1 + query[pos]
    end = pos + 5
    head = struct.pack(">HHHHHH", qid, 0x8180 | (flags & 0x0100), 1, 1, 0, 0)
    record = struct.pack(">HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(address)
    return head + query[12:end] + record


def question_name(query: bytes) -> str:
    pos, labels = 12, []
    while query[pos]:
        labels.append(query[pos + 1:pos + 1 + query[pos]].decode())
        pos += 1 + query[pos]
    return ".".join(labels)


@pytest.fixture
def fake_upstream(daemon):
    """A DNS server on 127.0.0.1:53 in the daemon's namespace answering every A query with FAKE_ADDR;
    yields the list of names it was asked."""
    sock = daemon.netns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))
    sock.settimeout(0.2)
    asked: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                query, peer = sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            asked.append(question_name(query))
            sock.sendto(dns_answer(query, FAKE_ADDR), peer)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield asked
    stop.set()
    t.join(2)
    sock.close()


@pytest.fixture
def made(daemon):
    names: dict[str, list[str]] = {"containers": [], "networks": []}
    yield names
    if names["containers"]:
        daemon.docker("rm", "-f", *names["containers"])
    for n in names["networks"]:
        daemon.docker("network", "rm", n)


def test_embedded_dns_forwards_unknown_names_to_upstream(daemon, busybox, fake_upstream, made):
    made["networks"].append("dnsfwd")
    daemon.docker("network", "create", "dnsfwd", check=True)
    made["containers"].append("peer")
    daemon.docker("run", "-d", "--name", "peer", "--network", "dnsfwd", busybox, "sleep", "300", check=True)
    # a single-label name that is no container, and a dotted one: both answered by the upstream
    for name in ("upstreamonly", "svc.fake.test"):
        r = daemon.docker("run", "--rm", "--network", "dnsfwd", "--dns", "127.0.0.1", busybox,
                          "nslookup", name)
        assert FAKE_ADDR in r.stdout, r.describe()
        assert name in fake_upstream
    # containers on the network are still answered by the daemon itself, never forwarded
    r = daemon.docker("run", "--rm", "--network", "dnsfwd", "--dns", "127.0.0.1", busybox, "nslookup", "peer")
    assert FAKE_ADDR not in r.stdout and "Address" in r.stdout, r.describe()
    assert "peer" not in fake_upstream
    # with the user's own ndots, single-label names are not forwarded (the client's search list applies)
    fake_upstream.clear()
    daemon.docker("run", "--rm", "--network", "dnsfwd", "--dns", "127.0.0.1", "--dns-opt", "ndots:1", busybox,
                  "nslookup", "nodots")
    assert "nodots" not in fake_upstream


def test_container_mode_shares_etc_files_and_hostname(daemon, busybox, made):
    made["containers"].append("etcowner")
    owner = daemon.docker("run", "-d", "--name", "etcowner", "--hostname", "owner-host", "--add-host",
                          "extra.example:10.1.2.3", "--dns-search", "owner.search", busybox, "sleep", "300",
                          check=True).stdout.strip()
    r = daemon.docker("run", "--rm", "--network", "container:etcowner", busybox, "sh", "-c",
                      "hostname; cat /etc/hostname; grep extra.example /etc/hosts; grep search /etc/resolv.conf")
    lines = r.stdout.splitlines()
    assert lines[0] == "owner-host" and lines[1] == "owner-host", r.describe()
    assert "10.1.2.3" in r.stdout and "owner.search" in r.stdout, r.describe()
    # the very same files: a change in the owner's /etc/hosts is seen by the joiner
    daemon.docker("exec", "etcowner", "sh", "-c", "echo '10.4.5.6 later.example' >> /etc/hosts", check=True)
    r = daemon.docker("run", "--rm", "--network", f"container:{owner}", busybox, "grep", "later.example",
                      "/etc/hosts")
    assert "10.4.5.6" in r.stdout, r.describe()
    # what dockerd refuses with container:<id> networking
    for flags, message in [(["--hostname", "x"], "conflicting options: hostname and the network mode"),
                           (["--dns", "1.1.1.1"], "conflicting options: dns and the network mode"),
                           (["--add-host", "a:1.2.3.4"],
                            "conflicting options: custom host-to-IP mapping and the network mode"),
                           (["-p", "8080:80"],
                            "conflicting options: port publishing and the container type network mode")]:
        r = daemon.docker("create", "--network", "container:etcowner", *flags, busybox, "true")
        assert r.returncode != 0 and message in r.stderr, r.describe()


def test_networking_errors_have_dockers_prefix(daemon, busybox, made):
    r = daemon.docker("run", "--rm", "--network", "nosuchnet", busybox, "true")
    assert r.returncode == 125, r.describe()
    assert "Error response from daemon: failed to set up container networking: network nosuchnet not found" \
        in r.stderr, r.describe()
    made["containers"].append("stopped-owner")
    daemon.docker("create", "--name", "stopped-owner", busybox, "true", check=True)
    r = daemon.docker("run", "--rm", "--network", "container:stopped-owner", busybox, "true")
    assert r.returncode == 125 and "failed to set up container networking: cannot join network namespace of a " \
        "non running container" in r.stderr, r.describe()
    # through docker-py: the status stays (404 for the missing network)
    import docker
    with pytest.raises(docker.errors.APIError) as e:
        daemon.api.containers.run(busybox, "true", network="nosuchnet2", remove=True)
    assert "failed to set up container networking: network nosuchnet2 not found" in str(e.value)
    assert e.value.response.status_code == 404


def test_several_ipv4_subnets_refused_clearly(daemon, made):
    r = daemon.docker("network", "create", "--subnet", "10.31.0.0/24", "--subnet", "10.32.0.0/24", "twonets")
    if r.returncode == 0:
        made["networks"].append("twonets")
        subnets = [c["Subnet"] for c in json.loads(daemon.docker("network", "inspect", "twonets",
                                                                 check=True).stdout)[0]["IPAM"]["Config"]]
        assert subnets == ["10.31.0.0/24", "10.32.0.0/24"]
    else:
        assert "Error response from daemon:" in r.stderr and "subnet" in r.stderr, r.describe()
