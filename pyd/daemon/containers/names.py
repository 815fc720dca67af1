"""Random container names in Docker's "adjective_surname" shape (our own word lists)."""
from __future__ import annotations

import secrets

ADJECTIVES = (
    "agile", "amber", "brave", "bright", "calm", "clever", "cosmic", "crisp", "daring", "eager",
    "fancy", "fervent", "gentle", "happy", "hardy", "jolly", "keen", "kind", "lively", "lucid",
    "mellow", "merry", "nimble", "noble", "patient", "plucky", "quiet", "rapid", "serene", "sharp",
    "shiny", "silent", "steady", "swift", "tender", "tidy", "upbeat", "vivid", "witty", "zesty",
)
SURNAMES = (
    "agnesi", "babbage", "banach", "bohr", "boole", "cantor", "curie", "dijkstra", "euler", "faraday",
    "fermat", "feynman", "gauss", "germain", "hamming", "hopper", "hypatia", "kepler", "knuth", "lamarr",
    "lovelace", "maxwell", "meitner", "noether", "pascal", "planck", "ramanujan", "ritchie", "shannon",
    "tesla", "thompson", "torvalds", "turing", "volta", "wozniak", "yalow",
)


def random_name(taken: "set[str] | dict[str, str]") -> str:
    """A free name; after a few collisions add a digit, as Docker does."""
    for attempt in range(20):
        name = f"{secrets.choice(ADJECTIVES)}_{secrets.choice(SURNAMES)}"
        if attempt >= 5:
            name += str(secrets.randbelow(10))
        if name not in taken:
            return name
    return f"{name}_{secrets.token_hex(3)}"
