/*
 * src/xds/csds.h: answers of envoy.service.status.v3.ClientStatusDiscoveryService (library-private).
 *
 * The transport (src/xds/server.c) copies the session of every connected xDS client under its stream's lock
 * (ekg_xds_session_copy) and hands the copies here, with the request's bytes; this module filters them with
 * the request's node matchers and encodes a ClientStatusResponse. No gRPC and no locks here.
 *
 * Thread: any (reads only its arguments).
 */
#ifndef EKG_XDS_CSDS_H
#define EKG_XDS_CSDS_H

#include <stddef.h>

#include "ekglue/error.h"

#include "xds/session.h"

/* How many clients an answer is about. */
typedef struct ekg_xds_csds_counts {
    size_t selected; /* clients the request's node matchers select */
    size_t shown;    /* ... of which the answer carries (the others would not fit in max_bytes) */
} ekg_xds_csds_counts_t;

/*
 * Answers one serialized ClientStatusRequest about clients[0..n) (copies; borrowed). On success *out is a
 * serialized ClientStatusResponse of at most max_bytes, malloc'ed and owned by the caller: the selected
 * clients in order, each whole or not at all, those that do not fit in what is left of max_bytes left out (by
 * an estimate from above of each client's size) and counted in *counts. EKG_EPARSE when the request does not
 * decode and EKG_EINVAL for a matcher ekglue does not support (node_metadatas, safe_regex), diag saying why.
 */
ekg_err_t ekg_xds_csds_answer_bounded(const char *req, size_t len, ekg_xds_session_t *const *clients,
                                      size_t n, size_t max_bytes, char **out, size_t *out_len,
                                      ekg_xds_csds_counts_t *counts, ekg_diag_t *diag);
/* The same with the default bound (EKG_XDS_DEFAULT_MAX_CLIENT_STATUS_BYTES), without the counts. */
ekg_err_t ekg_xds_csds_answer(const char *req, size_t len, ekg_xds_session_t *const *clients, size_t n,
                              char **out, size_t *out_len, ekg_diag_t *diag);

#endif
