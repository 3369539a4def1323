#!/usr/bin/env bash
# tests/run.sh: ekglue's whole test suite, as `make test` and CI (.ci/run) run it.
#
#   1. a normal build with warnings as errors, and every test (cmocka units, golden dumps, the independent
#      decoder check) through ctest;
#   2. the same tests in an ASan+UBSan build;
#   3. the libFuzzer targets (clang), each run for FUZZ_SECONDS (default 20) from its seed corpus.
# Exits non-zero on the first failure. Runs third_party/setup-deps.sh first (installs what is missing).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)
fuzz_seconds=${FUZZ_SECONDS:-20}

third_party/setup-deps.sh

step() { printf '\n=== %s\n' "$*"; }

step "build (warnings as errors)"
cmake -S . -B build/test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEKG_WERROR=ON >/dev/null
cmake --build build/test -j"$jobs"
step "tests"
ctest --test-dir build/test --output-on-failure -j"$jobs"

step "build with ASan+UBSan"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DEKG_SANITIZE=address -DEKG_WERROR=ON >/dev/null
cmake --build build/asan -j"$jobs"
step "tests under ASan+UBSan"
(
  # shellcheck source=tests/sanitizers.sh
  . tests/sanitizers.sh
  ctest --test-dir build/asan --output-on-failure -j"$jobs"
)

step "fuzz targets (${fuzz_seconds}s each)"
cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DEKG_FUZZ=ON >/dev/null
cmake --build build/fuzz -j"$jobs" --target $(cd tests/fuzz && ls *_fuzz.c | sed 's/\.c$//' | tr '\n' ' ')
for src in tests/fuzz/*_fuzz.c; do
  name=$(basename "$src" .c)
  corpus_seed="tests/fuzz/corpus/${name%_fuzz}"
  work=$(mktemp -d)
  [ -d "$corpus_seed" ] && cp -r "$corpus_seed"/. "$work"/
  echo "--- $name"
  ASAN_OPTIONS=detect_leaks=1 build/fuzz/"$name" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 \
    -print_final_stats=0 "$work" 2>&1 | tail -n 3
  rm -rf "$work"
done

step "all tests passed"
