/* gguf_tokenizer.c: tokenizer.ggml.* metadata -> the tokenizer.json, tokenizer_config.json
 * and special_tokens_map.json that Hugging Face would ship for the model; no model tensors.
 *
 * "gpt2" (byte-level BPE): vocab = tokens (ids are positions), merges as stored ("a b"),
 * control (3) / user-defined (4) tokens as added tokens. tokenizer.ggml.pre names the
 * pre-tokenizer llama.cpp chose from the original tokenizer's hash (llama-vocab.cpp); each
 * name maps back to the HF pre-tokenizer it stands for:
 *   gpt2, default         ByteLevel(use_regex)                         (GPT-2's own regex)
 *   smollm, starcoder,    Split(\p{N}, Isolated) + ByteLevel(use_regex) (HF: Digits(individual)
 *   refact                                                              + ByteLevel)
 *   llama-bpe             Split(llama-3 regex, Isolated) + ByteLevel(no regex)
 *   qwen2                 NFC; Split(Qwen2 regex, Isolated) + ByteLevel(no regex)
 * "llama" (SentencePiece BPE): HF's LlamaConverter output: BPE with byte fallback and
 * fuse_unk over the pieces, merges rebuilt from the scores as SentencePieceExtractor does
 * (every split of a piece into two pieces, ordered by the piece's score), a Prepend("▁") +
 * Replace(" ", "▁") normalizer (Prepend when add_space_prefix), led by two Replace regexes
 * (\A +| +\z -> "", " {2,}" -> " ") when tokenizer.ggml.remove_extra_whitespaces says the
 * SentencePiece model collapsed spaces (cpt's exporter writes it), and the matching decoder. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/fileio.h"
#include "cpt/gguf_import.h"
#include "gguf_names.h"


static json_t *jstrn(const char *s, size_t n) { return json_stringn(s, n); }

static json_t *split_isolated(const char *re) {
    return json_pack("{s:s,s:{s:s},s:s,s:b}", "type", "Split", "pattern", "Regex", re, "behavior", "Isolated",
                     "invert", 0);
}
static json_t *bytelevel(int use_regex) {
    return json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex",
                     use_regex);
}

/* pre-tokenizer (and normalizer) for a tokenizer.ggml.pre name; NULL if unknown */
static json_t *gpt2_pretok(const char *pre, json_t **normalizer) {
    *normalizer = json_null();
    if (!strcmp(pre, "gpt2") || !strcmp(pre, "default")) return bytelevel(1);
    if (!strcmp(pre, "smollm") || !strcmp(pre, "starcoder") || !strcmp(pre, "refact"))
        return json_pack("{s:s,s:[o,o]}", "type", "Sequence", "pretokenizers", split_isolated("\\p{N}"), bytelevel(1));
    if (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3"))
        return json_pack("{s:s,s:[o,o]}", "type", "Sequence", "pretokenizers", split_isolated(CPT_GGUF_LLAMA3_RE), bytelevel(0));
    if (!strcmp(pre, "qwen2")) {
        json_decref(*normalizer);
        *normalizer = json_pack("{s:s}", "type", "NFC");
        return json_pack("{s:s,s:[o,o]}", "type", "Sequence", "pretokenizers", split_isolated(CPT_GGUF_QWEN2_RE), bytelevel(0));
    }
    return NULL;
}

typedef struct merge {
    const char *l, *r; /* into the mapping */
    size_t ln, rn;
    double score;
    int64_t lid, rid;
    size_t order;
} merge;

static int merge_cmp_local(const void *a, const void *b) {
    const merge *x = a, *y = b;
    if (x->lid != y->lid) return x->lid < y->lid ? -1 : 1;
    return (x->rid > y->rid) - (x->rid < y->rid);
}
/* stable sort by score, descending (Python's sorted(..., reverse=True) keeps ties in order) */
static int merge_cmp_score(const void *a, const void *b) {
    const merge *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

static int64_t vocab_id(json_t *vocab, const char *s, size_t n, char *buf) {
    memcpy(buf, s, n);
    buf[n] = 0;
    json_t *v = json_object_getn(vocab, buf, n);
    return v ? json_integer_value(v) : -1;
}

/* SentencePieceExtractor: merges from the vocabulary and scores. */
static int spm_merges(const cpt_gguf *g, const cpt_gguf_kv *toks, const cpt_gguf_kv *scores, json_t *vocab,
                      json_t *out, cpt_err *err) {
    size_t cap = 1024, n = 0;
    merge *all = malloc(cap * sizeof *all);
    size_t maxlen = 0;
    for (uint64_t i = 0; i < toks->arr_n; i++) {
        const char *s;
        size_t len;
        cpt_gguf_arr_str(g, toks, i, &s, &len);
        if (len > maxlen) maxlen = len;
    }
    char *buf = malloc(maxlen + 1);
    if (!all || !buf) {
        free(all);
        free(buf);
        return cpt_err_set(err, CPT_ENOMEM, "out of memory building merges");
    }
    for (uint64_t i = 0; i < toks->arr_n; i++) {
        const char *s;
        size_t len;
        cpt_gguf_arr_str(g, toks, i, &s, &len);
        double sc = scores ? cpt_gguf_arr_float(scores, i) : 0.0;
        size_t first = n;
        /* split points at UTF-8 character boundaries (Python slices code points) */
        for (size_t k = 1; k < len; k++) {
            if (((unsigned char)s[k] & 0xC0) == 0x80) continue;
            int64_t l = vocab_id(vocab, s, k, buf), r = l >= 0 ? vocab_id(vocab, s + k, len - k, buf) : -1;
            if (l < 0 || r < 0) continue;
            if (n == cap) {
                merge *nm = realloc(all, 2 * cap * sizeof *all);
                if (!nm) {
                    free(all);
                    free(buf);
                    return cpt_err_set(err, CPT_ENOMEM, "out of memory building merges");
                }
                all = nm, cap *= 2;
            }
            all[n++] = (merge){s, s + k, k, len - k, sc, l, r, 0};
        }
        qsort(all + first, n - first, sizeof *all, merge_cmp_local);
    }
    for (size_t i = 0; i < n; i++) all[i].order = i;
    qsort(all, n, sizeof *all, merge_cmp_score);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, json_pack("[s%,s%]", all[i].l, all[i].ln, all[i].r, all[i].rn));
    free(all);
    free(buf);
    return CPT_OK;
}

static const char *tok_text(const cpt_gguf *g, const cpt_gguf_kv *toks, int64_t id, size_t *len) {
    if (id < 0 || (uint64_t)id >= toks->arr_n) return NULL;
    const char *s;
    cpt_gguf_arr_str(g, toks, (uint64_t)id, &s, len);
    return s;
}

static int write_json(const char *dir, const char *name, json_t *j, cpt_err *err) {
    char *text = json_dumps(j, JSON_INDENT(2));
    if (!text) return cpt_err_set(err, CPT_ENOMEM, "out of memory writing %s", name);
    char *p = cpt_path_join(dir, name);
    int rc = p ? cpt_write_file_atomic(p, text, strlen(text), err) : cpt_err_set(err, CPT_ENOMEM, "out of memory");
    free(p);
    free(text);
    return rc;
}

int cpt_gguf_write_tokenizer(const cpt_gguf *g, const char *dir, cpt_err *err) {
    const char *label = cpt_gguf_label(g);
    char *model = NULL, *pre = NULL;
    int rc = cpt_gguf_get_strdup(g, "tokenizer.ggml.model", &model, err);
    if (rc) return rc;
    const cpt_gguf_kv *toks = NULL, *types = NULL, *merges = NULL, *scores = NULL;
    json_t *tj = NULL, *cfg = NULL, *stm = NULL;
    int is_spm = !strcmp(model, "llama");
    if (!is_spm && strcmp(model, "gpt2") != 0) {
        rc = cpt_err_set_at(err, CPT_EUNSUPPORTED, label,
                            "tokenizer.ggml.model \"%s\" is not supported. HINT: cpt converts \"gpt2\" (byte-level BPE) "
                            "and \"llama\" (SentencePiece) tokenizers",
                            model);
        goto done;
    }
    if ((rc = cpt_gguf_get_arr(g, "tokenizer.ggml.tokens", CPT_GGUF_STRING, &toks, err))) goto done;
    if (cpt_gguf_find(g, "tokenizer.ggml.token_type") &&
        (rc = cpt_gguf_get_arr(g, "tokenizer.ggml.token_type", CPT_GGUF_I32, &types, err)))
        goto done;
    if (types && types->arr_n != toks->arr_n) {
        rc = cpt_err_set_at(err, CPT_EFORMAT, label, "tokenizer.ggml.token_type has %llu entries for %llu tokens",
                            (unsigned long long)types->arr_n, (unsigned long long)toks->arr_n);
        goto done;
    }
    if (is_spm) {
        if (cpt_gguf_find(g, "tokenizer.ggml.scores") &&
            (rc = cpt_gguf_get_arr(g, "tokenizer.ggml.scores", CPT_GGUF_F32, &scores, err)))
            goto done;
        if (scores && scores->arr_n != toks->arr_n) {
            rc = cpt_err_set_at(err, CPT_EFORMAT, label, "tokenizer.ggml.scores has %llu entries for %llu tokens",
                                (unsigned long long)scores->arr_n, (unsigned long long)toks->arr_n);
            goto done;
        }
    } else if ((rc = cpt_gguf_get_arr(g, "tokenizer.ggml.merges", CPT_GGUF_STRING, &merges, err))) {
        goto done;
    }
    json_t *vocab = json_object(), *added = json_array(), *mj = json_array();
    tj = json_pack("{s:s,s:n,s:n,s:o}", "version", "1.0", "truncation", "padding", "added_tokens", added);
    int64_t unk_id = -1;
    for (uint64_t i = 0; i < toks->arr_n; i++) {
        const char *s;
        size_t len;
        cpt_gguf_arr_str(g, toks, i, &s, &len);
        json_object_setn_new(vocab, s, len, json_integer((json_int_t)i));
        int64_t ty = types ? cpt_gguf_arr_int(types, i) : CPT_GGUF_TT_NORMAL;
        if (ty == CPT_GGUF_TT_UNKNOWN && unk_id < 0) unk_id = (int64_t)i;
        if (ty == CPT_GGUF_TT_CONTROL || ty == CPT_GGUF_TT_USER || ty == CPT_GGUF_TT_UNKNOWN)
            json_array_append_new(added, json_pack("{s:I,s:o,s:b,s:b,s:b,s:b,s:b}", "id", (json_int_t)i, "content",
                                                   jstrn(s, len), "single_word", 0, "lstrip", 0, "rstrip", 0,
                                                   "normalized", ty == CPT_GGUF_TT_USER, "special", ty != CPT_GGUF_TT_USER));
    }
    int add_bos = is_spm, add_eos = 0;
    if (cpt_gguf_find(g, "tokenizer.ggml.add_bos_token") &&
        (rc = cpt_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, err)))
        goto done_j;
    if (cpt_gguf_find(g, "tokenizer.ggml.add_eos_token") &&
        (rc = cpt_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &add_eos, err)))
        goto done_j;
    int64_t sid[4] = {-1, -1, -1, -1}; /* bos, eos, pad, unk */
    static const char *skeys[4] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                   "tokenizer.ggml.padding_token_id", "tokenizer.ggml.unknown_token_id"};
    static const char *snames[4] = {"bos_token", "eos_token", "pad_token", "unk_token"};
    for (int k = 0; k < 4; k++) {
        if (!cpt_gguf_find(g, skeys[k])) continue;
        if ((rc = cpt_gguf_get_int(g, skeys[k], &sid[k], err))) goto done_j;
        if (sid[k] < 0 || (uint64_t)sid[k] >= toks->arr_n) {
            rc = cpt_err_set_at(err, CPT_EFORMAT, label, "%s = %lld is not a token id (vocabulary of %llu)", skeys[k],
                                (long long)sid[k], (unsigned long long)toks->arr_n);
            goto done_j;
        }
    }
    if (sid[3] < 0) sid[3] = unk_id;
    /* post-processor: BOS / EOS added around a single sequence when the model asks for it */
    json_t *post;
    if (add_bos || add_eos) {
        json_t *single = json_array(), *pair = json_array(), *special = json_object();
        /* single: [BOS] $A [EOS]; pair: [BOS] $A [EOS] [BOS] $B [EOS] (as HF's Llama converters) */
        for (int part = 0; part < 2; part++) {
            for (int k = 0; k < 3; k++) {
                json_t *e;
                if (k == 1) {
                    e = json_pack("{s:{s:s,s:i}}", "Sequence", "id", part ? "B" : "A", "type_id", part);
                } else {
                    int which = k == 0 ? 0 : 1;
                    if (!(which == 0 ? add_bos : add_eos) || sid[which] < 0) continue;
                    size_t n;
                    const char *s = tok_text(g, toks, sid[which], &n);
                    e = json_pack("{s:{s:s%,s:i}}", "SpecialToken", "id", s, n, "type_id", part);
                }
                if (part == 0) json_array_append(single, e);
                json_array_append_new(pair, e);
            }
        }
        for (int k = 0; k < 2; k++) {
            if (!(k == 0 ? add_bos : add_eos) || sid[k] < 0) continue;
            size_t n;
            const char *s = tok_text(g, toks, sid[k], &n);
            json_object_setn_new(special, s, n,
                                 json_pack("{s:s%,s:[I],s:[s%]}", "id", s, n, "ids", (json_int_t)sid[k], "tokens", s, n));
        }
        post = json_pack("{s:s,s:o,s:o,s:o}", "type", "TemplateProcessing", "single", single, "pair", pair,
                         "special_tokens", special);
    } else {
        post = is_spm ? json_null()
                      : json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 0,
                                  "use_regex", 1);
    }
    json_t *normalizer = NULL, *pretok = NULL, *decoder = NULL, *mdl = NULL;
    if (is_spm) {
        int space_prefix = 1;
        if (cpt_gguf_find(g, "tokenizer.ggml.add_space_prefix") &&
            (rc = cpt_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &space_prefix, err))) {
            json_decref(post);
            goto done_j;
        }
        int extra_ws = 0;
        if (cpt_gguf_find(g, "tokenizer.ggml.remove_extra_whitespaces") &&
            (rc = cpt_gguf_get_bool(g, "tokenizer.ggml.remove_extra_whitespaces", &extra_ws, err))) {
            json_decref(post);
            goto done_j;
        }
        json_t *seq = json_array();
        if (extra_ws) { /* sentencepiece's remove_extra_whitespaces: spaces (U+0020) at either end go, runs become one */
            json_array_append_new(seq, json_pack("{s:s,s:{s:s},s:s}", "type", "Replace", "pattern", "Regex", "\\A +| +\\z",
                                                 "content", ""));
            json_array_append_new(seq, json_pack("{s:s,s:{s:s},s:s}", "type", "Replace", "pattern", "Regex", " {2,}",
                                                 "content", " "));
        }
        if (space_prefix) json_array_append_new(seq, json_pack("{s:s,s:s}", "type", "Prepend", "prepend", "\xE2\x96\x81"));
        json_array_append_new(seq, json_pack("{s:s,s:{s:s},s:s}", "type", "Replace", "pattern", "String", " ", "content",
                                             "\xE2\x96\x81"));
        normalizer = json_pack("{s:s,s:o}", "type", "Sequence", "normalizers", seq);
        pretok = json_null();
        decoder = json_pack("{s:s,s:[{s:s,s:{s:s},s:s},{s:s},{s:s},{s:s,s:s,s:i,s:i}]}", "type", "Sequence", "decoders",
                            "type", "Replace", "pattern", "String", "\xE2\x96\x81", "content", " ", "type",
                            "ByteFallback", "type", "Fuse", "type", "Strip", "content", " ", "start", space_prefix ? 1 : 0,
                            "stop", 0);
        if ((rc = spm_merges(g, toks, scores, vocab, mj, err))) {
            json_decref(post), json_decref(normalizer), json_decref(decoder);
            goto done_j;
        }
        size_t un = 0;
        const char *us = sid[3] >= 0 ? tok_text(g, toks, sid[3], &un) : NULL;
        mdl = json_pack("{s:s,s:n,s:o,s:n,s:n,s:b,s:b,s:b,s:o,s:o}", "type", "BPE", "dropout", "unk_token",
                        us ? jstrn(us, un) : json_null(), "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 1,
                        "byte_fallback", 1, "ignore_merges", 0, "vocab", vocab, "merges", mj);
    } else {
        if (cpt_gguf_find(g, "tokenizer.ggml.pre")) {
            if ((rc = cpt_gguf_get_strdup(g, "tokenizer.ggml.pre", &pre, err))) {
                json_decref(post);
                goto done_j;
            }
        } else if (!(pre = strdup("default"))) {
            json_decref(post);
            rc = cpt_err_set(err, CPT_ENOMEM, "out of memory");
            goto done_j;
        }
        pretok = gpt2_pretok(pre, &normalizer);
        if (!pretok) {
            json_decref(post), json_decref(normalizer);
            rc = cpt_err_set_at(err, CPT_EUNSUPPORTED, label,
                                "tokenizer.ggml.pre \"%s\" is not a pre-tokenizer cpt knows. HINT: known are gpt2, default, "
                                "smollm, starcoder, refact, llama-bpe, qwen2",
                                pre);
            goto done_j;
        }
        for (uint64_t i = 0; i < merges->arr_n; i++) {
            const char *s;
            size_t len;
            cpt_gguf_arr_str(g, merges, i, &s, &len);
            json_array_append_new(mj, jstrn(s, len));
        }
        decoder = json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 1,
                            "use_regex", 1);
        /* llama-3's tokenizer.json sets ignore_merges: whole words in the vocabulary win */
        int ignore = !strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3");
        mdl = json_pack("{s:s,s:n,s:n,s:n,s:n,s:b,s:b,s:b,s:o,s:o}", "type", "BPE", "dropout", "unk_token",
                        "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
                        "ignore_merges", ignore, "vocab", vocab, "merges", mj);
    }
    vocab = mj = NULL; /* owned by mdl now */
    json_object_set_new(tj, "normalizer", normalizer);
    json_object_set_new(tj, "pre_tokenizer", pretok);
    json_object_set_new(tj, "post_processor", post);
    json_object_set_new(tj, "decoder", decoder);
    json_object_set_new(tj, "model", mdl);
    if ((rc = write_json(dir, "tokenizer.json", tj, err))) goto done_j;

    cfg = json_pack("{s:b,s:b,s:b,s:s}", "add_bos_token", add_bos, "add_eos_token", add_eos,
                    "clean_up_tokenization_spaces", 0, "tokenizer_class", "PreTrainedTokenizerFast");
    stm = json_object();
    for (int k = 0; k < 4; k++) {
        if (sid[k] < 0) continue;
        size_t n;
        const char *s = tok_text(g, toks, sid[k], &n);
        json_object_set_new(cfg, snames[k], jstrn(s, n));
        json_object_set_new(stm, snames[k], jstrn(s, n));
    }
    int64_t ctx = 0;
    char *arch = NULL;
    if (!cpt_gguf_get_strdup(g, "general.architecture", &arch, NULL)) {
        char key[160];
        snprintf(key, sizeof key, "%s.context_length", arch);
        if (cpt_gguf_find(g, key) && !cpt_gguf_get_int(g, key, &ctx, NULL)) json_object_set_new(cfg, "model_max_length", json_integer(ctx));
        free(arch);
    }
    if (cpt_gguf_find(g, "tokenizer.chat_template")) {
        const char *s;
        size_t n;
        if ((rc = cpt_gguf_get_str(g, "tokenizer.chat_template", &s, &n, err))) goto done_j;
        json_object_set_new(cfg, "chat_template", jstrn(s, n));
    }
    if ((rc = write_json(dir, "tokenizer_config.json", cfg, err))) goto done_j;
    rc = write_json(dir, "special_tokens_map.json", stm, err);
done_j:
    json_decref(vocab);
    json_decref(mj);
done:
    json_decref(tj);
    json_decref(cfg);
    json_decref(stm);
    free(model);
    free(pre);
    return rc;
}
