/* cpt/chat.h: chat templates (a Jinja subset) and instruction data -> tokens + loss mask.
 *
 * ---- Jinja subset (src/data/jinja.c) ----
 * Rendered as Hugging Face's apply_chat_template does: trim_blocks and lstrip_blocks on,
 * loop controls (break / continue) enabled, undefined variables print as "".
 *   {{ expr }}, {# comment #}, whitespace control {{- -}} {%- -%} {#- -#}
 *   {% if %}{% elif %}{% else %}{% endif %}
 *   {% for x in xs [if cond] %} ... [{% else %}] {% endfor %}, with tuple targets
 *     (`for k, v in d.items()`) and loop.index, index0, first, last, length, revindex,
 *     revindex0; {% break %} {% continue %}
 *   {% set x = expr %}, {% set ns.attr = expr %} with namespace(...) objects; a set
 *     inside a for body is local to that iteration (as in Jinja)
 *   expressions: literals (strings with \n \t \\ \' \" \uXXXX escapes, ints, floats,
 *     true/false/none in either case, [lists], {dicts}), names, a.b, a[i] (negative i
 *     from the end), a[i:j:k], calls, `x if c else y`, or / and / not, == != < <= > >=,
 *     in / not in, + - * / // % ~, unary -, filters `|f(args, kw=v)`, tests
 *     `is [not] t(args)`
 *   filters: trim length count tojson(indent) default/d upper lower title capitalize
 *     string list join first last items selectattr rejectattr select reject map(attribute)
 *     int float abs replace
 *   tests: defined undefined none string number integer float boolean mapping iterable
 *     sequence true false equalto/eq/== ne lt gt odd even divisibleby in
 *   globals: raise_exception(msg), namespace(k=v...), range(a[, b[, c]])
 *   methods: str.strip/lstrip/rstrip/upper/lower/title/startswith/endswith/split/replace,
 *     dict.items/keys/values/get
 * Anything else (macros, call blocks, includes, {% generation %}, unknown filters, tests
 * or methods) is refused when the template is parsed, with an error naming the construct
 * and its line. Values are JSON values (the context is a JSON object).
 *
 * ---- Instruction data ----
 * A conversation is {"messages": [{"role": ..., "content": ...}, ...]} or
 * {"prompt": P, "response": R} (= user P, assistant R). It is rendered with the model's
 * chat template (context: messages, bos_token, eos_token, add_generation_prompt=false,
 * tools=none) and tokenized without the post-processor (the template writes BOS), exactly
 * as transformers' apply_chat_template(messages, tokenize=True).
 * Loss mask: 1 on the tokens of each assistant message's content and on the special
 * token that directly follows it (the end-of-turn: <|eot_id|>, <|im_end|>, </s>), 0 on
 * everything else. The content is located in the rendering after the end of the rendered
 * prefix (messages before it, add_generation_prompt=true) when that prefix is a prefix of
 * the full rendering, else after the previous assistant span; a template that trims the
 * content is matched with the trimmed content. Token boundaries come from re-encoding
 * the rendering up to each span edge (O(turns x length) per conversation).
 */
#ifndef CPT_CHAT_H
#define CPT_CHAT_H

#include "cpt/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cpt_jinja cpt_jinja;

/* Parse a template; `label` names it in errors. Unsupported constructs: CPT_EUNSUPPORTED
 * naming the construct and line; syntax errors CPT_EFORMAT. */
int cpt_jinja_parse(cpt_jinja **out, const char *src, size_t n, const char *label, cpt_err *err);
void cpt_jinja_free(cpt_jinja *t);
/* Render with `ctx_json`, a JSON object of variables. *out is malloc'ed, NUL-terminated.
 * raise_exception(msg) gives CPT_EINVAL with msg; type errors CPT_EINVAL naming the line. */
int cpt_jinja_render(const cpt_jinja *t, const char *ctx_json, size_t ctx_len, char **out, size_t *out_len,
                     cpt_err *err);

typedef struct cpt_chat cpt_chat;

/* A renderer for `tok`'s chat template (tokenizer_config.json), or `template_src` when
 * not NULL. The tokenizer must outlive the cpt_chat. */
int cpt_chat_open(cpt_chat **out, const cpt_tok *tok, const char *template_src, cpt_err *err);
void cpt_chat_close(cpt_chat *c);
/* Render a conversation (JSON text, see above) to text (malloc'ed). */
int cpt_chat_render(const cpt_chat *c, const char *conv_json, size_t n, char **text, size_t *text_len,
                    cpt_err *err);
/* Render a conversation for generation: add_generation_prompt=true, so the text ends
 * where the assistant's reply begins (transformers' apply_chat_template(messages,
 * add_generation_prompt=True, tokenize=False)). */
int cpt_chat_render_prompt(const cpt_chat *c, const char *conv_json, size_t n, char **text, size_t *text_len,
                           cpt_err *err);
/* Render and tokenize: *ids and *mask malloc'ed, n_ids entries each. */
int cpt_chat_encode(const cpt_chat *c, const char *conv_json, size_t n, int32_t **ids, uint8_t **mask,
                    size_t *n_ids, cpt_err *err);

#ifdef __cplusplus
}
#endif
#endif
