"""Docker's ulimits: the rlimit names HostConfig.Ulimits uses, their Linux numbers, and the CLI's
`--ulimit NAME=SOFT[:HARD]` (go-units ParseUlimit). Stdlib only; the client and the daemon share it."""
from __future__ import annotations

# Linux RLIMIT_* numbers by Docker's names (Python's resource module lacks some)
RLIMITS: dict[str, int] = {
    "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6, "nofile": 7, "memlock": 8,
    "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12, "nice": 13, "rtprio": 14, "rttime": 15,
}


def parse_ulimit(text: str) -> dict[str, str | int]:
    """"nofile=1024:2048" -> {"Name": "nofile", "Soft": 1024, "Hard": 2048}; a lone SOFT is also HARD.
    Raises ValueError with the docker CLI's words."""
    name, sep, limits = text.partition("=")
    if not sep:
        raise ValueError(f"invalid ulimit argument: {text}")
    if name not in RLIMITS:
        raise ValueError(f"invalid ulimit type: {name}")
    soft, _, hard = limits.partition(":")
    try:
        s = int(soft)
        h = int(hard) if hard else s
    except ValueError:
        raise ValueError(f"invalid ulimit argument: {text}") from None
    if s > h:
        raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: {s} > {h}")
    return {"Name": name, "Soft": s, "Hard": h}
