/*
 * include/ekglue/translate.h: Kubernetes objects in, Envoy resources out, incrementally.
 *
 * The translator holds the current Services, EndpointSlices and Nodes (it takes ownership of what it is
 * given) and, per Service, the encoded Clusters and ClusterLoadAssignments made from them under one config. A
 * change marks only what it affects dirty: a Service or one of its slices -> that Service; a Node whose
 * locality changed
 * -> the Services with endpoints on it. ekg_translator_build() redoes only the dirty Services and returns the
 * sorted, versioned sets (unchanged sets are returned as the same objects).
 *
 * Rules (docs/translation.md): one Cluster per Service port, named <namespace>:<service>:<port name or
 * number> with ":udp" for UDP; SCTP skipped; EDS clusters get a ClusterLoadAssignment (empty when there are
 * no endpoints) built from the slices joined by kubernetes.io/service-name, ports matched by name, endpoints
 * de-duplicated, one LocalityLbEndpoints per locality weighted by its endpoint count; other clusters get a
 * DNS load_assignment to <service>.<namespace>.svc.<domain>. or the ExternalName.
 *
 * Thread: one translator is used by one thread at a time (the watcher thread in the daemon). The returned
 * sets are immutable and may be handed to any thread.
 */
#ifndef EKGLUE_TRANSLATE_H
#define EKGLUE_TRANSLATE_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "ekglue/config.h"
#include "ekglue/error.h"
#include "ekglue/model.h"
#include "ekglue/resource.h"
#include "ekglue/snapshot.h"

typedef struct ekg_translator ekg_translator_t;

/* The locality of an endpoint, as the rules give it. Strings are "" when empty. */
typedef struct ekg_locality {
    const char *region, *zone, *sub_zone;
} ekg_locality_t;

/* cfg is borrowed and must outlive the translator (or be replaced with ekg_translator_set_config). */
ekg_err_t ekg_translator_new(const ekg_config_t *cfg, ekg_translator_t **out);
void ekg_translator_free(ekg_translator_t *t);
/* Switches to another config: every Service is redone on the next build. cfg is borrowed. */
void ekg_translator_set_config(ekg_translator_t *t, const ekg_config_t *cfg);

/* Adds or replaces an object (matched by namespace/name); takes ownership of it, also on error. */
ekg_err_t ekg_translator_put_service(ekg_translator_t *t, ekg_service_t *svc);
ekg_err_t ekg_translator_put_slice(ekg_translator_t *t, ekg_endpoint_slice_t *slice);
ekg_err_t ekg_translator_put_node(ekg_translator_t *t, ekg_node_t *node);
/* Removes an object; a no-op when absent. */
void ekg_translator_remove_service(ekg_translator_t *t, const char *namespace_, const char *name);
void ekg_translator_remove_slice(ekg_translator_t *t, const char *namespace_, const char *name);
void ekg_translator_remove_node(ekg_translator_t *t, const char *name);
/* Moves every object of objs into the translator (objs is left empty; free it as usual). */
ekg_err_t ekg_translator_put_objects(ekg_translator_t *t, ekg_objects_t *objs);

/*
 * Redoes what is dirty and returns the current sets (new references for the caller, who unrefs them).
 * Either output pointer may be NULL. On error the translator keeps its previous outputs.
 */
ekg_err_t ekg_translator_build(ekg_translator_t *t, ekg_resource_set_t **clusters,
                               ekg_resource_set_t **load_assignments);

/*
 * The latest built set of a type (a new reference), or NULL when the translator does not make that type
 * (RouteConfigurations: proxyless listeners carry their routes inline) or before the first build. Clusters,
 * ClusterLoadAssignments and Listeners: "<service>.<namespace>:<port or port name>" for proxyless gRPC.
 */
ekg_resource_set_t *ekg_translator_set(const ekg_translator_t *t, ekg_resource_type_t type);

/* What the last ekg_translator_build() did, for benchmarks and metrics. */
typedef struct ekg_translate_stats {
    size_t services_translated; /* dirty Services redone */
    uint64_t total_ns;          /* the whole build */
    uint64_t encode_ns;         /* of which: binary encoding of resources */
} ekg_translate_stats_t;
void ekg_translator_last_stats(const ekg_translator_t *t, ekg_translate_stats_t *out);

/*
 * The Nodes' localities as {node name: {region, zone, subZone}} (empty fields left out, like proto3 JSON of
 * envoy.config.core.v3.Locality), sorted by name: what `ekglue dump` and the debug port show. NULL when out
 * of memory; owned by the caller (cJSON_Delete).
 */
cJSON *ekg_translator_localities(const ekg_translator_t *t);

/*
 * Builds what is dirty (ekg_translator_build) and returns it as a new, unpublished snapshot (a new
 * reference): every resource set, and the localities for operators. On error the translator keeps its
 * previous outputs and *out is untouched.
 */
ekg_err_t ekg_translator_snapshot(ekg_translator_t *t, ekg_snapshot_t **out);

/* Number of known Nodes, and node i (sorted by name) with its locality; borrowed until the next change. */
size_t ekg_translator_node_count(const ekg_translator_t *t);
const char *ekg_translator_node_at(const ekg_translator_t *t, size_t i, ekg_locality_t *locality);

#endif
