/*
 * src/watch/source.h: how a source implements the source interface of include/ekglue/watch.h
 * (library-private).
 *
 * ekg_source_t is the same small object for every source: the sink it feeds and its operations. source.c
 * holds the generic calls and the Kubernetes source; files.c the files and the buffer. Thread: as
 * include/ekglue/watch.h says.
 */
#ifndef EKGLUE_WATCH_SOURCE_H
#define EKGLUE_WATCH_SOURCE_H

#include "ekglue/watch.h"

typedef struct ekg_source_ops {
    /* Re-reads the input (SIGHUP, a config change); NULL when there is nothing to re-read. */
    void (*reread)(void *impl, const char *why);
    /* Stops the source's thread and frees impl. */
    void (*stop)(void *impl);
    /* The Kubernetes watcher, or NULL. */
    ekg_watcher_t *(*watcher)(const void *impl);
} ekg_source_ops_t;

struct ekg_source {
    const ekg_source_ops_t *ops;
    void *impl;       /* owned through ops->stop */
    ekg_sink_t *sink; /* borrowed */
};

/* A source object around impl (the caller's until ekg_source_stop()). */
ekg_source_t *ekg_source_new(const ekg_source_ops_t *ops, void *impl, ekg_sink_t *sink);

#endif
