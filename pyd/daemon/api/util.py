"""Helpers shared by the route modules: filters, timestamps, request bodies spooled to disk."""
from __future__ import annotations

import os
import types
import tempfile
from typing import Any

from pyd.daemon.errors import BadParameter
from pyd.formats import rfc3339


def release_memory() -> None:
    """After a big one-off operation (image load, import, pull, push, save, commit, build): give the C
    heap's free pages back to the kernel, so an idle daemon does not keep its last peak resident.
    In a worker thread: after a 200 MB pull the trim can take half a second, and the response's end
    must not wait for it."""
    import asyncio
    from pyd.daemon.runtime import native
    try:
        asyncio.get_running_loop().run_in_executor(None, native.malloc_trim)
    except RuntimeError:   # no loop (start-up): here and now
        native.malloc_trim()


def releasing_memory(handler: Any) -> Any:
    """handler, then release_memory(): image and build data move through megabyte buffers, and once
    the operation is over their free pages go back to the kernel."""
    async def run(req: Any, **params: str) -> Any:
        try:
            return await handler(req, **params)
        finally:
            release_memory()
    return run


class LazyModule(types.ModuleType):
    """A module imported on first attribute use: what only some requests need stays out of an idle daemon."""
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        import importlib
        return getattr(importlib.import_module(self._name), attr)


def filters_arg(req: Any) -> dict[str, list[str]]:
    """Docker's `filters` query parameter: {"key": ["v"]} or the old {"key": {"v": true}} form."""
    raw = req.arg_json("filters", None) or {}
    if not isinstance(raw, dict):
        raise BadParameter("invalid filter: filters must be a JSON object")
    out: dict[str, list[str]] = {}
    for key, values in raw.items():
        if isinstance(values, dict):
            values = [k for k, v in values.items() if v]
        elif isinstance(values, str):
            values = [values]
        if not isinstance(values, list):
            raise BadParameter(f"invalid filter '{key}'")
        out[key] = [str(v) for v in values]
    return out


def check_filter_keys(filters: dict[str, list[str]], allowed: set[str]) -> None:
    for key in filters:
        if key not in allowed:
            raise BadParameter(f"invalid filter '{key}'")


def parse_time_arg(value: str | None, name: str) -> float:
    """A unix timestamp ("1700000000.123") or RFC 3339; 0 when absent."""
    if not value:
        return 0.0
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return rfc3339.parse(value)
    except ValueError:
        raise BadParameter(f"invalid value for {name}: {value}") from None


def until_filter(value: str) -> float:
    """A prune filter's `until` as dockerd's GetTimestamp reads it: a Go duration that long ago (whole
    seconds), a unix timestamp, or an RFC 3339 time (local when it names no zone)."""
    import math
    import time
    from pyd.formats.units import parse_duration
    if value != "0":
        try:
            return float(math.floor(time.time() - parse_duration(value) / 1e9))
        except ValueError:
            pass
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return rfc3339.parse(value, local=True)
    except ValueError:
        raise BadParameter(f'failed to parse value as time or duration: "{value}"') from None


async def spool_body(req: Any, tmp_dir: str) -> str:
    """Write a (possibly huge) upload to a temp file, never holding it in memory; the caller unlinks it."""
    fd, path = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in req.body_stream():
                f.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return path
