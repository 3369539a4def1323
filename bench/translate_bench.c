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
 * Usage: translate_bench [services=10000] [endpoints=100000]
 * Thread: main only.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

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

int main(int argc, char **argv)
{
    int nservices = argc > 1 ? atoi(argv[1]) : 10000;
    int nendpoints = argc > 2 ? atoi(argv[2]) : 100000;
    ekg_diag_t diag = {{0}};
    ekg_mem_init(); /* as the daemon's main() does: cJSON allocates through ekglue/mem.h */
    ekg_log_set_level(EKG_LOG_WARN);
    if (ekg_proto_init(&diag) != EKG_OK) {
        fprintf(stderr, "%s\n", diag.msg);
        return 1;
    }

    buf_t b = {0};
    put(&b, "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[");
    for (int n = 0; n < 1000; n++)
        put(&b,
            "%s{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"node-%d\",\"labels\":{"
            "\"kubernetes.io/hostname\":\"node-%d\",\"topology.kubernetes.io/region\":\"us-east1\","
            "\"topology.kubernetes.io/zone\":\"%s\"}}}",
            n ? "," : "", n, n, zones[n % 3]);
    for (int s = 0; s < nservices; s++) {
        put(&b,
            ",{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"svc-%d\",\"namespace\":"
            "\"ns-%d\","
            "\"resourceVersion\":\"%d\"},\"spec\":{\"type\":\"ClusterIP\",\"clusterIP\":\"10.96.%d.%d\","
            "\"ports\":["
            "{\"name\":\"http\",\"port\":80,\"targetPort\":8080,\"protocol\":\"TCP\"},"
            "{\"name\":\"grpc\",\"port\":9090,\"targetPort\":\"grpc\",\"protocol\":\"TCP\"},"
            "{\"name\":\"metrics\",\"port\":9100,\"targetPort\":9100,\"protocol\":\"TCP\"}]}}",
            s, s % 100, s, (s >> 8) & 255, s & 255);
    }
    int per = nendpoints / nservices, extra = nendpoints % nservices;
    for (int s = 0; s < nservices; s++) {
        put(&b, ",");
        slice_json(&b, s, per + (s < extra), -1);
    }
    put(&b, "]}");
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
