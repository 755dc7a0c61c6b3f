#!/usr/bin/env python3
"""test_data_chat.py: `cpt data prepare --chat` end to end against transformers.

Conversations (messages and prompt/response, multi-turn, non-ASCII) plus malformed lines go
through `cpt data prepare --chat`; the shards are parsed here from the format in
include/cpt/shard.h (tokens, index and the v2 loss-mask bits). The oracle: every kept
document must equal transformers' apply_chat_template(messages, tokenize=True) and its mask
the assistant spans computed from HF `tokenizers` offsets (the approach of
tests/data/test_chat_template.py), in input order, for exactly the conversations that should
survive (hand-counted: one exact duplicate, one line of each malformed kind). stats.json must
count the malformed lines by reason, list them by file:line, and satisfy the accounting
identity. Cases: Llama 3.1 (the template of tokenizer_config.json), Qwen2.5 / ChatML
(--chat-template), a custom template whose raise_exception rejects a role (template_error),
--strict (the first malformed line is fatal, named by file:line) and a non-.jsonl input.
"""
import json
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.join(os.environ.get("CPT_SRC", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "oracle"))
import oracle_util as ou  # noqa: E402

GOOD = [
    {"messages": [{"role": "user", "content": "Hello there!"}, {"role": "assistant", "content": "Hi! How can I help?"}]},
    {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"},
                  {"role": "assistant", "content": "It is 6.\nDone."}]},
    {"messages": [{"role": "user", "content": "Say \"hi\" in French, then stop."},
                  {"role": "assistant", "content": "Salut \u2014 \u00e7a va ?"},
                  {"role": "user", "content": "Thanks"}, {"role": "assistant", "content": "You're welcome."}]},
    {"prompt": "Name a color.", "response": "Blue."},
]

# A custom template (Llama-3 header tokens) that rejects any role but user/assistant/system.
STRICT_ROLES_TPL = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] not in ['user', 'assistant', 'system'] %}"
    "{{ raise_exception('role ' + m['role'] + ' is not supported') }}{% endif %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}")


def messages(c):
    return c["messages"] if "messages" in c else [{"role": "user", "content": c["prompt"]},
                                                   {"role": "assistant", "content": c["response"]}]


def read_shard(path):
    """[(tokens, mask)] per document, parsed from the bytes (format: include/cpt/shard.h)."""
    b = open(path, "rb").read()
    magic, ver, tb, vocab, flags, nd, nt, idx, fsize = struct.unpack_from("<8sIIIIQQQQ", b, 0)
    assert magic == b"CPTSHARD" and fsize == len(b), path
    toks = struct.unpack_from("<%d%s" % (nt, "H" if tb == 2 else "I"), b, 64)
    off = struct.unpack_from("<%dQ" % (nd + 1), b, idx)
    if ver == 2 and flags & 1:
        mo = idx + (nd + 1) * 8
        bits = [(b[mo + t // 8] >> (t % 8)) & 1 for t in range(nt)]
    else:
        bits = [1] * nt
    return ver, flags, [(list(toks[off[i]:off[i + 1]]), bits[off[i]:off[i + 1]]) for i in range(nd)]


def oracle_mask(hf_tok, text, ids, msgs):
    """Assistant content tokens (by character offsets) + the special token right after each."""
    enc = hf_tok.backend_tokenizer.encode(text, add_special_tokens=False)
    assert enc.ids == ids
    special = set(hf_tok.all_special_ids) | {i for i, t in hf_tok.added_tokens_decoder.items() if t.special}
    mask, cur = [0] * len(ids), 0
    for m in msgs:  # located in order, so an answer never matches earlier text
        c = m["content"]
        s = text.find(c, cur)
        if s < 0:
            c = c.strip()
            s = text.find(c, cur)
        if m["role"] != "assistant":
            if s >= 0:
                cur = s + len(c)
            continue
        e = s + len(c)
        last = -1
        for k, (a, b) in enumerate(enc.offsets):
            if a < e and b > s:
                mask[k] = 1
                last = k
        if last + 1 < len(ids) and ids[last + 1] in special:
            mask[last + 1] = 1
        cur = e
    return mask


def model_dir(d, sh, fam, tj, tc):
    tokdir = os.path.join(d, fam)
    os.makedirs(tokdir, exist_ok=True)
    src = os.path.join(sh, "data", "tokenizers", fam)
    shutil.copy(os.path.join(src, tj), os.path.join(tokdir, "tokenizer.json"))
    shutil.copy(os.path.join(src, tc), os.path.join(tokdir, "tokenizer_config.json"))
    return tokdir


def shard_docs(out):
    docs, vers = [], set()
    for fn in sorted(os.listdir(out)):
        if fn.startswith("train-") and fn.endswith(".shard"):
            ver, flags, dd = read_shard(os.path.join(out, fn))
            vers.add((ver, flags))
            docs += dd
    return vers, docs


def identity_ok(st):
    return st["docs_in"] == (st["kept"] + st["malformed"] + st["filtered"] + st["exact_duplicates"]
                             + st["contaminated"] + st["near_duplicates"]) and \
        st["kept"] == st["train_docs"] + st["val_docs"]


def check_against_hf(ck, label, hf, docs, convs):
    ok = ck.check(len(docs) == len(convs), "%s: %d documents in the shards, want %d" % (label, len(docs), len(convs)))
    for i, (c, (ids, mask)) in enumerate(zip(convs, docs) if ok else []):
        msgs = messages(c)
        want_ids = hf.apply_chat_template(msgs, tokenize=True)
        if ck.check(ids == want_ids, "%s conv %d: ids differ (%d vs %d tokens)\n cpt %s\n hf  %s"
                    % (label, i, len(ids), len(want_ids), ids, want_ids)):
            wm = oracle_mask(hf, hf.apply_chat_template(msgs, tokenize=False), want_ids, msgs)
            ck.check(mask == wm, "%s conv %d: mask differs\n cpt %s\n ref %s" % (label, i, mask, wm))
            ck.check(sum(mask) > 0 and sum(mask) < len(mask), "%s conv %d: degenerate mask" % (label, i))


def main():
    ck = ou.Checker("test_data_chat")
    ou.require_commands("data")
    sh = ou.shared()
    if not os.path.isdir(os.path.join(sh, "data", "tokenizers", "llama3")):
        ou.skip("no tokenizers under %s" % sh)
    from transformers import PreTrainedTokenizerFast
    d = ou.tmpdir("test_data_chat")

    # ---- Llama 3.1: tokenizer_config.json's template; malformed lines counted ----
    tokdir = model_dir(d, sh, "llama3", "llama3.1_tokenizer.json", "llama3.1_tokenizer_config.json")
    hf = PreTrainedTokenizerFast.from_pretrained(tokdir)
    inp = os.path.join(d, "conv.jsonl")
    lines = [json.dumps(GOOD[0]), json.dumps(GOOD[1]),
             "this is not json",                          # line 3: bad_json
             json.dumps(GOOD[0]),                         # line 4: exact duplicate
             json.dumps({"messages": []}),                # line 5: bad_conversation (empty)
             "",                                          # blank: not a document
             json.dumps(GOOD[2]),
             json.dumps({"text": "no messages"}),         # line 8: bad_conversation (missing)
             json.dumps([1, 2]),                          # line 9: bad_json (not an object)
             json.dumps(GOOD[3])]
    with open(inp, "w") as f:
        f.write("\n".join(lines) + "\n")
    out = os.path.join(d, "out-llama")
    shutil.rmtree(out, ignore_errors=True)
    p = ou.run_cpt(["data", "prepare", "--chat", "--tokenizer", tokdir, "--input", inp, "--out", out,
                    "--val-fraction", "0", "--quiet"], timeout=300)
    if ck.check(p.returncode == 0, "llama3 prepare --chat exit %d: %s" % (p.returncode, p.stderr[-500:])):
        st = json.load(open(os.path.join(out, "stats.json")))
        mb = st["malformed_by_reason"]
        ck.check(st["docs_in"] == 9, "docs_in %d, want 9" % st["docs_in"])
        ck.check(st["kept"] == 4 and st["exact_duplicates"] == 1 and st["malformed"] == 4,
                 "kept/dup/malformed %d/%d/%d, want 4/1/4" % (st["kept"], st["exact_duplicates"], st["malformed"]))
        ck.check(mb["bad_json"] == 2 and mb["bad_conversation"] == 2 and mb["template_error"] == 0,
                 "malformed_by_reason %r" % mb)
        ck.check(identity_ok(st), "accounting identity broken: %r" % st)
        ck.check(st["filtered"] == 0, "quality filters ran on chat data")
        got = [(i["line"], i["reason"]) for i in st["first_issues"]]
        ck.check(got == [(3, "bad_json"), (5, "bad_conversation"), (8, "bad_conversation"), (9, "bad_json")],
                 "first_issues %r" % got)
        ck.check("conv.jsonl:3: bad_json" in p.stderr, "stderr does not name conv.jsonl:3: %r" % p.stderr[-400:])
        vers, docs = shard_docs(out)
        ck.check(vers == {(2, 1)}, "shard version/flags %r, want v2 with HAS_MASK" % vers)
        check_against_hf(ck, "llama3.1", hf, docs, GOOD)
        ou.log("  llama3.1: %d conversations checked (ids + mask), malformed %r" % (len(docs), mb))

    # ---- --strict: the first malformed line is fatal and named ----
    p = ou.run_cpt(["data", "prepare", "--chat", "--strict", "--tokenizer", tokdir, "--input", inp, "--out",
                    os.path.join(d, "out-strict"), "--quiet"], timeout=300)
    ck.check(p.returncode != 0 and "conv.jsonl:3" in p.stderr and "strict" in p.stderr,
             "--strict: exit %d stderr %r" % (p.returncode, p.stderr[-300:]))

    # ---- a template that raises: template_error, and --chat-template ----
    tpl = os.path.join(d, "roles.jinja")
    with open(tpl, "w") as f:
        f.write(STRICT_ROLES_TPL)
    inp2 = os.path.join(d, "roles.jsonl")
    tool = {"messages": [{"role": "user", "content": "Weather?"}, {"role": "tool", "content": "sunny"}]}
    with open(inp2, "w") as f:
        f.write(json.dumps(GOOD[0]) + "\n" + json.dumps(tool) + "\n" + json.dumps(GOOD[3]) + "\n")
    out2 = os.path.join(d, "out-roles")
    shutil.rmtree(out2, ignore_errors=True)
    p = ou.run_cpt(["data", "prepare", "--chat", "--chat-template", tpl, "--tokenizer", tokdir, "--input", inp2,
                    "--out", out2, "--val-fraction", "0", "--quiet"], timeout=300)
    if ck.check(p.returncode == 0, "custom template exit %d: %s" % (p.returncode, p.stderr[-500:])):
        st = json.load(open(os.path.join(out2, "stats.json")))
        ck.check(st["malformed_by_reason"]["template_error"] == 1 and st["kept"] == 2 and identity_ok(st),
                 "template_error case: %r" % st)
        ck.check([(i["line"], i["reason"]) for i in st["first_issues"]] == [(2, "template_error")],
                 "template_error issue %r" % st["first_issues"])
        hf.chat_template = STRICT_ROLES_TPL
        check_against_hf(ck, "custom template", hf, shard_docs(out2)[1], [GOOD[0], GOOD[3]])
    p = ou.run_cpt(["data", "prepare", "--chat", "--strict", "--chat-template", tpl, "--tokenizer", tokdir,
                    "--input", inp2, "--out", os.path.join(d, "out-roles-strict"), "--quiet"], timeout=300)
    ck.check(p.returncode != 0 and "roles.jsonl:2" in p.stderr and "role tool is not supported" in p.stderr,
             "--strict with raise_exception: exit %d %r" % (p.returncode, p.stderr[-300:]))

    # ---- Qwen2.5 (ChatML) with --chat-template ----
    qtpl = os.path.join(sh, "data", "chat-templates", "Qwen-Qwen2.5-7B-Instruct.jinja")
    if ck.check(os.path.isfile(qtpl), "missing %s" % qtpl):
        qdir = model_dir(d, sh, "qwen3", "tokenizer.json", "tokenizer_config.json")
        qhf = PreTrainedTokenizerFast.from_pretrained(qdir)
        qhf.chat_template = open(qtpl).read()
        inp3 = os.path.join(d, "qwen.jsonl")
        with open(inp3, "w") as f:
            f.write("".join(json.dumps(c) + "\n" for c in GOOD))
        out3 = os.path.join(d, "out-qwen")
        shutil.rmtree(out3, ignore_errors=True)
        p = ou.run_cpt(["data", "prepare", "--chat", "--chat-template", qtpl, "--tokenizer", qdir, "--input", inp3,
                        "--out", out3, "--val-fraction", "0", "--quiet", "--threads", "2"], timeout=300)
        if ck.check(p.returncode == 0, "qwen prepare --chat exit %d: %s" % (p.returncode, p.stderr[-500:])):
            check_against_hf(ck, "qwen2.5", qhf, shard_docs(out3)[1], GOOD)
            ou.log("  qwen2.5 (ChatML): %d conversations checked" % len(GOOD))

    # ---- validation split: --val-docs 1 moves exactly one conversation, masks intact ----
    out4 = os.path.join(d, "out-val")
    shutil.rmtree(out4, ignore_errors=True)
    p = ou.run_cpt(["data", "prepare", "--chat", "--tokenizer", tokdir, "--input", inp, "--out", out4,
                    "--val-docs", "1", "--quiet"], timeout=300)
    if ck.check(p.returncode == 0, "val split exit %d: %s" % (p.returncode, p.stderr[-300:])):
        st = json.load(open(os.path.join(out4, "stats.json")))
        ck.check(st["val_docs"] == 1 and st["train_docs"] == 3, "val/train %d/%d" % (st["val_docs"], st["train_docs"]))
        _, _, vd = read_shard(os.path.join(out4, "val-00000.shard"))
        ck.check(len(vd) == 1 and 0 < sum(vd[0][1]) < len(vd[0][1]), "val shard lacks a masked conversation")

    # ---- a non-.jsonl input is refused by name ----
    txt = os.path.join(d, "plain.txt")
    with open(txt, "w") as f:
        f.write("just text\n")
    p = ou.run_cpt(["data", "prepare", "--chat", "--tokenizer", tokdir, "--input", txt, "--out",
                    os.path.join(d, "out-txt"), "--quiet"], timeout=120)
    ck.check(p.returncode != 0 and "plain.txt" in p.stderr and ".jsonl" in p.stderr,
             "non-jsonl chat input: exit %d %r" % (p.returncode, p.stderr[-300:]))
    ck.finish()


if __name__ == "__main__":
    main()
