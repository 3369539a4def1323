/*
 * tests/unit/wire_test.c: ekg_proto_decode_peer() (src/proto/wire.c), the decoder for bytes a peer sends.
 *
 * Real requests decode as before, maps, unknown fields of ordinary messages and deep Structs included; what
 * the upb of grpc 1.51 mishandles (a map entry with a field besides key and value, found by
 * tests/fuzz/session_fuzz.c and aborting ekglue inside libupb) and what is not protobuf come back as
 * EKG_EPARSE with a reason, and the session and CSDS entry points refuse them the same way. Thread: the
 * test's main thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envoy/config/core/v3/base.upb.h"
#include "envoy/service/discovery/v3/discovery.upb.h"
#include "envoy/service/status/v3/csds.upb.h"
#include "google/protobuf/struct.upb.h"
#include "xds/core/v3/context_params.upb.h"

#include "ekglue/proto.h"

#include "xds/csds.h"
#include "xds/session.h"

#define REQ (&envoy_service_discovery_v3_DiscoveryRequest_msginit)

/* The fuzzer's input (after its api byte): resource_locators { dynamic_parameters { 7: "\xff" } } and more.
 */
static const char fuzz_crash[] =
    "\x3a\x12\x12\x03\x3a\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x68\x0a\x02\x0a\x00";

/* --- a tiny protobuf writer for hand-made inputs
 * ------------------------------------------------------------ */

typedef struct {
    char b[4096];
    size_t n;
} buf_t;

static void put_varint(buf_t *w, uint64_t v)
{
    do {
        assert_true(w->n < sizeof(w->b));
        w->b[w->n++] = (char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

static void put_bytes(buf_t *w, uint32_t field, const void *p, size_t len)
{
    put_varint(w, (uint64_t)field << 3 | 2);
    put_varint(w, len);
    assert_true(w->n + len <= sizeof(w->b));
    memcpy(w->b + w->n, p, len);
    w->n += len;
}

static void put_sub(buf_t *w, uint32_t field, const buf_t *sub)
{
    put_bytes(w, field, sub->b, sub->n);
}

static ekg_err_t decode(const buf_t *w, upb_Arena *arena, upb_Message **msg, ekg_diag_t *diag)
{
    return ekg_proto_decode_peer(w->b, w->n, REQ, 0, arena, msg, diag);
}

/* A DiscoveryRequest whose node has a dynamic_parameters entry built from entry's bytes. */
static buf_t request_with_node_parameters_entry(const buf_t *entry)
{
    buf_t node = {0}, req = {0};
    put_bytes(&node, 1, "n1", 2);
    put_sub(&node, 12, entry); /* Node.dynamic_parameters */
    put_sub(&req, 2, &node);   /* DiscoveryRequest.node */
    put_bytes(&req, 4, "t", 1);
    return req;
}

/* --- real requests
 * ------------------------------------------------------------------------------------------ */

static void test_real_request_with_maps_decodes(void **state)
{
    upb_Arena *a = ekg_proto_arena_new();
    envoy_service_discovery_v3_DiscoveryRequest *r = envoy_service_discovery_v3_DiscoveryRequest_new(a);
    envoy_service_discovery_v3_DiscoveryRequest_set_type_url(r, upb_StringView_FromString("type.x/Cluster"));
    envoy_config_core_v3_Node *node = envoy_service_discovery_v3_DiscoveryRequest_mutable_node(r, a);
    envoy_config_core_v3_Node_set_id(node, upb_StringView_FromString("envoy-7"));
    /* metadata: {"outer": {"inner": "v"}}: a map inside a map. */
    google_protobuf_Struct *md = envoy_config_core_v3_Node_mutable_metadata(node, a);
    google_protobuf_Struct *inner_s = google_protobuf_Struct_new(a);
    google_protobuf_Value *v = google_protobuf_Value_new(a);
    google_protobuf_Value_set_string_value(v, upb_StringView_FromString("v"));
    google_protobuf_Struct_fields_set(inner_s, upb_StringView_FromString("inner"), v, a);
    google_protobuf_Value *outer = google_protobuf_Value_new(a);
    google_protobuf_Value_set_struct_value(outer, inner_s);
    google_protobuf_Struct_fields_set(md, upb_StringView_FromString("outer"), outer, a);
    xds_core_v3_ContextParams *cp = xds_core_v3_ContextParams_new(a);
    xds_core_v3_ContextParams_params_set(cp, upb_StringView_FromString("k"), upb_StringView_FromString("v"),
                                         a);
    envoy_config_core_v3_Node_dynamic_parameters_set(node, upb_StringView_FromString("dp"), cp, a);
    envoy_service_discovery_v3_ResourceLocator *loc =
        envoy_service_discovery_v3_DiscoveryRequest_add_resource_locators(r, a);
    envoy_service_discovery_v3_ResourceLocator_set_name(loc, upb_StringView_FromString("c1"));
    envoy_service_discovery_v3_ResourceLocator_dynamic_parameters_set(loc, upb_StringView_FromString("a"),
                                                                      upb_StringView_FromString("b"), a);
    size_t len;
    char *bytes = envoy_service_discovery_v3_DiscoveryRequest_serialize(r, a, &len);
    assert_non_null(bytes);

    upb_Message *msg = NULL;
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_proto_decode_peer(bytes, len, REQ, 0, a, &msg, &diag), EKG_OK);
    const envoy_service_discovery_v3_DiscoveryRequest *got =
        (const envoy_service_discovery_v3_DiscoveryRequest *)msg;
    const envoy_config_core_v3_Node *gn = envoy_service_discovery_v3_DiscoveryRequest_node(got);
    upb_StringView id = envoy_config_core_v3_Node_id(gn);
    assert_int_equal(id.size, 7);
    assert_memory_equal(id.data, "envoy-7", 7);
    google_protobuf_Value *gv;
    assert_true(google_protobuf_Struct_fields_get(envoy_config_core_v3_Node_metadata(gn),
                                                  upb_StringView_FromString("outer"), &gv));
    assert_true(google_protobuf_Value_has_struct_value(gv));
    assert_int_equal(google_protobuf_Struct_fields_size(google_protobuf_Value_struct_value(gv)), 1);
    assert_int_equal(envoy_config_core_v3_Node_dynamic_parameters_size(gn), 1);
    size_t nloc;
    envoy_service_discovery_v3_DiscoveryRequest_resource_locators(got, &nloc);
    assert_int_equal(nloc, 1);
    upb_Arena_Free(a);
}

static void test_unknown_fields_of_ordinary_messages_are_accepted(void **state)
{
    /* A newer Envoy sends fields ekglue's tables do not have: in the request, in the node, and inside a map
     * entry's value message. None of that is refused. */
    buf_t params = {0}, entry = {0};
    put_varint(&params, 99 << 3 | 0); /* ContextParams field 99 (unknown), varint */
    put_varint(&params, 5);
    put_bytes(&entry, 1, "key", 3);
    put_sub(&entry, 2, &params);
    buf_t req = request_with_node_parameters_entry(&entry);
    put_varint(&req, 1000 << 3 | 5); /* DiscoveryRequest field 1000 (unknown), fixed32 */
    memcpy(req.b + req.n, "abcd", 4);
    req.n += 4;
    put_bytes(&req, 2000, "zz", 2);

    upb_Arena *a = ekg_proto_arena_new();
    upb_Message *msg = NULL;
    ekg_diag_t diag = {{0}};
    assert_int_equal(decode(&req, a, &msg, &diag), EKG_OK);
    const envoy_config_core_v3_Node *n = envoy_service_discovery_v3_DiscoveryRequest_node(
        (const envoy_service_discovery_v3_DiscoveryRequest *)msg);
    assert_int_equal(envoy_config_core_v3_Node_dynamic_parameters_size(n), 1);
    upb_Arena_Free(a);
}

/* --- what upb 1.51 mishandles
 * -------------------------------------------------------------------------------- */

static void expect_eparse(const buf_t *w, const char *reason)
{
    upb_Arena *a = ekg_proto_arena_new();
    upb_Message *msg = NULL;
    ekg_diag_t diag = {{0}};
    assert_int_equal(decode(w, a, &msg, &diag), EKG_EPARSE);
    if (!strstr(diag.msg, reason))
        fail_msg("diag \"%s\" does not say \"%s\"", diag.msg, reason);
    assert_null(msg);
    upb_Arena_Free(a);
}

static void test_fuzzer_input_is_refused_not_aborted(void **state)
{
    buf_t w = {0};
    memcpy(w.b, fuzz_crash, sizeof(fuzz_crash) - 1);
    w.n = sizeof(fuzz_crash) - 1;
    expect_eparse(&w, "map entry");
}

static void test_map_entry_with_a_third_field_is_refused(void **state)
{
    buf_t entry = {0};
    put_bytes(&entry, 1, "key", 3);
    put_bytes(&entry, 3, "x", 1);
    buf_t req = request_with_node_parameters_entry(&entry);
    expect_eparse(&req, "map entry");
}

static void test_map_entry_key_with_wrong_wire_type_is_refused(void **state)
{
    buf_t entry = {0};
    put_varint(&entry, 1 << 3 | 0); /* key as a varint: a string key is length-delimited */
    put_varint(&entry, 7);
    buf_t req = request_with_node_parameters_entry(&entry);
    expect_eparse(&req, "map entry");
}

static void test_map_entry_deep_inside_metadata_is_checked(void **state)
{
    /* metadata {"a": {struct_value: {fields: entry with field 9}}}: the bad entry is three maps down. */
    buf_t bad_entry = {0}, inner_struct = {0}, value = {0}, entry = {0}, md = {0}, node = {0}, req = {0};
    put_bytes(&bad_entry, 1, "k", 1);
    put_bytes(&bad_entry, 9, "x", 1);
    put_sub(&inner_struct, 1, &bad_entry); /* Struct.fields */
    put_sub(&value, 5, &inner_struct);     /* Value.struct_value */
    put_bytes(&entry, 1, "a", 1);
    put_sub(&entry, 2, &value);
    put_sub(&md, 1, &entry);
    put_sub(&node, 3, &md); /* Node.metadata */
    put_sub(&req, 2, &node);
    expect_eparse(&req, "map entry");
}

static void test_groups_and_bad_wire_types_are_refused(void **state)
{
    buf_t group = {0}, wt6 = {0}, tag0 = {0}, long_tag = {0}, past_end = {0}, truncated = {0};
    put_varint(&group, 50 << 3 | 3);
    put_varint(&group, 50 << 3 | 4);
    expect_eparse(&group, "group");
    put_varint(&wt6, 50 << 3 | 6);
    expect_eparse(&wt6, "wire type 6 or 7");
    put_varint(&tag0, 0 << 3 | 0);
    put_varint(&tag0, 1);
    expect_eparse(&tag0, "tag");
    memcpy(long_tag.b, "\x80\x80\x80\x80\x80\x01", 6);
    long_tag.n = 6;
    expect_eparse(&long_tag, "tag");
    put_varint(&past_end, 4 << 3 | 2);
    put_varint(&past_end, 100);
    expect_eparse(&past_end, "past the end");
    put_varint(&truncated, 1000 << 3 | 1);
    truncated.b[truncated.n++] = 1;
    expect_eparse(&truncated, "truncated");
}

/* Node.metadata nested `levels` Structs deep: Struct{fields{"k": Value{struct_value: ...}}}. */
static buf_t nested_metadata(int levels)
{
    static buf_t s[80];
    assert_true(levels < 80);
    memset(&s[0], 0, sizeof(s[0]));
    for (int i = 1; i <= levels; i++) {
        buf_t value = {0}, entry = {0};
        put_sub(&value, 5, &s[i - 1]);
        put_bytes(&entry, 1, "k", 1);
        put_sub(&entry, 2, &value);
        memset(&s[i], 0, sizeof(s[i]));
        put_sub(&s[i], 1, &entry);
    }
    buf_t node = {0}, req = {0};
    put_sub(&node, 3, &s[levels]);
    put_sub(&req, 2, &node);
    return req;
}

static void test_nesting_is_bounded_like_upb(void **state)
{
    /* Each Struct level is three messages (Struct, entry, Value); 18 levels (56 deep) decode, 25 do not. */
    buf_t ok = nested_metadata(18), deep = nested_metadata(25);
    upb_Arena *a = ekg_proto_arena_new();
    upb_Message *msg = NULL;
    ekg_diag_t diag = {{0}};
    assert_int_equal(decode(&ok, a, &msg, &diag), EKG_OK);
    upb_Arena_Free(a);
    expect_eparse(&deep, "deeper");
}

/* --- the entry points that take peer bytes
 * ------------------------------------------------------------------ */

static void test_session_and_csds_refuse_the_fuzzer_input(void **state)
{
    ekg_xds_session_t *s = ekg_xds_session_new(EKG_XDS_ADS, "peer");
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_xds_session_on_request(s, fuzz_crash, sizeof(fuzz_crash) - 1, &diag), EKG_EPARSE);
    assert_non_null(strstr(diag.msg, "DiscoveryRequest does not decode: a map entry"));

    /* ClientStatusRequest.node (field 2) carrying the same bad dynamic_parameters entry. */
    buf_t entry = {0}, node = {0}, csds_req = {0};
    put_bytes(&entry, 1, "key", 3);
    put_bytes(&entry, 7, "\xff", 1);
    put_sub(&node, 12, &entry);
    put_sub(&csds_req, 2, &node);
    char *out = NULL;
    size_t out_len = 0;
    assert_int_equal(ekg_xds_csds_answer(csds_req.b, csds_req.n, &s, 1, &out, &out_len, &diag), EKG_EPARSE);
    assert_null(out);
    assert_non_null(strstr(diag.msg, "ClientStatusRequest does not decode: a map entry"));
    ekg_xds_session_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_request_with_maps_decodes),
        cmocka_unit_test(test_unknown_fields_of_ordinary_messages_are_accepted),
        cmocka_unit_test(test_fuzzer_input_is_refused_not_aborted),
        cmocka_unit_test(test_map_entry_with_a_third_field_is_refused),
        cmocka_unit_test(test_map_entry_key_with_wrong_wire_type_is_refused),
        cmocka_unit_test(test_map_entry_deep_inside_metadata_is_checked),
        cmocka_unit_test(test_groups_and_bad_wire_types_are_refused),
        cmocka_unit_test(test_nesting_is_bounded_like_upb),
        cmocka_unit_test(test_session_and_csds_refuse_the_fuzzer_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
