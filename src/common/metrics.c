/*
 * src/common/metrics.c: recording ekglue's process-wide metrics (include/ekglue/metrics.h), a leaf.
 *
 * Every metric is a file-level atomic: counters and gauges are single atomic integers, a histogram is an
 * array of atomic bucket counters (one per upper bound, not cumulative: a value lands in the first bucket
 * whose bound is >= it, or only in the count when it exceeds the last bound), an atomic count and an atomic
 * sum kept in nanoseconds so that it can be added to without a lock. Recording is one or three relaxed
 * atomic additions; nothing allocates. ekg_metrics_read copies them out for the renderer (src/debug/).
 *
 * Thread: any (the watcher, main, the gRPC threads record; the debug server's thread reads).
 */
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include "ekglue/metrics.h"

const double ekg_metrics_bucket_bounds[EKG_METRICS_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

typedef struct histogram {
    atomic_ullong buckets[EKG_METRICS_BUCKETS]; /* per bucket, not cumulative */
    atomic_ullong count;                        /* every observation, including those above the last bound */
    atomic_ullong sum_ns;
} histogram_t;

static atomic_ullong kube_events[EKG_METRICS_KUBE_RESOURCES][EKG_METRICS_KUBE_EVENTS];
static atomic_ullong xds_acks[EKG_METRICS_XDS_MODES][EKG_METRICS_RESOURCE_TYPES];
static atomic_ullong xds_nacks[EKG_METRICS_XDS_MODES][EKG_METRICS_RESOURCE_TYPES];
static atomic_ullong xds_pushes[EKG_METRICS_XDS_MODES][EKG_METRICS_RESOURCE_TYPES];
static atomic_llong xds_streams[EKG_METRICS_XDS_MODES][EKG_METRICS_XDS_APIS];
static atomic_ullong resources_invalid[EKG_METRICS_RESOURCE_TYPES];
static atomic_llong last_update_ms; /* wall clock of the last publish; 0 before */
static histogram_t push_latency;
static histogram_t snapshot_build;

/* --- recording ------------------------------------------------------------------------------------------ */

static void observe(histogram_t *h, double seconds)
{
    if (!(seconds >= 0)) /* negative or NaN: a clock went backwards; count it as 0 */
        seconds = 0;
    size_t i = 0;
    while (i < EKG_METRICS_BUCKETS && seconds > ekg_metrics_bucket_bounds[i])
        i++;
    if (i < EKG_METRICS_BUCKETS)
        atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    double ns = seconds * 1e9;
    atomic_fetch_add_explicit(&h->sum_ns, ns < 1.8e19 ? (unsigned long long)ns : 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void ekg_metrics_kube_event(int r, int e)
{
    if ((unsigned)r < EKG_METRICS_KUBE_RESOURCES && (unsigned)e < EKG_METRICS_KUBE_EVENTS)
        atomic_fetch_add_explicit(&kube_events[r][e], 1, memory_order_relaxed);
}

void ekg_metrics_xds_ack(int m, int t)
{
    if ((unsigned)m < EKG_METRICS_XDS_MODES && (unsigned)t < EKG_METRICS_RESOURCE_TYPES)
        atomic_fetch_add_explicit(&xds_acks[m][t], 1, memory_order_relaxed);
}

void ekg_metrics_xds_nack(int m, int t)
{
    if ((unsigned)m < EKG_METRICS_XDS_MODES && (unsigned)t < EKG_METRICS_RESOURCE_TYPES)
        atomic_fetch_add_explicit(&xds_nacks[m][t], 1, memory_order_relaxed);
}

void ekg_metrics_xds_push(int m, int t)
{
    if ((unsigned)m < EKG_METRICS_XDS_MODES && (unsigned)t < EKG_METRICS_RESOURCE_TYPES)
        atomic_fetch_add_explicit(&xds_pushes[m][t], 1, memory_order_relaxed);
}

void ekg_metrics_xds_streams(int m, int api, int change)
{
    if ((unsigned)m < EKG_METRICS_XDS_MODES && api >= 0 && api < EKG_METRICS_XDS_APIS)
        atomic_fetch_add_explicit(&xds_streams[m][api], change, memory_order_relaxed);
}

void ekg_metrics_resource_invalid(int t)
{
    if ((unsigned)t < EKG_METRICS_RESOURCE_TYPES)
        atomic_fetch_add_explicit(&resources_invalid[t], 1, memory_order_relaxed);
}

void ekg_metrics_snapshot_published(double build_seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    atomic_store_explicit(&last_update_ms, (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
                          memory_order_relaxed);
    observe(&snapshot_build, build_seconds);
}

void ekg_metrics_push_latency(double seconds)
{
    observe(&push_latency, seconds);
}

/* --- reading -------------------------------------------------------------------------------------------- */

static unsigned long long load(atomic_ullong *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

static void read_histogram(histogram_t *h, ekg_metrics_histogram_t *out)
{
    for (size_t i = 0; i < EKG_METRICS_BUCKETS; i++)
        out->buckets[i] = load(&h->buckets[i]);
    out->count = load(&h->count);
    out->sum = (double)load(&h->sum_ns) / 1e9;
}

void ekg_metrics_read(ekg_metrics_values_t *out)
{
    for (int r = 0; r < EKG_METRICS_KUBE_RESOURCES; r++)
        for (int e = 0; e < EKG_METRICS_KUBE_EVENTS; e++)
            out->kube_events[r][e] = load(&kube_events[r][e]);
    for (int m = 0; m < EKG_METRICS_XDS_MODES; m++) {
        for (int t = 0; t < EKG_METRICS_RESOURCE_TYPES; t++) {
            out->xds_acks[m][t] = load(&xds_acks[m][t]);
            out->xds_nacks[m][t] = load(&xds_nacks[m][t]);
            out->xds_pushes[m][t] = load(&xds_pushes[m][t]);
        }
        for (int a = 0; a < EKG_METRICS_XDS_APIS; a++)
            out->xds_streams[m][a] = atomic_load_explicit(&xds_streams[m][a], memory_order_relaxed);
    }
    for (int t = 0; t < EKG_METRICS_RESOURCE_TYPES; t++)
        out->resources_invalid[t] = load(&resources_invalid[t]);
    out->last_update = (double)atomic_load_explicit(&last_update_ms, memory_order_relaxed) / 1000.0;
    read_histogram(&push_latency, &out->push_latency);
    read_histogram(&snapshot_build, &out->snapshot_build);
}
