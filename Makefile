# ekglue: the README's two commands, `make run` and `make test`, plus a few conveniences.
# Everything goes through third_party/setup-deps.sh (installs Debian packages, fetches upb headers) and CMake.

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build/release

.PHONY: all deps build run test stress bench format clean

all: build

deps:
	@third_party/setup-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

# Serves the embedded demo cluster (deploy/demo/cluster.yaml) over xDS on 0.0.0.0:18000. Ctrl-C stops it.
run: build
	$(BUILD)/ekglue serve

# The whole suite: normal build, ASan+UBSan build, fuzzers for a bounded time. See tests/run.sh.
test: deps
	@tests/run.sh

# Races: the ASan+UBSan suite ROUNDS times on a machine kept busy by LOAD spinning loops. See tests/stress.sh.
ROUNDS ?= 20
LOAD ?= 2
stress: deps
	@tests/stress.sh -n $(ROUNDS) -l $(LOAD)

bench: build
	$(BUILD)/translate_bench

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf build/release build/test build/asan build/fuzz
