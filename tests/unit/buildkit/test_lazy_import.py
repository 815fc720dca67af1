"""An idle daemon carries none of BuildKit: the routes load it (and h2) on the first /grpc or /session."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
import sys
from pyd.daemon.api import buildkit
routes = []
class Router:
    def add(self, method, path, handler): routes.append((method, path))
buildkit.register(Router(), *[object()] * 5, '/nonexistent', object())
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("h2", "hpack", "hyperframe")
                or m.startswith(("pyd.daemon.buildkit", "pyd.http.h2conn")))
print(routes, loaded)
"""


def test_routes_register_without_importing_buildkit():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[('POST', '/grpc'), ('POST', '/session')] []"
