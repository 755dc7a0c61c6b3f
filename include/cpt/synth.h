/* cpt/synth.h: synthetic question/answer pairs from documents with an instruct model
 * (`cpt synth qa`, issue 15; Knowledge-Instruct and PIT data). For each document and each
 * requested type (factual, reasoning, summary) the type's prompt template, with
 * {document} and {n} filled in, goes through the model's chat template as one user turn;
 * the reply is sampled (temperature / top-p, a seed per document and type, so a run
 * repeats) and parsed into pairs:
 *   a line "Q: ..." / "Question: ..." (optionally numbered: "1.", "Q1:", "-", "**")
 *   starts a question, "A: ..." / "Answer: ..." its answer; further lines continue the
 *   field they follow.
 * A pair is kept when
 *   - both sides are non-empty and the answer does not just repeat the question,
 *   - the answer is grounded: at least min_support of its content words (SQuAD-normalised
 *     words, cpt/qa.h, outside a short English stop-word list) occur in the document,
 *   - its normalised question was not kept before (anywhere in the run),
 * at most n per document and type. Up to `batch` requests (whole documents) decode
 * together (cpt_generate_batch); each has its own seed, from (seed, document, type). Output: one {"messages": [{"role": "user", "content":
 * Q}, {"role": "assistant", "content": A}], "type": T, "doc": I, "support": S} per line,
 * the `messages` chat format `cpt data prepare --chat` reads; written to PATH.tmp and
 * renamed at the end, so a failed run leaves no partial file. */
#ifndef CPT_SYNTH_H
#define CPT_SYNTH_H

#include <stdint.h>
#include <stdio.h>

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { CPT_SYNTH_FACTUAL = 0, CPT_SYNTH_REASONING = 1, CPT_SYNTH_SUMMARY = 2, CPT_SYNTH_NTYPES = 3 };

/* "factual", "reasoning", "summary". */
extern const char *const cpt_synth_type_names[CPT_SYNTH_NTYPES];
/* The built-in prompt templates. */
extern const char *const cpt_synth_default_templates[CPT_SYNTH_NTYPES];

/* Parse "factual,summary" into a bit mask (1 << CPT_SYNTH_*). */
int cpt_synth_parse_types(const char *list, unsigned *mask, cpt_err *err);
/* Templates from a JSON file {"factual": "...{document}...", ...}: out[t] receives a
 * malloc'ed copy for each type the file names (NULL for the others; the caller frees
 * them). Unknown keys, non-strings and templates without {document} are errors naming
 * the file and the key. */
int cpt_synth_load_templates(const char *path, char *out[CPT_SYNTH_NTYPES], cpt_err *err);
/* Fill {document} and {n} (malloc'ed). */
char *cpt_synth_fill(const char *tmpl, const char *doc, int n);

typedef struct cpt_qa_pair {
    char *q, *a;
} cpt_qa_pair;
/* Pairs of a reply (above); *pairs malloc'ed, free with cpt_synth_pairs_free. */
int cpt_synth_parse_pairs(const char *reply, cpt_qa_pair **pairs, size_t *n);
void cpt_synth_pairs_free(cpt_qa_pair *p, size_t n);
/* Fraction of the answer's content words found among the document's words (0 when the
 * answer has none). */
double cpt_synth_support(const char *answer, const char *doc);

typedef struct cpt_synth_opts {
    int per_doc;                          /* pairs asked for and kept per document and type */
    unsigned types;                       /* mask of CPT_SYNTH_* */
    const char *templates[CPT_SYNTH_NTYPES]; /* NULL: built-in */
    double temperature, top_p;            /* temperature <= 0: greedy */
    uint64_t seed;
    int max_new;                          /* reply tokens */
    int max_doc_tokens;                   /* longer documents are cut to their first N tokens */
    double min_support;
    size_t limit;                         /* documents (0: all) */
    const char *field;                    /* JSONL text field */
    int batch;                            /* requests generated together (cpt_generate_batch) */
} cpt_synth_opts;

typedef struct cpt_synth_stats {
    size_t docs, replies, parsed, kept, unsupported, duplicate, echoed, over_quota;
    long long tokens;
    double seconds;
} cpt_synth_stats;

struct cpt_model;
struct cpt_tok;
struct cpt_chat;

int cpt_synth_qa(struct cpt_model *m, const struct cpt_tok *tok, const struct cpt_chat *chat, const char *in_path,
                 const char *out_path, const cpt_synth_opts *o, FILE *progress, cpt_synth_stats *st, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif
