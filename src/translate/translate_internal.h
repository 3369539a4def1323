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
 */
ekg_err_t ekg_encode_cluster(const ekg_service_input_t *in, const ekg_service_port_t *port, const char *name,
                             upb_Arena *arena, char **bytes, size_t *len, bool *is_eds);

/* The encoded ClusterLoadAssignment named `name` for one Service port (bytes in arena). */
ekg_err_t ekg_encode_load_assignment(const ekg_service_input_t *in, const ekg_service_port_t *port,
                                     const char *name, upb_Arena *arena, char **bytes, size_t *len);

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
