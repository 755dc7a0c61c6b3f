/* chat.c: instruction data -> chat-template rendering -> tokens + assistant loss mask; the Jinja interpreter is jinja.c. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cpt/chat.h"

struct cpt_chat {
    const cpt_tok *tok;
    cpt_jinja *tpl;
    char *bos, *eos;
};

void cpt_chat_close(cpt_chat *c) {
    if (!c) return;
    cpt_jinja_free(c->tpl);
    free(c->bos);
    free(c->eos);
    free(c);
}

int cpt_chat_open(cpt_chat **out, const cpt_tok *tok, const char *template_src, cpt_err *err) {
    *out = NULL;
    const char *src = template_src ? template_src : cpt_tok_chat_template(tok);
    if (!src)
        return cpt_err_set(err, CPT_ENOTFOUND,
                           "chat: the tokenizer has no chat_template (tokenizer_config.json). HINT: give a template "
                           "file (--chat-template)");
    cpt_chat *c = calloc(1, sizeof *c);
    if (!c) return cpt_err_set(err, CPT_ENOMEM, "chat: out of memory");
    c->tok = tok;
    int b = cpt_tok_bos(tok), e = cpt_tok_eos(tok);
    const char *bp = b >= 0 ? cpt_tok_piece(tok, b) : NULL, *ep = e >= 0 ? cpt_tok_piece(tok, e) : NULL;
    c->bos = strdup(bp ? bp : "");
    c->eos = strdup(ep ? ep : "");
    int rc = c->bos && c->eos ? cpt_jinja_parse(&c->tpl, src, strlen(src), template_src ? "chat template" : "chat_template", err)
                              : cpt_err_set(err, CPT_ENOMEM, "chat: out of memory");
    if (rc) {
        cpt_chat_close(c);
        return rc;
    }
    *out = c;
    return CPT_OK;
}

/* The messages array of a conversation (new reference), validated. */
static json_t *conv_messages(const char *conv, size_t n, cpt_err *err) {
    json_error_t je;
    json_t *j = json_loadb(conv, n, JSON_REJECT_DUPLICATES, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        cpt_err_set(err, CPT_EFORMAT, "conversation: not a JSON object (%s)", j ? "wrong type" : je.text);
        return NULL;
    }
    json_t *m = json_object_get(j, "messages");
    if (m) {
        json_incref(m);
    } else {
        json_t *p = json_object_get(j, "prompt"), *r = json_object_get(j, "response");
        if (json_is_string(p) && json_is_string(r))
            m = json_pack("[{s:s,s:O},{s:s,s:O}]", "role", "user", "content", p, "role", "assistant", "content", r);
    }
    json_decref(j);
    if (!m || !json_is_array(m) || json_array_size(m) == 0) {
        json_decref(m);
        cpt_err_set(err, CPT_EFORMAT,
                    "conversation: needs a non-empty \"messages\" array or string \"prompt\" and \"response\". HINT: "
                    "{\"messages\": [{\"role\": \"user\", \"content\": \"...\"}, ...]}");
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(m); i++) {
        json_t *e = json_array_get(m, i);
        if (!json_is_object(e) || !json_is_string(json_object_get(e, "role"))) {
            json_decref(m);
            cpt_err_set(err, CPT_EFORMAT, "conversation: messages[%zu] lacks a string \"role\"", i);
            return NULL;
        }
    }
    return m;
}

static int render_msgs(const cpt_chat *c, json_t *msgs, int gen_prompt, char **text, size_t *len, cpt_err *err) {
    json_t *ctx = json_pack("{s:O,s:s,s:s,s:b,s:n,s:n}", "messages", msgs, "bos_token", c->bos, "eos_token", c->eos,
                            "add_generation_prompt", gen_prompt, "tools", "documents");
    char *s = ctx ? json_dumps(ctx, JSON_COMPACT) : NULL;
    json_decref(ctx);
    if (!s) return cpt_err_set(err, CPT_ENOMEM, "chat: out of memory");
    int rc = cpt_jinja_render(c->tpl, s, strlen(s), text, len, err);
    free(s);
    return rc;
}

int cpt_chat_render(const cpt_chat *c, const char *conv, size_t n, char **text, size_t *text_len, cpt_err *err) {
    *text = NULL;
    json_t *m = conv_messages(conv, n, err);
    if (!m) return err && err->code ? err->code : CPT_EFORMAT;
    int rc = render_msgs(c, m, 0, text, text_len, err);
    json_decref(m);
    return rc;
}

int cpt_chat_render_prompt(const cpt_chat *c, const char *conv, size_t n, char **text, size_t *text_len, cpt_err *err) {
    *text = NULL;
    json_t *m = conv_messages(conv, n, err);
    if (!m) return err && err->code ? err->code : CPT_EFORMAT;
    int rc = render_msgs(c, m, 1, text, text_len, err);
    json_decref(m);
    return rc;
}

static const char *find(const char *h, size_t hn, size_t from, const char *s, size_t sn) {
    if (sn == 0 || from > hn) return NULL;
    for (size_t i = from; i + sn <= hn; i++)
        if (h[i] == s[0] && !memcmp(h + i, s, sn)) return h + i;
    return NULL;
}

/* Length of the common prefix of encode(text[0:cut]) and ids; *clean = the prefix encoding
 * is exactly ids[0:k] (a token boundary at `cut`). */
static int boundary(const cpt_chat *c, const char *text, size_t cut, const int32_t *ids, size_t n, size_t *k,
                    int *clean, cpt_err *err) {
    int32_t *p = NULL;
    size_t pn = 0;
    int rc = cpt_tok_encode(c->tok, text, cut, 0, &p, &pn, NULL, err);
    if (rc) return rc;
    size_t i = 0;
    while (i < pn && i < n && p[i] == ids[i]) i++;
    *k = i;
    *clean = i == pn;
    free(p);
    return CPT_OK;
}

int cpt_chat_encode(const cpt_chat *c, const char *conv, size_t n, int32_t **ids_out, uint8_t **mask_out,
                    size_t *n_out, cpt_err *err) {
    *ids_out = NULL;
    *mask_out = NULL;
    *n_out = 0;
    json_t *m = conv_messages(conv, n, err);
    if (!m) return err && err->code ? err->code : CPT_EFORMAT;
    char *F = NULL;
    size_t FN = 0, nids = 0;
    int32_t *ids = NULL;
    uint8_t *mask = NULL;
    int rc = render_msgs(c, m, 0, &F, &FN, err);
    if (!rc) rc = cpt_tok_encode(c->tok, F, FN, 0, &ids, &nids, NULL, err);
    if (!rc && !(mask = calloc(nids ? nids : 1, 1))) rc = cpt_err_set(err, CPT_ENOMEM, "chat: out of memory");
    size_t cursor = 0;
    for (size_t i = 0; !rc && i < json_array_size(m); i++) {
        json_t *msg = json_array_get(m, i);
        json_t *content = json_object_get(msg, "content");
        if (strcmp(json_string_value(json_object_get(msg, "role")), "assistant") || !json_is_string(content)) continue;
        /* lower bound: the rendered prefix with the generation prompt, when it is a prefix of F */
        size_t lower = cursor;
        if (i > 0) {
            json_t *pre = json_array();
            for (size_t k = 0; k < i; k++) json_array_append(pre, json_array_get(m, k));
            char *P = NULL;
            size_t PN = 0;
            cpt_err perr = {0};
            if (pre && render_msgs(c, pre, 1, &P, &PN, &perr) == 0 && PN <= FN && !memcmp(P, F, PN) && PN > lower)
                lower = PN;
            free(P);
            json_decref(pre);
        }
        const char *cs = json_string_value(content);
        size_t cn = json_string_length(content);
        const char *at = find(F, FN, lower, cs, cn);
        if (!at) { /* templates that trim the content */
            while (cn && (*cs == ' ' || (*cs >= '\t' && *cs <= '\r'))) cs++, cn--;
            while (cn && (cs[cn - 1] == ' ' || (cs[cn - 1] >= '\t' && cs[cn - 1] <= '\r'))) cn--;
            at = find(F, FN, lower, cs, cn);
        }
        if (!at) {
            if (cn == 0) continue; /* empty answer: nothing to learn, only the end-of-turn */
            rc = cpt_err_set(err, CPT_EFORMAT,
                             "chat: assistant message %zu does not appear in the rendered conversation. HINT: the "
                             "template rewrites assistant content; cpt cannot place the loss mask", i);
            break;
        }
        size_t s = (size_t)(at - F), e = s + cn, ks, ke;
        int clean_s, clean_e;
        if ((rc = boundary(c, F, s, ids, nids, &ks, &clean_s, err))) break;
        if ((rc = boundary(c, F, e, ids, nids, &ke, &clean_e, err))) break;
        if (!clean_e && ke < nids) ke++; /* a token straddling the end holds content: train on it */
        for (size_t k = ks; k < ke; k++) mask[k] = 1;
        if (ke < nids && cpt_tok_is_special(c->tok, ids[ke])) mask[ke] = 1; /* end of turn */
        cursor = e;
    }
    free(F);
    json_decref(m);
    if (rc) {
        free(ids);
        free(mask);
        return rc;
    }
    *ids_out = ids;
    *mask_out = mask;
    *n_out = nids;
    return CPT_OK;
}
