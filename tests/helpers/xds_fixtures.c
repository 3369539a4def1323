/*
 * tests/helpers/xds_fixtures.c: builders of worlds and DiscoveryRequests, and decoders of the responses of
 * the per-stream xDS protocol engine, for the unit tests (tests/helpers/xds_fixtures.h). Every failure ends
 * the running cmocka test with a message saying what was expected and what came. Thread: the test's main
 * thread.
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
#include "envoy/config/core/v3/base.upb.h"
#include "envoy/config/endpoint/v3/endpoint.upb.h"
#include "envoy/config/endpoint/v3/endpoint_components.upb.h"
#include "envoy/config/listener/v3/listener.upb.h"
#include "envoy/config/route/v3/route.upb.h"
#include "envoy/service/discovery/v3/discovery.upb.h"
#include "google/protobuf/any.upb.h"
#include "google/rpc/status.upb.h"

#include "ekglue/mem.h"

#include "xds_fixtures.h"

static upb_StringView sv(const char *s)
{
    return upb_StringView_FromDataAndSize(s, strlen(s));
}

static char *arena_strndup(upb_Arena *a, const char *s, size_t n)
{
    char *p = upb_Arena_Malloc(a, n + 1);
    if (!p)
        fail_msg("xds fixture: out of memory");
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* --- setup
 * --------------------------------------------------------------------------------------------------
 */

int xf_setup(void **state)
{
    xf_t *x = ekg_xcalloc(1, sizeof(*x));
    if (!(x->arena = upb_Arena_New())) {
        free(x);
        return -1;
    }
    *state = x;
    return 0;
}

int xf_teardown(void **state)
{
    xf_t *x = *state;
    if (!x)
        return 0;
    for (size_t i = 0; i < x->nsessions; i++)
        ekg_xds_session_free(x->sessions[i]);
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++)
        ekg_resource_set_unref(x->sets[t]);
    upb_Arena_Free(x->arena);
    free(x);
    *state = NULL;
    return 0;
}

ekg_xds_session_t *xf_session(xf_t *x, ekg_xds_api_t api)
{
    if (x->nsessions == XF_MAX_SESSIONS)
        fail_msg("xds fixture: more than %d sessions in one test", XF_MAX_SESSIONS);
    ekg_xds_session_t *s = ekg_xds_session_new(api, "test");
    x->sessions[x->nsessions++] = s;
    return s;
}

/* --- resources and the world
 * --------------------------------------------------------------------------------
 */

char *xf_encode(ekg_resource_type_t type, const char *name, const char *variant, size_t *len)
{
    upb_Arena *a = upb_Arena_New();
    char *bytes = NULL;
    switch (type) {
    case EKG_RESOURCE_CLUSTER: {
        envoy_config_cluster_v3_Cluster *m = envoy_config_cluster_v3_Cluster_new(a);
        envoy_config_cluster_v3_Cluster_set_name(m, sv(name));
        if (variant)
            envoy_config_cluster_v3_Cluster_set_alt_stat_name(m, sv(variant));
        bytes = envoy_config_cluster_v3_Cluster_serialize(m, a, len);
        break;
    }
    case EKG_RESOURCE_LOAD_ASSIGNMENT: {
        envoy_config_endpoint_v3_ClusterLoadAssignment *m =
            envoy_config_endpoint_v3_ClusterLoadAssignment_new(a);
        envoy_config_endpoint_v3_ClusterLoadAssignment_set_cluster_name(m, sv(name));
        if (variant) {
            struct envoy_config_endpoint_v3_LocalityLbEndpoints *l =
                envoy_config_endpoint_v3_ClusterLoadAssignment_add_endpoints(m, a);
            envoy_config_core_v3_Locality_set_zone(
                envoy_config_endpoint_v3_LocalityLbEndpoints_mutable_locality(l, a), sv(variant));
        }
        bytes = envoy_config_endpoint_v3_ClusterLoadAssignment_serialize(m, a, len);
        break;
    }
    case EKG_RESOURCE_LISTENER: {
        envoy_config_listener_v3_Listener *m = envoy_config_listener_v3_Listener_new(a);
        envoy_config_listener_v3_Listener_set_name(m, sv(name));
        if (variant)
            envoy_config_listener_v3_Listener_set_stat_prefix(m, sv(variant));
        bytes = envoy_config_listener_v3_Listener_serialize(m, a, len);
        break;
    }
    case EKG_RESOURCE_ROUTE: {
        envoy_config_route_v3_RouteConfiguration *m = envoy_config_route_v3_RouteConfiguration_new(a);
        envoy_config_route_v3_RouteConfiguration_set_name(m, sv(name));
        if (variant)
            envoy_config_route_v3_RouteConfiguration_add_internal_only_headers(m, sv(variant), a);
        bytes = envoy_config_route_v3_RouteConfiguration_serialize(m, a, len);
        break;
    }
    default:
        break;
    }
    if (!bytes) {
        upb_Arena_Free(a);
        fail_msg("xds fixture: cannot encode a resource of type %d named %s", (int)type, name);
    }
    char *copy = ekg_xmalloc(*len);
    memcpy(copy, bytes, *len);
    upb_Arena_Free(a);
    return copy;
}

ekg_resource_t *xf_resource(ekg_resource_type_t type, const char *name, const char *variant)
{
    size_t len = 0;
    char *bytes = xf_encode(type, name, variant, &len);
    ekg_resource_t *r = NULL;
    ekg_err_t err = ekg_resource_new(type, name, bytes, len, &r);
    free(bytes);
    assert_int_equal(err, EKG_OK);
    return r;
}

void xf_set(xf_t *x, ekg_resource_type_t type, const char *spec)
{
    char *text = ekg_xstrdup(spec ? spec : "");
    size_t cap = 8, n = 0;
    ekg_resource_t **items = ekg_xmalloc(cap * sizeof(*items)); /* never NULL, even for an empty set */
    const ekg_resource_set_t *prev = x->sets[type];
    char *save = NULL;
    for (char *tok = strtok_r(text, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        if (eq)
            *eq = '\0';
        ekg_resource_t *r = xf_resource(type, tok, eq ? eq + 1 : NULL);
        /* Unchanged content: reuse the previous object, as the translator does, so pages are shared. */
        ekg_resource_t *old = prev ? ekg_resource_set_find(prev, tok) : NULL;
        size_t la = 0, lb = 0;
        const char *a = old ? ekg_resource_data(old, &la) : NULL;
        const char *b = ekg_resource_data(r, &lb);
        if (old && la == lb && memcmp(a, b, la) == 0) {
            ekg_resource_unref(r);
            r = ekg_resource_ref(old);
        }
        EKG_ARRAY_PUSH(items, n, cap, r);
    }
    ekg_resource_set_t *set = NULL;
    ekg_err_t err = ekg_resource_set_new(type, items, n, prev, &set);
    for (size_t i = 0; i < n; i++)
        ekg_resource_unref(items[i]);
    free(items);
    free(text);
    if (err != EKG_OK)
        fail_msg("xds fixture: set \"%.80s\" rejected: %s (names must be strictly increasing)", spec,
                 ekg_strerror(err));
    ekg_resource_set_unref(x->sets[type]);
    x->sets[type] = set;
}

ekg_resource_set_t *xf_world(const xf_t *x, ekg_resource_type_t type)
{
    if (!x->sets[type])
        fail_msg("xds fixture: no set of type %d in the world (call xf_set first)", (int)type);
    return x->sets[type];
}

const char *xf_version(const xf_t *x, ekg_resource_type_t type)
{
    return ekg_resource_set_version(xf_world(x, type));
}

ekg_resource_t *xf_find(const xf_t *x, ekg_resource_type_t type, const char *name)
{
    ekg_resource_t *r = ekg_resource_set_find(xf_world(x, type), name);
    if (!r)
        fail_msg("xds fixture: no resource %s of type %d in the world", name, (int)type);
    return r;
}

ekg_snapshot_t *xf_snapshot(const xf_t *x)
{
    return ekg_snapshot_new(x->sets);
}

void xf_publish(xf_t *x)
{
    ekg_snapshot_t *snap = xf_snapshot(x);
    for (size_t i = 0; i < x->nsessions; i++)
        ekg_xds_session_on_snapshot(x->sessions[i], snap);
    ekg_snapshot_unref(snap);
}

/* --- requests
 * -----------------------------------------------------------------------------------------------
 */

char *xf_request_encode(const xf_request_t *r, size_t *len)
{
    upb_Arena *a = upb_Arena_New();
    envoy_service_discovery_v3_DiscoveryRequest *req = envoy_service_discovery_v3_DiscoveryRequest_new(a);
    if (r->type_url)
        envoy_service_discovery_v3_DiscoveryRequest_set_type_url(req, sv(r->type_url));
    if (r->version)
        envoy_service_discovery_v3_DiscoveryRequest_set_version_info(req, sv(r->version));
    if (r->nonce)
        envoy_service_discovery_v3_DiscoveryRequest_set_response_nonce(req, sv(r->nonce));
    if (r->error)
        google_rpc_Status_set_message(
            envoy_service_discovery_v3_DiscoveryRequest_mutable_error_detail(req, a), sv(r->error));
    if (r->node_id)
        envoy_config_core_v3_Node_set_id(envoy_service_discovery_v3_DiscoveryRequest_mutable_node(req, a),
                                         sv(r->node_id));
    if (r->names) {
        char *names = upb_Arena_Malloc(a, strlen(r->names) + 1);
        strcpy(names, r->names);
        char *save = NULL;
        for (char *tok = strtok_r(names, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
            envoy_service_discovery_v3_DiscoveryRequest_add_resource_names(req, sv(tok), a);
    }
    char *bytes = envoy_service_discovery_v3_DiscoveryRequest_serialize(req, a, len);
    if (!bytes) {
        upb_Arena_Free(a);
        fail_msg("xds fixture: cannot serialize a DiscoveryRequest");
    }
    char *copy = ekg_xmalloc(*len);
    memcpy(copy, bytes, *len);
    upb_Arena_Free(a);
    return copy;
}

ekg_err_t xf_try_request(ekg_xds_session_t *s, const xf_request_t *r, ekg_diag_t *diag)
{
    size_t len = 0;
    char *bytes = xf_request_encode(r, &len);
    ekg_err_t err = ekg_xds_session_on_request(s, bytes, len, diag);
    free(bytes);
    return err;
}

void xf_request(ekg_xds_session_t *s, const xf_request_t *r)
{
    ekg_diag_t diag = {{0}};
    ekg_err_t err = xf_try_request(s, r, &diag);
    if (err != EKG_OK)
        fail_msg("request type_url=%s names=[%s] nonce=%s rejected: %s (%s)", r->type_url ? r->type_url : "",
                 r->names ? r->names : "", r->nonce ? r->nonce : "", diag.msg, ekg_strerror(err));
}

void xf_ack(ekg_xds_session_t *s, const xf_response_t *r, const char *names)
{
    xf_request(s, &(xf_request_t){
                      .type_url = r->type_url, .names = names, .version = r->version, .nonce = r->nonce});
}

void xf_nack(ekg_xds_session_t *s, const xf_response_t *r, const char *names, const char *accepted_version,
             const char *message)
{
    xf_request(s, &(xf_request_t){.type_url = r->type_url,
                                  .names = names,
                                  .version = accepted_version,
                                  .nonce = r->nonce,
                                  .error = message});
}

ekg_xds_type_status_t xf_status(const ekg_xds_session_t *s, ekg_resource_type_t type)
{
    ekg_xds_type_status_t st;
    ekg_xds_session_type_status(s, type, &st);
    return st;
}

/* --- responses
 * ----------------------------------------------------------------------------------------------
 */

/* The name field of a resource message of the type whose URL is url; NULL when it does not decode. */
static const char *resource_name(upb_Arena *a, const char *url, const char *value, size_t len)
{
    upb_StringView name;
    switch (ekg_resource_type_from_url(url, strlen(url))) {
    case EKG_RESOURCE_CLUSTER: {
        envoy_config_cluster_v3_Cluster *m = envoy_config_cluster_v3_Cluster_parse(value, len, a);
        if (!m)
            return NULL;
        name = envoy_config_cluster_v3_Cluster_name(m);
        break;
    }
    case EKG_RESOURCE_LOAD_ASSIGNMENT: {
        envoy_config_endpoint_v3_ClusterLoadAssignment *m =
            envoy_config_endpoint_v3_ClusterLoadAssignment_parse(value, len, a);
        if (!m)
            return NULL;
        name = envoy_config_endpoint_v3_ClusterLoadAssignment_cluster_name(m);
        break;
    }
    case EKG_RESOURCE_LISTENER: {
        envoy_config_listener_v3_Listener *m = envoy_config_listener_v3_Listener_parse(value, len, a);
        if (!m)
            return NULL;
        name = envoy_config_listener_v3_Listener_name(m);
        break;
    }
    case EKG_RESOURCE_ROUTE: {
        envoy_config_route_v3_RouteConfiguration *m =
            envoy_config_route_v3_RouteConfiguration_parse(value, len, a);
        if (!m)
            return NULL;
        name = envoy_config_route_v3_RouteConfiguration_name(m);
        break;
    }
    default:
        return NULL;
    }
    return arena_strndup(a, name.data, name.size);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Decodes r into the arena and checks its shape; does not release r. */
static xf_response_t *decode(upb_Arena *a, const ekg_xds_response_t *r)
{
    size_t total = 0;
    for (size_t i = 0; i < r->npieces; i++)
        total += r->pieces[i].len;
    assert_int_equal(total, r->total_len);
    char *buf = upb_Arena_Malloc(a, total ? total : 1);
    size_t off = 0;
    for (size_t i = 0; i < r->npieces; i++) {
        if (r->pieces[i].len)
            memcpy(buf + off, r->pieces[i].data, r->pieces[i].len);
        off += r->pieces[i].len;
    }
    envoy_service_discovery_v3_DiscoveryResponse *m =
        envoy_service_discovery_v3_DiscoveryResponse_parse(buf, total, a);
    if (!m)
        fail_msg("response of %zu bytes in %zu pieces does not decode as a DiscoveryResponse", total,
                 r->npieces);
    xf_response_t *out = upb_Arena_Malloc(a, sizeof(*out));
    upb_StringView v = envoy_service_discovery_v3_DiscoveryResponse_version_info(m);
    upb_StringView u = envoy_service_discovery_v3_DiscoveryResponse_type_url(m);
    upb_StringView nonce = envoy_service_discovery_v3_DiscoveryResponse_nonce(m);
    size_t n = 0;
    const struct google_protobuf_Any *const *res =
        envoy_service_discovery_v3_DiscoveryResponse_resources(m, &n);
    xf_any_t *items = upb_Arena_Malloc(a, (n ? n : 1) * sizeof(*items));
    const char **sorted = upb_Arena_Malloc(a, (n ? n : 1) * sizeof(*sorted));
    *out = (xf_response_t){
        .type = r->type,
        .version = arena_strndup(a, v.data, v.size),
        .type_url = arena_strndup(a, u.data, u.size),
        .nonce = arena_strndup(a, nonce.data, nonce.size),
        .n = n,
        .items = items,
    };
    if (r->type < EKG_RESOURCE__COUNT)
        assert_string_equal(out->type_url, ekg_resource_type_url(r->type));
    size_t names_len = 1;
    for (size_t i = 0; i < n; i++) {
        upb_StringView iu = google_protobuf_Any_type_url(res[i]);
        upb_StringView iv = google_protobuf_Any_value(res[i]);
        items[i].type_url = arena_strndup(a, iu.data, iu.size);
        items[i].value = arena_strndup(a, iv.data, iv.size);
        items[i].value_len = iv.size;
        const char *name = resource_name(a, items[i].type_url, items[i].value, iv.size);
        items[i].name = name ? name : "?";
        /* Every entry has the response's type. */
        assert_string_equal(items[i].type_url, out->type_url);
        sorted[i] = items[i].name;
        names_len += strlen(items[i].name) + 1;
    }
    qsort(sorted, n, sizeof(*sorted), cmp_str);
    char *names = upb_Arena_Malloc(a, names_len);
    names[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        /* Item 10 of docs/internals/protocol.md: never the same resource name twice in one response. */
        if (i > 0 && strcmp(sorted[i - 1], sorted[i]) == 0)
            fail_msg("response (type %s, nonce %s) carries %s twice", out->type_url, out->nonce, sorted[i]);
        if (i > 0)
            strcat(names, ",");
        strcat(names, sorted[i]);
    }
    out->names = names;
    return out;
}

const xf_response_t *xf_next(xf_t *x, ekg_xds_session_t *s)
{
    ekg_xds_response_t r = {0};
    if (!ekg_xds_session_next(s, &r))
        return NULL;
    /* Flatten into the test's arena and release at once, so that no check below can leak the response. */
    size_t total = 0;
    for (size_t i = 0; i < r.npieces; i++)
        total += r.pieces[i].len;
    char *copy = upb_Arena_Malloc(x->arena, total ? total : 1);
    size_t off = 0;
    for (size_t i = 0; i < r.npieces; i++) {
        if (r.pieces[i].len)
            memcpy(copy + off, r.pieces[i].data, r.pieces[i].len);
        off += r.pieces[i].len;
    }
    size_t total_len = r.total_len;
    ekg_resource_type_t type = r.type;
    ekg_xds_response_release(&r);
    assert_null(r.pieces);
    if (total != total_len)
        fail_msg("response pieces add up to %zu bytes, total_len says %zu", total, total_len);
    ekg_xds_piece_t whole = {.data = copy, .len = total};
    ekg_xds_response_t flat = {.type = type, .pieces = &whole, .npieces = 1, .total_len = total};
    return decode(x->arena, &flat);
}

const xf_response_t *xf_expect(xf_t *x, ekg_xds_session_t *s)
{
    const xf_response_t *r = xf_next(x, s);
    if (!r)
        fail_msg("expected a response, but nothing is due");
    return r;
}

void xf_expect_none(xf_t *x, ekg_xds_session_t *s)
{
    const xf_response_t *r = xf_next(x, s);
    if (r)
        fail_msg("expected no response, got one: type_url=%s version=%s nonce=%s resources=[%s]", r->type_url,
                 r->version, r->nonce, r->names);
}

const xf_any_t *xf_response_find(const xf_response_t *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->items[i].name, name) == 0)
            return &r->items[i];
    return NULL;
}

void xf_assert_carries(const xf_response_t *r, const ekg_resource_t *res)
{
    const xf_any_t *a = xf_response_find(r, ekg_resource_name(res));
    if (!a)
        fail_msg("response (type %s) lacks %s; it carries [%s]", r->type_url, ekg_resource_name(res),
                 r->names);
    assert_string_equal(a->type_url, ekg_resource_type_url(ekg_resource_type(res)));
    size_t len = 0;
    const char *data = ekg_resource_data(res, &len);
    assert_int_equal(a->value_len, len);
    assert_memory_equal(a->value, data, len);
}

/* --- incremental (delta) xDS
 * --------------------------------------------------------------------------------
 */

ekg_xds_session_t *xf_delta_session(xf_t *x, ekg_xds_api_t api)
{
    if (x->nsessions == XF_MAX_SESSIONS)
        fail_msg("xds fixture: more than %d sessions in one test", XF_MAX_SESSIONS);
    ekg_xds_session_t *s = ekg_xds_session_new_delta(api, "test");
    x->sessions[x->nsessions++] = s;
    return s;
}

/* Calls add(msg, token, arena) for every space-separated token of list (copied into the arena). */
static void each_name(upb_Arena *a, const char *list,
                      bool (*add)(envoy_service_discovery_v3_DeltaDiscoveryRequest *, upb_StringView,
                                  upb_Arena *),
                      envoy_service_discovery_v3_DeltaDiscoveryRequest *req)
{
    if (!list)
        return;
    char *copy = arena_strndup(a, list, strlen(list)), *save = NULL;
    for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
        add(req, sv(tok), a);
}

char *xf_delta_request_encode(const xf_delta_request_t *r, size_t *len)
{
    upb_Arena *a = upb_Arena_New();
    envoy_service_discovery_v3_DeltaDiscoveryRequest *req =
        envoy_service_discovery_v3_DeltaDiscoveryRequest_new(a);
    if (r->type_url)
        envoy_service_discovery_v3_DeltaDiscoveryRequest_set_type_url(req, sv(r->type_url));
    if (r->nonce)
        envoy_service_discovery_v3_DeltaDiscoveryRequest_set_response_nonce(req, sv(r->nonce));
    if (r->error)
        google_rpc_Status_set_message(
            envoy_service_discovery_v3_DeltaDiscoveryRequest_mutable_error_detail(req, a), sv(r->error));
    if (r->node_id) {
        envoy_config_core_v3_Node *node =
            envoy_service_discovery_v3_DeltaDiscoveryRequest_mutable_node(req, a);
        envoy_config_core_v3_Node_set_id(node, sv(r->node_id));
        if (r->region || r->zone) {
            envoy_config_core_v3_Locality *l = envoy_config_core_v3_Node_mutable_locality(node, a);
            envoy_config_core_v3_Locality_set_region(l, sv(r->region ? r->region : ""));
            envoy_config_core_v3_Locality_set_zone(l, sv(r->zone ? r->zone : ""));
        }
    }
    each_name(a, r->subscribe, envoy_service_discovery_v3_DeltaDiscoveryRequest_add_resource_names_subscribe,
              req);
    each_name(a, r->unsubscribe,
              envoy_service_discovery_v3_DeltaDiscoveryRequest_add_resource_names_unsubscribe, req);
    if (r->initial) {
        char *copy = arena_strndup(a, r->initial, strlen(r->initial)), *save = NULL;
        for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
            char *eq = strchr(tok, '=');
            if (!eq) {
                upb_Arena_Free(a);
                fail_msg("xds fixture: initial version \"%s\" is not name=version", tok);
            }
            *eq = '\0';
            envoy_service_discovery_v3_DeltaDiscoveryRequest_initial_resource_versions_set(req, sv(tok),
                                                                                           sv(eq + 1), a);
        }
    }
    char *bytes = envoy_service_discovery_v3_DeltaDiscoveryRequest_serialize(req, a, len);
    if (!bytes) {
        upb_Arena_Free(a);
        fail_msg("xds fixture: cannot serialize a DeltaDiscoveryRequest");
    }
    char *copy = ekg_xmalloc(*len ? *len : 1);
    if (*len)
        memcpy(copy, bytes, *len);
    upb_Arena_Free(a);
    return copy;
}

ekg_err_t xf_delta_try_request(ekg_xds_session_t *s, const xf_delta_request_t *r, ekg_diag_t *diag)
{
    size_t len = 0;
    char *bytes = xf_delta_request_encode(r, &len);
    ekg_err_t err = ekg_xds_session_on_request(s, bytes, len, diag);
    free(bytes);
    return err;
}

void xf_delta_request(ekg_xds_session_t *s, const xf_delta_request_t *r)
{
    ekg_diag_t diag = {{0}};
    ekg_err_t err = xf_delta_try_request(s, r, &diag);
    if (err != EKG_OK)
        fail_msg("delta request type_url=%s subscribe=[%s] unsubscribe=[%s] nonce=%s rejected: %s (%s)",
                 r->type_url ? r->type_url : "", r->subscribe ? r->subscribe : "",
                 r->unsubscribe ? r->unsubscribe : "", r->nonce ? r->nonce : "", diag.msg, ekg_strerror(err));
}

void xf_delta_ack(ekg_xds_session_t *s, const xf_delta_response_t *r)
{
    xf_delta_request(s, &(xf_delta_request_t){.type_url = r->type_url, .nonce = r->nonce});
}

void xf_delta_nack(ekg_xds_session_t *s, const xf_delta_response_t *r, const char *message)
{
    xf_delta_request(s, &(xf_delta_request_t){.type_url = r->type_url, .nonce = r->nonce, .error = message});
}

const char *xf_delta_version(const ekg_resource_t *res, char buf[17])
{
    snprintf(buf, 17, "%016llx", (unsigned long long)ekg_resource_hash(res));
    return buf;
}

/* names (n of them) sorted and joined by ',' in the arena; fails the test on a name twice (what: which list).
 */
static const char *join_sorted(upb_Arena *a, const char **names, size_t n, const char *what,
                               const char *nonce)
{
    size_t len = 1;
    qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(names[i - 1], names[i]) == 0)
            fail_msg("delta response (nonce %s) has %s twice in %s", nonce, names[i], what);
        len += strlen(names[i]) + 1;
    }
    char *out = upb_Arena_Malloc(a, len);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strcat(out, ",");
        strcat(out, names[i]);
    }
    return out;
}

static xf_delta_response_t *delta_decode(upb_Arena *a, ekg_resource_type_t type, const char *buf,
                                         size_t total)
{
    envoy_service_discovery_v3_DeltaDiscoveryResponse *m =
        envoy_service_discovery_v3_DeltaDiscoveryResponse_parse(buf, total, a);
    if (!m)
        fail_msg("response of %zu bytes does not decode as a DeltaDiscoveryResponse", total);
    upb_StringView v = envoy_service_discovery_v3_DeltaDiscoveryResponse_system_version_info(m);
    upb_StringView u = envoy_service_discovery_v3_DeltaDiscoveryResponse_type_url(m);
    upb_StringView nonce = envoy_service_discovery_v3_DeltaDiscoveryResponse_nonce(m);
    size_t n = 0, nremoved = 0;
    const envoy_service_discovery_v3_Resource *const *res =
        envoy_service_discovery_v3_DeltaDiscoveryResponse_resources(m, &n);
    const upb_StringView *rem =
        envoy_service_discovery_v3_DeltaDiscoveryResponse_removed_resources(m, &nremoved);
    xf_delta_response_t *out = upb_Arena_Malloc(a, sizeof(*out));
    xf_delta_item_t *items = upb_Arena_Malloc(a, (n ? n : 1) * sizeof(*items));
    const char **sorted = upb_Arena_Malloc(a, (n ? n : 1) * sizeof(*sorted));
    const char **gone = upb_Arena_Malloc(a, (nremoved ? nremoved : 1) * sizeof(*gone));
    *out = (xf_delta_response_t){
        .type = type,
        .system_version = arena_strndup(a, v.data, v.size),
        .type_url = arena_strndup(a, u.data, u.size),
        .nonce = arena_strndup(a, nonce.data, nonce.size),
        .n = n,
        .items = items,
        .nremoved = nremoved,
    };
    assert_string_equal(out->type_url, ekg_resource_type_url(type));
    for (size_t i = 0; i < n; i++) {
        upb_StringView name = envoy_service_discovery_v3_Resource_name(res[i]);
        upb_StringView version = envoy_service_discovery_v3_Resource_version(res[i]);
        if (!envoy_service_discovery_v3_Resource_has_resource(res[i]))
            fail_msg("delta response (nonce %s): Resource %.*s without its resource", out->nonce,
                     (int)name.size, name.data);
        const struct google_protobuf_Any *any = envoy_service_discovery_v3_Resource_resource(res[i]);
        upb_StringView iu = google_protobuf_Any_type_url(any);
        upb_StringView iv = google_protobuf_Any_value(any);
        items[i] = (xf_delta_item_t){
            .name = arena_strndup(a, name.data, name.size),
            .version = arena_strndup(a, version.data, version.size),
            .type_url = arena_strndup(a, iu.data, iu.size),
            .value = arena_strndup(a, iv.data, iv.size),
            .value_len = iv.size,
        };
        assert_string_equal(items[i].type_url, out->type_url);
        const char *inside = resource_name(a, items[i].type_url, items[i].value, iv.size);
        if (!inside || strcmp(inside, items[i].name) != 0)
            fail_msg("delta response (nonce %s): Resource.name %s, but the message's name is %s", out->nonce,
                     items[i].name, inside ? inside : "(does not decode)");
        /* The version is the content hash of the resource's bytes (src/common/hash.h). */
        ekg_resource_t *check = NULL;
        assert_int_equal(ekg_resource_new(type, items[i].name, items[i].value, iv.size, &check), EKG_OK);
        char want[17];
        xf_delta_version(check, want);
        ekg_resource_unref(check);
        if (strcmp(items[i].version, want) != 0)
            fail_msg("delta response (nonce %s): %s has version %s, its content hash is %s", out->nonce,
                     items[i].name, items[i].version, want);
        sorted[i] = items[i].name;
    }
    for (size_t i = 0; i < nremoved; i++) {
        gone[i] = arena_strndup(a, rem[i].data, rem[i].size);
        for (size_t k = 0; k < n; k++)
            if (strcmp(gone[i], items[k].name) == 0)
                fail_msg("delta response (nonce %s) both sends and removes %s", out->nonce, gone[i]);
    }
    out->names = join_sorted(a, sorted, n, "resources", out->nonce);
    out->removed = join_sorted(a, gone, nremoved, "removed_resources", out->nonce);
    return out;
}

const xf_delta_response_t *xf_delta_next(xf_t *x, ekg_xds_session_t *s)
{
    ekg_xds_response_t r = {0};
    if (!ekg_xds_session_next(s, &r))
        return NULL;
    size_t total = 0;
    for (size_t i = 0; i < r.npieces; i++)
        total += r.pieces[i].len;
    char *copy = upb_Arena_Malloc(x->arena, total ? total : 1);
    size_t off = 0;
    for (size_t i = 0; i < r.npieces; i++) {
        if (r.pieces[i].len)
            memcpy(copy + off, r.pieces[i].data, r.pieces[i].len);
        off += r.pieces[i].len;
    }
    size_t total_len = r.total_len;
    ekg_resource_type_t type = r.type;
    ekg_xds_response_release(&r);
    assert_null(r.pieces);
    if (total != total_len)
        fail_msg("response pieces add up to %zu bytes, total_len says %zu", total, total_len);
    if (type >= EKG_RESOURCE__COUNT)
        fail_msg("a delta response of no served type (%d)", (int)type);
    return delta_decode(x->arena, type, copy, total);
}

const xf_delta_response_t *xf_delta_expect(xf_t *x, ekg_xds_session_t *s)
{
    const xf_delta_response_t *r = xf_delta_next(x, s);
    if (!r)
        fail_msg("expected a delta response, but nothing is due");
    return r;
}

void xf_delta_expect_none(xf_t *x, ekg_xds_session_t *s)
{
    const xf_delta_response_t *r = xf_delta_next(x, s);
    if (r)
        fail_msg("expected no response, got one: type_url=%s system_version=%s nonce=%s resources=[%s] "
                 "removed=[%s]",
                 r->type_url, r->system_version, r->nonce, r->names, r->removed);
}

const xf_delta_item_t *xf_delta_find(const xf_delta_response_t *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->items[i].name, name) == 0)
            return &r->items[i];
    return NULL;
}

void xf_delta_assert_carries(const xf_delta_response_t *r, const ekg_resource_t *res)
{
    const xf_delta_item_t *it = xf_delta_find(r, ekg_resource_name(res));
    if (!it)
        fail_msg("delta response (type %s) lacks %s; it carries [%s]", r->type_url, ekg_resource_name(res),
                 r->names);
    assert_string_equal(it->type_url, ekg_resource_type_url(ekg_resource_type(res)));
    size_t len = 0;
    const char *data = ekg_resource_data(res, &len);
    assert_int_equal(it->value_len, len);
    assert_memory_equal(it->value, data, len);
    char v[17];
    assert_string_equal(it->version, xf_delta_version(res, v));
}
