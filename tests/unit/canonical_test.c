/*
 * tests/unit/canonical_test.c: every resource ekglue emits is the canonical encoding of its message.
 *
 * Some resources are written by hand or spliced from shared bytes (proxyless listeners, clusters that share
 * one encoding); all must be byte-identical to what upb's deterministic encoder makes of the same message, or
 * the content hashes (and so the xDS versions) would depend on the code path. Each resource of the demo
 * cluster, translated under the built-in config and under a config with overrides, is decoded and re-encoded
 * here. So is every zone variant of a ClusterLoadAssignment (priorities, a policy with an overprovisioning
 * factor, UDP ports, weights and priorities of every varint size), as clients at several places get them
 * (docs/translation.md, "Zone-aware endpoints"). Thread: main.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "upb/decode.h"
#include "upb/encode.h"
#include "upb/reflection.h"

#include "envoy/config/endpoint/v3/endpoint.upb.h"
#include "envoy/config/endpoint/v3/endpoint_components.upb.h"

#include "ekglue/mem.h"
#include "ekglue/translate.h"
#include "ekglue/proto.h"

static const char *const type_names[] = {EKG_TYPE_CLUSTER, EKG_TYPE_LOAD_ASSIGNMENT, EKG_TYPE_LISTENER};

static const char overrides_config[] = "apiVersion: v1alpha\n"
                                       "cluster_config:\n"
                                       "  overrides:\n"
                                       "  - match: [{port_name: grpc}]\n"
                                       "    override:\n"
                                       "      typed_extension_protocol_options:\n"
                                       "        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
                                       "          '@type': type.googleapis.com/"
                                       "envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n"
                                       "          explicit_http_config: {http2_protocol_options: {}}\n"
                                       "  - match: [{namespace: infra}]\n"
                                       "    override: {connect_timeout: 0.25s, lb_policy: RING_HASH}\n";

static int setup(void **state)
{
    ekg_diag_t diag = {{0}};
    (void)state;
    return ekg_proto_init(&diag) == EKG_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    ekg_proto_shutdown();
    return 0;
}

/* Decodes r as the message m and re-encodes it with upb's deterministic encoder: the bytes must be the same.
 */
static void check_resource(const ekg_resource_t *r, const upb_MessageDef *m, const char *type_name)
{
    size_t len, len2;
    const char *data = ekg_resource_data(r, &len);
    upb_Arena *arena = upb_Arena_New();
    upb_Message *msg = upb_Message_New(m, arena);
    assert_int_equal(upb_Decode(data, len, msg, upb_MessageDef_MiniTable(m), NULL, 0, arena),
                     kUpb_DecodeStatus_Ok);
    char *again = NULL;
    assert_int_equal(ekg_proto_encode(msg, m, arena, &again, &len2), EKG_OK);
    if (len != len2 || memcmp(data, again, len) != 0)
        fail_msg("%s %s: %zu bytes emitted, canonical encoding has %zu or differs", type_name,
                 ekg_resource_name(r), len, len2);
    upb_Arena_Free(arena);
}

static void check_canonical(const ekg_config_t *cfg)
{
    char path[4096];
    const char *src = getenv("EKG_SOURCE_DIR");
    snprintf(path, sizeof(path), "%s/deploy/demo/cluster.yaml", src ? src : ".");
    ekg_diag_t diag = {{0}};
    ekg_objects_t objs = {0};
    ekg_translator_t *t = NULL;
    assert_int_equal(ekg_objects_add_file(&objs, path, &diag), EKG_OK);
    t = ekg_translator_new(cfg);
    ekg_translator_put_objects(t, &objs);
    assert_int_equal(ekg_translator_build(t, NULL, NULL), EKG_OK);
    size_t checked = 0;
    for (int ty = 0; ty < 3; ty++) {
        ekg_resource_set_t *set = ekg_translator_set(t, (ekg_resource_type_t)ty);
        assert_non_null(set);
        assert_true(ekg_resource_set_size(set) > 0);
        const upb_MessageDef *m = ekg_proto_message(type_names[ty]);
        for (size_t i = 0; i < ekg_resource_set_size(set); i++) {
            check_resource(ekg_resource_set_at(set, i), m, type_names[ty]);
            checked++;
        }
        ekg_resource_set_unref(set);
    }
    assert_true(checked > 20);
    ekg_translator_free(t);
    ekg_objects_free(&objs);
}

static void test_default_config_is_canonical(void **state)
{
    (void)state;
    ekg_config_t *cfg = NULL;
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_config_default(&cfg, &diag), EKG_OK);
    check_canonical(cfg);
    ekg_config_free(cfg);
}

static void test_overrides_config_is_canonical(void **state)
{
    (void)state;
    ekg_config_t *cfg = NULL;
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_config_parse(overrides_config, strlen(overrides_config), "test.yaml", &cfg, &diag),
                     EKG_OK);
    check_canonical(cfg);
    ekg_config_free(cfg);
}

/*
 * Objects beside the demo cluster that give variants every shape: a PreferSameNode Service over two regions
 * with a UDP and a TCP port, 130 endpoints in one locality (a two-byte weight), so that a client on n-a1 gets
 * four priorities (its Node, the rest of its zone, its region, the other region).
 */
static char *synthetic_objects(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = ekg_xmemstream(&buf, &len);
    static const char *const nodes[][3] = {
        {"n-a1", "r1", "a"}, {"n-a2", "r1", "a"}, {"n-b1", "r1", "b"}, {"n-c1", "r2", "c"}};
    for (size_t i = 0; i < 4; i++)
        fprintf(f,
                "---\napiVersion: v1\nkind: Node\nmetadata:\n  name: %s\n  labels:\n"
                "    topology.kubernetes.io/region: %s\n    topology.kubernetes.io/zone: %s\n",
                nodes[i][0], nodes[i][1], nodes[i][2]);
    fprintf(f, "---\napiVersion: v1\nkind: Service\nmetadata: {name: dns, namespace: syn}\n"
               "spec:\n  trafficDistribution: PreferSameNode\n  ports:\n"
               "  - {name: dns, port: 53, protocol: UDP}\n  - {name: http, port: 80, targetPort: 8080}\n"
               "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\naddressType: IPv4\n"
               "metadata: {name: dns-1, namespace: syn, labels: {kubernetes.io/service-name: dns}}\n"
               "ports:\n- {name: dns, port: 53, protocol: UDP}\n- {name: http, port: 8080}\nendpoints:\n");
    for (int i = 0; i < 150; i++) {
        const char *node = i == 0 ? "n-a1" : i <= 130 ? "n-a2" : i <= 140 ? "n-b1" : "n-c1";
        fprintf(f, "- {addresses: [10.9.%d.%d], conditions: {ready: %s}, nodeName: %s}\n", i / 200, i % 200,
                i % 37 == 5 ? "false, serving: true, terminating: true" : "true", node);
    }
    ekg_xmemstream_close(f);
    return buf;
}

/* The highest priority in an assignment. */
static uint32_t max_priority(const ekg_resource_t *r)
{
    size_t len, n;
    const char *data = ekg_resource_data(r, &len);
    upb_Arena *arena = upb_Arena_New();
    envoy_config_endpoint_v3_ClusterLoadAssignment *la =
        envoy_config_endpoint_v3_ClusterLoadAssignment_parse(data, len, arena);
    assert_non_null(la);
    const envoy_config_endpoint_v3_LocalityLbEndpoints *const *locs =
        envoy_config_endpoint_v3_ClusterLoadAssignment_endpoints(la, &n);
    uint32_t max = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t p = envoy_config_endpoint_v3_LocalityLbEndpoints_priority(locs[i]);
        max = p > max ? p : max;
    }
    upb_Arena_Free(arena);
    return max;
}

/* Every ClusterLoadAssignment a client at any of these places gets is canonical; returns the highest
 * priority seen in a variant (one that is not the plain assignment). */
static uint32_t check_zone_variants(const ekg_config_t *cfg, size_t *variants)
{
    static const char *const places[][3] = {
        {"us-east1", "us-east1-a", ""},
        {"us-east1", "us-east1-b", "worker-b2"},
        {"us-east1", "us-east1-c", ""},
        {"", "us-east1-c", ""},
        {"us-east1", "elsewhere", ""},
        {"r1", "a", "n-a1"},
        {"r1", "a", ""},
        {"r1", "b", "n-a2"},
        {"r2", "c", ""},
        {"", "", "n-a1"},
    };
    char path[4096];
    const char *src = getenv("EKG_SOURCE_DIR");
    snprintf(path, sizeof(path), "%s/deploy/demo/cluster.yaml", src ? src : ".");
    ekg_diag_t diag = {{0}};
    ekg_objects_t objs = {0};
    assert_int_equal(ekg_objects_add_file(&objs, path, &diag), EKG_OK);
    char *syn = synthetic_objects();
    if (ekg_objects_add_buffer(&objs, syn, strlen(syn), "synthetic.yaml", &diag) != EKG_OK)
        fail_msg("synthetic objects: %s", diag.msg);
    free(syn);
    ekg_translator_t *t = ekg_translator_new(cfg);
    ekg_translator_put_objects(t, &objs);
    ekg_snapshot_t *snap = NULL;
    assert_int_equal(ekg_translator_snapshot(t, &snap), EKG_OK);
    const upb_MessageDef *m = ekg_proto_message(EKG_TYPE_LOAD_ASSIGNMENT);
    ekg_resource_set_t *base = ekg_snapshot_resources(snap, EKG_RESOURCE_LOAD_ASSIGNMENT);
    uint32_t max = 0;
    *variants = 0;
    for (size_t p = 0; p < sizeof(places) / sizeof(places[0]); p++) {
        ekg_place_t place = {places[p][0], places[p][1], places[p][2]};
        ekg_resource_set_t *set = ekg_snapshot_resources_at(snap, EKG_RESOURCE_LOAD_ASSIGNMENT, &place);
        assert_int_equal(ekg_resource_set_size(set), ekg_resource_set_size(base));
        for (size_t i = 0; i < ekg_resource_set_size(set); i++) {
            const ekg_resource_t *r = ekg_resource_set_at(set, i);
            check_resource(r, m, EKG_TYPE_LOAD_ASSIGNMENT);
            if (r != ekg_resource_set_at(base, i)) {
                (*variants)++;
                uint32_t mp = max_priority(r);
                assert_true(mp > 0); /* a variant is never everything at priority 0 */
                max = mp > max ? mp : max;
            }
        }
    }
    ekg_snapshot_unref(snap);
    ekg_translator_free(t);
    ekg_objects_free(&objs);
    return max;
}

static void test_zone_variants_are_canonical(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        uint32_t max_priority; /* the highest priority a variant must reach */
    } configs[] = {
        {"apiVersion: v1alpha\n", 3},
        {"apiVersion: v1alpha\nendpoint_config: {zone_priorities: always, overprovisioning_factor: 175}\n",
         3},
        {"apiVersion: v1alpha\nendpoint_config: {zone_priorities: always, overprovisioning_factor: "
         "4294967295}\n",
         3},
        {"apiVersion: v1alpha\nendpoint_config: {overprovisioning_factor: 1}\n", 3},
    };
    for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++) {
        ekg_config_t *cfg = NULL;
        ekg_diag_t diag = {{0}};
        if (ekg_config_parse(configs[i].yaml, strlen(configs[i].yaml), "test.yaml", &cfg, &diag) != EKG_OK)
            fail_msg("config: %s", diag.msg);
        size_t variants = 0;
        assert_int_equal(check_zone_variants(cfg, &variants), configs[i].max_priority);
        assert_true(variants >= 10);
        ekg_config_free(cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_config_is_canonical),
        cmocka_unit_test(test_overrides_config_is_canonical),
        cmocka_unit_test(test_zone_variants_are_canonical),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
