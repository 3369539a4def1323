/*
 * src/debug/debug_internal.h: what the debug port's request handler (http.c) and its HTML status page
 * (status_page.c) share (library-private).
 *
 * Thread: libmicrohttpd's polling thread calls everything here; the inputs are snapshots (immutable), the xDS
 * server's client listing (a fresh copy per call) and the watcher's status (a copy per call).
 */
#ifndef EKG_DEBUG_INTERNAL_H
#define EKG_DEBUG_INTERNAL_H

#include <stdio.h>

#include <cJSON.h>

#include "ekglue/error.h"
#include "ekglue/resource.h"
#include "ekglue/watch.h"
#include "ekglue/xds.h"

/* Short names of the resource types, as metrics labels and the pages show them ("Cluster", ...). */
extern const char *const ekg_debug_type_names[EKG_RESOURCE__COUNT];

/* Everything a page shows, gathered once per request. All borrowed; any member may be NULL. */
typedef struct ekg_debug_view {
    const char *source_desc;
    ekg_snapshot_t *snap;   /* the current snapshot, or NULL before the first publish */
    ekg_watcher_t *watcher; /* NULL: objects come from files or the demo */
    const cJSON *clients;   /* ekg_xds_server_clients()'s array, or NULL when unavailable */
    double started;         /* unix time the debug server started (process uptime, near enough) */
} ekg_debug_view_t;

/*
 * Writes the HTML status page to out: self-contained (inline CSS, no scripts, no external assets), every
 * string HTML-escaped. Fails only with ekg_render_resource's error for a resource that does not render.
 */
ekg_err_t ekg_debug_status_page(const ekg_debug_view_t *view, FILE *out);

#endif
