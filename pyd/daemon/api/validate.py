"""Type checks of API request bodies with the messages Go's encoding/json gives dockerd's clients.

Docker decodes bodies into Go structs, so a field of the wrong type is a 400 such as
`json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string`.
The types come from the Engine API description (body_schema.py, generated from it). Unknown fields are
ignored and names match case-insensitively, as Go does.
"""
from __future__ import annotations

from typing import Any

from pyd.daemon.errors import BadParameter

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


def check_create_body(body: Any) -> None:
    """POST /containers/create: the container config with HostConfig and NetworkingConfig inside."""
    if body is None:
        raise BadParameter("invalid JSON: body is empty")
    check_body("POST /containers/create", body)


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
    from pyd.daemon.api.body_schema import DEFS

    struct, _, fields = DEFS[key]
    folded = {name.casefold(): name for name in fields}
    for name, value in obj.items():
        field = name if name in fields else folded.get(name.casefold())   # Go matches names case-insensitively
        if field is not None:
            _check_value(value, fields[field], struct, [*path, field])


def check_body(route: str, body: Any) -> None:
    """Check a decoded body against the API description's types for `route` ("POST /containers/create"):
    a value of the wrong JSON type is a 400 with the message dockerd's Go decoder gives."""
    from pyd.daemon.api.body_schema import DEFS, ROUTES

    key = ROUTES[route]
    if body is None:
        return
    if not isinstance(body, dict):
        raise BadParameter(f"json: cannot unmarshal {_go_kind(body)} into Go value of type {DEFS[key][1]}")
    _check_struct(body, key, [])
