"""Every metric the Prometheus rules and the Grafana dashboard use exists in a real scrape.

Starts the real prunerd on loopback, runs a few jobs on the bundled stories260K through the
real prunectl (two methods, one cancelled while queued), scrapes /metrics, and checks each
`prunerd_*` series, label matcher and grouping label of deploy/prometheus/prunerd.rules.yml and
deploy/grafana/prunerd.json against it. The only other metric allowed is Prometheus' own `up`.
On a CPU-only daemon the per-GPU gauge has no series (prometheus-cpp prints no family without
one): that one name must then be in the prunerd binary and is reported, not assumed; on a daemon
with CUDA devices it must be in the scrape like the rest.
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
# Series that exist only on a daemon with CUDA devices.
GPU_ONLY = {"prunerd_gpu_memory_used_bytes"}
# Labels Prometheus adds to every series (job, instance) or that histograms carry (le).
IMPLICIT_LABELS = {"job", "instance", "le"}
NON_PRUNERD_METRICS = {"up"}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "on", "ignoring", "group_left",
    "group_right", "and", "or", "unless", "rate", "increase", "irate", "deriv", "delta",
    "histogram_quantile", "absent", "label_values", "bool", "offset", "topk", "bottomk",
    "changes", "resets", "time", "vector", "scalar", "clamp_min", "clamp_max", "abs", "inf",
    "nan", "count_values", "stddev", "quantile", "label_replace", "sort", "sort_desc"}


def parse_scrape(text):
    """({series name: {label: {values}}}, [(name, {label: value}, sample)]) of a Prometheus
    text exposition."""
    series, samples = {}, []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)", line)
        if not m:
            t.check(False, f"unparsable scrape line: {line}")
            continue
        labels = series.setdefault(m.group(1), {})
        pairs = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        for k, v in pairs.items():
            labels.setdefault(k, set()).add(v)
        samples.append((m.group(1), pairs, float(m.group(4))))
    return series, samples


def total(samples, name, **labels):
    return sum(v for n, ls, v in samples
               if n == name and all(ls.get(k) == x for k, x in labels.items()))


def grafana_to_promql(expr):
    """Grafana's variables as PromQL can parse them."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
    expr = expr.replace("$__range", "1h")
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def metric_names(expr):
    """Metric names of a PromQL expression (no recorded name, function, keyword or label)."""
    no_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    no_braces = re.sub(r"\{[^}]*\}", "{}", no_strings)
    no_groupings = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ",
                          no_braces)
    no_ranges = re.sub(r"\[[^\]]*\]", "", no_groupings)
    names = set()
    for m in re.finditer(r"(?<![\w:.$])([a-zA-Z_][a-zA-Z0-9_]*)(?![\w:(])", no_ranges):
        word = m.group(1)
        if word in PROMQL_WORDS or re.fullmatch(r"\d.*", word):
            continue
        names.add(word)
    return names


def selectors(expr):
    """(metric, [(label, op, value)]) of each selector with matchers."""
    out = []
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", expr):
        matchers = re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', m.group(2))
        out.append((m.group(1), matchers))
    return out


def grouping_labels(expr):
    labels = set()
    for m in re.finditer(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels.update(x.strip() for x in m.group(1).split(",") if x.strip())
    return labels


# --- what the rules and the dashboard use ---
rules = yaml.safe_load(open(t.src("deploy", "prometheus", "prunerd.rules.yml")))
recorded = set()
exprs = []  # (where, expr)
for g in rules["groups"]:
    for r in g["rules"]:
        if "record" in r:
            recorded.add(r["record"])
        exprs.append((f"rule {r.get('record') or r.get('alert')}", r["expr"]))
dash = json.load(open(t.src("deploy", "grafana", "prunerd.json")))
for p in dash["panels"]:
    for tg in p.get("targets", []):
        exprs.append((f"panel {p['title']!r}", grafana_to_promql(tg["expr"])))
for v in dash.get("templating", {}).get("list", []):
    q = v.get("query")
    if isinstance(q, dict):
        q = q.get("query")
    if v.get("type") == "query" and q:
        inner = re.match(r"label_values\((.*),\s*(\w+)\)$", q.strip())
        t.check(inner is not None, f"variable {v['name']}: unexpected query {q}")
        if inner:
            exprs.append((f"variable {v['name']}", inner.group(1)))
            exprs.append((f"variable {v['name']} label",
                          f"sum by ({inner.group(2)}) ({inner.group(1)})"))

# --- a real daemon after a few jobs ---
work = os.path.realpath(tempfile.mkdtemp(prefix="prunerd-metrics-test."))
tiny = os.path.join(t.TEST_DATA, "text", "tinystories", "tinystories_val_head.txt")
if not os.path.exists(tiny) or not os.path.exists(os.path.join(t.TEST_DATA, t.STORIES)):
    print(f"FAIL: the bundled data is missing under PRUNERD_TEST_DATA={t.TEST_DATA}")
    sys.exit(1)
os.makedirs(os.path.join(work, "datasets"))
with open(os.path.join(work, "datasets", "datasets.json"), "w") as f:
    json.dump({"tinystories": tiny}, f)
job = ["--model", t.STORIES, "--ratio", "0.5", "--calib-dataset", "tinystories",
       "--calib-samples", "8", "--calib-seqlen", "128", "--eval-dataset", "tinystories",
       "--eval-seqlen", "128", "--eval-max-windows", "4"]
with t.Daemon([t.binary("prunerd"), "serve", "--listen=127.0.0.1:0", "--http-listen=127.0.0.1:0",
               f"--data-dir={work}/data", f"--model-root={t.TEST_DATA}",
               f"--dataset-dir={work}/datasets"], work=os.path.join(work, "d")) as d:
    os.makedirs(d.work, exist_ok=True)
    if not d.start():
        print(f"FAIL: prunerd did not start:\n{d.read_log()}")
        sys.exit(1)
    # A long job first (runs), a second queued behind it and cancelled, then short ones.
    first = t.prunectl(["submit", "--method", "sparsegpt"] + job, target=d.grpc)
    queued = t.prunectl(["submit", "--method", "wanda"] + job, target=d.grpc)
    t.check(first.returncode == 0 and queued.returncode == 0,
            f"submit: {first.stderr}{queued.stderr}")
    cancel = t.prunectl(["cancel", queued.stdout.strip()], target=d.grpc)
    t.check(cancel.returncode == 0, f"cancel: {cancel.stderr}")
    for method in ("wanda", "magnitude"):
        r = t.prunectl(["submit", "--method", method, "--wait", "--quiet"] + job, target=d.grpc)
        t.check(r.returncode == 0, f"{method} job: exit {r.returncode}: {r.stderr}")
    r = t.prunectl(["wait", first.stdout.strip(), "--quiet"], target=d.grpc)
    t.check(r.returncode == 0, f"sparsegpt job: exit {r.returncode}: {r.stderr}")
    info = t.prunectl(["info", "--output", "json"], target=d.grpc)
    has_gpu = '"cuda:' in info.stdout
    status, text = t.http_get(f"http://{d.http}/metrics")
    t.check(status == 200, f"/metrics answered {status}")
    d.stop()
scrape, samples = parse_scrape(text)
print(f"scrape: {len(scrape)} series names after 4 jobs (GPU: {has_gpu})")
ended = {o: total(samples, "prunerd_jobs_finished_total", outcome=o)
         for o in ("succeeded", "cancelled")}
t.check(ended == {"succeeded": 3, "cancelled": 1}, f"the jobs ended as {ended}, "
        "not 3 succeeded and 1 cancelled")
t.check(total(samples, "prunerd_layer_duration_seconds_count") > 0, "no layer was timed")

binary = open(t.binary("prunerd"), "rb").read()
used_metrics = set()
for where, expr in exprs:
    names = metric_names(expr)
    for name in names:
        if name in recorded:
            continue
        used_metrics.add(name)
        if name in scrape or name in NON_PRUNERD_METRICS:
            continue
        if name in GPU_ONLY and not has_gpu:
            t.check(name.encode() in binary, f"{where}: {name} is not in the prunerd binary")
            continue
        t.check(False, f"{where}: metric {name} is not in the scrape")
    for metric, matchers in selectors(expr):
        if metric in recorded or metric not in scrape:
            continue
        for label, op, value in matchers:
            if label in IMPLICIT_LABELS - {"le"}:
                continue
            t.check(label in scrape[metric], f"{where}: {metric} has no label {label}")
            if op == "=" and label in scrape[metric]:
                t.check(value in scrape[metric][label],
                        f"{where}: {metric}{{{label}={value!r}}} matches no series "
                        f"(values: {sorted(scrape[metric][label])})")
    known = set(IMPLICIT_LABELS)
    for name in names:
        for label in scrape.get(name, {}):
            known.add(label)
        if name in GPU_ONLY and not has_gpu:
            known.add("device")  # unverifiable here: no series on a CPU daemon
    for label in grouping_labels(expr) - known:
        t.check(False, f"{where}: groups by {label}, which none of {sorted(names)} has")
# An alert's recorded series must be recorded here.
for where, expr in exprs:
    for m in re.finditer(r"(?<![\w:])([a-z_]+:[a-zA-Z0-9_:]+)", expr):
        t.check(m.group(1) in recorded, f"{where}: {m.group(1)} is not recorded by the rules")
print("metrics used:", ", ".join(sorted(used_metrics)))
unchecked = sorted(n for n in used_metrics if n in GPU_ONLY and not has_gpu)
if unchecked:
    print(f"note: {', '.join(unchecked)} has series only with CUDA devices: checked in the "
          "binary, not in this scrape")
t.finish("rules and dashboard metrics against a real scrape")
