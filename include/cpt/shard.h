/* cpt/shard.h: token shards, the on-disk unit of prepared training data.
 *
 * A shard holds documents as token sequences. The trainer maps it read-only and reads
 * document i in O(1); the writer streams documents to disk in bounded memory and
 * commits atomically (tmp + fsync + rename), so a crash never leaves a torn shard.
 *
 * ---------------------------------------------------------------------------------
 * File format, versions 1 and 2 (2 = 1 + an optional loss-mask section). All integers little-endian. Offsets are u64 bytes from the
 * start of the file, so shards larger than 4 GiB are fine.
 *
 *   offset  size  field
 *   0       8     magic "CPTSHARD"
 *   8       4     u32 version: 1, or 2 (written only for shards with a loss mask)
 *   12      4     u32 token_bytes: 2 (u16 tokens) or 4 (u32 tokens); the writer picks
 *                 2 when vocab_size <= 65536, else 4
 *   16      4     u32 vocab_size: every token is < vocab_size (checked by the writer
 *                 and by cpt_shard_verify)
 *   20      4     u32 flags: v1: 0. v2: bit 0 = HAS_MASK (set); other bits reserved
 *                 (readers reject them)
 *   24      8     u64 n_docs
 *   32      8     u64 n_tokens
 *   40      8     u64 index_offset = align8(64 + n_tokens * token_bytes)
 *   48      8     u64 file_size = index_offset + (n_docs + 1) * 8 (+ mask_bytes in v2)
 *   56      4     u32 body_crc: CRC-32 (IEEE 802.3, as zlib's crc32) of bytes
 *                 [64, file_size): token data, zero padding, index (, mask)
 *   60      4     u32 header_crc: CRC-32 of bytes [0, 60)
 *   64      ...   token data: n_tokens tokens of token_bytes each, documents back to
 *                 back in order; then zero bytes up to index_offset
 *   index_offset  (n_docs + 1) u64 token offsets: off[0] = 0, off[n_docs] = n_tokens,
 *                 non-decreasing; document i is tokens [off[i], off[i+1]) (empty
 *                 documents are allowed)
 *   mask_offset = index_offset + (n_docs + 1) * 8 (v2 with HAS_MASK only):
 *                 mask_bytes = align8(ceil(n_tokens / 8)) bytes; bit (t mod 8) of byte
 *                 (t div 8) is 1 when token t carries loss (an assistant token of a chat
 *                 document), 0 when it is context only (prompt, template); the padding
 *                 bits are 0. A shard without a mask carries loss on every token.
 *
 * Version policy: the writer emits version 1, byte for byte as before, unless a document
 * was added with a mask; readers accept both versions.
 *
 * What open checks (before any allocation, with overflow-safe arithmetic against the
 * real file length): magic, version, header_crc, token_bytes, flags, the size fields,
 * and the whole document index (monotone, first 0, last n_tokens): O(n_docs) reads of
 * the index only. The token data and body_crc are checked lazily by cpt_shard_verify
 * (O(file size)), which the data pipeline runs once after writing and the trainer may
 * run at start-up. Every error names the file and the byte offset of the bad field.
 * ---------------------------------------------------------------------------------
 */
#ifndef CPT_SHARD_H
#define CPT_SHARD_H

#include "cpt/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CPT_SHARD_MAGIC "CPTSHARD"
#define CPT_SHARD_VERSION 2u /* the newest version read and written */
#define CPT_SHARD_FLAG_MASK 1u
#define CPT_SHARD_HEADER_BYTES 64u

/* CRC-32 (IEEE, reflected, poly 0xEDB88320) continuing from `crc` (start with 0);
 * identical to zlib's crc32(). */
uint32_t cpt_crc32(uint32_t crc, const void *data, size_t n);

/* ---- reader ---- */
typedef struct cpt_shard cpt_shard;

/* Map and validate the shard at `path` (see "What open checks" above). */
int cpt_shard_open(cpt_shard **out, const char *path, cpt_err *err);
/* The same checks on bytes in memory (not copied: `data` must outlive the shard);
 * `label` names the input in messages. Used by the fuzz target and tests. */
int cpt_shard_open_mem(cpt_shard **out, const void *data, size_t size, const char *label,
                       cpt_err *err);
void cpt_shard_close(cpt_shard *s);

uint64_t cpt_shard_n_docs(const cpt_shard *s);
uint64_t cpt_shard_n_tokens(const cpt_shard *s);
uint32_t cpt_shard_token_bytes(const cpt_shard *s);
uint32_t cpt_shard_vocab_size(const cpt_shard *s);
const char *cpt_shard_label(const cpt_shard *s);
uint32_t cpt_shard_version(const cpt_shard *s);
/* 1 when the shard has a loss-mask section (see format). */
int cpt_shard_has_mask(const cpt_shard *s);
/* Loss mask of tokens [start, start + n) as 0/1 bytes (all 1 without a mask section). */
void cpt_shard_mask(const cpt_shard *s, uint64_t start, uint64_t n, uint8_t *dst);
/* Tokens that carry loss (n_tokens without a mask section). O(n_tokens / 8). */
uint64_t cpt_shard_mask_count(const cpt_shard *s);

/* Document i (i < n_docs, asserted): its first token's index in the shard and length. */
void cpt_shard_doc_range(const cpt_shard *s, uint64_t i, uint64_t *start, uint64_t *len);
/* Index of the document holding token t (t < n_tokens, asserted); O(log n_docs). */
uint64_t cpt_shard_doc_of_token(const cpt_shard *s, uint64_t t);
/* Copy tokens [start, start + n) (must lie inside the shard, asserted) widened to u32. */
void cpt_shard_tokens(const cpt_shard *s, uint64_t start, uint64_t n, uint32_t *dst);

/* Full check: body_crc and every token < vocab_size. Errors name file and offset. */
int cpt_shard_verify(const cpt_shard *s, cpt_err *err);

/* ---- writer ----
 * Memory: the token data streams through stdio; the document index stays in memory
 * (8 bytes per document) until commit writes it after the tokens. */
typedef struct cpt_shard_writer cpt_shard_writer;

/* Start a shard at `path` (written to a temp file until commit). vocab_size in
 * [1, 2^32 - 1] chooses the token width (see format). */
int cpt_shard_writer_open(cpt_shard_writer **out, const char *path, uint32_t vocab_size,
                          cpt_err *err);
/* Append one document of n tokens (n may be 0). A token >= vocab_size is CPT_EINVAL
 * and leaves the writer unchanged. */
int cpt_shard_writer_add(cpt_shard_writer *w, const uint32_t *tokens, size_t n, cpt_err *err);
/* The same with a per-token loss mask (mask[i] != 0: token i carries loss). The first
 * masked document makes the shard a version-2 shard with a mask section; documents added
 * without one carry loss on every token. The mask bits stay in memory until commit
 * (n_tokens / 8 bytes). */
int cpt_shard_writer_add_masked(cpt_shard_writer *w, const uint32_t *tokens, const uint8_t *mask, size_t n,
                                cpt_err *err);
uint64_t cpt_shard_writer_n_docs(const cpt_shard_writer *w);
uint64_t cpt_shard_writer_n_tokens(const cpt_shard_writer *w);
/* Write index and header, fsync and rename into place; frees the writer either way. */
int cpt_shard_writer_commit(cpt_shard_writer *w, cpt_err *err);
/* Drop the temp file and free the writer (NULL is fine). */
void cpt_shard_writer_abort(cpt_shard_writer *w);

#ifdef __cplusplus
}
#endif
#endif
