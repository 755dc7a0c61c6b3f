# Thin wrapper over CMake. `make` builds build/cpt; `make test` is the whole test
# suite CI runs (warnings as errors, unit + parity tests, ASan+UBSan run, fuzzers).
BUILD      ?= build
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=

.PHONY: all build test test-unit test-asan test-fuzz demo clean deps

all: build

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

deps:
	bash scripts/install-deps.sh

test: test-unit test-asan test-fuzz

test-unit:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCPT_WERROR=ON $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

test-asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCPT_WERROR=ON -DCPT_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j $(JOBS) -LE slow

test-fuzz:
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCPT_WERROR=ON -DCPT_FUZZ=ON
	cmake --build build-fuzz -j $(JOBS)
	bash scripts/run-fuzzers.sh build-fuzz

demo: build
	bash demo/run.sh

clean:
	rm -rf $(BUILD) build-asan build-fuzz
