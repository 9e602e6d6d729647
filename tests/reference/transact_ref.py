"""Reference TransAct scoring, selection and slicing (methods.md §6, head-level, no head-dim
pruning), with two GQA extensions (§6.4 [ours]):

- "kv_group": keep or drop whole KV groups. A group's score is the SUM of the head scores H of
  its query heads. n_keep_groups = ceil(n_keep_heads / heads_per_group). k_proj / v_proj lose
  the dropped groups' rows; the KV cache shrinks.
- "q_in_group": keep every KV head; inside each group keep the ceil(n_keep_heads / n_kv_heads)
  query heads with the highest H. k_proj / v_proj are unchanged.

Common definitions (r = the ratio of dimensions to REMOVE):
- channel score s[c] = sqrt(sum over all calibration tokens of a[c]^2), a = the o_proj input
  (attention context, MHA channels) or the down_proj input (SiLU(gate)*up, MLP channels);
  one pass of the dense model, every layer scored in the same pass;
- head score H_i = mean_j s[i*hd + j] + (10/hd) * max_j s[i*hd + j];
- keep_mha_dims = n_heads*hd - int(r * n_heads*hd); n_keep_heads = ceil(keep_mha_dims / hd);
- keep_mlp = ffn - int(r * ffn), the top channels by s;
- every top-k breaks ties by the lower index; kept indices are sorted ascending;
- slicing: rows of q (kept heads' channels), rows of k/v (kept KV heads' channels), columns of o
  (= the q channels), rows of gate/up and columns of down (MLP channels). Nothing else changes.
"""
import math

import torch

import llama_ref as L


def schedule(cur, target, shots, head_dim=None):
    """§6.5 per-shot dims: next = cur - floor((cur - target) / (K - t + 1)), MHA rounded up to
    whole heads."""
    seq = []
    for t in range(1, shots + 1):
        nxt = cur - (cur - target) // (shots - t + 1)
        if head_dim:
            nxt = -(-nxt // head_dim) * head_dim
        seq.append(nxt)
        cur = nxt
    return seq


def head_scores(s_mha, head_dim):
    s = s_mha.reshape(-1, head_dim)
    return s.mean(1) + (10.0 / head_dim) * s.max(1)[0]


def top_sorted(x, k):
    """Indices of the k largest values (ties: lower index first), sorted ascending."""
    order = torch.sort(x, descending=True, stable=True)[1][:k]
    return sorted(order.tolist())


@torch.no_grad()
def channel_scores(model, calib, chunk=8):
    """Per layer: (s_mha [n_heads*hd], s_mlp [ffn]) over all calibration tokens, fp32."""
    acc = {}

    def tap(layer, name, t):
        s = t.reshape(-1, t.shape[-1]).double().pow(2).sum(0)
        acc[(layer, name)] = acc[(layer, name)] + s if (layer, name) in acc else s
        return t

    calib = calib.to(model.device)
    for i in range(0, calib.shape[0], chunk):
        L.logits(model, calib[i:i + chunk], hook=tap)
    return [(acc[(l, "ctx")].sqrt().float(), acc[(l, "act")].sqrt().float())
            for l in range(model.cfg.n_layers)]


def select(cfg, s_mha, s_mlp, r_attn, r_mlp, mode):
    """Kept structure of one layer: dict(heads, kv_heads, q_channels, kv_channels, mlp)."""
    hd, nh, nkv = cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
    rep = nh // nkv
    H = head_scores(s_mha, hd)
    keep_dims = nh * hd - int(r_attn * nh * hd)
    n_keep = -(-keep_dims // hd)
    if mode == "mha":  # plain TransAct (n_kv == n_heads)
        if nkv != nh:
            raise ValueError("mode 'mha' needs n_kv_heads == n_heads")
        heads = top_sorted(H, n_keep)
        kv = heads
    elif mode == "kv_group":
        groups = top_sorted(H.reshape(nkv, rep).sum(1), -(-n_keep // rep))
        heads = [g * rep + j for g in groups for j in range(rep)]
        kv = groups
    elif mode == "q_in_group":
        per = -(-n_keep // nkv)
        heads = [g * rep + j for g in range(nkv) for j in top_sorted(H[g * rep:(g + 1) * rep], per)]
        kv = list(range(nkv))
    else:
        raise ValueError(mode)
    ch = lambda hs: [h * hd + j for h in hs for j in range(hd)]
    mlp = top_sorted(s_mlp, s_mlp.numel() - int(r_mlp * s_mlp.numel()))
    return {"heads": heads, "kv_heads": kv, "q_channels": ch(heads), "kv_channels": ch(kv),
            "mlp": mlp, "head_scores": H.tolist()}


def slice_model(model, sels):
    out = model.clone()
    for lw, sel in zip(out.layers, sels):
        dev = lw["q"].device
        qc, kc, mc = (torch.tensor(sel[k], dtype=torch.int64, device=dev) for k in ("q_channels", "kv_channels", "mlp"))
        lw["q"], lw["k"], lw["v"] = lw["q"][qc], lw["k"][kc], lw["v"][kc]
        lw["o"] = lw["o"][:, qc].contiguous()
        lw["gate"], lw["up"] = lw["gate"][mc], lw["up"][mc]
        lw["down"] = lw["down"][:, mc].contiguous()
    return out


def zeroing_hook(model, sels):
    """Forward hook for llama_ref.logits: zero the removed channels of the o_proj input and of the
    down_proj input of the DENSE model (methods.md §9.1 item 11)."""
    keep = []
    for sel in sels:
        c = torch.zeros(model.cfg.n_heads * model.cfg.head_dim, device=model.device)
        c[sel["q_channels"]] = 1
        a = torch.zeros(model.cfg.ffn_dim, device=model.device)
        a[sel["mlp"]] = 1
        keep.append({"ctx": c, "act": a})
    return lambda layer, name, t: t * keep[layer][name]
