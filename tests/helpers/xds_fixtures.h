/*
 * tests/helpers/xds_fixtures.h: test-only drivers of the per-stream xDS protocol engine (src/xds/session.h),
 * shared by the cmocka unit tests (tests/unit/session_test.c, and tests/unit/delta_test.c for the incremental
 * protocol: the xf_delta_* functions at the end).
 *
 * A test owns one xf_t, made by xf_setup() and freed by xf_teardown() (cmocka runs the teardown even when the
 * test fails, so a failing assertion leaks nothing that ASan/LSan would report). It holds:
 *   - the "world": the current resource set of every type, changed with xf_set() from a short text spec
 *     ("a b=2 c": names in order, each optionally with a variant; distinct variants are distinct contents).
 *     A new set reuses the previous set's resource objects whose bytes did not change, so unchanged pages are
 *     shared exactly as the translator shares them; xf_publish() hands a new snapshot of the world to every
 *     session of the test;
 *   - the sessions made with xf_session() (freed at teardown);
 *   - an arena in which decoded responses live until teardown.
 *
 * Every resource's bytes are a tiny valid message of its type carrying its name (Cluster.name,
 * ClusterLoadAssignment.cluster_name, Listener.name, RouteConfiguration.name) and, when a variant is given,
 * one more field holding it, so names can be read back from a response and contents told apart.
 *
 * Requests are built with the generated upb setters and serialized; responses are decoded by concatenating
 * the pieces of ekg_xds_response_t and parsing them as a DiscoveryResponse, after which the response is
 * released. Decoding fails the test when the pieces do not add up to total_len, when an Any's type URL is not
 * the response's, or when a name appears twice (item 10 of docs/internals/protocol.md).
 *
 * Thread: the test's main thread (cmocka's failure handling is not thread-safe).
 */
#ifndef EKG_TEST_XDS_FIXTURES_H
#define EKG_TEST_XDS_FIXTURES_H

#include <stdbool.h>
#include <stddef.h>

#include "upb/upb.h"

#include "ekglue/resource.h"

#include "xds/session.h"

#define XF_CDS    "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define XF_EDS    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
#define XF_LDS    "type.googleapis.com/envoy.config.listener.v3.Listener"
#define XF_RDS    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
#define XF_SECRET "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

#define XF_MAX_SESSIONS 8

typedef struct xf {
    upb_Arena *arena;                              /* decoded responses, until teardown */
    ekg_resource_set_t *sets[EKG_RESOURCE__COUNT]; /* the world; owned, NULL = empty */
    ekg_xds_session_t *sessions[XF_MAX_SESSIONS];  /* owned */
    size_t nsessions;
} xf_t;

/* cmocka setup/teardown: *state becomes / is an xf_t. */
int xf_setup(void **state);
int xf_teardown(void **state);

/* A new session on api (peer "test"), freed at teardown. */
ekg_xds_session_t *xf_session(xf_t *x, ekg_xds_api_t api);

/* --- resources and the world -------------------------------------------------------------------------------
 */

/* The encoded message xf_resource() uses for (type, name, variant); malloc'ed, the caller frees it. */
char *xf_encode(ekg_resource_type_t type, const char *name, const char *variant, size_t *len);
/* A resource whose bytes are xf_encode(type, name, variant) (variant NULL: the name only). Owned by the
 * caller. */
ekg_resource_t *xf_resource(ekg_resource_type_t type, const char *name, const char *variant);
/*
 * Replaces the world's set of type with the one spec describes: space-separated "name" or "name=variant"
 * tokens in strictly increasing name order ("" = empty). Resources whose bytes equal the previous set's are
 * the very same objects (page sharing).
 */
void xf_set(xf_t *x, ekg_resource_type_t type, const char *spec);
/* The world's current set of type (never NULL after xf_set; borrowed), its version, one resource (borrowed,
 * fails the test when absent). */
ekg_resource_set_t *xf_world(const xf_t *x, ekg_resource_type_t type);
const char *xf_version(const xf_t *x, ekg_resource_type_t type);
ekg_resource_t *xf_find(const xf_t *x, ekg_resource_type_t type, const char *name);
/* A new snapshot of the world (owned by the caller). */
ekg_snapshot_t *xf_snapshot(const xf_t *x);
/* Hands a new snapshot of the world to every session of the test. */
void xf_publish(xf_t *x);

/* --- requests ----------------------------------------------------------------------------------------------
 */

/* A DiscoveryRequest; NULL fields are left unset. names: space-separated ("" or NULL = none). */
typedef struct xf_request {
    const char *type_url;
    const char *names;
    const char *version;
    const char *nonce;
    const char *error;   /* non-NULL: a NACK, error_detail.message */
    const char *node_id; /* non-NULL: node.id */
} xf_request_t;

/* The serialized request; malloc'ed, the caller frees it. */
char *xf_request_encode(const xf_request_t *r, size_t *len);
/* Feeds the request to the session and returns what ekg_xds_session_on_request returned. */
ekg_err_t xf_try_request(ekg_xds_session_t *s, const xf_request_t *r, ekg_diag_t *diag);
/* Feeds the request, failing the test (with the diag) unless it is accepted. */
void xf_request(ekg_xds_session_t *s, const xf_request_t *r);

/* --- responses ---------------------------------------------------------------------------------------------
 */

/* One resources[] entry of a response. Strings NUL-terminated, in the xf_t's arena. */
typedef struct xf_any {
    const char *type_url;
    const char *name; /* read from the message; "?" when it does not decode */
    const char *value;
    size_t value_len;
} xf_any_t;

/* A decoded DiscoveryResponse, in the xf_t's arena. */
typedef struct xf_response {
    ekg_resource_type_t type; /* as the session reported it (EKG_RESOURCE__COUNT for unserved types) */
    const char *version, *type_url, *nonce;
    size_t n;
    const xf_any_t *items; /* in response order */
    const char *names;     /* the items' names sorted and joined by ',' ("" for none) */
} xf_response_t;

/* The next response the session produces, decoded; NULL when none is due. Fails the test on an error. */
const xf_response_t *xf_next(xf_t *x, ekg_xds_session_t *s);
/* The same, failing the test when nothing is due. */
const xf_response_t *xf_expect(xf_t *x, ekg_xds_session_t *s);
/* Fails the test, describing the response, when one is due. */
void xf_expect_none(xf_t *x, ekg_xds_session_t *s);
/* The entry named name, or NULL. */
const xf_any_t *xf_response_find(const xf_response_t *r, const char *name);
/* Fails unless r carries res: an entry with its name, the type's URL and exactly the resource's bytes. */
void xf_assert_carries(const xf_response_t *r, const ekg_resource_t *res);

/* ACK of r (its type_url, version_info and nonce) with the client's current resource names. */
void xf_ack(ekg_xds_session_t *s, const xf_response_t *r, const char *names);
/* NACK of r: its type_url and nonce, version_info = the version the client last accepted, and message. */
void xf_nack(ekg_xds_session_t *s, const xf_response_t *r, const char *names, const char *accepted_version,
             const char *message);

/* The session's status for type (strings borrowed from the session). */
ekg_xds_type_status_t xf_status(const ekg_xds_session_t *s, ekg_resource_type_t type);

/* --- incremental (delta) xDS -------------------------------------------------------------------------------
 *
 * The same for sessions of the incremental protocol (src/xds/delta.c): DeltaDiscoveryRequests built with the
 * upb setters, DeltaDiscoveryResponses decoded from the concatenated pieces. Decoding fails the test when the
 * pieces do not add up to total_len, when a Resource's Any is not of the response's type, when its name is
 * not the name inside the message, when its version is not the content hash of its bytes (xf_delta_version),
 * when a name is sent twice or listed in removed_resources twice, or is both sent and removed.
 */

/* A new delta session on api (peer "test"), freed at teardown. */
ekg_xds_session_t *xf_delta_session(xf_t *x, ekg_xds_api_t api);

/* A DeltaDiscoveryRequest; NULL fields are left unset. Name lists are space-separated. */
typedef struct xf_delta_request {
    const char *type_url;
    const char *subscribe;   /* resource_names_subscribe */
    const char *unsubscribe; /* resource_names_unsubscribe */
    const char *initial;     /* initial_resource_versions: "name=version ..." */
    const char *nonce;       /* response_nonce */
    const char *error;       /* non-NULL: a NACK, error_detail.message */
    const char *node_id;     /* non-NULL: node.id */
    const char *region;      /* with node_id: node.locality.region, .zone */
    const char *zone;
} xf_delta_request_t;

/* The serialized request; malloc'ed, the caller frees it. */
char *xf_delta_request_encode(const xf_delta_request_t *r, size_t *len);
/* Feeds the request to the session and returns what ekg_xds_session_on_request returned. */
ekg_err_t xf_delta_try_request(ekg_xds_session_t *s, const xf_delta_request_t *r, ekg_diag_t *diag);
/* Feeds the request, failing the test (with the diag) unless it is accepted. */
void xf_delta_request(ekg_xds_session_t *s, const xf_delta_request_t *r);

/* One Resource of a DeltaDiscoveryResponse. Strings NUL-terminated, in the xf_t's arena. */
typedef struct xf_delta_item {
    const char *name;     /* Resource.name */
    const char *version;  /* Resource.version */
    const char *type_url; /* of Resource.resource (the Any) */
    const char *value;
    size_t value_len;
} xf_delta_item_t;

/* A decoded DeltaDiscoveryResponse, in the xf_t's arena. */
typedef struct xf_delta_response {
    ekg_resource_type_t type; /* as the session reported it */
    const char *system_version, *type_url, *nonce;
    size_t n;
    const xf_delta_item_t *items; /* in response order */
    const char *names;            /* the items' names sorted and joined by ',' ("" for none) */
    size_t nremoved;
    const char *removed; /* removed_resources sorted and joined by ',' ("" for none) */
} xf_delta_response_t;

/* The next response the session produces, decoded; NULL when none is due. */
const xf_delta_response_t *xf_delta_next(xf_t *x, ekg_xds_session_t *s);
/* The same, failing the test when nothing is due. */
const xf_delta_response_t *xf_delta_expect(xf_t *x, ekg_xds_session_t *s);
/* Fails the test, describing the response, when one is due. */
void xf_delta_expect_none(xf_t *x, ekg_xds_session_t *s);
/* The item named name, or NULL. */
const xf_delta_item_t *xf_delta_find(const xf_delta_response_t *r, const char *name);
/* Fails unless r carries res: an item with its name, its type's URL, exactly its bytes and its version. */
void xf_delta_assert_carries(const xf_delta_response_t *r, const ekg_resource_t *res);
/* The version a delta response gives res: its content hash (ekg_resource_hash) as 16 hex digits, in buf. */
const char *xf_delta_version(const ekg_resource_t *res, char buf[17]);

/* ACK of r (its type_url and nonce, no subscription change); NACK of r with message. */
void xf_delta_ack(ekg_xds_session_t *s, const xf_delta_response_t *r);
void xf_delta_nack(ekg_xds_session_t *s, const xf_delta_response_t *r, const char *message);

#endif
