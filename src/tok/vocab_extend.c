/* vocab_extend.c: `cpt vocab extend`: new tokens (whole added tokens, or byte-level BPE
 * merges learned on a corpus), the resized embedding / LM head and their initialisation,
 * and the tokenizer files transformers loads. The contract is in include/cpt/vocab.h. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "cpt/model.h"
#include "cpt/safetensors.h"
#include "cpt/tokenizer.h"
#include "cpt/vocab.h"
#include "tok/tok_impl.h"

static int oom(cpt_err *err) { return cpt_err_set(err, CPT_ENOMEM, "vocab extend: out of memory"); }

/* The new tokens: piece string (as stored in the vocabulary), the text it stands for, and
 * for merges the two ids merged. */
typedef struct newtok {
    char *piece, *text;
    size_t piece_len, text_len;
    int32_t a, b; /* -1 for an added token */
} newtok;

typedef struct ext {
    const cpt_tok *t;
    int old_n;
    newtok *v;
    size_t n, cap;
    tok_smap names; /* piece -> index into v */
} ext;

static const char *piece_of(const ext *x, int32_t id, size_t *len) {
    if (id >= x->old_n) {
        *len = x->v[id - x->old_n].piece_len;
        return x->v[id - x->old_n].piece;
    }
    const char *p = cpt_tok_piece(x->t, id);
    *len = p ? strlen(p) : 0;
    return p ? p : "";
}

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static int ext_push(ext *x, const char *piece, size_t plen, const char *text, size_t tlen, int32_t a, int32_t b) {
    if (x->n == x->cap) {
        size_t c = x->cap ? 2 * x->cap : 64;
        newtok *nv = realloc(x->v, c * sizeof *nv);
        if (!nv) return CPT_ENOMEM;
        x->v = nv, x->cap = c;
    }
    newtok *e = &x->v[x->n];
    e->piece = dup_n(piece, plen);
    e->text = dup_n(text, tlen);
    if (!e->piece || !e->text) {
        free(e->piece), free(e->text);
        return CPT_ENOMEM;
    }
    e->piece_len = plen, e->text_len = tlen, e->a = a, e->b = b;
    if (tok_smap_put(&x->names, piece, plen, (int32_t)x->n)) return CPT_ENOMEM;
    x->n++;
    return 0;
}

static void ext_free(ext *x) {
    for (size_t i = 0; i < x->n; i++) free(x->v[i].piece), free(x->v[i].text);
    free(x->v);
    tok_smap_free(&x->names);
}

/* ---- whole tokens from a file ------------------------------------------------ */

static int read_tokens_file(ext *x, const char *path, cpt_err *err) {
    char *buf = NULL;
    size_t n = 0;
    int rc = cpt_read_file(path, &buf, &n, err);
    if (rc) return rc;
    size_t pos = 0;
    int line = 0;
    while (pos < n && !rc) {
        line++;
        size_t e = pos;
        while (e < n && buf[e] != '\n') e++;
        size_t len = e - pos;
        if (len && buf[pos + len - 1] == '\r') len--;
        const char *s = buf + pos;
        pos = e + 1;
        if (!len) {
            rc = cpt_err_set(err, CPT_EFORMAT, "%s:%d: empty token. HINT: one token per line, no blank lines", path, line);
            break;
        }
        char *clean = NULL;
        size_t cl = 0;
        long bad = cpt_tok_utf8_sanitize(s, len, &clean, &cl);
        free(clean);
        if (bad) {
            rc = bad < 0 ? oom(err)
                         : cpt_err_set(err, CPT_EFORMAT, "%s:%d: the token is not valid UTF-8. HINT: save the file as UTF-8", path, line);
            break;
        }
        if (tok_smap_get(&x->names, s, len) >= 0) {
            rc = cpt_err_set(err, CPT_EINVAL, "%s:%d: token '%.*s' is listed twice. HINT: remove the duplicate line", path, line, (int)len, s);
            break;
        }
        int32_t *ids = NULL;
        size_t nid = 0;
        if ((rc = cpt_tok_encode(x->t, s, len, 0, &ids, &nid, NULL, err))) break;
        int32_t one = nid == 1 ? ids[0] : -1;
        free(ids);
        if (one >= 0 || cpt_tok_piece_id(x->t, s, len) >= 0) {
            rc = cpt_err_set(err, CPT_EINVAL, "%s:%d: token '%.*s' is already in the vocabulary (id %d). HINT: remove it from the file",
                             path, line, (int)len, s, (int)(one >= 0 ? one : cpt_tok_piece_id(x->t, s, len)));
            break;
        }
        if (ext_push(x, s, len, s, len, -1, -1)) rc = oom(err);
    }
    free(buf);
    if (!rc && x->n == 0)
        rc = cpt_err_set(err, CPT_EINVAL, "%s: no tokens. HINT: write one token per line", path);
    return rc;
}

/* ---- BPE merges learned on a corpus -------------------------------------------- */

typedef struct word {
    int32_t *s;
    uint32_t n;
    int64_t count;
} word;

/* Pair counts: open addressing, key a<<32|b, rebuilt every round. */
typedef struct pcount {
    uint64_t *k;
    int64_t *c;
    size_t cap;
} pcount;

static void pc_add(pcount *p, uint64_t key, int64_t c) {
    size_t mask = p->cap - 1, i = (size_t)cpt_mix64(key) & mask;
    while (p->k[i] != UINT64_MAX && p->k[i] != key) i = (i + 1) & mask;
    p->k[i] = key;
    p->c[i] += c;
}

static int is_bytelevel(const tok_pretok *p) {
    if (!p) return 0;
    if (p->kind == TP_BYTELEVEL) return 1;
    if (p->kind == TP_SEQUENCE)
        for (size_t i = 0; i < p->n_kids; i++)
            if (is_bytelevel(&p->kids[i])) return 1;
    return 0;
}

/* The bytes a byte-level piece stands for. */
static int bytes_of_piece(const char *p, size_t n, char **out, size_t *out_len) {
    char *b = malloc(n + 1);
    if (!b) return CPT_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += (size_t)tok_utf8_next(p + i, n - i, &cp);
        int v = tok_cp_to_byte(cp);
        if (v < 0) {
            free(b);
            return CPT_EFORMAT;
        }
        b[k++] = (char)v;
    }
    b[k] = '\0';
    *out = b, *out_len = k;
    return 0;
}

static int learn_merges(ext *x, const char *corpus, int add_n, long long *n_words, cpt_err *err) {
    const cpt_tok *t = x->t;
    if (t->spm || !is_bytelevel(t->pretok) || t->bpe.prefix || t->bpe.suffix)
        return cpt_err_set(err, CPT_EUNSUPPORTED,
                           "%s: --train-bpe needs a byte-level BPE tokenizer.json (ByteLevel pre-tokenizer, no subword prefix/suffix). HINT: add whole tokens with --tokens FILE instead",
                           t->path);
    char *buf = NULL, *text = NULL;
    size_t n = 0, tn = 0;
    cpt_err rerr = {0};
    int rc = cpt_read_file(corpus, &buf, &n, &rerr);
    if (rc)
        return cpt_err_set(err, rc, "--train-bpe: the corpus is unreadable (%s). HINT: pass a readable UTF-8 text file", rerr.msg);
    long r = cpt_tok_utf8_sanitize(buf, n, &text, &tn);
    free(buf);
    if (r < 0) return oom(err);
    if (tn == 0) {
        free(text);
        return cpt_err_set(err, CPT_EINVAL, "%s: the corpus is empty. HINT: pass a domain text file", corpus);
    }
    tok_work *w = NULL;
    if ((rc = tok_work_get(t, &w, err))) {
        free(text);
        return rc;
    }
    tok_smap wmap = {0};
    word *words = NULL;
    size_t nw = 0, wcap = 0, total_syms = 0;
    tok_ids ids = {0};
    *n_words = 0;
    /* 1. distinct pre-tokens with counts, each as the old tokenizer's segmentation */
    for (size_t pos = 0; pos < tn && !rc;) {
        size_t e = pos;
        while (e < tn && text[e] != '\n') e++;
        if (e < tn) e++; /* keep the newline with its line */
        w->clean.n = 0;
        if (tok_buf_put(&w->clean, text + pos, e - pos)) {
            rc = oom(err);
            break;
        }
        pos = e;
        tok_list *l = NULL;
        if ((rc = tok_pretokenize_work(t, w, &l, err))) break;
        for (size_t i = 0; i < l->n && !rc; i++) {
            tok_span sp = l->v[i];
            if (sp.id >= 0) continue;
            const char *s = l->text.p + sp.off;
            (*n_words)++;
            int32_t k = tok_smap_get(&wmap, s, sp.len);
            if (k >= 0) {
                words[k].count++;
                continue;
            }
            ids.n = 0;
            if ((rc = tok_bpe_encode(&t->bpe, w, s, sp.len, &ids, err))) break;
            if (nw == wcap) {
                size_t c = wcap ? 2 * wcap : 1024;
                word *nv = realloc(words, c * sizeof *nv);
                if (!nv) {
                    rc = oom(err);
                    break;
                }
                words = nv, wcap = c;
            }
            word *wd = &words[nw];
            wd->s = malloc((ids.n ? ids.n : 1) * sizeof(int32_t));
            if (!wd->s || tok_smap_put(&wmap, s, sp.len, (int32_t)nw)) {
                free(wd->s);
                rc = oom(err);
                break;
            }
            memcpy(wd->s, ids.v, ids.n * sizeof(int32_t));
            wd->n = (uint32_t)ids.n;
            wd->count = 1;
            total_syms += ids.n;
            nw++;
        }
    }
    tok_work_put(t, w);
    free(text);
    free(ids.v);
    tok_smap_free(&wmap);
    /* 2. rounds of most-frequent-pair merges */
    pcount pc = {0};
    size_t cap = 1024;
    while (cap < 2 * total_syms + 2) cap *= 2;
    pc.cap = cap;
    pc.k = malloc(cap * sizeof *pc.k);
    pc.c = malloc(cap * sizeof *pc.c);
    if (!rc && (!pc.k || !pc.c)) rc = oom(err);
    char *cat = NULL;
    size_t cat_cap = 0;
    for (int round = 0; round < add_n && !rc; round++) {
        memset(pc.k, 0xff, cap * sizeof *pc.k);
        memset(pc.c, 0, cap * sizeof *pc.c);
        for (size_t i = 0; i < nw; i++)
            for (uint32_t j = 0; j + 1 < words[i].n; j++)
                pc_add(&pc, ((uint64_t)(uint32_t)words[i].s[j] << 32) | (uint32_t)words[i].s[j + 1], words[i].count);
        int64_t best_c = 0;
        uint64_t best = UINT64_MAX;
        for (size_t i = 0; i < cap; i++) {
            if (pc.k[i] == UINT64_MAX || pc.c[i] <= 0) continue;
            if (pc.c[i] < best_c || (pc.c[i] == best_c && pc.k[i] > best)) continue;
            /* a candidate: its concatenation must be a new string */
            size_t la, lb;
            const char *pa = piece_of(x, (int32_t)(pc.k[i] >> 32), &la), *pb = piece_of(x, (int32_t)(uint32_t)pc.k[i], &lb);
            if (la + lb > cat_cap) {
                char *nc = realloc(cat, la + lb + 64);
                if (!nc) {
                    rc = oom(err);
                    break;
                }
                cat = nc, cat_cap = la + lb + 64;
            }
            memcpy(cat, pa, la);
            memcpy(cat + la, pb, lb);
            if (tok_smap_get(&t->bpe.vocab, cat, la + lb) >= 0 || cpt_tok_piece_id(t, cat, la + lb) >= 0 ||
                tok_smap_get(&x->names, cat, la + lb) >= 0) {
                pc.c[i] = 0; /* not a new token: never a candidate this round */
                continue;
            }
            best_c = pc.c[i], best = pc.k[i];
        }
        if (rc) break;
        if (best == UINT64_MAX) {
            rc = cpt_err_set(err, CPT_EINVAL,
                             "%s: only %d new merge(s) can be learned (no adjacent pair left). HINT: use a larger corpus or a smaller --add",
                             corpus, round);
            break;
        }
        int32_t a = (int32_t)(best >> 32), b = (int32_t)(uint32_t)best;
        int32_t nid = x->old_n + (int32_t)x->n;
        size_t la, lb;
        const char *pa = piece_of(x, a, &la), *pb = piece_of(x, b, &lb);
        char *piece = malloc(la + lb + 1), *bytes = NULL;
        size_t nbytes = 0;
        if (!piece) {
            rc = oom(err);
            break;
        }
        memcpy(piece, pa, la);
        memcpy(piece + la, pb, lb);
        if (bytes_of_piece(piece, la + lb, &bytes, &nbytes)) {
            free(piece);
            rc = cpt_err_set(err, CPT_EFORMAT, "%s: piece '%.*s' is not in the byte-level alphabet", t->path, (int)(la + lb), cat);
            break;
        }
        int prc = ext_push(x, piece, la + lb, bytes, nbytes, a, b);
        free(piece), free(bytes);
        if (prc) {
            rc = oom(err);
            break;
        }
        for (size_t i = 0; i < nw; i++) {
            word *wd = &words[i];
            uint32_t o = 0;
            for (uint32_t j = 0; j < wd->n; j++) {
                if (j + 1 < wd->n && wd->s[j] == a && wd->s[j + 1] == b) {
                    wd->s[o++] = nid;
                    j++;
                } else {
                    wd->s[o++] = wd->s[j];
                }
            }
            wd->n = o;
        }
    }
    free(cat);
    free(pc.k), free(pc.c);
    for (size_t i = 0; i < nw; i++) free(words[i].s);
    free(words);
    return rc;
}

/* ---- tokenizer files ----------------------------------------------------------- */

static int write_json(json_t *root, const char *path, cpt_err *err) {
    char *s = json_dumps(root, JSON_INDENT(2));
    if (!s) return oom(err);
    size_t n = strlen(s);
    char *s2 = realloc(s, n + 2);
    if (!s2) {
        free(s);
        return oom(err);
    }
    s2[n] = '\n';
    int rc = cpt_write_file_atomic(path, s2, n + 1, err);
    free(s2);
    return rc;
}

static json_t *added_entry(const newtok *e, int id) {
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "id", json_integer(id));
    json_object_set_new(o, "content", json_stringn(e->text, e->text_len));
    json_object_set_new(o, "single_word", json_false());
    json_object_set_new(o, "lstrip", json_false());
    json_object_set_new(o, "rstrip", json_false());
    json_object_set_new(o, "normalized", json_true());
    json_object_set_new(o, "special", json_false());
    return o;
}

static int write_tokenizer(const ext *x, const char *model_dir, const char *out_dir, cpt_err *err) {
    char *src = cpt_path_join(model_dir, "tokenizer.json"), *dst = cpt_path_join(out_dir, "tokenizer.json");
    char *csrc = cpt_path_join(model_dir, "tokenizer_config.json"), *cdst = cpt_path_join(out_dir, "tokenizer_config.json");
    int rc = 0;
    json_t *root = NULL, *cfg = NULL;
    if (!src || !dst || !csrc || !cdst) {
        rc = oom(err);
        goto done;
    }
    json_error_t je;
    if (!(root = json_load_file(src, 0, &je))) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s:%d: %s", src, je.line, je.text);
        goto done;
    }
    json_t *model = json_object_get(root, "model"), *vocab = json_object_get(model, "vocab"),
           *merges = json_object_get(model, "merges"), *added = json_object_get(root, "added_tokens");
    if (!added || json_is_null(added)) {
        added = json_array();
        json_object_set_new(root, "added_tokens", added);
    }
    if (!json_is_array(added)) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: added_tokens: expected an array", src);
        goto done;
    }
    int pair_form = json_is_array(merges) && (json_array_size(merges) == 0 || json_is_array(json_array_get(merges, 0)));
    for (size_t i = 0; i < x->n; i++) {
        const newtok *e = &x->v[i];
        int id = x->old_n + (int)i;
        if (e->a < 0) {
            if (json_array_append_new(added, added_entry(e, id))) rc = oom(err);
        } else {
            if (!json_is_object(vocab) || !json_is_array(merges)) {
                rc = cpt_err_set(err, CPT_EFORMAT, "%s: model.vocab / model.merges missing", src);
                goto done;
            }
            size_t la, lb;
            const char *pa = piece_of(x, e->a, &la), *pb = piece_of(x, e->b, &lb);
            json_t *m;
            if (pair_form) {
                m = json_array();
                json_array_append_new(m, json_stringn(pa, la));
                json_array_append_new(m, json_stringn(pb, lb));
            } else {
                char *s = malloc(la + lb + 2);
                if (!s) {
                    rc = oom(err);
                    goto done;
                }
                memcpy(s, pa, la);
                s[la] = ' ';
                memcpy(s + la + 1, pb, lb);
                m = json_stringn(s, la + lb + 1);
                free(s);
            }
            char *key = dup_n(e->piece, e->piece_len);
            if (!m || !key || json_array_append_new(merges, m) || json_object_set_new(vocab, key, json_integer(id)))
                rc = oom(err);
            free(key);
        }
        if (rc) goto done;
    }
    if ((rc = write_json(root, dst, err))) goto done;
    /* tokenizer_config.json: the added tokens in added_tokens_decoder, as transformers saves them */
    if (cpt_is_file(csrc)) {
        if (!(cfg = json_load_file(csrc, 0, &je))) {
            rc = cpt_err_set(err, CPT_EFORMAT, "%s:%d: %s", csrc, je.line, je.text);
            goto done;
        }
    } else {
        cfg = json_object();
    }
    json_t *dec = json_object_get(cfg, "added_tokens_decoder");
    if (!json_is_object(dec)) {
        dec = json_object();
        json_object_set_new(cfg, "added_tokens_decoder", dec);
    }
    for (size_t i = 0; i < x->n; i++) {
        if (x->v[i].a >= 0) continue;
        json_t *o = added_entry(&x->v[i], 0);
        json_object_del(o, "id");
        char key[16];
        snprintf(key, sizeof key, "%d", x->old_n + (int)i);
        json_object_set_new(dec, key, o);
    }
    rc = write_json(cfg, cdst, err);
done:
    json_decref(root);
    json_decref(cfg);
    free(src), free(dst), free(csrc), free(cdst);
    return rc;
}

/* ---- embedding rows -------------------------------------------------------------- */

/* Cholesky of a D x D SPD matrix in place (lower triangle). 0, or -1 if not SPD. */
static int cholesky(double *a, int d) {
    for (int j = 0; j < d; j++) {
        double s = a[(size_t)j * d + j];
        for (int k = 0; k < j; k++) s -= a[(size_t)j * d + k] * a[(size_t)j * d + k];
        if (!(s > 0)) return -1;
        double l = sqrt(s);
        a[(size_t)j * d + j] = l;
        for (int i = j + 1; i < d; i++) {
            double v = a[(size_t)i * d + j];
            for (int k = 0; k < j; k++) v -= a[(size_t)i * d + k] * a[(size_t)j * d + k];
            a[(size_t)i * d + j] = v / l;
        }
    }
    return 0;
}

static double std_normal(uint64_t *s) { /* Box-Muller from two splitmix64 uniforms in (0, 1) */
    double u1 = ((double)(cpt_splitmix64(s) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = ((double)(cpt_splitmix64(s) >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Initialise the rows of the new tokens in E [new_rows, D] (the old model's rows already
 * copied; a model padded past its tokenizer, as Qwen's, gets its new tokens in padding
 * rows) and give rows past the old model that no token uses mu. Statistics (mu, Sigma)
 * are over the rows of the old tokens: [0, min(old_rows, old tokenizer size)). */
static int init_rows(const ext *x, float *E, int old_rows, int new_rows, int D, int init, uint64_t seed,
                     cpt_err *err) {
    double *mu = calloc((size_t)D, sizeof *mu), *cov = NULL;
    if (!mu) return oom(err);
    int n_stat = old_rows < x->old_n ? old_rows : x->old_n;
    for (int r = 0; r < n_stat; r++)
        for (int j = 0; j < D; j++) mu[j] += E[(size_t)r * D + j];
    for (int j = 0; j < D; j++) mu[j] /= n_stat;
    int rc = 0;
    if (init == CPT_VOCAB_INIT_HEWITT) {
        cov = calloc((size_t)D * D, sizeof *cov);
        double *c = malloc((size_t)D * sizeof *c);
        if (!cov || !c) {
            free(c);
            rc = oom(err);
            goto done;
        }
        for (int r = 0; r < n_stat; r++) {
            for (int j = 0; j < D; j++) c[j] = E[(size_t)r * D + j] - mu[j];
            for (int i = 0; i < D; i++)
                for (int j = 0; j <= i; j++) cov[(size_t)i * D + j] += c[i] * c[j];
        }
        free(c);
        double tr = 0;
        for (int i = 0; i < D; i++) {
            for (int j = 0; j <= i; j++) cov[(size_t)i * D + j] *= 1e-5 / n_stat;
            tr += cov[(size_t)i * D + i];
        }
        double *keep = malloc((size_t)D * D * sizeof *keep);
        if (!keep) {
            rc = oom(err);
            goto done;
        }
        memcpy(keep, cov, (size_t)D * D * sizeof *keep);
        if (cholesky(cov, D)) { /* singular: a tiny diagonal jitter */
            memcpy(cov, keep, (size_t)D * D * sizeof *keep);
            for (int i = 0; i < D; i++) cov[(size_t)i * D + i] += 1e-12 * tr / D + 1e-30;
            if (cholesky(cov, D)) rc = cpt_err_set(err, CPT_EINVAL, "vocab extend: the embedding covariance is not positive definite. HINT: use --init mean");
        }
        free(keep);
        if (rc) goto done;
    }
    uint64_t s = seed;
    double *z = malloc((size_t)D * sizeof *z);
    if (!z) {
        rc = oom(err);
        goto done;
    }
    for (int r = n_stat; r < new_rows && !rc; r++) {
        float *row = E + (size_t)r * D;
        int k = r - x->old_n;
        if (k < 0 || (size_t)k >= x->n) { /* no new token: padding kept, rows past it the mean */
            if (r >= old_rows)
                for (int j = 0; j < D; j++) row[j] = (float)mu[j];
            continue;
        }
        if (init == CPT_VOCAB_INIT_HEWITT) {
            for (int j = 0; j < D; j++) z[j] = std_normal(&s);
            for (int i = 0; i < D; i++) {
                double v = mu[i];
                for (int j = 0; j <= i; j++) v += cov[(size_t)i * D + j] * z[j];
                row[i] = (float)v;
            }
            continue;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        if ((rc = cpt_tok_encode(x->t, x->v[k].text, x->v[k].text_len, 0, &ids, &n, NULL, err))) break;
        for (size_t i = 0; i < n && !rc; i++)
            if (ids[i] >= old_rows)
                rc = cpt_err_set(err, CPT_EFORMAT, "vocab extend: the old tokenizer gives id %d, past the model's %d rows. HINT: the model and its tokenizer.json do not match", ids[i], old_rows);
        for (int j = 0; j < D && !rc; j++) {
            double v = 0;
            for (size_t i = 0; i < n; i++) v += E[(size_t)ids[i] * D + j];
            row[j] = n ? (float)(v / (double)n) : (float)mu[j];
        }
        free(ids);
    }
    free(z);
done:
    free(mu);
    free(cov);
    return rc;
}

static int copy_if_present(const char *from_dir, const char *to_dir, const char *name, cpt_err *err) {
    char *s = cpt_path_join(from_dir, name), *d = cpt_path_join(to_dir, name);
    int rc = 0;
    if (!s || !d) rc = oom(err);
    else if (cpt_is_file(s)) {
        char *buf = NULL;
        size_t n = 0;
        if (!(rc = cpt_read_file(s, &buf, &n, err))) rc = cpt_write_file_atomic(d, buf, n, err);
        free(buf);
    }
    free(s), free(d);
    return rc;
}

int cpt_vocab_extend(const cpt_vocab_opts *o, cpt_vocab_result *res, cpt_err *err) {
    memset(res, 0, sizeof *res);
    if ((o->tokens_file != NULL) == (o->corpus != NULL))
        return cpt_err_set(err, CPT_EINVAL, "vocab extend: give exactly one of --tokens FILE and --train-bpe CORPUS");
    if (o->corpus && o->add_n <= 0)
        return cpt_err_set(err, CPT_EINVAL, "vocab extend: --train-bpe needs --add N (N >= 1)");
    char *tpath = cpt_path_join(o->model_dir, "tokenizer.json");
    if (!tpath) return oom(err);
    if (!cpt_is_file(tpath)) {
        int rc = cpt_err_set(err, CPT_ENOTFOUND, "%s: not found. HINT: vocab extend needs the model's tokenizer.json (convert a tokenizer.model with transformers first)", tpath);
        free(tpath);
        return rc;
    }
    cpt_tok *t = NULL;
    cpt_model *m = NULL, *m2 = NULL;
    ext x = {0};
    int rc = cpt_tok_load(&t, tpath, err);
    free(tpath);
    if (rc) return rc;
    x.t = t;
    x.old_n = cpt_tok_vocab_size(t);
    if ((rc = cpt_model_load_hf(&m, o->model_dir, err))) goto done;
    if (o->tokens_file) rc = read_tokens_file(&x, o->tokens_file, err);
    else rc = learn_merges(&x, o->corpus, o->add_n, &res->corpus_words, err);
    if (rc) goto done;
    int V = m->cfg.vocab_size, D = m->cfg.hidden_size;
    int newV = x.old_n + (int)x.n > V ? x.old_n + (int)x.n : V;
    cpt_config c2 = m->cfg;
    c2.vocab_size = newV;
    if ((rc = cpt_model_create(&m2, &c2, err))) goto done;
    for (int i = 0; i < m2->n_tensors; i++) {
        const cpt_tensor *dt = &m2->tensors[i], *st = cpt_model_find(m, dt->name);
        CPT_ASSERT(st);
        memcpy(m2->params + dt->off, m->params + st->off, st->numel * sizeof(float));
    }
    if ((rc = init_rows(&x, m2->w.embed, V, newV, D, o->init, o->seed, err))) goto done;
    if (!m2->cfg.tie_embeddings &&
        (rc = init_rows(&x, m2->w.lm_head, V, newV, D, o->init, o->seed ^ 0x9e3779b97f4a7c15ULL, err)))
        goto done;
    if ((rc = cpt_model_save_hf(m2, o->out_dir, CPT_DT_F32, 0, NULL, err))) goto done;
    if ((rc = write_tokenizer(&x, o->model_dir, o->out_dir, err))) goto done;
    if ((rc = copy_if_present(o->model_dir, o->out_dir, "special_tokens_map.json", err))) goto done;
    if ((rc = copy_if_present(o->model_dir, o->out_dir, "generation_config.json", err))) goto done;
    { /* the new-token range, for training.train_only: new_embeddings (cpt/rowfreeze.h) */
        char rec[160], *rpath = cpt_path_join(o->out_dir, "vocab_extend.json");
        int k = snprintf(rec, sizeof rec, "{\"first_new_id\": %d, \"n_new\": %d, \"old_vocab_size\": %d}\n", x.old_n, (int)x.n, V);
        rc = rpath ? cpt_write_file_atomic(rpath, rec, (size_t)k, err) : oom(err);
        free(rpath);
        if (rc) goto done;
    }
    res->old_tok_size = x.old_n;
    res->new_tok_size = x.old_n + (int)x.n;
    res->old_vocab_size = V;
    res->new_vocab_size = newV;
    res->n_added = (int)x.n;
done:
    ext_free(&x);
    cpt_model_free(m);
    cpt_model_free(m2);
    cpt_tok_free(t);
    return rc;
}
