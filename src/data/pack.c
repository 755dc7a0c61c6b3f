/* pack.c: a source of shards cut into packed sequences with document boundaries (both packing modes), and cpt_mix_fetch; not the mixture arithmetic. */
#include <stdlib.h>
#include <string.h>

#include "cpt/mixture.h"
#include "cpt/shard.h"

/* A run of consecutive documents of one shard that all pass the length filter: the
 * source's token stream is the concatenation of its runs (one run per non-empty shard
 * without a filter). */
typedef struct pack_run {
    size_t sh;
    uint64_t doc0, n_docs; /* documents [doc0, doc0 + n_docs) of shard sh */
    uint64_t tok_a, len;   /* their tokens: shard-local [tok_a, tok_a + len) */
} pack_run;

struct cpt_pack_source {
    cpt_shard **sh;    /* [n_sh] */
    size_t n_sh;
    pack_run *runs;    /* [n_runs] */
    uint64_t *run0;    /* [n_runs + 1] first stream token of each run */
    size_t n_runs;
    uint32_t L;        /* seq_len + 1 */
    uint32_t seq_len;
    int keep_whole;
    uint64_t n_tokens, n_docs, n_seqs;
    uint64_t tok0;     /* keep_whole = 0: first stream token of sequence 0 */
    uint64_t *starts;  /* keep_whole: [n_seqs + 1] first global token of each sequence */
};

void cpt_pack_source_close(cpt_pack_source *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n_sh; i++) cpt_shard_close(s->sh[i]);
    free(s->sh);
    free(s->runs);
    free(s->run0);
    free(s->starts);
    free(s);
}

uint64_t cpt_pack_source_n_seqs(const cpt_pack_source *s) { return s->n_seqs; }
uint64_t cpt_pack_source_n_tokens(const cpt_pack_source *s) { return s->n_tokens; }
uint64_t cpt_pack_source_n_docs(const cpt_pack_source *s) { return s->n_docs; }
uint32_t cpt_pack_source_vocab_size(const cpt_pack_source *s) {
    return s->n_sh ? cpt_shard_vocab_size(s->sh[0]) : 0;
}

/* Greedy keep-whole plan (see mixture.h): record each sequence's first token. */
static int plan_keep_whole(cpt_pack_source *s, cpt_err *err) {
    size_t cap = 1024, n = 0;
    uint64_t *st = malloc(cap * sizeof *st);
    if (!st) return cpt_err_set(err, CPT_ENOMEM, "packing: out of memory");
    uint64_t L = s->L, fill = 0, g = 0; /* fill: tokens in the open sequence; g: next global token */
    int open = 0;
#define PUSH_START(v)                                                                          \
    do {                                                                                       \
        if (n + 2 > cap) {                                                                     \
            uint64_t *ns = realloc(st, 2 * cap * sizeof *ns);                                  \
            if (!ns) {                                                                         \
                free(st);                                                                      \
                return cpt_err_set(err, CPT_ENOMEM, "packing: out of memory for the plan");    \
            }                                                                                  \
            st = ns;                                                                           \
            cap *= 2;                                                                          \
        }                                                                                      \
        st[n++] = (v);                                                                         \
    } while (0)
    for (size_t ri = 0; ri < s->n_runs; ri++) {
        const pack_run *r = &s->runs[ri];
        for (uint64_t d = r->doc0; d < r->doc0 + r->n_docs; d++) {
            uint64_t a, len;
            cpt_shard_doc_range(s->sh[r->sh], d, &a, &len);
            if (len == 0) continue;
            if (open && len <= L && fill + len > L) open = 0; /* short doc does not fit: pad out */
            uint64_t left = len;
            while (left > 0) {
                if (!open || fill == L) {
                    PUSH_START(g);
                    open = 1;
                    fill = 0;
                }
                uint64_t take = left < L - fill ? left : L - fill;
                fill += take;
                left -= take;
                g += take;
            }
        }
    }
    st[n] = g; /* sentinel: end of the last sequence */
#undef PUSH_START
    s->starts = st;
    s->n_seqs = n;
    return CPT_OK;
}

/* Runs of documents with min_len <= length <= max_len (0 = no bound), in shard order. */
static int build_runs(cpt_pack_source *s, uint64_t min_len, uint64_t max_len, cpt_err *err) {
    size_t cap = s->n_sh + 1, n = 0;
    pack_run *v = malloc(cap * sizeof *v);
    if (!v) return cpt_err_set(err, CPT_ENOMEM, "packing: out of memory");
    int filter = min_len > 0 || max_len > 0;
    for (size_t h = 0; h < s->n_sh; h++) {
        uint64_t nd = cpt_shard_n_docs(s->sh[h]);
        int open = 0;
        for (uint64_t d = 0; d < nd; d++) {
            uint64_t a, len;
            cpt_shard_doc_range(s->sh[h], d, &a, &len);
            int keep = !filter || (len >= min_len && (!max_len || len <= max_len));
            if (!keep) {
                open = 0;
                continue;
            }
            s->n_docs++;
            if (open) {
                v[n - 1].n_docs++;
                v[n - 1].len += len;
                continue;
            }
            if (n == cap) {
                pack_run *nv = realloc(v, 2 * cap * sizeof *nv);
                if (!nv) {
                    free(v);
                    return cpt_err_set(err, CPT_ENOMEM, "packing: out of memory");
                }
                v = nv;
                cap *= 2;
            }
            v[n++] = (pack_run){h, d, 1, a, len};
            open = 1;
        }
    }
    s->run0 = malloc((n + 1) * sizeof *s->run0);
    if (!s->run0) {
        free(v);
        return cpt_err_set(err, CPT_ENOMEM, "packing: out of memory");
    }
    s->run0[0] = 0;
    for (size_t i = 0; i < n; i++) s->run0[i + 1] = s->run0[i] + v[i].len;
    s->runs = v;
    s->n_runs = n;
    s->n_tokens = s->run0[n];
    return CPT_OK;
}

int cpt_pack_source_open(cpt_pack_source **out, const char *const *shards, size_t n,
                         uint32_t seq_len, int keep_whole, cpt_err *err) {
    return cpt_pack_source_open_len(out, shards, n, seq_len, keep_whole, 0, 0, err);
}

int cpt_pack_source_open_len(cpt_pack_source **out, const char *const *shards, size_t n, uint32_t seq_len,
                             int keep_whole, uint64_t min_doc_tokens, uint64_t max_doc_tokens, cpt_err *err) {
    *out = NULL;
    if (max_doc_tokens && min_doc_tokens > max_doc_tokens)
        return cpt_err_set(err, CPT_EINVAL,
                           "packing: min_doc_tokens %llu is above max_doc_tokens %llu. HINT: swap them",
                           (unsigned long long)min_doc_tokens, (unsigned long long)max_doc_tokens);
    if (seq_len == 0 || seq_len == UINT32_MAX)
        return cpt_err_set(err, CPT_EINVAL, "packing: seq_len %u. HINT: use a positive sequence length", seq_len);
    if (n == 0) return cpt_err_set(err, CPT_EINVAL, "packing: a source needs at least one shard. HINT: list its shards");
    cpt_pack_source *s = calloc(1, sizeof *s);
    if (!s) return cpt_err_set(err, CPT_ENOMEM, "packing: out of memory");
    s->sh = calloc(n, sizeof *s->sh);
    int rc = CPT_OK;
    if (!s->sh) {
        free(s);
        return cpt_err_set(err, CPT_ENOMEM, "packing: out of memory");
    }
    s->seq_len = seq_len;
    s->L = seq_len + 1;
    s->keep_whole = keep_whole;
    for (size_t i = 0; i < n; i++) {
        rc = cpt_shard_open(&s->sh[i], shards[i], err);
        if (rc) goto fail;
        s->n_sh = i + 1;
        if (cpt_shard_vocab_size(s->sh[i]) != cpt_shard_vocab_size(s->sh[0])) {
            rc = cpt_err_set(err, CPT_EINVAL,
                             "%s: vocab_size %u differs from %s's %u. HINT: a source's shards must come "
                             "from one tokenizer", shards[i], cpt_shard_vocab_size(s->sh[i]), shards[0],
                             cpt_shard_vocab_size(s->sh[0]));
            goto fail;
        }
    }
    if ((rc = build_runs(s, min_doc_tokens, max_doc_tokens, err)) != 0) goto fail;
    if (keep_whole) {
        if ((rc = plan_keep_whole(s, err)) != 0) goto fail;
    } else {
        s->n_seqs = s->n_tokens ? (s->n_tokens - 1) / seq_len : 0;
    }
    *out = s;
    return CPT_OK;
fail:
    cpt_pack_source_close(s);
    return rc;
}

int cpt_pack_source_set_start(cpt_pack_source *s, uint64_t tok0, cpt_err *err) {
    if (s->keep_whole)
        return cpt_err_set(err, CPT_EINVAL, "packing: a start offset needs keep_whole = 0 (sequences cut at every seq_len)");
    if (tok0 >= s->n_tokens || s->n_tokens - tok0 <= s->seq_len)
        return cpt_err_set(err, CPT_EINVAL,
                           "packing: start token %llu leaves fewer than %u tokens of the source's %llu. HINT: the earlier "
                           "stages used up the source; add data or shorten them",
                           (unsigned long long)tok0, s->L, (unsigned long long)s->n_tokens);
    s->tok0 = tok0;
    s->n_seqs = (s->n_tokens - tok0 - 1) / s->seq_len;
    return CPT_OK;
}

void cpt_pack_source_get(const cpt_pack_source *s, uint64_t seq, uint32_t pad_id, cpt_pack_seq *out) {
    CPT_ASSERT(seq < s->n_seqs);
    uint64_t a, len;
    if (s->keep_whole) {
        a = s->starts[seq];
        len = s->starts[seq + 1] - a;
    } else {
        a = s->tok0 + seq * (uint64_t)s->seq_len;
        len = s->L;
    }
    CPT_ASSERT(len <= s->L && a + len <= s->n_tokens);
    /* Locate the run holding token a (largest ri with run0[ri] <= a and a non-empty run). */
    size_t lo = 0, hi = s->n_runs;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (s->run0[mid] <= a)
            lo = mid;
        else
            hi = mid;
    }
    size_t ri = lo;
    while (s->run0[ri + 1] <= a) ri++; /* skip empty runs */
    uint32_t t = 0, seg = 0;
    const pack_run *r = &s->runs[ri];
    size_t h = r->sh;
    uint64_t local = r->tok_a + (a - s->run0[ri]);
    uint64_t d = cpt_shard_doc_of_token(s->sh[h], local);
    if (d < r->doc0) d = r->doc0; /* zero-length documents before the run share its offset */
    while (t < len) {
        uint64_t ds, dl;
        if (d >= r->doc0 + r->n_docs) { /* next run */
            r = &s->runs[++ri];
            h = r->sh;
            d = r->doc0;
            local = r->tok_a;
            continue;
        }
        cpt_shard_doc_range(s->sh[h], d, &ds, &dl);
        uint64_t from = local > ds ? local : ds, avail = ds + dl - from;
        if (avail == 0) {
            d++;
            continue;
        }
        uint32_t take = (uint32_t)(avail < len - t ? avail : len - t);
        cpt_shard_tokens(s->sh[h], from, take, out->tokens + t);
        for (uint32_t j = 0; j < take; j++) {
            out->seg[t + j] = seg;
            out->pos[t + j] = j;
            out->mask[t + j] = 1;
        }
        if (out->targets) { /* loss flag of token u parked in targets[u - 1] until the end */
            uint8_t lb[256];
            for (uint32_t j = 0; j < take; j += 256) {
                uint32_t k = take - j < 256 ? take - j : 256;
                cpt_shard_mask(s->sh[h], from + j, k, lb);
                for (uint32_t q = 0; q < k; q++)
                    if (t + j + q > 0) out->targets[t + j + q - 1] = lb[q];
            }
        }
        t += take;
        local = from + take;
        seg++;
        d++;
    }
    out->n_real = (uint32_t)len;
    out->n_docs = seg;
    for (uint32_t j = (uint32_t)len; j < s->L; j++) {
        out->tokens[j] = pad_id;
        out->seg[j] = UINT32_MAX;
        out->pos[j] = 0;
        out->mask[j] = 0;
    }
    if (out->targets)
        for (uint32_t j = 0; j + 1 < s->L; j++) {
            int real = j + 1 < len && out->seg[j + 1] == out->seg[j] && out->targets[j];
            out->targets[j] = real ? (int32_t)out->tokens[j + 1] : -1;
        }
}

int cpt_mix_fetch(const cpt_mix *m, cpt_pack_source *const *srcs, uint64_t i, uint32_t pad_id,
                  cpt_pack_seq *out, cpt_mix_draw *draw, cpt_err *err) {
    cpt_mix_draw dr;
    int rc = cpt_mix_locate(m, i, &dr, err);
    if (rc) return rc;
    const cpt_pack_source *s = srcs[dr.source];
    if (cpt_mix_source_seqs(m, dr.source) != s->n_seqs)
        return cpt_err_set(err, CPT_EINVAL,
                           "mixture source '%s': the plan says %llu sequences, the packed source has %llu. "
                           "HINT: set the source's n_seqs from cpt_pack_source_n_seqs with the same seq_len "
                           "and keep_whole", cpt_mix_source_name(m, dr.source),
                           (unsigned long long)cpt_mix_source_seqs(m, dr.source), (unsigned long long)s->n_seqs);
    cpt_pack_source_get(s, dr.seq, pad_id, out);
    if (draw) *draw = dr;
    return CPT_OK;
}
