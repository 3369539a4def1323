/*
 * src/debug/http.c: the debug HTTP port (include/ekglue/debug.h): routing, the JSON/YAML documents, /metrics.
 *
 * libmicrohttpd runs one internal polling thread (MHD_USE_INTERNAL_POLLING_THREAD) that answers every
 * request start to finish; the connection limit and timeout keep a stuck client from holding it. A request
 * takes a reference to the cache's current snapshot and builds its answer from it, so it never blocks the
 * publisher and always shows one consistent version. Documents are rendered per request (ekg_render_resource
 * decodes each resource's shared bytes): cheap next to an operator's reading speed, and what is shown is
 * exactly what is sent.
 *
 * Routes (GET and HEAD only, otherwise 405; unknown paths 404):
 *   /healthz      200 "ok" while the process runs
 *   /readyz       200 once a snapshot has been published (in Kubernetes mode: the first complete sync), else
 *                 503
 *   /clusters     [Cluster...]                  canonical proto3 JSON, ?format=yaml for YAML
 *   /endpoints    [ClusterLoadAssignment...]    ?region=R&zone=Z&node=N (any of them): what an xDS client
 *                                               at that place gets (ekg_snapshot_resources_at), else the
 *                                               plain assignments; the place on other paths is a 400
 *   /localities   {node: {region, zone, subZone}}
 *   /clients      ekg_xds_server_clients()
 *   /config_dump  {version_info: {type: version}, clusters, load_assignments, listeners, localities}
 *   /metrics      Prometheus text (ekg_debug_metrics_render)
 *   /             the HTML status page (status_page.c)
 * A server started with metrics_only (the metrics listener, for probes and Prometheus on the pod IP) answers
 * /healthz, /readyz and /metrics the same way and 404 to everything else: nothing there names a Service,
 * an endpoint, a Node or a client (docs/operations.md, "Ports").
 *
 * libmicrohttpd's own error messages go to ekg_log at warn. Out of memory aborts (include/ekglue/mem.h; cJSON
 * and the open_memstream buffers included): an error page means a resource that does not render, never
 * memory. Thread: start/stop from main; the handler and everything it calls on libmicrohttpd's thread.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "ekglue/clock.h"
#include "ekglue/debug.h"
#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/metrics.h"
#include "ekglue/render.h"

#include "debug/debug_internal.h"

#define DEFAULT_LISTEN     "127.0.0.1:18001"
#define CONNECTION_LIMIT   32
#define CONNECTION_TIMEOUT 30 /* seconds a connection may stay idle */

const char *const ekg_debug_type_names[EKG_RESOURCE__COUNT] = {"Cluster", "ClusterLoadAssignment", "Listener",
                                                               "RouteConfiguration"};

struct ekg_debug_server {
    struct MHD_Daemon *daemon;
    ekg_cache_t *cache;     /* borrowed */
    ekg_xds_server_t *xds;  /* borrowed, may be NULL */
    ekg_watcher_t *watcher; /* borrowed, may be NULL */
    char *source_desc;      /* owned */
    int port;
    double started;
    bool metrics_only; /* /metrics, /healthz and /readyz only (opts->metrics_only) */
    atomic_bool quiet; /* starting with opts->optional: bind errors are logged at info */
};

/* One answer: status, content type and a malloc'ed body handed to libmicrohttpd (never NULL once routed). */
typedef struct reply {
    unsigned int status;
    const char *content_type;
    char *body;
    size_t len;
    ekg_xds_clients_page_t clients; /* /clients?offset=N: the page asked for and shown (X-Ekglue-Clients-*) */
    bool clients_paged;
} reply_t;

static void reply_text(reply_t *r, unsigned int status, const char *text)
{
    r->status = status;
    r->content_type = "text/plain; charset=utf-8";
    r->body = ekg_xstrdup(text);
    r->len = strlen(r->body);
}

/* --- documents ------------------------------------------------------------------------------------------ */

/* Every resource of one type of snap a client at place gets (NULL: no place, the base set), rendered, as a
 * JSON array (empty without a snapshot). */
static ekg_err_t resource_array(ekg_snapshot_t *snap, ekg_resource_type_t type, const ekg_place_t *place,
                                cJSON **out)
{
    ekg_err_t err = EKG_OK;
    cJSON *arr = cJSON_CreateArray();
    ekg_resource_set_t *set = snap ? ekg_snapshot_resources_at(snap, type, place) : NULL;
    for (size_t i = 0; set && i < ekg_resource_set_size(set); i++) {
        cJSON *item = NULL;
        if ((err = ekg_render_resource(ekg_resource_set_at(set, i), &item)) != EKG_OK)
            goto out;
        cJSON_AddItemToArray(arr, item);
    }
    *out = arr;
    arr = NULL;
out:
    cJSON_Delete(arr);
    return err;
}

static cJSON *localities_copy(ekg_snapshot_t *snap)
{
    const cJSON *loc = snap ? ekg_snapshot_localities(snap) : NULL;
    return loc ? cJSON_Duplicate(loc, true) : cJSON_CreateObject();
}

static ekg_err_t config_dump(ekg_snapshot_t *snap, cJSON **out)
{
    static const struct {
        const char *key;
        ekg_resource_type_t type;
    } members[] = {{"clusters", EKG_RESOURCE_CLUSTER},
                   {"load_assignments", EKG_RESOURCE_LOAD_ASSIGNMENT},
                   {"listeners", EKG_RESOURCE_LISTENER}};
    ekg_err_t err = EKG_OK;
    cJSON *doc = cJSON_CreateObject(), *versions = cJSON_AddObjectToObject(doc, "version_info");
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++) {
        const char *v =
            snap ? ekg_resource_set_version(ekg_snapshot_resources(snap, (ekg_resource_type_t)t)) : "";
        cJSON_AddStringToObject(versions, ekg_debug_type_names[t], v);
    }
    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        cJSON *arr = NULL;
        if ((err = resource_array(snap, members[i].type, NULL, &arr)) != EKG_OK)
            goto out;
        cJSON_AddItemToObject(doc, members[i].key, arr);
    }
    cJSON_AddItemToObject(doc, "localities", localities_copy(snap));
    *out = doc;
    doc = NULL;
out:
    cJSON_Delete(doc);
    return err;
}

/* doc as JSON or YAML (ekg_render_write) into r. */
static ekg_err_t reply_document(reply_t *r, const cJSON *doc, ekg_format_t format)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = ekg_xmemstream(&buf, &size);
    ekg_err_t err = ekg_render_write(doc, format, f);
    ekg_xmemstream_close(f);
    if (err) {
        free(buf);
        return err;
    }
    r->status = MHD_HTTP_OK;
    r->content_type = format == EKG_FORMAT_YAML ? "application/yaml; charset=utf-8" : "application/json";
    r->body = buf;
    r->len = size;
    return EKG_OK;
}

/* --- routing -------------------------------------------------------------------------------------------- */

typedef enum { DOC_NONE, DOC_CLUSTERS, DOC_ENDPOINTS, DOC_LOCALITIES, DOC_CLIENTS, DOC_CONFIG_DUMP } doc_t;

static doc_t document_of(const char *url)
{
    static const struct {
        const char *path;
        doc_t doc;
    } docs[] = {{"/clusters", DOC_CLUSTERS},
                {"/endpoints", DOC_ENDPOINTS},
                {"/localities", DOC_LOCALITIES},
                {"/clients", DOC_CLIENTS},
                {"/config_dump", DOC_CONFIG_DUMP}};
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
        if (strcmp(url, docs[i].path) == 0)
            return docs[i].doc;
    return DOC_NONE;
}

/* The xDS server's client listing, one bounded page (page may be NULL: the first); NULL without a server. */
static cJSON *clients_of(ekg_debug_server_t *s, ekg_xds_clients_page_t *page)
{
    return s->xds ? ekg_xds_server_clients(s->xds, page) : NULL;
}

/* place: the client's place for DOC_ENDPOINTS (NULL: none). */
static ekg_err_t serve_document(ekg_debug_server_t *s, doc_t which, ekg_format_t format,
                                const ekg_place_t *place, reply_t *r)
{
    ekg_err_t err = EKG_OK;
    cJSON *doc = NULL;
    ekg_snapshot_t *snap = ekg_cache_current(s->cache);
    switch (which) {
    case DOC_CLUSTERS:
        err = resource_array(snap, EKG_RESOURCE_CLUSTER, NULL, &doc);
        break;
    case DOC_ENDPOINTS:
        err = resource_array(snap, EKG_RESOURCE_LOAD_ASSIGNMENT, place, &doc);
        break;
    case DOC_LOCALITIES:
        doc = localities_copy(snap);
        break;
    case DOC_CLIENTS:
        doc = clients_of(s, &r->clients);
        r->clients_paged = s->xds != NULL;
        if (!doc)
            doc = cJSON_CreateArray();
        break;
    case DOC_CONFIG_DUMP:
        err = config_dump(snap, &doc);
        break;
    case DOC_NONE:
        err = EKG_EINVAL;
        break;
    }
    if (!err)
        err = reply_document(r, doc, format);
    cJSON_Delete(doc);
    ekg_snapshot_unref(snap);
    return err;
}

static ekg_err_t serve_status_page(ekg_debug_server_t *s, reply_t *r)
{
    char *buf = NULL;
    size_t size = 0;
    cJSON *clients = clients_of(s, NULL);
    ekg_debug_view_t view = {.source_desc = s->source_desc,
                             .snap = ekg_cache_current(s->cache),
                             .watcher = s->watcher,
                             .clients = clients,
                             .started = s->started};
    FILE *f = ekg_xmemstream(&buf, &size);
    ekg_err_t err = ekg_debug_status_page(&view, f);
    ekg_xmemstream_close(f);
    if (err)
        goto out;
    r->status = MHD_HTTP_OK;
    r->content_type = "text/html; charset=utf-8";
    r->body = buf;
    r->len = size;
    buf = NULL;
out:
    free(buf);
    cJSON_Delete(clients);
    ekg_snapshot_unref(view.snap);
    return err;
}

/*
 * The client place of ?region=R&zone=Z&node=N: any of them may be given, the others are "" (unset), as for an
 * xDS client whose Node has only some of them. false when none is given. The strings are borrowed from
 * libmicrohttpd for the request's lifetime.
 */
static bool place_of(struct MHD_Connection *conn, ekg_place_t *place)
{
    const char *v[3];
    static const char *const keys[3] = {"region", "zone", "node"};
    bool any = false;
    for (int i = 0; i < 3; i++) {
        v[i] = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, keys[i]);
        any |= v[i] != NULL;
    }
    *place = (ekg_place_t){v[0] ? v[0] : "", v[1] ? v[1] : "", v[2] ? v[2] : ""};
    return any;
}

/* What a metrics_only server answers: nothing that shows the topology. */
static bool is_metrics_path(const char *url)
{
    return strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0 || strcmp(url, "/metrics") == 0;
}

/* Decides the answer to one request. */
static void route(ekg_debug_server_t *s, struct MHD_Connection *conn, const char *url, reply_t *r)
{
    ekg_err_t err = EKG_OK;
    if (s->metrics_only && !is_metrics_path(url)) {
        reply_text(r, MHD_HTTP_NOT_FOUND,
                   "not found; this port serves /metrics, /healthz and /readyz only (the other views are on "
                   "the loopback debug port, --debug-listen)\n");
    } else if (strcmp(url, "/healthz") == 0) {
        reply_text(r, MHD_HTTP_OK, "ok\n");
    } else if (strcmp(url, "/readyz") == 0) {
        ekg_snapshot_t *snap = ekg_cache_current(s->cache);
        if (snap)
            reply_text(r, MHD_HTTP_OK, "ready\n");
        else
            reply_text(r, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: no snapshot published yet\n");
        ekg_snapshot_unref(snap);
    } else if (strcmp(url, "/metrics") == 0) {
        ekg_debug_metrics_render(s->watcher, &r->body, &r->len);
        r->status = MHD_HTTP_OK;
        r->content_type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (strcmp(url, "/") == 0) {
        err = serve_status_page(s, r);
    } else if (document_of(url) != DOC_NONE) {
        const char *format = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "format");
        const char *offset = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "offset");
        ekg_place_t place;
        bool placed = place_of(conn, &place);
        char *end = NULL;
        if (offset)
            r->clients.offset = (size_t)strtoull(offset, &end, 10);
        if (format && strcmp(format, "yaml") != 0 && strcmp(format, "json") != 0)
            reply_text(r, MHD_HTTP_BAD_REQUEST, "format: json (default) or yaml\n");
        else if (offset && (!*offset || *end || *offset == '-'))
            reply_text(r, MHD_HTTP_BAD_REQUEST, "offset: a number of clients to skip (/clients)\n");
        else if (placed && document_of(url) != DOC_ENDPOINTS)
            reply_text(r, MHD_HTTP_BAD_REQUEST,
                       "region, zone, node: the place of a client, for /endpoints only (what it gets)\n");
        else
            err = serve_document(s, document_of(url),
                                 format && strcmp(format, "yaml") == 0 ? EKG_FORMAT_YAML : EKG_FORMAT_JSON,
                                 placed ? &place : NULL, r);
    } else {
        reply_text(r, MHD_HTTP_NOT_FOUND,
                   "not found; try /, /healthz, /readyz, /metrics, /clusters, /endpoints, /localities, "
                   "/clients, /config_dump\n");
    }
    if (err) {
        ekg_warn("debug: cannot answer path=\"%.100s\" error=\"%s\"", url, ekg_strerror(err));
        free(r->body);
        r->body = NULL;
        reply_text(r, MHD_HTTP_INTERNAL_SERVER_ERROR, ekg_strerror(err));
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    ekg_debug_server_t *s = cls;
    reply_t r = {0};
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0, head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (!get && !head)
        reply_text(&r, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: this port is read-only (GET)\n");
    else
        route(s, conn, url, &r);
    struct MHD_Response *resp = MHD_create_response_from_buffer(r.len, r.body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(r.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r.clients_paged) { /* /clients is bounded: which clients this page shows, of how many */
        char v[3][24];
        snprintf(v[0], sizeof(v[0]), "%zu", r.clients.total);
        snprintf(v[1], sizeof(v[1]), "%zu", r.clients.offset);
        snprintf(v[2], sizeof(v[2]), "%zu", r.clients.shown);
        MHD_add_response_header(resp, "X-Ekglue-Clients-Total", v[0]);
        MHD_add_response_header(resp, "X-Ekglue-Clients-Offset", v[1]);
        MHD_add_response_header(resp, "X-Ekglue-Clients-Shown", v[2]);
    }
    if (r.status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    ekg_debug("%s request method=%s path=\"%.100s\" status=%u bytes=%zu",
              s->metrics_only ? "metrics" : "debug", method, url, r.status, r.len);
    enum MHD_Result ret = MHD_queue_response(conn, r.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* libmicrohttpd's error log, one ekg_log line per message. cls is the server. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    ekg_debug_server_t *s = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    ekg_log(atomic_load(&s->quiet) ? EKG_LOG_INFO : EKG_LOG_WARN, "%s http: %s",
            s->metrics_only ? "metrics" : "debug", msg);
}

/* --- start/stop ----------------------------------------------------------------------------------------- */

/* "host:port" or "[v6]:port" into a socket address (the host may be a name; the first address is taken). */
static ekg_err_t parse_listen(const char *flag, const char *listen, struct sockaddr_storage *ss,
                              socklen_t *sslen, ekg_diag_t *diag)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    const char *h = listen, *hend = colon;
    if (colon && listen[0] == '[') {
        h = listen + 1;
        hend = colon > listen && colon[-1] == ']' ? colon - 1 : NULL;
    }
    if (!colon || !hend || hend <= h || (size_t)(hend - h) >= sizeof(host) || !colon[1])
        return ekg_diag_set(diag, EKG_EINVAL, "%s: want HOST:PORT (or [V6]:PORT), not '%s'", flag, listen);
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0 || !res)
        return ekg_diag_set(diag, EKG_EINVAL, "%s: cannot resolve '%s': %s", flag, listen,
                            rc ? gai_strerror(rc) : "no address");
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return EKG_OK;
}

/* 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104: reachable from this host (and `kubectl port-forward`) only. */
static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

ekg_err_t ekg_debug_server_start(const ekg_debug_options_t *opts, ekg_cache_t *cache, ekg_xds_server_t *xds,
                                 ekg_watcher_t *watcher, const char *source_desc, ekg_debug_server_t **out,
                                 ekg_diag_t *diag)
{
    ekg_err_t err = EKG_OK;
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    bool metrics_only = opts && opts->metrics_only;
    const char *flag = metrics_only ? "--metrics-listen" : "--debug-listen";
    const char *listen = opts && opts->listen ? opts->listen : metrics_only ? NULL : DEFAULT_LISTEN;
    if (!listen)
        return ekg_diag_set(diag, EKG_EINVAL, "%s: no address given", flag);
    ekg_debug_server_t *s = ekg_xcalloc(1, sizeof(*s));
    s->source_desc = ekg_xstrdup(source_desc ? source_desc : "");
    s->cache = cache;
    s->xds = xds;
    s->watcher = watcher;
    s->started = ekg_clock_unix_s();
    s->metrics_only = metrics_only;
    atomic_init(&s->quiet, opts && opts->optional);
    if ((err = parse_listen(flag, listen, &ss, &sslen, diag)) != EKG_OK)
        goto out;
    if (!metrics_only && !is_loopback(&ss))
        ekg_warn("debug server on a non-loopback address: anyone who reaches address=%s sees every Service, "
                 "endpoint, Node and client; for probes and Prometheus use --metrics-listen instead",
                 listen);
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The port argument only names the port in libmicrohttpd's messages: MHD_OPTION_SOCK_ADDR is bound. The
     * logger comes first, so that messages about the other options reach it too. */
    uint16_t port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    s->daemon =
        MHD_start_daemon(flags, port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                         MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned int)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned int)CONNECTION_TIMEOUT, MHD_OPTION_END);
    if (!s->daemon) {
        err = ekg_diag_set(diag, EKG_EIO, "%s server: cannot listen on %s (see the log above)",
                           metrics_only ? "metrics" : "debug", listen);
        goto out;
    }
    atomic_store(&s->quiet, false);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? (int)info->port : 0;
    *out = s;
    s = NULL;
out:
    ekg_debug_server_stop(s);
    return err;
}

int ekg_debug_server_port(const ekg_debug_server_t *s)
{
    return s->port;
}

void ekg_debug_server_stop(ekg_debug_server_t *s)
{
    if (!s)
        return;
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    free(s->source_desc);
    free(s);
}
