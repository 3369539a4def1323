/*
 * src/render/render.c: JSON and YAML renderings of resources and documents (include/ekglue/render.h).
 *
 * Resources are decoded from their shared bytes into a scratch arena and printed through upb's JSON encoder,
 * so what is shown is exactly what is sent. YAML is written with libyaml's emitter.
 * Thread: any.
 */
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "upb/decode.h"
#include "upb/reflection.h"

#include "ekglue/proto.h"
#include "ekglue/render.h"

static const char *const type_names[EKG_RESOURCE__COUNT] = {EKG_TYPE_CLUSTER, EKG_TYPE_LOAD_ASSIGNMENT,
                                                            EKG_TYPE_LISTENER, EKG_TYPE_ROUTE};

ekg_err_t ekg_render_resource(const ekg_resource_t *r, cJSON **out)
{
    ekg_err_t err = EKG_OK;
    char *json = NULL;
    const upb_MessageDef *m = ekg_proto_message(type_names[ekg_resource_type(r)]);
    upb_Arena *arena = upb_Arena_New();
    if (!m || !arena) {
        err = m ? EKG_ENOMEM : EKG_EINVAL;
        goto out;
    }
    upb_Message *msg = upb_Message_New(m, arena);
    size_t len;
    const char *data = ekg_resource_data(r, &len);
    if (!msg ||
        upb_Decode(data, len, msg, upb_MessageDef_MiniTable(m), NULL, 0, arena) != kUpb_DecodeStatus_Ok) {
        err = EKG_EPROTO;
        goto out;
    }
    if ((err = ekg_proto_to_json(msg, m, &json, NULL)) != EKG_OK)
        goto out;
    *out = cJSON_Parse(json);
    if (!*out)
        err = EKG_ENOMEM;
out:
    free(json);
    if (arena)
        upb_Arena_Free(arena);
    return err;
}

static ekg_err_t add_set(cJSON *doc, const char *key, const ekg_resource_set_t *set)
{
    cJSON *arr = cJSON_AddArrayToObject(doc, key);
    if (!arr)
        return EKG_ENOMEM;
    for (size_t i = 0; set && i < ekg_resource_set_size(set); i++) {
        cJSON *item = NULL;
        ekg_err_t err = ekg_render_resource(ekg_resource_set_at(set, i), &item);
        if (err)
            return err;
        cJSON_AddItemToArray(arr, item);
    }
    return EKG_OK;
}

ekg_err_t ekg_render_dump(const ekg_resource_set_t *clusters, const ekg_resource_set_t *load_assignments,
                          const ekg_translator_t *t, cJSON **out)
{
    ekg_err_t err = EKG_OK;
    cJSON *doc = cJSON_CreateObject();
    if (!doc)
        return EKG_ENOMEM;
    if ((err = add_set(doc, "clusters", clusters)) != EKG_OK ||
        (err = add_set(doc, "load_assignments", load_assignments)) != EKG_OK)
        goto out;
    cJSON *locs = t ? ekg_translator_localities(t) : cJSON_CreateObject();
    if (!locs) {
        err = EKG_ENOMEM;
        goto out;
    }
    cJSON_AddItemToObject(doc, "localities", locs);
    *out = doc;
    doc = NULL;
out:
    cJSON_Delete(doc);
    return err;
}

/* --- JSON
 * ----------------------------------------------------------------------------------------------------- */

static void indent(FILE *out, int depth)
{
    fputc('\n', out);
    for (int i = 0; i < depth; i++)
        fputs("  ", out);
}

/* Scalars (and their escaping) are cJSON's; the layout is the common two-space one. */
static ekg_err_t json_node(const cJSON *node, int depth, FILE *out)
{
    bool obj = cJSON_IsObject(node);
    if (obj || cJSON_IsArray(node)) {
        if (!node->child) {
            fputs(obj ? "{}" : "[]", out);
            return EKG_OK;
        }
        fputc(obj ? '{' : '[', out);
        for (const cJSON *c = node->child; c; c = c->next) {
            indent(out, depth + 1);
            if (obj) {
                cJSON *key = cJSON_CreateStringReference(c->string);
                char *k = key ? cJSON_PrintUnformatted(key) : NULL;
                cJSON_Delete(key);
                if (!k)
                    return EKG_ENOMEM;
                fprintf(out, "%s: ", k);
                free(k);
            }
            ekg_err_t err = json_node(c, depth + 1, out);
            if (err)
                return err;
            if (c->next)
                fputc(',', out);
        }
        indent(out, depth);
        fputc(obj ? '}' : ']', out);
        return EKG_OK;
    }
    char *text = cJSON_PrintUnformatted(node);
    if (!text)
        return EKG_ENOMEM;
    fputs(text, out);
    free(text);
    return EKG_OK;
}

static ekg_err_t write_json(const cJSON *doc, FILE *out)
{
    ekg_err_t err = json_node(doc, 0, out);
    fputc('\n', out);
    return err ? err : ferror(out) ? EKG_EIO : EKG_OK;
}

/* --- YAML
 * ----------------------------------------------------------------------------------------------------- */

/* Would this string, written plain, read back as something other than a string (null, bool, number)? */
static bool needs_quotes(const char *s)
{
    if (!*s)
        return true;
    static const char *const special[] = {
        "null", "Null",  "NULL",  "~",     "true", "True", "TRUE", "false", "False", "FALSE", "yes",  "Yes",
        "YES",  "no",    "No",    "NO",    "on",   "On",   "ON",   "off",   "Off",   "OFF",   ".inf", ".Inf",
        ".INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN", "y",     "Y",     "n",     "N"};
    for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
        if (strcmp(s, special[i]) == 0)
            return true;
    char *end;
    (void)strtod(s, &end);
    if (*end == '\0')
        return true;
    if (strncmp(s, "0x", 2) == 0 || strncmp(s, "0o", 2) == 0)
        return true;
    return false;
}

static int emit(yaml_emitter_t *em, yaml_event_t *ev)
{
    return yaml_emitter_emit(em, ev) ? 0 : -1;
}

static int emit_scalar(yaml_emitter_t *em, const char *value, bool is_string)
{
    yaml_event_t ev;
    yaml_scalar_style_t style = YAML_ANY_SCALAR_STYLE;
    if (is_string && needs_quotes(value))
        style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)value, (int)strlen(value), 1, 1, style))
        return -1;
    return emit(em, &ev);
}

static int emit_node(yaml_emitter_t *em, const cJSON *node)
{
    yaml_event_t ev;
    char num[64];
    if (cJSON_IsObject(node)) {
        if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) ||
            emit(em, &ev))
            return -1;
        for (const cJSON *c = node->child; c; c = c->next)
            if (emit_scalar(em, c->string, true) || emit_node(em, c))
                return -1;
        return yaml_mapping_end_event_initialize(&ev) ? emit(em, &ev) : -1;
    }
    if (cJSON_IsArray(node)) {
        if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE) ||
            emit(em, &ev))
            return -1;
        for (const cJSON *c = node->child; c; c = c->next)
            if (emit_node(em, c))
                return -1;
        return yaml_sequence_end_event_initialize(&ev) ? emit(em, &ev) : -1;
    }
    if (cJSON_IsString(node))
        return emit_scalar(em, node->valuestring, true);
    if (cJSON_IsBool(node))
        return emit_scalar(em, cJSON_IsTrue(node) ? "true" : "false", false);
    if (cJSON_IsNumber(node)) {
        double d = node->valuedouble;
        if (d == (double)(long long)d && d < 9007199254740992.0 && d > -9007199254740992.0)
            snprintf(num, sizeof(num), "%lld", (long long)d);
        else
            snprintf(num, sizeof(num), "%.17g", d);
        return emit_scalar(em, num, false);
    }
    return emit_scalar(em, "null", false);
}

static int write_handler(void *data, unsigned char *buffer, size_t size)
{
    return fwrite(buffer, 1, size, data) == size;
}

static ekg_err_t write_yaml(const cJSON *doc, FILE *out)
{
    ekg_err_t err = EKG_EIO;
    yaml_emitter_t em;
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&em))
        return EKG_ENOMEM;
    yaml_emitter_set_output(&em, write_handler, out);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, -1);
    if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) || emit(&em, &ev))
        goto out;
    if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) || emit(&em, &ev))
        goto out;
    if (emit_node(&em, doc))
        goto out;
    if (!yaml_document_end_event_initialize(&ev, 1) || emit(&em, &ev))
        goto out;
    if (!yaml_stream_end_event_initialize(&ev) || emit(&em, &ev))
        goto out;
    err = ferror(out) ? EKG_EIO : EKG_OK;
out:
    yaml_emitter_delete(&em);
    return err;
}

ekg_err_t ekg_render_write(const cJSON *doc, ekg_format_t format, FILE *out)
{
    return format == EKG_FORMAT_YAML ? write_yaml(doc, out) : write_json(doc, out);
}
