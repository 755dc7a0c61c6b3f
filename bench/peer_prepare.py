#!/usr/bin/env python3
"""peer_prepare.py: the Python peer of `cpt data prepare` for bench/run_prepare_bench.sh.

Same work as cpt with filters, near dedup and NFC off: read .txt (one document per file) and
.jsonl ("text" field) inputs, exact dedup by a hash of the text, HF `tokenizers` encode_batch
(batches of 256), append EOS, write the token ids as one uint16/uint32 numpy file.
Usage: peer_prepare.py TOKENIZER_JSON OUT_DIR INPUT...   (threads: RAYON_NUM_THREADS)
"""
import hashlib
import json
import os
import sys
import time

import numpy as np
from tokenizers import Tokenizer


def docs(paths):
    for p in paths:
        if p.endswith(".jsonl"):
            with open(p, encoding="utf-8", errors="replace") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        t = json.loads(line).get("text")
                    except (ValueError, AttributeError):
                        continue
                    if isinstance(t, str):
                        yield t
        else:
            with open(p, encoding="utf-8", errors="replace") as f:
                yield f.read()


def main():
    tok = Tokenizer.from_file(sys.argv[1])
    tok.no_truncation()  # cpt ignores truncation and padding in tokenizer.json too
    tok.no_padding()
    out, inputs = sys.argv[2], sys.argv[3:]
    os.makedirs(out, exist_ok=True)
    eos = tok.token_to_id("<|endoftext|>")
    t0 = time.time()
    seen, batch, chunks, n_in, n_kept = set(), [], [], 0, 0
    dtype = np.uint16 if tok.get_vocab_size() <= 65536 else np.uint32

    def flush():
        for e in tok.encode_batch(batch):
            chunks.append(np.asarray(e.ids + ([eos] if eos is not None else []), dtype=dtype))
        batch.clear()

    for t in docs(inputs):
        n_in += 1
        h = hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest()
        if h in seen or not t.strip():
            continue
        seen.add(h)
        n_kept += 1
        batch.append(t)
        if len(batch) == 256:
            flush()
    flush()
    allt = np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)
    allt.tofile(os.path.join(out, "train.bin"))
    print(json.dumps({"docs_in": n_in, "kept": n_kept, "tokens": int(allt.size), "seconds": time.time() - t0}))


if __name__ == "__main__":
    main()
