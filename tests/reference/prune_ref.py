"""Reference implementations of magnitude, Wanda, SparseGPT and LLM-Barber (methods.md §1-5).

Everything runs in fp32 on the weights of llama_ref.Model. Masks are bool tensors shaped like the
weight, True = pruned (zero). Sorting ties are broken by the lower index everywhere a count is
exact (stable sorts), so the results are deterministic.

Variants kept side by side because the C++ may implement either:
- magnitude / SparseGPT unstructured: "ref" = the reference code's `<=` threshold at sorted index
  int(numel*r) (prunes int(numel*r)+1 or more, methods.md §2, §4, §8.8); "exact" = exactly
  int(numel*r) lowest, ties by lower (row-major) index.
- Barber mask rebuild: "ref" = strict thresholds t_g / t_p over the group (§5.4); "exact" = swap
  by index, top-k of g against bottom-k of p (§5.7 [ours]).
"""
import torch
import torch.nn.functional as F

import llama_ref as L


def _scatter_first(order, k, n_rows, n):
    """Bool [n_rows, n]: True at order[r, :k[r]] (order is a permutation of each row)."""
    sel = torch.arange(n, device=order.device)[None, :] < k[:, None]
    return torch.zeros(n_rows, n, dtype=torch.bool, device=order.device).scatter_(1, order, sel)


def nm_lowest(S, n, m):
    """Per row, per aligned group of m input columns, the n lowest scores (stable: lower index
    first on ties). methods.md §2 (magnitude N:M), §3 (Wanda N:M)."""
    rows, cols = S.shape
    if cols % m:
        raise ValueError(f"{cols} columns are not a multiple of {m}")
    g = S.reshape(rows, cols // m, m)
    idx = torch.sort(g, dim=-1, stable=True)[1][..., :n]
    return torch.zeros_like(g, dtype=torch.bool).scatter_(-1, idx, True).reshape(rows, cols)


# ---------------------------------------------------------------------------------------------
# §2 magnitude


def magnitude_mask(W, r, variant="ref"):
    a = W.abs().reshape(-1)
    k = int(a.numel() * r)
    if variant == "ref":  # thr = sort(|W|)[int(numel*r)], prune |W| <= thr
        thr = torch.sort(a)[0][k]
        return W.abs() <= thr
    idx = torch.sort(a, stable=True)[1][:k]
    return torch.zeros_like(a, dtype=torch.bool).index_fill_(0, idx, True).view_as(W)


# ---------------------------------------------------------------------------------------------
# §3 Wanda: S = |W| * sqrt(scaler_row), scaler_row[j] = (1/nseq) sum_tokens x_j^2


def wanda_mask(W, scaler_row, r, nm=None):
    S = W.abs() * torch.sqrt(scaler_row).reshape(1, -1)
    if nm is not None:
        return nm_lowest(S, *nm)
    k = int(W.shape[1] * r)  # exact per row, stable sort (ties: lower column first)
    idx = torch.sort(S, dim=-1, stable=True)[1][:, :k]
    return torch.zeros_like(W, dtype=torch.bool).scatter_(1, idx, True)


# ---------------------------------------------------------------------------------------------
# §4 SparseGPT fasterprune


def sparsegpt(W, H, r, nm=None, blocksize=128, percdamp=0.01, variant="ref"):
    """Returns (W_pruned, mask, losses[rows]). H = (2/nseq) sum_t x_t x_t^T, fp32.
    nm = (n, m) for N:M (mask chosen at every m-th column on the updated weights)."""
    W = W.clone().float()
    H = H.clone().float()
    rows, cols = W.shape
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    diag = torch.arange(cols, device=W.device)
    H[diag, diag] += percdamp * torch.mean(torch.diag(H))
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    mask = torch.zeros_like(W, dtype=torch.bool)
    losses = torch.zeros(rows, device=W.device)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Losses1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        d1 = torch.diag(Hinv1)
        if nm is None:  # one mask per block over all rows x count columns
            tmp = (W1 ** 2 / d1.reshape(1, -1) ** 2).reshape(-1)
            k = int(tmp.numel() * r)
            if variant == "ref":
                mask1 = (tmp <= torch.sort(tmp)[0][k]).view(rows, count)
            else:
                idx = torch.sort(tmp, stable=True)[1][:k]
                mask1 = torch.zeros_like(tmp, dtype=torch.bool).index_fill_(0, idx, True).view(rows, count)
        else:
            mask1 = torch.zeros_like(W1, dtype=torch.bool)
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if nm is not None and i % nm[1] == 0:
                n, m = nm
                tmp = W1[:, i:i + m] ** 2 / d1[i:i + m].reshape(1, -1) ** 2
                idx = torch.sort(tmp, dim=1, stable=True)[1][:, :n]
                mask1[:, i:i + m].scatter_(1, idx, True)
            q = w.masked_fill(mask1[:, i], 0.0)  # (no boolean indexing: no device sync)
            Q1[:, i] = q
            Losses1[:, i] = (w - q) ** 2 / d ** 2
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        mask[:, i1:i2] = mask1
        losses += torch.sum(Losses1, 1) / 2
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W, mask, losses


# ---------------------------------------------------------------------------------------------
# §1 layer-sequential driver for the initializers


def layer_inputs(lw, x, model):
    """The inputs of the 7 linears of one layer for a chunk x [b, T, D]:
    {'attn_in' (q,k,v), 'ctx' (o), 'mlp_in' (gate,up), 'act' (down)}."""
    eps = model.cfg.eps
    h = L.rmsnorm(x, lw["attn_norm"], eps)
    ctx = L.attention_core(F.linear(h, lw["q"]), F.linear(h, lw["k"]), F.linear(h, lw["v"]), model)
    x1 = x + F.linear(ctx, lw["o"])
    u = L.rmsnorm(x1, lw["ffn_norm"], eps)
    act = F.silu(F.linear(u, lw["gate"])) * F.linear(u, lw["up"])
    return {"attn_in": h, "ctx": ctx, "mlp_in": u, "act": act}


INPUT_OF = {"q": "attn_in", "k": "attn_in", "v": "attn_in", "o": "ctx", "gate": "mlp_in",
            "up": "mlp_in", "down": "act"}


@torch.no_grad()
def calib_stats(lw, X, model, kind, chunk):
    """Statistics of the dense layer on the stream X [nseq, T, D] (accumulated in fp64, returned
    in fp32): kind 'wanda' -> scaler_row = sum x^2 / nseq; 'sparsegpt' -> H = 2/nseq sum x x^T."""
    acc = {}
    for i in range(0, X.shape[0], chunk):
        for name, t in layer_inputs(lw, X[i:i + chunk], model).items():
            t = t.reshape(-1, t.shape[-1]).double()
            s = (t * t).sum(0) if kind == "wanda" else t.T @ t
            acc[name] = acc[name] + s if name in acc else s
    nseq = X.shape[0]
    scale = 1.0 / nseq if kind == "wanda" else 2.0 / nseq
    return {k: (v * scale).float() for k, v in acc.items()}


@torch.no_grad()
def prune_model(model, calib, method, r=0.5, nm=None, variant="ref", chunk=8):
    """method in magnitude / wanda / sparsegpt; calib int64 [nseq, T]. Layer-sequential as §1:
    dense stats of layer l on the pruned stream, prune all 7 linears, recompute the stream."""
    out = model.clone()
    X = model.embed[calib.to(model.device)]
    for lw in out.layers:
        if method == "magnitude":
            for key in L.LINEARS:
                W = lw[key]
                mask = nm_lowest(W.abs(), *nm) if nm else magnitude_mask(W, r, variant)
                lw[key] = W.masked_fill(mask, 0.0)
            continue  # the stream is not needed: magnitude masks depend on weights only
        st = calib_stats(lw, X, out, method, chunk)
        new = {}
        for key in L.LINEARS:
            W, s = lw[key], st[INPUT_OF[key]]
            if method == "wanda":
                new[key] = W.masked_fill(wanda_mask(W, s, r, nm), 0.0)
            elif method == "sparsegpt":
                new[key] = sparsegpt(W, s, r, nm, variant=variant)[0]
            else:
                raise ValueError(method)
        lw.update(new)
        X = L.layer_forward_chunked(lw, X, out, chunk)
    return out


# ---------------------------------------------------------------------------------------------
# §5.4 Barber mask rebuild


def rebuild_groups(score, pruned, tau, rule="ref"):
    """One comparison group per row of score/pruned [G, n]. Returns (new_pruned, k [G]).
    g = pruned scores descending, p = kept scores ascending, R = #{i < min: g[i] > p[i]},
    k = floor(R*tau); ref: regrow score > g[k], then prune score < p[k] (k clamped to the list
    end); exact: regrow g's first k, prune p's first k."""
    G, n = score.shape
    neg, pos = torch.full_like(score, float("-inf")), torch.full_like(score, float("inf"))
    g_val, g_ord = torch.sort(torch.where(pruned, score, neg), dim=1, descending=True, stable=True)
    p_val, p_ord = torch.sort(torch.where(pruned, pos, score), dim=1, stable=True)
    npr = pruned.sum(1)
    nkp = n - npr
    R = (g_val > p_val).sum(1)  # padding (-inf vs +inf) never counts
    k = torch.floor(R.double() * tau).long()
    active = (npr > 0) & (nkp > 0)
    if rule == "ref":
        t_g = g_val.gather(1, torch.minimum(k, (npr - 1).clamp(min=0))[:, None])
        t_p = p_val.gather(1, torch.minimum(k, (nkp - 1).clamp(min=0))[:, None])
        new = pruned & ~(score > t_g)
        new = new | (score < t_p)
    else:
        new = pruned & ~_scatter_first(g_ord, k, G, n)
        new = new | _scatter_first(p_ord, k, G, n)
    new = torch.where(active[:, None], new, pruned)
    return new, torch.where(active, k, torch.zeros_like(k))


def rebuild_nm(score, pruned, tau, m, rule="ref"):
    """N:M path of §5.4: k and t_g from the whole row; regrown = pruned & score > t_g; in each
    group of m columns the r weakest kept weights (r = regrown in the group) are pruned."""
    rows, cols = score.shape
    g_val, g_ord = torch.sort(torch.where(pruned, score, torch.full_like(score, float("-inf"))),
                              dim=1, descending=True, stable=True)
    p_val = torch.sort(torch.where(pruned, torch.full_like(score, float("inf")), score), dim=1)[0]
    npr = pruned.sum(1)
    active = (npr > 0) & (npr < cols)
    k = torch.floor((g_val > p_val).sum(1).double() * tau).long()
    k = torch.where(active, k, torch.zeros_like(k))
    if rule == "ref":
        t_g = g_val.gather(1, torch.minimum(k, (npr - 1).clamp(min=0))[:, None])
        regrow = pruned & (score > t_g) & active[:, None]
    else:
        regrow = _scatter_first(g_ord, k, rows, cols)
    r = regrow.reshape(rows, cols // m, m).sum(-1)
    vals = torch.where(pruned, torch.full_like(score, float("inf")), score).reshape(rows, cols // m, m)
    if rule == "ref":
        thr = torch.sort(vals, dim=-1)[0].gather(-1, r[..., None])
        drop = vals < thr
    else:
        order = torch.sort(vals, dim=-1, stable=True)[1].reshape(-1, m)
        drop = _scatter_first(order, r.reshape(-1), order.shape[0], m).reshape(rows, cols // m, m)
    drop = drop.reshape(rows, cols) & ~pruned
    return (pruned & ~regrow) | drop, k


def rebuild(scores, masks, tau, granularity="output1", nm=None, rule="ref"):
    """Rebuild the masks of one block ({key: [out, in]}). Returns ({key: new mask}, groups)
    where groups lists (key or 'block', group index-space tensor) is summarised as counts."""
    keys = list(scores)
    if nm is not None:
        res = {kk: rebuild_nm(scores[kk], masks[kk], tau, nm[1], rule) for kk in keys}
        return {kk: v[0] for kk, v in res.items()}, torch.cat([v[1] for v in res.values()])
    if granularity == "block":
        flat_s = torch.cat([scores[kk].reshape(-1) for kk in keys])[None]
        flat_m = torch.cat([masks[kk].reshape(-1) for kk in keys])[None]
        new, k = rebuild_groups(flat_s, flat_m, tau, rule)
        out, off = {}, 0
        for kk in keys:
            n = masks[kk].numel()
            out[kk] = new[0, off:off + n].view_as(masks[kk])
            off += n
        return out, k
    out, ks = {}, []
    for kk in keys:
        S, M = scores[kk], masks[kk]
        if granularity == "output1":
            new, k = rebuild_groups(S, M, tau, rule)
        elif granularity == "input1":
            new, k = rebuild_groups(S.T.contiguous(), M.T.contiguous(), tau, rule)
            new = new.T
        elif granularity == "layer":
            new, k = rebuild_groups(S.reshape(1, -1), M.reshape(1, -1), tau, rule)
            new = new.view_as(M)
        else:
            raise ValueError(granularity)
        out[kk] = new
        ks.append(k)
    return out, torch.cat(ks)


def _group_view(t, granularity, nm):
    """The [groups, n] view used to count differing groups (block -> one group)."""
    if nm is not None or granularity == "output1":
        return t
    if granularity == "input1":
        return t.T
    return t.reshape(1, -1)


# ---------------------------------------------------------------------------------------------
# §5.3 Barber per-sequence gradients


def _acc_sq_grad(acc, key, d_out, inp):
    """acc[key] += sum_s (G_s)^2 with G_s = d_out[s]^T inp[s] (the per-sequence weight gradient
    of a linear layer from the gradient of its output)."""
    G = torch.bmm(d_out.transpose(1, 2), inp)
    acc[key] = acc[key] + (G * G).sum(0) if key in acc else (G * G).sum(0)


def attn_grad_sq(dl, sl, X, model, chunk):
    """mean_s G_s^2 for q,k,v,o: L_s = mean((Y_sp - A_dense(X_s))^2), X_s = the sparse layer's
    input_layernorm output on the stream, Y_sp = sparse self_attn output (a constant)."""
    acc = {}
    eps = model.cfg.eps
    for i in range(0, X.shape[0], chunk):
        with torch.no_grad():
            h = L.rmsnorm(X[i:i + chunk], sl["attn_norm"], eps)
            y_sp = L.attention(sl, h, model)
        with torch.enable_grad():
            q, k, v = (F.linear(h, dl[kk]).detach().requires_grad_() for kk in ("q", "k", "v"))
            ctx = L.attention_core(q, k, v, model)
            y = F.linear(ctx, dl["o"])
            loss = (y - y_sp).pow(2).mean(dim=(1, 2)).sum()  # sum over sequences of L_s
            dq, dk, dv, dy = torch.autograd.grad(loss, [q, k, v, y])
        for key, d, inp in (("q", dq, h), ("k", dk, h), ("v", dv, h), ("o", dy, ctx.detach())):
            _acc_sq_grad(acc, key, d, inp)
    return {kk: v / X.shape[0] for kk, v in acc.items()}


def mlp_grad_sq(dl, sl, X, model, chunk):
    """mean_s G_s^2 for gate,up,down: the MLP input comes from the sparse layer with its rebuilt
    attention; Z_sp = sparse mlp output; the loss is against the dense fp32 MLP."""
    acc = {}
    eps = model.cfg.eps
    for i in range(0, X.shape[0], chunk):
        with torch.no_grad():
            x = X[i:i + chunk]
            x1 = x + L.attention(sl, L.rmsnorm(x, sl["attn_norm"], eps), model)
            u = L.rmsnorm(x1, sl["ffn_norm"], eps)
            z_sp = L.mlp(sl, u)
        with torch.enable_grad():
            g = F.linear(u, dl["gate"]).detach().requires_grad_()
            up = F.linear(u, dl["up"]).detach().requires_grad_()
            act = F.silu(g) * up
            z = F.linear(act, dl["down"])
            loss = (z - z_sp).pow(2).mean(dim=(1, 2)).sum()
            dg, du, dz = torch.autograd.grad(loss, [g, up, z])
        for key, d, inp in (("gate", dg, u), ("up", du, u), ("down", dz, act.detach())):
            _acc_sq_grad(acc, key, d, inp)
    return {kk: v / X.shape[0] for kk, v in acc.items()}


def barber(dense, sparse, calib, tau, granularity="output1", nm=None, rule="ref", chunk=8):
    """LLM-Barber (methods.md §5.3-5.4) on top of an initializer's sparse model. Returns
    (rebuilt model, stats). Also evaluates the other swap rule at every rebuild and counts the
    groups whose new mask would differ ('rule_diff_groups')."""
    out = sparse.clone()
    X = dense.embed[calib.to(dense.device)]
    other = "exact" if rule == "ref" else "ref"
    stats = {"groups": 0, "groups_swapped": 0, "swaps": 0, "rule_diff_groups": 0,
             "ref_count_changed_groups": 0, "changed_positions": 0}
    for dl, sl in zip(dense.layers, out.layers):
        for keys, grad_fn in ((L.ATTN_LINEARS, attn_grad_sq), (L.MLP_LINEARS, mlp_grad_sq)):
            G2 = grad_fn(dl, sl, X, dense, chunk)
            with torch.no_grad():
                scores = {kk: dl[kk].abs() * torch.sqrt(G2[kk]) for kk in keys}
                masks = {kk: sl[kk] == 0 for kk in keys}
                new, k = rebuild(scores, masks, tau, granularity, nm, rule)
                alt, _ = rebuild(scores, masks, tau, granularity, nm, other)
                if granularity == "block" and nm is None:
                    a = torch.cat([new[kk].reshape(-1) for kk in keys])
                    b = torch.cat([alt[kk].reshape(-1) for kk in keys])
                    m0 = torch.cat([masks[kk].reshape(-1) for kk in keys])
                    stats["rule_diff_groups"] += int((a != b).any())
                    stats["ref_count_changed_groups"] += int(a.sum() != m0.sum())
                for kk in keys:
                    if not (granularity == "block" and nm is None):
                        gv = lambda t: _group_view(t, granularity, nm)
                        stats["rule_diff_groups"] += int((gv(new[kk]) != gv(alt[kk])).any(1).sum())
                        ref_new = new[kk] if rule == "ref" else alt[kk]
                        stats["ref_count_changed_groups"] += int((gv(ref_new).sum(1) != gv(masks[kk]).sum(1)).sum())
                    stats["changed_positions"] += int((new[kk] != masks[kk]).sum())
                    sl[kk] = dl[kk].masked_fill(new[kk], 0.0)  # kept weights reset to dense values
                stats["groups"] += int(k.numel())
                stats["groups_swapped"] += int((k > 0).sum())
                stats["swaps"] += int(k.sum())
        with torch.no_grad():
            X = L.layer_forward_chunked(sl, X, out, chunk)
    return out, stats
