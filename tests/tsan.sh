#!/usr/bin/env bash
# tests/tsan.sh: ekglue's threaded tests in a ThreadSanitizer build (-DEKG_SANITIZE=thread). tests/run.sh runs
# it after the ASan step.
#
#   tests/tsan.sh [-b BUILD_DIR] [-j JOBS] [-R REGEX]       (default build/tsan, nproc, the tests below)
#
# The tests: every xDS server test (tests/xds/: gRPC queue threads, the publisher, CSDS, TLS, reloads, the main
# thread's stop sequence), the Kubernetes end-to-end test (the watcher thread against the fake API, feeding the
# server), the watcher, sink and snapshot unit tests, and the debug port tests (libmicrohttpd's thread). Each Python test fails on a sanitizer report in ekglue's stderr or a
# non-zero exit at SIGTERM; a cmocka test exits 66 after a report (TSan's exitcode), so ctest fails it.
# Suppressions: tests/xds/tsan.supp (only Debian's uninstrumented gRPC stack, each line justified there).
#
# TSan maps its shadow memory at fixed addresses; with more ASLR entropy than it expects (vm.mmap_rnd_bits > 28
# on some kernels) a TSan binary dies with "FATAL: ThreadSanitizer: unexpected memory mapping". The script checks
# that first and, if so, runs the tests under `setarch -R` (no randomization, inherited by every process the
# tests start), saying so; if even that fails it stops with what to do.
# Exit: ctest's status (0 when every test passed), 1 when TSan cannot run here, 2 for a usage error.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
build=build/tsan jobs=$(nproc 2>/dev/null || echo 2)
regex='^(unit/(watcher|sink|snapshot)_test|xds/.*|e2e/kube_e2e_test|debug/.*)$'
while getopts "b:j:R:h" opt; do
  case $opt in
  b) build=$OPTARG ;;
  j) jobs=$OPTARG ;;
  R) regex=$OPTARG ;;
  h) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) exit 2 ;;
  esac
done
case "$jobs" in '' | *[!0-9]*) echo "tsan: -j takes a number" >&2; exit 2 ;; esac

start=$SECONDS
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEKG_SANITIZE=thread -DEKG_WERROR=ON >/dev/null
cmake --build "$build" -j"$jobs"

# halt_on_error=0: every report of a run is shown, not just the first; the exit status still says there was one.
export TSAN_OPTIONS="suppressions=$top/tests/xds/tsan.supp:halt_on_error=0:exitcode=66:second_deadlock_stack=1"

# Can a TSan binary start here at all?
wrap=()
probe() { "${wrap[@]}" "$build/ekglue" --version >"$build/tsan-probe.log" 2>&1; }
if ! probe; then
  if grep -q 'unexpected memory mapping' "$build/tsan-probe.log" && command -v setarch >/dev/null &&
    wrap=(setarch "$(uname -m)" -R) && probe; then
    echo "tsan: this kernel randomizes mappings more than TSan allows" \
      "(vm.mmap_rnd_bits=$(sysctl -n vm.mmap_rnd_bits 2>/dev/null || echo '?')): running the tests under setarch -R"
  else
    echo "tsan: a ThreadSanitizer binary cannot run here:" >&2
    cat "$build/tsan-probe.log" >&2
    echo "tsan: if it says 'unexpected memory mapping', lower the ASLR entropy (sysctl vm.mmap_rnd_bits=28)" \
      "or allow setarch -R (personality(ADDR_NO_RANDOMIZE); some containers forbid it)" >&2
    exit 1
  fi
fi

# A regex that matches nothing would pass in silence.
count=$(ctest --test-dir "$build" -N -R "$regex" | sed -n 's/^Total Tests: //p')
if [ "${count:-0}" -eq 0 ]; then
  echo "tsan: no test matches -R '$regex'" >&2
  exit 2
fi
echo "tsan: $count tests"
rc=0
"${wrap[@]}" ctest --test-dir "$build" --output-on-failure -j"$jobs" -R "$regex" || rc=$?
echo "tsan: $((SECONDS - start)) s (build and tests)"
exit "$rc"
