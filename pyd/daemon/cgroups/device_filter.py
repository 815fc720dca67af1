"""The cgroup v2 device filter of one cgroup: the program compiled from its rules, attached with
BPF_F_ALLOW_MULTI as runc and crun do, and whatever this cgroup had before detached once the new one is in
place (so there is never a moment without a filter, and a second install replaces rather than stacks).

The attachment holds the program in the kernel: nothing is pinned, and it lives as long as the cgroup
(a daemon restart leaves running containers filtered)."""
from __future__ import annotations

import errno
import os

from pyd.daemon.cgroups.devices import DeviceRule, compile_program
from pyd.daemon.runtime import native


def install(cgroup_dir: str, rules: list[DeviceRule]) -> None:
    """Make `rules` the device filter of `cgroup_dir`; OSError naming the step that failed."""
    prog = native.bpf_load_device_program(compile_program(rules))
    try:
        fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            before = native.bpf_device_program_ids(fd)
            native.bpf_attach_device_program(fd, prog, native.BPF_F_ALLOW_MULTI)
            for prog_id in before:
                _detach(fd, prog_id)
        finally:
            os.close(fd)
    finally:
        os.close(prog)


def _detach(cgroup_fd: int, prog_id: int) -> None:
    try:
        old = native.bpf_prog_fd_by_id(prog_id)
    except OSError as e:
        if e.errno == errno.ENOENT:     # detached and freed meanwhile
            return
        raise
    try:
        native.bpf_detach_device_program(cgroup_fd, old)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
    finally:
        os.close(old)


def attached(cgroup_dir: str) -> list[int]:
    """The ids of the device programs attached to `cgroup_dir` itself."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return native.bpf_device_program_ids(fd)
    finally:
        os.close(fd)
