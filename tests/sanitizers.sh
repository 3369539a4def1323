# tests/sanitizers.sh: the sanitizer runtime options every sanitizer run uses (sourced by tests/run.sh and
# tests/stress.sh, so that a stress round fails exactly where CI would).
#   ASan: leaks are reported and any report aborts the process (a test then sees a non-zero, signal exit).
#   UBSan: a stack trace with every report, and the first report stops the process.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
