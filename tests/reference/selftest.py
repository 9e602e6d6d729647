"""Self-test of the reference implementations: the hand examples of methods.md §9.2 (a)-(g)
plus internal consistency checks. Asserts; writes selftest.json with the checked numbers.

  /usr/bin/python3 tests/reference/selftest.py --out /tmp/golden
"""
import math
import os

import torch
import torch.nn.functional as F

import llama_ref as L
import prune_ref as P
import refio
import transact_ref as TA


def close(a, b, tol=1e-3):
    a = torch.as_tensor(a, dtype=torch.float64).flatten()
    b = torch.as_tensor(b, dtype=torch.float64).flatten()
    assert a.shape == b.shape and (a - b).abs().max().item() <= tol, f"{a.tolist()} != {b.tolist()}"


def pruned_set(mask_row):
    return set(torch.nonzero(mask_row).flatten().tolist())


def check_a():
    """(a) Wanda 2x4, r=0.5; magnitude layer-level off-by-one."""
    W = torch.tensor([[1.0, -2.0, 0.5, 4.0], [3.0, 0.1, -1.0, -0.2]])
    X = torch.tensor([[1.0, 0, 2, 1], [1, 0, 2, -1], [1, 3, 0, 0]])  # one sequence of 3 tokens
    scaler = (X * X).sum(0) / 1
    close(scaler.sqrt(), [math.sqrt(3), 3, math.sqrt(8), math.sqrt(2)])
    S = W.abs() * scaler.sqrt()
    close(S[0], [1.732, 6.000, 1.414, 5.657])
    close(S[1], [5.196, 0.300, 2.828, 0.283])
    m = P.wanda_mask(W, scaler, 0.5)
    assert pruned_set(m[0]) == {0, 2} and pruned_set(m[1]) == {1, 3}
    ref = P.magnitude_mask(W, 0.5, "ref")
    exact = P.magnitude_mask(W, 0.5, "exact")
    assert int(ref.sum()) == 5, "reference magnitude prunes 5 of 8 (tie at 1.0)"
    assert int(exact.sum()) == 4 and bool(exact[0, 0]) and not bool(exact[1, 2])
    return {"wanda_pruned_rows": [[0, 2], [1, 3]], "magnitude_ref_pruned": 5, "magnitude_exact_pruned": 4}


def check_b():
    """(b) Barber score from a one-matrix block, per-sequence gradients."""
    Wd = torch.tensor([[2.0, -1.0]])
    Ws = torch.tensor([[2.0, 0.0]])
    X = torch.tensor([[[1.0, 1.0]], [[0.0, 2.0]]])  # 2 sequences x 1 token
    y_sp = F.linear(X, Ws)
    y = F.linear(X, Wd).requires_grad_()
    (dy,) = torch.autograd.grad((y - y_sp).pow(2).mean(dim=(1, 2)).sum(), [y])
    acc = {}
    P._acc_sq_grad(acc, "w", dy, X)
    G2 = acc["w"] / 2
    close(G2, [[2.0, 34.0]])
    score = Wd.abs() * G2.sqrt()
    close(score, [[2.828, 5.831]])
    mask = Ws == 0
    for rule in ("ref", "exact"):
        new, k = P.rebuild_groups(score, mask, 0.01, rule)
        assert new.tolist() == [[False, True]] and k.tolist() == [0]
    # tau = 1: R = 1, k = 1. The exact-swap rule swaps, as methods.md (b) says.
    new, k = P.rebuild_groups(score, mask, 1.0, "exact")
    assert new.tolist() == [[True, False]] and k.tolist() == [1]
    # The literal strict-threshold rule of §5.4 does NOT: k equals the list length (1), so
    # t_g = g[-1] = 5.831 itself and `score > t_g` regrows nothing; t_p = p[-1] = 2.828 and
    # `score < t_p` drops nothing. (Only reachable at tau = 1; see README "Known discrepancies".)
    new, k = P.rebuild_groups(score, mask, 1.0, "ref")
    assert new.tolist() == [[False, True]] and k.tolist() == [1]
    return {"mean_G2": [2.0, 34.0], "score": score.flatten().tolist(),
            "tau1_exact_swaps": True, "tau1_ref_rule_swaps": False}


SCORES_C = torch.tensor([[9.0, 1, 7, 3, 8, 2, 6, 5]])
PRUNED_C = torch.zeros(1, 8, dtype=torch.bool)
PRUNED_C[0, [0, 2, 5, 7]] = True


def check_c():
    """(c) find_threshold on one row: R = 2; tau 0.01 / 0.5 / 1.0."""
    want = {0.01: (0, {0, 2, 5, 7}), 0.5: (1, {1, 2, 5, 7}), 1.0: (2, {1, 3, 5, 7})}
    for tau, (k_want, set_want) in want.items():
        for rule in ("ref", "exact"):
            new, k = P.rebuild_groups(SCORES_C, PRUNED_C, tau, rule)
            assert k.tolist() == [k_want] and pruned_set(new[0]) == set_want, (tau, rule, new)
    return {"R": 2, "tau_to_pruned": {str(t): sorted(s) for t, (_, s) in want.items()}}


def check_d():
    """(d) Barber N:M 2:4, tau 1 -> {1, 3, 5, 7}."""
    for rule in ("ref", "exact"):
        new, k = P.rebuild_nm(SCORES_C, PRUNED_C, 1.0, 4, rule)
        assert pruned_set(new[0]) == {1, 3, 5, 7} and k.tolist() == [2], (rule, new)
    return {"pruned": [1, 3, 5, 7]}


def check_e():
    """(e) SparseGPT OBS step, damping 0, w = (1, 1), H = [[2, 1], [1, 2]]."""
    H = torch.tensor([[2.0, 1.0], [1.0, 2.0]])
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    close(U, [[0.8165, -0.4082], [0.0, 0.7071]])
    W = torch.tensor([[1.0, 1.0]])
    close(W ** 2 / torch.diag(U) ** 2, [[1.5, 2.0]])
    Wx, mask, losses = P.sparsegpt(W, H, 0.5, percdamp=0.0, variant="exact")
    assert mask.tolist() == [[True, False]]
    close(Wx, [[0.0, 1.5]], 1e-5)
    close(losses, [0.75], 1e-5)
    Wr, mask_r, _ = P.sparsegpt(W, H, 0.5, percdamp=0.0, variant="ref")
    assert mask_r.tolist() == [[True, True]] and Wr.abs().sum().item() == 0.0
    return {"U": U.tolist(), "w1_after": 1.5, "loss": 0.75, "ref_prunes_both": True}


def check_f():
    """(f) TransAct head selection."""
    s = torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 4, 2, 2, 2, 2])
    close(TA.head_scores(s, 4), [3.5, 11.0, 7.0])
    cfg = L.Config(dim=12, n_layers=1, n_heads=3, n_kv_heads=3, head_dim=4, ffn_dim=4, vocab=4,
                   eps=1e-5, rope_theta=1e4, rope_style="half", max_pos=4)
    sel = TA.select(cfg, s, torch.tensor([3.0, 1, 2, 0]), 1 / 3, 0.5, "mha")
    assert sel["heads"] == [1, 2] and sel["q_channels"] == list(range(4, 12)), sel
    assert sel["mlp"] == [0, 2]
    a = torch.tensor([[3.0], [4.0]])
    close(a.pow(2).sum(0).sqrt(), [5.0])
    return {"H": [3.5, 11.0, 7.0], "kept_heads": [1, 2], "channels": list(range(4, 12))}


def check_g():
    """(g) TransAct schedule 4096 -> 768 (heads of 128), MLP 11008 -> 1536, 8 shots."""
    mha = TA.schedule(4096, 768, 8, 128)
    assert mha == [3712, 3328, 2944, 2560, 2176, 1792, 1280, 768], mha
    mlp = TA.schedule(11008, 1536, 8)
    assert mlp == [11008 - 1184 * t for t in range(1, 9)], mlp
    assert TA.schedule(4096, 2048, 8, 128) == [h * 128 for h in (30, 28, 26, 24, 22, 20, 18, 16)]
    return {"mha": mha, "mlp": mlp}


# ------------------------------------------------------------------------------------------------
# Internal consistency checks


def tiny_model(seed=0, style="half", n_heads=4, n_kv=2, hd=8, dim=24, ffn=40, n_layers=2, vocab=50):
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g) * 0.3
    cfg = L.Config(dim=dim, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv, head_dim=hd, ffn_dim=ffn,
                   vocab=vocab, eps=1e-5, rope_theta=10000.0, rope_style=style, max_pos=64)
    layers = [{"attn_norm": 1 + rnd(dim), "q": rnd(n_heads * hd, dim), "k": rnd(n_kv * hd, dim),
               "v": rnd(n_kv * hd, dim), "o": rnd(dim, n_heads * hd), "ffn_norm": 1 + rnd(dim),
               "gate": rnd(ffn, dim), "up": rnd(ffn, dim), "down": rnd(dim, ffn)} for _ in range(n_layers)]
    cos, sin = L.rope_tables(hd, 10000.0, 64)
    return L.Model(cfg, rnd(vocab, dim) * 3, layers, 1 + rnd(dim), rnd(vocab, dim), cos, sin)


def check_layouts():
    """The interleaved model and its HF-layout permutation compute the same logits."""
    m = tiny_model(style="interleaved")
    ids = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(1))
    d = (L.logits(m, ids) - L.logits(L.to_half_layout(m), ids)).abs().max().item()
    assert d < 1e-5, d
    return {"max_abs_diff": d}


def check_per_sequence_grads():
    """Batched per-sequence gradients == a literal loop with autograd on the weights."""
    m = tiny_model(seed=2)
    dl = m.layers[0]
    sl = {k: v.clone() for k, v in dl.items()}
    for k in L.LINEARS:
        sl[k] = sl[k].masked_fill(P.magnitude_mask(sl[k], 0.5, "exact"), 0.0)
    X = torch.randn(3, 10, 24, generator=torch.Generator().manual_seed(3))
    fast_a = P.attn_grad_sq(dl, sl, X, m, chunk=2)
    fast_m = P.mlp_grad_sq(dl, sl, X, m, chunk=2)
    slow = {k: torch.zeros_like(dl[k]) for k in L.LINEARS}
    for s in range(3):
        x = X[s:s + 1]
        w = {k: dl[k].clone().requires_grad_() for k in L.LINEARS}
        wl = dict(dl, **w)
        h = L.rmsnorm(x, sl["attn_norm"], 1e-5)
        loss = (L.attention(sl, h, m).detach() - L.attention(wl, h, m)).pow(2).mean()
        for k, gr in zip(L.ATTN_LINEARS, torch.autograd.grad(loss, [w[k] for k in L.ATTN_LINEARS])):
            slow[k] += gr ** 2 / 3
        x1 = x + L.attention(sl, h, m).detach()
        u = L.rmsnorm(x1, sl["ffn_norm"], 1e-5)
        loss = (L.mlp(sl, u).detach() - L.mlp(wl, u)).pow(2).mean()
        for k, gr in zip(L.MLP_LINEARS, torch.autograd.grad(loss, [w[k] for k in L.MLP_LINEARS])):
            slow[k] += gr ** 2 / 3
    worst = 0.0
    for k in L.LINEARS:
        fast = fast_a[k] if k in L.ATTN_LINEARS else fast_m[k]
        rel = ((fast - slow[k]).abs().max() / slow[k].abs().max()).item()
        worst = max(worst, rel)
    assert worst < 1e-4, worst
    return {"max_rel_diff": worst}


def check_sparsegpt_lazy():
    """N:M SparseGPT: lazy 128-column batches give the same result as 4-column blocks."""
    g = torch.Generator().manual_seed(4)
    W = torch.randn(8, 256, generator=g)
    X = torch.randn(600, 256, generator=g)
    H = 2 * X.T @ X / 4
    a = P.sparsegpt(W, H, 0.5, nm=(2, 4), blocksize=128)
    b = P.sparsegpt(W, H, 0.5, nm=(2, 4), blocksize=4)
    assert torch.equal(a[1], b[1])
    d = (a[0] - b[0]).abs().max().item()
    assert d < 1e-4, d
    assert int(a[1].reshape(8, 64, 4).sum(-1).min()) == 2 and int(a[1].reshape(8, 64, 4).sum(-1).max()) == 2
    ref = P.sparsegpt(W, H, 0.5)[1]
    exact = P.sparsegpt(W, H, 0.5, variant="exact")[1]
    assert int(ref.sum()) == 2 * (512 + 1) and int(exact.sum()) == 2 * 512  # two 128-col blocks
    return {"max_abs_diff": d}


def check_rebuild_invariants():
    """Exact-swap rule keeps counts per group; N:M keeps N zeros per group; tau 0 is a no-op."""
    g = torch.Generator().manual_seed(5)
    S = torch.rand(16, 64, generator=g)
    M = P.nm_lowest(torch.rand(16, 64, generator=g), 2, 4)
    for gran_rows in (S,):
        new, k = P.rebuild_groups(gran_rows, M, 0.5, "exact")
        assert torch.equal(new.sum(1), M.sum(1)) and int((new != M).sum()) == 2 * int(k.sum())
        assert int(k.sum()) > 0
        new_ref, _ = P.rebuild_groups(gran_rows, M, 0.5, "ref")
        assert torch.equal(new_ref, new)  # no ties in random scores
        assert torch.equal(P.rebuild_groups(gran_rows, M, 0.0, "ref")[0], M)
    for rule in ("ref", "exact"):
        new, k = P.rebuild_nm(S, M, 1.0, 4, rule)
        assert int(new.reshape(16, 16, 4).sum(-1).min()) == 2 and int(new.reshape(16, 16, 4).sum(-1).max()) == 2
        assert int(k.sum()) > 0 and not torch.equal(new, M)
    blk, _ = P.rebuild({"a": S[:8], "b": S[8:]}, {"a": M[:8], "b": M[8:]}, 0.5, "block")
    assert int(blk["a"].sum() + blk["b"].sum()) == int(M.sum())
    return {"ok": True}


def check_safetensors(tmpdir):
    path = os.path.join(tmpdir, "selftest_roundtrip.safetensors")
    t = {"a": torch.arange(6, dtype=torch.float32).view(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64),
         "c": torch.tensor([0.5], dtype=torch.float16), "m": torch.tensor([255, 1], dtype=torch.uint8)}
    refio.write_safetensors(path, t, {"k": "v"})
    back, meta = refio.read_safetensors(path)
    os.remove(path)
    assert meta == {"k": "v"} and all(torch.equal(back[k], t[k]) for k in t)
    mask = torch.rand(5, 7) > 0.5
    assert torch.equal(refio.unpack_mask(refio.pack_mask(mask), (5, 7)), mask)
    return {"ok": True}


CHECKS = [("9.2a_wanda_magnitude", check_a), ("9.2b_barber_score", check_b),
          ("9.2c_find_threshold", check_c), ("9.2d_barber_nm", check_d),
          ("9.2e_sparsegpt_obs", check_e), ("9.2f_transact_heads", check_f),
          ("9.2g_transact_schedule", check_g), ("rope_layouts", check_layouts),
          ("per_sequence_grads", check_per_sequence_grads), ("sparsegpt_lazy_batch", check_sparsegpt_lazy),
          ("barber_rebuild_invariants", check_rebuild_invariants)]


def run(args):
    torch.manual_seed(0)
    results = {}
    for name, fn in CHECKS:
        results[name] = fn()
        print(f"  selftest {name}: OK")
    os.makedirs(args.out, exist_ok=True)
    results["safetensors_roundtrip"] = check_safetensors(args.out)
    print("  selftest safetensors_roundtrip: OK")
    refio.write_json(os.path.join(args.out, "selftest.json"), results)
    return {"checks": len(results)}


if __name__ == "__main__":
    run(refio.base_parser(__doc__).parse_args())
