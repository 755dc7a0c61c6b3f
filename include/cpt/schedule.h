/* cpt/schedule.h: learning-rate schedules for continued pretraining (methods.md §4).
 *
 * A schedule is a plain struct and the LR a pure function of (schedule, step): there is
 * no state, so a run resumed at step K uses exactly the LRs of the run that never stopped.
 *
 * Step indexing. cpt_schedule_lr(s, step) is the LR used for optimizer update number
 * `step`, counted from 0. It equals lr * lambda(step) of Hugging Face's LambdaLR
 * schedulers, which are stepped after optimizer.step(): the first update uses lambda(0).
 * With a warmup from 0 that LR is exactly 0 (methods.md §4.1 "indexing quirk"): the
 * weights do not move on update 0, but AdamW's moments and step counter still advance.
 * cpt copies this on purpose so runs match HF; set rewarm_from > 0 to avoid it.
 *
 * Notation: W = warmup_steps, T = total_steps, m = min_lr_ratio, r = rewarm_from,
 * t = step. Every type shares the warmup (re-warm, Gupta et al. 2023, §4.2):
 *     t < W:  lambda = r + (1 - r) * t / max(1, W)          (HF: t / max(1, W) when r = 0)
 * and after it:
 *   CONSTANT  lambda = 1.                      (HF get_constant_schedule_with_warmup)
 *   LINEAR    lambda = m + (1-m) * max(0, (T - t) / max(1, T - W)), and m for t >= T.
 *                                              (HF get_linear_schedule_with_warmup when m = 0)
 *   COSINE    p = (t - W) / max(1, T - W), lambda = max(0, m + (1-m) * 0.5 * (1 + cos(pi p))).
 *             (HF get_cosine_with_min_lr_schedule_with_warmup, min_lr_rate = m, num_cycles 0.5.)
 *             For t > T lambda = m: HF keeps evaluating cos past T, which makes the LR rise
 *             again; cpt holds the minimum instead (no sane run steps past T).
 *   WSD       D = llround(decay_frac * T) decay steps, stable until S = T - D:
 *             W <= t < S: lambda = 1;  S <= t < T: p = (t - S) / D and
 *               cosine:  f = 0.5 * (1 + cos(pi p))     linear: f = 1 - p
 *               1-sqrt:  f = 1 - sqrt(p)  (Hägele et al. 2024)
 *               lambda = m + (1-m) * f   (as HF get_wsd_schedule computes it)
 *               exp:     lambda = m ^ p  (MiniCPM-style exponential; needs m > 0)
 *             t >= T: lambda = m. HF's get_wsd_schedule warms up from m rather than 0
 *             (factor * (1-m) + m); set rewarm_from = min_lr_ratio to reproduce it.
 *   INFINITE  (Ibrahim et al. 2024 §7; Janson et al. 2025; methods.md §4.3), with
 *             T_cd = cooldown_end, T_ann = anneal_start, c = const_ratio, T = T_end:
 *             t <= W (warmup as above; t = W gives 1)
 *             W < t <= T_cd:  x = (t - W) / (T_cd - W)
 *               cosine:   lambda = c + (1 - c) / 2 * (1 + cos(pi x))
 *               inv-sqrt: lambda = 1 + (c - 1) * h(x) / h(1), h(x) = 1/sqrt(1 + a x) - 1,
 *                         a = timescale (reference code default 10)
 *             T_cd < t <= T_ann: lambda = c (extend T_ann/T for later data; later phases
 *                         use W = T_cd = 0 and start here, with no re-warm)
 *             T_ann < t <= T: lambda = c * (m / c) ^ ((t - T_ann) / (T - T_ann))
 *             t > T: lambda = m.
 * The LR is lr * lambda.
 */
#ifndef CPT_SCHEDULE_H
#define CPT_SCHEDULE_H

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CPT_SCHED_CONSTANT = 0,
    CPT_SCHED_LINEAR,
    CPT_SCHED_COSINE,
    CPT_SCHED_WSD,
    CPT_SCHED_INFINITE,
    CPT_SCHED_COUNT
} cpt_schedule_type;

/* WSD decay shapes ("cosine", "linear", "1-sqrt", "exp"). */
typedef enum {
    CPT_DECAY_COSINE = 0,
    CPT_DECAY_LINEAR,
    CPT_DECAY_1SQRT,
    CPT_DECAY_EXP,
    CPT_DECAY_COUNT
} cpt_decay_shape;

/* Infinite-schedule cooldown shapes ("cosine", "inv-sqrt"). */
typedef enum { CPT_COOLDOWN_COSINE = 0, CPT_COOLDOWN_INVSQRT, CPT_COOLDOWN_COUNT } cpt_cooldown_shape;

typedef struct cpt_schedule {
    int type;                 /* cpt_schedule_type */
    double lr;                /* peak LR, > 0 */
    long long warmup_steps;   /* W >= 0 */
    long long total_steps;    /* T >= 1 (CONSTANT: 0 = unbounded); the infinite schedule's T_end */
    double min_lr_ratio;      /* m in [0, 1]: final LR / peak LR (LINEAR, COSINE, WSD, INFINITE) */
    double rewarm_from;       /* r in [0, 1]: warmup starts at r * lr instead of 0 */
    /* WSD */
    double decay_frac;        /* (0, 1]: decay over llround(decay_frac * T) steps at the end */
    int decay_shape;          /* cpt_decay_shape */
    /* INFINITE: W <= cooldown_end <= anneal_start <= total_steps */
    long long cooldown_end;   /* T_cd */
    long long anneal_start;   /* T_ann */
    double const_ratio;       /* c in (0, 1]: eta_const / peak; must be >= min_lr_ratio, > 0 */
    int cooldown_shape;       /* cpt_cooldown_shape */
    double timescale;         /* inv-sqrt alpha > 0 */
} cpt_schedule;

/* Defaults for the optional fields (type COSINE, min_lr_ratio 0.1, rewarm_from 0,
 * decay_frac 0.2, decay_shape 1-sqrt, const_ratio 0.5, cooldown cosine, timescale 10);
 * lr, warmup and the step counts are zero and must be set. */
void cpt_schedule_init(cpt_schedule *s);

/* Check every field for the schedule's type; on failure CPT_EINVAL with a message naming
 * the field and its value and a HINT. Rejects: unknown type or shape, lr <= 0 or not
 * finite, negative steps, warmup_steps > total_steps, min_lr_ratio or rewarm_from outside
 * [0, 1], decay_frac outside (0, 1] or rounding to 0 steps or overlapping the warmup,
 * exp decay with min_lr_ratio 0, infinite phases out of order, const_ratio outside
 * (0, 1] or below min_lr_ratio, an exponential anneal to 0, timescale <= 0. */
int cpt_schedule_validate(const cpt_schedule *s, cpt_err *err);

/* lambda(step) and lr * lambda(step) (formulas above). `s` must have passed
 * cpt_schedule_validate and step must be >= 0 (both asserted where cheap). */
double cpt_schedule_lambda(const cpt_schedule *s, long long step);
double cpt_schedule_lr(const cpt_schedule *s, long long step);

/* WSD: the number of decay steps, llround(decay_frac * total_steps). */
long long cpt_schedule_decay_steps(const cpt_schedule *s);

/* Names: "constant", "linear", "cosine", "wsd", "infinite"; NULL / -1 when unknown. */
const char *cpt_schedule_type_name(int type);
int cpt_schedule_type_from_name(const char *name);
/* "cosine", "linear", "1-sqrt", "exp". */
const char *cpt_decay_shape_name(int shape);
int cpt_decay_shape_from_name(const char *name);
/* "cosine", "inv-sqrt". */
const char *cpt_cooldown_shape_name(int shape);
int cpt_cooldown_shape_from_name(const char *name);

#ifdef __cplusplus
}
#endif
#endif
