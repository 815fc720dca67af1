"""HTTP/2 and gRPC in one process: both ends of a socketpair, one the server and one the client."""
from __future__ import annotations

import asyncio
import socket
from typing import AsyncIterator, Awaitable, Callable

import pytest

from pyd.daemon.buildkit import grpc, messages as m
from pyd.daemon.buildkit.cache import CacheRecord
from pyd.daemon.buildkit.control import ControlService, WorkerInfo
from pyd.daemon.buildkit.session import HEADER_ID, HEADER_METHOD, HEADER_NAME, SessionManager
from pyd.http.h2conn import H2Connection, H2Stream
from pyd.http.headers import Headers


async def _pair() -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    a, b = socket.socketpair()
    return await asyncio.open_connection(sock=a), await asyncio.open_connection(sock=b)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


async def _echo(request: bytes) -> bytes:
    return request[::-1]


async def _count(request: bytes) -> AsyncIterator[bytes]:
    for i in range(int(request)):
        yield str(i).encode()


async def _fail(request: bytes) -> bytes:
    raise grpc.GrpcError(grpc.NOT_FOUND, "no such thing: 100% gone")


async def _serve(handler_server: grpc.GrpcServer):
    (sr, sw), (cr, cw) = await _pair()
    server = H2Connection(sr, sw, client=False, handler=handler_server.handle)
    client = H2Connection(cr, cw, client=True)
    tasks = [asyncio.create_task(server.run()), asyncio.create_task(client.run())]
    return server, client, tasks


def test_unary_streaming_errors_and_unknown_methods():
    async def body() -> None:
        srv = grpc.GrpcServer({"/t.S/Echo": _echo, "/t.S/Fail": _fail}, {"/t.S/Count": _count})
        server, client, tasks = await _serve(srv)
        calls = grpc.GrpcClient(client)
        assert await calls.unary("/t.S/Echo", b"abc") == b"cba"
        assert await calls.unary("/t.S/Echo", b"") == b""                 # an empty message is a message
        call = await calls.call("/t.S/Count")
        await call.send(b"3")
        await call.close()
        assert [await call.recv() for _ in range(4)] == [b"0", b"1", b"2", None]
        with pytest.raises(grpc.GrpcError) as err:
            await calls.unary("/t.S/Fail", b"x")
        assert (err.value.code, err.value.message) == (grpc.NOT_FOUND, "no such thing: 100% gone")
        with pytest.raises(grpc.GrpcError) as err:
            await calls.unary("/t.S/Nope", b"x")
        assert err.value.code == grpc.UNIMPLEMENTED and err.value.message == "unknown method Nope for service t.S"
        # several calls at once on one connection
        replies = await asyncio.gather(*(calls.unary("/t.S/Echo", str(i).encode() * 3) for i in range(20)))
        assert replies == [(str(i) * 3).encode()[::-1] for i in range(20)]
        await client.close()
        await asyncio.wait_for(server.wait_closed(), 5)
        for t in tasks:
            t.cancel()
    run(body)


def test_flow_control_carries_messages_larger_than_every_window():
    big = bytes(range(256)) * (24 << 10)      # 6 MiB: more than the stream (1 MiB) and connection (4 MiB) windows

    async def body() -> None:
        srv = grpc.GrpcServer({"/t.S/Echo": _echo}, {})
        server, client, tasks = await _serve(srv)
        assert await grpc.GrpcClient(client).unary("/t.S/Echo", big) == big[::-1]
        await client.close()
        for t in tasks:
            t.cancel()
    run(body)


def test_a_reset_cancels_the_server_handler():
    async def body() -> None:
        cancelled = asyncio.Event()

        async def forever(request: bytes) -> AsyncIterator[bytes]:
            try:
                yield b"first"
                await asyncio.sleep(3600)
            finally:
                cancelled.set()

        srv = grpc.GrpcServer({}, {"/t.S/Forever": forever})
        server, client, tasks = await _serve(srv)
        call = await grpc.GrpcClient(client).call("/t.S/Forever")
        await call.send(b"")
        await call.close()
        assert await call.recv() == b"first"
        call.cancel()
        await asyncio.wait_for(cancelled.wait(), 5)
        await client.close()
        for t in tasks:
            t.cancel()
    run(body)


def test_bidirectional_stream_raw():
    async def body() -> None:
        async def echo(stream: H2Stream) -> None:
            await stream.send_headers([(":status", "200")])
            while data := await stream.read():
                await stream.send_data(data.upper())
            await stream.end([("done", "yes")])

        (sr, sw), (cr, cw) = await _pair()
        server = H2Connection(sr, sw, client=False, handler=echo)
        client = H2Connection(cr, cw, client=True)
        tasks = [asyncio.create_task(server.run()), asyncio.create_task(client.run())]
        stream = await client.open_stream([(":method", "POST"), (":scheme", "http"), (":path", "/x"),
                                           (":authority", "t")])
        assert dict(await stream.response_headers())[":status"] == "200"
        for word in (b"one", b"two"):
            await stream.send_data(word)
            assert await stream.read() == word.upper()
        await stream.end()
        assert await stream.read() == b""
        assert stream.trailers == [("done", "yes")]
        await client.close()
        for t in tasks:
            t.cancel()
    run(body)


class _Cache:
    def records(self) -> list[CacheRecord]:
        return [CacheRecord("ab" * 32, 4, 1.5, "RUN echo one > /one", False, ["cd" * 32])]

    def prune(self, keep_duration: float = 0.0, keep_bytes: int = 0, held=()) -> list[CacheRecord]:
        return self.records()


def test_control_service_over_grpc(tmp_path):
    async def body() -> None:
        sessions = SessionManager()
        control = ControlService(WorkerInfo("ENGINE", str(tmp_path)), _Cache(), sessions, None)  # type: ignore[arg-type]
        server, client, tasks = await _serve(control.server())
        calls = grpc.GrpcClient(client)
        workers = m.LIST_WORKERS_RESPONSE.decode(await calls.unary("/moby.buildkit.v1.Control/ListWorkers", b""))
        (worker,) = workers["record"]
        assert worker["ID"] == "ENGINE" and worker["platforms"][0]["OS"] == "linux"
        assert worker["Labels"]["org.mobyproject.buildkit.worker.executor"] == "oci"
        assert "org.mobyproject.buildkit.worker.snapshotter" not in worker["Labels"]
        assert worker["GCPolicy"][-1]["all"] is True
        info = m.INFO_RESPONSE.decode(await calls.unary("/moby.buildkit.v1.Control/Info", b""))
        assert info["buildkitVersion"]["version"].startswith("v0.13")
        du = m.DISK_USAGE_RESPONSE.decode(await calls.unary("/moby.buildkit.v1.Control/DiskUsage", b""))
        assert du["record"][0]["ID"] == "ab" * 32 and du["record"][0]["Parents"] == ["cd" * 32]
        assert du["record"][0]["CreatedAt"] == {"seconds": 1, "nanos": 500_000_000}
        prune = await calls.call("/moby.buildkit.v1.Control/Prune")
        await prune.send(m.PRUNE_REQUEST.encode({"all": True}))
        await prune.close()
        assert m.USAGE_RECORD.decode(await prune.recv() or b"")["Size"] == 4
        assert await prune.recv() is None
        with pytest.raises(grpc.GrpcError) as err:
            await calls.unary("/moby.buildkit.v1.Control/ListenBuildHistory", b"")
        assert err.value.code == grpc.UNIMPLEMENTED
        with pytest.raises(grpc.GrpcError) as err:
            await calls.unary("/moby.buildkit.v1.Control/ListWorkers", b"\x0a\x05ab")
        assert err.value.code == grpc.INVALID_ARGUMENT
        await client.close()
        for t in tasks:
            t.cancel()
    run(body)


def test_session_calls_the_clients_services_and_closes_with_it():
    """The daemon is the HTTP/2 client on a session: it calls the services the build client serves."""
    async def body() -> None:
        async def check(request: bytes) -> bytes:
            return b"\x08\x01"           # grpc.health.v1.HealthCheckResponse{status: SERVING}

        (dr, dw), (cr, cw) = await _pair()
        build_client = H2Connection(cr, cw, client=False,
                                    handler=grpc.GrpcServer({"/grpc.health.v1.Health/Check": check}, {}).handle)
        client_task = asyncio.create_task(build_client.run())
        sessions = SessionManager()
        headers = Headers()
        headers.add(HEADER_ID, "s1")
        headers.add(HEADER_NAME, "ctx")
        headers.add(HEADER_METHOD, "/grpc.health.v1.Health/Check")
        headers.add(HEADER_METHOD, "/moby.filesync.v1.FileSync/DiffCopy")
        serving = asyncio.create_task(sessions.serve(dr, dw, headers))
        session = await sessions.wait_for("s1", 5)
        assert session is not None and session.name == "ctx"
        assert session.supports("/moby.filesync.v1.FileSync/DiffCopy")
        assert await session.client.unary("/grpc.health.v1.Health/Check", b"") == b"\x08\x01"
        with pytest.raises(Exception, match="already exists"):
            sessions.check(headers)
        await build_client.close()      # the build client goes: the session ends with it
        await asyncio.wait_for(serving, 5)
        assert sessions.get("s1") is None and await sessions.wait_for("s1", 0.05) is None
        client_task.cancel()
    run(body)
