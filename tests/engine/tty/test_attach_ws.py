"""GET /containers/{id}/attach/ws: a container's streams over a WebSocket (RFC 6455), as a browser or
websocket-client would open it on the daemon's socket."""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import time

import pytest

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WSClient:
    """A minimal WebSocket client over the daemon's unix socket (masked frames out, frames in)."""

    def __init__(self, sock_path: str, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(20)
        self.sock.connect(sock_path)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n"
                          b"Origin: http://localhost\r\n\r\n")
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status_line, *lines = head.decode().split("\r\n")
        self.headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        self.expected_accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        return data

    def _need(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.buf += self._recv()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self) -> tuple[int, bytes]:
        b0, b1 = self._need(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._need(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._need(8))[0]
        assert not b1 & 0x80, "a server's frames are not masked"
        return b0 & 0x0F, self._need(n)

    def send(self, data: bytes, opcode: int = 2) -> None:
        mask = os.urandom(4)
        assert len(data) < 126
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(data)]) + mask
                          + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def read_until_close(self) -> tuple[list[int], bytes]:
        opcodes, data = [], b""
        while True:
            try:
                opcode, payload = self.frame()
            except EOFError:
                return opcodes, data
            opcodes.append(opcode)
            if opcode == 8:
                return opcodes, data
            data += payload

    def close(self) -> None:
        self.sock.close()


def test_attach_ws_streams_output_in_binary_frames(daemon, busybox):
    cid = daemon.docker("create", busybox, "sh", "-c", "sleep 0.3; printf 'hi there'; printf ' err' >&2",
                        check=True).stdout.strip()
    try:
        ws = WSClient(daemon.sock, f"/v1.47/containers/{cid}/attach/ws?stream=1&stdout=1&stderr=1&logs=1")
        try:
            assert ws.status_line.startswith("HTTP/1.1 101")
            assert ws.headers["upgrade"].lower() == "websocket"
            assert ws.headers["sec-websocket-accept"] == ws.expected_accept
            daemon.docker("start", cid, check=True)
            opcodes, data = ws.read_until_close()
            assert data == b"hi there err"               # raw: not multiplexed
            assert set(opcodes) - {8} == {2}             # binary frames since 1.28
        finally:
            ws.close()
    finally:
        daemon.docker("rm", "-f", cid)


@pytest.mark.parametrize("version,opcode", [("1.24", 1), ("1.41", 2)])
def test_attach_ws_before_1_42_attaches_every_stream_in_frames_of_its_version(daemon, busybox, version, opcode):
    cid = daemon.docker("create", busybox, "sh", "-c", "sleep 0.3; printf out; printf err >&2",
                        check=True).stdout.strip()
    try:
        # stdout only asked: API < 1.42 ignores the stream choice and attaches all three
        ws = WSClient(daemon.sock, f"/v{version}/containers/{cid}/attach/ws?stream=1&stdout=1")
        try:
            daemon.docker("start", cid, check=True)
            opcodes, data = ws.read_until_close()
            assert sorted(data.decode()) == sorted("outerr")
            assert set(opcodes) - {8} == {opcode}        # text frames before 1.28
        finally:
            ws.close()
    finally:
        daemon.docker("rm", "-f", cid)


def test_attach_ws_sends_stdin_to_the_container(daemon, busybox):
    cid = daemon.docker("run", "-d", "-i", busybox, "sh", "-c", "read line; echo got $line",
                        check=True).stdout.strip()
    try:
        ws = WSClient(daemon.sock, f"/containers/{cid}/attach/ws?stream=1&stdin=1&stdout=1")
        try:
            time.sleep(0.2)
            ws.send(b"hello\n")
            _, data = ws.read_until_close()
            assert data == b"got hello\n"
        finally:
            ws.close()
    finally:
        daemon.docker("rm", "-f", cid)


def test_attach_ws_without_a_websocket_handshake_is_refused(daemon, busybox):
    cid = daemon.docker("create", busybox, "true", check=True).stdout.strip()
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(daemon.sock)
            s.sendall(f"GET /containers/{cid}/attach/ws?stream=1 HTTP/1.1\r\nHost: x\r\n"
                      "Connection: close\r\n\r\n".encode())
            assert s.recv(4096).split(b" ")[1] == b"400"
    finally:
        daemon.docker("rm", "-f", cid)
