#!/usr/bin/env python3
"""test_cli_errors.py: cpt rejects bad options and corrupt model directories with a clear message.

Not marked needs-oracle on purpose: it builds the one small model it needs itself (in
CPT_TMP, ~2 s), so it also runs in the ASan+UBSan pass, where corrupt inputs matter most.

Usage errors: exit code 2 and a stderr message naming the offending option.  Corrupt model
directories (a fixture copied to CPT_TMP and damaged): exit 1 or 2, never a signal, and
stderr names the damaged file and, for config.json, the field.  A command missing from the
dispatcher is a failure.
"""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.environ.get("CPT_SRC", os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tests", "oracle"))
import oracle_util as ou  # noqa: E402

FIXTURE = "llama_gqa_tied"  # 6 heads, 2 kv heads: kv=5 does not divide 6


def expect_usage_error(ck, args, must_name, tag):
    p = ou.run_cpt(args, timeout=120)
    ck.check(p.returncode == 2, "%s: `cpt %s` exit %d, want 2 (stderr: %s)"
             % (tag, " ".join(args), p.returncode, p.stderr.strip()[-300:]))
    ck.check(must_name in p.stderr, "%s: stderr does not name %r: %r" % (tag, must_name, p.stderr.strip()[-300:]))
    ou.log("  %-28s exit %d  %s" % (tag, p.returncode, (p.stderr.strip().splitlines() or [""])[-1][:90]))


def expect_model_error(ck, model_dir, ids_file, must_name, tag):
    p = ou.run_cpt(["score", "--model", model_dir, "--ids", ids_file], timeout=120)
    ck.check(p.returncode >= 0, "%s: cpt died with signal %d (stderr: %s)" % (tag, -p.returncode, p.stderr[-500:]))
    ck.check(p.returncode in (1, 2), "%s: exit %d, want 1 or 2" % (tag, p.returncode))
    for s in must_name:
        ck.check(s in p.stderr, "%s: stderr does not name %r: %r" % (tag, s, p.stderr.strip()[-300:]))
    ou.log("  %-28s exit %d  %s" % (tag, p.returncode, (p.stderr.strip().splitlines() or [""])[-1][:90]))


def main():
    ou.cpt_bin()
    ou.require_commands("score", "generate")
    tmp = ou.tmpdir("cli_errors")
    src = os.path.join(tmp, FIXTURE, "model")
    import make_fixtures  # always rebuilt (~1 s): a stale copy must not outlive a generator change
    arch, seed, kw = make_fixtures.CONFIGS[FIXTURE]
    shutil.rmtree(os.path.join(tmp, FIXTURE), ignore_errors=True)
    make_fixtures.make_model_fixture(tmp, FIXTURE, arch, seed, kw)
    ids_file = os.path.join(tmp, "ids.txt")
    with open(ids_file, "w") as f:
        f.write("1 2 3 4 5\n")
    ck = ou.Checker("test_cli_errors")

    expect_usage_error(ck, ["score", "--ids", ids_file], "--model", "score without --model")
    expect_usage_error(ck, ["score", "--model", "/nonexistent", "--ids", ids_file], "--model",
                       "score --model /nonexistent")
    expect_usage_error(ck, ["score", "--model", src, "--ids", ids_file, "--bogus"], "--bogus",
                       "score --bogus")
    p = ou.run_cpt(["score", "--help"], timeout=60)
    ck.check(p.returncode == 0, "score --help: exit %d, want 0" % p.returncode)
    for opt in ("--model", "--ids", "--logits"):
        ck.check(opt in p.stdout + p.stderr, "score --help does not list %s" % opt)
    # --precision takes fp32 or bf16 in every command that has it
    for args in (["score", "--model", src, "--ids", ids_file], ["generate", "--model", src, "--ids", "1 2", "--max-new", "2"]):
        p = ou.run_cpt(args + ["--precision", "fp16"], timeout=120)
        ck.check(p.returncode in (1, 2) and "use fp32 or bf16" in p.stderr,
                 "%s --precision fp16: exit %d, stderr %r" % (args[0], p.returncode, p.stderr.strip()[-200:]))
        p = ou.run_cpt(args + ["--precision", "bf16"], timeout=120)
        ck.check(p.returncode == 0, "%s --precision bf16: exit %d (%s)" % (args[0], p.returncode, p.stderr[-300:]))
    # the intact copy must work, or the corruption cases below prove nothing
    p = ou.run_cpt(["score", "--model", src, "--ids", ids_file], timeout=120)
    ck.check(p.returncode == 0, "score on the intact fixture: exit %d (%s)" % (p.returncode, p.stderr[-300:]))

    def corrupt(tag, fn):
        d = os.path.join(tmp, tag)
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(src, d)
        fn(d)
        return d

    def edit_config(change):
        def fn(d):
            path = os.path.join(d, "config.json")
            with open(path) as f:
                cfg = json.load(f)
            change(cfg)
            with open(path, "w") as f:
                json.dump(cfg, f, indent=2)
        return fn

    def truncate(d):
        path = os.path.join(d, "model.safetensors")
        os.truncate(path, os.path.getsize(path) - 100)

    cases = [
        ("truncated_safetensors", truncate, ["model.safetensors"]),
        ("no_num_attention_heads", edit_config(lambda c: c.pop("num_attention_heads")),
         ["config.json", "num_attention_heads"]),
        ("gpt2_architecture", edit_config(lambda c: c.__setitem__("architectures", ["GPT2LMHeadModel"])),
         ["config.json", "architectures"]),
        ("kv_heads_5_of_6", edit_config(lambda c: c.__setitem__("num_key_value_heads", 5)),
         ["config.json", "num_key_value_heads"]),
    ]
    for tag, fn, names in cases:
        expect_model_error(ck, corrupt(tag, fn), ids_file, names, tag)

    base = ["generate", "--model", src, "--ids", "1"]
    expect_usage_error(ck, base + ["--max-new", "-1"], "--max-new", "generate --max-new -1")
    expect_usage_error(ck, base + ["--max-new", "4", "--temperature", "abc"], "--temperature",
                       "generate --temperature abc")
    ck.finish()


if __name__ == "__main__":
    main()
