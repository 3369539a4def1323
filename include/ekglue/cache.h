/*
 * include/ekglue/cache.h: the cache, the one place a new snapshot is published (src/cache/cache.c).
 *
 * The cache holds the current snapshot (include/ekglue/resource.h). Publishing a new one calls the watch (the
 * xDS server) on the publishing thread, which hands the snapshot to every stream itself: there is no queue
 * and no polling between the publishing thread and the gRPC threads.
 *
 * Thread: ekg_cache_publish() is called by one producer at a time (the running source's thread: the watcher's
 * or the file source's); ekg_cache_current() and ekg_cache_set_watch() from any thread.
 */
#ifndef EKGLUE_CACHE_H
#define EKGLUE_CACHE_H

#include <stdbool.h>

#include "ekglue/error.h"
#include "ekglue/resource.h"
#include "ekglue/translate.h"

typedef struct ekg_cache ekg_cache_t;
/* Called on the publishing thread with a borrowed reference to the new snapshot. */
typedef void (*ekg_cache_watch_fn)(void *ctx, ekg_snapshot_t *snap);

/* A new, empty cache (the caller's: ekg_cache_free). */
ekg_cache_t *ekg_cache_new(void);
void ekg_cache_free(ekg_cache_t *c);
/* Registers the single watcher (NULL to remove), from any thread. When it returns, no call of the previous
 * watcher is running or will start, so its ctx may be freed. Must not be called from within the watcher. */
void ekg_cache_set_watch(ekg_cache_t *c, ekg_cache_watch_fn fn, void *ctx);
/* Makes snap current (takes a new reference) and calls the watcher. Same-version snapshots are not
 * re-announced: when every set's version and the localities equal the current one's, nothing happens. */
bool ekg_cache_publish(ekg_cache_t *c, ekg_snapshot_t *snap); /* true when snap was taken */
/*
 * The one publish step of every source (the Kubernetes watcher, the files, the demo): builds what is dirty in
 * t (ekg_translator_snapshot), publishes it, and when the cache took it records the build time
 * (ekglue_snapshot_build_seconds, ekglue_last_update_timestamp_seconds). *taken (may be NULL) says whether it
 * was taken; *out (may be NULL) gets a reference to the snapshot built, for the caller's log. On a
 * translation error nothing is published and the error is returned: the previous snapshot stays.
 */
ekg_err_t ekg_cache_publish_translation(ekg_cache_t *c, ekg_translator_t *t, bool *taken,
                                        ekg_snapshot_t **out);
/* A new reference to the current snapshot, or NULL before the first publish. */
ekg_snapshot_t *ekg_cache_current(ekg_cache_t *c);

#endif
