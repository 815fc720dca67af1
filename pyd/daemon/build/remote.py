"""ADD <http(s) URL>: the download, named as BuildKit names it (the URL path's last part, else
__unnamed__), mode 0600 and the Last-Modified time as dockerd's builder keeps them, and --checksum checked
with BuildKit's words ("digest mismatch <got>: <wanted>")."""
from __future__ import annotations

import email.utils
import hashlib
import os
import posixpath
import re
from urllib.parse import urlsplit

from pyd.http.aclient import AsyncClient
from pyd.http.errors import ConnectError, HTTPError

_URL = re.compile(r"^https?://", re.I)
_GIT = re.compile(r"^(git@|git://|[a-z][a-z0-9+.-]*://.*\.git(#.*)?$)", re.I)


class FetchError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def is_url(src: str) -> bool:
    return bool(_URL.match(src)) and not is_git(src)


def is_git(src: str) -> bool:
    return bool(_GIT.match(src))


def file_name(url: str) -> str:
    base = posixpath.basename(urlsplit(url).path)
    return base if base not in ("", ".", "/") else "__unnamed__"


def parse_checksum(value: str) -> str:
    """A --checksum value as a digest ("sha256:<64 hex>")."""
    algo, sep, hexpart = value.partition(":")
    if not sep or algo not in ("sha256", "sha384", "sha512"):
        raise FetchError(f"invalid checksum digest format: {value}" if sep else "invalid checksum digest format")
    size = {"sha256": 64, "sha384": 96, "sha512": 128}[algo]
    if len(hexpart) != size or not re.fullmatch(r"[0-9a-f]+", hexpart):
        raise FetchError("invalid checksum digest length" if re.fullmatch(r"[0-9a-f]*", hexpart)
                         else "invalid checksum digest format")
    return value


async def fetch(url: str, folder: str, checksum: str = "") -> str:
    """Download url into folder; the file's path. checksum: the digest the content must have."""
    algo = checksum.partition(":")[0] if checksum else "sha256"
    h = hashlib.new(algo)
    path = os.path.join(folder, file_name(url))
    try:
        async with AsyncClient(timeout=300) as client:
            resp = await client.request("GET", url)
            if resp.status >= 400:
                await resp.read()
                raise FetchError(f"invalid response status {resp.status}")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                async for chunk in resp.iter_chunks():
                    h.update(chunk)
                    f.write(chunk)
            modified = resp.headers.get("last-modified")
    except (ConnectError, HTTPError, OSError) as exc:
        raise FetchError(f"failed to load {url}: {exc}") from None
    if modified:
        try:
            when = email.utils.parsedate_to_datetime(modified).timestamp()
            os.utime(path, (when, when))
        except (TypeError, ValueError):
            pass
    got = f"{algo}:{h.hexdigest()}"
    if checksum and got != checksum:
        raise FetchError(f"digest mismatch {got}: {checksum}")
    return path
