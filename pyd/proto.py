"""HTTP/1.1 for pyd: one sans-IO parser (bytes in, events out) shared by the asyncio API server, the blocking
client the CLI uses and the async client the daemon uses for registries.

Start-up cost matters (the CLI imports this module for every command), so nothing slow is imported at module
level: asyncio, ssl, json, logging and even socket are imported inside the functions that need them.

Layers, bottom up:
  HTTPParser          sans-IO: feed(bytes) / feed_eof(), next_event() -> RequestHead | ResponseHead | Data |
                      EndOfMessage | NEED_DATA | CLOSED | SWITCHED; raises ParseError (an HTTPError) on bad input
  Server              asyncio protocol per connection: keep-alive, pipelining, 100-continue, streaming, hijack
  Client              blocking sockets (unix://, tcp://, TLS); ClientResponse, HijackedConnection
  AsyncClient         asyncio streams; full http(s):// URLs or a unix:// / tcp:// base
  stdcopy             Docker's multiplexed stream frames, sans-IO demuxer
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~8 ms to import; checkers treat this name specially
if TYPE_CHECKING:
    import asyncio
    import logging
    import ssl
    from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Iterator

__all__ = [
    "HTTPError", "ParseError", "IncompleteMessage", "Headers", "HTTPParser", "RequestHead", "ResponseHead",
    "Data", "EndOfMessage", "NEED_DATA", "CLOSED", "SWITCHED", "Request", "StreamWriter", "Response", "Router",
    "Server", "APIError", "DaemonUnreachable", "Client", "ClientResponse", "HijackedConnection", "TLSConfig",
    "AsyncClient", "AsyncClientResponse", "JSONStreamDecoder", "stdcopy_frame", "StdcopyDemuxer",
]

MAX_HEAD = 1 << 20                 # request/status line + headers (and, separately, trailers)
MAX_CHUNK_LINE = 4096              # "size;extensions" line of a chunk
DEFAULT_BODY_LIMIT = 64 << 20      # Request.body() default
USER_AGENT = "pyd-client/0.1.0"
_IO_SIZE = 1 << 18                 # read size of the clients
_TOKEN = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEX = b"0123456789abcdefABCDEF"
_TARGET_BAD = bytes(range(0x21)) + b"\x7f"

_REASONS = {
    100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    206: "Partial Content", 301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
    307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable", 408: "Request Timeout",
    409: "Conflict", 410: "Gone", 411: "Length Required", 412: "Precondition Failed", 413: "Payload Too Large",
    415: "Unsupported Media Type", 416: "Range Not Satisfiable", 417: "Expectation Failed",
    422: "Unprocessable Entity", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}


# =============================================================================================== errors

class HTTPError(Exception):
    """An error with an HTTP status; the server answers it as {"message": ...}. Subclasses set `status`."""
    status = 500

    def __init__(self, message: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class ParseError(HTTPError):
    """The peer sent something that is not HTTP/1.1 we accept; `status` is what a server should answer."""
    status = 400


class IncompleteMessage(ParseError):
    """The peer closed the connection in the middle of a message."""


# =============================================================================================== headers

class Headers:
    """Case-insensitive multi-dict that keeps insertion order (and the spelling it was given)."""
    __slots__ = ("_items",)

    def __init__(self, items: Any = None) -> None:
        self._items: list[tuple[str, str]] = []
        if items:
            self.update(items)

    def add(self, name: str, value: str) -> None:
        self._items.append((name, str(value)))

    def update(self, items: Any) -> None:
        """Set (replace) every name of a mapping, Headers or list of pairs."""
        pairs = items.items() if hasattr(items, "items") else items
        for name, value in pairs:
            self[name] = value

    def get(self, name: str, default: str | None = None) -> str | None:
        low = name.lower()
        for k, v in self._items:
            if k.lower() == low:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self._items if k.lower() == low]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        low, placed, items = name.lower(), False, []
        for k, v in self._items:
            if k.lower() != low:
                items.append((k, v))
            elif not placed:  # the first occurrence keeps its place, later ones go
                items.append((name, str(value)))
                placed = True
        if not placed:
            items.append((name, str(value)))
        self._items = items

    def __delitem__(self, name: str) -> None:
        low = name.lower()
        self._items = [kv for kv in self._items if kv[0].lower() != low]

    def pop(self, name: str, default: str | None = None) -> str | None:
        value = self.get(name, default)
        del self[name]
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def keys(self) -> list[str]:
        return [k for k, _ in self._items]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._items)

    def copy(self) -> Headers:
        h = Headers()
        h._items = list(self._items)
        return h

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


def _tokens(headers: Headers, name: str) -> set[str]:
    """Comma-separated, lower-cased tokens of every `name` header (Connection, Transfer-Encoding)."""
    return {t.strip().lower() for v in headers.get_all(name) for t in v.split(",") if t.strip()}


def _format_head(start_line: str, headers: Iterable[tuple[str, str]]) -> bytes:
    parts = [start_line, "\r\n"]
    for name, value in headers:
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
            raise ValueError(f"invalid character in header {name!r}")
        parts += (name, ": ", value, "\r\n")
    parts.append("\r\n")
    text = "".join(parts)
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")  # a non-latin-1 value (e.g. a container name): send its UTF-8 bytes


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


# =============================================================================================== parser

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
        conn = _tokens(headers, "connection")
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
        te = _tokens(headers, "transfer-encoding")
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
    headers = Headers()
    items = headers._items
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
    return headers


# =============================================================================================== helpers

def _json_module() -> Any:
    import json
    return json


def _json_bytes(obj: Any) -> bytes:
    """Compact JSON + "\n", the way Go's json.Encoder writes Docker's responses."""
    return (_json_module().dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


def _unquote(text: str, plus: bool = False) -> str:
    """Percent-decode (UTF-8); '+' means space in query strings. Malformed escapes are kept as they are."""
    if plus and "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    pieces = text.split("%")
    out = bytearray(pieces[0].encode("latin-1", "replace"))
    for piece in pieces[1:]:
        code = piece[:2]
        if len(code) == 2 and all(c in "0123456789abcdefABCDEF" for c in code):
            out.append(int(code, 16))
            out += piece[2:].encode("latin-1", "replace")
        else:
            out += b"%" + piece.encode("latin-1", "replace")
    return out.decode("utf-8", "replace")


_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _quote(text: str, safe: str = "") -> str:
    if all(c in _SAFE or c in safe for c in text):
        return text
    return "".join(chr(b) if chr(b) in _SAFE or chr(b) in safe else "%%%02X" % b for b in text.encode("utf-8"))


def _parse_query(qs: str) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    for part in qs.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        query.setdefault(_unquote(name, True), []).append(_unquote(value, True))
    return query


def _encode_query(query: dict[str, Any] | None) -> str:
    """dict -> "a=1&b=x": None skipped, bool -> 1/0, list/tuple -> repeated, dict -> JSON (Docker's filters)."""
    if not query:
        return ""
    parts = []
    for name, value in query.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if v is None:
                continue
            if isinstance(v, bool):
                v = "1" if v else "0"
            elif isinstance(v, dict):
                v = _json_module().dumps(v, separators=(",", ":"))
            parts.append(_quote(str(name)) + "=" + _quote(str(v)))
    return "&".join(parts)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


def _split_version_prefix(path: str) -> tuple[str | None, str]:
    """"/v1.47/containers/json" -> ("1.47", "/containers/json"); unversioned paths -> (None, path)."""
    if path.startswith("/v") and len(path) > 2 and path[2].isdigit():
        end = path.find("/", 2)
        version = path[2:] if end < 0 else path[2:end]
        if all(c in "0123456789." for c in version):
            return version, ("/" if end < 0 else path[end:])
    return None, path


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _http_date(seconds: int) -> str:
    import time
    t = time.gmtime(seconds)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


def _error_message(status: int, body: bytes, reason: str = "") -> str:
    """The "message" of a Docker error body, else the body text, else the reason phrase."""
    text = body.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            doc = _json_module().loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            return doc["message"]
    return text or reason or _REASONS.get(status, f"HTTP status {status}")


class JSONStreamDecoder:
    """Sans-IO decoder of a stream of JSON documents separated by whitespace/newlines or simply concatenated
    (docker's /events, pull and load progress). feed() returns the documents completed so far."""

    def __init__(self) -> None:
        import codecs
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._decoder = _json_module().JSONDecoder()
        self._text = ""

    def feed(self, data: bytes) -> list[Any]:
        self._text += self._utf8.decode(data)
        return self._drain(final=False)

    def close(self) -> list[Any]:
        """End of stream: the rest must be complete documents (else ValueError)."""
        self._text += self._utf8.decode(b"", final=True)
        docs = self._drain(final=True)
        if self._text.strip():
            raise ValueError(f"truncated JSON document in stream: {self._text[:80]!r}")
        return docs

    def _drain(self, final: bool) -> list[Any]:
        text, docs, pos, n = self._text, [], 0, len(self._text)
        while True:
            while pos < n and text[pos] in " \t\r\n":
                pos += 1
            if pos == n:
                break
            try:
                doc, end = self._decoder.raw_decode(text, pos)
            except ValueError:
                if final:
                    raise
                break  # incomplete: wait for more bytes
            if end == n and not final and not isinstance(doc, (dict, list, str)):
                break  # a number or literal at the very end may still be growing
            docs.append(doc)
            pos = end
        self._text = text[pos:]
        return docs


# =============================================================================================== server side

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
            return _json_bytes(body), self.content_type or "application/json"
        if isinstance(body, str):
            return body.encode("utf-8"), self.content_type or "text/plain; charset=utf-8"
        data = bytes(body)
        return data, self.content_type or ("application/octet-stream" if data else None)


class Router:
    """Route table. Patterns: "/containers/{id}/json"; {x} matches one segment, {x:path} matches across slashes
    (image names like 127.0.0.1:5000/a/b:tag). HEAD falls back to GET."""

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

    def __init__(self, conn: _Connection, head: RequestHead, path: str, query_string: str,
                 api_version: str) -> None:
        self.method = head.method
        self.target = head.target
        self.path = path
        self.api_version = api_version
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

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target}>"

    # ---- query
    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            self._query = _parse_query(self._query_string)
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
            return _json_module().loads(value)
        except ValueError as e:
            raise HTTPError(f"invalid JSON in parameter {name}: {e}", 400) from None

    # ---- body
    async def body(self, limit: int = DEFAULT_BODY_LIMIT) -> bytes:
        parts, total = [], 0
        async for chunk in self.body_stream():
            total += len(chunk)
            if total > limit:
                self.keep_alive = False
                raise HTTPError(f"request body is larger than {limit} bytes", 413)
            parts.append(chunk)
        return b"".join(parts)

    async def json(self) -> Any:
        data = await self.body()
        if not data.strip():
            return None
        try:
            return _json_module().loads(data)
        except ValueError as e:
            raise HTTPError(f"invalid JSON: {e}", 400) from None

    def body_stream(self) -> AsyncIterator[bytes]:
        """The body as it arrives (Content-Length or chunked), never buffered whole."""
        return self._iter_body()

    async def _iter_body(self) -> AsyncIterator[bytes]:
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
        """Start a chunked response; its head is flushed at once (POST /containers/{id}/wait needs that)."""
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

    async def hijack(self, content_type: str = "application/vnd.docker.raw-stream"
                     ) -> tuple[asyncio.StreamReader, HijackWriter]:
        """Take over the connection (Docker attach/exec): "101 UPGRADED" when the client sent Upgrade (docker
        sends "Upgrade: tcp"), else "200 OK" with a connection-delimited body. Bytes the client sent after the
        head are readable from the reader; EOF on the reader is the client's CloseWrite."""
        if self.started:
            raise RuntimeError("response already started")
        conn = self._conn
        extra = [("Content-Type", content_type)]
        if self.headers.get("upgrade") is not None:  # Docker looks only at the Upgrade header
            status = 101
            extra += [("Connection", "Upgrade"), ("Upgrade", "tcp")]
        else:
            status = 200
        self.started = self.hijacked = True
        self.keep_alive = False
        conn.cancel_on_lost = True
        conn.write(conn.server.response_head(self, status, extra, None, reason="UPGRADED" if status == 101 else None,
                                             framing=False))
        reader = conn.switch_to_raw()
        return reader, HijackWriter(conn)

    @property
    def can_hand_over(self) -> bool:
        """Whether hand_over() may give this connection away (not TLS: the bytes must stay ours to encrypt)."""
        return not self._conn._is_tls and not self._conn.closed

    async def hand_over(self) -> int:
        """After hijack(): a duplicate of the connection's descriptor for another writer (execd writes the
        attach stream itself). Our bytes go out first; then our side lets go of the connection without
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
        conn.write(_chunk(data) if self._chunked else data)
        await conn.drain()

    async def write_json(self, obj: Any) -> None:
        await self.write(_json_bytes(obj))

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
        self.transport: Any = None
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
    def connection_made(self, transport: Any) -> None:
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
            return not self._is_tls  # docker's CloseWrite: the handler sees EOF and still writes
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
        body = _json_bytes({"message": message})
        headers = self.server._common_headers() + [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")]
        self.write(_format_head(f"HTTP/1.1 {status} {_REASONS.get(status, '')}", headers) + body)

    async def _handle(self, head: RequestHead) -> bool:
        """Route and run one request, send its response; True when the connection may serve another."""
        server = self.server
        raw_path, _, query_string = head.target.partition("?")
        if raw_path.startswith(("http://", "https://")):  # absolute-form target
            raw_path = "/" + raw_path.split("/", 3)[3] if raw_path.count("/") >= 3 else "/"
        version, path = _split_version_prefix(raw_path)
        path = _unquote(path)
        req = Request(self, head, path, query_string, version or server.api_version)
        try:
            result = await self._run_handler(req, version)
        except ConnectionError as e:
            if self.closed or self.eof:
                server.log.debug("%s %s: client went away: %s", req.method, req.target, e)
                return False  # nothing to answer
            return self._answer_exception(req)
        except HTTPError as e:
            if req.started:
                server.log.warning("%s %s failed after the response started: %s", req.method, req.target, e)
                return False
            result = Response(e.status, None if e.status == 304 else {"message": e.message})
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

    async def _run_handler(self, req: Request, version: str | None) -> Any:
        server = self.server
        handler, params = server.router.match(req.method, req.path)
        if handler is None:
            raise HTTPError("page not found", 404)
        if version is not None:
            server.check_version(version)
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
        body = _json_bytes({"message": str(exc) or type(exc).__name__})
        self.write(self.server.response_head(req, 500, [("Content-Type", "application/json")], None,
                                             length=len(body)) + (b"" if req.method == "HEAD" else body))
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
    """The API server: routes requests to handlers (see Router). Runs on any asyncio loop (stdlib, uvloop)."""

    def __init__(self, router: Router, server_header: str = "pyd/0.1.0 (linux)", api_version: str = "1.47",
                 min_api_version: str = "1.24", log: logging.Logger | None = None) -> None:
        if log is None:
            import logging
            log = logging.getLogger("pyd.proto")
        self.router = router
        self.server_header = server_header
        self.api_version = api_version
        self.min_api_version = min_api_version
        self.log = log
        self.closing = False
        self._max = _version_tuple(api_version)
        self._min = _version_tuple(min_api_version)
        self._listeners: list[asyncio.AbstractServer] = []
        self._unix_paths: list[tuple[str, int]] = []
        self._connections: set[_Connection] = set()
        self._loop: Any = None
        self._date = (0, "")

    # ---- listening
    async def listen_unix(self, path: str, mode: int = 0o660) -> asyncio.AbstractServer:
        import os
        import stat
        self._remember_loop()
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)  # stale socket of a previous daemon
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
    def check_version(self, version: str) -> None:
        v = _version_tuple(version)
        if v > self._max:
            raise HTTPError(f"client version {version} is too new. Maximum supported API version is "
                            f"{self.api_version}", 400)
        if v < self._min:
            raise HTTPError(f"client version {version} is too old. Minimum supported API version is "
                            f"{self.min_api_version}, please upgrade your client to a newer version", 400)

    def _common_headers(self) -> list[tuple[str, str]]:
        import time
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, _http_date(now))
        return [("Api-Version", self.api_version), ("Docker-Experimental", "false"), ("Ostype", "linux"),
                ("Server", self.server_header), ("Date", self._date[1])]

    def response_head(self, req: Request, status: int, extra: list[tuple[str, str]], handler_headers: Any,
                      length: int | None = None, reason: str | None = None, framing: bool = True) -> bytes:
        headers = Headers(self._common_headers())
        headers._items += extra
        if length is not None and framing:
            headers["Content-Length"] = str(length)
        if handler_headers:
            headers.update(handler_headers)
        if not req.keep_alive and not req.hijacked:
            headers["Connection"] = "close"
        reason = reason if reason is not None else _REASONS.get(status, "")
        return _format_head(f"HTTP/1.1 {status} {reason}", headers._items)


# =============================================================================================== client side

class APIError(Exception):
    """The daemon answered with an error status; `message` comes from its {"message": ...} body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message


class DaemonUnreachable(Exception):
    """Nothing answers at the daemon's address."""

    def __init__(self, host: str, message: str | None = None) -> None:
        self.host = host
        self.message = message or f"Cannot connect to the pyd daemon at {host}. Is the pyd daemon running?"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class TLSConfig:
    """Client TLS (--tls, --tlsverify, --tlscacert, --tlscert, --tlskey). Also builds the daemon's context."""

    def __init__(self, ca: str | None = None, cert: str | None = None, key: str | None = None,
                 verify: bool = True) -> None:
        self.ca, self.cert, self.key, self.verify = ca, cert, key, verify

    def __repr__(self) -> str:
        return f"TLSConfig(ca={self.ca!r}, cert={self.cert!r}, key={self.key!r}, verify={self.verify!r})"

    def client_context(self) -> ssl.SSLContext:
        import ssl
        ctx = ssl.create_default_context(cafile=self.ca)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def server_context(self) -> ssl.SSLContext:
        """Daemon side: serve self.cert/self.key; with verify, require client certificates signed by self.ca."""
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert:
            ctx.load_cert_chain(self.cert, self.key)
        if self.verify and self.ca:
            ctx.load_verify_locations(cafile=self.ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


def _parse_host(host: str) -> tuple[str, str, int]:
    """"unix:///p" -> ("unix", "/p", 0); "tcp://h:p", "http://h:p", "https://h:p" -> (scheme, h, p)."""
    scheme, sep, rest = host.partition("://")
    if not sep:
        if host.startswith("/"):
            return "unix", host, 0
        raise ValueError(f"invalid host {host!r}: use unix://PATH or tcp://HOST:PORT")
    scheme = scheme.lower()
    if scheme == "unix":
        return "unix", rest or "/var/run/pyd.sock", 0
    if scheme not in ("tcp", "http", "https"):
        raise ValueError(f"unsupported protocol in host {host!r}")
    hostport = rest.split("/", 1)[0].rpartition("@")[2]
    name, port = _split_hostport(hostport, 443 if scheme == "https" else (2375 if scheme == "tcp" else 80))
    return scheme, name, port


def _split_hostport(hostport: str, default_port: int) -> tuple[str, int]:
    if hostport.startswith("["):
        end = hostport.find("]")
        name, rest = hostport[1:end], hostport[end + 1:]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = hostport.partition(":")
    if port and not port.isdigit():
        raise ValueError(f"invalid port in {hostport!r}")
    return name or "127.0.0.1", int(port) if port else default_port


def _host_header(name: str, port: int, default_port: int) -> str:
    shown = f"[{name}]" if ":" in name else name
    return shown if port == default_port else f"{shown}:{port}"


def _prepare_body(body: Any, headers: Headers, method: str) -> tuple[bytes | None, Any]:
    """-> (bytes to send with Content-Length, or None; an iterator of pieces, or None). The pieces go chunked
    unless the caller gave a Content-Length header."""
    if body is None:
        if method in ("POST", "PUT", "PATCH") and "content-length" not in headers:
            headers["Content-Length"] = "0"
        return None, None
    if isinstance(body, (dict, list)):
        body = _json_module().dumps(body, separators=(",", ":")).encode("utf-8")
        if "content-type" not in headers:
            headers["Content-Type"] = "application/json"
    elif isinstance(body, str):
        body = body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        headers["Content-Length"] = str(len(body))
        return bytes(body), None
    if hasattr(body, "read"):
        reader = body
        body = iter(lambda: reader.read(1 << 16), b"")
    if "content-length" not in headers:
        headers["Transfer-Encoding"] = "chunked"
    return None, body


def _replayable(body: Any) -> bool:
    return body is None or isinstance(body, (bytes, bytearray, memoryview, str, dict, list))


class _StaleConnection(Exception):
    """A reused keep-alive connection was closed by the server before it answered: retry on a new one."""


class Client:
    """Blocking HTTP client of the daemon (the CLI's; no asyncio). One idle keep-alive connection is reused."""

    def __init__(self, host: str = "unix:///var/run/pyd.sock", tls: TLSConfig | None = None,
                 api_version: str = "1.47", timeout: float | None = None) -> None:
        self.host = host
        self.tls = tls
        self.api_version = api_version
        self.timeout = timeout
        self._scheme, self._address, self._port = _parse_host(host)
        if self._scheme == "https" and tls is None:
            self.tls = TLSConfig()
        if self._scheme == "unix":
            self._host_header = "pyd"
        else:
            self._host_header = _host_header(self._address, self._port, 443 if self.tls else 80)
        self._ssl_context: Any = None
        self._idle: list[Any] = []

    def __repr__(self) -> str:
        return f"Client({self.host!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    # ---- connections
    def _connect(self) -> Any:
        try:
            if self._scheme == "unix":
                import _socket  # the C module: `socket` costs ~6 ms more (enum, selectors)
                sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                try:
                    sock.settimeout(self.timeout)
                    sock.connect(self._address)
                except BaseException:
                    sock.close()
                    raise
                return sock
            if self.tls is not None:
                import socket
                if self._ssl_context is None:
                    self._ssl_context = self.tls.client_context()
                raw = socket.create_connection((self._address, self._port), timeout=self.timeout)
                try:
                    return self._ssl_context.wrap_socket(raw, server_hostname=self._address)
                except BaseException:
                    raw.close()
                    raise
            return self._connect_tcp()
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as e:
            raise DaemonUnreachable(self.host) from e
        except PermissionError as e:
            raise DaemonUnreachable(self.host, "permission denied while trying to connect to the pyd daemon "
                                    f"socket at {self.host}: {e.strerror or e}") from e
        except OSError as e:
            if type(e).__name__.startswith("SSL"):
                raise DaemonUnreachable(self.host, f"error during TLS handshake with {self.host}: {e}") from e
            raise DaemonUnreachable(self.host, f"Cannot connect to the pyd daemon at {self.host}: {e}") from e

    def _connect_tcp(self) -> Any:
        import _socket
        error: OSError | None = None
        for family, kind, proto, _, addr in _socket.getaddrinfo(self._address, self._port, 0, _socket.SOCK_STREAM):
            sock = _socket.socket(family, kind, proto)
            try:
                sock.settimeout(self.timeout)
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
                sock.connect(addr)
                return sock
            except OSError as e:
                sock.close()
                error = e
        raise error or ConnectionRefusedError(f"no address for {self._address}")

    def _release(self, sock: Any) -> None:
        if self._idle:
            sock.close()
        else:
            self._idle.append(sock)

    # ---- requests
    def _target(self, path: str, query: dict[str, Any] | None) -> str:
        prefix = f"/v{self.api_version}" if self.api_version else ""
        path, _, raw_query = path.partition("?")  # a query written into the path is passed as it is
        qs = "&".join(q for q in (raw_query, _encode_query(query)) if q)
        return prefix + _quote(path, "/:@!$&'()*+,;=") + ("?" + qs if qs else "")

    def _head(self, method: str, path: str, query: dict[str, Any] | None, body: Any,
              headers: Any, extra: list[tuple[str, str]] = ()) -> tuple[bytes, bytes | None, Any, bool]:
        h = Headers([("Host", self._host_header), ("User-Agent", USER_AGENT)])
        h._items += extra
        if headers:
            h.update(headers)
        payload, pieces = _prepare_body(body, h, method)
        head = _format_head(f"{method} {self._target(path, query)} HTTP/1.1", h._items)
        return head, payload, pieces, "transfer-encoding" in h

    def request(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                headers: Any = None, check: bool = True) -> ClientResponse:
        """Send a request, return once the response head arrived (the body is read on demand)."""
        method = method.upper()
        head, payload, pieces, chunked = self._head(method, path, query, body, headers)
        retry = _replayable(body)
        while True:
            reused = bool(self._idle)
            sock = self._idle.pop() if reused else self._connect()
            try:
                resp = self._exchange(sock, method, head, payload, pieces, chunked, reused)
                break
            except _StaleConnection:
                sock.close()
                if not retry:
                    raise ConnectionResetError("the daemon closed the connection") from None
            except BaseException:
                sock.close()
                raise
        if check and resp.status >= 400:
            resp.raise_for_status()
        return resp

    def _exchange(self, sock: Any, method: str, head: bytes, payload: bytes | None, pieces: Any, chunked: bool,
                  reused: bool) -> ClientResponse:
        parser = HTTPParser("response")
        parser.expect_response(method)
        try:
            _send_sync(sock, head, payload, pieces, chunked)
        except (BrokenPipeError, ConnectionResetError):
            if reused:
                raise _StaleConnection() from None
            # the server may have answered early (e.g. an error) and closed: read that answer
        first = _read_head_sync(sock, parser, reused)
        return ClientResponse(self, sock, parser, first)

    def hijack(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
               headers: Any = None) -> HijackedConnection:
        """Docker's attach/exec start: send Upgrade: tcp, expect 101 (or 200); raise APIError on >= 400."""
        method = method.upper()
        head, payload, pieces, chunked = self._head(method, path, query, body, headers,
                                                    [("Connection", "Upgrade"), ("Upgrade", "tcp")])
        sock = self._connect()
        try:
            parser = HTTPParser("response")
            parser.expect_response(method)
            try:
                _send_sync(sock, head, payload, pieces, chunked)
            except (BrokenPipeError, ConnectionResetError):
                pass
            first = _read_head_sync(sock, parser, False)
            if first.status >= 300:
                resp = ClientResponse(None, sock, parser, first)
                resp.raise_for_status()
                raise APIError(first.status, first.reason or "unexpected response to a hijack request")
        except BaseException:
            sock.close()
            raise
        return HijackedConnection(sock, parser.take_buffered(), first.status, first.headers)


def _send_sync(sock: Any, head: bytes, payload: bytes | None, pieces: Any, chunked: bool) -> None:
    if payload is not None and len(payload) <= 1 << 16:
        sock.sendall(head + payload)
    else:
        sock.sendall(head)
        if payload is not None:
            sock.sendall(payload)
    if pieces is not None:
        _send_pieces_sync(sock, pieces, chunked)


def _send_pieces_sync(sock: Any, pieces: Any, chunked: bool) -> None:
    for piece in pieces:
        if piece:
            sock.sendall(_chunk(piece) if chunked else piece)
    if chunked:
        sock.sendall(b"0\r\n\r\n")


def _read_head_sync(sock: Any, parser: HTTPParser, reused: bool) -> ResponseHead:
    """Read until a final response head (1xx ones are skipped)."""
    received = False
    while True:
        event = parser.next_event()
        if type(event) is ResponseHead:
            if event.body_kind == "switched" or event.status >= 200:
                return event
            continue  # 100 Continue and friends
        if type(event) is EndOfMessage:
            continue  # end of an informational response
        if event is NEED_DATA:
            try:
                data = sock.recv(_IO_SIZE)
            except ConnectionResetError:
                if reused and not received:
                    raise _StaleConnection() from None
                raise
            if data:
                received = True
                parser.feed(data)
            else:
                if reused and not received:
                    raise _StaleConnection()
                parser.feed_eof()
            continue
        raise ConnectionResetError("the daemon closed the connection without answering")


def _bodiless(head: ResponseHead) -> bool:
    return head.body_kind == "none" or (head.body_kind == "length" and not head.content_length)


class ClientResponse:
    """A response whose body is read on demand: read(), json(), iter_chunks(), iter_json()."""

    def __init__(self, client: Client | None, sock: Any, parser: HTTPParser, head: ResponseHead) -> None:
        self.status = head.status
        self.reason = head.reason
        self.headers = head.headers
        self.head = head
        self._client = client
        self._sock = sock
        self._parser = parser
        self._content: bytes | None = None
        self._done = False
        self._consumed = False
        if _bodiless(head):  # 204, HEAD, Content-Length: 0: done now, the connection can serve the next request
            parser.next_event()
            self._content = b""
            self._finish()

    def __repr__(self) -> str:
        return f"<ClientResponse {self.status} {self.reason}>"

    def __enter__(self) -> ClientResponse:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def iter_chunks(self) -> Iterator[bytes]:
        """The body in pieces as they arrive (not aligned with chunked-encoding boundaries)."""
        if self._content is not None:
            if self._content:
                yield self._content
            return
        if self._consumed:
            raise RuntimeError("the response body was already consumed")
        self._consumed = True
        parser, sock = self._parser, self._sock
        try:
            while True:
                event = parser.next_event()
                if type(event) is Data:
                    yield event.data
                elif type(event) is EndOfMessage:
                    self._finish()
                    return
                elif event is NEED_DATA:
                    data = sock.recv(_IO_SIZE)
                    if data:
                        parser.feed(data)
                    else:
                        parser.feed_eof()
                else:
                    self._finish()
                    return
        finally:
            if not self._done:
                self.close()

    def read(self) -> bytes:
        if self._content is None:
            self._content = b"".join(self.iter_chunks())
        return self._content

    def json(self) -> Any:
        data = self.read()
        return _json_module().loads(data) if data.strip() else None

    def iter_json(self) -> Iterator[Any]:
        decoder = JSONStreamDecoder()
        for chunk in self.iter_chunks():
            yield from decoder.feed(chunk)
        yield from decoder.close()

    def raise_for_status(self) -> None:
        if self.status >= 400:
            raise APIError(self.status, _error_message(self.status, self.read(), self.reason))

    def _finish(self) -> None:
        self._done = True
        if self._client is not None and self.head.keep_alive and self._parser.at_message_start:
            self._client._release(self._sock)
        else:
            self._sock.close()

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._sock.close()


class HijackedConnection:
    """The raw connection after a hijack (attach, exec start). recv() first returns the bytes that arrived
    with the response head; pending() counts them, for callers that select() on fileno()."""

    def __init__(self, sock: Any, buffered: bytes, status: int = 101, headers: Headers | None = None) -> None:
        self.sock = sock
        self.status = status
        self.headers = headers if headers is not None else Headers()
        self._buffered = buffered

    def __enter__(self) -> HijackedConnection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type") or ""

    def pending(self) -> int:
        extra = self.sock.pending() if hasattr(self.sock, "pending") else 0
        return len(self._buffered) + extra

    def recv(self, n: int = 1 << 16) -> bytes:
        if self._buffered:
            data, self._buffered = self._buffered[:n], self._buffered[n:]
            return data
        return self.sock.recv(n)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        """Docker's CloseWrite: the daemon sees EOF on stdin and keeps sending output. Not possible over TLS
        (Python's ssl has no half-close), where it does nothing."""
        if hasattr(self.sock, "pending"):  # ssl.SSLSocket
            return
        import _socket
        try:
            self.sock.shutdown(_socket.SHUT_WR)
        except OSError:
            pass

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


# =============================================================================================== async client

class AsyncClient:
    """Async HTTP client for the daemon (registries). request() takes a full "http(s)://host:port/path" URL, or
    a path relative to `base` ("unix:///run/x.sock", "tcp://h:p", "http://h:p"). Keep-alive connections are
    pooled per host; redirects are followed for GET/HEAD (Authorization is dropped when the host changes)."""

    def __init__(self, base: str | None = None, tls: TLSConfig | None = None, api_version: str | None = None,
                 ssl_context: ssl.SSLContext | None = None, timeout: float | None = 300.0,
                 follow_redirects: bool = True, max_redirects: int = 10) -> None:
        self.base = base
        self.tls = tls
        self.api_version = api_version
        self.timeout = timeout
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self._ssl_context = ssl_context
        self._pool: dict[tuple[str, str, int], list[tuple[Any, Any]]] = {}

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        for conns in self._pool.values():
            for _, writer in conns:
                writer.close()
        self._pool.clear()

    def _resolve(self, url_or_path: str, query: dict[str, Any] | None) -> tuple[str, str, int, str, str]:
        """-> (scheme, host, port, target, url)."""
        if "://" in url_or_path:
            url = url_or_path
            scheme, host, port = _parse_host(url)
            rest = url.split("://", 1)[1]
            slash = rest.find("/")
            target = rest[slash:] if slash >= 0 else "/"
        else:
            if not self.base:
                raise ValueError(f"relative path {url_or_path!r} without a base address")
            scheme, host, port = _parse_host(self.base)
            prefix = f"/v{self.api_version}" if self.api_version else ""
            target = prefix + _quote(url_or_path, "/:@!$&'()*+,;=?%")
            url = self.base.rstrip("/") + target
        qs = _encode_query(query)
        if qs:
            target += ("&" if "?" in target else "?") + qs
            url += ("&" if "?" in url.split("://", 1)[1] else "?") + qs
        if scheme == "tcp" and self.tls is not None:
            scheme = "https"
        return scheme, host, port, target, url

    def _ssl(self) -> Any:
        if self._ssl_context is None:
            if self.tls is not None:
                self._ssl_context = self.tls.client_context()
            else:
                import ssl
                self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    async def _open(self, scheme: str, host: str, port: int) -> tuple[Any, Any]:
        import asyncio
        try:
            if scheme == "unix":
                conn = asyncio.open_unix_connection(host, limit=1 << 20)
            elif scheme == "https":
                conn = asyncio.open_connection(host, port, ssl=self._ssl(), server_hostname=host, limit=1 << 20)
            else:
                conn = asyncio.open_connection(host, port, limit=1 << 20)
            return await self._timed(conn)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            if self.base and "://" in self.base and self.base.startswith(("unix:", "tcp:")):
                raise DaemonUnreachable(self.base) from e
            raise

    async def _timed(self, awaitable: Awaitable[Any]) -> Any:
        if self.timeout is None:
            return await awaitable
        import asyncio
        return await asyncio.wait_for(awaitable, self.timeout)

    async def request(self, method: str, url_or_path: str, query: dict[str, Any] | None = None, body: Any = None,
                      headers: Any = None, check: bool = False) -> AsyncClientResponse:
        """Returns once the response head arrived. check=True raises APIError on status >= 400."""
        method = method.upper()
        headers = Headers(headers) if headers else Headers()
        for _ in range(self.max_redirects + 1):
            resp = await self._request_once(method, url_or_path, query, body, headers)
            location = resp.headers.get("location")
            if not (self.follow_redirects and location and resp.status in (301, 302, 303, 307, 308)):
                break
            if resp.status in (307, 308) and not _replayable(body):
                break
            resp.close()
            new_url = _join_url(resp.url, location)
            if _origin(new_url) != _origin(resp.url):
                del headers["Authorization"]
            if resp.status == 303 or (resp.status in (301, 302) and method not in ("GET", "HEAD")):
                method, body = ("GET" if method != "HEAD" else "HEAD"), None
                del headers["Content-Length"]
                del headers["Content-Type"]
            url_or_path, query = new_url, None
        if check and resp.status >= 400:
            await resp.raise_for_status()
        return resp

    async def _request_once(self, method: str, url_or_path: str, query: dict[str, Any] | None, body: Any,
                            headers: Headers) -> AsyncClientResponse:
        scheme, host, port, target, url = self._resolve(url_or_path, query)
        h = Headers([("Host", "pyd" if scheme == "unix" else
                      _host_header(host, port, 443 if scheme == "https" else 80)), ("User-Agent", USER_AGENT)])
        h.update(headers)
        if hasattr(body, "__aiter__"):
            payload, pieces = None, body
            if "content-length" not in h:
                h["Transfer-Encoding"] = "chunked"
        else:
            payload, pieces = _prepare_body(body, h, method)
        head = _format_head(f"{method} {target} HTTP/1.1", h._items)
        key = (scheme, host, port)
        retry = _replayable(body)
        while True:
            reader, writer, reused = await self._checkout(key)
            try:
                return await self._exchange(key, reader, writer, method, head, payload, pieces, reused, url,
                                            chunked="transfer-encoding" in h)
            except _StaleConnection:
                writer.close()
                if not retry:
                    raise ConnectionResetError(f"{url}: the server closed the connection") from None
            except BaseException:
                writer.close()
                raise

    async def _checkout(self, key: tuple[str, str, int]) -> tuple[Any, Any, bool]:
        conns = self._pool.get(key)
        while conns:
            reader, writer = conns.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer, True
            writer.close()
        reader, writer = await self._open(*key)
        return reader, writer, False

    def _checkin(self, key: tuple[str, str, int], reader: Any, writer: Any) -> None:
        conns = self._pool.setdefault(key, [])
        if len(conns) < 8:
            conns.append((reader, writer))
        else:
            writer.close()

    async def _exchange(self, key: tuple[str, str, int], reader: Any, writer: Any, method: str, head: bytes,
                        payload: bytes | None, pieces: Any, reused: bool, url: str,
                        chunked: bool) -> AsyncClientResponse:
        parser = HTTPParser("response")
        parser.expect_response(method)
        try:
            writer.write(head if payload is None or len(payload) > 1 << 16 else head + payload)
            if payload is not None and len(payload) > 1 << 16:
                writer.write(payload)
            if pieces is not None:
                await self._send_pieces(writer, pieces, chunked)
            await self._timed(writer.drain())
        except (BrokenPipeError, ConnectionResetError):
            if reused:
                raise _StaleConnection() from None
        received = False
        while True:
            event = parser.next_event()
            if type(event) is ResponseHead:
                if event.body_kind == "switched" or event.status >= 200:
                    return AsyncClientResponse(self, key, reader, writer, parser, event, url)
                continue
            if type(event) is EndOfMessage:
                continue
            if event is not NEED_DATA:
                raise ConnectionResetError(f"{url}: the server closed the connection without answering")
            try:
                data = await self._timed(reader.read(_IO_SIZE))
            except ConnectionResetError:
                if reused and not received:
                    raise _StaleConnection() from None
                raise
            if data:
                received = True
                parser.feed(data)
            elif reused and not received:
                raise _StaleConnection()
            else:
                parser.feed_eof()

    async def _send_pieces(self, writer: Any, pieces: Any, chunked: bool) -> None:
        async def each() -> AsyncIterator[bytes]:
            if hasattr(pieces, "__aiter__"):
                async for piece in pieces:
                    yield piece
            else:
                for piece in pieces:
                    yield piece
        async for piece in each():
            if piece:
                writer.write(_chunk(piece) if chunked else piece)
                await self._timed(writer.drain())
        if chunked:
            writer.write(b"0\r\n\r\n")


def _origin(url: str) -> tuple[str, str, int]:
    return _parse_host(url)


def _join_url(base: str, location: str) -> str:
    if "://" in location:
        return location
    scheme, rest = base.split("://", 1)
    authority = rest.split("/", 1)[0]
    if location.startswith("//"):
        return f"{scheme}:{location}"
    if location.startswith("/"):
        return f"{scheme}://{authority}{location}"
    path = rest[len(authority):].split("?", 1)[0]
    return f"{scheme}://{authority}{path.rsplit('/', 1)[0]}/{location}"


class AsyncClientResponse:
    """Async twin of ClientResponse: await read()/json(), async for in iter_chunks()/iter_json()."""

    def __init__(self, client: AsyncClient, key: tuple[str, str, int], reader: Any, writer: Any,
                 parser: HTTPParser, head: ResponseHead, url: str) -> None:
        self.status = head.status
        self.reason = head.reason
        self.headers = head.headers
        self.head = head
        self.url = url
        self._client = client
        self._key = key
        self._reader = reader
        self._writer = writer
        self._parser = parser
        self._content: bytes | None = None
        self._done = False
        self._consumed = False
        if _bodiless(head):
            parser.next_event()
            self._content = b""
            self._finish()

    def __repr__(self) -> str:
        return f"<AsyncClientResponse {self.status} {self.url}>"

    async def __aenter__(self) -> AsyncClientResponse:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        if self._content is not None:
            if self._content:
                yield self._content
            return
        if self._consumed:
            raise RuntimeError("the response body was already consumed")
        self._consumed = True
        parser = self._parser
        try:
            while True:
                event = parser.next_event()
                if type(event) is Data:
                    yield event.data
                elif type(event) is EndOfMessage:
                    self._finish()
                    return
                elif event is NEED_DATA:
                    data = await self._client._timed(self._reader.read(_IO_SIZE))
                    if data:
                        parser.feed(data)
                    else:
                        parser.feed_eof()
                else:
                    self._finish()
                    return
        finally:
            if not self._done:
                self.close()

    async def read(self) -> bytes:
        if self._content is None:
            self._content = b"".join([chunk async for chunk in self.iter_chunks()])
        return self._content

    async def json(self) -> Any:
        data = await self.read()
        return _json_module().loads(data) if data.strip() else None

    async def iter_json(self) -> AsyncIterator[Any]:
        decoder = JSONStreamDecoder()
        async for chunk in self.iter_chunks():
            for doc in decoder.feed(chunk):
                yield doc
        for doc in decoder.close():
            yield doc

    async def raise_for_status(self) -> None:
        if self.status >= 400:
            raise APIError(self.status, _error_message(self.status, await self.read(), self.reason))

    def take_connection(self) -> tuple[Any, Any, bytes]:
        """After a 101/hijack: (reader, writer, bytes already received past the head)."""
        self._done = True
        return self._reader, self._writer, self._parser.take_buffered()

    def _finish(self) -> None:
        self._done = True
        if self.head.keep_alive and self._parser.at_message_start:
            self._client._checkin(self._key, self._reader, self._writer)
        else:
            self._writer.close()

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._writer.close()


# =============================================================================================== stdcopy

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
