"""Resolve a path inside a container's root as the container would, never leaving that root.

A symlink in an image may point anywhere ("/etc -> /"); every component is resolved against the root, so
`..` and absolute link targets stop at the root instead of reaching the host. Not race-free against a
running container swapping links: writers into a live container need openat2(RESOLVE_IN_ROOT).
"""
from __future__ import annotations

import os

from pyd.daemon.storage.archive import secure_join


def resolve_in_root(root: str, path: str) -> str:
    """Host path of `path` inside `root`, with every symlink resolved relative to `root`."""
    return secure_join(os.path.abspath(root), path.lstrip("/"))
