"""What the daemon decides per architecture, for an aarch64 host, decided on whatever machine runs the tests:
each decision takes the machine (or its Platform) instead of reading uname, so no emulation is needed."""
from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest

from pyd.daemon.build.builder import _platform_of
from pyd.daemon.containers.image_platform import check_platform
from pyd.daemon.errors import BadParameter, NotFound
from pyd.daemon.images import registry
from pyd.daemon.runtime import native
from pyd.daemon.spec.seccomp import DEFAULT_PROFILE, compile_profile
from pyd.daemon.storage.graph import Graph
from pyd.formats.platforms import host_platform
from pyd.formats.reference import parse_reference

ARM64 = host_platform("aarch64")
AMD64 = host_platform("x86_64")
AMD64_CONFIG = {"architecture": "amd64", "os": "linux"}
ARM64_CONFIG = {"architecture": "arm64", "os": "linux", "variant": "v8"}
INDEX = {"manifests": [
    {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}},
    {"digest": "sha256:arm7", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
    {"digest": "sha256:arm64", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
]}


def test_a_pull_on_arm64_picks_linux_arm64_v8_from_an_index() -> None:
    assert registry.pick_manifest(INDEX, registry.PullOptions(host=ARM64).wanted())["digest"] == "sha256:arm64"
    assert registry.pick_manifest(INDEX, registry.PullOptions(host=AMD64).wanted())["digest"] == "sha256:amd"
    wanted = registry.PullOptions(platform="linux/amd64", host=ARM64).wanted()
    assert registry.pick_manifest(INDEX, wanted)["digest"] == "sha256:amd"
    no_variant = {"manifests": [{"digest": "sha256:plain", "platform": {"os": "linux", "architecture": "arm64"}}]}
    assert registry.pick_manifest(no_variant, ARM64)["digest"] == "sha256:plain"


def test_an_index_without_arm64_says_what_dockerd_says() -> None:
    amd_only = {"manifests": INDEX["manifests"][:1]}
    with pytest.raises(NotFound, match=r"^no matching manifest for linux/arm64/v8 in the manifest list entries$"):
        registry.pick_manifest(amd_only, ARM64)


def test_an_amd64_only_image_on_arm64_fails_with_dockers_message() -> None:
    ref = parse_reference("127.0.0.1:5000/tool:1")
    with pytest.raises(NotFound) as caught:
        registry.check_image_platform(ref, AMD64_CONFIG, registry.PullOptions(host=ARM64))
    assert caught.value.message == ("image with reference 127.0.0.1:5000/tool:1 was found but does not match the "
                                    "specified platform: wanted linux/arm64, actual: linux/amd64")
    with pytest.raises(NotFound, match="wanted linux/arm64/v8, actual: linux/amd64"):
        registry.check_image_platform(ref, AMD64_CONFIG, registry.PullOptions("linux/arm64/v8", host=AMD64))
    registry.check_image_platform(ref, ARM64_CONFIG, registry.PullOptions(host=ARM64))
    registry.check_image_platform(ref, {"os": "linux"}, registry.PullOptions(host=ARM64))   # says nothing: taken
    with pytest.raises(BadParameter, match="unknown operating system or architecture"):
        registry.PullOptions("linux/arm64/v8/x", host=ARM64).wanted()


def test_create_with_platform_checks_the_local_image() -> None:
    with pytest.raises(NotFound) as caught:
        check_platform("busybox", ARM64_CONFIG, "linux/amd64", ARM64)
    assert caught.value.message == ("image with reference busybox was found but does not match the specified "
                                    "platform: wanted linux/amd64, actual: linux/arm64/v8")
    assert check_platform("busybox", ARM64_CONFIG, "linux/arm64", ARM64) == []
    assert check_platform("busybox", ARM64_CONFIG, "", ARM64) == []
    assert check_platform("busybox", AMD64_CONFIG, "", ARM64) == [
        "The requested image's platform (linux/amd64) does not match the detected host platform (linux/arm64/v8) "
        "and no specific platform was requested"]
    with pytest.raises(BadParameter):
        check_platform("busybox", ARM64_CONFIG, "nope/arm64", ARM64)


def test_seccomp_on_aarch64_adds_arm_and_its_own_syscalls() -> None:
    arm = compile_profile(DEFAULT_PROFILE, [], "aarch64", "6.1.0")
    x86 = compile_profile(DEFAULT_PROFILE, [], "x86_64", "6.1.0")
    assert arm.arches == ["aarch64", "arm"]
    assert x86.arches == ["x86_64", "x86", "x32"]

    def names(f) -> set[str]:
        return {rule.split()[1] for rule in f.rules}
    assert {"arm_fadvise64_64", "sync_file_range2", "set_tls"} <= names(arm) - names(x86)
    assert {"arch_prctl", "modify_ldt"} <= names(x86) - names(arm)


def _unistd(path: str) -> dict[str, int]:
    text = Path(path).read_text()
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"#define __NR_(\w+)\s+(\d+)\b", text)}


@pytest.mark.parametrize("machine, header", [
    ("x86_64", "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    ("aarch64", "/usr/aarch64-linux-gnu/include/asm-generic/unistd.h"),   # libc6-dev-arm64-cross
])
def test_syscall_numbers_are_the_kernel_headers_for_each_machine(machine: str, header: str) -> None:
    if not Path(header).exists():
        pytest.skip(f"no {header} (make cross-deps)")
    numbers = _unistd(header)
    assert native.SYS_BPF[machine] == numbers["bpf"]
    for name in ("open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "openat2"):
        assert getattr(native, f"SYS_{name.upper()}") == numbers[name], name


def _rootfs() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    return out.getvalue()


def test_images_made_on_arm64_say_arm64_v8(tmp_path: Path) -> None:
    graph = Graph(str(tmp_path), "vfs", platform=ARM64)
    image = graph.image(graph.import_tar(_rootfs()))
    assert (image.config["architecture"], image.config["os"], image.config["variant"]) == ("arm64", "linux", "v8")
    assert _platform_of({}, ARM64) == ARM64_CONFIG                       # FROM scratch
    assert _platform_of(AMD64_CONFIG, ARM64) == AMD64_CONFIG             # FROM an amd64 image
