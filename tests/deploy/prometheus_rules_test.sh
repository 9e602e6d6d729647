#!/usr/bin/env bash
# deploy/prometheus: `promtool check rules` (syntax, PromQL, templates) and `promtool test
# rules` (each alert fires on its case and not on its near miss: prunerd.rules.test.yml).
# Whether the metrics the rules use exist is metrics_scrape_test.py's part.
set -uo pipefail
dir=${PRUNERD_SOURCE_DIR:?}/deploy/prometheus
command -v promtool >/dev/null || { echo "SKIP: promtool is not installed (apt-get install prometheus)"; exit 77; }
promtool check rules "$dir/prunerd.rules.yml" || exit 1
cd "$dir" && promtool test rules prunerd.rules.test.yml || exit 1
echo "ok: deploy/prometheus"
