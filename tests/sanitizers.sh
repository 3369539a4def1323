# tests/sanitizers.sh: the sanitizer runtime options every sanitizer run uses (sourced by tests/run.sh and
# tests/stress.sh, so that a stress round fails exactly where CI would).
#   ASan: leaks are reported and any report aborts the process (a test then sees a non-zero, signal exit); an
#   allocation that cannot be had returns NULL as glibc's would, so that ekglue's own out-of-memory abort
#   (src/common/mem.c) is what runs, with its message.
#   UBSan: a stack trace with every report, and the first report stops the process.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
