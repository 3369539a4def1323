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
} ekg_xds_server_options_t;

/* Starts serving the cache's snapshots. cache is borrowed and must outlive the server. */
ekg_err_t ekg_xds_server_start(ekg_cache_t *cache, const ekg_xds_server_options_t *opts,
                               ekg_xds_server_t **out, ekg_diag_t *diag);
/* The bound port (useful with port 0). */
int ekg_xds_server_port(const ekg_xds_server_t *s);
/* grpc.health.v1: SERVING or NOT_SERVING (the default until set). Watchers are notified. */
void ekg_xds_server_set_serving(ekg_xds_server_t *s, bool serving);
/*
 * Every connected xDS client, for operators (the debug port's /clients, and CSDS): a JSON array of objects
 * {node_id, cluster, locality, user_agent, peer, api, types: {<type>: {subscribed, wildcard, names,
 * sent_version, acked_version, nack: {message, time} | null, responses, acks, nacks}}}, owned by the caller
 * (cJSON_Delete). Any thread.
 */
cJSON *ekg_xds_server_clients(ekg_xds_server_t *s);

/* Stops accepting, ends open streams with UNAVAILABLE (so clients move to another replica), waits for the
 * gRPC threads within the configured bound and frees everything. */
void ekg_xds_server_stop(ekg_xds_server_t *s);

#endif
