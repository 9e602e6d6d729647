#!/usr/bin/env bash
# The GPU runs behind the issues' "on the H100" points, in phases that each fit one device call
# (10 minutes). Run from the repository root with .gpu (debs) and .data (a copy of the shared
# data) carried; every result lands in $OUT. Phases reuse build-gpu/ and /tmp/m7b when the
# machine is still warm and rebuild them when it is not.
#
#   bash bench/gpu/session.sh reference   build; Python goldens (transformers); parity on cuda
#   bash bench/gpu/session.sh transact7b  TransAct scoring/slicing time and forward speed-up
#   bash bench/gpu/session.sh check       build; fused-kernel and layer-transfer tests on cuda;
#                                         parity on cuda against tests/golden; unit tests
#   bash bench/gpu/session.sh prune7b     the 7B prune benchmark (Wanda cold and warm, SparseGPT,
#                                         Barber) in one process
#   bash bench/gpu/session.sh final       check, then prune7b, in one call
#   bash bench/gpu/session.sh service     the daemon's Barber job on the 7B-shaped model through
#                                         prunectl against the same job run offline
#   bash bench/gpu/session.sh transformers  pruned prose16M models (Wanda 50%, Barber 2:4) loaded
#                                         by transformers: perplexity and sparsity vs the engine's
#   bash bench/gpu/session.sh quality     the README's quality table: every method and pattern on
#                                         prose16M and stories260K, fp32, the reference's
#                                         calibration tokens, WikiText-2 test
set -uo pipefail
cd "$(dirname "$0")/../.."
export PRUNERD_TEST_DATA=$PWD/.data PYTHONUNBUFFERED=1 OUT=${OUT:-/tmp/out}
source .gpu/env.sh  # the carried Debian libraries, for building and for running what was built
mkdir -p "$OUT"
BIN=$PWD/build-gpu/bin
M7B=/tmp/m7b
CALIB=$PRUNERD_TEST_DATA/text/wikitext-2/valid.txt
log() { echo "[$(date +%T)] $*"; }

build() {
  log "build"
  bash bench/gpu/build.sh > "$OUT/build.txt" 2>&1
  echo "build rc=$?" >> "$OUT/build.txt"
  cp "${OUT}/build.log" /tmp/build.log 2>/dev/null || true
  grep -E 'error|Error [0-9]' "$OUT/build.log" | head -30
  tail -2 "$OUT/build.txt"
}

synth7b() {
  [[ -f $M7B/config.json ]] && return 0
  log "synth_model llama2-7b"
  /usr/bin/time -v "$BIN/synth_model" --preset llama2-7b --dtype float16 \
    --tokenizer "$PRUNERD_TEST_DATA/tokenizers/llama2/tokenizer.model" --out $M7B \
    > "$OUT/synth.txt" 2>&1
  tail -3 "$OUT/synth.txt"
}

# Wanda, SparseGPT and Barber at 50% on the 7B-shaped model in one process under a timeout of
# $1 s: Wanda twice, so the table shows a cold job (the process's first: CUDA context, cuBLAS
# and kernel loading) and the warm ones a long-running daemon runs.
prune7b_runs() {
  log "prune_bench wanda (cold), wanda, sparsegpt, barber:wanda (warm)"
  timeout "$1" "$BIN/prune_bench" --model $M7B --calib-file "$CALIB" --calib-samples 128 \
    --calib-seqlen 2048 --skip-calib-eval --configs wanda/0.5,wanda/0.5,sparsegpt/0.5,barber:wanda/0.5 --device cuda --dtype float16 \
    --label "h100 7b: wanda cold, then warm wanda, sparsegpt, barber" \
    --json "$OUT/prune7b.json" > "$OUT/prune7b.txt" 2>&1
  echo "rc=$?" >> "$OUT/prune7b.txt"
  cat "$OUT/prune7b.txt"
}

check() {
  build
  log "layer transfer through pinned staging, fused kernels against ATen, on cuda"
  PRUNERD_TEST_DEVICE=cuda timeout 60 build-gpu/tests/engine_test \
    --gtest_filter='LayerTransfer*:*Fused*' > "$OUT/engine_cuda.txt" 2>&1
  grep -E 'OK|FAILED|PASSED|Failure|Expected|Which' "$OUT/engine_cuda.txt" | head -40
  log "parity on cuda against tests/golden"
  (cd build-gpu && PRUNERD_TEST_DEVICE=cuda timeout 150 ctest -L parity -V \
     > "$OUT/parity_cuda.txt" 2>&1)
  grep -E 'masks|Failed|tests passed|max \|logit|ppl' "$OUT/parity_cuda.txt" | cut -c1-200 | head -60
  log "unit tests (CUDA libtorch build)"
  (cd build-gpu && timeout 100 ctest -L unit -j12 --timeout 60 > "$OUT/ctest_gpu.txt" 2>&1)
  tail -6 "$OUT/ctest_gpu.txt"
}

case "${1:-}" in
reference)
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
  build &
  BUILD=$!
  log "python reference goldens on cuda"
  timeout 420 python3 tests/reference/run_all.py --out /tmp/golden --data "$PRUNERD_TEST_DATA" \
    --device cuda > "$OUT/ref.log" 2>&1
  echo "ref rc=$?" >> "$OUT/ref.log"
  tail -12 "$OUT/ref.log"
  (cd /tmp/golden && tar czf "$OUT/golden_gpu.tgz" .)
  wait $BUILD
  synth7b &
  log "parity on cuda against the fresh goldens"
  (cd build-gpu && PRUNERD_GOLDEN_DIR=/tmp/golden PRUNERD_TEST_DEVICE=cuda timeout 240 \
     ctest -L parity -V > "$OUT/parity_cuda.txt" 2>&1)
  grep -E 'ppl|masks|max \|logit|Passed|Failed|tests passed' "$OUT/parity_cuda.txt" | head -60
  wait
  ;;
transact7b)
  [[ -x $BIN/transact_bench ]] || build
  synth7b
  log "transact_bench"
  timeout 150 "$BIN/transact_bench" --model $M7B --device cuda --attn-ratio 0.5 --mlp-ratio 0.5 \
    --json "$OUT/transact7b.json" > "$OUT/transact7b.txt" 2>&1
  echo "rc=$?" >> "$OUT/transact7b.txt"
  tail -15 "$OUT/transact7b.txt"
  ;;
check)
  # Build, then the CUDA-only tests: the fused kernels and the layer transfer on the GPU, parity
  # against tests/golden on cuda, the unit tests of the CUDA build.
  check
  ;;
prune7b)
  [[ -x $BIN/prune_bench ]] || build
  synth7b
  prune7b_runs 400
  ;;
final)
  # One cold call: check, then the 7B prune benchmark.
  check
  synth7b
  prune7b_runs 280
  # At most 8 files come back from a device call: pack them into one.
  tar czf /tmp/final.tgz -C "$OUT" . && rm -rf "${OUT:?}"/* && mv /tmp/final.tgz "$OUT/"
  ;;
service)
  [[ -x $BIN/prunerd ]] || build
  synth7b
  bash bench/gpu/service_vs_offline.sh "$BIN" $M7B "$CALIB" "$OUT"
  tar czf /tmp/service.tgz -C "$OUT" . && rm -rf "${OUT:?}"/* && mv /tmp/service.tgz "$OUT/"
  ;;
transformers)
  [[ -x $BIN/prunerd ]] || build
  TOK=tests/golden/calib_prose16M_64x512.safetensors
  for job in "wanda --ratio 0.5" "barber --barber-init wanda --barber-tau 0.1 --pattern 2:4"; do
    n=${job%% *}
    log "transformers check: $job"
    rm -rf "/tmp/tf_$n"
    # shellcheck disable=SC2086
    "$BIN/prunerd" oneshot --model "$PRUNERD_TEST_DATA/models/prose16M" --method $job \
      --calib-file "$TOK" --calib-samples 64 --calib-seqlen 512 --device cuda --dtype float32 --quiet \
      --out "/tmp/tf_$n" --report "$OUT/tf_${n}_report.json" > /dev/null
    "$BIN/prunerd" eval --model "/tmp/tf_$n" --data "$TOK" --seqlen 512 --device cuda \
      --dtype float32 --quiet --report "$OUT/tf_${n}_eval.json" > /dev/null
    ppl=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['perplexity'])" \
      "$OUT/tf_${n}_eval.json")
    sp=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['sparsity'])" \
      "$OUT/tf_${n}_report.json")
    python3 tests/reference/check_pruned_transformers.py --model "/tmp/tf_$n" --tokens "$TOK" \
      --seqlen 512 --expect-ppl "$ppl" --expect-sparsity "$sp" 2>&1 | tee "$OUT/tf_${n}.txt"
  done
  ;;
quality)
  [[ -x $BIN/prune_bench ]] || build
  M=magnitude W=wanda S=sparsegpt B1=barber:wanda@0.01 B2=barber:wanda@0.1
  all() { local out=""; for p in "$@"; do for m in $M $W $S $B1 $B2; do out+="$m/$p,"; done; done
          echo "${out%,}"; }
  quality() {  # model calib n T eval-T patterns...
    local name=$1 model=$2 calib=$3 n=$4 t=$5; shift 5
    log "quality $name"
    timeout 250 "$BIN/prune_bench" --model "$model" --calib-file "$calib" --calib-samples "$n" \
      --calib-seqlen "$t" --skip-calib-eval \
      --eval-file "$PRUNERD_TEST_DATA/text/wikitext-2-raw/wiki.test.raw" --eval-seqlen "$t" \
      --device cuda --dtype float32 --configs "$(all "$@")" --label "h100 quality $name" \
      --json "$OUT/quality_$name.json" > "$OUT/quality_$name.txt" 2>&1
    echo "rc=$?" >> "$OUT/quality_$name.txt"
    cat "$OUT/quality_$name.txt"
  }
  quality prose16M "$PRUNERD_TEST_DATA/models/prose16M" tests/golden/calib_prose16M_64x512.safetensors \
    64 512 0.5 2:4 4:8
  # stories260K: 4:8 is impossible (MLP width 172 is not a multiple of 8).
  quality stories260K "$PRUNERD_TEST_DATA/models/stories260K/stories260K.bin" \
    tests/golden/calib_stories260K_32x256.safetensors 32 256 0.5 2:4
  ;;
*)
  echo "usage: $0 reference|check|prune7b|final|transact7b|service|quality|transformers" >&2
  exit 2
  ;;
esac
log "done"
