/* added.c: splitting text on added tokens the way HF's AddedVocabulary does
 * (leftmost-longest, then single_word / lstrip / rstrip). Not their loading
 * (load_json.c). */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_impl.h"

#ifdef CPT_HAVE_UTF8PROC
#include <utf8proc.h>
#endif

/* Rust regex's \w: alphabetic, marks, decimal digits, connector punctuation. */
static int is_word_cp(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
               cp == '_';
#ifdef CPT_HAVE_UTF8PROC
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC: return 1;
    default: return cp == 0x200C || cp == 0x200D;
    }
#else
    return 0;
#endif
}

static size_t prev_char(const char *s, size_t i) {
    while (i > 0) {
        i--;
        if (((unsigned char)s[i] & 0xC0) != 0x80) break;
    }
    return i;
}

/* The longest added token of this pass matching at s+pos, or -1. */
static int match_at(const cpt_tok *t, int pass, const char *s, size_t len, size_t pos) {
    unsigned char c = (unsigned char)s[pos];
    for (uint32_t k = t->added_first[pass][c]; k < t->added_first[pass][c + 1]; k++) {
        const tok_added *a = &t->added[t->added_idx[pass][k]];
        if (a->match_len <= len - pos && !memcmp(s + pos, a->match, a->match_len))
            return (int)t->added_idx[pass][k]; /* sorted longest first */
    }
    return -1;
}

static int split_one(const cpt_tok *t, int pass, const char *s, size_t len, int at_start,
                     tok_list *out) {
    size_t start_offset = 0, pos = 0;
    while (pos < len) {
        int k = match_at(t, pass, s, len, pos);
        if (k < 0) {
            pos++;
            continue;
        }
        const tok_added *a = &t->added[k];
        size_t start = pos, stop = pos + a->match_len;
        pos = stop;
        uint32_t cp;
        if (a->single_word) {
            int start_ok = start == 0, stop_ok = stop == len;
            if (!start_ok) {
                size_t p = prev_char(s, start);
                tok_utf8_next(s + p, start - p, &cp);
                start_ok = !is_word_cp(cp);
            }
            if (!stop_ok) {
                tok_utf8_next(s + stop, len - stop, &cp);
                stop_ok = !is_word_cp(cp);
            }
            if (!start_ok || !stop_ok) continue;
        }
        if (a->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t p = prev_char(s, ns);
                tok_utf8_next(s + p, ns - p, &cp);
                if (!tok_is_ws(cp)) break;
                ns = p;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            while (stop < len) {
                int n = tok_utf8_next(s + stop, len - stop, &cp);
                if (!tok_is_ws(cp)) break;
                stop += (size_t)n;
            }
        }
        if (start_offset < start &&
            tok_list_push(out, s + start_offset, start - start_offset, -1, at_start && start_offset == 0))
            return CPT_ENOMEM;
        if (tok_list_push(out, s + start, stop - start, a->id, at_start && start == 0))
            return CPT_ENOMEM;
        start_offset = stop;
    }
    if (start_offset < len &&
        tok_list_push(out, s + start_offset, len - start_offset, -1, at_start && start_offset == 0))
        return CPT_ENOMEM;
    return 0;
}

int tok_added_split(const cpt_tok *t, int pass, tok_work *w, tok_list *in, tok_list *out,
                    cpt_err *err) {
    (void)w;
    tok_list_clear(out);
    for (size_t i = 0; i < in->n; i++) {
        tok_span sp = in->v[i];
        int rc = sp.id >= 0 ? tok_list_push(out, in->text.p + sp.off, sp.len, sp.id, sp.at_start)
                            : split_one(t, pass, in->text.p + sp.off, sp.len, sp.at_start, out);
        if (rc) return cpt_err_set(err, CPT_ENOMEM, "tokenizer: out of memory splitting added tokens");
    }
    return 0;
}
