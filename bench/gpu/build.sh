#!/usr/bin/env bash
# Builds prunerd on a GPU host (CUDA libtorch from python3's torch, Debian's gRPC stack from
# .gpu/debs: see ../shared/gpu-host/README.md). Usage, from the repository root:
#   bash bench/gpu/build.sh [targets...]      (default: everything)
# Output: build-gpu/. Logs to $OUT/build.log when OUT is set.
set -euo pipefail
cd "$(dirname "$0")/../.."
source .gpu/env.sh
log=${OUT:-/tmp}/build.log
start=$(date +%s)
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$GPU_PREFIX_PATH" \
  -DPRUNERD_TEST_DATA="${PRUNERD_TEST_DATA:-$PWD/shared/data}" >"$log" 2>&1
if [[ $# -gt 0 ]]; then
  cmake --build build-gpu -j"$(nproc)" --target "$@" -- -k >>"$log" 2>&1
else
  cmake --build build-gpu -j"$(nproc)" -- -k >>"$log" 2>&1
fi
echo "gpu build: $(( $(date +%s) - start )) s ($(grep -c 'warning:' "$log" || true) warnings)"
