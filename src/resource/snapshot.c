/*
 * src/resource/snapshot.c: immutable snapshots of everything ekglue serves (include/ekglue/resource.h).
 *
 * A snapshot is a header with one reference per resource set, and optionally the localities document it was
 * built with (for operators; set before the snapshot is shared, then read-only), and optionally a localizer
 * (the translator's zone table) with the per-place sets made from it so far. The translator builds them
 * (src/translate/), the cache above publishes them, every xDS stream holds the one it last looked at.
 * Allocation failure aborts (ekglue/mem.h). Thread: any; a snapshot is only written (localities, localizer,
 * version times) while one thread holds its only reference or before the cache makes it visible, except its
 * per-place sets, which any thread may add under places_lock (a set is built under it, so the first stream at
 * a place builds and the others wait for it instead of building it too).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ekglue/mem.h"
#include "ekglue/resource.h"

#include "common/map.h"

/* One place key's sets: built on first use; NULL = not built yet. `base` marks a type whose set for the key
 * is the base set (nothing built). hint: the previous snapshot's set for the key (one reference) until built.
 */
typedef struct place_sets {
    char *key; /* owned; the map's key */
    ekg_resource_set_t *sets[EKG_RESOURCE__COUNT];
    bool base[EKG_RESOURCE__COUNT];
    ekg_resource_set_t *hints[EKG_RESOURCE__COUNT];
} place_sets_t;

#define PLACE_KEY_MAX 1024

struct ekg_snapshot {
    atomic_int refs;
    unsigned long long serial;
    ekg_resource_set_t *sets[EKG_RESOURCE__COUNT]; /* one reference each, never NULL */
    cJSON *localities;                             /* owned; NULL when not set */
    double since[EKG_RESOURCE__COUNT];             /* unix time each set's version became current; 0 */
    const ekg_localizer_ops_t *loc_ops;            /* NULL without a localizer */
    void *loc_ctx;                                 /* owned (loc_ops->free) */
    uint64_t loc_content;                          /* what the variants depend on, hashed; 0 without */
    pthread_mutex_t places_lock;                   /* guards places and every place_sets_t in it */
    ekg_map_t places;                              /* key -> place_sets_t (owned) */
};

static void place_sets_free(place_sets_t *p)
{
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++) {
        ekg_resource_set_unref(p->sets[t]);
        ekg_resource_set_unref(p->hints[t]);
    }
    free(p->key);
    free(p);
}

static atomic_ullong next_serial = 1;

ekg_snapshot_t *ekg_snapshot_new(ekg_resource_set_t *const sets[EKG_RESOURCE__COUNT])
{
    ekg_snapshot_t *s = ekg_xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->places_lock, NULL);
    s->serial = atomic_fetch_add(&next_serial, 1);
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++) {
        if (sets && sets[t])
            s->sets[t] = ekg_resource_set_ref(sets[t]);
        else /* an empty set: no names to be out of order, so it cannot fail */
            ekg_resource_set_new((ekg_resource_type_t)t, NULL, 0, NULL, &s->sets[t]);
    }
    return s;
}

ekg_snapshot_t *ekg_snapshot_ref(ekg_snapshot_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void ekg_snapshot_unref(ekg_snapshot_t *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++)
        ekg_resource_set_unref(s->sets[t]);
    cJSON_Delete(s->localities);
    for (size_t i = 0; i < s->places.cap; i++)
        if (s->places.slots[i].key)
            place_sets_free(s->places.slots[i].value);
    ekg_map_clear(&s->places);
    if (s->loc_ops)
        s->loc_ops->free(s->loc_ctx);
    pthread_mutex_destroy(&s->places_lock);
    free(s);
}

ekg_resource_set_t *ekg_snapshot_resources(const ekg_snapshot_t *s, ekg_resource_type_t type)
{
    return type < EKG_RESOURCE__COUNT ? s->sets[type] : NULL;
}

ekg_err_t ekg_snapshot_set_localities(ekg_snapshot_t *s, cJSON *doc)
{
    /* One reference: nobody else can be reading the snapshot, so it is still being built. */
    if (!s || !cJSON_IsObject(doc) || atomic_load_explicit(&s->refs, memory_order_acquire) != 1) {
        cJSON_Delete(doc);
        return EKG_EINVAL;
    }
    cJSON_Delete(s->localities);
    s->localities = doc;
    return EKG_OK;
}

const cJSON *ekg_snapshot_localities(const ekg_snapshot_t *s)
{
    return s->localities;
}

double ekg_snapshot_version_since(const ekg_snapshot_t *s, ekg_resource_type_t type)
{
    return type < EKG_RESOURCE__COUNT ? s->since[type] : 0;
}

unsigned long long ekg_snapshot_serial(const ekg_snapshot_t *s)
{
    return s->serial;
}

void ekg_snapshot_set_version_since(ekg_snapshot_t *s, ekg_resource_type_t type, double unix_time)
{
    if (type < EKG_RESOURCE__COUNT)
        s->since[type] = unix_time;
}

ekg_err_t ekg_snapshot_set_localizer(ekg_snapshot_t *s, const ekg_localizer_ops_t *ops, void *ctx,
                                     uint64_t content)
{
    if (!s || !ops || s->loc_ops || atomic_load_explicit(&s->refs, memory_order_acquire) != 1) {
        if (ops && ctx)
            ops->free(ctx);
        return EKG_EINVAL;
    }
    s->loc_ops = ops;
    s->loc_ctx = ctx;
    s->loc_content = content;
    return EKG_OK;
}

ekg_resource_set_t *ekg_snapshot_resources_at(ekg_snapshot_t *s, ekg_resource_type_t type,
                                              const ekg_place_t *place)
{
    if (type >= EKG_RESOURCE__COUNT)
        return NULL;
    char key[PLACE_KEY_MAX];
    if (!place || !s->loc_ops || !s->loc_ops->key(s->loc_ctx, place, key, sizeof(key)))
        return s->sets[type];
    pthread_mutex_lock(&s->places_lock);
    place_sets_t *p = ekg_map_get(&s->places, key);
    if (!p) {
        p = ekg_xcalloc(1, sizeof(*p));
        p->key = ekg_xstrdup(key);
        ekg_map_put(&s->places, p->key, p, NULL);
    }
    if (!p->sets[type] && !p->base[type]) {
        /* Built under the lock: the first stream of a place builds, the others of that place wait for it. */
        p->sets[type] = s->loc_ops->build(s->loc_ctx, type, s->sets[type], place, p->hints[type]);
        p->base[type] = !p->sets[type];
        ekg_resource_set_unref(p->hints[type]);
        p->hints[type] = NULL;
    }
    ekg_resource_set_t *out = p->sets[type] ? p->sets[type] : s->sets[type];
    pthread_mutex_unlock(&s->places_lock);
    return out;
}

uint64_t ekg_snapshot_localizer_content(const ekg_snapshot_t *s)
{
    return s->loc_ops ? s->loc_content : 0;
}

const char *ekg_snapshot_variant_reason(const ekg_snapshot_t *s, ekg_resource_type_t type, const char *name)
{
    return s->loc_ops && s->loc_ops->reason ? s->loc_ops->reason(s->loc_ctx, type, name) : NULL;
}

size_t ekg_snapshot_place_count(ekg_snapshot_t *s)
{
    pthread_mutex_lock(&s->places_lock);
    size_t n = s->places.len;
    pthread_mutex_unlock(&s->places_lock);
    return n;
}

void ekg_snapshot_inherit_places(ekg_snapshot_t *s, ekg_snapshot_t *prev)
{
    if (!prev || prev == s || !s->loc_ops)
        return;
    /* s is not visible yet: only prev needs its lock. */
    pthread_mutex_lock(&prev->places_lock);
    for (size_t i = 0; i < prev->places.cap; i++) {
        const place_sets_t *from = prev->places.slots[i].value;
        if (!prev->places.slots[i].key)
            continue;
        place_sets_t *p = ekg_map_get(&s->places, from->key);
        if (!p) {
            p = ekg_xcalloc(1, sizeof(*p));
            p->key = ekg_xstrdup(from->key);
            ekg_map_put(&s->places, p->key, p, NULL);
        }
        for (int t = 0; t < EKG_RESOURCE__COUNT; t++) {
            ekg_resource_set_t *h = from->sets[t] ? from->sets[t] : from->hints[t];
            if (h && !p->hints[t] && !p->sets[t])
                p->hints[t] = ekg_resource_set_ref(h);
        }
    }
    pthread_mutex_unlock(&prev->places_lock);
}
