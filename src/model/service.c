/*
 * src/model/service.c: v1 Service JSON -> ekg_service_t (type, headless, externalName, trafficDistribution
 * and ports with their targetPorts). Everything else in the object is ignored. Thread: any (the watcher
 * thread for API events, the main thread for manifest files); no shared state.
 */
#include <stdio.h>
#include <string.h>

#include "ekglue/model.h"
#include "model/parse.h"

static ekg_err_t parse_type(ekg_model_ctx_t *c, const cJSON *spec, ekg_service_t *svc)
{
    static const char *const names[] = {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"};
    const cJSON *v = ekg_model_field(spec, "type");
    svc->type = EKG_SERVICE_CLUSTER_IP;
    if (!v)
        return EKG_OK;
    for (size_t i = 0; cJSON_IsString(v) && i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strcmp(v->valuestring, names[i])) {
            svc->type = (ekg_service_type_t)i;
            return EKG_OK;
        }
    }
    return ekg_model_fail(c, "spec.type: expected ClusterIP, NodePort, LoadBalancer or ExternalName");
}

static ekg_err_t parse_port(ekg_model_ctx_t *c, const cJSON *p, size_t i, ekg_service_port_t *out)
{
    char path[48], what[64];
    ekg_err_t err;
    snprintf(path, sizeof(path), "spec.ports[%zu]", i);
    if (!cJSON_IsObject(p))
        return ekg_model_fail(c, "%s: expected a mapping", path);
    if ((err = ekg_model_opt_string(c, p, "name", path, &out->name)))
        return err;
    if (!out->name)
        out->name = "";
    if ((err = ekg_model_protocol(c, p, path, &out->protocol)) ||
        (err = ekg_model_opt_string(c, p, "appProtocol", path, &out->app_protocol)))
        return err;
    const cJSON *port = ekg_model_field(p, "port");
    snprintf(what, sizeof(what), "%s.port", path);
    if (!port)
        return ekg_model_fail(c, "%s: required", what);
    if ((err = ekg_model_int(c, port, what, 1, 65535, &out->port)))
        return err;
    const cJSON *target = ekg_model_field(p, "targetPort");
    snprintf(what, sizeof(what), "%s.targetPort", path);
    if (!target) {
        out->target_port = out->port;
    } else if (cJSON_IsString(target)) {
        if (!target->valuestring[0])
            return ekg_model_fail(c, "%s: expected a port number or a non-empty port name", what);
        out->target_port = 0;
        out->target_port_name = ekg_model_strdup(c->arena, target->valuestring);
    } else if (cJSON_IsNumber(target)) {
        if ((err = ekg_model_int(c, target, what, 1, 65535, &out->target_port)))
            return err;
    } else {
        return ekg_model_fail(c, "%s: expected a port number or a port name", what);
    }
    return EKG_OK;
}

static ekg_err_t parse_ports(ekg_model_ctx_t *c, const cJSON *spec, ekg_service_t *svc)
{
    const cJSON *ports = ekg_model_field(spec, "ports");
    if (!ports)
        return EKG_OK;
    if (!cJSON_IsArray(ports))
        return ekg_model_fail(c, "spec.ports: expected a list");
    size_t n = (size_t)cJSON_GetArraySize(ports);
    svc->ports = ekg_model_alloc_array(c->arena, n, sizeof(*svc->ports));
    size_t i = 0;
    for (const cJSON *p = ports->child; p; p = p->next, i++) {
        ekg_err_t err = parse_port(c, p, i, &svc->ports[i]);
        if (err)
            return err;
        svc->nports = i + 1;
    }
    /* Kubernetes guarantees these; a hand-written manifest might not, and translation names clusters by port.
     */
    for (i = 0; i < svc->nports; i++) {
        if (svc->nports > 1 && !svc->ports[i].name[0])
            return ekg_model_fail(c, "spec.ports[%zu].name: required when the Service has more than one port",
                                  i);
        for (size_t j = 0; j < i; j++)
            if (svc->ports[i].name[0] && !strcmp(svc->ports[i].name, svc->ports[j].name))
                return ekg_model_fail(c, "spec.ports[%zu].name: duplicate port name \"%s\"", i,
                                      svc->ports[i].name);
    }
    return EKG_OK;
}

/* The topology annotation (the newer key first). A value that is not a string is ignored: annotations are
 * free-form and only this one matters to translation. */
static void topology_mode(ekg_model_ctx_t *c, const cJSON *obj, ekg_service_t *svc)
{
    static const char *const keys[] = {"service.kubernetes.io/topology-mode",
                                       "service.kubernetes.io/topology-aware-hints"};
    const cJSON *ann = ekg_model_field(ekg_model_field(obj, "metadata"), "annotations");
    if (!cJSON_IsObject(ann))
        return;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const cJSON *v = ekg_model_field(ann, keys[i]);
        if (cJSON_IsString(v)) {
            svc->topology_mode = ekg_model_strdup(c->arena, v->valuestring);
            return;
        }
    }
}

ekg_err_t ekg_model_service_parse(const cJSON *obj, const char *source, ekg_service_t **out, ekg_diag_t *diag)
{
    ekg_model_ctx_t c;
    ekg_err_t err = EKG_OK;
    ekg_service_t *svc = NULL;
    ekg_model_ctx_init(&c, "Service", true, obj, source, diag);
    if (!cJSON_IsObject(obj)) {
        err = ekg_model_fail(&c, "expected a mapping");
        goto out;
    }
    svc = ekg_model_arena_new(sizeof(*svc), &c.arena);
    if ((err = ekg_model_meta(&c, obj, &svc->meta)))
        goto out;
    const cJSON *spec = ekg_model_field(obj, "spec");
    if (spec && !cJSON_IsObject(spec)) {
        err = ekg_model_fail(&c, "spec: expected a mapping");
        goto out;
    }
    if ((err = parse_type(&c, spec, svc)) || (err = parse_ports(&c, spec, svc)) ||
        (err = ekg_model_opt_string(&c, spec, "trafficDistribution", "spec", &svc->traffic_distribution)))
        goto out;
    topology_mode(&c, obj, svc);
    const cJSON *cluster_ip = ekg_model_field(spec, "clusterIP");
    svc->headless = cJSON_IsString(cluster_ip) && !strcmp(cluster_ip->valuestring, "None");
    if (svc->type == EKG_SERVICE_EXTERNAL_NAME) {
        if ((err = ekg_model_opt_string(&c, spec, "externalName", "spec", &svc->external_name)))
            goto out;
        if (!svc->external_name || !svc->external_name[0]) {
            err = ekg_model_fail(&c, "spec.externalName: required when spec.type is ExternalName");
            goto out;
        }
    }
out:
    if (err) {
        ekg_model_arena_free(svc);
        return err;
    }
    *out = svc;
    return EKG_OK;
}

ekg_err_t ekg_service_from_json(const cJSON *obj, ekg_service_t **out, ekg_diag_t *diag)
{
    return ekg_model_service_parse(obj, NULL, out, diag);
}

void ekg_service_free(ekg_service_t *svc)
{
    ekg_model_arena_free(svc);
}
