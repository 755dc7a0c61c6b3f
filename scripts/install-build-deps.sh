#!/usr/bin/env bash
# Installs the Debian packages needed to build cpt and run `make demo` on a fresh Debian 12
# machine: compilers, CMake, BLAS, and the libraries cpt links. No Python packages (the
# demo needs no torch); the test oracles are scripts/install-test-deps.sh.
# Idempotent and quick when everything is there (a dpkg-query per package, nothing else);
# `make`, `make build` and `make demo` run it first.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/apt-ensure.sh"

BUILD_PACKAGES=(
  build-essential cmake pkg-config                              # compiler and build system
  libopenblas-openmp-dev                                        # BLAS (OpenMP build; why: src/ops/linear.c)
  libjansson-dev                                                # JSON (strict: UTF-8, duplicate keys)
  libyaml-dev                                                   # YAML recipes (src/recipe)
  libpcre2-dev libutf8proc-dev                                  # tokenizer regexes and Unicode normalization
  zlib1g-dev libzstd-dev                                        # compressed corpora
  openmpi-bin libopenmpi-dev                                    # multi-process training (src/comm/mpi.c, mpirun in tests)
  libdnnl-dev                                                   # oneDNN: bf16 products on AMX / AVX512-BF16 (src/ops/gemm_bf16.c)
  python3                                                       # tests/CMakeLists.txt finds the interpreter at configure time
)
apt_ensure install-build-deps "${BUILD_PACKAGES[@]}"
