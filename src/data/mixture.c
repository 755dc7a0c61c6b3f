/* mixture.c: the stateless mixture plan (phases, SWRR source pattern, cursors, caps, Feistel epochs); no shard I/O or packing. */
#include "cpt/mixture.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct mix_phase {
    uint64_t start, end; /* [start, end) in sequences; end UINT64_MAX = open */
    uint32_t *n;         /* [K] quantised weights, sum B */
    uint16_t *pat;       /* [B] source of each slot */
    uint32_t *ord;       /* [B] occurrences of pat[s] in slots before s */
    uint64_t *cursor;    /* [K] draws of each source before this phase */
} mix_phase;

struct cpt_mix {
    size_t K, P;
    uint32_t B;
    uint64_t seed;
    int sequential;      /* 1: sequence id = place in the epoch (no permutation) */
    char **names;        /* [K] */
    uint64_t *N;         /* [K] sequences per epoch */
    uint64_t *cap;       /* [K] max draws, UINT64_MAX = unlimited */
    uint64_t capacity;   /* first index past a cap */
    uint32_t cap_source;
    mix_phase *ph;       /* [P] */
};


uint64_t cpt_mix_permute(uint64_t key, uint64_t n, uint64_t j) {
    CPT_ASSERT(n >= 1 && j < n);
    if (n == 1) return 0;
    /* Balanced Feistel over 2^(2h) >= n (< 4n), cycle-walking: applying the bijection
     * again until the value lands in [0, n) restricts it to a bijection of [0, n). */
    unsigned bits = 64u - (unsigned)__builtin_clzll(n - 1);
    unsigned h = (bits + 1) / 2;
    uint64_t mask = h == 64 ? ~0ull : ((1ull << h) - 1);
    uint64_t x = j;
    do {
        uint64_t L = x >> h, R = x & mask;
        for (uint64_t r = 0; r < 4; r++) {
            uint64_t F = cpt_mix64(key ^ cpt_mix64(R + 0x9E3779B97F4A7C15ull * (r + 1))) & mask;
            uint64_t nl = R;
            R = L ^ F;
            L = nl;
        }
        x = (L << h) | R;
    } while (x >= n);
    return x;
}

static uint64_t epoch_key(uint64_t seed, uint64_t k, uint64_t e) {
    return cpt_mix64(seed ^ cpt_mix64(0x5EED0000ull + k) ^ cpt_mix64(0xE90C0000ull ^ (e * 0x9E3779B97F4A7C15ull)));
}

void cpt_mix_close(cpt_mix *m) {
    if (!m) return;
    for (size_t k = 0; k < m->K && m->names; k++) free(m->names[k]);
    for (size_t p = 0; p < m->P && m->ph; p++) {
        free(m->ph[p].n);
        free(m->ph[p].pat);
        free(m->ph[p].ord);
        free(m->ph[p].cursor);
    }
    free(m->names);
    free(m->N);
    free(m->cap);
    free(m->ph);
    free(m);
}

/* Largest-remainder quantisation of weights to integers summing to B. */
static int quantise(const cpt_mix_cfg *cfg, size_t p, uint32_t B, uint32_t *n, cpt_err *err) {
    size_t K = cfg->n_sources;
    const double *w = cfg->phases[p].weights;
    if (!w)
        return cpt_err_set(err, CPT_EINVAL, "mixture phase %zu: weights missing. HINT: give one weight per source",
                           p);
    double sum = 0;
    for (size_t k = 0; k < K; k++) {
        if (!(w[k] >= 0) || !isfinite(w[k]))
            return cpt_err_set(err, CPT_EINVAL,
                               "mixture phase %zu: weight of source '%s' is %g. HINT: weights must be finite and >= 0",
                               p, cfg->sources[k].name, w[k]);
        sum += w[k];
    }
    if (!(sum > 0))
        return cpt_err_set(err, CPT_EINVAL, "mixture phase %zu: all weights are 0. HINT: give some source a positive weight",
                           p);
    double *frac = malloc(K * sizeof *frac);
    if (!frac) return cpt_err_set(err, CPT_ENOMEM, "mixture: out of memory");
    uint64_t tot = 0;
    for (size_t k = 0; k < K; k++) {
        double x = w[k] / sum * B;
        n[k] = (uint32_t)floor(x);
        frac[k] = x - n[k];
        tot += n[k];
    }
    while (tot < B) { /* hand out the remaining slots by largest remainder, ties to lowest k */
        size_t best = K;
        for (size_t k = 0; k < K; k++)
            if (w[k] > 0 && (best == K || frac[k] > frac[best])) best = k;
        n[best]++;
        frac[best] = -1;
        tot++;
    }
    free(frac);
    for (size_t k = 0; k < K; k++)
        if (w[k] > 0 && n[k] == 0)
            return cpt_err_set(err, CPT_EINVAL,
                               "mixture phase %zu: weight %g of source '%s' rounds to 0 at period %u. "
                               "HINT: raise cfg.period or the weight",
                               p, w[k] / sum, cfg->sources[k].name, B);
    return CPT_OK;
}

/* Global end of phase p in sequences. */
static int phase_end(const cpt_mix_cfg *cfg, size_t p, uint64_t *out, cpt_err *err) {
    uint64_t e = cfg->phases[p].end;
    if (e == UINT64_MAX) {
        if (p + 1 != cfg->n_phases)
            return cpt_err_set(err, CPT_EINVAL,
                               "mixture phase %zu: open end (UINT64_MAX) on a phase that is not the last. "
                               "HINT: give every phase but the last a finite boundary", p);
        *out = UINT64_MAX;
        return CPT_OK;
    }
    if (cfg->unit == CPT_MIX_UNIT_SEQS) {
        *out = e;
    } else if (cfg->unit == CPT_MIX_UNIT_TOKENS) {
        if (cfg->seq_len == 0)
            return cpt_err_set(err, CPT_EINVAL, "mixture: phase ends are in tokens but seq_len is 0. HINT: set seq_len");
        *out = e / cfg->seq_len + (e % cfg->seq_len != 0);
    } else if (cfg->unit == CPT_MIX_UNIT_STEPS) {
        if (cfg->global_batch == 0)
            return cpt_err_set(err, CPT_EINVAL,
                               "mixture: phase ends are in steps but global_batch is 0. HINT: set global_batch");
        if (__builtin_mul_overflow(e, cfg->global_batch, out) || *out == UINT64_MAX)
            return cpt_err_set(err, CPT_EINVAL, "mixture phase %zu: end %llu steps overflows. HINT: use a smaller boundary",
                               p, (unsigned long long)e);
    } else {
        return cpt_err_set(err, CPT_EINVAL, "mixture: unknown boundary unit %d. HINT: use CPT_MIX_UNIT_*", cfg->unit);
    }
    return CPT_OK;
}

/* Draws of source k among the first t samples of phase ph (t <= phase length). */
static uint64_t phase_count(const cpt_mix *m, const mix_phase *ph, size_t k, uint64_t t) {
    uint64_t c = (t / m->B) * ph->n[k];
    uint32_t r = (uint32_t)(t % m->B);
    for (uint32_t s = 0; s < r; s++) c += ph->pat[s] == k;
    return c;
}

int cpt_mix_open(cpt_mix **out, const cpt_mix_cfg *cfg, cpt_err *err) {
    *out = NULL;
    size_t K = cfg->n_sources, P = cfg->n_phases;
    if (K < 1 || K > CPT_MIX_MAX_SOURCES || !cfg->sources)
        return cpt_err_set(err, CPT_EINVAL, "mixture: %zu sources. HINT: give 1 to %d sources", K,
                           CPT_MIX_MAX_SOURCES);
    if (P < 1 || !cfg->phases)
        return cpt_err_set(err, CPT_EINVAL, "mixture: no phases. HINT: give at least one phase");
    uint32_t B = cfg->period ? cfg->period : CPT_MIX_DEFAULT_PERIOD;
    if (B > (1u << 20))
        return cpt_err_set(err, CPT_EINVAL, "mixture: period %u exceeds %u. HINT: lower cfg.period", B, 1u << 20);
    cpt_mix *m = calloc(1, sizeof *m);
    if (!m) return cpt_err_set(err, CPT_ENOMEM, "mixture: out of memory");
    m->K = K;
    m->P = P;
    m->B = B;
    m->seed = cfg->seed;
    m->sequential = cfg->sequential;
    m->names = calloc(K, sizeof *m->names);
    m->N = calloc(K, sizeof *m->N);
    m->cap = calloc(K, sizeof *m->cap);
    m->ph = calloc(P, sizeof *m->ph);
    int rc = CPT_OK;
    if (!m->names || !m->N || !m->cap || !m->ph) {
        rc = cpt_err_set(err, CPT_ENOMEM, "mixture: out of memory");
        goto fail;
    }
    for (size_t k = 0; k < K; k++) {
        const cpt_mix_source_cfg *s = &cfg->sources[k];
        m->names[k] = strdup(s->name ? s->name : "?");
        if (!m->names[k]) {
            rc = cpt_err_set(err, CPT_ENOMEM, "mixture: out of memory");
            goto fail;
        }
        m->N[k] = s->n_seqs;
        if (!(s->max_epochs >= 0) || !isfinite(s->max_epochs)) {
            rc = cpt_err_set(err, CPT_EINVAL, "mixture source '%s': max_epochs %g. HINT: use 0 (unlimited) or a positive number",
                             m->names[k], s->max_epochs);
            goto fail;
        }
        double c = floor(s->max_epochs * (double)s->n_seqs);
        m->cap[k] = s->max_epochs == 0 || c >= 1.8e19 ? UINT64_MAX : (uint64_t)c;
    }
    uint64_t start = 0;
    for (size_t p = 0; p < P; p++) {
        mix_phase *ph = &m->ph[p];
        ph->n = calloc(K, sizeof *ph->n);
        ph->pat = malloc(B * sizeof *ph->pat);
        ph->ord = malloc(B * sizeof *ph->ord);
        ph->cursor = calloc(K, sizeof *ph->cursor);
        if (!ph->n || !ph->pat || !ph->ord || !ph->cursor) {
            rc = cpt_err_set(err, CPT_ENOMEM, "mixture: out of memory");
            goto fail;
        }
        if ((rc = quantise(cfg, p, B, ph->n, err)) != 0) goto fail;
        uint64_t end = 0;
        if ((rc = phase_end(cfg, p, &end, err)) != 0) goto fail;
        if (end <= start) {
            rc = cpt_err_set(err, CPT_EINVAL,
                             "mixture phase %zu: ends at sequence %llu, not after its start %llu. "
                             "HINT: phase boundaries must increase", p, (unsigned long long)end,
                             (unsigned long long)start);
            goto fail;
        }
        ph->start = start;
        ph->end = end;
        for (size_t k = 0; k < K; k++)
            if (ph->n[k] && m->N[k] == 0) {
                rc = cpt_err_set(err, CPT_EINVAL,
                                 "mixture phase %zu: source '%s' has weight > 0 but no sequences. "
                                 "HINT: the source is smaller than one sequence (or its min_doc_tokens / "
                                 "max_doc_tokens range keeps no document); add data, widen the range or drop it",
                                 p, m->names[k]);
                goto fail;
            }
        /* SWRR layout of one period (see header). */
        int64_t credit[CPT_MIX_MAX_SOURCES] = {0};
        uint32_t seen[CPT_MIX_MAX_SOURCES] = {0};
        for (uint32_t s = 0; s < B; s++) {
            size_t best = 0;
            for (size_t k = 0; k < K; k++) {
                credit[k] += ph->n[k];
                if (credit[k] > credit[best]) best = k;
            }
            credit[best] -= B;
            ph->pat[s] = (uint16_t)best;
            ph->ord[s] = seen[best]++;
        }
        if (p > 0) {
            const mix_phase *q = &m->ph[p - 1];
            for (size_t k = 0; k < K; k++)
                ph->cursor[k] = q->cursor[k] + phase_count(m, q, k, q->end - q->start);
        }
        start = end;
    }
    /* Capacity: the earliest global index whose draw is past a cap. */
    m->capacity = UINT64_MAX;
    for (size_t p = 0; p < P; p++) {
        const mix_phase *ph = &m->ph[p];
        for (size_t k = 0; k < K; k++) {
            if (m->cap[k] == UINT64_MAX || ph->n[k] == 0 || ph->cursor[k] > m->cap[k]) continue;
            uint64_t left = m->cap[k] - ph->cursor[k]; /* draws still allowed: ordinal `left` fails */
            uint64_t q = left / ph->n[k], r = left % ph->n[k], slot = 0;
            for (uint32_t s = 0; s < B; s++)
                if (ph->pat[s] == k && ph->ord[s] == r) {
                    slot = s;
                    break;
                }
            uint64_t t, i;
            if (__builtin_mul_overflow(q, (uint64_t)B, &t) || __builtin_add_overflow(t, slot, &t) ||
                __builtin_add_overflow(t, ph->start, &i))
                continue;
            if (i < ph->end && i < m->capacity) {
                m->capacity = i;
                m->cap_source = (uint32_t)k;
            }
        }
    }
    uint64_t last = m->ph[P - 1].end;
    if (last != UINT64_MAX && m->capacity < last) {
        uint32_t k = m->cap_source;
        rc = cpt_err_set(err, CPT_EINVAL,
                         "mixture: source '%s' (%llu sequences, max_epochs %g) runs out at global sample "
                         "%llu, before the schedule ends at %llu. HINT: raise its max_epochs, lower its "
                         "weight, add data, or shorten the schedule",
                         m->names[k], (unsigned long long)m->N[k], cfg->sources[k].max_epochs,
                         (unsigned long long)m->capacity, (unsigned long long)last);
        goto fail;
    }
    *out = m;
    return CPT_OK;
fail:
    cpt_mix_close(m);
    return rc;
}

static size_t find_phase(const cpt_mix *m, uint64_t i) {
    size_t lo = 0, hi = m->P; /* first phase with end > i */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->ph[mid].end > i)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

int cpt_mix_locate(const cpt_mix *m, uint64_t i, cpt_mix_draw *out, cpt_err *err) {
    size_t p = find_phase(m, i);
    if (p == m->P)
        return cpt_err_set(err, CPT_EINVAL,
                           "mixture: sample %llu is past the end of the schedule (%llu sequences). "
                           "HINT: extend the last phase or stop training there",
                           (unsigned long long)i, (unsigned long long)m->ph[m->P - 1].end);
    const mix_phase *ph = &m->ph[p];
    uint64_t t = i - ph->start;
    uint32_t s = (uint32_t)(t % m->B);
    uint32_t k = ph->pat[s];
    uint64_t c = ph->cursor[k] + (t / m->B) * ph->n[k] + ph->ord[s];
    if (c >= m->cap[k])
        return cpt_err_set(err, CPT_ESTATE,
                           "mixture: sample %llu would draw source '%s' for the %llu-th time, past its cap "
                           "of %llu draws (%llu sequences per epoch). HINT: raise its max_epochs, lower its "
                           "weight, add data, or end training by sample %llu",
                           (unsigned long long)i, m->names[k], (unsigned long long)(c + 1),
                           (unsigned long long)m->cap[k], (unsigned long long)m->N[k],
                           (unsigned long long)m->capacity);
    out->source = k;
    out->phase = (uint32_t)p;
    out->ordinal = c;
    out->epoch = c / m->N[k];
    out->seq = m->sequential ? c % m->N[k] : cpt_mix_permute(epoch_key(m->seed, k, out->epoch), m->N[k], c % m->N[k]);
    return CPT_OK;
}

void cpt_mix_counts(const cpt_mix *m, uint64_t i, uint64_t *out) {
    size_t p = find_phase(m, i);
    if (p == m->P) { /* past the end: everything */
        const mix_phase *q = &m->ph[m->P - 1];
        for (size_t k = 0; k < m->K; k++) out[k] = q->cursor[k] + phase_count(m, q, k, q->end - q->start);
        return;
    }
    const mix_phase *ph = &m->ph[p];
    uint64_t t = i - ph->start;
    for (size_t k = 0; k < m->K; k++) out[k] = ph->cursor[k] + (t / m->B) * ph->n[k];
    for (uint32_t s = 0; s < t % m->B; s++) out[ph->pat[s]]++;
}

uint64_t cpt_mix_capacity(const cpt_mix *m, uint32_t *source) {
    if (source) *source = m->cap_source;
    return m->capacity;
}
uint64_t cpt_mix_end(const cpt_mix *m) { return m->ph[m->P - 1].end; }
size_t cpt_mix_n_sources(const cpt_mix *m) { return m->K; }
const char *cpt_mix_source_name(const cpt_mix *m, size_t k) {
    CPT_ASSERT(k < m->K);
    return m->names[k];
}
uint64_t cpt_mix_source_seqs(const cpt_mix *m, size_t k) {
    CPT_ASSERT(k < m->K);
    return m->N[k];
}
double cpt_mix_weight(const cpt_mix *m, size_t p, size_t k) {
    CPT_ASSERT(p < m->P && k < m->K);
    return (double)m->ph[p].n[k] / m->B;
}
