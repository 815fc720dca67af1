"""pyd.formats.rfc3339 against the outputs of the formatters and parsers it replaced (their code is kept
here as the reference) and against Go's layouts."""
from __future__ import annotations

import calendar
import os
import random
import re
import time

import pytest

from pyd.formats import rfc3339


# ---------------------------------------------------------------- the replaced helpers, as they were

def old_trimmed(ts: float | None = None, ns: int | None = None) -> str:
    if ns is None:
        ns = time.time_ns() if ts is None else int(ts * 1e9)
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"


def old_fixed_utc(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


def old_seconds(secs: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(secs))


def old_fixed_local(unix_ns: int) -> str:
    secs, nanos = divmod(unix_ns, 1_000_000_000)
    t = time.localtime(secs)
    off = t.tm_gmtoff or 0
    zone = "Z" if off == 0 else "%s%02d:%02d" % ("+" if off > 0 else "-", abs(off) // 3600, abs(off) % 3600 // 60)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{nanos:09d}" + zone


def old_fixed_time(value: str) -> bytes:
    main, _, frac = value.rstrip("Z").partition(".")
    return f"{main}.{(frac + '000000000')[:9]}Z".encode()


def old_daemon_parse(value: str) -> float:
    if not value or value.startswith("0001-"):
        return 0.0
    main, _, frac = value.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return secs + (float("0." + frac) if frac else 0.0)


def old_client_parse(value: str) -> float | None:
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?", value.strip())
    if not m:
        return None
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    frac = float(m.group(7) or 0)
    zone = m.group(8)
    if zone is None:
        return time.mktime((y, mo, d, h, mi, s, 0, 0, -1)) + frac
    base = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + frac
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        base -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return base


# ---------------------------------------------------------------- samples

def _sample_ns() -> list[int]:
    rng = random.Random(3339)
    fixed = [0, 1, 999_999_999, 1_000_000_000, 1_700_000_000_000_000_000, 1_700_000_000_100_000_000,
             1_700_000_000_123_456_789, 1_700_000_000_000_000_001, 951_782_400_500_000_000, 4_102_444_799_999_999_999]
    return fixed + [rng.randrange(0, 4_102_444_800 * 10**9) for _ in range(500)] + \
        [rng.randrange(0, 4_102_444_800) * 10**9 + rng.choice([0, 10**8, 5 * 10**5, 120]) for _ in range(200)]


NS = _sample_ns()


@pytest.fixture(params=["UTC", "Europe/Berlin", "America/St_Johns", "Asia/Kolkata"])
def zone(request):
    """Run the local-zone cases in several zones (offsets of whole, half and odd hours, with DST)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


# ---------------------------------------------------------------- format

def test_trimmed_is_the_old_container_times():
    for ns in NS:
        assert rfc3339.format_ns(ns) == old_trimmed(ns=ns)
        seconds = ns / 1e9
        assert rfc3339.from_unix(seconds) == old_trimmed(seconds)


def test_fixed_is_the_old_image_times_and_logs_t():
    for ns in NS:
        assert rfc3339.format_ns(ns, rfc3339.FIXED) == old_fixed_utc(ns)
        trimmed = old_trimmed(ns=ns)
        assert rfc3339.to_fixed(trimmed).encode() == old_fixed_time(trimmed) == old_fixed_utc(ns).encode()


def test_seconds_is_the_old_volume_times():
    for ns in NS:
        assert rfc3339.format_ns(ns, rfc3339.SECONDS) == old_seconds(ns // 10**9)


def test_local_fixed_is_the_old_events_times(zone):
    for ns in NS:
        assert rfc3339.format_ns(ns, rfc3339.FIXED, local=True) == old_fixed_local(ns)


def test_go_layouts():
    ns = 1_700_000_000_120_000_000
    assert rfc3339.format_ns(ns) == "2023-11-14T22:13:20.12Z"
    assert rfc3339.format_ns(ns, rfc3339.FIXED) == "2023-11-14T22:13:20.120000000Z"
    assert rfc3339.format_ns(ns, rfc3339.SECONDS) == "2023-11-14T22:13:20Z"
    assert rfc3339.format_ns(1_700_000_000 * 10**9) == "2023-11-14T22:13:20Z"
    assert rfc3339.to_fixed("2023-11-14T22:13:20Z") == "2023-11-14T22:13:20.000000000Z"
    with pytest.raises(ValueError):
        rfc3339.format_ns(0, "millis")


def test_local_offsets(zone):
    text = rfc3339.format_ns(1_700_000_000 * 10**9, rfc3339.FIXED, local=True)
    expected = {"UTC": "2023-11-14T22:13:20.000000000Z", "Europe/Berlin": "2023-11-14T23:13:20.000000000+01:00",
                "America/St_Johns": "2023-11-14T18:43:20.000000000-03:30",
                "Asia/Kolkata": "2023-11-15T03:43:20.000000000+05:30"}[zone]
    assert text == expected


def test_now_is_utc_and_current():
    before = time.time()
    value = rfc3339.now()
    assert value.endswith("Z") and abs(rfc3339.parse(value) - before) < 5
    assert len(rfc3339.now(rfc3339.FIXED)) == len("2023-11-14T22:13:20.000000000Z")


# ---------------------------------------------------------------- parse

def test_parse_reads_what_the_daemon_read():
    for ns in NS:
        for text in (old_trimmed(ns=ns), old_fixed_utc(ns), old_seconds(ns // 10**9)):
            assert rfc3339.parse(text) == old_daemon_parse(text), text
    for text in ("", rfc3339.ZERO_TIME, "0001-01-01T00:00:00.5Z", "2024-02-29T12:00:00"):
        assert rfc3339.parse(text) == old_daemon_parse(text)


def test_parse_reads_what_the_client_read(zone):
    texts = ["2024-05-01T10:00:00Z", "2024-05-01 10:00:00.25Z", "2024-05-01T10:00:00.123456789+02:00",
             "2024-05-01T10:00:00-03:30", " 2024-05-01T10:00:00Z ", "2024-05-01T10:00:00", "2024-01-01T00:00:00.5",
             "2024-07-01T02:30:00"]
    texts += [old_fixed_local(ns) for ns in NS[:200]] + [old_trimmed(ns=ns) for ns in NS[:200]]
    for text in texts:
        assert rfc3339.parse(text, local=True) == old_client_parse(text), text


def test_parse_refuses_what_is_not_a_time():
    for text in ("yesterday", "2024-05-01", "2024-05-01T10:00", "2024-05-01T10:00:00+0200", "2024-13-01T00:00:00Z",
                 "2024-02-30T00:00:00Z", "2024-05-01T24:00:00Z", "2024-05-01T10:60:00Z", "2024-05-01T10:00:60Z",
                 "2024-05-01T10:00:00.Z", "1700000000"):
        with pytest.raises(ValueError):
            rfc3339.parse(text)


def test_parse_round_trips():
    for ns in NS:
        assert abs(rfc3339.parse(rfc3339.format_ns(ns)) - ns / 10**9) < 1e-6

