"""pyd/http stays a layer of its own: it imports nothing of pyd but itself, and the blocking client (the CLI's
path, with the API client on top) does not pull in asyncio."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

HTTP = Path(__file__).resolve().parents[3] / "pyd" / "http"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_http_imports_only_itself_of_pyd() -> None:
    modules = sorted(HTTP.glob("*.py"))
    assert modules
    for path in modules:
        foreign = {n for n in _imports(path) if n.split(".")[0] == "pyd" and not n.startswith("pyd.http")}
        assert not foreign, f"{path.name} imports {foreign}"


def test_the_blocking_client_does_not_import_asyncio() -> None:
    code = (f"import sys; sys.path.insert(0, {str(HTTP.parents[1])!r}); "
            "import pyd.http.client, pyd.client.api, pyd.formats.stdcopy, pyd.formats.jsonstream; "
            "print(sorted(m for m in ('asyncio', 'ssl', 'json', 'pyd.http.server') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-c", code], cwd=HTTP.parents[1], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
