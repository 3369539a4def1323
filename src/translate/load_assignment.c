/*
 * src/translate/load_assignment.c: the endpoints of one Service port -> one ClusterLoadAssignment.
 *
 * Steps: gather (address, port, health, locality) from every slice of the Service whose port of the same name
 * and protocol exists (slice ports are target ports, so port and targetPort may differ); drop FQDN slices and
 * endpoints that are not ready (unless include_not_ready); de-duplicate by address and port, keeping the best
 * health; group by locality, sorted; weight each locality by its endpoint count (gRPC needs a weight on every
 * locality). Health: ready -> HEALTHY; not ready but serving and terminating -> DRAINING; otherwise not ready
 * -> left out, or DEGRADED with include_not_ready. Unset conditions: ready = true, serving = ready,
 * terminating = false (Kubernetes' documented defaults). The same candidates, with their Nodes and zone
 * hints, feed the per-zone variants (zones.c). Out of memory aborts (ekglue/mem.h). Thread: the translator's
 * owner.
 */
#include <stdlib.h>
#include <string.h>

#include "envoy/config/core/v3/health_check.upb.h"

#include "ekglue/mem.h"
#include "ekglue/proto.h"

#include "common/pbwrite.h"
#include "translate/translate_internal.h"

typedef ekg_candidate_t candidate_t;

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

/*
 * Encoding. The message has one fixed shape, so it is written directly (common/pbwrite.h) in two passes:
 * sizes first (a field's length precedes its bytes), then bytes, in ascending field order within each
 * message, which is the canonical encoding upb's deterministic encoder would produce
 * (tests/unit/canonical_test.c checks it): ClusterLoadAssignment{cluster_name = 1, endpoints = 2:
 * LocalityLbEndpoints{ locality = 1: Locality{region = 1, zone = 2, sub_zone = 3}, lb_endpoints = 2:
 * LbEndpoint{endpoint = 1: Endpoint{address = 1: Address{socket_address = 1: SocketAddress{protocol = 1 (UDP
 * only), address = 2, port_value = 3}}}, health_status = 2}, load_balancing_weight = 3: UInt32Value{value =
 * 1}}}
 */
static size_t str_field(const char *s)
{
    size_t n = strlen(s);
    return n ? ekg_pb_field_size(1, n) : 0; /* field numbers 1-15 all take one tag byte */
}

static size_t socket_address_size(const candidate_t *c, bool udp)
{
    return (udp ? 2 : 0) + ekg_pb_field_size(2, strlen(c->address)) + 1 +
           ekg_pb_varint_size((uint32_t)c->port);
}

static size_t lb_endpoint_size(const candidate_t *c, bool udp)
{
    size_t sa = socket_address_size(c, udp);
    size_t addr = ekg_pb_field_size(1, sa);
    size_t ep = ekg_pb_field_size(1, addr);
    return ekg_pb_field_size(1, ep) + 1 + ekg_pb_varint_size((uint32_t)c->health);
}

static size_t locality_size(const ekg_locality_t *l)
{
    return str_field(l->region) + str_field(l->zone) + str_field(l->sub_zone);
}

static char *put_str(char *p, uint32_t field, const char *s)
{
    size_t n = strlen(s);
    return n ? ekg_pb_put_field(p, field, s, n) : p;
}

/* The size of the group of candidates [i, j) sharing one locality, as a LocalityLbEndpoints message. */
static size_t group_size(const candidate_t *c, size_t i, size_t j, bool udp)
{
    size_t loc = locality_size(&c[i].locality);
    size_t total = ekg_pb_field_size(1, loc);
    for (size_t k = i; k < j; k++)
        total += ekg_pb_field_size(2, lb_endpoint_size(&c[k], udp));
    size_t weight = 1 + ekg_pb_varint_size(j - i);
    return total + ekg_pb_field_size(3, weight);
}

/* Candidates i and j are in the same LocalityLbEndpoints: same priority and same locality. */
static bool same_group(const candidate_t *c, const uint32_t *prio, size_t i, size_t j)
{
    return (!prio || prio[i] == prio[j]) && ekg_locality_equal(&c[j].locality, &c[i].locality);
}

/* Policy{overprovisioning_factor = 3: UInt32Value{value = 1}}, as field 4 of the assignment. */
static size_t policy_size(uint32_t overprovisioning)
{
    return overprovisioning ? ekg_pb_field_size(3, 1 + ekg_pb_varint_size(overprovisioning)) : 0;
}

ekg_err_t ekg_encode_cla(const char *name, const candidate_t *c, const uint32_t *prio, size_t n, bool udp,
                         uint32_t overprovisioning, char **out, size_t *out_len)
{
    size_t total = ekg_pb_field_size(1, strlen(name));
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && same_group(c, prio, i, j);)
            j++;
        size_t g = group_size(c, i, j, udp) + (prio && prio[i] ? 1 + ekg_pb_varint_size(prio[i]) : 0);
        total += ekg_pb_field_size(2, g);
    }
    if (overprovisioning)
        total += ekg_pb_field_size(4, policy_size(overprovisioning));
    char *buf = ekg_xmalloc(total ? total : 1);
    char *p = ekg_pb_put_field(buf, 1, name, strlen(name));
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && same_group(c, prio, i, j);)
            j++;
        uint32_t priority = prio ? prio[i] : 0;
        p = ekg_pb_put_header(p, 2,
                              group_size(c, i, j, udp) + (priority ? 1 + ekg_pb_varint_size(priority) : 0));
        p = ekg_pb_put_header(p, 1, locality_size(&c[i].locality));
        p = put_str(p, 1, c[i].locality.region);
        p = put_str(p, 2, c[i].locality.zone);
        p = put_str(p, 3, c[i].locality.sub_zone);
        for (size_t k = i; k < j; k++) {
            size_t sa = socket_address_size(&c[k], udp);
            size_t addr = ekg_pb_field_size(1, sa);
            size_t ep = ekg_pb_field_size(1, addr);
            p = ekg_pb_put_header(p, 2, lb_endpoint_size(&c[k], udp));
            p = ekg_pb_put_header(p, 1, ep);
            p = ekg_pb_put_header(p, 1, addr);
            p = ekg_pb_put_header(p, 1, sa);
            if (udp) {
                *p++ = 0x08; /* protocol = 1: UDP */
                *p++ = 0x01;
            }
            p = ekg_pb_put_field(p, 2, c[k].address, strlen(c[k].address));
            *p++ = 0x18; /* port_value = 3 */
            p = ekg_pb_put_varint(p, (uint32_t)c[k].port);
            *p++ = 0x10; /* health_status = 2 */
            p = ekg_pb_put_varint(p, (uint32_t)c[k].health);
        }
        p = ekg_pb_put_header(p, 3, 1 + ekg_pb_varint_size(j - i));
        *p++ = 0x08; /* UInt32Value.value = 1 */
        p = ekg_pb_put_varint(p, j - i);
        if (priority) {
            *p++ = 0x28; /* priority = 5 (0 is the default, so not written) */
            p = ekg_pb_put_varint(p, priority);
        }
    }
    if (overprovisioning) {
        p = ekg_pb_put_header(p, 4, policy_size(overprovisioning)); /* policy = 4 */
        p = ekg_pb_put_header(p, 3, 1 + ekg_pb_varint_size(overprovisioning));
        *p++ = 0x08;
        p = ekg_pb_put_varint(p, overprovisioning);
    }
    if ((size_t)(p - buf) != total) {
        free(buf);
        return EKG_EPROTO;
    }
    *out = buf;
    *out_len = total;
    return EKG_OK;
}

ekg_err_t ekg_gather_candidates(const ekg_service_input_t *in, const ekg_service_port_t *port,
                                candidate_t **out, size_t *out_n)
{
    candidate_t *cands = NULL;
    size_t n = 0, cap = 0;
    bool include_not_ready = ekg_config_include_not_ready(in->cfg);

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
            /* Kubernetes: the addresses of one endpoint are fungible; consumers use the first. */
            candidate_t c = {.address = ep->addresses[0],
                             .port = target,
                             .health = health,
                             .rank = rank,
                             .node = ep->node_name ? ep->node_name : "",
                             .hints = ep->hint_zones,
                             .nhints = ep->nhint_zones,
                             .has_hints = ep->has_zone_hints};
            ekg_endpoint_locality(in, ep, &c.locality);
            EKG_ARRAY_PUSH(cands, n, cap, c);
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
    *out = cands;
    *out_n = n;
    return EKG_OK;
}

bool ekg_endpoint_included(const ekg_config_t *cfg, const ekg_endpoint_t *ep)
{
    int rank;
    return ep->naddresses > 0 && endpoint_health(ep, ekg_config_include_not_ready(cfg), &rank) >= 0;
}
