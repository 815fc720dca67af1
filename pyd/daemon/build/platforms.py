"""Build platforms: the host's, `--platform` and `FROM --platform` values, and BuildKit's automatic platform
ARGs (TARGETPLATFORM, TARGETOS, ..., BUILDVARIANT).

Pure. pyd runs what it builds, so a build or a stage names only the host's platform (the variant may be
left out); anything else is an error said once, here.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyd.formats.platforms import host_machine

_ARCH = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
         "i386": "386", "i686": "386"}
ARG_NAMES = ("TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
             "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT")


class PlatformError(ValueError):
    """An unparsable platform, or one this builder cannot run."""


@dataclass(frozen=True)
class Platform:
    os: str
    arch: str
    variant: str = ""

    def __str__(self) -> str:
        return f"{self.os}/{self.arch}" + (f"/{self.variant}" if self.variant else "")


def host(machine: str | None = None) -> Platform:
    machine = (machine or host_machine()).lower()
    arch = _ARCH.get(machine, machine)
    variant = "v7" if arch == "arm" else ""
    return Platform("linux", arch, variant)


def parse(text: str) -> Platform:
    """containerd's forms: os/arch[/variant], or a bare os or arch; names normalised (x86_64 -> amd64)."""
    parts = text.strip().lower().split("/")
    if not parts[0] or len(parts) > 3 or any(not p for p in parts):
        raise PlatformError(f'"{text}": unknown operating system or architecture: invalid argument')
    if len(parts) == 1:
        word = parts[0]
        if word in ("linux", "windows", "darwin", "freebsd"):
            return Platform(word, host().arch, host().variant)
        return Platform("linux", _ARCH.get(word, word))
    arch = _ARCH.get(parts[1], parts[1])
    variant = parts[2] if len(parts) == 3 else ""
    if arch == "arm64" and variant == "v8":
        variant = ""
    return Platform(parts[0], arch, variant)


def runnable(text: str) -> Platform:
    """The platform `text` names when this host can run it (the host's own), else PlatformError."""
    wanted, here = parse(text), host()
    if (wanted.os, wanted.arch) != (here.os, here.arch) or (wanted.variant and wanted.variant != here.variant):
        raise PlatformError(f"pyd builds for its own platform only: {here}, not {wanted}")
    return here


def args(target: Platform, build: Platform) -> dict[str, str]:
    """The automatic ARGs: in the global scope (FROM lines), and in a stage once it declares them."""
    return {"TARGETPLATFORM": str(target), "TARGETOS": target.os, "TARGETARCH": target.arch,
            "TARGETVARIANT": target.variant, "BUILDPLATFORM": str(build), "BUILDOS": build.os,
            "BUILDARCH": build.arch, "BUILDVARIANT": build.variant}
