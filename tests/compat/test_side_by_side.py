"""pyd beside dockerd: the same docker CLI runs the same everyday commands (and their error cases) against
`pyd daemon` and against Debian's dockerd, each on private paths in its own network namespace, and the
exit codes and outputs must be the same once IDs, times and durations are normalised.

A case that differs for a reason pyd keeps on purpose says so in KEPT; a difference that is a pyd bug
still to fix is an expected failure (strict: it turns into a failure the day it passes, so the list
shrinks with the fixes). The match rate is printed at the end of the module's run.
"""
from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import DOCKER_CLI, SBIN_PATH, Result, run_command
from hostkit import NetNamespace, remove_cgroups, remove_tree, terminate, wait_answering

DOCKERD = "/usr/sbin/dockerd"
DOCKERD_CGROUP_PARENT = "pyd-compat-dockerd"
pytestmark = pytest.mark.slow


@dataclass
class Case:
    name: str
    # every step's result is compared, in order; "!sleep S" waits; "!tar ARGS" lists the tar `docker ARGS`
    # writes (type, mode, size, name, link: no owner names or times, which current dockerd leaves out)
    steps: list[list[str]]
    setup: list[list[str]] = field(default_factory=list)      # run first, results not compared
    cleanup: list[list[str]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)       # written into a fresh folder, named {ctx} in args


def C(name: str, *steps: str, setup: tuple[str, ...] = (), cleanup: tuple[str, ...] = (),
      files: dict[str, str] | None = None) -> Case:
    """A case from docker command lines, split as a shell would."""
    return Case(name, [shlex.split(s) for s in steps], [shlex.split(s) for s in setup],
                [shlex.split(s) for s in cleanup], files or {})


CASES = [
    C("run-echo", "run --rm busybox echo hello world"),
    C("run-exit-code", "run --rm busybox sh -c 'exit 3'"),
    C("run-not-found", "run --rm busybox no-such-command"),
    C("run-not-executable", "run --rm busybox /etc"),
    C("run-env-workdir-user", "run --rm -e A=1 -w /tmp -u 1000:1000 busybox sh -c 'pwd; id; echo $A'"),
    C("run-env-without-value", "run --rm -e FOO busybox sh -c 'echo ${FOO-unset}'"),
    # the CLI sends -e entries in no fixed order: look for the bare one, not at the order
    C("create-env-inspect", "inspect -f '{{range .Config.Env}}{{if eq . \"FOO\"}}bare FOO kept {{end}}{{end}}"
                            "{{.HostConfig.LogConfig.Type}}' cx-env",
      setup=("create --name cx-env -e FOO -e A=1 -e PATH=/bin busybox true",), cleanup=("rm -f cx-env",)),
    C("kill-default-waits", "kill cx-kd", "inspect -f '{{.State.Running}} {{.State.ExitCode}}' cx-kd",
      setup=("run -d --name cx-kd busybox sleep 300",), cleanup=("rm -f cx-kd",)),
    C("run-home-of-root", "run --rm busybox sh -c 'echo $HOME'"),
    C("run-groups-of-root", "run --rm busybox id"),
    C("run-hostname", "run --rm --hostname h1 busybox hostname"),
    C("run-relative-workdir", "run --rm -w relative busybox pwd"),
    C("run-dockerenv", "run --rm busybox ls /.dockerenv"),
    C("run-bad-log-driver", "run --rm --log-driver bogus busybox true"),
    C("run-name-conflict", "create --name cx-dup busybox true", "create --name cx-dup busybox true",
      cleanup=("rm -f cx-dup",)),
    C("start-a-again", "start -a cx-sa", "start -a cx-sa", setup=("create --name cx-sa busybox sh -c 'echo ran; exit 4'",),
      cleanup=("rm -f cx-sa",)),
    C("create-start-inspect", "create --name cx-life busybox true", "start -a cx-life",
      "inspect -f '{{.State.Status}} {{.State.ExitCode}}' cx-life", "rm cx-life"),
    C("ps-format", "ps -a --filter name=cx-ps --format '{{.Names}} {{.Image}} {{.Command}}'",
      setup=("create --name cx-ps busybox sleep 1",), cleanup=("rm -f cx-ps",)),
    C("ps-filter-regexp", "ps -a --filter name=^cx-ps2$ --format {{.Names}}",
      "ps -a --filter name=^ps2$ --format {{.Names}}",
      setup=("create --name cx-ps2 busybox true",), cleanup=("rm -f cx-ps2",)),
    C("ps-bad-filter", "ps --filter status=bogus"),
    C("rm-missing", "rm no-such-container"),
    C("inspect-missing", "inspect no-such-object"),
    C("stop-missing", "stop no-such-container"),
    C("logs", "logs cx-logs", "logs --tail 1 cx-logs", "logs --tail bogus cx-logs", "logs --tail -1 cx-logs",
      setup=("run --name cx-logs busybox sh -c 'echo one; echo two'",), cleanup=("rm -f cx-logs",)),
    C("exec", "exec cx-exec echo hi", "exec cx-exec false", "exec -w /tmp cx-exec pwd", "exec -u 1000 cx-exec id -u",
      setup=("run -d --name cx-exec busybox sleep 300",), cleanup=("rm -f cx-exec",)),
    C("exec-not-found", "exec cx-exec3 no-such-command",
      setup=("run -d --name cx-exec3 busybox sleep 300",), cleanup=("rm -f cx-exec3",)),
    C("exec-stopped", "exec cx-exec2 true", setup=("create --name cx-exec2 busybox true",),
      cleanup=("rm -f cx-exec2",)),
    C("kill-wait", "kill cx-kill", "wait cx-kill", "inspect -f '{{.State.ExitCode}} {{.RestartCount}}' cx-kill",
      setup=("run -d --name cx-kill busybox sleep 300",), cleanup=("rm -f cx-kill",)),
    C("kill-restart-policy", "kill cx-krs", "!sleep 1.5", "inspect -f '{{.State.Status}} {{.RestartCount}}' cx-krs",
      setup=("run -d --restart unless-stopped --name cx-krs busybox sleep 300",), cleanup=("rm -f cx-krs",)),
    C("rename", "rename cx-ren cx-ren2", "inspect -f {{.Name}} cx-ren2", "rename cx-ren2 cx-ren2",
      setup=("create --name cx-ren busybox true",), cleanup=("rm -f cx-ren2",)),
    C("port-none", "port cx-port", setup=("create --name cx-port busybox true",), cleanup=("rm -f cx-port",)),
    C("port-ipv6", "port cx-port6", "ps --filter name=cx-port6 --format {{.Ports}}",
      setup=("run -d --name cx-port6 -p 18080:80 -p 127.0.0.1:18081:81 busybox sleep 300",),
      cleanup=("rm -f cx-port6",)),
    C("run-link", "run --rm --name cx-lkp --link cx-lk:al busybox "
      "sh -c '(env | grep ^AL_ | sort; grep -w al /etc/hosts) | sed s/172[.0-9]*/IP/'",
      "run --rm --link cx-nolk:x busybox true",
      setup=("run -d --name cx-lk -e FOO=1 --expose 80 busybox sleep 300",), cleanup=("rm -f cx-lk",)),
    C("network-ipv6", "network inspect -f '{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}} {{end}}' nx6",
      "run --rm --network nx6 --ip6 fd00:77::9 busybox sh -c 'ip -6 addr show eth0 | grep -c fd00:77::9/64'",
      "network create --ipv6 nx6b",
      setup=("network create --ipv6 --subnet 172.29.0.0/16 --subnet fd00:77::/64 nx6",), cleanup=("network rm nx6",)),
    C("diff", "diff cx-diff", setup=("run --name cx-diff busybox touch /tmp/new",), cleanup=("rm -f cx-diff",)),
    C("ps-size", "ps -a -s --filter name=cx-size --format '{{.Names}} {{.Size}}'",
      setup=("run --name cx-size busybox sh -c 'head -c 3000 /dev/zero > /f'",), cleanup=("rm -f cx-size",)),
    C("images-format", "images --format '{{.Repository}}:{{.Tag}} {{.ID}}' busybox"),
    C("tag-rmi", "tag busybox:latest busybox:compat", "rmi busybox:compat", "rmi busybox:compat"),
    C("rmi-missing", "rmi no-such-image"),
    C("image-inspect", "image inspect -f '{{.Os}} {{.Architecture}}' busybox"),
    C("history", "history --format {{.CreatedBy}} busybox"),
    C("volume-life", "volume create vx1", "volume ls -q --filter name=vx1", "volume inspect -f {{.Driver}} vx1",
      "volume rm vx1", "volume rm vx1"),
    C("network-life", "network create nx1", "network ls --filter name=nx1 --format '{{.Name}} {{.Driver}}'",
      "network rm nx1", "network rm nx1"),
    C("network-missing", "network inspect no-such-network"),
    C("cp", "!tar cp cx-cp:/etc/hostname -", "!tar cp cx-cp:/.dockerenv -", "cp cx-cp:/no-such-file /tmp/x",
      "inspect -f '[{{.HostnamePath}}]' cx-cp", "start -a cx-cp", "!tar cp cx-cp:/etc/mtab -",
      setup=("create --name cx-cp --hostname cph busybox true",), cleanup=("rm -f cx-cp",)),
    # dockerd's init layer: in the container, in export, never in diff
    C("export-init-layer", "!tar export cx-exp", "diff cx-exp",
      setup=("create --name cx-exp busybox true",), cleanup=("rm -f cx-exp",)),
    C("run-mtab", "run --rm busybox readlink /etc/mtab"),
    C("etc-files-over-a-volume", "run --rm -v vx-etc:/etc --hostname hv busybox sh -c "
      "'cat /etc/hostname; ls /etc; grep -c localhost /etc/hosts'", "volume rm vx-etc"),
    C("etc-files-over-a-tmpfs", "run --rm --tmpfs /etc busybox ls /etc"),
    C("cgroupns", "run --rm --cgroupns private busybox cat /proc/self/cgroup",
      "inspect -f '{{.HostConfig.CgroupnsMode}}' cx-cgns", "run --rm --cgroupns bogus busybox true",
      "exec cx-cgns sh -c 'grep -c :/$ /proc/self/cgroup'",
      setup=("run -d --name cx-cgns --cgroupns private busybox sleep 300",), cleanup=("rm -f cx-cgns",)),
    C("blkio-weight", "run --rm --blkio-weight 5 busybox echo ran", "run --rm --blkio-weight 500 busybox echo ran"),
    C("device-read-bps-missing", "run --rm --device-read-bps /dev/nosuch:1mb busybox echo ran",
      "create --name cx-rbps --device-write-iops /dev/nosuch:10 busybox true", cleanup=("rm -f cx-rbps",)),
    C("device-throttles", "run --rm --device-read-bps /dev/vda:1mb --device-write-bps /dev/vda:2mb "
      "--device-read-iops /dev/vda:100 --device-write-iops /dev/vda:200 busybox echo ran",
      "inspect -f '{{json .HostConfig.BlkioDeviceReadBps}} {{json .HostConfig.BlkioDeviceWriteIOps}}' cx-thr",
      setup=("create --name cx-thr --device-read-bps /dev/vda:1mb --device-write-iops /dev/vda:200 busybox true",),
      cleanup=("rm -f cx-thr",)),
    C("exec-relative-workdir", "exec -w relative cx-erw pwd",
      setup=("run -d --name cx-erw busybox sleep 300",), cleanup=("rm -f cx-erw",)),
    C("cgroupns-default", "inspect -f '{{.HostConfig.CgroupnsMode}}' cx-cgdef",
      setup=("create --name cx-cgdef busybox true",), cleanup=("rm -f cx-cgdef",)),
    C("oom-score-adj", "run --rm --oom-score-adj 300 busybox cat /proc/1/oom_score_adj",
      "exec cx-oom cat /proc/self/oom_score_adj", "run --rm --oom-score-adj 1001 busybox true",
      setup=("run -d --name cx-oom --oom-score-adj 200 busybox sleep 300",), cleanup=("rm -f cx-oom",)),
    C("domainname", "run --rm --hostname h1 --domainname example.test busybox sh -c "
      "'hostname; cat /proc/sys/kernel/domainname; tail -1 /etc/hosts | cut -f2'",
      "run --rm --hostname a.b busybox sh -c 'tail -1 /etc/hosts | cut -f2'"),
    # ps filters and their values as dockerd checks them
    C("ps-filters-select", "ps -a --filter network=nx-ps --format {{.Names}}",
      "ps -a --filter volume=vx-ps --format {{.Names}}", "ps -a --filter volume=/data --format {{.Names}}",
      "ps -a --filter publish=18091 --format {{.Names}}", "ps -a --filter publish=80 --format {{.Names}}",
      "ps -a --filter expose=80 --format {{.Names}}", "ps -a --filter expose=6990-7010/tcp --format {{.Names}}",
      "ps -a --filter is-task=true --format {{.Names}}",
      "ps -a --filter is-task=false --filter name=cx-psf --format {{.Names}}",
      "ps -a --filter health=none --filter name=cx-psf --format {{.Names}}",
      "ps -n 2 --format {{.Names}}", "ps -l --format {{.Names}}",
      setup=("network create nx-ps", "volume create vx-ps",
             "create --name cx-psf-a --network nx-ps -v vx-ps:/data --expose 7000 busybox true",
             "run -d --name cx-psf-b -p 127.0.0.1:18091:80 --expose 7001 busybox sleep 300",
             "create --name cx-psf-c busybox true"),
      cleanup=("rm -f cx-psf-a cx-psf-b cx-psf-c", "network rm nx-ps", "volume rm vx-ps")),
    C("ps-bad-filter-values", "ps --filter health=bogus", "ps --filter is-task=maybe", "ps --filter exited=x",
      "ps --filter publish=1:2", "ps --filter expose=abc", "ps --filter publish=80-70",
      "ps --filter expose=70000", "ps --filter publish=/tcp", "ps --filter before=no-such-container"),
    C("ps-command-quoting", "ps -a --no-trunc --filter name=cx-cmd --format {{.Command}}",
      setup=("create --name cx-cmd busybox sh -c 'echo a  b; true'",), cleanup=("rm -f cx-cmd",)),
    C("inspect-size", "inspect -s -f '{{.SizeRw}} {{.SizeRootFs}}' cx-isz", "inspect -f '{{.SizeRw}}' cx-isz",
      "inspect -f '{{.HostConfig.Runtime}}' cx-isz",
      setup=("run --name cx-isz busybox sh -c 'head -c 3000 /dev/zero > /f'",), cleanup=("rm -f cx-isz",)),
    C("images-reference-glob", "images --format {{.Repository}} --filter reference=*ix*",
      "images --format {{.Repository}} --filter reference=*/ix*",
      setup=("tag busybox ix/a:1", "tag busybox bix:1"), cleanup=("rmi ix/a:1 bix:1",)),
    C("images-since-within-a-second", "images --format {{.Repository}} --filter since=ims-a:1",
      "images --format {{.Repository}} --filter before=ims-b:1 --filter reference=ims-*",
      setup=("create --name cx-ims busybox true", "commit cx-ims ims-a:1", "commit cx-ims ims-b:1"),
      cleanup=("rm -f cx-ims", "rmi ims-a:1 ims-b:1")),
    # the CLI sends --until in whole seconds: the sleep puts every event of the case before it
    C("events-attach", "attach cx-ev", "!sleep 1.1",
      "events --since 30s --until 0s --filter container=cx-ev --format '{{.Type}} {{.Action}}'",
      setup=("run -d --name cx-ev busybox sh -c 'sleep 1; echo bye'",), cleanup=("rm -f cx-ev",)),
    C("prune-until", "network prune -f --filter until=1h", "network ls -q --filter name=nx-pu",
      "container prune -f --filter until=bogus", "image prune -f --filter until=24h",
      setup=("network create nx-pu",), cleanup=("network rm nx-pu",)),
    C("run-refusals", "run --rm busybox ''", "run --rm --group-add nosuch busybox true",
      "run --rm --isolation bogus busybox true", "run --rm --storage-opt size=1g busybox true"),
    C("create-refusals", "create --stop-signal bogus busybox true", "create --mount type=bogus,dst=/x busybox true",
      "volume create --driver bogus vx-bad", "images --filter dangling=maybe"),
    C("exec-missing-user-or-dir", "exec -u nosuch cx-exu id", "exec -w /nonexist cx-exu pwd",
      setup=("run -d --name cx-exu busybox sleep 300",), cleanup=("rm -f cx-exu",)),
    C("update-refusals", "update --memory 1k cx-upr", "update --cpus -1 cx-upr",
      setup=("create --name cx-upr busybox true",), cleanup=("rm -f cx-upr",)),
    C("dev-shm", "run --rm --shm-size 1m busybox sh -c 'grep \" /dev/shm \" /proc/mounts | cut -d\" \" -f1-3'"),
    C("rm-running", "rm cx-rmr", setup=("run -d --name cx-rmr busybox sleep 300",), cleanup=("rm -f cx-rmr",)),
    C("save-layout", "!tar save busybox"),
    C("run-network-missing", "run --rm --network no-such-network busybox true"),
    C("load-bad-archive", "load -i {ctx}/short.tar", "load -i {ctx}/garbage.tar",
      files={"short.tar": "not a tar\n", "garbage.tar": "x" * 1024}),
    C("build-quiet-failure", "build -q {ctx}", "build -q -f ok.Dockerfile {ctx}",
      files={"Dockerfile": "FROM busybox\nRUN echo step-output\nRUN echo to-stderr >&2; exit 3\n",
             "ok.Dockerfile": "FROM busybox\nRUN true\n"}),
    C("update", "update --memory 64m cx-upd", "inspect -f '{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}' cx-upd",
      "update --cpus 0.5 cx-upd", "inspect -f '{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}' cx-upd",
      setup=("run -d --name cx-upd busybox sleep 300",), cleanup=("rm -f cx-upd",)),
    C("system-df", "system df --format {{.Type}}"),
    C("swarm", "service ls", "swarm leave --force"),
    C("plugins", "plugin ls", "plugin inspect no-such-plugin"),
    C("version-format", "version --format {{.Server.Os}}"),
]

# differences pyd keeps, with the reason (checked: the case must really differ)
KEPT: dict[str, str] = {
    "exec-not-found": "exit 127 for a command that is not found, as dockerd since 23.0 answers (20.10: 126)",
    "exec-stopped": "'container ... is not running' in the lower case current dockerd uses (20.10: 'Container')",
    "rm-running": "current dockerd's words ('cannot remove container \"/x\": container is running: stop the "
                  "container before removing or force remove'); 20.10: 'You cannot remove a running container'",
    "save-layout": "docker save writes the OCI layout with manifest.json beside it, as dockerd since 25.0 "
                   "(20.10: the legacy ID/layer.tar folders only); both load everywhere",
    "run-network-missing": "a start that cannot join its network says 'failed to set up container networking: ', "
                           "as current dockerd (20.10: the bare 'network x not found')",
    "exec-relative-workdir": "a relative exec -w is refused when the exec is created, in the words dockerd uses "
                             "for run -w ('the working directory ... needs to be an absolute path'); dockerd 20.10 "
                             "lets runc fail it at start (126, 'Cwd must be an absolute path')",
    "update": "dockerd 20.10 refuses a memory update when the container has no swap limit on this cgroup v1 "
              "host ('should be smaller than already set memoryswap limit'); current dockerd applies it, as pyd",
}
# pyd bugs still open; each must still fail
BUGS: dict[str, str] = {
}


ID_RE = re.compile(r"\b(sha256:)?[0-9a-f]{64}\b|\b[0-9a-f]{12}\b")
AGO_RE = re.compile(r"(About (a|an) \w+|Less than a second|\d+ \w+) ago|Up (About (a|an) \w+|Less than a second|"
                    r"\d+ \w+)")
TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?( [A-Z]{3,4})?")


# dockerd 20.10's words for a process that cannot start, and the words of current dockerd (which pyd uses)
RUNTIME_WORDS = ("failed to create shim task: OCI runtime create failed: runc create failed: unable to start "
                 "container process:", "failed to create task for container: failed to start container process:")


# the classic builder's words for a removed step container: 20.10's, and current dockerd's (pyd's)
REMOVED_WORDS = ("Removing intermediate container", " ---> Removed intermediate container")


def normalise(text: str) -> str:
    text = text.replace(*RUNTIME_WORDS).replace(*REMOVED_WORDS)
    text = ID_RE.sub("<ID>", text)
    text = AGO_RE.sub("<AGO>", text)
    return TIME_RE.sub("<TIME>", text)


class Dockerd:
    """Debian's dockerd (and the containerd it starts) on private paths in a fresh network namespace."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sock = str(root / "docker.sock")
        self.netns = NetNamespace()
        self.proc: subprocess.Popen | None = None
        (root / "cli").mkdir()

    def start(self, timeout: float = 60) -> None:
        argv = [DOCKERD, "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                "--pidfile", str(self.root / "docker.pid"), "-H", f"unix://{self.sock}",
                "--config-file", str(self.root / "daemon.json"), "--exec-opt", "native.cgroupdriver=cgroupfs",
                "--cgroup-parent", DOCKERD_CGROUP_PARENT, "--log-level", "warn"]
        (self.root / "daemon.json").write_text("{}")
        with (self.root / "dockerd.log").open("ab") as log:
            self.proc = subprocess.Popen(self.netns.enter_argv() + argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env={**os.environ, "PATH": SBIN_PATH})
        if not wait_answering(self.proc, self.sock, timeout, 0.1):
            pytest.fail(f"dockerd did not start: {(self.root / 'dockerd.log').read_text()[-2000:]}", pytrace=False)

    def docker(self, *args: str, timeout: float = 60) -> Result:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_HOST=f"unix://{self.sock}", DOCKER_CONFIG=str(self.root / "cli"), DOCKER_BUILDKIT="0",
                   DOCKER_CLI_HINTS="false")
        return run_command([DOCKER_CLI, *args], timeout=timeout, env=env)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            ids = self.docker("ps", "-aq").stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, timeout=120)
            terminate(self.proc)
        remove_tree(self.root)
        remove_cgroups(DOCKERD_CGROUP_PARENT)
        self.netns.close()


@pytest.fixture(scope="module")
def dockerd(busybox_archive: Path):
    if not os.access(DOCKERD, os.X_OK):
        pytest.fail(f"this test needs Debian's dockerd at {DOCKERD} (scripts/install-deps.sh installs docker.io)",
                    pytrace=False)
    d = Dockerd(Path(tempfile.mkdtemp(prefix="pyd-compat-", dir="/tmp")))
    try:
        d.start()
        assert d.docker("load", "-i", str(busybox_archive)).returncode == 0
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def pyd_side(daemon, busybox_archive: Path):
    assert daemon.docker("load", "-i", str(busybox_archive)).returncode == 0
    return daemon


RESULTS: dict[str, bool] = {}


def tar_listing(data: bytes) -> str:
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            return "".join(f"{m.type.decode()} {m.mode:o} {m.size} {m.name} {m.linkname}\n" for m in t)
    except tarfile.TarError as e:
        return f"not a tar: {e}\n"


def _run_case(docker, case: Case) -> list[tuple[int, str, str]]:
    ctx = tempfile.mkdtemp(prefix="pyd-compat-ctx-", dir="/tmp") if case.files else ""
    for name, text in case.files.items():
        Path(ctx, name).write_text(text)

    def run(*args: str) -> Result:
        return docker(*(a.replace("{ctx}", ctx) for a in args))
    try:
        return _run_steps(run, case)
    finally:
        if ctx:
            remove_tree(Path(ctx))


def _run_steps(run, case: Case) -> list[tuple[int, str, str]]:
    for step in case.setup:
        run(*step)
    try:
        out = []
        for step in case.steps:
            if step[0] == "!sleep":          # let a daemon act on its own (a restart policy) before looking
                time.sleep(float(step[1]))
                out.append((0, "", ""))
                continue
            if step[0] == "!tar":
                r = run(*step[1:])
                out.append((r.returncode, tar_listing(r.stdout_bytes) if r.returncode == 0 else r.stdout, r.stderr))
                continue
            r = run(*step)
            out.append((r.returncode, r.stdout, r.stderr))
        return out
    finally:
        for step in case.cleanup:
            run(*step)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_as_dockerd(case: Case, dockerd: Dockerd, pyd_side) -> None:
    ours = _run_case(pyd_side.docker, case)
    theirs = _run_case(dockerd.docker, case)
    lines = []
    same = True
    for step, (a, b) in zip(case.steps, zip(ours, theirs)):
        a_n = (a[0], normalise(a[1]), normalise(a[2]))
        b_n = (b[0], normalise(b[1]), normalise(b[2]))
        if a_n != b_n:
            same = False
            lines.append(f"$ docker {shlex.join(step)}\n  pyd:     {a_n!r}\n  dockerd: {b_n!r}")
    RESULTS[case.name] = same
    if case.name in KEPT:
        assert not same, f"{case.name} is listed as a kept difference but matches dockerd now"
        return
    if case.name in BUGS:
        if same:
            pytest.fail(f"{case.name} matches dockerd now: take it off BUGS", pytrace=False)
        pytest.xfail(BUGS[case.name])
    assert same, "differs from dockerd:\n" + "\n".join(lines)


def test_match_rate(dockerd, pyd_side, capsys) -> None:
    """Runs last in the module: the share of cases that match dockerd."""
    done = [n for n in (c.name for c in CASES) if n in RESULTS]
    matched = sum(RESULTS[n] for n in done)
    with capsys.disabled():
        print(f"\nside by side with dockerd: {matched} of {len(done)} cases match "
              f"({100 * matched / max(1, len(done)):.0f}%)")
    assert done, "no case ran"
