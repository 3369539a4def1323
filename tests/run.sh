#!/usr/bin/env bash
# tests/run.sh: ekglue's whole test suite, as `make test` and CI (.ci/run) run it.
#
#   1. a normal build with warnings as errors, and every test (cmocka units, golden dumps, the independent
#      decoder check) through ctest;
#   2. the same tests in an ASan+UBSan build;
#   3. the threaded tests (every xDS test, the Kubernetes end-to-end test, the watcher, the debug port) in a
#      TSan build: tests/tsan.sh;
#   4. the libFuzzer targets (clang), each run for FUZZ_SECONDS (default 20) from its seed corpus: tests/fuzz.sh
#      (a crash, a non-zero exit or any sanitizer report fails; the output is kept in build/fuzz/fuzz-logs/).
# Exits non-zero on the first failure. Runs third_party/setup-deps.sh first (installs what is missing).
# Ends with the skipped tests, counted and named under each reason (tests/helpers/skips.py): a skip whose reason
# is not on that file's short allowlist (what Debian bookworm cannot provide) fails the run.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)
fuzz_seconds=${FUZZ_SECONDS:-20}

third_party/setup-deps.sh

step() { printf '\n=== %s\n' "$*"; }

# Skipped tests of every ctest round, one "round<TAB>test id<TAB>allowed|unexpected<TAB>reason" each.
skipped=()

# collect_skips ROUND BUILD_DIR CTEST_LOG: the skips of one ctest round. Python test scripts exit 77 on a skip
# (ctest: Skipped) and write their reasons to BUILD_DIR/test-skips (EKG_SKIP_DIR); a test ctest lists as Skipped
# without such a record is an unexpected skip too. Fails, after the summary, when one is unexpected.
collect_skips() {
  local round=$1 dir=$2 log=$3 name file line bad=0
  for file in "$dir"/test-skips/*.skips; do
    [ -e "$file" ] || continue
    while IFS= read -r line; do skipped+=("$round"$'\t'"$line"); done < "$file"
  done
  while read -r name; do
    [ -e "$dir/test-skips/${name//\//-}.skips" ] ||
      skipped+=("$round"$'\t'"$name"$'\t'unexpected$'\t'"ctest: Skipped, with no reason recorded")
  done < <(sed -n 's/^[[:space:]]*[0-9]* - \(.*\) (Skipped)$/\1/p' "$log")
  for line in "${skipped[@]}"; do
    case "$line" in *$'\t'unexpected$'\t'*) bad=1 ;; esac
  done
  if [ "$bad" = 1 ]; then
    skip_summary
    echo "FAILED: a test skipped for a reason CI does not allow (tests/helpers/skips.py)" >&2
    exit 1
  fi
}

# skip_summary: the number of skipped tests, then each reason once with the tests it skipped.
skip_summary() {
  local n=${#skipped[@]} bad
  bad=$(printf '%s\n' "${skipped[@]}" | grep -c $'\tunexpected\t' || true)
  step "skipped tests: $n ($bad not allowed)"
  [ "$n" -gt 0 ] || return 0
  printf '%s\n' "${skipped[@]}" | awk -F'\t' '
    { why = $4; sub(/^allowed skip /, "", why)
      key = ($3 == "allowed" ? "allowed " : "NOT ALLOWED: ") why
      if (!(key in tests)) order[++n] = key
      tests[key] = tests[key] "\n    [" $1 "] " $2; count[key]++ }
    END { for (i = 1; i <= n; i++) printf "%d test(s), %s%s\n", count[order[i]], order[i], tests[order[i]] }'
}

step "build (warnings as errors)"
cmake -S . -B build/test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEKG_WERROR=ON >/dev/null
cmake --build build/test -j"$jobs"
step "tests"
rm -rf build/test/test-skips
ctest --test-dir build/test --output-on-failure -j"$jobs" | tee build/test/ctest.log
collect_skips normal build/test build/test/ctest.log

step "build with ASan+UBSan"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DEKG_SANITIZE=address -DEKG_WERROR=ON >/dev/null
cmake --build build/asan -j"$jobs"
step "tests under ASan+UBSan"
rm -rf build/asan/test-skips
(
  # shellcheck source=tests/sanitizers.sh
  . tests/sanitizers.sh
  ctest --test-dir build/asan --output-on-failure -j"$jobs"
) | tee build/asan/ctest.log
collect_skips asan build/asan build/asan/ctest.log

step "threaded tests under TSan"
mkdir -p build/tsan && rm -rf build/tsan/test-skips
tests/tsan.sh -b build/tsan -j"$jobs" | tee build/tsan/ctest.log
collect_skips tsan build/tsan build/tsan/ctest.log

step "fuzz targets (${fuzz_seconds}s each)"
tests/fuzz.sh -b build/fuzz -t "$fuzz_seconds" -j"$jobs"

skip_summary
step "all tests passed"
