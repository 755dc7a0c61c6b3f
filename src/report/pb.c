/* pb.c: growable byte buffer, hand-written protobuf field encoding and TFRecord
 * framing, number formatting. Not a protobuf library: encode-only, the few wire
 * types tensorflow.Event uses. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpt/metrics.h"
#include "report/report-impl.h"

int cpt_buf_put(cpt_buf *b, const void *data, size_t n) {
    if (b->oom) return CPT_ENOMEM;
    size_t need;
    if (!cpt_add_size(b->n, n, &need)) return (b->oom = 1), CPT_ENOMEM;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need) {
            if (!cpt_mul_size(cap, 2, &cap)) return (b->oom = 1), CPT_ENOMEM;
        }
        uint8_t *q = realloc(b->p, cap);
        if (!q) return (b->oom = 1), CPT_ENOMEM;
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n = need;
    return CPT_OK;
}

int cpt_buf_printf(cpt_buf *b, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (k < 0) return CPT_EINVAL;
    if ((size_t)k < sizeof small) return cpt_buf_put(b, small, (size_t)k);
    char *big = malloc((size_t)k + 1);
    if (!big) return (b->oom = 1), CPT_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)k + 1, fmt, ap);
    va_end(ap);
    int rc = cpt_buf_put(b, big, (size_t)k);
    free(big);
    return rc;
}

void cpt_buf_free(cpt_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

size_t cpt_pb_varint(uint8_t *out, uint64_t v) {
    size_t k = 0;
    while (v >= 0x80) {
        out[k++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[k++] = (uint8_t)v;
    return k;
}

static int put_key(cpt_buf *b, unsigned field, unsigned wire) {
    uint8_t tmp[10];
    return cpt_buf_put(b, tmp, cpt_pb_varint(tmp, ((uint64_t)field << 3) | wire));
}

static void le_bytes(uint8_t *out, uint64_t v, int n) {
    for (int i = 0; i < n; i++) out[i] = (uint8_t)(v >> (8 * i));
}

/* int64 fields are varints of the two's-complement value (negative = 10 bytes). */
int cpt_pb_put_varint_field(cpt_buf *b, unsigned field, uint64_t v) {
    uint8_t tmp[10];
    put_key(b, field, 0);
    return cpt_buf_put(b, tmp, cpt_pb_varint(tmp, v));
}

int cpt_pb_put_double_field(cpt_buf *b, unsigned field, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    uint8_t tmp[8];
    le_bytes(tmp, u, 8);
    put_key(b, field, 1);
    return cpt_buf_put(b, tmp, 8);
}

int cpt_pb_put_float_field(cpt_buf *b, unsigned field, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    uint8_t tmp[4];
    le_bytes(tmp, u, 4);
    put_key(b, field, 5);
    return cpt_buf_put(b, tmp, 4);
}

int cpt_pb_put_bytes_field(cpt_buf *b, unsigned field, const void *p, size_t n) {
    uint8_t tmp[10];
    put_key(b, field, 2);
    cpt_buf_put(b, tmp, cpt_pb_varint(tmp, (uint64_t)n));
    return cpt_buf_put(b, p, n);
}

int cpt_tfrecord_frame(cpt_buf *out, const void *data, size_t n) {
    uint8_t len[8], c1[4], c2[4];
    le_bytes(len, (uint64_t)n, 8);
    le_bytes(c1, cpt_crc32c_masked(len, 8), 4);
    le_bytes(c2, cpt_crc32c_masked(data, n), 4);
    cpt_buf_put(out, len, 8);
    cpt_buf_put(out, c1, 4);
    cpt_buf_put(out, data, n);
    return cpt_buf_put(out, c2, 4);
}

void cpt_fmt_double(char *out, size_t cap, double v) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

double cpt_unix_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
