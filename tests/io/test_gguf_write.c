/* test_gguf_write.c: the GGUF writer read back by our reader (every metadata type, string
 * arrays, alignment 32 and 64, tensors of each writable type), writes that must fail cleanly
 * (a directory that does not exist, a read-only directory unless root, duplicate keys, a bad
 * tensor size)
 * leaving no file, and the quantizers against our dequantizer: F32 exact, BF16/F16 within half
 * an ulp of their precision, Q8_0 within d/2 per element (d = amax/127 in fp16).
 * Bit-exactness against the `gguf` package is tests/io/test_gguf_write_py.py, through:
 *   test_gguf_write quant TYPE IN.f32 OUT.bin   raw fp32 in, ggml blocks out (TYPE f16|bf16|q8_0) */
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpt/fileio.h"
#include "cpt/gguf.h"
#include "testutil.h"

static uint32_t type_by_name(const char *s) {
    if (!strcmp(s, "f32")) return CPT_GGML_F32;
    if (!strcmp(s, "f16")) return CPT_GGML_F16;
    if (!strcmp(s, "bf16")) return CPT_GGML_BF16;
    if (!strcmp(s, "q8_0")) return CPT_GGML_Q8_0;
    return 999;
}

static int quant_main(const char *ty, const char *in, const char *out) {
    cpt_err err = {0};
    char *d = NULL;
    size_t n = 0;
    if (cpt_read_file(in, &d, &n, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    uint32_t t = type_by_name(ty);
    uint64_t be = 1, bb = 4, ne = n / 4;
    if (t == 999 || !cpt_ggml_type_block(t, &be, &bb) || ne % be) {
        fprintf(stderr, "bad type %s or size %zu\n", ty, n);
        return 2;
    }
    size_t ob = (size_t)(ne / be * bb);
    uint8_t *o = malloc(ob ? ob : 1);
    float *x = malloc(n ? n : 1);
    memcpy(x, d, n);
    int rc = cpt_ggml_quant(t, x, o, ne, &err);
    if (!rc) rc = cpt_write_file_atomic(out, o, ob, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    free(o);
    free(x);
    free(d);
    return rc ? 1 : 0;
}

static char tmpdir[256];

static void test_roundtrip(uint32_t align) {
    cpt_err err = {0};
    cpt_gguf_writer *w = NULL;
    CHECK_OK(cpt_gguf_writer_new(&w, align, &err), &err);
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    uint64_t u64 = 0xfedcba9876543210ull;
    int64_t i64 = -(1ll << 62);
    double f64 = 3.141592653589793;
    CHECK_OK(cpt_gguf_w_scalar(w, "k.u8", CPT_GGUF_U8, &u8, &err), &err);
    CHECK_OK(cpt_gguf_w_scalar(w, "k.i8", CPT_GGUF_I8, &i8, &err), &err);
    CHECK_OK(cpt_gguf_w_scalar(w, "k.u16", CPT_GGUF_U16, &u16, &err), &err);
    CHECK_OK(cpt_gguf_w_scalar(w, "k.i16", CPT_GGUF_I16, &i16, &err), &err);
    CHECK_OK(cpt_gguf_w_u32(w, "k.u32", 4000000000u, &err), &err);
    CHECK_OK(cpt_gguf_w_i32(w, "k.i32", -2000000000, &err), &err);
    CHECK_OK(cpt_gguf_w_f32(w, "k.f32", 1e-5f, &err), &err);
    CHECK_OK(cpt_gguf_w_bool(w, "k.bool", 1, &err), &err);
    CHECK_OK(cpt_gguf_w_str(w, "k.str", "h\xc3\xa9llo", 6, &err), &err);
    CHECK_OK(cpt_gguf_w_scalar(w, "k.u64", CPT_GGUF_U64, &u64, &err), &err);
    CHECK_OK(cpt_gguf_w_scalar(w, "k.i64", CPT_GGUF_I64, &i64, &err), &err);
    CHECK_OK(cpt_gguf_w_scalar(w, "k.f64", CPT_GGUF_F64, &f64, &err), &err);
    int32_t ia[3] = {-1, 0, 7};
    float fa[2] = {0.5f, -2.25f};
    uint8_t ba[3] = {1, 0, 1};
    CHECK_OK(cpt_gguf_w_arr(w, "a.i32", CPT_GGUF_I32, ia, 3, &err), &err);
    CHECK_OK(cpt_gguf_w_arr(w, "a.f32", CPT_GGUF_F32, fa, 2, &err), &err);
    CHECK_OK(cpt_gguf_w_arr(w, "a.bool", CPT_GGUF_BOOL, ba, 3, &err), &err);
    CHECK_OK(cpt_gguf_w_arr(w, "a.empty", CPT_GGUF_U8, NULL, 0, &err), &err);
    const char *sa[3] = {"a", "", "\xe2\x96\x81the"};
    CHECK_OK(cpt_gguf_w_arr_str(w, "a.str", sa, NULL, 3, &err), &err);
    /* must-fail on the writer side, leaving it usable */
    CHECK(cpt_gguf_w_u32(w, "k.u32", 1, &err) == CPT_EINVAL && strstr(err.msg, "twice"));
    uint8_t bad = 2;
    CHECK(cpt_gguf_w_scalar(w, "k.bad", CPT_GGUF_BOOL, &bad, &err) == CPT_EINVAL);
    CHECK(cpt_gguf_w_scalar(w, "k.bad2", CPT_GGUF_STRING, &bad, &err) == CPT_EINVAL);

    /* tensors: F32 [5, 3] (ggml ne {5, 3}), F16 [7], Q8_0 [2, 64], BF16 [33] */
    float a[15], q[128], h[7], b[33];
    for (int i = 0; i < 15; i++) a[i] = (float)i * 0.25f - 1.0f;
    for (int i = 0; i < 128; i++) q[i] = sinf((float)i * 0.37f) * 3.0f;
    for (int i = 0; i < 7; i++) h[i] = (float)i / 3.0f;
    for (int i = 0; i < 33; i++) b[i] = (float)i * 1.1f;
    uint8_t qb[4 * 34], hb[14], bbuf[66];
    CHECK_OK(cpt_ggml_quant(CPT_GGML_Q8_0, q, qb, 128, &err), &err);
    CHECK_OK(cpt_ggml_quant(CPT_GGML_F16, h, hb, 7, &err), &err);
    CHECK_OK(cpt_ggml_quant(CPT_GGML_BF16, b, bbuf, 33, &err), &err);
    uint64_t ne_a[2] = {5, 3}, ne_h[1] = {7}, ne_q[2] = {64, 2}, ne_b[1] = {33};
    CHECK_OK(cpt_gguf_w_tensor(w, "t.a", 2, ne_a, CPT_GGML_F32, a, sizeof a, 0, &err), &err);
    CHECK_OK(cpt_gguf_w_tensor(w, "t.h", 1, ne_h, CPT_GGML_F16, hb, sizeof hb, 0, &err), &err);
    CHECK_OK(cpt_gguf_w_tensor(w, "t.q", 2, ne_q, CPT_GGML_Q8_0, qb, sizeof qb, 0, &err), &err);
    float *owned = malloc(sizeof b);
    memcpy(owned, bbuf, sizeof bbuf);
    CHECK_OK(cpt_gguf_w_tensor(w, "t.b", 1, ne_b, CPT_GGML_BF16, owned, sizeof bbuf, 1, &err), &err);
    CHECK(cpt_gguf_w_tensor(w, "t.a", 2, ne_a, CPT_GGML_F32, a, sizeof a, 0, &err) == CPT_EINVAL);
    CHECK(cpt_gguf_w_tensor(w, "t.x", 2, ne_a, CPT_GGML_F32, a, sizeof a - 4, 0, &err) == CPT_EINVAL);
    uint64_t ne_odd[1] = {33};
    CHECK(cpt_gguf_w_tensor(w, "t.y", 1, ne_odd, CPT_GGML_Q8_0, qb, 34, 0, &err) == CPT_EINVAL);

    char path[800];
    snprintf(path, sizeof path, "%s/rt%u.gguf", tmpdir, align);
    CHECK_OK(cpt_gguf_writer_write(w, path, &err), &err);
    cpt_gguf_writer_free(w);

    cpt_gguf *g = NULL;
    CHECK_OK(cpt_gguf_open(&g, path, &err), &err);
    if (!g) return;
    CHECK(cpt_gguf_version(g) == 3);
    CHECK(cpt_gguf_alignment(g) == (align ? align : 32));
    CHECK(cpt_gguf_data_offset(g) % (align ? align : 32) == 0);
    CHECK(cpt_gguf_n_kv(g) == 17u + (align && align != 32));
    const cpt_gguf_kv *kv;
    CHECK((kv = cpt_gguf_find(g, "k.u8")) && kv->type == CPT_GGUF_U8 && kv->v.u == 200);
    CHECK((kv = cpt_gguf_find(g, "k.i8")) && kv->type == CPT_GGUF_I8 && kv->v.i == -100);
    CHECK((kv = cpt_gguf_find(g, "k.u16")) && kv->type == CPT_GGUF_U16 && kv->v.u == 60000);
    CHECK((kv = cpt_gguf_find(g, "k.i16")) && kv->type == CPT_GGUF_I16 && kv->v.i == -30000);
    CHECK((kv = cpt_gguf_find(g, "k.u32")) && kv->type == CPT_GGUF_U32 && kv->v.u == 4000000000u);
    CHECK((kv = cpt_gguf_find(g, "k.i32")) && kv->type == CPT_GGUF_I32 && kv->v.i == -2000000000);
    CHECK((kv = cpt_gguf_find(g, "k.f32")) && kv->type == CPT_GGUF_F32 && (float)kv->v.f == 1e-5f);
    CHECK((kv = cpt_gguf_find(g, "k.bool")) && kv->type == CPT_GGUF_BOOL && kv->v.u == 1);
    CHECK((kv = cpt_gguf_find(g, "k.u64")) && kv->type == CPT_GGUF_U64 && kv->v.u == u64);
    CHECK((kv = cpt_gguf_find(g, "k.i64")) && kv->type == CPT_GGUF_I64 && kv->v.i == i64);
    CHECK((kv = cpt_gguf_find(g, "k.f64")) && kv->type == CPT_GGUF_F64 && kv->v.f == f64);
    const char *s;
    size_t len;
    CHECK(cpt_gguf_get_str(g, "k.str", &s, &len, &err) == 0 && len == 6 && !memcmp(s, "h\xc3\xa9llo", 6));
    CHECK(cpt_gguf_get_arr(g, "a.i32", CPT_GGUF_I32, &kv, &err) == 0 && kv->arr_n == 3 &&
          cpt_gguf_arr_int(kv, 0) == -1 && cpt_gguf_arr_int(kv, 2) == 7);
    CHECK(cpt_gguf_get_arr(g, "a.f32", CPT_GGUF_F32, &kv, &err) == 0 && kv->arr_n == 2 &&
          cpt_gguf_arr_float(kv, 1) == -2.25);
    CHECK(cpt_gguf_get_arr(g, "a.bool", CPT_GGUF_BOOL, &kv, &err) == 0 && kv->arr_n == 3 &&
          cpt_gguf_arr_int(kv, 1) == 0 && cpt_gguf_arr_int(kv, 2) == 1);
    CHECK(cpt_gguf_get_arr(g, "a.empty", CPT_GGUF_U8, &kv, &err) == 0 && kv->arr_n == 0);
    if (cpt_gguf_get_arr(g, "a.str", CPT_GGUF_STRING, &kv, &err) == 0 && kv->arr_n == 3) {
        for (int i = 0; i < 3; i++) {
            cpt_gguf_arr_str(g, kv, (uint64_t)i, &s, &len);
            CHECKF(len == strlen(sa[i]) && !memcmp(s, sa[i], len), "string %d", i);
        }
    } else {
        CHECK(!"a.str missing");
    }
    CHECK(cpt_gguf_n_tensors(g) == 4);
    const cpt_gguf_tensor *t;
    float out[128];
    if ((t = cpt_gguf_find_tensor(g, "t.a")) && t->n_dims == 2 && t->ne[0] == 5 && t->ne[1] == 3) {
        CHECK_OK(cpt_gguf_tensor_f32(g, t, out, &err), &err);
        CHECK(!memcmp(out, a, sizeof a));
    } else {
        CHECK(!"t.a");
    }
    if ((t = cpt_gguf_find_tensor(g, "t.h")) && t->type == CPT_GGML_F16 && t->numel == 7) {
        CHECK_OK(cpt_gguf_tensor_f32(g, t, out, &err), &err);
        for (int i = 0; i < 7; i++) CHECKF(fabsf(out[i] - h[i]) <= fabsf(h[i]) * 0x1p-11f, "f16 %d", i);
    } else {
        CHECK(!"t.h");
    }
    if ((t = cpt_gguf_find_tensor(g, "t.q")) && t->type == CPT_GGML_Q8_0 && t->ne[0] == 64 && t->ne[1] == 2) {
        CHECK_OK(cpt_gguf_tensor_f32(g, t, out, &err), &err);
        CHECK(!memcmp(t->data, qb, sizeof qb));
    } else {
        CHECK(!"t.q");
    }
    if ((t = cpt_gguf_find_tensor(g, "t.b")) && t->type == CPT_GGML_BF16 && t->numel == 33) {
        CHECK_OK(cpt_gguf_tensor_f32(g, t, out, &err), &err);
        for (int i = 0; i < 33; i++) CHECKF(fabsf(out[i] - b[i]) <= fabsf(b[i]) * 0x1p-8f, "bf16 %d", i);
        CHECK(t->offset % (align ? align : 32) == 0);
    } else {
        CHECK(!"t.b");
    }
    cpt_gguf_close(g);
}

/* Quantize -> our dequantizer: the documented error bounds, on values with a wide range. */
static void test_quant_bounds(void) {
    cpt_err err = {0};
    enum { N = 32 * 40 };
    static float x[N], y[N];
    static uint8_t qb[N / 32 * 34], hb[2 * N];
    uint32_t s = 12345;
    for (int i = 0; i < N; i++) {
        s = s * 1664525u + 1013904223u;
        float u = (float)(s >> 8) / 16777216.0f - 0.5f;
        x[i] = u * powf(10.0f, (float)((i / 32) % 8) - 4.0f); /* blocks from 1e-4 to 1e3 */
    }
    for (int i = 0; i < 32; i++) x[i] = 0.0f; /* an all-zero block: d = 0 */
    CHECK_OK(cpt_ggml_quant(CPT_GGML_Q8_0, x, qb, N, &err), &err);
    CHECK_OK(cpt_ggml_dequant(CPT_GGML_Q8_0, qb, y, N, &err), &err);
    double worst = 0;
    for (int b = 0; b < N / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j]));
        /* |x - q*d16| <= d/2 (rounding) + 127 * |d - d16| (the fp16 scale): d16 is within
         * 2^-11 d relative, or 2^-25 absolute where d is an fp16 subnormal (< 2^-14) */
        float d = amax / 127.0f, bound = d * 0.5f + 127.0f * fmaxf(d * 0x1p-11f, 0x1p-25f);
        for (int j = 0; j < 32; j++) {
            float e = fabsf(y[32 * b + j] - x[32 * b + j]);
            if (e / bound > worst) worst = e / bound;
            CHECKF(e <= bound, "q8_0 block %d elem %d: |err| %g > %g", b, j, (double)e, (double)bound);
        }
    }
    fprintf(stderr, "q8_0: worst error / bound = %.3f\n", worst);
    CHECK_OK(cpt_ggml_quant(CPT_GGML_F16, x + 32 * 4, hb, 32 * 4, &err), &err); /* blocks 1e0..1e3: normal f16 */
    CHECK_OK(cpt_ggml_dequant(CPT_GGML_F16, hb, y, 32 * 4, &err), &err);
    for (int i = 0; i < 128; i++) CHECK(fabsf(y[i] - x[128 + i]) <= fabsf(x[128 + i]) * 0x1p-11f);
    CHECK_OK(cpt_ggml_quant(CPT_GGML_BF16, x, hb, N, &err), &err);
    CHECK_OK(cpt_ggml_dequant(CPT_GGML_BF16, hb, y, N, &err), &err);
    for (int i = 0; i < N; i++) CHECK(fabsf(y[i] - x[i]) <= fabsf(x[i]) * 0x1p-8f);
    CHECK(cpt_ggml_quant(CPT_GGML_Q4_K, x, qb, 256, &err) == CPT_EUNSUPPORTED && strstr(err.msg, "Q4_K") &&
          strstr(err.msg, "HINT"));
}

static void test_write_fails(void) {
    cpt_err err = {0};
    cpt_gguf_writer *w = NULL;
    CHECK_OK(cpt_gguf_writer_new(&w, 0, &err), &err);
    CHECK(cpt_gguf_writer_new(&(cpt_gguf_writer *){NULL}, 48, &err) == CPT_EINVAL);
    CHECK_OK(cpt_gguf_w_u32(w, "x", 1, &err), &err);
    float a[4] = {1, 2, 3, 4};
    uint64_t ne[1] = {4};
    CHECK_OK(cpt_gguf_w_tensor(w, "t", 1, ne, CPT_GGML_F32, a, sizeof a, 0, &err), &err);
    char path[800];
    snprintf(path, sizeof path, "%s/no/such/dir/out.gguf", tmpdir);
    err = (cpt_err){0};
    CHECKF(cpt_gguf_writer_write(w, path, &err) == CPT_EIO && strstr(err.msg, "out.gguf") && strstr(err.msg, "HINT"),
           "%s", err.msg);
    CHECK(!cpt_is_file(path));
    char ro[400];
    snprintf(ro, sizeof ro, "%s/ro", tmpdir);
    mkdir(ro, 0755);
    chmod(ro, 0555);
    snprintf(path, sizeof path, "%s/out.gguf", ro);
    err = (cpt_err){0};
    if (access(ro, W_OK) == 0) {
        fprintf(stderr, "note: running as root, the read-only directory case cannot fail; skipped that case\n");
    } else {
        CHECK(cpt_gguf_writer_write(w, path, &err) == CPT_EIO && strstr(err.msg, "out.gguf"));
        CHECK(!cpt_is_file(path));
    }
    chmod(ro, 0755);
    cpt_gguf_writer_free(w);
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "quant")) return quant_main(argv[2], argv[3], argv[4]);
    const char *base = getenv("CPT_TMP") ? getenv("CPT_TMP") : "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/test_gguf_write.%ld", base, (long)getpid());
    cpt_err err = {0};
    if (cpt_mkdirs(tmpdir, &err)) TEST_SKIP("cannot create %s: %s", tmpdir, err.msg);
    test_roundtrip(0);
    test_roundtrip(64);
    test_quant_bounds();
    test_write_fails();
    TEST_END();
}
