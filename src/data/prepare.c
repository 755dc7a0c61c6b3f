/* prepare.c: the data preparation pipeline (clean, filter, dedup, decontaminate, tokenize, shard, split, stats.json); not the CLI. */
#include "cpt/prepare.h"

#include <jansson.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cpt/chat.h"
#include "cpt/fileio.h"
#include "cpt/shard.h"
#include "cpt/tokenizer.h"
#include "dedup_impl.h"
#include "reader.h"
#include "text.h"

#ifdef CPT_HAVE_UTF8PROC
#include <utf8proc.h>
#endif

enum { ST_KEEP = 0, ST_MALFORMED, ST_FILTERED, ST_EXACT, ST_CONTAM, ST_LSH, ST_NEAR };

void cpt_prepare_cfg_default(cpt_prepare_cfg *c) {
    memset(c, 0, sizeof *c);
    c->nfc = 1;
    c->filters = 1;
    cpt_filter_cfg_default(&c->filter);
    c->exact_dedup = c->near_dedup = 1;
    cpt_minhash_cfg_default(&c->minhash);
    c->decon_ngram = 13;
    c->val_fraction = 0.005;
    c->seed = 1;
}

int cpt_prepare_length_bucket(uint64_t n) {
    int b = 0;
    for (uint64_t lim = 512; b < CPT_PREPARE_N_LENGTHS - 1 && n >= lim; lim *= 4) b++;
    return b;
}

const char *cpt_prepare_length_name(int b) {
    static const char *const names[CPT_PREPARE_N_LENGTHS] = {"<512", "512-2K", "2K-8K", "8K-32K", "32K-128K",
                                                             ">=128K"};
    return b >= 0 && b < CPT_PREPARE_N_LENGTHS ? names[b] : "?";
}

const char *cpt_prepare_reason_name(int reason) {
    static const char *const names[CPT_PREP_N_REASONS] = {"bad_json",         "no_field",      "invalid_utf8",
                                                           "empty",            "bad_conversation",
                                                           "template_error"};
    return reason >= 0 && reason < CPT_PREP_N_REASONS ? names[reason] : "?";
}

/* Offset of the first byte that is not valid UTF-8, or n. */
static size_t first_bad_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t j = i;
        uint32_t cp = txt_next(s, n, &j);
        if (cp >= 0x80 && j == i + 1) return i;
        i = j;
    }
    return n;
}

/* Steps 1-3 of the header. Returns ST_KEEP with *out (malloc'ed), or a drop status; for
 * ST_MALFORMED *why is a CPT_PREP_* reason. `malformed` is the reader's DRD_* code. */
static int clean(const cpt_prepare_cfg *c, int kind, const char *text, size_t n, int malformed, char **out,
                 size_t *out_n, cpt_filter_stats *fst, cpt_err *err, int *rc, int *why) {
    *out = NULL;
    *rc = CPT_OK;
    *why = CPT_PREP_EMPTY;
    if (malformed) {
        *why = malformed == DRD_NO_FIELD ? CPT_PREP_NO_FIELD
               : malformed == DRD_BAD_UTF8 ? CPT_PREP_BAD_UTF8
                                           : CPT_PREP_BAD_JSON;
        return ST_MALFORMED;
    }
    if (first_bad_utf8(text, n) < n) {
        *why = CPT_PREP_BAD_UTF8;
        return ST_MALFORMED;
    }
    char *norm = NULL;
    size_t nn = n;
#ifdef CPT_HAVE_UTF8PROC
    if (c->nfc && !txt_nfc_quick(text, n)) { /* already-NFC text (the common case) is not copied */
        int r = txt_nfc(text, n, &norm, &nn); /* only the pieces that may change go through utf8proc */
        if (r == -1) {
            *rc = cpt_err_set(err, CPT_ENOMEM, "prepare: out of memory");
            return ST_MALFORMED;
        }
        if (r < 0) {
            *why = CPT_PREP_BAD_UTF8;
            return ST_MALFORMED;
        }
    }
#endif
    const char *t = norm ? norm : text;
    char *res = NULL;
    size_t rn = 0;
    int st = ST_KEEP;
    if (c->filters) {
        cpt_filter_cfg fk;
        cpt_filter_cfg_for_kind(&c->filter, kind, &fk);
        int r = cpt_filter_apply(&fk, t, nn, &res, &rn, fst, err);
        if (r < 0) *rc = r;
        else if (r != CPT_FR_KEEP) st = ST_FILTERED;
    } else {
        res = malloc(nn + 1);
        if (!res) *rc = cpt_err_set(err, CPT_ENOMEM, "prepare: out of memory");
        else {
            memcpy(res, t, nn);
            res[nn] = 0;
            rn = nn;
        }
    }
    free(norm);
    if (*rc || st != ST_KEEP) {
        free(res);
        return *rc ? ST_MALFORMED : st;
    }
    size_t a = 0;
    while (a < rn && (res[a] == ' ' || (res[a] >= '\t' && res[a] <= '\r'))) a++;
    if (a == rn) {
        free(res);
        return ST_MALFORMED; /* empty after cleaning */
    }
    *out = res;
    *out_n = rn;
    return ST_KEEP;
}

/* Chat mode's steps 1 and 4 input: validate the conversation `raw` (a .jsonl line),
 * render it (*out: the text exact dedup sees) and gather its message contents joined by
 * '\n' (*contents: what decontamination and MinHash see). Encoding once here proves the
 * loss mask can be placed, so pass 2 cannot fail on a kept conversation. `msg` gets the
 * reason's detail for --strict. */
static int chat_clean(const cpt_chat *ch, const char *raw, size_t n, char **out, size_t *out_n, char **contents,
                      size_t *cont_n, cpt_err *msg, int *rc, int *why) {
    *out = *contents = NULL;
    *rc = CPT_OK;
    json_error_t je;
    json_t *j = json_loadb(raw, n, JSON_REJECT_DUPLICATES, &je);
    if (!j || !json_is_object(j)) {
        *why = !j && json_error_code(&je) == json_error_invalid_utf8 ? CPT_PREP_BAD_UTF8 : CPT_PREP_BAD_JSON;
        json_decref(j);
        return ST_MALFORMED;
    }
    /* contents: messages[].content, or prompt + response */
    json_t *m = json_object_get(j, "messages");
    size_t cap = 0, len = 0;
    char *buf = NULL;
    json_t *parts[2] = {json_object_get(j, "prompt"), json_object_get(j, "response")};
    size_t np = m ? json_array_size(m) : 2;
    for (size_t i = 0; i < np; i++) {
        json_t *t = m ? json_object_get(json_array_get(m, i), "content") : parts[i];
        if (!json_is_string(t)) continue;
        size_t tn = json_string_length(t);
        if (len + tn + 2 > cap) {
            size_t nc = cap ? cap : 256;
            while (nc < len + tn + 2) nc *= 2;
            char *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                json_decref(j);
                *rc = cpt_err_set(msg, CPT_ENOMEM, "prepare: out of memory");
                return ST_MALFORMED;
            }
            buf = nb;
            cap = nc;
        }
        if (len) buf[len++] = '\n';
        memcpy(buf + len, json_string_value(t), tn);
        len += tn;
    }
    json_decref(j);
    int32_t *ids = NULL;
    uint8_t *mask = NULL;
    size_t nids = 0;
    int r = cpt_chat_encode(ch, raw, n, &ids, &mask, &nids, msg);
    free(ids);
    free(mask);
    if (!r) r = cpt_chat_render(ch, raw, n, out, out_n, msg);
    if (r) {
        free(buf);
        free(*out);
        *out = NULL;
        if (r == CPT_EFORMAT) *why = CPT_PREP_BAD_CONV;
        else if (r == CPT_EINVAL) *why = CPT_PREP_TEMPLATE;
        else *rc = r;
        return ST_MALFORMED;
    }
    if (!buf) buf = calloc(1, 1);
    if (!buf) {
        *rc = cpt_err_set(msg, CPT_ENOMEM, "prepare: out of memory");
        return ST_MALFORMED;
    }
    buf[len] = 0;
    *contents = buf;
    *cont_n = len;
    size_t a = 0;
    while (a < *out_n && ((*out)[a] == ' ' || ((*out)[a] >= '\t' && (*out)[a] <= '\r'))) a++;
    if (a == *out_n) {
        *why = CPT_PREP_EMPTY;
        free(*out);
        free(*contents);
        *out = *contents = NULL;
        return ST_MALFORMED;
    }
    return ST_KEEP;
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

/* The kind of a document of n bytes from a file of kind fk (cpt_prepare_file_kind). */
static int doc_kind(const cpt_prepare_cfg *c, int fk, size_t n) {
    if (c->kind != CPT_KIND_AUTO) return c->kind;
    if (fk != CPT_KIND_AUTO) return fk;
    return n >= CPT_PREPARE_LONG_DOC_BYTES ? CPT_KIND_BOOK : CPT_KIND_WEB;
}

static uint64_t split_hash(uint64_t seed, uint64_t i) { return cpt_mix64(seed ^ cpt_mix64(i + 0x5eedull)); }

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Output shards of one split. */
typedef struct out_split {
    const char *name; /* "train" / "val" */
    const char *dir;
    uint32_t vocab;
    uint64_t limit;
    cpt_shard_writer *w;
    uint64_t shards, docs, tokens;
} out_split;

static int split_add(out_split *o, const uint32_t *ids, const uint8_t *mask, size_t n, cpt_err *err) {
    int rc;
    if (!o->w) {
        char name[64], *path;
        snprintf(name, sizeof name, "%s-%05llu.shard", o->name, (unsigned long long)o->shards);
        path = cpt_path_join(o->dir, name);
        if (!path) return cpt_err_set(err, CPT_ENOMEM, "prepare: out of memory");
        rc = cpt_shard_writer_open(&o->w, path, o->vocab, err);
        free(path);
        if (rc) return rc;
    }
    rc = mask ? cpt_shard_writer_add_masked(o->w, ids, mask, n, err) : cpt_shard_writer_add(o->w, ids, n, err);
    if (rc) return rc;
    o->docs++;
    o->tokens += n;
    if (cpt_shard_writer_n_tokens(o->w) >= o->limit) {
        rc = cpt_shard_writer_commit(o->w, err);
        o->w = NULL;
        o->shards++;
        return rc;
    }
    return CPT_OK;
}

static int split_finish(out_split *o, cpt_err *err) {
    if (!o->w) return CPT_OK;
    int rc = cpt_shard_writer_commit(o->w, err);
    o->w = NULL;
    o->shards++;
    return rc;
}

/* A batch of kept documents waiting for tokenization. */
enum { BATCH = 256 };
typedef struct batch {
    char *raw[BATCH]; /* input text (cleaned again here: cleaning is deterministic) */
    size_t raw_len[BATCH], line[BATCH], file[BATCH];
    int kind[BATCH];
    char *text[BATCH];
    size_t len[BATCH];
    int val[BATCH];
    size_t n;
} batch;

static int flush(const cpt_prepare_cfg *c, batch *b, const cpt_tok *tok, int threads, out_split *tr,
                 out_split *va, cpt_prepare_stats *st, cpt_err *err) {
    if (b->n == 0) return CPT_OK;
    int32_t *ids[BATCH];
    size_t nids[BATCH], rep[BATCH];
    int crc[BATCH], cst[BATCH], why[BATCH];
    int nt = threads > 0 ? threads : omp_get_max_threads();
    long n = (long)b->n;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 8)
    for (long i = 0; i < n; i++)
        cst[i] = clean(c, b->kind[i], b->raw[i], b->raw_len[i], 0, &b->text[i], &b->len[i], NULL, NULL, &crc[i],
                       &why[i]);
    int rc = CPT_OK;
    for (size_t i = 0; i < b->n && !rc; i++)
        if (crc[i] || cst[i] != ST_KEEP)
            rc = cpt_err_set(err, crc[i] ? crc[i] : CPT_ESTATE,
                             "%s:%zu: document changed between passes or could not be cleaned. HINT: do not "
                             "modify inputs during a run", c->inputs[b->file[i]], b->line[i]);
    if (rc) {
        for (size_t i = 0; i < b->n; i++) {
            free(b->text[i]);
            free(b->raw[i]);
            b->text[i] = b->raw[i] = NULL;
        }
        b->n = 0;
        return rc;
    }
    rc = cpt_tok_encode_batch(tok, (const char *const *)b->text, b->len, b->n, 1, threads, ids, nids,
                                  rep, err);
    int eos = cpt_tok_eos(tok);
    uint32_t *u = NULL;
    int encoded = rc == CPT_OK; /* on failure encode_batch has freed and cleared ids */
    for (size_t i = 0; i < b->n && !rc; i++) {
        size_t n = nids[i];
        uint32_t *nu = realloc(u, (n + 1) * sizeof *u);
        if (!nu) {
            rc = cpt_err_set(err, CPT_ENOMEM, "prepare: out of memory");
            break;
        }
        u = nu;
        for (size_t k = 0; k < n; k++) u[k] = (uint32_t)ids[i][k];
        if (eos >= 0 && (n == 0 || ids[i][n - 1] != eos)) u[n++] = (uint32_t)eos;
        st->replaced_chars += rep[i];
        if (c->min_doc_tokens && n < c->min_doc_tokens) st->too_short++;
        else if (c->max_doc_tokens && n > c->max_doc_tokens) st->too_long++;
        else {
            st->docs_by_length[cpt_prepare_length_bucket(n)]++;
            rc = split_add(b->val[i] ? va : tr, u, NULL, n, err);
        }
    }
    if (encoded)
        for (size_t i = 0; i < b->n; i++) free(ids[i]);
    for (size_t i = 0; i < b->n; i++) {
        free(b->text[i]);
        free(b->raw[i]);
        b->text[i] = b->raw[i] = NULL;
    }
    free(u);
    b->n = 0;
    return rc;
}

/* Chat mode's flush: encode each conversation (parallel, pure) and write it with its mask. */
static int chat_flush(const cpt_prepare_cfg *c, batch *b, const cpt_chat *ch, out_split *tr, out_split *va,
                      cpt_err *err) {
    if (b->n == 0) return CPT_OK;
    int32_t *ids[BATCH];
    uint8_t *mask[BATCH];
    size_t nids[BATCH];
    int crc[BATCH];
    cpt_err errs[BATCH];
    int nt = c->threads > 0 ? c->threads : omp_get_max_threads();
    long n = (long)b->n;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 4)
    for (long i = 0; i < n; i++) {
        memset(&errs[i], 0, sizeof errs[i]);
        crc[i] = cpt_chat_encode(ch, b->raw[i], b->raw_len[i], &ids[i], &mask[i], &nids[i], &errs[i]);
    }
    int rc = CPT_OK;
    uint32_t *u = NULL;
    for (size_t i = 0; i < b->n; i++) {
        if (!rc && crc[i])
            rc = cpt_err_set(err, crc[i], "%s:%zu: %s (it passed pass 1). HINT: do not modify inputs during a run",
                             c->inputs[b->file[i]], b->line[i], errs[i].msg);
        if (!rc) {
            uint32_t *nu = realloc(u, (nids[i] + 1) * sizeof *u);
            if (!nu) rc = cpt_err_set(err, CPT_ENOMEM, "prepare: out of memory");
            else {
                u = nu;
                for (size_t k = 0; k < nids[i]; k++) u[k] = (uint32_t)ids[i][k];
                rc = split_add(b->val[i] ? va : tr, u, mask[i], nids[i], err);
            }
        }
        if (!crc[i]) {
            free(ids[i]);
            free(mask[i]);
        }
        free(b->raw[i]);
        b->raw[i] = NULL;
    }
    free(u);
    b->n = 0;
    return rc;
}

static int write_stats(const char *dir, const char *const *inputs, const cpt_prepare_stats *st, cpt_err *err) {
    json_t *o = json_object(), *f = json_object(), *l = json_object();
    for (int r = 1; r < CPT_FR_N_RULES; r++) json_object_set_new(f, cpt_filter_rule_name(r), json_integer((json_int_t)st->filter.dropped[r]));
    for (int r = 0; r < CPT_C4L_N; r++) json_object_set_new(l, cpt_filter_line_rule_name(r), json_integer((json_int_t)st->filter.c4_lines_dropped[r]));
    json_object_set_new(l, "c4_citations_removed", json_integer((json_int_t)st->filter.c4_citations));
#define SET(k, v) json_object_set_new(o, k, json_integer((json_int_t)(v)))
    SET("docs_in", st->docs_in);
    SET("kept", st->kept);
    SET("malformed", st->malformed);
    SET("filtered", st->filtered);
    json_object_set_new(o, "filtered_by_rule", f);
    json_object_set_new(o, "c4_lines", l);
    SET("exact_duplicates", st->exact_duplicates);
    SET("too_short", st->too_short);
    SET("too_long", st->too_long);
    json_t *bk = json_object(), *bs = json_object();
    for (int k = 1; k < CPT_KIND_N; k++)
        json_object_set_new(bk, cpt_filter_kind_name(k), json_integer((json_int_t)st->docs_by_kind[k]));
    for (int k = 0; k < CPT_SCRIPT_N; k++)
        json_object_set_new(bs, cpt_filter_script_name(k), json_integer((json_int_t)st->filter.by_script[k]));
    json_object_set_new(o, "docs_by_kind", bk);
    json_t *bl = json_object();
    for (int k = 0; k < CPT_PREPARE_N_LENGTHS; k++)
        json_object_set_new(bl, cpt_prepare_length_name(k), json_integer((json_int_t)st->docs_by_length[k]));
    json_object_set_new(o, "docs_by_tokens", bl);
    json_object_set_new(o, "docs_by_script", bs);
    SET("contaminated", st->contaminated);
    SET("near_duplicates", st->near_duplicates);
    SET("train_docs", st->train_docs);
    SET("train_tokens", st->train_tokens);
    SET("train_shards", st->train_shards);
    SET("val_docs", st->val_docs);
    SET("val_tokens", st->val_tokens);
    SET("val_shards", st->val_shards);
    SET("replaced_chars", st->replaced_chars);
    json_t *mb = json_object(), *iss = json_array();
    for (int k = 0; k < CPT_PREP_N_REASONS; k++)
        json_object_set_new(mb, cpt_prepare_reason_name(k), json_integer((json_int_t)st->malformed_by[k]));
    json_object_set_new(o, "malformed_by_reason", mb);
    for (size_t k = 0; k < st->n_issues; k++)
        json_array_append_new(iss, json_pack("{s:s,s:I,s:s}", "file", inputs[st->issues[k].file], "line",
                                             (json_int_t)st->issues[k].line, "reason",
                                             cpt_prepare_reason_name(st->issues[k].reason)));
    json_object_set_new(o, "first_issues", iss);
    SET("files", st->files);
    SET("empty_files", st->empty_files);
    SET("bytes_in", st->bytes_in);
#undef SET
    json_object_set_new(o, "identity", json_string("docs_in = kept + malformed + filtered + exact_duplicates + "
                                                   "contaminated + near_duplicates + too_short + too_long"));
    json_object_set_new(o, "seconds", json_real(st->seconds));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    if (!s) return cpt_err_set(err, CPT_ENOMEM, "prepare: out of memory writing stats.json");
    char *path = cpt_path_join(dir, "stats.json");
    int rc = path ? cpt_write_file_atomic(path, s, strlen(s), err) : cpt_err_set(err, CPT_ENOMEM, "out of memory");
    free(path);
    free(s);
    return rc;
}

static void fstats_add(cpt_filter_stats *a, const cpt_filter_stats *b) {
    a->docs += b->docs;
    a->kept += b->kept;
    for (int k = 0; k < CPT_FR_N_RULES; k++) a->dropped[k] += b->dropped[k];
    for (int k = 0; k < CPT_C4L_N; k++) a->c4_lines_dropped[k] += b->c4_lines_dropped[k];
    a->c4_citations += b->c4_citations;
    for (int k = 0; k < CPT_SCRIPT_N; k++) a->by_script[k] += b->by_script[k];
}

/* Pass 1 works on batches: cleaning, decontamination lookups and MinHash signatures run
 * in parallel (pure functions of one document); exact-dedup and LSH insertion then run
 * in input order, so the result does not depend on the thread count. */
enum { P1 = 512 };
typedef struct p1doc {
    char *raw;
    size_t len, line, file;
    int mal, s, hit, rc, why, kind, dup;
    char *cl;
    size_t cn, ns;
    char *ct; /* chat mode: message contents for decontamination and MinHash */
    size_t ctn;
    uint64_t key[2]; /* exact-dedup key, computed by the workers */
    cpt_filter_stats fs;
} p1doc;

typedef struct p1ctx {
    const cpt_prepare_cfg *c;
    p1doc *d;
    size_t n;
    uint32_t *sigs; /* [P1 * K] */
    cpt_err *errs;  /* [P1] */
    const cpt_minhash *mh;
    const cpt_decon *dc;
    cpt_dedup_exact *ex;
    cpt_lsh *lsh;
    uint8_t **status;
    size_t *scap;
    const cpt_chat *chat; /* chat mode, else NULL */
    const int *file_kind; /* [n_inputs] cpt_prepare_file_kind */
} p1ctx;

/* Count a malformed document under its reason, list it among the first issues, and fail
 * in strict mode (empty documents are a cleaning outcome, not an input defect). */
static int note_malformed(const cpt_prepare_cfg *c, const p1doc *d, const char *detail, cpt_prepare_stats *st,
                          cpt_err *err) {
    uint64_t line = d->line;
    if (d->why == CPT_PREP_BAD_UTF8 && !d->mal) { /* text: the line of the first bad byte */
        size_t bad = first_bad_utf8(d->raw, d->len);
        for (size_t i = 0; i < bad; i++) line += d->raw[i] == '\n';
    }
    st->malformed_by[d->why]++;
    if (st->n_issues < CPT_PREPARE_MAX_ISSUES) st->issues[st->n_issues++] = (cpt_prepare_issue){d->file, line, d->why};
    if (c->strict && d->why != CPT_PREP_EMPTY && c->chat) {
        static const char *const what[] = {"not a JSON object", "", "invalid UTF-8", "", "not a usable conversation",
                                           "rejected by the chat template"};
        return cpt_err_set(err, CPT_EFORMAT,
                           "%s:%llu: %s%s%s (strict mode). HINT: fix or drop the line, or run without --strict to "
                           "count and skip it", c->inputs[d->file], (unsigned long long)line, what[d->why],
                           detail && *detail ? ": " : "", detail ? detail : "");
    }
    if (c->strict && d->why != CPT_PREP_EMPTY) {
        static const char *const what[] = {"not a JSON object", "no string field", "invalid UTF-8"};
        return cpt_err_set(err, CPT_EFORMAT,
                           "%s:%llu: %s%s%s (strict mode). HINT: fix or drop the line, or run without --strict to "
                           "count and skip it", c->inputs[d->file], (unsigned long long)line, what[d->why],
                           d->why == CPT_PREP_NO_FIELD ? " " : "",
                           d->why == CPT_PREP_NO_FIELD ? (c->text_field ? c->text_field : "text") : "");
    }
    return CPT_OK;
}

static void report(const cpt_prepare_cfg *c, int pass, uint64_t done, uint64_t total, uint64_t docs) {
    if (!c->progress) return;
    cpt_prepare_progress p = {pass, done, total, docs};
    c->progress(c->progress_user, &p);
}

static int p1_flush(p1ctx *x, cpt_prepare_stats *st, cpt_err *err) {
    const cpt_prepare_cfg *c = x->c;
    size_t K = cpt_minhash_len(x->mh);
    int nt = c->threads > 0 ? c->threads : omp_get_max_threads();
    long n = (long)x->n;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 8)
    for (long i = 0; i < n; i++) {
        p1doc *d = &x->d[i];
        cpt_err *e = &x->errs[i];
        memset(e, 0, sizeof *e);
        memset(&d->fs, 0, sizeof d->fs);
        d->hit = 0;
        d->ns = 0;
        d->ct = NULL;
        if (x->chat) {
            d->s = chat_clean(x->chat, d->raw, d->len, &d->cl, &d->cn, &d->ct, &d->ctn, e, &d->rc, &d->why);
            if (!d->rc && d->s == ST_MALFORMED) e->code = 0; /* e holds the reason's detail, not an error */
            if (!d->rc && d->s == ST_KEEP && c->exact_dedup) d->rc = cpt_dedup_exact_key(d->cl, d->cn, d->key, e);
        } else {
            /* The exact-dedup key of the text before the filters (NFC + strip), so a repeated
             * document is a duplicate whatever the filters say of it. */
            d->kind = doc_kind(c, x->file_kind[d->file], d->len);
            d->dup = 0;
            if (c->exact_dedup && !d->mal && first_bad_utf8(d->raw, d->len) == d->len) {
                d->rc = cpt_dedup_exact_key(d->raw, d->len, d->key, e);
                d->dup = !d->rc; /* a key to look up */
            }
            d->s = ST_MALFORMED;
            if (!d->rc)
                d->s = clean(c, d->kind, d->raw, d->len, d->mal, &d->cl, &d->cn, &d->fs, e, &d->rc, &d->why);
        }
        const char *dt = d->ct ? d->ct : d->cl; /* what decontamination and MinHash see */
        size_t dn = d->ct ? d->ctn : d->cn;
        if (!d->rc && d->s == ST_KEEP && c->n_eval) d->rc = cpt_decon_check(x->dc, dt, dn, &d->hit, e);
        if (!d->rc && d->s == ST_KEEP && c->near_dedup)
            d->rc = cpt_minhash_signature(x->mh, dt, dn, x->sigs + (size_t)i * K, &d->ns, e);
    }
    int rc = CPT_OK;
    for (size_t i = 0; i < x->n; i++) {
        p1doc *d = &x->d[i];
        if (!rc && d->rc) {
            rc = cpt_err_set(err, d->rc, "%s:%zu: %s", c->inputs[d->file], d->line, x->errs[i].msg);
        }
        int s = d->s;
        if (!rc && c->exact_dedup && (x->chat ? s == ST_KEEP : d->dup && s != ST_MALFORMED)) {
            int dup = 0;
            rc = dedup_exact_add_key(x->ex, d->key, &dup, err);
            if (dup) s = ST_EXACT; /* not counted under the filter rule it may also trip */
        }
        if (!rc && s == ST_MALFORMED) rc = note_malformed(c, d, x->errs[i].msg, st, err);
        if (!rc) {
            if (s != ST_EXACT) fstats_add(&st->filter, &d->fs);
            if (s != ST_MALFORMED && !x->chat) st->docs_by_kind[d->kind]++;
            if (!rc && s == ST_KEEP && d->hit) s = ST_CONTAM;
            if (!rc && s == ST_KEEP) {
                s = ST_LSH;
                uint64_t id;
                if (c->near_dedup) rc = cpt_lsh_add(x->lsh, x->sigs + i * K, d->ns > 0, &id, err);
            }
            if (rc) cpt_err_wrap(err, "%s:%zu", c->inputs[d->file], d->line);
            if (!rc && st->docs_in == *x->scap) {
                size_t nc = *x->scap ? 2 * *x->scap : 4096;
                uint8_t *ns = realloc(*x->status, nc);
                if (!ns) rc = cpt_err_set(err, CPT_ENOMEM, "prepare: out of memory");
                else {
                    *x->status = ns;
                    *x->scap = nc;
                }
            }
            if (!rc) (*x->status)[st->docs_in++] = (uint8_t)s;
        }
        free(d->cl);
        free(d->ct);
        free(d->raw);
        d->cl = d->ct = d->raw = NULL;
    }
    x->n = 0;
    return rc;
}

/* A run that keeps nothing: name the reason that removed the most documents and the
 * option that turns it off. */
static int kept_nothing(const cpt_prepare_cfg *c, const cpt_prepare_stats *st, cpt_err *err) {
    uint64_t best = 0;
    const char *what = "?", *hint = "?";
    char buf[160];
    for (int r = 1; r < CPT_FR_N_RULES; r++) {
        if (st->filter.dropped[r] <= best) continue;
        best = st->filter.dropped[r];
        what = cpt_filter_rule_name(r);
        hint = r <= CPT_FR_DUP_10GRAM ? "--no-gopher-repetition (long documents: a smaller --repetition-window; "
                                        "source files: --kind code)"
               : r <= CPT_FR_STOP_WORDS ? "--no-gopher-quality (or --kind code for source files)"
                                        : "--no-c4 (or --kind book: no C4 line rewriting)";
    }
    struct {
        uint64_t n;
        const char *what, *hint;
    } other[] = {
        {st->exact_duplicates, "exact_duplicates", "--no-exact-dedup (every document repeats an earlier one)"},
        {st->near_duplicates, "near_duplicates", "--no-near-dedup"},
        {st->contaminated, "contaminated", "fewer --decontaminate files (every document overlaps one)"},
        {st->too_short, "too_short", "a lower --min-doc-tokens"},
        {st->too_long, "too_long", "a higher --max-doc-tokens"},
        {st->malformed, "malformed", "check the format; for .jsonl, --text-field names the text field"},
    };
    for (size_t k = 0; k < sizeof other / sizeof *other; k++)
        if (other[k].n > best) {
            best = other[k].n;
            what = other[k].what;
            hint = other[k].hint;
        }
    if (st->malformed == best && st->malformed_by[CPT_PREP_NO_FIELD] * 2 > st->malformed) {
        snprintf(buf, sizeof buf, "--text-field NAME (no string field \"%s\")", c->text_field ? c->text_field : "text");
        hint = buf;
    }
    return cpt_err_set(err, CPT_EINVAL,
                       "prepare: kept 0 of %llu documents: %s removed %llu (counts in %s/stats.json). HINT: %s",
                       (unsigned long long)st->docs_in, what, (unsigned long long)best, c->out_dir, hint);
}

int cpt_prepare_run(const cpt_prepare_cfg *c, cpt_prepare_stats *st, cpt_err *err) {
    memset(st, 0, sizeof *st);
    double t0 = cpt_now();
    if (!c->out_dir || !c->tokenizer || c->n_inputs == 0)
        return cpt_err_set(err, CPT_EINVAL, "prepare: inputs, tokenizer and out_dir are required. HINT: set them in the config");
    if (!(c->val_fraction >= 0 && c->val_fraction < 1))
        return cpt_err_set(err, CPT_EINVAL, "prepare: val_fraction %g is outside [0, 1). HINT: e.g. 0.005", c->val_fraction);
    int rc = cpt_mkdirs(c->out_dir, err);
    if (rc) return rc;
    cpt_tok *tok = NULL;
    cpt_dedup_exact *ex = NULL;
    cpt_minhash *mh = NULL;
    cpt_lsh *lsh = NULL;
    cpt_decon *dc = NULL;
    cpt_chat *chat = NULL;
    char *tpl = NULL;
    uint8_t *status = NULL;
    uint64_t *hs = NULL;
    uint64_t *first = calloc(c->n_inputs + 1, sizeof *first); /* first[fi]: index of file fi's first document */
    int *file_kind = calloc(c->n_inputs + 1, sizeof *file_kind);
    if (!first || !file_kind) {
        free(first);
        free(file_kind);
        return cpt_err_set(err, CPT_ENOMEM, "prepare: out of memory");
    }
    for (size_t fi = 0; fi < c->n_inputs; fi++) file_kind[fi] = cpt_prepare_file_kind(c->inputs[fi], c->txt_blank);
    size_t scap = 0;
    drd *r = NULL;
    batch b = {0};
    out_split tr = {"train", c->out_dir, 0, c->shard_tokens ? c->shard_tokens : (1ull << 30), NULL, 0, 0, 0};
    out_split va = {"val", c->out_dir, 0, tr.limit, NULL, 0, 0, 0};

    if ((rc = cpt_tok_load(&tok, c->tokenizer, err))) goto done;
    tr.vocab = va.vocab = (uint32_t)cpt_tok_vocab_size(tok);
    if (c->chat) {
        for (size_t fi = 0; fi < c->n_inputs; fi++) {
            const char *f = c->inputs[fi];
            if (!ends_with(f, ".jsonl") && !ends_with(f, ".jsonl.gz") && !ends_with(f, ".jsonl.zst")) {
                rc = cpt_err_set(err, CPT_EINVAL,
                                 "%s: chat data must be .jsonl (one conversation per line). HINT: convert it, or "
                                 "prepare text files in a separate run without --chat", f);
                goto done;
            }
        }
        size_t tn = 0;
        if (c->chat_template && (rc = cpt_read_file(c->chat_template, &tpl, &tn, err))) goto done;
        if (tpl && strlen(tpl) != tn) {
            rc = cpt_err_set(err, CPT_EFORMAT, "%s: the chat template holds a NUL byte. HINT: pass a text file",
                             c->chat_template);
            goto done;
        }
        if ((rc = cpt_chat_open(&chat, tok, tpl, err))) {
            if (c->chat_template) cpt_err_wrap(err, "%s", c->chat_template);
            goto done;
        }
    }
    if ((rc = cpt_dedup_exact_open(&ex, err))) goto done;
    if ((rc = cpt_minhash_open(&mh, &c->minhash, err))) goto done;
    if ((rc = cpt_lsh_open(&lsh, c->minhash.bands, c->minhash.rows, err))) goto done;
    if ((rc = cpt_decon_open(&dc, c->decon_ngram ? c->decon_ngram : 13, err))) goto done;
    for (size_t i = 0; i < c->n_eval; i++)
        if ((rc = cpt_decon_add_file(dc, c->eval_files[i], err))) goto done;

    for (size_t fi = 0; fi < c->n_inputs; fi++) {
        struct stat sb;
        if (stat(c->inputs[fi], &sb) == 0) st->bytes_in += (uint64_t)sb.st_size;
    }
    st->files = c->n_inputs;
    uint64_t bytes_before = 0;

    /* ---- pass 1: decide every document's fate ---- */
    p1ctx x = {c, calloc(P1, sizeof(p1doc)), 0, malloc(P1 * cpt_minhash_len(mh) * sizeof(uint32_t)),
               malloc(P1 * sizeof(cpt_err)), mh, dc, ex, lsh, &status, &scap, chat, file_kind};
    if (!x.d || !x.sigs || !x.errs) {
        rc = cpt_err_set(err, CPT_ENOMEM, "prepare: out of memory");
        goto p1_done;
    }
    for (size_t fi = 0; fi < c->n_inputs && !rc; fi++) {
        if ((rc = drd_open(&r, c->inputs[fi], c->text_field, c->txt_blank, err))) goto p1_done;
        if (chat) drd_set_raw_lines(r);
        const char *text;
        size_t len, line;
        int mal, k;
        uint64_t docs_before = st->docs_in + x.n;
        first[fi] = docs_before;
        while ((k = drd_next(r, &text, &len, &mal, &line, err)) == 1) {
            p1doc *d = &x.d[x.n];
            d->raw = malloc(len + 1);
            if (!d->raw) {
                rc = cpt_err_set(err, CPT_ENOMEM, "prepare: out of memory");
                goto p1_done;
            }
            memcpy(d->raw, text, len);
            d->raw[len] = 0;
            d->len = len;
            d->mal = mal;
            d->line = line;
            d->file = fi;
            if (++x.n == P1) {
                if ((rc = p1_flush(&x, st, err))) goto p1_done;
                report(c, 1, bytes_before + drd_bytes(r), st->bytes_in, st->docs_in);
            }
        }
        if (k < 0) {
            rc = k;
            goto p1_done;
        }
        if (st->docs_in + x.n == docs_before) st->empty_files++;
        bytes_before += drd_bytes(r);
        drd_close(r);
        r = NULL;
    }
    rc = p1_flush(&x, st, err);
    first[c->n_inputs] = st->docs_in;
    if (!rc) report(c, 1, st->bytes_in, st->bytes_in, st->docs_in);
p1_done:
    for (size_t i = 0; x.d && i < x.n; i++) free(x.d[i].raw);
    free(x.d);
    free(x.sigs);
    free(x.errs);
    if (rc) goto done;
    /* Near-duplicate survivors, then the validation threshold. */
    uint64_t lid = 0, thr = 0;
    for (uint64_t g = 0; g < st->docs_in; g++) {
        if (status[g] != ST_LSH) continue;
        if (c->near_dedup && cpt_lsh_survivor(lsh, lid) != lid) status[g] = ST_NEAR;
        else status[g] = ST_KEEP;
        lid++;
    }
    for (uint64_t g = 0; g < st->docs_in; g++) {
        switch (status[g]) {
        case ST_KEEP: st->kept++; break;
        case ST_MALFORMED: st->malformed++; break;
        case ST_FILTERED: st->filtered++; break;
        case ST_EXACT: st->exact_duplicates++; break;
        case ST_CONTAM: st->contaminated++; break;
        default: st->near_duplicates++; break;
        }
    }
    if (st->kept == 0 && st->docs_in > 0) {
        st->seconds = cpt_now() - t0;
        write_stats(c->out_dir, c->inputs, st, NULL);
        rc = kept_nothing(c, st, err);
        goto done;
    }
    if (c->val_docs > 0) {
        if (c->val_docs >= st->kept) {
            rc = cpt_err_set(err, CPT_EINVAL,
                             "prepare: val_docs %llu but only %llu documents survive cleaning. HINT: lower "
                             "val_docs or use val_fraction", (unsigned long long)c->val_docs,
                             (unsigned long long)st->kept);
            goto done;
        }
        hs = malloc(st->kept * sizeof *hs);
        if (!hs) {
            rc = cpt_err_set(err, CPT_ENOMEM, "prepare: out of memory");
            goto done;
        }
        size_t k = 0;
        for (uint64_t g = 0; g < st->docs_in; g++)
            if (status[g] == ST_KEEP) hs[k++] = split_hash(c->seed, g);
        qsort(hs, k, sizeof *hs, cmp_u64);
        thr = hs[c->val_docs - 1]; /* val iff h <= thr */
    } else {
        long double f = (long double)c->val_fraction * 18446744073709551616.0L;
        thr = c->val_fraction <= 0 ? 0 : (uint64_t)f;
    }

    /* ---- pass 2: tokenize and write the survivors ---- */
    uint64_t g = 0;
    bytes_before = 0;
    for (size_t fi = 0; fi < c->n_inputs && !rc; fi++) {
        /* A file none of whose documents survived (a repeated copy, all duplicates) is not read again. */
        int any = 0;
        for (uint64_t k = first[fi]; k < first[fi + 1] && !any; k++) any = status[k] == ST_KEEP;
        if (!any) {
            g = first[fi + 1];
            struct stat sb;
            if (stat(c->inputs[fi], &sb) == 0) bytes_before += (uint64_t)sb.st_size;
            continue;
        }
        if ((rc = drd_open(&r, c->inputs[fi], c->text_field, c->txt_blank, err))) goto done;
        if (chat) drd_set_raw_lines(r);
        const char *text;
        size_t len, line;
        int mal, k;
        while ((k = drd_next(r, &text, &len, &mal, &line, err)) == 1) {
            if (g >= st->docs_in) {
                rc = cpt_err_set(err, CPT_ESTATE, "%s: changed while being prepared. HINT: do not modify inputs during a run",
                                 c->inputs[fi]);
                goto done;
            }
            uint64_t me = g++;
            if (status[me] != ST_KEEP) continue;
            uint64_t h = split_hash(c->seed, me);
            b.raw[b.n] = malloc(len + 1);
            if (!b.raw[b.n]) {
                rc = cpt_err_set(err, CPT_ENOMEM, "prepare: out of memory");
                goto done;
            }
            memcpy(b.raw[b.n], text, len);
            b.raw_len[b.n] = len;
            b.line[b.n] = line;
            b.file[b.n] = fi;
            b.kind[b.n] = doc_kind(c, file_kind[fi], len);
            b.val[b.n] = c->val_docs > 0 ? h <= thr : h < thr;
            if (++b.n == BATCH) {
                rc = chat ? chat_flush(c, &b, chat, &tr, &va, err) : flush(c, &b, tok, c->threads, &tr, &va, st, err);
                if (rc) goto done;
                report(c, 2, bytes_before + drd_bytes(r), st->bytes_in, g);
            }
        }
        if (k < 0) {
            rc = k;
            goto done;
        }
        bytes_before += drd_bytes(r);
        drd_close(r);
        r = NULL;
    }
    rc = chat ? chat_flush(c, &b, chat, &tr, &va, err) : flush(c, &b, tok, c->threads, &tr, &va, st, err);
    if (rc) goto done;
    report(c, 2, st->bytes_in, st->bytes_in, g);
    if ((rc = split_finish(&tr, err)) || (rc = split_finish(&va, err))) goto done;
    st->train_docs = tr.docs;
    st->train_tokens = tr.tokens;
    st->train_shards = tr.shards;
    st->val_docs = va.docs;
    st->val_tokens = va.tokens;
    st->val_shards = va.shards;
    st->kept -= st->too_short + st->too_long;
    st->seconds = cpt_now() - t0;
    rc = write_stats(c->out_dir, c->inputs, st, err);
    if (!rc && st->kept == 0) rc = kept_nothing(c, st, err);
done:
    for (size_t i = 0; i < b.n; i++) free(b.raw[i]);
    cpt_shard_writer_abort(tr.w);
    cpt_shard_writer_abort(va.w);
    drd_close(r);
    free(status);
    free(hs);
    free(first);
    free(file_kind);
    cpt_decon_close(dc);
    cpt_lsh_close(lsh);
    cpt_minhash_close(mh);
    cpt_dedup_exact_close(ex);
    cpt_chat_close(chat);
    free(tpl);
    cpt_tok_free(tok);
    return rc;
}
