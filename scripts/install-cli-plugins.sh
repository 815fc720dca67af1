#!/usr/bin/env bash
# The docker CLI plugins the BuildKit tests drive: buildx 0.13 and compose v2 from Debian 13's packages
# (docker-buildx, docker-compose; static Go binaries that run on Debian 12). apt fetches the two .deb files
# through a private configuration under build/ (the host's sources stay as they are) and dpkg-deb unpacks
# them; the binaries land in build/cli-plugins/, kept until `make clean`.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=trixie
PACKAGES=(docker-buildx docker-compose)
DEST=build/cli-plugins
if [ -x "$DEST/docker-buildx" ] && [ -x "$DEST/docker-compose" ]; then
    exit 0
fi

APT=$PWD/build/apt-$SUITE
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/debs" "$APT/root" "$DEST"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $SUITE main" \
    > "$APT/sources.list"
: > "$APT/status"
OPTS=(-q -o "Dir::Etc::SourceList=$APT/sources.list" -o "Dir::Etc::SourceParts=$APT/no-parts"
      -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache" -o "Dir::State::status=$APT/status"
      -o "Acquire::Languages=none" -o "APT::Sandbox::User=root")
apt-get "${OPTS[@]}" update >/dev/null
(cd "$APT/debs" && rm -f ./*.deb && apt-get "${OPTS[@]}" download "${PACKAGES[@]}" >/dev/null)
for deb in "$APT"/debs/*.deb; do
    dpkg-deb -x "$deb" "$APT/root"
done
for pkg in "${PACKAGES[@]}"; do
    install -m 0755 "$APT/root/usr/libexec/docker/cli-plugins/$pkg" "$DEST/$pkg.tmp"
    mv "$DEST/$pkg.tmp" "$DEST/$pkg"
done
rm -rf "$APT/root" "$APT/debs" "$APT"/cache/*.bin
echo "cli plugins in $DEST: $("$DEST/docker-buildx" version 2>/dev/null | head -1); $("$DEST/docker-compose" version 2>/dev/null | head -1)"
