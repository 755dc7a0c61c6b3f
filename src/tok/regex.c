/* regex.c: PCRE2 (UTF + UCP + JIT) wrapper for HF's Oniguruma patterns, and the
 * pattern split with HF SplitDelimiterBehavior semantics. Not the pre-tokenizers
 * themselves (pretok.c). */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_impl.h"

#ifndef CPT_HAVE_PCRE2
#error "the tokenizer needs PCRE2 (libpcre2-dev); HINT: run scripts/install-deps.sh"
#endif

struct tok_regex {
    pcre2_code *code;
};

int tok_regex_compile(tok_regex **out, const char *pat, size_t len, const char *file,
                      const char *field, cpt_err *err) {
    *out = NULL;
    int ec = 0;
    PCRE2_SIZE eo = 0;
    /* UCP makes \s \w \d and POSIX classes Unicode-aware like Oniguruma's. */
    pcre2_code *code =
        pcre2_compile((PCRE2_SPTR)pat, len, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return cpt_err_set(err, CPT_EFORMAT,
                           "%s: %s: regex does not compile at offset %zu: %s; HINT: only "
                           "Perl/Oniguruma syntax that PCRE2 accepts is supported",
                           file, field, (size_t)eo, (const char *)msg);
    }
    /* JIT is an optimisation; if the platform lacks it the interpreter still works. */
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    tok_regex *r = malloc(sizeof *r);
    if (!r) {
        pcre2_code_free(code);
        return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory compiling %s", file, field);
    }
    r->code = code;
    *out = r;
    return 0;
}

void tok_regex_free(tok_regex *r) {
    if (!r) return;
    pcre2_code_free(r->code);
    free(r);
}

int tok_work_init(tok_work *w, cpt_err *err) {
    memset(w, 0, sizeof *w);
    w->md = pcre2_match_data_create(1, NULL);
    w->mc = pcre2_match_context_create(NULL);
    /* Lookaheads over long whitespace runs need more than the 32 KiB default. */
    w->js = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!w->md || !w->mc || !w->js) {
        tok_work_free(w);
        return cpt_err_set(err, CPT_ENOMEM, "tokenizer: out of memory for regex scratch");
    }
    pcre2_jit_stack_assign(w->mc, NULL, w->js);
    return 0;
}

void tok_work_free(tok_work *w) {
    tok_buf_free(&w->clean);
    tok_buf_free(&w->norm);
    tok_buf_free(&w->tmp);
    for (int i = 0; i < 4; i++) tok_list_free(&w->l[i]);
    free(w->sym);
    free(w->heap);
    free(w->ssym);
    free(w->sheap);
    tok_smap_free(&w->cache.map);
    free(w->cache.runs);
    free(w->cache.ids.v);
    if (w->md) pcre2_match_data_free(w->md);
    if (w->mc) pcre2_match_context_free(w->mc);
    if (w->js) pcre2_jit_stack_free(w->js);
    memset(w, 0, sizeof *w);
}

int tok_regex_find(const tok_regex *r, tok_work *w, const char *s, size_t len, size_t start,
                   size_t *ms, size_t *me, cpt_err *err) {
    /* The subject was validated once (utf8.c); skip PCRE2's per-call UTF check. */
    int rc = pcre2_match(r->code, (PCRE2_SPTR)s, len, start, PCRE2_NO_UTF_CHECK, w->md, w->mc);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return cpt_err_set(err, CPT_EINVAL,
                           "tokenizer: regex match failed at byte %zu of a %zu-byte piece: %s; "
                           "HINT: the input has a pathological run for this pattern",
                           start, len, (const char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(w->md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

static const char *find_lit(const char *h, size_t hn, const char *n, size_t nn) {
    if (nn > hn) return NULL;
    for (const char *p = h, *end = h + (hn - nn); p <= end; p++) {
        p = memchr(p, n[0], (size_t)(end - p) + 1);
        if (!p) return NULL;
        if (!memcmp(p, n, nn)) return p;
    }
    return NULL;
}

/* Streaming form of HF NormalizedString::split: pieces arrive in order as
 * (start, end, is_match) covering the string; the behavior decides what to emit. */
typedef struct split_state {
    int behavior;
    const char *s;
    tok_list *out;
    int at_start;
    int have;              /* a pending piece */
    size_t ps, pe;         /* pending piece */
    int pmatch;            /* pending piece is a (lone) match, MergedWithNext */
    int prev_match;
} split_state;

static int emit(split_state *st, size_t a, size_t b) {
    if (a == b) return 0; /* HF drops empty splits */
    return tok_list_push(st->out, st->s + a, b - a, -1, st->at_start && a == 0);
}

static int flush(split_state *st) {
    if (!st->have) return 0;
    st->have = 0;
    return emit(st, st->ps, st->pe);
}

static int piece(split_state *st, size_t a, size_t b, int is_match) {
    int rc = 0;
    switch (st->behavior) {
    case TOK_SPLIT_ISOLATED: rc = emit(st, a, b); break;
    case TOK_SPLIT_REMOVED:
        if (!is_match) rc = emit(st, a, b);
        break;
    case TOK_SPLIT_MERGED_PREV:
        if (is_match && !st->prev_match && st->have) {
            st->pe = b;
        } else {
            rc = flush(st);
            st->have = 1;
            st->ps = a;
            st->pe = b;
        }
        break;
    case TOK_SPLIT_CONTIGUOUS:
        if (is_match == st->prev_match && st->have) {
            st->pe = b;
        } else {
            rc = flush(st);
            st->have = 1;
            st->ps = a;
            st->pe = b;
        }
        break;
    case TOK_SPLIT_MERGED_NEXT:
        if (is_match) {
            rc = flush(st);
            st->have = 1;
            st->ps = a;
            st->pe = b;
        } else if (st->have) {
            st->have = 0;
            rc = emit(st, st->ps, b);
        } else {
            rc = emit(st, a, b);
        }
        break;
    }
    st->prev_match = is_match;
    return rc;
}

int tok_split(const tok_pattern *pat, int behavior, int invert, tok_work *w, const char *s,
              size_t len, int at_start, tok_list *out, cpt_err *err) {
    split_state st = {.behavior = behavior, .s = s, .out = out, .at_start = at_start};
    size_t prev = 0, pos = 0;
    int rc;
    while (pos <= len) {
        size_t ms = 0, me = 0;
        if (pat->re) {
            rc = tok_regex_find(pat->re, w, s, len, pos, &ms, &me, err);
            if (rc < 0) return rc;
            if (!rc) break;
        } else {
            if (!pat->lit_len || pos >= len) break;
            const char *f = find_lit(s + pos, len - pos, pat->lit, pat->lit_len);
            if (!f) break;
            ms = (size_t)(f - s);
            me = ms + pat->lit_len;
        }
        if (me == ms) {
            /* An empty match splits nothing; step one character past it. */
            if (ms >= len) break;
            pos = ms + (size_t)tok_utf8_len((unsigned char)s[ms]);
            continue;
        }
        if (ms > prev && (rc = piece(&st, prev, ms, invert))) goto oom;
        if ((rc = piece(&st, ms, me, !invert))) goto oom;
        prev = pos = me;
    }
    if (prev < len && (rc = piece(&st, prev, len, invert))) goto oom;
    if ((rc = flush(&st))) goto oom;
    return 0;
oom:
    return cpt_err_set(err, CPT_ENOMEM, "tokenizer: out of memory splitting a %zu-byte piece", len);
}
