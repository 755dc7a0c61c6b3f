#!/usr/bin/env python3
"""Encode throughput: cpt (1 and 2 threads) vs HF tokenizers encode_batch (1 and 2
threads) on tokenizer.json files, vs sentencepiece (encode of the document list with
num_threads) on SentencePiece .model files, and tiktoken (Llama 3's tokenizer.model),
on the same documents.

usage: bench/tok_bench.py BUILD_DIR [SHARED_DIR]
Checks that cpt and the reference produce the same token count before reporting
speed. cpt's figure is the best of 3 calls (warm pre-token caches; the first, cold
call is shown too). "work x" is cpt's CPU seconds with 2 threads over those with
1 (1.00 = threading adds no work; the wall-clock speedup then depends only on free
cores, which a shared machine may not have: check with `nproc` and the load)."""
import json
import os
import subprocess
import sys
import time

build = sys.argv[1] if len(sys.argv) > 1 else "build"
shared = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "..", "shared")
text_path = os.path.join(shared, "data/corpora/general/tinystories_train_head.txt")
toks = {
    "gpt2": "data/tokenizers/gpt2/hf/tokenizer.json",
    "llama3": "data/tokenizers/llama3/llama3_tokenizer.json",
    "qwen3": "data/tokenizers/qwen3/tokenizer.json",
    "mistral": "data/tokenizers/mistral/tokenizer.json",
}
text = open(text_path, encoding="utf-8").read()
parts = text.split("\n\n")  # same documents as tok_bench.c: each keeps its "\n\n"
docs = [d + "\n\n" for d in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
nbytes = len(text.encode("utf-8"))

HF_CODE = r"""
import sys, time, json
from tokenizers import Tokenizer
t = Tokenizer.from_file(sys.argv[1]); t.no_truncation()
text = open(sys.argv[2], encoding="utf-8").read()
parts = text.split("\n\n")
docs = [d + "\n\n" for d in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
best = 1e30
for _ in range(3):
    t0 = time.perf_counter(); enc = t.encode_batch(docs, add_special_tokens=False); best = min(best, time.perf_counter() - t0)
print(json.dumps({"tokens": sum(len(e.ids) for e in enc), "seconds": best}))
"""


def hf(path, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
    out = subprocess.run([sys.executable, "-c", HF_CODE, path, text_path], env=env, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)


SP_CODE = r"""
import sys, time, json
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
text = open(sys.argv[2], encoding="utf-8").read()
parts = text.split("\n\n")
docs = [d + "\n\n" for d in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
best = 1e30
for _ in range(3):
    t0 = time.perf_counter(); enc = sp.encode(docs, num_threads=int(sys.argv[3])); best = min(best, time.perf_counter() - t0)
print(json.dumps({"tokens": sum(map(len, enc)), "seconds": best}))
"""
spms = {
    "llama2.model": "data/tokenizers/llama2/tokenizer.model",
    "mistral.model": "data/tokenizers/mistral/tokenizer.model.v1",
    "tok512.model": "data/models/stories260K-hf/tokenizer.model",
}


def sp(path, threads):
    out = subprocess.run([sys.executable, "-c", SP_CODE, path, text_path, str(threads)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)


def cpt(path, threads):
    # passive: a thread that finishes early sleeps at the barrier instead of spinning,
    # so CPU seconds count work, not waiting
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    out = subprocess.run([os.path.join(build, "tok_bench"), path, text_path, str(threads), "5"],
                         capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out)


print("corpus: %s (%.2f MB, %d docs)" % (os.path.basename(text_path), nbytes / 1e6, len(docs)))
cpu1 = {}


def work(name, th, c):
    if th == 1:
        cpu1[name] = c["cpu_seconds"]
        return ""
    return "  work x%.2f, wall speedup x%.2f" % (c["cpu_seconds"] / cpu1[name], wall1[name] / c["seconds"])


wall1 = {}
for name, rel in toks.items():
    path = os.path.join(shared, rel)
    for th in (1, 2):
        c, h = cpt(path, th), hf(path, th)
        if th == 1:
            wall1[name] = c["seconds"]
        same = "same tokens" if c["tokens"] == h["tokens"] else "TOKEN COUNT DIFFERS %d vs %d" % (c["tokens"], h["tokens"])
        print("%-14s threads=%d  cpt %7.2f MB/s (cold %6.2f)   hf %7.2f MB/s   speedup %.2fx  (%s)" % (
            name, th, nbytes / c["seconds"] / 1e6, c["cold_mb_per_s"], nbytes / h["seconds"] / 1e6,
            h["seconds"] / c["seconds"], same) + work(name, th, c))
for name, rel in spms.items():
    path = os.path.join(shared, rel)
    for th in (1, 2):
        c, h = cpt(path, th), sp(path, th)
        if th == 1:
            wall1[name] = c["seconds"]
        same = "same tokens" if c["tokens"] == h["tokens"] else "TOKEN COUNT DIFFERS %d vs %d" % (c["tokens"], h["tokens"])
        print("%-14s threads=%d  cpt %7.2f MB/s (cold %6.2f)   sentencepiece %7.2f MB/s   speedup %.2fx  (%s)" % (
            name, th, nbytes / c["seconds"] / 1e6, c["cold_mb_per_s"], nbytes / h["seconds"] / 1e6,
            h["seconds"] / c["seconds"], same) + work(name, th, c))
print("host: %d cores visible, load average %.2f" % (os.cpu_count(), os.getloadavg()[0]))
try:
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    ranks = load_tiktoken_bpe(os.path.join(shared, "data/tokenizers/llama3/tokenizer.model"))
    pat = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    enc = tiktoken.Encoding("llama3", pat_str=pat, mergeable_ranks=ranks, special_tokens={})
    for th in (1, 2):
        best = 1e30
        for _ in range(3):
            t0 = time.perf_counter()
            out = enc.encode_ordinary_batch(docs, num_threads=th)
            best = min(best, time.perf_counter() - t0)
        print("llama3         threads=%d  tiktoken %7.2f MB/s (%d tokens)" % (th, nbytes / best / 1e6, sum(map(len, out))))
except Exception as e:  # tiktoken is optional for the benchmark
    print("tiktoken: skipped (%s)" % e)
