"""The cgroup v2 device filter decides as cgroup v1's devices controller would: the eBPF program built
from Docker's rules is run here by a small interpreter of the instructions it uses (no kernel needed)."""
from __future__ import annotations

import random
import struct

import pytest

from pyd.daemon.cgroups.devices import (ACC_MKNOD, ACC_READ, ACC_WRITE, ALL_ACCESS, DEV_BLOCK, DEV_CHAR,
                                        DeviceRule, check_user_rule, compile_program, container_rules,
                                        host_config_rules, parse_rule)
from pyd.daemon.spec.security import DEFAULT_DEVICE_RULES

MASK32 = (1 << 32) - 1


def run_program(program: bytes, dev_type: int, major: int, minor: int, access: int) -> int:
    """Execute the program on struct bpf_cgroup_dev_ctx; returns r0 (1 allow, 0 deny)."""
    ctx = struct.pack("<III", (access << 16) | dev_type, major, minor)
    regs = [0] * 11
    pc, steps = 0, 0
    insns = [struct.unpack_from("<BBhi", program, i) for i in range(0, len(program), 8)]
    while True:
        steps += 1
        assert steps < 10_000 and 0 <= pc < len(insns), "runs off or loops"
        code, r, off, imm = insns[pc]
        dst, src = r & 0xF, r >> 4
        pc += 1
        if code == 0x61:
            assert src == 1 and off in (0, 4, 8), "reads outside the context"
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == 0xBC:
            regs[dst] = regs[src] & MASK32
        elif code == 0x54:
            regs[dst] = (regs[dst] & imm) & MASK32
        elif code == 0x74:
            regs[dst] = (regs[dst] & MASK32) >> imm
        elif code == 0x55:
            if regs[dst] != (imm & ((1 << 64) - 1)):
                pc += off
        elif code == 0xB7:
            regs[dst] = imm & ((1 << 64) - 1)
        elif code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def v1_decision(rules: list[DeviceRule], dev_type: int, major: int, minor: int, access: int) -> int:
    """The reference: the last rule that matches decides; none: deny."""
    verdict = 0
    kinds = {DEV_BLOCK: "b", DEV_CHAR: "c"}
    for rule in rules:
        if rule.kind not in ("a", kinds[dev_type]):
            continue
        if rule.major is not None and rule.major != major or rule.minor is not None and rule.minor != minor:
            continue
        if access & ~rule.access:
            continue
        verdict = int(rule.allow)
    return verdict


DEFAULT = container_rules(DEFAULT_DEVICE_RULES, [], [], privileged=False)


@pytest.mark.parametrize("dev,access,allowed", [
    ((DEV_CHAR, 1, 3), ACC_READ | ACC_WRITE, 1),          # /dev/null
    ((DEV_CHAR, 1, 9), ACC_READ, 1),                      # /dev/urandom
    ((DEV_CHAR, 136, 7), ACC_READ | ACC_WRITE, 1),        # a pty
    ((DEV_CHAR, 5, 2), ACC_READ | ACC_WRITE, 1),          # /dev/ptmx
    ((DEV_BLOCK, 254, 0), ACC_MKNOD, 1),                  # mknod of any node is Docker's default
    ((DEV_BLOCK, 254, 0), ACC_READ, 0),                   # ... reading the host's disk is not
    ((DEV_BLOCK, 8, 0), ACC_WRITE, 0),
    ((DEV_CHAR, 1, 1), ACC_READ, 0),                      # /dev/mem
    ((DEV_CHAR, 1, 3), ACC_READ | ACC_MKNOD, 1),
    ((DEV_CHAR, 4, 0), ACC_READ | ACC_WRITE, 0),          # a host tty
])
def test_docker_defaults(dev, access, allowed):
    assert run_program(compile_program(DEFAULT), *dev, access) == allowed


def test_privileged_allows_everything():
    program = compile_program(container_rules(DEFAULT_DEVICE_RULES, [], [], privileged=True))
    for dev in ((DEV_BLOCK, 8, 0), (DEV_CHAR, 1, 1), (DEV_CHAR, 10, 229)):
        assert run_program(program, *dev, ALL_ACCESS) == 1


def test_device_and_cgroup_rules_add_to_the_defaults():
    rules = container_rules(DEFAULT_DEVICE_RULES, ["b 7:0 rw"], ["c 42:* rmw"], privileged=False)
    program = compile_program(rules)
    assert run_program(program, DEV_BLOCK, 7, 0, ACC_READ | ACC_WRITE) == 1
    assert run_program(program, DEV_BLOCK, 7, 1, ACC_READ) == 0
    assert run_program(program, DEV_CHAR, 42, 99, ACC_WRITE) == 1
    assert run_program(program, DEV_BLOCK, 42, 99, ACC_WRITE) == 0


def test_random_rule_sets_decide_as_v1():
    rng = random.Random(1234)
    for _ in range(300):
        rules = []
        for _ in range(rng.randint(0, 6)):
            kind = rng.choice("acbcb")
            if kind == "a":      # "a" is every device with every access, as parse_rule makes it
                rules.append(DeviceRule("a", None, None, ALL_ACCESS, rng.random() < 0.5))
                continue
            rules.append(DeviceRule(kind, rng.choice([None, 1, 7, 8]), rng.choice([None, 0, 3]),
                                    rng.randint(1, ALL_ACCESS), rng.random() < 0.7))
        program = compile_program(rules)
        for _ in range(20):
            dev = (rng.choice((DEV_BLOCK, DEV_CHAR)), rng.choice((1, 7, 8, 9)), rng.choice((0, 3, 5)))
            access = rng.randint(1, ALL_ACCESS)
            assert run_program(program, *dev, access) == v1_decision(rules, *dev, access), (rules, dev, access)


@pytest.mark.parametrize("text,expected", [
    ("a", "a"), ("c 1:3 rwm", "c 1:3 rwm"), ("b *:* m", "b *:* m"), ("c 136:* rw", "c 136:* rw"),
    ("c 1:3 mr", "c 1:3 rm"),
])
def test_rule_syntax(text, expected):
    assert str(parse_rule(text)) == expected


@pytest.mark.parametrize("text", ["", "x 1:3 rwm", "c 1:3", "c 1-3 rwm", "c a:3 rwm", "c 1:3 rwx", "c 1:3 ",
                                  "c 4294967296:0 r"])
def test_bad_rules_are_refused(text):
    with pytest.raises(ValueError, match="invalid device cgroup rule"):
        parse_rule(text)


def test_user_rules_are_read_as_strictly_as_dockerd():
    assert str(check_user_rule("c 1:* rw")) == "c 1:* rw"
    for bad in ("a", "c 1:3", "c x:1 r", "c 1:1 rwx", "d 1:1 r", " c 1:1 r"):
        with pytest.raises(ValueError, match="invalid device cgroup rule format"):
            check_user_rule(bad)


def test_host_config_rules_follow_the_host_config():
    hc = {"DeviceCgroupRules": ["b 7:* rw"]}
    rules = host_config_rules(hc, ["c 1:1 r"], DEFAULT_DEVICE_RULES)
    assert [str(r) for r in rules][-2:] == ["c 1:1 r", "b 7:* rw"] and not rules[0].allow
    program = compile_program(rules)
    assert run_program(program, DEV_BLOCK, 7, 3, ACC_READ) == 1
    assert run_program(program, DEV_BLOCK, 8, 0, ACC_READ) == 0
    assert run_program(program, DEV_CHAR, 1, 1, ACC_WRITE) == 0
    privileged = host_config_rules({"Privileged": True, "DeviceCgroupRules": ["b 7:* r"]}, [], DEFAULT_DEVICE_RULES)
    assert run_program(compile_program(privileged), DEV_BLOCK, 8, 0, ALL_ACCESS) == 1
