"""WebSocket (RFC 6455) on a hijacked connection: the handshake's accept key, the frames, and a reader and
writer with the hijacked stream's shape that carry data in frames (a server's side: unmasked out, masked in)."""
from __future__ import annotations

import base64
import hashlib
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio

    from pyd.http.server import HijackWriter

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(client_key: str) -> str:
    """Sec-WebSocket-Accept for the client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((client_key.strip() + GUID).encode()).digest()).decode()


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame (what a server sends)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


class FrameDecoder:
    """Sans-IO: feed() bytes, get [(opcode, payload)] of the whole frames so far (masks removed)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out = []
        while True:
            frame = self._take()
            if frame is None:
                return out
            out.append(frame)

    def _take(self) -> tuple[int, bytes] | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        opcode, masked, n = buf[0] & 0x0F, buf[1] & 0x80, buf[1] & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, pos = struct.unpack_from("!H", buf, 2)[0], 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, pos = struct.unpack_from("!Q", buf, 2)[0], 10
        mask = b""
        if masked:
            if len(buf) < pos + 4:
                return None
            mask, pos = bytes(buf[pos:pos + 4]), pos + 4
        if len(buf) < pos + n:
            return None
        payload = bytes(buf[pos:pos + n])
        del buf[:pos + n]
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return opcode, payload


class WebSocketWriter:
    """write() sends each piece as one data frame (binary or text); close() sends a close frame first."""

    def __init__(self, inner: HijackWriter, opcode: int = BINARY) -> None:
        self.inner, self.opcode = inner, opcode

    def write(self, data: bytes) -> None:
        if data:
            self.inner.write(encode_frame(self.opcode, data))

    async def drain(self) -> None:
        await self.inner.drain()

    def control(self, opcode: int, payload: bytes = b"") -> None:
        self.inner.write(encode_frame(opcode, payload))

    def close(self) -> None:
        if not self.inner.is_closing():
            self.control(CLOSE, struct.pack("!H", 1000))
        self.inner.close()


class WebSocketReader:
    """read() returns the payload of the client's data frames; b"" once it sent a close frame or went away.
    Pings are answered through `writer`."""

    def __init__(self, inner: asyncio.StreamReader, writer: WebSocketWriter) -> None:
        self.inner, self.writer = inner, writer
        self.decoder = FrameDecoder()
        self.pending: list[bytes] = []
        self.closed = False

    async def read(self, n: int = -1) -> bytes:
        while not self.pending and not self.closed:
            data = await self.inner.read(1 << 16)
            if not data:
                self.closed = True
                break
            for opcode, payload in self.decoder.feed(data):
                if opcode == CLOSE:
                    self.closed = True
                    break
                if opcode == PING:
                    self.writer.control(PONG, payload)
                elif opcode in (TEXT, BINARY, CONTINUATION) and payload:
                    self.pending.append(payload)
        return self.pending.pop(0) if self.pending else b""
