"""TransAct goldens (methods.md §6, §9.1 items 10-11, §9.2 f-g): activation scores, kept indices,
perplexity of the sliced models, and the function-preservation ("hooked") check.

Writes, per model:
  transact_<model>_scores.safetensors  layers.<i>.mha [n_heads*hd], layers.<i>.mlp [ffn],
                                       layers.<i>.head_scores [n_heads]  (fp32)
  transact_<model>.json                per config (GQA mode x ratio): kept heads / KV heads / MLP
                                       channels per layer, shapes, ppl, hooked max |d logits|

  python3 tests/reference/transact_goldens.py --out DIR --data $PRUNERD_TEST_DATA [--device cuda]
"""
import os

import torch

import llama_ref as L
import refio
import transact_ref as TA

RATIOS = (0.25, 0.5)
MODES = ("kv_group", "q_in_group")
HOOK_TOL = 1e-3  # fp32 noise is ~5e-5 (different matmul shapes); a slicing bug gives O(1)


def eval_set(name):
    if name == "prose16M":
        return [("wiki_test", 512)]
    return [("tinystories", 256), ("wiki_test", 256)]


def run_model(name, args, dev, failures):
    model = L.load_model(name, args.data).to(dev)
    calib, calib_file = L.calibration(name, args.data, args.out, args.calib_override)
    chunk = 16 if dev.type == "cuda" else 2
    with refio.Timer(f"{name} transact scores"):
        scores = TA.channel_scores(model, calib, chunk)
    tensors = {}
    for i, (s_mha, s_mlp) in enumerate(scores):
        tensors[f"layers.{i}.mha"] = s_mha.cpu()
        tensors[f"layers.{i}.mlp"] = s_mlp.cpu()
        tensors[f"layers.{i}.head_scores"] = TA.head_scores(s_mha, model.cfg.head_dim).cpu()
    refio.write_safetensors(os.path.join(args.out, f"transact_{name}_scores.safetensors"), tensors,
                            {"model": name, "calibration": calib_file})
    first = L.token_stream(name, args.data, eval_set(name)[0][0])
    T0 = eval_set(name)[0][1]
    probe = torch.tensor(first[:2 * T0], device=dev).view(2, T0)
    rec = {"model": name, "calibration": {"file": calib_file, "n": calib.shape[0], "T": calib.shape[1]},
           "env": {"device": str(dev), "torch": torch.__version__}, "max_eval_windows": args.max_eval_windows,
           "dense_shape": {"n_heads": model.cfg.n_heads, "n_kv_heads": model.cfg.n_kv_heads,
                           "head_dim": model.cfg.head_dim, "ffn": model.cfg.ffn_dim},
           "hooked_probe": f"the first 2 windows of T={T0} of {eval_set(name)[0][0]}", "configs": {}}
    for mode in MODES:
        for r in RATIOS:
            cname = f"{mode}_r{r:g}"
            sels = [TA.select(model.cfg, s_mha, s_mlp, r, r, mode) for s_mha, s_mlp in scores]
            sliced = TA.slice_model(model, sels)
            with torch.no_grad():
                d = (L.logits(sliced, probe) - L.logits(model, probe, hook=TA.zeroing_hook(model, sels))).abs().max().item()
            if d > HOOK_TOL:
                failures.append(f"{name} {cname}: sliced vs hooked logits differ by {d}")
            ppl = {}
            for text, T in eval_set(name):
                nl = L.model_nlls(sliced, L.token_stream(name, args.data, text), T, max_windows=args.max_eval_windows)
                ppl[f"{text}_T{T}"] = L.ppl_record(nl, T, keep_windows=False)
            lw = sliced.layers[0]
            rec["configs"][cname] = {
                "mode": mode, "r_attn": r, "r_mlp": r,
                "n_heads": lw["q"].shape[0] // model.cfg.head_dim, "n_kv_heads": lw["k"].shape[0] // model.cfg.head_dim,
                "head_dim": model.cfg.head_dim, "ffn": lw["gate"].shape[0],
                "linear_params": sum(v.numel() for lw in sliced.layers for k, v in lw.items() if k in L.LINEARS),
                "hooked_max_abs_diff": d, "ppl": ppl,
                "layers": [{"heads": s["heads"], "kv_heads": s["kv_heads"], "mlp": s["mlp"]} for s in sels]}
            print(f"  {name} transact {cname}: heads {rec['configs'][cname]['n_heads']}/{model.cfg.n_heads}, "
                  f"kv {rec['configs'][cname]['n_kv_heads']}/{model.cfg.n_kv_heads}, ffn {lw['gate'].shape[0]}; "
                  + ", ".join(f"{k} ppl {v['ppl']:.4f}" for k, v in ppl.items())
                  + f"; sliced vs hooked max |d| = {d:.1e}")
    refio.write_json(os.path.join(args.out, f"transact_{name}.json"), rec)


def run(args):
    dev = L.setup_torch(args.device, args.threads)
    os.makedirs(args.out, exist_ok=True)
    failures = []
    for name in args.models.split(","):
        with refio.Timer(f"transact_goldens {name}"):
            run_model(name, args, dev, failures)
    if failures:
        raise SystemExit("FATAL: transact_goldens checks failed:\n  " + "\n  ".join(failures))
    return {}


if __name__ == "__main__":
    run(refio.base_parser(__doc__).parse_args())
