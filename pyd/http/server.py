"""The asyncio HTTP/1.1 server: one protocol object per connection (keep-alive, pipelining, 100-continue,
streamed responses, hijack), a route table, and middleware hooks for the API it serves.

A handler: async def h(req: Request, **path_params) -> Response | dict | list | None. dict/list is a 200
JSON answer, None a 204 unless the handler streamed or hijacked, a Response goes as given. An HTTPError
raised anywhere in a handler becomes the Server's error_response(status, message); any other exception
a 500 with str(exc), and a traceback in the log (never to the client).
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable, Iterable, Protocol, Sequence

from pyd.http.errors import HTTPError, IncompleteMessage, ParseError
from pyd.http.headers import REASONS, Headers, chunk, format_head, http_date
from pyd.http.parser import MAX_HEAD, NEED_DATA, Data, EndOfMessage, HTTPParser, RequestHead
from pyd.http.urls import parse_query, unquote

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    import ssl

DEFAULT_BODY_LIMIT = 64 << 20      # Request.body() default


def _json() -> Any:
    import json
    return json


_UNSET = object()


def _not_json(word: str) -> Any:
    raise ValueError(f"invalid character '{word[0]}' looking for beginning of value")


def decode_json(data: bytes | str) -> Any:
    """JSON to Python; malformed or too deeply nested input is a 400 (Python's decoder recurses).
    Strict: NaN and Infinity are not JSON."""
    try:
        return _json().loads(data, parse_constant=_not_json)
    except ValueError as e:
        raise HTTPError(f"invalid JSON: {e}", 400) from None
    except RecursionError:
        raise HTTPError("invalid JSON: nested too deeply", 400) from None


def json_bytes(obj: Any) -> bytes:
    """Compact JSON + "\n", the way Go's json.Encoder writes a document."""
    return (_json().dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


def plain_error(status: int, message: str) -> Response:
    """The default error answer: the message as text."""
    return Response(status, message)


class Middleware(Protocol):
    """Hooks the Server runs, in the order given, around every request."""

    def route(self, req: Request, path: str) -> str:
        """Before routing: the raw (still percent-encoded) path to route, e.g. without a prefix."""
        ...

    def check(self, req: Request) -> None:
        """After a route matched, before its handler runs: raise HTTPError to answer instead."""
        ...

    def headers(self) -> list[tuple[str, str]]:
        """Fields that start every response head (before Server and Date)."""
        ...


class Response:
    """A complete response. body: bytes (application/octet-stream), str (text/plain), dict/list (JSON + "\n"),
    None (no body)."""
    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(self, status: int = 200, body: bytes | str | dict | list | None = None,
                 content_type: str | None = None, headers: Any = None) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers

    def encode(self) -> tuple[bytes, str | None]:
        body = self.body
        if body is None:
            return b"", self.content_type
        if isinstance(body, (dict, list)):
            return json_bytes(body), self.content_type or "application/json"
        if isinstance(body, str):
            return body.encode("utf-8"), self.content_type or "text/plain; charset=utf-8"
        data = bytes(body)
        return data, self.content_type or ("application/octet-stream" if data else None)


class Router:
    """Route table. Patterns: "/items/{id}/json"; {x} matches one segment, {x:path} matches across slashes
    (a name like host:5000/a/b:tag). HEAD falls back to GET."""

    def __init__(self) -> None:
        self._static: dict[tuple[str, str], Callable] = {}
        self._by_segment: dict[str, list[tuple[str, Any, Callable]]] = {}
        self._wild: list[tuple[str, Any, Callable]] = []

    def add(self, method: str, pattern: str, handler: Callable) -> None:
        method = method.upper()
        if "{" not in pattern:
            self._static[(method, pattern)] = handler
            return
        regex = _compile_pattern(pattern)
        first = pattern.split("/")[1] if pattern.count("/") >= 1 else ""
        entry = (method, regex, handler)
        if "{" in first:
            self._wild.append(entry)
        else:
            self._by_segment.setdefault(first, []).append(entry)

    def match(self, method: str, path: str) -> tuple[Callable | None, dict[str, str]]:
        found = self._match(method, path)
        if found[0] is None and method == "HEAD":
            found = self._match("GET", path)
        return found

    def _match(self, method: str, path: str) -> tuple[Callable | None, dict[str, str]]:
        handler = self._static.get((method, path))
        if handler is not None:
            return handler, {}
        segment = path.split("/", 2)[1] if path.startswith("/") else ""
        for candidates in (self._by_segment.get(segment, ()), self._wild):
            for m, regex, handler in candidates:
                if m == method:
                    found = regex.fullmatch(path)
                    if found:
                        return handler, found.groupdict()
        return None, {}


def _compile_pattern(pattern: str) -> Any:
    import re
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)(?::(\w+))?\}", pattern):
        out.append(re.escape(pattern[pos:m.start()]))
        name, kind = m.group(1), m.group(2)
        if kind not in (None, "path"):
            raise ValueError(f"unknown parameter type {kind!r} in route {pattern!r}")
        out.append(f"(?P<{name}>.+)" if kind == "path" else f"(?P<{name}>[^/]+)")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out))


class Request:
    """One request as a handler sees it. The body is not read until the handler asks."""

    def __init__(self, conn: _Connection, head: RequestHead, path: str, query_string: str) -> None:
        self.method = head.method
        self.target = head.target
        self.path = path              # decoded, as routed (after the middleware's route())
        self.state: dict[str, str] = {}   # what middleware derived from the request, for the handlers
        self.headers = head.headers
        self.http_version = head.http_version
        self.head = head
        self._conn = conn
        self._query_string = query_string
        self._query: dict[str, list[str]] | None = None
        self.keep_alive = head.keep_alive
        self.started = False          # the response head went out
        self.hijacked = False
        self._stream: StreamWriter | None = None
        self.has_body = not (head.body_kind == "none" or (head.body_kind == "length" and not head.content_length))
        self._body_reading = False
        self._eom = False             # the parser's EndOfMessage for this request was consumed
        self._continue_sent = False
        self._body: bytes | None = None
        self._json: object = _UNSET    # the decoded body (any JSON value), once decoded

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target}>"

    # ---- query
    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            self._query = parse_query(self._query_string)
        return self._query

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def arg_bool(self, name: str, default: bool = False) -> bool:
        value = self.arg(name)
        if value is None:
            return default
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("", "0", "false", "no", "off", "none"):
            return False
        raise HTTPError(f"invalid value for {name}", 400)

    def arg_int(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value is None or value == "":
            return default
        try:
            return int(value, 10)
        except ValueError:
            raise HTTPError(f"invalid value for {name}", 400) from None

    def arg_json(self, name: str, default: Any = None) -> Any:
        value = self.arg(name)
        if value is None or value == "":
            return default
        try:
            return decode_json(value)
        except HTTPError as e:
            raise HTTPError(f"invalid JSON in parameter {name}: {e.message.removeprefix('invalid JSON: ')}",
                            400) from None

    # ---- body
    async def body(self, limit: int = DEFAULT_BODY_LIMIT) -> bytes:
        """The whole body; kept, so that a check before the handler and the handler both read it."""
        if self._body is not None:
            return self._body
        parts, total = [], 0
        async for piece in self.body_stream():
            total += len(piece)
            if total > limit:
                self.keep_alive = False
                raise HTTPError(f"request body is larger than {limit} bytes", 413)
            parts.append(piece)
        self._body = b"".join(parts)
        return self._body

    async def json(self) -> Any:
        """The body decoded (None when empty); decoded once, whoever asks first."""
        if self._json is _UNSET:
            data = await self.body()
            self._json = decode_json(data) if data.strip() else None
        return self._json

    def set_json(self, value: Any) -> None:
        """What json() answers from now on (a check before the handler decoded the body its own way)."""
        self._json = value

    def body_stream(self) -> AsyncIterator[bytes]:
        """The body as it arrives (Content-Length or chunked), never buffered whole."""
        return self._iter_body()

    async def _iter_body(self) -> AsyncIterator[bytes]:
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self._eom:
            return
        if self._body_reading:
            raise RuntimeError("the request body is already being read")
        self._body_reading = True
        conn = self._conn
        if self.head.expect_continue and self.has_body and not self._continue_sent and not self.started:
            self._continue_sent = True
            conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while True:
            try:
                event = await conn.next_event()
            except IncompleteMessage:
                self.keep_alive = False
                raise ConnectionResetError("the client closed the connection before sending the whole body") from None
            except ParseError:
                self.keep_alive = False
                raise
            if type(event) is Data:
                yield event.data
            elif type(event) is EndOfMessage:
                self._eom = True
                return
            else:
                self.keep_alive = False
                raise ConnectionResetError("the client closed the connection before sending the whole body")

    # ---- streaming and hijack
    async def stream(self, status: int = 200, content_type: str = "application/json",
                     headers: Any = None) -> StreamWriter:
        """Start a chunked response; its head is flushed at once (a long poll tells its client it started)."""
        if self.started:
            raise RuntimeError("response already started")
        conn = self._conn
        chunked = self.http_version == "1.1"
        if not chunked:
            self.keep_alive = False  # HTTP/1.0: the end of the body is the end of the connection
        extra = [("Content-Type", content_type)] if content_type else []
        if chunked:
            extra.append(("Transfer-Encoding", "chunked"))
        self.started = True
        conn.cancel_on_lost = True  # a client that goes away ends a long-poll/stream handler
        conn.write(conn.server.response_head(self, status, extra, headers))
        self._stream = StreamWriter(conn, chunked, self.method == "HEAD")
        await conn.drain()
        return self._stream

    async def hijack(self, content_type: str | None, protocol: str, reason: str = "Switching Protocols",
                     headers: list[tuple[str, str]] | None = None) -> tuple[asyncio.StreamReader, HijackWriter]:
        """Take over the connection: "101 <reason>" with Upgrade: <protocol> (and `headers`) when the client
        sent an Upgrade header (whatever it named), else "200 OK" with a connection-delimited body. Bytes the
        client sent after the head are readable from the reader; EOF on the reader is the client's half-close."""
        if self.started:
            raise RuntimeError("response already started")
        conn = self._conn
        extra = [("Content-Type", content_type)] if content_type else []
        if self.headers.get("upgrade") is not None:
            status = 101
            extra += [("Connection", "Upgrade"), ("Upgrade", protocol), *(headers or [])]
        else:
            status = 200
        self.started = self.hijacked = True
        self.keep_alive = False
        conn.cancel_on_lost = True
        conn.write(conn.server.response_head(self, status, extra, None, reason=reason if status == 101 else None,
                                             framing=False))
        reader = conn.switch_to_raw()
        return reader, HijackWriter(conn)

    @property
    def can_hand_over(self) -> bool:
        """Whether hand_over() may give this connection away (not TLS: the bytes must stay ours to encrypt)."""
        return not self._conn._is_tls and not self._conn.closed

    def share(self) -> int:
        """A duplicate of the connection's descriptor for another process to keep (the caller owns it): should
        this one die, the connection lives on there, and that process may end the response. Not over TLS."""
        import os
        return os.dup(self._conn.transport.get_extra_info("socket").fileno())

    async def hand_over(self) -> int:
        """After hijack(): a duplicate of the connection's descriptor for another writer (another process
        writes the stream itself). Our bytes go out first; then our side lets go of the connection without
        shutting it down, so it lives on through the duplicate. The caller owns (and closes) the result."""
        import asyncio
        import os
        conn = self._conn
        transport = conn.transport
        while transport.get_write_buffer_size() and not conn.closed:   # the 101 head is normally sent at once
            await asyncio.sleep(0.001)
        if conn.closed:
            raise ConnectionResetError("the client closed the connection")
        fd = os.dup(transport.get_extra_info("socket").fileno())
        conn.cancel_on_lost = False
        transport.abort()          # closes our descriptor, no shutdown(2): the duplicate keeps the connection
        return fd


class StreamWriter:
    """The body of a streamed (chunked) response. write() raises ConnectionError once the client went away."""

    def __init__(self, conn: _Connection, chunked: bool, head_only: bool) -> None:
        self._conn = conn
        self._chunked = chunked
        self._head_only = head_only
        self.closed = False

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise RuntimeError("write to a closed response stream")
        conn = self._conn
        if conn.closed:
            raise ConnectionResetError("the client closed the connection")
        if not data or self._head_only:
            return
        conn.write(chunk(data) if self._chunked else data)
        await conn.drain()

    async def write_json(self, obj: Any) -> None:
        await self.write(json_bytes(obj))

    async def close(self) -> None:
        """Send the final chunk (the server does it for the handler if it forgets)."""
        if self.closed:
            return
        self.closed = True
        conn = self._conn
        if self._chunked and not self._head_only and not conn.closed:
            conn.write(b"0\r\n\r\n")


class HijackWriter:
    """The write side of a hijacked connection (asyncio.StreamWriter's shape: write, drain, close...)."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self.transport = conn.transport

    def write(self, data: bytes) -> None:
        if self._conn.closed:
            raise ConnectionResetError("the client closed the connection")
        if data:
            self.transport.write(data)

    def writelines(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    async def drain(self) -> None:
        await self._conn.drain()

    async def wait_peer_read(self, timeout: float = 0.5) -> None:
        """Wait (at most `timeout`) until the peer has read every byte sent so far. A client that reads the
        head through a buffered reader and the rest from the raw socket (docker-py, requests) loses what
        arrived with the head. Only a unix socket tells (SIOCOUTQ: bytes its peer has not read yet);
        elsewhere this returns at once."""
        import asyncio
        import fcntl
        import socket
        import struct
        import termios
        sock = self.transport.get_extra_info("socket")
        if sock is None or sock.family != socket.AF_UNIX:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._conn.closed and loop.time() < deadline:
            if not self.transport.get_write_buffer_size():
                unread = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
                if unread == 0:
                    return
            await asyncio.sleep(0.001)

    def can_write_eof(self) -> bool:
        return self.transport.can_write_eof()

    def write_eof(self) -> None:
        if not self._conn.closed and self.transport.can_write_eof():
            self.transport.write_eof()

    def is_closing(self) -> bool:
        return self._conn.closed or self.transport.is_closing()

    def close(self) -> None:
        self._conn.close_gracefully()

    async def wait_closed(self) -> None:
        await self._conn.wait_lost()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)


_READ_HIGH = MAX_HEAD + (256 << 10)   # pause reading when this much is buffered and unparsed
_WRITE_HIGH = 512 << 10               # transport write buffer high-water mark
_DISCARD_LIMIT = 256 << 10            # unread request body we swallow to keep a connection alive
_LINGER = 1.0                         # seconds to wait for the client's EOF after our last response


class _Connection:
    """asyncio protocol for one server connection; its task (serve) handles the requests in order."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.parser = HTTPParser("request")
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task | None = None
        self.idle = True
        self.closed = False              # connection_lost happened
        self.eof = False                 # the client shut down its write side
        self.cancel_on_lost = False
        self._waiter: asyncio.Future | None = None
        self._read_paused = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future] = []
        self._lost_waiters: list[asyncio.Future] = []
        self._raw_reader: asyncio.StreamReader | None = None
        self._discarding = False
        self._lingering = False
        self._linger_timer: asyncio.TimerHandle | None = None
        self._is_tls = False

    # ---- asyncio protocol callbacks
    def connection_made(self, transport: Any) -> None:   # uvloop's transports are not asyncio's classes
        self.transport = transport
        self._is_tls = transport.get_extra_info("sslcontext") is not None
        try:
            transport.set_write_buffer_limits(high=_WRITE_HIGH)
        except (AttributeError, NotImplementedError):
            pass
        self.server._connections.add(self)
        self.task = self.server._loop.create_task(self.serve())

    def data_received(self, data: bytes) -> None:
        if self._raw_reader is not None:
            self._raw_reader.feed_data(data)
        elif not self._discarding:
            self.parser.feed(data)
            if self.parser.buffered > _READ_HIGH and not self._read_paused:
                self._read_paused = True
                self.transport.pause_reading()
            self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        if self._raw_reader is not None:
            self._raw_reader.feed_eof()
            return not self._is_tls  # a half-close: the handler sees EOF and still writes
        self.parser.feed_eof()
        self._wake()
        if self.cancel_on_lost:
            return False  # an HTTP client that stops sending during a streamed answer is gone: close, cancel
        # otherwise answer the request in flight first (TLS can't half-close)
        return not (self._discarding or self._is_tls)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = self.eof = True
        if self._raw_reader is not None:
            self._raw_reader.feed_eof()
        self.parser.feed_eof()
        self._wake()
        for fut in self._drain_waiters + self._lost_waiters:
            if not fut.done():
                fut.set_result(None)
        self.server._connections.discard(self)
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        if self.cancel_on_lost and self.task is not None and not self.task.done():
            self.task.cancel()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        for fut in self._drain_waiters:
            if not fut.done():
                fut.set_result(None)

    # ---- plumbing used by Request / StreamWriter / HijackWriter
    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("the client closed the connection")
        if not self._write_paused:
            return
        fut = self.server._loop.create_future()
        self._drain_waiters.append(fut)
        try:
            await fut
        finally:
            self._drain_waiters.remove(fut)
        if self.closed:
            raise ConnectionResetError("the client closed the connection")

    async def wait_lost(self) -> None:
        if self.closed:
            return
        fut = self.server._loop.create_future()
        self._lost_waiters.append(fut)
        try:
            await fut
        finally:
            self._lost_waiters.remove(fut)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next_event(self) -> Any:
        parser = self.parser
        while True:
            event = parser.next_event()
            if event is not NEED_DATA:
                return event
            if self._read_paused:
                self._read_paused = False
                self.transport.resume_reading()
            self._waiter = self.server._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def switch_to_raw(self) -> asyncio.StreamReader:
        import asyncio
        reader = asyncio.StreamReader(limit=1 << 16)
        if self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()
        reader.set_transport(self.transport)
        leftover = self.parser.take_buffered()
        if leftover:
            reader.feed_data(leftover)
        if self.eof:
            reader.feed_eof()
        self._raw_reader = reader
        return reader

    def close_gracefully(self) -> None:
        """Close after our output is flushed. If the client has not finished sending, shut down our write side
        and wait (bounded) for its EOF while discarding input: closing a TCP socket with unread input sends a
        reset, which can destroy the response we just wrote before the client reads it."""
        transport = self.transport
        if self.closed or self._lingering or transport.is_closing():
            return
        self.idle = True
        if self.eof or self._is_tls or not transport.can_write_eof():
            transport.close()
            return
        self._lingering = self._discarding = True
        if self._raw_reader is not None:
            self._raw_reader = None
        if self._read_paused:
            self._read_paused = False
        try:
            transport.resume_reading()
        except Exception:
            pass
        transport.write_eof()
        self._linger_timer = self.server._loop.call_later(_LINGER, transport.close)

    # ---- the request loop
    async def serve(self) -> None:
        import asyncio
        server = self.server
        try:
            while not server.closing:
                self.idle = True
                try:
                    head = await self.next_event()
                except IncompleteMessage:
                    return
                except ParseError as e:
                    self._send_error(e.status, e.message)
                    return
                if type(head) is not RequestHead:
                    return
                self.idle = False
                self.cancel_on_lost = False
                if not await self._handle(head):
                    return
        except asyncio.CancelledError:
            pass
        except Exception:
            server.log.exception("HTTP connection failed")
        finally:
            self.cancel_on_lost = False
            if not self.closed:
                self.close_gracefully()

    def _send_error(self, status: int, message: str) -> None:
        """The answer to a request that could not be parsed; the connection closes after it."""
        body, content_type = self.server.error_response(status, message).encode()
        headers = self.server.common_headers()
        if content_type:
            headers.append(("Content-Type", content_type))
        headers += [("Content-Length", str(len(body))), ("Connection", "close")]
        self.write(format_head(f"HTTP/1.1 {status} {REASONS.get(status, '')}", headers) + body)

    async def _handle(self, head: RequestHead) -> bool:
        """Route and run one request, send its response; True when the connection may serve another."""
        server = self.server
        raw_path, _, query_string = head.target.partition("?")
        if raw_path.startswith(("http://", "https://")):  # absolute-form target
            raw_path = "/" + raw_path.split("/", 3)[3] if raw_path.count("/") >= 3 else "/"
        req = Request(self, head, raw_path, query_string)
        for middleware in server.middleware:
            raw_path = middleware.route(req, raw_path)
        req.path = unquote(raw_path)
        try:
            result = await self._run_handler(req)
        except ConnectionError as e:
            if self.closed or self.eof:
                server.log.debug("%s %s: client went away: %s", req.method, req.target, e)
                return False  # nothing to answer
            return self._answer_exception(req)
        except HTTPError as e:
            if req.started:
                server.log.warning("%s %s failed after the response started: %s", req.method, req.target, e)
                return False
            result = server.error_response(e.status, e.message)
        except Exception:
            return self._answer_exception(req)
        if req.hijacked or self.closed:
            return False
        try:
            if req._stream is not None or req.started:
                if req._stream is not None and not req._stream.closed:
                    await req._stream.close()
            else:
                await self._send_result(req, result)
        except ConnectionError:
            return False
        self.cancel_on_lost = False
        return req.keep_alive and not server.closing and await self._finish_body(req)

    async def _run_handler(self, req: Request) -> Any:
        server = self.server
        handler, params = server.router.match(req.method, req.path)
        if handler is None:
            raise HTTPError("page not found", 404)
        for middleware in server.middleware:
            middleware.check(req)
        result = handler(req, **params)
        if hasattr(result, "__await__"):
            result = await result
        return result

    def _answer_exception(self, req: Request) -> bool:
        import sys
        exc = sys.exc_info()[1]
        self.server.log.error("handler for %s %s failed", req.method, req.target, exc_info=True)
        if req.started or self.closed:
            return False
        req.keep_alive = False  # the handler's state of the body is unknown
        body, content_type = self.server.error_response(500, str(exc) or type(exc).__name__).encode()
        extra = [("Content-Type", content_type)] if content_type else []
        self.write(self.server.response_head(req, 500, extra, None, length=len(body))
                   + (b"" if req.method == "HEAD" else body))
        return False

    async def _send_result(self, req: Request, result: Any) -> None:
        if result is None:
            response = Response(204)
        elif isinstance(result, Response):
            response = result
        else:
            response = Response(200, result)
        body, content_type = response.encode()
        status = response.status
        if status in (204, 304) or 100 <= status < 200:
            body, content_type = b"", None
        extra = [("Content-Type", content_type)] if content_type else []
        head = self.server.response_head(req, status, extra, response.headers, length=len(body),
                                         framing=status not in (204, 304))
        req.started = True
        if req.method == "HEAD" or not body:
            self.write(head)
        elif len(body) <= 1 << 16:
            self.write(head + body)
        else:
            self.write(head)
            self.write(body)
        await self.drain()

    async def _finish_body(self, req: Request) -> bool:
        """Swallow what the handler left of the request body, so the next request can be parsed."""
        if req._eom:
            return True
        if req.head.expect_continue and req.has_body and not req._continue_sent:
            return False  # the client waits for "100 Continue" that will never come
        discarded = 0
        while True:
            try:
                event = await self.next_event()
            except ParseError:
                return False
            if type(event) is EndOfMessage:
                return True
            if type(event) is not Data:
                return False
            discarded += len(event.data)
            if discarded > _DISCARD_LIMIT:
                return False


class Server:
    """Routes requests to handlers (see Router). Runs on any asyncio loop (stdlib, uvloop).

    middleware: run in order around routing (see Middleware). error_response(status, message) makes the
    answer to an HTTPError, an unknown route, a failed handler and an unparsable request.
    server_header: the Server field of every response (none when None)."""

    def __init__(self, router: Router, middleware: Sequence[Middleware] = (),
                 error_response: Callable[[int, str], Response] | None = None, server_header: str | None = None,
                 log: logging.Logger | None = None) -> None:
        if log is None:
            import logging
            log = logging.getLogger("pyd.http")
        self.router = router
        self.middleware = tuple(middleware)
        self.error_response = error_response or plain_error
        self.server_header = server_header
        self.log = log
        self.closing = False
        self._listeners: list[asyncio.AbstractServer] = []
        self._unix_paths: list[tuple[str, int]] = []
        self._connections: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._date = (0, "")

    # ---- listening
    async def listen_unix(self, path: str, mode: int = 0o660) -> asyncio.AbstractServer:
        import os
        import stat
        self._remember_loop()
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)  # stale socket of a previous server
        except FileNotFoundError:
            pass
        listener = await self._loop.create_unix_server(self._protocol, path=path, backlog=1024)
        os.chmod(path, mode)
        self._unix_paths.append((path, os.stat(path).st_ino))
        self._listeners.append(listener)
        return listener

    async def listen_tcp(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None
                         ) -> asyncio.AbstractServer:
        self._remember_loop()
        listener = await self._loop.create_server(self._protocol, host, port, ssl=ssl_context,
                                                  reuse_address=True, backlog=1024)
        self._listeners.append(listener)
        return listener

    async def listen_socket(self, sock: Any, ssl_context: ssl.SSLContext | None = None) -> asyncio.AbstractServer:
        """An already bound and listening socket (fd:// socket activation)."""
        import socket
        self._remember_loop()
        sock.setblocking(False)
        if sock.family == socket.AF_UNIX:
            listener = await self._loop.create_unix_server(self._protocol, sock=sock, ssl=ssl_context)
        else:
            listener = await self._loop.create_server(self._protocol, sock=sock, ssl=ssl_context)
        self._listeners.append(listener)
        return listener

    @property
    def sockets(self) -> list[Any]:
        return [s for listener in self._listeners for s in (listener.sockets or ())]

    def _remember_loop(self) -> None:
        import asyncio
        self._loop = asyncio.get_running_loop()

    def _protocol(self) -> _Connection:
        return _Connection(self)

    async def close(self, timeout: float = 2.0) -> None:
        """Stop listening, close idle connections, cancel running handlers; bounded by `timeout`."""
        import asyncio
        import os
        self.closing = True
        for listener in self._listeners:
            listener.close()
        for conn in list(self._connections):
            if conn.idle:
                conn.transport.close()
            elif conn.task is not None:
                conn.task.cancel()
        tasks = [c.task for c in self._connections if c.task is not None and not c.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        for conn in list(self._connections):
            conn.transport.abort()
        for listener in self._listeners:
            try:
                await asyncio.wait_for(listener.wait_closed(), timeout)
            except (asyncio.TimeoutError, Exception):
                pass
        self._listeners.clear()
        for path, inode in self._unix_paths:
            try:
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
            except OSError:
                pass
        self._unix_paths.clear()

    # ---- response helpers
    def common_headers(self) -> list[tuple[str, str]]:
        """The fields every response starts with: the middleware's, Server, Date."""
        import time
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, http_date(now))
        headers = [h for middleware in self.middleware for h in middleware.headers()]
        if self.server_header is not None:
            headers.append(("Server", self.server_header))
        headers.append(("Date", self._date[1]))
        return headers

    def response_head(self, req: Request, status: int, extra: list[tuple[str, str]], handler_headers: Any,
                      length: int | None = None, reason: str | None = None, framing: bool = True) -> bytes:
        headers = Headers(self.common_headers())
        headers.extend(extra)
        if length is not None and framing:
            headers["Content-Length"] = str(length)
        if handler_headers:
            headers.update(handler_headers)
        if not req.keep_alive and not req.hijacked:
            headers["Connection"] = "close"
        reason = reason if reason is not None else REASONS.get(status, "")
        return format_head(f"HTTP/1.1 {status} {reason}", headers.items())
