/* fileio.c: mmap'ed reads, whole-file reads and atomic (tmp+fsync+rename) writes. */
#include "cpt/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int cpt_map_open(cpt_map *m, const char *path, cpt_err *err) {
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cpt_err_set(err, errno == ENOENT ? CPT_ENOTFOUND : CPT_EIO, "%s: cannot open: %s",
                           path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return cpt_err_set(err, CPT_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return cpt_err_set(err, CPT_EIO, "%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return cpt_err_set(err, CPT_EIO, "%s: cannot mmap %lld bytes: %s", path,
                               (long long)st.st_size, strerror(e));
        }
        m->data = p;
        m->size = (size_t)st.st_size;
    }
    close(fd);
    return CPT_OK;
}

void cpt_map_close(cpt_map *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

int cpt_read_file(const char *path, char **out, size_t *size, cpt_err *err) {
    *out = NULL;
    if (size) *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cpt_err_set(err, errno == ENOENT ? CPT_ENOTFOUND : CPT_EIO, "%s: cannot open: %s",
                           path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory reading file", path);
    }
    for (;;) {
        if (n == cap) {
            size_t ncap;
            if (!cpt_mul_size(cap, 2, &ncap)) break;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory reading file", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return cpt_err_set(err, CPT_EIO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    if (size) *size = n;
    return CPT_OK;
}

int cpt_fwrite_all(FILE *f, const void *p, size_t n, const char *path, cpt_err *err) {
    if (n == 0) return CPT_OK;
    if (fwrite(p, 1, n, f) != n)
        return cpt_err_set(err, CPT_EIO, "%s: write failed: %s. HINT: check free disk space",
                           path, strerror(errno));
    return CPT_OK;
}

int cpt_fsync_dir(const char *dir, cpt_err *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return cpt_err_set(err, CPT_EIO, "%s: cannot open directory: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL)
        return cpt_err_set(err, CPT_EIO, "%s: fsync failed: %s", dir, strerror(e));
    return CPT_OK;
}

int cpt_awrite_open(cpt_awrite *w, const char *path, cpt_err *err) {
    memset(w, 0, sizeof *w);
    size_t n = strlen(path) + 32;
    w->path = strdup(path);
    w->tmp = malloc(n);
    if (!w->path || !w->tmp) {
        cpt_awrite_abort(w);
        return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", path);
    }
    snprintf(w->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        int e = errno;
        cpt_err_set(err, CPT_EIO, "%s: cannot create: %s. HINT: check that the directory exists and is writable",
                    w->tmp, strerror(e));
        free(w->path);
        free(w->tmp);
        memset(w, 0, sizeof *w);
        return CPT_EIO;
    }
    return CPT_OK;
}

void cpt_awrite_abort(cpt_awrite *w) {
    if (w->f) fclose(w->f);
    if (w->tmp) unlink(w->tmp);
    free(w->path);
    free(w->tmp);
    memset(w, 0, sizeof *w);
}

int cpt_awrite_commit(cpt_awrite *w, cpt_err *err) {
    int rc = CPT_OK;
    if (fflush(w->f) != 0 || ferror(w->f)) {
        rc = cpt_err_set(err, CPT_EIO, "%s: write failed: %s. HINT: check free disk space", w->tmp,
                         strerror(errno));
    } else if (fsync(fileno(w->f)) != 0) {
        rc = cpt_err_set(err, CPT_EIO, "%s: fsync failed: %s", w->tmp, strerror(errno));
    }
    if (fclose(w->f) != 0 && rc == CPT_OK)
        rc = cpt_err_set(err, CPT_EIO, "%s: close failed: %s. HINT: check free disk space", w->tmp,
                         strerror(errno));
    w->f = NULL;
    if (rc == CPT_OK && rename(w->tmp, w->path) != 0)
        rc = cpt_err_set(err, CPT_EIO, "%s: rename to %s failed: %s", w->tmp, w->path, strerror(errno));
    if (rc != CPT_OK) {
        cpt_awrite_abort(w);
        return rc;
    }
    char *d = strdup(w->path);
    if (d) {
        rc = cpt_fsync_dir(dirname(d), err);
        free(d);
    }
    free(w->path);
    free(w->tmp);
    memset(w, 0, sizeof *w);
    return rc;
}

int cpt_write_file_atomic(const char *path, const void *data, size_t n, cpt_err *err) {
    cpt_awrite w;
    int rc = cpt_awrite_open(&w, path, err);
    if (rc) return rc;
    rc = cpt_fwrite_all(w.f, data, n, w.tmp, err);
    if (rc) {
        cpt_awrite_abort(&w);
        return rc;
    }
    return cpt_awrite_commit(&w, err);
}

int cpt_mkdirs(const char *path, cpt_err *err) {
    char *p = strdup(path);
    if (!p) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    size_t n = strlen(p);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == '\0') {
            char c = p[i];
            p[i] = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                int e = errno;
                cpt_err_set(err, CPT_EIO, "%s: cannot create directory: %s", p, strerror(e));
                free(p);
                return CPT_EIO;
            }
            p[i] = c;
        }
    }
    free(p);
    if (!cpt_is_dir(path)) return cpt_err_set(err, CPT_EIO, "%s: exists and is not a directory", path);
    return CPT_OK;
}

int cpt_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int cpt_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *cpt_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, dir, a);
    size_t k = a;
    if (a > 0 && dir[a - 1] != '/') s[k++] = '/';
    memcpy(s + k, name, b + 1);
    return s;
}
