"""Image references as Docker normalizes them: `busybox` is `docker.io/library/busybox:latest`.

Pure functions, no I/O. The grammar follows the distribution reference grammar that dockerd uses;
error messages are dockerd's words so clients show the same thing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pyd.daemon.errors import BadParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_REFERENCE_RE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_HEX64_RE = re.compile(r"^[a-f0-9]{64}$")
_SHA256_ID_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_TAG_RE = re.compile(rf"^{_TAG}$")

INVALID_FORMAT = "invalid reference format"


@dataclass(frozen=True)
class Reference:
    domain: str                 # "docker.io", "127.0.0.1:5000"
    path: str                   # "library/busybox"
    tag: str | None = None      # "latest"
    digest: str | None = None   # "sha256:..."

    @property
    def name(self) -> str:
        """Fully qualified repository name: docker.io/library/busybox."""
        return f"{self.domain}/{self.path}"

    def familiar_name(self) -> str:
        """Repository name as Docker shows it: busybox, user/app, 127.0.0.1:5000/app."""
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            if path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in path[len(OFFICIAL_REPO_PREFIX):]:
                path = path[len(OFFICIAL_REPO_PREFIX):]
            return path
        return self.name

    def familiar(self) -> str:
        """The whole reference as Docker shows it: busybox:latest, busybox@sha256:..."""
        return self.familiar_name() + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, None)

    def _suffix(self) -> str:
        out = f":{self.tag}" if self.tag else ""
        return out + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()


def is_image_id(s: str) -> bool:
    """A full image ID, with or without the sha256: prefix."""
    return bool(_HEX64_RE.match(s) or _SHA256_ID_RE.match(s))


def parse_reference(s: str, default_tag: bool = True) -> Reference:
    """Normalize a reference as dockerd does; `default_tag` adds :latest when neither tag nor digest is given.

    Raises BadParameter with dockerd's messages.
    """
    if _HEX64_RE.match(s):
        raise BadParameter(f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_domain(s)
    name_part = remainder.split(":", 1)[0]   # dockerd checks up to the first colon
    if name_part.lower() != name_part:
        raise BadParameter(f"{INVALID_FORMAT}: repository name ({name_part}) must be lowercase")
    m = _REFERENCE_RE.match(f"{domain}/{remainder}")
    if not m:
        raise BadParameter(INVALID_FORMAT)
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise BadParameter(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    path = name[len(domain) + 1:]
    if default_tag and tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def validate_tag(tag: str) -> None:
    if not _TAG_RE.match(tag):
        raise BadParameter(INVALID_FORMAT)


def _split_domain(s: str) -> tuple[str, str]:
    """dockerd's splitDockerDomain: the first component is a registry only if it looks like a host."""
    i = s.find("/")
    first = s[:i] if i >= 0 else ""
    if i < 0 or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, s
    else:
        domain, remainder = first, s[i + 1:]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder
