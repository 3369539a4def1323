/*
 * src/xds/server.c: the xDS gRPC server (include/ekglue/xds.h) on grpc's C core API.
 *
 * Threads. N completion queues (opts->threads, default 2), each drained by its own thread blocking in
 * grpc_completion_queue_next() with an infinite deadline: an idle server uses no CPU. Every call is bound to
 * the queue its request arrived on, so all completions of one call run on one thread. The cache's publisher
 * thread (ekg_cache_publish -> on_snapshot) and the thread calling ekg_xds_server_set_serving() start sends
 * themselves: grpc allows batches from any thread as long as each call's batches are serialized, which the
 * stream's lock does. There is no queue between the publisher and the gRPC threads and nothing polls. One
 * more thread, the send watchdog, drops clients that stop reading (below); it sleeps without a deadline while
 * no message is in flight.
 *
 * Calls. Each queue keeps one grpc_server_request_registered_call() outstanding per method, plus one generic
 * grpc_server_request_call(): grpc core parks calls to unregistered methods until someone requests them
 * (server.cc, RealRequestMatcher::MatchOrQueue), so they are requested and answered UNIMPLEMENTED here.
 *
 * A stream (stream_t) is reference-counted: one reference per batch in flight and one while it is on the
 * server's list of live streams; the last reference frees the session and unrefs the grpc_call. An idle xDS
 * stream has exactly two operations pending in grpc: one RECV_MESSAGE and one RECV_CLOSE_ON_SERVER (which
 * notices cancellation). Debian's libgrpc keeps its debug checks, which scan a queue's pending operations on
 * every event: keeping this number minimal and spreading streams over queues keeps that cost down.
 *
 * Sends. At most one SEND_MESSAGE is in flight per call. When it completes (or when a request or a snapshot
 * arrives and nothing is in flight) the session is asked for the next response, so a slow client gets the
 * latest state next rather than a backlog, and nobody ever waits for a send: a stuck client cannot block the
 * publisher. Responses are sent without copying: every piece the session hands out becomes a grpc_slice whose
 * destroy callback is the piece's release.
 *
 * Operators' views (ekg_xds_server_clients for the debug port, and CSDS: StreamClientStatus answers each
 * request, FetchClientStatus once) are built from copies of the sessions, each taken under its stream's lock
 * (ekg_xds_session_copy: references and small strings), then encoded with no lock held (src/xds/csds.c). A
 * CSDS call is answered on its CQ thread without its own lock held, and reads its next request only once the
 * answer is sent.
 *
 * Limits (ekg_xds_limits_t; docs/internals/server.md, "Limits"): gRPC enforces the receive limit, the streams
 * per connection and, through a resource quota, a bound on its own memory; the session the names per request
 * and per stream; this file the streams in total, the request rate per stream, the bounds of the operators'
 * views and the send timeout (the watchdog). Past one the stream ends with RESOURCE_EXHAUSTED and a message
 * naming the flag. An xDS stream whose client ends its requests is answered INVALID_ARGUMENT: grpc 1.51 drops
 * a request cut short by the end of the stream silently, so a clean half-close looks the same.
 *
 * TLS (src/xds/tls.c): grpc's certificate-config fetcher re-reads rotated files before new handshakes.
 *
 * Memory: allocation fails by aborting (include/ekglue/mem.h; grpc's and upb's own allocations too), so no
 * path here deals with it: a stream never ends for lack of memory (RESOURCE_EXHAUSTED means a limit), and a
 * publish always reaches every stream from a list of references taken under the server's lock and worked
 * through without it.
 *
 * Lock order: server->lock before stream->lock, never the other way round (CQ threads release a stream's lock
 * before taking the server's); wd_lock is a leaf, taken under a stream's lock and taking none. grpc_call_
 * start_batch() and grpc_call_cancel_with_status() do not block, so they are called under these locks. No
 * code holds two streams' locks at once.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "ekglue/clock.h"
#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/metrics.h"
#include "ekglue/xds.h"

#include "xds/csds.h"
#include "xds/health.h"
#include "xds/session.h"
#include "xds/tls.h"

#define DEFAULT_LISTEN      "0.0.0.0:18000"
#define DEFAULT_THREADS     2
#define MAX_THREADS         64
#define DEFAULT_SHUTDOWN_MS 5000
/* After grpc_server_cancel_all_calls() gave up on the graceful path, how long to wait for grpc to finish. */
#define FORCED_SHUTDOWN_MS 2000
/* CSDS calls served at once: each answer may take limits.max_client_status_bytes to build and to send. */
#define MAX_CSDS_CALLS 16

/* grpc.health.v1.HealthCheckResponse.ServingStatus */
enum { HEALTH_UNKNOWN = 0, HEALTH_SERVING = 1, HEALTH_NOT_SERVING = 2, HEALTH_SERVICE_UNKNOWN = 3 };

typedef enum {
    M_ADS = 0,
    M_CDS,
    M_EDS,
    M_LDS,
    M_RDS,
    M_DELTA_ADS, /* the incremental forms of the five above, in the same order */
    M_DELTA_CDS,
    M_DELTA_EDS,
    M_DELTA_LDS,
    M_DELTA_RDS,
    M_HEALTH_CHECK,
    M_HEALTH_WATCH,
    M_CSDS_STREAM,
    M_CSDS_FETCH,
    M__COUNT
} method_t;
#define M_GENERIC M__COUNT /* the request slot for everything unregistered */

static const char *const method_paths[M__COUNT] = {
    [M_ADS] = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources",
    [M_CDS] = "/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters",
    [M_EDS] = "/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints",
    [M_LDS] = "/envoy.service.listener.v3.ListenerDiscoveryService/StreamListeners",
    [M_RDS] = "/envoy.service.route.v3.RouteDiscoveryService/StreamRoutes",
    [M_DELTA_ADS] = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources",
    [M_DELTA_CDS] = "/envoy.service.cluster.v3.ClusterDiscoveryService/DeltaClusters",
    [M_DELTA_EDS] = "/envoy.service.endpoint.v3.EndpointDiscoveryService/DeltaEndpoints",
    [M_DELTA_LDS] = "/envoy.service.listener.v3.ListenerDiscoveryService/DeltaListeners",
    [M_DELTA_RDS] = "/envoy.service.route.v3.RouteDiscoveryService/DeltaRoutes",
    [M_HEALTH_CHECK] = "/grpc.health.v1.Health/Check",
    [M_HEALTH_WATCH] = "/grpc.health.v1.Health/Watch",
    [M_CSDS_STREAM] = "/envoy.service.status.v3.ClientStatusDiscoveryService/StreamClientStatus",
    [M_CSDS_FETCH] = "/envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus",
};

/* Service names grpc.health.v1 answers for (besides "", the whole server). */
static const char *const health_services[] = {
    "envoy.service.discovery.v3.AggregatedDiscoveryService",
    "envoy.service.cluster.v3.ClusterDiscoveryService",
    "envoy.service.endpoint.v3.EndpointDiscoveryService",
    "envoy.service.listener.v3.ListenerDiscoveryService",
    "envoy.service.route.v3.RouteDiscoveryService",
    "envoy.service.status.v3.ClientStatusDiscoveryService",
};

/* What a completion-queue tag stands for. Tags are embedded in the objects they belong to. */
typedef enum { EV_REQUEST, EV_RECV, EV_SEND, EV_CLOSE, EV_STATUS, EV_SHUTDOWN } event_t;
typedef struct tag {
    event_t event;
    void *owner; /* request_slot_t for EV_REQUEST, stream_t for the call events, the server for EV_SHUTDOWN */
} tag_t;

typedef enum {
    STREAM_XDS,
    STREAM_HEALTH_CHECK,
    STREAM_HEALTH_WATCH,
    STREAM_CSDS_STREAM, /* StreamClientStatus: one answer per request */
    STREAM_CSDS_FETCH,  /* FetchClientStatus (unary) */
    STREAM_UNIMPLEMENTED,
    STREAM_REFUSED, /* past max_streams or MAX_CSDS_CALLS: ended with RESOURCE_EXHAUSTED at once */
    STREAM_ANY      /* not a kind: list_grab's "every stream" */
} stream_kind_t;

typedef struct worker worker_t;

typedef struct stream {
    /* Set at creation, then read-only. */
    stream_kind_t kind;
    method_t method;
    ekg_xds_server_t *server;
    grpc_call *call; /* owned: unref'd with the last reference */
    atomic_int refs; /* one per batch in flight, one while listed, one for whoever is working on it */

    /* Under server->lock. */
    struct stream *prev, *next;
    bool listed;

    pthread_mutex_t lock;            /* guards everything below and serializes batches on call */
    ekg_xds_session_t *session;      /* STREAM_XDS: owned */
    unsigned long long snap_serial;  /* serial of the newest snapshot handed to the session */
    double published;                /* monotonic time of the publish whose responses are being started; 0 */
    bool receiving, sending, closed; /* a RECV_MESSAGE / SEND_MESSAGE in flight; RECV_CLOSE_ON_SERVER done */
    bool metadata_started;           /* SEND_INITIAL_METADATA started */
    bool status_started;             /* SEND_STATUS_FROM_SERVER started (or due once the send completes) */
    bool status_pending;             /* ... due once the send in flight completes */
    grpc_status_code status;
    grpc_slice status_details;  /* owned; must outlive the status batch */
    int cancelled;              /* written by RECV_CLOSE_ON_SERVER */
    grpc_byte_buffer *recv_buf; /* written by RECV_MESSAGE; owned once received */
    grpc_byte_buffer *send_buf; /* owned while its SEND_MESSAGE is in flight */
    int health_sent;            /* STREAM_HEALTH_WATCH: last status sent, -1 before the first */
    bool health_requested;      /* ... the request arrived */
    bool health_known;          /* ... and named a service we answer for */
    bool dropped;               /* cancelled by the send watchdog */
    grpc_metadata trailers[2];  /* STREAM_CSDS_FETCH: sent with the status; slices owned */
    size_t ntrailers;
    long long send_started_ms; /* monotonic ms the message in flight (send_buf) was handed to grpc */
    double tokens, tokens_at;  /* request rate (rate_allows): tokens left, monotonic seconds of the count */
    tag_t recv_tag, send_tag, close_tag, status_tag;
} stream_t;

/* One outstanding request for new calls of one method on one queue. */
typedef struct request_slot {
    tag_t tag;
    worker_t *worker;
    int method; /* method_t, or M_GENERIC */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array metadata;
    grpc_call_details details; /* M_GENERIC only */
} request_slot_t;

struct worker {
    ekg_xds_server_t *server;
    grpc_completion_queue *cq; /* owned */
    pthread_t thread;
    bool thread_started;
    request_slot_t slots[M__COUNT + 1];
    bool trim_armed; /* this thread's own: it completed sends since it last looked (see worker_main) */
};

struct ekg_xds_server {
    ekg_cache_t *cache; /* borrowed */
    grpc_server *server;
    void *registered[M__COUNT]; /* grpc's handles for the registered methods */
    worker_t *workers;
    int nworkers;
    int port;
    int shutdown_ms;
    atomic_bool serving;
    tag_t shutdown_tag;
    int trim_quiet_ms;               /* see maybe_trim; -1 = never */
    ekg_xds_limits_t limits;         /* defaults applied (resolve_limits); -1 = none where allowed */
    atomic_int csds_calls;           /* CSDS calls open (at most MAX_CSDS_CALLS) */
    atomic_llong last_send_ms;       /* monotonic ms of the latest completed send, any thread */
    atomic_bool trim_due;            /* sends completed since the last trim */
    atomic_llong trim_not_before_ms; /* monotonic ms: the last trim's cost times TRIM_COST_FACTOR after it */
    atomic_size_t
        live; /* stream_t objects not yet freed, listed or not: what ekg_xds_server_stop waits for */

    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t cond;  /* signalled when shutdown_done is set or the list empties */
    bool stopping;        /* no new requests for calls; new streams are cancelled at once */
    bool shutdown_done;   /* grpc_server_shutdown_and_notify's tag arrived */
    stream_t *streams;    /* live xDS and health-watch streams (each holds a reference) */
    size_t nstreams;

    /* Counters (for logs now, the debug port later). */
    atomic_ullong streams_total, responses_sent, bytes_sent, requests_received;

    ekg_xds_tls_t *tls; /* the certificate fetcher's state with TLS, else NULL; freed after grpc is */

    /* The send watchdog (watchdog_main): ends streams whose response the client does not take. */
    pthread_t watchdog;
    bool watchdog_started;
    pthread_mutex_t
        wd_lock; /* a leaf lock (taken under stream locks, takes none); guards wd_due_ms, wd_stop */
    pthread_cond_t wd_cond; /* CLOCK_MONOTONIC */
    long long wd_due_ms;    /* when the watchdog looks at the sends next; -1: no send to look at */
    bool wd_stop;
    atomic_bool wd_idle; /* wd_due_ms is -1: a send that starts wakes the watchdog */
};

static bool grpc_ready; /* grpc_init() called by this module; guarded by init_lock */
static int grpc_users;
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

static void library_ref(void)
{
    pthread_mutex_lock(&init_lock);
    if (grpc_users++ == 0) {
        grpc_init();
        grpc_ready = true;
    }
    pthread_mutex_unlock(&init_lock);
}

static void library_unref(void)
{
    pthread_mutex_lock(&init_lock);
    if (--grpc_users == 0 && grpc_ready) {
        grpc_ready = false;
        grpc_shutdown_blocking();
    }
    pthread_mutex_unlock(&init_lock);
}

/* --- streams -------------------------------------------------------------------------------------------- */

static stream_t *stream_new(ekg_xds_server_t *s, stream_kind_t kind, method_t method, grpc_call *call)
{
    stream_t *st = ekg_xcalloc(1, sizeof(*st));
    st->kind = kind;
    st->method = method;
    st->server = s;
    st->call = call;
    atomic_init(&st->refs, 1);
    atomic_fetch_add(&s->live, 1);
    pthread_mutex_init(&st->lock, NULL);
    st->status_details = grpc_empty_slice();
    st->health_sent = -1;
    st->recv_tag = (tag_t){EV_RECV, st};
    st->send_tag = (tag_t){EV_SEND, st};
    st->close_tag = (tag_t){EV_CLOSE, st};
    st->status_tag = (tag_t){EV_STATUS, st};
    return st;
}

static stream_t *stream_ref(stream_t *st)
{
    atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
    return st;
}

/* Drops a reference; the last one frees the stream (any thread: grpc_call_unref may be called from any). */
static void stream_unref(stream_t *st)
{
    if (atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (st->session) {
        ekg_metrics_xds_streams(ekg_xds_session_is_delta(st->session), ekg_xds_session_api(st->session), -1);
        ekg_xds_session_free(st->session);
    }
    if (st->kind == STREAM_CSDS_STREAM || st->kind == STREAM_CSDS_FETCH)
        atomic_fetch_sub(&st->server->csds_calls, 1);
    if (st->recv_buf)
        grpc_byte_buffer_destroy(st->recv_buf);
    if (st->send_buf)
        grpc_byte_buffer_destroy(st->send_buf);
    grpc_slice_unref(st->status_details);
    for (size_t i = 0; i < st->ntrailers; i++) {
        grpc_slice_unref(st->trailers[i].key);
        grpc_slice_unref(st->trailers[i].value);
    }
    grpc_call_unref(st->call);
    pthread_mutex_destroy(&st->lock);
    ekg_xds_server_t *s = st->server;
    free(st);
    if (atomic_fetch_sub(&s->live, 1) == 1) { /* never called with s->lock held */
        pthread_mutex_lock(&s->lock);
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
    }
}

/* Starts a batch holding a reference for it. Caller holds st->lock (or owns st exclusively) and a reference.
 */
static bool start_batch(stream_t *st, const grpc_op *ops, size_t n, tag_t *tag)
{
    stream_ref(st);
    grpc_call_error e = grpc_call_start_batch(st->call, ops, n, tag, NULL);
    if (e != GRPC_CALL_OK) {
        ekg_warn("xDS server: grpc_call_start_batch failed error=%d method=%s", (int)e,
                 method_paths[st->method]);
        atomic_fetch_sub_explicit(&st->refs, 1, memory_order_relaxed); /* the caller's reference remains */
        return false;
    }
    return true;
}

static void start_recv(stream_t *st, bool with_initial_metadata)
{
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (with_initial_metadata) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        st->metadata_started = true;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &st->recv_buf;
    st->receiving = start_batch(st, ops, n, &st->recv_tag);
}

static void start_close_watch(stream_t *st)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &st->cancelled;
    if (!start_batch(st, &op, 1, &st->close_tag))
        st->closed = true;
}

/* A message is handed to grpc: the watchdog must look at it once the send timeout has passed (see
 * watchdog_main). Every send starts at "now", so a watchdog that already has a time to look keeps it: this
 * send's deadline is later. Caller holds st->lock (wd_lock is a leaf). */
static void watch_send(stream_t *st)
{
    ekg_xds_server_t *s = st->server;
    st->send_started_ms = ekg_clock_ms();
    if (s->limits.send_timeout_ms < 0 || !atomic_load(&s->wd_idle))
        return;
    pthread_mutex_lock(&s->wd_lock);
    if (s->wd_due_ms < 0) {
        s->wd_due_ms = st->send_started_ms + s->limits.send_timeout_ms;
        atomic_store(&s->wd_idle, false);
        pthread_cond_signal(&s->wd_cond);
    }
    pthread_mutex_unlock(&s->wd_lock);
}

/* Starts SEND_STATUS_FROM_SERVER, with message (owned by the batch) when not NULL. Caller holds st->lock. */
static void start_status(stream_t *st, grpc_byte_buffer *message)
{
    grpc_op ops[3];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (!st->metadata_started) { /* chttp2 writes trailers only after initial metadata (writing.cc) */
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        st->metadata_started = true;
    }
    if (message) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = message;
        st->send_buf = message;
        watch_send(st);
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.trailing_metadata_count = st->ntrailers;
    ops[n].data.send_status_from_server.trailing_metadata = st->ntrailers ? st->trailers : NULL;
    ops[n].data.send_status_from_server.status = st->status;
    ops[n++].data.send_status_from_server.status_details =
        GRPC_SLICE_LENGTH(st->status_details) ? &st->status_details : NULL;
    st->status_started = true;
    st->status_pending = false;
    if (!start_batch(st, ops, n, &st->status_tag) && message) {
        grpc_byte_buffer_destroy(message);
        st->send_buf = NULL;
    }
}

/* Ends the call with a status: now, or when the send in flight completes. Caller holds st->lock. */
static void finish(stream_t *st, grpc_status_code code, const char *details)
{
    if (st->status_started || st->status_pending)
        return;
    st->status = code;
    grpc_slice_unref(st->status_details);
    st->status_details = details ? grpc_slice_from_copied_string(details) : grpc_empty_slice();
    if (st->sending)
        st->status_pending = true;
    else
        start_status(st, NULL);
}

static bool can_send(const stream_t *st)
{
    return !st->sending && !st->closed && !st->status_started && !st->status_pending;
}

/* Turns a response into a byte buffer made of the pieces' own bytes; the pieces' references move into the
 * slices (released by grpc when it is done with them). r is released. */
static grpc_byte_buffer *response_buffer(ekg_xds_response_t *r)
{
    grpc_slice local[16];
    grpc_slice *slices = r->npieces <= 16 ? local : ekg_xmalloc(r->npieces * sizeof(*slices));
    size_t n = 0;
    for (size_t i = 0; i < r->npieces; i++) {
        ekg_xds_piece_t *p = &r->pieces[i];
        if (p->len == 0)
            continue;
        if (p->release) {
            slices[n++] = grpc_slice_new_with_user_data((void *)p->data, p->len, p->release, p->owner);
            p->release = NULL; /* the slice owns the reference now */
        } else {
            slices[n++] = grpc_slice_from_copied_buffer(p->data, p->len); /* lives only as long as r */
        }
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, n);
    for (size_t i = 0; i < n; i++)
        grpc_slice_unref(slices[i]);
    if (slices != local)
        free(slices);
    ekg_xds_response_release(r);
    return bb;
}

static void start_send(stream_t *st, grpc_byte_buffer *bb)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = bb;
    st->send_buf = bb;
    watch_send(st);
    st->sending = start_batch(st, &op, 1, &st->send_tag);
    if (!st->sending) {
        grpc_byte_buffer_destroy(bb);
        st->send_buf = NULL;
    }
}

/* Sends the session's next response if nothing is in flight and one is due. Caller holds st->lock. */
static void xds_maybe_send(stream_t *st)
{
    if (!can_send(st))
        return;
    if (!ekg_xds_session_has_work(st->session)) {
        st->published = 0; /* what the last publish made due is out (or nothing was) */
        return;
    }
    ekg_xds_response_t r;
    if (!ekg_xds_session_next(st->session, &r)) {
        st->published = 0;
        return;
    }
    size_t len = r.total_len;
    start_send(st, response_buffer(&r));
    if (st->sending) {
        atomic_fetch_add_explicit(&st->server->responses_sent, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&st->server->bytes_sent, len, memory_order_relaxed);
        /* Every response a publish makes due counts, the later ones of an ADS sequence included. */
        if (st->published > 0)
            ekg_metrics_push_latency(ekg_clock_s() - st->published);
    }
}

/* Hands snap to the session unless it already has that one or a newer one. published: the monotonic time
 * of its publish (for ekglue_push_latency_seconds), 0 for the snapshot a stream starts with. Caller holds
 * st->lock. */
static void xds_feed(stream_t *st, ekg_snapshot_t *snap, double published)
{
    unsigned long long serial = ekg_snapshot_serial(snap);
    if (serial <= st->snap_serial || st->closed)
        return;
    st->snap_serial = serial;
    ekg_xds_session_on_snapshot(st->session, snap);
    if (published > 0 && st->published == 0)
        st->published = published; /* a publish while one is still going out: measured from the older */
}

/* --- grpc.health.v1 ------------------------------------------------------------------------------------- */

static bool health_service_known(const char *name, size_t len)
{
    if (len == 0)
        return true;
    for (size_t i = 0; i < sizeof(health_services) / sizeof(health_services[0]); i++)
        if (strlen(health_services[i]) == len && memcmp(health_services[i], name, len) == 0)
            return true;
    return false;
}

/* HealthCheckResponse {ServingStatus status = 1} (never UNKNOWN, so the field is always present). */
static grpc_byte_buffer *health_response(int status)
{
    uint8_t bytes[2] = {0x08, (uint8_t)status};
    grpc_slice slice = grpc_slice_from_copied_buffer((const char *)bytes, sizeof(bytes));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

static int health_status(const ekg_xds_server_t *s)
{
    return atomic_load(&s->serving) ? HEALTH_SERVING : HEALTH_NOT_SERVING;
}

/* Watch: sends the current status if it differs from the last one sent. Caller holds st->lock. */
static void health_maybe_send(stream_t *st)
{
    if (!st->health_requested || !can_send(st))
        return;
    int want = st->health_known ? health_status(st->server) : HEALTH_SERVICE_UNKNOWN;
    if (want == st->health_sent)
        return;
    grpc_byte_buffer *bb = health_response(want);
    start_send(st, bb);
    if (st->sending)
        st->health_sent = want;
}

/* --- the server's list of live streams ------------------------------------------------------------------ */

static void end_for_shutdown(stream_t *st);

/* Adds st (taking a reference) to the list; ends it at once when the server is stopping. */
static void list_add(ekg_xds_server_t *s, stream_t *st)
{
    pthread_mutex_lock(&s->lock);
    st->listed = true;
    st->prev = NULL;
    st->next = s->streams;
    if (s->streams)
        s->streams->prev = st;
    s->streams = stream_ref(st);
    s->nstreams++;
    if (s->stopping)
        end_for_shutdown(st); /* lock order: server, then stream */
    pthread_mutex_unlock(&s->lock);
}

/*
 * Ends a stream because the server stops: an UNAVAILABLE status ("server shutting down": clients move to
 * another replica) sent as a real SEND_STATUS_FROM_SERVER batch, now or when the send in flight completes.
 * Not grpc_call_cancel_with_status: that closes the call at once, before its trailers reach the socket, so
 * a server that then exits leaves its clients with "Socket closed" instead. Takes st->lock.
 */
static void end_for_shutdown(stream_t *st)
{
    pthread_mutex_lock(&st->lock);
    if (!st->closed)
        finish(st, GRPC_STATUS_UNAVAILABLE, "server shutting down");
    pthread_mutex_unlock(&st->lock);
}

static void list_remove(ekg_xds_server_t *s, stream_t *st)
{
    pthread_mutex_lock(&s->lock);
    bool was_listed = st->listed;
    if (was_listed) {
        if (st->prev)
            st->prev->next = st->next;
        else
            s->streams = st->next;
        if (st->next)
            st->next->prev = st->prev;
        st->listed = false;
        if (--s->nstreams == 0)
            pthread_cond_broadcast(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
    if (was_listed)
        stream_unref(st);
}

/* New references to the listed streams of one kind (STREAM_ANY: all), so that work on them runs without the
 * server lock. Oldest first. Returns NULL with *n = 0 when there are none. */
static stream_t **list_grab(ekg_xds_server_t *s, stream_kind_t kind, size_t *n)
{
    stream_t **v = NULL;
    *n = 0;
    pthread_mutex_lock(&s->lock);
    if (s->nstreams)
        v = ekg_xmalloc(s->nstreams * sizeof(*v));
    for (stream_t *st = s->streams; v && st; st = st->next)
        if (kind == STREAM_ANY || st->kind == kind)
            v[(*n)++] = stream_ref(st);
    for (size_t i = 0; i < *n / 2; i++) { /* the list is newest first */
        stream_t *t = v[i];
        v[i] = v[*n - 1 - i];
        v[*n - 1 - i] = t;
    }
    pthread_mutex_unlock(&s->lock);
    return v;
}

/* The cache's watcher, on the publishing thread. */
static void on_snapshot(void *ctx, ekg_snapshot_t *snap)
{
    ekg_xds_server_t *s = ctx;
    double published = ekg_clock_s();
    size_t n;
    stream_t **v = list_grab(s, STREAM_XDS, &n);
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&v[i]->lock);
        xds_feed(v[i], snap, published);
        xds_maybe_send(v[i]);
        pthread_mutex_unlock(&v[i]->lock);
        stream_unref(v[i]);
    }
    free(v);
    ekg_debug("xDS server: snapshot handed to streams serial=%llu streams=%zu", ekg_snapshot_serial(snap), n);
}

void ekg_xds_server_set_serving(ekg_xds_server_t *s, bool serving)
{
    if (atomic_exchange(&s->serving, serving) == serving)
        return;
    ekg_info("xDS server health status=%s", serving ? "SERVING" : "NOT_SERVING");
    size_t n;
    stream_t **v = list_grab(s, STREAM_HEALTH_WATCH, &n);
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&v[i]->lock);
        health_maybe_send(v[i]);
        pthread_mutex_unlock(&v[i]->lock);
        stream_unref(v[i]);
    }
    free(v);
}

/* --- limits: stuck clients, request rates, refusals ----------------------------------------------------- */

/* ms from now on CLOCK_MONOTONIC (s->cond's and s->wd_cond's clock), as pthread_cond_timedwait wants it. */
static struct timespec monotonic_at(long long at)
{
    return (struct timespec){.tv_sec = (time_t)(at / 1000), .tv_nsec = (long)(at % 1000) * 1000000L};
}

/* Logs why a stream ends past a limit: each at warn, but at most one line a second for the whole server
 * (a client opening streams in a loop must not flood the log); the next line says how many were not logged.
 */
static void log_limit(const char *what, const char *node, const char *peer)
{
    static atomic_llong last_ms;
    static atomic_ullong unlogged;
    long long now = ekg_clock_ms(), last = atomic_load(&last_ms);
    if (now - last < 1000 || !atomic_compare_exchange_strong(&last_ms, &last, now)) {
        atomic_fetch_add(&unlogged, 1);
        return;
    }
    ekg_warn("xDS server: a limit ends a stream with RESOURCE_EXHAUSTED: %s node=%s peer=%s "
             "(more in the last second, not logged: %llu)",
             what, node, peer, (unsigned long long)atomic_exchange(&unlogged, 0));
}

/* Ends st past a limit: RESOURCE_EXHAUSTED with msg (copied). Caller holds st->lock. */
static void end_past_limit(stream_t *st, const char *msg)
{
    char *peer = grpc_call_get_peer(st->call);
    log_limit(msg, st->session ? ekg_xds_session_node_id(st->session) : "", peer ? peer : "");
    gpr_free(peer);
    finish(st, GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
}

/* Request rate, per stream: a token bucket refilled at limits.max_requests_per_second and holding
 * RATE_WINDOW_S seconds' worth, full when the stream starts; so bursts are fine and the average over any
 * RATE_WINDOW_S seconds is bounded. Caller holds st->lock. */
#define RATE_WINDOW_S 10
static bool rate_allows(stream_t *st)
{
    int rate = st->server->limits.max_requests_per_second;
    if (rate < 0)
        return true;
    double now = ekg_clock_s(), cap = (double)rate * RATE_WINDOW_S;
    st->tokens = st->tokens_at == 0 ? cap : st->tokens + (now - st->tokens_at) * rate;
    if (st->tokens > cap)
        st->tokens = cap;
    st->tokens_at = now;
    if (st->tokens < 1)
        return false;
    st->tokens -= 1;
    return true;
}

/* Ends a stream whose message in flight the client has not taken for waited_ms (watchdog thread). The send is
 * stuck behind flow control, so the status cannot queue behind it: the call is cancelled with the status
 * (grpc writes it as trailers, which flow control does not hold back). Caller holds st->lock. */
static void drop_stuck(stream_t *st, long long waited_ms)
{
    char msg[256];
    snprintf(msg, sizeof(msg),
             "the client took no message for %lld ms (its HTTP/2 flow-control window stayed full): stream "
             "dropped (--xds-send-timeout-ms %d)",
             waited_ms, st->server->limits.send_timeout_ms);
    char *peer = grpc_call_get_peer(st->call);
    log_limit(msg, st->session ? ekg_xds_session_node_id(st->session) : "", peer ? peer : "");
    gpr_free(peer);
    st->dropped = true;
    st->status_started = true;
    st->status_pending = false;
    grpc_call_cancel_with_status(st->call, GRPC_STATUS_RESOURCE_EXHAUSTED, msg, NULL);
}

/* Drops every stream whose message in flight is send_timeout_ms old; returns when the next one comes due
 * (-1: no message in flight). Watchdog thread. */
static long long sweep_sends(ekg_xds_server_t *s)
{
    long long now = ekg_clock_ms(), next = -1;
    size_t n;
    stream_t **v = list_grab(s, STREAM_ANY, &n);
    for (size_t i = 0; i < n; i++) {
        stream_t *st = v[i];
        pthread_mutex_lock(&st->lock);
        if (st->send_buf && !st->closed && !st->dropped) {
            long long due = st->send_started_ms + s->limits.send_timeout_ms;
            if (due <= now)
                drop_stuck(st, now - st->send_started_ms);
            else if (next < 0 || due < next)
                next = due;
        }
        pthread_mutex_unlock(&st->lock);
        stream_unref(st);
    }
    free(v);
    return next;
}

/*
 * The send watchdog: a client that stops reading (its flow-control window full) keeps ekglue's message in
 * flight; after limits.send_timeout_ms it is dropped. The thread sleeps without a deadline while no message
 * is in flight (watch_send wakes it with the first one's deadline), and otherwise until the oldest message in
 * flight comes due: since every send's deadline is its start plus the same timeout, that is the earliest.
 * Each wake-up looks at every listed stream once.
 */
static void *watchdog_main(void *arg)
{
    ekg_xds_server_t *s = arg;
    pthread_mutex_lock(&s->wd_lock);
    while (!s->wd_stop) {
        if (s->wd_due_ms < 0) {
            pthread_cond_wait(&s->wd_cond, &s->wd_lock);
            continue;
        }
        if (ekg_clock_ms() < s->wd_due_ms) {
            struct timespec at = monotonic_at(s->wd_due_ms);
            pthread_cond_timedwait(&s->wd_cond, &s->wd_lock, &at);
            continue;
        }
        s->wd_due_ms = -1;
        atomic_store(&s->wd_idle, true); /* from now on a new send wakes us (it may also be in the sweep) */
        pthread_mutex_unlock(&s->wd_lock);
        long long next = sweep_sends(s);
        pthread_mutex_lock(&s->wd_lock);
        if (next >= 0 && (s->wd_due_ms < 0 || next < s->wd_due_ms)) {
            s->wd_due_ms = next;
            atomic_store(&s->wd_idle, false);
        }
    }
    pthread_mutex_unlock(&s->wd_lock);
    return NULL;
}

static void watchdog_stop(ekg_xds_server_t *s)
{
    if (!s->watchdog_started)
        return;
    pthread_mutex_lock(&s->wd_lock);
    s->wd_stop = true;
    pthread_cond_signal(&s->wd_cond);
    pthread_mutex_unlock(&s->wd_lock);
    pthread_join(s->watchdog, NULL);
    s->watchdog_started = false;
}

/* --- operators' views: the client list and CSDS ----------------------------------------------------------
 */

static void free_copies(ekg_xds_session_t **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ekg_xds_session_free(v[i]);
    free(v);
}

/*
 * Copies of the sessions of every live xDS stream (see ekg_xds_session_copy): each is taken under its
 * stream's lock, which is held only for that (no send waits on it, nor on anything blocking). Returns an
 * array owned by the caller (free_copies); NULL with *n = 0 when there are no streams.
 */
static ekg_xds_session_t **copy_sessions(ekg_xds_server_t *s, size_t *n)
{
    size_t ns;
    stream_t **v = list_grab(s, STREAM_XDS, &ns);
    ekg_xds_session_t **copies = ns ? ekg_xcalloc(ns, sizeof(*copies)) : NULL;
    size_t m = 0;
    for (size_t i = 0; i < ns; i++) {
        pthread_mutex_lock(&v[i]->lock);
        if (!v[i]->closed)
            copies[m++] = ekg_xds_session_copy(v[i]->session);
        pthread_mutex_unlock(&v[i]->lock);
        stream_unref(v[i]);
    }
    free(v);
    *n = m;
    return copies;
}

/* Answers one CSDS request (CQ thread, without st->lock). FetchClientStatus ends with the answer;
 * StreamClientStatus reads its next request once the answer is sent (on_send), so answers never queue. */
static void csds_answer(stream_t *st, const grpc_slice *msg)
{
    size_t n = 0;
    char *bytes = NULL;
    size_t len = 0;
    ekg_diag_t diag = {{0}};
    ekg_xds_csds_counts_t counts;
    ekg_xds_session_t **copies = copy_sessions(st->server, &n);
    ekg_err_t err = ekg_xds_csds_answer_bounded(
        (const char *)GRPC_SLICE_START_PTR(*msg), GRPC_SLICE_LENGTH(*msg), copies, n,
        (size_t)st->server->limits.max_client_status_bytes, &bytes, &len, &counts, &diag);
    free_copies(copies, n);
    if (err == EKG_OK && counts.shown < counts.selected)
        ekg_info("CSDS: answer about %zu of the %zu clients selected: the others do not fit in "
                 "--xds-max-client-status-bytes %d (select fewer with node_matchers)",
                 counts.shown, counts.selected, st->server->limits.max_client_status_bytes);
    grpc_byte_buffer *bb = NULL;
    if (err == EKG_OK) {
        grpc_slice slice = grpc_slice_new(bytes, len, free); /* the slice owns bytes now */
        bb = grpc_raw_byte_buffer_create(&slice, 1);
        grpc_slice_unref(slice);
    }
    pthread_mutex_lock(&st->lock);
    if (err != EKG_OK) { /* EKG_EPARSE or EKG_EINVAL: the request's fault */
        ekg_debug("CSDS: bad request: %s", diag.msg);
        finish(st, GRPC_STATUS_INVALID_ARGUMENT, diag.msg[0] ? diag.msg : ekg_strerror(err));
    } else if (st->kind == STREAM_CSDS_FETCH) {
        if (!st->status_started && !st->status_pending) {
            /* How many clients the answer is about, in the trailers (CSDS has no field for it). */
            static const char *const keys[2] = {"ekglue-csds-clients-selected", "ekglue-csds-clients-shown"};
            size_t values[2] = {counts.selected, counts.shown};
            for (int i = 0; i < 2; i++) {
                char v[24];
                snprintf(v, sizeof(v), "%zu", values[i]);
                st->trailers[i].key = grpc_slice_from_static_string(keys[i]);
                st->trailers[i].value = grpc_slice_from_copied_string(v);
            }
            st->ntrailers = 2;
            st->status = GRPC_STATUS_OK;
            start_status(st, bb);
            bb = NULL;
        }
    } else if (can_send(st)) {
        start_send(st, bb);
        bb = NULL;
    }
    pthread_mutex_unlock(&st->lock);
    if (bb)
        grpc_byte_buffer_destroy(bb);
}

static const char *const api_names[] = {
    [EKG_XDS_ADS] = "ADS", [EKG_XDS_CDS] = "CDS", [EKG_XDS_EDS] = "EDS",
    [EKG_XDS_LDS] = "LDS", [EKG_XDS_RDS] = "RDS",
};
static const char *const type_keys[EKG_RESOURCE__COUNT] = {"Cluster", "ClusterLoadAssignment", "Listener",
                                                           "RouteConfiguration"};

/* RFC 3339 UTC with milliseconds, e.g. "2026-11-26T16:16:22.125Z". */
static void format_time(double t, char *buf, size_t size)
{
    time_t sec = (time_t)t;
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    int ms = (int)((t - (double)sec) * 1000);
    snprintf(buf + n, size - n, ".%03dZ", ms < 0 ? 0 : ms > 999 ? 999 : ms);
}

static bool api_carries(ekg_xds_api_t api, ekg_resource_type_t t)
{
    return api == EKG_XDS_ADS || (int)api == (int)t + 1; /* CDS, EDS, LDS, RDS follow the resource order */
}

/* Bounds of one client in ekg_xds_server_clients (include/ekglue/xds.h). */
#define CLIENT_NAMES_SHOWN   100
#define CLIENT_STRING_MAX    256
#define CLIENT_NACK_MAX      1024
#define CLIENT_JSON_OVERHEAD 160 /* keys and punctuation of one type, estimated */

/* Adds str as key, cut at max bytes (at a UTF-8 character boundary, "..." appended); adds its length to
 * *bytes. */
static void add_string_cut(cJSON *o, const char *key, const char *str, size_t max, size_t *bytes)
{
    size_t n = strlen(str);
    if (n <= max) {
        cJSON_AddStringToObject(o, key, str);
    } else {
        while (max > 0 && ((unsigned char)str[max] & 0xC0) == 0x80)
            max--;
        char *cut = ekg_xasprintf("%.*s...", (int)max, str);
        cJSON_AddStringToObject(o, key, cut);
        free(cut);
        n = max + 3;
    }
    *bytes += n + strlen(key) + 6;
}

/* The resources a client has (the first CLIENT_NAMES_SHOWN) with their versions, for client_json. */
typedef struct resources_json {
    cJSON *arr;
    size_t n, *bytes;
} resources_json_t;

static void resource_json(void *ctx, const char *name, ekg_xds_resource_state_t state,
                          const ekg_resource_t *r)
{
    static const char *const states[] = {
        [EKG_XDS_RESOURCE_REQUESTED] = "requested",
        [EKG_XDS_RESOURCE_DOES_NOT_EXIST] = "does_not_exist",
        [EKG_XDS_RESOURCE_SENT] = "sent",
    };
    resources_json_t *c = ctx;
    if (c->n++ >= CLIENT_NAMES_SHOWN)
        return;
    cJSON *o = cJSON_CreateObject();
    add_string_cut(o, "name", name, CLIENT_STRING_MAX, c->bytes);
    cJSON_AddStringToObject(o, "state", states[state]);
    if (r) { /* the resource's own version: its content hash, what a delta client was sent as `version` */
        char v[17];
        snprintf(v, sizeof(v), "%016llx", (unsigned long long)ekg_resource_hash(r));
        cJSON_AddStringToObject(o, "version", v);
    }
    *c->bytes += 64;
    cJSON_AddItemToArray(c->arr, o);
}

/* One client as the debug port shows it, bounded (see ekg_xds_server_clients); *bytes grows by an estimate of
 * its JSON size. cJSON allocates through mem.h: nothing here can fail. */
static cJSON *client_json(const ekg_xds_session_t *c, size_t *bytes)
{
    ekg_xds_node_t node;
    ekg_xds_session_node(c, &node);
    char ua[2 * CLIENT_STRING_MAX + 2];
    snprintf(ua, sizeof(ua), "%.*s%s%.*s", CLIENT_STRING_MAX, node.user_agent_name,
             node.user_agent_name[0] && node.user_agent_version[0] ? " " : "", CLIENT_STRING_MAX,
             node.user_agent_version);
    cJSON *o = cJSON_CreateObject(), *loc = cJSON_CreateObject(), *types = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "locality", loc);
    cJSON_AddItemToObject(o, "types", types);
    *bytes += CLIENT_JSON_OVERHEAD;
    add_string_cut(o, "node_id", node.id, CLIENT_STRING_MAX, bytes);
    add_string_cut(o, "cluster", node.cluster, CLIENT_STRING_MAX, bytes);
    add_string_cut(loc, "region", node.region, CLIENT_STRING_MAX, bytes);
    add_string_cut(loc, "zone", node.zone, CLIENT_STRING_MAX, bytes);
    add_string_cut(loc, "sub_zone", node.sub_zone, CLIENT_STRING_MAX, bytes);
    add_string_cut(o, "node_name", node.node_name, CLIENT_STRING_MAX, bytes); /* metadata NODE_NAME */
    add_string_cut(o, "user_agent", ua, CLIENT_STRING_MAX, bytes);
    add_string_cut(o, "peer", ekg_xds_session_peer(c), CLIENT_STRING_MAX, bytes);
    cJSON_AddStringToObject(o, "api", api_names[ekg_xds_session_api(c)]);
    cJSON_AddStringToObject(o, "mode", ekg_xds_session_is_delta(c) ? "delta" : "sotw");
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++) {
        if (!api_carries(ekg_xds_session_api(c), (ekg_resource_type_t)t))
            continue;
        ekg_xds_type_status_t st;
        ekg_xds_session_type_status(c, (ekg_resource_type_t)t, &st);
        cJSON *ty = cJSON_AddObjectToObject(types, type_keys[t]);
        cJSON *names = cJSON_AddArrayToObject(ty, "names");
        *bytes += CLIENT_JSON_OVERHEAD;
        cJSON_AddBoolToObject(ty, "subscribed", st.subscribed);
        cJSON_AddBoolToObject(ty, "wildcard", st.wildcard);
        cJSON_AddNumberToObject(ty, "names_total", (double)st.nnames);
        add_string_cut(ty, "sent_version", st.sent_version, CLIENT_STRING_MAX, bytes);
        add_string_cut(ty, "acked_version", st.acked_version, CLIENT_STRING_MAX, bytes);
        cJSON_AddNumberToObject(ty, "responses", (double)st.responses);
        cJSON_AddNumberToObject(ty, "acks", (double)st.acks);
        cJSON_AddNumberToObject(ty, "nacks", (double)st.nacks);
        resources_json_t rj = {.arr = cJSON_AddArrayToObject(ty, "resources"), .bytes = bytes};
        ekg_xds_session_resources(c, (ekg_resource_type_t)t, resource_json, &rj);
        cJSON_AddNumberToObject(ty, "resources_total", (double)rj.n);
        for (size_t i = 0; i < st.nnames && i < CLIENT_NAMES_SHOWN; i++) {
            size_t n = strlen(st.names[i]);
            if (n <= CLIENT_STRING_MAX) {
                cJSON_AddItemToArray(names, cJSON_CreateString(st.names[i]));
                *bytes += n + 4;
            } else { /* cut like any other string */
                cJSON *holder = cJSON_CreateObject();
                add_string_cut(holder, "n", st.names[i], CLIENT_STRING_MAX, bytes);
                cJSON_AddItemToArray(names, cJSON_DetachItemFromObject(holder, "n"));
                cJSON_Delete(holder);
            }
        }
        if (st.nack_message) {
            char when[40];
            format_time(st.nack_time, when, sizeof(when));
            cJSON *nack = cJSON_AddObjectToObject(ty, "nack");
            add_string_cut(nack, "message", st.nack_message, CLIENT_NACK_MAX, bytes);
            cJSON_AddStringToObject(nack, "time", when);
        } else {
            cJSON_AddNullToObject(ty, "nack");
        }
    }
    return o;
}

/*
 * The client list, a page at a time: the streams are taken oldest first, and each session is copied under its
 * stream's lock, turned into JSON and freed before the next, so that the work and the memory follow what is
 * shown, not how many clients there are. Stops once the estimated JSON reaches max_client_status_bytes.
 */
cJSON *ekg_xds_server_clients(ekg_xds_server_t *s, ekg_xds_clients_page_t *page)
{
    size_t n, offset = page ? page->offset : 0, shown = 0, bytes = 2,
              budget = (size_t)s->limits.max_client_status_bytes;
    stream_t **v = list_grab(s, STREAM_XDS, &n);
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = offset; i < n && (shown == 0 || bytes < budget); i++) {
        pthread_mutex_lock(&v[i]->lock);
        ekg_xds_session_t *copy = v[i]->closed ? NULL : ekg_xds_session_copy(v[i]->session);
        pthread_mutex_unlock(&v[i]->lock);
        if (!copy)
            continue;
        size_t more = 0;
        cJSON *c = client_json(copy, &more);
        ekg_xds_session_free(copy);
        if (shown > 0 && bytes + more > budget) {
            cJSON_Delete(c);
            break;
        }
        cJSON_AddItemToArray(arr, c);
        bytes += more;
        shown++;
    }
    for (size_t i = 0; i < n; i++)
        stream_unref(v[i]);
    free(v);
    if (page) {
        page->total = n;
        page->shown = shown;
    }
    return arr;
}

/* --- completion handlers (CQ threads) ------------------------------------------------------------------- */

static const ekg_xds_api_t method_api[] = {
    [M_ADS] = EKG_XDS_ADS,       [M_CDS] = EKG_XDS_CDS,       [M_EDS] = EKG_XDS_EDS,
    [M_LDS] = EKG_XDS_LDS,       [M_RDS] = EKG_XDS_RDS,       [M_DELTA_ADS] = EKG_XDS_ADS,
    [M_DELTA_CDS] = EKG_XDS_CDS, [M_DELTA_EDS] = EKG_XDS_EDS, [M_DELTA_LDS] = EKG_XDS_LDS,
    [M_DELTA_RDS] = EKG_XDS_RDS,
};

static bool method_is_delta(int method)
{
    return method >= M_DELTA_ADS && method <= M_DELTA_RDS;
}

/* A new call arrived for method (M_GENERIC: an unregistered one). Takes ownership of call. */
static void start_stream(worker_t *w, int method, grpc_call *call, const grpc_call_details *details)
{
    ekg_xds_server_t *s = w->server;
    stream_kind_t kind = method == M_GENERIC        ? STREAM_UNIMPLEMENTED
                         : method == M_HEALTH_CHECK ? STREAM_HEALTH_CHECK
                         : method == M_HEALTH_WATCH ? STREAM_HEALTH_WATCH
                         : method == M_CSDS_STREAM  ? STREAM_CSDS_STREAM
                         : method == M_CSDS_FETCH   ? STREAM_CSDS_FETCH
                                                    : STREAM_XDS;
    /* Streams in total, and CSDS calls (each answer may take max_client_status_bytes to build and send). A
     * health Check is exempt: it ends at once, and a probe refused under a flood would restart the process.
     */
    char refusal[160] = "";
    bool csds = kind == STREAM_CSDS_STREAM || kind == STREAM_CSDS_FETCH;
    if (kind != STREAM_HEALTH_CHECK && kind != STREAM_UNIMPLEMENTED && s->limits.max_streams > 0 &&
        atomic_load(&s->live) >= (size_t)s->limits.max_streams) {
        snprintf(refusal, sizeof(refusal), "ekglue serves at most %d streams at once (--xds-max-streams)",
                 s->limits.max_streams);
    } else if (csds && atomic_fetch_add(&s->csds_calls, 1) >= MAX_CSDS_CALLS) {
        atomic_fetch_sub(&s->csds_calls, 1); /* counted only while served: see stream_unref */
        snprintf(refusal, sizeof(refusal), "more than %d CSDS calls at once", MAX_CSDS_CALLS);
    }
    if (refusal[0])
        kind = STREAM_REFUSED;
    stream_t *st = stream_new(s, kind, method == M_GENERIC ? M_ADS : (method_t)method, call);
    if (kind == STREAM_XDS) {
        char *peer = grpc_call_get_peer(call);
        st->session = method_is_delta(method)
                          ? ekg_xds_session_new_delta(method_api[method], peer ? peer : "")
                          : ekg_xds_session_new(method_api[method], peer ? peer : "");
        ekg_xds_session_set_limits(
            st->session, s->limits.max_names_per_request > 0 ? (size_t)s->limits.max_names_per_request : 0,
            s->limits.max_names_per_stream > 0 ? (size_t)s->limits.max_names_per_stream : 0);
        ekg_debug("xDS stream opened peer=%s method=%s", peer ? peer : "", method_paths[method]);
        gpr_free(peer);
        atomic_fetch_add_explicit(&s->streams_total, 1, memory_order_relaxed);
        ekg_metrics_xds_streams(method_is_delta(method), method_api[method], +1);
    }

    pthread_mutex_lock(&st->lock);
    start_close_watch(st);
    if (kind == STREAM_UNIMPLEMENTED) {
        char msg[300];
        snprintf(msg, sizeof(msg), "ekglue does not serve %.*s", (int)GRPC_SLICE_LENGTH(details->method),
                 (const char *)GRPC_SLICE_START_PTR(details->method));
        ekg_debug("xDS server: %s", msg);
        finish(st, GRPC_STATUS_UNIMPLEMENTED, msg);
    } else if (refusal[0]) {
        end_past_limit(st, refusal);
    } else {
        start_recv(st, true);
    }
    pthread_mutex_unlock(&st->lock);

    /* Every call is listed: publishes reach the xDS streams, health changes the watches, and the send
     * watchdog and the stop see them all. */
    list_add(s, st);
    if (st->session) {
        /* Listed first, then the current snapshot: a concurrent publish is either seen here or delivers its
         * snapshot itself; the serial check keeps an older one from overtaking a newer one. */
        ekg_snapshot_t *snap = ekg_cache_current(s->cache);
        if (snap) {
            pthread_mutex_lock(&st->lock);
            xds_feed(st, snap, 0);
            xds_maybe_send(st);
            pthread_mutex_unlock(&st->lock);
            ekg_snapshot_unref(snap);
        }
    }
    stream_unref(st);
}

/* Returns a received message as one contiguous slice (the caller unrefs it) and frees the buffer. */
static bool take_message(stream_t *st, grpc_slice *out)
{
    grpc_byte_buffer_reader reader;
    grpc_byte_buffer *bb = st->recv_buf;
    st->recv_buf = NULL;
    bool ok = grpc_byte_buffer_reader_init(&reader, bb) != 0;
    if (ok) {
        *out = grpc_byte_buffer_reader_readall(&reader);
        grpc_byte_buffer_reader_destroy(&reader);
    }
    grpc_byte_buffer_destroy(bb);
    return ok;
}

/* Ends st when the request rate is past its limit (rate_allows); returns whether it did. Caller holds
 * st->lock. */
static bool rate_exceeded(stream_t *st)
{
    if (rate_allows(st))
        return false;
    char msg[200];
    snprintf(msg, sizeof(msg),
             "more than %d requests a second on one stream (over %d s) (--xds-max-requests-per-second)",
             st->server->limits.max_requests_per_second, RATE_WINDOW_S);
    end_past_limit(st, msg);
    return true;
}

static void xds_on_message(stream_t *st, const grpc_slice *msg)
{
    ekg_diag_t diag = {{0}};
    atomic_fetch_add_explicit(&st->server->requests_received, 1, memory_order_relaxed);
    if (rate_exceeded(st))
        return;
    ekg_err_t err = ekg_xds_session_on_request(st->session, (const char *)GRPC_SLICE_START_PTR(*msg),
                                               GRPC_SLICE_LENGTH(*msg), &diag);
    if (err == EKG_ERANGE) { /* past a limit of the session's: how many names */
        end_past_limit(st, diag.msg);
        return;
    }
    if (err != EKG_OK) { /* EKG_EPARSE or EKG_EINVAL: the request's fault */
        ekg_warn("xDS stream: bad request, ending the stream with INVALID_ARGUMENT: %s node=%s",
                 diag.msg[0] ? diag.msg : ekg_strerror(err), ekg_xds_session_node_id(st->session));
        finish(st, GRPC_STATUS_INVALID_ARGUMENT, diag.msg[0] ? diag.msg : ekg_strerror(err));
        return;
    }
    start_recv(st, false);
    xds_maybe_send(st);
}

static void health_on_message(stream_t *st, const grpc_slice *msg)
{
    if (st->status_started || st->status_pending)
        return; /* ended meanwhile (the server stops) */
    const char *service;
    size_t len;
    if (ekg_xds_health_parse_request(GRPC_SLICE_START_PTR(*msg), GRPC_SLICE_LENGTH(*msg), &service, &len) !=
        EKG_OK) {
        finish(st, GRPC_STATUS_INVALID_ARGUMENT, "malformed grpc.health.v1.HealthCheckRequest");
        return;
    }
    bool known = health_service_known(service, len);
    if (st->kind == STREAM_HEALTH_WATCH) {
        /* Server streaming: the client half-closes after its request; only cancellation matters now. */
        st->health_requested = true;
        st->health_known = known;
        health_maybe_send(st);
        return;
    }
    if (!known) {
        finish(st, GRPC_STATUS_NOT_FOUND, "unknown service");
        return;
    }
    st->status = GRPC_STATUS_OK;
    start_status(st, health_response(health_status(st->server)));
}

static void on_recv(stream_t *st, bool ok)
{
    pthread_mutex_lock(&st->lock);
    st->receiving = false;
    if (!ok || !st->recv_buf) {
        /* End of the client's messages: a half-close, or a cancelled/broken call (the status goes nowhere,
         * harmlessly). A CSDS stream is answered OK. An xDS stream is not: grpc 1.51 drops a message cut
         * short by the end of the stream without a word (chttp2's grpc_chttp2_maybe_complete_recv_message
         * discards the partial frame once reads are closed), so a truncated request and a clean half-close
         * look the same here, and xDS clients never half-close (they cancel). A unary or watch call without
         * its request is malformed. */
        if (st->closed)
            ;
        else if (st->kind == STREAM_CSDS_STREAM)
            finish(st, GRPC_STATUS_OK, NULL);
        else if (st->kind == STREAM_XDS)
            finish(st, GRPC_STATUS_INVALID_ARGUMENT,
                   "the client ended its requests (half-close), or its last request was cut short: an xDS "
                   "stream ends when the client cancels it");
        else
            finish(st, GRPC_STATUS_INVALID_ARGUMENT, "missing request");
    } else if (st->kind == STREAM_CSDS_STREAM && rate_exceeded(st)) {
        grpc_byte_buffer_destroy(st->recv_buf);
        st->recv_buf = NULL;
    } else if (st->kind == STREAM_CSDS_STREAM || st->kind == STREAM_CSDS_FETCH) {
        grpc_slice msg;
        bool got = take_message(st, &msg);
        /* Answered without this stream's lock: describing the clients takes the server's lock and theirs. */
        pthread_mutex_unlock(&st->lock);
        if (got) {
            csds_answer(st, &msg);
            grpc_slice_unref(msg);
        } else {
            pthread_mutex_lock(&st->lock);
            finish(st, GRPC_STATUS_INTERNAL, "cannot read the request");
            pthread_mutex_unlock(&st->lock);
        }
        stream_unref(st);
        return;
    } else {
        grpc_slice msg;
        if (!take_message(st, &msg)) {
            finish(st, GRPC_STATUS_INTERNAL, "cannot read the request");
        } else {
            if (st->kind == STREAM_XDS)
                xds_on_message(st, &msg);
            else
                health_on_message(st, &msg);
            grpc_slice_unref(msg);
        }
    }
    pthread_mutex_unlock(&st->lock);
    stream_unref(st);
}

static void on_send(stream_t *st, bool ok)
{
    pthread_mutex_lock(&st->lock);
    st->sending = false;
    grpc_byte_buffer_destroy(st->send_buf);
    st->send_buf = NULL;
    if (st->status_pending)
        start_status(st, NULL);
    else if (ok && st->kind == STREAM_XDS)
        xds_maybe_send(st);
    else if (ok && st->kind == STREAM_CSDS_STREAM && !st->closed && !st->status_started)
        start_recv(st, false); /* the answer is out: read the next request */
    else if (ok && st->kind == STREAM_HEALTH_WATCH)
        health_maybe_send(st);
    pthread_mutex_unlock(&st->lock);
    stream_unref(st);
}

/* The status is written (or the call is gone); the batch's reference goes. */
static void on_status(stream_t *st, bool ok)
{
    pthread_mutex_lock(&st->lock);
    if (st->send_buf) { /* a unary response sent with the status */
        grpc_byte_buffer_destroy(st->send_buf);
        st->send_buf = NULL;
    }
    pthread_mutex_unlock(&st->lock);
    stream_unref(st);
}

static void on_close(stream_t *st, bool ok)
{
    pthread_mutex_lock(&st->lock);
    st->closed = true;
    if (st->kind == STREAM_XDS)
        ekg_debug("xDS stream closed node=%s cancelled=%d method=%s", ekg_xds_session_node_id(st->session),
                  st->cancelled, method_paths[st->method]);
    pthread_mutex_unlock(&st->lock);
    list_remove(st->server, st);
    stream_unref(st);
}

/* (Re)arms a request slot unless the server is stopping. */
static void slot_arm(request_slot_t *slot)
{
    ekg_xds_server_t *s = slot->worker->server;
    grpc_call_error e = GRPC_CALL_OK;
    pthread_mutex_lock(&s->lock);
    if (!s->stopping) {
        slot->call = NULL;
        grpc_metadata_array_init(&slot->metadata);
        if (slot->method == M_GENERIC) {
            grpc_call_details_init(&slot->details);
            e = grpc_server_request_call(s->server, &slot->call, &slot->details, &slot->metadata,
                                         slot->worker->cq, slot->worker->cq, &slot->tag);
        } else {
            e = grpc_server_request_registered_call(s->server, s->registered[slot->method], &slot->call,
                                                    &slot->deadline, &slot->metadata, NULL, slot->worker->cq,
                                                    slot->worker->cq, &slot->tag);
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (e != GRPC_CALL_OK)
        ekg_error("xDS server: cannot request calls error=%d method=%s", (int)e,
                  slot->method == M_GENERIC ? "(unregistered)" : method_paths[slot->method]);
}

static void on_request(request_slot_t *slot, bool ok)
{
    grpc_call *call = slot->call;
    grpc_call_details details = slot->details;
    grpc_metadata_array_destroy(&slot->metadata);
    if (!ok) { /* the server is shutting down: no call, no re-arm */
        if (slot->method == M_GENERIC)
            grpc_call_details_destroy(&details);
        return;
    }
    slot_arm(slot);
    start_stream(slot->worker, slot->method, call, &details);
    if (slot->method == M_GENERIC)
        grpc_call_details_destroy(&details);
}

/*
 * Memory after a burst. Sending a snapshot to a thousand streams allocates a lot for a short time (grpc's
 * frames and buffers), interleaved with what stays (sessions, calls); when it is freed, glibc's malloc keeps
 * the pages. So once the server's sends have been quiet for trim_quiet_ms (default 1 s), one queue thread
 * returns free pages to the system with malloc_trim: once per burst for the whole server (trim_due is
 * claimed by one thread), not once per thread, since malloc_trim walks every arena. A queue wait gets a
 * deadline only while its thread has seen sends since it last looked: an idle server sleeps without
 * timeouts. malloc_trim walks the whole heap (100-190 ms of CPU at 1,000 streams): so that frequent changes
 * do not turn it into a steady cost, the next trim waits TRIM_COST_FACTOR times the CPU time the last one
 * took, which bounds trimming to about 1% of one core. Figures (bench/xds_bench, docs/internals/server.md):
 * RSS per idle stream ~75 KiB -> ~35-50 KiB at 1,000 streams.
 *
 * Never in a build whose allocator is a sanitizer's (ASan, TSan, MSan): malloc_trim is glibc's and walks
 * glibc's arenas, which such a process never set up; ASan's report of it (a SEGV in mtrim) was CI's flake.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MALLOC_IS_GLIBC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define MALLOC_IS_GLIBC 0
#endif
#endif
#ifndef MALLOC_IS_GLIBC
#define MALLOC_IS_GLIBC 1
#endif
#define DEFAULT_TRIM_QUIET_MS 1000
#define TRIM_COST_FACTOR      100

/* Trims if the server's sends have been quiet long enough and nobody trimmed since; returns how many ms
 * this thread should still wait (-1: nothing to wait for). Queue threads only. */
static long long maybe_trim(worker_t *w)
{
    ekg_xds_server_t *s = w->server;
    long long at = atomic_load(&s->last_send_ms) + s->trim_quiet_ms,
              not_before = atomic_load(&s->trim_not_before_ms);
    long long left = (at > not_before ? at : not_before) - ekg_clock_ms();
    if (left > 0)
        return left;
    w->trim_armed = false;
    if (!atomic_exchange(&s->trim_due, false))
        return -1; /* another thread trimmed after the same sends */
    long long t0 = ekg_clock_ms(), cpu0 = ekg_clock_thread_cpu_us();
    malloc_trim(0);
    long long cpu_us = ekg_clock_thread_cpu_us() - cpu0, end = ekg_clock_ms();
    atomic_store(&s->trim_not_before_ms, end + cpu_us * TRIM_COST_FACTOR / 1000);
    ekg_debug(
        "xDS server: returned free heap pages to the system after a send burst took_ms=%lld cpu_ms=%.1f "
        "next_trim_in_ms=%lld",
        end - t0, (double)cpu_us / 1000.0, cpu_us * TRIM_COST_FACTOR / 1000);
    return -1;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    ekg_xds_server_t *s = w->server;
    for (;;) {
        gpr_timespec deadline = gpr_inf_future(GPR_CLOCK_REALTIME);
        long long wait_ms = w->trim_armed ? maybe_trim(w) : -1;
        if (wait_ms >= 0)
            deadline =
                gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(wait_ms, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(w->cq, deadline, NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue; /* GRPC_QUEUE_TIMEOUT: maybe_trim looks again */
        tag_t *tag = ev.tag;
        bool ok = ev.success != 0;
        switch (tag->event) {
        case EV_REQUEST:
            on_request(tag->owner, ok);
            break;
        case EV_RECV:
            on_recv(tag->owner, ok);
            break;
        case EV_SEND:
            on_send(tag->owner, ok);
            if (s->trim_quiet_ms >= 0) {
                atomic_store(&s->last_send_ms, ekg_clock_ms());
                atomic_store(&s->trim_due, true);
                w->trim_armed = true;
            }
            break;
        case EV_STATUS:
            on_status(tag->owner, ok);
            break;
        case EV_CLOSE:
            on_close(tag->owner, ok);
            if (s->trim_quiet_ms >= 0) { /* what the stream held (a large request) is free soon: trim */
                atomic_store(&s->last_send_ms, ekg_clock_ms());
                atomic_store(&s->trim_due, true);
                w->trim_armed = true;
            }
            break;
        case EV_SHUTDOWN: {
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

/* --- start and stop ------------------------------------------------------------------------------------- */

/* The credentials the port is opened with: TLS (src/xds/tls.c) when a certificate is configured. */
static ekg_err_t port_credentials(ekg_xds_server_t *s, const ekg_xds_server_options_t *opts,
                                  grpc_server_credentials **out, ekg_diag_t *diag)
{
    if ((opts->tls_cert && opts->tls_cert[0]) || (opts->tls_key && opts->tls_key[0]))
        return ekg_xds_tls_credentials(opts->tls_cert, opts->tls_key, opts->tls_client_ca, &s->tls, out,
                                       diag);
    if (opts->tls_client_ca && opts->tls_client_ca[0])
        return ekg_diag_set(diag, EKG_EINVAL, "a TLS client CA needs a server certificate and key");
    *out = grpc_insecure_server_credentials_create();
    return EKG_OK;
}

/* ms from now on CLOCK_MONOTONIC (s->cond's clock), as pthread_cond_timedwait wants it. */
static struct timespec deadline_in(int ms)
{
    long long at = ekg_clock_ms() + ms;
    return (struct timespec){.tv_sec = (time_t)(at / 1000), .tv_nsec = (long)(at % 1000) * 1000000L};
}

/* Waits until pred holds or the (CLOCK_MONOTONIC) deadline passed. Caller holds s->lock. */
static bool wait_locked(ekg_xds_server_t *s, bool (*pred)(const ekg_xds_server_t *),
                        const struct timespec *deadline)
{
    while (!pred(s))
        if (pthread_cond_timedwait(&s->cond, &s->lock, deadline) == ETIMEDOUT)
            return pred(s);
    return true;
}

static bool is_shut_down(const ekg_xds_server_t *s)
{
    return s->shutdown_done;
}

/* No stream object left. Every batch holds a reference to its stream, so every status has been written to its
 * transport, and no queue thread will start a batch again. */
static bool is_released(const ekg_xds_server_t *s)
{
    return atomic_load(&s->live) == 0;
}

/* Frees what start created, after the grpc server is destroyed (or was never created). */
static void release(ekg_xds_server_t *s)
{
    watchdog_stop(s);
    for (int i = 0; i < s->nworkers; i++)
        if (s->workers[i].cq)
            grpc_completion_queue_shutdown(s->workers[i].cq);
    for (int i = 0; i < s->nworkers; i++) {
        worker_t *w = &s->workers[i];
        if (w->thread_started) {
            pthread_join(w->thread, NULL);
        } else if (w->cq) {
            while (grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
                   GRPC_QUEUE_SHUTDOWN)
                ;
        }
        if (w->cq)
            grpc_completion_queue_destroy(w->cq);
    }
    free(s->workers);
    pthread_cond_destroy(&s->wd_cond);
    pthread_mutex_destroy(&s->wd_lock);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    ekg_xds_tls_t *tls = s->tls;
    free(s);
    library_unref();
    ekg_xds_tls_free(tls); /* after grpc let go of the credentials that call its fetcher */
}

/* One limit: 0 takes the default; -1 means none where none is allowed; anything else must be positive. */
static ekg_err_t resolve_limit(const char *name, long long v, long long def, bool none_ok, long long max,
                               long long *out, ekg_diag_t *diag)
{
    if (v == 0)
        v = def;
    if ((v < 0 && !(v == -1 && none_ok)) || v > max)
        return ekg_diag_set(diag, EKG_EINVAL, "%s: %lld is not %s1 to %lld", name, v,
                            none_ok ? "-1 (none) or " : "", max);
    *out = v;
    return EKG_OK;
}

/* in with the defaults applied into *out; EKG_EINVAL names a value out of range. */
static ekg_err_t resolve_limits(const ekg_xds_limits_t *in, ekg_xds_limits_t *out, ekg_diag_t *diag)
{
    ekg_err_t err;
    long long v[10];
    struct {
        const char *name;
        long long value, def;
        bool none_ok;
        long long max;
    } f[] = {
        {"max_request_bytes", in->max_request_bytes, EKG_XDS_DEFAULT_MAX_REQUEST_BYTES, false, INT32_MAX},
        {"memory_limit_bytes", in->memory_limit_bytes, EKG_XDS_DEFAULT_MEMORY_LIMIT_BYTES, true,
         INT64_MAX / 2},
        {"max_names_per_request", in->max_names_per_request, EKG_XDS_DEFAULT_MAX_NAMES_PER_REQUEST, true,
         INT32_MAX},
        {"max_names_per_stream", in->max_names_per_stream, EKG_XDS_DEFAULT_MAX_NAMES_PER_STREAM, true,
         INT32_MAX},
        {"max_streams_per_connection", in->max_streams_per_connection,
         EKG_XDS_DEFAULT_MAX_STREAMS_PER_CONNECTION, false, INT32_MAX},
        {"max_streams", in->max_streams, EKG_XDS_DEFAULT_MAX_STREAMS, true, INT32_MAX},
        {"max_requests_per_second", in->max_requests_per_second, EKG_XDS_DEFAULT_MAX_REQUESTS_PER_SECOND,
         true, 1000000},
        {"send_timeout_ms", in->send_timeout_ms, EKG_XDS_DEFAULT_SEND_TIMEOUT_MS, true, INT32_MAX},
        {"max_client_status_bytes", in->max_client_status_bytes, EKG_XDS_DEFAULT_MAX_CLIENT_STATUS_BYTES,
         false, INT32_MAX},
    };
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        if ((err = resolve_limit(f[i].name, f[i].value, f[i].def, f[i].none_ok, f[i].max, &v[i], diag)) !=
            EKG_OK)
            return err;
    *out = (ekg_xds_limits_t){.max_request_bytes = v[0],
                              .memory_limit_bytes = v[1],
                              .max_names_per_request = (int)v[2],
                              .max_names_per_stream = (int)v[3],
                              .max_streams_per_connection = (int)v[4],
                              .max_streams = (int)v[5],
                              .max_requests_per_second = (int)v[6],
                              .send_timeout_ms = (int)v[7],
                              .max_client_status_bytes = (int)v[8]};
    return EKG_OK;
}

ekg_err_t ekg_xds_server_start(ekg_cache_t *cache, const ekg_xds_server_options_t *opts,
                               ekg_xds_server_t **out, ekg_diag_t *diag)
{
    static const ekg_xds_server_options_t defaults = {0};
    if (!opts)
        opts = &defaults;
    const char *listen = opts->listen && opts->listen[0] ? opts->listen : DEFAULT_LISTEN;
    int nthreads = opts->threads > 0 ? opts->threads : DEFAULT_THREADS;
    if (nthreads > MAX_THREADS)
        return ekg_diag_set(diag, EKG_EINVAL, "threads: %d is more than %d", nthreads, MAX_THREADS);

    ekg_xds_limits_t limits;
    ekg_err_t err = resolve_limits(&opts->limits, &limits, diag);
    if (err != EKG_OK)
        return err;
    ekg_xds_server_t *s = ekg_xcalloc(1, sizeof(*s));
    s->limits = limits;
    library_ref();
    s->cache = cache;
    s->shutdown_ms = opts->shutdown_ms > 0 ? opts->shutdown_ms : DEFAULT_SHUTDOWN_MS;
    s->trim_quiet_ms = !MALLOC_IS_GLIBC || opts->trim_quiet_ms < 0 ? -1
                       : opts->trim_quiet_ms > 0                   ? opts->trim_quiet_ms
                                                                   : DEFAULT_TRIM_QUIET_MS;
    s->shutdown_tag = (tag_t){EV_SHUTDOWN, s};
    /* Set before grpc_server_start: no client sees another state first. */
    atomic_init(&s->serving, opts->serving);
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_cond_init(&s->wd_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->wd_lock, NULL);
    s->wd_due_ms = -1;
    atomic_init(&s->wd_idle, true);
    s->workers = ekg_xcalloc((size_t)nthreads, sizeof(*s->workers));
    s->nworkers = nthreads;

    /* SO_REUSEPORT would let a second ekglue silently share the port: refuse instead. The limits: see
     * "Limits" in docs/internals/server.md for what each of these bounds, and what it does not. */
    grpc_resource_quota *quota = NULL;
    grpc_arg args[5] = {
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = (int)s->limits.max_request_bytes},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_CONCURRENT_STREAMS,
         .value.integer = s->limits.max_streams_per_connection},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_BDP_PROBE, .value.integer = 0},
    };
    size_t nargs = 4;
    if (s->limits.memory_limit_bytes > 0) {
        quota = grpc_resource_quota_create("ekglue-xds");
        grpc_resource_quota_resize(quota, (size_t)s->limits.memory_limit_bytes);
        args[nargs++] = (grpc_arg){.type = GRPC_ARG_POINTER,
                                   .key = GRPC_ARG_RESOURCE_QUOTA,
                                   .value.pointer = {.p = quota, .vtable = grpc_resource_quota_arg_vtable()}};
    }
    grpc_channel_args channel_args = {.num_args = nargs, .args = args};
    s->server = grpc_server_create(&channel_args, NULL);
    if (quota)
        grpc_resource_quota_unref(quota); /* the server holds its own reference */
    for (int i = 0; i < nthreads; i++) {
        worker_t *w = &s->workers[i];
        w->server = s;
        w->cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->server, w->cq, NULL);
        for (int m = 0; m <= M_GENERIC; m++)
            w->slots[m] = (request_slot_t){.tag = {EV_REQUEST, &w->slots[m]}, .worker = w, .method = m};
    }
    for (int m = 0; m < M__COUNT; m++) {
        if (!(s->registered[m] =
                  grpc_server_register_method(s->server, method_paths[m], NULL, GRPC_SRM_PAYLOAD_NONE, 0))) {
            err = ekg_diag_set(diag, EKG_EINVAL, "cannot register %s", method_paths[m]);
            goto fail;
        }
    }
    /* Threads before the port: if one cannot start, nothing is listening yet. */
    if (s->limits.send_timeout_ms > 0) {
        int rc = pthread_create(&s->watchdog, NULL, watchdog_main, s);
        if (rc != 0) {
            err = ekg_diag_set(diag, EKG_EIO, "cannot start the send watchdog thread: %s", strerror(rc));
            goto fail;
        }
        s->watchdog_started = true;
    }
    for (int i = 0; i < nthreads; i++) {
        int rc = pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]);
        if (rc != 0) {
            err = ekg_diag_set(diag, EKG_EIO, "cannot start a gRPC thread: %s", strerror(rc));
            goto fail;
        }
        s->workers[i].thread_started = true;
    }
    grpc_server_credentials *creds = NULL;
    if ((err = port_credentials(s, opts, &creds, diag)) != EKG_OK)
        goto fail;
    s->port = grpc_server_add_http2_port(s->server, listen, creds);
    grpc_server_credentials_release(creds);
    if (s->port == 0) {
        err = ekg_diag_set(diag, EKG_EIO, "xds listen address %s: cannot bind (in use, or not an address)%s",
                           listen, s->tls ? ", or the TLS certificate and key do not make a valid pair" : "");
        goto fail;
    }
    /* The watch before the first call can arrive: a stream is listed, then reads the current snapshot, and
     * every publish after that read reaches it through the watch (see start_stream). */
    ekg_cache_set_watch(cache, on_snapshot, s);
    grpc_server_start(s->server);
    if (opts->serving)
        ekg_info("xDS server health status=SERVING");
    for (int i = 0; i < nthreads; i++)
        for (int m = 0; m <= M_GENERIC; m++)
            slot_arm(&s->workers[i].slots[m]);
    *out = s;
    return EKG_OK;

fail:
    /* Not started, so there is no listener, no call and no outstanding request: destroy directly. */
    if (s->server)
        grpc_server_destroy(s->server);
    release(s);
    return err;
}

int ekg_xds_server_port(const ekg_xds_server_t *s)
{
    return s->port;
}

void ekg_xds_server_stop(ekg_xds_server_t *s)
{
    if (!s)
        return;
    watchdog_stop(s); /* from now on the stop's own bound applies to clients that do not read */
    ekg_cache_set_watch(s->cache, NULL, NULL);

    pthread_mutex_lock(&s->lock);
    s->stopping = true; /* from now on no slot is re-armed and new streams are cancelled as they are listed */
    size_t open = s->nstreams;
    pthread_mutex_unlock(&s->lock);
    /* Stop listening and send GOAWAY; pending requests for calls complete with ok = false. */
    grpc_server_shutdown_and_notify(s->server, s->workers[0].cq, &s->shutdown_tag);

    /* UNAVAILABLE tells clients to move to another replica; the list's references keep the calls alive.
     * Released (no stream object left) means every status is written, so the process may exit right after:
     * clients see the status, not a reset connection. A stream whose send is stuck (a client that does not
     * read) gets its status after the send, or is cancelled once shutdown_ms has passed. */
    pthread_mutex_lock(&s->lock);
    for (stream_t *st = s->streams; st; st = st->next)
        end_for_shutdown(st);
    struct timespec deadline = deadline_in(s->shutdown_ms);
    bool graceful = wait_locked(s, is_released, &deadline) && wait_locked(s, is_shut_down, &deadline);
    pthread_mutex_unlock(&s->lock);
    if (!graceful) {
        ekg_warn("xDS server: not drained within %d ms, cancelling all calls", s->shutdown_ms);
        grpc_server_cancel_all_calls(s->server);
        pthread_mutex_lock(&s->lock);
        deadline = deadline_in(FORCED_SHUTDOWN_MS);
        bool done = wait_locked(s, is_shut_down, &deadline);
        pthread_mutex_unlock(&s->lock);
        if (!done) {
            /* Destroying the server now would crash in grpc; leave it to the process exit. */
            ekg_error("xDS server: gRPC did not shut down; leaking the server");
            return;
        }
    }
    /* After a forced stop a queue thread may still be finishing a cancelled stream (a status that was due
     * after its send starts when the send fails): the queues must not shut down under it (grpc asserts in
     * grpc_cq_begin_op). Every call is over, so each stream's last batch completes at once. (At once true
     * after a graceful stop.) */
    pthread_mutex_lock(&s->lock);
    deadline = deadline_in(FORCED_SHUTDOWN_MS);
    bool released = wait_locked(s, is_released, &deadline);
    pthread_mutex_unlock(&s->lock);
    if (!released) {
        ekg_error("xDS server: %zu streams still held after the shutdown; leaking the server",
                  atomic_load(&s->live));
        return;
    }
    ekg_info(
        "xDS server stopped streams_at_stop=%zu streams_total=%llu requests=%llu responses=%llu bytes=%llu",
        open, (unsigned long long)atomic_load(&s->streams_total),
        (unsigned long long)atomic_load(&s->requests_received),
        (unsigned long long)atomic_load(&s->responses_sent), (unsigned long long)atomic_load(&s->bytes_sent));
    grpc_server_destroy(s->server);
    release(s);
}
