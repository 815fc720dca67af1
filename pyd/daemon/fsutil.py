"""Crash-safe file writes (tree operations that must survive any depth: storage/trees.py)."""
from __future__ import annotations

import json
import os
from typing import Any


def atomic_write(path: str, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Write `data` to `path` so that a reader (or a crash) sees the old content or the new, never a mix:
    temp file in the same folder, fsync, rename over, fsync the folder.

    durable=False skips both fsyncs (still atomic against a killed daemon): only for files that are
    derived from durable metadata and re-created when found missing or empty after a machine crash."""
    folder = os.path.dirname(path) or "."
    tmp = _write_temp(path, data, mode, durable)
    try:
        os.rename(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    if durable:
        fsync_dir(folder)


def atomic_write_files(folder: str, files: list[tuple[str, bytes]], mode: int = 0o644) -> None:
    """atomic_write of several files of one folder, in order, with one fsync of the folder for all."""
    temps: list[str] = []
    try:
        for name, data in files:
            temps.append(_write_temp(os.path.join(folder, name), data, mode, True))
        for tmp, (name, _data) in zip(temps, files):
            os.rename(tmp, os.path.join(folder, name))
    except BaseException:
        for tmp in temps:
            _unlink_quietly(tmp)
        raise
    fsync_dir(folder)


def _write_temp(path: str, data: bytes, mode: int, sync: bool) -> str:
    """A new temp file beside `path` holding `data` (fsynced when sync); its path."""
    folder = os.path.dirname(path) or "."
    tmp = os.path.join(folder, f".tmp-{os.path.basename(path)}-{os.urandom(6).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)   # the umask must not change the mode asked for
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return tmp


def atomic_write_json(path: str, obj: Any, mode: int = 0o644) -> None:
    atomic_write(path, json.dumps(obj, separators=(",", ":")).encode(), mode)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_text(path: str, default: str | None = None) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return default


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
