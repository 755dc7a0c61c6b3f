/* text.c: UTF-8 decoding, character classes, word splitting and small hash tables for the filters and dedup; no policy. */
#include "text.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#ifdef CPT_HAVE_UTF8PROC
#include <utf8proc.h>
#endif

uint32_t txt_next(const char *s, size_t n, size_t *i) {
    const uint8_t *u = (const uint8_t *)s;
    size_t k = *i;
    uint32_t c = u[k];
    if (c < 0x80) {
        *i = k + 1;
        return c;
    }
    int len = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
    if (len == 0 || k + (size_t)len > n) {
        *i = k + 1;
        return c;
    }
    uint32_t cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
    for (int j = 1; j < len; j++) {
        if ((u[k + j] & 0xC0) != 0x80) {
            *i = k + 1;
            return c;
        }
        cp = (cp << 6) | (u[k + j] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
        *i = k + 1;
        return c;
    }
    *i = k + (size_t)len;
    return cp;
}

/* 1 when code point cp (>= U+0300) is NFC_Quick_Check = Yes with combining class 0: it
 * is its own NFC, composes with nothing before it, and nothing reorders across it. */
static int cp_stable(uint32_t cp) {
#ifdef CPT_HAVE_UTF8PROC
    if ((cp >= 0x1161 && cp <= 0x1175) || (cp >= 0x11A7 && cp <= 0x11C2)) return 0; /* utf8proc composes from TBASE = U+11A7 */
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
    if (p->combining_class != 0) return 0;
    if (p->comb_index != UINT16_MAX && p->comb_index >= 0x8000) return 0; /* may compose with the previous */
    if (p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0) {
        /* A canonical decomposition: fine when it recomposes to cp alone (a primary
         * composite such as U+1F00 or U+30C9), not for singletons and exclusions.
         * Decided by utf8proc itself on a stack buffer: rare, and no allocation. */
        utf8proc_int32_t b[16];
        int bc = 0;
        utf8proc_ssize_t k = utf8proc_decompose_char((utf8proc_int32_t)cp, b, 16,
                                                     (utf8proc_option_t)(UTF8PROC_DECOMPOSE | UTF8PROC_STABLE), &bc);
        if (k <= 0 || k > 16) return 0;
        k = utf8proc_normalize_utf32(b, k, (utf8proc_option_t)(UTF8PROC_COMPOSE | UTF8PROC_STABLE));
        if (k != 1 || b[0] != (utf8proc_int32_t)cp) return 0;
    }
    return 1;
#else
    (void)cp;
    return 0;
#endif
}

/* Offset of the first code point at or after i that is not stable (or invalid), or n;
 * *last gets the start of the last stable code point before it (or `from`). */
static size_t next_unstable(const char *s, size_t n, size_t i, size_t from, size_t *last) {
    const unsigned char *u = (const unsigned char *)s;
    *last = from;
    for (;;) { /* ASCII runs, 8 bytes at a time */
        size_t run = i;
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, u + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        while (i < n && u[i] < 0x80) i++;
        if (i >= n) return n;
        if (i > run) *last = i - 1; /* an ASCII character is stable */
        size_t at = i;
        uint32_t cp = txt_next(s, n, &i);
        if (i == at + 1) return at; /* invalid UTF-8 */
        if (cp >= 0x300 && !cp_stable(cp)) return at;
        *last = at;
    }
}

int txt_nfc_quick(const char *s, size_t n) {
    size_t last;
    return next_unstable(s, n, 0, 0, &last) == n;
}

int txt_nfc(const char *s, size_t n, char **out, size_t *out_n) {
    *out = NULL;
    *out_n = 0;
#ifdef CPT_HAVE_UTF8PROC
    size_t cap = n + n / 8 + 16, w = 0, done = 0, last;
    char *o = malloc(cap);
    if (!o) return -1;
    for (;;) {
        size_t bad = next_unstable(s, n, done, done, &last);
        if (bad == n) break;
        /* The segment [last, end): from the last stable code point before `bad` (it may
         * compose with what follows) to the next stable one; NFC never crosses a stable
         * code point, so NFC(s) is the concatenation of the pieces. */
        size_t end = bad;
        for (;;) {
            size_t j = end;
            if (end >= n) break;
            uint32_t cp = txt_next(s, n, &j);
            if (j == end + 1 && cp >= 0x80) { /* invalid UTF-8 */
                free(o);
                return -2;
            }
            if (end > bad && (cp < 0x300 || cp_stable(cp))) break;
            end = j;
        }
        utf8proc_uint8_t *m = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s + last, (utf8proc_ssize_t)(end - last), &m,
                                          (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
        if (r < 0) {
            free(o);
            return r == UTF8PROC_ERROR_NOMEM ? -1 : -2;
        }
        size_t need = w + (last - done) + (size_t)r + (n - end) + 1;
        if (need > cap) {
            char *no = realloc(o, need + need / 4);
            if (!no) {
                free(m);
                free(o);
                return -1;
            }
            o = no;
            cap = need + need / 4;
        }
        memcpy(o + w, s + done, last - done);
        w += last - done;
        memcpy(o + w, m, (size_t)r);
        w += (size_t)r;
        free(m);
        done = end;
    }
    if (w + (n - done) + 1 > cap) {
        char *no = realloc(o, w + (n - done) + 1);
        if (!no) {
            free(o);
            return -1;
        }
        o = no;
    }
    memcpy(o + w, s + done, n - done);
    w += n - done;
    o[w] = 0;
    *out = o;
    *out_n = w;
    return 0;
#else
    (void)s;
    (void)n;
    return -1;
#endif
}

size_t txt_nchars(const char *s, size_t n) {
    size_t i = 0, c = 0;
    while (i < n) {
        txt_next(s, n, &i);
        c++;
    }
    return c;
}

int txt_is_space(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= '\t' && cp <= '\r');
#ifdef CPT_HAVE_UTF8PROC
    if (cp == 0x85) return 1;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
    return k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP;
#else
    return cp == 0xA0 || cp == 0x85 || cp == 0x2028 || cp == 0x2029 || cp == 0x3000;
#endif
}

int txt_is_punct(uint32_t cp) {
    if (cp < 0x80) return ispunct((int)cp) != 0;
#ifdef CPT_HAVE_UTF8PROC
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
    return (k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO) ||
           (k >= UTF8PROC_CATEGORY_SM && k <= UTF8PROC_CATEGORY_SO);
#else
    return cp == 0x2026 || cp == 0x2022 || (cp >= 0x2010 && cp <= 0x2027);
#endif
}

int txt_is_alpha(uint32_t cp) {
    if (cp < 0x80) return isalpha((int)cp) != 0;
#ifdef CPT_HAVE_UTF8PROC
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
#else
    return cp >= 0xC0 && !txt_is_punct(cp) && !txt_is_space(cp);
#endif
}

size_t txt_words(const char *s, size_t n, txt_span **out) {
    size_t cap = 64, cnt = 0;
    txt_span *w = malloc(cap * sizeof *w);
    if (!w) return (size_t)-1;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        uint32_t cp = txt_next(s, n, &j);
        if (txt_is_space(cp)) {
            i = j;
            continue;
        }
        /* token [a, b): then split into leading punct, core, trailing punct */
        size_t a = i, b = i;
        size_t first_core = (size_t)-1, end_core = 0; /* byte bounds of non-punct chars */
        size_t ch_total = 0;
        while (b < n) {
            size_t k = b;
            uint32_t c = txt_next(s, n, &k);
            if (txt_is_space(c)) break;
            if (!txt_is_punct(c)) {
                if (first_core == (size_t)-1) first_core = b;
                end_core = k;
            }
            b = k;
            ch_total++;
        }
        txt_span parts[3];
        int np = 0;
        if (first_core == (size_t)-1) {
            parts[np++] = (txt_span){a, b - a, ch_total};
        } else {
            if (first_core > a) parts[np++] = (txt_span){a, first_core - a, 0};
            parts[np++] = (txt_span){first_core, end_core - first_core, 0};
            if (end_core < b) parts[np++] = (txt_span){end_core, b - end_core, 0};
            for (int p = 0; p < np; p++) parts[p].nchars = txt_nchars(s + parts[p].off, parts[p].len);
        }
        if (cnt + 3 > cap) {
            txt_span *nw = realloc(w, 2 * cap * sizeof *nw);
            if (!nw) {
                free(w);
                return (size_t)-1;
            }
            w = nw;
            cap *= 2;
        }
        for (int p = 0; p < np; p++) w[cnt++] = parts[p];
        i = b;
    }
    *out = w;
    return cnt;
}

uint64_t txt_fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *u = p;
    for (size_t i = 0; i < n; i++) {
        h ^= u[i];
        h *= 0x100000001b3ull;
    }
    return h;
}


uint64_t txt_hash64(const void *p, size_t n, uint64_t seed) {
    const uint8_t *u = p;
    uint64_t h = cpt_mix64(seed ^ (n * 0x9E3779B97F4A7C15ull));
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, u + i, 8);
        h = cpt_mix64(h ^ w) + 0x9E3779B97F4A7C15ull;
    }
    uint64_t t = 0;
    memcpy(&t, u + i, n - i);
    h = cpt_mix64(h ^ t ^ ((uint64_t)(n - i) << 56));
    return h;
}

int txt_counter_init(txt_counter *c, size_t expect) {
    size_t cap = 16;
    while (cap < 2 * expect + 16) cap *= 2;
    c->key = calloc(cap, sizeof *c->key);
    c->cnt = calloc(cap, sizeof *c->cnt);
    c->cap = cap;
    c->n = 0;
    if (!c->key || !c->cnt) {
        txt_counter_free(c);
        return -1;
    }
    return 0;
}

uint32_t txt_counter_add(txt_counter *c, uint64_t key) {
    if (key == 0) key = 1; /* 0 marks an empty slot */
    if (2 * (c->n + 1) > c->cap) {
        txt_counter big;
        if (txt_counter_init(&big, c->cap) != 0) return 0;
        for (size_t i = 0; i < c->cap; i++)
            if (c->key[i]) {
                size_t j = cpt_mix64(c->key[i]) & (big.cap - 1);
                while (big.key[j]) j = (j + 1) & (big.cap - 1);
                big.key[j] = c->key[i];
                big.cnt[j] = c->cnt[i];
                big.n++;
            }
        txt_counter_free(c);
        *c = big;
    }
    size_t j = cpt_mix64(key) & (c->cap - 1);
    while (c->key[j] && c->key[j] != key) j = (j + 1) & (c->cap - 1);
    if (!c->key[j]) {
        c->key[j] = key;
        c->n++;
    }
    return ++c->cnt[j];
}

uint32_t txt_counter_get(const txt_counter *c, uint64_t key) {
    if (key == 0) key = 1;
    size_t j = cpt_mix64(key) & (c->cap - 1);
    while (c->key[j] && c->key[j] != key) j = (j + 1) & (c->cap - 1);
    return c->key[j] ? c->cnt[j] : 0;
}

void txt_counter_free(txt_counter *c) {
    free(c->key);
    free(c->cnt);
    c->key = NULL;
    c->cnt = NULL;
    c->cap = c->n = 0;
}
