/* gguf_quant.c: ggml tensor types (names, block sizes) and their dequantization to fp32;
 * no file parsing here (gguf_read.c).
 *
 * Block layouts follow ggml-common.h; the arithmetic follows dequantize_row_* in
 * ggml-quants.c operation by operation so results are bit-exact against ggml and the
 * `gguf` Python package. Products and sums are kept in separate statements: a compiler
 * allowed to contract `a*b - c` into an FMA (clang's default) would round differently. */
#include <string.h>

#include "cpt/gguf.h"
#include "cpt/safetensors.h" /* cpt_f16_to_f32, cpt_bf16_to_f32 */

#define QK 32
#define QK_K 256

static const struct {
    const char *name;
    uint32_t block_elems, block_bytes;
} ggml_types[] = {
    /* ids ggml defines (ggml.h enum ggml_type); 4, 5 and 31..33 were removed upstream */
    [0] = {"F32", 1, 4},        [1] = {"F16", 1, 2},        [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},     [6] = {"Q5_0", 32, 22},     [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},     [9] = {"Q8_1", 32, 36},     [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},  [12] = {"Q4_K", 256, 144},  [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},  [15] = {"Q8_K", 256, 292},  [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74}, [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},  [21] = {"IQ3_S", 256, 110}, [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},       [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},       [27] = {"I64", 1, 8},       [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56},  [30] = {"BF16", 1, 2},      [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},  [39] = {"MXFP4", 32, 17},
};
#define N_TYPES (sizeof ggml_types / sizeof ggml_types[0])

const char *cpt_ggml_type_name(uint32_t type) {
    return type < N_TYPES ? ggml_types[type].name : NULL;
}

int cpt_ggml_type_block(uint32_t type, uint64_t *be, uint64_t *bb) {
    if (type >= N_TYPES || !ggml_types[type].name) return 0;
    *be = ggml_types[type].block_elems;
    *bb = ggml_types[type].block_bytes;
    return 1;
}

int cpt_ggml_type_supported(uint32_t t) {
    switch (t) {
    case CPT_GGML_F32: case CPT_GGML_F16: case CPT_GGML_BF16: case CPT_GGML_Q4_0:
    case CPT_GGML_Q4_1: case CPT_GGML_Q5_0: case CPT_GGML_Q5_1: case CPT_GGML_Q8_0:
    case CPT_GGML_Q2_K: case CPT_GGML_Q3_K: case CPT_GGML_Q4_K: case CPT_GGML_Q5_K:
    case CPT_GGML_Q6_K: return 1;
    default: return 0;
    }
}

static inline float h2f(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return cpt_f16_to_f32(h);
}

/* Q4_0 {f16 d; u8 qs[16]}: w = (q - 8) * d; byte j: element j low nibble, j+16 high. */
static void dq_q4_0(const uint8_t *b, float *y) {
    float d = h2f(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < QK / 2; j++) {
        y[j] = (float)((qs[j] & 0x0F) - 8) * d;
        y[j + QK / 2] = (float)((qs[j] >> 4) - 8) * d;
    }
}

/* Q4_1 {f16 d; f16 m; u8 qs[16]}: w = q * d + m. */
static void dq_q4_1(const uint8_t *b, float *y) {
    float d = h2f(b), m = h2f(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < QK / 2; j++) {
        float p0 = (float)(qs[j] & 0x0F) * d;
        float p1 = (float)(qs[j] >> 4) * d;
        y[j] = p0 + m;
        y[j + QK / 2] = p1 + m;
    }
}

/* Q5_0 {f16 d; u32 qh; u8 qs[16]}: the 5th bit of element j is bit j of qh. w = (q - 16) d. */
static void dq_q5_0(const uint8_t *b, float *y) {
    float d = h2f(b);
    uint32_t qh;
    memcpy(&qh, b + 2, 4);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < QK / 2; j++) {
        int h0 = (int)((qh >> j) << 4) & 0x10;
        int h1 = (int)(qh >> (j + 12)) & 0x10;
        y[j] = (float)(((qs[j] & 0x0F) | h0) - 16) * d;
        y[j + QK / 2] = (float)(((qs[j] >> 4) | h1) - 16) * d;
    }
}

/* Q5_1 {f16 d; f16 m; u32 qh; u8 qs[16]}: w = q d + m. */
static void dq_q5_1(const uint8_t *b, float *y) {
    float d = h2f(b), m = h2f(b + 2);
    uint32_t qh;
    memcpy(&qh, b + 4, 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < QK / 2; j++) {
        int h0 = (int)((qh >> j) << 4) & 0x10;
        int h1 = (int)(qh >> (j + 12)) & 0x10;
        float p0 = (float)((qs[j] & 0x0F) | h0) * d;
        float p1 = (float)((qs[j] >> 4) | h1) * d;
        y[j] = p0 + m;
        y[j + QK / 2] = p1 + m;
    }
}

/* Q8_0 {f16 d; i8 qs[32]}: w = q d. */
static void dq_q8_0(const uint8_t *b, float *y) {
    float d = h2f(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < QK; j++) y[j] = (float)qs[j] * d;
}

/* Q2_K {u8 scales[16] (low nibble scale, high nibble min); u8 qs[64]; f16 d; f16 dmin}:
 * 16 groups of 16, w = d*sc * q - dmin*m with 2-bit q. */
static void dq_q2_k(const uint8_t *b, float *y) {
    const uint8_t *sc = b, *q = b + 16;
    float d = h2f(b + 80), dmin = h2f(b + 82);
    int is = 0;
    for (int n = 0; n < QK_K; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; j++) {
            for (int half = 0; half < 2; half++) {
                uint8_t s = sc[is++];
                float dl = d * (float)(s & 0xF), ml = dmin * (float)(s >> 4);
                for (int l = 0; l < 16; l++) {
                    float p = dl * (float)((q[l + 16 * half] >> shift) & 3);
                    *y++ = p - ml;
                }
            }
            shift += 2;
        }
        q += 32;
    }
}

/* Q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12] (16 packed 6-bit scales, bias 32); f16 d}:
 * w = d*(sc-32) * (q2 - (hbit ? 0 : 4)). */
static void dq_q3_k(const uint8_t *b, float *y) {
    const uint8_t *hm = b, *q = b + 32, *ps = b + 96;
    float d_all = h2f(b + 108);
    /* unpack: scale i (0..15) has low 4 bits from ps[i % 8] (nibble i / 8) and high 2 bits
     * from ps[8 + i % 4] (bit pair i / 4); this equals ggml's kmask shuffle of aux[4]. */
    int8_t scales[16];
    for (int i = 0; i < 16; i++) {
        int lo = (i < 8) ? (ps[i] & 0xF) : (ps[i - 8] >> 4);
        int hi = (ps[8 + (i % 4)] >> (2 * (i / 4))) & 3;
        scales[i] = (int8_t)((lo | (hi << 4)) - 32);
    }
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < QK_K; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; j++) {
            for (int half = 0; half < 2; half++) {
                float dl = d_all * (float)scales[is++];
                for (int l = 0; l < 16; l++) {
                    int k = l + 16 * half;
                    int v = ((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4);
                    *y++ = dl * (float)v;
                }
            }
            shift += 2;
            m = (uint8_t)(m << 1);
        }
        q += 32;
    }
}

/* 6-bit scale and min j (0..7) of the 12-byte Q4_K / Q5_K scales field (get_scale_min_k4). */
static inline void scale_min_k4(int j, const uint8_t *q, int *d, int *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q4_K {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}: 8 groups of 32, w = d*sc * q - dmin*m. */
static void dq_q4_k(const uint8_t *b, float *y) {
    float d = h2f(b), dmin = h2f(b + 2);
    const uint8_t *sc = b + 4, *q = b + 16;
    int is = 0;
    for (int j = 0; j < QK_K; j += 64) {
        int s, mm;
        scale_min_k4(is, sc, &s, &mm);
        float d1 = d * (float)s, m1 = dmin * (float)mm;
        scale_min_k4(is + 1, sc, &s, &mm);
        float d2 = d * (float)s, m2 = dmin * (float)mm;
        for (int l = 0; l < 32; l++) {
            float p = d1 * (float)(q[l] & 0xF);
            *y++ = p - m1;
        }
        for (int l = 0; l < 32; l++) {
            float p = d2 * (float)(q[l] >> 4);
            *y++ = p - m2;
        }
        q += 32;
        is += 2;
    }
}

/* Q5_K {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}: Q4_K plus a 5th bit. */
static void dq_q5_k(const uint8_t *b, float *y) {
    float d = h2f(b), dmin = h2f(b + 2);
    const uint8_t *sc = b + 4, *qh = b + 16, *ql = b + 48;
    int is = 0;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < QK_K; j += 64) {
        int s, mm;
        scale_min_k4(is, sc, &s, &mm);
        float d1 = d * (float)s, m1 = dmin * (float)mm;
        scale_min_k4(is + 1, sc, &s, &mm);
        float d2 = d * (float)s, m2 = dmin * (float)mm;
        for (int l = 0; l < 32; l++) {
            float p = d1 * (float)((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0));
            *y++ = p - m1;
        }
        for (int l = 0; l < 32; l++) {
            float p = d2 * (float)((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0));
            *y++ = p - m2;
        }
        ql += 32;
        is += 2;
        u1 = (uint8_t)(u1 << 2);
        u2 = (uint8_t)(u2 << 2);
    }
}

/* Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: w = (d * sc) * (q6 - 32). */
static void dq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = h2f(b + 208);
    for (int n = 0; n < QK_K; n += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[is] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

int cpt_ggml_dequant(uint32_t type, const void *src, float *dst, uint64_t n, cpt_err *err) {
    if (!cpt_ggml_type_supported(type)) {
        const char *name = cpt_ggml_type_name(type);
        return cpt_err_set(err, CPT_EUNSUPPORTED, "ggml tensor type %s (id %u) cannot be dequantized by cpt",
                           name ? name : "unknown", type);
    }
    uint64_t be = 0, bb = 0;
    cpt_ggml_type_block(type, &be, &bb);
    CPT_ASSERT(n % be == 0);
    const uint8_t *s = src;
    uint64_t nb = n / be;
    void (*fn)(const uint8_t *, float *) = NULL;
    switch (type) {
    case CPT_GGML_F32: memcpy(dst, src, n * 4); return CPT_OK;
    case CPT_GGML_F16:
        for (uint64_t i = 0; i < n; i++) dst[i] = h2f(s + 2 * i);
        return CPT_OK;
    case CPT_GGML_BF16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = cpt_bf16_to_f32(h);
        }
        return CPT_OK;
    case CPT_GGML_Q4_0: fn = dq_q4_0; break;
    case CPT_GGML_Q4_1: fn = dq_q4_1; break;
    case CPT_GGML_Q5_0: fn = dq_q5_0; break;
    case CPT_GGML_Q5_1: fn = dq_q5_1; break;
    case CPT_GGML_Q8_0: fn = dq_q8_0; break;
    case CPT_GGML_Q2_K: fn = dq_q2_k; break;
    case CPT_GGML_Q3_K: fn = dq_q3_k; break;
    case CPT_GGML_Q4_K: fn = dq_q4_k; break;
    case CPT_GGML_Q5_K: fn = dq_q5_k; break;
    case CPT_GGML_Q6_K: fn = dq_q6_k; break;
    default: break;
    }
    #pragma omp parallel for schedule(static) if (nb > 4096)
    for (uint64_t i = 0; i < nb; i++) fn(s + i * bb, dst + i * be);
    return CPT_OK;
}
