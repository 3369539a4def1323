/*
 * src/model/parse.h (private to src/model/): what the Service, EndpointSlice and Node parsers share: a parse
 * context that names the object in every message, typed field readers that say which field is wrong,
 * metadata, and the parsers' variants that take a source (objects.c passes "file.yaml:12" so that an object
 * without a name can still be found). Thread: the parsing thread; a context lives on its stack for one
 * object.
 */
#ifndef EKGLUE_MODEL_PARSE_H
#define EKGLUE_MODEL_PARSE_H

#include <stdbool.h>
#include <stdint.h>

#include <cJSON.h>

#include "ekglue/error.h"
#include "ekglue/model.h"
#include "model/model_alloc.h"

typedef struct ekg_model_ctx {
    ekg_model_arena_t *arena; /* the object's arena, once created */
    const char *kind;         /* "Service" */
    bool namespaced;
    const char *ns, *name; /* borrowed from the raw object, for messages; NULL when absent or not strings */
    const char *source;    /* NULL, or where the object was read */
    ekg_diag_t *diag;
} ekg_model_ctx_t;

void ekg_model_ctx_init(ekg_model_ctx_t *c, const char *kind, bool namespaced, const cJSON *obj,
                        const char *source, ekg_diag_t *diag);
/* Writes "Kind ns/name: <formatted>" into diag; returns EKG_EOBJECT. */
ekg_err_t ekg_model_fail(ekg_model_ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* obj[key], or NULL when obj is not an object, or the member is absent or null. */
const cJSON *ekg_model_field(const cJSON *obj, const char *key);
/* Optional string obj[key] copied into the arena; *out NULL when absent. path names obj ("spec.ports[1]"), or
 * "". */
ekg_err_t ekg_model_opt_string(ekg_model_ctx_t *c, const cJSON *obj, const char *key, const char *path,
                               const char **out);
/* node as an integer in [min, max]; what names the field in the message. */
ekg_err_t ekg_model_int(ekg_model_ctx_t *c, const cJSON *node, const char *what, int32_t min, int32_t max,
                        int32_t *out);
/* obj.protocol: TCP (default), UDP or SCTP. */
ekg_err_t ekg_model_protocol(ekg_model_ctx_t *c, const cJSON *obj, const char *path, ekg_protocol_t *out);
/* obj.metadata into out (namespace required when c->namespaced, "" otherwise). */
ekg_err_t ekg_model_meta(ekg_model_ctx_t *c, const cJSON *obj, ekg_meta_t *out);

/* The public parsers with a source for messages (NULL from the public API). */
ekg_err_t ekg_model_service_parse(const cJSON *obj, const char *source, ekg_service_t **out,
                                  ekg_diag_t *diag);
ekg_err_t ekg_model_endpoint_slice_parse(const cJSON *obj, const char *source, ekg_endpoint_slice_t **out,
                                         ekg_diag_t *diag);
ekg_err_t ekg_model_node_parse(const cJSON *obj, const char *source, ekg_node_t **out, ekg_diag_t *diag);

#endif
