#!/usr/bin/env python3
"""test_chat_template.py: cpt's Jinja interpreter and chat loss masks against transformers.

For the Llama 3.1, Qwen2.5 (ChatML) and Mistral templates in $CPT_SHARED/data/chat-templates,
with a tokenizer of the matching family, on several conversations (with / without system,
multi-turn, prompt/response): `cpt data chat` must give exactly the text of
transformers' apply_chat_template(tokenize=False) and the ids of apply_chat_template(
tokenize=True). The mask oracle is transformers' own: each family's template with
`{% generation %}` markers put around what the assistant says (its content and the
end-of-turn token that closes it), rendered by transformers with
return_assistant_tokens_mask=True; the marked template is first checked to render exactly
the text of the original one, so the markers sit inside the real text.  No part of cpt's
mask rule is restated here.  Every other template in the directory is rendered by both and must match, unless cpt refuses
it with an error naming an unsupported construct. A template that raises (roles out of order)
must raise in cpt too; at least MIN_OTHER_MATCHED of the other templates must render
identically (a cpt that refused them all would otherwise pass).
"""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.environ.get("CPT_SRC", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "oracle"))
import oracle_util as ou  # noqa: E402

CONVS = [
    {"messages": [{"role": "user", "content": "Hello there!"}, {"role": "assistant", "content": "Hi! How can I help?"}]},
    {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"},
                  {"role": "assistant", "content": "It is 6.\nDone."}]},
    {"messages": [{"role": "user", "content": "Say \"hi\" in French, then stop."},
                  {"role": "assistant", "content": "Salut \u2014 \u00e7a va ?"},
                  {"role": "user", "content": "Thanks"}, {"role": "assistant", "content": "You're welcome."}]},
    {"prompt": "Name a color.", "response": "Blue."},
]
FAMILIES = [("meta-llama-Llama-3.1-8B-Instruct", "llama3", "llama3.1_tokenizer.json", "llama3.1_tokenizer_config.json"),
            ("Qwen-Qwen2.5-7B-Instruct", "qwen3", "tokenizer.json", "tokenizer_config.json"),
            ("mistralai-Mistral-Nemo-Instruct-2407", "mistral", "tokenizer.json", "tokenizer_config.json")]


def messages(c):
    return c["messages"] if "messages" in c else [{"role": "user", "content": c["prompt"]},
                                                   {"role": "assistant", "content": c["response"]}]


# Where the assistant's turn is spoken: (original fragment, marked replacement) per template.
# Only the assistant branch gets the markers; other roles keep the original expression.
GENERATION_MARKS = {
    "meta-llama-Llama-3.1-8B-Instruct": (
        """{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}""",
        """{%- if message['role'] == 'assistant' %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"""
        """{%- generation %}{{- message['content'] | trim + '<|eot_id|>' }}{%- endgeneration %}"""
        """{%- else %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}"""
        """{%- endif %}"""),
    "Qwen-Qwen2.5-7B-Instruct": (
        """{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}""",
        """{%- if message.role == 'assistant' %}{{- '<|im_start|>assistant\\n' }}"""
        """{%- generation %}{{- message.content + '<|im_end|>' }}{%- endgeneration %}{{- '\\n' }}"""
        """{%- else %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endif %}"""),
    "mistralai-Mistral-Nemo-Instruct-2407": (
        """{{- message["content"] + eos_token}}""",
        """{%- generation %}{{- message["content"] + eos_token}}{%- endgeneration %}"""),
}


def marked_template(name, text):
    frag, repl = GENERATION_MARKS[name]
    assert text.count(frag) == 1, "%s: the assistant fragment is not in the template once" % name
    return text.replace(frag, repl)


def oracle_mask(hf_tok, marked, msgs):
    """transformers' assistant-token mask under the {% generation %}-marked template."""
    saved = hf_tok.chat_template
    hf_tok.chat_template = marked
    try:
        out = hf_tok.apply_chat_template(msgs, tokenize=False), hf_tok.apply_chat_template(
            msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    finally:
        hf_tok.chat_template = saved
    return out[0], list(out[1]["input_ids"]), list(out[1]["assistant_masks"])


MIN_OTHER_MATCHED = 9  # every template cpt renders today; a regression fails


def main():
    ck = ou.Checker("test_chat_template")
    ou.require_commands("data")
    sh = ou.shared()
    tdir = os.path.join(sh, "data", "chat-templates")
    if not os.path.isdir(tdir):
        ou.skip("no chat templates in %s" % tdir)
    from transformers import PreTrainedTokenizerFast
    import jinja2  # noqa: F401
    d = ou.tmpdir("test_chat_template")
    conv_path = os.path.join(d, "conv.jsonl")
    with open(conv_path, "w") as f:
        for c in CONVS:
            f.write(json.dumps(c) + "\n")

    def cpt_chat(tokdir, tpl):
        p = ou.run_cpt(["data", "chat", "--tokenizer", tokdir, "--chat-template", tpl, "--input", conv_path], timeout=300)
        return p, [json.loads(l) for l in p.stdout.splitlines() if l.strip()]

    toks = {}
    for name, fam, tj, tc in FAMILIES:
        src = os.path.join(sh, "data", "tokenizers", fam)
        tokdir = os.path.join(d, fam)
        os.makedirs(tokdir, exist_ok=True)
        shutil.copy(os.path.join(src, tj), os.path.join(tokdir, "tokenizer.json"))
        shutil.copy(os.path.join(src, tc), os.path.join(tokdir, "tokenizer_config.json"))
        tpl = os.path.join(tdir, name + ".jinja")
        hf = PreTrainedTokenizerFast.from_pretrained(tokdir)
        hf.chat_template = open(tpl).read()
        marked = marked_template(name, hf.chat_template)
        toks[fam] = (tokdir, hf)
        p, outs = cpt_chat(tokdir, tpl)
        ck.check(p.returncode == 0 and len(outs) == len(CONVS), "%s: cpt data chat exit %d %s" % (name, p.returncode, p.stderr[-300:]))
        for i, (c, o) in enumerate(zip(CONVS, outs)):
            msgs = messages(c)
            want_text = hf.apply_chat_template(msgs, tokenize=False)
            want_ids = hf.apply_chat_template(msgs, tokenize=True)
            if not ck.check("error" not in o, "%s conv %d: cpt error %s" % (name, i, o.get("error"))):
                continue
            ck.check(o["text"] == want_text, "%s conv %d: text differs:\n cpt %r\n hf  %r" % (name, i, o["text"], want_text))
            ck.check(o["ids"] == want_ids, "%s conv %d: ids differ (%d vs %d tokens)" % (name, i, len(o["ids"]), len(want_ids)))
            m_text, m_ids, wm = oracle_mask(hf, marked, msgs)
            if not ck.check(m_text == want_text and m_ids == want_ids,
                            "%s conv %d: the {%% generation %%}-marked template renders differently:\n marked %r\n orig   %r"
                            % (name, i, m_text, want_text)):
                continue
            ck.check(sum(wm) > 0, "%s conv %d: the oracle's assistant mask is empty" % (name, i))
            if o["ids"] == want_ids:
                ck.check(o["mask"] == wm, "%s conv %d: mask differs\n cpt %s\n hf  %s" % (name, i, o["mask"], wm))
        ou.log("  %-40s %d conversations: text, ids and mask checked" % (name, len(CONVS)))

    # A template that raises: Mistral with roles out of order
    bad = os.path.join(d, "bad.jsonl")
    with open(bad, "w") as f:
        f.write(json.dumps({"messages": [{"role": "assistant", "content": "first?"}]}) + "\n")
    tokdir, _ = toks["mistral"]
    p = ou.run_cpt(["data", "chat", "--tokenizer", tokdir, "--chat-template",
                    os.path.join(tdir, "mistralai-Mistral-Nemo-Instruct-2407.jinja"), "--input", bad], timeout=120)
    o = json.loads(p.stdout.splitlines()[0]) if p.stdout.strip() else {}
    ck.check("alternate" in o.get("error", ""), "raise_exception not propagated: %r" % o)

    # Every other template: same text as jinja2 with HF's settings, or refused by name.
    tokdir, hf = toks["qwen3"]
    matched, refused = [], []
    for fn in sorted(os.listdir(tdir)):
        if not fn.endswith(".jinja"):
            continue
        tpl = os.path.join(tdir, fn)
        hf.chat_template = open(tpl).read()
        p, outs = cpt_chat(tokdir, tpl)
        if p.returncode != 0:
            ck.check("unsupported" in p.stderr, "%s: cpt fails without naming a construct: %r" % (fn, p.stderr[-300:]))
            refused.append(fn)
            continue
        for i, (c, o) in enumerate(zip(CONVS, outs)):
            try:
                want = hf.apply_chat_template(messages(c), tokenize=False)
            except Exception as e:  # the template raised: cpt must raise too
                ck.check("error" in o, "%s conv %d: HF raised %s, cpt did not" % (fn, i, e))
                continue
            ck.check(o.get("text") == want, "%s conv %d: text differs:\n cpt %r\n hf  %r" % (fn, i, o.get("text", o.get("error")), want))
        matched.append(fn)
    ou.log("  other templates rendered identically: %d (%s); refused by name: %d (%s)"
           % (len(matched), ", ".join(matched), len(refused), ", ".join(refused)))
    ck.check(len(matched) >= MIN_OTHER_MATCHED, "only %d templates render identically (%s); at least %d must"
             % (len(matched), ", ".join(matched), MIN_OTHER_MATCHED))
    ck.finish()


if __name__ == "__main__":
    main()
