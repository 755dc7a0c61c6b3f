/* cpt/ifeval.h: instruction-following retention, verifiable instructions in the style of
 * IFEval (Zhou et al. 2023, arXiv 2311.07911): each prompt carries one or more
 * instructions that a rule checks on the response ("answer in all lowercase", "exactly 3
 * bullet points", "end with the phrase ..."). The prompt goes through the model's chat
 * template (add_generation_prompt), the reply is greedy, and the score is prompt-level
 * strict accuracy (every instruction of the prompt followed) plus instruction-level
 * accuracy, each with lm-eval's standard error (sample std / sqrt(n)).
 *
 * The built-in set "ifeval" (src/eval/ifeval_cpt.jsonl, embedded in the binary) holds
 * 100 prompts written for this project; users may pass their own JSONL of the same form:
 *   {"id": "if-001", "prompt": "...", "checks": [{"type": "lowercase"}, {"type":
 *    "max_words", "n": 40}, {"type": "include", "word": "river"}]}
 *
 * Rules (text = the decoded reply with leading / trailing whitespace removed; "word" =
 * a maximal run of non-whitespace; letters and case are ASCII):
 *   lowercase            no A-Z anywhere, at least one letter
 *   uppercase            no a-z anywhere, at least one letter
 *   max_words n / min_words n      word count <= n / >= n
 *   bullets n            exactly n lines starting (after spaces) with "* " or "- "
 *   numbered n           exactly n lines starting with digits then ". " or ") "
 *   include word / exclude word    the word occurs / does not occur, case-insensitive
 *                        substring (IFEval's keyword checks)
 *   count_min word n     the word occurs at least n times (case-insensitive, whole words)
 *   starts_with s / ends_with s    text starts / ends with s, case-insensitive
 *   json                 text, without a ```json ... ``` or ``` ... ``` fence, is one JSON value
 *   no_commas            no ','
 *   quoted               text is wrapped in double quotes
 *   title                contains <<something>> (non-empty, on one line)
 *   paragraphs n         exactly n non-empty paragraphs separated by *** lines
 *   postscript s         a line starts with s (e.g. "P.S."), case-insensitive
 *   highlights n         at least n *highlighted* spans (one line, non-empty)
 *   placeholders n       at least n [placeholders] (one line, non-empty)
 *   one_of "a|b|c"       text contains one of the options, exactly
 *   caps_words_max n / caps_words_min n   words of 2+ letters in all capitals <= n / >= n
 */
#ifndef CPT_IFEVAL_H
#define CPT_IFEVAL_H

#include <stddef.h>
#include <stdio.h>

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CPT_IF_LOWERCASE, CPT_IF_UPPERCASE, CPT_IF_MAX_WORDS, CPT_IF_MIN_WORDS, CPT_IF_BULLETS, CPT_IF_NUMBERED,
    CPT_IF_INCLUDE, CPT_IF_EXCLUDE, CPT_IF_COUNT_MIN, CPT_IF_STARTS_WITH, CPT_IF_ENDS_WITH, CPT_IF_JSON,
    CPT_IF_NO_COMMAS, CPT_IF_QUOTED, CPT_IF_TITLE, CPT_IF_PARAGRAPHS, CPT_IF_POSTSCRIPT, CPT_IF_HIGHLIGHTS,
    CPT_IF_PLACEHOLDERS, CPT_IF_ONE_OF, CPT_IF_CAPS_MAX, CPT_IF_CAPS_MIN, CPT_IF_NKINDS
};
enum { CPT_IF_MAX_CHECKS = 6 };

typedef struct cpt_if_check {
    int kind;   /* CPT_IF_* */
    long long n;
    char *s;    /* word / phrase / options (malloc'ed), or NULL */
} cpt_if_check;

typedef struct cpt_if_item {
    char *id, *prompt;
    int n_checks;
    cpt_if_check checks[CPT_IF_MAX_CHECKS];
} cpt_if_item;

typedef struct cpt_if_set {
    cpt_if_item *items;
    size_t n;
} cpt_if_set;

/* The rule's name in the JSONL ("lowercase", ...), or NULL for a bad kind. */
const char *cpt_if_kind_name(int kind);
/* Parse JSONL text (label names it in errors: "label:LINE: ..."); blank lines skipped.
 * An unknown rule, a missing or wrong-typed argument, no checks or more than
 * CPT_IF_MAX_CHECKS is CPT_EFORMAT naming the line and the field. limit > 0 keeps the
 * first `limit` prompts. */
int cpt_if_parse(cpt_if_set *s, const char *text, size_t len, const char *label, size_t limit, cpt_err *err);
/* "ifeval" (the built-in set) or a path of a JSONL file. */
int cpt_if_load(cpt_if_set *s, const char *name, size_t limit, cpt_err *err);
void cpt_if_free(cpt_if_set *s);
/* 1 when the response follows the instruction. */
int cpt_if_follows(const cpt_if_check *c, const char *response);

typedef struct cpt_if_result {
    size_t n, n_inst;
    double acc, acc_stderr;           /* prompt-level strict accuracy */
    double inst_acc, inst_acc_stderr; /* instruction-level */
    double seconds;
    char **responses;                 /* [n] decoded replies (malloc'ed) */
    int *follows;                     /* [n * CPT_IF_MAX_CHECKS] per instruction */
} cpt_if_result;

struct cpt_model;
struct cpt_tok;

/* Generate a reply to each prompt (the model's chat template, or template_src when not
 * NULL; greedy; at most max_new tokens, stopping at the model's or the tokenizer's end
 * of sequence) and check it. batch > 1: that many prompts decode together
 * (cpt_generate_batch; replies equal one at a time up to greedy near ties). progress (may
 * be NULL) gets a line per prompt. */
int cpt_if_run(struct cpt_model *m, const struct cpt_tok *tok, const char *template_src, const cpt_if_set *s,
               int max_new, int batch, FILE *progress, cpt_if_result *r, cpt_err *err);
void cpt_if_result_free(cpt_if_result *r);

/* The built-in prompt set's JSONL text (generated into the build from
 * src/eval/ifeval_cpt.jsonl). */
extern const char cpt_ifeval_builtin[];
extern const size_t cpt_ifeval_builtin_len;

#ifdef __cplusplus
}
#endif
#endif
