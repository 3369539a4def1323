/*
 * include/ekglue/render.h: resources and documents for people: canonical proto JSON, pretty JSON and YAML
 * (src/render/).
 *
 * Used by `ekglue dump` (src/cli/dump.c) and the debug HTTP port (src/debug/). Out of memory aborts
 * (ekglue/mem.h). Thread: any; the protobuf registry must be initialized.
 */
#ifndef EKGLUE_RENDER_H
#define EKGLUE_RENDER_H

#include <stdio.h>

#include <cJSON.h>

#include "ekglue/error.h"
#include "ekglue/resource.h"
#include "ekglue/translate.h"

typedef enum { EKG_FORMAT_JSON = 0, EKG_FORMAT_YAML } ekg_format_t;

/*
 * One resource as Envoy's canonical proto3 JSON. *out is owned by the caller (cJSON_Delete). EKG_EINVAL when
 * the registry does not know its type, EKG_EPROTO when its bytes do not decode.
 */
ekg_err_t ekg_render_resource(const ekg_resource_t *r, cJSON **out);

/*
 * The `ekglue dump` document: {"clusters": [...], "load_assignments": [...], "localities": {node: locality}}.
 * Any argument may be NULL (its member is then empty). *out is owned by the caller. The errors of
 * ekg_render_resource().
 */
ekg_err_t ekg_render_dump(const ekg_resource_set_t *clusters, const ekg_resource_set_t *load_assignments,
                          const ekg_translator_t *t, cJSON **out);

/*
 * Writes doc as JSON indented by two spaces, or as block-style YAML whose strings are quoted wherever a plain
 * scalar would read back as another type. Ends with a newline. EKG_EIO if the stream fails (or, for YAML, a
 * string is not UTF-8).
 */
ekg_err_t ekg_render_write(const cJSON *doc, ekg_format_t format, FILE *out);

#endif
