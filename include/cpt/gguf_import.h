/* cpt/gguf_import.h: a llama.cpp GGUF model (arch llama, qwen2, qwen3) as a cpt model and a
 * Hugging Face directory: config from the `{arch}.*` keys, tensors dequantized to fp32
 * masters with HF names (llama.cpp's q/k row permutation undone for llama), and the
 * tokenizer (`tokenizer.ggml.*`) as tokenizer.json + tokenizer_config.json.
 *
 * Used by `cpt convert --from gguf FILE.gguf --out DIR`. Errors name the file and the key
 * or tensor; anything cpt cannot represent faithfully (an unknown architecture, llama3
 * rope_freqs, an unsupported tensor type, an unknown pre-tokenizer) is refused, never
 * approximated. */
#ifndef CPT_GGUF_IMPORT_H
#define CPT_GGUF_IMPORT_H

#include "cpt/gguf.h"
#include "cpt/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* config.json text (malloc'ed) that transformers and cpt_config_parse accept. */
int cpt_gguf_config_json(const cpt_gguf *g, char **json, cpt_err *err);
/* Build a cpt model from an open GGUF file (every tensor mapped, shapes checked). */
int cpt_model_from_gguf(cpt_model **out, const cpt_gguf *g, cpt_err *err);
/* Write DIR/tokenizer.json, DIR/tokenizer_config.json and DIR/special_tokens_map.json
 * (tokenizer.ggml.model "gpt2": byte-level BPE; "llama": SentencePiece BPE with byte
 * fallback). DIR must exist. */
int cpt_gguf_write_tokenizer(const cpt_gguf *g, const char *dir, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif
