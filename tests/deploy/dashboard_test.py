"""deploy/grafana/prunerd.json: a dashboard Grafana can import, whose queries are PromQL.

No Grafana runs here, so: the JSON's structure (unique panel ids, each panel on the 24-column
grid without overlaps, every query panel on the ${datasource} variable, every $variable
defined or a Grafana built-in, the panels the issue lists present), and every query, with
Grafana's variables substituted, parsed by promtool (as recording rules of a temporary file:
`promtool check rules` parses each expression with Prometheus' own parser). Whether the metrics
exist is metrics_scrape_test.py's part.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_testlib as t  # noqa: E402

yaml = t.need_yaml()
promtool = t.need_tool("promtool", "apt-get install prometheus")
dash = json.load(open(t.src("deploy", "grafana", "prunerd.json")))

BUILTINS = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms"}
variables = {v["name"] for v in dash.get("templating", {}).get("list", [])}
t.check("datasource" in variables, "no datasource variable")
t.check(dash.get("uid") and dash.get("title"), "no uid or title")
t.check(isinstance(dash.get("schemaVersion"), int), "no schemaVersion")

ids = [p["id"] for p in dash["panels"]]
t.check(len(ids) == len(set(ids)), f"duplicate panel ids: {ids}")
cells = {}
overlaps = set()
exprs = []
for p in dash["panels"]:
    g = p["gridPos"]
    t.check(0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0,
            f"panel {p['title']!r} leaves the 24-column grid: {g}")
    for x in range(g["x"], g["x"] + g["w"]):
        for y in range(g["y"], g["y"] + g["h"]):
            if (x, y) in cells and (cells[(x, y)], p["title"]) not in overlaps:
                overlaps.add((cells[(x, y)], p["title"]))
                t.check(False, f"panels {cells[(x, y)]!r} and {p['title']!r} overlap at {x},{y}")
            cells[(x, y)] = p["title"]
    if p["type"] == "row":
        continue
    t.check(p.get("datasource", {}).get("uid") == "${datasource}",
            f"panel {p['title']!r} is not on the ${{datasource}} variable")
    t.check(p.get("targets"), f"panel {p['title']!r} has no query")
    refs = [tg["refId"] for tg in p.get("targets", [])]
    t.check(len(refs) == len(set(refs)), f"panel {p['title']!r}: duplicate refIds")
    for tg in p.get("targets", []):
        for var in re.findall(r"\$\{?(\w+)\}?", tg["expr"] + tg.get("legendFormat", "")):
            t.check(var in variables or var in BUILTINS,
                    f"panel {p['title']!r} uses ${var}, which is not defined")
        exprs.append((p["title"], tg["expr"]))

# What the issue asks the dashboard to show, as the metrics behind it.
wanted = {
    "queue depth": r'prunerd_jobs\{[^}]*state="queued"',
    "jobs by state": r"by \(state\) \(prunerd_jobs\{",
    "jobs by outcome": r"by \([^)]*outcome[^)]*\) \(increase\(prunerd_jobs_finished_total",
    "job duration quantiles": r"histogram_quantile\(0\.\d+, sum by \(method, le\) \(rate\(prunerd_job_duration_seconds_bucket",
    "layer duration quantiles": r"histogram_quantile\(0\.\d+, sum by \(method, le\) \(rate\(prunerd_layer_duration_seconds_bucket",
    "calibration token throughput": r"rate\(prunerd_calibration_tokens_total",
    "GPU memory per device": r"prunerd_gpu_memory_used_bytes",
}
for what, pattern in wanted.items():
    t.check(any(re.search(pattern, e) for _, e in exprs), f"no panel shows {what}")

with tempfile.TemporaryDirectory() as work:
    rules = {"groups": [{"name": "dashboard", "rules": []}]}
    for i, (title, expr) in enumerate(exprs):
        e = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
        e = e.replace("$__range", "1h")
        e = re.sub(r"\$\{?(\w+)\}?", ".*", e)
        rules["groups"][0]["rules"].append({"record": f"dashboard:query_{i}", "expr": e})
    path = os.path.join(work, "dashboard.rules.yml")
    with open(path, "w") as f:
        yaml.safe_dump(rules, f)
    r = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    t.check(r.returncode == 0, f"promtool cannot parse a dashboard query:\n{r.stdout}{r.stderr}")
    print(f"promtool parsed the dashboard's {len(exprs)} queries: exit {r.returncode}")

t.finish("deploy/grafana")
