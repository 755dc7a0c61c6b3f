/* load_spm.c: reading a SentencePiece tokenizer.model (protobuf ModelProto) into a
 * cpt_tok, by hand. Not the encoder or decoder (spm.c).
 *
 * Format (sentencepiece_model.proto, proto2 wire format, little-endian):
 *   a message is a run of fields; each starts with a varint tag = field << 3 | wire
 *   type. Wire types: 0 varint (<= 10 bytes), 1 fixed 8 bytes, 2 varint length +
 *   that many bytes, 5 fixed 4 bytes; 3/4 (groups) and 6/7 are invalid here.
 *   ModelProto      1 pieces (repeated message), 2 trainer_spec, 3 normalizer_spec,
 *                   5 denormalizer_spec; others skipped.
 *   SentencePiece   1 piece (bytes), 2 score (float), 3 type (enum, default NORMAL=1).
 *   TrainerSpec     3 model_type (UNIGRAM=1 default, BPE=2, WORD=3, CHAR=4),
 *                   24 treat_whitespace_as_suffix, 35 byte_fallback, 44 unk_surface,
 *                   45..48 unk/bos/eos/pad piece names.
 *   NormalizerSpec  1 name, 2 precompiled_charsmap, 3 add_dummy_prefix (default 1),
 *                   4 remove_extra_whitespaces (default 1), 5 escape_whitespaces (1).
 *   precompiled_charsmap = u32 trie_size, Darts-clone double array (trie_size bytes of
 *   u32 units), then NUL-terminated replacement strings addressed by leaf values.
 * Every length and varint is checked against the bytes left before it is used; a
 * malformed file is CPT_EFORMAT naming the byte offset, never a crash.
 * Validation follows sentencepiece's ModelInterface::InitializePieces (non-empty,
 * unique pieces; exactly one UNKNOWN; BYTE pieces only with byte_fallback, then all
 * 256 of them). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "tok/tok_impl.h"

#define SPM_MAX_PIECES (1 << 24)

typedef struct pbr { /* a cursor over one message: bytes [pos, end) of the file */
    const uint8_t *b;
    size_t pos, end;
} pbr;

typedef struct ctx {
    const char *file;
    cpt_err *err;
} ctx;

static int bad(ctx *c, size_t off, const char *what) {
    return cpt_err_set(c->err, CPT_EFORMAT,
                       "%s: byte offset %zu: %s; HINT: the file is not a SentencePiece "
                       "tokenizer.model or is truncated/corrupt; re-download it",
                       c->file, off, what);
}
static int oom(ctx *c) { return cpt_err_set(c->err, CPT_ENOMEM, "%s: out of memory", c->file); }

static int rd_varint(ctx *c, pbr *r, uint64_t *v) {
    uint64_t x = 0;
    size_t start = r->pos;
    for (int i = 0; i < 10; i++) {
        if (r->pos >= r->end) return bad(c, start, "varint runs past the end of its message");
        uint8_t byte = r->b[r->pos++];
        if (i == 9 && byte > 1) return bad(c, start, "varint longer than 64 bits");
        x |= (uint64_t)(byte & 0x7F) << (7 * i);
        if (!(byte & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return bad(c, start, "varint longer than 10 bytes");
}

/* One field: *wt its wire type; varint/fixed values in *v; length-delimited
 * contents in *sub. Returns 1 (a field), 0 (end of message) or a negative status. */
static int rd_field(ctx *c, pbr *r, uint32_t *field, int *wt, uint64_t *v, pbr *sub, size_t *at) {
    if (r->pos >= r->end) return 0;
    *at = r->pos;
    uint64_t tag;
    int rc = rd_varint(c, r, &tag);
    if (rc) return rc;
    *wt = (int)(tag & 7);
    if ((tag >> 3) == 0 || (tag >> 3) > 0x1FFFFFFF) return bad(c, *at, "field number 0 or above 2^29-1");
    *field = (uint32_t)(tag >> 3);
    switch (*wt) {
    case 0: return rd_varint(c, r, v) ? CPT_EFORMAT : 1;
    case 1:
    case 5: {
        size_t k = *wt == 1 ? 8 : 4;
        if (r->end - r->pos < k) return bad(c, *at, "fixed-width value runs past the end of its message");
        uint64_t x = 0;
        for (size_t i = 0; i < k; i++) x |= (uint64_t)r->b[r->pos + i] << (8 * i);
        r->pos += k;
        *v = x;
        return 1;
    }
    case 2: {
        uint64_t n;
        if ((rc = rd_varint(c, r, &n))) return rc;
        if (n > r->end - r->pos) return bad(c, *at, "length-delimited field runs past the end of its message");
        sub->b = r->b;
        sub->pos = r->pos;
        sub->end = r->pos + (size_t)n;
        r->pos += (size_t)n;
        return 1;
    }
    default: return bad(c, *at, "unsupported wire type (group or invalid)");
    }
}

static int want_wt(ctx *c, size_t at, int wt, int want, const char *field) {
    if (wt == want) return 0;
    char m[160];
    snprintf(m, sizeof m, "%s has wire type %d, expected %d", field, wt, want);
    return bad(c, at, m);
}

typedef struct spec { /* what we keep of TrainerSpec / NormalizerSpec */
    int model_type, byte_fallback, ws_suffix;
    pbr unk_surface, bos, eos, pad, unk;
    int has_unk_surface;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
    pbr name, charsmap, denorm_charsmap;
} spec;

static int parse_trainer(ctx *c, pbr r, spec *s) {
    uint32_t f = 0;
    int wt = 0, rc;
    uint64_t v = 0;
    pbr sub = {0};
    size_t at = 0;
    while ((rc = rd_field(c, &r, &f, &wt, &v, &sub, &at)) == 1) {
        switch (f) {
        case 3: if ((rc = want_wt(c, at, wt, 0, "trainer_spec.model_type"))) return rc; s->model_type = (int)v; break;
        case 24: if ((rc = want_wt(c, at, wt, 0, "trainer_spec.treat_whitespace_as_suffix"))) return rc; s->ws_suffix = v != 0; break;
        case 35: if ((rc = want_wt(c, at, wt, 0, "trainer_spec.byte_fallback"))) return rc; s->byte_fallback = v != 0; break;
        case 44: if ((rc = want_wt(c, at, wt, 2, "trainer_spec.unk_surface"))) return rc; s->unk_surface = sub; s->has_unk_surface = 1; break;
        case 45: if ((rc = want_wt(c, at, wt, 2, "trainer_spec.unk_piece"))) return rc; s->unk = sub; break;
        case 46: if ((rc = want_wt(c, at, wt, 2, "trainer_spec.bos_piece"))) return rc; s->bos = sub; break;
        case 47: if ((rc = want_wt(c, at, wt, 2, "trainer_spec.eos_piece"))) return rc; s->eos = sub; break;
        case 48: if ((rc = want_wt(c, at, wt, 2, "trainer_spec.pad_piece"))) return rc; s->pad = sub; break;
        default: break;
        }
    }
    return rc;
}

static int parse_normalizer(ctx *c, pbr r, spec *s, int denorm) {
    uint32_t f = 0;
    int wt = 0, rc;
    uint64_t v = 0;
    pbr sub = {0};
    size_t at = 0;
    while ((rc = rd_field(c, &r, &f, &wt, &v, &sub, &at)) == 1) {
        const char *nm = denorm ? "denormalizer_spec" : "normalizer_spec";
        if (denorm) {
            if (f == 2) {
                if ((rc = want_wt(c, at, wt, 2, nm))) return rc;
                s->denorm_charsmap = sub;
            }
            continue;
        }
        switch (f) {
        case 1: if ((rc = want_wt(c, at, wt, 2, "normalizer_spec.name"))) return rc; s->name = sub; break;
        case 2: if ((rc = want_wt(c, at, wt, 2, "normalizer_spec.precompiled_charsmap"))) return rc; s->charsmap = sub; break;
        case 3: if ((rc = want_wt(c, at, wt, 0, "normalizer_spec.add_dummy_prefix"))) return rc; s->add_dummy_prefix = v != 0; break;
        case 4: if ((rc = want_wt(c, at, wt, 0, "normalizer_spec.remove_extra_whitespaces"))) return rc; s->remove_extra_ws = v != 0; break;
        case 5: if ((rc = want_wt(c, at, wt, 0, "normalizer_spec.escape_whitespaces"))) return rc; s->escape_ws = v != 0; break;
        default: break;
        }
    }
    return rc;
}

/* ---- the precompiled charsmap -------------------------------------------------- */

/* Visit every unit reachable from the root once (Darts-clone shares suffix
 * subtrees, so the trie is a DAG; a crafted blob may even hold cycles), checking
 * that every leaf value addresses a NUL-terminated replacement. Unit indices need no
 * check here: the encoder bounds-checks each step. Returns 0, -1 (bad) or CPT_ENOMEM. */
static int trie_check(const tok_spm *m) {
    uint8_t *seen = calloc(m->trie_n, 1);
    uint32_t *stack = malloc(m->trie_n * sizeof *stack);
    int rc = 0;
    if (!seen || !stack) rc = CPT_ENOMEM;
    size_t sp = 0;
    if (!rc) {
        stack[sp++] = 0;
        seen[0] = 1;
    }
    while (sp && !rc) {
        uint32_t node = stack[--sp], base = node ^ tok_du_offset(m->trie[node]);
        /* Label 0 is skipped: an empty unit has label 0, and keys hold no NUL byte. */
        for (uint32_t ch = 1; ch < 256 && !rc; ch++) {
            uint32_t pos = base ^ ch;
            if (pos >= m->trie_n || tok_du_label(m->trie[pos]) != ch) continue;
            uint32_t u = m->trie[pos];
            if (tok_du_has_leaf(u)) {
                uint32_t leaf = pos ^ tok_du_offset(u);
                uint32_t val = leaf < m->trie_n ? tok_du_value(m->trie[leaf]) : UINT32_MAX;
                if (val >= m->repl_n || !memchr(m->repl + val, 0, m->repl_n - val)) rc = -1;
            }
            if (!seen[pos]) {
                seen[pos] = 1;
                stack[sp++] = pos;
            }
        }
    }
    free(seen);
    free(stack);
    return rc;
}

static int load_charsmap(ctx *c, tok_spm *m, pbr cm) {
    size_t n = cm.end - cm.pos;
    const uint8_t *p = cm.b + cm.pos;
    if (n <= 4) return bad(c, cm.pos, "normalizer_spec.precompiled_charsmap is shorter than its header");
    uint32_t tn = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    if (tn >= n - 4 || tn % 4 || tn == 0)
        return bad(c, cm.pos, "normalizer_spec.precompiled_charsmap: trie size is 0, not a multiple of 4, or exceeds the blob");
    m->trie_n = tn / 4;
    m->repl_n = n - 4 - tn;
    m->trie = malloc(tn);
    m->repl = malloc(m->repl_n);
    if (!m->trie || !m->repl) return oom(c);
    for (size_t i = 0; i < m->trie_n; i++) {
        const uint8_t *q = p + 4 + 4 * i;
        m->trie[i] = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
    }
    memcpy(m->repl, p + 4 + tn, m->repl_n);
    int rc = trie_check(m);
    if (rc == CPT_ENOMEM) return oom(c);
    if (rc)
        return bad(c, cm.pos, "normalizer_spec.precompiled_charsmap: a trie leaf points outside the "
                              "replacement strings");
    return 0;
}

/* ---- pieces ---------------------------------------------------------------------- */

typedef struct acc { /* pieces as read, before the cpt_tok is built */
    pbr *str;
    float *score;
    uint8_t *type;
    size_t n, cap;
} acc;

static int parse_piece(ctx *c, pbr r, size_t idx, acc *a) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 1024;
        pbr *s = realloc(a->str, cap * sizeof *s);
        if (s) a->str = s;
        float *sc = realloc(a->score, cap * sizeof *sc);
        if (sc) a->score = sc;
        uint8_t *ty = realloc(a->type, cap);
        if (ty) a->type = ty;
        if (!s || !sc || !ty) return oom(c);
        a->cap = cap;
    }
    pbr str = {r.b, 0, 0};
    float score = 0;
    int type = SPM_NORMAL, has_str = 0;
    uint32_t f = 0;
    int wt = 0, rc;
    uint64_t v = 0;
    pbr sub = {0};
    size_t at = 0;
    while ((rc = rd_field(c, &r, &f, &wt, &v, &sub, &at)) == 1) {
        char nm[64];
        if (f == 1) {
            snprintf(nm, sizeof nm, "pieces[%zu].piece", idx);
            if ((rc = want_wt(c, at, wt, 2, nm))) return rc;
            str = sub;
            has_str = 1;
        } else if (f == 2) {
            snprintf(nm, sizeof nm, "pieces[%zu].score", idx);
            if ((rc = want_wt(c, at, wt, 5, nm))) return rc;
            uint32_t bits = (uint32_t)v;
            memcpy(&score, &bits, 4);
        } else if (f == 3) {
            snprintf(nm, sizeof nm, "pieces[%zu].type", idx);
            if ((rc = want_wt(c, at, wt, 0, nm))) return rc;
            if (v < SPM_NORMAL || v > SPM_BYTE) {
                snprintf(nm, sizeof nm, "pieces[%zu].type = %llu is not a known piece type (1..6)", idx,
                         (unsigned long long)v);
                return bad(c, at, nm);
            }
            type = (int)v;
        }
    }
    if (rc) return rc;
    if (!has_str || str.end == str.pos) {
        char nm[64];
        snprintf(nm, sizeof nm, "pieces[%zu] has an empty piece string", idx);
        return bad(c, r.pos, nm);
    }
    a->str[a->n] = str;
    a->score[a->n] = score;
    a->type[a->n] = (uint8_t)type;
    a->n++;
    return 0;
}

static int byte_of_piece(const char *s, size_t n) {
    /* sentencepiece's PieceToByte accepts exactly ByteToPiece's "<0x%02X>". */
    static const char hex[] = "0123456789ABCDEF";
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    const char *h = strchr(hex, s[3]), *l = strchr(hex, s[4]);
    if (!s[3] || !s[4] || !h || !l) return -1;
    return (int)((h - hex) * 16 + (l - hex));
}

static int32_t control_id(const cpt_tok *t, const pbr *p, const char *def) {
    const char *s = p->b ? (const char *)p->b + p->pos : def;
    size_t n = p->b ? p->end - p->pos : strlen(def);
    int32_t id = tok_smap_get(&t->bpe.vocab, s, n);
    /* As SentencePieceProcessor::bos_id(): the piece counts only if it is CONTROL. */
    return id >= 0 && t->spm->type[id] == SPM_CONTROL ? id : -1;
}

typedef struct ukey {
    unsigned char first;
    size_t len;
    int32_t id;
} ukey;
static int cmp_ukey(const void *pa, const void *pb) {
    const ukey *a = pa, *b = pb;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* 1 if mergeable piece bytes hold a non-U+2581 character directly followed by
 * U+2581: then a word boundary is not a merge barrier (see split_words). */
static int spans_boundary(const char *s, size_t n) {
    for (size_t i = 1; i + 3 <= n; i++)
        if (!memcmp(s + i, "\xE2\x96\x81", 3) && !(i >= 3 && !memcmp(s + i - 3, "\xE2\x96\x81", 3)))
            return 1;
    return 0;
}

static int build(ctx *c, cpt_tok *t, acc *a, spec *s) {
    tok_spm *m = t->spm;
    if (a->n == 0) return bad(c, 0, "the model has no pieces");
    if (a->n > SPM_MAX_PIECES) return bad(c, 0, "more than 2^24 pieces");
    m->n = (int32_t)a->n;
    m->score = a->score;
    m->type = a->type;
    a->score = NULL;
    a->type = NULL;
    m->unk_id = -1;
    for (int i = 0; i < 256; i++) m->byte_ids[i] = -1;
    t->n_ids = m->n;
    size_t n = (size_t)m->n + 1;
    t->piece_off = malloc(n * sizeof *t->piece_off);
    t->piece_len = calloc(n, sizeof *t->piece_len);
    t->is_special = calloc(n, 1);
    if (!t->piece_off || !t->piece_len || !t->is_special) return oom(c);
    size_t n_user = 0;
    m->split_words = 1;
    for (int32_t i = 0; i < m->n; i++) {
        const char *p = (const char *)a->str[i].b + a->str[i].pos;
        size_t len = a->str[i].end - a->str[i].pos;
        char what[256];
        if (tok_smap_get(&t->bpe.vocab, p, len) >= 0) {
            snprintf(what, sizeof what, "pieces[%d] \"%.*s\" is already defined", i,
                     (int)(len > 100 ? 100 : len), p);
            return bad(c, a->str[i].pos, what);
        }
        if (tok_smap_put(&t->bpe.vocab, p, len, i)) return oom(c);
        t->piece_off[i] = t->pieces.n;
        t->piece_len[i] = (uint32_t)len;
        if (tok_buf_put(&t->pieces, p, len) || tok_buf_put(&t->pieces, "", 1)) return oom(c);
        int ty = m->type[i];
        t->is_special[i] = ty == SPM_CONTROL;
        if (ty == SPM_UNKNOWN) {
            if (m->unk_id >= 0) return bad(c, a->str[i].pos, "a second UNKNOWN piece (unk is already defined)");
            m->unk_id = i;
        } else if (ty == SPM_BYTE) {
            int b = byte_of_piece(p, len);
            if (!s->byte_fallback) return bad(c, a->str[i].pos, "a BYTE piece although trainer_spec.byte_fallback is false");
            if (b < 0) return bad(c, a->str[i].pos, "a BYTE piece that is not <0xNN> (uppercase hex)");
            m->byte_ids[b] = i;
        } else if (ty == SPM_USER_DEFINED) {
            n_user++;
        }
        if ((ty == SPM_NORMAL || ty == SPM_UNUSED || ty == SPM_USER_DEFINED) && spans_boundary(p, len))
            m->split_words = 0;
    }
    if (m->unk_id < 0) return bad(c, 0, "no UNKNOWN piece (unk is not defined)");
    if (s->byte_fallback)
        for (int b = 0; b < 256; b++)
            if (m->byte_ids[b] < 0) return bad(c, 0, "byte_fallback is true but not all 256 <0xNN> pieces exist");
    int32_t ws = tok_smap_get(&t->bpe.vocab, "\xE2\x96\x81", 3);
    if (ws < 0 || m->type[ws] != SPM_NORMAL) m->split_words = 0;
    /* user-defined symbols, longest first per first byte */
    ukey *keys = calloc(n_user + 1, sizeof *keys);
    m->user = calloc(n_user + 1, sizeof *m->user);
    if (!keys || !m->user) {
        free(keys);
        return oom(c);
    }
    size_t k = 0;
    for (int32_t i = 0; i < m->n; i++)
        if (m->type[i] == SPM_USER_DEFINED)
            keys[k++] = (ukey){(unsigned char)t->pieces.p[t->piece_off[i]], t->piece_len[i], i};
    qsort(keys, n_user, sizeof *keys, cmp_ukey);
    for (size_t i = 0; i < n_user; i++) m->user[i] = keys[i].id;
    size_t j = 0;
    for (int b = 0; b <= 256; b++) {
        while (j < n_user && keys[j].first < b) j++;
        m->user_first[b] = (uint32_t)j;
    }
    m->user_first[256] = (uint32_t)n_user;
    free(keys);
    /* decode surface of the unk piece; sentencepiece's default is " \u2047 " */
    const char *us = s->has_unk_surface ? (const char *)s->unk_surface.b + s->unk_surface.pos : " \xE2\x81\x87 ";
    size_t ul = s->has_unk_surface ? s->unk_surface.end - s->unk_surface.pos : 5;
    if (!(m->unk_surface = malloc(ul + 1))) return oom(c);
    memcpy(m->unk_surface, us, ul);
    m->unk_surface[ul] = '\0';
    m->unk_surface_len = ul;
    t->bos = control_id(t, &s->bos, "<s>");
    t->eos = control_id(t, &s->eos, "</s>");
    t->pad = control_id(t, &s->pad, "<pad>");
    t->unk = m->unk_id;
    return 0;
}

/* First line is [A-Za-z0-9+/=]+ SPACE [0-9]+ NEWLINE. */
static int looks_like_tiktoken(const char *b, size_t n) {
    size_t i = 0;
    while (i < n && (isalnum((unsigned char)b[i]) || b[i] == '+' || b[i] == '/' || b[i] == '=')) i++;
    if (i == 0 || i >= n || b[i++] != ' ') return 0;
    size_t d = i;
    while (i < n && isdigit((unsigned char)b[i])) i++;
    return i > d && i < n && b[i] == '\n';
}

int tok_load_spm(cpt_tok *t, const char *file, cpt_err *err) {
    ctx c = {file, err};
    char *buf = NULL;
    size_t size = 0;
    int rc = cpt_read_file(file, &buf, &size, err);
    if (rc) return rc;
    if (!(t->spm = calloc(1, sizeof *t->spm))) {
        free(buf);
        return oom(&c);
    }
    /* A tiktoken rank file (Llama 3's tokenizer.model) is base64 text, not protobuf. */
    if (looks_like_tiktoken(buf, size)) {
        free(buf);
        return cpt_err_set(err, CPT_EUNSUPPORTED,
                           "%s: this is a tiktoken rank file (\"base64-token rank\" per line), not a "
                           "SentencePiece model; HINT: load the model's tokenizer.json instead",
                           file);
    }
    spec s = {0};
    s.model_type = 1; /* proto default: UNIGRAM */
    s.add_dummy_prefix = s.remove_extra_ws = s.escape_ws = 1;
    acc a = {0};
    pbr r = {(const uint8_t *)buf, 0, size}, sub = {0};
    uint32_t f = 0;
    int wt = 0;
    uint64_t v = 0;
    size_t at = 0;
    while ((rc = rd_field(&c, &r, &f, &wt, &v, &sub, &at)) == 1) {
        if (f == 1) {
            if ((rc = want_wt(&c, at, wt, 2, "pieces")) || (rc = parse_piece(&c, sub, a.n, &a))) break;
            if (a.n > SPM_MAX_PIECES) {
                rc = bad(&c, at, "more than 2^24 pieces");
                break;
            }
        } else if (f == 2) {
            if ((rc = want_wt(&c, at, wt, 2, "trainer_spec")) || (rc = parse_trainer(&c, sub, &s))) break;
        } else if (f == 3 || f == 5) {
            if ((rc = want_wt(&c, at, wt, 2, f == 3 ? "normalizer_spec" : "denormalizer_spec")) ||
                (rc = parse_normalizer(&c, sub, &s, f == 5)))
                break;
        }
    }
    if (rc) goto done;
    static const char *types[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
    if (s.model_type != 2) {
        rc = cpt_err_set(err, CPT_EUNSUPPORTED,
                         "%s: trainer_spec.model_type = %s: only BPE SentencePiece models are "
                         "supported; HINT: use the model's tokenizer.json (HF tokenizers) instead",
                         file, s.model_type >= 1 && s.model_type <= 4 ? types[s.model_type] : "unknown");
        goto done;
    }
    if (s.ws_suffix) {
        rc = cpt_err_set(err, CPT_EUNSUPPORTED,
                         "%s: trainer_spec.treat_whitespace_as_suffix = true is not supported; "
                         "HINT: use the model's tokenizer.json instead",
                         file);
        goto done;
    }
    if (s.denorm_charsmap.b && s.denorm_charsmap.end > s.denorm_charsmap.pos) {
        rc = cpt_err_set(err, CPT_EUNSUPPORTED,
                         "%s: denormalizer_spec.precompiled_charsmap: decode-time denormalization "
                         "is not supported; HINT: use the model's tokenizer.json instead",
                         file);
        goto done;
    }
    size_t nlen = s.name.b ? s.name.end - s.name.pos : 0;
    const char *name = nlen ? (const char *)s.name.b + s.name.pos : "identity";
    if (s.charsmap.b && s.charsmap.end > s.charsmap.pos) {
        if ((rc = load_charsmap(&c, t->spm, s.charsmap))) goto done;
    } else if (nlen && !(nlen == 8 && !memcmp(name, "identity", 8))) {
        rc = cpt_err_set(err, CPT_EUNSUPPORTED,
                         "%s: normalizer_spec.name = \"%.*s\" without a precompiled_charsmap: cpt "
                         "implements \"identity\" and rules shipped as a precompiled charsmap "
                         "(nmt_nfkc, nfkc, ...); HINT: re-export the model with sentencepiece, which "
                         "embeds the charsmap",
                         file, (int)(nlen > 64 ? 64 : nlen), name);
        goto done;
    }
    t->spm->byte_fallback = s.byte_fallback;
    t->spm->add_dummy_prefix = s.add_dummy_prefix;
    t->spm->remove_extra_ws = s.remove_extra_ws;
    t->spm->escape_ws = s.escape_ws;
    rc = build(&c, t, &a, &s);
done:
    free(a.str);
    free(a.score);
    free(a.type);
    free(buf);
    return rc;
}

void tok_spm_free(tok_spm *m) {
    if (!m) return;
    free(m->score);
    free(m->type);
    free(m->user);
    free(m->trie);
    free(m->repl);
    free(m->unk_surface);
}
