/*
 * src/translate/translate_internal.h: what the translator's files share (library-private).
 *
 * translator.c keeps the objects and the incremental bookkeeping; cluster.c turns one Service port into a
 * Cluster; load_assignment.c turns the endpoints of one Service port into a ClusterLoadAssignment; listener.c
 * writes proxyless Listeners; locality.c places endpoints; config.c loads and applies the configuration.
 * upb's allocations go through ekglue/proto.h's helpers, which abort like ekglue's own. Thread: the
 * translator's owner (the watcher thread in the daemon); config.c's own rules are in its head comment.
 */
#ifndef EKG_TRANSLATE_INTERNAL_H
#define EKG_TRANSLATE_INTERNAL_H

#include <stdbool.h>
#include <string.h>

#include "upb/upb.h"

#include "envoy/config/cluster/v3/cluster.upb.h"
#include "envoy/config/endpoint/v3/endpoint.upb.h"

#include "ekglue/model.h"
#include "ekglue/proto.h"
#include "ekglue/translate.h"

#include "common/map.h"

/* Looks up the locality of a node by name; returns false when the node is unknown. Borrowed strings. */
typedef bool (*ekg_node_locality_fn)(void *ctx, const char *node_name, ekg_locality_t *out);

/* Everything one Service's translation needs, borrowed. */
typedef struct ekg_service_input {
    const ekg_config_t *cfg;
    const ekg_service_t *svc;
    ekg_endpoint_slice_t *const *slices;
    size_t nslices;
    ekg_node_locality_fn node_locality;
    void *node_ctx;
    ekg_map_t *shared_clusters; /* ekg_config_cluster_key -> shared_cluster_t*, owned by the translator */
    uint64_t *validate_ns;      /* where time spent validating is added; NULL: not measured */
} ekg_service_input_t;

/* The encoding of an EDS Cluster without its name, shared by every cluster with the same config key. */
typedef struct shared_cluster {
    char *key; /* owned */
    size_t len;
    char bytes[];
} shared_cluster_t;

/*
 * The cluster name of a Service port: "<namespace>:<service>:<port name or number>[:udp]", written into buf
 * (always NUL-terminated). Returns false for ports that get no cluster (SCTP).
 */
bool ekg_cluster_name(const ekg_service_t *svc, const ekg_service_port_t *port, char *buf, size_t size);

/*
 * The encoded Cluster of one Service port (bytes in arena; NULL when suppressed). EDS clusters whose config
 * key was seen before are spliced from the shared encoding: the name field (field 1, so first in canonical
 * order) followed by the shared bytes, which is exactly upb's deterministic encoding of the whole message.
 * A cluster that breaks one of Envoy's validation rules is not encoded: *bytes stays NULL and *invalid says
 * where and which (invalid->rule is "" otherwise).
 */
ekg_err_t ekg_encode_cluster(const ekg_service_input_t *in, const ekg_service_port_t *port, const char *name,
                             upb_Arena *arena, char **bytes, size_t *len, bool *is_eds,
                             ekg_violation_t *invalid);

/*
 * Fills in c (a Cluster the config made, in arena) what ekg_encode_cluster() fills in for an example
 * ClusterIP Service port (default/example, TCP 80 named http): config.c checks the clusters a config makes
 * this way, as they would be sent.
 */
void ekg_cluster_fill_example(envoy_config_cluster_v3_Cluster *c, const ekg_config_t *cfg, upb_Arena *arena);

/* One endpoint of a Service port, as it goes into a ClusterLoadAssignment. Strings borrowed from the slices
 * and the config (node "" when unset). */
typedef struct ekg_candidate {
    const char *address;
    int32_t port;
    int health; /* envoy_config_core_v3_HealthStatus */
    int rank;   /* higher is better, for de-duplication */
    ekg_locality_t locality;
    const char *node;         /* the endpoint's nodeName; "" when unset */
    const char *const *hints; /* hints.forZones names (has_hints) */
    size_t nhints;
    bool has_hints;
} ekg_candidate_t;

/* The endpoints of one Service port: filtered by health, de-duplicated, sorted by locality then address
 * (load_assignment.c). *out is malloc'ed (free it), its strings borrowed from in. */
ekg_err_t ekg_gather_candidates(const ekg_service_input_t *in, const ekg_service_port_t *port,
                                ekg_candidate_t **out, size_t *n);
/* Whether an endpoint goes into assignments at all (ready, or serving and terminating, or include_not_ready).
 */
bool ekg_endpoint_included(const ekg_config_t *cfg, const ekg_endpoint_t *ep);
/*
 * Encodes the ClusterLoadAssignment `name` of candidates c (sorted by priority, then locality, then address):
 * one LocalityLbEndpoints per (priority, locality) run, weighted by its endpoint count. prio: each
 * candidate's priority, or NULL for all at 0. overprovisioning: policy.overprovisioning_factor, 0 = no
 * policy. *out is malloc'ed. Canonical: what upb's deterministic encoder makes of the same message.
 */
ekg_err_t ekg_encode_cla(const char *name, const ekg_candidate_t *c, const uint32_t *prio, size_t n, bool udp,
                         uint32_t overprovisioning, char **out, size_t *len);

/* --- zone-aware endpoints (zones.c; docs/translation.md, "Zone-aware endpoints") ---------------------------
 */

/* Whether and how a Service's ClusterLoadAssignments get per-client priorities. */
typedef struct ekg_zone_rule {
    bool active;      /* priorities apply */
    bool same_node;   /* PreferSameNode: endpoints on the client's own Node first */
    bool hints;       /* every included endpoint has hints.forZones: they decide the client zone's priority */
    char reason[200]; /* for operators: why they apply, or why a Service that asked does not get them; "" */
} ekg_zone_rule_t;

/* The rule for one Service under in->cfg. *warned_td: the trafficDistribution value last warned about for
 * this Service (owned, replaced), so that an unknown value is logged once per Service and value. */
void ekg_zone_rule(const ekg_service_input_t *in, char **warned_td, ekg_zone_rule_t *out);

/*
 * A zone plan: what one cluster's per-place variants are made from (its candidates, copied, and the rule),
 * and the variants made so far, one per place the plan can tell apart (bounded by its own endpoints).
 * Immutable apart from that cache (which has its own lock); reference-counted, shared by snapshots on any
 * thread.
 */
typedef struct ekg_zone_plan ekg_zone_plan_t;
/* A new plan (refcount 1) for the cluster `name`; copies everything it keeps. An inactive rule with a reason
 * makes a plan that only answers "why not". */
ekg_zone_plan_t *ekg_zone_plan_new(const char *name, const ekg_candidate_t *c, size_t n, bool udp,
                                   uint32_t overprovisioning, const ekg_zone_rule_t *rule);
ekg_zone_plan_t *ekg_zone_plan_ref(ekg_zone_plan_t *p);
void ekg_zone_plan_unref(ekg_zone_plan_t *p); /* NULL is fine */
const char *ekg_zone_plan_name(const ekg_zone_plan_t *p);
uint64_t ekg_zone_plan_hash(const ekg_zone_plan_t *p); /* of everything its variants depend on */
/* The assignment a client at `place` gets (a new reference), or NULL when it is the plain one. */
ekg_resource_t *ekg_zone_plan_variant(ekg_zone_plan_t *p, const ekg_place_t *place);

/*
 * A zone table: every plan of a translation, sorted by name, and the zones, regions and Nodes they know; the
 * localizer (include/ekglue/resource.h) of every snapshot made while it is current. Takes a reference to
 * each plan. Reference-counted; immutable.
 */
typedef struct ekg_zone_table ekg_zone_table_t;
ekg_zone_table_t *ekg_zone_table_new(ekg_zone_plan_t *const *plans, size_t n);
ekg_zone_table_t *ekg_zone_table_ref(ekg_zone_table_t *t);
void ekg_zone_table_unref(ekg_zone_table_t *t); /* NULL is fine */
size_t ekg_zone_table_size(const ekg_zone_table_t *t);
/* Attaches a new reference to the table to snap as its localizer. */
void ekg_zone_table_attach(ekg_zone_table_t *t, ekg_snapshot_t *snap);

/*
 * Proxyless gRPC: the Listener names of a Service port ("<service>.<namespace>:<port>" and, for a named port,
 * "...:<port name>"); 0 for non-TCP ports. Writes up to 2 names.
 */
size_t ekg_listener_names(const ekg_service_t *svc, const ekg_service_port_t *port, char names[2][600]);
/* The encoded Listener `name` whose inline route sends everything to `cluster`; *out is malloc'ed. */
ekg_err_t ekg_listener_encode(const char *name, const char *cluster, char **out, size_t *len);

/* The locality of an endpoint: its Node's (by the config's rules) or, for an unknown Node, the slice's zone.
 */
void ekg_endpoint_locality(const ekg_service_input_t *in, const ekg_endpoint_t *ep, ekg_locality_t *out);

/* The locality of a known Node by the config's rules. Strings are borrowed from node and cfg. */
void ekg_node_locality(const ekg_config_t *cfg, const ekg_node_t *node, ekg_locality_t *out);

/* Whether two localities are the same (region, zone and sub-zone). */
static inline bool ekg_locality_equal(const ekg_locality_t *a, const ekg_locality_t *b)
{
    return strcmp(a->region, b->region) == 0 && strcmp(a->zone, b->zone) == 0 &&
           strcmp(a->sub_zone, b->sub_zone) == 0;
}

#endif
