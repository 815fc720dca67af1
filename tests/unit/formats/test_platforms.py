"""Platform names and matching (pyd.formats.platforms): what an arm64 host decides, checked on any host."""
from __future__ import annotations

import pytest

from pyd.formats.platforms import (Platform, PlatformError, config_fields, host_platform, image_platform,
                                   parse_platform)

ARM64 = host_platform("aarch64")
AMD64 = host_platform("x86_64")


def test_the_machine_names_docker_uses() -> None:
    assert str(ARM64) == "linux/arm64/v8"
    assert str(AMD64) == "linux/amd64"
    assert str(host_platform("armv7l")) == "linux/arm/v7"
    assert config_fields(ARM64) == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    assert config_fields(AMD64) == {"architecture": "amd64", "os": "linux"}


@pytest.mark.parametrize("spec, host, want", [
    ("linux/arm64", AMD64, "linux/arm64"),
    ("linux/arm64/v8", AMD64, "linux/arm64/v8"),
    ("arm64", AMD64, "linux/arm64"),
    ("linux", ARM64, "linux/arm64/v8"),
    ("LINUX/AARCH64", AMD64, "linux/arm64"),
    ("linux/x86_64", ARM64, "linux/amd64"),
])
def test_parse_platform(spec: str, host: Platform, want: str) -> None:
    assert str(parse_platform(spec, host)) == want


@pytest.mark.parametrize("spec", ["linux/arm64/v8/extra", "plan9/amd64", "linux//v8", ""])
def test_a_bad_platform_says_what_docker_says(spec: str) -> None:
    with pytest.raises(PlatformError, match="unknown operating system or architecture: invalid argument"):
        parse_platform(spec, AMD64)


def test_arm64_v8_is_the_same_as_no_variant_and_other_arches_are_not() -> None:
    assert ARM64.matches("linux", "arm64", "v8")
    assert ARM64.matches("linux", "arm64", None)
    assert not ARM64.matches("linux", "arm64", "v9")
    assert not ARM64.matches("linux", "amd64", None)
    assert not ARM64.matches("linux", "arm", "v7")
    assert not ARM64.matches("windows", "arm64", None)
    assert parse_platform("linux/arm64", AMD64).matches("linux", "arm64", "v8")
    assert AMD64.matches("linux", "amd64", None)
    assert AMD64.matches(None, None, None)          # an old config that names nothing is linux/amd64


def test_image_platform_reads_a_config() -> None:
    assert str(image_platform({"architecture": "arm64", "os": "linux", "variant": "v8"})) == "linux/arm64/v8"
    assert str(image_platform({})) == "linux/amd64"
    assert str(image_platform({"architecture": "arm64", "os": "linux"}).without_default_variant()) == "linux/arm64"
