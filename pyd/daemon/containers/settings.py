"""The daemon flags the container services read."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ContainerSettings:
    data_root: str
    exec_root: str
    live_restore: bool = False
    log_driver: str = "json-file"                              # --log-driver: the default LogConfig.Type
    log_opts: dict[str, str] = field(default_factory=dict)     # --log-opt: rotation defaults
