/*
 * src/watch/sink.c: where every source's objects go (include/ekglue/watch.h): the publisher and the
 * collector.
 *
 * The publisher is the daemon's: it owns the translator, and it is the one coalesce + publish step of every
 * source. A change (put, remove, replace) marks it dirty and sets the publish deadline to now + coalesce_ms,
 * but never later than the first unpublished change + coalesce_max_ms, so a rolling update is one push, not
 * one per pod. Nothing is published before the source says it is synced (its first complete read), which
 * publishes at once; on_synced follows the first snapshot the cache takes, so health turns SERVING only with
 * something to serve. Publishing is ekg_cache_publish_translation() (the build-time metric is recorded there,
 * once for all sources). A failed translation keeps the previous snapshot and is retried PUBLISH_RETRY_MS
 * later: the objects stay applied, nothing is lost.
 *
 * The config hand-off: the translator belongs to the source's thread, so ekg_sink_set_config() (main, after a
 * reload) leaves the new config under the lock, wakes the source's loop through the driver it registered, and
 * waits until ekg_sink_flush() on that thread has switched and published. With no driver (no thread yet, or
 * no longer) the caller switches itself.
 *
 * The collector is `ekglue dump`'s: the objects by kind and key, so a list that starts over (an expired
 * continue token) or a second copy of an object replaces the first, and a remove drops it.
 *
 * Thread: everything but ekg_sink_set_config() runs on the source's thread (or, before and after it, on the
 * one that owns the sink); the hand-off fields are guarded by lock.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/map.h"
#include "ekglue/clock.h"
#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/watch.h"

/* After a failed translation, try again this long after. */
#define PUBLISH_RETRY_MS 1000

/* A collected object and its key ("ns/name", or "name" for Nodes). */
typedef struct entry {
    void *obj; /* owned: an ekg_service_t, ekg_endpoint_slice_t or ekg_node_t */
    char key[];
} entry_t;

struct ekg_sink {
    bool collector;

    /* The collector. */
    ekg_map_t objs[EKG_KUBE__COUNT]; /* key -> entry_t (owned) */
    ekg_map_t
        skipped[EKG_KUBE__COUNT]; /* key (owned) -> itself: invalid objects with no valid version since */
    size_t nskipped_read;         /* skipped by the last replace (files) */

    /* The publisher. */
    ekg_translator_t *translator; /* owned */
    ekg_cache_t *cache;           /* borrowed */
    ekg_watch_synced_fn on_synced;
    void *ctx;
    int coalesce_ms, coalesce_max_ms;
    const ekg_config_t *cfg; /* borrowed: the config in use */
    bool synced;             /* the source has read everything once */
    bool synced_untold; /* synced, but no snapshot taken yet: on_synced waits for the first good publish */
    bool dirty;         /* changes not yet published */
    long long first_change; /* of the unpublished changes */
    long long publish_at;

    pthread_mutex_t lock; /* guards the hand-off: */
    pthread_cond_t cfg_applied;
    const ekg_config_t *next_cfg; /* borrowed; NULL when nothing is pending */
    void (*wake)(void *ctx);      /* the driver: NULL when no source thread runs */
    void *wake_ctx;
};

static ekg_sink_t *sink_new(bool collector)
{
    ekg_sink_t *k = ekg_xcalloc(1, sizeof(*k));
    k->collector = collector;
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->cfg_applied, NULL);
    return k;
}

ekg_sink_t *ekg_sink_publisher_new(const ekg_config_t *cfg, ekg_cache_t *cache, ekg_watch_synced_fn on_synced,
                                   void *ctx)
{
    ekg_sink_t *k = sink_new(false);
    k->cfg = cfg;
    k->cache = cache;
    k->on_synced = on_synced;
    k->ctx = ctx;
    k->translator = ekg_translator_new(cfg);
    return k;
}

ekg_sink_t *ekg_sink_collector_new(void)
{
    return sink_new(true);
}

static void free_object(ekg_kube_resource_t r, void *obj)
{
    if (r == EKG_KUBE_SERVICES)
        ekg_service_free(obj);
    else if (r == EKG_KUBE_ENDPOINT_SLICES)
        ekg_endpoint_slice_free(obj);
    else
        ekg_node_free(obj);
}

static void free_entry(ekg_kube_resource_t r, entry_t *e, ekg_objects_t *unused)
{
    free_object(r, e->obj);
    free(e);
}

/* Appends the entry's object to into and frees the entry. */
static void take_entry(ekg_kube_resource_t r, entry_t *e, ekg_objects_t *o)
{
    if (r == EKG_KUBE_SERVICES) {
        o->services = ekg_xrealloc(o->services, (o->nservices + 1) * sizeof(*o->services));
        o->services[o->nservices++] = e->obj;
    } else if (r == EKG_KUBE_ENDPOINT_SLICES) {
        o->slices = ekg_xrealloc(o->slices, (o->nslices + 1) * sizeof(*o->slices));
        o->slices[o->nslices++] = e->obj;
    } else {
        o->nodes = ekg_xrealloc(o->nodes, (o->nnodes + 1) * sizeof(*o->nodes));
        o->nodes[o->nnodes++] = e->obj;
    }
    free(e);
}

/* Hands every collected entry of every kind to fn (which owns it from then on) and empties the maps. */
static void drain(ekg_sink_t *k, void (*fn)(ekg_kube_resource_t, entry_t *, ekg_objects_t *),
                  ekg_objects_t *o)
{
    for (int r = 0; r < EKG_KUBE__COUNT; r++) {
        ekg_map_t *m = &k->objs[r];
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].key)
                fn((ekg_kube_resource_t)r, m->slots[i].value, o);
        ekg_map_clear(m);
    }
}

/* The collector's key of an object. */
static void key_of(char *key, size_t size, const char *namespace_, const char *name)
{
    snprintf(key, size, "%s/%s", namespace_ ? namespace_ : "", name);
}

static void unskip(ekg_sink_t *k, ekg_kube_resource_t r, const char *key)
{
    char *had = ekg_map_remove(&k->skipped[r], key);
    free(had);
}

static void clear_skipped(ekg_sink_t *k)
{
    for (int r = 0; r < EKG_KUBE__COUNT; r++) {
        ekg_map_t *m = &k->skipped[r];
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].key)
                free(m->slots[i].value);
        ekg_map_clear(m);
    }
}

void ekg_sink_free(ekg_sink_t *k)
{
    if (!k)
        return;
    drain(k, free_entry, NULL);
    clear_skipped(k);
    ekg_translator_free(k->translator);
    pthread_mutex_destroy(&k->lock);
    pthread_cond_destroy(&k->cfg_applied);
    free(k);
}

/* --- the collector ------------------------------------------------------------------------------------- */

static void collect(ekg_sink_t *k, ekg_kube_resource_t r, const ekg_meta_t *meta, void *obj)
{
    char key[600];
    key_of(key, sizeof(key), meta->namespace_, meta->name);
    unskip(k, r, key);
    size_t klen = strlen(key);
    entry_t *e = ekg_xmalloc(sizeof(*e) + klen + 1);
    e->obj = obj;
    memcpy(e->key, key, klen + 1);
    void *old = NULL;
    ekg_map_put(&k->objs[r], e->key, e, &old);
    if (old)
        free_entry(r, old, NULL);
}

void ekg_sink_take_objects(ekg_sink_t *k, ekg_objects_t *objs)
{
    drain(k, take_entry, objs);
    objs->nskipped += k->nskipped_read;
    for (int r = 0; r < EKG_KUBE__COUNT; r++)
        objs->nskipped += k->skipped[r].len;
    clear_skipped(k);
    k->nskipped_read = 0;
}

/* --- the publisher ------------------------------------------------------------------------------------- */

static void changed(ekg_sink_t *k)
{
    long long now = ekg_clock_ms();
    if (!k->dirty) {
        k->dirty = true;
        k->first_change = now;
    }
    long long at = now + k->coalesce_ms, latest = k->first_change + k->coalesce_max_ms;
    k->publish_at = at < latest ? at : latest;
}

/* Builds what is dirty and publishes it; loud (info) when a whole read or the first sync is published. */
static ekg_err_t publish(ekg_sink_t *k, bool loud)
{
    ekg_snapshot_t *snap = NULL;
    k->dirty = false;
    ekg_err_t err = ekg_cache_publish_translation(k->cache, k->translator, NULL, &snap);
    if (err) {
        ekg_error("translation failed, keeping the previous state, retrying in %d ms: %s", PUBLISH_RETRY_MS,
                  ekg_strerror(err));
        k->dirty = true; /* what was applied is still unpublished: without this, only the next change would */
        k->first_change = ekg_clock_ms();
        k->publish_at = k->first_change + PUBLISH_RETRY_MS;
        return err;
    }
    ekg_log(loud ? EKG_LOG_INFO : EKG_LOG_DEBUG,
            "published serial=%llu clusters=%zu cluster_version=%s load_assignments=%zu "
            "load_assignment_version=%s listeners=%zu listener_version=%s",
            ekg_snapshot_serial(snap),
            ekg_resource_set_size(ekg_snapshot_resources(snap, EKG_RESOURCE_CLUSTER)),
            ekg_resource_set_version(ekg_snapshot_resources(snap, EKG_RESOURCE_CLUSTER)),
            ekg_resource_set_size(ekg_snapshot_resources(snap, EKG_RESOURCE_LOAD_ASSIGNMENT)),
            ekg_resource_set_version(ekg_snapshot_resources(snap, EKG_RESOURCE_LOAD_ASSIGNMENT)),
            ekg_resource_set_size(ekg_snapshot_resources(snap, EKG_RESOURCE_LISTENER)),
            ekg_resource_set_version(ekg_snapshot_resources(snap, EKG_RESOURCE_LISTENER)));
    ekg_snapshot_unref(snap);
    if (k->synced_untold) {
        k->synced_untold = false;
        if (k->on_synced)
            k->on_synced(k->ctx);
    }
    return EKG_OK;
}

/* --- source side --------------------------------------------------------------------------------------- */

void ekg_sink_put_service(ekg_sink_t *k, ekg_service_t *svc)
{
    if (k->collector)
        return collect(k, EKG_KUBE_SERVICES, &svc->meta, svc);
    ekg_translator_put_service(k->translator, svc);
    changed(k);
}

void ekg_sink_put_slice(ekg_sink_t *k, ekg_endpoint_slice_t *slice)
{
    if (k->collector)
        return collect(k, EKG_KUBE_ENDPOINT_SLICES, &slice->meta, slice);
    ekg_translator_put_slice(k->translator, slice);
    changed(k);
}

void ekg_sink_put_node(ekg_sink_t *k, ekg_node_t *node)
{
    if (k->collector)
        return collect(k, EKG_KUBE_NODES, &node->meta, node);
    ekg_translator_put_node(k->translator, node);
    changed(k);
}

void ekg_sink_remove(ekg_sink_t *k, ekg_kube_resource_t r, const char *namespace_, const char *name)
{
    if (k->collector) {
        char key[600];
        key_of(key, sizeof(key), namespace_, name);
        unskip(k, r, key);
        entry_t *e = ekg_map_remove(&k->objs[r], key);
        if (e)
            free_entry(r, e, NULL);
        return;
    }
    if (r == EKG_KUBE_SERVICES)
        ekg_translator_remove_service(k->translator, namespace_, name);
    else if (r == EKG_KUBE_ENDPOINT_SLICES)
        ekg_translator_remove_slice(k->translator, namespace_, name);
    else
        ekg_translator_remove_node(k->translator, name);
    changed(k);
}

void ekg_sink_replace(ekg_sink_t *k, ekg_objects_t *objs)
{
    if (k->collector) {
        drain(k, free_entry, NULL);
        clear_skipped(k);
        for (size_t i = 0; i < objs->nservices; i++)
            ekg_sink_put_service(k, objs->services[i]);
        for (size_t i = 0; i < objs->nslices; i++)
            ekg_sink_put_slice(k, objs->slices[i]);
        for (size_t i = 0; i < objs->nnodes; i++)
            ekg_sink_put_node(k, objs->nodes[i]);
        objs->nservices = objs->nslices = objs->nnodes = 0; /* moved */
        k->nskipped_read = objs->nskipped;
        return;
    }
    /* A fresh translator: the objects are the whole truth (what they lack disappears). */
    ekg_translator_free(k->translator);
    k->translator = ekg_translator_new(k->cfg);
    ekg_translator_put_objects(k->translator, objs);
    changed(k);
}

void ekg_sink_set_coalescing(ekg_sink_t *k, int coalesce_ms, int coalesce_max_ms)
{
    k->coalesce_ms = coalesce_ms;
    k->coalesce_max_ms = coalesce_max_ms;
}

void ekg_sink_skipped(ekg_sink_t *k, ekg_kube_resource_t r, const char *namespace_, const char *name)
{
    if (!k->collector)
        return; /* the publisher keeps the last valid version, if any: nothing to do */
    char key[600];
    key_of(key, sizeof(key), namespace_, name);
    if (ekg_map_get(&k->skipped[r], key))
        return;
    char *copy = ekg_xstrdup(key);
    ekg_map_put(&k->skipped[r], copy, copy, NULL);
}

ekg_err_t ekg_sink_synced(ekg_sink_t *k)
{
    if (k->collector)
        return EKG_OK;
    if (!k->synced) {
        k->synced = true;
        k->synced_untold = true;
    }
    return publish(k, true);
}

long long ekg_sink_deadline(ekg_sink_t *k)
{
    return !k->collector && k->synced && k->dirty ? k->publish_at : -1;
}

/* Switches the translator to cfg; the caller is the only user of the translator. */
static void switch_config(ekg_sink_t *k, const ekg_config_t *cfg)
{
    ekg_translator_set_config(k->translator, cfg);
    k->cfg = cfg;
}

void ekg_sink_flush(ekg_sink_t *k)
{
    if (k->collector)
        return;
    pthread_mutex_lock(&k->lock);
    const ekg_config_t *cfg = k->next_cfg;
    pthread_mutex_unlock(&k->lock);
    if (cfg) {
        switch_config(k, cfg);
        if (k->synced)
            publish(k, false); /* a config change publishes at once; identical results push nothing */
        pthread_mutex_lock(&k->lock);
        if (k->next_cfg == cfg) /* switched and published: the caller may go on */
            k->next_cfg = NULL;
        pthread_cond_broadcast(&k->cfg_applied);
        pthread_mutex_unlock(&k->lock);
    } else if (k->synced && k->dirty && ekg_clock_ms() >= k->publish_at) {
        publish(k, false);
    }
}

void ekg_sink_set_driver(ekg_sink_t *k, void (*wake)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&k->lock);
    k->wake = wake;
    k->wake_ctx = ctx;
    pthread_cond_broadcast(&k->cfg_applied); /* a waiter whose driver left switches itself */
    pthread_mutex_unlock(&k->lock);
}

void ekg_sink_set_config(ekg_sink_t *k, const ekg_config_t *cfg)
{
    if (k->collector)
        return;
    pthread_mutex_lock(&k->lock);
    k->next_cfg = cfg;
    if (k->wake)
        k->wake(k->wake_ctx);
    while (k->next_cfg == cfg && k->wake)
        pthread_cond_wait(&k->cfg_applied, &k->lock);
    bool mine = k->next_cfg == cfg; /* no driver (any more): nobody else uses the translator */
    if (mine)
        k->next_cfg = NULL;
    pthread_mutex_unlock(&k->lock);
    if (mine) {
        switch_config(k, cfg);
        if (k->synced)
            publish(k, false);
    }
}
