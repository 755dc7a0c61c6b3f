/* test_rope_parity.c: the RoPE builder (src/model/rope.c) on the float64 test vectors of
 * methods.md 1.3-1.7 ([CMP] values, computed there independently of transformers), and,
 * with arguments, the C side of tests/model/test_rope_parity.py (which holds the
 * transformers oracle and the tolerances):
 *   --check DIR          DIR/model + DIR/ref.safetensors (make_fixtures.py layout): one
 *                        training step; prints one JSON line of relative errors
 *                        (logits, loss, worst gradient) and exits 0
 *   --tables DIR SEQ OUT cpt_rope_init at init and for SEQ, and the cos/sin tables of a
 *                        forward of SEQ positions: OUT.inv.npy [2, rot/2 + 1] (last column:
 *                        attention factor), OUT.cos.npy / OUT.sin.npy [SEQ, rot/2]
 *   --decode DIR P IDS OUT  the KV-cache path: RoPE for a prompt of P tokens, then every id
 *                        of the whitespace-separated file IDS through cpt_model_decode;
 *                        OUT.npy [n, V] logits
 * Tolerances without arguments: relative 2e-6 on float32 results against float64 values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "cpt/model.h"
#include "cpt/npy.h"
#include "cpt/ops.h"
#include "cpt/rope.h"
#include "fixture_util.h"
#include "testutil.h"

static cpt_config cfg_for(int dim, double theta, int max_pos) {
    cpt_config c;
    memset(&c, 0, sizeof c);
    c.head_dim = dim, c.partial_rotary_factor = 1.0, c.rope_theta = theta, c.max_pos = max_pos;
    return c;
}

static int rel_ok(double got, double want, double tol) { return fabs(got - want) <= tol * fabs(want); }

static void vectors(void) {
    cpt_err e = {0};
    float inv[64], base[64], af = 0;
    /* llama3, Llama 3.1 values: theta 5e5, dim 128, factor 8, low 1, high 4, L 8192 */
    cpt_config c = cfg_for(128, 5e5, 131072);
    CHECK_OK(cpt_rope_init(&c, 0, base, &af, &e), &e);
    c.rope_scaling.type = CPT_ROPE_LLAMA3, c.rope_scaling.factor = 8, c.rope_scaling.low_freq_factor = 1;
    c.rope_scaling.high_freq_factor = 4, c.rope_scaling.original_max_pos = 8192;
    CHECK_OK(cpt_rope_init(&c, 0, inv, &af, &e), &e);
    CHECKF(rel_ok(base[29], 2.6160992529e-03, 2e-6) && rel_ok(inv[29], 2.1665707635e-03, 2e-6), "llama3 inv[29] %.10e", inv[29]);
    CHECKF(rel_ok(inv[34], 1.7850781277e-04, 2e-6) && rel_ok(inv[35], 9.5562123540e-05, 2e-6), "llama3 inv[34] %.10e inv[35] %.10e", inv[34], inv[35]);
    for (int i = 0; i <= 28; i++) CHECKF(inv[i] == base[i], "llama3 high band changed at %d", i);
    for (int i = 35; i < 64; i++) CHECKF(inv[i] == base[i] / 8.0f, "llama3 low band at %d", i);
    CHECK(af == 1.0f);
    /* yarn: theta 1e6, dim 128, s 4, L 32768 -> low 23, high 40, attention factor 1.138629 */
    c = cfg_for(128, 1e6, 32768);
    CHECK_OK(cpt_rope_init(&c, 0, base, &af, &e), &e);
    c.rope_scaling.type = CPT_ROPE_YARN, c.rope_scaling.factor = 4;
    CHECK_OK(cpt_rope_init(&c, 0, inv, &af, &e), &e);
    CHECKF(rel_ok(af, 1.138629, 1e-6), "yarn attention factor %.9g", af);
    for (int i = 0; i <= 23; i++) CHECKF(inv[i] == base[i], "yarn extrapolated band changed at %d", i);
    CHECKF(rel_ok(inv[24] / base[24], 0.955882, 2e-6), "yarn inv[24]/orig %.9g", inv[24] / base[24]);
    for (int i = 40; i < 64; i++) CHECKF(rel_ok(inv[i] / base[i], 0.25, 2e-6), "yarn interpolated band at %d", i);
    /* the same through original_max_position_embeddings: factor = max_pos / original (transformers 4.51) */
    c.max_pos = 4 * 32768, c.rope_scaling.factor = 1.5, c.rope_scaling.original_max_pos = 32768;
    float inv2[64], af2;
    CHECK_OK(cpt_rope_init(&c, 0, inv2, &af2, &e), &e);
    CHECK(af2 == af && !memcmp(inv, inv2, sizeof inv));
    /* yarn theta 1e4, dim 128, s 16, L 4096: attention factor 1.277259 */
    c = cfg_for(128, 1e4, 4096);
    c.rope_scaling.type = CPT_ROPE_YARN, c.rope_scaling.factor = 16;
    CHECK_OK(cpt_rope_init(&c, 0, inv, &af, &e), &e);
    CHECKF(rel_ok(af, 1.277259, 1e-6), "yarn s16 attention factor %.9g", af);
    /* dynamic: theta 1e4, dim 128, factor 2, max 4096, seq 8192 -> base' 30527.736749 */
    c = cfg_for(128, 1e4, 4096);
    c.rope_scaling.type = CPT_ROPE_DYNAMIC, c.rope_scaling.factor = 2;
    CHECK_OK(cpt_rope_init(&c, 8192, inv, &af, &e), &e);
    CHECKF(rel_ok(inv[1], pow(30527.736749, -2.0 / 128), 2e-6), "dynamic inv[1] %.9g", inv[1]);
    CHECKF(rel_ok(inv[63], pow(30527.736749, -126.0 / 128), 4e-6), "dynamic inv[63] %.9g", inv[63]);
    CHECK_OK(cpt_rope_init(&c, 4096, inv, &af, &e), &e); /* at or below max_pos: default RoPE */
    CHECK_OK(cpt_rope_init(&c, 0, inv2, &af, &e), &e);
    CHECK(!memcmp(inv, inv2, sizeof inv) && rel_ok(inv[1], pow(1e4, -2.0 / 128), 2e-6));
    /* longrope: factor 32, L 4096 -> attention factor 1.190238; long/short chosen by length */
    c = cfg_for(4, 1e4, 4096);
    c.rope_scaling.type = CPT_ROPE_LONGROPE, c.rope_scaling.factor = 32, c.rope_scaling.n_factors = 2;
    c.rope_scaling.short_factor[0] = 1, c.rope_scaling.short_factor[1] = 2;
    c.rope_scaling.long_factor[0] = 3, c.rope_scaling.long_factor[1] = 5;
    CHECK_OK(cpt_rope_init(&c, 4096, inv, &af, &e), &e);
    CHECKF(rel_ok(af, 1.190238, 1e-6), "longrope attention factor %.9g", af);
    CHECK(rel_ok(inv[0], 1.0, 1e-7) && rel_ok(inv[1], 0.5 / 100.0, 2e-6));
    CHECK_OK(cpt_rope_init(&c, 4097, inv, &af, &e), &e);
    CHECK(rel_ok(inv[0], 1.0 / 3, 1e-7) && rel_ok(inv[1], 0.2 / 100.0, 2e-6));
    c.rope_scaling.n_factors = 3;
    CHECK(cpt_rope_init(&c, 0, inv, &af, &e) == CPT_EINVAL && strstr(e.msg, "long_factor"));
    /* partial rotary: 6 of 12 dims rotate with the frequencies of a 6-dim RoPE */
    c = cfg_for(12, 1e4, 64);
    c.partial_rotary_factor = 0.5;
    CHECK_OK(cpt_rope_init(&c, 0, inv, &af, &e), &e);
    CHECK(rel_ok(inv[1], pow(1e4, -2.0 / 6), 2e-6) && rel_ok(inv[2], pow(1e4, -4.0 / 6), 2e-6));
}

static int check_dir(const char *dir) {
    char path[1200];
    cpt_err err = {0};
    cpt_model *m = NULL;
    snprintf(path, sizeof path, "%s/model", dir);
    if (cpt_model_load_hf(&m, path, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    snprintf(path, sizeof path, "%s/ref.safetensors", dir);
    cpt_st_file *ref = NULL;
    if (cpt_st_open(&ref, path, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    const cpt_st_tensor *ti = NULL;
    int32_t *ids = fx_i32(ref, "input_ids", &ti), *labels = fx_i32(ref, "labels", NULL);
    int B = (int)ti->shape[0], T = (int)ti->shape[1], V = m->cfg.vocab_size;
    int32_t *targets = malloc(sizeof(int32_t) * B * T);
    fx_shift_labels(targets, labels, B, T);
    long long nvalid = 0;
    for (int i = 0; i < B * T; i++) nvalid += targets[i] >= 0;
    float *grads = calloc(m->n_params, sizeof(float)), *logits = malloc(sizeof(float) * (size_t)B * T * V);
    cpt_acts *a = NULL;
    if (cpt_acts_create(&a, m, B, T, 1, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    cpt_batch b = {B, T, ids, targets, NULL, NULL};
    double ls = 0;
    long long nv = 0;
    if (cpt_model_step(m, a, &b, grads, 1.0f / (float)nvalid, NULL, &ls, &nv, logits, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    float *rl = fx_f32(ref, "logits", NULL), *rloss = fx_f32(ref, "loss", NULL);
    double le = tu_rel_err(logits, rl, (size_t)B * T * V), loss = ls / (double)nv;
    double lerr = fabs(loss - rloss[0]) / fabs(rloss[0]), worst = 0;
    const char *worst_name = "";
    int ngrads = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        char gname[128];
        snprintf(gname, sizeof gname, "grad.%s", m->tensors[i].name);
        size_t n = 0;
        float *rg = fx_f32(ref, gname, &n);
        double e = (!rg || n != m->tensors[i].numel) ? INFINITY : tu_rel_err(grads + m->tensors[i].off, rg, n);
        if (e > worst || !ngrads) worst = e, worst_name = m->tensors[i].name;
        ngrads++;
        free(rg);
    }
    printf("{\"logits\": %.6e, \"loss\": %.6e, \"grad_worst\": %.6e, \"grad_worst_name\": \"%s\", \"n_grads\": %d, \"n_tensors\": %d}\n",
           le, lerr, worst, worst_name, ngrads, m->n_tensors);
    free(rl), free(rloss), free(ids), free(labels), free(targets), free(grads), free(logits);
    cpt_acts_free(a);
    cpt_st_close(ref);
    cpt_model_free(m);
    return 0;
}

static int tables(const char *dir, int seq, const char *out) {
    char path[1200];
    cpt_err err = {0};
    cpt_model *m = NULL;
    snprintf(path, sizeof path, "%s/model", dir);
    if (cpt_model_load_hf(&m, path, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    int half = cpt_config_rot_dim(&m->cfg) / 2;
    float *inv = malloc(sizeof(float) * 2 * (half + 1));
    if (cpt_rope_init(&m->cfg, 0, inv, inv + half, &err) || cpt_rope_init(&m->cfg, seq, inv + half + 1, inv + 2 * half + 1, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    m->allow_long_context = 1;
    if (cpt_model_rope_update(m, seq, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    int64_t s2[2] = {2, half + 1}, st[2] = {seq, half};
    snprintf(path, sizeof path, "%s.inv.npy", out);
    int rc = cpt_npy_write_f32(path, inv, 2, s2, &err);
    snprintf(path, sizeof path, "%s.cos.npy", out);
    if (!rc) rc = cpt_npy_write_f32(path, m->rope_cos, 2, st, &err);
    snprintf(path, sizeof path, "%s.sin.npy", out);
    if (!rc) rc = cpt_npy_write_f32(path, m->rope_sin, 2, st, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    free(inv);
    cpt_model_free(m);
    return rc ? 1 : 0;
}

static int decode(const char *dir, int P, const char *ids_path, const char *out) {
    char path[1200];
    cpt_err err = {0};
    cpt_model *m = NULL;
    snprintf(path, sizeof path, "%s/model", dir);
    if (cpt_model_load_hf(&m, path, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    char *text = NULL;
    size_t tl = 0;
    if (cpt_read_file(ids_path, &text, &tl, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    int n = 0, cap = 1024, V = m->cfg.vocab_size;
    int32_t *ids = malloc(sizeof(int32_t) * cap);
    for (char *p = text, *q; n < cap; p = q) {
        long v = strtol(p, &q, 10);
        if (q == p) break;
        ids[n++] = (int32_t)v;
    }
    cpt_kvcache *kc = NULL;
    float *logits = malloc(sizeof(float) * (size_t)n * V);
    int rc = cpt_kvcache_create(&kc, m, n, &err);
    if (!rc) rc = cpt_model_rope_update(m, P, &err);
    for (int i = 0; !rc && i < n; i++) rc = cpt_model_decode(m, kc, ids[i], logits + (size_t)i * V, &err);
    int64_t sh[2] = {n, V};
    if (!rc) rc = cpt_npy_write_f32(out, logits, 2, sh, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    free(text), free(ids), free(logits);
    cpt_kvcache_free(kc);
    cpt_model_free(m);
    return rc ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--check")) return check_dir(argv[2]);
    if (argc == 5 && !strcmp(argv[1], "--tables")) return tables(argv[2], atoi(argv[3]), argv[4]);
    if (argc == 6 && !strcmp(argv[1], "--decode")) return decode(argv[2], atoi(argv[3]), argv[4], argv[5]);
    if (argc > 1) {
        fprintf(stderr, "usage: test_rope_parity [--check DIR | --tables DIR SEQ OUT | --decode DIR P IDS OUT.npy]\n");
        return 2;
    }
    vectors();
    TEST_END();
}
