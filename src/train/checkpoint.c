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

#include "cpt/comm.h"
#include "cpt/fileio.h"
#include "cpt/lora.h"
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

/* Remove the checkpoint directory cdir/name so that no reader ever sees half of it: rename
 * it to a ".tmp-" name first (atomic; ckpt_begin clears such leftovers if the process dies
 * here), then delete the files. Deleting in place would, when killed part way, leave a
 * step-N with its model but no optimizer state, which cpt_ckpt_latest would pick. */
static void retire_ckpt(const char *cdir, const char *name) {
    char from[4400], to[4500];
    snprintf(from, sizeof from, "%s/%s", cdir, name);
    snprintf(to, sizeof to, "%s/.tmp-retired-%s-%ld", cdir, name, (long)getpid());
    if (rename(from, to) == 0) rm_rf(to);
    else if (errno != ENOENT) rm_rf(from);
}

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
                       unsigned long crc_optim, json_t *shards, const cpt_model *m, cpt_err *err) {
    json_t *o = json_object();
    json_object_set_new(o, "format", json_string("cpt-checkpoint"));
    json_object_set_new(o, "version", json_integer(1));
    json_object_set_new(o, "step", json_integer(st->step));
    json_object_set_new(o, "adam_step", json_integer(opt ? opt->step : 0));
    json_object_set_new(o, "tokens", json_integer(st->tokens));
    json_t *src = json_object();
    for (int i = 0; i < st->n_sources; i++) json_object_set_new(src, st->source_names[i], json_integer(st->source_tokens[i]));
    json_object_set_new(o, "source_tokens", src);
    /* what the weights file is: the model (HF directory) or a LoRA adapter (PEFT directory) */
    json_object_set_new(o, "weights", json_string(m->adapter ? "peft-adapter" : "hf-model"));
    json_object_set_new(o, "crc32_model", json_integer((json_int_t)crc_model));
    json_object_set_new(o, "crc32_optim", json_integer((json_int_t)crc_optim));
    if (shards) {
        /* Sharded optimizer state (ZeRO-1): each file holds the flat range [offset, offset
         * + count) of the parameter buffer; "parameters" says where every tensor lies in
         * it, so any slice (another number of ranks) or the whole can be read back. */
        json_object_set_new(o, "optim_format", json_string("sharded"));
        json_object_set(o, "optim_shards", shards);
        json_t *ps = json_array();
        for (int i = 0; i < m->n_tensors; i++) {
            const cpt_tensor *t = &m->tensors[i];
            json_t *e = json_object(), *sh = json_array();
            for (int d = 0; d < t->ndim; d++) json_array_append_new(sh, json_integer(t->shape[d]));
            json_object_set_new(e, "name", json_string(t->name));
            json_object_set_new(e, "shape", sh);
            json_object_set_new(e, "offset", json_integer((json_int_t)t->off));
            json_array_append_new(ps, e);
        }
        json_object_set_new(o, "parameters", ps);
        json_object_set_new(o, "n_params", json_integer((json_int_t)m->n_params));
    }
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

/* Make <run_dir>/checkpoints and an empty temporary directory for step's checkpoint in
 * it, removing leftovers of interrupted saves. */
static int ckpt_begin(const char *run_dir, long long step, char *cdir, size_t cn, char *tmp, size_t tn, cpt_err *err) {
    snprintf(cdir, cn, "%s/checkpoints", run_dir);
    int rc = cpt_mkdirs(cdir, err);
    if (rc) return rc;
    DIR *d = opendir(cdir);
    if (d) {
        struct dirent *e;
        char p[4400];
        while ((e = readdir(d)))
            if (!strncmp(e->d_name, ".tmp-", 5)) {
                snprintf(p, sizeof p, "%s/%s", cdir, e->d_name);
                rm_rf(p);
            }
        closedir(d);
    }
    snprintf(tmp, tn, "%s/.tmp-step-%08lld-%ld", cdir, step, (long)getpid());
    return cpt_mkdirs(tmp, err);
}

/* Write the model and the state into tmp (the optimizer file(s) are there already:
 * crc_o of optim.safetensors, or the shards' description), fsync, rename it to
 * step-N atomically, and prune old checkpoints. On failure tmp is removed and the
 * previous checkpoints are intact. */
static int ckpt_commit(const char *cdir, const char *tmp, const cpt_model *m, const cpt_adamw *opt, unsigned long crc_o,
                       json_t *shards, const cpt_ckpt_state *st, int keep_last, const char *const *keep, char **out_dir,
                       cpt_err *err) {
    char fin[4400], path[4600];
    snprintf(fin, sizeof fin, "%s/step-%08lld", cdir, st->step);
    unsigned long crc_m = 0;
    /* A LoRA run's checkpoint is a PEFT adapter directory (PeftModel.from_pretrained loads
     * it onto the base model) plus the optimizer and trainer state. */
    /* a view of the trained range (cpt_model_view_range): the whole model's weights */
    int rc = m->adapter   ? cpt_lora_save_peft(m->adapter, tmp, NULL, err)
             : m->view_of ? cpt_model_save_hf(m->view_of, tmp, CPT_DT_F32, 0, NULL, err)
                          : cpt_model_save_hf(m, tmp, CPT_DT_F32, 0, NULL, err);
    if (!rc) {
        snprintf(path, sizeof path, "%s/%s", tmp, m->adapter ? "adapter_model.safetensors" : "model.safetensors");
        rc = file_crc(path, &crc_m, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/trainer_state.json", tmp);
        rc = write_state(path, st, opt, crc_m, crc_o, shards, m, err);
    }
    if (!rc) rc = cpt_fsync_dir(tmp, err);
    if (!rc) {
        retire_ckpt(cdir, strrchr(fin, '/') + 1); /* a re-save of the same step replaces it */
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
            if (!protect) retire_ckpt(cdir, names[i]);
        }
        for (int i = 0; i < n; i++) free(names[i]);
        free(names);
    }
    if (out_dir) *out_dir = strdup(fin);
    return CPT_OK;
}

int cpt_ckpt_save(const char *run_dir, const cpt_model *m, const cpt_adamw *opt, const cpt_ckpt_state *st,
                  int keep_last, const char *const *keep, char **out_dir, cpt_err *err) {
    char cdir[4096], tmp[4400], path[4600];
    if (opt && (opt->off != 0 || opt->n != m->n_params))
        return cpt_err_set(err, CPT_EINVAL, "checkpoint of %s: the optimizer state is a shard [%zu, %zu) of %zu parameters. HINT: "
                           "save it with cpt_ckpt_save_sharded, or gather the ZeRO-1 shards first (cpt_zero_gather_state)", run_dir,
                           opt->off, opt->off + opt->n, m->n_params);
    int rc = ckpt_begin(run_dir, st->step, cdir, sizeof cdir, tmp, sizeof tmp, err);
    if (rc) return rc;
    unsigned long crc_o = 0;
    if (opt) {
        snprintf(path, sizeof path, "%s/optim.safetensors", tmp);
        rc = write_optim(path, m, opt, err);
        if (!rc) rc = file_crc(path, &crc_o, err);
        if (rc) {
            rm_rf(tmp);
            return cpt_err_wrap(err, "saving checkpoint of step %lld in %s (the previous checkpoints are intact)", st->step, cdir);
        }
    }
    return ckpt_commit(cdir, tmp, m, opt, crc_o, NULL, st, keep_last, keep, out_dir, err);
}

/* One rank's shard file: the flat moments of [off, off + n) as tensors exp_avg and
 * exp_avg_sq, with the range in the metadata. */
static int write_shard(const char *path, const cpt_model *m, const cpt_adamw *sh, cpt_err *err) {
    cpt_st_wtensor ts[2] = {{"exp_avg", CPT_DT_F32, 1, {(int64_t)sh->n, 0}, sh->m, NULL},
                            {"exp_avg_sq", CPT_DT_F32, 1, {(int64_t)sh->n, 0}, sh->v, NULL}};
    char off[32], cnt[32], np[32], stp[32];
    snprintf(off, sizeof off, "%zu", sh->off), snprintf(cnt, sizeof cnt, "%zu", sh->n);
    snprintf(np, sizeof np, "%zu", m->n_params), snprintf(stp, sizeof stp, "%lld", sh->step);
    const char *meta[] = {"format", "cpt-adamw-shard", "offset", off, "count", cnt, "n_params", np, "adam_step", stp, NULL};
    return cpt_st_write(path, ts, 2, meta, err);
}

int cpt_ckpt_save_sharded(const char *run_dir, const cpt_model *m, cpt_comm *c, const cpt_adamw *shard,
                          const cpt_ckpt_state *st, int keep_last, const char *const *keep, char **out_dir, cpt_err *err) {
    char cdir[4096], path[4600];
    struct {
        int rc;
        char tmp[4400];
    } hd;
    memset(&hd, 0, sizeof hd);
    int W = c->size, R = c->rank;
    cpt_err e0 = {0};
    /* 1. rank 0 makes the temporary directory; everyone learns its name */
    if (R == 0) hd.rc = ckpt_begin(run_dir, st->step, cdir, sizeof cdir, hd.tmp, sizeof hd.tmp, err);
    else snprintf(cdir, sizeof cdir, "%s/checkpoints", run_dir);
    int rc = c->broadcast(c, &hd, sizeof hd, 0, &e0);
    if (rc) return cpt_err_set(err, rc, "sharded checkpoint of step %lld: %s", st->step, e0.msg);
    if (hd.rc) return R == 0 ? hd.rc : cpt_err_set(err, hd.rc, "sharded checkpoint of step %lld: rank 0 could not create its directory in %s", st->step, cdir);
    /* 2. every rank writes its shard, in parallel */
    char name[64];
    snprintf(name, sizeof name, "optim-%05d-of-%05d.safetensors", R, W);
    snprintf(path, sizeof path, "%s/%s", hd.tmp, name);
    unsigned long crc = 0;
    cpt_err ew = {0};
    int wrc = write_shard(path, m, shard, &ew);
    if (!wrc) wrc = file_crc(path, &crc, &ew);
    /* 3. who failed, and the checksums: one float64 all-reduce */
    double *vec = calloc((size_t)W * 4, sizeof(double));
    if (!vec) return cpt_err_set(err, CPT_ENOMEM, "out of memory"); /* the others wait: the caller aborts the job */
    vec[4 * R] = wrc ? 1 : 0, vec[4 * R + 1] = (double)crc, vec[4 * R + 2] = (double)shard->off, vec[4 * R + 3] = (double)shard->n;
    if ((rc = c->allreduce_sum_f64(c, vec, (size_t)W * 4, &e0))) {
        free(vec);
        return cpt_err_set(err, rc, "sharded checkpoint of step %lld: %s", st->step, e0.msg);
    }
    int bad = -1;
    for (int r = 0; r < W && bad < 0; r++)
        if (vec[4 * r] != 0) bad = r;
    /* 4. rank 0 commits (model, state with the shards' description, atomic rename) */
    int crc_final = CPT_OK;
    if (R == 0) {
        if (bad >= 0) {
            rm_rf(hd.tmp);
            if (bad == 0) *err = ew;
            else cpt_err_set(err, CPT_EIO, "rank %d could not write its optimizer shard (its own message is in its log)", bad);
            crc_final = cpt_err_wrap(err, "saving checkpoint of step %lld in %s (the previous checkpoints are intact)", st->step, cdir);
        } else {
            json_t *arr = json_array();
            for (int r = 0; r < W; r++) {
                json_t *e = json_object();
                char nm[64];
                snprintf(nm, sizeof nm, "optim-%05d-of-%05d.safetensors", r, W);
                json_object_set_new(e, "file", json_string(nm));
                json_object_set_new(e, "rank", json_integer(r));
                json_object_set_new(e, "offset", json_integer((json_int_t)vec[4 * r + 2]));
                json_object_set_new(e, "count", json_integer((json_int_t)vec[4 * r + 3]));
                json_object_set_new(e, "crc32", json_integer((json_int_t)vec[4 * r + 1]));
                json_array_append_new(arr, e);
            }
            crc_final = ckpt_commit(cdir, hd.tmp, m, shard, 0, arr, st, keep_last, keep, out_dir, err);
            json_decref(arr);
        }
    }
    free(vec);
    /* 5. everyone learns the outcome */
    if ((rc = c->broadcast(c, &crc_final, sizeof crc_final, 0, &e0))) return cpt_err_set(err, rc, "sharded checkpoint of step %lld: %s", st->step, e0.msg);
    if (R != 0 && crc_final) {
        if (bad == R) *err = ew;
        else cpt_err_set(err, crc_final, "rank 0 could not commit the checkpoint of step %lld in %s", st->step, cdir);
    }
    if (R != 0 && !crc_final && out_dir) {
        char fin[4400];
        snprintf(fin, sizeof fin, "%s/step-%08lld", cdir, st->step);
        *out_dir = strdup(fin);
    }
    return crc_final;
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

/* The part of the flat range [src_off, src_off + src_n) that tensor `name` (prefix + t's
 * name, or prefix alone when t is NULL) of f holds, copied into dst, which holds the
 * range [dst_off, dst_off + dst_n). Read in place when the whole tensor falls inside,
 * else through a transient of the tensor's size (one tensor or one shard, never the
 * whole state). */
static int read_slice(const cpt_st_file *f, const cpt_tensor *t, const char *prefix, size_t src_off, size_t src_n, float *dst,
                      size_t dst_off, size_t dst_n, const char *path, cpt_err *err) {
    size_t lo = src_off > dst_off ? src_off : dst_off, hi = src_off + src_n < dst_off + dst_n ? src_off + src_n : dst_off + dst_n;
    if (lo >= hi) return CPT_OK;
    if (t && lo == src_off && hi == src_off + src_n) return read_into(f, t, prefix, dst + (src_off - dst_off), path, err);
    const cpt_st_tensor *s = NULL;
    if (t) {
        char name[128];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        if (!(s = cpt_st_find(f, name)) || s->numel != t->numel)
            return cpt_err_set(err, CPT_EFORMAT, "%s: tensor '%s' is missing or has another shape. HINT: the checkpoint belongs to a different model", path, name);
    } else if (!(s = cpt_st_find(f, prefix)) || (size_t)s->numel != src_n) {
        return cpt_err_set(err, CPT_EFORMAT, "%s: tensor '%s' is missing or does not hold its %zu values", path, prefix, src_n);
    }
    if (!t && lo == src_off && hi == src_off + src_n) return cpt_st_read_f32(f, s, dst + (src_off - dst_off), err);
    float *tmp = malloc(sizeof(float) * (src_n ? src_n : 1));
    if (!tmp) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory for %zu values of '%s'", path, src_n, s->name);
    int rc = cpt_st_read_f32(f, s, tmp, err);
    if (!rc) memcpy(dst + (lo - dst_off), tmp + (lo - src_off), sizeof(float) * (hi - lo));
    free(tmp);
    return rc;
}

/* The sharded optimizer state (cpt_ckpt_save_sharded): the shards must tile [0, n_params)
 * in order; those overlapping opt's slice are checksummed and read. */
static int load_shards(const char *dir, json_t *shards, size_t n_params, cpt_adamw *opt, cpt_err *err) {
    char path[4600];
    size_t next = 0, ns = json_array_size(shards);
    if (!json_is_array(shards) || ns == 0)
        return cpt_err_set(err, CPT_EFORMAT, "%s/trainer_state.json: \"optim_shards\" is not a list of shards", dir);
    for (size_t i = 0; i < ns; i++) {
        json_t *e = json_array_get(shards, i);
        const char *file = json_string_value(json_object_get(e, "file"));
        json_t *oj = json_object_get(e, "offset"), *cj = json_object_get(e, "count"), *kj = json_object_get(e, "crc32");
        if (!file || strchr(file, '/') || !json_is_integer(oj) || !json_is_integer(cj) || !json_is_integer(kj) ||
            json_integer_value(oj) != (json_int_t)next || json_integer_value(cj) < 0)
            return cpt_err_set(err, CPT_EFORMAT, "%s/trainer_state.json: optim_shards[%zu] is malformed or out of order (each needs file, offset = the previous end, count, crc32)",
                               dir, i);
        size_t off = next, cnt = (size_t)json_integer_value(cj);
        next = off + cnt;
        if (next > n_params)
            return cpt_err_set(err, CPT_EFORMAT, "%s/trainer_state.json: optim_shards[%zu] ends at %zu, past the %zu parameters", dir, i, next, n_params);
        if (off + cnt <= opt->off || off >= opt->off + opt->n) continue;
        snprintf(path, sizeof path, "%s/%s", dir, file);
        unsigned long crc = 0;
        int rc = file_crc(path, &crc, err);
        if (rc == CPT_ENOTFOUND) return cpt_err_wrap(err, "optimizer shard %zu of %zu is missing. HINT: resume from an earlier checkpoint", i, ns);
        if (rc) return rc;
        if (crc != (unsigned long)json_integer_value(kj))
            return cpt_err_set(err, CPT_EFORMAT, "%s: checksum mismatch (CRC32 %08lx, expected %08lx): the file is corrupt. HINT: resume from an earlier checkpoint",
                               path, crc, (unsigned long)json_integer_value(kj));
        cpt_st_file *f = NULL;
        if ((rc = cpt_st_open(&f, path, err))) return rc;
        const char *mo = cpt_st_metadata(f, "offset"), *mc = cpt_st_metadata(f, "count");
        if (!mo || !mc || strtoull(mo, NULL, 10) != off || strtoull(mc, NULL, 10) != cnt)
            rc = cpt_err_set(err, CPT_EFORMAT, "%s: its metadata range does not match trainer_state.json's [%zu, %zu)", path, off, off + cnt);
        if (!rc) rc = read_slice(f, NULL, "exp_avg", off, cnt, opt->m, opt->off, opt->n, path, err);
        if (!rc) rc = read_slice(f, NULL, "exp_avg_sq", off, cnt, opt->v, opt->off, opt->n, path, err);
        cpt_st_close(f);
        if (rc) return rc;
    }
    if (next != n_params)
        return cpt_err_set(err, CPT_EFORMAT, "%s/trainer_state.json: the optimizer shards cover %zu of %zu parameters", dir, next, n_params);
    return CPT_OK;
}

int cpt_ckpt_load(const char *dir, cpt_model *m, cpt_adamw *opt, cpt_ckpt_state *st, cpt_err *err) {
    char path[4400];
    memset(st, 0, sizeof *st);
    if (opt && (opt->off + opt->n > m->n_params))
        return cpt_err_set(err, CPT_EINVAL, "checkpoint of %s: the optimizer slice [%zu, %zu) is past the model's %zu parameters", dir,
                           opt->off, opt->off + opt->n, m->n_params);
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
    json_t *shards = json_object_get(o, "optim_shards");
    if (shards) json_incref(shards);
    const char *wk = json_string_value(json_object_get(o, "weights"));
    int is_adapter = wk && !strcmp(wk, "peft-adapter");
    json_t *npj = json_object_get(o, "n_params");
    long long np_saved = json_is_integer(npj) ? json_integer_value(npj) : -1;
    json_decref(o);

    unsigned long crc = 0;
    cpt_st_file *f = NULL;
    if (is_adapter != (m->adapter != NULL)) {
        rc = cpt_err_set(err, CPT_ESTATE, "%s: the checkpoint holds %s, but this run trains %s. HINT: %s", dir,
                         is_adapter ? "a LoRA adapter" : "full model weights", m->adapter ? "a LoRA adapter" : "the full model",
                         is_adapter ? "set the lora.* keys the run was made with (lora.rank > 0), or start a fresh run"
                                    : "resume without lora.* (lora.rank: 0), or start a fresh LoRA run from this checkpoint's model");
        goto fail;
    }
    snprintf(path, sizeof path, "%s/%s", dir, is_adapter ? "adapter_model.safetensors" : "model.safetensors");
    if ((rc = file_crc(path, &crc, err))) goto fail;
    if (crc != want_m) {
        rc = cpt_err_set(err, CPT_EFORMAT, "%s: checksum mismatch (CRC32 %08lx, expected %08lx): the file is corrupt. HINT: resume from an earlier checkpoint", path, crc, want_m);
        goto fail;
    }
    if (is_adapter) {
        if ((rc = cpt_lora_check_config(m->adapter, dir, err)) || (rc = cpt_lora_read_tensors(m->adapter, dir, err))) goto fail;
    } else {
        cpt_model *W = m->view_of ? m->view_of : m; /* a view: the whole model's weights */
        if ((rc = cpt_st_open(&f, path, err))) goto fail;
        for (int i = 0; i < W->n_tensors && !rc; i++) rc = read_into(f, &W->tensors[i], "", W->params + W->tensors[i].off, path, err);
        cpt_st_close(f);
        if (rc) goto fail;
    }
    if (opt) {
        if (shards) {
            if (np_saved != (long long)m->n_params) {
                rc = cpt_err_set(err, CPT_EFORMAT, "%s/trainer_state.json: the sharded optimizer state is for %lld parameters, the model has %zu. HINT: the checkpoint belongs to a different model",
                                 dir, np_saved, m->n_params);
                goto fail;
            }
            if ((rc = load_shards(dir, shards, m->n_params, opt, err))) goto fail;
        } else {
            snprintf(path, sizeof path, "%s/optim.safetensors", dir);
            if ((rc = file_crc(path, &crc, err))) goto fail;
            if (crc != want_o) {
                rc = cpt_err_set(err, CPT_EFORMAT, "%s: checksum mismatch (CRC32 %08lx, expected %08lx): the file is corrupt. HINT: resume from an earlier checkpoint", path, crc, want_o);
                goto fail;
            }
            if ((rc = cpt_st_open(&f, path, err))) goto fail;
            for (int i = 0; i < m->n_tensors && !rc; i++) {
                const cpt_tensor *t = &m->tensors[i];
                rc = read_slice(f, t, "exp_avg.", t->off, t->numel, opt->m, opt->off, opt->n, path, err);
                if (!rc) rc = read_slice(f, t, "exp_avg_sq.", t->off, t->numel, opt->v, opt->off, opt->n, path, err);
            }
            cpt_st_close(f);
            if (rc) goto fail;
        }
        opt->step = adam_step;
    }
    json_decref(shards);
    return CPT_OK;
fail:
    json_decref(shards);
    cpt_ckpt_state_free(st);
    return rc;
}

/* The optimizer state is there: one optim.safetensors, or sharded optim-R-of-W files. */
static int has_optim(const char *dir) {
    char p[4500];
    snprintf(p, sizeof p, "%s/optim.safetensors", dir);
    if (cpt_is_file(p)) return 1;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d))) found = !strncmp(e->d_name, "optim-", 6);
    closedir(d);
    return found;
}

int cpt_ckpt_latest(const char *run_dir, char **out, cpt_err *err) {
    char cdir[4096], path[4400];
    *out = NULL;
    snprintf(cdir, sizeof cdir, "%s/checkpoints", run_dir);
    char **names;
    int n;
    list_ckpts(cdir, &names, &n);
    for (int i = n - 1; i >= 0 && !*out; i--) {
        /* a model checkpoint, or a LoRA run's (PEFT adapter files) */
        int ok = 1, ok_a = 1;
        static const char *need[] = {"trainer_state.json", "model.safetensors", "config.json"};
        static const char *need_a[] = {"trainer_state.json", "adapter_model.safetensors", "adapter_config.json"};
        for (int j = 0; j < 3; j++) {
            snprintf(path, sizeof path, "%s/%s/%s", cdir, names[i], need[j]);
            ok &= cpt_is_file(path);
            snprintf(path, sizeof path, "%s/%s/%s", cdir, names[i], need_a[j]);
            ok_a &= cpt_is_file(path);
        }
        ok |= ok_a;
        snprintf(path, sizeof path, "%s/%s", cdir, names[i]);
        if (ok && !has_optim(path)) ok = 0;
        if (ok) {
            *out = strdup(path);
        }
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    if (!*out) return cpt_err_set(err, CPT_ENOTFOUND, "%s: no complete checkpoint found. HINT: start without --resume", cdir);
    return CPT_OK;
}

int cpt_ckpt_consolidate(const char *dir, int *n_shards, cpt_err *err) {
    char path[4400], sp[4600];
    *n_shards = 0;
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    json_error_t je;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!o) return cpt_err_set(err, CPT_EFORMAT, "%s: cannot read: %s (line %d). HINT: give a checkpoint directory (run/checkpoints/step-N)", path, je.text, je.line);
    json_t *shards = json_object_get(o, "optim_shards"), *ps = json_object_get(o, "parameters");
    json_t *npj = json_object_get(o, "n_params");
    if (!shards) {
        json_decref(o);
        return CPT_OK; /* already one file */
    }
    size_t np = json_is_integer(npj) && json_integer_value(npj) > 0 ? (size_t)json_integer_value(npj) : 0, nt = json_array_size(ps);
    if (!np || !json_is_array(ps) || nt == 0) {
        json_decref(o);
        return cpt_err_set(err, CPT_EFORMAT, "%s: a sharded state needs \"n_params\" and the \"parameters\" list", path);
    }
    cpt_adamw full = {0};
    full.n = np;
    full.m = malloc(sizeof(float) * np), full.v = malloc(sizeof(float) * np);
    cpt_st_wtensor *ts = calloc(2 * nt, sizeof *ts);
    char (*names)[128] = calloc(2 * nt, sizeof *names);
    int rc = CPT_OK;
    if (!full.m || !full.v || !ts || !names) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory for the %zu-parameter optimizer state", np);
    if (!rc) rc = load_shards(dir, shards, np, &full, err);
    size_t covered = 0;
    for (size_t i = 0; i < nt && !rc; i++) {
        json_t *e = json_array_get(ps, i), *sh = json_object_get(e, "shape");
        const char *nm = json_string_value(json_object_get(e, "name"));
        json_t *oj = json_object_get(e, "offset");
        size_t nd = json_array_size(sh), numel = 1;
        if (!nm || !json_is_integer(oj) || nd < 1 || nd > 2) {
            rc = cpt_err_set(err, CPT_EFORMAT, "%s: parameters[%zu] needs name, shape (1 or 2 dims) and offset", path, i);
            break;
        }
        for (int k = 0; k < 2; k++) {
            cpt_st_wtensor *w = &ts[2 * i + k];
            snprintf(names[2 * i + k], sizeof names[0], "%s.%s", k ? "exp_avg_sq" : "exp_avg", nm);
            w->name = names[2 * i + k], w->dtype = CPT_DT_F32, w->ndim = (int)nd;
            numel = 1;
            for (size_t d = 0; d < nd; d++) w->shape[d] = json_integer_value(json_array_get(sh, d)), numel *= (size_t)w->shape[d];
            size_t off = (size_t)json_integer_value(oj);
            if (off + numel > np) {
                rc = cpt_err_set(err, CPT_EFORMAT, "%s: parameters[%zu] ('%s') lies past the %zu parameters", path, i, nm, np);
                break;
            }
            w->src_f32 = (k ? full.v : full.m) + off;
        }
        covered += (numel + 15) & ~(size_t)15; /* tensors start 64-byte aligned (cpt_model_buffer_bytes) */
    }
    if (!rc && covered != np) rc = cpt_err_set(err, CPT_EFORMAT, "%s: the parameters list covers %zu of %zu values", path, covered, np);
    unsigned long crc = 0;
    if (!rc) {
        /* 1. the single file, atomically; 2. the state pointing at it, atomically; 3. the
         * shards go. A kill between 1 and 2 leaves the sharded checkpoint valid. */
        char stepbuf[32];
        snprintf(stepbuf, sizeof stepbuf, "%lld", (long long)json_integer_value(json_object_get(o, "adam_step")));
        const char *meta[] = {"format", "cpt-adamw", "adam_step", stepbuf, NULL};
        snprintf(sp, sizeof sp, "%s/optim.safetensors", dir);
        rc = cpt_st_write(sp, ts, 2 * nt, meta, err);
        if (!rc) rc = file_crc(sp, &crc, err);
    }
    if (!rc) {
        json_t *keep = json_incref(shards);
        json_object_del(o, "optim_shards");
        json_object_del(o, "optim_format");
        json_object_set_new(o, "crc32_optim", json_integer((json_int_t)crc));
        char *txt = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
        rc = txt ? cpt_write_file_atomic(path, txt, strlen(txt), err) : cpt_err_set(err, CPT_ENOMEM, "out of memory");
        free(txt);
        for (size_t i = 0; i < json_array_size(keep) && !rc; i++) {
            snprintf(sp, sizeof sp, "%s/%s", dir, json_string_value(json_object_get(json_array_get(keep, i), "file")));
            if (remove(sp) == 0) (*n_shards)++;
        }
        json_decref(keep);
        if (!rc) rc = cpt_fsync_dir(dir, err);
    }
    free(full.m), free(full.v), free(ts), free(names);
    json_decref(o);
    return rc;
}
