# Thin wrapper over CMake. `make` builds build/cpt; `make test` is the whole test
# suite CI runs (warnings as errors, unit + parity tests, ASan+UBSan run, fuzzers).
# Each target first installs what it needs (idempotent; only a dpkg-query / pip metadata
# check when already installed): build and demo the Debian build dependencies
# (scripts/install-build-deps.sh), tests also the Python oracles (scripts/install-test-deps.sh).
# CPT_SKIP_DEPS=1 skips those checks.
BUILD      ?= build
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=

.PHONY: all build test test-unit test-asan test-fuzz demo demo-smollm2 clean deps deps-build deps-test

all: build

build: deps-build
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

deps: deps-build deps-test

deps-build:
	@bash scripts/install-build-deps.sh

deps-test: deps-build
	@bash scripts/install-test-deps.sh

test: test-unit test-asan test-fuzz

test-unit: deps-test
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCPT_WERROR=ON $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

test-asan: deps-test
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCPT_WERROR=ON -DCPT_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j $(JOBS) -LE slow

test-fuzz: deps-test
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCPT_WERROR=ON -DCPT_FUZZ=ON
	cmake --build build-fuzz -j $(JOBS)
	bash scripts/run-fuzzers.sh build-fuzz

demo: build
	bash demo/run.sh

# Continued pretraining of the real SmolLM2-135M-Instruct (fetched once by scripts/get-smollm2.sh);
# needs ../shared/data. Knobs: DEMO_STEPS, DEMO_OUT, ... (see demo/smollm2.sh).
demo-smollm2: build
	bash demo/smollm2.sh

clean:
	rm -rf $(BUILD) build-asan build-fuzz
