/* rope.c: rotary position embedding in the HF rotate_half layout (pair i with i+rot/2),
 * forward and backward (the inverse rotation), the fp32 tables built as transformers
 * builds them, and the float64 reference. methods.md 1.1 and 2.2.5. */
#include <math.h>

#include "cpt/ops.h"

void cpt_rope_tables(float *cos_t, float *sin_t, const float *inv_freq, float attn_factor, int n_pos,
                     int rot) {
    int half = rot / 2;
    /* transformers: freqs = inv_freq @ position_ids in fp32, then cos()*attention_scaling. */
    for (int p = 0; p < n_pos; p++)
        for (int i = 0; i < half; i++) {
            float a = (float)p * inv_freq[i];
            cos_t[(size_t)p * half + i] = cosf(a) * attn_factor;
            sin_t[(size_t)p * half + i] = sinf(a) * attn_factor;
        }
}

static void rope_apply(float *x, const float *cos_t, const float *sin_t, const int32_t *pos, int N,
                       int nh, int hd, int rot, float sign) {
    int half = rot / 2;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *c = cos_t + (size_t)pos[n] * half, *s = sin_t + (size_t)pos[n] * half;
        for (int h = 0; h < nh; h++) {
            float *v = x + ((size_t)n * nh + h) * hd;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half], sn = sign * s[i];
                v[i] = a * c[i] - b * sn;
                v[i + half] = b * c[i] + a * sn;
            }
        }
    }
}

void cpt_rope_fwd(float *x, const float *cos_t, const float *sin_t, const int32_t *pos, int N, int nh,
                  int hd, int rot) {
    rope_apply(x, cos_t, sin_t, pos, N, nh, hd, rot, 1.0f);
}

/* With the attention factor a folded into cos and sin, the forward is a*R(theta); its
 * transpose is a*R(-theta), i.e. the same tables with the sine negated. */
void cpt_rope_bwd(float *dx, const float *cos_t, const float *sin_t, const int32_t *pos, int N, int nh,
                  int hd, int rot) {
    rope_apply(dx, cos_t, sin_t, pos, N, nh, hd, rot, -1.0f);
}

static void ref_rope(double *x, const double *inv_freq, double af, const int32_t *pos, int N, int nh,
                     int hd, int rot, double sign) {
    int half = rot / 2;
    for (int n = 0; n < N; n++)
        for (int h = 0; h < nh; h++) {
            double *v = x + ((size_t)n * nh + h) * hd;
            for (int i = 0; i < half; i++) {
                double ang = pos[n] * inv_freq[i], c = af * cos(ang), s = sign * af * sin(ang);
                double a = v[i], b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = b * c + a * s;
            }
        }
}

void cpt_ref_rope_fwd(double *x, const double *inv_freq, double attn_factor, const int32_t *pos, int N,
                      int nh, int hd, int rot) {
    ref_rope(x, inv_freq, attn_factor, pos, N, nh, hd, rot, 1.0);
}

void cpt_ref_rope_bwd(double *dx, const double *inv_freq, double attn_factor, const int32_t *pos, int N,
                      int nh, int hd, int rot) {
    ref_rope(dx, inv_freq, attn_factor, pos, N, nh, hd, rot, -1.0);
}

/* Rotation from given cos/sin tables [n_pos, rot/2] (attention factor folded in), for
 * the float64 reference backend, whose rope entries get the model's tables and not the
 * frequencies. sign = -1 is the backward (the transpose). Checked against
 * cpt_ref_rope_fwd/bwd in tests/ops/test_ops_fd.c. */
static void ref_rope_tab(double *x, const double *cos_t, const double *sin_t, const int32_t *pos, int N, int nh,
                         int hd, int rot, double sign) {
    int half = rot / 2;
    for (int n = 0; n < N; n++)
        for (int h = 0; h < nh; h++) {
            double *v = x + ((size_t)n * nh + h) * hd;
            const double *c = cos_t + (size_t)pos[n] * half, *s = sin_t + (size_t)pos[n] * half;
            for (int i = 0; i < half; i++) {
                double a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * sign * s[i];
                v[i + half] = b * c[i] + a * sign * s[i];
            }
        }
}

void cpt_ref_rope_tab_fwd(double *x, const double *cos_t, const double *sin_t, const int32_t *pos, int N, int nh,
                          int hd, int rot) {
    ref_rope_tab(x, cos_t, sin_t, pos, N, nh, hd, rot, 1.0);
}

void cpt_ref_rope_tab_bwd(double *dx, const double *cos_t, const double *sin_t, const int32_t *pos, int N,
                          int nh, int hd, int rot) {
    ref_rope_tab(dx, cos_t, sin_t, pos, N, nh, hd, rot, -1.0);
}
