"""Reference LLaMA forward pass in fp32, shared by all reference scripts.

Written from the LLaMA definitions (RMSNorm, RoPE, GQA causal attention, SwiGLU MLP), not from
the C++ code. One implementation serves both checkpoint layouts:

- rope_style "half": Hugging Face rotate_half pairing (dims i and i + head_dim/2), used for HF
  checkpoints (prose16M);
- rope_style "interleaved": llama2.c run.c pairing (dims 2i and 2i+1 inside each head), used for
  llama2.c checkpoints (stories260K) in the file's own layout: no weight permutation.

Weights of a decoder layer are kept in a dict with keys attn_norm, q, k, v, o, ffn_norm, gate, up,
down; matrices are [out, in] like nn.Linear.weight. The number of heads of a layer is read from the
weight shapes (q rows / head_dim, k rows / head_dim), so a TransAct-sliced layer runs unchanged.
"""
import json
import math
import os

import torch
import torch.nn.functional as F

import refio

LINEARS = ("q", "k", "v", "o", "gate", "up", "down")
ATTN_LINEARS = ("q", "k", "v", "o")
MLP_LINEARS = ("gate", "up", "down")
# Hugging Face tensor names of the prunable linears (methods.md §1).
HF_NAMES = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
            "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj",
            "down": "mlp.down_proj"}


def hf_weight_name(layer, key):
    return f"model.layers.{layer}.{HF_NAMES[key]}.weight"


class Config:
    def __init__(self, **kw):
        self.dim = kw["dim"]
        self.n_layers = kw["n_layers"]
        self.n_heads = kw["n_heads"]
        self.n_kv_heads = kw["n_kv_heads"]
        self.head_dim = kw["head_dim"]
        self.ffn_dim = kw["ffn_dim"]
        self.vocab = kw["vocab"]
        self.eps = kw["eps"]
        self.rope_theta = kw["rope_theta"]
        self.rope_style = kw["rope_style"]
        self.max_pos = kw["max_pos"]

    def as_dict(self):
        return dict(self.__dict__)


class Model:
    """fp32 LLaMA. embed / norm / lm_head are never pruned and are shared between clones."""

    def __init__(self, cfg, embed, layers, norm, lm_head, rope_cos, rope_sin):
        self.cfg, self.embed, self.layers, self.norm, self.lm_head = cfg, embed, layers, norm, lm_head
        self.rope_cos, self.rope_sin = rope_cos, rope_sin  # [max_pos, head_dim/2]

    def to(self, device):
        mv = lambda t: t.to(device)
        self.embed, self.norm, self.rope_cos, self.rope_sin = map(mv, (self.embed, self.norm, self.rope_cos, self.rope_sin))
        self.lm_head = self.lm_head.to(device)
        self.layers = [{k: mv(v) for k, v in lw.items()} for lw in self.layers]
        return self

    @property
    def device(self):
        return self.embed.device

    def clone(self):
        """Copy with fresh layer tensors (what pruning modifies); the rest is shared."""
        return Model(self.cfg, self.embed, [{k: v.clone() for k, v in lw.items()} for lw in self.layers],
                     self.norm, self.lm_head, self.rope_cos, self.rope_sin)


def rope_tables(head_dim, theta, n_pos, device="cpu"):
    """cos/sin [n_pos, head_dim/2] of pos * theta^(-2i/head_dim), in fp32 as HF computes them."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim))
    freqs = torch.arange(n_pos, device=device).float()[:, None] * inv_freq[None, :]
    return freqs.cos(), freqs.sin()


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def apply_rope(x, cos, sin, style):
    """x [B, T, H, hd]; cos/sin [T, hd/2]."""
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    if style == "half":  # HF: x*cos + rotate_half(x)*sin, rotate_half(x) = cat(-x2, x1)
        h = x.shape[-1] // 2
        x1, x2 = x[..., :h], x[..., h:]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)
    if style == "interleaved":  # llama2.c run.c: (v0, v1) -> (v0*fcr - v1*fci, v0*fci + v1*fcr)
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).flatten(-2)
    raise ValueError(style)


def attention_core(q, k, v, model):
    """Causal GQA attention. q [B,T,nh*hd], k/v [B,T,nkv*hd] (linear outputs, before RoPE).
    Returns the context [B, T, nh*hd] (the o_proj input). Query head h reads KV head
    h // (nh/nkv), as HF repeat_kv and llama2.c `h / kv_mul`."""
    cfg = model.cfg
    B, T, _ = q.shape
    hd = cfg.head_dim
    nh, nkv = q.shape[-1] // hd, k.shape[-1] // hd
    cos, sin = model.rope_cos[:T], model.rope_sin[:T]
    qh = apply_rope(q.reshape(B, T, nh, hd), cos, sin, cfg.rope_style).transpose(1, 2)
    kh = apply_rope(k.reshape(B, T, nkv, hd), cos, sin, cfg.rope_style).transpose(1, 2)
    vh = v.reshape(B, T, nkv, hd).transpose(1, 2)
    if nh != nkv:
        kh = kh.repeat_interleave(nh // nkv, dim=1)
        vh = vh.repeat_interleave(nh // nkv, dim=1)
    att = torch.matmul(qh, kh.transpose(-1, -2)) * (hd ** -0.5)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    att = att.masked_fill(causal, float("-inf")).softmax(dim=-1)
    return torch.matmul(att, vh).transpose(1, 2).reshape(B, T, nh * hd)


def attention(lw, h, model, hook=None, layer=None):
    """Self-attention block output (before the residual add) for the normed input h."""
    ctx = attention_core(F.linear(h, lw["q"]), F.linear(h, lw["k"]), F.linear(h, lw["v"]), model)
    if hook is not None:
        ctx = hook(layer, "ctx", ctx)
    return F.linear(ctx, lw["o"])


def mlp(lw, x, hook=None, layer=None):
    act = F.silu(F.linear(x, lw["gate"])) * F.linear(x, lw["up"])
    if hook is not None:
        act = hook(layer, "act", act)
    return F.linear(act, lw["down"])


def layer_forward(lw, x, model, hook=None, layer=None):
    eps = model.cfg.eps
    x = x + attention(lw, rmsnorm(x, lw["attn_norm"], eps), model, hook, layer)
    return x + mlp(lw, rmsnorm(x, lw["ffn_norm"], eps), hook, layer)


def layer_forward_chunked(lw, x, model, chunk):
    """layer_forward over the calibration stream [n, T, D], `chunk` sequences at a time."""
    return torch.cat([layer_forward(lw, x[i:i + chunk], model) for i in range(0, x.shape[0], chunk)])


def logits(model, ids, hook=None):
    x = model.embed[ids]
    for i, lw in enumerate(model.layers):
        x = layer_forward(lw, x, model, hook, i)
    return F.linear(rmsnorm(x, model.norm, model.cfg.eps), model.lm_head)


@torch.no_grad()
def window_nlls(logits_fn, ids, T, device, batch=8, max_windows=None):
    """WikiText protocol (methods.md §1): floor(n/T) non-overlapping windows of T tokens; for each
    the mean next-token NLL over its T-1 predictions (fp32 cross-entropy, mean in fp64).
    logits_fn maps int64 [B, T] to logits [B, T, V]. Returns a list of floats."""
    n = len(ids) // T
    if max_windows is not None:
        n = min(n, max_windows)
    arr = torch.tensor(ids[:n * T], dtype=torch.int64).view(n, T)
    out = []
    for i in range(0, n, batch):
        x = arr[i:i + batch].to(device)
        lg = logits_fn(x)[:, :-1].float()
        nll = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), x[:, 1:].reshape(-1), reduction="none")
        out.extend(nll.view(x.shape[0], T - 1).double().mean(dim=1).tolist())
    return out


def model_nlls(model, ids, T, batch=None, hook=None, max_windows=None):
    batch = batch or eval_batch(model.device)
    return window_nlls(lambda x: logits(model, x, hook), ids, T, model.device, batch, max_windows)


def ppl_record(nlls, T, keep_windows=True):
    """The JSON record of one perplexity evaluation."""
    rec = {"T": T, "n_windows": len(nlls), "mean_nll": sum(nlls) / len(nlls), "ppl": ppl_from_nlls(nlls)}
    if keep_windows:
        rec["window_nlls"] = nlls
    return rec


def ppl_from_nlls(nlls):
    return math.exp(sum(nlls) / len(nlls))


# ----------------------------------------------------------------------------------------------
# Loaders


def load_hf(model_dir):
    """A Hugging Face LLaMA directory, weights upcast to fp32, RoPE pairing 'half'."""
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    rp = c.get("rope_parameters") or c.get("rope_scaling") or {}
    theta = rp.get("rope_theta", c.get("rope_theta"))
    if theta is None or rp.get("rope_type", "default") != "default":
        raise SystemExit(f"FATAL: unsupported RoPE config in {model_dir}: {rp}")
    if c.get("attention_bias") or c.get("mlp_bias"):
        raise SystemExit("FATAL: biases are not supported by the reference")
    n_heads = c["num_attention_heads"]
    cfg = Config(dim=c["hidden_size"], n_layers=c["num_hidden_layers"], n_heads=n_heads,
                 n_kv_heads=c.get("num_key_value_heads") or n_heads,
                 head_dim=c.get("head_dim") or c["hidden_size"] // n_heads,
                 ffn_dim=c["intermediate_size"], vocab=c["vocab_size"], eps=c["rms_norm_eps"],
                 rope_theta=float(theta), rope_style="half", max_pos=c["max_position_embeddings"])
    w = {k: v.float() for k, v in refio.read_hf_weights(model_dir).items()}
    layers = []
    for i in range(cfg.n_layers):
        p = f"model.layers.{i}."
        lw = {"attn_norm": w.pop(p + "input_layernorm.weight"),
              "ffn_norm": w.pop(p + "post_attention_layernorm.weight")}
        for key in LINEARS:
            lw[key] = w.pop(hf_weight_name(i, key))
        layers.append(lw)
    embed = w.pop("model.embed_tokens.weight")
    norm = w.pop("model.norm.weight")
    lm_head = w.pop("lm_head.weight", None)
    if lm_head is None:
        if not c.get("tie_word_embeddings", False):
            raise SystemExit("FATAL: no lm_head.weight and embeddings are not tied")
        lm_head = embed
    if w:
        raise SystemExit(f"FATAL: unexpected tensors in {model_dir}: {sorted(w)[:5]}")
    cos, sin = rope_tables(cfg.head_dim, cfg.rope_theta, cfg.max_pos)
    return Model(cfg, embed, layers, norm, lm_head, cos, sin)


def load_llama2c(path):
    """A llama2.c legacy checkpoint in its own layout, RoPE 'interleaved' from the stored
    freq_cis tables (checked against theta = 10000)."""
    h, t = refio.read_llama2c(path)
    hs = h["dim"] // h["n_heads"]
    cfg = Config(dim=h["dim"], n_layers=h["n_layers"], n_heads=h["n_heads"], n_kv_heads=h["n_kv_heads"],
                 head_dim=hs, ffn_dim=h["hidden_dim"], vocab=h["vocab_size"], eps=1e-5,
                 rope_theta=10000.0, rope_style="interleaved", max_pos=h["seq_len"])
    cos, sin = t["freq_cis_real"], t["freq_cis_imag"]
    c2, s2 = rope_tables(hs, 10000.0, h["seq_len"])
    dev = max((cos - c2).abs().max().item(), (sin - s2).abs().max().item())
    if dev > 1e-4:
        raise SystemExit(f"FATAL: freq_cis tables differ from theta=10000 by {dev}")
    layers = [{"attn_norm": t["rms_att"][i], "q": t["wq"][i], "k": t["wk"][i], "v": t["wv"][i],
               "o": t["wo"][i], "ffn_norm": t["rms_ffn"][i], "gate": t["w1"][i], "down": t["w2"][i],
               "up": t["w3"][i]} for i in range(h["n_layers"])]
    lm_head = t["token_embedding"] if h["shared_classifier"] else t["wcls"]
    return Model(cfg, t["token_embedding"], layers, t["rms_final"], lm_head, cos.clone(), sin.clone())


def interleaved_to_half_rows(n_heads, head_dim):
    """Row permutation P with W_hf = W_llama2c[P] for q_proj/k_proj (the llama2.c -> HF export
    permutation): HF row h*hd + a*hd/2 + j  <-  llama2.c row h*hd + 2j + a."""
    half = head_dim // 2
    return torch.tensor([h * head_dim + 2 * j + a for h in range(n_heads) for a in range(2)
                         for j in range(half)], dtype=torch.int64)


def to_half_layout(model):
    """The same function as `model` (interleaved) expressed in the HF layout ('half')."""
    cfg = Config(**model.cfg.as_dict())
    cfg.rope_style = "half"
    pq = interleaved_to_half_rows(cfg.n_heads, cfg.head_dim).to(model.device)
    pk = interleaved_to_half_rows(cfg.n_kv_heads, cfg.head_dim).to(model.device)
    layers = []
    for lw in model.layers:
        lw = dict(lw)
        lw["q"], lw["k"] = lw["q"][pq].clone(), lw["k"][pk].clone()
        layers.append(lw)
    return Model(cfg, model.embed, layers, model.norm, model.lm_head, model.rope_cos, model.rope_sin)


def load_model(name, data_dir):
    if name == "prose16M":
        return load_hf(os.path.join(data_dir, "models", "prose16M"))
    if name == "stories260K":
        return load_llama2c(os.path.join(data_dir, "models", "stories260K", "stories260K.bin"))
    raise ValueError(name)


def tokenizer_path(name, data_dir):
    if name == "prose16M":
        return os.path.join(data_dir, "models", "prose16M", "tokenizer.model")
    return os.path.join(data_dir, "models", "stories260K", "tok512.model")


def eval_batch(device):
    """Windows per forward: large on a GPU; 1 on a CPU, where big attention tensors were measured
    to be several times slower (allocation page faults) on the 2-core CI machine."""
    return 16 if str(device).startswith("cuda") else 1


def setup_torch(device, threads=None):
    """fp32 everywhere: no TF32 (torch 2.x on Ampere+ would otherwise be allowed in cuDNN)."""
    if threads:
        torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if hasattr(torch, "set_float32_matmul_precision"):
        torch.set_float32_matmul_precision("highest")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("FATAL: --device cuda requested but CUDA is not available")
    return torch.device(device)


# ----------------------------------------------------------------------------------------------
# Token streams and calibration windows

TEXTS = {"wiki_test": "text/wikitext-2-raw/wiki.test.raw",
         "tinystories": "text/tinystories/tinystories_val_head.txt",
         "wiki_valid": "text/wikitext-2/valid.txt"}
CALIB_SIZE = {"stories260K": (32, 256), "prose16M": (64, 512)}
_streams = {}


def token_stream(name, data_dir, text):
    """[BOS] + sp.encode(whole text file) with the model's SentencePiece model (cached)."""
    key = (name, text)
    if key not in _streams:
        sp = refio.sp_processor(tokenizer_path(name, data_dir))
        _streams[key] = refio.encode_with_bos(sp, refio.read_text(os.path.join(data_dir, TEXTS[text])))
    return _streams[key]


def calibration(name, data_dir, out_dir, override=None):
    """The calibration windows, written to out_dir/calib_<name>_<n>x<T>.safetensors (tensor
    input_ids int64 [n, T], offsets int64 [n]): stream = [BOS] + sp.encode(wikitext-2/valid.txt);
    offsets = numpy.random.RandomState(0).randint(0, len(stream) - T + 1, size=n) (windows may
    overlap); window i = stream[offsets[i] : offsets[i] + T]. Returns (tensor, file name)."""
    import numpy as np
    n, T = CALIB_SIZE[name]
    if override:
        n, T = (int(v) for v in override.lower().split("x"))
    ids = token_stream(name, data_dir, "wiki_valid")
    offs = np.random.RandomState(0).randint(0, len(ids) - T + 1, size=n)
    arr = torch.tensor([ids[o:o + T] for o in offs], dtype=torch.int64)
    fname = f"calib_{name}_{n}x{T}.safetensors"
    refio.write_safetensors(os.path.join(out_dir, fname),
                            {"input_ids": arr, "offsets": torch.tensor(offs, dtype=torch.int64)},
                            {"source": TEXTS["wiki_valid"], "stream_tokens": len(ids),
                             "stream_sha256": refio.ids_sha256(ids), "tokenizer": name,
                             "sampling": "numpy RandomState(0).randint(0, len-T+1, size=n)"})
    return arr, fname
