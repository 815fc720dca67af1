"""The ContainerSpec execd receives: what a container's process sees, derived from its config.

build_spec runs the STEPS in order on a bare spec. Each step reads only the SpecInputs gathered before
(containers/spec_inputs.py) and changes only the spec: no mount, mkdir, file write or other syscall, so
the same inputs always give the same spec.
"""
from __future__ import annotations

from pyd.daemon.runtime.execdriver import ContainerSpec, Process
from pyd.daemon.spec import mounts, namespaces, process, resources, seccomp, security
from pyd.daemon.spec.inputs import SpecInputs, Step

# The order is the order they run; it is also the order of the mounts and of the errors a start reports.
STEPS: tuple[Step, ...] = (
    process.with_process,
    process.with_user,
    process.with_env,
    process.with_log,
    mounts.with_rootfs,
    mounts.with_shm,
    mounts.with_mounts,
    process.with_init,
    namespaces.with_namespaces,
    security.with_security_opts,
    security.with_capabilities,
    seccomp.with_seccomp,
    security.with_masked_paths,
    security.with_rlimits,
    security.with_sysctls,
    security.with_devices,
    security.with_shm_size,
    security.with_oom_score_adj,
    mounts.with_tmpfs,
    mounts.with_etc_files,      # after every user mount: a volume or tmpfs on /etc does not hide them
    resources.with_cgroup,
)


def build_spec(inputs: SpecInputs) -> ContainerSpec:
    spec = ContainerSpec(id=inputs.id, rootfs=inputs.rootfs, hostname=inputs.config["Hostname"],
                         state_dir=inputs.state_dir, log_path=None, process=Process(args=[], env=[]),
                         namespaces=[])
    for step in STEPS:
        step(spec, inputs)
    return spec
