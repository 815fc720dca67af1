"""pyd.formats.units: go-units' human sizes and durations, RAMInBytes, and Go's time.ParseDuration."""
from __future__ import annotations

import pytest

from pyd.formats.units import binary_size, human_duration, human_size, parse_duration, ram_in_bytes


@pytest.mark.parametrize("seconds, text", [
    (0.4, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (59 * 60, "59 minutes"), (3600, "About an hour"),
    (2 * 3600, "2 hours"), (47 * 3600, "47 hours"), (48 * 3600, "2 days"), (14 * 86400, "2 weeks"),
    (60 * 86400, "2 months"), (730 * 86400, "2 years"),
])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


@pytest.mark.parametrize("size, text", [
    (0, "0B"), (999, "999B"), (1000, "1kB"), (1234, "1.23kB"), (4_261_000, "4.26MB"), (1_982_464, "1.98MB"),
    (1_000_000, "1MB"), (5_500_000_000, "5.5GB"),
])
def test_human_size(size, text):
    assert human_size(size) == text


def test_binary_size_as_info_shows_memory():
    assert binary_size(25_275_457_536) == "23.54GiB"



@pytest.mark.parametrize("text, size", [
    ("512", 512), ("64m", 64 << 20), ("64M", 64 << 20), ("1g", 1 << 30), ("1.5k", 1536), ("10kb", 10 << 10),
    ("10KiB", 10 << 10), ("2MB", 2 << 20), ("3b", 3), (" 7t ", 7 << 40), ("1p", 1 << 50), ("0", 0),
])
def test_ram_in_bytes(text, size):
    assert ram_in_bytes(text) == size


@pytest.mark.parametrize("text", ["", "m", "12x", "-1", "-5m", "1.2.3m", "ten"])
def test_ram_in_bytes_refuses_with_dockers_words(text):
    with pytest.raises(ValueError, match=f"^invalid size: '{text}'$"):
        ram_in_bytes(text)


@pytest.mark.parametrize("text, ns", [
    ("1m30s", 90 * 10**9), ("1.5ms", 1_500_000), ("0", 0), ("-2h", -7200 * 10**9), ("+5s", 5 * 10**9),
    ("300us", 300_000), ("2\u00b5s", 2000), ("1h1m1s1ms1us1ns", 3_661_001_001_001), (".5s", 500_000_000),
    ("1.s", 10**9),
])
def test_parse_duration(text, ns):
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text, message", [
    ("5", 'time: missing unit in duration "5"'), ("", 'time: invalid duration ""'),
    ("1x", 'time: unknown unit "x" in duration "1x"'), ("s", 'time: invalid duration "s"'),
    ("-", 'time: invalid duration "-"'), ("3000000h", 'time: invalid duration "3000000h"'),
])
def test_parse_duration_errors_use_gos_words(text, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        parse_duration(text)
