/*
 * src/translate/config.c: ekglue's config file (include/ekglue/translate.h, docs/config.md), loaded and
 * applied.
 *
 * Loading (main thread): ekglue/yaml.h turns the file into one cJSON tree with line numbers; a small
 * hand-written walker checks ekglue's own schema key by key (unknown keys, duplicates and wrong types are
 * errors naming FILE:LINE: key.path), and each Cluster subtree (the base, every override) is printed back to
 * JSON text and decoded by upb's proto3 JSON decoder against the process-wide pool, so that Any payloads and
 * field names are checked exactly as Envoy's own JSON loader would. The decoded Cluster is kept twice: as
 * deterministic bytes (what the merge decodes and what the config hash covers) and as a message decoded back
 * from those bytes (what the merge walks with reflection). Everything a config holds lives in one upb_Arena,
 * freed at once.
 *
 * Checking: once the file is loaded, the clusters it makes (the base, and the base with each override merged
 * in, filled in as translation would) are checked against Envoy's own validation rules and must print as
 * proto3 JSON (check_clusters); a violation is a config error like any other, so `check-config`, `serve`,
 * `dump` and a reload (which keeps the config in force) all refuse the file (docs/config.md, "Validation").
 *
 * Applying (ekg_config_cluster, on the watcher thread during translation): match the rules, decode the base
 * into the caller's arena, merge each matching override (merge.h). The config is never written after loading,
 * so any number of threads may apply it while the main thread loads the next one.
 *
 * Memory: out of memory aborts (ekglue/mem.h), upb's included (the ekg_proto_* helpers of ekglue/proto.h), so
 * every error here is about the file: EKG_ECONFIG (or EKG_EPARSE, EKG_EIO from ekglue/yaml.h) with
 * FILE:LINE: key.path.
 *
 * Thread: the main thread loads; any thread applies (see above).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upb/decode.h"
#include "upb/def.h"
#include "upb/reflection.h"

#include "ekglue/mem.h"
#include "ekglue/proto.h"
#include "ekglue/translate.h"
#include "ekglue/yaml.h"

#include "common/hash.h"
#include "translate/merge.h"
#include "translate/translate_internal.h"

#define API_VERSION "v1alpha"
#define DEFAULT_BASE_JSON                                                                                    \
    "{\"type\":\"EDS\",\"edsClusterConfig\":{\"edsConfig\":{\"ads\":{},\"resourceApiVersion\":\"V3\"}},"     \
    "\"connectTimeout\":\"1s\"}"
#define DEFAULT_REGION_LABEL "topology.kubernetes.io/region"
#define DEFAULT_ZONE_LABEL   "topology.kubernetes.io/zone"
#define DEFAULT_DOMAIN       "cluster.local"
#define PATH_LEN             256

/* One entry of a rule's match list; a NULL member was not given. All strings live in the config's arena. */
typedef struct matcher {
    const char *cluster_name, *port_name, *namespace_, *service, *app_protocol;
} matcher_t;

typedef struct rule {
    matcher_t *matchers; /* in the config's arena; at least one */
    size_t nmatchers;
    bool suppress;
    const upb_Message *override; /* Cluster in the config's arena; NULL for a suppress rule */
    char *override_bytes;        /* its deterministic encoding, in the config's arena */
    size_t override_len;
} rule_t;

struct ekg_config {
    upb_Arena *arena;                  /* owns this struct and everything it points to */
    const upb_MessageDef *cluster_def; /* borrowed from the proto pool, which outlives every config */
    envoy_config_cluster_v3_Cluster *base;
    char *base_bytes; /* deterministic encoding of base */
    size_t base_len;
    rule_t *rules;
    size_t nrules;
    bool include_not_ready;
    ekg_zone_priorities_t zone_priorities;
    uint32_t overprovisioning_factor; /* 0 = unset (Envoy's default, 140) */
    ekg_locality_rules_t locality;
    const char *cluster_domain;
    unsigned long long hash;
};

/* Where the config's Cluster subtrees were written, for errors found once the whole file is loaded. */
typedef struct cluster_nodes {
    const cJSON *base;       /* cluster_config.base; NULL when absent */
    const cJSON **overrides; /* malloc'ed, one per rule: its `override` (NULL for a suppress rule) */
    size_t noverrides;
} cluster_nodes_t;

/* The state of one load: where errors go and which positions they can name. */
typedef struct loader {
    ekg_config_t *cfg;
    const ekg_yaml_docs_t *docs; /* NULL while loading the built-in default */
    const char *source;          /* file name for messages */
    ekg_diag_t *diag;
    cluster_nodes_t *nodes; /* filled while loading; NULL for the built-in default */
} loader_t;

/* A key of one of ekglue's own mappings and where take_keys() puts its member (NULL when absent). */
typedef struct key_slot {
    const char *key;
    const cJSON **member;
} key_slot_t;

/* --- errors ------------------------------------------------------------------------------------------- */

/* Writes "SOURCE:LINE: PATH: reason" (LINE and PATH left out when unknown or empty) and returns EKG_ECONFIG.
 */
static ekg_err_t fail(const loader_t *ld, const cJSON *node, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static ekg_err_t fail(const loader_t *ld, const cJSON *node, const char *path, const char *fmt, ...)
{
    char reason[sizeof(ld->diag->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    int line = ld->docs && node ? ekg_yaml_docs_line(ld->docs, node, NULL) : 0;
    char where[32] = "";
    if (line > 0)
        snprintf(where, sizeof(where), ":%d", line);
    return ekg_diag_set(ld->diag, EKG_ECONFIG, "%s%s: %s%s%s", ld->source, where, path, *path ? ": " : "",
                        reason);
}

/* out = a + b + c, cut to PATH_LEN - 1 bytes (an absurdly long key only shortens the message). */
static void path_join(char *out, const char *a, const char *b, const char *c)
{
    size_t used = 0;
    const char *parts[] = {a, b, c};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(parts[i]);
        if (n > PATH_LEN - 1 - used)
            n = PATH_LEN - 1 - used;
        memcpy(out + used, parts[i], n);
        used += n;
    }
    out[used] = '\0';
}

static void path_key(char *out, const char *path, const char *key)
{
    path_join(out, path, *path ? "." : "", key);
}

static void path_index(char *out, const char *path, size_t i)
{
    char index[32];
    snprintf(index, sizeof(index), "[%zu]", i);
    path_join(out, path, index, "");
}

/* --- small helpers ------------------------------------------------------------------------------------ */

static bool present(const cJSON *node)
{
    return node && !cJSON_IsNull(node); /* `key:` with no value means the same as no key */
}

static const char *type_name(const cJSON *node)
{
    if (cJSON_IsObject(node))
        return "a mapping";
    if (cJSON_IsArray(node))
        return "a list";
    if (cJSON_IsString(node))
        return "a string";
    if (cJSON_IsBool(node))
        return "a boolean";
    if (cJSON_IsNumber(node))
        return "a number";
    return "null";
}

/*
 * Checks that obj is a mapping whose keys are all in slots (each at most once) and points each slot's member
 * at the value. path names obj.
 */
static ekg_err_t take_keys(const loader_t *ld, const cJSON *obj, const char *path, key_slot_t *slots,
                           size_t nslots)
{
    for (size_t i = 0; i < nslots; i++)
        *slots[i].member = NULL;
    if (!cJSON_IsObject(obj))
        return fail(ld, obj, path, "expected a mapping, got %s", type_name(obj));
    for (const cJSON *child = obj->child; child; child = child->next) {
        char sub[PATH_LEN];
        path_key(sub, path, child->string ? child->string : "");
        size_t i = 0;
        while (i < nslots && (!child->string || strcmp(child->string, slots[i].key) != 0))
            i++;
        if (i == nslots) {
            char known[256] = "";
            size_t used = 0;
            for (size_t k = 0; k < nslots && used < sizeof(known); k++) {
                int n = snprintf(known + used, sizeof(known) - used, "%s%s", k ? ", " : "", slots[k].key);
                used += n > 0 ? (size_t)n : 0;
            }
            return fail(ld, child, sub, "unknown key (expected %s)", known);
        }
        if (*slots[i].member)
            return fail(ld, child, sub, "duplicate key");
        *slots[i].member = child;
    }
    return EKG_OK;
}

/* Copies a string member into the config's arena; *out stays NULL when the member is absent. */
static ekg_err_t take_string(const loader_t *ld, const cJSON *node, const char *path, const char **out)
{
    *out = NULL;
    if (!present(node))
        return EKG_OK;
    if (!cJSON_IsString(node))
        return fail(ld, node, path, "expected a string, got %s", type_name(node));
    *out = ekg_proto_strdup(ld->cfg->arena, node->valuestring);
    return EKG_OK;
}

/* --- Cluster messages --------------------------------------------------------------------------------- */

/*
 * Finds the first "@type" under node whose message type the pool lacks and reports it at its own line (upb
 * only says "Type was not found"). False when there is none.
 */
static bool report_unknown_any(const loader_t *ld, const cJSON *node, const char *path, ekg_err_t *err)
{
    size_t index = 0;
    for (const cJSON *child = node->child; child; child = child->next, index++) {
        char sub[PATH_LEN];
        if (cJSON_IsObject(node))
            path_key(sub, path, child->string ? child->string : "");
        else
            path_index(sub, path, index);
        if (cJSON_IsObject(node) && child->string && strcmp(child->string, "@type") == 0 &&
            cJSON_IsString(child)) {
            const char *url = child->valuestring;
            const char *slash = strrchr(url, '/');
            const char *name = slash ? slash + 1 : url;
            if (!ekg_proto_message(name)) {
                *err =
                    fail(ld, child, sub, "unknown Any type \"%s\" (not in ekglue's protobuf registry)", url);
                return true;
            }
        }
        if ((cJSON_IsObject(child) || cJSON_IsArray(child)) && report_unknown_any(ld, child, sub, err))
            return true;
    }
    return false;
}

/* upb's message without its "Error parsing JSON @LINE:COL: " prefix (a position in our re-printed JSON). */
static const char *upb_reason(const char *upb_msg)
{
    static const char prefix[] = "Error parsing JSON @";
    if (strncmp(upb_msg, prefix, sizeof(prefix) - 1) == 0) {
        const char *rest = strstr(upb_msg, ": ");
        if (rest)
            return rest + 2;
    }
    return upb_msg;
}

/* Decodes {key: value} alone as a message of type m; false (with upb's reason in diag) if it does not decode.
 */
static bool member_decodes(const cJSON *member, const upb_MessageDef *m, ekg_diag_t *diag)
{
    upb_Arena *arena = ekg_proto_arena_new();
    cJSON *wrapper = cJSON_CreateObject(); /* owned; refers to member without copying it */
    cJSON_AddItemReferenceToObject(wrapper, member->string, (cJSON *)member);
    char *json = cJSON_PrintUnformatted(wrapper); /* owned */
    upb_Message *msg = ekg_proto_message_new(m, arena);
    bool ok = ekg_proto_from_json(json, strlen(json), m, msg, arena, diag) == EKG_OK;
    cJSON_free(json);
    cJSON_Delete(wrapper);
    upb_Arena_Free(arena);
    return ok;
}

/*
 * After node failed to decode as a message of type m: narrows the failure down to the deepest member that
 * fails on its own, so that the message names that member's line and key path. Descends into singular and
 * repeated sub-messages and into Any payloads of known types. True (with *err set) when it found one.
 */
static bool locate_decode_error(const loader_t *ld, const cJSON *node, const upb_MessageDef *m,
                                const char *path, int depth, ekg_err_t *err)
{
    if (!cJSON_IsObject(node) || depth > 64)
        return false;
    for (const cJSON *member = node->child; member; member = member->next) {
        if (!member->string || strcmp(member->string, "@type") == 0)
            continue;
        char sub[PATH_LEN];
        path_key(sub, path, member->string);
        const upb_FieldDef *f = upb_MessageDef_FindByJsonName(m, member->string);
        if (!f)
            f = upb_MessageDef_FindFieldByName(m, member->string);
        const upb_MessageDef *sm = f && upb_FieldDef_IsSubMessage(f) && !upb_FieldDef_IsMap(f)
                                       ? upb_FieldDef_MessageSubDef(f)
                                       : NULL;
        if (sm && upb_MessageDef_WellKnownType(sm) == kUpb_WellKnown_Any && cJSON_IsObject(member)) {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(member, "@type");
            const char *url = cJSON_IsString(type) ? type->valuestring : "";
            const char *slash = strrchr(url, '/');
            sm = ekg_proto_message(slash ? slash + 1 : url);
        }
        if (sm && upb_MessageDef_WellKnownType(sm) == kUpb_WellKnown_Unspecified) {
            if (upb_FieldDef_IsRepeated(f) && cJSON_IsArray(member)) {
                size_t i = 0;
                for (const cJSON *elem = member->child; elem; elem = elem->next, i++) {
                    char esub[PATH_LEN];
                    path_index(esub, sub, i);
                    if (locate_decode_error(ld, elem, sm, esub, depth + 1, err))
                        return true;
                }
            } else if (!upb_FieldDef_IsRepeated(f) &&
                       locate_decode_error(ld, member, sm, sub, depth + 1, err)) {
                return true;
            }
        }
        ekg_diag_t diag = {{0}};
        if (!member_decodes(member, m, &diag)) {
            *err = fail(ld, member, sub, "%s", upb_reason(diag.msg));
            return true;
        }
    }
    return false;
}

/* Reports a failed JSON decode of the Cluster at node, at the line of the member that fails if it can. */
static ekg_err_t decode_error(const loader_t *ld, const cJSON *node, const char *path, const char *upb_msg)
{
    ekg_err_t err;
    if (node && strstr(upb_msg, "Type was not found") && report_unknown_any(ld, node, path, &err))
        return err;
    if (node && locate_decode_error(ld, node, ld->cfg->cluster_def, path, 0, &err))
        return err;
    return fail(ld, node, path, "%s", upb_reason(upb_msg));
}

/*
 * Decodes a Cluster from proto3 JSON into the config: *bytes gets its deterministic encoding and *msg the
 * message decoded back from them (which also proves the bytes decode). node/path name the key in error
 * messages.
 */
static ekg_err_t load_cluster_json(const loader_t *ld, const char *json, size_t len, const cJSON *node,
                                   const char *path, upb_Message **msg, char **bytes, size_t *nbytes)
{
    ekg_config_t *cfg = ld->cfg;
    ekg_err_t err;
    upb_Arena *tmp = ekg_proto_arena_new(); /* the JSON-decoded message; only its bytes are kept */
    upb_Message *decoded = ekg_proto_message_new(cfg->cluster_def, tmp);
    ekg_diag_t upb_diag = {{0}};
    err = ekg_proto_from_json(json, len, cfg->cluster_def, decoded, tmp, &upb_diag);
    if (err != EKG_OK) {
        err = decode_error(ld, node, path, upb_diag.msg);
        goto out;
    }
    err = ekg_proto_encode(decoded, cfg->cluster_def, cfg->arena, bytes, nbytes);
    if (err != EKG_OK) {
        err = fail(ld, node, path, "cannot encode the Cluster (nested too deep?)");
        goto out;
    }
    *msg = ekg_proto_message_new(cfg->cluster_def, cfg->arena);
    upb_DecodeStatus st = upb_Decode(*bytes, *nbytes, *msg, upb_MessageDef_MiniTable(cfg->cluster_def), NULL,
                                     kUpb_DecodeOption_AliasString, cfg->arena);
    if (st == kUpb_DecodeStatus_OutOfMemory)
        ekg_oom(0);
    if (st != kUpb_DecodeStatus_Ok)
        err = fail(ld, node, path, "the Cluster does not survive a binary round trip (nested too deep?)");
out:
    upb_Arena_Free(tmp);
    return err;
}

/* Like load_cluster_json(), from a cJSON subtree of the config file. */
static ekg_err_t load_cluster(const loader_t *ld, const cJSON *node, const char *path, upb_Message **msg,
                              char **bytes, size_t *nbytes)
{
    if (!cJSON_IsObject(node))
        return fail(ld, node, path, "expected a mapping of envoy.config.cluster.v3.Cluster fields, got %s",
                    type_name(node));
    char *json = cJSON_PrintUnformatted(node); /* owned here */
    ekg_err_t err = load_cluster_json(ld, json, strlen(json), node, path, msg, bytes, nbytes);
    cJSON_free(json);
    return err;
}

/* --- the schema --------------------------------------------------------------------------------------- */

static ekg_err_t load_matcher(const loader_t *ld, const cJSON *node, const char *path, matcher_t *m)
{
    const cJSON *cluster_name, *port_name, *namespace_, *service, *app_protocol;
    key_slot_t slots[] = {{"cluster_name", &cluster_name},
                          {"port_name", &port_name},
                          {"namespace", &namespace_},
                          {"service", &service},
                          {"app_protocol", &app_protocol}};
    ekg_err_t err = take_keys(ld, node, path, slots, sizeof(slots) / sizeof(slots[0]));
    if (err != EKG_OK)
        return err;
    const cJSON *members[] = {cluster_name, port_name, namespace_, service, app_protocol};
    const char **fields[] = {&m->cluster_name, &m->port_name, &m->namespace_, &m->service, &m->app_protocol};
    bool any = false;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        char sub[PATH_LEN];
        path_key(sub, path, slots[i].key);
        if ((err = take_string(ld, members[i], sub, fields[i])) != EKG_OK)
            return err;
        any = any || *fields[i];
    }
    if (!any)
        return fail(
            ld, node, path,
            "an empty matcher would match every cluster; give at least one of cluster_name, port_name, "
            "namespace, service or app_protocol");
    return EKG_OK;
}

static ekg_err_t load_rule(const loader_t *ld, const cJSON *node, const char *path, rule_t *rule)
{
    upb_Arena *arena = ld->cfg->arena;
    const cJSON *match, *override, *suppress;
    key_slot_t slots[] = {{"match", &match}, {"override", &override}, {"suppress", &suppress}};
    ekg_err_t err = take_keys(ld, node, path, slots, sizeof(slots) / sizeof(slots[0]));
    if (err != EKG_OK)
        return err;

    char sub[PATH_LEN];
    path_key(sub, path, "match");
    if (!present(match))
        return fail(ld, node, path, "a rule needs a match list");
    if (!cJSON_IsArray(match))
        return fail(ld, match, sub, "expected a list of matchers, got %s", type_name(match));
    int n = cJSON_GetArraySize(match);
    if (n <= 0)
        return fail(ld, match, sub, "a rule needs at least one matcher");
    rule->matchers = ekg_proto_alloc(arena, (size_t)n * sizeof(*rule->matchers));
    memset(rule->matchers, 0, (size_t)n * sizeof(*rule->matchers));
    for (const cJSON *m = match->child; m; m = m->next) {
        char msub[PATH_LEN];
        path_index(msub, sub, rule->nmatchers);
        if ((err = load_matcher(ld, m, msub, &rule->matchers[rule->nmatchers])) != EKG_OK)
            return err;
        rule->nmatchers++;
    }

    path_key(sub, path, "suppress");
    if (present(suppress)) {
        if (!cJSON_IsBool(suppress))
            return fail(ld, suppress, sub, "expected true, got %s", type_name(suppress));
        if (!cJSON_IsTrue(suppress))
            return fail(ld, suppress, sub, "suppress: false is meaningless; use override (or drop the rule)");
        rule->suppress = true;
    }
    if (present(override) == rule->suppress)
        return fail(ld, node, path, "a rule needs exactly one of override or suppress");
    if (rule->suppress)
        return EKG_OK;
    path_key(sub, path, "override");
    upb_Message *msg = NULL;
    err = load_cluster(ld, override, sub, &msg, &rule->override_bytes, &rule->override_len);
    rule->override = msg;
    return err;
}

static ekg_err_t load_cluster_config(const loader_t *ld, const cJSON *node, const char *path)
{
    ekg_config_t *cfg = ld->cfg;
    const cJSON *base, *overrides;
    key_slot_t slots[] = {{"base", &base}, {"overrides", &overrides}};
    ekg_err_t err = take_keys(ld, node, path, slots, sizeof(slots) / sizeof(slots[0]));
    if (err != EKG_OK)
        return err;

    char sub[PATH_LEN];
    if (present(base)) {
        path_key(sub, path, "base");
        upb_Message *msg = NULL;
        if ((err = load_cluster(ld, base, sub, &msg, &cfg->base_bytes, &cfg->base_len)) != EKG_OK)
            return err;
        cfg->base = (envoy_config_cluster_v3_Cluster *)msg;
        if (ld->nodes)
            ld->nodes->base = base;
    }
    if (!present(overrides))
        return EKG_OK;
    path_key(sub, path, "overrides");
    if (!cJSON_IsArray(overrides))
        return fail(ld, overrides, sub, "expected a list of rules, got %s", type_name(overrides));
    int n = cJSON_GetArraySize(overrides);
    if (n <= 0)
        return EKG_OK;
    cfg->rules = ekg_proto_alloc(cfg->arena, (size_t)n * sizeof(*cfg->rules));
    memset(cfg->rules, 0, (size_t)n * sizeof(*cfg->rules));
    if (ld->nodes)
        ld->nodes->overrides = ekg_xcalloc((size_t)n, sizeof(*ld->nodes->overrides));
    for (const cJSON *r = overrides->child; r; r = r->next) {
        char rsub[PATH_LEN];
        path_index(rsub, sub, cfg->nrules);
        if ((err = load_rule(ld, r, rsub, &cfg->rules[cfg->nrules])) != EKG_OK)
            return err;
        if (ld->nodes) {
            ld->nodes->overrides[cfg->nrules] = cJSON_GetObjectItemCaseSensitive(r, "override");
            ld->nodes->noverrides = cfg->nrules + 1;
        }
        cfg->nrules++;
    }
    return EKG_OK;
}

static ekg_err_t load_locality_source(const loader_t *ld, const cJSON *node, const char *path,
                                      ekg_locality_source_t *src)
{
    src->kind = EKG_LOCALITY_NONE;
    src->value = NULL;
    if (!present(node))
        return EKG_OK;
    const cJSON *label, *literal, *use_hostname;
    key_slot_t slots[] = {{"label", &label}, {"literal", &literal}, {"use_hostname", &use_hostname}};
    ekg_err_t err = take_keys(ld, node, path, slots, sizeof(slots) / sizeof(slots[0]));
    if (err != EKG_OK)
        return err;
    if (present(label) + present(literal) + present(use_hostname) != 1)
        return fail(ld, node, path, "a locality source needs exactly one of label, literal or use_hostname");

    char sub[PATH_LEN];
    if (present(use_hostname)) {
        path_key(sub, path, "use_hostname");
        if (!cJSON_IsBool(use_hostname))
            return fail(ld, use_hostname, sub, "expected true, got %s", type_name(use_hostname));
        if (!cJSON_IsTrue(use_hostname))
            return fail(ld, use_hostname, sub,
                        "use_hostname: false is meaningless; give label or literal, or leave the source out");
        src->kind = EKG_LOCALITY_HOSTNAME;
        return EKG_OK;
    }
    const cJSON *value = present(label) ? label : literal;
    path_key(sub, path, present(label) ? "label" : "literal");
    if ((err = take_string(ld, value, sub, &src->value)) != EKG_OK)
        return err;
    if (present(label) && !*src->value)
        return fail(ld, value, sub, "expected a Node label key, got an empty string");
    src->kind = present(label) ? EKG_LOCALITY_LABEL : EKG_LOCALITY_LITERAL;
    return EKG_OK;
}

static ekg_err_t load_endpoint_config(const loader_t *ld, const cJSON *node, const char *path)
{
    ekg_config_t *cfg = ld->cfg;
    const cJSON *include_not_ready, *locality, *zone_priorities, *overprovisioning;
    key_slot_t slots[] = {{"include_not_ready", &include_not_ready},
                          {"locality", &locality},
                          {"zone_priorities", &zone_priorities},
                          {"overprovisioning_factor", &overprovisioning}};
    ekg_err_t err = take_keys(ld, node, path, slots, sizeof(slots) / sizeof(slots[0]));
    if (err != EKG_OK)
        return err;

    char sub[PATH_LEN];
    if (present(include_not_ready)) {
        path_key(sub, path, "include_not_ready");
        if (!cJSON_IsBool(include_not_ready))
            return fail(ld, include_not_ready, sub, "expected true or false, got %s",
                        type_name(include_not_ready));
        cfg->include_not_ready = cJSON_IsTrue(include_not_ready);
    }
    if (present(zone_priorities)) {
        static const char *const modes[] = {"auto", "always", "never"};
        path_key(sub, path, "zone_priorities");
        const char *v = cJSON_IsString(zone_priorities) ? zone_priorities->valuestring : NULL;
        size_t i = 0;
        while (v && i < 3 && strcmp(v, modes[i]) != 0)
            i++;
        if (!v || i == 3)
            return fail(ld, zone_priorities, sub, "expected auto, always or never, got %s",
                        v ? v : type_name(zone_priorities));
        cfg->zone_priorities = (ekg_zone_priorities_t)i;
    }
    if (present(overprovisioning)) {
        path_key(sub, path, "overprovisioning_factor");
        double d = cJSON_IsNumber(overprovisioning) ? overprovisioning->valuedouble : -1;
        if (!(d >= 1 && d <= 4294967295.0 && d == (double)(uint32_t)d)) {
            char got[48];
            if (cJSON_IsNumber(overprovisioning))
                snprintf(got, sizeof(got), "%.17g", overprovisioning->valuedouble);
            else
                snprintf(got, sizeof(got), "%s", type_name(overprovisioning));
            return fail(
                ld, overprovisioning, sub,
                "expected a whole number from 1 to 4294967295 (percent: Envoy's default is 140), got %s",
                got);
        }
        cfg->overprovisioning_factor = (uint32_t)d;
    }
    if (!present(locality))
        return EKG_OK; /* keep the default sources */

    /* A locality section is taken as written: a source it leaves out is empty (as in the original ekglue). */
    const cJSON *region_from, *zone_from, *sub_zone_from;
    key_slot_t lslots[] = {
        {"region_from", &region_from}, {"zone_from", &zone_from}, {"sub_zone_from", &sub_zone_from}};
    char lpath[PATH_LEN];
    path_key(lpath, path, "locality");
    if ((err = take_keys(ld, locality, lpath, lslots, sizeof(lslots) / sizeof(lslots[0]))) != EKG_OK)
        return err;
    const cJSON *members[] = {region_from, zone_from, sub_zone_from};
    ekg_locality_source_t *sources[] = {&cfg->locality.region, &cfg->locality.zone, &cfg->locality.sub_zone};
    for (size_t i = 0; i < 3; i++) {
        path_key(sub, lpath, lslots[i].key);
        if ((err = load_locality_source(ld, members[i], sub, sources[i])) != EKG_OK)
            return err;
    }
    return EKG_OK;
}

static bool valid_domain(const char *s)
{
    if (!*s || *s == '.' || s[strlen(s) - 1] == '.' || strlen(s) > 253)
        return false;
    for (; *s; s++) {
        bool ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                  *s == '-' || (*s == '.' && s[1] != '.');
        if (!ok)
            return false;
    }
    return true;
}

static ekg_err_t load_document(const loader_t *ld, const cJSON *root)
{
    ekg_config_t *cfg = ld->cfg;
    const cJSON *api_version, *cluster_config, *endpoint_config, *cluster_domain;
    key_slot_t slots[] = {{"apiVersion", &api_version},
                          {"cluster_config", &cluster_config},
                          {"endpoint_config", &endpoint_config},
                          {"cluster_domain", &cluster_domain}};
    ekg_err_t err = take_keys(ld, root, "", slots, sizeof(slots) / sizeof(slots[0]));
    if (err != EKG_OK)
        return err;

    if (!present(api_version))
        return fail(ld, root, "apiVersion", "missing; this version of ekglue reads apiVersion: " API_VERSION);
    if (!cJSON_IsString(api_version) || strcmp(api_version->valuestring, API_VERSION) != 0) {
        char shown[64];
        snprintf(shown, sizeof(shown), cJSON_IsString(api_version) ? "\"%s\"" : "%s",
                 cJSON_IsString(api_version) ? api_version->valuestring : type_name(api_version));
        return fail(ld, api_version, "apiVersion", "unsupported version %s; expected " API_VERSION, shown);
    }
    if (present(cluster_config) &&
        (err = load_cluster_config(ld, cluster_config, "cluster_config")) != EKG_OK)
        return err;
    if (present(endpoint_config) &&
        (err = load_endpoint_config(ld, endpoint_config, "endpoint_config")) != EKG_OK)
        return err;
    if (present(cluster_domain)) {
        if ((err = take_string(ld, cluster_domain, "cluster_domain", &cfg->cluster_domain)) != EKG_OK)
            return err;
        if (!valid_domain(cfg->cluster_domain))
            return fail(ld, cluster_domain, "cluster_domain",
                        "expected a DNS domain such as cluster.local (no leading or trailing dot)");
    }
    return EKG_OK;
}

/* --- the clusters a config makes, checked as they would be sent ------------------------------------------
 *
 * Envoy rejects a Cluster that breaks one of the validation rules of its protos, and with it the whole
 * response. So once the file is loaded, the base and the base with each override merged in are filled in as
 * translation would (ekg_cluster_fill_example) and checked against those rules (ekg_proto_validate), and must
 * also print as proto3 JSON (what `dump` and the debug port show): a failure is a config error naming the
 * line and key path of the value, or of the override when the value comes from the merge
 * (docs/config.md, "Validation").
 */

/* obj's member for field f, written with its proto name or its JSON name; NULL when absent. */
static const cJSON *field_member(const cJSON *obj, const upb_FieldDef *f)
{
    if (!cJSON_IsObject(obj))
        return NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, upb_FieldDef_Name(f));
    return m ? m : cJSON_GetObjectItemCaseSensitive(obj, upb_FieldDef_JsonName(f));
}

/* Appends printf output to buf (cap bytes) at *used, cutting at the end. */
static void append_path(char *buf, size_t cap, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append_path(char *buf, size_t cap, size_t *used, const char *fmt, ...)
{
    if (*used >= cap - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *used, cap - *used, fmt, ap);
    va_end(ap);
    if (n > 0)
        *used = *used + (size_t)n < cap - 1 ? *used + (size_t)n : cap - 1;
}

/*
 * Follows v's steps down node, the text a Cluster was decoded from (an Any's payload fields are members of
 * the Any's own mapping, as in JSON), as far as it has them; returns the deepest node found and writes the
 * steps into path as this text has them. For an override (merged; base: the base's text, or NULL), a repeated
 * field's elements from the base come first in the merged Cluster, so indices are shifted back, and an
 * element or map entry only the base has ends the walk with *from_base.
 */
static const cJSON *locate_violation(const cJSON *node, const cJSON *base, bool merged,
                                     const ekg_violation_t *v, char *path, size_t cap, bool *from_base)
{
    size_t used = 0;
    bool lost = false; /* a step the text does not have: the rest is named as the violation has it */
    *from_base = false;
    path[0] = '\0';
    for (size_t i = 0; i < v->nsteps; i++) {
        const ekg_validate_step_t *s = &v->steps[i];
        append_path(path, cap, &used, "%s%s", i ? "." : "",
                    s->field ? upb_FieldDef_Name(s->field) : upb_OneofDef_Name(s->oneof));
        const cJSON *m = !lost && s->field ? field_member(node, s->field) : NULL;
        const cJSON *bm = base && s->field ? field_member(base, s->field) : NULL;
        long index = s->index;
        if (index >= 0) {
            long nbase = merged && cJSON_IsArray(bm) ? cJSON_GetArraySize(bm) : 0;
            if (merged && m && index < nbase)
                *from_base = true;
            bm = index < nbase ? cJSON_GetArrayItem(bm, (int)index) : NULL;
            if (!lost && m) {
                index -= nbase;
                m = cJSON_IsArray(m) && index >= 0 && index <= 0x7fffffff ? cJSON_GetArrayItem(m, (int)index)
                                                                          : NULL;
            }
            append_path(path, cap, &used, "[%ld]", lost ? s->index : index);
        }
        if (s->key) {
            bool quote = upb_FieldDef_CType(upb_MessageDef_FindFieldByNumber(
                             upb_FieldDef_MessageSubDef(s->field), 1)) == kUpb_CType_String;
            append_path(path, cap, &used, quote ? "[\"%s\"]" : "[%s]", s->key);
            bm = cJSON_IsObject(bm) ? cJSON_GetObjectItemCaseSensitive(bm, s->key) : NULL;
            if (m) {
                const cJSON *entry = cJSON_IsObject(m) ? cJSON_GetObjectItemCaseSensitive(m, s->key) : NULL;
                *from_base = *from_base || (merged && !entry);
                m = entry;
            }
        }
        base = bm;
        if (!m)
            lost = true;
        else
            node = m;
    }
    return node;
}

/*
 * Checks cluster c as it would be sent. node/path: where it was written (the base, or an override, then
 * merged: when the value comes from the base's own elements, the error names the override and the path in
 * the merged Cluster). The line is the deepest key of the path the text has (a missing required field: its
 * parent's).
 */
static ekg_err_t check_sent(const loader_t *ld, const upb_Message *c, const cJSON *node, const char *path,
                            bool merged)
{
    const upb_MessageDef *def = ld->cfg->cluster_def;
    ekg_violation_t *v = ekg_xmalloc(sizeof(*v)); /* owned */
    char *json = NULL;                            /* owned */
    ekg_err_t err = EKG_OK;
    if (ekg_proto_validate(c, def, v) == EKG_OK && (ekg_proto_to_json(c, def, &json, NULL) == EKG_OK ||
                                                    ekg_proto_locate_json_error(c, def, v) == EKG_OK))
        goto out;
    char written[PATH_LEN], full[PATH_LEN];
    bool from_base = false;
    const cJSON *at = locate_violation(node, merged && ld->nodes ? ld->nodes->base : NULL, merged, v, written,
                                       sizeof(written), &from_base);
    if (from_base || (merged && at == node)) {
        err = fail(ld, at, path, "with the base merged in, %s: %s", v->path, v->rule);
    } else {
        path_join(full, path, written[0] ? "." : "", written);
        err = fail(ld, at, full, "%s", v->rule);
    }
out:
    free(json);
    free(v);
    return err;
}

/* The base, with rule r's override merged in (NULL: none), filled in as sent; in arena. */
static ekg_err_t sent_cluster(const ekg_config_t *cfg, const rule_t *r, upb_Arena *arena, upb_Message **out)
{
    upb_Message *c = ekg_proto_message_new(cfg->cluster_def, arena);
    upb_DecodeStatus st = upb_Decode(cfg->base_bytes, cfg->base_len, c,
                                     upb_MessageDef_MiniTable(cfg->cluster_def), NULL, 0, arena);
    if (st == kUpb_DecodeStatus_OutOfMemory)
        ekg_oom(0);
    if (st != kUpb_DecodeStatus_Ok)
        return EKG_EPROTO;
    ekg_err_t err =
        r ? ekg_merge_message(c, r->override, r->override_bytes, r->override_len, cfg->cluster_def, arena)
          : EKG_OK;
    if (err == EKG_OK)
        ekg_cluster_fill_example((envoy_config_cluster_v3_Cluster *)c, cfg, arena);
    *out = c;
    return err;
}

/* Checks the base and each override merged into it, as sent. */
static ekg_err_t check_clusters(const loader_t *ld)
{
    const ekg_config_t *cfg = ld->cfg;
    const cluster_nodes_t none = {0};
    const cluster_nodes_t *nodes = ld->nodes ? ld->nodes : &none;
    ekg_err_t err = EKG_OK;
    for (size_t i = 0; i <= cfg->nrules && err == EKG_OK; i++) {
        const rule_t *r = i ? &cfg->rules[i - 1] : NULL;
        if (r && r->suppress)
            continue;
        char path[PATH_LEN];
        const cJSON *node = r ? (i - 1 < nodes->noverrides ? nodes->overrides[i - 1] : NULL) : nodes->base;
        if (r)
            snprintf(path, sizeof(path), "cluster_config.overrides[%zu].override", i - 1);
        else
            snprintf(path, sizeof(path), "cluster_config.base");
        upb_Arena *arena = ekg_proto_arena_new();
        upb_Message *c = NULL;
        err = sent_cluster(cfg, r, arena, &c);
        if (err != EKG_OK)
            err = fail(ld, node, path, "does not merge into the base: %s", ekg_strerror(err));
        else
            err = check_sent(ld, c, node, path, r != NULL);
        upb_Arena_Free(arena);
    }
    return err;
}

/* --- building a config -------------------------------------------------------------------------------- */

static uint64_t hash_string(uint64_t h, const char *s)
{
    if (!s)
        return ekg_hash_u64(h, UINT64_MAX); /* distinct from every length */
    size_t n = strlen(s);
    return ekg_hash_update(ekg_hash_u64(h, n), s, n);
}

static uint64_t hash_bytes(uint64_t h, const char *b, size_t n)
{
    return ekg_hash_update(ekg_hash_u64(h, n), b, n);
}

static unsigned long long compute_hash(const ekg_config_t *cfg)
{
    uint64_t h = EKG_HASH_INIT;
    h = hash_bytes(h, cfg->base_bytes, cfg->base_len);
    h = ekg_hash_u64(h, cfg->nrules);
    for (size_t i = 0; i < cfg->nrules; i++) {
        const rule_t *r = &cfg->rules[i];
        h = ekg_hash_u64(h, r->nmatchers);
        for (size_t j = 0; j < r->nmatchers; j++) {
            const matcher_t *m = &r->matchers[j];
            h = hash_string(h, m->cluster_name);
            h = hash_string(h, m->port_name);
            h = hash_string(h, m->namespace_);
            h = hash_string(h, m->service);
            h = hash_string(h, m->app_protocol);
        }
        h = ekg_hash_u64(h, r->suppress);
        h = hash_bytes(h, r->override_bytes, r->override_len);
    }
    h = ekg_hash_u64(h, cfg->include_not_ready);
    h = ekg_hash_u64(h, (uint64_t)cfg->zone_priorities);
    h = ekg_hash_u64(h, cfg->overprovisioning_factor);
    const ekg_locality_source_t *sources[] = {&cfg->locality.region, &cfg->locality.zone,
                                              &cfg->locality.sub_zone};
    for (size_t i = 0; i < 3; i++) {
        h = ekg_hash_u64(h, (uint64_t)sources[i]->kind);
        h = hash_string(h, sources[i]->value);
    }
    h = hash_string(h, cfg->cluster_domain);
    return ekg_hash_final(h);
}

/* A config holding the built-in defaults, owned by the caller (ekg_config_free). */
static ekg_err_t new_default(ekg_config_t **out, ekg_diag_t *diag)
{
    const upb_MessageDef *def = ekg_proto_message(EKG_TYPE_CLUSTER);
    if (!def)
        return ekg_diag_set(diag, EKG_EINVAL,
                            "config: the protobuf registry is not initialized (ekg_proto_init)");
    upb_Arena *arena = ekg_proto_arena_new();
    ekg_config_t *cfg = ekg_proto_alloc(arena, sizeof(*cfg));
    memset(cfg, 0, sizeof(*cfg));
    cfg->arena = arena;
    cfg->cluster_def = def;
    cfg->locality.region = (ekg_locality_source_t){EKG_LOCALITY_LABEL, DEFAULT_REGION_LABEL};
    cfg->locality.zone = (ekg_locality_source_t){EKG_LOCALITY_LABEL, DEFAULT_ZONE_LABEL};
    cfg->cluster_domain = DEFAULT_DOMAIN;

    loader_t ld = {cfg, NULL, "built-in config", diag, NULL};
    upb_Message *base = NULL;
    ekg_err_t err = load_cluster_json(&ld, DEFAULT_BASE_JSON, strlen(DEFAULT_BASE_JSON), NULL,
                                      "cluster_config.base", &base, &cfg->base_bytes, &cfg->base_len);
    if (err != EKG_OK) {
        upb_Arena_Free(arena);
        return err;
    }
    cfg->base = (envoy_config_cluster_v3_Cluster *)base;
    *out = cfg;
    return EKG_OK;
}

ekg_err_t ekg_config_default(ekg_config_t **out, ekg_diag_t *diag)
{
    ekg_config_t *cfg = NULL;
    ekg_err_t err = new_default(&cfg, diag);
    if (err != EKG_OK)
        return err;
    loader_t ld = {cfg, NULL, "built-in config", diag, NULL};
    if ((err = check_clusters(&ld)) != EKG_OK) {
        ekg_config_free(cfg);
        return err;
    }
    cfg->hash = compute_hash(cfg);
    *out = cfg;
    return EKG_OK;
}

/* Builds a config from parsed documents; docs stay owned by the caller. */
static ekg_err_t config_from_docs(const ekg_yaml_docs_t *docs, ekg_config_t **out, ekg_diag_t *diag)
{
    ekg_config_t *cfg = NULL;
    ekg_err_t err = new_default(&cfg, diag);
    if (err != EKG_OK)
        return err;
    cluster_nodes_t nodes = {0};
    loader_t ld = {cfg, docs, ekg_yaml_docs_source(docs), diag, &nodes};
    if (!ld.source)
        ld.source = "config";
    size_t ndocs = ekg_yaml_docs_count(docs);
    if (ndocs > 1) {
        err = fail(&ld, ekg_yaml_docs_get(docs, 1), "",
                   "expected one YAML document, found %zu (remove the extra `---`)", ndocs);
        goto out;
    }
    if (ndocs == 1 && (err = load_document(&ld, ekg_yaml_docs_get(docs, 0))) != EKG_OK)
        goto out;
    if ((err = check_clusters(&ld)) != EKG_OK)
        goto out;
    cfg->hash = compute_hash(cfg);
    *out = cfg;
    cfg = NULL;
out:
    free(nodes.overrides);
    ekg_config_free(cfg);
    return err;
}

ekg_err_t ekg_config_parse(const char *buf, size_t len, const char *source_name, ekg_config_t **out,
                           ekg_diag_t *diag)
{
    ekg_yaml_docs_t *docs = NULL;
    ekg_err_t err = ekg_yaml_parse(buf, len, source_name, &docs, diag);
    if (err != EKG_OK)
        return err;
    err = config_from_docs(docs, out, diag);
    ekg_yaml_docs_free(docs);
    return err;
}

ekg_err_t ekg_config_load_file(const char *path, ekg_config_t **out, ekg_diag_t *diag)
{
    ekg_yaml_docs_t *docs = NULL;
    ekg_err_t err = ekg_yaml_parse_file(path, &docs, diag);
    if (err != EKG_OK)
        return err;
    err = config_from_docs(docs, out, diag);
    ekg_yaml_docs_free(docs);
    return err;
}

void ekg_config_free(ekg_config_t *cfg)
{
    if (cfg)
        upb_Arena_Free(cfg->arena); /* cfg itself lives in the arena */
}

/* --- applying a config -------------------------------------------------------------------------------- */

static bool same(const char *want, const char *have)
{
    return have && strcmp(want, have) == 0;
}

/* Whether m matches in; *names_cluster is set when it names the cluster itself (cluster_name or service). */
static bool matcher_matches(const matcher_t *m, const ekg_cluster_match_input_t *in, bool *names_cluster)
{
    if ((m->cluster_name && !same(m->cluster_name, in->cluster_name)) ||
        (m->port_name && !same(m->port_name, in->port_name)) ||
        (m->namespace_ && !same(m->namespace_, in->namespace_)) ||
        (m->service && !same(m->service, in->service)) ||
        (m->app_protocol && !same(m->app_protocol, in->app_protocol)))
        return false;
    *names_cluster = *names_cluster || m->cluster_name || m->service;
    return true;
}

static bool rule_matches(const rule_t *r, const ekg_cluster_match_input_t *in, bool *names_cluster)
{
    bool match = false;
    for (size_t i = 0; i < r->nmatchers; i++)
        match = matcher_matches(&r->matchers[i], in, names_cluster) || match;
    return match;
}

bool ekg_config_cluster_key(const ekg_config_t *cfg, const ekg_cluster_match_input_t *in, char *buf,
                            size_t size)
{
    if (same("default", in->namespace_) && same("kubernetes", in->service))
        return false; /* suppressed unless named: not a shared case */
    size_t n = (size_t)snprintf(buf, size, "r");
    for (size_t i = 0; i < cfg->nrules && n < size; i++) {
        bool unused = false;
        if (!rule_matches(&cfg->rules[i], in, &unused))
            continue;
        if (cfg->rules[i].suppress)
            return false;
        n += (size_t)snprintf(buf + n, size - n, ",%zu", i);
    }
    return n < size;
}

ekg_err_t ekg_config_cluster(const ekg_config_t *cfg, const ekg_cluster_match_input_t *in, upb_Arena *arena,
                             envoy_config_cluster_v3_Cluster **out, bool *suppressed, ekg_diag_t *diag)
{
    /* Decide suppression first: it needs no allocation. */
    bool named = false;
    for (size_t i = 0; i < cfg->nrules; i++) {
        bool names_cluster = false;
        if (!rule_matches(&cfg->rules[i], in, &names_cluster))
            continue;
        if (cfg->rules[i].suppress) {
            *out = NULL;
            *suppressed = true;
            return EKG_OK;
        }
        named = named || names_cluster;
    }
    if (same("default", in->namespace_) && same("kubernetes", in->service) && !named) {
        *out = NULL;
        *suppressed = true;
        return EKG_OK;
    }

    const upb_MiniTable *mt = upb_MessageDef_MiniTable(cfg->cluster_def);
    upb_Message *cluster = ekg_proto_message_new(cfg->cluster_def, arena);
    upb_DecodeStatus st = upb_Decode(cfg->base_bytes, cfg->base_len, cluster, mt, NULL, 0, arena);
    if (st == kUpb_DecodeStatus_OutOfMemory)
        ekg_oom(0);
    if (st != kUpb_DecodeStatus_Ok)
        return ekg_diag_set(diag, EKG_EPROTO, "config: the base Cluster does not decode");
    for (size_t i = 0; i < cfg->nrules; i++) {
        const rule_t *r = &cfg->rules[i];
        bool unused = false;
        if (!rule_matches(r, in, &unused))
            continue;
        ekg_err_t err = ekg_merge_message(cluster, r->override, r->override_bytes, r->override_len,
                                          cfg->cluster_def, arena);
        if (err != EKG_OK)
            return ekg_diag_set(diag, err, "config: cluster_config.overrides[%zu] does not merge into %s: %s",
                                i, in->cluster_name ? in->cluster_name : "a cluster", ekg_strerror(err));
    }
    *out = (envoy_config_cluster_v3_Cluster *)cluster;
    *suppressed = false;
    return EKG_OK;
}

const envoy_config_cluster_v3_Cluster *ekg_config_base_cluster(const ekg_config_t *cfg)
{
    return cfg->base;
}

size_t ekg_config_rule_count(const ekg_config_t *cfg)
{
    return cfg->nrules;
}

bool ekg_config_include_not_ready(const ekg_config_t *cfg)
{
    return cfg->include_not_ready;
}

ekg_zone_priorities_t ekg_config_zone_priorities(const ekg_config_t *cfg)
{
    return cfg->zone_priorities;
}

uint32_t ekg_config_overprovisioning_factor(const ekg_config_t *cfg)
{
    return cfg->overprovisioning_factor;
}

const ekg_locality_rules_t *ekg_config_locality_rules(const ekg_config_t *cfg)
{
    return &cfg->locality;
}

const char *ekg_config_cluster_domain(const ekg_config_t *cfg)
{
    return cfg->cluster_domain;
}

unsigned long long ekg_config_hash(const ekg_config_t *cfg)
{
    return cfg->hash;
}
