/* cpt/traindata.h: the trainer's data: prepared shard directories (from `cpt data
 * prepare`) mixed by phase (cpt/mixture.h) and packed with document boundaries, behind
 * the trainer's cpt_data_iface; and validation shards as evaluation sets.
 * A prepared directory holds train-*.shard and val-*.shard files. */
#ifndef CPT_TRAINDATA_H
#define CPT_TRAINDATA_H

#include "cpt/mixture.h"
#include "cpt/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpt_mixdata_cfg {
    int n_sources;
    const char *const *names;     /* [n_sources] */
    const char *const *dirs;      /* [n_sources] prepared directories (their train-*.shard) */
    const double *max_epochs;     /* [n_sources] repetition caps (0 = unlimited), may be NULL */
    int n_phases;
    const double *const *weights; /* [n_phases][n_sources] */
    const uint64_t *ends;         /* [n_phases] phase ends in optimizer steps; last may be UINT64_MAX */
    uint64_t seed;
    int seq_len;
    uint64_t global_batch;        /* sequences per optimizer step */
    int keep_whole;               /* 1: short documents are never split across sequences */
    int32_t pad_id;               /* token for padding (keep_whole), must be in the vocabulary */
    /* [n_sources] per-source document length range in tokens (0 = no bound), may be NULL:
     * the source packs only those documents (cpt_pack_source_open_len). Sequences are
     * seq_len tokens each, so a mixture weight is a share of tokens. */
    const uint64_t *min_doc_tokens, *max_doc_tokens;
    /* Progressive-length stages (keep_whole = 0): [n_sources] first stream token of each
     * source (may be NULL: 0), and sequential = 1 to read every source in stream order
     * (cpt_mix_cfg.sequential). Then a source's data position is a token offset that a
     * stage of another seq_len continues exactly (cpt_mixdata_position). */
    const uint64_t *start_tokens;
    int sequential;
} cpt_mixdata_cfg;

typedef struct cpt_mixdata cpt_mixdata;
int cpt_mixdata_open(cpt_mixdata **out, const cpt_mixdata_cfg *cfg, cpt_err *err);
void cpt_mixdata_close(cpt_mixdata *d);
cpt_data_iface cpt_mixdata_iface(cpt_mixdata *d);
/* After the first n_samples global samples: out[k] = the stream token at which source k
 * continues (start + (draws mod N_k) * seq_len; exact for sequential order). */
void cpt_mixdata_position(const cpt_mixdata *d, uint64_t n_samples, uint64_t *out);
/* Source k's first stream token (cfg.start_tokens, or 0 when it wrapped to a new pass). */
uint64_t cpt_mixdata_start(const cpt_mixdata *d, int k);
/* Draws of each source among the first n_samples global samples. */
void cpt_mixdata_counts(const cpt_mixdata *d, uint64_t n_samples, uint64_t *out);
/* Vocabulary size recorded in the shards (to check against the model). */
uint32_t cpt_mixdata_vocab_size(const cpt_mixdata *d);

/* A validation set: the val-*.shard files of a prepared directory (or, with
 * `split` = "train", its train shards), packed into sequences in order. */
typedef struct cpt_shardseq cpt_shardseq;
int cpt_shardseq_open(cpt_shardseq **out, const char *dir, const char *split, int seq_len, int32_t pad_id, cpt_err *err);
void cpt_shardseq_close(cpt_shardseq *s);
cpt_data_iface cpt_shardseq_iface(cpt_shardseq *s);
long long cpt_shardseq_n_seqs(const cpt_shardseq *s);

/* The sorted list of "<split>-*.shard" files in dir (malloc'ed array of malloc'ed
 * strings); CPT_ENOTFOUND naming the directory if there are none. */
int cpt_list_shards(const char *dir, const char *split, char ***paths, size_t *n, cpt_err *err);
void cpt_free_list(char **paths, size_t n);

#ifdef __cplusplus
}
#endif
#endif
