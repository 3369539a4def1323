#!/usr/bin/env bash
# tests/stress.sh: the ASan+UBSan test round, again and again, on a loaded machine, to shake out races.
#
#   tests/stress.sh [-n ROUNDS] [-l LOAD] [-j JOBS] [-R REGEX] [-k]      (make stress ROUNDS=20 LOAD=2)
#
#   -n ROUNDS  rounds of the whole ctest suite in build/asan (default 20)
#   -l LOAD    busy loops beside the tests, each spinning one core (default 2: a 2-core machine at 100%)
#   -j JOBS    ctest -j (default: the number of cores, as tests/run.sh runs it)
#   -R REGEX   only the tests whose ctest name matches (e.g. -R 'e2e/|xds/server')
#   -k         keep going after a failed round (default: stop at the first failure)
#
# Builds build/asan first exactly as tests/run.sh does (same flags, same sanitizer options, from
# tests/sanitizers.sh). Every round's whole ctest output goes to build/stress/round-N.log; a failed round prints
# its failing tests' output (each Python test prints ekglue's full stderr, sanitizer report included, when it
# fails) and the log's path. The last line is the plain summary 'stress: N passed, N failed' (rounds).
# Exit 0 when every round passed, 1 otherwise. The busy loops are stopped on any exit.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
rounds=20 load=2 jobs=$(nproc 2>/dev/null || echo 2) regex="" keep_going=0
while getopts "n:l:j:R:kh" opt; do
  case $opt in
  n) rounds=$OPTARG ;;
  l) load=$OPTARG ;;
  j) jobs=$OPTARG ;;
  R) regex=$OPTARG ;;
  k) keep_going=1 ;;
  h) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) exit 2 ;;
  esac
done
case "$rounds$load$jobs" in *[!0-9]*) echo "stress: -n, -l and -j take numbers" >&2; exit 2 ;; esac

third_party/setup-deps.sh
# shellcheck source=tests/sanitizers.sh
. tests/sanitizers.sh
echo "=== build with ASan+UBSan"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DEKG_SANITIZE=address -DEKG_WERROR=ON >/dev/null
cmake --build build/asan -j"$jobs"

out=build/stress
mkdir -p "$out"
rm -f "$out"/round-*.log
loops=()
stop_load() {
  for pid in "${loops[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${loops[@]}"; do wait "$pid" 2>/dev/null || true; done
  loops=()
}
trap stop_load EXIT
for ((i = 0; i < load; i++)); do
  bash -c 'while :; do :; done' &
  loops+=($!)
done

passed=0 failed=0 failed_rounds=""
start=$SECONDS
for ((r = 1; r <= rounds; r++)); do
  log="$out/round-$r.log"
  t=$SECONDS
  args=(--test-dir build/asan --output-on-failure -j"$jobs")
  [ -n "$regex" ] && args+=(-R "$regex")
  if ctest "${args[@]}" >"$log" 2>&1; then
    passed=$((passed + 1))
    printf 'stress: round %d/%d passed (%d s, %d busy loops)\n' "$r" "$rounds" $((SECONDS - t)) "$load"
  else
    failed=$((failed + 1))
    failed_rounds="$failed_rounds $r"
    printf 'stress: round %d/%d FAILED (%d s): %s\n' "$r" "$rounds" $((SECONDS - t)) "$log"
    # The failing tests' names, then their output as ctest kept it.
    sed -n '/The following tests FAILED/,$p' "$log"
    awk '/^ *[0-9]+\/[0-9]+ Test +#[0-9]+: .*\*\*\*|Failed|Exception/{show=1} /^ *[0-9]+\/[0-9]+ Test +#[0-9]+: .* Passed/{show=0} show' \
      "$log" | tail -n 400
    [ "$keep_going" = 1 ] || break
  fi
done
stop_load
printf 'stress: %d rounds in %d s with %d busy loops; failed rounds:%s\n' $((passed + failed)) \
  $((SECONDS - start)) "$load" "${failed_rounds:- none}"
echo "stress: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
