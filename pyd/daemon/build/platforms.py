"""Build platforms: `--platform` and `FROM --platform` values checked against the host's, and BuildKit's
automatic platform ARGs (TARGETPLATFORM, TARGETOS, ..., BUILDVARIANT).

Pure; the parsing and the host's platform are pyd.formats.platforms'. pyd runs what it builds, so a build or
a stage names only the host's platform (the variant may be left out); anything else is an error said once,
here. Platforms are as BuildKit writes them: arm64 without its default v8.
"""
from __future__ import annotations

from pyd.formats.platforms import Platform, PlatformError, host_platform, parse_platform

__all__ = ["ARG_NAMES", "Platform", "PlatformError", "args", "host", "parse", "runnable"]

ARG_NAMES = ("TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
             "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT")


def host(machine: str | None = None) -> Platform:
    return host_platform(machine).without_default_variant()


def parse(text: str) -> Platform:
    """containerd's forms: os/arch[/variant], or a bare os or arch; names normalised (x86_64 -> amd64)."""
    return parse_platform(text, host()).without_default_variant()


def runnable(text: str) -> Platform:
    """The platform `text` names when this host can run it (the host's own), else PlatformError."""
    wanted, here = parse(text), host()
    if not here.matches(wanted.os, wanted.architecture, wanted.variant):
        raise PlatformError(f"pyd builds for its own platform only: {here}, not {wanted}")
    return here


def args(target: Platform, build: Platform) -> dict[str, str]:
    """The automatic ARGs: in the global scope (FROM lines), and in a stage once it declares them."""
    return {"TARGETPLATFORM": str(target), "TARGETOS": target.os, "TARGETARCH": target.architecture,
            "TARGETVARIANT": target.variant, "BUILDPLATFORM": str(build), "BUILDOS": build.os,
            "BUILDARCH": build.architecture, "BUILDVARIANT": build.variant}
