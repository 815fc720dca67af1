"""Storage: graph drivers (overlay2, vfs), layer store, image store, reference store, as dockerd lays them out.

    <root>/overlay2/<cache-id>/{diff,work,merged,lower,link}   <root>/overlay2/l/<short> -> ../<cache-id>/diff
    <root>/vfs/dir/<cache-id>/                                  (a full copy of the parent plus the layer)
    <root>/image/<driver>/layerdb/sha256/<chain>/{diff,size,cache-id,parent,tar-split.json.gz}
    <root>/image/<driver>/layerdb/mounts/<container-id>/{mount-id,parent}
    <root>/image/<driver>/imagedb/content/sha256/<hex>          (the exact config bytes; hex = their sha256)
    <root>/image/<driver>/imagedb/metadata/sha256/<hex>/parent
    <root>/image/<driver>/repositories.json

Metadata writes are atomic; a new Graph on the same root sees everything, and entries a crash left half
written are skipped with a warning.
"""
from __future__ import annotations

import base64
import errno
import hashlib
import itertools
import json
import logging
import os
import posixpath
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable, Iterator

from pyd.daemon.storage import archive
from pyd.daemon.runtime import native
from pyd.daemon.errors import BadParameter, Conflict, NotFound
from pyd.daemon.fsutil import atomic_write, atomic_write_json, copy_tree, fsync_dir, read_text, remove_tree
from pyd.formats.reference import Reference, is_image_id, parse_reference, validate_tag

__all__ = ["Graph", "Image", "Layer", "GraphDriverError", "Reference", "parse_reference", "chain_id",
           "apply_changes", "mount_overlay", "overlay_supported"]

log = logging.getLogger("pyd.graph")

DRIVERS = ("overlay2", "vfs")
_HEX = set("0123456789abcdef")
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}


class GraphDriverError(ValueError):
    """The storage driver asked for cannot be used on this data-root (the daemon refuses to start)."""


# ---------------------------------------------------------------------------------------------------
# small helpers

def chain_id(parent_chain: str | None, diff_id: str) -> str:
    """OCI ChainID: the diff ID for a base layer, else sha256(parent_chain + " " + diff_id)."""
    if not parent_chain:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent_chain} {diff_id}".encode()).hexdigest()


def short_id(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


def _hex(digest: str) -> str:
    return digest.split(":", 1)[-1]


def _random_id() -> str:
    return os.urandom(32).hex()


def _is_cache_id(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _now_rfc3339() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


def _host_arch() -> str:
    machine = os.uname().machine
    return _ARCH.get(machine, machine)


# ---------------------------------------------------------------------------------------------------
# overlay mounting

def mount_overlay(target: str, lowers: list[str], upper: str, work: str, new_api: bool = True) -> None:
    """Mount overlayfs on `target`. Lowers are absolute paths, topmost first.

    The new mount API passes each lower on its own ("lowerdir+", Linux 6.8+), so there is no page-size
    limit on the layer count and no chdir. Older kernels get mount(2), with absolute paths when they fit in
    a page, else relative ones from a forked child that chdirs (the daemon's cwd never moves)."""
    if new_api:
        try:
            _mount_overlay_fsconfig(target, lowers, upper, work)
            return
        except _NoLowerdirPlus as exc:
            log.debug("new mount API unusable for overlay (%s), falling back to mount(2)", exc)
    data = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
    if len(data) < os.sysconf("SC_PAGE_SIZE"):
        native.mount("overlay", target, "overlay", 0, data)
        return
    home = os.path.commonpath([upper, work] + lowers)
    rel = [os.path.relpath(p, home) for p in lowers]
    data = f"lowerdir={':'.join(rel)},upperdir={os.path.relpath(upper, home)},workdir={os.path.relpath(work, home)}"
    if len(data) >= os.sysconf("SC_PAGE_SIZE"):
        raise OSError(errno.E2BIG, f"mount overlay on {target}: {len(lowers)} lower layers do not fit in "
                                   "one page of mount options on this kernel")
    _mount_from_dir(home, "overlay", target, "overlay", data)


class _NoLowerdirPlus(Exception):
    """The kernel lacks fsopen() or overlay's "lowerdir+" (before Linux 6.8)."""


def _mount_overlay_fsconfig(target: str, lowers: list[str], upper: str, work: str) -> None:
    try:
        fd = native.fsopen("overlay")
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            raise _NoLowerdirPlus(str(exc)) from None
        raise
    try:
        for i, lower in enumerate(lowers):
            try:
                native.fsconfig(fd, native.FSCONFIG_SET_STRING, "lowerdir+", lower)
            except OSError as exc:
                if i == 0 and exc.errno == errno.EINVAL and "nknown parameter" in str(exc):
                    raise _NoLowerdirPlus(str(exc)) from None
                raise
        native.fsconfig(fd, native.FSCONFIG_SET_STRING, "source", "overlay")   # what mount(8) and df show
        native.fsconfig(fd, native.FSCONFIG_SET_STRING, "upperdir", upper)
        native.fsconfig(fd, native.FSCONFIG_SET_STRING, "workdir", work)
        native.fsconfig(fd, native.FSCONFIG_CMD_CREATE)
        mfd = native.fsmount(fd)
        try:
            native.move_mount(mfd, "", native.AT_FDCWD, target, native.MOVE_MOUNT_F_EMPTY_PATH)
        finally:
            os.close(mfd)
    finally:
        os.close(fd)


def _mount_from_dir(cwd: str, source: str, target: str, fstype: str, data: str) -> None:
    """mount(2) with paths relative to `cwd`, done in a child so that our own cwd never changes."""
    target = os.path.abspath(target)
    native._libc()   # load cffi before fork: the child must only chdir and mount
    pid = os.fork()
    if pid == 0:   # child: only chdir + one syscall, then _exit
        code = 1
        try:
            os.chdir(cwd)
            native.mount(source, target, fstype, 0, data)
            code = 0
        except OSError as exc:
            code = exc.errno or 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise OSError(code, f"mount {fstype} on {target}: {os.strerror(code)}")


def unmount(target: str) -> None:
    try:
        native.umount2(target, 0)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            native.umount2(target, native.MNT_DETACH)   # still busy: let it go when the last user leaves
        elif exc.errno != errno.EINVAL:   # EINVAL: not mounted
            raise


def overlay_supported(root: str) -> bool:
    """Try a real overlay mount in a scratch dir under the data-root."""
    scratch_parent = os.path.join(root, "tmp")
    os.makedirs(scratch_parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="overlay-check-", dir=scratch_parent)
    try:
        dirs = {n: os.path.join(scratch, n) for n in ("lower1", "lower2", "upper", "work", "merged")}
        for d in dirs.values():
            os.mkdir(d)
        mount_overlay(dirs["merged"], [dirs["lower1"], dirs["lower2"]], dirs["upper"], dirs["work"])
        unmount(dirs["merged"])
        return True
    except OSError as exc:
        log.info("overlayfs not usable on %s: %s", root, exc)
        return False
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# graph drivers

def _write_new(path: str, data: bytes, sync: bool) -> None:
    """A new file in a folder nobody reads yet (its commit point is a later rename); fsynced when sync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


class Overlay2Driver:
    """dockerd's overlay2 layout: short `l/` links keep the lowerdir list compact."""
    name = "overlay2"
    whiteouts = "overlay"

    def __init__(self, home: str):
        self.home = home
        os.makedirs(os.path.join(home, "l"), 0o700, exist_ok=True)

    def _dir(self, cache_id: str) -> str:
        return os.path.join(self.home, cache_id)

    def exists(self, cache_id: str) -> bool:
        return os.path.isdir(os.path.join(self._dir(cache_id), "diff"))

    def diff_dir(self, cache_id: str) -> str:
        return os.path.join(self._dir(cache_id), "diff")

    def create(self, cache_id: str, parent: str | None, durable: bool = True) -> None:
        """A new layer dir. Nothing points at it until the caller commits its own metadata, so it is
        written in place. durable=False (container layers) skips every fsync: `repair` re-creates what a
        machine crash can lose, from the parent."""
        d = self._dir(cache_id)
        os.makedirs(self.home, 0o710, exist_ok=True)
        os.mkdir(d, 0o710)
        os.mkdir(os.path.join(d, "diff"), 0o755)
        _write_new(os.path.join(d, "link"), self._new_link(cache_id).encode(), durable)
        if parent is not None:
            _write_new(os.path.join(d, "lower"), self._lower_of(parent).encode(), durable)
            os.mkdir(os.path.join(d, "work"), 0o700)
        if durable:
            fsync_dir(d)
            fsync_dir(os.path.join(self.home, "l"))
            fsync_dir(self.home)

    def _lower_of(self, parent: str) -> str:
        """The `lower` of a layer on `parent`: the parent's link, then the parent's lowers."""
        parent_link = read_text(os.path.join(self._dir(parent), "link"))
        parent_lower = read_text(os.path.join(self._dir(parent), "lower"))
        return f"l/{parent_link}" + (f":{parent_lower}" if parent_lower else "")

    def repair(self, cache_id: str, parent: str | None) -> None:
        """Re-create the parts of a layer made with durable=False that a machine crash lost (dirs, link,
        lower); parts that are there are kept."""
        d = self._dir(cache_id)
        os.makedirs(d, 0o710, exist_ok=True)
        os.makedirs(os.path.join(d, "diff"), 0o755, exist_ok=True)
        link = read_text(os.path.join(d, "link"))
        try:
            linked = bool(link) and os.readlink(os.path.join(self.home, "l", link)) == f"../{cache_id}/diff"
        except OSError:
            linked = False
        if not linked:
            atomic_write(os.path.join(d, "link"), self._new_link(cache_id).encode())
        if parent is not None:
            os.makedirs(os.path.join(d, "work"), 0o700, exist_ok=True)
            lower = self._lower_of(parent)
            if read_text(os.path.join(d, "lower")) != lower:
                atomic_write(os.path.join(d, "lower"), lower.encode())

    def _new_link(self, cache_id: str) -> str:
        while True:   # 26 chars of base32, as dockerd: short enough for ~128 lowers in one page
            short = base64.b32encode(os.urandom(16)).decode().rstrip("=")
            try:
                os.symlink(f"../{cache_id}/diff", os.path.join(self.home, "l", short))
                return short
            except FileExistsError:
                continue

    def lowers(self, cache_id: str) -> list[str]:
        lower = read_text(os.path.join(self._dir(cache_id), "lower"))
        return [os.path.join(self.home, p) for p in lower.split(":")] if lower else []

    def mount(self, cache_id: str) -> str:
        d = self._dir(cache_id)
        lowers = self.lowers(cache_id)
        if not lowers:
            return os.path.join(d, "diff")   # nothing under it: the diff is the whole tree, as dockerd does
        merged = os.path.join(d, "merged")
        os.makedirs(merged, 0o700, exist_ok=True)
        if not os.path.ismount(merged):
            mount_overlay(merged, lowers, os.path.join(d, "diff"), os.path.join(d, "work"))
        return merged

    def data(self, cache_id: str) -> dict | None:
        """`docker inspect`'s GraphDriver.Data: full paths, lowers as their diff dirs."""
        d = self._dir(cache_id)
        out = {"MergedDir": os.path.join(d, "merged"), "UpperDir": os.path.join(d, "diff"),
               "WorkDir": os.path.join(d, "work")}
        lowers = [os.path.realpath(p) for p in self.lowers(cache_id)]
        if lowers:
            out["LowerDir"] = ":".join(lowers)
        return out

    def unmount(self, cache_id: str) -> None:
        merged = os.path.join(self._dir(cache_id), "merged")
        if os.path.ismount(merged):
            unmount(merged)

    def remove(self, cache_id: str) -> None:
        d = self._dir(cache_id)
        self.unmount(cache_id)
        link = read_text(os.path.join(d, "link"))
        if link:
            try:
                os.unlink(os.path.join(self.home, "l", link))
            except FileNotFoundError:
                pass
        remove_tree(d)


class VfsDriver:
    """Full copies: every layer directory holds its whole tree. Works on any filesystem."""
    name = "vfs"
    whiteouts = "vfs"

    def __init__(self, home: str):
        self.home = home
        os.makedirs(os.path.join(home, "dir"), 0o700, exist_ok=True)

    def diff_dir(self, cache_id: str) -> str:
        return os.path.join(self.home, "dir", cache_id)

    def exists(self, cache_id: str) -> bool:
        return os.path.isdir(self.diff_dir(cache_id))

    def create(self, cache_id: str, parent: str | None, durable: bool = True) -> None:
        d = self.diff_dir(cache_id)
        if parent is None:
            os.mkdir(d, 0o755)
        else:
            copy_tree(self.diff_dir(parent), d)

    def mount(self, cache_id: str) -> str:
        return self.diff_dir(cache_id)

    def data(self, cache_id: str) -> dict | None:
        return None

    def unmount(self, cache_id: str) -> None:
        pass

    def remove(self, cache_id: str) -> None:
        remove_tree(self.diff_dir(cache_id))


Driver = Overlay2Driver | VfsDriver


def _pick_driver(root: str, name: str | None) -> Driver:
    if name is not None and name not in DRIVERS:
        raise GraphDriverError(f"graph driver {name!r} is not supported (choose one of: {', '.join(DRIVERS)})")
    if name is None and _used_before(root, "vfs") and not _used_before(root, "overlay2"):
        name = "vfs"   # keep what this data-root already holds, as dockerd does
    if name in (None, "overlay2"):
        if overlay_supported(root):
            return Overlay2Driver(os.path.join(root, "overlay2"))
        if name == "overlay2":
            raise GraphDriverError(f"driver not supported: overlay2 (overlayfs cannot be mounted on {root})")
    return VfsDriver(os.path.join(root, "vfs"))


def _used_before(root: str, driver: str) -> bool:
    return os.path.isdir(os.path.join(root, "image", driver, "layerdb", "sha256"))


# ---------------------------------------------------------------------------------------------------
# records

@dataclass
class Layer:
    chain_id: str
    diff_id: str
    parent: str | None      # chain ID of the layer below
    cache_id: str           # directory name in the driver
    size: int


@dataclass
class Image:
    id: str                 # "sha256:<hex>" of the config bytes
    config: dict            # the full image config JSON
    size: int               # sum of the layers' sizes
    created: str            # RFC 3339
    parent: str = ""        # the image this one was built on ("" when imported, loaded or pulled)

    def container_config(self) -> dict:
        return self.config.get("config") or {}

    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])

    def chain_ids(self) -> list[str]:
        out: list[str] = []
        for diff in self.diff_ids():
            out.append(chain_id(out[-1] if out else None, diff))
        return out


@dataclass
class RWLayer:
    container_id: str
    mount_id: str           # cache id in the driver
    parent: str | None      # chain ID of the image's top layer


@dataclass
class _Mounts:
    counts: dict[str, int] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# the graph

class Graph:
    """Driver + layer store + image store + reference store for one data-root."""

    def __init__(self, root: str, driver: str | None = None):
        self.root = os.path.abspath(root)
        self.tmp = os.path.join(self.root, "tmp")
        os.makedirs(self.tmp, 0o700, exist_ok=True)
        self.driver = _pick_driver(self.root, driver)
        self.driver_name: str = self.driver.name
        self.backing_fs: str = native.fs_name(self.root)
        self.meta = os.path.join(self.root, "image", self.driver_name)
        self._layerdb = os.path.join(self.meta, "layerdb")
        self._content = os.path.join(self.meta, "imagedb", "content", "sha256")
        self._imgmeta = os.path.join(self.meta, "imagedb", "metadata", "sha256")
        self._repos_path = os.path.join(self.meta, "repositories.json")
        for d in (os.path.join(self._layerdb, "sha256"), os.path.join(self._layerdb, "mounts"),
                  os.path.join(self._layerdb, "tmp"), self._content, self._imgmeta):
            os.makedirs(d, 0o700, exist_ok=True)
        self._lock = threading.RLock()
        self._layers: dict[str, Layer] = {}
        self._images: dict[str, Image] = {}
        self._refs: dict[Reference, str] = {}
        self._rw: dict[str, RWLayer] = {}
        self._creating: set[str] = set()   # container IDs whose layer create_rw is writing
        self._mounts = _Mounts()
        self._load_layers()
        self._load_images()
        self._load_refs()
        self._load_rw()
        self._sweep_tmp()

    # ---- reload from disk -------------------------------------------------------------------------

    def _load_layers(self) -> None:
        base = os.path.join(self._layerdb, "sha256")
        found: dict[str, Layer] = {}
        for hexid in os.listdir(base):
            d = os.path.join(base, hexid)
            diff, cache = read_text(os.path.join(d, "diff")), read_text(os.path.join(d, "cache-id"))
            if not diff or not cache:
                log.warning("skipping layer %s: incomplete metadata in %s", hexid, d)
                continue
            if not self.driver.exists(cache):
                log.warning("skipping layer %s: its %s directory %s is missing", hexid, self.driver_name, cache)
                continue
            size = int(read_text(os.path.join(d, "size"), "0") or 0)
            found["sha256:" + hexid] = Layer("sha256:" + hexid, diff, read_text(os.path.join(d, "parent")) or None,
                                             cache, size)
        for cid in list(found):   # a layer whose parent is gone is unusable
            if not self._chain_complete(cid, found):
                log.warning("skipping layer %s: a parent layer is missing", cid)
        self._layers = {cid: layer for cid, layer in found.items() if self._chain_complete(cid, found)}

    @staticmethod
    def _chain_complete(cid: str, layers: dict[str, Layer]) -> bool:
        seen = 0
        while cid:
            layer = layers.get(cid)
            if layer is None or seen > 10_000:
                return False
            cid, seen = layer.parent or "", seen + 1
        return True

    def _load_images(self) -> None:
        for hexid in os.listdir(self._content):
            if hexid.startswith("."):
                continue
            try:
                with open(os.path.join(self._content, hexid), "rb") as f:
                    data = f.read()
                if hashlib.sha256(data).hexdigest() != hexid:
                    raise ValueError("content does not match its digest")
                image = self._make_image(data)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("skipping image %s: %s", hexid, exc)
                continue
            missing = [c for c in image.chain_ids() if c not in self._layers]
            if missing:
                log.warning("skipping image %s: layer %s is missing", hexid, missing[0])
                continue
            self._images[image.id] = image

    def _load_refs(self) -> None:
        try:
            with open(self._repos_path) as f:
                repos = json.load(f).get("Repositories") or {}
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self._repos_path, exc)
            return
        for refs in repos.values():
            for s, image_id in refs.items():
                try:
                    ref = parse_reference(s, default_tag=False)
                except BadParameter:
                    log.warning("skipping invalid reference %r in repositories.json", s)
                    continue
                if image_id not in self._images:
                    log.warning("skipping reference %s: image %s is missing", s, image_id)
                    continue
                self._refs[ref] = image_id

    def _load_rw(self) -> None:
        base = os.path.join(self._layerdb, "mounts")
        for cid in os.listdir(base):
            mount_id = read_text(os.path.join(base, cid, "mount-id"))
            parent = read_text(os.path.join(base, cid, "parent")) or None
            if mount_id and isinstance(self.driver, Overlay2Driver) and (parent is None or parent in self._layers):
                try:
                    self.driver.repair(mount_id, self._layers[parent].cache_id if parent else None)
                except OSError as exc:
                    log.warning("container layer %s: cannot repair %s: %s", cid, mount_id, exc)
            if not mount_id or not self.driver.exists(mount_id):
                log.warning("skipping container layer %s: incomplete", cid)
                continue
            self._rw[cid] = RWLayer(cid, mount_id, parent)

    def _sweep_tmp(self) -> None:
        """What a crash left in layerdb/tmp: a removal renames the metadata there first and a registration
        writes it there last, so the driver dirs named in it (cache-id, mount-id, a tar-split's name) belong
        to nothing loaded; they go, then the leftovers themselves."""
        used = {layer.cache_id for layer in self._layers.values()} | {rw.mount_id for rw in self._rw.values()}
        tmp = os.path.join(self._layerdb, "tmp")
        for name in sorted(os.listdir(tmp)):
            path = os.path.join(tmp, name)
            if os.path.isdir(path):
                named = [read_text(os.path.join(path, f)) for f in ("cache-id", "mount-id")]
            else:
                named = [name.split("-tar-split", 1)[0]] if "-tar-split" in name else []
            for cache_id in filter(None, named):
                if cache_id not in used and _is_cache_id(cache_id) and self.driver.exists(cache_id):
                    log.warning("repair: removing layer directory %s left by an interrupted %s", cache_id[:12],
                                "removal" if name.startswith("remove-") else "registration")
                    try:
                        self.driver.remove(cache_id)
                    except OSError as exc:
                        log.warning("repair: could not remove %s: %s", cache_id[:12], exc)
                        continue
            remove_tree(path)

    # ---- layers -----------------------------------------------------------------------------------

    def has_layer(self, chain: str) -> bool:
        return chain in self._layers

    def layer(self, chain: str) -> Layer:
        return self._layers[chain]

    def register_layer(self, stream: BinaryIO | Iterable[bytes] | bytes, parent: str | None = None,
                       expected_diff_id: str | None = None) -> Layer:
        """Apply a layer tar (plain or compressed) on top of the layer `parent` (a chain ID).

        The same content on the same parent is stored once. Raises BadParameter for a bad or unsafe tar
        or a diff ID other than `expected_diff_id`."""
        parent_layer = self._layers[parent] if parent else None
        cache_id = _random_id()
        split_tmp = os.path.join(self._layerdb, "tmp", f"{cache_id}-tar-split.json.gz")
        self.driver.create(cache_id, parent_layer.cache_id if parent_layer else None)
        try:
            result = archive.extract_layer(stream, self.driver.diff_dir(cache_id), self.driver.whiteouts, split_tmp)
            if expected_diff_id and result.diff_id != expected_diff_id:
                raise BadParameter(f"invalid diffID for layer: expected {expected_diff_id!r}, got {result.diff_id!r}")
        except archive.ArchiveError as exc:
            self._discard(cache_id, split_tmp)
            raise BadParameter(str(exc)) from None
        except BaseException:
            self._discard(cache_id, split_tmp)
            raise
        chain = chain_id(parent, result.diff_id)
        with self._lock:
            if chain in self._layers:
                self._discard(cache_id, split_tmp)
                return self._layers[chain]
            layer = Layer(chain, result.diff_id, parent, cache_id, result.size)
            self._write_layer_meta(layer, split_tmp)
            self._layers[chain] = layer
            return layer

    def _discard(self, cache_id: str, split_tmp: str) -> None:
        self.driver.remove(cache_id)
        remove_tree(split_tmp)

    def _write_layer_meta(self, layer: Layer, split_tmp: str) -> None:
        """All files in a scratch dir, then one rename: the layer appears whole or not at all."""
        scratch = tempfile.mkdtemp(prefix="write-set-", dir=os.path.join(self._layerdb, "tmp"))
        _write_new(os.path.join(scratch, "diff"), layer.diff_id.encode(), True)
        _write_new(os.path.join(scratch, "size"), str(layer.size).encode(), True)
        _write_new(os.path.join(scratch, "cache-id"), layer.cache_id.encode(), True)
        if layer.parent:
            _write_new(os.path.join(scratch, "parent"), layer.parent.encode(), True)
        os.rename(split_tmp, os.path.join(scratch, "tar-split.json.gz"))
        os.chmod(scratch, 0o700)
        fsync_dir(scratch)
        final = os.path.join(self._layerdb, "sha256", _hex(layer.chain_id))
        os.rename(scratch, final)
        fsync_dir(os.path.dirname(final))

    def _remove_layer(self, chain: str) -> None:
        layer = self._layers.pop(chain)
        d = os.path.join(self._layerdb, "sha256", _hex(chain))
        trash = os.path.join(self._layerdb, "tmp", f"remove-{_hex(chain)}-{os.urandom(4).hex()}")
        os.rename(d, trash)   # metadata first: a crash leaves a stray driver dir, never a broken layer
        fsync_dir(os.path.dirname(d))
        self.driver.remove(layer.cache_id)
        remove_tree(trash)

    def layer_tar(self, chain: str) -> tuple[int, Iterator[bytes]]:
        """The layer's original uncompressed tar (its diff ID matches): (length, chunks)."""
        layer = self._layers[chain]
        split = os.path.join(self._layerdb, "sha256", _hex(chain), "tar-split.json.gz")
        if not os.path.exists(split):
            raise NotFound(f"layer {chain} has no tar-split data: it cannot be exported")
        return archive.tar_split_size(split), archive.reassemble(split, self.driver.diff_dir(layer.cache_id))

    def _used_chains(self) -> set[str]:
        used: set[str] = set()
        for image in self._images.values():
            used.update(image.chain_ids())
        for rw in self._rw.values():
            c = rw.parent
            while c and c not in used:
                used.add(c)
                c = self._layers[c].parent if c in self._layers else None
        return used

    # ---- images -----------------------------------------------------------------------------------

    def _make_image(self, config_bytes: bytes, parent: str = "") -> Image:
        config = json.loads(config_bytes)
        if not isinstance(config, dict):
            raise ValueError("image config is not a JSON object")
        image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        if not parent:
            parent = read_text(os.path.join(self._imgmeta, _hex(image_id), "parent"), "") or ""
        image = Image(image_id, config, 0, str(config.get("created") or ""), parent)
        image.size = sum(self._layers[c].size for c in image.chain_ids() if c in self._layers)
        return image

    def store_image(self, config_bytes: bytes, parent: str = "") -> Image:
        """Add an image from its exact config bytes; every layer of rootfs.diff_ids must be registered."""
        try:
            image = self._make_image(config_bytes, parent)
        except ValueError as exc:
            raise BadParameter(f"invalid image config: {exc}") from None
        missing = [c for c in image.chain_ids() if c not in self._layers]
        if missing:
            raise BadParameter(f"image config refers to a missing layer {missing[0]}")
        with self._lock:
            path = os.path.join(self._content, _hex(image.id))
            if not os.path.exists(path):
                atomic_write(path, config_bytes, 0o600)
            if parent:
                meta = os.path.join(self._imgmeta, _hex(image.id))
                os.makedirs(meta, 0o700, exist_ok=True)
                atomic_write(os.path.join(meta, "parent"), parent.encode())
            self._images[image.id] = image
        return image

    def images(self) -> list[Image]:
        return list(self._images.values())

    def image(self, image_id: str) -> Image:
        """Exact lookup by full ID ("sha256:..."); NotFound otherwise."""
        try:
            return self._images[image_id]
        except KeyError:
            raise NotFound(f"No such image: {image_id}") from None

    def resolve_image(self, ref_or_id: str) -> Image:
        """name[:tag], name@digest, full ID with or without sha256:, or an unambiguous ID prefix.

        A name that exists wins over an ID prefix, as in dockerd."""
        s = ref_or_id
        if is_image_id(s):
            full = s if s.startswith("sha256:") else "sha256:" + s
            if full in self._images:
                return self._images[full]
            raise NotFound(f"No such image: {s}")
        ref = parse_reference(s)
        image_id = self._refs.get(ref)
        if image_id is None and ref.digest and ("sha256:" + _hex(ref.digest)) in self._images:
            image_id = "sha256:" + _hex(ref.digest)
        if image_id is None:
            image_id = self._search_prefix(s)
        if image_id is None:
            raise NotFound(f"No such image: {ref.familiar()}")
        return self._images[image_id]

    def _search_prefix(self, s: str) -> str | None:
        prefix = s[len("sha256:"):] if s.startswith("sha256:") else s
        if not prefix or not set(prefix) <= _HEX:
            return None
        matches = [i for i in self._images if i[len("sha256:"):].startswith(prefix)]
        return matches[0] if len(matches) == 1 else None

    def image_refs(self, image_id: str) -> list[str]:
        """Tags and digests of the image as Docker shows them ("busybox:latest", "busybox@sha256:...")."""
        return sorted(r.familiar() for r in self._refs_of(image_id))

    def _refs_of(self, image_id: str) -> list[Reference]:
        return sorted((r for r, i in self._refs.items() if i == image_id), key=str)

    def find_image(self, image_id: str) -> Image | None:
        """Exact lookup by full ID; None when there is no such image (any more)."""
        return self._images.get(image_id)

    def references(self) -> list[Reference]:
        """Every tag and digest reference, sorted."""
        return sorted(self._refs, key=str)

    def children(self, image_id: str) -> list[Image]:
        return [i for i in self._images.values() if i.parent == image_id]

    # ---- references -------------------------------------------------------------------------------

    def tag(self, image_id: str, ref: str, allow_digest: bool = False) -> None:
        """Point `ref` at the image (any form resolve_image accepts). Digest references (pull) need
        allow_digest; a tag that pointed elsewhere moves."""
        image = self.resolve_image(image_id)
        r = parse_reference(ref)
        if r.digest and not allow_digest:
            raise BadParameter("refusing to create a tag with a digest reference")
        if r.tag:
            validate_tag(r.tag)
        with self._lock:
            self._refs[r] = image.id
            self._save_refs()

    def untag(self, ref: str) -> None:
        r = parse_reference(ref)
        with self._lock:
            if r not in self._refs:
                raise NotFound(f"No such image: {r.familiar()}")
            del self._refs[r]
            self._save_refs()

    def _save_refs(self) -> None:
        repos: dict[str, dict[str, str]] = {}
        for ref, image_id in sorted(self._refs.items(), key=lambda kv: str(kv[0])):
            repos.setdefault(ref.familiar_name(), {})[ref.familiar()] = image_id
        atomic_write_json(self._repos_path, {"Repositories": repos}, 0o600)

    # ---- delete -----------------------------------------------------------------------------------

    def delete_image(self, ref_or_id: str, force: bool = False,
                     in_use: Callable[[str], str | None] = lambda image_id: None,
                     running: Callable[[str], str | None] | None = None) -> list[dict]:
        """`docker rmi`: Docker's records [{"Untagged": "busybox:latest"}, {"Deleted": "sha256:..."}].

        in_use(image_id) returns the ID of a container using the image, or None (a soft conflict: force
        overrides it). running(image_id), when given, returns the ID of a running container using it
        (a hard conflict, never forced)."""
        with self._lock:
            image = self.resolve_image(ref_or_id)
            records: list[dict] = []
            refs = self._refs_of(image.id)
            if not _is_id_prefix(image.id, ref_or_id):
                ref = parse_reference(ref_or_id)
                user = in_use(image.id)
                if not force and user and _is_single_reference(refs):
                    raise Conflict(f"conflict: unable to remove repository reference \"{ref_or_id}\" (must force) - "
                                   f"container {short_id(user)} is using its referenced image {short_id(image.id)}")
                self._untag_into(ref, records)
                remaining = self._refs_of(image.id)
                if ref.digest is None and not any(r.digest is None and r.name == ref.name for r in remaining):
                    for r in remaining:   # the last tag of a repo takes the repo's digests with it
                        if r.digest and r.name == ref.name:
                            self._untag_into(r, records)
                if self._refs_of(image.id):
                    self._save_refs()
                    return records
            elif _is_single_reference(refs):
                self._check_conflict(image, force, in_use, running, ignore_refs=True)
                for r in refs:
                    self._untag_into(r, records)
            try:
                self._delete(image, records, force, in_use, running)
            finally:
                self._save_refs()
            return records

    def _untag_into(self, ref: Reference, records: list[dict]) -> None:
        if self._refs.pop(ref, None) is not None:
            records.append({"Untagged": ref.familiar()})

    def _check_conflict(self, image: Image, force: bool, in_use: Callable[[str], str | None],
                        running: Callable[[str], str | None] | None, ignore_refs: bool = False) -> None:
        def conflict(hard: bool, why: str) -> Conflict:
            how = "cannot be forced" if hard else "must be forced"
            return Conflict(f"conflict: unable to delete {short_id(image.id)} ({how}) - {why}")
        if self.children(image.id):
            raise conflict(True, "image has dependent child images")
        runner = running(image.id) if running else None
        if runner:
            raise conflict(True, f"image is being used by running container {short_id(runner)}")
        if force:
            return
        if not ignore_refs and self._refs_of(image.id):
            raise conflict(False, "image is referenced in multiple repositories")
        user = in_use(image.id)
        if user:
            raise conflict(False, f"image is being used by stopped container {short_id(user)}")

    def _delete(self, image: Image, records: list[dict], force: bool, in_use: Callable[[str], str | None],
                running: Callable[[str], str | None] | None, quiet: bool = False) -> None:
        try:
            self._check_conflict(image, force, in_use, running)
        except Conflict:
            if quiet:
                return
            raise
        for r in self._refs_of(image.id):
            self._untag_into(r, records)
        remove_tree(os.path.join(self._imgmeta, _hex(image.id)))
        try:
            os.unlink(os.path.join(self._content, _hex(image.id)))
        except FileNotFoundError:
            pass
        del self._images[image.id]
        records.append({"Deleted": image.id})
        used = self._used_chains()
        for chain in reversed(image.chain_ids()):
            if chain in used or chain not in self._layers:
                break
            self._remove_layer(chain)
            records.append({"Deleted": chain})
        parent = self._images.get(image.parent) if image.parent else None
        if parent and not self._refs_of(parent.id) and not self.children(parent.id):
            self._delete(parent, records, False, in_use, running, quiet=True)   # dangling build parents go too

    # ---- import / load / save ---------------------------------------------------------------------

    def import_tar(self, stream: BinaryIO | Iterable[bytes] | bytes, ref: str | None = None,
                   changes: list[str] | None = None, message: str = "") -> str:
        """`docker import`: a rootfs tarball becomes a one-layer image; returns the image ID."""
        r = parse_reference(ref) if ref else None
        if r is not None and r.digest:
            raise BadParameter("refusing to create a tag with a digest reference")
        container_config = apply_changes(default_container_config(), changes or [])
        layer = self.register_layer(stream)
        now = _now_rfc3339()
        config = {
            "architecture": _host_arch(),
            "config": container_config,
            "created": now,
            "history": [{"created": now, "comment": message or "Imported from -"}],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        }
        if message:
            config["comment"] = message
        image = self.store_image(json.dumps(config, separators=(",", ":")).encode())
        if r is not None:
            with self._lock:
                self._refs[r] = image.id
                self._save_refs()
        return image.id

    def load(self, stream: BinaryIO | Iterable[bytes] | bytes) -> list[str]:
        """`docker load` of a docker-archive or an OCI layout; returns Docker's lines
        ("Loaded image: busybox:latest", "Loaded image ID: sha256:...")."""
        work = tempfile.mkdtemp(prefix="load-", dir=self.tmp)
        try:
            try:   # spooled to disk, never memory: the archive may be large and its index comes last
                archive.extract_layer(stream, work, whiteouts=None)
            except archive.ArchiveError as exc:
                raise BadParameter(str(exc)) from None
            if os.path.isfile(os.path.join(work, "manifest.json")):
                return self._load_docker_archive(work)
            if os.path.isfile(os.path.join(work, "index.json")):
                return self._load_oci(work)
            raise BadParameter("invalid archive: it has neither manifest.json nor index.json")
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _load_docker_archive(self, work: str) -> list[str]:
        manifest = _read_json(work, "manifest.json")
        if not isinstance(manifest, list):
            raise BadParameter("invalid manifest.json: not a list")
        out: list[str] = []
        for entry in manifest:
            config_bytes = _read_bytes(work, entry["Config"])
            image = self._load_image(work, config_bytes, entry.get("Layers") or [])
            tags = entry.get("RepoTags") or []
            out.extend(self._load_tags(image.id, tags))
            if not tags:
                out.append(f"Loaded image ID: {image.id}")
        return out

    def _load_oci(self, work: str) -> list[str]:
        out: list[str] = []
        for desc, name in _oci_manifests(work, _read_json(work, "index.json")):
            manifest = json.loads(_read_bytes(work, _blob_path(desc["digest"])))
            config_bytes = _read_bytes(work, _blob_path(manifest["config"]["digest"]))
            layers = [_blob_path(layer["digest"]) for layer in manifest.get("layers") or []]
            image = self._load_image(work, config_bytes, layers)
            if name:
                out.extend(self._load_tags(image.id, [name]))
            else:
                out.append(f"Loaded image ID: {image.id}")
        return out

    def _load_image(self, work: str, config_bytes: bytes, layer_paths: list[str]) -> Image:
        try:
            diff_ids = json.loads(config_bytes)["rootfs"]["diff_ids"] or []
        except (ValueError, KeyError, TypeError):
            raise BadParameter("invalid image config: no rootfs.diff_ids") from None
        if len(diff_ids) != len(layer_paths):
            raise BadParameter(f"invalid manifest, layers length mismatch: expected {len(diff_ids)}, "
                               f"got {len(layer_paths)}")
        parent: str | None = None
        for path, diff in zip(layer_paths, diff_ids):
            chain = chain_id(parent, diff)
            if chain not in self._layers:
                with open(archive.secure_join(work, path), "rb") as f:
                    self.register_layer(f, parent, expected_diff_id=diff)
            parent = chain
        return self.store_image(config_bytes)

    def _load_tags(self, image_id: str, tags: list[str]) -> list[str]:
        out = []
        with self._lock:
            for tag in tags:
                r = parse_reference(tag)
                old = self._refs.get(r)
                if old and old != image_id:
                    out.append(f"The image {r.familiar()} already exists, renaming the old one with ID {old} "
                               "to empty string")
                self._refs[r] = image_id
                out.append(f"Loaded image: {r.familiar()}")
            self._save_refs()
        return out

    def save(self, refs: list[str]) -> Iterator[bytes]:
        """`docker save`: a tar with Docker 25's layout (OCI index.json + oci-layout + blobs/sha256, and
        the docker-archive manifest.json + repositories)."""
        selected = self._select_for_save(refs)   # resolve first: errors before any byte is sent
        return self._save_stream(selected)

    def _select_for_save(self, refs: list[str]) -> list[tuple[Image, list[Reference]]]:
        chosen: dict[str, list[Reference]] = {}
        for s in refs:
            named = None if is_image_id(s) else _try_parse(s)
            if named is not None and named.tag is None and named.digest is None:
                repo = [(r, i) for r, i in self._refs.items() if r.name == named.name and r.digest is None]
                if repo:   # a bare repository name saves every tag of it
                    for r, i in repo:
                        _add_unique(chosen.setdefault(i, []), r)
                    continue
            image = self.resolve_image(s)
            tags = chosen.setdefault(image.id, [])
            if named is not None and image.id == self._refs.get(parse_reference(s)):
                _add_unique(tags, parse_reference(s))
        return [(self._images[i], tags) for i, tags in chosen.items()]

    def _save_stream(self, selected: list[tuple[Image, list[Reference]]]) -> Iterator[bytes]:
        written: set[str] = set()
        manifest, index, repositories = [], [], {}
        yield archive.tar_dir_entry("blobs")
        yield archive.tar_dir_entry("blobs/sha256")

        def blob(digest: str, size: int, chunks: Iterable[bytes]) -> Iterator[bytes]:
            if digest not in written:
                written.add(digest)
                yield from archive.tar_file_entry(_blob_path(digest), size, chunks)

        for image, tags in selected:
            config_bytes = self.config_bytes(image.id)
            yield from blob(image.id, len(config_bytes), [config_bytes])
            layer_descs = []
            for chain, diff in zip(image.chain_ids(), image.diff_ids()):
                size, chunks = self.layer_tar(chain)
                yield from blob(diff, size, chunks)
                layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff,
                                    "size": size})
            oci_manifest = json.dumps({
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": image.id,
                           "size": len(config_bytes)},
                "layers": layer_descs}, separators=(",", ":")).encode()
            manifest_digest = "sha256:" + hashlib.sha256(oci_manifest).hexdigest()
            yield from blob(manifest_digest, len(oci_manifest), [oci_manifest])
            desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                    "size": len(oci_manifest)}
            for t in tags:
                index.append({**desc, "annotations": {"io.containerd.image.name": str(t),
                                                      "org.opencontainers.image.ref.name": t.tag or ""}})
                if image.diff_ids():
                    repositories.setdefault(t.familiar_name(), {})[t.tag] = _hex(image.diff_ids()[-1])
            if not tags:
                index.append(desc)
            manifest.append({"Config": _blob_path(image.id), "RepoTags": [t.familiar() for t in tags],
                             "Layers": [_blob_path(d) for d in image.diff_ids()]})
        for name, obj in (("index.json", {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                          "manifests": index}),
                          ("manifest.json", manifest), ("oci-layout", {"imageLayoutVersion": "1.0.0"}),
                          ("repositories", repositories)):
            data = json.dumps(obj, separators=(",", ":")).encode()
            yield from archive.tar_file_entry(name, len(data), [data])
        yield archive.TAR_END

    def config_bytes(self, image_id: str) -> bytes:
        """The image's config JSON exactly as stored (its sha256 is the image ID)."""
        with open(os.path.join(self._content, _hex(image_id)), "rb") as f:
            return f.read()

    # ---- container read-write layers --------------------------------------------------------------

    def create_rw(self, container_id: str, image_id: str | None) -> None:
        """The container's writable layer on top of the image's layers (image None or layer-less: empty)."""
        top = None
        if image_id:
            chains = self.resolve_image(image_id).chain_ids()
            top = chains[-1] if chains else None
        with self._lock:   # the name is taken here; the files (new names only) are written unlocked
            if container_id in self._rw or container_id in self._creating:
                raise Conflict(f"the read-write layer of container {container_id} already exists")
            self._creating.add(container_id)
            parent_cache = self._layers[top].cache_id if top else None
        try:
            mount_id = _random_id()
            # overlay2: the driver dir is re-created from this metadata after a crash (_load_rw), so only
            # this metadata is fsynced: its files, the scratch dir, the folder it is renamed into
            self.driver.create(mount_id, parent_cache, durable=not isinstance(self.driver, Overlay2Driver))
            scratch = tempfile.mkdtemp(prefix="write-set-", dir=os.path.join(self._layerdb, "tmp"))
            _write_new(os.path.join(scratch, "mount-id"), mount_id.encode(), True)
            if top:
                _write_new(os.path.join(scratch, "parent"), top.encode(), True)
            os.chmod(scratch, 0o700)
            fsync_dir(scratch)
            os.rename(scratch, os.path.join(self._layerdb, "mounts", container_id))
            fsync_dir(os.path.join(self._layerdb, "mounts"))
            with self._lock:
                self._rw[container_id] = RWLayer(container_id, mount_id, top)
        finally:
            with self._lock:
                self._creating.discard(container_id)

    def _rw_layer(self, container_id: str) -> RWLayer:
        try:
            return self._rw[container_id]
        except KeyError:
            raise NotFound(f"No such container: {container_id} (no read-write layer)") from None

    def mount_rw(self, container_id: str) -> str:
        """Mount the container's root filesystem (reference-counted within this process); its path."""
        with self._lock:
            rw = self._rw_layer(container_id)
            count = self._mounts.counts.get(container_id, 0)
            if count == 0:
                self._mounts.paths[container_id] = self.driver.mount(rw.mount_id)
            self._mounts.counts[container_id] = count + 1
            return self._mounts.paths[container_id]

    def unmount_rw(self, container_id: str) -> None:
        with self._lock:
            rw = self._rw_layer(container_id)
            count = self._mounts.counts.get(container_id, 0) - 1
            if count > 0:
                self._mounts.counts[container_id] = count
                return
            self._mounts.counts.pop(container_id, None)
            self._mounts.paths.pop(container_id, None)
            self.driver.unmount(rw.mount_id)   # also after a restart, when this process never mounted it

    def graph_driver(self, container_id: str | None = None, image_id: str | None = None) -> dict:
        """`docker inspect`'s "GraphDriver": {"Name": "overlay2", "Data": {...}} of a container or an image."""
        cache = None
        if container_id is not None:
            cache = self._rw_layer(container_id).mount_id
        elif image_id is not None:
            chains = self.resolve_image(image_id).chain_ids()
            cache = self._layers[chains[-1]].cache_id if chains else None
        return {"Name": self.driver_name, "Data": self.driver.data(cache) if cache else None}

    def rw_metadata(self, container_id: str) -> dict | None:
        """GraphDriver.Data of a container: {"LowerDir", "MergedDir", "UpperDir", "WorkDir"}; None on vfs."""
        return self.driver.data(self._rw_layer(container_id).mount_id)

    def rw_dir(self, container_id: str) -> str:
        """Where the container's own changes live (overlay2: the upper dir; vfs: the whole tree)."""
        return self.driver.diff_dir(self._rw_layer(container_id).mount_id)

    def remove_rw(self, container_id: str) -> None:
        with self._lock:
            rw = self._rw.get(container_id)
            if rw is None:
                return
            self._mounts.counts.pop(container_id, None)
            self._mounts.paths.pop(container_id, None)
            meta = os.path.join(self._layerdb, "mounts", container_id)
            trash = os.path.join(self._layerdb, "tmp", f"remove-mount-{container_id}-{os.urandom(4).hex()}")
            os.rename(meta, trash)
            self.driver.remove(rw.mount_id)
            remove_tree(trash)
            del self._rw[container_id]

    # ---- commit (the builder's RUN/COPY steps; issue 8) -------------------------------------------

    def commit_rw(self, container_id: str) -> Layer | None:
        """The container's changes as a new layer on its image's top layer; None when nothing changed.

        overlay2: the upper dir with whiteouts turned back into `.wh.` entries; vfs: a diff against the
        parent layer's tree. execd's mount points (/etc/hosts, /proc, ...) are left out."""
        rw = self._rw_layer(container_id)
        top = self.driver.diff_dir(rw.mount_id)
        overlay = self.driver_name == "overlay2"
        if overlay:
            lowers = self.driver.lowers(rw.mount_id)
        else:
            lowers = [self.driver.diff_dir(self._layers[rw.parent].cache_id)] if rw.parent else []
        chunks = archive.write_diff_tar(top, lowers, overlay)
        first = next(chunks)
        if first == archive.TAR_END:
            return None   # nothing changed: no layer (dockerd: empty_layer in the history)
        return self.register_layer(itertools.chain([first], chunks), rw.parent)


# ---------------------------------------------------------------------------------------------------
# delete helpers (dockerd's rules)

def _is_id_prefix(image_id: str, s: str) -> bool:
    return image_id.startswith(s) or image_id.startswith("sha256:" + s)


def _is_single_reference(refs: list[Reference]) -> bool:
    """At most one tag, and every reference in one repository."""
    if len(refs) <= 1:
        return len(refs) == 1
    tags = [r for r in refs if r.digest is None]
    if len(tags) > 1:
        return False
    single = tags[0] if tags else refs[0]
    digest_repos = {r.name for r in refs if r.digest is not None}
    return len(digest_repos) == 1 and single.name in digest_repos


def _try_parse(s: str) -> Reference | None:
    try:
        return parse_reference(s, default_tag=False)
    except BadParameter:
        return None


def _add_unique(refs: list[Reference], ref: Reference) -> None:
    if ref not in refs:
        refs.append(ref)


# ---------------------------------------------------------------------------------------------------
# archive reading helpers

def _blob_path(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if not hexpart or "/" in digest:
        raise BadParameter(f"invalid digest {digest!r}")
    return f"blobs/{algo}/{hexpart}"


def _read_bytes(work: str, rel: str) -> bytes:
    try:
        with open(archive.secure_join(work, rel), "rb") as f:
            return f.read()
    except (FileNotFoundError, IsADirectoryError):
        raise BadParameter(f"invalid archive: {rel} is missing") from None


def _read_json(work: str, rel: str):
    try:
        return json.loads(_read_bytes(work, rel))
    except ValueError as exc:
        raise BadParameter(f"invalid archive: {rel}: {exc}") from None


_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json")


def _oci_manifests(work: str, index: dict, name: str | None = None) -> Iterator[tuple[dict, str | None]]:
    """(manifest descriptor, familiar name or None) for each image of an OCI layout index."""
    for desc in index.get("manifests") or []:
        ann = desc.get("annotations") or {}
        own = ann.get("io.containerd.image.name")
        ref_name = ann.get("org.opencontainers.image.ref.name", "")
        if not own and (":" in ref_name or "/" in ref_name):
            own = ref_name   # a full reference; a bare tag names no repository
        own_ref = _try_parse(own) if own else None
        label = (own_ref.familiar() if own_ref else None) or name
        if desc.get("mediaType") in _INDEX_TYPES:
            nested = json.loads(_read_bytes(work, _blob_path(desc["digest"])))
            yield from _oci_manifests(work, nested, label)
        else:
            platform_ = desc.get("platform") or {}
            if platform_ and platform_.get("architecture") not in (None, _host_arch()):
                continue   # a multi-platform index: keep the image for this machine
            yield desc, label


# ---------------------------------------------------------------------------------------------------
# `docker import --change`: Dockerfile-like lines applied to a container config

def default_container_config() -> dict:
    return {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
            "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
            "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
            "OnBuild": None, "Labels": None}


def apply_changes(config: dict, changes: list[str]) -> dict:
    """Apply CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME, STOPSIGNAL lines (JSON or shell
    form) to a container config; BadParameter for anything else."""
    for change in changes:
        for line in change.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            instr, _, rest = line.partition(" ")
            handler = _CHANGE_HANDLERS.get(instr.upper())
            if handler is None:
                raise BadParameter(f"{instr.lower()} is not a valid change command")
            handler(config, rest.strip())
    return config


def _json_or_shell(rest: str) -> list[str]:
    if rest.startswith("["):
        try:
            value = json.loads(rest)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
        except ValueError:
            pass
    return ["/bin/sh", "-c", rest]


def _pairs(rest: str, what: str) -> list[tuple[str, str]]:
    words = _split_words(rest)
    if words and "=" not in words[0]:   # legacy form: "ENV key value with spaces"
        key, _, value = rest.partition(" ")
        return [(key, value.strip())]
    out = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq or not key:
            raise BadParameter(f"{what} names can not be blank" if not key else f"Syntax error - can't find = in {w!r}. Must be of the form: name=value")
        out.append((key, value))
    return out


def _split_words(rest: str) -> list[str]:
    import shlex   # only for import/commit --change: not resident in an idle daemon
    try:
        return shlex.split(rest)
    except ValueError as exc:
        raise BadParameter(f"invalid change: {exc}") from None


def _change_cmd(config: dict, rest: str) -> None:
    config["Cmd"] = _json_or_shell(rest)


def _change_entrypoint(config: dict, rest: str) -> None:
    config["Entrypoint"] = _json_or_shell(rest)


def _change_env(config: dict, rest: str) -> None:
    env = list(config.get("Env") or [])
    for key, value in _pairs(rest, "ENV"):
        env = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={value}"]
    config["Env"] = env


def _change_label(config: dict, rest: str) -> None:
    labels = dict(config.get("Labels") or {})
    labels.update(_pairs(rest, "LABEL"))
    config["Labels"] = labels


def _change_expose(config: dict, rest: str) -> None:
    ports = dict(config.get("ExposedPorts") or {})
    for spec in rest.split():
        port, _, proto = spec.partition("/")
        proto = (proto or "tcp").lower()
        low, _, high = port.partition("-")
        if not low.isdigit() or (high and not high.isdigit()) or proto not in ("tcp", "udp", "sctp"):
            raise BadParameter(f"invalid containerPort: {spec}")
        for p in range(int(low), int(high or low) + 1):
            ports[f"{p}/{proto}"] = {}
    config["ExposedPorts"] = ports


def _change_volume(config: dict, rest: str) -> None:
    volumes = dict(config.get("Volumes") or {})
    paths = _json_or_shell(rest)
    for path in (rest.split() if paths[:2] == ["/bin/sh", "-c"] else paths):
        if not path:
            raise BadParameter("VOLUME specified can not be an empty string")
        volumes[path] = {}
    config["Volumes"] = volumes


def _change_workdir(config: dict, rest: str) -> None:
    config["WorkingDir"] = posixpath.join("/", config.get("WorkingDir") or "/", rest)


def _change_user(config: dict, rest: str) -> None:
    config["User"] = rest


def _change_stopsignal(config: dict, rest: str) -> None:
    config["StopSignal"] = rest


_CHANGE_HANDLERS: dict[str, Callable[[dict, str], None]] = {
    "CMD": _change_cmd, "ENTRYPOINT": _change_entrypoint, "ENV": _change_env, "LABEL": _change_label,
    "EXPOSE": _change_expose, "VOLUME": _change_volume, "WORKDIR": _change_workdir, "USER": _change_user,
    "STOPSIGNAL": _change_stopsignal,
}
