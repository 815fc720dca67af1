"""Security defaults as Docker applies them, through the docker CLI and docker-py: capabilities, seccomp,
masked and read-only paths, devices, --read-only/--tmpfs/--shm-size, ulimits, sysctls, namespace modes."""
from __future__ import annotations

import json

import pytest

DEFAULT_CAPS = "00000000a80425fb"


def run(daemon, *args, check=False):
    return daemon.docker("run", "--rm", "--network", "none", *args, check=check)


def cap_line(daemon, busybox, field, *flags):
    r = run(daemon, *flags, busybox, "grep", f"^{field}:", "/proc/self/status")
    assert r.returncode == 0, r.stderr
    return r.stdout.split()[1]


def all_caps_mask() -> str:
    """Every capability of the kernel that this (the daemon's) environment holds."""
    with open("/proc/self/status") as f:
        return next(line.split()[1] for line in f if line.startswith("CapBnd:"))


# ---------------------------------------------------------------- capabilities

def test_default_caps_for_root(daemon, busybox):
    r = run(daemon, busybox, "grep", "^Cap", "/proc/self/status")
    assert r.returncode == 0, r.stderr
    caps = dict(line.split(":\t") for line in r.stdout.splitlines())
    assert caps["CapEff"] == DEFAULT_CAPS
    assert caps["CapPrm"] == DEFAULT_CAPS
    assert caps["CapBnd"] == DEFAULT_CAPS
    assert caps["CapInh"] == "0000000000000000"
    assert caps["CapAmb"] == "0000000000000000"


def test_non_root_user_has_no_effective_caps(daemon, busybox):
    r = run(daemon, "-u", "1000", busybox, "grep", "^Cap", "/proc/self/status")
    caps = dict(line.split(":\t") for line in r.stdout.splitlines())
    assert caps["CapEff"] == "0000000000000000"
    assert caps["CapPrm"] == "0000000000000000"
    assert caps["CapBnd"] == DEFAULT_CAPS


def test_cap_drop_all(daemon, busybox):
    assert cap_line(daemon, busybox, "CapEff", "--cap-drop", "ALL") == "0000000000000000"
    assert cap_line(daemon, busybox, "CapBnd", "--cap-drop", "all") == "0000000000000000"


def test_cap_add_net_admin_and_drop_chown(daemon, busybox):
    eff = int(cap_line(daemon, busybox, "CapEff", "--cap-add", "NET_ADMIN", "--cap-drop", "CAP_CHOWN"), 16)
    assert eff == (0xa80425fb | 1 << 12) & ~1


def test_privileged_gets_every_cap(daemon, busybox):
    assert cap_line(daemon, busybox, "CapEff", "--privileged") == all_caps_mask()


def test_unknown_cap_is_refused(daemon, busybox):
    r = run(daemon, "--cap-add", "NOPE", busybox, "true")
    assert r.returncode == 125
    assert 'unknown capability: "CAP_NOPE"' in r.stderr


def test_inspect_reflects_security_settings(daemon, busybox):
    cid = daemon.docker("create", "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD", "--read-only",
                        "--security-opt", "no-new-privileges", busybox, "true", check=True).stdout.strip()
    try:
        hc = json.loads(daemon.docker("inspect", cid, check=True).stdout)[0]["HostConfig"]
        assert hc["CapAdd"] in (["NET_ADMIN"], ["CAP_NET_ADMIN"])   # the CLI 28 normalizes the names
        assert hc["CapDrop"] in (["MKNOD"], ["CAP_MKNOD"])
        assert hc["ReadonlyRootfs"] is True and hc["Privileged"] is False
        assert hc["SecurityOpt"] == ["no-new-privileges"]
        assert "/proc/kcore" in hc["MaskedPaths"] and "/proc/sys" in hc["ReadonlyPaths"]
        assert hc["ShmSize"] == 64 * 1024 * 1024 and hc["IpcMode"] == "private"
    finally:
        daemon.docker("rm", "-f", cid)


# ---------------------------------------------------------------- seccomp and friends

def test_default_refuses_mount_unshare_and_friends(daemon, busybox):
    script = ("mkdir -p /tmp/m; mount -t tmpfs t /tmp/m 2>&1; echo mount=$?; unshare -n true 2>&1; echo unshare=$?; "
              "echo b > /proc/sysrq-trigger 2>&1; echo sysrq=$?; touch /sys/x 2>&1; echo sys=$?; "
              "chroot / true 2>&1; echo chroot=$?")
    r = run(daemon, busybox, "sh", "-c", script)
    out = r.stdout
    assert "mount=0" not in out and "Operation not permitted" in out, out
    assert "unshare=0" not in out
    assert "sysrq=0" not in out and "sys=0" not in out
    assert "chroot=0" in out   # CAP_SYS_CHROOT is in Docker's default set


def test_privileged_may_mount_and_unshare(daemon, busybox):
    r = run(daemon, "--privileged", busybox, "sh", "-c",
            "mkdir -p /tmp/m && mount -t tmpfs t /tmp/m && echo mounted; unshare -n true && echo unshared")
    assert "mounted" in r.stdout and "unshared" in r.stdout, r.stdout + r.stderr


def test_cap_sys_admin_with_seccomp_allows_mount(daemon, busybox):
    """The profile's CAP_SYS_ADMIN condition: the same filter lets mount(2) through with the cap."""
    r = run(daemon, "--cap-add", "SYS_ADMIN", busybox, "sh", "-c",
            "mkdir -p /tmp/m && mount -t tmpfs t /tmp/m && echo mounted")
    assert "mounted" in r.stdout, r.stderr


def test_seccomp_unconfined_changes_the_refusal(daemon, busybox):
    """Without the filter a missing capability says EPERM from the kernel, not from seccomp: unshare -U
    (user namespaces need no capability) only works unconfined."""
    confined = run(daemon, busybox, "unshare", "-U", "true")
    unconfined = run(daemon, "--security-opt", "seccomp=unconfined", busybox, "unshare", "-U", "true")
    assert confined.returncode != 0
    assert unconfined.returncode == 0, unconfined.stderr


def test_seccomp_reboot_refused(daemon, busybox):
    r = run(daemon, busybox, "sh", "-c", "reboot -f; echo rc=$?")
    # busybox reboot -f calls reboot(2) directly: EPERM from the filter; the container keeps running
    assert "rc=" in r.stdout


def test_custom_seccomp_profile(daemon, busybox, tmp_path):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    r = run(daemon, "--security-opt", f"seccomp={path}", busybox, "sh", "-c", "mkdir /tmp/x 2>&1; echo rc=$?")
    assert "Permission denied" in r.stdout and "rc=1" in r.stdout, r.stdout + r.stderr


def test_no_new_privileges(daemon, busybox):
    assert "NoNewPrivs:\t0" in run(daemon, busybox, "grep", "NoNewPrivs", "/proc/self/status").stdout
    r = run(daemon, "--security-opt", "no-new-privileges", busybox, "grep", "NoNewPrivs", "/proc/self/status")
    assert "NoNewPrivs:\t1" in r.stdout, r.stderr


def test_seccomp_mode_is_filter(daemon, busybox):
    assert "Seccomp:\t2" in run(daemon, busybox, "grep", "^Seccomp:", "/proc/self/status").stdout
    assert "Seccomp:\t0" in run(daemon, "--privileged", busybox, "grep", "^Seccomp:", "/proc/self/status").stdout


# ---------------------------------------------------------------- paths and filesystems

def test_masked_and_readonly_paths(daemon, busybox):
    """/proc/keys is /dev/null, /proc/acpi an empty tmpfs, /proc/kcore (where the kernel has one) unreadable."""
    r = run(daemon, busybox, "sh", "-c",
            "cat /proc/keys | wc -c; ls /proc/acpi | wc -l; head -c 16 /proc/kcore 2>/dev/null | wc -c; "
            "echo 1 > /proc/sys/vm/drop_caches 2>&1; echo rc=$?")
    lines = r.stdout.split("\n")
    assert lines[0].strip() == "0" and lines[1].strip() == "0" and lines[2].strip() == "0", r.stdout
    assert "Read-only file system" in r.stderr and "rc=1" in r.stdout


def test_privileged_has_no_masks(daemon, busybox):
    r = run(daemon, "--privileged", busybox, "sh", "-c", "grep -c -E ' /proc/(keys|acpi|sys) ' /proc/self/mountinfo")
    assert r.stdout.strip() == "0"
    r = run(daemon, busybox, "sh", "-c", "grep -c -E ' /proc/(keys|acpi|sys) ' /proc/self/mountinfo")
    assert r.stdout.strip() == "3"


def test_sys_and_cgroup_read_only(daemon, busybox):
    r = run(daemon, busybox, "sh", "-c", "grep -E ' /sys(/fs/cgroup)? ' /proc/self/mountinfo")
    assert r.stdout.count(" ro,") >= 2 or all(" ro" in line for line in r.stdout.splitlines()), r.stdout


def test_read_only_rootfs_with_tmpfs(daemon, busybox):
    r = run(daemon, "--read-only", "--tmpfs", "/run:size=1m", busybox, "sh", "-c",
            "touch /x 2>&1; echo root=$?; touch /run/ok && echo tmpfs-ok; grep ' /run ' /proc/mounts")
    assert "Read-only file system" in r.stdout and "root=1" in r.stdout
    assert "tmpfs-ok" in r.stdout and "size=1024k" in r.stdout and "noexec" in r.stdout


def test_shm_size(daemon, busybox):
    r = run(daemon, "--shm-size", "128m", busybox, "sh", "-c", "grep ' /dev/shm ' /proc/mounts")
    assert "size=131072k" in r.stdout, r.stdout + r.stderr


def test_dev_has_standard_nodes_only(daemon, busybox):
    r = run(daemon, busybox, "ls", "/dev")
    names = set(r.stdout.split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm"} <= names
    assert not any(n.startswith(("sd", "nvme", "vd", "loop", "mem", "kmsg")) for n in names), names


def test_device_flag_adds_node_and_cgroup_rule(daemon, busybox):
    r = run(daemon, "--device", "/dev/loop-control:/dev/lc", busybox, "ls", "-l", "/dev/lc")
    assert r.returncode == 0 and r.stdout.startswith("c"), r.stderr
    # without --device even a created node is refused by the device cgroup
    r = run(daemon, busybox, "sh", "-c", "mknod /dev/lc c 10 237 && cat /dev/lc 2>&1; echo rc=$?")
    assert "Operation not permitted" in r.stdout


def test_device_cgroup_rule_allows_a_created_node(daemon, busybox):
    script = "mknod /dev/lc c 10 237 && cat /dev/lc 2>&1; echo rc=$?"
    r = run(daemon, "--device-cgroup-rule", "c 10:237 r", busybox, "sh", "-c", script)
    assert "rc=" in r.stdout and "Operation not permitted" not in r.stdout, r.stdout + r.stderr
    r = run(daemon, "--device-cgroup-rule", "c 10:237 w", busybox, "sh", "-c", script)
    assert "Operation not permitted" in r.stdout        # the rule grants writing only


def test_malformed_device_cgroup_rule_is_refused_at_create(daemon, busybox):
    import docker.errors
    with pytest.raises(docker.errors.APIError) as e:
        daemon.api.api.create_container(busybox, ["true"],
                                    host_config=daemon.api.api.create_host_config(device_cgroup_rules=["b 7 rw"]))
    assert e.value.status_code == 400
    assert "invalid device cgroup rule format: 'b 7 rw'" in str(e.value)


def test_raw_block_device_refused(daemon, busybox):
    r = run(daemon, busybox, "sh", "-c", "mknod /tmp/sda b 8 0 && head -c1 /tmp/sda 2>&1; echo rc=$?")
    assert "Operation not permitted" in r.stdout


# ---------------------------------------------------------------- limits, sysctls, namespaces

def test_ulimit_nofile(daemon, busybox):
    r = run(daemon, "--ulimit", "nofile=1024:2048", busybox, "sh", "-c", "ulimit -n; ulimit -Hn")
    assert r.stdout.split() == ["1024", "2048"], r.stderr


def test_sysctl_in_own_netns(daemon, busybox):
    r = daemon.docker("run", "--rm", "--sysctl", "net.ipv4.ip_forward=1", busybox,
                      "cat", "/proc/sys/net/ipv4/ip_forward")
    assert r.stdout.strip() == "1", r.stderr


def test_host_sysctl_refused(daemon, busybox):
    r = run(daemon, "--sysctl", "kernel.domainname=x", busybox, "true")
    assert r.returncode == 125
    assert "sysctl 'kernel.domainname=x' is not" in r.stderr   # the CLI's own check ("allowed"/"whitelisted")
    r = daemon.docker("run", "--rm", "--network", "host", "--sysctl", "net.ipv4.ip_forward=1", busybox, "true")
    assert r.returncode != 0
    assert 'sysctl "net.ipv4.ip_forward" is not allowed in the hosts network namespace' in r.stderr


def test_sysctl_refused_through_api(daemon, busybox):
    import docker
    with pytest.raises(docker.errors.APIError) as e:
        daemon.api.containers.run(busybox, "true", remove=True, network_mode="none",
                                  sysctls={"kernel.panic": "1"})
    assert 'sysctl "kernel.panic" is not in a separate kernel namespace' in str(e.value)


def test_pid_container_sees_other_processes(daemon, busybox):
    # the donor is shareable: dockerd refuses to join the IPC of a private container
    cid = daemon.docker("run", "-d", "--network", "none", "--ipc", "shareable", busybox, "sleep", "300",
                        check=True).stdout.strip()
    try:
        r = run(daemon, "--pid", f"container:{cid}", busybox, "ps")
        assert "sleep 300" in r.stdout, r.stdout + r.stderr
        r = run(daemon, "--ipc", f"container:{cid}", busybox, "true")
        assert r.returncode == 0, r.stderr
    finally:
        daemon.docker("rm", "-f", cid)


def test_pid_container_not_running(daemon, busybox):
    cid = daemon.docker("create", busybox, "true", check=True).stdout.strip()
    try:
        r = run(daemon, "--pid", f"container:{cid}", busybox, "true")
        assert r.returncode != 0 and "cannot join PID of a non running container" in r.stderr
    finally:
        daemon.docker("rm", "-f", cid)


def test_uts_host(daemon, busybox):
    import socket
    r = run(daemon, "--uts", "host", busybox, "hostname")
    assert r.stdout.strip() == socket.gethostname()


def test_group_add(daemon, busybox):
    r = run(daemon, "-u", "1000", "--group-add", "123", busybox, "id", "-G")
    assert "123" in r.stdout.split(), r.stdout + r.stderr


def test_docker_py_cap_and_ulimits(daemon, busybox):
    import docker
    out = daemon.api.containers.run(busybox, ["sh", "-c", "grep CapEff /proc/self/status; ulimit -n"],
                                    remove=True, network_mode="none", cap_drop=["ALL"],
                                    ulimits=[docker.types.Ulimit(name="nofile", soft=100, hard=200)])
    assert out == b"CapEff:\t0000000000000000\n100\n"


PROBE_C = r"""
/* ptrace/keyctl probe: prints NAME=ERRNO (0 on success) for each attempt */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "ptrace:", 7) == 0) {
			int pid = atoi(argv[i] + 7);
			long r = ptrace(PTRACE_ATTACH, pid, 0, 0);
			printf("ptrace%s=%d\n", argv[i] + 7, r == 0 ? 0 : errno);
			if (r == 0)
				ptrace(PTRACE_DETACH, pid, 0, 0);
		} else if (strcmp(argv[i], "keyctl") == 0) {
			long r = syscall(SYS_add_key, "user", "pyd-probe", "x", 1, -2 /* KEY_SPEC_PROCESS_KEYRING */);
			printf("add_key=%d\n", r >= 0 ? 0 : errno);
		}
	}
	return 0;
}
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> str:
    """A static ptrace/add_key probe (busybox has neither strace nor keyctl), bind-mounted into containers."""
    import shutil
    import subprocess
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the ptrace probe")
    d = tmp_path_factory.mktemp("probe")
    (d / "probe.c").write_text(PROBE_C)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "probe"), str(d / "probe.c")], check=True,
                   capture_output=True, timeout=60)
    return str(d / "probe")


def test_escape_checklist(daemon, busybox, probe):
    """Probes a hostile root process would try, each refused as Docker refuses it."""
    ESRCH, EPERM = 3, 1
    r = run(daemon, "-v", f"{probe}:/probe:ro", busybox, "/probe", f"ptrace:{daemon.pid}", "keyctl")
    assert f"ptrace{daemon.pid}={ESRCH}" in r.stdout.split(), r.describe()   # host PIDs are not visible
    assert f"add_key={EPERM}" in r.stdout.split(), r.describe()              # not in the seccomp allow list
    r = run(daemon, "--security-opt", "seccomp=unconfined", "-v", f"{probe}:/probe:ro", busybox, "/probe", "keyctl")
    assert "add_key=0" in r.stdout.split(), r.describe()                     # the refusal was seccomp's
    # PID 1 of the container (root, Docker's caps) from an exec'd process without CAP_SYS_PTRACE: EPERM
    cid = daemon.docker("run", "-d", "--network", "none", "-v", f"{probe}:/probe:ro", busybox, "sleep", "300",
                        check=True).stdout.strip()
    try:
        r = daemon.docker("exec", "-u", "1000", cid, "/probe", "ptrace:1")
        assert f"ptrace1={EPERM}" in r.stdout.split(), r.describe()
    finally:
        daemon.docker("rm", "-f", cid)
    script = "; ".join([
        "echo 1 > /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null; echo cgroup_write=$?",
        ": > /m.ko; insmod /m.ko 2>/dev/null; echo insmod=$?",
        f"kill -0 {daemon.pid} 2>/dev/null; echo host_pid=$?",
        "nsenter -t 1 -m -u -i -n -p true 2>/dev/null; echo nsenter=$?",
        "cd /../../..; ls -di . | cut -d' ' -f1; ls -di / | cut -d' ' -f1",
        "mknod /tmp/sda b 8 0 2>/dev/null && cat /tmp/sda >/dev/null 2>&1; echo blockdev=$?",
    ])
    out = run(daemon, busybox, "sh", "-c", script).stdout.split()
    assert "cgroup_write=1" in out            # /sys/fs/cgroup is read-only
    assert "insmod=1" in out                  # no CAP_SYS_MODULE, init_module blocked by seccomp
    assert "host_pid=1" in out                # the daemon's PID does not exist in the container's pid ns
    assert "blockdev=1" in out                # device cgroup: no raw access to host disks
    inodes = [w for w in out if w.isdigit()]
    assert len(inodes) == 2 and inodes[0] == inodes[1]   # ".." at / stays at the container's root
    assert "nsenter=1" in out                 # setns needs CAP_SYS_ADMIN
