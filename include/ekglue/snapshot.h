/*
 * include/ekglue/snapshot.h: immutable snapshots of everything ekglue serves, and the cache that publishes
 * them.
 *
 * A snapshot holds one resource set per type (Clusters, ClusterLoadAssignments, proxyless-gRPC Listeners,
 * RouteConfigurations). It never changes once built and is reference-counted; an xDS stream keeps a reference
 * to the snapshot it last looked at. The cache holds the current snapshot. Publishing a new one calls the
 * watcher (the xDS server) on the publishing thread, which hands the snapshot to every stream itself: there
 * is no queue and no polling between the watcher thread and the gRPC threads.
 *
 * Thread: snapshots are read from any thread. ekg_cache_publish() is called by one producer at a time (the
 * watcher thread, or main in file mode); ekg_cache_current() from any thread.
 */
#ifndef EKGLUE_SNAPSHOT_H
#define EKGLUE_SNAPSHOT_H

#include <stdbool.h>

#include <cJSON.h>

#include "ekglue/error.h"
#include "ekglue/resource.h"

typedef struct ekg_snapshot ekg_snapshot_t;

/* Takes new references to the sets; a NULL set means empty. The snapshot has refcount 1. */
ekg_err_t ekg_snapshot_new(ekg_resource_set_t *const sets[EKG_RESOURCE__COUNT], ekg_snapshot_t **out);
ekg_snapshot_t *ekg_snapshot_ref(ekg_snapshot_t *s);
void ekg_snapshot_unref(ekg_snapshot_t *s); /* NULL is fine */
/* The set of one type (never NULL: an empty set when there is none). Borrowed, lives as long as s. */
ekg_resource_set_t *ekg_snapshot_resources(const ekg_snapshot_t *s, ekg_resource_type_t type);
/*
 * The localities the snapshot was built with, for operators (the debug port's /localities): a JSON object
 * {node name: {region, zone, subZone}} as `ekglue dump` prints it. Optional: set it while the caller holds
 * the only reference (before publishing); EKG_EINVAL afterwards or when doc is not an object. Takes ownership
 * of doc, also on error. The cache compares it too: a snapshot whose only change is its localities (a Node
 * relabelled without moving an endpoint) is taken, and pushes nothing since its sets are unchanged.
 */
ekg_err_t ekg_snapshot_set_localities(ekg_snapshot_t *s, cJSON *doc);
/* The localities document, or NULL when none was set. Borrowed, immutable, lives as long as s. */
const cJSON *ekg_snapshot_localities(const ekg_snapshot_t *s);
/*
 * Unix time (seconds) at which the set of type `type` took its version: when the cache made current the first
 * snapshot with that version (an unchanged type keeps the time of the earlier publish). 0 before the snapshot
 * is published. Written by ekg_cache_publish() before the snapshot is visible to other threads.
 */
double ekg_snapshot_version_since(const ekg_snapshot_t *s, ekg_resource_type_t type);
/* A process-unique, increasing number (for logs and for "have I seen this one"), not a protocol version. */
unsigned long long ekg_snapshot_serial(const ekg_snapshot_t *s);

typedef struct ekg_cache ekg_cache_t;
/* Called on the publishing thread with a borrowed reference to the new snapshot. */
typedef void (*ekg_cache_watch_fn)(void *ctx, ekg_snapshot_t *snap);

ekg_err_t ekg_cache_new(ekg_cache_t **out);
void ekg_cache_free(ekg_cache_t *c);
/* Registers the single watcher (NULL to remove), from any thread. When it returns, no call of the previous
 * watcher is running or will start, so its ctx may be freed. Must not be called from within the watcher. */
void ekg_cache_set_watch(ekg_cache_t *c, ekg_cache_watch_fn fn, void *ctx);
/* Makes snap current (takes a new reference) and calls the watcher. Same-version snapshots are not
 * re-announced: when every set's version and the localities equal the current one's, nothing happens. */
bool ekg_cache_publish(ekg_cache_t *c, ekg_snapshot_t *snap); /* true when snap was taken */
/* A new reference to the current snapshot, or NULL before the first publish. */
ekg_snapshot_t *ekg_cache_current(ekg_cache_t *c);

#endif
