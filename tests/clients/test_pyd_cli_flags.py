"""pyd's client speaks docker 28's run/create flags (ports, networks, DNS, restart, healthcheck, logging, stop),
and its rename, container prune, restart, update --restart, port and network commands.

The proof for create's flags: `pyd create` and the real `docker create` with identical flags leave identical
Config/HostConfig/endpoint settings in the daemon's inspect output. Traffic stays in the daemon's netns."""
from __future__ import annotations

import json
import time

import pytest

HTTPD = ["sh", "-c", "mkdir -p /www && echo hello-flags > /www/index.html && exec httpd -f -p 80 -h /www"]

CONFIG_FIELDS = ("Hostname", "Domainname", "ExposedPorts", "Healthcheck", "StopSignal", "StopTimeout", "Cmd")
HOST_FIELDS = ("NetworkMode", "PortBindings", "PublishAllPorts", "Dns", "DnsSearch", "DnsOptions", "ExtraHosts",
               "RestartPolicy", "LogConfig", "AutoRemove")


def inspect(daemon, ref: str, kind: str = "container") -> dict:
    return json.loads(daemon.docker(kind, "inspect", ref, check=True).stdout)[0]


def relevant(info: dict, network: str | None = None) -> dict:
    out = {"Config." + k: info["Config"].get(k) for k in CONFIG_FIELDS}
    if out["Config.Hostname"] == info["Id"][:12]:
        out["Config.Hostname"] = "<short id>"       # the daemon's default, different for each container
    out.update({"HostConfig." + k: info["HostConfig"].get(k) for k in HOST_FIELDS})
    if network:
        ep = info["NetworkSettings"]["Networks"][network]
        out.update({"Endpoint." + k: ep.get(k) for k in ("IPAMConfig", "Aliases", "MacAddress")})
    return out


@pytest.fixture(scope="module")
def flagnet(daemon):
    name = "flagnet"
    daemon.pyd("network", "create", "--subnet", "10.123.0.0/24", "--gateway", "10.123.0.1", "--label", "t=flags",
               name, check=True)
    yield name
    daemon.docker("network", "rm", name)


def test_create_flags_match_docker(daemon, busybox, flagnet):
    """Same flags through pyd and through docker: same fields in inspect (user network, --ip/--mac per client)."""
    common = ["-p", "127.0.0.1:18080:80/udp", "-p", "19000-19001:90-91", "-p", "127.0.0.1::53", "-P",
              "--expose", "7000-7001/udp", "--expose", "99", "--network", flagnet,
              "--network-alias", "a1", "--network-alias", "a2", "--dns", "10.0.0.53", "--dns-search", "example.com",
              "--dns-option", "ndots:2", "--add-host", "h1:1.2.3.4", "--add-host", "h2=[::1]",
              "--restart", "on-failure:3", "--health-cmd", "true x", "--health-interval", "5s",
              "--health-timeout", "2s", "--health-retries", "3", "--health-start-period", "1m30s",
              "--log-driver", "json-file", "--log-opt", "max-size=1m", "--log-opt", "max-file=2",
              "--stop-signal", "SIGINT", "--stop-timeout", "7", "-h", "myhost", "--domainname", "example.org"]
    ours = daemon.pyd("create", "--name", "f-pyd", "--ip", "10.123.0.10", "--mac-address", "02:42:0a:7b:00:0a",
                      *common, busybox, "echo", "hi", check=True).stdout.strip()
    theirs = daemon.docker("create", "--name", "f-docker", "--ip", "10.123.0.11", "--mac-address",
                           "02:42:0a:7b:00:0b", *common, busybox, "echo", "hi", check=True).stdout.strip()
    try:
        a, b = relevant(inspect(daemon, ours), flagnet), relevant(inspect(daemon, theirs), flagnet)
        assert a["Endpoint.IPAMConfig"]["IPv4Address"] == "10.123.0.10"
        assert b["Endpoint.IPAMConfig"]["IPv4Address"] == "10.123.0.11"
        assert (a.pop("Endpoint.MacAddress"), b.pop("Endpoint.MacAddress")) == ("02:42:0a:7b:00:0a",
                                                                                "02:42:0a:7b:00:0b")
        a.pop("Endpoint.IPAMConfig"), b.pop("Endpoint.IPAMConfig")
        assert a == b
        assert a["HostConfig.PortBindings"]["91/tcp"] == [{"HostIp": "", "HostPort": "19001"}]
        assert a["Config.Healthcheck"] == {"Test": ["CMD-SHELL", "true x"], "Interval": 5_000_000_000,
                                           "Timeout": 2_000_000_000, "StartPeriod": 90_000_000_000, "Retries": 3}
        assert a["HostConfig.RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        assert a["Endpoint.Aliases"] == ["a1", "a2"] and a["Config.StopTimeout"] == 7
    finally:
        daemon.docker("rm", "-f", ours, theirs)


@pytest.mark.parametrize("flags", [
    [],
    ["--restart", "always", "--no-healthcheck", "-p", "8080:80", "-p", "[::1]:8443:443", "--dns-search", ".",
     "--log-opt", "max-file=2", "--stop-signal", "9", "--add-host", "gw:host-gateway"],
    ["--network", "none", "--restart", "unless-stopped", "--health-cmd", "exit 0", "--expose", "53/udp",
     "--log-driver", "none", "--domainname", "d.example"],
    ["--rm", "-p", "published=8081,target=81,protocol=udp", "--dns", "::1", "--dns", "1.1.1.1"],
])
def test_create_flags_match_docker_default_networks(daemon, busybox, flags):
    ours = daemon.pyd("create", *flags, busybox, "true", check=True).stdout.strip()
    theirs = daemon.docker("create", *flags, busybox, "true", check=True).stdout.strip()
    try:
        assert relevant(inspect(daemon, ours)) == relevant(inspect(daemon, theirs))
    finally:
        daemon.docker("rm", "-f", ours, theirs)


@pytest.mark.parametrize("flags", [
    ["-p", "70000"], ["-p", "80/foo"], ["-p", "1-3:5-6"], ["-p", "1.2.3:80:80"], ["--expose", "x"],
    ["--restart", "on-failure:x"], ["--no-healthcheck", "--health-cmd", "x"], ["--health-retries", "-1"],
    ["--health-interval", "5"], ["--health-timeout", "-1s"], ["--add-host", "foo"], ["--dns", "foo"],
    ["--mac-address", "zz"], ["--network-alias", "x"], ["--rm", "--restart", "always"],
    ["--network", "n1", "--network", "host"], ["--network", "name=n1,foo=bar"], ["--stop-timeout", "x"],
])
def test_bad_flags_fail_like_docker(daemon, busybox, flags):
    ours = daemon.pyd("create", *flags, busybox)
    theirs = daemon.docker("create", *flags, busybox)
    assert ours.returncode == theirs.returncode == 125
    assert ours.stderr == theirs.stderr.replace("docker", "pyd")


def test_publish_and_port(daemon, busybox):
    cid = daemon.pyd("run", "-d", "--name", "f-web", "-p", "127.0.0.1::80", busybox, *HTTPD,
                     check=True).stdout.strip()
    try:
        lines = daemon.pyd("port", "f-web", check=True).stdout.splitlines()
        assert len(lines) == 1 and lines[0].startswith("80/tcp -> 127.0.0.1:"), lines
        port = int(lines[0].rsplit(":", 1)[1])
        assert 32768 <= port <= 60999
        assert daemon.pyd("port", "f-web", "80", check=True).stdout == f"127.0.0.1:{port}\n"
        assert daemon.pyd("container", "port", cid, "80/tcp", check=True).stdout == f"127.0.0.1:{port}\n"
        assert daemon.pyd("port", "f-web").stdout == daemon.docker("port", "f-web").stdout
        missing = daemon.pyd("port", "f-web", "81")
        assert missing.returncode == 1 and missing.stderr == "Error: No public port '81' published for f-web\n"
        body = b""
        deadline = time.monotonic() + 10
        while b"hello-flags" not in body and time.monotonic() < deadline:
            try:
                with daemon.netns.socket() as s:
                    s.settimeout(3)
                    s.connect(("127.0.0.1", port))
                    s.sendall(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
                    body = b"".join(iter(lambda: s.recv(4096), b""))
            except OSError:
                pass
            if b"hello-flags" not in body:
                time.sleep(0.1)
        assert b"200 OK" in body and b"hello-flags" in body, body
    finally:
        daemon.docker("rm", "-f", cid)


def test_rename(daemon, busybox):
    cid = daemon.pyd("create", "--name", "f-old", busybox, "true", check=True).stdout.strip()
    other = daemon.pyd("create", "--name", "f-taken", busybox, "true", check=True).stdout.strip()
    try:
        r = daemon.pyd("rename", "f-old", "f-new")
        assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.describe()
        names = daemon.pyd("ps", "-a", "--format", "{{.ID}} {{.Names}}", check=True).stdout.splitlines()
        assert f"{cid[:12]} f-new" in names and not any(n.endswith(" f-old") for n in names)
        ours, theirs = daemon.pyd("rename", "f-new", "f-taken"), daemon.docker("rename", "f-new", "f-taken")
        assert ours.returncode == theirs.returncode == 1
        assert ours.stderr == theirs.stderr
        assert ours.stderr.endswith("\nError: failed to rename container named f-new\n")
        empty = daemon.pyd("container", "rename", "f-new", " ")
        assert empty.returncode == 1 and empty.stderr == "Error: Neither old nor new names may be empty\n"
    finally:
        daemon.docker("rm", "-f", cid, other)


def test_container_prune(daemon, busybox):
    running = daemon.pyd("run", "-d", busybox, "sleep", "60", check=True).stdout.strip()
    stopped = [daemon.pyd("create", "--label", "f-prune=1", busybox, "true", check=True).stdout.strip()
               for _ in range(2)]
    try:
        declined = daemon.pyd("container", "prune", input="n\n")
        assert declined.returncode == 0
        assert declined.stdout == ("WARNING! This will remove all stopped containers.\n"
                                   "Are you sure you want to continue? [y/N] ")
        kept = daemon.pyd("ps", "-aq", "--no-trunc", check=True).stdout.split()
        assert set(stopped) <= set(kept)
        other = daemon.pyd("create", busybox, "true", check=True).stdout.strip()
        out = daemon.pyd("container", "prune", "-f", "--filter", "label=f-prune=1", check=True).stdout
        lines = out.splitlines()
        assert lines[0] == "Deleted Containers:" and set(lines[1:3]) == set(stopped) and lines[3] == ""
        assert lines[4].startswith("Total reclaimed space: ") and len(lines) == 5, out
        out = daemon.pyd("container", "prune", "-f", check=True).stdout
        assert out.startswith(f"Deleted Containers:\n{other}\n\nTotal reclaimed space: "), out
        assert daemon.pyd("container", "prune", "-f", check=True).stdout == "Total reclaimed space: 0B\n"
        assert daemon.pyd("ps", "-q", "--no-trunc", check=True).stdout.split() == [running]
        bad = daemon.pyd("container", "prune", "-f", "--filter", "foo")
        assert bad.returncode == 125 and bad.stderr.startswith(
            'invalid argument "foo" for "--filter" flag: bad format of filter (expected name=value)')
    finally:
        daemon.docker("rm", "-f", running, *stopped)


def test_update_restart_and_restart(daemon, busybox):
    cid = daemon.pyd("run", "-d", busybox, "sleep", "60", check=True).stdout.strip()
    try:
        assert daemon.pyd("update", "--restart", "always", cid, check=True).stdout == cid + "\n"
        assert inspect(daemon, cid)["HostConfig"]["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}
        daemon.pyd("container", "update", "--restart", "on-failure:4", cid, check=True)
        assert inspect(daemon, cid)["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 4}
        bad = daemon.pyd("update", "--restart", "on-failure:x", cid)
        assert bad.returncode == 1
        assert bad.stderr == "invalid restart policy format: maximum retry count must be an integer\n"
        none = daemon.pyd("update", cid)
        assert none.returncode == 1 and none.stderr == "you must provide one or more flags when using this command\n"
        pid = inspect(daemon, cid)["State"]["Pid"]
        assert daemon.pyd("restart", "-t", "1", cid, check=True).stdout == cid + "\n"
        state = inspect(daemon, cid)["State"]
        assert state["Running"] and state["Pid"] != pid
    finally:
        daemon.docker("rm", "-f", cid)


def test_network_create_and_connect_match_docker(daemon, busybox):
    # the daemon holds one IPv4 subnet per network; several subnets are checked in the unit test below
    flags = ["--subnet", "10.124.0.0/24", "--ip-range", "10.124.0.128/25", "--gateway", "10.124.0.1",
             "--internal", "--label", "a=b", "--label", "c", "-o", "com.docker.network.mtu=1400"]
    seen = {}
    for client in ("pyd", "docker"):
        run = getattr(daemon, client)
        run("network", "create", *flags, "f-net", check=True)
        cid = run("create", busybox, "true", check=True).stdout.strip()
        try:
            run("network", "connect", "--alias", "x,y", "--alias", "z", "--ip", "10.124.0.200", "f-net", cid,
                check=True)
            net = inspect(daemon, "f-net", "network")
            ep = inspect(daemon, cid)["NetworkSettings"]["Networks"]["f-net"]
            seen[client] = ({k: net[k] for k in ("Driver", "Internal", "Labels", "Options")},
                            sorted(net["IPAM"]["Config"], key=lambda c: c["Subnet"]),
                            ep["IPAMConfig"], ep["Aliases"])
        finally:
            daemon.docker("rm", "-f", cid)
            daemon.docker("network", "rm", "f-net")
    assert seen["pyd"] == seen["docker"]
    assert seen["pyd"][1] == [{"Subnet": "10.124.0.0/24", "IPRange": "10.124.0.128/25", "Gateway": "10.124.0.1"}]
    assert seen["pyd"][3] == ["x", "y", "z"]
    bad = daemon.pyd("network", "create", "--subnet", "10.9.0.0/24", "--gateway", "10.11.0.1", "f-bad")
    assert bad.returncode == 1 and bad.stderr == "no matching subnet for gateway 10.11.0.1\n"


def test_port_spec_and_ipam_config():
    from pyd.client.commands.run_flags import parse_port_spec
    assert parse_port_spec("127.0.0.1:8000-8001:80") == [("80/tcp", {"HostIp": "127.0.0.1",
                                                                     "HostPort": "8000-8001"})]
    from pyd.client.commands.network import ipam_config
    assert ipam_config(["10.124.0.0/24", "10.125.0.0/24"], ["10.124.0.128/25"], ["10.125.0.1"], {}) == [
        {"Subnet": "10.124.0.0/24", "IPRange": "10.124.0.128/25"}, {"Subnet": "10.125.0.0/24", "Gateway": "10.125.0.1"}]
    with pytest.raises(ValueError, match="^multiple overlapping subnet configuration is not supported$"):
        ipam_config(["10.0.0.0/8", "10.1.0.0/16"], [], [], {})
    assert parse_port_spec("[::1]::53/UDP") == [("53/udp", {"HostIp": "::1", "HostPort": ""})]
