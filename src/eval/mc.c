/* mc.c: continuation log-likelihoods through the model's forward, and the
 * multiple-choice / cloze metrics (lm-eval's acc, acc_norm, mean_stderr, perplexity). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpt/eval.h"
#include "cpt/model.h"
#include "cpt/tokenizer.h"

typedef struct {
    int32_t *ids; /* the whole sequence context + continuation (after truncation) */
    int len;      /* its length */
    int n_cont;   /* the continuation is ids[len - n_cont, len) */
} req_tok;

static int py_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* lm-eval HFLM._encode_pair (and loglikelihood()'s empty-context rule). */
static int encode_pair(const cpt_tok *tok, int max_len, const char *ctx, const char *cont, req_tok *r, cpt_err *err) {
    size_t cl = strlen(ctx), kl = strlen(cont), ns = 0;
    while (ns < cl && py_space((unsigned char)ctx[cl - 1 - ns])) ns++;
    int32_t *ce = NULL, *we = NULL;
    size_t nce = 0, nwe = 0;
    int rc = CPT_OK;
    size_t n_ctx_tok, n_all;
    if (cl == 0) { /* [prefix token] + encode(continuation) */
        int pre = cpt_tok_bos(tok) >= 0 ? cpt_tok_bos(tok) : cpt_tok_eos(tok);
        if (pre < 0)
            return cpt_err_set(err, CPT_EINVAL, "an empty context needs a BOS or EOS token. HINT: give the task a context");
        rc = cpt_tok_encode(tok, cont, kl, 0, &we, &nwe, NULL, err);
        if (rc) return rc;
        n_all = nwe + 1;
        n_ctx_tok = 1;
        r->ids = malloc(sizeof(int32_t) * n_all);
        if (!r->ids) {
            free(we);
            return cpt_err_set(err, CPT_ENOMEM, "out of memory");
        }
        r->ids[0] = pre;
        memcpy(r->ids + 1, we, sizeof(int32_t) * nwe);
    } else {
        char *whole = malloc(cl + kl + 1);
        if (!whole) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
        memcpy(whole, ctx, cl);
        memcpy(whole + cl, cont, kl + 1);
        /* the context's trailing whitespace moves to the continuation */
        rc = cpt_tok_encode(tok, ctx, cl - ns, 0, &ce, &nce, NULL, err);
        if (!rc) rc = cpt_tok_encode(tok, whole, cl + kl, 0, &we, &nwe, NULL, err);
        free(whole);
        if (rc) {
            free(ce), free(we);
            return rc;
        }
        n_ctx_tok = nce < nwe ? nce : nwe;
        n_all = nwe;
        r->ids = we, we = NULL;
    }
    free(ce), free(we);
    size_t n_cont = n_all - n_ctx_tok;
    if (n_all >= 1 && n_cont > n_all - 1) n_cont = n_all - 1; /* the first token has no prediction */
    if (n_all < 2) {
        free(r->ids), r->ids = NULL;
        return cpt_err_set(err, CPT_EINVAL, "a request of %zu token(s) has nothing to score", n_all);
    }
    /* keep the last max_len + 1 tokens: the input is all but the last */
    if (n_all > (size_t)max_len + 1) {
        size_t drop = n_all - ((size_t)max_len + 1);
        memmove(r->ids, r->ids + drop, sizeof(int32_t) * (n_all - drop));
        n_all -= drop;
        if (n_cont > n_all - 1) n_cont = n_all - 1;
    }
    r->len = (int)n_all;
    r->n_cont = (int)n_cont;
    return CPT_OK;
}

int cpt_eval_loglik(cpt_model *m, const cpt_tok *tok, const char *const *ctx, const char *const *cont, size_t n,
                    int batch, double *ll, int *greedy, int *n_tok, cpt_err *err) {
    if (batch < 1) batch = 1;
    int max_len = m->cfg.max_pos > 0 ? m->cfg.max_pos : 2048;
    int V = m->cfg.vocab_size, rc = CPT_OK;
    req_tok *rq = calloc(n ? n : 1, sizeof *rq);
    if (!rq) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) rc = encode_pair(tok, max_len, ctx[i], cont[i], &rq[i], err);
    for (size_t i = 0; i < n && !rc; i++)
        for (int t = 0; t < rq[i].len; t++)
            if (rq[i].ids[t] < 0 || rq[i].ids[t] >= V)
                rc = cpt_err_set(err, CPT_EINVAL, "token id %d is outside the model's vocabulary (%d). HINT: use the "
                                 "model's own tokenizer", rq[i].ids[t], V);
    cpt_acts *acts = NULL;
    int aB = 0, aT = 0;
    int32_t *ids = NULL, *tg = NULL;
    float *logits = NULL;
    size_t cap_tok = 0;
    for (size_t g0 = 0; g0 < n && !rc; g0 += (size_t)batch) {
        int B = (int)(n - g0 < (size_t)batch ? n - g0 : (size_t)batch), T = 1;
        for (int b = 0; b < B; b++)
            if (rq[g0 + b].len - 1 > T) T = rq[g0 + b].len - 1;
        /* round T up so consecutive batches share one activation arena */
        int Tr = (T + 31) / 32 * 32;
        if (Tr > max_len) Tr = T > max_len ? T : max_len;
        if (!acts || B != aB || Tr != aT) {
            cpt_acts_free(acts);
            acts = NULL;
            rc = cpt_acts_create(&acts, m, B, Tr, 0, err);
            if (rc) break;
            aB = B, aT = Tr;
        }
        size_t N = (size_t)B * Tr;
        if (N > cap_tok) {
            free(ids), free(tg), free(logits);
            ids = malloc(sizeof(int32_t) * N), tg = malloc(sizeof(int32_t) * N);
            logits = malloc(sizeof(float) * N * (size_t)V);
            cap_tok = N;
            if (!ids || !tg || !logits) {
                rc = cpt_err_set(err, CPT_ENOMEM, "out of memory for %zu x %d logits. HINT: lower --batch", N, V);
                break;
            }
        }
        for (int b = 0; b < B; b++) {
            const req_tok *r = &rq[g0 + b];
            int L = r->len - 1;
            for (int t = 0; t < Tr; t++) {
                ids[(size_t)b * Tr + t] = t < L ? r->ids[t] : 0;
                tg[(size_t)b * Tr + t] = (t < L && t >= L - r->n_cont) ? r->ids[t + 1] : -1;
            }
        }
        cpt_batch bt = {B, Tr, ids, tg, NULL, NULL};
        double ls = 0;
        long long nv = 0;
        rc = cpt_model_step(m, acts, &bt, NULL, 1.0f, NULL, &ls, &nv, logits, err);
        if (rc) break;
        for (int b = 0; b < B; b++) {
            const req_tok *r = &rq[g0 + b];
            int L = r->len - 1, all_greedy = 1;
            double sum = 0;
            for (int t = L - r->n_cont; t < L; t++) {
                const float *z = logits + ((size_t)b * Tr + t) * (size_t)V;
                int am = 0;
                for (int v = 1; v < V; v++)
                    if (z[v] > z[am]) am = v;
                double s = 0, mx = z[am];
                for (int v = 0; v < V; v++) s += exp((double)z[v] - mx);
                int y = r->ids[t + 1];
                sum += (double)z[y] - mx - log(s);
                if (am != y) all_greedy = 0;
            }
            if (ll) ll[g0 + b] = sum;
            if (greedy) greedy[g0 + b] = all_greedy;
            if (n_tok) n_tok[g0 + b] = r->n_cont;
        }
    }
    cpt_acts_free(acts);
    free(ids), free(tg), free(logits);
    for (size_t i = 0; i < n; i++) free(rq[i].ids);
    free(rq);
    return rc;
}

/* ---------------- metrics ---------------- */

void cpt_eval_mean_stderr(const double *x, size_t n, double *mean, double *se) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    double mu = n ? s / (double)n : NAN, v = 0;
    for (size_t i = 0; i < n; i++) v += (x[i] - mu) * (x[i] - mu);
    if (mean) *mean = mu;
    if (se) *se = n > 1 ? sqrt(v / (double)(n - 1)) / sqrt((double)n) : 0.0;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int cpt_eval_fewshot_pick(size_t n, size_t i, int k, uint64_t seed, int *out) {
    if (k <= 0) return CPT_OK;
    if ((size_t)k + 1 > n) return CPT_EINVAL;
    uint64_t s = seed * 0x100000001B3ull ^ (uint64_t)i;
    for (int j = 0; j < k;) {
        size_t c = (size_t)(splitmix64(&s) % (uint64_t)n);
        int dup = c == i;
        for (int q = 0; q < j && !dup; q++) dup = (size_t)out[q] == c;
        if (!dup) out[j++] = (int)c;
    }
    return CPT_OK;
}

/* Python len(): code points of a UTF-8 string (lm-eval's acc_norm divides by len(choice)). */
static size_t py_len(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

static char *cat3(const char *a, const char *b, const char *c) {
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *o = malloc(la + lb + lc + 1);
    if (!o) return NULL;
    memcpy(o, a, la), memcpy(o + la, b, lb), memcpy(o + la + lb, c, lc + 1);
    return o;
}

/* The few-shot prefix of item i: description + examples joined and followed by "\n\n". */
static char *fewshot_prefix(const cpt_mc_task *t, const int *shots, int k) {
    char *p = strdup(t->description ? t->description : "");
    for (int j = 0; p && j < k; j++) {
        const cpt_mc_item *e = &t->items[shots[j]];
        char *ex = t->kind == CPT_TASK_PARTIAL ? cat3(e->choices[e->gold], t->delim, e->suffix)
                                               : cat3(e->context, t->delim, e->choices[e->gold]);
        char *np = ex ? cat3(p, ex, "\n\n") : NULL;
        free(ex), free(p);
        p = np;
    }
    return p;
}

void cpt_eval_result_free(cpt_eval_result *r) {
    if (!r) return;
    free(r->ll_off), free(r->ll), free(r->greedy), free(r->pred), free(r->pred_norm), free(r->shots);
    memset(r, 0, sizeof *r);
}

int cpt_eval_task_run(cpt_model *m, const cpt_tok *tok, const cpt_mc_task *t, const cpt_eval_opts *o,
                      cpt_eval_result *r, cpt_err *err) {
    memset(r, 0, sizeof *r);
    size_t n = o->limit && o->limit < t->n ? o->limit : t->n;
    int k = o->fewshot > 0 ? o->fewshot : 0;
    if (k && (size_t)k + 1 > t->n)
        return cpt_err_set(err, CPT_EINVAL, "--fewshot %d needs at least %d items in the task file, it has %zu", k, k + 1,
                           t->n);
    r->n = n, r->fewshot = k;
    r->ll_off = calloc(n + 1, sizeof *r->ll_off);
    r->pred = calloc(n ? n : 1, sizeof(int)), r->pred_norm = calloc(n ? n : 1, sizeof(int));
    r->shots = calloc(n * (size_t)k + 1, sizeof(int));
    if (!r->ll_off || !r->pred || !r->pred_norm || !r->shots) {
        cpt_eval_result_free(r);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) r->ll_off[i + 1] = r->ll_off[i] + (size_t)t->items[i].n_choices;
    size_t nr = r->ll_off[n];
    r->ll = calloc(nr + 1, sizeof(double));
    r->greedy = calloc(nr + 1, sizeof(int));
    char **ctx = calloc(nr + 1, sizeof(char *)), **cont = calloc(nr + 1, sizeof(char *));
    double *x = calloc(n + 1, sizeof(double)), *xn = calloc(n + 1, sizeof(double));
    int *ntok = calloc(nr + 1, sizeof(int));
    int rc = (!r->ll || !r->greedy || !ctx || !cont || !x || !xn || !ntok) ? cpt_err_set(err, CPT_ENOMEM, "out of memory") : CPT_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        const cpt_mc_item *it = &t->items[i];
        int *sh = r->shots + i * (size_t)k;
        cpt_eval_fewshot_pick(t->n, i, k, o->seed, sh);
        char *pre = fewshot_prefix(t, sh, k);
        if (!pre) {
            rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
            break;
        }
        for (int c = 0; c < it->n_choices && !rc; c++) {
            size_t q = r->ll_off[i] + (size_t)c;
            if (t->kind == CPT_TASK_PARTIAL) {
                ctx[q] = cat3(pre, it->choices[c], "");
                cont[q] = cat3(t->delim, it->suffix, "");
            } else {
                ctx[q] = cat3(pre, it->context, "");
                cont[q] = cat3(t->delim, it->choices[c], "");
            }
            if (!ctx[q] || !cont[q]) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
        }
        free(pre);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!rc)
        rc = cpt_eval_loglik(m, tok, (const char *const *)ctx, (const char *const *)cont, nr, o->batch, r->ll, r->greedy,
                             ntok, err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    double llsum = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const cpt_mc_item *it = &t->items[i];
        const double *l = r->ll + r->ll_off[i];
        if (t->kind == CPT_TASK_CLOZE) {
            r->pred[i] = r->pred_norm[i] = r->greedy[r->ll_off[i]];
            x[i] = r->pred[i];
            xn[i] = l[0] / (double)(ntok[r->ll_off[i]] > 0 ? ntok[r->ll_off[i]] : 1);
            llsum += l[0];
            continue;
        }
        int am = 0, an = 0;
        double bn = -INFINITY;
        for (int c = 0; c < it->n_choices; c++) {
            if (l[c] > l[am]) am = c;
            size_t len = py_len(it->choices[c]);
            double v = l[c] / (double)(len ? len : 1);
            if (c == 0 || v > bn) bn = v, an = c;
        }
        r->pred[i] = am, r->pred_norm[i] = an;
        x[i] = am == it->gold;
        xn[i] = an == it->gold;
    }
    if (!rc) {
        cpt_eval_mean_stderr(x, n, &r->acc, &r->acc_stderr);
        if (t->has_norm) cpt_eval_mean_stderr(xn, n, &r->acc_norm, &r->acc_norm_stderr);
        else r->acc_norm = r->acc_norm_stderr = NAN;
        r->ppl = t->kind == CPT_TASK_CLOZE && n ? exp(-llsum / (double)n) : NAN;
        r->ll_tok = r->ll_tok_stderr = NAN;
        if (t->kind == CPT_TASK_CLOZE) cpt_eval_mean_stderr(xn, n, &r->ll_tok, &r->ll_tok_stderr);
    }
    for (size_t q = 0; ctx && cont && q < nr; q++) free(ctx[q]), free(cont[q]);
    free(ctx), free(cont), free(x), free(xn), free(ntok);
    if (rc) cpt_eval_result_free(r);
    return rc;
}
