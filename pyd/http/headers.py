"""Header fields and the bytes of a message head: what the parser, the server and the clients share."""
from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~8 ms to import; checkers treat this name specially
if TYPE_CHECKING:
    from typing import Any, Iterable, Iterator

REASONS = {
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


class Headers:
    """Case-insensitive multi-dict that keeps insertion order (and the spelling it was given)."""
    __slots__ = ("_items",)

    def __init__(self, items: Any = None) -> None:
        self._items: list[tuple[str, str]] = []
        if items:
            self.update(items)

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]]) -> Headers:
        """Headers that own `pairs` as they are (the parser's fields; no copy, no merging)."""
        h = cls()
        h._items = pairs
        return h

    def add(self, name: str, value: str) -> None:
        self._items.append((name, str(value)))

    def extend(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Append every pair, keeping fields of the same name (unlike update())."""
        self._items += pairs

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


def tokens(headers: Headers, name: str) -> set[str]:
    """Comma-separated, lower-cased tokens of every `name` header (Connection, Transfer-Encoding)."""
    return {t.strip().lower() for v in headers.get_all(name) for t in v.split(",") if t.strip()}


def format_head(start_line: str, headers: Iterable[tuple[str, str]]) -> bytes:
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
        return text.encode("utf-8")  # a value beyond latin-1 (a name a user chose): send its UTF-8


def chunk(data: bytes) -> bytes:
    """One piece of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(seconds: int) -> str:
    import time
    t = time.gmtime(seconds)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")
