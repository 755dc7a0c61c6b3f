/* progress.c: terminal progress bar and plain progress lines (see cpt/progress.h).
 * Not a logger: it writes only to the FILE* it is given, and only progress. */
#include "cpt/progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cpt/common.h"

#define TTY_INTERVAL 0.2 /* seconds between redraws: about 5 a second */
#define BAR_W 24

struct cpt_progress {
    FILE *out;
    char *label, *unit;
    double total;
    int tty;
    double (*now)(void *);
    void *now_ctx;
    double t_new;                  /* creation (elapsed time) */
    double t_first, done_first;    /* first update (rate) */
    int updated;
    double done, t_last;           /* latest update */
    double t_draw, done_draw;      /* last draw */
    int drawn;
    double line_s, line_n;
    char extra[256];
};

static double default_now(void *ctx) {
    (void)ctx;
    return cpt_now();
}

cpt_progress *cpt_progress_new(FILE *out, const char *label, double total, const char *unit) {
    CPT_ASSERT(out);
    cpt_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->label = strdup(label ? label : "");
    p->unit = strdup(unit ? unit : "");
    if (!p->label || !p->unit) {
        free(p->label), free(p->unit), free(p);
        return NULL;
    }
    p->out = out;
    p->total = total;
    int fd = fileno(out);
    p->tty = fd >= 0 && isatty(fd);
    p->now = default_now;
    p->t_new = p->now(NULL);
    p->line_s = 10;
    return p;
}

void cpt_progress_set_mode(cpt_progress *p, int mode) {
    if (!p) return;
    if (mode == CPT_PROGRESS_AUTO) {
        int fd = fileno(p->out);
        p->tty = fd >= 0 && isatty(fd);
    } else {
        p->tty = mode == CPT_PROGRESS_TTY;
    }
}

void cpt_progress_set_line_every(cpt_progress *p, double seconds, double every_n) {
    if (!p) return;
    p->line_s = seconds, p->line_n = every_n;
}

void cpt_progress_set_clock(cpt_progress *p, double (*now)(void *ctx), void *ctx) {
    if (!p) return;
    p->now = now ? now : default_now;
    p->now_ctx = now ? ctx : NULL;
    p->t_new = p->now(p->now_ctx);
}

/* m:ss, h:mm:ss, or NdHHh beyond four days */
static void fmt_hms(char *out, size_t cap, double s) {
    if (!isfinite(s) || s < 0) {
        snprintf(out, cap, "--:--");
        return;
    }
    long long t = llround(s);
    if (t >= 96 * 3600)
        snprintf(out, cap, "%lldd%02lldh", t / 86400, t / 3600 % 24);
    else if (t >= 3600)
        snprintf(out, cap, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(out, cap, "%lld:%02lld", t / 60, t % 60);
}

static int is_bytes(const cpt_progress *p) { return !strcmp(p->unit, "B"); }

static void fmt_amount(char *out, size_t cap, const cpt_progress *p, double v) {
    if (is_bytes(p)) {
        if (v >= 1e9) snprintf(out, cap, "%.2f GB", v / 1e9);
        else snprintf(out, cap, "%.1f MB", v / 1e6);
    } else if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, cap, "%.0f", v);
    } else {
        snprintf(out, cap, "%.1f", v);
    }
}

static void fmt_rate(char *out, size_t cap, const cpt_progress *p, double r) {
    if (!(r > 0) || !isfinite(r)) snprintf(out, cap, "-- %s/s", is_bytes(p) ? "MB" : p->unit);
    else if (is_bytes(p)) snprintf(out, cap, "%.1f MB/s", r / 1e6);
    else if (r < 1) snprintf(out, cap, "%.2f s/%s", 1 / r, p->unit);
    else snprintf(out, cap, "%.*f %s/s", r < 10 ? 2 : r < 100 ? 1 : 0, r, p->unit);
}

/* The progress text shared by both modes; `final` shows elapsed time instead of ETA. */
static void compose(cpt_progress *p, char *buf, size_t cap, int final) {
    double dt = p->t_last - p->t_first, dd = p->done - p->done_first;
    double rate = dt > 0 && dd > 0 ? dd / dt : NAN;
    char done_s[48], total_s[48], rate_s[48], eta_s[32], pct_s[24] = "", bar[BAR_W + 3] = "";
    fmt_amount(done_s, sizeof done_s, p, p->done);
    fmt_rate(rate_s, sizeof rate_s, p, rate);
    int known = p->total > 0;
    if (known) {
        double f = p->done / p->total;
        f = f < 0 ? 0 : f > 1 ? 1 : f;
        snprintf(pct_s, sizeof pct_s, "%.1f%%", 100 * f);
        if (p->tty) {
            int fill = (int)(f * BAR_W);
            bar[0] = '[';
            for (int i = 0; i < BAR_W; i++) bar[1 + i] = i < fill ? '=' : i == fill ? '>' : ' ';
            bar[BAR_W + 1] = ']';
            bar[BAR_W + 2] = '\0';
        }
        fmt_amount(total_s, sizeof total_s, p, p->total);
    }
    if (final)
        fmt_hms(eta_s, sizeof eta_s, p->t_last - p->t_new);
    else
        fmt_hms(eta_s, sizeof eta_s, known ? (p->total - p->done) / rate : NAN);
    const char *unit = is_bytes(p) ? "" : p->unit;
    const char *usp = *unit ? " " : "";
    if (p->tty)
        snprintf(buf, cap, "%s%s%s %s%s%s%s%s  %s  %s  %s %s%s%s", p->label, *p->label ? " " : "",
                 bar, done_s, known ? "/" : "", known ? total_s : "", usp, unit, pct_s, rate_s,
                 final ? "took" : "ETA", eta_s, *p->extra ? "  " : "", p->extra);
    else
        snprintf(buf, cap, "%s%s%s%s%s%s%s%s%s%s, %s, %s %s%s%s", p->label, *p->label ? ": " : "",
                 done_s, known ? "/" : "", known ? total_s : "", usp, unit, known ? " (" : "",
                 pct_s, known ? ")" : "", rate_s, final ? "took" : "ETA", eta_s,
                 *p->extra ? ", " : "", p->extra);
}

static int term_width(const cpt_progress *p) {
    struct winsize ws;
    int fd = fileno(p->out);
    if (fd >= 0 && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10) return ws.ws_col;
    return 0;
}

static void draw(cpt_progress *p, int final) {
    char line[1024];
    compose(p, line, sizeof line, final);
    if (p->tty) {
        int w = term_width(p);
        size_t n = strlen(line);
        if (w > 0 && n > (size_t)w - 1) { /* never wrap: a wrapped line defeats \r */
            n = (size_t)w - 1;
            while (n > 0 && ((unsigned char)line[n] & 0xC0) == 0x80) n--; /* whole UTF-8 chars */
            line[n] = '\0';
        }
        fprintf(p->out, "\r%s\033[K%s", line, final ? "\n" : "");
    } else {
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
    p->drawn = 1;
    p->t_draw = p->t_last;
    p->done_draw = p->done;
}

void cpt_progress_update(cpt_progress *p, double done, const char *extra_fmt, ...) {
    if (!p) return;
    double t = p->now(p->now_ctx);
    if (!p->updated) p->updated = 1, p->t_first = t, p->done_first = done;
    p->done = done, p->t_last = t;
    if (extra_fmt) {
        va_list ap;
        va_start(ap, extra_fmt);
        vsnprintf(p->extra, sizeof p->extra, extra_fmt, ap);
        va_end(ap);
    } else {
        p->extra[0] = '\0';
    }
    int due;
    if (!p->drawn) due = 1;
    else if (p->tty) due = t - p->t_draw >= TTY_INTERVAL;
    else due = (p->line_s > 0 && t - p->t_draw >= p->line_s) ||
               (p->line_n > 0 && done - p->done_draw >= p->line_n);
    if (due) draw(p, 0);
}

void cpt_progress_done(cpt_progress *p) {
    if (!p) return;
    if (!p->updated) p->t_first = p->t_last = p->now(p->now_ctx);
    else p->t_last = p->now(p->now_ctx);
    draw(p, 1);
    free(p->label);
    free(p->unit);
    free(p);
}
