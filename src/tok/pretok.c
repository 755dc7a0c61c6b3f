/* pretok.c: pre-tokenizers (ByteLevel, Split, Metaspace, Sequence) and the GPT-2
 * byte <-> unicode alphabet. Not the regex engine (regex.c) nor the model (bpe.c). */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_impl.h"

/* GPT-2's bytes_to_unicode(): printable bytes map to themselves, the other 68
 * (0x00-0x20, 0x7F-0xA0, 0xAD) to U+0100.. in byte order, so BPE never sees
 * whitespace or control characters. */
static uint16_t bl_cp(int b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
        return (uint16_t)b;
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) n++;
    return (uint16_t)(256 + n);
}
static uint16_t b2c[256];
static int16_t c2b[324];
static char b2u[256][2];
static uint8_t b2u_len[256];
static int bl_ready;

static void bl_init(void) {
    if (__atomic_load_n(&bl_ready, __ATOMIC_ACQUIRE)) return;
    /* Idempotent: racing threads write identical values. */
    for (int i = 0; i < 324; i++) c2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        uint16_t c = bl_cp(b);
        b2c[b] = c;
        c2b[c] = (int16_t)b;
        char u[4];
        int n = tok_utf8_put(c, u);
        b2u[b][0] = u[0];
        b2u[b][1] = n > 1 ? u[1] : 0;
        b2u_len[b] = (uint8_t)n;
    }
    __atomic_store_n(&bl_ready, 1, __ATOMIC_RELEASE);
}

int tok_cp_to_byte(uint32_t cp) {
    bl_init();
    return cp < 324 ? c2b[cp] : -1;
}

/* Map the bytes of s into the byte-level alphabet, appending to b. */
static int bl_map(const char *s, size_t len, tok_buf *b) {
    if (tok_buf_reserve(b, 2 * len)) return CPT_ENOMEM;
    char *o = b->p + b->n;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        *o++ = b2u[c][0];
        if (b2u_len[c] == 2) *o++ = b2u[c][1];
    }
    b->n = (size_t)(o - b->p);
    return 0;
}

static int apply_one(const tok_pretok *p, tok_work *w, const char *s, size_t len, int at_start,
                     tok_list *out, cpt_err *err);

/* Run a pre-tokenizer over a whole list. `in` and `out` are distinct. */
int tok_pretok_apply(const tok_pretok *p, tok_work *w, tok_list *in, tok_list *out,
                     cpt_err *err) {
    tok_list_clear(out);
    if (p->kind == TP_SEQUENCE) {
        /* Ping-pong between out and a scratch list; the final stage writes out. */
        if (p->n_kids == 0) {
            for (size_t i = 0; i < in->n; i++) {
                tok_span *sp = &in->v[i];
                if (tok_list_push(out, in->text.p + sp->off, sp->len, sp->id, sp->at_start))
                    return cpt_err_set(err, CPT_ENOMEM, "tokenizer: out of memory");
            }
            return 0;
        }
        tok_list tmp[2];
        memset(tmp, 0, sizeof tmp);
        tok_list *src = in;
        int rc = 0;
        for (size_t k = 0; k < p->n_kids && !rc; k++) {
            tok_list *dst = k + 1 == p->n_kids ? out : &tmp[k & 1];
            rc = tok_pretok_apply(&p->kids[k], w, src, dst, err);
            src = dst;
        }
        tok_list_free(&tmp[0]);
        tok_list_free(&tmp[1]);
        return rc;
    }
    for (size_t i = 0; i < in->n; i++) {
        tok_span sp = in->v[i];
        int rc;
        if (sp.id >= 0) {
            rc = tok_list_push(out, in->text.p + sp.off, sp.len, sp.id, sp.at_start);
            if (rc) return cpt_err_set(err, CPT_ENOMEM, "tokenizer: out of memory");
            continue;
        }
        if ((rc = apply_one(p, w, in->text.p + sp.off, sp.len, sp.at_start, out, err))) return rc;
    }
    return 0;
}

static int apply_one(const tok_pretok *p, tok_work *w, const char *s, size_t len, int at_start,
                     tok_list *out, cpt_err *err) {
    int rc;
    switch (p->kind) {
    case TP_SPLIT: return tok_split(&p->pat, p->behavior, p->invert, w, s, len, at_start, out, err);
    case TP_BYTELEVEL: {
        bl_init();
        const char *src = s;
        size_t n = len;
        tok_buf *pre = &w->tmp;
        if (p->add_prefix_space && !(len > 0 && s[0] == ' ')) {
            pre->n = 0;
            if (tok_buf_put(pre, " ", 1) || tok_buf_put(pre, s, len)) goto oom;
            src = pre->p;
            n = pre->n;
        }
        size_t first = out->n;
        if (p->use_regex) {
            if ((rc = tok_split(&p->pat, TOK_SPLIT_ISOLATED, 0, w, src, n, at_start, out, err)))
                return rc;
        } else if (n) {
            if (tok_list_push(out, src, n, -1, at_start)) goto oom;
        }
        /* Remap the pieces just added, in place at the end of the arena. */
        for (size_t i = first; i < out->n; i++) {
            size_t off = out->text.n;
            /* The arena may move while growing: copy through an index, not a pointer. */
            if (tok_buf_reserve(&out->text, 2 * out->v[i].len)) goto oom;
            if (bl_map(out->text.p + out->v[i].off, out->v[i].len, &out->text)) goto oom;
            out->v[i].off = off;
            out->v[i].len = out->text.n - off;
        }
        return 0;
    }
    case TP_METASPACE: {
        tok_buf *b = &w->tmp;
        b->n = 0;
        int need_prefix = p->prepend_scheme == TOK_PREPEND_ALWAYS ||
                          (p->prepend_scheme == TOK_PREPEND_FIRST && at_start);
        /* HF replaces spaces first, then prepends unless it already starts with the
         * replacement (which it does when the text started with a space). */
        for (size_t i = 0; i < len; i++) {
            if (s[i] == ' ') {
                if (tok_buf_put(b, p->repl, p->repl_len)) goto oom;
            } else if (tok_buf_put(b, s + i, 1)) goto oom;
        }
        if (need_prefix && !(b->n >= p->repl_len && !memcmp(b->p, p->repl, p->repl_len))) {
            if (tok_buf_reserve(b, p->repl_len)) goto oom;
            memmove(b->p + p->repl_len, b->p, b->n);
            memcpy(b->p, p->repl, p->repl_len);
            b->n += p->repl_len;
        }
        if (p->split) {
            tok_pattern lit = {NULL, (char *)p->repl, p->repl_len};
            /* b is w->tmp; tok_split with a literal pattern does not touch w->tmp. */
            return tok_split(&lit, TOK_SPLIT_MERGED_NEXT, 0, w, b->p, b->n, at_start, out, err);
        }
        if (b->n && tok_list_push(out, b->p, b->n, -1, at_start)) goto oom;
        return 0;
    }
    default: break;
    }
    return cpt_err_set(err, CPT_EINVAL, "tokenizer: bad pre-tokenizer kind %d", p->kind);
oom:
    return cpt_err_set(err, CPT_ENOMEM, "tokenizer: out of memory in pre-tokenizer");
}

void tok_pretok_free(tok_pretok *p) {
    if (!p) return;
    tok_regex_free(p->pat.re);
    free(p->pat.lit);
    for (size_t i = 0; i < p->n_kids; i++) tok_pretok_free(&p->kids[i]);
    free(p->kids);
}
