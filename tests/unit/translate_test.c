/*
 * tests/unit/translate_test.c: the translation core (src/translate/translator.c, cluster.c,
 * load_assignment.c, locality.c): one test per translation rule (include/ekglue/translate.h), asserting on
 * the fields of the decoded Clusters and ClusterLoadAssignments; then determinism (same objects in any order
 * -> same bytes and versions), versioning per type, and the incremental bookkeeping (what a change redoes).
 * Thread: the test's main thread.
 *
 * Endpoint expectations are written as fx_describe_load_assignment() summaries:
 *   "region/zone/sub_zone w=WEIGHT: ADDR:PORT HEALTH, ... | next locality ...".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envoy/config/cluster/v3/cluster.upb.h"
#include "envoy/config/core/v3/address.upb.h"
#include "envoy/config/core/v3/base.upb.h"
#include "envoy/config/core/v3/config_source.upb.h"
#include "envoy/config/core/v3/health_check.upb.h"
#include "envoy/config/endpoint/v3/endpoint.upb.h"
#include "envoy/config/endpoint/v3/endpoint_components.upb.h"
#include "google/protobuf/duration.upb.h"
#include "google/protobuf/wrappers.upb.h"

#include "ekglue/translate.h"
#include "ekglue/log.h"
#include "ekglue/proto.h"
#include "ekglue/render.h"
#include "ekglue/resource.h"

#include "k8s_fixtures.h"

/* --- fixtures
 * ------------------------------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    ekg_diag_t diag = {{0}};
    if (ekg_proto_init(&diag) != EKG_OK) {
        fprintf(stderr, "ekg_proto_init: %s\n", diag.msg);
        return -1;
    }
    ekg_log_set_level(EKG_LOG_ERROR); /* translation warnings are expected in some tests */
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    ekg_proto_shutdown();
    return 0;
}

/* Each test gets a fresh arena in *state for decoded messages. */
static int arena_setup(void **state)
{
    *state = upb_Arena_New();
    return *state ? 0 : -1;
}

static int arena_teardown(void **state)
{
    upb_Arena_Free(*state);
    return 0;
}

/* A Service ns/name with the given spec members ('-quoted JSON). */
static ekg_service_t *service(const char *ns, const char *name, const char *spec)
{
    return fx_service("{'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'namespace': '%s', 'name': '%s', "
                      "'resourceVersion': '1'}, 'spec': {%s}}",
                      ns, name, spec);
}

/* An EndpointSlice ns/name for Service ns/svc with the given endpoints and ports (JSON list members). */
static ekg_endpoint_slice_t *slice(const char *ns, const char *name, const char *svc,
                                   const char *address_type, const char *endpoints, const char *ports)
{
    return fx_slice(
        "{'apiVersion': 'discovery.k8s.io/v1', 'kind': 'EndpointSlice', 'metadata': {'namespace': "
        "'%s', 'name': '%s', 'labels': {'kubernetes.io/service-name': '%s'}}, 'addressType': '%s', "
        "'endpoints': [%s], 'ports': [%s]}",
        ns, name, svc, address_type, endpoints, ports);
}

#define HTTP_SPEC  "'ports': [{'name': 'http', 'port': 80, 'targetPort': 8080, 'protocol': 'TCP'}]"
#define HTTP_SLICE "{'name': 'http', 'port': 8080, 'protocol': 'TCP'}"
#define EP(addr)   "{'addresses': ['" addr "'], 'conditions': {'ready': true}}"
#define EP_ON(addr, node)                                                                                    \
    "{'addresses': ['" addr "'], 'conditions': {'ready': true, 'serving': true, 'terminating': false}, "     \
    "'nodeName': '" node "'}"

static void put_service(ekg_translator_t *t, ekg_service_t *svc)
{
    ekg_translator_put_service(t, svc);
}

static void put_slice(ekg_translator_t *t, ekg_endpoint_slice_t *s)
{
    ekg_translator_put_slice(t, s);
}

static void put_node(ekg_translator_t *t, ekg_node_t *n)
{
    ekg_translator_put_node(t, n);
}

static void assert_names(const ekg_resource_set_t *set, const char *want)
{
    char *names = fx_set_names(set);
    assert_string_equal(names, want);
    free(names);
}

static const char *endpoints_of(const ekg_resource_set_t *las, const char *name, upb_Arena *arena)
{
    return fx_describe_load_assignment(fx_find_load_assignment(las, name, arena), arena);
}

static size_t translated(const ekg_translator_t *t)
{
    ekg_translate_stats_t st;
    ekg_translator_last_stats(t, &st);
    return st.services_translated;
}

/* Builds and returns both sets; the previous ones (if any) are released first. */
static void rebuild(ekg_translator_t *t, ekg_resource_set_t **clusters, ekg_resource_set_t **las)
{
    ekg_resource_set_unref(*clusters);
    ekg_resource_set_unref(*las);
    *clusters = *las = NULL;
    fx_build(t, clusters, las);
}

/* --- clusters
 * ------------------------------------------------------------------------------------------------ */

/* One Cluster per Service port: <ns>:<svc>:<port name or number>, ":udp" for UDP, SCTP skipped. */
static void test_cluster_per_port_naming(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    put_service(t, service("shop", "web",
                           "'ports': [{'name': 'http', 'port': 80, 'targetPort': 8080}, "
                           "{'name': 'dns', 'port': 53, 'protocol': 'UDP'}, "
                           "{'name': 'sig', 'port': 3868, 'protocol': 'SCTP'}, "
                           "{'name': 'grpc', 'port': 9090, 'protocol': 'TCP'}]"));
    put_service(t, service("shop", "single", "'ports': [{'port': 8080}]"));
    put_service(t, service("shop", "syslog", "'ports': [{'port': 514, 'protocol': 'UDP'}]"));
    put_service(t, service("shop", "sctp-only", "'ports': [{'port': 9, 'protocol': 'SCTP'}]"));
    put_service(t, service("shop", "noports", "'type': 'ClusterIP'"));
    ekg_resource_set_t *clusters = NULL, *las = NULL;
    fx_build(t, &clusters, &las);

    assert_names(clusters,
                 "shop:single:8080,shop:syslog:514:udp,shop:web:dns:udp,shop:web:grpc,shop:web:http");
    assert_names(las, "shop:single:8080,shop:syslog:514:udp,shop:web:dns:udp,shop:web:grpc,shop:web:http");
    for (size_t i = 0; i < ekg_resource_set_size(clusters); i++) {
        const ekg_resource_t *r = ekg_resource_set_at(clusters, i);
        envoy_config_cluster_v3_Cluster *c = fx_decode_cluster(r, arena);
        assert_string_equal(fx_str(envoy_config_cluster_v3_Cluster_name(c), arena), ekg_resource_name(r));
    }
    assert_int_equal(translated(t), 5);

    ekg_resource_set_unref(clusters);
    ekg_resource_set_unref(las);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* The built-in base: EDS over ADS (resource_api_version V3), connect_timeout 1s, no inline endpoints. */
static void test_default_base_is_eds_over_ads(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    put_service(t, service("shop", "web", HTTP_SPEC));
    ekg_resource_set_t *clusters = NULL, *las = NULL;
    fx_build(t, &clusters, &las);

    envoy_config_cluster_v3_Cluster *c = fx_find_cluster(clusters, "shop:web:http", arena);
    assert_string_equal(fx_str(envoy_config_cluster_v3_Cluster_name(c), arena), "shop:web:http");
    assert_int_equal(envoy_config_cluster_v3_Cluster_cluster_discovery_type_case(c),
                     envoy_config_cluster_v3_Cluster_cluster_discovery_type_type);
    assert_int_equal(envoy_config_cluster_v3_Cluster_type(c), envoy_config_cluster_v3_Cluster_EDS);
    const envoy_config_cluster_v3_Cluster_EdsClusterConfig *eds =
        envoy_config_cluster_v3_Cluster_eds_cluster_config(c);
    assert_non_null(eds);
    assert_string_equal(fx_str(envoy_config_cluster_v3_Cluster_EdsClusterConfig_service_name(eds), arena),
                        "");
    const envoy_config_core_v3_ConfigSource *src =
        envoy_config_cluster_v3_Cluster_EdsClusterConfig_eds_config(eds);
    assert_non_null(src);
    assert_true(envoy_config_core_v3_ConfigSource_has_ads(src));
    assert_int_equal(envoy_config_core_v3_ConfigSource_resource_api_version(src), envoy_config_core_v3_V3);
    const struct google_protobuf_Duration *timeout = envoy_config_cluster_v3_Cluster_connect_timeout(c);
    assert_non_null(timeout);
    assert_int_equal(google_protobuf_Duration_seconds(timeout), 1);
    assert_int_equal(google_protobuf_Duration_nanos(timeout), 0);
    assert_false(envoy_config_cluster_v3_Cluster_has_load_assignment(c));

    /* The whole message, as Envoy reads it. */
    char *json = fx_render_json(ekg_resource_set_find(clusters, "shop:web:http"));
    assert_string_equal(json,
                        "{\"name\":\"shop:web:http\",\"type\":\"EDS\",\"edsClusterConfig\":{\"edsConfig\":"
                        "{\"ads\":{},\"resourceApiVersion\":\"V3\"}},\"connectTimeout\":\"1s\"}");
    free(json);

    ekg_resource_set_unref(clusters);
    ekg_resource_set_unref(las);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/*
 * A base without a discovery type gives STRICT_DNS clusters with one endpoint <svc>.<ns>.svc.cluster.local.
 * and the service port (the numeric targetPort for headless Services); no ClusterLoadAssignments.
 */
static void test_base_without_type_is_strict_dns(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config("apiVersion: v1alpha\n"
                                  "cluster_config:\n"
                                  "  base:\n"
                                  "    connect_timeout: 2s\n");
    ekg_translator_t *t = fx_translator(cfg);
    put_service(t, service("shop", "web", HTTP_SPEC));
    put_service(t, service("shop", "dns",
                           "'ports': [{'name': 'dns', 'port': 53, 'targetPort': 5353, 'protocol': 'UDP'}]"));
    put_service(t,
                service("shop", "db",
                        "'clusterIP': 'None', 'ports': [{'name': 'pg', 'port': 5432, 'targetPort': 6432}, "
                        "{'name': 'named', 'port': 81, 'targetPort': 'web'}, {'name': 'same', 'port': 82}]"));
    put_slice(t, slice("shop", "web-1", "web", "IPv4", EP("10.0.0.1"), HTTP_SLICE));
    ekg_resource_set_t *clusters = NULL, *las = NULL;
    fx_build(t, &clusters, &las);

    assert_names(clusters, "shop:db:named,shop:db:pg,shop:db:same,shop:dns:dns:udp,shop:web:http");
    assert_int_equal(ekg_resource_set_size(las), 0);

    envoy_config_cluster_v3_Cluster *c = fx_find_cluster(clusters, "shop:web:http", arena);
    assert_int_equal(envoy_config_cluster_v3_Cluster_type(c), envoy_config_cluster_v3_Cluster_STRICT_DNS);
    assert_false(envoy_config_cluster_v3_Cluster_has_eds_cluster_config(c));
    assert_int_equal(google_protobuf_Duration_seconds(envoy_config_cluster_v3_Cluster_connect_timeout(c)), 2);
    assert_string_equal(fx_str(envoy_config_endpoint_v3_ClusterLoadAssignment_cluster_name(
                                   envoy_config_cluster_v3_Cluster_load_assignment(c)),
                               arena),
                        "shop:web:http");
    /* A ClusterIP Service: the service port, not the targetPort. */
    assert_string_equal(fx_cluster_dns_target(c, arena), "web.shop.svc.cluster.local.:80");

    c = fx_find_cluster(clusters, "shop:dns:dns:udp", arena);
    assert_int_equal(envoy_config_cluster_v3_Cluster_type(c), envoy_config_cluster_v3_Cluster_STRICT_DNS);
    assert_string_equal(fx_cluster_dns_target(c, arena), "dns.shop.svc.cluster.local.:53:udp");

    /* Headless: a numeric targetPort is where the pods listen; a named one cannot be resolved by DNS. */
    assert_string_equal(fx_cluster_dns_target(fx_find_cluster(clusters, "shop:db:pg", arena), arena),
                        "db.shop.svc.cluster.local.:6432");
    assert_string_equal(fx_cluster_dns_target(fx_find_cluster(clusters, "shop:db:named", arena), arena),
                        "db.shop.svc.cluster.local.:81");
    assert_string_equal(fx_cluster_dns_target(fx_find_cluster(clusters, "shop:db:same", arena), arena),
                        "db.shop.svc.cluster.local.:82");

    ekg_resource_set_unref(clusters);
    ekg_resource_set_unref(las);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* cluster_domain replaces cluster.local in DNS targets. */
static void test_cluster_domain(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config("apiVersion: v1alpha\n"
                                  "cluster_domain: corp.example\n"
                                  "cluster_config:\n"
                                  "  base: {connect_timeout: 1s}\n");
    ekg_translator_t *t = fx_translator(cfg);
    put_service(t, service("shop", "web", HTTP_SPEC));
    ekg_resource_set_t *clusters = NULL, *las = NULL;
    fx_build(t, &clusters, &las);
    assert_string_equal(fx_cluster_dns_target(fx_find_cluster(clusters, "shop:web:http", arena), arena),
                        "web.shop.svc.corp.example.:80");
    ekg_resource_set_unref(clusters);
    ekg_resource_set_unref(las);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* A configured LOGICAL_DNS stays LOGICAL_DNS (for Services and ExternalNames alike). */
static void test_logical_dns_kept(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config("apiVersion: v1alpha\n"
                                  "cluster_config:\n"
                                  "  base: {type: LOGICAL_DNS, connect_timeout: 1s}\n");
    ekg_translator_t *t = fx_translator(cfg);
    put_service(t, service("shop", "web", HTTP_SPEC));
    put_service(t, service("ext", "api",
                           "'type': 'ExternalName', 'externalName': 'api.example.com', "
                           "'ports': [{'name': 'https', 'port': 443}]"));
    ekg_resource_set_t *clusters = NULL, *las = NULL;
    fx_build(t, &clusters, &las);
    envoy_config_cluster_v3_Cluster *c = fx_find_cluster(clusters, "shop:web:http", arena);
    assert_int_equal(envoy_config_cluster_v3_Cluster_type(c), envoy_config_cluster_v3_Cluster_LOGICAL_DNS);
    assert_string_equal(fx_cluster_dns_target(c, arena), "web.shop.svc.cluster.local.:80");
    c = fx_find_cluster(clusters, "ext:api:https", arena);
    assert_int_equal(envoy_config_cluster_v3_Cluster_type(c), envoy_config_cluster_v3_Cluster_LOGICAL_DNS);
    assert_string_equal(fx_cluster_dns_target(c, arena), "api.example.com:443");
    assert_int_equal(ekg_resource_set_size(las), 0);
    ekg_resource_set_unref(clusters);
    ekg_resource_set_unref(las);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* ExternalName Services become STRICT_DNS clusters to externalName:port, even under the EDS base. */
static void test_external_name(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    put_service(t, service("ext", "api",
                           "'type': 'ExternalName', 'externalName': 'api.example.com', "
                           "'ports': [{'name': 'https', 'port': 443}, "
                           "{'name': 'dns', 'port': 53, 'protocol': 'UDP'}]"));
    put_service(t, service("ext", "noports", "'type': 'ExternalName', 'externalName': 'x.example.com'"));
    ekg_resource_set_t *clusters = NULL, *las = NULL;
    fx_build(t, &clusters, &las);

    assert_names(clusters, "ext:api:dns:udp,ext:api:https");
    envoy_config_cluster_v3_Cluster *c = fx_find_cluster(clusters, "ext:api:https", arena);
    assert_int_equal(envoy_config_cluster_v3_Cluster_type(c), envoy_config_cluster_v3_Cluster_STRICT_DNS);
    assert_false(envoy_config_cluster_v3_Cluster_has_eds_cluster_config(c));
    assert_int_equal(google_protobuf_Duration_seconds(envoy_config_cluster_v3_Cluster_connect_timeout(c)), 1);
    assert_string_equal(fx_cluster_dns_target(c, arena), "api.example.com:443");
    assert_string_equal(fx_cluster_dns_target(fx_find_cluster(clusters, "ext:api:dns:udp", arena), arena),
                        "api.example.com:53:udp");
    /* Not EDS: no ClusterLoadAssignment. */
    assert_int_equal(ekg_resource_set_size(las), 0);

    ekg_resource_set_unref(clusters);
    ekg_resource_set_unref(las);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* default:kubernetes:* is suppressed unless a rule names it (by cluster_name or service). */
static void test_kubernetes_service_suppressed(void **state)
{
    upb_Arena *arena = *state;
    static const char *const configs[] = {
        NULL,
        /* A rule matching only the namespace does not name the cluster. */
        "apiVersion: v1alpha\n"
        "cluster_config:\n"
        "  overrides:\n"
        "    - match: [{namespace: default}]\n"
        "      override: {connect_timeout: 5s}\n",
        "apiVersion: v1alpha\n"
        "cluster_config:\n"
        "  overrides:\n"
        "    - match: [{cluster_name: 'default:kubernetes:https'}]\n"
        "      override: {connect_timeout: 5s}\n",
        "apiVersion: v1alpha\n"
        "cluster_config:\n"
        "  overrides:\n"
        "    - match: [{namespace: default, service: kubernetes}]\n"
        "      override: {connect_timeout: 5s}\n",
    };
    static const char *const want[] = {
        "default:web:http,other:kubernetes:https",
        "default:web:http,other:kubernetes:https",
        "default:kubernetes:https,default:web:http,other:kubernetes:https",
        "default:kubernetes:https,default:web:http,other:kubernetes:https",
    };
    for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++) {
        ekg_config_t *cfg = fx_config(configs[i]);
        ekg_translator_t *t = fx_translator(cfg);
        put_service(t, service("default", "kubernetes",
                               "'ports': [{'name': 'https', 'port': 443, 'targetPort': 6443}]"));
        put_service(t, service("other", "kubernetes", "'ports': [{'name': 'https', 'port': 443}]"));
        put_service(t, service("default", "web", HTTP_SPEC));
        put_slice(t, slice("default", "kubernetes", "kubernetes", "IPv4", EP("192.168.1.1"),
                           "{'name': 'https', 'port': 6443}"));
        ekg_resource_set_t *clusters = NULL, *las = NULL;
        fx_build(t, &clusters, &las);
        print_message("config %zu\n", i);
        assert_names(clusters, want[i]);
        assert_names(las, want[i]);
        if (i >= 2) {
            envoy_config_cluster_v3_Cluster *c = fx_find_cluster(clusters, "default:kubernetes:https", arena);
            assert_int_equal(
                google_protobuf_Duration_seconds(envoy_config_cluster_v3_Cluster_connect_timeout(c)), 5);
            assert_int_equal(envoy_config_cluster_v3_Cluster_type(c), envoy_config_cluster_v3_Cluster_EDS);
            assert_string_equal(endpoints_of(las, "default:kubernetes:https", arena),
                                "// w=1: 192.168.1.1:6443 HEALTHY");
        }
        ekg_resource_set_unref(clusters);
        ekg_resource_set_unref(las);
        ekg_translator_free(t);
        ekg_config_free(cfg);
    }
}

/* --- load assignments
 * ------------------------------------------------------------------------------------------ */

/* The endpoint port is the slice port with the Service port's name and protocol (80 -> targetPort 8080). */
static void test_endpoint_port_by_name_and_protocol(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    put_service(t, service("shop", "web",
                           "'ports': [{'name': 'http', 'port': 80, 'targetPort': 8080}, "
                           "{'name': 'metrics', 'port': 9100, 'targetPort': 9100}, "
                           "{'name': 'dns', 'port': 53, 'protocol': 'UDP'}, "
                           "{'name': 'admin', 'port': 9000}]"));
    put_slice(t, slice("shop", "web-a", "web", "IPv4", EP("10.0.0.1"),
                       "{'name': 'http', 'port': 8080}, {'name': 'metrics', 'port': 9101}, "
                       "{'name': 'dns', 'port': 5353, 'protocol': 'TCP'}"));
    put_slice(t, slice("shop", "web-b", "web", "IPv4", EP("10.0.1.1"),
                       "{'name': 'dns', 'port': 5354, 'protocol': 'UDP'}"));
    ekg_resource_set_t *clusters = NULL, *las = NULL;
    fx_build(t, &clusters, &las);

    envoy_config_endpoint_v3_ClusterLoadAssignment *la = fx_find_load_assignment(las, "shop:web:http", arena);
    assert_string_equal(fx_str(envoy_config_endpoint_v3_ClusterLoadAssignment_cluster_name(la), arena),
                        "shop:web:http");
    assert_string_equal(fx_describe_load_assignment(la, arena), "// w=1: 10.0.0.1:8080 HEALTHY");
    /* The slice's port wins over the Service's targetPort (the slice is what the pods expose now). */
    assert_string_equal(endpoints_of(las, "shop:web:metrics", arena), "// w=1: 10.0.0.1:9101 HEALTHY");
    /* Same name, other protocol: not that port. */
    assert_string_equal(endpoints_of(las, "shop:web:dns:udp", arena), "// w=1: 10.0.1.1:5354:udp HEALTHY");
    /* No slice port of that name: no endpoints. */
    assert_string_equal(endpoints_of(las, "shop:web:admin", arena), "");

    ekg_resource_set_unref(clusters);
    ekg_resource_set_unref(las);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* Endpoints are de-duplicated across slices, keeping the best health. */
static void test_endpoints_deduplicated(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfgs[2] = {
        fx_config(NULL),
        fx_config("apiVersion: v1alpha\nendpoint_config: {include_not_ready: true}\n"),
    };
    static const char *const want[2] = {
        "// w=3: 10.0.0.1:8080 HEALTHY, 10.0.0.2:8080 HEALTHY, 10.0.0.3:8080 DRAINING",
        "// w=4: 10.0.0.1:8080 HEALTHY, 10.0.0.2:8080 HEALTHY, 10.0.0.3:8080 DRAINING, 10.0.0.4:8080 "
        "DEGRADED",
    };
    for (int i = 0; i < 2; i++) {
        ekg_translator_t *t = fx_translator(cfgs[i]);
        put_service(t, service("shop", "web", HTTP_SPEC));
        /* "a" sorts first and holds the worse copies, "b" the better ones, and vice versa. */
        put_slice(t, slice("shop", "web-a", "web", "IPv4",
                           "{'addresses': ['10.0.0.1'], 'conditions': {'ready': false, 'serving': true, "
                           "'terminating': true}}, "
                           "{'addresses': ['10.0.0.2'], 'conditions': {'ready': true}}, "
                           "{'addresses': ['10.0.0.4'], 'conditions': {'ready': false}}",
                           HTTP_SLICE));
        put_slice(t, slice("shop", "web-b", "web", "IPv4",
                           "{'addresses': ['10.0.0.1'], 'conditions': {'ready': true}}, "
                           "{'addresses': ['10.0.0.2'], 'conditions': {'ready': false}}, "
                           "{'addresses': ['10.0.0.3'], 'conditions': {'ready': false, 'serving': true, "
                           "'terminating': true}}, "
                           "{'addresses': ['10.0.0.4'], 'conditions': {'ready': false}}",
                           HTTP_SLICE));
        ekg_resource_set_t *clusters = NULL, *las = NULL;
        fx_build(t, &clusters, &las);
        print_message("include_not_ready=%d\n", i);
        assert_string_equal(endpoints_of(las, "shop:web:http", arena), want[i]);
        ekg_resource_set_unref(clusters);
        ekg_resource_set_unref(las);
        ekg_translator_free(t);
        ekg_config_free(cfgs[i]);
    }
}

/* IPv4 and IPv6 slices both count; FQDN slices are skipped. */
static void test_ipv4_ipv6_fqdn(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    put_service(t, service("shop", "web", "'ipFamilies': ['IPv4', 'IPv6'], " HTTP_SPEC));
    put_slice(t, slice("shop", "web-v4", "web", "IPv4", EP("10.0.0.1"), HTTP_SLICE));
    put_slice(t, slice("shop", "web-v6", "web", "IPv6", EP("fd00::1") ", " EP("fd00::2"), HTTP_SLICE));
    put_slice(t, slice("shop", "web-fqdn", "web", "FQDN", EP("db.example.com"), HTTP_SLICE));
    ekg_resource_set_t *clusters = NULL, *las = NULL;
    fx_build(t, &clusters, &las);
    assert_string_equal(endpoints_of(las, "shop:web:http", arena),
                        "// w=3: 10.0.0.1:8080 HEALTHY, fd00::1:8080 HEALTHY, fd00::2:8080 HEALTHY");
    ekg_resource_set_unref(clusters);
    ekg_resource_set_unref(las);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/*
 * One LocalityLbEndpoints per distinct locality, sorted, each weighted by its endpoint count; the locality
 * comes from the Node's labels, or the endpoint's zone when the Node is unknown (not when it is known but
 * unlabelled).
 */
static void test_localities(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    put_node(t, fx_node_in("n1", "eu", "eu-1a"));
    put_node(t, fx_node_in("n2", "eu", "eu-1b"));
    put_node(t, fx_node_in("n3", "eu", "eu-1a"));
    put_node(t, fx_node_in("n4", NULL, NULL));
    put_service(t, service("shop", "web", HTTP_SPEC));
    put_slice(t,
              slice("shop", "web-1", "web", "IPv4",
                    EP_ON("10.0.0.5", "n1") ", " EP_ON("10.0.0.4", "n2") ", " EP_ON(
                        "10.0.0.3", "n3") ", "
                                          "{'addresses': ['10.0.0.2'], 'nodeName': 'n9', 'zone': 'us-1c'}, "
                                          "{'addresses': ['10.0.0.1'], 'zone': 'us-1d'}, "
                                          "{'addresses': ['10.0.0.6'], 'nodeName': 'n4', 'zone': 'ignored'}, "
                                          "{'addresses': ['10.0.0.7']}",
                    HTTP_SLICE));
    ekg_resource_set_t *clusters = NULL, *las = NULL;
    fx_build(t, &clusters, &las);

    envoy_config_endpoint_v3_ClusterLoadAssignment *la = fx_find_load_assignment(las, "shop:web:http", arena);
    assert_string_equal(fx_describe_load_assignment(la, arena),
                        "// w=2: 10.0.0.6:8080 HEALTHY, 10.0.0.7:8080 HEALTHY"
                        " | /us-1c/ w=1: 10.0.0.2:8080 HEALTHY"
                        " | /us-1d/ w=1: 10.0.0.1:8080 HEALTHY"
                        " | eu/eu-1a/ w=2: 10.0.0.3:8080 HEALTHY, 10.0.0.5:8080 HEALTHY"
                        " | eu/eu-1b/ w=1: 10.0.0.4:8080 HEALTHY");
    /* The same, field by field, for one locality. */
    size_t n;
    const envoy_config_endpoint_v3_LocalityLbEndpoints *const *locs =
        envoy_config_endpoint_v3_ClusterLoadAssignment_endpoints(la, &n);
    assert_int_equal(n, 5);
    const envoy_config_core_v3_Locality *l = envoy_config_endpoint_v3_LocalityLbEndpoints_locality(locs[3]);
    assert_string_equal(fx_str(envoy_config_core_v3_Locality_region(l), arena), "eu");
    assert_string_equal(fx_str(envoy_config_core_v3_Locality_zone(l), arena), "eu-1a");
    assert_string_equal(fx_str(envoy_config_core_v3_Locality_sub_zone(l), arena), "");
    assert_int_equal(google_protobuf_UInt32Value_value(
                         envoy_config_endpoint_v3_LocalityLbEndpoints_load_balancing_weight(locs[3])),
                     2);
    assert_int_equal(envoy_config_endpoint_v3_LocalityLbEndpoints_priority(locs[3]), 0);

    /* The translator reports the Nodes' localities, sorted by name. */
    assert_int_equal(ekg_translator_node_count(t), 4);
    ekg_locality_t loc;
    assert_string_equal(ekg_translator_node_at(t, 1, &loc), "n2");
    assert_string_equal(loc.region, "eu");
    assert_string_equal(loc.zone, "eu-1b");
    assert_string_equal(loc.sub_zone, "");

    ekg_resource_set_unref(clusters);
    ekg_resource_set_unref(las);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* endpoint_config.locality: literal, custom label and hostname sources, with and without a known Node. */
static void test_locality_rules_from_config(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config("apiVersion: v1alpha\n"
                                  "endpoint_config:\n"
                                  "  locality:\n"
                                  "    region_from: {literal: dc1}\n"
                                  "    zone_from: {label: example.com/rack}\n"
                                  "    sub_zone_from: {use_hostname: true}\n");
    ekg_translator_t *t = fx_translator(cfg);
    put_node(t, fx_node("{'metadata': {'name': 'n1', 'labels': {'example.com/rack': 'r7', "
                        "'topology.kubernetes.io/zone': 'eu-1a'}}}"));
    put_service(t, service("shop", "web", HTTP_SPEC));
    put_slice(t,
              slice("shop", "web-1", "web", "IPv4",
                    EP_ON("10.0.0.1", "n1") ", {'addresses': ['10.0.0.2'], 'nodeName': 'n9', 'zone': 'z9'}",
                    HTTP_SLICE));
    ekg_resource_set_t *clusters = NULL, *las = NULL;
    fx_build(t, &clusters, &las);
    assert_string_equal(endpoints_of(las, "shop:web:http", arena),
                        "dc1/r7/n1 w=1: 10.0.0.1:8080 HEALTHY | dc1/z9/n9 w=1: 10.0.0.2:8080 HEALTHY");
    ekg_resource_set_unref(clusters);
    ekg_resource_set_unref(las);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/*
 * Health: ready (or null) -> HEALTHY; not ready but serving and terminating -> DRAINING; otherwise left out,
 * or DEGRADED with include_not_ready. Unset serving means "as ready", unset terminating means false.
 */
static void test_health_from_conditions(void **state)
{
    upb_Arena *arena = *state;
    static const char *const endpoints =
        "{'addresses': ['10.0.0.1'], 'conditions': {'ready': true}}, "
        "{'addresses': ['10.0.0.2']}, "
        "{'addresses': ['10.0.0.3'], 'conditions': {'ready': null, 'serving': null, 'terminating': null}}, "
        "{'addresses': ['10.0.0.4'], 'conditions': {'ready': false, 'serving': true, 'terminating': true}}, "
        "{'addresses': ['10.0.0.5'], 'conditions': {'ready': false, 'serving': false, 'terminating': true}}, "
        "{'addresses': ['10.0.0.6'], 'conditions': {'ready': false, 'serving': true, 'terminating': false}}, "
        "{'addresses': ['10.0.0.7'], 'conditions': {'ready': false}}, "
        "{'addresses': ['10.0.0.8'], 'conditions': {'ready': false, 'terminating': true}}";
    ekg_config_t *cfgs[2] = {
        fx_config(NULL),
        fx_config("apiVersion: v1alpha\nendpoint_config: {include_not_ready: true}\n"),
    };
    static const char *const want[2] = {
        "// w=4: 10.0.0.1:8080 HEALTHY, 10.0.0.2:8080 HEALTHY, 10.0.0.3:8080 HEALTHY, 10.0.0.4:8080 DRAINING",
        "// w=8: 10.0.0.1:8080 HEALTHY, 10.0.0.2:8080 HEALTHY, 10.0.0.3:8080 HEALTHY, 10.0.0.4:8080 "
        "DRAINING, "
        "10.0.0.5:8080 DEGRADED, 10.0.0.6:8080 DEGRADED, 10.0.0.7:8080 DEGRADED, 10.0.0.8:8080 DEGRADED",
    };
    for (int i = 0; i < 2; i++) {
        ekg_translator_t *t = fx_translator(cfgs[i]);
        put_service(t, service("shop", "web", HTTP_SPEC));
        put_slice(t, slice("shop", "web-1", "web", "IPv4", endpoints, HTTP_SLICE));
        ekg_resource_set_t *clusters = NULL, *las = NULL;
        fx_build(t, &clusters, &las);
        print_message("include_not_ready=%d\n", i);
        envoy_config_endpoint_v3_ClusterLoadAssignment *la =
            fx_find_load_assignment(las, "shop:web:http", arena);
        assert_string_equal(fx_describe_load_assignment(la, arena), want[i]);
        size_t nloc, nep;
        const envoy_config_endpoint_v3_LocalityLbEndpoints *const *locs =
            envoy_config_endpoint_v3_ClusterLoadAssignment_endpoints(la, &nloc);
        assert_int_equal(nloc, 1);
        const envoy_config_endpoint_v3_LbEndpoint *const *eps =
            envoy_config_endpoint_v3_LocalityLbEndpoints_lb_endpoints(locs[0], &nep);
        assert_int_equal(nep, i ? 8 : 4);
        assert_int_equal(envoy_config_endpoint_v3_LbEndpoint_health_status(eps[3]),
                         envoy_config_core_v3_DRAINING);
        ekg_resource_set_unref(clusters);
        ekg_resource_set_unref(las);
        ekg_translator_free(t);
        ekg_config_free(cfgs[i]);
    }
}

/* An EDS cluster without endpoints still gets a ClusterLoadAssignment: cluster_name only. */
static void test_empty_load_assignment(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    put_service(t, service("shop", "web", HTTP_SPEC));
    put_service(t, service("shop", "down", HTTP_SPEC));
    put_slice(t, slice("shop", "down-1", "down", "IPv4",
                       "{'addresses': ['10.0.0.1'], 'conditions': {'ready': false}}", HTTP_SLICE));
    ekg_resource_set_t *clusters = NULL, *las = NULL;
    fx_build(t, &clusters, &las);
    assert_names(las, "shop:down:http,shop:web:http");
    for (size_t i = 0; i < ekg_resource_set_size(las); i++) {
        const ekg_resource_t *r = ekg_resource_set_at(las, i);
        envoy_config_endpoint_v3_ClusterLoadAssignment *la = fx_decode_load_assignment(r, arena);
        size_t n;
        envoy_config_endpoint_v3_ClusterLoadAssignment_endpoints(la, &n);
        assert_int_equal(n, 0);
        assert_false(envoy_config_endpoint_v3_ClusterLoadAssignment_has_policy(la));
        char *json = fx_render_json(r);
        char want[128];
        snprintf(want, sizeof(want), "{\"clusterName\":\"%s\"}", ekg_resource_name(r));
        assert_string_equal(json, want);
        free(json);
    }
    ekg_resource_set_unref(clusters);
    ekg_resource_set_unref(las);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* Resources sorted by name; within a locality endpoints sorted by address, then port. */
static void test_output_sorted(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    put_service(t, service("zeta", "web", HTTP_SPEC));
    put_service(t, service("alpha", "web", HTTP_SPEC));
    put_service(t, service("mid", "b", "'ports': [{'name': 'z', 'port': 1}, {'name': 'a', 'port': 2}]"));
    put_service(t, service("mid", "a", HTTP_SPEC));
    /* During a rollout the same pod may be listed with two target ports in two slices. */
    put_slice(t, slice("alpha", "web-2", "web", "IPv4", EP("10.0.0.2") ", " EP("10.0.0.1"),
                       "{'name': 'http', 'port': 8081}"));
    put_slice(t, slice("alpha", "web-1", "web", "IPv4", EP("10.0.0.3") ", " EP("10.0.0.1"), HTTP_SLICE));
    ekg_resource_set_t *clusters = NULL, *las = NULL;
    fx_build(t, &clusters, &las);
    assert_names(clusters, "alpha:web:http,mid:a:http,mid:b:a,mid:b:z,zeta:web:http");
    assert_names(las, "alpha:web:http,mid:a:http,mid:b:a,mid:b:z,zeta:web:http");
    assert_string_equal(endpoints_of(las, "alpha:web:http", arena),
                        "// w=4: 10.0.0.1:8080 HEALTHY, 10.0.0.1:8081 HEALTHY, 10.0.0.2:8081 HEALTHY, "
                        "10.0.0.3:8080 HEALTHY");
    for (size_t i = 1; i < ekg_resource_set_size(clusters); i++)
        assert_true(strcmp(ekg_resource_name(ekg_resource_set_at(clusters, i - 1)),
                           ekg_resource_name(ekg_resource_set_at(clusters, i))) < 0);
    ekg_resource_set_unref(clusters);
    ekg_resource_set_unref(las);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* --- determinism and versions
 * -------------------------------------------------------------------------------- */

typedef enum { K_NODE, K_SERVICE, K_SLICE } kind_t;

typedef struct object_spec {
    kind_t kind;
    const char *json; /* '-quoted */
} object_spec_t;

/* A small cluster's worth of objects touching every rule. */
static const object_spec_t world[] = {
    {K_NODE, "{'metadata': {'name': 'node-a', 'labels': {'topology.kubernetes.io/region': 'eu', "
             "'topology.kubernetes.io/zone': 'eu-1a'}}}"},
    {K_NODE, "{'metadata': {'name': 'node-b', 'labels': {'topology.kubernetes.io/region': 'eu', "
             "'topology.kubernetes.io/zone': 'eu-1b'}}}"},
    {K_NODE, "{'metadata': {'name': 'node-c', 'labels': {'topology.kubernetes.io/region': 'us', "
             "'topology.kubernetes.io/zone': 'us-1a'}}}"},
    {K_SERVICE,
     "{'metadata': {'namespace': 'shop', 'name': 'web'}, 'spec': {'ports': [{'name': 'http', 'port': "
     "80, 'targetPort': 8080}, {'name': 'grpc', 'port': 9090}]}}"},
    {K_SERVICE,
     "{'metadata': {'namespace': 'shop', 'name': 'dns'}, 'spec': {'ports': [{'name': 'dns', 'port': "
     "53, 'protocol': 'UDP'}, {'name': 'dns-tcp', 'port': 53}]}}"},
    {K_SERVICE, "{'metadata': {'namespace': 'shop', 'name': 'cart'}, 'spec': {'ports': [{'port': 8080}]}}"},
    {K_SERVICE, "{'metadata': {'namespace': 'ext', 'name': 'api'}, 'spec': {'type': 'ExternalName', "
                "'externalName': 'api.example.com', 'ports': [{'name': 'https', 'port': 443}]}}"},
    {K_SERVICE, "{'metadata': {'namespace': 'default', 'name': 'kubernetes'}, 'spec': {'ports': [{'name': "
                "'https', 'port': 443, 'targetPort': 6443}]}}"},
    {K_SLICE,
     "{'metadata': {'namespace': 'shop', 'name': 'web-v4a', 'labels': {'kubernetes.io/service-name': "
     "'web'}}, 'addressType': 'IPv4', 'endpoints': [{'addresses': ['10.0.0.3'], 'nodeName': 'node-b'}, "
     "{'addresses': ['10.0.0.1'], 'nodeName': 'node-a'}, {'addresses': ['10.0.0.9'], 'nodeName': "
     "'node-c', 'conditions': {'ready': false, 'serving': true, 'terminating': true}}], 'ports': "
     "[{'name': 'http', 'port': 8080}, {'name': 'grpc', 'port': 9090}]}"},
    {K_SLICE,
     "{'metadata': {'namespace': 'shop', 'name': 'web-v4b', 'labels': {'kubernetes.io/service-name': "
     "'web'}}, 'addressType': 'IPv4', 'endpoints': [{'addresses': ['10.0.0.1'], 'nodeName': 'node-a', "
     "'conditions': {'ready': false}}, {'addresses': ['10.0.0.2'], 'nodeName': 'node-a'}, "
     "{'addresses': ['10.0.0.4'], 'nodeName': 'node-x', 'zone': 'eu-1c'}], 'ports': [{'name': 'http', "
     "'port': 8080}, {'name': 'grpc', 'port': 9090}]}"},
    {K_SLICE,
     "{'metadata': {'namespace': 'shop', 'name': 'web-v6', 'labels': {'kubernetes.io/service-name': "
     "'web'}}, 'addressType': 'IPv6', 'endpoints': [{'addresses': ['fd00::1'], 'nodeName': 'node-a'}], "
     "'ports': [{'name': 'http', 'port': 8080}]}"},
    {K_SLICE,
     "{'metadata': {'namespace': 'shop', 'name': 'dns-1', 'labels': {'kubernetes.io/service-name': "
     "'dns'}}, 'addressType': 'IPv4', 'endpoints': [{'addresses': ['10.0.5.1'], 'nodeName': 'node-c'}], "
     "'ports': [{'name': 'dns', 'port': 53, 'protocol': 'UDP'}, {'name': 'dns-tcp', 'port': 53}]}"},
    {K_SLICE, "{'metadata': {'namespace': 'shop', 'name': 'cart-1', 'labels': {'kubernetes.io/service-name': "
              "'cart'}}, 'addressType': 'FQDN', 'endpoints': [{'addresses': ['cart.example.com']}], 'ports': "
              "[{'port': 8080}]}"},
    {K_SLICE,
     "{'metadata': {'namespace': 'shop', 'name': 'orphan-1', 'labels': {'kubernetes.io/service-name': "
     "'orphan'}}, 'addressType': 'IPv4', 'endpoints': [{'addresses': ['10.0.9.9']}], 'ports': "
     "[{'port': 80}]}"},
};
#define NWORLD (sizeof(world) / sizeof(world[0]))

static void put_spec(ekg_translator_t *t, const object_spec_t *o)
{
    switch (o->kind) {
    case K_NODE:
        put_node(t, fx_node("%s", o->json));
        break;
    case K_SERVICE:
        put_service(t, fx_service("%s", o->json));
        break;
    case K_SLICE:
        put_slice(t, fx_slice("%s", o->json));
        break;
    }
}

static void assert_same_sets(const ekg_resource_set_t *a, const ekg_resource_set_t *b)
{
    assert_int_equal(ekg_resource_set_size(a), ekg_resource_set_size(b));
    for (size_t i = 0; i < ekg_resource_set_size(a); i++) {
        const ekg_resource_t *x = ekg_resource_set_at(a, i), *y = ekg_resource_set_at(b, i);
        assert_string_equal(ekg_resource_name(x), ekg_resource_name(y));
        size_t lx, ly;
        const char *dx = ekg_resource_data(x, &lx), *dy = ekg_resource_data(y, &ly);
        assert_int_equal(lx, ly);
        assert_memory_equal(dx, dy, lx);
    }
    assert_string_equal(ekg_resource_set_version(a), ekg_resource_set_version(b));
}

/* The same objects in different orders (and built at once or one by one) give identical bytes and versions.
 */
static void test_deterministic_any_order(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *fwd = fx_translator(cfg), *rev = fx_translator(cfg), *inc = fx_translator(cfg);
    for (size_t i = 0; i < NWORLD; i++)
        put_spec(fwd, &world[i]);
    for (size_t i = NWORLD; i-- > 0;)
        put_spec(rev, &world[i]);
    /* Slices first, then Nodes, then Services, building after every object. */
    ekg_resource_set_t *c3 = NULL, *l3 = NULL;
    static const kind_t order[] = {K_SLICE, K_NODE, K_SERVICE};
    for (size_t k = 0; k < 3; k++)
        for (size_t i = 0; i < NWORLD; i++)
            if (world[i].kind == order[k]) {
                put_spec(inc, &world[i]);
                rebuild(inc, &c3, &l3);
            }
    ekg_resource_set_t *c1 = NULL, *l1 = NULL, *c2 = NULL, *l2 = NULL;
    fx_build(fwd, &c1, &l1);
    fx_build(rev, &c2, &l2);

    assert_names(
        c1, "ext:api:https,shop:cart:8080,shop:dns:dns-tcp,shop:dns:dns:udp,shop:web:grpc,shop:web:http");
    assert_names(l1, "shop:cart:8080,shop:dns:dns-tcp,shop:dns:dns:udp,shop:web:grpc,shop:web:http");
    assert_string_equal(endpoints_of(l1, "shop:web:http", arena),
                        "/eu-1c/ w=1: 10.0.0.4:8080 HEALTHY"
                        " | eu/eu-1a/ w=3: 10.0.0.1:8080 HEALTHY, 10.0.0.2:8080 HEALTHY, fd00::1:8080 HEALTHY"
                        " | eu/eu-1b/ w=1: 10.0.0.3:8080 HEALTHY"
                        " | us/us-1a/ w=1: 10.0.0.9:8080 DRAINING");
    assert_string_equal(endpoints_of(l1, "shop:cart:8080", arena), "");
    assert_same_sets(c1, c2);
    assert_same_sets(l1, l2);
    assert_same_sets(c1, c3);
    assert_same_sets(l1, l3);

    ekg_resource_set_unref(c1);
    ekg_resource_set_unref(l1);
    ekg_resource_set_unref(c2);
    ekg_resource_set_unref(l2);
    ekg_resource_set_unref(c3);
    ekg_resource_set_unref(l3);
    ekg_translator_free(fwd);
    ekg_translator_free(rev);
    ekg_translator_free(inc);
    ekg_config_free(cfg);
}

/* A version changes with its type's content only: a slice change leaves the cluster set as it was. */
static void test_versions_follow_content(void **state)
{
    (void)state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    for (size_t i = 0; i < NWORLD; i++)
        put_spec(t, &world[i]);
    ekg_resource_set_t *c0 = NULL, *l0 = NULL;
    fx_build(t, &c0, &l0);
    char cv0[17], lv0[17];
    snprintf(cv0, sizeof(cv0), "%s", ekg_resource_set_version(c0));
    snprintf(lv0, sizeof(lv0), "%s", ekg_resource_set_version(l0));
    assert_int_equal(strlen(cv0), 16);
    assert_string_not_equal(cv0, lv0);

    /* Nothing changed: the very same sets. */
    ekg_resource_set_t *c = NULL, *l = NULL;
    fx_build(t, &c, &l);
    assert_ptr_equal(c, c0);
    assert_ptr_equal(l, l0);
    assert_int_equal(translated(t), 0);

    /* A slice gains an endpoint: load assignments change, clusters do not. */
    put_slice(t, slice("shop", "dns-1", "dns", "IPv4", EP("10.0.5.1") ", " EP("10.0.5.2"),
                       "{'name': 'dns', 'port': 53, 'protocol': 'UDP'}, {'name': 'dns-tcp', 'port': 53}"));
    rebuild(t, &c, &l);
    assert_ptr_equal(c, c0);
    assert_string_equal(ekg_resource_set_version(c), cv0);
    assert_string_not_equal(ekg_resource_set_version(l), lv0);

    /* Back to the original content: the original version. */
    assert_non_null(strstr(world[11].json, "'dns-1'"));
    put_spec(t, &world[11]);
    rebuild(t, &c, &l);
    assert_string_equal(ekg_resource_set_version(l), lv0);
    assert_string_equal(ekg_resource_set_version(c), cv0);

    /* A Service change that does not alter the output (a label) changes nothing. */
    put_service(t, fx_service("{'metadata': {'namespace': 'shop', 'name': 'cart', 'labels': {'app': 'cart'}, "
                              "'resourceVersion': '99'}, 'spec': {'ports': [{'port': 8080}]}}"));
    rebuild(t, &c, &l);
    assert_int_equal(translated(t), 1);
    assert_string_equal(ekg_resource_set_version(c), cv0);
    assert_string_equal(ekg_resource_set_version(l), lv0);

    /* A new port: both types change (a new Cluster and its ClusterLoadAssignment). */
    put_service(t,
                fx_service("{'metadata': {'namespace': 'shop', 'name': 'cart'}, 'spec': {'ports': [{'name': "
                           "'http', 'port': 8080}, {'name': 'admin', 'port': 9000}]}}"));
    rebuild(t, &c, &l);
    assert_string_not_equal(ekg_resource_set_version(c), cv0);
    assert_string_not_equal(ekg_resource_set_version(l), lv0);

    /* A second translator (a restart, another replica) fed the same objects has the same versions. */
    ekg_translator_t *t2 = fx_translator(cfg);
    for (size_t i = 0; i < NWORLD; i++)
        put_spec(t2, &world[i]);
    ekg_resource_set_t *c2 = NULL, *l2 = NULL;
    fx_build(t2, &c2, &l2);
    assert_string_equal(ekg_resource_set_version(c2), cv0);
    assert_string_equal(ekg_resource_set_version(l2), lv0);

    ekg_resource_set_unref(c0);
    ekg_resource_set_unref(l0);
    ekg_resource_set_unref(c);
    ekg_resource_set_unref(l);
    ekg_resource_set_unref(c2);
    ekg_resource_set_unref(l2);
    ekg_translator_free(t);
    ekg_translator_free(t2);
    ekg_config_free(cfg);
}

/* --- incremental
 * ---------------------------------------------------------------------------------------------- */

/* One slice changes: only its Service is redone; every other resource keeps its object. */
static void test_incremental_slice_change(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    char name[32], slice_name[32];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "svc%d", i);
        snprintf(slice_name, sizeof(slice_name), "svc%d-1", i);
        put_service(t, service("shop", name, HTTP_SPEC));
        put_slice(t, fx_slice("{'metadata': {'namespace': 'shop', 'name': '%s', 'labels': "
                              "{'kubernetes.io/service-name': '%s'}}, 'addressType': 'IPv4', 'endpoints': "
                              "[{'addresses': ['10.0.0.%d']}], 'ports': [" HTTP_SLICE "]}",
                              slice_name, name, i + 1));
    }
    ekg_resource_set_t *c0 = NULL, *l0 = NULL;
    fx_build(t, &c0, &l0);
    assert_int_equal(translated(t), 5);

    put_slice(t, slice("shop", "svc2-1", "svc2", "IPv4", EP("10.0.0.3") ", " EP("10.0.0.33"), HTTP_SLICE));
    ekg_resource_set_t *c1 = NULL, *l1 = NULL;
    fx_build(t, &c1, &l1);
    assert_int_equal(translated(t), 1);
    assert_ptr_equal(c1, c0);
    assert_string_equal(endpoints_of(l1, "shop:svc2:http", arena),
                        "// w=2: 10.0.0.3:8080 HEALTHY, 10.0.0.33:8080 HEALTHY");
    for (size_t i = 0; i < ekg_resource_set_size(l1); i++) {
        const char *n = ekg_resource_name(ekg_resource_set_at(l1, i));
        if (strcmp(n, "shop:svc2:http") == 0)
            assert_ptr_not_equal(ekg_resource_set_find(l1, n), ekg_resource_set_find(l0, n));
        else
            assert_ptr_equal(ekg_resource_set_find(l1, n), ekg_resource_set_find(l0, n));
    }
    ekg_resource_set_unref(c0);
    ekg_resource_set_unref(l0);
    ekg_resource_set_unref(c1);
    ekg_resource_set_unref(l1);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* Removing a Service removes its Clusters and ClusterLoadAssignments; its slices wait for its return. */
static void test_remove_service(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    put_service(t, service("shop", "web",
                           "'ports': [{'name': 'http', 'port': 80, 'targetPort': 8080}, "
                           "{'name': 'dns', 'port': 53, 'protocol': 'UDP'}]"));
    put_service(t, service("shop", "other", HTTP_SPEC));
    put_slice(t, slice("shop", "web-1", "web", "IPv4", EP("10.0.0.1"), HTTP_SLICE));
    ekg_resource_set_t *clusters = NULL, *las = NULL;
    fx_build(t, &clusters, &las);
    assert_names(clusters, "shop:other:http,shop:web:dns:udp,shop:web:http");
    const ekg_resource_t *other = ekg_resource_set_find(las, "shop:other:http");

    ekg_translator_remove_service(t, "shop", "web");
    ekg_translator_remove_service(t, "shop", "absent"); /* a no-op */
    ekg_translator_remove_service(t, "nowhere", "web");
    rebuild(t, &clusters, &las);
    assert_int_equal(translated(t), 1);
    assert_names(clusters, "shop:other:http");
    assert_names(las, "shop:other:http");
    assert_ptr_equal(ekg_resource_set_find(las, "shop:other:http"), other);

    put_service(t, service("shop", "web", HTTP_SPEC));
    rebuild(t, &clusters, &las);
    assert_names(clusters, "shop:other:http,shop:web:http");
    assert_string_equal(endpoints_of(las, "shop:web:http", arena), "// w=1: 10.0.0.1:8080 HEALTHY");

    ekg_resource_set_unref(clusters);
    ekg_resource_set_unref(las);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/*
 * Two Services whose cluster names collide (names read from files may hold ':'): neither is served under that
 * name, everything else is, and the survivor comes back once the other is gone.
 */
static void test_colliding_names_drop_only_the_colliding_resources(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    put_service(t, service("shop", "web", HTTP_SPEC));
    put_service(t, service("a", "b:c", HTTP_SPEC));
    put_slice(t, slice("a", "bc-1", "b:c", "IPv4", EP("10.0.0.1"), HTTP_SLICE));
    ekg_resource_set_t *clusters = NULL, *las = NULL;
    fx_build(t, &clusters, &las);
    assert_names(clusters, "a:b:c:http,shop:web:http");

    put_service(t, service("a:b", "c", HTTP_SPEC)); /* also "a:b:c:http" */
    rebuild(t, &clusters, &las);
    assert_names(clusters, "shop:web:http");
    assert_names(las, "shop:web:http");

    put_service(t, service("shop", "api", HTTP_SPEC)); /* the rest keeps being served and updated */
    rebuild(t, &clusters, &las);
    assert_names(clusters, "shop:api:http,shop:web:http");

    ekg_translator_remove_service(t, "a:b", "c");
    rebuild(t, &clusters, &las);
    assert_names(clusters, "a:b:c:http,shop:api:http,shop:web:http");
    assert_string_equal(endpoints_of(las, "a:b:c:http", arena), "// w=1: 10.0.0.1:8080 HEALTHY");

    ekg_resource_set_unref(clusters);
    ekg_resource_set_unref(las);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* A slice that arrives before its Service is kept and used when the Service arrives. */
static void test_slice_before_service(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    put_slice(t, slice("shop", "web-1", "web", "IPv4", EP("10.0.0.1"), HTTP_SLICE));
    ekg_resource_set_t *clusters = NULL, *las = NULL;
    fx_build(t, &clusters, &las);
    assert_int_equal(ekg_resource_set_size(clusters), 0);
    assert_int_equal(ekg_resource_set_size(las), 0);

    put_service(t, service("shop", "web", HTTP_SPEC));
    rebuild(t, &clusters, &las);
    assert_int_equal(translated(t), 1);
    assert_names(clusters, "shop:web:http");
    assert_string_equal(endpoints_of(las, "shop:web:http", arena), "// w=1: 10.0.0.1:8080 HEALTHY");

    /* Removing the slice empties the load assignment (it stays, empty). */
    ekg_translator_remove_slice(t, "shop", "web-1");
    ekg_translator_remove_slice(t, "shop", "web-1"); /* a no-op */
    rebuild(t, &clusters, &las);
    assert_int_equal(translated(t), 1);
    assert_string_equal(endpoints_of(las, "shop:web:http", arena), "");

    ekg_resource_set_unref(clusters);
    ekg_resource_set_unref(las);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* A slice whose kubernetes.io/service-name changes moves to the other Service (and leaves the first). */
static void test_slice_moves_to_other_service(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    put_service(t, service("shop", "blue", HTTP_SPEC));
    put_service(t, service("shop", "green", HTTP_SPEC));
    put_service(t, service("shop", "idle", HTTP_SPEC));
    put_slice(t, slice("shop", "web-1", "blue", "IPv4", EP("10.0.0.1"), HTTP_SLICE));
    ekg_resource_set_t *clusters = NULL, *las = NULL;
    fx_build(t, &clusters, &las);
    assert_string_equal(endpoints_of(las, "shop:blue:http", arena), "// w=1: 10.0.0.1:8080 HEALTHY");
    assert_string_equal(endpoints_of(las, "shop:green:http", arena), "");

    put_slice(t, slice("shop", "web-1", "green", "IPv4", EP("10.0.0.1"), HTTP_SLICE));
    rebuild(t, &clusters, &las);
    assert_int_equal(translated(t), 2);
    assert_string_equal(endpoints_of(las, "shop:blue:http", arena), "");
    assert_string_equal(endpoints_of(las, "shop:green:http", arena), "// w=1: 10.0.0.1:8080 HEALTHY");

    /* Losing the label: the slice belongs to nobody. */
    put_slice(t, fx_slice("{'metadata': {'namespace': 'shop', 'name': 'web-1'}, 'addressType': 'IPv4', "
                          "'endpoints': [" EP("10.0.0.1") "], 'ports': [" HTTP_SLICE "]}"));
    rebuild(t, &clusters, &las);
    assert_int_equal(translated(t), 1);
    assert_string_equal(endpoints_of(las, "shop:green:http", arena), "");

    ekg_resource_set_unref(clusters);
    ekg_resource_set_unref(las);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* A new config redoes every Service. */
static void test_set_config_redoes_everything(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_config_t *cfg2 = fx_config("apiVersion: v1alpha\n"
                                   "cluster_config:\n"
                                   "  base:\n"
                                   "    type: EDS\n"
                                   "    connect_timeout: 5s\n"
                                   "endpoint_config:\n"
                                   "  locality:\n"
                                   "    zone_from: {label: topology.kubernetes.io/zone}\n");
    ekg_translator_t *t = fx_translator(cfg);
    put_node(t, fx_node_in("n1", "eu", "eu-1a"));
    for (size_t i = 0; i < NWORLD; i++)
        if (world[i].kind == K_SERVICE)
            put_spec(t, &world[i]);
    put_slice(t, slice("shop", "web-x", "web", "IPv4", EP_ON("10.0.0.1", "n1"), HTTP_SLICE));
    ekg_resource_set_t *c0 = NULL, *l0 = NULL;
    fx_build(t, &c0, &l0);
    assert_string_equal(endpoints_of(l0, "shop:web:http", arena), "eu/eu-1a/ w=1: 10.0.0.1:8080 HEALTHY");

    ekg_translator_set_config(t, cfg2);
    ekg_config_free(cfg); /* borrowed no longer */
    ekg_resource_set_t *c1 = NULL, *l1 = NULL;
    fx_build(t, &c1, &l1);
    assert_int_equal(translated(t), 5); /* web, dns, cart, ext/api and default/kubernetes (suppressed) */
    assert_string_not_equal(ekg_resource_set_version(c1), ekg_resource_set_version(c0));
    for (size_t i = 0; i < ekg_resource_set_size(c1); i++) {
        envoy_config_cluster_v3_Cluster *c = fx_decode_cluster(ekg_resource_set_at(c1, i), arena);
        assert_int_equal(google_protobuf_Duration_seconds(envoy_config_cluster_v3_Cluster_connect_timeout(c)),
                         5);
    }
    /* The new locality rules apply (no region any more). */
    assert_string_equal(endpoints_of(l1, "shop:web:http", arena), "/eu-1a/ w=1: 10.0.0.1:8080 HEALTHY");
    ekg_locality_t loc;
    assert_string_equal(ekg_translator_node_at(t, 0, &loc), "n1");
    assert_string_equal(loc.region, "");
    assert_string_equal(loc.zone, "eu-1a");

    ekg_resource_set_unref(c0);
    ekg_resource_set_unref(l0);
    ekg_resource_set_unref(c1);
    ekg_resource_set_unref(l1);
    ekg_translator_free(t);
    ekg_config_free(cfg2);
}

/*
 * A Node moved to another zone rebuilds exactly the Services with endpoints on it; a Node change that keeps
 * the locality rebuilds nothing; a Node appearing or vanishing rebuilds the Services that name it.
 */
static void test_node_relabel(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    put_node(t, fx_node_in("n1", "eu", "eu-1a"));
    put_node(t, fx_node_in("n2", "eu", "eu-1b"));
    put_service(t, service("shop", "a", HTTP_SPEC));
    put_service(t, service("shop", "b", HTTP_SPEC));
    put_service(t, service("shop", "c", HTTP_SPEC));
    put_service(t, service("shop", "d", HTTP_SPEC));
    put_service(t, service("shop", "e", HTTP_SPEC));
    put_slice(t, slice("shop", "a-1", "a", "IPv4", EP_ON("10.0.0.1", "n1"), HTTP_SLICE));
    put_slice(t, slice("shop", "b-1", "b", "IPv4", EP_ON("10.0.0.2", "n2"), HTTP_SLICE));
    put_slice(t, slice("shop", "c-1", "c", "IPv4", EP_ON("10.0.0.3", "n2"), HTTP_SLICE));
    put_slice(t, slice("shop", "c-2", "c", "IPv4", EP_ON("10.0.0.4", "n1"), HTTP_SLICE));
    put_slice(t, slice("shop", "e-1", "e", "IPv4",
                       "{'addresses': ['10.0.0.5'], 'nodeName': 'n9', 'zone': 'eu-1z'}", HTTP_SLICE));
    ekg_resource_set_t *clusters = NULL, *las = NULL;
    fx_build(t, &clusters, &las);
    assert_int_equal(translated(t), 5);
    ekg_resource_set_t *c0 = ekg_resource_set_ref(clusters);
    const ekg_resource_t *b0 = ekg_resource_set_find(las, "shop:b:http");

    /* n1 moves to eu-1c: a and c. */
    put_node(t, fx_node_in("n1", "eu", "eu-1c"));
    rebuild(t, &clusters, &las);
    assert_int_equal(translated(t), 2);
    assert_ptr_equal(clusters, c0);
    assert_ptr_equal(ekg_resource_set_find(las, "shop:b:http"), b0);
    assert_string_equal(endpoints_of(las, "shop:a:http", arena), "eu/eu-1c/ w=1: 10.0.0.1:8080 HEALTHY");
    assert_string_equal(endpoints_of(las, "shop:c:http", arena),
                        "eu/eu-1b/ w=1: 10.0.0.3:8080 HEALTHY | eu/eu-1c/ w=1: 10.0.0.4:8080 HEALTHY");

    /* Same locality, other labels: nothing to redo, the same sets. */
    ekg_resource_set_t *l1 = ekg_resource_set_ref(las);
    put_node(t,
             fx_node("{'metadata': {'name': 'n1', 'labels': {'topology.kubernetes.io/region': 'eu', "
                     "'topology.kubernetes.io/zone': 'eu-1c', 'node.kubernetes.io/instance-type': 'big'}}}"));
    rebuild(t, &clusters, &las);
    assert_int_equal(translated(t), 0);
    assert_ptr_equal(las, l1);
    ekg_resource_set_unref(l1);

    /* The unknown Node n9 appears: e's endpoint takes its locality instead of the slice's zone. */
    put_node(t, fx_node_in("n9", "us", "us-1a"));
    rebuild(t, &clusters, &las);
    assert_int_equal(translated(t), 1);
    assert_string_equal(endpoints_of(las, "shop:e:http", arena), "us/us-1a/ w=1: 10.0.0.5:8080 HEALTHY");

    /* n2 vanishes: b and c fall back to the endpoints' zone field (none here). */
    ekg_translator_remove_node(t, "n2");
    ekg_translator_remove_node(t, "n2"); /* a no-op */
    rebuild(t, &clusters, &las);
    assert_int_equal(translated(t), 2);
    assert_string_equal(endpoints_of(las, "shop:b:http", arena), "// w=1: 10.0.0.2:8080 HEALTHY");
    assert_int_equal(ekg_translator_node_count(t), 2);

    ekg_resource_set_unref(c0);
    ekg_resource_set_unref(clusters);
    ekg_resource_set_unref(las);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* ekg_translator_node_at() after a Node is replaced by one with the same locality: the name must be valid. */
static void test_node_at_after_same_locality_update(void **state)
{
    (void)state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    put_node(t, fx_node_in("node-1", "eu", "eu-1a"));
    put_node(t, fx_node_in("node-2", "eu", "eu-1b"));
    ekg_locality_t loc;
    assert_string_equal(ekg_translator_node_at(t, 0, &loc), "node-1"); /* fills the sorted-name cache */
    put_node(t, fx_node("{'metadata': {'name': 'node-1', 'labels': {'topology.kubernetes.io/region': 'eu', "
                        "'topology.kubernetes.io/zone': 'eu-1a', 'extra': 'label'}}}"));
    /* Churn the heap so that freed memory does not still read "node-1" by luck. */
    for (int i = 0; i < 64; i++) {
        char *p = malloc(64);
        memset(p, 'x', 64);
        free(p);
    }
    const char *name = ekg_translator_node_at(t, 0, &loc);
    assert_non_null(name);
    assert_string_equal(name, "node-1");
    assert_string_equal(loc.zone, "eu-1a");
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, arena_setup, arena_teardown)
        T(test_cluster_per_port_naming),
        T(test_default_base_is_eds_over_ads),
        T(test_base_without_type_is_strict_dns),
        T(test_cluster_domain),
        T(test_logical_dns_kept),
        T(test_external_name),
        T(test_kubernetes_service_suppressed),
        T(test_endpoint_port_by_name_and_protocol),
        T(test_endpoints_deduplicated),
        T(test_ipv4_ipv6_fqdn),
        T(test_localities),
        T(test_locality_rules_from_config),
        T(test_health_from_conditions),
        T(test_empty_load_assignment),
        T(test_output_sorted),
        T(test_deterministic_any_order),
        T(test_versions_follow_content),
        T(test_incremental_slice_change),
        T(test_remove_service),
        T(test_colliding_names_drop_only_the_colliding_resources),
        T(test_slice_before_service),
        T(test_slice_moves_to_other_service),
        T(test_set_config_redoes_everything),
        /* Last: these replace Nodes (see the report on ekg_translator_put_node). */
        T(test_node_relabel),
        T(test_node_at_after_same_locality_update),
#undef T
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
