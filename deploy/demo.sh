#!/usr/bin/env bash
# The demo behind `make run`: start prunerd on a free loopback port with a temporary data
# directory and the bundled models as its model root, prune prose16M with Wanda at 50%
# through `prunectl submit --wait` (small calibration, WikiText-2 perplexity before and after
# on a limited number of windows: about a minute on 2 CPU cores), print the report, download
# the pruned model (sha256-verified), and stop the daemon with SIGTERM.
#
#   bash deploy/demo.sh build
set -euo pipefail

BUILD=${1:-build}
BIN=$(cd "$BUILD/bin" && pwd)
REPO=$(cd "$(dirname "$0")/.." && pwd)
DATA=${PRUNERD_TEST_DATA:-$REPO/../shared/data}
DATA=$(cd "$DATA" && pwd)
for f in "$BIN/prunerd" "$BIN/prunectl" "$DATA/models/prose16M/config.json" \
         "$DATA/text/wikitext-2-raw/wiki.test.raw"; do
  [[ -e $f ]] || { echo "demo: missing $f (build first; set PRUNERD_TEST_DATA)" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/prunerd-demo.XXXXXX")
DAEMON_PID=""
cleanup() {
  if [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/datasets"
printf '{"wikitext2": "%s"}\n' "$DATA/text/wikitext-2-raw/wiki.test.raw" \
  > "$WORK/datasets/datasets.json"

echo "== starting prunerd (data dir $WORK/data, model root $DATA)"
"$BIN/prunerd" serve --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
  --data-dir "$WORK/data" --model-root "$DATA" --dataset-dir "$WORK/datasets" \
  --ready-file "$WORK/ready.json" 2> "$WORK/prunerd.log" &
DAEMON_PID=$!
for _ in $(seq 300); do
  [[ -s $WORK/ready.json ]] && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/prunerd.log" >&2; exit 1; }
  sleep 0.1
done
[[ -s $WORK/ready.json ]] || { echo "demo: the daemon did not become ready" >&2; exit 1; }
TARGET=$(sed -n 's/.*"grpc":"\([^"]*\)".*/\1/p' "$WORK/ready.json")
HTTP=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$WORK/ready.json")
export PRUNECTL_TARGET=$TARGET

"$BIN/prunectl" info
echo
echo "== prunectl submit --wait: prose16M, wanda 50%, WikiText-2 perplexity before and after"
start=$(date +%s)
status=0
"$BIN/prunectl" submit --model models/prose16M --method wanda --ratio 0.5 \
  --calib-dataset wikitext2 --calib-samples 16 --calib-seqlen 256 \
  --eval-dataset wikitext2 --eval-seqlen 256 --eval-max-windows 16 \
  --label demo=make-run --request-id "demo-$$" \
  --wait --max-ppl-increase 100% --download "$WORK/out" || status=$?
echo "== prunectl exited with $status after $(( $(date +%s) - start )) s"

if [[ -f $WORK/out/report.json ]]; then
  echo
  echo "== report.json"
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$WORK/out/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
spec, model = r["spec"], r["model"]
target = spec.get("pattern") or f"ratio {spec.get('ratio')}"
print(f"  prunerd    {r['build']['version']} ({r['build']['commit']}, {r['build']['engine']})")
print(f"  model      {model['path']} ({model['parameters']:,} parameters, {model['layers']} layers, "
      f"sha256 {model['sha256'][:16]}...)")
print(f"  method     {spec['method']} {target}")
print(f"  sparsity   {r['sparsity']:.4f}")
ppl = {e["target"]: e for e in r.get("evaluations", [])}
dense, pruned = ppl.get("EVAL_TARGET_DENSE"), ppl.get("EVAL_TARGET_PRUNED")
if dense and pruned:
    print(f"  perplexity dense {dense['perplexity']:.3f} -> pruned {pruned['perplexity']:.3f} "
          f"({pruned['windows']} windows of {pruned['seqlen']} tokens)")
t = r.get("timing", {})
print(f"  time       prune {t.get('prune_seconds', 0):.1f} s, total {t.get('total_seconds', 0):.1f} s")
PY
  else
    head -c 2000 "$WORK/out/report.json"; echo
  fi
  echo
  echo "== downloaded model"
  ls -l "$WORK/out/model"
fi

if command -v curl >/dev/null 2>&1; then
  echo
  echo "== /metrics (excerpt)"
  curl -s "http://$HTTP/metrics" | grep -E '^prunerd_(jobs|jobs_finished_total|build_info)' \
    | grep -v ' 0$' || true
fi

echo
echo "== stopping prunerd with SIGTERM"
kill -TERM "$DAEMON_PID"
code=0
wait "$DAEMON_PID" || code=$?
DAEMON_PID=""
tail -n 3 "$WORK/prunerd.log"
echo "== prunerd exited with $code"
exit "$status"
