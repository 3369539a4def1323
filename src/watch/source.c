/*
 * src/watch/source.c: the source interface (include/ekglue/watch.h): the calls every source answers, and the
 * Kubernetes source, which is the watcher (src/watch/watcher.c) behind that interface. Files and buffers are
 * in src/watch/files.c.
 *
 * A reload hands a new config to the sink (which switches it on the source's thread) and then asks the source
 * to re-read its input, so both sources reload the same way; only the files have anything to re-read.
 * Thread: main (or any one thread) calls these; each source runs its own thread.
 */
#include <stdlib.h>

#include "ekglue/mem.h"
#include "watch/source.h"

ekg_source_t *ekg_source_new(const ekg_source_ops_t *ops, void *impl, ekg_sink_t *sink)
{
    ekg_source_t *src = ekg_xcalloc(1, sizeof(*src));
    src->ops = ops;
    src->impl = impl;
    src->sink = sink;
    return src;
}

void ekg_source_reload(ekg_source_t *src, const ekg_config_t *cfg, const char *why)
{
    if (cfg)
        ekg_sink_set_config(src->sink, cfg); /* returns once the source's thread left the previous config */
    if (src->ops->reread)
        src->ops->reread(src->impl, why);
}

void ekg_source_stop(ekg_source_t *src)
{
    if (!src)
        return;
    src->ops->stop(src->impl);
    free(src);
}

ekg_watcher_t *ekg_source_watcher(const ekg_source_t *src)
{
    return src && src->ops->watcher ? src->ops->watcher(src->impl) : NULL;
}

/* --- the Kubernetes source ------------------------------------------------------------------------------ */

static void kube_stop(void *impl)
{
    ekg_watcher_stop(impl);
}

static ekg_watcher_t *kube_watcher(const void *impl)
{
    return (ekg_watcher_t *)impl;
}

static const ekg_source_ops_t KUBE_OPS = {.reread = NULL, .stop = kube_stop, .watcher = kube_watcher};

ekg_err_t ekg_source_kube_start(ekg_kube_conn_t *conn, const ekg_watch_options_t *opts, ekg_sink_t *sink,
                                ekg_source_t **out, ekg_diag_t *diag)
{
    ekg_watcher_t *w = NULL;
    ekg_err_t err = ekg_watcher_start(conn, opts, sink, &w, diag);
    if (err)
        return err;
    *out = ekg_source_new(&KUBE_OPS, w, sink);
    return EKG_OK;
}
