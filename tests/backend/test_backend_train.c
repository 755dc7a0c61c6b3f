/* test_backend_train.c: whole training steps through the backend table, once on the CPU
 * backend and once on the float64 reference backend (cpt_model_set_backend(m, ref): the
 * optimizer, the regularizer and the activations follow the model), for small random
 * models: Llama (GQA, tied), Qwen2 (q/k/v bias, untied), Qwen3 (q/k RMSNorm, GQA,
 * untied). Part 1 is one explicit step: forward + backward (block-causal packed batch,
 * reset positions), L2-to-base penalty, clipping, AdamW; loss, every gradient tensor, the
 * penalty, the norm and the updated weights and moments must agree. Part 2 runs
 * cpt_train_run for 3 steps (grad accumulation, clipping, L2 penalty, evaluation) on each
 * backend. Part 1b: part 1 in bf16 precision. Part 4: KV-cache decoding on each backend. Part 3: CPT_BACKEND selects the backend of new models; an unknown name is an
 * error listing the known ones.
 *
 * Tolerances (fp32 kernels vs float64 inside, per tensor max|a-b| / max|b|), measured
 * values in the log (the largest is 6.3e-6, Qwen2 weights after two AdamW steps):
 *   loss 1e-5 relative; gradients 1e-4 (chains of fp32 sums through 2 layers); penalty
 *   and grad norm 1e-5; weights after two AdamW steps 2e-5 (see ADAM_EPS); moments m
 *   1e-4, v 2e-4 (v is quadratic in g); after 3 trainer steps: last loss and eval loss
 *   1e-5, weights 2e-5.
 * That the two runs are not one run twice is checked too: the weights must differ in
 * at least one bit (the reference rounds differently). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpt/backend.h"
#include "cpt/optim.h"
#include "cpt/regularize.h"
#include "cpt/train.h"
#include "testutil.h"

/* AdamW eps of both parts. Adam divides by sqrt(v) + eps, so an element whose gradient is
 * at fp32 noise level (cancellation: ~1e-7 of the largest) gets an update anywhere in
 * +-lr at torch's eps = 1e-8, on any two correct implementations: measured there, weights
 * differ by 1.3e-5 after 2 steps and 1.8e-4 after 3 trainer steps (Qwen3), where every
 * other quantity agrees to 1e-6. eps = 1e-6 keeps the update well conditioned for such
 * elements and changes nothing else (typical |g| here is 1e-3 .. 1e-2). */
#define ADAM_EPS 1e-6

static const char *ARCH_NAMES[] = {"llama", "qwen2", "qwen3"};

static int make(cpt_model **out, int arch, uint64_t seed) {
    cpt_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 41, c.hidden_size = 24, c.n_layers = 2, c.head_dim = 10, c.intermediate_size = 36;
    c.max_pos = 64, c.rms_eps = 1e-6, c.rope_theta = 10000, c.partial_rotary_factor = 1;
    c.bos_id = 1, c.eos_id = 2;
    if (arch == 0) {
        c.arch = CPT_ARCH_LLAMA, c.n_heads = 4, c.n_kv_heads = 2, c.tie_embeddings = 1;
        snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    } else if (arch == 1) {
        c.arch = CPT_ARCH_QWEN2, c.n_heads = 3, c.n_kv_heads = 3, c.qkv_bias = 1;
        snprintf(c.architecture, sizeof c.architecture, "Qwen2ForCausalLM");
    } else {
        c.arch = CPT_ARCH_QWEN3, c.n_heads = 6, c.n_kv_heads = 2, c.qk_norm = 1;
        snprintf(c.architecture, sizeof c.architecture, "Qwen3ForCausalLM");
    }
    snprintf(c.model_type, sizeof c.model_type, "%s", ARCH_NAMES[arch]);
    cpt_err e = {0};
    *out = NULL;
    int rc = cpt_model_create(out, &c, &e);
    if (rc) {
        fprintf(stderr, "model: %s\n", e.msg);
        return rc;
    }
    cpt_model_init_random(*out, seed, 0.2f);
    /* non-trivial norm weights and biases, so their gradients and paths are exercised */
    uint64_t s = seed * 7 + 1;
    for (int i = 0; i < (*out)->n_tensors; i++) {
        const cpt_tensor *t = &(*out)->tensors[i];
        if (t->ndim != 1) continue;
        for (size_t j = 0; j < t->numel; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            double u = (double)(s >> 11) * 0x1.0p-53;
            (*out)->params[t->off + j] += (float)(0.4 * (u - 0.5));
        }
    }
    return 0;
}

/* Host copy of n floats of backend memory. */
static float *host(const cpt_backend *be, const float *d, size_t n) {
    float *h = malloc(sizeof(float) * (n ? n : 1));
    if (!h) abort();
    be->sync();
    be->copy_to_host(h, d, sizeof(float) * n);
    be->sync();
    return h;
}
static double relerr(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= md)) md = isnan(d) ? INFINITY : d;
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return md / (mb > 1e-300 ? mb : 1e-300);
}
/* Worst per-tensor error over the model's tensor table. */
static double worst_tensor(const cpt_model *m, const float *a, const float *b, const char **which) {
    double w = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        double e = relerr(a + m->tensors[i].off, b + m->tensors[i].off, m->tensors[i].numel);
        if (!(e <= w)) w = e, *which = m->tensors[i].name;
    }
    return w;
}

typedef struct {
    double loss, penalty, norm;
    float *grads, *params, *m, *v; /* host copies */
} step_out;

/* One optimizer step on m through m->be. The batch: 2 packed rows of 9 tokens, documents
 * restarting positions (block-causal), one ignored target. */
static int one_step(cpt_model *m, step_out *o) {
    const cpt_backend *be = m->be;
    enum { B = 2, T = 9, N = B * T };
    int32_t ids[N], tgt[N], pos[N], seg[N];
    for (int i = 0; i < N; i++) {
        int t = i % T, d = t < 4 ? 0 : 1; /* documents of 4 and 5 tokens */
        ids[i] = 3 + (i * 7) % 38, tgt[i] = 3 + (i * 11 + 5) % 38, seg[i] = d, pos[i] = d ? t - 4 : t;
    }
    tgt[5] = -1;
    cpt_batch b = {B, T, ids, tgt, pos, seg};
    cpt_err e = {0};
    cpt_acts *a = NULL;
    cpt_adamw *opt = NULL;
    size_t bytes = sizeof(float) * m->n_params;
    float *g = be->alloc(bytes), *theta0 = be->alloc(bytes);
    int rc = g && theta0 ? 0 : CPT_ENOMEM;
    if (!rc) rc = cpt_acts_create(&a, m, B, T, 1, &e);
    if (!rc) rc = cpt_adamw_create(&opt, m, &e);
    if (rc) goto done;
    /* the base weights, shifted so the penalty is not zero */
    float *h0 = host(be, m->params, m->n_params);
    for (size_t i = 0; i < m->n_params; i++) h0[i] -= 0.01f * (float)((int)(i % 7) - 3);
    be->copy_to_device(theta0, h0, bytes);
    be->sync();
    free(h0);
    long long nv = 0;
    rc = cpt_model_step(m, a, &b, g, 1.0f / 17.0f, NULL, &o->loss, &nv, NULL, &e);
    if (rc || nv != 17) {
        fprintf(stderr, "step: rc %d nv %lld %s\n", rc, nv, e.msg);
        rc = rc ? rc : 1;
        goto done;
    }
    o->penalty = cpt_reg_l2sp(m, theta0, g, 0.3, NULL);
    o->grads = host(be, g, m->n_params); /* loss + penalty gradient, before clipping */
    o->norm = cpt_grad_clip(m, g, 0.5);  /* the norm is ~1: clipping is active */
    cpt_adamw_cfg oc = {1e-3, 0.9, 0.95, ADAM_EPS, 0.1};
    cpt_adamw_step(opt, m, g, &oc, 1e-3, NULL, NULL);
    cpt_adamw_step(opt, m, g, &oc, 1e-3, NULL, NULL); /* a second step: moments are not zero going in */
    o->params = host(be, m->params, m->n_params);
    o->m = host(be, opt->m, m->n_params);
    o->v = host(be, opt->v, m->n_params);
done:
    if (rc && e.msg[0]) fprintf(stderr, "one_step: %s\n", e.msg);
    cpt_adamw_free(opt);
    cpt_acts_free(a);
    if (g) be->free(g);
    if (theta0) be->free(theta0);
    return rc;
}

static void part1(int arch) {
    const cpt_backend *ref = cpt_backend_ref();
    cpt_model *ma = NULL, *mb = NULL;
    if (make(&ma, arch, 100 + arch) || make(&mb, arch, 100 + arch)) {
        CHECKF(0, "%s: model creation failed", ARCH_NAMES[arch]);
        return;
    }
    cpt_err e = {0};
    CHECK_OK(cpt_model_set_backend(mb, ref, &e), &e);
    CHECK(ma->be == cpt_backend_cpu() && mb->be == ref);
    step_out A = {0}, R = {0};
    CHECK(one_step(ma, &A) == 0);
    CHECK(one_step(mb, &R) == 0);
    if (!A.grads || !R.grads) goto out;
    const char *wg = "", *wp = "", *wm = "", *wv = "";
    double el = fabs(A.loss - R.loss) / fabs(R.loss), ep = fabs(A.penalty - R.penalty) / fabs(R.penalty);
    double en = fabs(A.norm - R.norm) / R.norm;
    double eg = worst_tensor(ma, A.grads, R.grads, &wg), ew = worst_tensor(ma, A.params, R.params, &wp);
    double em = worst_tensor(ma, A.m, R.m, &wm), evv = worst_tensor(ma, A.v, R.v, &wv);
    fprintf(stderr, "%-6s loss %.6f (err %.2e)  penalty err %.2e  norm %.4f (err %.2e)\n", ARCH_NAMES[arch], R.loss, el, ep,
            R.norm, en);
    fprintf(stderr, "       grads err %.2e (%s)  weights %.2e (%s)  m %.2e (%s)  v %.2e (%s)\n", eg, wg, ew, wp, em, wm,
            evv, wv);
    CHECKF(el < 1e-5, "%s loss: %.17g vs ref %.17g", ARCH_NAMES[arch], A.loss, R.loss);
    CHECKF(ep < 1e-5 && R.penalty > 0, "%s penalty: %.17g vs ref %.17g", ARCH_NAMES[arch], A.penalty, R.penalty);
    CHECKF(en < 1e-5 && R.norm > 0.5, "%s grad norm: %.17g vs ref %.17g (clip at 0.5 must be active)", ARCH_NAMES[arch],
           A.norm, R.norm);
    CHECKF(eg < 1e-4, "%s gradient %s: err %.3e", ARCH_NAMES[arch], wg, eg);
    CHECKF(ew < 2e-5, "%s weights %s: err %.3e", ARCH_NAMES[arch], wp, ew);
    CHECKF(em < 1e-4 && evv < 2e-4, "%s moments: m %.3e (%s) v %.3e (%s)", ARCH_NAMES[arch], em, wm, evv, wv);
    CHECKF(memcmp(A.params, R.params, sizeof(float) * ma->n_params) != 0,
           "%s: the reference run is bitwise the CPU run; it cannot have gone through the ref backend", ARCH_NAMES[arch]);
out:
    free(A.grads), free(A.params), free(A.m), free(A.v), free(R.grads), free(R.params), free(R.m), free(R.v);
    cpt_model_free(ma), cpt_model_free(mb);
}

/* ---- part 1b: the same step in bf16 precision (cpt_model_set_precision) on both backends:
 * the bf16 roundings of weights, activations and output gradients are the same on both;
 * the CPU's bf16 attention (attention_bf16.c) also rounds the probabilities P and dS to
 * bf16 inside its tiles, which the reference does not (its float64 attention of the rounded
 * q, k, v cannot follow the online softmax's running max), so the runs differ by that
 * rounding. The bf16 step must differ from the fp32 one (else it did not run in bf16).
 * Skipped by name without a bf16 kernel on this CPU. Tolerances: the loss 3e-3 (measured
 * 1.8e-4 to 6.7e-4 on the three families); gradients and weights 5e-2 (measured up to
 * 1.9e-2, Qwen3's k_norm gradient): P's rounding (2^-9 relative per element) plus an
 * intermediate whose fp32 values straddle a bf16 rounding boundary on the two backends
 * (one bf16 ulp apart), propagated through two layers and one AdamW step. The attention
 * kernel itself is checked elementwise in tests/ops/test_attn_bf16.c. */
static void part1_bf16(int arch) {
    if (!cpt_backend_cpu()->supports("linear_bf16")) {
        fprintf(stderr, "%-6s bf16 step: skipped, no bf16 kernel on this CPU\n", ARCH_NAMES[arch]);
        return;
    }
    cpt_model *ma = NULL, *mb = NULL, *mf = NULL;
    if (make(&ma, arch, 100 + arch) || make(&mb, arch, 100 + arch) || make(&mf, arch, 100 + arch)) {
        CHECKF(0, "%s: model creation failed", ARCH_NAMES[arch]);
        return;
    }
    cpt_err e = {0};
    CHECK_OK(cpt_model_set_backend(mb, cpt_backend_ref(), &e), &e);
    CHECK_OK(cpt_model_set_precision(ma, CPT_PREC_BF16, &e), &e);
    CHECK_OK(cpt_model_set_precision(mb, CPT_PREC_BF16, &e), &e);
    step_out A = {0}, R = {0}, F = {0};
    CHECK(one_step(ma, &A) == 0);
    CHECK(one_step(mb, &R) == 0);
    CHECK(one_step(mf, &F) == 0);
    if (!A.grads || !R.grads || !F.grads) goto out;
    const char *wg = "", *wp = "";
    double el = fabs(A.loss - R.loss) / fabs(R.loss), eg = worst_tensor(ma, A.grads, R.grads, &wg), ew = worst_tensor(ma, A.params, R.params, &wp);
    double d32 = fabs(A.loss - F.loss) / fabs(F.loss);
    fprintf(stderr, "%-6s bf16: loss %.6f (err vs ref %.2e; vs fp32 %.2e)  grads err %.2e (%s)  weights %.2e (%s)\n", ARCH_NAMES[arch],
            R.loss, el, d32, eg, wg, ew, wp);
    CHECKF(el < 3e-3, "%s bf16 loss: %.17g vs ref %.17g", ARCH_NAMES[arch], A.loss, R.loss);
    CHECKF(eg < 5e-2, "%s bf16 gradient %s: err %.3e (tol 5e-2)", ARCH_NAMES[arch], wg, eg);
    CHECKF(ew < 5e-2, "%s bf16 weights %s: err %.3e (tol 5e-2)", ARCH_NAMES[arch], wp, ew);
    CHECKF(A.loss != F.loss && d32 < 1e-2, "%s: the bf16 step's loss %.9g vs fp32 %.9g: not bf16, or too far (1e-2)", ARCH_NAMES[arch], A.loss,
           F.loss);
out:
    free(A.grads), free(A.params), free(A.m), free(A.v), free(R.grads), free(R.params), free(R.m), free(R.v);
    free(F.grads), free(F.params), free(F.m), free(F.v);
    cpt_model_free(ma), cpt_model_free(mb), cpt_model_free(mf);
}

/* ---- part 2: cpt_train_run ---- */
static int32_t toks[3000], vtoks[600];

typedef struct { float *theta0; double alpha; } l2ctx;
static double l2_penalty(void *ctx, const cpt_model *m, float *grads) {
    l2ctx *c = ctx;
    return cpt_reg_l2sp(m, c->theta0, grads, c->alpha, NULL);
}
static double lr_const(const void *s, long long step) {
    (void)s, (void)step;
    return 2e-3;
}

static int train(cpt_model *m, const char *dir, cpt_train_result *res, float **params) {
    cpt_tokstream ts = {toks, 3000, 2}, vs = {vtoks, 600, 2};
    cpt_eval_set ev = {"val", cpt_tokstream_iface(&vs), 4, 0};
    cpt_train_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.run_dir = dir;
    cfg.seq_len = 12, cfg.micro_batch = 2, cfg.grad_accum = 2, cfg.max_steps = 3;
    cfg.block_causal = 1, cfg.reset_positions = 1;
    cfg.optim = (cpt_adamw_cfg){2e-3, 0.9, 0.95, ADAM_EPS, 0.1};
    cfg.clip = 0.5, cfg.embed_lr_mult = 0.5, cfg.lr_fn = lr_const;
    cfg.train_data = cpt_tokstream_iface(&ts);
    cfg.evals = &ev, cfg.n_evals = 1, cfg.eval_every = 0, cfg.eval_batches = 4;
    cfg.ckpt_every = 0, cfg.keep_last = 1;
    cfg.recipe_text = "test: backend\n";
    size_t bytes = sizeof(float) * m->n_params;
    l2ctx lc = {m->be->alloc(bytes), 0.2};
    if (!lc.theta0) return CPT_ENOMEM;
    float *h = host(m->be, m->params, m->n_params);
    for (size_t i = 0; i < m->n_params; i++) h[i] += 0.02f * (float)((int)(i % 5) - 2);
    m->be->copy_to_device(lc.theta0, h, bytes);
    m->be->sync();
    free(h);
    cfg.penalty_fn = l2_penalty, cfg.penalty_ctx = &lc;
    cpt_err e = {0};
    int rc = cpt_train_run(&cfg, m, NULL, res, &e);
    if (rc) fprintf(stderr, "train on %s: %s\n", m->be->name, e.msg);
    *params = host(m->be, m->params, m->n_params);
    m->be->free(lc.theta0);
    return rc;
}

static void part2(int arch, const char *base) {
    cpt_model *ma = NULL, *mb = NULL;
    if (make(&ma, arch, 300 + arch) || make(&mb, arch, 300 + arch)) {
        CHECKF(0, "%s: model creation failed", ARCH_NAMES[arch]);
        return;
    }
    cpt_err e = {0};
    CHECK_OK(cpt_model_set_backend(mb, cpt_backend_ref(), &e), &e);
    char da[700], db[700];
    snprintf(da, sizeof da, "%s/%s-cpu", base, ARCH_NAMES[arch]);
    snprintf(db, sizeof db, "%s/%s-ref", base, ARCH_NAMES[arch]);
    cpt_train_result ra, rb;
    float *pa = NULL, *pb = NULL;
    CHECK(train(ma, da, &ra, &pa) == 0);
    CHECK(train(mb, db, &rb, &pb) == 0);
    CHECK(ra.steps == 3 && rb.steps == 3 && ra.skipped == 0 && rb.skipped == 0);
    if (pa && pb) {
        const char *w = "";
        double el = fabs(ra.last_loss - rb.last_loss) / fabs(rb.last_loss);
        double ee = fabs(ra.evals[0].loss - rb.evals[0].loss) / rb.evals[0].loss;
        double ew = worst_tensor(ma, pa, pb, &w);
        fprintf(stderr, "%-6s train 3 steps: last loss %.6f (err %.2e), eval %.6f (err %.2e), weights err %.2e (%s)\n",
                ARCH_NAMES[arch], rb.last_loss, el, rb.evals[0].loss, ee, ew, w);
        CHECKF(el < 1e-5 && ee < 1e-5, "%s trainer loss %.17g vs ref %.17g, eval %.17g vs %.17g", ARCH_NAMES[arch],
               ra.last_loss, rb.last_loss, ra.evals[0].loss, rb.evals[0].loss);
        CHECKF(ew < 2e-5, "%s trainer weights %s: err %.3e", ARCH_NAMES[arch], w, ew);
        CHECKF(memcmp(pa, pb, sizeof(float) * ma->n_params) != 0, "%s: the ref run is bitwise the cpu run", ARCH_NAMES[arch]);
    }
    free(pa), free(pb);
    cpt_model_free(ma), cpt_model_free(mb);
}

/* ---- part 4: KV-cache decoding through the table ----
 * 7 tokens one at a time on cpu and on ref; each row of logits must match the other
 * backend's (1e-5, as the forward) and the full-sequence forward of the same backend
 * (1e-5: the same math in another order). */
static void part4(int arch) {
    enum { T = 7 };
    cpt_model *ms[2] = {NULL, NULL};
    float *lg[2] = {NULL, NULL};
    if (make(&ms[0], arch, 500 + arch) || make(&ms[1], arch, 500 + arch)) {
        CHECKF(0, "%s: model creation failed", ARCH_NAMES[arch]);
        goto out;
    }
    cpt_err e = {0};
    CHECK_OK(cpt_model_set_backend(ms[1], cpt_backend_ref(), &e), &e);
    const int V = ms[0]->cfg.vocab_size;
    int32_t ids[T] = {5, 17, 3, 40, 9, 9, 22}, tg[T] = {-1, -1, -1, -1, -1, -1, -1};
    for (int k = 0; k < 2; k++) {
        cpt_model *m = ms[k];
        lg[k] = malloc(sizeof(float) * T * V);
        float *full = malloc(sizeof(float) * T * V), *dl = NULL;
        cpt_kvcache *kc = NULL;
        cpt_acts *a = NULL;
        CHECK_OK(cpt_model_rope_update(m, T, &e), &e);
        CHECK_OK(cpt_kvcache_create(&kc, m, T, &e), &e);
        for (int i = 0; kc && i < T; i++) CHECK_OK(cpt_model_decode(m, kc, ids[i], lg[k] + (size_t)i * V, &e), &e);
        cpt_batch b = {1, T, ids, tg, NULL, NULL};
        double ls;
        long long nv;
        dl = m->be->alloc(sizeof(float) * T * V); /* the logits a kernel writes: backend memory */
        CHECK_OK(cpt_acts_create(&a, m, 1, T, 0, &e), &e);
        if (a) CHECK_OK(cpt_model_step(m, a, &b, NULL, 1.0f, NULL, &ls, &nv, dl, &e), &e);
        m->be->copy_to_host(full, dl, sizeof(float) * T * V);
        m->be->sync();
        double mx = 0;
        for (int i = 0; i < T * V; i++) mx = fabs(full[i]) > mx ? fabs(full[i]) : mx;
        CHECKF(mx > 0.1, "%s forward logits on %s are ~0 (max %g): nothing to compare", ARCH_NAMES[arch], m->be->name, mx);
        double ef = relerr(lg[k], full, (size_t)T * V);
        fprintf(stderr, "%-6s decode on %s vs its forward: %.2e\n", ARCH_NAMES[arch], m->be->name, ef);
        CHECKF(ef < 1e-5, "%s decode vs forward on %s: %.3e", ARCH_NAMES[arch], m->be->name, ef);
        cpt_kvcache_free(kc), cpt_acts_free(a), m->be->free(dl), free(full);
    }
    double eb = relerr(lg[0], lg[1], (size_t)T * V);
    fprintf(stderr, "%-6s decode cpu vs ref: %.2e\n", ARCH_NAMES[arch], eb);
    CHECKF(eb < 1e-5, "%s decode cpu vs ref: %.3e", ARCH_NAMES[arch], eb);
    CHECK(memcmp(lg[0], lg[1], sizeof(float) * T * V) != 0);
out:
    free(lg[0]), free(lg[1]);
    cpt_model_free(ms[0]), cpt_model_free(ms[1]);
}

static void part3(void) {
    cpt_model *m = NULL;
    setenv("CPT_BACKEND", "ref", 1);
    CHECK(make(&m, 0, 1) == 0 && m && m->be == cpt_backend_ref());
    cpt_model_free(m), m = NULL;
    setenv("CPT_BACKEND", "cuda-typo", 1);
    cpt_config c;
    memset(&c, 0, sizeof c);
    c.arch = CPT_ARCH_LLAMA, c.vocab_size = 8, c.hidden_size = 8, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 2;
    c.head_dim = 4, c.intermediate_size = 8, c.max_pos = 8, c.rms_eps = 1e-6, c.rope_theta = 1e4, c.partial_rotary_factor = 1;
    cpt_err e = {0};
    int rc = cpt_model_create(&m, &c, &e);
    CHECKF(rc == CPT_EINVAL && !m && strstr(e.msg, "CPT_BACKEND=cuda-typo") && strstr(e.msg, "cpu") && strstr(e.msg, "ref"),
           "unknown backend: rc %d, message '%s'", rc, e.msg);
    fprintf(stderr, "unknown backend: %s\n", e.msg);
    unsetenv("CPT_BACKEND");
    CHECK(make(&m, 0, 1) == 0 && m && m->be == cpt_backend_default());
    cpt_model_free(m);
}

int main(void) {
    unsetenv("CPT_BACKEND"); /* the CPU side must be the CPU backend whatever the caller set */
    for (int arch = 0; arch < 3; arch++) part1(arch);
    for (int arch = 0; arch < 3; arch++) part1_bf16(arch);
    uint64_t r = 11;
    for (int i = 0; i < 3000; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (i % 17 == 16) ? 2 : 3 + (int32_t)((r >> 33) % 38);
    }
    for (int i = 0; i < 600; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        vtoks[i] = (i % 13 == 12) ? 2 : 3 + (int32_t)((r >> 33) % 38);
    }
    const char *tmp = tu_env("CPT_TMP");
    char base[512];
    snprintf(base, sizeof base, "%s/test_backend_train_%d", tmp ? tmp : "/tmp", (int)getpid());
    for (int arch = 0; arch < 3; arch++) part2(arch, base);
    for (int arch = 0; arch < 3; arch++) part4(arch);
    part3();
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    CHECK(system(cmd) == 0);
    TEST_END();
}
