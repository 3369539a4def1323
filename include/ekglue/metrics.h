/*
 * include/ekglue/metrics.h: ekglue's process-wide metrics, rendered in Prometheus text format on the debug
 * port.
 *
 * A fixed set, defined in src/debug/metrics.c: counters and gauges are atomics, histograms have fixed buckets
 * and atomic bucket counters, so recording is lock-free and costs a few nanoseconds from any thread.
 * Rendering reads them (and the process's own /proc figures) without stopping anybody.
 *
 * Names (all prefixed ekglue_): kubernetes_events_total{resource,type}, xds_acks_total{type},
 * xds_nacks_total{type}, xds_pushes_total{type}, xds_streams{api} (gauge), last_update_timestamp_seconds,
 * push_latency_seconds (histogram: snapshot published -> response handed to gRPC), snapshot_build_seconds
 * (histogram), watch_reconnects_total{resource}, watch_relists_total{resource}, kubernetes_sync_age_seconds
 * {resource} (from the watcher's status), process_resident_memory_bytes, process_cpu_seconds_total.
 *
 * Thread: any.
 */
#ifndef EKGLUE_METRICS_H
#define EKGLUE_METRICS_H

#include <stddef.h>

#include "ekglue/resource.h"
#include "ekglue/watch.h"

/* Kubernetes watch event types, as counted. */
typedef enum {
    EKG_KEVENT_ADDED = 0,
    EKG_KEVENT_MODIFIED,
    EKG_KEVENT_DELETED,
    EKG_KEVENT_BOOKMARK,
    EKG_KEVENT__COUNT
} ekg_kube_event_t;

void ekg_metrics_kube_event(ekg_kube_resource_t r, ekg_kube_event_t e);
void ekg_metrics_xds_ack(ekg_resource_type_t t);
void ekg_metrics_xds_nack(ekg_resource_type_t t);
void ekg_metrics_xds_push(ekg_resource_type_t t);
/* api: an ekg_xds_api_t (ADS, CDS, EDS, LDS, RDS); delta +1 on open, -1 on close. */
void ekg_metrics_xds_streams(int api, int delta);
void ekg_metrics_snapshot_published(double build_seconds);
void ekg_metrics_push_latency(double seconds);

/*
 * The exposition text (text/plain; version=0.0.4). watcher may be NULL (file mode): its per-resource metrics
 * are then left out. *out is malloc'ed; the caller frees it.
 */
int ekg_metrics_render(ekg_watcher_t *watcher, char **out, size_t *len);

#endif
