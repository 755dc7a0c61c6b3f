/* generate.c: greedy / top-p generation with a KV cache and stop strings (cpt/generate.h). */
#include "cpt/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/model.h"
#include "cpt/tokenizer.h"

typedef struct { float p; int id; } cand;

static uint64_t rng_next(uint64_t *s) { /* xorshift64* */
    *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static int cand_desc(const void *a, const void *b) {
    float x = ((const cand *)a)->p, y = ((const cand *)b)->p;
    if (x != y) return x < y ? 1 : -1;
    return ((const cand *)a)->id - ((const cand *)b)->id;
}

int cpt_argmax(const float *logits, int V) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

int cpt_sample_token(const float *logits, int V, double temp, double top_p, uint64_t *rng, void *scratch) {
    cand *buf = scratch;
    float mx = logits[0];
    for (int i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < V; i++) {
        buf[i].p = (float)exp((logits[i] - mx) / temp);
        buf[i].id = i;
        sum += buf[i].p;
    }
    for (int i = 0; i < V; i++) buf[i].p = (float)(buf[i].p / sum);
    int n = V;
    if (top_p < 1.0) {
        qsort(buf, (size_t)V, sizeof *buf, cand_desc);
        double c = 0;
        for (n = 0; n < V; n++) {
            c += buf[n].p;
            if (c >= top_p) {
                n++;
                break;
            }
        }
        if (n > V) n = V;
    }
    double mass = 0;
    for (int i = 0; i < n; i++) mass += buf[i].p;
    double r = (double)(rng_next(rng) >> 11) / 9007199254740992.0 * mass, c = 0;
    for (int i = 0; i < n; i++) {
        c += buf[i].p;
        if (r < c) return buf[i].id;
    }
    return buf[n - 1].id;
}

/* Offset of the earliest occurrence of any stop string in s, or -1. */
static long first_stop(const char *s, const char *const *stops, int n) {
    long best = -1;
    for (int k = 0; k < n; k++) {
        if (!stops[k] || !*stops[k]) continue;
        const char *p = strstr(s, stops[k]);
        if (p && (best < 0 || p - s < best)) best = p - s;
    }
    return best;
}

int cpt_generate(cpt_model *m, const cpt_tok *tok, const int32_t *ids, size_t n_ids, const cpt_gen_opts *o,
                 cpt_gen_out *out, cpt_err *err) {
    return cpt_generate_batch(m, tok, &ids, &n_ids, 1, NULL, o, out, err);
}

/* One loop for one prompt and for many: each prompt prefilled alone, then every unfinished
 * one takes a decode step per token (one prompt: cpt_model_decode; more: together,
 * cpt_model_decode_batch). */
int cpt_generate_batch(cpt_model *m, const cpt_tok *tok, const int32_t *const *ids, const size_t *n_ids, int n,
                       const uint64_t *seeds, const cpt_gen_opts *o, cpt_gen_out *outs, cpt_err *err) {
    if (n < 1 || o->max_new < 1) return cpt_err_set(err, CPT_EINVAL, "generate: %d prompts, %d new tokens", n, o->max_new);
    if (!tok && o->n_stop_strs) return cpt_err_set(err, CPT_EINVAL, "generate: stop strings need a tokenizer");
    int V = m->cfg.vocab_size, rc = CPT_OK, n_live = 0;
    for (int i = 0; i < n; i++) memset(&outs[i], 0, sizeof outs[i]);
    cpt_kvcache **kc = calloc((size_t)n, sizeof *kc), **live_kc = calloc((size_t)n, sizeof *live_kc);
    float *logits = malloc(sizeof(float) * (size_t)V * (size_t)n), *bl = malloc(sizeof(float) * (size_t)V * (size_t)n);
    int32_t *gen = malloc(sizeof(int32_t) * (size_t)o->max_new * (size_t)n), *next = malloc(sizeof(int32_t) * (size_t)n);
    int *live = malloc(sizeof(int) * (size_t)n), *done = calloc((size_t)n, sizeof(int));
    uint64_t *rng = malloc(sizeof(uint64_t) * (size_t)n);
    cand *scratch = o->temperature > 0 ? malloc(sizeof(cand) * (size_t)V) : NULL;
    cpt_decode_batch *db = NULL;
    if (!kc || !live_kc || !logits || !bl || !gen || !next || !live || !done || !rng || (o->temperature > 0 && !scratch))
        rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
    if (!rc && n > 1) rc = cpt_decode_batch_create(&db, m, n, err);
    for (int i = 0; i < n && !rc; i++) { /* each prompt prefilled alone (lengths differ) */
        cpt_acts *a = NULL;
        if (n_ids[i] == 0 || n_ids[i] > (1u << 30)) rc = cpt_err_set(err, CPT_EINVAL, "generate: prompt %d has %zu tokens", i, n_ids[i]);
        if (!rc && !(rc = cpt_acts_create(&a, m, 1, (int)n_ids[i], 0, err)) &&
            !(rc = cpt_kvcache_create(&kc[i], m, (int)n_ids[i] + o->max_new, err)))
            rc = cpt_model_prefill(m, a, kc[i], ids[i], (int)n_ids[i], logits + (size_t)i * V, err);
        cpt_acts_free(a);
        rng[i] = (seeds ? seeds[i] : o->seed) * 0x9E3779B97F4A7C15ull + 1;
        if (!rng[i]) rng[i] = 1;
    }
    char *text = NULL;
    size_t tl = 0;
    for (int step = 0; !rc && step < o->max_new; step++) {
        n_live = 0;
        for (int i = 0; i < n && !rc; i++) {
            if (done[i]) continue;
            const float *lg = logits + (size_t)i * V;
            int t = o->temperature > 0 ? cpt_sample_token(lg, V, o->temperature, o->top_p, &rng[i], scratch) : cpt_argmax(lg, V);
            int32_t *g = gen + (size_t)i * o->max_new;
            g[outs[i].n_tokens++] = t;
            for (int k = 0; k < o->n_stop_ids; k++)
                if (t == o->stop_ids[k]) outs[i].stop = 1;
            if (!outs[i].stop && o->n_stop_strs) {
                free(text), text = NULL;
                if ((rc = cpt_tok_decode(tok, g, (size_t)outs[i].n_tokens, 1, &text, &tl, err))) break;
                if (first_stop(text, o->stop_strs, o->n_stop_strs) >= 0) outs[i].stop = 2;
            }
            if (outs[i].stop || outs[i].n_tokens == o->max_new) done[i] = 1;
            else live[n_live] = i, live_kc[n_live] = kc[i], next[n_live++] = t;
        }
        if (rc || !n_live) break;
        if (!db) {
            rc = cpt_model_decode(m, live_kc[0], next[0], logits, err); /* n == 1 */
            continue;
        }
        rc = cpt_model_decode_batch(m, db, live_kc, n_live, next, bl, err);
        for (int j = 0; j < n_live && !rc; j++) memcpy(logits + (size_t)live[j] * V, bl + (size_t)j * V, sizeof(float) * (size_t)V);
    }
    free(text);
    for (int i = 0; i < n && !rc; i++) {
        if (o->ids_out) memcpy(o->ids_out + (size_t)i * o->max_new, gen + (size_t)i * o->max_new, sizeof(int32_t) * (size_t)outs[i].n_tokens);
        if (!tok) continue; /* ids only (ids_out) */
        rc = cpt_tok_decode(tok, gen + (size_t)i * o->max_new, (size_t)outs[i].n_tokens, 1, &outs[i].text, &tl, err);
        if (!rc) {
            long cut = first_stop(outs[i].text, o->stop_strs, o->n_stop_strs);
            if (cut >= 0) outs[i].text[cut] = 0;
        }
    }
    if (rc)
        for (int i = 0; i < n; i++) free(outs[i].text), outs[i].text = NULL;
    for (int i = 0; kc && i < n; i++) cpt_kvcache_free(kc[i]);
    cpt_decode_batch_free(db);
    free(kc), free(live_kc), free(logits), free(bl), free(gen), free(next), free(live), free(done), free(rng), free(scratch);
    return rc;
}
