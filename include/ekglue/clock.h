/*
 * include/ekglue/clock.h: the clocks ekglue reads (src/common/clock.c). Monotonic for every interval and
 * deadline (timers, latencies, backoff); the wall clock only for what people read (timestamps, "since").
 * Thread: any.
 */
#ifndef EKGLUE_CLOCK_H
#define EKGLUE_CLOCK_H

/* CLOCK_MONOTONIC in milliseconds. */
long long ekg_clock_ms(void);
/* CLOCK_MONOTONIC in seconds, with nanoseconds. */
double ekg_clock_s(void);
/* CLOCK_REALTIME as Unix time in seconds, with nanoseconds. */
double ekg_clock_unix_s(void);
/* The calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID) in microseconds: what a piece of work cost. */
long long ekg_clock_thread_cpu_us(void);

#endif
