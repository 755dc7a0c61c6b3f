/* test_lora_peft.c: cpt's LoRA against Hugging Face PEFT + transformers (fp32), and
 * PEFT adapter directories both ways (src/io/peft.c). The PEFT side is
 * tests/oracle/peft_lora.py, run here with system() on the oracle fixture models
 * (tests/oracle/make_fixtures.py): GQA + tied, MHA + untied, Qwen3 (q/k norm, GQA).
 * cpt-test: needs-oracle
 * Per case:
 *  1. PEFT wraps the HF base (random lora_B, perturbed modules_to_save copies) and
 *     saves the adapter; cpt_lora_load_peft reads it onto cpt's base; cpt's logits and
 *     the gradient of every adapter tensor (loss = sum of CE over valid shifted
 *     labels) must equal PEFT's: max |diff| / max |ref| per tensor < 1e-4 (as
 *     test_hf_parity).
 *  2. cpt makes its own adapter (cpt_lora_create, random B), saves it with
 *     cpt_lora_save_peft, merges (cpt_lora_merge) and saves the merged model; PEFT
 *     loads the saved adapter: its logits equal cpt's within 1e-4 relative, and its
 *     merge_and_unload() equals cpt's merged weights within 1e-5 absolute.
 *     Decoding with the adapter unmerged (KV cache, one token at a time and a batch of
 *     sequences) gives PEFT's logits at every position within 1e-4 relative.
 *  3. Bad adapter directories: a missing tensor, a wrong rank, DoRA, name the file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "cpt/backend.h"
#include "cpt/fileio.h"
#include "cpt/lora.h"
#include "fixture_util.h"
#include "testutil.h"

static const char *fx_root, *src, *tmp;
static uint64_t rng = 777;
static double urand(void) { return (cpt_splitmix64(&rng) >> 11) * 0x1.0p-53; }

typedef struct {
    const char *fixture, *targets, *mts;
    int rank;
    double alpha;
    int rslora;
} lcase;

static int run_py(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "python3 %s/tests/oracle/peft_lora.py %s", src, args);
    int rc = system(cmd);
    if (rc == -1) return -1;
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Generation with the adapter unmerged: every sequence decoded token by token through a
 * KV cache (cpt_model_decode), and all of them together (cpt_model_decode_batch); the
 * logits at each position against PEFT's full forward, within tol relative. */
static void decode_check(cpt_model *m, const int32_t *ids, int B, int T, const float *ref, const char *name) {
    int V = m->cfg.vocab_size;
    cpt_err e = {0};
    float *lg = malloc(sizeof(float) * (size_t)B * T * V), *row = malloc(sizeof(float) * (size_t)B * V);
    cpt_kvcache **kc = calloc((size_t)B, sizeof *kc);
    cpt_decode_batch *db = NULL;
    for (int b = 0; b < B; b++) CHECK_OK(cpt_kvcache_create(&kc[b], m, T, &e), &e);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T && kc[b]; t++) CHECK_OK(cpt_model_decode(m, kc[b], ids[b * T + t], lg + ((size_t)b * T + t) * V, &e), &e);
    double de = tu_rel_err(lg, ref, (size_t)B * T * V);
    CHECKF(de < 1e-4, "%s: decode with the adapter: logits rel err %.3g vs PEFT (tol 1e-4)", name, de);
    for (int b = 0; b < B; b++) {
        cpt_kvcache_free(kc[b]);
        kc[b] = NULL;
        CHECK_OK(cpt_kvcache_create(&kc[b], m, T, &e), &e);
    }
    CHECK_OK(cpt_decode_batch_create(&db, m, B, &e), &e);
    int32_t *tok = malloc(sizeof(int32_t) * B);
    double be = 0;
    for (int t = 0; t < T && db; t++) {
        for (int b = 0; b < B; b++) tok[b] = ids[b * T + t];
        CHECK_OK(cpt_model_decode_batch(m, db, kc, B, tok, row, &e), &e);
        for (int b = 0; b < B; b++) memcpy(lg + ((size_t)b * T + t) * V, row + (size_t)b * V, sizeof(float) * V);
    }
    be = tu_rel_err(lg, ref, (size_t)B * T * V);
    CHECKF(be < 1e-4, "%s: batched decode with the adapter: logits rel err %.3g vs PEFT (tol 1e-4)", name, be);
    printf("%-17s decode with the adapter: logits %.2e (one at a time), %.2e (batch of %d)\n", name, de, be, B);
    cpt_decode_batch_free(db);
    for (int b = 0; b < B; b++) cpt_kvcache_free(kc[b]);
    free(kc), free(tok), free(lg), free(row);
}

/* Forward (+ adapter gradients when g) of m on the fixture's batch; logits [B*T*V]. */
static int step(cpt_model *m, cpt_lora *lo, const int32_t *ids, const int32_t *tgt, int B, int T, float *g, float *logits) {
    cpt_err e = {0};
    cpt_acts *a = NULL;
    CHECK_OK(cpt_acts_create(&a, m, B, T, g != NULL, &e), &e);
    if (!a) return -1;
    cpt_batch b = {B, T, ids, tgt, NULL, NULL};
    double ls = 0;
    long long nv = 0;
    if (lo) lo->grads = g;
    int rc = cpt_model_step(m, a, &b, NULL, 1.0f, NULL, &ls, &nv, logits, &e);
    CHECK_OK(rc, &e);
    if (lo) lo->grads = NULL;
    cpt_acts_free(a);
    return rc;
}

static int run_case(const lcase *c) {
    char fx[1024], out[1024], path[1200], args[3000];
    snprintf(fx, sizeof fx, "%s/%s", fx_root, c->fixture);
    snprintf(out, sizeof out, "%s/lora_peft_%s", tmp, c->fixture);
    cpt_err e = {0};
    CHECK_OK(cpt_mkdirs(out, &e), &e);
    snprintf(args, sizeof args, "make %s %s %d %g %s %s %d", fx, out, c->rank, c->alpha, c->targets, c->mts, c->rslora);
    int prc = run_py(args);
    if (prc == 77) return 77;
    CHECKF(prc == 0, "%s: peft_lora.py make failed (%d)", c->fixture, prc);
    if (prc) return 0;

    cpt_model *m = NULL;
    snprintf(path, sizeof path, "%s/model", fx);
    CHECK_OK(cpt_model_load_hf(&m, path, &e), &e);
    if (!m) return 0;
    CHECK_OK(cpt_model_set_backend(m, cpt_backend_cpu(), &e), &e);
    snprintf(path, sizeof path, "%s/ref.safetensors", fx);
    cpt_st_file *ref = NULL, *pref = NULL;
    CHECK_OK(cpt_st_open(&ref, path, &e), &e);
    snprintf(path, sizeof path, "%s/peft_ref.safetensors", out);
    CHECK_OK(cpt_st_open(&pref, path, &e), &e);
    if (!ref || !pref) goto end;
    const cpt_st_tensor *ti = NULL;
    int32_t *ids = fx_i32(ref, "input_ids", &ti), *labels = fx_i32(ref, "labels", NULL);
    int B = (int)ti->shape[0], T = (int)ti->shape[1], V = m->cfg.vocab_size;
    size_t NV = (size_t)B * T * V;
    int32_t *tgt = malloc(sizeof(int32_t) * B * T);
    fx_shift_labels(tgt, labels, B, T);
    float *logits = malloc(sizeof(float) * NV);

    /* 1. PEFT's adapter in cpt: logits and every adapter gradient. */
    cpt_lora *lo = NULL;
    snprintf(path, sizeof path, "%s/peft_adapter", out);
    CHECK_OK(cpt_lora_load_peft(&lo, m, path, &e), &e);
    if (lo) {
        CHECKF(fabsf(lo->scale - (float)(c->rslora ? c->alpha / sqrt(c->rank) : c->alpha / c->rank)) < 1e-6f, "scale %g", lo->scale);
        float *g = calloc(lo->pm->n_params, sizeof(float));
        step(m, lo, ids, tgt, B, T, g, logits);
        float *rl = fx_f32(pref, "logits", NULL);
        double le = tu_rel_err(logits, rl, NV), worst = 0;
        CHECKF(le < 1e-4, "%s: logits rel err %.3g vs PEFT (tol 1e-4)", c->fixture, le);
        decode_check(m, ids, B, T, rl, c->fixture);
        const char *wn = "";
        int ng = 0;
        for (int i = 0; i < lo->pm->n_tensors; i++) {
            const cpt_tensor *t = &lo->pm->tensors[i];
            char gname[160];
            snprintf(gname, sizeof gname, "grad.%s", t->name);
            size_t n = 0;
            float *rg = fx_f32(pref, gname, &n);
            CHECKF(rg && n == t->numel, "%s: PEFT has no gradient for %s", c->fixture, t->name);
            if (!rg) continue;
            double ge = tu_rel_err(g + t->off, rg, n);
            CHECKF(ge < 1e-4, "%s: gradient of %s rel err %.3g vs PEFT (tol 1e-4)", c->fixture, t->name, ge);
            if (ge > worst) worst = ge, wn = t->name;
            ng++;
            free(rg);
        }
        CHECKF((size_t)ng + 1 == cpt_st_count(pref), "%s: %d cpt adapter tensors, PEFT has %zu trainable", c->fixture, ng,
               cpt_st_count(pref) - 1);
        printf("%-17s PEFT adapter in cpt: logits %.2e, %d grads, worst %.2e (%s)\n", c->fixture, le, ng, worst, wn);
        free(rl), free(g);
        cpt_lora_free(lo);
        lo = NULL;
    }

    /* 2. cpt's own adapter, saved, loaded by PEFT; merge vs merge_and_unload. */
    cpt_lora_cfg lc = {.rank = c->rank, .alpha = c->alpha, .use_rslora = c->rslora};
    char tl[256];
    snprintf(tl, sizeof tl, "%s", c->targets);
    for (char *s = strtok(tl, ","); s; s = strtok(NULL, ",")) lc.targets |= cpt_lora_target_bits(s);
    lc.save_embed = !m->cfg.tie_embeddings && strstr(c->mts, "embed_tokens") != NULL; /* tied + copy cannot merge */
    lc.save_lm_head = strstr(c->mts, "lm_head") != NULL;
    CHECK_OK(cpt_lora_create(&lo, m, &lc, 5, &e), &e);
    if (lo) {
        cpt_model *pm = lo->pm;
        for (int i = 0; i < pm->n_tensors; i++) {
            const cpt_tensor *t = &pm->tensors[i];
            int isB = strstr(t->name, "lora_B") != NULL, isA = strstr(t->name, "lora_A") != NULL;
            for (size_t j = 0; j < t->numel; j++)
                if (isB) pm->params[t->off + j] = (float)(0.6 * (urand() - 0.5));
                else if (!isA) pm->params[t->off + j] += (float)(0.1 * (urand() - 0.5));
        }
        step(m, lo, ids, tgt, B, T, NULL, logits);
        snprintf(path, sizeof path, "%s/cpt_adapter", out);
        CHECK_OK(cpt_lora_save_peft(lo, path, fx, &e), &e);
        cpt_st_wtensor wt = {.name = "logits", .dtype = CPT_DT_F32, .ndim = 3, .shape = {B, T, V}, .src_f32 = logits};
        snprintf(path, sizeof path, "%s/cpt_logits.safetensors", out);
        CHECK_OK(cpt_st_write(path, &wt, 1, NULL, &e), &e);
        CHECK_OK(cpt_lora_merge(lo, &e), &e);
        cpt_lora_free(lo);
        snprintf(path, sizeof path, "%s/cpt_merged", out);
        CHECK_OK(cpt_model_save_hf(m, path, CPT_DT_F32, 0, NULL, &e), &e);
        snprintf(args, sizeof args, "check %s %s", fx, out);
        prc = run_py(args);
        CHECKF(prc == 0, "%s: PEFT check of cpt's adapter and merge failed (%d)", c->fixture, prc);
    }
    free(ids), free(labels), free(tgt), free(logits);
end:
    cpt_st_close(ref);
    cpt_st_close(pref);
    cpt_model_free(m);
    return 0;
}

static void write_text(const char *path, const char *s) {
    cpt_err e = {0};
    CHECK_OK(cpt_write_file_atomic(path, s, strlen(s), &e), &e);
}

/* 3. Adapter directories cpt must refuse, with the file named. */
static void bad_dirs(void) {
    char fx[1024], dir[1200], path[1300];
    snprintf(fx, sizeof fx, "%s/llama_gqa_tied/model", fx_root);
    snprintf(dir, sizeof dir, "%s/lora_peft_bad", tmp);
    cpt_err e = {0};
    cpt_model *m = NULL;
    CHECK_OK(cpt_model_load_hf(&m, fx, &e), &e);
    if (!m) return;
    CHECK_OK(cpt_model_set_backend(m, cpt_backend_cpu(), &e), &e);
    cpt_lora_cfg lc = {.rank = 2, .alpha = 4, .targets = (1u << CPT_LORA_Q) | (1u << CPT_LORA_V)};
    cpt_lora *lo = NULL;
    CHECK_OK(cpt_lora_create(&lo, m, &lc, 1, &e), &e);
    CHECK_OK(cpt_lora_save_peft(lo, dir, NULL, &e), &e);
    cpt_lora_free(lo);
    /* round trip in cpt */
    lo = NULL;
    CHECK_OK(cpt_lora_load_peft(&lo, m, dir, &e), &e);
    if (lo) CHECK(lo->cfg.rank == 2 && lo->cfg.targets == lc.targets && fabsf(lo->scale - 2.0f) < 1e-6f);
    cpt_lora_free(lo);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    /* target_modules wider than the tensors: a missing tensor */
    write_text(path, "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4, \"target_modules\": [\"q_proj\", \"v_proj\", \"o_proj\"]}");
    lo = NULL, e = (cpt_err){0};
    CHECK(cpt_lora_load_peft(&lo, m, dir, &e) == CPT_EFORMAT && strstr(e.msg, "adapter_model.safetensors") &&
          strstr(e.msg, "o_proj.lora_A") && strstr(e.msg, "HINT"));
    CHECK(!lo && !m->lora);
    write_text(path, "{\"peft_type\": \"LORA\", \"r\": 3, \"lora_alpha\": 4, \"target_modules\": [\"q_proj\", \"v_proj\"]}");
    e = (cpt_err){0};
    CHECK(cpt_lora_load_peft(&lo, m, dir, &e) == CPT_EFORMAT && strstr(e.msg, "expected [3,"));
    write_text(path, "{\"peft_type\": \"LORA\", \"r\": 2, \"use_dora\": true, \"target_modules\": [\"q_proj\", \"v_proj\"]}");
    e = (cpt_err){0};
    CHECK(cpt_lora_load_peft(&lo, m, dir, &e) == CPT_EUNSUPPORTED && strstr(e.msg, "use_dora") && strstr(e.msg, "adapter_config.json"));
    write_text(path, "{\"peft_type\": \"LORA\", \"r\": 2, \"target_modules\": \".*attn.*\"}");
    e = (cpt_err){0};
    CHECK(cpt_lora_load_peft(&lo, m, dir, &e) == CPT_EUNSUPPORTED && strstr(e.msg, "regular expression"));
    write_text(path, "{\"peft_type\": \"LORA\", \"r\": 2,");
    e = (cpt_err){0};
    CHECK(cpt_lora_load_peft(&lo, m, dir, &e) == CPT_EFORMAT && strstr(e.msg, "adapter_config.json:"));
    CHECK(!lo && !m->lora);
    cpt_model_free(m);
}

int main(void) {
    fx_root = tu_env("CPT_FIXTURES");
    src = tu_env("CPT_SRC");
    tmp = tu_env("CPT_TMP");
    if (!fx_root || !src || !tmp) TEST_SKIP("CPT_FIXTURES / CPT_SRC / CPT_TMP not set");
    static const lcase cases[] = {
        {"llama_gqa_tied", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "embed_tokens", 4, 8, 0},
        {"llama_mha_untied", "q_proj,v_proj,down_proj", "embed_tokens,lm_head", 3, 5, 1},
        {"qwen3", "k_proj,o_proj,gate_proj,up_proj", "lm_head", 2, 7, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (run_case(&cases[i]) == 77) TEST_SKIP("peft is not installed (pip install -r tests/requirements.txt)");
    bad_dirs();
    TEST_END();
}
