/*
 * include/ekglue/error.h: ekglue's one error type.
 *
 * Every fallible function returns an ekg_err_t: 0 (EKG_OK) on success, a negative EKG_E* code otherwise.
 * ekg_strerror() turns any code into a message. Details that a code cannot carry (a file and line, the name
 * of a Kubernetes object, upb's message) travel in an ekg_diag_t the caller passes in, or go to the log.
 *
 * Out of memory is not an error code's business: allocation goes through include/ekglue/mem.h, which aborts
 * with a message (the policy, and why, is there). EKG_ENOMEM remains for what a library outside ekglue
 * reports (upb, grpc, libcurl) when ekglue cannot route its allocations. Thread: any; everything here is
 * pure.
 */
#ifndef EKGLUE_ERROR_H
#define EKGLUE_ERROR_H

#include <stddef.h>

#define EKG_ERRNO_MAP(X)                                                                                     \
    X(ENOMEM, "out of memory")                                                                               \
    X(EINVAL, "invalid argument")                                                                            \
    X(EIO, "input/output error")                                                                             \
    X(ENOENT, "not found")                                                                                   \
    X(EPARSE, "malformed input")                                                                             \
    X(ECONFIG, "invalid configuration")                                                                      \
    X(EOBJECT, "invalid Kubernetes object")                                                                  \
    X(EPROTO, "protobuf encoding or decoding failed")                                                        \
    X(ERANGE, "value out of range")

typedef enum {
    EKG_OK = 0,
#define EKG_ERR_ENUM(name, msg) EKG_##name,
    EKG__ERR_FIRST = -100,
    EKG_ERRNO_MAP(EKG_ERR_ENUM)
#undef EKG_ERR_ENUM
} ekg_err_t;

/* Returns a static message for any code, including unknown ones. */
const char *ekg_strerror(ekg_err_t err);

/*
 * ekg_diag_t: where a failing call writes a human-readable explanation ("file:line: key: reason").
 * The caller owns the struct; callees write at most sizeof(msg)-1 bytes with ekg_diag_set(). May be NULL.
 */
typedef struct ekg_diag {
    char msg[512];
} ekg_diag_t;

/* Formats into diag (if non-NULL) and returns err, so that `return ekg_diag_set(d, EKG_EINVAL, "...")` works.
 */
ekg_err_t ekg_diag_set(ekg_diag_t *diag, ekg_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
