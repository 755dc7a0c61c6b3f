/* cpt/mixture.h: deterministic data mixtures over packed sources, for the trainer.
 *
 * Two pieces:
 *  - cpt_mix (src/data/mixture.c): pure arithmetic, no I/O. Given per-source sizes (in
 *    packed sequences), repetition caps, phases of weights and a seed, it maps a global
 *    sample index i to a draw: (source k, the source's draw ordinal c, epoch, sequence id).
 *  - cpt_pack_source (src/data/pack.c): one source = a list of shards packed into
 *    sequences of seq_len + 1 tokens with document boundaries; sequence id -> tokens.
 *
 * ---------------------------------------------------------------------------------
 * The order, exactly (every value below is a pure function of (cfg, i); no state):
 *
 * Phases. Phase p covers global samples [S_p, E_p): S_0 = 0, S_{p+1} = E_p, the last
 * phase may be open (end = UINT64_MAX). Boundaries are given in sequences, tokens
 * (ceil(tokens / seq_len) sequences) or optimizer steps (steps * global_batch).
 *
 * Source choice within a phase. Weights are normalised and quantised to integers n_k
 * summing to the period B (largest remainder; a positive weight that would round to 0
 * is an error). The B slots of one period are laid out by smooth weighted round-robin
 * (nginx's SWRR: each slot adds n_k to every source's credit, the source with the most
 * credit wins, ties to the lowest index, and pays B). Each period holds source k exactly
 * n_k times and every window of consecutive samples is within a few samples of the
 * exact proportion, so each global batch carries the mix. Local index t = i - S_p:
 *     k = pattern_p[t mod B]
 *     c = cursor_p[k] + (t div B) * n_pk + (occurrences of k in pattern_p before slot t mod B)
 * cursor_p[k] = number of draws of k in phases 0..p-1 (closed form from their lengths).
 * So a source resumes at a phase boundary exactly where it stopped: its draw ordinals
 * over the whole run are 0, 1, 2, ... with no gap and no repeat, whatever the weights.
 * Changing a phase that has not started yet changes nothing before it.
 *
 * Sequence choice. Draw c of source k with N_k sequences is epoch e = c div N_k, place
 * j = c mod N_k, sequence id = P_{seed,k,e}(j) where P is a keyed Feistel permutation of
 * [0, N_k) (4 rounds of a 64-bit mixer over the smallest even-bit power of two >= N_k,
 * cycle-walking into range; O(1) expected, nothing materialised). Each epoch visits
 * every sequence of the source once, in a fresh order.
 *
 * Repetition caps. A source with max_epochs > 0 may be drawn at most
 * floor(max_epochs * N_k) times. cpt_mix_capacity() is the first global index whose draw
 * would exceed a cap (computed at open); locating it is CPT_ESTATE with a message that
 * names the source. A schedule whose last phase has a finite end past its capacity is
 * rejected at open.
 *
 * Data parallelism. The global order does not depend on the number of ranks. At step s
 * with world size W and per-rank batch b (global batch G = W * b), rank r takes the
 * contiguous block of samples s*G + r*b + j, j in [0, b) (cpt_mix_rank_index). The union
 * over ranks of one step is exactly samples [s*G, (s+1)*G) of the single-rank order.
 * Resuming at step s needs nothing but s.
 *
 * Per-source accounting. cpt_mix_counts(i) gives the draws of each source among samples
 * [0, i) in O(K * B); draws * seq_len is the number of target-token slots trained on that
 * source (with keep_whole packing, pads are included; the trainer can count exact
 * non-pad tokens from the masks of the batches it sees).
 * ---------------------------------------------------------------------------------
 */
#ifndef CPT_MIXTURE_H
#define CPT_MIXTURE_H

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CPT_MIX_MAX_SOURCES 256
#define CPT_MIX_DEFAULT_PERIOD 10000u

enum { CPT_MIX_UNIT_SEQS = 0, CPT_MIX_UNIT_TOKENS = 1, CPT_MIX_UNIT_STEPS = 2 };

typedef struct cpt_mix_source_cfg {
    const char *name;  /* used in messages ("general", "domain", "replay") */
    uint64_t n_seqs;   /* sequences in one epoch (cpt_pack_source_n_seqs), >= 1 if ever drawn */
    double max_epochs; /* repetition cap (e.g. 1.0, 2.5); 0 = unlimited */
} cpt_mix_source_cfg;

typedef struct cpt_mix_phase_cfg {
    const double *weights; /* [n_sources], each >= 0 and finite, sum > 0; a replay fraction r
                              is simply weights {1 - r, r} over {domain, replay} */
    uint64_t end;          /* exclusive end of the phase in cfg.unit; UINT64_MAX = open
                              (last phase only); ends must increase */
} cpt_mix_phase_cfg;

typedef struct cpt_mix_cfg {
    const cpt_mix_source_cfg *sources;
    size_t n_sources; /* 1 .. CPT_MIX_MAX_SOURCES */
    const cpt_mix_phase_cfg *phases;
    size_t n_phases; /* >= 1 */
    uint64_t seed;
    int unit;              /* CPT_MIX_UNIT_* for phase ends */
    uint32_t seq_len;      /* needed for CPT_MIX_UNIT_TOKENS */
    uint64_t global_batch; /* sequences per step, needed for CPT_MIX_UNIT_STEPS */
    uint32_t period;       /* weight resolution B; 0 means CPT_MIX_DEFAULT_PERIOD; <= 1<<20 */
    int sequential;        /* 1: no permutation, sequence id = c mod N_k: each source is read
                              in stream order (progressive-length stages: a source's position
                              is then a token offset, valid for any seq_len) */
} cpt_mix_cfg;

typedef struct cpt_mix_draw {
    uint32_t source;  /* k */
    uint32_t phase;   /* p */
    uint64_t ordinal; /* c: how many earlier samples came from this source */
    uint64_t epoch;   /* c div N_k */
    uint64_t seq;     /* sequence id within the source, < N_k */
} cpt_mix_draw;

typedef struct cpt_mix cpt_mix;

/* Validate cfg (every message names the phase/source and field) and build the plan:
 * O(P * (K + B)) time, O(P * B) memory. cfg need not outlive the plan. */
int cpt_mix_open(cpt_mix **out, const cpt_mix_cfg *cfg, cpt_err *err);
void cpt_mix_close(cpt_mix *m);

/* The draw for global sample i, O(log P) (+ O(1) expected for the permutation).
 * CPT_ESTATE past a repetition cap; CPT_EINVAL if i is past the last finite phase. */
int cpt_mix_locate(const cpt_mix *m, uint64_t i, cpt_mix_draw *out, cpt_err *err);

/* Draws per source among samples [0, i): out[k] for k < n_sources. */
void cpt_mix_counts(const cpt_mix *m, uint64_t i, uint64_t *out);

/* First global index past a repetition cap (UINT64_MAX if none); *source gets the
 * capped source (may be NULL). */
uint64_t cpt_mix_capacity(const cpt_mix *m, uint32_t *source);
/* End of the schedule in sequences (UINT64_MAX when the last phase is open). */
uint64_t cpt_mix_end(const cpt_mix *m);
size_t cpt_mix_n_sources(const cpt_mix *m);
const char *cpt_mix_source_name(const cpt_mix *m, size_t k);
uint64_t cpt_mix_source_seqs(const cpt_mix *m, size_t k); /* N_k */
/* Phase p's quantised weight of source k (n_pk / B), for logs and tests. */
double cpt_mix_weight(const cpt_mix *m, size_t p, size_t k);

/* Global sample index of rank r's j-th sample at step s (see "Data parallelism"). */
static inline uint64_t cpt_mix_rank_index(uint64_t step, uint32_t rank, uint32_t world,
                                          uint32_t per_rank_batch, uint32_t j) {
    return step * (uint64_t)world * per_rank_batch + (uint64_t)rank * per_rank_batch + j;
}

/* The keyed permutation used for epochs: P_key(j) for j < n (n >= 1), a bijection of [0, n). */
uint64_t cpt_mix_permute(uint64_t key, uint64_t n, uint64_t j);

/* ---- packing (src/data/pack.c) ----
 *
 * A source is the concatenation of its shards' documents, in the order given. It is cut
 * into sequences of L = seq_len + 1 tokens (inputs are tokens [0, seq_len), targets
 * tokens [1, L)):
 *  - keep_whole = 0: sequence j is stream tokens [j*seq_len, j*seq_len + L): consecutive
 *    sequences share one token so every token after the first is a target exactly once.
 *    N = (T - 1) div seq_len; the last < seq_len tokens are not used.
 *  - keep_whole = 1: greedy first-fit in document order, sequences do not overlap. A
 *    document of at most L tokens is never split: if it does not fit in the space left,
 *    the sequence is closed and padded. A longer document is split at sequence
 *    boundaries, starting in the current sequence. The last, partial sequence is kept.
 *    Built at open: one u64 per sequence.
 * Boundaries: seg[t] is the index of t's document piece within the sequence (0, 1, ...),
 * pos[t] is t's offset from the start of its piece (so it resets at each document and at
 * the sequence start; pos < L), mask[t] = 1 for real tokens. Pads carry token pad_id,
 * seg UINT32_MAX, pos 0, mask 0. The trainer applies block-causal attention over equal
 * seg values and trains target t+1 from input t iff mask[t+1] and seg[t+1] == seg[t]
 * (the document's EOS, written by `cpt data prepare`, is then the last target).
 */
typedef struct cpt_pack_source cpt_pack_source;

typedef struct cpt_pack_seq {
    uint32_t *tokens; /* [seq_len + 1] caller-owned */
    uint32_t *seg;    /* [seq_len + 1] */
    uint32_t *pos;    /* [seq_len + 1] */
    uint8_t *mask;    /* [seq_len + 1] */
    int32_t *targets; /* [seq_len] optional (NULL: not filled): targets[t] = tokens[t+1]
                       * when t+1 is a real token of the same piece as t and carries loss
                       * (the shard's loss mask, cpt/shard.h; always for unmasked shards),
                       * else -1. So prompt tokens of chat documents are never targets. */
    uint32_t n_real;  /* set by get: real (non-pad) tokens */
    uint32_t n_docs;  /* set by get: document pieces */
} cpt_pack_seq;

/* Open shards [n] (all with the same vocab_size) as one source. seq_len >= 1. */
int cpt_pack_source_open(cpt_pack_source **out, const char *const *shards, size_t n,
                         uint32_t seq_len, int keep_whole, cpt_err *err);
/* The same over only the documents with min_doc_tokens <= length <= max_doc_tokens
 * (0 = no bound; the length from the shard index, EOS included): the source's stream is
 * the concatenation of those documents in order, so n_tokens, n_docs and n_seqs count
 * them alone (ProLong's long-data sources: min_doc_tokens = the stage's seq_len keeps
 * only documents that fill whole sequences). min > max (with max > 0) is CPT_EINVAL. */
int cpt_pack_source_open_len(cpt_pack_source **out, const char *const *shards, size_t n, uint32_t seq_len,
                             int keep_whole, uint64_t min_doc_tokens, uint64_t max_doc_tokens, cpt_err *err);
void cpt_pack_source_close(cpt_pack_source *s);
/* keep_whole = 0 only: the source's sequences start at stream token tok0 (sequence j is
 * tokens [tok0 + j*seq_len, tok0 + j*seq_len + L)), so n_seqs = (n_tokens - tok0 - 1) div
 * seq_len. A stage of a different seq_len continues where the previous one stopped.
 * CPT_EINVAL when keep_whole or when fewer than L tokens are left after tok0. */
int cpt_pack_source_set_start(cpt_pack_source *s, uint64_t tok0, cpt_err *err);
uint64_t cpt_pack_source_n_seqs(const cpt_pack_source *s);
uint64_t cpt_pack_source_n_tokens(const cpt_pack_source *s);
uint64_t cpt_pack_source_n_docs(const cpt_pack_source *s);
uint32_t cpt_pack_source_vocab_size(const cpt_pack_source *s);

/* Fill `out` with sequence `seq` (< n_seqs, asserted). O(log docs). */
void cpt_pack_source_get(const cpt_pack_source *s, uint64_t seq, uint32_t pad_id, cpt_pack_seq *out);

/* Sample i of a mixture over sources srcs[k] (srcs[k]'s n_seqs must equal the plan's N_k;
 * CPT_EINVAL otherwise): locate, then pack. `draw` may be NULL. */
int cpt_mix_fetch(const cpt_mix *m, cpt_pack_source *const *srcs, uint64_t i, uint32_t pad_id,
                  cpt_pack_seq *out, cpt_mix_draw *draw, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif
