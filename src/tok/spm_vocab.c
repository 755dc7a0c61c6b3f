/* spm_vocab.c: a loaded tokenizer seen as a SentencePiece vocabulary (pieces, scores,
 * types; cpt/tokenizer.h cpt_tok_spm_vocab_get), for GGUF "llama" export. Not the encoder.
 *
 * Why scores from ranks work: GGUF stores no merges for SentencePiece; readers rebuild
 * them (llama.cpp's SPM tokenizer merges the adjacent pair whose concatenation is a
 * piece, highest piece score first; transformers' and cpt's importers list every split
 * of every piece ordered by the piece's score). A tokenizer.json converted from a .model
 * lists exactly those splits, ordered by that score, so giving the piece that merge rank
 * r produces the score -r gives back the same order. A tokenizer.json whose merges leave
 * out some split would merge differently once rebuilt; it is refused, not approximated. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok_impl.h"

#define WS "\xE2\x96\x81" /* U+2581, SentencePiece's escaped space */

static int unsupported(const cpt_tok *t, const char *what, const char *hint, cpt_err *err) {
    return cpt_err_set(err, CPT_EUNSUPPORTED, "%s: %s cannot be stored as a SentencePiece (GGUF \"llama\") vocabulary; HINT: %s",
                       t->path, what, hint);
}

void cpt_tok_spm_vocab_free(cpt_tok_spm_vocab *v) {
    if (!v) return;
    free(v->piece);
    free(v->len);
    free(v->score);
    free(v->type);
    memset(v, 0, sizeof *v);
}

/* The post-processor template must be [bos]? $A [eos]? with the tokenizer's own bos/eos:
 * GGUF records only add_bos_token / add_eos_token. */
static int template_flags(const cpt_tok *t, cpt_tok_spm_vocab *v, cpt_err *err) {
    if (t->n_tmpl == 0) return 0;
    size_t k = 0;
    int ok = 1;
    if (t->tmpl[k] >= 0) {
        ok = t->tmpl[k] == t->bos;
        v->add_bos = 1, k++;
    }
    ok = ok && k < t->n_tmpl && t->tmpl[k] == -1;
    k++;
    if (ok && k < t->n_tmpl) {
        ok = t->tmpl[k] == t->eos;
        v->add_eos = 1, k++;
    }
    if (ok && k == t->n_tmpl) return 0;
    return unsupported(t, "a post-processor template other than [BOS] $A [EOS]",
                       "GGUF records only add_bos_token / add_eos_token; export to a Hugging Face directory instead", err);
}

static int is_lit(const tok_pattern *p, const char *s) {
    return !p->re && p->lit_len == strlen(s) && !memcmp(p->lit, s, p->lit_len);
}
static int is_ws_replace(const tok_norm *n) {
    return n->kind == TN_REPLACE && is_lit(&n->pat, " ") && n->content_len == 3 && !memcmp(n->content, WS, 3);
}

/* normalizer / pre-tokenizer -> add_space_prefix, or refused */
static int json_space_prefix(const cpt_tok *t, int *prefix, cpt_err *err) {
    static const char *hint = "cpt exports the SentencePiece-style tokenizer.json of Llama 2 / Mistral (normalizer Prepend + "
                              "Replace, or Metaspace without split); export to a Hugging Face directory instead";
    const tok_norm *n = t->norm;
    const tok_pretok *p = t->pretok;
    if (n && !p) {
        if (is_ws_replace(n)) return *prefix = 0, 0;
        if (n->kind == TN_SEQUENCE && n->n_kids == 1 && is_ws_replace(&n->kids[0])) return *prefix = 0, 0;
        if (n->kind == TN_SEQUENCE && n->n_kids == 2 && n->kids[0].kind == TN_PREPEND && n->kids[0].content_len == 3 &&
            !memcmp(n->kids[0].content, WS, 3) && is_ws_replace(&n->kids[1]))
            return *prefix = 1, 0;
        return unsupported(t, "this normalizer", hint, err);
    }
    if (!n && p && p->kind == TP_METASPACE && p->repl_len == 3 && !memcmp(p->repl, WS, 3)) {
        if (p->split) return unsupported(t, "a Metaspace pre-tokenizer with split = true", hint, err);
        *prefix = p->prepend_scheme != TOK_PREPEND_NEVER;
        return 0;
    }
    return unsupported(t, n || p ? "this normalizer / pre-tokenizer" : "a tokenizer.json with neither normalizer nor pre-tokenizer",
                       hint, err);
}

static int from_json(const cpt_tok *t, cpt_tok_spm_vocab *v, cpt_err *err) {
    const tok_bpe *b = &t->bpe;
    if (!b->byte_fallback)
        return unsupported(t, "a byte-level BPE (no byte_fallback)", "it exports as GGUF tokenizer.ggml.model \"gpt2\"", err);
    if (b->prefix || b->suffix || b->ignore_merges)
        return unsupported(t, "a BPE with continuing_subword_prefix, end_of_word_suffix or ignore_merges",
                           "SentencePiece BPE has none of these; export to a Hugging Face directory instead", err);
    int rc = json_space_prefix(t, &v->add_space_prefix, err);
    if (rc || (rc = template_flags(t, v, err))) return rc;
    int32_t n = v->n;
    for (int32_t i = 0; i < n; i++) v->type[i] = t->piece_off[i] == SIZE_MAX ? SPM_UNUSED : SPM_NORMAL;
    for (int c = 0; c < 256; c++)
        if (b->byte_ids[c] >= 0 && b->byte_ids[c] < n) v->type[b->byte_ids[c]] = SPM_BYTE;
    for (size_t i = 0; i < t->n_added; i++)
        v->type[t->added[i].id] = t->added[i].special ? SPM_CONTROL : SPM_USER_DEFINED;
    if (b->unk_id >= 0 && b->unk_id < n) v->type[b->unk_id] = SPM_UNKNOWN;
    /* score of a piece = -(rank of the first merge making it) */
    uint32_t *rank = malloc((size_t)n * sizeof *rank);
    if (!rank) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", t->path);
    for (int32_t i = 0; i < n; i++) rank[i] = UINT32_MAX;
    uint32_t n_merges = 0;
    for (size_t s = 0; s < b->merges.cap; s++) {
        if (b->merges.keys[s] == UINT64_MAX) continue;
        int32_t id = b->merges.new_id[s];
        uint32_t r = b->merges.rank[s];
        if (id >= 0 && id < n && r < rank[id]) rank[id] = r;
        if (r + 1 > n_merges) n_merges = r + 1;
    }
    for (int32_t i = 0; i < n; i++)
        v->score[i] = v->type[i] != SPM_NORMAL ? 0.0f : rank[i] != UINT32_MAX ? -(float)rank[i] : -(float)((double)n_merges + i);
    free(rank);
    /* every NORMAL+NORMAL split of a NORMAL piece must be a merge that makes it */
    for (int32_t i = 0; i < n; i++) {
        if (v->type[i] != SPM_NORMAL) continue;
        const char *s = v->piece[i];
        size_t len = v->len[i];
        for (size_t k = (size_t)tok_utf8_len((unsigned char)s[0]); k < len; k += (size_t)tok_utf8_len((unsigned char)s[k])) {
            int32_t l = tok_smap_get(&b->vocab, s, k), r = tok_smap_get(&b->vocab, s + k, len - k);
            if (l < 0 || r < 0 || l >= n || r >= n || v->type[l] != SPM_NORMAL || v->type[r] != SPM_NORMAL) continue;
            uint32_t rk;
            int32_t made;
            if (tok_pmap_get(&b->merges, (uint32_t)l, (uint32_t)r, &rk, &made) && made == i) continue;
            return cpt_err_set(err, CPT_EUNSUPPORTED,
                               "%s: \"%.*s\" splits into the pieces \"%.*s\" + \"%.*s\" but that pair is not one of model.merges: "
                               "rebuilt from scores (GGUF stores none for SentencePiece), the merges would tokenize "
                               "differently; HINT: only tokenizer.json files converted from a SentencePiece model export as "
                               "GGUF \"llama\"; export to a Hugging Face directory instead",
                               t->path, (int)len, s, (int)k, s, (int)(len - k), s + k);
        }
    }
    return 0;
}

static int from_model(const cpt_tok *t, cpt_tok_spm_vocab *v, cpt_err *err) {
    const tok_spm *m = t->spm;
    if (m->trie)
        return unsupported(t, "a normalizer_spec.precompiled_charsmap (nmt_nfkc or another rule)",
                           "llama.cpp's SentencePiece tokenizer applies no normalization rule; only \"identity\" models export", err);
    if (!m->escape_ws)
        return unsupported(t, "normalizer_spec.escape_whitespaces = false",
                           "GGUF's SentencePiece tokenizer always writes spaces as U+2581", err);
    if (m->n != v->n) return cpt_err_set(err, CPT_EINVAL, "%s: %d pieces for %d ids", t->path, m->n, v->n);
    for (int32_t i = 0; i < m->n; i++) {
        /* sentencepiece accepts any float; a NaN/Inf score would make the rebuilt merge order undefined */
        if (!isfinite(m->score[i]))
            return cpt_err_set(err, CPT_EFORMAT, "%s: pieces[%d].score is not a finite number; HINT: the .model is corrupt, "
                               "re-download it", t->path, i);
        v->score[i] = m->score[i];
        v->type[i] = m->type[i];
    }
    v->add_space_prefix = m->add_dummy_prefix;
    v->remove_extra_ws = m->remove_extra_ws;
    /* the .model path builds its template as [bos]? $A [eos]? (tokenizer.c) */
    return template_flags(t, v, err);
}

int cpt_tok_spm_vocab_get(const cpt_tok *t, cpt_tok_spm_vocab *v, cpt_err *err) {
    CPT_ASSERT(t && v);
    memset(v, 0, sizeof *v);
    int32_t n = t->n_ids;
    v->n = n;
    v->piece = calloc((size_t)n + 1, sizeof *v->piece);
    v->len = calloc((size_t)n + 1, sizeof *v->len);
    v->score = calloc((size_t)n + 1, sizeof *v->score);
    v->type = calloc((size_t)n + 1, sizeof *v->type);
    if (!v->piece || !v->len || !v->score || !v->type) return cpt_err_set(err, CPT_ENOMEM, "%s: out of memory", t->path);
    for (int32_t i = 0; i < n; i++)
        if (t->piece_off[i] != SIZE_MAX) {
            v->piece[i] = t->pieces.p + t->piece_off[i];
            v->len[i] = t->piece_len[i];
        }
    return t->spm ? from_model(t, v, err) : from_json(t, v, err);
}
