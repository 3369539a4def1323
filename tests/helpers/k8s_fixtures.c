/*
 * tests/helpers/k8s_fixtures.c: Kubernetes object builders and Envoy resource readers for the unit tests
 * (tests/helpers/k8s_fixtures.h). Every failure ends the running cmocka test with a message saying what did
 * not parse or decode and why. Thread: the test's main thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envoy/config/core/v3/address.upb.h"
#include "envoy/config/core/v3/base.upb.h"
#include "envoy/config/core/v3/health_check.upb.h"
#include "envoy/config/endpoint/v3/endpoint_components.upb.h"
#include "google/protobuf/wrappers.upb.h"

#include "ekglue/mem.h"
#include "ekglue/proto.h"
#include "ekglue/render.h"

#include "k8s_fixtures.h"

/* printf-formats fmt and turns every ' into "; malloc'ed (ekg_xmalloc). */
static char *format_json(const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0)
        fail_msg("fixture: cannot format \"%s\"", fmt);
    char *text = ekg_xmalloc((size_t)n + 1);
    vsnprintf(text, (size_t)n + 1, fmt, ap);
    for (char *p = text; *p; p++)
        if (*p == '\'')
            *p = '"';
    return text;
}

static cJSON *parse_json(const char *what, const char *text)
{
    cJSON *obj = cJSON_Parse(text);
    if (!obj) {
        const char *at = cJSON_GetErrorPtr();
        fail_msg("fixture %s: invalid JSON near \"%.40s\" in: %s", what, at ? at : "?", text);
    }
    return obj;
}

ekg_service_t *fx_service(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = format_json(fmt, ap);
    va_end(ap);
    cJSON *obj = parse_json("Service", text);
    ekg_service_t *svc = NULL;
    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_service_from_json(obj, &svc, &diag);
    cJSON_Delete(obj);
    if (err != EKG_OK)
        fail_msg("fixture Service: %s (%s) in: %s", diag.msg, ekg_strerror(err), text);
    free(text);
    return svc;
}

ekg_endpoint_slice_t *fx_slice(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = format_json(fmt, ap);
    va_end(ap);
    cJSON *obj = parse_json("EndpointSlice", text);
    ekg_endpoint_slice_t *slice = NULL;
    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_endpoint_slice_from_json(obj, &slice, &diag);
    cJSON_Delete(obj);
    if (err != EKG_OK)
        fail_msg("fixture EndpointSlice: %s (%s) in: %s", diag.msg, ekg_strerror(err), text);
    free(text);
    return slice;
}

ekg_node_t *fx_node(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = format_json(fmt, ap);
    va_end(ap);
    cJSON *obj = parse_json("Node", text);
    ekg_node_t *node = NULL;
    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_node_from_json(obj, &node, &diag);
    cJSON_Delete(obj);
    if (err != EKG_OK)
        fail_msg("fixture Node: %s (%s) in: %s", diag.msg, ekg_strerror(err), text);
    free(text);
    return node;
}

ekg_node_t *fx_node_in(const char *name, const char *region, const char *zone)
{
    char labels[512];
    snprintf(labels, sizeof(labels), "'kubernetes.io/hostname': '%s'%s%s%s%s%s%s", name,
             region ? ", 'topology.kubernetes.io/region': '" : "", region ? region : "", region ? "'" : "",
             zone ? ", 'topology.kubernetes.io/zone': '" : "", zone ? zone : "", zone ? "'" : "");
    return fx_node("{'apiVersion': 'v1', 'kind': 'Node', 'metadata': {'name': '%s', 'labels': {%s}}}", name,
                   labels);
}

ekg_config_t *fx_config(const char *yaml)
{
    ekg_config_t *cfg = NULL;
    ekg_diag_t diag = {{0}};
    ekg_err_t err = yaml ? ekg_config_parse(yaml, strlen(yaml), "test-config.yaml", &cfg, &diag)
                         : ekg_config_default(&cfg, &diag);
    if (err != EKG_OK)
        fail_msg("fixture config: %s (%s)", diag.msg, ekg_strerror(err));
    return cfg;
}

ekg_translator_t *fx_translator(const ekg_config_t *cfg)
{
    return ekg_translator_new(cfg);
}

void fx_build(ekg_translator_t *t, ekg_resource_set_t **clusters, ekg_resource_set_t **load_assignments)
{
    ekg_err_t err = ekg_translator_build(t, clusters, load_assignments);
    if (err != EKG_OK)
        fail_msg("ekg_translator_build: %s", ekg_strerror(err));
}

static void check_type(const ekg_resource_t *r, ekg_resource_type_t want)
{
    if (ekg_resource_type(r) != want)
        fail_msg("resource %s: type %d, expected %d", ekg_resource_name(r), (int)ekg_resource_type(r),
                 (int)want);
}

envoy_config_cluster_v3_Cluster *fx_decode_cluster(const ekg_resource_t *r, upb_Arena *arena)
{
    check_type(r, EKG_RESOURCE_CLUSTER);
    size_t len;
    const char *data = ekg_resource_data(r, &len);
    envoy_config_cluster_v3_Cluster *c = envoy_config_cluster_v3_Cluster_parse(data, len, arena);
    if (!c)
        fail_msg("resource %s: %zu bytes do not decode as a Cluster", ekg_resource_name(r), len);
    return c;
}

envoy_config_endpoint_v3_ClusterLoadAssignment *fx_decode_load_assignment(const ekg_resource_t *r,
                                                                          upb_Arena *arena)
{
    check_type(r, EKG_RESOURCE_LOAD_ASSIGNMENT);
    size_t len;
    const char *data = ekg_resource_data(r, &len);
    envoy_config_endpoint_v3_ClusterLoadAssignment *la =
        envoy_config_endpoint_v3_ClusterLoadAssignment_parse(data, len, arena);
    if (!la)
        fail_msg("resource %s: %zu bytes do not decode as a ClusterLoadAssignment", ekg_resource_name(r),
                 len);
    return la;
}

char *fx_set_names(const ekg_resource_set_t *set)
{
    size_t total = 1;
    for (size_t i = 0; i < ekg_resource_set_size(set); i++)
        total += strlen(ekg_resource_name(ekg_resource_set_at(set, i))) + 1;
    char *out = ekg_xmalloc(total);
    out[0] = '\0';
    for (size_t i = 0; i < ekg_resource_set_size(set); i++) {
        if (i)
            strcat(out, ",");
        strcat(out, ekg_resource_name(ekg_resource_set_at(set, i)));
    }
    return out;
}

static const ekg_resource_t *find_or_fail(const ekg_resource_set_t *set, const char *name)
{
    const ekg_resource_t *r = ekg_resource_set_find(set, name);
    if (!r) {
        char *names = fx_set_names(set);
        print_error("resource %s not found; the set holds: %s\n", name, names);
        free(names);
        fail_msg("resource %s not found", name);
    }
    return r;
}

envoy_config_cluster_v3_Cluster *fx_find_cluster(const ekg_resource_set_t *set, const char *name,
                                                 upb_Arena *arena)
{
    return fx_decode_cluster(find_or_fail(set, name), arena);
}

envoy_config_endpoint_v3_ClusterLoadAssignment *fx_find_load_assignment(const ekg_resource_set_t *set,
                                                                        const char *name, upb_Arena *arena)
{
    return fx_decode_load_assignment(find_or_fail(set, name), arena);
}

char *fx_render_json(const ekg_resource_t *r)
{
    cJSON *doc = NULL;
    ekg_err_t err = ekg_render_resource(r, &doc);
    if (err != EKG_OK)
        fail_msg("ekg_render_resource(%s): %s", ekg_resource_name(r), ekg_strerror(err));
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!text)
        fail_msg("fixture: out of memory");
    return text;
}

const char *fx_str(upb_StringView sv, upb_Arena *arena)
{
    char *p = upb_Arena_Malloc(arena, sv.size + 1);
    if (!p)
        fail_msg("fixture: out of memory");
    if (sv.size)
        memcpy(p, sv.data, sv.size);
    p[sv.size] = '\0';
    return p;
}

/* A growing string in an arena. */
typedef struct strbuf {
    upb_Arena *arena;
    char *p;
    size_t len, cap;
} strbuf_t;

static void sb_printf(strbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        fail_msg("fixture: cannot format \"%s\"", fmt);
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->len + (size_t)n + 1) * 2;
        char *p = upb_Arena_Malloc(b->arena, cap);
        if (!p)
            fail_msg("fixture: out of memory");
        if (b->len)
            memcpy(p, b->p, b->len);
        b->p = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static const char *health_name(int32_t h)
{
    static const char *const names[] = {"UNKNOWN", "HEALTHY", "UNHEALTHY", "DRAINING", "TIMEOUT", "DEGRADED"};
    return h >= 0 && h < (int32_t)(sizeof(names) / sizeof(names[0])) ? names[h] : "?";
}

static void describe_endpoint(strbuf_t *b, const envoy_config_endpoint_v3_LbEndpoint *lbe)
{
    const envoy_config_endpoint_v3_Endpoint *ep = envoy_config_endpoint_v3_LbEndpoint_endpoint(lbe);
    const envoy_config_core_v3_Address *addr = ep ? envoy_config_endpoint_v3_Endpoint_address(ep) : NULL;
    const envoy_config_core_v3_SocketAddress *sa =
        addr ? envoy_config_core_v3_Address_socket_address(addr) : NULL;
    if (!sa) {
        sb_printf(b, "(no socket address)");
        return;
    }
    upb_StringView a = envoy_config_core_v3_SocketAddress_address(sa);
    sb_printf(
        b, "%.*s:%u%s", (int)a.size, a.data, (unsigned)envoy_config_core_v3_SocketAddress_port_value(sa),
        envoy_config_core_v3_SocketAddress_protocol(sa) == envoy_config_core_v3_SocketAddress_UDP ? ":udp"
                                                                                                  : "");
}

const char *fx_describe_load_assignment(const envoy_config_endpoint_v3_ClusterLoadAssignment *la,
                                        upb_Arena *arena)
{
    strbuf_t b = {arena, NULL, 0, 0};
    sb_printf(&b, "%s", "");
    size_t nloc;
    const envoy_config_endpoint_v3_LocalityLbEndpoints *const *locs =
        envoy_config_endpoint_v3_ClusterLoadAssignment_endpoints(la, &nloc);
    for (size_t i = 0; i < nloc; i++) {
        const envoy_config_core_v3_Locality *l =
            envoy_config_endpoint_v3_LocalityLbEndpoints_locality(locs[i]);
        upb_StringView region = l ? envoy_config_core_v3_Locality_region(l) : upb_StringView_FromString("");
        upb_StringView zone = l ? envoy_config_core_v3_Locality_zone(l) : upb_StringView_FromString("");
        upb_StringView sub = l ? envoy_config_core_v3_Locality_sub_zone(l) : upb_StringView_FromString("");
        sb_printf(&b, "%s%.*s/%.*s/%.*s ", i ? " | " : "", (int)region.size, region.data, (int)zone.size,
                  zone.data, (int)sub.size, sub.data);
        uint32_t prio = envoy_config_endpoint_v3_LocalityLbEndpoints_priority(locs[i]);
        if (prio)
            sb_printf(&b, "p=%u ", (unsigned)prio);
        const struct google_protobuf_UInt32Value *w =
            envoy_config_endpoint_v3_LocalityLbEndpoints_load_balancing_weight(locs[i]);
        if (w)
            sb_printf(&b, "w=%u:", (unsigned)google_protobuf_UInt32Value_value(w));
        else
            sb_printf(&b, "w=-:");
        size_t nep;
        const envoy_config_endpoint_v3_LbEndpoint *const *eps =
            envoy_config_endpoint_v3_LocalityLbEndpoints_lb_endpoints(locs[i], &nep);
        for (size_t j = 0; j < nep; j++) {
            sb_printf(&b, "%s", j ? ", " : " ");
            describe_endpoint(&b, eps[j]);
            sb_printf(&b, " %s", health_name(envoy_config_endpoint_v3_LbEndpoint_health_status(eps[j])));
        }
    }
    return b.p;
}

const char *fx_cluster_dns_target(const envoy_config_cluster_v3_Cluster *c, upb_Arena *arena)
{
    const char *name = fx_str(envoy_config_cluster_v3_Cluster_name(c), arena);
    const envoy_config_endpoint_v3_ClusterLoadAssignment *la =
        envoy_config_cluster_v3_Cluster_load_assignment(c);
    if (!la)
        fail_msg("cluster %s has no load_assignment", name);
    size_t nloc, nep = 0;
    const envoy_config_endpoint_v3_LocalityLbEndpoints *const *locs =
        envoy_config_endpoint_v3_ClusterLoadAssignment_endpoints(la, &nloc);
    const envoy_config_endpoint_v3_LbEndpoint *const *eps =
        nloc == 1 ? envoy_config_endpoint_v3_LocalityLbEndpoints_lb_endpoints(locs[0], &nep) : NULL;
    if (nloc != 1 || nep != 1)
        fail_msg("cluster %s: load_assignment has %zu localities and %zu endpoints, expected 1 and 1", name,
                 nloc, nep);
    strbuf_t b = {arena, NULL, 0, 0};
    sb_printf(&b, "%s", "");
    describe_endpoint(&b, eps[0]);
    return b.p;
}
