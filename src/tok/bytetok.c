/* bytetok.c: writes a byte-level tokenizer.json (GPT-2 byte-to-unicode alphabet, BPE
 * with no merges: one token per byte, ids 0..255 in byte order, then <|bos|>=256 and
 * <|eos|>=257) and its tokenizer_config.json, for models pretrained from scratch (the
 * self-contained demo). HF tokenizers loads the file; cpt's loader reads it too. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "cpt/tokenizer.h"

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256+n. */
static unsigned byte_char(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return (unsigned)b;
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
    return 256u + (unsigned)n;
}

static void utf8_put(char *o, unsigned cp) {
    if (cp < 0x80) o[0] = (char)cp, o[1] = 0;
    else o[0] = (char)(0xC0 | (cp >> 6)), o[1] = (char)(0x80 | (cp & 0x3F)), o[2] = 0;
}

static json_t *added(int id, const char *s) {
    return json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", s, "single_word", 0, "lstrip", 0,
                     "rstrip", 0, "normalized", 0, "special", 1);
}

int cpt_tok_write_bytelevel(const char *dir, cpt_err *err) {
    int rc = cpt_mkdirs(dir, err);
    if (rc) return rc;
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        char k[4];
        utf8_put(k, byte_char(b));
        json_object_set_new(vocab, k, json_integer(b));
    }
    json_t *bl = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 1);
    json_t *tok = json_object();
    json_object_set_new(tok, "version", json_string("1.0"));
    json_object_set_new(tok, "truncation", json_null());
    json_object_set_new(tok, "padding", json_null());
    json_object_set_new(tok, "added_tokens", json_pack("[o, o]", added(256, "<|bos|>"), added(257, "<|eos|>")));
    json_object_set_new(tok, "normalizer", json_null());
    json_object_set_new(tok, "pre_tokenizer", json_deep_copy(bl));
    json_object_set_new(tok, "post_processor",
                        json_pack("{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}], s:{s:{s:s, s:[i], s:[s]}}}",
                                  "type", "TemplateProcessing",
                                  "single", "SpecialToken", "id", "<|bos|>", "type_id", 0, "Sequence", "id", "A", "type_id", 0,
                                  "pair", "SpecialToken", "id", "<|bos|>", "type_id", 0, "Sequence", "id", "A", "type_id", 0,
                                  "Sequence", "id", "B", "type_id", 1,
                                  "special_tokens", "<|bos|>", "id", "<|bos|>", "ids", 256, "tokens", "<|bos|>"));
    json_object_set_new(tok, "decoder", bl);
    json_object_set_new(tok, "model",
                        json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:[]}", "type", "BPE", "dropout", "unk_token",
                                  "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
                                  "ignore_merges", 0, "vocab", vocab, "merges"));
    char *s = json_dumps(tok, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    json_decref(tok);
    char *p = cpt_path_join(dir, "tokenizer.json");
    if (!s || !p) rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
    if (!rc) rc = cpt_write_file_atomic(p, s, strlen(s), err);
    free(s);
    free(p);
    if (rc) return rc;
    const char *cfg = "{\n  \"bos_token\": \"<|bos|>\",\n  \"eos_token\": \"<|eos|>\",\n  \"add_bos_token\": true,\n"
                      "  \"add_eos_token\": false,\n  \"model_max_length\": 1048576,\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\"\n}\n";
    p = cpt_path_join(dir, "tokenizer_config.json");
    if (!p) return cpt_err_set(err, CPT_ENOMEM, "out of memory");
    rc = cpt_write_file_atomic(p, cfg, strlen(cfg), err);
    free(p);
    return rc;
}
