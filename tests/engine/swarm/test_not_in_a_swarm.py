"""Swarm mode and managed plugins, answered as a dockerd that is not part of a swarm and has no plugins,
through the docker CLI and docker-py."""
from __future__ import annotations

import docker
import pytest

NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect '
                 "this node to swarm and try again.")


@pytest.mark.parametrize("argv", [("service", "ls"), ("node", "ls"), ("secret", "ls"), ("config", "ls"),
                                  ("swarm", "unlock-key"), ("service", "inspect", "web"), ("secret", "rm", "s")])
def test_swarm_commands_say_this_node_is_not_a_manager(daemon, argv):
    r = daemon.docker(*argv)
    assert r.returncode == 1, r.describe()
    assert f"Error response from daemon: {NOT_A_MANAGER}" in r.stderr


def test_swarm_leave_says_not_part_of_a_swarm(daemon):
    r = daemon.docker("swarm", "leave", "--force")
    assert r.returncode == 1
    assert r.stderr.strip() == "Error response from daemon: This node is not part of a swarm"


def test_docker_py_cleanup_and_listing(daemon):
    client = daemon.api
    assert client.api.leave_swarm(force=True) is True      # what every docker-py test clean-up calls
    with pytest.raises(docker.errors.APIError) as e:
        client.services.list()
    assert e.value.response.status_code == 503 and NOT_A_MANAGER in str(e.value)
    assert client.info()["Swarm"]["LocalNodeState"] == "inactive"


def test_updates_check_the_version_first(daemon):
    api = daemon.api.api
    r = api._post(api._url("/nodes/{0}/update", "n1"), params={"version": "abc"}, data="{}")
    assert r.status_code == 400
    assert r.json()["message"] == "invalid node version 'abc': strconv.ParseUint: parsing \"abc\": invalid syntax"
    r = api._post(api._url("/secrets/{0}/update", "s1"), data="{}")
    assert (r.status_code, r.json()["message"]) == (400, "invalid secret version")
    r = api._post(api._url("/nodes/{0}/update", "n1"), params={"version": "3"}, data="{}")
    assert r.status_code == 503


def test_swarm_init_is_not_offered(daemon):
    r = daemon.docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    assert r.returncode == 1
    assert "pyd does not support swarm mode" in r.stderr


def test_plugins_none_installed(daemon):
    r = daemon.docker("plugin", "ls", "--format", "{{.Name}}")
    assert r.returncode == 0 and r.stdout == ""
    r = daemon.docker("plugin", "inspect", "vieux/sshfs")
    assert r.returncode == 1 and 'plugin "vieux/sshfs" not found' in r.stderr
    r = daemon.docker("plugin", "rm", "vieux/sshfs:latest")
    assert r.returncode == 1 and 'plugin "vieux/sshfs:latest" not found' in r.stderr
    assert daemon.api.plugins.list() == []


def test_volume_update_is_for_cluster_volumes(daemon):
    daemon.docker("volume", "create", "localvol", check=True)
    r = daemon.docker("volume", "update", "--availability", "drain", "localvol")
    assert r.returncode == 1 and r.stderr.strip() == "can only update cluster volumes", r.describe()
    api = daemon.api.api     # the CLI asks inspect first; a client that does not is told by the daemon
    r = api._put(api._url("/volumes/{0}", "localvol"), params={"version": "1"}, data="{}")
    assert r.status_code == 503
    assert r.json()["message"] == "volume update only valid for cluster volumes, but swarm is unavailable"
    daemon.docker("volume", "rm", "localvol", check=True)
