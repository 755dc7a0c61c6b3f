/* cpt/dedup.h: exact dedup, MinHash + LSH near-dedup and n-gram decontamination.
 *
 * Exact (methods.md §11.1): the text is NFC-normalised (utf8proc, a required dependency)
 * and stripped of leading/trailing whitespace, then hashed to 128 bits (two independent
 * 64-bit hashes); the first document with a given key is kept.
 *
 * Near (methods.md §11.2), datatrove's defaults:
 *  - simplify: case-fold, remove combining marks (NFD, strip, recompose), every
 *    punctuation or symbol character (Unicode P*, S*) becomes a space, whitespace runs
 *    collapse to one space, trimmed;
 *  - shingles: word n-grams (n = 5) of the simplified text joined by single spaces; a text
 *    with 1..n-1 words has one shingle (all its words); an empty text has none and never
 *    matches anything;
 *  - x = low 32 bits of a 64-bit hash of the shingle (datatrove uses sha1's first 4
 *    bytes; any good 32-bit hash gives the same collision statistics);
 *  - bands * rows permutations h_i(x) = ((a_i x + b_i) mod (2^61 - 1)) & (2^32 - 1), a_i in
 *    [1, p), b_i in [0, p) from splitmix64(seed); signature_i = min over shingles;
 *  - LSH: documents sharing all `rows` values of any band are candidates; union-find over
 *    candidates; the survivor of a cluster is its earliest document in insertion order.
 *    P(candidate | Jaccard s) = 1 - (1 - s^rows)^bands: 14 x 8 gives 0.053 at 0.5, 0.924
 *    at 0.8, 0.9996 at 0.9. Memory: ~8 * (bands + 2) bytes per document.
 *
 * Decontamination: word n-grams (n = 13) of simplified evaluation texts go into a set; a
 * document that shares any 13-gram with it is contaminated. A text shorter than n words
 * contributes (and is checked by) its whole simplified text as one n-gram.
 */
#ifndef CPT_DEDUP_H
#define CPT_DEDUP_H

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The simplification above into a malloc'ed NUL-terminated string. Invalid UTF-8 is
 * CPT_EFORMAT (with utf8proc). */
int cpt_dedup_simplify(const char *text, size_t n, char **out, size_t *out_n, cpt_err *err);

/* ---- exact ---- */
typedef struct cpt_dedup_exact cpt_dedup_exact;
int cpt_dedup_exact_open(cpt_dedup_exact **out, cpt_err *err);
void cpt_dedup_exact_close(cpt_dedup_exact *d);
/* The 128-bit key of a text (NFC + strip). CPT_EFORMAT on invalid UTF-8. */
int cpt_dedup_exact_key(const char *text, size_t n, uint64_t key[2], cpt_err *err);
/* Insert; *is_dup = 1 if an equal key was inserted before (the set is then unchanged). */
int cpt_dedup_exact_add(cpt_dedup_exact *d, const char *text, size_t n, int *is_dup, cpt_err *err);
uint64_t cpt_dedup_exact_count(const cpt_dedup_exact *d); /* distinct keys */

/* ---- MinHash ---- */
typedef struct cpt_minhash_cfg {
    uint32_t ngram; /* words per shingle, default 5 */
    uint32_t bands; /* default 14 */
    uint32_t rows;  /* default 8 */
    uint64_t seed;  /* default 1 */
} cpt_minhash_cfg;
void cpt_minhash_cfg_default(cpt_minhash_cfg *c);

typedef struct cpt_minhash cpt_minhash;
int cpt_minhash_open(cpt_minhash **out, const cpt_minhash_cfg *cfg, cpt_err *err);
void cpt_minhash_close(cpt_minhash *m);
size_t cpt_minhash_len(const cpt_minhash *m); /* bands * rows */
/* sig[bands * rows]; *n_shingles gets the number of shingles (word n-gram positions);
 * 0 means an empty text: sig is all 0xFFFFFFFF and must not be indexed. */
int cpt_minhash_signature(const cpt_minhash *m, const char *text, size_t n, uint32_t *sig,
                          size_t *n_shingles, cpt_err *err);

/* ---- LSH + union-find ---- */
typedef struct cpt_lsh cpt_lsh;
int cpt_lsh_open(cpt_lsh **out, uint32_t bands, uint32_t rows, cpt_err *err);
void cpt_lsh_close(cpt_lsh *l);
/* Add the next document (ids are 0, 1, 2, ... in call order). index = 0 records the
 * document without bucketing it (empty texts). */
int cpt_lsh_add(cpt_lsh *l, const uint32_t *sig, int index, uint64_t *id, cpt_err *err);
uint64_t cpt_lsh_n_docs(const cpt_lsh *l);
/* The earliest document of id's cluster (id itself if it is a survivor). Valid at any
 * time; final once every document has been added. */
uint64_t cpt_lsh_survivor(cpt_lsh *l, uint64_t id);

/* ---- decontamination ---- */
typedef struct cpt_decon cpt_decon;
int cpt_decon_open(cpt_decon **out, uint32_t ngram, cpt_err *err); /* ngram: 13 */
void cpt_decon_close(cpt_decon *d);
int cpt_decon_add_text(cpt_decon *d, const char *text, size_t n, cpt_err *err);
/* Every line of a text file (or the "text" field of each line of a .jsonl file) is one
 * evaluation text. */
int cpt_decon_add_file(cpt_decon *d, const char *path, cpt_err *err);
uint64_t cpt_decon_count(const cpt_decon *d); /* distinct n-grams held */
/* *hit = 1 if text shares an n-gram with the evaluation set. */
int cpt_decon_check(const cpt_decon *d, const char *text, size_t n, int *hit, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif
