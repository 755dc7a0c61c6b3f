#!/usr/bin/env bash
# Installs everything a fresh Debian 12 machine needs to build and test cpt.
# Idempotent: re-running it installs nothing that is already there.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

APT_PACKAGES=(
  build-essential cmake pkg-config clang libclang-rt-14-dev   # compilers, libFuzzer, sanitizers
  libopenblas-openmp-dev libblis-openmp-dev libomp-dev          # BLAS (OpenBLAS chosen; BLIS for bench/blas_pick)
  libjansson-dev                                                # JSON (strict: UTF-8, duplicate keys)
  libyaml-dev                                                   # YAML recipes (src/recipe)
  libpcre2-dev libutf8proc-dev                                  # tokenizer regexes and Unicode normalization
  zlib1g-dev libzstd-dev                                        # compressed corpora
  librsvg2-bin                                                  # rsvg-convert: tests/report renders the SVG charts to PNG
  python3 python3-pip
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! $PY - "$here/tests/requirements.txt" <<'PYEOF'
import sys, importlib.metadata as md
ok = True
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line: continue
    name, ver = line.split("==")
    try:
        if md.version(name) != ver: ok = False
    except md.PackageNotFoundError:
        ok = False
sys.exit(0 if ok else 1)
PYEOF
then
  echo "install-deps: pip install -r tests/requirements.txt"
  PIP_BREAK_SYSTEM_PACKAGES=1 $PY -m pip install -q --disable-pip-version-check -r "$here/tests/requirements.txt"
fi
echo "install-deps: ok"
