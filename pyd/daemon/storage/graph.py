"""Storage: layer store, image store, reference store over one graph driver, as dockerd lays them out.

    <root>/<driver>/...                                         (the driver's own layout: drivers/)
    <root>/image/<driver>/layerdb/sha256/<chain>/{diff,size,cache-id,parent,tar-split.json.gz}
    <root>/image/<driver>/layerdb/mounts/<container-id>/{mount-id,parent}
    <root>/image/<driver>/imagedb/content/sha256/<hex>          (the exact config bytes; hex = their sha256)
    <root>/image/<driver>/imagedb/metadata/sha256/<hex>/parent
    <root>/image/<driver>/repositories.json

Metadata writes are atomic; a new Graph on the same root sees everything, and entries a crash left half
written are skipped with a warning.
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable, Iterator

from pyd.daemon.errors import BadParameter, Conflict, NotFound
from pyd.daemon.fsutil import atomic_write, atomic_write_json, fsync_dir, read_text
from pyd.daemon.runtime import native
from pyd.daemon.storage import archive, fschanges, image_archive, trees
from pyd.daemon.storage.changes import apply_changes, default_container_config
from pyd.daemon.storage.drivers import GraphDriver, GraphDriverError, StorageOptions, pick_driver
from pyd.daemon.storage.trees import remove_tree
from pyd.formats import rfc3339
from pyd.formats.platforms import Platform, config_fields, host_platform
from pyd.formats.reference import Reference, is_image_id, parse_reference, validate_tag

__all__ = ["Graph", "Image", "Layer", "GraphDriverError", "Reference", "parse_reference", "chain_id",
           "apply_changes"]

log = logging.getLogger("pyd.graph")

_HEX = set("0123456789abcdef")


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


class LayerHold:
    """The layers one image operation (load, import, pull, commit) registered or builds on. While it runs no
    image removal takes them; when it ends, those no image or container uses go: a failed operation leaves
    no layer behind. Made by Graph.holding() (or LayerHold() and Graph.release())."""

    def __init__(self) -> None:
        self.chains: list[str] = []


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

    def __init__(self, root: str, driver: str | None = None, opts: StorageOptions | None = None,
                 platform: Platform | None = None):
        self.root = os.path.abspath(root)
        # the machine's platform: what imported, committed and built images say, what pulls pick
        self.platform: Platform = platform or host_platform()
        self.tmp = os.path.join(self.root, "tmp")
        os.makedirs(self.tmp, 0o700, exist_ok=True)
        self.driver: GraphDriver = pick_driver(self.root, driver, opts)
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
        self._held: dict[str, int] = {}     # chain ID -> how many running operations hold it (LayerHold)
        self._mounts = _Mounts()
        self._load_layers()
        self._load_images()
        self._load_refs()
        self._load_rw()
        self._sweep_tmp()
        self._sweep_unused_layers()
        self._sweep_stray_dirs()

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
            if mount_id and (parent is None or parent in self._layers):
                try:
                    self.driver.repair(mount_id, self._layers[parent].cache_id if parent else None)
                except OSError as exc:
                    log.warning("container layer %s: cannot repair %s: %s", cid, mount_id, exc)
            if not mount_id or not self.driver.exists(mount_id):
                log.warning("skipping container layer %s: incomplete", cid)
                continue
            self._rw[cid] = RWLayer(cid, mount_id, parent)

    def _driver_dirs_in_use(self) -> set[str]:
        """The driver directories the loaded layers and container layers name."""
        return {layer.cache_id for layer in self._layers.values()} | {rw.mount_id for rw in self._rw.values()}

    def _sweep_tmp(self) -> None:
        """What a crash left in layerdb/tmp: a removal renames the metadata there first and a registration
        writes it there last, so the driver dirs named in it (cache-id, mount-id, a tar-split's name) belong
        to nothing loaded; they go, then the leftovers themselves."""
        used = self._driver_dirs_in_use()
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

    def _sweep_unused_layers(self) -> None:
        """At start-up no image operation runs: a layer no image or container uses was registered by one
        that a crash interrupted (its image was never stored)."""
        used = self._used_chains()
        unused = [c for c in self._layers if c not in used]
        while unused:
            parents = {layer.parent for layer in self._layers.values()}
            leaves = [c for c in unused if c not in parents]    # top layers first: a parent goes after its child
            if not leaves:
                break
            for chain in leaves:
                log.warning("repair: removing layer %s that no image uses (left by an interrupted image operation)",
                            chain[7:19])
                try:
                    self._remove_layer(chain)
                except OSError as exc:
                    log.warning("repair: could not remove layer %s: %s", chain[7:19], exc)
                    return
            unused = [c for c in unused if c in self._layers]

    def _sweep_stray_dirs(self) -> None:
        """A crash inside the driver's create (before the registration's own records) leaves a layer
        directory nothing names; at start-up no operation runs, so every unnamed one goes."""
        used = self._driver_dirs_in_use()
        for cache_id in sorted(self.driver.cache_ids()):
            if _is_cache_id(cache_id) and cache_id not in used:
                log.warning("repair: removing layer directory %s that no layer names", cache_id[:12])
                try:
                    self.driver.remove(cache_id)
                except OSError as exc:
                    log.warning("repair: could not remove %s: %s", cache_id[:12], exc)

    # ---- layers -----------------------------------------------------------------------------------

    def holding(self) -> contextlib.AbstractContextManager[LayerHold]:
        """`with graph.holding() as hold:` the layers the block registers (register_layer(..., hold=hold))
        or relies on (hold_existing) stay until it ends; then the ones no image uses go."""
        @contextlib.contextmanager
        def hold_for_block() -> Iterator[LayerHold]:
            hold = LayerHold()
            try:
                yield hold
            finally:
                self.release(hold)
        return hold_for_block()

    def hold_existing(self, hold: LayerHold, chain: str) -> bool:
        """Hold the layer `chain` when it exists (True): an image removal meanwhile keeps it."""
        with self._lock:
            if chain not in self._layers:
                return False
            self._hold(hold, chain)
            return True

    def _hold(self, hold: LayerHold, chain: str) -> None:
        hold.chains.append(chain)
        self._held[chain] = self._held.get(chain, 0) + 1

    def release(self, hold: LayerHold) -> None:
        """End of the operation that held these layers: remove those nothing else uses, top first."""
        with self._lock:
            for chain in hold.chains:
                left = self._held.get(chain, 0) - 1
                if left > 0:
                    self._held[chain] = left
                else:
                    self._held.pop(chain, None)
            used = self._used_chains()
            for chain in reversed(dict.fromkeys(hold.chains)):
                if (chain not in self._layers or chain in used or chain in self._held
                        or any(layer.parent == chain for layer in self._layers.values())):
                    continue
                log.info("removing layer %s: the operation that registered it failed", chain[7:19])
                try:
                    self._remove_layer(chain)
                except OSError as exc:     # start-up repair takes what cannot go now
                    log.warning("could not remove layer %s: %s", chain[7:19], exc)
            hold.chains.clear()

    def free_space(self) -> int:
        """Bytes free on the data root: what one extraction may take at most (a gzip bomb stops there)."""
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def has_layer(self, chain: str) -> bool:
        return chain in self._layers

    def layer(self, chain: str) -> Layer:
        return self._layers[chain]

    def register_layer(self, stream: BinaryIO | Iterable[bytes] | bytes, parent: str | None = None,
                       expected_diff_id: str | None = None, hold: LayerHold | None = None) -> Layer:
        """Apply a layer tar (plain or compressed) on top of the layer `parent` (a chain ID).

        The same content on the same parent is stored once. Raises BadParameter for a bad or unsafe tar
        or a diff ID other than `expected_diff_id`. With `hold`, the layer is held for that operation."""
        parent_layer = self._layers[parent] if parent else None
        cache_id = _random_id()
        split_tmp = os.path.join(self._layerdb, "tmp", f"{cache_id}-tar-split.json.gz")
        open(split_tmp, "wb").close()   # first: a crash from here on leaves a name start-up repair finds
        try:
            self.driver.create(cache_id, parent_layer.cache_id if parent_layer else None)
        except BaseException:
            remove_tree(split_tmp)
            raise
        try:
            result = archive.extract_layer(stream, self.driver.diff_dir(cache_id), self.driver.whiteouts, split_tmp,
                                           limit=self.free_space())
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
            else:
                layer = Layer(chain, result.diff_id, parent, cache_id, result.size)
                try:
                    self._write_layer_meta(layer, split_tmp)
                except BaseException:
                    self._discard(cache_id, split_tmp)
                    raise
                self._layers[chain] = layer
            if hold is not None:
                self._hold(hold, chain)
            return self._layers[chain]

    def _discard(self, cache_id: str, split_tmp: str) -> None:
        self.driver.remove(cache_id)
        remove_tree(split_tmp)

    def _write_layer_meta(self, layer: Layer, split_tmp: str) -> None:
        """All files in a scratch dir, then one rename: the layer appears whole or not at all."""
        scratch = tempfile.mkdtemp(prefix="write-set-", dir=os.path.join(self._layerdb, "tmp"))
        trees.write_new(os.path.join(scratch, "diff"), layer.diff_id.encode(), True)
        trees.write_new(os.path.join(scratch, "size"), str(layer.size).encode(), True)
        trees.write_new(os.path.join(scratch, "cache-id"), layer.cache_id.encode(), True)
        if layer.parent:
            trees.write_new(os.path.join(scratch, "parent"), layer.parent.encode(), True)
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
            quiet = False
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
                quiet = True    # dockerd: the untag is done; a conflict now only keeps the image
            elif _is_single_reference(refs):
                self._check_conflict(image, force, in_use, running, ignore_refs=True)
                for r in refs:
                    self._untag_into(r, records)
            try:
                self._delete(image, records, force, in_use, running, quiet=quiet)
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
            if chain in used or chain not in self._layers or chain in self._held:
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
        with self.holding() as hold:
            return self._import_layer(stream, r, container_config, message, hold)

    def _import_layer(self, stream: BinaryIO | Iterable[bytes] | bytes, r: Reference | None,
                      container_config: dict, message: str, hold: LayerHold) -> str:
        layer = self.register_layer(stream, hold=hold)
        now = rfc3339.now(rfc3339.FIXED)
        config = {
            **config_fields(self.platform),
            "config": container_config,
            "created": now,
            "history": [{"created": now, "comment": message or "Imported from -"}],
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
                archive.extract_layer(stream, work, whiteouts=None, limit=self.free_space())
            except archive.ArchiveError as exc:   # dockerd's words for the untar it runs in a child
                raise BadParameter(f"Error processing tar file(exit status 1): {exc}") from None
            if os.path.lexists(os.path.join(work, "manifest.json")):
                return self._load_archived(work, image_archive.docker_archive_images(work))
            if os.path.lexists(os.path.join(work, "index.json")):
                return self._load_archived(work, image_archive.oci_images(work, self.platform.architecture))
            raise BadParameter("invalid archive: it has neither manifest.json nor index.json")
        finally:
            try:
                remove_tree(work)
            except OSError as exc:
                log.warning("could not remove %s: %s", work, exc)

    def _load_archived(self, work: str, found: Iterable[image_archive.ArchivedImage]) -> list[str]:
        out: list[str] = []
        for entry in found:
            with self.holding() as hold:
                image = self._load_image(work, image_archive.read_member(work, entry.config), entry.layers, hold)
            out.extend(self._load_tags(image.id, entry.names))
            if not entry.names:
                out.append(f"Loaded image ID: {image.id}")
        return out

    def _load_image(self, work: str, config_bytes: bytes, layer_paths: list[str], hold: LayerHold) -> Image:
        try:
            diff_ids = json.loads(config_bytes)["rootfs"]["diff_ids"] or []
        except (ValueError, KeyError, TypeError):
            raise BadParameter("invalid image config: no rootfs.diff_ids") from None
        if not isinstance(diff_ids, list) or not all(isinstance(d, str) and d.startswith("sha256:")
                                                     for d in diff_ids):
            raise BadParameter("invalid image config: rootfs.diff_ids must be a list of sha256 digests")
        if len(diff_ids) != len(layer_paths):
            raise BadParameter(f"invalid manifest, layers length mismatch: expected {len(diff_ids)}, "
                               f"got {len(layer_paths)}")
        parent: str | None = None
        for path, diff in zip(layer_paths, diff_ids):
            chain = chain_id(parent, diff)
            if not self.hold_existing(hold, chain):
                with image_archive.open_member(work, path) as f:
                    self.register_layer(f, parent, expected_diff_id=diff, hold=hold)
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
                yield from archive.tar_file_entry(image_archive.blob_path(digest), size, chunks)

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
            manifest.append({"Config": image_archive.blob_path(image.id),
                             "RepoTags": [t.familiar() for t in tags],
                             "Layers": [image_archive.blob_path(d) for d in image.diff_ids()]})
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
            # the driver may skip its fsyncs (its repair() rebuilds the dir from this metadata at load), so
            # this metadata is fsynced: its files, the scratch dir, the folder it is renamed into
            self.driver.create_rw(mount_id, parent_cache)
            scratch = tempfile.mkdtemp(prefix="write-set-", dir=os.path.join(self._layerdb, "tmp"))
            trees.write_new(os.path.join(scratch, "mount-id"), mount_id.encode(), True)
            if top:
                trees.write_new(os.path.join(scratch, "parent"), top.encode(), True)
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

    def rw_ids(self) -> list[str]:
        """The read-write layers' owners: container IDs, and the builder's scratch layers (build-*)."""
        with self._lock:
            return list(self._rw)

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

    def changes(self, container_id: str) -> list[dict]:
        """`docker diff`: what the container changed over its image ([{"Path", "Kind"}], see fschanges),
        without execd's mount points (/etc/hosts, /proc, ...), as the driver's diff leaves them out."""
        rw = self._rw_layer(container_id)
        parent = self._layers[rw.parent].cache_id if rw.parent else None
        lowers = self.driver.lower_dirs(rw.mount_id, parent)
        return fschanges.changes_of(self.driver.diff(rw.mount_id, parent), lowers)

    # ---- commit (the builder's RUN/COPY steps, docker commit) --------------------------------------

    def commit_rw(self, container_id: str, hold: LayerHold | None = None) -> Layer | None:
        """The container's changes as a new layer on its image's top layer; None when nothing changed.

        The driver's diff, which leaves out execd's mount points (/etc/hosts, /proc, ...)."""
        rw = self._rw_layer(container_id)
        chunks = self.driver.diff(rw.mount_id, self._layers[rw.parent].cache_id if rw.parent else None)
        first = next(chunks)
        if first == archive.TAR_END:
            return None   # nothing changed: no layer (dockerd: empty_layer in the history)
        return self.register_layer(itertools.chain([first], chunks), rw.parent, hold=hold)


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
