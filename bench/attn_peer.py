#!/usr/bin/env python3
"""attn_peer.py: the PyTorch side of bench/attn_bench.c: causal GQA attention forward and
backward through torch.nn.functional.scaled_dot_product_attention on CPU (fp32, and bf16 with
--dtype bf16), same shapes and the same FLOP count as attn_bench.c, best of --reps.
Usage: python3 bench/attn_peer.py [--T 512,2048,4096] [--H 9] [--KV 3] [--hd 64] [--threads 2]
Run it right after attn_bench on the same machine and compare the GFLOP/s columns."""
import argparse
import time

import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--T", default="512,2048,4096")
ap.add_argument("--H", type=int, default=9)
ap.add_argument("--KV", type=int, default=3)
ap.add_argument("--hd", type=int, default=64)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
a = ap.parse_args()
torch.set_num_threads(a.threads)
dt = torch.float32 if a.dtype == "fp32" else torch.bfloat16
print(f"torch {torch.__version__} SDPA {a.dtype} threads {a.threads} H {a.H} KV {a.KV} hd {a.hd}")
print(f"{'T':>6}  {'fwd ms':>10} {'GFLOP/s':>8}  {'bwd ms':>10} {'GFLOP/s':>8}")
for T in [int(t) for t in a.T.split(",")]:
    g = torch.Generator().manual_seed(7)
    q = (torch.rand(1, a.H, T, a.hd, generator=g) - 0.5).to(dt).requires_grad_()
    k = (torch.rand(1, a.KV, T, a.hd, generator=g) - 0.5).to(dt).requires_grad_()
    v = (torch.rand(1, a.KV, T, a.hd, generator=g) - 0.5).to(dt).requires_grad_()
    do = (torch.rand(1, a.H, T, a.hd, generator=g) - 0.5).to(dt)
    bf = bb = float("inf")
    for _ in range(a.reps):
        q.grad = k.grad = v.grad = None
        t0 = time.perf_counter()
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        t1 = time.perf_counter()
        o.backward(do)
        t2 = time.perf_counter()
        bf, bb = min(bf, t1 - t0), min(bb, t2 - t1)
    causal = a.H * a.hd * T * (T + 1) / 2
    print(f"{T:>6}  {bf * 1e3:>10.2f} {4 * causal / bf / 1e9:>8.1f}  {bb * 1e3:>10.2f} {10 * causal / bb / 1e9:>8.1f}")
