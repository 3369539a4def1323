/*
 * src/debug/metrics.c: ekglue's process-wide metrics (include/ekglue/metrics.h) and their Prometheus text
 * exposition (format 0.0.4).
 *
 * Every metric is a file-level atomic: counters and gauges are single atomic integers, a histogram is an
 * array of atomic bucket counters (one per upper bound, not cumulative: a value lands in the first bucket
 * whose bound is >= it, or only in the count when it exceeds the last bound), an atomic count and an atomic
 * sum kept in nanoseconds so that it can be added to without a lock. Recording is one or three relaxed
 * atomic additions; nothing allocates.
 *
 * Rendering reads every atomic once (relaxed: a scrape may see a histogram's count one ahead of its buckets,
 * which Prometheus tolerates), makes the buckets cumulative, and adds what is read at scrape time: the
 * watcher's per-resource status (ekg_watcher_status) and the process's own figures from /proc/self/stat and
 * /proc/self/statm. The text is built in an open_memstream buffer handed to the caller.
 *
 * Thread: recording from any thread (watcher, main, gRPC threads); rendering from the debug server's thread.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ekglue/error.h"
#include "ekglue/metrics.h"

#define NAPIS 5 /* ekg_xds_api_t: ADS, CDS, EDS, LDS, RDS (src/xds/session.h) */

/* Upper bounds in seconds, shared by both histograms: 0.5 ms (a push to an idle stream) to 10 s. */
static const double bucket_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                       0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))

typedef struct histogram {
    atomic_ullong buckets[NBUCKETS]; /* per bucket, not cumulative */
    atomic_ullong count;             /* every observation, including those above the last bound */
    atomic_ullong sum_ns;
} histogram_t;

static const char *const kube_resource_names[EKG_KUBE__COUNT] = {"services", "endpointslices", "nodes"};
static const char *const kube_event_names[EKG_KEVENT__COUNT] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK"};
static const char *const resource_type_names[EKG_RESOURCE__COUNT] = {"Cluster", "ClusterLoadAssignment",
                                                                     "Listener", "RouteConfiguration"};
static const char *const api_names[NAPIS] = {"ADS", "CDS", "EDS", "LDS", "RDS"};

static atomic_ullong kube_events[EKG_KUBE__COUNT][EKG_KEVENT__COUNT];
static atomic_ullong xds_acks[EKG_RESOURCE__COUNT];
static atomic_ullong xds_nacks[EKG_RESOURCE__COUNT];
static atomic_ullong xds_pushes[EKG_RESOURCE__COUNT];
static atomic_llong xds_streams[NAPIS];
static atomic_llong last_update_ms; /* wall clock of the last publish; 0 before */
static histogram_t push_latency;
static histogram_t snapshot_build;

/* --- recording ------------------------------------------------------------------------------------------ */

static void observe(histogram_t *h, double seconds)
{
    if (!(seconds >= 0)) /* negative or NaN: a clock went backwards; count it as 0 */
        seconds = 0;
    size_t i = 0;
    while (i < NBUCKETS && seconds > bucket_bounds[i])
        i++;
    if (i < NBUCKETS)
        atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    double ns = seconds * 1e9;
    atomic_fetch_add_explicit(&h->sum_ns, ns < 1.8e19 ? (unsigned long long)ns : 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void ekg_metrics_kube_event(ekg_kube_resource_t r, ekg_kube_event_t e)
{
    if ((unsigned)r < EKG_KUBE__COUNT && (unsigned)e < EKG_KEVENT__COUNT)
        atomic_fetch_add_explicit(&kube_events[r][e], 1, memory_order_relaxed);
}

void ekg_metrics_xds_ack(ekg_resource_type_t t)
{
    if ((unsigned)t < EKG_RESOURCE__COUNT)
        atomic_fetch_add_explicit(&xds_acks[t], 1, memory_order_relaxed);
}

void ekg_metrics_xds_nack(ekg_resource_type_t t)
{
    if ((unsigned)t < EKG_RESOURCE__COUNT)
        atomic_fetch_add_explicit(&xds_nacks[t], 1, memory_order_relaxed);
}

void ekg_metrics_xds_push(ekg_resource_type_t t)
{
    if ((unsigned)t < EKG_RESOURCE__COUNT)
        atomic_fetch_add_explicit(&xds_pushes[t], 1, memory_order_relaxed);
}

void ekg_metrics_xds_streams(int api, int delta)
{
    if (api >= 0 && api < NAPIS)
        atomic_fetch_add_explicit(&xds_streams[api], delta, memory_order_relaxed);
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

/* --- rendering ------------------------------------------------------------------------------------------ */

/* A label value with the exposition format's escapes: backslash, double quote, newline. */
static void put_label_value(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            fputs("\\\\", f);
        else if (*v == '"')
            fputs("\\\"", f);
        else if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

static void header(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP ekglue_%s %s\n# TYPE ekglue_%s %s\n", name, help, name, type);
}

/* name{key="value"} or name{k1="v1",k2="v2"}; keys are fixed identifiers, values are escaped. */
static void sample_start(FILE *f, const char *name, const char *k1, const char *v1, const char *k2,
                         const char *v2)
{
    fprintf(f, "ekglue_%s", name);
    if (!k1)
        return;
    fprintf(f, "{%s=\"", k1);
    put_label_value(f, v1);
    if (k2) {
        fprintf(f, "\",%s=\"", k2);
        put_label_value(f, v2);
    }
    fputs("\"}", f);
}

/* A double the way Prometheus prints one: shortest round-trip form, +Inf/-Inf/NaN spelled out. */
static void put_double(FILE *f, double v)
{
    if (v != v)
        fputs("NaN", f);
    else if (v > 1.7e308)
        fputs("+Inf", f);
    else if (v < -1.7e308)
        fputs("-Inf", f);
    else {
        char buf[32];
        snprintf(buf, sizeof(buf), "%.15g", v);
        if (strtod(buf, NULL) != v)
            snprintf(buf, sizeof(buf), "%.17g", v);
        fputs(buf, f);
    }
}

static void put_histogram(FILE *f, const char *name, const char *help, histogram_t *h)
{
    header(f, name, "histogram", help);
    unsigned long long cumulative = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        fprintf(f, "ekglue_%s_bucket{le=\"%g\"} %llu\n", name, bucket_bounds[i], cumulative);
    }
    unsigned long long count = atomic_load_explicit(&h->count, memory_order_relaxed);
    if (count < cumulative) /* a racing observation: keep +Inf >= every bucket */
        count = cumulative;
    fprintf(f, "ekglue_%s_bucket{le=\"+Inf\"} %llu\n", name, count);
    fprintf(f, "ekglue_%s_sum ", name);
    put_double(f, (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9);
    fprintf(f, "\nekglue_%s_count %llu\n", name, count);
}

static void put_per_type(FILE *f, const char *name, const char *help, atomic_ullong *counters)
{
    header(f, name, "counter", help);
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++) {
        sample_start(f, name, "type", resource_type_names[t], NULL, NULL);
        fprintf(f, " %llu\n", atomic_load_explicit(&counters[t], memory_order_relaxed));
    }
}

/* utime + stime of /proc/self/stat (fields 14 and 15, counted after the parenthesized command name). */
static bool process_cpu_seconds(double *out)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long long utime, stime;
    long ticks = sysconf(_SC_CLK_TCK);
    /* After ") ": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (!p || ticks <= 0 ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return false;
    *out = (double)(utime + stime) / (double)ticks;
    return true;
}

/* The second field of /proc/self/statm (resident pages) in bytes. */
static bool process_resident_bytes(double *out)
{
    unsigned long long size, resident;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return false;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    if (n != 2 || page <= 0)
        return false;
    *out = (double)resident * (double)page;
    return true;
}

static void put_watcher(FILE *f, ekg_watcher_t *watcher)
{
    ekg_watch_status_t st[EKG_KUBE__COUNT];
    for (int r = 0; r < EKG_KUBE__COUNT; r++)
        ekg_watcher_status(watcher, (ekg_kube_resource_t)r, &st[r]);

    header(f, "watch_reconnects_total", "counter",
           "Kubernetes list/watch requests that failed at the connection or server (5xx, 429) and were "
           "retried.");
    for (int r = 0; r < EKG_KUBE__COUNT; r++) {
        sample_start(f, "watch_reconnects_total", "resource", kube_resource_names[r], NULL, NULL);
        fprintf(f, " %llu\n", st[r].reconnects);
    }
    header(f, "watch_relists_total", "counter",
           "Complete relists after the first list (resourceVersion too old, or a failed watch).");
    for (int r = 0; r < EKG_KUBE__COUNT; r++) {
        sample_start(f, "watch_relists_total", "resource", kube_resource_names[r], NULL, NULL);
        fprintf(f, " %llu\n", st[r].relists);
    }
    header(
        f, "kubernetes_sync_age_seconds", "gauge",
        "Seconds since the last successful list page or watch event of the resource; -1 before the first.");
    for (int r = 0; r < EKG_KUBE__COUNT; r++) {
        sample_start(f, "kubernetes_sync_age_seconds", "resource", kube_resource_names[r], NULL, NULL);
        fputc(' ', f);
        put_double(f, st[r].last_sync_age_s);
        fputc('\n', f);
    }
}

int ekg_metrics_render(ekg_watcher_t *watcher, char **out, size_t *len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f)
        return EKG_ENOMEM;

    header(f, "kubernetes_events_total", "counter",
           "Kubernetes watch events applied, by resource and event type.");
    for (int r = 0; r < EKG_KUBE__COUNT; r++)
        for (int e = 0; e < EKG_KEVENT__COUNT; e++) {
            sample_start(f, "kubernetes_events_total", "resource", kube_resource_names[r], "type",
                         kube_event_names[e]);
            fprintf(f, " %llu\n", atomic_load_explicit(&kube_events[r][e], memory_order_relaxed));
        }
    put_per_type(f, "xds_acks_total", "xDS requests that ACKed a response, by resource type.", xds_acks);
    put_per_type(f, "xds_nacks_total", "xDS requests that NACKed (rejected) a response, by resource type.",
                 xds_nacks);
    put_per_type(f, "xds_pushes_total", "xDS responses sent to clients, by resource type.", xds_pushes);
    header(f, "xds_streams", "gauge", "Open xDS streams, by gRPC service (ADS, CDS, EDS, LDS, RDS).");
    for (int a = 0; a < NAPIS; a++) {
        sample_start(f, "xds_streams", "api", api_names[a], NULL, NULL);
        fprintf(f, " %lld\n", atomic_load_explicit(&xds_streams[a], memory_order_relaxed));
    }
    header(f, "last_update_timestamp_seconds", "gauge",
           "Unix time of the last snapshot published to the cache; 0 before the first.");
    fputs("ekglue_last_update_timestamp_seconds ", f);
    put_double(f, (double)atomic_load_explicit(&last_update_ms, memory_order_relaxed) / 1000.0);
    fputc('\n', f);
    put_histogram(f, "push_latency_seconds",
                  "Time from a snapshot's publication to its response being handed to gRPC, per stream.",
                  &push_latency);
    put_histogram(f, "snapshot_build_seconds", "Time to translate objects and build a snapshot.",
                  &snapshot_build);
    if (watcher)
        put_watcher(f, watcher);

    double v;
    if (process_resident_bytes(&v)) {
        header(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        fputs("ekglue_process_resident_memory_bytes ", f);
        put_double(f, v);
        fputc('\n', f);
    }
    if (process_cpu_seconds(&v)) {
        header(f, "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.");
        fputs("ekglue_process_cpu_seconds_total ", f);
        put_double(f, v);
        fputc('\n', f);
    }

    bool failed = ferror(f) != 0;
    if (fclose(f) != 0 || failed || !buf) {
        free(buf);
        return EKG_ENOMEM;
    }
    *out = buf;
    if (len)
        *len = size;
    return EKG_OK;
}
