"""What a client sees at each API version it pins (moby's version history, 1.24 to 1.47), through docker-py's
APIClient(version=...): streams, request fields a version did not know, response fields it still had."""
from __future__ import annotations

import time

import docker
import pytest

VERSIONS = ["1.24", "1.41", "1.44", "1.47"]
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


@pytest.fixture(scope="module")
def clients(daemon):
    made = {v: docker.APIClient(base_url=daemon.host, version=v, timeout=60) for v in VERSIONS}
    yield made
    for c in made.values():
        c.close()


@pytest.fixture(scope="module")
def finished(daemon, busybox):
    """A non-TTY container that wrote to both streams and exited."""
    api = daemon.api.api
    c = api.create_container(busybox, ["sh", "-c", "echo hello world; echo oops >&2"])
    api.start(c)
    assert api.wait(c)["StatusCode"] == 0
    yield c["Id"]
    api.remove_container(c, force=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_logs_of_a_non_tty_container_are_multiplexed_at_every_version(clients, finished, version):
    api = clients[version]
    assert api.logs(finished, stdout=True, stderr=False) == b"hello world\n"
    assert api.logs(finished, stdout=False, stderr=True) == b"oops\n"
    r = api.get(api._url("/containers/{0}/logs", finished), params={"stdout": 1})
    assert r.content == b"\x01\x00\x00\x00\x00\x00\x00\x0chello world\n"       # one stdout frame
    assert r.headers["Content-Type"] == (MULTIPLEXED if version >= "1.42" else RAW)


@pytest.mark.parametrize("version", VERSIONS)
def test_attach_is_demultiplexed_at_every_version(busybox, clients, version):
    api = clients[version]
    # attached before the start, so the output follows the response head (docker-py reads the socket
    # under http.client's buffer: bytes that came with the head would be lost, with dockerd too)
    c = api.create_container(busybox, ["sh", "-c", "sleep 0.3; echo hello world; echo oops >&2"])
    try:
        stream = api.attach(c, stdout=True, stderr=True, stream=True, demux=True)
        api.start(c)
        got = list(stream)
        assert b"".join(o for o, _ in got if o) == b"hello world\n"
        assert b"".join(e for _, e in got if e) == b"oops\n"
    finally:
        api.remove_container(c, force=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_exec_output_at_every_version(daemon, busybox, clients, version):
    api = clients[version]
    c = api.create_container(busybox, ["sleep", "300"])
    try:
        api.start(c)
        exec_id = api.exec_create(c, ["sh", "-c", "echo out; echo err >&2"])
        out, err = api.exec_start(exec_id, demux=True)
        assert (out, err) == (b"out\n", b"err\n")
    finally:
        api.remove_container(c, force=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_stop_signal_parameter_from_1_42(daemon, busybox, clients, version):
    api = clients[version]
    script = "trap 'exit 7' TERM; trap 'exit 8' USR1; echo ready; while true; do sleep 0.1; done"
    c = api.create_container(busybox, ["sh", "-c", script])
    try:
        api.start(c)
        deadline = time.monotonic() + 10
        while b"ready" not in api.logs(c) and time.monotonic() < deadline:
            time.sleep(0.05)
        r = api.post(api._url("/containers/{0}/stop", c["Id"]), params={"signal": "USR1", "t": 5})
        assert r.status_code == 204
        # 1.42 brought `signal`; older clients get the container's stop signal (TERM)
        assert api.wait(c)["StatusCode"] == (8 if version >= "1.42" else 7)
    finally:
        api.remove_container(c, force=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_image_inspect_fields_by_version(clients, busybox, version):
    doc = clients[version].inspect_image(busybox)
    assert ("VirtualSize" in doc) == (version < "1.44")
    if "VirtualSize" in doc:
        assert doc["VirtualSize"] == doc["Size"]
    assert ("ContainerConfig" in doc) == (version < "1.45")
    assert ("Container" in doc) == (version < "1.45")


@pytest.mark.parametrize("version", VERSIONS)
def test_untagged_images_are_listed_as_none_before_1_43(daemon, busybox, clients, version):
    api = clients[version]
    c = api.create_container(busybox, ["true"])
    try:
        image_id = api.commit(c)["Id"]
        try:
            entry = next(e for e in api.images(all=True) if e["Id"] == image_id)
            if version < "1.43":
                assert (entry["RepoTags"], entry["RepoDigests"]) == (["<none>:<none>"], ["<none>@<none>"])
            else:
                assert (entry["RepoTags"], entry["RepoDigests"]) == ([], [])
            assert ("VirtualSize" in entry) == (version < "1.44")
        finally:
            api.remove_image(image_id)
    finally:
        api.remove_container(c, force=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_volume_prune_takes_named_volumes_before_1_42(clients, version):
    api = clients[version]
    name = f"named-{version.replace('.', '-')}"
    api.create_volume(name)
    anonymous = api.create_volume()["Name"] if version >= "1.42" else None
    try:
        # docker-py has prune_volumes from 1.25; the route is the same
        deleted = api._result(api._post(api._url("/volumes/prune")), True)["VolumesDeleted"] or []
        assert (name in deleted) == (version < "1.42")
        if anonymous:
            assert anonymous in deleted
    finally:
        for v in (name, anonymous):
            if v:
                try:
                    api.remove_volume(v)
                except docker.errors.NotFound:
                    pass


@pytest.mark.parametrize("version", VERSIONS)
def test_system_df_by_version(clients, busybox, version):
    api = clients[version]
    df = api._result(api._get(api._url("/system/df")), True)      # docker-py has df() from 1.25
    assert ("BuilderSize" in df) == (version < "1.42")
    image = next(i for i in df["Images"] if f"{busybox}" in i["RepoTags"])
    assert ("VirtualSize" in image) == (version < "1.44")
    assert df["LayersSize"] >= image["Size"] > 0
    assert df["BuildCache"] == []
    only = api._result(api._get(api._url("/system/df"), params={"type": "volume"}), True)
    # `type` came in 1.42: before, everything is computed
    assert (only["Images"] is None) == (version >= "1.42")
    assert isinstance(only["Volumes"], list)
