"""The import structure of the pyd package: no cycle (TYPE_CHECKING and function-level imports count too),
client and daemon apart, pyd.http on its own. Parses the sources; imports nothing from pyd."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pyd"

# Client imports of daemon modules that are known and on their way out (the parsing moves to pyd.formats).
KNOWN_CLIENT_TO_DAEMON = {
    ("pyd.client.resources", "pyd.daemon.spec.security"),
}


def _module_names() -> dict[str, Path]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


MODULES = _module_names()


def _resolve(name: str) -> str | None:
    """The module an imported name lives in: the longest known module prefix."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    """Every pyd module `module` imports anywhere in its body (module level, functions, TYPE_CHECKING).
    An import counts for the module it names, not for the packages above it."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "pyd" or target.startswith("pyd."):
                resolved = _resolve(target)
                if resolved and resolved != module:
                    found.add(resolved)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_scan_sees_the_package() -> None:
    assert "pyd.daemon.engine" in GRAPH and "pyd.client" in GRAPH
    assert "pyd.daemon.containers.service" in GRAPH["pyd.daemon.engine"]
    # TYPE_CHECKING and function-level imports count
    assert "pyd.daemon.storage.graph" in GRAPH["pyd.daemon.containers.service"]
    assert "pyd.daemon.api.images" in GRAPH["pyd.daemon.engine"]


def test_no_import_cycle() -> None:
    cycles = _cycles(GRAPH)
    detail = "\n".join(
        " ".join(c) + "\n" + "\n".join(f"    {m} -> {sorted(d for d in GRAPH[m] if d in c)}" for m in c)
        for c in cycles)
    assert not cycles, f"import cycles:\n{detail}"


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_daemon_does_not_import_client() -> None:
    bad = [(m, d) for m, deps in GRAPH.items() if m.startswith("pyd.daemon.")
           for d in deps if d == "pyd.client" or d.startswith("pyd.client.")]
    assert not bad


def test_client_does_not_import_daemon() -> None:
    found = {(m, d) for m, deps in GRAPH.items() if m == "pyd.client" or m.startswith("pyd.client.")
             for d in deps if d == "pyd.daemon" or d.startswith("pyd.daemon.")}
    assert found <= KNOWN_CLIENT_TO_DAEMON, sorted(found - KNOWN_CLIENT_TO_DAEMON)


@pytest.mark.skipif("pyd.http" not in MODULES, reason="pyd/http is not there yet")
def test_http_imports_only_http() -> None:
    bad = [(m, d) for m, deps in GRAPH.items() if m == "pyd.http" or m.startswith("pyd.http.")
           for d in deps if not (d == "pyd.http" or d.startswith("pyd.http."))]
    assert not bad
