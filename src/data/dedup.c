/* dedup.c: exact (NFC + 128-bit hash), MinHash signatures, LSH with union-find, and 13-gram decontamination; not the quality filters. */
#include "cpt/dedup.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "dedup_impl.h"
#include "text.h"

#ifdef CPT_HAVE_UTF8PROC
#include <utf8proc.h>
#endif

/* ---- normalisation ---- */

/* utf8proc_map with `opts` (or a copy without utf8proc). */
static int umap(const char *s, size_t n, int opts, char **out, size_t *out_n, cpt_err *err) {
#ifdef CPT_HAVE_UTF8PROC
    utf8proc_uint8_t *o = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &o,
                                      (utf8proc_option_t)(opts | UTF8PROC_STABLE));
    if (r < 0) {
        free(o);
        return cpt_err_set(err, r == UTF8PROC_ERROR_NOMEM ? CPT_ENOMEM : CPT_EFORMAT,
                           "text normalisation: %s. HINT: the document is not valid UTF-8; fix the "
                           "input encoding or drop the document", utf8proc_errmsg(r));
    }
    *out = (char *)o;
    *out_n = (size_t)r;
    return CPT_OK;
#else
    (void)opts;
    char *o = malloc(n + 1);
    if (!o) return cpt_err_set(err, CPT_ENOMEM, "text normalisation: out of memory");
    memcpy(o, s, n);
    o[n] = 0;
    *out = o;
    *out_n = n;
    return CPT_OK;
#endif
}

int cpt_dedup_simplify(const char *text, size_t n, char **out, size_t *out_n, cpt_err *err) {
    char *m = NULL;
    size_t mn = 0;
#ifdef CPT_HAVE_UTF8PROC
    int rc = umap(text, n, UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD | UTF8PROC_STRIPMARK, &m, &mn, err);
#else
    int rc = umap(text, n, 0, &m, &mn, err);
    for (size_t i = 0; rc == 0 && i < mn; i++) m[i] = (char)tolower((unsigned char)m[i]);
#endif
    if (rc) return rc;
    /* punctuation/symbols -> space; collapse whitespace; trim. In place: output <= input. */
    size_t w = 0, i = 0;
    int pending = 0;
    while (i < mn) {
        size_t j = i;
        uint32_t cp = txt_next(m, mn, &j);
        if (txt_is_space(cp) || txt_is_punct(cp)) {
            pending = w > 0;
        } else {
            if (pending) m[w++] = ' ';
            pending = 0;
            memmove(m + w, m + i, j - i);
            w += j - i;
        }
        i = j;
    }
    m[w] = 0;
    *out = m;
    *out_n = w;
    return CPT_OK;
}

/* Word starts/lengths of a simplified string (single spaces, trimmed). */
static size_t split_simple(const char *s, size_t n, txt_span **out) {
    size_t cap = 64, k = 0;
    txt_span *v = malloc(cap * sizeof *v);
    if (!v) return (size_t)-1;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && s[j] != ' ') j++;
        if (k == cap) {
            txt_span *nv = realloc(v, 2 * cap * sizeof *nv);
            if (!nv) {
                free(v);
                return (size_t)-1;
            }
            v = nv;
            cap *= 2;
        }
        v[k++] = (txt_span){i, j - i, 0};
        i = j + 1;
    }
    *out = v;
    return k;
}

/* Hash of the shingle made of words [i, i + g): the bytes of the simplified text span. */
static uint64_t shingle_hash(const char *s, const txt_span *w, size_t i, size_t g, uint64_t seed) {
    size_t a = w[i].off, b = w[i + g - 1].off + w[i + g - 1].len;
    return txt_hash64(s + a, b - a, seed);
}

/* ---- exact ---- */

struct cpt_dedup_exact {
    uint64_t *k; /* [2 * cap], (0, 0) = empty */
    size_t cap, n;
};

int cpt_dedup_exact_open(cpt_dedup_exact **out, cpt_err *err) {
    cpt_dedup_exact *d = calloc(1, sizeof *d);
    if (d) {
        d->cap = 1024;
        d->k = calloc(2 * d->cap, sizeof *d->k);
    }
    if (!d || !d->k) {
        free(d);
        return cpt_err_set(err, CPT_ENOMEM, "exact dedup: out of memory");
    }
    *out = d;
    return CPT_OK;
}

void cpt_dedup_exact_close(cpt_dedup_exact *d) {
    if (!d) return;
    free(d->k);
    free(d);
}

uint64_t cpt_dedup_exact_count(const cpt_dedup_exact *d) { return d->n; }

int cpt_dedup_exact_key(const char *text, size_t n, uint64_t key[2], cpt_err *err) {
    char *m = NULL;
    size_t mn = 0;
    int rc = CPT_OK;
    /* Most text is already NFC: hash it in place (no copy) when that is certain. Invalid
     * UTF-8 is never "quick", so the normaliser still rejects it. */
    const char *t = text;
    if (txt_nfc_quick(text, n)) {
        mn = n;
    } else {
#ifdef CPT_HAVE_UTF8PROC
        int r = txt_nfc(text, n, &m, &mn); /* normalises only the unstable pieces */
        if (r == -1) rc = cpt_err_set(err, CPT_ENOMEM, "exact dedup: out of memory");
        else if (r < 0) rc = umap(text, n, UTF8PROC_COMPOSE, &m, &mn, err); /* names the UTF-8 error */
#else
        rc = umap(text, n, 0, &m, &mn, err);
#endif
        t = m;
    }
    if (rc) return rc;
    size_t a = 0, b = mn;
    while (a < b) { /* strip */
        size_t j = a;
        if (!txt_is_space(txt_next(t, b, &j))) break;
        a = j;
    }
    while (b > a) {
        size_t st = b - 1;
        while (st > a && ((uint8_t)t[st] & 0xC0) == 0x80) st--;
        size_t j = st;
        if (!txt_is_space(txt_next(t, b, &j))) break;
        b = st;
    }
    key[0] = txt_hash64(t + a, b - a, 0x243F6A8885A308D3ull);
    key[1] = txt_hash64(t + a, b - a, 0x13198A2E03707344ull);
    if (key[0] == 0 && key[1] == 0) key[1] = 1;
    free(m);
    return CPT_OK;
}

static void exact_put(uint64_t *k, size_t cap, const uint64_t key[2]) {
    size_t j = cpt_mix64(key[0]) & (cap - 1);
    while (k[2 * j] || k[2 * j + 1]) j = (j + 1) & (cap - 1);
    k[2 * j] = key[0];
    k[2 * j + 1] = key[1];
}

int cpt_dedup_exact_add(cpt_dedup_exact *d, const char *text, size_t n, int *is_dup, cpt_err *err) {
    uint64_t key[2];
    int rc = cpt_dedup_exact_key(text, n, key, err);
    return rc ? rc : dedup_exact_add_key(d, key, is_dup, err);
}

int dedup_exact_add_key(cpt_dedup_exact *d, const uint64_t key[2], int *is_dup, cpt_err *err) {
    size_t j = cpt_mix64(key[0]) & (d->cap - 1);
    while (d->k[2 * j] || d->k[2 * j + 1]) {
        if (d->k[2 * j] == key[0] && d->k[2 * j + 1] == key[1]) {
            *is_dup = 1;
            return CPT_OK;
        }
        j = (j + 1) & (d->cap - 1);
    }
    *is_dup = 0;
    if (2 * (d->n + 1) > d->cap) {
        size_t nc = d->cap * 2;
        uint64_t *nk = calloc(2 * nc, sizeof *nk);
        if (!nk) return cpt_err_set(err, CPT_ENOMEM, "exact dedup: out of memory at %zu keys", d->n);
        for (size_t i = 0; i < d->cap; i++)
            if (d->k[2 * i] || d->k[2 * i + 1]) exact_put(nk, nc, d->k + 2 * i);
        free(d->k);
        d->k = nk;
        d->cap = nc;
    }
    exact_put(d->k, d->cap, key);
    d->n++;
    return CPT_OK;
}

/* ---- MinHash ---- */

#define MERSENNE61 ((1ull << 61) - 1)

struct cpt_minhash {
    cpt_minhash_cfg c;
    uint64_t *a, *b; /* [bands * rows] */
};

void cpt_minhash_cfg_default(cpt_minhash_cfg *c) {
    c->ngram = 5;
    c->bands = 14;
    c->rows = 8;
    c->seed = 1;
}


int cpt_minhash_open(cpt_minhash **out, const cpt_minhash_cfg *cfg, cpt_err *err) {
    *out = NULL;
    if (cfg->ngram < 1 || cfg->bands < 1 || cfg->rows < 1 || (uint64_t)cfg->bands * cfg->rows > 4096)
        return cpt_err_set(err, CPT_EINVAL,
                           "minhash: ngram %u, bands %u, rows %u. HINT: each must be >= 1 and bands*rows <= 4096",
                           cfg->ngram, cfg->bands, cfg->rows);
    cpt_minhash *m = calloc(1, sizeof *m);
    size_t k = (size_t)cfg->bands * cfg->rows;
    if (m) {
        m->a = malloc(k * sizeof *m->a);
        m->b = malloc(k * sizeof *m->b);
    }
    if (!m || !m->a || !m->b) {
        cpt_minhash_close(m);
        return cpt_err_set(err, CPT_ENOMEM, "minhash: out of memory");
    }
    m->c = *cfg;
    uint64_t st = cfg->seed;
    for (size_t i = 0; i < k; i++) {
        m->a[i] = 1 + cpt_splitmix64(&st) % (MERSENNE61 - 1);
        m->b[i] = cpt_splitmix64(&st) % MERSENNE61;
    }
    *out = m;
    return CPT_OK;
}

void cpt_minhash_close(cpt_minhash *m) {
    if (!m) return;
    free(m->a);
    free(m->b);
    free(m);
}

size_t cpt_minhash_len(const cpt_minhash *m) { return (size_t)m->c.bands * m->c.rows; }

/* (a*x + b) mod (2^61 - 1) by Mersenne folding; a, b < p, x < 2^32. */
static uint64_t perm61(uint64_t a, uint64_t b, uint64_t x) {
    unsigned __int128 t = (unsigned __int128)a * x + b;
    uint64_t r = (uint64_t)(t & MERSENNE61) + (uint64_t)(t >> 61);
    r = (r & MERSENNE61) + (r >> 61);
    return r >= MERSENNE61 ? r - MERSENNE61 : r;
}

int cpt_minhash_signature(const cpt_minhash *m, const char *text, size_t n, uint32_t *sig,
                          size_t *n_shingles, cpt_err *err) {
    size_t K = cpt_minhash_len(m);
    for (size_t i = 0; i < K; i++) sig[i] = UINT32_MAX;
    *n_shingles = 0;
    char *s;
    size_t sn;
    int rc = cpt_dedup_simplify(text, n, &s, &sn, err);
    if (rc) return rc;
    txt_span *w;
    size_t nw = split_simple(s, sn, &w);
    if (nw == (size_t)-1) {
        free(s);
        return cpt_err_set(err, CPT_ENOMEM, "minhash: out of memory");
    }
    size_t g = m->c.ngram, ns = nw == 0 ? 0 : nw < g ? 1 : nw - g + 1;
    for (size_t i = 0; i < ns; i++) {
        uint64_t x = shingle_hash(s, w, i, nw < g ? nw : g, 0) & 0xFFFFFFFFull;
        for (size_t p = 0; p < K; p++) {
            uint32_t h = (uint32_t)(perm61(m->a[p], m->b[p], x) & 0xFFFFFFFFull);
            if (h < sig[p]) sig[p] = h;
        }
    }
    *n_shingles = ns;
    free(w);
    free(s);
    return CPT_OK;
}

/* ---- LSH ---- */

struct cpt_lsh {
    uint32_t bands, rows;
    uint64_t *parent; /* [n] union-find, the root is the cluster's minimum id */
    size_t n, pcap;
    uint64_t *bk, *bv; /* bucket table: key (band-tagged hash, 0 = empty) -> first doc */
    size_t bcap, bn;
};

int cpt_lsh_open(cpt_lsh **out, uint32_t bands, uint32_t rows, cpt_err *err) {
    *out = NULL;
    if (bands < 1 || rows < 1)
        return cpt_err_set(err, CPT_EINVAL, "lsh: bands %u rows %u. HINT: both must be >= 1", bands, rows);
    cpt_lsh *l = calloc(1, sizeof *l);
    if (l) {
        l->bands = bands;
        l->rows = rows;
        l->pcap = 1024;
        l->parent = malloc(l->pcap * sizeof *l->parent);
        l->bcap = 4096;
        l->bk = calloc(l->bcap, sizeof *l->bk);
        l->bv = calloc(l->bcap, sizeof *l->bv);
    }
    if (!l || !l->parent || !l->bk || !l->bv) {
        cpt_lsh_close(l);
        return cpt_err_set(err, CPT_ENOMEM, "lsh: out of memory");
    }
    *out = l;
    return CPT_OK;
}

void cpt_lsh_close(cpt_lsh *l) {
    if (!l) return;
    free(l->parent);
    free(l->bk);
    free(l->bv);
    free(l);
}

uint64_t cpt_lsh_n_docs(const cpt_lsh *l) { return l->n; }

static uint64_t uf_find(cpt_lsh *l, uint64_t x) {
    while (l->parent[x] != x) {
        l->parent[x] = l->parent[l->parent[x]]; /* path halving */
        x = l->parent[x];
    }
    return x;
}

static void uf_union(cpt_lsh *l, uint64_t a, uint64_t b) {
    a = uf_find(l, a);
    b = uf_find(l, b);
    if (a == b) return;
    if (a < b) l->parent[b] = a; /* the earliest document stays the root */
    else l->parent[a] = b;
}

uint64_t cpt_lsh_survivor(cpt_lsh *l, uint64_t id) {
    CPT_ASSERT(id < l->n);
    return uf_find(l, id);
}

/* Find or insert key -> doc; returns the first doc stored under key. */
static int bucket(cpt_lsh *l, uint64_t key, uint64_t doc, uint64_t *first) {
    if (2 * (l->bn + 1) > l->bcap) {
        size_t nc = l->bcap * 2;
        uint64_t *nk = calloc(nc, sizeof *nk), *nv = calloc(nc, sizeof *nv);
        if (!nk || !nv) {
            free(nk);
            free(nv);
            return -1;
        }
        for (size_t i = 0; i < l->bcap; i++)
            if (l->bk[i]) {
                size_t j = cpt_mix64(l->bk[i]) & (nc - 1);
                while (nk[j]) j = (j + 1) & (nc - 1);
                nk[j] = l->bk[i];
                nv[j] = l->bv[i];
            }
        free(l->bk);
        free(l->bv);
        l->bk = nk;
        l->bv = nv;
        l->bcap = nc;
    }
    size_t j = cpt_mix64(key) & (l->bcap - 1);
    while (l->bk[j] && l->bk[j] != key) j = (j + 1) & (l->bcap - 1);
    if (!l->bk[j]) {
        l->bk[j] = key;
        l->bv[j] = doc;
        l->bn++;
    }
    *first = l->bv[j];
    return 0;
}

int cpt_lsh_add(cpt_lsh *l, const uint32_t *sig, int index, uint64_t *id, cpt_err *err) {
    if (l->n == l->pcap) {
        uint64_t *np = realloc(l->parent, 2 * l->pcap * sizeof *np);
        if (!np) return cpt_err_set(err, CPT_ENOMEM, "lsh: out of memory at %zu documents", l->n);
        l->parent = np;
        l->pcap *= 2;
    }
    uint64_t me = l->n++;
    l->parent[me] = me;
    *id = me;
    if (!index) return CPT_OK;
    for (uint32_t b = 0; b < l->bands; b++) {
        uint64_t key = txt_hash64(sig + (size_t)b * l->rows, l->rows * sizeof *sig, 0xBA7D0000ull + b);
        if (key == 0) key = 1;
        uint64_t first;
        if (bucket(l, key, me, &first))
            return cpt_err_set(err, CPT_ENOMEM, "lsh: out of memory growing buckets at %zu documents", l->n);
        if (first != me) uf_union(l, me, first);
    }
    return CPT_OK;
}

/* ---- decontamination ---- */

struct cpt_decon {
    uint32_t g;
    txt_counter set;
};

int cpt_decon_open(cpt_decon **out, uint32_t ngram, cpt_err *err) {
    *out = NULL;
    if (ngram < 1) return cpt_err_set(err, CPT_EINVAL, "decontamination: ngram 0. HINT: use 13");
    cpt_decon *d = calloc(1, sizeof *d);
    if (!d || txt_counter_init(&d->set, 1024)) {
        free(d);
        return cpt_err_set(err, CPT_ENOMEM, "decontamination: out of memory");
    }
    d->g = ngram;
    *out = d;
    return CPT_OK;
}

void cpt_decon_close(cpt_decon *d) {
    if (!d) return;
    txt_counter_free(&d->set);
    free(d);
}

uint64_t cpt_decon_count(const cpt_decon *d) { return d->set.n; }

/* Walk the n-grams of text: add them (add = 1) or look them up (stop at the first hit). */
static int decon_walk(cpt_decon *d, const char *text, size_t n, int add, int *hit, cpt_err *err) {
    char *s;
    size_t sn;
    int rc = cpt_dedup_simplify(text, n, &s, &sn, err);
    if (rc) return rc;
    txt_span *w;
    size_t nw = split_simple(s, sn, &w);
    if (nw == (size_t)-1) {
        free(s);
        return cpt_err_set(err, CPT_ENOMEM, "decontamination: out of memory");
    }
    size_t g = d->g, ns = nw == 0 ? 0 : nw < g ? 1 : nw - g + 1;
    if (hit) *hit = 0;
    for (size_t i = 0; i < ns; i++) {
        uint64_t h = shingle_hash(s, w, i, nw < g ? nw : g, 0xDEC0);
        if (add) {
            if (txt_counter_add(&d->set, h) == 0) {
                rc = cpt_err_set(err, CPT_ENOMEM, "decontamination: out of memory");
                break;
            }
        } else if (txt_counter_get(&d->set, h)) {
            *hit = 1;
            break;
        }
    }
    free(w);
    free(s);
    return rc;
}

int cpt_decon_add_text(cpt_decon *d, const char *text, size_t n, cpt_err *err) {
    return decon_walk(d, text, n, 1, NULL, err);
}

int cpt_decon_check(const cpt_decon *d, const char *text, size_t n, int *hit, cpt_err *err) {
    return decon_walk((cpt_decon *)d, text, n, 0, hit, err); /* lookups do not modify */
}

int cpt_decon_add_file(cpt_decon *d, const char *path, cpt_err *err) {
    char *buf;
    size_t n;
    int rc = cpt_read_file(path, &buf, &n, err);
    if (rc) return rc;
    size_t pl = strlen(path);
    int jsonl = pl >= 6 && strcmp(path + pl - 6, ".jsonl") == 0;
    size_t line = 1;
    for (size_t i = 0; i < n && !rc; line++) {
        size_t j = i;
        while (j < n && buf[j] != '\n') j++;
        if (jsonl && j > i) {
            json_error_t je;
            json_t *o = json_loadb(buf + i, j - i, JSON_REJECT_DUPLICATES, &je);
            json_t *t = o ? json_object_get(o, "text") : NULL;
            if (!t || !json_is_string(t))
                rc = cpt_err_set(err, CPT_EFORMAT,
                                 "%s:%zu: %s. HINT: each line must be a JSON object with a string \"text\"",
                                 path, line, o ? "no string field \"text\"" : je.text);
            else
                rc = decon_walk(d, json_string_value(t), json_string_length(t), 1, NULL, err);
            json_decref(o);
        } else if (j > i) {
            rc = decon_walk(d, buf + i, j - i, 1, NULL, err);
            if (rc) cpt_err_wrap(err, "%s:%zu", path, line);
        }
        i = j + 1;
    }
    free(buf);
    return rc;
}
