"""HTTP/2 over a connection that HTTP/1.1 already handed over (hijacked, or upgraded to h2c), on asyncio.

The frame and HPACK state machine is `h2` (python-hyper); this module drives it: one reader task feeds
bytes in, streams hand out what arrived and send with flow control (a send waits for the peer's window).
Both roles: a server calls `handler(stream)` for each request the peer opens; a client opens streams.
The receive window is given back as the application reads, so a slow consumer slows the peer down.
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Protocol, Sequence

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

Headers = Sequence[tuple[str, str]]


class Writer(Protocol):
    """The sending half: a hijacked connection's writer or an asyncio.StreamWriter."""
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...

# What we let a peer send before it must wait for our reads: 1 MiB per stream, 4 MiB for the connection.
STREAM_WINDOW = 1 << 20
CONNECTION_WINDOW = 4 << 20
READ_SIZE = 64 << 10


class StreamReset(ConnectionError):
    """The peer reset the stream (RST_STREAM) or the connection went away."""


class H2Stream:
    """One HTTP/2 stream: its received headers and body, and the calls that send on it."""

    def __init__(self, conn: "H2Connection", stream_id: int) -> None:
        self.conn = conn
        self.id = stream_id
        self.headers: list[tuple[str, str]] = []      # request headers (server) or response headers (client)
        self.trailers: list[tuple[str, str]] = []
        self.error: int | None = None                 # the reset code, once reset
        self._received = asyncio.Event()               # headers arrived (client side)
        self._chunks: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue()
        self._ended = False                            # the peer's half is done (END_STREAM or reset)

    def header(self, name: str, default: str | None = None) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return default

    async def response_headers(self) -> list[tuple[str, str]]:
        """Client side: wait for the response's headers."""
        await self._received.wait()
        if self.error is not None and not self.headers:
            raise StreamReset(f"stream {self.id} reset by the peer (code {self.error})")
        return self.headers

    async def read(self) -> bytes:
        """The next piece of the body; b"" once the peer ended its half (raises StreamReset on a reset)."""
        if self._ended and self._chunks.empty():
            return self._end_of_body()
        item = await self._chunks.get()
        if item is None:
            self._ended = True
            return self._end_of_body()
        data, flow = item
        self.conn._consumed(self.id, flow)
        return data

    def _end_of_body(self) -> bytes:
        if self.conn.client:
            self.conn._forget(self.id)    # the response is over: nothing more arrives for this stream
        if self.error is not None:
            raise StreamReset(f"stream {self.id} reset by the peer (code {self.error})")
        return b""

    async def send_headers(self, headers: Headers, end_stream: bool = False) -> None:
        await self.conn._send_headers(self.id, headers, end_stream)

    async def send_data(self, data: bytes, end_stream: bool = False) -> None:
        await self.conn._send_data(self.id, data, end_stream)

    async def end(self, trailers: Headers | None = None) -> None:
        """Close our half: with trailers (gRPC's status) or an empty END_STREAM."""
        if trailers:
            await self.conn._send_headers(self.id, trailers, True)
        else:
            await self.conn._send_data(self.id, b"", True)

    def reset(self, code: int = 8) -> None:   # 8: CANCEL
        self.conn._reset(self.id, code)

    # ---- fed by the connection
    def _on_data(self, data: bytes, flow: int) -> None:
        self._chunks.put_nowait((data, flow))

    def _on_end(self) -> None:
        self._chunks.put_nowait(None)

    def _on_reset(self, code: int) -> None:
        if self.error is None:
            self.error = code
        self._received.set()
        self._chunks.put_nowait(None)


class H2Connection:
    """An HTTP/2 connection over (reader, writer): asyncio.StreamReader and a writer with write()/drain()."""

    def __init__(self, reader: asyncio.StreamReader, writer: Writer, *, client: bool,
                 handler: Callable[[H2Stream], Awaitable[None]] | None = None) -> None:
        self._reader = reader
        self._writer = writer
        self.client = client
        self._handler = handler
        config = h2.config.H2Configuration(client_side=client, header_encoding="utf-8")
        self._h2 = h2.connection.H2Connection(config=config)
        self._streams: dict[int, H2Stream] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}     # the handler of each stream the peer opened
        self._window = asyncio.Event()   # set when the peer opened a window (or the connection ended)
        self._closed = asyncio.Event()
        self._started = False

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def start(self) -> None:
        """Send our preface and settings; run() calls it, a client may call it first to open streams."""
        if self._started:
            return
        self._started = True
        self._h2.local_settings = h2.settings.Settings(client=self.client, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000,
            h2.settings.SettingCodes.ENABLE_PUSH: 0})
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._flush()

    async def run(self) -> None:
        """Read and dispatch frames until the peer goes away; then every open stream is reset."""
        self.start()
        try:
            while True:
                data = await self._reader.read(READ_SIZE)
                if not data:
                    break
                try:
                    events = self._h2.receive_data(data)
                except h2.exceptions.ProtocolError:
                    self._flush()    # h2 queued a GOAWAY naming the error
                    break
                for event in events:
                    self._dispatch(event)
                self._flush()
                await self._drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._shutdown()

    async def open_stream(self, headers: Headers, end_stream: bool = False) -> H2Stream:
        """Client side: a new request stream with these headers (pseudo-headers first)."""
        self.start()
        if self.closed:
            raise StreamReset("the connection is closed")
        stream_id = self._h2.get_next_available_stream_id()
        stream = H2Stream(self, stream_id)
        self._streams[stream_id] = stream
        await self._send_headers(stream_id, headers, end_stream)
        return stream

    async def close(self) -> None:
        """Say GOAWAY and stop: the reader ends, open streams are reset."""
        if not self.closed:
            try:
                self._h2.close_connection()
                self._flush()
            except (ConnectionError, h2.exceptions.ProtocolError):
                pass
        self._shutdown()
        close = getattr(self._writer, "close", None)
        if close is not None:
            close()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # ---- events
    def _dispatch(self, event: h2.events.Event) -> None:
        ev: Any = event
        if isinstance(event, h2.events.RequestReceived):
            stream = H2Stream(self, ev.stream_id)
            stream.headers = list(ev.headers)
            self._streams[ev.stream_id] = stream
            if self._handler is None:
                self._reset(ev.stream_id, 7)    # REFUSED_STREAM: we serve nothing on this side
                return
            if ev.stream_ended is not None:
                stream._on_end()
            self._tasks[ev.stream_id] = asyncio.get_running_loop().create_task(self._serve(stream))
        elif isinstance(event, h2.events.ResponseReceived):
            stream = self._streams.get(ev.stream_id)
            if stream is not None:
                stream.headers = list(ev.headers)
                stream._received.set()
                if ev.stream_ended is not None:
                    stream._on_end()
        elif isinstance(event, h2.events.TrailersReceived):
            stream = self._streams.get(ev.stream_id)
            if stream is not None:
                stream.trailers = list(ev.headers)
                stream._received.set()    # a trailers-only response (gRPC errors) has no other headers
                if ev.stream_ended is not None:
                    stream._on_end()
        elif isinstance(event, h2.events.DataReceived):
            stream = self._streams.get(ev.stream_id)
            if stream is None:
                self._h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            else:
                stream._on_data(ev.data, ev.flow_controlled_length)
                if ev.stream_ended is not None:
                    stream._on_end()
        elif isinstance(event, h2.events.StreamEnded):
            # already handled through stream_ended on the frame's own event
            pass
        elif isinstance(event, h2.events.StreamReset):
            stream = self._streams.pop(ev.stream_id, None)
            if stream is not None:
                stream._on_reset(ev.error_code)
            task = self._tasks.pop(ev.stream_id, None)
            if task is not None:
                task.cancel()    # the peer gave up on the call (a cancelled context in grpc-go)
            self._window.set()
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self._window.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._shutdown()

    async def _serve(self, stream: H2Stream) -> None:
        assert self._handler is not None
        try:
            await self._handler(stream)
        except (StreamReset, ConnectionError):
            pass
        finally:
            self._forget(stream.id)
            self._tasks.pop(stream.id, None)

    def _forget(self, stream_id: int) -> None:
        self._streams.pop(stream_id, None)

    # ---- sending
    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and not self.closed:
            try:
                self._writer.write(data)
            except (ConnectionError, RuntimeError):
                self._shutdown()

    async def _drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, RuntimeError):
            self._shutdown()

    def _check(self, stream_id: int) -> None:
        if self.closed:
            raise StreamReset("the connection is closed")
        stream = self._streams.get(stream_id)
        if stream is not None and stream.error is not None:
            raise StreamReset(f"stream {stream_id} reset by the peer (code {stream.error})")

    async def _send_headers(self, stream_id: int, headers: Headers, end_stream: bool) -> None:
        self._check(stream_id)
        try:
            self._h2.send_headers(stream_id, list(headers), end_stream=end_stream)
        except h2.exceptions.StreamClosedError as exc:
            raise StreamReset(str(exc)) from None
        self._flush()
        await self._drain()

    async def _send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        view = memoryview(data)
        while True:
            self._check(stream_id)
            try:
                window = self._h2.local_flow_control_window(stream_id)
            except h2.exceptions.StreamClosedError as exc:
                raise StreamReset(str(exc)) from None
            if not view:
                break
            if window <= 0:
                self._window.clear()
                await self._window.wait()
                continue
            n = min(window, self._h2.max_outbound_frame_size, len(view))
            last = n == len(view)
            self._h2.send_data(stream_id, bytes(view[:n]), end_stream=end_stream and last)
            view = view[n:]
            self._flush()
            await self._drain()
            if last:
                return
        if end_stream:
            self._h2.end_stream(stream_id)
            self._flush()
            await self._drain()

    def _reset(self, stream_id: int, code: int) -> None:
        if self.closed:
            return
        try:
            self._h2.reset_stream(stream_id, code)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            stream._on_reset(code)
        self._flush()

    def _consumed(self, stream_id: int, flow: int) -> None:
        if flow and not self.closed:
            try:
                self._h2.acknowledge_received_data(flow, stream_id)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                return
            self._flush()

    def _shutdown(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._window.set()
        for stream in list(self._streams.values()):
            stream._on_reset(2)   # INTERNAL_ERROR as far as the streams can tell: nothing more comes
        self._streams.clear()
        for task in list(self._tasks.values()):
            task.cancel()        # once each: a second cancel would cut the handler's own clean-up short
        self._tasks.clear()
