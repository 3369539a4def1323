/*
 * src/model/meta.c: object metadata (name, namespace, resourceVersion, sorted labels), ekg_meta_label(), and
 * the field readers every Kubernetes object parser in src/model/ uses (parse.h).
 * Thread: any (the watcher thread for API objects, the main thread for files); no shared state.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "ekglue/model.h"
#include "model/parse.h"

static const char *string_or_null(const cJSON *node)
{
    return cJSON_IsString(node) && node->valuestring && node->valuestring[0] ? node->valuestring : NULL;
}

void ekg_model_ctx_init(ekg_model_ctx_t *c, const char *kind, bool namespaced, const cJSON *obj,
                        const char *source, ekg_diag_t *diag)
{
    const cJSON *meta = ekg_model_field(obj, "metadata");
    *c = (ekg_model_ctx_t){.kind = kind, .namespaced = namespaced, .source = source, .diag = diag};
    c->name = string_or_null(ekg_model_field(meta, "name"));
    c->ns = namespaced ? string_or_null(ekg_model_field(meta, "namespace")) : NULL;
}

static int subject(const ekg_model_ctx_t *c, char *buf, size_t size)
{
    if (c->name && c->ns)
        return snprintf(buf, size, "%s %s/%s", c->kind, c->ns, c->name);
    if (c->name)
        return snprintf(buf, size, "%s %s", c->kind, c->name);
    if (c->source)
        return snprintf(buf, size, "%s <unnamed> in %s", c->kind, c->source);
    return snprintf(buf, size, "%s <unnamed>", c->kind);
}

ekg_err_t ekg_model_fail(ekg_model_ctx_t *c, const char *fmt, ...)
{
    if (c->diag) {
        char who[256], what[256];
        subject(c, who, sizeof(who));
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        ekg_diag_set(c->diag, EKG_EOBJECT, "%s: %s", who, what);
    }
    return EKG_EOBJECT;
}

const cJSON *ekg_model_field(const cJSON *obj, const char *key)
{
    if (!cJSON_IsObject(obj))
        return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(v) ? NULL : v;
}

ekg_err_t ekg_model_opt_string(ekg_model_ctx_t *c, const cJSON *obj, const char *key, const char *path,
                               const char **out)
{
    const cJSON *v = ekg_model_field(obj, key);
    *out = NULL;
    if (!v)
        return EKG_OK;
    if (!cJSON_IsString(v))
        return ekg_model_fail(c, "%s%s%s: expected a string", path, *path ? "." : "", key);
    *out = ekg_model_strdup(c->arena, v->valuestring);
    return EKG_OK;
}

ekg_err_t ekg_model_int(ekg_model_ctx_t *c, const cJSON *node, const char *what, int32_t min, int32_t max,
                        int32_t *out)
{
    if (!cJSON_IsNumber(node) || node->valuedouble != floor(node->valuedouble) ||
        node->valuedouble < (double)min || node->valuedouble > (double)max)
        return ekg_model_fail(c, "%s: expected an integer in %d..%d", what, (int)min, (int)max);
    *out = (int32_t)node->valuedouble;
    return EKG_OK;
}

ekg_err_t ekg_model_protocol(ekg_model_ctx_t *c, const cJSON *obj, const char *path, ekg_protocol_t *out)
{
    const cJSON *v = ekg_model_field(obj, "protocol");
    *out = EKG_PROTOCOL_TCP;
    if (!v)
        return EKG_OK;
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "TCP"))
        *out = EKG_PROTOCOL_TCP;
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "UDP"))
        *out = EKG_PROTOCOL_UDP;
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "SCTP"))
        *out = EKG_PROTOCOL_SCTP;
    else
        return ekg_model_fail(c, "%s.protocol: expected TCP, UDP or SCTP", path);
    return EKG_OK;
}

static int label_cmp(const void *a, const void *b)
{
    return strcmp(((const ekg_label_t *)a)->key, ((const ekg_label_t *)b)->key);
}

static ekg_err_t parse_labels(ekg_model_ctx_t *c, const cJSON *labels, ekg_meta_t *out)
{
    if (!labels)
        return EKG_OK;
    if (!cJSON_IsObject(labels))
        return ekg_model_fail(c, "metadata.labels: expected a mapping of strings");
    size_t n = 0;
    for (const cJSON *l = labels->child; l; l = l->next)
        n++;
    out->labels = ekg_model_alloc_array(c->arena, n, sizeof(*out->labels));
    for (const cJSON *l = labels->child; l; l = l->next) {
        if (!cJSON_IsString(l))
            return ekg_model_fail(c, "metadata.labels.%s: expected a string", l->string);
        ekg_label_t *lab = &out->labels[out->nlabels++];
        lab->key = ekg_model_strdup(c->arena, l->string);
        lab->value = ekg_model_strdup(c->arena, l->valuestring);
    }
    qsort(out->labels, out->nlabels, sizeof(*out->labels), label_cmp);
    for (size_t i = 1; i < out->nlabels; i++)
        if (!strcmp(out->labels[i - 1].key, out->labels[i].key))
            return ekg_model_fail(c, "metadata.labels.%s: duplicate label", out->labels[i].key);
    return EKG_OK;
}

ekg_err_t ekg_model_meta(ekg_model_ctx_t *c, const cJSON *obj, ekg_meta_t *out)
{
    const cJSON *meta = ekg_model_field(obj, "metadata");
    if (!meta)
        return ekg_model_fail(c, "metadata: required");
    if (!cJSON_IsObject(meta))
        return ekg_model_fail(c, "metadata: expected a mapping");
    const cJSON *name = ekg_model_field(meta, "name");
    if (!name)
        return ekg_model_fail(c, "metadata.name: required");
    if (!cJSON_IsString(name) || !name->valuestring[0])
        return ekg_model_fail(c, "metadata.name: expected a non-empty string");
    out->name = ekg_model_strdup(c->arena, name->valuestring);
    out->namespace_ = "";
    if (c->namespaced) {
        const cJSON *ns = ekg_model_field(meta, "namespace");
        if (!ns)
            return ekg_model_fail(c, "metadata.namespace: required");
        if (!cJSON_IsString(ns) || !ns->valuestring[0])
            return ekg_model_fail(c, "metadata.namespace: expected a non-empty string");
        out->namespace_ = ekg_model_strdup(c->arena, ns->valuestring);
    }
    ekg_err_t err = ekg_model_opt_string(c, meta, "resourceVersion", "metadata", &out->resource_version);
    if (err)
        return err;
    if (!out->resource_version)
        out->resource_version = "";
    return parse_labels(c, ekg_model_field(meta, "labels"), out);
}

const char *ekg_meta_label(const ekg_meta_t *meta, const char *key)
{
    if (!meta || !key)
        return NULL;
    ekg_label_t k = {.key = key};
    const ekg_label_t *l =
        meta->nlabels ? bsearch(&k, meta->labels, meta->nlabels, sizeof(k), label_cmp) : NULL;
    return l ? l->value : NULL;
}
