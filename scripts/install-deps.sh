#!/usr/bin/env bash
# Installs everything a fresh Debian 12 machine needs to build, demo and test cpt: the build
# dependencies (scripts/install-build-deps.sh) and the test oracles (scripts/install-test-deps.sh).
# Idempotent. `make` / `make demo` / `make test` call the parts they need themselves.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/install-build-deps.sh"
bash "$here/install-test-deps.sh"
echo "install-deps: ok"
