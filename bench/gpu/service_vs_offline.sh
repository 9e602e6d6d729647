#!/usr/bin/env bash
# The same Barber job (Wanda init, 50%, 128 x 2048 calibration tokens, no evaluation, no model
# written) run offline with `prunerd oneshot` and through the daemon with `prunectl submit
# --wait`; prints both times. Used by bench/gpu/session.sh service.
#
#   bash bench/gpu/service_vs_offline.sh BIN_DIR MODEL_DIR CALIB_TEXT OUT_DIR
set -uo pipefail
BIN=$1 MODEL=$2 CALIB=$3 OUT=$4
WORK=$(mktemp -d /tmp/svc.XXXXXX)
mkdir -p "$WORK/datasets"
printf '{"wikitext2-valid": "%s"}\n' "$CALIB" > "$WORK/datasets/datasets.json"

t0=$(date +%s.%N)
"$BIN/prunerd" oneshot --model "$MODEL" --method barber --barber-init wanda --ratio 0.5 \
  --calib-file "$CALIB" --calib-samples 128 --calib-seqlen 2048 --device cuda --skip-calib-eval \
  --report "$OUT/offline_report.json" > "$OUT/offline.txt" 2>&1
rc=$?
t1=$(date +%s.%N)
echo "offline: rc=$rc wall $(awk "BEGIN{print $t1 - $t0}") s" | tee -a "$OUT/offline.txt"

"$BIN/prunerd" serve --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --data-dir "$WORK/data" \
  --model-root "$(dirname "$MODEL")" --dataset-dir "$WORK/datasets" --devices cuda:0 \
  --ready-file "$WORK/ready.json" 2> "$OUT/daemon.log" &
PID=$!
for _ in $(seq 600); do [[ -s $WORK/ready.json ]] && break; sleep 0.1; done
export PRUNECTL_TARGET=$(sed -n 's/.*"grpc":"\([^"]*\)".*/\1/p' "$WORK/ready.json")
HTTP=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$WORK/ready.json")
"$BIN/prunectl" info > "$OUT/info.txt" 2>&1
t0=$(date +%s.%N)
"$BIN/prunectl" submit --model "$(basename "$MODEL")" --method barber --barber-init wanda \
  --ratio 0.5 --calib-dataset wikitext2-valid --calib-samples 128 --calib-seqlen 2048 \
  --skip-dense-eval --skip-calib-eval --skip-model-output --request-id gpu-bench-1 --wait \
  > "$OUT/daemon_submit.txt" 2>&1
rc=$?
t1=$(date +%s.%N)
echo "daemon: prunectl rc=$rc wall $(awk "BEGIN{print $t1 - $t0}") s" | tee -a "$OUT/daemon_submit.txt"
"$BIN/prunectl" list --output json > "$OUT/daemon_jobs.json" 2>&1
curl -s "http://$HTTP/metrics" > "$OUT/metrics.txt" 2>&1
kill -TERM $PID; wait $PID
tail -5 "$OUT/offline.txt"; tail -8 "$OUT/daemon_submit.txt"
