/* cpt/common.h: status codes, error reporting and assertions shared by every module.
 *
 * Two tiers of errors (docs/style.md practice 6):
 *  - Programming errors (impossible shapes, NULL handles) hit CPT_ASSERT, which is
 *    always on, prints file, line and condition, and aborts.
 *  - Everything the user or the environment can cause returns a negative status
 *    and fills a cpt_err with a message that names the file, the field and the
 *    fix ("HINT: ..."). Library code never prints and never exits; only the CLI does.
 */
#ifndef CPT_COMMON_H
#define CPT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes: 0 is success, every failure is negative. */
enum {
    CPT_OK = 0,
    CPT_EIO = -1,          /* open/read/write/fsync/rename failed */
    CPT_EFORMAT = -2,      /* a file's content is malformed or inconsistent */
    CPT_EINVAL = -3,       /* a bad argument or configuration value */
    CPT_ENOMEM = -4,       /* allocation failed */
    CPT_EUNSUPPORTED = -5, /* valid input that cpt does not implement (yet) */
    CPT_ENOTFOUND = -6,    /* a named file, tensor or key does not exist */
    CPT_ESTATE = -7,       /* an operation in the wrong state (e.g. resume mismatch) */
};

#define CPT_ERR_MSG_MAX 2048

/* An error record. Zero-initialise it; functions that fail fill it once
 * (the first, innermost message wins, outer callers may prepend context). */
typedef struct cpt_err {
    int code;
    char msg[CPT_ERR_MSG_MAX];
} cpt_err;

/* Record an error (printf-style message) and return `code`. `e` may be NULL.
 * If `e` already holds an error, the new message is kept only if none was set. */
int cpt_err_set(cpt_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like cpt_err_set, with the message prefixed by "<where>: " (a file name, a file and
 * offset, a tensor): the form every format reader uses. */
int cpt_err_set_at(cpt_err *e, int code, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prepend context to an existing error message ("loading model dir X: <msg>").
 * Returns e->code (or CPT_EINVAL if e is NULL). */
int cpt_err_wrap(cpt_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Name of a status code ("I/O error", "format error", ...). */
const char *cpt_status_str(int code);

/* Always-on assertion for programming errors. */
#define CPT_ASSERT(cond)                                                                     \
    do {                                                                                     \
        if (!(cond)) cpt_assert_fail(__FILE__, __LINE__, #cond);                             \
    } while (0)
void cpt_assert_fail(const char *file, int line, const char *cond) __attribute__((noreturn));

/* Checked allocation helpers: return NULL on failure (callers report CPT_ENOMEM).
 * cpt_alloc_aligned returns 64-byte aligned, zeroed memory; free with cpt_free_aligned. */
void *cpt_alloc_aligned(size_t bytes);
void cpt_free_aligned(void *p);

/* Overflow-safe size arithmetic: return 0 on overflow, else 1 with *out set. */
static inline int cpt_mul_size(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline int cpt_add_size(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* splitmix64 (Steele, Lea, Flood 2014): cpt_mix64 is its bijective finaliser, used as
 * the project's one 64-bit hash mixer; cpt_splitmix64 advances a seed and mixes it. */
static inline uint64_t cpt_mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x;
}
static inline uint64_t cpt_splitmix64(uint64_t *s) {
    *s += 0x9E3779B97F4A7C15ull;
    return cpt_mix64(*s);
}

/* Monotonic wall clock in seconds. */
double cpt_now(void);

#ifdef __cplusplus
}
#endif
#endif /* CPT_COMMON_H */
