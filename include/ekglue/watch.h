/*
 * include/ekglue/watch.h: the Kubernetes source (src/watch/): the connection to an API server, and the
 * watcher: Services, EndpointSlices and Nodes, listed and watched, fed to the translator, published to the
 * cache.
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

#include <curl/curl.h>

#include "ekglue/translate.h"
#include "ekglue/error.h"
#include "ekglue/model.h"
#include "ekglue/cache.h"

/* --- the connection ------------------------------------------------------------------------------------- */

/*
 * The connection (src/watch/kube_conn.c): how ekglue reaches a Kubernetes API server.
 *
 * ekg_kube_conn_resolve() decides where and how to connect, in this order: --master URL (no auth unless a
 * kubeconfig also names credentials), --kubeconfig or $KUBECONFIG (current-context or --context), in-cluster
 * ($KUBERNETES_SERVICE_HOST/PORT, IPv6 too, with the service-account token and CA). Kubeconfig fields
 * honoured: clusters[].cluster{server, certificate-authority, certificate-authority-data,
 * insecure-skip-tls-verify, tls-server-name, proxy-url}, users[].user{token, tokenFile,
 * client-certificate(-data), client-key(-data)}; relative paths are relative to the kubeconfig's directory.
 * exec plugins, auth-provider, username/password and impersonation (as, as-groups, ...) are refused with an
 * error naming the field. Token files (tokenFile, the service-account token) are re-read every minute and
 * after a 401, so a rotated token is picked up.
 *
 * Thread: resolve on main; the connection is then used by the watcher thread only (token refresh mutates it).
 */
#include <curl/curl.h>

typedef struct ekg_kube_conn ekg_kube_conn_t;

typedef struct ekg_kube_options {
    const char *kubeconfig; /* --kubeconfig; NULL: $KUBECONFIG (first of a ':' list), then nothing */
    const char *context;    /* --context; NULL: current-context */
    const char *master;     /* --master URL; overrides the kubeconfig's server */
} ekg_kube_options_t;

/*
 * EKG_ENOENT (and a diag saying so) when nothing is configured: no --master, no kubeconfig, not in a cluster.
 * EKG_ECONFIG with "FILE: key: reason" for a bad kubeconfig. On success *out is owned by the caller.
 */
ekg_err_t ekg_kube_conn_resolve(const ekg_kube_options_t *opts, ekg_kube_conn_t **out, ekg_diag_t *diag);
void ekg_kube_conn_free(ekg_kube_conn_t *c);

/* The API server's base URL without a trailing slash ("https://10.0.0.1:443"). Borrowed. */
const char *ekg_kube_conn_server(const ekg_kube_conn_t *c);
/* A one-line description for logs: server, how it was found, auth kind (never the secret). Borrowed. */
const char *ekg_kube_conn_describe(const ekg_kube_conn_t *c);

/*
 * Prepares a curl easy handle for a request to `path_and_query` ("/api/v1/services?limit=500"): URL, TLS (CA,
 * client certificate, verification, server name), and the headers: Accept and Authorization are appended to
 * *headers, which is then set as CURLOPT_HTTPHEADER; the caller frees it with curl_slist_free_all() after the
 * transfer. Re-reads a token file older than a minute.
 */
ekg_err_t ekg_kube_conn_prepare(ekg_kube_conn_t *c, CURL *h, const char *path_and_query,
                                struct curl_slist **headers, ekg_diag_t *diag);
/*
 * Changes with every new token. A request prepared under an older generation that got a 401 can be retried at
 * once: another request already found the new token.
 */
unsigned long ekg_kube_conn_token_generation(const ekg_kube_conn_t *c);
/* After a 401: re-read the token file now (no-op for static credentials). Returns true if the token changed.
 */
bool ekg_kube_conn_reload_token(ekg_kube_conn_t *c);

/* --- the watcher ---------------------------------------------------------------------------------------- */

typedef enum {
    EKG_KUBE_SERVICES = 0,
    EKG_KUBE_ENDPOINT_SLICES,
    EKG_KUBE_NODES,
    EKG_KUBE__COUNT
} ekg_kube_resource_t;

/* Kubernetes watch event types, as counted (ekg_metrics_kube_event). */
typedef enum {
    EKG_KEVENT_ADDED = 0,
    EKG_KEVENT_MODIFIED,
    EKG_KEVENT_DELETED,
    EKG_KEVENT_BOOKMARK,
    EKG_KEVENT__COUNT
} ekg_kube_event_t;

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
