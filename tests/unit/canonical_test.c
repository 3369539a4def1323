/*
 * tests/unit/canonical_test.c: every resource ekglue emits is the canonical encoding of its message.
 *
 * Some resources are written by hand or spliced from shared bytes (proxyless listeners, clusters that share
 * one encoding); all must be byte-identical to what upb's deterministic encoder makes of the same message, or
 * the content hashes (and so the xDS versions) would depend on the code path. Each resource of the demo
 * cluster, translated under the built-in config and under a config with overrides, is decoded and re-encoded
 * here. Thread: main.
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
            const ekg_resource_t *r = ekg_resource_set_at(set, i);
            size_t len, len2;
            const char *data = ekg_resource_data(r, &len);
            upb_Arena *arena = upb_Arena_New();
            upb_Message *msg = upb_Message_New(m, arena);
            assert_int_equal(upb_Decode(data, len, msg, upb_MessageDef_MiniTable(m), NULL, 0, arena),
                             kUpb_DecodeStatus_Ok);
            char *again = NULL;
            assert_int_equal(ekg_proto_encode(msg, m, arena, &again, &len2), EKG_OK);
            if (len != len2 || memcmp(data, again, len) != 0)
                fail_msg("%s %s: %zu bytes emitted, canonical encoding has %zu or differs", type_names[ty],
                         ekg_resource_name(r), len, len2);
            upb_Arena_Free(arena);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_config_is_canonical),
        cmocka_unit_test(test_overrides_config_is_canonical),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
