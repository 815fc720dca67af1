"""RUN --mount: BuildKit's mount specs (type=bind|cache|tmpfs|secret|ssh) parsed with its words, and
turned into the HostConfig.Mounts of the step's container.

`parse(spec, expand, workdir)` is pure. `Mounted` (async context manager) does the I/O of one RUN: cache
directories under <data-root>/builder/cache-mounts kept across builds (flock'ed for sharing=locked and
private; a shared lock while in use, so prune leaves them alone), bind sources (the context, a stage's or an
image's root; rw binds get a throw-away copy), secret files written for the step only.
"""
from __future__ import annotations

import csv
import fcntl
import hashlib
import os
import posixpath
import shutil
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from pyd.daemon.storage import archive
from pyd.formats import units

TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING = ("shared", "private", "locked")
_KEYS = ("type", "from", "source", "target", "readonly", "id", "sharing", "required", "mode", "uid", "gid",
         "src", "dst", "ro", "rw", "readwrite", "size", "destination")


class MountError(ValueError):
    """A bad --mount spec or a mount that cannot be made; str() is BuildKit's wording."""


@dataclass(frozen=True)
class RunMount:
    type: str
    target: str
    source: str = ""
    from_: str = ""
    readonly: bool = False
    id: str = ""
    sharing: str = "shared"
    required: bool = False
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int = 0

    def key(self) -> str:
        """What the build cache compares (the source's content is added by the caller for binds)."""
        fields = [f"type={self.type}", f"target={self.target}"]
        for name, value in (("source", self.source), ("from", self.from_), ("id", self.id)):
            if value:
                fields.append(f"{name}={value}")
        if self.type == "cache":
            fields.append(f"sharing={self.sharing}")
        for name, num in (("mode", self.mode), ("uid", self.uid), ("gid", self.gid)):
            if num is not None:
                fields.append(f"{name}={num:o}" if name == "mode" else f"{name}={num}")
        if self.size:
            fields.append(f"size={self.size}")
        if self.readonly:
            fields.append("ro")
        if self.required:
            fields.append("required")
        return ",".join(fields)


def _bool(key: str, value: str) -> bool:
    low = value.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise MountError(f"invalid value for {key}: {value}")


def _uint(key: str, value: str, base: int) -> int:
    try:
        num = int(value, base)
    except ValueError:
        raise MountError(f"invalid value {value} for {key}") from None
    if num < 0 or num >= 1 << 32:
        raise MountError(f"invalid value {value} for {key}")
    return num


def parse(spec: str, expand: Callable[[str], str], workdir: str = "/") -> RunMount:
    """One --mount value (CSV of key=value fields, BuildKit's keys and defaults)."""
    try:
        fields = next(csv.reader([spec]))
    except (csv.Error, StopIteration):
        raise MountError("failed to parse csv mounts") from None
    kind, target, source, from_, mount_id, sharing = "bind", "", "", "", "", ""
    readonly: bool | None = None
    required = False
    mode = uid = gid = None
    size = 0
    for field in fields:
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if not eq:
            if key in ("readonly", "ro"):
                readonly = True
            elif key in ("readwrite", "rw"):
                readonly = False
            elif key == "required":
                if kind not in ("secret", "ssh"):
                    raise MountError(f"unexpected key '{key}' for mount type '{kind}'")
                required = True
            else:
                raise MountError(f"invalid field '{field}' must be a key=value pair")
            continue
        value = expand(value)
        if key == "type":
            if value.lower() not in TYPES:
                raise MountError(f'unsupported mount type "{value}"')
            kind = value.lower()
        elif key == "from":
            from_ = value
        elif key in ("source", "src"):
            source = value
        elif key in ("target", "dst", "destination"):
            target = value
        elif key in ("readonly", "ro"):
            readonly = _bool(key, value)
        elif key in ("readwrite", "rw"):
            readonly = not _bool(key, value)
        elif key == "required":
            if kind not in ("secret", "ssh"):
                raise MountError(f"unexpected key '{key}' for mount type '{kind}'")
            required = _bool(key, value)
        elif key == "size":
            if kind != "tmpfs":
                raise MountError(f"unexpected key '{key}' for mount type '{kind}'")
            try:
                size = units.ram_in_bytes(value)
            except ValueError:
                raise MountError(f"invalid value for {key}: {value}") from None
        elif key == "id":
            mount_id = value
        elif key == "sharing":
            if value.lower() not in SHARING:
                raise MountError(f'unsupported sharing value "{value}"')
            sharing = value.lower()
        elif key == "mode":
            mode = _uint(key, value, 8)
        elif key == "uid":
            uid = _uint(key, value, 10)
        elif key == "gid":
            gid = _uint(key, value, 10)
        else:
            raise MountError(f"unexpected key '{key}' in '{field}'")
    if kind not in ("secret", "ssh", "cache"):
        for name, num in (("mode", mode), ("uid", uid), ("gid", gid)):
            if num is not None:
                raise MountError(f'{name} not allowed for "{kind}" type mounts')
    if sharing and kind != "cache":
        raise MountError(f"invalid cache sharing set for {kind} mount")
    if kind == "secret":
        if from_:
            raise MountError("secret mount should not have a from")
        if not source and not target and not mount_id:
            raise MountError("invalid secret mount. one of source, target required")
        if source and mount_id:
            raise MountError("both source and id can't be set")
        mount_id = mount_id or source or posixpath.basename(target)
        target = target or f"/run/secrets/{mount_id}"
    if kind == "ssh":
        mount_id = mount_id or "default"
        target = target or "/run/buildkit/ssh_agent.0"
    if not target:
        raise MountError('invalid mount target ""' if kind != "cache" else "mount target must be specified")
    target = posixpath.normpath(posixpath.join("/", workdir or "/", target))
    if kind == "cache":
        mount_id = mount_id or target
    if readonly is None:
        readonly = kind not in ("cache", "tmpfs")
    return RunMount(kind, target, source, from_, readonly, mount_id, sharing or "shared", required, mode, uid,
                    gid, size)


# ---------------------------------------------------------------------------------------------------
# making the mounts of one RUN

# a stage's or an image's root: open(ref) -> (path, close()); the builder's own graph mounts
OpenRoot = Callable[[str], Awaitable[tuple[str, Callable[[], Awaitable[None]]]]]
# a unix socket reaching the client's SSH agent for an ssh mount: (path, close()), None if not forwarded
OpenAgent = Callable[["RunMount"], Awaitable["tuple[str, Callable[[], Awaitable[None]]] | None"]]


def cache_mounts_dir(data_root: str) -> str:
    return os.path.join(data_root, "builder", "cache-mounts")


def _cache_dir(root: str, m: RunMount, seed: str = "") -> tuple[str, int]:
    """The directory of cache mount `m` and a descriptor holding its lock (blocking: run in a thread);
    a new one starts as a copy of `seed` (from=, source=) when given."""
    os.makedirs(root, 0o700, exist_ok=True)
    base = hashlib.sha256(m.id.encode()).hexdigest()[:32]
    index = 0
    while True:
        path = os.path.join(root, f"{base}-{index}")
        fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if m.sharing == "shared":
                fcntl.flock(fd, fcntl.LOCK_SH)
            elif m.sharing == "locked":
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            index += 1     # private: the next instance nobody holds
            continue
        if not os.path.isdir(path):
            _make_cache_dir(root, path, m, seed)
        return path, fd


def _make_cache_dir(root: str, path: str, m: RunMount, seed: str) -> None:
    """A new cache directory, made once when steps that share it start at once."""
    guard = os.open(os.path.join(root, ".create.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if os.path.isdir(path):
            return
        tmp = path + ".new"
        shutil.rmtree(tmp, ignore_errors=True)
        if seed and os.path.isdir(seed):
            shutil.copytree(seed, tmp, symlinks=True)
        else:
            os.mkdir(tmp)
        os.chmod(tmp, m.mode if m.mode is not None else 0o755)
        os.chown(tmp, m.uid or 0, m.gid or 0)
        os.rename(tmp, path)
    finally:
        os.close(guard)


def prune_cache_mounts(data_root: str) -> int:
    """Remove the cache mounts no build holds; the bytes reclaimed."""
    from pyd.daemon.storage import trees
    root = cache_mounts_dir(data_root)
    reclaimed = 0
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return 0
    for name in names:
        if not name.endswith(".lock") or name.startswith("."):     # .create.lock guards no mount
            continue
        path = os.path.join(root, name[:-5])
        fd = os.open(os.path.join(root, name), os.O_RDWR | os.O_CLOEXEC)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            if os.path.isdir(path):
                reclaimed += trees.tree_size(path)
                shutil.rmtree(path, ignore_errors=True)
            os.unlink(os.path.join(root, name))
        finally:
            os.close(fd)
    return reclaimed


class Mounted:
    """The HostConfig.Mounts of one RUN, made on enter and undone on exit."""

    def __init__(self, mounts: list[RunMount], *, context: str, data_root: str, tmp: str,
                 secrets: dict[str, bytes], open_root: OpenRoot, open_agent: OpenAgent | None = None) -> None:
        self.mounts, self.context, self.data_root, self.tmp = mounts, context, data_root, tmp
        self.secrets, self.open_root, self.open_agent = secrets, open_root, open_agent
        self.api: list[dict[str, Any]] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []

    async def __aenter__(self) -> list[dict[str, Any]]:
        import asyncio
        try:
            for m in self.mounts:
                entry = await self._one(m, asyncio)
                if entry is not None:
                    self.api.append(entry)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self.api

    async def __aexit__(self, *exc: Any) -> None:
        while self._closers:
            close = self._closers.pop()
            try:
                await close()
            except OSError:
                pass

    def _remove_later(self, path: str) -> None:
        import asyncio

        async def close() -> None:
            await asyncio.to_thread(shutil.rmtree, path, True)
        self._closers.append(close)

    async def _one(self, m: RunMount, asyncio: Any) -> dict[str, Any] | None:
        bind = {"Type": "bind", "Target": m.target, "ReadOnly": m.readonly,
                "BindOptions": {"Propagation": "rprivate"}}
        if m.type == "tmpfs":
            return {"Type": "tmpfs", "Target": m.target, "TmpfsOptions": {"SizeBytes": m.size} if m.size else {}}
        if m.type == "cache":
            seed = ""
            if m.from_:
                root, close = await self.open_root(m.from_)
                self._closers.append(close)
                seed = self._source_in(root, m)
            path, fd = await asyncio.to_thread(_cache_dir, cache_mounts_dir(self.data_root), m, seed)

            async def unlock() -> None:
                os.close(fd)
            self._closers.append(unlock)
            return dict(bind, Source=path)
        if m.type == "secret":
            data = self.secrets.get(m.id)
            if data is None:
                if m.required:
                    raise MountError(f"secret {m.id}: not found")
                return None
            folder = await asyncio.to_thread(_private_dir, self.tmp, "build-secret-")
            self._remove_later(folder)
            path = os.path.join(folder, "secret")
            await asyncio.to_thread(_write_secret, path, data, m)
            return dict(bind, Source=path, ReadOnly=True)
        if m.type == "ssh":
            agent = await self.open_agent(m) if self.open_agent is not None else None
            if agent is None:
                if m.required:
                    raise MountError(f'no SSH key "{m.id}" forwarded from the client')
                return None
            path, close = agent
            self._closers.append(close)
            return dict(bind, Source=path, ReadOnly=False)
        # bind
        if m.from_:
            root, close = await self.open_root(m.from_)
            self._closers.append(close)
        else:
            root = self.context
        source = self._source_in(root, m)
        if not m.readonly:   # writes are discarded: the step gets its own copy
            folder = await asyncio.to_thread(_private_dir, self.tmp, "build-bind-")
            self._remove_later(folder)
            copy = os.path.join(folder, "src")
            await asyncio.to_thread(_copy_any, source, copy)
            source = copy
        return dict(bind, Source=source)


    @staticmethod
    def _source_in(root: str, m: RunMount) -> str:
        rel = posixpath.normpath(m.source.lstrip("/")) if m.source.strip("/") else "."
        source = archive.secure_join(root, rel) if rel != "." else root
        if not os.path.lexists(source):
            shown = "/" + rel if rel != "." else "/"
            raise MountError(f'failed to compute cache key: "{shown}": not found')
        return source


def _private_dir(tmp: str, prefix: str) -> str:
    import tempfile
    return tempfile.mkdtemp(prefix=prefix, dir=tmp)


def _write_secret(path: str, data: bytes, m: RunMount) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chown(path, m.uid or 0, m.gid or 0)
    os.chmod(path, m.mode if m.mode is not None else 0o400)


def _copy_any(source: str, dest: str) -> None:
    if os.path.isdir(source) and not os.path.islink(source):
        shutil.copytree(source, dest, symlinks=True)
    else:
        shutil.copy2(source, dest, follow_symlinks=False)
