/* gguf_tokenizer.c: tokenizer.ggml.* metadata -> tokenizer.json + tokenizer_config.json (stub). */
#include "cpt/gguf_import.h"

int cpt_gguf_write_tokenizer(const cpt_gguf *g, const char *dir, cpt_err *err) { return CPT_OK; }
