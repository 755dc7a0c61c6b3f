/* cpt/tokenizer.h: text <-> token ids, bit-exact with Hugging Face `tokenizers`.
 *
 * Supported inputs (cpt_tok_load):
 *  - tokenizer.json (HF `tokenizers` serialisation) with a BPE model:
 *      normalizers   NFC NFD NFKC NFKD Lowercase Strip Prepend Replace Sequence
 *      pre-tokenizers ByteLevel (use_regex, add_prefix_space), Split (Regex or String
 *                    pattern; Isolated/Removed/MergedWithPrevious/MergedWithNext/
 *                    Contiguous; invert), Metaspace, Sequence
 *      model         BPE: merges as "a b" strings or [a, b] pairs, ignore_merges,
 *                    unk_token + fuse_unk, byte_fallback (<0xNN>),
 *                    continuing_subword_prefix, end_of_word_suffix. (No dropout.)
 *      added tokens  special or not; lstrip, rstrip, single_word, normalized; matched
 *                    leftmost-longest before the model, as HF does. Special tokens in
 *                    the text are ALWAYS recognised (HF's split_special_tokens=False),
 *                    whatever add_special says.
 *      post-proc.    TemplateProcessing (single template), ByteLevel (no effect on ids),
 *                    Sequence. Truncation and padding in the file are ignored: a
 *                    pretraining pipeline wants every token.
 *      decoders      ByteLevel Replace ByteFallback Fuse Strip Metaspace Sequence
 *  - a directory holding tokenizer.json; a tokenizer_config.json next to the file is
 *    read for bos/eos/pad tokens and chat_template.
 *  Anything else returns CPT_EUNSUPPORTED with the file and the field named.
 *
 * Invalid UTF-8 input: cpt_tok_encode never fails on bad bytes. Each maximal invalid
 * subsequence is replaced by U+FFFD exactly as Python's
 * bytes.decode("utf-8", errors="replace") does (the Unicode "maximal subpart"
 * practice: a truncated but otherwise valid prefix of a sequence is ONE U+FFFD, every
 * other bad byte is one U+FFFD each; surrogates U+D800..DFFF, overlongs and values
 * above U+10FFFF are invalid). The number of U+FFFD inserted is returned in
 * *n_replaced; the caller decides whether that is an error. cpt_tok_utf8_sanitize
 * exposes the same routine.
 *
 * Thread safety: a loaded cpt_tok is immutable; encode/decode may be called from many
 * threads at once. The pre-token cache (BPE results of repeated words) lives in the
 * per-call / per-thread scratch, bounded (65536 words, 1M ids) and dropped when full.
 * Not yet supported: SentencePiece .model files (CPT_EUNSUPPORTED), BPE dropout.
 */
#ifndef CPT_TOKENIZER_H
#define CPT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpt_tok cpt_tok;

/* Load a tokenizer from `path`: a tokenizer.json file or a directory containing one.
 * On success *out owns everything (free with cpt_tok_free). On failure *out is NULL
 * and err names the file, the JSON field and a HINT. */
int cpt_tok_load(cpt_tok **out, const char *path, cpt_err *err);
void cpt_tok_free(cpt_tok *t);

/* Encode `len` bytes of `text` (need not be NUL-terminated, may contain NUL and
 * invalid UTF-8). add_special != 0 applies the post-processor template (e.g. BOS);
 * special-token strings in the text are matched either way.
 * *ids is malloc'ed (free() it; non-NULL even when *n_ids == 0). n_replaced may be
 * NULL. Errors: CPT_ENOMEM, CPT_EINVAL (text NULL with len > 0). */
int cpt_tok_encode(const cpt_tok *t, const char *text, size_t len, int add_special,
                   int32_t **ids, size_t *n_ids, size_t *n_replaced, cpt_err *err);

/* Encode `n` documents with up to `n_threads` OpenMP threads (<= 0: OpenMP default).
 * out_ids[i] / out_n[i] receive document i's ids exactly as cpt_tok_encode would;
 * out_replaced may be NULL. On error every out_ids[i] is freed and set to NULL, and
 * err names the first failing document. */
int cpt_tok_encode_batch(const cpt_tok *t, const char *const *texts, const size_t *lens,
                         size_t n, int add_special, int n_threads, int32_t **out_ids,
                         size_t *out_n, size_t *out_replaced, cpt_err *err);

/* Decode ids to text (malloc'ed, NUL-terminated, *len excludes the NUL). Ids outside
 * the vocabulary are skipped (as HF does). skip_special drops special added tokens.
 * The result is valid UTF-8 (bad byte runs become U+FFFD, as HF does). */
int cpt_tok_decode(const cpt_tok *t, const int32_t *ids, size_t n, int skip_special,
                   char **text, size_t *len, cpt_err *err);

/* Number of ids: max id over the model vocabulary and added tokens, plus one. */
int cpt_tok_vocab_size(const cpt_tok *t);
/* Special ids from tokenizer_config.json (or the template / well-known names);
 * -1 when the tokenizer has none. */
int cpt_tok_bos(const cpt_tok *t);
int cpt_tok_eos(const cpt_tok *t);
int cpt_tok_pad(const cpt_tok *t);
int cpt_tok_unk(const cpt_tok *t);
/* The chat template string from tokenizer_config.json, NULL if none. Owned by t. */
const char *cpt_tok_chat_template(const cpt_tok *t);
/* The token string of `id` (model vocab or added token, as stored in the file, e.g.
 * "Ġthe"); NULL if id is out of range or unused. Owned by t. */
const char *cpt_tok_piece(const cpt_tok *t, int32_t id);
/* The id of an exact token string, or -1. */
int32_t cpt_tok_piece_id(const cpt_tok *t, const char *piece, size_t len);
/* 1 if id is a special added token. */
int cpt_tok_is_special(const cpt_tok *t, int32_t id);

/* Replace invalid UTF-8 as described above. *out is malloc'ed and NUL-terminated
 * (*out_len excludes the NUL); returns the number of replacements made, or
 * CPT_ENOMEM. When the input is already valid, *out is a plain copy. */
long cpt_tok_utf8_sanitize(const char *in, size_t len, char **out, size_t *out_len);

/* Write a byte-level tokenizer.json + tokenizer_config.json into dir: one token per
 * byte (ids 0..255 = byte values), <|bos|> = 256 (added at the start by the template),
 * <|eos|> = 257. For models trained from scratch; vocab_size must be >= 258. */
int cpt_tok_write_bytelevel(const char *dir, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif /* CPT_TOKENIZER_H */
