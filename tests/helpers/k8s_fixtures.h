/*
 * tests/helpers/k8s_fixtures.h: test-only builders of Kubernetes model objects and readers of Envoy
 * resources, shared by the cmocka unit tests (tests/unit/).
 *
 * Builders take JSON text as the API server sends it, printf-formatted, in which a single quote (') stands
 * for a double quote (") so that fixtures stay readable inside C strings ("{'metadata': {'name': 'web'}}").
 * They parse it (cJSON_Parse + ekg_*_from_json) and fail the running test with the parser's message when the
 * text or the object is invalid, so a test never sees NULL. The objects are owned by the caller (usually
 * handed straight to a translator, which takes ownership).
 *
 * Readers decode a resource's shared bytes into a upb message in the caller's arena, or render it as compact
 * proto3 JSON, again failing the test on error.
 *
 * Thread: the test's main thread (cmocka's failure handling is not thread-safe). ekg_proto_init() must have
 * run.
 */
#ifndef EKG_TEST_K8S_FIXTURES_H
#define EKG_TEST_K8S_FIXTURES_H

#include <stddef.h>

#include "upb/upb.h"

#include "envoy/config/cluster/v3/cluster.upb.h"
#include "envoy/config/endpoint/v3/endpoint.upb.h"

#include "ekglue/translate.h"
#include "ekglue/model.h"
#include "ekglue/resource.h"

/* Model objects from JSON ('-quoted, printf-formatted). Owned by the caller. */
ekg_service_t *fx_service(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
ekg_endpoint_slice_t *fx_slice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
ekg_node_t *fx_node(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Shorthands for the common shapes (all JSON built by the functions above). */
/* A Node with topology.kubernetes.io/region and /zone labels (either may be NULL = label absent). */
ekg_node_t *fx_node_in(const char *name, const char *region, const char *zone);

/* A config: the built-in one when yaml is NULL, else the YAML text (failing the test with diag if invalid).
 * Owned by the caller (ekg_config_free). */
ekg_config_t *fx_config(const char *yaml);

/* A translator over cfg (borrowed); owned by the caller (ekg_translator_free). */
ekg_translator_t *fx_translator(const ekg_config_t *cfg);
/* Builds, failing the test on error; both sets are new references owned by the caller. */
void fx_build(ekg_translator_t *t, ekg_resource_set_t **clusters, ekg_resource_set_t **load_assignments);

/* Decodes a resource's bytes (it must be of the matching type); the message lives in arena. */
envoy_config_cluster_v3_Cluster *fx_decode_cluster(const ekg_resource_t *r, upb_Arena *arena);
envoy_config_endpoint_v3_ClusterLoadAssignment *fx_decode_load_assignment(const ekg_resource_t *r,
                                                                          upb_Arena *arena);
/* Finds name in set and decodes it; fails the test (listing the set's names) when absent. */
envoy_config_cluster_v3_Cluster *fx_find_cluster(const ekg_resource_set_t *set, const char *name,
                                                 upb_Arena *arena);
envoy_config_endpoint_v3_ClusterLoadAssignment *fx_find_load_assignment(const ekg_resource_set_t *set,
                                                                        const char *name, upb_Arena *arena);

/* The resource as compact canonical proto3 JSON (ekg_render_resource); malloc'ed, the caller frees it. */
char *fx_render_json(const ekg_resource_t *r);

/* The names of a set joined by ',' ("a,b,c"); malloc'ed, the caller frees it. */
char *fx_set_names(const ekg_resource_set_t *set);

/*
 * A one-line summary of a ClusterLoadAssignment's endpoints, built from the decoded fields, for
 * assert_string_equal: localities in order, each "region/zone/sub_zone w=WEIGHT: ADDR:PORT HEALTH, ..."
 * (":udp" after the port for UDP, "w=-" when the weight is unset, "p=N" before "w=" for a non-zero priority),
 * joined by " | "; "" for no localities. In arena.
 */
const char *fx_describe_load_assignment(const envoy_config_endpoint_v3_ClusterLoadAssignment *la,
                                        upb_Arena *arena);
/* The single DNS target of a Cluster's inline load_assignment: "HOST:PORT" (":udp" appended for UDP); fails
 * the test unless there is exactly one locality with one endpoint. In arena. */
const char *fx_cluster_dns_target(const envoy_config_cluster_v3_Cluster *c, upb_Arena *arena);

/* A NUL-terminated copy of a upb string view, in arena (for assert_string_equal). */
const char *fx_str(upb_StringView sv, upb_Arena *arena);

#endif
