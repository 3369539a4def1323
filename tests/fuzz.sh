#!/usr/bin/env bash
# tests/fuzz.sh: builds the libFuzzer targets (tests/fuzz/*_fuzz.c, clang, ASan+UBSan) and runs each one from
# its seed corpus (tests/fuzz/corpus/NAME/, copied: the seeds are not touched). tests/run.sh runs it.
#
#   tests/fuzz.sh [-b BUILD_DIR] [-t SECONDS] [-j JOBS] [NAME...]   (default build/fuzz, FUZZ_SECONDS or 20, nproc)
#
# NAME: a target without "_fuzz" (health, kinds, ...); default all. -j runs that many targets at once.
#
# A target fails when the fuzzer exits non-zero (a crash, a sanitizer report: UBSan stops at its first one,
# the build has -fno-sanitize-recover=all; a leak; an input slower than TIMEOUT s; more than 2 GiB) or when its
# output holds a sanitizer report at all, even one the process survived: "runtime error:", "ERROR:
# AddressSanitizer", "ERROR: LeakSanitizer", "SUMMARY:" (every sanitizer's and libFuzzer's last line of a
# report) or "WARNING: ...Sanitizer". Every target's whole output is kept in BUILD_DIR/fuzz-logs/NAME.log and
# libFuzzer saves the failing input as BUILD_DIR/fuzz-logs/NAME-crash-* (or -leak-, -timeout-, -oom-). On a
# failure the report is printed from its first line, with the input's path, its base64 and the command that
# replays it. Exit 0 when every target passed, 1 otherwise (all targets run either way), 2 for a usage error.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
build=build/fuzz seconds=${FUZZ_SECONDS:-20} jobs=$(nproc 2>/dev/null || echo 2)
timeout_s=10 # per input: a few KiB that take 10 s to parse are a denial of service, not a slow machine
while getopts "b:t:j:h" opt; do
  case $opt in
  b) build=$OPTARG ;;
  t) seconds=$OPTARG ;;
  j) jobs=$OPTARG ;;
  h) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
case "$seconds$jobs" in '' | *[!0-9]*) echo "fuzz: -t and -j take numbers" >&2; exit 2 ;; esac

names=()
if [ $# -gt 0 ]; then
  for n in "$@"; do
    n=${n%_fuzz}
    [ -f "tests/fuzz/${n}_fuzz.c" ] || { echo "fuzz: no target tests/fuzz/${n}_fuzz.c" >&2; exit 2; }
    names+=("$n")
  done
else
  for src in tests/fuzz/*_fuzz.c; do
    n=$(basename "$src" .c)
    names+=("${n%_fuzz}")
  done
fi

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DEKG_FUZZ=ON -DEKG_WERROR=ON \
  >/dev/null
cmake --build "$build" -j"$jobs" --target "${names[@]/%/_fuzz}"

logs="$build/fuzz-logs"
rm -rf "$logs"
mkdir -p "$logs"
# The report patterns (grep -E) that fail a target whatever its exit status.
reports='runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|ERROR: libFuzzer|SUMMARY:|WARNING: [A-Za-z]*Sanitizer'

# Runs one target; its verdict goes to $logs/NAME.result (first line PASS or FAIL), printed by the caller, so
# that targets running side by side do not interleave their output.
run_one() {
  local name=$1 bin="$build/${1}_fuzz" log="$logs/$1.log" result="$logs/$1.result" work tmp rc=0
  work=$(mktemp -d)
  # The target's own temporary files (kubeconfig_fuzz writes its input to a file) go to a directory removed
  # below, even when the target crashed before its own cleanup.
  tmp=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
  [ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name"/. "$work"/
  local start=$SECONDS
  # detect_leaks: libFuzzer checks each new input for leaks. The outer timeout only guards against a fuzzer
  # that never returns; -max_total_time is what ends a normal run.
  TMPDIR="$tmp" ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    timeout -k 10 $((seconds + timeout_s + 120)) "$bin" -max_total_time="$seconds" -timeout="$timeout_s" \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$logs/$name-" "$work" </dev/null >"$log" 2>&1 ||
    rc=$?
  rm -rf "$work" "$tmp"
  local stats
  stats=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}' || true)
  if [ "$rc" -eq 0 ] && ! grep -qE "$reports" "$log"; then
    printf 'PASS\n--- %s: passed (%s inputs in %d s)\n' "$name" "${stats:-?}" $((SECONDS - start)) >"$result"
    return
  fi
  {
    echo FAIL
    printf -- '--- %s: FAILED (exit %d after %d s); whole output: %s\n' "$name" "$rc" $((SECONDS - start)) "$log"
    # The report from its first line (or the log's end if no report line is there), bounded.
    local first
    first=$(grep -nE "$reports|==[0-9]+==ERROR|deadly signal" "$log" | head -n 1 | cut -d: -f1 || true)
    if [ -n "$first" ]; then
      tail -n +"$((first > 5 ? first - 5 : 1))" "$log" | head -n 150 || true
    else
      tail -n 60 "$log"
    fi
    local input
    for input in "$logs/$name"-*; do
      [ -f "$input" ] || continue
      printf -- '--- %s: the input (%d bytes): %s\n' "$name" "$(stat -c %s "$input")" "$input"
      if [ "$(stat -c %s "$input")" -le 65536 ]; then
        echo "base64:"
        base64 -w 100 "$input"
      fi
      printf 'replay: %s %s\n' "$bin" "$input"
    done
  } >"$result"
}

echo "fuzz: ${#names[@]} targets, ${seconds} s each, $jobs at a time; logs in $logs"
failed=() running=0
for name in "${names[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$name" &
  running=$((running + 1))
done
wait
for name in "${names[@]}"; do
  result="$logs/$name.result"
  if [ -f "$result" ] && [ "$(head -n 1 "$result")" = PASS ]; then
    tail -n +2 "$result"
  else
    failed+=("$name")
    if [ -f "$result" ]; then tail -n +2 "$result"; else echo "--- $name: FAILED (no verdict; see $logs/$name.log)"; fi
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz: all ${#names[@]} targets passed"
