"""Docker's namespaced sysctls: the IPC keys, and the docker CLI's whitelist for `--sysctl`
(opts.ValidateSysctl). Stdlib only; the client and the daemon share it."""
from __future__ import annotations

# the IPC namespace's sysctls (fs.mqueue.* is IPC too)
IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                         "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"})


def cli_allows(key: str) -> bool:
    """Whether the docker CLI accepts `--sysctl KEY=...` (the daemon decides the rest per namespace)."""
    return key in IPC_SYSCTLS or key.startswith(("net.", "fs.mqueue."))
