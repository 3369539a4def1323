/*
 * src/xds/session.h: the xDS protocol state of one gRPC stream, without any gRPC (library-private).
 *
 * The transport (src/xds/server.c) feeds a session the DiscoveryRequests it receives and the snapshots the
 * cache publishes, and asks it for the next response whenever the stream has no send in flight. The session
 * decides, following the xDS protocol (docs/internals/protocol.md, items 1-12): subscriptions per type
 * (wildcard or named, changed at any time), nonces (stale ones ignored), ACK/NACK bookkeeping (NACKs logged
 * and counted, rejected content not resent until it changes), what changed for this client since it last got
 * each resource, and the order of types on ADS (CDS, EDS, LDS, RDS; a CDS update that only removes clusters
 * goes last). Because it is asked for a response only when the previous one is sent, a busy client gets the
 * latest state next, never a backlog.
 *
 * Responses are assembled from bytes encoded once: a small per-response header (version_info, type_url,
 * nonce) plus pieces that point into shared resources or whole resource sets, each with the reference that
 * keeps it alive. The transport turns pieces into grpc_slices without copying.
 *
 * Thread: a session is not synchronized; the transport serializes calls on it with the stream's lock.
 */
#ifndef EKG_XDS_SESSION_H
#define EKG_XDS_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "ekglue/error.h"
#include "ekglue/resource.h"
#include "ekglue/xds.h"

typedef struct ekg_xds_session ekg_xds_session_t;

/* One run of bytes of a response. release(owner) is called once the bytes are no longer needed. */
typedef struct ekg_xds_piece {
    const char *data;
    size_t len;
    void (*release)(void *owner);
    void *owner;
} ekg_xds_piece_t;

/* An encoded DiscoveryResponse: the concatenation of its pieces. Owned by the caller of ..._next(). */
typedef struct ekg_xds_response {
    ekg_resource_type_t type;
    ekg_xds_piece_t *pieces;
    size_t npieces;
    size_t total_len;
} ekg_xds_response_t;

/* The node a client identified itself with, from the first request of the stream that carried one.
 * Strings are "" when absent; borrowed from the session. */
typedef struct ekg_xds_node {
    const char *id, *cluster;
    const char *region, *zone, *sub_zone; /* locality */
    const char *user_agent_name, *user_agent_version;
    const char *node_name; /* metadata NODE_NAME: the Kubernetes Node it runs on (PreferSameNode) */
} ekg_xds_node_t;

/* What an operator can see of one type of a session (debug port, CSDS). Borrowed from the session. */
typedef struct ekg_xds_type_status {
    bool subscribed;           /* the client asked for this type */
    bool wildcard;             /* ... for everything */
    size_t nnames;             /* named subscriptions */
    const char *const *names;  /* ... sorted (NULL when nnames is 0) */
    const char *sent_version;  /* "" before the first response */
    const char *acked_version; /* "" before the first ACK */
    const char *nack_message;  /* NULL when the last answer was not a NACK */
    double nack_time;          /* when the last NACK arrived, seconds since the epoch; 0 if never */
    double sent_time;          /* when the last response was built; 0 before the first */
    const ekg_resource_set_t
        *sent; /* what the client's resources of this type were taken from; NULL before */
    unsigned long long acks, nacks, responses;
} ekg_xds_type_status_t;

/* One subscribed resource as the client has it (ekg_xds_session_resources). */
typedef enum {
    EKG_XDS_RESOURCE_REQUESTED,      /* asked for and not sent yet (or due again) */
    EKG_XDS_RESOURCE_DOES_NOT_EXIST, /* asked for by name, absent from the Clusters/Listeners sent */
    EKG_XDS_RESOURCE_SENT,           /* sent; whether it was ACKed or NACKed is the type's status */
} ekg_xds_resource_state_t;

/* r is the resource as last sent (EKG_XDS_RESOURCE_SENT only, else NULL); name and r are borrowed. */
typedef void (*ekg_xds_resource_fn)(void *ctx, const char *name, ekg_xds_resource_state_t state,
                                    const ekg_resource_t *r);

/* A new session, owned by the caller (ekg_xds_session_free). peer is for logs (e.g. "ipv4:127.0.0.1:5555");
 * copied. */
ekg_xds_session_t *ekg_xds_session_new(ekg_xds_api_t api, const char *peer);
/* The same for a stream of the incremental protocol (DeltaDiscoveryRequest in, DeltaDiscoveryResponse out;
 * src/xds/delta.c). Every function here serves both; the views say which a session speaks. */
ekg_xds_session_t *ekg_xds_session_new_delta(ekg_xds_api_t api, const char *peer);
bool ekg_xds_session_is_delta(const ekg_xds_session_t *s);
void ekg_xds_session_free(ekg_xds_session_t *s);

/*
 * Limits on what the stream may ask for (ekg_xds_limits_t; 0 = none, the default of a new session): resource
 * names in one request, and names subscribed on the stream, all types together.
 */
void ekg_xds_session_set_limits(ekg_xds_session_t *s, size_t max_names_per_request,
                                size_t max_names_per_stream);

/*
 * Feeds one received DiscoveryRequest (serialized). EKG_EPARSE when it does not decode, EKG_EINVAL when its
 * type_url does not belong on this stream (e.g. a Cluster request on the EDS service); diag says why, and the
 * transport ends the stream with INVALID_ARGUMENT. EKG_ERANGE past a limit (ekg_xds_session_set_limits, or
 * more than 32 type URLs ekglue does not serve): the transport ends the stream with RESOURCE_EXHAUSTED.
 * Requests for types ekglue does not serve are logged once per stream and answered with an empty response.
 */
ekg_err_t ekg_xds_session_on_request(ekg_xds_session_t *s, const char *bytes, size_t len, ekg_diag_t *diag);

/* Hands the session a snapshot (borrowed; the session takes its own reference). Call once at stream start
 * with the cache's current snapshot (if any) and then on every publish. */
void ekg_xds_session_on_snapshot(ekg_xds_session_t *s, ekg_snapshot_t *snap);

/* Whether ..._next() would produce a response now (cheap). */
bool ekg_xds_session_has_work(const ekg_xds_session_t *s);

/*
 * Produces the next response due, if any, and records it as sent (its nonce becomes the one the client must
 * answer). Returns false when nothing is due (*out untouched).
 */
bool ekg_xds_session_next(ekg_xds_session_t *s, ekg_xds_response_t *out);
/* Releases a response's pieces (after the transport handed them to gRPC, or on failure). */
void ekg_xds_response_release(ekg_xds_response_t *r);

/* Node id from the first request that carried a node ("" before). Borrowed. */
const char *ekg_xds_session_node_id(const ekg_xds_session_t *s);
void ekg_xds_session_node(const ekg_xds_session_t *s, ekg_xds_node_t *out);
ekg_xds_api_t ekg_xds_session_api(const ekg_xds_session_t *s);
const char *ekg_xds_session_peer(const ekg_xds_session_t *s); /* borrowed */
void ekg_xds_session_type_status(const ekg_xds_session_t *s, ekg_resource_type_t type,
                                 ekg_xds_type_status_t *out);
/* Calls fn for every resource of type the client is subscribed to: the names it asked for, and with a
 * wildcard subscription every resource it was sent; in name order within each group. */
void ekg_xds_session_resources(const ekg_xds_session_t *s, ekg_resource_type_t type, ekg_xds_resource_fn fn,
                               void *ctx);

/*
 * A read-only copy of s for operators' views, made under the stream's lock and read after it is released
 * (on any thread), so that describing a thousand clients never holds up their sends. Cheap: subscriptions
 * and resource sets are shared by reference, only the small strings are copied. The copy answers the
 * accessors above; it has no snapshot and must not be fed requests. Owned by the caller:
 * ekg_xds_session_free().
 */
ekg_xds_session_t *ekg_xds_session_copy(const ekg_xds_session_t *s);

#endif
