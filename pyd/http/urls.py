"""Targets, query strings and addresses: percent-coding, host URLs (unix://, tcp://, http(s)://), redirects."""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
PATH_SAFE = "/:@!$&'()*+,;="     # what a client leaves unescaped in a request path


def unquote(text: str, plus: bool = False) -> str:
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


def quote(text: str, safe: str = "") -> str:
    if all(c in _SAFE or c in safe for c in text):
        return text
    return "".join(chr(b) if chr(b) in _SAFE or chr(b) in safe else "%%%02X" % b for b in text.encode("utf-8"))


def parse_query(qs: str) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    for part in qs.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        query.setdefault(unquote(name, True), []).append(unquote(value, True))
    return query


def encode_query(query: dict[str, Any] | None) -> str:
    """dict -> "a=1&b=x": None skipped, bool -> 1/0, list/tuple -> repeated, dict -> compact JSON."""
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
                import json
                v = json.dumps(v, separators=(",", ":"))
            parts.append(quote(str(name)) + "=" + quote(str(v)))
    return "&".join(parts)


def parse_host(host: str, tcp_port: int = 80) -> tuple[str, str, int]:
    """"unix:///p" -> ("unix", "/p", 0); "tcp://h:p", "http://h:p", "https://h:p" -> (scheme, h, p).
    A port left out is 443 for https, 80 for http and `tcp_port` for tcp."""
    scheme, sep, rest = host.partition("://")
    if not sep:
        if host.startswith("/"):
            return "unix", host, 0
        raise ValueError(f"invalid host {host!r}: use unix://PATH or tcp://HOST:PORT")
    scheme = scheme.lower()
    if scheme == "unix":
        if not rest:
            raise ValueError(f"invalid host {host!r}: no socket path")
        return "unix", rest, 0
    if scheme not in ("tcp", "http", "https"):
        raise ValueError(f"unsupported protocol in host {host!r}")
    hostport = rest.split("/", 1)[0].rpartition("@")[2]
    name, port = split_hostport(hostport, 443 if scheme == "https" else (tcp_port if scheme == "tcp" else 80))
    return scheme, name, port


def split_hostport(hostport: str, default_port: int) -> tuple[str, int]:
    if hostport.startswith("["):
        end = hostport.find("]")
        name, rest = hostport[1:end], hostport[end + 1:]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = hostport.partition(":")
    if port and not port.isdigit():
        raise ValueError(f"invalid port in {hostport!r}")
    return name or "127.0.0.1", int(port) if port else default_port


def host_header(name: str, port: int, default_port: int) -> str:
    shown = f"[{name}]" if ":" in name else name
    return shown if port == default_port else f"{shown}:{port}"


def origin(url: str) -> tuple[str, str, int]:
    return parse_host(url)


def join_url(base: str, location: str) -> str:
    """A redirect's Location resolved against the URL it answered."""
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
