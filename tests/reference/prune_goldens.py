"""Pruning goldens (methods.md §1-5, §9): masks and perplexities of magnitude, Wanda, SparseGPT
and LLM-Barber on the bundled models, fp32, layer-sequential.

Writes, per model:
  calib_<model>_<n>x<T>.safetensors        the calibration windows (written first)
  prune/<model>/<config>.masks.safetensors  packed zero masks (HF names and layout, see README)
  prune_<model>.json                        configs, perplexities, zero counts, Barber stats

  python3 tests/reference/prune_goldens.py --out DIR --data $PRUNERD_TEST_DATA [--device cuda]
"""
import os
import time

import torch

import llama_ref as L
import prune_ref as P
import refio

RATIO = 0.5
# Stored mask layers for prose16M (1.57 Mbit per layer and config): layer 0 for every config,
# plus the last layer for the primary configs. stories260K: every layer.
PROSE_PRIMARY = {"u50_wanda", "u50_sparsegpt_ref", "u50_barber_wanda_t0.1_output1", "2of4_wanda"}


def config_list(name):
    """(config name, spec). Barber specs name the initializer config they start from."""
    c = [("u50_magnitude_ref", dict(method="magnitude", variant="ref")),
         ("u50_magnitude_exact", dict(method="magnitude", variant="exact")),
         ("u50_wanda", dict(method="wanda")),
         ("u50_sparsegpt_ref", dict(method="sparsegpt", variant="ref")),
         ("u50_sparsegpt_exact", dict(method="sparsegpt", variant="exact"))]
    for init, tau, gran in (("wanda", 0.01, "output1"), ("wanda", 0.1, "output1"),
                            ("magnitude_ref", 0.1, "output1"), ("sparsegpt_ref", 0.1, "output1"),
                            ("sparsegpt_ref", 0.0, "output1"),  # the mask-only SparseGPT baseline (§5.6)
                            ("wanda", 0.1, "layer"), ("wanda", 0.1, "input1"), ("wanda", 0.1, "block"),
                            ("magnitude_ref", 0.1, "block")):
        c.append((f"u50_barber_{init.replace('_ref', '')}_t{tau:g}_{gran}",
                  dict(method="barber", init=f"u50_{init}", tau=tau, granularity=gran)))
    patterns = [(2, 4), (4, 8)] if name == "prose16M" else [(2, 4)]  # stories260K: ffn 172 % 8 != 0
    for n, m in patterns:
        p = f"{n}of{m}"
        c += [(f"{p}_magnitude", dict(method="magnitude", nm=(n, m))),
              (f"{p}_wanda", dict(method="wanda", nm=(n, m))),
              (f"{p}_sparsegpt", dict(method="sparsegpt", nm=(n, m))),
              (f"{p}_barber_wanda_t0.1", dict(method="barber", init=f"{p}_wanda", tau=0.1,
                                              granularity="output1", nm=(n, m)))]
    return c


def eval_set(name):
    if name == "prose16M":
        return [("wiki_test", 512)]
    return [("wiki_test", 256), ("wiki_test", 512), ("tinystories", 256)]


def evaluate(model, name, args):
    res = {}
    for text, T in eval_set(name):
        nl = L.model_nlls(model, L.token_stream(name, args.data, text), T,
                          max_windows=args.max_eval_windows)
        res[f"{text}_T{T}"] = L.ppl_record(nl, T, keep_windows=False)
    return res


def hf_layout_mask(model, key, mask):
    """Masks are stored in the HF layout: llama2.c q/k rows are permuted like the export does."""
    if model.cfg.rope_style == "interleaved" and key in ("q", "k"):
        nh = model.cfg.n_heads if key == "q" else model.cfg.n_kv_heads
        return mask[L.interleaved_to_half_rows(nh, model.cfg.head_dim).to(mask.device)]
    return mask


def write_masks(path, model, layers, meta):
    tensors, md = {}, dict(meta)
    for i in layers:
        for key in L.LINEARS:
            mask = hf_layout_mask(model, key, model.layers[i][key] == 0)
            nm = L.hf_weight_name(i, key)
            tensors[nm] = refio.pack_mask(mask)
            md["shape." + nm] = "%d,%d" % tuple(mask.shape)
    md["layers"] = ",".join(str(i) for i in layers)
    refio.write_safetensors(path, tensors, md)


def zero_counts(model):
    return [[int((lw[k] == 0).sum()) for k in L.LINEARS] for lw in model.layers]


def run_model(name, args, dev):
    model = L.load_model(name, args.data).to(dev)
    calib, calib_file = L.calibration(name, args.data, args.out, args.calib_override)
    n, T = calib.shape
    chunk = args.chunk or ((32 if name == "stories260K" else 16) if dev.type == "cuda" else 2)
    print(f"  {name}: calibration {calib_file} ({n}x{T}); chunk {chunk}")
    total = sum(model.layers[0][k].numel() for k in L.LINEARS) * model.cfg.n_layers
    rec = {"model": name, "ratio": RATIO, "calibration": {"file": calib_file, "n": n, "T": T},
           "eval": [f"{t}_T{T_}" for t, T_ in eval_set(name)], "max_eval_windows": args.max_eval_windows,
           "linears_order": list(L.LINEARS), "linear_params": total,
           "env": {"device": str(dev), "torch": torch.__version__}}
    with refio.Timer(f"{name} dense eval"):
        rec["dense"] = {"ppl": evaluate(model, name, args)}
    print(f"  {name} dense: " + ", ".join(f"{k} {v['ppl']:.4f}" for k, v in rec["dense"]["ppl"].items()))
    rec["configs"] = {}
    done = {}
    only = set(args.configs.split(",")) if args.configs else None
    for cname, spec in config_list(name):
        if only and cname not in only and not any(cname == v.get("init") for k, v in config_list(name) if k in only):
            continue
        t0 = time.time()
        nm = spec.get("nm")
        if spec["method"] == "barber":
            pruned, bst = P.barber(model, done[spec["init"]], calib, spec["tau"], spec["granularity"], nm,
                                   rule="ref", chunk=chunk)
        else:
            pruned = P.prune_model(model, calib, spec["method"], RATIO, nm, spec.get("variant", "ref"), chunk)
            bst = None
        t_prune = time.time() - t0
        done[cname] = pruned
        ppl = evaluate(pruned, name, args)
        zc = zero_counts(pruned)
        layers = list(range(model.cfg.n_layers))
        if name == "prose16M":
            layers = [0, model.cfg.n_layers - 1] if cname in PROSE_PRIMARY else [0]
        mfile = f"prune/{name}/{cname}.masks.safetensors"
        write_masks(os.path.join(args.out, mfile), pruned, layers, {"model": name, "config": cname})
        entry = {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.items()}
        entry.update({"ppl": ppl, "zeros": zc, "sparsity": sum(map(sum, zc)) / total,
                      "mask_file": mfile, "mask_layers": layers, "prune_seconds": round(t_prune, 3)})
        if bst is not None:
            entry["barber_stats"] = bst
            init = done[spec["init"]]
            entry["changed_vs_init"] = sum(int(((lw[k] == 0) != (iw[k] == 0)).sum())
                                           for lw, iw in zip(pruned.layers, init.layers) for k in L.LINEARS)
        rec["configs"][cname] = entry
        extra = f" barber {bst}" if bst else ""
        print(f"  {name} {cname}: " + ", ".join(f"{k} {v['ppl']:.4f}" for k, v in ppl.items())
              + f"; sparsity {entry['sparsity']:.5f}; prune {t_prune:.1f}s, total {time.time() - t0:.1f}s{extra}")
    refio.write_json(os.path.join(args.out, f"prune_{name}.json"), rec)


def run(args):
    dev = L.setup_torch(args.device, args.threads)
    os.makedirs(args.out, exist_ok=True)
    for name in args.models.split(","):
        with refio.Timer(f"prune_goldens {name}"):
            run_model(name, args, dev)
    return {}


def add_args(p):
    p.add_argument("--chunk", type=int, default=None, help="calibration sequences per forward")
    p.add_argument("--configs", default=None, help="DEVELOPMENT ONLY: comma-separated config subset")
    return p


if __name__ == "__main__":
    run(add_args(refio.base_parser(__doc__)).parse_args())
