/* shard.c: token shard reader (validate, O(1) document access, lazy verify) and streaming writer; not packing or mixing. */
#include "cpt/shard.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"

#ifdef CPT_HAVE_ZLIB
#include <zlib.h>
#endif

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "shards are little-endian and read in place; cpt needs a little-endian host"
#endif

/* ---- CRC-32 ---- */

#ifndef CPT_HAVE_ZLIB
static uint32_t crc_table[256];
static int crc_ready;
static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
    crc_ready = 1;
}
#endif

uint32_t cpt_crc32(uint32_t crc, const void *data, size_t n) {
#ifdef CPT_HAVE_ZLIB
    /* zlib's crc32 takes a uInt length; feed it in chunks so >4 GiB buffers work. */
    const uint8_t *p = data;
    while (n > 0) {
        size_t k = n > (1u << 30) ? (1u << 30) : n;
        crc = (uint32_t)crc32(crc, p, (uInt)k);
        p += k;
        n -= k;
    }
    return crc;
#else
    if (!crc_ready) crc_init(); /* idempotent; a benign race writes identical values */
    const uint8_t *p = data;
    uint32_t c = ~crc;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return ~c;
#endif
}

/* ---- little-endian helpers (host is little-endian, but memcpy avoids alignment UB) ---- */
static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* ---- reader ---- */

struct cpt_shard {
    char *label;
    cpt_map map; /* owned when opened from a path */
    const uint8_t *base;
    size_t size;
    uint32_t token_bytes, vocab_size, body_crc, version, flags;
    uint64_t n_docs, n_tokens, index_offset, mask_offset; /* mask_offset 0: no mask */
};


static uint64_t off_at(const cpt_shard *s, uint64_t i) {
    return rd64(s->base + s->index_offset + 8 * i);
}

/* Validate everything except token values and body_crc. */
static int shard_check(cpt_shard *s, cpt_err *err) {
    const char *L = s->label;
    const uint8_t *b = s->base;
    if (s->size < CPT_SHARD_HEADER_BYTES)
        return cpt_err_set_at(err, CPT_EFORMAT, L,
                       "truncated header at offset %zu: file has %zu bytes, a shard header needs %u. "
                       "HINT: the file is not a complete cpt shard; re-run `cpt data prepare`",
                       s->size, s->size, CPT_SHARD_HEADER_BYTES);
    if (memcmp(b, CPT_SHARD_MAGIC, 8) != 0)
        return cpt_err_set_at(err, CPT_EFORMAT, L,
                       "bad magic at offset 0 (expected \"CPTSHARD\"). HINT: this is not a cpt token "
                       "shard; make shards with `cpt data prepare`");
    uint32_t version = rd32(b + 8);
    if (version != 1 && version != 2)
        return cpt_err_set_at(err, CPT_EUNSUPPORTED, L,
                       "unknown version %u at offset 8 (this cpt reads versions 1 and %u). HINT: re-prepare "
                       "the data with this cpt or use the cpt that wrote it",
                       version, CPT_SHARD_VERSION);
    s->version = version;
    uint32_t hcrc = rd32(b + 60), want = cpt_crc32(0, b, 60);
    if (hcrc != want)
        return cpt_err_set_at(err, CPT_EFORMAT, L,
                       "header checksum mismatch at offset 60 (stored 0x%08x, computed 0x%08x). "
                       "HINT: the header is corrupt; re-prepare this shard",
                       hcrc, want);
    s->token_bytes = rd32(b + 12);
    s->vocab_size = rd32(b + 16);
    uint32_t flags = rd32(b + 20);
    s->n_docs = rd64(b + 24);
    s->n_tokens = rd64(b + 32);
    s->index_offset = rd64(b + 40);
    uint64_t fsize = rd64(b + 48);
    s->body_crc = rd32(b + 56);
    if (s->token_bytes != 2 && s->token_bytes != 4)
        return cpt_err_set_at(err, CPT_EFORMAT, L, "token_bytes %u at offset 12 must be 2 or 4. HINT: corrupt header",
                       s->token_bytes);
    if (s->vocab_size == 0 || (s->token_bytes == 2 && s->vocab_size > 65536))
        return cpt_err_set_at(err, CPT_EFORMAT, L,
                       "vocab_size %u at offset 16 does not fit token_bytes %u. HINT: corrupt header",
                       s->vocab_size, s->token_bytes);
    if (flags & ~(version == 2 ? CPT_SHARD_FLAG_MASK : 0u))
        return cpt_err_set_at(err, CPT_EUNSUPPORTED, L, "unknown flags 0x%x at offset 20 (version %u). HINT: written by a newer cpt",
                       flags, version);
    s->flags = flags;
    /* Expected layout, overflow-checked in u64 (files > 4 GiB are legal). */
    uint64_t data_bytes, idx_off, idx_bytes, total;
    if (__builtin_mul_overflow(s->n_tokens, (uint64_t)s->token_bytes, &data_bytes) ||
        __builtin_add_overflow(data_bytes, (uint64_t)CPT_SHARD_HEADER_BYTES + 7, &idx_off))
        return cpt_err_set_at(err, CPT_EFORMAT, L, "n_tokens %llu at offset 32 overflows. HINT: corrupt header",
                       (unsigned long long)s->n_tokens);
    idx_off &= ~(uint64_t)7;
    if (s->index_offset != idx_off)
        return cpt_err_set_at(err, CPT_EFORMAT, L,
                       "index_offset %llu at offset 40 disagrees with n_tokens (expected %llu). HINT: corrupt header",
                       (unsigned long long)s->index_offset, (unsigned long long)idx_off);
    if (s->n_docs == UINT64_MAX || __builtin_mul_overflow(s->n_docs + 1, (uint64_t)8, &idx_bytes) ||
        __builtin_add_overflow(idx_off, idx_bytes, &total))
        return cpt_err_set_at(err, CPT_EFORMAT, L, "n_docs %llu at offset 24 overflows. HINT: corrupt header",
                       (unsigned long long)s->n_docs);
    uint64_t idx_end = total;
    if (flags & CPT_SHARD_FLAG_MASK) {
        uint64_t mask_bytes = ((s->n_tokens + 7) / 8 + 7) & ~(uint64_t)7; /* n_tokens < 2^63 here */
        if (__builtin_add_overflow(total, mask_bytes, &total))
            return cpt_err_set_at(err, CPT_EFORMAT, L, "mask section overflows. HINT: corrupt header");
        s->mask_offset = idx_end;
    }
    if (fsize != total)
        return cpt_err_set_at(err, CPT_EFORMAT, L,
                       "file_size field %llu at offset 48 disagrees with n_docs/n_tokens (expected %llu). "
                       "HINT: corrupt header",
                       (unsigned long long)fsize, (unsigned long long)total);
    uint64_t real = s->size;
    if (real < CPT_SHARD_HEADER_BYTES + data_bytes)
        return cpt_err_set_at(err, CPT_EFORMAT, L,
                       "truncated token data: %llu tokens need bytes [64, %llu) but the file ends at offset "
                       "%llu. HINT: the shard was cut short (disk full or interrupted copy); re-copy or "
                       "re-prepare it",
                       (unsigned long long)s->n_tokens,
                       (unsigned long long)(CPT_SHARD_HEADER_BYTES + data_bytes), (unsigned long long)real);
    if (real < idx_end)
        return cpt_err_set_at(err, CPT_EFORMAT, L,
                       "truncated index: the document index needs bytes [%llu, %llu) but the file ends at "
                       "offset %llu. HINT: the shard was cut short; re-copy or re-prepare it",
                       (unsigned long long)idx_off, (unsigned long long)idx_end, (unsigned long long)real);
    if (real < total)
        return cpt_err_set_at(err, CPT_EFORMAT, L,
                       "truncated loss mask: it needs bytes [%llu, %llu) but the file ends at offset %llu. "
                       "HINT: the shard was cut short; re-copy or re-prepare it",
                       (unsigned long long)idx_end, (unsigned long long)total, (unsigned long long)real);
    if (real > total)
        return cpt_err_set_at(err, CPT_EFORMAT, L,
                       "%llu trailing bytes after the index, from offset %llu. HINT: the file was "
                       "appended to or is not a cpt shard",
                       (unsigned long long)(real - total), (unsigned long long)total);
    if (off_at(s, 0) != 0)
        return cpt_err_set_at(err, CPT_EFORMAT, L,
                       "document index entry 0 at offset %llu is %llu, must be 0. HINT: corrupt index",
                       (unsigned long long)idx_off, (unsigned long long)off_at(s, 0));
    uint64_t prev = 0;
    for (uint64_t i = 1; i <= s->n_docs; i++) {
        uint64_t o = off_at(s, i);
        if (o < prev || o > s->n_tokens)
            return cpt_err_set_at(err, CPT_EFORMAT, L,
                           "document index entry %llu at offset %llu is %llu: offsets must be "
                           "non-decreasing and <= n_tokens %llu (previous %llu). HINT: corrupt index",
                           (unsigned long long)i, (unsigned long long)(idx_off + 8 * i),
                           (unsigned long long)o, (unsigned long long)s->n_tokens,
                           (unsigned long long)prev);
        prev = o;
    }
    if (prev != s->n_tokens)
        return cpt_err_set_at(err, CPT_EFORMAT, L,
                       "last document index entry at offset %llu is %llu, must equal n_tokens %llu. "
                       "HINT: corrupt index",
                       (unsigned long long)(idx_off + 8 * s->n_docs), (unsigned long long)prev,
                       (unsigned long long)s->n_tokens);
    return CPT_OK;
}

static int shard_new(cpt_shard **out, const char *label, cpt_err *err) {
    *out = NULL;
    cpt_shard *s = calloc(1, sizeof *s);
    if (s) s->label = strdup(label);
    if (!s || !s->label) {
        free(s);
        return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory opening shard", label);
    }
    *out = s;
    return CPT_OK;
}

int cpt_shard_open_mem(cpt_shard **out, const void *data, size_t size, const char *label,
                       cpt_err *err) {
    cpt_shard *s;
    int rc = shard_new(&s, label ? label : "<memory>", err);
    if (rc) return rc;
    s->base = data;
    s->size = size;
    rc = shard_check(s, err);
    if (rc) {
        cpt_shard_close(s);
        *out = NULL;
        return rc;
    }
    *out = s;
    return CPT_OK;
}

int cpt_shard_open(cpt_shard **out, const char *path, cpt_err *err) {
    cpt_shard *s;
    int rc = shard_new(&s, path, err);
    if (rc) return rc;
    rc = cpt_map_open(&s->map, path, err);
    if (!rc) {
        s->base = s->map.data;
        s->size = s->map.size;
        rc = shard_check(s, err);
    }
    if (rc) {
        cpt_shard_close(s);
        *out = NULL;
        return rc;
    }
    *out = s;
    return CPT_OK;
}

void cpt_shard_close(cpt_shard *s) {
    if (!s) return;
    cpt_map_close(&s->map);
    free(s->label);
    free(s);
}

uint64_t cpt_shard_n_docs(const cpt_shard *s) { return s->n_docs; }
uint64_t cpt_shard_n_tokens(const cpt_shard *s) { return s->n_tokens; }
uint32_t cpt_shard_token_bytes(const cpt_shard *s) { return s->token_bytes; }
uint32_t cpt_shard_vocab_size(const cpt_shard *s) { return s->vocab_size; }
const char *cpt_shard_label(const cpt_shard *s) { return s->label; }
uint32_t cpt_shard_version(const cpt_shard *s) { return s->version; }
int cpt_shard_has_mask(const cpt_shard *s) { return s->mask_offset != 0; }

void cpt_shard_mask(const cpt_shard *s, uint64_t start, uint64_t n, uint8_t *dst) {
    CPT_ASSERT(start <= s->n_tokens && n <= s->n_tokens - start);
    if (!s->mask_offset) {
        memset(dst, 1, n);
        return;
    }
    const uint8_t *m = s->base + s->mask_offset;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t t = start + i;
        dst[i] = (uint8_t)((m[t >> 3] >> (t & 7)) & 1);
    }
}

uint64_t cpt_shard_mask_count(const cpt_shard *s) {
    if (!s->mask_offset) return s->n_tokens;
    const uint8_t *m = s->base + s->mask_offset;
    uint64_t c = 0;
    for (uint64_t i = 0; i < (s->n_tokens + 7) / 8; i++) c += (uint64_t)__builtin_popcount(m[i]);
    return c;
}

void cpt_shard_doc_range(const cpt_shard *s, uint64_t i, uint64_t *start, uint64_t *len) {
    CPT_ASSERT(i < s->n_docs);
    uint64_t a = off_at(s, i), b = off_at(s, i + 1);
    *start = a;
    *len = b - a;
}

uint64_t cpt_shard_doc_of_token(const cpt_shard *s, uint64_t t) {
    CPT_ASSERT(t < s->n_tokens);
    /* Largest i with off[i] <= t and off[i+1] > t (skips empty documents). */
    uint64_t lo = 0, hi = s->n_docs; /* invariant: off[lo] <= t < off[hi] */
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (off_at(s, mid) <= t)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

void cpt_shard_tokens(const cpt_shard *s, uint64_t start, uint64_t n, uint32_t *dst) {
    CPT_ASSERT(start <= s->n_tokens && n <= s->n_tokens - start);
    const uint8_t *p = s->base + CPT_SHARD_HEADER_BYTES + start * s->token_bytes;
    if (s->token_bytes == 4) {
        memcpy(dst, p, n * 4);
    } else {
        for (uint64_t i = 0; i < n; i++) {
            uint16_t v;
            memcpy(&v, p + 2 * i, 2);
            dst[i] = v;
        }
    }
}

int cpt_shard_verify(const cpt_shard *s, cpt_err *err) {
    uint32_t c = cpt_crc32(0, s->base + CPT_SHARD_HEADER_BYTES, s->size - CPT_SHARD_HEADER_BYTES);
    if (c != s->body_crc)
        return cpt_err_set_at(err, CPT_EFORMAT, s->label,
                       "body checksum mismatch: stored 0x%08x at offset 56, computed 0x%08x over bytes "
                       "[64, %zu). HINT: the shard is corrupt (bad disk or copy); re-copy or re-prepare it",
                       s->body_crc, c, s->size);
    const uint8_t *p = s->base + CPT_SHARD_HEADER_BYTES;
    for (uint64_t i = 0; i < s->n_tokens; i++) {
        uint32_t v;
        if (s->token_bytes == 4) {
            v = rd32(p + 4 * i);
        } else {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            v = h;
        }
        if (v >= s->vocab_size)
            return cpt_err_set_at(err, CPT_EFORMAT, s->label,
                           "token %llu at offset %llu is %u, outside vocab_size %u. HINT: the shard was "
                           "written with a different tokenizer; re-prepare it",
                           (unsigned long long)i,
                           (unsigned long long)(CPT_SHARD_HEADER_BYTES + i * s->token_bytes), v,
                           s->vocab_size);
    }
    if (s->mask_offset) {
        const uint8_t *m = s->base + s->mask_offset;
        uint64_t used = (s->n_tokens + 7) / 8, all = s->size - s->mask_offset;
        for (uint64_t i = s->n_tokens; i < 8 * all; i++)
            if ((m[i >> 3] >> (i & 7)) & 1)
                return cpt_err_set_at(err, CPT_EFORMAT, s->label,
                               "loss-mask padding bit %llu set at offset %llu (n_tokens %llu, %llu mask bytes used). "
                               "HINT: corrupt mask; re-prepare it",
                               (unsigned long long)i, (unsigned long long)(s->mask_offset + (i >> 3)),
                               (unsigned long long)s->n_tokens, (unsigned long long)used);
    }
    return CPT_OK;
}

/* ---- writer ---- */

struct cpt_shard_writer {
    cpt_awrite aw;
    uint32_t vocab_size, token_bytes, crc;
    uint64_t n_tokens;
    uint64_t *off; /* [n_docs + 1] */
    size_t n_docs, cap;
    uint8_t *mbits; /* loss-mask bits, NULL until the first masked document */
    size_t mcap;    /* bytes allocated in mbits */
    uint8_t buf[1 << 15]; /* narrowing buffer for u16 output */
};

int cpt_shard_writer_open(cpt_shard_writer **out, const char *path, uint32_t vocab_size,
                          cpt_err *err) {
    *out = NULL;
    if (vocab_size == 0)
        return cpt_err_set(err, CPT_EINVAL, "%s: vocab_size must be >= 1. HINT: pass the tokenizer's vocabulary size",
                           path);
    cpt_shard_writer *w = calloc(1, sizeof *w);
    if (!w) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", path);
    w->vocab_size = vocab_size;
    w->token_bytes = vocab_size <= 65536 ? 2 : 4;
    w->cap = 1024;
    w->off = malloc(w->cap * sizeof *w->off);
    if (!w->off) {
        free(w);
        return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", path);
    }
    w->off[0] = 0;
    int rc = cpt_awrite_open(&w->aw, path, err);
    if (rc) {
        free(w->off);
        free(w);
        return rc;
    }
    uint8_t zero[CPT_SHARD_HEADER_BYTES] = {0}; /* placeholder; commit rewrites it */
    rc = cpt_fwrite_all(w->aw.f, zero, sizeof zero, w->aw.tmp, err);
    if (rc) {
        cpt_shard_writer_abort(w);
        return rc;
    }
    *out = w;
    return CPT_OK;
}

static int w_put(cpt_shard_writer *w, const void *p, size_t n, cpt_err *err) {
    w->crc = cpt_crc32(w->crc, p, n);
    return cpt_fwrite_all(w->aw.f, p, n, w->aw.tmp, err);
}

/* Make room for mask bits of tokens [0, upto); new bytes are zero. */
static int mask_reserve(cpt_shard_writer *w, uint64_t upto, cpt_err *err) {
    size_t need = (size_t)((upto + 7) / 8);
    if (need <= w->mcap && w->mbits) return CPT_OK;
    size_t nc = w->mcap ? w->mcap : 4096;
    while (nc < need) nc *= 2;
    uint8_t *nb = realloc(w->mbits, nc);
    if (!nb) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory for the loss mask", w->aw.path);
    memset(nb + w->mcap, 0, nc - w->mcap);
    w->mbits = nb;
    w->mcap = nc;
    return CPT_OK;
}

static void mask_set(cpt_shard_writer *w, uint64_t t0, const uint8_t *mask, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!mask || mask[i]) w->mbits[(t0 + i) >> 3] |= (uint8_t)(1u << ((t0 + i) & 7));
}

static int writer_add(cpt_shard_writer *w, const uint32_t *tokens, const uint8_t *mask, size_t n, cpt_err *err);

int cpt_shard_writer_add(cpt_shard_writer *w, const uint32_t *tokens, size_t n, cpt_err *err) {
    return writer_add(w, tokens, NULL, n, err);
}

int cpt_shard_writer_add_masked(cpt_shard_writer *w, const uint32_t *tokens, const uint8_t *mask, size_t n,
                                cpt_err *err) {
    if (!w->mbits) { /* the earlier documents carry loss on every token */
        int rc = mask_reserve(w, w->n_tokens + n, err);
        if (rc) return rc;
        mask_set(w, 0, NULL, (size_t)w->n_tokens);
    }
    return writer_add(w, tokens, mask, n, err);
}

static int writer_add(cpt_shard_writer *w, const uint32_t *tokens, const uint8_t *mask, size_t n, cpt_err *err) {
    for (size_t i = 0; i < n; i++)
        if (tokens[i] >= w->vocab_size)
            return cpt_err_set(err, CPT_EINVAL,
                               "%s: document %zu token %zu is %u, outside vocab_size %u. HINT: the "
                               "shard's vocab_size must match the tokenizer",
                               w->aw.path, w->n_docs, i, tokens[i], w->vocab_size);
    if (w->n_docs + 1 == w->cap) {
        size_t ncap;
        if (!cpt_mul_size(w->cap, 2, &ncap) || ncap > SIZE_MAX / sizeof *w->off)
            return cpt_err_set(err, CPT_ENOMEM, "%s: too many documents", w->aw.path);
        uint64_t *no = realloc(w->off, ncap * sizeof *no);
        if (!no) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory growing the index", w->aw.path);
        w->off = no;
        w->cap = ncap;
    }
    int rc;
    if (w->token_bytes == 4) {
        rc = w_put(w, tokens, n * 4, err);
    } else {
        rc = CPT_OK;
        size_t per = sizeof w->buf / 2;
        for (size_t i = 0; i < n && !rc; i += per) {
            size_t k = n - i < per ? n - i : per;
            for (size_t j = 0; j < k; j++) {
                uint16_t v = (uint16_t)tokens[i + j];
                memcpy(w->buf + 2 * j, &v, 2);
            }
            rc = w_put(w, w->buf, 2 * k, err);
        }
    }
    if (!rc && w->mbits) {
        rc = mask_reserve(w, w->n_tokens + n, err);
        if (!rc) mask_set(w, w->n_tokens, mask, n);
    }
    if (rc) return rc; /* the temp file is now inconsistent; the caller aborts */
    w->n_tokens += n;
    w->off[++w->n_docs] = w->n_tokens;
    return CPT_OK;
}

uint64_t cpt_shard_writer_n_docs(const cpt_shard_writer *w) { return w->n_docs; }
uint64_t cpt_shard_writer_n_tokens(const cpt_shard_writer *w) { return w->n_tokens; }

int cpt_shard_writer_commit(cpt_shard_writer *w, cpt_err *err) {
    uint64_t data_end = CPT_SHARD_HEADER_BYTES + w->n_tokens * w->token_bytes;
    uint64_t idx_off = (data_end + 7) & ~(uint64_t)7;
    uint8_t pad[8] = {0};
    int rc = w_put(w, pad, (size_t)(idx_off - data_end), err);
    if (!rc) rc = w_put(w, w->off, (w->n_docs + 1) * sizeof *w->off, err);
    uint64_t mask_bytes = w->mbits ? ((w->n_tokens + 7) / 8 + 7) & ~(uint64_t)7 : 0;
    if (!rc && w->mbits) {
        rc = mask_reserve(w, 8 * mask_bytes, err); /* zero padding up to mask_bytes */
        if (!rc) rc = w_put(w, w->mbits, (size_t)mask_bytes, err);
    }
    if (!rc) {
        uint8_t h[CPT_SHARD_HEADER_BYTES] = {0};
        memcpy(h, CPT_SHARD_MAGIC, 8);
        wr32(h + 8, w->mbits ? 2u : 1u);
        wr32(h + 12, w->token_bytes);
        wr32(h + 16, w->vocab_size);
        wr32(h + 20, w->mbits ? CPT_SHARD_FLAG_MASK : 0u);
        wr64(h + 24, w->n_docs);
        wr64(h + 32, w->n_tokens);
        wr64(h + 40, idx_off);
        wr64(h + 48, idx_off + (w->n_docs + 1) * 8 + mask_bytes);
        wr32(h + 56, w->crc);
        wr32(h + 60, cpt_crc32(0, h, 60));
        if (fseeko(w->aw.f, 0, SEEK_SET) != 0)
            rc = cpt_err_set(err, CPT_EIO, "%s: cannot seek to write the header", w->aw.tmp);
        else
            rc = cpt_fwrite_all(w->aw.f, h, sizeof h, w->aw.tmp, err);
    }
    if (!rc) rc = cpt_awrite_commit(&w->aw, err);
    else cpt_awrite_abort(&w->aw);
    free(w->off);
    free(w->mbits);
    free(w);
    return rc;
}

void cpt_shard_writer_abort(cpt_shard_writer *w) {
    if (!w) return;
    cpt_awrite_abort(&w->aw);
    free(w->off);
    free(w->mbits);
    free(w);
}
