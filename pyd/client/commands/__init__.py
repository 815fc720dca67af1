"""The client's commands, one module per group: each holds its commands' SPECS and cmd_* functions (see
pyd.client for the registry). run/create's flags are split by what they fill: run_flags (Config, ports,
networks, restart, healthcheck), mount_flags (-v, --mount, --tmpfs) and resource_flags (security and limits,
shared with update)."""
from __future__ import annotations
