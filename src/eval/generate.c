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
    memset(out, 0, sizeof *out);
    if (n_ids == 0 || n_ids > (1u << 30) || o->max_new < 1)
        return cpt_err_set(err, CPT_EINVAL, "generate: %zu prompt tokens, %d new (both must be positive)", n_ids, o->max_new);
    int V = m->cfg.vocab_size, rc;
    cpt_acts *a = NULL;
    cpt_kvcache *kc = NULL;
    float *logits = malloc(sizeof(float) * (size_t)V);
    cand *scratch = o->temperature > 0 ? malloc(sizeof(cand) * (size_t)V) : NULL;
    int32_t *gen = malloc(sizeof(int32_t) * (size_t)o->max_new);
    if (!logits || !gen || (o->temperature > 0 && !scratch)) {
        free(logits), free(scratch), free(gen);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    uint64_t rng = o->seed * 0x9E3779B97F4A7C15ull + 1;
    if (!rng) rng = 1;
    if (!(rc = cpt_acts_create(&a, m, 1, (int)n_ids, 0, err)) && !(rc = cpt_kvcache_create(&kc, m, (int)n_ids + o->max_new, err)))
        rc = cpt_model_prefill(m, a, kc, ids, (int)n_ids, logits, err);
    cpt_acts_free(a); /* the prompt's activations go before the decode steps */
    char *text = NULL;
    size_t tl = 0;
    for (int s = 0; !rc && s < o->max_new; s++) {
        int next = o->temperature > 0 ? cpt_sample_token(logits, V, o->temperature, o->top_p, &rng, scratch)
                                      : cpt_argmax(logits, V);
        gen[out->n_tokens++] = next;
        for (int k = 0; k < o->n_stop_ids; k++)
            if (next == o->stop_ids[k]) out->stop = 1;
        if (out->stop) break;
        if (o->n_stop_strs) {
            free(text), text = NULL;
            if ((rc = cpt_tok_decode(tok, gen, (size_t)out->n_tokens, 1, &text, &tl, err))) break;
            if (first_stop(text, o->stop_strs, o->n_stop_strs) >= 0) {
                out->stop = 2;
                break;
            }
        }
        if (s + 1 < o->max_new) rc = cpt_model_decode(m, kc, next, logits, err);
    }
    if (!rc && !text) rc = cpt_tok_decode(tok, gen, (size_t)out->n_tokens, 1, &text, &tl, err);
    if (!rc) {
        long cut = first_stop(text, o->stop_strs, o->n_stop_strs);
        if (cut >= 0) text[cut] = 0;
        out->text = text, text = NULL;
    }
    free(text);
    cpt_kvcache_free(kc);
    free(logits), free(scratch), free(gen);
    return rc;
}
