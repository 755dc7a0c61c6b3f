/* decode.c: ids -> text through HF's decoder chain (ByteLevel, Replace, ByteFallback,
 * Fuse, Strip, Metaspace, Sequence). Not the encoder. */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_impl.h"

long tok_utf8_sanitize_into(const char *in, size_t len, tok_buf *out);

static int fuse(tok_list *in, tok_list *out) {
    size_t off = out->text.n;
    for (size_t i = 0; i < in->n; i++)
        if (tok_buf_put(&out->text, in->text.p + in->v[i].off, in->v[i].len)) return CPT_ENOMEM;
    return tok_list_push_span(out, off, out->text.n - off, -1, 0);
}

static int byte_token(const char *s, size_t n) {
    /* "<0xNN>" with hex digits of either case, as u8::from_str_radix accepts. */
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static int flush_bytes(tok_buf *bytes, tok_list *out, tok_buf *scratch) {
    if (!bytes->n) return 0;
    long r = tok_utf8_sanitize_into(bytes->p, bytes->n, scratch);
    if (r < 0) return CPT_ENOMEM;
    if (r == 0) {
        if (tok_list_push(out, bytes->p, bytes->n, -1, 0)) return CPT_ENOMEM;
    } else {
        /* HF: if the run is not valid UTF-8, every byte becomes one U+FFFD. */
        for (size_t i = 0; i < bytes->n; i++)
            if (tok_list_push(out, "\xEF\xBF\xBD", 3, -1, 0)) return CPT_ENOMEM;
    }
    bytes->n = 0;
    return 0;
}

static int dec_apply(const tok_dec *d, tok_list *in, tok_list *out) {
    tok_list_clear(out);
    int rc = 0;
    switch (d->kind) {
    case TD_BYTELEVEL: {
        tok_buf raw = {0}, clean = {0};
        for (size_t i = 0; i < in->n && !rc; i++) {
            const char *s = in->text.p + in->v[i].off;
            size_t n = in->v[i].len, start = raw.n, k = 0;
            while (k < n) {
                uint32_t cp;
                k += (size_t)tok_utf8_next(s + k, n - k, &cp);
                int b = tok_cp_to_byte(cp);
                if (b < 0) break;
                unsigned char ub = (unsigned char)b;
                if (tok_buf_put(&raw, &ub, 1)) { rc = CPT_ENOMEM; break; }
            }
            if (!rc && k < n) { /* a char outside the alphabet: keep the token's own bytes */
                raw.n = start;
                rc = tok_buf_put(&raw, s, n);
            }
        }
        if (!rc && tok_utf8_sanitize_into(raw.p ? raw.p : "", raw.n, &clean) < 0) rc = CPT_ENOMEM;
        if (!rc) rc = tok_list_push(out, clean.p, clean.n, -1, 0);
        tok_buf_free(&raw);
        tok_buf_free(&clean);
        return rc;
    }
    case TD_FUSE: return fuse(in, out);
    case TD_BYTEFALLBACK: {
        tok_buf bytes = {0}, scratch = {0};
        for (size_t i = 0; i < in->n && !rc; i++) {
            const char *s = in->text.p + in->v[i].off;
            int b = byte_token(s, in->v[i].len);
            if (b >= 0) {
                unsigned char ub = (unsigned char)b;
                rc = tok_buf_put(&bytes, &ub, 1);
            } else {
                rc = flush_bytes(&bytes, out, &scratch);
                if (!rc) rc = tok_list_push(out, s, in->v[i].len, -1, 0);
            }
        }
        if (!rc) rc = flush_bytes(&bytes, out, &scratch);
        tok_buf_free(&bytes);
        tok_buf_free(&scratch);
        return rc;
    }
    case TD_REPLACE:
    case TD_STRIP:
    case TD_METASPACE:
        for (size_t i = 0; i < in->n && !rc; i++) {
            const char *s = in->text.p + in->v[i].off;
            size_t n = in->v[i].len, off = out->text.n;
            if (d->kind == TD_REPLACE) {
                size_t k = 0;
                while (k < n && !rc) {
                    if (d->pat_len && k + d->pat_len <= n && !memcmp(s + k, d->pat, d->pat_len)) {
                        rc = tok_buf_put(&out->text, d->content, d->content_len);
                        k += d->pat_len;
                    } else {
                        rc = tok_buf_put(&out->text, s + k, 1);
                        k++;
                    }
                }
            } else if (d->kind == TD_METASPACE) {
                /* HF drops every replacement char of the first token (not only the
                 * leading one) unless prepend_scheme is "never". */
                size_t k = 0;
                while (k < n && !rc) {
                    if (k + d->repl_len <= n && !memcmp(s + k, d->repl, d->repl_len)) {
                        if (!(i == 0 && d->prepend_scheme != TOK_PREPEND_NEVER))
                            rc = tok_buf_put(&out->text, " ", 1);
                        k += d->repl_len;
                    } else {
                        rc = tok_buf_put(&out->text, s + k, 1);
                        k++;
                    }
                }
            } else { /* Strip: up to `start` leading and `stop` trailing strip_chars */
                size_t a = 0, b = n;
                uint32_t cp;
                for (size_t c = 0; c < d->start && a < b; c++) {
                    int l = tok_utf8_next(s + a, b - a, &cp);
                    if (cp != d->strip_char) break;
                    a += (size_t)l;
                }
                for (size_t c = 0; c < d->stop && b > a; c++) {
                    size_t p = b - 1;
                    while (p > a && ((unsigned char)s[p] & 0xC0) == 0x80) p--;
                    tok_utf8_next(s + p, b - p, &cp);
                    if (cp != d->strip_char) break;
                    b = p;
                }
                rc = tok_buf_put(&out->text, s + a, b - a);
            }
            if (!rc) rc = tok_list_push_span(out, off, out->text.n - off, -1, 0);
        }
        return rc;
    case TD_SEQUENCE: {
        tok_list tmp[2];
        memset(tmp, 0, sizeof tmp);
        tok_list *src = in;
        for (size_t k = 0; k < d->n_kids && !rc; k++) {
            tok_list *dst = k + 1 == d->n_kids ? out : &tmp[k & 1];
            rc = dec_apply(&d->kids[k], src, dst);
            src = dst;
        }
        if (!rc && d->n_kids == 0) rc = fuse(in, out);
        tok_list_free(&tmp[0]);
        tok_list_free(&tmp[1]);
        return rc;
    }
    default: return CPT_EINVAL;
    }
}

int cpt_tok_decode(const cpt_tok *t, const int32_t *ids, size_t n, int skip_special, char **text,
                   size_t *len, cpt_err *err) {
    CPT_ASSERT(t && text && len);
    *text = NULL;
    *len = 0;
    if (n && !ids) return cpt_err_set(err, CPT_EINVAL, "cpt_tok_decode: ids is NULL with n = %zu", n);
    tok_list toks, res;
    memset(&toks, 0, sizeof toks);
    memset(&res, 0, sizeof res);
    tok_buf joined = {0}, clean = {0};
    int rc = 0;
    if (t->spm) rc = tok_spm_decode(t, ids, n, skip_special, &joined);
    for (size_t i = 0; i < n && !rc && !t->spm; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_ids || t->piece_off[id] == SIZE_MAX) continue; /* HF skips unknown ids */
        if (skip_special && t->is_special[id]) continue;
        rc = tok_list_push(&toks, t->pieces.p + t->piece_off[id], t->piece_len[id], -1, 0);
    }
    tok_list *fin = &toks;
    if (!rc && t->dec) {
        rc = dec_apply(t->dec, &toks, &res);
        fin = &res;
    }
    /* Without a decoder HF joins tokens with spaces; a decoder's output is joined with "". */
    for (size_t i = 0; i < fin->n && !rc && !t->spm; i++) {
        if (!t->dec && i && tok_buf_put(&joined, " ", 1)) rc = CPT_ENOMEM;
        if (!rc) rc = tok_buf_put(&joined, fin->text.p + fin->v[i].off, fin->v[i].len);
    }
    if (!rc && tok_utf8_sanitize_into(joined.p ? joined.p : "", joined.n, &clean) < 0) rc = CPT_ENOMEM;
    tok_list_free(&toks);
    tok_list_free(&res);
    tok_buf_free(&joined);
    if (rc) {
        tok_buf_free(&clean);
        return cpt_err_set(err, CPT_ENOMEM, "cpt_tok_decode: out of memory decoding %zu ids", n);
    }
    *text = clean.p;
    *len = clean.n;
    return 0;
}

void tok_dec_free(tok_dec *d) {
    if (!d) return;
    free(d->pat);
    free(d->content);
    for (size_t i = 0; i < d->n_kids; i++) tok_dec_free(&d->kids[i]);
    free(d->kids);
}
