/* traindata.c: mixture- and shard-backed data interfaces for the trainer. */
#include "cpt/traindata.h"

#include <glob.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"

int cpt_list_shards(const char *dir, const char *split, char ***paths, size_t *n, cpt_err *err) {
    char pat[4200];
    snprintf(pat, sizeof pat, "%s/%s-*.shard", dir, split);
    glob_t g;
    memset(&g, 0, sizeof g);
    int gr = glob(pat, 0, NULL, &g); /* sorted by name */
    *paths = NULL;
    *n = 0;
    if (gr != 0 || g.gl_pathc == 0) {
        globfree(&g);
        return cpt_err_set(err, CPT_ENOTFOUND, "%s: no %s-*.shard files. HINT: prepare the corpus with `cpt data prepare --out %s`", dir, split, dir);
    }
    char **out = calloc(g.gl_pathc, sizeof(char *));
    if (!out) {
        globfree(&g);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < g.gl_pathc; i++) out[i] = strdup(g.gl_pathv[i]);
    *paths = out;
    *n = g.gl_pathc;
    globfree(&g);
    return CPT_OK;
}

void cpt_free_list(char **paths, size_t n) {
    for (size_t i = 0; paths && i < n; i++) free(paths[i]);
    free(paths);
}

/* One packed sequence -> the trainer's arrays. The packer's targets are token t+1 when
 * it is real, in the same document piece and carries loss (chat prompts do not), else
 * -1: no token is predicted across a document boundary. */
static void to_batch(const cpt_pack_seq *s, int T, int32_t *ids, int32_t *targets, int32_t *pos, int32_t *seg) {
    for (int t = 0; t < T; t++) {
        ids[t] = (int32_t)s->tokens[t];
        targets[t] = s->targets[t];
        pos[t] = (int32_t)s->pos[t];
        seg[t] = s->mask[t] ? (int32_t)s->seg[t] : -1;
    }
}

typedef struct {
    uint32_t *tok, *seg, *pos;
    uint8_t *mask;
    int32_t *tg;
} seqbuf;

static int seqbuf_init(seqbuf *b, int T) {
    b->tok = malloc(sizeof(uint32_t) * (size_t)(T + 1));
    b->seg = malloc(sizeof(uint32_t) * (size_t)(T + 1));
    b->pos = malloc(sizeof(uint32_t) * (size_t)(T + 1));
    b->mask = malloc((size_t)(T + 1));
    b->tg = malloc(sizeof(int32_t) * (size_t)(T + 1));
    return b->tok && b->seg && b->pos && b->mask && b->tg;
}

static void seqbuf_free(seqbuf *b) {
    free(b->tok), free(b->seg), free(b->pos), free(b->mask), free(b->tg);
}

struct cpt_mixdata {
    cpt_mix *mix;
    cpt_pack_source **srcs;
    int n, T;
    uint64_t *start; /* [n] first stream token of each source */
    char **names;
    int32_t pad;
    seqbuf buf;
};

int cpt_mixdata_open(cpt_mixdata **out, const cpt_mixdata_cfg *c, cpt_err *err) {
    *out = NULL;
    if (c->n_sources < 1 || c->n_phases < 1 || c->seq_len < 1)
        return cpt_err_set(err, CPT_EINVAL, "data: need at least one source, one phase and seq_len >= 1");
    cpt_mixdata *d = calloc(1, sizeof *d);
    if (!d) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    d->n = c->n_sources, d->T = c->seq_len, d->pad = c->pad_id;
    d->srcs = calloc((size_t)d->n, sizeof *d->srcs);
    d->names = calloc((size_t)d->n, sizeof *d->names);
    d->start = calloc((size_t)d->n, sizeof *d->start);
    cpt_mix_source_cfg *sc = calloc((size_t)d->n, sizeof *sc);
    cpt_mix_phase_cfg *pc = calloc((size_t)c->n_phases, sizeof *pc);
    int rc = CPT_OK;
    if (!d->srcs || !d->names || !d->start || !sc || !pc || !seqbuf_init(&d->buf, d->T)) {
        rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
        goto fail;
    }
    uint32_t vocab = 0;
    for (int k = 0; k < d->n && !rc; k++) {
        char **paths = NULL;
        size_t np = 0;
        d->names[k] = strdup(c->names[k]);
        rc = cpt_list_shards(c->dirs[k], "train", &paths, &np, err);
        if (!rc)
            rc = cpt_pack_source_open_len(&d->srcs[k], (const char *const *)paths, np, (uint32_t)d->T, c->keep_whole,
                                          c->min_doc_tokens ? c->min_doc_tokens[k] : 0,
                                          c->max_doc_tokens ? c->max_doc_tokens[k] : 0, err);
        cpt_free_list(paths, np);
        /* A source with less than one sequence left after its start begins a new pass. */
        if (!rc && c->start_tokens && c->start_tokens[k] &&
            c->start_tokens[k] + (uint64_t)d->T < cpt_pack_source_n_tokens(d->srcs[k])) {
            d->start[k] = c->start_tokens[k];
            rc = cpt_pack_source_set_start(d->srcs[k], d->start[k], err);
        }
        if (rc) {
            cpt_err_wrap(err, "data source '%s'", c->names[k]);
            break;
        }
        uint32_t v = cpt_pack_source_vocab_size(d->srcs[k]);
        if (k > 0 && v != vocab) {
            rc = cpt_err_set(err, CPT_EINVAL, "data source '%s' (%s) was tokenized with a vocabulary of %u, source '%s' with %u. HINT: prepare every source with the model's tokenizer",
                             c->names[k], c->dirs[k], v, c->names[0], vocab);
            break;
        }
        vocab = v;
        sc[k].name = d->names[k];
        sc[k].n_seqs = cpt_pack_source_n_seqs(d->srcs[k]);
        sc[k].max_epochs = c->max_epochs ? c->max_epochs[k] : 0.0;
    }
    if (rc) goto fail;
    for (int p = 0; p < c->n_phases; p++) pc[p].weights = c->weights[p], pc[p].end = c->ends[p];
    cpt_mix_cfg mc = {sc, (size_t)d->n, pc, (size_t)c->n_phases, c->seed, CPT_MIX_UNIT_STEPS, (uint32_t)d->T, c->global_batch, 0,
                      c->sequential};
    if ((rc = cpt_mix_open(&d->mix, &mc, err))) goto fail;
    free(sc);
    free(pc);
    *out = d;
    return CPT_OK;
fail:
    free(sc);
    free(pc);
    cpt_mixdata_close(d);
    return rc;
}

void cpt_mixdata_close(cpt_mixdata *d) {
    if (!d) return;
    for (int k = 0; k < d->n; k++) {
        if (d->srcs) cpt_pack_source_close(d->srcs[k]);
        if (d->names) free(d->names[k]);
    }
    free(d->srcs);
    free(d->names);
    free(d->start);
    cpt_mix_close(d->mix);
    seqbuf_free(&d->buf);
    free(d);
}

uint64_t cpt_mixdata_start(const cpt_mixdata *d, int k) { return d->start[k]; }

void cpt_mixdata_counts(const cpt_mixdata *d, uint64_t n_samples, uint64_t *out) { cpt_mix_counts(d->mix, n_samples, out); }

void cpt_mixdata_position(const cpt_mixdata *d, uint64_t n_samples, uint64_t *out) {
    cpt_mix_counts(d->mix, n_samples, out);
    for (int k = 0; k < d->n; k++) {
        uint64_t N = cpt_mix_source_seqs(d->mix, (size_t)k);
        out[k] = d->start[k] + (N ? out[k] % N : 0) * (uint64_t)d->T;
    }
}

uint32_t cpt_mixdata_vocab_size(const cpt_mixdata *d) { return cpt_pack_source_vocab_size(d->srcs[0]); }

static int mix_seq(void *ctx, long long g, int T, int32_t *ids, int32_t *targets, int32_t *pos, int32_t *seg, int *source,
                   cpt_err *err) {
    cpt_mixdata *d = ctx;
    if (T != d->T) return cpt_err_set(err, CPT_EINVAL, "data: sequence length %d differs from the mixture's %d", T, d->T);
    cpt_pack_seq s = {d->buf.tok, d->buf.seg, d->buf.pos, d->buf.mask, d->buf.tg, 0, 0};
    cpt_mix_draw draw;
    int rc = cpt_mix_fetch(d->mix, d->srcs, (uint64_t)g, (uint32_t)d->pad, &s, &draw, err);
    if (rc) return rc;
    to_batch(&s, T, ids, targets, pos, seg);
    if (source) *source = (int)draw.source;
    return CPT_OK;
}

cpt_data_iface cpt_mixdata_iface(cpt_mixdata *d) {
    cpt_data_iface f = {d, mix_seq, d->n, (const char *const *)d->names};
    return f;
}

struct cpt_shardseq {
    cpt_pack_source *src;
    int T;
    int32_t pad;
    seqbuf buf;
};

int cpt_shardseq_open(cpt_shardseq **out, const char *dir, const char *split, int seq_len, int32_t pad_id, cpt_err *err) {
    *out = NULL;
    cpt_shardseq *s = calloc(1, sizeof *s);
    if (!s || !seqbuf_init(&s->buf, seq_len)) {
        if (s) seqbuf_free(&s->buf);
        free(s);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    }
    s->T = seq_len, s->pad = pad_id;
    char **paths = NULL;
    size_t np = 0;
    int rc = cpt_list_shards(dir, split, &paths, &np, err);
    /* keep_whole: each evaluation sequence starts at a document start where possible */
    if (!rc) rc = cpt_pack_source_open(&s->src, (const char *const *)paths, np, (uint32_t)seq_len, 1, err);
    cpt_free_list(paths, np);
    if (rc) {
        cpt_shardseq_close(s);
        return rc;
    }
    *out = s;
    return CPT_OK;
}

void cpt_shardseq_close(cpt_shardseq *s) {
    if (!s) return;
    cpt_pack_source_close(s->src);
    seqbuf_free(&s->buf);
    free(s);
}

long long cpt_shardseq_n_seqs(const cpt_shardseq *s) { return (long long)cpt_pack_source_n_seqs(s->src); }

static int shard_seq(void *ctx, long long g, int T, int32_t *ids, int32_t *targets, int32_t *pos, int32_t *seg, int *source,
                     cpt_err *err) {
    cpt_shardseq *s = ctx;
    if (T != s->T || g < 0 || (uint64_t)g >= cpt_pack_source_n_seqs(s->src))
        return cpt_err_set(err, CPT_EINVAL, "validation data: sequence %lld of length %d is out of range", g, T);
    cpt_pack_seq q = {s->buf.tok, s->buf.seg, s->buf.pos, s->buf.mask, s->buf.tg, 0, 0};
    cpt_pack_source_get(s->src, (uint64_t)g, (uint32_t)s->pad, &q);
    to_batch(&q, T, ids, targets, pos, seg);
    if (source) *source = 0;
    return CPT_OK;
}

cpt_data_iface cpt_shardseq_iface(cpt_shardseq *s) {
    static const char *names[] = {"validation"};
    cpt_data_iface f = {s, shard_seq, 1, names};
    return f;
}
