/* schedule.c: LR schedules as pure functions of the step (formulas in cpt/schedule.h);
 * not the optimizer (src/optim) nor the trainer loop that calls them. */
#include "cpt/schedule.h"

#include <math.h>
#include <string.h>

static const char *const TYPE_NAMES[CPT_SCHED_COUNT] = {"constant", "linear", "cosine", "wsd", "infinite"};
static const char *const DECAY_NAMES[CPT_DECAY_COUNT] = {"cosine", "linear", "1-sqrt", "exp"};
static const char *const COOLDOWN_NAMES[CPT_COOLDOWN_COUNT] = {"cosine", "inv-sqrt"};

static int name_find(const char *const *names, int n, const char *name) {
    if (!name) return -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return i;
    return -1;
}

const char *cpt_schedule_type_name(int t) { return t >= 0 && t < CPT_SCHED_COUNT ? TYPE_NAMES[t] : NULL; }
int cpt_schedule_type_from_name(const char *n) { return name_find(TYPE_NAMES, CPT_SCHED_COUNT, n); }
const char *cpt_decay_shape_name(int s) { return s >= 0 && s < CPT_DECAY_COUNT ? DECAY_NAMES[s] : NULL; }
int cpt_decay_shape_from_name(const char *n) { return name_find(DECAY_NAMES, CPT_DECAY_COUNT, n); }
const char *cpt_cooldown_shape_name(int s) { return s >= 0 && s < CPT_COOLDOWN_COUNT ? COOLDOWN_NAMES[s] : NULL; }
int cpt_cooldown_shape_from_name(const char *n) { return name_find(COOLDOWN_NAMES, CPT_COOLDOWN_COUNT, n); }

void cpt_schedule_init(cpt_schedule *s) {
    memset(s, 0, sizeof *s);
    s->type = CPT_SCHED_COSINE;
    s->min_lr_ratio = 0.1;
    s->decay_frac = 0.2;
    s->decay_shape = CPT_DECAY_1SQRT;
    s->const_ratio = 0.5;
    s->cooldown_shape = CPT_COOLDOWN_COSINE;
    s->timescale = 10.0;
}

long long cpt_schedule_decay_steps(const cpt_schedule *s) {
    return llround(s->decay_frac * (double)s->total_steps);
}

#define BAD(...) cpt_err_set(err, CPT_EINVAL, "schedule: " __VA_ARGS__)

static int in01(double x) { return x >= 0.0 && x <= 1.0; } /* false for NaN */

int cpt_schedule_validate(const cpt_schedule *s, cpt_err *err) {
    const char *tn = cpt_schedule_type_name(s->type);
    if (!tn)
        return BAD("type %d is unknown. HINT: use one of constant, linear, cosine, wsd, infinite", s->type);
    if (!(s->lr > 0.0) || !isfinite(s->lr))
        return BAD("lr = %g must be a finite number > 0. HINT: set the peak learning rate, e.g. 3e-4", s->lr);
    if (s->warmup_steps < 0)
        return BAD("warmup_steps = %lld is negative. HINT: use 0 for no warmup", s->warmup_steps);
    if (s->total_steps < 0 || (s->total_steps == 0 && s->type != CPT_SCHED_CONSTANT))
        return BAD("total_steps = %lld for a %s schedule must be >= 1. HINT: set the number of optimizer steps of the run",
                   s->total_steps, tn);
    if (s->total_steps > 0 && s->warmup_steps > s->total_steps)
        return BAD("warmup_steps = %lld exceeds total_steps = %lld. HINT: warm up over a small fraction (about 1%%) of the run",
                   s->warmup_steps, s->total_steps);
    if (!in01(s->rewarm_from))
        return BAD("rewarm_from = %g is outside [0, 1]. HINT: 0 warms up from LR 0; e.g. 0.1 starts at 10%% of lr", s->rewarm_from);
    if (s->type != CPT_SCHED_CONSTANT && !in01(s->min_lr_ratio))
        return BAD("min_lr_ratio = %g is outside [0, 1]. HINT: the final LR over the peak LR, typically 0.1", s->min_lr_ratio);
    if (s->type == CPT_SCHED_WSD) {
        if (!(s->decay_frac > 0.0 && s->decay_frac <= 1.0))
            return BAD("decay_frac = %g is outside (0, 1]. HINT: decay over the last 10-20%% of steps, e.g. 0.2", s->decay_frac);
        if (!cpt_decay_shape_name(s->decay_shape))
            return BAD("decay_shape %d is unknown. HINT: use cosine, linear, 1-sqrt or exp", s->decay_shape);
        long long d = cpt_schedule_decay_steps(s);
        if (d < 1)
            return BAD("decay_frac = %g of total_steps = %lld rounds to 0 decay steps. HINT: raise decay_frac or total_steps",
                       s->decay_frac, s->total_steps);
        if (s->warmup_steps > s->total_steps - d)
            return BAD("decay_frac = %g gives %lld decay steps, which overlap the %lld warmup steps of total_steps = %lld. HINT: lower decay_frac or warmup_steps",
                       s->decay_frac, d, s->warmup_steps, s->total_steps);
        if (s->decay_shape == CPT_DECAY_EXP && !(s->min_lr_ratio > 0.0))
            return BAD("decay_shape exp needs min_lr_ratio > 0 (an exponential never reaches 0). HINT: set min_lr_ratio, e.g. 0.01");
    }
    if (s->type == CPT_SCHED_INFINITE) {
        if (!(s->warmup_steps <= s->cooldown_end && s->cooldown_end <= s->anneal_start && s->anneal_start <= s->total_steps))
            return BAD("phases out of order: warmup_steps %lld <= cooldown_end %lld <= anneal_start %lld <= total_steps %lld must hold. HINT: e.g. 5%%, 15%%, 80%%, 100%% of the run",
                       s->warmup_steps, s->cooldown_end, s->anneal_start, s->total_steps);
        if (!(s->const_ratio > 0.0 && s->const_ratio <= 1.0))
            return BAD("const_ratio = %g is outside (0, 1]. HINT: the constant phase's LR over the peak LR, e.g. 0.5", s->const_ratio);
        if (s->const_ratio < s->min_lr_ratio)
            return BAD("const_ratio = %g is below min_lr_ratio = %g: the anneal would raise the LR. HINT: const_ratio >= min_lr_ratio",
                       s->const_ratio, s->min_lr_ratio);
        if (s->anneal_start < s->total_steps && !(s->min_lr_ratio > 0.0))
            return BAD("min_lr_ratio = 0 with an exponential anneal (anneal_start %lld < total_steps %lld). HINT: set min_lr_ratio > 0, e.g. 0.1",
                       s->anneal_start, s->total_steps);
        if (!cpt_cooldown_shape_name(s->cooldown_shape))
            return BAD("cooldown_shape %d is unknown. HINT: use cosine or inv-sqrt", s->cooldown_shape);
        if (s->cooldown_shape == CPT_COOLDOWN_INVSQRT && !(s->timescale > 0.0 && isfinite(s->timescale)))
            return BAD("timescale = %g must be > 0 for the inv-sqrt cooldown. HINT: the reference code uses 10", s->timescale);
    }
    return CPT_OK;
}

/* The operations below are written in the same order as transformers.optimization
 * (factor * (1 - m) + m, pi * progress) so the values agree to the last bit or two. */
static double mix(double f, double m) { return f * (1.0 - m) + m; }

static double lambda_infinite(const cpt_schedule *s, long long t) {
    const double c = s->const_ratio, m = s->min_lr_ratio;
    const long long W = s->warmup_steps, Tcd = s->cooldown_end, Tann = s->anneal_start, T = s->total_steps;
    if (t <= Tcd && Tcd > W) {
        double x = (double)(t - W) / (double)(Tcd - W);
        if (s->cooldown_shape == CPT_COOLDOWN_COSINE) return c + (1.0 - c) / 2.0 * (1.0 + cos(M_PI * x));
        double a = s->timescale, h = 1.0 / sqrt(1.0 + a * x) - 1.0, h1 = 1.0 / sqrt(1.0 + a) - 1.0;
        return 1.0 + (c - 1.0) * h / h1;
    }
    if (t <= Tann) return c;
    if (t <= T) return c * pow(m / c, (double)(t - Tann) / (double)(T - Tann));
    return m;
}

double cpt_schedule_lambda(const cpt_schedule *s, long long t) {
    CPT_ASSERT(s && t >= 0 && s->type >= 0 && s->type < CPT_SCHED_COUNT);
    const long long W = s->warmup_steps, T = s->total_steps;
    const double m = s->min_lr_ratio;
    if (t < W) return mix((double)t / (double)(W > 1 ? W : 1), s->rewarm_from);
    switch (s->type) {
    case CPT_SCHED_CONSTANT:
        return 1.0;
    case CPT_SCHED_LINEAR: {
        if (t >= T) return m;
        double x = (double)(T - t) / (double)(T - W > 1 ? T - W : 1);
        return mix(x > 0.0 ? x : 0.0, m);
    }
    case CPT_SCHED_COSINE: {
        if (t > T) return m; /* t == T is HF's formula (m, or 1 when W == T) */
        double p = (double)(t - W) / (double)(T - W > 1 ? T - W : 1);
        double f = mix(0.5 * (1.0 + cos(M_PI * p)), m);
        return f > 0.0 ? f : 0.0;
    }
    case CPT_SCHED_WSD: {
        long long D = cpt_schedule_decay_steps(s), S = T - D;
        if (t < S) return 1.0;
        if (t >= T) return m;
        double p = (double)(t - S) / (double)(D > 1 ? D : 1), f;
        switch (s->decay_shape) {
        case CPT_DECAY_EXP: return pow(m, p);
        case CPT_DECAY_LINEAR: f = 1.0 - p; break;
        case CPT_DECAY_1SQRT: f = 1.0 - sqrt(p); break;
        default: f = 0.5 * (1.0 + cos(M_PI * p)); break;
        }
        f = mix(f, m);
        return f > 0.0 ? f : 0.0;
    }
    case CPT_SCHED_INFINITE:
        return lambda_infinite(s, t);
    }
    return 1.0;
}

double cpt_schedule_lr(const cpt_schedule *s, long long step) { return s->lr * cpt_schedule_lambda(s, step); }
