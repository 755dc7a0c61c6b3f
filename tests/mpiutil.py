"""mpiutil.py: launching cpt under Open MPI in the tests (tests/comm, tests/train/test_dp.py).

mpirun comes from CPT_MPIEXEC (set by tests/CMakeLists.txt when CMake found MPI), else PATH.
Missing: the test skips, which under CI=true is a failure (skiputil.skip). Flags: --oversubscribe
(more ranks than cores on a 2-core machine), and the two variables that let Open MPI run as
root (CI containers). Every rank gets OMP_NUM_THREADS=1 unless the caller says otherwise.
Not a test itself; import it after putting tests/ on sys.path.
"""
import os
import shutil

from skiputil import skip


def mpirun():
    exe = os.environ.get("CPT_MPIEXEC") or shutil.which("mpirun")
    if not exe or not os.path.exists(exe):
        skip("mpirun not found (CMake found no MPI). HINT: bash scripts/install-build-deps.sh installs openmpi-bin and libopenmpi-dev")
    return exe


def env(threads=1, **extra):
    e = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS=str(threads))
    # Open MPI's own allocations at MPI_Init are not freed at exit: not ours to report
    # under the sanitizer build.
    e["ASAN_OPTIONS"] = (e.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    e.update(extra)
    return e


def cmd(np, argv):
    return [mpirun(), "--oversubscribe", "-np", str(np)] + list(argv)


class Harness:
    """What the data-parallel tests share: the cpt binary (CPT_BIN; skip when not built), a temp
    directory, ok/FAIL lines counted in .fails, `run` (cpt, one process) and `base()`, the small
    random byte-level Llama both tests train (2 layers, 4 heads over 2 KV heads, tied)."""

    def __init__(self, prefix):
        import subprocess, tempfile
        self._sp = subprocess
        self.bin = os.environ.get("CPT_BIN")
        if not self.bin or not os.path.exists(self.bin):
            skip("CPT_BIN not built")
        mpirun()
        self.fails = 0
        self.tmp = tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("CPT_TMP"))

    def check(self, cond, what):
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        self.fails += not cond

    def run(self, args, **kw):
        return self._sp.run([self.bin] + list(args), capture_output=True, text=True, env=env(), **kw)

    def base(self, name="base", tied=True, intermediate=64):
        """A small random byte-level Llama (cpt init) in TMP/name: 2 layers, 4 heads over 2 KV heads."""
        import json
        cfg = os.path.join(self.tmp, "config.json" if name == "base" else name + ".json")  # tests reuse TMP/config.json
        json.dump({"architectures": ["LlamaForCausalLM"], "vocab_size": 264, "hidden_size": 32, "intermediate_size": intermediate,
                   "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": tied,
                   "bos_token_id": 256, "eos_token_id": 257, "rms_norm_eps": 1e-5}, open(cfg, "w"))
        base = os.path.join(self.tmp, name)
        r = self.run(["init", "--config", cfg, "--byte-tokenizer", "--out", base, "--seed", "3", "--std", "0.1"])
        self.check(r.returncode == 0, "cpt init" + ("" if r.returncode == 0 else ": " + r.stderr[-200:]))
        return base

    def words_shards(self, base, seed, name="d"):
        """200 documents of 30 words drawn (seeded) from five, prepared with base's tokenizer
        into TMP/name (every document trains); returns that directory."""
        import random
        rng = random.Random(seed)
        words = ["alpha", "beta", "gamma", "delta", "omega"]
        txt = os.path.join(self.tmp, "txt-" + name)
        os.makedirs(txt)
        open(os.path.join(txt, "d.txt"), "w").write(
            "\n\n".join(" ".join(rng.choice(words) for _ in range(30)) for _ in range(200)))
        out = os.path.join(self.tmp, name)
        r = self.run(["data", "prepare", "--tokenizer", base, "--input", os.path.join(txt, "d.txt"), "--out", out,
                      "--no-filters", "--no-dedup", "--quiet", "--txt-docs", "blank", "--val-fraction", "0"])
        self.check(r.returncode == 0, "data prepare: " + r.stderr[-300:])
        return out
