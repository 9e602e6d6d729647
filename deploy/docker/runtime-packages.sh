#!/usr/bin/env bash
# Prints the Debian packages that hold the shared libraries the given binaries link directly
# (their DT_NEEDED entries, resolved the way the loader resolves them), one a line, sorted.
# The runtime stage of the Dockerfile installs exactly these (apt adds their dependencies), so
# the image carries what the binaries load and nothing of the build.
#   bash deploy/docker/runtime-packages.sh build/bin/prunerd build/bin/prunectl
set -euo pipefail
[[ $# -gt 0 ]] || { echo "usage: $0 BINARY..." >&2; exit 2; }

declare -A libs=()  # resolved path -> the library's name
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
    libs[$path]=$lib
  done
done

# dpkg knows each file under one side of the /usr merge: ask for both, and the real path.
candidates=()
for p in "${!libs[@]}"; do
  candidates+=("$p" "$(readlink -f "$p")")
  case $p in
    /usr/lib/*) candidates+=("${p#/usr}") ;;
    /lib/*) candidates+=("/usr$p") ;;
  esac
done
owners=$(dpkg-query -S "${candidates[@]}" 2>/dev/null || true)
declare -A pkgs=()
for p in "${!libs[@]}"; do
  real=$(readlink -f "$p")
  pkg=$(awk -F': ' -v a="$p" -v b="$real" -v c="${p#/usr}" -v d="/usr$p" \
          '$2 == a || $2 == b || $2 == c || $2 == d {print $1; exit}' <<<"$owners")
  [[ -n $pkg ]] || { echo "runtime-packages: no package owns $p (${libs[$p]})" >&2; exit 1; }
  pkgs[${pkg%%:*}]=1
done
printf '%s\n' "${!pkgs[@]}" | sort
