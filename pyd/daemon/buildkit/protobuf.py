"""A small protobuf (proto3) codec: messages are dicts, their schemas small tables written from the .proto files.

Wire types: varint (ints, bools, enums), fixed64/fixed32, length-delimited (strings, bytes, nested
messages, maps, packed repeated scalars). Decoding accepts repeated scalars packed or not (the spec asks
parsers to take both) and skips unknown fields; encoding packs repeated scalars and leaves proto3 zero
values out, as protoc's generated code does.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Union

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5

_VARINT_KINDS = frozenset({"int64", "int32", "uint64", "uint32", "sint64", "sint32", "bool", "enum"})
_FIXED_KINDS = {"fixed64": "<Q", "sfixed64": "<q", "double": "<d", "fixed32": "<I", "sfixed32": "<i", "float": "<f"}
_SCALAR_KINDS = _VARINT_KINDS | frozenset(_FIXED_KINDS) | {"string", "bytes"}


class DecodeError(ValueError):
    """Bytes that are not the message they claim to be."""


@dataclass(frozen=True)
class Map:
    """A map<key, value> field: on the wire, repeated entries {1: key, 2: value}."""
    key: str
    value: "Kind"

    @property
    def entry(self) -> "Message":
        return Message("MapEntry", Field(1, "key", self.key), Field(2, "value", self.value))


Kind = Union[str, "Message", Map]


@dataclass(frozen=True)
class Field:
    number: int
    name: str
    kind: Kind
    repeated: bool = False


class Message:
    """A message schema: Message("Platform", Field(1, "Architecture", "string"), ...)."""

    def __init__(self, name: str, *fields: Field) -> None:
        self.name = name
        self.fields = fields
        self.by_number = {f.number: f for f in fields}
        for f in fields:
            if isinstance(f.kind, str) and f.kind not in _SCALAR_KINDS:
                raise ValueError(f"{name}.{f.name}: unknown kind {f.kind!r}")

    def __repr__(self) -> str:
        return f"<Message {self.name}>"

    def encode(self, value: dict[str, Any]) -> bytes:
        return encode(self, value)

    def decode(self, data: bytes) -> dict[str, Any]:
        return decode(self, data)


# ---- varints

def encode_varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64          # negative int32/int64: ten bytes of two's complement
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def decode_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise DecodeError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint too long")


def _key(number: int, wire: int) -> bytes:
    return encode_varint(number << 3 | wire)


def _wire_type(kind: Kind) -> int:
    if isinstance(kind, str):
        if kind in _VARINT_KINDS:
            return VARINT
        if kind in _FIXED_KINDS:
            return FIXED64 if struct.calcsize(_FIXED_KINDS[kind]) == 8 else FIXED32
    return LENGTH


# ---- encoding

def _scalar_payload(kind: str, value: Any) -> bytes:
    if kind in _VARINT_KINDS:
        n = int(value)
        if kind in ("sint64", "sint32"):
            n = (n << 1) ^ (n >> 63)
        elif kind in ("uint32", "uint64") and n < 0:
            raise ValueError(f"{kind} cannot hold {n}")
        return encode_varint(n)
    if kind in _FIXED_KINDS:
        return struct.pack(_FIXED_KINDS[kind], value)
    if kind == "string":
        data = value.encode() if isinstance(value, str) else bytes(value)
    else:
        data = bytes(value)
    return encode_varint(len(data)) + data


def _is_default(kind: Kind, value: Any) -> bool:
    if value is None:
        return True
    if isinstance(kind, str):
        return value in ("", b"", 0, False)
    return False


def _encode_one(number: int, kind: Kind, value: Any) -> bytes:
    if isinstance(kind, Message):
        data = encode(kind, value)
        return _key(number, LENGTH) + encode_varint(len(data)) + data
    assert isinstance(kind, str)
    return _key(number, _wire_type(kind)) + _scalar_payload(kind, value)


def encode(schema: Message, value: dict[str, Any]) -> bytes:
    """The message's bytes; unknown keys in `value` are an error (a typo would otherwise vanish)."""
    unknown = set(value) - {f.name for f in schema.fields}
    if unknown:
        raise ValueError(f"{schema.name} has no field {sorted(unknown)[0]!r}")
    out = bytearray()
    for f in schema.fields:
        v = value.get(f.name)
        if v is None:
            continue
        if isinstance(f.kind, Map):
            entry = f.kind.entry
            for k in sorted(v):         # deterministic bytes
                data = encode(entry, {"key": k, "value": v[k]})
                out += _key(f.number, LENGTH) + encode_varint(len(data)) + data
        elif f.repeated:
            if not v:
                continue
            if isinstance(f.kind, str) and f.kind not in ("string", "bytes"):   # packed
                payload = b"".join(_scalar_payload(f.kind, item) for item in v)
                out += _key(f.number, LENGTH) + encode_varint(len(payload)) + payload
            else:
                for item in v:
                    out += _encode_one(f.number, f.kind, item)
        elif isinstance(f.kind, Message) or not _is_default(f.kind, v):
            out += _encode_one(f.number, f.kind, v)
    return bytes(out)


# ---- decoding

def _default(f: Field) -> Any:
    if isinstance(f.kind, Map):
        return {}
    if f.repeated:
        return []
    if isinstance(f.kind, Message):
        return None
    return {"string": "", "bytes": b"", "bool": False, "double": 0.0, "float": 0.0}.get(f.kind, 0)


def _scalar_value(kind: str, raw: int) -> Any:
    if kind == "bool":
        return raw != 0
    if kind in ("int64", "int32", "enum"):
        return raw - (1 << 64) if raw >= 1 << 63 else raw
    if kind in ("sint64", "sint32"):
        return (raw >> 1) ^ -(raw & 1)
    if kind == "uint32":
        return raw & 0xFFFFFFFF
    return raw


def _read_field(data: memoryview, pos: int, wire: int) -> tuple[Any, int]:
    if wire == VARINT:
        return decode_varint(data, pos)
    if wire == FIXED64:
        if pos + 8 > len(data):
            raise DecodeError("truncated fixed64")
        return bytes(data[pos:pos + 8]), pos + 8
    if wire == FIXED32:
        if pos + 4 > len(data):
            raise DecodeError("truncated fixed32")
        return bytes(data[pos:pos + 4]), pos + 4
    if wire == LENGTH:
        n, pos = decode_varint(data, pos)
        if pos + n > len(data):
            raise DecodeError("truncated length-delimited field")
        return data[pos:pos + n], pos + n
    raise DecodeError(f"unsupported wire type {wire}")


def _convert(kind: Kind, wire: int, raw: Any) -> list[Any]:
    """One field occurrence as values (a packed run gives several)."""
    if isinstance(kind, Message):
        if wire != LENGTH:
            raise DecodeError(f"{kind.name}: message field with wire type {wire}")
        return [decode(kind, raw)]
    assert isinstance(kind, str)
    if kind == "string":
        if wire != LENGTH:
            raise DecodeError(f"string field with wire type {wire}")
        try:
            return [bytes(raw).decode()]
        except UnicodeDecodeError:
            raise DecodeError("string field is not UTF-8") from None
    if kind == "bytes":
        if wire != LENGTH:
            raise DecodeError(f"bytes field with wire type {wire}")
        return [bytes(raw)]
    expected = _wire_type(kind)
    if wire == LENGTH and expected != LENGTH:          # packed
        values, pos, buf = [], 0, raw
        while pos < len(buf):
            item, pos = _read_field(buf, pos, expected)
            values.append(item)
        return [_convert(kind, expected, v)[0] for v in values]
    if wire != expected:
        raise DecodeError(f"{kind} field with wire type {wire}")
    if kind in _FIXED_KINDS:
        return [struct.unpack(_FIXED_KINDS[kind], raw)[0]]
    return [_scalar_value(kind, raw)]


def decode(schema: Message, data: bytes | memoryview) -> dict[str, Any]:
    """The message as a dict with every field of the schema (proto3 defaults for absent ones)."""
    view = memoryview(data)
    out = {f.name: _default(f) for f in schema.fields}
    pos = 0
    while pos < len(view):
        key, pos = decode_varint(view, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise DecodeError("field number 0")
        raw, pos = _read_field(view, pos, wire)
        f = schema.by_number.get(number)
        if f is None:
            continue
        if isinstance(f.kind, Map):
            entry = f.kind.entry
            if wire != LENGTH:
                raise DecodeError(f"{schema.name}.{f.name}: map entry with wire type {wire}")
            item = decode(entry, raw)
            value = item["value"]
            if value is None and isinstance(f.kind.value, Message):
                value = decode(f.kind.value, b"")
            out[f.name][item["key"]] = value
        elif f.repeated:
            out[f.name].extend(_convert(f.kind, wire, raw))
        else:
            values = _convert(f.kind, wire, raw)
            if values:
                out[f.name] = values[-1]   # last one wins, as the spec says
    return out


# ---- well-known types

TIMESTAMP = Message("google.protobuf.Timestamp", Field(1, "seconds", "int64"), Field(2, "nanos", "int32"))


def timestamp(t: float) -> dict[str, int]:
    """A google.protobuf.Timestamp from a unix time."""
    ns = int(round(t * 1e9))
    return {"seconds": ns // 1_000_000_000, "nanos": ns % 1_000_000_000}
