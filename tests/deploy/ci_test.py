"""deploy/ci: the GitHub Actions workflow and the GitLab CI job parse as YAML and have the
shape their CI expects (the step that prunes, the report uploaded even when it fails), every
prunectl flag they and prune-gate.sh use is a prunectl flag, and prune-gate.sh does what the
pipelines rely on against a real prunerd: exit 0 and report.json on a passing gate, the same
job again for the same request id, exit 6 (the gate) with report.json still there on a
failing gate, exit 3 when the daemon is unreachable (client/exit_codes.h).
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
ci = t.src("deploy", "ci")
gate_script = os.path.join(ci, "prune-gate.sh")
submit_flags = t.help_flags([t.binary("prunectl"), "submit"])
download_flags = t.help_flags([t.binary("prunectl"), "download"])

# --- the exit codes the script names are prunectl's ---
codes = dict((int(v), k) for k, v in re.findall(r"(kExit\w+) = (\d+)",
                                                open(t.src("client", "exit_codes.h")).read()))
t.check(codes.get(6) == "kExitGateFailed" and codes.get(3) == "kExitUnreachable",
        f"client/exit_codes.h no longer has 6 = gate failed, 3 = unreachable: {codes}")

# --- GitHub Actions ---
gh = yaml.safe_load(open(os.path.join(ci, "github-actions.yml")))
on = gh.get("on", gh.get(True))  # YAML 1.1 reads the key `on` as true
t.check(on is not None and "workflow_dispatch" in on, "the workflow has no workflow_dispatch")
steps = [s for j in gh["jobs"].values() for s in j["steps"]]
runs = [s for s in steps if "prune-gate.sh" in s.get("run", "")]
t.check(len(runs) == 1, "no single step runs deploy/ci/prune-gate.sh")
uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
t.check(len(uploads) == 1, "no upload-artifact step")
job_env = next(iter(gh["jobs"].values())).get("env", {})
if uploads:
    t.check(uploads[0].get("if") == "always()",
            "the report upload does not run on failure (if: always())")
    t.check(f"{job_env.get('PRUNE_OUT')}/report.json" in uploads[0]["with"]["path"],
            "the upload's path is not $PRUNE_OUT/report.json")
invocations = [s["run"] for s in runs]

# --- GitLab CI ---
gl = yaml.safe_load(open(os.path.join(ci, "gitlab-ci.yml")))
t.check(list(gl) == ["prune"], f"gitlab-ci.yml defines {list(gl)}, not the job prune")
job = gl["prune"]
script = "\n".join(job["script"])
t.check("prune-gate" in script, "the GitLab job does not run prune-gate")
t.check(job["artifacts"]["when"] == "always", "GitLab artifacts are not kept on failure")
t.check(f"{job['variables']['PRUNE_OUT']}/report.json" in job["artifacts"]["paths"],
        "the GitLab artifacts do not include $PRUNE_OUT/report.json")
t.check(job["image"].get("entrypoint") == [""],
        "the GitLab job must clear the image's entrypoint (it would start the daemon)")
invocations.append(script)
# The image carries prune-gate (the GitLab job's command) as a copy of prune-gate.sh.
t.check("deploy/ci/prune-gate.sh" in open(t.src("Dockerfile")).read(),
        "the Dockerfile does not install deploy/ci/prune-gate.sh")

# --- flags ---
for text in invocations:
    for line in text.split("prune-gate")[1:]:
        bad = t.unknown_flags(t.flags_in(line), submit_flags)
        t.check(not bad, f"the CI recipes pass flags prunectl submit lacks: {bad}")
gate_text = open(gate_script).read()
for line in gate_text.splitlines():
    if line.lstrip().startswith("#"):
        continue
    if '"$prunectl" download' in line:
        bad = t.unknown_flags(t.flags_in(line), download_flags)
        t.check(not bad, f"prune-gate.sh: prunectl download lacks {bad}")
    elif re.match(r"\s*(args|artifacts)(\+)?=", line) or "[[ -n $rid ]]" in line:
        bad = t.unknown_flags(t.flags_in(line), submit_flags)
        t.check(not bad, f"prune-gate.sh: prunectl submit lacks {bad}")

# --- prune-gate.sh against a real daemon ---
work = os.path.realpath(tempfile.mkdtemp(prefix="prunerd-ci-test."))
tiny = os.path.join(t.TEST_DATA, "text", "tinystories", "tinystories_val_head.txt")
os.makedirs(os.path.join(work, "datasets"))
with open(os.path.join(work, "datasets", "datasets.json"), "w") as f:
    json.dump({"tinystories": tiny}, f)
spec = ["--model", t.STORIES, "--method", "wanda", "--ratio", "0.5", "--calib-dataset",
        "tinystories", "--calib-samples", "8", "--calib-seqlen", "128", "--eval-dataset",
        "tinystories", "--eval-seqlen", "128", "--eval-max-windows", "4", "--quiet"]


def gate(target, out, max_increase, request_id, extra=()):
    env = dict(os.environ, PRUNECTL=t.binary("prunectl"), PRUNECTL_TARGET=target,
               PRUNE_OUT=out, PRUNE_MAX_PPL_INCREASE=max_increase, PRUNE_REQUEST_ID=request_id)
    for k in ("GITHUB_RUN_ID", "CI_JOB_ID"):
        env.pop(k, None)
    r = subprocess.run(["bash", gate_script] + spec + list(extra), capture_output=True,
                       text=True, env=env, timeout=300)
    return r.returncode, r.stderr


def job_id(out):
    text = open(os.path.join(out, "job.json")).read()
    return json.loads(text)["id"] if text.strip() else None


with t.Daemon([t.binary("prunerd"), "serve", "--listen=127.0.0.1:0", "--http-listen=off",
               f"--data-dir={work}/data", f"--model-root={t.TEST_DATA}",
               f"--dataset-dir={work}/datasets"], work=os.path.join(work, "d")) as d:
    os.makedirs(d.work, exist_ok=True)
    if not d.start():
        print(f"FAIL: prunerd did not start:\n{d.read_log()}")
        sys.exit(1)
    out = os.path.join(work, "pass")
    code, err = gate(d.grpc, out, "1000%", "ci-test-pass")
    t.check(code == 0, f"a passing gate exited {code}:\n{err}")
    report_path = os.path.join(out, "report.json")
    if t.check(os.path.exists(report_path), "no report.json after a passing gate"):
        # The typed report (proto/prunerd/v1/engine.proto): one entry per evaluation.
        evals = {e["target"]: e["perplexity"]
                 for e in json.load(open(report_path)).get("evaluations", [])}
        dense = evals.get("EVAL_TARGET_DENSE", 0)
        pruned = evals.get("EVAL_TARGET_PRUNED", 0)
        t.check(pruned > dense > 0, f"report.json has no dense and pruned perplexity: {evals}")
        print(f"passing gate: exit {code}, perplexity {dense:.3f} -> {pruned:.3f}")
    first = job_id(out)
    code, err = gate(d.grpc, os.path.join(work, "again"), "1000%", "ci-test-pass")
    t.check(code == 0 and job_id(os.path.join(work, "again")) == first,
            f"the same request id did not give the same job (exit {code}):\n{err}")

    out = os.path.join(work, "fail")
    code, err = gate(d.grpc, out, "0%", "ci-test-fail")
    print(f"failing gate: exit {code}")
    t.check(code == 6, f"a failing gate exited {code}, not 6:\n{err}")
    t.check("quality gate" in err, f"no quality gate verdict in:\n{err}")
    t.check(os.path.exists(os.path.join(out, "report.json")),
            "no report.json after a failing gate (the pipeline uploads it)")
    d.stop()

code, err = gate(f"127.0.0.1:{t.free_port()}", os.path.join(work, "down"), "10%", "ci-test-down",
                 ["--retry-for", "0"])
print(f"unreachable daemon: exit {code}")
t.check(code == 3, f"an unreachable daemon exited {code}, not 3:\n{err}")
__import__("shutil").rmtree(work, ignore_errors=True)

t.finish("deploy/ci")
