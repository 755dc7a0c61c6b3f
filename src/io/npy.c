/* npy.c: NumPy .npy float32 writer (v1.0, atomic) and strict reader; no other dtypes. */
#include "cpt/npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "'<f4' data is little-endian; this code writes host floats directly"
#endif

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

int cpt_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape,
                      cpt_err *err) {
    CPT_ASSERT(path && (ndim == 0 || shape));
    if (ndim < 0 || ndim > CPT_NPY_MAX_DIMS)
        return cpt_err_set(err, CPT_EINVAL, "%s: ndim %d out of range. HINT: 0..%d dimensions",
                           path, ndim, CPT_NPY_MAX_DIMS);
    /* Dict text: at most 60 fixed bytes + 22 per dimension, well under u16 range. */
    char hdr[64 + 24 * CPT_NPY_MAX_DIMS + 64];
    size_t k = (size_t)snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(numel, (uint64_t)shape[i], &numel) ||
            numel > SIZE_MAX / 4)
            return cpt_err_set(err, CPT_EINVAL,
                               "%s: shape[%d] = %lld is negative or the size overflows. HINT: fix "
                               "the shape",
                               path, i, (long long)shape[i]);
        /* Python writes a 1-tuple as "(n,)" and longer tuples as "(a, b)". */
        k += (size_t)snprintf(hdr + k, sizeof hdr - k, "%s%lld%s", i ? ", " : "",
                              (long long)shape[i], ndim == 1 ? "," : "");
    }
    k += (size_t)snprintf(hdr + k, sizeof hdr - k, "), }");
    /* Pad with spaces and a final '\n' so 10 + len is a multiple of 64 (numpy's alignment). */
    size_t total = (10 + k + 1 + 63) / 64 * 64, hlen = total - 10;
    CPT_ASSERT(hlen < sizeof hdr && hlen <= 65535);
    memset(hdr + k, ' ', hlen - k);
    hdr[hlen - 1] = '\n';
    uint8_t pre[10];
    memcpy(pre, npy_magic, 6);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = (uint8_t)(hlen & 0xff);
    pre[9] = (uint8_t)(hlen >> 8);
    if (numel && !data)
        return cpt_err_set(err, CPT_EINVAL, "%s: data is NULL for %llu elements", path,
                           (unsigned long long)numel);
    cpt_awrite w;
    int rc = cpt_awrite_open(&w, path, err);
    if (rc) return rc;
    rc = cpt_fwrite_all(w.f, pre, sizeof pre, w.tmp, err);
    if (!rc) rc = cpt_fwrite_all(w.f, hdr, hlen, w.tmp, err);
    if (!rc) rc = cpt_fwrite_all(w.f, data, (size_t)numel * 4, w.tmp, err);
    if (rc) {
        cpt_awrite_abort(&w);
        return rc;
    }
    return cpt_awrite_commit(&w, err);
}

void cpt_npy_free(cpt_npy *a) {
    if (!a) return;
    cpt_free_aligned(a->data);
    memset(a, 0, sizeof *a);
}

/* --- strict parser for the header dict ------------------------------------------- */

typedef struct hparse {
    const char *s, *path;
    size_t i, n;
    cpt_err *err;
} hparse;

static void hp_ws(hparse *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n'))
        p->i++;
}

static int hp_fail(hparse *p, const char *what) {
    return cpt_err_set(p->err, CPT_EFORMAT,
                       "%s: header byte %zu: %s. HINT: not a valid .npy header (expected "
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (...), })",
                       p->path, p->i, what);
}

static int hp_char(hparse *p, char c) {
    hp_ws(p);
    if (p->i < p->n && p->s[p->i] == c) {
        p->i++;
        return 1;
    }
    return 0;
}

/* A quoted string without escapes into out[cap]. */
static int hp_str(hparse *p, char *out, size_t cap) {
    hp_ws(p);
    if (p->i >= p->n || (p->s[p->i] != '\'' && p->s[p->i] != '"')) return 0;
    char q = p->s[p->i++];
    size_t k = 0;
    while (p->i < p->n && p->s[p->i] != q) {
        if (p->s[p->i] == '\\' || k + 1 >= cap) return 0;
        out[k++] = p->s[p->i++];
    }
    if (p->i >= p->n) return 0;
    p->i++;
    out[k] = '\0';
    return 1;
}

static int hp_word(hparse *p, const char *w) {
    hp_ws(p);
    size_t l = strlen(w);
    if (p->n - p->i >= l && memcmp(p->s + p->i, w, l) == 0) {
        p->i += l;
        return 1;
    }
    return 0;
}

static int parse_shape(hparse *p, cpt_npy *a) {
    if (!hp_char(p, '(')) return hp_fail(p, "field shape: expected '('");
    a->ndim = 0;
    for (;;) {
        if (hp_char(p, ')')) return CPT_OK;
        if (a->ndim >= CPT_NPY_MAX_DIMS) return hp_fail(p, "field shape: too many dimensions");
        hp_ws(p);
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
            return hp_fail(p, "field shape: expected a non-negative integer");
        int64_t v = 0;
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
            if (v > (INT64_MAX - 9) / 10) return hp_fail(p, "field shape: dimension too large");
            v = v * 10 + (p->s[p->i++] - '0');
        }
        a->shape[a->ndim++] = v;
        if (hp_char(p, ',')) continue;
        if (hp_char(p, ')')) return CPT_OK;
        return hp_fail(p, "field shape: expected ',' or ')'");
    }
}

static int parse_header(hparse *p, cpt_npy *a) {
    int have_descr = 0, have_fo = 0, have_shape = 0;
    if (!hp_char(p, '{')) return hp_fail(p, "expected '{'");
    for (;;) {
        if (hp_char(p, '}')) break;
        char key[32], val[32];
        if (!hp_str(p, key, sizeof key)) return hp_fail(p, "expected a quoted key");
        if (!hp_char(p, ':')) return hp_fail(p, "expected ':'");
        if (strcmp(key, "descr") == 0 && !have_descr) {
            if (!hp_str(p, val, sizeof val)) return hp_fail(p, "field descr: expected a string");
            if (strcmp(val, "<f4") != 0)
                return cpt_err_set(p->err, CPT_EUNSUPPORTED,
                                   "%s: field descr is '%s', not '<f4'. HINT: save the array as "
                                   "float32 (arr.astype('<f4'))",
                                   p->path, val);
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && !have_fo) {
            if (hp_word(p, "True"))
                return cpt_err_set(p->err, CPT_EUNSUPPORTED,
                                   "%s: field fortran_order is True. HINT: save a C-ordered "
                                   "array (np.ascontiguousarray)",
                                   p->path);
            if (!hp_word(p, "False")) return hp_fail(p, "field fortran_order: expected False");
            have_fo = 1;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            int rc = parse_shape(p, a);
            if (rc) return rc;
            have_shape = 1;
        } else {
            return cpt_err_set(p->err, CPT_EFORMAT,
                               "%s: header field '%s' is unknown or repeated. HINT: a .npy "
                               "header has descr, fortran_order and shape once each",
                               p->path, key);
        }
        if (hp_char(p, ',')) continue;
        if (hp_char(p, '}')) break;
        return hp_fail(p, "expected ',' or '}'");
    }
    hp_ws(p);
    if (p->i != p->n) return hp_fail(p, "unexpected bytes after the closing '}'");
    if (!have_descr || !have_fo || !have_shape)
        return cpt_err_set(p->err, CPT_EFORMAT,
                           "%s: header lacks field '%s'. HINT: a .npy header has descr, "
                           "fortran_order and shape",
                           p->path, !have_descr ? "descr" : !have_fo ? "fortran_order" : "shape");
    return CPT_OK;
}

int cpt_npy_read_f32(const char *path, cpt_npy *out, cpt_err *err) {
    CPT_ASSERT(path && out);
    memset(out, 0, sizeof *out);
    cpt_map m;
    int rc = cpt_map_open(&m, path, err);
    if (rc) return rc;
    const uint8_t *b = m.data;
    size_t pre = 0, hlen = 0;
    if (m.size < 10 || memcmp(b, npy_magic, 6) != 0) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: magic (offset 0) is not \\x93NUMPY. HINT: not a .npy file", path);
        goto out;
    }
    if (b[6] == 1 && b[7] == 0) {
        pre = 10;
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
    } else if ((b[6] == 2 || b[6] == 3) && b[7] == 0 && m.size >= 12) {
        pre = 12;
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    } else {
        rc = cpt_err_set(err, CPT_EFORMAT,
                         "%s: version (offset 6) %u.%u is not 1.0, 2.0 or 3.0. HINT: re-save "
                         "with numpy.save",
                         path, b[6], b[7]);
        goto out;
    }
    if (hlen > m.size - pre) {
        rc = cpt_err_set(err, CPT_EFORMAT,
                         "%s: header length (offset 8) %zu runs past the end of the file (%zu "
                         "bytes). HINT: the file is truncated",
                         path, hlen, m.size);
        goto out;
    }
    hparse p = {(const char *)b + pre, path, 0, hlen, err};
    if ((rc = parse_header(&p, out))) goto out;
    uint64_t numel = 1;
    for (int i = 0; i < out->ndim; i++)
        if (__builtin_mul_overflow(numel, (uint64_t)out->shape[i], &numel) || numel > SIZE_MAX / 4) {
            rc = cpt_err_set(err, CPT_EFORMAT, "%s: field shape: element count overflows. HINT: the header is corrupt", path);
            goto out;
        }
    size_t data_bytes = m.size - pre - hlen;
    if ((uint64_t)data_bytes != numel * 4) {
        rc = cpt_err_set(err, CPT_EFORMAT,
                         "%s: data section is %zu bytes but field shape needs %llu float32 (%llu "
                         "bytes). HINT: the file is truncated or has trailing bytes",
                         path, data_bytes, (unsigned long long)numel,
                         (unsigned long long)(numel * 4));
        goto out;
    }
    out->numel = numel;
    out->data = cpt_alloc_aligned((size_t)numel * 4);
    if (!out->data) {
        rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory for %llu floats", path,
                         (unsigned long long)numel);
        goto out;
    }
    if (numel) memcpy(out->data, b + pre + hlen, (size_t)numel * 4);
out:
    cpt_map_close(&m);
    if (rc) cpt_npy_free(out);
    return rc;
}
