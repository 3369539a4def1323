/*
 * tests/fuzz/validate_fuzz.c: libFuzzer target for Envoy's validation rules (src/proto/validate.c) on random
 * Cluster configs: nothing the validator accepts fails to encode.
 *
 * The input is an ekglue config file (YAML). One that loads was already checked as sent (the base, and each
 * override merged into it: src/translate/config.c); here the clusters it makes for a few Service ports, with
 * every matching override merged at once (which loading does not check), are named and validated: each one
 * the validator accepts must encode (binary), print as proto3 JSON, and decode from that JSON to a message
 * the validator accepts too. Then the config translates a fixed set of objects: every resource served must
 * pass the validator (translation drops the rest) and print as JSON.
 *
 * Whatever the input is, it is also taken as the encoding of a Cluster, a ClusterLoadAssignment and a
 * Listener: the wire walk (ekg_proto_validate_wire, which translation uses on its own encodings) and decoding
 * then checking (ekg_proto_validate_bytes) must agree on each, as on every cluster above, accepted or not.
 *
 * Seeds: tests/fuzz/corpus/validate/: configs with Cluster fields of each rule kind Envoy's protos give a
 * Cluster, and resources of the demo cluster as translation encodes them (*.pb). Thread: libFuzzer's one
 * thread.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upb/decode.h"
#include "upb/reflection.h"

#include "envoy/config/cluster/v3/cluster.upb.h"

#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/model.h"
#include "ekglue/proto.h"
#include "ekglue/resource.h"
#include "ekglue/translate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A Service of each shape translation treats apart (EDS ports, a headless one, an ExternalName) and a slice.
 */
static const char objects[] =
    "apiVersion: v1\nkind: Service\nmetadata: {name: cart, namespace: shop}\n"
    "spec: {ports: [{name: http, port: 80, targetPort: 8080}, {name: grpc, port: 9090, appProtocol: "
    "kubernetes.io/h2c}]}\n"
    "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: cart-1, namespace: shop, labels: {kubernetes.io/service-name: cart}}\n"
    "addressType: IPv4\nports: [{name: http, port: 8080}, {name: grpc, port: 9090}]\n"
    "endpoints: [{addresses: [10.1.0.5], zone: a}, {addresses: [10.1.0.6], conditions: {ready: false}}]\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: shop}\n"
    "spec: {clusterIP: None, ports: [{port: 5432}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: stripe, namespace: payments}\n"
    "spec: {type: ExternalName, externalName: api.stripe.com, ports: [{name: https, port: 443}]}\n";

/* The wire walk and decoding then checking agree on bytes, as to whether they pass. */
static void check_agree(const char *bytes, size_t len, const upb_MessageDef *m)
{
    bool wire = ekg_proto_validate_wire(bytes, len, m, NULL) == EKG_OK;
    bool decoded = ekg_proto_validate_bytes(bytes, len, m, NULL) == EKG_OK;
    if (wire != decoded)
        abort();
}

/* msg (type m) passed the validator: it must encode, print as JSON and come back from that JSON unchanged. */
static void check_encodes(const upb_Message *msg, const upb_MessageDef *m)
{
    upb_Arena *arena = ekg_proto_arena_new();
    char *bytes = NULL, *again = NULL, *json = NULL;
    size_t len = 0, len2 = 0, jlen = 0;
    if (ekg_proto_encode(msg, m, arena, &bytes, &len) != EKG_OK)
        abort(); /* accepted, yet no binary encoding */
    if (ekg_proto_validate_wire(bytes, len, m, NULL) != EKG_OK)
        abort(); /* the wire walk disagrees */
    if (ekg_proto_to_json(msg, m, &json, &jlen) != EKG_OK)
        abort(); /* accepted, yet `dump` could not print it */
    upb_Message *back = ekg_proto_message_new(m, arena);
    ekg_diag_t diag;
    if (ekg_proto_from_json(json, jlen, m, back, arena, &diag) != EKG_OK)
        abort(); /* printed, yet not JSON that loads */
    /* Not byte for byte: an Any's payload (a Struct in it, say) is encoded again with maps in hash order. */
    if (ekg_proto_encode(back, m, arena, &again, &len2) != EKG_OK)
        abort();
    if (ekg_proto_validate(back, m, NULL) != EKG_OK ||
        ekg_proto_validate_wire(again, len2, m, NULL) != EKG_OK)
        abort(); /* the same message, another verdict */
    free(json);
    upb_Arena_Free(arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    static const upb_MessageDef *types[3];
    if (!ready) {
        ekg_mem_init(); /* as main() does: cJSON allocates through the aborting wrappers */
        ekg_log_set_level(EKG_LOG_OFF);
        if (ekg_proto_init(NULL) != EKG_OK)
            abort();
        types[0] = ekg_proto_message(EKG_TYPE_CLUSTER);
        types[1] = ekg_proto_message(EKG_TYPE_LOAD_ASSIGNMENT);
        types[2] = ekg_proto_message(EKG_TYPE_LISTENER);
        ready = 1;
    }
    for (int ty = 0; ty < 3; ty++)
        check_agree((const char *)data, size, types[ty]);
    ekg_config_t *cfg = NULL;
    ekg_diag_t diag;
    if (ekg_config_parse((const char *)data, size, "fuzz.yaml", &cfg, &diag) != EKG_OK)
        return 0;

    /* The clusters of a few ports, every matching override at once. */
    static const ekg_cluster_match_input_t inputs[] = {
        {"shop:cart:http", "shop", "cart", "http", NULL},
        {"shop:cart:grpc", "shop", "cart", "grpc", "kubernetes.io/h2c"},
        {"payments:stripe:https", "payments", "stripe", "https", NULL},
        {"shop:db:5432", "shop", "db", "", NULL},
    };
    upb_Arena *arena = ekg_proto_arena_new();
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        envoy_config_cluster_v3_Cluster *c = NULL;
        bool suppressed = false;
        if (ekg_config_cluster(cfg, &inputs[i], arena, &c, &suppressed, &diag) != EKG_OK)
            abort(); /* a loaded config always applies */
        if (!c)
            continue;
        envoy_config_cluster_v3_Cluster_set_name(c, upb_StringView_FromString(inputs[i].cluster_name));
        if (ekg_proto_validate(c, types[0], NULL) == EKG_OK) {
            check_encodes(c, types[0]);
        } else {
            char *bytes = NULL;
            size_t len = 0;
            if (ekg_proto_encode(c, types[0], arena, &bytes, &len) == EKG_OK &&
                ekg_proto_validate_wire(bytes, len, types[0], NULL) == EKG_OK)
                abort(); /* refused, yet the wire walk lets it by */
        }
    }
    upb_Arena_Free(arena);

    /* Translation serves only what passes, and all of it prints. */
    ekg_objects_t objs = {0};
    if (ekg_objects_add_buffer(&objs, objects, sizeof(objects) - 1, "objects", &diag) != EKG_OK)
        abort();
    ekg_translator_t *t = ekg_translator_new(cfg);
    ekg_translator_put_objects(t, &objs);
    if (ekg_translator_build(t, NULL, NULL) == EKG_OK) {
        for (int ty = 0; ty < 3; ty++) {
            ekg_resource_set_t *set = ekg_translator_set(t, (ekg_resource_type_t)ty);
            for (size_t i = 0; set && i < ekg_resource_set_size(set); i++) {
                size_t len;
                const char *bytes = ekg_resource_data(ekg_resource_set_at(set, i), &len);
                if (ekg_proto_validate_bytes(bytes, len, types[ty], NULL) != EKG_OK)
                    abort(); /* served, yet Envoy would reject it */
                upb_Arena *a = ekg_proto_arena_new();
                upb_Message *msg = ekg_proto_message_new(types[ty], a);
                if (upb_Decode(bytes, len, msg, upb_MessageDef_MiniTable(types[ty]), NULL, 0, a) !=
                    kUpb_DecodeStatus_Ok)
                    abort();
                check_encodes(msg, types[ty]);
                upb_Arena_Free(a);
            }
            ekg_resource_set_unref(set);
        }
    }
    ekg_translator_free(t);
    ekg_objects_free(&objs);
    ekg_config_free(cfg);
    return 0;
}
