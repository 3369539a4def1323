/*
 * src/cache/cache.c: the cache, the one place a new snapshot is published (include/ekglue/cache.h).
 *
 * It keeps the current snapshot behind a mutex held only to swap or take a reference. Publishing calls the
 * watch (the xDS server's on_snapshot) after the swap, on the publishing thread, without that lock but under
 * call_lock, so that removing the watch waits for a call in progress. Thread: ekg_cache_publish from one
 * producer at a time (the running source's thread: the watcher's or the file source's); ekg_cache_current and
 * set_watch from any.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ekglue/cache.h"
#include "ekglue/clock.h"
#include "ekglue/mem.h"
#include "ekglue/metrics.h"

struct ekg_cache {
    pthread_mutex_t lock;      /* guards current, watch and watch_ctx */
    pthread_mutex_t call_lock; /* held while the watch runs, and by set_watch (taken before lock) */
    ekg_snapshot_t *current;   /* owned reference; NULL before the first publish */
    ekg_cache_watch_fn watch;
    void *watch_ctx;
};

ekg_cache_t *ekg_cache_new(void)
{
    ekg_cache_t *c = ekg_xcalloc(1, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->call_lock, NULL);
    return c;
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
        if (strcmp(ekg_resource_set_version(ekg_snapshot_resources(a, (ekg_resource_type_t)t)),
                   ekg_resource_set_version(ekg_snapshot_resources(b, (ekg_resource_type_t)t))) != 0)
            return false;
    if (ekg_snapshot_localizer_content(a) != ekg_snapshot_localizer_content(b))
        return false; /* the same base sets, other per-place variants (an endpoint's hints or Node moved) */
    const cJSON *la = ekg_snapshot_localities(a), *lb = ekg_snapshot_localities(b);
    if (!la || !lb)
        return !la && !lb;
    return cJSON_Compare(la, lb, true);
}

bool ekg_cache_publish(ekg_cache_t *c, ekg_snapshot_t *snap)
{
    pthread_mutex_lock(&c->lock);
    if (c->current && same_content(c->current, snap)) {
        pthread_mutex_unlock(&c->lock);
        return false;
    }
    ekg_snapshot_t *old = c->current;
    double now = ekg_clock_unix_s();
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++) {
        bool same =
            old &&
            strcmp(ekg_resource_set_version(ekg_snapshot_resources(old, (ekg_resource_type_t)t)),
                   ekg_resource_set_version(ekg_snapshot_resources(snap, (ekg_resource_type_t)t))) == 0;
        ekg_snapshot_set_version_since(snap, (ekg_resource_type_t)t,
                                       same ? ekg_snapshot_version_since(old, (ekg_resource_type_t)t) : now);
    }
    /* The per-place sets old has built become snap's hints, so that they share pages (a stream's diff stays
     * one page per change). snap is not visible to any other thread yet. */
    ekg_snapshot_inherit_places(snap, old);
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

ekg_err_t ekg_cache_publish_translation(ekg_cache_t *c, ekg_translator_t *t, bool *taken,
                                        ekg_snapshot_t **out)
{
    ekg_snapshot_t *snap = NULL;
    double t0 = ekg_clock_s();
    ekg_err_t err = ekg_translator_snapshot(t, &snap);
    if (taken)
        *taken = false;
    if (err != EKG_OK)
        return err;
    double built = ekg_clock_s() - t0;
    /* Counted only when the cache took it (an unchanged snapshot is dropped: nothing was updated). */
    bool took = ekg_cache_publish(c, snap);
    if (took)
        ekg_metrics_snapshot_published(built);
    if (taken)
        *taken = took;
    if (out)
        *out = snap;
    else
        ekg_snapshot_unref(snap);
    return EKG_OK;
}
