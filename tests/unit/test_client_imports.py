"""The client side stands alone: no module under pyd/client/ (nor pyd/__main__.py, apart from handing
`pyd daemon` over to pyd.daemon.main) imports the daemon, directly or through what it imports, and a client
command's start-up never imports asyncio."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYD = REPO / "pyd"
DAEMON_DISPATCH = "pyd.daemon.main"     # __main__.main() hands `pyd daemon ...` over, imported only then


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _module_path(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at module level?) for every pyd import in the file, those inside functions included."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    for node in tree.body:         # `if TYPE_CHECKING:` blocks count as module level too
        if isinstance(node, ast.If):
            top_level.update(id(n) for n in node.body)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # `from pyd.client import tty` imports pyd.client.tty when that is a module
            names = [module] + [f"{module}.{a.name}" for a in node.names if _module_path(f"{module}.{a.name}")]
        else:
            continue
        out += [(n, id(node) in top_level) for n in names if n == "pyd" or n.startswith("pyd.")]
    return out


def _client_files() -> list[Path]:
    return sorted((PYD / "client").rglob("*.py")) + [PYD / "__main__.py"]


def test_no_client_module_imports_the_daemon():
    offenders = []
    for path in _client_files():
        for module, top in _imports(path):
            if not module.startswith("pyd.daemon"):
                continue
            if path.name == "__main__.py" and path.parent == PYD and module == DAEMON_DISPATCH and not top:
                continue
            offenders.append(f"{path.relative_to(REPO)} imports {module}")
    assert offenders == []


def test_nothing_the_client_imports_imports_the_daemon():
    """Follow every pyd import from the client's modules (pyd.proto, pyd.formats...): no path reaches
    pyd.daemon."""
    seen: dict[str, str] = {}
    todo = [(_module_name(p), "") for p in _client_files()]
    while todo:
        name, via = todo.pop()
        if name in seen:
            continue
        seen[name] = via
        path = _module_path(name)
        if path is None:
            continue
        for module, top in _imports(path):
            if name == "pyd.__main__" and module == DAEMON_DISPATCH and not top:
                continue
            todo.append((module, f"{via} -> {name}" if via else name))
            parent = module.rpartition(".")[0]
            while parent:             # importing pyd.a.b runs pyd/a/__init__.py first
                todo.append((parent, f"{via} -> {name}" if via else name))
                parent = parent.rpartition(".")[0]
    reached = sorted(f"{via} -> {name}" for name, via in seen.items() if name.startswith("pyd.daemon"))
    assert reached == []


def test_the_registry_names_existing_command_modules():
    sys.path.insert(0, str(REPO))
    try:
        import pyd.client as registry
    finally:
        sys.path.pop(0)
    for name, module in registry.COMMANDS.items():
        assert (PYD / "client" / "commands" / f"{module}.py").is_file(), name


def test_client_start_up_imports_neither_asyncio_nor_the_daemon():
    """In a fresh interpreter: the registry, the ps command's module and a whole `pyd ps --help`."""
    code = (
        "import io, sys, contextlib\n"
        "import pyd.client as registry\n"
        "registry.load_module('ps')\n"
        "from pyd.__main__ import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['ps', '--help']) == 0\n"
        "bad = sorted(m for m in sys.modules if m == 'asyncio' or m.startswith(('asyncio.', 'pyd.daemon')))\n"
        "print(','.join(bad))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "\n"
