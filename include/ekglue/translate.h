/*
 * include/ekglue/translate.h: Kubernetes objects in, Envoy resources out, incrementally (src/translate/),
 * under ekglue's configuration file, also loaded and checked here.
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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "upb/upb.h"

#include "envoy/config/cluster/v3/cluster.upb.h"

#include "ekglue/error.h"
#include "ekglue/model.h"
#include "ekglue/resource.h"

/* --- the configuration ---------------------------------------------------------------------------------- */

/*
 * The configuration file (src/translate/config.c): ekglue's configuration file (docs/config.md), loaded and
 * validated.
 *
 * The file is YAML (or JSON), `apiVersion: v1alpha`, compatible with the original ekglue:
 *   cluster_config.base       a full Envoy Cluster (proto3 JSON in YAML form, Any fields included)
 *   cluster_config.overrides  [{match: [{cluster_name|port_name|namespace|service|app_protocol ...}],
 *                               override: {Cluster fields} | suppress: true}]
 *   endpoint_config.include_not_ready, endpoint_config.locality.{region_from,zone_from,sub_zone_from},
 *   endpoint_config.zone_priorities (auto|always|never), endpoint_config.overprovisioning_factor
 *   cluster_domain            (ekglue extension) DNS suffix for non-EDS clusters, default cluster.local
 * Every error names file:line, the key path and the reason.
 *
 * An ekg_config_t is immutable once loaded and owned by whoever loaded it; translation reads it from the
 * watcher thread while the main thread may load the next one. Thread: any (no shared mutable state).
 */
typedef struct ekg_config ekg_config_t;

/* Where one locality field comes from, for an endpoint whose Node is known. */
typedef enum {
    EKG_LOCALITY_NONE = 0, /* left empty */
    EKG_LOCALITY_LABEL,    /* the Node's label `value` (empty if the Node lacks it) */
    EKG_LOCALITY_LITERAL,  /* the string `value` */
    EKG_LOCALITY_HOSTNAME  /* the Node's name (use_hostname: true) */
} ekg_locality_source_kind_t;

typedef struct ekg_locality_source {
    ekg_locality_source_kind_t kind;
    const char *value; /* label key or literal; NULL for NONE/HOSTNAME. Borrowed from the config. */
} ekg_locality_source_t;

typedef struct ekg_locality_rules {
    ekg_locality_source_t region, zone, sub_zone;
} ekg_locality_rules_t;

/* What a cluster is matched on. All strings borrowed; app_protocol may be NULL. */
typedef struct ekg_cluster_match_input {
    const char *cluster_name; /* e.g. "shop:cart:http" or "shop:dns:53:udp" */
    const char *namespace_;
    const char *service;
    const char *port_name;    /* "" when unnamed */
    const char *app_protocol; /* NULL when unset */
} ekg_cluster_match_input_t;

/*
 * The built-in config: base = EDS over ADS, connect_timeout 1s; no overrides; not-ready endpoints left out;
 * region/zone from the Node labels topology.kubernetes.io/{region,zone}; cluster domain cluster.local.
 */
ekg_err_t ekg_config_default(ekg_config_t **out, ekg_diag_t *diag);
/* Loads a config file. On error *out is untouched and diag holds "FILE:LINE: KEY: reason". */
ekg_err_t ekg_config_load_file(const char *path, ekg_config_t **out, ekg_diag_t *diag);
ekg_err_t ekg_config_parse(const char *buf, size_t len, const char *source_name, ekg_config_t **out,
                           ekg_diag_t *diag);
void ekg_config_free(ekg_config_t *cfg);

/*
 * The effective Cluster for one Service port before translation fills in name, discovery and endpoints: a
 * copy of the base with every matching override merged in, in file order (protobuf merge, except that
 * well-known types such as Duration and wrappers are replaced whole). *suppressed is set when a matching rule
 * suppresses the cluster, or when it is one of the API server's `default:kubernetes:*` clusters and no rule
 * names it explicitly; *out is then NULL. *out lives in arena.
 */
ekg_err_t ekg_config_cluster(const ekg_config_t *cfg, const ekg_cluster_match_input_t *in, upb_Arena *arena,
                             envoy_config_cluster_v3_Cluster **out, bool *suppressed, ekg_diag_t *diag);

/*
 * Which rules match a cluster, as a short key ("r,0,3"): clusters with the same key get the same effective
 * Cluster apart from what translation fills in, so translation can encode it once and share the bytes.
 * Returns false for clusters that are (or may be) suppressed, and when buf is too small: then do not share.
 */
bool ekg_config_cluster_key(const ekg_config_t *cfg, const ekg_cluster_match_input_t *in, char *buf,
                            size_t size);

/* The base Cluster as configured (before any override). Borrowed: lives as long as cfg; do not modify. */
const envoy_config_cluster_v3_Cluster *ekg_config_base_cluster(const ekg_config_t *cfg);
/* Number of rules in cluster_config.overrides (override and suppress rules alike). */
size_t ekg_config_rule_count(const ekg_config_t *cfg);
bool ekg_config_include_not_ready(const ekg_config_t *cfg);
/* endpoint_config.zone_priorities: when ClusterLoadAssignments get per-client-zone priorities
 * (docs/translation.md, "Zone-aware endpoints"). */
typedef enum {
    EKG_ZONE_PRIORITIES_AUTO = 0, /* per Service, when Kubernetes would keep traffic close (the default) */
    EKG_ZONE_PRIORITIES_ALWAYS,   /* every EDS cluster */
    EKG_ZONE_PRIORITIES_NEVER     /* none: every client gets the plain assignment */
} ekg_zone_priorities_t;
ekg_zone_priorities_t ekg_config_zone_priorities(const ekg_config_t *cfg);
/* endpoint_config.overprovisioning_factor; 0 when unset (then no policy is sent: Envoy's default, 140). */
uint32_t ekg_config_overprovisioning_factor(const ekg_config_t *cfg);
const ekg_locality_rules_t *ekg_config_locality_rules(const ekg_config_t *cfg);
const char *ekg_config_cluster_domain(const ekg_config_t *cfg);
/* A stable hash of the whole effective config; translation results depend on nothing else. */
unsigned long long ekg_config_hash(const ekg_config_t *cfg);

/* --- the translator ------------------------------------------------------------------------------------- */

typedef struct ekg_translator ekg_translator_t;

/* The locality of an endpoint, as the rules give it. Strings are "" when empty. */
typedef struct ekg_locality {
    const char *region, *zone, *sub_zone;
} ekg_locality_t;

/*
 * cfg is borrowed and must outlive the translator (or be replaced with ekg_translator_set_config).
 */
ekg_translator_t *ekg_translator_new(const ekg_config_t *cfg);
void ekg_translator_free(ekg_translator_t *t);
/* Switches to another config: every Service is redone on the next build. cfg is borrowed. */
void ekg_translator_set_config(ekg_translator_t *t, const ekg_config_t *cfg);

/*
 * Adds or replaces an object (matched by namespace/name); takes ownership of it.
 */
void ekg_translator_put_service(ekg_translator_t *t, ekg_service_t *svc);
void ekg_translator_put_slice(ekg_translator_t *t, ekg_endpoint_slice_t *slice);
void ekg_translator_put_node(ekg_translator_t *t, ekg_node_t *node);
/* Removes an object; a no-op when absent. */
void ekg_translator_remove_service(ekg_translator_t *t, const char *namespace_, const char *name);
void ekg_translator_remove_slice(ekg_translator_t *t, const char *namespace_, const char *name);
void ekg_translator_remove_node(ekg_translator_t *t, const char *name);
/* Moves every object of objs into the translator (objs is left empty; free it as usual). */
void ekg_translator_put_objects(ekg_translator_t *t, ekg_objects_t *objs);

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
    uint64_t validate_ns;       /* of which: checking them against Envoy's rules (ekg_proto_validate) */
    size_t resources_invalid;   /* resources not served because they break one of those rules */
} ekg_translate_stats_t;
void ekg_translator_last_stats(const ekg_translator_t *t, ekg_translate_stats_t *out);

/*
 * The Nodes' localities as {node name: {region, zone, subZone}} (empty fields left out, like proto3 JSON of
 * envoy.config.core.v3.Locality), sorted by name: what `ekglue dump` and the debug port show. Owned by the
 * caller (cJSON_Delete).
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
