#!/usr/bin/env python3
"""fake_cpt.py: a numpy stand-in for the cpt CLI (score, generate, convert), to test the tests.

Not the product and not an oracle for it: it lets the Python parity tests run end to
end before the C commands exist (CPT_BIN=tests/oracle/fake_cpt.py python3 tests/model/...),
so a broken test harness is found now rather than when the C code lands.  It follows
the CLI contract those tests assume:
  cpt score --model DIR --ids FILE [--logits OUT.npy]   -> {"tokens","loss","ppl"} JSON line
  cpt generate --model DIR --ids "1 2" --max-new N [--greedy] [--temperature X] [--print-ids]
  cpt convert --from hf|llama2c SRC --out DIR [--dtype f32|bf16]
Usage errors exit 2 naming the option; bad model files exit 1 naming file and field.

FAKE_CPT_BUG=<name> injects one known bug (see BUGS) so test_harness.py can show that each
parity test notices it: a test that passes against a broken cpt is itself broken.
"""
import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import npref  # noqa: E402


BUGS = {
    "logits": "score: one logit off by 1e-3 of the max",
    "loss_T": "score: loss averaged over T instead of T-1 predictions",
    "greedy": "generate: the last generated id is wrong",
    "bf16_trunc": "convert: bf16 by truncation instead of round-to-nearest-even",
    "untie": "convert: drops tie_word_embeddings from config.json",
    "noperm": "convert --from llama2c: q/k rows not permuted to the HF layout",
    "exit0": "model errors exit 0 and print nothing",
}
BUG = os.environ.get("FAKE_CPT_BUG", "")


class Usage(Exception):
    pass


def precision(v):
    if v not in ("fp32", "bf16"):
        raise argparse.ArgumentTypeError("'%s': use fp32 or bf16" % v)
    return v


def parser(cmd):
    p = argparse.ArgumentParser(prog="cpt " + cmd)
    if cmd in ("score", "generate"):
        p.add_argument("--model", required=True, help="Hugging Face model directory")
        p.add_argument("--ids", required=True,
                       help="token ids: a file (score) or an inline list (generate), whitespace-separated")
    if cmd in ("score", "generate"):
        p.add_argument("--precision", default="fp32", type=precision,
                       help="fp32 (default) or bf16: bf16 inputs to the products, fp32 sums")
    if cmd == "score":
        p.add_argument("--logits", help="write float32 [T, vocab] logits to this .npy file")
    if cmd == "generate":
        p.add_argument("--max-new", type=int, default=32)
        p.add_argument("--greedy", action="store_true")
        p.add_argument("--temperature", type=float, default=1.0)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--print-ids", action="store_true")
    if cmd == "convert":
        p.add_argument("--from", dest="src_fmt", required=True, choices=["hf", "llama2c"])
        p.add_argument("src")
        p.add_argument("--out", required=True)
        p.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    return p


def parse_ids(text, opt):
    try:
        ids = [int(t) for t in text.replace(",", " ").split()]
    except ValueError:
        raise Usage("%s: ids must be integers" % opt)
    if not ids:
        raise Usage("%s: no ids" % opt)
    return ids


def model_dir(path):
    if not os.path.isdir(path):
        raise Usage("--model: %s is not a directory. HINT: pass a Hugging Face model directory" % path)
    return npref.load_model(path)


def cmd_score(a):
    cfg, w = model_dir(a.model)
    try:
        with open(a.ids) as f:
            ids = parse_ids(f.read(), "--ids")
    except OSError as e:
        raise Usage("--ids: cannot read %s (%s)" % (a.ids, e.strerror))
    if len(ids) < 2:
        raise Usage("--ids: need at least 2 tokens to score")
    logits = npref.forward(cfg, w, ids, bf16=(a.precision == "bf16"))
    s, n = npref.shifted_ce(logits, ids)
    if BUG == "loss_T":
        n += 1
    if BUG == "logits":
        logits[len(ids) // 2, 0] += 1e-3 * np.abs(logits).max()
    if a.logits:
        np.save(a.logits, logits.astype(np.float32))
    print(json.dumps({"tokens": len(ids), "loss": s / n, "ppl": math.exp(s / n)}))


def cmd_generate(a):
    if a.max_new < 0:
        raise Usage("--max-new: %d is negative. HINT: use 0 or more" % a.max_new)
    if not a.temperature >= 0:
        raise Usage("--temperature: must be >= 0")
    cfg, w = model_dir(a.model)
    ids = parse_ids(a.ids, "--ids")
    rng = np.random.default_rng(a.seed)
    for _ in range(a.max_new):
        z = npref.forward(cfg, w, ids, bf16=(a.precision == "bf16"))[-1]
        if a.greedy or a.temperature == 0:
            ids.append(int(np.argmax(z)))
        else:
            p = np.exp(npref.log_softmax(z / a.temperature))
            ids.append(int(rng.choice(len(p), p=p / p.sum())))
    if BUG == "greedy" and a.max_new > 0:
        ids[-1] = (ids[-1] + 1) % cfg["vocab_size"]
    print(" ".join(map(str, ids)))


def cmd_convert(a):
    os.makedirs(a.out, exist_ok=True)
    if a.src_fmt == "llama2c":
        cfg, t = npref.llama2c_read(a.src, permute=(BUG != "noperm"))
    else:
        cfg = npref.load_config(a.src)
        with open(os.path.join(a.src, "config.json")) as f:
            cfg = json.load(f)  # keep every key of the source
        t, _ = npref.st_read(os.path.join(a.src, "model.safetensors"))
    cfg["torch_dtype"] = "bfloat16" if a.dtype == "bf16" else "float32"
    if BUG == "untie":
        cfg.pop("tie_word_embeddings", None)
    if BUG == "bf16_trunc" and a.dtype == "bf16":
        t = {k: (np.asarray(v, np.float32).view(np.uint32) & 0xFFFF0000).view(np.float32) for k, v in t.items()}
    npref.st_write(os.path.join(a.out, "model.safetensors"), t, "BF16" if a.dtype == "bf16" else "F32",
                   {"format": "pt"})
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def main(argv):
    cmds = {"score": cmd_score, "generate": cmd_generate, "convert": cmd_convert}
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: cpt <command> [options]\ncommands: " + ", ".join(cmds))
        return 0 if argv else 2
    if argv[0] not in cmds:
        sys.stderr.write("cpt: unknown command '%s'\n" % argv[0])
        return 2
    a = parser(argv[0]).parse_args(argv[1:])  # argparse: exit 2 naming the option
    try:
        cmds[argv[0]](a)
    except Usage as e:
        sys.stderr.write("cpt %s: %s\n" % (argv[0], e))
        return 2
    except npref.ModelError as e:
        if BUG == "exit0":
            return 0
        sys.stderr.write("cpt %s: %s\n" % (argv[0], e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
