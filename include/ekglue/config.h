/*
 * include/ekglue/config.h: ekglue's configuration file (docs/config.md), loaded and validated.
 *
 * The file is YAML (or JSON), `apiVersion: v1alpha`, compatible with the original ekglue:
 *   cluster_config.base       a full Envoy Cluster (proto3 JSON in YAML form, Any fields included)
 *   cluster_config.overrides  [{match: [{cluster_name|port_name|namespace|service|app_protocol ...}],
 *                               override: {Cluster fields} | suppress: true}]
 *   endpoint_config.include_not_ready, endpoint_config.locality.{region_from,zone_from,sub_zone_from}
 *   cluster_domain            (ekglue extension) DNS suffix for non-EDS clusters, default cluster.local
 * Every error names file:line, the key path and the reason.
 *
 * An ekg_config_t is immutable once loaded and owned by whoever loaded it; translation reads it from the
 * watcher thread while the main thread may load the next one. Thread: any (no shared mutable state).
 */
#ifndef EKGLUE_CONFIG_H
#define EKGLUE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "upb/upb.h"

#include "envoy/config/cluster/v3/cluster.upb.h"

#include "ekglue/error.h"

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
const ekg_locality_rules_t *ekg_config_locality_rules(const ekg_config_t *cfg);
const char *ekg_config_cluster_domain(const ekg_config_t *cfg);
/* A stable hash of the whole effective config; translation results depend on nothing else. */
unsigned long long ekg_config_hash(const ekg_config_t *cfg);

#endif
