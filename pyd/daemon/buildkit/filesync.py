"""The receiving side of fsutil's DiffCopy: a local directory of the client's session, copied into ours.

The daemon calls /moby.filesync.v1.FileSync/DiffCopy on the session with the dir name and the filters as
metadata (the client applies them). The client sends a STAT packet for every entry (walk order, parents
first; an empty STAT ends the list), the receiver asks for each regular file's content by its index in
that list (REQ), the client answers with DATA packets (an empty one ends a file). A FIN from the receiver
ends the transfer; the client answers FIN and ends the call.
"""
from __future__ import annotations

import os
import posixpath
import stat as st
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

from pyd.daemon.buildkit import messages as m
from pyd.daemon.buildkit.grpc import GrpcError, INTERNAL, NOT_FOUND

if TYPE_CHECKING:
    from pyd.daemon.buildkit.session import Session

DIFFCOPY = "/moby.filesync.v1.FileSync/DiffCopy"

# Go's os.FileMode type bits, as fsutil puts them in Stat.mode
GO_DIR, GO_SYMLINK, GO_DEVICE, GO_PIPE, GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
GO_SETUID, GO_SETGID, GO_CHARDEV, GO_STICKY, GO_IRREGULAR = 1 << 23, 1 << 22, 1 << 21, 1 << 20, 1 << 19
GO_TYPE = GO_DIR | GO_SYMLINK | GO_PIPE | GO_SOCKET | GO_DEVICE | GO_CHARDEV | GO_IRREGULAR


class SyncError(Exception):
    """The transfer failed (the client's error, or entries that cannot be placed)."""


@dataclass
class SyncRequest:
    name: str                                   # the local name: "context", "dockerfile", ...
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    follow: list[str] = field(default_factory=list)

    def metadata(self) -> list[tuple[str, str]]:
        """The call's metadata, values URL-escaped (with a `-encoded` marker) where gRPC headers cannot
        carry them, as BuildKit's FSSync sends them."""
        out: list[tuple[str, str]] = []
        for key, values in (("include-patterns", self.include), ("exclude-patterns", self.exclude),
                            ("followpaths", self.follow), ("dir-name", [self.name])):
            if not values:
                continue
            if any(not v.isascii() or not v.isprintable() for v in values):
                out += [(key, quote(v, safe="")) for v in values]
                out.append((key + "-encoded", "1"))
            else:
                out += [(key, v) for v in values]
        return out


@dataclass
class SyncResult:
    files: int = 0
    bytes: int = 0


def _perm(go_mode: int) -> int:
    mode = go_mode & 0o777
    if go_mode & GO_SETUID:
        mode |= st.S_ISUID
    if go_mode & GO_SETGID:
        mode |= st.S_ISGID
    if go_mode & GO_STICKY:
        mode |= st.S_ISVTX
    return mode


def _target(dest: str, rel: str) -> str:
    """dest/rel, refusing names that would leave dest."""
    norm = posixpath.normpath(rel)
    if not rel or norm.startswith("../") or norm == ".." or posixpath.isabs(norm) or norm == ".":
        raise SyncError(f"invalid path in the transfer: {rel!r}")
    return os.path.join(dest, norm)


class _Entries:
    """Places what the STAT packets describe under dest; regular files are opened for their DATA."""

    def __init__(self, dest: str) -> None:
        self.dest = dest
        self.open: dict[int, tuple[int, str, dict]] = {}    # ID -> (fd, path, stat)
        self.dirs: list[tuple[str, dict]] = []             # modes and times are set last
        self.paths: dict[str, str] = {}                    # rel -> host path (for hard links)
        self.result = SyncResult()

    def add(self, index: int, stat: dict) -> bool:
        """Create the entry; True when its content must be requested."""
        rel = stat["path"]
        path = _target(self.dest, rel)
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o755, exist_ok=True)
        mode = stat["mode"]
        if os.path.lexists(path) and not (mode & GO_DIR and os.path.isdir(path)):
            os.unlink(path)
        self.paths[rel] = path
        if mode & GO_DIR:
            os.makedirs(path, 0o755, exist_ok=True)
            self.dirs.append((path, stat))
            return False
        if mode & GO_SYMLINK:
            os.symlink(stat["linkname"], path)
            self._owner(path, stat, follow=False)
            return False
        if mode & (GO_PIPE | GO_SOCKET | GO_DEVICE | GO_CHARDEV | GO_IRREGULAR):
            return False    # devices, sockets and pipes have no place in a build context
        if stat["linkname"]:
            source = self.paths.get(stat["linkname"])
            if source is None:
                raise SyncError(f"hard link {rel!r} to unknown {stat['linkname']!r}")
            os.link(source, path)
            return False
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        self.open[index] = (fd, path, stat)
        self.result.files += 1
        return True

    def data(self, index: int, chunk: bytes) -> bool:
        """Content for a file; an empty chunk ends it. True when it was the file's end."""
        entry = self.open.get(index)
        if entry is None:
            raise SyncError(f"invalid file request {index}")
        fd, path, stat = entry
        if chunk:
            os.write(fd, chunk)
            self.result.bytes += len(chunk)
            return False
        os.close(fd)
        del self.open[index]
        self._finish(path, stat)
        return True

    def _owner(self, path: str, stat: dict, follow: bool = True) -> None:
        try:
            os.chown(path, stat["uid"], stat["gid"], follow_symlinks=follow)
        except OSError:
            pass

    def _finish(self, path: str, stat: dict) -> None:
        self._owner(path, stat)
        os.chmod(path, _perm(stat["mode"]))
        mtime = stat["modTime"]
        os.utime(path, ns=(mtime, mtime))

    def close(self) -> None:
        for fd, _, _ in self.open.values():
            os.close(fd)
        self.open.clear()
        for path, stat in reversed(self.dirs):   # children first: their times are set after they are made
            self._finish(path, stat)


async def receive(session: Session, request: SyncRequest, dest: str) -> SyncResult:
    """Copy the session's local dir `request.name` (filtered by the client) into the existing dir dest."""
    if not session.supports(DIFFCOPY):
        raise GrpcError(INTERNAL, "no local sources enabled")
    call = await session.call(DIFFCOPY, request.metadata())
    entries = _Entries(dest)
    index = 0
    wanted = 0
    listed = False
    try:
        while True:
            try:
                raw = await call.recv()
            except GrpcError as exc:
                if exc.code == NOT_FOUND:
                    raise SyncError(exc.message) from None
                raise SyncError(f"failed to transfer {request.name}: {exc.message}") from None
            if raw is None:
                if listed and not wanted:
                    break
                raise SyncError(f"the transfer of {request.name} ended early")
            packet = m.PACKET.decode(raw)
            kind = packet["type"]
            if kind == m.PACKET_STAT:
                if packet["stat"] is None:
                    listed = True
                    if not wanted:
                        await call.send(m.PACKET.encode({"type": m.PACKET_FIN}))
                        await call.close()
                    continue
                if entries.add(index, packet["stat"]):
                    wanted += 1
                    await call.send(m.PACKET.encode({"type": m.PACKET_REQ, "ID": index}))
                index += 1
            elif kind == m.PACKET_DATA:
                if entries.data(packet["ID"], packet["data"]):
                    wanted -= 1
                    if listed and not wanted:
                        await call.send(m.PACKET.encode({"type": m.PACKET_FIN}))
                        await call.close()
            elif kind == m.PACKET_ERR:
                raise SyncError(f"error from sender: {packet['data'].decode(errors='replace')}")
            elif kind == m.PACKET_FIN:
                pass    # the client's answer to ours; its call ends next
    except BaseException:
        call.cancel()
        raise
    finally:
        entries.close()
    return entries.result
