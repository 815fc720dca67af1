#!/usr/bin/env bash
# Install what `make test-hosts` needs beyond `make deps`: qemu to boot the guests, debootstrap to build
# their root file systems from Debian's packages, e2fsprogs for `mke2fs -d`; for the arm64 guest the cross
# compiler (dist/pyd-aarch64), qemu-system-arm, qemu-user-static (debootstrap's second stage of an arm64
# root, through binfmt_misc), kmod's depmod and cpio (its kernel's modules and initramfs, made on this
# machine). Quick no-op when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --cross aarch64

APT_PACKAGES=(qemu-system-x86 qemu-system-arm qemu-user-static debootstrap e2fsprogs debian-archive-keyring
              busybox-static kmod cpio)

missing_apt=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing_apt+=("$pkg")
done
if [ ${#missing_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    # other engineers' installs may hold the dpkg lock for a while: wait for it rather than fail
    apt-get -o DPkg::Lock::Timeout=300 update -q
    apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing_apt[@]}"
fi
