/* cpt/prepare.h: the `cpt data prepare` pipeline as a library: corpus files in, token
 * shards + a validation shard + stats.json out.
 *
 * Inputs: *.jsonl (one JSON object per line, the document in a string field, "text" by
 * default) and any other file as text: one document per file, or with txt_blank
 * documents separated by blank lines; each optionally .gz or .zst. Files are streamed:
 * memory holds one batch of documents, never a whole corpus (the per-document state is
 * one byte plus the dedup tables). cpt_prepare_expand_inputs turns command-line paths,
 * directories and globs into the file list.
 *
 * Nothing is lost silently: every document that does not reach a shard is counted under
 * one reason, and the first CPT_PREPARE_MAX_ISSUES malformed documents are listed by file
 * and line in the stats (and stats.json). With strict, the first malformed JSON line,
 * missing text field or invalid UTF-8 is an error naming file and line instead. Empty
 * input files (no document at all) are counted in empty_files.
 *
 * Per document, in input order (files in the order given, lines in file order):
 *   1. malformed: a .jsonl line that is not an object with the string field, text that
 *      is not valid UTF-8, or text that is empty after cleaning -> counted, dropped;
 *   2. optional Unicode NFC normalisation;
 *   3. exact dedup (cpt/dedup.h) of the text as read (NFC + strip): a repeat of an
 *      earlier document is an exact duplicate, whatever the filters would say of it;
 *   4. quality filters (cpt/filter.h; the C4 family also rewrites the text), chosen by
 *      the document's kind (below) and script;
 *   5. decontamination against the evaluation files (13-gram overlap);
 *   6. near dedup: MinHash + LSH over everything that passed 1-5; the earliest document of
 *      each cluster survives.
 * A second pass re-reads the inputs and tokenizes the survivors with the tokenizer's
 * post-processor (so BOS appears where the tokenizer adds it) and appends EOS (when the
 * tokenizer has one and the document does not already end with it).
 *
 * Chat mode (chat = 1, `cpt data prepare --chat`): every input must be .jsonl; a line is
 * a conversation as in cpt/chat.h ({"messages": [...]} or {"prompt", "response"}). It is
 * rendered with the chat template and encoded with cpt_chat_encode (tokens exactly as
 * transformers' apply_chat_template(tokenize=True), no EOS appended: the template writes
 * the end-of-turn) and written with its loss mask (version-2 shards). Step 1 also counts
 * conversations that are not JSON objects (bad_json / invalid_utf8), lack messages
 * (bad_conversation) or make the template raise (template_error); NFC and the quality
 * filters (steps 2-3) do not apply (they would change the text the template renders);
 * exact dedup (4) uses the rendered text; decontamination (5) and near dedup (6) use the
 * message contents joined by newlines (the template's boilerplate would make every short
 * conversation a near duplicate of the next). Pass 1 encodes each conversation once to
 * check that its mask can be placed, so a kept conversation never fails in pass 2.
 *
 * Kinds (cfg.kind, `--kind`): web, book or code select the filter families
 * (cpt_filter_cfg_for_kind). auto (the default) decides per input file and document:
 * a file with a source-code extension (cpt_prepare_file_kind) is code; a text file read
 * as one document (not txt_blank, not .jsonl) is a book; any other document is a book
 * when it has at least CPT_PREPARE_LONG_DOC_BYTES bytes, else web.
 *
 * Length filter (min_doc_tokens / max_doc_tokens, 0 = none): in pass 2 a document whose
 * token count (with BOS/EOS) is outside the range is not written and counted as
 * too_short / too_long (ProLong's long-data sources: e.g. min_doc_tokens = 65536).
 *
 * A run that keeps no document at all is an error (CPT_EINVAL, after stats.json is
 * written) whose HINT names the reason that removed the most and the option to change.
 *
 * Validation split: document i (a survivor) goes to validation when
 * h = splitmix64(seed ^ i) is below val_fraction * 2^64, or, when val_docs > 0, when h is
 * among the val_docs smallest values over all survivors. So the split is deterministic and
 * independent of thread count and shard size.
 *
 * Outputs in out_dir: train-00000.shard, train-00001.shard, ... (a new shard starts once
 * one holds shard_tokens tokens), val-00000.shard (if any validation document), and
 * stats.json with every count below, the issues, and the identity
 *   docs_in = kept + malformed + filtered (sum over rules) + exact_duplicates
 *             + contaminated + near_duplicates + too_short + too_long,
 *   kept = train_docs + val_docs.
 */
#ifndef CPT_PREPARE_H
#define CPT_PREPARE_H

#include "cpt/dedup.h"
#include "cpt/filter.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CPT_PREPARE_N_LENGTHS 6
/* The docs_by_length bucket of a document of n tokens, and its label ("<512", ...). */
int cpt_prepare_length_bucket(uint64_t n);
const char *cpt_prepare_length_name(int bucket);

/* Progress of a run, reported after every batch from the calling thread. */
typedef struct cpt_prepare_progress {
    int pass;                        /* 1: cleaning and dedup, 2: tokenizing and writing */
    uint64_t bytes_done, bytes_total; /* input bytes as stored (compressed size for .gz/.zst) */
    uint64_t docs;                   /* documents read so far in this pass */
} cpt_prepare_progress;

typedef struct cpt_prepare_cfg {
    const char *const *inputs;
    size_t n_inputs;
    const char *text_field; /* NULL = "text" */
    const char *tokenizer;  /* tokenizer.json or a directory holding one */
    const char *out_dir;    /* created if missing */
    int nfc;                /* 1: NFC-normalise before everything else */
    int filters;            /* 1: apply `filter` */
    cpt_filter_cfg filter;
    int exact_dedup, near_dedup;
    cpt_minhash_cfg minhash;
    const char *const *eval_files; /* decontamination sources (.txt lines / .jsonl) */
    size_t n_eval;
    uint32_t decon_ngram; /* 0 = 13 */
    double val_fraction;  /* in [0, 1) */
    uint64_t val_docs;    /* > 0: exactly this many validation documents (if available) */
    uint64_t shard_tokens; /* 0 = 1 << 30 */
    uint64_t seed;
    int threads; /* tokenization threads, <= 0 = OpenMP default */
    int txt_blank; /* 1: text files hold documents separated by blank lines */
    int kind;      /* CPT_KIND_* (cpt/filter.h); CPT_KIND_AUTO by default */
    uint64_t min_doc_tokens, max_doc_tokens; /* 0 = no limit */
    int strict;    /* 1: malformed JSON / missing field / invalid UTF-8 is an error */
    /* Instruction data (see "Chat mode" above): 1 = every input is a .jsonl of conversations. */
    int chat;
    const char *chat_template; /* a Jinja template file; NULL = the tokenizer's chat_template */
    void (*progress)(void *user, const cpt_prepare_progress *p); /* may be NULL */
    void *progress_user;
} cpt_prepare_cfg;

/* Defaults: NFC on, filters on (all families), exact and near dedup on (5-gram, 14 x 8),
 * val_fraction 0.005, seed 1. Inputs, tokenizer and out_dir are left NULL. */
void cpt_prepare_cfg_default(cpt_prepare_cfg *c);

/* Why a document is malformed (stats.malformed_by[reason]). */
enum {
    CPT_PREP_BAD_JSON = 0, /* a .jsonl line that is not a JSON object */
    CPT_PREP_NO_FIELD,     /* a JSON object without a string text field */
    CPT_PREP_BAD_UTF8,     /* invalid UTF-8 (in a text file or a .jsonl line) */
    CPT_PREP_EMPTY,        /* nothing but whitespace after cleaning */
    CPT_PREP_BAD_CONV,     /* chat: no non-empty "messages" (or prompt + response), a message
                              without a string role, or an assistant answer the mask cannot place */
    CPT_PREP_TEMPLATE,     /* chat: the template raised (raise_exception: e.g. a rejected role) */
    CPT_PREP_N_REASONS
};
const char *cpt_prepare_reason_name(int reason); /* "bad_json", "no_field", ... */

#define CPT_PREPARE_MAX_ISSUES 10
typedef struct cpt_prepare_issue {
    size_t file;   /* index into cfg.inputs */
    uint64_t line; /* 1-based line (for invalid UTF-8 in text: the line of the first bad byte) */
    int reason;
} cpt_prepare_issue;

typedef struct cpt_prepare_stats {
    uint64_t docs_in, kept, malformed, exact_duplicates, contaminated, near_duplicates;
    uint64_t filtered; /* sum of filter.dropped */
    uint64_t too_short, too_long; /* outside [min_doc_tokens, max_doc_tokens] */
    uint64_t docs_by_kind[CPT_KIND_N]; /* not malformed documents by resolved kind */
    /* written documents (train + val) by token count: < 512, < 2K, < 8K, < 32K, < 128K, more
     * (cpt_prepare_length_bucket); a guide for min_doc_tokens of a long-context source */
    uint64_t docs_by_length[CPT_PREPARE_N_LENGTHS];
    cpt_filter_stats filter;
    uint64_t train_docs, train_tokens, train_shards;
    uint64_t val_docs, val_tokens, val_shards;
    uint64_t replaced_chars; /* U+FFFD inserted by the tokenizer (0 after step 1) */
    double seconds;
    uint64_t malformed_by[CPT_PREP_N_REASONS]; /* sums to malformed */
    uint64_t files, empty_files, bytes_in;
    cpt_prepare_issue issues[CPT_PREPARE_MAX_ISSUES]; /* the first n_issues malformed docs */
    size_t n_issues;
} cpt_prepare_stats;

/* Run the pipeline. Errors (unreadable input, bad tokenizer, disk full) name the file and
 * line; shards are committed atomically, stats.json last. */
int cpt_prepare_run(const cpt_prepare_cfg *cfg, cpt_prepare_stats *st, cpt_err *err);

/* Expand command-line inputs into a file list: a path with * ? or [ is a glob(3) pattern
 * (no match is CPT_ENOTFOUND); a directory is walked recursively, taking files named
 * *.txt, *.jsonl (and their .gz / .zst) but not names starting with '.', sorted by path
 * (bytewise) so the order never depends on the file system; any other path must be an
 * existing file and is taken as given. The list keeps argument order (each argument's
 * files sorted); *out is malloc'ed, free it with cpt_prepare_free_inputs. An empty result
 * is CPT_ENOTFOUND. */
int cpt_prepare_expand_inputs(const char *const *args, size_t n, char ***out, size_t *n_out, cpt_err *err);
void cpt_prepare_free_inputs(char **files, size_t n);

/* Documents of at least this many bytes are books under kind auto. */
#define CPT_PREPARE_LONG_DOC_BYTES 100000
/* The kind an input file implies under kind auto: CPT_KIND_CODE for a source-code
 * extension (.c .h .cc .cpp .hpp .py .js .ts .java .go .rs .rb .sh .cs .kt .swift .scala
 * .lua .php .pl .r .jl .sql .hs .ml .cu, optionally .gz / .zst), CPT_KIND_BOOK for any other
 * non-.jsonl file when txt_blank is 0 (one document per file), else CPT_KIND_AUTO (decided
 * per document by length). */
int cpt_prepare_file_kind(const char *path, int txt_blank);

#ifdef __cplusplus
}
#endif
#endif
