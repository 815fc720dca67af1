"""`docker diff`: a container layer's diff tar read back as Docker's change list."""
from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from typing import Iterable

from pyd.daemon.storage.archive import WHITEOUT_OPAQUE, WHITEOUT_PREFIX, as_reader

MODIFIED, ADDED, DELETED = 0, 1, 2


def _in_lowers(rel: str, lowers: list[str]) -> bool:
    """Whether the path exists beneath the layer (an overlay whiteout in a lower layer hides it)."""
    for lower in lowers:
        try:
            st = os.lstat(os.path.join(lower, rel))
        except (FileNotFoundError, NotADirectoryError):
            continue
        return not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0)
    return False


def changes_of(diff_tar: Iterable[bytes], lowers: list[str]) -> list[dict]:
    """[{"Path": "/tmp", "Kind": 0}, {"Path": "/tmp/new", "Kind": 1}, ...] in the tar's (a walk's) order:
    Kind 0 changed (it exists in `lowers`, topmost first), 1 added, 2 deleted (a `.wh.` entry). The diff
    tar holds a directory that is there only for what changed below it, so its parents come first."""
    out: list[dict] = []
    with tarfile.open(fileobj=as_reader(diff_tar), mode="r|") as tar:
        for member in tar:
            rel = member.name.strip("/")
            parent, base = posixpath.split(rel)
            if base == WHITEOUT_OPAQUE:
                continue
            if base.startswith(WHITEOUT_PREFIX):
                out.append({"Path": "/" + posixpath.join(parent, base[len(WHITEOUT_PREFIX):]), "Kind": DELETED})
                continue
            out.append({"Path": "/" + rel, "Kind": MODIFIED if _in_lowers(rel, lowers) else ADDED})
    return out
