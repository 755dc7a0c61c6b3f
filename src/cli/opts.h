/* opts.h: the one declarative option table that drives CLI parsing, --help and
 * validation (docs/style.md practice 9). Out-of-range values are rejected, never clamped. */
#ifndef CPT_CLI_OPTS_H
#define CPT_CLI_OPTS_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    CPT_OPT_FLAG,   /* int*: set to 1 when present */
    CPT_OPT_STR,    /* const char**: any string */
    CPT_OPT_INT,    /* long long*: integer within [min, max] */
    CPT_OPT_FLOAT,  /* double*: finite number within [min, max] */
    CPT_OPT_CHOICE, /* const char**: one of "a|b|c" */
} cpt_opt_kind;

typedef struct cpt_opt {
    const char *name;    /* "--model" */
    cpt_opt_kind kind;
    void *dst;           /* see kinds; holds the default on entry */
    const char *metavar; /* "DIR" (ignored for flags) */
    const char *help;
    int required;
    double min, max;     /* bounds for INT/FLOAT (inclusive) */
    const char *choices; /* for CHOICE: "f32|bf16" */
    int seen;            /* set by the parser */
} cpt_opt;

typedef struct cpt_cmd_spec {
    const char *name;    /* "score" */
    const char *summary; /* one line */
    const char *details; /* extra paragraph for --help (may be NULL) */
    cpt_opt *opts;
    size_t nopts;
    const char *positional;     /* metavar of one optional positional argument, or NULL */
    const char **positional_dst;
} cpt_cmd_spec;

/* Parse argv (argv[0] is the command name). Returns 0 to proceed, 1 if --help was
 * printed (exit 0), 2 on a usage error (message already on stderr, exit 2). */
int cpt_opts_parse(cpt_cmd_spec *spec, int argc, char **argv);
void cpt_opts_help(const cpt_cmd_spec *spec, FILE *out);

#define CPT_NOPTS(a) (sizeof(a) / sizeof((a)[0]))

#endif
