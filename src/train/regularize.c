/* regularize.c: L2-SP and EWC penalties, the empirical Fisher and its cache (cpt/regularize.h);
 * not the trainer that decides when to apply them nor the optimizer. */
#include "cpt/regularize.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/backend.h"
#include "cpt/lora.h"
#include "cpt/safetensors.h"

double cpt_reg_quad(size_t n, const float *theta, const float *center, const float *weight, float *grad,
                    double coef) {
    /* Through the backend table: a fixed-order block sum, so the logged penalty is bitwise
     * the same at any thread count. */
    return cpt_backend_default()->reg_quad(theta, center, weight, grad, n, coef);
}

/* Sum of the kernel over non-frozen tensors, in table order. */
static double quad_model(const cpt_model *m, const float *center, const float *weight, float *grads, double coef,
                         const uint8_t *frozen) {
    double total = 0.0;
    for (int i = 0; i < m->n_tensors; i++) {
        const cpt_tensor *t = &m->tensors[i];
        if (frozen && frozen[i]) continue;
        total += m->be->reg_quad(m->params + t->off, center + t->off, weight ? weight + t->off : NULL,
                                 grads ? grads + t->off : NULL, t->numel, coef);
    }
    return total;
}

double cpt_reg_l2sp(const cpt_model *m, const float *theta0, float *grads, double alpha, const uint8_t *frozen) {
    CPT_ASSERT(m && theta0 && alpha >= 0.0);
    return quad_model(m, theta0, NULL, grads, alpha, frozen);
}

double cpt_ewc_penalty(const cpt_ewc *e, const cpt_model *m, float *grads, double lambda, const uint8_t *frozen) {
    /* m may be a view of the trained tensors of the model e was made for: the state's
     * range of the view (a Fisher cache stays the whole model's, whatever is frozen) */
    size_t off = m->view_of && e->n == m->view_of->n_params ? (size_t)(m->params - m->view_of->params) : 0;
    CPT_ASSERT(e && m && (e->n == m->n_params || (m->view_of && e->n == m->view_of->n_params)) && lambda >= 0.0);
    return quad_model(m, e->theta_star + off, e->fisher + off, grads, lambda, frozen);
}

uint64_t cpt_reg_config_hash(const cpt_config *c) {
    char buf[512];
    int len = snprintf(buf, sizeof buf,
                       "arch=%d vocab=%d hidden=%d layers=%d heads=%d kv=%d head_dim=%d inter=%d tie=%d "
                       "qkv_bias=%d o_bias=%d mlp_bias=%d qk_norm=%d",
                       (int)c->arch, c->vocab_size, c->hidden_size, c->n_layers, c->n_heads, c->n_kv_heads,
                       c->head_dim, c->intermediate_size, c->tie_embeddings, c->qkv_bias, c->o_bias, c->mlp_bias,
                       c->qk_norm);
    CPT_ASSERT(len > 0 && (size_t)len < sizeof buf);
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < len; i++) h = (h ^ (uint8_t)buf[i]) * 0x100000001b3ull;
    return h;
}

void cpt_ewc_free(cpt_ewc *e) {
    if (!e) return;
    void (*fr)(void *) = e->be ? e->be->free : cpt_free_aligned;
    if (e->fisher) fr(e->fisher);
    if (e->theta_star) fr(e->theta_star);
    free(e);
}

size_t cpt_ewc_state_bytes(const cpt_model *m) { return 2 * cpt_model_buffer_bytes(m); }

/* ids and targets of one Fisher row of T inputs. */
static size_t row_buf_bytes(int T) { return 2 * sizeof(int32_t) * (size_t)T; }

int cpt_ewc_estimate_plan_bytes(const cpt_model *m, int seq_len, size_t *bytes) {
    *bytes = 0;
    if (seq_len < 2) return CPT_EINVAL;
    size_t acts = 0, tot;
    const cpt_model *P = m->lora ? m->lora->pm : m; /* the gradients are of what is trained */
    int rc = cpt_acts_plan_bytes(&m->cfg, 1, seq_len - 1, 1, CPT_RECOMPUTE_NONE, m->lora ? m->lora->cfg.rank : 0, m->lowp != NULL, &acts);
    if (rc) return rc;
    if (!cpt_add_size(acts, cpt_model_buffer_bytes(P), &tot) || !cpt_add_size(tot, row_buf_bytes(seq_len - 1), &tot)) return CPT_ENOMEM;
    *bytes = tot;
    return CPT_OK;
}

static int ewc_alloc(cpt_ewc **out, const cpt_model *m, cpt_err *err) {
    cpt_ewc *e = calloc(1, sizeof *e);
    size_t bytes = cpt_model_buffer_bytes(m); /* cpt_ewc_state_bytes counts two of these */
    if (!e) return cpt_err_set(err, CPT_ENOMEM, "EWC state: out of memory");
    e->n = m->n_params;
    /* Backend memory: the penalty's kernel reads them beside the parameters. */
    e->be = m->be;
    e->fisher = e->be->alloc(bytes);
    e->theta_star = e->be->alloc(bytes);
    if (!e->fisher || !e->theta_star) {
        cpt_ewc_free(e);
        return cpt_err_set(err, CPT_ENOMEM, "EWC state: out of memory for 2 x %zu bytes. HINT: EWC needs two extra fp32 copies of the parameters",
                           bytes);
    }
    e->config_hash = cpt_reg_config_hash(&m->cfg);
    *out = e;
    return CPT_OK;
}

/* Split row n into inputs and targets; returns the number of valid targets or an error. */
static int row_batch(const int32_t *row, int L, int n, int V, int32_t *ids, int32_t *tgt, cpt_err *err) {
    int len = L;
    for (int j = 0; j < L; j++) {
        if (row[j] == -1) {
            if (len == L) len = j;
        } else if (len < L) {
            return cpt_err_set(err, CPT_EINVAL, "Fisher sequence %d: token %d at position %d follows padding at position %d. HINT: -1 may only pad the end of a row",
                               n, row[j], j, len);
        } else if (row[j] < 0 || row[j] >= V) {
            return cpt_err_set(err, CPT_EINVAL, "Fisher sequence %d: token id %d at position %d is outside the vocabulary [0, %d). HINT: tokenize with the model's tokenizer",
                               n, row[j], j, V);
        }
    }
    if (len < 2)
        return cpt_err_set(err, CPT_EINVAL, "Fisher sequence %d has %d tokens; at least 2 are needed for one prediction. HINT: drop empty rows",
                           n, len);
    for (int j = 0; j < L - 1; j++) {
        ids[j] = j < len ? row[j] : 0; /* after the end: any valid id, it is never predicted from */
        tgt[j] = j + 1 < len ? row[j + 1] : -1;
    }
    return len - 1;
}

int cpt_ewc_estimate(cpt_ewc **out, cpt_model *m, const int32_t *tokens, int n_seqs, int seq_len, cpt_err *err) {
    CPT_ASSERT(out && m && (tokens || n_seqs <= 0));
    *out = NULL;
    if (n_seqs < 1) return cpt_err_set(err, CPT_EINVAL, "Fisher: n_seqs = %d; need at least 1 sequence. HINT: use a few hundred sequences of old-domain data", n_seqs);
    if (seq_len < 2) return cpt_err_set(err, CPT_EINVAL, "Fisher: seq_len = %d; need at least 2 tokens per row", seq_len);
    const int T = seq_len - 1;
    cpt_ewc *e = NULL;
    cpt_acts *a = NULL;
    /* P: what is trained, the model or its attached LoRA adapter's parameter set */
    cpt_lora *lo = m->lora;
    const cpt_model *P = lo ? lo->pm : m;
    float *g = m->be->alloc(cpt_model_buffer_bytes(P)); /* gradients: backend memory, as the trainer's */
    int32_t *ids = malloc(row_buf_bytes(T) / 2), *tgt = malloc(row_buf_bytes(T) / 2);
    int rc = (!g || !ids || !tgt) ? cpt_err_set(err, CPT_ENOMEM, "Fisher: out of memory") : CPT_OK;
    if (!rc) rc = ewc_alloc(&e, P, err);
    if (!rc) rc = cpt_acts_create(&a, m, 1, T, 1, err);
    if (rc) goto done;
    /* Bit for bit (cpt_ewc_check_base compares bitwise); both are backend memory. */
    m->be->copy(e->theta_star, P->params, sizeof(float) * P->n_params);
    const long long n = (long long)P->n_params;
    for (int s = 0; s < n_seqs && !rc; s++) {
        rc = row_batch(tokens + (size_t)s * seq_len, seq_len, s, m->cfg.vocab_size, ids, tgt, err);
        if (rc < 0) break;
        rc = CPT_OK;
        m->be->zero(g, sizeof(float) * P->n_params);
        cpt_batch b = {1, T, ids, tgt, NULL, NULL};
        double loss = 0;
        long long nv = 0;
        /* grad of sum_t -log p = -grad log p(x_n); the sign vanishes when squared. */
        if (lo) lo->grads = g;
        rc = cpt_model_step(m, a, &b, lo ? NULL : g, 1.0f, NULL, &loss, &nv, NULL, err);
        if (lo) lo->grads = NULL;
        if (rc) {
            cpt_err_wrap(err, "Fisher sequence %d: ", s);
            break;
        }
        m->be->sq_accum(e->fisher, g, (size_t)n);
    }
    if (rc) goto done;
    double sum = 0.0;
    for (long long i = 0; i < n; i++) sum += (double)e->fisher[i];
    if (!(sum > 0.0) || !isfinite(sum)) {
        rc = cpt_err_set(err, CPT_EINVAL, "Fisher: the squared gradients sum to %g over %d sequences. HINT: check that the sequences have valid targets and the model is not degenerate",
                         sum, n_seqs);
        goto done;
    }
    /* F_i = acc_i / N; mean(F) = sum / (N n); F_i / mean(F) = acc_i * n / sum. */
    e->n_sequences = n_seqs;
    e->fisher_raw_mean = sum / ((double)n_seqs * (double)n);
    const double scale = (double)n / sum;
    for (long long i = 0; i < n; i++) e->fisher[i] = (float)((double)e->fisher[i] * scale);
done:
    cpt_acts_free(a);
    if (g) m->be->free(g);
    free(ids), free(tgt);
    if (rc) cpt_ewc_free(e);
    else *out = e;
    return rc;
}

int cpt_ewc_save(const cpt_ewc *e, const cpt_model *m, const char *path, cpt_err *err) {
    CPT_ASSERT(e && m && e->n == m->n_params);
    const int nt = m->n_tensors;
    cpt_st_wtensor *w = calloc((size_t)2 * nt, sizeof *w);
    char *names = calloc((size_t)2 * nt, 128);
    if (!w || !names) {
        free(w), free(names);
        return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", path);
    }
    for (int k = 0; k < 2 * nt; k++) {
        const cpt_tensor *t = &m->tensors[k % nt];
        char *nm = names + (size_t)k * 128;
        snprintf(nm, 128, "%s.%s", k < nt ? "fisher" : "base", t->name);
        w[k].name = nm;
        w[k].dtype = CPT_DT_F32;
        w[k].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) w[k].shape[d] = t->shape[d];
        w[k].src_f32 = (k < nt ? e->fisher : e->theta_star) + t->off;
    }
    char hash[32], nseq[32], mean[40];
    snprintf(hash, sizeof hash, "%016" PRIx64, e->config_hash);
    snprintf(nseq, sizeof nseq, "%lld", e->n_sequences);
    snprintf(mean, sizeof mean, "%.17g", e->fisher_raw_mean);
    const char *meta[] = {"format", "cpt-ewc", "version", "1", "config_hash", hash, "n_sequences", nseq,
                          "fisher_raw_mean", mean, NULL};
    int rc = cpt_st_write(path, w, (size_t)2 * nt, meta, err);
    free(w), free(names);
    return rc;
}

static int meta_ll(const cpt_st_file *f, const char *key, long long *out, cpt_err *err) {
    const char *v = cpt_st_metadata(f, key);
    char *end = NULL;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || end == v || *end)
        return cpt_err_set(err, CPT_EFORMAT, "%s: __metadata__ \"%s\" is missing or not an integer. HINT: the file is not a cpt EWC cache; recompute it",
                           cpt_st_path(f), key);
    *out = x;
    return CPT_OK;
}

int cpt_ewc_load(cpt_ewc **out, const cpt_model *m, const char *path, cpt_err *err) {
    CPT_ASSERT(out && m && path);
    *out = NULL;
    cpt_st_file *f = NULL;
    cpt_ewc *e = NULL;
    int rc = cpt_st_open(&f, path, err);
    if (rc) return rc;
    const char *fmt = cpt_st_metadata(f, "format"), *ver = cpt_st_metadata(f, "version");
    const char *hash = cpt_st_metadata(f, "config_hash"), *mean = cpt_st_metadata(f, "fisher_raw_mean");
    if (!fmt || strcmp(fmt, "cpt-ewc") || !ver || strcmp(ver, "1")) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: __metadata__ format/version is %s/%s, expected cpt-ewc/1. HINT: pass a cache written by cpt's EWC estimation",
                         path, fmt ? fmt : "(none)", ver ? ver : "(none)");
        goto done;
    }
    long long nseq = 0;
    if ((rc = meta_ll(f, "n_sequences", &nseq, err))) goto done;
    char want[32];
    snprintf(want, sizeof want, "%016" PRIx64, cpt_reg_config_hash(&m->cfg));
    if (!hash || strcmp(hash, want)) {
        rc = cpt_err_set(err, CPT_ESTATE, "%s: config_hash %s does not match the model's %s: the cache was estimated on another architecture or size. HINT: delete the cache to re-estimate the Fisher on this model",
                         path, hash ? hash : "(none)", want);
        goto done;
    }
    char *endp = NULL;
    double raw_mean = mean ? strtod(mean, &endp) : 0.0;
    if (!mean || endp == mean || *endp || nseq < 1) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: __metadata__ fisher_raw_mean or n_sequences is invalid. HINT: recompute the cache", path);
        goto done;
    }
    if (cpt_st_count(f) != (size_t)2 * m->n_tensors) {
        /* Name a tensor the model does not have, if any; else the count is short. */
        for (size_t i = 0; i < cpt_st_count(f); i++) {
            const char *nm = cpt_st_get(f, i)->name, *dot = strchr(nm, '.');
            int known = dot && (!strncmp(nm, "fisher.", 7) || !strncmp(nm, "base.", 5)) && cpt_model_find(m, dot + 1);
            if (!known) {
                rc = cpt_err_set(err, CPT_ESTATE, "%s: tensor '%s' is not part of the model. HINT: the cache belongs to another model; delete it to re-estimate",
                                 path, nm);
                goto done;
            }
        }
    }
    if ((rc = ewc_alloc(&e, m, err))) goto done;
    for (int k = 0; k < 2 * m->n_tensors; k++) {
        const cpt_tensor *t = &m->tensors[k % m->n_tensors];
        char nm[128];
        snprintf(nm, sizeof nm, "%s.%s", k < m->n_tensors ? "fisher" : "base", t->name);
        const cpt_st_tensor *st = cpt_st_find(f, nm);
        if (!st) {
            rc = cpt_err_set(err, CPT_ESTATE, "%s: tensor '%s' is missing. HINT: the cache belongs to another model; delete it to re-estimate", path, nm);
            goto done;
        }
        int same = st->dtype == CPT_DT_F32 && st->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = st->shape[d] == t->shape[d];
        if (!same) {
            rc = cpt_err_set(err, CPT_ESTATE, "%s: tensor '%s' is %s with %d dims [%lld, %lld], the model has F32 [%lld, %lld]. HINT: the cache belongs to another model; delete it to re-estimate",
                             path, nm, cpt_dtype_name(st->dtype), st->ndim, (long long)st->shape[0],
                             st->ndim > 1 ? (long long)st->shape[1] : 1LL, (long long)t->shape[0],
                             t->ndim > 1 ? (long long)t->shape[1] : 1LL);
            goto done;
        }
        float *dst = (k < m->n_tensors ? e->fisher : e->theta_star) + t->off;
        if ((rc = cpt_st_read_f32(f, st, dst, err))) goto done;
        if (k < m->n_tensors) {
            for (size_t i = 0; i < t->numel; i++) {
                if (!(dst[i] >= 0.0f) || !isfinite(dst[i])) {
                    rc = cpt_err_set(err, CPT_EFORMAT, "%s: tensor '%s' element %zu is %g; a Fisher is finite and >= 0. HINT: the cache is corrupt; delete it to re-estimate",
                                     path, nm, i, (double)dst[i]);
                    goto done;
                }
            }
        }
    }
    e->n_sequences = nseq;
    e->fisher_raw_mean = raw_mean;
done:
    cpt_st_close(f);
    if (rc) cpt_ewc_free(e);
    else *out = e;
    return rc;
}

int cpt_ewc_check_base(const cpt_ewc *e, const cpt_model *m, cpt_err *err) {
    CPT_ASSERT(e && m && e->n == m->n_params);
    for (int i = 0; i < m->n_tensors; i++) {
        const cpt_tensor *t = &m->tensors[i];
        if (memcmp(m->params + t->off, e->theta_star + t->off, sizeof(float) * t->numel))
            return cpt_err_set(err, CPT_ESTATE, "EWC: the model's '%s' differs from the Fisher cache's base weights. HINT: the cache was estimated on another checkpoint; delete it to re-estimate (or this is a resume, where the check does not apply)",
                               t->name);
    }
    return CPT_OK;
}
