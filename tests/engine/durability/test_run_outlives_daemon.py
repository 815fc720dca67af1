"""A foreground `docker run` whose daemon is killed mid-run: its output goes on through execd, and it
exits with the container's code (execd ends the wait response the dead daemon had begun), not 125
`error waiting for container: unexpected EOF`."""
from __future__ import annotations

import subprocess
import time

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("rm", [False, True], ids=["keep", "rm"])
def test_docker_run_exits_with_the_containers_code_after_a_daemon_kill(make_daemon, busybox_rootfs_tar, rm):
    d = make_daemon()
    image = d.import_image(busybox_rootfs_tar, "busybox")
    base = {k: v for k, v in d.env().items() if not k.startswith("DOCKER_")}
    env = {**base, "DOCKER_HOST": d.host, "DOCKER_CONFIG": str(d.docker_config), "DOCKER_CLI_HINTS": "false"}
    argv = ["/usr/local/bin/docker", "run", *(["--rm"] if rm else []), "--name", "outlives", image,
            "sh", "-c", "echo started; sleep 4; echo finished; exit 7"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first == "started\n", proc.stderr.read() if proc.poll() is not None else first
        # the output comes before the start's answer: the kill waits for the start to be over
        while d.pyd("inspect", "-f", "{{.State.Running}}", "outlives").stdout.strip() != "true":
            time.sleep(0.05)
        time.sleep(0.5)
        d.kill9()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out) == (7, "finished\n"), err
    d.start()     # and the restarted daemon sees the exit (a --rm container is removed)
    deadline = time.monotonic() + 20
    while True:
        names = d.pyd("ps", "-a", "--format", "{{.Names}} {{.Status}}", check=True).stdout.split("\n")
        if (not rm and any(n.startswith("outlives Exited (7)") for n in names)) or (rm and names == [""]):
            break
        assert time.monotonic() < deadline, names
        time.sleep(0.2)
