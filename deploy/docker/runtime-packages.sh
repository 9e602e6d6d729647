#!/usr/bin/env bash
# Prints the Debian packages that hold the shared libraries the given binaries link directly
# (their DT_NEEDED entries, resolved the way the loader resolves them), one a line, sorted.
# The runtime stage of the Dockerfile installs exactly these (apt adds their dependencies), so
# the image carries what the binaries load and nothing of the build.
#   bash deploy/docker/runtime-packages.sh build/bin/prunerd build/bin/prunectl
set -euo pipefail
[[ $# -gt 0 ]] || { echo "usage: $0 BINARY..." >&2; exit 2; }

owner() {  # the package owning a file, trying both sides of the /usr merge
  local p=$1 alt
  case $p in
    /usr/lib/*) alt=${p#/usr} ;;
    /lib/*) alt=/usr$p ;;
    *) alt=$p ;;
  esac
  for f in "$p" "$(readlink -f "$p")" "$alt"; do
    dpkg-query -S "$f" 2>/dev/null | head -n 1 | cut -d: -f1 && return 0
  done
  return 1
}

declare -A pkgs=()
for bin in "$@"; do
  # "libfoo.so.1 => /path/libfoo.so.1 (0x...)": keep the direct dependencies only.
  mapfile -t needed < <(objdump -p "$bin" | awk '$1 == "NEEDED" {print $2}')
  resolved=$(ldd "$bin")
  for lib in "${needed[@]}"; do
    path=$(awk -v l="$lib" '$1 == l && $2 == "=>" {print $3}' <<<"$resolved")
    if [[ -z $path || $path == "not" ]]; then
      echo "runtime-packages: $bin needs $lib, which the loader does not find" >&2
      exit 1
    fi
    pkg=$(owner "$path") || { echo "runtime-packages: no package owns $path" >&2; exit 1; }
    pkgs[$pkg]=1
  done
done
printf '%s\n' "${!pkgs[@]}" | sort
