"""The daemon's side of the execd wire contract matches execd/protocol.h, its one source (no root, no build).

execdriver.py keeps its own constants (it is imported from the source tree and from the archive, where no
header is at hand); this test reads protocol.h and compares every frame number, attach flag, limit, state
file name, the protocol version, and the set of spec keys with what the Python side uses and sends.
"""
from __future__ import annotations

import re
import struct
import sys
from pathlib import Path

REPO = next(p for p in Path(__file__).resolve().parents if (p / "build.py").exists())   # any depth under tests/
sys.path.insert(0, str(REPO))

from pyd.daemon.runtime import execdriver  # noqa: E402
from pyd.daemon.runtime.execdriver import ContainerSpec, Mount, Process, Security  # noqa: E402
from pyd.daemon.spec.seccomp import SeccompFilter  # noqa: E402

PROTOCOL_H = REPO / "execd" / "protocol.h"


def _int(expr: str) -> int:
    if not re.fullmatch(r"[\d\s<()]+", expr):
        raise ValueError(f"protocol.h: cannot evaluate {expr!r}")
    return int(eval(expr, {"__builtins__": {}}))   # digits and shifts only, checked above


def contract() -> tuple[dict[str, int], dict[str, str]]:
    """The enum entries (NAME = value) and the string #defines of protocol.h."""
    text = re.sub(r"/\*.*?\*/", "", PROTOCOL_H.read_text(), flags=re.S)
    numbers = {m[1]: _int(m[2]) for m in re.finditer(r"^\s*(\w+)\s*=\s*([^,\n]+),", text, re.M)}
    strings = dict(re.findall(r'^#define\s+(\w+)\s+"([^"]*)"', text, re.M))
    return numbers, strings


def sent_keys(spec: ContainerSpec) -> set[str]:
    frames = execdriver.FrameParser().feed(execdriver.encode_spec(spec))
    return {payload.split(b"\0", 1)[0].decode() for kind, payload in frames if kind == execdriver.SPEC}


def full_spec(security: Security) -> ContainerSpec:
    """A spec that sets every field the encoder can send."""
    proc = Process(args=["sh"], env=["PATH=/bin"], cwd="/", uid=1, gid=1, groups=[2], tty=True, stdin=True,
                   console_size=(24, 80))
    return ContainerSpec(id="c", rootfs="/r", process=proc, hostname="h", state_dir="/s", log_path="/l",
                         log_max_size=10, log_max_file=2, mounts=[Mount("/m", "tmpfs", "tmpfs", ["ro"])],
                         namespaces=["mnt"], readonly_rootfs=True, join_namespaces={"net": "/n"}, exec_pid=1,
                         join_cgroups=["/sys/fs/cgroup/x"], security=security, output=False,
                         attach=[(5, execdriver.ATTACH_STDOUT)])


def full_security(**kw) -> Security:
    seccomp = SeccompFilter(default_action=0, arches=["x86_64"], rules=["0 read 0"]).records()
    return Security(caps="0 0 0 0 0", no_new_privileges=True, privileged=True, masked_paths=["/p"],
                    readonly_paths=["/q"], seccomp=seccomp, rlimits=["7 1 1"], sysctls=["a=b"],
                    devices=["c 1 3 666 /dev/x"], shm_size=1, oom_score_adj=-5, **kw)


def test_protocol_version_and_limits() -> None:
    numbers, _ = contract()
    assert numbers["PROTOCOL_VERSION"] == execdriver.PROTOCOL_VERSION
    assert numbers["HEADER_SIZE"] == execdriver.HEADER.size
    assert numbers["MAX_RECORD"] == execdriver.MAX_RECORD


def test_frame_types() -> None:
    numbers, _ = contract()
    frames = {name[2:]: value for name, value in numbers.items() if name.startswith("F_")}
    assert frames, "no F_ entries in protocol.h"
    assert {name: getattr(execdriver, name, None) for name in frames} == frames


def test_attach_flags() -> None:
    numbers, _ = contract()
    flags = {name: value for name, value in numbers.items() if name.startswith("ATTACH_")}
    assert flags and {name: getattr(execdriver, name, None) for name in flags} == flags


def test_state_files() -> None:
    _, strings = contract()
    assert strings["CONTROL_SOCKET"] == execdriver.CONTROL_SOCKET
    assert strings["EXIT_FILE"] == execdriver.EXIT_FILE


def test_spec_keys_are_the_ones_the_daemon_sends() -> None:
    _, strings = contract()
    keys = {value for name, value in strings.items() if name.startswith("KEY_")}
    # seccomp goes as rules or, compiled, as seccomp_bpf instead of them
    sent = sent_keys(full_spec(full_security())) | sent_keys(full_spec(full_security(seccomp_bpf=b"\0" * 8)))
    assert sent == keys


def test_hello_payload_is_the_version() -> None:
    frames = execdriver.FrameParser().feed(execdriver.encode_spec(full_spec(full_security())))
    assert frames[0] == (execdriver.HELLO, struct.pack(">I", execdriver.PROTOCOL_VERSION))
    assert frames[-1] == (execdriver.SPEC_END, b"")
