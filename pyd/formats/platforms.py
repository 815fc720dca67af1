"""Platforms as Docker names them (os/architecture/variant: linux/arm64/v8): the machine pyd runs on, read
from uname in one place (host_machine) and turned into Docker's names here, `--platform` parsing, and the
matching a pull (an index's entries) and a create (a local image) do, as containerd's platforms package
does for dockerd. Everything else takes a machine or a Platform, so arm64's decisions are testable on
x86_64."""
from __future__ import annotations

import os
from dataclasses import dataclass

# uname -m -> Go's GOARCH, the name images, `docker version` and seccomp profiles use
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm", "armv6l": "arm",
          "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
          "mips64": "mips64", "loongarch64": "loong64"}
# the variant a machine's images get (dockerd records arm64's as v8, 32-bit ARM's by CPU)
MACHINE_VARIANT = {"aarch64": "v8", "arm64": "v8", "armv7l": "v7", "armv6l": "v6"}
# what users type for an architecture, in Go's names (containerd's normalizeArch)
ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
                "i386": "386"}
KNOWN_OS = ("linux", "windows", "darwin", "freebsd")


class PlatformError(ValueError):
    """A --platform that names no known operating system or architecture (Docker's message)."""


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def normalized_variant(self) -> str:
        """The variant as containerd compares it: arm64's v8 is the default, the same as none."""
        if self.architecture == "arm64" and self.variant in ("", "8", "v8", "v8.0"):
            return ""
        if self.architecture == "arm":
            variant = self.variant or "v7"
            return variant if variant.startswith("v") else "v" + variant
        return self.variant

    def without_default_variant(self) -> Platform:
        """linux/arm64 for linux/arm64/v8: how dockerd words a platform nobody asked for by variant."""
        return Platform(self.os, self.architecture, self.normalized_variant() if self.architecture != "arm" else self.variant)

    def matches(self, os_name: str | None, architecture: str | None, variant: str | None = None) -> bool:
        """Whether an image or index entry of (os, architecture, variant) runs here. A missing os or
        architecture (old images) is linux/amd64, as dockerd assumes; a missing variant matches any."""
        other = Platform(os_name or "linux", _normalize_arch(architecture or "amd64"), variant or "")
        if (other.os, other.architecture) != (self.os, self.architecture):
            return False
        return not variant or not self.variant or other.normalized_variant() == self.normalized_variant()


def _normalize_arch(arch: str) -> str:
    arch = arch.lower()
    return ARCH_ALIASES.get(arch, arch)


def host_machine() -> str:
    """The machine pyd runs on (uname -m): the one place it is read."""
    return os.uname().machine


def goarch(machine: str) -> str:
    return GOARCH.get(machine, machine)


def host_platform(machine: str | None = None) -> Platform:
    """linux/<Go arch>/<variant> of `machine` (default: this one): linux/arm64/v8 on aarch64."""
    machine = machine or host_machine()
    return Platform("linux", goarch(machine), MACHINE_VARIANT.get(machine, ""))


def image_platform(config: dict) -> Platform:
    """The platform an image config says (linux/amd64 when it says nothing, as dockerd assumes)."""
    return Platform(str(config.get("os") or "linux"), _normalize_arch(str(config.get("architecture") or "amd64")),
                    str(config.get("variant") or ""))


def config_fields(platform: Platform) -> dict[str, str]:
    """An image config's architecture, os and (arm64: v8) variant for an image made for `platform`."""
    fields = {"architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        fields["variant"] = platform.variant
    return fields


def parse_platform(spec: str, host: Platform) -> Platform:
    """A --platform value: "linux/arm64", "linux/arm64/v8", "arm64" (this os), "linux" (this arch)."""
    parts = spec.strip().lower().split("/")
    if len(parts) > 3 or not all(parts):
        raise PlatformError(f'"{spec}": unknown operating system or architecture: invalid argument')
    if len(parts) == 1:
        if parts[0] in KNOWN_OS:
            return Platform(parts[0], host.architecture, host.variant if parts[0] == host.os else "")
        return Platform(host.os, _normalize_arch(parts[0]))
    if parts[0] not in KNOWN_OS:
        raise PlatformError(f'"{spec}": unknown operating system or architecture: invalid argument')
    return Platform(parts[0], _normalize_arch(parts[1]), parts[2] if len(parts) == 3 else "")


def mismatch_message(reference: str, wanted: Platform, actual: Platform) -> str:
    """dockerd's words for an image that exists but is for another platform."""
    return (f"image with reference {reference} was found but does not match the specified platform: "
            f"wanted {wanted}, actual: {actual}")
