/* synth.c: synthetic QA pairs from documents with an instruct model (cpt/synth.h). */
#include "cpt/synth.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpt/chat.h"
#include "cpt/generate.h"
#include "cpt/model.h"
#include "cpt/qa.h"
#include "cpt/tokenizer.h"
#include "reader.h"

const char *const cpt_synth_type_names[CPT_SYNTH_NTYPES] = {"factual", "reasoning", "summary"};

#define FORMAT_NOTE "Write each pair on two lines, exactly like this:\nQ: <question>\nA: <answer>\n\n"
const char *const cpt_synth_default_templates[CPT_SYNTH_NTYPES] = {
    "Read the text below. Write {n} questions about facts stated in the text (names, numbers, methods, results), "
    "each with its answer taken from the text. " FORMAT_NOTE "Text:\n{document}",
    "Read the text below. Write {n} questions that need reasoning about the text (why or how something happens, "
    "what a result implies), each with a short answer based only on the text. " FORMAT_NOTE "Text:\n{document}",
    "Read the text below. Write {n} questions asking what the text studies or concludes, each with a one-sentence "
    "answer based only on the text. " FORMAT_NOTE "Text:\n{document}",
};

int cpt_synth_parse_types(const char *list, unsigned *mask, cpt_err *err) {
    *mask = 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        int found = -1;
        for (int t = 0; t < CPT_SYNTH_NTYPES; t++)
            if (l == strlen(cpt_synth_type_names[t]) && !strncmp(p, cpt_synth_type_names[t], l)) found = t;
        if (l && found < 0)
            return cpt_err_set(err, CPT_EINVAL, "--types: unknown type \"%.*s\". HINT: factual, reasoning, summary (comma-separated)",
                               (int)l, p);
        if (found >= 0) *mask |= 1u << found;
        p += l + (e ? 1 : 0);
    }
    if (!*mask) return cpt_err_set(err, CPT_EINVAL, "--types names no type. HINT: e.g. --types factual,reasoning");
    return CPT_OK;
}

int cpt_synth_load_templates(const char *path, char *out[CPT_SYNTH_NTYPES], cpt_err *err) {
    for (int t = 0; t < CPT_SYNTH_NTYPES; t++) out[t] = NULL;
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return cpt_err_set(err, errno == ENOENT ? CPT_ENOTFOUND : CPT_EFORMAT, "%s:%d: %s. HINT: the templates file is a JSON object "
                           "{\"factual\": \"... {document} ...\", ...}", path, je.line, je.text);
    int rc = CPT_OK;
    if (!json_is_object(j)) rc = cpt_err_set(err, CPT_EFORMAT, "%s: not a JSON object. HINT: {\"factual\": \"... {document} ...\"}", path);
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
        if (rc) break;
        int t = -1;
        for (int i = 0; i < CPT_SYNTH_NTYPES; i++)
            if (!strcmp(k, cpt_synth_type_names[i])) t = i;
        if (t < 0) rc = cpt_err_set(err, CPT_EFORMAT, "%s: unknown key \"%s\". HINT: keys are factual, reasoning, summary", path, k);
        else if (!json_is_string(v) || !strstr(json_string_value(v), "{document}"))
            rc = cpt_err_set(err, CPT_EFORMAT, "%s: \"%s\" must be a string containing {document} (and may contain {n})", path, k);
        else if (!(out[t] = strdup(json_string_value(v)))) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    json_decref(j);
    if (rc)
        for (int t = 0; t < CPT_SYNTH_NTYPES; t++) free(out[t]), out[t] = NULL;
    return rc;
}

char *cpt_synth_fill(const char *tmpl, const char *doc, int n) {
    char num[32];
    snprintf(num, sizeof num, "%d", n);
    size_t cap = strlen(tmpl) + 1, dl = strlen(doc), nl = strlen(num);
    for (const char *p = tmpl; (p = strchr(p, '{')); p++) {
        if (!strncmp(p, "{document}", 10)) cap += dl;
        else if (!strncmp(p, "{n}", 3)) cap += nl;
    }
    char *o = malloc(cap), *w = o;
    if (!o) return NULL;
    for (const char *p = tmpl; *p;) {
        if (!strncmp(p, "{document}", 10)) memcpy(w, doc, dl), w += dl, p += 10;
        else if (!strncmp(p, "{n}", 3)) memcpy(w, num, nl), w += nl, p += 3;
        else *w++ = *p++;
    }
    *w = 0;
    return o;
}

/* ---- parsing replies ---- */

void cpt_synth_pairs_free(cpt_qa_pair *p, size_t n) {
    for (size_t i = 0; p && i < n; i++) free(p[i].q), free(p[i].a);
    free(p);
}

/* If the line starts a field, 'Q' or 'A' and *rest after the label; else 0. */
static int label_of(const char *s, const char **rest) {
    while (*s == ' ' || *s == '\t' || *s == '*' || *s == '-' || *s == '#') s++;
    if (isdigit((unsigned char)*s)) { /* "1." "1)" numbering */
        const char *d = s;
        while (isdigit((unsigned char)*d)) d++;
        if (*d == '.' || *d == ')') {
            s = d + 1;
            while (*s == ' ' || *s == '\t' || *s == '*') s++;
        }
    }
    int kind = 0;
    const char *p = s;
    if (!strncasecmp(p, "question", 8)) kind = 'Q', p += 8;
    else if (!strncasecmp(p, "answer", 6)) kind = 'A', p += 6;
    else if (*p == 'Q' || *p == 'q') kind = 'Q', p++;
    else if (*p == 'A' || *p == 'a') kind = 'A', p++;
    else return 0;
    while (isdigit((unsigned char)*p)) p++; /* "Q1:" */
    while (*p == '*') p++;
    if (*p != ':') return 0;
    p++;
    while (*p == '*' || *p == ' ' || *p == '\t') p++;
    *rest = p;
    return kind;
}

static int append(char **dst, const char *s, size_t l) {
    size_t o = *dst ? strlen(*dst) : 0;
    char *n = realloc(*dst, o + l + 2);
    if (!n) return -1;
    if (o && l) n[o++] = ' ';
    memcpy(n + o, s, l);
    n[o + l] = 0;
    *dst = n;
    return 0;
}

static void trim(char *s) {
    if (!s) return;
    size_t a = 0, l = strlen(s);
    while (a < l && isspace((unsigned char)s[a])) a++;
    while (l > a && (isspace((unsigned char)s[l - 1]) || s[l - 1] == '*')) l--;
    memmove(s, s + a, l - a);
    s[l - a] = 0;
}

int cpt_synth_parse_pairs(const char *reply, cpt_qa_pair **pairs, size_t *n) {
    *pairs = NULL, *n = 0;
    size_t cap = 0;
    char *q = NULL, *a = NULL;
    int field = 0; /* 0 none, 'Q', 'A' */
    const char *p = reply;
    int oom = 0;
    for (;;) {
        const char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char *line = strndup(p, l);
        if (!line) {
            oom = 1;
            break;
        }
        const char *rest = NULL;
        int k = label_of(line, &rest);
        if (k == 'Q') {
            if (q && a) { /* the previous pair is complete */
                trim(q), trim(a);
                if (*n == cap) {
                    size_t nc = cap ? 2 * cap : 8;
                    cpt_qa_pair *np = realloc(*pairs, nc * sizeof *np);
                    if (!np) {
                        oom = 1, free(line);
                        break;
                    }
                    *pairs = np, cap = nc;
                }
                (*pairs)[(*n)++] = (cpt_qa_pair){q, a};
            } else {
                free(q), free(a);
            }
            q = NULL, a = NULL;
            field = 'Q';
            if (append(&q, rest, strlen(rest))) oom = 1;
        } else if (k == 'A' && q) {
            free(a), a = NULL; /* a second "A:" for one question replaces the first */
            field = 'A';
            if (append(&a, rest, strlen(rest))) oom = 1;
        } else if (field && l && strspn(line, " \t\r") < l) {
            const char *c = line + strspn(line, " \t");
            if (append(field == 'Q' ? &q : &a, c, strlen(c))) oom = 1;
        } else if (!l || strspn(line, " \t\r") == l) {
            if (field == 'A') field = 0; /* a blank line ends an answer */
        }
        free(line);
        if (oom || !e) break;
        p = e + 1;
    }
    if (!oom && q && a) {
        trim(q), trim(a);
        if (*n == cap) {
            cpt_qa_pair *np = realloc(*pairs, (cap + 1) * sizeof *np);
            if (!np) oom = 1;
            else *pairs = np;
        }
        if (!oom) (*pairs)[(*n)++] = (cpt_qa_pair){q, a}, q = a = NULL;
    }
    free(q), free(a);
    if (oom) {
        cpt_synth_pairs_free(*pairs, *n);
        *pairs = NULL, *n = 0;
        return CPT_ENOMEM;
    }
    return CPT_OK;
}

/* ---- grounding ---- */

static const char *const STOP[] = {"is", "are", "was", "were", "be", "been", "of", "in", "on", "at", "to", "for", "and", "or",
                                   "by", "with", "from", "as", "that", "this", "these", "those", "it", "its", "which", "who",
                                   "what", "not", "no", "yes", "can", "do", "does", "did", "has", "have", "had", "their", "there",
                                   "they", "than", "then", "into", "also", "such", "may", "more", "most", NULL};

static int is_stop(const char *w) {
    for (int i = 0; STOP[i]; i++)
        if (!strcmp(w, STOP[i])) return 1;
    return 0;
}

/* Words of a normalised string: pointers into s (modified). */
static size_t words_of(char *s, char ***out) {
    size_t n = 0, cap = 16;
    char **w = malloc(cap * sizeof *w);
    for (char *p = s; w && *p;) {
        if (n == cap) {
            char **nw = realloc(w, 2 * cap * sizeof *w);
            if (!nw) {
                free(w), w = NULL;
                break;
            }
            w = nw, cap *= 2;
        }
        w[n++] = p;
        char *sp = strchr(p, ' ');
        if (!sp) break;
        *sp = 0, p = sp + 1;
    }
    *out = w;
    return w ? n : 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

double cpt_synth_support(const char *answer, const char *doc) {
    char *na = cpt_qa_normalize(answer), *nd = cpt_qa_normalize(doc);
    char **wa = NULL, **wd = NULL;
    double s = 0;
    if (na && nd) {
        size_t n_a = words_of(na, &wa), n_d = words_of(nd, &wd), content = 0, found = 0;
        if (wa && wd) {
            qsort(wd, n_d, sizeof *wd, cmp_str);
            for (size_t i = 0; i < n_a; i++) {
                if (is_stop(wa[i])) continue;
                content++;
                if (n_d && bsearch(&wa[i], wd, n_d, sizeof *wd, cmp_str)) found++;
            }
        }
        s = content ? (double)found / (double)content : 0;
    }
    free(na), free(nd), free(wa), free(wd);
    return s;
}

/* ---- the run ---- */

typedef struct {
    uint64_t *h;
    size_t cap, n;
} hset;

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h = cpt_mix64(h);
    return h ? h : 1;
}

/* 1 if h was new (and is now in the set), 0 if present, -1 out of memory. */
static int hset_add(hset *s, uint64_t h) {
    if (2 * (s->n + 1) > s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 1024;
        uint64_t *nh = calloc(nc, sizeof *nh);
        if (!nh) return -1;
        for (size_t i = 0; i < s->cap; i++)
            if (s->h[i])
                for (size_t j = s->h[i] & (nc - 1);; j = (j + 1) & (nc - 1))
                    if (!nh[j]) {
                        nh[j] = s->h[i];
                        break;
                    }
        free(s->h);
        s->h = nh, s->cap = nc;
    }
    for (size_t j = h & (s->cap - 1);; j = (j + 1) & (s->cap - 1)) {
        if (s->h[j] == h) return 0;
        if (!s->h[j]) {
            s->h[j] = h, s->n++;
            return 1;
        }
    }
}

/* The document cut to its first max_tok tokens (decoded back), malloc'ed. */
static int cut_doc(const cpt_tok *tok, const char *doc, size_t len, int max_tok, char **out, cpt_err *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = cpt_tok_encode(tok, doc, len, 0, &ids, &n, NULL, err);
    if (rc) return rc;
    size_t tl = 0;
    if (max_tok > 0 && n > (size_t)max_tok) rc = cpt_tok_decode(tok, ids, (size_t)max_tok, 1, out, &tl, err);
    else if (!(*out = strndup(doc, len))) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
    free(ids);
    return rc;
}

/* One request: a (document, type) prompt waiting for its reply. */
typedef struct {
    int32_t *ids;
    size_t n_ids, doc, line;
    int type;
    char *doc_text; /* shared by a document's requests; the last one frees it */
    int last_of_doc;
} synth_req;

/* Keep the grounded, new pairs of one reply. */
static int keep_pairs(const char *reply, const synth_req *q, const cpt_synth_opts *o, hset *seen, FILE *f, const char *tmp,
                      cpt_synth_stats *st, cpt_err *err) {
    cpt_qa_pair *pr = NULL;
    size_t np = 0;
    if (cpt_synth_parse_pairs(reply, &pr, &np)) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    st->parsed += np;
    int kept = 0, rc = CPT_OK;
    for (size_t i = 0; i < np && !rc; i++) {
        char *nq = cpt_qa_normalize(pr[i].q), *na = cpt_qa_normalize(pr[i].a);
        if (!nq || !na) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
        double sup = rc ? 0 : cpt_synth_support(pr[i].a, q->doc_text);
        if (rc) {
        } else if (!*nq || !*na || !strcmp(nq, na)) {
            st->echoed++;
        } else if (sup < o->min_support) {
            st->unsupported++;
        } else if (kept >= o->per_doc) {
            st->over_quota++;
        } else {
            int nw = hset_add(seen, str_hash(nq));
            if (nw < 0) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
            else if (nw == 0) st->duplicate++;
            else {
                json_t *rec = json_pack("{s:[{s:s,s:s},{s:s,s:s}],s:s,s:I,s:f}", "messages", "role", "user", "content", pr[i].q,
                                        "role", "assistant", "content", pr[i].a, "type", cpt_synth_type_names[q->type], "doc",
                                        (json_int_t)q->doc, "support", sup);
                char *js = rec ? json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(4)) : NULL;
                json_decref(rec);
                if (!js) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
                else if (fprintf(f, "%s\n", js) < 0)
                    rc = cpt_err_set(err, CPT_EIO, "%s: write failed (%s). HINT: is the disk full?", tmp, strerror(errno));
                free(js);
                if (!rc) kept++, st->kept++;
            }
        }
        free(nq), free(na);
    }
    cpt_synth_pairs_free(pr, np);
    return rc;
}

int cpt_synth_qa(cpt_model *m, const cpt_tok *tok, const cpt_chat *chat, const char *in_path, const char *out_path,
                 const cpt_synth_opts *o, FILE *progress, cpt_synth_stats *st, cpt_err *err) {
    memset(st, 0, sizeof *st);
    int B = o->batch > 0 ? o->batch : 1;
    if (o->per_doc < 1 || o->max_new < 1 || !o->types)
        return cpt_err_set(err, CPT_EINVAL, "synth qa: per_doc, max_new and the types must be set");
    drd *rd = NULL;
    int rc = drd_open(&rd, in_path, o->field ? o->field : "text", 0, err);
    if (rc) return rc;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        drd_close(rd);
        return cpt_err_set(err, CPT_EIO, "%s: cannot open for writing (%s). HINT: check the --out directory", tmp, strerror(errno));
    }
    int32_t stop[2] = {m->cfg.eos_id, cpt_tok_eos(tok)};
    cpt_gen_opts go = {.max_new = o->max_new, .temperature = o->temperature, .top_p = o->top_p, .stop_ids = stop,
                       .n_stop_ids = stop[1] >= 0 && stop[1] != stop[0] ? 2 : 1};
    synth_req *q = calloc((size_t)B + CPT_SYNTH_NTYPES, sizeof *q);
    cpt_gen_out *outs = calloc((size_t)B + CPT_SYNTH_NTYPES, sizeof *outs);
    const int32_t **pids = calloc((size_t)B + CPT_SYNTH_NTYPES, sizeof *pids);
    size_t *pn = calloc((size_t)B + CPT_SYNTH_NTYPES, sizeof *pn);
    uint64_t *seeds = calloc((size_t)B + CPT_SYNTH_NTYPES, sizeof *seeds);
    if (!q || !outs || !pids || !pn || !seeds) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
    int nq = 0, eof = 0;
    hset seen = {0};
    double t0 = cpt_now();
    while (!rc && (!eof || nq)) {
        /* fill the batch with whole documents' requests */
        while (!rc && !eof && nq < B) {
            const char *text;
            size_t len, line;
            int bad, more;
            if ((o->limit && st->docs >= o->limit) || (more = drd_next(rd, &text, &len, &bad, &line, err)) == 0) {
                eof = 1;
                break;
            }
            if (more < 0) {
                rc = CPT_EIO;
                break;
            }
            if (bad) {
                rc = cpt_err_set(err, CPT_EFORMAT, "%s:%zu: %s. HINT: every line must be a JSON object with a string \"%s\" "
                                 "(--field names another)", in_path, line, bad == DRD_BAD_UTF8 ? "not valid UTF-8" :
                                 bad == DRD_NO_FIELD ? "no string field" : "not a JSON object", o->field ? o->field : "text");
                break;
            }
            size_t di = st->docs++;
            char *doc = NULL;
            if ((rc = cut_doc(tok, text, len, o->max_doc_tokens, &doc, err))) break;
            int first = nq;
            for (int t = 0; t < CPT_SYNTH_NTYPES && !rc; t++) {
                if (!(o->types & (1u << t))) continue;
                char *user = cpt_synth_fill(o->templates[t] ? o->templates[t] : cpt_synth_default_templates[t], doc, o->per_doc);
                json_t *conv = user ? json_pack("{s:[{s:s,s:s}]}", "messages", "role", "user", "content", user) : NULL;
                char *cj = conv ? json_dumps(conv, JSON_COMPACT) : NULL, *prompt = NULL;
                json_decref(conv);
                size_t pl = 0;
                synth_req *r = &q[nq];
                memset(r, 0, sizeof *r);
                if (!cj) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
                if (!rc) rc = cpt_chat_render_prompt(chat, cj, strlen(cj), &prompt, &pl, err);
                if (!rc) rc = cpt_tok_encode(tok, prompt, pl, 0, &r->ids, &r->n_ids, NULL, err);
                free(user), free(cj), free(prompt);
                if (rc) {
                    cpt_err_wrap(err, "%s:%zu (document %zu)", in_path, line, di + 1);
                    break;
                }
                r->doc = di, r->line = line, r->type = t, r->doc_text = doc;
                nq++;
            }
            if (nq > first) q[nq - 1].last_of_doc = 1;
            else free(doc);
        }
        if (rc || !nq) break;
        for (int i = 0; i < nq; i++)
            pids[i] = q[i].ids, pn[i] = q[i].n_ids, seeds[i] = o->seed ^ cpt_mix64(((uint64_t)q[i].doc << 2) | (uint64_t)q[i].type);
        rc = cpt_generate_batch(m, tok, pids, pn, nq, seeds, &go, outs, err);
        if (rc) cpt_err_wrap(err, "%s:%zu (document %zu)", in_path, q[0].line, q[0].doc + 1);
        for (int i = 0; i < nq && !rc; i++) {
            st->replies++, st->tokens += outs[i].n_tokens;
            rc = keep_pairs(outs[i].text, &q[i], o, &seen, f, tmp, st, err);
        }
        for (int i = 0; i < nq; i++) {
            free(outs[i].text); /* NULL after a failed cpt_generate_batch */
            outs[i].text = NULL;
            free(q[i].ids);
            if (q[i].last_of_doc) free(q[i].doc_text);
        }
        nq = 0;
        if (progress && !rc)
            fprintf(progress, "synth qa: %zu documents, %zu pairs kept of %zu parsed (%.1f s, %.1f tokens/s)\n", st->docs, st->kept,
                    st->parsed, cpt_now() - t0, (double)st->tokens / (cpt_now() - t0 + 1e-9));
    }
    for (int i = 0; i < nq; i++) { /* an error while filling */
        free(q[i].ids);
        if (q[i].last_of_doc) free(q[i].doc_text);
    }
    st->seconds = cpt_now() - t0;
    drd_close(rd);
    free(seen.h), free(q), free(outs), free(pids), free(pn), free(seeds);
    if (fclose(f) && !rc) rc = cpt_err_set(err, CPT_EIO, "%s: write failed (%s). HINT: is the disk full?", tmp, strerror(errno));
    if (!rc && st->docs == 0) rc = cpt_err_set(err, CPT_EFORMAT, "%s: no documents", in_path);
    if (!rc && rename(tmp, out_path))
        rc = cpt_err_set(err, CPT_EIO, "%s: cannot rename to %s (%s)", tmp, out_path, strerror(errno));
    if (rc) unlink(tmp);
    return rc;
}
