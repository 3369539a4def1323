/*
 * src/cache/snapshot.c: immutable snapshots and the cache that publishes them (include/ekglue/snapshot.h).
 *
 * A snapshot is a header with one reference per resource set, and optionally the localities document it was
 * built with (for operators; set before the snapshot is shared, then read-only). The cache keeps the current
 * snapshot behind a mutex held only to swap or take a reference; the watcher (the xDS server) is called after
 * the swap, on the publishing thread, without the lock. Thread: snapshots from any thread; ekg_cache_publish
 * from one producer at a time; ekg_cache_current from any.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ekglue/snapshot.h"

struct ekg_snapshot {
    atomic_int refs;
    unsigned long long serial;
    ekg_resource_set_t *sets[EKG_RESOURCE__COUNT]; /* one reference each, never NULL */
    cJSON *localities;                             /* owned; NULL when not set */
    double since[EKG_RESOURCE__COUNT];             /* unix time each set's version became current; 0 */
};

struct ekg_cache {
    pthread_mutex_t lock;      /* guards current, watch and watch_ctx */
    pthread_mutex_t call_lock; /* held while the watch runs, and by set_watch (taken before lock) */
    ekg_snapshot_t *current;   /* owned reference; NULL before the first publish */
    ekg_cache_watch_fn watch;
    void *watch_ctx;
};

static atomic_ullong next_serial = 1;

ekg_err_t ekg_snapshot_new(ekg_resource_set_t *const sets[EKG_RESOURCE__COUNT], ekg_snapshot_t **out)
{
    ekg_snapshot_t *s = calloc(1, sizeof(*s));
    if (!s)
        return EKG_ENOMEM;
    atomic_init(&s->refs, 1);
    s->serial = atomic_fetch_add(&next_serial, 1);
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++) {
        if (sets && sets[t]) {
            s->sets[t] = ekg_resource_set_ref(sets[t]);
        } else if (ekg_resource_set_new((ekg_resource_type_t)t, NULL, 0, NULL, &s->sets[t]) != EKG_OK) {
            ekg_snapshot_unref(s);
            return EKG_ENOMEM;
        }
    }
    *out = s;
    return EKG_OK;
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

ekg_err_t ekg_cache_new(ekg_cache_t **out)
{
    ekg_cache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return EKG_ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->call_lock, NULL);
    *out = c;
    return EKG_OK;
}

void ekg_cache_free(ekg_cache_t *c)
{
    if (!c)
        return;
    ekg_snapshot_unref(c->current);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->call_lock);
    free(c);
}

void ekg_cache_set_watch(ekg_cache_t *c, ekg_cache_watch_fn fn, void *ctx)
{
    pthread_mutex_lock(&c->call_lock); /* waits for a call of the old watch in progress */
    pthread_mutex_lock(&c->lock);
    c->watch = fn;
    c->watch_ctx = ctx;
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&c->call_lock);
}

/*
 * Same resources and same localities. A Node relabelled without moving any endpoint changes only the
 * localities: that snapshot is taken (the debug port shows it) but pushes nothing, since every set is the
 * same object.
 */
static bool same_content(const ekg_snapshot_t *a, const ekg_snapshot_t *b)
{
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++)
        if (strcmp(ekg_resource_set_version(a->sets[t]), ekg_resource_set_version(b->sets[t])) != 0)
            return false;
    if (!a->localities || !b->localities)
        return !a->localities && !b->localities;
    return cJSON_Compare(a->localities, b->localities, true);
}

bool ekg_cache_publish(ekg_cache_t *c, ekg_snapshot_t *snap)
{
    pthread_mutex_lock(&c->lock);
    if (c->current && same_content(c->current, snap)) {
        pthread_mutex_unlock(&c->lock);
        return false;
    }
    ekg_snapshot_t *old = c->current;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++) {
        bool same = old && strcmp(ekg_resource_set_version(old->sets[t]),
                                  ekg_resource_set_version(snap->sets[t])) == 0;
        snap->since[t] = same ? old->since[t] : (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    }
    c->current = ekg_snapshot_ref(snap);
    pthread_mutex_unlock(&c->lock);
    ekg_snapshot_unref(old);
    /* The watch runs without c->lock (it reads the cache), under call_lock, so that whoever removes it knows
     * it is not running any more and may free its ctx. */
    pthread_mutex_lock(&c->call_lock);
    pthread_mutex_lock(&c->lock);
    ekg_cache_watch_fn fn = c->watch;
    void *ctx = c->watch_ctx;
    pthread_mutex_unlock(&c->lock);
    if (fn)
        fn(ctx, snap);
    pthread_mutex_unlock(&c->call_lock);
    return true;
}

ekg_snapshot_t *ekg_cache_current(ekg_cache_t *c)
{
    pthread_mutex_lock(&c->lock);
    ekg_snapshot_t *s = c->current ? ekg_snapshot_ref(c->current) : NULL;
    pthread_mutex_unlock(&c->lock);
    return s;
}
