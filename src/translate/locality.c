/*
 * src/translate/locality.c: where an endpoint is, from its Node's labels by the config's rules
 * (endpoint_config.locality), falling back to the EndpointSlice's own `zone` field when the Node is unknown.
 * Thread: the translator's owner.
 */
#include "translate/translate_internal.h"

static const char *from_node(const ekg_locality_source_t *src, const ekg_node_t *node)
{
    switch (src->kind) {
    case EKG_LOCALITY_LABEL: {
        const char *v = ekg_meta_label(&node->meta, src->value);
        return v ? v : "";
    }
    case EKG_LOCALITY_LITERAL:
        return src->value;
    case EKG_LOCALITY_HOSTNAME:
        return node->meta.name;
    case EKG_LOCALITY_NONE:
    default:
        return "";
    }
}

void ekg_node_locality(const ekg_config_t *cfg, const ekg_node_t *node, ekg_locality_t *out)
{
    const ekg_locality_rules_t *r = ekg_config_locality_rules(cfg);
    out->region = from_node(&r->region, node);
    out->zone = from_node(&r->zone, node);
    out->sub_zone = from_node(&r->sub_zone, node);
}

/* Without a Node: literals still apply, the hostname is the endpoint's nodeName, and a label rule can only be
 * answered for the zone, from the slice's zone field. */
static const char *without_node(const ekg_locality_source_t *src, const ekg_endpoint_t *ep, bool is_zone)
{
    switch (src->kind) {
    case EKG_LOCALITY_LITERAL:
        return src->value;
    case EKG_LOCALITY_HOSTNAME:
        return ep->node_name ? ep->node_name : "";
    case EKG_LOCALITY_LABEL:
        return is_zone && ep->zone ? ep->zone : "";
    case EKG_LOCALITY_NONE:
    default:
        return "";
    }
}

void ekg_endpoint_locality(const ekg_service_input_t *in, const ekg_endpoint_t *ep, ekg_locality_t *out)
{
    if (ep->node_name && in->node_locality && in->node_locality(in->node_ctx, ep->node_name, out))
        return;
    const ekg_locality_rules_t *r = ekg_config_locality_rules(in->cfg);
    out->region = without_node(&r->region, ep, false);
    out->zone = without_node(&r->zone, ep, true);
    out->sub_zone = without_node(&r->sub_zone, ep, false);
}
