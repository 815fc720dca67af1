"""Which stages a build runs: the target and the stages it reaches (its base, COPY/ADD --from, RUN
--mount from=), as BuildKit decides; the others are skipped.

Pure: stage references are resolved by name (case-insensitive) or by index of an earlier stage; anything
else is an image. `expand` turns a reference with ${VAR} into its value (the global ARGs).
"""
from __future__ import annotations

from typing import Callable

from pyd.daemon.build.dockerfile import Stage


def find(stages: list[Stage], ref: str, before: int) -> int | None:
    """The index of the stage `ref` names among the first `before` stages, or None (an image)."""
    key = ref.lower()
    if key.isdigit():
        index = int(key)
        return index if index < before else None
    for i, stage in enumerate(stages[:before]):
        if stage.name and stage.name == key:
            return i
    return None


def references(stage: Stage) -> list[str]:
    """The unexpanded stage or image names a stage's instructions read from."""
    refs = [stage.base]
    for ins in stage.commands:
        if ins.cmd in ("copy", "add") and ins.flags.get("from"):
            refs.append(ins.flags["from"])
        for spec in ins.lists.get("mount", []):
            for field in spec.split(","):
                key, _, value = field.partition("=")
                if key.strip().lower() == "from" and value:
                    refs.append(value)
    return refs


def needed(stages: list[Stage], target: int, expand: Callable[[str], str]) -> list[int]:
    """The indexes of the stages the target needs, itself included, in Dockerfile order."""
    seen: set[int] = set()
    todo = [target]
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        for ref in references(stages[i]):
            try:
                name = expand(ref)
            except ValueError:
                name = ref
            dep = find(stages, name, i)
            if dep is not None and not (ref == stages[i].base and name.isdigit()):
                todo.append(dep)
    return sorted(seen)
