/* gguf_names.h: the one table of llama.cpp <-> Hugging Face tensor names for the llama,
 * qwen2 and qwen3 architectures (llama.cpp's gguf-py tensor_mapping / llama-arch.cpp), shared
 * by the GGUF importer (gguf_import.c) and exporter (gguf_export.c). Private to src/model. */
#ifndef CPT_GGUF_NAMES_H
#define CPT_GGUF_NAMES_H

/* whole-model tensors: {gguf name, HF name} */
static const char *const cpt_gguf_top_names[][2] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

/* per-layer tensors: "blk.N.<gguf>" <-> "model.layers.N.<HF>" */
static const char *const cpt_gguf_blk_names[][2] = {
    {"attn_norm.weight", "input_layernorm.weight"},    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},      {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"}, {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},          {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.bias", "self_attn.o_proj.bias"},     {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"}, {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},       {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};

#define CPT_GGUF_N_TOP (sizeof cpt_gguf_top_names / sizeof cpt_gguf_top_names[0])
#define CPT_GGUF_N_BLK (sizeof cpt_gguf_blk_names / sizeof cpt_gguf_blk_names[0])

/* The pre-tokenizer regexes behind tokenizer.ggml.pre "llama-bpe" and "qwen2" (llama-vocab.cpp),
 * as the HF tokenizer.json Split patterns of the models they came from. */
#define CPT_GGUF_LLAMA3_RE                                                                                     \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[" \
    "\\r\\n]+|\\s+(?!\\S)|\\s+"
#define CPT_GGUF_QWEN2_RE                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[" \
    "\\r\\n]+|\\s+(?!\\S)|\\s+"

/* tokenizer.ggml.token_type values (llama.cpp's llama_token_type) */
enum { CPT_GGUF_TT_NORMAL = 1, CPT_GGUF_TT_UNKNOWN = 2, CPT_GGUF_TT_CONTROL = 3, CPT_GGUF_TT_USER = 4,
       CPT_GGUF_TT_UNUSED = 5, CPT_GGUF_TT_BYTE = 6 };

#endif
