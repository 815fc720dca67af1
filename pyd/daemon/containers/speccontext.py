"""What building a container's spec (spec/, shm) reads besides the container: daemon settings, the
network sandbox, other containers (namespace and /dev/shm donors), cgroup paths and the execd path."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pyd.daemon.containers.model import Container
    from pyd.daemon.containers.settings import ContainerSettings
    from pyd.daemon.network.controller import NetworkController
    from pyd.daemon.runtime.execdriver import ExecDriver


class SpecContainers(Protocol):
    @property
    def driver(self) -> ExecDriver: ...
    def get(self, ref: str) -> Container: ...


class SpecCgroups(Protocol):
    v1: dict[str, str]                                 # controller -> v1 mount point
    def dirs(self, cid: str, hc: dict[str, Any]) -> dict[str, str]: ...
    def join_paths(self, cid: str, hc: dict[str, Any]) -> list[str]: ...


@dataclass(frozen=True)
class SpecContext:
    cfg: ContainerSettings
    networks: NetworkController
    containers: SpecContainers
    cgroups: SpecCgroups
