/* checkpoint.c: atomic save/load of complete training state (see cpt/checkpoint.h). */
#define _XOPEN_SOURCE 700
#include "cpt/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "cpt/fileio.h"
#include "cpt/safetensors.h"

void cpt_ckpt_state_free(cpt_ckpt_state *s) {
    free(s->trainer_json);
    free(s->recipe_text);
    s->trainer_json = s->recipe_text = NULL;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

static void rm_rf(const char *path) { nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

/* CRC32 of a whole file, read through a fixed 1 MiB buffer. Not through a mapping: the
 * mapped pages of the file would count in the process's resident memory while the CRC
 * runs, and optim.safetensors is 8 bytes per parameter, a transient as large as the
 * AdamW moments on top of everything training holds (cpt/memplan.h does not plan it). */
static int file_crc(const char *path, unsigned long *crc, cpt_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return cpt_err_set(err, errno == ENOENT ? CPT_ENOTFOUND : CPT_EIO, "%s: cannot open: %s", path, strerror(errno));
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        fclose(f);
        return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory for the checksum buffer", path);
    }
    uLong c = crc32(0L, Z_NULL, 0);
    size_t r;
    while ((r = fread(buf, 1, CHUNK, f)) > 0) c = crc32(c, buf, (uInt)r);
    int bad = ferror(f);
    free(buf);
    fclose(f);
    if (bad) return cpt_err_set(err, CPT_EIO, "%s: read error while checksumming", path);
    *crc = c;
    return CPT_OK;
}

static int write_optim(const char *path, const cpt_model *m, const cpt_adamw *opt, cpt_err *err) {
    size_t n = (size_t)m->n_tensors * 2;
    cpt_st_wtensor *ts = calloc(n, sizeof *ts);
    char (*names)[112] = calloc(n, sizeof *names);
    if (!ts || !names) {
        free(ts), free(names);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const cpt_tensor *t = &m->tensors[i];
        for (int k = 0; k < 2; k++) {
            cpt_st_wtensor *w = &ts[2 * i + k];
            snprintf(names[2 * i + k], sizeof names[0], "%s.%s", k ? "exp_avg_sq" : "exp_avg", t->name);
            w->name = names[2 * i + k];
            w->dtype = CPT_DT_F32;
            w->ndim = t->ndim;
            w->shape[0] = t->shape[0];
            w->shape[1] = t->shape[1];
            w->src_f32 = (k ? opt->v : opt->m) + t->off;
        }
    }
    char stepbuf[32];
    snprintf(stepbuf, sizeof stepbuf, "%lld", opt->step);
    const char *meta[] = {"format", "cpt-adamw", "adam_step", stepbuf, NULL};
    int rc = cpt_st_write(path, ts, n, meta, err);
    free(ts);
    free(names);
    return rc;
}

static int write_state(const char *path, const cpt_ckpt_state *st, const cpt_adamw *opt, unsigned long crc_model,
                       unsigned long crc_optim, cpt_err *err) {
    json_t *o = json_object();
    json_object_set_new(o, "format", json_string("cpt-checkpoint"));
    json_object_set_new(o, "version", json_integer(1));
    json_object_set_new(o, "step", json_integer(st->step));
    json_object_set_new(o, "adam_step", json_integer(opt ? opt->step : 0));
    json_object_set_new(o, "tokens", json_integer(st->tokens));
    json_t *src = json_object();
    for (int i = 0; i < st->n_sources; i++) json_object_set_new(src, st->source_names[i], json_integer(st->source_tokens[i]));
    json_object_set_new(o, "source_tokens", src);
    json_object_set_new(o, "crc32_model", json_integer((json_int_t)crc_model));
    json_object_set_new(o, "crc32_optim", json_integer((json_int_t)crc_optim));
    json_t *tj = NULL;
    if (st->trainer_json) {
        json_error_t je;
        tj = json_loads(st->trainer_json, 0, &je);
        if (!tj) {
            json_decref(o);
            return cpt_err_set(err, CPT_EINVAL, "checkpoint: trainer state is not valid JSON: %s", je.text);
        }
    }
    json_object_set_new(o, "trainer", tj ? tj : json_object());
    json_object_set_new(o, "recipe", json_string(st->recipe_text ? st->recipe_text : ""));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (!s) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    int rc = cpt_write_file_atomic(path, s, strlen(s), err);
    free(s);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted list of "step-*" directory names (zero-padded, so they sort by step). */
static void list_ckpts(const char *cdir, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(cdir);
    if (!d) return;
    struct dirent *e;
    int cap = 0;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "step-", 5) != 0) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nl = realloc(*out, sizeof(char *) * (size_t)cap);
            if (!nl) break;
            *out = nl;
        }
        (*out)[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (*n) qsort(*out, (size_t)*n, sizeof(char *), cmp_str);
}

int cpt_ckpt_save(const char *run_dir, const cpt_model *m, const cpt_adamw *opt, const cpt_ckpt_state *st,
                  int keep_last, const char *const *keep, char **out_dir, cpt_err *err) {
    char cdir[4096], tmp[4400], fin[4400], path[4600];
    if (opt && (opt->off != 0 || opt->n != m->n_params))
        return cpt_err_set(err, CPT_EINVAL, "checkpoint of %s: the optimizer state is a shard [%zu, %zu) of %zu parameters. HINT: "
                           "gather the ZeRO-1 shards first (cpt_zero_gather_state)", run_dir, opt->off, opt->off + opt->n, m->n_params);
    snprintf(cdir, sizeof cdir, "%s/checkpoints", run_dir);
    int rc = cpt_mkdirs(cdir, err);
    if (rc) return rc;
    /* Remove leftovers of interrupted saves. */
    DIR *d = opendir(cdir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (!strncmp(e->d_name, ".tmp-", 5)) {
                snprintf(tmp, sizeof tmp, "%s/%s", cdir, e->d_name);
                rm_rf(tmp);
            }
        closedir(d);
    }
    snprintf(tmp, sizeof tmp, "%s/.tmp-step-%08lld-%ld", cdir, st->step, (long)getpid());
    snprintf(fin, sizeof fin, "%s/step-%08lld", cdir, st->step);
    if ((rc = cpt_mkdirs(tmp, err))) return rc;
    unsigned long crc_m = 0, crc_o = 0;
    rc = cpt_model_save_hf(m, tmp, CPT_DT_F32, 0, NULL, err);
    if (!rc) {
        snprintf(path, sizeof path, "%s/model.safetensors", tmp);
        rc = file_crc(path, &crc_m, err);
    }
    if (!rc && opt) {
        snprintf(path, sizeof path, "%s/optim.safetensors", tmp);
        rc = write_optim(path, m, opt, err);
        if (!rc) rc = file_crc(path, &crc_o, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/trainer_state.json", tmp);
        rc = write_state(path, st, opt, crc_m, crc_o, err);
    }
    if (!rc) rc = cpt_fsync_dir(tmp, err);
    if (!rc) {
        rm_rf(fin); /* a re-save of the same step replaces it */
        if (rename(tmp, fin) != 0) rc = cpt_err_set(err, CPT_EIO, "%s: cannot rename to %s", tmp, fin);
    }
    if (!rc) rc = cpt_fsync_dir(cdir, err);
    if (rc) {
        rm_rf(tmp);
        return cpt_err_wrap(err, "saving checkpoint of step %lld in %s (the previous checkpoints are intact)", st->step, cdir);
    }
    if (keep_last > 0) {
        char **names;
        int n;
        list_ckpts(cdir, &names, &n);
        for (int i = 0; i < n - keep_last; i++) {
            int protect = 0;
            snprintf(path, sizeof path, "%s/%s", cdir, names[i]);
            for (const char *const *k = keep; k && *k; k++)
                if (!strcmp(*k, path) || !strcmp(*k, names[i])) protect = 1;
            if (!protect) rm_rf(path);
        }
        for (int i = 0; i < n; i++) free(names[i]);
        free(names);
    }
    if (out_dir) *out_dir = strdup(fin);
    return CPT_OK;
}

static int read_into(const cpt_st_file *f, const cpt_tensor *t, const char *prefix, float *dst, const char *path,
                     cpt_err *err) {
    char name[128];
    snprintf(name, sizeof name, "%s%s", prefix, t->name);
    const cpt_st_tensor *s = cpt_st_find(f, name);
    if (!s)
        return cpt_err_set(err, CPT_EFORMAT, "%s: tensor '%s' is missing. HINT: the checkpoint belongs to a different model", path, name);
    if (s->numel != t->numel || s->ndim != t->ndim || s->shape[0] != t->shape[0])
        return cpt_err_set(err, CPT_EFORMAT, "%s: tensor '%s' has a different shape than the model. HINT: the checkpoint belongs to a different model", path, name);
    return cpt_st_read_f32(f, s, dst, err);
}

int cpt_ckpt_load(const char *dir, cpt_model *m, cpt_adamw *opt, cpt_ckpt_state *st, cpt_err *err) {
    char path[4400];
    memset(st, 0, sizeof *st);
    if (opt && (opt->off != 0 || opt->n != m->n_params))
        return cpt_err_set(err, CPT_EINVAL, "checkpoint of %s: the optimizer state is a shard [%zu, %zu) of %zu parameters. HINT: "
                           "load into a full-size state and take the slice (cpt_zero_load_state)", dir, opt->off, opt->off + opt->n, m->n_params);
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    json_error_t je;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!o) return cpt_err_set(err, CPT_EFORMAT, "%s: cannot read: %s (line %d)", path, je.text, je.line);
    const char *fmt = json_string_value(json_object_get(o, "format"));
    if (!fmt || strcmp(fmt, "cpt-checkpoint") != 0) {
        json_decref(o);
        return cpt_err_set(err, CPT_EFORMAT, "%s: not a cpt checkpoint state (field \"format\")", path);
    }
    int rc = CPT_OK;
    st->step = json_integer_value(json_object_get(o, "step"));
    st->tokens = json_integer_value(json_object_get(o, "tokens"));
    long long adam_step = json_integer_value(json_object_get(o, "adam_step"));
    unsigned long want_m = (unsigned long)json_integer_value(json_object_get(o, "crc32_model"));
    unsigned long want_o = (unsigned long)json_integer_value(json_object_get(o, "crc32_optim"));
    json_t *src = json_object_get(o, "source_tokens");
    const char *k;
    json_t *v;
    json_object_foreach(src, k, v) {
        if (st->n_sources >= CPT_CKPT_MAX_SOURCES) break;
        snprintf(st->source_names[st->n_sources], sizeof st->source_names[0], "%s", k);
        st->source_tokens[st->n_sources++] = json_integer_value(v);
    }
    json_t *tj = json_object_get(o, "trainer");
    st->trainer_json = tj ? json_dumps(tj, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17)) : NULL;
    const char *rt = json_string_value(json_object_get(o, "recipe"));
    st->recipe_text = rt ? strdup(rt) : NULL;
    json_decref(o);

    unsigned long crc = 0;
    cpt_st_file *f = NULL;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if ((rc = file_crc(path, &crc, err))) goto fail;
    if (crc != want_m) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: checksum mismatch (CRC32 %08lx, expected %08lx): the file is corrupt. HINT: resume from an earlier checkpoint", path, crc, want_m);
        goto fail;
    }
    if ((rc = cpt_st_open(&f, path, err))) goto fail;
    for (int i = 0; i < m->n_tensors && !rc; i++) rc = read_into(f, &m->tensors[i], "", m->params + m->tensors[i].off, path, err);
    cpt_st_close(f);
    if (rc) goto fail;
    if (opt) {
        snprintf(path, sizeof path, "%s/optim.safetensors", dir);
        if ((rc = file_crc(path, &crc, err))) goto fail;
        if (crc != want_o) {
            rc = cpt_err_set(err, CPT_EFORMAT, "%s: checksum mismatch (CRC32 %08lx, expected %08lx): the file is corrupt. HINT: resume from an earlier checkpoint", path, crc, want_o);
            goto fail;
        }
        if ((rc = cpt_st_open(&f, path, err))) goto fail;
        for (int i = 0; i < m->n_tensors && !rc; i++) {
            rc = read_into(f, &m->tensors[i], "exp_avg.", opt->m + m->tensors[i].off, path, err);
            if (!rc) rc = read_into(f, &m->tensors[i], "exp_avg_sq.", opt->v + m->tensors[i].off, path, err);
        }
        cpt_st_close(f);
        if (rc) goto fail;
        opt->step = adam_step;
    }
    return CPT_OK;
fail:
    cpt_ckpt_state_free(st);
    return rc;
}

int cpt_ckpt_latest(const char *run_dir, char **out, cpt_err *err) {
    char cdir[4096], path[4400];
    *out = NULL;
    snprintf(cdir, sizeof cdir, "%s/checkpoints", run_dir);
    char **names;
    int n;
    list_ckpts(cdir, &names, &n);
    for (int i = n - 1; i >= 0 && !*out; i--) {
        int ok = 1;
        static const char *need[] = {"trainer_state.json", "model.safetensors", "config.json"};
        for (int j = 0; j < 3; j++) {
            snprintf(path, sizeof path, "%s/%s/%s", cdir, names[i], need[j]);
            ok &= cpt_is_file(path);
        }
        if (ok) {
            snprintf(path, sizeof path, "%s/%s", cdir, names[i]);
            *out = strdup(path);
        }
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    if (!*out) return cpt_err_set(err, CPT_ENOTFOUND, "%s: no complete checkpoint found. HINT: start without --resume", cdir);
    return CPT_OK;
}
