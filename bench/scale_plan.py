#!/usr/bin/env python3
"""scale_plan.py: data-parallel CPT on paper, for the step time and the collective volume
of the SmolLM2-135M, Llama-3.2-1B and Llama-3.1-8B shapes at 8 to 1024 GPUs, and where
ZeRO-1, ZeRO-2/3, tensor or context parallelism become necessary (issue 12).

Nothing here is measured on these machines (no GPU is lent); every input is written down
below with where it comes from, so the table can be redone with other numbers:

    python3 bench/scale_plan.py                      # Markdown tables on stdout
    python3 bench/scale_plan.py --mfu 0.35 --seq 16384 --global-tokens 8e6 --grad-bytes 4

Model of one optimizer step (global batch G tokens, N GPUs, sequence length T):
  compute   t_c = F * G / (N * peak * mfu), F = training FLOPs per token
            F = 6 * P_matmul + 6 * L * h_attn * T  (forward+backward, causal attention
            counts half of the 12*L*h*T of full attention; recomputation not counted)
  gradients NCCL ring: all-reduce moves 2(N-1)/N * S bytes per GPU, reduce-scatter and
            all-gather (N-1)/N * S each (nccl-tests' PERFORMANCE.md defines bus bandwidth
            so that t = factor * S / busbw); ZeRO-1 = reduce-scatter + all-gather, the same
            volume as one all-reduce. Latency: ring 2(N-1) * alpha, tree 2 log2(N) * alpha;
            NCCL picks per call; we take min(ring, tree) per bucket.
  overlap   buckets of the backward overlap with the rest of it: the exposed time is
            max(0, t_comm - overlap * t_backward), t_backward = 2/3 t_c.
  memory    mixed-precision AdamW as in the ZeRO paper (Rajbhandari et al. 2020, sec. 3):
            16 bytes/param = bf16 params 2 + bf16 grads 2 + fp32 master 4 + m 4 + v 4;
            ZeRO-1 shards the 12 optimizer bytes, ZeRO-2 also the grads, ZeRO-3 also the
            params. Activations with full recomputation: the bf16 residual stream entering
            each layer (2*h bytes per token per layer) plus one layer's working set,
            ~34*h bytes per token with flash attention (Korthikanti et al. 2022, eq. 1
            without the 5*a*s/h term that flash attention removes).
"""
import argparse
import math

# ---- inputs (cited) ----
HW = {
    # NVIDIA H100 SXM5 datasheet: 989.4 TFLOP/s dense BF16 (1979 with sparsity).
    "peak_bf16": 989.4e12,
    # 80 GB HBM3 per GPU; keep 10% for the CUDA context, NCCL buffers and fragmentation.
    "mem_bytes": 80e9 * 0.90,
    # NVLink 4: 900 GB/s per GPU (both directions); nccl-tests all_reduce_perf on 8x H100
    # SXM reports ~360-480 GB/s bus bandwidth (NVLS at the top end). We take 360.
    "busbw_nvlink": 360e9,
    # 400 Gb/s NDR InfiniBand, one ConnectX-7 per GPU: 50 GB/s per direction; NCCL's
    # inter-node rings reach ~40-45 GB/s bus bandwidth per GPU. We take 40.
    "busbw_ib": 40e9,
    "gpus_per_node": 8,
    # per-hop latency of a NCCL step: ~5 us inside a node, ~10 us across nodes (typical).
    "alpha_nvlink": 5e-6,
    "alpha_ib": 10e-6,
}

# Shapes from the models' config.json (Hugging Face hub cards).
MODELS = {
    "SmolLM2-135M": dict(h=576, L=30, heads=9, kv=3, ffn=1536, V=49152, tied=True),
    "Llama-3.2-1B": dict(h=2048, L=16, heads=32, kv=8, ffn=8192, V=128256, tied=True),
    "Llama-3.1-8B": dict(h=4096, L=32, heads=32, kv=8, ffn=14336, V=128256, tied=False),
}


def params(m):
    hd = m["h"] // m["heads"]
    attn = m["h"] * hd * (m["heads"] * 2 + m["kv"] * 2)  # q, o and k, v
    mlp = 3 * m["h"] * m["ffn"]
    norms = 2 * m["h"]
    emb = m["V"] * m["h"]
    total = m["L"] * (attn + mlp + norms) + m["h"] + emb * (1 if m["tied"] else 2)
    matmul = m["L"] * (attn + mlp) + emb  # the LM head is a matmul, the lookup is not
    return total, matmul


def flops_per_token(m, T):
    _, pm = params(m)
    return 6 * pm + 6 * m["L"] * m["h"] * T


def coll_time(S, n, factor, busbw, alpha, buckets):
    """Ring/tree time of a collective moving `factor` * (n-1)/n * S bytes per GPU."""
    if n <= 1:
        return 0.0
    bw = factor * (n - 1) / n * S / busbw
    # NCCL picks the algorithm per call; the bandwidth term is the same for ring and
    # (double binary) tree, the latency term is what differs: take the smaller one.
    ring_lat = 2 * (n - 1) * alpha
    tree_lat = 2 * math.log2(n) * alpha
    return bw + min(ring_lat, tree_lat) * buckets


def plan(model, m, n, a):
    total, _ = params(m)
    T, G = a.seq, a.global_tokens
    tok_gpu = G / n
    F = flops_per_token(m, T)
    t_c = F * tok_gpu / (HW["peak_bf16"] * a.mfu)
    inter = n > HW["gpus_per_node"]
    busbw = HW["busbw_ib"] if inter else HW["busbw_nvlink"]
    alpha = HW["alpha_ib"] if inter else HW["alpha_nvlink"]
    S = total * a.grad_bytes
    buckets = max(1, math.ceil(S / (a.bucket_mb * 1e6)))
    t_ar = coll_time(S, n, 2.0, busbw, alpha, buckets)
    exposed = max(0.0, t_ar - a.overlap * (2.0 / 3.0) * t_c)
    # memory per GPU for each ZeRO stage (bytes)
    opt = 12 * total
    mem = {
        "DDP": 2 * total + a.grad_bytes * total + opt,
        "Z1": 2 * total + a.grad_bytes * total + opt / n,
        "Z2": 2 * total + (a.grad_bytes * total + opt) / n,
        "Z3": (2 * total + a.grad_bytes * total + opt) / n,
    }
    seqs_gpu = tok_gpu / T
    act = (2 * m["h"] * m["L"] + 34 * m["h"]) * min(tok_gpu, T * max(1.0, math.floor(seqs_gpu)))
    act_one = (2 * m["h"] * m["L"] + 34 * m["h"]) * T  # at least one sequence per micro-batch
    need = "DDP"
    for k in ("DDP", "Z1", "Z2", "Z3"):
        need = k
        if mem[k] + act_one <= HW["mem_bytes"]:
            break
    else:
        need = "TP/PP"
    notes = []
    if seqs_gpu < 1:
        notes.append(f"<1 sequence/GPU ({seqs_gpu:.2f}): needs CP or TP x{2 ** math.ceil(math.log2(1 / seqs_gpu))}")
    if mem["Z3"] + act_one > HW["mem_bytes"]:
        notes.append("does not fit even with ZeRO-3: TP/PP")
    if exposed > 0.25 * t_c:
        notes.append("communication-bound: larger buckets / ZeRO overlap / fewer replicas + TP")
    step = t_c + exposed
    return dict(model=model, n=n, params=total, F=F, t_c=t_c, t_ar=t_ar, exposed=exposed, step=step,
                mfu_eff=a.mfu * t_c / step, need=need, mem=mem, act=act, notes="; ".join(notes))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seq", type=int, default=8192, help="sequence length T (tokens)")
    ap.add_argument("--global-tokens", type=float, default=4e6,
                    help="tokens per optimizer step (Llama 3 pretraining used 4M-16M)")
    ap.add_argument("--mfu", type=float, default=0.40,
                    help="model FLOPs utilisation of the compute (~0.38-0.45 reported for Llama on H100)")
    ap.add_argument("--grad-bytes", type=int, default=2, choices=(2, 4), help="bytes per gradient element")
    ap.add_argument("--bucket-mb", type=float, default=25.0, help="gradient bucket size (PyTorch DDP default 25 MB)")
    ap.add_argument("--overlap", type=float, default=0.8, help="fraction of the backward the buckets overlap")
    ap.add_argument("--gpus", default="8,16,32,64,128,256,512,1024")
    a = ap.parse_args()
    gpus = [int(x) for x in a.gpus.split(",")]
    print(f"# Data-parallel CPT on paper: T={a.seq}, {a.global_tokens / 1e6:.1f}M tokens/step, MFU {a.mfu:.2f}, "
          f"bf16 H100 {HW['peak_bf16'] / 1e12:.0f} TFLOP/s, busbw NVLink {HW['busbw_nvlink'] / 1e9:.0f} GB/s, "
          f"IB {HW['busbw_ib'] / 1e9:.0f} GB/s, grads {a.grad_bytes} B\n")
    for name, m in MODELS.items():
        total, _ = params(m)
        print(f"## {name}: {total / 1e9:.3f} B params, {flops_per_token(m, a.seq) / 1e9:.2f} GFLOP/token\n")
        print("| GPUs | compute s | all-reduce s | exposed s | step s | effective MFU | smallest that fits | "
              "DDP GB | ZeRO-1 GB | ZeRO-2 GB | ZeRO-3 GB | notes |")
        print("|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|")
        for n in gpus:
            p = plan(name, m, n, a)
            g = {k: v / 1e9 for k, v in p["mem"].items()}
            print(f"| {n} | {p['t_c']:.3f} | {p['t_ar']:.4f} | {p['exposed']:.4f} | {p['step']:.3f} | "
                  f"{p['mfu_eff']:.3f} | {p['need']} | {g['DDP']:.1f} | {g['Z1']:.1f} | {g['Z2']:.1f} | "
                  f"{g['Z3']:.2f} | {p['notes']} |")
        print()
    print("Reading: ZeRO-1 is needed where the DDP column (plus activations) passes "
          f"{HW['mem_bytes'] / 1e9:.0f} GB (8B: 16 bytes/param = 128 GB); ZeRO-2/3 only where ZeRO-1 still "
          "does not fit; tensor or context parallelism once a GPU's share of the global batch is under one "
          "sequence, or when the exposed all-reduce eats the step at a few hundred GPUs over InfiniBand.")


if __name__ == "__main__":
    main()
