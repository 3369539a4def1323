/*
 * src/watch/watcher.c: the Kubernetes watcher (include/ekglue/watch.h): list, watch, and apply to a sink.
 *
 * Streams. Each (resource, namespace) pair is one stream: Services and EndpointSlices once per watched
 * namespace (or once for all), Nodes once. A stream is a small state machine over one curl easy handle:
 *
 *     LIST page 1 ... page n (limit/continue, all at page 1's resourceVersion)
 *       -> apply: put what is new or whose resourceVersion changed; at the end remove what the list lacked
 *       -> WATCH ?watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=N
 *            each event: ADDED/MODIFIED put, DELETED remove, BOOKMARK only moves RV, ERROR 410 -> LIST
 *            normal end (timeoutSeconds) -> WATCH again from the last RV, at once
 *       -> on failure: WAIT (exponential backoff, full jitter), then WATCH from the last RV (LIST if never
 * listed)
 *
 * HTTP 410 (on a watch, or on a list's continue token) and an ERROR event with code 410 relist at once; 401
 * re-reads the token and retries (after a backoff if the token did not change); 5xx, connection errors, and
 * the idle timeout (CURLOPT_LOW_SPEED_*: not one byte for idle_timeout_s, bookmarks included) back off. What
 * a stream knows is a map key -> resourceVersion, so a relist puts nothing for unchanged objects and removes
 * only what a complete list lacks: nothing is ever removed because the API is down.
 *
 * One curl multi handle drives every stream on one thread (HTTP/2 multiplexes them over one connection when
 * the server offers it, CURLOPT_PIPEWAIT). The loop sleeps in curl_multi_poll() until a socket is ready or
 * the nearest timer (the publish deadline, a backoff's end, a staleness log, curl's own timers): no busy
 * polling. ekg_watcher_stop() sets a flag and wakes it with curl_multi_wakeup().
 *
 * Every object put or removed goes to the sink (src/watch/sink.c), which coalesces and publishes: the watcher
 * sets the sink's coalescing from its options, tells it when every stream has listed once (the first sync),
 * wakes for its deadline, and calls ekg_sink_flush() each round, where a config handed to the sink is
 * switched on this thread. Every watch event applied is counted in the metrics (include/ekglue/metrics.h).
 *
 * The same code runs once (ekg_watcher_list_once, for `ekglue dump`): no thread, streams stop after their
 * first complete list, and the first failure (other than a list starting over or a renewed token) ends it.
 *
 * Thread: the watcher's own thread runs everything but start, stop and status. The status fields of each
 * stream (stream_t.pub) are written by the watcher thread and read by ekg_watcher_status() under w->lock;
 * nothing else is shared. Design note: docs/internals/watcher.md.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "common/map.h"
#include "ekglue/clock.h"
#include "ekglue/mem.h"
#include "ekglue/log.h"
#include "ekglue/metrics.h"
#include "ekglue/translate.h"
#include "ekglue/watch.h"
#include "watch/event_stream.h"

#define MAX_LIST_BODY      ((size_t)512 << 20) /* one list page; beyond it the page fails */
#define MAX_ERROR_BODY     4096                /* what is kept of a non-200 body, for the message */
#define STALE_LOG_AFTER_MS 30000               /* a resource failing this long is logged at info... */
#define STALE_LOG_EVERY_MS 30000               /* ...this often */
#define QUICK_END_MS       500                 /* a watch ending this fast without an event is backed off */
#define LIST_ONLY_RETRIES  5                   /* running once: 410 restarts and 401 retries */
#define IDLE_WAKEUP_MS     60000               /* the longest sleep when no timer is due */

static const char *const RESOURCE_NAMES[EKG_KUBE__COUNT] = {"services", "endpointslices", "nodes"};
static const char *const RESOURCE_PREFIX[EKG_KUBE__COUNT] = {"/api/v1", "/apis/discovery.k8s.io/v1",
                                                             "/api/v1"};
static const char *const EVENT_TYPES[4] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK"};

typedef enum {
    PHASE_START, /* nothing done yet: list when the loop comes by */
    PHASE_LIST,  /* a list page is in flight */
    PHASE_WATCH, /* a watch is in flight */
    PHASE_WAIT,  /* backing off until retry_at */
    PHASE_DONE   /* running once: the list is complete */
} phase_t;

/* Why the write callback ended a transfer (it returns 0, curl reports CURLE_WRITE_ERROR). */
typedef enum { ABORT_NONE = 0, ABORT_TOO_OLD, ABORT_FAILED } abort_t;

/* One object a stream knows: its key ("ns/name", or "name" for Nodes) and last seen resourceVersion. */
typedef struct known {
    char *rv;     /* owned */
    unsigned gen; /* the list generation that last saw it */
    char key[];   /* the map's key */
} known_t;

/* What ekg_watcher_status() reports of a stream; written by the watcher thread under w->lock. */
typedef struct stream_pub {
    bool listed;
    long long last_success_ms; /* -1: never */
    char rv[32];
    char last_error[256];
    unsigned long long events[4], relists, reconnects, too_old;
} stream_pub_t;

typedef struct growbuf {
    char *data; /* owned, NUL-terminated when non-NULL */
    size_t len, cap;
} growbuf_t;

typedef struct stream {
    struct ekg_watcher *w;
    ekg_kube_resource_t res;
    const char *ns;  /* borrowed from w->namespaces; NULL: all namespaces (or cluster-scoped) */
    char label[128]; /* "services" or "services/shop", for logs */
    phase_t phase;
    bool listed;    /* a complete list has been applied */
    bool next_list; /* in PHASE_WAIT: list (rather than watch) when the wait is over */
    char *rv;       /* owned: the last seen resourceVersion (the watch resumes from it); NULL before a list */
    ekg_map_t known;  /* key -> known_t (owned) */
    unsigned gen;     /* the current list's generation */
    char *list_rv;    /* owned: the current list's resourceVersion (page 1's) */
    char *cont;       /* owned: the continue token of the next page, or NULL */
    size_t list_seen; /* objects in the current list */
    size_t list_changed;
    int list_retries; /* running once */

    CURL *easy;              /* owned; reused by every request of the stream */
    unsigned long token_gen; /* the connection's token generation when the current request was prepared */
    struct curl_slist *headers;
    bool in_multi;
    long long started_ms;
    size_t nevents;           /* events handled in the current watch */
    long long last_byte_ms;   /* when a body byte last arrived (0: never) */
    ekg_event_stream_t lines; /* watch body */
    growbuf_t body;           /* list body, or the body of a non-200 answer */
    abort_t abort;
    char abort_msg[256];
    char errbuf[CURL_ERROR_SIZE];

    int failures;            /* consecutive; drives the backoff */
    int quick_too_old;       /* consecutive 410s without an event in between */
    long long retry_at;      /* PHASE_WAIT */
    long long failing_since; /* 0: healthy */
    stream_pub_t pub;        /* guarded by w->lock */
} stream_t;

struct ekg_watcher {
    ekg_kube_conn_t *conn;    /* borrowed */
    ekg_watch_options_t opts; /* defaults filled in; namespaces and selector point into the copies below */
    char **namespaces;        /* owned copies */
    char *selector;           /* owned copy or NULL */
    ekg_sink_t *sink;         /* borrowed: where objects go */
    bool once;                /* ekg_watcher_list_once: no thread, stop after the first list */
    ekg_err_t fatal;          /* running once: the first failure ends the run */
    ekg_diag_t *diag;

    CURLM *multi;
    stream_t *streams;
    size_t nstreams;
    curl_socket_t *sockets; /* owned: libcurl's open sockets (open_socket, close_socket) */
    size_t nsockets, csockets;

    bool synced; /* every stream has listed once, and the sink was told */
    long long stale_log_at[EKG_KUBE__COUNT];
    uint64_t rng;

    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    pthread_mutex_t lock; /* guards every stream's pub */
};

/* --- small helpers -------------------------------------------------------------------------------------- */

/* Percent-encodes everything but RFC 3986's unreserved characters. Owned by the caller. */
static char *url_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = ekg_xmalloc(strlen(s) * 3 + 1), *p = out;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
            *c == '.' || *c == '_' || *c == '~') {
            *p++ = (char)*c;
        } else {
            *p++ = '%';
            *p++ = hex[*c >> 4];
            *p++ = hex[*c & 15];
        }
    }
    *p = '\0';
    return out;
}

static void growbuf_append(growbuf_t *b, const char *data, size_t len)
{
    void *d = b->data;
    ekg_array_reserve(&d, &b->cap, b->len + len + 1, 1);
    b->data = d;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

static const char *json_string(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A random delay for the n-th consecutive failure: uniform in [initial, min(max, initial * 2^(n-1))]. */
static int backoff_ms(ekg_watcher_t *w, int failures)
{
    long long cap = w->opts.backoff_initial_ms;
    for (int i = 1; i < failures && cap < w->opts.backoff_max_ms; i++)
        cap *= 2;
    if (cap > w->opts.backoff_max_ms)
        cap = w->opts.backoff_max_ms;
    /* xorshift64*: the jitter only has to differ between replicas and streams, not be unpredictable. */
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    uint64_t r = w->rng * 0x2545F4914F6CDD1DULL;
    long long span = cap - w->opts.backoff_initial_ms + 1;
    return (int)(w->opts.backoff_initial_ms + (long long)(r % (uint64_t)(span > 0 ? span : 1)));
}

/* --- status --------------------------------------------------------------------------------------------- */

static void set_error(stream_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(stream_t *s, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ekg_warn("kubernetes %s failed resource=%s error=\"%s\"", s->phase == PHASE_LIST ? "list" : "watch",
             s->label, msg);
    pthread_mutex_lock(&s->w->lock);
    snprintf(s->pub.last_error, sizeof(s->pub.last_error), "%s", msg);
    pthread_mutex_unlock(&s->w->lock);
    if (!s->failing_since)
        s->failing_since = ekg_clock_ms();
    if (s->w->once && !s->w->fatal) /* running once: the first failure is the answer */
        s->w->fatal = ekg_diag_set(s->w->diag, EKG_EIO, "%s: %s", s->label, msg);
}

/* Something worked: a list page, an event, a normal end of a watch. */
static void mark_success(stream_t *s)
{
    s->failures = 0;
    s->failing_since = 0;
    pthread_mutex_lock(&s->w->lock);
    s->pub.last_success_ms = ekg_clock_ms();
    s->pub.last_error[0] = '\0';
    if (s->rv)
        snprintf(s->pub.rv, sizeof(s->pub.rv), "%s", s->rv);
    s->pub.listed = s->listed;
    pthread_mutex_unlock(&s->w->lock);
}

static void count(stream_t *s, unsigned long long *counter)
{
    pthread_mutex_lock(&s->w->lock);
    (*counter)++;
    pthread_mutex_unlock(&s->w->lock);
}

static void set_rv(stream_t *s, const char *rv)
{
    if (!rv || !rv[0] || (s->rv && strcmp(s->rv, rv) == 0))
        return;
    free(s->rv);
    s->rv = ekg_xstrdup(rv);
}

/* --- applying objects ----------------------------------------------------------------------------------- */

/* Parses obj (ns/name) and hands it to the sink. false: invalid, logged and reported to the sink as skipped.
 */
static bool put_object(stream_t *s, const cJSON *obj, const char *ns, const char *name)
{
    ekg_watcher_t *w = s->w;
    ekg_diag_t diag = {{0}};
    ekg_err_t err;
    void *parsed = NULL;
    switch (s->res) {
    case EKG_KUBE_SERVICES:
        err = ekg_service_from_json(obj, (ekg_service_t **)&parsed, &diag);
        break;
    case EKG_KUBE_ENDPOINT_SLICES:
        err = ekg_endpoint_slice_from_json(obj, (ekg_endpoint_slice_t **)&parsed, &diag);
        break;
    default:
        err = ekg_node_from_json(obj, (ekg_node_t **)&parsed, &diag);
        break;
    }
    if (err) {
        ekg_warn("kubernetes object skipped resource=%s error=\"%s\"", s->label,
                 diag.msg[0] ? diag.msg : ekg_strerror(err));
        ekg_sink_skipped(w->sink, s->res, ns, name);
        return false;
    }
    if (s->res == EKG_KUBE_SERVICES)
        ekg_sink_put_service(w->sink, parsed);
    else if (s->res == EKG_KUBE_ENDPOINT_SLICES)
        ekg_sink_put_slice(w->sink, parsed);
    else
        ekg_sink_put_node(w->sink, parsed);
    return true;
}

/* The key of an object ("ns/name" or "name") into buf; false when it has no name. */
static bool object_key(const cJSON *obj, char *buf, size_t size, const char **ns, const char **name,
                       const char **rv)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    *name = json_string(meta, "name");
    *ns = json_string(meta, "namespace");
    *rv = json_string(meta, "resourceVersion");
    if (!*ns)
        *ns = "";
    if (!*rv)
        *rv = "";
    if (!*name || !**name)
        return false;
    int n = (*ns)[0] ? snprintf(buf, size, "%s/%s", *ns, *name) : snprintf(buf, size, "%s", *name);
    return n > 0 && (size_t)n < size;
}

/*
 * An object that exists (a list item, ADDED, MODIFIED): put unless its resourceVersion is the one already
 * known. A resourceVersion is recorded only once the sink took the object: an invalid one is logged and
 * skipped, the sink keeps the last valid version (if any, and a complete list does not remove it), and the
 * next list or event reads the object again rather than taking the skipped version as applied.
 */
static void apply_object(stream_t *s, const cJSON *obj)
{
    char key[512];
    const char *ns, *name, *rv;
    if (!object_key(obj, key, sizeof(key), &ns, &name, &rv)) {
        ekg_warn("kubernetes object without a usable metadata.name skipped resource=%s", s->label);
        return;
    }
    s->list_seen += s->phase == PHASE_LIST;
    known_t *k = ekg_map_get(&s->known, key);
    if (k && rv[0] && strcmp(k->rv, rv) == 0) {
        k->gen = s->gen;
        return;
    }
    if (k)
        k->gen = s->gen; /* listed: a last valid version stays, even if this one is not taken */
    if (!put_object(s, obj, ns, name))
        return; /* its resourceVersion is not recorded: the next list or event reads it again */
    if (!k) {
        size_t klen = strlen(key);
        k = ekg_xmalloc(sizeof(*k) + klen + 1);
        ekg_map_put(&s->known, memcpy(k->key, key, klen + 1), k, NULL);
        k->rv = NULL;
    }
    free(k->rv);
    k->rv = ekg_xstrdup(rv);
    k->gen = s->gen;
    s->list_changed += s->phase == PHASE_LIST;
}

static void remove_known(stream_t *s, known_t *k)
{
    const char *slash = strchr(k->key, '/');
    if (s->res == EKG_KUBE_NODES || !slash) {
        ekg_sink_remove(s->w->sink, EKG_KUBE_NODES, "", k->key);
    } else {
        char ns[256];
        snprintf(ns, sizeof(ns), "%.*s", (int)(slash - k->key), k->key);
        ekg_sink_remove(s->w->sink, s->res, ns, slash + 1);
    }
    ekg_map_remove(&s->known, k->key);
    free(k->rv);
    free(k);
}

static void apply_deleted(stream_t *s, const cJSON *obj)
{
    char key[512];
    const char *ns, *name, *rv;
    if (!object_key(obj, key, sizeof(key), &ns, &name, &rv))
        return;
    known_t *k = ekg_map_get(&s->known, key);
    if (k)
        remove_known(s, k);
}

/* After the last page: whatever the list did not contain is gone. Returns how many were removed. */
static size_t remove_unlisted(stream_t *s)
{
    size_t n = 0, cap = 0;
    known_t **gone = NULL;
    for (size_t i = 0; i < s->known.cap; i++) {
        known_t *k = s->known.slots[i].key ? s->known.slots[i].value : NULL;
        if (!k || k->gen == s->gen)
            continue;
        EKG_ARRAY_PUSH(gone, n, cap, k);
    }
    for (size_t i = 0; i < n; i++)
        remove_known(s, gone[i]);
    free(gone);
    return n;
}

/* --- connections ---------------------------------------------------------------------------------------- */

/* libcurl opens and closes its sockets through these two (on the watcher's thread), so that drop_if_dead()
 * can find the socket of a connection. */
static curl_socket_t open_socket(void *ctx, curlsocktype purpose, struct curl_sockaddr *a)
{
    ekg_watcher_t *w = ctx;
    (void)purpose;
    curl_socket_t fd = socket(a->family, a->socktype, a->protocol);
    if (fd != CURL_SOCKET_BAD)
        EKG_ARRAY_PUSH(w->sockets, w->nsockets, w->csockets, fd);
    return fd;
}

static int close_socket(void *ctx, curl_socket_t fd)
{
    ekg_watcher_t *w = ctx;
    for (size_t i = 0; i < w->nsockets; i++)
        if (w->sockets[i] == fd) {
            w->sockets[i] = w->sockets[--w->nsockets];
            break;
        }
    return close(fd);
}

/*
 * A transfer of s timed out. Over HTTP/2 its connection may be dead, and libcurl does not close a multiplexed
 * connection when one of its streams fails: each retry would be multiplexed onto it again and time out in
 * turn, for as long as the kernel keeps the socket (forever, if the peer's kernel still acknowledges). So
 * unless another stream on the same connection (the same local port) got a byte within the idle timeout, its
 * socket is shut down: every transfer on it fails at once and the retries open a new connection. A watch that
 * stalls on a connection whose other streams talk (a problem of that watch) leaves the connection alone.
 */
static void drop_if_dead(stream_t *s)
{
    ekg_watcher_t *w = s->w;
    long port = 0;
    if (curl_easy_getinfo(s->easy, CURLINFO_LOCAL_PORT, &port) != CURLE_OK || port <= 0)
        return;
    long long quiet_since = ekg_clock_ms() - (long long)w->opts.idle_timeout_s * 1000;
    for (size_t i = 0; i < w->nstreams; i++) {
        stream_t *o = &w->streams[i];
        long p = 0;
        if (o != s && o->in_multi && o->last_byte_ms >= quiet_since &&
            curl_easy_getinfo(o->easy, CURLINFO_LOCAL_PORT, &p) == CURLE_OK && p == port)
            return; /* the connection talks */
    }
    for (size_t i = 0; i < w->nsockets; i++) {
        struct sockaddr_storage a;
        socklen_t len = sizeof(a);
        if (getsockname(w->sockets[i], (struct sockaddr *)&a, &len) != 0)
            continue;
        long p = a.ss_family == AF_INET    ? ntohs(((struct sockaddr_in *)&a)->sin_port)
                 : a.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&a)->sin6_port)
                                           : -1;
        if (p == port) {
            ekg_warn("kubernetes connection silent for %ds, closing it local_port=%ld resource=%s",
                     w->opts.idle_timeout_s, port, s->label);
            shutdown(w->sockets[i], SHUT_RDWR);
        }
    }
}

/* --- requests ------------------------------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg);

/* The path and query of the stream's next request. Owned by the caller. */
static char *request_path(stream_t *s, bool list)
{
    ekg_watcher_t *w = s->w;
    char *ns = s->ns ? url_escape(s->ns) : NULL;
    char *sel = s->res == EKG_KUBE_SERVICES && w->selector ? url_escape(w->selector) : NULL;
    char *tok = list && s->cont ? url_escape(s->cont) : NULL;
    char *rv = !list && s->rv ? url_escape(s->rv) : NULL;
    char *path = NULL;
    char scope[300] = "";
    if (ns)
        snprintf(scope, sizeof(scope), "/namespaces/%s", ns);
    char selq[16] = "";
    if (sel)
        snprintf(selq, sizeof(selq), "&labelSelector=");
    if (list)
        path =
            ekg_xasprintf("%s%s/%s?limit=%d%s%s%s%s", RESOURCE_PREFIX[s->res], scope, RESOURCE_NAMES[s->res],
                          w->opts.page_limit, tok ? "&continue=" : "", tok ? tok : "", selq, sel ? sel : "");
    else
        path =
            ekg_xasprintf("%s%s/%s?watch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%d%s%s",
                          RESOURCE_PREFIX[s->res], scope, RESOURCE_NAMES[s->res], rv ? rv : "",
                          w->opts.watch_timeout_s, selq, sel ? sel : "");
    free(ns);
    free(sel);
    free(tok);
    free(rv);
    return path;
}

static void schedule_retry(stream_t *s, bool list, bool failure);

/* Starts a list page (s->cont set: the next page) or a watch. A failure to start schedules a retry. */
static void start_request(stream_t *s, bool list)
{
    ekg_watcher_t *w = s->w;
    ekg_diag_t diag = {{0}};
    char *path = request_path(s, list);
    s->phase = list ? PHASE_LIST : PHASE_WATCH;
    curl_easy_reset(s->easy);
    curl_slist_free_all(s->headers);
    s->headers = NULL;
    ekg_err_t err = ekg_kube_conn_prepare(w->conn, s->easy, path, &s->headers, &diag);
    s->token_gen = ekg_kube_conn_token_generation(w->conn); /* the token this request carries */
    if (err) {
        set_error(s, "%s", diag.msg[0] ? diag.msg : ekg_strerror(err));
        free(path);
        schedule_retry(s, list, true);
        return;
    }
    ekg_debug("kubernetes request resource=%s path=\"%s\"", s->label, path);
    free(path);
    long idle = w->opts.idle_timeout_s;
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(s->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(s->easy, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(s->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(s->easy, CURLOPT_TCP_KEEPIDLE, idle < 30 ? idle : 30L);
    curl_easy_setopt(s->easy, CURLOPT_TCP_KEEPINTVL, idle < 10 ? idle : 10L);
    curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, idle * 1000 < 10000 ? idle * 1000 : 10000L);
    curl_easy_setopt(s->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);  /* the idle timeout: */
    curl_easy_setopt(s->easy, CURLOPT_LOW_SPEED_TIME, idle); /* under 1 byte/s for idle seconds */
    curl_easy_setopt(s->easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(s->easy, CURLOPT_OPENSOCKETDATA, w);
    curl_easy_setopt(s->easy, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    curl_easy_setopt(s->easy, CURLOPT_CLOSESOCKETDATA, w);
    s->errbuf[0] = '\0';
    s->body.len = 0;
    ekg_event_stream_reset(&s->lines);
    s->abort = ABORT_NONE;
    s->abort_msg[0] = '\0';
    s->nevents = 0;
    s->started_ms = ekg_clock_ms();
    CURLMcode mc = curl_multi_add_handle(w->multi, s->easy);
    if (mc != CURLM_OK) {
        set_error(s, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
        schedule_retry(s, list, true);
        return;
    }
    s->in_multi = true;
}

/* Starts a list from its first page. */
static void start_list(stream_t *s)
{
    free(s->cont);
    free(s->list_rv);
    s->cont = s->list_rv = NULL;
    s->gen++;
    s->list_seen = s->list_changed = 0;
    if (s->listed)
        count(s, &s->pub.relists);
    start_request(s, true);
}

/* Waits, then lists (list, or the stream never listed) or watches from the last RV. */
static void schedule_retry(stream_t *s, bool list, bool failure)
{
    if (s->w->once) { /* running once: no second chances here */
        s->phase = PHASE_DONE;
        return;
    }
    s->failures++;
    int delay = backoff_ms(s->w, s->failures);
    s->phase = PHASE_WAIT;
    s->next_list = list || !s->listed;
    s->retry_at = ekg_clock_ms() + delay;
    if (failure)
        ekg_debug("kubernetes retry resource=%s in_ms=%d attempt=%d next=%s", s->label, delay, s->failures,
                  s->next_list ? "list" : "watch");
}

/* --- what arrives -----------------------------------------------------------------------------------------
 */

/* One watch event. false: the transfer is to end (s->abort says why). */
static bool handle_event(stream_t *s, char *line, size_t len)
{
    cJSON *ev = cJSON_ParseWithLength(line, len);
    const char *type = json_string(ev, "type");
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(ev, "object");
    bool ok = true;
    if (!ev || !type || !cJSON_IsObject(obj)) {
        s->abort = ABORT_FAILED;
        snprintf(s->abort_msg, sizeof(s->abort_msg), "malformed watch event (%zu bytes)", len);
        ok = false;
        goto out;
    }
    if (strcmp(type, "ERROR") == 0) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(obj, "code");
        const char *msg = json_string(obj, "message");
        s->abort = cJSON_IsNumber(code) && code->valueint == 410 ? ABORT_TOO_OLD : ABORT_FAILED;
        snprintf(s->abort_msg, sizeof(s->abort_msg), "watch ERROR event: code %d: %s",
                 cJSON_IsNumber(code) ? code->valueint : 0, msg ? msg : "(no message)");
        ok = false;
        goto out;
    }
    int i = 0;
    while (i < 4 && strcmp(type, EVENT_TYPES[i]) != 0)
        i++;
    if (i == 4) {
        ekg_warn("kubernetes watch event of unknown type ignored resource=%s type=\"%.32s\"", s->label, type);
        goto out;
    }
    if (i == 0 || i == 1)
        apply_object(s, obj);
    else if (i == 2)
        apply_deleted(s, obj);
    set_rv(s, json_string(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "resourceVersion"));
    s->nevents++;
    s->quick_too_old = 0;
    count(s, &s->pub.events[i]);
    ekg_metrics_kube_event(s->res, (ekg_kube_event_t)i);
    mark_success(s);
out:
    cJSON_Delete(ev);
    return ok;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    stream_t *s = arg;
    size_t n = size * nmemb;
    s->last_byte_ms = ekg_clock_ms();
    long code = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200 || s->phase == PHASE_LIST) {
        size_t limit = code == 200 ? MAX_LIST_BODY : MAX_ERROR_BODY;
        size_t take = s->body.len + n > limit ? limit - s->body.len : n;
        if (code == 200 && take < n) {
            s->abort = ABORT_FAILED;
            snprintf(s->abort_msg, sizeof(s->abort_msg), "list page larger than %zu bytes", limit);
            return 0;
        }
        growbuf_append(&s->body, data, take);
        return n;
    }
    ekg_err_t err = ekg_event_stream_feed(&s->lines, data, n);
    for (;;) {
        char *line;
        size_t len;
        if (!err)
            err = ekg_event_stream_next(&s->lines, &line, &len);
        if (err) {
            s->abort = ABORT_FAILED;
            snprintf(s->abort_msg, sizeof(s->abort_msg), "%s",
                     err == EKG_ERANGE ? "watch event larger than the bound (64 MiB)" : ekg_strerror(err));
            return 0;
        }
        if (!line)
            return n;
        if (!handle_event(s, line, len))
            return 0;
    }
}

/* A 200 list page: apply its items, then the next page, or the end of the list. */
static void handle_list_page(stream_t *s)
{
    ekg_watcher_t *w = s->w;
    cJSON *list = cJSON_ParseWithLength(s->body.data ? s->body.data : "", s->body.len);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(list, "items");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(list, "metadata");
    const char *rv = json_string(meta, "resourceVersion"), *cont = json_string(meta, "continue");
    if (!list || (!cJSON_IsArray(items) && !cJSON_IsNull(items) && items) || !rv) {
        set_error(s, "list answer is not a List with metadata.resourceVersion (%zu bytes)", s->body.len);
        cJSON_Delete(list);
        schedule_retry(s, true, true);
        return;
    }
    if (!s->list_rv)
        s->list_rv = ekg_xstrdup(rv);
    free(s->cont);
    s->cont = cont && cont[0] ? ekg_xstrdup(cont) : NULL;
    const cJSON *item;
    cJSON_ArrayForEach(item, items)
    {
        if (cJSON_IsObject(item))
            apply_object(s, item);
    }
    cJSON_Delete(list);
    if (s->cont) {
        start_request(s, true);
        return;
    }

    /* The list is complete. */
    size_t removed = remove_unlisted(s);
    bool first = !s->listed;
    set_rv(s, s->list_rv);
    s->listed = true;
    mark_success(s);
    if (first)
        ekg_info("kubernetes listed resource=%s objects=%zu resource_version=%s", s->label, s->list_seen,
                 s->list_rv);
    else
        ekg_info("kubernetes relisted resource=%s objects=%zu changed=%zu removed=%zu resource_version=%s",
                 s->label, s->list_seen, s->list_changed, removed, s->list_rv);
    if (w->once) {
        s->phase = PHASE_DONE;
        return;
    }
    start_request(s, false);
}

static const char *status_message(stream_t *s)
{
    static __thread char msg[200];
    cJSON *st = cJSON_ParseWithLength(s->body.data ? s->body.data : "", s->body.len);
    const char *m = json_string(st, "message");
    if (m) {
        snprintf(msg, sizeof(msg), "%s", m);
    } else {
        snprintf(msg, sizeof(msg), "%.100s", s->body.data ? s->body.data : "");
        for (char *p = msg; *p; p++)
            if (*p == '\n' || *p == '\r' || *p == '"')
                *p = ' ';
    }
    cJSON_Delete(st);
    return msg;
}

/* A transfer ended: decide what the stream does next. */
static void transfer_done(stream_t *s, CURLcode result)
{
    ekg_watcher_t *w = s->w;
    long code = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(w->multi, s->easy);
    s->in_multi = false;
    curl_slist_free_all(s->headers);
    s->headers = NULL;
    bool list = s->phase == PHASE_LIST;
    const char *what = list ? "list" : "watch";

    if (s->abort == ABORT_TOO_OLD || (code == 410 && !(list && !s->cont))) {
        /* Too old: a 410 ERROR event, a 410 answer to a watch, or an expired continue token. */
        count(s, &s->pub.too_old);
        ekg_info("kubernetes %s too old, relisting resource=%s resource_version=%s", what, s->label,
                 list ? "(continue)" : (s->rv ? s->rv : ""));
        if (w->once && ++s->list_retries > LIST_ONLY_RETRIES) {
            set_error(s, "the list kept expiring (410 Gone)");
            s->phase = PHASE_DONE;
        } else if (!list && ++s->quick_too_old > 1) {
            schedule_retry(s, true, false); /* a 410 right after a relist: do not spin */
        } else {
            start_list(s);
        }
        return;
    }
    if (s->abort == ABORT_FAILED) {
        set_error(s, "%s", s->abort_msg);
        schedule_retry(s, list, true);
        return;
    }
    if (result != CURLE_OK) {
        count(s, &s->pub.reconnects);
        if (result == CURLE_OPERATION_TIMEDOUT && code == 200)
            set_error(s, "no bytes for %ds (idle timeout): %s", w->opts.idle_timeout_s, s->errbuf);
        else
            set_error(s, "%s: %s", curl_easy_strerror(result), s->errbuf[0] ? s->errbuf : "-");
        if (result == CURLE_OPERATION_TIMEDOUT)
            drop_if_dead(s);
        schedule_retry(s, list, true);
        return;
    }
    if (code == 200) {
        if (list) {
            handle_list_page(s);
            return;
        }
        if (ekg_event_stream_pending(&s->lines))
            ekg_debug("kubernetes watch ended mid-event resource=%s pending=%zu", s->label,
                      ekg_event_stream_pending(&s->lines));
        if (s->nevents == 0 && ekg_clock_ms() - s->started_ms < QUICK_END_MS) {
            schedule_retry(s, false, false); /* ended at once, without a word: do not spin */
            return;
        }
        s->quick_too_old = 0;
        mark_success(s);
        ekg_debug("kubernetes watch ended, resuming resource=%s resource_version=%s events=%zu", s->label,
                  s->rv ? s->rv : "", s->nevents);
        start_request(s, false);
        return;
    }
    if (code == 401) {
        /* Another stream may have found the new token already; else re-read it now. */
        bool renewed =
            ekg_kube_conn_token_generation(w->conn) != s->token_gen || ekg_kube_conn_reload_token(w->conn);
        set_error(s, "HTTP 401 Unauthorized%s: %s", renewed ? " (token re-read, retrying)" : "",
                  status_message(s));
        if (renewed && w->once && ++s->list_retries <= LIST_ONLY_RETRIES) {
            w->fatal = EKG_OK; /* list-only mode: a changed token is worth one more try */
            start_list(s);
        } else if (renewed) {
            if (list || !s->listed)
                start_list(s);
            else
                start_request(s, false);
        } else {
            schedule_retry(s, list, true);
        }
        return;
    }
    set_error(s, "%s: HTTP %ld: %s", what, code, status_message(s));
    if (code >= 500 || code == 429 || code == 0)
        count(s, &s->pub.reconnects);
    schedule_retry(s, list, true);
}

/* --- syncing ------------------------------------------------------------------------------------------- */

/* The first time every stream has listed: the sink publishes now (and tells the caller once a snapshot is
 * taken: health turns SERVING then, never with an empty cache because the first translation failed). */
static void check_first_sync(ekg_watcher_t *w)
{
    if (w->synced)
        return;
    for (size_t i = 0; i < w->nstreams; i++)
        if (!w->streams[i].listed)
            return;
    w->synced = true;
    ekg_info("kubernetes synced streams=%zu", w->nstreams);
    ekg_sink_synced(w->sink);
}

/* Logs (at info, every STALE_LOG_EVERY_MS) each resource that has been failing for STALE_LOG_AFTER_MS. */
static long long check_staleness(ekg_watcher_t *w, long long now)
{
    long long next = -1;
    for (int r = 0; r < EKG_KUBE__COUNT; r++) {
        long long since = 0, last_ok = -1;
        const char *err = "";
        for (size_t i = 0; i < w->nstreams; i++) {
            stream_t *s = &w->streams[i];
            if (s->res != (ekg_kube_resource_t)r)
                continue;
            if (s->failing_since && (!since || s->failing_since < since)) {
                since = s->failing_since;
                err = s->pub.last_error; /* read on the only thread that writes it */
            }
            if (s->pub.last_success_ms > last_ok)
                last_ok = s->pub.last_success_ms;
        }
        if (!since)
            continue;
        long long due = since + STALE_LOG_AFTER_MS;
        if (due < w->stale_log_at[r])
            due = w->stale_log_at[r];
        if (now >= due) {
            ekg_info("kubernetes data stale resource=%s failing_for_s=%lld last_success_age_s=%lld "
                     "last_error=\"%s\"",
                     RESOURCE_NAMES[r], (now - since) / 1000, last_ok < 0 ? -1 : (now - last_ok) / 1000, err);
            w->stale_log_at[r] = due = now + STALE_LOG_EVERY_MS;
        }
        if (next < 0 || due < next)
            next = due;
    }
    return next;
}

/* --- the loop ------------------------------------------------------------------------------------------- */

/* Starts the streams whose wait is over (or that never started). */
static void start_due(ekg_watcher_t *w, long long now)
{
    for (size_t i = 0; i < w->nstreams; i++) {
        stream_t *s = &w->streams[i];
        if (s->phase == PHASE_START) {
            start_list(s);
        } else if (s->phase == PHASE_WAIT && now >= s->retry_at) {
            if (s->next_list)
                start_list(s);
            else
                start_request(s, false);
        }
    }
}

static bool all_done(const ekg_watcher_t *w)
{
    for (size_t i = 0; i < w->nstreams; i++)
        if (w->streams[i].phase != PHASE_DONE)
            return false;
    return true;
}

/* The nearest of our timers: a backoff's end, the sink's publish deadline, a staleness log (-1: none). */
static long long next_timer(ekg_watcher_t *w, long long now)
{
    long long next = -1;
    for (size_t i = 0; i < w->nstreams; i++) {
        const stream_t *s = &w->streams[i];
        if (s->phase == PHASE_WAIT && (next < 0 || s->retry_at < next))
            next = s->retry_at;
    }
    if (w->once)
        return next;
    long long publish_at = ekg_sink_deadline(w->sink);
    if (publish_at >= 0 && (next < 0 || publish_at < next))
        next = publish_at;
    long long stale = check_staleness(w, now);
    if (stale >= 0 && (next < 0 || stale < next))
        next = stale;
    return next;
}

/* One round: start what is due, let the sink publish what is due, let curl work, sleep until the next thing.
 */
static void run_once(ekg_watcher_t *w)
{
    start_due(w, ekg_clock_ms());
    if (!w->once)
        ekg_sink_flush(w->sink);
    int running = 0;
    curl_multi_perform(w->multi, &running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(w->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        CURLcode result = msg->data.result;
        transfer_done((stream_t *)(void *)priv, result); /* msg is invalid from here on */
    }
    if (!w->once)
        check_first_sync(w);
    else if (w->fatal || all_done(w))
        return;
    /* Transfers started above are due at once: curl_multi_poll() honours curl's own (zero) timeout. */
    long long now = ekg_clock_ms(), next = next_timer(w, now);
    long long timeout = next < 0 ? IDLE_WAKEUP_MS : next - now;
    if (timeout < 0)
        timeout = 0;
    if (timeout > IDLE_WAKEUP_MS)
        timeout = IDLE_WAKEUP_MS;
    curl_multi_poll(w->multi, NULL, 0, (int)timeout, NULL);
}

/* The sink's driver: ekg_sink_set_config() wakes the loop this way. */
static void wake(void *ctx)
{
    ekg_watcher_t *w = ctx;
    curl_multi_wakeup(w->multi);
}

static void *thread_main(void *arg)
{
    ekg_watcher_t *w = arg;
    while (!atomic_load(&w->stop))
        run_once(w);
    ekg_sink_set_driver(w->sink, NULL, NULL); /* a config handed in from now on is switched by its caller */
    return NULL;
}

/* --- lifecycle ------------------------------------------------------------------------------------------ */

static void watcher_free(ekg_watcher_t *w)
{
    if (!w)
        return;
    for (size_t i = 0; w->streams && i < w->nstreams; i++) {
        stream_t *s = &w->streams[i];
        if (s->in_multi)
            curl_multi_remove_handle(w->multi, s->easy);
        if (s->easy)
            curl_easy_cleanup(s->easy);
        curl_slist_free_all(s->headers);
        for (size_t j = 0; j < s->known.cap; j++) {
            known_t *k = s->known.slots[j].key ? s->known.slots[j].value : NULL;
            if (k) {
                free(k->rv);
                free(k);
            }
        }
        ekg_map_clear(&s->known);
        ekg_event_stream_free(&s->lines);
        free(s->body.data);
        free(s->rv);
        free(s->list_rv);
        free(s->cont);
    }
    free(w->streams);
    if (w->multi)
        curl_multi_cleanup(w->multi); /* closes the connections: close_socket() still needs w->sockets */
    free(w->sockets);
    for (size_t i = 0; w->namespaces && i < w->opts.nnamespaces; i++)
        free(w->namespaces[i]);
    free(w->namespaces);
    free(w->selector);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

static int or_default(int v, int def)
{
    return v ? v : def;
}

/* A watcher with its options, streams and multi handle, not yet running. */
static ekg_err_t watcher_new(ekg_kube_conn_t *conn, const ekg_watch_options_t *opts, ekg_watcher_t **out,
                             ekg_diag_t *diag)
{
    ekg_watch_options_t o = opts ? *opts : (ekg_watch_options_t){0};
    o.coalesce_ms = or_default(o.coalesce_ms, 100);
    o.coalesce_max_ms = or_default(o.coalesce_max_ms, 1000);
    o.watch_timeout_s = or_default(o.watch_timeout_s, 300);
    o.idle_timeout_s = or_default(o.idle_timeout_s, 90);
    o.page_limit = or_default(o.page_limit, 500);
    o.backoff_initial_ms = or_default(o.backoff_initial_ms, 250);
    o.backoff_max_ms = or_default(o.backoff_max_ms, 30000);
    if (!conn)
        return ekg_diag_set(diag, EKG_EINVAL, "watch: no Kubernetes connection");
    if (o.coalesce_ms < 0 || o.coalesce_max_ms < o.coalesce_ms || o.watch_timeout_s < 1 ||
        o.idle_timeout_s < 1 || o.page_limit < 1 || o.backoff_initial_ms < 1 ||
        o.backoff_max_ms < o.backoff_initial_ms)
        return ekg_diag_set(
            diag, EKG_EINVAL,
            "watch options out of range: coalesce_ms=%d coalesce_max_ms=%d watch_timeout_s=%d "
            "idle_timeout_s=%d page_limit=%d backoff_initial_ms=%d backoff_max_ms=%d",
            o.coalesce_ms, o.coalesce_max_ms, o.watch_timeout_s, o.idle_timeout_s, o.page_limit,
            o.backoff_initial_ms, o.backoff_max_ms);
    if (!o.namespaces)
        o.nnamespaces = 0;
    for (size_t i = 0; i < o.nnamespaces; i++)
        if (!o.namespaces[i] || !o.namespaces[i][0] || strlen(o.namespaces[i]) > 253)
            return ekg_diag_set(diag, EKG_EINVAL, "watch: namespace %zu is empty or too long", i);

    ekg_watcher_t *w = ekg_xcalloc(1, sizeof(*w));
    pthread_mutex_init(&w->lock, NULL);
    w->conn = conn;
    w->opts = o;
    w->opts.nnamespaces = 0;
    if (o.nnamespaces)
        w->namespaces = ekg_xcalloc(o.nnamespaces, sizeof(char *));
    for (size_t i = 0; i < o.nnamespaces; i++, w->opts.nnamespaces++)
        w->namespaces[i] = ekg_xstrdup(o.namespaces[i]);
    w->opts.namespaces = (const char *const *)w->namespaces;
    if (o.service_selector && o.service_selector[0])
        w->selector = ekg_xstrdup(o.service_selector);
    w->opts.service_selector = w->selector;

    size_t per = o.nnamespaces ? o.nnamespaces : 1;
    w->nstreams = 2 * per + 1;
    w->streams = ekg_xcalloc(w->nstreams, sizeof(*w->streams));
    for (size_t i = 0; i < w->nstreams; i++) {
        stream_t *s = &w->streams[i];
        s->w = w;
        s->res = i < per ? EKG_KUBE_SERVICES : i < 2 * per ? EKG_KUBE_ENDPOINT_SLICES : EKG_KUBE_NODES;
        s->ns = s->res != EKG_KUBE_NODES && o.nnamespaces ? w->namespaces[i % per] : NULL;
        snprintf(s->label, sizeof(s->label), "%s%s%s", RESOURCE_NAMES[s->res], s->ns ? "/" : "",
                 s->ns ? s->ns : "");
        s->pub.last_success_ms = -1;
        ekg_event_stream_init(&s->lines, 0);
        if (!(s->easy = curl_easy_init()))
            ekg_oom(0); /* libcurl fails here only for memory */
    }
    if (!(w->multi = curl_multi_init()))
        ekg_oom(0);
    curl_multi_setopt(w->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    w->rng = (uint64_t)ekg_clock_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)w;
    if (!w->rng)
        w->rng = 0x9E3779B97F4A7C15ULL;
    *out = w;
    return EKG_OK;
}

ekg_err_t ekg_watcher_start(ekg_kube_conn_t *conn, const ekg_watch_options_t *opts, ekg_sink_t *sink,
                            ekg_watcher_t **out, ekg_diag_t *diag)
{
    ekg_watcher_t *w = NULL;
    if (!sink || !out)
        return ekg_diag_set(diag, EKG_EINVAL, "ekg_watcher_start: NULL argument");
    ekg_err_t err = watcher_new(conn, opts, &w, diag);
    if (err)
        return err;
    w->sink = sink;
    ekg_sink_set_coalescing(sink, w->opts.coalesce_ms, w->opts.coalesce_max_ms);
    ekg_sink_set_driver(sink, wake, w); /* before the thread: from now on only it uses the sink */
    int rc = pthread_create(&w->thread, NULL, thread_main, w);
    if (rc != 0) {
        ekg_sink_set_driver(sink, NULL, NULL);
        watcher_free(w);
        return ekg_diag_set(diag, EKG_EIO, "watch: cannot start the thread: %s", strerror(rc));
    }
    w->thread_started = true;
    ekg_info("kubernetes watcher started server=\"%s\" streams=%zu namespaces=%zu service_selector=\"%s\"",
             ekg_kube_conn_describe(conn), w->nstreams, w->opts.nnamespaces, w->selector ? w->selector : "");
    *out = w;
    return EKG_OK;
}

void ekg_watcher_stop(ekg_watcher_t *w)
{
    if (!w)
        return;
    if (w->thread_started) {
        atomic_store(&w->stop, true);
        curl_multi_wakeup(w->multi);
        pthread_join(w->thread, NULL);
    }
    ekg_info("kubernetes watcher stopped");
    watcher_free(w);
}

void ekg_watcher_status(ekg_watcher_t *w, ekg_kube_resource_t r, ekg_watch_status_t *out)
{
    *out = (ekg_watch_status_t){.last_sync_age_s = -1};
    if (!w || r >= EKG_KUBE__COUNT)
        return;
    long long now = ekg_clock_ms(), latest = -1;
    bool any = false, all_listed = true;
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->nstreams; i++) {
        const stream_pub_t *p = &w->streams[i].pub;
        if (w->streams[i].res != r)
            continue;
        any = true;
        all_listed &= p->listed;
        if (p->last_success_ms > latest) {
            latest = p->last_success_ms;
            snprintf(out->resource_version, sizeof(out->resource_version), "%s", p->rv);
        }
        if (!out->last_error[0] && p->last_error[0])
            snprintf(out->last_error, sizeof(out->last_error), "%.60s%s%.190s",
                     w->streams[i].ns ? w->streams[i].ns : "", w->streams[i].ns ? ": " : "", p->last_error);
        for (int e = 0; e < 4; e++)
            out->events[e] += p->events[e];
        out->relists += p->relists;
        out->reconnects += p->reconnects;
        out->too_old += p->too_old;
    }
    pthread_mutex_unlock(&w->lock);
    out->synced = any && all_listed;
    out->last_sync_age_s = latest < 0 ? -1 : (double)(now - latest) / 1000.0;
}

ekg_err_t ekg_watcher_list_once(ekg_kube_conn_t *conn, const ekg_watch_options_t *opts, ekg_sink_t *sink,
                                ekg_diag_t *diag)
{
    ekg_watcher_t *w = NULL;
    if (!sink)
        return ekg_diag_set(diag, EKG_EINVAL, "ekg_watcher_list_once: NULL argument");
    ekg_err_t err = watcher_new(conn, opts, &w, diag);
    if (err)
        return err;
    w->sink = sink;
    w->once = true;
    w->diag = diag;
    while (!w->fatal && !all_done(w))
        run_once(w);
    err = w->fatal;
    watcher_free(w);
    return err;
}

ekg_err_t ekg_kube_list_all(ekg_kube_conn_t *conn, const ekg_watch_options_t *opts, ekg_objects_t *objs,
                            ekg_diag_t *diag)
{
    if (!objs)
        return ekg_diag_set(diag, EKG_EINVAL, "ekg_kube_list_all: NULL argument");
    ekg_sink_t *collector = ekg_sink_collector_new();
    ekg_err_t err = ekg_watcher_list_once(conn, opts, collector, diag);
    if (!err) /* all or nothing */
        ekg_sink_take_objects(collector, objs);
    ekg_sink_free(collector);
    return err;
}
