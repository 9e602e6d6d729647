"""Runs every reference part and writes the golden files into --out.

  python3 tests/reference/run_all.py --out tests/golden --data $PRUNERD_TEST_DATA --device cuda
  python3 tests/reference/run_all.py --out /tmp/g --only selftest,prune_goldens --models stories260K

Parts (in this order): selftest, model_goldens, prune_goldens, transact_goldens. Before them the
token streams are checked against expected_streams.json (counts and sha256 made with Debian's
sentencepiece 0.1.97), so a tokenizer difference on the GPU machine is caught at once. A failing
part does not stop the others; the exit status is 1 if anything failed.
"""
import json
import os
import sys
import time
import traceback

import torch

import llama_ref as L
import model_goldens
import prune_goldens
import refio
import selftest
import transact_goldens

PARTS = [("selftest", selftest), ("model_goldens", model_goldens), ("prune_goldens", prune_goldens),
         ("transact_goldens", transact_goldens)]
EXPECTED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expected_streams.json")


def stream_table(models, data):
    out = {}
    for name in models:
        for text in L.TEXTS:
            ids = L.token_stream(name, data, text)
            out[f"{name}/{text}"] = {"n_tokens": len(ids), "sha256_int32le": refio.ids_sha256(ids)}
    return out


def main():
    p = refio.base_parser(__doc__)
    p.add_argument("--only", default=None, help="comma-separated parts: " + ",".join(n for n, _ in PARTS))
    p.add_argument("--write-expected-streams", action="store_true",
                   help="(re)write expected_streams.json from this machine's tokenizer")
    model_goldens.add_args(p)
    prune_goldens.add_args(p)
    args = p.parse_args()
    models = args.models.split(",")
    print(f"run_all: torch {torch.__version__}, device {args.device}, data {args.data}, out {args.out}")
    t_all = time.time()
    failures, timings = [], []
    table = stream_table(models, args.data)
    if args.write_expected_streams:
        refio.write_json(EXPECTED, table)
    with open(EXPECTED) as f:
        expected = json.load(f)
    for key, v in table.items():
        if expected.get(key) != v:
            failures.append(f"token stream {key}: {v} != expected {expected.get(key)}")
    print(f"  token streams: {'OK' if not failures else 'MISMATCH'} ({len(table)} checked)")
    only = set(args.only.split(",")) if args.only else None
    for name, mod in PARTS:
        if only and name not in only:
            continue
        print(f"== {name}")
        t0 = time.time()
        status = "OK"
        try:
            mod.run(args)
        except SystemExit as e:
            status = f"FAILED: {e}"
        except Exception:  # report and go on with the other parts
            status = "FAILED: " + traceback.format_exc()
        timings.append((name, time.time() - t0, status))
        if status != "OK":
            failures.append(f"{name}: {status}")
    print("== summary")
    for name, sec, status in timings:
        print(f"  {name:18s} {sec:8.1f} s  {status.splitlines()[0]}")
    print(f"  {'total':18s} {time.time() - t_all:8.1f} s")
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs)
    print(f"  output size: {total / 1e6:.2f} MB in {args.out}")
    if failures:
        print("FAILURES:\n  " + "\n  ".join(f.splitlines()[0] if len(f) > 300 else f for f in failures))
        for f in failures:
            if len(f) > 300:
                print(f)
        sys.exit(1)
    print("ALL OK")


if __name__ == "__main__":
    main()
