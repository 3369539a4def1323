/*
 * src/model/objects.c: ekg_objects_t, the Services, EndpointSlices and Nodes read from manifest files (the
 * `ekglue` file mode and tests). Accepts what `kubectl get -o yaml|json` prints: one object, a List or *List
 * (items may lack kind), or a multi-document YAML stream. Invalid objects are logged and skipped, other kinds
 * counted and ignored. A buffer is added all-or-nothing: objects are collected aside and moved into the
 * caller's arrays only when the whole buffer has been read. A JSON List is streamed (common/yaml_stream.h):
 * its items are parsed and converted one at a time, so that a cluster-sized List never exists as one cJSON
 * tree. Out of memory aborts (ekglue/mem.h), so the only errors are the text's (EKG_EPARSE) and the file's
 * (EKG_EIO). Thread: the main thread (files are read at startup); nothing here is shared.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/model.h"
#include "ekglue/yaml.h"
#include "common/yaml_stream.h"
#include "model/parse.h"

#define MAX_LIST_DEPTH 4 /* a List inside a List inside a List... */

typedef struct vec {
    void **items;
    size_t n, cap;
} vec_t;

typedef struct collector {
    const char *source;          /* names the buffer in messages */
    const ekg_yaml_docs_t *docs; /* positions of the objects; NULL when streaming */
    vec_t services, slices, nodes;
    size_t nskipped, nignored;
    const char *list_kind; /* streaming: the List's kind, and its items' kind in hint */
    char hint[128];
} collector_t;

static void collector_free(collector_t *col)
{
    for (size_t i = 0; i < col->services.n; i++)
        ekg_service_free(col->services.items[i]);
    for (size_t i = 0; i < col->slices.n; i++)
        ekg_endpoint_slice_free(col->slices.items[i]);
    for (size_t i = 0; i < col->nodes.n; i++)
        ekg_node_free(col->nodes.items[i]);
    free(col->services.items);
    free(col->slices.items);
    free(col->nodes.items);
}

static const char *string_field(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Parses one object of a kind ekglue keeps: collected when valid, logged and counted as skipped otherwise. */
static void add_object(collector_t *col, const cJSON *obj, const char *kind, const char *where)
{
    ekg_diag_t diag = {{0}};
    ekg_err_t err;
    void *parsed = NULL;
    vec_t *into;
    if (!strcmp(kind, "Service")) {
        ekg_service_t *svc = NULL;
        err = ekg_model_service_parse(obj, where, &svc, &diag);
        parsed = svc, into = &col->services;
    } else if (!strcmp(kind, "EndpointSlice")) {
        ekg_endpoint_slice_t *slice = NULL;
        err = ekg_model_endpoint_slice_parse(obj, where, &slice, &diag);
        parsed = slice, into = &col->slices;
    } else {
        ekg_node_t *node = NULL;
        err = ekg_model_node_parse(obj, where, &node, &diag);
        parsed = node, into = &col->nodes;
    }
    if (err) {
        ekg_warn("skipping invalid object: %s source=%s", diag.msg, where);
        col->nskipped++;
        return;
    }
    EKG_ARRAY_PUSH(into->items, into->n, into->cap, parsed);
}

/* The kind of a List's items: "ServiceList" -> "Service", "List" -> "" (items must then say their kind). */
static void list_item_kind(const char *list_kind, char *hint, size_t size)
{
    snprintf(hint, size, "%.*s", (int)(strlen(list_kind) - 4), list_kind);
}

static void add_any(collector_t *col, const cJSON *obj, const char *kind_hint, int list_depth)
{
    char with_line[512];
    const char *where = col->source;
    int line = ekg_yaml_docs_line(col->docs, obj, NULL);
    if (line > 0) {
        snprintf(with_line, sizeof(with_line), "%s:%d", col->source, line);
        where = with_line;
    }

    if (!cJSON_IsObject(obj)) {
        ekg_warn("skipping an entry that is not a mapping source=%s", where);
        col->nskipped++;
        return;
    }
    const char *kind = string_field(obj, "kind");
    if (!kind || !kind[0])
        kind = kind_hint;
    if (!kind || !kind[0]) {
        ekg_warn("skipping an object without kind source=%s", where);
        col->nskipped++;
        return;
    }
    if (ends_with(kind, "List")) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(obj, "items");
        if (list_depth >= MAX_LIST_DEPTH || (items && !cJSON_IsNull(items) && !cJSON_IsArray(items))) {
            ekg_warn("skipping a %s: %s source=%s", kind,
                     list_depth >= MAX_LIST_DEPTH ? "lists nested too deep" : "items: expected a list",
                     where);
            col->nskipped++;
            return;
        }
        char hint[128];
        list_item_kind(kind, hint, sizeof(hint));
        for (const cJSON *item = cJSON_IsArray(items) ? items->child : NULL; item; item = item->next)
            add_any(col, item, hint, list_depth + 1);
        return;
    }
    const char *api = string_field(obj, "apiVersion");
    if (!strcmp(kind, "EndpointSlice") && api && !strcmp(api, "discovery.k8s.io/v1beta1")) {
        const char *name = string_field(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "name");
        ekg_warn(
            "skipping EndpointSlice %s: discovery.k8s.io/v1beta1 is not supported, use discovery.k8s.io/v1 "
            "source=%s",
            name ? name : "<unnamed>", where);
        col->nskipped++;
        return;
    }
    /* A kind name alone is not enough: Knative's serving.knative.dev/v1 Service is not a v1 Service. */
    bool keep = ((!strcmp(kind, "Service") || !strcmp(kind, "Node")) && (!api || !strcmp(api, "v1"))) ||
                (!strcmp(kind, "EndpointSlice") && (!api || !strcmp(api, "discovery.k8s.io/v1")));
    if (!keep) {
        col->nignored++;
        return;
    }
    add_object(col, obj, kind, where);
}

/* Moves what col collected into objs and frees col's arrays. */
static void commit(ekg_objects_t *objs, collector_t *col)
{
    objs->services =
        ekg_xrealloc(objs->services, (objs->nservices + col->services.n) * sizeof(ekg_service_t *));
    objs->slices =
        ekg_xrealloc(objs->slices, (objs->nslices + col->slices.n) * sizeof(ekg_endpoint_slice_t *));
    objs->nodes = ekg_xrealloc(objs->nodes, (objs->nnodes + col->nodes.n) * sizeof(ekg_node_t *));
    for (size_t i = 0; i < col->services.n; i++)
        objs->services[objs->nservices++] = col->services.items[i];
    for (size_t i = 0; i < col->slices.n; i++)
        objs->slices[objs->nslices++] = col->slices.items[i];
    for (size_t i = 0; i < col->nodes.n; i++)
        objs->nodes[objs->nnodes++] = col->nodes.items[i];
    col->services.n = col->slices.n = col->nodes.n = 0;
    objs->nskipped += col->nskipped;
    objs->nignored += col->nignored;
    collector_free(col);
}

/* One item of a streamed JSON List: what add_any() does for each item of a List document. */
static ekg_err_t add_list_item(void *arg, const cJSON *item, const char *list_kind)
{
    collector_t *col = arg;
    if (col->list_kind != list_kind) {
        col->list_kind = list_kind;
        list_item_kind(list_kind, col->hint, sizeof(col->hint));
    }
    add_any(col, item, col->hint, 1);
    return EKG_OK;
}

/*
 * The whole buffer. A JSON List, the big case (`kubectl get -o json` of a cluster), is streamed: one item's
 * cJSON tree at a time instead of the whole List's. Anything else, or a List that turns out not to be valid
 * JSON, goes through ekg_yaml_parse(), which also words the error.
 */
static ekg_err_t add_buffer(ekg_objects_t *objs, const char *buf, size_t len, const char *source,
                            ekg_diag_t *diag)
{
    collector_t col = {.source = source};
    ekg_yaml_docs_t *docs = NULL;
    bool streamed = false;
    /* add_list_item never fails, so neither does the stream: *streamed says which way the text went. */
    ekg_err_t err = ekg_yaml_stream_json_list(buf, len, add_list_item, &col, &streamed);
    if (!streamed) {
        collector_free(&col);
        col = (collector_t){.source = source};
        if ((err = ekg_yaml_parse(buf, len, source, &docs, diag)) != EKG_OK)
            goto out; /* nothing collected yet */
        col.docs = docs;
        for (size_t i = 0; i < ekg_yaml_docs_count(docs); i++)
            add_any(&col, ekg_yaml_docs_get(docs, i), NULL, 0);
    }
    commit(objs, &col);
out:
    ekg_yaml_docs_free(docs);
    return err;
}

ekg_err_t ekg_objects_add_buffer(ekg_objects_t *objs, const char *buf, size_t len, const char *source_name,
                                 ekg_diag_t *diag)
{
    return add_buffer(objs, buf, len, source_name ? source_name : "<input>", diag);
}

ekg_err_t ekg_objects_add_file(ekg_objects_t *objs, const char *path, ekg_diag_t *diag)
{
    char *buf = NULL;
    size_t len = 0;
    ekg_err_t err = ekg_yaml_read_file(path, &buf, &len, diag);
    if (err)
        return err;
    err = add_buffer(objs, buf, len, path, diag);
    free(buf);
    return err;
}

void ekg_objects_free(ekg_objects_t *objs)
{
    if (!objs)
        return;
    for (size_t i = 0; i < objs->nservices; i++)
        ekg_service_free(objs->services[i]);
    for (size_t i = 0; i < objs->nslices; i++)
        ekg_endpoint_slice_free(objs->slices[i]);
    for (size_t i = 0; i < objs->nnodes; i++)
        ekg_node_free(objs->nodes[i]);
    free(objs->services);
    free(objs->slices);
    free(objs->nodes);
    *objs = (ekg_objects_t){0};
}
