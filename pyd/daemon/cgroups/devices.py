"""Device access rules as the devices controller of cgroup v1 reads them ("c 1:3 rwm"), and the eBPF
program (BPF_PROG_TYPE_CGROUP_DEVICE) that enforces the same rules on cgroup v2, which has no devices
controller: the kernel runs the program on every mknod and open of a device node in the cgroup.

The program is assembled here from the rules (pure: bytes out, no syscall); `pyd.daemon.runtime.native`
loads and attaches it. Semantics are v1's: the rules apply in order and the last one that matches
decides, so "a" deny followed by allows is an allowlist and a leading "a" allow lets everything through.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any, Mapping

# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }: access_type is access << 16 | type
DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}
_ACCESS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
ALL_ACCESS = ACC_MKNOD | ACC_READ | ACC_WRITE


@dataclass(frozen=True)
class DeviceRule:
    kind: str                 # "a" (any device), "c" or "b"
    major: int | None         # None: any ("*")
    minor: int | None
    access: int               # a mask of ACC_*
    allow: bool = True

    def __str__(self) -> str:
        if self.kind == "a":
            return "a"
        num = lambda n: "*" if n is None else str(n)   # noqa: E731
        acc = "".join(ch for ch, bit in (("r", ACC_READ), ("w", ACC_WRITE), ("m", ACC_MKNOD)) if self.access & bit)
        return f"{self.kind} {num(self.major)}:{num(self.minor)} {acc}"


# dockerd's deviceCgroupRuleRegex: what --device-cgroup-rule accepts
_USER_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")


def check_user_rule(text: str) -> DeviceRule:
    """A HostConfig.DeviceCgroupRules entry, as strictly as dockerd reads it."""
    if not isinstance(text, str) or not _USER_RULE.match(text):
        raise ValueError(f"invalid device cgroup rule format: '{text}'")
    return parse_rule(text)


def parse_rule(text: str, allow: bool = True) -> DeviceRule:
    """'a', 'c 1:3 rwm', 'b *:* m', 'c 136:* rw' (the devices.allow / --device-cgroup-rule syntax)."""
    parts = text.split()
    if parts == ["a"] or parts[:1] == ["a"] and len(parts) <= 3:
        return DeviceRule("a", None, None, ALL_ACCESS, allow)
    if len(parts) != 3 or parts[0] not in _TYPES or parts[1].count(":") != 1:
        raise ValueError(f"invalid device cgroup rule {text!r}")
    major_s, minor_s = parts[1].split(":")
    try:
        major = None if major_s == "*" else int(major_s)
        minor = None if minor_s == "*" else int(minor_s)
    except ValueError:
        raise ValueError(f"invalid device cgroup rule {text!r}") from None
    if any(n is not None and not 0 <= n < 1 << 31 for n in (major, minor)):   # an imm32 of the program
        raise ValueError(f"invalid device cgroup rule {text!r}")
    if not parts[2] or any(ch not in _ACCESS for ch in parts[2]):
        raise ValueError(f"invalid device cgroup rule {text!r}: access must be made of r, w and m")
    access = 0
    for ch in parts[2]:
        access |= _ACCESS[ch]
    return DeviceRule(parts[0], major, minor, access, allow)


# eBPF opcodes used here (linux/bpf.h, bpf_common.h)
_LDX_W = 0x61          # dst = *(u32 *)(src + off)
_MOV32_X = 0xBC        # w_dst = w_src
_AND32_K = 0x54        # w_dst &= imm
_RSH32_K = 0x74        # w_dst >>= imm
_JNE_K = 0x55          # if dst != imm: pc += off
_MOV64_K = 0xB7        # dst = imm
_EXIT = 0x95
_R0, _R1, _R2, _R3, _R4, _R5 = 0, 1, 2, 3, 4, 5


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _rule_block(rule: DeviceRule) -> list[bytes]:
    """The rule's checks, each jumping past the block when it fails, then its verdict."""
    checks: list[tuple[list[bytes], int, int]] = []     # (set-up, register, value it must equal)
    if rule.kind != "a":
        checks.append(([], _R2, _TYPES[rule.kind]))
    if rule.access != ALL_ACCESS:
        # the access asked for must be within the rule's: w0 = access & ~allowed must be 0 (r0 is free
        # until the verdict sets it)
        checks.append(([_insn(_MOV32_X, _R0, _R3), _insn(_AND32_K, _R0, imm=ALL_ACCESS & ~rule.access)], _R0, 0))
    if rule.major is not None:
        checks.append(([], _R4, rule.major))
    if rule.minor is not None:
        checks.append(([], _R5, rule.minor))
    verdict = [_insn(_MOV64_K, _R0, imm=1 if rule.allow else 0), _insn(_EXIT)]
    size = sum(len(setup) + 1 for setup, _, _ in checks) + len(verdict)
    out: list[bytes] = []
    for setup, reg, value in checks:
        out.extend(setup)
        out.append(_insn(_JNE_K, reg, off=size - len(out) - 1, imm=value))
    return out + verdict


def compile_program(rules: list[DeviceRule]) -> bytes:
    """The program for `rules` (v1 order): r2 = type, r3 = access, r4 = major, r5 = minor, then one
    block per rule, last rule first, each returning its verdict on a match; nothing matched: deny."""
    head = [
        _insn(_LDX_W, _R2, _R1, off=0),
        _insn(_MOV32_X, _R3, _R2),
        _insn(_AND32_K, _R2, imm=0xFFFF),
        _insn(_RSH32_K, _R3, imm=16),
        _insn(_LDX_W, _R4, _R1, off=4),
        _insn(_LDX_W, _R5, _R1, off=8),
    ]
    blocks: list[bytes] = []
    for rule in reversed(rules):
        blocks.extend(_rule_block(rule))
        if rule.kind == "a":
            # an "a" rule matches everything: what comes after would be unreachable, which the verifier refuses
            return b"".join(head + blocks)
    return b"".join(head + blocks + [_insn(_MOV64_K, _R0, imm=0), _insn(_EXIT)])


def container_rules(default_rules: list[str], devices: list[str], cgroup_rules: list[str],
                    privileged: bool) -> list[DeviceRule]:
    """Docker's rules for one container: everything for --privileged, else deny all, the default
    allowlist, the --device nodes and the --device-cgroup-rule entries, in that order."""
    if privileged:
        return [DeviceRule("a", None, None, ALL_ACCESS, True)]
    return [DeviceRule("a", None, None, ALL_ACCESS, False),
            *(parse_rule(r) for r in [*default_rules, *devices, *cgroup_rules])]


def host_config_rules(hc: Mapping[str, Any], devices: list[str], default_rules: list[str]) -> list[DeviceRule]:
    """container_rules for a HostConfig whose --device nodes are `devices` ("c 1:3 rwm")."""
    privileged = bool(hc.get("Privileged"))
    user = [] if privileged else [str(check_user_rule(r)) for r in hc.get("DeviceCgroupRules") or []]
    return container_rules(default_rules, devices, user, privileged)
