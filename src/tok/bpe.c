/* bpe.c: the BPE model of HF `tokenizers` (merge_word + Word::merge_all), with a
 * bounded per-thread pre-token cache. Not the loader (load_json.c). */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_impl.h"

/* Cache bounds: words longer than this are not cached (HF uses 256 characters);
 * the cache is dropped whole when it grows past these sizes, which keeps memory
 * bounded on huge inputs without an LRU's bookkeeping. */
enum { CACHE_MAX_WORD = 256, CACHE_MAX_ENTRIES = 1 << 16, CACHE_MAX_IDS = 1 << 20 };

static int add_sym(tok_work *w, size_t *n, int32_t id, uint32_t len) {
    if (*n == w->sym_cap) {
        size_t cap = w->sym_cap ? w->sym_cap * 2 : 256;
        tok_sym *s = realloc(w->sym, cap * sizeof *s);
        if (!s) return CPT_ENOMEM;
        w->sym = s;
        w->sym_cap = cap;
    }
    w->sym[*n] = (tok_sym){id, (int32_t)*n - 1, (int32_t)*n + 1, len};
    (*n)++;
    return 0;
}

/* Min-heap on (rank, pos): HF's Merge ordering (lowest rank, then leftmost). */
static inline int ent_less(tok_heap_ent a, tok_heap_ent b) {
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

static int heap_push(tok_work *w, size_t *n, tok_heap_ent e) {
    if (*n == w->heap_cap) {
        size_t cap = w->heap_cap ? w->heap_cap * 2 : 256;
        tok_heap_ent *h = realloc(w->heap, cap * sizeof *h);
        if (!h) return CPT_ENOMEM;
        w->heap = h;
        w->heap_cap = cap;
    }
    tok_heap_ent *h = w->heap;
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ent_less(e, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
    return 0;
}

static tok_heap_ent heap_pop(tok_work *w, size_t *n) {
    tok_heap_ent *h = w->heap, top = h[0], last = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && ent_less(h[c + 1], h[c])) c++;
        if (!ent_less(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

static int merge_word(const tok_bpe *m, tok_work *w, const char *s, size_t len, tok_ids *out) {
    size_t n = 0;
    int32_t unk = -1;
    uint32_t unk_len = 0;
    tok_buf *b = &w->norm; /* free at this stage: normalization is done */
    for (size_t i = 0; i < len;) {
        int cl = tok_utf8_len((unsigned char)s[i]);
        if ((size_t)cl > len - i) cl = (int)(len - i);
        int first = i == 0, last = i + (size_t)cl >= len;
        const char *piece = s + i;
        size_t plen = (size_t)cl;
        if ((!first && m->prefix) || (last && m->suffix)) {
            b->n = 0;
            if (!first && m->prefix && tok_buf_put(b, m->prefix, m->prefix_len)) return CPT_ENOMEM;
            if (tok_buf_put(b, s + i, (size_t)cl)) return CPT_ENOMEM;
            if (last && m->suffix && tok_buf_put(b, m->suffix, m->suffix_len)) return CPT_ENOMEM;
            piece = b->p;
            plen = b->n;
        }
        int32_t id = tok_smap_get(&m->vocab, piece, plen);
        if (id >= 0) {
            if (unk >= 0) {
                if (add_sym(w, &n, unk, unk_len)) return CPT_ENOMEM;
                unk = -1;
            }
            if (add_sym(w, &n, id, (uint32_t)cl)) return CPT_ENOMEM;
        } else {
            int done = 0;
            if (m->byte_fallback) {
                size_t k = 0;
                while (k < plen && m->byte_ids[(unsigned char)piece[k]] >= 0) k++;
                if (k == plen) {
                    /* HF pushes the byte tokens without flushing a pending unk first. */
                    for (k = 0; k < plen; k++)
                        if (add_sym(w, &n, m->byte_ids[(unsigned char)piece[k]], 1)) return CPT_ENOMEM;
                    done = 1;
                }
            }
            if (!done && m->unk_id >= 0) {
                if (unk >= 0 && m->fuse_unk) {
                    unk_len += (uint32_t)cl;
                } else {
                    if (unk >= 0 && add_sym(w, &n, unk, unk_len)) return CPT_ENOMEM;
                    unk = m->unk_id;
                    unk_len = (uint32_t)cl;
                }
            }
            /* No unk token and no byte fallback: HF drops the character silently. */
        }
        i += (size_t)cl;
    }
    if (unk >= 0 && add_sym(w, &n, unk, unk_len)) return CPT_ENOMEM;
    if (n == 0) return 0;
    w->sym[n - 1].next = -1;

    /* Word::merge_all: a heap of candidate merges; stale entries are recognised by
     * re-looking up the pair now at that position. */
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        uint32_t rank;
        int32_t nid;
        if (tok_pmap_get(&m->merges, (uint32_t)w->sym[i].id, (uint32_t)w->sym[i + 1].id, &rank, &nid) &&
            heap_push(w, &hn, (tok_heap_ent){rank, (uint32_t)i, nid}))
            return CPT_ENOMEM;
    }
    tok_sym *sy = w->sym;
    while (hn) {
        tok_heap_ent top = heap_pop(w, &hn);
        sy = w->sym;
        tok_sym *cur = &sy[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        int32_t nx = cur->next;
        uint32_t rank;
        int32_t nid;
        if (!tok_pmap_get(&m->merges, (uint32_t)cur->id, (uint32_t)sy[nx].id, &rank, &nid) ||
            nid != top.new_id)
            continue;
        cur->id = top.new_id;
        cur->len += sy[nx].len;
        cur->next = sy[nx].next;
        sy[nx].len = 0;
        if (cur->next >= 0) sy[cur->next].prev = (int32_t)top.pos;
        if (cur->prev >= 0 &&
            tok_pmap_get(&m->merges, (uint32_t)sy[cur->prev].id, (uint32_t)cur->id, &rank, &nid) &&
            heap_push(w, &hn, (tok_heap_ent){rank, (uint32_t)cur->prev, nid}))
            return CPT_ENOMEM;
        sy = w->sym;
        cur = &sy[top.pos];
        if (cur->next >= 0 &&
            tok_pmap_get(&m->merges, (uint32_t)cur->id, (uint32_t)sy[cur->next].id, &rank, &nid) &&
            heap_push(w, &hn, (tok_heap_ent){rank, top.pos, nid}))
            return CPT_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        if (w->sym[i].len && tok_ids_push(out, w->sym[i].id)) return CPT_ENOMEM;
    return 0;
}

int tok_cache_get(tok_work *w, const char *s, size_t len, tok_ids *out) {
    tok_cache *c = &w->cache;
    if (len > CACHE_MAX_WORD) return 0;
    int32_t r = tok_smap_get(&c->map, s, len);
    if (r < 0) return 0;
    for (uint32_t k = 0; k < c->runs[r].n; k++)
        if (tok_ids_push(out, c->ids.v[c->runs[r].off + k])) return CPT_ENOMEM;
    return 1;
}

int tok_cache_put(tok_work *w, const char *s, size_t len, const int32_t *ids, size_t n) {
    tok_cache *c = &w->cache;
    if (len > CACHE_MAX_WORD) return 0;
    if (c->n_runs >= CACHE_MAX_ENTRIES || c->ids.n + n >= CACHE_MAX_IDS) {
        tok_smap_free(&c->map);
        c->n_runs = 0;
        c->ids.n = 0;
    }
    if (c->n_runs == c->cap_runs) {
        size_t cap = c->cap_runs ? c->cap_runs * 2 : 1024;
        void *r = realloc(c->runs, cap * sizeof c->runs[0]);
        if (!r) return CPT_ENOMEM;
        c->runs = r;
        c->cap_runs = cap;
    }
    uint32_t off = (uint32_t)c->ids.n;
    for (size_t k = 0; k < n; k++)
        if (tok_ids_push(&c->ids, ids[k])) return CPT_ENOMEM;
    if (tok_smap_put(&c->map, s, len, (int32_t)c->n_runs)) return CPT_ENOMEM;
    c->runs[c->n_runs].off = off;
    c->runs[c->n_runs].n = (uint32_t)n;
    c->n_runs++;
    return 0;
}

int tok_bpe_encode(const tok_bpe *m, tok_work *w, const char *s, size_t len, tok_ids *out,
                   cpt_err *err) {
    if (len == 0) return 0;
    if (m->ignore_merges) {
        int32_t id = tok_smap_get(&m->vocab, s, len);
        if (id >= 0) {
            if (tok_ids_push(out, id)) goto oom;
            return 0;
        }
    }
    int hit = tok_cache_get(w, s, len, out);
    if (hit < 0) goto oom;
    if (hit) return 0;
    size_t before = out->n;
    if (merge_word(m, w, s, len, out)) goto oom;
    if (out->n > before && tok_cache_put(w, s, len, out->v + before, out->n - before)) goto oom;
    return 0;
oom:
    return cpt_err_set(err, CPT_ENOMEM, "tokenizer: out of memory in BPE");
}
