"""The kernel and initrd of an emulated guest, made on the build machine instead of under emulation: the
stock kernel package (what linux-image-ARCH stands for) unpacked with `dpkg-deb -x`, its modules copied
into the guest's root with `depmod -b` run here, and an initramfs of Debian's busybox-static for that
architecture, the modules the kernel needs to reach its root (virtio PCI, virtio-blk, ext4 and their
dependencies) and a short init (initramfs/init) that mounts root= and hands over to init=.

initramfs-tools and the kernel's postinst under qemu-user-static took most of an emulated image's build;
this takes seconds."""
from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "scripts"))
import foreign_debs  # noqa: E402  (scripts/foreign_debs.py)

INIT = Path(__file__).resolve().parent / "initramfs" / "init"
# what a virt machine's kernel needs before it can mount /dev/vda (the rest is built in: PCI host
# bridge, serial ports, devtmpfs); dependencies come from modules.dep
ROOT_MODULES = ("virtio_pci", "virtio_blk", "ext4", "crc32c_generic")


@dataclass(frozen=True)
class KernelFiles:
    vmlinuz: Path
    version: str          # the modules' folder name: 6.1.0-50-arm64
    package: str          # linux-image-6.1.0-50-arm64


def unpack_kernel(arch: str, debs: Path) -> KernelFiles:
    """The stock kernel of `arch` (linux-image-ARCH's dependency), unpacked under DEBS/root-ARCH."""
    meta = f"linux-image-{arch}"
    packages = [p for p in foreign_debs.depends(arch, debs, meta) if p.startswith("linux-image-")]
    if not packages:
        raise RuntimeError(f"{meta} depends on no linux-image-* package")
    root = foreign_debs.sysroot(arch, debs, [packages[0], "busybox-static"])
    version = packages[0].removeprefix("linux-image-")
    vmlinuz = root / "boot" / f"vmlinuz-{version}"
    if not vmlinuz.is_file() or not (root / "lib/modules" / version).is_dir():
        raise RuntimeError(f"no {vmlinuz} or lib/modules/{version} in {root} after unpacking {packages[0]}")
    return KernelFiles(vmlinuz, version, packages[0])


def install_modules(kernel: KernelFiles, guest_root: Path) -> None:
    """The kernel's modules in the guest's /lib/modules, indexed by depmod here (so the guest's kmod can
    load what the kernel asks for, overlay among them)."""
    source = kernel.vmlinuz.parent.parent / "lib/modules" / kernel.version
    target = guest_root / "usr/lib/modules" / kernel.version       # bookworm's /lib is a link to usr/lib
    shutil.copytree(source, target, symlinks=True)
    subprocess.run(["depmod", "-b", str(guest_root), kernel.version], check=True, capture_output=True,
                   timeout=300)


def _load_order(modules_dir: Path, wanted: tuple[str, ...]) -> list[str]:
    """Paths (relative to modules_dir) of `wanted` and what they depend on, dependencies first."""
    deps: dict[str, list[str]] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
    by_name = {Path(path).name.split(".ko")[0].replace("-", "_"): path for path in deps}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in reversed(deps[path]):        # modules.dep lists the nearest dependency first
            visit(dep)
        order.append(path)

    for name in wanted:
        if name not in by_name:
            raise RuntimeError(f"no module {name} in {modules_dir}/modules.dep")
        visit(by_name[name])
    return order


def make_initramfs(kernel: KernelFiles, guest_root: Path, out: Path, work: Path) -> None:
    """A gzip'd newc cpio: busybox, the root's modules in load order, initramfs/init."""
    modules_dir = guest_root / "usr/lib/modules" / kernel.version
    tree = work / "initramfs"
    for folder in ("bin", "lib/modules"):
        (tree / folder).mkdir(parents=True)
    shutil.copy2(kernel.vmlinuz.parent.parent / "bin" / "busybox", tree / "bin" / "busybox")
    order = _load_order(modules_dir, ROOT_MODULES)
    for path in order:
        (tree / "lib/modules" / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(modules_dir / path, tree / "lib/modules" / path)
    (tree / "modules").write_text("".join(p + "\n" for p in order))
    shutil.copyfile(INIT, tree / "init")
    (tree / "init").chmod(0o755)
    names = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
    archive = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=tree, check=True,
                             input="\n".join(names).encode() + b"\n", capture_output=True, timeout=120).stdout
    out.write_bytes(gzip.compress(archive, 6))
