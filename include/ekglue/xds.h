/*
 * include/ekglue/xds.h: the xDS gRPC server.
 *
 * One gRPC port serves envoy.service.discovery.v3.AggregatedDiscoveryService (StreamAggregatedResources),
 * envoy.service.cluster.v3.ClusterDiscoveryService (StreamClusters), envoy.service.endpoint.v3.
 * EndpointDiscoveryService (StreamEndpoints), envoy.service.listener.v3.ListenerDiscoveryService
 * (StreamListeners), envoy.service.route.v3.RouteDiscoveryService (StreamRoutes), all state of the world,
 * envoy.service.status.v3.ClientStatusDiscoveryService (CSDS, fetch and stream), and grpc.health.v1.Health
 * (Check, Watch). Optionally over TLS, with client certificates (mutual TLS) and certificate rotation.
 * Streams are spread over several completion queues, each served by its own thread; a published snapshot is
 * handed to every stream on the publishing thread, which starts the sends itself.
 *
 * Thread: start/stop from main; the cache's publisher thread drives updates; gRPC threads are internal.
 */
#ifndef EKGLUE_XDS_H
#define EKGLUE_XDS_H

#include <stdbool.h>

#include <cJSON.h>

#include "ekglue/error.h"
#include "ekglue/cache.h"

typedef struct ekg_xds_server ekg_xds_server_t;

/* Which gRPC service a stream came in on: ADS carries every type, the others one each. */
typedef enum {
    EKG_XDS_ADS = 0,
    EKG_XDS_CDS,
    EKG_XDS_EDS,
    EKG_XDS_LDS,
    EKG_XDS_RDS,
    EKG_XDS__APIS
} ekg_xds_api_t;

/*
 * What one client may ask of the server (docs/operations.md, "Limits"; docs/internals/server.md, "Limits").
 * A field left 0 takes its default (EKG_XDS_DEFAULT_*); -1 turns a limit off where the comment says so. Past
 * a limit the offending stream ends with RESOURCE_EXHAUSTED and a message naming the limit and its flag;
 * other streams are not affected. Streams per connection is HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS: gRPC
 * clients wait for a free slot instead.
 */
#define EKG_XDS_DEFAULT_MAX_REQUEST_BYTES          (4 << 20)
#define EKG_XDS_DEFAULT_MEMORY_LIMIT_BYTES         (1LL << 30)
#define EKG_XDS_DEFAULT_MAX_NAMES_PER_REQUEST      10000
#define EKG_XDS_DEFAULT_MAX_NAMES_PER_STREAM       20000
#define EKG_XDS_DEFAULT_MAX_STREAMS_PER_CONNECTION 4096
#define EKG_XDS_DEFAULT_MAX_STREAMS                10000
#define EKG_XDS_DEFAULT_MAX_REQUESTS_PER_SECOND    100
#define EKG_XDS_DEFAULT_SEND_TIMEOUT_MS            30000
#define EKG_XDS_DEFAULT_MAX_CLIENT_STATUS_BYTES    (4 << 20)
typedef struct ekg_xds_limits {
    long long max_request_bytes;    /* one request message, checked by gRPC (its receive limit) */
    long long memory_limit_bytes;   /* gRPC's own buffers, all connections (a gRPC resource quota); -1 none */
    int max_names_per_request;      /* resource names in one DiscoveryRequest; -1 none */
    int max_names_per_stream;       /* resource names subscribed on one stream, all types together; -1 none */
    int max_streams_per_connection; /* calls open at once on one HTTP/2 connection */
    int max_streams;                /* calls open at once on the whole server (xDS, CSDS, health); -1 none */
    int max_requests_per_second;    /* per stream, over any 10 s (bursts up to 10 s worth); -1 none */
    int send_timeout_ms; /* a response the client does not take (flow control) within this ends the stream;
                            -1 never */
    int max_client_status_bytes; /* one CSDS answer, one page of ekg_xds_server_clients (estimated) */
} ekg_xds_limits_t;

typedef struct ekg_xds_server_options {
    const char *listen; /* "0.0.0.0:18000" (default), "127.0.0.1:0" picks a free port */
    int threads;        /* completion-queue threads; 0 = default (2) */
    int shutdown_ms;    /* bound on a graceful stop; 0 = default (5000) */
    /* Once sends have been quiet this long, return the heap pages a burst freed to the system (glibc's
     * malloc_trim, once per burst); 0 = default (1000), -1 = never. Never in sanitizer builds. */
    int trim_quiet_ms;
    /* TLS on the gRPC port (PEM files; NULL = plaintext). tls_cert (chain may follow) and tls_key go
     * together; tls_client_ca also requires client certificates signed by one of its CAs (mutual TLS).
     * Re-read when they change (rotation without a restart; new connections only). */
    const char *tls_cert;
    const char *tls_key;
    const char *tls_client_ca;
    ekg_xds_limits_t limits; /* all 0: the defaults */
    /* Health is SERVING from the first connection on (the snapshot is published before the start: files,
     * the demo); false: NOT_SERVING until ekg_xds_server_set_serving() (the Kubernetes source, until synced).
     */
    bool serving;
} ekg_xds_server_options_t;

/* Starts serving the cache's snapshots. cache is borrowed and must outlive the server. */
ekg_err_t ekg_xds_server_start(ekg_cache_t *cache, const ekg_xds_server_options_t *opts,
                               ekg_xds_server_t **out, ekg_diag_t *diag);
/* The bound port (useful with port 0). */
int ekg_xds_server_port(const ekg_xds_server_t *s);
/* grpc.health.v1: SERVING or NOT_SERVING (opts->serving until set). Watchers are notified. */
void ekg_xds_server_set_serving(ekg_xds_server_t *s, bool serving);
/* Which clients ekg_xds_server_clients describes, and how many there are. */
typedef struct ekg_xds_clients_page {
    size_t offset; /* in: skip this many (oldest stream first) */
    size_t total;  /* out: xDS streams open */
    size_t shown;  /* out: clients in the array */
} ekg_xds_clients_page_t;

/*
 * The connected xDS clients, for operators (the debug port's /clients and status page): a JSON array of
 * objects {node_id, cluster, locality, user_agent, peer, api, types: {<type>: {subscribed, wildcard, names,
 * names_total, sent_version, acked_version, nack: {message, time} | null, responses, acks, nacks}}}, oldest
 * stream first, owned by the caller (cJSON_Delete). Bounded: at most 100 names per type (names_total counts
 * them all), strings cut at 256 bytes (a NACK message at 1 KiB), and as many clients from page->offset on as
 * fit in limits.max_client_status_bytes of JSON (at least one). page may be NULL (from the first). Any
 * thread.
 */
cJSON *ekg_xds_server_clients(ekg_xds_server_t *s, ekg_xds_clients_page_t *page);

/* Stops accepting, ends open streams with UNAVAILABLE (so clients move to another replica), waits for the
 * gRPC threads within the configured bound and frees everything. */
void ekg_xds_server_stop(ekg_xds_server_t *s);

#endif
