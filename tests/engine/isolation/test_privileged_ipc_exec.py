"""Isolation details, through the docker CLI and docker-py: --privileged gets the host's devices, --ipc
modes share /dev/shm, --blkio-weight as Docker treats it here, and docker exec under the container's
capabilities and seccomp filter."""
from __future__ import annotations

import json
import os
import stat

import pytest

DEFAULT_CAPS = "00000000a80425fb"


def run(daemon, *args, check=False):
    return daemon.docker("run", "--rm", "--network", "none", *args, check=check)


def host_device_nodes() -> set[str]:
    """Device nodes under the host's /dev as runc's HostDevices finds them (no pts/shm/mqueue, no console)."""
    found = set()
    for top, dirs, files in os.walk("/dev"):
        if top == "/dev":
            dirs[:] = [d for d in dirs if d not in ("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev")]
        for name in files:
            path = os.path.join(top, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) and path not in ("/dev/console", "/dev/ptmx"):
                found.add(path)
    return found


def host_can_open(path: str) -> bool:
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- --privileged devices

def test_privileged_gets_every_host_device(daemon, busybox):
    host = host_device_nodes()
    r = run(daemon, "--privileged", busybox, "find", "/dev", "-type", "c", "-o", "-type", "b")
    assert r.returncode == 0, r.stderr
    inside = set(r.stdout.split())
    assert host <= inside, sorted(host - inside)[:10]
    # the device cgroup allows them all: nodes the host itself may open open in the container too
    openable = [p for p in ("/dev/kmsg", "/dev/loop-control", "/dev/fuse", "/dev/net/tun", "/dev/mem")
                if p in host and host_can_open(p)]
    if openable:
        r = run(daemon, "--privileged", busybox, "sh", "-c",
                "; ".join(f"dd if={p} of=/dev/null count=0 2>/dev/null && echo ok {p}" for p in openable))
        assert r.stdout.split("\n")[:-1] == [f"ok {p}" for p in openable], r.describe()
    # /dev/ptmx stays the container's devpts one
    r = run(daemon, "--privileged", busybox, "readlink", "/dev/ptmx")
    assert r.stdout.strip() == "pts/ptmx"
    # without --privileged: still the standard nodes only
    r = run(daemon, busybox, "ls", "/dev")
    assert not any(n.startswith(("sd", "nvme", "vd", "loop", "mem", "kmsg")) for n in r.stdout.split())


# ---------------------------------------------------------------- --ipc and /dev/shm

def test_ipc_shareable_and_container_share_dev_shm(daemon, busybox):
    donor = daemon.docker("run", "-d", "--network", "none", "--ipc", "shareable", busybox, "sh", "-c",
                          "echo from-donor > /dev/shm/marker && sleep 300", check=True).stdout.strip()
    private = daemon.docker("run", "-d", "--network", "none", busybox, "sleep", "300", check=True).stdout.strip()
    try:
        r = run(daemon, "--ipc", f"container:{donor}", busybox, "sh", "-c",
                "for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /dev/shm/marker ] && break; sleep 0.1; done; "
                "cat /dev/shm/marker; echo back > /dev/shm/reply")
        assert r.stdout.strip() == "from-donor", r.describe()
        r = daemon.docker("exec", donor, "cat", "/dev/shm/reply")
        assert r.stdout.strip() == "back", r.describe()
        # the same IPC namespace too
        ns = [daemon.docker("exec", donor, "readlink", "/proc/self/ns/ipc", check=True).stdout.strip(),
              run(daemon, "--ipc", f"container:{donor}", busybox, "readlink", "/proc/self/ns/ipc").stdout.strip()]
        assert ns[0] == ns[1]
        # a private container's IPC cannot be joined (Docker's hint)
        r = run(daemon, "--ipc", f"container:{private}", busybox, "true")
        assert r.returncode != 0
        assert f"container {private}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)" \
            in r.stderr, r.describe()
        mode = json.loads(daemon.docker("inspect", donor, check=True).stdout)[0]["HostConfig"]["IpcMode"]
        assert mode == "shareable"
    finally:
        daemon.docker("rm", "-f", donor, private)
    # the donor's shm mount is gone with it
    assert not [line for line in open("/proc/self/mounts") if donor in line]


def test_ipc_host_shares_host_dev_shm(daemon, busybox, tmp_path):
    name = f"pyd-test-{os.getpid()}-{tmp_path.name}"
    try:
        r = run(daemon, "--ipc", "host", busybox, "sh", "-c", f"echo from-container > /dev/shm/{name}")
        assert r.returncode == 0, r.describe()
        with open(f"/dev/shm/{name}") as f:
            assert f.read() == "from-container\n"
    finally:
        if os.path.exists(f"/dev/shm/{name}"):
            os.unlink(f"/dev/shm/{name}")
    r = run(daemon, "--ipc", "host", busybox, "readlink", "/proc/self/ns/ipc")
    assert r.stdout.strip() == os.readlink("/proc/self/ns/ipc")


def test_private_ipc_has_own_shm(daemon, busybox):
    r = run(daemon, busybox, "sh", "-c", "grep ' /dev/shm ' /proc/mounts; ls /dev/shm | wc -l")
    assert "tmpfs" in r.stdout and "size=65536k" in r.stdout and r.stdout.split()[-1] == "0", r.describe()


# ---------------------------------------------------------------- --blkio-weight

def blkio_weight_supported() -> bool:
    root = "/sys/fs/cgroup/blkio"
    if os.path.isdir(root):
        return any(os.path.exists(os.path.join(root, n)) for n in ("blkio.weight", "blkio.bfq.weight"))
    return os.path.exists("/sys/fs/cgroup/io.bfq.weight") or os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def test_blkio_weight(daemon, busybox):
    r = daemon.docker("create", "--blkio-weight", "300", busybox, "true")
    cid = r.stdout.strip()
    try:
        assert r.returncode == 0, r.describe()
        hc = json.loads(daemon.docker("inspect", cid, check=True).stdout)[0]["HostConfig"]
        if blkio_weight_supported():
            assert hc["BlkioWeight"] == 300
        else:
            # dockerd: a warning at create, the weight discarded (and shown as 0 by inspect)
            assert ("WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                    "Weight discarded.") in r.stderr, r.describe()
            assert hc["BlkioWeight"] == 0
        assert daemon.docker("start", "-a", cid).returncode == 0
    finally:
        daemon.docker("rm", "-f", cid)
    # dockerd looks at the range only where the weight is kept
    r = daemon.docker("create", "--blkio-weight", "5", busybox, "true")
    if blkio_weight_supported():
        assert r.returncode != 0 and "Range of blkio weight is from 10 to 1000" in r.stderr
    else:
        assert r.returncode == 0 and "Weight discarded." in r.stderr, r.describe()
        daemon.docker("rm", "-f", r.stdout.strip())


def test_blkio_weight_warning_through_api(daemon, busybox):
    import docker
    client = docker.APIClient(base_url=f"unix://{daemon.sock}")
    created = client.create_container(busybox, "true", host_config=client.create_host_config(blkio_weight=300))
    try:
        if not blkio_weight_supported():
            assert created["Warnings"] == ["Your kernel does not support Block I/O weight or the cgroup is not "
                                           "mounted. Weight discarded."]
    finally:
        client.remove_container(created["Id"], force=True)
        client.close()


# ---------------------------------------------------------------- docker exec under the container's rules

@pytest.fixture
def sleeper(daemon, busybox):
    made = []

    def start(*flags: str) -> str:
        cid = daemon.docker("run", "-d", "--network", "none", *flags, busybox, "sleep", "300",
                            check=True).stdout.strip()
        made.append(cid)
        return cid
    yield start
    if made:
        daemon.docker("rm", "-f", *made)


def cap(daemon, cid: str, field: str, *flags: str) -> str:
    r = daemon.docker("exec", *flags, cid, "grep", f"^{field}:", "/proc/self/status")
    assert r.returncode == 0, r.describe()
    return r.stdout.split()[1]


def test_exec_gets_the_container_caps_and_seccomp(daemon, sleeper):
    cid = sleeper()
    init_eff = daemon.docker("exec", cid, "grep", "^CapEff:", "/proc/1/status", check=True).stdout.split()[1]
    assert init_eff == DEFAULT_CAPS
    assert cap(daemon, cid, "CapEff") == init_eff
    assert cap(daemon, cid, "CapBnd") == DEFAULT_CAPS
    r = daemon.docker("exec", cid, "grep", "^Seccomp:", "/proc/self/status")
    assert "Seccomp:\t2" in r.stdout
    r = daemon.docker("exec", cid, "sh", "-c", "mount -t tmpfs t /mnt 2>&1; echo rc=$?")
    # busybox's words for EPERM from mount(2)
    assert "rc=1" in r.stdout and "permission denied" in r.stdout.lower(), r.describe()
    r = daemon.docker("exec", cid, "unshare", "-U", "true")
    assert r.returncode != 0   # seccomp: unshare needs CAP_SYS_ADMIN in Docker's profile
    # a non-root exec user: no effective caps
    assert cap(daemon, cid, "CapEff", "-u", "1000") == "0000000000000000"


def test_exec_follows_cap_changes_of_the_container(daemon, sleeper):
    cid = sleeper("--cap-drop", "ALL", "--cap-add", "SYS_ADMIN")
    assert cap(daemon, cid, "CapEff") == f"{1 << 21:016x}"
    r = daemon.docker("exec", cid, "sh", "-c", "mount -t tmpfs t /tmp && echo mounted")
    assert "mounted" in r.stdout, r.describe()   # SYS_ADMIN: the profile lets mount(2) through


def test_exec_privileged_gets_all_caps(daemon, sleeper):
    cid = sleeper()
    with open("/proc/self/status") as f:
        bnd = next(line.split()[1] for line in f if line.startswith("CapBnd:"))
    # Docker: --privileged exec gets every capability, but the container's seccomp filter stays
    assert cap(daemon, cid, "CapEff", "--privileged") == bnd
    r = daemon.docker("exec", "--privileged", cid, "grep", "^Seccomp:", "/proc/self/status")
    assert "Seccomp:\t2" in r.stdout


def test_exec_caps_through_docker_py(daemon, sleeper):
    cid = sleeper()
    container = daemon.api.containers.get(cid)
    code, out = container.exec_run(["grep", "^CapEff:", "/proc/self/status"])
    assert code == 0 and out.split()[1].decode() == DEFAULT_CAPS
    code, out = container.exec_run(["sh", "-c", "mount -t tmpfs t /mnt 2>&1"])
    assert code != 0 and b"permission denied" in out.lower()
