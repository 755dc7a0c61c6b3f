/* test_gguf.c: the GGUF reader on hand-built files (every value type, nested arrays, v2 and
 * v3, alignment), a table of must-reject files (each must fail with CPT_EFORMAT or
 * CPT_EUNSUPPORTED and a message naming the offset and field), and refusal by name of
 * types cpt does not dequantize.
 *
 * Helper mode for tests/io/test_gguf_py.py:
 *   test_gguf dequant FILE OUTDIR   writes OUTDIR/<index>.f32 (raw fp32) for every tensor
 *                                   and prints "T index name type numel" per tensor */
#include <errno.h>
#include <stdint.h>

#include "cpt/fileio.h"
#include "cpt/gguf.h"
#include "testutil.h"

/* ---- a tiny byte builder --------------------------------------------------------- */
typedef struct buf {
    uint8_t d[1 << 16];
    size_t n;
} buf;

static void put(buf *b, const void *p, size_t n) {
    CPT_ASSERT(b->n + n <= sizeof b->d);
    memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void str(buf *b, const char *s) {
    u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void pad_to(buf *b, size_t align) {
    while (b->n % align) b->d[b->n++] = 0;
}

/* A valid v3 file: every scalar type, a string, arrays (ints, strings, nested), a Q8_0
 * tensor [2 blocks] and an F32 tensor [3, 2], alignment 64. Records where fields sit so the
 * reject cases can corrupt them. */
typedef struct layout {
    size_t n_kv_at, str_len_at, arr_n_at, align_val_at, tinfo_at, ndims_at, type_at, off_at, off2_at, data_at;
} layout;

static void build_valid(buf *b, layout *L, uint32_t version) {
    b->n = 0;
    put(b, "GGUF", 4);
    u32(b, version);
    u64(b, 2); /* tensors */
    L->n_kv_at = b->n;
    u64(b, 16); /* kv */
    uint8_t u8v = 200; int8_t i8v = -5; uint16_t u16v = 60000; int16_t i16v = -30000;
    int32_t i32v = -2000000000; float f32v = 1.5f; uint8_t boolv = 1; int64_t i64v = -(1ll << 40);
    double f64v = 1e-300;
    str(b, "t.u8"); u32(b, 0); put(b, &u8v, 1);
    str(b, "t.i8"); u32(b, 1); put(b, &i8v, 1);
    str(b, "t.u16"); u32(b, 2); put(b, &u16v, 2);
    str(b, "t.i16"); u32(b, 3); put(b, &i16v, 2);
    str(b, "t.u32"); u32(b, 4); u32(b, 4000000000u);
    str(b, "t.i32"); u32(b, 5); put(b, &i32v, 4);
    str(b, "t.f32"); u32(b, 6); put(b, &f32v, 4);
    str(b, "t.bool"); u32(b, 7); put(b, &boolv, 1);
    str(b, "t.str"); u32(b, 8);
    L->str_len_at = b->n;
    str(b, "hello");
    str(b, "t.u64"); u32(b, 10); u64(b, 1ull << 63);
    str(b, "t.i64"); u32(b, 11); put(b, &i64v, 8);
    str(b, "t.f64"); u32(b, 12); put(b, &f64v, 8);
    str(b, "t.arr_i32"); u32(b, 9); u32(b, 5);
    L->arr_n_at = b->n;
    u64(b, 3);
    for (int32_t i = -1; i < 2; i++) put(b, &i, 4);
    str(b, "t.arr_str"); u32(b, 9); u32(b, 8); u64(b, 2); str(b, "a b"); str(b, "");
    str(b, "t.nested"); u32(b, 9); u32(b, 9); u64(b, 2);
    u32(b, 4); u64(b, 1); u32(b, 7);
    u32(b, 8); u64(b, 1); str(b, "x");
    str(b, "general.alignment"); u32(b, 4);
    L->align_val_at = b->n;
    u32(b, 64);
    /* tensor infos */
    L->tinfo_at = b->n;
    str(b, "q");
    L->ndims_at = b->n;
    u32(b, 1); u64(b, 64);
    L->type_at = b->n;
    u32(b, 8);
    L->off_at = b->n;
    u64(b, 0);
    str(b, "f"); u32(b, 2); u64(b, 2); u64(b, 3); u32(b, 0);
    L->off2_at = b->n;
    u64(b, 128);
    pad_to(b, 64);
    L->data_at = b->n;
    /* Q8_0: d = 0.5 (f16 0x3800), q = -16..15 ; second block d = -2 (0xC000), q = 0..31 */
    for (int blk = 0; blk < 2; blk++) {
        uint16_t h = blk ? 0xC000 : 0x3800;
        put(b, &h, 2);
        for (int j = 0; j < 32; j++) {
            int8_t q = (int8_t)(blk ? j : j - 16);
            put(b, &q, 1);
        }
    }
    pad_to(b, 64);
    CHECK(b->n - L->data_at == 128);
    for (int i = 0; i < 6; i++) {
        float v = (float)i * 0.25f - 1.0f;
        put(b, &v, 4);
    }
}

static void test_valid(uint32_t version) {
    buf *b = calloc(1, sizeof *b);
    layout L;
    build_valid(b, &L, version);
    cpt_gguf *g = NULL;
    cpt_err err = {0};
    CHECK_OK(cpt_gguf_open_buffer(&g, b->d, b->n, "valid.gguf", &err), &err);
    if (!g) {
        free(b);
        return;
    }
    CHECK(cpt_gguf_version(g) == version);
    CHECK(cpt_gguf_alignment(g) == 64);
    CHECK(cpt_gguf_data_offset(g) == L.data_at);
    CHECK(cpt_gguf_n_kv(g) == 16 && cpt_gguf_n_tensors(g) == 2);
    int64_t iv = 0;
    double fv = 0;
    int bv = 0;
    CHECK(!cpt_gguf_get_int(g, "t.u8", &iv, &err) && iv == 200);
    CHECK(!cpt_gguf_get_int(g, "t.i8", &iv, &err) && iv == -5);
    CHECK(!cpt_gguf_get_int(g, "t.u16", &iv, &err) && iv == 60000);
    CHECK(!cpt_gguf_get_int(g, "t.i16", &iv, &err) && iv == -30000);
    CHECK(!cpt_gguf_get_int(g, "t.u32", &iv, &err) && iv == 4000000000ll);
    CHECK(!cpt_gguf_get_int(g, "t.i32", &iv, &err) && iv == -2000000000ll);
    CHECK(!cpt_gguf_get_int(g, "t.i64", &iv, &err) && iv == -(1ll << 40));
    CHECK(!cpt_gguf_get_float(g, "t.f32", &fv, &err) && fv == 1.5);
    CHECK(!cpt_gguf_get_float(g, "t.f64", &fv, &err) && fv == 1e-300);
    CHECK(!cpt_gguf_get_bool(g, "t.bool", &bv, &err) && bv == 1);
    cpt_err e2 = {0};
    CHECK(cpt_gguf_get_int(g, "t.u64", &iv, &e2) == CPT_EFORMAT && strstr(e2.msg, "t.u64")); /* 2^63 */
    cpt_err e3 = {0};
    CHECK(cpt_gguf_get_int(g, "t.str", &iv, &e3) == CPT_EFORMAT && strstr(e3.msg, "string"));
    cpt_err e4 = {0};
    CHECK(cpt_gguf_get_int(g, "nope", &iv, &e4) == CPT_ENOTFOUND && strstr(e4.msg, "nope"));
    char *s = NULL;
    CHECK(!cpt_gguf_get_strdup(g, "t.str", &s, &err) && s && !strcmp(s, "hello"));
    free(s);
    const cpt_gguf_kv *kv = NULL;
    CHECK(!cpt_gguf_get_arr(g, "t.arr_i32", CPT_GGUF_I32, &kv, &err) && kv->arr_n == 3);
    if (kv) CHECK(cpt_gguf_arr_int(kv, 0) == -1 && cpt_gguf_arr_int(kv, 2) == 1);
    kv = NULL;
    CHECK(!cpt_gguf_get_arr(g, "t.arr_str", CPT_GGUF_STRING, &kv, &err) && kv->arr_n == 2);
    if (kv) {
        const char *p;
        size_t n;
        cpt_gguf_arr_str(g, kv, 0, &p, &n);
        CHECK(n == 3 && !memcmp(p, "a b", 3));
        cpt_gguf_arr_str(g, kv, 1, &p, &n);
        CHECK(n == 0);
    }
    kv = NULL;
    CHECK(!cpt_gguf_get_arr(g, "t.nested", CPT_GGUF_ARRAY, &kv, &err) && kv->arr_n == 2);
    const cpt_gguf_tensor *q = cpt_gguf_find_tensor(g, "q"), *f = cpt_gguf_find_tensor(g, "f");
    CHECK(q && f && !cpt_gguf_find_tensor(g, "z"));
    if (q && f) {
        CHECK(q->type == CPT_GGML_Q8_0 && q->numel == 64 && q->nbytes == 68);
        CHECK(f->n_dims == 2 && f->ne[0] == 2 && f->ne[1] == 3 && f->numel == 6);
        float y[64];
        CHECK_OK(cpt_gguf_tensor_f32(g, q, y, &err), &err);
        int ok = 1;
        for (int j = 0; j < 32; j++) ok &= y[j] == 0.5f * (float)(j - 16) && y[32 + j] == -2.0f * (float)j;
        CHECK(ok);
        CHECK_OK(cpt_gguf_tensor_f32(g, f, y, &err), &err);
        CHECK(y[0] == -1.0f && y[5] == 0.25f);
    }
    cpt_gguf_close(g);
    free(b);
}

/* fp16 -> fp32 is exact for every one of the 65536 halves (checked against the
 * definition: sign * 2^(e-15) * (1 + m/1024), subnormals 2^-14 * m/1024). */
static void test_f16_all(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t hh = (uint16_t)h;
        float got;
        CHECK_OK(cpt_ggml_dequant(CPT_GGML_F16, &hh, &got, 1, &(cpt_err){0}), &(cpt_err){0});
        int e = (h >> 10) & 31, m = h & 1023;
        double want;
        if (e == 31) want = m ? NAN : INFINITY;
        else if (e == 0) want = ldexp(m / 1024.0, -14);
        else want = ldexp(1.0 + m / 1024.0, e - 15);
        if (h & 0x8000) want = -want;
        if (isnan(want) ? !isnan(got) : (got != (float)want || !!signbit(got) != !!signbit(want))) bad++;
    }
    CHECKF(bad == 0, "%d fp16 values convert wrongly", bad);
}

/* ---- must-reject ------------------------------------------------------------------ */
typedef void (*mutate_fn)(buf *b, const layout *L);
static void m_magic(buf *b, const layout *L) { b->d[0] = 'X'; }
static void m_version(buf *b, const layout *L) { b->d[4] = 4; }
static void m_version1(buf *b, const layout *L) { b->d[4] = 1; }
static void m_trunc_kv(buf *b, const layout *L) { b->n = L->align_val_at - 10; } /* inside the last key */
static void m_trunc_hdr(buf *b, const layout *L) { b->n = 10; }
static void m_trunc_data(buf *b, const layout *L) { b->n -= 4; }
static void m_nkv_huge(buf *b, const layout *L) { uint64_t v = 1ull << 60; memcpy(b->d + L->n_kv_at, &v, 8); }
static void m_strlen(buf *b, const layout *L) { uint64_t v = 1ull << 40; memcpy(b->d + L->str_len_at, &v, 8); }
static void m_strlen_wrap(buf *b, const layout *L) { uint64_t v = ~0ull - 3; memcpy(b->d + L->str_len_at, &v, 8); }
static void m_arr_n(buf *b, const layout *L) { uint64_t v = 1ull << 62; memcpy(b->d + L->arr_n_at, &v, 8); }
static void m_align0(buf *b, const layout *L) { uint32_t v = 0; memcpy(b->d + L->align_val_at, &v, 4); }
static void m_align3(buf *b, const layout *L) { uint32_t v = 48; memcpy(b->d + L->align_val_at, &v, 4); }
static void m_ndims(buf *b, const layout *L) { uint32_t v = 5; memcpy(b->d + L->ndims_at, &v, 4); }
static void m_ndims0(buf *b, const layout *L) { uint32_t v = 0; memcpy(b->d + L->ndims_at, &v, 4); }
static void m_type(buf *b, const layout *L) { uint32_t v = 4; memcpy(b->d + L->type_at, &v, 4); }
static void m_type_big(buf *b, const layout *L) { uint32_t v = 1000; memcpy(b->d + L->type_at, &v, 4); }
static void m_shape(buf *b, const layout *L) { uint64_t v = 48; memcpy(b->d + L->ndims_at + 4, &v, 8); } /* not a block multiple */
static void m_shape_big(buf *b, const layout *L) { uint64_t v = 64 * 4; memcpy(b->d + L->ndims_at + 4, &v, 8); } /* past the end */
static void m_dim_overflow(buf *b, const layout *L) { uint64_t v = 1ull << 63; memcpy(b->d + L->ndims_at + 4, &v, 8); }
static void m_misaligned(buf *b, const layout *L) { uint64_t v = 32; memcpy(b->d + L->off_at, &v, 8); }
static void m_off_range(buf *b, const layout *L) { uint64_t v = 1ull << 20; memcpy(b->d + L->off_at, &v, 8); }
static void m_off_wrap(buf *b, const layout *L) { uint64_t v = ~0ull - 63; memcpy(b->d + L->off_at, &v, 8); }
static void m_overlap(buf *b, const layout *L) { uint64_t v = 64; memcpy(b->d + L->off2_at, &v, 8); }
static void m_valtype(buf *b, const layout *L) { uint32_t v = 13; memcpy(b->d + L->str_len_at - 4, &v, 4); }
static void m_align_type(buf *b, const layout *L) { uint32_t v = 5; memcpy(b->d + L->align_val_at - 4, &v, 4); }
static void m_dupkey(buf *b, const layout *L) { memcpy(b->d + 32, "t.i8", 4); } /* first key "t.u8" -> "t.i8" */

static void test_reject(void) {
    static const struct {
        const char *name;
        mutate_fn fn;
        const char *field; /* must appear in the message */
    } c[] = {
        {"bad magic", m_magic, "magic"},
        {"version 4", m_version, "version"},
        {"version 1", m_version1, "version"},
        {"truncated header", m_trunc_hdr, "tensor_count"},
        {"truncated kv", m_trunc_kv, "metadata entry 15 key"},
        {"truncated tensor data", m_trunc_data, "\"f\""},
        {"kv count huge", m_nkv_huge, "metadata_kv_count"},
        {"string length past end", m_strlen, "string length"},
        {"string length wraps", m_strlen_wrap, "string length"},
        {"array count huge", m_arr_n, "t.arr_i32"},
        {"alignment 0", m_align0, "general.alignment"},
        {"alignment 48", m_align3, "power of two"},
        {"alignment type", m_align_type, "uint32"},
        {"n_dims 5", m_ndims, "n_dims"},
        {"n_dims 0", m_ndims0, "n_dims"},
        {"removed type id 4", m_type, "unknown ggml tensor type id 4"},
        {"type id 1000", m_type_big, "unknown ggml tensor type id 1000"},
        {"ne[0] not block multiple", m_shape, "block size"},
        {"shape larger than data", m_shape_big, "past the end"},
        {"dimension overflow", m_dim_overflow, "tensor \"q\""},
        {"offset misaligned", m_misaligned, "alignment"},
        {"offset out of range", m_off_range, "past the end"},
        {"offset wraps", m_off_wrap, "past the end"},
        {"tensors overlap", m_overlap, "overlaps"},
        {"unknown value type", m_valtype, "unknown value type 13"},
        {"duplicate key", m_dupkey, "duplicate key"},
    };
    buf *b = calloc(1, sizeof *b);
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        layout L;
        build_valid(b, &L, 3);
        c[i].fn(b, &L);
        /* a copy of exactly the (maybe truncated) size, so ASan sees any overread */
        uint8_t *copy = malloc(b->n ? b->n : 1);
        memcpy(copy, b->d, b->n);
        cpt_gguf *g = NULL;
        cpt_err err = {0};
        int rc = cpt_gguf_open_buffer(&g, copy, b->n, "bad.gguf", &err);
        CHECKF(rc == CPT_EFORMAT && g == NULL, "%s: rc %d", c[i].name, rc);
        CHECKF(strstr(err.msg, "bad.gguf: offset ") != NULL, "%s: message without offset: %s", c[i].name, err.msg);
        CHECKF(strstr(err.msg, c[i].field) != NULL, "%s: message does not name '%s': %s", c[i].name, c[i].field,
               err.msg);
        cpt_gguf_close(g);
        free(copy);
    }
    /* every truncation of a valid file is rejected, never a crash */
    layout L;
    build_valid(b, &L, 3);
    int bad = 0;
    for (size_t n = 0; n < b->n; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b->d, n);
        cpt_gguf *g = NULL;
        cpt_err err = {0};
        if (cpt_gguf_open_buffer(&g, copy, n, "t.gguf", &err) != CPT_EFORMAT || !err.msg[0]) bad++;
        cpt_gguf_close(g);
        free(copy);
    }
    CHECKF(bad == 0, "%d truncations not rejected", bad);
    free(b);
}

/* Types ggml knows but cpt does not dequantize are refused by their ggml name. */
static void test_unsupported(void) {
    buf *b = calloc(1, sizeof *b);
    layout L;
    build_valid(b, &L, 3);
    /* Q8_0 (34 bytes/32) -> IQ4_NL (18 bytes/32): same block elems, fewer bytes, still in range */
    uint32_t v = 20;
    memcpy(b->d + L.type_at, &v, 4);
    cpt_gguf *g = NULL;
    cpt_err err = {0};
    CHECK_OK(cpt_gguf_open_buffer(&g, b->d, b->n, "iq.gguf", &err), &err);
    if (g) {
        float y[64];
        cpt_err e2 = {0};
        CHECK(cpt_gguf_tensor_f32(g, cpt_gguf_find_tensor(g, "q"), y, &e2) == CPT_EUNSUPPORTED);
        CHECKF(strstr(e2.msg, "IQ4_NL") != NULL, "%s", e2.msg);
    }
    cpt_gguf_close(g);
    CHECK(!strcmp(cpt_ggml_type_name(12), "Q4_K") && cpt_ggml_type_name(4) == NULL);
    free(b);
}

static int dequant_main(const char *path, const char *outdir) {
    cpt_gguf *g = NULL;
    cpt_err err = {0};
    if (cpt_gguf_open(&g, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < cpt_gguf_n_tensors(g); i++) {
        const cpt_gguf_tensor *t = cpt_gguf_tensor_at(g, i);
        float *y = malloc(t->numel * sizeof(float));
        if (!y || cpt_gguf_tensor_f32(g, t, y, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        char name[64];
        snprintf(name, sizeof name, "%zu.f32", i);
        char *p = cpt_path_join(outdir, name);
        if (cpt_write_file_atomic(p, y, t->numel * sizeof(float), &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        printf("T %zu %s %s %llu\n", i, t->name, cpt_ggml_type_name(t->type), (unsigned long long)t->numel);
        free(p);
        free(y);
    }
    cpt_gguf_close(g);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "dequant")) return dequant_main(argv[2], argv[3]);
    test_valid(3);
    test_valid(2);
    test_f16_all();
    test_reject();
    test_unsupported();
    TEST_END();
}
