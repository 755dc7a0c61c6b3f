/* test_safetensors.c: fp16/bf16 conversion bit patterns, write->read round trips, sharded
 * directories, and a table of must-reject files (code + file + field in the message).
 *
 * Also a helper for tests/io/test_safetensors_py.py (run by hand or by that test):
 *   test_safetensors dump <file-or-dir>       one line per tensor:
 *       T <name> <dtype> <shape a,b,..> <crc32 of raw bytes> <crc32 of fp32 bytes or ->
 *     and M <key> <value> for each metadata entry of a single file
 *   test_safetensors write <dir> <max_shard>  writes <dir>/single and <dir>/sharded from
 *     the deterministic tensors in make_tensors() (see gen_value) */
#include <dirent.h>
#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpt/fileio.h"
#include "cpt/safetensors.h"
#include "testutil.h"

static uint32_t f2u(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}
static float u2f(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* ---- conversions ---------------------------------------------------------------- */

static void test_bf16_bits(void) {
    static const struct {
        uint32_t in;
        uint16_t out;
    } c[] = {
        {0x3F800000, 0x3F80}, /* 1.0 */
        {0xC0000000, 0xC000}, /* -2.0 */
        {0x3F808000, 0x3F80}, /* tie, kept lsb 0 -> stays (even) */
        {0x3F818000, 0x3F82}, /* tie, kept lsb 1 -> up to even */
        {0x3F808001, 0x3F81}, /* just above the tie -> up */
        {0x3F807FFF, 0x3F80}, /* just below the tie -> down */
        {0x7F7FFFFF, 0x7F80}, /* FLT_MAX rounds to +inf */
        {0x7F7F7FFF, 0x7F7F}, /* below the tie: largest finite bf16 */
        {0x7F800000, 0x7F80}, /* +inf */
        {0xFF800000, 0xFF80}, /* -inf */
        {0x7FC00000, 0x7FC0}, /* qNaN */
        {0xFFC00000, 0xFFC0}, /* -qNaN keeps its sign */
        {0x7F800001, 0x7FC0}, /* sNaN with payload only in the low bits stays a NaN */
        {0x7FFFFFFF, 0x7FFF}, /* NaN: no rounding carry into the sign */
        {0x00000001, 0x0000}, /* smallest fp32 subnormal -> 0 */
        {0x00008000, 0x0000}, /* subnormal tie -> even 0 */
        {0x00018000, 0x0002}, /* subnormal tie, lsb 1 -> up */
        {0x00010000, 0x0001}, /* exact bf16 subnormal */
        {0x80000000, 0x8000}, /* -0 */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        uint16_t got = cpt_f32_to_bf16(u2f(c[i].in));
        CHECKF(got == c[i].out, "bf16(0x%08x) = 0x%04x, want 0x%04x", c[i].in, got, c[i].out);
    }
    CHECK(f2u(cpt_bf16_to_f32(0x3F80)) == 0x3F800000);
    CHECK(f2u(cpt_bf16_to_f32(0x0001)) == 0x00010000);
    CHECK(f2u(cpt_bf16_to_f32(0xFF80)) == 0xFF800000);
    CHECK(f2u(cpt_bf16_to_f32(0x8000)) == 0x80000000);
    /* every non-NaN bf16 survives bf16 -> f32 -> bf16 */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float x = cpt_bf16_to_f32((uint16_t)h);
        if (x != x) continue;
        bad += cpt_f32_to_bf16(x) != h;
    }
    CHECKF(bad == 0, "%d bf16 values do not round-trip", bad);
    /* Independent oracle: pick the nearer of the two bf16 neighbours in double arithmetic
     * (exact here), ties to the even mantissa, over pseudo-random finite fp32 values. */
    uint64_t s = 0x9E3779B97F4A7C15ull;
    bad = 0;
    for (int i = 0; i < 200000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t u = (uint32_t)(s >> 32);
        float x = u2f(u);
        if (x != x || (u & 0x7fffffffu) >= 0x7f7f8000u) continue; /* NaN / rounds to inf */
        uint32_t lo = u >> 16, hi = lo + 1;
        double dl = fabs((double)x - (double)u2f(lo << 16));
        double dh = fabs((double)x - (double)u2f(hi << 16));
        uint32_t want = dl < dh ? lo : dh < dl ? hi : ((lo & 1) ? hi : lo);
        bad += cpt_f32_to_bf16(x) != want;
    }
    CHECKF(bad == 0, "%d random values disagree with the nearest-neighbour bf16 oracle", bad);
}

static void test_f16_bits(void) {
    static const struct {
        uint32_t in;
        uint16_t out;
    } c[] = {
        {0x3F800000, 0x3C00}, /* 1.0 */
        {0xC0000000, 0xC000}, /* -2.0 */
        {0x477FE000, 0x7BFF}, /* 65504, largest finite */
        {0x477FEFFF, 0x7BFF}, /* just below 65520 */
        {0x477FF000, 0x7C00}, /* 65520: tie, rounds to even = 65536 = inf */
        {0x501502F9, 0x7C00}, /* 1e10 */
        {0x7F800000, 0x7C00}, /* +inf */
        {0xFF800000, 0xFC00}, /* -inf */
        {0x38800000, 0x0400}, /* 2^-14, smallest normal */
        {0x387FF000, 0x0400}, /* 2^-14 - 2^-26 rounds up across into the normals */
        {0x33800000, 0x0001}, /* 2^-24, smallest subnormal */
        {0x33000000, 0x0000}, /* 2^-25: tie between 0 and 2^-24 -> even 0 */
        {0x33000001, 0x0001}, /* just above that tie */
        {0x33C00000, 0x0002}, /* 1.5 * 2^-24: tie -> even 2 */
        {0x34200000, 0x0002}, /* 2.5 * 2^-24: tie -> even 2 */
        {0x387FC000, 0x03FF}, /* largest subnormal, exact */
        {0x3F801000, 0x3C00}, /* 1 + 2^-11: tie -> even (1.0) */
        {0x3F803000, 0x3C02}, /* 1 + 3*2^-11: tie -> even (1 + 2^-9) */
        {0x3F801001, 0x3C01}, /* just above the tie */
        {0x7FC00000, 0x7E00}, /* qNaN */
        {0xFFC00000, 0xFE00}, /* -qNaN */
        {0x7F800001, 0x7E00}, /* sNaN with low payload: still a NaN */
        {0x80000000, 0x8000}, /* -0 */
        {0x00000001, 0x0000}, /* fp32 subnormal underflows */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        uint16_t got = cpt_f32_to_f16(u2f(c[i].in));
        CHECKF(got == c[i].out, "f16(0x%08x) = 0x%04x, want 0x%04x", c[i].in, got, c[i].out);
    }
    static const struct {
        uint16_t in;
        uint32_t out;
    } d[] = {
        {0x0001, 0x33800000}, {0x03FF, 0x387FC000}, {0x0400, 0x38800000}, {0x3C00, 0x3F800000},
        {0x7BFF, 0x477FE000}, {0x7C00, 0x7F800000}, {0xFC00, 0xFF800000}, {0x8000, 0x80000000},
        {0x8001, 0xB3800000}, {0x7E00, 0x7FC00000}, {0xC000, 0xC0000000},
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        uint32_t got = f2u(cpt_f16_to_f32(d[i].in));
        CHECKF(got == d[i].out, "f32(f16 0x%04x) = 0x%08x, want 0x%08x", d[i].in, got, d[i].out);
    }
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float x = cpt_f16_to_f32((uint16_t)h);
        if (x != x) continue;
        bad += cpt_f32_to_f16(x) != h;
    }
    CHECKF(bad == 0, "%d f16 values do not round-trip", bad);
#ifdef __FLT16_MAX__
    /* Independent oracle: the compiler's own float -> _Float16 conversion (IEEE RNE). */
    uint64_t s = 0x2545F4914F6CDD1Dull;
    bad = 0;
    for (int i = 0; i < 400000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t u = (uint32_t)(s >> 32);
        /* half the draws in the f16 range (exponent 98..143), half anywhere */
        if (i & 1) u = (u & 0x807fffffu) | ((98u + (u >> 23) % 46u) << 23);
        float x = u2f(u);
        if (x != x) continue;
        _Float16 h = (_Float16)x;
        uint16_t want;
        memcpy(&want, &h, 2);
        bad += cpt_f32_to_f16(x) != want;
    }
    CHECKF(bad == 0, "%d random values disagree with the compiler's _Float16", bad);
#endif
}

/* ---- round trip ------------------------------------------------------------------ */

static char tmpdir[4096];

static char *tpath(const char *name) {
    static char buf[8][4352];
    static int k = 0;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* Deterministic values Python can reproduce bit for bit: an int-valued float divided by
 * 1000 (one correctly rounded division), with special values at the front. */
static float gen_value(size_t i, int seed, int specials) {
    static const uint32_t sp[] = {0x477FF000, 0x33C00000, 0x3F808000, 0x3F818000,
                                  0x7F800000, 0xFF800000, 0x387FF000, 0x80000000};
    if (specials && i < sizeof sp / sizeof sp[0]) return u2f(sp[i]);
    long v = (long)((i * 37 + (size_t)seed * 11) % 1001) - 500;
    return (float)v / 1000.0f;
}

static void rm_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (cpt_is_dir(p))
            rm_dir(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void test_round_trip(void) {
    float a[15], b[9], c[6], sc[1] = {-3.25f}, big[40];
    for (int i = 0; i < 15; i++) a[i] = gen_value((size_t)i, 1, 0);
    for (int i = 0; i < 9; i++) b[i] = gen_value((size_t)i, 2, 1);
    for (int i = 0; i < 6; i++) c[i] = gen_value((size_t)i, 3, 1);
    for (int i = 0; i < 40; i++) big[i] = gen_value((size_t)i, 4, 0);
    int64_t ints[3] = {-1, 0, INT64_MAX};
    cpt_st_wtensor w[] = {
        {.name = "a.f32", .dtype = CPT_DT_F32, .ndim = 2, .shape = {3, 5}, .src_f32 = a},
        {.name = "b.bf16", .dtype = CPT_DT_BF16, .ndim = 1, .shape = {9}, .src_f32 = b},
        {.name = "c.f16", .dtype = CPT_DT_F16, .ndim = 3, .shape = {2, 3, 1}, .src_f32 = c},
        {.name = "scalar", .dtype = CPT_DT_F32, .ndim = 0, .src_f32 = sc},
        {.name = "empty", .dtype = CPT_DT_F32, .ndim = 2, .shape = {0, 4}, .src_f32 = NULL},
        {.name = "ints", .dtype = CPT_DT_I64, .ndim = 1, .shape = {3}, .src_raw = ints},
        {.name = "unaligned.f32", .dtype = CPT_DT_F32, .ndim = 1, .shape = {40}, .src_f32 = big},
        {.name = "\xc3\xa9t\xc3\xa9", .dtype = CPT_DT_BF16, .ndim = 1, .shape = {1}, .src_f32 = sc},
    };
    size_t n = sizeof w / sizeof w[0];
    /* a 1-byte tensor before the last F32 one puts its data at offset 119 (unaligned) */
    cpt_st_wtensor w2[9];
    memcpy(w2, w, sizeof w);
    w2[8] = w2[7];
    w2[7] = w2[6];
    w2[6] = (cpt_st_wtensor){.name = "pad", .dtype = CPT_DT_U8, .ndim = 1, .shape = {1}, .src_raw = "x"};
    n = 9;
    const char *meta[] = {"format", "pt", "note", "h\xc3\xa9llo \"q\"", NULL};
    const char *path = tpath("rt.safetensors");
    cpt_err err = {0};
    CHECK_OK(cpt_st_write(path, w2, n, meta, &err), &err);

    /* header padded so the data section starts at a multiple of 8, keys in given order */
    char *raw = NULL;
    size_t rsize = 0;
    CHECK_OK(cpt_read_file(path, &raw, &rsize, &err), &err);
    if (!raw) return;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | (uint8_t)raw[i];
    CHECK((8 + hlen) % 8 == 0);
    CHECK(raw[8] == '{');
    const char *h = raw + 8;
    char *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "\"%s\":", w2[i].name);
        char *at = strstr(h, needle);
        CHECKF(at && (!prev || at > prev), "key %s missing or out of order", w2[i].name);
        prev = at;
    }
    CHECK(strstr(h, "\"__metadata__\":") == h + 1); /* metadata first, as Python writes it */

    cpt_st_file *f = NULL;
    CHECK_OK(cpt_st_open(&f, path, &err), &err);
    if (!f) {
        free(raw);
        return;
    }
    CHECK(cpt_st_count(f) == n);
    CHECK(strcmp(cpt_st_path(f), path) == 0);
    CHECK(cpt_st_metadata(f, "format") && strcmp(cpt_st_metadata(f, "format"), "pt") == 0);
    CHECK(cpt_st_metadata(f, "note") && strcmp(cpt_st_metadata(f, "note"), meta[3]) == 0);
    CHECK(cpt_st_metadata(f, "missing") == NULL);
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const cpt_st_tensor *t = cpt_st_get(f, i);
        CHECKF(strcmp(t->name, w2[i].name) == 0, "tensor %zu is %s", i, t->name);
        CHECK(cpt_st_find(f, w2[i].name) == t);
        CHECK(t->dtype == w2[i].dtype && t->ndim == w2[i].ndim);
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            CHECK(t->shape[d] == w2[i].shape[d]);
            numel *= (uint64_t)w2[i].shape[d];
        }
        CHECK(t->numel == numel);
        CHECK(t->begin == at && t->end == at + numel * cpt_dtype_size(t->dtype));
        CHECK(memcmp(t->data, raw + 8 + hlen + t->begin, (size_t)(t->end - t->begin)) == 0);
        at = t->end;
        CHECK((uint64_t)rsize == 8 + hlen + t->end || i + 1 < n);
    }
    CHECK(cpt_st_find(f, "nope") == NULL);
    float out[64];
    /* F32 exact */
    const cpt_st_tensor *t = cpt_st_find(f, "a.f32");
    CHECK_OK(cpt_st_read_f32(f, t, out, &err), &err);
    CHECK(memcmp(out, a, sizeof a) == 0);
    /* BF16: stored bits are the hand-checked conversion, read back exactly */
    t = cpt_st_find(f, "b.bf16");
    for (int i = 0; i < 9; i++) {
        uint16_t bits;
        memcpy(&bits, t->data + 2 * i, 2);
        CHECK(bits == cpt_f32_to_bf16(b[i]));
    }
    uint16_t b0, b2;
    memcpy(&b0, t->data, 2);
    memcpy(&b2, t->data + 4, 2);
    CHECK(b0 == 0x4780); /* 65520 = 0x477FF000: low half 0xF000 > 0x8000 rounds up */
    CHECK(b2 == 0x3F80);                     /* tie to even */
    CHECK_OK(cpt_st_read_f32(f, t, out, &err), &err);
    for (int i = 0; i < 9; i++) CHECK(f2u(out[i]) == f2u(cpt_bf16_to_f32(cpt_f32_to_bf16(b[i]))));
    /* F16 */
    t = cpt_st_find(f, "c.f16");
    uint16_t h0;
    memcpy(&h0, t->data, 2);
    CHECK(h0 == 0x7C00); /* 65520 overflows f16 */
    CHECK_OK(cpt_st_read_f32(f, t, out, &err), &err);
    CHECK(isinf(out[0]) && out[0] > 0);
    CHECK(f2u(out[1]) == f2u(u2f(0x34000000))); /* 1.5 * 2^-24 -> 2 * 2^-24 */
    for (int i = 0; i < 6; i++) CHECK(f2u(out[i]) == f2u(cpt_f16_to_f32(cpt_f32_to_f16(c[i]))));
    /* 0-d and empty */
    t = cpt_st_find(f, "scalar");
    CHECK(t->ndim == 0 && t->numel == 1);
    CHECK_OK(cpt_st_read_f32(f, t, out, &err), &err);
    CHECK(out[0] == -3.25f);
    t = cpt_st_find(f, "empty");
    CHECK(t->numel == 0 && t->begin == t->end);
    out[0] = 42.0f;
    CHECK_OK(cpt_st_read_f32(f, t, out, &err), &err);
    CHECK(out[0] == 42.0f);
    /* unaligned F32 data */
    t = cpt_st_find(f, "unaligned.f32");
    CHECK(((uintptr_t)t->data & 3) != 0);
    CHECK_OK(cpt_st_read_f32(f, t, out, &err), &err);
    CHECK(memcmp(out, big, sizeof big) == 0);
    /* raw ints pass through; reading them as fp32 is unsupported and says so */
    t = cpt_st_find(f, "ints");
    CHECK(memcmp(t->data, ints, sizeof ints) == 0);
    cpt_err e2 = {0};
    CHECK(cpt_st_read_f32(f, t, out, &e2) == CPT_EUNSUPPORTED);
    CHECK(strstr(e2.msg, "ints") && strstr(e2.msg, "rt.safetensors") && strstr(e2.msg, "I64"));
    CHECK(cpt_st_find(f, "\xc3\xa9t\xc3\xa9") != NULL);
    cpt_st_close(f);
    free(raw);

    /* F64 -> fp32 via a hand-made file: 1/3 rounds to the nearest float */
    double dv[2] = {1.0 / 3.0, -1e300};
    cpt_st_wtensor wd = {.name = "d", .dtype = CPT_DT_F64, .ndim = 1, .shape = {2}, .src_raw = dv};
    CHECK_OK(cpt_st_write(tpath("f64.safetensors"), &wd, 1, NULL, &err), &err);
    CHECK_OK(cpt_st_open(&f, tpath("f64.safetensors"), &err), &err);
    if (f) {
        CHECK_OK(cpt_st_read_f32(f, cpt_st_get(f, 0), out, &err), &err);
        CHECK(out[0] == (float)(1.0 / 3.0) && f2u(out[0]) == 0x3EAAAAAB);
        CHECK(isinf(out[1]) && out[1] < 0);
        CHECK(cpt_st_metadata(f, "format") == NULL);
        cpt_st_close(f);
    }

    /* writer rejects bad descriptors */
    cpt_st_wtensor dup[2] = {w[0], w[0]};
    cpt_err e3 = {0};
    CHECK(cpt_st_write(tpath("dup.safetensors"), dup, 2, NULL, &e3) == CPT_EINVAL);
    CHECK(strstr(e3.msg, "a.f32") != NULL);
    CHECK(!cpt_is_file(tpath("dup.safetensors")));
    cpt_st_wtensor bad = {.name = "x", .dtype = CPT_DT_I32, .ndim = 1, .shape = {2}, .src_f32 = a};
    cpt_err e4 = {0};
    CHECK(cpt_st_write(tpath("bad.safetensors"), &bad, 1, NULL, &e4) == CPT_EINVAL);
    bad = (cpt_st_wtensor){.name = "x", .dtype = CPT_DT_F32, .ndim = 1, .shape = {-2}, .src_f32 = a};
    cpt_err e5 = {0};
    CHECK(cpt_st_write(tpath("bad.safetensors"), &bad, 1, NULL, &e5) == CPT_EINVAL);
    CHECK(strstr(e5.msg, "shape[0]") != NULL);
    bad = (cpt_st_wtensor){.name = "\xff", .dtype = CPT_DT_F32, .ndim = 1, .shape = {1}, .src_f32 = a};
    cpt_err e6 = {0};
    CHECK(cpt_st_write(tpath("bad.safetensors"), &bad, 1, NULL, &e6) == CPT_EINVAL);
    CHECK(!cpt_is_file(tpath("bad.safetensors")));
    /* I/O failure: a missing directory is CPT_EIO naming the path, and leaves nothing */
    cpt_err e7 = {0};
    CHECK(cpt_st_write(tpath("no-such-dir/x.safetensors"), w, 1, NULL, &e7) == CPT_EIO);
    CHECK(strstr(e7.msg, "no-such-dir/x.safetensors") != NULL);
    CHECK(!cpt_is_dir(tpath("no-such-dir")));

    /* big tensors take the multi-threaded conversion path (>= 65536 elements) */
    enum { NB = 300001 };
    float *src = malloc(NB * sizeof *src), *back = malloc(NB * sizeof *back);
    for (size_t i = 0; i < NB; i++) src[i] = gen_value(i, 5, 1) * (float)(1 + i % 97);
    static const cpt_dtype bdt[3] = {CPT_DT_BF16, CPT_DT_F16, CPT_DT_F32};
    for (int k = 0; k < 3; k++) {
        cpt_st_wtensor wb = {.name = "big", .dtype = bdt[k], .ndim = 2, .shape = {1, NB}, .src_f32 = src};
        CHECK_OK(cpt_st_write(tpath("big.safetensors"), &wb, 1, NULL, &err), &err);
        cpt_st_file *fb = NULL;
        CHECK_OK(cpt_st_open(&fb, tpath("big.safetensors"), &err), &err);
        if (!fb) continue;
        CHECK_OK(cpt_st_read_f32(fb, cpt_st_get(fb, 0), back, &err), &err);
        size_t bad = 0;
        for (size_t i = 0; i < NB; i++) {
            float want = bdt[k] == CPT_DT_BF16  ? cpt_bf16_to_f32(cpt_f32_to_bf16(src[i]))
                         : bdt[k] == CPT_DT_F16 ? cpt_f16_to_f32(cpt_f32_to_f16(src[i]))
                                                : src[i];
            bad += f2u(back[i]) != f2u(want);
        }
        CHECKF(bad == 0, "big %s: %zu elements differ", cpt_dtype_name(bdt[k]), bad);
        cpt_st_close(fb);
    }
    free(src);
    free(back);

    /* an empty file (no tensors) is valid */
    CHECK_OK(cpt_st_write(tpath("none.safetensors"), NULL, 0, NULL, &err), &err);
    CHECK_OK(cpt_st_open(&f, tpath("none.safetensors"), &err), &err);
    if (f) {
        CHECK(cpt_st_count(f) == 0);
        cpt_st_close(f);
    }
}

/* ---- must-reject table --------------------------------------------------------- */

/* 8-byte length (hlen, or strlen(json) when hlen == UINT64_MAX) + json + ndata zero bytes. */
static uint8_t *mk(const char *json, size_t jlen, uint64_t hlen, size_t ndata, size_t *size) {
    if (hlen == UINT64_MAX) hlen = jlen;
    *size = 8 + jlen + ndata;
    uint8_t *b = calloc(1, *size);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hlen >> (8 * i));
    memcpy(b + 8, json, jlen);
    return b;
}

#define T1(name, extra) "{\"" name "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]" extra "}}"

static void test_reject(void) {
    static const struct {
        const char *label, *json;
        uint64_t hlen; /* UINT64_MAX: strlen(json) */
        size_t ndata;
        int code;
        const char *needle; /* tensor or field named in the message */
    } c[] = {
        {"hlen_past_eof", T1("w", ""), 1000, 8, CPT_EFORMAT, "header length"},
        {"hlen_huge", T1("w", ""), UINT64_MAX - 1, 8, CPT_EFORMAT, "header length"},
        {"hlen_zero", T1("w", ""), 0, 8, CPT_EFORMAT, "header length"},
        {"not_json", "{not json}", UINT64_MAX, 0, CPT_EFORMAT, "header JSON"},
        {"not_object", "[1, 2]", UINT64_MAX, 0, CPT_EFORMAT, "header"},
        {"not_utf8", "{\"w\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         UINT64_MAX, 8, CPT_EFORMAT, "header JSON"},
        {"trailing_junk", T1("w", "") " x", UINT64_MAX, 8, CPT_EFORMAT, "header JSON"},
        {"nul_padding", T1("w", "") "\0\0", UINT64_MAX, 8, CPT_EFORMAT, "header JSON"},
        {"duplicate", "{\"dup.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"dup.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         UINT64_MAX, 8, CPT_EFORMAT, "dup.w"},
        {"unknown_dtype", "{\"q.w\":{\"dtype\":\"F8_E4M3\",\"shape\":[8],\"data_offsets\":[0,8]}}",
         UINT64_MAX, 8, CPT_EFORMAT, "tensor 'q.w': field dtype"},
        {"dtype_not_string", "{\"q.w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}",
         UINT64_MAX, 8, CPT_EFORMAT, "tensor 'q.w': field dtype"},
        {"negative_shape", "{\"n.w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",
         UINT64_MAX, 8, CPT_EFORMAT, "tensor 'n.w': field shape[0]"},
        {"float_shape", "{\"n.w\":{\"dtype\":\"F32\",\"shape\":[1,2.0],\"data_offsets\":[0,8]}}",
         UINT64_MAX, 8, CPT_EFORMAT, "tensor 'n.w': field shape[1]"},
        {"string_shape", "{\"n.w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}",
         UINT64_MAX, 8, CPT_EFORMAT, "tensor 'n.w': field shape[0]"},
        {"shape_not_array", "{\"n.w\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}",
         UINT64_MAX, 8, CPT_EFORMAT, "tensor 'n.w': field shape"},
        {"nine_dims", "{\"n.w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}",
         UINT64_MAX, 8, CPT_EFORMAT, "tensor 'n.w': field shape"},
        {"numel_overflow", "{\"o.w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                           "\"data_offsets\":[0,8]}}",
         UINT64_MAX, 8, CPT_EFORMAT, "tensor 'o.w': field shape"},
        {"bytes_overflow", "{\"o.w\":{\"dtype\":\"F64\",\"shape\":[4294967296,1073741824],"
                           "\"data_offsets\":[0,8]}}",
         UINT64_MAX, 8, CPT_EFORMAT, "tensor 'o.w': field shape"},
        {"size_mismatch", "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[64],\"data_offsets\":[0,100]}}",
         UINT64_MAX, 100, CPT_EFORMAT,
         "tensor 'model.norm.weight': data_offsets [0, 100] but shape [64] of F32 needs 256 bytes"},
        {"offsets_out_of_range", T1("r.w", ""), UINT64_MAX, 4, CPT_EFORMAT, "tensor 'r.w': data_offsets"},
        {"begin_gt_end", "{\"r.w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}",
         UINT64_MAX, 8, CPT_EFORMAT, "tensor 'r.w': field data_offsets"},
        {"offsets_three", "{\"r.w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}",
         UINT64_MAX, 8, CPT_EFORMAT, "tensor 'r.w': field data_offsets"},
        {"offsets_negative", "{\"r.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}",
         UINT64_MAX, 8, CPT_EFORMAT, "tensor 'r.w': field data_offsets"},
        {"overlap", "{\"a.w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b.w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         UINT64_MAX, 12, CPT_EFORMAT, "tensor 'b.w': data_offsets [4, 12] overlap tensor 'a.w'"},
        {"gap", "{\"a.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"b.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         UINT64_MAX, 12, CPT_EFORMAT, "tensor 'b.w': data_offsets [8, 12] leave a gap"},
        {"gap_at_start", "{\"b.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         UINT64_MAX, 8, CPT_EFORMAT, "tensor 'b.w': data_offsets [4, 8] leave a gap"},
        {"trailing_bytes", T1("t.w", ""), UINT64_MAX, 12, CPT_EFORMAT, "data section"},
        {"truncated_data", "{\"a.w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                           "\"big.w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[4,20]}}",
         UINT64_MAX, 12, CPT_EFORMAT, "tensor 'big.w': data_offsets [4, 20] run past the end"},
        {"meta_not_string", "{\"__metadata__\":{\"format\":\"pt\",\"step\":5}}", UINT64_MAX, 0,
         CPT_EFORMAT, "__metadata__['step']"},
        {"meta_not_object", "{\"__metadata__\":[\"pt\"]}", UINT64_MAX, 0, CPT_EFORMAT, "__metadata__"},
        {"extra_field", T1("e.w", ",\"extra\":1"), UINT64_MAX, 8, CPT_EFORMAT, "tensor 'e.w': unknown field 'extra'"},
        {"missing_field", "{\"m.w\":{\"dtype\":\"F32\",\"shape\":[2]}}", UINT64_MAX, 8, CPT_EFORMAT,
         "tensor 'm.w': missing field 'data_offsets'"},
        {"entry_not_object", "{\"x.w\":5}", UINT64_MAX, 0, CPT_EFORMAT, "tensor 'x.w'"},
        {"leading_space", " " T1("w", ""), UINT64_MAX, 8, CPT_EFORMAT, "header"},
    };
    int nc = (int)(sizeof c / sizeof c[0]);
    for (int i = 0; i < nc; i++) {
        size_t jlen = strlen(c[i].json);
        if (!strcmp(c[i].label, "nul_padding")) jlen += 2;
        size_t size;
        uint8_t *buf = mk(c[i].json, jlen, c[i].hlen, c[i].ndata, &size);
        char label[128];
        snprintf(label, sizeof label, "%s.safetensors", c[i].label);
        cpt_err err = {0};
        cpt_st_file *f = (cpt_st_file *)buf; /* must be reset to NULL on failure */
        int rc = cpt_st_open_buffer(&f, buf, size, label, &err);
        CHECKF(rc == c[i].code, "%s: rc %d want %d (%s)", c[i].label, rc, c[i].code, err.msg);
        CHECKF(f == NULL, "%s: handle not NULL on failure", c[i].label);
        CHECKF(err.code == rc, "%s: err.code %d", c[i].label, err.code);
        CHECKF(strstr(err.msg, label) != NULL, "%s: file not named: %s", c[i].label, err.msg);
        CHECKF(strstr(err.msg, c[i].needle) != NULL, "%s: '%s' not in: %s", c[i].label,
               c[i].needle, err.msg);
        CHECKF(strstr(err.msg, "HINT:") != NULL, "%s: no hint: %s", c[i].label, err.msg);
        if (rc == CPT_OK) cpt_st_close(f);
        free(buf);
    }
    /* shorter than the length prefix */
    cpt_err err = {0};
    cpt_st_file *f = NULL;
    CHECK(cpt_st_open_buffer(&f, (const uint8_t *)"\x05\0\0", 3, "short.safetensors", &err) == CPT_EFORMAT);
    CHECK(strstr(err.msg, "short.safetensors") && strstr(err.msg, "8-byte"));

    /* must-accept neighbours of the reject cases (so the table cannot pass by rejecting all) */
    static const struct {
        const char *json;
        size_t ndata;
        size_t count;
    } ok[] = {
        {T1("w", "") "   ", 8, 1},                     /* trailing padding spaces */
        {T1("w", "") " \n\t\r", 8, 1},                 /* any JSON whitespace */
        {"{}", 0, 0},                                  /* no tensors */
        {"{\"__metadata__\":{}}", 0, 0},               /* empty metadata */
        {"{\"z\":{\"dtype\":\"BOOL\",\"shape\":[0],\"data_offsets\":[0,0]},"
         "\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
         "\"y\":{\"dtype\":\"I16\",\"shape\":[],\"data_offsets\":[3,5]},"
         "\"e\":{\"dtype\":\"I8\",\"shape\":[2,0],\"data_offsets\":[5,5]}}",
         5, 4}, /* zero-size tensors at shared offsets, 0-d, out-of-order header */
        {"{\"data_offsets\":{\"shape\":[2],\"data_offsets\":[0,8],\"dtype\":\"F32\"}}", 8, 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t size;
        uint8_t *buf = mk(ok[i].json, strlen(ok[i].json), UINT64_MAX, ok[i].ndata, &size);
        cpt_err e = {0};
        f = NULL;
        int rc = cpt_st_open_buffer(&f, buf, size, "ok.safetensors", &e);
        CHECKF(rc == CPT_OK, "accept case %zu: %s", i, e.msg);
        if (f) {
            CHECK(cpt_st_count(f) == ok[i].count);
            cpt_st_close(f);
        }
        free(buf);
    }
    /* header order is kept even when offsets are not in header order */
    {
        const char *j = "{\"second\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                        "\"first\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
        size_t size;
        uint8_t *buf = mk(j, strlen(j), UINT64_MAX, 8, &size);
        float v[2] = {1.5f, -2.5f};
        memcpy(buf + size - 8, v, 8);
        cpt_err e = {0};
        f = NULL;
        CHECK_OK(cpt_st_open_buffer(&f, buf, size, "order.safetensors", &e), &e);
        if (f) {
            CHECK(strcmp(cpt_st_get(f, 0)->name, "second") == 0);
            float x;
            CHECK_OK(cpt_st_read_f32(f, cpt_st_get(f, 0), &x, &e), &e);
            CHECK(x == -2.5f);
            cpt_st_close(f);
        }
        free(buf);
    }

    /* the same through a real file: a truncated copy of a valid file */
    float v[4] = {1, 2, 3, 4};
    cpt_st_wtensor w = {.name = "tr.w", .dtype = CPT_DT_F32, .ndim = 1, .shape = {4}, .src_f32 = v};
    const char *p = tpath("trunc.safetensors");
    CHECK_OK(cpt_st_write(p, &w, 1, NULL, &err), &err);
    struct stat st;
    stat(p, &st);
    CHECK(truncate(p, st.st_size - 3) == 0);
    cpt_err e = {0};
    f = NULL;
    CHECK(cpt_st_open(&f, p, &e) == CPT_EFORMAT);
    CHECK(strstr(e.msg, "trunc.safetensors") && strstr(e.msg, "tr.w") && strstr(e.msg, "truncated"));
    cpt_err e2 = {0};
    CHECK(cpt_st_open(&f, tpath("does-not-exist.safetensors"), &e2) == CPT_ENOTFOUND);
    CHECK(strstr(e2.msg, "does-not-exist.safetensors") != NULL);
}

/* ---- directories ------------------------------------------------------------------ */

static void write_json(const char *path, const char *text) {
    cpt_err e = {0};
    CHECK_OK(cpt_write_file_atomic(path, text, strlen(text), &e), &e);
}

static void test_dirs(void) {
    /* sizes 40, 40, 100, 24, 8 bytes with a 64-byte limit. Hand-run of the
     * huggingface_hub rule (shards numbered as they are closed): t0 opens A (40); t1 would
     * make 80 -> A closes as shard 1, t1 opens B; t2 > limit -> its own shard 2 at once;
     * t3 joins B (64, not over); t4 would make 72 -> B closes as shard 3, t4 opens C, which
     * closes at the end as shard 4. */
    float buf[64];
    for (int i = 0; i < 64; i++) buf[i] = gen_value((size_t)i, 7, 0);
    cpt_st_wtensor w[] = {
        {.name = "t0", .dtype = CPT_DT_F32, .ndim = 1, .shape = {10}, .src_f32 = buf},
        {.name = "t1", .dtype = CPT_DT_BF16, .ndim = 2, .shape = {4, 5}, .src_f32 = buf + 1},
        {.name = "t2", .dtype = CPT_DT_F32, .ndim = 1, .shape = {25}, .src_f32 = buf + 2},
        {.name = "t3", .dtype = CPT_DT_F16, .ndim = 1, .shape = {12}, .src_f32 = buf + 3},
        {.name = "t4", .dtype = CPT_DT_F32, .ndim = 1, .shape = {2}, .src_f32 = buf + 4},
    };
    static const int want_shard[5] = {1, 3, 2, 3, 4};
    const char *dir = tpath("sharded");
    rm_dir(dir);
    cpt_err err = {0};
    CHECK_OK(cpt_mkdirs(dir, &err), &err);
    char p[4608];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    write_json(p, "stale single file");
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_json(p, "{}");
    const char *meta[] = {"format", "pt", NULL};
    CHECK_OK(cpt_st_write_dir(dir, w, 5, meta, 64, &err), &err);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK(!cpt_is_file(p)); /* stale single file removed: it would shadow the shards */
    snprintf(p, sizeof p, "%s/config.json", dir);
    CHECK(cpt_is_file(p)); /* other files untouched */
    for (int s = 1; s <= 4; s++) {
        snprintf(p, sizeof p, "%s/model-%05d-of-00004.safetensors", dir, s);
        CHECKF(cpt_is_file(p), "missing %s", p);
    }
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    json_error_t je;
    json_t *idx = json_load_file(p, JSON_REJECT_DUPLICATES, &je);
    CHECK(idx != NULL);
    if (idx) {
        CHECK(json_integer_value(json_object_get(json_object_get(idx, "metadata"), "total_size")) ==
              40 + 40 + 100 + 24 + 8);
        json_t *wm = json_object_get(idx, "weight_map");
        CHECK(json_object_size(wm) == 5);
        for (int i = 0; i < 5; i++) {
            char want[64];
            snprintf(want, sizeof want, "model-%05d-of-00004.safetensors", want_shard[i]);
            const char *got = json_string_value(json_object_get(wm, w[i].name));
            CHECKF(got && strcmp(got, want) == 0, "%s in %s, want %s", w[i].name, got ? got : "?", want);
        }
        json_decref(idx);
    }
    cpt_st_set *s = NULL;
    CHECK_OK(cpt_st_set_open(&s, dir, &err), &err);
    if (s) {
        CHECK(cpt_st_set_count(s) == 5);
        /* order: shard file order, then header order */
        static const char *order[5] = {"t0", "t2", "t1", "t3", "t4"};
        for (size_t i = 0; i < 5 && i < cpt_st_set_count(s); i++) {
            const cpt_st_file *f = NULL;
            const cpt_st_tensor *t = cpt_st_set_get(s, i, &f);
            CHECKF(strcmp(t->name, order[i]) == 0, "set[%zu] = %s", i, t->name);
            CHECK(f && cpt_st_metadata(f, "format") != NULL);
        }
        for (int i = 0; i < 5; i++) {
            const cpt_st_file *f = NULL;
            const cpt_st_tensor *t = cpt_st_set_find(s, w[i].name, &f);
            CHECK(t && f);
            if (!t || !f) continue;
            char want[64];
            snprintf(want, sizeof want, "model-%05d-of-00004.safetensors", want_shard[i]);
            CHECK(strstr(cpt_st_path(f), want) != NULL);
            float out[32];
            CHECK_OK(cpt_st_read_f32(f, t, out, &err), &err);
            size_t n = (size_t)t->numel;
            int same = 1;
            for (size_t k = 0; k < n; k++) {
                float x = w[i].src_f32[k];
                float want_v = w[i].dtype == CPT_DT_BF16  ? cpt_bf16_to_f32(cpt_f32_to_bf16(x))
                               : w[i].dtype == CPT_DT_F16 ? cpt_f16_to_f32(cpt_f32_to_f16(x))
                                                          : x;
                same &= f2u(out[k]) == f2u(want_v);
            }
            CHECKF(same, "values of %s", w[i].name);
        }
        const cpt_st_file *f = (const cpt_st_file *)s;
        CHECK(cpt_st_set_find(s, "nope", &f) == NULL && f == NULL);
        cpt_st_set_close(s);
    }

    /* writing a single file into the same dir removes the stale index */
    CHECK_OK(cpt_st_write_dir(dir, w, 5, NULL, 0, &err), &err);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    CHECK(!cpt_is_file(p));
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK(cpt_is_file(p));
    snprintf(p, sizeof p, "%s/model-00001-of-00004.safetensors", dir);
    CHECK(cpt_is_file(p)); /* old shards are left alone */
    CHECK_OK(cpt_st_set_open(&s, dir, &err), &err);
    if (s) {
        CHECK(cpt_st_set_count(s) == 5);
        CHECK(strcmp(cpt_st_set_get(s, 2, NULL)->name, "t2") == 0); /* single file: given order */
        cpt_st_set_close(s);
    }
    /* a total under the limit is one file too */
    const char *dir2 = tpath("small");
    rm_dir(dir2);
    CHECK_OK(cpt_st_write_dir(dir2, w, 5, NULL, 212, &err), &err);
    snprintf(p, sizeof p, "%s/model.safetensors", dir2);
    CHECK(cpt_is_file(p));
    CHECK_OK(cpt_st_write_dir(dir2, w, 5, NULL, 211, &err), &err);
    snprintf(p, sizeof p, "%s/model.safetensors", dir2);
    CHECK(!cpt_is_file(p));
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir2);
    CHECK(cpt_is_file(p)); /* 211: t0..t3 = 204 fits, t4 goes to shard 2 */
}

/* Build a sharded dir with shards a (x, y), b (z), c (dupe), d (dupe, w2) and an index text. */
static void broken_dir(const char *dir, const char *index) {
    rm_dir(dir);
    cpt_err e = {0};
    CHECK_OK(cpt_mkdirs(dir, &e), &e);
    float v[2] = {1, 2};
    cpt_st_wtensor a[2] = {{.name = "x", .dtype = CPT_DT_F32, .ndim = 1, .shape = {2}, .src_f32 = v},
                           {.name = "y", .dtype = CPT_DT_F32, .ndim = 1, .shape = {1}, .src_f32 = v}};
    cpt_st_wtensor b[2] = {{.name = "z", .dtype = CPT_DT_F32, .ndim = 1, .shape = {1}, .src_f32 = v},
                           {.name = "dupe", .dtype = CPT_DT_F32, .ndim = 1, .shape = {1}, .src_f32 = v}};
    char p[4608];
    snprintf(p, sizeof p, "%s/a.safetensors", dir);
    CHECK_OK(cpt_st_write(p, a, 2, NULL, &e), &e);
    snprintf(p, sizeof p, "%s/b.safetensors", dir);
    CHECK_OK(cpt_st_write(p, b, 1, NULL, &e), &e);
    snprintf(p, sizeof p, "%s/c.safetensors", dir);
    CHECK_OK(cpt_st_write(p, b + 1, 1, NULL, &e), &e);
    cpt_st_wtensor d[2] = {b[1], {.name = "w2", .dtype = CPT_DT_F32, .ndim = 1, .shape = {1}, .src_f32 = v}};
    snprintf(p, sizeof p, "%s/d.safetensors", dir);
    CHECK_OK(cpt_st_write(p, d, 2, NULL, &e), &e);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_json(p, index);
}

static void test_index_reject(void) {
    static const struct {
        const char *label, *index;
        int code;
        const char *n1, *n2; /* both must appear in the message */
    } c[] = {
        {"missing_shard",
         "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"a.safetensors\",\"z\":\"gone.safetensors\"}}",
         CPT_ENOTFOUND, "'z'", "gone.safetensors"},
        {"absent_tensor",
         "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"a.safetensors\",\"z\":\"b.safetensors\","
         "\"w\":\"b.safetensors\"}}",
         CPT_EFORMAT, "'w'", "b.safetensors"},
        {"wrong_shard",
         "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"b.safetensors\",\"z\":\"b.safetensors\"}}",
         CPT_EFORMAT, "'y'", "b.safetensors"},
        {"unmapped_tensor", "{\"weight_map\":{\"x\":\"a.safetensors\",\"z\":\"b.safetensors\"}}",
         CPT_EFORMAT, "'y'", "a.safetensors"},
        {"duplicate_across_shards",
         "{\"weight_map\":{\"dupe\":\"c.safetensors\",\"w2\":\"d.safetensors\"}}", CPT_EFORMAT,
         "'dupe'", "d.safetensors"},
        {"no_weight_map", "{\"metadata\":{}}", CPT_EFORMAT, "weight_map", "index.json"},
        {"path_in_name", "{\"weight_map\":{\"x\":\"../a.safetensors\"}}", CPT_EFORMAT, "'x'", "index.json"},
        {"value_not_string", "{\"weight_map\":{\"x\":1}}", CPT_EFORMAT, "'x'", "index.json"},
        {"bad_json", "{\"weight_map\":{\"x\":\"a.safetensors\",}}", CPT_EFORMAT, "index.json", "line 1"},
        {"dup_key", "{\"weight_map\":{\"x\":\"a.safetensors\",\"x\":\"a.safetensors\"}}", CPT_EFORMAT,
         "index.json", "duplicate"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        const char *dir = tpath(c[i].label);
        broken_dir(dir, c[i].index);
        cpt_err e = {0};
        cpt_st_set *s = (cpt_st_set *)dir;
        int rc = cpt_st_set_open(&s, dir, &e);
        CHECKF(rc == c[i].code, "%s: rc %d want %d: %s", c[i].label, rc, c[i].code, e.msg);
        CHECKF(s == NULL, "%s: handle set on failure", c[i].label);
        CHECKF(strstr(e.msg, c[i].n1) && strstr(e.msg, c[i].n2), "%s: message lacks '%s'/'%s': %s",
               c[i].label, c[i].n1, c[i].n2, e.msg);
        CHECKF(strstr(e.msg, "HINT:") != NULL, "%s: no hint: %s", c[i].label, e.msg);
        if (!rc) cpt_st_set_close(s);
    }
    /* the valid neighbour: maps every tensor of a and b */
    const char *dir = tpath("index_ok");
    broken_dir(dir, "{\"metadata\":{\"total_size\":16},\"weight_map\":{\"x\":\"a.safetensors\","
                    "\"y\":\"a.safetensors\",\"z\":\"b.safetensors\"}}");
    cpt_err e = {0};
    cpt_st_set *s = NULL;
    CHECK_OK(cpt_st_set_open(&s, dir, &e), &e);
    if (s) {
        CHECK(cpt_st_set_count(s) == 3);
        cpt_st_set_close(s);
    }
    /* an empty directory names both candidate files */
    const char *empty = tpath("emptydir");
    rm_dir(empty);
    CHECK_OK(cpt_mkdirs(empty, &e), &e);
    cpt_err e2 = {0};
    CHECK(cpt_st_set_open(&s, empty, &e2) == CPT_ENOTFOUND);
    CHECK(strstr(e2.msg, "emptydir") && strstr(e2.msg, "model.safetensors.index.json"));
}

/* ---- helper modes for the Python cross-check --------------------------------------- */

static uint32_t crc32_ieee(const void *p, size_t n) {
    static uint32_t tab[256];
    if (!tab[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            tab[i] = c;
        }
    uint32_t c = 0xFFFFFFFFu;
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) c = tab[(c ^ b[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static int dump_tensor(const cpt_st_file *f, const cpt_st_tensor *t) {
    printf("T %s %s ", t->name, cpt_dtype_name(t->dtype));
    for (int d = 0; d < t->ndim; d++) printf("%s%lld", d ? "," : "", (long long)t->shape[d]);
    printf("%s %08x ", t->ndim ? "" : "-", crc32_ieee(t->data, (size_t)(t->end - t->begin)));
    if (t->dtype == CPT_DT_F32 || t->dtype == CPT_DT_F16 || t->dtype == CPT_DT_BF16 ||
        t->dtype == CPT_DT_F64) {
        float *v = malloc((size_t)t->numel * 4 + 4);
        cpt_err e = {0};
        if (!v || cpt_st_read_f32(f, t, v, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            free(v);
            return 1;
        }
        printf("%08x\n", crc32_ieee(v, (size_t)t->numel * 4));
        free(v);
    } else {
        printf("-\n");
    }
    return 0;
}

static int mode_dump(const char *path) {
    cpt_err e = {0};
    if (cpt_is_dir(path)) {
        cpt_st_set *s = NULL;
        if (cpt_st_set_open(&s, path, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        int rc = 0;
        for (size_t i = 0; i < cpt_st_set_count(s); i++) {
            const cpt_st_file *f;
            const cpt_st_tensor *t = cpt_st_set_get(s, i, &f);
            rc |= dump_tensor(f, t);
        }
        cpt_st_set_close(s);
        return rc;
    }
    cpt_st_file *f = NULL;
    if (cpt_st_open(&f, path, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    int rc = 0;
    for (size_t i = 0; i < cpt_st_count(f); i++) rc |= dump_tensor(f, cpt_st_get(f, i));
    const char *keys[] = {"format", "note", NULL};
    for (int i = 0; keys[i]; i++)
        if (cpt_st_metadata(f, keys[i])) printf("M %s %s\n", keys[i], cpt_st_metadata(f, keys[i]));
    cpt_st_close(f);
    return rc;
}

/* Tensors for the Python side: name, dtype, shape, seed; values gen_value(i, seed, 1). */
static int mode_write(const char *dir, uint64_t max_shard) {
    static const struct {
        const char *name;
        cpt_dtype dt;
        int ndim;
        int64_t shape[3];
    } spec[] = {
        {"model.embed_tokens.weight", CPT_DT_BF16, 2, {33, 16}},
        {"model.layers.0.self_attn.q_proj.weight", CPT_DT_F16, 2, {16, 16}},
        {"model.layers.0.input_layernorm.weight", CPT_DT_F32, 1, {16}},
        {"model.layers.0.mlp.up_proj.weight", CPT_DT_BF16, 2, {44, 16}},
        {"model.norm.weight", CPT_DT_F32, 1, {16}},
        {"scalar", CPT_DT_F32, 0, {0}},
        {"empty", CPT_DT_BF16, 2, {0, 3}},
        {"lm_head.weight", CPT_DT_F16, 2, {33, 16}},
    };
    enum { N = sizeof spec / sizeof spec[0] };
    cpt_st_wtensor w[N];
    float *vals[N];
    for (int i = 0; i < N; i++) {
        size_t numel = 1;
        for (int d = 0; d < spec[i].ndim; d++) numel *= (size_t)spec[i].shape[d];
        vals[i] = malloc(numel * 4 + 4);
        for (size_t k = 0; k < numel; k++) vals[i][k] = gen_value(k, i, 1);
        w[i] = (cpt_st_wtensor){.name = spec[i].name, .dtype = spec[i].dt, .ndim = spec[i].ndim,
                                .src_f32 = vals[i]};
        memcpy(w[i].shape, spec[i].shape, sizeof spec[i].shape);
    }
    const char *meta[] = {"format", "pt", NULL};
    cpt_err e = {0};
    char p[8192];
    snprintf(p, sizeof p, "%s/single", dir);
    int rc = cpt_st_write_dir(p, w, N, meta, 0, &e);
    snprintf(p, sizeof p, "%s/sharded", dir);
    if (!rc) rc = cpt_st_write_dir(p, w, N, meta, max_shard, &e);
    for (int i = 0; i < N; i++) free(vals[i]);
    if (rc) fprintf(stderr, "%s\n", e.msg);
    return rc ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "dump")) return mode_dump(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "write")) return mode_write(argv[2], strtoull(argv[3], NULL, 10));
    const char *t = tu_env("CPT_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/io_safetensors", t ? t : "/tmp");
    rm_dir(tmpdir);
    cpt_err e = {0};
    if (cpt_mkdirs(tmpdir, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    test_bf16_bits();
    test_f16_bits();
    test_round_trip();
    test_reject();
    test_dirs();
    test_index_reject();
    TEST_END();
}
