/* compare.c: base-vs-tuned deltas (paired standard errors) and their SVG chart. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/eval.h"

void cpt_eval_paired_delta(const double *a, const double *b, size_t n, double *delta, double *se) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += b[i] - a[i];
    double mu = n ? s / (double)n : NAN, v = 0;
    for (size_t i = 0; i < n; i++) v += (b[i] - a[i] - mu) * (b[i] - a[i] - mu);
    if (delta) *delta = mu;
    if (se) *se = n > 1 ? sqrt(v / (double)(n - 1)) / sqrt((double)n) : 0.0;
}

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} obuf;

static void op(obuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void op(obuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc < b->n + (size_t)k + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np, b->cap = nc;
    }
}

static void xml_esc(obuf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '<') op(b, "&lt;");
        else if (*s == '>') op(b, "&gt;");
        else if (*s == '&') op(b, "&amp;");
        else if (*s == '"') op(b, "&quot;");
        else op(b, "%c", *s);
    }
}

char *cpt_eval_compare_svg(const cpt_compare_row *rows, int n, double budget) {
    const double W = 640, rowh = 28, top = 40, left = 150, right = 30, plotw = W - left - right;
    double H = top + rowh * (n > 0 ? n : 1) + 50, lim = budget * 1.5;
    for (int i = 0; i < n; i++) {
        double e = fabs(rows[i].delta) + 1.96 * rows[i].delta_se;
        if (isfinite(e) && e > lim) lim = e;
    }
    if (!(lim > 0)) lim = 0.05;
    lim *= 1.1;
#define XPOS(v) (left + ((v) + lim) / (2 * lim) * plotw)
    obuf b = {0};
    op(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    op(&b, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    op(&b, "<text x=\"%.0f\" y=\"20\" font-size=\"14\">tuned - base per task (bars), +-1.96 stderr, forgetting budget -%.3g (dashed)</text>\n", 10.0, budget);
    double y1 = top + rowh * n;
    op(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", XPOS(0), top - 5, XPOS(0), y1);
    op(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c00\" stroke-dasharray=\"4,3\"/>\n", XPOS(-budget), top - 5, XPOS(-budget), y1);
    for (int i = 0; i < n; i++) {
        const cpt_compare_row *r = &rows[i];
        double y = top + rowh * i, d = isfinite(r->delta) ? r->delta : 0;
        double x0 = XPOS(d < 0 ? d : 0), x1 = XPOS(d < 0 ? 0 : d);
        op(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", left - 8, y + rowh * 0.65);
        xml_esc(&b, r->task);
        op(&b, "</text>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n", x0, y + 5, x1 - x0 > 0.5 ? x1 - x0 : 0.5,
           rowh - 10, r->forgot ? "#d9534f" : "#4a90d9");
        double e = 1.96 * (isfinite(r->delta_se) ? r->delta_se : 0);
        op(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", XPOS(d - e), y + rowh / 2, XPOS(d + e), y + rowh / 2);
    }
    for (int k = -2; k <= 2; k++) {
        double v = lim * k / 2.0;
        op(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%+.3f</text>\n", XPOS(v), y1 + 20, v);
    }
    op(&b, "</svg>\n");
#undef XPOS
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
