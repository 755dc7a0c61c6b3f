/* longctx.c: long-context evaluation (cpt/longctx.h): passkey and needle prompts built to
 * a token budget with the model's own tokenizer, greedy answers through a prefilled KV
 * cache, loss by position bucket, and the SVG heat map. */
#define _GNU_SOURCE
#include "cpt/longctx.h"

#include "cpt/generate.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/generate.h"
#include "cpt/model.h"
#include "cpt/tokenizer.h"

const char *const cpt_lc_test_names[CPT_LC_NTESTS] = {"passkey", "needle"};

/* §8.1, verbatim */
static const char PK_TASK[] = "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
                              "I will quiz you about the important information there.";
static const char PK_GARBAGE[] = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
static const char PK_QUESTION[] = "What is the pass key? The pass key is";
/* §8.2: gkamradt's needle and question; the prompt ends with an answer prefix (as the
 * passkey prompt and RULER do) so that a base model answers by continuing it. */
const char cpt_lc_needle_text[] =
    "\nThe best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.\n";
const char cpt_lc_needle_question[] = "\n\nWhat is the best thing to do in San Francisco? The best thing to do in San Francisco is";

static void repeat_into(char *p, int n) { /* " ".join([garbage] * n) */
    size_t g = sizeof PK_GARBAGE - 1;
    for (int i = 0; i < n; i++) {
        if (i) *p++ = ' ';
        memcpy(p, PK_GARBAGE, g), p += g;
    }
    *p = 0;
}

char *cpt_lc_passkey_text(int n_prefix, int n_suffix, int key) {
    if (n_prefix < 0 || n_suffix < 0) return NULL;
    char needle[128];
    snprintf(needle, sizeof needle, "The pass key is %d. Remember it. %d is the pass key.", key, key);
    size_t g = sizeof PK_GARBAGE, cap = sizeof PK_TASK + (size_t)(n_prefix + n_suffix) * g + strlen(needle) + sizeof PK_QUESTION + 8;
    char *s = malloc(cap), *p = s;
    if (!s) return NULL;
    p += sprintf(p, "%s\n", PK_TASK);
    repeat_into(p, n_prefix), p += strlen(p);
    p += sprintf(p, "\n%s\n", needle);
    repeat_into(p, n_suffix), p += strlen(p);
    sprintf(p, "\n%s", PK_QUESTION);
    return s;
}

static int encode_passkey(const cpt_tok *tok, int n, double depth, int key, int32_t **ids, size_t *n_ids, cpt_err *err) {
    int np = (int)lround(depth * n);
    if (np > n) np = n;
    char *txt = cpt_lc_passkey_text(np, n - np, key);
    if (!txt) return cpt_err_set(err, CPT_ENOMEM, "out of memory for a passkey prompt of %d repetitions", n);
    *ids = NULL;
    int rc = cpt_tok_encode(tok, txt, strlen(txt), 1, ids, n_ids, NULL, err);
    free(txt);
    return rc;
}

int cpt_lc_passkey_prompt(const cpt_tok *tok, int length, int max_new, double depth, int key, int32_t **ids,
                          size_t *n_ids, int *n_rep, cpt_err *err) {
    *ids = NULL, *n_ids = 0;
    if (!(depth >= 0 && depth <= 1)) return cpt_err_set(err, CPT_EINVAL, "passkey depth %g is outside [0, 1]", depth);
    size_t room = length > max_new ? (size_t)(length - max_new) : 0;
    int32_t *x = NULL;
    size_t nx = 0;
    int rc;
    /* tokens grow monotonically with the repetitions: find the largest n that fits */
    if ((rc = encode_passkey(tok, 0, depth, key, &x, &nx, err))) return rc;
    if (nx > room) {
        free(x);
        return cpt_err_set(err, CPT_EINVAL,
                           "a passkey prompt needs %zu tokens before any filler, more than length %d - %d answer tokens. HINT: use a "
                           "larger --lengths value", nx, length, max_new);
    }
    size_t per = nx; /* tokens of the empty prompt */
    free(x);
    int32_t *g = NULL;
    size_t ng = 0;
    if ((rc = cpt_tok_encode(tok, PK_GARBAGE, sizeof PK_GARBAGE - 1, 0, &g, &ng, NULL, err))) return rc;
    free(g);
    int lo = 0, hi = ng ? (int)((room - per) / ng) + 2 : 1; /* lo fits; find the smallest hi that does not */
    for (;;) {
        if ((rc = encode_passkey(tok, hi, depth, key, &x, &nx, err))) return rc;
        free(x);
        if (nx > room) break;
        lo = hi, hi *= 2;
        if (hi > (1 << 26)) return cpt_err_set(err, CPT_EINVAL, "the passkey prompt does not grow with its filler");
    }
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if ((rc = encode_passkey(tok, mid, depth, key, &x, &nx, err))) return rc;
        free(x);
        if (nx <= room) lo = mid;
        else hi = mid;
    }
    if (n_rep) *n_rep = lo;
    return encode_passkey(tok, lo, depth, key, ids, n_ids, err);
}

static int ends_with_period(const cpt_tok *tok, int32_t id) {
    char *t = NULL;
    size_t n = 0;
    cpt_err e = {0};
    if (cpt_tok_decode(tok, &id, 1, 0, &t, &n, &e)) return 0;
    int r = n > 0 && t[n - 1] == '.';
    free(t);
    return r;
}

int cpt_lc_needle_prompt(const cpt_tok *tok, const int32_t *hay, size_t n_hay, int length, int max_new, double depth,
                         int32_t **ids, size_t *n_ids, double *actual_depth, cpt_err *err) {
    *ids = NULL, *n_ids = 0;
    if (!(depth >= 0 && depth <= 1)) return cpt_err_set(err, CPT_EINVAL, "needle depth %g is outside [0, 1]", depth);
    if (!hay || !n_hay) return cpt_err_set(err, CPT_EINVAL, "the needle test needs a haystack. HINT: pass --haystack FILE (a long text)");
    int32_t *nd = NULL, *qs = NULL, *ctx = NULL;
    size_t nn = 0, nq = 0;
    int rc = cpt_tok_encode(tok, cpt_lc_needle_text, strlen(cpt_lc_needle_text), 0, &nd, &nn, NULL, err);
    if (!rc) rc = cpt_tok_encode(tok, cpt_lc_needle_question, strlen(cpt_lc_needle_question), 1, &qs, &nq, NULL, err);
    long long room = (long long)length - max_new, budget = room - (long long)nq - (long long)nn;
    if (!rc && budget < 1)
        rc = cpt_err_set(err, CPT_EINVAL, "a needle prompt needs more than %lld tokens (needle %zu, question %zu, answer %d), more than "
                         "length %d. HINT: use a larger --lengths value", (long long)(nn + nq + max_new), nn, nq, max_new, length);
    if (!rc && !(ctx = malloc(sizeof(int32_t) * ((size_t)budget + nn))))
        rc = cpt_err_set(err, CPT_ENOMEM, "out of memory for a needle prompt of %d tokens", length);
    for (int attempt = 0; !rc && attempt < 64; attempt++) {
        /* the haystack, repeated when it is shorter than the budget, cut to the budget */
        size_t B = (size_t)budget, ins = depth >= 1 ? B : (size_t)((double)B * depth);
        while (ins > 0 && ins < B && !ends_with_period(tok, hay[(ins - 1) % n_hay])) ins--;
        size_t k = 0;
        for (size_t i = 0; i < ins; i++) ctx[k++] = hay[i % n_hay];
        memcpy(ctx + k, nd, sizeof(int32_t) * nn), k += nn;
        for (size_t i = ins; i < B; i++) ctx[k++] = hay[i % n_hay];
        char *txt = NULL;
        size_t tl = 0;
        if ((rc = cpt_tok_decode(tok, ctx, k, 1, &txt, &tl, err))) break;
        size_t ql = strlen(cpt_lc_needle_question);
        char *full = realloc(txt, tl + ql + 1);
        if (!full) {
            free(txt);
            rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
            break;
        }
        memcpy(full + tl, cpt_lc_needle_question, ql + 1);
        free(*ids);
        *ids = NULL;
        rc = cpt_tok_encode(tok, full, tl + ql, 1, ids, n_ids, NULL, err);
        free(full);
        if (rc) break;
        if ((long long)*n_ids <= room) {
            if (actual_depth) *actual_depth = B ? (double)ins / (double)B : 0.0;
            goto out;
        }
        budget -= (long long)*n_ids - room; /* re-tokenising at the splice may merge differently */
        if (budget < 1) break;
    }
    if (!rc) rc = cpt_err_set(err, CPT_EINVAL, "could not fit a needle prompt into %d tokens", length);
out:
    if (rc) free(*ids), *ids = NULL, *n_ids = 0;
    free(nd), free(qs), free(ctx);
    return rc;
}

int cpt_lc_first_int(const char *s, long long *v) {
    for (; *s; s++)
        if (*s >= '0' && *s <= '9') {
            long long x = 0;
            for (; *s >= '0' && *s <= '9'; s++) x = x < 100000000000000000ll ? x * 10 + (*s - '0') : x;
            *v = x;
            return 1;
        }
    return 0;
}

static int contains_ci(const char *s, const char *w) {
    size_t n = strlen(w);
    for (; *s; s++)
        if (!strncasecmp(s, w, n)) return 1;
    return 0;
}

int cpt_lc_needle_hit(const char *s) { return contains_ci(s, "dolores park") && contains_ci(s, "sandwich"); }

void cpt_lc_trials_free(cpt_lc_trial *t, size_t n) {
    if (!t) return;
    for (size_t i = 0; i < n; i++) free(t[i].answer);
    free(t);
}

int cpt_lc_run(cpt_model *m, const cpt_tok *tok, const cpt_lc_opts *o, cpt_lc_trial **trials, size_t *n_trials, cpt_err *err) {
    *trials = NULL, *n_trials = 0;
    if (o->n_lengths < 1 || o->n_depths < 1 || o->trials < 1) return cpt_err_set(err, CPT_EINVAL, "eval-long: no lengths, depths or trials");
    size_t cap = (size_t)CPT_LC_NTESTS * o->n_lengths * o->n_depths * o->trials, n = 0;
    cpt_lc_trial *T = calloc(cap, sizeof *T);
    int rc = CPT_OK;
    if (!T) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    int32_t eos = m->cfg.eos_id;
    for (int test = 0; test < CPT_LC_NTESTS && !rc; test++) {
        if (!o->run[test]) continue;
        for (int li = 0; li < o->n_lengths && !rc; li++)
            for (int di = 0; di < o->n_depths && !rc; di++)
                for (int k = 0; k < o->trials && !rc; k++) {
                    cpt_lc_trial *t = &T[n];
                    t->test = test, t->length = o->lengths[li], t->depth = o->depths[di], t->trial = k;
                    int32_t *ids = NULL;
                    size_t ni = 0;
                    int mn = o->max_new[test];
                    if (test == CPT_LC_PASSKEY) {
                        uint64_t s = o->seed ^ cpt_mix64(((uint64_t)(unsigned)o->lengths[li] << 32) ^ ((uint64_t)di << 16) ^ (uint64_t)k);
                        t->key = 1 + (long long)(cpt_splitmix64(&s) % 50000); /* random.randint(1, 50000) */
                        int rep = 0;
                        rc = cpt_lc_passkey_prompt(tok, t->length, mn, t->depth, (int)t->key, &ids, &ni, &rep, err);
                        t->actual_depth = rep ? (double)lround(t->depth * rep) / rep : t->depth;
                    } else {
                        rc = cpt_lc_needle_prompt(tok, o->haystack, o->n_haystack, t->length, mn, t->depth, &ids, &ni, &t->actual_depth, err);
                    }
                    double t0 = cpt_now();
                    /* greedy, stopping after the model's eos; the answer decoded with special tokens skipped */
                    cpt_gen_opts go = {.max_new = mn, .temperature = 0, .top_p = 1, .stop_ids = &eos, .n_stop_ids = 1};
                    cpt_gen_out g = {0};
                    if (!rc) rc = cpt_generate(m, tok, ids, ni, &go, &g, err);
                    free(ids);
                    if (rc) break;
                    t->seconds = cpt_now() - t0;
                    t->prompt_tokens = (int)ni;
                    t->answer = g.text;
                    long long v = 0;
                    t->correct = test == CPT_LC_PASSKEY ? cpt_lc_first_int(t->answer, &v) && v == t->key : cpt_lc_needle_hit(t->answer);
                    n++;
                    if (o->progress) {
                        fprintf(o->progress, "  %-7s length %6d depth %.2f trial %d: %6d tokens, %s (%.1f s): ", cpt_lc_test_names[test], t->length,
                                t->depth, k + 1, t->prompt_tokens, t->correct ? "ok  " : "MISS", t->seconds);
                        if (test == CPT_LC_PASSKEY) fprintf(o->progress, "key %lld, ", t->key);
                        fputc('"', o->progress);
                        for (const char *c = t->answer; *c; c++) fputc(*c == '\n' ? ' ' : *c, o->progress);
                        fprintf(o->progress, "\"\n");
                        fflush(o->progress);
                    }
                }
    }
    if (rc) {
        cpt_lc_trials_free(T, n + 1);
        return rc;
    }
    *trials = T, *n_trials = n;
    return CPT_OK;
}

int cpt_lc_buckets(int length, int b, int *lo, int *hi) {
    if (b < 1) b = 1;
    int n = 0, a = 0, e = b;
    while (a < length && n < CPT_LC_MAX_BUCKETS) {
        int z = e < length && n + 1 < CPT_LC_MAX_BUCKETS ? e : length;
        lo[n] = a, hi[n] = z, n++;
        a = z, e = a * 2 > a ? a * 2 : length;
    }
    return n;
}

int cpt_lc_ppl_run(cpt_model *m, const int32_t *const *docs, const size_t *doc_len, int n_docs, int length, int bucket,
                   int max_windows, cpt_lc_ppl *out, cpt_err *err) {
    memset(out, 0, sizeof *out);
    out->length = length;
    out->n_buckets = cpt_lc_buckets(length, bucket, out->lo, out->hi);
    if (length < 1) return cpt_err_set(err, CPT_EINVAL, "window length %d", length);
    size_t longest = 0;
    for (int d = 0; d < n_docs; d++) longest = doc_len[d] > longest ? doc_len[d] : longest;
    if (longest < (size_t)length + 1)
        return cpt_err_set(err, CPT_EINVAL,
                           "no document is longer than %d tokens (the longest has %zu), so loss by position at length %d has nothing "
                           "to score. HINT: give longer texts (--ppl-text, e.g. a book), or smaller --lengths", length, longest, length);
    cpt_acts *a = NULL;
    int32_t *tg = malloc(sizeof(int32_t) * (size_t)length);
    float *ls = malloc(sizeof(float) * (size_t)length);
    double sum[CPT_LC_MAX_BUCKETS] = {0}, all = 0;
    int rc = !tg || !ls ? cpt_err_set(err, CPT_ENOMEM, "out of memory") : cpt_acts_create(&a, m, 1, length, 0, err);
    for (int d = 0; !rc && d < n_docs; d++)
        for (size_t s = 0; !rc && s + (size_t)length + 1 <= doc_len[d]; s += (size_t)length) {
            if (max_windows > 0 && out->windows >= max_windows) goto done;
            const int32_t *w = docs[d] + s;
            memcpy(tg, w + 1, sizeof(int32_t) * (size_t)length);
            cpt_batch b = {1, length, w, tg, NULL, NULL};
            double lsum = 0;
            long long nv = 0;
            if ((rc = cpt_model_token_losses(m, a, &b, ls, &lsum, &nv, err))) break;
            for (int k = 0; k < out->n_buckets; k++)
                for (int t = out->lo[k]; t < out->hi[k]; t++) sum[k] += ls[t], out->bucket_tokens[k]++;
            all += lsum, out->tokens += nv, out->windows++;
        }
done:
    for (int k = 0; k < out->n_buckets; k++) out->bucket_loss[k] = out->bucket_tokens[k] ? sum[k] / (double)out->bucket_tokens[k] : NAN;
    out->loss = out->tokens ? all / (double)out->tokens : NAN;
    cpt_acts_free(a);
    free(tg), free(ls);
    return rc;
}

/* ---- SVG ---- */

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

/* accuracy 0 -> red, 0.5 -> yellow, 1 -> green (ColorBrewer RdYlGn ends) */
static void acc_color(double a, char *buf) {
    static const int c[3][3] = {{215, 48, 39}, {254, 224, 139}, {26, 152, 80}};
    int i = a < 0.5 ? 0 : 1;
    double u = a < 0.5 ? a * 2 : (a - 0.5) * 2;
    sprintf(buf, "#%02x%02x%02x", (int)lround(c[i][0] + u * (c[i + 1][0] - c[i][0])), (int)lround(c[i][1] + u * (c[i + 1][1] - c[i][1])),
            (int)lround(c[i][2] + u * (c[i + 1][2] - c[i][2])));
}

char *cpt_lc_svg(const cpt_lc_trial *t, size_t n, const cpt_lc_opts *o, const cpt_lc_ppl *ppl, int n_ppl, const char *title) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    int tests[CPT_LC_NTESTS], nt = 0;
    for (int k = 0; k < CPT_LC_NTESTS; k++) {
        int any = 0;
        for (size_t i = 0; i < n; i++) any |= t[i].test == k;
        if (any) tests[nt++] = k;
    }
    const int cw = 64, ch = 26, left = 70, top = 50, gap = 40;
    int mapw = left + cw * o->n_lengths + 30, maph = top + ch * o->n_depths + 50;
    if (mapw < 260) mapw = 260;
    int chartw = 560, charth = 300;
    int W = nt * mapw + (n_ppl > 0 ? chartw : 0) + 20, H = (maph > charth + top ? maph : charth + top) + 20;
    if (W < 300) W = 300;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"15\">");
    xml_text(f, title ? title : "long-context evaluation");
    fprintf(f, "</text>\n");
    for (int p = 0; p < nt; p++) {
        int x0 = p * mapw, k = tests[p];
        fprintf(f, "<g data-test=\"%s\">\n<text x=\"%d\" y=\"%d\" font-weight=\"bold\">%s accuracy</text>\n", cpt_lc_test_names[k],
                x0 + left, top - 12, cpt_lc_test_names[k]);
        for (int di = 0; di < o->n_depths; di++) {
            fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.0f%%</text>\n", x0 + left - 6, top + di * ch + ch / 2 + 4,
                    o->depths[di] * 100);
            for (int li = 0; li < o->n_lengths; li++) {
                int ok = 0, tot = 0;
                for (size_t i = 0; i < n; i++)
                    if (t[i].test == k && t[i].length == o->lengths[li] && t[i].depth == o->depths[di]) tot++, ok += t[i].correct;
                char col[16] = "#dddddd";
                if (tot) acc_color((double)ok / tot, col);
                fprintf(f, "<rect data-length=\"%d\" data-depth=\"%g\" data-correct=\"%d\" data-trials=\"%d\" x=\"%d\" y=\"%d\" width=\"%d\" "
                        "height=\"%d\" fill=\"%s\" stroke=\"white\"/>\n", o->lengths[li], o->depths[di], ok, tot, x0 + left + li * cw,
                        top + di * ch, cw, ch, col);
                fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%d/%d</text>\n", x0 + left + li * cw + cw / 2, top + di * ch + ch / 2 + 4,
                        ok, tot);
            }
        }
        for (int li = 0; li < o->n_lengths; li++)
            fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", x0 + left + li * cw + cw / 2, top + o->n_depths * ch + 16,
                    o->lengths[li]);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">context length (tokens)</text>\n", x0 + left + cw * o->n_lengths / 2,
                top + o->n_depths * ch + 34);
        fprintf(f, "<text x=\"%d\" y=\"%d\" transform=\"rotate(-90 %d %d)\" text-anchor=\"middle\">depth</text>\n</g>\n", x0 + 14,
                top + ch * o->n_depths / 2, x0 + 14, top + ch * o->n_depths / 2);
    }
    if (n_ppl > 0) {
        int x0 = nt * mapw + 50, y0 = top, w = chartw - 170, h = charth - 60;
        double ymin = INFINITY, ymax = -INFINITY, xmax = 1;
        for (int j = 0; j < n_ppl; j++)
            for (int k = 0; k < ppl[j].n_buckets; k++) {
                double v = ppl[j].bucket_loss[k];
                if (isfinite(v)) ymin = fmin(ymin, v), ymax = fmax(ymax, v);
                xmax = fmax(xmax, ppl[j].hi[k]);
            }
        if (!isfinite(ymin)) ymin = 0, ymax = 1;
        if (ymax - ymin < 1e-6) ymin -= 0.5, ymax += 0.5;
        double pad = (ymax - ymin) * 0.08;
        ymin -= pad, ymax += pad;
        fprintf(f, "<g data-chart=\"loss-by-position\">\n<text x=\"%d\" y=\"%d\" font-weight=\"bold\">loss by position bucket (mean NLL)</text>\n",
                x0, y0 - 12);
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n", x0, y0, w, h);
        for (int g = 0; g <= 4; g++) {
            double v = ymin + (ymax - ymin) * g / 4;
            int y = y0 + h - (int)lround((v - ymin) / (ymax - ymin) * h);
            fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.3f</text>\n", x0 - 4, y + 4, v);
        }
        for (int g = 0; g <= 4; g++)
            fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%.0f</text>\n", x0 + w * g / 4, y0 + h + 16, xmax * g / 4);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">position in the window (tokens)</text>\n", x0 + w / 2, y0 + h + 34);
        static const char *pal[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
        for (int j = 0; j < n_ppl; j++) {
            fprintf(f, "<path data-series=\"length %d\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" d=\"", ppl[j].length, pal[j % 8]);
            int first = 1;
            for (int k = 0; k < ppl[j].n_buckets; k++) {
                double v = ppl[j].bucket_loss[k];
                if (!isfinite(v)) continue;
                double xm = 0.5 * (ppl[j].lo[k] + ppl[j].hi[k]);
                fprintf(f, "%s%.1f %.1f ", first ? "M" : "L", x0 + xm / xmax * w, y0 + h - (v - ymin) / (ymax - ymin) * h);
                first = 0;
            }
            fprintf(f, "\"/>\n");
            for (int k = 0; k < ppl[j].n_buckets; k++) {
                double v = ppl[j].bucket_loss[k], xm = 0.5 * (ppl[j].lo[k] + ppl[j].hi[k]);
                if (isfinite(v))
                    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%d\" fill=\"%s\"><title>length %d, positions [%d, %d): loss %.4f</title></circle>\n",
                            x0 + xm / xmax * w, y0 + h - (v - ymin) / (ymax - ymin) * h, 4 - (j % 3), pal[j % 8], ppl[j].length, ppl[j].lo[k],
                            ppl[j].hi[k], v);
            }
            fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"%s\">length %d</text>\n", x0 + w + 6, y0 + 14 + 16 * j, pal[j % 8], ppl[j].length);
        }
        fprintf(f, "</g>\n");
    }
    fprintf(f, "</svg>\n");
    (void)gap;
    if (fclose(f)) {
        free(buf);
        return NULL;
    }
    return buf;
}
