/*
 * bench/xds_bench.c: how fast ekglue's xDS server pushes one EndpointSlice change to many ADS streams, what
 * it costs in CPU and memory, and how that compares with the cheapest gRPC C-core server that sends the same
 * bytes (issue 3).
 *
 * Workload. S Services with one port ("http") and 4 endpoints each: S Clusters and S ClusterLoadAssignments.
 * N ADS streams over K HTTP/2 connections, each subscribed to every Cluster (wildcard CDS) and every
 * ClusterLoadAssignment (EDS naming all S), each response ACKed with version_info + response_nonce, the ACKs
 * repeating the subscription as Envoy does. A change gives one endpoint of one Service a new address, so each
 * stream gets one ClusterLoadAssignment.
 *
 * Two rounds, each in fresh processes (the server's CPU and RSS are its own, and gRPC never sees a fork):
 *   ekglue    translator -> snapshot -> cache -> ekg_xds_server (src/xds/server.c), 127.0.0.1, T threads.
 *             A change is ekg_translator_put_slice + build + ekg_snapshot_new + ekg_cache_publish on the
 * round process's main thread, which fans the update out to every stream itself. baseline  a trivial gRPC
 * C-core server (below) with the same T completion queues and threads, one RECV_MESSAGE outstanding per call,
 * sends serialized per call, that answers the first CDS and EDS request with pre-encoded bytes and on a
 * change sends the pre-encoded update to every stream from the changing thread. Its bytes are ekglue's own
 * translator output (the same resources, versions and sizes).
 *
 * Processes. `xds_bench` (the orchestrator) runs each round as `xds_bench --round NAME ...`, which is the
 * server and runs its clients as `xds_bench --client ...` (fork + exec). Round <-> client talk over two pipes
 * (fds 3 and 4 in the client): the round writes the ClusterLoadAssignment names, then one-byte commands;
 * the client writes fixed-size records (ready, change k received by the last stream at time t, ACKs of change
 * k sent, done, error). CLOCK_MONOTONIC is shared by the processes of one machine. The round sends its
 * results to the orchestrator over a third pipe; the orchestrator prints the table.
 *
 * Every wait is bounded: a stream that misses an update for 10 s (a new Service: 60 s) fails the run (exit
 * 1).
 *
 * --zones (issue 11): every Service has trafficDistribution: PreferClose, its endpoints are on Nodes in 3
 * zones of one region, and the clients are spread over those zones (node.locality in their first request),
 * every tenth stream without a locality. So each zone's streams get their own per-zone ClusterLoadAssignments
 * (ekg_snapshot_resources_at), the others the plain ones. The baseline then sends each stream the bytes of
 * its own group (the zone it names, or none), made by ekglue's translator; a third round, "plain", is ekglue
 * with endpoint_config.zone_priorities: never on the same objects and clients (no per-zone sets).
 *
 * --delta (issue 12): the rounds are ekglue twice, over the same workload and the same client code: "ekglue"
 * on StreamAggregatedResources (state of the world) and "delta" on DeltaAggregatedResources, whose client
 * behaves like Envoy's DELTA_GRPC: the first Cluster request names nothing (legacy wildcard), then one
 * request subscribes every load assignment, every response is ACKed by nonce alone. After the endpoint
 * changes, three scenarios run in both rounds:
 *   - new Services (--new-services M, 3 by default): a Service with its ports and slice appears; a stream
 * has it once it got the new Clusters and, after subscribing them as Envoy does, their load assignments
 * (SotW: the Cluster response carries every Cluster, the EDS request names every load assignment again);
 * the bytes of both responses per stream are counted;
 *   - reconnect: every stream is cancelled and reopened at once. SotW streams send version_info (the server
 * sends everything again); delta streams send initial_resource_versions of everything they have (ekglue
 * must resend nothing). A delta server says nothing when nothing is due, so each delta stream's EDS request
 * also subscribes one name that does not exist (PROBE_NAME): its removed_resources answer says the stream's
 * requests were all applied. Every resource received until then counts as resent;
 *   - one more endpoint change, which every reconnected stream must get exactly (they are in step).
 * --ports P gives every Service P ports (P Clusters and P load assignments; an endpoint change then changes
 * all P of its Service's load assignments). Workloads with more names than the server's per-request and
 * per-stream name limits allow run with those limits off, as an operator serving such clients would.
 *
 * Usage: xds_bench [streams=1000] [services=1000] [changes=50] [--threads T=2] [--channels K=10]
 *                  [--only ekglue|baseline|plain|delta] [--trim-ms MS] [--zones] [--ports P=1]
 *                  [--delta [--new-services M=3]]
 * --trim-ms sets the server's trim_quiet_ms (include/ekglue/xds.h): -1 never returns freed heap to the
 * system, to measure what malloc_trim saves and costs.
 * Exit: 0 targets met, 3 a target missed, 1 the benchmark failed, 2 usage.
 *
 * Threads. Orchestrator: main only. Round: main (changes, measurements) + the server's T gRPC threads.
 * Client: main (commands) + 2 threads, each draining its own completion queue for its streams.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "envoy/config/core/v3/base.upb.h"
#include "envoy/service/discovery/v3/discovery.upb.h"
#include "google/protobuf/any.upb.h"

#include "ekglue/translate.h"
#include "ekglue/clock.h"
#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/model.h"
#include "ekglue/proto.h"
#include "ekglue/resource.h"
#include "ekglue/cache.h"
#include "ekglue/xds.h"

#define ENDPOINTS      4 /* per Service */
#define MAX_CHANGES    1000
#define CLIENT_THREADS 2
#define CHANGE_TIMEOUT 10000 /* ms: every stream has the update, or the run fails */
#define SYNC_TIMEOUT   90000 /* ms: every stream has its initial state */
#define IDLE_WINDOW_MS 2000
#define ADS_METHOD     "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define DELTA_METHOD   "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
#define MAX_NEW        100   /* --new-services */
#define NEW_TIMEOUT    60000 /* ms: every stream has a new Service (a SotW Cluster response holds them all) */
#define RESYNC_TIMEOUT 180000 /* ms: every stream is back after the reconnect */
/* --delta reconnect: a load assignment name that never exists; its removed_resources answer ends the resync
 */
#define PROBE_NAME "xds-bench-sync-probe"
#define CDS_TYPE   "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define EDS_TYPE   "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
/* --zones: clients in zones a, b, c of REGION, and clients without a locality (group NO_LOCALITY). */
#define NGROUPS     4
#define NO_LOCALITY 3
#define REGION      "us-east1"
#define ZONE_NODES  30 /* Nodes, ZONE_NODES / 3 per zone */

/* --- small helpers ------------------------------------------------------------------------------------- */

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
        b->cap = b->cap ? b->cap * 2 : 1 << 16;
        b->p = ekg_xrealloc(b->p, b->cap);
    }
}

static void put_bytes(buf_t *b, const void *data, size_t len)
{
    while (b->cap - b->n < len + 1) {
        b->cap = b->cap ? b->cap * 2 : 1 << 16;
        b->p = ekg_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, data, len);
    b->n += len;
}

static double now_s(void)
{
    return ekg_clock_s();
}

/* CPU time of the whole process (every thread), in ms. */
static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* CPU time of the calling thread, in ms. */
static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long rss_kb(void)
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

/* Bytes malloc has handed out and not got back (every arena, mmapped chunks included). */
static double heap_kb(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (double)(mi.uordblks + mi.hblkhd) / 1024.0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, int n, double p)
{
    int i = (int)ceil(p * n) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static bool write_all(int fd, const void *p, size_t len)
{
    const char *c = p;
    while (len) {
        ssize_t k = write(fd, c, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        c += k;
        len -= (size_t)k;
    }
    return true;
}

/* Reads exactly len bytes within timeout_ms (in total). false on timeout, EOF or error. */
static bool read_all(int fd, void *p, size_t len, int timeout_ms)
{
    char *c = p;
    double deadline = now_s() + timeout_ms / 1e3;
    while (len) {
        int left = (int)((deadline - now_s()) * 1e3);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left < 0 || poll(&pfd, 1, left) == 0)
            return false;
        ssize_t k = read(fd, c, len);
        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (k <= 0)
            return false;
        c += k;
        len -= (size_t)k;
    }
    return true;
}

/* Waits up to timeout_ms for pid; kills it after that. Returns its exit status, or -1. */
static int reap(pid_t pid, int timeout_ms)
{
    int status;
    for (int waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (r < 0)
            return -1;
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        sleep_ms(10);
    }
}

/* --- the workload: Services, slices and changes ------------------------------------------------------- */

/* The name of port i of every Service (--ports): "http", then "port-1", "port-2", ... */
static void port_name(int i, char out[16])
{
    if (i == 0)
        snprintf(out, 16, "http");
    else
        snprintf(out, 16, "port-%d", i);
}

/* zones: the Service prefers close endpoints (trafficDistribution: PreferClose). Port i is 80 + i, its target
 * 8080 + i. */
static void service_json(buf_t *b, int s, bool zones, int ports)
{
    put(b,
        "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"svc-%d\",\"namespace\":\"ns-%"
        "d\","
        "\"resourceVersion\":\"%d\"},\"spec\":{\"type\":\"ClusterIP\",\"clusterIP\":\"10.96.%d.%d\",%s"
        "\"ports\":[",
        s, s % 100, s, (s >> 8) & 255, s & 255, zones ? "\"trafficDistribution\":\"PreferClose\"," : "");
    for (int i = 0; i < ports; i++) {
        char name[16];
        port_name(i, name);
        put(b, "%s{\"name\":\"%s\",\"port\":%d,\"targetPort\":%d,\"protocol\":\"TCP\"}", i ? "," : "", name,
            80 + i, 8080 + i);
    }
    put(b, "]}}");
}

/* Node n of the --zones workload, in zone n % 3 of REGION. */
static void node_json(buf_t *b, int n)
{
    put(b,
        "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"node-%d\",\"labels\":{"
        "\"topology.kubernetes.io/region\":\"" REGION "\",\"topology.kubernetes.io/zone\":\"" REGION
        "-%c\"}}}",
        n, 'a' + n % 3);
}

/* The slice of Service s; change >= 0 gives endpoint (change % ENDPOINTS) an address no change used before.
 * zones: each endpoint also names its Node (one in its zone). Every endpoint serves the Service's ports. */
static void slice_json(buf_t *b, int s, int change, bool zones, int ports)
{
    put(b,
        "{\"apiVersion\":\"discovery.k8s.io/"
        "v1\",\"kind\":\"EndpointSlice\",\"metadata\":{\"name\":\"svc-%d-abcde\","
        "\"namespace\":\"ns-%d\",\"resourceVersion\":\"%d\",\"labels\":{\"kubernetes.io/"
        "service-name\":\"svc-%d\"}},"
        "\"addressType\":\"IPv4\",\"ports\":[",
        s, s % 100, change >= 0 ? 1000000 + change : s, s);
    for (int i = 0; i < ports; i++) {
        char name[16];
        port_name(i, name);
        put(b, "%s{\"name\":\"%s\",\"port\":%d,\"protocol\":\"TCP\"}", i ? "," : "", name, 8080 + i);
    }
    put(b, "],\"endpoints\":[");
    for (int e = 0; e < ENDPOINTS; e++) {
        int ip = s * ENDPOINTS + e;
        char addr[32];
        if (change >= 0 && e == change % ENDPOINTS)
            snprintf(addr, sizeof(addr), "172.%d.%d.%d", 16 + ((change + 1) >> 16), ((change + 1) >> 8) & 255,
                     (change + 1) & 255);
        else
            snprintf(addr, sizeof(addr), "10.%d.%d.%d", (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
        char node[48] = "";
        if (zones)
            snprintf(node, sizeof(node), "\"nodeName\":\"node-%d\",",
                     (s * 3 + e) % ZONE_NODES / 3 * 3 + e % 3);
        put(b,
            "%s{\"addresses\":[\"%s\"],\"conditions\":{\"ready\":true,\"serving\":true,\"terminating\":false}"
            ",%s"
            "\"zone\":\"us-east1-%c\",\"targetRef\":{\"kind\":\"Pod\",\"name\":\"svc-%d-pod-%d\","
            "\"namespace\":"
            "\"ns-%d\"}}",
            e ? "," : "", addr, node, 'a' + e % 3, s, e, s % 100);
    }
    put(b, "]}");
}

/* Change k touches this Service (distinct Services for k < services). */
static int change_service(int k, int nservices)
{
    return (int)(((long long)k * 7919 + 13) % nservices);
}

/* A translator holding S Services with P ports and their slices (zones: and the Nodes), built once. never:
 * with endpoint_config.zone_priorities: never (the "plain" round). */
static int workload_new(int nservices, int ports, bool zones, bool never, ekg_config_t **cfg,
                        ekg_translator_t **t)
{
    ekg_diag_t diag = {{0}};
    ekg_objects_t objs = {0};
    buf_t b = {0};
    int rc = -1;
    static const char never_yaml[] = "apiVersion: v1alpha\nendpoint_config:\n  zone_priorities: never\n";
    put(&b, "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[");
    for (int n = 0; zones && n < ZONE_NODES; n++) {
        node_json(&b, n);
        put(&b, ",");
    }
    for (int s = 0; s < nservices; s++) {
        put(&b, "%s", s ? "," : "");
        service_json(&b, s, zones, ports);
        put(&b, ",");
        slice_json(&b, s, -1, zones, ports);
    }
    put(&b, "]}");
    if ((never ? ekg_config_parse(never_yaml, sizeof(never_yaml) - 1, "xds_bench.yaml", cfg, &diag)
               : ekg_config_default(cfg, &diag)) ||
        ekg_objects_add_buffer(&objs, b.p, b.n, "xds_bench.json", &diag)) {
        fprintf(stderr, "xds_bench: cannot build the workload: %s\n", diag.msg);
        goto out;
    }
    *t = ekg_translator_new(*cfg);
    ekg_translator_put_objects(*t, &objs);
    if (ekg_translator_build(*t, NULL, NULL)) {
        fprintf(stderr, "xds_bench: cannot build the workload\n");
        goto out;
    }
    rc = 0;
out:
    ekg_objects_free(&objs);
    free(b.p);
    return rc;
}

/* The changed slice of change k, as the watcher would hand it over (parsed, not yet in the translator). */
static ekg_endpoint_slice_t *change_slice(int k, int nservices, int ports, bool zones)
{
    buf_t b = {0};
    ekg_diag_t diag = {{0}};
    ekg_endpoint_slice_t *slice = NULL;
    slice_json(&b, change_service(k, nservices), k, zones, ports);
    cJSON *obj = cJSON_ParseWithLength(b.p, b.n);
    if (!obj || ekg_endpoint_slice_from_json(obj, &slice, &diag) != EKG_OK)
        fprintf(stderr, "xds_bench: change %d: %s\n", k, diag.msg);
    cJSON_Delete(obj);
    free(b.p);
    return slice;
}

/* --delta: new Service j (svc-S+j, after the S of the workload) and its slice, parsed as the watcher would
 * hand them over. 0, or -1 with nothing to free. */
static int new_service_objects(int j, int nservices, int ports, ekg_service_t **svc,
                               ekg_endpoint_slice_t **slice)
{
    buf_t b = {0}, c = {0};
    ekg_diag_t diag = {{0}};
    *svc = NULL;
    *slice = NULL;
    service_json(&b, nservices + j, false, ports);
    slice_json(&c, nservices + j, -1, false, ports);
    cJSON *so = cJSON_ParseWithLength(b.p, b.n), *lo = cJSON_ParseWithLength(c.p, c.n);
    int rc = 0;
    if (!so || !lo || ekg_service_from_json(so, svc, &diag) != EKG_OK ||
        ekg_endpoint_slice_from_json(lo, slice, &diag) != EKG_OK) {
        fprintf(stderr, "xds_bench: new Service %d: %s\n", j, diag.msg);
        ekg_service_free(*svc);
        ekg_endpoint_slice_free(*slice);
        rc = -1;
    }
    cJSON_Delete(so);
    cJSON_Delete(lo);
    free(b.p);
    free(c.p);
    return rc;
}

/* A snapshot of everything the translator makes (new reference). */
static ekg_snapshot_t *snapshot_of(const ekg_translator_t *t)
{
    ekg_resource_set_t *sets[EKG_RESOURCE__COUNT];
    ekg_snapshot_t *snap = NULL;
    for (int i = 0; i < EKG_RESOURCE__COUNT; i++)
        sets[i] = ekg_translator_set(t, (ekg_resource_type_t)i);
    snap = ekg_snapshot_new(sets);
    for (int i = 0; i < EKG_RESOURCE__COUNT; i++)
        ekg_resource_set_unref(sets[i]);
    return snap;
}

/* "name\n" for every ClusterLoadAssignment: what the clients subscribe to. */
static void names_of(const ekg_translator_t *t, buf_t *out)
{
    ekg_resource_set_t *la = ekg_translator_set(t, EKG_RESOURCE_LOAD_ASSIGNMENT);
    for (size_t i = 0; i < ekg_resource_set_size(la); i++)
        put(out, "%s\n", ekg_resource_name(ekg_resource_set_at(la, i)));
    ekg_resource_set_unref(la);
}

/* --- round <-> client protocol ------------------------------------------------------------------------- */

enum { R_READY = 1, R_ACKED, R_CHANGE, R_STOPPING, R_DONE, R_ERROR, R_RESYNCED };

/* The change index of the records about the reconnect (--delta). */
#define K_RESYNC (-3)

typedef struct rec {
    int kind;
    int k;         /* change index; -1 for the initial state, K_RESYNC for the reconnect */
    double t;      /* CLOCK_MONOTONIC seconds */
    double v;      /* R_READY: sync seconds; R_DONE: streams ended UNAVAILABLE; R_RESYNCED: seconds from the
                      drop until the last stream was back; R_ERROR: code */
    double cpu_ms; /* the client's CPU so far */
    /* R_READY: the initial EDS response's resource bytes per group (--zones; group 0 otherwise), R_CHANGE:
     * change k's; -1 for a group without streams. Resource bytes: the encoded ClusterLoadAssignments.
     * R_RESYNCED: [0] the message bytes a stream received until it was back, mean over the streams. */
    double bytes[NGROUPS];
    /* R_CHANGE: the messages a stream received for change k (gRPC message length: the encoded
     * DiscoveryResponse or DeltaDiscoveryResponse), mean over the streams, and the largest: [0] Clusters (a
     * new Service), [1] load assignments. R_RESYNCED: resources received again, [0] over all streams, [1] the
     * most one stream got. */
    double msg[2], msg_max[2];
} rec_t;

/* Reads records until one of `kind` (and change k) arrives. R_ERROR or a timeout fails. */
static bool expect(int fd, int kind, int k, int timeout_ms, rec_t *out)
{
    double deadline = now_s() + timeout_ms / 1e3;
    for (;;) {
        rec_t r;
        int left = (int)((deadline - now_s()) * 1e3);
        if (left < 0 || !read_all(fd, &r, sizeof(r), left)) {
            fprintf(stderr, "xds_bench: no %s from the clients within %d ms (change %d)\n",
                    kind == R_READY      ? "initial state"
                    : kind == R_CHANGE   ? "update on every stream"
                    : kind == R_ACKED    ? "ACKs"
                    : kind == R_RESYNCED ? "resync of every stream"
                                         : "answer",
                    timeout_ms, k);
            return false;
        }
        if (r.kind == R_ERROR) {
            fprintf(stderr, "xds_bench: the clients failed (see above)\n");
            return false;
        }
        if (r.kind == kind && r.k == k) {
            if (out)
                *out = r;
            return true;
        }
        fprintf(stderr, "xds_bench: unexpected record kind=%d k=%d while waiting for kind=%d k=%d\n", r.kind,
                r.k, kind, k);
        return false;
    }
}

/* --- the client process ------------------------------------------------------------------------------- */

typedef struct cstream cstream_t;
typedef enum { CT_RECV, CT_SEND, CT_STATUS } ctag_kind_t;
typedef struct ctag {
    ctag_kind_t kind;
    cstream_t *st;
} ctag_t;

#define QCAP 8
typedef struct queued {
    grpc_byte_buffer *bb;
    int ack_of; /* -2: not an ACK counted; -1: ACK of the initial EDS; k: ACK of change k; K_RESYNC: ACK of
                   the response that ended the stream's resync */
} queued_t;

struct cstream {
    int id;
    grpc_channel *channel;     /* borrowed from C.channels */
    grpc_completion_queue *cq; /* its thread's */
    grpc_call *call;
    grpc_metadata_array md_initial, md_trailing;
    grpc_status_code status;
    grpc_slice details;
    grpc_byte_buffer *recv_buf;
    queued_t q[QCAP];
    int qh, qn;
    grpc_byte_buffer *send_buf; /* kept until its SEND_MESSAGE completes */
    bool sending, first_send, done;
    bool recv_pending; /* a RECV_MESSAGE is outstanding */
    bool status_done;  /* the call's status came while it was being dropped (reconnect) */
    atomic_bool drop;  /* set by the main thread before it cancels the call to reconnect */
    int sending_ack_of;
    int phase;    /* 0 waiting for CDS, 1 for EDS, 2 synced, 3 reconnected and not back yet */
    int next;     /* the change this stream expects next */
    int awaiting; /* -1, or the new-Service change whose Clusters came: their load assignments are due */
    bool got_cds, got_eds; /* SotW, phase 3: the full response of each type came */
    long resent;           /* phase 3: resources received (and delta removals other than the probe) */
    double resent_bytes;   /* phase 3: message bytes received */
    /* SotW: the last version_info and nonce of each type (sent again as Envoy does) */
    char cds_version[32], eds_version[32], eds_nonce[32];
    int group; /* --zones: zone a, b, c or NO_LOCALITY; 0 otherwise */
    char node_id[32];
    ctag_t recv_tag, send_tag, status_tag;
};

/* Names (and versions) sorted by name; strings owned. */
typedef struct nv {
    char *name, *version;
} nv_t;
typedef struct nvmap {
    nv_t *v;
    size_t n, cap;
} nvmap_t;

typedef struct client {
    int nstreams, nchannels, nclusters, nchanges;
    bool zones;
    bool delta;              /* DeltaAggregatedResources */
    bool reconnect;          /* --delta's scenarios: new Services, reconnect, one more change */
    int ports, nnew, ntotal; /* ports per Service; new-Service changes; changes of every kind */
    int port;
    int out_fd;
    grpc_channel **channels;
    grpc_completion_queue *cqs[CLIENT_THREADS];
    pthread_t threads[CLIENT_THREADS];
    cstream_t *streams;
    /* Every workload CLA as serialized resource_names (field 3; DeltaDiscoveryRequest's
     * resource_names_subscribe is field 3 too) */
    grpc_slice names;
    double t_start;
    atomic_int synced, init_acked, ended, unavailable;
    atomic_int *received, *acked; /* per change */
    atomic_bool stopping, failed;
    pthread_mutex_t lock; /* everything below, and out_fd */
    /* Per change (index k + 1; 0 is the initial EDS) and group: the version and resource bytes the first
     * stream of the group got; every other stream of the group must get the same version. */
    char (*versions)[NGROUPS][32];
    double (*bytes)[NGROUPS];
    int group_streams[NGROUPS];
    char (*cds_versions)[32]; /* per change index k + 1 (new Services): the Clusters' version */
    double (*msg_sum)[2],
        (*msg_max)[2]; /* per change index k + 1: message bytes [Clusters, load assignments] */
    /* New Service j: its cluster names (= its load assignments' names), serialized like `names`; worked out
     * by the first stream that got its Clusters */
    grpc_slice *extra;
    bool *extra_set;
    nvmap_t known; /* every cluster name so far (versions unused) */
    /* --delta: what the streams have per type (0 Clusters, 1 load assignments), name -> version, as the
     * first stream to get each response got it; the reconnected streams' initial_resource_versions */
    nvmap_t have[2];
    bool have_init[2];
    /* The reconnect */
    atomic_bool reconnecting;
    double t_drop;
    atomic_int resynced, reacked;
    long resent_total, resent_max;
    double resent_bytes;
    grpc_slice re_cds,
        re_eds; /* --delta: the pre-encoded fields of the reconnected streams' first requests */
} client_t;

static client_t C;

static void client_record(int kind, int k, double t, double v)
{
    rec_t r = {.kind = kind, .k = k, .t = t, .v = v, .cpu_ms = cpu_ms()};
    pthread_mutex_lock(&C.lock);
    for (int g = 0; g < NGROUPS; g++)
        r.bytes[g] = (kind == R_READY || kind == R_CHANGE) && C.group_streams[g] ? C.bytes[k + 1][g] : -1;
    for (int s = 0; s < 2 && kind == R_CHANGE; s++) {
        r.msg[s] = C.msg_sum[k + 1][s] / C.nstreams;
        r.msg_max[s] = C.msg_max[k + 1][s];
    }
    if (kind == R_RESYNCED) {
        r.msg[0] = (double)C.resent_total;
        r.msg[1] = (double)C.resent_max;
        r.bytes[0] = C.resent_bytes / C.nstreams;
    }
    write_all(C.out_fd, &r, sizeof(r));
    pthread_mutex_unlock(&C.lock);
}

static void client_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void client_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "xds_bench client: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (!atomic_exchange(&C.failed, true))
        client_record(R_ERROR, 0, now_s(), 0);
}

static int view_cmp(upb_StringView v, const char *s)
{
    size_t n = strlen(s);
    int c = v.size && n ? memcmp(v.data, s, v.size < n ? v.size : n) : 0;
    return c ? c : (v.size > n) - (v.size < n);
}

static bool view_is(upb_StringView v, const char *s)
{
    return view_cmp(v, s) == 0;
}

/* Where name is (*found) or goes in m. Names mostly come in order: appending is checked first. */
static size_t nvmap_pos(const nvmap_t *m, upb_StringView name, bool *found)
{
    size_t lo = 0, hi = m->n;
    *found = false;
    if (m->n && view_cmp(name, m->v[m->n - 1].name) > 0)
        return m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = view_cmp(name, m->v[mid].name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static bool nvmap_has(const nvmap_t *m, upb_StringView name)
{
    bool found;
    nvmap_pos(m, name, &found);
    return found;
}

static void nvmap_put(nvmap_t *m, upb_StringView name, upb_StringView version)
{
    bool found;
    size_t i = nvmap_pos(m, name, &found);
    if (!found) {
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 1024;
            m->v = ekg_xrealloc(m->v, m->cap * sizeof(*m->v));
        }
        memmove(m->v + i + 1, m->v + i, (m->n - i) * sizeof(*m->v));
        m->v[i] = (nv_t){ekg_xstrndup(name.data ? name.data : "", name.size), NULL};
        m->n++;
    }
    free(m->v[i].version);
    m->v[i].version = ekg_xstrndup(version.data ? version.data : "", version.size);
}

static void nvmap_free(nvmap_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].name);
        free(m->v[i].version);
    }
    free(m->v);
    *m = (nvmap_t){0};
}

/* Whether change k is a new Service (else an endpoint change). */
static bool kind_new(int k)
{
    return k >= C.nchanges && k < C.nchanges + C.nnew;
}

/* The new Services whose Clusters the stream got. */
static int new_done(const cstream_t *st)
{
    int d = st->next - C.nchanges;
    return d < 0 ? 0 : d > C.nnew ? C.nnew : d;
}

static int expected_clusters(const cstream_t *st)
{
    return C.nclusters + C.ports * new_done(st);
}

/* One response of either protocol, decoded (views into the message). */
typedef struct resp {
    bool cds, eds;
    upb_StringView version, nonce; /* version_info, or (delta) system_version_info */
    size_t nres, nremoved;
    const struct google_protobuf_Any *const *any;          /* SotW */
    const envoy_service_discovery_v3_Resource *const *res; /* delta */
    const upb_StringView *removed;                         /* delta */
    double rbytes;                                         /* the resources' encoded bytes (the Any values) */
    double msg_len;                                        /* the whole message */
} resp_t;

static bool resp_decode(resp_t *r, grpc_slice msg, upb_Arena *a)
{
    const char *p = (const char *)GRPC_SLICE_START_PTR(msg);
    size_t len = GRPC_SLICE_LENGTH(msg);
    upb_StringView url;
    *r = (resp_t){.msg_len = (double)len};
    if (C.delta) {
        envoy_service_discovery_v3_DeltaDiscoveryResponse *d =
            envoy_service_discovery_v3_DeltaDiscoveryResponse_parse_ex(p, len, NULL,
                                                                       kUpb_DecodeOption_AliasString, a);
        if (!d)
            return false;
        url = envoy_service_discovery_v3_DeltaDiscoveryResponse_type_url(d);
        r->version = envoy_service_discovery_v3_DeltaDiscoveryResponse_system_version_info(d);
        r->nonce = envoy_service_discovery_v3_DeltaDiscoveryResponse_nonce(d);
        r->res = envoy_service_discovery_v3_DeltaDiscoveryResponse_resources(d, &r->nres);
        r->removed = envoy_service_discovery_v3_DeltaDiscoveryResponse_removed_resources(d, &r->nremoved);
        for (size_t i = 0; i < r->nres; i++) {
            const struct google_protobuf_Any *any = envoy_service_discovery_v3_Resource_resource(r->res[i]);
            r->rbytes += any ? (double)google_protobuf_Any_value(any).size : 0;
        }
    } else {
        envoy_service_discovery_v3_DiscoveryResponse *d =
            envoy_service_discovery_v3_DiscoveryResponse_parse_ex(p, len, NULL, kUpb_DecodeOption_AliasString,
                                                                  a);
        if (!d)
            return false;
        url = envoy_service_discovery_v3_DiscoveryResponse_type_url(d);
        r->version = envoy_service_discovery_v3_DiscoveryResponse_version_info(d);
        r->nonce = envoy_service_discovery_v3_DiscoveryResponse_nonce(d);
        r->any = envoy_service_discovery_v3_DiscoveryResponse_resources(d, &r->nres);
        for (size_t i = 0; i < r->nres; i++)
            r->rbytes += (double)google_protobuf_Any_value(r->any[i]).size;
    }
    r->cds = view_is(url, CDS_TYPE);
    r->eds = view_is(url, EDS_TYPE);
    return true;
}

/* The name of resource i: Resource.name (delta), or field 1 of the Cluster or ClusterLoadAssignment (name,
 * cluster_name) read off the Any's bytes (SotW). Empty if it cannot be read. */
static upb_StringView resp_name(const resp_t *r, size_t i)
{
    if (C.delta)
        return envoy_service_discovery_v3_Resource_name(r->res[i]);
    upb_StringView v = google_protobuf_Any_value(r->any[i]);
    const unsigned char *p = (const unsigned char *)v.data, *end = p + v.size;
    while (p < end) {
        uint64_t tag = 0, len = 0;
        for (int shift = 0; p < end && shift < 64; shift += 7) {
            tag |= (uint64_t)(*p & 0x7f) << shift;
            if (!(*p++ & 0x80))
                break;
        }
        int wt = (int)(tag & 7);
        if (wt == 0) {
            while (p < end && (*p++ & 0x80))
                ;
            continue;
        }
        if (wt == 1 || wt == 5) {
            p += wt == 1 ? 8 : 4;
            continue;
        }
        if (wt != 2)
            break;
        for (int shift = 0; p < end && shift < 64; shift += 7) {
            len |= (uint64_t)(*p & 0x7f) << shift;
            if (!(*p++ & 0x80))
                break;
        }
        if (len > (uint64_t)(end - p))
            break;
        if (tag >> 3 == 1)
            return upb_StringView_FromDataAndSize((const char *)p, (size_t)len);
        p += len;
    }
    return (upb_StringView){0};
}

/* --delta, under C.lock: the versions of a response's resources into C.have[type]. */
static void record_versions(int type, const resp_t *r)
{
    for (size_t i = 0; i < r->nres; i++)
        nvmap_put(&C.have[type], envoy_service_discovery_v3_Resource_name(r->res[i]),
                  envoy_service_discovery_v3_Resource_version(r->res[i]));
}

/* Under C.lock: a stream's message bytes for change index i (0: initial), slot 0 Clusters, 1 load
 * assignments. */
static void count_msg(int i, int slot, double len)
{
    C.msg_sum[i][slot] += len;
    if (len > C.msg_max[i][slot])
        C.msg_max[i][slot] = len;
}

/* Serialized resource_names (field 3) for a list of names. */
static grpc_slice names_field(const upb_StringView *names, size_t n)
{
    upb_Arena *a = upb_Arena_New();
    envoy_service_discovery_v3_DiscoveryRequest *req = envoy_service_discovery_v3_DiscoveryRequest_new(a);
    for (size_t i = 0; i < n; i++)
        envoy_service_discovery_v3_DiscoveryRequest_add_resource_names(req, names[i], a);
    size_t len;
    char *bytes = envoy_service_discovery_v3_DiscoveryRequest_serialize(req, a, &len);
    if (!bytes)
        abort();
    grpc_slice s = grpc_slice_from_copied_buffer(bytes, len);
    upb_Arena_Free(a);
    return s;
}

/* Under C.lock, by the first stream that got new Service j's Clusters: their names are the ones the client
 * did not know (SotW: the response holds every Cluster; delta: only the new ones). */
static bool learn_new(const resp_t *r, int j)
{
    upb_StringView *fresh = ekg_xcalloc((size_t)C.ports, sizeof(*fresh));
    int n = 0;
    bool ok = true;
    for (size_t i = 0; i < r->nres && ok; i++) {
        upb_StringView name = resp_name(r, i);
        if (name.size == 0)
            ok = false;
        else if (!nvmap_has(&C.known, name) && n++ < C.ports)
            fresh[n - 1] = name;
    }
    if (ok && n == C.ports) {
        C.extra[j] = names_field(fresh, (size_t)n);
        C.extra_set[j] = true;
        for (int i = 0; i < n; i++)
            nvmap_put(&C.known, fresh[i], (upb_StringView){0});
    }
    free(fresh);
    return ok && n == C.ports;
}

static void fill_node(struct envoy_config_core_v3_Node *n, const cstream_t *st, upb_Arena *a)
{
    envoy_config_core_v3_Node_set_id(n, upb_StringView_FromString(st->node_id));
    if (C.zones && st->group != NO_LOCALITY) {
        static const char *const zone[3] = {REGION "-a", REGION "-b", REGION "-c"};
        struct envoy_config_core_v3_Locality *l = envoy_config_core_v3_Node_mutable_locality(n, a);
        envoy_config_core_v3_Locality_set_region(l, upb_StringView_FromString(REGION));
        envoy_config_core_v3_Locality_set_zone(l, upb_StringView_FromString(zone[st->group]));
    }
}

/* An encoded request header followed by pre-encoded fields: concatenated messages of one type decode as
 * their merge. */
static grpc_byte_buffer *request_buffer(const char *hdr, size_t len, const grpc_slice *parts, size_t nparts)
{
    grpc_slice s[2 + MAX_NEW];
    s[0] = grpc_slice_from_copied_buffer(hdr, len);
    for (size_t i = 0; i < nparts; i++)
        s[1 + i] = grpc_slice_ref(parts[i]);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(s, 1 + nparts);
    for (size_t i = 0; i < 1 + nparts; i++)
        grpc_slice_unref(s[i]);
    return bb;
}

/* A DiscoveryRequest of stream st: the fields below, encoded with upb; node: the stream's node (with its
 * locality for a stream of a zone, --zones); names: every load assignment the stream knows of (the
 * workload's and the new Services' whose Clusters it got). */
static grpc_byte_buffer *make_request(const cstream_t *st, const char *type_url, upb_StringView version,
                                      upb_StringView nonce, bool node, bool names)
{
    upb_Arena *a = upb_Arena_New();
    envoy_service_discovery_v3_DiscoveryRequest *r = envoy_service_discovery_v3_DiscoveryRequest_new(a);
    envoy_service_discovery_v3_DiscoveryRequest_set_type_url(r, upb_StringView_FromString(type_url));
    envoy_service_discovery_v3_DiscoveryRequest_set_version_info(r, version);
    envoy_service_discovery_v3_DiscoveryRequest_set_response_nonce(r, nonce);
    if (node)
        fill_node(envoy_service_discovery_v3_DiscoveryRequest_mutable_node(r, a), st, a);
    size_t len;
    char *bytes = envoy_service_discovery_v3_DiscoveryRequest_serialize(r, a, &len);
    if (!bytes)
        abort();
    grpc_slice parts[1 + MAX_NEW];
    size_t n = 0;
    if (names) {
        parts[n++] = C.names;
        for (int j = 0; j < new_done(st); j++)
            parts[n++] = C.extra[j];
    }
    grpc_byte_buffer *bb = request_buffer(bytes, len, parts, n);
    upb_Arena_Free(a);
    return bb;
}

/* A DeltaDiscoveryRequest of stream st: type_url and response_nonce, the node when `node`, then `parts`
 * (pre-encoded names to subscribe, initial_resource_versions). */
static grpc_byte_buffer *make_delta(const cstream_t *st, const char *type_url, upb_StringView nonce,
                                    bool node, const grpc_slice *parts, size_t nparts)
{
    upb_Arena *a = upb_Arena_New();
    envoy_service_discovery_v3_DeltaDiscoveryRequest *r =
        envoy_service_discovery_v3_DeltaDiscoveryRequest_new(a);
    envoy_service_discovery_v3_DeltaDiscoveryRequest_set_type_url(r, upb_StringView_FromString(type_url));
    envoy_service_discovery_v3_DeltaDiscoveryRequest_set_response_nonce(r, nonce);
    if (node)
        fill_node(envoy_service_discovery_v3_DeltaDiscoveryRequest_mutable_node(r, a), st, a);
    size_t len;
    char *bytes = envoy_service_discovery_v3_DeltaDiscoveryRequest_serialize(r, a, &len);
    if (!bytes)
        abort();
    grpc_byte_buffer *bb = request_buffer(bytes, len, parts, nparts);
    upb_Arena_Free(a);
    return bb;
}

/* The ACK of r: SotW with version_info and nonce (load assignments repeating the names, as Envoy does),
 * delta with the nonce alone. */
static grpc_byte_buffer *make_ack(const cstream_t *st, const resp_t *r)
{
    const char *url = r->cds ? CDS_TYPE : EDS_TYPE;
    if (C.delta)
        return make_delta(st, url, r->nonce, false, NULL, 0);
    return make_request(st, url, r->version, r->nonce, false, r->eds);
}

/* SotW: what Envoy sends again on a new stream or with a new subscription. */
static void keep_version(cstream_t *st, const resp_t *r)
{
    if (C.delta)
        return;
    char *v = r->cds ? st->cds_version : st->eds_version;
    snprintf(v, sizeof(st->cds_version), "%.*s", (int)r->version.size, r->version.data);
    if (r->eds)
        snprintf(st->eds_nonce, sizeof(st->eds_nonce), "%.*s", (int)r->nonce.size, r->nonce.data);
}

static void cstream_pump(cstream_t *st)
{
    if (st->sending || st->qn == 0 || st->done)
        return;
    queued_t q = st->q[st->qh];
    st->qh = (st->qh + 1) % QCAP;
    st->qn--;
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (!st->first_send) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n++].flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY;
        st->first_send = true;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = q.bb;
    st->sending = true;
    st->sending_ack_of = q.ack_of;
    st->send_buf = q.bb;
    if (grpc_call_start_batch(st->call, ops, n, &st->send_tag, NULL) != GRPC_CALL_OK)
        client_fail("stream %d: cannot start a send", st->id);
}

static void cstream_queue(cstream_t *st, grpc_byte_buffer *bb, int ack_of)
{
    if (st->qn == QCAP) {
        client_fail("stream %d: send queue full", st->id);
        grpc_byte_buffer_destroy(bb);
        return;
    }
    st->q[(st->qh + st->qn++) % QCAP] = (queued_t){bb, ack_of};
    cstream_pump(st);
}

static void cstream_recv(cstream_t *st, bool with_metadata)
{
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (with_metadata) {
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n++].data.recv_initial_metadata.recv_initial_metadata = &st->md_initial;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &st->recv_buf;
    st->recv_pending = true;
    if (grpc_call_start_batch(st->call, ops, n, &st->recv_tag, NULL) != GRPC_CALL_OK)
        client_fail("stream %d: cannot start a receive", st->id);
}

/* Opens the stream's call on its channel and completion queue and sends its first requests: a new stream
 * wildcard CDS; a reconnected one (phase 3) CDS and EDS at once, saying what it has, as Envoy does. */
static void cstream_start(cstream_t *st)
{
    st->recv_tag = (ctag_t){CT_RECV, st};
    st->send_tag = (ctag_t){CT_SEND, st};
    st->status_tag = (ctag_t){CT_STATUS, st};
    grpc_metadata_array_init(&st->md_initial);
    grpc_metadata_array_init(&st->md_trailing);
    snprintf(st->node_id, sizeof(st->node_id), "bench-%d", st->id);
    st->call = grpc_channel_create_call(st->channel, NULL, GRPC_PROPAGATE_DEFAULTS, st->cq,
                                        grpc_slice_from_static_string(C.delta ? DELTA_METHOD : ADS_METHOD),
                                        NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &st->md_trailing;
    op.data.recv_status_on_client.status = &st->status;
    op.data.recv_status_on_client.status_details = &st->details;
    if (grpc_call_start_batch(st->call, &op, 1, &st->status_tag, NULL) != GRPC_CALL_OK)
        client_fail("stream %d: cannot start", st->id);
    cstream_recv(st, true);
    upb_StringView none = {0};
    if (st->phase != 3) {
        /* Wildcard CDS: no resource_names (the legacy wildcard in both protocols). */
        cstream_queue(st,
                      C.delta ? make_delta(st, CDS_TYPE, none, true, NULL, 0)
                              : make_request(st, CDS_TYPE, none, none, true, false),
                      -2);
    } else if (C.delta) {
        cstream_queue(st, make_delta(st, CDS_TYPE, none, true, &C.re_cds, 1), -2);
        cstream_queue(st, make_delta(st, EDS_TYPE, none, false, &C.re_eds, 1), -2);
    } else {
        cstream_queue(
            st, make_request(st, CDS_TYPE, upb_StringView_FromString(st->cds_version), none, true, false),
            -2);
        cstream_queue(
            st, make_request(st, EDS_TYPE, upb_StringView_FromString(st->eds_version), none, false, true),
            -2);
    }
}

/* A dropped stream whose call has nothing outstanding any more is opened again (phase 3). */
static void cstream_maybe_restart(cstream_t *st)
{
    if (!st->status_done || st->recv_pending || st->sending)
        return;
    grpc_call_unref(st->call);
    st->call = NULL;
    grpc_metadata_array_destroy(&st->md_initial);
    grpc_metadata_array_destroy(&st->md_trailing);
    grpc_slice_unref(st->details);
    st->details = grpc_empty_slice();
    st->status_done = st->done = st->first_send = false;
    st->phase = 3;
    st->got_cds = st->got_eds = false;
    st->resent = 0;
    st->resent_bytes = 0;
    atomic_store(&st->drop, false);
    cstream_start(st);
}

/* Every stream of a group gets the same version (and bytes) of the initial EDS (i = 0) and of change i - 1;
 * msg_len counts into the change's load-assignment message bytes. Whether st was the first to get it. */
static bool check_version(cstream_t *st, int i, upb_StringView version, double rbytes, double msg_len)
{
    pthread_mutex_lock(&C.lock);
    char *v = C.versions[i][st->group];
    bool first = !v[0];
    if (first) {
        snprintf(v, sizeof(C.versions[i][st->group]), "%.*s", (int)version.size, version.data);
        C.bytes[i][st->group] = rbytes;
    }
    bool same = strlen(v) == version.size && memcmp(v, version.data, version.size) == 0 &&
                C.bytes[i][st->group] == rbytes;
    count_msg(i, 1, msg_len);
    pthread_mutex_unlock(&C.lock);
    if (!same)
        client_fail(
            "stream %d (group %d): %s %d has version %.*s (%.0f resource bytes), another stream of its "
            "group got %s (%.0f)",
            st->id, st->group, i ? "update" : "initial EDS", i - 1, (int)version.size, version.data, rbytes,
            v, C.bytes[i][st->group]);
    return first;
}

/* Phase 3: a response to a reconnected stream. Everything in it was sent again; the stream is back once
 * SotW gave both full responses, or delta answered the probe. */
static void on_resync_response(cstream_t *st, const resp_t *r, double t)
{
    bool back;
    st->resent += (long)r->nres;
    st->resent_bytes += r->msg_len;
    if (C.delta) {
        size_t probe = 0;
        for (size_t i = 0; i < r->nremoved; i++) {
            if (view_is(r->removed[i], PROBE_NAME))
                probe++;
            else
                st->resent++;
        }
        back = r->eds && probe == 1;
    } else {
        if ((int)r->nres != expected_clusters(st))
            client_fail("stream %d: after the reconnect %s carried %zu resources, expected %d", st->id,
                        r->cds ? "CDS" : "EDS", r->nres, expected_clusters(st));
        st->got_cds |= r->cds;
        st->got_eds |= r->eds;
        back = st->got_cds && st->got_eds;
    }
    keep_version(st, r);
    if (!back) {
        cstream_queue(st, make_ack(st, r), -2);
        return;
    }
    st->phase = 2;
    pthread_mutex_lock(&C.lock);
    C.resent_total += st->resent;
    if (st->resent > C.resent_max)
        C.resent_max = st->resent;
    C.resent_bytes += st->resent_bytes;
    pthread_mutex_unlock(&C.lock);
    cstream_queue(st, make_ack(st, r), K_RESYNC);
    if (atomic_fetch_add(&C.resynced, 1) + 1 == C.nstreams) {
        atomic_store(&C.reconnecting, false);
        client_record(R_RESYNCED, K_RESYNC, t, t - C.t_drop);
    }
}

/* Phase 2: new Service change k's Clusters. SotW: every Cluster; delta: the new ones. As Envoy does, the
 * stream subscribes their load assignments (SotW: names every one again), then ACKs the Clusters. */
static void on_new_clusters(cstream_t *st, const resp_t *r, int k)
{
    int j = k - C.nchanges;
    st->next = k + 1; /* from now on, the stream's EDS requests name the new ones too */
    int want = C.delta ? C.ports : expected_clusters(st);
    if ((int)r->nres != want || r->nremoved)
        client_fail("stream %d: new Service %d: CDS carried %zu clusters and %zu removals, expected %d and 0",
                    st->id, j, r->nres, r->nremoved, want);
    pthread_mutex_lock(&C.lock);
    bool learned = C.extra_set[j] || learn_new(r, j);
    char *v = C.cds_versions[k + 1];
    bool first = !v[0];
    if (first) {
        snprintf(v, sizeof(C.cds_versions[k + 1]), "%.*s", (int)r->version.size, r->version.data);
        if (C.delta)
            record_versions(0, r);
    }
    bool same = view_is(r->version, v);
    count_msg(k + 1, 0, r->msg_len);
    pthread_mutex_unlock(&C.lock);
    if (!learned || !same) {
        client_fail("stream %d: new Service %d: %s", st->id, j,
                    !learned ? "its cluster names are not in the Cluster response"
                             : "the Clusters' version differs from another stream's");
        return;
    }
    upb_StringView none = {0};
    if (C.delta)
        cstream_queue(st, make_delta(st, EDS_TYPE, none, false, &C.extra[j], 1), -2);
    else
        cstream_queue(st,
                      make_request(st, EDS_TYPE, upb_StringView_FromString(st->eds_version),
                                   upb_StringView_FromString(st->eds_nonce), false, true),
                      -2);
    keep_version(st, r);
    cstream_queue(st, make_ack(st, r), -2);
    st->awaiting = k;
}

/* Phase 2: the load assignments of change k: an endpoint change's (the Service's P ports) or, after its
 * Clusters, a new Service's. */
static void on_change_eds(cstream_t *st, const resp_t *r, int k, double t)
{
    if ((int)r->nres != C.ports || r->nremoved)
        client_fail("stream %d: update %d carried %zu load assignments and %zu removals, expected %d and 0",
                    st->id, k, r->nres, r->nremoved, C.ports);
    if (check_version(st, k + 1, r->version, r->rbytes, r->msg_len) && C.delta) {
        pthread_mutex_lock(&C.lock);
        record_versions(1, r);
        pthread_mutex_unlock(&C.lock);
    }
    keep_version(st, r);
    cstream_queue(st, make_ack(st, r), k);
    if (atomic_fetch_add(&C.received[k], 1) + 1 == C.nstreams)
        client_record(R_CHANGE, k, t, 0);
}

static void on_client_recv(cstream_t *st, bool ok)
{
    double t = now_s();
    st->recv_pending = false;
    if (!ok || !st->recv_buf) {
        cstream_maybe_restart(st); /* the stream ended; its status says why */
        return;
    }
    grpc_byte_buffer_reader reader;
    grpc_byte_buffer_reader_init(&reader, st->recv_buf);
    grpc_slice msg = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    grpc_byte_buffer_destroy(st->recv_buf);
    st->recv_buf = NULL;
    cstream_recv(st, false);

    upb_Arena *a = upb_Arena_New();
    resp_t r;
    upb_StringView none = {0};
    if (!resp_decode(&r, msg, a)) {
        client_fail("stream %d: a %sDiscoveryResponse does not decode", st->id, C.delta ? "Delta" : "");
        goto out;
    }
    if (r.cds && st->phase == 0) {
        if ((int)r.nres != expected_clusters(st) || r.nremoved)
            client_fail("stream %d: CDS carried %zu clusters, expected %d", st->id, r.nres,
                        expected_clusters(st));
        if (C.delta) {
            pthread_mutex_lock(&C.lock);
            if (!C.have_init[0])
                record_versions(0, &r);
            C.have_init[0] = true;
            pthread_mutex_unlock(&C.lock);
        }
        /* As Envoy and gRPC do: subscribe to the load assignments, then ACK the clusters. */
        cstream_queue(st,
                      C.delta ? make_delta(st, EDS_TYPE, none, false, &C.names, 1)
                              : make_request(st, EDS_TYPE, none, none, false, true),
                      -2);
        keep_version(st, &r);
        cstream_queue(st, make_ack(st, &r), -2);
        st->phase = 1;
    } else if (r.eds && st->phase == 1) {
        if ((int)r.nres != expected_clusters(st) || r.nremoved)
            client_fail("stream %d: EDS carried %zu load assignments, expected %d", st->id, r.nres,
                        expected_clusters(st));
        if (check_version(st, 0, r.version, r.rbytes, r.msg_len) && C.delta) {
            pthread_mutex_lock(&C.lock);
            record_versions(1, &r);
            C.have_init[1] = true;
            pthread_mutex_unlock(&C.lock);
        }
        keep_version(st, &r);
        cstream_queue(st, make_ack(st, &r), -1);
        st->phase = 2;
        if (atomic_fetch_add(&C.synced, 1) + 1 == C.nstreams)
            client_record(R_READY, -1, t, t - C.t_start);
    } else if (st->phase == 3) {
        on_resync_response(st, &r, t);
    } else if (st->phase == 2 && st->awaiting >= 0 && r.eds) {
        int k = st->awaiting;
        st->awaiting = -1;
        on_change_eds(st, &r, k, t);
    } else if (st->phase == 2 && st->awaiting < 0 && st->next < C.ntotal && r.cds && kind_new(st->next)) {
        on_new_clusters(st, &r, st->next);
    } else if (st->phase == 2 && st->awaiting < 0 && st->next < C.ntotal && r.eds && !kind_new(st->next)) {
        on_change_eds(st, &r, st->next++, t);
    } else {
        client_fail(
            "stream %d: unexpected response type=%s resources=%zu removed=%zu phase=%d next change=%d",
            st->id,
            r.cds   ? "CDS"
            : r.eds ? "EDS"
                    : "?",
            r.nres, r.nremoved, st->phase, st->next);
        if (r.cds || r.eds)
            cstream_queue(st, make_ack(st, &r), -2);
    }
out:
    upb_Arena_Free(a);
    grpc_slice_unref(msg);
}

static void on_client_send(cstream_t *st, bool ok)
{
    st->sending = false;
    grpc_byte_buffer_destroy(st->send_buf);
    st->send_buf = NULL;
    int k = st->sending_ack_of;
    if (ok && k == -1 && atomic_fetch_add(&C.init_acked, 1) + 1 == C.nstreams)
        client_record(R_ACKED, -1, now_s(), 0);
    if (ok && k == K_RESYNC && atomic_fetch_add(&C.reacked, 1) + 1 == C.nstreams)
        client_record(R_ACKED, K_RESYNC, now_s(), 0);
    if (ok && k >= 0 && atomic_fetch_add(&C.acked[k], 1) + 1 == C.nstreams)
        client_record(R_ACKED, k, now_s(), 0);
    if (ok)
        cstream_pump(st);
    else
        cstream_maybe_restart(st);
}

static void on_client_status(cstream_t *st)
{
    st->done = true;
    while (st->qn) { /* never sent */
        grpc_byte_buffer_destroy(st->q[st->qh].bb);
        st->qh = (st->qh + 1) % QCAP;
        st->qn--;
    }
    if (atomic_load(&st->drop) && !atomic_load(&C.stopping)) { /* the reconnect */
        if (st->status != GRPC_STATUS_CANCELLED)
            client_fail("stream %d: dropped, but it ended with status %d", st->id, (int)st->status);
        st->status_done = true;
        cstream_maybe_restart(st);
        return;
    }
    if (!atomic_load(&C.stopping)) {
        char *d = grpc_slice_to_c_string(st->details);
        client_fail("stream %d ended before the server was stopped: status %d %s", st->id, (int)st->status,
                    d);
        gpr_free(d);
    }
    if (st->status == GRPC_STATUS_UNAVAILABLE)
        atomic_fetch_add(&C.unavailable, 1);
    if (atomic_fetch_add(&C.ended, 1) + 1 == C.nstreams && atomic_load(&C.stopping))
        client_record(R_DONE, 0, now_s(), atomic_load(&C.unavailable));
}

static void *client_thread(void *arg)
{
    int me = (int)(intptr_t)arg;
    grpc_completion_queue *cq = C.cqs[me];
    /* This thread starts its own streams, so that all of a stream's work stays on one thread (no locks). */
    for (int i = 0; i < C.nstreams; i++)
        if ((i / C.nchannels) % CLIENT_THREADS == me) {
            C.streams[i].channel = C.channels[i % C.nchannels];
            C.streams[i].cq = cq;
            cstream_start(&C.streams[i]);
        }
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        ctag_t *tag = ev.tag;
        switch (tag->kind) {
        case CT_RECV:
            on_client_recv(tag->st, ev.success);
            break;
        case CT_SEND:
            on_client_send(tag->st, ev.success);
            break;
        case CT_STATUS:
            on_client_status(tag->st);
            break;
        }
    }
    return NULL;
}

/* --delta: the first requests of the reconnected streams, from what they have: Clusters with
 * initial_resource_versions; load assignments subscribing every one (and PROBE_NAME) with their versions. */
static bool build_resync_requests(void)
{
    size_t want = (size_t)C.nclusters + (size_t)C.ports * (size_t)C.nnew;
    if (C.have[0].n != want || C.have[1].n != want) {
        fprintf(stderr,
                "xds_bench client: the streams have %zu Clusters and %zu load assignments, expected %zu\n",
                C.have[0].n, C.have[1].n, want);
        return false;
    }
    for (int t = 0; t < 2; t++) {
        upb_Arena *a = upb_Arena_New();
        envoy_service_discovery_v3_DeltaDiscoveryRequest *r =
            envoy_service_discovery_v3_DeltaDiscoveryRequest_new(a);
        for (size_t i = 0; i < C.have[t].n; i++) {
            upb_StringView name = upb_StringView_FromString(C.have[t].v[i].name);
            envoy_service_discovery_v3_DeltaDiscoveryRequest_initial_resource_versions_set(
                r, name, upb_StringView_FromString(C.have[t].v[i].version), a);
            if (t == 1)
                envoy_service_discovery_v3_DeltaDiscoveryRequest_add_resource_names_subscribe(r, name, a);
        }
        if (t == 1)
            envoy_service_discovery_v3_DeltaDiscoveryRequest_add_resource_names_subscribe(
                r, upb_StringView_FromString(PROBE_NAME), a);
        size_t len;
        char *bytes = envoy_service_discovery_v3_DeltaDiscoveryRequest_serialize(r, a, &len);
        if (!bytes)
            abort();
        *(t == 0 ? &C.re_cds : &C.re_eds) = grpc_slice_from_copied_buffer(bytes, len);
        upb_Arena_Free(a);
    }
    return true;
}

/* Drops every stream at once (each reopens itself once its call is over). */
static bool client_reconnect(void)
{
    if (C.delta && !build_resync_requests())
        return false;
    pthread_mutex_lock(&C.lock);
    C.resent_total = C.resent_max = 0;
    C.resent_bytes = 0;
    pthread_mutex_unlock(&C.lock);
    atomic_store(&C.resynced, 0);
    atomic_store(&C.reacked, 0);
    atomic_store(&C.reconnecting, true);
    C.t_drop = now_s();
    for (int i = 0; i < C.nstreams; i++) {
        atomic_store(&C.streams[i].drop, true);
        grpc_call_cancel(C.streams[i].call, NULL);
    }
    return true;
}

/* `xds_bench --client streams channels port changes nclusters zones delta ports new_services reconnect`; fd
 * 3: names then commands, fd 4: records. */
static int client_main(int argc, char **argv)
{
    if (argc < 12)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    C.nstreams = atoi(argv[2]);
    C.nchannels = atoi(argv[3]);
    C.port = atoi(argv[4]);
    C.nchanges = atoi(argv[5]);
    C.nclusters = atoi(argv[6]);
    C.zones = atoi(argv[7]) != 0;
    C.delta = atoi(argv[8]) != 0;
    C.ports = atoi(argv[9]);
    C.nnew = atoi(argv[10]);
    C.reconnect = atoi(argv[11]) != 0;
    C.ntotal = C.nchanges + C.nnew + (C.reconnect ? 1 : 0);
    C.out_fd = 4;
    pthread_mutex_init(&C.lock, NULL);
    size_t nk = (size_t)C.ntotal + 1;
    C.received = ekg_xcalloc(nk, sizeof(*C.received));
    C.acked = ekg_xcalloc(nk, sizeof(*C.acked));
    C.versions = ekg_xcalloc(nk, sizeof(*C.versions));
    C.bytes = ekg_xcalloc(nk, sizeof(*C.bytes));
    C.cds_versions = ekg_xcalloc(nk, sizeof(*C.cds_versions));
    C.msg_sum = ekg_xcalloc(nk, sizeof(*C.msg_sum));
    C.msg_max = ekg_xcalloc(nk, sizeof(*C.msg_max));
    C.extra = ekg_xcalloc((size_t)C.nnew + 1, sizeof(*C.extra));
    C.extra_set = ekg_xcalloc((size_t)C.nnew + 1, sizeof(*C.extra_set));
    C.streams = ekg_xcalloc((size_t)C.nstreams, sizeof(*C.streams));
    C.channels = ekg_xcalloc((size_t)C.nchannels, sizeof(*C.channels));

    /* The load-assignment names, from the round process. */
    uint32_t len = 0;
    bool got = read_all(3, &len, sizeof(len), 10000);
    char *names = ekg_xmalloc((size_t)len + 1);
    if (!got || !read_all(3, names, len, 10000)) {
        fprintf(stderr, "xds_bench client: cannot read the resource names\n");
        return 1;
    }
    names[len] = '\0';
    upb_Arena *a = upb_Arena_New();
    envoy_service_discovery_v3_DiscoveryRequest *req = envoy_service_discovery_v3_DiscoveryRequest_new(a);
    for (char *p = names, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
        upb_StringView name = upb_StringView_FromDataAndSize(p, (size_t)(nl - p));
        envoy_service_discovery_v3_DiscoveryRequest_add_resource_names(req, name, a);
        nvmap_put(&C.known, name, (upb_StringView){0}); /* cluster names = load assignment names */
    }
    size_t nlen;
    char *nbytes = envoy_service_discovery_v3_DiscoveryRequest_serialize(req, a, &nlen);

    grpc_init();
    C.names = grpc_slice_from_copied_buffer(nbytes, nlen);
    C.re_cds = C.re_eds = grpc_empty_slice();
    upb_Arena_Free(a);
    free(names);

    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", C.port);
    /* A local subchannel pool: K channels are K connections (the global pool would share one). */
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = -1},
    };
    grpc_channel_args cargs = {.num_args = 2, .args = args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    for (int i = 0; i < C.nchannels; i++)
        C.channels[i] = grpc_channel_create(target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    for (int i = 0; i < C.nstreams; i++) {
        C.streams[i].id = i;
        C.streams[i].awaiting = -1;
        /* --zones: every tenth stream has no locality, the others are spread over the 3 zones. */
        C.streams[i].group = !C.zones ? 0 : i % 10 == 9 ? NO_LOCALITY : i % 3;
        C.group_streams[C.streams[i].group]++;
    }
    C.t_start = now_s();
    for (int i = 0; i < CLIENT_THREADS; i++) {
        C.cqs[i] = grpc_completion_queue_create_for_next(NULL);
        pthread_create(&C.threads[i], NULL, client_thread, (void *)(intptr_t)i);
    }

    /* Commands: 'r' drop every stream and reconnect (--delta), 's' the server is about to stop (streams
     * ending is expected from now on), 'q' quit. */
    for (;;) {
        char c;
        struct pollfd pfd = {.fd = 3, .events = POLLIN};
        if (poll(&pfd, 1, 1000) <= 0)
            continue;
        ssize_t k = read(3, &c, 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0 || c == 'q')
            break;
        if (c == 'r' && !client_reconnect())
            client_fail("cannot reconnect");
        if (c == 's') {
            atomic_store(&C.stopping, true);
            client_record(R_STOPPING, 0, now_s(), 0);
        }
    }

    atomic_store(&C.stopping, true);
    for (int i = 0; i < C.nstreams; i++)
        if (C.streams[i].call)
            grpc_call_cancel(C.streams[i].call, NULL);
    for (int waited = 0; atomic_load(&C.ended) < C.nstreams && waited < 5000; waited += 10)
        sleep_ms(10);
    bool clean = atomic_load(&C.ended) == C.nstreams;
    if (clean) {
        for (int i = 0; i < C.nstreams; i++) {
            cstream_t *st = &C.streams[i];
            if (st->call)
                grpc_call_unref(st->call);
            grpc_metadata_array_destroy(&st->md_initial);
            grpc_metadata_array_destroy(&st->md_trailing);
            grpc_slice_unref(st->details);
        }
        for (int i = 0; i < C.nchannels; i++)
            grpc_channel_destroy(C.channels[i]);
    }
    for (int i = 0; i < CLIENT_THREADS; i++)
        grpc_completion_queue_shutdown(C.cqs[i]);
    for (int i = 0; i < CLIENT_THREADS; i++) {
        pthread_join(C.threads[i], NULL);
        grpc_completion_queue_destroy(C.cqs[i]);
    }
    if (!clean) {
        fprintf(stderr, "xds_bench client: %d of %d streams did not end\n",
                C.nstreams - atomic_load(&C.ended), C.nstreams);
        _exit(1);
    }
    grpc_slice_unref(C.names);
    grpc_slice_unref(C.re_cds);
    grpc_slice_unref(C.re_eds);
    for (int j = 0; j < C.nnew; j++)
        if (C.extra_set[j])
            grpc_slice_unref(C.extra[j]);
    grpc_shutdown_blocking();
    nvmap_free(&C.known);
    nvmap_free(&C.have[0]);
    nvmap_free(&C.have[1]);
    free(C.streams);
    free(C.channels);
    free(C.received);
    free(C.acked);
    free(C.versions);
    free(C.bytes);
    free(C.cds_versions);
    free(C.msg_sum);
    free(C.msg_max);
    free(C.extra);
    free(C.extra_set);
    return atomic_load(&C.failed) ? 1 : 0;
}

/* --- the baseline server ------------------------------------------------------------------------------- */

/*
 * The least a gRPC C-core ADS server can do: per call one RECV_MESSAGE and one RECV_CLOSE_ON_SERVER
 * outstanding (as ekglue), requests decoded with upb to read type_url and nonce, a per-call FIFO of
 * pre-encoded responses with one SEND_MESSAGE in flight, static slices (no copy, no refcount).
 */

typedef struct payload {
    char *data; /* owned by the round */
    size_t len;
} payload_t;

typedef struct bserver bserver_t;
typedef enum { BEV_REQUEST, BEV_RECV, BEV_SEND, BEV_CLOSE, BEV_SHUTDOWN } bev_t;
typedef struct btag {
    bev_t ev;
    void *owner;
} btag_t;

typedef struct bstream {
    bserver_t *srv;
    grpc_call *call;
    atomic_int refs;
    pthread_mutex_t lock;
    grpc_byte_buffer *recv_buf, *send_buf;
    const payload_t *q[QCAP];
    int qh, qn;
    bool sending, closed, metadata_sent;
    int cancelled;
    int group;    /* --zones: the zone its first request's node names (a, b, c), or NO_LOCALITY; else 0 */
    size_t index; /* in srv->streams, under srv->lock */
    btag_t recv_tag, send_tag, close_tag;
} bstream_t;

typedef struct bworker {
    bserver_t *srv;
    grpc_completion_queue *cq;
    pthread_t thread;
    btag_t tag;
    grpc_call *new_call;
    gpr_timespec deadline;
    grpc_metadata_array md;
} bworker_t;

struct bserver {
    grpc_server *server;
    void *method;
    bworker_t *workers;
    int nworkers;
    int port;
    bool zones;
    payload_t cds, eds[NGROUPS];
    payload_t *updates; /* change k, group g: updates[k * NGROUPS + g] */
    btag_t shutdown_tag;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping, shutdown_done;
    bstream_t **streams;
    size_t nstreams, cap;
};

static void bstream_unref(bstream_t *st)
{
    if (atomic_fetch_sub(&st->refs, 1) != 1)
        return;
    if (st->recv_buf)
        grpc_byte_buffer_destroy(st->recv_buf);
    if (st->send_buf)
        grpc_byte_buffer_destroy(st->send_buf);
    grpc_call_unref(st->call);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

static void bstream_batch(bstream_t *st, const grpc_op *ops, size_t n, btag_t *tag)
{
    atomic_fetch_add(&st->refs, 1);
    if (grpc_call_start_batch(st->call, ops, n, tag, NULL) != GRPC_CALL_OK)
        abort();
}

static void bstream_recv(bstream_t *st)
{
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (!st->metadata_sent) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        st->metadata_sent = true;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &st->recv_buf;
    bstream_batch(st, ops, n, &st->recv_tag);
}

/* Caller holds st->lock. */
static void bstream_pump(bstream_t *st)
{
    if (st->sending || st->closed || st->qn == 0)
        return;
    const payload_t *p = st->q[st->qh];
    st->qh = (st->qh + 1) % QCAP;
    st->qn--;
    grpc_slice s = grpc_slice_from_static_buffer(p->data, p->len);
    st->send_buf = grpc_raw_byte_buffer_create(&s, 1);
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = st->send_buf;
    st->sending = true;
    bstream_batch(st, &op, 1, &st->send_tag);
}

static void bstream_queue(bstream_t *st, const payload_t *p)
{
    if (st->qn == QCAP) {
        fprintf(stderr, "xds_bench baseline: send queue full\n");
        abort();
    }
    st->q[(st->qh + st->qn++) % QCAP] = p;
    bstream_pump(st);
}

static void b_on_recv(bstream_t *st, bool ok)
{
    pthread_mutex_lock(&st->lock);
    if (ok && st->recv_buf) {
        grpc_byte_buffer_reader reader;
        grpc_byte_buffer_reader_init(&reader, st->recv_buf);
        grpc_slice msg = grpc_byte_buffer_reader_readall(&reader);
        grpc_byte_buffer_reader_destroy(&reader);
        grpc_byte_buffer_destroy(st->recv_buf);
        st->recv_buf = NULL;
        upb_Arena *a = upb_Arena_New();
        envoy_service_discovery_v3_DiscoveryRequest *r = envoy_service_discovery_v3_DiscoveryRequest_parse_ex(
            (const char *)GRPC_SLICE_START_PTR(msg), GRPC_SLICE_LENGTH(msg), NULL,
            kUpb_DecodeOption_AliasString, a);
        if (r && st->srv->zones && envoy_service_discovery_v3_DiscoveryRequest_has_node(r)) {
            /* The group whose bytes this stream gets, from the node of its first request. */
            const struct envoy_config_core_v3_Node *node =
                envoy_service_discovery_v3_DiscoveryRequest_node(r);
            const struct envoy_config_core_v3_Locality *l = envoy_config_core_v3_Node_has_locality(node)
                                                                ? envoy_config_core_v3_Node_locality(node)
                                                                : NULL;
            upb_StringView z = l ? envoy_config_core_v3_Locality_zone(l) : (upb_StringView){0};
            st->group = z.size == strlen(REGION "-a") && memcmp(z.data, REGION "-", z.size - 1) == 0 &&
                                z.data[z.size - 1] >= 'a' && z.data[z.size - 1] <= 'c'
                            ? z.data[z.size - 1] - 'a'
                            : NO_LOCALITY;
        }
        if (r && envoy_service_discovery_v3_DiscoveryRequest_response_nonce(r).size == 0) {
            upb_StringView url = envoy_service_discovery_v3_DiscoveryRequest_type_url(r);
            if (url.size == strlen(CDS_TYPE) && memcmp(url.data, CDS_TYPE, url.size) == 0)
                bstream_queue(st, &st->srv->cds);
            else
                bstream_queue(st, &st->srv->eds[st->group]);
        }
        upb_Arena_Free(a);
        grpc_slice_unref(msg);
        bstream_recv(st);
    }
    pthread_mutex_unlock(&st->lock);
    bstream_unref(st);
}

static void b_on_send(bstream_t *st, bool ok)
{
    pthread_mutex_lock(&st->lock);
    st->sending = false;
    grpc_byte_buffer_destroy(st->send_buf);
    st->send_buf = NULL;
    if (ok)
        bstream_pump(st);
    pthread_mutex_unlock(&st->lock);
    bstream_unref(st);
}

static void b_on_close(bstream_t *st)
{
    bserver_t *s = st->srv;
    pthread_mutex_lock(&st->lock);
    st->closed = true;
    pthread_mutex_unlock(&st->lock);
    pthread_mutex_lock(&s->lock);
    bstream_t *last = s->streams[--s->nstreams];
    last->index = st->index;
    s->streams[st->index] = last;
    if (s->nstreams == 0)
        pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    bstream_unref(st); /* the list's */
    bstream_unref(st); /* the batch's */
}

static void b_arm(bworker_t *w)
{
    bserver_t *s = w->srv;
    pthread_mutex_lock(&s->lock);
    if (!s->stopping) {
        grpc_metadata_array_init(&w->md);
        grpc_server_request_registered_call(s->server, s->method, &w->new_call, &w->deadline, &w->md, NULL,
                                            w->cq, w->cq, &w->tag);
    }
    pthread_mutex_unlock(&s->lock);
}

static void b_on_request(bworker_t *w, bool ok)
{
    bserver_t *s = w->srv;
    grpc_metadata_array_destroy(&w->md);
    if (!ok)
        return;
    grpc_call *call = w->new_call;
    b_arm(w);
    bstream_t *st = ekg_xcalloc(1, sizeof(*st));
    st->srv = s;
    st->call = call;
    atomic_init(&st->refs, 2); /* ours and the list's */
    pthread_mutex_init(&st->lock, NULL);
    st->recv_tag = (btag_t){BEV_RECV, st};
    st->send_tag = (btag_t){BEV_SEND, st};
    st->close_tag = (btag_t){BEV_CLOSE, st};
    pthread_mutex_lock(&st->lock);
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &st->cancelled;
    bstream_batch(st, &op, 1, &st->close_tag);
    bstream_recv(st);
    pthread_mutex_unlock(&st->lock);
    pthread_mutex_lock(&s->lock);
    st->index = s->nstreams;
    EKG_ARRAY_PUSH(s->streams, s->nstreams, s->cap, st);
    if (s->stopping)
        grpc_call_cancel_with_status(call, GRPC_STATUS_UNAVAILABLE, "server shutting down", NULL);
    pthread_mutex_unlock(&s->lock);
    bstream_unref(st);
}

static void *b_worker(void *arg)
{
    bworker_t *w = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        btag_t *tag = ev.tag;
        switch (tag->ev) {
        case BEV_REQUEST:
            b_on_request(tag->owner, ev.success);
            break;
        case BEV_RECV:
            b_on_recv(tag->owner, ev.success);
            break;
        case BEV_SEND:
            b_on_send(tag->owner, ev.success);
            break;
        case BEV_CLOSE:
            b_on_close(tag->owner);
            break;
        case BEV_SHUTDOWN: {
            bserver_t *s = tag->owner;
            pthread_mutex_lock(&s->lock);
            s->shutdown_done = true;
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->lock);
            break;
        }
        }
    }
    return NULL;
}

static int bserver_start(bserver_t *s, int threads)
{
    grpc_init();
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    s->shutdown_tag = (btag_t){BEV_SHUTDOWN, s};
    s->server = grpc_server_create(NULL, NULL);
    s->method = grpc_server_register_method(s->server, ADS_METHOD, NULL, GRPC_SRM_PAYLOAD_NONE, 0);
    s->nworkers = threads;
    s->workers = ekg_xcalloc((size_t)threads, sizeof(*s->workers));
    for (int i = 0; i < threads; i++) {
        s->workers[i].srv = s;
        s->workers[i].tag = (btag_t){BEV_REQUEST, &s->workers[i]};
        s->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->server, s->workers[i].cq, NULL);
    }
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    s->port = grpc_server_add_http2_port(s->server, "127.0.0.1:0", creds);
    grpc_server_credentials_release(creds);
    if (!s->port)
        return -1;
    grpc_server_start(s->server);
    for (int i = 0; i < threads; i++) {
        pthread_create(&s->workers[i].thread, NULL, b_worker, &s->workers[i]);
        b_arm(&s->workers[i]);
    }
    return 0;
}

/* The change: the update to every stream, from this thread. p: the update of each group. */
static void bserver_push(bserver_t *s, const payload_t p[NGROUPS])
{
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nstreams; i++) {
        bstream_t *st = s->streams[i];
        pthread_mutex_lock(&st->lock);
        bstream_queue(st, &p[st->group]);
        pthread_mutex_unlock(&st->lock);
    }
    pthread_mutex_unlock(&s->lock);
}

static bool b_done(bserver_t *s)
{
    return s->nstreams == 0 && s->shutdown_done;
}

static void bserver_stop(bserver_t *s)
{
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_mutex_unlock(&s->lock);
    grpc_server_shutdown_and_notify(s->server, s->workers[0].cq, &s->shutdown_tag);
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nstreams; i++)
        grpc_call_cancel_with_status(s->streams[i]->call, GRPC_STATUS_UNAVAILABLE, "server shutting down",
                                     NULL);
    long long dl_ms = ekg_clock_ms() + 5000; /* s->cond waits on CLOCK_MONOTONIC */
    struct timespec dl = {.tv_sec = (time_t)(dl_ms / 1000), .tv_nsec = (long)(dl_ms % 1000) * 1000000L};
    while (!b_done(s) && pthread_cond_timedwait(&s->cond, &s->lock, &dl) == 0)
        ;
    bool done = b_done(s);
    pthread_mutex_unlock(&s->lock);
    if (!done) {
        fprintf(stderr, "xds_bench baseline: not drained in 5 s; cancelling all calls\n");
        grpc_server_cancel_all_calls(s->server);
        pthread_mutex_lock(&s->lock);
        dl.tv_sec += 2;
        while (!b_done(s) && pthread_cond_timedwait(&s->cond, &s->lock, &dl) == 0)
            ;
        pthread_mutex_unlock(&s->lock);
    }
    grpc_server_destroy(s->server);
    for (int i = 0; i < s->nworkers; i++)
        grpc_completion_queue_shutdown(s->workers[i].cq);
    for (int i = 0; i < s->nworkers; i++) {
        pthread_join(s->workers[i].thread, NULL);
        grpc_completion_queue_destroy(s->workers[i].cq);
    }
    free(s->workers);
    free(s->streams);
    grpc_shutdown_blocking();
}

/* --- responses encoded like ekglue's session does (header fields + resources) ------------------------- */

static void put_field(buf_t *b, int field, const char *data, size_t len)
{
    char hdr[12];
    size_t n = 0;
    hdr[n++] = (char)(field << 3 | 2);
    size_t v = len;
    while (v >= 0x80) {
        hdr[n++] = (char)(v | 0x80);
        v >>= 7;
    }
    hdr[n++] = (char)v;
    put_bytes(b, hdr, n);
    put_bytes(b, data, len);
}

static payload_t response_bytes(const char *version, const char *url, const char *nonce, const char *res,
                                size_t res_len)
{
    buf_t b = {0};
    put_field(&b, 1, version, strlen(version));
    put_field(&b, 4, url, strlen(url));
    put_field(&b, 5, nonce, strlen(nonce));
    put_bytes(&b, res, res_len);
    return (payload_t){b.p, b.n};
}

/* The response fields of every resource added or changed, concatenated (an endpoint change changes its
 * Service's P load assignments). */
static void collect_changed(void *ctx, const char *name, const ekg_resource_t *before,
                            const ekg_resource_t *after)
{
    buf_t *out = ctx;
    size_t len;
    if (after) {
        const char *field = ekg_resource_response_field(after, &len);
        put_bytes(out, field, len);
    }
}

/* --- a round: the server process ---------------------------------------------------------------------- */

typedef struct result {
    int ok;
    double sync_ms;
    int nchanges;
    double lat_ms[MAX_CHANGES];
    double prep_ms;        /* mean: ekglue put_slice + build + snapshot before publishing */
    double publish_ms;     /* mean: the publish / push call itself */
    double publish_cpu_ms; /* mean: CPU of the publishing thread during that call */
    double cpu_per_change_ms;
    double rss0_kb, rss1_kb, rss2_kb, heap0_kb, heap1_kb;
    double idle_cpu_ms;
    double stop_ms;
    int stop_unavailable;
    double client_cpu_ms;
    double cds_bytes, eds_bytes, update_bytes;
    /* Resource bytes (encoded ClusterLoadAssignments) each group's streams received, as the client counted
     * them: the initial EDS, and change 0's update; -1 for a group without streams. */
    double group_eds_bytes[NGROUPS], group_update_bytes[NGROUPS];
    /* --delta */
    double upd_msg; /* an endpoint change: the load-assignment message per stream (B), mean */
    int nnew;
    double new_lat_ms[MAX_NEW]; /* new Service -> the last stream has its Clusters and load assignments */
    double new_msg[2], new_msg_max[2]; /* a new Service: message bytes per stream [Clusters, load
                                          assignments], mean over streams and Services; the largest */
    double new_prep_ms, new_cpu_ms;    /* per new Service: translate + snapshot; server CPU incl. ACKs */
    double resync_ms;                  /* the reconnect: from the drop until every stream is back */
    double resync_bytes;               /* message bytes a stream received until it was back, mean */
    double resent_total;               /* resources received again, all streams */
    double resent_max;                 /* the most one stream received again */
    double resync_cpu_ms;              /* the server's CPU for the reconnect, ACKs included */
    double post_lat_ms;                /* the endpoint change after the reconnect -> last stream */
} result_t;

typedef struct round_opts {
    int streams, services, changes, threads, channels;
    int trim_ms;      /* ekglue's trim_quiet_ms (0 = its default, -1 = never) */
    int zones;        /* --zones: 1 */
    int delta;        /* --delta: 1 (the new-Service and reconnect scenarios run in both rounds) */
    int ports;        /* --ports */
    int new_services; /* --new-services (with --delta) */
} round_opts_t;

typedef struct round {
    bool ekglue;
    bool plain; /* the "plain" round: ekglue with zone_priorities: never */
    bool delta; /* the "delta" round: ekglue, the clients on DeltaAggregatedResources */
    round_opts_t o;
    /* ekglue */
    ekg_config_t *cfg;
    ekg_translator_t *t;
    ekg_cache_t *cache;
    ekg_xds_server_t *xds;
    /* baseline */
    bserver_t b;
    buf_t names;
    int nclusters;
} round_t;

/* Waits until the server's CPU use stays under 5% for two 20 ms samples (bounded by 5 s). */
static void wait_quiet(void)
{
    int quiet = 0;
    for (int i = 0; i < 250 && quiet < 2; i++) {
        double c0 = cpu_ms();
        sleep_ms(20);
        quiet = cpu_ms() - c0 < 1.0 ? quiet + 1 : 0;
    }
}

/* Sets of the snapshot each group gets (borrowed from snap): the zone's, or the plain one. */
static void group_sets(ekg_snapshot_t *snap, ekg_resource_set_t *out[NGROUPS])
{
    static const char *const zone[3] = {REGION "-a", REGION "-b", REGION "-c"};
    for (int g = 0; g < NGROUPS; g++) {
        ekg_place_t place = {REGION, g < 3 ? zone[g] : "", ""};
        out[g] = ekg_snapshot_resources_at(snap, EKG_RESOURCE_LOAD_ASSIGNMENT, g < 3 ? &place : NULL);
    }
}

/* The baseline's bytes with --zones: each group's initial EDS and updates, from ekglue's per-zone sets. */
static int baseline_zone_payloads(round_t *r)
{
    ekg_snapshot_t *snap = NULL, *next = NULL;
    ekg_resource_set_t *prev[NGROUPS], *cur[NGROUPS];
    const char *data;
    size_t len;
    if (ekg_translator_snapshot(r->t, &snap))
        return -1;
    group_sets(snap, prev);
    for (int g = 0; g < NGROUPS; g++) {
        ekg_resource_set_response_fields(prev[g], &data, &len);
        r->b.eds[g] = response_bytes(ekg_resource_set_version(prev[g]), EDS_TYPE, "2", data, len);
    }
    r->b.updates = ekg_xcalloc((size_t)r->o.changes * NGROUPS, sizeof(*r->b.updates));
    for (int k = 0; k < r->o.changes; k++) {
        ekg_endpoint_slice_t *slice = change_slice(k, r->o.services, r->o.ports, true);
        if (!slice)
            goto fail;
        ekg_translator_put_slice(r->t, slice);
        if (ekg_translator_snapshot(r->t, &next))
            goto fail;
        group_sets(next, cur);
        char nonce[16];
        snprintf(nonce, sizeof(nonce), "%d", k + 3);
        for (int g = 0; g < NGROUPS; g++) {
            buf_t changed = {0};
            ekg_resource_set_diff(prev[g], cur[g], collect_changed, &changed);
            if (!changed.n)
                goto fail;
            r->b.updates[k * NGROUPS + g] =
                response_bytes(ekg_resource_set_version(cur[g]), EDS_TYPE, nonce, changed.p, changed.n);
            free(changed.p);
            prev[g] = cur[g];
        }
        ekg_snapshot_unref(snap);
        snap = next;
        next = NULL;
    }
    ekg_snapshot_unref(snap);
    return 0;
fail:
    ekg_snapshot_unref(snap);
    return -1;
}

/* Whether a stream's names (every load assignment; a delta reconnect also names each once more with its
 * version) pass the server's default limits. */
static bool names_over_limits(const round_opts_t *o)
{
    long long names = (long long)o->ports * (o->services + o->new_services) + 1;
    return names > EKG_XDS_DEFAULT_MAX_NAMES_PER_REQUEST / 2 || names > EKG_XDS_DEFAULT_MAX_NAMES_PER_STREAM;
}

static int round_setup(round_t *r, result_t *res)
{
    if (workload_new(r->o.services, r->o.ports, r->o.zones, r->plain, &r->cfg, &r->t))
        return -1;
    names_of(r->t, &r->names);
    ekg_resource_set_t *cl = ekg_translator_set(r->t, EKG_RESOURCE_CLUSTER);
    ekg_resource_set_t *la = ekg_translator_set(r->t, EKG_RESOURCE_LOAD_ASSIGNMENT);
    r->nclusters = (int)ekg_resource_set_size(cl);
    if (ekg_resource_set_size(la) != ekg_resource_set_size(cl)) {
        fprintf(stderr, "xds_bench: %zu clusters but %zu load assignments\n", ekg_resource_set_size(cl),
                ekg_resource_set_size(la));
        return -1;
    }
    if (r->ekglue) {
        ekg_diag_t diag = {{0}};
        /* --zones: as the daemon does, with the translator's zone table attached (per-place sets). */
        ekg_snapshot_t *snap = NULL;
        if (!r->o.zones)
            snap = snapshot_of(r->t);
        else if (ekg_translator_snapshot(r->t, &snap))
            snap = NULL;
        ekg_xds_server_options_t xo = {
            .listen = "127.0.0.1:0", .threads = r->o.threads, .trim_quiet_ms = r->o.trim_ms};
        if (names_over_limits(&r->o)) { /* an operator serving such clients raises them likewise */
            xo.limits.max_names_per_request = -1;
            xo.limits.max_names_per_stream = -1;
            xo.limits.max_request_bytes = 64 << 20;
            /* 1,000 streams syncing ~10 MB each on 2 CPUs: the client falls behind by more than the send
             * timeout, and gRPC's buffers pass the default memory limit (RST_STREAM ENHANCE_YOUR_CALM) */
            xo.limits.send_timeout_ms = -1;
            xo.limits.memory_limit_bytes = -1;
        }
        if (!snap)
            return -1;
        r->cache = ekg_cache_new();
        ekg_cache_publish(r->cache, snap);
        ekg_snapshot_unref(snap);
        if (ekg_xds_server_start(r->cache, &xo, &r->xds, &diag) != EKG_OK) {
            fprintf(stderr, "xds_bench: %s\n", diag.msg);
            return -1;
        }
    } else {
        /* The same bytes ekglue sends: the sets' response fields, versions, and every change's update. */
        const char *data;
        size_t len;
        ekg_resource_set_response_fields(cl, &data, &len);
        r->b.cds = response_bytes(ekg_resource_set_version(cl), CDS_TYPE, "1", data, len);
        r->b.zones = r->o.zones;
        if (r->o.zones && baseline_zone_payloads(r))
            return -1;
        ekg_resource_set_response_fields(la, &data, &len);
        if (!r->o.zones)
            r->b.eds[0] = response_bytes(ekg_resource_set_version(la), EDS_TYPE, "2", data, len);
        if (!r->o.zones)
            r->b.updates = ekg_xcalloc((size_t)r->o.changes * NGROUPS, sizeof(*r->b.updates));
        ekg_resource_set_t *prev = ekg_resource_set_ref(la);
        for (int k = 0; k < r->o.changes && !r->o.zones; k++) {
            ekg_endpoint_slice_t *slice = change_slice(k, r->o.services, r->o.ports, false);
            ekg_resource_set_t *cur = NULL;
            if (!slice)
                return -1;
            ekg_translator_put_slice(r->t, slice);
            if (ekg_translator_build(r->t, NULL, &cur))
                return -1;
            buf_t changed = {0};
            ekg_resource_set_diff(prev, cur, collect_changed, &changed);
            if (!changed.n)
                return -1;
            char nonce[16];
            snprintf(nonce, sizeof(nonce), "%d", k + 3);
            r->b.updates[k * NGROUPS] =
                response_bytes(ekg_resource_set_version(cur), EDS_TYPE, nonce, changed.p, changed.n);
            free(changed.p);
            ekg_resource_set_unref(prev);
            prev = cur;
        }
        ekg_resource_set_unref(prev);
        res->cds_bytes = (double)r->b.cds.len;
        res->eds_bytes = (double)r->b.eds[0].len;
        res->update_bytes = r->o.changes ? (double)r->b.updates[0].len : 0;
        ekg_translator_free(r->t);
        r->t = NULL;
        ekg_config_free(r->cfg);
        r->cfg = NULL;
        malloc_trim(0);
        if (bserver_start(&r->b, r->o.threads))
            return -1;
    }
    ekg_resource_set_unref(cl);
    ekg_resource_set_unref(la);
    return 0;
}

/* One change; *prep_ms is the part before the fan-out starts. */
static int round_change(round_t *r, int k, double *t0, double *prep_ms, double *publish_ms,
                        double *publish_cpu)
{
    if (!r->ekglue) {
        *t0 = now_s();
        double c = thread_cpu_ms();
        bserver_push(&r->b, &r->b.updates[k * NGROUPS]);
        *publish_cpu = thread_cpu_ms() - c;
        *prep_ms = 0;
        *publish_ms = (now_s() - *t0) * 1e3;
        return 0;
    }
    ekg_endpoint_slice_t *slice =
        change_slice(k, r->o.services, r->o.ports, r->o.zones); /* the watcher's parse: not timed */
    if (!slice)
        return -1;
    *t0 = now_s();
    ekg_translator_put_slice(r->t, slice);
    ekg_snapshot_t *snap = NULL;
    if (r->o.zones) { /* as the daemon does (ekg_cache_publish_translation): the zone table attached */
        if (ekg_translator_snapshot(r->t, &snap))
            return -1;
    } else {
        if (ekg_translator_build(r->t, NULL, NULL))
            return -1;
        snap = snapshot_of(r->t);
    }
    if (!snap)
        return -1;
    double t1 = now_s(), c = thread_cpu_ms();
    ekg_cache_publish(r->cache, snap);
    double t2 = now_s();
    *publish_cpu = thread_cpu_ms() - c;
    ekg_snapshot_unref(snap);
    *prep_ms = (t1 - *t0) * 1e3;
    *publish_ms = (t2 - t1) * 1e3;
    return 0;
}

/* --delta: new Service j and its slice appear (as the watcher would put them, one build, one publish). */
static int round_new_service(round_t *r, int j, double *t0, double *prep_ms, double *publish_ms)
{
    ekg_service_t *svc;
    ekg_endpoint_slice_t *slice;
    if (new_service_objects(j, r->o.services, r->o.ports, &svc, &slice)) /* the watcher's parse: not timed */
        return -1;
    *t0 = now_s();
    ekg_translator_put_service(r->t, svc);
    ekg_translator_put_slice(r->t, slice);
    if (ekg_translator_build(r->t, NULL, NULL))
        return -1;
    ekg_snapshot_t *snap = snapshot_of(r->t);
    if (!snap)
        return -1;
    double t1 = now_s();
    ekg_cache_publish(r->cache, snap);
    *publish_ms = (now_s() - t1) * 1e3;
    ekg_snapshot_unref(snap);
    *prep_ms = (t1 - *t0) * 1e3;
    return 0;
}

static double round_stop(round_t *r)
{
    double t0 = now_s();
    if (r->ekglue) {
        ekg_xds_server_stop(r->xds);
        r->xds = NULL;
    } else {
        bserver_stop(&r->b);
    }
    return (now_s() - t0) * 1e3;
}

static void round_free(round_t *r)
{
    if (r->xds)
        ekg_xds_server_stop(r->xds);
    ekg_cache_free(r->cache);
    ekg_translator_free(r->t);
    ekg_config_free(r->cfg);
    free(r->b.cds.data);
    for (int g = 0; g < NGROUPS; g++)
        free(r->b.eds[g].data);
    for (int k = 0; r->b.updates && k < r->o.changes * NGROUPS; k++)
        free(r->b.updates[k].data);
    free(r->b.updates);
    free(r->names.p);
}

static pid_t spawn_client(const round_t *r, int port, int *to_child, int *from_child)
{
    int down[2], up[2];
    if (pipe(down) || pipe(up))
        return -1;
    char a[10][16];
    int v[10] = {r->o.streams, r->o.channels, port,
                 r->o.changes, r->nclusters,  r->o.zones,
                 r->delta,     r->o.ports,    r->o.delta ? r->o.new_services : 0,
                 r->o.delta};
    for (int i = 0; i < 10; i++)
        snprintf(a[i], sizeof(a[i]), "%d", v[i]);
    char *argv[] = {"xds_bench", "--client", a[0], a[1], a[2], a[3], a[4],
                    a[5],        a[6],       a[7], a[8], a[9], NULL};
    pid_t pid = fork();
    if (pid == 0) {
        /* Only async-signal-safe calls until exec. Out of the way first: a pipe end may already be 3 or 4. */
        int in = fcntl(down[0], F_DUPFD, 100), out = fcntl(up[1], F_DUPFD, 100);
        if (in < 0 || out < 0 || dup2(in, 3) < 0 || dup2(out, 4) < 0)
            _exit(127);
        for (int fd = 5; fd < 1024; fd++)
            close(fd);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(down[0]);
    close(up[1]);
    *to_child = down[1];
    *from_child = up[0];
    uint32_t len = (uint32_t)r->names.n;
    if (pid < 0 || !write_all(*to_child, &len, sizeof(len)) || !write_all(*to_child, r->names.p, len))
        return -1;
    return pid;
}

/* --delta, after the endpoint changes: new Services, the reconnect, one more endpoint change. */
static int round_delta_scenarios(round_t *r, result_t *res, int to_child, int from_child)
{
    rec_t rec;
    double cpu0 = cpu_ms(), prep = 0;
    int m = r->o.new_services;
    for (int j = 0; j < m; j++) {
        int k = r->o.changes + j;
        double t0, p, q;
        if (round_new_service(r, j, &t0, &p, &q)) {
            fprintf(stderr, "xds_bench: new Service %d failed\n", j);
            return -1;
        }
        prep += p;
        if (!expect(from_child, R_CHANGE, k, NEW_TIMEOUT, &rec))
            return -1;
        res->new_lat_ms[j] = (rec.t - t0) * 1e3;
        for (int s = 0; s < 2; s++) {
            res->new_msg[s] += rec.msg[s] / m;
            res->new_msg_max[s] = fmax(res->new_msg_max[s], rec.msg_max[s]);
        }
        if (!expect(from_child, R_ACKED, k, NEW_TIMEOUT, NULL))
            return -1;
        wait_quiet();
    }
    res->nnew = m;
    res->new_prep_ms = m ? prep / m : 0;
    res->new_cpu_ms = m ? (cpu_ms() - cpu0) / m : 0;
    /* Every stream dropped at once; each reopens saying what it has. */
    cpu0 = cpu_ms();
    if (!write_all(to_child, "r", 1) || !expect(from_child, R_RESYNCED, K_RESYNC, RESYNC_TIMEOUT, &rec))
        return -1;
    res->resync_ms = rec.v * 1e3;
    res->resent_total = rec.msg[0];
    res->resent_max = rec.msg[1];
    res->resync_bytes = rec.bytes[0];
    if (!expect(from_child, R_ACKED, K_RESYNC, CHANGE_TIMEOUT, NULL))
        return -1;
    wait_quiet();
    res->resync_cpu_ms = cpu_ms() - cpu0;
    /* The reconnected streams are in step: one more endpoint change reaches each of them exactly. */
    int k = r->o.changes + m;
    double t0, p, q, pc;
    if (round_change(r, k, &t0, &p, &q, &pc) || !expect(from_child, R_CHANGE, k, CHANGE_TIMEOUT, &rec))
        return -1;
    res->post_lat_ms = (rec.t - t0) * 1e3;
    if (!expect(from_child, R_ACKED, k, CHANGE_TIMEOUT, NULL))
        return -1;
    wait_quiet();
    return 0;
}

/* `xds_bench --round ekglue|baseline|plain|delta streams services changes threads channels trim_ms zones
 * delta ports new_services result_fd` */
static int round_main(int argc, char **argv)
{
    if (argc < 14)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    ekg_log_set_level(EKG_LOG_WARN);
    round_t r = {.ekglue = strcmp(argv[2], "baseline") != 0,
                 .plain = strcmp(argv[2], "plain") == 0,
                 .delta = strcmp(argv[2], "delta") == 0,
                 .o = {atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7]),
                       atoi(argv[8]), atoi(argv[9]), atoi(argv[10]), atoi(argv[11]), atoi(argv[12])}};
    int result_fd = atoi(argv[13]);
    result_t *res = ekg_xcalloc(1, sizeof(*res));
    int to_child = -1, from_child = -1, rc = 1;
    pid_t child = -1;
    ekg_diag_t diag = {{0}};
    rec_t rec;
    if (ekg_proto_init(&diag) != EKG_OK) {
        fprintf(stderr, "xds_bench: %s\n", diag.msg);
        goto out;
    }
    if (round_setup(&r, res))
        goto out;
    int port = r.ekglue ? ekg_xds_server_port(r.xds) : r.b.port;
    sleep_ms(100);
    res->rss0_kb = (double)rss_kb();
    res->heap0_kb = heap_kb();

    if ((child = spawn_client(&r, port, &to_child, &from_child)) < 0)
        goto out;
    if (!expect(from_child, R_READY, -1, SYNC_TIMEOUT, &rec))
        goto out;
    res->sync_ms = rec.v * 1e3;
    memcpy(res->group_eds_bytes, rec.bytes, sizeof(rec.bytes));
    if (!expect(from_child, R_ACKED, -1, CHANGE_TIMEOUT, NULL))
        goto out;
    wait_quiet();
    double c0 = cpu_ms();
    sleep_ms(IDLE_WINDOW_MS);
    res->idle_cpu_ms = cpu_ms() - c0;
    res->rss1_kb = (double)rss_kb();
    res->heap1_kb = heap_kb();

    double cpu_a = cpu_ms(), prep = 0, publish = 0, publish_cpu = 0;
    for (int k = 0; k < r.o.changes; k++) {
        double t0, p, q, pc;
        if (round_change(&r, k, &t0, &p, &q, &pc)) {
            fprintf(stderr, "xds_bench: change %d failed\n", k);
            goto out;
        }
        prep += p;
        publish += q;
        publish_cpu += pc;
        if (!expect(from_child, R_CHANGE, k, CHANGE_TIMEOUT, &rec))
            goto out;
        res->lat_ms[k] = (rec.t - t0) * 1e3;
        if (k == 0)
            memcpy(res->group_update_bytes, rec.bytes, sizeof(rec.bytes));
        res->upd_msg += rec.msg[1] / r.o.changes;
        if (!expect(from_child, R_ACKED, k, CHANGE_TIMEOUT, NULL))
            goto out;
        wait_quiet(); /* the server has handled the ACKs: the next change starts from rest */
    }
    res->nchanges = r.o.changes;
    res->cpu_per_change_ms = r.o.changes ? (cpu_ms() - cpu_a) / r.o.changes : 0;
    res->prep_ms = r.o.changes ? prep / r.o.changes : 0;
    res->publish_ms = r.o.changes ? publish / r.o.changes : 0;
    res->publish_cpu_ms = r.o.changes ? publish_cpu / r.o.changes : 0;
    res->rss2_kb = (double)rss_kb();
    if (r.o.delta && round_delta_scenarios(&r, res, to_child, from_child))
        goto out;

    if (!write_all(to_child, "s", 1) || !expect(from_child, R_STOPPING, 0, 5000, NULL))
        goto out;
    res->stop_ms = round_stop(&r);
    if (!expect(from_child, R_DONE, 0, 10000, &rec))
        goto out;
    res->stop_unavailable = (int)rec.v;
    res->client_cpu_ms = rec.cpu_ms;
    write_all(to_child, "q", 1);
    int status = reap(child, 10000);
    child = -1;
    if (status != 0) {
        fprintf(stderr, "xds_bench: the client exited with %d\n", status);
        goto out;
    }
    res->ok = 1;
    rc = 0;
out:
    if (child > 0) {
        if (to_child >= 0)
            write_all(to_child, "q", 1);
        reap(child, 3000);
    }
    write_all(result_fd, res, sizeof(*res));
    if (rc != 0)
        _exit(rc); /* a server may still be running: no cleanup, no destructors */
    round_free(&r);
    free(res);
    ekg_proto_shutdown();
    return rc;
}

/* --- the orchestrator ---------------------------------------------------------------------------------- */

static int run_round(const char *name, const round_opts_t *o, result_t *res)
{
    int p[2];
    if (pipe(p))
        return -1;
    char a[10][16], fd[16];
    int v[10] = {o->streams, o->services, o->changes, o->threads, o->channels,
                 o->trim_ms, o->zones,    o->delta,   o->ports,   o->new_services};
    for (int i = 0; i < 10; i++)
        snprintf(a[i], sizeof(a[i]), "%d", v[i]);
    snprintf(fd, sizeof(fd), "%d", p[1]);
    char *argv[] = {"xds_bench", "--round", (char *)name, a[0], a[1], a[2], a[3], a[4],
                    a[5],        a[6],      a[7],         a[8], a[9], fd,   NULL};
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(p[1]);
    bool got = pid > 0 && read_all(p[0], res, sizeof(*res), 900000);
    close(p[0]);
    int status = pid > 0 ? reap(pid, got ? 10000 : 0) : -1;
    if (!got || !res->ok || status != 0) {
        fprintf(stderr, "xds_bench: the %s round failed (exit %d)\n", name, status);
        return -1;
    }
    return 0;
}

typedef struct stats {
    double p50, p90, p99, max, mean;
} stats_t;

static stats_t latency_stats(const result_t *r)
{
    double v[MAX_CHANGES], sum = 0;
    int n = r->nchanges;
    stats_t s = {0};
    if (n == 0)
        return s;
    memcpy(v, r->lat_ms, (size_t)n * sizeof(double));
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    for (int i = 0; i < n; i++)
        sum += v[i];
    s = (stats_t){pct(v, n, 0.5), pct(v, n, 0.9), pct(v, n, 0.99), v[n - 1], sum / n};
    return s;
}

static void row(const char *label, const result_t *e, const result_t *b, double ve, double vb,
                const char *fmt)
{
    char se[32] = "-", sb[32] = "-", sr[32] = "";
    if (!e && !b)
        return;
    if (e)
        snprintf(se, sizeof(se), fmt, ve);
    if (b)
        snprintf(sb, sizeof(sb), fmt, vb);
    if (e && b && vb > 0)
        snprintf(sr, sizeof(sr), "%.2f", ve / vb);
    printf("%-44s %12s %12s %8s\n", label, se, sb, sr);
}

static void header(const char *a, const char *b)
{
    printf("\n%-44s %12s %12s %8s\n", "", a, b, "ratio");
}

/* --zones: the resource bytes each group's streams received, per round. */
static void group_bytes(const char *name, const result_t *r)
{
    if (!r)
        return;
    printf("%-10s", name);
    for (int g = 0; g < NGROUPS; g++) {
        char cell[40];
        if (r->group_eds_bytes[g] < 0)
            snprintf(cell, sizeof(cell), "-");
        else
            snprintf(cell, sizeof(cell), "%.1f KB / %.0f B", r->group_eds_bytes[g] / 1e3,
                     r->group_update_bytes[g]);
        printf(" %20s", cell);
    }
    printf("\n");
}

/* --delta: a row with the SotW and delta figures and delta/SotW. */
static void drow(const char *label, const result_t *s, const result_t *d, double vs, double vd,
                 const char *fmt)
{
    char cs[32] = "-", cd[32] = "-", cr[32] = "";
    if (s)
        snprintf(cs, sizeof(cs), fmt, vs);
    if (d)
        snprintf(cd, sizeof(cd), fmt, vd);
    if (s && d && vs > 0)
        snprintf(cr, sizeof(cr), "%.3g", vd / vs);
    printf("%-52s %14s %14s %9s\n", label, cs, cd, cr);
}

static double new_lat(const result_t *r, double p)
{
    double v[MAX_NEW];
    if (!r || r->nnew == 0)
        return 0;
    memcpy(v, r->new_lat_ms, (size_t)r->nnew * sizeof(double));
    qsort(v, (size_t)r->nnew, sizeof(double), cmp_double);
    return pct(v, r->nnew, p);
}

/* --delta: the "ekglue" (SotW) and "delta" rounds, side by side, and issue 12's targets. */
static int delta_main(const round_opts_t *o, const char *only)
{
    result_t *rs = ekg_xcalloc(1, sizeof(*rs)), *rd = ekg_xcalloc(1, sizeof(*rd)), *s = NULL, *d = NULL;
    int rc = 0;
    printf("--delta: the same ekglue and clients over StreamAggregatedResources (SotW) and "
           "DeltaAggregatedResources (delta); then %d new Service%s (%d Clusters each), every stream dropped "
           "and reconnected, one more endpoint change\n",
           o->new_services, o->new_services == 1 ? "" : "s", o->ports);
    if (!only || strcmp(only, "ekglue") == 0) {
        if (run_round("ekglue", o, rs))
            rc = 1;
        else
            s = rs;
    }
    if (!only || strcmp(only, "delta") == 0) {
        if (run_round("delta", o, rd))
            rc = 1;
        else
            d = rd;
    }
    if (!s && !d) {
        free(rs);
        free(rd);
        return rc;
    }
    stats_t ss = s ? latency_stats(s) : (stats_t){0}, sd = d ? latency_stats(d) : (stats_t){0};
    double n = o->streams;
    char label[96];
    printf("\n%-52s %14s %14s %9s\n", "", "SotW", "delta", "delta/SotW");
    drow("initial sync, all streams (ms)", s, d, s ? s->sync_ms : 0, d ? d->sync_ms : 0, "%.1f");
    snprintf(label, sizeof(label), "endpoint change (%d load assignment%s) -> last stream", o->ports,
             o->ports > 1 ? "s" : "");
    printf("%s\n", label);
    drow("  p50 (ms)", s, d, ss.p50, sd.p50, "%.2f");
    drow("  p90 (ms)", s, d, ss.p90, sd.p90, "%.2f");
    drow("  p99 (ms)", s, d, ss.p99, sd.p99, "%.2f");
    drow("  max (ms)", s, d, ss.max, sd.max, "%.2f");
    drow("  message per stream (B)", s, d, s ? s->upd_msg : 0, d ? d->upd_msg : 0, "%.0f");
    drow("  publish call returns after, mean (ms)", s, d, s ? s->publish_ms : 0, d ? d->publish_ms : 0,
         "%.2f");
    drow("  server CPU per change, incl. ACKs (ms)", s, d, s ? s->cpu_per_change_ms : 0,
         d ? d->cpu_per_change_ms : 0, "%.2f");
    snprintf(label, sizeof(label), "new Service (%d Clusters) -> last stream has them and their", o->ports);
    printf("%s\n  load assignments, over %d Services\n", label, o->new_services);
    drow("  p50 (ms)", s, d, new_lat(s, 0.5), new_lat(d, 0.5), "%.1f");
    drow("  max (ms)", s, d, new_lat(s, 1), new_lat(d, 1), "%.1f");
    drow("  Cluster message per stream, mean (B)", s, d, s ? s->new_msg[0] : 0, d ? d->new_msg[0] : 0,
         "%.0f");
    drow("  load-assignment message per stream, mean (B)", s, d, s ? s->new_msg[1] : 0, d ? d->new_msg[1] : 0,
         "%.0f");
    drow("  both, per stream, largest (B)", s, d, s ? s->new_msg_max[0] + s->new_msg_max[1] : 0,
         d ? d->new_msg_max[0] + d->new_msg_max[1] : 0, "%.0f");
    drow("  translate + snapshot, mean (ms)", s, d, s ? s->new_prep_ms : 0, d ? d->new_prep_ms : 0, "%.2f");
    drow("  server CPU per new Service, incl. ACKs (ms)", s, d, s ? s->new_cpu_ms : 0, d ? d->new_cpu_ms : 0,
         "%.1f");
    snprintf(label, sizeof(label), "reconnect: %d streams dropped at once", o->streams);
    printf("%s\n", label);
    drow("  -> every stream back (ms)", s, d, s ? s->resync_ms : 0, d ? d->resync_ms : 0, "%.1f");
    drow("  resources sent again, per stream (mean)", s, d, s ? s->resent_total / n : 0,
         d ? d->resent_total / n : 0, "%.1f");
    drow("  resources sent again, most to one stream", s, d, s ? s->resent_max : 0, d ? d->resent_max : 0,
         "%.0f");
    drow("  bytes received until back, per stream (mean)", s, d, s ? s->resync_bytes : 0,
         d ? d->resync_bytes : 0, "%.0f");
    drow("  server CPU, incl. ACKs (ms)", s, d, s ? s->resync_cpu_ms : 0, d ? d->resync_cpu_ms : 0, "%.1f");
    drow("  then one endpoint change -> last stream (ms)", s, d, s ? s->post_lat_ms : 0,
         d ? d->post_lat_ms : 0, "%.2f");
    drow("server RSS, no streams (MiB)", s, d, s ? s->rss0_kb / 1024 : 0, d ? d->rss0_kb / 1024 : 0, "%.1f");
    drow("server RSS, idle streams (MiB)", s, d, s ? s->rss1_kb / 1024 : 0, d ? d->rss1_kb / 1024 : 0,
         "%.1f");
    drow("heap in use per idle stream (KiB)", s, d, s ? (s->heap1_kb - s->heap0_kb) / n : 0,
         d ? (d->heap1_kb - d->heap0_kb) / n : 0, "%.1f");
    snprintf(label, sizeof(label), "server CPU idle over %.0f s (ms)", IDLE_WINDOW_MS / 1e3);
    drow(label, s, d, s ? s->idle_cpu_ms : 0, d ? d->idle_cpu_ms : 0, "%.1f");
    drow("stop with all streams open (ms)", s, d, s ? s->stop_ms : 0, d ? d->stop_ms : 0, "%.1f");
    drow("client CPU, whole round (s)", s, d, s ? s->client_cpu_ms / 1e3 : 0, d ? d->client_cpu_ms / 1e3 : 0,
         "%.1f");
    printf("(p99 of %d changes is nearest-rank: with fewer than 100 changes it is the maximum; message bytes "
           "are "
           "gRPC message lengths, without HTTP/2 framing)\n",
           o->changes);
    if (d) {
        double bytes = d->new_msg_max[0] + d->new_msg_max[1];
        bool ok_bytes = o->new_services == 0 || bytes <= 2048, ok_resent = d->resent_total == 0;
        printf("\ntargets (issue 12):\n");
        if (o->new_services)
            printf("  new Service: <= 2 KiB to each delta stream %s (%.0f B at most%s)\n",
                   ok_bytes ? "met" : "MISSED", bytes, s ? "; SotW in the table above" : "");
        if (s) {
            double r50 = sd.p50 / ss.p50, r99 = sd.p99 / ss.p99;
            bool ok_lat = r50 <= 1.5 && r99 <= 1.5;
            printf("  endpoint change: delta/SotW <= 1.5 %s (p50 %.2f, p99 %.2f)\n",
                   ok_lat ? "met" : "MISSED", r50, r99);
            ok_bytes = ok_bytes && ok_lat;
        }
        printf("  reconnect with initial_resource_versions: 0 resources resent %s (%.0f), every stream back "
               "after %.0f ms\n",
               ok_resent ? "met" : "MISSED", d->resent_total, d->resync_ms);
        if (rc == 0 && !(ok_bytes && ok_resent))
            rc = 3;
    }
    free(rs);
    free(rd);
    return rc;
}

int main(int argc, char **argv)
{
    ekg_mem_init(); /* as the daemon's main() does: cJSON allocates through ekglue/mem.h */
    if (argc > 1 && strcmp(argv[1], "--client") == 0)
        return client_main(argc, argv);
    if (argc > 1 && strcmp(argv[1], "--round") == 0)
        return round_main(argc, argv);

    round_opts_t o = {
        .streams = 1000, .services = 1000, .changes = 50, .threads = 2, .channels = 10, .ports = 1};
    const char *only = NULL;
    int pos = 0, new_services = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            o.threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--channels") == 0 && i + 1 < argc)
            o.channels = atoi(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--trim-ms") == 0 && i + 1 < argc)
            o.trim_ms = atoi(argv[++i]);
        else if (strcmp(argv[i], "--zones") == 0)
            o.zones = 1;
        else if (strcmp(argv[i], "--ports") == 0 && i + 1 < argc)
            o.ports = atoi(argv[++i]);
        else if (strcmp(argv[i], "--delta") == 0)
            o.delta = 1;
        else if (strcmp(argv[i], "--new-services") == 0 && i + 1 < argc)
            new_services = atoi(argv[++i]);
        else if (argv[i][0] != '-' && pos < 3)
            *(pos++ == 0 ? &o.streams : pos == 2 ? &o.services : &o.changes) = atoi(argv[i]);
        else {
            fprintf(stderr,
                    "usage: xds_bench [streams=1000] [services=1000] [changes=50] [--threads T=2] "
                    "[--channels K=10] [--only ekglue|baseline|plain|delta] [--trim-ms MS|-1] [--zones] "
                    "[--ports P=1] [--delta [--new-services M=3]]\n");
            return 2;
        }
    }
    o.new_services = new_services >= 0 ? new_services : o.delta ? 3 : 0;
    bool only_ok = !only ||
                   (!o.delta && (!strcmp(only, "ekglue") || !strcmp(only, "baseline") ||
                                 (o.zones && !strcmp(only, "plain")))) ||
                   (o.delta && (!strcmp(only, "ekglue") || !strcmp(only, "delta")));
    if (o.streams < 1 || o.services < 1 || o.changes < 1 || o.changes > MAX_CHANGES || o.threads < 1 ||
        o.channels < 1 || o.ports < 1 || o.ports > 16 || o.new_services > MAX_NEW ||
        (o.new_services && !o.delta) || (o.delta && o.zones) || !only_ok) {
        fprintf(
            stderr,
            "xds_bench: streams, services, threads, channels >= 1; changes 1..%d; ports 1..16; --only plain "
            "needs --zones, --only delta and --new-services (0..%d) need --delta, which does not go with "
            "--zones\n",
            MAX_CHANGES, MAX_NEW);
        return 2;
    }
    if (o.channels > o.streams)
        o.channels = o.streams;

    printf("xds_bench: %d ADS streams over %d connections, %d Services (%d port%s, %d endpoints each), %d "
           "changes, %d server threads, %d client threads, %ld CPUs\n",
           o.streams, o.channels, o.services, o.ports, o.ports > 1 ? "s" : "", ENDPOINTS, o.changes,
           o.threads, CLIENT_THREADS, sysconf(_SC_NPROCESSORS_ONLN));
    if (names_over_limits(&o))
        printf("%d names per stream: the server runs with --xds-max-names-per-request, "
               "--xds-max-names-per-stream, --xds-send-timeout-ms and --xds-memory-limit-bytes off, 64 MiB "
               "requests\n",
               o.ports * (o.services + o.new_services));
    if (o.delta)
        return delta_main(&o, only);
    if (o.zones)
        printf("--zones: every Service trafficDistribution: PreferClose, endpoints on %d Nodes in zones a, "
               "b, c of "
               "%s; streams in zone a/b/c, every tenth without a locality. Rounds: ekglue (zone priorities), "
               "baseline (each stream its group's bytes), plain (ekglue, zone_priorities: never)\n",
               ZONE_NODES, REGION);
    result_t *e = NULL, *b = NULL, *pl = NULL;
    result_t *re = ekg_xcalloc(1, sizeof(*re)), *rb = ekg_xcalloc(1, sizeof(*rb));
    result_t *rp = ekg_xcalloc(1, sizeof(*rp));
    int rc = 0;
    if (!only || strcmp(only, "ekglue") == 0) {
        if (run_round("ekglue", &o, re))
            rc = 1;
        else
            e = re;
    }
    if (!only || strcmp(only, "baseline") == 0) {
        if (run_round("baseline", &o, rb))
            rc = 1;
        else
            b = rb;
    }
    if (o.zones && (!only || strcmp(only, "plain") == 0)) {
        if (run_round("plain", &o, rp))
            rc = 1;
        else
            pl = rp;
    }
    if (b)
        printf("payload per stream: CDS %.1f KB, EDS %.1f KB at start; one update %.0f B%s\n",
               b->cds_bytes / 1e3, b->eds_bytes / 1e3, b->update_bytes,
               o.zones ? " (zone a's; every group's below)" : "");
    if (o.zones) {
        printf("\nresource bytes per stream (encoded load assignments), initial EDS / change 0's update:\n");
        printf("%-10s %20s %20s %20s %20s\n", "", "zone a", "zone b", "zone c", "no locality");
        group_bytes("ekglue", e);
        group_bytes("baseline", b);
        group_bytes("plain", pl);
    }
    stats_t se = e ? latency_stats(e) : (stats_t){0}, sb = b ? latency_stats(b) : (stats_t){0};
    stats_t sp = pl ? latency_stats(pl) : (stats_t){0};
    double n = o.streams;
    if (e || b)
        header("ekglue", "baseline");
    row("initial sync, all streams (ms)", e, b, e ? e->sync_ms : 0, b ? b->sync_ms : 0, "%.1f");
    row("change -> last stream p50 (ms)", e, b, se.p50, sb.p50, "%.2f");
    row("change -> last stream p90 (ms)", e, b, se.p90, sb.p90, "%.2f");
    row("change -> last stream p99 (ms)", e, b, se.p99, sb.p99, "%.2f");
    row("change -> last stream max (ms)", e, b, se.max, sb.max, "%.2f");
    row("  of which translate + snapshot, mean (ms)", e, NULL, e ? e->prep_ms : 0, 0, "%.3f");
    row("  publish/push call returns after, mean (ms)", e, b, e ? e->publish_ms : 0, b ? b->publish_ms : 0,
        "%.2f");
    row("  publishing thread's CPU in that call (ms)", e, b, e ? e->publish_cpu_ms : 0,
        b ? b->publish_cpu_ms : 0, "%.2f");
    row("server CPU per change, incl. ACKs (ms)", e, b, e ? e->cpu_per_change_ms : 0,
        b ? b->cpu_per_change_ms : 0, "%.2f");
    row("server RSS, no streams (MiB)", e, b, e ? e->rss0_kb / 1024 : 0, b ? b->rss0_kb / 1024 : 0, "%.1f");
    row("server RSS, idle streams (MiB)", e, b, e ? e->rss1_kb / 1024 : 0, b ? b->rss1_kb / 1024 : 0, "%.1f");
    row("server RSS after the changes (MiB)", e, b, e ? e->rss2_kb / 1024 : 0, b ? b->rss2_kb / 1024 : 0,
        "%.1f");
    double pe = e ? (e->rss1_kb - e->rss0_kb) / n : 0, pb = b ? (b->rss1_kb - b->rss0_kb) / n : 0;
    row("RSS per idle stream (KiB)", e, b, pe, pb, "%.1f");
    row("heap in use per idle stream (KiB)", e, b, e ? (e->heap1_kb - e->heap0_kb) / n : 0,
        b ? (b->heap1_kb - b->heap0_kb) / n : 0, "%.1f");
    char label[64];
    snprintf(label, sizeof(label), "server CPU idle over %.0f s (ms)", IDLE_WINDOW_MS / 1e3);
    row(label, e, b, e ? e->idle_cpu_ms : 0, b ? b->idle_cpu_ms : 0, "%.1f");
    row("stop with all streams open (ms)", e, b, e ? e->stop_ms : 0, b ? b->stop_ms : 0, "%.1f");
    row("  streams ended UNAVAILABLE", e, b, e ? e->stop_unavailable : 0, b ? b->stop_unavailable : 0,
        "%.0f");
    row("client CPU, whole round (s)", e, b, e ? e->client_cpu_ms / 1e3 : 0, b ? b->client_cpu_ms / 1e3 : 0,
        "%.1f");
    if (o.zones) {
        /* The same ekglue with and without zone priorities: what the per-zone sets cost. */
        header("ekglue", "plain");
        row("initial sync, all streams (ms)", e, pl, e ? e->sync_ms : 0, pl ? pl->sync_ms : 0, "%.1f");
        row("change -> last stream p50 (ms)", e, pl, se.p50, sp.p50, "%.2f");
        row("change -> last stream p90 (ms)", e, pl, se.p90, sp.p90, "%.2f");
        row("change -> last stream p99 (ms)", e, pl, se.p99, sp.p99, "%.2f");
        row("change -> last stream max (ms)", e, pl, se.max, sp.max, "%.2f");
        row("  of which translate + snapshot, mean (ms)", e, pl, e ? e->prep_ms : 0, pl ? pl->prep_ms : 0,
            "%.3f");
        row("  publish call returns after, mean (ms)", e, pl, e ? e->publish_ms : 0, pl ? pl->publish_ms : 0,
            "%.2f");
        row("  publishing thread's CPU in that call (ms)", e, pl, e ? e->publish_cpu_ms : 0,
            pl ? pl->publish_cpu_ms : 0, "%.2f");
        row("server CPU per change, incl. ACKs (ms)", e, pl, e ? e->cpu_per_change_ms : 0,
            pl ? pl->cpu_per_change_ms : 0, "%.2f");
        row("server RSS, no streams (MiB)", e, pl, e ? e->rss0_kb / 1024 : 0, pl ? pl->rss0_kb / 1024 : 0,
            "%.1f");
        row("server RSS, idle streams (MiB)", e, pl, e ? e->rss1_kb / 1024 : 0, pl ? pl->rss1_kb / 1024 : 0,
            "%.1f");
        row("heap in use per idle stream (KiB)", e, pl, e ? (e->heap1_kb - e->heap0_kb) / n : 0,
            pl ? (pl->heap1_kb - pl->heap0_kb) / n : 0, "%.1f");
    }
    printf("(p99 of %d changes is nearest-rank: with fewer than 100 changes it is the maximum)\n", o.changes);
    if (e && b) {
        double r50 = se.p50 / sb.p50, r99 = se.p99 / sb.p99;
        double idle = e->idle_cpu_ms / (IDLE_WINDOW_MS / 1e3); /* ms of CPU per s */
        bool ok_ratio = r50 <= 1.5 && r99 <= 1.5, ok_mem = pe <= 64, ok_idle = idle < 5;
        printf("\nratio (ekglue/baseline%s) p50 %.2f p99 %.2f\n", o.zones ? ", the same per-group bytes" : "",
               r50, r99);
        printf("targets: latency ratio <= 1.5 %s; <= 64 KiB per idle stream %s (%.1f); no CPU while idle %s "
               "(%.1f ms/s)\n",
               ok_ratio ? "met" : "MISSED", ok_mem ? "met" : "MISSED", pe, ok_idle ? "met" : "MISSED", idle);
        if (rc == 0 && !(ok_ratio && ok_mem && ok_idle))
            rc = 3;
    }
    if (e && pl) {
        double r50 = se.p50 / sp.p50, r99 = se.p99 / sp.p99;
        bool ok = r50 <= 1.5 && r99 <= 1.5;
        printf("ratio (ekglue with zone priorities/plain) p50 %.2f p99 %.2f: <= 1.5 %s\n", r50, r99,
               ok ? "met" : "MISSED");
        if (rc == 0 && !ok)
            rc = 3;
    }
    free(re);
    free(rb);
    free(rp);
    return rc;
}
