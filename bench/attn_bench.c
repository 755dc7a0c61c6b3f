/* attn_bench.c: the tiled attention kernels (src/ops/attention.c) in GFLOP/s next to the
 * machine's sgemm in the same run, at SmolLM2-135M's attention shape (H=9, KV=3, hd=64)
 * or the one given.
 *   attn_bench [--T 512,2048,4096] [--H 9] [--KV 3] [--hd 64] [--threads N] [--reps 3]
 * FLOPs counted as the causal work of the math, not of the implementation:
 *   forward  2 matmuls (QK^T, PV)             = 4 * H * hd * T(T+1)/2
 *   backward 5 matmuls (S, dP, dV, dK, dQ)     = 10 * H * hd * T(T+1)/2 (FlashAttention-2's count;
 *   cpt recomputes S and dP in both passes, 7 matmuls, so 100% is out of reach by design)
 * "x sgemm" is the kernel's rate divided by sgemm's on a 1024^3 product with the same
 * threads: the share of the BLAS speed the tiles keep. Best of --reps runs each.
 * The PyTorch side of the comparison is bench/attn_peer.py (SDPA, same shapes).
 * Each T runs the fp32 kernels and, where the CPU has AVX512-BF16, the bf16 ones
 * (src/ops/attention_bf16.c, precision: bf16) in the same run; "x sgemm" stays against
 * fp32 sgemm, and "bf16/fp32" is the bf16 row's speed-up over the fp32 row. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/common.h"
#include "cpt/ops.h"

static void fill(float *x, size_t n, uint64_t *s) {
    for (size_t i = 0; i < n; i++) {
        *s = *s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(*s >> 40) / (double)(1ull << 24) - 0.5);
    }
}

static double sgemm_rate(int threads) {
    int n = 1024;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    uint64_t s = 1;
    fill(a, (size_t)n * n, &s), fill(b, (size_t)n * n, &s);
    omp_set_num_threads(threads);
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = cpt_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double t = cpt_now() - t0;
        if (t < best) best = t;
    }
    free(a), free(b), free(c);
    return 2.0 * n * n * n / best / 1e9;
}

int main(int argc, char **argv) {
    int Ts[16] = {512, 2048, 4096}, nT = 3, H = 9, KV = 3, hd = 64, threads = omp_get_max_threads(), reps = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--T")) {
            nT = 0;
            for (char *p = argv[i + 1]; *p && nT < 16; p++) {
                Ts[nT++] = (int)strtol(p, &p, 10);
                if (!*p) break;
            }
        } else if (!strcmp(argv[i], "--H")) H = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--KV")) KV = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--hd")) hd = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "attn_bench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    double sg = sgemm_rate(threads);
    printf("threads %d  H %d KV %d hd %d  sgemm 1024^3: %.1f GFLOP/s\n", threads, H, KV, hd, sg);
    int has16 = cpt_cpu_bf16_isa() >= CPT_BF16_ISA_AVX512_BF16;
    printf("bf16 kernels: %s\n", has16 ? "avx512-bf16" : "none on this CPU (fp32 rows only)");
    printf("%6s %5s  %10s %8s %8s  %10s %8s %8s  %s\n", "T", "prec", "fwd ms", "GFLOP/s", "x sgemm", "bwd ms", "GFLOP/s", "x sgemm",
           "bf16/fp32 fwd, bwd");
    for (int ti = 0; ti < nT; ti++) {
        int T = Ts[ti];
        size_t nq = (size_t)T * H * hd, nk = (size_t)T * KV * hd;
        float *q = malloc(4 * nq), *k = malloc(4 * nk), *v = malloc(4 * nk), *o = malloc(4 * nq), *lse = malloc(4 * (size_t)H * T);
        float *dout = malloc(4 * nq), *dq = malloc(4 * nq), *dk = malloc(4 * nk), *dv = malloc(4 * nk);
        uint64_t s = 7;
        fill(q, nq, &s), fill(k, nk, &s), fill(v, nk, &s), fill(dout, nq, &s);
        size_t wsb = cpt_attn_workspace_bytes_bf16(1, T, T, H, KV, hd, threads);
        void *ws = malloc(wsb);
        float scale = 1.0f / sqrtf((float)hd);
        double f32f = 0, f32b = 0;
        for (int prec = 0; prec <= has16; prec++) {
            double bf = 1e30, bb = 1e30;
            for (int r = 0; r < reps; r++) {
                double t0 = cpt_now();
                (prec ? cpt_attn_fwd_bf16 : cpt_attn_fwd)(o, lse, q, k, v, NULL, NULL, 1, T, T, 0, H, KV, hd, scale, ws, wsb);
                double t1 = cpt_now();
                (prec ? cpt_attn_bwd_bf16 : cpt_attn_bwd)(dq, dk, dv, dout, o, lse, q, k, v, NULL, NULL, 1, T, T, 0, H, KV, hd, scale,
                                                          ws, wsb);
                double t2 = cpt_now();
                if (t1 - t0 < bf) bf = t1 - t0;
                if (t2 - t1 < bb) bb = t2 - t1;
            }
            double causal = (double)H * hd * T * (T + 1) / 2.0;
            double gf = 4 * causal / bf / 1e9, gb = 10 * causal / bb / 1e9;
            if (!prec) f32f = bf, f32b = bb;
            printf("%6d %5s  %10.2f %8.1f %8.2f  %10.2f %8.1f %8.2f", T, prec ? "bf16" : "fp32", bf * 1e3, gf, gf / sg, bb * 1e3, gb,
                   gb / sg);
            if (prec) printf("  %.2fx, %.2fx", f32f / bf, f32b / bb);
            printf("\n");
        }
        free(q), free(k), free(v), free(o), free(lse), free(dout), free(dq), free(dk), free(dv), free(ws);
    }
    return 0;
}
