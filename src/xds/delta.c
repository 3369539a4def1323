/*
 * src/xds/delta.c: the incremental (delta) xDS protocol for one stream: DeltaDiscoveryRequests in,
 * DeltaDiscoveryResponses out (docs/internals/protocol.md, "Incremental xDS"). session.c hands a delta
 * session's requests and send opportunities here; the node, the snapshot at the client's place, limits and
 * ACK/NACK bookkeeping are the session's (session_internal.h).
 *
 * Per type the client has, as far as ekglue knows, the set `sent` for every name it is subscribed to
 * (wildcard and/or `subs`), except the names in `force`, which are due: each is sent if it exists (with its
 * content hash as the resource version) or else listed in removed_resources. So:
 *   - a new snapshot is diffed against `sent` (src/resource/resource.c skips shared pages: one change costs
 *     about one page, whatever the set's size), and the subscribed names that changed become due;
 *   - a new subscription makes its names due (a name that does not exist is reported removed, and sent once
 * it appears); "*" makes every name of the set due; unsubscribing drops names from `subs` and `force`;
 *   - the first request's initial_resource_versions are compared once, at the first evaluation: what the
 * client has at the current version is not resent, what no longer exists is removed;
 *   - after a response, `sent` is the set it was taken from, so a NACKed version is not sent again until its
 *     content changes (the client keeps its previous one).
 * Subscription changes apply whatever the nonce says (they are deltas: dropping one would lose it); a stale
 * nonce only loses its ACK/NACK meaning. On ADS, Clusters go before load assignments, and a changed Cluster's
 * load assignment is sent again after it (Envoy's cluster warming waits for one).
 *
 * Thread: not synchronized; the transport serializes calls with the stream's lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/service/discovery/v3/discovery.upb.h"
#include "google/rpc/status.upb.h"

#include "ekglue/clock.h"
#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/metrics.h"
#include "ekglue/proto.h"

#include "common/pbwrite.h"
#include "xds/session_internal.h"

static bool view_eq(upb_StringView v, const char *s)
{
    return strlen(s) == v.size && memcmp(s, v.data, v.size) == 0;
}

static char *view_dup(upb_StringView v)
{
    return ekg_xstrndup(v.data ? v.data : "", v.size);
}

/* Whether the client is subscribed to name (proxyless-gRPC Listeners only by name, as in SotW). */
static bool subscribed(const type_state_t *ts, ekg_resource_type_t type, const char *name)
{
    return (ts->wildcard && type != EKG_RESOURCE_LISTENER) || ekg_xds_list_has(&ts->subs, name);
}

static size_t subs_besides(const ekg_xds_session_t *s, ekg_resource_type_t except)
{
    size_t n = 0;
    for (int t = 0; t < NTYPES; t++)
        if (t != (int)except)
            n += s->types[t].subs.n;
    return n;
}

static void free_initial(type_state_t *ts)
{
    for (size_t i = 0; i < ts->ninitial; i++) {
        free(ts->initial[i].name);
        free(ts->initial[i].version);
    }
    free(ts->initial);
    ts->initial = NULL;
    ts->ninitial = 0;
}

void ekg_xds_delta_free(ekg_xds_session_t *s)
{
    for (int t = 0; t < NTYPES; t++) {
        ekg_xds_list_clear(&s->types[t].subs);
        free_initial(&s->types[t]);
    }
}

static int cmp_initial(const void *a, const void *b)
{
    return strcmp(((const name_version_t *)a)->name, ((const name_version_t *)b)->name);
}

static const char *initial_version(const type_state_t *ts, const char *name)
{
    if (ts->ninitial == 0)
        return NULL;
    name_version_t key = {.name = (char *)name};
    const name_version_t *f = bsearch(&key, ts->initial, ts->ninitial, sizeof(key), cmp_initial);
    return f ? f->version : NULL;
}

/* The resource version of r as delta sends it: its content hash, 16 hex digits (buf: 17 bytes). */
static void version_of(const ekg_resource_t *r, char buf[17])
{
    snprintf(buf, 17, "%016llx", (unsigned long long)ekg_resource_hash(r));
}

/* --- requests ----------------------------------------------------------------------------------------------
 */

/* Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF). upb checks the strings of
 * resource_names_* but not map keys and values, and a name that is not UTF-8 would come back in
 * removed_resources, which protobuf parsers (Envoy's) refuse: such a request is malformed. */
static bool utf8_ok(upb_StringView v)
{
    if (v.size == 0) /* (and data may be NULL) */
        return true;
    const unsigned char *p = (const unsigned char *)v.data, *end = p + v.size;
    while (p < end) {
        unsigned c = *p++;
        if (c < 0x80)
            continue;
        size_t n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 ? 1 : 0;
        if (n == 0 || c > 0xf4 || (size_t)(end - p) < n)
            return false;
        unsigned cp = c & (0x3f >> n);
        for (size_t i = 0; i < n; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (*p & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
    }
    return true;
}

static ekg_resource_type_t request_type(const ekg_xds_session_t *s, upb_StringView url, ekg_diag_t *diag,
                                        ekg_err_t *err)
{
    ekg_resource_type_t type;
    if (url.size == 0 && s->api != EKG_XDS_ADS) {
        static const ekg_resource_type_t implied[] = {
            [EKG_XDS_CDS] = EKG_RESOURCE_CLUSTER,
            [EKG_XDS_EDS] = EKG_RESOURCE_LOAD_ASSIGNMENT,
            [EKG_XDS_LDS] = EKG_RESOURCE_LISTENER,
            [EKG_XDS_RDS] = EKG_RESOURCE_ROUTE,
        };
        return implied[s->api];
    }
    if (url.size == 0) {
        *err = ekg_diag_set(diag, EKG_EINVAL, "DeltaDiscoveryRequest on ADS without a type_url");
        return EKG_RESOURCE__COUNT;
    }
    type = ekg_resource_type_from_url(url.data, url.size);
    if (type == EKG_RESOURCE__COUNT)
        *err = ekg_diag_set(diag, EKG_EINVAL,
                            "type %.*s is not served by ekglue (it serves Clusters, ClusterLoadAssignments, "
                            "Listeners and RouteConfigurations)",
                            (int)(url.size > 200 ? 200 : url.size), url.data);
    else if (!ekg_xds_api_allows(s->api, type))
        *err = ekg_diag_set(diag, EKG_EINVAL, "type %.*s does not belong on this service",
                            (int)(url.size > 200 ? 200 : url.size), url.data);
    return *err ? EKG_RESOURCE__COUNT : type;
}

/* ACK or NACK of the latest response of this type (a stale or foreign nonce means neither). */
static void answer(ekg_xds_session_t *s, ekg_resource_type_t type,
                   const envoy_service_discovery_v3_DeltaDiscoveryRequest *req)
{
    type_state_t *ts = &s->types[type];
    upb_StringView nonce = envoy_service_discovery_v3_DeltaDiscoveryRequest_response_nonce(req);
    if (nonce.size == 0 || ts->nonce[0] == '\0')
        return; /* a request, or a nonce from another stream (a client reconnecting after a restart) */
    if (!view_eq(nonce, ts->nonce)) {
        ekg_debug(
            "xds: node=%s delta %s request with stale nonce %.*s (latest %s): subscription changes only",
            ekg_xds_session_node_id(s), ekg_xds_type_names[type], (int)(nonce.size > 32 ? 32 : nonce.size),
            nonce.data, ts->nonce);
        return;
    }
    if (envoy_service_discovery_v3_DeltaDiscoveryRequest_has_error_detail(req)) {
        const struct google_rpc_Status *st =
            envoy_service_discovery_v3_DeltaDiscoveryRequest_error_detail(req);
        upb_StringView msg = google_rpc_Status_message(st);
        if (msg.size > MAX_NACK_MESSAGE)
            msg.size = MAX_NACK_MESSAGE;
        free(ts->nack_message);
        ts->nack_message = ekg_xstrndup(msg.data ? msg.data : "", msg.size);
        ts->nack_time = ekg_clock_unix_s();
        ts->nacks++;
        ekg_metrics_xds_nack(1, type);
        /* The client keeps what it had; `sent` already moved on, so the rejected versions are not resent. */
        ekg_warn("xds: NACK node=%s peer=%s type=%s rejected_version=%s (delta): %.*s",
                 ekg_xds_session_node_id(s), s->peer, ekg_xds_type_names[type], ts->sent_version,
                 (int)msg.size, msg.data);
        return;
    }
    memcpy(ts->acked_version, ts->sent_version, sizeof(ts->acked_version)); /* same size, NUL-terminated */
    ekg_debug("xds: ACK node=%s peer=%s type=%s version=%s (delta)", ekg_xds_session_node_id(s), s->peer,
              ekg_xds_type_names[type], ts->acked_version);
    free(ts->nack_message);
    ts->nack_message = NULL;
    ts->acks++;
    ekg_metrics_xds_ack(1, type);
}

ekg_err_t ekg_xds_delta_on_request(ekg_xds_session_t *s, const char *bytes, size_t len, ekg_diag_t *diag)
{
    ekg_err_t err = EKG_OK;
    upb_Arena *arena = ekg_proto_arena_new();
    upb_Message *decoded;
    ekg_diag_t why;
    if (ekg_proto_decode_peer(bytes, len, &envoy_service_discovery_v3_DeltaDiscoveryRequest_msginit,
                              kUpb_DecodeOption_AliasString, arena, &decoded, &why) != EKG_OK) {
        err = ekg_diag_set(diag, EKG_EPARSE, "DeltaDiscoveryRequest does not decode: %s", why.msg);
        goto out;
    }
    const envoy_service_discovery_v3_DeltaDiscoveryRequest *req =
        (const envoy_service_discovery_v3_DeltaDiscoveryRequest *)decoded;
    size_t nsub, nunsub, ninit = 0, iter = kUpb_Map_Begin;
    const upb_StringView *sub =
        envoy_service_discovery_v3_DeltaDiscoveryRequest_resource_names_subscribe(req, &nsub);
    const upb_StringView *unsub =
        envoy_service_discovery_v3_DeltaDiscoveryRequest_resource_names_unsubscribe(req, &nunsub);
    const envoy_service_discovery_v3_DeltaDiscoveryRequest_InitialResourceVersionsEntry *entry;
    while ((entry = envoy_service_discovery_v3_DeltaDiscoveryRequest_initial_resource_versions_next(req,
                                                                                                    &iter))) {
        ninit++;
        if (!utf8_ok(
                envoy_service_discovery_v3_DeltaDiscoveryRequest_InitialResourceVersionsEntry_key(entry)) ||
            !utf8_ok(
                envoy_service_discovery_v3_DeltaDiscoveryRequest_InitialResourceVersionsEntry_value(entry))) {
            err = ekg_diag_set(
                diag, EKG_EPARSE,
                "DeltaDiscoveryRequest does not decode: initial_resource_versions holds a string "
                "that is not UTF-8");
            goto out;
        }
    }
    if (s->max_names_per_request && nsub + nunsub + ninit > s->max_names_per_request) {
        err = ekg_diag_set(diag, EKG_ERANGE,
                           "DeltaDiscoveryRequest names %zu resources; the limit is %zu per request "
                           "(--xds-max-names-per-request)",
                           nsub + nunsub + ninit, s->max_names_per_request);
        goto out;
    }
    if (!s->node_id && envoy_service_discovery_v3_DeltaDiscoveryRequest_has_node(req))
        ekg_xds_take_node(s, envoy_service_discovery_v3_DeltaDiscoveryRequest_node(req));
    ekg_resource_type_t type =
        request_type(s, envoy_service_discovery_v3_DeltaDiscoveryRequest_type_url(req), diag, &err);
    if (err)
        goto out;
    type_state_t *ts = &s->types[type];
    answer(s, type, req);

    /* Subscription changes, whatever the nonce said. Checked against the limit before anything changes. */
    size_t new_names = 0;
    for (size_t i = 0; i < nsub; i++)
        new_names += !view_eq(sub[i], "*");
    if (s->max_names_per_stream && subs_besides(s, type) + ts->subs.n + new_names > s->max_names_per_stream) {
        size_t after = ts->subs.n;
        for (size_t i = 0; i < nsub && after <= s->max_names_per_stream; i++) {
            char *name = view_dup(sub[i]);
            after += strcmp(name, "*") != 0 && !ekg_xds_list_has(&ts->subs, name);
            free(name);
        }
        if (subs_besides(s, type) + after > s->max_names_per_stream) {
            err = ekg_diag_set(diag, EKG_ERANGE,
                               "the stream would subscribe to more than %zu resource names "
                               "(--xds-max-names-per-stream)",
                               s->max_names_per_stream);
            goto out;
        }
    }
    bool first = !ts->requested;
    if (first) {
        /* What the client has from an earlier stream, compared at the first evaluation. */
        if (ninit) {
            ts->initial = ekg_xcalloc(ninit, sizeof(*ts->initial));
            iter = kUpb_Map_Begin;
            const envoy_service_discovery_v3_DeltaDiscoveryRequest_InitialResourceVersionsEntry *e;
            while ((e = envoy_service_discovery_v3_DeltaDiscoveryRequest_initial_resource_versions_next(
                        req, &iter))) {
                name_version_t *nv = &ts->initial[ts->ninitial++];
                nv->name = view_dup(
                    envoy_service_discovery_v3_DeltaDiscoveryRequest_InitialResourceVersionsEntry_key(e));
                nv->version = view_dup(
                    envoy_service_discovery_v3_DeltaDiscoveryRequest_InitialResourceVersionsEntry_value(e));
            }
            qsort(ts->initial, ts->ninitial, sizeof(*ts->initial), cmp_initial);
        }
        ts->initial_pending = true;
        /* Legacy wildcard: a first Cluster or Listener request that names nothing wants everything. */
        if (nsub == 0 && (type == EKG_RESOURCE_CLUSTER || type == EKG_RESOURCE_LISTENER))
            ts->wildcard = true;
    }
    for (size_t i = 0; i < nsub; i++) {
        if (view_eq(sub[i], "*")) {
            if (!ts->wildcard && !ts->initial_pending)
                ts->force_all = true;
            ts->wildcard = true;
            continue;
        }
        char *name = view_dup(sub[i]);
        if (!ekg_xds_list_has(&ts->subs, name)) {
            ekg_xds_list_add(&ts->subs, name);
            if (!ts->initial_pending) /* the first evaluation looks at every subscribed name anyway */
                ekg_xds_list_add(&ts->force, name);
        }
        free(name);
    }
    for (size_t i = 0; i < nunsub; i++) {
        if (view_eq(unsub[i], "*")) {
            ts->wildcard = false;
            ts->force_all = false;
            continue;
        }
        char *name = view_dup(unsub[i]);
        bool had = ekg_xds_list_has(&ts->subs, name);
        ekg_xds_list_remove(&ts->subs, name);
        if (!subscribed(ts, type, name))
            ekg_xds_list_remove(&ts->force, name);
        else if (had && !ts->initial_pending)
            /* Still covered by "*": the client cannot tell whether it keeps the resource until the server
             * says it again (sent again, or removed if gone), as go-control-plane does. */
            ekg_xds_list_add(&ts->force, name);
        free(name);
    }
    ts->requested = true;
out:
    upb_Arena_Free(arena);
    return err;
}

/* --- responses ---------------------------------------------------------------------------------------------
 */

typedef struct dplan {
    ekg_resource_type_t type;
    type_state_t *ts;
    ekg_resource_set_t *cur;
    const ekg_resource_t **items; /* to send, borrowed from cur, in name order */
    size_t n, cap;
    char **removed; /* names for removed_resources, owned */
    size_t nremoved, capremoved;
} dplan_t;

static void dplan_free(dplan_t *p)
{
    free(p->items);
    for (size_t i = 0; i < p->nremoved; i++)
        free(p->removed[i]);
    free(p->removed);
    p->items = NULL;
    p->removed = NULL;
    p->n = p->nremoved = 0;
}

typedef struct diff_ctx {
    type_state_t *ts;
    ekg_resource_type_t type;
} diff_ctx_t;

static void on_diff(void *ctx, const char *name, const ekg_resource_t *before, const ekg_resource_t *after)
{
    diff_ctx_t *d = ctx;
    (void)before;
    (void)after;
    if (subscribed(d->ts, d->type, name))
        ekg_xds_list_add(&d->ts->force, name);
}

/* The first evaluation of a type: every subscribed name against what the client says it has. */
static void first_evaluation(type_state_t *ts, ekg_resource_type_t type, const ekg_resource_set_t *cur)
{
    char v[17];
    if (ts->wildcard && type != EKG_RESOURCE_LISTENER) {
        for (size_t i = 0; i < ekg_resource_set_size(cur); i++) {
            const ekg_resource_t *r = ekg_resource_set_at(cur, i);
            const char *has = initial_version(ts, ekg_resource_name(r));
            version_of(r, v);
            if (!has || strcmp(has, v) != 0)
                ekg_xds_list_add(&ts->force, ekg_resource_name(r));
        }
    }
    for (size_t i = 0; i < ts->subs.n; i++) {
        const ekg_resource_t *r = ekg_resource_set_find(cur, ts->subs.names[i]);
        const char *has = initial_version(ts, ts->subs.names[i]);
        if (r)
            version_of(r, v);
        if (!r || !has || strcmp(has, v) != 0) /* absent: reported removed (does not exist) */
            ekg_xds_list_add(&ts->force, ts->subs.names[i]);
    }
    for (size_t i = 0; i < ts->ninitial; i++) /* had, and gone since */
        if (!ekg_resource_set_find(cur, ts->initial[i].name) && subscribed(ts, type, ts->initial[i].name))
            ekg_xds_list_add(&ts->force, ts->initial[i].name);
    free_initial(ts);
    ts->initial_pending = false;
}

/* Works out what is due for one type; true when a response is due (the plan says what it carries). */
static bool evaluate(ekg_xds_session_t *s, ekg_resource_type_t type, dplan_t *p)
{
    type_state_t *ts = &s->types[type];
    *p = (dplan_t){.type = type, .ts = ts};
    if (!ts->requested || !s->snap)
        return false;
    p->cur = s->cur[type];
    bool wildcard = ts->wildcard && type != EKG_RESOURCE_LISTENER;
    /* Everything: a wildcard subscription that just began with nothing to compare against (no initial
     * versions), or "*" added later. Taken straight from the set, without listing every name as due. */
    bool all = wildcard && (ts->force_all || (ts->initial_pending && ts->ninitial == 0));
    if (all) {
        for (size_t i = 0; i < ts->subs.n; i++) /* explicit names: reported if absent */
            ekg_xds_list_add(&ts->force, ts->subs.names[i]);
        free_initial(ts);
        ts->initial_pending = false;
        ts->force_all = false;
    } else if (ts->initial_pending) {
        first_evaluation(ts, type, p->cur);
    } else if (ts->sent != p->cur) {
        diff_ctx_t d = {ts, type};
        ekg_resource_set_diff(ts->sent, p->cur, on_diff, &d);
    }
    ts->force_all = false;
    if (ts->sent != p->cur) {
        ekg_resource_set_unref(ts->sent);
        ts->sent = ekg_resource_set_ref(p->cur);
    }
    if (all)
        for (size_t i = 0; i < ekg_resource_set_size(p->cur); i++)
            EKG_ARRAY_PUSH(p->items, p->n, p->cap, ekg_resource_set_at(p->cur, i));
    for (size_t i = 0; i < ts->force.n; i++) {
        const char *name = ts->force.names[i];
        if (!subscribed(ts, type, name))
            continue;
        const ekg_resource_t *r = ekg_resource_set_find(p->cur, name);
        if (r && !all) /* (with all, every existing resource is in items already) */
            EKG_ARRAY_PUSH(p->items, p->n, p->cap, r);
        else if (!r)
            EKG_ARRAY_PUSH(p->removed, p->nremoved, p->capremoved, ekg_xstrdup(name));
    }
    ekg_xds_list_clear(&ts->force);
    if (p->n || p->nremoved)
        return true;
    dplan_free(p);
    return false;
}

bool ekg_xds_delta_has_work(const ekg_xds_session_t *s)
{
    if (!s->snap)
        return false;
    for (int t = 0; t < NTYPES; t++) {
        const type_state_t *ts = &s->types[t];
        if (ts->requested && (ts->initial_pending || ts->force.n || ts->force_all || ts->sent != s->cur[t]))
            return true;
    }
    return false;
}

/* Above this many resources, a response is copied into one piece rather than two pieces per resource. */
#define MAX_PIECES 16

static size_t resource_size(const ekg_resource_t *r)
{
    size_t name_len = strlen(ekg_resource_name(r));
    return ekg_pb_field_size(1, 16) + ekg_resource_response_len(r) + ekg_pb_field_size(3, name_len);
}

/* Writes one DeltaDiscoveryResponse.resources entry up to (not including) the shared Any field. */
static char *put_resource_head(char *q, const ekg_resource_t *r)
{
    char v[17];
    version_of(r, v);
    q = ekg_pb_put_header(q, 2, resource_size(r)); /* resources = 2: a Resource */
    return ekg_pb_put_field(q, 1, v, 16);          /* Resource.version = 1 */
}

static char *put_resource_tail(char *q, const ekg_resource_t *r)
{
    const char *name = ekg_resource_name(r);
    return ekg_pb_put_field(q, 3, name, strlen(name)); /* Resource.name = 3 */
}

static void release_set(void *owner)
{
    ekg_resource_set_unref(owner);
}

/* A response carrying every resource of p->cur: header, the set's shared bytes, trailer. */
static void build_whole(const dplan_t *p, const char *nonce, const char *url, const char *version,
                        ekg_xds_response_t *out)
{
    size_t ul = strlen(url), vl = strlen(version), nl = strlen(nonce);
    size_t tail_len = ekg_pb_field_size(4, ul) + ekg_pb_field_size(5, nl);
    for (size_t i = 0; i < p->nremoved; i++)
        tail_len += ekg_pb_field_size(6, strlen(p->removed[i]));
    char *head = ekg_xmalloc(ekg_pb_field_size(1, vl)), *tail = ekg_xmalloc(tail_len);
    char *h = ekg_pb_put_field(head, 1, version, vl), *t = ekg_pb_put_field(tail, 4, url, ul);
    t = ekg_pb_put_field(t, 5, nonce, nl);
    for (size_t i = 0; i < p->nremoved; i++)
        t = ekg_pb_put_field(t, 6, p->removed[i], strlen(p->removed[i]));
    const char *data;
    size_t len;
    ekg_resource_set_delta_fields(p->cur, &data, &len);
    ekg_xds_piece_t *pieces = ekg_xcalloc(3, sizeof(*pieces));
    pieces[0] = (ekg_xds_piece_t){.data = head, .len = (size_t)(h - head), .release = free, .owner = head};
    pieces[1] = (ekg_xds_piece_t){
        .data = data, .len = len, .release = release_set, .owner = ekg_resource_set_ref(p->cur)};
    pieces[2] = (ekg_xds_piece_t){.data = tail, .len = (size_t)(t - tail), .release = free, .owner = tail};
    *out = (ekg_xds_response_t){
        .type = p->type, .pieces = pieces, .npieces = 3, .total_len = pieces[0].len + len + pieces[2].len};
}

/*
 * DeltaDiscoveryResponse{system_version_info = 1, resources = 2: Resource{version = 1, resource = 2 (the
 * resource's own DiscoveryResponse field bytes: the same tag and Any), name = 3}, type_url = 4, nonce = 5,
 * removed_resources = 6}, in field order.
 */
static void build(const dplan_t *p, const char *nonce, ekg_xds_response_t *out)
{
    const char *url = ekg_resource_type_url(p->type), *version = ekg_resource_set_version(p->cur);
    size_t ul = strlen(url), vl = strlen(version), nl = strlen(nonce);
    size_t head = ekg_pb_field_size(1, vl), tail = ekg_pb_field_size(4, ul) + ekg_pb_field_size(5, nl);
    for (size_t i = 0; i < p->nremoved; i++)
        tail += ekg_pb_field_size(6, strlen(p->removed[i]));
    size_t body = 0; /* every resource's bytes but the shared Any */
    for (size_t i = 0; i < p->n; i++) {
        size_t rs = resource_size(p->items[i]);
        body += ekg_pb_field_size(2, rs) - ekg_resource_response_len(p->items[i]);
    }
    /* Every resource of the set in order (a new wildcard subscription): the set's shared delta encoding. */
    bool whole = p->n > MAX_PIECES && p->n == ekg_resource_set_size(p->cur);
    for (size_t i = 0; whole && i < p->n; i++)
        whole = p->items[i] == ekg_resource_set_at(p->cur, i);
    if (whole) {
        build_whole(p, nonce, url, version, out);
        return;
    }
    bool copy = p->n > MAX_PIECES;
    size_t scratch_len = head + body + tail;
    if (copy)
        for (size_t i = 0; i < p->n; i++)
            scratch_len += ekg_resource_response_len(p->items[i]);
    char *scratch = ekg_xmalloc(scratch_len ? scratch_len : 1), *q = scratch;
    size_t npieces = copy ? 1 : 2 * p->n + 1, k = 0, total = 0;
    ekg_xds_piece_t *pieces = ekg_xcalloc(npieces, sizeof(*pieces));
    const char *run = q; /* start of the scratch bytes not yet in a piece */
    q = ekg_pb_put_field(q, 1, version, vl);
    for (size_t i = 0; i < p->n; i++) {
        const ekg_resource_t *r = p->items[i];
        size_t flen;
        const char *field = ekg_resource_response_field(r, &flen);
        q = put_resource_head(q, r);
        if (copy) {
            memcpy(q, field, flen);
            q += flen;
        } else {
            pieces[k++] = (ekg_xds_piece_t){.data = run, .len = (size_t)(q - run)};
            pieces[k++] = (ekg_xds_piece_t){.data = field,
                                            .len = flen,
                                            .release = ekg_xds_release_resource,
                                            .owner = ekg_resource_ref((ekg_resource_t *)r)};
            run = q;
        }
        q = put_resource_tail(q, r);
    }
    q = ekg_pb_put_field(q, 4, url, ul);
    q = ekg_pb_put_field(q, 5, nonce, nl);
    for (size_t i = 0; i < p->nremoved; i++)
        q = ekg_pb_put_field(q, 6, p->removed[i], strlen(p->removed[i]));
    /* The last scratch piece owns the scratch buffer (pieces are released in order, after the bytes are
     * sent). */
    pieces[k++] = (ekg_xds_piece_t){.data = run, .len = (size_t)(q - run), .release = free, .owner = scratch};
    for (size_t i = 0; i < k; i++)
        total += pieces[i].len;
    *out = (ekg_xds_response_t){.type = p->type, .pieces = pieces, .npieces = k, .total_len = total};
}

static void send_plan(ekg_xds_session_t *s, dplan_t *p, ekg_xds_response_t *out)
{
    type_state_t *ts = p->ts;
    char nonce[24];
    snprintf(nonce, sizeof(nonce), "%llu", ++s->next_nonce);
    build(p, nonce, out);
    snprintf(ts->nonce, sizeof(ts->nonce), "%s", nonce);
    snprintf(ts->sent_version, sizeof(ts->sent_version), "%s", ekg_resource_set_version(p->cur));
    ts->responses++;
    ts->sent_time = ekg_clock_unix_s();
    ekg_metrics_xds_push(1, p->type);
    ekg_debug("xds: sending node=%s peer=%s type=%s version=%s nonce=%s resources=%zu removed=%zu (delta)",
              ekg_xds_session_node_id(s), s->peer, ekg_xds_type_names[p->type], ts->sent_version, nonce, p->n,
              p->nremoved);
    /* Cluster warming: a changed Cluster's load assignment goes again right after it. */
    if (p->type == EKG_RESOURCE_CLUSTER && s->api == EKG_XDS_ADS) {
        type_state_t *eds = &s->types[EKG_RESOURCE_LOAD_ASSIGNMENT];
        for (size_t i = 0; eds->requested && i < p->n; i++)
            if (ekg_xds_list_has(&eds->subs, ekg_resource_name(p->items[i])))
                ekg_xds_list_add(&eds->force, ekg_resource_name(p->items[i]));
    }
}

bool ekg_xds_delta_next(ekg_xds_session_t *s, ekg_xds_response_t *out)
{
    /* Make before break: Clusters, load assignments, Listeners, routes; a Cluster update that only removes
     * goes last. */
    dplan_t deferred = {0};
    bool have_deferred = false;
    for (int t = 0; t < NTYPES; t++) {
        dplan_t p;
        if (!evaluate(s, (ekg_resource_type_t)t, &p))
            continue;
        if (t == EKG_RESOURCE_CLUSTER && s->api == EKG_XDS_ADS && p.n == 0) {
            deferred = p;
            have_deferred = true;
            continue;
        }
        send_plan(s, &p, out);
        dplan_free(&p);
        if (have_deferred) /* not sent: its names are due again next time */
            for (size_t i = 0; i < deferred.nremoved; i++)
                ekg_xds_list_add(&deferred.ts->force, deferred.removed[i]);
        dplan_free(&deferred);
        return true;
    }
    if (!have_deferred)
        return false;
    send_plan(s, &deferred, out);
    dplan_free(&deferred);
    return true;
}
