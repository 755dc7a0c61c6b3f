/* text.h: private UTF-8, character class, word split and hashing helpers shared by filter.c and dedup.c; not a public API. */
#ifndef CPT_DATA_TEXT_H
#define CPT_DATA_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "cpt/common.h" /* cpt_mix64 */

/* Decode the code point at s[*i] (advancing *i); an invalid byte decodes as itself
 * (0x80..0xFF) and advances by one, so every input is consumed. */
uint32_t txt_next(const char *s, size_t n, size_t *i);
size_t txt_nchars(const char *s, size_t n);
int txt_is_space(uint32_t cp);
int txt_is_punct(uint32_t cp); /* Unicode P* or S* (ASCII ispunct without utf8proc) */
int txt_is_alpha(uint32_t cp); /* Unicode L* (ASCII isalpha without utf8proc) */

/* 1 when s (valid UTF-8) is certainly already in NFC, so NFC(s) == s and normalising can
 * be skipped: every code point is below U+0300, or has combining class 0, cannot be the
 * second of a canonical composition (nor a Hangul V/T jamo) and either has no canonical
 * decomposition or recomposes to itself: Unicode's NFC_Quick_Check = Yes with ccc 0 (UAX
 * #15 quick check). Invalid UTF-8 answers 0. 0 means "maybe not": callers normalise.
 * Without utf8proc only pure ASCII answers 1. */
int txt_nfc_quick(const char *s, size_t n);
/* NFC of s (UTF8PROC_COMPOSE | UTF8PROC_STABLE, byte for byte utf8proc_map's result),
 * normalising only the pieces around code points that are not stable (see above) and
 * copying the rest: *out malloc'ed and NUL-terminated. 0, -1 out of memory, -2 invalid
 * UTF-8. Needs utf8proc (else -1). */
int txt_nfc(const char *s, size_t n, char **out, size_t *out_n);

typedef struct txt_span {
    size_t off, len;  /* bytes */
    size_t nchars;    /* code points */
} txt_span;

/* Words as defined in filter.h (leading/trailing punctuation runs split off). *out is
 * malloc'ed (free it); returns the count or (size_t)-1 on out of memory. */
size_t txt_words(const char *s, size_t n, txt_span **out);

/* 64-bit FNV-1a, streaming: start with TXT_FNV0. Used for set membership only. */
#define TXT_FNV0 0xcbf29ce484222325ull
uint64_t txt_fnv(uint64_t h, const void *p, size_t n);
/* A 64-bit keyed hash of a byte string (8-byte blocks, multiply-xorshift mixing). */
uint64_t txt_hash64(const void *p, size_t n, uint64_t seed);

/* Open-addressing counter keyed by non-zero 64-bit hashes. */
typedef struct txt_counter {
    uint64_t *key;
    uint32_t *cnt;
    size_t cap, n;
} txt_counter;
int txt_counter_init(txt_counter *c, size_t expect);
/* Add one occurrence; returns the new count (0 on out of memory). */
uint32_t txt_counter_add(txt_counter *c, uint64_t key);
uint32_t txt_counter_get(const txt_counter *c, uint64_t key);
void txt_counter_free(txt_counter *c);

#endif
