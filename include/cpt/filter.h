/* cpt/filter.h: document quality filters after Gopher (quality + repetition) and C4.
 *
 * The rules and default thresholds are those of methods.md §11.3-11.4 (datatrove's
 * GopherRepetitionFilter, GopherQualityFilter and C4QualityFilter). Every rule is
 * configurable (a negative threshold disables it) and counted: cpt_filter_apply returns
 * the first rule that fired, so documents in = kept + sum of per-rule drops.
 *
 * Definitions shared by the rules (lengths are in Unicode code points, as Python len()):
 *  - words: whitespace-separated tokens, with a leading and a trailing run of punctuation
 *    split off as their own tokens ("Hello," -> "Hello" ","), approximating the word
 *    tokenizer datatrove uses. Punctuation = Unicode categories P* and S* (ASCII ispunct
 *    without utf8proc). A "non-symbol word" has at least one non-punctuation character.
 *  - lines (quality, C4): split on \n, \r\n, \r, no trailing empty line (str.splitlines);
 *    lines (repetition): split on runs of \n (re.split(r"\n+", text));
 *    paragraphs: split of the stripped text on runs of 2+ \n.
 *
 * Order and rules (first match drops the document):
 *  Gopher repetition: duplicate paragraphs / len > 0.30, duplicate paragraph characters /
 *    text length > 0.20, duplicate lines > 0.30, duplicate line characters > 0.20
 *    (a duplicate is a repeat of an earlier element); the most frequent n-gram
 *    (" ".join) for n = 2, 3, 4: count * length / text length > 0.20, 0.18, 0.16, only
 *    when it occurs at least twice (an n-gram seen once repeats nothing: without this a
 *    short document, or CJK text whose "words" are whole clauses, is dropped because
 *    its first three words are 18% of it);
 *    duplicated n-grams ("".join, scanning left to right and jumping n words after a
 *    repeat) for n = 5..10: repeated characters / text length > 0.15 .. 0.10.
 *  Gopher quality: non-symbol words < 50 (or > max_words: off by default, since a book
 *    has several hundred thousand words; Gopher's 100000 was a web-page limit); mean non-symbol word length < 3 or
 *    > 10; count("#") / words > 0.1; (count("...") + count("…")) / words > 0.1; lines
 *    starting (after leading blanks) with "•" > 90%; lines ending (before trailing blanks)
 *    with "..." or "…" > 30%; words with an alphabetic character < 80%; fewer than 2
 *    stop words {the, be, to, of, and, that, have, with} (compared in lower case).
 *  C4 (line filters then document filters; it also rewrites the text): each line is
 *    stripped; dropped if it has a word (whitespace split) longer than 1000 characters;
 *    citations "[<digits>]", "[edit]", "[citation needed]" are removed; dropped if it does
 *    not end in . ? ! " ' or ends in "..."; dropped if it has fewer than 3 words; the
 *    document is dropped if a kept-so-far line contains "lorem ipsum" (any case); lines
 *    containing "javascript" (any case) are dropped; the document is dropped if a line
 *    contains "{"; lines with a policy phrase (terms of use, privacy policy, cookie
 *    policy, uses cookies, use of cookies, use cookies) are dropped; the document is
 *    dropped with fewer than 5 sentences in the kept lines (a sentence ends at a run of
 *    . ? ! followed by a blank or the line end; a kept line counts at least one). The
 *    kept lines joined by "\n" are the new text.
 *  Not implemented: the C4 bad-words list (LDNOOBW) and the mC4 paragraph filter.
 *
 * Script awareness (cfg.script_aware, on by default; cpt_filter_apply only). The rules
 * above are English-web rules. cpt_filter_script classifies a document by its letters:
 *  - CPT_SCRIPT_NOSPACE when more than half are Han, kana, Hangul, Thai, Lao, Khmer,
 *    Myanmar or Tibetan (text written without spaces between words, or, for Hangul, with
 *    particles fused to words): every word-based rule is off (word counts, mean word
 *    length, "#" and ellipsis per word, alphabetic words, stop words, the top and
 *    duplicated n-gram rules), and C4's terminal-punctuation, words-per-line and
 *    sentence rules are off (lines end in U+3002 and friends). The duplicate line and
 *    paragraph rules, counted in characters, stay on.
 *  - CPT_SCRIPT_OTHER when more than half are letters of another non-Latin script
 *    (Cyrillic, Greek, Arabic, Devanagari, ...): the English stop-word rule and C4's
 *    terminal-punctuation and sentence rules are off.
 *  - CPT_SCRIPT_LATIN otherwise (also a document without letters): all rules as above.
 *
 * Document kinds (cpt_filter_cfg_for_kind): "web" = the rules above; "book" = Gopher
 * repetition and quality but no C4 (its line rules delete a book's hard-wrapped and verse
 * lines: they do not end in terminal punctuation); "code" = no quality rule at all (only
 * deduplication applies). "auto" is resolved by the caller (cpt/prepare.h).
 */
#ifndef CPT_FILTER_H
#define CPT_FILTER_H

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CPT_FR_KEEP = 0,
    /* Gopher repetition */
    CPT_FR_DUP_PARAS,
    CPT_FR_DUP_PARA_CHARS,
    CPT_FR_DUP_LINES,
    CPT_FR_DUP_LINE_CHARS,
    CPT_FR_TOP_2GRAM,
    CPT_FR_TOP_3GRAM,
    CPT_FR_TOP_4GRAM,
    CPT_FR_DUP_5GRAM,
    CPT_FR_DUP_6GRAM,
    CPT_FR_DUP_7GRAM,
    CPT_FR_DUP_8GRAM,
    CPT_FR_DUP_9GRAM,
    CPT_FR_DUP_10GRAM,
    /* Gopher quality */
    CPT_FR_FEW_WORDS,
    CPT_FR_MANY_WORDS,
    CPT_FR_SHORT_WORDS,
    CPT_FR_LONG_WORDS,
    CPT_FR_HASHES,
    CPT_FR_ELLIPSES,
    CPT_FR_BULLET_LINES,
    CPT_FR_ELLIPSIS_LINES,
    CPT_FR_ALPHA_WORDS,
    CPT_FR_STOP_WORDS,
    /* C4 document rules */
    CPT_FR_C4_LOREM,
    CPT_FR_C4_CURLY,
    CPT_FR_C4_FEW_SENTENCES,
    CPT_FR_N_RULES
};

/* C4 line rules (lines dropped, counted separately; they do not drop documents). */
enum {
    CPT_C4L_LONG_WORD = 0,
    CPT_C4L_NO_TERMINAL,
    CPT_C4L_FEW_WORDS,
    CPT_C4L_JAVASCRIPT,
    CPT_C4L_POLICY,
    CPT_C4L_N
};

/* Stable snake_case names ("gopher_dup_paras", "c4_curly", ...) for stats.json. */
const char *cpt_filter_rule_name(int rule);
const char *cpt_filter_line_rule_name(int rule);

typedef struct cpt_filter_cfg {
    int gopher_repetition, gopher_quality, c4; /* families on (1) / off (0) */
    /* Gopher repetition; a negative value disables the rule */
    double dup_para_frac, dup_para_char_frac, dup_line_frac, dup_line_char_frac;
    double top_ngram_frac[3]; /* n = 2, 3, 4 */
    double dup_ngram_frac[6]; /* n = 5 .. 10 */
    /* Gopher quality */
    double min_words, max_words, min_mean_word_len, max_mean_word_len;
    double max_hash_ratio, max_ellipsis_ratio, max_bullet_lines, max_ellipsis_lines;
    double min_alpha_words, min_stop_words;
    /* C4 (negative disables a count rule; 0 disables a switch) */
    int c4_max_word_len, c4_min_words_per_line, c4_min_sentences;
    int c4_citations, c4_terminal_punct, c4_lorem, c4_javascript, c4_curly, c4_policy;
    int script_aware; /* 1: cpt_filter_apply turns rules off by script (see above) */
} cpt_filter_cfg;

/* All three families on with the thresholds above (max_words off), script_aware on. */
void cpt_filter_cfg_default(cpt_filter_cfg *c);

enum { CPT_SCRIPT_LATIN = 0, CPT_SCRIPT_OTHER, CPT_SCRIPT_NOSPACE, CPT_SCRIPT_N };
/* The script class of a UTF-8 text (see "Script awareness"). */
int cpt_filter_script(const char *text, size_t n);
const char *cpt_filter_script_name(int script); /* "latin", "other", "nospace" */
/* *out = *c with the rules that do not apply to `script` turned off. */
void cpt_filter_cfg_for_script(const cpt_filter_cfg *c, int script, cpt_filter_cfg *out);

enum { CPT_KIND_AUTO = 0, CPT_KIND_WEB, CPT_KIND_BOOK, CPT_KIND_CODE, CPT_KIND_N };
const char *cpt_filter_kind_name(int kind); /* "auto", "web", "book", "code" */
int cpt_filter_kind_parse(const char *name); /* a CPT_KIND_* or -1 */
/* *out = *c with the families of `kind` (web: unchanged, book: no C4, code: none). */
void cpt_filter_cfg_for_kind(const cpt_filter_cfg *c, int kind, cpt_filter_cfg *out);

typedef struct cpt_filter_stats {
    uint64_t docs, kept;
    uint64_t dropped[CPT_FR_N_RULES]; /* [CPT_FR_KEEP] unused */
    uint64_t c4_lines_dropped[CPT_C4L_N], c4_citations; /* lines dropped by rule, citations cut */
    uint64_t by_script[CPT_SCRIPT_N]; /* documents per script class (script_aware only) */
} cpt_filter_stats;

/* Each family alone on `text` (UTF-8, n bytes; invalid bytes count as one character
 * each): the first rule that fires, or CPT_FR_KEEP. Never fails except on out of memory
 * (returns CPT_ENOMEM, which is negative). */
int cpt_filter_gopher_repetition(const cpt_filter_cfg *c, const char *text, size_t n);
int cpt_filter_gopher_quality(const cpt_filter_cfg *c, const char *text, size_t n);
/* C4: *out gets the rewritten text (malloc'ed, NUL-terminated; NULL when dropped).
 * line_counts[CPT_C4L_N] and citations (may be NULL) are incremented. */
int cpt_filter_c4(const cpt_filter_cfg *c, const char *text, size_t n, char **out, size_t *out_n,
                  uint64_t *line_counts, uint64_t *citations);

/* The enabled families in order repetition, quality, C4, with the rules of the document's
 * script (when c->script_aware); counts into st (may be NULL).
 * Returns the rule (>= 0) or a negative status; *out as for cpt_filter_c4 (a copy of
 * the text when C4 is off). */
int cpt_filter_apply(const cpt_filter_cfg *c, const char *text, size_t n, char **out, size_t *out_n,
                     cpt_filter_stats *st, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif
