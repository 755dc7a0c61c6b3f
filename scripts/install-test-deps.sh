#!/usr/bin/env bash
# Installs what `make test` needs beyond scripts/install-build-deps.sh: the Debian packages
# of the sanitizer and fuzzer runs and the SVG check, and the pinned Python test oracles of
# tests/requirements.txt (torch, transformers, tokenizers, ...). Idempotent: pip runs only
# when a pinned version is missing or different. `make test` runs it first.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/apt-ensure.sh"

TEST_PACKAGES=(
  clang libclang-rt-14-dev libomp-dev                           # libFuzzer, sanitizers (make test-fuzz)
  libblis-openmp-dev                                            # bench/blas_pick compares it with OpenBLAS
  librsvg2-bin                                                  # rsvg-convert: tests/report renders the SVG charts to PNG
  python3 python3-pip
)
apt_ensure install-test-deps "${TEST_PACKAGES[@]}"
[ -n "${CPT_SKIP_DEPS:-}" ] && exit 0

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
  echo "install-test-deps: pip install -r tests/requirements.txt"
  PIP_BREAK_SYSTEM_PACKAGES=1 $PY -m pip install -q --disable-pip-version-check -r "$here/tests/requirements.txt"
fi
