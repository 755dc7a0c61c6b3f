/* half.c: dtype names/sizes and exact fp32 <-> bf16/f16 conversions; no file I/O here. */
#include <string.h>

#include "cpt/safetensors.h"

static const struct {
    const char *name;
    size_t size;
} dtype_table[CPT_DT_COUNT] = {
    [CPT_DT_F32] = {"F32", 4}, [CPT_DT_F16] = {"F16", 2}, [CPT_DT_BF16] = {"BF16", 2},
    [CPT_DT_F64] = {"F64", 8}, [CPT_DT_I64] = {"I64", 8}, [CPT_DT_I32] = {"I32", 4},
    [CPT_DT_I16] = {"I16", 2}, [CPT_DT_I8] = {"I8", 1},   [CPT_DT_U8] = {"U8", 1},
    [CPT_DT_BOOL] = {"BOOL", 1},
};

int cpt_dtype_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < CPT_DT_COUNT; i++)
        if (strcmp(name, dtype_table[i].name) == 0) return i;
    return -1;
}

const char *cpt_dtype_name(cpt_dtype dt) {
    CPT_ASSERT((int)dt >= 0 && dt < CPT_DT_COUNT);
    return dtype_table[dt].name;
}

size_t cpt_dtype_size(cpt_dtype dt) {
    CPT_ASSERT((int)dt >= 0 && dt < CPT_DT_COUNT);
    return dtype_table[dt].size;
}

static inline uint32_t f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static inline float bits_f32(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* bf16 is the top half of an fp32. Rounding to nearest even: add 0x7fff plus the
 * lowest kept bit, then truncate; a carry out of the mantissa correctly bumps the
 * exponent (and turns the largest finite values into inf). NaNs are truncated with
 * the quiet bit forced so a payload living only in the low bits cannot become inf. */
uint16_t cpt_f32_to_bf16(float x) {
    uint32_t u = f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float cpt_bf16_to_f32(uint16_t x) { return bits_f32((uint32_t)x << 16); }

/* IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Thresholds on the
 * fp32 magnitude bits a = |x|:
 *   a >= 0x477ff000 (65520, halfway between 65504 and 65536; ties go to the even
 *                    neighbour 65536 which is out of range) -> inf
 *   a >= 0x38800000 (2^-14, smallest normal half)            -> normal, rebias 127->15
 *   a <= 0x33000000 (2^-25, half of the smallest subnormal 2^-24; tie -> even 0) -> 0
 *   otherwise                                                -> subnormal, units of 2^-24 */
uint16_t cpt_f32_to_f16(float x) {
    uint32_t u = f32_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: quiet it, keep the top payload bits */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    uint32_t h, rem, half;
    if (a >= 0x38800000u) {
        uint32_t r = a - (112u << 23); /* exponent bias 127 -> 15 */
        h = r >> 13;
        rem = r & 0x1fffu;
        half = 0x1000u;
    } else if (a <= 0x33000000u) {
        return sign;
    } else {
        /* value = m * 2^(e-150); in units of 2^-24 that is m >> (126 - e), 14..24 bits. */
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e;
        h = m >> shift;
        rem = m & ((1u << shift) - 1u);
        half = 1u << (shift - 1u);
    }
    if (rem > half || (rem == half && (h & 1u))) h++; /* may carry into the exponent: fine */
    return (uint16_t)(sign | h);
}

float cpt_f16_to_f32(uint16_t x) {
    uint32_t sign = (uint32_t)(x & 0x8000u) << 16;
    uint32_t e = (x >> 10) & 0x1fu, m = x & 0x3ffu;
    if (e == 0) {
        /* zero or subnormal: m * 2^-24 is exact in fp32 */
        float v = (float)m * 0x1p-24f;
        return bits_f32(f32_bits(v) | sign);
    }
    if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13));
    return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}
