"""docker rmi of an image a container uses, as dockerd answers: a running container is a conflict no -f
overrides (by ID), -f by name only untags; a stopped container's image goes with -f."""
from __future__ import annotations

import json


def image_id(daemon, ref: str) -> str:
    return json.loads(daemon.docker("image", "inspect", ref, check=True).stdout)[0]["Id"]


def test_rmi_of_image_a_running_container_uses(daemon, busybox):
    daemon.docker("tag", busybox, "rmi-run:1", check=True)
    iid = image_id(daemon, "rmi-run:1")
    daemon.docker("rmi", busybox, check=True)          # rmi-run:1 is the only name left
    cid = daemon.docker("run", "-d", "--network", "none", "rmi-run:1", "sleep", "300", check=True).stdout.strip()
    try:
        for args in ((iid,), ("-f", iid)):
            r = daemon.docker("rmi", *args)
            assert r.returncode == 1
            assert (f"Error response from daemon: conflict: unable to delete {iid[7:19]} (cannot be forced) - "
                    f"image is being used by running container {cid[:12]}") in r.stderr, r.stderr
        r = daemon.docker("rmi", "rmi-run:1")
        assert r.returncode == 1 and "(must force) - container" in r.stderr
        r = daemon.docker("rmi", "-f", "rmi-run:1")
        assert (r.returncode, r.stdout) == (0, "Untagged: rmi-run:1\n"), r.stderr
        assert image_id(daemon, iid) == iid                     # the image stays, untagged
        assert daemon.docker("exec", cid, "true").returncode == 0
    finally:
        daemon.docker("rm", "-f", cid)
        daemon.docker("tag", iid, busybox)


def test_rmi_f_of_image_a_stopped_container_uses(daemon, busybox):
    daemon.docker("tag", busybox, "rmi-stop:1", check=True)
    iid = image_id(daemon, busybox)
    cid = daemon.docker("create", "rmi-stop:1", "true", check=True).stdout.strip()
    try:
        daemon.docker("tag", iid, "rmi-stop:2", check=True)
        r = daemon.docker("rmi", "-f", "rmi-stop:1")
        assert (r.returncode, r.stdout) == (0, "Untagged: rmi-stop:1\n")
        assert daemon.docker("image", "inspect", "rmi-stop:2").returncode == 0
    finally:
        daemon.docker("rm", "-f", cid)
        daemon.docker("rmi", "rmi-stop:2")
