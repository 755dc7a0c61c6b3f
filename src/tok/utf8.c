/* utf8.c: UTF-8 decoding, Python-compatible invalid-byte replacement, Unicode
 * whitespace. Not a general Unicode library (normalization lives in normalize.c). */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_impl.h"

int tok_utf8_next(const char *s, size_t len, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    int n = tok_utf8_len(u[0]);
    if ((size_t)n > len) n = (int)len; /* never read past the end, even on bad input */
    uint32_t c;
    switch (n) {
    case 1: c = u[0]; break;
    case 2: c = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F); break;
    case 3: c = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F); break;
    default:
        c = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
            ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
        break;
    }
    *cp = c;
    return n;
}

int tok_utf8_put(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Unicode White_Space, which is what Rust's char::is_whitespace tests. */
int tok_is_ws(uint32_t c) {
    if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
    if (c < 0x85) return 0;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Length of the valid sequence at u[0..n), or 0 if invalid; *bad_prefix receives the
 * number of bytes forming a truncated-but-valid prefix (the "maximal subpart" that
 * Python replaces by a single U+FFFD). Ranges from the Unicode Standard, Table 3-7. */
static size_t utf8_valid_len(const unsigned char *u, size_t n, size_t *bad_prefix) {
    unsigned char c = u[0];
    if (c < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *bad_prefix = 1;
        return 0;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= n) break;
        unsigned char b = u[i];
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) break;
    }
    if (i == need + 1) return i;
    *bad_prefix = i;
    return 0;
}

long tok_utf8_sanitize_into(const char *in, size_t len, tok_buf *out);

long tok_utf8_sanitize_into(const char *in, size_t len, tok_buf *out) {
    const unsigned char *u = (const unsigned char *)in;
    long repl = 0;
    out->n = 0;
    /* Worst case: every byte becomes 3 bytes of U+FFFD. Grow lazily instead. */
    if (tok_buf_reserve(out, len + 1)) return CPT_ENOMEM;
    size_t i = 0;
    while (i < len) {
        /* Fast path over ASCII runs. */
        size_t j = i;
        while (j < len && u[j] < 0x80) j++;
        if (j > i) {
            if (tok_buf_put(out, in + i, j - i)) return CPT_ENOMEM;
            i = j;
            if (i >= len) break;
        }
        size_t bad = 0, v = utf8_valid_len(u + i, len - i, &bad);
        if (v) {
            if (tok_buf_put(out, in + i, v)) return CPT_ENOMEM;
            i += v;
        } else {
            if (tok_buf_put(out, "\xEF\xBF\xBD", 3)) return CPT_ENOMEM;
            repl++;
            i += bad;
        }
    }
    if (tok_buf_reserve(out, 1)) return CPT_ENOMEM;
    out->p[out->n] = '\0';
    return repl;
}

long cpt_tok_utf8_sanitize(const char *in, size_t len, char **out, size_t *out_len) {
    tok_buf b = {0};
    long r = tok_utf8_sanitize_into(in, len, &b);
    if (r < 0) {
        tok_buf_free(&b);
        *out = NULL;
        *out_len = 0;
        return r;
    }
    *out = b.p;
    *out_len = b.n;
    return r;
}
