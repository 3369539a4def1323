/*
 * src/xds/session_internal.h: what the state-of-the-world (session.c) and incremental (delta.c) halves of a
 * stream's protocol state share (library-private to src/xds/).
 *
 * One ekg_xds_session_t serves either protocol, chosen at creation (ekg_xds_session_new_delta): the node, the
 * snapshot and its sets at the client's place, limits, nonces and the per-type ACK/NACK bookkeeping are the
 * same; what a client has is tracked per protocol (type_state_t says which fields each uses).
 * Thread: not synchronized; the transport serializes calls with the stream's lock.
 */
#ifndef EKG_XDS_SESSION_INTERNAL_H
#define EKG_XDS_SESSION_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envoy/config/core/v3/base.upb.h"
#include "upb/upb.h"

#include "ekglue/error.h"
#include "ekglue/resource.h"
#include "xds/session.h"

#define NTYPES EKG_RESOURCE__COUNT

typedef struct name_list {
    char **names; /* sorted, unique, owned */
    size_t n, cap;
} name_list_t;

/* A subscription's names, interned (session.c). */
typedef struct names names_t;

/* A (name, version) the client says it has (delta: initial_resource_versions), until the first evaluation. */
typedef struct name_version {
    char *name;    /* owned */
    char *version; /* owned */
} name_version_t;

typedef struct type_state {
    bool requested; /* a request for this type arrived */
    bool wildcard;
    bool named;           /* the client has named resources ("*" included): [] no longer means wildcard */
    bool pending;         /* a response is due whatever the diff says (first request, subscription change) */
    bool warm_on_request; /* (load assignments) move `warming` into `force` on the next request */
    names_t *names;       /* explicit subscriptions: shared, immutable; NULL = none */
    bool force_all;       /* send every subscribed resource on the next response (a new subscription) */
    name_list_t force;    /* send these on the next response even if unchanged */
    name_list_t warming;  /* clusters that changed: their load assignments are due on the next EDS request */
    ekg_resource_set_t *sent; /* the set as of the last response (or evaluation with nothing due); owned */
    char nonce[24];
    char sent_version[24];
    char acked_version[24];
    char *nack_message; /* owned; NULL unless the last answer was a NACK */
    double nack_time;   /* wall clock of the last NACK; 0 if none */
    double sent_time;   /* wall clock of the last response */
    unsigned long long acks, nacks, responses;
    /* Incremental (delta) streams only: `names` and `named` stay empty; `force` holds the names due (sent if
     * they exist, else in removed_resources), `force_all` says the whole set is due (a wildcard subscription
     * began), `sent` is the set the client is in step with apart from `force`. */
    name_list_t subs;        /* explicit subscriptions */
    name_version_t *initial; /* initial_resource_versions of the first request, until the first evaluation */
    size_t ninitial;
    bool initial_pending; /* the first evaluation (against initial) has not happened yet */
} type_state_t;

/* A type ekglue does not serve: answered once per request with an empty response. */
typedef struct unknown_type {
    char *url;
    char nonce[24];
    bool pending;
} unknown_type_t;

struct ekg_xds_session {
    ekg_xds_api_t api;
    bool delta; /* the incremental protocol (DeltaDiscoveryRequest/Response), else state of the world */
    char *peer;
    /* From the first request that carried a node; all NULL before, all set after (owned). */
    char *node_id, *cluster, *region, *zone, *sub_zone, *user_agent_name, *user_agent_version;
    char *node_name;      /* Node.metadata NODE_NAME (the client's Kubernetes Node); set with node_id */
    ekg_snapshot_t *snap; /* the latest snapshot; owned reference */
    /* snap's sets at the client's place (ekg_snapshot_resources_at), borrowed from snap: what is due is
     * computed against these, so clients in one zone share one set per type */
    ekg_resource_set_t *cur[NTYPES];
    type_state_t types[NTYPES];
    unknown_type_t *unknown;
    size_t nunknown, unknown_cap;
    unsigned long long next_nonce;
    size_t max_names_per_request, max_names_per_stream; /* 0: no limit (ekg_xds_session_set_limits) */
};

/* Type URLs ekglue does not serve, remembered per stream (each is answered once): more ends the stream. */
#define MAX_UNKNOWN_TYPES 32
/* What a stream keeps of its client's words, which operators' views copy: each node field, a NACK message. */
#define MAX_NODE_FIELD   1024
#define MAX_NACK_MESSAGE 4096

extern const char *const ekg_xds_type_names[NTYPES];

/* Sorted name lists (session.c). */
ssize_t ekg_xds_list_find(const name_list_t *l, const char *name, size_t *pos);
bool ekg_xds_list_has(const name_list_t *l, const char *name);
void ekg_xds_list_add(name_list_t *l, const char *name);
void ekg_xds_list_remove(name_list_t *l, const char *name);
void ekg_xds_list_clear(name_list_t *l);

/* Clusters and Listeners: a SotW response carries every subscribed one. */
bool ekg_xds_is_full_state(ekg_resource_type_t t);
/* Whether type t may be asked for on api (ADS: every type). */
bool ekg_xds_api_allows(ekg_xds_api_t api, ekg_resource_type_t t);
/* Keeps the client's Node (its first request that carried one) and looks up its place's sets. */
void ekg_xds_take_node(ekg_xds_session_t *s, const struct envoy_config_core_v3_Node *node);
/* A request for a type ekglue does not serve (answered with an empty response once per request). */
ekg_err_t ekg_xds_on_unknown_type(ekg_xds_session_t *s, upb_StringView url, upb_StringView nonce,
                                  ekg_diag_t *diag);
/* A piece's release for a resource reference. */
void ekg_xds_release_resource(void *owner);

/* The incremental protocol (delta.c): the session.c entry points hand delta sessions here. */
ekg_err_t ekg_xds_delta_on_request(ekg_xds_session_t *s, const char *bytes, size_t len, ekg_diag_t *diag);
bool ekg_xds_delta_has_work(const ekg_xds_session_t *s);
bool ekg_xds_delta_next(ekg_xds_session_t *s, ekg_xds_response_t *out);
void ekg_xds_delta_free(ekg_xds_session_t *s);

#endif
