/*
 * src/xds/session.c: the state-of-the-world xDS protocol for one stream (src/xds/session.h).
 *
 * Per resource type the session keeps: whether the client asked for the type, its subscription (wildcard
 * and/or a sorted list of names), the set it last sent (`sent`, a reference to a shared immutable set: what
 * this client has, as far as its subscription goes), the last nonce and version sent, the last ACK and NACK,
 * and `force`, names that must be sent on the next response even if unchanged (names asked for the first
 * time, and the load assignments of clusters that just changed: cluster warming).
 *
 * What is due is computed from the diff between `sent` and the snapshot's set (src/resource/resource.c skips
 * the pages both share, so one change costs about one page per stream, not a walk of everything):
 *   - Clusters and Listeners are "full state": a response carries every subscribed resource that exists, and
 * is due when the subscription changed, when the client asked for the type the first time, or when a
 * subscribed resource was added, changed or removed. A wildcard CDS response is the set's shared concatenated
 * bytes. Wildcard LDS gets no proxyless-gRPC listeners (those are served only by name).
 *   - ClusterLoadAssignments and RouteConfigurations are sent per resource: a response carries the subscribed
 *     resources that were added or changed since `sent`, plus `force`.
 * version_info is the version of the type's whole set (content-derived: equal across restarts and replicas).
 * On ADS the types go out in the order Clusters, load assignments, Listeners, routes; a Cluster update that
 * only removes clusters waits until the others are out (make before break).
 *
 * Thread: not synchronized; the transport serializes calls with the stream's lock.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/core/v3/base.upb.h"
#include "envoy/service/discovery/v3/discovery.upb.h"
#include "google/protobuf/struct.upb.h"
#include "google/rpc/status.upb.h"

#include "ekglue/clock.h"
#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/metrics.h"
#include "ekglue/proto.h"

#include "common/hash.h"
#include "common/pbwrite.h"
#include "xds/session_internal.h"

/*
 * A subscription's names: sorted, unique, immutable and shared. Streams that subscribe to the same names (a
 * thousand Envoys asking for the same clusters' endpoints) hold one copy between them: each set of names is
 * interned in a process-wide registry and reference-counted. Interning and the last unref take the registry's
 * lock; reads need none.
 */
typedef struct names {
    int refs; /* under registry_lock */
    uint64_t hash;
    struct names *next; /* registry bucket chain */
    size_t n;
    const char **v; /* points into blob */
    char blob[];
} names_t;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static names_t **registry; /* buckets; owned */
static size_t registry_cap, registry_len;

static bool names_has(const names_t *l, const char *name)
{
    size_t lo = 0, hi = l ? l->n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(l->v[mid], name);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static size_t names_count(const names_t *l)
{
    return l ? l->n : 0;
}

static names_t *names_ref(names_t *l)
{
    if (l) {
        pthread_mutex_lock(&registry_lock);
        l->refs++;
        pthread_mutex_unlock(&registry_lock);
    }
    return l;
}

static void names_unref(names_t *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&registry_lock);
    if (--l->refs == 0) {
        names_t **pp = &registry[l->hash & (registry_cap - 1)];
        while (*pp != l)
            pp = &(*pp)->next;
        *pp = l->next;
        registry_len--;
        free(l);
        if (registry_len == 0) {
            free(registry);
            registry = NULL;
            registry_cap = 0;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

static int cmp_views(const void *a, const void *b)
{
    const upb_StringView *x = a, *y = b;
    size_t n = x->size < y->size ? x->size : y->size;
    int c = memcmp(x->data, y->data, n);
    return c ? c : (x->size > y->size) - (x->size < y->size);
}

static bool view_is(upb_StringView v, const char *s)
{
    return strlen(s) == v.size && memcmp(s, v.data, v.size) == 0;
}

/* The interned names_t for n views that are sorted and unique (n > 0); a new reference. */
static names_t *names_intern(const upb_StringView *v, size_t n)
{
    uint64_t h = EKG_HASH_INIT;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        h = ekg_hash_update(h, v[i].data, v[i].size);
        h = ekg_hash_update(h, "", 1);
        bytes += v[i].size + 1;
    }
    h = ekg_hash_final(h);
    pthread_mutex_lock(&registry_lock);
    names_t *found = NULL;
    for (names_t *l = registry_cap ? registry[h & (registry_cap - 1)] : NULL; l && !found; l = l->next) {
        if (l->hash != h || l->n != n)
            continue;
        size_t i = 0;
        while (i < n && view_is(v[i], l->v[i]))
            i++;
        if (i == n)
            found = l;
    }
    if (found) {
        found->refs++;
        pthread_mutex_unlock(&registry_lock);
        return found;
    }
    if (registry_len + 1 > registry_cap / 2) {
        size_t cap = registry_cap ? registry_cap * 2 : 64;
        names_t **b = ekg_xcalloc(cap, sizeof(*b));
        for (size_t i = 0; i < registry_cap; i++)
            for (names_t *l = registry[i], *next; l; l = next) {
                next = l->next;
                l->next = b[l->hash & (cap - 1)];
                b[l->hash & (cap - 1)] = l;
            }
        free(registry);
        registry = b;
        registry_cap = cap;
    }
    names_t *l = ekg_xmalloc(sizeof(*l) + n * sizeof(char *) + bytes);
    l->refs = 1;
    l->hash = h;
    l->n = n;
    l->v = (const char **)(void *)l->blob;
    char *p = l->blob + n * sizeof(char *);
    for (size_t i = 0; i < n; i++) {
        memcpy(p, v[i].data, v[i].size);
        p[v[i].size] = '\0';
        l->v[i] = p;
        p += v[i].size + 1;
    }
    l->next = registry[h & (registry_cap - 1)];
    registry[h & (registry_cap - 1)] = l;
    registry_len++;
    pthread_mutex_unlock(&registry_lock);
    return l;
}

const char *const ekg_xds_type_names[NTYPES] = {"Cluster", "ClusterLoadAssignment", "Listener",
                                                "RouteConfiguration"};

/* --- sorted name lists -------------------------------------------------------------------------------------
 */

ssize_t ekg_xds_list_find(const name_list_t *l, const char *name, size_t *pos)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(l->names[mid], name);
        if (c == 0)
            return (ssize_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (pos)
        *pos = lo;
    return -1;
}

bool ekg_xds_list_has(const name_list_t *l, const char *name)
{
    return ekg_xds_list_find(l, name, NULL) >= 0;
}

void ekg_xds_list_add(name_list_t *l, const char *name)
{
    size_t pos = 0;
    if (ekg_xds_list_find(l, name, &pos) >= 0)
        return;
    void *names = l->names;
    ekg_array_reserve(&names, &l->cap, l->n + 1, sizeof(*l->names));
    l->names = names;
    memmove(l->names + pos + 1, l->names + pos, (l->n - pos) * sizeof(*l->names));
    l->names[pos] = ekg_xstrdup(name);
    l->n++;
}

void ekg_xds_list_remove(name_list_t *l, const char *name)
{
    ssize_t i = ekg_xds_list_find(l, name, NULL);
    if (i < 0)
        return;
    free(l->names[i]);
    memmove(l->names + i, l->names + i + 1, (l->n - (size_t)i - 1) * sizeof(*l->names));
    l->n--;
}

void ekg_xds_list_clear(name_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    *l = (name_list_t){0};
}

/* --- life cycle --------------------------------------------------------------------------------------------
 */

ekg_xds_session_t *ekg_xds_session_new(ekg_xds_api_t api, const char *peer)
{
    ekg_xds_session_t *s = ekg_xcalloc(1, sizeof(*s));
    s->peer = ekg_xstrdup(peer ? peer : "");
    s->api = api;
    return s;
}

ekg_xds_session_t *ekg_xds_session_new_delta(ekg_xds_api_t api, const char *peer)
{
    ekg_xds_session_t *s = ekg_xds_session_new(api, peer);
    s->delta = true;
    return s;
}

bool ekg_xds_session_is_delta(const ekg_xds_session_t *s)
{
    return s->delta;
}

void ekg_xds_session_free(ekg_xds_session_t *s)
{
    if (!s)
        return;
    for (int t = 0; t < NTYPES; t++) {
        type_state_t *ts = &s->types[t];
        names_unref(ts->names);
        ekg_xds_list_clear(&ts->force);
        ekg_xds_list_clear(&ts->warming);
        ekg_resource_set_unref(ts->sent);
        free(ts->nack_message);
    }
    ekg_xds_delta_free(s);
    for (size_t i = 0; i < s->nunknown; i++)
        free(s->unknown[i].url);
    free(s->unknown);
    ekg_snapshot_unref(s->snap);
    free(s->node_id);
    free(s->cluster);
    free(s->region);
    free(s->zone);
    free(s->sub_zone);
    free(s->node_name);
    free(s->user_agent_name);
    free(s->user_agent_version);
    free(s->peer);
    free(s);
}

void ekg_xds_session_set_limits(ekg_xds_session_t *s, size_t max_names_per_request,
                                size_t max_names_per_stream)
{
    s->max_names_per_request = max_names_per_request;
    s->max_names_per_stream = max_names_per_stream;
}

/* Looks up the snapshot's sets at the client's place (before the node is known: no place, the base sets). */
static void resolve_sets(ekg_xds_session_t *s)
{
    ekg_place_t place = {s->region, s->zone, s->node_name};
    for (int t = 0; t < NTYPES; t++)
        s->cur[t] =
            s->snap ? ekg_snapshot_resources_at(s->snap, (ekg_resource_type_t)t, s->node_id ? &place : NULL)
                    : NULL;
}

void ekg_xds_session_on_snapshot(ekg_xds_session_t *s, ekg_snapshot_t *snap)
{
    if (!snap || snap == s->snap)
        return;
    ekg_snapshot_unref(s->snap);
    s->snap = ekg_snapshot_ref(snap);
    resolve_sets(s);
}

const char *ekg_xds_session_node_id(const ekg_xds_session_t *s)
{
    return s->node_id ? s->node_id : "";
}

void ekg_xds_session_type_status(const ekg_xds_session_t *s, ekg_resource_type_t type,
                                 ekg_xds_type_status_t *out)
{
    const type_state_t *ts = &s->types[type];
    *out = (ekg_xds_type_status_t){
        .subscribed = ts->requested,
        .wildcard = ts->wildcard,
        .nnames = s->delta ? ts->subs.n : names_count(ts->names),
        .sent_version = ts->sent_version,
        .acked_version = ts->acked_version,
        .nack_message = ts->nack_message,
        .names = s->delta ? (ts->subs.n ? (const char *const *)ts->subs.names : NULL)
                          : (ts->names ? ts->names->v : NULL),
        .nack_time = ts->nack_time,
        .sent_time = ts->sent_time,
        .sent = ts->sent,
        .acks = ts->acks,
        .nacks = ts->nacks,
        .responses = ts->responses,
    };
}

/* --- requests ----------------------------------------------------------------------------------------------
 */

bool ekg_xds_is_full_state(ekg_resource_type_t t)
{
    return t == EKG_RESOURCE_CLUSTER || t == EKG_RESOURCE_LISTENER;
}

bool ekg_xds_api_allows(ekg_xds_api_t api, ekg_resource_type_t t)
{
    static const ekg_resource_type_t only[] = {
        [EKG_XDS_CDS] = EKG_RESOURCE_CLUSTER,
        [EKG_XDS_EDS] = EKG_RESOURCE_LOAD_ASSIGNMENT,
        [EKG_XDS_LDS] = EKG_RESOURCE_LISTENER,
        [EKG_XDS_RDS] = EKG_RESOURCE_ROUTE,
    };
    return api == EKG_XDS_ADS || only[api] == t;
}

ekg_err_t ekg_xds_on_unknown_type(ekg_xds_session_t *s, upb_StringView url, upb_StringView nonce,
                                  ekg_diag_t *diag)
{
    for (size_t i = 0; i < s->nunknown; i++) {
        unknown_type_t *u = &s->unknown[i];
        if (strlen(u->url) == url.size && memcmp(u->url, url.data, url.size) == 0) {
            /* Answer requests, not the ACKs of our empty answers. */
            if (nonce.size == 0)
                u->pending = true;
            return EKG_OK;
        }
    }
    if (s->nunknown >= MAX_UNKNOWN_TYPES)
        return ekg_diag_set(
            diag, EKG_ERANGE,
            "more than %d type URLs that ekglue does not serve on one stream (the last: %.*s)",
            MAX_UNKNOWN_TYPES, (int)(url.size > 200 ? 200 : url.size), url.data);
    unknown_type_t u = {.url = ekg_xstrndup(url.data, url.size), .pending = true};
    EKG_ARRAY_PUSH(s->unknown, s->nunknown, s->unknown_cap, u);
    ekg_info(
        "xds: node=%s peer=%s asked for type %s, which ekglue does not serve; answering with an empty set",
        ekg_xds_session_node_id(s), s->peer, u.url);
    return EKG_OK;
}

static bool view_eq(upb_StringView v, const char *s)
{
    return strlen(s) == v.size && memcmp(s, v.data, v.size) == 0;
}

/* Names subscribed on the stream, every type but except. */
static size_t names_besides(const ekg_xds_session_t *s, ekg_resource_type_t except)
{
    size_t n = 0;
    for (int t = 0; t < NTYPES; t++)
        if (t != (int)except)
            n += names_count(s->types[t].names);
    return n;
}

/*
 * Applies the request's resource_names to the subscription. Clients repeat their whole list in every request
 * (every ACK of a thousand-cluster subscription carries a thousand names), so an unchanged list in the same
 * order is recognized first, without allocating. EKG_ERANGE, with nothing changed, when the stream would
 * subscribe to more names than s->max_names_per_stream.
 */
static ekg_err_t update_subscription(ekg_xds_session_t *s, ekg_resource_type_t type,
                                     const upb_StringView *names, size_t n, upb_Arena *arena,
                                     ekg_diag_t *diag)
{
    type_state_t *ts = &s->types[type];
    bool first = !ts->requested;
    if (!first && n > 0 && n == names_count(ts->names) && !ts->wildcard) {
        size_t i = 0;
        while (i < n && view_is(names[i], ts->names->v[i]))
            i++;
        if (i == n)
            return EKG_OK;
    }
    /* Sorted, unique, without "*". */
    bool star = false;
    upb_StringView *v = n ? upb_Arena_Malloc(arena, n * sizeof(*v)) : NULL;
    size_t m = 0;
    if (n && !v)
        ekg_oom(n * sizeof(*v)); /* upb's arena does not allocate through mem.h */
    for (size_t i = 0; i < n; i++) {
        if (names[i].size == 1 && names[i].data[0] == '*')
            star = true;
        else
            v[m++] = names[i];
    }
    if (m > 1) {
        qsort(v, m, sizeof(*v), cmp_views);
        size_t w = 1;
        for (size_t r = 1; r < m; r++)
            if (cmp_views(&v[r], &v[w - 1]) != 0)
                v[w++] = v[r];
        m = w;
    }
    if (s->max_names_per_stream && m > 0 && m + names_besides(s, type) > s->max_names_per_stream)
        return ekg_diag_set(diag, EKG_ERANGE,
                            "the stream would subscribe to %zu resource names (%zu %s); the limit is %zu per "
                            "stream (--xds-max-names-per-stream)",
                            m + names_besides(s, type), m, ekg_xds_type_names[type], s->max_names_per_stream);
    bool wildcard;
    if (!ekg_xds_is_full_state(type))
        wildcard = false; /* load assignments and routes are always named */
    else if (star)
        wildcard = true;
    else if (n == 0)
        wildcard = !ts->named; /* legacy wildcard while nothing was ever named; else: unsubscribe all */
    else
        wildcard = false;

    names_t *next = m ? names_intern(v, m) : NULL;
    /* Names asked for the first time on this stream are sent even if they were sent before elsewhere. */
    bool changed = wildcard != ts->wildcard || next != ts->names;
    if (next != ts->names) {
        if (names_count(ts->names) == 0) {
            ts->force_all = true;
        } else {
            for (size_t i = 0; i < m; i++)
                if (!names_has(ts->names, next->v[i]))
                    ekg_xds_list_add(&ts->force, next->v[i]);
        }
    }
    names_unref(ts->names);
    ts->names = next;
    ts->wildcard = wildcard;
    if (n > 0)
        ts->named = true;
    if (first || (changed && ekg_xds_is_full_state(type)))
        ts->pending = true;
    return EKG_OK;
}

/* Keeps the identity of the client (all or nothing: node_id set means every field is), each field cut at
 * MAX_NODE_FIELD bytes: it is kept for the stream's life and copied for every operators' view. */
void ekg_xds_take_node(ekg_xds_session_t *s, const struct envoy_config_core_v3_Node *node)
{
    upb_StringView v[7] = {envoy_config_core_v3_Node_id(node),
                           envoy_config_core_v3_Node_cluster(node),
                           {0},
                           {0},
                           {0},
                           envoy_config_core_v3_Node_user_agent_name(node),
                           envoy_config_core_v3_Node_user_agent_version(node)};
    if (envoy_config_core_v3_Node_has_locality(node)) {
        const struct envoy_config_core_v3_Locality *l = envoy_config_core_v3_Node_locality(node);
        v[2] = envoy_config_core_v3_Locality_region(l);
        v[3] = envoy_config_core_v3_Locality_zone(l);
        v[4] = envoy_config_core_v3_Locality_sub_zone(l);
    }
    char **out[7] = {&s->node_id,         &s->cluster,           &s->region, &s->zone, &s->sub_zone,
                     &s->user_agent_name, &s->user_agent_version};
    for (int i = 0; i < 7; i++)
        *out[i] =
            ekg_xstrndup(v[i].data ? v[i].data : "", v[i].size < MAX_NODE_FIELD ? v[i].size : MAX_NODE_FIELD);
    /* The Kubernetes Node the client runs on, for PreferSameNode: metadata NODE_NAME, a string
     * (docs/translation.md, "Zone-aware endpoints"). */
    upb_StringView nn = {0};
    const struct google_protobuf_Struct *md =
        envoy_config_core_v3_Node_has_metadata(node) ? envoy_config_core_v3_Node_metadata(node) : NULL;
    google_protobuf_Value *val = NULL;
    if (md && google_protobuf_Struct_fields_get(md, upb_StringView_FromString("NODE_NAME"), &val) && val &&
        google_protobuf_Value_has_string_value(val))
        nn = google_protobuf_Value_string_value(val);
    s->node_name = ekg_xstrndup(nn.data ? nn.data : "", nn.size < MAX_NODE_FIELD ? nn.size : MAX_NODE_FIELD);
    resolve_sets(s); /* the client's place is known now */
}

ekg_err_t ekg_xds_session_on_request(ekg_xds_session_t *s, const char *bytes, size_t len, ekg_diag_t *diag)
{
    if (s->delta)
        return ekg_xds_delta_on_request(s, bytes, len, diag);
    ekg_err_t err = EKG_OK;
    upb_Arena *arena = ekg_proto_arena_new();
    /* Strings alias the request bytes, which outlive the arena's use here. */
    upb_Message *decoded;
    ekg_diag_t why;
    if (ekg_proto_decode_peer(bytes, len, &envoy_service_discovery_v3_DiscoveryRequest_msginit,
                              kUpb_DecodeOption_AliasString, arena, &decoded, &why) != EKG_OK) {
        err = ekg_diag_set(diag, EKG_EPARSE, "DiscoveryRequest does not decode: %s", why.msg);
        goto out;
    }
    envoy_service_discovery_v3_DiscoveryRequest *req = (envoy_service_discovery_v3_DiscoveryRequest *)decoded;
    size_t n;
    const upb_StringView *names = envoy_service_discovery_v3_DiscoveryRequest_resource_names(req, &n);
    if (s->max_names_per_request && n > s->max_names_per_request) {
        err = ekg_diag_set(diag, EKG_ERANGE,
                           "DiscoveryRequest names %zu resources; the limit is %zu per request "
                           "(--xds-max-names-per-request)",
                           n, s->max_names_per_request);
        goto out;
    }
    /* The node is only guaranteed in the first request of a stream. */
    if (!s->node_id && envoy_service_discovery_v3_DiscoveryRequest_has_node(req))
        ekg_xds_take_node(s, envoy_service_discovery_v3_DiscoveryRequest_node(req));
    upb_StringView url = envoy_service_discovery_v3_DiscoveryRequest_type_url(req);
    upb_StringView nonce = envoy_service_discovery_v3_DiscoveryRequest_response_nonce(req);
    ekg_resource_type_t type;
    if (url.size == 0 && s->api != EKG_XDS_ADS) {
        static const ekg_resource_type_t implied[] = {
            [EKG_XDS_CDS] = EKG_RESOURCE_CLUSTER,
            [EKG_XDS_EDS] = EKG_RESOURCE_LOAD_ASSIGNMENT,
            [EKG_XDS_LDS] = EKG_RESOURCE_LISTENER,
            [EKG_XDS_RDS] = EKG_RESOURCE_ROUTE,
        };
        type = implied[s->api];
    } else {
        type = ekg_resource_type_from_url(url.data, url.size);
    }
    if (type == EKG_RESOURCE__COUNT) {
        if (url.size == 0) {
            err = ekg_diag_set(diag, EKG_EINVAL, "DiscoveryRequest on ADS without a type_url");
            goto out;
        }
        if (s->api != EKG_XDS_ADS) {
            err = ekg_diag_set(diag, EKG_EINVAL, "type %.*s does not belong on this service", (int)url.size,
                               url.data);
            goto out;
        }
        err = ekg_xds_on_unknown_type(s, url, nonce, diag);
        goto out;
    }
    if (!ekg_xds_api_allows(s->api, type)) {
        err = ekg_diag_set(diag, EKG_EINVAL, "type %.*s does not belong on this service", (int)url.size,
                           url.data);
        goto out;
    }
    type_state_t *ts = &s->types[type];

    /* Nothing of this type was sent on this stream yet: a nonce can only come from an earlier stream (clients
     * reconnecting after a restart do that). Nonces mean something only on the stream that sent them. */
    if (ts->nonce[0] == '\0')
        nonce = upb_StringView_FromDataAndSize(NULL, 0);
    /* A nonce that is not the latest one sent for this type answers an older response: ignore it. */
    if (nonce.size && !view_eq(nonce, ts->nonce)) {
        ekg_debug("xds: node=%s ignoring a %s request with stale nonce %.*s (latest %s)",
                  ekg_xds_session_node_id(s), ekg_xds_type_names[type],
                  (int)(nonce.size > 32 ? 32 : nonce.size), nonce.data, ts->nonce);
        goto out;
    }
    if (envoy_service_discovery_v3_DiscoveryRequest_has_error_detail(req)) {
        const struct google_rpc_Status *st = envoy_service_discovery_v3_DiscoveryRequest_error_detail(req);
        upb_StringView msg = google_rpc_Status_message(st);
        if (msg.size > MAX_NACK_MESSAGE)
            msg.size = MAX_NACK_MESSAGE;
        free(ts->nack_message);
        ts->nack_message = ekg_xstrndup(msg.data ? msg.data : "", msg.size);
        ts->nack_time = ekg_clock_unix_s();
        ts->nacks++;
        ekg_metrics_xds_nack(0, type);
        /* The rejected content is not resent: nothing is due until it changes. */
        ekg_warn("xds: NACK node=%s peer=%s type=%s rejected_version=%s client_version=%.*s: %.*s",
                 ekg_xds_session_node_id(s), s->peer, ekg_xds_type_names[type], ts->sent_version,
                 (int)(envoy_service_discovery_v3_DiscoveryRequest_version_info(req).size > 64
                           ? 64
                           : envoy_service_discovery_v3_DiscoveryRequest_version_info(req).size),
                 envoy_service_discovery_v3_DiscoveryRequest_version_info(req).data, (int)msg.size, msg.data);
    } else if (nonce.size) {
        upb_StringView v = envoy_service_discovery_v3_DiscoveryRequest_version_info(req);
        snprintf(ts->acked_version, sizeof(ts->acked_version), "%.*s", (int)v.size, v.data);
        ekg_debug("xds: ACK node=%s peer=%s type=%s version=%s", ekg_xds_session_node_id(s), s->peer,
                  ekg_xds_type_names[type], ts->acked_version);
        free(ts->nack_message);
        ts->nack_message = NULL;
        ts->acks++;
        ekg_metrics_xds_ack(0, type);
    }
    if ((err = update_subscription(s, type, names, n, arena, diag)) != EKG_OK)
        goto out;
    /* Cluster warming: the first load-assignment request after changed clusters were sent gets them again. */
    if (type == EKG_RESOURCE_LOAD_ASSIGNMENT && ts->warm_on_request) {
        for (size_t i = 0; i < ts->warming.n; i++)
            if (names_has(ts->names, ts->warming.names[i]))
                ekg_xds_list_add(&ts->force, ts->warming.names[i]);
        ekg_xds_list_clear(&ts->warming);
        ts->warm_on_request = false;
    }
    ts->requested = true;
out:
    upb_Arena_Free(arena);
    return err;
}

/* --- responses ---------------------------------------------------------------------------------------------
 */

typedef struct plan {
    ekg_resource_type_t type;
    type_state_t *ts;
    ekg_resource_set_t *cur;
    bool whole_set;               /* send the set's concatenated fields */
    const ekg_resource_t **items; /* otherwise these (borrowed from cur) */
    size_t n, cap;
    bool changed, added_or_changed; /* the diff saw a subscribed change / one that was not a removal */
    name_list_t *warming_out;       /* clusters: names whose content changed (for cluster warming) */
} plan_t;

static bool subscribed(const type_state_t *ts, ekg_resource_type_t type, const char *name)
{
    return (ts->wildcard && type != EKG_RESOURCE_LISTENER) || names_has(ts->names, name);
}

static void add_item(plan_t *p, const ekg_resource_t *r)
{
    EKG_ARRAY_PUSH(p->items, p->n, p->cap, r);
}

static void on_diff(void *ctx, const char *name, const ekg_resource_t *before, const ekg_resource_t *after)
{
    plan_t *p = ctx;
    if (!subscribed(p->ts, p->type, name))
        return;
    p->changed = true;
    if (after)
        p->added_or_changed = true;
    if (after && p->warming_out)
        ekg_xds_list_add(p->warming_out, name);
    if (after && !ekg_xds_is_full_state(p->type) && !p->ts->force_all &&
        !ekg_xds_list_has(&p->ts->force, name))
        add_item(p, after);
}

/*
 * Works out what is due for one type. Returns true when a response is due; then the plan says what it
 * carries. A type with nothing due has its `sent` advanced to the current set (the client is up to date).
 */
static bool evaluate(ekg_xds_session_t *s, ekg_resource_type_t type, name_list_t *warming_out, plan_t *p)
{
    type_state_t *ts = &s->types[type];
    *p = (plan_t){.type = type, .ts = ts, .warming_out = warming_out};
    if (!ts->requested || !s->snap)
        return false;
    p->cur = s->cur[type];
    if (p->cur == ts->sent && !ts->pending && ts->force.n == 0 && !ts->force_all)
        return false;
    if (ts->sent != p->cur)
        ekg_resource_set_diff(ts->sent, p->cur, on_diff, p);
    /* Proxyless-gRPC listeners go only to clients that name them. */
    bool wildcard_lds = type == EKG_RESOURCE_LISTENER && ts->wildcard;
    if (ekg_xds_is_full_state(type)) {
        bool due = ts->pending || p->changed || ts->force.n > 0 || ts->force_all;
        if (!due)
            goto up_to_date;
        if (ts->wildcard && !wildcard_lds) {
            p->whole_set = true; /* also for "*" plus names: everything */
        } else {
            for (size_t i = 0; i < names_count(ts->names); i++) {
                const ekg_resource_t *r = ekg_resource_set_find(p->cur, ts->names->v[i]);
                if (r)
                    add_item(p, r);
            }
        }
        return true;
    }
    if (ts->force_all) {
        for (size_t i = 0; i < names_count(ts->names); i++) {
            const ekg_resource_t *r = ekg_resource_set_find(p->cur, ts->names->v[i]);
            if (r)
                add_item(p, r);
        }
    } else {
        for (size_t i = 0; i < ts->force.n; i++) {
            const ekg_resource_t *r = ekg_resource_set_find(p->cur, ts->force.names[i]);
            if (r && names_has(ts->names, ts->force.names[i]))
                add_item(p, r);
        }
    }
    if (p->n > 0 || (ts->pending && names_count(ts->names) == 0))
        return true;
up_to_date:
    if (ts->sent != p->cur) {
        ekg_resource_set_unref(ts->sent);
        ts->sent = ekg_resource_set_ref(p->cur);
    }
    ekg_xds_list_clear(&ts->force);
    ts->force_all = false;
    ts->pending = false;
    free(p->items);
    p->items = NULL;
    return false;
}

void ekg_xds_release_resource(void *owner)
{
    ekg_resource_unref(owner);
}

static void release_set(void *owner)
{
    ekg_resource_set_unref(owner);
}

/* Above this many resources, a response's resources are copied into one piece. */
#define MAX_PIECES 16

/* Encodes the header (version_info, type_url, nonce) and the pieces. */
static void build_response(const char *url, const char *version, const char *nonce, plan_t *p,
                           ekg_xds_response_t *out)
{
    /* Every resource of the set, in order (a client subscribed to everything): the set's shared bytes. */
    if (p && !p->whole_set && p->n && p->n == ekg_resource_set_size(p->cur)) {
        size_t i = 0;
        while (i < p->n && p->items[i] == ekg_resource_set_at(p->cur, i))
            i++;
        p->whole_set = i == p->n;
    }
    /* DiscoveryResponse: version_info = 1, type_url = 4, nonce = 5 (resources = 2 are the pieces). */
    size_t ul = strlen(url), vl = strlen(version), nl = strlen(nonce);
    size_t hlen = ekg_pb_field_size(1, vl) + ekg_pb_field_size(4, ul) + ekg_pb_field_size(5, nl);
    size_t npieces = 1 + (p ? (p->whole_set || p->n > MAX_PIECES ? 1 : p->n) : 0);
    char *header = ekg_xmalloc(hlen);
    ekg_xds_piece_t *pieces = ekg_xcalloc(npieces, sizeof(*pieces));
    char *q = ekg_pb_put_field(header, 1, version, vl);
    q = ekg_pb_put_field(q, 4, url, ul);
    q = ekg_pb_put_field(q, 5, nonce, nl);
    pieces[0] =
        (ekg_xds_piece_t){.data = header, .len = (size_t)(q - header), .release = free, .owner = header};
    size_t total = pieces[0].len;
    if (p && p->whole_set) {
        const char *data;
        size_t len;
        ekg_resource_set_response_fields(p->cur, &data, &len);
        pieces[1] = (ekg_xds_piece_t){
            .data = data, .len = len, .release = release_set, .owner = ekg_resource_set_ref(p->cur)};
        total += len;
    } else if (p && p->n > MAX_PIECES) {
        /* gRPC keeps a stream's slice arrays at their largest size for the stream's life: many resources go
         * out as one copied slice rather than one slice each. */
        size_t len = 0;
        for (size_t i = 0; i < p->n; i++)
            len += ekg_resource_response_len(p->items[i]);
        char *buf = ekg_xmalloc(len), *q2 = buf;
        for (size_t i = 0; i < p->n; i++) {
            size_t flen;
            const char *field = ekg_resource_response_field(p->items[i], &flen);
            memcpy(q2, field, flen);
            q2 += flen;
        }
        pieces[1] = (ekg_xds_piece_t){.data = buf, .len = len, .release = free, .owner = buf};
        npieces = 2;
        total += len;
    } else if (p) {
        for (size_t i = 0; i < p->n; i++) {
            size_t len;
            const char *data = ekg_resource_response_field(p->items[i], &len);
            ekg_resource_t *r = ekg_resource_ref((ekg_resource_t *)p->items[i]);
            pieces[1 + i] =
                (ekg_xds_piece_t){.data = data, .len = len, .release = ekg_xds_release_resource, .owner = r};
            total += len;
        }
    }
    *out = (ekg_xds_response_t){.pieces = pieces, .npieces = npieces, .total_len = total};
}

static void commit(ekg_xds_session_t *s, plan_t *p, const char *nonce)
{
    type_state_t *ts = p->ts;
    snprintf(ts->nonce, sizeof(ts->nonce), "%s", nonce);
    snprintf(ts->sent_version, sizeof(ts->sent_version), "%s", ekg_resource_set_version(p->cur));
    ts->responses++;
    ts->sent_time = ekg_clock_unix_s();
    ekg_metrics_xds_push(0, p->type);
    ts->pending = false;
    ekg_xds_list_clear(&ts->force);
    ts->force_all = false;
    if (ts->sent != p->cur) {
        ekg_resource_set_unref(ts->sent);
        ts->sent = ekg_resource_set_ref(p->cur);
    }
    (void)s;
}

bool ekg_xds_session_has_work(const ekg_xds_session_t *s)
{
    if (s->delta)
        return ekg_xds_delta_has_work(s);
    for (size_t i = 0; i < s->nunknown; i++)
        if (s->unknown[i].pending)
            return true;
    if (!s->snap)
        return false;
    for (int t = 0; t < NTYPES; t++) {
        const type_state_t *ts = &s->types[t];
        if (ts->requested && (ts->pending || ts->force.n || ts->force_all || ts->sent != s->cur[t]))
            return true;
    }
    return false;
}

/* Builds the response for a plan, records it as sent, and hands cluster-warming names to the EDS state. */
static void send_plan(ekg_xds_session_t *s, plan_t *p, name_list_t *warming, ekg_xds_response_t *out)
{
    char nonce[24];
    snprintf(nonce, sizeof(nonce), "%llu", ++s->next_nonce);
    build_response(ekg_resource_type_url(p->type), ekg_resource_set_version(p->cur), nonce, p, out);
    out->type = p->type;
    commit(s, p, nonce);
    ekg_debug("xds: sending node=%s peer=%s type=%s version=%s nonce=%s resources=%zu",
              ekg_xds_session_node_id(s), s->peer, ekg_xds_type_names[p->type], p->ts->sent_version, nonce,
              p->whole_set ? ekg_resource_set_size(p->cur) : p->n);
    if (p->type == EKG_RESOURCE_LOAD_ASSIGNMENT && p->ts->warm_on_request) {
        /* Sent after the Clusters: what warming waits for is on its way. */
        for (size_t i = 0; i < p->n; i++)
            ekg_xds_list_remove(&p->ts->warming, ekg_resource_name(p->items[i]));
        if (p->ts->warming.n == 0)
            p->ts->warm_on_request = false;
    }
    if (p->type == EKG_RESOURCE_CLUSTER && warming->n) {
        type_state_t *eds = &s->types[EKG_RESOURCE_LOAD_ASSIGNMENT];
        for (size_t i = 0; i < warming->n; i++)
            ekg_xds_list_add(&eds->warming, warming->names[i]);
        eds->warm_on_request = true;
    }
    free(p->items);
    p->items = NULL;
}

bool ekg_xds_session_next(ekg_xds_session_t *s, ekg_xds_response_t *out)
{
    if (s->delta)
        return ekg_xds_delta_next(s, out);
    for (size_t i = 0; i < s->nunknown; i++) {
        unknown_type_t *u = &s->unknown[i];
        if (!u->pending)
            continue;
        char nonce[24];
        snprintf(nonce, sizeof(nonce), "%llu", ++s->next_nonce);
        build_response(u->url, "", nonce, NULL, out);
        out->type = EKG_RESOURCE__COUNT;
        snprintf(u->nonce, sizeof(u->nonce), "%s", nonce);
        u->pending = false;
        return true;
    }
    /* Make before break: Clusters, load assignments, Listeners, routes; a removal-only Cluster update last.
     */
    bool ok = false;
    plan_t deferred = {0};
    bool have_deferred = false;
    name_list_t warming = {0};
    for (int t = 0; t < NTYPES; t++) {
        plan_t p;
        bool track = t == EKG_RESOURCE_CLUSTER && s->api == EKG_XDS_ADS;
        if (!evaluate(s, (ekg_resource_type_t)t, track ? &warming : NULL, &p)) {
            free(p.items);
            continue;
        }
        if (track && p.changed && !p.added_or_changed && !p.ts->pending && p.ts->force.n == 0 &&
            !p.ts->force_all) {
            deferred = p;
            have_deferred = true;
            continue;
        }
        send_plan(s, &p, &warming, out);
        ok = true;
        goto out;
    }
    if (have_deferred) {
        send_plan(s, &deferred, &warming, out);
        ok = true;
        have_deferred = false;
    }
out:
    if (have_deferred)
        free(deferred.items);
    ekg_xds_list_clear(&warming);
    return ok;
}

void ekg_xds_response_release(ekg_xds_response_t *r)
{
    for (size_t i = 0; i < r->npieces; i++)
        if (r->pieces[i].release)
            r->pieces[i].release(r->pieces[i].owner);
    free(r->pieces);
    *r = (ekg_xds_response_t){0};
}

/* --- operators' views --------------------------------------------------------------------------------------
 */

void ekg_xds_session_node(const ekg_xds_session_t *s, ekg_xds_node_t *out)
{
    if (!s->node_id) {
        *out = (ekg_xds_node_t){"", "", "", "", "", "", "", ""};
        return;
    }
    *out = (ekg_xds_node_t){
        s->node_id,  s->cluster, s->region, s->zone, s->sub_zone, s->user_agent_name, s->user_agent_version,
        s->node_name};
}

ekg_xds_api_t ekg_xds_session_api(const ekg_xds_session_t *s)
{
    return s->api;
}

const char *ekg_xds_session_peer(const ekg_xds_session_t *s)
{
    return s->peer;
}

/* Whether the client is still waiting for name: newly subscribed, or due again (cluster warming). */
static bool awaiting(const type_state_t *ts, const char *name)
{
    return ts->responses == 0 || ts->force_all || ekg_xds_list_has(&ts->force, name);
}

static void report_named(const type_state_t *ts, ekg_resource_type_t type, const char *name,
                         ekg_xds_resource_fn fn, void *ctx)
{
    const ekg_resource_t *r = ts->sent ? ekg_resource_set_find(ts->sent, name) : NULL;
    if (awaiting(ts, name))
        fn(ctx, name, EKG_XDS_RESOURCE_REQUESTED, NULL);
    else if (r)
        fn(ctx, name, EKG_XDS_RESOURCE_SENT, r);
    else
        fn(ctx, name,
           ekg_xds_is_full_state(type) ? EKG_XDS_RESOURCE_DOES_NOT_EXIST : EKG_XDS_RESOURCE_REQUESTED, NULL);
}

/* A delta client has every subscribed name of `sent` but the due ones (`force`); a due name it is waiting
 * for. */
static void delta_resources(const type_state_t *ts, ekg_resource_type_t type, ekg_xds_resource_fn fn,
                            void *ctx)
{
    bool all = ts->wildcard && type != EKG_RESOURCE_LISTENER;
    bool before = ts->responses == 0 || ts->initial_pending;
    if (all && ts->sent && !before) {
        for (size_t i = 0; i < ekg_resource_set_size(ts->sent); i++) {
            const ekg_resource_t *r = ekg_resource_set_at(ts->sent, i);
            bool due = ekg_xds_list_has(&ts->force, ekg_resource_name(r));
            fn(ctx, ekg_resource_name(r), due ? EKG_XDS_RESOURCE_REQUESTED : EKG_XDS_RESOURCE_SENT,
               due ? NULL : r);
        }
    }
    for (size_t i = 0; i < ts->subs.n; i++) {
        const char *name = ts->subs.names[i];
        const ekg_resource_t *r = ts->sent ? ekg_resource_set_find(ts->sent, name) : NULL;
        if (all && r && !before)
            continue; /* reported with the wildcard */
        if (before || ekg_xds_list_has(&ts->force, name))
            fn(ctx, name, EKG_XDS_RESOURCE_REQUESTED, NULL);
        else
            fn(ctx, name, r ? EKG_XDS_RESOURCE_SENT : EKG_XDS_RESOURCE_DOES_NOT_EXIST, r);
    }
}

void ekg_xds_session_resources(const ekg_xds_session_t *s, ekg_resource_type_t type, ekg_xds_resource_fn fn,
                               void *ctx)
{
    const type_state_t *ts = &s->types[type];
    if (!ts->requested)
        return;
    if (s->delta) {
        delta_resources(ts, type, fn, ctx);
        return;
    }
    bool all = ts->wildcard && type != EKG_RESOURCE_LISTENER;
    if (all && ts->sent && ts->responses > 0) {
        for (size_t i = 0; i < ekg_resource_set_size(ts->sent); i++) {
            const ekg_resource_t *r = ekg_resource_set_at(ts->sent, i);
            fn(ctx, ekg_resource_name(r), EKG_XDS_RESOURCE_SENT, r);
        }
    }
    for (size_t i = 0; i < names_count(ts->names); i++) {
        const char *name = ts->names->v[i];
        if (all && ts->sent && ts->responses > 0 && ekg_resource_set_find(ts->sent, name))
            continue; /* reported with the wildcard */
        report_named(ts, type, name, fn, ctx);
    }
}

ekg_xds_session_t *ekg_xds_session_copy(const ekg_xds_session_t *s)
{
    ekg_xds_session_t *c = ekg_xds_session_new(s->api, s->peer);
    c->delta = s->delta;
    if (s->node_id) {
        const char *from[8] = {s->node_id,
                               s->cluster,
                               s->region,
                               s->zone,
                               s->sub_zone,
                               s->user_agent_name,
                               s->user_agent_version,
                               s->node_name};
        char **to[8] = {&c->node_id,
                        &c->cluster,
                        &c->region,
                        &c->zone,
                        &c->sub_zone,
                        &c->user_agent_name,
                        &c->user_agent_version,
                        &c->node_name};
        for (int i = 0; i < 8; i++)
            *to[i] = ekg_xstrdup(from[i]);
    }
    for (int t = 0; t < NTYPES; t++) {
        const type_state_t *from = &s->types[t];
        type_state_t *to = &c->types[t];
        /* Scalars and fixed buffers by value; then what is owned, by reference or copy. */
        *to = *from;
        to->names = names_ref(from->names);
        to->sent = from->sent ? ekg_resource_set_ref(from->sent) : NULL;
        to->force = (name_list_t){0};
        to->warming = (name_list_t){0};
        to->subs = (name_list_t){0};
        to->initial = NULL;
        to->ninitial = 0;
        for (size_t i = 0; i < from->subs.n; i++)
            ekg_xds_list_add(&to->subs, from->subs.names[i]);
        to->nack_message = from->nack_message ? ekg_xstrdup(from->nack_message) : NULL;
        for (size_t i = 0; i < from->force.n; i++)
            ekg_xds_list_add(&to->force, from->force.names[i]);
    }
    c->next_nonce = s->next_nonce;
    return c;
}
