#!/usr/bin/env bash
# Install what building, demoing and testing pyd need on Debian 12; quick no-op when all is there.
#   --cross aarch64: also the cross compiler for `make build ARCH=aarch64` (only that: no apt multiarch;
#   libseccomp for arm64 is unpacked from Debian's .debs under build/ by scripts/foreign_debs.py)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(busybox-static docker-registry libseccomp-dev iproute2 util-linux gcc libc6-dev binutils make
              python3 python3-pip docker-compose apache2-utils docker.io)
if [ "${1:-}" = "--cross" ]; then
    case "${2:-}" in
        aarch64) APT_PACKAGES+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu dpkg) ;;
        *) echo "install-deps.sh: --cross aarch64 is the one cross target" >&2; exit 2 ;;
    esac
fi
PY_MODULES=(shiv uvloop cffi h2 pytest pytest_timeout docker yaml hypothesis)

missing_apt=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing_apt+=("$pkg")
done
if [ ${#missing_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing_apt[@]}"
fi

for mod in "${PY_MODULES[@]}"; do
    if ! python3 -c "import $mod" 2>/dev/null; then
        # pip into whatever python3 is first on PATH; PEP 668 is waived on a build/CI machine.
        PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --disable-pip-version-check \
            --root-user-action=ignore -r requirements-dev.txt
        break
    fi
done

bash scripts/install-cli-plugins.sh   # buildx and compose v2, for the BuildKit tests

if [ ! -x /usr/local/bin/docker ]; then
    echo "warning: no docker CLI at /usr/local/bin/docker: tests driving it will fail (see README)" >&2
fi
