"""deploy/k8s against the daemon: `kubectl kustomize deploy/k8s` renders, and what the rendered
documents say about the daemon is what the daemon does.

- The config file of the ConfigMap is accepted by the real prunerd (started with it, with only
  the host paths moved to a temp dir and the ports to free ones: it listens on the config's
  0.0.0.0, so the daemon's rules for non-loopback addresses apply), including a token file
  with the 0440 mode the kubelet gives secrets under fsGroup.
- Every environment variable and argument of the container names a `prunerd serve` flag.
- Container ports equal the config's listen ports; Services, probes and the ServiceMonitor
  point at ports that exist; probe and scrape paths answer on the real daemon.
- terminationGracePeriodSeconds is above the grace the daemon reports when SIGTERMed.
- The config's paths lie in the volumes mounted for them; the pod runs as the image's user.
"""

import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_testlib as t  # noqa: E402

yaml = t.need_yaml()
kubectl = t.need_tool("kubectl", "the Kubernetes client with kustomize; not a Debian package")

r = subprocess.run([kubectl, "kustomize", t.src("deploy", "k8s")], capture_output=True, text=True,
                   timeout=120)
if r.returncode != 0:
    print(f"FAIL: kubectl kustomize deploy/k8s: {r.stderr}")
    sys.exit(1)
docs = [d for d in yaml.safe_load_all(r.stdout) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
print("rendered:", ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in docs))
for kind in ("StatefulSet", "Service", "ConfigMap", "PodDisruptionBudget", "ServiceMonitor",
             "ServiceAccount"):
    t.check(kind in by_kind, f"no {kind} rendered")

sts = by_kind["StatefulSet"][0]
pod = sts["spec"]["template"]
spec = pod["spec"]
containers = {c["name"]: c for c in spec["containers"]}
t.check("prunerd" in containers, "no container named prunerd")
c = containers["prunerd"]
flags = t.serve_flags()


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


pod_labels = pod["metadata"]["labels"]
t.check(matches(sts["spec"]["selector"]["matchLabels"], pod_labels),
        "the StatefulSet's selector does not match its pods")

# --- flags: arguments and PRUNERD_* variables (the image's entrypoint maps them to flags) ---
args = " ".join(c.get("command", []) + c.get("args", []))
bad = t.unknown_flags(t.flags_in(args), flags)
t.check(not bad, f"container arguments use flags prunerd serve lacks: {bad}")
env = {e["name"]: e.get("value") for e in c.get("env", [])}
for name in env:
    if not name.startswith("PRUNERD_") or name in ("PRUNERD_CONFIG", "PRUNERD_READY_FILE"):
        continue
    flag = name[len("PRUNERD_"):].lower().replace("_", "-")
    t.check(flag in flags, f"env {name}: prunerd serve has no --{flag}")
t.check(spec.get("enableServiceLinks") is False,
        "enableServiceLinks must be false (no PRUNERD_SERVICE_* variables in the pod)")

# --- the mounted files: config file, datasets ---
mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
volumes = {v["name"]: v for v in spec.get("volumes", [])}
for tmpl in sts["spec"].get("volumeClaimTemplates", []):
    volumes[tmpl["metadata"]["name"]] = {"name": tmpl["metadata"]["name"], "claim": tmpl}
configmaps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}


def mounted_file(path):
    """(volume, key-or-relative-path) of the volume mounted over `path`, or (None, None)."""
    best = None
    for m in mounts.values():
        mp = m["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best["mountPath"].rstrip("/")):
                best = m
    if best is None:
        return None, None
    rel = os.path.relpath(path, best["mountPath"])
    return volumes.get(best["name"]), rel


config_path = env.get("PRUNERD_CONFIG", "/etc/prunerd/prunerd.json")
vol, key = mounted_file(config_path)
t.check(vol is not None and "configMap" in vol, f"{config_path} is not in a mounted ConfigMap")
config_cm = configmaps.get(vol["configMap"]["name"]) if vol else None
t.check(config_cm is not None and key in config_cm.get("data", {}),
        f"the ConfigMap mounted for {config_path} has no key {key}")
config = json.loads(config_cm["data"][key])
print("config:", json.dumps(config))
for k in config:
    t.check(k.replace("_", "-") in flags, f"config key {k}: prunerd serve has no --{k}")

vol, _ = mounted_file(config["dataset_dir"])
t.check(vol is not None and "configMap" in vol,
        f"dataset_dir {config['dataset_dir']} is not a mounted ConfigMap")
datasets = json.loads(configmaps[vol["configMap"]["name"]]["data"]["datasets.json"])
for name, path in datasets.items():
    v, _ = mounted_file(path)
    t.check(v is not None and v["name"] == "models",
            f"dataset {name} ({path}) does not lie in the models volume")

data_mount = [m for m in mounts.values() if m["mountPath"].rstrip("/") == config["data_dir"]]
t.check(len(data_mount) == 1 and data_mount[0]["name"] in volumes
        and "claim" in volumes[data_mount[0]["name"]] and not data_mount[0].get("readOnly"),
        f"data_dir {config['data_dir']} is not a writable volume claim")
for root in config.get("model_root", []):
    v, _ = mounted_file(root)
    t.check(v is not None and mounts[v["name"]].get("readOnly") is True,
            f"model root {root} is not a read-only mounted volume")
for k, secret_key in (("token_file", None), ("tls_cert", "tls.crt"), ("tls_key", "tls.key")):
    if k not in config:
        continue
    v, rel = mounted_file(config[k])
    t.check(v is not None and "secret" in v, f"{k} {config[k]} is not in a mounted Secret")
    if secret_key:
        t.check(rel == secret_key, f"{k} is {rel} of its secret, kubernetes.io/tls names it "
                                   f"{secret_key}")
t.check(mounted_file("/tmp/prunerd-ready.json")[0] is not None
        or not c.get("securityContext", {}).get("readOnlyRootFilesystem"),
        "read-only root file system without a /tmp volume: the ready file cannot be written")

# --- the pod's user is the image's ---
dockerfile = open(t.src("Dockerfile")).read()
users = re.findall(r"^USER (\d+):(\d+)", dockerfile, re.M)
t.check(users and all(u == users[0] for u in users), "the Dockerfile's stages differ in USER")
sc = spec.get("securityContext", {})
t.check(str(sc.get("runAsUser")) == users[0][0] and str(sc.get("runAsGroup")) == users[0][1],
        f"runAsUser/runAsGroup {sc.get('runAsUser')}/{sc.get('runAsGroup')} are not the "
        f"image's {users[0]}")
t.check(sc.get("runAsNonRoot") is True, "runAsNonRoot is not set")

# --- GPUs ---
limits = c.get("resources", {}).get("limits", {})
t.check(int(limits.get("nvidia.com/gpu", 0)) >= 1, "no nvidia.com/gpu limit")

# --- ports: container ports against the config's listen addresses ---
cports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
t.check(cports.get("grpc") == t.port_of(config["listen"]),
        f"containerPort grpc {cports.get('grpc')} != listen {config['listen']}")
t.check(cports.get("metrics") == t.port_of(config["http_listen"]),
        f"containerPort metrics {cports.get('metrics')} != http_listen {config['http_listen']}")
http_port_names = {n for n, p in cports.items() if p == t.port_of(config["http_listen"])}


def resolve(port):
    return cports.get(port) if isinstance(port, str) else port


services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
for s in services.values():
    t.check(matches(s["spec"]["selector"], pod_labels),
            f"Service {s['metadata']['name']} does not select the pods")
    for p in s["spec"]["ports"]:
        t.check(resolve(p["targetPort"]) is not None,
                f"Service {s['metadata']['name']} port {p['name']}: targetPort "
                f"{p['targetPort']} is no container port")
t.check(sts["spec"]["serviceName"] in services and
        services[sts["spec"]["serviceName"]]["spec"].get("clusterIP") == "None",
        "the StatefulSet's serviceName is not a headless Service")

probes = {}
for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
    p = c.get(kind)
    if not t.check(p is not None and "httpGet" in p, f"no HTTP {kind}"):
        continue
    probes[kind] = p["httpGet"]["path"]
    t.check(p["httpGet"]["port"] in http_port_names or
            resolve(p["httpGet"]["port"]) == t.port_of(config["http_listen"]),
            f"{kind} port {p['httpGet']['port']} is not the HTTP endpoint's")
t.check(probes.get("livenessProbe") == "/healthz", "liveness must probe /healthz")
t.check(probes.get("readinessProbe") == "/readyz", "readiness must probe /readyz")

monitors = by_kind.get("ServiceMonitor", [])
scrape_paths = []
for m in monitors:
    selected = [s for s in services.values()
                if matches(m["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))]
    t.check(selected, "the ServiceMonitor selects no Service")
    for ep in m["spec"]["endpoints"]:
        ok = False
        for s in selected:
            for p in s["spec"]["ports"]:
                if p["name"] == ep["port"]:
                    ok = resolve(p["targetPort"]) == t.port_of(config["http_listen"])
        t.check(ok, f"ServiceMonitor endpoint port {ep['port']} is not the HTTP endpoint")
        scrape_paths.append(ep.get("path", "/metrics"))
for pdb in by_kind.get("PodDisruptionBudget", []):
    t.check(matches(pdb["spec"]["selector"]["matchLabels"], pod_labels),
            "the PodDisruptionBudget does not select the pods")

# --- the real daemon with this config ---
work = os.path.realpath(__import__("tempfile").mkdtemp(prefix="prunerd-k8s-test."))
try:
    os.makedirs(os.path.join(work, "models"))
    os.makedirs(os.path.join(work, "datasets"))
    with open(os.path.join(work, "datasets", "datasets.json"), "w") as f:
        json.dump({n: os.path.join(work, "models", "x.txt") for n in datasets}, f)
    cfg_file = os.path.join(work, "prunerd.json")
    with open(cfg_file, "w") as f:
        f.write(config_cm["data"][key])
    # As the kubelet leaves a secret under fsGroup: group-readable.
    tokens = os.path.join(work, "tokens")
    with open(tokens, "w") as f:
        f.write("k8s-test-token-0123456789abcdef submit ci\n")
    os.chmod(tokens, 0o440)
    cert, tls_key = t.make_tls(work)
    # The config's hosts (0.0.0.0: the daemon's rules for non-loopback addresses apply, here
    # TLS for gRPC) on ports the kernel picks.
    moved = [f"--listen={config['listen'].rsplit(':', 1)[0]}:0",
             f"--http-listen={config['http_listen'].rsplit(':', 1)[0]}:0",
             f"--data-dir={work}/data", f"--model-root={work}/models",
             f"--dataset-dir={work}/datasets", f"--token-file={tokens}", f"--tls-cert={cert}",
             f"--tls-key={tls_key}"]
    moved = [m for m in moved if m.split("=")[0][2:].replace("-", "_") in config]
    with t.Daemon([t.binary("prunerd"), "serve", f"--config={cfg_file}"] + moved,
                  work=os.path.join(work, "d")) as d:
        os.makedirs(d.work, exist_ok=True)
        started = d.start()
        t.check(started, f"prunerd did not start with the ConfigMap's config:\n{d.read_log()}")
        if started:
            base = "http://127.0.0.1:" + d.http.rsplit(":", 1)[1]
            for kind, path in probes.items():
                status, _ = t.http_get(base + path)
                t.check(status == 200, f"{kind} {path}: the daemon answered {status}")
            status, _ = t.http_get(base + "/no-such-path")
            t.check(status == 404, f"an unknown path answered {status}, not 404")
            for path in scrape_paths:
                status, body = t.http_get(base + path)
                t.check(status == 200 and "prunerd_build_info" in body,
                        f"scrape path {path}: {status}, no prunerd_build_info")
            code, log = d.stop()
            grace = t.grace_from_log(log)
            t.check(grace is not None, f"no 'shutting down (grace ...)' line in:\n{log}")
            t.check(code == 0, f"prunerd exited {code} on SIGTERM")
            tgps = spec.get("terminationGracePeriodSeconds", 30)
            if grace is not None:
                print(f"shutdown grace {grace:g} s (daemon), terminationGracePeriodSeconds {tgps}")
                t.check(tgps > grace, f"terminationGracePeriodSeconds {tgps} is not above the "
                                      f"daemon's grace {grace:g} s")
finally:
    shutil.rmtree(work, ignore_errors=True)

t.finish("deploy/k8s")
