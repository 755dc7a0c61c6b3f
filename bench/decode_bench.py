#!/usr/bin/env python3
"""decode_bench.py: decoding speed (tokens/s of greedy generation with a KV cache, one
prompt) of cpt generate in fp32 and bf16 next to transformers' generate in fp32 and bf16,
same model, same prompt, same machine, alternating rounds.

Each side's time for N new tokens is measured as t(N + 1) - t(1) (each timed run is the
same prompt, greedy, eos ignored), so model loading and the prefill drop out: what remains
is N decode steps. Median of ROUNDS. cpt: `cpt generate --precision P` (bf16: the linears
and the LM head on the bf16 weight copy; falls back to fp32 where the CPU has no bf16 dot
products, and says so). transformers: model.generate(do_sample=False) with torch_dtype
float32, and bfloat16 weights (its fastest bf16 CPU path for decoding; autocast re-rounds
fp32 weights every step), SDPA attention, torch threads = OMP_NUM_THREADS.

Usage: python3 bench/decode_bench.py [--model DIR] [--new N] [--rounds R]
(default: SmolLM2-135M-Instruct from scripts/get-smollm2.sh, 128 new tokens, 3 rounds)
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
cpt = os.environ.get("CPT_BIN", os.path.join(here, "build", "cpt"))
PROMPT = "Continued pretraining adapts a language model to a new domain. Explain in detail how"


def cpt_time(model, n, precision):
    t0 = time.perf_counter()
    r = subprocess.run([cpt, "generate", "--model", model, "--prompt", PROMPT, "--max-new", str(n), "--greedy", "--ignore-eos",
                        "--precision", precision], capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode:
        sys.exit("cpt generate failed: " + r.stderr[-400:])
    return dt, r.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    model = a.model or subprocess.run([os.path.join(here, "scripts", "get-smollm2.sh")], capture_output=True, text=True,
                                      check=True, env=dict(os.environ, CPT_BIN=cpt)).stdout.strip().splitlines()[-1]
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    tok = AutoTokenizer.from_pretrained(model)
    ids = tok(PROMPT, return_tensors="pt").input_ids
    peers = {}
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        peers[name] = AutoModelForCausalLM.from_pretrained(model, torch_dtype=dt, attn_implementation="sdpa").eval()

    def hf_time(m, n):
        t0 = time.perf_counter()
        with torch.no_grad():
            out = m.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=tok.eos_token_id)
        assert out.shape[1] == ids.shape[1] + n
        return time.perf_counter() - t0

    res = {k: [] for k in ("cpt fp32", "cpt bf16", "transformers fp32", "transformers bf16")}
    note = ""
    for r in range(a.rounds):
        for p in ("fp32", "bf16"):
            t1, _ = cpt_time(model, 1, p)
            tn, err = cpt_time(model, a.new + 1, p)
            if p == "bf16" and "in fp32" in err:
                note = " (no bf16 kernel on this CPU: cpt ran fp32)"
            res["cpt " + p].append(a.new / (tn - t1))
            hf_time(peers[p], 1)  # warm
            t1 = hf_time(peers[p], 1)
            tn = hf_time(peers[p], a.new + 1)
            res["transformers " + p].append(a.new / (tn - t1))
        print("round %d: " % (r + 1) + ", ".join("%s %.1f" % (k, v[-1]) for k, v in res.items()), flush=True)
    print("\ndecoding, %d new tokens after a %d-token prompt, %s threads, median of %d rounds (tokens/s)%s"
          % (a.new, ids.shape[1], os.environ.get("OMP_NUM_THREADS", "2"), a.rounds, note))
    print("| who | fp32 | bf16 | bf16 / fp32 |")
    print("|---|---:|---:|---:|")
    for who in ("cpt", "transformers"):
        f, b = statistics.median(res[who + " fp32"]), statistics.median(res[who + " bf16"])
        print("| %s | %.1f | %.1f | %.2fx |" % (who, f, b, b / f))


if __name__ == "__main__":
    main()
