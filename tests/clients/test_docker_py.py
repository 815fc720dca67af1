"""The engine core through docker-py (the Docker SDK for Python) against `pyd daemon`."""
from __future__ import annotations

import docker
import pytest


def test_version_and_ping(daemon):
    assert daemon.api.ping() is True
    version = daemon.api.version()
    assert version["ApiVersion"] == "1.47"
    assert daemon.api.info()["Driver"] in ("overlay2", "vfs")


def test_run_returns_output(daemon, busybox):
    assert daemon.api.containers.run(busybox, ["echo", "from docker-py"], remove=True) == b"from docker-py\n"


def test_run_nonzero_raises_container_error(daemon, busybox):
    with pytest.raises(docker.errors.ContainerError) as info:
        daemon.api.containers.run(busybox, ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
    assert info.value.exit_status == 3


def test_detached_container_lifecycle(daemon, busybox):
    c = daemon.api.containers.run(busybox, ["sh", "-c", "echo ready; exec sleep 300"], detach=True,
                                  name="py-life", labels={"team": "pyd"}, environment={"A": "1"})
    try:
        c.reload()
        assert c.status == "running"
        assert c.labels == {"team": "pyd"}
        assert "A=1" in c.attrs["Config"]["Env"]
        found = daemon.api.containers.list(filters={"label": "team=pyd"})
        assert [x.id for x in found] == [c.id]
        for line in c.logs(stream=True, follow=True):
            assert line == b"ready\n"
            break
        c.stop(timeout=1)
        assert c.wait()["StatusCode"] == 137
        c.reload()
        assert c.status == "exited"
        assert daemon.api.containers.list() == []
        assert [x.id for x in daemon.api.containers.list(all=True, filters={"name": "py-life"})] == [c.id]
    finally:
        c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        daemon.api.containers.get("py-life")


def test_kill_and_wait(daemon, busybox):
    c = daemon.api.containers.run(busybox, ["sleep", "300"], detach=True)
    try:
        c.kill(signal="SIGKILL")
        assert c.wait(timeout=10)["StatusCode"] == 137
    finally:
        c.remove(force=True)


def test_unknown_image_and_container(daemon):
    with pytest.raises(docker.errors.ImageNotFound):
        daemon.api.images.get("127.0.0.1:1/nope/nothing:latest")
    with pytest.raises(docker.errors.NotFound):
        daemon.api.containers.get("0123456789abcdef")


def test_duplicate_name_conflict(daemon, busybox):
    c = daemon.api.containers.create(busybox, ["true"], name="py-dup")
    try:
        with pytest.raises(docker.errors.APIError) as info:
            daemon.api.containers.create(busybox, ["true"], name="py-dup")
        assert info.value.status_code == 409
    finally:
        c.remove()


def test_image_list_tag_remove(daemon, busybox):
    img = daemon.api.images.get(busybox)
    assert "busybox:latest" in img.tags
    assert img.tag("py-tagged", "t1")
    assert "py-tagged:t1" in daemon.api.images.get(img.id).tags
    daemon.api.images.remove("py-tagged:t1")
    assert "py-tagged:t1" not in daemon.api.images.get(img.id).tags
    assert img.id in [i.id for i in daemon.api.images.list()]
