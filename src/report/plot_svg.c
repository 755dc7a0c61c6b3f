/* plot_svg.c: line charts written as SVG by hand (axes, nice ticks, log axes, legend,
 * a second y axis, stacked panels). Not a plotting library: no markers, bars or
 * annotations beyond what training curves need. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "cpt/metrics.h"
#include "report/report-impl.h"

/* Layout in SVG user units (px). */
#define W 960.0
#define TITLE_H 40.0
#define PANEL_H 330.0
#define LEFT 84.0
#define RIGHT_Y2 84.0
#define RIGHT_NONE 36.0
#define PANEL_TITLE_H 26.0
#define LEGEND_ROW 18.0
#define BOTTOM 48.0
#define CHAR_W 7.0 /* rough width of a 12px sans-serif character, for legend layout */

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

static void xml_text(cpt_buf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': cpt_buf_printf(b, "&amp;"); break;
        case '<': cpt_buf_printf(b, "&lt;"); break;
        case '>': cpt_buf_printf(b, "&gt;"); break;
        case '"': cpt_buf_printf(b, "&quot;"); break;
        case '\'': cpt_buf_printf(b, "&apos;"); break;
        default:
            /* XML 1.0 forbids most control characters even escaped */
            if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n') cpt_buf_put(b, " ", 1);
            else cpt_buf_put(b, s, 1);
        }
    }
}

/* An axis: data range [lo, hi] (in log10 units if log), and its ticks (data units). */
typedef struct axis {
    int log, used;
    double lo, hi;
    double ticks[32];
    int nticks;
    double step; /* linear tick spacing (label precision); 0 for log labels */
} axis;

static double nice_step(double range, int target) {
    double raw = range / target;
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    double m = f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10;
    return m * mag;
}

/* Linear "loose" ticks: the range grows to whole multiples of a 1-2-5 step. */
static void linear_ticks(axis *a, double mn, double mx, int target) {
    if (!(mx > mn)) {
        double d = mn != 0 ? fabs(mn) * 0.1 : 1.0;
        mn -= d, mx += d;
    }
    double st = nice_step(mx - mn, target);
    a->lo = floor(mn / st + 1e-9) * st;
    a->hi = ceil(mx / st - 1e-9) * st;
    a->step = st;
    a->nticks = 0;
    for (int i = 0; a->lo + i * st <= a->hi + st * 1e-6 && a->nticks < 32; i++) {
        double t = a->lo + i * st; /* not t += st: the sum drifts */
        a->ticks[a->nticks++] = fabs(t) < st * 1e-9 ? 0.0 : t;
    }
}

/* Log ticks: whole decades if the data spans two or more, else 1-2-5 or 1..9 times
 * powers of ten inside the data range, else linear ticks placed on the log scale. */
static void log_ticks(axis *a, double mn, double mx) {
    double l0 = floor(log10(mn)), l1 = ceil(log10(mx));
    if (l1 - l0 < 1) l1 = l0 + 1;
    a->step = 0;
    if (l1 - l0 >= 2) {
        a->lo = l0, a->hi = l1, a->nticks = 0;
        for (double e = l0; e <= l1 && a->nticks < 32; e++) a->ticks[a->nticks++] = pow(10, e);
        return;
    }
    double pad = (log10(mx) - log10(mn)) * 0.05;
    if (pad == 0) pad = 0.02;
    a->lo = log10(mn) - pad, a->hi = log10(mx) + pad;
    static const double sets[2][9] = {{1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
    static const int nset[2] = {3, 9};
    for (int s = 0; s < 2; s++) {
        a->nticks = 0;
        for (double e = l0 - 1; e <= l1; e++)
            for (int i = 0; i < nset[s]; i++) {
                double t = sets[s][i] * pow(10, e);
                if (log10(t) >= a->lo && log10(t) <= a->hi && a->nticks < 32) a->ticks[a->nticks++] = t;
            }
        if (a->nticks >= 3) return;
    }
    axis lin;
    linear_ticks(&lin, mn, mx, 4);
    a->nticks = 0;
    a->step = lin.step;
    for (int i = 0; i < lin.nticks; i++)
        if (lin.ticks[i] > 0 && log10(lin.ticks[i]) >= a->lo && log10(lin.ticks[i]) <= a->hi)
            a->ticks[a->nticks++] = lin.ticks[i];
}

/* "3e-5" rather than "3e-05". */
static void compact_exp(char *s) {
    char *e = strchr(s, 'e');
    if (!e) return;
    char *p = e + 1;
    if (*p == '+') memmove(p, p + 1, strlen(p));
    if (*p == '-') p++;
    while (p[0] == '0' && p[1]) memmove(p, p + 1, strlen(p));
}

static void fmt_tick(char *out, size_t cap, double v, double step) {
    if (v == 0) {
        snprintf(out, cap, "0");
    } else if (step <= 0) { /* log decade ticks */
        snprintf(out, cap, "%g", v);
        compact_exp(out);
    } else if (step >= 1000 && fabs(v) >= 1000) {
        int mega = fabs(v) >= 1e6 && step >= 1e5;
        double scale = mega ? 1e6 : 1e3, st = step / scale;
        int dec = st >= 1 ? 0 : (int)ceil(-log10(st) - 1e-9);
        snprintf(out, cap, "%.*f%s", dec, v / scale, mega ? "M" : "k");
    } else if (step < 1e-3) {
        snprintf(out, cap, "%.3g", v);
        compact_exp(out);
    } else {
        int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        snprintf(out, cap, "%.*f", dec, v);
    }
}

static int drawable(const axis *ay, double x, double y) {
    return isfinite(x) && isfinite(y) && (!ay->log || y > 0);
}

/* px/py of a data point inside the plot rectangle (x0, y0, w, h). */
static double map_x(double x, double xlo, double xhi, double x0, double w) {
    return x0 + (x - xlo) / (xhi - xlo) * w;
}
static double map_y(const axis *a, double y, double y0, double h) {
    double t = a->log ? log10(y) : y;
    return y0 + h - (t - a->lo) / (a->hi - a->lo) * h;
}

static int legend_rows(const cpt_plot_panel *p, double width) {
    int rows = 1;
    double x = 0;
    for (int i = 0; i < p->n_series; i++) {
        double wi = 36 + CHAR_W * (double)(strlen(p->series[i].name) + 10);
        if (x > 0 && x + wi > width) rows++, x = 0;
        x += wi;
    }
    return rows;
}

static void draw_panel(cpt_buf *b, const cpt_plot_panel *p, int pi, double top, double xlo,
                       double xhi, const axis *xa) {
    axis ya[2] = {{0}, {0}};
    ya[0].log = p->log_y, ya[1].log = p->log_y2;
    double mn[2] = {INFINITY, INFINITY}, mx[2] = {-INFINITY, -INFINITY};
    for (int i = 0; i < p->n_series; i++) {
        const cpt_plot_series *s = &p->series[i];
        int ax = s->axis ? 1 : 0;
        ya[ax].used = 1;
        for (int k = 0; k < s->n; k++)
            if (drawable(&ya[ax], s->x[k], s->y[k])) {
                if (s->y[k] < mn[ax]) mn[ax] = s->y[k];
                if (s->y[k] > mx[ax]) mx[ax] = s->y[k];
            }
    }
    for (int ax = 0; ax < 2; ax++) {
        if (!isfinite(mn[ax])) mn[ax] = ya[ax].log ? 1 : 0, mx[ax] = ya[ax].log ? 10 : 1;
        if (ya[ax].log) log_ticks(&ya[ax], mn[ax], mx[ax]);
        else linear_ticks(&ya[ax], mn[ax], mx[ax], 5);
    }
    double right = ya[1].used ? RIGHT_Y2 : RIGHT_NONE;
    double x0 = LEFT, w = W - LEFT - right;
    int rows = legend_rows(p, w);
    double y0 = top + PANEL_TITLE_H + rows * LEGEND_ROW + 6;
    double h = top + PANEL_H - BOTTOM - y0;
    char num[64];

    cpt_buf_printf(b, "<g class=\"panel\" id=\"panel%d\">\n", pi);
    if (p->title) {
        cpt_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" font-weight=\"bold\">", x0, top + 18);
        xml_text(b, p->title);
        cpt_buf_printf(b, "</text>\n");
    }
    /* legend: a row of line samples with names, above the plot area */
    double lx = x0, ly = top + PANEL_TITLE_H + 10;
    for (int i = 0; i < p->n_series; i++) {
        const cpt_plot_series *s = &p->series[i];
        const char *col = s->color ? s->color : palette[i % 10];
        double wi = 36 + CHAR_W * (double)(strlen(s->name) + 10);
        if (lx > x0 && lx + wi > x0 + w) lx = x0, ly += LEGEND_ROW;
        int any = 0;
        for (int k = 0; k < s->n && !any; k++) any = drawable(&ya[s->axis ? 1 : 0], s->x[k], s->y[k]);
        cpt_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"", lx,
                       ly - 4, lx + 26, ly - 4);
        xml_text(b, col);
        cpt_buf_printf(b, "\" stroke-width=\"2.5\"%s/>\n", s->dashed ? " stroke-dasharray=\"6 4\"" : "");
        cpt_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\">", lx + 32, ly);
        xml_text(b, s->name);
        if (p->n_series && ya[1].used) xml_text(b, s->axis ? " (right)" : " (left)");
        if (!any) xml_text(b, " (no data)");
        cpt_buf_printf(b, "</text>\n");
        lx += wi;
    }
    /* plot area, grid and ticks */
    cpt_buf_printf(b, "<clipPath id=\"clip%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>\n",
                   pi, x0, y0, w, h);
    cpt_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fcfcfc\" stroke=\"#888\"/>\n",
                   x0, y0, w, h);
    for (int i = 0; i < xa->nticks; i++) {
        double px = map_x(xa->ticks[i], xlo, xhi, x0, w);
        fmt_tick(num, sizeof num, xa->ticks[i], xa->step);
        cpt_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                       px, y0, px, y0 + h, px, y0 + h + 16, num);
    }
    for (int ax = 0; ax < 2; ax++) {
        if (!ya[ax].used && ax == 1) continue;
        const char *col = "#333";
        for (int i = 0; ax == 1 && i < p->n_series; i++)
            if (p->series[i].axis) {
                col = p->series[i].color ? p->series[i].color : palette[i % 10];
                break;
            }
        for (int i = 0; i < ya[ax].nticks; i++) {
            double py = map_y(&ya[ax], ya[ax].ticks[i], y0, h);
            fmt_tick(num, sizeof num, ya[ax].ticks[i], ya[ax].step);
            if (ax == 0)
                cpt_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
                                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                               x0, py, x0 + w, py, x0 - 6, py + 4, num);
            else {
                cpt_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\"/>"
                                  "<text x=\"%.1f\" y=\"%.1f\" fill=\"",
                               x0 + w, py, x0 + w + 4, py, x0 + w + 7, py + 4);
                xml_text(b, col);
                cpt_buf_printf(b, "\">%s</text>\n", num);
            }
        }
        const char *label = ax ? p->y2label : p->ylabel;
        if (label) {
            double lxp = ax ? W - 14 : 18, lyp = y0 + h / 2;
            cpt_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(%d %.1f %.1f)\" fill=\"",
                           lxp, lyp, ax ? 90 : -90, lxp, lyp);
            xml_text(b, col);
            cpt_buf_printf(b, "\">");
            xml_text(b, label);
            if (ya[ax].log) xml_text(b, " (log)");
            cpt_buf_printf(b, "</text>\n");
        }
    }
    if (p->xlabel) {
        cpt_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x0 + w / 2, y0 + h + 36);
        xml_text(b, p->xlabel);
        cpt_buf_printf(b, "</text>\n");
    }
    /* the series: one path each; non-drawable points break the line */
    for (int i = 0; i < p->n_series; i++) {
        const cpt_plot_series *s = &p->series[i];
        const axis *a = &ya[s->axis ? 1 : 0];
        int any = 0;
        for (int k = 0; k < s->n && !any; k++) any = drawable(a, s->x[k], s->y[k]);
        if (!any) continue;
        cpt_buf_printf(b, "<path data-series=\"");
        xml_text(b, s->name);
        cpt_buf_printf(b, "\" clip-path=\"url(#clip%d)\" fill=\"none\" stroke=\"", pi);
        xml_text(b, s->color ? s->color : palette[i % 10]);
        cpt_buf_printf(b, "\" stroke-width=\"%s\" stroke-linejoin=\"round\" stroke-linecap=\"round\"%s d=\"",
                       s->dashed ? "1.5" : "1.6", s->dashed ? " stroke-dasharray=\"6 4\"" : "");
        int pen = 0; /* 0: next point starts a subpath */
        for (int k = 0; k < s->n; k++) {
            if (!drawable(a, s->x[k], s->y[k])) {
                pen = 0;
                continue;
            }
            int alone = !pen && !(k + 1 < s->n && drawable(a, s->x[k + 1], s->y[k + 1]));
            cpt_buf_printf(b, "%s%.1f,%.1f%s", pen ? " L" : (k ? " M" : "M"),
                           map_x(s->x[k], xlo, xhi, x0, w), map_y(a, s->y[k], y0, h),
                           alone ? " h0" : ""); /* a lone point: a round-capped dot */
            pen = 1;
        }
        cpt_buf_printf(b, "\"/>\n");
        /* Lone points (e.g. an eval set with only its step-0 value so far) would be a
         * barely visible cap on a dashed line: mark them with a dot too. */
        for (int k = 0; k < s->n; k++) {
            int prev = k > 0 && drawable(a, s->x[k - 1], s->y[k - 1]);
            int next = k + 1 < s->n && drawable(a, s->x[k + 1], s->y[k + 1]);
            if (!drawable(a, s->x[k], s->y[k]) || prev || next) continue;
            cpt_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"",
                           map_x(s->x[k], xlo, xhi, x0, w), map_y(a, s->y[k], y0, h));
            xml_text(b, s->color ? s->color : palette[i % 10]);
            cpt_buf_printf(b, "\"/>\n");
        }
    }
    cpt_buf_printf(b, "</g>\n");
}

int cpt_plot_svg(const char *out_path, const char *title, const cpt_plot_panel *panels,
                 int n_panels, cpt_err *err) {
    if (!out_path || !panels || n_panels < 1 || n_panels > 16)
        return cpt_err_set(err, CPT_EINVAL, "%s: cpt_plot_svg needs 1..16 panels (got %d)",
                           out_path ? out_path : "NULL", n_panels);
    double xmn = INFINITY, xmx = -INFINITY;
    for (int p = 0; p < n_panels; p++) {
        if (panels[p].n_series < 0 || (panels[p].n_series > 0 && !panels[p].series))
            return cpt_err_set(err, CPT_EINVAL, "%s: panel %d: bad series array", out_path, p);
        for (int i = 0; i < panels[p].n_series; i++) {
            const cpt_plot_series *s = &panels[p].series[i];
            if (!s->name || s->n < 0 || (s->n > 0 && (!s->x || !s->y)))
                return cpt_err_set(err, CPT_EINVAL,
                                   "%s: panel %d series %d: needs a name and n >= 0 points with x "
                                   "and y arrays",
                                   out_path, p, i);
            for (int k = 0; k < s->n; k++)
                if (isfinite(s->x[k]) && isfinite(s->y[k])) {
                    if (s->x[k] < xmn) xmn = s->x[k];
                    if (s->x[k] > xmx) xmx = s->x[k];
                }
        }
    }
    if (!isfinite(xmn)) xmn = 0, xmx = 1;
    axis xa = {0};
    linear_ticks(&xa, xmn, xmx, 8);
    double height = (title ? TITLE_H : 8) + n_panels * PANEL_H;
    cpt_buf b = {0};
    cpt_buf_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                       "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                       "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" "
                       "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                   W, height, W, height);
    if (title) {
        cpt_buf_printf(&b, "<text x=\"%.1f\" y=\"27\" text-anchor=\"middle\" font-size=\"17\" font-weight=\"bold\">", W / 2);
        xml_text(&b, title);
        cpt_buf_printf(&b, "</text>\n");
    }
    for (int p = 0; p < n_panels; p++)
        draw_panel(&b, &panels[p], p, (title ? TITLE_H : 8) + p * PANEL_H, xa.lo, xa.hi, &xa);
    cpt_buf_printf(&b, "</svg>\n");
    if (b.oom) {
        cpt_buf_free(&b);
        return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory building the SVG", out_path);
    }
    int rc = cpt_write_file_atomic(out_path, b.p, b.n, err);
    cpt_buf_free(&b);
    return rc;
}
