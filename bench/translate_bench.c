/*
 * bench/translate_bench.c: how long ekglue takes to turn a large cluster into Envoy resources, and how much
 * memory it holds.
 *
 * Generates, as one JSON List like `kubectl get -o json` prints, N Services with 3 named ports each, their
 * EndpointSlices with E endpoints in total, spread over 1,000 Nodes in 3 zones. Then measures:
 *   parse      JSON text -> typed objects (cJSON + model)
 *   translate  objects -> Clusters and ClusterLoadAssignments, encoded (the first full build)
 *   encode     of which: upb binary encoding
 *   peak RSS   of the process after the full build
 *   update     one EndpointSlice changes (one endpoint flips readiness) -> rebuilt sets; 1,000 times over
 *              different Services, p50/p99/max
 * Targets (issue 2): full build (parse + translate) under 1 s, peak RSS under 300 MB, one-slice update under
 * 1 ms.
 *
 * --zones (issue 11) compares instead two builds of the same cluster, each in a child process of its own (so
 * that peak RSS and heap are its own): "plain", and "zones" where every Service has trafficDistribution:
 * PreferClose. Each child parses, translates, publishes the snapshot through a cache (as the daemon does) and
 * materialises the ClusterLoadAssignments a client in each of the 3 zones gets (ekg_snapshot_resources_at,
 * what serving needs); then one-slice updates, each rebuilt, published and materialised again for the 3
 * zones. Targets: zones/plain <= 1.3 for the full build time, <= 1.5 for memory.
 *
 * Usage: translate_bench [services=10000] [endpoints=100000] [--zones]
 * Thread: main only (with --zones, the main thread of the parent and of each child).
 */
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ekglue/cache.h"
#include "ekglue/clock.h"
#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/model.h"
#include "ekglue/proto.h"
#include "ekglue/translate.h"

typedef struct buf {
    char *p;
    size_t n, cap;
} buf_t;

static void put(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        void *p = b->p;
        ekg_array_reserve(&p, &b->cap, b->n + (size_t)k + 1, 1);
        b->p = p;
    }
}

static double now(void)
{
    return ekg_clock_s();
}

static const char *zones[3] = {"us-east1-a", "us-east1-b", "us-east1-c"};

/* The JSON text of one EndpointSlice of service s with `count` endpoints; endpoint `flip` is not ready. */
static void slice_json(buf_t *b, int s, int count, int flip)
{
    put(b,
        "{\"apiVersion\":\"discovery.k8s.io/"
        "v1\",\"kind\":\"EndpointSlice\",\"metadata\":{\"name\":\"svc-%d-abcde\","
        "\"namespace\":\"ns-%d\",\"resourceVersion\":\"%d\",\"labels\":{\"kubernetes.io/"
        "service-name\":\"svc-%d\","
        "\"endpointslice.kubernetes.io/"
        "managed-by\":\"endpointslice-controller.k8s.io\"}},\"addressType\":\"IPv4\","
        "\"ports\":[{\"name\":\"http\",\"port\":8080,\"protocol\":\"TCP\"},{\"name\":\"grpc\",\"port\":9090,"
        "\"protocol\":\"TCP\"},{\"name\":\"metrics\",\"port\":9100,\"protocol\":\"TCP\"}],\"endpoints\":[",
        s, s % 100, s, s);
    for (int e = 0; e < count; e++) {
        int ip = s * 16 + e;
        int node = (s * 7 + e) % 1000;
        put(b,
            "%s{\"addresses\":[\"10.%d.%d.%d\"],\"conditions\":{\"ready\":%s,\"serving\":true,"
            "\"terminating\":false},"
            "\"nodeName\":\"node-%d\",\"zone\":\"%s\",\"targetRef\":{\"kind\":\"Pod\",\"name\":\"svc-%d-pod-%"
            "d\","
            "\"namespace\":\"ns-%d\"}}",
            e ? "," : "", (ip >> 16) & 255, (ip >> 8) & 255, ip & 255, e == flip ? "false" : "true", node,
            zones[node % 3], s, e, s % 100);
    }
    put(b, "]}");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The whole input, as one List: 1,000 Nodes in 3 zones, the Services (spec.trafficDistribution td unless
 * NULL), their slices. */
static void make_input(buf_t *b, int nservices, int nendpoints, const char *td)
{
    char tdfield[64] = "";
    if (td)
        snprintf(tdfield, sizeof(tdfield), "\"trafficDistribution\":\"%s\",", td);
    put(b, "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[");
    for (int n = 0; n < 1000; n++)
        put(b,
            "%s{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"node-%d\",\"labels\":{"
            "\"kubernetes.io/hostname\":\"node-%d\",\"topology.kubernetes.io/region\":\"us-east1\","
            "\"topology.kubernetes.io/zone\":\"%s\"}}}",
            n ? "," : "", n, n, zones[n % 3]);
    for (int s = 0; s < nservices; s++) {
        put(b,
            ",{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"svc-%d\",\"namespace\":"
            "\"ns-%d\","
            "\"resourceVersion\":\"%d\"},\"spec\":{\"type\":\"ClusterIP\",\"clusterIP\":\"10.96.%d.%d\",%s"
            "\"ports\":["
            "{\"name\":\"http\",\"port\":80,\"targetPort\":8080,\"protocol\":\"TCP\"},"
            "{\"name\":\"grpc\",\"port\":9090,\"targetPort\":\"grpc\",\"protocol\":\"TCP\"},"
            "{\"name\":\"metrics\",\"port\":9100,\"targetPort\":9100,\"protocol\":\"TCP\"}]}}",
            s, s % 100, s, (s >> 8) & 255, s & 255, tdfield);
    }
    int per = nendpoints / nservices, extra = nendpoints % nservices;
    for (int s = 0; s < nservices; s++) {
        put(b, ",");
        slice_json(b, s, per + (s < extra), -1);
    }
    put(b, "]}");
}

/* --- --zones: the same build with and without zone priorities ------------------------------------------ */

enum { ZROUNDS = 1000 };

/* What one child measured (written to the parent over a pipe). */
typedef struct zresult {
    int ok;
    double json_mb;
    double parse_ms, snapshot_ms, places_ms, full_ms; /* full = parse + snapshot (build + publish) + places */
    double peak_rss_mb;                               /* ru_maxrss after the full build */
    double heap_mb; /* mallinfo2 in use after the build, input freed, minus before the input was made */
    double heap_places_mb; /* of which: what materialising the 3 zones added */
    double rss_mb;         /* VmRSS at the same moment */
    double nla;            /* load assignments in the base set */
    double base_mb;        /* encoded bytes of the base set's load assignments */
    double zone_n[3];      /* load assignments of each zone's set that are not the base one (variants) */
    double zone_mb[3];
    double places;                         /* place keys the snapshot built sets for */
    double upd_p50, upd_p99, upd_max;      /* one-slice update: put_slice -> published + 3 zones */
    double upd_places_p50, upd_places_max; /* of which materialising the 3 zones */
    double upd_redone;                     /* Services retranslated per update */
} zresult_t;

static long vm_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static double heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (double)(mi.uordblks + mi.hblkhd);
}

/* Looks up every type's set for a client in each of the 3 zones (what a stream does when a snapshot comes).
 */
static void materialise(ekg_snapshot_t *snap)
{
    for (int z = 0; z < 3; z++) {
        ekg_place_t place = {"us-east1", zones[z], ""};
        for (int ty = 0; ty < EKG_RESOURCE__COUNT; ty++)
            ekg_snapshot_resources_at(snap, (ekg_resource_type_t)ty, &place);
    }
}

static double set_mb(const ekg_resource_set_t *set, const ekg_resource_set_t *base, double *n)
{
    size_t bytes = 0, count = 0;
    for (size_t i = 0; i < ekg_resource_set_size(set); i++) {
        ekg_resource_t *r = ekg_resource_set_at(set, i);
        if (base && ekg_resource_set_at(base, i) == r)
            continue;
        size_t len;
        ekg_resource_data(r, &len);
        bytes += len;
        count++;
    }
    if (n)
        *n = (double)count;
    return (double)bytes / 1e6;
}

/* One child: the whole measurement for one variant. Returns its exit status. */
static int zone_child(int nservices, int nendpoints, bool prefer_close, zresult_t *res)
{
    ekg_diag_t diag = {{0}};
    ekg_log_set_level(EKG_LOG_WARN);
    if (ekg_proto_init(&diag) != EKG_OK) {
        fprintf(stderr, "%s\n", diag.msg);
        return 1;
    }
    double heap0 = heap_bytes();
    buf_t b = {0};
    make_input(&b, nservices, nendpoints, prefer_close ? "PreferClose" : NULL);
    res->json_mb = (double)b.n / 1e6;
    ekg_config_t *cfg = NULL;
    if (ekg_config_default(&cfg, &diag))
        return 1;
    ekg_translator_t *t = ekg_translator_new(cfg);
    ekg_cache_t *cache = ekg_cache_new();
    ekg_objects_t objs = {0};

    double t0 = now();
    if (ekg_objects_add_buffer(&objs, b.p, b.n, "bench.json", &diag)) {
        fprintf(stderr, "parse: %s\n", diag.msg);
        return 1;
    }
    double t1 = now();
    ekg_translator_put_objects(t, &objs);
    if (ekg_cache_publish_translation(cache, t, NULL, NULL))
        return 1;
    double t2 = now();
    double heap2 = heap_bytes(); /* not timed */
    double t2b = now();
    ekg_snapshot_t *snap = ekg_cache_current(cache);
    materialise(snap);
    double t3 = now();
    res->heap_places_mb = (heap_bytes() - heap2) / 1e6;
    res->parse_ms = (t1 - t0) * 1e3;
    res->snapshot_ms = (t2 - t1) * 1e3;
    res->places_ms = (t3 - t2b) * 1e3;
    res->full_ms = res->parse_ms + res->snapshot_ms + res->places_ms;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    res->peak_rss_mb = (double)ru.ru_maxrss / 1024.0;
    ekg_objects_free(&objs);
    free(b.p);
    b = (buf_t){0};
    res->heap_mb = (heap_bytes() - heap0) / 1e6;
    res->rss_mb = (double)vm_rss_kb() / 1024.0;

    ekg_resource_set_t *base = ekg_snapshot_resources(snap, EKG_RESOURCE_LOAD_ASSIGNMENT);
    res->nla = (double)ekg_resource_set_size(base);
    res->base_mb = set_mb(base, NULL, NULL);
    for (int z = 0; z < 3; z++) {
        ekg_place_t place = {"us-east1", zones[z], ""};
        ekg_resource_set_t *at = ekg_snapshot_resources_at(snap, EKG_RESOURCE_LOAD_ASSIGNMENT, &place);
        res->zone_mb[z] = at == base ? 0 : set_mb(at, base, &res->zone_n[z]);
    }
    res->places = (double)ekg_snapshot_place_count(snap);
    ekg_snapshot_unref(snap);

    /* One-slice updates, as translate_bench's default mode, each published and materialised. */
    double *lat = ekg_xmalloc(ZROUNDS * sizeof(double)), *plat = ekg_xmalloc(ZROUNDS * sizeof(double));
    int per = nendpoints / nservices, extra = nendpoints % nservices;
    size_t redone = 0;
    for (int r = 0; r < ZROUNDS; r++) {
        int s = (int)(((long long)r * 7919) % nservices);
        b.n = 0;
        /* Visit v of Service s (fewer Services than updates come round again) flips endpoint v % (count + 1),
         * none when that is count: every visit differs from the one before, so every update changes it. */
        int count = per + (s < extra), v = r / nservices, flip = v % (count + 1);
        slice_json(&b, s, count, flip == count ? -1 : flip);
        cJSON *obj = cJSON_ParseWithLength(b.p, b.n);
        ekg_endpoint_slice_t *slice = NULL;
        if (!obj || ekg_endpoint_slice_from_json(obj, &slice, &diag))
            return 1;
        cJSON_Delete(obj);
        bool taken = false;
        double a = now();
        ekg_translator_put_slice(t, slice);
        if (ekg_cache_publish_translation(cache, t, &taken, NULL))
            return 1;
        double m = now();
        snap = ekg_cache_current(cache);
        materialise(snap);
        double e = now();
        ekg_snapshot_unref(snap);
        if (!taken) {
            fprintf(stderr, "update %d: the cache did not take the new snapshot\n", r);
            return 1;
        }
        lat[r] = e - a;
        plat[r] = e - m;
        ekg_translate_stats_t st;
        ekg_translator_last_stats(t, &st);
        redone += st.services_translated;
    }
    qsort(lat, ZROUNDS, sizeof(double), cmp_double);
    qsort(plat, ZROUNDS, sizeof(double), cmp_double);
    res->upd_p50 = lat[ZROUNDS / 2] * 1e3;
    res->upd_p99 = lat[ZROUNDS * 99 / 100] * 1e3;
    res->upd_max = lat[ZROUNDS - 1] * 1e3;
    res->upd_places_p50 = plat[ZROUNDS / 2] * 1e3;
    res->upd_places_max = plat[ZROUNDS - 1] * 1e3;
    res->upd_redone = (double)redone / ZROUNDS;
    res->ok = 1;
    free(lat);
    free(plat);
    free(b.p);
    ekg_cache_free(cache);
    ekg_translator_free(t);
    ekg_config_free(cfg);
    ekg_proto_shutdown();
    return 0;
}

/* Runs zone_child in a fresh child process (its own peak RSS and heap) and collects its result. */
static int run_zone_child(int nservices, int nendpoints, bool prefer_close, zresult_t *res)
{
    int p[2];
    if (pipe(p))
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        zresult_t r = {0};
        int rc = zone_child(nservices, nendpoints, prefer_close, &r);
        const char *c = (const char *)&r;
        for (size_t left = sizeof(r); left;) {
            ssize_t k = write(p[1], c, left);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                _exit(1);
            c += k;
            left -= (size_t)k;
        }
        _exit(rc);
    }
    close(p[1]);
    size_t got = 0;
    while (pid > 0 && got < sizeof(*res)) {
        ssize_t k = read(p[0], (char *)res + got, sizeof(*res) - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(p[0]);
    int status = 0;
    if (pid > 0)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    if (pid < 0 || got != sizeof(*res) || !res->ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "translate_bench: the %s child failed\n", prefer_close ? "zones" : "plain");
        return -1;
    }
    return 0;
}

static void zrow(const char *label, double plain, double zones_, const char *fmt)
{
    char a[32], b[32], r[32] = "";
    snprintf(a, sizeof(a), fmt, plain);
    snprintf(b, sizeof(b), fmt, zones_);
    if (plain > 0)
        snprintf(r, sizeof(r), "%.2f", zones_ / plain);
    printf("%-52s %10s %10s %7s\n", label, a, b, r);
}

static int zones_main(int nservices, int nendpoints)
{
    zresult_t pl = {0}, zo = {0};
    printf(
        "translate_bench --zones: %d services x 3 ports, %d endpoints, 1000 nodes in 3 zones (one region); "
        "zones: every Service trafficDistribution: PreferClose; each variant in a child process of its own\n",
        nservices, nendpoints);
    if (run_zone_child(nservices, nendpoints, false, &pl) || run_zone_child(nservices, nendpoints, true, &zo))
        return 1;
    printf("\n%-52s %10s %10s %7s\n", "", "plain", "zones", "ratio");
    zrow("input JSON (MB)", pl.json_mb, zo.json_mb, "%.1f");
    zrow("parse (ms)", pl.parse_ms, zo.parse_ms, "%.1f");
    zrow("translate + snapshot + publish (ms)", pl.snapshot_ms, zo.snapshot_ms, "%.1f");
    zrow("materialise 3 zones' sets (ms)", pl.places_ms, zo.places_ms, "%.1f");
    zrow("full build, all of the above (ms)", pl.full_ms, zo.full_ms, "%.1f");
    zrow("peak RSS after the full build (MB)", pl.peak_rss_mb, zo.peak_rss_mb, "%.1f");
    zrow("heap in use after it, input freed (MB)", pl.heap_mb, zo.heap_mb, "%.1f");
    zrow("  of which the 3 zones' sets (MB)", pl.heap_places_mb, zo.heap_places_mb, "%.1f");
    zrow("RSS after it, input freed (MB)", pl.rss_mb, zo.rss_mb, "%.1f");
    zrow("load assignments (base set)", pl.nla, zo.nla, "%.0f");
    zrow("  encoded bytes, base set (MB)", pl.base_mb, zo.base_mb, "%.1f");
    for (int z = 0; z < 3; z++) {
        char label[64];
        snprintf(label, sizeof(label), "  zone %s: variants / their bytes (MB)", zones[z]);
        char a[32], b2[32];
        snprintf(a, sizeof(a), "%.0f/%.1f", pl.zone_n[z], pl.zone_mb[z]);
        snprintf(b2, sizeof(b2), "%.0f/%.1f", zo.zone_n[z], zo.zone_mb[z]);
        printf("%-52s %10s %10s\n", label, a, b2);
    }
    zrow("place keys with sets of their own", pl.places, zo.places, "%.0f");
    char label[80];
    snprintf(label, sizeof(label), "one-slice update + 3 zones p50 (ms, %d updates)", ZROUNDS);
    zrow(label, pl.upd_p50, zo.upd_p50, "%.3f");
    zrow("one-slice update + 3 zones p99 (ms)", pl.upd_p99, zo.upd_p99, "%.3f");
    zrow("one-slice update + 3 zones max (ms)", pl.upd_max, zo.upd_max, "%.3f");
    zrow("  of which materialising the 3 zones p50 (ms)", pl.upd_places_p50, zo.upd_places_p50, "%.3f");
    zrow("  of which materialising the 3 zones max (ms)", pl.upd_places_max, zo.upd_places_max, "%.3f");
    zrow("  Services redone per update", pl.upd_redone, zo.upd_redone, "%.1f");
    double rt = zo.full_ms / pl.full_ms, rp = zo.peak_rss_mb / pl.peak_rss_mb, rh = zo.heap_mb / pl.heap_mb;
    double inc = zo.upd_p99 / zo.full_ms;
    bool ok = rt <= 1.3 && rp <= 1.5 && rh <= 1.5;
    printf(
        "\nratios (zones/plain): full build time %.2f (target <= 1.3 %s), peak RSS %.2f and heap in use %.2f "
        "(target <= 1.5 %s)\n",
        rt, rt <= 1.3 ? "met" : "MISSED", rp, rh, rp <= 1.5 && rh <= 1.5 ? "met" : "MISSED");
    printf("incremental (zones): one-slice update + 3 zones p99 %.3f ms = %.4f of the full build (%.1f ms)\n",
           zo.upd_p99, inc, zo.full_ms);
    return ok ? 0 : 3;
}

int main(int argc, char **argv)
{
    int nservices = 10000, nendpoints = 100000, pos = 0;
    bool zones_mode = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--zones") == 0)
            zones_mode = true;
        else if (argv[i][0] != '-' && pos < 2)
            *(pos++ == 0 ? &nservices : &nendpoints) = atoi(argv[i]);
        else {
            fprintf(stderr, "usage: translate_bench [services=10000] [endpoints=100000] [--zones]\n");
            return 2;
        }
    }
    if (nservices < 1 || nendpoints < 0) {
        fprintf(stderr, "translate_bench: services >= 1, endpoints >= 0\n");
        return 2;
    }
    ekg_diag_t diag = {{0}};
    ekg_mem_init(); /* as the daemon's main() does: cJSON allocates through ekglue/mem.h */
    if (zones_mode && nendpoints < nservices) {
        fprintf(stderr, "translate_bench: --zones needs endpoints >= services (each update flips one)\n");
        return 2;
    }
    if (zones_mode)
        return zones_main(nservices, nendpoints);
    ekg_log_set_level(EKG_LOG_WARN);
    if (ekg_proto_init(&diag) != EKG_OK) {
        fprintf(stderr, "%s\n", diag.msg);
        return 1;
    }

    buf_t b = {0};
    make_input(&b, nservices, nendpoints, NULL);
    int per = nendpoints / nservices, extra = nendpoints % nservices;
    printf("input: %d services x 3 ports, %d endpoints, 1000 nodes in 3 zones, %.1f MB of JSON\n", nservices,
           nendpoints, (double)b.n / 1e6);

    ekg_config_t *cfg = NULL;
    ekg_translator_t *t = NULL;
    ekg_objects_t objs = {0};
    ekg_resource_set_t *cl = NULL, *la = NULL;
    if (ekg_config_default(&cfg, &diag))
        return 1;
    t = ekg_translator_new(cfg);

    double t0 = now();
    if (ekg_objects_add_buffer(&objs, b.p, b.n, "bench.json", &diag)) {
        fprintf(stderr, "parse: %s\n", diag.msg);
        return 1;
    }
    double t1 = now();
    size_t nobj = objs.nservices + objs.nslices + objs.nnodes;
    ekg_translator_put_objects(t, &objs);
    if (ekg_translator_build(t, &cl, &la))
        return 1;
    double t2 = now();
    ekg_translate_stats_t st;
    ekg_translator_last_stats(t, &st);
    ekg_objects_free(&objs);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    /* For comparison only, after the peak RSS was taken: cJSON alone on the same text. */
    double c0 = now();
    cJSON *probe = cJSON_ParseWithLength(b.p, b.n);
    double c1 = now();
    cJSON_Delete(probe);
    free(b.p);
    size_t bytes = 0;
    for (size_t i = 0; i < ekg_resource_set_size(la); i++) {
        size_t len;
        ekg_resource_data(ekg_resource_set_at(la, i), &len);
        bytes += len;
    }
    printf("parse:      %8.1f ms  (%zu objects)\n", (t1 - t0) * 1e3, nobj);
    printf("  cJSON:    %8.1f ms  (cJSON_Parse alone on the same text, for comparison)\n", (c1 - c0) * 1e3);
    printf("translate:  %8.1f ms  (%zu clusters, %zu load assignments, %.1f MB encoded endpoints)\n",
           (t2 - t1) * 1e3, ekg_resource_set_size(cl), ekg_resource_set_size(la), (double)bytes / 1e6);
    printf("  encode:   %8.1f ms  (part of translate)\n", (double)st.encode_ns / 1e6);
    printf("full build: %8.1f ms  (target < 1000 ms)\n", (t2 - t0) * 1e3);
    printf("peak RSS:   %8.1f MB  (target < 300 MB; includes the 29 MB input text and the benchmark's own "
           "buffers)\n",
           (double)ru.ru_maxrss / 1024.0);

    /* One-slice updates: each flips one endpoint of a different Service to not ready. */
    enum { ROUNDS = 1000 };
    double *lat = ekg_xmalloc(ROUNDS * sizeof(double));
    buf_t sb = {0};
    size_t redone = 0;
    const char *v0 = ekg_resource_set_version(la);
    char first_version[32];
    snprintf(first_version, sizeof(first_version), "%s", v0);
    for (int r = 0; r < ROUNDS; r++) {
        int s = (int)(((long long)r * 7919) % nservices);
        sb.n = 0;
        slice_json(&sb, s, per + (s < extra), r % (per ? per : 1));
        cJSON *obj = cJSON_ParseWithLength(sb.p, sb.n);
        ekg_endpoint_slice_t *slice = NULL;
        if (!obj || ekg_endpoint_slice_from_json(obj, &slice, &diag))
            return 1;
        cJSON_Delete(obj);
        ekg_resource_set_t *cl2 = NULL, *la2 = NULL;
        double a = now();
        ekg_translator_put_slice(t, slice);
        if (ekg_translator_build(t, &cl2, &la2))
            return 1;
        lat[r] = now() - a;
        ekg_translator_last_stats(t, &st);
        redone += st.services_translated;
        if (cl2 != cl || la2 == la) {
            fprintf(stderr, "update %d: expected new load assignments and the same clusters\n", r);
            return 1;
        }
        ekg_resource_set_unref(cl2);
        ekg_resource_set_unref(la);
        la = la2;
    }
    qsort(lat, ROUNDS, sizeof(double), cmp_double);
    printf(
        "one-slice update: p50 %.3f ms, p99 %.3f ms, max %.3f ms over %d updates, %.1f services redone each "
        "(target < 1 ms)\n",
        lat[ROUNDS / 2] * 1e3, lat[ROUNDS * 99 / 100] * 1e3, lat[ROUNDS - 1] * 1e3, ROUNDS,
        (double)redone / ROUNDS);
    getrusage(RUSAGE_SELF, &ru);
    printf("peak RSS at the end: %.1f MB (the cJSON comparison parse above raised it)\n",
           (double)ru.ru_maxrss / 1024.0);

    free(lat);
    free(sb.p);
    ekg_resource_set_unref(cl);
    ekg_resource_set_unref(la);
    ekg_translator_free(t);
    ekg_config_free(cfg);
    ekg_proto_shutdown();
    return 0;
}
