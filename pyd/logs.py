"""Reading a container's json-file log (written by execd): tail, since/until, timestamps, follow."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Iterator

from pyd.container import parse_rfc3339

READ_CHUNK = 1 << 16


@dataclass
class LogEntry:
    stream: int          # 1 stdout, 2 stderr
    data: bytes
    time: str            # RFC 3339 as execd wrote it


def parse_line(line: bytes) -> LogEntry | None:
    try:
        rec = json.loads(line)
        return LogEntry(2 if rec.get("stream") == "stderr" else 1, rec["log"].encode("utf-8", "surrogateescape"),
                        rec.get("time", ""))
    except (ValueError, KeyError, AttributeError, TypeError):
        return None  # a torn last line while execd is writing; the follower reads it again later


class LogReader:
    """Reads complete lines from `path`, remembering its offset so that a follower can continue."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def read_new(self) -> Iterator[LogEntry]:
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return
        with f:
            f.seek(self.offset)
            while True:
                chunk = f.read(READ_CHUNK)
                if not chunk:
                    break
                self.offset += len(chunk)
                data = self.partial + chunk
                lines = data.split(b"\n")
                self.partial = lines.pop()
                for line in lines:
                    entry = parse_line(line)
                    if entry:
                        yield entry

    def skip_to_tail(self, n: int) -> None:
        """Position the reader so that the next read_new() yields the last n lines."""
        if n < 0:
            return
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return
        with open(self.path, "rb") as f:
            pos, found, block = size, 0, 1 << 16
            while pos > 0 and found <= n:
                step = min(block, pos)
                pos -= step
                f.seek(pos)
                found += f.read(step).count(b"\n")
            f.seek(pos)
            data = f.read(size - pos)
        lines = data.split(b"\n")
        complete = len(lines) - 1          # the text after the last newline is not a line yet
        keep = lines[max(0, complete - n):complete]
        self.offset = size - len(b"\n".join(keep + [lines[-1]])) if keep else size - len(lines[-1])


def in_window(entry: LogEntry, since: float, until: float) -> bool:
    if not since and not until:
        return True
    t = parse_rfc3339(entry.time)
    return (not since or t >= since) and (not until or t <= until)
