#!/usr/bin/env python3
"""Checks a TransAct-sliced model with Hugging Face transformers (an independent LLaMA).

1. The sliced directory loads as a standard LlamaForCausalLM (explicit head_dim,
   num_attention_heads, num_key_value_heads, intermediate_size in config.json).
2. Its logits equal those of the dense model with the removed channels zeroed by forward
   pre-hooks on o_proj and down_proj (kept indices from the job report's method_details.layers),
   in float64 (expected exact up to ~1e-12) and float32.

Needs torch and transformers (not on the Debian build machine; run it where they are), and a
dense model in Hugging Face format (e.g. shared/data/models/prose16M):

  prunerd oneshot --model prose16M --method transact --attn-ratio 0.5 --mlp-ratio 0.5 \
      --calib valid.txt --out /tmp/prose_ta --report /tmp/prose_ta.json
  python3 bench/transact/check_transformers.py --dense prose16M --sliced /tmp/prose_ta \
      --report /tmp/prose_ta.json

Exit status 0 when both checks pass. The report may be the whole job report or its
method_details object.
"""
import argparse
import json
import sys

import torch
from transformers import LlamaForCausalLM


def zero_hooks(model, layers, head_dim):
    handles = []
    for spec, layer in zip(layers, model.model.layers):
        o_in = layer.self_attn.o_proj.in_features
        keep_o = torch.zeros(o_in, dtype=torch.bool)
        for h in spec["q_heads"]:
            keep_o[h * head_dim:(h + 1) * head_dim] = True
        keep_d = torch.zeros(layer.mlp.down_proj.in_features, dtype=torch.bool)
        keep_d[torch.tensor(spec["mlp_channels"], dtype=torch.long)] = True

        def hook(mask):
            return lambda module, args: (args[0] * mask.to(args[0].dtype),) + tuple(args[1:])

        handles.append(layer.self_attn.o_proj.register_forward_pre_hook(hook(keep_o)))
        handles.append(layer.mlp.down_proj.register_forward_pre_hook(hook(keep_d)))
    return handles


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dense", required=True)
    ap.add_argument("--sliced", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args()

    with open(args.report) as f:
        report = json.load(f)
    details = report.get("method_details", report)
    layers = details["layers"]
    if any("mlp_channels" not in l for l in layers):
        sys.exit("the report omits the MLP indices (model too large); use a smaller model")
    with open(args.sliced + "/config.json") as f:
        cfg = json.load(f)
    for key in ("head_dim", "num_attention_heads", "num_key_value_heads", "intermediate_size"):
        print(f"config.json {key} = {cfg[key]}")

    ok = True
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 1e-4)):
        dense = LlamaForCausalLM.from_pretrained(args.dense, torch_dtype=dtype).eval()
        sliced = LlamaForCausalLM.from_pretrained(args.sliced, torch_dtype=dtype).eval()
        head_dim = getattr(dense.config, "head_dim", None) or (
            dense.config.hidden_size // dense.config.num_attention_heads)
        zero_hooks(dense, layers, head_dim)
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(3, dense.config.vocab_size, (args.batch, args.tokens), generator=g)
        with torch.no_grad():
            diff = (dense(ids).logits - sliced(ids).logits).abs().max().item()
        n_sliced = sum(p.numel() for p in sliced.parameters())
        n_dense = sum(p.numel() for p in dense.parameters())
        print(f"{dtype}: params {n_dense} -> {n_sliced}; max|logit(sliced) - "
              f"logit(dense, channels zeroed)| = {diff:.3g} (tolerance {tol:g})")
        ok &= diff <= tol
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
