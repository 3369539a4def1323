/*
 * include/ekglue/debug.h: the debug HTTP port, for operators (docs/operations.md).
 *
 * A small HTTP/1.1 server (libmicrohttpd) showing what this replica serves and to whom: /healthz, /readyz,
 * /metrics (Prometheus text), /clusters, /endpoints, /localities, /config_dump and /clients as JSON (YAML
 * with ?format=yaml), and / as an HTML status page. Everything is read-only and computed per request from the
 * cache's current snapshot, the xDS server's client listing and the watcher's status; nothing it does can
 * change what is served. It binds only the given address (loopback by default: reach it with
 * `kubectl port-forward`).
 *
 * Who sees what (docs/operations.md, "Ports"): the views show the cluster's whole topology (every Service,
 * endpoint address, Node and connected client), so they belong on loopback. Probes and Prometheus need an
 * address on the pod IP, so a second server started with metrics_only answers /metrics, /healthz and /readyz
 * and nothing else (404): that one may listen anywhere.
 *
 * Thread: start/stop from main; requests are answered on libmicrohttpd's own polling thread.
 */
#ifndef EKGLUE_DEBUG_H
#define EKGLUE_DEBUG_H

#include <stdbool.h>
#include <stddef.h>

#include "ekglue/error.h"
#include "ekglue/cache.h"
#include "ekglue/watch.h"
#include "ekglue/xds.h"

typedef struct ekg_debug_server ekg_debug_server_t;

typedef struct ekg_debug_options {
    const char *listen; /* "127.0.0.1:18001" (default when NULL); port 0 picks a free port; "[::1]:18001" */
    bool optional;      /* failing to listen is expected (a default address): libmicrohttpd's message is
                           logged at info, not warn; ekg_debug_server_start() still fails */
    bool metrics_only;  /* serve /metrics, /healthz and /readyz only, every other path 404 (the metrics
                           listener, --metrics-listen); listen is then required. Without it, a listen address
                           that is not loopback is logged at warn: the views show the whole topology */
} ekg_debug_options_t;

/*
 * Starts serving. cache, xds and watcher are borrowed and must outlive the server; xds (tests) and watcher
 * (file mode, demo) may be NULL, which leaves out what they would show. source_desc says where objects come
 * from ("files: a.yaml, b.yaml", "kubernetes: https://...", "embedded demo cluster"); copied. opts may be
 * NULL.
 */
ekg_err_t ekg_debug_server_start(const ekg_debug_options_t *opts, ekg_cache_t *cache, ekg_xds_server_t *xds,
                                 ekg_watcher_t *watcher, const char *source_desc, ekg_debug_server_t **out,
                                 ekg_diag_t *diag);
/* The bound port (useful with port 0). */
int ekg_debug_server_port(const ekg_debug_server_t *s);
/* Stops listening, waits for requests in progress and frees everything. NULL is fine. */
void ekg_debug_server_stop(ekg_debug_server_t *s);

/*
 * The Prometheus exposition text (text/plain; version=0.0.4) of every metric (include/ekglue/metrics.h), the
 * watcher's per-resource figures and the process's own. watcher may be NULL (file mode): its metrics are then
 * left out. *out is malloc'ed; the caller frees it; *len (may be NULL) its length. The debug server's
 * /metrics.
 */
void ekg_debug_metrics_render(ekg_watcher_t *watcher, char **out, size_t *len);

#endif
