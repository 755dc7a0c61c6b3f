/* normalize.c: HF normalizers (NFC/NFD/NFKC/NFKD via utf8proc, Lowercase, Strip,
 * Prepend, Replace, Sequence). Input and output are valid UTF-8. Not the added-token
 * matching that runs around normalization (added.c). */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_impl.h"

#ifdef CPT_HAVE_UTF8PROC
#include <utf8proc.h>
#endif

static int unicode_form(int kind, const char *s, size_t len, tok_buf *out, cpt_err *err) {
#ifdef CPT_HAVE_UTF8PROC
    if (len == 0) return 0;
    int opt = UTF8PROC_STABLE;
    if (kind == TN_NFC || kind == TN_NFKC) opt |= UTF8PROC_COMPOSE;
    else opt |= UTF8PROC_DECOMPOSE;
    if (kind == TN_NFKC || kind == TN_NFKD) opt |= UTF8PROC_COMPAT;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &dst,
                                      (utf8proc_option_t)opt);
    if (n < 0) {
        free(dst);
        return cpt_err_set(err, n == UTF8PROC_ERROR_NOMEM ? CPT_ENOMEM : CPT_EINVAL,
                           "tokenizer: Unicode normalization failed: %s",
                           utf8proc_errmsg(n));
    }
    int rc = tok_buf_put(out, dst, (size_t)n);
    free(dst);
    return rc ? cpt_err_set(err, CPT_ENOMEM, "tokenizer: out of memory") : 0;
#else
    return cpt_err_set(err, CPT_EUNSUPPORTED,
                       "tokenizer: Unicode normalizers need utf8proc; HINT: install "
                       "libutf8proc-dev and rebuild");
#endif
}

static int lowercase(const char *s, size_t len, tok_buf *out) {
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += (size_t)tok_utf8_next(s + i, len - i, &cp);
        char u[4];
        if (cp == 0x130) { /* Rust's full mapping: I WITH DOT ABOVE -> i + U+0307 */
            if (tok_buf_put(out, "i\xCC\x87", 3)) return CPT_ENOMEM;
            continue;
        }
#ifdef CPT_HAVE_UTF8PROC
        cp = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
#else
        if (cp >= 'A' && cp <= 'Z') cp += 32;
#endif
        if (tok_buf_put(out, u, (size_t)tok_utf8_put(cp, u))) return CPT_ENOMEM;
    }
    return 0;
}

static int one(const tok_norm *n, tok_work *w, const char *s, size_t len, tok_buf *out,
               cpt_err *err) {
    switch (n->kind) {
    case TN_NFC:
    case TN_NFD:
    case TN_NFKC:
    case TN_NFKD: return unicode_form(n->kind, s, len, out, err);
    case TN_LOWERCASE: break;
    case TN_STRIP: {
        size_t a = 0, b = len;
        uint32_t cp;
        while (n->left && a < b) {
            int k = tok_utf8_next(s + a, b - a, &cp);
            if (!tok_is_ws(cp)) break;
            a += (size_t)k;
        }
        while (n->right && b > a) {
            size_t k = b - 1;
            while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
            tok_utf8_next(s + k, b - k, &cp);
            if (!tok_is_ws(cp)) break;
            b = k;
        }
        if (tok_buf_put(out, s + a, b - a)) goto oom;
        return 0;
    }
    case TN_PREPEND:
        if (len && tok_buf_put(out, n->content, n->content_len)) goto oom;
        if (tok_buf_put(out, s, len)) goto oom;
        return 0;
    case TN_REPLACE: {
        size_t pos = 0;
        while (pos <= len) {
            size_t ms = 0, me = 0;
            if (n->pat.re) {
                int rc = tok_regex_find(n->pat.re, w, s, len, pos, &ms, &me, err);
                if (rc < 0) return rc;
                if (!rc) break;
                if (me == ms) { /* empty match: replace nothing, step one character */
                    if (ms >= len) break;
                    size_t k = (size_t)tok_utf8_len((unsigned char)s[ms]);
                    if (tok_buf_put(out, s + pos, ms + k - pos)) goto oom;
                    pos = ms + k;
                    continue;
                }
            } else {
                if (!n->pat.lit_len) break;
                const char *f = NULL;
                for (size_t i = pos; i + n->pat.lit_len <= len; i++)
                    if (s[i] == n->pat.lit[0] && !memcmp(s + i, n->pat.lit, n->pat.lit_len)) {
                        f = s + i;
                        break;
                    }
                if (!f) break;
                ms = (size_t)(f - s);
                me = ms + n->pat.lit_len;
            }
            if (tok_buf_put(out, s + pos, ms - pos) || tok_buf_put(out, n->content, n->content_len))
                goto oom;
            pos = me;
        }
        if (pos < len && tok_buf_put(out, s + pos, len - pos)) goto oom;
        return 0;
    }
    case TN_SEQUENCE: {
        tok_buf a = {0}, b = {0};
        const char *src = s;
        size_t slen = len;
        int rc = 0;
        for (size_t k = 0; k < n->n_kids && !rc; k++) {
            tok_buf *dst = (k & 1) ? &b : &a;
            dst->n = 0;
            rc = one(&n->kids[k], w, src, slen, dst, err);
            src = dst->p ? dst->p : "";
            slen = dst->n;
        }
        if (!rc && tok_buf_put(out, src, slen)) rc = cpt_err_set(err, CPT_ENOMEM, "tokenizer: out of memory");
        tok_buf_free(&a);
        tok_buf_free(&b);
        return rc;
    }
    default: return cpt_err_set(err, CPT_EINVAL, "tokenizer: bad normalizer kind %d", n->kind);
    }
    if (lowercase(s, len, out)) goto oom;
    return 0;
oom:
    return cpt_err_set(err, CPT_ENOMEM, "tokenizer: out of memory in normalizer");
}

int tok_norm_apply(const tok_norm *n, tok_work *w, const char *s, size_t len, tok_buf *out,
                   cpt_err *err) {
    out->n = 0;
    return one(n, w, s, len, out, err);
}

void tok_norm_free(tok_norm *n) {
    if (!n) return;
    free(n->content);
    tok_regex_free(n->pat.re);
    free(n->pat.lit);
    for (size_t i = 0; i < n->n_kids; i++) tok_norm_free(&n->kids[i]);
    free(n->kids);
}
