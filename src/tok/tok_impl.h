/* tok_impl.h: private types of the tokenizer module (not part of the public API).
 *
 * The encode pipeline mirrors HF `tokenizers` stage by stage so each stage can be
 * checked against it: UTF-8 sanitize -> split on non-normalized added tokens ->
 * normalize each text segment -> split on normalized added tokens -> pre-tokenize ->
 * BPE per pre-token -> post-process template. Every stage works on a tok_list (one
 * byte arena + spans), reused across calls through a per-thread tok_work.
 */
#ifndef CPT_TOK_IMPL_H
#define CPT_TOK_IMPL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cpt/common.h"
#include "cpt/tokenizer.h"

#ifdef CPT_HAVE_PCRE2
#include <pcre2.h>
#endif

/* ---- growable buffers ------------------------------------------------------ */
typedef struct tok_buf {
    char *p;
    size_t n, cap;
} tok_buf;

int tok_buf_reserve(tok_buf *b, size_t extra);
int tok_buf_put(tok_buf *b, const void *p, size_t n);
void tok_buf_free(tok_buf *b);

/* A list of strings: spans into one arena. id >= 0 marks an already-tokenized
 * added token (its text is kept for offsets-free debugging only). at_start marks a
 * piece that begins at offset 0 of the original text (Metaspace prepend "first"). */
typedef struct tok_span {
    size_t off, len;
    int32_t id;
    uint8_t at_start;
} tok_span;

typedef struct tok_list {
    tok_buf text;
    tok_span *v;
    size_t n, cap;
} tok_list;

int tok_list_push(tok_list *l, const char *s, size_t len, int32_t id, int at_start);
/* Push a span that already lies in l->text (off, len). */
int tok_list_push_span(tok_list *l, size_t off, size_t len, int32_t id, int at_start);
void tok_list_clear(tok_list *l);
void tok_list_free(tok_list *l);

typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
} tok_ids;
int tok_ids_push(tok_ids *a, int32_t id);

/* ---- UTF-8 ----------------------------------------------------------------- */
/* Decode one code point from valid UTF-8; returns its byte length. */
int tok_utf8_next(const char *s, size_t len, uint32_t *cp);
/* Byte length of the UTF-8 sequence starting with byte c (valid input assumed). */
static inline int tok_utf8_len(unsigned char c) {
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}
int tok_utf8_put(uint32_t cp, char out[4]);
/* Rust char::is_whitespace (Unicode White_Space). */
int tok_is_ws(uint32_t cp);

/* ---- hash maps ------------------------------------------------------------- */
/* String -> int32 map; keys are copied into its own arena. */
typedef struct tok_sment {
    size_t off;
    uint32_t len;
    int32_t val;
    uint64_t hash;
} tok_sment;
typedef struct tok_smap {
    uint32_t *slots; /* entry index + 1, 0 = empty */
    size_t cap;      /* power of two */
    tok_sment *e;
    size_t n, ecap;
    tok_buf keys;
} tok_smap;

uint64_t tok_hash(const void *p, size_t n);
/* Insert or overwrite. Returns 0, or CPT_ENOMEM. */
int tok_smap_put(tok_smap *m, const char *k, size_t len, int32_t val);
/* Value or -1. */
int32_t tok_smap_get(const tok_smap *m, const char *k, size_t len);
void tok_smap_free(tok_smap *m);

/* (a, b) -> (rank, new_id) map for BPE merges. */
typedef struct tok_pmap {
    uint64_t *keys; /* UINT64_MAX = empty */
    uint32_t *rank;
    int32_t *new_id;
    size_t cap, n;
} tok_pmap;

int tok_pmap_put(tok_pmap *m, uint32_t a, uint32_t b, uint32_t rank, int32_t new_id);
/* tok_pmap_get: 1 (rank and new id filled in) if the pair is a merge, else 0. */
static inline uint64_t tok_pmap_mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}
static inline int tok_pmap_get(const tok_pmap *m, uint32_t a, uint32_t b, uint32_t *rank,
                               int32_t *new_id) {
    if (!m->cap) return 0;
    uint64_t k = ((uint64_t)a << 32) | b;
    size_t mask = m->cap - 1, i = (size_t)tok_pmap_mix(k) & mask;
    for (;;) {
        if (m->keys[i] == k) {
            *rank = m->rank[i];
            *new_id = m->new_id[i];
            return 1;
        }
        if (m->keys[i] == UINT64_MAX) return 0;
        i = (i + 1) & mask;
    }
}
void tok_pmap_free(tok_pmap *m);

/* ---- regex ----------------------------------------------------------------- */
typedef struct tok_regex tok_regex;
struct tok_work;
/* Compile an Oniguruma-style HF pattern with PCRE2 (UTF, UCP, JIT). */
int tok_regex_compile(tok_regex **out, const char *pat, size_t len, const char *file,
                      const char *field, cpt_err *err);
void tok_regex_free(tok_regex *r);
/* Find the next match at or after `start`. Returns 1 (match in [*ms, *me)), 0 (none)
 * or a negative status (match limit hit). */
int tok_regex_find(const tok_regex *r, struct tok_work *w, const char *s, size_t len,
                   size_t start, size_t *ms, size_t *me, cpt_err *err);

/* A split pattern: a regex or a literal string. */
typedef struct tok_pattern {
    tok_regex *re; /* NULL -> literal */
    char *lit;
    size_t lit_len;
} tok_pattern;

enum { TOK_SPLIT_REMOVED, TOK_SPLIT_ISOLATED, TOK_SPLIT_MERGED_PREV, TOK_SPLIT_MERGED_NEXT,
       TOK_SPLIT_CONTIGUOUS };

/* Split s[0..len) by `pat` with HF SplitDelimiterBehavior semantics; appends the
 * non-empty pieces to out (copying bytes). */
int tok_split(const tok_pattern *pat, int behavior, int invert, struct tok_work *w,
              const char *s, size_t len, int at_start, tok_list *out, cpt_err *err);

/* ---- normalizers ----------------------------------------------------------- */
enum { TN_NFC, TN_NFD, TN_NFKC, TN_NFKD, TN_LOWERCASE, TN_STRIP, TN_PREPEND, TN_REPLACE,
       TN_SEQUENCE };
typedef struct tok_norm {
    int kind;
    int left, right;      /* Strip */
    char *content;        /* Prepend / Replace */
    size_t content_len;
    tok_pattern pat;      /* Replace */
    struct tok_norm *kids; /* Sequence */
    size_t n_kids;
} tok_norm;

/* Normalize s into out (out is cleared first). */
int tok_norm_apply(const tok_norm *n, struct tok_work *w, const char *s, size_t len,
                   tok_buf *out, cpt_err *err);
void tok_norm_free(tok_norm *n);

/* ---- pre-tokenizers -------------------------------------------------------- */
enum { TP_BYTELEVEL, TP_SPLIT, TP_METASPACE, TP_SEQUENCE };
enum { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER };
typedef struct tok_pretok {
    int kind;
    int add_prefix_space, use_regex; /* ByteLevel */
    tok_pattern pat;                 /* Split, ByteLevel regex */
    int behavior, invert;            /* Split */
    char repl[8];                    /* Metaspace replacement (UTF-8) */
    size_t repl_len;
    int prepend_scheme, split;       /* Metaspace */
    struct tok_pretok *kids;
    size_t n_kids;
} tok_pretok;

/* Apply to every piece of `in` (pieces with id >= 0 are passed through). */
int tok_pretok_apply(const tok_pretok *p, struct tok_work *w, tok_list *in, tok_list *out,
                     cpt_err *err);
void tok_pretok_free(tok_pretok *p);

/* Code point -> byte, or -1 if cp is not in the byte-level alphabet. */
int tok_cp_to_byte(uint32_t cp);

/* ---- decoders -------------------------------------------------------------- */
enum { TD_BYTELEVEL, TD_REPLACE, TD_BYTEFALLBACK, TD_FUSE, TD_STRIP, TD_METASPACE,
       TD_SEQUENCE };
typedef struct tok_dec {
    int kind;
    char *pat, *content; /* Replace (literal pattern) */
    size_t pat_len, content_len;
    uint32_t strip_char;
    size_t start, stop; /* Strip */
    char repl[8];
    size_t repl_len;
    int prepend_scheme;
    struct tok_dec *kids;
    size_t n_kids;
} tok_dec;
void tok_dec_free(tok_dec *d);

/* ---- added tokens ---------------------------------------------------------- */
typedef struct tok_added {
    char *content; /* as in the file */
    size_t len;
    char *match;   /* what is matched: content, normalized if `normalized` */
    size_t match_len;
    int32_t id;
    uint8_t special, lstrip, rstrip, single_word, normalized;
} tok_added;

/* Split every text piece of `in` on the added tokens whose normalized flag equals
 * `normalized` (leftmost-longest, lstrip/rstrip/single_word as HF). */
int tok_added_split(const cpt_tok *t, int normalized, struct tok_work *w, tok_list *in,
                    tok_list *out, cpt_err *err);

/* ---- BPE ------------------------------------------------------------------- */
typedef struct tok_bpe {
    tok_smap vocab;      /* model vocabulary */
    tok_pmap merges;
    int32_t unk_id;      /* -1 if none */
    int fuse_unk, byte_fallback, ignore_merges;
    char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix (NULL if none) */
    size_t prefix_len, suffix_len;
    int32_t byte_ids[256]; /* <0xNN> ids for byte_fallback, -1 if absent */
} tok_bpe;

/* Tokenize one pre-token (valid UTF-8), appending ids. */
int tok_bpe_encode(const tok_bpe *m, struct tok_work *w, const char *s, size_t len,
                   tok_ids *out, cpt_err *err);

/* ---- SentencePiece model (.model files) ------------------------------------- */
/* Piece types of sentencepiece_model.proto (ModelProto.SentencePiece.Type). */
enum { SPM_NORMAL = 1, SPM_UNKNOWN = 2, SPM_CONTROL = 3, SPM_USER_DEFINED = 4, SPM_UNUSED = 5,
       SPM_BYTE = 6 };
typedef struct tok_spm {
    int32_t n;            /* pieces; piece strings live in cpt_tok.pieces / bpe.vocab */
    float *score;         /* [n] */
    uint8_t *type;        /* [n] SPM_* */
    int32_t unk_id;       /* the one UNKNOWN piece */
    int byte_fallback, add_dummy_prefix, remove_extra_ws, escape_ws;
    int split_words;      /* 1: no mergeable piece spans "x|U+2581", so words encode alone */
    int32_t byte_ids[256];
    /* user-defined symbols for longest-prefix matching: ids sorted by first byte,
     * longest first; user_first[b]..user_first[b+1] is byte b's range. */
    int32_t *user;
    uint32_t user_first[257];
    /* precompiled charsmap (nmt_nfkc and friends): Darts double-array units and the
     * NUL-separated replacement strings; trie == NULL for "identity". */
    uint32_t *trie;
    size_t trie_n;
    char *repl;
    size_t repl_n;
    char *unk_surface;    /* decode text of the unk piece (trainer_spec.unk_surface) */
    size_t unk_surface_len;
} tok_spm;

/* Darts-clone double-array unit fields (the charsmap trie). */
static inline uint32_t tok_du_offset(uint32_t u) { return (u >> 10) << ((u & (1U << 9)) >> 6); }
static inline uint32_t tok_du_label(uint32_t u) { return u & ((1U << 31) | 0xFF); }
static inline int tok_du_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static inline uint32_t tok_du_value(uint32_t u) { return u & ((1U << 31) - 1); }

int tok_load_spm(cpt_tok *t, const char *file, cpt_err *err);
void tok_spm_free(tok_spm *m);
/* Normalize (sanitized, valid UTF-8) text as SentencePiece's Normalizer does, then
 * BPE-encode it, appending ids. */
int tok_spm_encode(const cpt_tok *t, struct tok_work *w, const char *s, size_t len, tok_ids *out,
                   cpt_err *err);
int tok_spm_decode(const cpt_tok *t, const int32_t *ids, size_t n, int skip_special, tok_buf *out);

/* ---- pre-token cache (shared by both BPE flavours) --------------------------- */
/* 1 and the cached ids appended to out if s is cached; 0 if not; CPT_ENOMEM. */
int tok_cache_get(struct tok_work *w, const char *s, size_t len, tok_ids *out);
/* Remember ids[0..n) for s (no-op for words too long to cache). */
int tok_cache_put(struct tok_work *w, const char *s, size_t len, const int32_t *ids, size_t n);

/* ---- per-thread scratch ---------------------------------------------------- */
typedef struct tok_ssym { /* a SentencePiece BPE symbol: a span of the normalized text */
    uint32_t off, len;    /* len 0 = merged away */
    int32_t prev, next;
    uint8_t freeze;       /* user-defined symbol: never merged */
} tok_ssym;
typedef struct tok_sheap { /* a candidate merge: highest score first, then leftmost */
    float score;
    int32_t left, right;
    uint32_t size;
} tok_sheap;

typedef struct tok_sym {
    int32_t id;
    int32_t prev, next;
    uint32_t len; /* 0 = merged away */
} tok_sym;

typedef struct tok_heap_ent {
    uint32_t rank, pos;
    int32_t new_id;
} tok_heap_ent;

/* Pre-token cache: string -> run of ids, bounded; cleared when full. */
typedef struct tok_cache {
    tok_smap map; /* value = index into runs */
    struct {
        uint32_t off, n;
    } *runs;
    size_t n_runs, cap_runs;
    tok_ids ids;
} tok_cache;

typedef struct tok_work {
    tok_buf clean, norm, tmp;
    tok_list l[4];
    tok_sym *sym;
    size_t sym_cap;
    tok_heap_ent *heap;
    size_t heap_cap;
    tok_cache cache;
    tok_ssym *ssym;
    size_t ssym_cap;
    tok_sheap *sheap;
    size_t sheap_cap;
#ifdef CPT_HAVE_PCRE2
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *js;
#endif
} tok_work;

int tok_work_init(tok_work *w, cpt_err *err);
void tok_work_free(tok_work *w);

/* ---- the tokenizer --------------------------------------------------------- */
#define TOK_POOL_MAX 64
struct cpt_tok {
    char *path;
    tok_bpe bpe;
    tok_norm *norm;       /* NULL: none */
    tok_pretok *pretok;   /* NULL: none */
    tok_dec *dec;         /* NULL: none (tokens joined with " ", as HF) */
    tok_added *added;
    size_t n_added;
    /* first-byte index into added (sorted longest first per byte) for each pass */
    uint32_t *added_idx[2];
    uint32_t added_first[2][257];
    /* post-processor template for single sequences: ids, -1 = the sequence */
    int32_t *tmpl;
    size_t n_tmpl;
    /* id -> piece */
    int32_t n_ids;
    size_t *piece_off; /* SIZE_MAX = unused id */
    uint32_t *piece_len;
    uint8_t *is_special;
    tok_buf pieces;
    int32_t bos, eos, pad, unk;
    int cfg_add_bos, cfg_add_eos; /* tokenizer_config.json flags; -1 = not given */
    char *chat_template;
    tok_spm *spm;         /* non-NULL: a SentencePiece .model (bpe/norm/pretok unused) */
    /* Scratch pool: encode calls borrow a tok_work (and its warm pre-token cache,
     * PCRE2 JIT stack, symbol arrays) and give it back, so repeated calls and batch
     * threads do not start cold. The only mutable part of a loaded cpt_tok; guarded
     * by pool_mu, touched once per call (per thread), never on the per-word path. */
    pthread_mutex_t pool_mu;
    int pool_ok;
    struct tok_work *pool[TOK_POOL_MAX];
    int n_pool;
};

/* Borrow a scratch (from the pool or new) / give it back (pooled or freed). */
int tok_work_get(const cpt_tok *t, struct tok_work **out, cpt_err *err);
void tok_work_put(const cpt_tok *t, struct tok_work *w);

int tok_load_json(cpt_tok *t, const char *file, cpt_err *err);
int tok_load_config(cpt_tok *t, const char *file, cpt_err *err);
/* Steps 1-4 of encode (added tokens, normalizer, pre-tokenizer) on w->clean, which the
 * caller filled with sanitized text; *res is owned by w (valid until its next use). */
int tok_pretokenize_work(const cpt_tok *t, tok_work *w, tok_list **res, cpt_err *err);
int tok_encode_work(const cpt_tok *t, tok_work *w, const char *text, size_t len,
                    int add_special, tok_ids *out, size_t *n_replaced, cpt_err *err);

#endif /* CPT_TOK_IMPL_H */
