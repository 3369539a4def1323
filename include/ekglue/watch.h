/*
 * include/ekglue/watch.h: the Kubernetes watcher: Services, EndpointSlices and Nodes, listed and watched, fed
 * to the translator, published to the cache.
 *
 * One thread. For each resource it lists (limit/continue pages, all at one resourceVersion), then watches
 * from the list's resourceVersion with bookmarks and timeoutSeconds, resuming from the last seen
 * resourceVersion after each normal end. "Too old" (HTTP 410, or an ERROR event with code 410) leads to a
 * relist diffed against what it has: unchanged objects cause no change at all. Failures reconnect with
 * exponential backoff and jitter; a watch that receives nothing (not even a bookmark) for the idle timeout is
 * considered dead and restarted. While the API is unreachable the last state is kept: nothing is ever removed
 * because the API is down.
 *
 * Changes are coalesced: a build and publish happens coalesce_ms after a change, or at the latest
 * coalesce_max_ms after the first unpublished change, so a rolling update does not push per pod.
 *
 * Thread: start/stop/status from main (or any thread); everything else on the watcher's own thread, which
 * owns the translator. It hands snapshots to the cache (ekg_cache_publish), which fans them out.
 */
#ifndef EKGLUE_WATCH_H
#define EKGLUE_WATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "ekglue/config.h"
#include "ekglue/error.h"
#include "ekglue/kube.h"
#include "ekglue/model.h"
#include "ekglue/snapshot.h"

typedef enum {
    EKG_KUBE_SERVICES = 0,
    EKG_KUBE_ENDPOINT_SLICES,
    EKG_KUBE_NODES,
    EKG_KUBE__COUNT
} ekg_kube_resource_t;

typedef struct ekg_watch_options {
    const char *const *namespaces; /* watch only these (Services and EndpointSlices); NULL/0: all */
    size_t nnamespaces;
    const char *service_selector; /* label selector for Services; NULL: all */
    int coalesce_ms;              /* default 100 */
    int coalesce_max_ms;          /* default 1000 */
    int watch_timeout_s;          /* timeoutSeconds asked of the server; default 300 */
    int idle_timeout_s;           /* no bytes at all for this long: the watch is dead; default 90 */
    int page_limit;               /* list page size; default 500 */
    int backoff_initial_ms;       /* default 250 */
    int backoff_max_ms;           /* default 30000 */
} ekg_watch_options_t;

/* What an operator can see of one resource's sync (debug page, metrics, logs). */
typedef struct ekg_watch_status {
    bool synced;                  /* a complete list has been applied at least once */
    double last_sync_age_s;       /* seconds since the last successful list or watch event; -1 before */
    char resource_version[32];    /* last seen */
    char last_error[256];         /* "" when the last attempt succeeded */
    unsigned long long events[4]; /* ADDED, MODIFIED, DELETED, BOOKMARK */
    unsigned long long relists, reconnects, too_old;
} ekg_watch_status_t;

typedef struct ekg_watcher ekg_watcher_t;

/* Called on the watcher thread once all three resources have completed their first list and it was published.
 */
typedef void (*ekg_watch_synced_fn)(void *ctx);

/*
 * Starts the watcher thread. conn, cfg and cache are borrowed and must outlive the watcher. opts may be NULL.
 */
ekg_err_t ekg_watcher_start(ekg_kube_conn_t *conn, const ekg_watch_options_t *opts, const ekg_config_t *cfg,
                            ekg_cache_t *cache, ekg_watch_synced_fn on_synced, void *ctx, ekg_watcher_t **out,
                            ekg_diag_t *diag);
/*
 * Switches to another config (a reloaded config file): the watcher's thread rebuilds every Service with it
 * and publishes (unchanged results push nothing). Returns once the watcher no longer uses the previous
 * config, which the caller may then free. cfg is borrowed like the one given to ekg_watcher_start(). Any
 * thread but the watcher's.
 */
void ekg_watcher_set_config(ekg_watcher_t *w, const ekg_config_t *cfg);

/* Stops the thread (bounded: open transfers are aborted) and frees everything. */
void ekg_watcher_stop(ekg_watcher_t *w);
/* A consistent copy of one resource's status. Any thread. */
void ekg_watcher_status(ekg_watcher_t *w, ekg_kube_resource_t r, ekg_watch_status_t *out);

/*
 * One complete list of every resource into objs (ekglue dump --kubeconfig): same paths, paging and scoping as
 * the watcher. Blocking; any thread.
 */
ekg_err_t ekg_kube_list_all(ekg_kube_conn_t *conn, const ekg_watch_options_t *opts, ekg_objects_t *objs,
                            ekg_diag_t *diag);

#endif
