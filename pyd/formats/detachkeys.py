"""Docker's detach keys (moby/term's ToBytes and escape proxy): shared by the client and the daemon, stdlib only."""
from __future__ import annotations

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(keys: str) -> bytes:
    """"ctrl-p,ctrl-q" -> b"\\x10\\x11"; raises ValueError("Unknown character: ...") on junk."""
    special = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
    out = bytearray()
    for key in keys.split(","):
        if len(key) == 1:
            out.append(ord(key))
            continue
        name = key.lower()
        if name.startswith("ctrl-") and len(name) == 6:
            ch = name[5]
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
                continue
            if ch in special:
                out.append(special[ch])
                continue
        raise ValueError(f"Unknown character: '{key}'")
    return bytes(out)


class DetachScanner:
    """Stdin bytes in, (bytes to forward, detached?) out. A partial match is held back and forwarded when
    the next byte breaks it, as moby's escape proxy does."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = bytearray()

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        if not self.keys:
            return data, False
        out = bytearray()
        for b in data:
            if b == self.keys[len(self.held)]:
                self.held.append(b)
                if len(self.held) == len(self.keys):
                    self.held.clear()
                    return bytes(out), True
                continue
            out += self.held
            self.held.clear()
            if b == self.keys[0]:
                self.held.append(b)
            else:
                out.append(b)
        return bytes(out), False
