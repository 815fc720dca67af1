"""Reading a container's json-file log (written and rotated by execd): tail, since/until, timestamps,
details, and follow across rotation.

execd rotates as dockerd's json-file driver does: when the next entry would take `<id>-json.log` past
max-size it renames `.N-1` -> `.N` ... `<id>-json.log` -> `.1` and opens a new file. A reader holds
open file objects, so a rotation never loses what it was reading: once the live file's name points at a
new inode, the old file is read to its end and the reader moves on to the newer files.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Iterator

from pyd.formats import rfc3339

if TYPE_CHECKING:
    from pyd.daemon.containers.model import Container

READ_CHUNK = 1 << 16
MAX_ROTATED = 100      # how far .N is searched for rotated files


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


def log_files(path: str) -> list[str]:
    """The existing files of a log, oldest first: path.N ... path.1, path."""
    rotated = []
    for n in range(1, MAX_ROTATED + 1):
        if not os.path.exists(f"{path}.{n}"):
            break
        rotated.append(f"{path}.{n}")
    return rotated[::-1] + ([path] if os.path.exists(path) else [])


def _open(path: str) -> BinaryIO | None:
    try:
        return open(path, "rb")
    except OSError:
        return None


class LogReader:
    """Reads complete lines from a log and its rotated files, remembering where it is so that a
    follower continues, across rotations, exactly where it stopped."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.partial = b""
        # opened now, oldest first: a rotation after this point cannot take them away
        self.files: list[BinaryIO] = [f for f in map(_open, log_files(path)) if f is not None]

    def close(self) -> None:
        for f in self.files:
            f.close()
        self.files = []

    def read_new(self) -> Iterator[LogEntry]:
        while True:
            if not self.files:
                f = _open(self.path)
                if f is None:
                    return
                self.files.append(f)
            yield from self._read_file(self.files[0])
            if len(self.files) > 1:          # a rotated file, read to its end: on to the next
                self.files.pop(0).close()
                self.partial = b""
                continue
            newer = self._newer_files(self.files[0])
            if not newer:
                return
            yield from self._read_file(self.files[0])   # what was written before the rotation
            self.files.pop(0).close()
            self.partial = b""
            self.files.extend(newer)

    def _read_file(self, f: BinaryIO) -> Iterator[LogEntry]:
        while True:
            chunk = f.read(READ_CHUNK)
            if not chunk:
                return
            lines = (self.partial + chunk).split(b"\n")
            self.partial = lines.pop()
            for line in lines:
                entry = parse_line(line)
                if entry:
                    yield entry

    def _newer_files(self, current: BinaryIO) -> list[BinaryIO]:
        """After a rotation: the files written after `current`, oldest first; [] when none happened."""
        try:
            st = os.stat(self.path)
        except OSError:
            return []
        ino = os.fstat(current.fileno()).st_ino
        if st.st_ino == ino:
            return []
        names = log_files(self.path)
        inodes = []
        for name in names:
            try:
                inodes.append(os.stat(name).st_ino)
            except OSError:
                inodes.append(None)
        after = names[inodes.index(ino) + 1:] if ino in inodes else names[-1:]
        return [f for f in map(_open, after) if f is not None]

    def skip_to_tail(self, n: int) -> None:
        """Position the reader so that the next read_new() yields the last n lines (of all files)."""
        if n < 0:
            return
        keep: list[BinaryIO] = []
        need = n
        for f in reversed(self.files):
            size = os.fstat(f.fileno()).st_size
            start, found = _tail_offset(f, size, need)
            f.seek(start)
            keep.insert(0, f)
            need -= found
            if need <= 0:
                break
        for f in self.files[:len(self.files) - len(keep)]:
            f.close()
        self.files = keep


def _tail_offset(f: BinaryIO, size: int, n: int) -> tuple[int, int]:
    """Offset in f where its last n complete lines begin, and how many complete lines that covers."""
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
    start = size - len(b"\n".join(keep + [lines[-1]])) if keep else size - len(lines[-1])
    return start, len(keep)


def in_window(entry: LogEntry, since: float, until: float) -> bool:
    if not since and not until:
        return True
    t = rfc3339.parse(entry.time)
    return (not since or t >= since) and (not until or t <= until)


def fixed_time(value: str) -> bytes:
    """dockerd's RFC3339NanoFixed for `logs -t`: always nine fraction digits."""
    return rfc3339.to_fixed(value).encode()


def detail_prefix(c: "Container") -> bytes:
    """`logs --details`: the attributes the log-opts `labels`/`env` select, dockerd's
    "k=v,k2=v2 " (query-escaped, sorted), or a lone space when there are none."""
    opts = (c.HostConfig.get("LogConfig") or {}).get("Config") or {}
    attrs: dict[str, str] = {}
    labels = c.Config.get("Labels") or {}
    for key in filter(None, (opts.get("labels") or "").split(",")):
        if key in labels:
            attrs[key] = labels[key]
    env = dict(e.partition("=")[::2] for e in c.Config.get("Env") or [])
    for key in filter(None, (opts.get("env") or "").split(",")):
        if key in env:
            attrs[key] = env[key]
    from urllib.parse import quote_plus as q   # only --details needs it
    return (",".join(f"{q(k)}={q(v)}" for k, v in sorted(attrs.items())) + " ").encode()


# ---------------------------------------------------------------- log options (json-file)

# dockerd's json-file default is unbounded; pyd bounds every log so a chatty container cannot fill the disk
DEFAULT_MAX_SIZE = "20m"
DEFAULT_MAX_FILE = "5"
LOG_OPTS = {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag", "mode",
            "max-buffer-size"}


def parse_size(value: str) -> int:
    """docker's RAMInBytes: "512", "10k", "20m", "1g", "1.5MB" (binary units); -1 = unlimited."""
    import re
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*", value, re.I)
    if not m:
        raise ValueError(f"invalid size: '{value}'")
    num, unit = float(m.group(1)), m.group(2).lower()
    return int(num * 1024 ** " kmgtp".index(unit or " "))


def validate_log_config(log_config: dict) -> None:
    """Reject what dockerd's json-file ValidateLogOpt rejects (raises ValueError with its words)."""
    opts = (log_config or {}).get("Config") or {}
    if not isinstance(opts, dict):
        raise ValueError("LogConfig.Config must be an object")
    if (log_config or {}).get("Type") == "none":
        return
    for key, value in opts.items():
        if key not in LOG_OPTS:
            raise ValueError(f"unknown log opt '{key}' for json-file log driver")
    rotation_limits(opts, {})


def rotation_limits(opts: dict, daemon_opts: dict) -> tuple[int, int]:
    """(max bytes per file or 0 for none, files kept) from container opts over daemon opts over defaults."""
    merged = {"max-size": DEFAULT_MAX_SIZE, "max-file": DEFAULT_MAX_FILE, **(daemon_opts or {}), **(opts or {})}
    size = parse_size(str(merged["max-size"]))
    try:
        files = int(merged["max-file"])
    except ValueError:
        raise ValueError(f'strconv.Atoi: parsing "{merged["max-file"]}": invalid syntax') from None
    if files < 1:
        raise ValueError("max-file cannot be less than 1")
    if size <= 0:
        return 0, 1
    return size, min(files, 1000)
