/* tokenizer.c: cpt_tok lifecycle, the encode pipeline, batch encoding and lookups.
 * Not the file parsing (load_json.c) nor decoding (decode.c). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "tok/tok_impl.h"

long tok_utf8_sanitize_into(const char *in, size_t len, tok_buf *out);

/* "x/llama3_tokenizer.json" -> "x/llama3_tokenizer_config.json"; NULL if the name
 * does not end in tokenizer.json. */
static char *config_path_for(const char *json) {
    size_t n = strlen(json), k = strlen("tokenizer.json");
    if (n < k || strcmp(json + n - k, "tokenizer.json")) return NULL;
    char *p = malloc(n + 8);
    if (!p) return NULL;
    memcpy(p, json, n - 5);
    strcpy(p + n - 5, "_config.json");
    return p;
}

/* By name first (*.json, *.model*), else by content: a tokenizer.json starts (after
 * white space) with '{' (or '[' if broken); a SentencePiece model is binary. */
static int looks_like_json(const char *path) {
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".json")) return 1;
    const char *base = strrchr(path, '/');
    if (strstr(base ? base : path, ".model")) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    int c;
    while ((c = fgetc(f)) == ' ' || c == '\t' || c == '\n' || c == '\r') {
    }
    fclose(f);
    return c == '{' || c == '[' || c == EOF;
}

/* dirname(path) + "/tokenizer_config.json" */
static char *config_next_to(const char *path) {
    const char *sl = strrchr(path, '/');
    if (!sl) return strdup("tokenizer_config.json");
    size_t n = (size_t)(sl - path);
    char *dir = malloc(n + 1);
    if (!dir) return NULL;
    memcpy(dir, path, n);
    dir[n] = '\0';
    char *p = cpt_path_join(n ? dir : "/", "tokenizer_config.json");
    free(dir);
    return p;
}

/* The single-sequence template from add_bos_token / add_eos_token (LlamaTokenizer's
 * rule: [bos] $A [eos]). A flag the config leaves out keeps what the file does: for
 * a .model, BOS if the model has one and no EOS; for tokenizer.json, the template's
 * own first / last special token. */
static int apply_special_flags(cpt_tok *t, cpt_err *err) {
    int file_bos = t->n_tmpl > 0 && t->tmpl[0] >= 0, file_eos = t->n_tmpl > 0 && t->tmpl[t->n_tmpl - 1] >= 0;
    if (t->spm) {
        file_bos = t->bos >= 0;
        file_eos = 0;
    } else if (t->cfg_add_bos < 0 && t->cfg_add_eos < 0) {
        return 0; /* the file's template stands */
    }
    int add_bos = t->cfg_add_bos >= 0 ? t->cfg_add_bos : file_bos;
    int add_eos = t->cfg_add_eos >= 0 ? t->cfg_add_eos : file_eos;
    if ((add_bos && t->bos < 0) || (add_eos && t->eos < 0))
        return cpt_err_set(err, CPT_EFORMAT,
                           "%s: tokenizer_config.json asks for add_%s_token but the tokenizer has no "
                           "%s token; HINT: set %s_token in tokenizer_config.json or the flag to false",
                           t->path, add_bos && t->bos < 0 ? "bos" : "eos", add_bos && t->bos < 0 ? "BOS" : "EOS",
                           add_bos && t->bos < 0 ? "bos" : "eos");
    int32_t *v = malloc(3 * sizeof *v);
    if (!v) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", t->path);
    size_t k = 0;
    if (add_bos) v[k++] = t->bos;
    v[k++] = -1;
    if (add_eos) v[k++] = t->eos;
    free(t->tmpl);
    t->tmpl = v;
    t->n_tmpl = k;
    return 0;
}

int cpt_tok_load(cpt_tok **out, const char *path, cpt_err *err) {
    CPT_ASSERT(out && path);
    *out = NULL;
    cpt_tok *t = calloc(1, sizeof *t);
    if (!t) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", path);
    t->bos = t->eos = t->pad = t->unk = -1;
    t->cfg_add_bos = t->cfg_add_eos = -1;
    if (pthread_mutex_init(&t->pool_mu, NULL)) {
        free(t);
        return cpt_err_set(err, CPT_ENOMEM, "%s: cannot create a mutex", path);
    }
    t->pool_ok = 1;
    t->bpe.unk_id = -1;
    int rc = 0, spm = 0;
    char *file = NULL, *cfg = NULL;
    if (cpt_is_dir(path)) {
        file = cpt_path_join(path, "tokenizer.json");
        if (file && !cpt_is_file(file)) {
            free(file);
            file = cpt_path_join(path, "tokenizer.model");
            spm = 1;
            if (file && !cpt_is_file(file)) {
                rc = cpt_err_set(err, CPT_ENOTFOUND,
                                 "%s: neither tokenizer.json nor tokenizer.model in this directory; "
                                 "HINT: pass the tokenizer file itself, or the model directory that holds it",
                                 path);
                goto fail;
            }
        }
    } else {
        file = strdup(path);
        spm = !looks_like_json(path);
    }
    if (!file) {
        rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    t->path = strdup(file);
    if (!t->path) {
        rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (spm) {
        if ((rc = tok_load_spm(t, file, err))) goto fail;
        cfg = config_next_to(file);
    } else {
        if ((rc = tok_load_json(t, file, err))) goto fail;
        t->unk = t->bpe.unk_id;
        cfg = config_path_for(file);
    }
    if (cfg && cpt_is_file(cfg) && (rc = tok_load_config(t, cfg, err))) goto fail;
    if (t->bos < 0 && t->n_tmpl > 0 && t->tmpl[0] >= 0) t->bos = t->tmpl[0];
    if ((rc = apply_special_flags(t, err))) goto fail;
    free(file);
    free(cfg);
    *out = t;
    return 0;
fail:
    free(file);
    free(cfg);
    cpt_tok_free(t);
    return rc;
}

void cpt_tok_free(cpt_tok *t) {
    if (!t) return;
    free(t->path);
    tok_smap_free(&t->bpe.vocab);
    tok_pmap_free(&t->bpe.merges);
    free(t->bpe.prefix);
    free(t->bpe.suffix);
    tok_norm_free(t->norm);
    free(t->norm);
    tok_pretok_free(t->pretok);
    free(t->pretok);
    tok_dec_free(t->dec);
    free(t->dec);
    for (size_t i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].match);
    }
    free(t->added);
    free(t->added_idx[0]);
    free(t->added_idx[1]);
    free(t->tmpl);
    free(t->piece_off);
    free(t->piece_len);
    free(t->is_special);
    tok_buf_free(&t->pieces);
    free(t->chat_template);
    tok_spm_free(t->spm);
    free(t->spm);
    for (int i = 0; i < t->n_pool; i++) {
        tok_work_free(t->pool[i]);
        free(t->pool[i]);
    }
    if (t->pool_ok) pthread_mutex_destroy(&t->pool_mu);
    free(t);
}

int tok_work_get(const cpt_tok *ct, tok_work **out, cpt_err *err) {
    cpt_tok *t = (cpt_tok *)ct; /* the pool is internally synchronised */
    tok_work *w = NULL;
    pthread_mutex_lock(&t->pool_mu);
    if (t->n_pool > 0) w = t->pool[--t->n_pool];
    pthread_mutex_unlock(&t->pool_mu);
    if (!w) {
        /* Own cache lines: two threads' scratch headers never share one. */
        w = aligned_alloc(64, (sizeof *w + 63) / 64 * 64);
        if (!w) return cpt_err_set(err, CPT_ENOMEM, "tokenizer: out of memory for scratch");
        int rc = tok_work_init(w, err);
        if (rc) {
            free(w);
            return rc;
        }
    }
    *out = w;
    return 0;
}

void tok_work_put(const cpt_tok *ct, tok_work *w) {
    cpt_tok *t = (cpt_tok *)ct;
    if (!w) return;
    pthread_mutex_lock(&t->pool_mu);
    if (t->n_pool < TOK_POOL_MAX) {
        t->pool[t->n_pool++] = w;
        w = NULL;
    }
    pthread_mutex_unlock(&t->pool_mu);
    if (w) {
        tok_work_free(w);
        free(w);
    }
}

static int has_pass(const cpt_tok *t, int pass) { return t->added_first[pass][256] > 0; }

/* Steps 1-4 of the pipeline on w->clean (already sanitized): the pre-tokens the BPE model
 * sees (id < 0) and the added tokens already matched (id >= 0), in a list owned by w. */
int tok_pretokenize_work(const cpt_tok *t, tok_work *w, tok_list **res, cpt_err *err) {
    tok_list *a = &w->l[0], *b = &w->l[1];
    int rc;
    size_t len = w->clean.n;
    tok_list_clear(a);
    if (w->clean.n && tok_list_push(a, w->clean.p, w->clean.n, -1, 1)) goto oom;
    /* 1. added tokens that match the raw text */
    if (has_pass(t, 0)) {
        if ((rc = tok_added_split(t, 0, w, a, b, err))) return rc;
        tok_list *x = a; a = b; b = x;
    }
    /* 2. normalize each remaining text piece */
    if (t->norm) {
        tok_list_clear(b);
        for (size_t i = 0; i < a->n; i++) {
            tok_span sp = a->v[i];
            if (sp.id >= 0) {
                if (tok_list_push(b, a->text.p + sp.off, sp.len, sp.id, sp.at_start)) goto oom;
                continue;
            }
            if ((rc = tok_norm_apply(t->norm, w, a->text.p + sp.off, sp.len, &w->norm, err))) return rc;
            if (w->norm.n && tok_list_push(b, w->norm.p, w->norm.n, -1, sp.at_start)) goto oom;
        }
        tok_list *x = a; a = b; b = x;
    }
    /* 3. added tokens that match normalized text */
    if (has_pass(t, 1)) {
        if ((rc = tok_added_split(t, 1, w, a, b, err))) return rc;
        tok_list *x = a; a = b; b = x;
    }
    /* 4. pre-tokenize */
    if (t->pretok) {
        if ((rc = tok_pretok_apply(t->pretok, w, a, b, err))) return rc;
        tok_list *x = a; a = b; b = x;
    }
    *res = a;
    return 0;
oom:
    return cpt_err_set(err, CPT_ENOMEM, "tokenizer: out of memory encoding a %zu-byte text", len);
}

int tok_encode_work(const cpt_tok *t, tok_work *w, const char *text, size_t len, int add_special,
                    tok_ids *out, size_t *n_replaced, cpt_err *err) {
    long r = tok_utf8_sanitize_into(text ? text : "", len, &w->clean);
    if (r < 0) return cpt_err_set(err, CPT_ENOMEM, "tokenizer: out of memory for a %zu-byte text", len);
    if (n_replaced) *n_replaced = (size_t)r;
    if (t->spm) { /* SentencePiece: normalize + BPE on the whole text, in the template */
        size_t nt = add_special ? t->n_tmpl : 0;
        for (size_t k = 0; k < (nt ? nt : 1); k++) {
            if (nt && t->tmpl[k] >= 0) {
                if (tok_ids_push(out, t->tmpl[k])) goto oom;
                continue;
            }
            int rc = tok_spm_encode(t, w, w->clean.p ? w->clean.p : "", w->clean.n, out, err);
            if (rc) return rc;
        }
        return 0;
    }
    tok_list *a = NULL;
    int rc = tok_pretokenize_work(t, w, &a, err);
    if (rc) return rc;
    /* 5. model, inside the post-processor template */
    size_t nt = add_special ? t->n_tmpl : 0;
    for (size_t k = 0; k < (nt ? nt : 1); k++) {
        if (nt && t->tmpl[k] >= 0) {
            if (tok_ids_push(out, t->tmpl[k])) goto oom;
            continue;
        }
        for (size_t i = 0; i < a->n; i++) {
            tok_span sp = a->v[i];
            if (sp.id >= 0) {
                if (tok_ids_push(out, sp.id)) goto oom;
            } else if ((rc = tok_bpe_encode(&t->bpe, w, a->text.p + sp.off, sp.len, out, err))) {
                return rc;
            }
        }
    }
    return 0;
oom:
    return cpt_err_set(err, CPT_ENOMEM, "tokenizer: out of memory encoding a %zu-byte text", len);
}

int cpt_tok_encode(const cpt_tok *t, const char *text, size_t len, int add_special, int32_t **ids,
                   size_t *n_ids, size_t *n_replaced, cpt_err *err) {
    CPT_ASSERT(t && ids && n_ids);
    *ids = NULL;
    *n_ids = 0;
    if (n_replaced) *n_replaced = 0;
    if (!text && len) return cpt_err_set(err, CPT_EINVAL, "cpt_tok_encode: text is NULL with len = %zu", len);
    tok_work *w = NULL;
    int rc = tok_work_get(t, &w, err);
    if (rc) return rc;
    tok_ids out = {0};
    rc = tok_encode_work(t, w, text, len, add_special, &out, n_replaced, err);
    tok_work_put(t, w);
    if (!rc && !out.v && !(out.v = malloc(sizeof(int32_t))))
        rc = cpt_err_set(err, CPT_ENOMEM, "cpt_tok_encode: out of memory");
    if (rc) {
        free(out.v);
        return rc;
    }
    *ids = out.v;
    *n_ids = out.n;
    return 0;
}

/* Batch work unit: a contiguous run of documents of about `target` bytes. Contiguous
 * runs keep each thread on its own stretch of the input and of out_ids/out_n (no
 * false sharing but at run edges); many runs per thread, taken dynamically, keep the
 * threads busy when documents differ in cost. */
static size_t make_runs(const size_t *lens, size_t n, int threads, size_t **out) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += lens[i];
    size_t target = total / ((size_t)threads * 16) + 1;
    if (target < 16384) target = 16384;
    size_t *b = malloc((n + 2) * sizeof *b), k = 0, acc = 0;
    if (!b) return 0;
    b[k++] = 0;
    for (size_t i = 0; i < n; i++) {
        acc += lens[i];
        if (acc >= target && i + 1 < n) {
            b[k++] = i + 1;
            acc = 0;
        }
    }
    b[k++] = n;
    *out = b;
    return k - 1;
}

int cpt_tok_encode_batch(const cpt_tok *t, const char *const *texts, const size_t *lens, size_t n,
                         int add_special, int n_threads, int32_t **out_ids, size_t *out_n,
                         size_t *out_replaced, cpt_err *err) {
    CPT_ASSERT(t && (n == 0 || (texts && lens && out_ids && out_n)));
    for (size_t i = 0; i < n; i++) {
        out_ids[i] = NULL;
        out_n[i] = 0;
    }
    if (n == 0) return 0;
    if (n_threads <= 0) n_threads = omp_get_max_threads();
    size_t *runs = NULL, n_runs = make_runs(lens, n, n_threads, &runs);
    if (!n_runs) return cpt_err_set(err, CPT_ENOMEM, "cpt_tok_encode_batch: out of memory");
    if ((size_t)n_threads > n_runs) n_threads = (int)n_runs;
    int rc = 0;
    size_t bad = SIZE_MAX;
    cpt_err first = {0};
#pragma omp parallel num_threads(n_threads)
    {
        /* One pooled scratch (warm pre-token cache) per thread: no locks per word. */
        tok_work *w = NULL;
        cpt_err e = {0};
        int ok = tok_work_get(t, &w, &e) == 0;
#pragma omp for schedule(dynamic, 1)
        for (size_t r = 0; r < n_runs; r++) {
            for (size_t i = runs[r]; i < runs[r + 1]; i++) {
                int rr;
                if (!ok) {
                    rr = CPT_ENOMEM;
                } else {
                    tok_ids out = {0};
                    size_t rep = 0;
                    rr = tok_encode_work(t, w, texts[i], lens[i], add_special, &out, &rep, &e);
                    if (!rr && !out.v && !(out.v = malloc(sizeof(int32_t)))) rr = CPT_ENOMEM;
                    if (rr) {
                        free(out.v);
                    } else {
                        out_ids[i] = out.v;
                        out_n[i] = out.n;
                        if (out_replaced) out_replaced[i] = rep;
                    }
                }
                if (rr) {
#pragma omp critical(cpt_tok_batch_err)
                    if (i < bad) {
                        bad = i;
                        rc = rr;
                        first = e;
                        if (!first.msg[0]) cpt_err_set(&first, rr, "tokenizer: out of memory");
                    }
                    break; /* the rest of this run is freed below anyway */
                }
            }
        }
        if (ok) tok_work_put(t, w);
    }
    free(runs);
    if (rc) {
        for (size_t i = 0; i < n; i++) {
            free(out_ids[i]);
            out_ids[i] = NULL;
            out_n[i] = 0;
        }
        cpt_err_set(err, rc, "document %zu: %s", bad, first.msg);
    }
    return rc;
}

int cpt_tok_vocab_size(const cpt_tok *t) { return t->n_ids; }
int cpt_tok_bos(const cpt_tok *t) { return t->bos; }
int cpt_tok_eos(const cpt_tok *t) { return t->eos; }
int cpt_tok_pad(const cpt_tok *t) { return t->pad; }
int cpt_tok_unk(const cpt_tok *t) { return t->unk; }
const char *cpt_tok_chat_template(const cpt_tok *t) { return t->chat_template; }

const char *cpt_tok_piece(const cpt_tok *t, int32_t id) {
    if (id < 0 || id >= t->n_ids || t->piece_off[id] == SIZE_MAX) return NULL;
    return t->pieces.p + t->piece_off[id];
}

int32_t cpt_tok_piece_id(const cpt_tok *t, const char *piece, size_t len) {
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && !memcmp(t->added[i].content, piece, len)) return t->added[i].id;
    return tok_smap_get(&t->bpe.vocab, piece, len);
}

int cpt_tok_is_special(const cpt_tok *t, int32_t id) {
    return id >= 0 && id < t->n_ids && t->is_special[id];
}
