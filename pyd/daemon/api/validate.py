"""Type checks of API request bodies with the messages Go's encoding/json gives dockerd's clients.

Docker decodes bodies into Go structs, so a field of the wrong type is a 400 such as
`json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string`.
The types come from the Engine API description (body_schema.py, generated from it). Unknown fields are
ignored and names match case-insensitively, as Go does.
"""
from __future__ import annotations

import errno
import os
import re
from typing import Any, Callable

from pyd.daemon.errors import BadParameter, ServerError
from pyd.http.server import Request, Router

def _go_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def strslice(value: Any) -> list[str] | None:
    """Docker's StrSlice: null stays None, a string becomes a one-element list."""
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


# ---------------------------------------------------------------- bodies, checked against the API description

MAX_DEPTH = 10000    # Go's encoding/json refuses deeper nesting


def check_depth(data: bytes) -> None:
    """Refuse JSON nested deeper than Go decodes (and than Python's recursive decoder could), with Go's words.
    Counted without recursion; only bodies with that many brackets at all are scanned."""
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return
    depth, in_string, escaped = 0, False, False
    for i, byte in enumerate(data):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:        # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > MAX_DEPTH:
                raise BadParameter(f"invalid character '{chr(byte)}' exceeded max depth")
        elif byte in (0x5D, 0x7D):
            depth -= 1


def _mismatch(value: Any, where: str, go: str, exact: bool = False) -> BadParameter:
    kind = f"number {value}" if exact else _go_kind(value)    # Go names the number it cannot fit
    return BadParameter(f"json: cannot unmarshal {kind} into Go struct field {where} of type {go}")


def _check_value(value: Any, td: tuple, struct: str, path: list[str]) -> None:
    if value is None or td[0] == "any":
        return
    kind = td[0]
    where = f"{struct}.{'.'.join(path)}"
    if kind == "s" and not isinstance(value, str) or kind == "b" and not isinstance(value, bool):
        raise _mismatch(value, where, td[1])
    if kind == "f" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise _mismatch(value, where, td[1])
    if kind == "i":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _mismatch(value, where, td[1])
        if isinstance(value, float) or not td[2] <= value <= td[3]:
            raise _mismatch(value, where, td[1], exact=True)
    elif kind == "ss":
        if not isinstance(value, (str, list)) or isinstance(value, list) and not all(
                isinstance(v, str) for v in value):
            raise _mismatch(value, where, td[1] or "strslice.StrSlice")
    elif kind == "a":
        if not isinstance(value, list):
            raise _mismatch(value, where, td[2])
        for item in value:
            _check_value(item, td[1], struct, path)
    elif kind == "m":
        if not isinstance(value, dict):
            raise _mismatch(value, where, td[2] or "map[string]interface {}")
        for item in value.values():
            _check_value(item, td[1], struct, path)
    elif kind == "o":
        if not isinstance(value, dict):
            raise _mismatch(value, where, td[2])
        _check_struct(value, td[1], path)


def _check_struct(obj: dict, key: str, path: list[str]) -> None:
    """Check obj's fields, and name them as the struct does: Go matches names case-insensitively (docker-py
    sends `CPURealtimePeriod`), and of two spellings of one field the later one wins."""
    from pyd.daemon.api.body_schema import DEFS

    struct, _, fields = DEFS[key]
    folded = {name.casefold(): name for name in fields}
    items = list(obj.items())
    renamed = False
    for name, value in items:
        field = name if name in fields else folded.get(name.casefold())
        if field is not None:
            _check_value(value, fields[field], struct, [*path, field])
            renamed = renamed or field != name
    if renamed:
        obj.clear()
        for name, value in items:
            obj[name if name in fields else folded.get(name.casefold(), name)] = value


def check_body(route: str, body: Any) -> None:
    """Check a decoded body against the API description's types for `route` ("POST /containers/create"):
    a value of the wrong JSON type is a 400 with the message dockerd's Go decoder gives."""
    from pyd.daemon.api.body_schema import ROUTES

    if body is None:
        return
    td = ROUTES[route]
    if td[0] == "o":
        if not isinstance(body, dict):
            raise BadParameter(f"json: cannot unmarshal {_go_kind(body)} into Go value of type {td[2]}")
        _check_struct(body, td[1], [])
        return
    if not isinstance(body, list):       # an array body: Go names its items without a struct
        raise BadParameter(f"json: cannot unmarshal {_go_kind(body)} into Go value of type {td[2]}")
    item = td[1]
    for value in body:
        if item[0] == "o" and value is not None and not isinstance(value, dict):
            raise BadParameter(f"json: cannot unmarshal {_go_kind(value)} into Go value of type {item[2]}")
        if item[0] == "o" and value is not None:
            _check_struct(value, item[1], [])
        elif item[0] == "s" and value is not None and not isinstance(value, str):
            raise BadParameter(f"json: cannot unmarshal {_go_kind(value)} into Go value of type {item[1]}")


# ---------------------------------------------------------------- the edge: every body route, before its handler

BODY_REQUIRED = {"POST /containers/create"}     # dockerd refuses these without a body


def _route_shape(method: str, pattern: str) -> str:
    """"POST /networks/{}/connect": a route with its parameters' names (and kinds) left out."""
    return f"{method.upper()} {re.sub(r'{[^}]*}', '{}', pattern)}"


class BodyCheckingRouter(Router):
    """The route table, with each JSON body checked once at the edge: decoded without recursion limits
    hurting (too deep is a 400, as Go says it), then against the API description's types for the route.
    Handlers read the checked body with `await req.json()`."""

    def __init__(self) -> None:
        super().__init__()
        from pyd.daemon.api.body_schema import ROUTES
        self._body_routes = {_route_shape(*route.split(" ", 1)): route for route in ROUTES}

    def add(self, method: str, pattern: str, handler: Callable) -> None:
        route = self._body_routes.get(_route_shape(method, pattern))
        handler = _full_disk_as_error(handler)
        super().add(method, pattern, handler if route is None else _checked(route, handler))


_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def _full_disk_as_error(handler: Callable) -> Callable:
    """A full disk is the host's state, not the engine's bug: its 500 says so in Go's words, with no
    traceback in the log."""
    async def run(req: Request, **params: str) -> Any:
        try:
            return await handler(req, **params)
        except OSError as exc:
            if exc.errno not in _NO_SPACE:
                raise
            raise ServerError(no_space_message(exc)) from None
    return run


def no_space_message(exc: OSError) -> str:
    """"<file>: no space left on device" (Go's words), or the more precise message the error carries."""
    text = exc.strerror or ""
    if text == os.strerror(exc.errno or 0):
        text = text[:1].lower() + text[1:]
    return f"{exc.filename}: {text}" if exc.filename else text


def _checked(route: str, handler: Callable) -> Callable:
    async def checked(req: Request, **params: str) -> Any:
        await check_request_body(req, route)
        return await handler(req, **params)
    return checked


async def check_request_body(req: Request, route: str) -> None:
    """Decode and check the body of `req`, a request to `route` ("POST /networks/{id}/connect")."""
    data = await req.body()
    check_depth(data)
    body = await req.json()
    if body is None and route in BODY_REQUIRED:
        raise BadParameter("invalid JSON: body is empty")
    if _SURROGATE_ESCAPE.search(data):
        body = _replace_lone_surrogates(body)
        req.set_json(body)
    check_body(route, body)


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _replace_lone_surrogates(value: Any) -> Any:
    """Go decodes an unpaired UTF-16 surrogate escape as U+FFFD; Python keeps it, and it cannot be encoded
    (a path, a netlink name, a log line). Walks the value without recursion."""
    def fix(s: str) -> str:
        return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")

    if isinstance(value, str):
        return fix(value)
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in list(node):
                item = node.pop(key)
                node[fix(key)] = fix(item) if isinstance(item, str) else item
                stack.append(item)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str):
                    node[i] = fix(item)
                else:
                    stack.append(item)
    return value
