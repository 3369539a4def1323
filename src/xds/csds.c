/*
 * src/xds/csds.c: the Client Status Discovery Service's answers (src/xds/csds.h).
 *
 * One ClientConfig per connected client that the request's node_matchers select (all of them when there are
 * none; several matchers are ORed, as csds.proto says): its node (id, cluster, user agent, locality, and the
 * metadata string NODE_NAME when the client sent one), and one GenericXdsConfig per resource it is
 * subscribed to, from the client's point of view as the server knows it:
 *   - sent, and the latest response of its type ACKed: config_status SYNCED, client_status ACKED;
 *   - sent, and the latest response NACKed: ERROR / NACKED, version_info the version the client still runs
 *     (its last ACK), error_state {details: the client's message, version_info: the rejected version,
 *     last_update_attempt: when the NACK arrived};
 *   - sent and not answered yet: STALE / UNKNOWN;
 *   - asked for and not sent yet: NOT_SENT / REQUESTED; named Clusters/Listeners absent from what was sent:
 *     NOT_SENT / DOES_NOT_EXIST.
 * xds_config is the resource as last sent to that client (an Any of the shared encoded bytes: no copy),
 * last_updated the time of the type's last response. ACK and NACK are per type, as the protocol has them: a
 * NACKed response marks every resource of its type.
 *
 * Memory: one upb arena per answer; strings and resource bytes are aliased from the session copies, which
 * outlive the encoding. upb's arena does not allocate through include/ekglue/mem.h, so its failures (a NULL
 * from a _new, _add or _mutable accessor, or from the encoder) are turned into the same abort by checked().
 *
 * Thread: any; the copies are private to the caller.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/admin/v3/config_dump_shared.upb.h"
#include "envoy/config/core/v3/base.upb.h"
#include "envoy/service/status/v3/csds.upb.h"
#include "envoy/type/matcher/v3/node.upb.h"
#include "envoy/type/matcher/v3/string.upb.h"
#include "google/protobuf/any.upb.h"
#include "google/protobuf/struct.upb.h"
#include "google/protobuf/timestamp.upb.h"

#include "ekglue/mem.h"
#include "ekglue/proto.h"

#include "xds/csds.h"

/* p, a upb allocation's result: NULL means the arena could not grow, which aborts as mem.h does. */
static void *checked(void *p)
{
    if (!p)
        ekg_oom(0);
    return p;
}

static upb_StringView view(const char *s)
{
    return upb_StringView_FromString(s ? s : "");
}

static bool eq_case(const char *a, const char *b, size_t n, bool ignore_case)
{
    if (!ignore_case)
        return memcmp(a, b, n) == 0;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
            return false;
    return true;
}

/* envoy.type.matcher.v3.StringMatcher on s: exact, prefix, suffix, contains (ignore_case honoured). */
static ekg_err_t string_matches(const struct envoy_type_matcher_v3_StringMatcher *m, const char *s, bool *out,
                                ekg_diag_t *diag)
{
    bool ic = envoy_type_matcher_v3_StringMatcher_ignore_case(m);
    size_t n = strlen(s);
    upb_StringView p;
    if (envoy_type_matcher_v3_StringMatcher_has_exact(m)) {
        p = envoy_type_matcher_v3_StringMatcher_exact(m);
        *out = p.size == n && eq_case(s, p.data, n, ic);
    } else if (envoy_type_matcher_v3_StringMatcher_has_prefix(m)) {
        p = envoy_type_matcher_v3_StringMatcher_prefix(m);
        *out = p.size <= n && eq_case(s, p.data, p.size, ic);
    } else if (envoy_type_matcher_v3_StringMatcher_has_suffix(m)) {
        p = envoy_type_matcher_v3_StringMatcher_suffix(m);
        *out = p.size <= n && eq_case(s + n - p.size, p.data, p.size, ic);
    } else if (envoy_type_matcher_v3_StringMatcher_has_contains(m)) {
        p = envoy_type_matcher_v3_StringMatcher_contains(m);
        *out = false;
        for (size_t i = 0; i + p.size <= n && !*out; i++)
            *out = eq_case(s + i, p.data, p.size, ic);
    } else if (envoy_type_matcher_v3_StringMatcher_has_safe_regex(m)) {
        return ekg_diag_set(diag, EKG_EINVAL,
                            "node_matchers: safe_regex is not supported (use exact, prefix, "
                            "suffix or contains)");
    } else {
        *out = true; /* no pattern: matches anything */
    }
    return EKG_OK;
}

/* Whether the node id is selected by the request's matchers (ORed; none = everybody). */
static ekg_err_t selected(const envoy_service_status_v3_ClientStatusRequest *req, const char *node_id,
                          bool *out, ekg_diag_t *diag)
{
    size_t n;
    const struct envoy_type_matcher_v3_NodeMatcher *const *m =
        envoy_service_status_v3_ClientStatusRequest_node_matchers(req, &n);
    *out = n == 0;
    for (size_t i = 0; i < n && !*out; i++) {
        size_t nmeta;
        envoy_type_matcher_v3_NodeMatcher_node_metadatas(m[i], &nmeta);
        if (nmeta)
            return ekg_diag_set(diag, EKG_EINVAL, "node_matchers: node_metadatas is not supported");
        if (!envoy_type_matcher_v3_NodeMatcher_has_node_id(m[i])) {
            *out = true;
            continue;
        }
        ekg_err_t err = string_matches(envoy_type_matcher_v3_NodeMatcher_node_id(m[i]), node_id, out, diag);
        if (err != EKG_OK)
            return err;
    }
    return EKG_OK;
}

static void set_time(struct google_protobuf_Timestamp *ts, double t)
{
    int64_t sec = (int64_t)t;
    google_protobuf_Timestamp_set_seconds(ts, sec);
    google_protobuf_Timestamp_set_nanos(ts, (int32_t)((t - (double)sec) * 1e9));
}

typedef struct resource_ctx {
    envoy_service_status_v3_ClientConfig *config;
    ekg_resource_type_t type;
    ekg_xds_type_status_t st;
    upb_Arena *arena;
    bool delta; /* an incremental client: each resource's own version (its content hash) is what it has */
} resource_ctx_t;

/* The version_info of a resource the client was sent: the type's set version, or for a delta client the
 * resource's own version, as DeltaDiscoveryResponse carried it (in the arena). */
static upb_StringView sent_version_of(const resource_ctx_t *c, const ekg_resource_t *r)
{
    if (!c->delta)
        return view(c->st.sent_version);
    char *v = checked(upb_Arena_Malloc(c->arena, 17));
    snprintf(v, 17, "%016llx", (unsigned long long)ekg_resource_hash(r));
    return upb_StringView_FromDataAndSize(v, 16);
}

static void add_resource(void *arg, const char *name, ekg_xds_resource_state_t state, const ekg_resource_t *r)
{
    resource_ctx_t *c = arg;
    envoy_service_status_v3_ClientConfig_GenericXdsConfig *g =
        checked(envoy_service_status_v3_ClientConfig_add_generic_xds_configs(c->config, c->arena));
    const char *url = ekg_resource_type_url(c->type);
    envoy_service_status_v3_ClientConfig_GenericXdsConfig_set_type_url(g, view(url));
    envoy_service_status_v3_ClientConfig_GenericXdsConfig_set_name(g, view(name));
    if (state != EKG_XDS_RESOURCE_SENT) {
        envoy_service_status_v3_ClientConfig_GenericXdsConfig_set_config_status(
            g, envoy_service_status_v3_NOT_SENT);
        envoy_service_status_v3_ClientConfig_GenericXdsConfig_set_client_status(
            g, state == EKG_XDS_RESOURCE_DOES_NOT_EXIST ? envoy_admin_v3_DOES_NOT_EXIST
                                                        : envoy_admin_v3_REQUESTED);
        return;
    }
    const ekg_xds_type_status_t *st = &c->st;
    size_t len;
    const char *data = ekg_resource_data(r, &len);
    struct google_protobuf_Any *any =
        checked(envoy_service_status_v3_ClientConfig_GenericXdsConfig_mutable_xds_config(g, c->arena));
    set_time(checked(envoy_service_status_v3_ClientConfig_GenericXdsConfig_mutable_last_updated(g, c->arena)),
             st->sent_time);
    google_protobuf_Any_set_type_url(any, view(url));
    google_protobuf_Any_set_value(any, upb_StringView_FromDataAndSize(data, len));
    if (st->nack_message) {
        envoy_service_status_v3_ClientConfig_GenericXdsConfig_set_version_info(g, view(st->acked_version));
        envoy_service_status_v3_ClientConfig_GenericXdsConfig_set_config_status(
            g, envoy_service_status_v3_ERROR);
        envoy_service_status_v3_ClientConfig_GenericXdsConfig_set_client_status(g, envoy_admin_v3_NACKED);
        struct envoy_admin_v3_UpdateFailureState *f =
            checked(envoy_service_status_v3_ClientConfig_GenericXdsConfig_mutable_error_state(g, c->arena));
        set_time(checked(envoy_admin_v3_UpdateFailureState_mutable_last_update_attempt(f, c->arena)),
                 st->nack_time);
        envoy_admin_v3_UpdateFailureState_set_details(f, view(st->nack_message));
        envoy_admin_v3_UpdateFailureState_set_version_info(f, view(st->sent_version));
    } else if (st->acks > 0 && strcmp(st->acked_version, st->sent_version) == 0) {
        envoy_service_status_v3_ClientConfig_GenericXdsConfig_set_version_info(g, sent_version_of(c, r));
        envoy_service_status_v3_ClientConfig_GenericXdsConfig_set_config_status(
            g, envoy_service_status_v3_SYNCED);
        envoy_service_status_v3_ClientConfig_GenericXdsConfig_set_client_status(g, envoy_admin_v3_ACKED);
    } else {
        envoy_service_status_v3_ClientConfig_GenericXdsConfig_set_version_info(g, sent_version_of(c, r));
        envoy_service_status_v3_ClientConfig_GenericXdsConfig_set_config_status(
            g, envoy_service_status_v3_STALE);
        envoy_service_status_v3_ClientConfig_GenericXdsConfig_set_client_status(g, envoy_admin_v3_UNKNOWN);
    }
}

static void add_client(envoy_service_status_v3_ClientStatusResponse *resp, const ekg_xds_session_t *s,
                       upb_Arena *arena)
{
    envoy_service_status_v3_ClientConfig *config =
        checked(envoy_service_status_v3_ClientStatusResponse_add_config(resp, arena));
    struct envoy_config_core_v3_Node *node =
        checked(envoy_service_status_v3_ClientConfig_mutable_node(config, arena));
    ekg_xds_node_t n;
    ekg_xds_session_node(s, &n);
    envoy_config_core_v3_Node_set_id(node, view(n.id));
    envoy_config_core_v3_Node_set_cluster(node, view(n.cluster));
    envoy_config_core_v3_Node_set_user_agent_name(node, view(n.user_agent_name));
    if (n.user_agent_version[0])
        envoy_config_core_v3_Node_set_user_agent_version(node, view(n.user_agent_version));
    if (n.region[0] || n.zone[0] || n.sub_zone[0]) {
        struct envoy_config_core_v3_Locality *l =
            checked(envoy_config_core_v3_Node_mutable_locality(node, arena));
        envoy_config_core_v3_Locality_set_region(l, view(n.region));
        envoy_config_core_v3_Locality_set_zone(l, view(n.zone));
        envoy_config_core_v3_Locality_set_sub_zone(l, view(n.sub_zone));
    }
    if (n.node_name[0]) { /* metadata NODE_NAME, the one metadata field the session keeps */
        struct google_protobuf_Struct *md = checked(envoy_config_core_v3_Node_mutable_metadata(node, arena));
        google_protobuf_Value *v = checked(google_protobuf_Value_new(arena));
        google_protobuf_Value_set_string_value(v, view(n.node_name));
        if (!google_protobuf_Struct_fields_set(md, upb_StringView_FromString("NODE_NAME"), v, arena))
            ekg_oom(0);
    }
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++) {
        resource_ctx_t c = {.config = config,
                            .type = (ekg_resource_type_t)t,
                            .arena = arena,
                            .delta = ekg_xds_session_is_delta(s)};
        ekg_xds_session_type_status(s, (ekg_resource_type_t)t, &c.st);
        ekg_xds_session_resources(s, (ekg_resource_type_t)t, add_resource, &c);
    }
}

typedef struct size_ctx {
    size_t bytes;
    size_t url_len;  /* the type's URL */
    size_t nack_len; /* the type's NACK message (every sent resource of a NACKed type carries it), or 0 */
} size_ctx_t;

/* What add_resource adds for one resource, estimated from above: every length with the tag and length bytes
 * of its field (at most 6), the enums, the timestamps and the versions at their largest. */
static void size_resource(void *arg, const char *name, ekg_xds_resource_state_t state,
                          const ekg_resource_t *r)
{
    size_ctx_t *c = arg;
    size_t len = 0;
    c->bytes += 6 + c->url_len + 6 + strlen(name) + 6 + 4; /* the entry, type_url, name, two statuses */
    if (state == EKG_XDS_RESOURCE_SENT) {
        ekg_resource_data(r, &len);
        /* xds_config {type_url, value}, last_updated, version_info; error_state {details, version_info,
         * last_update_attempt} */
        c->bytes += 6 + 6 + c->url_len + 6 + len + 24 + 2 * (6 + 24) + c->nack_len + 24 + 6;
    }
}

/* The encoded size of add_client's ClientConfig, estimated from above (never less than the real one). */
static size_t client_size(const ekg_xds_session_t *s)
{
    ekg_xds_node_t n;
    ekg_xds_session_node(s, &n);
    /* metadata {fields {key: "NODE_NAME", value {string_value}}}: five length-delimited fields (at most 6
     * bytes of tag and length each) and the key, besides the name. */
    size_t node_name = n.node_name[0] ? 5 * 6 + 9 + strlen(n.node_name) : 0;
    size_ctx_t c = {.bytes = 64 + strlen(n.id) + strlen(n.cluster) + strlen(n.user_agent_name) +
                             strlen(n.user_agent_version) + strlen(n.region) + strlen(n.zone) +
                             strlen(n.sub_zone) + node_name};
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++) {
        ekg_xds_type_status_t st;
        ekg_xds_session_type_status(s, (ekg_resource_type_t)t, &st);
        c.url_len = strlen(ekg_resource_type_url((ekg_resource_type_t)t));
        c.nack_len = st.nack_message ? strlen(st.nack_message) + 6 : 0;
        ekg_xds_session_resources(s, (ekg_resource_type_t)t, size_resource, &c);
    }
    return c.bytes;
}

ekg_err_t ekg_xds_csds_answer(const char *req, size_t len, ekg_xds_session_t *const *clients, size_t n,
                              char **out, size_t *out_len, ekg_diag_t *diag)
{
    ekg_xds_csds_counts_t counts;
    return ekg_xds_csds_answer_bounded(req, len, clients, n, EKG_XDS_DEFAULT_MAX_CLIENT_STATUS_BYTES, out,
                                       out_len, &counts, diag);
}

ekg_err_t ekg_xds_csds_answer_bounded(const char *req, size_t len, ekg_xds_session_t *const *clients,
                                      size_t n, size_t max_bytes, char **out, size_t *out_len,
                                      ekg_xds_csds_counts_t *counts, ekg_diag_t *diag)
{
    size_t used = 0; /* estimated bytes of the clients added */
    *counts = (ekg_xds_csds_counts_t){0};
    ekg_err_t err = EKG_OK;
    upb_Arena *arena = checked(upb_Arena_New());
    upb_Message *msg;
    ekg_diag_t why;
    envoy_service_status_v3_ClientStatusResponse *resp =
        checked(envoy_service_status_v3_ClientStatusResponse_new(arena));
    if (ekg_proto_decode_peer(req, len, &envoy_service_status_v3_ClientStatusRequest_msginit, 0, arena, &msg,
                              &why) != EKG_OK) {
        err = ekg_diag_set(diag, EKG_EPARSE, "ClientStatusRequest does not decode: %s", why.msg);
        goto out;
    }
    envoy_service_status_v3_ClientStatusRequest *request = (envoy_service_status_v3_ClientStatusRequest *)msg;
    bool yes;
    if ((err = selected(request, "", &yes, diag)) !=
        EKG_OK) /* unsupported matchers fail with no client too */
        goto out;
    for (size_t i = 0; i < n; i++) {
        if ((err = selected(request, ekg_xds_session_node_id(clients[i]), &yes, diag)) != EKG_OK)
            goto out;
        if (!yes)
            continue;
        counts->selected++;
        size_t more = client_size(clients[i]);
        if (used + more > max_bytes)
            continue; /* too big for what is left: counted, not shown (a smaller one after it may fit) */
        add_client(resp, clients[i], arena);
        used += more;
        counts->shown++;
    }
    size_t size;
    /* Only memory can fail this encoding (no required fields, a shallow message). */
    char *bytes = checked(envoy_service_status_v3_ClientStatusResponse_serialize(resp, arena, &size));
    *out = ekg_xmalloc(size);
    memcpy(*out, bytes, size);
    *out_len = size;
out:
    upb_Arena_Free(arena);
    return err;
}
