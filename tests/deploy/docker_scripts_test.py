"""The image's scripts and Dockerfile, without building the image (deploy/docker/image-test.sh
builds and runs the image itself, on demand): the entrypoint and the health check run on this
host against the real prunerd.

- The Dockerfile's EXPOSE, VOLUME and directories agree with the image's config file; its
  HEALTHCHECK and ENTRYPOINT are the scripts it installs.
- The image's default config refuses plaintext gRPC on 0.0.0.0 (the daemon's own check).
- Config file < PRUNERD_<FLAG> variables < arguments, as the entrypoint promises: shown by the
  grace the daemon reports at SIGTERM; a repeatable flag from a comma list (two model roots);
  a variable that names no flag (PRUNERD_SERVICE_HOST) is ignored with a note.
- The health check passes while the daemon serves (also through a 0.0.0.0 address in the
  ready file), and fails once it stopped.
- Any other command runs as itself (`prunerd version`).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_testlib as t  # noqa: E402

entrypoint = t.src("deploy", "docker", "entrypoint.sh")
healthcheck = t.src("deploy", "docker", "healthcheck.sh")
image_config_path = t.src("deploy", "docker", "prunerd.json")
image_config = json.load(open(image_config_path))
dockerfile = open(t.src("Dockerfile")).read()
flags = t.serve_flags()

# --- the Dockerfile against the image's config ---
for k in image_config:
    t.check(k.replace("_", "-") in flags, f"deploy/docker/prunerd.json: no --{k} flag")
stages = re.split(r"^FROM ", dockerfile, flags=re.M)
runtimes = [s for s in stages if re.match(r"\S+ AS runtime", s)]
t.check(len(runtimes) == 2, f"{len(runtimes)} runtime stages, want runtime and runtime-cuda")
want_ports = {str(t.port_of(image_config["listen"])), str(t.port_of(image_config["http_listen"]))}
for stage in runtimes:
    name = stage.split()[2]
    expose = set(re.findall(r"^EXPOSE (.*)$", stage, re.M)[0].split())
    t.check(expose == want_ports, f"{name}: EXPOSE {expose}, the config listens on {want_ports}")
    volume = json.loads(re.findall(r"^VOLUME (.*)$", stage, re.M)[0])
    t.check(volume == [image_config["data_dir"]],
            f"{name}: VOLUME {volume}, the config's data_dir is {image_config['data_dir']}")
    t.check(re.search(r'^HEALTHCHECK .*\n\s+CMD \["/usr/local/bin/prunerd-healthcheck"\]', stage,
                      re.M), f"{name}: HEALTHCHECK is not prunerd-healthcheck")
    t.check('ENTRYPOINT ["/usr/local/bin/prunerd-entrypoint"]' in stage,
            f"{name}: ENTRYPOINT is not prunerd-entrypoint")
    made = " ".join(re.findall(r"install -d [^\n]*", stage))
    for d in image_config["model_root"] + [image_config["dataset_dir"], image_config["data_dir"]]:
        t.check(d in made, f"{name}: {d} (from the config) is not created")
for src_path, dest in re.findall(r"install -D -m 07?55? (?:/src/)?(deploy/\S+) \S*?(/usr/local/bin/\S+|/etc/\S+)",
                                 dockerfile):
    t.check(os.path.exists(t.src(src_path)), f"the Dockerfile installs {src_path}, which is missing")
installed = re.findall(r"/out/rootfs(/usr/local/bin/prunerd-\w+)", dockerfile)
t.check("/usr/local/bin/prunerd-healthcheck" in installed
        and "/usr/local/bin/prunerd-entrypoint" in installed,
        "the builders do not install the entrypoint and the health check")

work = os.path.realpath(tempfile.mkdtemp(prefix="prunerd-docker-test."))
env_base = dict(os.environ)
for k in list(env_base):
    if k.startswith("PRUNERD_"):
        del env_base[k]
env_base["PATH"] = t.BIN_DIR + os.pathsep + env_base.get("PATH", "")
ready = os.path.join(work, "ready.json")
env_base["PRUNERD_READY_FILE"] = ready


def run(argv, env, timeout=60):
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)


try:
    # The image's config as it is: no TLS, 0.0.0.0, so the daemon refuses.
    r = run(["bash", entrypoint], dict(env_base, PRUNERD_CONFIG=image_config_path))
    t.check(r.returncode != 0 and "refusing plaintext gRPC on 0.0.0.0" in r.stderr,
            f"the default config did not refuse plaintext on 0.0.0.0: exit {r.returncode}, "
            f"{r.stderr}")

    # Pass-through of other commands.
    r = run(["bash", entrypoint, "prunerd", "version"], env_base)
    t.check(r.returncode == 0 and "prunerd" in r.stdout, f"prunerd version: {r.stdout}{r.stderr}")

    roots = [os.path.join(work, "empty-root"), t.TEST_DATA]
    os.makedirs(roots[0])
    os.makedirs(os.path.join(work, "datasets"))
    env = dict(env_base, PRUNERD_CONFIG=image_config_path,
               PRUNERD_LISTEN="127.0.0.1:0", PRUNERD_HTTP_LISTEN="127.0.0.1:0",
               PRUNERD_DATA_DIR=os.path.join(work, "data"),
               PRUNERD_DATASET_DIR=os.path.join(work, "datasets"),
               PRUNERD_MODEL_ROOT=",".join(roots),
               PRUNERD_SHUTDOWN_GRACE="7s",
               PRUNERD_SERVICE_HOST="10.0.0.1")
    # The file says 0.0.0.0 and 60s, the variables loopback and 7s, the argument 9s: the
    # daemon starts on loopback (variables over the file) with 9s (arguments over variables).
    argv = ["bash", entrypoint, "--shutdown-grace=9s"]
    want = 9.0
    with t.Daemon(argv, env=env, ready_file=ready, work=os.path.join(work, "d")) as d:
        os.makedirs(d.work, exist_ok=True)
        started = d.start()
        t.check(started, f"the entrypoint did not start prunerd:\n{d.read_log()}")
        t.check(not started or (d.http.startswith("127.0.0.1:") and not d.http.endswith(":9464")),
                f"HTTP on {d.http}: PRUNERD_HTTP_LISTEN did not override the config file")
        if started:
            h = run(["bash", healthcheck], env_base)
            t.check(h.returncode == 0, f"health check failed on a serving daemon: {h.stderr}")
            # A ready file that says 0.0.0.0 (as in the image) is probed on 127.0.0.1.
            fake = os.path.join(work, "ready-any.json")
            with open(fake, "w") as f:
                json.dump({"grpc": d.grpc, "http": "0.0.0.0:" + d.http.rsplit(":", 1)[1]}, f)
            h = run(["bash", healthcheck], dict(env_base, PRUNERD_READY_FILE=fake))
            t.check(h.returncode == 0, f"health check through 0.0.0.0 failed: {h.stderr}")
            model = os.path.join(t.TEST_DATA, t.STORIES)
            calib = os.path.join(t.TEST_DATA, "text", "tinystories", "tinystories_val_head.txt")
            r = t.prunectl(["submit", "--validate-only", "--model", model, "--method", "wanda",
                            "--calib-file", calib], target=d.grpc)
            t.check(r.returncode == 0, f"the second of two model roots was not taken: {r.stderr}")
            code, log = d.stop()
            grace = t.grace_from_log(log)
            t.check(grace == want, f"grace {grace} s, want {want:g} s (file 60s < env 7s < "
                                   "argument 9s)")
            t.check("ignoring PRUNERD_SERVICE_HOST" in log,
                    "no note that PRUNERD_SERVICE_HOST was ignored")
            t.check(code == 0, f"prunerd exited {code} on SIGTERM")
            h = run(["bash", healthcheck], env_base)
            t.check(h.returncode == 1 and "healthz" in h.stderr,
                    f"health check passed on a stopped daemon: exit {h.returncode}")
            print(f"entrypoint: HTTP on {d.http}, grace {grace:g} s; health check ok while "
                  "serving, failing after SIGTERM")
finally:
    shutil.rmtree(work, ignore_errors=True)

t.finish("the image's Dockerfile, entrypoint and health check")
