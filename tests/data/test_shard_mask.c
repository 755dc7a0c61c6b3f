/* test_shard_mask.c: the version-2 loss-mask section: unmasked shards stay version 1, a
 * masked document makes version 2 with the bits read back exactly (earlier documents all 1),
 * corrupt or truncated masks are rejected naming file and offset, and the packer's targets
 * are -1 exactly where the next token carries no loss, is a pad, or starts a new piece
 * (oracle: the same rule over a flat array built here). */
#include "cpt/fileio.h"
#include "cpt/mixture.h"
#include "cpt/shard.h"
#include "testutil.h"

static char dir[4096];

static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

int main(void) {
    const char *tmp = tu_env("CPT_TMP");
    snprintf(dir, sizeof dir, "%s/test_shard_mask", tmp ? tmp : "/tmp");
    cpt_err err = {0};
    CHECK_OK(cpt_mkdirs(dir, &err), &err);
    char p1[4200], p2[4200];
    snprintf(p1, sizeof p1, "%s/plain.shard", dir);
    snprintf(p2, sizeof p2, "%s/masked.shard", dir);

    /* Documents: d0 unmasked (5 tokens), d1 masked 13 tokens, d2 masked 0 tokens, d3 masked 4. */
    uint32_t d0[5] = {1, 2, 3, 4, 5}, d1[13], d3[4] = {7, 8, 9, 10};
    uint8_t m1[13] = {0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0}, m3[4] = {0, 1, 0, 1};
    for (int i = 0; i < 13; i++) d1[i] = (uint32_t)(20 + i);
    uint32_t flat[22];
    uint8_t fmask[22], fdoc[22];
    size_t T = 0;
    for (int i = 0; i < 5; i++) flat[T] = d0[i], fmask[T] = 1, fdoc[T++] = 0;
    for (int i = 0; i < 13; i++) flat[T] = d1[i], fmask[T] = m1[i], fdoc[T++] = 1;
    for (int i = 0; i < 4; i++) flat[T] = d3[i], fmask[T] = m3[i], fdoc[T++] = 3;

    cpt_shard_writer *w = NULL;
    CHECK_OK(cpt_shard_writer_open(&w, p1, 100, &err), &err);
    CHECK_OK(cpt_shard_writer_add(w, d0, 5, &err), &err);
    CHECK_OK(cpt_shard_writer_commit(w, &err), &err);
    CHECK_OK(cpt_shard_writer_open(&w, p2, 100, &err), &err);
    CHECK_OK(cpt_shard_writer_add(w, d0, 5, &err), &err);
    CHECK_OK(cpt_shard_writer_add_masked(w, d1, m1, 13, &err), &err);
    CHECK_OK(cpt_shard_writer_add_masked(w, d1, m1, 0, &err), &err);
    CHECK_OK(cpt_shard_writer_add_masked(w, d3, m3, 4, &err), &err);
    CHECK_OK(cpt_shard_writer_commit(w, &err), &err);

    cpt_shard *s = NULL;
    CHECK_OK(cpt_shard_open(&s, p1, &err), &err);
    if (s) {
        CHECK(cpt_shard_version(s) == 1 && !cpt_shard_has_mask(s) && cpt_shard_mask_count(s) == 5);
        uint8_t m[5];
        cpt_shard_mask(s, 0, 5, m);
        CHECK(m[0] == 1 && m[4] == 1);
        cpt_shard_close(s);
    }
    char *buf = NULL;
    size_t n = 0;
    CHECK_OK(cpt_read_file(p2, &buf, &n, &err), &err);
    /* header 64 + 22 tokens * 2 = 108 -> index at 112, 5 entries -> 152; mask 3 bytes -> 8 */
    CHECK(n == 160 && rd32((uint8_t *)buf + 8) == 2 && rd32((uint8_t *)buf + 20) == CPT_SHARD_FLAG_MASK);
    CHECK_OK(cpt_shard_open_mem(&s, buf, n, "masked", &err), &err);
    if (s) {
        CHECK(cpt_shard_version(s) == 2 && cpt_shard_has_mask(s) && cpt_shard_n_docs(s) == 4);
        CHECK_OK(cpt_shard_verify(s, &err), &err);
        uint8_t m[22];
        cpt_shard_mask(s, 0, T, m);
        CHECK(memcmp(m, fmask, T) == 0);
        cpt_shard_mask(s, 6, 3, m);
        CHECK(m[0] == fmask[6] && m[1] == fmask[7] && m[2] == fmask[8]);
        size_t on = 0;
        for (size_t i = 0; i < T; i++) on += fmask[i];
        CHECK(cpt_shard_mask_count(s) == on);
        cpt_shard_close(s);
    }
    /* a padding bit set past n_tokens: verify names the mask byte's offset */
    buf[152 + 2] |= (char)0x80; /* bit 23 >= n_tokens 22; body_crc refreshed so only the bit is wrong */
    uint32_t bc = cpt_crc32(0, buf + 64, n - 64);
    memcpy(buf + 56, &bc, 4);
    uint32_t hc = cpt_crc32(0, buf, 60);
    memcpy(buf + 60, &hc, 4);
    CHECK_OK(cpt_shard_open_mem(&s, buf, n, "masked", &err), &err);
    if (s) {
        cpt_err e = {0};
        CHECK(cpt_shard_verify(s, &e) == CPT_EFORMAT && strstr(e.msg, "offset 154"));
        cpt_shard_close(s);
    }
    /* truncated mask section */
    cpt_err e2 = {0};
    CHECK(cpt_shard_open_mem(&s, buf, n - 8, "masked", &e2) == CPT_EFORMAT && strstr(e2.msg, "mask") &&
          strstr(e2.msg, "offset 152"));
    /* a v1 header claiming the mask flag is rejected */
    memcpy(buf + 8, "\x01\0\0\0", 4);
    cpt_err e3 = {0};
    CHECK(cpt_shard_open_mem(&s, buf, n, "masked", &e3) != CPT_OK && strstr(e3.msg, "offset"));
    free(buf);

    /* packer targets over the masked shard, both packings, against the flat oracle */
    for (int kw = 0; kw < 2; kw++) {
        const char *paths[1] = {p2};
        cpt_pack_source *src = NULL;
        uint32_t seq_len = 6, L = 7;
        CHECK_OK(cpt_pack_source_open(&src, paths, 1, seq_len, kw, &err), &err);
        if (!src) continue;
        uint32_t tok[7], seg[7], pos[7];
        uint8_t mk[7];
        int32_t tg[6];
        cpt_pack_seq q = {tok, seg, pos, mk, tg, 0, 0};
        for (uint64_t j = 0; j < cpt_pack_source_n_seqs(src); j++) {
            cpt_pack_source_get(src, j, 99, &q);
            for (uint32_t t = 0; t < seq_len; t++) {
                /* locate the stream offset of token t from tokens (all distinct but d0/d3 ranges) */
                int32_t want = -1;
                if (t + 1 < q.n_real && seg[t + 1] == seg[t]) {
                    /* find the flat index: sequence tokens are contiguous stream pieces */
                    for (size_t f = 0; f + 1 < T; f++)
                        if (flat[f] == tok[t] && flat[f + 1] == tok[t + 1] && fdoc[f] == fdoc[f + 1]) {
                            want = fmask[f + 1] ? (int32_t)tok[t + 1] : -1;
                            break;
                        }
                }
                CHECKF(tg[t] == want, "keep_whole %d seq %llu t %u: target %d want %d", kw, (unsigned long long)j, t,
                       tg[t], want);
            }
            (void)L;
        }
        cpt_pack_source_close(src);
    }
    TEST_END();
}
