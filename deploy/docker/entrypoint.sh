#!/bin/bash
# The image's entrypoint: runs `prunerd serve` configured, in increasing precedence, from
#   1. the config file $PRUNERD_CONFIG (default /etc/prunerd/prunerd.json; mount your own),
#   2. environment variables PRUNERD_<FLAG>, one per `prunerd serve` flag, named after the
#      flag upper-cased with '-' -> '_' (PRUNERD_SHUTDOWN_GRACE=90s, PRUNERD_TLS_CERT=...,
#      PRUNERD_ALLOW_INSECURE_REMOTE=true); a repeatable flag takes a comma-separated list
#      (PRUNERD_MODEL_ROOT=/models,/more-models),
#   3. the container's arguments (`docker run IMAGE --log-level debug`).
# The flag list is read from `prunerd serve --help`, so every flag the daemon has is settable
# and nothing else is: variables that name no flag (Kubernetes' PRUNERD_SERVICE_HOST, ...)
# are ignored, with a note. Any other first argument runs that command instead
# (`docker run IMAGE prunectl info`, `... prunerd eval --help`, `... bash`).
# The daemon writes its ready file (gRPC and HTTP addresses) to $PRUNERD_READY_FILE, default
# /tmp/prunerd-ready.json, which the HEALTHCHECK (prunerd-healthcheck) reads.
set -euo pipefail

case "${1:-}" in
  serve) shift ;;
  "" | -*) ;;
  *) exec "$@" ;;
esac

config=${PRUNERD_CONFIG:-/etc/prunerd/prunerd.json}
ready=${PRUNERD_READY_FILE:-/tmp/prunerd-ready.json}
rm -f "$ready"
args=(--config="$config")

if env | grep '^PRUNERD_' | grep -qv '^PRUNERD_\(CONFIG\|READY_FILE\)='; then
  declare -A known=() repeatable=()
  while IFS= read -r line; do
    [[ $line =~ ^\ \ --([a-z0-9-]+) ]] || continue
    name=${BASH_REMATCH[1]}
    known[$name]=1
    [[ $line == *"[repeatable]"* ]] && repeatable[$name]=1
  done < <(prunerd serve --help)
  ignored=()
  while IFS='=' read -r var _; do
    case $var in PRUNERD_CONFIG | PRUNERD_READY_FILE) continue ;; esac
    name=${var#PRUNERD_}
    name=${name,,}
    name=${name//_/-}
    value=${!var}
    if [[ -z ${known[$name]:-} || $name == help || $name == config || $name == ready-file ]]; then
      ignored+=("$var")
      continue
    fi
    [[ -n $value ]] || continue
    if [[ -n ${repeatable[$name]:-} ]]; then
      IFS=',' read -r -a items <<<"$value"
      for item in "${items[@]}"; do args+=("--$name=$item"); done
    else
      args+=("--$name=$value")
    fi
  done < <(env | grep '^PRUNERD_' | sort)
  if [[ ${#ignored[@]} -gt 0 ]]; then
    echo "prunerd-entrypoint: ignoring ${ignored[*]} (no such prunerd serve flag)" >&2
  fi
fi

exec prunerd serve "${args[@]}" "$@" --ready-file="$ready"
