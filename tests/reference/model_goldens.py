"""Model goldens: dense logits and perplexities of the two bundled models.

stories260K (own llama2.c-literal forward, llama_ref with rope_style 'interleaved'):
  checks against data/README.md (greedy ids from BOS, mean NLL 1.34121 on the first 600 chars),
  writes stories260K_logits256.safetensors and stories260K_model.json.
prose16M (transformers LlamaForCausalLM, fp32, eager attention; cross-checked against llama_ref):
  writes prose16M_logits256.safetensors and prose16M_model.json.

  python3 tests/reference/model_goldens.py --out DIR --data $PRUNERD_TEST_DATA [--device cuda]
"""
import os
import sys

import torch

import llama_ref as L
import refio

README_GREEDY = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401,
                 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358,
                 394, 261, 370, 432, 352]
README_NLL600 = 1.34121
LOGIT_TOL = 1e-4  # |transformers - llama_ref| on prose16M logits


def env_info(device):
    return {"device": str(device), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if str(device).startswith("cuda") else None}


def streams_record(name, data_dir, texts):
    rec = {}
    for t in texts:
        ids = L.token_stream(name, data_dir, t)
        rec[t] = {"file": L.TEXTS[t], "n_tokens": len(ids), "sha256_int32le": refio.ids_sha256(ids),
                  "first_ids": ids[:16]}
    return rec


def stories(args, dev, failures):
    name = "stories260K"
    m = L.load_model(name, args.data).to(dev)
    # Greedy decoding from BOS (data/README.md).
    ids = [1]
    with torch.no_grad():
        for _ in range(40):
            ids.append(int(L.logits(m, torch.tensor([ids], device=dev))[0, -1].argmax()))
    greedy_ok = ids == README_GREEDY
    # Mean NLL of the first 600 chars, llama2.c BPE (tok512.bin), cut to 160 tokens.
    vocab, scores = refio.read_llama2c_tokenizer(
        os.path.join(args.data, "models", name, "tok512.bin"), m.cfg.vocab)
    text600 = refio.read_text(os.path.join(args.data, L.TEXTS["tinystories"]))[:600]
    t600 = refio.llama2c_encode(text600, vocab, scores)[:160]
    nll600 = L.model_nlls(m, t600, 160)[0]
    nll_ok = abs(nll600 - README_NLL600) < 5e-5
    print(f"  stories260K greedy ids match README: {greedy_ok}; NLL(600 chars) = {nll600:.6f} "
          f"(README {README_NLL600}) {'OK' if nll_ok else 'MISMATCH'}")
    if not greedy_ok:
        failures.append(f"stories260K greedy ids {ids} != README")
    if not nll_ok:
        failures.append(f"stories260K NLL600 {nll600} != {README_NLL600}")
    ts = L.token_stream(name, args.data, "tinystories")
    x = torch.tensor([ts[:256]], device=dev)
    with torch.no_grad():
        lg = L.logits(m, x)[0].float().cpu()
        d_layout = (L.logits(L.to_half_layout(m), x)[0].cpu() - lg).abs().max().item()
    print(f"  stories260K interleaved vs HF-layout (permuted q/k) logits max |d| = {d_layout:.2e}")
    refio.write_safetensors(os.path.join(args.out, "stories260K_logits256.safetensors"),
                            {"logits": lg, "input_ids": x[0].cpu()},
                            {"text": L.TEXTS["tinystories"], "tokens": "[BOS] + sp.encode(text), first 256"})
    ppl = {}
    for text in ("tinystories", "wiki_test"):
        for T in (256, 512):
            with refio.Timer(f"stories260K ppl {text} T={T}"):
                nl = L.model_nlls(m, L.token_stream(name, args.data, text), T,
                                  max_windows=args.max_eval_windows)
            ppl[f"{text}_T{T}"] = L.ppl_record(nl, T)
            print(f"  stories260K {text} T={T}: ppl {ppl[f'{text}_T{T}']['ppl']:.4f} ({len(nl)} windows)")
    refio.write_json(os.path.join(args.out, "stories260K_model.json"), {
        "model": name, "forward": "llama_ref (llama2.c run.c semantics, interleaved RoPE from freq_cis)",
        "env": env_info(dev), "max_eval_windows": args.max_eval_windows,
        "checks": {"greedy_ids": ids, "greedy_matches_readme": greedy_ok, "nll600": nll600,
                   "nll600_readme": README_NLL600, "nll600_tokens": t600,
                   "layout_permutation_max_abs_diff": d_layout},
        "streams": streams_record(name, args.data, ("tinystories", "wiki_test", "wiki_valid")),
        "ppl": ppl})


def load_transformers(model_dir, dev):
    """LlamaForCausalLM in fp32 with eager attention, or SystemExit with the reason."""
    try:
        import transformers
        from transformers import LlamaForCausalLM
    except ImportError as e:
        raise SystemExit(f"FATAL: transformers is required for the prose16M goldens ({e}); "
                         "run on the GPU machine or pass --allow-no-transformers (development only)")
    model = None
    for kw in ({"dtype": torch.float32}, {"torch_dtype": torch.float32}):
        try:
            model = LlamaForCausalLM.from_pretrained(model_dir, attn_implementation="eager", **kw)
        except TypeError:
            continue
        if {p.dtype for p in model.parameters()} == {torch.float32}:
            break
        model = None
    if model is None:
        raise SystemExit("FATAL: could not load prose16M in float32 with transformers")
    impl = getattr(model.config, "_attn_implementation", None)
    if impl is None:
        print("  WARNING: cannot read config._attn_implementation; 'eager' was requested")
    elif impl != "eager":
        raise SystemExit(f"FATAL: transformers attention implementation is {impl!r}, not 'eager'")
    return model.eval().to(dev), transformers.__version__


def prose(args, dev, failures):
    name = "prose16M"
    model_dir = os.path.join(args.data, "models", name)
    m = L.load_model(name, args.data).to(dev)
    ids = L.token_stream(name, args.data, "wiki_test")
    x = torch.tensor([ids[:256]], device=dev)
    with torch.no_grad():
        own_lg = L.logits(m, x)[0].float().cpu()
    Ts = (512, 1024)
    own = {}
    for T in Ts:
        with refio.Timer(f"prose16M llama_ref ppl T={T}"):
            own[T] = L.model_nlls(m, ids, T, max_windows=args.max_eval_windows)
    rec = {"model": name, "env": env_info(dev), "max_eval_windows": args.max_eval_windows,
           "streams": streams_record(name, args.data, ("wiki_test", "wiki_valid")),
           "tokens_first256": ids[:256]}
    try:
        hf, tf_version = load_transformers(model_dir, dev)
    except SystemExit as e:
        if not args.allow_no_transformers:
            raise
        print(f"  WARNING: {e}\n  WARNING: writing llama_ref numbers as prose16M goldens (DEVELOPMENT ONLY)")
        hf = None
    if hf is not None:
        # The weights transformers loaded must equal those of our own safetensors reader.
        sd = hf.state_dict()
        wdiff = 0.0
        for i, lw in enumerate(m.layers):
            for key in L.LINEARS:
                wdiff = max(wdiff, (sd[L.hf_weight_name(i, key)] - lw[key]).abs().max().item())
        wdiff = max(wdiff, (sd["model.embed_tokens.weight"] - m.embed).abs().max().item())
        hf_fn = lambda t: hf(input_ids=t, use_cache=False).logits
        with torch.no_grad():
            lg = hf_fn(x)[0].float().cpu()
        d = (lg - own_lg).abs().max().item()
        print(f"  prose16M transformers {tf_version} vs llama_ref: weights max |d| = {wdiff:.1e}, "
              f"logits max |d| = {d:.2e} (tolerance {LOGIT_TOL}) {'OK' if d <= LOGIT_TOL else 'FAIL'}")
        if d > LOGIT_TOL or wdiff != 0.0:
            failures.append(f"prose16M llama_ref vs transformers: logits {d}, weights {wdiff}")
        ppl = {}
        for T in Ts:
            with refio.Timer(f"prose16M transformers ppl T={T}"):
                nl = L.window_nlls(hf_fn, ids, T, dev, L.eval_batch(dev), args.max_eval_windows)
            r = L.ppl_record(nl, T)
            r["llama_ref_ppl"] = L.ppl_from_nlls(own[T])
            r["llama_ref_max_window_nll_diff"] = max(abs(a - b) for a, b in zip(nl, own[T]))
            ppl[f"wiki_test_T{T}"] = r
            print(f"  prose16M wiki_test T={T}: ppl {r['ppl']:.4f} (llama_ref {r['llama_ref_ppl']:.4f}, "
                  f"max window NLL diff {r['llama_ref_max_window_nll_diff']:.1e}, {len(nl)} windows)")
        rec.update({"source": f"transformers {tf_version} LlamaForCausalLM fp32 eager",
                    "llama_ref_logits_max_abs_diff": d, "weights_max_abs_diff": wdiff, "ppl": ppl})
        del hf
    else:
        lg = own_lg
        rec.update({"source": "llama_ref (transformers unavailable: DEVELOPMENT ONLY, not a golden)",
                    "ppl": {f"wiki_test_T{T}": L.ppl_record(own[T], T) for T in Ts}})
        for T in Ts:
            print(f"  prose16M wiki_test T={T}: llama_ref ppl {L.ppl_from_nlls(own[T]):.4f}")
    refio.write_safetensors(os.path.join(args.out, "prose16M_logits256.safetensors"),
                            {"logits": lg, "input_ids": x[0].cpu()},
                            {"text": L.TEXTS["wiki_test"], "tokens": "[BOS] + sp.encode(text), first 256",
                             "source": rec["source"]})
    refio.write_json(os.path.join(args.out, "prose16M_model.json"), rec)


def run(args):
    dev = L.setup_torch(args.device, args.threads)
    os.makedirs(args.out, exist_ok=True)
    failures = []
    models = args.models.split(",")
    if "stories260K" in models:
        stories(args, dev, failures)
    if "prose16M" in models:
        prose(args, dev, failures)
    if failures:
        raise SystemExit("FATAL: model_goldens checks failed:\n  " + "\n  ".join(failures))
    return {}


def add_args(p):
    p.add_argument("--allow-no-transformers", action="store_true",
                   help="DEVELOPMENT ONLY: without transformers, write llama_ref numbers for prose16M")
    return p


if __name__ == "__main__":
    run(add_args(refio.base_parser(__doc__)).parse_args())
