/*
 * src/render/render.c: JSON and YAML renderings of resources and documents (include/ekglue/render.h), for
 * `ekglue dump` and the debug port.
 *
 * Resources are decoded from their shared bytes into a scratch arena and printed through upb's JSON encoder,
 * so what is shown is exactly what is sent. YAML is written with libyaml's emitter. Out of memory aborts
 * (ekglue/mem.h; upb's and libyaml's too), so the errors are the bytes' (EKG_EPROTO) and the stream's
 * (EKG_EIO). Thread: any (the main thread for `dump`, the debug port's thread for its pages).
 */
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "upb/decode.h"
#include "upb/reflection.h"

#include "ekglue/mem.h"
#include "ekglue/proto.h"
#include "ekglue/render.h"

static const char *const type_names[EKG_RESOURCE__COUNT] = {EKG_TYPE_CLUSTER, EKG_TYPE_LOAD_ASSIGNMENT,
                                                            EKG_TYPE_LISTENER, EKG_TYPE_ROUTE};

ekg_err_t ekg_render_resource(const ekg_resource_t *r, cJSON **out)
{
    ekg_err_t err = EKG_OK;
    char *json = NULL;
    const upb_MessageDef *m = ekg_proto_message(type_names[ekg_resource_type(r)]);
    if (!m)
        return EKG_EINVAL;
    upb_Arena *arena = ekg_proto_arena_new();
    upb_Message *msg = ekg_proto_message_new(m, arena);
    size_t len;
    const char *data = ekg_resource_data(r, &len);
    upb_DecodeStatus st = upb_Decode(data, len, msg, upb_MessageDef_MiniTable(m), NULL, 0, arena);
    if (st == kUpb_DecodeStatus_OutOfMemory)
        ekg_oom(0);
    if (st != kUpb_DecodeStatus_Ok) {
        err = EKG_EPROTO;
        goto out;
    }
    if ((err = ekg_proto_to_json(msg, m, &json, NULL)) != EKG_OK)
        goto out;
    /* cJSON allocates through ekglue/mem.h: NULL means upb wrote something cJSON does not read. */
    if (!(*out = cJSON_Parse(json)))
        err = EKG_EPROTO;
out:
    free(json);
    upb_Arena_Free(arena);
    return err;
}

static ekg_err_t add_set(cJSON *doc, const char *key, const ekg_resource_set_t *set)
{
    cJSON *arr = cJSON_AddArrayToObject(doc, key);
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
    if ((err = add_set(doc, "clusters", clusters)) != EKG_OK ||
        (err = add_set(doc, "load_assignments", load_assignments)) != EKG_OK)
        goto out;
    cJSON_AddItemToObject(doc, "localities", t ? ekg_translator_localities(t) : cJSON_CreateObject());
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
static void json_node(const cJSON *node, int depth, FILE *out)
{
    bool obj = cJSON_IsObject(node);
    if (obj || cJSON_IsArray(node)) {
        if (!node->child) {
            fputs(obj ? "{}" : "[]", out);
            return;
        }
        fputc(obj ? '{' : '[', out);
        for (const cJSON *c = node->child; c; c = c->next) {
            indent(out, depth + 1);
            if (obj) {
                cJSON *key = cJSON_CreateStringReference(c->string);
                char *k = cJSON_PrintUnformatted(key);
                cJSON_Delete(key);
                fprintf(out, "%s: ", k);
                cJSON_free(k);
            }
            json_node(c, depth + 1, out);
            if (c->next)
                fputc(',', out);
        }
        indent(out, depth);
        fputc(obj ? '}' : ']', out);
        return;
    }
    char *text = cJSON_PrintUnformatted(node);
    fputs(text, out);
    cJSON_free(text);
}

static ekg_err_t write_json(const cJSON *doc, FILE *out)
{
    json_node(doc, 0, out);
    fputc('\n', out);
    return ferror(out) ? EKG_EIO : EKG_OK;
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

/*
 * Emits an event that initialized (ok, libyaml's return) into em. EKG_EIO when either failed: the stream
 * failed, or a string is not UTF-8 (libyaml refuses it).
 */
static ekg_err_t emit(yaml_emitter_t *em, int ok, yaml_event_t *ev)
{
    return ok && yaml_emitter_emit(em, ev) ? EKG_OK : EKG_EIO;
}

static ekg_err_t emit_scalar(yaml_emitter_t *em, const char *value, bool is_string)
{
    yaml_event_t ev;
    yaml_scalar_style_t style = YAML_ANY_SCALAR_STYLE;
    if (is_string && needs_quotes(value))
        style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    return emit(
        em,
        yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)value, (int)strlen(value), 1, 1, style),
        &ev);
}

static ekg_err_t emit_node(yaml_emitter_t *em, const cJSON *node)
{
    yaml_event_t ev;
    char num[64];
    ekg_err_t err;
    if (cJSON_IsObject(node)) {
        if ((err = emit(em, yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE),
                        &ev)))
            return err;
        for (const cJSON *c = node->child; c; c = c->next)
            if ((err = emit_scalar(em, c->string, true)) || (err = emit_node(em, c)))
                return err;
        return emit(em, yaml_mapping_end_event_initialize(&ev), &ev);
    }
    if (cJSON_IsArray(node)) {
        if ((err =
                 emit(em, yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE),
                      &ev)))
            return err;
        for (const cJSON *c = node->child; c; c = c->next)
            if ((err = emit_node(em, c)))
                return err;
        return emit(em, yaml_sequence_end_event_initialize(&ev), &ev);
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
    yaml_emitter_t em;
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&em))
        ekg_oom(0); /* libyaml allocates with plain malloc */
    yaml_emitter_set_output(&em, write_handler, out);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, -1);
    ekg_err_t err;
    if ((err = emit(&em, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING), &ev)) ||
        (err = emit(&em, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1), &ev)) ||
        (err = emit_node(&em, doc)) || (err = emit(&em, yaml_document_end_event_initialize(&ev, 1), &ev)) ||
        (err = emit(&em, yaml_stream_end_event_initialize(&ev), &ev)))
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
