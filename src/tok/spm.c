/* spm.c: SentencePiece BPE encoding and decoding, step for step as sentencepiece
 * 0.2 does it (normalizer.cc Normalize, bpe_model.cc Encode, the unknown/byte
 * handling of SentencePieceProcessor::Encode and its Decode). Not the loader
 * (load_spm.c).
 *
 * Differences from the library, on purpose: invalid UTF-8 is replaced before
 * normalization by the module-wide rule (maximal subpart, see tokenizer.h), where
 * sentencepiece gives every bad byte its own U+FFFD; and out-of-range ids are skipped
 * when decoding instead of failing. */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_impl.h"

static const char WS[] = "\xE2\x96\x81"; /* U+2581, sentencepiece's kSpaceSymbol */

static inline const char *piece_of(const cpt_tok *t, int32_t id) { return t->pieces.p + t->piece_off[id]; }

/* Longest user-defined symbol at s (sentencepiece's PrefixMatcher), 0 if none. */
static size_t user_match(const cpt_tok *t, const char *s, size_t len) {
    const tok_spm *m = t->spm;
    unsigned char b = (unsigned char)s[0];
    for (uint32_t k = m->user_first[b]; k < m->user_first[b + 1]; k++) {
        int32_t id = m->user[k];
        size_t n = t->piece_len[id];
        if (n <= len && !memcmp(s, piece_of(t, id), n)) return n;
    }
    return 0;
}

/* Longest charsmap rule at s: its length (0 if none) and replacement offset. */
static size_t trie_longest(const tok_spm *m, const char *s, size_t len, uint32_t *val) {
    uint32_t node = tok_du_offset(m->trie[0]);
    size_t best = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        node ^= c;
        if (node >= m->trie_n) break;
        uint32_t u = m->trie[node];
        if (tok_du_label(u) != c) break;
        node ^= tok_du_offset(u);
        if (node >= m->trie_n) break;
        if (tok_du_has_leaf(u)) {
            best = i + 1;
            *val = tok_du_value(m->trie[node]);
        }
    }
    return best;
}

/* Normalizer::NormalizePrefix on valid UTF-8: bytes consumed; the output in (*r, *rn). */
static size_t norm_prefix(const cpt_tok *t, const char *s, size_t len, const char **r, size_t *rn) {
    const tok_spm *m = t->spm;
    size_t u = user_match(t, s, len);
    if (u) {
        *r = s;
        *rn = u;
        return u;
    }
    if (m->trie) {
        uint32_t val = 0;
        size_t k = trie_longest(m, s, len, &val);
        if (k && val < m->repl_n) { /* the loader checked val and a NUL after it */
            *r = m->repl + val;
            *rn = strnlen(m->repl + val, m->repl_n - val);
            return k;
        }
    }
    size_t k = (size_t)tok_utf8_len((unsigned char)s[0]);
    if (k > len) k = len;
    *r = s;
    *rn = k;
    return k;
}

/* Normalizer::Normalize (without the offsets map). */
static int normalize(const cpt_tok *t, const char *s, size_t len, tok_buf *out) {
    const tok_spm *m = t->spm;
    const char *r;
    size_t rn, pos = 0;
    out->n = 0;
    if (m->remove_extra_ws) { /* leading spaces */
        while (pos < len) {
            size_t k = norm_prefix(t, s + pos, len - pos, &r, &rn);
            if (!(rn == 1 && r[0] == ' ')) break;
            pos += k;
        }
    }
    if (pos == len) return 0;
    if (m->add_dummy_prefix && tok_buf_put(out, m->escape_ws ? WS : " ", m->escape_ws ? 3 : 1)) return CPT_ENOMEM;
    int prev_space = m->remove_extra_ws;
    while (pos < len) {
        size_t k = norm_prefix(t, s + pos, len - pos, &r, &rn);
        while (prev_space && rn && r[0] == ' ') r++, rn--;
        if (rn) {
            if (tok_buf_reserve(out, 3 * rn)) return CPT_ENOMEM;
            for (size_t i = 0; i < rn; i++) {
                if (m->escape_ws && r[i] == ' ') {
                    memcpy(out->p + out->n, WS, 3);
                    out->n += 3;
                } else {
                    out->p[out->n++] = r[i];
                }
            }
            prev_space = r[rn - 1] == ' ';
        }
        pos += k;
        if (!m->remove_extra_ws) prev_space = 0;
    }
    if (m->remove_extra_ws) { /* trailing spaces */
        size_t sl = m->escape_ws ? 3 : 1;
        const char *sp = m->escape_ws ? WS : " ";
        while (out->n >= sl && !memcmp(out->p + out->n - sl, sp, sl)) out->n -= sl;
    }
    return 0;
}

/* ---- bpe_model.cc Encode --------------------------------------------------------- */

typedef struct rev_ent { /* a merge that produced an UNUSED piece, for resegmenting */
    uint32_t off, len, left_len; /* the piece, and where its left part ends */
} rev_ent;

typedef struct seg {
    const cpt_tok *t;
    tok_work *w;
    const char *s;
    size_t hn;
    rev_ent *rev;
    size_t n_rev, cap_rev;
    int prev_unk;
    tok_ids *out;
} seg;

static inline int heap_before(tok_sheap a, tok_sheap b) { /* a pops before b */
    return a.score > b.score || (a.score == b.score && a.left < b.left);
}

static int heap_push(seg *g, tok_sheap e) {
    tok_work *w = g->w;
    if (g->hn == w->sheap_cap) {
        size_t cap = w->sheap_cap ? w->sheap_cap * 2 : 256;
        tok_sheap *h = realloc(w->sheap, cap * sizeof *h);
        if (!h) return CPT_ENOMEM;
        w->sheap = h;
        w->sheap_cap = cap;
    }
    tok_sheap *h = w->sheap;
    size_t i = g->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_before(e, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
    return 0;
}

static tok_sheap heap_pop(seg *g) {
    tok_sheap *h = g->w->sheap, top = h[0], last = h[--g->hn];
    size_t i = 0, m = g->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && heap_before(h[c + 1], h[c])) c++;
        if (!heap_before(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

static inline int mergeable(int type) {
    return type == SPM_NORMAL || type == SPM_USER_DEFINED || type == SPM_UNUSED;
}

/* MaybeAddNewSymbolPair */
static int maybe_add(seg *g, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return 0;
    tok_ssym *sy = g->w->ssym;
    if (sy[l].freeze || sy[r].freeze) return 0;
    uint32_t size = sy[l].len + sy[r].len;
    int32_t id = tok_smap_get(&g->t->bpe.vocab, g->s + sy[l].off, size);
    if (id < 0 || !mergeable(g->t->spm->type[id])) return 0;
    if (heap_push(g, (tok_sheap){g->t->spm->score[id], l, r, size})) return CPT_ENOMEM;
    if (g->t->spm->type[id] == SPM_UNUSED) {
        if (g->n_rev == g->cap_rev) {
            size_t cap = g->cap_rev ? g->cap_rev * 2 : 16;
            rev_ent *v = realloc(g->rev, cap * sizeof *v);
            if (!v) return CPT_ENOMEM;
            g->rev = v;
            g->cap_rev = cap;
        }
        g->rev[g->n_rev++] = (rev_ent){sy[l].off, size, sy[l].len};
    }
    return 0;
}

/* The unknown / byte-fallback / control handling of SentencePieceProcessor::Encode
 * for one output piece. */
static int emit(seg *g, uint32_t off, uint32_t len, int32_t id) {
    const tok_spm *m = g->t->spm;
    int is_unk = id == m->unk_id;
    int rc = 0;
    if (m->type[id] == SPM_CONTROL) {
        rc = tok_ids_push(g->out, id);
    } else if (is_unk && m->byte_fallback) {
        for (uint32_t i = 0; i < len && !rc; i++) rc = tok_ids_push(g->out, m->byte_ids[(unsigned char)g->s[off + i]]);
    } else if (!(is_unk && g->prev_unk)) { /* a run of unknowns is one unk */
        rc = tok_ids_push(g->out, id);
    }
    g->prev_unk = is_unk;
    return rc;
}

/* PieceToId, then the resegmentation of UNUSED pieces into the pair that made them
 * (the last such pair recorded for the same string, as the library's map keeps). */
static int resegment(seg *g, uint32_t off, uint32_t len, int depth) {
    const cpt_tok *t = g->t;
    int32_t id = tok_smap_get(&t->bpe.vocab, g->s + off, len);
    if (id < 0) id = t->spm->unk_id;
    if (t->spm->type[id] != SPM_UNUSED || depth > 64) return emit(g, off, len, id);
    for (size_t k = g->n_rev; k-- > 0;) {
        rev_ent e = g->rev[k];
        if (e.len == len && !memcmp(g->s + e.off, g->s + off, len)) {
            int rc = resegment(g, e.off, e.left_len, depth + 1);
            return rc ? rc : resegment(g, e.off + e.left_len, e.len - e.left_len, depth + 1);
        }
    }
    return emit(g, off, len, id);
}

static int bpe(seg *g, const char *s, size_t len) {
    tok_work *w = g->w;
    const cpt_tok *t = g->t;
    g->s = s;
    g->hn = 0;
    g->n_rev = 0;
    if (len == 0) return 0;
    if (len > UINT32_MAX / 2) return CPT_ENOMEM;
    if (w->ssym_cap < len) {
        tok_ssym *v = realloc(w->ssym, len * sizeof *v);
        if (!v) return CPT_ENOMEM;
        w->ssym = v;
        w->ssym_cap = len;
    }
    tok_ssym *sy = w->ssym;
    int32_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t k = user_match(t, s + i, len - i);
        int fz = k > 0;
        if (!k) {
            k = (size_t)tok_utf8_len((unsigned char)s[i]);
            if (k > len - i) k = len - i;
        }
        sy[n] = (tok_ssym){(uint32_t)i, (uint32_t)k, n - 1, n + 1, (uint8_t)fz};
        n++;
        i += k;
    }
    sy[n - 1].next = -1;
    int rc = 0;
    for (int32_t i = 1; i < n && !rc; i++) rc = maybe_add(g, i - 1, i);
    while (g->hn && !rc) {
        tok_sheap top = heap_pop(g);
        sy = w->ssym;
        tok_ssym *L = &sy[top.left], *R = &sy[top.right];
        if (!L->len || !R->len || L->len + R->len != top.size) continue; /* stale */
        L->len += R->len;
        L->next = R->next;
        if (R->next >= 0) sy[R->next].prev = top.left;
        R->len = 0;
        rc = maybe_add(g, L->prev, top.left);
        if (!rc) rc = maybe_add(g, top.left, w->ssym[top.left].next);
    }
    for (int32_t i = 0; i != -1 && !rc; i = w->ssym[i].next) rc = resegment(g, w->ssym[i].off, w->ssym[i].len, 0);
    return rc;
}

int tok_spm_encode(const cpt_tok *t, tok_work *w, const char *s, size_t len, tok_ids *out, cpt_err *err) {
    seg g = {t, w, NULL, 0, NULL, 0, 0, 0, out};
    int rc = normalize(t, s, len, &w->norm);
    const char *p = w->norm.p;
    size_t n = w->norm.n;
    if (!rc && !t->spm->split_words) {
        rc = bpe(&g, p, n);
    } else if (!rc) {
        /* No mergeable piece holds "x" + U+2581 (checked at load), so no merge crosses
         * the start of a U+2581 run and each word can be encoded, and cached, alone:
         * the heap order within a word is the same as within the whole text. */
        size_t a = 0;
        while (a < n && !rc) {
            size_t b = a + 1;
            while (b < n && !(b + 3 <= n && !memcmp(p + b, WS, 3) && !(b >= 3 && !memcmp(p + b - 3, WS, 3)))) b++;
            int hit = tok_cache_get(w, p + a, b - a, out);
            if (hit < 0) rc = hit;
            else if (!hit) {
                size_t before = out->n;
                g.prev_unk = 0;
                rc = bpe(&g, p + a, b - a);
                if (!rc && out->n > before) rc = tok_cache_put(w, p + a, b - a, out->v + before, out->n - before);
            }
            a = b;
        }
    }
    free(g.rev);
    if (rc) return cpt_err_set(err, CPT_ENOMEM, "tokenizer: out of memory encoding a %zu-byte text", len);
    return 0;
}

/* ---- decoding --------------------------------------------------------------------- */

/* Length of the valid UTF-8 character at s, or 0 (sentencepiece's DecodeUTF8). */
static size_t valid_char(const unsigned char *s, size_t n) {
    if (s[0] < 0x80) return 1;
    size_t k = s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;
    if (!k || k > n) return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (k == 3 && ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F))) return 0;
    if (k == 4 && ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))) return 0;
    return k;
}

/* ProcessBytePieces: each invalid byte is one U+FFFD. */
static int flush_bytes(tok_buf *bytes, tok_buf *out) {
    const unsigned char *b = (const unsigned char *)bytes->p;
    for (size_t i = 0; i < bytes->n;) {
        size_t k = valid_char(b + i, bytes->n - i);
        if (k) {
            if (tok_buf_put(out, b + i, k)) return CPT_ENOMEM;
            i += k;
        } else {
            if (tok_buf_put(out, "\xEF\xBF\xBD", 3)) return CPT_ENOMEM;
            i++;
        }
    }
    bytes->n = 0;
    return 0;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : 0;
}

int tok_spm_decode(const cpt_tok *t, const int32_t *ids, size_t n, int skip_special, tok_buf *out) {
    const tok_spm *m = t->spm;
    tok_buf bytes = {0};
    int rc = 0;
    /* bos_ws: may this piece still lose a leading U+2581 (the dummy prefix)? Only
     * until text has been produced or one piece has lost it, as sentencepiece. */
    int bos_ws = 1, seen = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= m->n) continue;
        if (skip_special && t->is_special[id]) continue;
        const char *p = piece_of(t, id);
        size_t len = t->piece_len[id];
        int ty = m->type[id];
        if (ty == SPM_BYTE) { /* the loader checked the <0xNN> form */
            unsigned char b = (unsigned char)(hexval(p[3]) * 16 + hexval(p[4]));
            rc = tok_buf_put(&bytes, &b, 1);
            continue;
        }
        if ((rc = flush_bytes(&bytes, out))) break;
        if (seen || out->n) bos_ws = 0;
        seen = 0;
        if (ty == SPM_CONTROL) continue; /* invisible */
        if (ty == SPM_UNKNOWN) {
            rc = tok_buf_put(out, m->unk_surface, m->unk_surface_len);
            continue;
        }
        if (bos_ws && (m->add_dummy_prefix || m->remove_extra_ws) && len >= 3 && !memcmp(p, WS, 3)) {
            p += 3, len -= 3;
            seen = !m->remove_extra_ws; /* with remove_extra_ws every leading one goes */
        }
        for (size_t k = 0; k < len && !rc;) {
            if (k + 3 <= len && !memcmp(p + k, WS, 3)) {
                rc = tok_buf_put(out, " ", 1);
                k += 3;
            } else {
                rc = tok_buf_put(out, p + k, 1);
                k++;
            }
        }
    }
    if (!rc) rc = flush_bytes(&bytes, out);
    tok_buf_free(&bytes);
    return rc;
}
