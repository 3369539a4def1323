/*
 * src/translate/load_assignment.c: the endpoints of one Service port -> one ClusterLoadAssignment.
 *
 * Steps: gather (address, port, health, locality) from every slice of the Service whose port of the same name
 * and protocol exists (slice ports are target ports, so port and targetPort may differ); drop FQDN slices and
 * endpoints that are not ready (unless include_not_ready); de-duplicate by address and port, keeping the best
 * health; group by locality, sorted; weight each locality by its endpoint count (gRPC needs a weight on every
 * locality). Health: ready -> HEALTHY; not ready but serving and terminating -> DRAINING; otherwise not ready
 * -> left out, or DEGRADED with include_not_ready. Unset conditions: ready = true, serving = ready,
 * terminating = false (Kubernetes' documented defaults).
 * Thread: the translator's owner.
 */
#include <stdlib.h>
#include <string.h>

#include "envoy/config/core/v3/address.upb.h"
#include "envoy/config/core/v3/base.upb.h"
#include "envoy/config/core/v3/health_check.upb.h"
#include "envoy/config/endpoint/v3/endpoint_components.upb.h"
#include "google/protobuf/wrappers.upb.h"

#include "translate_internal.h"

typedef struct candidate {
    const char *address;
    int32_t port;
    int health; /* envoy_config_core_v3_HealthStatus */
    int rank;   /* higher is better, for de-duplication */
    ekg_locality_t locality;
} candidate_t;

static int cmp_address(const void *a, const void *b)
{
    const candidate_t *x = a, *y = b;
    int c = strcmp(x->address, y->address);
    if (c)
        return c;
    if (x->port != y->port)
        return x->port < y->port ? -1 : 1;
    return y->rank - x->rank; /* best first, so de-duplication keeps the first */
}

static int cmp_locality(const void *a, const void *b)
{
    const candidate_t *x = a, *y = b;
    int c = strcmp(x->locality.region, y->locality.region);
    if (!c)
        c = strcmp(x->locality.zone, y->locality.zone);
    if (!c)
        c = strcmp(x->locality.sub_zone, y->locality.sub_zone);
    if (!c)
        c = strcmp(x->address, y->address);
    if (!c && x->port != y->port)
        c = x->port < y->port ? -1 : 1;
    return c;
}

static bool same_locality(const ekg_locality_t *a, const ekg_locality_t *b)
{
    return strcmp(a->region, b->region) == 0 && strcmp(a->zone, b->zone) == 0 &&
           strcmp(a->sub_zone, b->sub_zone) == 0;
}

/* The slice's port for a Service port: same name and protocol. Returns the port number, or 0 if none. */
static int32_t slice_port(const ekg_endpoint_slice_t *slice, const ekg_service_port_t *sp)
{
    for (size_t i = 0; i < slice->nports; i++) {
        const ekg_slice_port_t *p = &slice->ports[i];
        if (strcmp(p->name, sp->name) != 0 || p->protocol != sp->protocol)
            continue;
        if (p->port > 0)
            return p->port;
        /* port null = "all ports": only a numeric targetPort can tell which. */
        return sp->target_port > 0 ? sp->target_port : 0;
    }
    return 0;
}

/* Health of an endpoint, or -1 when it is left out. */
static int endpoint_health(const ekg_endpoint_t *ep, bool include_not_ready, int *rank)
{
    bool ready = ep->ready != EKG_COND_FALSE;
    bool serving = ep->serving == EKG_COND_UNSET ? ready : ep->serving == EKG_COND_TRUE;
    bool terminating = ep->terminating == EKG_COND_TRUE;
    if (ready) {
        *rank = 3;
        return envoy_config_core_v3_HEALTHY;
    }
    if (serving && terminating) {
        *rank = 2;
        return envoy_config_core_v3_DRAINING;
    }
    if (include_not_ready) {
        *rank = 1;
        return envoy_config_core_v3_DEGRADED;
    }
    return -1;
}

static upb_StringView view(const char *s)
{
    return upb_StringView_FromDataAndSize(s, strlen(s));
}

ekg_err_t ekg_translate_load_assignment(const ekg_service_input_t *in, const ekg_service_port_t *port,
                                        const char *name, upb_Arena *arena,
                                        envoy_config_endpoint_v3_ClusterLoadAssignment **out)
{
    ekg_err_t err = EKG_OK;
    candidate_t *cands = NULL;
    size_t n = 0, cap = 0;
    bool include_not_ready = ekg_config_include_not_ready(in->cfg);

    envoy_config_endpoint_v3_ClusterLoadAssignment *cla =
        envoy_config_endpoint_v3_ClusterLoadAssignment_new(arena);
    if (!cla)
        return EKG_ENOMEM;
    /* Strings set below must outlive the arena's use: name is copied, the rest point into the model objects,
     * which outlive the encode that follows. */
    size_t name_len = strlen(name);
    char *name_copy = upb_Arena_Malloc(arena, name_len + 1);
    if (!name_copy)
        return EKG_ENOMEM;
    memcpy(name_copy, name, name_len + 1);
    envoy_config_endpoint_v3_ClusterLoadAssignment_set_cluster_name(
        cla, upb_StringView_FromDataAndSize(name_copy, name_len));

    for (size_t s = 0; s < in->nslices; s++) {
        const ekg_endpoint_slice_t *slice = in->slices[s];
        if (slice->address_type == EKG_ADDRESS_FQDN)
            continue;
        int32_t target = slice_port(slice, port);
        if (target <= 0)
            continue;
        for (size_t e = 0; e < slice->nendpoints; e++) {
            const ekg_endpoint_t *ep = &slice->endpoints[e];
            int rank;
            int health = endpoint_health(ep, include_not_ready, &rank);
            if (health < 0 || ep->naddresses == 0)
                continue;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                candidate_t *p = realloc(cands, ncap * sizeof(*p));
                if (!p) {
                    err = EKG_ENOMEM;
                    goto out;
                }
                cands = p;
                cap = ncap;
            }
            candidate_t *c = &cands[n++];
            /* Kubernetes: the addresses of one endpoint are fungible; consumers use the first. */
            c->address = ep->addresses[0];
            c->port = target;
            c->health = health;
            c->rank = rank;
            ekg_endpoint_locality(in, ep, &c->locality);
        }
    }

    /* De-duplicate across slices (an endpoint may appear in two slices during a resync). */
    if (n > 1) {
        qsort(cands, n, sizeof(*cands), cmp_address);
        size_t w = 1;
        for (size_t r = 1; r < n; r++)
            if (strcmp(cands[r].address, cands[w - 1].address) != 0 || cands[r].port != cands[w - 1].port)
                cands[w++] = cands[r];
        n = w;
        qsort(cands, n, sizeof(*cands), cmp_locality);
    }

    envoy_config_endpoint_v3_LocalityLbEndpoints *group = NULL;
    uint32_t group_size = 0;
    for (size_t i = 0; i <= n; i++) {
        if (group && (i == n || !same_locality(&cands[i].locality, &cands[i - 1].locality))) {
            google_protobuf_UInt32Value *w =
                envoy_config_endpoint_v3_LocalityLbEndpoints_mutable_load_balancing_weight(group, arena);
            if (!w) {
                err = EKG_ENOMEM;
                goto out;
            }
            google_protobuf_UInt32Value_set_value(w, group_size);
            group = NULL;
        }
        if (i == n)
            break;
        if (!group) {
            group = envoy_config_endpoint_v3_ClusterLoadAssignment_add_endpoints(cla, arena);
            envoy_config_core_v3_Locality *loc =
                group ? envoy_config_endpoint_v3_LocalityLbEndpoints_mutable_locality(group, arena) : NULL;
            if (!loc) {
                err = EKG_ENOMEM;
                goto out;
            }
            envoy_config_core_v3_Locality_set_region(loc, view(cands[i].locality.region));
            envoy_config_core_v3_Locality_set_zone(loc, view(cands[i].locality.zone));
            envoy_config_core_v3_Locality_set_sub_zone(loc, view(cands[i].locality.sub_zone));
            group_size = 0;
        }
        envoy_config_endpoint_v3_LbEndpoint *lbe =
            envoy_config_endpoint_v3_LocalityLbEndpoints_add_lb_endpoints(group, arena);
        envoy_config_endpoint_v3_Endpoint *ep =
            lbe ? envoy_config_endpoint_v3_LbEndpoint_mutable_endpoint(lbe, arena) : NULL;
        envoy_config_core_v3_Address *addr =
            ep ? envoy_config_endpoint_v3_Endpoint_mutable_address(ep, arena) : NULL;
        envoy_config_core_v3_SocketAddress *sa =
            addr ? envoy_config_core_v3_Address_mutable_socket_address(addr, arena) : NULL;
        if (!sa) {
            err = EKG_ENOMEM;
            goto out;
        }
        envoy_config_core_v3_SocketAddress_set_address(sa, view(cands[i].address));
        envoy_config_core_v3_SocketAddress_set_port_value(sa, (uint32_t)cands[i].port);
        if (port->protocol == EKG_PROTOCOL_UDP)
            envoy_config_core_v3_SocketAddress_set_protocol(sa, envoy_config_core_v3_SocketAddress_UDP);
        envoy_config_endpoint_v3_LbEndpoint_set_health_status(lbe, cands[i].health);
        group_size++;
    }
    *out = cla;
out:
    free(cands);
    return err;
}
