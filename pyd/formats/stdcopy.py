"""Docker's multiplexed stream (attach, exec and logs without a tty): frames of [stream, 0, 0, 0, len:u32be]
+ payload, stream 0 stdin, 1 stdout, 2 stderr, 3 the daemon's system error. Sans-IO."""
from __future__ import annotations


def stdcopy_frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed-stream frame: [stream, 0, 0, 0, len:u32be] + data (0 stdin, 1 stdout, 2 stderr)."""
    return bytes((stream, 0, 0, 0)) + len(data).to_bytes(4, "big") + data


class StdcopyDemuxer:
    """Sans-IO reader of Docker's multiplexed stream. feed() returns (stream, payload) pairs; a frame's payload
    is delivered as soon as its bytes arrive, so one large frame may come out in several pieces."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._stream = 0
        self._remaining = 0   # payload bytes of the current frame still to come

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        if self._buf:  # at most 7 bytes of a split header
            data = bytes(self._buf) + data
            self._buf.clear()
        elif type(data) is not bytes:
            data = bytes(data)
        pos, n = 0, len(data)
        while pos < n:
            if self._remaining:
                take = min(self._remaining, n - pos)
                out.append((self._stream, data if take == n else data[pos:pos + take]))
                self._remaining -= take
                pos += take
                continue
            if n - pos < 8:
                self._buf += data[pos:]
                break
            stream = data[pos]
            if stream > 3:
                raise ValueError(f"Unrecognized input header: {stream}")
            self._stream = stream
            self._remaining = int.from_bytes(data[pos + 4:pos + 8], "big")
            pos += 8
        return out

    @property
    def at_frame_boundary(self) -> bool:
        """True when no partial frame is pending (a clean end of stream)."""
        return not self._remaining and not self._buf
