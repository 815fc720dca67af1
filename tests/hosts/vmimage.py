"""Debian guest images for the host tests, built with debootstrap from Debian's packages and cached under
/var/tmp/pyd-hosts/<suite>-<key>/: the root file system as a raw ext4 image made with `mke2fs -d` (no loop
mount), and the guest's own kernel and initrd beside it.

Another architecture than amd64 (<suite>-<arch>-<key>/) is built for the bare init only, so that its
emulated part stays short: debootstrap --arch with its second stage run through Debian's qemu-user-static
(binfmt_misc) installs python3 and the few tools the scenarios use, no systemd, udev or kernel; the stock
kernel package is unpacked and its initramfs made on the build machine (hostkernel.py). The key covers the suite, the package list and
RECIPE_VERSION; an image is built in a temp folder and renamed into place, so a half-built one is never
used, and a second run finds it and takes no debootstrap time.

    python3 tests/hosts/vmimage.py bookworm     # build (or find) one image, print its folder
    python3 tests/hosts/vmimage.py bookworm:arm64
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "kit"))
from hostkit import unmount_under  # noqa: E402  (tests/kit/hostkit.py)
import hostkernel  # noqa: E402

CACHE = Path(os.environ.get("PYD_HOSTS_CACHE", "/var/tmp/pyd-hosts"))
MIRROR = "http://deb.debian.org/debian"
# Bump when anything below changes what ends up in an image (the guest files, the mke2fs options).
RECIPE_VERSION = 1
PACKAGES = ("linux-image-amd64", "systemd-sysv", "udev", "kmod", "python3", "procps", "iproute2")
# another architecture's root: what the bare init, the scenarios and pyd run (kmod: the kernel's module
# loader, for overlay), nothing that boots with systemd; its kernel comes from hostkernel.py
FOREIGN_PACKAGES = ("kmod", "python3", "procps", "iproute2")
# Bump when the foreign build (hostkernel.py, initramfs/init) changes what ends up in its images.
FOREIGN_RECIPE_VERSION = 2
ROOT_SIZE = "4G"
DEBOOTSTRAP_TIMEOUT = 1800
GUEST_FILES = Path(__file__).resolve().parent / "guest"
NATIVE_ARCH = "amd64"
# binfmt_misc, where the kernel learns to run another architecture's binaries through qemu-user-static
BINFMT = Path("/proc/sys/fs/binfmt_misc")
QEMU_USER = {"arm64": "qemu-aarch64"}
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class GuestImage:
    """A built image: boot `kernel` + `initrd` with `rootfs` as /dev/vda."""
    folder: Path
    suite: str
    arch: str
    kernel: Path
    initrd: Path
    rootfs: Path
    build_seconds: float          # 0.0 when it came from the cache


def packages_for(arch: str) -> tuple[str, ...]:
    return PACKAGES if arch == NATIVE_ARCH else FOREIGN_PACKAGES


def cache_key(suite: str, packages: tuple[str, ...] = PACKAGES, arch: str = NATIVE_ARCH) -> str:
    guest = b"".join(p.name.encode() + p.read_bytes() for p in sorted(GUEST_FILES.iterdir()) if p.is_file())
    fields: dict[str, object] = {"suite": suite, "packages": sorted(packages), "recipe": RECIPE_VERSION}
    if arch != NATIVE_ARCH:
        fields.update(arch=arch, foreign_recipe=FOREIGN_RECIPE_VERSION)
        guest += hostkernel.INIT.read_bytes()
    return hashlib.sha256(json.dumps(fields).encode() + guest).hexdigest()[:16]


def image_label(suite: str, arch: str = NATIVE_ARCH) -> str:
    """The image's name in the cache: the suite, with the architecture unless it is amd64."""
    return suite if arch == NATIVE_ARCH else f"{suite}-{arch}"


def _image_in(folder: Path, suite: str, arch: str, seconds: float) -> GuestImage:
    return GuestImage(folder, suite, arch, folder / "vmlinuz", folder / "initrd.img", folder / "rootfs.img",
                      seconds)


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ("vmlinuz", "initrd.img", "rootfs.img", "manifest.json"))


@contextlib.contextmanager
def _build_lock(suite: str) -> Iterator[None]:
    """One builder per suite at a time; a second waits and then finds the finished image."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{suite}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(argv: list[str], timeout: float, log: Path) -> None:
    with open(log, "ab") as out:
        out.write(("$ " + " ".join(argv) + "\n").encode())
        out.flush()
        began = time.monotonic()
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                              env={"PATH": SBIN_PATH, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"})
        out.write(f"[{argv[0]}: exit {proc.returncode} after {time.monotonic() - began:.0f}s]\n".encode())
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}; last of {log}:\n{tail}")


@contextlib.contextmanager
def _foreign_binaries(arch: str, log: Path) -> Iterator[None]:
    """Let the kernel run `arch`'s binaries (debootstrap's second stage chroots into the new tree) through
    qemu-user-static, registered from its binfmt.d file with the F flag, so the interpreter needs no copy
    in the chroot. What this registered (and mounted) is undone afterwards."""
    if arch == NATIVE_ARCH:
        yield
        return
    name = QEMU_USER[arch]
    conf = Path(f"/usr/lib/binfmt.d/{name}.conf")
    if not conf.is_file():
        raise RuntimeError(f"no {conf}: install qemu-user-static (make host-deps)")
    mounted = registered = False
    if not (BINFMT / "register").exists():
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], 30, log)
        mounted = True
    try:
        if not (BINFMT / name).exists():
            (BINFMT / "register").write_text(conf.read_text().strip())
            registered = True
        yield
    finally:
        if registered:
            (BINFMT / name).write_text("-1")
        if mounted:
            _run(["umount", str(BINFMT)], 30, log)


def _customize(root: Path, suite: str, systemd: bool) -> None:
    """What turns a debootstrap tree into a guest that runs the scenarios and powers off (`systemd`: the
    unit that runs them when systemd is init, too)."""
    (root / "etc/hostname").write_text(f"pyd-{suite}\n")
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 pyd-{suite}\n")
    (root / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    sbin = root / "usr/local/sbin"
    sbin.mkdir(parents=True, exist_ok=True)
    for name in ("pyd-hosts-run", "pyd-hosts-init"):
        shutil.copyfile(GUEST_FILES / name, sbin / name)
        os.chmod(sbin / name, 0o755)
    (root / "etc/machine-id").write_text("")
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    if systemd:
        _systemd_units(root)


def _systemd_units(root: Path) -> None:
    units = root / "etc/systemd/system"
    shutil.copyfile(GUEST_FILES / "pyd-hosts.service", units / "pyd-hosts.service")
    wants = units / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "pyd-hosts.service").symlink_to("/etc/systemd/system/pyd-hosts.service")
    # Nothing on the guest should compete with the scenarios for its slow emulated CPUs.
    for unit in ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
                 "e2scrub_reap.service", "systemd-timesyncd.service"):
        (units / unit).unlink(missing_ok=True)
        (units / unit).symlink_to("/dev/null")


def _build(suite: str, arch: str, key: str, final: Path) -> None:
    label = image_label(suite, arch)
    work = Path(tempfile.mkdtemp(prefix=f".build-{label}-", dir=CACHE))
    log = CACHE / f"build-{label}-{key}.log"
    log.write_text("")
    packages = packages_for(arch)
    arch_args = [] if arch == NATIVE_ARCH else [f"--arch={arch}"]
    try:
        root = work / "root"
        with _foreign_binaries(arch, log):
            _run(["debootstrap", *arch_args, "--variant=minbase", "--components=main",
                  "--include=" + ",".join(packages), suite, str(root), MIRROR], DEBOOTSTRAP_TIMEOUT, log)
        unmount_under(str(root))        # nothing debootstrap mounted may stay in the tree mke2fs copies
        _customize(root, suite, systemd=arch == NATIVE_ARCH)
        out = work / "out"
        out.mkdir()
        kernel = _boot_files(root, arch, work, out, log)
        _run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "pyd-root", "-E", "root_owner=0:0", "-d", str(root),
              str(out / "rootfs.img"), ROOT_SIZE], 900, log)
        manifest = {"suite": suite, "packages": list(packages), "recipe": RECIPE_VERSION,
                    "kernel": kernel, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        os.rename(out, final)                       # the one step that makes the image visible
    finally:
        unmount_under(str(work))
        shutil.rmtree(work, ignore_errors=True)


def _boot_files(root: Path, arch: str, work: Path, out: Path, log: Path) -> str:
    """out/vmlinuz and out/initrd.img: the ones debootstrap installed (amd64), or made here from the stock
    kernel package (another architecture). Returns the kernel's name."""
    if arch == NATIVE_ARCH:
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        initrds = sorted((root / "boot").glob("initrd.img-*"))
        if not kernels or not initrds:
            raise RuntimeError(f"no kernel or initrd in {root}/boot after debootstrap")
        shutil.copyfile(kernels[-1], out / "vmlinuz")
        shutil.copyfile(initrds[-1], out / "initrd.img")
        return kernels[-1].name
    began = time.monotonic()
    kernel = hostkernel.unpack_kernel(arch, CACHE / "debs")
    hostkernel.install_modules(kernel, root)
    hostkernel.make_initramfs(kernel, root, out / "initrd.img", work)
    shutil.copyfile(kernel.vmlinuz, out / "vmlinuz")
    with open(log, "a") as out_log:
        out_log.write(f"kernel {kernel.package} unpacked, initramfs made in {time.monotonic() - began:.0f}s\n")
    return kernel.vmlinuz.name


def guest_image(suite: str, arch: str = NATIVE_ARCH) -> GuestImage:
    """The cached image for `suite` on `arch`, built first when there is none."""
    key = cache_key(suite, packages_for(arch), arch)
    label = image_label(suite, arch)
    final = CACHE / f"{label}-{key}"
    if _complete(final):
        return _image_in(final, suite, arch, 0.0)
    with _build_lock(label):
        if _complete(final):
            return _image_in(final, suite, arch, 0.0)
        _remove_stale(label, keep=final)
        began = time.monotonic()
        _build(suite, arch, key, final)
        return _image_in(final, suite, arch, time.monotonic() - began)


def _remove_stale(label: str, keep: Path) -> None:
    """Under the image's lock: a build folder left by a killed run, and images of older recipes (only
    LABEL-KEY: bookworm's stale images are not bookworm-arm64's)."""
    for path in [*CACHE.glob(f".build-{label}-*"), *CACHE.glob(f"{label}-*")]:
        rest = path.name.split(f"{label}-", 1)[-1]       # mkdtemp's suffix or the key: never a "-" in it
        stale = "-" not in rest and (path.name.startswith(".build-") or len(rest) == 16)
        if path.is_dir() and path != keep and stale:
            unmount_under(str(path))
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    for name in sys.argv[1:] or ["bookworm"]:
        suite, _, arch = name.partition(":")
        image = guest_image(suite, arch or NATIVE_ARCH)
        print(image.folder, f"{image.build_seconds:.0f}s")
