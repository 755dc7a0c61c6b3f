/* test_recompute.c: activation recomputation (training.recompute full / selective)
 * must give BITWISE the same loss and gradients as keeping everything (none), because
 * the backward re-runs the same kernels in the same order on the same inputs. Random
 * configs cover GQA, biases, tied/untied heads, the Qwen3 q/k norm, partial RoPE, and
 * several (B, T) including packed segments with per-document positions and ignored
 * targets. Tolerance: 0 (memcmp). Also checks cpt_acts_plan_bytes equals the bytes
 * cpt_acts_create_ex allocates, and that full < selective < none in memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/model.h"
#include "testutil.h"
#include "tiny_models.h"

static uint64_t rs = 0x1234567;
static uint32_t rnd(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (uint32_t)(rs >> 11);
}

static cpt_model *make(const tcfg *t, uint64_t seed) { return tiny_model(t, seed, 0.2f); }

/* One batch through each mode; compare loss sum, n_valid and every gradient bit. */
static void run(const tcfg *t, int B, int T, int packed) {
    cpt_model *m = make(t, 7 + (uint64_t)B * 31 + (uint64_t)T);
    if (!m) return;
    int N = B * T;
    int32_t *ids = malloc(sizeof(int32_t) * N), *tg = malloc(sizeof(int32_t) * N);
    int32_t *pos = malloc(sizeof(int32_t) * N), *seg = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) {
        ids[i] = (int32_t)(rnd() % (uint32_t)t->V);
        tg[i] = rnd() % 7 == 0 ? -1 : (int32_t)(rnd() % (uint32_t)t->V);
    }
    /* Packed: documents of random length with positions restarting at each one. */
    for (int b = 0; b < B; b++) {
        int s = 0, p = 0;
        for (int j = 0; j < T; j++) {
            if (packed && j > 0 && rnd() % 5 == 0) s++, p = 0;
            seg[b * T + j] = s, pos[b * T + j] = p++;
        }
    }
    cpt_batch bt = {B, T, ids, tg, packed ? pos : NULL, packed ? seg : NULL};
    size_t P = m->n_params;
    float *g[3];
    double loss[3];
    long long nv[3];
    size_t bytes[3];
    for (int mode = 0; mode < 3; mode++) {
        cpt_err e = {0};
        cpt_acts *a = NULL;
        g[mode] = calloc(P, sizeof(float));
        CHECK_OK(cpt_acts_create_ex(&a, m, B, T, 1, mode, &e), &e);
        if (!a) continue;
        size_t planned = 0;
        CHECK(cpt_acts_plan_bytes(&m->cfg, B, T, 1, mode, 0, 0, &planned) == CPT_OK);
        bytes[mode] = cpt_acts_bytes(a);
        CHECKF(planned == bytes[mode], "%s B%d T%d mode %d: plan %zu bytes, allocated %zu", t->name, B, T, mode,
               planned, bytes[mode]);
        /* Twice: the second step reuses a dirty arena, as training does. */
        for (int rep = 0; rep < 2; rep++) {
            memset(g[mode], 0, P * sizeof(float));
            CHECK_OK(cpt_model_step(m, a, &bt, g[mode], 0.01f, NULL, &loss[mode], &nv[mode], NULL, &e), &e);
        }
        cpt_acts_free(a);
    }
    const char *mn[3] = {"none", "full", "selective"};
    for (int mode = 1; mode < 3; mode++) {
        CHECKF(memcmp(&loss[mode], &loss[0], sizeof(double)) == 0 && nv[mode] == nv[0],
               "%s B%d T%d packed%d %s: loss %.17g (n %lld) vs none %.17g (n %lld)", t->name, B, T, packed, mn[mode],
               loss[mode], nv[mode], loss[0], nv[0]);
        size_t diff = 0, first = P;
        for (size_t i = 0; i < P; i++)
            if (memcmp(&g[mode][i], &g[0][i], sizeof(float))) diff++, first = first < i ? first : i;
        CHECKF(diff == 0, "%s B%d T%d packed%d %s: %zu of %zu gradient values differ (first at %zu)", t->name, B, T,
               packed, mn[mode], diff, P, first);
    }
    /* Memory ordering (only meaningful with more than one layer to drop). */
    CHECKF(bytes[1] < bytes[2] && bytes[2] < bytes[0], "%s: bytes full %zu, selective %zu, none %zu", t->name,
           bytes[1], bytes[2], bytes[0]);
    int nz = 0;
    for (size_t i = 0; i < P; i++) nz += g[0][i] != 0.0f;
    CHECKF(nz > (int)(P / 2), "%s: gradients mostly zero (%d of %zu nonzero): the test would be vacuous", t->name, nz, P);
    for (int mode = 0; mode < 3; mode++) free(g[mode]);
    free(ids), free(tg), free(pos), free(seg);
    cpt_model_free(m);
}

int main(void) {
    static const int BT[][3] = {{1, 1, 0}, {1, 17, 0}, {2, 33, 1}, {3, 64, 1}, {2, 130, 0}};
    for (size_t c = 0; c < sizeof CFGS / sizeof CFGS[0]; c++)
        for (size_t k = 0; k < sizeof BT / sizeof BT[0]; k++) run(&CFGS[c], BT[k][0], BT[k][1], BT[k][2]);
    /* Bad mode and sizes are refused. */
    size_t b = 0;
    cpt_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 10, c.hidden_size = 8, c.n_layers = 1, c.n_heads = 1, c.n_kv_heads = 1, c.head_dim = 8;
    c.intermediate_size = 8;
    CHECK(cpt_acts_plan_bytes(&c, 1, 4, 1, 3, 0, 0, &b) == CPT_EINVAL);
    CHECK(cpt_acts_plan_bytes(&c, 0, 4, 1, 0, 0, 0, &b) == CPT_EINVAL);
    CHECK(cpt_acts_plan_bytes(&c, 1 << 30, 1 << 30, 1, 0, 0, 0, &b) == CPT_ENOMEM);
    TEST_END();
}
