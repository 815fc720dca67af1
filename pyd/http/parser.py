"""Sans-IO HTTP/1.1: bytes in, events out (after h11). HTTPParser frames requests (server side) and responses
(client side); ClientConnection is the client's half of one exchange, which the blocking and the async
client both drive, moving only the bytes.

Events: RequestHead | ResponseHead | Data | EndOfMessage, or the sentinels NEED_DATA (feed more), CLOSED (the
peer closed between messages) and SWITCHED (after 101 or take_buffered(): the bytes are no longer HTTP).
Bad input raises ParseError, whose status is what a server should answer (431 for a head over MAX_HEAD).
"""
from __future__ import annotations

from pyd.http.errors import IncompleteMessage, ParseError, StaleConnection
from pyd.http.headers import Headers, chunk, format_head, tokens

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_HEAD = 1 << 20                 # request/status line + headers (and, separately, trailers)
MAX_CHUNK_LINE = 4096              # "size;extensions" line of a chunk
_TOKEN = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEX = b"0123456789abcdefABCDEF"
_TARGET_BAD = bytes(range(0x21)) + b"\x7f"
LAST_CHUNK = b"0\r\n\r\n"


class RequestHead:
    """A parsed request line + headers, with the framing the parser derived from them."""
    __slots__ = ("method", "target", "http_version", "headers", "body_kind", "content_length", "keep_alive",
                 "expect_continue", "upgrade")

    def __repr__(self) -> str:
        return f"<RequestHead {self.method} {self.target} HTTP/{self.http_version}>"


class ResponseHead:
    __slots__ = ("status", "reason", "http_version", "headers", "body_kind", "content_length", "keep_alive",
                 "upgrade")

    def __repr__(self) -> str:
        return f"<ResponseHead {self.status} {self.reason}>"


class Data:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"<Data {len(self.data)} bytes>"


class EndOfMessage:
    __slots__ = ("trailers",)

    def __init__(self, trailers: Headers | None = None) -> None:
        self.trailers = trailers if trailers is not None else Headers()

    def __repr__(self) -> str:
        return "<EndOfMessage>"


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA = _Sentinel("NEED_DATA")   # feed more bytes (or feed_eof) and ask again
CLOSED = _Sentinel("CLOSED")         # the peer closed cleanly between messages
SWITCHED = _Sentinel("SWITCHED")     # after 101 (or take_buffered()): the bytes are no longer HTTP

# parser states
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_EOF, _END, _SWITCHED, _CLOSED = range(10)


class HTTPParser:
    """Sans-IO HTTP/1.1 message parser. kind="request" parses requests (server side), kind="response" parses
    responses (client side; call expect_response(method) for each request sent, so HEAD is framed right).

    Pull model: feed() bytes whenever they arrive, then call next_event() until it returns NEED_DATA. Nothing
    is parsed ahead of the consumer, which is how the server gets flow control and in-order pipelining."""

    def __init__(self, kind: str, max_head: int = MAX_HEAD) -> None:
        if kind not in ("request", "response"):
            raise ValueError("kind must be 'request' or 'response'")
        self.is_request = kind == "request"
        self.max_head = max_head
        self._buf = bytearray()
        self._eof = False
        self._state = _HEAD
        self._lines: list[bytes] = []
        self._head_size = 0
        self._scan = 0                       # bytes of _buf already searched for a line end
        self._remaining = 0
        self._trailers: Headers | None = None
        self._methods: list[str] = []
        self._error: ParseError | None = None

    # ---- input
    def feed(self, data: bytes) -> None:
        if data:
            self._buf += data

    def feed_eof(self) -> None:
        self._eof = True

    def expect_response(self, method: str) -> None:
        self._methods.append(method.upper())

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def at_message_start(self) -> bool:
        """True between messages (no partial head consumed)."""
        return self._state == _HEAD and not self._lines and self._head_size == 0

    def take_buffered(self) -> bytes:
        """Everything received but not parsed yet; the parser stops (the connection was upgraded/hijacked)."""
        data = bytes(self._buf)
        self._buf.clear()
        self._state = _SWITCHED
        return data

    # ---- output
    def next_event(self) -> Any:
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except ParseError as e:
            self._error = e
            raise

    def _next(self) -> Any:
        while True:
            state = self._state
            if state == _LENGTH or state == _CHUNK_DATA:
                buf = self._buf
                if not buf:
                    if self._eof:
                        raise IncompleteMessage("connection closed before the end of the message body")
                    return NEED_DATA
                data = self._take(min(self._remaining, len(buf)))
                self._remaining -= len(data)
                if not self._remaining:
                    self._state = _END if state == _LENGTH else _CHUNK_END
                return Data(data)
            if state == _HEAD:
                lines = self._read_lines(self.max_head, skip_leading_blank=True)
                if lines is None:
                    if self._eof and not self._buf and not self._lines:
                        self._state = _CLOSED
                        return CLOSED
                    if self._eof:
                        raise IncompleteMessage("connection closed in the middle of a message head")
                    return NEED_DATA
                return self._head_event(lines)
            if state == _CHUNK_SIZE:
                if not self._read_chunk_size():
                    return NEED_DATA
                continue
            if state == _CHUNK_END:
                buf = self._buf
                if buf[:2] == b"\r\n":
                    del buf[:2]
                elif buf[:1] == b"\n":
                    del buf[:1]
                elif buf in (b"", b"\r"):
                    if self._eof:
                        raise IncompleteMessage("connection closed in the middle of a chunk")
                    return NEED_DATA
                else:
                    raise ParseError("missing CRLF after chunk data")
                self._state = _CHUNK_SIZE
                continue
            if state == _TRAILERS:
                lines = self._read_lines(self.max_head, skip_leading_blank=False)
                if lines is None:
                    if self._eof:
                        raise IncompleteMessage("connection closed in the middle of the trailers")
                    return NEED_DATA
                self._state = _END
                self._trailers = _parse_header_lines(lines)
                continue
            if state == _END:
                trailers, self._trailers = self._trailers, None
                self._state = _HEAD
                return EndOfMessage(trailers)
            if state == _UNTIL_EOF:
                if self._buf:
                    return Data(self._take(len(self._buf)))
                if self._eof:
                    self._state = _CLOSED
                    return EndOfMessage()
                return NEED_DATA
            if state == _SWITCHED:
                return SWITCHED
            return CLOSED

    def _take(self, n: int) -> bytes:
        buf = self._buf
        if n >= len(buf):
            data = bytes(buf)
            buf.clear()
            return data
        with memoryview(buf) as view:
            data = view[:n].tobytes()
        del buf[:n]  # O(1): CPython advances the bytearray's start
        return data

    def _read_lines(self, limit: int, skip_leading_blank: bool) -> list[bytes] | None:
        """Collect lines up to a blank one; None until it arrives. Counts bytes against `limit` (431)."""
        buf = self._buf
        while True:
            i = buf.find(b"\n", self._scan)
            if i < 0:
                self._scan = len(buf)
                if self._head_size + len(buf) > limit:
                    raise ParseError(f"request header too large: the limit is {limit} bytes", 431)
                return None
            self._head_size += i + 1
            if self._head_size > limit:
                raise ParseError(f"request header too large: the limit is {limit} bytes", 431)
            line = bytes(buf[:i - 1] if i and buf[i - 1] == 13 else buf[:i])
            del buf[:i + 1]
            self._scan = 0
            if line:
                self._lines.append(line)
            elif self._lines or not skip_leading_blank:
                lines, self._lines, self._head_size = self._lines, [], 0
                return lines

    def _read_chunk_size(self) -> bool:
        buf = self._buf
        i = buf.find(b"\n", 0, MAX_CHUNK_LINE + 1)
        if i < 0:
            if len(buf) > MAX_CHUNK_LINE:
                raise ParseError("chunk size line too long")
            if self._eof:
                raise IncompleteMessage("connection closed in the middle of a chunked body")
            return False
        line = bytes(buf[:i])
        del buf[:i + 1]
        size = line.split(b";", 1)[0].strip(b" \t\r")
        if not size or len(size) > 15 or size.translate(None, _HEX):
            raise ParseError("invalid chunk size")
        n = int(size, 16)
        if n:
            self._remaining = n
            self._state = _CHUNK_DATA
        else:
            self._state = _TRAILERS
        return True

    def _head_event(self, lines: list[bytes]) -> RequestHead | ResponseHead:
        headers = _parse_header_lines(lines[1:])
        if self.is_request:
            head: Any = RequestHead()
            head.method, head.target, head.http_version = _parse_request_line(lines[0])
        else:
            head = ResponseHead()
            head.http_version, head.status, head.reason = _parse_status_line(lines[0])
        head.headers = headers
        conn = tokens(headers, "connection")
        head.keep_alive = "close" not in conn if head.http_version == "1.1" else "keep-alive" in conn
        head.upgrade = headers.get("upgrade") if "upgrade" in conn else None
        head.content_length = None
        if self.is_request:
            head.expect_continue = (head.http_version == "1.1"
                                    and (headers.get("expect") or "").lower() == "100-continue")
            kind = self._framing(head, default="none")
        else:
            kind = self._response_framing(head)
        head.body_kind = kind
        if kind == "none":
            self._state = _END
        elif kind == "length":
            self._remaining = head.content_length
            self._state = _LENGTH if head.content_length else _END
        elif kind == "chunked":
            self._state = _CHUNK_SIZE
        elif kind == "eof":
            head.keep_alive = False
            self._state = _UNTIL_EOF
        else:  # "switched"
            self._state = _SWITCHED
        return head

    def _response_framing(self, head: ResponseHead) -> str:
        status = head.status
        if 100 <= status < 200 and status != 101:
            return "none"  # informational: the real response follows; the request stays pending
        method = self._methods.pop(0) if self._methods else "GET"
        if status == 101 or (method == "CONNECT" and 200 <= status < 300):
            return "switched"
        if method == "HEAD" or status in (204, 304):
            return "none"
        return self._framing(head, default="eof")

    @staticmethod
    def _framing(head: Any, default: str) -> str:
        headers = head.headers
        te = tokens(headers, "transfer-encoding")
        if te:
            if te != {"chunked"}:
                raise ParseError("unsupported Transfer-Encoding: " + ", ".join(headers.get_all("transfer-encoding")),
                                 501)
            if "content-length" in headers:
                head.keep_alive = False  # both framings: a smuggling attempt or a broken proxy; don't reuse
            return "chunked"
        lengths = headers.get_all("content-length")
        if lengths:
            values = {v.strip() for cl in lengths for v in cl.split(",")}
            if len(values) != 1:
                raise ParseError("conflicting Content-Length headers")
            value = values.pop()
            if not value.isdigit() or not value.isascii() or len(value) > 18:
                raise ParseError(f"invalid Content-Length: {value!r}")
            head.content_length = int(value)
            return "length"
        return default


def _parse_request_line(line: bytes) -> tuple[str, str, str]:
    parts = line.split(b" ")
    if len(parts) != 3:
        raise ParseError("malformed HTTP request line")
    method, target, version = parts
    if not method or method.translate(None, _TOKEN):
        raise ParseError("malformed HTTP request method")
    if not target or len(target.translate(None, _TARGET_BAD)) != len(target):
        raise ParseError("malformed HTTP request target")
    return method.decode("ascii"), target.decode("latin-1"), _parse_version(version)


def _parse_status_line(line: bytes) -> tuple[str, int, str]:
    parts = line.split(b" ", 2)
    if len(parts) < 2 or len(parts[1]) != 3 or not parts[1].isdigit():
        raise ParseError("malformed HTTP status line")
    return _parse_version(parts[0]), int(parts[1]), (parts[2].decode("latin-1") if len(parts) == 3 else "")


def _parse_version(version: bytes) -> str:
    if version == b"HTTP/1.1":
        return "1.1"
    if version == b"HTTP/1.0":
        return "1.0"
    if version.startswith(b"HTTP/"):
        raise ParseError("unsupported HTTP version", 505)
    raise ParseError("malformed HTTP version")


def _parse_header_lines(lines: list[bytes]) -> Headers:
    items: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            raise ParseError("obsolete header line folding is not supported")
        name, sep, value = line.partition(b":")
        if not sep or not name or name.translate(None, _TOKEN):
            raise ParseError("malformed HTTP header line")
        value = value.strip(b" \t")
        if b"\x00" in value or b"\r" in value:
            raise ParseError("invalid character in HTTP header value")
        items.append((name.decode("ascii"), value.decode("latin-1")))
    return Headers.from_pairs(items)


# =============================================================================================== client side

class OutgoingRequest:
    """A request ready to send: its head, then `payload` (framed by Content-Length) or `pieces` (each sent
    through encode_piece(), then end() when they run out)."""
    __slots__ = ("head", "payload", "pieces", "chunked")

    def __init__(self, head: bytes, payload: bytes | None, pieces: Any, chunked: bool) -> None:
        self.head, self.payload, self.pieces, self.chunked = head, payload, pieces, chunked

    def first_write(self) -> bytes:
        """The head, with a small payload in the same write."""
        if self.payload is not None and len(self.payload) <= 1 << 16:
            return self.head + self.payload
        return self.head

    def second_write(self) -> bytes | None:
        """A large payload, sent on its own (no copy into the head's buffer)."""
        if self.payload is not None and len(self.payload) > 1 << 16:
            return self.payload
        return None

    def encode_piece(self, piece: bytes) -> bytes:
        return chunk(piece) if self.chunked else piece

    def end(self) -> bytes:
        return LAST_CHUNK if self.chunked else b""


def frame_request(method: str, target: str, headers: Headers, body: Any) -> OutgoingRequest:
    """Frame `body` into a request: None (Content-Length: 0 for POST/PUT/PATCH), bytes/str (Content-Length),
    dict/list (compact JSON), a file or an (async) iterable of bytes (chunked unless `headers` has a
    Content-Length). `headers` gets the framing fields."""
    payload, pieces = None, None
    if body is None:
        if method in ("POST", "PUT", "PATCH") and "content-length" not in headers:
            headers["Content-Length"] = "0"
    else:
        if isinstance(body, (dict, list)):
            import json
            body = json.dumps(body, separators=(",", ":")).encode("utf-8")
            if "content-type" not in headers:
                headers["Content-Type"] = "application/json"
        elif isinstance(body, str):
            body = body.encode("utf-8")
        if isinstance(body, (bytes, bytearray, memoryview)):
            headers["Content-Length"] = str(len(body))
            payload = bytes(body)
        else:
            if hasattr(body, "read") and not hasattr(body, "__aiter__"):
                reader = body
                body = iter(lambda: reader.read(1 << 16), b"")
            if "content-length" not in headers:
                headers["Transfer-Encoding"] = "chunked"
            pieces = body
    head = format_head(f"{method} {target} HTTP/1.1", headers.items())
    return OutgoingRequest(head, payload, pieces, "transfer-encoding" in headers)


def replayable(body: Any) -> bool:
    """Whether a request with this body can be sent again (on a new connection, or after a redirect)."""
    return body is None or isinstance(body, (bytes, bytearray, memoryview, str, dict, list))


class ClientConnection:
    """The client's half of one request/response exchange on a connection (h11's Connection, client side).

    The driver sends the request, passes in what it reads (receive_data(b"") at EOF), and takes next_head()
    (the final response head; 1xx ones are skipped) and then next_data() until it returns None, recv()ing
    whenever either returns NEED_DATA. On a reused keep-alive connection that the server closed before any
    answer, receive_data(b"") and check_stale() raise StaleConnection: the request may be retried."""

    def __init__(self, method: str, reused: bool = False, peer: str = "the server") -> None:
        self.parser = HTTPParser("response")
        self.parser.expect_response(method)
        self.reused = reused
        self.peer = peer                   # names the other end in errors
        self.head: ResponseHead | None = None
        self.ended = False                 # the response's body is over (or there is none)
        self._received = False

    def receive_data(self, data: bytes) -> None:
        if data:
            self._received = True
            self.parser.feed(data)
        else:
            self.check_stale()
            self.parser.feed_eof()

    def check_stale(self) -> None:
        """Raise StaleConnection when the connection failed before any byte of the answer arrived."""
        if self.reused and not self._received and self.head is None:
            raise StaleConnection()

    def next_head(self) -> Any:
        """The final ResponseHead, or NEED_DATA. A response without a body is over at once (`ended`)."""
        parser = self.parser
        while True:
            event = parser.next_event()
            if type(event) is ResponseHead:
                if event.body_kind == "switched" or event.status >= 200:
                    self.head = event
                    if event.body_kind == "none" or (event.body_kind == "length" and not event.content_length):
                        parser.next_event()   # its EndOfMessage: the connection is free for the next request
                        self.ended = True
                    return event
                continue  # 100 Continue and friends
            if type(event) is EndOfMessage:
                continue  # the end of an informational response
            if event is NEED_DATA:
                return NEED_DATA
            raise ConnectionResetError(f"{self.peer} closed the connection without answering")

    def next_data(self) -> Any:
        """The next piece of the body (bytes), NEED_DATA, or None once the body is over."""
        if self.ended:
            return None
        event = self.parser.next_event()
        if type(event) is Data:
            return event.data
        if event is NEED_DATA:
            return NEED_DATA
        self.ended = True  # EndOfMessage (or the peer closed where a body could end)
        return None

    @property
    def reusable(self) -> bool:
        """After the body: whether the connection may carry another request."""
        return (self.ended and self.head is not None and self.head.keep_alive
                and self.parser.at_message_start)

    def take_buffered(self) -> bytes:
        """After a 101 or a hijack: the bytes received past the head; the parser stops."""
        return self.parser.take_buffered()
