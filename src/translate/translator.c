/*
 * src/translate/translator.c: the incremental translator (include/ekglue/translate.h).
 *
 * State: one entry per Service name (namespace/name) holding the Service (if known yet), the EndpointSlices
 * that name it in kubernetes.io/service-name, and the resources last made from them. Maps index entries by
 * Service, slices by their own name, and Nodes by name (with the locality the rules give them).
 *
 * A change marks entries dirty: a Service or slice its own entry; a Node whose locality changed every entry
 * with an endpoint on it (found by one pass over the slices at build time, so that loading 1,000 Nodes costs
 * one pass, not 1,000). ekg_translator_build() re-translates only dirty entries. Per type it keeps `cur`, all
 * resources sorted by name: when a dirty entry's resource names are unchanged, changed resources are swapped
 * in place by binary search (the common case: endpoints moved); when names appear or vanish, `cur` is rebuilt
 * and sorted. A resource whose bytes did not change keeps its old object, so unchanged content keeps its
 * identity and a set whose content did not change is returned as the same set.
 *
 * Validation: every Cluster, ClusterLoadAssignment and Listener built is checked against Envoy's own
 * validation rules (ekg_proto_validate; Clusters in cluster.c before they are encoded, the hand-encoded
 * others decoded again here). One that breaks a rule is not served: the Service's other ports are, and a
 * warning and ekglue_resources_invalid_total say which and why (drop_invalid). A cluster goes with its
 * assignment and listeners, an assignment with its cluster.
 *
 * Memory: allocation failure aborts (ekglue/mem.h), so adding and removing objects cannot fail; only a
 * build can, when a Service does not translate (its previous resources are then kept).
 *
 * Thread: the translator's owner (the watcher thread; the main thread in file mode and `ekglue dump`). Sets
 * it returns are immutable and shared with other threads.
 */
#include <stdlib.h>
#include <string.h>

#include "ekglue/clock.h"
#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/metrics.h"
#include "ekglue/proto.h"

#include "common/map.h"
#include "translate/translate_internal.h"

/* The translator makes Clusters, ClusterLoadAssignments and proxyless-gRPC Listeners (the first three types).
 */
#define NTYPES (EKG_RESOURCE_LISTENER + 1)

typedef struct slice_ref slice_ref_t;

typedef struct entry {
    char *key;            /* "namespace/name", owned */
    ekg_service_t *svc;   /* owned; NULL until the Service is known */
    slice_ref_t **slices; /* the slices naming this Service; refs owned by the slice map */
    size_t nslices, capslices;
    ekg_resource_t **res[NTYPES]; /* owned references, sorted by name */
    size_t nres[NTYPES];
    ekg_zone_plan_t **plans; /* owned references: the zone plans of its assignments, sorted by name */
    size_t nplans;
    char *warned_td; /* owned: the unknown trafficDistribution last warned about; NULL */
    bool dirty;
} entry_t;

struct slice_ref {
    char *key;                   /* "namespace/name" of the slice, owned */
    ekg_endpoint_slice_t *slice; /* owned */
    entry_t *owner;
};

typedef struct node_entry {
    ekg_node_t *node;        /* owned */
    ekg_locality_t locality; /* borrowed from node and config */
} node_entry_t;

struct ekg_translator {
    const ekg_config_t *cfg; /* borrowed */
    ekg_map_t entries;       /* key -> entry_t*, owned */
    ekg_map_t slices;        /* key -> slice_ref_t*, owned */
    ekg_map_t nodes;         /* name -> node_entry_t*, owned */
    entry_t **dirty;         /* entries marked dirty (no duplicates: entry->dirty) */
    size_t ndirty, capdirty;
    ekg_map_t changed_nodes;      /* node names whose locality changed since the last build; keys owned */
    bool all_dirty;               /* config changed: redo everything */
    ekg_resource_t **cur[NTYPES]; /* borrowed from entries, sorted by name */
    size_t ncur[NTYPES], capcur[NTYPES];
    bool rebuild_cur[NTYPES];
    bool content_changed[NTYPES];
    ekg_resource_set_t *set[NTYPES]; /* owned reference to the last built set */
    ekg_translate_stats_t stats;
    ekg_map_t shared_clusters; /* config key -> shared_cluster_t*, owned; valid for the current config */
    const char **node_names;   /* sorted cache for ekg_translator_node_at; NULL when stale */
    size_t nnode_names;
    ekg_zone_table_t *zones;            /* owned reference: every entry's plans; NULL when there are none */
    bool zones_dirty;                   /* a plan changed since zones was made */
    ekg_violation_t violation;          /* scratch: what the last resource found invalid breaks */
    const upb_MessageDef *defs[NTYPES]; /* borrowed from the pool: each type's, looked up on first use */
};

static void clear_shared_clusters(ekg_translator_t *t);

static char *make_key(const char *ns, const char *name)
{
    size_t a = strlen(ns), b = strlen(name);
    char *k = ekg_xmalloc(a + b + 2);
    memcpy(k, ns, a);
    k[a] = '/';
    memcpy(k + a + 1, name, b + 1);
    return k;
}

static void mark_dirty(ekg_translator_t *t, entry_t *e)
{
    if (e->dirty)
        return;
    EKG_ARRAY_PUSH(t->dirty, t->ndirty, t->capdirty, e);
    e->dirty = true;
}

/* The entry of Service ns/name, created when absent. */
static entry_t *get_entry(ekg_translator_t *t, const char *ns, const char *name)
{
    char *key = make_key(ns, name);
    entry_t *e = ekg_map_get(&t->entries, key);
    if (e) {
        free(key);
        return e;
    }
    e = ekg_xcalloc(1, sizeof(*e));
    e->key = key;
    ekg_map_put(&t->entries, key, e, NULL);
    return e;
}

static void release_resources(entry_t *e)
{
    for (int ty = 0; ty < NTYPES; ty++) {
        for (size_t i = 0; i < e->nres[ty]; i++)
            ekg_resource_unref(e->res[ty][i]);
        free(e->res[ty]);
        e->res[ty] = NULL;
        e->nres[ty] = 0;
    }
}

static void release_plans(entry_t *e)
{
    for (size_t i = 0; i < e->nplans; i++)
        ekg_zone_plan_unref(e->plans[i]);
    free(e->plans);
    e->plans = NULL;
    e->nplans = 0;
}

static void free_entry(entry_t *e)
{
    release_resources(e);
    release_plans(e);
    free(e->warned_td);
    ekg_service_free(e->svc);
    free(e->slices);
    free(e->key);
    free(e);
}

ekg_translator_t *ekg_translator_new(const ekg_config_t *cfg)
{
    ekg_translator_t *t = ekg_xcalloc(1, sizeof(*t));
    t->cfg = cfg;
    return t;
}

void ekg_translator_free(ekg_translator_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->slices.cap; i++) {
        slice_ref_t *r = t->slices.slots[i].value;
        if (t->slices.slots[i].key) {
            ekg_endpoint_slice_free(r->slice);
            free(r->key);
            free(r);
        }
    }
    for (size_t i = 0; i < t->entries.cap; i++)
        if (t->entries.slots[i].key)
            free_entry(t->entries.slots[i].value);
    for (size_t i = 0; i < t->nodes.cap; i++)
        if (t->nodes.slots[i].key) {
            node_entry_t *n = t->nodes.slots[i].value;
            ekg_node_free(n->node);
            free(n);
        }
    for (size_t i = 0; i < t->changed_nodes.cap; i++)
        if (t->changed_nodes.slots[i].key)
            free((char *)t->changed_nodes.slots[i].key);
    ekg_map_clear(&t->entries);
    ekg_map_clear(&t->slices);
    ekg_map_clear(&t->nodes);
    ekg_map_clear(&t->changed_nodes);
    for (int ty = 0; ty < NTYPES; ty++) {
        free(t->cur[ty]);
        ekg_resource_set_unref(t->set[ty]);
    }
    clear_shared_clusters(t);
    ekg_zone_table_unref(t->zones);
    free(t->dirty);
    free(t->node_names);
    free(t);
}

static void clear_shared_clusters(ekg_translator_t *t)
{
    for (size_t i = 0; i < t->shared_clusters.cap; i++)
        if (t->shared_clusters.slots[i].key) {
            shared_cluster_t *sc = t->shared_clusters.slots[i].value;
            free(sc->key);
            free(sc);
        }
    ekg_map_clear(&t->shared_clusters);
}

void ekg_translator_set_config(ekg_translator_t *t, const ekg_config_t *cfg)
{
    t->cfg = cfg;
    clear_shared_clusters(t);
    t->all_dirty = true;
    /* Node localities depend on the rules. */
    for (size_t i = 0; i < t->nodes.cap; i++)
        if (t->nodes.slots[i].key) {
            node_entry_t *n = t->nodes.slots[i].value;
            ekg_node_locality(cfg, n->node, &n->locality);
        }
}

/* --- Services ----------------------------------------------------------------------------------------------
 */

void ekg_translator_put_service(ekg_translator_t *t, ekg_service_t *svc)
{
    entry_t *e = get_entry(t, svc->meta.namespace_, svc->meta.name);
    mark_dirty(t, e);
    ekg_service_free(e->svc);
    e->svc = svc;
}

void ekg_translator_remove_service(ekg_translator_t *t, const char *ns, const char *name)
{
    char *key = make_key(ns, name);
    entry_t *e = ekg_map_get(&t->entries, key);
    free(key);
    if (!e || !e->svc)
        return;
    mark_dirty(t, e);
    ekg_service_free(e->svc);
    e->svc = NULL;
}

/* --- EndpointSlices ----------------------------------------------------------------------------------------
 */

static void detach_slice(ekg_translator_t *t, slice_ref_t *r)
{
    entry_t *e = r->owner;
    for (size_t i = 0; i < e->nslices; i++)
        if (e->slices[i] == r) {
            e->slices[i] = e->slices[--e->nslices];
            break;
        }
    mark_dirty(t, e);
    r->owner = NULL;
}

void ekg_translator_remove_slice(ekg_translator_t *t, const char *ns, const char *name)
{
    char *key = make_key(ns, name);
    slice_ref_t *r = ekg_map_remove(&t->slices, key);
    free(key);
    if (!r)
        return;
    detach_slice(t, r);
    ekg_endpoint_slice_free(r->slice);
    free(r->key);
    free(r);
}

static int cmp_slice_refs(const void *a, const void *b)
{
    return strcmp((*(slice_ref_t *const *)a)->key, (*(slice_ref_t *const *)b)->key);
}

void ekg_translator_put_slice(ekg_translator_t *t, ekg_endpoint_slice_t *slice)
{
    if (!slice->service_name) {
        ekg_debug("EndpointSlice %s/%s has no kubernetes.io/service-name label; ignored",
                  slice->meta.namespace_, slice->meta.name);
        ekg_translator_remove_slice(t, slice->meta.namespace_, slice->meta.name);
        ekg_endpoint_slice_free(slice);
        return;
    }
    if (slice->address_type == EKG_ADDRESS_FQDN)
        ekg_info(
            "EndpointSlice %s/%s has addressType FQDN; its endpoints are skipped (EDS needs IP addresses)",
            slice->meta.namespace_, slice->meta.name);
    char *key = make_key(slice->meta.namespace_, slice->meta.name);
    entry_t *e = get_entry(t, slice->meta.namespace_, slice->service_name);
    slice_ref_t *r = ekg_map_get(&t->slices, key);
    if (r) {
        free(key);
        if (r->owner != e)
            detach_slice(t, r);
        ekg_endpoint_slice_free(r->slice);
        r->slice = slice;
    } else {
        r = ekg_xcalloc(1, sizeof(*r));
        r->key = key;
        r->slice = slice;
        ekg_map_put(&t->slices, key, r, NULL);
    }
    if (r->owner != e) {
        EKG_ARRAY_PUSH(e->slices, e->nslices, e->capslices, r);
        r->owner = e;
        /* Slices in name order, so that the output never depends on arrival order. */
        qsort(e->slices, e->nslices, sizeof(*e->slices), cmp_slice_refs);
    }
    mark_dirty(t, e);
}

/* --- Nodes -------------------------------------------------------------------------------------------------
 */

static void node_changed(ekg_translator_t *t, const char *name)
{
    free(t->node_names);
    t->node_names = NULL;
    if (t->all_dirty || ekg_map_get(&t->changed_nodes, name))
        return;
    char *copy = ekg_xstrdup(name);
    ekg_map_put(&t->changed_nodes, copy, copy, NULL);
}

void ekg_translator_put_node(ekg_translator_t *t, ekg_node_t *node)
{
    node_entry_t *n = ekg_map_get(&t->nodes, node->meta.name);
    ekg_locality_t loc;
    ekg_node_locality(t->cfg, node, &loc);
    if (n) {
        bool changed = !ekg_locality_equal(&n->locality, &loc);
        ekg_node_t *old = n->node;
        /* The map's key points into the old node: re-key (an existing key, so no allocation) before freeing
         * it. */
        ekg_map_put(&t->nodes, node->meta.name, n, NULL);
        n->node = node;
        n->locality = loc;
        ekg_node_free(old);
        if (changed) {
            node_changed(t, node->meta.name);
        } else {
            free(t->node_names); /* the sorted-name cache pointed into the old node too */
            t->node_names = NULL;
        }
        return;
    }
    n = ekg_xcalloc(1, sizeof(*n));
    n->node = node;
    n->locality = loc;
    ekg_map_put(&t->nodes, node->meta.name, n, NULL);
    node_changed(t, node->meta.name);
}

void ekg_translator_remove_node(ekg_translator_t *t, const char *name)
{
    node_entry_t *n = ekg_map_remove(&t->nodes, name);
    if (!n)
        return;
    node_changed(t, name);
    ekg_node_free(n->node);
    free(n);
}

static bool lookup_node_locality(void *ctx, const char *name, ekg_locality_t *out)
{
    ekg_translator_t *t = ctx;
    node_entry_t *n = ekg_map_get(&t->nodes, name);
    if (!n)
        return false;
    *out = n->locality;
    return true;
}

static int cmp_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t ekg_translator_node_count(const ekg_translator_t *t)
{
    return t->nodes.len;
}

const char *ekg_translator_node_at(const ekg_translator_t *t, size_t i, ekg_locality_t *locality)
{
    ekg_translator_t *mt = (ekg_translator_t *)t; /* the sorted name cache is logically const */
    if (!mt->node_names) {
        mt->node_names = ekg_xmalloc(t->nodes.len * sizeof(char *));
        size_t k = 0;
        for (size_t s = 0; s < t->nodes.cap; s++)
            if (t->nodes.slots[s].key)
                mt->node_names[k++] = t->nodes.slots[s].key;
        qsort(mt->node_names, k, sizeof(char *), cmp_strings);
        mt->nnode_names = k;
    }
    if (i >= mt->nnode_names)
        return NULL;
    if (locality)
        lookup_node_locality(mt, mt->node_names[i], locality);
    return mt->node_names[i];
}

void ekg_translator_put_objects(ekg_translator_t *t, ekg_objects_t *objs)
{
    /* Nodes first: their localities are then known when the first build runs. */
    for (size_t i = 0; i < objs->nnodes; i++)
        ekg_translator_put_node(t, objs->nodes[i]);
    for (size_t i = 0; i < objs->nservices; i++)
        ekg_translator_put_service(t, objs->services[i]);
    for (size_t i = 0; i < objs->nslices; i++)
        ekg_translator_put_slice(t, objs->slices[i]);
    objs->nnodes = objs->nservices = objs->nslices = 0;
}

/* --- Building ----------------------------------------------------------------------------------------------
 */

static int cmp_resources(const void *a, const void *b)
{
    return strcmp(ekg_resource_name(*(ekg_resource_t *const *)a),
                  ekg_resource_name(*(ekg_resource_t *const *)b));
}

static uint64_t now_ns(void)
{
    return (uint64_t)(ekg_clock_s() * 1e9);
}

ekg_resource_set_t *ekg_translator_set(const ekg_translator_t *t, ekg_resource_type_t type)
{
    return type < NTYPES && t->set[type] ? ekg_resource_set_ref(t->set[type]) : NULL;
}

void ekg_translator_last_stats(const ekg_translator_t *t, ekg_translate_stats_t *out)
{
    *out = t->stats;
}

typedef struct out_list {
    ekg_resource_t **items;
    size_t n, cap;
} out_list_t;

static ekg_err_t add_resource(out_list_t *list, ekg_resource_type_t type, const char *name, const char *bytes,
                              size_t len)
{
    ekg_resource_t *r = NULL;
    ekg_err_t err = ekg_resource_new(type, name, bytes, len, &r);
    if (err == EKG_OK)
        EKG_ARRAY_PUSH(list->items, list->n, list->cap, r);
    return err;
}

typedef struct plan_list {
    ekg_zone_plan_t **items;
    size_t n, cap;
} plan_list_t;

static int cmp_plan_names(const void *a, const void *b)
{
    return strcmp(ekg_zone_plan_name(*(ekg_zone_plan_t *const *)a),
                  ekg_zone_plan_name(*(ekg_zone_plan_t *const *)b));
}

static const char *const TYPE_NAMES[NTYPES] = {"cluster", "load assignment", "listener"};

/*
 * A resource that breaks one of Envoy's validation rules (t->violation says which) is not served: a warning
 * naming the Service, the resource and the rule, and the count (docs/config.md, "Validation"). `also`
 * names what goes with it ("" when nothing).
 */
static void drop_invalid(ekg_translator_t *t, const entry_t *e, ekg_resource_type_t type, const char *name,
                         const char *also)
{
    const ekg_violation_t *v = &t->violation;
    ekg_warn(
        "Service %s: %s %s is not served%s: it breaks one of Envoy's validation rules (Envoy would reject "
        "it): %s%s%s",
        e->key, TYPE_NAMES[type], name, also, v->path, v->path[0] ? ": " : "", v->rule);
    ekg_metrics_resource_invalid((int)type);
    t->stats.resources_invalid++;
}

/* Checks the encoded resource buf[0..len) of `type` (decoded again, as a client would); false when it breaks
 * a rule (t->violation says which). */
static bool valid_bytes(ekg_translator_t *t, ekg_resource_type_t type, const char *buf, size_t len)
{
    static const char *const names[NTYPES] = {EKG_TYPE_CLUSTER, EKG_TYPE_LOAD_ASSIGNMENT, EKG_TYPE_LISTENER};
    if (!t->defs[type]) /* the pool outlives every translator; looked up once */
        t->defs[type] = ekg_proto_message(names[type]);
    uint64_t start = now_ns();
    bool ok = ekg_proto_validate_wire(buf, len, t->defs[type], &t->violation) == EKG_OK;
    t->stats.validate_ns += now_ns() - start;
    return ok;
}

/*
 * The ClusterLoadAssignment of one EDS cluster, and its zone plan when the rule asks for one. *invalid (with
 * t->violation) when it breaks one of Envoy's rules: then nothing is added.
 */
static ekg_err_t translate_assignment(ekg_translator_t *t, const ekg_service_input_t *in,
                                      const ekg_service_port_t *port, const char *name,
                                      const ekg_zone_rule_t *rule, out_list_t *out, plan_list_t *plans,
                                      bool *invalid)
{
    ekg_candidate_t *cands = NULL;
    size_t n = 0;
    char *cla = NULL;
    size_t cla_len = 0;
    bool udp = port->protocol == EKG_PROTOCOL_UDP;
    uint32_t overprovisioning = ekg_config_overprovisioning_factor(in->cfg);
    uint64_t start = now_ns();
    *invalid = false;
    ekg_err_t err = ekg_gather_candidates(in, port, &cands, &n);
    if (err == EKG_OK)
        err = ekg_encode_cla(name, cands, NULL, n, udp, overprovisioning, &cla, &cla_len);
    t->stats.encode_ns += now_ns() - start;
    if (err == EKG_OK && !valid_bytes(t, EKG_RESOURCE_LOAD_ASSIGNMENT, cla, cla_len)) {
        *invalid = true;
        goto out;
    }
    if (err == EKG_OK)
        err = add_resource(out, EKG_RESOURCE_LOAD_ASSIGNMENT, name, cla, cla_len);
    if (err == EKG_OK && (rule->active || rule->reason[0])) {
        ekg_zone_plan_t *p = ekg_zone_plan_new(name, cands, n, udp, overprovisioning, rule);
        EKG_ARRAY_PUSH(plans->items, plans->n, plans->cap, p);
    }
out:
    free(cla);
    free(cands);
    return err;
}

/* Translates one entry into fresh resources per type, sorted by name, and its zone plans. On error nothing
 * is returned. */
static ekg_err_t translate_entry(ekg_translator_t *t, entry_t *e, out_list_t out[NTYPES], plan_list_t *plans)
{
    ekg_err_t err = EKG_OK;
    upb_Arena *arena = NULL;
    ekg_endpoint_slice_t **slices = NULL;
    if (!e->svc)
        return EKG_OK;
    slices = ekg_xmalloc(e->nslices * sizeof(*slices));
    for (size_t i = 0; i < e->nslices; i++)
        slices[i] = e->slices[i]->slice;
    ekg_service_input_t in = {
        .cfg = t->cfg,
        .svc = e->svc,
        .slices = slices,
        .nslices = e->nslices,
        .node_locality = lookup_node_locality,
        .node_ctx = t,
        .shared_clusters = &t->shared_clusters,
        .validate_ns = &t->stats.validate_ns,
    };
    ekg_zone_rule_t rule;
    ekg_zone_rule(&in, &e->warned_td, &rule);
    for (size_t p = 0; p < e->svc->nports && err == EKG_OK; p++) {
        const ekg_service_port_t *port = &e->svc->ports[p];
        char name[768];
        if (!ekg_cluster_name(e->svc, port, name, sizeof(name))) {
            ekg_debug("Service %s port %d: SCTP is not supported by Envoy; skipped", e->key, (int)port->port);
            continue;
        }
        /* One arena per Service: everything made for its ports dies right after their encoding. */
        if (!arena)
            arena = ekg_proto_arena_new();
        char *cluster = NULL;
        size_t cluster_len = 0;
        bool is_eds = false;
        uint64_t start = now_ns(), validate_before = t->stats.validate_ns;
        err = ekg_encode_cluster(&in, port, name, arena, &cluster, &cluster_len, &is_eds, &t->violation);
        t->stats.encode_ns += now_ns() - start - (t->stats.validate_ns - validate_before);
        if (err != EKG_OK)
            break;
        if (!cluster) {
            if (t->violation.rule[0])
                drop_invalid(t, e, EKG_RESOURCE_CLUSTER, name, " (nor its load assignment and listeners)");
            continue; /* suppressed or invalid */
        }
        if (is_eds) {
            bool invalid = false;
            err = translate_assignment(t, &in, port, name, &rule, &out[EKG_RESOURCE_LOAD_ASSIGNMENT], plans,
                                       &invalid);
            if (err != EKG_OK)
                break;
            if (invalid) { /* an EDS cluster without its assignment would only wait for it */
                drop_invalid(t, e, EKG_RESOURCE_LOAD_ASSIGNMENT, name, " (nor its cluster and listeners)");
                continue;
            }
        }
        err = add_resource(&out[EKG_RESOURCE_CLUSTER], EKG_RESOURCE_CLUSTER, name, cluster, cluster_len);
        char lnames[2][600];
        size_t nl = ekg_listener_names(e->svc, port, lnames);
        for (size_t i = 0; i < nl && err == EKG_OK; i++) {
            char *bytes = NULL;
            size_t len = 0;
            err = ekg_listener_encode(lnames[i], name, &bytes, &len);
            if (err == EKG_OK && !valid_bytes(t, EKG_RESOURCE_LISTENER, bytes, len))
                drop_invalid(t, e, EKG_RESOURCE_LISTENER, lnames[i], "");
            else if (err == EKG_OK)
                err = add_resource(&out[EKG_RESOURCE_LISTENER], EKG_RESOURCE_LISTENER, lnames[i], bytes, len);
            free(bytes);
        }
    }
    if (arena)
        upb_Arena_Free(arena);
    free(slices);
    if (err != EKG_OK) {
        for (int ty = 0; ty < NTYPES; ty++) {
            for (size_t i = 0; i < out[ty].n; i++)
                ekg_resource_unref(out[ty].items[i]);
            out[ty].n = 0;
        }
        for (size_t i = 0; i < plans->n; i++)
            ekg_zone_plan_unref(plans->items[i]);
        plans->n = 0;
        return err;
    }
    if (plans->n > 1)
        qsort(plans->items, plans->n, sizeof(*plans->items), cmp_plan_names);
    for (int ty = 0; ty < NTYPES; ty++) {
        if (out[ty].n < 2)
            continue;
        qsort(out[ty].items, out[ty].n, sizeof(ekg_resource_t *), cmp_resources);
        /* Never two resources with one name: a Service with two ports of the same number (accepted from a
         * file, not by Kubernetes) keeps the first. */
        size_t w = 1;
        for (size_t r = 1; r < out[ty].n; r++) {
            if (strcmp(ekg_resource_name(out[ty].items[r]), ekg_resource_name(out[ty].items[w - 1])) == 0) {
                ekg_warn("Service %s: two ports give the resource %s; keeping one", e->key,
                         ekg_resource_name(out[ty].items[r]));
                ekg_resource_unref(out[ty].items[r]);
                continue;
            }
            out[ty].items[w++] = out[ty].items[r];
        }
        out[ty].n = w;
    }
    return EKG_OK;
}

static ekg_resource_t **find_cur(ekg_translator_t *t, int ty, const char *name)
{
    size_t lo = 0, hi = t->ncur[ty];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ekg_resource_name(t->cur[ty][mid]), name);
        if (c == 0)
            return &t->cur[ty][mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Installs an entry's new resources of one type, keeping old objects whose bytes did not change. */
static void install(ekg_translator_t *t, entry_t *e, int ty, out_list_t *fresh)
{
    bool same_names = fresh->n == e->nres[ty];
    for (size_t i = 0; same_names && i < fresh->n; i++)
        same_names = strcmp(ekg_resource_name(fresh->items[i]), ekg_resource_name(e->res[ty][i])) == 0;
    if (same_names) {
        for (size_t i = 0; i < fresh->n; i++) {
            if (ekg_resource_hash(fresh->items[i]) == ekg_resource_hash(e->res[ty][i])) {
                ekg_resource_unref(fresh->items[i]);
                fresh->items[i] = e->res[ty][i]; /* keep the old object (and its reference) */
                continue;
            }
            t->content_changed[ty] = true;
            if (!t->rebuild_cur[ty]) {
                ekg_resource_t **slot = find_cur(t, ty, ekg_resource_name(fresh->items[i]));
                if (slot)
                    *slot = fresh->items[i];
                else
                    t->rebuild_cur[ty] = true;
            }
            ekg_resource_unref(e->res[ty][i]);
        }
    } else {
        t->rebuild_cur[ty] = true;
        for (size_t i = 0; i < e->nres[ty]; i++)
            ekg_resource_unref(e->res[ty][i]);
    }
    free(e->res[ty]);
    e->res[ty] = fresh->items;
    e->nres[ty] = fresh->n;
    *fresh = (out_list_t){0};
}

/* Installs an entry's new zone plans, keeping old objects whose content did not change (their variants too).
 */
static void install_plans(ekg_translator_t *t, entry_t *e, plan_list_t *fresh)
{
    bool same = fresh->n == e->nplans;
    for (size_t i = 0; i < fresh->n; i++) {
        ekg_zone_plan_t *old = i < e->nplans ? e->plans[i] : NULL;
        if (old && strcmp(ekg_zone_plan_name(old), ekg_zone_plan_name(fresh->items[i])) == 0 &&
            ekg_zone_plan_hash(old) == ekg_zone_plan_hash(fresh->items[i])) {
            ekg_zone_plan_unref(fresh->items[i]);
            fresh->items[i] = ekg_zone_plan_ref(old);
        } else {
            same = false;
        }
    }
    if (!same)
        t->zones_dirty = true;
    release_plans(e);
    e->plans = fresh->items;
    e->nplans = fresh->n;
    *fresh = (plan_list_t){0};
}

/* Remakes the zone table from every entry's plans (after a build that changed one). */
static void rebuild_zones(ekg_translator_t *t)
{
    ekg_zone_plan_t **all = NULL;
    size_t n = 0, cap = 0;
    for (size_t s = 0; s < t->entries.cap; s++)
        if (t->entries.slots[s].key) {
            const entry_t *e = t->entries.slots[s].value;
            for (size_t i = 0; i < e->nplans; i++)
                EKG_ARRAY_PUSH(all, n, cap, e->plans[i]);
        }
    ekg_zone_table_unref(t->zones);
    t->zones = n ? ekg_zone_table_new(all, n) : NULL;
    free(all);
    t->zones_dirty = false;
}

/* A resource of cur and the entry (Service) that produced it, for rebuild_cur's collision check. */
typedef struct owned_res {
    ekg_resource_t *res; /* borrowed from owner */
    const entry_t *owner;
} owned_res_t;

static int cmp_owned(const void *a, const void *b)
{
    const owned_res_t *x = a, *y = b;
    int c = strcmp(ekg_resource_name(x->res), ekg_resource_name(y->res));
    return c ? c : strcmp(x->owner->key, y->owner->key);
}

/*
 * Rebuilds cur[ty] from every entry's resources, sorted by name. Two Services can produce the same name
 * (names from files may hold ':', which Kubernetes forbids, and "ns:svc:80" for a port named "80" equals the
 * unnamed port 80's): then neither is served under that name, with a warning naming both, and everything else
 * is. Serving one of them would send the other's traffic to it; refusing the whole set would stop every
 * update.
 */
static void rebuild_cur(ekg_translator_t *t, int ty)
{
    size_t total = 0;
    for (size_t s = 0; s < t->entries.cap; s++)
        if (t->entries.slots[s].key)
            total += ((entry_t *)t->entries.slots[s].value)->nres[ty];
    owned_res_t *all = ekg_xcalloc(total ? total : 1, sizeof(*all));
    size_t k = 0;
    for (size_t s = 0; s < t->entries.cap; s++)
        if (t->entries.slots[s].key) {
            const entry_t *e = t->entries.slots[s].value;
            for (size_t i = 0; i < e->nres[ty]; i++)
                all[k++] = (owned_res_t){e->res[ty][i], e};
        }
    if (k > 1)
        qsort(all, k, sizeof(*all), cmp_owned);
    void *cur = t->cur[ty];
    ekg_array_reserve(&cur, &t->capcur[ty], total, sizeof(ekg_resource_t *));
    t->cur[ty] = cur;
    size_t n = 0;
    for (size_t i = 0; i < k;) {
        size_t j = i + 1;
        while (j < k && strcmp(ekg_resource_name(all[i].res), ekg_resource_name(all[j].res)) == 0)
            j++;
        if (j - i == 1)
            t->cur[ty][n++] = all[i].res;
        else
            ekg_warn(
                "%s name %s is produced by Service %s and by Service %s%s: neither is served under it until "
                "they differ",
                TYPE_NAMES[ty], ekg_resource_name(all[i].res), all[i].owner->key, all[i + 1].owner->key,
                j - i > 2 ? " (and more)" : "");
        i = j;
    }
    free(all);
    t->ncur[ty] = n;
    t->rebuild_cur[ty] = false;
}

/* Marks dirty every entry with an endpoint on a Node whose locality changed. */
static void apply_node_changes(ekg_translator_t *t)
{
    if (t->changed_nodes.len == 0)
        return;
    if (!t->all_dirty) {
        for (size_t s = 0; s < t->slices.cap; s++) {
            slice_ref_t *r = t->slices.slots[s].value;
            if (!t->slices.slots[s].key || r->owner->dirty)
                continue;
            for (size_t i = 0; i < r->slice->nendpoints; i++) {
                const char *node = r->slice->endpoints[i].node_name;
                if (node && ekg_map_get(&t->changed_nodes, node)) {
                    mark_dirty(t, r->owner);
                    break;
                }
            }
        }
    }
    for (size_t i = 0; i < t->changed_nodes.cap; i++)
        if (t->changed_nodes.slots[i].key)
            free((char *)t->changed_nodes.slots[i].key);
    ekg_map_clear(&t->changed_nodes);
}

ekg_err_t ekg_translator_build(ekg_translator_t *t, ekg_resource_set_t **clusters,
                               ekg_resource_set_t **load_assignments)
{
    uint64_t start = now_ns();
    t->stats = (ekg_translate_stats_t){0};
    apply_node_changes(t);
    if (t->all_dirty) {
        for (size_t s = 0; s < t->entries.cap; s++)
            if (t->entries.slots[s].key)
                mark_dirty(t, t->entries.slots[s].value);
        t->all_dirty = false;
    }

    /* Re-translate dirty entries. An entry that fails keeps its previous resources (and stays dirty). */
    ekg_err_t first_err = EKG_OK;
    size_t kept = 0;
    for (size_t i = 0; i < t->ndirty; i++) {
        entry_t *e = t->dirty[i];
        out_list_t fresh[NTYPES] = {{0}};
        plan_list_t plans = {0};
        ekg_err_t err = translate_entry(t, e, fresh, &plans);
        if (err != EKG_OK) {
            for (int ty = 0; ty < NTYPES; ty++)
                free(fresh[ty].items);
            free(plans.items);
            ekg_warn("Service %s: translation failed (%s); keeping its previous resources", e->key,
                     ekg_strerror(err));
            first_err = first_err ? first_err : err;
            t->dirty[kept++] = e;
            continue;
        }
        for (int ty = 0; ty < NTYPES; ty++)
            install(t, e, ty, &fresh[ty]);
        install_plans(t, e, &plans);
        e->dirty = false;
        t->stats.services_translated++;
        if (!e->svc && e->nslices == 0) {
            ekg_map_remove(&t->entries, e->key);
            free_entry(e);
        }
    }
    t->ndirty = kept;
    if (t->zones_dirty)
        rebuild_zones(t);

    for (int ty = 0; ty < NTYPES; ty++) {
        if (t->rebuild_cur[ty]) {
            rebuild_cur(t, ty);
            t->content_changed[ty] = true;
        }
        if (t->content_changed[ty] || !t->set[ty]) {
            ekg_resource_set_t *set = NULL;
            ekg_err_t err =
                ekg_resource_set_new((ekg_resource_type_t)ty, t->cur[ty], t->ncur[ty], t->set[ty], &set);
            if (err != EKG_OK)
                return err;
            /* Same content (e.g. a change and its revert between builds): keep the old set object. */
            if (t->set[ty] &&
                strcmp(ekg_resource_set_version(set), ekg_resource_set_version(t->set[ty])) == 0) {
                ekg_resource_set_unref(set);
            } else {
                ekg_resource_set_unref(t->set[ty]);
                t->set[ty] = set;
            }
            t->content_changed[ty] = false;
        }
    }
    if (clusters)
        *clusters = ekg_resource_set_ref(t->set[EKG_RESOURCE_CLUSTER]);
    if (load_assignments)
        *load_assignments = ekg_resource_set_ref(t->set[EKG_RESOURCE_LOAD_ASSIGNMENT]);
    t->stats.total_ns = now_ns() - start;
    return first_err;
}

cJSON *ekg_translator_localities(const ekg_translator_t *t)
{
    cJSON *doc = cJSON_CreateObject();
    size_t n = ekg_translator_node_count(t);
    for (size_t i = 0; i < n; i++) {
        ekg_locality_t l;
        cJSON *o = cJSON_AddObjectToObject(doc, ekg_translator_node_at(t, i, &l));
        if (l.region[0])
            cJSON_AddStringToObject(o, "region", l.region);
        if (l.zone[0])
            cJSON_AddStringToObject(o, "zone", l.zone);
        if (l.sub_zone[0])
            cJSON_AddStringToObject(o, "subZone", l.sub_zone);
    }
    return doc;
}

ekg_err_t ekg_translator_snapshot(ekg_translator_t *t, ekg_snapshot_t **out)
{
    ekg_resource_set_t *sets[EKG_RESOURCE__COUNT] = {0};
    ekg_snapshot_t *snap = NULL;
    ekg_err_t err = ekg_translator_build(t, NULL, NULL);
    if (err)
        return err;
    for (int ty = 0; ty < EKG_RESOURCE__COUNT; ty++)
        sets[ty] = ekg_translator_set(t, (ekg_resource_type_t)ty); /* NULL (routes): an empty set */
    snap = ekg_snapshot_new(sets);
    ekg_snapshot_set_localities(snap, ekg_translator_localities(t));
    if (t->zones)
        ekg_zone_table_attach(t->zones, snap);
    *out = snap;
    for (int ty = 0; ty < EKG_RESOURCE__COUNT; ty++)
        ekg_resource_set_unref(sets[ty]);
    return EKG_OK;
}
