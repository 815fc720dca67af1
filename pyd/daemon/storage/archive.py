"""Safe tar reading and writing for image layers.

Extraction reads the tar as a stream (never whole in memory), computes the diff ID (sha256 of the
uncompressed tar) on the way, and never creates, changes or deletes anything outside the destination:
names and hard-link targets with a `..` component are refused, absolute names are taken relative to the
root (as dockerd does), symlinks met in parent directories are resolved as if the root were `/`, hard
links must point inside the layer. It never recurses, so any depth the kernel allows is extracted.

Whiteouts (`.wh.NAME`, `.wh..wh..opq`) are converted for the graph driver that stores the layer:
"overlay" (char device 0/0, xattr trusted.overlay.opaque=y) or "vfs" (delete from the copy of the parent).
A whiteout must name an entry (not `.`, `..` or nothing) of a real directory of the layer: one reached
through a symlink is refused, since it would delete what the link points at.

Beside the files, extraction can record a "tar-split" log: the tar's header bytes verbatim plus, for each
regular file, its path and size. Replaying it against the extracted directory gives back the exact tar,
so a saved or pushed layer keeps its diff ID.
"""
from __future__ import annotations

import base64
import bz2
import errno
import gzip
import hashlib
import io
import json
import logging
import lzma
import os
import posixpath
import stat
import tarfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator

from pyd.daemon.storage import trees

log = logging.getLogger("pyd.archive")

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
XATTR_PAX_PREFIX = "SCHILY.xattr."
CHUNK = 1 << 20
BLOCK = tarfile.BLOCKSIZE
TAR_END = b"\0" * (2 * BLOCK)
_MAX_SYMLINK_HOPS = 255
# errors a member's own path or type causes (too long, a file where a folder must be, a symlink loop):
# the tar's fault, refused as such; any other OSError is the system's (ENOSPC, EIO, ...)
_MEMBER_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EEXIST, errno.EISDIR,
                            errno.ENOTEMPTY})


class ArchiveError(ValueError):
    """A tar that cannot be applied safely or is malformed."""


class SpaceExceeded(OSError):
    """The uncompressed tar is bigger than the space it may take (the data root's free space)."""

    def __init__(self, limit: int) -> None:
        super().__init__(errno.ENOSPC, f"no space left on device: the layer's content is larger than the "
                                       f"{limit} bytes free on the data root")


@dataclass
class ExtractResult:
    diff_id: str    # "sha256:<hex>" of the uncompressed tar stream
    size: int       # bytes of regular file content (hard links counted once)


# ---------------------------------------------------------------------------------------------------
# input streams

class _IterReader(io.RawIOBase):
    """A file-like view of an iterable of bytes chunks (an HTTP body, a generator)."""

    def __init__(self, chunks: Iterable[bytes]):
        self._it = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        while not self._buf:
            try:
                self._buf = bytes(next(self._it))
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class _Prefixed(io.RawIOBase):
    """`head` followed by the rest of `reader`: lets us sniff the compression magic without seeking."""

    def __init__(self, head: bytes, reader: BinaryIO):
        self._head = head
        self._reader = reader

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        readinto = getattr(self._reader, "readinto", None)
        if readinto is not None:
            return readinto(b)        # straight into the caller's buffer: no copy
        data = self._reader.read(len(b))
        b[:len(data)] = data
        return len(data)


def as_reader(stream: BinaryIO | Iterable[bytes] | bytes) -> BinaryIO:
    if isinstance(stream, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(stream))
    if hasattr(stream, "read"):
        return stream  # type: ignore[return-value]
    return io.BufferedReader(_IterReader(stream), CHUNK)  # type: ignore[arg-type]


def decompressed(stream: BinaryIO | Iterable[bytes] | bytes) -> BinaryIO:
    """The uncompressed bytes of a plain, gzip, bzip2 or xz stream."""
    reader = as_reader(stream)
    head = _read_full(reader, 6)
    raw = io.BufferedReader(_Prefixed(head, reader), CHUNK)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(raw)  # type: ignore[return-value]
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw)  # type: ignore[return-value]
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise ArchiveError("zstd-compressed layers are not supported")
    return raw  # type: ignore[return-value]


def _read_full(reader: BinaryIO, n: int) -> bytes:
    """n bytes (fewer only at the end); one read's bytes are returned as they are, pieces are joined once."""
    data = reader.read(n)
    if len(data) >= n or not data:
        return data
    parts, got = [data], len(data)
    while got < n:
        data = reader.read(n - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


class _TarSource:
    """The file object tarfile reads from: forward-only, hashes every byte, records headers to tar-split."""

    def __init__(self, reader: BinaryIO, split: _TarSplitWriter | None, limit: int | None = None):
        self._reader = reader
        self._split = split
        self._limit = limit
        self.hash = hashlib.sha256()
        self.pos = 0
        self.recording = True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = CHUNK
        if self._limit is not None:      # one byte past the limit is enough to know: a bomb stops here
            n = min(n, self._limit + 1 - self.pos)
        data = _read_full(self._reader, n) if n > 0 else b""
        self.hash.update(data)
        self.pos += len(data)
        if self._limit is not None and self.pos > self._limit:
            raise SpaceExceeded(self._limit)
        if self.recording and self._split is not None:
            self._split.raw(data)
        return data

    def tell(self) -> int:
        return self.pos

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        target = offset if whence == 0 else self.pos + offset
        if target < self.pos:
            raise ArchiveError("tar stream cannot seek backwards")
        while self.pos < target:
            if not self.read(min(CHUNK, target - self.pos)):
                break
        return self.pos

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


# ---------------------------------------------------------------------------------------------------
# tar-split: enough to rebuild the exact tar from the extracted files

class _TarSplitWriter:
    def __init__(self, path: str | None):
        self._f = gzip.open(path, "wt", compresslevel=1) if path else None
        self._raw = bytearray()

    def raw(self, data: bytes) -> None:
        if self._f is not None:
            self._raw += data

    def file(self, name: str, size: int) -> None:
        if self._f is None:
            return
        self._flush_raw()
        self._f.write(json.dumps({"type": "file", "name": name, "size": size}) + "\n")

    def _flush_raw(self) -> None:
        if self._raw and self._f is not None:
            self._f.write(json.dumps({"type": "raw", "payload": base64.b64encode(self._raw).decode()}) + "\n")
            self._raw = bytearray()

    def close(self) -> None:
        if self._f is not None:
            self._flush_raw()
            self._f.close()
            self._f = None


def _tar_split_records(split_path: str) -> Iterator[dict]:
    with gzip.open(split_path, "rt") as f:
        for line in f:
            yield json.loads(line)


def tar_split_size(split_path: str) -> int:
    """Length in bytes of the tar that `reassemble` will produce."""
    total = 0
    for rec in _tar_split_records(split_path):
        total += rec["size"] if rec["type"] == "file" else len(base64.b64decode(rec["payload"]))
    return total


def reassemble(split_path: str, layer_dir: str) -> Iterator[bytes]:
    """The layer's original tar bytes, from its tar-split log and its extracted files."""
    for rec in _tar_split_records(split_path):
        if rec["type"] == "raw":
            yield base64.b64decode(rec["payload"])
            continue
        remaining = rec["size"]
        if remaining:
            with open(secure_join(layer_dir, rec["name"]), "rb") as f:
                while remaining:
                    data = f.read(min(CHUNK, remaining))
                    if not data:
                        raise ArchiveError(f"layer file {rec['name']} is shorter than recorded")
                    remaining -= len(data)
                    yield data


# ---------------------------------------------------------------------------------------------------
# paths

def clean_member_name(name: str) -> str:
    """A tar member name as a path relative to the layer root ("" for the root itself).

    Absolute names are relative to the root, as dockerd treats them; a name that climbs out is refused."""
    rel = posixpath.normpath(name.lstrip("/")) if name.strip("/") else "."
    if rel == ".." or rel.startswith("../"):
        raise ArchiveError(f"{name!r} is outside of the layer")
    return "" if rel == "." else rel


def layer_member_name(name: str, what: str = "member") -> str:
    """A layer member's name (or hard-link target) as a path relative to the layer root ("" for the root).

    Leading slashes are dropped (absolute names are relative to the root, as dockerd treats them); a `..`
    component anywhere is refused, even one that would stay inside."""
    parts = [p for p in name.split("/") if p and p != "."]
    if ".." in parts:
        raise ArchiveError(f"invalid {what} {name!r}: a path with '..' would leave the layer")
    if "\0" in name:
        raise ArchiveError(f"invalid {what} {name!r}: NUL in a name")
    return "/".join(parts)


def secure_join(root: str, rel: str) -> str:
    """root/rel with every symlink met on the way resolved as if `root` were `/`: never outside root.

    The last component is resolved too when it is a symlink; callers that create the last component
    resolve only the parent."""
    parts = [p for p in rel.split("/") if p and p != "."]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        hops += 1
        if hops > _MAX_SYMLINK_HOPS:
            raise OSError(errno.ELOOP, f"too many levels of symbolic links resolving {rel} in {root}")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p and p != "."] + parts
    return os.path.join(root, *resolved)


# ---------------------------------------------------------------------------------------------------
# extraction

class _Extractor:
    def __init__(self, dest: str, whiteouts: str | None, src: _TarSource, split: _TarSplitWriter):
        if whiteouts not in (None, "overlay", "vfs"):
            raise ValueError(f"unknown whiteout format {whiteouts!r}")
        self.dest = dest
        self.whiteouts = whiteouts
        self.src = src
        self.split = split
        self.unpacked: set[str] = set()
        self.dir_times: list[tuple[str, str, int]] = []   # (rel, path, mtime): applied last
        self.size = 0
        # folders known to be real directories all the way down from dest: a deep chain's members are
        # then not resolved component by component each (quadratic in lstat, each linear in the depth);
        # forgotten whenever extraction removes anything
        self.real_dirs: set[str] = {""}

    def member(self, info: tarfile.TarInfo) -> None:
        try:
            self._member(info)
        except OSError as exc:
            if exc.errno in _MEMBER_ERRNOS:
                raise ArchiveError(f"cannot extract {info.name!r}: {os.strerror(exc.errno)}") from None
            raise

    def _member(self, info: tarfile.TarInfo) -> None:
        name = layer_member_name(info.name)
        if not name:
            return   # the root entry "./": the root's metadata belongs to the driver
        parent_rel, base = posixpath.split(name)
        if self.whiteouts and base.startswith(WHITEOUT_PREFIX):
            self._whiteout(info, parent_rel, base)
            return
        parent = self._parent_dir(parent_rel)
        path = os.path.join(parent, base)
        self._clear_for(path, info)
        self.unpacked.add(name)
        if info.islnk():
            self._hardlink(path, info)
            return
        self._create(path, name, info)
        self._apply_metadata(name, path, info)
        if info.isdir() and parent == os.path.join(self.dest, parent_rel):
            self.real_dirs.add(name)

    def _parent_dir(self, parent_rel: str) -> str:
        """The host path of a member's folder (made when missing), symlinks resolved inside dest."""
        if parent_rel in self.real_dirs:
            return os.path.join(self.dest, parent_rel)
        parent = secure_join(self.dest, parent_rel)
        trees.make_dirs(parent)
        if parent == os.path.join(self.dest, parent_rel):
            self.real_dirs.add(parent_rel)
        return parent

    def _remove(self, path: str) -> None:
        self.real_dirs = {""}
        trees.remove_tree(path)

    def _clear_for(self, path: str, info: tarfile.TarInfo) -> None:
        """Replace whatever is at `path`, except a directory that stays a directory."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if info.isdir() and stat.S_ISDIR(st.st_mode):
            return
        self._remove(path)

    def _create(self, path: str, name: str, info: tarfile.TarInfo) -> None:
        if info.isdir():
            if not os.path.isdir(path) or os.path.islink(path):
                os.mkdir(path, 0o700)
        elif info.isreg():
            if info.issparse():
                raise ArchiveError(f"{info.name}: sparse files are not supported")
            self._write_file(path, name, info.size)
        elif info.issym():
            os.symlink(info.linkname, path)
            self.size += len(os.fsencode(info.linkname))   # a link's own size, as dockerd's walk counts it
        elif info.ischr() or info.isblk():
            kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(info.devmajor, info.devminor))
        elif info.isfifo():
            os.mkfifo(path, 0o600)
        else:
            log.warning("skipping tar entry %s of unsupported type %r", info.name, info.type)

    def _write_file(self, path: str, name: str, size: int) -> None:
        self.split.file(name, size)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self.src.recording = False   # file content is not part of the tar-split log
        try:
            remaining = size
            while remaining:
                data = self.src.read(min(CHUNK, remaining))
                if not data:
                    raise ArchiveError(f"unexpected end of tar stream in {name}")
                remaining -= len(data)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
        finally:
            self.src.recording = True
            os.close(fd)
        self.size += size

    def _hardlink(self, path: str, info: tarfile.TarInfo) -> None:
        target_rel = layer_member_name(info.linkname, f"hard link {info.name!r} ->")
        if not target_rel:
            raise ArchiveError(f"invalid hard link {info.name!r} -> {info.linkname!r}")
        t_parent, t_base = posixpath.split(target_rel)
        target = os.path.join(secure_join(self.dest, t_parent), t_base)
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            raise ArchiveError(f"invalid hard link {info.name!r} -> {info.linkname!r}: target not in layer") from None
        if stat.S_ISDIR(st.st_mode):
            raise ArchiveError(f"invalid hard link {info.name!r} -> {info.linkname!r}: target is a directory")
        os.link(target, path, follow_symlinks=False)

    def _apply_metadata(self, name: str, path: str, info: tarfile.TarInfo) -> None:
        os.chown(path, info.uid, info.gid, follow_symlinks=False)
        for key, value in info.pax_headers.items():
            if key.startswith(XATTR_PAX_PREFIX):
                self._setxattr(path, key[len(XATTR_PAX_PREFIX):], value.encode("utf-8", "surrogateescape"))
        if not info.issym():
            os.chmod(path, info.mode & 0o7777)   # after chown, which drops setuid/setgid
        mtime_ns = int(info.mtime * 1_000_000_000)
        if info.isdir():
            self.dir_times.append((name, path, mtime_ns))   # children created later would bump it
        else:
            os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)

    @staticmethod
    def _setxattr(path: str, name: str, value: bytes) -> None:
        try:
            os.setxattr(path, name, value, follow_symlinks=False)
        except OSError as exc:
            log.warning("cannot set xattr %s on %s: %s", name, path, exc)

    def _whiteout(self, info: tarfile.TarInfo, parent_rel: str, base: str) -> None:
        parent = self._real_dir(info, parent_rel)
        if base == WHITEOUT_OPAQUE:
            self._opaque(parent, parent_rel)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return   # aufs bookkeeping (.wh..wh.plnk, ...): nothing to apply
        hidden = base[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", ".."):
            raise ArchiveError(f"invalid whiteout {info.name!r}: it names {hidden or 'nothing'!r}, "
                               "not an entry of its directory")
        victim = os.path.join(parent, hidden)
        if self.whiteouts == "vfs":
            self._remove(victim)
            return
        trees.make_dirs(parent)
        self._remove(victim)
        os.mknod(victim, stat.S_IFCHR, os.makedev(0, 0))
        os.chown(victim, info.uid, info.gid, follow_symlinks=False)

    def _real_dir(self, info: tarfile.TarInfo, parent_rel: str) -> str:
        """The host path of a whiteout's folder, which no symlink may lead to."""
        if parent_rel in self.real_dirs:
            return os.path.join(self.dest, parent_rel)
        path = self.dest
        for part in parent_rel.split("/") if parent_rel else []:
            path = os.path.join(path, part)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue   # made by make_dirs where a whiteout needs its folder
            if stat.S_ISLNK(st.st_mode):
                raise ArchiveError(f"invalid whiteout {info.name!r}: its directory is reached through the "
                                   f"symbolic link {os.path.relpath(path, self.dest)!r}")
        return path

    def _opaque(self, parent: str, parent_rel: str) -> None:
        if self.whiteouts == "overlay":
            trees.make_dirs(parent)
            os.setxattr(parent, OVERLAY_OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        if not os.path.isdir(parent) or os.path.islink(parent):
            return
        for child in os.listdir(parent):   # keep what this layer already put there
            if posixpath.join(parent_rel, child) not in self.unpacked:
                self._remove(os.path.join(parent, child))

    def finish(self) -> None:
        for rel, path, mtime_ns in reversed(self.dir_times):
            parent_rel, base = posixpath.split(rel)
            try:
                if parent_rel not in self.real_dirs and os.path.join(secure_join(self.dest, parent_rel), base) != path:
                    continue   # a later member put a symlink on its way: the old path may lead outside
                os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
            except FileNotFoundError:
                continue   # removed by a later member
            except OSError as exc:
                if exc.errno not in _MEMBER_ERRNOS:
                    raise


def extract_layer(stream: BinaryIO | Iterable[bytes] | bytes, dest: str, whiteouts: str | None = None,
                  tar_split: str | None = None, limit: int | None = None) -> ExtractResult:
    """Extract a (possibly compressed) layer tar into `dest`; return its diff ID and content size.

    whiteouts: "overlay", "vfs", or None to keep `.wh.` files as plain files.
    tar_split: where to write the log that `reassemble` replays.
    limit: the most uncompressed bytes read (SpaceExceeded, an ENOSPC, at the first byte past it).
    Raises ArchiveError on an unsafe or malformed tar."""
    split = _TarSplitWriter(tar_split)
    try:
        src = _TarSource(decompressed(stream), split, limit)
        extractor = _Extractor(dest, whiteouts, src, split)
        tar = _open_tar(src)
        last: tarfile.TarInfo | None = None
        try:
            while tar is not None:
                try:
                    info = tar.next()
                except tarfile.ReadError:
                    # Go's tar reader ends the archive at an EOF within the last entry's padding (the docker
                    # CLI's `build -f -` context ends so, without padding or end blocks); tarfile refuses it
                    if last is not None and src.pos >= last.offset_data + last.size:
                        break
                    raise
                if info is None:
                    break
                tar.members.clear()   # tarfile keeps every member otherwise: unbounded on big layers
                extractor.member(info)
                last = info
        except tarfile.TarError as exc:
            raise ArchiveError(f"invalid tar: {exc}") from None
        src.drain()   # the end-of-archive blocks and padding belong to the diff ID too
        extractor.finish()
    except (EOFError, zlib.error, lzma.LZMAError) as exc:
        raise ArchiveError(f"invalid tar stream: {exc}") from None
    except OSError as exc:
        if exc.errno is None:   # BadGzipFile and friends: bad input, not a system failure
            raise ArchiveError(f"invalid tar stream: {exc}") from None
        raise
    finally:
        split.close()
    return ExtractResult("sha256:" + src.hash.hexdigest(), extractor.size)


def _open_tar(src: _TarSource) -> tarfile.TarFile | None:
    """A TarFile reading `src` sequentially; None for an empty stream (an empty layer)."""
    try:
        return tarfile.TarFile(fileobj=src, mode="r")  # type: ignore[arg-type]
    except tarfile.ReadError:
        if src.pos == 0:
            return None
        # Go's archive/tar words, which dockerd reports: a first block cut short, or one that is no header
        raise ArchiveError("unexpected EOF" if src.pos < BLOCK else "archive/tar: invalid tar header") from None


# ---------------------------------------------------------------------------------------------------
# writing

def tar_header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def tar_padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def tar_file_entry(name: str, size: int, chunks: Iterable[bytes], mode: int = 0o644,
                   mtime: float = 0) -> Iterator[bytes]:
    """One regular-file member streamed from `chunks` (which must add up to `size`)."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, mtime
    yield tar_header(info)
    written = 0
    for chunk in chunks:
        written += len(chunk)
        yield chunk
    if written != size:
        raise ArchiveError(f"{name}: wrote {written} bytes, header says {size}")
    yield tar_padding(size)


def tar_dir_entry(name: str, mode: int = 0o755, mtime: float = 0) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, mtime
    return tar_header(info)


def tar_symlink_entry(name: str, target: str, mtime: float = 0) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, mtime
    return tar_header(info)


def write_tar(root: str, overlay_whiteouts: bool = False) -> Iterator[bytes]:
    """A tar of the tree at `root` (sorted, hard links kept, security.capability kept).

    overlay_whiteouts: turn overlay's 0/0 char devices and opaque dirs into `.wh.` entries (a layer diff)."""
    inodes: dict[tuple[int, int], str] = {}
    for rel, st in _walk(root):
        path = os.path.join(root, rel)
        if overlay_whiteouts and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            parent, base = posixpath.split(rel)
            info = _info_for(posixpath.join(parent, WHITEOUT_PREFIX + base), st, tarfile.REGTYPE)
            info.mode, info.size = 0o600, 0
            yield tar_header(info)
            continue
        yield from _entry(path, rel, st, inodes)
        if overlay_whiteouts and stat.S_ISDIR(st.st_mode) and _is_opaque(path):
            info = _info_for(posixpath.join(rel, WHITEOUT_OPAQUE), st, tarfile.REGTYPE)
            info.mode, info.size = 0o600, 0
            yield tar_header(info)
    yield TAR_END


def _walk(root: str, rel: str = "") -> Iterator[tuple[str, os.stat_result]]:
    for name in sorted(os.listdir(os.path.join(root, rel) if rel else root)):
        child = posixpath.join(rel, name) if rel else name
        st = os.lstat(os.path.join(root, child))
        yield child, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(root, child)


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _info_for(name: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = st.st_mtime_ns // 1_000_000_000
    return info


def _entry(path: str, rel: str, st: os.stat_result, inodes: dict[tuple[int, int], str]) -> Iterator[bytes]:
    mode = st.st_mode
    key = (st.st_dev, st.st_ino)
    if stat.S_ISREG(mode) and st.st_nlink > 1 and key in inodes:
        info = _info_for(rel, st, tarfile.LNKTYPE)
        info.linkname = inodes[key]
        yield tar_header(info)
        return
    kind = {stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFREG: tarfile.REGTYPE, stat.S_IFLNK: tarfile.SYMTYPE,
            stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE,
            stat.S_IFIFO: tarfile.FIFOTYPE}.get(stat.S_IFMT(mode))
    if kind is None:
        return   # sockets have no tar form
    info = _info_for(rel, st, kind)
    if kind == tarfile.SYMTYPE:
        info.linkname = os.readlink(path)
    elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    try:
        cap = os.getxattr(path, "security.capability", follow_symlinks=False)
        info.pax_headers[XATTR_PAX_PREFIX + "security.capability"] = cap.decode("utf-8", "surrogateescape")
    except OSError:
        pass
    if kind != tarfile.REGTYPE:
        yield tar_header(info)
        return
    if st.st_nlink > 1:
        inodes[key] = rel
    info.size = st.st_size
    yield tar_header(info)
    with open(path, "rb") as f:
        remaining = st.st_size
        while remaining:
            data = f.read(min(CHUNK, remaining))
            if not data:   # the file shrank under us: keep the archive well-formed
                data = b"\0" * remaining
            remaining -= len(data)
            yield data
    yield tar_padding(st.st_size)


# ---------------------------------------------------------------------------------------------------
# a container's changes as a layer tar (the builder's and docker commit's)

# Mount points execd makes in a container's root (dockerd keeps them in its "-init" layer): never committed.
COMMIT_SKIP = frozenset({"proc", "sys", "dev", ".dockerenv", "etc/hosts", "etc/hostname", "etc/resolv.conf",
                         "etc/mtab"})


def write_diff_tar(top: str, lowers: list[str], overlay: bool) -> Iterator[bytes]:
    """A layer tar of what `top` changes over `lowers` (topmost first).

    overlay: `top` is an overlay upper dir (whiteouts are 0/0 char devices, opaque dirs carry the xattr);
    otherwise `top` is a full tree (vfs) and deletions are found by comparing with lowers[0]. Directories
    that only exist because something below them changed are written only when something below is."""
    inodes: dict[tuple[int, int], str] = {}

    def lower_stat(rel: str) -> os.stat_result | None:
        for lower in lowers:
            try:
                return os.lstat(os.path.join(lower, rel))
            except (FileNotFoundError, NotADirectoryError):
                continue
        return None

    def changed(rel: str, st: os.stat_result, old: os.stat_result | None) -> bool:
        if old is None or stat.S_IFMT(old.st_mode) != stat.S_IFMT(st.st_mode):
            return True
        if (old.st_mode, old.st_uid, old.st_gid) != (st.st_mode, st.st_uid, st.st_gid):
            return True
        if stat.S_ISDIR(st.st_mode):
            return False
        if overlay:
            return True   # in an upper dir only because it was copied up or written
        if stat.S_ISLNK(st.st_mode):
            return os.readlink(os.path.join(top, rel)) != os.readlink(os.path.join(lowers[0], rel))
        return (old.st_size, old.st_mtime_ns) != (st.st_size, st.st_mtime_ns)

    def whiteout(rel: str, st: os.stat_result) -> bytes:
        parent, base = posixpath.split(rel)
        info = _info_for(posixpath.join(parent, WHITEOUT_PREFIX + base), st, tarfile.REGTYPE)
        info.mode, info.size = 0o600, 0
        return tar_header(info)

    def visit(rel: str, pending: list[bytes]) -> Iterator[bytes]:
        here = os.path.join(top, rel) if rel else top
        names = sorted(os.listdir(here))
        if not overlay and lowers:
            old_dir = os.path.join(lowers[0], rel) if rel else lowers[0]
            gone = sorted(set(os.listdir(old_dir)) - set(names)) if os.path.isdir(old_dir) else []
            for name in gone:
                child = posixpath.join(rel, name) if rel else name
                if child in COMMIT_SKIP:
                    continue
                yield from pending
                pending.clear()
                yield whiteout(child, os.lstat(here))
        for name in names:
            child = posixpath.join(rel, name) if rel else name
            if child in COMMIT_SKIP:
                continue
            path = os.path.join(top, child)
            st = os.lstat(path)
            if overlay and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                yield from pending
                pending.clear()
                yield whiteout(child, st)
                continue
            if stat.S_ISDIR(st.st_mode):
                header = b"".join(_entry(path, child, st, inodes))
                opaque = overlay and _is_opaque(path)
                if opaque:
                    info = _info_for(posixpath.join(child, WHITEOUT_OPAQUE), st, tarfile.REGTYPE)
                    info.mode, info.size = 0o600, 0
                    header += tar_header(info)
                if opaque or changed(child, st, lower_stat(child)):
                    yield from pending
                    pending.clear()
                    yield header
                    yield from visit(child, [])
                else:
                    mine = pending + [header]
                    yield from visit(child, mine)
                    if len(mine) < len(pending) + 1:   # something below was written: so were we
                        pending.clear()
                continue
            if not changed(child, st, lower_stat(child)):
                continue
            yield from pending
            pending.clear()
            yield from _entry(path, child, st, inodes)

    yield from visit("", [])
    yield TAR_END


EMPTY_TAR_DIFF_ID = "sha256:" + hashlib.sha256(TAR_END).hexdigest()
