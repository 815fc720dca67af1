"""pyd.http.parser: the sans-IO parser fed in every split (byte by byte, whole, random), malformed input,
limits, a fuzz run; and pyd.http.headers."""
from __future__ import annotations

import random
from typing import Iterator

import pytest

from pyd.http.errors import ParseError
from pyd.http.headers import Headers
from pyd.http.parser import CLOSED, NEED_DATA, SWITCHED, Data, EndOfMessage, HTTPParser, RequestHead, ResponseHead


def parse_in_pieces(kind: str, data: bytes, sizes: Iterator[int], methods: list[str] = ()) -> list[tuple]:
    """Feed `data` in pieces of the given sizes, then EOF; return normalised events."""
    parser = HTTPParser(kind)
    for m in methods:
        parser.expect_response(m)
    events: list[tuple] = []
    pos = 0

    def pull() -> bool:
        while True:
            ev = parser.next_event()
            if ev is NEED_DATA:
                return True
            if ev is CLOSED or ev is SWITCHED:
                events.append((repr(ev), parser.take_buffered() if ev is SWITCHED else b""))
                return False
            if isinstance(ev, RequestHead):
                events.append(("request", ev.method, ev.target, ev.headers.items(), ev.keep_alive))
            elif isinstance(ev, ResponseHead):
                events.append(("response", ev.status, ev.reason, ev.headers.items()))
            elif isinstance(ev, Data):
                if events and events[-1][0] == "data":
                    events[-1] = ("data", events[-1][1] + ev.data)
                else:
                    events.append(("data", ev.data))
            elif isinstance(ev, EndOfMessage):
                events.append(("end", ev.trailers.items()))

    while pos < len(data):
        n = next(sizes)
        parser.feed(data[pos:pos + n])
        pos += n
        if not pull():
            return events
    parser.feed_eof()
    pull()
    return events


def splits(data: bytes, seed: int) -> list[Iterator[int]]:
    rnd = random.Random(seed)
    return [iter(lambda: 1, None),                                       # byte by byte
            iter(lambda: len(data), None),                               # all at once
            iter(lambda: rnd.randint(1, 17), None),                      # random small splits
            iter(lambda: rnd.randint(1, max(1, len(data) // 3)), None)]  # random large splits


REQUESTS = (
    b"GET /v1.47/containers/json?all=1 HTTP/1.1\r\nHost: pyd\r\nUser-Agent: x\r\n\r\n"
    b"POST /containers/create?name=a HTTP/1.1\r\nHost: pyd\r\nContent-Type: application/json\r\n"
    b"Content-Length: 13\r\n\r\n{\"Image\":\"a\"}"
    b"PUT /archive HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n1a\r\n" + b"z" * 26 + b"\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
    b"DELETE /containers/x HTTP/1.0\r\n\r\n"
)
REQUEST_EVENTS = [
    ("request", "GET", "/v1.47/containers/json?all=1", [("Host", "pyd"), ("User-Agent", "x")], True),
    ("end", []),
    ("request", "POST", "/containers/create?name=a",
     [("Host", "pyd"), ("Content-Type", "application/json"), ("Content-Length", "13")], True),
    ("data", b'{"Image":"a"}'), ("end", []),
    ("request", "PUT", "/archive", [("Transfer-Encoding", "chunked")], True),
    ("data", b"hello" + b"z" * 26), ("end", [("X-Checksum", "abc"), ("X-Other", "1")]),
    ("request", "DELETE", "/containers/x", [], False), ("end", []),
    ("CLOSED", b""),
]


@pytest.mark.parametrize("seed", range(5))
def test_parser_pipelined_requests_in_any_split(seed: int) -> None:
    for sizes in splits(REQUESTS, seed):
        assert parse_in_pieces("request", REQUESTS, sizes) == REQUEST_EVENTS


RESPONSES = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nApi-Version: 1.47\r\n\r\nabc"
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"            # answer to HEAD: no body despite the length
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\n{}\n\r\n4\r\n[1]\n\r\n0\r\nTrailer: yes\r\n\r\n"
    b"HTTP/1.1 204 No Content\r\n\r\n"
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"
)
RESPONSE_EVENTS = [
    ("response", 100, "Continue", []), ("end", []),
    ("response", 200, "OK", [("Content-Length", "3"), ("Api-Version", "1.47")]), ("data", b"abc"), ("end", []),
    ("response", 200, "OK", [("Content-Length", "10")]), ("end", []),
    ("response", 200, "OK", [("Transfer-Encoding", "chunked")]), ("data", b"{}\n[1]\n"),
    ("end", [("Trailer", "yes")]),
    ("response", 204, "No Content", []), ("end", []),
    ("response", 200, "OK", [("Content-Type", "text/plain")]), ("data", b"until the end"), ("end", []),
    ("CLOSED", b""),
]


@pytest.mark.parametrize("seed", range(5))
def test_parser_responses_in_any_split(seed: int) -> None:
    for sizes in splits(RESPONSES, seed):
        events = parse_in_pieces("response", RESPONSES, sizes, ["GET", "HEAD", "GET", "DELETE", "GET"])
        assert events == RESPONSE_EVENTS


def test_parser_upgrade_hands_over_the_bytes_after_the_head() -> None:
    data = (b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\n"
            b"Upgrade: tcp\r\n\r\n\x01\x00\x00\x00\x00\x00\x00\x02hi")
    for sizes in splits(data, 1)[1:2]:  # whole: the stream bytes arrive with the head
        events = parse_in_pieces("response", data, sizes, ["POST"])
        assert events[0][:2] == ("response", 101)
        assert events[1] == ("SWITCHED", b"\x01\x00\x00\x00\x00\x00\x00\x02hi")


@pytest.mark.parametrize("data, status, words", [
    (b"GET /\r\n\r\n", 400, "request line"),
    (b"GET / HTTP/1.1 extra\r\n\r\n", 400, "request line"),
    (b"G(T / HTTP/1.1\r\n\r\n", 400, "method"),
    (b"GET / HTTP/2.0\r\n\r\n", 505, "version"),
    (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400, "header"),
    (b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400, "folding"),
    (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400, "Content-Length"),
    (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "Transfer-Encoding"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "chunk size"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX", 400, "CRLF"),
])
def test_parser_rejects_malformed_messages(data: bytes, status: int, words: str) -> None:
    parser = HTTPParser("request")
    parser.feed(data)
    with pytest.raises(ParseError) as info:
        for _ in range(10):
            parser.next_event()
    assert info.value.status == status and words in info.value.message


def test_parser_limits_the_head_to_one_mebibyte() -> None:
    ok = b"GET / HTTP/1.1\r\nX: " + b"a" * ((1 << 20) - 100) + b"\r\n\r\n"
    parser = HTTPParser("request")
    parser.feed(ok)
    assert isinstance(parser.next_event(), RequestHead)

    parser = HTTPParser("request")
    parser.feed(b"GET / HTTP/1.1\r\nX: ")
    assert parser.next_event() is NEED_DATA
    with pytest.raises(ParseError) as info:
        for _ in range(20):  # no line end at all: detected as soon as the buffer passes the limit
            parser.feed(b"a" * (64 << 10))
            parser.next_event()
    assert info.value.status == 431


def test_parser_reports_a_truncated_body() -> None:
    parser = HTTPParser("request")
    parser.feed(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    parser.feed_eof()
    assert isinstance(parser.next_event(), RequestHead)
    assert parser.next_event().data == b"abc"
    with pytest.raises(ParseError):
        parser.next_event()


def test_parser_fuzz_raises_only_parse_errors() -> None:
    rnd = random.Random(1234)
    for kind, seed in (("request", REQUESTS), ("response", RESPONSES)):
        for _ in range(1000):
            data = bytearray(seed)
            for _ in range(rnd.randint(1, 6)):
                i = rnd.randrange(len(data))
                op = rnd.random()
                if op < 0.4:
                    data[i] = rnd.randrange(256)
                elif op < 0.7:
                    del data[i:i + rnd.randint(1, 5)]
                else:
                    data[i:i] = rnd.choice([b"\r", b"\n", b":", b" ", b";", b"0", b"\xff", b"\x00", b"-"])
            parser = HTTPParser(kind)
            for m in ("GET", "HEAD", "GET", "DELETE", "GET"):
                parser.expect_response(m)
            pos = 0
            try:
                for _ in range(len(data) + 100):
                    ev = parser.next_event()
                    if ev is NEED_DATA:
                        if pos >= len(data):
                            parser.feed_eof()
                        step = rnd.randint(1, 40)
                        parser.feed(bytes(data[pos:pos + step]))
                        pos += step
                    elif ev is CLOSED or ev is SWITCHED:
                        break
                else:
                    raise AssertionError(f"parser made no progress on {bytes(data)!r}")
            except ParseError:
                pass


def test_headers_are_case_insensitive_and_ordered() -> None:
    h = Headers([("Content-Type", "a"), ("X-A", "1")])
    h.add("x-a", "2")
    assert h.get("content-type") == "a" and h.get_all("X-a") == ["1", "2"] and "CONTENT-TYPE" in h
    h["X-A"] = "3"
    assert h.items() == [("Content-Type", "a"), ("X-A", "3")]
    assert h.get("missing") is None and "missing" not in h
