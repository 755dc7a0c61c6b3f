/* cpt/fileio.h: reading, memory-mapping and atomically writing files.
 *
 * Every function reports failures through cpt_err with the path and the OS reason.
 * Atomic writes follow the SQLite/Redis discipline: write "<path>.tmp.<pid>",
 * fsync it, rename over <path>, fsync the directory. A crash at any point leaves
 * either the old file or the new one, never a torn file.
 */
#ifndef CPT_FILEIO_H
#define CPT_FILEIO_H

#include <stdio.h>

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A read-only view of a whole file (mmap'ed; empty files give data=NULL, size=0). */
typedef struct cpt_map {
    const uint8_t *data;
    size_t size;
} cpt_map;

int cpt_map_open(cpt_map *m, const char *path, cpt_err *err);
void cpt_map_close(cpt_map *m);

/* Read a whole file into a NUL-terminated malloc'ed buffer (*size excludes the NUL). */
int cpt_read_file(const char *path, char **out, size_t *size, cpt_err *err);

/* Atomic writer. Usage: cpt_awrite_open -> fwrite to w.f -> cpt_awrite_commit
 * (or cpt_awrite_abort on any failure, which removes the temp file). */
typedef struct cpt_awrite {
    FILE *f;
    char *path;
    char *tmp;
} cpt_awrite;

int cpt_awrite_open(cpt_awrite *w, const char *path, cpt_err *err);
int cpt_awrite_commit(cpt_awrite *w, cpt_err *err);
void cpt_awrite_abort(cpt_awrite *w);

/* Write `n` bytes, reporting short writes (e.g. a full disk) with the path. */
int cpt_fwrite_all(FILE *f, const void *p, size_t n, const char *path, cpt_err *err);

/* Whole-buffer atomic write. */
int cpt_write_file_atomic(const char *path, const void *data, size_t n, cpt_err *err);

/* mkdir -p (mode 0755). */
int cpt_mkdirs(const char *path, cpt_err *err);

/* 1 if path exists and is a directory / a regular file. */
int cpt_is_dir(const char *path);
int cpt_is_file(const char *path);

/* Join "dir/name" into a malloc'ed string (NULL on OOM). */
char *cpt_path_join(const char *dir, const char *name);

/* fsync a directory so a rename inside it is durable. */
int cpt_fsync_dir(const char *dir, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif
