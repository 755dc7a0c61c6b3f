/* test_schedule.c: LR schedules against the [CMP] vectors of methods.md §4.1 and §4.3,
 * hand-computed WSD / linear / re-warm values, shape properties and validation errors.
 * With arguments it is the dumper used by test_schedule_hf.py:
 *   test_schedule type=cosine lr=1e-3 warmup=10 total=100 min=0.1 rewarm=0 decay_frac=0.2
 *                 decay_shape=1-sqrt cooldown_end=.. anneal_start=.. const=.. cooldown_shape=..
 *                 timescale=.. range=A:B
 * prints lr(step) for A <= step < B, one "%.17g" per line (exit 2 on a bad argument or an
 * invalid schedule, with the message on stderr). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/schedule.h"
#include "testutil.h"

static int parse_ll(const char *v, long long *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end) return 0;
    *out = x;
    return 1;
}

static int parse_d(const char *v, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end) return 0;
    *out = x;
    return 1;
}

static int dump(int argc, char **argv) {
    cpt_schedule s;
    cpt_schedule_init(&s);
    long long a = 0, b = 0;
    for (int i = 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) return fprintf(stderr, "argument '%s' is not key=value\n", argv[i]), 2;
        *eq = 0;
        const char *k = argv[i], *v = eq + 1;
        int ok = 1;
        if (!strcmp(k, "type")) ok = (s.type = cpt_schedule_type_from_name(v)) >= 0;
        else if (!strcmp(k, "decay_shape")) ok = (s.decay_shape = cpt_decay_shape_from_name(v)) >= 0;
        else if (!strcmp(k, "cooldown_shape")) ok = (s.cooldown_shape = cpt_cooldown_shape_from_name(v)) >= 0;
        else if (!strcmp(k, "lr")) ok = parse_d(v, &s.lr);
        else if (!strcmp(k, "min")) ok = parse_d(v, &s.min_lr_ratio);
        else if (!strcmp(k, "rewarm")) ok = parse_d(v, &s.rewarm_from);
        else if (!strcmp(k, "decay_frac")) ok = parse_d(v, &s.decay_frac);
        else if (!strcmp(k, "const")) ok = parse_d(v, &s.const_ratio);
        else if (!strcmp(k, "timescale")) ok = parse_d(v, &s.timescale);
        else if (!strcmp(k, "warmup")) ok = parse_ll(v, &s.warmup_steps);
        else if (!strcmp(k, "total")) ok = parse_ll(v, &s.total_steps);
        else if (!strcmp(k, "cooldown_end")) ok = parse_ll(v, &s.cooldown_end);
        else if (!strcmp(k, "anneal_start")) ok = parse_ll(v, &s.anneal_start);
        else if (!strcmp(k, "range")) {
            char *colon = strchr(v, ':');
            if (!colon) ok = 0;
            else {
                *colon = 0;
                ok = parse_ll(v, &a) && parse_ll(colon + 1, &b) && a >= 0 && b >= a;
            }
        } else ok = 0;
        if (!ok) return fprintf(stderr, "bad argument %s=%s\n", k, v), 2;
    }
    cpt_err err = {0};
    if (cpt_schedule_validate(&s, &err)) return fprintf(stderr, "%s\n", err.msg), 2;
    for (long long t = a; t < b; t++) printf("%.17g\n", cpt_schedule_lr(&s, t));
    return 0;
}

/* Compare lambda or lr at given steps with values written to `digits` significant
 * places; the tolerance is half a unit of the last written digit. */
static void expect(const cpt_schedule *s, const char *what, int n, const long long *t, const double *want, double tol) {
    for (int i = 0; i < n; i++) {
        double got = cpt_schedule_lr(s, t[i]);
        CHECKF(fabs(got - want[i]) <= tol, "%s at t=%lld: %.9g, expected %.9g (tol %g)", what, t[i], got, want[i], tol);
    }
}

static void reject(const cpt_schedule *s, const char *field) {
    cpt_err e = {0};
    int rc = cpt_schedule_validate(s, &e);
    CHECKF(rc == CPT_EINVAL, "expected CPT_EINVAL for %s, got %d", field, rc);
    CHECKF(strstr(e.msg, field) != NULL && strstr(e.msg, "HINT") != NULL, "message for %s: %s", field, e.msg);
}

static cpt_schedule base(int type) {
    cpt_schedule s;
    cpt_schedule_init(&s);
    s.type = type, s.lr = 1.0, s.warmup_steps = 10, s.total_steps = 100, s.min_lr_ratio = 0.1;
    if (type == CPT_SCHED_INFINITE) s.cooldown_end = 50, s.anneal_start = 80, s.const_ratio = 0.5;
    return s;
}

int main(int argc, char **argv) {
    if (argc > 1) return dump(argc, argv);
    cpt_err err = {0};

    /* methods.md §4.1 [CMP]: W=10, T=100, m=0.1 (lambda, so lr = 1). */
    cpt_schedule s = base(CPT_SCHED_COSINE);
    CHECK_OK(cpt_schedule_validate(&s, &err), &err);
    {
        long long t[] = {0, 1, 5, 10, 11, 55, 99, 100};
        double w[] = {0, 0.1, 0.5, 1.0, 0.999726, 0.55, 0.100274, 0.1};
        expect(&s, "cosine [CMP]", 8, t, w, 5e-7);
        /* Past T the LR holds the minimum (HF's cosine would rise again). */
        long long t2[] = {101, 150, 1000000};
        double w2[] = {0.1, 0.1, 0.1};
        expect(&s, "cosine past T", 3, t2, w2, 0);
    }
    /* Plain cosine (m = 0) reaches exactly 0 at T; re-warm starts at r. */
    s.min_lr_ratio = 0, s.rewarm_from = 0.2;
    {
        long long t[] = {0, 5, 9, 10, 55, 100};
        double w[] = {0.2, 0.6, 0.92, 1.0, 0.5, 0.0};
        expect(&s, "cosine m=0 rewarm 0.2", 6, t, w, 1e-15);
    }

    /* methods.md §4.3 [CMP] infinite schedule: T_w=10, T_cd=50, T_ann=80, T_end=100,
     * eta_max=3e-4, eta_const=1.5e-4, eta_min=3e-5. */
    s = base(CPT_SCHED_INFINITE);
    s.lr = 3e-4, s.const_ratio = 0.5, s.min_lr_ratio = 0.1;
    CHECK_OK(cpt_schedule_validate(&s, &err), &err);
    {
        long long t[] = {0, 5, 10, 30, 50, 60, 80, 90, 100};
        double w[] = {0, 1.5e-4, 3e-4, 2.25e-4, 1.5e-4, 1.5e-4, 1.5e-4, 6.708e-5, 3e-5};
        expect(&s, "infinite cosine [CMP]", 9, t, w, 5e-9);
        long long t2[] = {101, 5000};
        double w2[] = {3e-5, 3e-5};
        expect(&s, "infinite past T_end", 2, t2, w2, 1e-20);
    }
    s.cooldown_shape = CPT_COOLDOWN_INVSQRT, s.timescale = 10;
    CHECK_OK(cpt_schedule_validate(&s, &err), &err);
    {
        long long t[] = {10, 20, 30, 50};
        double w[] = {3e-4, 2.0e-4, 1.729e-4, 1.5e-4};
        double tol[] = {5e-8, 5e-6, 5e-8, 5e-8}; /* half a unit of each printed digit */
        for (int i = 0; i < 4; i++) expect(&s, "infinite inv-sqrt [CMP]", 1, &t[i], &w[i], tol[i]);
        /* Hand value at t=20: 3e-4 - 1.5e-4 * (1/sqrt(3.5) - 1) / (1/sqrt(11) - 1). */
        double h = (1 / sqrt(3.5) - 1) / (1 / sqrt(11.0) - 1), w20 = 3e-4 - 1.5e-4 * h;
        expect(&s, "infinite inv-sqrt t=20", 1, &t[1], &w20, 1e-18);
    }
    /* Later phases: no warmup, no cooldown; start at eta_const. */
    s.warmup_steps = 0, s.cooldown_end = 0, s.anneal_start = 40, s.total_steps = 60;
    CHECK_OK(cpt_schedule_validate(&s, &err), &err);
    {
        long long t[] = {0, 40, 50, 60};
        double w[] = {1.5e-4, 1.5e-4, 1.5e-4 * sqrt(0.2), 3e-5};
        expect(&s, "infinite later phase", 4, t, w, 1e-18);
    }

    /* WSD: T=100, W=10, decay_frac 0.2 -> 20 decay steps from t=80; m=0.1.
     * At t=90 (p=0.5): cosine, linear 0.1+0.9*0.5; 1-sqrt 0.1+0.9*(1-sqrt(0.5)); exp 0.1^0.5. */
    s = base(CPT_SCHED_WSD);
    s.decay_frac = 0.2;
    CHECK(cpt_schedule_decay_steps(&s) == 20);
    const double at90[CPT_DECAY_COUNT] = {0.55, 0.55, 0.1 + 0.9 * (1 - sqrt(0.5)), sqrt(0.1)};
    for (int k = 0; k < CPT_DECAY_COUNT; k++) {
        s.decay_shape = k;
        CHECK_OK(cpt_schedule_validate(&s, &err), &err);
        long long t[] = {0, 5, 10, 79, 80, 90, 100, 200};
        double w[] = {0, 0.5, 1, 1, 1, at90[k], 0.1, 0.1};
        expect(&s, cpt_decay_shape_name(k), 8, t, w, 1e-15);
    }
    /* Linear: W=10, T=110. */
    s = base(CPT_SCHED_LINEAR);
    s.total_steps = 110, s.min_lr_ratio = 0;
    {
        long long t[] = {0, 10, 60, 109, 110, 111};
        double w[] = {0, 1, 0.5, 0.01, 0, 0};
        expect(&s, "linear m=0", 6, t, w, 1e-15);
    }
    s.min_lr_ratio = 0.2;
    {
        long long t[] = {60, 110, 500};
        double w[] = {0.6, 0.2, 0.2};
        expect(&s, "linear m=0.2", 3, t, w, 1e-15);
    }
    /* Constant with no end; lr scales lambda. */
    s = base(CPT_SCHED_CONSTANT);
    s.total_steps = 0, s.warmup_steps = 4, s.lr = 2e-4;
    CHECK_OK(cpt_schedule_validate(&s, &err), &err);
    {
        long long t[] = {0, 2, 4, 1000000000LL};
        double w[] = {0, 1e-4, 2e-4, 2e-4};
        expect(&s, "constant", 4, t, w, 1e-20);
    }

    /* Shape properties over every type: warmup non-decreasing, after it non-increasing
     * and within [m, 1], continuous at the end of warmup. */
    for (int type = 0; type < CPT_SCHED_COUNT; type++) {
        for (int k = 0; k < 4; k++) {
            cpt_schedule p = base(type);
            p.total_steps = 997, p.warmup_steps = 31, p.rewarm_from = 0.05 * k;
            p.decay_shape = k, p.cooldown_shape = k & 1, p.cooldown_end = 301, p.anneal_start = 700;
            CHECK_OK(cpt_schedule_validate(&p, &err), &err);
            double prev = -1;
            int bad = 0;
            for (long long t = 0; t <= 1100; t++) {
                double l = cpt_schedule_lambda(&p, t);
                if (t <= p.warmup_steps) bad += !(l >= prev && l <= 1.0);
                else bad += !(l <= prev + 1e-15 && l >= (type == CPT_SCHED_CONSTANT ? 1.0 : 0.1) - 1e-15);
                if (t == p.warmup_steps) bad += l != 1.0;
                prev = l;
            }
            CHECKF(bad == 0, "%s (shape %d): %d steps break the shape", cpt_schedule_type_name(type), k, bad);
        }
    }

    /* Validation: each bad field is named. */
    cpt_schedule v = base(CPT_SCHED_COSINE);
    v.type = 99, reject(&v, "type");
    v = base(CPT_SCHED_COSINE), v.lr = 0, reject(&v, "lr");
    v = base(CPT_SCHED_COSINE), v.lr = -1e-4, reject(&v, "lr");
    v = base(CPT_SCHED_COSINE), v.lr = NAN, reject(&v, "lr");
    v = base(CPT_SCHED_COSINE), v.warmup_steps = 101, reject(&v, "warmup_steps");
    v = base(CPT_SCHED_COSINE), v.warmup_steps = -1, reject(&v, "warmup_steps");
    v = base(CPT_SCHED_LINEAR), v.total_steps = 0, reject(&v, "total_steps");
    v = base(CPT_SCHED_COSINE), v.min_lr_ratio = 1.5, reject(&v, "min_lr_ratio");
    v = base(CPT_SCHED_COSINE), v.min_lr_ratio = -0.1, reject(&v, "min_lr_ratio");
    v = base(CPT_SCHED_COSINE), v.rewarm_from = 2, reject(&v, "rewarm_from");
    v = base(CPT_SCHED_WSD), v.decay_frac = 0, reject(&v, "decay_frac");
    v = base(CPT_SCHED_WSD), v.decay_frac = 1.01, reject(&v, "decay_frac");
    v = base(CPT_SCHED_WSD), v.decay_frac = 0.004, reject(&v, "decay_frac"); /* 0 steps */
    v = base(CPT_SCHED_WSD), v.decay_frac = 0.95, reject(&v, "decay_frac");  /* overlaps warmup */
    v = base(CPT_SCHED_WSD), v.decay_shape = 7, reject(&v, "decay_shape");
    v = base(CPT_SCHED_WSD), v.decay_shape = CPT_DECAY_EXP, v.min_lr_ratio = 0, reject(&v, "min_lr_ratio");
    v = base(CPT_SCHED_INFINITE), v.cooldown_end = 5, reject(&v, "cooldown_end");
    v = base(CPT_SCHED_INFINITE), v.anneal_start = 101, reject(&v, "anneal_start");
    v = base(CPT_SCHED_INFINITE), v.const_ratio = 0, reject(&v, "const_ratio");
    v = base(CPT_SCHED_INFINITE), v.const_ratio = 0.05, reject(&v, "const_ratio");
    v = base(CPT_SCHED_INFINITE), v.min_lr_ratio = 0, reject(&v, "min_lr_ratio");
    v = base(CPT_SCHED_INFINITE), v.cooldown_shape = CPT_COOLDOWN_INVSQRT, v.timescale = 0, reject(&v, "timescale");
    v = base(CPT_SCHED_INFINITE), v.cooldown_shape = 3, reject(&v, "cooldown_shape");
    /* Accepted edge cases: decay over the whole run without warmup, min 1 (constant). */
    v = base(CPT_SCHED_WSD), v.warmup_steps = 0, v.decay_frac = 1;
    CHECK_OK(cpt_schedule_validate(&v, &err), &err);
    v = base(CPT_SCHED_COSINE), v.min_lr_ratio = 1;
    CHECK_OK(cpt_schedule_validate(&v, &err), &err);

    /* Names round-trip; unknown names are -1. */
    for (int t = 0; t < CPT_SCHED_COUNT; t++) CHECK(cpt_schedule_type_from_name(cpt_schedule_type_name(t)) == t);
    for (int t = 0; t < CPT_DECAY_COUNT; t++) CHECK(cpt_decay_shape_from_name(cpt_decay_shape_name(t)) == t);
    for (int t = 0; t < CPT_COOLDOWN_COUNT; t++) CHECK(cpt_cooldown_shape_from_name(cpt_cooldown_shape_name(t)) == t);
    CHECK(cpt_schedule_type_from_name("Cosine") == -1 && cpt_schedule_type_from_name(NULL) == -1);
    CHECK(cpt_schedule_type_name(CPT_SCHED_COUNT) == NULL && cpt_decay_shape_name(-1) == NULL);
    CHECK(!strcmp(cpt_schedule_type_name(CPT_SCHED_WSD), "wsd") && !strcmp(cpt_decay_shape_name(CPT_DECAY_1SQRT), "1-sqrt"));
    TEST_END();
}
