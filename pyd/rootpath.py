"""Resolve a path inside a container's root as the container would, never leaving that root.

A symlink in an image may point anywhere ("/etc -> /"); every component is resolved against the root,
so `..` and absolute link targets stop at the root instead of reaching the host.
"""
from __future__ import annotations

import os

MAX_LINKS = 255


def resolve_in_root(root: str, path: str) -> str:
    """Host path of `path` inside `root`, with every symlink resolved relative to `root`."""
    root = os.path.abspath(root)
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            target = os.readlink(candidate)
        except OSError:  # not a link, or missing: keep the name as it is
            resolved.append(part)
            continue
        links += 1
        if links > MAX_LINKS:
            raise OSError(40, f"too many levels of symbolic links: {path}")
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p and p != "."] + parts
    return os.path.join(root, *resolved)
