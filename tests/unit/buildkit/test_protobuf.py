"""The protobuf codec against bytes written by hand from BuildKit's .proto definitions."""
from __future__ import annotations

import pytest

from pyd.daemon.buildkit import messages as m
from pyd.daemon.buildkit.protobuf import (TIMESTAMP, DecodeError, Field, Map, Message, decode_varint, encode_varint,
                                          timestamp)

# WorkerRecord{ID: "w", Labels: {"a": "b"}, platforms: [{Architecture: "amd64", OS: "linux"}],
#              GCPolicy: [{all: true, keepBytes: 512}]}
WORKER_BYTES = bytes.fromhex(
    "0a0177"                                   # 1 ID: "w"
    "1206" "0a0161" "120162"                    # 2 Labels entry {1: "a", 2: "b"}
    "1a0e" "0a05" + b"amd64".hex() + "1205" + b"linux".hex() +   # 3 platforms[0]
    "2205" "0801" "188004")                     # 4 GCPolicy[0] {1: true, 3: 512}


def test_varints():
    assert encode_varint(0) == b"\x00" and encode_varint(300) == b"\xac\x02"
    assert encode_varint(-1) == b"\xff" * 9 + b"\x01"          # int64 -1: ten bytes
    assert decode_varint(b"\xac\x02", 0) == (300, 2)
    with pytest.raises(DecodeError):
        decode_varint(b"\x80", 0)


def test_worker_record_both_ways():
    value = {"ID": "w", "Labels": {"a": "b"}, "platforms": [{"Architecture": "amd64", "OS": "linux"}],
             "GCPolicy": [{"all": True, "keepBytes": 512}]}
    assert m.WORKER_RECORD.encode(value) == WORKER_BYTES
    got = m.WORKER_RECORD.decode(WORKER_BYTES)
    assert got["ID"] == "w" and got["Labels"] == {"a": "b"} and got["BuildkitVersion"] is None
    assert got["platforms"][0]["Architecture"] == "amd64" and got["platforms"][0]["Variant"] == ""
    assert got["GCPolicy"] == [{"all": True, "keepDuration": 0, "keepBytes": 512, "filters": []}]


def test_zero_values_are_left_out_and_defaulted():
    assert m.PRUNE_REQUEST.encode({"filter": [], "all": False, "keepDuration": 0, "keepBytes": 0}) == b""
    assert m.PRUNE_REQUEST.decode(b"") == {"filter": [], "all": False, "keepDuration": 0, "keepBytes": 0}


def test_negative_int64_and_repeated_strings():
    # PruneRequest{filter: ["until=1h", "x"], keepDuration: -1}
    data = bytes.fromhex("0a08" + b"until=1h".hex() + "0a0178" + "18" + "ff" * 9 + "01")
    assert m.PRUNE_REQUEST.encode({"filter": ["until=1h", "x"], "keepDuration": -1}) == data
    assert m.PRUNE_REQUEST.decode(data)["keepDuration"] == -1
    assert m.PRUNE_REQUEST.decode(data)["filter"] == ["until=1h", "x"]


def test_packed_repeated_scalars_encode_packed_and_decode_either_way():
    schema = Message("T", Field(1, "n", "int64", repeated=True), Field(2, "f", "fixed32", repeated=True))
    packed = bytes.fromhex("1203" "01ac02" "1208" "01000000" "02000000")
    assert schema.encode({"n": [1, 300], "f": [1, 2]}) == bytes.fromhex("0a03" "01ac02") + packed[5:]
    assert schema.decode(bytes.fromhex("0801" "08ac02"))["n"] == [1, 300]        # unpacked, as proto2 writes it
    assert schema.decode(bytes.fromhex("0a03" "01ac02"))["n"] == [1, 300]
    assert schema.decode(packed[5:])["f"] == [1, 2]


def test_nested_timestamps_and_maps_of_messages():
    record = m.USAGE_RECORD.encode({"ID": "x", "CreatedAt": timestamp(1.25)})
    assert record == bytes.fromhex("0a0178") + bytes([0x32, 7]) + bytes.fromhex("0801") + b"\x10" + encode_varint(250_000_000)
    assert m.USAGE_RECORD.decode(record)["CreatedAt"] == {"seconds": 1, "nanos": 250_000_000}
    schema = Message("M", Field(1, "by", Map("string", TIMESTAMP)))
    data = schema.encode({"by": {"k": {"seconds": 2}}})
    assert data == bytes.fromhex("0a07" "0a016b" "1202" "0802")
    assert schema.decode(data) == {"by": {"k": {"seconds": 2, "nanos": 0}}}


def test_unknown_fields_are_skipped_and_last_scalar_wins():
    # StatusRequest{Ref: "a"} with an unknown varint (field 7), fixed64 (8) and string (9), then Ref: "b"
    data = bytes.fromhex("0a0161" "3805" "41" + "00" * 8 + "4a0178" "0a0162")
    assert m.STATUS_REQUEST.decode(data) == {"Ref": "b"}


def test_malformed_input_raises_decode_error():
    for bad in (b"\x0a\x05ab", b"\x0a", b"\x00\x01", b"\x0b"):
        with pytest.raises(DecodeError):
            m.STATUS_REQUEST.decode(bad)
    with pytest.raises(ValueError, match="no field 'nope'"):
        m.STATUS_REQUEST.encode({"nope": 1})
