"""Which stages a build runs: the target and the stages it reaches (its base, COPY/ADD --from, RUN
--mount from=), as BuildKit decides; the others are skipped.

Pure: stage references are resolved by name (case-insensitive) or by index of an earlier stage; anything
else is an image. `expand` turns a reference with ${VAR} into its value (the global ARGs).
"""
from __future__ import annotations

from typing import Callable

from pyd.daemon.build.dockerfile import Stage


class StageError(ValueError):
    """A stage graph BuildKit refuses; str() is its message."""


def find(stages: list[Stage], ref: str, before: int | None) -> int | None:
    """The index of the stage `ref` names, or None (an image). FROM sees only the first `before` stages;
    COPY --from and --mount from= (before None) see them all, as BuildKit resolves them."""
    key = ref.lower()
    visible = stages if before is None else stages[:before]
    if key.isdigit():
        index = int(key)
        if before is None and index >= len(stages):
            raise StageError(f"invalid stage index {index}")
        return index if index < len(visible) else None
    for i, stage in enumerate(visible):
        if stage.name and stage.name == key:
            return i
    return None


def references(stage: Stage) -> list[str]:
    """The unexpanded stage or image names a stage's instructions read from (its base not included)."""
    refs = []
    for ins in stage.commands:
        if ins.cmd in ("copy", "add") and ins.flags.get("from"):
            refs.append(ins.flags["from"])
        for spec in ins.lists.get("mount", []):
            for field in spec.split(","):
                key, _, value = field.partition("=")
                if key.strip().lower() == "from" and value:
                    refs.append(value)
    return refs


def needed(stages: list[Stage], target: int, expand: Callable[[str], str],
           replaced: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """The indexes of the stages the target needs, itself included, in Dockerfile order. A `replaced`
    stage (a named context of its name stands in for it) needs nothing."""
    def name_of(ref: str) -> str:
        try:
            return expand(ref)
        except ValueError:
            return ref

    def deps(i: int) -> list[int]:
        out: list[int] = []
        if i in replaced:
            return out
        base = name_of(stages[i].base)
        if not base.isdigit():
            dep = find(stages, base, i)
            if dep is not None:
                out.append(dep)
        for ref in references(stages[i]):
            dep = find(stages, name_of(ref), None)
            if dep is not None:
                out.append(dep)
        return out

    seen: set[int] = set()
    path: list[int] = []

    def visit(i: int) -> None:
        if i in path:
            raise StageError(f"circular dependency detected on stage: {stages[i].name or i}")
        if i in seen:
            return
        path.append(i)
        for dep in deps(i):
            visit(dep)
        path.pop()
        seen.add(i)

    visit(target)
    return sorted(seen)
