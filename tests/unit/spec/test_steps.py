"""build_spec from plain container configs: no daemon, no kernel, no root. Each test asserts what a step
makes of one setting; the last ones that building a spec changes nothing outside it."""
from __future__ import annotations

import builtins
import dataclasses
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pyd.daemon.runtime import native
from pyd.daemon.runtime.execdriver import ContainerSpec, ExecError, Mount
from pyd.daemon.spec import build
from pyd.daemon.spec.build import STEPS, build_spec
from pyd.daemon.spec.devices import Device, DeviceNode
from pyd.daemon.spec.inputs import CgroupPlacement, HostFacts, LogDefaults, SpecInputs, User
from pyd.daemon.spec.security import CAP_NUMBER, DEFAULT_CAPS, MASKED_PATHS, READONLY_PATHS

CID = "c" * 64
HOST = HostFacts(kernel="6.1.0-13-amd64", machine="x86_64")
ALL_CAPS = tuple(f"CAP_{n}" for n in ("CHOWN", "DAC_OVERRIDE", "SYS_ADMIN", "NET_ADMIN", "MKNOD"))
V1 = CgroupPlacement(dirs={"memory": f"/sys/fs/cgroup/memory/pyd/{CID}", "cpu": f"/sys/fs/cgroup/cpu,cpuacct/pyd/{CID}",
                           "cpuacct": f"/sys/fs/cgroup/cpu,cpuacct/pyd/{CID}"},
                     mount_points={"memory": "/sys/fs/cgroup/memory", "cpu": "/sys/fs/cgroup/cpu,cpuacct",
                                   "cpuacct": "/sys/fs/cgroup/cpu,cpuacct"})


def inputs(hc: dict[str, Any] | None = None, config: dict[str, Any] | None = None, **fields: Any) -> SpecInputs:
    """The inputs of a container created with HostConfig hc and Config config (defaults as create fills them)."""
    host_config = {"IpcMode": "private", "ShmSize": 64 << 20, "NetworkMode": "bridge", **(hc or {})}
    base: dict[str, Any] = dict(
        id=CID, rootfs="/nonexistent/rootfs", args=("sh", "-c", "true"),
        config={"Hostname": "web", **(config or {})}, host_config=host_config, host=HOST,
        state_dir=f"/nonexistent/exec/{CID}", log_path=f"/nonexistent/containers/{CID}/{CID}-json.log",
        execd_path="/nonexistent/execd",
        etc_files={n: f"/nonexistent/containers/{CID}/{n}" for n in ("hostname", "hosts", "resolv.conf")})
    base.update(fields)
    return SpecInputs(**base)


def mask(caps: list[str] | tuple[str, ...]) -> int:
    return sum(1 << CAP_NUMBER[c] for c in caps)


def cap_sets(spec: ContainerSpec) -> list[int]:
    """bounding, effective, permitted, inheritable, ambient"""
    assert spec.security is not None and spec.security.caps is not None
    return [int(v, 16) for v in spec.security.caps.split()]


def mount_at(spec: ContainerSpec, destination: str) -> Mount:
    found = [m for m in spec.mounts if m.destination == destination]
    assert len(found) == 1, spec.mounts
    return found[0]


# ---------------------------------------------------------------- the table

def test_steps_are_one_ordered_table_of_with_functions():
    names = [s.__name__ for s in STEPS]
    assert all(n.startswith("with_") for n in names) and len(set(names)) == len(names)
    # the order that the spec's contents depend on
    assert names.index("with_namespaces") < names.index("with_sysctls")
    assert names.index("with_security_opts") < names.index("with_capabilities") < names.index("with_seccomp")
    assert names.index("with_shm") < names.index("with_mounts") < names.index("with_init") \
        < names.index("with_tmpfs") < names.index("with_etc_files") < names.index("with_cgroup")


def test_the_same_inputs_give_the_same_spec():
    i = inputs({"Init": True, "Tmpfs": {"/run": ""}}, cgroup=V1)
    assert dataclasses.asdict(build_spec(i)) == dataclasses.asdict(build_spec(i))


# ---------------------------------------------------------------- process

def test_process_defaults():
    spec = build_spec(inputs())
    p = spec.process
    assert p.args == ["sh", "-c", "true"] and p.cwd == "/" and (p.uid, p.gid, p.groups) == (0, 0, [])
    assert p.env == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=web", "HOME=/"]
    assert not p.tty and not p.stdin and p.console_size is None
    assert spec.hostname == "web" and spec.state_dir == f"/nonexistent/exec/{CID}" and not spec.readonly_rootfs


def test_user_and_workdir():
    spec = build_spec(inputs(config={"User": "bob", "WorkingDir": "/srv"},
                             user=User(uid=1000, gid=1000, groups=(50, 1000), home="/home/bob")))
    p = spec.process
    assert (p.uid, p.gid, p.groups, p.cwd) == (1000, 1000, [50, 1000], "/srv")
    assert "HOME=/home/bob" in p.env
    # a non-root user keeps the bounding set, without effective or permitted capabilities
    bounding, effective, permitted, _, _ = cap_sets(spec)
    assert bounding == mask(DEFAULT_CAPS) and effective == permitted == 0


def test_env_merge_and_home():
    spec = build_spec(inputs(config={"Env": ["PATH=/opt/bin", "A=1", "HOME=/data"]}))
    assert spec.process.env == ["PATH=/opt/bin", "HOSTNAME=web", "A=1", "HOME=/data"]


def test_tty_sets_term_and_console_size():
    spec = build_spec(inputs({"ConsoleSize": [24, 80]}, config={"Tty": True, "OpenStdin": True}))
    assert "TERM=xterm" in spec.process.env
    assert spec.process.tty and spec.process.stdin and spec.process.console_size == (24, 80)
    assert "TERM=xterm" not in build_spec(inputs()).process.env


def test_init_runs_execd_as_pid_1():
    spec = build_spec(inputs({"Init": True}))
    assert spec.process.args == ["/sbin/docker-init", "--", "sh", "-c", "true"]
    m = mount_at(spec, "/sbin/docker-init")
    assert (m.type, m.source, m.options) == ("bind", "/nonexistent/execd", ["bind", "rprivate", "ro"])


# ---------------------------------------------------------------- log

def test_log_rotation_from_log_opts():
    spec = build_spec(inputs({"LogConfig": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "3"}}}))
    assert spec.log_path.endswith("-json.log") and (spec.log_max_size, spec.log_max_file) == (1 << 20, 3)
    # the daemon's log-opts where the container has none, pyd's default (20m x 5) without either
    spec = build_spec(inputs(log=LogDefaults("json-file", {"max-size": "10m", "max-file": "2"})))
    assert (spec.log_max_size, spec.log_max_file) == (10 << 20, 2)
    assert (build_spec(inputs()).log_max_size, build_spec(inputs()).log_max_file) == (20 << 20, 5)


def test_log_driver_none_has_no_log():
    assert build_spec(inputs({"LogConfig": {"Type": "none"}})).log_path is None
    assert build_spec(inputs(log=LogDefaults("none"))).log_path is None


# ---------------------------------------------------------------- mounts

def test_etc_files_volumes_and_their_order():
    points = {"/data/sub": {"Type": "tmpfs", "Destination": "/data/sub", "_Tmpfs": ["size=1k"]},
              "/data": {"Type": "bind", "Source": "/srv", "Destination": "/data", "RW": False},
              "/etc/hosts": {"Type": "bind", "Source": "/my/hosts", "Destination": "/etc/hosts"}}
    spec = build_spec(inputs(mount_points=points))
    # a user's /etc/hosts replaces Docker's; parents before children, else in the order given
    assert [m.destination for m in spec.mounts] == ["/data", "/data/sub", "/etc/hosts", "/etc/hostname",
                                                    "/etc/resolv.conf"]
    assert mount_at(spec, "/etc/hostname").source == f"/nonexistent/containers/{CID}/hostname"
    assert mount_at(spec, "/data").options == ["rbind", "rprivate", "ro"]
    assert mount_at(spec, "/data/sub") == Mount("/data/sub", "tmpfs", "tmpfs", ["size=1k"])


def test_etc_files_over_a_mount_on_etc():
    points = {"/etc": {"Type": "volume", "Source": "/v/_data", "Destination": "/etc"}}
    dests = [m.destination for m in build_spec(inputs({"Tmpfs": {"/": ""}}, mount_points=points)).mounts]
    assert dests.index("/etc") < dests.index("/etc/hosts") and dests.index("/") < dests.index("/etc/resolv.conf")
    assert dests[-3:] == ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]


def test_tmpfs():
    spec = build_spec(inputs({"Tmpfs": {"/run": "size=1m,mode=700", "/tmp": ""}}))
    assert mount_at(spec, "/run") == Mount("/run", "tmpfs", "tmpfs", ["nosuid", "nodev", "noexec", "size=1m", "mode=700"])
    assert mount_at(spec, "/tmp").options == ["nosuid", "nodev", "noexec"]


def test_read_only_rootfs():
    assert build_spec(inputs({"ReadonlyRootfs": True})).readonly_rootfs


def test_ipc_shareable_binds_the_shared_shm_first():
    spec = build_spec(inputs({"IpcMode": "shareable", "ShmSize": 1 << 20}, shm_source="/c/mounts/shm"))
    assert spec.mounts[0] == Mount("/dev/shm", "bind", "/c/mounts/shm", ["rbind", "rprivate"])
    assert spec.security is not None and spec.security.shm_size == 0   # the shared tmpfs has its own size
    # private: execd's own tmpfs, of --shm-size when it is not the default
    spec = build_spec(inputs({"ShmSize": 1 << 20}))
    assert all(m.destination != "/dev/shm" for m in spec.mounts) and spec.security.shm_size == 1 << 20
    assert build_spec(inputs()).security.shm_size == 0


# ---------------------------------------------------------------- namespaces

def test_own_namespaces_by_default():
    spec = build_spec(inputs())
    assert spec.namespaces == ["mnt", "pid", "uts", "ipc", "net"] and spec.join_namespaces == {}


def test_network_and_pid_host():
    spec = build_spec(inputs({"NetworkMode": "host", "PidMode": "host"}))
    assert spec.namespaces == ["mnt", "uts", "ipc"] and spec.join_namespaces == {}


def test_joined_namespaces():
    spec = build_spec(inputs({"IpcMode": "container:db", "UTSMode": "host"},
                             network_join={"net": "/run/netns/sb"}, peer_namespaces={"ipc": "/proc/42/ns/ipc"}))
    assert spec.namespaces == ["mnt", "pid"]
    assert spec.join_namespaces == {"net": "/run/netns/sb", "ipc": "/proc/42/ns/ipc"}


# ---------------------------------------------------------------- security

def test_default_capabilities_and_cap_add():
    assert cap_sets(build_spec(inputs()))[:3] == [mask(DEFAULT_CAPS)] * 3
    assert f"{mask(DEFAULT_CAPS):016x}" == "00000000a80425fb"   # Docker's CapEff for root
    spec = build_spec(inputs({"CapAdd": ["net_admin"], "CapDrop": ["MKNOD"]}))
    want = mask([c for c in DEFAULT_CAPS if c != "CAP_MKNOD"] + ["CAP_NET_ADMIN"])
    assert cap_sets(spec)[:3] == [want] * 3


def test_cap_add_all_takes_the_hosts_capabilities():
    spec = build_spec(inputs({"CapAdd": ["ALL"], "CapDrop": ["MKNOD"]}, host=dataclasses.replace(HOST, capabilities=ALL_CAPS)))
    assert cap_sets(spec)[0] == mask([c for c in ALL_CAPS if c != "CAP_MKNOD"])


def test_unknown_capability_fails_the_start_as_execd_would():
    with pytest.raises(ExecError) as e:
        build_spec(inputs({"CapAdd": ["NOPE"]}))
    assert (e.value.exit_code, e.value.step) == (125, "security") and "unknown capability" in e.value.message


def test_privileged():
    null = Device("/dev/null", "/dev/null", "rwm", "c", 1, 3, 0o666)
    spec = build_spec(inputs({"Privileged": True}, host=dataclasses.replace(HOST, capabilities=ALL_CAPS, devices=(null,)),
                             cgroup=V1))
    sec = spec.security
    assert sec is not None and sec.privileged
    assert cap_sets(spec)[:3] == [mask(ALL_CAPS)] * 3
    assert sec.seccomp == [] and sec.masked_paths == [] and sec.readonly_paths == []
    assert sec.devices == ["c 1 3 666 /dev/null"]
    assert "ro" not in mount_at(spec, "/sys/fs/cgroup/memory").options


def test_seccomp_default_and_unconfined():
    records = build_spec(inputs()).security.seccomp
    assert records[0][0] == "seccomp_default" and ("seccomp_arch", "x86_64") in records
    allowed = lambda recs: {v.split()[1] for k, v in recs if k == "seccomp_rule"}  # noqa: E731
    assert "mount" not in allowed(records)   # Docker's profile allows it with CAP_SYS_ADMIN only
    assert "mount" in allowed(build_spec(inputs({"CapAdd": ["SYS_ADMIN"]})).security.seccomp)
    assert build_spec(inputs({"SecurityOpt": ["seccomp=unconfined"]})).security.seccomp == []
    sec = build_spec(inputs({"SecurityOpt": ["no-new-privileges"]})).security
    assert sec.no_new_privileges and sec.seccomp


def test_masked_and_readonly_paths():
    sec = build_spec(inputs()).security
    assert sec.masked_paths == MASKED_PATHS and sec.readonly_paths == READONLY_PATHS
    sec = build_spec(inputs({"MaskedPaths": ["/proc/x"], "ReadonlyPaths": []})).security
    assert sec.masked_paths == ["/proc/x"] and sec.readonly_paths == []
    # the cgroup tree is read-only too, once the container has a cgroup
    assert build_spec(inputs(cgroup=V1)).security.readonly_paths == [*READONLY_PATHS, "/sys/fs/cgroup"]


def test_rlimits_sysctls_devices():
    hc = {"Ulimits": [{"Name": "nofile", "Soft": -1, "Hard": -1}], "Sysctls": {"net.ipv4.ip_forward": "1"},
          "Devices": [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/f", "CgroupPermissions": "rw"}]}
    nodes = {"/dev/fuse": DeviceNode(mode=0o20666, rdev=os.makedev(10, 229))}
    sec = build_spec(inputs(hc, host=dataclasses.replace(HOST, device_nodes=nodes))).security
    assert sec.rlimits == ["7 18446744073709551615 18446744073709551615"]   # -1: unlimited
    assert sec.sysctls == ["net.ipv4.ip_forward=1"]
    assert sec.devices == ["c 10 229 666 /dev/f"]


def test_oom_score_adj_and_domainname():
    spec = build_spec(inputs({"OomScoreAdj": -300}, config={"Domainname": "example.test"}))
    assert spec.security.oom_score_adj == -300 and "kernel.domainname=example.test" in spec.security.sysctls
    spec = build_spec(inputs())
    assert spec.security.oom_score_adj is None and spec.security.sysctls == []   # none: the daemon's own


def test_refusals_are_execd_start_errors():
    cases = [({"NetworkMode": "host", "Sysctls": {"net.x": "1"}}, "not allowed in the hosts network namespace"),
             ({"Devices": [{"PathOnHost": "/dev/gone"}]}, '"/dev/gone": no such file or directory'),
             ({"Ulimits": [{"Name": "nope"}]}, "invalid ulimit type: nope")]
    for hc, words in cases:
        with pytest.raises(ExecError) as e:
            build_spec(inputs(hc))
        assert (e.value.exit_code, e.value.step) == (125, "security") and words in e.value.message


# ---------------------------------------------------------------- cgroup

def test_cgroup_v1_and_v2():
    spec = build_spec(inputs(cgroup=V1))
    assert spec.join_cgroups == [f"/sys/fs/cgroup/memory/pyd/{CID}", f"/sys/fs/cgroup/cpu,cpuacct/pyd/{CID}"]
    assert [m.destination for m in spec.mounts if m.destination.startswith("/sys/fs/cgroup")] == [
        "/sys/fs/cgroup", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/memory"]
    v2 = CgroupPlacement(dirs={"unified": f"/sys/fs/cgroup/pyd/{CID}"})
    spec = build_spec(inputs(cgroup=v2))
    assert spec.join_cgroups == [f"/sys/fs/cgroup/pyd/{CID}"]
    assert mount_at(spec, "/sys/fs/cgroup").options == ["rbind", "ro", "nosuid", "nodev", "noexec"]
    assert build_spec(inputs()).join_cgroups == []


# ---------------------------------------------------------------- no side effects

def _refuse(name: str):
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"build_spec called {name}{args}")
    return refused


def _read_only_open(real):
    def opener(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(ch in mode for ch in "wax+"):
            raise AssertionError(f"build_spec opened {file} for writing")
        return real(file, mode, *args, **kwargs)
    return opener


BUSY = [({"Privileged": True, "Init": True, "Tmpfs": {"/run": ""}, "ReadonlyRootfs": True}, {}),
        ({"IpcMode": "shareable", "Devices": [{"PathOnHost": "/dev/null"}], "CapAdd": ["ALL"],
          "Sysctls": {"kernel.shmmax": "1"}, "Ulimits": [{"Name": "nproc", "Soft": 1, "Hard": 2}]},
         {"User": "1000", "Tty": True})]


def test_build_spec_changes_nothing_outside_the_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    before = sorted((str(p), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    for name in ("mkdir", "makedirs", "rmdir", "unlink", "rename", "replace", "symlink", "chmod", "chown",
                 "open", "stat", "lstat", "walk", "kill", "setns", "unshare"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, _refuse(f"os.{name}"))
    monkeypatch.setattr(builtins, "open", _read_only_open(builtins.open))
    monkeypatch.setattr(native, "mount", _refuse("native.mount"))
    monkeypatch.setattr(native, "umount2", _refuse("native.umount2"))
    monkeypatch.setattr(subprocess, "run", _refuse("subprocess.run"))
    monkeypatch.setattr(subprocess, "Popen", _refuse("subprocess.Popen"))
    nodes = {"/dev/null": DeviceNode(mode=0o20666, rdev=os.makedev(1, 3))}
    host = dataclasses.replace(HOST, capabilities=ALL_CAPS, device_nodes=nodes,
                               devices=(Device("/dev/zero", "/dev/zero", "rwm", "c", 1, 5, 0o666),))
    for hc, config in BUSY:
        spec = build_spec(inputs(hc, config, rootfs=str(rootfs), state_dir=str(tmp_path / "exec"), host=host,
                                 cgroup=V1, shm_source=str(tmp_path / "shm") if hc.get("IpcMode") == "shareable" else None,
                                 log_path=str(tmp_path / "c-json.log")))
        assert spec.security is not None
    monkeypatch.undo()
    assert sorted((str(p), p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before


def test_steps_live_in_spec_modules():
    assert {s.__module__.rsplit(".", 1)[0] for s in STEPS} == {"pyd.daemon.spec"}
    assert build.build_spec is build_spec
