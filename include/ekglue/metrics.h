/*
 * include/ekglue/metrics.h: recording ekglue's process-wide metrics (src/common/metrics.c), a leaf that every
 * layer may call. The debug port renders them (ekg_debug_metrics_render, include/ekglue/debug.h).
 *
 * A fixed set: counters and gauges are atomics, histograms have fixed buckets and atomic bucket counters, so
 * recording is lock-free and costs a few nanoseconds from any thread; nothing allocates.
 *
 * Labels are indices into the enums of the layers that record them; being a leaf, this header does not
 * include those layers, and the renderer checks at compile time that the sizes below match the enums:
 * resource types (ekg_resource_type_t, include/ekglue/resource.h), xDS APIs (ekg_xds_api_t,
 * src/xds/session.h), Kubernetes resources and watch events (ekg_kube_resource_t, ekg_kube_event_t,
 * include/ekglue/watch.h). An index out of range is ignored.
 *
 * Names (all prefixed ekglue_): kubernetes_events_total{resource,type}, xds_acks_total{type,mode},
 * xds_nacks_total{type,mode}, xds_pushes_total{type,mode}, xds_streams{api,mode} (gauge; mode: sotw or delta,
 * the xDS protocol variant), resources_invalid_total{type}, last_update_timestamp_seconds,
 * push_latency_seconds (histogram: snapshot published -> response handed to gRPC), snapshot_build_seconds
 * (histogram); the renderer adds the watcher's and the process's own figures.
 *
 * Thread: any.
 */
#ifndef EKGLUE_METRICS_H
#define EKGLUE_METRICS_H

#define EKG_METRICS_RESOURCE_TYPES 4 /* ekg_resource_type_t */
#define EKG_METRICS_XDS_APIS       5 /* ekg_xds_api_t */
#define EKG_METRICS_KUBE_RESOURCES 3 /* ekg_kube_resource_t */
#define EKG_METRICS_KUBE_EVENTS    4 /* ekg_kube_event_t */
#define EKG_METRICS_BUCKETS        14
#define EKG_METRICS_XDS_MODES      2 /* 0: state of the world, 1: incremental (delta) */

void ekg_metrics_kube_event(int kube_resource, int kube_event);
/* mode: EKG_METRICS_XDS_MODES' index (0 sotw, 1 delta). */
void ekg_metrics_xds_ack(int mode, int resource_type);
void ekg_metrics_xds_nack(int mode, int resource_type);
void ekg_metrics_xds_push(int mode, int resource_type);
/* change +1 on open, -1 on close. */
void ekg_metrics_xds_streams(int mode, int xds_api, int change);
/* A resource translation built but does not serve: it breaks one of Envoy's validation rules. */
void ekg_metrics_resource_invalid(int resource_type);
void ekg_metrics_snapshot_published(double build_seconds);
void ekg_metrics_push_latency(double seconds);

/* Upper bounds in seconds of every histogram's buckets, shared: 0.5 ms (a push to an idle stream) to 10 s. */
extern const double ekg_metrics_bucket_bounds[EKG_METRICS_BUCKETS];

typedef struct ekg_metrics_histogram {
    unsigned long long buckets[EKG_METRICS_BUCKETS]; /* per bucket, not cumulative */
    unsigned long long count;                        /* every observation, those above the last bound too */
    double sum;                                      /* seconds */
} ekg_metrics_histogram_t;

/* Every recorded value, each read once (relaxed: a histogram's count may be one ahead of its buckets). */
typedef struct ekg_metrics_values {
    unsigned long long kube_events[EKG_METRICS_KUBE_RESOURCES][EKG_METRICS_KUBE_EVENTS];
    unsigned long long xds_acks[EKG_METRICS_XDS_MODES][EKG_METRICS_RESOURCE_TYPES];
    unsigned long long xds_nacks[EKG_METRICS_XDS_MODES][EKG_METRICS_RESOURCE_TYPES];
    unsigned long long xds_pushes[EKG_METRICS_XDS_MODES][EKG_METRICS_RESOURCE_TYPES];
    long long xds_streams[EKG_METRICS_XDS_MODES][EKG_METRICS_XDS_APIS];
    unsigned long long resources_invalid[EKG_METRICS_RESOURCE_TYPES];
    double last_update; /* unix time of the last publish; 0 before */
    ekg_metrics_histogram_t push_latency;
    ekg_metrics_histogram_t snapshot_build;
} ekg_metrics_values_t;

void ekg_metrics_read(ekg_metrics_values_t *out);

#endif
