/* rope.c: inverse frequencies and attention factor of every RoPE type, as transformers
 * 4.51.3's ROPE_INIT_FUNCTIONS compute them (modeling_rope_utils.py). Each tensor op there
 * is one float32 op here, in the same order; Python scalar math stays double. Not here:
 * the cos/sin tables (src/ops/rope.c) and the per-forward update (model.c). */
#include <math.h>
#include <string.h>

#include "cpt/rope.h"

static const char *NAMES[] = {"default", "linear", "dynamic", "yarn", "llama3", "longrope"};

const char *cpt_rope_type_name(cpt_rope_type t) {
    return (unsigned)t < sizeof NAMES / sizeof NAMES[0] ? NAMES[t] : "?";
}

long long cpt_rope_longrope_original(const cpt_config *c) {
    return c->rope_scaling.top_original_max_pos > 0 ? c->rope_scaling.top_original_max_pos : c->max_pos;
}

/* torch: base ** (torch.arange(0, dim, 2).float() / dim), then 1.0 / that; base is a
 * Python float, which torch rounds to the tensor's dtype (float32). */
static float pos_freq(float base, int i, int dim) { return powf(base, (float)(2 * i) / (float)dim); }

/* yarn's get_mscale (Python double). */
static double yarn_mscale(double scale, double m) { return scale <= 1.0 ? 1.0 : 0.1 * m * log(scale) + 1.0; }

/* yarn's find_correction_dim (Python double). */
static double yarn_corr_dim(double rot, int dim, double base, double maxpos) {
    return (dim * log(maxpos / (rot * 2 * M_PI))) / (2 * log(base));
}

int cpt_rope_init(const cpt_config *c, long long seq_len, float *inv, float *attn_factor, cpt_err *err) {
    const cpt_rope_scaling *r = &c->rope_scaling;
    int dim = cpt_config_rot_dim(c), half = dim / 2;
    double theta = c->rope_theta;
    float ftheta = (float)theta;
    *attn_factor = 1.0f;
    if (dim < 2 || dim % 2)
        return cpt_err_set(err, CPT_EINVAL, "config.json: rotary dim %d (head_dim %d * partial_rotary_factor %g) must be even and >= 2",
                           dim, c->head_dim, c->partial_rotary_factor);
    switch (r->type) {
    case CPT_ROPE_DEFAULT:
    case CPT_ROPE_LINEAR:
    case CPT_ROPE_LLAMA3:
        for (int i = 0; i < half; i++) inv[i] = 1.0f / pos_freq(ftheta, i, dim);
        if (r->type == CPT_ROPE_LINEAR) {
            float f = (float)r->factor; /* inv_freq /= factor */
            for (int i = 0; i < half; i++) inv[i] = inv[i] / f;
        } else if (r->type == CPT_ROPE_LLAMA3) {
            double L = (double)r->original_max_pos;
            float low_wl = (float)(L / r->low_freq_factor), high_wl = (float)(L / r->high_freq_factor);
            float f = (float)r->factor, lo = (float)r->low_freq_factor, span = (float)(r->high_freq_factor - r->low_freq_factor);
            float twopi = (float)(2 * M_PI), fL = (float)L;
            for (int i = 0; i < half; i++) {
                /* 2*pi / inv_freq is torch's reciprocal(inv_freq) * 2*pi */
                float wl = (1.0f / inv[i]) * twopi;
                float x = wl > low_wl ? inv[i] / f : inv[i];
                float smooth = ((1.0f / wl) * fL - lo) / span;
                float smoothed = (1.0f - smooth) * x / f + smooth * x;
                int medium = !(wl < high_wl) && !(wl > low_wl);
                inv[i] = medium ? smoothed : x;
            }
        }
        return CPT_OK;
    case CPT_ROPE_DYNAMIC: {
        if (dim == 2) return cpt_err_set(err, CPT_EINVAL, "config.json: dynamic NTK needs a rotary dim > 2 (the base exponent is dim/(dim-2))");
        double maxp = (double)c->max_pos, fac = r->factor, ex = (double)dim / (double)(dim - 2);
        float base;
        if (seq_len > c->max_pos) {
            /* seq_len is a torch tensor here (max(position_ids) + 1), so the base is float32 tensor math */
            float t = (float)fac * (float)seq_len;
            t = t / (float)maxp;
            t = t - (float)(fac - 1.0);
            /* torch's pow(tensor, python float) keeps the exponent in double (std::pow(float, double)),
             * except that an exponent of 2 is a float square */
            t = ex == 2.0 ? t * t : (float)pow((double)t, ex);
            base = ftheta * t;
        } else {
            /* at init (or seq_len <= max_position_embeddings): Python floats */
            base = (float)(theta * pow((fac * maxp / maxp) - (fac - 1.0), ex));
        }
        for (int i = 0; i < half; i++) inv[i] = 1.0f / pos_freq(base, i, dim);
        return CPT_OK;
    }
    case CPT_ROPE_YARN: {
        double fac = r->factor, L = (double)c->max_pos;
        if (r->original_max_pos > 0) {
            /* transformers 4.51: the factor becomes max_position_embeddings / original */
            L = (double)r->original_max_pos;
            fac = (double)c->max_pos / L;
        }
        double af = r->attention_factor;
        if (af == 0.0) af = (r->mscale != 0.0 && r->mscale_all_dim != 0.0) ? yarn_mscale(fac, r->mscale) / yarn_mscale(fac, r->mscale_all_dim)
                                                                          : yarn_mscale(fac, 1.0);
        double bf = r->beta_fast != 0.0 ? r->beta_fast : 32.0, bs = r->beta_slow != 0.0 ? r->beta_slow : 1.0;
        double low = floor(yarn_corr_dim(bf, dim, theta, L)), high = ceil(yarn_corr_dim(bs, dim, theta, L));
        if (low < 0) low = 0;
        if (high > dim - 1) high = dim - 1;
        if (low == high) high += 0.001; /* "prevent singularity" */
        float flo = (float)low, fspan = (float)(high - low), ffac = (float)fac;
        for (int i = 0; i < half; i++) {
            float pf = pos_freq(ftheta, i, dim);
            float extra = 1.0f / pf, interp = 1.0f / (ffac * pf);
            float ramp = ((float)i - flo) / fspan;
            ramp = ramp < 0.0f ? 0.0f : ramp > 1.0f ? 1.0f : ramp;
            float ef = 1.0f - ramp;
            inv[i] = interp * (1.0f - ef) + extra * ef;
        }
        *attn_factor = (float)af;
        return CPT_OK;
    }
    case CPT_ROPE_LONGROPE: {
        if (r->n_factors != half)
            return cpt_err_set(err, CPT_EINVAL, "config.json: rope_scaling short_factor/long_factor have %d entries; the rotary dim %d needs %d",
                               r->n_factors, dim, half);
        long long L = cpt_rope_longrope_original(c);
        double fac = r->factor, af = r->attention_factor;
        if (r->top_original_max_pos > 0) fac = (double)c->max_pos / (double)r->top_original_max_pos;
        if (af == 0.0) {
            if (fac == 0.0)
                return cpt_err_set(err, CPT_EINVAL, "config.json: rope_scaling type longrope needs \"factor\" (or a top-level original_max_position_embeddings, or attention_factor)");
            af = fac <= 1.0 ? 1.0 : sqrt(1 + log(fac) / log((double)L));
        }
        const double *ext = (seq_len > 0 && seq_len > L) ? r->long_factor : r->short_factor;
        for (int i = 0; i < half; i++) inv[i] = 1.0f / ((float)ext[i] * pos_freq(ftheta, i, dim));
        *attn_factor = (float)af;
        return CPT_OK;
    }
    }
    return cpt_err_set(err, CPT_EINVAL, "unknown rope type %d", (int)r->type);
}
