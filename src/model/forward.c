/* forward.c: the training / scoring pass of the decoder: forward, fused LM head +
 * cross-entropy, and backward, all through the backend table (cpt/backend.h).
 * Activations come from one arena sized up front from (config, B, T); in training
 * mode every layer keeps its own activations for the backward, in inference mode one
 * layer's worth is reused. Formulas: methods.md 2.1 (forward) and 2.2 (backward). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/backend.h"
#include "cpt/cp.h"
#include "cpt/lora.h"
#include "cpt/model.h"
#include "model/model-impl.h"

struct cpt_acts {
    int B, T, training, L, recompute;
    size_t bytes;
    const cpt_backend *be; /* the arena is backend memory (be->alloc), freed with be->free */
    float *arena;
    /* Per-layer saved activations (layer stride is 0 in inference mode, and for what
     * the recompute mode rebuilds in the backward: then one layer's worth is reused). */
    float *x;                  /* [L+1][N,D] residual stream entering each layer; x[L] enters the final norm */
    float *xmid;               /* [L][N,D] after the attention residual */
    float *a1, *a2;            /* [L][N,D] outputs of the two norms */
    float *rstd1, *rstd2;      /* [L][N] */
    float *q, *k, *v;          /* [L][N,qd], [L][N,kd], [L][N,kd]; q,k after (norm and) RoPE */
    float *qraw, *kraw;        /* [L][N,qd], [L][N,kd] before the q/k norm (Qwen3) */
    float *qrstd, *krstd;      /* [L][N*H], [L][N*KV] */
    float *lse;                /* [L][B,H,T] attention row log-sum-exp */
    float *att;                /* [L][N,qd] attention output (o_proj input) */
    float *g, *u, *h;          /* [L][N,I] gate, up, silu(gate)*up */
    float *rstdf, *hf;         /* [N], [N,D] final norm */
    /* Scratch (one copy). */
    float *tmp;                /* [N,D] */
    float *dx, *dhf;           /* [N,D] */
    float *dq, *dk, *dv, *datt;/* [N,qd], [N,kd], [N,kd], [N,qd] */
    float *dqn, *dkn;          /* [N,qd], [N,kd] (Qwen3) */
    float *dg, *du, *dh;       /* [N,I] */
    float *attn_ws;            /* attention tile scratch, attn_ws_bytes */
    size_t attn_ws_bytes;
    float *xent_ws;            /* LM head + cross-entropy chunk scratch, xent_ws_bytes */
    size_t xent_ws_bytes;
    float *pos0f;              /* [N] int32 default positions 0..T-1 per row (arena block) */
    int32_t *pos0;
    /* [N] int32 each: the batch's ids, targets, positions and document ids copied into
     * backend memory (copy_to_device) at every step, because the kernels read them there
     * (a device backend cannot read the caller's host arrays). */
    float *ids_f, *tgt_f, *pos_f, *seg_f;
    /* Per-layer strides: sX for the residual stream, sAtt/sP for the attention output
     * and lse, the rest for everything else a layer saves. */
    size_t sX, sD, sQ, sK, sH, sKV, sP, sAtt, sI, sN;
    /* LoRA (when the model had an adapter at creation): lora_t [L][CPT_LORA_NT][N, r]
     * s * x A^T of every adapted linear (kept for the backward; one layer's worth in
     * inference), lora_y [N, max out] the adapter's output, lora_dt [N, r] its backward. */
    int lora_r;
    float *lora_t, *lora_y, *lora_dt;
    size_t sLt;
    /* Precision bf16 (the model had a bf16 weight copy at creation): the linears' inputs and
     * output gradients rounded to bf16, [N, widest] each (arena blocks of uint16). */
    int bf16;
    float *xs16f, *dys16f;
    /* cpt_model_prefill: each layer's post-RoPE keys and values also go to
     * kv_k/kv_v + l * kv_stride (a KV cache); NULL otherwise. */
    float *kv_k, *kv_v;
    size_t kv_stride;
    /* Context parallelism (cpt/cp.h): the rows are this rank's zigzag part of each
     * sequence and attention runs on the ring; NULL otherwise. Not owned. */
    cpt_cp *cp;
    /* Gradient window (cpt_acts_set_grad_window): gw_n > 0 = the gradient buffer of a step
     * holds only the parameter range [gw_off, gw_off + gw_n). */
    size_t gw_off, gw_n;
};

/* The arena plan, shared by cpt_acts_create and cpt_acts_plan_bytes so the planned
 * bytes are exactly what gets allocated. Fills a's strides, and its block pointers
 * when base is not NULL; returns the total floats, or 0 on size overflow. */
static size_t acts_plan(cpt_acts *a, const cpt_backend *be, const cpt_config *c, int B, int T, int training,
                        int recompute, int lora_r, int bf16, float *base) {
    size_t N = (size_t)B * T, D = (size_t)c->hidden_size, I = (size_t)c->intermediate_size;
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim;
    size_t HT = (size_t)B * c->n_heads * T;
    if (!training) recompute = CPT_RECOMPUTE_NONE;
    a->B = B, a->T = T, a->training = training, a->L = c->n_layers, a->recompute = recompute;
    /* Layers kept for the backward: the stream always (training), attention output and
     * lse unless recompute is full, the rest only without recompute. */
    size_t Lx = training ? (size_t)c->n_layers : 1;
    size_t La = training && recompute != CPT_RECOMPUTE_FULL ? (size_t)c->n_layers : 1;
    size_t Lr = training && recompute == CPT_RECOMPUTE_NONE ? (size_t)c->n_layers : 1;
    /* Overflow guard: the biggest block is bounded by (L+1) * N * max(D, qd, I). */
    size_t wid = D > qd ? D : qd;
    wid = wid > I ? wid : I;
    size_t chk;
    if (!cpt_mul_size(N, wid, &chk) || !cpt_mul_size(chk, Lx + 1, &chk) || !cpt_mul_size(chk, 64, &chk)) return 0;
    struct { float **p; size_t n; } plan[48];
    int np = 0;
    /* Each block rounded to 16 floats (64 bytes). */
#define BLK(ptr, cnt) (plan[np].p = &(ptr), plan[np].n = ((cnt) + 15) & ~(size_t)15, np++)
    BLK(a->x, (Lx + 1) * N * D);
    BLK(a->xmid, Lr * N * D);
    BLK(a->a1, Lr * N * D);
    BLK(a->a2, Lr * N * D);
    BLK(a->rstd1, Lr * N);
    BLK(a->rstd2, Lr * N);
    BLK(a->q, Lr * N * qd);
    BLK(a->k, Lr * N * kd);
    BLK(a->v, Lr * N * kd);
    if (c->qk_norm) {
        BLK(a->qraw, Lr * N * qd);
        BLK(a->kraw, Lr * N * kd);
        BLK(a->qrstd, Lr * N * c->n_heads);
        BLK(a->krstd, Lr * N * c->n_kv_heads);
    }
    BLK(a->lse, La * HT);
    /* bf16: the bf16 attention's packed operands too (attn_workspace_bytes_bf16 covers the fp32
     * kernels' need, which context parallelism and the fallback use) */
    a->attn_ws_bytes = bf16 ? be->attn_workspace_bytes_bf16(B, T, T, c->n_heads, c->n_kv_heads, c->head_dim, omp_get_max_threads())
                            : be->attn_workspace_bytes(T, T, c->head_dim, omp_get_max_threads());
    BLK(a->attn_ws, (a->attn_ws_bytes + 3) / 4);
    a->xent_ws_bytes = bf16 ? be->xent_workspace_bytes_bf16((int)N, (int)D, c->vocab_size, omp_get_max_threads())
                            : be->xent_workspace_bytes((int)N, c->vocab_size, omp_get_max_threads());
    BLK(a->xent_ws, (a->xent_ws_bytes + 3) / 4);
    BLK(a->att, La * N * qd);
    BLK(a->g, Lr * N * I);
    BLK(a->u, Lr * N * I);
    BLK(a->h, Lr * N * I);
    BLK(a->rstdf, N);
    BLK(a->hf, N * D);
    BLK(a->tmp, N * D);
    BLK(a->pos0f, N);
    BLK(a->ids_f, N);
    BLK(a->tgt_f, N);
    BLK(a->pos_f, N);
    BLK(a->seg_f, N);
    if (training) {
        BLK(a->dx, N * D);
        BLK(a->dhf, N * D);
        BLK(a->dq, N * qd);
        BLK(a->dk, N * kd);
        BLK(a->dv, N * kd);
        BLK(a->datt, N * qd);
        if (c->qk_norm) {
            BLK(a->dqn, N * qd);
            BLK(a->dkn, N * kd);
        }
        BLK(a->dg, N * I);
        BLK(a->du, N * I);
        BLK(a->dh, N * I);
    }
    if (lora_r > 0) {
        size_t Ll = training ? (size_t)c->n_layers : 1, wo = D > qd ? D : qd;
        wo = wo > I ? wo : I;
        BLK(a->lora_t, Ll * CPT_LORA_NT * N * (size_t)lora_r);
        BLK(a->lora_y, N * wo);
        if (training) BLK(a->lora_dt, N * (size_t)lora_r);
    }
    a->lora_r = lora_r;
    if (bf16) { /* uint16 scratch: N * wid halves, in floats */
        BLK(a->xs16f, (N * wid + 1) / 2);
        if (training) BLK(a->dys16f, (N * wid + 1) / 2);
    }
    a->bf16 = bf16;
#undef BLK
    size_t off = 0;
    for (int i = 0; i < np; i++) {
        *plan[i].p = base ? base + off : NULL;
        off += plan[i].n;
    }
    int sr = Lr > 1, sa = La > 1, sx = training ? 1 : 0;
    a->sX = sx * N * D;
    a->sD = sr * N * D, a->sQ = sr * N * qd, a->sK = sr * N * kd, a->sI = sr * N * I, a->sN = sr * N;
    a->sH = sr * N * c->n_heads, a->sKV = sr * N * c->n_kv_heads;
    a->sAtt = sa * N * qd, a->sP = sa * HT;
    a->sLt = N * (size_t)(lora_r > 0 ? lora_r : 0);
    return off;
}

int cpt_acts_plan_bytes(const cpt_config *c, int B, int T, int training, int recompute, int lora_rank, int bf16, size_t *bytes) {
    *bytes = 0;
    if (B <= 0 || T <= 0 || recompute < 0 || recompute > CPT_RECOMPUTE_SELECTIVE || lora_rank < 0) return CPT_EINVAL;
    cpt_acts a;
    memset(&a, 0, sizeof a);
    size_t total = acts_plan(&a, cpt_backend_default(), c, B, T, training, recompute, lora_rank, bf16, NULL);
    if (!total || !cpt_mul_size(total, sizeof(float), bytes)) return CPT_ENOMEM;
    return CPT_OK;
}

int cpt_acts_create_ex(cpt_acts **out, const cpt_model *m, int B, int T, int training, int recompute,
                       cpt_err *err) {
    *out = NULL;
    const cpt_config *c = &m->cfg;
    if (B <= 0 || T <= 0) return cpt_err_set(err, CPT_EINVAL, "batch size and sequence length must be positive");
    if (recompute < 0 || recompute > CPT_RECOMPUTE_SELECTIVE)
        return cpt_err_set(err, CPT_EINVAL, "unknown recompute mode %d", recompute);
    cpt_acts *a = calloc(1, sizeof *a);
    if (!a) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    a->be = m->be;
    int lora_r = m->lora ? m->lora->cfg.rank : 0;
    size_t total = acts_plan(a, m->be, c, B, T, training, recompute, lora_r, m->lowp != NULL, NULL);
    size_t bytes = 0;
    if (!total || !cpt_mul_size(total, sizeof(float), &bytes) || !(a->arena = m->be->alloc(bytes))) {
        free(a);
        return cpt_err_set(err, CPT_ENOMEM,
                           "out of memory: activations for batch %d x seq %d need %.1f MiB. HINT: set training.recompute: full, lower the micro-batch or the sequence length",
                           B, T, (double)total * 4.0 / 1048576.0);
    }
    a->bytes = bytes;
    /* The backend's allocator zeroes it (first-touched by the threads that use it, on cpu). */
    acts_plan(a, m->be, c, B, T, training, recompute, lora_r, m->lowp != NULL, a->arena);
    a->pos0 = (int32_t *)a->pos0f;
    size_t N = (size_t)B * T;
    int32_t *host = malloc(sizeof(int32_t) * N);
    if (!host) {
        cpt_acts_free(a);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < N; i++) host[i] = (int32_t)(i % (size_t)T);
    m->be->copy_to_device(a->pos0, host, sizeof(int32_t) * N);
    m->be->sync(); /* before the host buffer goes */
    free(host);
    *out = a;
    return CPT_OK;
}

int cpt_acts_create(cpt_acts **out, const cpt_model *m, int B, int T, int training, cpt_err *err) {
    return cpt_acts_create_ex(out, m, B, T, training, CPT_RECOMPUTE_NONE, err);
}

void cpt_acts_free(cpt_acts *a) {
    if (!a) return;
    if (a->arena) a->be->free(a->arena);
    free(a);
}

size_t cpt_acts_bytes(const cpt_acts *a) { return a->bytes; }

void cpt_acts_set_grad_window(cpt_acts *a, size_t off, size_t n) { a->gw_off = off, a->gw_n = n; }

int cpt_acts_set_cp(cpt_acts *a, cpt_cp *cp, cpt_err *err) {
    if (cp && (a->T % 2 || !a->training))
        return cpt_err_set(err, CPT_EINVAL, "context parallelism needs training activations of an even local length (these: %d tokens%s)",
                           a->T, a->training ? "" : ", inference");
    a->cp = cp;
    return CPT_OK;
}

/* LoRA on linear t of layer l (cpt/lora.h): y += s * (x A^T) B^T, keeping s * x A^T
 * in the arena for the backward. No-op when the model has no adapter on it. */
/* The dropout mask seed of linear t in layer l for this step (0: no dropout): training
 * activations, an adapter with dropout and a key the trainer set (lo->drop_key). */
static uint64_t lora_drop_seed(const cpt_lora *lo, const cpt_acts *a, int l, int t) {
    if (!a->training || !lo->drop_key || !(lo->cfg.dropout > 0)) return 0;
    return cpt_mix64(lo->drop_key ^ ((uint64_t)(l * CPT_LORA_NT + t + 1) * 0xD1B54A32D192ED03ull)) | 1u;
}

static void lora_fwd(const cpt_model *m, cpt_acts *a, int l, int t, float *y, const float *x, int N) {
    const cpt_lora *lo = m->lora;
    if (!lo || lo->ta[l * CPT_LORA_NT + t] < 0) return;
    float *st = a->lora_t + ((size_t)(a->training ? l : 0) * CPT_LORA_NT + t) * a->sLt;
    uint64_t ds = lora_drop_seed(lo, a, l, t);
    if (ds) { /* PEFT's lora_dropout on the adapter's input; lora_y holds it until A reads it */
        m->be->dropout(a->lora_y, x, (size_t)N * lo->in[t], (float)lo->cfg.dropout, ds);
        x = a->lora_y;
    }
    cpt_lora_apply(m, l, t, y, x, N, st, a->lora_y);
}

/* Its backward, given dy of the linear's output: dB += dy^T (s x A^T),
 * dt = s * dy B, dA += dt^T x, dx += dt A (dx already holds the base linear's part). */
static void lora_bwd(const cpt_model *m, cpt_acts *a, int l, int t, float *dx, const float *dy, const float *x,
                     int N) {
    const cpt_lora *lo = m->lora;
    if (!lo || lo->ta[l * CPT_LORA_NT + t] < 0) return;
    const cpt_backend *be = m->be;
    const cpt_model *pm = lo->pm;
    int ti = lo->ta[l * CPT_LORA_NT + t], r = lo->cfg.rank, K = lo->in[t], O = lo->out[t];
    const float *st = a->lora_t + ((size_t)l * CPT_LORA_NT + t) * a->sLt;
    const cpt_tensor *TA = &pm->tensors[ti], *TB = &pm->tensors[ti + 1];
    float *gA = lo->grads ? lo->grads + TA->off : NULL, *gB = lo->grads ? lo->grads + TB->off : NULL;
    be->linear_bwd(a->lora_dt, gB, NULL, dy, st, pm->params + TB->off, N, r, O, 0);
    be->scale(a->lora_dt, (size_t)N * r, lo->scale);
    uint64_t ds = lora_drop_seed(lo, a, l, t);
    if (!ds) {
        be->linear_bwd(dx, gA, NULL, a->lora_dt, x, pm->params + TA->off, N, K, r, 1);
        return;
    }
    /* With dropout (mask d, kept entries scaled by 1/(1-p)): dA += dt^T (d . x) with the
     * mask rebuilt from its seed, and dx += d . (dt A). lora_y is free here. */
    const float p = (float)lo->cfg.dropout;
    const size_t nk = (size_t)N * K;
    be->dropout(a->lora_y, x, nk, p, ds);
    be->linear_bwd(NULL, gA, NULL, a->lora_dt, a->lora_y, pm->params + TA->off, N, K, r, 0);
    be->linear_bwd(a->lora_y, NULL, NULL, a->lora_dt, a->lora_y, pm->params + TA->off, N, K, r, 0);
    be->dropout(a->lora_y, a->lora_y, nk, p, ds);
    be->add_inplace(dx, a->lora_y, nk);
}

/* The bf16 copy of weight W (a pointer into m->params) when the model trains in bf16; NULL:
 * use fp32 (fp32 mode, or a weight outside the model's buffer such as a LoRA copy). */
static const uint16_t *lowp_of(const cpt_model *m, const float *W) {
    if (!m->lowp || !W || W < m->params || W >= m->params + m->n_params) return NULL;
    return m->lowp + (W - m->params);
}

void cpt_model_linear_infer(const cpt_model *m, float *y, const float *x, const float *W, const float *b, int N, int K, int O,
                            uint16_t *xs) {
    const uint16_t *Wb = lowp_of(m, W);
    if (Wb) m->be->linear_fwd_bf16(y, x, Wb, b, N, K, O, xs);
    else m->be->linear_fwd(y, x, W, b, N, K, O);
}

/* A decoder linear in the model's precision (cpt_model_set_precision). */
static void lin_fwd(const cpt_model *m, cpt_acts *a, float *y, const float *x, const float *W, const float *b, int N, int K,
                    int O) {
    const uint16_t *Wb = a->bf16 ? lowp_of(m, W) : NULL;
    if (Wb) m->be->linear_fwd_bf16(y, x, Wb, b, N, K, O, (uint16_t *)a->xs16f);
    else m->be->linear_fwd(y, x, W, b, N, K, O);
}

static void lin_bwd(const cpt_model *m, cpt_acts *a, float *dx, float *dW, float *db, const float *dy, const float *x,
                    const float *W, int N, int K, int O, int accum_dx) {
    const uint16_t *Wb = a->bf16 ? lowp_of(m, W) : NULL;
    if (Wb) m->be->linear_bwd_bf16(dx, dW, db, dy, x, Wb, N, K, O, accum_dx, (uint16_t *)a->xs16f, (uint16_t *)a->dys16f);
    else m->be->linear_bwd(dx, dW, db, dy, x, W, N, K, O, accum_dx);
}

/* Layer l's forward. recompute == 0: the pass itself (writes x[l+1]). recompute == 1:
 * rebuild in the backward what layer l's backward reads, from the kept x[l], with the
 * same kernels in the same order (so bitwise the same values): it stops after swiglu
 * (x[l+1] is not needed) and skips the attention kernel when its output is kept. */
static int layer_fwd(const cpt_model *m, cpt_acts *a, const cpt_batch *b, const int32_t *pos, int l,
                     int recompute) {
    const cpt_backend *be = m->be;
    const cpt_config *c = &m->cfg;
    int B = b->B, T = b->T, N = B * T, D = c->hidden_size, I = c->intermediate_size;
    int H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim, qd = H * hd, kd = KV * hd, rot = cpt_config_rot_dim(c);
    float eps = (float)c->rms_eps, scale = 1.0f / sqrtf((float)hd);
    const cpt_layer_view *L = &m->w.layers[l];
    float *x = a->x + l * a->sX, *xn = a->x + (l + 1) * a->sX;
    float *xmid = a->xmid + l * a->sD, *a1 = a->a1 + l * a->sD, *a2 = a->a2 + l * a->sD;
    float *q = a->q + l * a->sQ, *k = a->k + l * a->sK, *v = a->v + l * a->sK;
    float *lse = a->lse + l * a->sP, *att = a->att + l * a->sAtt;
    float *g = a->g + l * a->sI, *u = a->u + l * a->sI, *h = a->h + l * a->sI;
    if (!a->training) xn = a->x; /* inference: the stream is updated in place */
    be->rmsnorm_fwd(a1, a->rstd1 + l * a->sN, x, L->attn_norm, N, D, eps);
    if (c->qk_norm) {
        float *qr = a->qraw + l * a->sQ, *kr = a->kraw + l * a->sK;
        lin_fwd(m, a, qr, a1, L->wq, L->bq, N, D, qd);
        lora_fwd(m, a, l, CPT_LORA_Q, qr, a1, N);
        lin_fwd(m, a, kr, a1, L->wk, L->bk, N, D, kd);
        lora_fwd(m, a, l, CPT_LORA_K, kr, a1, N);
        be->rmsnorm_fwd(q, a->qrstd + l * a->sH, qr, L->q_norm, N * H, hd, eps);
        be->rmsnorm_fwd(k, a->krstd + l * a->sKV, kr, L->k_norm, N * KV, hd, eps);
    } else {
        lin_fwd(m, a, q, a1, L->wq, L->bq, N, D, qd);
        lora_fwd(m, a, l, CPT_LORA_Q, q, a1, N);
        lin_fwd(m, a, k, a1, L->wk, L->bk, N, D, kd);
        lora_fwd(m, a, l, CPT_LORA_K, k, a1, N);
    }
    lin_fwd(m, a, v, a1, L->wv, L->bv, N, D, kd);
    lora_fwd(m, a, l, CPT_LORA_V, v, a1, N);
    be->rope_fwd(q, m->rope_cos, m->rope_sin, pos, N, H, hd, rot);
    be->rope_fwd(k, m->rope_cos, m->rope_sin, pos, N, KV, hd, rot);
    if (a->kv_k) {
        be->copy(a->kv_k + l * a->kv_stride, k, sizeof(float) * (size_t)N * kd);
        be->copy(a->kv_v + l * a->kv_stride, v, sizeof(float) * (size_t)N * kd);
    }
    if (!(recompute && a->recompute == CPT_RECOMPUTE_SELECTIVE) &&
        (a->cp ? cpt_cp_attn_fwd(a->cp, att, lse, q, k, v, b->seg, B, T, H, KV, hd, scale, a->attn_ws, a->attn_ws_bytes)
               : (a->bf16 ? be->attn_fwd_bf16 : be->attn_fwd)(att, lse, q, k, v, b->seg, b->seg, B, T, T, 0, H, KV, hd, scale,
                                                              a->attn_ws, a->attn_ws_bytes)))
        return -1;
    lin_fwd(m, a, a->tmp, att, L->wo, L->bo, N, qd, D);
    lora_fwd(m, a, l, CPT_LORA_O, a->tmp, att, N);
    if (a->training) {
        be->copy(xmid, x, sizeof(float) * (size_t)N * D);
        be->add_inplace(xmid, a->tmp, (size_t)N * D);
    } else {
        be->add_inplace(x, a->tmp, (size_t)N * D);
        xmid = x;
    }
    be->rmsnorm_fwd(a2, a->rstd2 + l * a->sN, xmid, L->mlp_norm, N, D, eps);
    lin_fwd(m, a, g, a2, L->wg, L->bg, N, D, I);
    lora_fwd(m, a, l, CPT_LORA_GATE, g, a2, N);
    lin_fwd(m, a, u, a2, L->wu, L->bu, N, D, I);
    lora_fwd(m, a, l, CPT_LORA_UP, u, a2, N);
    be->swiglu_fwd(h, g, u, (size_t)N * I);
    if (recompute) return 0;
    lin_fwd(m, a, a->tmp, h, L->wd, L->bd, N, I, D);
    lora_fwd(m, a, l, CPT_LORA_DOWN, a->tmp, h, N);
    if (a->training) {
        be->copy(xn, xmid, sizeof(float) * (size_t)N * D);
        be->add_inplace(xn, a->tmp, (size_t)N * D);
    } else {
        be->add_inplace(x, a->tmp, (size_t)N * D);
    }
    return 0;
}

/* A refused attention call: the ring's own error (a communication failure names the
 * rank) or the kernel's refusal. */
static int attn_error(const cpt_acts *a, cpt_err *err, const char *pass, int l, const char *what) {
    if (a->cp) {
        const cpt_err *ce = cpt_cp_error(a->cp);
        return cpt_err_set(err, ce->code ? ce->code : CPT_EINVAL, "layer %d attention %s%s: %s", l, pass, what, ce->msg);
    }
    return cpt_err_set(err, CPT_EINVAL, "attention %s refused its arguments (layer %d%s)", pass, l, what);
}

/* cpt_model_step, plus: losses_out (host, [N]) the per-position losses; last_logits (backend
 * memory, [V]) instead of the loss: the logits of the batch's last row only (prefill). */
static int model_run(cpt_model *m, cpt_acts *a, const cpt_batch *b, float *grads, float grad_scale,
                     const uint8_t *frozen, double *loss_sum, long long *n_valid, float *logits_out,
                     float *losses_out, float *last_logits, cpt_err *err) {
    const cpt_backend *be = m->be;
    const cpt_config *c = &m->cfg;
    int B = b->B, T = b->T, N = B * T, D = c->hidden_size, V = c->vocab_size, I = c->intermediate_size;
    int H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim, qd = H * hd, kd = KV * hd, rot = cpt_config_rot_dim(c);
    float eps = (float)c->rms_eps, scale = 1.0f / sqrtf((float)hd);
    const cpt_lora *lo = m->lora;
    int lora_train = lo && lo->grads;
    int train = grads != NULL || lora_train;
    if (lo && a->lora_r != lo->cfg.rank)
        return cpt_err_set(err, CPT_ESTATE, "the activations were created %s a LoRA adapter of rank %d. HINT: create them after attaching the adapter",
                           a->lora_r ? "for" : "without", a->lora_r ? a->lora_r : lo->cfg.rank);
    if (B > a->B || T > a->T || B * T > a->B * a->T || (B != a->B && T != a->T))
        return cpt_err_set(err, CPT_EINVAL, "batch %dx%d does not fit the activation arena %dx%d", B, T, a->B, a->T);
    if (B != a->B || T != a->T)
        return cpt_err_set(err, CPT_EINVAL, "batch %dx%d differs from the activation arena %dx%d", B, T, a->B, a->T);
    if (train && !a->training) return cpt_err_set(err, CPT_EINVAL, "activations were created for inference only");
    if (a->cp && (a->kv_k || last_logits))
        return cpt_err_set(err, CPT_EUNSUPPORTED, "context-parallel activations are for training and scoring, not prefill");
    if (c->sliding_window > 0 && (long long)T * (a->cp ? cpt_cp_size(a->cp) : 1) > c->sliding_window)
        return cpt_err_set(err, CPT_EUNSUPPORTED, "sequence length %d exceeds the model's sliding_window %lld; sliding-window attention is not implemented. HINT: use a sequence length <= %lld",
                           T, c->sliding_window, c->sliding_window);
    const int32_t *hpos = b->pos;
    int maxp = 0;
    for (int i = 0; i < N; i++) {
        if (b->ids[i] < 0 || b->ids[i] >= V)
            return cpt_err_set(err, CPT_EINVAL, "token id %d at position %d is outside the vocabulary [0, %d)", b->ids[i], i, V);
        if (b->targets && b->targets[i] >= V)
            return cpt_err_set(err, CPT_EINVAL, "target id %d at position %d is outside the vocabulary [0, %d)", b->targets[i], i, V);
        int p = hpos ? hpos[i] : i % T;
        if (p < 0) return cpt_err_set(err, CPT_EINVAL, "negative position at %d", i);
        if (p > maxp) maxp = p;
    }
    /* The kernels read the batch from backend memory (the arena's int blocks). */
    size_t ib = sizeof(int32_t) * (size_t)N;
    cpt_batch dbat = *b;
    be->copy_to_device(a->ids_f, b->ids, ib), dbat.ids = (const int32_t *)a->ids_f;
    if (b->targets) be->copy_to_device(a->tgt_f, b->targets, ib), dbat.targets = (const int32_t *)a->tgt_f;
    if (b->pos) be->copy_to_device(a->pos_f, b->pos, ib), dbat.pos = (const int32_t *)a->pos_f;
    if (b->seg) be->copy_to_device(a->seg_f, b->seg, ib), dbat.seg = (const int32_t *)a->seg_f;
    b = &dbat;
    const int32_t *pos = b->pos ? b->pos : a->pos0;
    int rc = cpt_model_rope_update(m, maxp + 1, err);
    if (rc) return rc;
    const cpt_view *W = &m->w;
    cpt_view G = {0};
    if (grads && (rc = cpt_model_view_masked(m, grads, frozen, a->gw_off, a->gw_n, &G, err))) return rc;
    if (train && !grads && !(G.layers = calloc((size_t)c->n_layers, sizeof(cpt_layer_view))))
        return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    if (lora_train) {
        /* The base tensors the adapter replaces get no gradient; its copies get theirs. */
        if (lo->embed_t >= 0) {
            G.embed = lo->grads + lo->pm->tensors[lo->embed_t].off;
            /* tied: the LM head is the frozen original embedding (PEFT's wrapper copies only embed_tokens) */
            if (c->tie_embeddings) G.lm_head = NULL;
        }
        if (lo->lm_head_t >= 0) G.lm_head = lo->grads + lo->pm->tensors[lo->lm_head_t].off;
    }

    /* ---------------- forward ---------------- */
    be->embed_fwd(a->x, W->embed, b->ids, N, D);
    for (int l = 0; l < c->n_layers; l++)
        if (layer_fwd(m, a, b, pos, l, 0)) {
            cpt_view_free(&G);
            return attn_error(a, err, "forward", l, "");
        }
    float *xL = a->x + (size_t)c->n_layers * a->sX;
    be->rmsnorm_fwd(a->hf, a->rstdf, xL, W->final_norm, N, D, eps);

    /* ---------------- LM head + loss (+ its backward) ---------------- */
    if (last_logits) {
        lin_fwd(m, a, last_logits, a->hf + (size_t)(N - 1) * D, W->lm_head, NULL, 1, D, V);
        cpt_view_free(&G);
        return CPT_OK;
    }
    long long nv = 0;
    float *dloss = losses_out ? be->alloc(sizeof(float) * (size_t)N) : NULL;
    if (losses_out && !dloss) {
        cpt_view_free(&G);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory for %d per-position losses", N);
    }
    const uint16_t *head16 = a->bf16 ? lowp_of(m, W->lm_head) : NULL; /* bf16: the LM head's copy too */
    double ls = head16 ? be->xent_fwd_bwd_bf16(train ? a->dhf : NULL, train ? G.lm_head : NULL, logits_out, dloss, a->hf, head16, b->targets,
                                               N, D, V, grad_scale, &nv, a->xent_ws, a->xent_ws_bytes)
                       : be->xent_fwd_bwd(train ? a->dhf : NULL, train ? G.lm_head : NULL, logits_out, dloss, a->hf, W->lm_head,
                                          b->targets, N, D, V, grad_scale, &nv, a->xent_ws, a->xent_ws_bytes);
    if (dloss) {
        be->copy_to_host(losses_out, dloss, sizeof(float) * (size_t)N);
        be->sync();
        be->free(dloss);
    }
    if (nv < 0) {
        cpt_view_free(&G);
        return cpt_err_set(err, CPT_ESTATE, "cross-entropy workspace too small: it needs %lld bytes, the arena has %zu",
                           -nv, a->xent_ws_bytes);
    }
    if (loss_sum) *loss_sum = ls;
    if (n_valid) *n_valid = nv;
    if (!train) {
        cpt_view_free(&G);
        return CPT_OK;
    }

    /* ---------------- backward ---------------- */
    be->rmsnorm_bwd(a->dx, G.final_norm, a->dhf, xL, W->final_norm, a->rstdf, N, D, 0);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        const cpt_layer_view *L = &W->layers[l], *GL = &G.layers[l];
        if (a->recompute != CPT_RECOMPUTE_NONE && layer_fwd(m, a, b, pos, l, 1)) {
            cpt_view_free(&G);
            return attn_error(a, err, "forward", l, ", recompute");
        }
        float *x = a->x + l * a->sX, *xmid = a->xmid + l * a->sD, *a1 = a->a1 + l * a->sD, *a2 = a->a2 + l * a->sD;
        float *q = a->q + l * a->sQ, *k = a->k + l * a->sK, *v = a->v + l * a->sK;
        float *lse = a->lse + l * a->sP, *att = a->att + l * a->sAtt;
        float *g = a->g + l * a->sI, *u = a->u + l * a->sI, *h = a->h + l * a->sI;
        /* MLP: x_{l+1} = xmid + down(silu(gate(a2)) * up(a2)) */
        lin_bwd(m, a, a->dh, GL->wd, GL->bd, a->dx, h, L->wd, N, I, D, 0);
        lora_bwd(m, a, l, CPT_LORA_DOWN, a->dh, a->dx, h, N);
        be->swiglu_bwd(a->dg, a->du, a->dh, g, u, (size_t)N * I);
        lin_bwd(m, a, a->tmp, GL->wg, GL->bg, a->dg, a2, L->wg, N, D, I, 0);
        lora_bwd(m, a, l, CPT_LORA_GATE, a->tmp, a->dg, a2, N);
        lin_bwd(m, a, a->tmp, GL->wu, GL->bu, a->du, a2, L->wu, N, D, I, 1);
        lora_bwd(m, a, l, CPT_LORA_UP, a->tmp, a->du, a2, N);
        be->rmsnorm_bwd(a->dx, GL->mlp_norm, a->tmp, xmid, L->mlp_norm, a->rstd2 + l * a->sN, N, D, 1);
        /* Attention: xmid = x + o_proj(attn(rope(q), rope(k), v)) */
        lin_bwd(m, a, a->datt, GL->wo, GL->bo, a->dx, att, L->wo, N, qd, D, 0);
        lora_bwd(m, a, l, CPT_LORA_O, a->datt, a->dx, att, N);
        if (a->cp ? cpt_cp_attn_bwd(a->cp, a->dq, a->dk, a->dv, a->datt, att, lse, q, k, v, b->seg, B, T, H, KV, hd, scale,
                                    a->attn_ws, a->attn_ws_bytes)
                  : (a->bf16 ? be->attn_bwd_bf16 : be->attn_bwd)(a->dq, a->dk, a->dv, a->datt, att, lse, q, k, v, b->seg, b->seg, B,
                                                                 T, T, 0, H, KV, hd, scale, a->attn_ws, a->attn_ws_bytes)) {
            cpt_view_free(&G);
            return attn_error(a, err, "backward", l, "");
        }
        be->rope_bwd(a->dq, m->rope_cos, m->rope_sin, pos, N, H, hd, rot);
        be->rope_bwd(a->dk, m->rope_cos, m->rope_sin, pos, N, KV, hd, rot);
        float *dq = a->dq, *dk = a->dk;
        if (c->qk_norm) {
            be->rmsnorm_bwd(a->dqn, GL->q_norm, a->dq, a->qraw + l * a->sQ, L->q_norm, a->qrstd + l * a->sH, N * H, hd, 0);
            be->rmsnorm_bwd(a->dkn, GL->k_norm, a->dk, a->kraw + l * a->sK, L->k_norm, a->krstd + l * a->sKV, N * KV, hd, 0);
            dq = a->dqn, dk = a->dkn;
        }
        lin_bwd(m, a, a->tmp, GL->wq, GL->bq, dq, a1, L->wq, N, D, qd, 0);
        lora_bwd(m, a, l, CPT_LORA_Q, a->tmp, dq, a1, N);
        lin_bwd(m, a, a->tmp, GL->wk, GL->bk, dk, a1, L->wk, N, D, kd, 1);
        lora_bwd(m, a, l, CPT_LORA_K, a->tmp, dk, a1, N);
        lin_bwd(m, a, a->tmp, GL->wv, GL->bv, a->dv, a1, L->wv, N, D, kd, 1);
        lora_bwd(m, a, l, CPT_LORA_V, a->tmp, a->dv, a1, N);
        be->rmsnorm_bwd(a->dx, GL->attn_norm, a->tmp, x, L->attn_norm, a->rstd1 + l * a->sN, N, D, 1);
    }
    if (G.embed) be->embed_bwd(G.embed, a->dx, b->ids, N, D, V);
    cpt_view_free(&G);
    return CPT_OK;
}

int cpt_model_step(cpt_model *m, cpt_acts *a, const cpt_batch *b, float *grads, float grad_scale,
                   const uint8_t *frozen, double *loss_sum, long long *n_valid, float *logits_out,
                   cpt_err *err) {
    return model_run(m, a, b, grads, grad_scale, frozen, loss_sum, n_valid, logits_out, NULL, NULL, err);
}

int cpt_model_token_losses(cpt_model *m, cpt_acts *a, const cpt_batch *b, float *losses, double *loss_sum,
                           long long *n_valid, cpt_err *err) {
    if (!losses) return cpt_err_set(err, CPT_EINVAL, "cpt_model_token_losses: losses is NULL");
    return model_run(m, a, b, NULL, 1.0f, NULL, loss_sum, n_valid, NULL, losses, NULL, err);
}

int cpt_model_prefill(cpt_model *m, cpt_acts *a, cpt_kvcache *kc, const int32_t *ids, int n, float *logits,
                      cpt_err *err) {
    if (n <= 0) return cpt_err_set(err, CPT_EINVAL, "prefill needs at least one token");
    if (kc->len != 0) return cpt_err_set(err, CPT_ESTATE, "prefill needs an empty KV cache (it holds %d tokens)", kc->len);
    if (n > kc->max_len) return cpt_err_set(err, CPT_EINVAL, "prefill of %d tokens does not fit the KV cache of %d", n, kc->max_len);
    if (kc->be != m->be) return cpt_err_set(err, CPT_ESTATE, "the model changed backend after its KV cache was made");
    if (a->training || a->B != 1 || a->T != n)
        return cpt_err_set(err, CPT_EINVAL, "prefill of %d tokens needs inference activations for 1 x %d (these are %s %d x %d)", n, n,
                           a->training ? "training" : "inference", a->B, a->T);
    if (m->cfg.sliding_window > 0 && n > m->cfg.sliding_window)
        return cpt_err_set(err, CPT_EUNSUPPORTED, "a prompt of %d tokens is past the sliding window (%lld tokens), which is not implemented", n,
                           m->cfg.sliding_window);
    cpt_batch b = {1, n, ids, NULL, NULL, NULL};
    a->kv_k = kc->k, a->kv_v = kc->v, a->kv_stride = (size_t)kc->max_len * kc->kd;
    int rc = model_run(m, a, &b, NULL, 1.0f, NULL, NULL, NULL, NULL, NULL, kc->logits, err);
    a->kv_k = a->kv_v = NULL;
    if (rc) return rc;
    m->be->copy_to_host(logits, kc->logits, sizeof(float) * (size_t)kc->V);
    m->be->sync();
    kc->len = n;
    return CPT_OK;
}
