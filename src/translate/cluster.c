/*
 * src/translate/cluster.c: one Service port -> one envoy.config.cluster.v3.Cluster.
 *
 * The config gives the starting point (base plus matching overrides, ekg_config_cluster). This file then
 * fills in what comes from Kubernetes: the name, and how the cluster finds its endpoints:
 *   - effective type EDS: EDS over ADS unless the config says otherwise (a ClusterLoadAssignment follows);
 *   - no discovery type at all (a config base without `type`): STRICT_DNS;
 *   - any DNS/static type: a load_assignment to <service>.<namespace>.svc.<domain>. and the port;
 *   - ExternalName Services: DNS (STRICT_DNS unless the config chose LOGICAL_DNS) to the external name;
 *   - cluster_type (custom clusters such as aggregate): left as configured.
 * Every Cluster built is checked against Envoy's validation rules (ekg_proto_validate) before it is encoded:
 * one that breaks a rule is not encoded and the caller drops it. ekg_cluster_fill_example() fills in the same
 * fields for an example Service port, so that config loading checks the clusters a config makes as they
 * would be sent. Errors are the config's (an override that does not merge) and upb's encoder's; out of
 * memory, upb's included, aborts (ekglue/mem.h). Thread: the translator's owner (fill_example: config.c's
 * loading thread).
 */
#include <stdio.h>
#include <string.h>

#include "envoy/config/core/v3/address.upb.h"
#include "envoy/config/core/v3/config_source.upb.h"
#include "envoy/config/endpoint/v3/endpoint_components.upb.h"

#include "ekglue/clock.h"
#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/proto.h"

#include "common/pbwrite.h"

#include "translate/translate_internal.h"

bool ekg_cluster_name(const ekg_service_t *svc, const ekg_service_port_t *port, char *buf, size_t size)
{
    if (port->protocol == EKG_PROTOCOL_SCTP)
        return false;
    const char *udp = port->protocol == EKG_PROTOCOL_UDP ? ":udp" : "";
    if (port->name[0])
        snprintf(buf, size, "%s:%s:%s%s", svc->meta.namespace_, svc->meta.name, port->name, udp);
    else
        snprintf(buf, size, "%s:%s:%d%s", svc->meta.namespace_, svc->meta.name, (int)port->port, udp);
    return true;
}

static upb_StringView arena_string(upb_Arena *arena, const char *s)
{
    return upb_StringView_FromDataAndSize(ekg_proto_strdup(arena, s), strlen(s));
}

/* A load_assignment with the single DNS endpoint host:port. upb's accessors return NULL only when the arena
 * cannot grow. */
static void set_dns_target(envoy_config_cluster_v3_Cluster *c, const char *name, const char *host,
                           uint32_t port, bool udp, upb_Arena *arena)
{
    envoy_config_endpoint_v3_ClusterLoadAssignment *la =
        envoy_config_cluster_v3_Cluster_mutable_load_assignment(c, arena);
    if (!la)
        ekg_oom(0);
    envoy_config_endpoint_v3_ClusterLoadAssignment_set_cluster_name(la, arena_string(arena, name));
    envoy_config_endpoint_v3_LocalityLbEndpoints *lle =
        envoy_config_endpoint_v3_ClusterLoadAssignment_add_endpoints(la, arena);
    envoy_config_endpoint_v3_LbEndpoint *lbe =
        lle ? envoy_config_endpoint_v3_LocalityLbEndpoints_add_lb_endpoints(lle, arena) : NULL;
    envoy_config_endpoint_v3_Endpoint *ep =
        lbe ? envoy_config_endpoint_v3_LbEndpoint_mutable_endpoint(lbe, arena) : NULL;
    envoy_config_core_v3_Address *addr =
        ep ? envoy_config_endpoint_v3_Endpoint_mutable_address(ep, arena) : NULL;
    envoy_config_core_v3_SocketAddress *sa =
        addr ? envoy_config_core_v3_Address_mutable_socket_address(addr, arena) : NULL;
    if (!sa)
        ekg_oom(0);
    envoy_config_core_v3_SocketAddress_set_address(sa, arena_string(arena, host));
    envoy_config_core_v3_SocketAddress_set_port_value(sa, port);
    if (udp)
        envoy_config_core_v3_SocketAddress_set_protocol(sa, envoy_config_core_v3_SocketAddress_UDP);
}

/*
 * Fills in what ekglue owns in c, the config's Cluster for Service port `port` of svc: the name and how the
 * cluster finds its endpoints (the head comment). *is_eds: it needs a ClusterLoadAssignment.
 */
static void fill_cluster(envoy_config_cluster_v3_Cluster *c, const ekg_service_t *svc,
                         const ekg_service_port_t *port, const char *name, const ekg_config_t *cfg,
                         upb_Arena *arena, bool *is_eds)
{
    *is_eds = false;
    envoy_config_cluster_v3_Cluster_set_name(c, arena_string(arena, name));

    int case_ = envoy_config_cluster_v3_Cluster_cluster_discovery_type_case(c);
    if (case_ == envoy_config_cluster_v3_Cluster_cluster_discovery_type_cluster_type)
        return; /* a custom cluster (e.g. aggregate): the config owns its endpoints */
    int32_t type = case_ == envoy_config_cluster_v3_Cluster_cluster_discovery_type_type
                       ? envoy_config_cluster_v3_Cluster_type(c)
                       : envoy_config_cluster_v3_Cluster_STRICT_DNS;
    bool udp = port->protocol == EKG_PROTOCOL_UDP;

    if (svc->type == EKG_SERVICE_EXTERNAL_NAME) {
        if (type != envoy_config_cluster_v3_Cluster_LOGICAL_DNS)
            type = envoy_config_cluster_v3_Cluster_STRICT_DNS;
        envoy_config_cluster_v3_Cluster_set_type(c, type);
        envoy_config_cluster_v3_Cluster_clear_eds_cluster_config(c);
        envoy_config_cluster_v3_Cluster_clear_load_assignment(c);
        set_dns_target(c, name, svc->external_name, (uint32_t)port->port, udp, arena);
        return;
    }
    envoy_config_cluster_v3_Cluster_set_type(c, type);
    if (type == envoy_config_cluster_v3_Cluster_EDS) {
        envoy_config_cluster_v3_Cluster_EdsClusterConfig *eds =
            envoy_config_cluster_v3_Cluster_mutable_eds_cluster_config(c, arena);
        if (!eds)
            ekg_oom(0);
        /* The ClusterLoadAssignment is named after the cluster; a service_name would point elsewhere. */
        envoy_config_cluster_v3_Cluster_EdsClusterConfig_clear_service_name(eds);
        if (!envoy_config_cluster_v3_Cluster_EdsClusterConfig_has_eds_config(eds)) {
            envoy_config_core_v3_ConfigSource *src =
                envoy_config_cluster_v3_Cluster_EdsClusterConfig_mutable_eds_config(eds, arena);
            if (!src || !envoy_config_core_v3_ConfigSource_mutable_ads(src, arena))
                ekg_oom(0);
            envoy_config_core_v3_ConfigSource_set_resource_api_version(src, envoy_config_core_v3_V3);
        }
        *is_eds = true;
    } else if (type != envoy_config_cluster_v3_Cluster_ORIGINAL_DST && /* no endpoints of its own */
               !envoy_config_cluster_v3_Cluster_has_load_assignment(c)) {
        /* DNS: the Service's name resolves to its ClusterIP (service port) or, when headless, to the pods
         * (target port, if it is a number). */
        char host[512];
        snprintf(host, sizeof(host), "%s.%s.svc.%s.", svc->meta.name, svc->meta.namespace_,
                 ekg_config_cluster_domain(cfg));
        int32_t p = svc->headless && port->target_port > 0 ? port->target_port : port->port;
        set_dns_target(c, name, host, (uint32_t)p, udp, arena);
    }
}

void ekg_cluster_fill_example(envoy_config_cluster_v3_Cluster *c, const ekg_config_t *cfg, upb_Arena *arena)
{
    ekg_service_port_t port = {.name = "http", .protocol = EKG_PROTOCOL_TCP, .port = 80, .target_port = 8080};
    ekg_service_t svc = {.meta = {.namespace_ = "default", .name = "example", .resource_version = ""},
                         .type = EKG_SERVICE_CLUSTER_IP,
                         .ports = &port,
                         .nports = 1};
    bool is_eds;
    fill_cluster(c, &svc, &port, "default:example:http", cfg, arena, &is_eds);
}

/* Builds the Cluster of one Service port in arena (*out NULL when suppressed); *is_eds: it needs a CLA. */
static ekg_err_t build_cluster(const ekg_service_input_t *in, const ekg_cluster_match_input_t *match,
                               const ekg_service_port_t *port, const char *name, upb_Arena *arena,
                               envoy_config_cluster_v3_Cluster **out, bool *is_eds)
{
    envoy_config_cluster_v3_Cluster *c = NULL;
    bool suppressed = false;
    ekg_diag_t diag = {{0}};
    *out = NULL;
    *is_eds = false;
    ekg_err_t err = ekg_config_cluster(in->cfg, match, arena, &c, &suppressed, &diag);
    if (err != EKG_OK) {
        ekg_warn("cluster %s: %s", name, diag.msg[0] ? diag.msg : ekg_strerror(err));
        return err;
    }
    if (suppressed)
        return EKG_OK;
    fill_cluster(c, in->svc, port, name, in->cfg, arena, is_eds);
    *out = c;
    return EKG_OK;
}

ekg_err_t ekg_encode_cluster(const ekg_service_input_t *in, const ekg_service_port_t *port, const char *name,
                             upb_Arena *arena, char **bytes, size_t *len, bool *is_eds,
                             ekg_violation_t *invalid)
{
    const ekg_service_t *svc = in->svc;
    ekg_cluster_match_input_t match = {
        .cluster_name = name,
        .namespace_ = svc->meta.namespace_,
        .service = svc->meta.name,
        .port_name = port->name,
        .app_protocol = port->app_protocol,
    };
    char key[256];
    bool shareable = in->shared_clusters && svc->type != EKG_SERVICE_EXTERNAL_NAME &&
                     ekg_config_cluster_key(in->cfg, &match, key, sizeof(key));
    *bytes = NULL;
    *is_eds = false;
    invalid->rule[0] = '\0';
    if (shareable) {
        const shared_cluster_t *sc = ekg_map_get(in->shared_clusters, key);
        if (sc) {
            size_t name_len = strlen(name);
            size_t total = ekg_pb_field_size(1, name_len) + sc->len;
            char *p = ekg_proto_alloc(arena, total);
            memcpy(ekg_pb_put_field(p, 1, name, name_len), sc->bytes, sc->len);
            *bytes = p;
            *len = total;
            *is_eds = true;
            return EKG_OK;
        }
    }
    envoy_config_cluster_v3_Cluster *c = NULL;
    const upb_MessageDef *def = ekg_proto_message(EKG_TYPE_CLUSTER);
    ekg_err_t err = build_cluster(in, &match, port, name, arena, &c, is_eds);
    if (err || !c)
        return err;
    /* What Envoy would NACK is not sent (docs/config.md, "Validation"). Clusters spliced from a shared
     * encoding above were checked here when it was made: they differ from it by their name only. */
    double start = in->validate_ns ? ekg_clock_s() : 0;
    bool valid = ekg_proto_validate(c, def, invalid) == EKG_OK;
    if (in->validate_ns)
        *in->validate_ns += (uint64_t)((ekg_clock_s() - start) * 1e9);
    if (!valid) {
        *is_eds = false;
        return EKG_OK;
    }
    if ((err = ekg_proto_encode(c, def, arena, bytes, len)) != EKG_OK)
        return err;
    if (shareable && *is_eds) {
        /* Everything but the name is the same for every cluster with this key: keep that part. */
        char *rest;
        size_t rest_len;
        envoy_config_cluster_v3_Cluster_set_name(c, upb_StringView_FromDataAndSize(NULL, 0));
        if ((err = ekg_proto_encode(c, def, arena, &rest, &rest_len)) != EKG_OK)
            return err;
        shared_cluster_t *sc = ekg_xmalloc(sizeof(*sc) + rest_len);
        sc->key = ekg_xstrdup(key);
        sc->len = rest_len;
        memcpy(sc->bytes, rest, rest_len);
        ekg_map_put(in->shared_clusters, sc->key, sc, NULL);
    }
    return EKG_OK;
}
