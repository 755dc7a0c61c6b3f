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
 *  - a SentencePiece tokenizer.model (protobuf ModelProto, any file name; "*.model*"
 *    names and non-JSON content are taken as one), BPE model_type only, bit-exact
 *    with the `sentencepiece` package: piece types NORMAL UNKNOWN CONTROL
 *    USER_DEFINED (matched whole, never merged) UNUSED (resegmented) BYTE;
 *    merges by piece score (highest first, ties leftmost); normalizer_spec
 *    add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces (U+2581) and
 *    either "identity" or a precompiled charsmap (nmt_nfkc, nfkc, nmt_nfkc_cf, custom
 *    rules); byte_fallback <0xNN>, else a run of unknown characters is one unk id;
 *    decode as sp.decode (control pieces invisible, unk as trainer_spec.unk_surface,
 *    the leading dummy-prefix space dropped). As in sentencepiece, CONTROL strings in
 *    the text ("<s>") are plain text, not special tokens. Refused with
 *    CPT_EUNSUPPORTED: UNIGRAM/WORD/CHAR models, treat_whitespace_as_suffix, a
 *    denormalizer charsmap, a non-identity rule name without its charsmap; Llama 3's
 *    tiktoken tokenizer.model (use its tokenizer.json). Malformed files are
 *    CPT_EFORMAT naming the byte offset.
 *  - a directory: its tokenizer.json, else its tokenizer.model.
 *  tokenizer_config.json (next to tokenizer.json as "<prefix>tokenizer_config.json",
 *  or in the .model's directory) supplies bos/eos/pad/unk tokens, chat_template and
 *  add_bos_token / add_eos_token: when either flag is present, encode(add_special)
 *  wraps the text as [bos] text [eos] by those flags (LlamaTokenizer's rule); a flag
 *  left out keeps the file's behaviour (for a .model: BOS if the model has one, no
 *  EOS). A flag asking for a token the tokenizer lacks is CPT_EFORMAT (transformers
 *  would add a new token; cpt does not grow the vocabulary).
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
 * SentencePiece and invalid UTF-8: the replacement above happens before
 * normalization, so a truncated sequence is one U+FFFD where sentencepiece would
 * give one per byte; for valid UTF-8 ids are identical.
 *
 * Thread safety: encode/decode may be called from many threads at once on one
 * cpt_tok. Its only mutable part is a mutex-guarded pool of scratch buffers, each
 * with a pre-token cache (BPE results of repeated words; bounded: 65536 words, 1M
 * ids, dropped when full): a call (or each batch thread) borrows one and returns
 * it, so caches stay warm across calls. At most 64 are kept.
 * Not supported: BPE dropout, SentencePiece unigram models.
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

/* Load a tokenizer from `path`: a tokenizer.json, a SentencePiece tokenizer.model, or
 * a directory holding one (tokenizer.json preferred).
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
 * Threads take contiguous runs of documents (about total/(16*threads) bytes, at
 * least 16 KiB) dynamically.
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
/* Special ids: tokenizer_config.json's tokens, else the file's (the template's first
 * token; for a .model the CONTROL pieces named by trainer_spec bos/eos/pad_piece and
 * the UNKNOWN piece; for tokenizer.json the model's unk_token); -1 when none. */
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
/* 1 if id is a special added token (for a .model: a CONTROL piece). */
int cpt_tok_is_special(const cpt_tok *t, int32_t id);

/* The tokenizer as a SentencePiece vocabulary: what GGUF's tokenizer.ggml.model "llama"
 * (llama.cpp's SPM tokenizer; transformers' GGUF loader) stores and rebuilds merges from.
 * Two sources are representable:
 *  - a SentencePiece BPE .model: pieces, scores and types exactly as in the file;
 *  - a SentencePiece-style BPE tokenizer.json (byte_fallback; normalizer
 *    Prepend("\u2581") + Replace(" ", "\u2581") or Replace alone, no pre-tokenizer; or
 *    no normalizer and Metaspace("\u2581", split false)): scores from the merges, the
 *    piece made by merge rank r scoring -r (so "highest score first" is "lowest rank
 *    first"), pieces no merge makes scoring below all of them (-(n_merges + id)), other
 *    types 0.0 as sentencepiece gives them; types BYTE for <0xNN>, UNKNOWN for the unk
 *    token, CONTROL / USER_DEFINED for special / other added tokens, else NORMAL. It is
 *    refused unless every split of a NORMAL piece into two NORMAL pieces is one of its
 *    merges (true of tokenizer.json files converted from a .model): otherwise
 *    SentencePiece's score-ordered merging would reach pieces that BPE never makes.
 * Refused with CPT_EUNSUPPORTED (naming what, with a HINT): byte-level BPE (GGUF
 * "gpt2" instead), a .model with a precompiled charsmap (nmt_nfkc...) or without
 * escape_whitespaces, and any other normalizer / pre-tokenizer / template. */
typedef struct cpt_tok_spm_vocab {
    int32_t n;              /* ids 0..n-1 (cpt_tok_vocab_size) */
    const char **piece;     /* [n] token text owned by the cpt_tok; NULL for an unused id */
    uint32_t *len;          /* [n] bytes of piece[i] */
    float *score;           /* [n] */
    int32_t *type;          /* [n] 1 NORMAL 2 UNKNOWN 3 CONTROL 4 USER_DEFINED 5 UNUSED 6 BYTE */
    int add_space_prefix;   /* "\u2581" prepended to the text (add_dummy_prefix) */
    int remove_extra_ws;    /* runs of spaces collapsed, leading/trailing ones dropped */
    int add_bos, add_eos;   /* what encode(add_special) puts around the text */
} cpt_tok_spm_vocab;
/* Fill *v (free with cpt_tok_spm_vocab_free, also after a failure). */
int cpt_tok_spm_vocab_get(const cpt_tok *t, cpt_tok_spm_vocab *v, cpt_err *err);
void cpt_tok_spm_vocab_free(cpt_tok_spm_vocab *v);

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
