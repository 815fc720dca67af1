"""gRPC over pyd.http.h2conn: message framing, status trailers, and calls in both directions.

A message on the wire is a flag byte (0: not compressed), a big-endian u32 length, then the protobuf
bytes. A call ends with trailers `grpc-status` (0 OK) and `grpc-message` (percent-encoded); an error
before any message is answered "trailers-only" (one HEADERS frame with :status 200 and the status).
The server side serves Control on /grpc; the client side calls the services a session exposes.
"""
from __future__ import annotations

import asyncio
import logging
import struct
from typing import AsyncIterator, Awaitable, Callable, Sequence
from urllib.parse import quote, unquote

from pyd.http.h2conn import H2Connection, H2Stream, StreamReset, Writer

log = logging.getLogger("pyd.buildkit")

# status codes (google.rpc.Code)
OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT = 0, 1, 2, 3
NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED = 5, 6, 7, 8
FAILED_PRECONDITION, ABORTED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 9, 10, 12, 13, 14

MAX_MESSAGE = 64 << 20       # what one received message may weigh (grpc-go's servers take 4 MiB by default)
CONTENT_TYPE = "application/grpc"


class GrpcError(Exception):
    """A call that ended with a non-zero grpc-status (raised by handlers; raised to callers)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"rpc error: code = {self.code} desc = {self.message}"


def frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


class MessageReader:
    """Length-prefixed messages out of a stream's body, whatever the DATA frames' boundaries."""

    def __init__(self, stream: H2Stream) -> None:
        self._stream = stream
        self._buf = bytearray()
        self._eof = False

    async def next(self) -> bytes | None:
        """The next message, or None at the end of the peer's half."""
        while True:
            if len(self._buf) >= 5:
                flag, size = struct.unpack_from(">BI", self._buf)
                if flag:
                    raise GrpcError(UNIMPLEMENTED, "compressed messages are not supported")
                if size > MAX_MESSAGE:
                    raise GrpcError(RESOURCE_EXHAUSTED, f"message of {size} bytes is larger than {MAX_MESSAGE}")
                if len(self._buf) >= 5 + size:
                    message = bytes(self._buf[5:5 + size])
                    del self._buf[:5 + size]
                    return message
            if self._eof:
                if self._buf:
                    raise GrpcError(INTERNAL, "the stream ended inside a message")
                return None
            data = await self._stream.read()
            if not data:
                self._eof = True
            self._buf += data


def _status_headers(code: int, message: str) -> list[tuple[str, str]]:
    headers = [("grpc-status", str(code))]
    if message:
        headers.append(("grpc-message", quote(message, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")))
    return headers


# ---- server

UnaryHandler = Callable[[bytes], Awaitable[bytes]]
StreamHandler = Callable[[bytes], AsyncIterator[bytes]]
MetadataHandler = Callable[[bytes, dict[str, str]], Awaitable[bytes]]   # unary, with the call's metadata


class GrpcServer:
    """Routes each request stream by :path ("/package.Service/Method") to a unary or server-streaming
    handler; anything else answers UNIMPLEMENTED, as grpc-go does."""

    def __init__(self, unary: dict[str, UnaryHandler], streaming: dict[str, StreamHandler],
                 with_metadata: dict[str, MetadataHandler] | None = None) -> None:
        self._unary = unary
        self._streaming = streaming
        self._with_metadata = with_metadata or {}

    async def serve(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        """Serve one HTTP/2 connection (a hijacked one: asyncio reader, writer with write/drain) until the
        peer goes away."""
        await H2Connection(reader, writer, client=False, handler=self.handle).run()

    async def handle(self, stream: H2Stream) -> None:
        path = stream.header(":path", "") or ""
        started = False
        try:
            if stream.header(":method") != "POST" or not (stream.header("content-type") or "").startswith(CONTENT_TYPE):
                await stream.send_headers([(":status", "415"), ("content-type", "text/plain")], end_stream=True)
                return
            unary, streaming = self._unary.get(path), self._streaming.get(path)
            contextual = self._with_metadata.get(path)
            if contextual is not None:
                metadata = {k: v for k, v in stream.headers if not k.startswith(":")}
                unary = lambda request: contextual(request, metadata)   # noqa: E731
            if unary is None and streaming is None:
                raise GrpcError(UNIMPLEMENTED, f"unknown method {path.rsplit('/', 1)[-1]} for service "
                                               f"{path.strip('/').rsplit('/', 1)[0]}")
            request = await _single_request(stream)
            if unary is not None:
                reply = await unary(request)
                await stream.send_headers([(":status", "200"), ("content-type", CONTENT_TYPE)])
                started = True
                await stream.send_data(frame(reply))
            else:
                assert streaming is not None
                async for reply in streaming(request):
                    if not started:
                        await stream.send_headers([(":status", "200"), ("content-type", CONTENT_TYPE)])
                        started = True
                    await stream.send_data(frame(reply))
            status, message = OK, ""
        except StreamReset:
            return
        except GrpcError as exc:
            status, message = exc.code, exc.message
        except Exception as exc:   # a bug in a handler: the caller sees UNKNOWN, the log has the traceback
            log.exception("grpc %s failed", path)
            status, message = UNKNOWN, str(exc) or type(exc).__name__
        try:
            if started:
                await stream.end(_status_headers(status, message))
            else:
                await stream.send_headers([(":status", "200"), ("content-type", CONTENT_TYPE),
                                           *_status_headers(status, message)], end_stream=True)
        except StreamReset:
            pass


async def _single_request(stream: H2Stream) -> bytes:
    reader = MessageReader(stream)
    request = await reader.next()
    if request is None:
        raise GrpcError(INTERNAL, "no request message")
    if await reader.next() is not None:
        raise GrpcError(INTERNAL, "more than one request message for a unary call")
    return request


# ---- client

class GrpcCall:
    """One call in flight (any of the four kinds): send() requests, close() our half, recv() replies."""

    def __init__(self, stream: H2Stream) -> None:
        self._stream = stream
        self._reader = MessageReader(stream)
        self._checked = False

    async def send(self, message: bytes) -> None:
        await self._stream.send_data(frame(message))

    async def close(self) -> None:
        """No more requests (the server sees the end of the request stream)."""
        await self._stream.end()

    def cancel(self) -> None:
        self._stream.reset()

    async def recv(self) -> bytes | None:
        """The next reply; None when the call ended OK; GrpcError when it ended with another status."""
        if not self._checked:
            headers = dict(await self._stream.response_headers())
            status = headers.get(":status", "")
            if status != "200":
                raise GrpcError(UNKNOWN, f"unexpected HTTP status code received from server: {status}")
            self._checked = True
        message = await self._reader.next()
        if message is not None:
            return message
        trailers = dict(self._stream.trailers or self._stream.headers)
        code = int(trailers.get("grpc-status", UNKNOWN))
        if code != OK:
            raise GrpcError(code, unquote(trailers.get("grpc-message", "")))
        return None


class GrpcClient:
    """Calls over a connection on which we are the HTTP/2 client (the session the build client opened)."""

    def __init__(self, conn: H2Connection, authority: str = "localhost") -> None:
        self._conn = conn
        self._authority = authority

    async def call(self, method: str, metadata: Sequence[tuple[str, str]] = ()) -> GrpcCall:
        """Open a call to "/package.Service/Method"; metadata as lower-case header pairs."""
        stream = await self._conn.open_stream([
            (":method", "POST"), (":scheme", "http"), (":path", method), (":authority", self._authority),
            ("content-type", CONTENT_TYPE), ("te", "trailers"), *metadata])
        return GrpcCall(stream)

    async def unary(self, method: str, request: bytes, metadata: Sequence[tuple[str, str]] = ()) -> bytes:
        call = await self.call(method, metadata)
        await call.send(request)
        await call.close()
        reply = await call.recv()
        if reply is None:
            raise GrpcError(INTERNAL, f"{method}: no reply message")
        while await call.recv() is not None:
            pass
        return reply
