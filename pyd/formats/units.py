"""Docker's units (go-units and Go's time.Duration): human sizes and durations, RAMInBytes, ParseDuration.
Stdlib only; the daemon (ps Status) and the client (flags, CREATED and SIZE columns) share them."""
from __future__ import annotations


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: "Less than a second", "About a minute", "3 hours", "2 weeks"..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


_DECIMAL_UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
_BINARY_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: decimal units, `precision` significant digits ("4.26MB")."""
    i = 0
    while size >= 1000.0 and i < len(_DECIMAL_UNITS) - 1:
        size /= 1000.0
        i += 1
    return "%.*g%s" % (precision, size, _DECIMAL_UNITS[i])


def binary_size(size: float) -> str:
    """go-units BytesSize: binary units with 4 significant digits ("23.54GiB")."""
    i = 0
    while size >= 1024.0 and i < len(_BINARY_UNITS) - 1:
        size /= 1024.0
        i += 1
    return "%.*g%s" % (4, size, _BINARY_UNITS[i])


def ram_in_bytes(value: str) -> int:
    """docker's units.RAMInBytes: "64m" -> 67108864 (binary units)."""
    v = value.strip().lower()
    for suffix in ("ib", "b"):
        if v.endswith(suffix) and len(v) > len(suffix) and not v[:-len(suffix)][-1:].isdigit():
            v = v[:-len(suffix)]
            break
    else:
        if v.endswith("b"):
            v = v[:-1]
    mult = 1
    if v and v[-1] in "kmgtp":
        mult = 1024 ** ("kmgtp".index(v[-1]) + 1)
        v = v[:-1]
    try:
        number = float(v)
    except ValueError:
        raise ValueError(f"invalid size: '{value}'") from None
    if number < 0:
        raise ValueError(f"invalid size: '{value}'")
    return int(number * mult)


_DURATION_UNITS = {"ns": 1, "us": 1000, "\u00b5s": 1000, "\u03bcs": 1000, "ms": 10**6, "s": 10**9,
                   "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_duration(raw: str) -> int:
    """Go's time.ParseDuration ("1m30s", "1.5s", "-2h", "0") in nanoseconds, with Go's error wording."""
    import re
    part = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")
    quoted = '"' + raw + '"'
    text, sign = raw, 1
    if text[:1] in "+-" and text:
        sign, text = (-1 if text[0] == "-" else 1), text[1:]
    if text == "0":
        return 0
    if not text:
        raise ValueError(f"time: invalid duration {quoted}")
    total, pos = 0.0, 0
    while pos < len(text):
        m = part.match(text, pos)
        number, unit = m.group(1), m.group(2)
        if number in ("", "."):
            raise ValueError(f"time: invalid duration {quoted}")
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration {quoted}')
        total += float(number) * _DURATION_UNITS[unit]
        pos = m.end()
    if total > 2**63 - 1:
        raise ValueError(f"time: invalid duration {quoted}")
    return sign * int(round(total))
