/* opts.c: parser and --help printer for the declarative option tables in opts.h. */
#include "cli/opts.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++) d[i][0] = i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

static int choice_ok(const char *choices, const char *v) {
    size_t n = strlen(v);
    const char *p = choices;
    while (*p) {
        const char *e = strchr(p, '|');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, v, n)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static int set_value(const cpt_cmd_spec *spec, cpt_opt *o, const char *v) {
    switch (o->kind) {
    case CPT_OPT_FLAG: *(int *)o->dst = 1; return 0;
    case CPT_OPT_STR:
        if (!*v) {
            fprintf(stderr, "cpt %s: %s needs a non-empty %s\n", spec->name, o->name, o->metavar);
            return 2;
        }
        *(const char **)o->dst = v;
        return 0;
    case CPT_OPT_CHOICE:
        if (!choice_ok(o->choices, v)) {
            fprintf(stderr, "cpt %s: %s: '%s' is not one of %s\n", spec->name, o->name, v, o->choices);
            return 2;
        }
        *(const char **)o->dst = v;
        return 0;
    case CPT_OPT_INT: {
        errno = 0;
        char *end = NULL;
        long long x = strtoll(v, &end, 10);
        if (errno || !*v || *end) {
            fprintf(stderr, "cpt %s: %s: '%s' is not an integer\n", spec->name, o->name, v);
            return 2;
        }
        if (o->min < o->max && ((double)x < o->min || (double)x > o->max)) {
            fprintf(stderr, "cpt %s: %s: %lld is out of range [%.0f, %.0f]\n", spec->name, o->name, x,
                    o->min, o->max);
            return 2;
        }
        *(long long *)o->dst = x;
        return 0;
    }
    case CPT_OPT_FLOAT: {
        errno = 0;
        char *end = NULL;
        double x = strtod(v, &end);
        if (errno || !*v || *end || !isfinite(x)) {
            fprintf(stderr, "cpt %s: %s: '%s' is not a finite number\n", spec->name, o->name, v);
            return 2;
        }
        if (o->min < o->max && (x < o->min || x > o->max)) {
            fprintf(stderr, "cpt %s: %s: %g is out of range [%g, %g]\n", spec->name, o->name, x, o->min,
                    o->max);
            return 2;
        }
        *(double *)o->dst = x;
        return 0;
    }
    }
    return 2;
}

int cpt_opts_parse(cpt_cmd_spec *spec, int argc, char **argv) {
    for (size_t i = 0; i < spec->nopts; i++) spec->opts[i].seen = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cpt_opts_help(spec, stdout);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0 && spec->positional && spec->positional_dst && !*spec->positional_dst) {
            *spec->positional_dst = a;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "cpt %s: unexpected argument '%s'\nHINT: run 'cpt %s --help'\n", spec->name, a,
                    spec->name);
            return 2;
        }
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        cpt_opt *o = NULL;
        for (size_t k = 0; k < spec->nopts; k++)
            if (strlen(spec->opts[k].name) == nlen && !strncmp(spec->opts[k].name, a, nlen)) o = &spec->opts[k];
        if (!o) {
            const char *best = NULL;
            size_t bd = 99;
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)(nlen < 100 ? nlen : 100), a);
            for (size_t k = 0; k < spec->nopts; k++) {
                size_t d = edit_distance(name, spec->opts[k].name);
                if (d < bd) bd = d, best = spec->opts[k].name;
            }
            fprintf(stderr, "cpt %s: unknown option '%s'", spec->name, name);
            if (best && bd <= 3) fprintf(stderr, "; did you mean '%s'?", best);
            fprintf(stderr, "\nHINT: run 'cpt %s --help'\n", spec->name);
            return 2;
        }
        const char *v = NULL;
        if (o->kind == CPT_OPT_FLAG) {
            if (eq) {
                fprintf(stderr, "cpt %s: %s takes no value\n", spec->name, o->name);
                return 2;
            }
        } else if (eq) {
            v = eq + 1;
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "cpt %s: %s needs a value (%s)\n", spec->name, o->name, o->metavar);
                return 2;
            }
            v = argv[++i];
        }
        int rc = set_value(spec, o, v);
        if (rc) return rc;
        o->seen = 1;
    }
    for (size_t k = 0; k < spec->nopts; k++)
        if (spec->opts[k].required && !spec->opts[k].seen) {
            fprintf(stderr, "cpt %s: missing required option %s %s\nHINT: run 'cpt %s --help'\n", spec->name,
                    spec->opts[k].name, spec->opts[k].metavar ? spec->opts[k].metavar : "", spec->name);
            return 2;
        }
    return 0;
}

void cpt_opts_help(const cpt_cmd_spec *spec, FILE *out) {
    fprintf(out, "usage: cpt %s [options]%s%s\n\n%s\n", spec->name, spec->positional ? " " : "",
            spec->positional ? spec->positional : "", spec->summary);
    if (spec->details) fprintf(out, "\n%s\n", spec->details);
    fprintf(out, "\noptions:\n");
    for (size_t k = 0; k < spec->nopts; k++) {
        const cpt_opt *o = &spec->opts[k];
        char lhs[96];
        if (o->kind == CPT_OPT_FLAG)
            snprintf(lhs, sizeof lhs, "%s", o->name);
        else if (o->kind == CPT_OPT_CHOICE)
            snprintf(lhs, sizeof lhs, "%s {%s}", o->name, o->choices);
        else
            snprintf(lhs, sizeof lhs, "%s %s", o->name, o->metavar ? o->metavar : "VALUE");
        fprintf(out, "  %-28s %s", lhs, o->help);
        if (o->required) fprintf(out, " (required)");
        else if (o->kind == CPT_OPT_INT) fprintf(out, " (default %lld)", *(long long *)o->dst);
        else if (o->kind == CPT_OPT_FLOAT) fprintf(out, " (default %g)", *(double *)o->dst);
        else if ((o->kind == CPT_OPT_STR || o->kind == CPT_OPT_CHOICE) && *(const char **)o->dst)
            fprintf(out, " (default %s)", *(const char **)o->dst);
        if ((o->kind == CPT_OPT_INT || o->kind == CPT_OPT_FLOAT) && o->min < o->max)
            fprintf(out, " [%g..%g]", o->min, o->max);
        fputc('\n', out);
    }
    fprintf(out, "  %-28s %s\n", "--help", "show this help");
}
