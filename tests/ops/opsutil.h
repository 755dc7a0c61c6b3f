/* opsutil.h: helpers shared by the kernel tests (deterministic RNG, guarded buffers,
 * error metrics); not a test itself and not part of the library. */
#ifndef CPT_TESTS_OPSUTIL_H
#define CPT_TESTS_OPSUTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: a fixed seed gives the same data on every machine. */
static uint64_t ou_state = 0x9E3779B97F4A7C15ull;
static inline void ou_seed(uint64_t s) { ou_state = s; }
static inline uint64_t ou_next(void) {
    uint64_t z = (ou_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Uniform in [-1, 1). */
static inline double ou_unif(void) { return (double)(ou_next() >> 11) * 0x1.0p-52 - 1.0; }
static inline void ou_fill_d(double *x, size_t n, double scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * ou_unif();
}
static inline void ou_fill_f(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * ou_unif());
}
static inline void ou_f2d(double *d, const float *f, size_t n) {
    for (size_t i = 0; i < n; i++) d[i] = f[i];
}
static inline void *ou_xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) abort(); /* a test with no memory cannot say anything useful */
    return p;
}
#define OU_ALLOC(type, n) ((type *)ou_xmalloc(sizeof(type) * (size_t)(n)))

/* ---- guarded float buffers: [G sentinels][n payload][G sentinels] ----
 * Sentinels are a quiet NaN with a recognisable payload, compared bitwise, so a kernel
 * that writes one element too far (or too early) is caught even if it writes a NaN. */
enum { OU_GUARD = 32 };
static const uint32_t OU_SENTINEL = 0x7FC0DEADu;

static inline float *ou_galloc(size_t n) {
    float *base = OU_ALLOC(float, n + 2 * OU_GUARD);
    uint32_t *u = (uint32_t *)(void *)base;
    for (size_t i = 0; i < n + 2 * OU_GUARD; i++) u[i] = OU_SENTINEL;
    return base + OU_GUARD;
}
/* Returns 1 if every sentinel before and after the n payload floats is intact. */
static inline int ou_guard_ok(const float *p, size_t n) {
    const uint32_t *lo = (const uint32_t *)(const void *)(p - OU_GUARD);
    const uint32_t *hi = (const uint32_t *)(const void *)(p + n);
    for (size_t i = 0; i < OU_GUARD; i++)
        if (lo[i] != OU_SENTINEL || hi[i] != OU_SENTINEL) return 0;
    return 1;
}
static inline void ou_gfree(float *p) {
    if (p) free(p - OU_GUARD);
}
/* Fill the payload with NaN: for "=" outputs, proves the kernel never reads them. */
static inline void ou_fill_nan(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = NAN;
}
static inline int ou_all_finite(const float *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return 0;
    return 1;
}

/* Per-tensor relative error: max_i |a_i - b_i| / max_i |b_i| (NaN anywhere -> inf).
 * Used instead of element-wise relative error so near-zero entries (where the
 * relative error of a correct kernel is unbounded) do not make the metric noisy. */
static inline double ou_relerr_fd(const float *a, const double *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= md)) md = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / (mb > 1e-300 ? mb : 1e-300);
}
static inline double ou_relerr_dd(const double *a, const double *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (!(d <= md)) md = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / (mb > 1e-300 ? mb : 1e-300);
}
static inline double ou_maxabs_d(const double *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) > m) m = fabs(x[i]);
    return m;
}

#endif
