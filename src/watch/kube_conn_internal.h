/*
 * src/watch/kube_conn_internal.h: pieces of src/watch/kube_conn.c that its unit tests reach into.
 *
 * Not part of the public contract (include/ekglue/watch.h). Thread: see each declaration.
 */
#ifndef EKGLUE_WATCH_KUBE_CONN_INTERNAL_H
#define EKGLUE_WATCH_KUBE_CONN_INTERNAL_H

#include <stddef.h>

#include "ekglue/error.h"

/* How old (seconds) a token read from a file may get before ekg_kube_conn_prepare() reads the file again. */
#define EKG_KUBE_TOKEN_MAX_AGE_S 60.0

/* A monotonic clock in seconds. */
typedef double (*ekg_kube_clock_fn)(void);

/*
 * Replaces the clock the token refresh uses (NULL: back to ekg_clock_s, CLOCK_MONOTONIC). Tests only: it is a
 * plain static, so call it while no other thread uses a connection.
 */
void ekg_kube_conn_set_clock(ekg_kube_clock_fn now);

/*
 * Decodes standard base64 (RFC 4648 alphabet "+/"). CR, LF, space and tab are skipped anywhere; padding is
 * optional, but when present it must complete the last quantum and nothing may follow it; a final quantum of
 * one character is an error. Non-zero bits left over in the last character are ignored (as Go's decoder
 * does). On success *out (owned by the caller, free()) holds *out_len bytes plus a NUL that is not counted.
 * EKG_EPARSE for bad input; outputs untouched on error (allocation failure aborts). Thread: any.
 */
ekg_err_t ekg_kube_base64_decode(const char *in, size_t len, unsigned char **out, size_t *out_len);

#endif
