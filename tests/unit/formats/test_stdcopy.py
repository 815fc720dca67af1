"""pyd.formats.stdcopy: Docker's multiplexed stream, framed and read back in every split."""
from __future__ import annotations

import pytest

from pyd.formats.stdcopy import StdcopyDemuxer, stdcopy_frame


def test_stdcopy_frames_split_across_feeds() -> None:
    stream = stdcopy_frame(1, b"hello\n") + stdcopy_frame(2, b"oops\n") + stdcopy_frame(1, b"x" * 70000)
    assert stream[:8] == b"\x01\x00\x00\x00\x00\x00\x00\x06"
    for step in (1, 3, 7, 8, 9, 4096, len(stream)):
        demux = StdcopyDemuxer()
        got: dict[int, bytes] = {1: b"", 2: b""}
        order = []
        for i in range(0, len(stream), step):
            for stream_id, data in demux.feed(stream[i:i + step]):
                got[stream_id] += data
                if not order or order[-1] != stream_id:
                    order.append(stream_id)
        assert got == {1: b"hello\n" + b"x" * 70000, 2: b"oops\n"} and order == [1, 2, 1]
        assert demux.at_frame_boundary
    with pytest.raises(ValueError):
        StdcopyDemuxer().feed(b"\x09\x00\x00\x00\x00\x00\x00\x01a")
