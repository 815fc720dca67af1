"""pyd.http.server and its clients on a unix socket in a temp dir (no root): the server wired as the daemon
wires it (version middleware, Docker's error body), driven by the API client (pyd.client.api, on
pyd.http.client), the AsyncClient and raw sockets, on the stdlib asyncio loop and on uvloop; and the
HTTP layer alone (plain errors, no API headers)."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from pyd.client.api import APIClient, APIError, DaemonUnreachable
from pyd.daemon.api.hijack import hijack as api_hijack
from pyd.daemon.api.version import APIVersion, api_version
from pyd.daemon.errors import error_response
from pyd.formats.jsonstream import aiter_json
from pyd.formats.stdcopy import StdcopyDemuxer, stdcopy_frame
from pyd.http.aclient import AsyncClient
from pyd.http.client import Client
from pyd.http.errors import ConnectError, HTTPError, HTTPStatusError, ParseError
from pyd.http.parser import NEED_DATA, Data, EndOfMessage, HTTPParser, ResponseHead
from pyd.http.server import Response, Router, Server
from pyd.http.tls import TLSConfig

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is part of the test environment
    uvloop = None

LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(uvloop is None, reason="uvloop missing"))]


def api_server(router: Router, log: logging.Logger) -> Server:
    """The server as pyd.daemon.main makes it."""
    return Server(router, middleware=[APIVersion("1.47", "1.24")], error_response=error_response,
                  server_header="pyd/0.1.0 (linux)", log=log)


# ============================================================================================== server fixture

class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class ServerThread:
    """A Server on a unix socket, its loop (asyncio or uvloop) running in a thread."""

    def __init__(self, tmp: Path, loop_kind: str) -> None:
        self.loop = uvloop.new_event_loop() if loop_kind == "uvloop" else asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="proto-server", daemon=True)
        self.thread.start()
        self.path = str(tmp / "pyd.sock")
        self.host = "unix://" + self.path
        self.log_records = ListHandler()
        self.log = logging.getLogger(f"test-proto-{id(self)}")
        self.log.propagate = False
        self.log.addHandler(self.log_records)
        self.first_piece = threading.Event()
        self.release = None  # asyncio.Event created in the loop
        self.seen: dict[str, Any] = {}
        self.server = api_server(build_router(self), self.log)
        self.call(self._start())

    async def _start(self) -> None:
        self.release = asyncio.Event()
        await self.server.listen_unix(self.path, mode=0o600)

    def call(self, coro: Any, timeout: float = 5.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def set_release(self) -> None:
        self.loop.call_soon_threadsafe(self.release.set)

    def stop(self) -> None:
        try:
            self.call(self.server.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()
            self.log.removeHandler(self.log_records)


def build_router(st: ServerThread) -> Router:
    r = Router()

    async def echo(req: Any) -> dict:
        return {"body": await req.json(), "path": req.path, "api_version": api_version(req), "query": req.query,
                "all": req.arg_bool("all"), "limit": req.arg_int("limit")}

    async def image(req: Any, name: str) -> dict:
        return {"name": name, "api_version": api_version(req)}

    async def container(req: Any, id: str) -> dict:
        return {"id": id}

    async def text(req: Any) -> Response:
        return Response(200, "hello text", headers={"X-Extra": "1"})

    async def conflict(req: Any) -> None:
        raise HTTPError("Conflict. The container name \"/a\" is already in use", 409)

    async def boom(req: Any) -> None:
        raise ValueError("bad thing happened")

    async def nothing(req: Any) -> None:
        return None

    async def upload(req: Any) -> dict:
        sizes = []
        async for piece in req.body_stream():
            sizes.append(len(piece))
            st.first_piece.set()
        return {"total": sum(sizes), "pieces": len(sizes), "headers": dict(req.headers.items())}

    async def events(req: Any) -> None:
        out = await req.stream(200, "application/json")
        for i in range(3):
            await out.write_json({"n": i})
        await out.write(b'{"a":1}{"b":2}\n{"c"')  # concatenated and split documents
        await out.write(b':3}\n')
        await out.close()

    async def wait(req: Any) -> None:
        out = await req.stream(200, "application/json")
        try:
            await st.release.wait()
        except asyncio.CancelledError:
            st.seen["wait_cancelled"] = True
            raise
        await out.write_json({"StatusCode": 0})

    async def fail_midstream(req: Any) -> None:
        out = await req.stream(200, "application/json")
        await out.write_json({"n": 0})
        raise RuntimeError("broke after the head")

    async def hijack(req: Any) -> None:
        reader, writer = await api_hijack(req, req.arg("type") or "application/vnd.docker.raw-stream")
        while True:
            data = await reader.read(1 << 16)
            if not data:
                break
            writer.write(data.upper())
            await writer.drain()
        st.seen["hijack_eof"] = True
        writer.write(b"EOF seen\n")
        await writer.drain()

    async def blast(req: Any) -> None:
        reader, writer = await api_hijack(req, "application/vnd.docker.raw-stream")
        block = stdcopy_frame(1, b"x" * (32 << 10))
        for _ in range(int(req.arg("n") or 1)):
            writer.write(block)
            await writer.drain()

    async def slow(req: Any) -> dict:
        await asyncio.sleep(30)
        return {}

    async def redirect(req: Any) -> Response:
        return Response(307, None, headers={"Location": "/images/redirected/json"})

    r.add("POST", "/echo", echo)
    r.add("GET", "/images/{name:path}/json", image)
    r.add("GET", "/containers/{id}/json", container)
    r.add("GET", "/text", text)
    r.add("POST", "/conflict", conflict)
    r.add("GET", "/boom", boom)
    r.add("POST", "/nothing", nothing)
    r.add("POST", "/upload", upload)
    r.add("GET", "/events", events)
    r.add("POST", "/wait", wait)
    r.add("GET", "/midstream", fail_midstream)
    r.add("POST", "/hijack", hijack)
    r.add("GET", "/blast", blast)
    r.add("GET", "/slow", slow)
    r.add("GET", "/redirect", redirect)
    return r


@pytest.fixture(params=LOOPS)
def any_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerThread]:
    st = ServerThread(tmp_path, request.param)
    yield st
    st.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    st = ServerThread(tmp_path, "asyncio")
    yield st
    st.stop()


@pytest.fixture
def client(server: ServerThread) -> Iterator[APIClient]:
    c = APIClient(server.host, timeout=5)
    yield c
    c.close()


def raw(server: ServerThread) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(server.path)
    return s


def read_response(s: socket.socket) -> tuple[ResponseHead, bytes, bytes]:
    """One response from a raw socket: (head, body, bytes read past it)."""
    parser = HTTPParser("response")
    head, body = None, b""
    while True:
        ev = parser.next_event()
        if ev is NEED_DATA:
            data = s.recv(65536)
            parser.feed(data) if data else parser.feed_eof()
        elif isinstance(ev, ResponseHead):
            head = ev
        elif isinstance(ev, Data):
            body += ev.data
        elif isinstance(ev, EndOfMessage):
            return head, body, parser.take_buffered()
        else:
            raise AssertionError(f"unexpected {ev!r}")


def read_until_closed(s: socket.socket) -> bytes:
    out = b""
    while True:
        data = s.recv(65536)
        if not data:
            return out
        out += data


# ============================================================================================== server behaviour

def test_json_round_trip_with_docker_headers(any_server: ServerThread) -> None:
    with APIClient(any_server.host, timeout=5) as c:
        resp = c.request("POST", "/echo", {"all": True, "limit": 5, "filters": {"label": ["a=b"]}},
                         body={"Image": "busybox", "Cmd": ["echo", "é"]})
        assert resp.status == 200
        doc = resp.json()
        assert doc == {"body": {"Image": "busybox", "Cmd": ["echo", "é"]}, "path": "/echo", "api_version": "1.47",
                       "query": {"all": ["1"], "limit": ["5"], "filters": ['{"label":["a=b"]}']},
                       "all": True, "limit": 5}
        h = resp.headers
        assert (h["Api-Version"], h["Server"], h["Ostype"], h["Docker-Experimental"]) == \
            ("1.47", "pyd/0.1.0 (linux)", "linux", "false")
        assert h["Content-Type"] == "application/json"
        assert resp.read().endswith(b"}\n")
        # keep-alive: the connection went back to the client and serves the next request
        assert len(c._idle) == 1
        assert c.request("GET", "/images/127.0.0.1:5000/a/b:tag/json").json()["name"] == "127.0.0.1:5000/a/b:tag"
        assert c.request("GET", "/containers/abc/json").json() == {"id": "abc"}


def test_unknown_route_is_page_not_found(client: APIClient) -> None:
    resp = client.request("GET", "/no/such/thing", check=False)
    assert resp.status == 404 and resp.json() == {"message": "page not found"}
    assert resp.headers["Api-Version"] == "1.47"
    with pytest.raises(APIError) as info:
        client.request("DELETE", "/echo")
    assert (info.value.status, str(info.value)) == (404, "page not found")


def test_handler_errors_become_json_messages(server: ServerThread, client: APIClient) -> None:
    with pytest.raises(APIError) as info:
        client.request("POST", "/conflict")
    assert info.value.status == 409 and info.value.message == 'Conflict. The container name "/a" is already in use'

    resp = client.request("GET", "/boom", check=False)
    body = resp.read()
    assert resp.status == 500 and json.loads(body) == {"message": "bad thing happened"}
    assert b"Traceback" not in body
    logged = [r for r in server.log_records.records if r.exc_info]
    assert logged and "bad thing happened" in str(logged[-1].exc_info[1])
    # the server is still fine
    assert client.request("GET", "/containers/a/json").json() == {"id": "a"}


def test_none_is_204_and_text_keeps_handler_headers(client: APIClient) -> None:
    resp = client.request("POST", "/nothing")
    assert resp.status == 204 and resp.read() == b"" and "Content-Type" not in resp.headers
    resp = client.request("GET", "/text")
    assert resp.read() == b"hello text"
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8" and resp.headers["X-Extra"] == "1"


def test_malformed_request_is_400_and_the_server_goes_on(server: ServerThread, client: APIClient) -> None:
    with raw(server) as s:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        head, body, _ = read_response(s)
        assert head.status == 400 and "message" in json.loads(body)
        assert head.headers["Connection"] == "close" and b"Traceback" not in body
        assert read_until_closed(s) == b""
    assert client.request("GET", "/containers/b/json").json() == {"id": "b"}


def test_oversized_header_is_431_and_the_server_goes_on(server: ServerThread, client: APIClient) -> None:
    with raw(server) as s:
        s.sendall(b"GET /containers/a/json HTTP/1.1\r\nHost: pyd\r\n")
        try:
            for _ in range(40):
                s.sendall(b"X-Big: " + b"a" * (64 << 10) + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and stopped listening to us: fine
        head, body, _ = read_response(s)
    assert head.status == 431 and "too large" in json.loads(body)["message"]
    assert client.request("GET", "/containers/c/json").json() == {"id": "c"}


def test_pipelined_requests_are_answered_in_order(server: ServerThread) -> None:
    with raw(server) as s:
        s.sendall(b"GET /containers/1/json HTTP/1.1\r\nHost: pyd\r\n\r\n"
                  b"POST /echo HTTP/1.1\r\nHost: pyd\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
                  b"POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                  b"GET /containers/4/json HTTP/1.1\r\nConnection: close\r\n\r\n")
        bodies = []
        rest = b""
        for _ in range(4):
            parser_input = rest
            head, body, rest = read_response(_Prefixed(s, parser_input))
            bodies.append(json.loads(body))
        assert bodies[0] == {"id": "1"} and bodies[1]["body"] == {"a": 1} and bodies[2]["total"] == 3
        assert bodies[3] == {"id": "4"} and head.headers["Connection"] == "close"
        assert rest + read_until_closed(s) == b""


class _Prefixed:
    """A socket whose first recv returns bytes already read."""

    def __init__(self, sock: socket.socket, first: bytes) -> None:
        self.sock, self.first = sock, first

    def recv(self, n: int) -> bytes:
        if self.first:
            data, self.first = self.first, b""
            return data
        return self.sock.recv(n)


def test_head_is_get_without_body(server: ServerThread) -> None:
    with raw(server) as s:
        s.sendall(b"HEAD /text HTTP/1.1\r\nHost: pyd\r\n\r\nGET /containers/z/json HTTP/1.1\r\n\r\n")
        parser = HTTPParser("response")
        parser.expect_response("HEAD")
        parser.expect_response("GET")
        data = b""
        while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"}\n"):
            data += s.recv(65536)
        parser.feed(data)
        head = parser.next_event()
        assert head.status == 200 and head.headers["Content-Length"] == "10"
        assert isinstance(parser.next_event(), EndOfMessage)  # no body bytes before the next response
        second = parser.next_event()
        assert second.status == 200 and parser.next_event().data == b'{"id":"z"}\n'


def test_expect_100_continue(server: ServerThread) -> None:
    with raw(server) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: pyd\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += s.recv(1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"12345")
        head, body, _ = read_response(s)
        assert head.status == 200 and json.loads(body)["total"] == 5


def test_chunked_upload_is_streamed_not_buffered(server: ServerThread, client: APIClient) -> None:
    with raw(server) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: pyd\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nfirs\r\n")
        # the handler sees the first piece while the rest has not been sent yet
        assert server.first_piece.wait(2)
        s.sendall(b"6\r\nt part\r\n" + b"%x\r\n" % 100000 + b"y" * 100000 + b"\r\n0\r\n\r\n")
        head, body, _ = read_response(s)
        doc = json.loads(body)
        assert head.status == 200 and doc["total"] == 100010 and doc["pieces"] >= 3

    def pieces() -> Iterator[bytes]:
        for i in range(20):
            yield bytes([65 + i]) * 5000
    doc = client.request("POST", "/upload", body=pieces(), headers={"Content-Type": "application/x-tar"}).json()
    assert doc["total"] == 100000 and doc["headers"]["Transfer-Encoding"] == "chunked"
    assert doc["headers"]["Content-Type"] == "application/x-tar"
    assert doc["headers"]["User-Agent"] == "pyd-client/0.1.0" and doc["headers"]["Host"] == "pyd"


def test_streaming_response_read_with_iter_json(any_server: ServerThread) -> None:
    with APIClient(any_server.host, timeout=5) as c:
        resp = c.request("GET", "/events")
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert list(resp.iter_json()) == [{"n": 0}, {"n": 1}, {"n": 2}, {"a": 1}, {"b": 2}, {"c": 3}]
        assert c.request("GET", "/containers/q/json").json() == {"id": "q"}  # the connection is reusable


def test_stream_flushes_headers_before_the_body(server: ServerThread, client: APIClient) -> None:
    resp = client.request("POST", "/wait")  # returns once the head arrived, while the handler still waits
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
    server.set_release()
    assert list(resp.iter_json()) == [{"StatusCode": 0}]


def test_failure_after_streaming_started_closes_the_connection(server: ServerThread, client: APIClient) -> None:
    resp = client.request("GET", "/midstream")
    with pytest.raises(ParseError):  # the chunked body never ends properly
        list(resp.iter_chunks())
    assert any("broke after the head" in str(r.exc_info[1]) for r in server.log_records.records if r.exc_info)
    assert client.request("GET", "/containers/ok/json").json() == {"id": "ok"}


def test_hijack_upgrade_echo_and_half_close(any_server: ServerThread) -> None:
    with raw(any_server) as s:
        # stdin bytes sent right behind the head must reach the handler
        s.sendall(b"POST /v1.47/hijack?type=application/vnd.docker.multiplexed-stream HTTP/1.1\r\nHost: pyd\r\n"
                  b"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: text/plain\r\n\r\nearly bytes;")
        data = b""
        while b"EARLY BYTES;" not in data:
            data += s.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 101 UPGRADED"
        assert b"Content-Type: application/vnd.docker.multiplexed-stream" in lines
        assert b"Connection: Upgrade" in lines and b"Upgrade: tcp" in lines and b"Api-Version: 1.47" in lines
        assert rest == b"EARLY BYTES;"
    with APIClient(any_server.host, timeout=5) as c:
        conn = c.hijack("POST", "/hijack")
        with conn:
            assert conn.status == 101 and conn.content_type == "application/vnd.docker.raw-stream"
            conn.sendall(b"ping")
            assert conn.recv(100) == b"PING"
            conn.shutdown_write()  # docker's CloseWrite: the handler sees EOF and still writes
            out = b""
            while True:
                data = conn.recv(100)
                if not data:
                    break
                out += data
            assert out == b"EOF seen\n"
        assert any_server.seen["hijack_eof"]


def test_hijack_without_upgrade_header_is_200_until_close(server: ServerThread) -> None:
    with raw(server) as s:
        s.sendall(b"POST /hijack HTTP/1.1\r\nHost: pyd\r\n\r\nabc")
        s.shutdown(socket.SHUT_WR)
        data = read_until_closed(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length" not in head
    assert body == b"ABCEOF seen\n"


def test_hijack_of_an_unknown_route_raises_api_error(client: APIClient) -> None:
    with pytest.raises(APIError) as info:
        client.hijack("POST", "/containers/nope/attach")
    assert info.value.status == 404


def test_hijacked_stream_carries_every_frame(any_server: ServerThread) -> None:
    n = 2048  # 64 MiB of stdcopy frames through the hijacked connection
    with APIClient(any_server.host, timeout=5) as c:
        conn = c.hijack("GET", "/blast", {"n": n})
        demux = StdcopyDemuxer()
        total = 0
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while True:
            got = conn.recv(1 << 20) if conn.pending() else conn.sock.recv_into(view)
            if not got:
                break
            if isinstance(got, int):
                chunk = bytes(view[:got])
            else:
                chunk = got
            for _, data in demux.feed(chunk):
                total += len(data)
        conn.close()
    assert total == n * (32 << 10)   # its speed is bench's "throughput" figure


def test_daemon_unreachable_message(tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/missing.sock"
    with pytest.raises(DaemonUnreachable) as info:
        APIClient(host).request("GET", "/_ping")
    assert str(info.value) == f"Cannot connect to the pyd daemon at {host}. Is the pyd daemon running?"
    # a socket file nobody listens on (a daemon that died) gives the same message
    dead = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(dead))
    s.close()
    with pytest.raises(DaemonUnreachable) as info:
        APIClient(f"unix://{dead}").request("GET", "/_ping")
    assert "Is the pyd daemon running?" in str(info.value)


def test_stale_socket_is_replaced_and_mode_applied(tmp_path: Path) -> None:
    st = ServerThread(tmp_path, "asyncio")  # its socket path now exists
    try:
        second = Server(Router())
        path = st.path + ".2"
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)  # a stale socket file left by a dead daemon
        s.close()
        st.call(second.listen_unix(path, mode=0o640))
        assert os.stat(path).st_mode & 0o777 == 0o640
        assert os.stat(st.path).st_mode & 0o777 == 0o600
        st.call(second.close())
        assert not os.path.exists(path)
    finally:
        st.stop()


def test_close_is_bounded_with_busy_and_idle_connections(server: ServerThread, client: APIClient) -> None:
    assert client.request("GET", "/containers/a/json").json() == {"id": "a"}  # leaves an idle keep-alive conn
    busy = raw(server)
    busy.sendall(b"GET /slow HTTP/1.1\r\nHost: pyd\r\n\r\n")
    time.sleep(0.05)
    t0 = time.monotonic()
    server.call(server.server.close())
    assert time.monotonic() - t0 < 1.5
    assert read_until_closed(busy) == b""
    busy.close()
    assert not os.path.exists(server.path)


def test_reused_connection_closed_by_server_is_retried(server: ServerThread, client: APIClient) -> None:
    assert client.request("GET", "/containers/a/json").json() == {"id": "a"}
    idle = client._idle[0]
    # the server drops its idle connections (as on restart); the client must notice and reconnect
    server.call(_close_idle(server.server))
    time.sleep(0.05)
    assert client.request("POST", "/echo", body={"x": 1}).json()["body"] == {"x": 1}
    assert idle not in client._idle


async def _close_idle(server: Server) -> None:
    for conn in list(server._connections):
        if conn.idle:
            conn.transport.close()


def test_async_client_unix_and_tcp_urls(server: ServerThread) -> None:
    async def scenario() -> None:
        listener = await server.server.listen_tcp("127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        async with AsyncClient(server.host, base_path="/v1.47") as ac:
            resp = await ac.request("POST", "/echo", query={"all": 1}, body={"a": [1]})
            assert resp.status == 200 and (await resp.json())["body"] == {"a": [1]}
            resp = await ac.request("GET", "/events")
            assert [d async for d in aiter_json(resp.iter_chunks())][:3] == [{"n": 0}, {"n": 1}, {"n": 2}]
            resp = await ac.request("GET", "/boom")
            assert resp.status == 500
            with pytest.raises(HTTPStatusError):
                await resp.raise_for_status()
        async with AsyncClient() as ac:
            base = f"http://127.0.0.1:{port}"
            resp = await ac.request("GET", base + "/v1.47/images/busybox/json")
            assert await resp.json() == {"name": "busybox", "api_version": "1.47"}
            resp = await ac.request("GET", base + "/redirect")  # 307 with a relative Location
            assert resp.status == 200 and (await resp.json())["name"] == "redirected"

            async def gen():
                for _ in range(4):
                    yield b"q" * 1000
            resp = await ac.request("POST", base + "/upload", body=gen())
            assert (await resp.json())["total"] == 4000
            with pytest.raises(HTTPStatusError) as info:
                await ac.request("POST", base + "/conflict", check=True)
            assert info.value.status == 409

    server.call(scenario())


def test_json_body_errors_are_400(client: APIClient) -> None:
    with pytest.raises(APIError) as info:
        client.request("POST", "/echo", body=b"{not json", headers={"Content-Type": "application/json"})
    assert info.value.status == 400 and info.value.message.startswith("invalid JSON")
    with pytest.raises(APIError) as info:
        client.request("POST", "/echo", query={"all": "maybe"}, body={})
    assert info.value.status == 400 and info.value.message == "invalid value for all"


def test_tls_client_server_and_hijack(server: ServerThread, tmp_path: Path) -> None:
    import shutil
    import subprocess
    assert shutil.which("openssl"), "this test needs the openssl command (Debian package openssl)"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=10)
    server_ctx = TLSConfig(cert=str(cert), key=str(key), verify=False).server_context()
    listener = server.call(server.server.listen_tcp("127.0.0.1", 0, ssl_context=server_ctx))
    host = f"tcp://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    with APIClient(host, tls=TLSConfig(ca=str(cert)), timeout=5) as c:
        assert c.request("GET", "/containers/t/json").json() == {"id": "t"}
        assert c.request("GET", "/containers/u/json?x=1").json() == {"id": "u"}
        with c.hijack("POST", "/hijack") as conn:
            conn.sendall(b"secret")
            assert conn.recv(100) == b"SECRET"
    with pytest.raises(DaemonUnreachable) as info:  # the default CA bundle does not know our certificate
        APIClient(host, tls=TLSConfig(), timeout=5).request("GET", "/containers/t/json")
    assert "certificate verify failed" in str(info.value)


def test_bodiless_responses_free_the_connection_at_once(client: APIClient) -> None:
    resp = client.request("POST", "/nothing")  # 204, never read
    assert resp.status == 204 and len(client._idle) == 1
    assert client.request("HEAD", "/text").headers["Content-Length"] == "10" and len(client._idle) == 1


def test_client_gone_mid_body_is_quiet(server: ServerThread, client: APIClient) -> None:
    with raw(server) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: pyd\r\nContent-Length: 1000\r\n\r\nonly a part")
        assert server.first_piece.wait(2)
    assert client.request("GET", "/containers/a/json").json() == {"id": "a"}
    assert not [r for r in server.log_records.records if r.levelno >= logging.ERROR]


def test_client_disconnect_cancels_a_streaming_handler(server: ServerThread) -> None:
    s = raw(server)
    s.sendall(b"POST /wait HTTP/1.1\r\nHost: pyd\r\n\r\n")
    assert s.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
    s.close()
    deadline = time.monotonic() + 2
    while "wait_cancelled" not in server.seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.seen.get("wait_cancelled")


# ============================================================================================== the HTTP layer alone

def test_plain_server_and_client_know_no_api(tmp_path: Path) -> None:
    """Without middleware and error renderer: text errors, no API headers, no path prefix; the plain
    client raises HTTPStatusError and ConnectError."""
    st = ServerThread(tmp_path, "asyncio")
    plain = Server(build_router(st), log=st.log)
    try:
        path = st.path + ".plain"
        st.call(plain.listen_unix(path))
        with Client("unix://" + path, timeout=5) as c:
            resp = c.request("GET", "/containers/a/json")
            assert resp.json() == {"id": "a"}
            assert "Api-Version" not in resp.headers and "Server" not in resp.headers and "Date" in resp.headers
            with pytest.raises(HTTPStatusError) as info:
                c.request("POST", "/conflict")
            assert info.value.status == 409
            assert info.value.message == 'Conflict. The container name "/a" is already in use'
            resp = c.request("GET", "/v1.47/containers/a/json", check=False)  # a prefix is just a path here
            assert resp.status == 404 and resp.read() == b"page not found"
            assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
            doc = c.request("POST", "/upload", body=b"x").json()
            assert doc["headers"]["Host"] == "localhost" and "User-Agent" not in doc["headers"]
        with pytest.raises(ConnectError) as err:
            Client(f"unix://{tmp_path}/missing.sock").request("GET", "/")
        assert isinstance(err.value.error, FileNotFoundError)
    finally:
        st.call(plain.close())
        st.stop()


def test_http_error_carries_its_status() -> None:
    assert (HTTPError("x").status, HTTPError("x", 418).status, str(HTTPError("gone", 410))) == (500, 418, "gone")
    assert HTTPStatusError(502, "Bad Gateway", b"").message == "Bad Gateway"
    assert HTTPStatusError(500, "", b"").message == "Internal Server Error"
