"""pyd on real distribution kernels: each host (hosts.py) boots once in qemu and runs the scenarios
(scenarios.py) inside; each host × scenario is one test, failing with the scenario's steps (command,
exit code, output). `make test-hosts` runs these; `make test` does not collect them."""
from __future__ import annotations

import json

import pytest

from lab import HostRun
from scenarios import SCENARIOS

pytestmark = pytest.mark.slow


def _steps(record: dict) -> str:
    lines = []
    for step in record.get("steps", []):
        lines.append(f"$ {step['cmd']}  -> exit {step['rc']}")
        out = str(step.get("out", "")).rstrip()
        if out:
            lines.extend("    " + line for line in out.splitlines()[-40:])
    return "\n".join(lines)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(host_run: HostRun, scenario: str) -> None:
    if host_run.host.scenarios is not None and scenario not in host_run.host.scenarios:
        pytest.skip(f"not on {host_run.host}'s short list (hosts.py)")
    boot = host_run.boot
    assert boot is not None, f"{host_run.host}: {host_run.error}"
    record = boot.results.get(scenario)
    assert record is not None, (f"{host_run.host}: no result for {scenario} ({host_run.describe()}); "
                                f"console:\n{boot.console_tail}\ndaemon log:\n{boot.closing.get('daemon_log', '')}")
    assert record["ok"], (f"{host_run.host} {scenario}: {record['error']}\n{_steps(record)}\n"
                          f"facts: {json.dumps(boot.closing.get('facts', {}))}")
