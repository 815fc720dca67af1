"""The local volume driver: `volumes/<name>/_data`, metadata in `volumes/metadata.db` (SQLite).

As dockerd's local driver: a plain volume is a directory; `--opt type=tmpfs|none|... --opt o=... --opt
device=...` makes it a mount of `device` on `_data` while at least one container uses it. Which containers
use a volume is not stored here: the ContainerService knows it (the `users` callback).
"""
from __future__ import annotations

import errno
import json
import logging
import os
import re
import secrets
import shutil
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from pyd.daemon.errors import BadParameter, Conflict, NotFound
from pyd.daemon.storage.trees import tree_size
from pyd.formats import rfc3339

if TYPE_CHECKING:
    import sqlite3

log = logging.getLogger("pyd")

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
LOCAL_OPTS = {"type", "o", "device", "size"}
# mount(8) option words that are flags, not fs data (the local driver's mount.ParseOptions)
_FLAG_OPTS = {"ro": 1, "nosuid": 2, "nodev": 4, "noexec": 8, "sync": 16, "dirsync": 128, "noatime": 1024,
              "nodiratime": 2048, "relatime": 1 << 21, "strictatime": 1 << 24}
_CLEAR_OPTS = {"rw", "suid", "dev", "exec", "async", "atime", "diratime", "norelatime", "defaults"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    driver TEXT NOT NULL,
    labels TEXT NOT NULL,
    options TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"""


@dataclass
class Volume:
    name: str
    driver: str = "local"
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    mountpoint: str = ""

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels

    def to_api(self) -> dict[str, Any]:
        return {"CreatedAt": self.created_at, "Driver": self.driver, "Labels": self.labels or None,
                "Mountpoint": self.mountpoint, "Name": self.name, "Options": self.options or None,
                "Scope": "local"}


def validate_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise BadParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path')


def validate_options(name: str, options: dict[str, str]) -> None:
    for key in options:
        if key not in LOCAL_OPTS:
            raise BadParameter(f'create {name}: invalid option key: "{key}"')
    if options and not options.get("type") and not options.get("device"):
        if options.get("o"):
            raise BadParameter(f"create {name}: missing required option: \"type\"")
    if options.get("type") and options.get("type") != "tmpfs" and not options.get("device"):
        raise BadParameter(f'create {name}: missing required option: "device"')


def split_mount_options(o: str) -> tuple[int, str]:
    """mount(8)-style "o=" into (MS_* flags, fs data)."""
    flags, data = 0, []
    for word in filter(None, o.split(",")):
        if word in _FLAG_OPTS:
            flags |= _FLAG_OPTS[word]
        elif word in _CLEAR_OPTS:
            continue
        elif word in ("bind", "rbind"):
            flags |= 4096 | (16384 if word == "rbind" else 0)
        else:
            data.append(word)
    return flags, ",".join(data)


class VolumeStore:
    """Volumes of one data-root; thread-safe (the API calls it from worker threads)."""

    def __init__(self, root: str, users: Callable[[str], list[str]] = lambda name: []) -> None:
        """users(name): the IDs of the containers that use the volume (the container side knows it)."""
        self.root = root
        os.makedirs(root, mode=0o701, exist_ok=True)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None   # opened on first use: a daemon without volumes never loads it
        self._mounted: dict[str, set[str]] = {}      # volume -> container ids holding its mount
        self.users = users
        if os.listdir(root):   # nothing there: nothing to repair
            self._repair()

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            with self._lock:
                if self._conn is None:
                    import sqlite3   # lazy: ~1.2 MB of RSS
                    db = sqlite3.connect(os.path.join(self.root, "metadata.db"), check_same_thread=False,
                                         isolation_level=None)
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("PRAGMA synchronous=FULL")
                    db.execute(_SCHEMA)
                    self._conn = db
        return self._conn

    # ---- helpers
    def data_path(self, name: str) -> str:
        return os.path.join(self.root, name, "_data")

    def _row_to_volume(self, row: tuple) -> Volume:
        name, driver, labels, options, created = row
        return Volume(name, driver, json.loads(labels), json.loads(options), created, self.data_path(name))

    def _repair(self) -> None:
        """Rows whose directory vanished are dropped; directories without a row are adopted (as dockerd)."""
        with self._lock:
            names = {r[0] for r in self._db.execute("SELECT name FROM volumes")}
            for name in names:
                if not os.path.isdir(os.path.join(self.root, name)):
                    log.warning("repair: volume %s has no directory; forgetting it", name)
                    self._db.execute("DELETE FROM volumes WHERE name=?", (name,))
            for entry in os.listdir(self.root):
                if entry not in names and NAME_RE.match(entry) and os.path.isdir(os.path.join(self.root, entry, "_data")):
                    self._insert(Volume(entry, created_at=rfc3339.now(rfc3339.SECONDS)))

    def _insert(self, v: Volume) -> None:
        self._db.execute("INSERT OR REPLACE INTO volumes VALUES (?,?,?,?,?)",
                         (v.name, v.driver, json.dumps(v.labels), json.dumps(v.options), v.created_at))

    # ---- API
    def create(self, name: str | None = None, driver: str | None = None, labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None) -> Volume:
        driver = driver or "local"
        labels = dict(labels or {})
        options = {k: str(v) for k, v in (options or {}).items()}
        if not name:
            name = secrets.token_hex(32)
            labels.setdefault(ANONYMOUS_LABEL, "")
        validate_name(name)
        if driver != "local":
            raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')
        with self._lock:
            existing = self.find(name)
            if existing is not None:
                return existing      # create is idempotent, as dockerd's
            validate_options(name, options)
            path = self.data_path(name)
            try:
                os.makedirs(path, mode=0o755, exist_ok=True)
            except OSError as e:
                if e.errno != errno.ENAMETOOLONG:
                    raise
                root = os.path.dirname(path)    # the name is the client's: a bad parameter, in dockerd's words
                raise BadParameter(f"create {name}: error while creating volume root path '{root}': "
                                   f"mkdir {root}: file name too long") from None
            os.chmod(os.path.dirname(path), 0o701)
            v = Volume(name, driver, labels, options, rfc3339.now(rfc3339.SECONDS), path)
            self._insert(v)
            return v

    def find(self, name: str) -> Volume | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM volumes WHERE name=?", (name,)).fetchone()
        return self._row_to_volume(row) if row else None

    def get(self, name: str) -> Volume:
        v = self.find(name)
        if v is None:
            raise NotFound(f"get {name}: no such volume")
        return v

    def list(self) -> list[Volume]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM volumes ORDER BY name").fetchall()
        return [self._row_to_volume(r) for r in rows]

    def remove(self, name: str, force: bool = False) -> None:
        with self._lock:
            v = self.find(name)
            if v is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = self.users(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            self._force_unmount(name)
            trash = os.path.join(self.root, f".removing-{name}-{os.urandom(4).hex()}")
            os.rename(os.path.join(self.root, name), trash)
            self._db.execute("DELETE FROM volumes WHERE name=?", (name,))
            shutil.rmtree(trash, ignore_errors=True)

    def size(self, name: str) -> int:
        return tree_size(self.data_path(name))

    # ---- mounts of option volumes (tmpfs, bind, nfs...) while containers use them
    def needs_mount(self, v: Volume) -> bool:
        return bool(v.options.get("type") or v.options.get("device"))

    def mount(self, name: str, ref: str) -> str:
        """The host path to bind into a container; mounts an option volume on first use."""
        v = self.get(name)
        with self._lock:
            holders = self._mounted.setdefault(name, set())
            if self.needs_mount(v) and not holders and not _is_mountpoint(v.mountpoint):
                from pyd.daemon.runtime import native
                opts = v.options
                flags, data = split_mount_options(opts.get("o", ""))
                fstype = opts.get("type") or None
                device = opts.get("device") or fstype or "none"
                if fstype == "none":
                    fstype = None
                    flags |= 4096     # type=none,o=bind: a bind mount
                if opts.get("size") and fstype == "tmpfs":
                    data = ",".join(filter(None, [data, f"size={opts['size']}"]))
                try:
                    native.mount(device, v.mountpoint, fstype, flags, data or None)
                except OSError as e:
                    raise BadParameter(f"error while mounting volume '{v.mountpoint}': failed to mount local "
                                       f"volume: mount {device}:{v.mountpoint}: {e.strerror}") from None
            holders.add(ref)
            return v.mountpoint

    def unmount(self, name: str, ref: str) -> None:
        with self._lock:
            holders = self._mounted.get(name, set())
            holders.discard(ref)
            if holders:
                return
            self._mounted.pop(name, None)
            v = self.find(name)
            if v is not None and self.needs_mount(v):
                self._force_unmount(name)

    def _force_unmount(self, name: str) -> None:
        path = self.data_path(name)
        if _is_mountpoint(path):
            from pyd.daemon.runtime import native
            try:
                native.umount2(path, native.MNT_DETACH)
            except OSError as e:
                log.warning("unmount of volume %s failed: %s", name, e)


def _is_mountpoint(path: str) -> bool:
    try:
        return os.path.ismount(path)
    except OSError:
        return False
