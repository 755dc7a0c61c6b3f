/* curves.c: turns a run's metrics.jsonl into curves.svg (train loss + LR; eval
 * perplexity per set against its base value). Not the chart drawing (plot_svg.c). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "cpt/metrics.h"
#include "report/report-impl.h"

typedef struct xy {
    double *x, *y;
    int n, cap;
} xy;

static int xy_push(xy *s, double x, double y) {
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 64;
        double *nx = realloc(s->x, (size_t)cap * sizeof *nx);
        if (!nx) return CPT_ENOMEM;
        s->x = nx;
        double *ny = realloc(s->y, (size_t)cap * sizeof *ny);
        if (!ny) return CPT_ENOMEM;
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x, s->y[s->n] = y, s->n++;
    return CPT_OK;
}

typedef struct evalset {
    char *name;
    xy ppl;
    double base, base_x[2], base_y[2];
    int has_base;
} evalset;

typedef struct curves {
    xy loss, lr;
    evalset *sets;
    int nsets, capsets;
    double xmin, xmax;
} curves;

static evalset *find_set(curves *c, const char *name, size_t len) {
    for (int i = 0; i < c->nsets; i++)
        if (strlen(c->sets[i].name) == len && !memcmp(c->sets[i].name, name, len)) return &c->sets[i];
    if (c->nsets == c->capsets) {
        int cap = c->capsets ? c->capsets * 2 : 8;
        evalset *ns = realloc(c->sets, (size_t)cap * sizeof *ns);
        if (!ns) return NULL;
        c->sets = ns, c->capsets = cap;
    }
    evalset *s = &c->sets[c->nsets];
    memset(s, 0, sizeof *s);
    s->name = strndup(name, len);
    if (!s->name) return NULL;
    c->nsets++;
    return s;
}

static double num_or_nan(json_t *v) { return json_is_number(v) ? json_number_value(v) : NAN; }

/* One eval line: every set named by a "ppl/<set>" or "loss/<set>" key gets one point. */
static int add_eval(curves *c, json_t *o, double step) {
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val) {
        const char *set = !strncmp(key, "ppl/", 4) ? key + 4 : !strncmp(key, "loss/", 5) ? key + 5 : NULL;
        if (!set || !*set) continue;
        size_t len = strlen(set);
        char pk[128];
        snprintf(pk, sizeof pk, "ppl/%s", set);
        json_t *ppl = json_object_get(o, pk);
        if (ppl && set == key + 5) continue; /* the ppl/ key of this set provides the point */
        double y = ppl ? num_or_nan(ppl) : exp(num_or_nan(val));
        evalset *s = find_set(c, set, len);
        if (!s || xy_push(&s->ppl, step, y) != CPT_OK) return CPT_ENOMEM;
        if (step == 0 && isfinite(y)) s->base = y, s->has_base = 1;
    }
    return CPT_OK;
}

static int parse(curves *c, const char *path, const char *text, size_t size, cpt_err *err) {
    size_t pos = 0;
    long line_no = 0;
    c->xmin = INFINITY, c->xmax = -INFINITY;
    while (pos < size) {
        line_no++;
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - line) : size - pos;
        pos += len + (nl ? 1 : 0);
        if (len == 0) continue;
        json_error_t je;
        json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
        json_t *st = json_object_get(o, "step"), *kind = json_object_get(o, "kind");
        if (!json_is_object(o) || !json_is_integer(st) || !json_is_string(kind)) {
            json_decref(o);
            if (!nl) break; /* torn last line of a run that is still writing or crashed */
            return cpt_err_set(err, CPT_EFORMAT,
                               "%s line %ld: not a metrics record (needs an object with integer "
                               "\"step\" and string \"kind\"). HINT: fix or delete that line",
                               path, line_no);
        }
        double step = (double)json_integer_value(st);
        const char *k = json_string_value(kind);
        int rc = CPT_OK;
        if (!strcmp(k, "train")) {
            rc = xy_push(&c->loss, step, num_or_nan(json_object_get(o, "loss")));
            if (rc == CPT_OK) rc = xy_push(&c->lr, step, num_or_nan(json_object_get(o, "lr")));
        } else if (!strcmp(k, "eval")) {
            rc = add_eval(c, o, step);
        }
        if (!strcmp(k, "train") || !strcmp(k, "eval")) {
            if (step < c->xmin) c->xmin = step;
            if (step > c->xmax) c->xmax = step;
        }
        json_decref(o);
        if (rc != CPT_OK) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", path);
    }
    return CPT_OK;
}

static void curves_free(curves *c) {
    free(c->loss.x), free(c->loss.y), free(c->lr.x), free(c->lr.y);
    for (int i = 0; i < c->nsets; i++) {
        free(c->sets[i].name);
        free(c->sets[i].ppl.x), free(c->sets[i].ppl.y);
    }
    free(c->sets);
}

static const char *const set_colors[] = {"#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
                                         "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#d62728"};

int cpt_plot_run_curves(const char *run_dir, cpt_err *err) {
    char *in = cpt_path_join(run_dir, "metrics.jsonl"), *out = cpt_path_join(run_dir, "curves.svg");
    char *text = NULL;
    size_t size = 0;
    curves c = {0};
    cpt_plot_series *ser = NULL;
    char **names = NULL;
    int rc;
    if (!in || !out) {
        rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
        goto done;
    }
    rc = cpt_read_file(in, &text, &size, err);
    if (rc == CPT_ENOTFOUND) cpt_err_wrap(err, "HINT: curves are drawn from a run's metrics.jsonl; is %s a run directory?", run_dir);
    if (rc != CPT_OK) goto done;
    rc = parse(&c, in, text, size, err);
    if (rc != CPT_OK) goto done;

    int nser = 2 + 2 * c.nsets;
    ser = calloc((size_t)nser, sizeof *ser);
    names = calloc((size_t)c.nsets + 1, sizeof *names);
    if (!ser || !names) {
        rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
        goto done;
    }
    ser[0] = (cpt_plot_series){.name = "train loss", .x = c.loss.x, .y = c.loss.y, .n = c.loss.n,
                               .color = "#1f77b4"};
    ser[1] = (cpt_plot_series){.name = "learning rate", .x = c.lr.x, .y = c.lr.y, .n = c.lr.n,
                               .axis = 1, .color = "#ff7f0e"};
    int k = 2;
    for (int i = 0; i < c.nsets; i++) {
        evalset *s = &c.sets[i];
        const char *col = set_colors[i % 10];
        ser[k++] = (cpt_plot_series){.name = s->name, .x = s->ppl.x, .y = s->ppl.y, .n = s->ppl.n,
                                     .color = col};
        if (!s->has_base) continue;
        size_t nl = strlen(s->name) + 8;
        names[i] = malloc(nl);
        if (!names[i]) {
            rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
            goto done;
        }
        snprintf(names[i], nl, "%s base", s->name);
        s->base_x[0] = c.xmin, s->base_x[1] = c.xmax;
        s->base_y[0] = s->base_y[1] = s->base;
        ser[k++] = (cpt_plot_series){.name = names[i], .x = s->base_x, .y = s->base_y, .n = 2,
                                     .dashed = 1, .color = col};
    }
    /* Perplexities of different sets (and before/after CPT) often differ by orders of
     * magnitude: use a log axis when the panel spans more than a factor of 20. */
    double pmin = INFINITY, pmax = 0;
    for (int j = 2; j < k; j++)
        for (int t = 0; t < ser[j].n; t++)
            if (ser[j].y[t] > 0 && isfinite(ser[j].y[t])) {
                if (ser[j].y[t] < pmin) pmin = ser[j].y[t];
                if (ser[j].y[t] > pmax) pmax = ser[j].y[t];
            }
    int ppl_log = pmax > 20.0 * pmin;
    cpt_plot_panel panels[2] = {
        {.title = "Training", .xlabel = "step", .ylabel = "train loss (nats/token)",
         .y2label = "learning rate", .series = ser, .n_series = 2},
        {.title = "Validation perplexity (dashed: base model, step 0)", .xlabel = "step",
         .ylabel = "perplexity", .log_y = ppl_log, .series = ser + 2, .n_series = k - 2},
    };
    const char *slash = strrchr(run_dir, '/');
    const char *rname = slash && slash[1] ? slash + 1 : run_dir;
    char title[300];
    snprintf(title, sizeof title, "cpt run %s", rname);
    rc = cpt_plot_svg(out, title, panels, c.nsets ? 2 : 1, err);
done:
    if (names)
        for (int i = 0; i < c.nsets; i++) free(names[i]);
    free(names);
    free(ser);
    curves_free(&c);
    free(text);
    free(in);
    free(out);
    return rc;
}
