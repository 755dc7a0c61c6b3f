/* test_nfc_quick.c: txt_nfc_quick (the "already NFC" fast path of prepare and exact dedup) against full utf8proc NFC. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/text.h"
#include "testutil.h"

#ifdef CPT_HAVE_UTF8PROC
#include <utf8proc.h>

static size_t put(char *b, uint32_t cp) { return (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)b); }

/* NFC(s) == s by the full algorithm (the oracle). */
/* txt_nfc(s) is byte for byte the full algorithm's NFC (the oracle). */
static int same_nfc(const char *s, size_t n) {
    utf8proc_uint8_t *o = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &o,
                                      (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    char *t = NULL;
    size_t tn = 0;
    int rc = txt_nfc(s, n, &t, &tn);
    int ok = r < 0 ? rc == -2 : rc == 0 && tn == (size_t)r && !memcmp(t, o, tn) && t[tn] == 0;
    free(o);
    free(t);
    return ok;
}

static int is_nfc(const char *s, size_t n) {
    utf8proc_uint8_t *o = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &o,
                                      (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    int eq = r >= 0 && (size_t)r == n && !memcmp(o, s, n);
    free(o);
    return eq;
}
#endif

int main(void) {
#ifndef CPT_HAVE_UTF8PROC
    TEST_SKIP("built without utf8proc");
#else
    /* Hand-picked answers: yes for ASCII, Latin-1, primary composites (U+1F00, U+30C9),
     * Hangul syllables, CJK; no for decomposed marks, singletons, exclusions, jamo V/T,
     * out-of-order marks and invalid UTF-8 (which the normaliser must see). */
    static const struct { const char *s; int want; } hand[] = {
        {"plain ASCII text.\n", 1},    {"caf\xc3\xa9", 1},          {"\xe1\xbc\x80", 1} /* U+1F00 */,
        {"\xe3\x83\x89", 1} /* U+30C9 */, {"\xea\xb0\x80", 1} /* U+AC00 */, {"\xe4\xb8\xad\xe6\x96\x87", 1},
        {"cafe\xcc\x81", 0} /* e + U+0301 */, {"\xe2\x84\xa6", 0} /* U+2126 Ohm, singleton */,
        {"\xe0\xa5\x98", 0} /* U+0958, excluded */, {"\xe1\x84\x80\xe1\x85\xa1", 0} /* L + V jamo */,
        {"\xf8\x88\x80\x80\x80", 0},   {"\xc0\x80", 0},              {"\xed\xa0\x80", 0} /* surrogate */,
        {"a\xcc\xa3\xcc\x81", 0},
    };
    for (size_t i = 0; i < sizeof hand / sizeof hand[0]; i++)
        CHECKF(txt_nfc_quick(hand[i].s, strlen(hand[i].s)) == hand[i].want, "hand case %zu", i);
    CHECK(txt_nfc_quick("", 0) == 1);

    /* Every code point c, alone between ASCII and after starters that take part in
     * compositions: whenever the fast path says "already NFC", the full algorithm agrees.
     * And the fast path must say yes for most of Unicode, or it is not a fast path. */
    static const uint32_t before[] = {'a', 'e', 0x1100 /* L jamo */, 0xAC00 /* LV */, 0x0B47, 0x0DD9, 0x3046};
    size_t yes = 0, bad = 0;
    char b[32];
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp < 0xE000) continue;
        size_t n = 0;
        b[n++] = 'x';
        n += put(b + n, cp);
        b[n++] = 'y';
        if (!same_nfc(b, n) && bad++ < 5) CHECKF(0, "txt_nfc differs for x U+%04X y", cp);
        if (!txt_nfc_quick(b, n)) continue;
        yes++;
        if (!is_nfc(b, n)) {
            if (bad++ < 5) CHECKF(0, "U+%04X: quick says NFC, utf8proc disagrees", cp);
            continue;
        }
        for (size_t k = 0; k < sizeof before / sizeof before[0]; k++) {
            size_t m = put(b, before[k]);
            m += put(b + m, cp);
            if (txt_nfc_quick(b, m) && !is_nfc(b, m) && bad++ < 5) CHECKF(0, "U+%04X after U+%04X", cp, before[k]);
        }
    }
    /* Random strings from a pool of troublesome pieces: combining marks in and out of
     * order, decomposed and precomposed letters, jamo, singletons, exclusions, ASCII,
     * invalid bytes. txt_nfc must equal whole-string NFC. */
    static const char *const pool[] = {"a", "e", " ", "\xcc\x81", "\xcc\x80", "\xcc\xa3", "\xcd\x85", "\xc3\xa9",
                                       "\xe1\xbc\x80", "\xe1\x84\x80", "\xe1\x85\xa1", "\xe1\x86\xa8",
                                       "\xe1\x86\xa7", "\xea\xb0\x80", "\xe2\x84\xa6", "\xe0\xa5\x98",
                                       "\xe3\x81\x8b", "\xe3\x82\x99", "\xe0\xad\x87", "\xe0\xac\xbe",
                                       "\xe0\xa5\x8d", "\xd0\xb8", "\xd9\x8b", "\xf0\x9f\x98\x80", "\n", "\xff"};
    uint64_t rng = 88172645463325252ull;
    size_t diff = 0, quick_yes = 0;
    for (int t = 0; t < 20000; t++) {
        char s[256];
        size_t n = 0;
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int len = (int)(rng % 24);
        for (int k = 0; k < len; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t npool = sizeof pool / sizeof pool[0] - (t % 4 == 0 ? 0 : 1); /* invalid bytes in 1 of 4 */
            const char *p = pool[rng % npool];
            memcpy(s + n, p, strlen(p));
            n += strlen(p);
        }
        if (!same_nfc(s, n) && diff++ < 5) CHECKF(0, "random string %d: txt_nfc differs", t);
        if (txt_nfc_quick(s, n)) {
            quick_yes++;
            if (!is_nfc(s, n) && diff++ < 5) CHECKF(0, "random string %d: quick says NFC wrongly", t);
        }
    }
    CHECKF(diff == 0, "%zu random-string disagreements", diff);
    CHECKF(quick_yes > 100, "quick path never taken on random strings (%zu)", quick_yes);
    CHECKF(bad == 0, "%zu disagreements", bad);
    CHECKF(yes > 200000, "fast path covers only %zu code points", yes);
    TEST_END();
#endif
}
