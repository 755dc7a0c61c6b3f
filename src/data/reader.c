/* reader.c: streaming corpus reader (plain, gzip via zlib, zstd) yielding documents from .txt and .jsonl files; no cleaning. */
#include "reader.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CPT_HAVE_ZLIB
#include <zlib.h>
#endif
#ifdef CPT_HAVE_ZSTD
#include <zstd.h>
#endif

enum { RAW_PLAIN, RAW_GZ, RAW_ZST };

struct drd {
    char *path, *field;
    int kind, jsonl, blank, raw_lines;
    FILE *f;
#ifdef CPT_HAVE_ZLIB
    gzFile gz;
#endif
#ifdef CPT_HAVE_ZSTD
    ZSTD_DCtx *zd;
    uint8_t *zin;
    ZSTD_inBuffer zib;
    size_t zin_cap;
#endif
    char *buf; /* decompressed bytes [pos, end) not yet consumed */
    size_t pos, end, cap;
    int eof;
    size_t line;
    json_t *js;
    int done_txt;
    char *doc; /* blank-line mode: the document being assembled */
    size_t doc_n, doc_cap;
};

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

void drd_close(drd *r) {
    if (!r) return;
    if (r->f) fclose(r->f);
#ifdef CPT_HAVE_ZLIB
    if (r->gz) gzclose(r->gz);
#endif
#ifdef CPT_HAVE_ZSTD
    ZSTD_freeDCtx(r->zd);
    free(r->zin);
#endif
    json_decref(r->js);
    free(r->doc);
    free(r->buf);
    free(r->path);
    free(r->field);
    free(r);
}

int drd_open(drd **out, const char *path, const char *field, int txt_blank, cpt_err *err) {
    *out = NULL;
    drd *r = calloc(1, sizeof *r);
    if (!r) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", path);
    r->path = strdup(path);
    r->field = strdup(field ? field : "text");
    r->cap = 1 << 20;
    r->buf = malloc(r->cap);
    if (!r->path || !r->field || !r->buf) {
        drd_close(r);
        return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", path);
    }
    r->kind = ends_with(path, ".gz") ? RAW_GZ : ends_with(path, ".zst") ? RAW_ZST : RAW_PLAIN;
    r->jsonl = ends_with(path, ".jsonl") || ends_with(path, ".jsonl.gz") || ends_with(path, ".jsonl.zst");
    r->blank = !r->jsonl && txt_blank;
    int rc = CPT_OK;
    if (r->kind == RAW_GZ) {
#ifdef CPT_HAVE_ZLIB
        r->gz = gzopen(path, "rb");
        if (!r->gz) rc = cpt_err_set(err, CPT_EIO, "%s: cannot open: %s", path, strerror(errno));
#else
        rc = cpt_err_set(err, CPT_EUNSUPPORTED, "%s: built without zlib. HINT: install zlib1g-dev and rebuild", path);
#endif
    } else {
        r->f = fopen(path, "rb");
        if (!r->f)
            rc = cpt_err_set(err, errno == ENOENT ? CPT_ENOTFOUND : CPT_EIO, "%s: cannot open: %s", path,
                             strerror(errno));
        if (!rc && r->kind == RAW_ZST) {
#ifdef CPT_HAVE_ZSTD
            r->zd = ZSTD_createDCtx();
            r->zin_cap = ZSTD_DStreamInSize();
            r->zin = malloc(r->zin_cap);
            if (!r->zd || !r->zin) rc = cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", path);
#else
            rc = cpt_err_set(err, CPT_EUNSUPPORTED, "%s: built without libzstd. HINT: install libzstd-dev and rebuild", path);
#endif
        }
    }
    if (rc) {
        drd_close(r);
        return rc;
    }
    *out = r;
    return CPT_OK;
}

/* Append up to `want` decompressed bytes at buf + end; returns bytes read, 0 at EOF, <0 on error. */
static long raw_read(drd *r, size_t want, cpt_err *err) {
    char *dst = r->buf + r->end;
    if (r->kind == RAW_PLAIN) {
        size_t k = fread(dst, 1, want, r->f);
        if (k == 0 && ferror(r->f)) return cpt_err_set(err, CPT_EIO, "%s: read error", r->path);
        return (long)k;
    }
#ifdef CPT_HAVE_ZLIB
    if (r->kind == RAW_GZ) {
        unsigned w = want > (1u << 30) ? (1u << 30) : (unsigned)want;
        int k = gzread(r->gz, dst, w);
        if (k < 0) {
            int e;
            const char *m = gzerror(r->gz, &e);
            return cpt_err_set(err, CPT_EFORMAT, "%s: gzip error near line %zu: %s. HINT: the file is corrupt or truncated",
                               r->path, r->line, m);
        }
        return k;
    }
#endif
#ifdef CPT_HAVE_ZSTD
    ZSTD_outBuffer ob = {dst, want, 0};
    while (ob.pos == 0) {
        if (r->zib.pos == r->zib.size) {
            size_t k = fread(r->zin, 1, r->zin_cap, r->f);
            if (k == 0) {
                if (ferror(r->f)) return cpt_err_set(err, CPT_EIO, "%s: read error", r->path);
                return 0;
            }
            r->zib.src = r->zin;
            r->zib.size = k;
            r->zib.pos = 0;
        }
        size_t z = ZSTD_decompressStream(r->zd, &ob, &r->zib);
        if (ZSTD_isError(z))
            return cpt_err_set(err, CPT_EFORMAT, "%s: zstd error near line %zu: %s. HINT: the file is corrupt or truncated",
                               r->path, r->line, ZSTD_getErrorName(z));
    }
    return (long)ob.pos;
#else
    return cpt_err_set(err, CPT_EUNSUPPORTED, "%s: unsupported compression", r->path);
#endif
}

/* Make [pos, end) hold a full line (or the rest of the file); returns its length via *n. */
static int fill_line(drd *r, size_t *n, int whole, cpt_err *err) {
    size_t scanned = r->pos;
    for (;;) {
        if (!whole) {
            char *nl = memchr(r->buf + scanned, '\n', r->end - scanned);
            if (nl) {
                *n = (size_t)(nl - (r->buf + r->pos));
                return 1;
            }
        }
        scanned = r->end;
        if (r->eof) {
            *n = r->end - r->pos;
            return r->end > r->pos || whole;
        }
        if (r->pos > 0) { /* compact */
            memmove(r->buf, r->buf + r->pos, r->end - r->pos);
            r->end -= r->pos;
            scanned -= r->pos;
            r->pos = 0;
        }
        if (r->cap - r->end < (1 << 16)) {
            char *nb = realloc(r->buf, r->cap * 2);
            if (!nb) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory at line %zu", r->path, r->line);
            r->buf = nb;
            r->cap *= 2;
        }
        long k = raw_read(r, r->cap - r->end - 1, err);
        if (k < 0) return (int)k;
        if (k == 0) r->eof = 1;
        r->end += (size_t)k;
    }
}

uint64_t drd_bytes(const drd *r) {
#ifdef CPT_HAVE_ZLIB
    if (r->gz) {
        long o = (long)gzoffset(r->gz);
        return o > 0 ? (uint64_t)o : 0;
    }
#endif
    if (!r->f) return 0;
    off_t o = ftello(r->f);
    return o > 0 ? (uint64_t)o : 0;
}

void drd_set_raw_lines(drd *r) { r->raw_lines = 1; }

static int is_blank(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') return 0;
    return 1;
}

/* Blank-line mode: gather the next run of non-blank lines into r->doc. Memory is bounded
 * by the longest document, not the file. */
static int next_paragraph(drd *r, const char **text, size_t *len, size_t *line, cpt_err *err) {
    r->doc_n = 0;
    for (;;) {
        size_t n = 0;
        int rc = fill_line(r, &n, 0, err);
        if (rc < 0) return rc;
        if (rc == 0) break;
        r->line++;
        const char *p = r->buf + r->pos;
        r->pos += n + (r->pos + n < r->end);
        if (is_blank(p, n)) {
            if (r->doc_n) break;
            continue;
        }
        if (r->doc_n == 0) *line = r->line;
        size_t need = r->doc_n + n + 2;
        if (need > r->doc_cap) {
            size_t nc = r->doc_cap ? r->doc_cap : 4096;
            while (nc < need) nc *= 2;
            char *nd = realloc(r->doc, nc);
            if (!nd) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory at line %zu", r->path, r->line);
            r->doc = nd;
            r->doc_cap = nc;
        }
        if (r->doc_n) r->doc[r->doc_n++] = '\n';
        memcpy(r->doc + r->doc_n, p, n);
        r->doc_n += n;
    }
    if (!r->doc_n) return 0;
    r->doc[r->doc_n] = '\0';
    *text = r->doc;
    *len = r->doc_n;
    return 1;
}

int drd_next(drd *r, const char **text, size_t *len, int *malformed, size_t *line, cpt_err *err) {
    *malformed = DRD_OK;
    if (r->blank) return next_paragraph(r, text, len, line, err);
    if (!r->jsonl) {
        if (r->done_txt) return 0;
        size_t n = 0;
        int rc = fill_line(r, &n, 1, err);
        if (rc < 0) return rc;
        r->done_txt = 1;
        if (n == 0) return 0; /* an empty file holds no document (prepare counts it) */
        r->buf[r->pos + n] = '\0'; /* cap - end >= 1 is kept by raw_read's -1 */
        *text = r->buf + r->pos;
        *len = n;
        *line = 1;
        return 1;
    }
    for (;;) {
        size_t n;
        int rc = fill_line(r, &n, 0, err);
        if (rc <= 0) return rc;
        r->line++;
        const char *p = r->buf + r->pos;
        r->pos += n + (r->pos + n < r->end); /* skip the newline */
        size_t a = 0, b = n;
        while (a < b && (p[a] == ' ' || p[a] == '\t' || p[a] == '\r')) a++;
        while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t' || p[b - 1] == '\r')) b--;
        if (a == b) continue; /* blank line: not a document */
        *line = r->line;
        if (r->raw_lines) {
            *text = p + a;
            *len = b - a;
            return 1;
        }
        json_decref(r->js);
        json_error_t je;
        r->js = json_loadb(p + a, b - a, JSON_REJECT_DUPLICATES, &je);
        json_t *t = r->js && json_is_object(r->js) ? json_object_get(r->js, r->field) : NULL;
        if (!t || !json_is_string(t)) {
            *malformed = r->js && json_is_object(r->js)            ? DRD_NO_FIELD
                         : !r->js && json_error_code(&je) == json_error_invalid_utf8 ? DRD_BAD_UTF8
                                                                                   : DRD_BAD_JSON;
            *text = "";
            *len = 0;
            return 1;
        }
        *text = json_string_value(t);
        *len = json_string_length(t);
        return 1;
    }
}
