/*
 * src/xds/health.h: the grpc.health.v1 request decoder (library-private).
 *
 * The server (src/xds/server.c) answers grpc.health.v1.Health/Check and /Watch itself, without upb: the
 * request is one optional string field, decoded here by hand. Its own file so that a fuzz target
 * (tests/fuzz/health_fuzz.c) can reach it: the bytes come from any client of the xDS port.
 *
 * Thread: any (reads only its arguments).
 */
#ifndef EKG_XDS_HEALTH_H
#define EKG_XDS_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "ekglue/error.h"

/*
 * HealthCheckRequest {string service = 1}, from p[0..len). Sets *service (borrowed from p, not
 * NUL-terminated;
 * "" when absent; the last occurrence wins, as in protobuf) and *service_len. Unknown fields of wire types 0,
 * 1, 2 and 5 are skipped. EKG_EPARSE when the bytes are not a protobuf message.
 */
ekg_err_t ekg_xds_health_parse_request(const uint8_t *p, size_t len, const char **service,
                                       size_t *service_len);

#endif
