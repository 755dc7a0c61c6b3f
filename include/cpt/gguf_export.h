/* cpt/gguf_export.h: a cpt model (+ its Hugging Face tokenizer files) as a llama.cpp GGUF v3
 * file, the inverse of cpt/gguf_import.h: general.architecture llama (also for Mistral
 * without sliding window), qwen2 or qwen3; the {arch}.* hyperparameters; tensors with
 * llama.cpp names, llama's q/k rows permuted as convert_hf_to_gguf does; token_embd and
 * output (omitted when tied); 1-D tensors (norms, biases) always F32, as llama.cpp keeps
 * them; 2-D tensors in the chosen type, except that Q8_0 falls back to F16 for a tensor whose
 * rows (ne[0]) are not a multiple of 32, as llama.cpp's quantizer does. The tokenizer is
 * read from TOK_DIR/tokenizer.json, else TOK_DIR/tokenizer.model (+ tokenizer_config.json):
 * a byte-level BPE becomes tokenizer.ggml.model "gpt2" with tokens, token_type, merges and
 * tokenizer.ggml.pre when the pre-tokenizer is one llama.cpp names (gpt2, smollm,
 * llama-bpe, qwen2); a SentencePiece .model or SentencePiece-style BPE tokenizer.json
 * (byte_fallback) becomes "llama" with tokens, scores and token_type as cpt's tokenizer
 * holds them (cpt_tok_spm_vocab_get), tokenizer.ggml.pre "default", add_space_prefix and,
 * when the .model collapses spaces, remove_extra_whitespaces; both get special ids,
 * add_bos/add_eos and the chat template. Anything GGUF (or cpt's importer) cannot represent
 * faithfully is refused by name with a HINT, never approximated: a Unigram/WordPiece
 * tokenizer, an unknown pre-tokenizer, a SentencePiece charsmap normalizer or merges that
 * scores cannot rebuild, llama3/dynamic/longrope RoPE scaling, partial rotary, sliding
 * window, MLP biases. */
#ifndef CPT_GGUF_EXPORT_H
#define CPT_GGUF_EXPORT_H

#include "cpt/gguf.h"
#include "cpt/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "f32" | "f16" | "bf16" | "q8_0" -> ggml type id; -1 for anything else. */
int cpt_gguf_export_type(const char *name);
/* Write `path` atomically. type: CPT_GGML_F32, F16, BF16 or Q8_0. tok_dir: a directory with
 * tokenizer.json or tokenizer.model (required: a GGUF model without a tokenizer does not
 * load in llama.cpp). */
int cpt_model_save_gguf(const cpt_model *m, const char *tok_dir, const char *path, uint32_t type, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif
