"""The sending side of the client's FileSend service: a build result copied back into the client's session.

The daemon calls /moby.filesync.v1.FileSend/DiffCopy with the exporter's index as metadata (the client
picks its target by it). For a directory target (`-o type=local`) the stream carries fsutil packets with
the roles of the context transfer reversed: we send a STAT for every entry (sorted walk, parents first;
an empty STAT ends the list), the client REQuests each regular file's content by its index, we answer with
DATA packets (an empty one ends a file), its FIN ends the transfer (we answer FIN and close our half). For
a file target (`-o type=tar`, `-o -`) the stream is the raw tar as BytesMessages, ended by closing our half.
"""
from __future__ import annotations

import asyncio
import os
import stat as st
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

from pyd.daemon.buildkit import messages as m
from pyd.daemon.buildkit.filesync import (GO_CHARDEV, GO_DEVICE, GO_DIR, GO_PIPE, GO_SETGID, GO_SETUID,
                                          GO_SOCKET, GO_STICKY, GO_SYMLINK)
from pyd.daemon.buildkit.grpc import GrpcError

if TYPE_CHECKING:
    from pyd.daemon.buildkit.grpc import GrpcCall
    from pyd.daemon.buildkit.session import Session

FILESEND = "/moby.filesync.v1.FileSend/DiffCopy"
EXPORTER_ID = "buildkit-attachable-exporter-id"
CHUNK = 256 << 10       # well under grpc-go's 4 MiB message limit


class SendError(Exception):
    """The client refused or broke off the transfer."""


def go_mode(mode: int) -> int:
    """A stat st_mode as Go's os.FileMode bits, as fsutil puts them in Stat.mode."""
    out = mode & 0o777
    for bit, go in ((st.S_ISUID, GO_SETUID), (st.S_ISGID, GO_SETGID), (st.S_ISVTX, GO_STICKY)):
        if mode & bit:
            out |= go
    if st.S_ISDIR(mode):
        out |= GO_DIR
    elif st.S_ISLNK(mode):
        out |= GO_SYMLINK
    elif st.S_ISBLK(mode):
        out |= GO_DEVICE
    elif st.S_ISCHR(mode):
        out |= GO_DEVICE | GO_CHARDEV
    elif st.S_ISFIFO(mode):
        out |= GO_PIPE
    elif st.S_ISSOCK(mode):
        out |= GO_SOCKET
    return out


@dataclass
class Entry:
    rel: str                # slash-separated, relative to the root
    path: str               # on this host
    stat: dict              # the fsutil Stat
    regular: bool           # its content may be requested


def walk(root: str) -> Iterator[Entry]:
    """Every entry under root in fsutil's order (each directory's names sorted bytewise, children right
    after their directory); a second name of a hard-linked file carries the first as its linkname."""
    seen: dict[tuple[int, int], str] = {}

    def visit(host: str, rel: str) -> Iterator[Entry]:
        with os.scandir(host) as it:
            names = sorted((e.name for e in it), key=os.fsencode)
        for name in names:
            path = os.path.join(host, name)
            sub = f"{rel}/{name}" if rel else name
            s = os.lstat(path)
            stat = {"path": sub, "mode": go_mode(s.st_mode), "uid": s.st_uid, "gid": s.st_gid,
                    "modTime": s.st_mtime_ns}
            regular = st.S_ISREG(s.st_mode)
            if regular:
                stat["size"] = s.st_size
                if s.st_nlink > 1:
                    first = seen.setdefault((s.st_dev, s.st_ino), sub)
                    if first != sub:
                        stat["linkname"], regular = first, False
            elif st.S_ISLNK(s.st_mode):
                stat["linkname"] = os.readlink(path)
                stat["size"] = len(stat["linkname"])
            elif st.S_ISBLK(s.st_mode) or st.S_ISCHR(s.st_mode):
                stat["devmajor"], stat["devminor"] = os.major(s.st_rdev), os.minor(s.st_rdev)
            yield Entry(sub, path, stat, regular)
            if st.S_ISDIR(s.st_mode):
                yield from visit(path, sub)
    yield from visit(root, "")


async def _recv(call: GrpcCall, what: str) -> bytes | None:
    try:
        return await call.recv()
    except GrpcError as exc:
        raise SendError(f"failed to {what}: {exc.message}") from None


async def send_dir(session: Session, entries: list[Entry], exporter_id: int,
                   progress: Callable[[int], None]) -> None:
    """Copy the walked entries into the client's directory target; progress(bytes sent so far)."""
    _check(session)
    call = await session.call(FILESEND, [(EXPORTER_ID, str(exporter_id))])
    sent = 0
    try:
        for entry in entries:
            await call.send(m.PACKET.encode({"type": m.PACKET_STAT, "stat": entry.stat}))
        await call.send(m.PACKET.encode({"type": m.PACKET_STAT}))
        while True:
            raw = await _recv(call, "copy files")
            if raw is None:
                raise SendError("the client ended the transfer early")
            packet = m.PACKET.decode(raw)
            kind = packet["type"]
            if kind == m.PACKET_REQ:
                index = packet["ID"]
                if index >= len(entries) or not entries[index].regular:
                    raise SendError(f"invalid file id {index}")
                with open(entries[index].path, "rb") as f:
                    while chunk := await asyncio.to_thread(f.read, CHUNK):
                        await call.send(m.PACKET.encode({"type": m.PACKET_DATA, "ID": index, "data": chunk}))
                        sent += len(chunk)
                        progress(sent)
                await call.send(m.PACKET.encode({"type": m.PACKET_DATA, "ID": index}))
            elif kind == m.PACKET_FIN:
                await call.send(m.PACKET.encode({"type": m.PACKET_FIN}))
                await call.close()
                while await _recv(call, "copy files") is not None:
                    pass
                return
            elif kind == m.PACKET_ERR:
                raise SendError(f"error from receiver: {packet['data'].decode(errors='replace')}")
    except BaseException:
        call.cancel()
        raise


async def send_file(session: Session, path: str, exporter_id: int, progress: Callable[[int], None]) -> None:
    """Stream the file at path (a tar) to the client's file target."""
    _check(session)
    call = await session.call(FILESEND, [(EXPORTER_ID, str(exporter_id))])
    sent = 0
    try:
        with open(path, "rb") as f:
            while chunk := await asyncio.to_thread(f.read, CHUNK):
                await call.send(m.BYTES_MESSAGE.encode({"data": chunk}))
                sent += len(chunk)
                progress(sent)
        await call.close()
        while await _recv(call, "send the tarball") is not None:
            pass
    except BaseException:
        call.cancel()
        raise


def _check(session: Session) -> None:
    if not session.supports(FILESEND):
        raise SendError(f"method {FILESEND.lower()} not supported by the client")


def write_tar(entries: list[Entry], out: str) -> None:
    """The walked entries as a tar at out (names relative, directories with a trailing slash)."""
    import tarfile
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            s = os.lstat(entry.path)
            info = tarfile.TarInfo(entry.rel)
            info.mode = st.S_IMODE(s.st_mode)
            info.uid, info.gid = s.st_uid, s.st_gid
            info.mtime = s.st_mtime
            linkname = entry.stat.get("linkname", "")
            if st.S_ISDIR(s.st_mode):
                info.type = tarfile.DIRTYPE
            elif st.S_ISLNK(s.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, linkname
            elif st.S_ISREG(s.st_mode) and linkname:
                info.type, info.linkname = tarfile.LNKTYPE, linkname
            elif st.S_ISREG(s.st_mode):
                info.size = s.st_size
                with open(entry.path, "rb") as f:
                    tar.addfile(info, f)
                continue
            elif st.S_ISCHR(s.st_mode) or st.S_ISBLK(s.st_mode):
                info.type = tarfile.CHRTYPE if st.S_ISCHR(s.st_mode) else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(s.st_rdev), os.minor(s.st_rdev)
            elif st.S_ISFIFO(s.st_mode):
                info.type = tarfile.FIFOTYPE
            else:
                continue    # sockets have no tar form
            tar.addfile(info)
