/*
 * src/debug/metrics.c: the Prometheus text exposition (format 0.0.4) of ekglue's metrics for /metrics.
 *
 * The values are recorded by every layer through the leaf src/common/metrics.c; this reads them once
 * (ekg_metrics_read: relaxed, so a scrape may see a histogram's count one ahead of its buckets, which
 * Prometheus tolerates), makes the buckets cumulative, and adds what is read at scrape time: the watcher's
 * per-resource status (ekg_watcher_status, of the watcher the debug server was handed) and the process's own
 * figures from /proc/self/stat and /proc/self/statm. The text is built in an open_memstream buffer handed to
 * the caller (ekg_xmemstream: out of memory aborts, so rendering cannot fail).
 *
 * Thread: the debug server's.
 */
#include <stdbool.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ekglue/debug.h"
#include "ekglue/file.h"
#include "ekglue/mem.h"
#include "ekglue/metrics.h"
#include "ekglue/resource.h"
#include "ekglue/watch.h"
#include "ekglue/xds.h"

#include "debug/debug_internal.h"

static const char *const kube_resource_names[EKG_KUBE__COUNT] = {"services", "endpointslices", "nodes"};
static const char *const kube_event_names[EKG_KEVENT__COUNT] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK"};
static const char *const resource_type_names[EKG_RESOURCE__COUNT] = {"Cluster", "ClusterLoadAssignment",
                                                                     "Listener", "RouteConfiguration"};
static const char *const api_names[EKG_METRICS_XDS_APIS] = {"ADS", "CDS", "EDS", "LDS", "RDS"};

_Static_assert(EKG_METRICS_RESOURCE_TYPES == EKG_RESOURCE__COUNT, "metrics.h: resource types");
_Static_assert(EKG_METRICS_XDS_APIS == EKG_XDS__APIS, "metrics.h: xDS APIs");
_Static_assert(EKG_METRICS_KUBE_RESOURCES == EKG_KUBE__COUNT, "metrics.h: Kubernetes resources");
_Static_assert(EKG_METRICS_KUBE_EVENTS == EKG_KEVENT__COUNT, "metrics.h: watch events");

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

static void put_histogram(FILE *f, const char *name, const char *help, const ekg_metrics_histogram_t *h)
{
    header(f, name, "histogram", help);
    unsigned long long cumulative = 0;
    for (size_t i = 0; i < EKG_METRICS_BUCKETS; i++) {
        cumulative += h->buckets[i];
        fprintf(f, "ekglue_%s_bucket{le=\"%g\"} %llu\n", name, ekg_metrics_bucket_bounds[i], cumulative);
    }
    unsigned long long count = h->count;
    if (count < cumulative) /* a racing observation: keep +Inf >= every bucket */
        count = cumulative;
    fprintf(f, "ekglue_%s_bucket{le=\"+Inf\"} %llu\n", name, count);
    fprintf(f, "ekglue_%s_sum ", name);
    put_double(f, h->sum);
    fprintf(f, "\nekglue_%s_count %llu\n", name, count);
}

static const char *const mode_names[EKG_METRICS_XDS_MODES] = {"sotw", "delta"};

static void put_per_type(FILE *f, const char *name, const char *help,
                         const unsigned long long counters[EKG_METRICS_XDS_MODES][EKG_METRICS_RESOURCE_TYPES])
{
    header(f, name, "counter", help);
    for (int m = 0; m < EKG_METRICS_XDS_MODES; m++)
        for (int t = 0; t < EKG_RESOURCE__COUNT; t++) {
            sample_start(f, name, "type", resource_type_names[t], "mode", mode_names[m]);
            fprintf(f, " %llu\n", counters[m][t]);
        }
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* The sanitizers' allocator replaces malloc: ask it (declared in sanitizer/allocator_interface.h, which GCC
 * 12 does not install; the function is in libasan and libtsan). */
size_t __sanitizer_get_current_allocated_bytes(void);
static double heap_in_use_bytes(void)
{
    return (double)__sanitizer_get_current_allocated_bytes();
}
#else
/* glibc: chunks in use in every arena plus mmap'd blocks. */
static double heap_in_use_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (double)mi.uordblks + (double)mi.hblkhd;
}
#endif

/* utime + stime of /proc/self/stat (fields 14 and 15, counted after the parenthesized command name). */
static bool process_cpu_seconds(double *out)
{
    char *buf = NULL;
    if (ekg_file_read("/proc/self/stat", 0, 0, &buf, NULL, NULL) != EKG_OK)
        return false;
    const char *p = strrchr(buf, ')');
    unsigned long long utime, stime;
    long ticks = sysconf(_SC_CLK_TCK);
    /* After ") ": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime */
    bool ok = p && ticks > 0 &&
              sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) == 2;
    free(buf);
    if (ok)
        *out = (double)(utime + stime) / (double)ticks;
    return ok;
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

void ekg_debug_metrics_render(ekg_watcher_t *watcher, char **out, size_t *len)
{
    ekg_metrics_values_t m;
    ekg_metrics_read(&m);
    char *buf = NULL;
    size_t size = 0;
    FILE *f = ekg_xmemstream(&buf, &size);

    header(f, "kubernetes_events_total", "counter",
           "Kubernetes watch events applied, by resource and event type.");
    for (int r = 0; r < EKG_KUBE__COUNT; r++)
        for (int e = 0; e < EKG_KEVENT__COUNT; e++) {
            sample_start(f, "kubernetes_events_total", "resource", kube_resource_names[r], "type",
                         kube_event_names[e]);
            fprintf(f, " %llu\n", m.kube_events[r][e]);
        }
    put_per_type(f, "xds_acks_total",
                 "xDS requests that ACKed a response, by resource type and protocol (sotw, delta).",
                 m.xds_acks);
    put_per_type(
        f, "xds_nacks_total",
        "xDS requests that NACKed (rejected) a response, by resource type and protocol (sotw, delta).",
        m.xds_nacks);
    put_per_type(f, "xds_pushes_total",
                 "xDS responses sent to clients, by resource type and protocol (sotw, delta).", m.xds_pushes);
    header(f, "xds_streams", "gauge",
           "Open xDS streams, by gRPC service (ADS, CDS, EDS, LDS, RDS) and protocol (sotw, delta).");
    for (int md = 0; md < EKG_METRICS_XDS_MODES; md++)
        for (int a = 0; a < EKG_METRICS_XDS_APIS; a++) {
            sample_start(f, "xds_streams", "api", api_names[a], "mode", mode_names[md]);
            fprintf(f, " %lld\n", m.xds_streams[md][a]);
        }
    header(f, "resources_invalid_total", "counter",
           "Resources built but not served because they break one of Envoy's validation rules, by type (each "
           "build that drops one counts it; the log names the resource and the rule).");
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++) {
        sample_start(f, "resources_invalid_total", "type", resource_type_names[t], NULL, NULL);
        fprintf(f, " %llu\n", m.resources_invalid[t]);
    }
    header(f, "last_update_timestamp_seconds", "gauge",
           "Unix time of the last snapshot published to the cache; 0 before the first.");
    fputs("ekglue_last_update_timestamp_seconds ", f);
    put_double(f, m.last_update);
    fputc('\n', f);
    put_histogram(f, "push_latency_seconds",
                  "Time from a snapshot's publication to its response being handed to gRPC, per stream.",
                  &m.push_latency);
    put_histogram(f, "snapshot_build_seconds", "Time to translate objects and build a snapshot.",
                  &m.snapshot_build);
    if (watcher)
        put_watcher(f, watcher);

    double v;
    if (process_resident_bytes(&v)) {
        header(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        fputs("ekglue_process_resident_memory_bytes ", f);
        put_double(f, v);
        fputc('\n', f);
    }
    header(
        f, "process_heap_bytes", "gauge",
        "Bytes allocated with malloc and not freed (live heap; RSS also holds the allocator's free memory).");
    fputs("ekglue_process_heap_bytes ", f);
    put_double(f, heap_in_use_bytes());
    fputc('\n', f);
    if (process_cpu_seconds(&v)) {
        header(f, "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.");
        fputs("ekglue_process_cpu_seconds_total ", f);
        put_double(f, v);
        fputc('\n', f);
    }

    ekg_xmemstream_close(f);
    *out = buf;
    if (len)
        *len = size;
}
