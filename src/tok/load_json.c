/* load_json.c: reading HF tokenizer.json and tokenizer_config.json into a cpt_tok.
 * Every rejection names the file and the JSON field. Not the encode/decode logic. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "tok/tok_impl.h"

/* Ids are bounded so a corrupt file cannot make us allocate gigabytes. */
#define TOK_MAX_ID (1 << 24)

typedef struct ctx {
    const char *file;
    cpt_err *err;
} ctx;

static int bad(ctx *c, const char *field, const char *what, const char *hint) {
    return cpt_err_set(c->err, CPT_EFORMAT, "%s: %s: %s; HINT: %s", c->file, field, what, hint);
}
static int unsupported(ctx *c, const char *field, const char *what) {
    return cpt_err_set(c->err, CPT_EUNSUPPORTED,
                       "%s: %s: %s is not supported by cpt; HINT: supported components are "
                       "listed in include/cpt/tokenizer.h",
                       c->file, field, what);
}
static int oom(ctx *c) { return cpt_err_set(c->err, CPT_ENOMEM, "%s: out of memory", c->file); }

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static const char *type_of(json_t *o) {
    json_t *t = json_object_get(o, "type");
    return json_is_string(t) ? json_string_value(t) : NULL;
}

/* Optional boolean: missing -> def; wrong type -> error. */
static int get_bool(ctx *c, json_t *o, const char *key, int def, int *out, const char *field) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) {
        char f[256];
        snprintf(f, sizeof f, "%s.%s", field, key);
        return bad(c, f, "expected true or false", "fix the JSON value");
    }
    *out = json_is_true(v);
    return 0;
}

/* Optional string field -> malloc'ed copy, NULL if missing/null. */
static int get_str(ctx *c, json_t *o, const char *key, char **out, size_t *len, const char *field) {
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (len) *len = 0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) {
        char f[256];
        snprintf(f, sizeof f, "%s.%s", field, key);
        return bad(c, f, "expected a string", "fix the JSON value");
    }
    size_t n = json_string_length(v);
    if (!(*out = dup_n(json_string_value(v), n))) return oom(c);
    if (len) *len = n;
    return 0;
}

static int parse_pattern(ctx *c, json_t *o, const char *field, tok_pattern *p) {
    memset(p, 0, sizeof *p);
    json_t *pat = json_object_get(o, "pattern");
    char f[256];
    snprintf(f, sizeof f, "%s.pattern", field);
    if (!json_is_object(pat)) return bad(c, f, "missing or not an object", "use {\"Regex\": ...} or {\"String\": ...}");
    json_t *re = json_object_get(pat, "Regex"), *st = json_object_get(pat, "String");
    if (json_is_string(re)) {
        snprintf(f, sizeof f, "%s.pattern.Regex", field);
        return tok_regex_compile(&p->re, json_string_value(re), json_string_length(re), c->file, f, c->err);
    }
    if (json_is_string(st)) {
        if (!(p->lit = dup_n(json_string_value(st), json_string_length(st)))) return oom(c);
        p->lit_len = json_string_length(st);
        return 0;
    }
    return bad(c, f, "neither a Regex nor a String pattern", "use {\"Regex\": ...} or {\"String\": ...}");
}

/* One UTF-8 character string (Metaspace replacement, Strip content). */
static int one_char(ctx *c, json_t *o, const char *key, const char *def, char out[8], size_t *len,
                    const char *field) {
    json_t *v = json_object_get(o, key);
    const char *s = def;
    size_t n = strlen(def);
    if (v && !json_is_null(v)) {
        if (!json_is_string(v)) return bad(c, field, "expected a one-character string", "fix the JSON value");
        s = json_string_value(v);
        n = json_string_length(v);
    }
    uint32_t cp;
    if (n == 0 || n > 4 || (size_t)tok_utf8_next(s, n, &cp) != n)
        return bad(c, field, "expected exactly one character", "fix the JSON value");
    memcpy(out, s, n);
    out[n] = 0;
    *len = n;
    return 0;
}

static int prepend_scheme(ctx *c, json_t *o, const char *field, int *out) {
    json_t *ps = json_object_get(o, "prepend_scheme");
    if (json_is_string(ps)) {
        const char *s = json_string_value(ps);
        if (!strcmp(s, "always")) *out = TOK_PREPEND_ALWAYS;
        else if (!strcmp(s, "first")) *out = TOK_PREPEND_FIRST;
        else if (!strcmp(s, "never")) *out = TOK_PREPEND_NEVER;
        else return bad(c, field, "prepend_scheme is not always/first/never", "fix the JSON value");
        return 0;
    }
    int aps;
    int rc = get_bool(c, o, "add_prefix_space", 1, &aps, field);
    *out = aps ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NEVER;
    return rc;
}

static int parse_norm(ctx *c, json_t *o, const char *field, tok_norm *n) {
    memset(n, 0, sizeof *n);
    const char *ty = type_of(o);
    if (!ty) return bad(c, field, "missing \"type\"", "every normalizer needs a type");
    int rc;
    if (!strcmp(ty, "NFC")) n->kind = TN_NFC;
    else if (!strcmp(ty, "NFD")) n->kind = TN_NFD;
    else if (!strcmp(ty, "NFKC")) n->kind = TN_NFKC;
    else if (!strcmp(ty, "NFKD")) n->kind = TN_NFKD;
    else if (!strcmp(ty, "Lowercase")) n->kind = TN_LOWERCASE;
    else if (!strcmp(ty, "Strip")) {
        n->kind = TN_STRIP;
        if ((rc = get_bool(c, o, "strip_left", 1, &n->left, field)) ||
            (rc = get_bool(c, o, "strip_right", 1, &n->right, field)))
            return rc;
    } else if (!strcmp(ty, "Prepend")) {
        n->kind = TN_PREPEND;
        if ((rc = get_str(c, o, "prepend", &n->content, &n->content_len, field))) return rc;
        if (!n->content) return bad(c, field, "Prepend without \"prepend\"", "add the string to prepend");
    } else if (!strcmp(ty, "Replace")) {
        n->kind = TN_REPLACE;
        if ((rc = parse_pattern(c, o, field, &n->pat))) return rc;
        if ((rc = get_str(c, o, "content", &n->content, &n->content_len, field))) return rc;
        if (!n->content) return bad(c, field, "Replace without \"content\"", "add the replacement string");
    } else if (!strcmp(ty, "Sequence")) {
        n->kind = TN_SEQUENCE;
        json_t *a = json_object_get(o, "normalizers");
        if (!json_is_array(a)) return bad(c, field, "Sequence without a \"normalizers\" array", "fix the JSON");
        n->kids = calloc(json_array_size(a) + 1, sizeof *n->kids);
        if (!n->kids) return oom(c);
        for (size_t i = 0; i < json_array_size(a); i++) {
            char f[256];
            snprintf(f, sizeof f, "%s.normalizers[%zu]", field, i);
            n->n_kids++;
            if ((rc = parse_norm(c, json_array_get(a, i), f, &n->kids[i]))) return rc;
        }
    } else {
        return unsupported(c, field, ty);
    }
    return 0;
}

static const char *GPT2_RE =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int parse_pretok(ctx *c, json_t *o, const char *field, tok_pretok *p) {
    memset(p, 0, sizeof *p);
    const char *ty = type_of(o);
    if (!ty) return bad(c, field, "missing \"type\"", "every pre-tokenizer needs a type");
    int rc;
    if (!strcmp(ty, "ByteLevel")) {
        p->kind = TP_BYTELEVEL;
        if ((rc = get_bool(c, o, "add_prefix_space", 1, &p->add_prefix_space, field)) ||
            (rc = get_bool(c, o, "use_regex", 1, &p->use_regex, field)))
            return rc;
        if (p->use_regex)
            return tok_regex_compile(&p->pat.re, GPT2_RE, strlen(GPT2_RE), c->file, field, c->err);
    } else if (!strcmp(ty, "Split")) {
        p->kind = TP_SPLIT;
        if ((rc = parse_pattern(c, o, field, &p->pat))) return rc;
        json_t *b = json_object_get(o, "behavior");
        const char *bs = json_is_string(b) ? json_string_value(b) : "";
        if (!strcmp(bs, "Removed")) p->behavior = TOK_SPLIT_REMOVED;
        else if (!strcmp(bs, "Isolated")) p->behavior = TOK_SPLIT_ISOLATED;
        else if (!strcmp(bs, "MergedWithPrevious")) p->behavior = TOK_SPLIT_MERGED_PREV;
        else if (!strcmp(bs, "MergedWithNext")) p->behavior = TOK_SPLIT_MERGED_NEXT;
        else if (!strcmp(bs, "Contiguous")) p->behavior = TOK_SPLIT_CONTIGUOUS;
        else
            return bad(c, field, "behavior is not Removed/Isolated/MergedWithPrevious/MergedWithNext/Contiguous",
                       "fix the JSON value");
        if ((rc = get_bool(c, o, "invert", 0, &p->invert, field))) return rc;
    } else if (!strcmp(ty, "Metaspace")) {
        p->kind = TP_METASPACE;
        if ((rc = one_char(c, o, "replacement", "\xE2\x96\x81", p->repl, &p->repl_len, field)) ||
            (rc = prepend_scheme(c, o, field, &p->prepend_scheme)) ||
            (rc = get_bool(c, o, "split", 1, &p->split, field)))
            return rc;
    } else if (!strcmp(ty, "Sequence")) {
        p->kind = TP_SEQUENCE;
        json_t *a = json_object_get(o, "pretokenizers");
        if (!json_is_array(a)) return bad(c, field, "Sequence without a \"pretokenizers\" array", "fix the JSON");
        p->kids = calloc(json_array_size(a) + 1, sizeof *p->kids);
        if (!p->kids) return oom(c);
        for (size_t i = 0; i < json_array_size(a); i++) {
            char f[256];
            snprintf(f, sizeof f, "%s.pretokenizers[%zu]", field, i);
            p->n_kids++;
            if ((rc = parse_pretok(c, json_array_get(a, i), f, &p->kids[i]))) return rc;
        }
    } else {
        return unsupported(c, field, ty);
    }
    return 0;
}

static int parse_dec(ctx *c, json_t *o, const char *field, tok_dec *d) {
    memset(d, 0, sizeof *d);
    const char *ty = type_of(o);
    if (!ty) return bad(c, field, "missing \"type\"", "every decoder needs a type");
    int rc;
    if (!strcmp(ty, "ByteLevel")) d->kind = TD_BYTELEVEL;
    else if (!strcmp(ty, "ByteFallback")) d->kind = TD_BYTEFALLBACK;
    else if (!strcmp(ty, "Fuse")) d->kind = TD_FUSE;
    else if (!strcmp(ty, "Replace")) {
        d->kind = TD_REPLACE;
        json_t *pat = json_object_get(o, "pattern");
        json_t *st = json_is_object(pat) ? json_object_get(pat, "String") : NULL;
        if (!json_is_string(st)) return unsupported(c, field, "a Replace decoder without a String pattern");
        if (!(d->pat = dup_n(json_string_value(st), json_string_length(st)))) return oom(c);
        d->pat_len = json_string_length(st);
        if ((rc = get_str(c, o, "content", &d->content, &d->content_len, field))) return rc;
        if (!d->content) return bad(c, field, "Replace without \"content\"", "add the replacement string");
    } else if (!strcmp(ty, "Strip")) {
        d->kind = TD_STRIP;
        char ch[8];
        size_t n;
        if ((rc = one_char(c, o, "content", " ", ch, &n, field))) return rc;
        tok_utf8_next(ch, n, &d->strip_char);
        json_t *a = json_object_get(o, "start"), *b = json_object_get(o, "stop");
        if (!json_is_integer(a) || !json_is_integer(b) || json_integer_value(a) < 0 ||
            json_integer_value(b) < 0 || json_integer_value(a) > 1 << 20 || json_integer_value(b) > 1 << 20)
            return bad(c, field, "Strip needs non-negative integers start and stop", "fix the JSON values");
        d->start = (size_t)json_integer_value(a);
        d->stop = (size_t)json_integer_value(b);
    } else if (!strcmp(ty, "Metaspace")) {
        d->kind = TD_METASPACE;
        if ((rc = one_char(c, o, "replacement", "\xE2\x96\x81", d->repl, &d->repl_len, field)) ||
            (rc = prepend_scheme(c, o, field, &d->prepend_scheme)))
            return rc;
    } else if (!strcmp(ty, "Sequence")) {
        d->kind = TD_SEQUENCE;
        json_t *a = json_object_get(o, "decoders");
        if (!json_is_array(a)) return bad(c, field, "Sequence without a \"decoders\" array", "fix the JSON");
        d->kids = calloc(json_array_size(a) + 1, sizeof *d->kids);
        if (!d->kids) return oom(c);
        for (size_t i = 0; i < json_array_size(a); i++) {
            char f[256];
            snprintf(f, sizeof f, "%s.decoders[%zu]", field, i);
            d->n_kids++;
            if ((rc = parse_dec(c, json_array_get(a, i), f, &d->kids[i]))) return rc;
        }
    } else {
        return unsupported(c, field, ty);
    }
    return 0;
}

static int vocab_lookup(const cpt_tok *t, const char *s, size_t n) {
    return tok_smap_get(&t->bpe.vocab, s, n);
}

static int parse_model(ctx *c, cpt_tok *t, json_t *m) {
    tok_bpe *b = &t->bpe;
    int rc;
    if (!json_is_object(m)) return bad(c, "model", "missing or not an object", "the file needs a \"model\"");
    const char *ty = type_of(m);
    if (ty && strcmp(ty, "BPE")) return unsupported(c, "model.type", ty);
    json_t *dropout = json_object_get(m, "dropout");
    if (json_is_number(dropout) && json_number_value(dropout) > 0)
        return unsupported(c, "model.dropout", "BPE dropout (non-deterministic encoding)");
    json_t *vocab = json_object_get(m, "vocab");
    if (!json_is_object(vocab)) return bad(c, "model.vocab", "missing or not an object", "a BPE model needs a vocab");
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= TOK_MAX_ID) {
            char f[300];
            snprintf(f, sizeof f, "model.vocab[\"%.200s\"]", key);
            return bad(c, f, "id is not an integer in [0, 2^24)", "fix the vocabulary");
        }
        if (tok_smap_put(&b->vocab, key, strlen(key), (int32_t)json_integer_value(val))) return oom(c);
    }
    if ((rc = get_bool(c, m, "fuse_unk", 0, &b->fuse_unk, "model")) ||
        (rc = get_bool(c, m, "byte_fallback", 0, &b->byte_fallback, "model")) ||
        (rc = get_bool(c, m, "ignore_merges", 0, &b->ignore_merges, "model")) ||
        (rc = get_str(c, m, "continuing_subword_prefix", &b->prefix, &b->prefix_len, "model")) ||
        (rc = get_str(c, m, "end_of_word_suffix", &b->suffix, &b->suffix_len, "model")))
        return rc;
    /* An empty prefix/suffix changes nothing; treat it as absent. */
    if (b->prefix && !b->prefix_len) { free(b->prefix); b->prefix = NULL; }
    if (b->suffix && !b->suffix_len) { free(b->suffix); b->suffix = NULL; }
    b->unk_id = -1;
    json_t *unk = json_object_get(m, "unk_token");
    if (json_is_string(unk)) {
        b->unk_id = vocab_lookup(t, json_string_value(unk), json_string_length(unk));
        if (b->unk_id < 0) return bad(c, "model.unk_token", "not in model.vocab", "add it to the vocab or set it to null");
    } else if (unk && !json_is_null(unk)) {
        return bad(c, "model.unk_token", "expected a string or null", "fix the JSON value");
    }
    for (int i = 0; i < 256; i++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", i);
        b->byte_ids[i] = vocab_lookup(t, s, 6);
    }
    json_t *merges = json_object_get(m, "merges");
    if (!merges || json_is_null(merges)) return 0;
    if (!json_is_array(merges)) return bad(c, "model.merges", "not an array", "use [\"a b\", ...] or [[\"a\", \"b\"], ...]");
    tok_buf cat = {0};
    uint32_t rank = 0;
    for (size_t i = 0; i < json_array_size(merges); i++) {
        json_t *e = json_array_get(merges, i);
        const char *a, *bb;
        size_t al, bl;
        char f[64];
        snprintf(f, sizeof f, "model.merges[%zu]", i);
        if (json_is_string(e)) {
            const char *s = json_string_value(e);
            size_t n = json_string_length(e);
            if (n >= 8 && !strncmp(s, "#version", 8)) continue; /* HF skips these lines */
            const char *sp = memchr(s, ' ', n);
            if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s))) {
                tok_buf_free(&cat);
                return bad(c, f, "not exactly two parts separated by one space", "use \"a b\"");
            }
            a = s;
            al = (size_t)(sp - s);
            bb = sp + 1;
            bl = n - al - 1;
        } else if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
                   json_is_string(json_array_get(e, 1))) {
            a = json_string_value(json_array_get(e, 0));
            al = json_string_length(json_array_get(e, 0));
            bb = json_string_value(json_array_get(e, 1));
            bl = json_string_length(json_array_get(e, 1));
        } else {
            tok_buf_free(&cat);
            return bad(c, f, "neither \"a b\" nor [\"a\", \"b\"]", "fix the merge entry");
        }
        int32_t ia = vocab_lookup(t, a, al), ib = vocab_lookup(t, bb, bl);
        /* HF forms the merged token as a + b[len(prefix):]. */
        size_t skip = b->prefix_len < bl ? b->prefix_len : bl;
        cat.n = 0;
        if (tok_buf_put(&cat, a, al) || tok_buf_put(&cat, bb + skip, bl - skip)) {
            tok_buf_free(&cat);
            return oom(c);
        }
        int32_t in = vocab_lookup(t, cat.p ? cat.p : "", cat.n);
        if (ia < 0 || ib < 0 || in < 0) {
            tok_buf_free(&cat);
            return bad(c, f, ia < 0 || ib < 0 ? "a part is not in model.vocab" : "the merged token is not in model.vocab",
                       "the merges must only use vocabulary tokens");
        }
        if (tok_pmap_put(&b->merges, (uint32_t)ia, (uint32_t)ib, rank++, in)) {
            tok_buf_free(&cat);
            return oom(c);
        }
    }
    tok_buf_free(&cat);
    return 0;
}

static int parse_added(ctx *c, cpt_tok *t, json_t *a) {
    if (!a || json_is_null(a)) return 0;
    if (!json_is_array(a)) return bad(c, "added_tokens", "not an array", "fix the JSON");
    t->added = calloc(json_array_size(a) + 1, sizeof *t->added);
    if (!t->added) return oom(c);
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *o = json_array_get(a, i);
        char f[64];
        snprintf(f, sizeof f, "added_tokens[%zu]", i);
        if (!json_is_object(o)) return bad(c, f, "not an object", "fix the JSON");
        tok_added *ad = &t->added[t->n_added];
        json_t *id = json_object_get(o, "id"), *ct = json_object_get(o, "content");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= TOK_MAX_ID)
            return bad(c, f, "\"id\" is not an integer in [0, 2^24)", "fix the JSON value");
        if (!json_is_string(ct) || json_string_length(ct) == 0)
            return bad(c, f, "\"content\" is not a non-empty string", "fix the JSON value");
        int sp = 0, ls = 0, rs = 0, sw = 0, nz = 0;
        int rc;
        if ((rc = get_bool(c, o, "special", 0, &sp, f)) || (rc = get_bool(c, o, "lstrip", 0, &ls, f)) ||
            (rc = get_bool(c, o, "rstrip", 0, &rs, f)) || (rc = get_bool(c, o, "single_word", 0, &sw, f)) ||
            (rc = get_bool(c, o, "normalized", !sp, &nz, f)))
            return rc;
        ad->len = json_string_length(ct);
        if (!(ad->content = dup_n(json_string_value(ct), ad->len))) return oom(c);
        t->n_added++;
        /* HF re-derives the id: a token already in the model vocab keeps the vocab id. */
        int32_t vid = vocab_lookup(t, ad->content, ad->len);
        ad->id = vid >= 0 ? vid : (int32_t)json_integer_value(id);
        ad->special = (uint8_t)sp;
        ad->lstrip = (uint8_t)ls;
        ad->rstrip = (uint8_t)rs;
        ad->single_word = (uint8_t)sw;
        ad->normalized = (uint8_t)nz;
    }
    return 0;
}

static int parse_post(ctx *c, cpt_tok *t, json_t *o, const char *field) {
    if (!o || json_is_null(o)) return 0;
    const char *ty = type_of(o);
    if (!ty) return bad(c, field, "missing \"type\"", "every post-processor needs a type");
    if (!strcmp(ty, "ByteLevel")) return 0; /* only trims offsets; ids unchanged */
    if (!strcmp(ty, "Sequence")) {
        json_t *a = json_object_get(o, "processors");
        if (!json_is_array(a)) return bad(c, field, "Sequence without a \"processors\" array", "fix the JSON");
        for (size_t i = 0; i < json_array_size(a); i++) {
            char f[128];
            snprintf(f, sizeof f, "%s.processors[%zu]", field, i);
            int rc = parse_post(c, t, json_array_get(a, i), f);
            if (rc) return rc;
        }
        return 0;
    }
    if (t->tmpl) return unsupported(c, field, "more than one template post-processor");
    if (!strcmp(ty, "TemplateProcessing")) {
        json_t *single = json_object_get(o, "single"), *sp = json_object_get(o, "special_tokens");
        if (!json_is_array(single)) return bad(c, field, "\"single\" is not an array", "fix the template");
        size_t cap = 1;
        for (size_t i = 0; i < json_array_size(single); i++) {
            json_t *st = json_object_get(json_array_get(single, i), "SpecialToken");
            json_t *ent = st ? json_object_get(sp, json_string_value(json_object_get(st, "id")) ?
                                                       json_string_value(json_object_get(st, "id")) : "")
                             : NULL;
            cap += ent ? json_array_size(json_object_get(ent, "ids")) : 1;
        }
        t->tmpl = calloc(cap, sizeof *t->tmpl);
        if (!t->tmpl) return oom(c);
        for (size_t i = 0; i < json_array_size(single); i++) {
            json_t *e = json_array_get(single, i);
            char f[128];
            snprintf(f, sizeof f, "%s.single[%zu]", field, i);
            json_t *st = json_object_get(e, "SpecialToken"), *sq = json_object_get(e, "Sequence");
            if (sq) {
                json_t *sid = json_object_get(sq, "id");
                if (!json_is_string(sid) || strcmp(json_string_value(sid), "A"))
                    return unsupported(c, f, "a single-sequence template that uses a sequence other than A");
                t->tmpl[t->n_tmpl++] = -1;
                continue;
            }
            json_t *name = st ? json_object_get(st, "id") : NULL;
            if (!json_is_string(name)) return bad(c, f, "neither SpecialToken nor Sequence", "fix the template");
            json_t *ent = json_object_get(sp, json_string_value(name));
            json_t *ids = ent ? json_object_get(ent, "ids") : NULL;
            if (!json_is_array(ids))
                return bad(c, f, "special token missing from \"special_tokens\"", "add it with its ids");
            for (size_t k = 0; k < json_array_size(ids); k++) {
                json_t *v = json_array_get(ids, k);
                if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= TOK_MAX_ID)
                    return bad(c, f, "special token id is not an integer in [0, 2^24)", "fix the ids");
                t->tmpl[t->n_tmpl++] = (int32_t)json_integer_value(v);
            }
        }
        return 0;
    }
    if (!strcmp(ty, "RobertaProcessing") || !strcmp(ty, "BertProcessing")) {
        json_t *cls = json_object_get(o, "cls"), *sep = json_object_get(o, "sep");
        if (!json_is_array(cls) || !json_is_integer(json_array_get(cls, 1)) || !json_is_array(sep) ||
            !json_is_integer(json_array_get(sep, 1)))
            return bad(c, field, "cls/sep are not [token, id] pairs", "fix the JSON");
        t->tmpl = calloc(3, sizeof *t->tmpl);
        if (!t->tmpl) return oom(c);
        t->tmpl[0] = (int32_t)json_integer_value(json_array_get(cls, 1));
        t->tmpl[1] = -1;
        t->tmpl[2] = (int32_t)json_integer_value(json_array_get(sep, 1));
        t->n_tmpl = 3;
        return 0;
    }
    return unsupported(c, field, ty);
}

/* Sort key for the added-token index: first byte ascending, then longest first
 * (so the first hit at a position is the leftmost-longest match), then file order. */
typedef struct added_key {
    unsigned char first;
    size_t len;
    uint32_t idx;
} added_key;
static int cmp_added(const void *pa, const void *pb) {
    const added_key *a = pa, *b = pb;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int build_added_index(ctx *c, cpt_tok *t) {
    tok_work w;
    int rc = tok_work_init(&w, c->err);
    if (rc) return rc;
    for (size_t i = 0; i < t->n_added && !rc; i++) {
        tok_added *a = &t->added[i];
        if (a->normalized && t->norm) {
            /* HF matches normalized tokens against normalized text, so it normalizes
             * the token contents the same way first. */
            tok_buf out = {0};
            rc = tok_norm_apply(t->norm, &w, a->content, a->len, &out, c->err);
            if (!rc && out.n == 0) rc = bad(c, "added_tokens", "a token normalizes to nothing", "mark it normalized: false");
            if (!rc) {
                a->match = dup_n(out.p, out.n);
                a->match_len = out.n;
                if (!a->match) rc = oom(c);
            }
            tok_buf_free(&out);
        } else {
            a->match = dup_n(a->content, a->len);
            a->match_len = a->len;
            if (!a->match) rc = oom(c);
        }
    }
    tok_work_free(&w);
    if (rc) return rc;
    for (int pass = 0; pass < 2; pass++) {
        t->added_idx[pass] = calloc(t->n_added + 1, sizeof(uint32_t));
        if (!t->added_idx[pass]) return oom(c);
        added_key *keys = calloc(t->n_added + 1, sizeof *keys);
        if (!keys) return oom(c);
        uint32_t n = 0;
        for (size_t i = 0; i < t->n_added; i++)
            if (t->added[i].normalized == pass)
                keys[n++] = (added_key){(unsigned char)t->added[i].match[0], t->added[i].match_len, (uint32_t)i};
        qsort(keys, n, sizeof *keys, cmp_added);
        for (uint32_t i = 0; i < n; i++) t->added_idx[pass][i] = keys[i].idx;
        free(keys);
        uint32_t k = 0;
        for (int b = 0; b <= 256; b++) {
            while (k < n && (unsigned char)t->added[t->added_idx[pass][k]].match[0] < b) k++;
            t->added_first[pass][b] = k;
        }
        /* added_first[b]..added_first[b+1] is byte b's range; 256 holds n. */
        t->added_first[pass][256] = n;
    }
    return 0;
}

static int build_pieces(ctx *c, cpt_tok *t) {
    int32_t max = -1;
    for (size_t i = 0; i < t->bpe.vocab.n; i++)
        if (t->bpe.vocab.e[i].val > max) max = t->bpe.vocab.e[i].val;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id > max) max = t->added[i].id;
    t->n_ids = max + 1;
    size_t n = (size_t)t->n_ids + 1;
    t->piece_off = malloc(n * sizeof *t->piece_off);
    t->piece_len = calloc(n, sizeof *t->piece_len);
    t->is_special = calloc(n, 1);
    if (!t->piece_off || !t->piece_len || !t->is_special) return oom(c);
    for (size_t i = 0; i < n; i++) t->piece_off[i] = SIZE_MAX;
    const tok_smap *v = &t->bpe.vocab;
    for (size_t i = 0; i < v->n; i++) {
        int32_t id = v->e[i].val;
        t->piece_off[id] = t->pieces.n;
        t->piece_len[id] = v->e[i].len;
        if (tok_buf_put(&t->pieces, v->keys.p + v->e[i].off, v->e[i].len) || tok_buf_put(&t->pieces, "", 1))
            return oom(c);
    }
    /* Added tokens take precedence when decoding, as in HF. */
    for (size_t i = 0; i < t->n_added; i++) {
        tok_added *a = &t->added[i];
        t->piece_off[a->id] = t->pieces.n;
        t->piece_len[a->id] = (uint32_t)a->len;
        t->is_special[a->id] |= a->special;
        if (tok_buf_put(&t->pieces, a->content, a->len) || tok_buf_put(&t->pieces, "", 1)) return oom(c);
    }
    for (size_t i = 0; i < t->n_tmpl; i++)
        if (t->tmpl[i] >= t->n_ids)
            return bad(c, "post_processor", "a template id is outside the vocabulary", "fix the special_tokens ids");
    return 0;
}

int tok_load_json(cpt_tok *t, const char *file, cpt_err *err) {
    ctx c = {file, err};
    char *buf = NULL;
    size_t size = 0;
    int rc = cpt_read_file(file, &buf, &size, err);
    if (rc) return rc;
    json_error_t je;
    json_t *root = json_loadb(buf, size, JSON_REJECT_DUPLICATES, &je);
    free(buf);
    if (!root)
        return cpt_err_set(err, CPT_EFORMAT, "%s: line %d column %d: invalid JSON: %s; HINT: the file is corrupt or truncated",
                           file, je.line, je.column, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return bad(&c, "(root)", "not a JSON object", "is this a tokenizer.json?");
    }
    json_t *v;
    if ((rc = parse_model(&c, t, json_object_get(root, "model")))) goto done;
    if ((rc = parse_added(&c, t, json_object_get(root, "added_tokens")))) goto done;
    v = json_object_get(root, "normalizer");
    if (v && !json_is_null(v)) {
        if (!(t->norm = calloc(1, sizeof *t->norm))) { rc = oom(&c); goto done; }
        if ((rc = parse_norm(&c, v, "normalizer", t->norm))) goto done;
    }
    v = json_object_get(root, "pre_tokenizer");
    if (v && !json_is_null(v)) {
        if (!(t->pretok = calloc(1, sizeof *t->pretok))) { rc = oom(&c); goto done; }
        if ((rc = parse_pretok(&c, v, "pre_tokenizer", t->pretok))) goto done;
    }
    v = json_object_get(root, "decoder");
    if (v && !json_is_null(v)) {
        if (!(t->dec = calloc(1, sizeof *t->dec))) { rc = oom(&c); goto done; }
        if ((rc = parse_dec(&c, v, "decoder", t->dec))) goto done;
    }
    if ((rc = parse_post(&c, t, json_object_get(root, "post_processor"), "post_processor"))) goto done;
    if ((rc = build_added_index(&c, t))) goto done;
    rc = build_pieces(&c, t);
done:
    json_decref(root);
    return rc;
}

/* bos_token etc. may be a string or an AddedToken object {"content": ...}. Returns
 * 1 and the id (-1 if the string is not a token) when the key is given, 0 if it is
 * missing or null. */
static int config_token(const cpt_tok *t, json_t *root, const char *key, int32_t *id) {
    json_t *v = json_object_get(root, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v)) return 0;
    *id = cpt_tok_piece_id(t, json_string_value(v), json_string_length(v));
    return 1;
}

static int config_flag(json_t *root, const char *key, int *out, const char *file, cpt_err *err) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v))
        return cpt_err_set(err, CPT_EFORMAT, "%s: %s: expected true or false; HINT: fix the JSON value", file, key);
    *out = json_is_true(v);
    return 0;
}

int tok_load_config(cpt_tok *t, const char *file, cpt_err *err) {
    char *buf = NULL;
    size_t size = 0;
    int rc = cpt_read_file(file, &buf, &size, err);
    if (rc) return rc;
    json_error_t je;
    json_t *root = json_loadb(buf, size, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &je);
    free(buf);
    if (!root)
        return cpt_err_set(err, CPT_EFORMAT, "%s: line %d column %d: invalid JSON: %s; HINT: the file is corrupt or truncated",
                           file, je.line, je.column, je.text);
    /* A token the config names overrides the file's; one it leaves out keeps it. */
    int32_t id = -1;
    if (config_token(t, root, "bos_token", &id)) t->bos = id;
    if (config_token(t, root, "eos_token", &id)) t->eos = id;
    if (config_token(t, root, "pad_token", &id)) t->pad = id;
    if (config_token(t, root, "unk_token", &id)) t->unk = id;
    if ((rc = config_flag(root, "add_bos_token", &t->cfg_add_bos, file, err)) ||
        (rc = config_flag(root, "add_eos_token", &t->cfg_add_eos, file, err))) {
        json_decref(root);
        return rc;
    }
    json_t *ct = json_object_get(root, "chat_template");
    if (json_is_array(ct)) { /* [{"name": ..., "template": ...}]: take "default" */
        json_t *pick = NULL;
        for (size_t i = 0; i < json_array_size(ct); i++) {
            json_t *e = json_array_get(ct, i);
            json_t *nm = json_object_get(e, "name");
            if (!pick || (json_is_string(nm) && !strcmp(json_string_value(nm), "default"))) pick = e;
        }
        ct = pick ? json_object_get(pick, "template") : NULL;
    }
    if (json_is_string(ct)) {
        t->chat_template = dup_n(json_string_value(ct), json_string_length(ct));
        if (!t->chat_template) rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", file);
    } else if (ct && !json_is_null(ct)) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: chat_template: expected a string; HINT: fix the JSON value", file);
    }
    json_decref(root);
    return rc;
}
