"""pyd.formats.jsonstream: JSON documents one per line or concatenated, split anywhere."""
from __future__ import annotations

import pytest

from pyd.formats.jsonstream import JSONStreamDecoder, iter_json


def test_json_stream_decoder_lines_and_concatenated() -> None:
    text = b'{"status":"Pulling"}\n{"id":"a","x":[1,2]}{"b":"\xc3\xa9"}\r\n  [3] "s" 42 '
    for step in (1, 2, 5, len(text)):
        dec = JSONStreamDecoder()
        docs = []
        for i in range(0, len(text), step):
            docs += dec.feed(text[i:i + step])
        docs += dec.close()
        assert docs == [{"status": "Pulling"}, {"id": "a", "x": [1, 2]}, {"b": "é"}, [3], "s", 42]
    dec = JSONStreamDecoder()
    dec.feed(b'{"a": 1')
    with pytest.raises(ValueError):
        dec.close()


def test_iter_json_over_chunks() -> None:
    assert list(iter_json([b'{"a":', b'1}\n{"b"', b':2}'])) == [{"a": 1}, {"b": 2}]
    with pytest.raises(ValueError):
        list(iter_json([b'{"a": 1']))
