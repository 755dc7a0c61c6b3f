/* test_pack.c: packing against a flat-stream oracle built here: windows with document
 * boundaries (seg/pos/mask), keep_whole invariants (nothing lost or repeated, short docs
 * whole, padding only when the next short doc does not fit), and cpt_mix_fetch; the same
 * over document-length filters (the oracle stream then holds only the documents in range). */
#include <stdint.h>

#include "cpt/fileio.h"
#include "cpt/mixture.h"
#include "cpt/shard.h"
#include "testutil.h"

#define VOCAB 200000u
enum { MAXT = 200000 };
static uint32_t s_tok[MAXT], s_doc[MAXT];
static uint64_t T;          /* stream length */
static uint64_t doc_len[4000];
static uint64_t n_docs;
static char paths[3][4200];
/* The oracle stream the checks compare with: the whole stream, or only the documents
 * that pass a length filter (set_filter). */
static uint32_t f_tok[MAXT], f_doc[MAXT];
static const uint32_t *o_tok = s_tok, *o_doc = s_doc;
static uint64_t oT, o_docs;
static uint64_t f_min, f_max;

static void set_filter(uint64_t mn, uint64_t mx) {
    f_min = mn;
    f_max = mx;
    if (!mn && !mx) {
        o_tok = s_tok, o_doc = s_doc, oT = T, o_docs = n_docs;
        return;
    }
    uint64_t at = 0, t = 0;
    o_docs = 0;
    for (uint64_t d = 0; d < n_docs; d++) {
        int keep = doc_len[d] >= mn && (!mx || doc_len[d] <= mx);
        for (uint64_t i = 0; i < doc_len[d]; i++, t++)
            if (keep) {
                f_tok[at] = s_tok[t];
                f_doc[at++] = s_doc[t];
            }
        o_docs += keep;
    }
    o_tok = f_tok, o_doc = f_doc, oT = at;
}

static uint64_t rs = 99;
static uint32_t rnd(void) {
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rs >> 33);
}

/* Three shards; shard 1 is empty. Docs have lengths 0..299, a few up to 700 (> L). */
static void make_shards(const char *dir) {
    cpt_err err = {0};
    int ndoc_per[3] = {60, 0, 45};
    for (int h = 0; h < 3; h++) {
        snprintf(paths[h], sizeof paths[h], "%s/pack_%d.shard", dir, h);
        cpt_shard_writer *w = NULL;
        CHECK_OK(cpt_shard_writer_open(&w, paths[h], VOCAB, &err), &err);
        for (int d = 0; d < ndoc_per[h]; d++) {
            uint32_t len = (d % 13 == 5) ? 0 : (d % 11 == 3) ? 300 + rnd() % 400 : rnd() % 120;
            uint32_t buf[800];
            for (uint32_t i = 0; i < len; i++) {
                buf[i] = (uint32_t)(n_docs * 1000 + i) % VOCAB;
                s_tok[T] = buf[i];
                s_doc[T] = (uint32_t)n_docs;
                T++;
            }
            doc_len[n_docs++] = len;
            CHECK_OK(cpt_shard_writer_add(w, buf, len, &err), &err);
        }
        CHECK_OK(cpt_shard_writer_commit(w, &err), &err);
    }
}

static void alloc_seq(cpt_pack_seq *q, uint32_t L) {
    q->tokens = malloc(L * 4);
    q->seg = malloc(L * 4);
    q->pos = malloc(L * 4);
    q->mask = malloc(L);
    q->targets = NULL;
}
static void free_seq(cpt_pack_seq *q) {
    free(q->tokens);
    free(q->seg);
    free(q->pos);
    free(q->mask);
}

/* seg/pos for real tokens from the oracle's doc ids, starting at stream offset a. */
static int check_bounds(const cpt_pack_seq *q, uint64_t a, uint32_t n, uint32_t L, uint32_t pad) {
    int bad = 0;
    uint32_t seg = 0, pos = 0;
    for (uint32_t t = 0; t < n; t++) {
        if (t > 0 && o_doc[a + t] != o_doc[a + t - 1]) {
            seg++;
            pos = 0;
        }
        bad += q->tokens[t] != o_tok[a + t];
        bad += q->seg[t] != seg || q->pos[t] != pos || q->mask[t] != 1;
        pos++;
    }
    for (uint32_t t = n; t < L; t++)
        bad += q->tokens[t] != pad || q->seg[t] != UINT32_MAX || q->pos[t] != 0 || q->mask[t] != 0;
    bad += q->n_real != n || q->n_docs != (n ? seg + 1 : 0);
    return bad;
}

static void windows(uint32_t S) {
    const char *const p[3] = {paths[0], paths[1], paths[2]};
    cpt_err err = {0};
    cpt_pack_source *src = NULL;
    CHECK_OK(cpt_pack_source_open_len(&src, p, 3, S, 0, f_min, f_max, &err), &err);
    if (!src) return;
    CHECKF(cpt_pack_source_n_tokens(src) == oT && cpt_pack_source_n_docs(src) == o_docs,
           "tokens %llu docs %llu, want %llu %llu", (unsigned long long)cpt_pack_source_n_tokens(src),
           (unsigned long long)cpt_pack_source_n_docs(src), (unsigned long long)oT, (unsigned long long)o_docs);
    uint64_t N = (oT - 1) / S;
    CHECK(cpt_pack_source_n_seqs(src) == N);
    cpt_pack_seq q;
    alloc_seq(&q, S + 1);
    int bad = 0;
    for (uint64_t j = 0; j < N; j++) {
        cpt_pack_source_get(src, j, 7, &q);
        bad += check_bounds(&q, j * S, S + 1, S + 1, 7);
    }
    CHECKF(bad == 0, "seq_len %u: %d packing mismatches", S, bad);
    free_seq(&q);
    cpt_pack_source_close(src);
}

static void keep_whole(uint32_t S) {
    const char *const p[3] = {paths[0], paths[1], paths[2]};
    cpt_err err = {0};
    cpt_pack_source *src = NULL;
    uint32_t L = S + 1;
    CHECK_OK(cpt_pack_source_open_len(&src, p, 3, S, 1, f_min, f_max, &err), &err);
    if (!src) return;
    uint64_t N = cpt_pack_source_n_seqs(src), at = 0;
    cpt_pack_seq q;
    alloc_seq(&q, L);
    int bad = 0, split_short = 0, bad_pad = 0, padded = 0;
    for (uint64_t j = 0; j < N; j++) {
        cpt_pack_source_get(src, j, 0, &q);
        bad += check_bounds(&q, at, q.n_real, L, 0); /* (a) in order, nothing lost or repeated */
        /* (b) a doc of <= L tokens appears whole: its piece here has its full length. */
        for (uint32_t t = 0; t < q.n_real; t++) {
            uint32_t d = o_doc[at + t];
            int first = t == 0 || o_doc[at + t - 1] != d;
            if (!first) continue;
            uint32_t piece = 0;
            while (t + piece < q.n_real && o_doc[at + t + piece] == d) piece++;
            if (doc_len[d] <= L && piece != doc_len[d]) split_short++;
        }
        /* (c) padding only when the next document is short and would not fit. */
        if (q.n_real < L && j + 1 < N) {
            padded++;
            uint64_t nd = doc_len[o_doc[at + q.n_real]];
            if (!(nd <= L && q.n_real + nd > L)) bad_pad++;
        }
        at += q.n_real;
    }
    CHECKF(at == oT, "keep_whole %u: sequences hold %llu tokens, stream has %llu", S, (unsigned long long)at,
           (unsigned long long)oT);
    CHECKF(bad == 0 && split_short == 0 && bad_pad == 0, "keep_whole %u: bad %d split %d pad %d", S, bad,
           split_short, bad_pad);
    CHECKF(padded > 0 || f_min > L, "keep_whole %u: the fixture never exercised padding", S); /* > L: none */
    free_seq(&q);
    cpt_pack_source_close(src);
}

static void fetch(void) {
    const char *const pa[1] = {paths[0]}, *const pb[1] = {paths[2]};
    cpt_err err = {0};
    cpt_pack_source *src[2] = {NULL, NULL};
    CHECK_OK(cpt_pack_source_open(&src[0], pa, 1, 32, 0, &err), &err);
    CHECK_OK(cpt_pack_source_open(&src[1], pb, 1, 32, 1, &err), &err);
    if (!src[0] || !src[1]) return;
    cpt_mix_source_cfg sc[2] = {{"a", cpt_pack_source_n_seqs(src[0]), 0}, {"b", cpt_pack_source_n_seqs(src[1]), 0}};
    double w[2] = {0.75, 0.25};
    cpt_mix_phase_cfg ph = {w, UINT64_MAX};
    cpt_mix_cfg cfg = {sc, 2, &ph, 1, 3, CPT_MIX_UNIT_SEQS, 32, 0, 0, 0};
    cpt_mix *m = NULL;
    CHECK_OK(cpt_mix_open(&m, &cfg, &err), &err);
    if (!m) return;
    cpt_pack_seq q, r;
    alloc_seq(&q, 33);
    alloc_seq(&r, 33);
    int bad = 0;
    for (uint64_t i = 0; i < 500; i++) {
        cpt_mix_draw d;
        CHECK_OK(cpt_mix_fetch(m, src, i, 5, &q, &d, &err), &err);
        cpt_pack_source_get(src[d.source], d.seq, 5, &r);
        bad += memcmp(q.tokens, r.tokens, 33 * 4) != 0 || memcmp(q.seg, r.seg, 33 * 4) != 0;
    }
    CHECK(bad == 0);
    /* A plan built for another size is refused. */
    sc[1].n_seqs += 1;
    cpt_mix *m2 = NULL;
    CHECK_OK(cpt_mix_open(&m2, &cfg, &err), &err);
    if (m2) {
        int refused = 0;
        for (uint64_t i = 0; i < 8; i++) {
            cpt_err e2 = {0};
            if (cpt_mix_fetch(m2, src, i, 5, &q, NULL, &e2) == CPT_EINVAL && strstr(e2.msg, "'b'")) refused++;
        }
        CHECK(refused == 2); /* b is drawn twice in the first 8 (weight 0.25) */
        cpt_mix_close(m2);
    }
    free_seq(&q);
    free_seq(&r);
    cpt_mix_close(m);
    cpt_pack_source_close(src[0]);
    cpt_pack_source_close(src[1]);

    /* Shards with different vocabularies cannot form one source. */
    char other[4300];
    snprintf(other, sizeof other, "%s.v2", paths[0]);
    cpt_shard_writer *sw = NULL;
    CHECK_OK(cpt_shard_writer_open(&sw, other, 1000, &err), &err);
    uint32_t t1[2] = {1, 2};
    cpt_shard_writer_add(sw, t1, 2, &err);
    CHECK_OK(cpt_shard_writer_commit(sw, &err), &err);
    const char *const mix2[2] = {paths[0], other};
    cpt_pack_source *bad_src = NULL;
    cpt_err e3 = {0};
    CHECK(cpt_pack_source_open(&bad_src, mix2, 2, 32, 0, &e3) == CPT_EINVAL && strstr(e3.msg, "vocab_size"));
}

int main(void) {
    const char *t = tu_env("CPT_TMP");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/test_pack", t ? t : "/tmp");
    cpt_err err = {0};
    CHECK_OK(cpt_mkdirs(dir, &err), &err);
    make_shards(dir);
    CHECK(T > 5000 && T < MAXT);
    set_filter(0, 0);
    windows(1);
    windows(64);
    windows(257);
    keep_whole(64);
    keep_whole(200);
    fetch();
    /* Length filters: only documents with min <= length <= max, in order. The fixture's
     * documents are 0..119 tokens, a few 300..699: min 300 keeps only the long ones (each a
     * run of its own), max 60 only short ones (zero-length documents too). */
    uint64_t n_long = 0, t_long = 0;
    for (uint64_t d = 0; d < n_docs; d++)
        if (doc_len[d] >= 300) n_long++, t_long += doc_len[d];
    set_filter(300, 0);
    CHECK(o_docs == n_long && oT == t_long && n_long >= 3);
    windows(1);
    windows(64);
    keep_whole(64);
    set_filter(0, 60);
    windows(64);
    keep_whole(64);
    set_filter(40, 110);
    windows(17);
    keep_whole(200);
    {
        const char *const p[3] = {paths[0], paths[1], paths[2]};
        cpt_pack_source *src = NULL;
        cpt_err e = {0};
        CHECK(cpt_pack_source_open_len(&src, p, 3, 64, 0, 100, 50, &e) == CPT_EINVAL && strstr(e.msg, "min_doc_tokens"));
        CHECK(cpt_pack_source_open_len(&src, p, 3, 64, 0, 100000, 0, &e) == CPT_OK && src &&
              cpt_pack_source_n_seqs(src) == 0 && cpt_pack_source_n_docs(src) == 0);
        cpt_pack_source_close(src);
    }
    TEST_END();
}
