"""RFC 3339 timestamps as Docker writes and reads them: Go's time.RFC3339Nano (the fraction's trailing zeros
trimmed: container, image and event times), jsonmessage's RFC3339NanoFixed (always nine digits: `logs -t`,
`events`, image created times) and time.RFC3339 (whole seconds: volumes), in UTC with `Z` or in the local
zone. Stdlib only; the client and the daemon share it.
"""
from __future__ import annotations

import re
import time

ZERO_TIME = "0001-01-01T00:00:00Z"      # Go's zero time.Time: Docker's "never"

TRIMMED = "trimmed"     # time.RFC3339Nano
FIXED = "fixed"         # jsonmessage.RFC3339NanoFixed
SECONDS = "seconds"     # time.RFC3339

_NS = 1_000_000_000
_PATTERN = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?")


def format_ns(ns: int, fraction: str = TRIMMED, *, local: bool = False) -> str:
    """Unix nanoseconds as RFC 3339: in UTC with `Z`, or in the local zone (`Z` there too at offset 0)."""
    secs, frac = divmod(ns, _NS)
    t = time.localtime(secs) if local else time.gmtime(secs)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", t)
    if fraction == FIXED:
        text += f".{frac:09d}"
    elif fraction == TRIMMED and frac:
        text += "." + f"{frac:09d}".rstrip("0")
    elif fraction not in (TRIMMED, SECONDS):
        raise ValueError(f"unknown fraction style {fraction!r}")
    off = (t.tm_gmtoff or 0) if local else 0
    if off == 0:
        return text + "Z"
    return text + "%s%02d:%02d" % ("+" if off > 0 else "-", abs(off) // 3600, abs(off) % 3600 // 60)


def from_unix(seconds: float, fraction: str = TRIMMED) -> str:
    """Unix seconds (time.time(), st_mtime) as RFC 3339 in UTC."""
    return format_ns(int(seconds * 1e9), fraction)


def now(fraction: str = TRIMMED) -> str:
    """The current time as RFC 3339 in UTC."""
    return format_ns(time.time_ns(), fraction)


def to_fixed(value: str) -> str:
    """A UTC timestamp of format_ns() with its fraction padded to nine digits (RFC3339NanoFixed). A string
    operation: `logs -t` applies it to every line."""
    main, _, frac = value.rstrip("Z").partition(".")
    return f"{main}.{(frac + '000000000')[:9]}Z"


def parse(value: str, *, local: bool = False) -> float:
    """Unix seconds of an RFC 3339 timestamp ("2024-05-01T10:00:00.5Z", "...+02:00"; a space may stand for
    the T). A timestamp without a zone is UTC, or local time when `local` (the docker CLI's --since).
    Empty and Go's zero time (year 1) read as 0. Raises ValueError."""
    if not value or value.startswith("0001-"):
        return 0.0
    m = _PATTERN.fullmatch(value.strip())
    if not m:
        raise ValueError(f"invalid RFC 3339 timestamp: {value!r}")
    import calendar     # with datetime and locale it costs milliseconds: only when parsing
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1] and h < 24 and mi < 60 and s < 60):
        raise ValueError(f"invalid RFC 3339 timestamp: {value!r}")
    frac = float(m.group(7) or 0)
    zone = m.group(8)
    if zone is None and local:
        return time.mktime((y, mo, d, h, mi, s, 0, 0, -1)) + frac
    secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + frac
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        secs -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return secs
