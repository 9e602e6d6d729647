#!/usr/bin/env python3
"""Checks that a model written by `prunerd oneshot --out DIR` loads in Hugging Face transformers
and computes what our engine computes: the perplexity of the same pre-tokenized windows.

  prunerd oneshot --model prose16M --method wanda --ratio 0.5 --calib valid.txt --out /tmp/p
  prunerd eval --model /tmp/p --data tests/golden/calib_prose16M_64x512.safetensors \
      --seqlen 512 --device cuda > /tmp/p.eval          # prints the JSON report
  python3 tests/reference/check_pruned_transformers.py --model /tmp/p \
      --tokens tests/golden/calib_prose16M_64x512.safetensors --seqlen 512 --expect-ppl PPL

Also checks that the sparsity transformers sees (exact zeros of q/k/v/o/gate/up/down) equals
--expect-sparsity when given. Needs torch, transformers and safetensors (the GPU host has them).
Exit status 0 when every check passes.
"""
import argparse
import math
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True, help="pre-tokenized safetensors (input_ids)")
    ap.add_argument("--seqlen", type=int, required=True)
    ap.add_argument("--expect-ppl", type=float, required=True)
    ap.add_argument("--expect-sparsity", type=float)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()

    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32).to(a.device)
    model.eval()
    ids = load_file(a.tokens)["input_ids"].reshape(-1).long()  # [n, T] windows or one stream
    n = ids.numel() // a.seqlen
    windows = ids[: n * a.seqlen].view(n, a.seqlen).to(a.device)
    nll = []
    with torch.no_grad():
        for i in range(0, n, 8):
            x = windows[i : i + 8]
            logp = torch.log_softmax(model(x).logits[:, :-1].float(), -1)
            nll += (-logp.gather(-1, x[:, 1:, None]).squeeze(-1).double().mean(-1)).tolist()
    ppl = math.exp(sum(nll) / len(nll))
    rel = abs(ppl - a.expect_ppl) / a.expect_ppl
    ok = rel <= 1e-4
    print(f"transformers ppl {ppl:.6f} vs engine {a.expect_ppl:.6f} over {n} windows (rel {rel:.2e})")

    if a.expect_sparsity is not None:
        zeros = total = 0
        for name, p in model.named_parameters():
            if any(k in name for k in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                       "up_proj", "down_proj")):
                zeros += int((p == 0).sum())
                total += p.numel()
        sparsity = zeros / total
        print(f"sparsity of the linear layers {sparsity:.6f} (expected {a.expect_sparsity:.6f})")
        ok = ok and abs(sparsity - a.expect_sparsity) < 1e-6
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
