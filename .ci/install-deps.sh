#!/usr/bin/env bash
# Installs the Debian 12 packages prunerd builds and tests against (see ../shared/toolchain.md).
# Idempotent: packages already installed are skipped, and nothing runs when all are present.
# Needs root (or sudo) for apt-get. Set PRUNERD_SKIP_DEPS=1 to skip entirely.
set -euo pipefail

[[ "${PRUNERD_SKIP_DEPS:-0}" == 1 ]] && exit 0

pkgs=(
  # build
  cmake g++ make pkg-config
  # engine
  libtorch-dev libopenblas0-serial
  # service
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  prometheus-cpp-dev libcpp-httplib-dev nlohmann-json3-dev libsqlite3-dev libssl-dev
  # tests and their oracles (spm_encode, SentencePiece for whole strings, the sqlite3 CLI;
  # promtool and YAML for the deploy tests)
  libgtest-dev libgmock-dev sentencepiece python3-sentencepiece sqlite3 openssl
  prometheus python3-yaml
)

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${#missing[@]} missing package(s): ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Reference BLAS is 10x slower than OpenBLAS; the serial build is the one whose TLS leaves room for
# other libraries' threads (toolchain.md G3). Make sure it is the libblas.so.3 alternative.
if [[ -e /usr/lib/x86_64-linux-gnu/openblas-serial/libblas.so.3 ]]; then
  $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu \
    /usr/lib/x86_64-linux-gnu/openblas-serial/libblas.so.3 >/dev/null 2>&1 || true
  $SUDO update-alternatives --set liblapack.so.3-x86_64-linux-gnu \
    /usr/lib/x86_64-linux-gnu/openblas-serial/liblapack.so.3 >/dev/null 2>&1 || true
fi
echo "install-deps: done"
