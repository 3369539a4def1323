/*
 * include/ekglue/watch.h: the sources of Kubernetes objects (src/watch/) and the one sink they all feed.
 *
 * A source reads Services, EndpointSlices and Nodes from somewhere and hands them, on its own thread, to a
 * sink (ekg_sink_t, src/watch/sink.c). Three sources, one interface (ekg_source_t, src/watch/source.c):
 *   - the Kubernetes API: the watcher (src/watch/watcher.c over src/watch/kube_conn.c);
 *   - manifest files (--objects), re-read when they change (src/watch/files.c);
 *   - a buffer: the demo cluster embedded at build time (src/watch/files.c).
 * Two sinks: the publisher (`ekglue serve`): a translator, the one coalesce + publish step into the cache
 * (with its metric), and the config hand-off; and the collector (`ekglue dump`): the objects, kept by key.
 * Each source also runs once, until it has read everything a first time, into any sink (`dump`).
 *
 * Thread: each running source has one thread of its own, which alone calls the sink's source-side functions
 * (put, remove, replace, synced, flush); start, reload, stop and status are called from main (or any thread).
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

/* --- the sink ------------------------------------------------------------------------------------------- */

typedef enum {
    EKG_KUBE_SERVICES = 0,
    EKG_KUBE_ENDPOINT_SLICES,
    EKG_KUBE_NODES,
    EKG_KUBE__COUNT
} ekg_kube_resource_t;

typedef struct ekg_sink ekg_sink_t;

/* Called on the source's thread once, when the first complete read has been published (health SERVING). */
typedef void (*ekg_watch_synced_fn)(void *ctx);

/*
 * The publisher: a translator under cfg (borrowed; ekg_sink_set_config() switches it), whose snapshots go to
 * cache (borrowed) through ekg_cache_publish_translation(), the one publish step. Nothing is published before
 * the source says it is synced; after that a change publishes after the coalescing delays the source set
 * (none by default: at its next flush). A translation that fails keeps the previous snapshot and is retried a
 * second later. on_synced (may be NULL) gets ctx.
 */
ekg_sink_t *ekg_sink_publisher_new(const ekg_config_t *cfg, ekg_cache_t *cache, ekg_watch_synced_fn on_synced,
                                   void *ctx);
/* The collector: keeps the objects by kind and key ("ns/name"; a later put replaces, a remove drops). */
ekg_sink_t *ekg_sink_collector_new(void);
/* Collector: moves what it holds into objs (appended; objs->nskipped counts the skipped objects too). */
void ekg_sink_take_objects(ekg_sink_t *k, ekg_objects_t *objs);
void ekg_sink_free(ekg_sink_t *k);

/* Source side (the source's thread). put takes the object; remove names it ("" namespace for Nodes). */
void ekg_sink_put_service(ekg_sink_t *k, ekg_service_t *svc);
void ekg_sink_put_slice(ekg_sink_t *k, ekg_endpoint_slice_t *slice);
void ekg_sink_put_node(ekg_sink_t *k, ekg_node_t *node);
void ekg_sink_remove(ekg_sink_t *k, ekg_kube_resource_t r, const char *namespace_, const char *name);
/* The whole truth (a re-read of every file): what objs holds replaces everything; takes its objects. */
void ekg_sink_replace(ekg_sink_t *k, ekg_objects_t *objs);
/* A change publishes coalesce_ms after it, but at most coalesce_max_ms after the first unpublished one. */
void ekg_sink_set_coalescing(ekg_sink_t *k, int coalesce_ms, int coalesce_max_ms);
/* An invalid object was skipped (logged by the source). The collector counts each key once, until a valid
 * version of it is put. */
void ekg_sink_skipped(ekg_sink_t *k, ekg_kube_resource_t r, const char *namespace_, const char *name);
/*
 * Everything has been read once: the publisher publishes now (and calls on_synced once a snapshot is taken).
 * Later calls publish at once too (a re-read file). Returns the translation error, if any.
 */
ekg_err_t ekg_sink_synced(ekg_sink_t *k);
/* When ekg_sink_flush() has work (ekg_clock_ms() time): a coalesced publish, a retry; -1: none. */
long long ekg_sink_deadline(ekg_sink_t *k);
/* Switches to a config handed in by ekg_sink_set_config() (then publishes), and publishes what is due. */
void ekg_sink_flush(ekg_sink_t *k);
/*
 * The source's thread drives the sink: wake(ctx) makes it call ekg_sink_flush() soon. NULL when the thread
 * ends: from then on ekg_sink_set_config() applies the config on the caller's thread.
 */
void ekg_sink_set_driver(ekg_sink_t *k, void (*wake)(void *ctx), void *ctx);
/*
 * Any thread but the source's: switches the publisher to cfg (borrowed, like the first) and rebuilds every
 * Service with it (unchanged results push nothing). Returns once cfg is in use and what it changed is
 * published (when the source is synced): the previous config is no longer used; the caller may free it.
 */
void ekg_sink_set_config(ekg_sink_t *k, const ekg_config_t *cfg);

/* --- the Kubernetes watcher ----------------------------------------------------------------------------- */

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
    int coalesce_ms;              /* the sink's coalescing (ekg_sink_set_coalescing); default 100 */
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

/*
 * Starts the watcher thread, feeding sink (which drives: its deadline is one of the loop's timers, and
 * ekg_sink_set_config() wakes the loop) and setting its coalescing from opts. conn and sink are borrowed and
 * must outlive the watcher. opts may be NULL.
 */
ekg_err_t ekg_watcher_start(ekg_kube_conn_t *conn, const ekg_watch_options_t *opts, ekg_sink_t *sink,
                            ekg_watcher_t **out, ekg_diag_t *diag);
/* Stops the thread (bounded: open transfers are aborted) and frees everything. */
void ekg_watcher_stop(ekg_watcher_t *w);
/* A consistent copy of one resource's status. Any thread. */
void ekg_watcher_status(ekg_watcher_t *w, ekg_kube_resource_t r, ekg_watch_status_t *out);
/*
 * Runs the watcher on the caller's thread until every resource has been listed once, into sink: same paths,
 * paging and scoping. The first failure that is not a list starting over (410) or a renewed token ends it,
 * with its message in diag. Blocking.
 */
ekg_err_t ekg_watcher_list_once(ekg_kube_conn_t *conn, const ekg_watch_options_t *opts, ekg_sink_t *sink,
                                ekg_diag_t *diag);
/* One complete list of every resource into objs (appended, all or nothing): ekg_watcher_list_once() with a
 * collector. */
ekg_err_t ekg_kube_list_all(ekg_kube_conn_t *conn, const ekg_watch_options_t *opts, ekg_objects_t *objs,
                            ekg_diag_t *diag);

/* --- files and buffers ---------------------------------------------------------------------------------- */

/*
 * Reads every file (or, with n == 0, the buffer buf of len bytes named name) into one ekg_objects_t and hands
 * it to the sink as the whole truth (ekg_sink_replace, then ekg_sink_synced). A file that does not read or
 * parse hands nothing: EKG_* with "<file>: <reason>" in diag. Any thread.
 */
ekg_err_t ekg_files_read_once(const char *const *paths, size_t n, const char *name, const char *buf,
                              size_t len, ekg_sink_t *sink, ekg_diag_t *diag);

/* --- the source interface ------------------------------------------------------------------------------- */

typedef struct ekg_source ekg_source_t;

/* The Kubernetes API: ekg_watcher_start() with a publisher sink. */
ekg_err_t ekg_source_kube_start(ekg_kube_conn_t *conn, const ekg_watch_options_t *opts, ekg_sink_t *sink,
                                ekg_source_t **out, ekg_diag_t *diag);
/*
 * Manifest files (paths borrowed, n > 0) or one buffer (n == 0: buf, len, named name; borrowed). The first
 * read is done before this returns (an error is returned and nothing runs); then a thread re-reads every file
 * when one changes (inotify on the files' directories, so a rename over a file and a Kubernetes ConfigMap's
 * `..data` swap are seen; 50 ms debounce) or on ekg_source_reload(). A re-read that fails keeps the previous
 * state.
 */
ekg_err_t ekg_source_files_start(const char *const *paths, size_t n, const char *name, const char *buf,
                                 size_t len, ekg_sink_t *sink, ekg_source_t **out, ekg_diag_t *diag);
/*
 * SIGHUP, or the config file changed: switches the sink to cfg if it is not NULL (returns once the old config
 * is no longer used) and re-reads what can be re-read (the files; a watch is always current). why goes to the
 * log.
 */
void ekg_source_reload(ekg_source_t *src, const ekg_config_t *cfg, const char *why);
/* Stops the source's thread and frees it; the sink is the caller's. NULL is a no-op. */
void ekg_source_stop(ekg_source_t *src);
/* The Kubernetes watcher behind src, for its status (the debug port); NULL for files. */
ekg_watcher_t *ekg_source_watcher(const ekg_source_t *src);

#endif
