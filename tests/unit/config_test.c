/*
 * tests/unit/config_test.c: the config loader and the cluster overrides (src/translate/config.c, merge.c) and
 * `ekglue check-config` (src/cli/check_config.c). Thread: the test's main thread only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "google/protobuf/any.upb.h"
#include "google/protobuf/duration.upb.h"
#include "google/protobuf/wrappers.upb.h"
#include "envoy/config/core/v3/base.upb.h"
#include "upb/reflection.h"

#include "ekglue/translate.h"
#include "ekglue/proto.h"

#include "cli/cli.h"

#define SRC "ekglue.yaml"

/* --- helpers ------------------------------------------------------------------------------------------ */

static int setup(void **state)
{
    ekg_diag_t diag = {{0}};
    if (ekg_proto_init(&diag) != EKG_OK) {
        fprintf(stderr, "ekg_proto_init: %s\n", diag.msg);
        return -1;
    }
    upb_Arena *arena = upb_Arena_New();
    *state = arena;
    return arena ? 0 : -1;
}

static int teardown(void **state)
{
    upb_Arena_Free(*state);
    return 0;
}

/* Parses yaml that must be valid; the caller frees the result. */
static ekg_config_t *parse_ok(const char *yaml)
{
    ekg_config_t *cfg = NULL;
    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_config_parse(yaml, strlen(yaml), SRC, &cfg, &diag);
    if (err != EKG_OK)
        fail_msg("unexpected config error %d: %s", err, diag.msg);
    return cfg;
}

/* Parses yaml that must be invalid and checks the whole message. */
static void expect_error(const char *yaml, const char *want)
{
    ekg_config_t *cfg = NULL;
    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_config_parse(yaml, strlen(yaml), SRC, &cfg, &diag);
    if (err == EKG_OK) {
        ekg_config_free(cfg);
        fail_msg("expected error \"%s\", but the config loaded:\n%s", want, yaml);
    }
    assert_null(cfg);
    assert_string_equal(diag.msg, want);
}

/* Like expect_error for messages whose tail comes from upb or libyaml: checks the start only. */
static void expect_error_prefix(const char *yaml, const char *want)
{
    ekg_config_t *cfg = NULL;
    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_config_parse(yaml, strlen(yaml), SRC, &cfg, &diag);
    if (err == EKG_OK) {
        ekg_config_free(cfg);
        fail_msg("expected error \"%s...\", but the config loaded:\n%s", want, yaml);
    }
    if (strncmp(diag.msg, want, strlen(want)) != 0)
        fail_msg("error message\n  \"%s\"\ndoes not start with\n  \"%s\"", diag.msg, want);
}

static ekg_cluster_match_input_t port(const char *ns, const char *svc, const char *port_name, const char *app,
                                      char *name_buf, size_t len)
{
    snprintf(name_buf, len, "%s:%s:%s", ns, svc, *port_name ? port_name : "80");
    return (ekg_cluster_match_input_t){name_buf, ns, svc, port_name, app};
}

/* Applies cfg to a port; NULL when suppressed. */
static envoy_config_cluster_v3_Cluster *apply(const ekg_config_t *cfg, const ekg_cluster_match_input_t *in,
                                              upb_Arena *arena)
{
    envoy_config_cluster_v3_Cluster *out = NULL;
    bool suppressed = true;
    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_config_cluster(cfg, in, arena, &out, &suppressed, &diag);
    if (err != EKG_OK)
        fail_msg("ekg_config_cluster(%s): %s", in->cluster_name, diag.msg);
    if (suppressed)
        assert_null(out);
    else
        assert_non_null(out);
    return out;
}

static char *cluster_json(const upb_Message *cluster)
{
    char *json = NULL;
    assert_int_equal(ekg_proto_to_json(cluster, ekg_proto_message(EKG_TYPE_CLUSTER), &json, NULL), EKG_OK);
    return json;
}

/* Compares a Cluster with the one `want` (proto3 JSON, any field order) describes, as canonical JSON. */
static void assert_cluster(const envoy_config_cluster_v3_Cluster *cluster, const char *want, upb_Arena *arena)
{
    const upb_MessageDef *m = ekg_proto_message(EKG_TYPE_CLUSTER);
    upb_Message *expected = upb_Message_New(m, arena);
    ekg_diag_t diag = {{0}};
    if (ekg_proto_from_json(want, strlen(want), m, expected, arena, &diag) != EKG_OK)
        fail_msg("bad expected JSON in the test: %s", diag.msg);
    char *want_json = cluster_json(expected);
    char *have_json = cluster_json((const upb_Message *)cluster);
    assert_string_equal(have_json, want_json);
    free(want_json);
    free(have_json);
}

/* --- defaults ----------------------------------------------------------------------------------------- */

static void check_defaults(const ekg_config_t *cfg, upb_Arena *arena)
{
    assert_cluster(
        ekg_config_base_cluster(cfg),
        "{\"type\":\"EDS\",\"edsClusterConfig\":{\"edsConfig\":{\"ads\":{},\"resourceApiVersion\":\"V3\"}},"
        "\"connectTimeout\":\"1s\"}",
        arena);
    assert_int_equal(ekg_config_rule_count(cfg), 0);
    assert_false(ekg_config_include_not_ready(cfg));
    const ekg_locality_rules_t *loc = ekg_config_locality_rules(cfg);
    assert_int_equal(loc->region.kind, EKG_LOCALITY_LABEL);
    assert_string_equal(loc->region.value, "topology.kubernetes.io/region");
    assert_int_equal(loc->zone.kind, EKG_LOCALITY_LABEL);
    assert_string_equal(loc->zone.value, "topology.kubernetes.io/zone");
    assert_int_equal(loc->sub_zone.kind, EKG_LOCALITY_NONE);
    assert_null(loc->sub_zone.value);
    assert_string_equal(ekg_config_cluster_domain(cfg), "cluster.local");
}

static void test_default(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = NULL;
    assert_int_equal(ekg_config_default(&cfg, NULL), EKG_OK);
    check_defaults(cfg, arena);

    char name[128];
    ekg_cluster_match_input_t in = port("shop", "cart", "http", NULL, name, sizeof(name));
    envoy_config_cluster_v3_Cluster *c = apply(cfg, &in, arena);
    assert_int_equal(envoy_config_cluster_v3_Cluster_type(c), envoy_config_cluster_v3_Cluster_EDS);
    assert_int_equal(google_protobuf_Duration_seconds(envoy_config_cluster_v3_Cluster_connect_timeout(c)), 1);

    ekg_config_t *again = NULL;
    assert_int_equal(ekg_config_default(&again, NULL), EKG_OK);
    assert_int_equal(ekg_config_hash(cfg), ekg_config_hash(again));
    ekg_config_free(again);
    ekg_config_free(cfg);
}

/* An empty file, a file of comments and a bare apiVersion all mean the built-in config. */
static void test_zero_documents(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *def = NULL;
    assert_int_equal(ekg_config_default(&def, NULL), EKG_OK);
    const char *inputs[] = {"", "# nothing here\n\n", "---\n", "apiVersion: v1alpha\n",
                            "apiVersion: v1alpha\ncluster_config:\nendpoint_config: ~\n"};
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        ekg_config_t *cfg = parse_ok(inputs[i]);
        check_defaults(cfg, arena);
        assert_int_equal(ekg_config_hash(cfg), ekg_config_hash(def));
        ekg_config_free(cfg);
    }
    ekg_config_free(def);
}

static void test_multiple_documents(void **state)
{
    expect_error("apiVersion: v1alpha\n---\napiVersion: v1alpha\n",
                 SRC ":3: expected one YAML document, found 2 (remove the extra `---`)");
}

/* JSON works too (positions are unknown then, so messages have no line). */
static void test_json_input(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg =
        parse_ok("{\"apiVersion\":\"v1alpha\",\"cluster_config\":{\"base\":{\"connectTimeout\":\"3s\"}}}");
    assert_cluster(ekg_config_base_cluster(cfg), "{\"connectTimeout\":\"3s\"}", arena);
    ekg_config_free(cfg);
    expect_error("{\"apiVersion\":\"v1alpha\",\"cluster_confi\":{}}",
                 SRC ": cluster_confi: unknown key (expected apiVersion, cluster_config, endpoint_config, "
                     "cluster_domain)");
}

/* --- the original ekglue's example config ------------------------------------------------------------- */

static const char original_example[] =
    "apiVersion: v1alpha\n"
    "endpoint_config:\n"
    "    include_not_ready: true\n"
    "    locality:\n"
    "        region_from:\n"
    "            label: topology.kubernetes.io/region\n"
    "        zone_from:\n"
    "            use_hostname: true\n"
    "cluster_config:\n"
    "    base:\n"
    "        connect_timeout: 1s\n"
    "        lb_policy: RANDOM\n"
    "        circuit_breakers:\n"
    "            thresholds:\n"
    "                - track_remaining: true\n"
    "        outlier_detection:\n"
    "            success_rate_minimum_hosts: 2\n"
    "        type: EDS\n"
    "        upstream_connection_options:\n"
    "            tcp_keepalive: {}\n"
    "        common_lb_config:\n"
    "            zone_aware_lb_config:\n"
    "                routing_enabled:\n"
    "                    value: 100.0\n"
    "                min_cluster_size: 1\n"
    "        eds_cluster_config:\n"
    "            eds_config:\n"
    "                resource_api_version: V3\n"
    "                api_config_source:\n"
    "                    api_type: GRPC\n"
    "                    transport_api_version: V3\n"
    "                    grpc_services:\n"
    "                        - envoy_grpc:\n"
    "                              cluster_name: discovery:ekglue:grpc\n"
    "    overrides:\n"
    "        - match:\n"
    "              - port_name: h2\n"
    "          override:\n"
    "              typed_extension_protocol_options:\n"
    "                  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
    "                      \"@type\": "
    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n"
    "                      explicit_http_config:\n"
    "                          http2_protocol_options: {}\n"
    "        - match:\n"
    "              - port_name: https\n"
    "          override:\n"
    "              transport_socket:\n"
    "                  name: envoy.transport_sockets.tls\n"
    "                  typed_config:\n"
    "                      \"@type\": "
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n"
    "                      common_tls_context:\n"
    "                          alpn_protocols: [\"http/1.1\"]\n"
    "                          tls_certificate_sds_secret_configs:\n"
    "                              - name: \"client\"\n"
    "                                sds_config:\n"
    "                                    resource_api_version: V3\n"
    "                                    path: /etc/envoy/client-sds.yaml\n"
    "        - match:\n"
    "              - cluster_name: www:www-jrock-us:h2\n"
    "          override:\n"
    "              http2_protocol_options: {}\n"
    "              max_requests_per_connection: 999\n"
    "              health_checks:\n"
    "                  - timeout: 1s\n"
    "                    interval: 4s\n"
    "                    healthy_threshold: 1\n"
    "                    unhealthy_threshold: 2\n"
    "                    http_health_check:\n"
    "                        host: \"www.jrock.us\"\n"
    "                        path: \"/nginx-health-check\"\n"
    "                        codec_client_type: HTTP2\n"
    "        - match:\n"
    "              - cluster_name: monitoring:prometheus-operated:web\n"
    "              - cluster_name: monitoring:alertmanager-operated:web\n"
    "          override:\n"
    "              health_checks:\n"
    "                  - timeout: 1s\n"
    "                    interval: 4s\n"
    "                    healthy_threshold: 1\n"
    "                    unhealthy_threshold: 2\n"
    "                    http_health_check:\n"
    "                        path: \"/-/healthy\"\n";

static void test_original_example(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = parse_ok(original_example);
    assert_int_equal(ekg_config_rule_count(cfg), 4);
    assert_true(ekg_config_include_not_ready(cfg));
    const ekg_locality_rules_t *loc = ekg_config_locality_rules(cfg);
    assert_int_equal(loc->region.kind, EKG_LOCALITY_LABEL);
    assert_string_equal(loc->region.value, "topology.kubernetes.io/region");
    assert_int_equal(loc->zone.kind, EKG_LOCALITY_HOSTNAME);
    assert_int_equal(loc->sub_zone.kind, EKG_LOCALITY_NONE); /* a locality section is taken as written */
    assert_string_equal(ekg_config_cluster_domain(cfg), "cluster.local");

    const envoy_config_cluster_v3_Cluster *base = ekg_config_base_cluster(cfg);
    assert_int_equal(envoy_config_cluster_v3_Cluster_lb_policy(base), envoy_config_cluster_v3_Cluster_RANDOM);
    assert_int_equal(envoy_config_cluster_v3_Cluster_type(base), envoy_config_cluster_v3_Cluster_EDS);

    char name[128];
    /* port h2: HTTP/2 through typed_extension_protocol_options (a type ekglue adds to libgrpc's pool) */
    ekg_cluster_match_input_t in = port("shop", "cart", "h2", NULL, name, sizeof(name));
    envoy_config_cluster_v3_Cluster *c = apply(cfg, &in, arena);
    assert_int_equal(envoy_config_cluster_v3_Cluster_typed_extension_protocol_options_size(c), 1);
    struct google_protobuf_Any *any = NULL;
    assert_true(envoy_config_cluster_v3_Cluster_typed_extension_protocol_options_get(
        c, upb_StringView_FromString("envoy.extensions.upstreams.http.v3.HttpProtocolOptions"), &any));
    upb_StringView url = google_protobuf_Any_type_url(any);
    char urlbuf[128];
    snprintf(urlbuf, sizeof(urlbuf), "%.*s", (int)url.size, url.data);
    assert_string_equal(urlbuf, "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions");
    assert_false(envoy_config_cluster_v3_Cluster_has_transport_socket(c));

    /* port https: TLS with an UpstreamTlsContext in an Any */
    in = port("shop", "cart", "https", NULL, name, sizeof(name));
    c = apply(cfg, &in, arena);
    const struct envoy_config_core_v3_TransportSocket *ts =
        envoy_config_cluster_v3_Cluster_transport_socket(c);
    assert_non_null(ts);
    url = google_protobuf_Any_type_url(envoy_config_core_v3_TransportSocket_typed_config(ts));
    snprintf(urlbuf, sizeof(urlbuf), "%.*s", (int)url.size, url.data);
    assert_string_equal(urlbuf,
                        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext");
    assert_int_equal(envoy_config_cluster_v3_Cluster_typed_extension_protocol_options_size(c), 0);

    /* a named cluster on port h2: both the h2 rule and its own rule (the old http2_protocol_options way) */
    ekg_cluster_match_input_t www = {"www:www-jrock-us:h2", "www", "www-jrock-us", "h2", NULL};
    c = apply(cfg, &www, arena);
    assert_true(envoy_config_cluster_v3_Cluster_has_http2_protocol_options(c));
    assert_int_equal(envoy_config_cluster_v3_Cluster_typed_extension_protocol_options_size(c), 1);
    assert_int_equal(
        google_protobuf_UInt32Value_value(envoy_config_cluster_v3_Cluster_max_requests_per_connection(c)),
        999);
    size_t n = 0;
    envoy_config_cluster_v3_Cluster_health_checks(c, &n);
    assert_int_equal(n, 1);

    /* the second of two OR'd matchers */
    ekg_cluster_match_input_t am = {"monitoring:alertmanager-operated:web", "monitoring",
                                    "alertmanager-operated", "web", NULL};
    c = apply(cfg, &am, arena);
    envoy_config_cluster_v3_Cluster_health_checks(c, &n);
    assert_int_equal(n, 1);
    ekg_config_free(cfg);
}

/* --- merging ------------------------------------------------------------------------------------------ */

static const char merge_config[] =
    "apiVersion: v1alpha\n"
    "cluster_config:\n"
    "  base:\n"
    "    type: EDS\n"
    "    eds_cluster_config: {eds_config: {ads: {}, resource_api_version: V3}}\n"
    "    connect_timeout: 1s\n"
    "    lb_policy: RANDOM\n"
    "    dns_lookup_family: V4_ONLY\n"
    "    per_connection_buffer_limit_bytes: 32768\n"
    "    health_checks: [{timeout: 1s, interval: 5s, healthy_threshold: 1, unhealthy_threshold: 2,\n"
    "                     tcp_health_check: {}}]\n"
    "    common_lb_config:\n"
    "      healthy_panic_threshold: {value: 50}\n"
    "      zone_aware_lb_config: {min_cluster_size: 3}\n"
    "    typed_extension_protocol_options:\n"
    "      a.b: {'@type': type.googleapis.com/google.protobuf.Struct, value: {x: 1}}\n"
    "  overrides:\n"
    "    - match: [{port_name: http}]\n"
    "      override:\n"
    "        connectTimeout: 0.25s\n" /* lowerCamel works too */
    "        lb_policy: LEAST_REQUEST\n"
    "        per_connection_buffer_limit_bytes: 0\n"
    "        health_checks: [{timeout: 2s, interval: 10s, healthy_threshold: 1, unhealthy_threshold: 2,\n"
    "                         tcp_health_check: {}}]\n"
    "        common_lb_config: {zone_aware_lb_config: {routing_enabled: {value: 10}}}\n"
    "        typed_extension_protocol_options:\n"
    "          c.d: {'@type': type.googleapis.com/google.protobuf.Struct, value: {y: 2}}\n"
    "    - match: [{port_name: http}]\n"
    "      override: {lb_policy: MAGLEV}\n"
    "    - match: [{port_name: agg}]\n"
    "      override:\n"
    "        cluster_type:\n"
    "          name: envoy.clusters.aggregate\n"
    "          typed_config:\n"
    "            '@type': type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig\n"
    "            clusters: [a, b]\n";

static void test_merge(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = parse_ok(merge_config);
    char name[128];
    ekg_cluster_match_input_t in = port("shop", "cart", "http", NULL, name, sizeof(name));
    envoy_config_cluster_v3_Cluster *c = apply(cfg, &in, arena);

    /* Duration replaced whole: 0.25s, not 1.25s */
    const struct google_protobuf_Duration *timeout = envoy_config_cluster_v3_Cluster_connect_timeout(c);
    assert_int_equal(google_protobuf_Duration_seconds(timeout), 0);
    assert_int_equal(google_protobuf_Duration_nanos(timeout), 250000000);
    /* a wrapper set to 0 in the override replaces 32768 (a field-wise merge would keep it) */
    assert_true(envoy_config_cluster_v3_Cluster_has_per_connection_buffer_limit_bytes(c));
    assert_int_equal(google_protobuf_UInt32Value_value(
                         envoy_config_cluster_v3_Cluster_per_connection_buffer_limit_bytes(c)),
                     0);
    assert_cluster(
        c,
        "{\"type\":\"EDS\",\"edsClusterConfig\":{\"edsConfig\":{\"ads\":{},\"resourceApiVersion\":\"V3\"}},"
        " \"connectTimeout\":\"0.250s\","
        " \"lbPolicy\":\"MAGLEV\","         /* scalars: last rule wins */
        " \"dnsLookupFamily\":\"V4_ONLY\"," /* untouched */
        " \"perConnectionBufferLimitBytes\":0,"
        " \"healthChecks\":[{\"timeout\":\"1s\",\"interval\":\"5s\",\"unhealthyThreshold\":2,"
        "                   \"healthyThreshold\":1,\"tcpHealthCheck\":{}},"
        "                  {\"timeout\":\"2s\",\"interval\":\"10s\",\"unhealthyThreshold\":2,"
        "                   \"healthyThreshold\":1,\"tcpHealthCheck\":{}}]," /* appended */
        " \"commonLbConfig\":{\"healthyPanicThreshold\":{\"value\":50},"     /* merged */
        "   \"zoneAwareLbConfig\":{\"minClusterSize\":\"3\",\"routingEnabled\":{\"value\":10}}},"
        " \"typedExtensionProtocolOptions\":{" /* by key */
        "   \"a.b\":{\"@type\":\"type.googleapis.com/google.protobuf.Struct\",\"value\":{\"x\":1}},"
        "   \"c.d\":{\"@type\":\"type.googleapis.com/google.protobuf.Struct\",\"value\":{\"y\":2}}}}",
        arena);

    /* a oneof member in an override replaces the other member */
    in = port("shop", "cart", "agg", NULL, name, sizeof(name));
    c = apply(cfg, &in, arena);
    assert_int_equal(envoy_config_cluster_v3_Cluster_cluster_discovery_type_case(c),
                     envoy_config_cluster_v3_Cluster_cluster_discovery_type_cluster_type);
    assert_false(envoy_config_cluster_v3_Cluster_has_type(c));

    /* the config itself is never changed by applying it */
    in = port("shop", "cart", "grpc", NULL, name, sizeof(name));
    c = apply(cfg, &in, arena);
    assert_int_equal(google_protobuf_Duration_seconds(envoy_config_cluster_v3_Cluster_connect_timeout(c)), 1);
    assert_int_equal(envoy_config_cluster_v3_Cluster_lb_policy(c), envoy_config_cluster_v3_Cluster_RANDOM);
    assert_int_equal(google_protobuf_Duration_seconds(
                         envoy_config_cluster_v3_Cluster_connect_timeout(ekg_config_base_cluster(cfg))),
                     1);
    ekg_config_free(cfg);
}

/* A base in the file replaces the built-in base whole; without one, the built-in base stays. */
static void test_base_replaced_whole(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = parse_ok("apiVersion: v1alpha\ncluster_config:\n  base:\n    connect_timeout: 2s\n");
    assert_cluster(ekg_config_base_cluster(cfg), "{\"connectTimeout\":\"2s\"}", arena);
    ekg_config_free(cfg);

    cfg = parse_ok("apiVersion: v1alpha\ncluster_config:\n  overrides:\n"
                   "    - {match: [{port_name: x}], override: {connect_timeout: 2s}}\n");
    assert_cluster(
        ekg_config_base_cluster(cfg),
        "{\"type\":\"EDS\",\"edsClusterConfig\":{\"edsConfig\":{\"ads\":{},\"resourceApiVersion\":\"V3\"}},"
        "\"connectTimeout\":\"1s\"}",
        arena);
    ekg_config_free(cfg);
}

/* --- suppression -------------------------------------------------------------------------------------- */

static void test_suppress(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = parse_ok("apiVersion: v1alpha\n"
                                 "cluster_config:\n"
                                 "  overrides:\n"
                                 "    - match: [{port_name: metrics}]\n"
                                 "      override: {connect_timeout: 3s}\n"
                                 "    - match: [{port_name: metrics}, {cluster_name: 'shop:db:5432'}]\n"
                                 "      suppress: true\n");
    char name[128];
    ekg_cluster_match_input_t in = port("shop", "cart", "metrics", NULL, name, sizeof(name));
    assert_null(apply(cfg, &in, arena));
    in = port("shop", "db", "5432", NULL, name, sizeof(name));
    assert_null(apply(cfg, &in, arena));
    in = port("shop", "cart", "http", NULL, name, sizeof(name));
    assert_non_null(apply(cfg, &in, arena));
    ekg_config_free(cfg);
}

static void test_kubernetes_suppressed(void **state)
{
    upb_Arena *arena = *state;
    ekg_cluster_match_input_t api = {"default:kubernetes:https", "default", "kubernetes", "https", NULL};
    ekg_cluster_match_input_t other_ns = {"other:kubernetes:https", "other", "kubernetes", "https", NULL};

    ekg_config_t *cfg = NULL;
    assert_int_equal(ekg_config_default(&cfg, NULL), EKG_OK);
    assert_null(apply(cfg, &api, arena));
    assert_non_null(apply(cfg, &other_ns, arena));
    ekg_config_free(cfg);

    /* rules that match without naming it do not bring it back */
    cfg = parse_ok("apiVersion: v1alpha\ncluster_config:\n  overrides:\n"
                   "    - {match: [{port_name: https}], override: {connect_timeout: 3s}}\n"
                   "    - {match: [{namespace: default}], override: {connect_timeout: 3s}}\n");
    assert_null(apply(cfg, &api, arena));
    ekg_config_free(cfg);

    const char *explicit_rules[] = {
        "apiVersion: v1alpha\ncluster_config:\n  overrides:\n"
        "    - {match: [{cluster_name: 'default:kubernetes:https'}], override: {connect_timeout: 3s}}\n",
        "apiVersion: v1alpha\ncluster_config:\n  overrides:\n"
        "    - {match: [{namespace: default, service: kubernetes}], override: {connect_timeout: 3s}}\n",
        "apiVersion: v1alpha\ncluster_config:\n  overrides:\n"
        "    - {match: [{port_name: nope}, {service: kubernetes}], override: {connect_timeout: 3s}}\n",
    };
    for (size_t i = 0; i < sizeof(explicit_rules) / sizeof(explicit_rules[0]); i++) {
        cfg = parse_ok(explicit_rules[i]);
        envoy_config_cluster_v3_Cluster *c = apply(cfg, &api, arena);
        assert_non_null(c);
        assert_int_equal(google_protobuf_Duration_seconds(envoy_config_cluster_v3_Cluster_connect_timeout(c)),
                         3);
        ekg_config_free(cfg);
    }

    /* a matching suppress rule wins even over an explicit override */
    cfg = parse_ok("apiVersion: v1alpha\ncluster_config:\n  overrides:\n"
                   "    - {match: [{service: kubernetes}], override: {connect_timeout: 3s}}\n"
                   "    - {match: [{port_name: https}], suppress: true}\n");
    assert_null(apply(cfg, &api, arena));
    ekg_config_free(cfg);
}

/* --- matchers ----------------------------------------------------------------------------------------- */

static void test_matchers(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = parse_ok("apiVersion: v1alpha\n"
                                 "cluster_config:\n"
                                 "  base: {connect_timeout: 1s}\n"
                                 "  overrides:\n"
                                 "    - match: [{namespace: shop, service: cart}]\n" /* AND */
                                 "      override: {lb_policy: RANDOM}\n"
                                 "    - match: [{app_protocol: kubernetes.io/h2c}]\n"
                                 "      override: {http2_protocol_options: {}}\n"
                                 "    - match: [{port_name: ''}]\n" /* unnamed ports only */
                                 "      override: {dns_lookup_family: V4_ONLY}\n"
                                 "    - match: [{namespace: shop}, {service: db}]\n" /* OR */
                                 "      override: {per_connection_buffer_limit_bytes: 1}\n");
    char name[128];
    ekg_cluster_match_input_t in = port("shop", "cart", "http", NULL, name, sizeof(name));
    envoy_config_cluster_v3_Cluster *c = apply(cfg, &in, arena);
    assert_cluster(
        c, "{\"connectTimeout\":\"1s\",\"lbPolicy\":\"RANDOM\",\"perConnectionBufferLimitBytes\":1}", arena);

    in = port("shop", "frontend", "http", "kubernetes.io/h2c", name, sizeof(name));
    c = apply(cfg, &in, arena);
    assert_cluster(
        c, "{\"connectTimeout\":\"1s\",\"http2ProtocolOptions\":{},\"perConnectionBufferLimitBytes\":1}",
        arena);

    in = port("other", "cart", "", NULL, name, sizeof(name));
    c = apply(cfg, &in, arena);
    assert_cluster(c, "{\"connectTimeout\":\"1s\",\"dnsLookupFamily\":\"V4_ONLY\"}", arena);

    in = port("other", "db", "http", "http", name, sizeof(name));
    c = apply(cfg, &in, arena);
    assert_cluster(c, "{\"connectTimeout\":\"1s\",\"perConnectionBufferLimitBytes\":1}", arena);

    in = port("other", "web", "http", NULL, name, sizeof(name));
    c = apply(cfg, &in, arena);
    assert_cluster(c, "{\"connectTimeout\":\"1s\"}", arena);
    ekg_config_free(cfg);
}

/* --- endpoint config ---------------------------------------------------------------------------------- */

static void test_locality(void **state)
{
    ekg_config_t *cfg = parse_ok("apiVersion: v1alpha\n"
                                 "endpoint_config:\n"
                                 "  locality:\n"
                                 "    region_from: {literal: eu-west}\n"
                                 "    zone_from: {label: example.com/rack}\n"
                                 "    sub_zone_from: {use_hostname: true}\n"
                                 "cluster_domain: corp.example\n");
    const ekg_locality_rules_t *loc = ekg_config_locality_rules(cfg);
    assert_int_equal(loc->region.kind, EKG_LOCALITY_LITERAL);
    assert_string_equal(loc->region.value, "eu-west");
    assert_int_equal(loc->zone.kind, EKG_LOCALITY_LABEL);
    assert_string_equal(loc->zone.value, "example.com/rack");
    assert_int_equal(loc->sub_zone.kind, EKG_LOCALITY_HOSTNAME);
    assert_null(loc->sub_zone.value);
    assert_false(ekg_config_include_not_ready(cfg));
    assert_string_equal(ekg_config_cluster_domain(cfg), "corp.example");
    ekg_config_free(cfg);

    /* an empty locality section turns locality off; an absent one keeps the defaults */
    cfg = parse_ok("apiVersion: v1alpha\nendpoint_config:\n  locality: {}\n");
    loc = ekg_config_locality_rules(cfg);
    assert_int_equal(loc->region.kind, EKG_LOCALITY_NONE);
    assert_int_equal(loc->zone.kind, EKG_LOCALITY_NONE);
    assert_int_equal(loc->sub_zone.kind, EKG_LOCALITY_NONE);
    ekg_config_free(cfg);
    cfg = parse_ok("apiVersion: v1alpha\nendpoint_config:\n  include_not_ready: true\n");
    loc = ekg_config_locality_rules(cfg);
    assert_int_equal(loc->region.kind, EKG_LOCALITY_LABEL);
    assert_int_equal(loc->zone.kind, EKG_LOCALITY_LABEL);
    assert_true(ekg_config_include_not_ready(cfg));
    ekg_config_free(cfg);
}

/* endpoint_config.zone_priorities (auto by default) and overprovisioning_factor (unset = 0: no policy,
 * Envoy's 140); docs/config.md. */
static void test_zone_priorities_and_overprovisioning(void **state)
{
    ekg_config_t *cfg = parse_ok("apiVersion: v1alpha\n");
    assert_int_equal(ekg_config_zone_priorities(cfg), EKG_ZONE_PRIORITIES_AUTO);
    assert_int_equal(ekg_config_overprovisioning_factor(cfg), 0);
    unsigned long long unset_hash = ekg_config_hash(cfg);
    ekg_config_free(cfg);
    assert_int_equal(ekg_config_default(&cfg, &(ekg_diag_t){{0}}), EKG_OK);
    assert_int_equal(ekg_config_zone_priorities(cfg), EKG_ZONE_PRIORITIES_AUTO);
    assert_int_equal(ekg_config_overprovisioning_factor(cfg), 0);
    ekg_config_free(cfg);

    static const struct {
        const char *value;
        ekg_zone_priorities_t want;
    } modes[] = {{"auto", EKG_ZONE_PRIORITIES_AUTO},
                 {"always", EKG_ZONE_PRIORITIES_ALWAYS},
                 {"never", EKG_ZONE_PRIORITIES_NEVER}};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        char yaml[128];
        snprintf(yaml, sizeof(yaml), "apiVersion: v1alpha\nendpoint_config:\n  zone_priorities: %s\n",
                 modes[i].value);
        cfg = parse_ok(yaml);
        assert_int_equal(ekg_config_zone_priorities(cfg), modes[i].want);
        /* auto written out is the default; the others change what translation makes. */
        if (modes[i].want == EKG_ZONE_PRIORITIES_AUTO)
            assert_int_equal(ekg_config_hash(cfg), unset_hash);
        else
            assert_int_not_equal(ekg_config_hash(cfg), unset_hash);
        ekg_config_free(cfg);
    }

    static const struct {
        const char *value;
        uint32_t want;
    } factors[] = {{"140", 140}, {"1", 1}, {"200", 200}, {"4294967295", 4294967295u}, {"100.0", 100}};
    for (size_t i = 0; i < sizeof(factors) / sizeof(factors[0]); i++) {
        char yaml[128];
        snprintf(yaml, sizeof(yaml), "apiVersion: v1alpha\nendpoint_config:\n  overprovisioning_factor: %s\n",
                 factors[i].value);
        cfg = parse_ok(yaml);
        assert_int_equal(ekg_config_overprovisioning_factor(cfg), factors[i].want);
        /* Even 140, Envoy's default, is sent once written: the hash says the output differs. */
        assert_int_not_equal(ekg_config_hash(cfg), unset_hash);
        ekg_config_free(cfg);
    }
    /* With the other endpoint_config keys, in any order. */
    cfg = parse_ok("apiVersion: v1alpha\n"
                   "endpoint_config:\n"
                   "  overprovisioning_factor: 150\n"
                   "  locality: {zone_from: {label: example.com/zone}}\n"
                   "  zone_priorities: never\n"
                   "  include_not_ready: true\n");
    assert_int_equal(ekg_config_zone_priorities(cfg), EKG_ZONE_PRIORITIES_NEVER);
    assert_int_equal(ekg_config_overprovisioning_factor(cfg), 150);
    assert_true(ekg_config_include_not_ready(cfg));
    assert_string_equal(ekg_config_locality_rules(cfg)->zone.value, "example.com/zone");
    ekg_config_free(cfg);
}

/* --- errors ------------------------------------------------------------------------------------------- */

static void test_errors_schema(void **state)
{
    expect_error("cluster_config: {}\n",
                 SRC ":1: apiVersion: missing; this version of ekglue reads apiVersion: v1alpha");
    expect_error("apiVersion: v1\n", SRC ":1: apiVersion: unsupported version \"v1\"; expected v1alpha");
    expect_error("apiVersion: 1\n", SRC ":1: apiVersion: unsupported version a number; expected v1alpha");
    expect_error("- apiVersion: v1alpha\n", SRC ":1: expected a mapping, got a list");
    expect_error("apiVersion: v1alpha\nclusterConfig: {}\n",
                 SRC ":2: clusterConfig: unknown key (expected apiVersion, cluster_config, endpoint_config, "
                     "cluster_domain)");
    expect_error("apiVersion: v1alpha\n"
                 "endpoint_config:\n"
                 "  locality:\n"
                 "    zone_frm: {label: x}\n",
                 SRC ":4: endpoint_config.locality.zone_frm: unknown key (expected region_from, zone_from, "
                     "sub_zone_from)");
    expect_error("apiVersion: v1alpha\nendpoint_config:\n  include_not_ready: yes\n",
                 SRC ":3: endpoint_config.include_not_ready: expected true or false, got a string");
    expect_error("apiVersion: v1alpha\nendpoint_config: [1]\n",
                 SRC ":2: endpoint_config: expected a mapping, got a list");
    expect_error("apiVersion: v1alpha\ncluster_config:\n  overrides: {}\n",
                 SRC ":3: cluster_config.overrides: expected a list of rules, got a mapping");
    expect_error(
        "apiVersion: v1alpha\ncluster_domain: .cluster.local\n",
        SRC ":2: cluster_domain: expected a DNS domain such as cluster.local (no leading or trailing dot)");
    expect_error("apiVersion: v1alpha\ncluster_domain: 5\n",
                 SRC ":2: cluster_domain: expected a string, got a number");
}

static void test_errors_zone_config(void **state)
{
    const char *head = "apiVersion: v1alpha\nendpoint_config:\n";
    struct {
        const char *line;
        const char *want;
    } cases[] = {
        {"  zone_priorities: sometimes\n",
         SRC ":3: endpoint_config.zone_priorities: expected auto, always or never, got sometimes"},
        {"  zone_priorities: Always\n",
         SRC ":3: endpoint_config.zone_priorities: expected auto, always or never, got Always"},
        {"  zone_priorities: ''\n",
         SRC ":3: endpoint_config.zone_priorities: expected auto, always or never, got "},
        {"  zone_priorities: true\n",
         SRC ":3: endpoint_config.zone_priorities: expected auto, always or never, got a boolean"},
        {"  zone_priorities: [auto]\n",
         SRC ":3: endpoint_config.zone_priorities: expected auto, always or never, got a list"},
        {"  overprovisioning_factor: 0\n",
         SRC ":3: endpoint_config.overprovisioning_factor: expected a whole number from 1 to 4294967295 "
             "(percent: Envoy's default is 140), got 0"},
        {"  overprovisioning_factor: -1\n",
         SRC ":3: endpoint_config.overprovisioning_factor: expected a whole number from 1 to 4294967295 "
             "(percent: Envoy's default is 140), got -1"},
        {"  overprovisioning_factor: 4294967296\n",
         SRC ":3: endpoint_config.overprovisioning_factor: expected a whole number from 1 to 4294967295 "
             "(percent: Envoy's default is 140), got 4294967296"},
        {"  overprovisioning_factor: 1.5\n",
         SRC ":3: endpoint_config.overprovisioning_factor: expected a whole number from 1 to 4294967295 "
             "(percent: Envoy's default is 140), got 1.5"},
        {"  overprovisioning_factor: x\n",
         SRC ":3: endpoint_config.overprovisioning_factor: expected a whole number from 1 to 4294967295 "
             "(percent: Envoy's default is 140), got a string"},
        {"  overprovisioning_factor: '140'\n",
         SRC ":3: endpoint_config.overprovisioning_factor: expected a whole number from 1 to 4294967295 "
             "(percent: Envoy's default is 140), got a string"},
        {"  overprovisioning_factor: {value: 140}\n",
         SRC ":3: endpoint_config.overprovisioning_factor: expected a whole number from 1 to 4294967295 "
             "(percent: Envoy's default is 140), got a mapping"},
        {"  include_not_ready: false\n  zone_priority: always\n",
         SRC ":4: endpoint_config.zone_priority: unknown key (expected include_not_ready, locality, "
             "zone_priorities, overprovisioning_factor)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml), "%s%s", head, cases[i].line);
        expect_error(yaml, cases[i].want);
    }
}

static void test_errors_rules(void **state)
{
    const char *head = "apiVersion: v1alpha\ncluster_config:\n  overrides:\n"
                       "    - match: [{port_name: ok}]\n      suppress: true\n";
    struct {
        const char *rule;
        const char *want;
    } cases[] = {
        {"    - match: [{port_name: a}]\n      override: {}\n      suppress: true\n",
         SRC ":6: cluster_config.overrides[1]: a rule needs exactly one of override or suppress"},
        {"    - match: [{port_name: a}]\n",
         SRC ":6: cluster_config.overrides[1]: a rule needs exactly one of override or suppress"},
        {"    - match: [{port_name: a}]\n      suppress: false\n",
         SRC ":7: cluster_config.overrides[1].suppress: suppress: false is meaningless; use override (or "
             "drop the "
             "rule)"},
        {"    - match: [{port_name: a}]\n      suppress: 1\n",
         SRC ":7: cluster_config.overrides[1].suppress: expected true, got a number"},
        {"    - override: {}\n", SRC ":6: cluster_config.overrides[1]: a rule needs a match list"},
        {"    - match: []\n      suppress: true\n",
         SRC ":6: cluster_config.overrides[1].match: a rule needs at least one matcher"},
        {"    - match: {port_name: a}\n      suppress: true\n",
         SRC ":6: cluster_config.overrides[1].match: expected a list of matchers, got a mapping"},
        {"    - match:\n      - {}\n      suppress: true\n",
         SRC ":7: cluster_config.overrides[1].match[0]: an empty matcher would match every cluster; give at "
             "least one "
             "of cluster_name, port_name, namespace, service or app_protocol"},
        {"    - match:\n      - port_name: a\n      - port: 80\n      suppress: true\n",
         SRC ":8: cluster_config.overrides[1].match[1].port: unknown key (expected cluster_name, port_name, "
             "namespace, service, app_protocol)"},
        {"    - match:\n      - port_name: [a]\n      suppress: true\n",
         SRC ":7: cluster_config.overrides[1].match[0].port_name: expected a string, got a list"},
        {"    - match: [{port_name: a}]\n      overide: {}\n",
         SRC ":7: cluster_config.overrides[1].overide: unknown key (expected match, override, suppress)"},
        {"    - match: [{port_name: a}]\n      override: [connect_timeout]\n", SRC
         ":7: cluster_config.overrides[1].override: expected a mapping of envoy.config.cluster.v3.Cluster "
         "fields, got a list"},
        {"    - port_name: a\n",
         SRC ":6: cluster_config.overrides[1].port_name: unknown key (expected match, override, suppress)"},
        {"    - just a string\n", SRC ":6: cluster_config.overrides[1]: expected a mapping, got a string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[1024];
        snprintf(yaml, sizeof(yaml), "%s%s", head, cases[i].rule);
        expect_error(yaml, cases[i].want);
    }
}

static void test_errors_locality(void **state)
{
    const char *head = "apiVersion: v1alpha\nendpoint_config:\n  locality:\n";
    struct {
        const char *source;
        const char *want;
    } cases[] = {
        {"    region_from: {}\n", SRC
         ":4: endpoint_config.locality.region_from: a locality source needs exactly one of label, literal or "
         "use_hostname"},
        {"    zone_from: {label: a, literal: b}\n", SRC
         ":4: endpoint_config.locality.zone_from: a locality source needs exactly one of label, literal or "
         "use_hostname"},
        {"    zone_from:\n      use_hostname: false\n",
         SRC ":5: endpoint_config.locality.zone_from.use_hostname: use_hostname: false is meaningless; give "
             "label or "
             "literal, or leave the source out"},
        {"    sub_zone_from:\n      label: ''\n", SRC
         ":5: endpoint_config.locality.sub_zone_from.label: expected a Node label key, got an empty string"},
        {"    sub_zone_from:\n      lable: x\n", SRC ":5: endpoint_config.locality.sub_zone_from.lable: "
                                                     "unknown key (expected label, literal, use_hostname)"},
        {"    region_from: topology.kubernetes.io/region\n",
         SRC ":4: endpoint_config.locality.region_from: expected a mapping, got a string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml), "%s%s", head, cases[i].source);
        expect_error(yaml, cases[i].want);
    }
}

/*
 * Cluster decode errors carry upb's message, at the line and key path of the member that fails on its own
 * (the loader narrows upb's failure down), or at the Cluster's key when no single member fails.
 */
static void test_errors_cluster(void **state)
{
    expect_error(
        "apiVersion: v1alpha\ncluster_config:\n  base:\n    connect_timeout: 1s\n    bogus_field: 1\n",
        SRC ":5: cluster_config.base.bogus_field: No such field: bogus_field");
    expect_error("apiVersion: v1alpha\ncluster_config:\n  base:\n    connect_timeout: forever\n",
                 SRC ":4: cluster_config.base.connect_timeout: Malformed duration");
    expect_error("apiVersion: v1alpha\ncluster_config:\n  base:\n    lb_policy: NOT_A_POLICY\n",
                 SRC ":4: cluster_config.base.lb_policy: Unknown enumerator: 'NOT_A_POLICY'");
    expect_error("apiVersion: v1alpha\ncluster_config:\n  base:\n"
                 "    health_checks:\n"
                 "      - timeout: 1s\n"
                 "        interval: 2s\n"
                 "        http_health_check: {paht: /}\n",
                 SRC ":7: cluster_config.base.health_checks[0].http_health_check.paht: No such field: paht");
    expect_error("apiVersion: v1alpha\ncluster_config:\n  overrides:\n"
                 "    - match: [{port_name: a}]\n"
                 "      override:\n"
                 "        transport_socket:\n"
                 "          name: tls\n"
                 "          typed_config:\n"
                 "            '@type': "
                 "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n"
                 "            common_tls_context: {alpn_protocol: [h2]}\n",
                 SRC
                 ":10: cluster_config.overrides[0].override.transport_socket.typed_config.common_tls_context."
                 "alpn_protocol: No such field: alpn_protocol");
    expect_error(
        "apiVersion: v1alpha\ncluster_config:\n  overrides:\n"
        "    - match: [{port_name: a}]\n"
        "      override:\n"
        "        transport_socket:\n"
        "          name: tls\n"
        "          typed_config:\n"
        "            '@type': type.googleapis.com/example.NoSuchType\n",
        SRC ":9: cluster_config.overrides[0].override.transport_socket.typed_config.@type: unknown Any type "
            "\"type.googleapis.com/example.NoSuchType\" (not in ekglue's protobuf registry)");
    expect_error(
        "apiVersion: v1alpha\ncluster_config:\n  base: 5\n",
        SRC ":3: cluster_config.base: expected a mapping of envoy.config.cluster.v3.Cluster fields, got a "
            "number");
    /* two members of one oneof: each decodes alone, so the Cluster's key is named */
    expect_error_prefix("apiVersion: v1alpha\ncluster_config:\n  base:\n    type: EDS\n"
                        "    cluster_type: {name: x}\n",
                        SRC ":3: cluster_config.base: ");
}

/* --- Envoy's validation rules (docs/config.md, "Validation") ------------------------------------------ */

#define BASE "apiVersion: v1alpha\ncluster_config:\n  base:\n" /* the base's keys start on line 4 */
#define OVERRIDE                                                                                             \
    "apiVersion: v1alpha\ncluster_config:\n  overrides:\n    - match: [{port_name: grpc}]\n      "           \
    "override:\n"
#define HPO_TYPE "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
/* an override's HttpProtocolOptions (its mapping on line 7): its own keys start on line 9 */
#define HPO_OVERRIDE                                                                                         \
    OVERRIDE "        typed_extension_protocol_options:\n"                                                   \
             "          " HPO_TYPE ":\n"                                                                     \
             "            '@type': type.googleapis.com/" HPO_TYPE "\n"
#define HPO_PATH "cluster_config.overrides[0].override.typed_extension_protocol_options[\"" HPO_TYPE "\"]"

static int run_check_config(int argc, char **argv);

/* The two cases of issue 13: check-config, serve and dump refuse them with the line, the key and the rule. */
static void test_validation_issue_cases(void **state)
{
    (void)state;
    const char *streams = HPO_OVERRIDE "            explicit_http_config:\n"
                                       "              http2_protocol_options: {max_concurrent_streams: 0}\n";
    expect_error(streams,
                 SRC ":10: " HPO_PATH ".explicit_http_config.http2_protocol_options.max_concurrent_streams: "
                     "must be inside range [1, 2147483647]");
    /* the same in the base */
    expect_error(
        BASE "    typed_extension_protocol_options:\n"
             "      " HPO_TYPE ":\n"
             "        '@type': type.googleapis.com/" HPO_TYPE "\n"
             "        explicit_http_config:\n"
             "          http2_protocol_options:\n"
             "            max_concurrent_streams: 0\n",
        SRC ":9: cluster_config.base.typed_extension_protocol_options[\"" HPO_TYPE
            "\"].explicit_http_config.http2_protocol_options.max_concurrent_streams: must be inside range "
            "[1, 2147483647]");
    const char *timeout = BASE "    type: EDS\n    connect_timeout: -1s\n";
    expect_error(timeout, SRC ":5: cluster_config.base.connect_timeout: must be greater than 0s");
    /* lowerCamel keys are found too; the path names the field as Envoy does */
    expect_error(BASE "    connectTimeout: 0s\n",
                 SRC ":4: cluster_config.base.connect_timeout: must be greater than 0s");

    /* check-config exits 3 (a config error), not 1 */
    const char *cases[] = {streams, timeout};
    for (size_t i = 0; i < 2; i++) {
        char path[] = "/tmp/ekg-config-test-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        FILE *f = fdopen(fd, "w");
        fputs(cases[i], f);
        fclose(f);
        char *args[] = {"check-config", path, NULL};
        assert_int_equal(run_check_config(2, args), EKG_EXIT_CONFIG);
        unlink(path);
    }
}

/* One config per rule kind a Cluster can break, each at the line of the value (or of its parent when
 * missing). */
static void test_validation_rule_kinds(void **state)
{
    (void)state;
    /* message.required; duration.required */
    expect_error(BASE "    health_checks:\n"
                      "      - timeout: 1s\n"
                      "        interval: 2s\n"
                      "        healthy_threshold: 1\n"
                      "        tcp_health_check: {}\n",
                 SRC ":5: cluster_config.base.health_checks[0].unhealthy_threshold: is required");
    expect_error(BASE "    health_checks:\n"
                      "      - interval: 2s\n"
                      "        healthy_threshold: 1\n"
                      "        unhealthy_threshold: 1\n"
                      "        tcp_health_check: {}\n",
                 SRC ":5: cluster_config.base.health_checks[0].timeout: is required");
    /* string.min_len; uint32.lte; uint32.gt */
    const char *la =
        BASE "    type: STATIC\n"
             "    load_assignment:\n"
             "      cluster_name: x\n"
             "      endpoints:\n"
             "        - lb_endpoints:\n"
             "            - endpoint: {address: {socket_address: {address: '%s', port_value: %s}}}\n"
             "%s";
    char yaml[1024];
    snprintf(yaml, sizeof(yaml), la, "", "80", "");
    expect_error(yaml,
                 SRC ":9: cluster_config.base.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address."
                     "socket_address.address: length must be at least 1 runes");
    snprintf(yaml, sizeof(yaml), la, "10.0.0.1", "65536", "");
    expect_error(yaml,
                 SRC ":9: cluster_config.base.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address."
                     "socket_address.port_value: must be less than or equal to 65535");
    snprintf(yaml, sizeof(yaml), la, "10.0.0.1", "80", "      policy: {overprovisioning_factor: 0}\n");
    expect_error(yaml, SRC
                 ":10: cluster_config.base.load_assignment.policy.overprovisioning_factor: must be greater "
                 "than 0");
    snprintf(yaml, sizeof(yaml), la, "10.0.0.1", "80", "");
    ekg_config_free(parse_ok(yaml));
    /* string.max_bytes; repeated.max_items (HttpHealthCheck.request_headers_to_add: 1000) */
    const char *hc =
        BASE "    health_checks:\n"
             "      - {timeout: 1s, interval: 2s, healthy_threshold: 1, unhealthy_threshold: 1,\n"
             "         http_health_check: {path: /, request_headers_to_add: [%s]}}\n";
    char value[16386];
    memset(value, 'v', 16385);
    value[16385] = '\0';
    char *big = ekg_xasprintf("{header: {key: x, value: %s}}", value);
    char *text = ekg_xasprintf(hc, big);
    expect_error(text,
                 SRC ":6: cluster_config.base.health_checks[0].http_health_check.request_headers_to_add[0]."
                     "header.value: length must be at most 16384 bytes");
    free(text);
    free(big);
    size_t n = 0, cap = 1001 * 32 + 1;
    char *many = ekg_xmalloc(cap);
    for (int i = 0; i < 1001; i++)
        n += (size_t)snprintf(many + n, cap - n, "%s{header: {key: x, value: v}}", i ? ", " : "");
    text = ekg_xasprintf(hc, many);
    expect_error(text, SRC
                 ":6: cluster_config.base.health_checks[0].http_health_check.request_headers_to_add: must "
                 "contain no more than 1000 item(s)");
    free(text);
    free(many);
    /* string.well_known_regex: HTTP_HEADER_VALUE, not strict (no NUL, CR, LF) */
    expect_error(
        BASE "    health_checks:\n"
             "      - {timeout: 1s, interval: 2s, healthy_threshold: 1, unhealthy_threshold: 1,\n"
             "         http_health_check: {path: /, host: \"a\\rb\"}}\n",
        SRC ":6: cluster_config.base.health_checks[0].http_health_check.host: does not match regex pattern "
            "\"^[^\\u0000\\u000A\\u000D]*$\" (no NUL, CR or LF)");
    /* string.well_known_regex: HTTP_HEADER_NAME, strict */
    expect_error(
        HPO_OVERRIDE "            explicit_http_config: {http2_protocol_options: {}}\n"
                     "            upstream_http_protocol_options: {override_auto_sni_header: 'x host'}\n",
        SRC ":10: " HPO_PATH ".upstream_http_protocol_options.override_auto_sni_header: does not match regex "
            "pattern \"^:?[0-9a-zA-Z!#$%&'*+-.^_|~\\x60]+$\" (an HTTP header name)");
    /* uint32 gt and lt (an exclusive range) */
    expect_error(HPO_OVERRIDE "            auto_config:\n"
                              "              alternate_protocols_cache_options:\n"
                              "                name: cache\n"
                              "                prepopulated_entries: [{hostname: h, port: 65535}]\n",
                 SRC ":12: " HPO_PATH
                     ".auto_config.alternate_protocols_cache_options.prepopulated_entries[0].port: "
                     "must be inside range (0, 65535)");
    /* uint64.lte */
    expect_error(
        BASE "    lb_policy: RING_HASH\n    ring_hash_lb_config: {minimum_ring_size: 8388609}\n",
        SRC ":5: cluster_config.base.ring_hash_lb_config.minimum_ring_size: must be less than or equal to "
            "8388608");
    /* double gte and lte */
    expect_error(
        BASE "    preconnect_policy: {per_upstream_preconnect_ratio: 0.5}\n",
        SRC ":4: cluster_config.base.preconnect_policy.per_upstream_preconnect_ratio: must be inside range "
            "[1, 3]");
    /* enum.defined_only; repeated.items of enum.defined_only */
    expect_error(BASE "    lb_policy: 99\n",
                 SRC ":4: cluster_config.base.lb_policy: must be one of the defined enum values (got 99)");
    expect_error(
        BASE "    common_lb_config:\n      override_host_status: {statuses: [HEALTHY, 99]}\n",
        SRC ":5: cluster_config.base.common_lb_config.override_host_status.statuses[1]: must be one of the "
            "defined enum values (got 99)");
    /* enum.not_in, in an UpstreamTlsContext */
    expect_error(OVERRIDE "        transport_socket:\n"
                          "          name: tls\n"
                          "          typed_config:\n"
                          "            '@type': "
                          "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n"
                          "            common_tls_context:\n"
                          "              validation_context:\n"
                          "                match_typed_subject_alt_names:\n"
                          "                  - {san_type: SAN_TYPE_UNSPECIFIED, matcher: {exact: a}}\n",
                 SRC
                 ":13: cluster_config.overrides[0].override.transport_socket.typed_config.common_tls_context."
                 "validation_context.match_typed_subject_alt_names[0].san_type: must not be in list (got "
                 "SAN_TYPE_UNSPECIFIED)");
    /* repeated.min_items, in the aggregate cluster's config */
    expect_error(
        OVERRIDE
        "        cluster_type:\n"
        "          name: envoy.clusters.aggregate\n"
        "          typed_config:\n"
        "            '@type': type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig\n"
        "            clusters: []\n",
        SRC ":10: cluster_config.overrides[0].override.cluster_type.typed_config.clusters: must contain at "
            "least 1 item(s)");
    /* duration.gt (0.001s) */
    expect_error(BASE "    dns_refresh_rate: 0.001s\n",
                 SRC ":4: cluster_config.base.dns_refresh_rate: must be greater than 0.001s");
    /* any.required */
    expect_error(BASE "    upstream_config: {name: custom}\n",
                 SRC ":4: cluster_config.base.upstream_config.typed_config: is required");
    /* a required oneof (HttpProtocolOptions' protocol choice) */
    expect_error(HPO_OVERRIDE "            common_http_protocol_options: {idle_timeout: 60s}\n", SRC
                 ":7: " HPO_PATH ".upstream_protocol_options: is required (set one of explicit_http_config, "
                 "use_downstream_protocol_config, auto_config)");
    /* message.required in a repeated message, inside an Any */
    expect_error(HPO_OVERRIDE "            explicit_http_config:\n"
                              "              http2_protocol_options:\n"
                              "                custom_settings_parameters: [{value: 1}]\n",
                 SRC ":11: " HPO_PATH
                     ".explicit_http_config.http2_protocol_options.custom_settings_parameters[0]."
                     "identifier: is required");
    /* Envoy's own check of every Duration (update_merge_window has no rule of its own) */
    expect_error(BASE "    common_lb_config: {update_merge_window: -2s}\n", SRC
                 ":4: cluster_config.base.common_lb_config.update_merge_window: must not be negative (Envoy "
                 "checks every Duration: \"Expected positive duration\")");
    /* in an override, a repeated field's own elements come after the base's once merged: named as written */
    expect_error(
        "apiVersion: v1alpha\ncluster_config:\n  base:\n"
        "    health_checks: [{timeout: 1s, interval: 2s, healthy_threshold: 1, unhealthy_threshold: 1,\n"
        "                     tcp_health_check: {}}]\n"
        "  overrides:\n    - match: [{port_name: grpc}]\n      override:\n"
        "        health_checks: [{interval: 2s, healthy_threshold: 1, unhealthy_threshold: 1,\n"
        "                         tcp_health_check: {}}]\n",
        SRC ":9: cluster_config.overrides[0].override.health_checks[0].timeout: is required");
}

static void test_errors_yaml(void **state)
{
    expect_error_prefix("apiVersion: v1alpha\ncluster_config:\n  base: {\n", SRC ":");
    expect_error_prefix("apiVersion: v1alpha\napiVersion: v1alpha\n", SRC ":");
    ekg_config_t *cfg = NULL;
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_config_load_file("/nonexistent/ekglue.yaml", &cfg, &diag), EKG_EIO);
    assert_null(cfg);
    if (!strstr(diag.msg, "/nonexistent/ekglue.yaml"))
        fail_msg("\"%s\" does not name the file", diag.msg);
}

/* --- the hash ----------------------------------------------------------------------------------------- */

static void test_hash(void **state)
{
    const char *same[] = {
        "apiVersion: v1alpha\ncluster_config:\n  base: {connect_timeout: 1s, lb_policy: RANDOM}\n",
        "# a comment\napiVersion: v1alpha\ncluster_config:\n  base:\n    lbPolicy: RANDOM\n    "
        "connectTimeout: 1.000s\n",
    };
    const char *different[] = {
        "apiVersion: v1alpha\ncluster_config:\n  base: {connect_timeout: 2s, lb_policy: RANDOM}\n",
        "apiVersion: v1alpha\ncluster_config:\n  base: {connect_timeout: 1s, lb_policy: RANDOM}\n"
        "  overrides: [{match: [{port_name: a}], suppress: true}]\n",
        "apiVersion: v1alpha\ncluster_config:\n  base: {connect_timeout: 1s, lb_policy: RANDOM}\n"
        "  overrides: [{match: [{service: a}], suppress: true}]\n",
        "apiVersion: v1alpha\ncluster_config:\n  base: {connect_timeout: 1s, lb_policy: RANDOM}\n"
        "endpoint_config: {include_not_ready: true}\n",
        "apiVersion: v1alpha\ncluster_config:\n  base: {connect_timeout: 1s, lb_policy: RANDOM}\n"
        "endpoint_config: {locality: {}}\n",
        "apiVersion: v1alpha\ncluster_config:\n  base: {connect_timeout: 1s, lb_policy: RANDOM}\n"
        "cluster_domain: example\n",
    };
    ekg_config_t *a = parse_ok(same[0]), *b = parse_ok(same[1]);
    assert_int_equal(ekg_config_hash(a), ekg_config_hash(b));
    for (size_t i = 0; i < sizeof(different) / sizeof(different[0]); i++) {
        ekg_config_t *c = parse_ok(different[i]);
        assert_int_not_equal(ekg_config_hash(a), ekg_config_hash(c));
        ekg_config_free(c);
    }
    ekg_config_free(a);
    ekg_config_free(b);
}

/* --- ekglue check-config ------------------------------------------------------------------------------ */

/* Runs check-config with stdout and stderr sent to /dev/null; returns its exit code. */
static int run_check_config(int argc, char **argv)
{
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    FILE *null = fopen("/dev/null", "w");
    assert_non_null(null);
    dup2(fileno(null), 1);
    dup2(fileno(null), 2);
    int rc = ekg_cli_check_config(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    fclose(null);
    return rc;
}

static void test_check_config(void **state)
{
    char path[] = "/tmp/ekg-config-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(original_example, f);
    fclose(f);
    char bad[] = "/tmp/ekg-config-test-XXXXXX";
    fd = mkstemp(bad);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs("apiVersion: v2\n", f);
    fclose(f);

    char *ok_args[] = {"check-config", path, NULL};
    assert_int_equal(run_check_config(2, ok_args), EKG_EXIT_OK);
    char *bad_args[] = {"check-config", bad, NULL};
    assert_int_equal(run_check_config(2, bad_args), EKG_EXIT_CONFIG);
    char *missing_args[] = {"check-config", "/nonexistent/ekglue.yaml", NULL};
    assert_int_equal(run_check_config(2, missing_args), EKG_EXIT_CONFIG);
    char *help_args[] = {"check-config", "--help", NULL};
    assert_int_equal(run_check_config(2, help_args), EKG_EXIT_OK);
    char *no_args[] = {"check-config", NULL};
    assert_int_equal(run_check_config(1, no_args), EKG_EXIT_USAGE);
    char *two_args[] = {"check-config", path, bad, NULL};
    assert_int_equal(run_check_config(3, two_args), EKG_EXIT_USAGE);
    char *bad_option[] = {"check-config", "--frobnicate", path, NULL};
    assert_int_equal(run_check_config(3, bad_option), EKG_EXIT_USAGE);
    unlink(path);
    unlink(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default),
        cmocka_unit_test(test_zero_documents),
        cmocka_unit_test(test_multiple_documents),
        cmocka_unit_test(test_json_input),
        cmocka_unit_test(test_original_example),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_base_replaced_whole),
        cmocka_unit_test(test_suppress),
        cmocka_unit_test(test_kubernetes_suppressed),
        cmocka_unit_test(test_matchers),
        cmocka_unit_test(test_locality),
        cmocka_unit_test(test_zone_priorities_and_overprovisioning),
        cmocka_unit_test(test_errors_schema),
        cmocka_unit_test(test_errors_zone_config),
        cmocka_unit_test(test_errors_rules),
        cmocka_unit_test(test_errors_locality),
        cmocka_unit_test(test_errors_cluster),
        cmocka_unit_test(test_validation_issue_cases),
        cmocka_unit_test(test_validation_rule_kinds),
        cmocka_unit_test(test_errors_yaml),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_check_config),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    ekg_proto_shutdown();
    return failed;
}
