"""The daemon's side of the client's FileSend service (local and tar exporters): fsutil's walk order and
stats, the DiffCopy sender against a receiver that speaks the protocol as fsutil's receive.go does, and the
tarball stream."""
from __future__ import annotations

import asyncio
import io
import os
import stat
import tarfile

import pytest

from pyd.daemon.buildkit import grpc, messages as m
from pyd.daemon.buildkit.filesend import FILESEND, SendError, go_mode, send_dir, send_file, walk, write_tar
from pyd.daemon.buildkit.filesync import GO_DIR, GO_SETUID, GO_STICKY, GO_SYMLINK
from pyd.daemon.buildkit.session import Session
from pyd.http.h2conn import H2Connection, H2Stream
from test_h2_grpc import _pair, run


def _tree(root) -> None:
    (root / "a").mkdir()
    (root / "a" / "x").write_text("x\n")
    (root / "a.txt").write_bytes(os.urandom(700_000))
    (root / "b").symlink_to("a.txt")
    os.link(root / "a" / "x", root / "c")
    (root / "t").mkdir()
    os.chmod(root / "t", 0o1777)
    (root / "s").write_text("")
    os.chmod(root / "s", 0o4755)


def test_walk_is_fsutils_order_with_go_modes_and_hard_links(tmp_path):
    _tree(tmp_path)
    entries = list(walk(str(tmp_path)))
    assert [e.rel for e in entries] == ["a", "a/x", "a.txt", "b", "c", "s", "t"]   # children right after their dir
    by = {e.rel: e for e in entries}
    assert by["a"].stat["mode"] == GO_DIR | 0o755 and not by["a"].regular
    assert by["b"].stat["mode"] == GO_SYMLINK | 0o777 and by["b"].stat["linkname"] == "a.txt"
    assert by["c"].stat["linkname"] == "a/x" and not by["c"].regular       # the second name of a hard link
    assert by["s"].stat["mode"] == GO_SETUID | 0o755 and by["t"].stat["mode"] == GO_DIR | GO_STICKY | 0o777
    assert by["a.txt"].stat["size"] == 700_000 and by["a.txt"].regular
    assert go_mode(stat.S_IFCHR | 0o600) != go_mode(stat.S_IFBLK | 0o600)


def _receiver(got: dict, metadata: list):
    """fsutil's receiver: the stats up to the empty one, a REQ for each regular file, its DATA up to the
    empty packet; then FIN, our FIN, the end of our half, status OK."""
    async def handle(stream: H2Stream) -> None:
        metadata.append({k: v for k, v in stream.headers if not k.startswith(":")})
        await stream.send_headers([(":status", "200"), ("content-type", "application/grpc")])
        reader = grpc.MessageReader(stream)
        stats: list[dict] = []
        while (packet := m.PACKET.decode(await reader.next()))["stat"] is not None:
            stats.append(packet["stat"])
        wanted = {i for i, s in enumerate(stats) if not s["mode"] & (GO_DIR | GO_SYMLINK) and not s["linkname"]}
        for i in sorted(wanted):
            await stream.send_data(grpc.frame(m.PACKET.encode({"type": m.PACKET_REQ, "ID": i})))
        data = {i: b"" for i in wanted}
        while wanted:
            packet = m.PACKET.decode(await reader.next())
            assert packet["type"] == m.PACKET_DATA
            if packet["data"]:
                data[packet["ID"]] += packet["data"]
            else:
                wanted.discard(packet["ID"])
        await stream.send_data(grpc.frame(m.PACKET.encode({"type": m.PACKET_FIN})))
        assert m.PACKET.decode(await reader.next())["type"] == m.PACKET_FIN
        assert await reader.next() is None
        got.update({s["path"]: (s, data.get(i)) for i, s in enumerate(stats)})
        await stream.end([("grpc-status", "0")])
    return handle


def _bytes_receiver(got: list):
    async def handle(stream: H2Stream) -> None:
        await stream.send_headers([(":status", "200"), ("content-type", "application/grpc")])
        reader = grpc.MessageReader(stream)
        while (raw := await reader.next()) is not None:
            got.append(m.BYTES_MESSAGE.decode(raw)["data"])
        await stream.end([("grpc-status", "0")])
    return handle


async def _session(handler, methods=frozenset({FILESEND})) -> tuple[Session, list]:
    (dr, dw), (cr, cw) = await _pair()
    client_side = H2Connection(cr, cw, client=False, handler=handler)
    daemon_side = H2Connection(dr, dw, client=True)
    tasks = [asyncio.create_task(client_side.run()), asyncio.create_task(daemon_side.run())]
    return Session("s", "out", "", methods, grpc.GrpcClient(daemon_side), daemon_side), tasks


def test_send_dir_answers_the_receivers_requests(tmp_path):
    _tree(tmp_path)
    entries = list(walk(str(tmp_path)))

    async def body() -> None:
        got: dict = {}
        metadata: list = []
        seen: list[int] = []
        session, tasks = await _session(_receiver(got, metadata))
        await send_dir(session, entries, 2, seen.append)
        assert metadata[0]["buildkit-attachable-exporter-id"] == "2"
        assert got["a.txt"][1] == (tmp_path / "a.txt").read_bytes() and got["a/x"][1] == b"x\n"
        assert got["s"][1] == b"" and got["c"][1] is None and got["b"][0]["linkname"] == "a.txt"
        assert seen[-1] == 700_000 + 2
        for t in tasks:
            t.cancel()
    run(body)


def test_send_file_streams_the_tarball(tmp_path):
    src = tmp_path / "root"
    src.mkdir()
    _tree(src)
    tar_path = tmp_path / "out.tar"
    write_tar(list(walk(str(src))), str(tar_path))

    async def body() -> None:
        chunks: list[bytes] = []
        session, tasks = await _session(_bytes_receiver(chunks))
        await send_file(session, str(tar_path), 0, lambda n: None)
        data = b"".join(chunks)
        assert data == tar_path.read_bytes()
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = {t.name: t for t in tar.getmembers()}
            assert tar.extractfile("a.txt").read() == (src / "a.txt").read_bytes()
        assert set(members) == {"a", "a/x", "a.txt", "b", "c", "s", "t"}
        assert members["c"].islnk() and members["c"].linkname == "a/x"
        assert members["t"].mode == 0o1777 and members["s"].mode == 0o4755 and members["b"].issym()
        for t in tasks:
            t.cancel()
    run(body)


def test_a_client_without_the_service_is_told_so(tmp_path):
    async def body() -> None:
        session, tasks = await _session(_bytes_receiver([]), methods=frozenset())
        with pytest.raises(SendError, match="not supported by the client"):
            await send_file(session, str(tmp_path), 0, lambda n: None)
        for t in tasks:
            t.cancel()
    run(body)
