"""docker ps filters as dockerd applies them: bad values are refused in dockerd's words; health, publish,
expose, network, volume and is-task select; -l and -n N include stopped containers."""
from __future__ import annotations

import pytest


def names(daemon, *args: str) -> list[str]:
    r = daemon.docker("ps", "-a", "--format", "{{.Names}}", *args)
    assert r.returncode == 0, r.stderr
    return sorted(r.stdout.split())


@pytest.fixture(scope="module")
def three(daemon, busybox):
    daemon.docker("network", "create", "psf-net", check=True)
    daemon.docker("volume", "create", "psf-vol", check=True)
    made = ["psf-a", "psf-b", "psf-c"]
    daemon.docker("create", "--name", "psf-a", "--network", "psf-net", "-v", "psf-vol:/data", "--expose", "7000",
                  busybox, "true", check=True)
    daemon.docker("run", "-d", "--name", "psf-b", "-p", "127.0.0.1:18081:80", "--expose", "7001", busybox,
                  "sleep", "300", check=True)
    daemon.docker("run", "-d", "--name", "psf-c", "--network", "none", "--health-cmd", "true",
                  "--health-interval", "1s", busybox, "sleep", "300", check=True)
    yield made
    daemon.docker("rm", "-f", *made)
    daemon.docker("network", "rm", "psf-net")
    daemon.docker("volume", "rm", "psf-vol")


def test_network_volume_is_task_and_health_select(daemon, three):
    assert names(daemon, "--filter", "network=psf-net") == ["psf-a"]
    assert names(daemon, "--filter", "volume=psf-vol") == ["psf-a"]
    assert names(daemon, "--filter", "volume=/data") == ["psf-a"]
    assert names(daemon, "--filter", "is-task=true") == []
    assert names(daemon, "--filter", "is-task=false", "--filter", "name=psf-") == ["psf-a", "psf-b", "psf-c"]
    assert names(daemon, "--filter", "health=none", "--filter", "name=psf-") == ["psf-a", "psf-b"]
    assert names(daemon, "--filter", "health=healthy", "--filter", "health=starting") == ["psf-c"]


def test_publish_and_expose_look_at_the_listed_ports(daemon, three):
    # publish= is the host's port, expose= the container's, both of the Ports ps lists (a running
    # container's only: psf-a never ran, so its --expose is not listed)
    assert names(daemon, "--filter", "publish=18081") == ["psf-b"]
    assert names(daemon, "--filter", "publish=80") == []
    assert names(daemon, "--filter", "publish=18081/udp") == []
    assert names(daemon, "--filter", "expose=80") == ["psf-b"]
    assert names(daemon, "--filter", "expose=6990-7010/tcp") == ["psf-b"]
    assert names(daemon, "--filter", "expose=7000") == []


def test_limit_and_latest_include_stopped(daemon, three):
    assert daemon.docker("ps", "-l", "--format", "{{.Names}}").stdout.split() == ["psf-c"]
    assert daemon.docker("ps", "-n", "3", "--format", "{{.Names}}").stdout.split() == ["psf-c", "psf-b", "psf-a"]
    assert "psf-a" not in daemon.docker("ps", "--format", "{{.Names}}").stdout.split()


@pytest.mark.parametrize("flt, message", [
    ("status=bogus", "Invalid filter 'status=bogus'"),
    ("health=bogus", "Unrecognised filter value for health: bogus"),
    ("is-task=maybe", "Invalid filter 'is-task=[maybe]'"),
    ("exited=x", 'strconv.Atoi: parsing "x": invalid syntax'),
    ("publish=1:2", "filter for 'publish' should not contain ':': 1:2"),
    ("expose=abc", 'error while looking up for expose abc: strconv.ParseUint: parsing "abc": invalid syntax'),
    ("publish=80-70", "error while looking up for publish 80-70: Invalid range specified for the Port: 80-70"),
    ("expose=70000", 'error while looking up for expose 70000: strconv.ParseUint: parsing "70000": '
                     'value out of range'),
    ("before=no-such-container", "no such container no-such-container"),
])
def test_bad_filters_refused(daemon, flt, message):
    r = daemon.docker("ps", "--filter", flt)
    assert r.returncode == 1 and f"Error response from daemon: {message}" in r.stderr, r.stderr
