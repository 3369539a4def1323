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

/*
 * Answers one serialized ClientStatusRequest about clients[0..n) (copies; borrowed). On success *out is a
 * serialized ClientStatusResponse, malloc'ed and owned by the caller. EKG_EPARSE when the request does not
 * decode and EKG_EINVAL for a matcher ekglue does not support (node_metadatas, safe_regex), diag saying why.
 */
ekg_err_t ekg_xds_csds_answer(const char *req, size_t len, ekg_xds_session_t *const *clients, size_t n,
                              char **out, size_t *out_len, ekg_diag_t *diag);

#endif
