"""Where a LLaMA-2-7B-shaped decoder layer's time goes on the GPU, op by op.

Replays, in PyTorch, the op sequence of one layer of the engine's Wanda job (core/engine/
llama_model.cc: the statistics forward with its column norms, then the recompute forward) over
128 x 2048 tokens in batches of 16 sequences, fp16, and prints the CUDA kernel times from
torch.profiler next to the achievable GEMM throughput at the same shapes. Used to decide where
the 7B benchmark's time can be won; it measures, it does not check anything.

  python3 bench/gpu/profile_layer.py [--json OUT.json]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

H, I, HEADS, D, T, N, B = 4096, 11008, 32, 128, 2048, 128, 16
EPS = 1e-5


def rms_norm(x, w):
    scale = torch.linalg.vector_norm(x, 2, dim=-1, keepdim=True, dtype=torch.float32)
    scale = torch.rsqrt(scale.square_().div_(x.shape[-1]).add_(EPS))
    y = torch.empty_like(x)
    torch.mul(x, scale, out=y)
    return y.mul_(w)


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    out = x * cos
    out[..., :half].addcmul_(x[..., half:], sin[..., :half], value=-1)
    out[..., half:].addcmul_(x[..., :half], sin[..., half:])
    return out


def layer(w, x, cos, sin, stats=None, skip_down=False):
    b = x.shape[0]
    xn = rms_norm(x, w["in"])
    if stats is not None:
        stats[0] += torch.linalg.vector_norm(xn.reshape(-1, H), 2, dim=0, dtype=torch.float32).square_()
    q = F.linear(xn, w["q"]).view(b, T, HEADS, D).transpose(1, 2)
    k = F.linear(xn, w["k"]).view(b, T, HEADS, D).transpose(1, 2)
    v = F.linear(xn, w["v"]).view(b, T, HEADS, D).transpose(1, 2)
    q, k = rope(q, cos, sin), rope(k, cos, sin)
    ctx = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    ctx = ctx.transpose(1, 2).reshape(b, T, H)
    if stats is not None:
        stats[1] += torch.linalg.vector_norm(ctx.reshape(-1, H), 2, dim=0, dtype=torch.float32).square_()
    h = x + F.linear(ctx, w["o"])
    hn = rms_norm(h, w["post"])
    if stats is not None:
        stats[2] += torch.linalg.vector_norm(hn.reshape(-1, H), 2, dim=0, dtype=torch.float32).square_()
    act = F.silu(F.linear(hn, w["gate"])) * F.linear(hn, w["up"])
    if stats is not None:
        stats[3] += torch.linalg.vector_norm(act.reshape(-1, I), 2, dim=0, dtype=torch.float32).square_()
    if skip_down:
        return None
    return h + F.linear(act, w["down"])


def timed(fn, reps=3):
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    dev, dt = "cuda", torch.float16
    torch.manual_seed(0)
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "o": (H, H), "gate": (I, H), "up": (I, H),
              "down": (H, I)}
    w = {n: torch.randn(s, device=dev, dtype=dt) * 0.02 for n, s in shapes.items()}
    w["in"] = torch.ones(H, device=dev, dtype=dt)
    w["post"] = torch.ones(H, device=dev, dtype=dt)
    inps = torch.randn(N, T, H, device=dev, dtype=dt)
    outs = torch.empty_like(inps)
    inv = 1.0 / (10000 ** (torch.arange(0, D, 2, device=dev).float() / D))
    f = torch.outer(torch.arange(T, device=dev).float(), inv)
    emb = torch.cat([f, f], -1)
    cos, sin = emb.cos().to(dt), emb.sin().to(dt)
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}

    def stats_pass():
        stats = [torch.zeros(H, device=dev), torch.zeros(H, device=dev),
                 torch.zeros(H, device=dev), torch.zeros(I, device=dev)]
        for b0 in range(0, N, B):
            layer(w, inps[b0:b0 + B], cos, sin, stats, skip_down=True)

    def recompute_pass():
        for b0 in range(0, N, B):
            outs[b0:b0 + B].copy_(layer(w, inps[b0:b0 + B], cos, sin))

    with torch.inference_mode():
        out["stats_pass_s"] = timed(stats_pass)
        out["recompute_pass_s"] = timed(recompute_pass)
        gemm = {}
        m = B * T
        for name, (o, i) in shapes.items():
            x = torch.randn(m, i, device=dev, dtype=dt)
            s = timed(lambda: F.linear(x, w[name]), reps=10)
            gemm[name] = {"seconds": s, "tflops": 2 * m * o * i / s / 1e12}
        out["gemm_batch16"] = gemm
        q = torch.randn(B, HEADS, T, D, device=dev, dtype=dt)
        s = timed(lambda: F.scaled_dot_product_attention(q, q, q, is_causal=True), reps=10)
        out["sdpa_batch16"] = {"seconds": s, "tflops": 2 * B * HEADS * T * T * D / s / 1e12}
        from torch.profiler import profile, ProfilerActivity
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            stats_pass()
            recompute_pass()
            torch.cuda.synchronize()
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70)
        print(table)
        out["kernels"] = [{"name": e.key[:120], "cuda_s": e.device_time_total / 1e6, "calls": e.count}
                          for e in sorted(prof.key_averages(), key=lambda e: -e.device_time_total)[:25]]
    print(json.dumps({k: v for k, v in out.items() if k != "kernels"}, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
