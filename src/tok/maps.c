/* maps.c: open-addressing hash maps for the vocabulary (string -> id) and the BPE
 * merge table ((id, id) -> rank, new id). Not thread-safe for writers; readers of a
 * finished map may run concurrently. */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_impl.h"

/* 8-bytes-at-a-time multiply-xorshift hash; keys are short token strings. */
uint64_t tok_hash(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (n * 0xC2B2AE3D27D4EB4FULL);
    while (n >= 8) {
        uint64_t k;
        memcpy(&k, s, 8);
        h = (h ^ tok_pmap_mix(k)) * 0xFF51AFD7ED558CCDULL;
        s += 8;
        n -= 8;
    }
    uint64_t k = 0;
    for (size_t i = 0; i < n; i++) k |= (uint64_t)s[i] << (8 * i);
    h = (h ^ tok_pmap_mix(k ^ 0x1234567ULL)) * 0xC4CEB9FE1A85EC53ULL;
    return tok_pmap_mix(h);
}

static int smap_grow(tok_smap *m) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return CPT_ENOMEM;
    for (size_t i = 0; i < m->n; i++) {
        size_t j = (size_t)m->e[i].hash & (cap - 1);
        while (slots[j]) j = (j + 1) & (cap - 1);
        slots[j] = (uint32_t)(i + 1);
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int32_t tok_smap_get(const tok_smap *m, const char *k, size_t len) {
    if (!m->cap) return -1;
    uint64_t h = tok_hash(k, len);
    size_t mask = m->cap - 1, j = (size_t)h & mask;
    for (;;) {
        uint32_t s = m->slots[j];
        if (!s) return -1;
        const tok_sment *e = &m->e[s - 1];
        if (e->hash == h && e->len == len && !memcmp(m->keys.p + e->off, k, len)) return e->val;
        j = (j + 1) & mask;
    }
}

int tok_smap_put(tok_smap *m, const char *k, size_t len, int32_t val) {
    if (len > UINT32_MAX) return CPT_EINVAL;
    if ((m->n + 1) * 2 > m->cap && smap_grow(m)) return CPT_ENOMEM;
    uint64_t h = tok_hash(k, len);
    size_t mask = m->cap - 1, j = (size_t)h & mask;
    for (;;) {
        uint32_t s = m->slots[j];
        if (!s) break;
        tok_sment *e = &m->e[s - 1];
        if (e->hash == h && e->len == len && !memcmp(m->keys.p + e->off, k, len)) {
            e->val = val;
            return 0;
        }
        j = (j + 1) & mask;
    }
    if (m->n == m->ecap) {
        size_t ecap = m->ecap ? m->ecap * 2 : 1024;
        void *e = realloc(m->e, ecap * sizeof m->e[0]);
        if (!e) return CPT_ENOMEM;
        m->e = e;
        m->ecap = ecap;
    }
    size_t off = m->keys.n;
    if (tok_buf_put(&m->keys, k, len)) return CPT_ENOMEM;
    m->e[m->n].off = off;
    m->e[m->n].len = (uint32_t)len;
    m->e[m->n].val = val;
    m->e[m->n].hash = h;
    m->n++;
    m->slots[j] = (uint32_t)m->n;
    return 0;
}

void tok_smap_free(tok_smap *m) {
    free(m->slots);
    free(m->e);
    tok_buf_free(&m->keys);
    memset(m, 0, sizeof *m);
}

static int pmap_grow(tok_pmap *m) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    uint64_t *keys = malloc(cap * sizeof *keys);
    uint32_t *rank = malloc(cap * sizeof *rank);
    int32_t *nid = malloc(cap * sizeof *nid);
    if (!keys || !rank || !nid) {
        free(keys);
        free(rank);
        free(nid);
        return CPT_ENOMEM;
    }
    memset(keys, 0xFF, cap * sizeof *keys);
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] == UINT64_MAX) continue;
        size_t j = (size_t)tok_pmap_mix(m->keys[i]) & (cap - 1);
        while (keys[j] != UINT64_MAX) j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        rank[j] = m->rank[i];
        nid[j] = m->new_id[i];
    }
    free(m->keys);
    free(m->rank);
    free(m->new_id);
    m->keys = keys;
    m->rank = rank;
    m->new_id = nid;
    m->cap = cap;
    return 0;
}

/* A repeated pair overwrites the earlier one: HF collects merges into a HashMap, so
 * the last occurrence wins. */
int tok_pmap_put(tok_pmap *m, uint32_t a, uint32_t b, uint32_t rank, int32_t new_id) {
    if ((m->n + 1) * 2 > m->cap && pmap_grow(m)) return CPT_ENOMEM;
    uint64_t k = ((uint64_t)a << 32) | b;
    size_t mask = m->cap - 1, j = (size_t)tok_pmap_mix(k) & mask;
    while (m->keys[j] != UINT64_MAX && m->keys[j] != k) j = (j + 1) & mask;
    if (m->keys[j] == UINT64_MAX) m->n++;
    m->keys[j] = k;
    m->rank[j] = rank;
    m->new_id[j] = new_id;
    return 0;
}

void tok_pmap_free(tok_pmap *m) {
    free(m->keys);
    free(m->rank);
    free(m->new_id);
    memset(m, 0, sizeof *m);
}
