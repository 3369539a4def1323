/*
 * src/translate/zones.c: zone-aware endpoints. Which Services get per-client priorities (the rule), the plan
 * each such ClusterLoadAssignment keeps to make its per-place variants, and the table of plans that is every
 * snapshot's localizer (include/ekglue/resource.h). The rules are docs/translation.md, "Zone-aware
 * endpoints".
 *
 * A client at place (region R, zone Z, node N) gets each endpoint in a tier: 0 on N (PreferSameNode only), 1
 * hinted for Z (when the Service's hints are complete), 2 in Z, 3 elsewhere in R, 4 anywhere else. An
 * endpoint is in Z when its zone is Z and its region is R, or either region is unknown (an endpoint whose
 * Node is unknown has the slice's zone and no region). Empty tiers are dropped and the rest numbered from 0:
 * those are the priorities. A variant with everything in one priority is the plain assignment.
 *
 * Bounds: a plan reduces a place to what its own endpoints can tell apart (a zone, region or Node none of
 * them has is "other"), and a table does the same with the union of its plans, so the number of variants and
 * of per-place sets depends on the cluster's topology, never on what clients send.
 *
 * Threads: rules, plans and tables are made on the translator's thread. Plans and tables are then shared with
 * snapshots: variants are made on any thread (the xDS server's, the debug port's), each plan's cache under
 * its own lock. Allocation failure aborts (ekglue/mem.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ekglue/log.h"
#include "ekglue/mem.h"

#include "common/hash.h"
#include "common/map.h"
#include "translate/translate_internal.h"

/* A zone, region or Node that none of the endpoints has. Label values and names cannot hold a control byte.
 */
#define OTHER  "\x01"
#define NTIERS 5

/* --- the rule ----------------------------------------------------------------------------------------------
 */

static bool is_auto(const char *mode)
{
    return mode && (strcmp(mode, "Auto") == 0 || strcmp(mode, "auto") == 0);
}

void ekg_zone_rule(const ekg_service_input_t *in, char **warned_td, ekg_zone_rule_t *out)
{
    const ekg_service_t *svc = in->svc;
    *out = (ekg_zone_rule_t){0};
    const char *td = svc->traffic_distribution;
    bool close = false, same_node = false;
    if (td && (strcmp(td, "PreferClose") == 0 || strcmp(td, "PreferSameZone") == 0)) {
        close = true;
    } else if (td && strcmp(td, "PreferSameNode") == 0) {
        close = same_node = true;
    } else if (td) {
        if (!*warned_td || strcmp(*warned_td, td) != 0) {
            ekg_warn(
                "Service %s/%s: trafficDistribution %s is not one ekglue knows (PreferClose, PreferSameZone, "
                "PreferSameNode); treated as unset",
                svc->meta.namespace_, svc->meta.name, td);
            free(*warned_td);
            *warned_td = ekg_xstrdup(td);
        }
        td = NULL;
    }
    /* Hints count only when every endpoint that is served has them (kube-proxy ignores them otherwise). */
    size_t served = 0, hinted = 0;
    for (size_t s = 0; s < in->nslices; s++) {
        const ekg_endpoint_slice_t *slice = in->slices[s];
        if (slice->address_type == EKG_ADDRESS_FQDN)
            continue;
        for (size_t e = 0; e < slice->nendpoints; e++) {
            if (!ekg_endpoint_included(in->cfg, &slice->endpoints[e]))
                continue;
            served++;
            hinted += slice->endpoints[e].has_zone_hints;
        }
    }
    bool complete = served > 0 && hinted == served;
    bool annotated = is_auto(svc->topology_mode);
    const char *hints_note = complete ? ", with hints.forZones" : "";
    switch (ekg_config_zone_priorities(in->cfg)) {
    case EKG_ZONE_PRIORITIES_NEVER:
        if (close || annotated)
            snprintf(out->reason, sizeof(out->reason),
                     "not applied: endpoint_config.zone_priorities is never (the Service asks for %s)",
                     close ? "trafficDistribution" : "topology-mode Auto");
        return;
    case EKG_ZONE_PRIORITIES_ALWAYS:
        out->active = true;
        out->same_node = same_node;
        out->hints = complete;
        snprintf(out->reason, sizeof(out->reason), "endpoint_config.zone_priorities: always%s%s%s",
                 hints_note, same_node ? ", " : "", same_node ? "trafficDistribution: PreferSameNode" : "");
        return;
    case EKG_ZONE_PRIORITIES_AUTO:
        break;
    }
    if (close) {
        out->active = true;
        out->same_node = same_node;
        out->hints = complete;
        snprintf(out->reason, sizeof(out->reason), "trafficDistribution: %s%s", td, hints_note);
    } else if (annotated && complete) {
        out->active = true;
        out->hints = true;
        snprintf(out->reason, sizeof(out->reason), "topology-mode: %s, with hints.forZones",
                 svc->topology_mode);
    } else if (annotated) {
        snprintf(out->reason, sizeof(out->reason),
                 "not applied: topology-mode %s, but %s (kube-proxy ignores the hints too)",
                 svc->topology_mode, served ? "not every endpoint has hints.forZones" : "no endpoints");
    }
}

/* --- plans -------------------------------------------------------------------------------------------------
 */

typedef struct strs {
    const char **v; /* sorted, unique; strings borrowed from the plan's pool */
    size_t n;
} strs_t;

struct ekg_zone_plan {
    atomic_int refs;
    char *name;   /* owned */
    char *reason; /* owned */
    bool active, same_node, hints, udp;
    uint32_t overprovisioning;
    ekg_candidate_t *c; /* owned; its strings point into pool */
    size_t n;
    char *pool; /* owned: every string of c */
    const char **hint_pool;
    strs_t zones, regions, nodes; /* what the plan can tell apart; nodes only for same_node */
    uint64_t hash;
    pthread_mutex_t lock; /* guards variants */
    ekg_map_t variants;   /* reduced place key (owned) -> ekg_resource_t* (one reference; NULL = plain) */
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool strs_has(const strs_t *s, const char *x)
{
    return x[0] && bsearch(&x, s->v, s->n, sizeof(*s->v), cmp_str) != NULL;
}

/* Sorts and de-duplicates v[0..n) in place into s; empty strings dropped. */
static void strs_make(strs_t *s, const char **v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_str);
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i][0] && (w == 0 || strcmp(v[w - 1], v[i]) != 0))
            v[w++] = v[i];
    s->v = v;
    s->n = w;
}

static char *pool_put(char **p, const char *s)
{
    size_t n = strlen(s) + 1;
    char *at = *p;
    memcpy(at, s, n);
    *p += n;
    return at;
}

ekg_zone_plan_t *ekg_zone_plan_new(const char *name, const ekg_candidate_t *c, size_t n, bool udp,
                                   uint32_t overprovisioning, const ekg_zone_rule_t *rule)
{
    ekg_zone_plan_t *p = ekg_xcalloc(1, sizeof(*p));
    atomic_init(&p->refs, 1);
    pthread_mutex_init(&p->lock, NULL);
    p->name = ekg_xstrdup(name);
    p->reason = ekg_xstrdup(rule->reason);
    p->active = rule->active;
    p->same_node = rule->same_node;
    p->hints = rule->hints;
    p->udp = udp;
    p->overprovisioning = overprovisioning;
    uint64_t h = ekg_hash_update(EKG_HASH_INIT, name, strlen(name) + 1);
    h = ekg_hash_update(h, p->reason, strlen(p->reason) + 1);
    h = ekg_hash_u64(h, (uint64_t)p->active | (uint64_t)p->same_node << 1 | (uint64_t)p->hints << 2 |
                            (uint64_t)udp << 3 | (uint64_t)overprovisioning << 8);
    if (!p->active) {
        p->hash = ekg_hash_final(h);
        return p;
    }
    size_t bytes = 1, nh = 0;
    for (size_t i = 0; i < n; i++) {
        bytes += strlen(c[i].address) + strlen(c[i].node) + strlen(c[i].locality.region) +
                 strlen(c[i].locality.zone) + strlen(c[i].locality.sub_zone) + 5;
        for (size_t k = 0; c[i].has_hints && k < c[i].nhints; k++)
            bytes += strlen(c[i].hints[k]) + 1;
        nh += c[i].has_hints ? c[i].nhints : 0;
    }
    p->pool = ekg_xmalloc(bytes);
    p->hint_pool = ekg_xcalloc(nh ? nh : 1, sizeof(*p->hint_pool));
    p->c = ekg_xcalloc(n ? n : 1, sizeof(*p->c));
    p->n = n;
    char *w = p->pool;
    size_t hk = 0;
    const char **zones = ekg_xcalloc(n + nh + 1, sizeof(char *));
    const char **regions = ekg_xcalloc(n + 1, sizeof(char *));
    const char **nodes = ekg_xcalloc(n + 1, sizeof(char *));
    size_t nz = 0;
    for (size_t i = 0; i < n; i++) {
        ekg_candidate_t *d = &p->c[i];
        *d = c[i];
        d->address = pool_put(&w, c[i].address);
        d->node = pool_put(&w, c[i].node);
        d->locality.region = pool_put(&w, c[i].locality.region);
        d->locality.zone = pool_put(&w, c[i].locality.zone);
        d->locality.sub_zone = pool_put(&w, c[i].locality.sub_zone);
        d->hints = p->hint_pool + hk;
        d->nhints = c[i].has_hints ? c[i].nhints : 0;
        for (size_t k = 0; k < d->nhints; k++) {
            p->hint_pool[hk] = pool_put(&w, c[i].hints[k]);
            if (p->hints) /* a zone named only by ignored hints tells no place apart */
                zones[nz++] = p->hint_pool[hk];
            hk++;
        }
        zones[nz++] = d->locality.zone;
        regions[i] = d->locality.region;
        nodes[i] = d->node;
        /* Everything a variant depends on; address and port order is the candidates' own (sorted). */
        h = ekg_hash_update(h, d->address, strlen(d->address) + 1);
        h = ekg_hash_u64(h, (uint64_t)(uint32_t)d->port | (uint64_t)(uint32_t)d->health << 32);
        h = ekg_hash_update(h, d->node, strlen(d->node) + 1);
        h = ekg_hash_update(h, d->locality.region, strlen(d->locality.region) + 1);
        h = ekg_hash_update(h, d->locality.zone, strlen(d->locality.zone) + 1);
        h = ekg_hash_update(h, d->locality.sub_zone, strlen(d->locality.sub_zone) + 1);
        h = ekg_hash_u64(h, d->nhints);
        for (size_t k = 0; k < d->nhints; k++)
            h = ekg_hash_update(h, d->hints[k], strlen(d->hints[k]) + 1);
    }
    strs_make(&p->zones, zones, nz);
    strs_make(&p->regions, regions, n);
    if (p->same_node)
        strs_make(&p->nodes, nodes, n);
    else
        free(nodes);
    p->hash = ekg_hash_final(h);
    return p;
}

ekg_zone_plan_t *ekg_zone_plan_ref(ekg_zone_plan_t *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void ekg_zone_plan_unref(ekg_zone_plan_t *p)
{
    if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < p->variants.cap; i++)
        if (p->variants.slots[i].key) {
            free((char *)p->variants.slots[i].key);
            ekg_resource_unref(p->variants.slots[i].value);
        }
    ekg_map_clear(&p->variants);
    pthread_mutex_destroy(&p->lock);
    free(p->zones.v);
    free(p->regions.v);
    free((void *)p->nodes.v);
    free(p->c);
    free(p->hint_pool);
    free(p->pool);
    free(p->name);
    free(p->reason);
    free(p);
}

const char *ekg_zone_plan_name(const ekg_zone_plan_t *p)
{
    return p->name;
}

uint64_t ekg_zone_plan_hash(const ekg_zone_plan_t *p)
{
    return p->hash;
}

/* A place reduced to what zones, regions and nodes can tell apart. Strings point into place or are OTHER/"".
 */
typedef struct reduced {
    const char *region, *zone, *node;
} reduced_t;

/* Reduces place by the known sets; false when the client gets the plain assignment: it has no zone, or every
 * endpoint would land in one tier. */
static bool reduce(const strs_t *zones, const strs_t *regions, const strs_t *nodes, const ekg_place_t *place,
                   reduced_t *out)
{
    const char *z = place->zone ? place->zone : "", *r = place->region ? place->region : "";
    const char *nd = place->node ? place->node : "";
    if (!z[0]) /* no zone: the plain assignment (the rules need one, also for PreferSameNode) */
        return false;
    out->zone = !z[0] ? "" : strs_has(zones, z) ? z : OTHER;
    out->region = !r[0] ? "" : strs_has(regions, r) ? r : OTHER;
    out->node = nodes && strs_has(nodes, nd) ? nd : "";
    bool knows_zone = out->zone[0] && strcmp(out->zone, OTHER) != 0;
    bool knows_region = out->region[0] && strcmp(out->region, OTHER) != 0;
    return knows_zone || knows_region || out->node[0];
}

static void key_of(const reduced_t *r, char *buf, size_t size)
{
    snprintf(buf, size, "%s\x1f%s\x1f%s", r->region, r->zone, r->node);
}

static int tier_of(const ekg_zone_plan_t *p, const ekg_candidate_t *c, const reduced_t *r)
{
    if (p->same_node && r->node[0] && strcmp(c->node, r->node) == 0)
        return 0;
    if (p->hints && r->zone[0])
        for (size_t k = 0; k < c->nhints; k++)
            if (strcmp(c->hints[k], r->zone) == 0)
                return 1;
    bool same_zone = r->zone[0] && strcmp(c->locality.zone, r->zone) == 0 &&
                     (!r->region[0] || !c->locality.region[0] || strcmp(c->locality.region, r->region) == 0);
    if (same_zone)
        return 2;
    if (r->region[0] && strcmp(c->locality.region, r->region) == 0)
        return 3;
    return 4;
}

/* Builds the variant for a reduced place: NULL when everything is in one priority (the plain assignment). */
static ekg_resource_t *make_variant(const ekg_zone_plan_t *p, const reduced_t *r)
{
    size_t count[NTIERS] = {0};
    int *tier = ekg_xmalloc((p->n ? p->n : 1) * sizeof(*tier));
    for (size_t i = 0; i < p->n; i++)
        count[tier[i] = tier_of(p, &p->c[i], r)]++;
    uint32_t prio_of_tier[NTIERS], used = 0;
    size_t start[NTIERS], at = 0;
    for (int t = 0; t < NTIERS; t++) {
        prio_of_tier[t] = used;
        start[t] = at;
        at += count[t];
        used += count[t] > 0;
    }
    ekg_resource_t *res = NULL;
    if (used > 1) {
        /* A stable counting sort by tier keeps the locality-then-address order inside each priority. */
        ekg_candidate_t *sorted = ekg_xmalloc(p->n * sizeof(*sorted));
        uint32_t *prio = ekg_xmalloc(p->n * sizeof(*prio));
        for (size_t i = 0; i < p->n; i++) {
            size_t k = start[tier[i]]++;
            sorted[k] = p->c[i];
            prio[k] = prio_of_tier[tier[i]];
        }
        char *bytes = NULL;
        size_t len = 0;
        if (ekg_encode_cla(p->name, sorted, prio, p->n, p->udp, p->overprovisioning, &bytes, &len) == EKG_OK)
            ekg_resource_new(EKG_RESOURCE_LOAD_ASSIGNMENT, p->name, bytes, len, &res);
        else
            ekg_error("zone variant of %s does not encode; its clients get the plain assignment", p->name);
        free(bytes);
        free(prio);
        free(sorted);
    }
    free(tier);
    return res;
}

ekg_resource_t *ekg_zone_plan_variant(ekg_zone_plan_t *p, const ekg_place_t *place)
{
    reduced_t r;
    if (!p->active || !reduce(&p->zones, &p->regions, p->same_node ? &p->nodes : NULL, place, &r))
        return NULL;
    char key[1024];
    key_of(&r, key, sizeof(key));
    pthread_mutex_lock(&p->lock);
    void *found = ekg_map_get(&p->variants, key);
    if (!found) {
        /* Built once per reduced place; a NULL (plain) result is remembered as a map entry too. */
        ekg_resource_t *v = make_variant(p, &r);
        char *k = ekg_xstrdup(key);
        ekg_map_put(&p->variants, k, v ? (void *)v : (void *)p, NULL);
        found = v ? (void *)v : (void *)p;
    }
    ekg_resource_t *out = found == (void *)p ? NULL : ekg_resource_ref(found);
    pthread_mutex_unlock(&p->lock);
    return out;
}

/* --- tables ------------------------------------------------------------------------------------------------
 */

struct ekg_zone_table {
    atomic_int refs;
    ekg_zone_plan_t **plans; /* one reference each, sorted by name */
    size_t n;
    strs_t zones, regions, nodes; /* unions of the active plans' */
    bool any_active;
    uint64_t hash;
};

static int cmp_plans(const void *a, const void *b)
{
    return strcmp((*(ekg_zone_plan_t *const *)a)->name, (*(ekg_zone_plan_t *const *)b)->name);
}

ekg_zone_table_t *ekg_zone_table_new(ekg_zone_plan_t *const *plans, size_t n)
{
    ekg_zone_table_t *t = ekg_xcalloc(1, sizeof(*t));
    atomic_init(&t->refs, 1);
    t->plans = ekg_xcalloc(n ? n : 1, sizeof(*t->plans));
    size_t nz = 0, nr = 0, nn = 0;
    for (size_t i = 0; i < n; i++) {
        t->plans[i] = ekg_zone_plan_ref(plans[i]);
        nz += plans[i]->zones.n;
        nr += plans[i]->regions.n;
        nn += plans[i]->nodes.n;
        t->any_active |= plans[i]->active;
    }
    t->n = n;
    qsort(t->plans, n, sizeof(*t->plans), cmp_plans);
    const char **zones = ekg_xcalloc(nz + 1, sizeof(char *)), **regions = ekg_xcalloc(nr + 1, sizeof(char *));
    const char **nodes = ekg_xcalloc(nn + 1, sizeof(char *));
    nz = nr = nn = 0;
    uint64_t h = EKG_HASH_INIT;
    for (size_t i = 0; i < n; i++) {
        const ekg_zone_plan_t *p = t->plans[i];
        for (size_t k = 0; k < p->zones.n; k++)
            zones[nz++] = p->zones.v[k];
        for (size_t k = 0; k < p->regions.n; k++)
            regions[nr++] = p->regions.v[k];
        for (size_t k = 0; k < p->nodes.n; k++) /* (nodes.v is NULL without PreferSameNode) */
            nodes[nn++] = p->nodes.v[k];
        h = ekg_hash_u64(h, p->hash);
    }
    strs_make(&t->zones, zones, nz);
    strs_make(&t->regions, regions, nr);
    strs_make(&t->nodes, nodes, nn);
    t->hash = ekg_hash_final(ekg_hash_u64(h, n)) | 1; /* never 0: 0 means "no localizer" */
    return t;
}

ekg_zone_table_t *ekg_zone_table_ref(ekg_zone_table_t *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void ekg_zone_table_unref(ekg_zone_table_t *t)
{
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < t->n; i++)
        ekg_zone_plan_unref(t->plans[i]);
    free(t->plans);
    free(t->zones.v);
    free(t->regions.v);
    free(t->nodes.v);
    free(t);
}

size_t ekg_zone_table_size(const ekg_zone_table_t *t)
{
    return t->n;
}

static ekg_zone_plan_t *table_find(const ekg_zone_table_t *t, const char *name)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->plans[mid]->name, name);
        if (c == 0)
            return t->plans[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The localizer's operations (include/ekglue/resource.h), ctx = a table reference. */

static bool loc_key(const void *ctx, const ekg_place_t *place, char *buf, size_t size)
{
    const ekg_zone_table_t *t = ctx;
    reduced_t r;
    if (!t->any_active || !reduce(&t->zones, &t->regions, &t->nodes, place, &r))
        return false;
    key_of(&r, buf, size);
    return true;
}

static ekg_resource_set_t *loc_build(void *ctx, ekg_resource_type_t type, const ekg_resource_set_t *base,
                                     const ekg_place_t *place, const ekg_resource_set_t *hint)
{
    ekg_zone_table_t *t = ctx;
    if (type != EKG_RESOURCE_LOAD_ASSIGNMENT)
        return NULL;
    size_t n = ekg_resource_set_size(base);
    ekg_resource_t **items = ekg_xmalloc((n ? n : 1) * sizeof(*items));
    ekg_resource_t **made = ekg_xmalloc((t->n ? t->n : 1) * sizeof(*made));
    size_t nmade = 0, pi = 0;
    /* Both sorted by name: one merge walk. A plan whose name the set lacks (a name two Services collide on)
     * is skipped. */
    for (size_t i = 0; i < n; i++) {
        ekg_resource_t *r = ekg_resource_set_at(base, i);
        items[i] = r;
        while (pi < t->n && strcmp(t->plans[pi]->name, ekg_resource_name(r)) < 0)
            pi++;
        if (pi == t->n || strcmp(t->plans[pi]->name, ekg_resource_name(r)) != 0)
            continue;
        ekg_resource_t *v = ekg_zone_plan_variant(t->plans[pi], place);
        if (!v)
            continue;
        if (ekg_resource_hash(v) == ekg_resource_hash(r)) {
            ekg_resource_unref(v);
            continue;
        }
        items[i] = made[nmade++] = v;
    }
    ekg_resource_set_t *out = NULL;
    if (nmade > 0 && ekg_resource_set_new(type, items, n, hint, &out) != EKG_OK)
        out = NULL; /* cannot happen: the base set's order is kept */
    for (size_t i = 0; i < nmade; i++)
        ekg_resource_unref(made[i]);
    free(made);
    free(items);
    return out;
}

static const char *loc_reason(const void *ctx, ekg_resource_type_t type, const char *name)
{
    const ekg_zone_plan_t *p = type == EKG_RESOURCE_LOAD_ASSIGNMENT ? table_find(ctx, name) : NULL;
    return p && p->reason[0] ? p->reason : NULL;
}

static void loc_free(void *ctx)
{
    ekg_zone_table_unref(ctx);
}

static const ekg_localizer_ops_t LOCALIZER = {
    .key = loc_key,
    .build = loc_build,
    .reason = loc_reason,
    .free = loc_free,
};

void ekg_zone_table_attach(ekg_zone_table_t *t, ekg_snapshot_t *snap)
{
    ekg_snapshot_set_localizer(snap, &LOCALIZER, ekg_zone_table_ref(t), t->hash);
}
