/* inputs.c: expands prepare's command-line inputs (files, directories, globs) into a sorted file list; reads nothing. */
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cpt/fileio.h"
#include "cpt/prepare.h"

typedef struct flist {
    char **v;
    size_t n, cap;
} flist;

static int fl_push(flist *l, char *s, cpt_err *err) { /* takes s */
    if (!s) return cpt_err_set(err, CPT_ENOMEM, "inputs: out of memory");
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 64;
        char **nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) {
            free(s);
            return cpt_err_set(err, CPT_ENOMEM, "inputs: out of memory");
        }
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = s;
    return CPT_OK;
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

static int corpus_name(const char *name) {
    static const char *const ext[] = {".txt", ".jsonl", ".txt.gz", ".jsonl.gz", ".txt.zst", ".jsonl.zst"};
    if (name[0] == '.') return 0;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (ends_with(name, ext[i])) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Depth-limited so a symlink loop ends in an error instead of a stack overflow. */
static int walk(const char *dir, int depth, flist *l, cpt_err *err) {
    if (depth > 64)
        return cpt_err_set(err, CPT_EINVAL, "%s: directories nested more than 64 deep. HINT: a symlink loop?", dir);
    DIR *d = opendir(dir);
    if (!d) return cpt_err_set(err, CPT_EIO, "%s: cannot open directory: %s", dir, strerror(errno));
    int rc = CPT_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue; /* ".", "..", hidden files and directories */
        char *p = cpt_path_join(dir, e->d_name);
        if (!p) {
            rc = cpt_err_set(err, CPT_ENOMEM, "inputs: out of memory");
            break;
        }
        if (cpt_is_dir(p)) {
            rc = walk(p, depth + 1, l, err);
            free(p);
        } else if (cpt_is_file(p) && corpus_name(e->d_name)) {
            rc = fl_push(l, p, err);
        } else {
            free(p);
        }
    }
    closedir(d);
    return rc;
}

static int add_path(const char *p, flist *l, cpt_err *err) {
    if (cpt_is_dir(p)) {
        size_t first = l->n;
        int rc = walk(p, 0, l, err);
        if (!rc) qsort(l->v + first, l->n - first, sizeof *l->v, cmp_str);
        return rc;
    }
    if (!cpt_is_file(p))
        return cpt_err_set(err, CPT_ENOTFOUND, "%s: no such file or directory. HINT: check the --input path", p);
    return fl_push(l, strdup(p), err);
}

int cpt_prepare_expand_inputs(const char *const *args, size_t n, char ***out, size_t *n_out, cpt_err *err) {
    *out = NULL;
    *n_out = 0;
    flist l = {0};
    int rc = CPT_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *a = args[i];
        if (!strpbrk(a, "*?[")) {
            rc = add_path(a, &l, err);
            continue;
        }
        glob_t g;
        memset(&g, 0, sizeof g);
        int gr = glob(a, 0, NULL, &g); /* results come sorted */
        if (gr == GLOB_NOMATCH)
            rc = cpt_err_set(err, CPT_ENOTFOUND, "%s: the pattern matches no file. HINT: quote the pattern or check it", a);
        else if (gr != 0)
            rc = cpt_err_set(err, gr == GLOB_NOSPACE ? CPT_ENOMEM : CPT_EIO, "%s: glob failed (%s)", a,
                             gr == GLOB_NOSPACE ? "out of memory" : "read error");
        for (size_t k = 0; !rc && k < g.gl_pathc; k++) rc = add_path(g.gl_pathv[k], &l, err);
        if (gr == 0) globfree(&g);
    }
    if (!rc && l.n == 0)
        rc = cpt_err_set(err, CPT_ENOTFOUND,
                         "inputs: no corpus file found. HINT: directories are searched for *.txt and *.jsonl "
                         "(optionally .gz / .zst)");
    if (rc) {
        cpt_prepare_free_inputs(l.v, l.n);
        return rc;
    }
    *out = l.v;
    *n_out = l.n;
    return CPT_OK;
}

void cpt_prepare_free_inputs(char **files, size_t n) {
    if (!files) return;
    for (size_t i = 0; i < n; i++) free(files[i]);
    free(files);
}

int cpt_prepare_file_kind(const char *path, int txt_blank) {
    static const char *const code[] = {".c", ".h", ".cc", ".cpp", ".hpp", ".py", ".js", ".ts", ".java",
                                       ".go", ".rs", ".rb", ".sh", ".cs", ".kt", ".swift", ".scala", ".lua",
                                       ".php", ".pl", ".r", ".jl", ".sql", ".hs", ".ml", ".cu"};
    size_t n = strlen(path);
    if (ends_with(path, ".gz")) n -= 3;
    else if (ends_with(path, ".zst")) n -= 4;
    for (size_t i = 0; i < sizeof code / sizeof *code; i++) {
        size_t m = strlen(code[i]);
        if (n > m && !strncmp(path + n - m, code[i], m) && path[n - m - 1] != '/') return CPT_KIND_CODE;
    }
    if (n >= 6 && !strncmp(path + n - 6, ".jsonl", 6)) return CPT_KIND_AUTO;
    return txt_blank ? CPT_KIND_AUTO : CPT_KIND_BOOK;
}
