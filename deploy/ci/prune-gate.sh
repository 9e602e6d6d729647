#!/usr/bin/env bash
# A CI step: submit a prune job to prunerd, wait for it, apply a quality gate, and leave the
# job's report.json in $PRUNE_OUT for the pipeline to upload; exits with prunectl's code, so
# the pipeline fails on a failed job or a failed gate (client/exit_codes.h):
#   0 ok  1 job failed  2 cancelled  3 daemon unreachable  4 invalid request  5 auth refused
#   6 quality gate failed  7 integrity (sha256)  8 other error  9 timeout
#
#   PRUNECTL_TARGET=prunerd.example.com:50051 PRUNECTL_TOKEN=... \
#     bash deploy/ci/prune-gate.sh --model models/llama-7b --method wanda --ratio 0.5 \
#       --calib-dataset c4 --eval-dataset wikitext2
#
# The arguments are `prunectl submit` options (the job spec). Environment:
#   PRUNECTL_TARGET, PRUNECTL_TOKEN / PRUNECTL_TOKEN_FILE, PRUNECTL_CA_CERT   read by prunectl
#   PRUNE_MAX_PPL_INCREASE   the gate, "10%" (relative) or "2.5" (points); default 10%
#   PRUNE_OUT                where job.json and report.json go; default prune-out
#   PRUNE_REQUEST_ID         idempotency key: a retried step gets the same job, not a second
#                            one; default from the CI's run/job ids (GitHub, GitLab)
#   PRUNE_DOWNLOAD_MODEL=1   also download the pruned model (it is as large as the model)
#   PRUNECTL                 the prunectl binary; default prunectl on PATH
set -uo pipefail

prunectl=${PRUNECTL:-prunectl}
out=${PRUNE_OUT:-prune-out}
gate=${PRUNE_MAX_PPL_INCREASE:-10%}
rid=${PRUNE_REQUEST_ID:-}
if [[ -z $rid && -n ${GITHUB_RUN_ID:-} ]]; then
  rid="gh-${GITHUB_REPOSITORY:-repo}-${GITHUB_RUN_ID}-${GITHUB_RUN_ATTEMPT:-1}-${GITHUB_JOB:-job}"
elif [[ -z $rid && -n ${CI_JOB_ID:-} ]]; then
  rid="gl-${CI_PROJECT_PATH:-project}-${CI_JOB_ID}"
fi
rid=${rid//[^[:alnum:]._:\/-]/-}
mkdir -p "$out"

artifacts=(--artifact report.json)
[[ ${PRUNE_DOWNLOAD_MODEL:-0} == 1 ]] && artifacts+=(--artifact model)
args=("$@" --wait --max-ppl-increase "$gate" --output json --download "$out" "${artifacts[@]}")
[[ -n $rid ]] && args+=(--request-id "$rid")

echo "prune-gate: prunectl submit $* (gate: perplexity +${gate} at most${rid:+, request id $rid})" >&2
"$prunectl" submit "${args[@]}" >"$out/job.json"
code=$?

# On a failed gate the job succeeded but nothing was downloaded: fetch its report anyway, so
# the pipeline can show what failed.
if [[ $code -eq 6 && ! -f $out/report.json ]]; then
  id=$(sed -n 's/^{"id":"\([^"]*\)".*/\1/p' "$out/job.json")
  if [[ -n $id ]]; then
    "$prunectl" download "$id" --dir "$out" --artifact report.json --quiet >/dev/null ||
      echo "prune-gate: could not download report.json of $id" >&2
  fi
fi

case $code in
  0) verdict="passed: the job succeeded and the gate held" ;;
  1) verdict="FAILED: the job failed" ;;
  2) verdict="FAILED: the job was cancelled" ;;
  3) verdict="FAILED: the daemon is unreachable" ;;
  4) verdict="FAILED: invalid request" ;;
  5) verdict="FAILED: authentication or authorization refused" ;;
  6) verdict="FAILED: the quality gate (perplexity +${gate}) did not hold" ;;
  7) verdict="FAILED: a download did not match its sha256" ;;
  9) verdict="FAILED: timed out waiting" ;;
  *) verdict="FAILED: error (prunectl exit $code)" ;;
esac
if [[ -f $out/report.json ]]; then
  echo "prune-gate: $verdict; report: $out/report.json" >&2
else
  echo "prune-gate: $verdict; no report.json (the job did not succeed)" >&2
fi
exit "$code"
