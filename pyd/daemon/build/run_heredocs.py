"""RUN with heredocs, as BuildKit runs them: `RUN <<EOF` alone runs the document with the shell (or, when it
starts with `#!`, as an executable file mounted at /dev/pipes/<name>); any other command line gets its
documents appended after it, so the shell reads them as its own heredocs (<<-, quoting and expansion are
the shell's).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from pyd.daemon.build.dockerfile import Instruction, parse_heredoc

PIPES = "/dev/pipes"


@dataclass(frozen=True)
class Script:
    argv: list[str]                          # what follows the shell (or the exec form's words)
    file: tuple[str, str] | None = None      # (name, content) of a #! document to mount and run


def script(ins: Instruction, args: list[str]) -> Script:
    if ins.json or not ins.heredocs or len(args) != 1:
        return Script(list(args))
    line = args[0]
    if parse_heredoc(line) is not None:
        doc = ins.heredocs[0]
        data = doc.text()
        if data.startswith("#!"):
            return Script([f"{PIPES}/{doc.name}"], (doc.name, data))
        return Script([data])
    return Script([line + "".join("\n" + d.content + d.name for d in ins.heredocs)])


class ScriptFile:
    """The HostConfig.Mounts that carry a #! document (none for other scripts), removed on exit."""

    def __init__(self, s: Script, tmp: str) -> None:
        self.s, self.tmp, self.folder = s, tmp, ""

    async def __aenter__(self) -> list[dict[str, Any]]:
        if self.s.file is None:
            return []
        name, data = self.s.file
        self.folder = await asyncio.to_thread(tempfile.mkdtemp, "", "build-heredoc-", self.tmp)
        path = os.path.join(self.folder, os.path.basename(name) or "script")

        def write() -> None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(data)
            os.chmod(self.folder, 0o755)
            os.chmod(path, 0o755)
        await asyncio.to_thread(write)
        return [{"Type": "bind", "Source": self.folder, "Target": PIPES, "ReadOnly": True,
                 "BindOptions": {"Propagation": "rprivate"}}]

    async def __aexit__(self, *exc: Any) -> None:
        if self.folder:
            await asyncio.to_thread(shutil.rmtree, self.folder, True)
