/* test_mixture.c: the mixture plan against independent expectations: Feistel bijection,
 * proportions over 100,000 samples, determinism, 1/2/3-rank slicing, O(1) seek, phase
 * changes without loss or repeat, repetition caps, per-source counts, config errors; and a
 * length-aware (ProLong) mixture with exact counts: long and short documents of one shard
 * as two sources, mixed 0.6 / 0.4 in tokens, the long one capped at 2 epochs. */
#include <stdint.h>

#include "cpt/fileio.h"
#include "cpt/mixture.h"
#include "cpt/shard.h"
#include "testutil.h"

static void perm_bijection(void) {
    uint64_t ns[] = {1, 2, 3, 5, 8, 1000, 4099, 65537};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        uint64_t n = ns[a];
        unsigned char *seen = calloc(n, 1);
        int bad = 0;
        for (uint64_t j = 0; j < n; j++) {
            uint64_t v = cpt_mix_permute(42, n, j);
            if (v >= n || seen[v]) bad++;
            else seen[v] = 1;
        }
        CHECKF(bad == 0, "permutation of %llu is not a bijection (%d bad)", (unsigned long long)n, bad);
        free(seen);
    }
    /* Different keys give different orders; the order is not the identity. */
    int same = 0, fixed = 0;
    for (uint64_t j = 0; j < 1000; j++) {
        same += cpt_mix_permute(1, 1000, j) == cpt_mix_permute(2, 1000, j);
        fixed += cpt_mix_permute(1, 1000, j) == j;
    }
    CHECKF(same < 20 && fixed < 20, "same=%d fixed=%d (expected ~1 each)", same, fixed);
    /* Huge domain: still in range. */
    uint64_t big = (1ull << 62) + 12345;
    int oor = 0;
    for (uint64_t j = 0; j < 1000; j++) oor += cpt_mix_permute(7, big, big - 1 - j) >= big;
    CHECK(oor == 0);
}

static cpt_mix *open3(const double *w, uint64_t end, uint64_t seed, uint32_t period) {
    static cpt_mix_source_cfg src[3] = {{"general", 5000, 0}, {"domain", 3000, 0}, {"instruct", 700, 0}};
    cpt_mix_phase_cfg ph = {w, end};
    cpt_mix_cfg cfg = {src, 3, &ph, 1, seed, CPT_MIX_UNIT_SEQS, 0, 0, period, 0};
    cpt_err err = {0};
    cpt_mix *m = NULL;
    CHECK_OK(cpt_mix_open(&m, &cfg, &err), &err);
    return m;
}

static void proportions(void) {
    const double w[3] = {0.7, 0.2, 0.1};
    cpt_mix *m = open3(w, UINT64_MAX, 1, 0);
    if (!m) return;
    enum { NS = 100000 };
    uint64_t cnt[3] = {0}, win[3] = {0};
    int worst_dev = 0;
    cpt_err err = {0};
    for (uint64_t i = 0; i < NS; i++) {
        cpt_mix_draw d;
        CHECK_OK(cpt_mix_locate(m, i, &d, &err), &err);
        cnt[d.source]++;
        win[d.source]++;
        /* Smoothness: every aligned window of 100 samples holds 70/20/10 within +-2. */
        if (i % 100 == 99) {
            for (int k = 0; k < 3; k++) {
                int dev = abs((int)win[k] - (int)(w[k] * 100 + 0.5));
                if (dev > worst_dev) worst_dev = dev;
                win[k] = 0;
            }
        }
    }
    /* Statistical tolerance: 4 binomial standard deviations (the SWRR pattern is in fact exact). */
    for (int k = 0; k < 3; k++) {
        double sd = sqrt(NS * w[k] * (1 - w[k]));
        CHECKF(fabs((double)cnt[k] - NS * w[k]) <= 4 * sd, "source %d: %llu of %d", k,
               (unsigned long long)cnt[k], NS);
    }
    CHECKF(worst_dev <= 2, "worst 100-sample window deviation %d", worst_dev);
    cpt_mix_close(m);

    /* Weights that are not multiples of 1/B: 0.12345 and 1/3 normalised, period 1000. */
    const double w2[3] = {0.12345, 1.0 / 3, 0.54321};
    m = open3(w2, UINT64_MAX, 9, 1000);
    if (!m) return;
    double sum = w2[0] + w2[1] + w2[2];
    uint64_t c2[3] = {0};
    for (uint64_t i = 0; i < NS; i++) {
        cpt_mix_draw d;
        cpt_mix_locate(m, i, &d, &err);
        c2[d.source]++;
    }
    for (int k = 0; k < 3; k++) {
        double p = w2[k] / sum, sd = sqrt(NS * p * (1 - p));
        CHECKF(fabs((double)c2[k] - NS * p) <= 4 * sd, "weights2 source %d: %llu vs %.1f", k,
               (unsigned long long)c2[k], NS * p);
        CHECK(fabs(cpt_mix_weight(m, 0, (size_t)k) - p) <= 1.0 / 1000);
    }
    cpt_mix_close(m);
}

/* Same cfg, two opens: same draws; another seed: different sequence ids. Also every
 * epoch of every source visits each sequence exactly once. */
static void determinism(void) {
    const double w[3] = {0.5, 0.3, 0.2};
    cpt_mix *a = open3(w, UINT64_MAX, 5, 0), *b = open3(w, UINT64_MAX, 5, 0), *c = open3(w, UINT64_MAX, 6, 0);
    if (!a || !b || !c) return;
    cpt_err err = {0};
    int diff_ab = 0, diff_ac = 0, epoch_bad = 0;
    const uint64_t N[3] = {5000, 3000, 700};
    unsigned char *seen[3];
    for (int k = 0; k < 3; k++) seen[k] = calloc(N[k], 1);
    uint64_t next_ord[3] = {0};
    for (uint64_t i = 0; i < 20000; i++) {
        cpt_mix_draw da, db, dc;
        cpt_mix_locate(a, i, &da, &err);
        cpt_mix_locate(b, i, &db, &err);
        cpt_mix_locate(c, i, &dc, &err);
        diff_ab += memcmp(&da, &db, sizeof da) != 0;
        diff_ac += da.source == dc.source && da.seq != dc.seq;
        int k = (int)da.source;
        if (da.ordinal != next_ord[k]++) epoch_bad++;
        if (da.ordinal % N[k] == 0) memset(seen[k], 0, N[k]);
        if (seen[k][da.seq]++) epoch_bad++;
    }
    CHECK(diff_ab == 0);
    CHECKF(diff_ac > 15000, "seed change altered only %d draws", diff_ac);
    CHECKF(epoch_bad == 0, "%d repeats within an epoch or ordinal gaps", epoch_bad);
    /* 20000 * 0.2 = 4000 draws of a 700-sequence source: 5+ epochs were checked. */
    CHECK(next_ord[2] == 4000);
    for (int k = 0; k < 3; k++) free(seen[k]);
    cpt_mix_close(a);
    cpt_mix_close(b);
    cpt_mix_close(c);
}

/* Ranks: each rank walks its own steps; the union equals the single-rank order. */
static void ranks(void) {
    const double w[3] = {0.7, 0.2, 0.1};
    cpt_mix *m = open3(w, UINT64_MAX, 11, 0);
    if (!m) return;
    cpt_err err = {0};
    enum { STEPS = 50, B = 12 };
    cpt_mix_draw ref[STEPS * B];
    for (uint64_t i = 0; i < STEPS * B; i++) cpt_mix_locate(m, i, &ref[i], &err);
    for (uint32_t world = 1; world <= 3; world++) {
        uint32_t per = B / world;
        int hits[STEPS * B] = {0}, bad = 0;
        for (uint32_t r = 0; r < world; r++)
            for (uint64_t s = 0; s < STEPS; s++)
                for (uint32_t j = 0; j < per; j++) {
                    uint64_t i = cpt_mix_rank_index(s, r, world, per, j);
                    cpt_mix_draw d;
                    if (i >= STEPS * B || cpt_mix_locate(m, i, &d, &err) != 0) {
                        bad++;
                        continue;
                    }
                    hits[i]++;
                    if (memcmp(&d, &ref[i], sizeof d) != 0) bad++;
                    if (i / B != s) bad++; /* the sample belongs to this step's global batch */
                }
        for (int i = 0; i < STEPS * B; i++) bad += hits[i] != 1;
        CHECKF(bad == 0, "world %u: %d mismatches", world, bad);
    }
    cpt_mix_close(m);
}

/* Seek: random positions, including ~1e15, match a fresh sequential walk and run in O(1). */
static void seek(void) {
    const double w[3] = {0.6, 0.3, 0.1};
    cpt_mix *m = open3(w, UINT64_MAX, 3, 0);
    if (!m) return;
    cpt_err err = {0};
    /* Brute force oracle for the ordinal: count draws of the same source sequentially. */
    uint64_t seen[3] = {0};
    int bad = 0;
    for (uint64_t i = 0; i < 30000; i++) {
        cpt_mix_draw d;
        cpt_mix_locate(m, i, &d, &err);
        if (d.ordinal != seen[d.source]) bad++;
        seen[d.source]++;
        if (i % 997 == 0) {
            uint64_t cnt[3];
            cpt_mix_counts(m, i + 1, cnt);
            for (int k = 0; k < 3; k++) bad += cnt[k] != seen[k];
        }
    }
    CHECKF(bad == 0, "%d ordinal/count mismatches", bad);
    double t0 = cpt_now();
    uint64_t x = 1;
    for (int r = 0; r < 200000; r++) {
        x = x * 6364136223846793005ull + 1;
        uint64_t i = (x >> 14) % 1000000000000000ull;
        cpt_mix_draw d;
        if (cpt_mix_locate(m, i, &d, &err) != 0 || d.seq >= 5000) bad++;
        uint64_t c = d.ordinal; /* ordinal = exact count of earlier draws of the source */
        uint64_t cnt[3];
        if (r % 1000 == 0) {
            cpt_mix_counts(m, i, cnt);
            bad += cnt[d.source] != c;
        }
    }
    double dt = cpt_now() - t0;
    CHECKF(bad == 0, "%d seek failures", bad);
    CHECKF(dt < 2.0, "200,000 seeks took %.2fs", dt);
    fprintf(stderr, "200,000 random seeks up to 1e15: %.3f s\n", dt);
    cpt_mix_close(m);
}

/* Phase change: 0.9/0.1/0 for 30000, 0.5/0.3/0.2 for 20000 (boundary in steps of 1000
 * sequences), then 0/0/1. Each source's ordinals run 0,1,2,... across the boundaries and
 * rewriting a later phase changes nothing earlier. */
static void phases(void) {
    cpt_mix_source_cfg src[3] = {{"general", 40000, 1}, {"domain", 9000, 2}, {"replay", 5000, 0}};
    double w0[3] = {0.9, 0.1, 0}, w1[3] = {0.5, 0.3, 0.2}, w2[3] = {0, 0, 1};
    cpt_mix_phase_cfg ph[3] = {{w0, 30}, {w1, 50}, {w2, UINT64_MAX}};
    cpt_mix_cfg cfg = {src, 3, ph, 3, 77, CPT_MIX_UNIT_STEPS, 0, 1000, 0, 0};
    cpt_err err = {0};
    cpt_mix *m = NULL;
    CHECK_OK(cpt_mix_open(&m, &cfg, &err), &err);
    if (!m) return;
    uint64_t next[3] = {0};
    int bad = 0;
    uint64_t per_phase[3][3] = {{0}};
    unsigned char *seen = calloc(9000, 1); /* domain's first epoch */
    for (uint64_t i = 0; i < 60000; i++) {
        cpt_mix_draw d;
        if (cpt_mix_locate(m, i, &d, &err)) {
            bad++;
            continue;
        }
        uint32_t want_phase = i < 30000 ? 0 : i < 50000 ? 1 : 2;
        bad += d.phase != want_phase;
        bad += d.ordinal != next[d.source]++;
        per_phase[d.phase][d.source]++;
        if (d.source == 1 && d.epoch == 0) bad += seen[d.seq]++ != 0;
    }
    CHECKF(bad == 0, "%d phase/ordinal errors", bad);
    CHECK(per_phase[0][0] == 27000 && per_phase[0][1] == 3000 && per_phase[0][2] == 0);
    CHECK(per_phase[1][0] == 10000 && per_phase[1][1] == 6000 && per_phase[1][2] == 4000);
    CHECK(per_phase[2][2] == 10000 && per_phase[2][0] == 0);
    /* Domain: 9000 draws = exactly one epoch, every sequence once. */
    uint64_t sum = 0;
    for (int s = 0; s < 9000; s++) sum += seen[s];
    CHECK(next[1] == 9000 && sum == 9000);
    free(seen);

    /* Rewrite phase 2 (not started before 50000): samples before 50000 are unchanged. */
    double w2b[3] = {0.25, 0.25, 0.5};
    cpt_mix_phase_cfg phb[3] = {{w0, 30}, {w1, 50}, {w2b, 80}};
    cpt_mix_cfg cfgb = cfg;
    cfgb.phases = phb;
    cpt_mix *mb = NULL;
    /* With general capped at one epoch: 40000 - 37000 = 3000 draws left at weight 0.25 in a
     * period-4 pattern -> the 3001st comes at 50000 + 12000 + 1 (hand-computed). */
    cpt_err ecap = {0};
    CHECK(cpt_mix_open(&mb, &cfgb, &ecap) == CPT_EINVAL);
    CHECKF(strstr(ecap.msg, "'general'") && strstr(ecap.msg, "at global sample 62001"), "%s", ecap.msg);
    src[0].max_epochs = 2;
    CHECK_OK(cpt_mix_open(&mb, &cfgb, &err), &err);
    if (mb) {
        int diff = 0;
        for (uint64_t i = 0; i < 50000; i += 7) {
            cpt_mix_draw d1, d2;
            cpt_mix_locate(m, i, &d1, &err);
            cpt_mix_locate(mb, i, &d2, &err);
            diff += memcmp(&d1, &d2, sizeof d1) != 0;
        }
        CHECK(diff == 0);
        CHECK(cpt_mix_end(mb) == 80000);
        cpt_mix_draw d;
        cpt_err e2 = {0};
        CHECK(cpt_mix_locate(mb, 80000, &d, &e2) == CPT_EINVAL && strstr(e2.msg, "past the end"));
        cpt_mix_close(mb);
    }
    cpt_mix_close(m);
}

/* Caps: 'small' has 100 sequences and max_epochs 2.5 -> 250 draws. Its weight is 0.1, so
 * the 251st draw is around sample 2500; find it by brute force and compare. */
static void caps(void) {
    cpt_mix_source_cfg src[2] = {{"big", 1000000, 0}, {"small", 100, 2.5}};
    double w[2] = {0.9, 0.1};
    cpt_mix_phase_cfg ph = {w, UINT64_MAX};
    cpt_mix_cfg cfg = {src, 2, &ph, 1, 1, CPT_MIX_UNIT_SEQS, 0, 0, 0, 0};
    cpt_err err = {0};
    cpt_mix *m = NULL;
    CHECK_OK(cpt_mix_open(&m, &cfg, &err), &err);
    if (!m) return;
    uint64_t small = 0, first_fail = UINT64_MAX;
    for (uint64_t i = 0; i < 5000 && first_fail == UINT64_MAX; i++) {
        uint64_t cnt[2];
        cpt_mix_counts(m, i + 1, cnt);
        if (cnt[1] > 250) first_fail = i;
        small = cnt[1];
    }
    uint32_t who = 9;
    CHECK(cpt_mix_capacity(m, &who) == first_fail && who == 1);
    CHECK(small == 251);
    cpt_mix_draw d;
    CHECK_OK(cpt_mix_locate(m, first_fail - 1, &d, &err), &err);
    cpt_err e2 = {0};
    CHECK(cpt_mix_locate(m, first_fail, &d, &e2) == CPT_ESTATE);
    CHECKF(strstr(e2.msg, "'small'") && strstr(e2.msg, "cap of 250 draws") && strstr(e2.msg, "HINT"),
           "%s", e2.msg);
    cpt_mix_close(m);

    /* A finite schedule past the cap is refused at open, naming the source. */
    ph.end = 10000;
    cpt_err e3 = {0};
    CHECK(cpt_mix_open(&m, &cfg, &e3) == CPT_EINVAL);
    CHECKF(strstr(e3.msg, "'small'") && strstr(e3.msg, "runs out at global sample"), "%s", e3.msg);
}

static void config_errors(void) {
    cpt_mix_source_cfg src[2] = {{"a", 10, 0}, {"b", 0, 0}};
    double w[2] = {1, 1}, wneg[2] = {1, -1}, wzero[2] = {0, 0}, wtiny[2] = {1, 1e-9};
    cpt_mix_phase_cfg ph[2] = {{w, 10}, {w, 5}};
    cpt_mix_cfg cfg = {src, 2, ph, 1, 1, CPT_MIX_UNIT_SEQS, 0, 0, 0, 0};
    cpt_mix *m = NULL;
    struct {
        const double *w;
        uint64_t end0;
        size_t nph;
        const char *needle;
    } cases[] = {
        {w, 10, 1, "source 'b' has weight > 0 but no sequences"},
        {wneg, 10, 1, "weight of source 'b' is -1"},
        {wzero, 10, 1, "all weights are 0"},
        {wtiny, 10, 1, "rounds to 0 at period"},
        {(const double[]){1, 0}, 10, 2, "phase 1: ends at sequence 5, not after its start 10"},
        {(const double[]){1, 0}, UINT64_MAX, 2, "open end"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        ph[0].weights = cases[c].w;
        ph[1].weights = cases[c].w;
        ph[0].end = cases[c].end0;
        cfg.n_phases = cases[c].nph;
        cpt_err err = {0};
        int rc = cpt_mix_open(&m, &cfg, &err);
        CHECKF(rc == CPT_EINVAL && strstr(err.msg, cases[c].needle), "case %zu: rc %d, %s", c, rc, err.msg);
    }
    /* Token boundaries round up to whole sequences. */
    src[1].n_seqs = 10;
    cpt_mix_phase_cfg pt = {w, 1000};
    cpt_mix_cfg ct = {src, 2, &pt, 1, 1, CPT_MIX_UNIT_TOKENS, 64, 0, 0, 0};
    cpt_err err = {0};
    CHECK_OK(cpt_mix_open(&m, &ct, &err), &err);
    if (m) {
        CHECK(cpt_mix_end(m) == 16); /* ceil(1000 / 64) */
        cpt_mix_close(m);
    }
}

/* ProLong-style mixing (methods.md §5.5) over one shard of 40 documents: document i has
 * 300 tokens when i % 4 == 0 (10 long documents, 3000 tokens), else 20 + i (30 short ones
 * of 21..59 tokens, 1200 tokens); token values encode (document, position). Source "long"
 * packs documents >= 128 tokens, "short" those <= 127, both at seq_len 64 without
 * keep_whole (so every sequence is 64 target tokens and a weight is a share of tokens). */
static void length_mix(void) {
    const char *t = tu_env("CPT_TMP");
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/test_mixture", t ? t : "/tmp");
    cpt_err err = {0};
    CHECK_OK(cpt_mkdirs(dir, &err), &err);
    snprintf(path, sizeof path, "%s/docs.shard", dir);
    cpt_shard_writer *w = NULL;
    CHECK_OK(cpt_shard_writer_open(&w, path, 100000, &err), &err);
    if (!w) return;
    uint64_t short_tokens = 0;
    for (uint32_t i = 0; i < 40; i++) {
        uint32_t len = i % 4 == 0 ? 300 : 20 + i, buf[300];
        for (uint32_t k = 0; k < len; k++) buf[k] = i * 1000 + k;
        if (len < 128) short_tokens += len;
        CHECK_OK(cpt_shard_writer_add(w, buf, len, &err), &err);
    }
    CHECK_OK(cpt_shard_writer_commit(w, &err), &err);
    CHECK(short_tokens == 1200);
    const char *const sh[1] = {path};
    cpt_pack_source *src[2] = {NULL, NULL};
    CHECK_OK(cpt_pack_source_open_len(&src[0], sh, 1, 64, 0, 128, 0, &err), &err);
    CHECK_OK(cpt_pack_source_open_len(&src[1], sh, 1, 64, 0, 0, 127, &err), &err);
    if (!src[0] || !src[1]) return;
    CHECK(cpt_pack_source_n_docs(src[0]) == 10 && cpt_pack_source_n_tokens(src[0]) == 3000);
    CHECK(cpt_pack_source_n_docs(src[1]) == 30 && cpt_pack_source_n_tokens(src[1]) == 1200);
    CHECK(cpt_pack_source_n_seqs(src[0]) == 46 && cpt_pack_source_n_seqs(src[1]) == 18); /* (T - 1) div 64 */

    /* 0.6 / 0.4 at period 5 is 3 : 2; smooth weighted round-robin lays one period out as
     * long, short, long, short, long (credits (3,2) -> L; (1,4) -> S; (4,1) -> L;
     * (2,3) -> S; (5,0) -> L). The long source's cap of 2 epochs is 92 draws: draw 92
     * (0-based) is in period 92 div 3 = 30 at the long slot 92 mod 3 = 2, i.e. slot 4:
     * global sample 5 * 30 + 4 = 154. */
    cpt_mix_source_cfg sc[2] = {{"long", 46, 2.0}, {"short", 18, 0}};
    double wt[2] = {0.6, 0.4};
    cpt_mix_phase_cfg ph = {wt, UINT64_MAX};
    cpt_mix_cfg cfg = {sc, 2, &ph, 1, 11, CPT_MIX_UNIT_SEQS, 64, 0, 5, 0};
    cpt_mix *m = NULL;
    CHECK_OK(cpt_mix_open(&m, &cfg, &err), &err);
    if (!m) return;
    uint32_t who = 9;
    CHECK(cpt_mix_capacity(m, &who) == 154 && who == 0);
    uint64_t cnt[2];
    cpt_mix_counts(m, 150, cnt);
    CHECK(cnt[0] == 90 && cnt[1] == 60); /* 5760 and 3840 target tokens: 0.6 / 0.4 */
    cpt_pack_seq q;
    q.tokens = malloc(65 * 4), q.seg = malloc(65 * 4), q.pos = malloc(65 * 4), q.mask = malloc(65), q.targets = NULL;
    uint64_t real[2] = {0, 0};
    int wrong_len = 0, slot_bad = 0;
    for (uint64_t i = 0; i < 154; i++) {
        cpt_mix_draw d;
        CHECK_OK(cpt_mix_fetch(m, src, i, 0, &q, &d, &err), &err);
        slot_bad += d.source != (uint32_t)(i % 5 == 1 || i % 5 == 3);
        for (uint32_t k = 0; k + 1 < 65; k++) { /* the 64 target tokens */
            uint32_t doc = q.tokens[k + 1] / 1000;
            int is_long = doc % 4 == 0;
            wrong_len += is_long != (d.source == 0);
        }
        real[d.source] += 64;
    }
    CHECKF(slot_bad == 0 && wrong_len == 0, "slots %d, tokens from the wrong length class %d", slot_bad, wrong_len);
    CHECK(real[0] == 92 * 64 && real[1] == 62 * 64); /* 154 samples: 30 periods, then L S L S */
    cpt_mix_draw d;
    cpt_err e2 = {0};
    CHECK(cpt_mix_locate(m, 154, &d, &e2) == CPT_ESTATE && strstr(e2.msg, "'long'"));
    /* Each epoch of the long source visits its 46 sequences once: 92 draws, each twice. */
    unsigned char seen[46] = {0};
    int over = 0;
    for (uint64_t i = 0; i < 154; i++) {
        CHECK_OK(cpt_mix_locate(m, i, &d, &err), &err);
        if (d.source == 0) over += ++seen[d.seq] > 2;
    }
    int all_twice = 1;
    for (int k = 0; k < 46; k++) all_twice &= seen[k] == 2;
    CHECK(over == 0 && all_twice);
    free(q.tokens);
    free(q.seg);
    free(q.pos);
    free(q.mask);
    cpt_mix_close(m);
    cpt_pack_source_close(src[0]);
    cpt_pack_source_close(src[1]);
}

int main(void) {
    length_mix();
    perm_bijection();
    proportions();
    determinism();
    ranks();
    seek();
    phases();
    caps();
    config_errors();
    TEST_END();
}
