"""Firewall rules for bridge networks when iptables exists: outbound NAT and isolation between bridges.

Published ports never depend on this (the userland proxy serves them). Rules live in the daemon's network
namespace; every rule is checked (-C) before it is added, so a restarted daemon adopts its old rules.
"""
from __future__ import annotations

import logging
import shutil
import subprocess

log = logging.getLogger("pyd")

CHAIN1, CHAIN2 = "PYD-ISOLATION-STAGE-1", "PYD-ISOLATION-STAGE-2"


class Firewall:
    def __init__(self, enabled: bool = True) -> None:
        self.tool = shutil.which("iptables") if enabled else None
        self.available = bool(self.tool) and self._run("-t", "filter", "-S", "FORWARD", check=False)
        self._chains_ready = False

    def _run(self, *args: str, check: bool = True) -> bool:
        try:
            proc = subprocess.run([self.tool or "iptables", "-w", *args], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            if check:
                log.warning("iptables %s: %s", " ".join(args), e)
            return False
        if proc.returncode and check:
            log.warning("iptables %s: %s", " ".join(args), proc.stderr.decode(errors="replace").strip())
        return proc.returncode == 0

    def _ensure(self, table: str, chain: str, *rule: str, insert: bool = False) -> None:
        if not self._run("-t", table, "-C", chain, *rule, check=False):
            self._run("-t", table, "-I" if insert else "-A", chain, *rule)

    def _delete(self, table: str, chain: str, *rule: str) -> None:
        for _ in range(5):      # a rule added twice is removed twice
            if not self._run("-t", table, "-D", chain, *rule, check=False):
                return

    def _chains(self) -> None:
        if self._chains_ready:
            return
        for chain in (CHAIN1, CHAIN2):
            self._run("-t", "filter", "-N", chain, check=False)
        self._ensure("filter", "FORWARD", "-j", CHAIN1, insert=True)
        self._chains_ready = True

    def _rules(self, bridge: str, subnet: str, internal: bool) -> list[tuple[str, str, tuple[str, ...]]]:
        if internal:
            return [("filter", CHAIN1, ("-i", bridge, "!", "-o", bridge, "-j", "DROP")),
                    ("filter", CHAIN1, ("!", "-i", bridge, "-o", bridge, "-j", "DROP"))]
        return [("filter", CHAIN1, ("-i", bridge, "!", "-o", bridge, "-j", CHAIN2)),
                ("filter", CHAIN2, ("-o", bridge, "-j", "DROP")),
                ("nat", "POSTROUTING", ("-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"))]

    def add_network(self, bridge: str, subnet: str, internal: bool) -> None:
        if not self.available:
            return
        self._chains()
        for table, chain, rule in self._rules(bridge, subnet, internal):
            self._ensure(table, chain, *rule)

    def remove_network(self, bridge: str, subnet: str, internal: bool) -> None:
        if not self.available:
            return
        for table, chain, rule in self._rules(bridge, subnet, internal):
            self._delete(table, chain, *rule)
