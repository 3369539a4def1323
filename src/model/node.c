/*
 * src/model/node.c: v1 Node JSON -> ekg_node_t. Only the name and the labels (region, zone, hostname) matter.
 * Thread: any (the watcher thread for API events, the main thread for manifest files); no shared state.
 */
#include "ekglue/model.h"
#include "model/parse.h"

ekg_err_t ekg_model_node_parse(const cJSON *obj, const char *source, ekg_node_t **out, ekg_diag_t *diag)
{
    ekg_model_ctx_t c;
    ekg_err_t err = EKG_OK;
    ekg_node_t *node = NULL;
    ekg_model_ctx_init(&c, "Node", false, obj, source, diag);
    if (!cJSON_IsObject(obj)) {
        err = ekg_model_fail(&c, "expected a mapping");
        goto out;
    }
    node = ekg_model_arena_new(sizeof(*node), &c.arena);
    err = ekg_model_meta(&c, obj, &node->meta);
out:
    if (err) {
        ekg_model_arena_free(node);
        return err;
    }
    *out = node;
    return EKG_OK;
}

ekg_err_t ekg_node_from_json(const cJSON *obj, ekg_node_t **out, ekg_diag_t *diag)
{
    return ekg_model_node_parse(obj, NULL, out, diag);
}

void ekg_node_free(ekg_node_t *node)
{
    ekg_model_arena_free(node);
}
