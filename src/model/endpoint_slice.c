/*
 * src/model/endpoint_slice.c: discovery.k8s.io/v1 EndpointSlice JSON -> ekg_endpoint_slice_t (addressType,
 * endpoints with their tri-state conditions and topology, target ports). The owning Service comes from the
 * kubernetes.io/service-name label. Conditions are kept as sent; what "unset" means is translation's call.
 * Thread: any (the watcher thread for API events, the main thread for manifest files); no shared state.
 */
#include <stdio.h>
#include <string.h>

#include "ekglue/model.h"
#include "model/parse.h"

static ekg_err_t parse_cond(ekg_model_ctx_t *c, const cJSON *conds, const char *key, size_t i,
                            ekg_cond_t *out)
{
    const cJSON *v = ekg_model_field(conds, key);
    if (!v)
        *out = EKG_COND_UNSET;
    else if (cJSON_IsBool(v))
        *out = cJSON_IsTrue(v) ? EKG_COND_TRUE : EKG_COND_FALSE;
    else
        return ekg_model_fail(c, "endpoints[%zu].conditions.%s: expected true, false or null", i, key);
    return EKG_OK;
}

/* hints.forZones: [{name: zone}]. Anything else there leaves the endpoint without hints (ignored, as
 * kube-proxy ignores hints it cannot use), never makes the slice invalid. */
static void parse_hints(ekg_model_ctx_t *c, const cJSON *e, ekg_endpoint_t *out)
{
    const cJSON *hints = ekg_model_field(e, "hints");
    const cJSON *zones = cJSON_IsObject(hints) ? ekg_model_field(hints, "forZones") : NULL;
    if (!cJSON_IsArray(zones) || !zones->child)
        return;
    size_t n = (size_t)cJSON_GetArraySize(zones);
    for (const cJSON *z = zones->child; z; z = z->next) {
        const cJSON *name = cJSON_IsObject(z) ? ekg_model_field(z, "name") : NULL;
        if (!cJSON_IsString(name) || !name->valuestring[0])
            return;
    }
    out->hint_zones = ekg_model_alloc_array(c->arena, n, sizeof(*out->hint_zones));
    for (const cJSON *z = zones->child; z; z = z->next)
        out->hint_zones[out->nhint_zones++] =
            ekg_model_strdup(c->arena, ekg_model_field(z, "name")->valuestring);
    out->has_zone_hints = true;
}

static ekg_err_t parse_endpoint(ekg_model_ctx_t *c, const cJSON *e, size_t i, ekg_endpoint_t *out)
{
    char path[48];
    ekg_err_t err;
    snprintf(path, sizeof(path), "endpoints[%zu]", i);
    if (!cJSON_IsObject(e))
        return ekg_model_fail(c, "%s: expected a mapping", path);
    const cJSON *addrs = ekg_model_field(e, "addresses");
    if (!addrs)
        return ekg_model_fail(c, "%s.addresses: required", path);
    if (!cJSON_IsArray(addrs) || !addrs->child)
        return ekg_model_fail(c, "%s.addresses: expected a non-empty list of strings", path);
    size_t n = (size_t)cJSON_GetArraySize(addrs);
    out->addresses = ekg_model_alloc_array(c->arena, n, sizeof(*out->addresses));
    for (const cJSON *a = addrs->child; a; a = a->next) {
        if (!cJSON_IsString(a) || !a->valuestring[0])
            return ekg_model_fail(c, "%s.addresses[%zu]: expected a non-empty string", path, out->naddresses);
        out->addresses[out->naddresses++] = ekg_model_strdup(c->arena, a->valuestring);
    }
    const cJSON *conds = ekg_model_field(e, "conditions");
    if (conds && !cJSON_IsObject(conds))
        return ekg_model_fail(c, "%s.conditions: expected a mapping", path);
    if ((err = parse_cond(c, conds, "ready", i, &out->ready)) ||
        (err = parse_cond(c, conds, "serving", i, &out->serving)) ||
        (err = parse_cond(c, conds, "terminating", i, &out->terminating)) ||
        (err = ekg_model_opt_string(c, e, "nodeName", path, &out->node_name)) ||
        (err = ekg_model_opt_string(c, e, "zone", path, &out->zone)) ||
        (err = ekg_model_opt_string(c, e, "hostname", path, &out->hostname)))
        return err;
    parse_hints(c, e, out);
    return EKG_OK;
}

static ekg_err_t parse_port(ekg_model_ctx_t *c, const cJSON *p, size_t i, ekg_slice_port_t *out)
{
    char path[48], what[64];
    ekg_err_t err;
    snprintf(path, sizeof(path), "ports[%zu]", i);
    if (!cJSON_IsObject(p))
        return ekg_model_fail(c, "%s: expected a mapping", path);
    if ((err = ekg_model_opt_string(c, p, "name", path, &out->name)) ||
        (err = ekg_model_protocol(c, p, path, &out->protocol)) ||
        (err = ekg_model_opt_string(c, p, "appProtocol", path, &out->app_protocol)))
        return err;
    if (!out->name)
        out->name = "";
    const cJSON *port = ekg_model_field(p, "port");
    snprintf(what, sizeof(what), "%s.port", path);
    out->port = -1;
    if (port && (err = ekg_model_int(c, port, what, 1, 65535, &out->port)))
        return err;
    return EKG_OK;
}

static ekg_err_t parse_address_type(ekg_model_ctx_t *c, const cJSON *obj, ekg_endpoint_slice_t *slice)
{
    const cJSON *v = ekg_model_field(obj, "addressType");
    if (!v)
        return ekg_model_fail(c, "addressType: required");
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "IPv4"))
        slice->address_type = EKG_ADDRESS_IPV4;
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "IPv6"))
        slice->address_type = EKG_ADDRESS_IPV6;
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "FQDN"))
        slice->address_type = EKG_ADDRESS_FQDN;
    else
        return ekg_model_fail(c, "addressType: expected IPv4, IPv6 or FQDN");
    return EKG_OK;
}

/* list: obj[key] as an array (absent or null: empty). Sets *n to its length. */
static ekg_err_t get_list(ekg_model_ctx_t *c, const cJSON *obj, const char *key, const cJSON **list,
                          size_t *n)
{
    *list = ekg_model_field(obj, key);
    *n = 0;
    if (!*list)
        return EKG_OK;
    if (!cJSON_IsArray(*list))
        return ekg_model_fail(c, "%s: expected a list", key);
    *n = (size_t)cJSON_GetArraySize(*list);
    return EKG_OK;
}

ekg_err_t ekg_model_endpoint_slice_parse(const cJSON *obj, const char *source, ekg_endpoint_slice_t **out,
                                         ekg_diag_t *diag)
{
    ekg_model_ctx_t c;
    ekg_err_t err = EKG_OK;
    ekg_endpoint_slice_t *slice = NULL;
    const cJSON *list;
    size_t n, i;
    ekg_model_ctx_init(&c, "EndpointSlice", true, obj, source, diag);
    if (!cJSON_IsObject(obj)) {
        err = ekg_model_fail(&c, "expected a mapping");
        goto out;
    }
    slice = ekg_model_arena_new(sizeof(*slice), &c.arena);
    if ((err = ekg_model_meta(&c, obj, &slice->meta)) || (err = parse_address_type(&c, obj, slice)))
        goto out;
    slice->service_name = ekg_meta_label(&slice->meta, "kubernetes.io/service-name");

    if ((err = get_list(&c, obj, "endpoints", &list, &n)))
        goto out;
    slice->endpoints = ekg_model_alloc_array(c.arena, n, sizeof(*slice->endpoints));
    i = 0;
    for (const cJSON *e = list ? list->child : NULL; e; e = e->next, i++) {
        if ((err = parse_endpoint(&c, e, i, &slice->endpoints[i])))
            goto out;
        slice->nendpoints = i + 1;
    }

    if ((err = get_list(&c, obj, "ports", &list, &n)))
        goto out;
    slice->ports = ekg_model_alloc_array(c.arena, n, sizeof(*slice->ports));
    i = 0;
    for (const cJSON *p = list ? list->child : NULL; p; p = p->next, i++) {
        if ((err = parse_port(&c, p, i, &slice->ports[i])))
            goto out;
        slice->nports = i + 1;
    }
out:
    if (err) {
        ekg_model_arena_free(slice);
        return err;
    }
    *out = slice;
    return EKG_OK;
}

ekg_err_t ekg_endpoint_slice_from_json(const cJSON *obj, ekg_endpoint_slice_t **out, ekg_diag_t *diag)
{
    return ekg_model_endpoint_slice_parse(obj, NULL, out, diag);
}

void ekg_endpoint_slice_free(ekg_endpoint_slice_t *slice)
{
    ekg_model_arena_free(slice);
}
