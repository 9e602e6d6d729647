#!/usr/bin/env bash
# Makes the Dockerfile's base image, debian:12 (docker.io/library/debian:12), from the Debian
# archive when no registry is reachable: debootstrap a minbase bookworm into a folder, give it
# the apt sources of the official image (bookworm, bookworm-updates, bookworm-security), and
# `podman import` it under that name, so `podman build --pull=never` finds it.
#
#   bash deploy/docker/base-image.sh            # does nothing if the image exists
#   FORCE=1 bash deploy/docker/base-image.sh    # rebuild it
#   MIRROR=http://deb.debian.org/debian (default)
set -euo pipefail

NAME=docker.io/library/debian:12
MIRROR=${MIRROR:-http://deb.debian.org/debian}

for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || { echo "base-image: $tool is not installed" >&2; exit 1; }
done
if [[ ${FORCE:-0} != 1 ]] && podman image exists "$NAME"; then
  echo "base-image: $NAME exists ($(podman image inspect --format '{{.Created}}' "$NAME"))"
  exit 0
fi
[[ $(id -u) -eq 0 ]] || { echo "base-image: debootstrap needs root" >&2; exit 1; }

root=$(mktemp -d "${TMPDIR:-/var/tmp}/debian12-rootfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
echo "base-image: debootstrap --variant=minbase bookworm from $MIRROR"
start=$(date +%s)
debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$root.log" 2>&1 ||
  { tail -n 20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# The official image's sources (deb822), and no leftovers of the bootstrap.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: ${MIRROR}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* \
  "$root"/tmp/* "$root"/var/tmp/*
tar -C "$root" --numeric-owner -c . | podman import --quiet --change 'CMD ["bash"]' - "$NAME" >/dev/null
echo "base-image: imported $NAME in $(( $(date +%s) - start )) s," \
  "$(podman image inspect --format '{{.Size}}' "$NAME" | awk '{printf "%.0f MB", $1/1e6}')"
