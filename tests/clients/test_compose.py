"""docker-compose 1.29 (Debian's) against pyd: a two-service project on its default network, by name."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

COMPOSE_YML = """\
version: "3"
services:
  web:
    image: busybox:latest
    command: ["sh", "-c", "mkdir -p /www && echo hello-compose > /www/index.html && exec httpd -f -p 80 -h /www"]
  client:
    image: busybox:latest
    depends_on: [web]
    command: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://web/index.html && exit 0; sleep 0.3; done; exit 1"]
"""


@pytest.fixture(scope="module")
def compose_bin() -> str:
    path = shutil.which("docker-compose")
    if not path:
        subprocess.run(["apt-get", "install", "-y", "-q", "docker-compose"], capture_output=True, timeout=600)
        path = shutil.which("docker-compose")
    if not path:
        pytest.fail("this test needs docker-compose (apt-get install docker-compose)", pytrace=False)
    return path


def compose(daemon, compose_bin: str, project_dir, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "COMPOSE_"))}
    env.update(DOCKER_HOST=daemon.host, DOCKER_CONFIG=str(daemon.docker_config), COMPOSE_PROJECT_NAME="demo")
    return subprocess.run([compose_bin, "--no-ansi", *args], cwd=project_dir, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_compose_up_by_service_name_and_down(daemon, busybox, compose_bin, tmp_path):
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_YML)
    try:
        up = compose(daemon, compose_bin, tmp_path, "up", "--exit-code-from", "client")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "hello-compose" in up.stdout
        nets = json.loads(daemon.docker("network", "inspect", "demo_default", check=True).stdout)[0]
        assert nets["Labels"].get("com.docker.compose.project") == "demo"
    finally:
        down = compose(daemon, compose_bin, tmp_path, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    names = daemon.docker("network", "ls", "--format", "{{.Name}}", check=True).stdout.split()
    assert "demo_default" not in names
    assert daemon.docker("ps", "-aq", "--filter", "label=com.docker.compose.project=demo", check=True).stdout == ""
    links = json.loads(daemon.netns_run("ip", "-j", "link", "show", check=True).stdout)
    assert not [l["ifname"] for l in links if l["ifname"].startswith("br-")]
