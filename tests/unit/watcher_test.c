/*
 * tests/unit/watcher_test.c: src/watch/watcher.c against the fake API server (tests/fakeapi/fakeapi.py):
 * first sync and on_synced, updates and deletes within the coalescing bounds, pagination (and an expired
 * continue token), "too old" as HTTP 410 and as an ERROR event (a relist that publishes nothing), bookmarks,
 * the end of a watch at timeoutSeconds, events split at arbitrary bytes and larger than 16 KiB, a stalled
 * stream caught by the idle timeout, a connection reset mid-event, 5xx with backoff, the API down for seconds
 * (nothing removed) and back on the same port, 401 until the token file changes, namespaces and the label
 * selector, and ekg_kube_list_all(). Over HTTP/2 (TLS with ALPN h2, the "h2/" tests): the streams multiplexed
 * on one connection (PIPEWAIT), a stalled stream restarted alone, a dead connection shut down and left, a
 * GOAWAY graceful and abrupt, and most of the tests above again.
 *
 * Each test starts its own fake (python3, --port 0, port read from its stdout) and drives it through its HTTP
 * control API (/fake/...). Every wait is bounded. Thread: the test's main thread; the watcher runs its own.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <cJSON.h>
#include <curl/curl.h>

#include "ekglue/translate.h"
#include "ekglue/watch.h"
#include "ekglue/log.h"
#include "ekglue/proto.h"
#include "ekglue/cache.h"

#define WAIT_MS 10000 /* the bound of every wait for something that should happen */

/* --- the fake API server ----------------------------------------------------------------------------------
 */

typedef struct fake {
    pid_t pid;
    int out_fd; /* its stdout */
    int port;
    char url[64];
    char kubeconfig[256]; /* when started with --kubeconfig (always over HTTP/2) */
    char ca[256];         /* its CA file, over TLS */
} fake_t;

/*
 * The transport of the running test. Over HTTP/1.1 (the default) the fake serves plain http, where the
 * watcher asks for nothing else. Over HTTP/2 it serves TLS with ALPN h2 (--tls --http2) from certificates
 * kept in dir (so that a restarted fake keeps its CA), and the watcher reaches it through the kubeconfig the
 * fake writes: the watcher asks for HTTP/2 over TLS only (CURL_HTTP_VERSION_2TLS, docs/internals/watcher.md,
 * "Streams").
 */
static struct {
    bool h2;
    char dir[64]; /* owned temporary directory: certificates and the kubeconfig */
} transport;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Reads one line of the fake's stdout (bounded wait); false at EOF or timeout. */
static bool read_line(int fd, char *buf, size_t size, int timeout_ms)
{
    size_t n = 0;
    long long deadline = now_ms() + timeout_ms;
    while (n + 1 < size) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long long left = deadline - now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return false;
        char c;
        if (read(fd, &c, 1) != 1)
            return false;
        if (c == '\n')
            break;
        buf[n++] = c;
    }
    buf[n] = '\0';
    return true;
}

/* Starts the fake with extra arguments (NULL-terminated); port 0 picks one. */
static void fake_start(fake_t *f, int port, const char *const *args)
{
    const char *src = getenv("EKG_SOURCE_DIR");
    char script[1024], port_s[16];
    snprintf(script, sizeof(script), "%s/tests/fakeapi/fakeapi.py", src ? src : ".");
    snprintf(port_s, sizeof(port_s), "%d", port);
    const char *argv[40] = {"/usr/bin/python3", script, "--port", port_s};
    size_t argc = 4;
    bool want_kubeconfig = false;
    for (size_t i = 0; args && args[i] && argc < 31; i++) {
        want_kubeconfig |= strcmp(args[i], "--kubeconfig") == 0;
        argv[argc++] = args[i];
    }
    char kubeconfig[128];
    if (transport.h2) {
        argv[argc++] = "--tls";
        argv[argc++] = "--http2";
        argv[argc++] = "--cert-dir";
        argv[argc++] = transport.dir;
        if (!want_kubeconfig) {
            snprintf(kubeconfig, sizeof(kubeconfig), "%s/kubeconfig", transport.dir);
            argv[argc++] = "--kubeconfig";
            argv[argc++] = kubeconfig;
            want_kubeconfig = true;
        }
    }
    argv[argc] = NULL;
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* no orphan when the test dies */
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        close(pipefd[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    *f = (fake_t){.pid = pid, .out_fd = pipefd[0]};
    char line[512];
    while (read_line(f->out_fd, line, sizeof(line), WAIT_MS)) {
        if (strncmp(line, "listening ", 10) == 0)
            f->port = atoi(strrchr(line, ' ') + 1);
        else if (strncmp(line, "url ", 4) == 0)
            snprintf(f->url, sizeof(f->url), "%.63s", line + 4);
        else if (strncmp(line, "kubeconfig ", 11) == 0)
            snprintf(f->kubeconfig, sizeof(f->kubeconfig), "%.255s", line + 11);
        else if (strncmp(line, "ca ", 3) == 0)
            snprintf(f->ca, sizeof(f->ca), "%.255s", line + 3);
        if (f->url[0] && (!want_kubeconfig || f->kubeconfig[0]))
            break;
    }
    if (!f->port || !f->url[0])
        print_error("the fake API server did not start (%s)\n", script);
    assert_int_not_equal(f->port, 0);
}

static void fake_stop(fake_t *f)
{
    if (f->pid <= 0)
        return;
    kill(f->pid, SIGTERM);
    long long deadline = now_ms() + WAIT_MS;
    int status;
    while (waitpid(f->pid, &status, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(f->pid, SIGKILL);
            waitpid(f->pid, &status, 0);
            break;
        }
        sleep_ms(20);
    }
    close(f->out_fd);
    f->pid = 0;
}

static size_t collect(char *data, size_t size, size_t nmemb, void *arg)
{
    char **buf = arg;
    size_t old = *buf ? strlen(*buf) : 0, n = size * nmemb;
    char *b = realloc(*buf, old + n + 1);
    assert_non_null(b);
    memcpy(b + old, data, n);
    b[old + n] = '\0';
    *buf = b;
    return n;
}

/* A control request; returns the body (caller frees) and fails the test unless the status is 200. */
static char *ctl(fake_t *f, const char *method, const char *path, const char *body)
{
    char url[512], errbuf[CURL_ERROR_SIZE] = "";
    char *out = NULL;
    snprintf(url, sizeof(url), "%s%s", f->url, path);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    /* Control requests take connections of their own, so that the HTTP/2 ones are the watcher's alone. */
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    if (f->ca[0])
        curl_easy_setopt(h, CURLOPT_CAINFO, f->ca);
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK || code != 200)
        print_error("%s %s: %s (%s), HTTP %ld: %s\n", method, path, curl_easy_strerror(rc), errbuf, code,
                    out ? out : "");
    assert_int_equal(rc, CURLE_OK);
    assert_int_equal(code, 200);
    return out ? out : strdup("");
}

static void ctl_do(fake_t *f, const char *method, const char *path, const char *body)
{
    free(ctl(f, method, path, body));
}

/* JSON text with ' for " (readable fixtures), printf-formatted. Caller frees. */
static char *json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *json(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    assert_true(vasprintf(&s, fmt, ap) >= 0);
    va_end(ap);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    return s;
}

static void apply(fake_t *f, char *obj) /* takes obj */
{
    ctl_do(f, "POST", "/fake/objects", obj);
    free(obj);
}

static char *service(const char *ns, const char *name, const char *labels)
{
    return json("{'kind':'Service','metadata':{'name':'%s','namespace':'%s','labels':{%s}},"
                "'spec':{'clusterIP':'10.96.0.10','ports':[{'name':'http','port':80,'targetPort':8080}]}}",
                name, ns, labels ? labels : "");
}

static char *slice(const char *ns, const char *name, const char *svc, const char *addr)
{
    return json("{'kind':'EndpointSlice','addressType':'IPv4','metadata':{'name':'%s','namespace':'%s',"
                "'labels':{'kubernetes.io/service-name':'%s'}},"
                "'endpoints':[{'addresses':['%s'],'conditions':{'ready':true},'nodeName':'n1'}],"
                "'ports':[{'name':'http','port':8080,'protocol':'TCP'}]}",
                name, ns, svc, addr);
}

static char *node(const char *name, const char *zone)
{
    return json("{'kind':'Node','metadata':{'name':'%s','labels':{'topology.kubernetes.io/region':'r1',"
                "'topology.kubernetes.io/zone':'%s'}}}",
                name, zone);
}

/* The fake's request log for paths under prefix (a cJSON array; caller deletes). */
static cJSON *requests(fake_t *f, const char *prefix)
{
    char path[256];
    snprintf(path, sizeof(path), "/fake/requests?prefix=%s", prefix);
    char *body = ctl(f, "GET", path, NULL);
    cJSON *a = cJSON_Parse(body);
    free(body);
    assert_true(cJSON_IsArray(a));
    return a;
}

static const char *query(const cJSON *req, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(req, "query"), key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool is_watch(const cJSON *req)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "watch"));
}

static int req_status(const cJSON *req)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, "status");
    return cJSON_IsNumber(v) ? v->valueint : 0;
}

/* --- the watcher under test ------------------------------------------------------------------------------
 */

typedef struct env {
    fake_t fake;
    ekg_kube_conn_t *conn;
    ekg_config_t *cfg;
    ekg_cache_t *cache;
    ekg_sink_t *sink; /* the publisher the watcher feeds */
    ekg_watcher_t *w;
    atomic_int synced;
    atomic_int publishes;
    /* Clusters every published snapshot must have (set before env_watch, read by the watcher thread): a
     * publish without one of them counts in lost, a spurious removal. */
    const char *keep[8];
    size_t nkeep;
    atomic_int lost;
} env_t;

/* The running test's env, freed by the teardown when an assertion ends the test early. */
static env_t *current_env;

static void on_synced(void *ctx)
{
    env_t *e = ctx;
    atomic_fetch_add(&e->synced, 1);
}

static void on_publish(void *ctx, ekg_snapshot_t *snap)
{
    env_t *e = ctx;
    atomic_fetch_add(&e->publishes, 1);
    const ekg_resource_set_t *clusters = ekg_snapshot_resources(snap, EKG_RESOURCE_CLUSTER);
    for (size_t i = 0; i < e->nkeep; i++)
        if (!ekg_resource_set_find(clusters, e->keep[i])) {
            fprintf(stderr, "publish %llu lacks %s\n", (unsigned long long)ekg_snapshot_serial(snap),
                    e->keep[i]);
            atomic_fetch_add(&e->lost, 1);
        }
}

static ekg_watch_options_t test_options(void)
{
    return (ekg_watch_options_t){.coalesce_ms = 20,
                                 .coalesce_max_ms = 200,
                                 .watch_timeout_s = 30,
                                 .idle_timeout_s = 5,
                                 .page_limit = 500,
                                 .backoff_initial_ms = 50,
                                 .backoff_max_ms = 400};
}

static env_t *env_new(int port, const char *const *fake_args)
{
    env_t *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    fake_start(&e->fake, port, fake_args);
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_config_default(&e->cfg, &diag), EKG_OK);
    e->cache = ekg_cache_new();
    ekg_cache_set_watch(e->cache, on_publish, e);
    current_env = e;
    return e;
}

static void env_connect(env_t *e, const ekg_kube_options_t *kopts)
{
    ekg_diag_t diag = {{0}};
    ekg_kube_options_t def = {.master = e->fake.url};
    if (transport.h2) /* https: the CA comes with the kubeconfig */
        def = (ekg_kube_options_t){.kubeconfig = e->fake.kubeconfig};
    ekg_err_t err = ekg_kube_conn_resolve(kopts ? kopts : &def, &e->conn, &diag);
    if (err)
        print_error("ekg_kube_conn_resolve: %s\n", diag.msg);
    assert_int_equal(err, EKG_OK);
}

static void env_watch(env_t *e, const ekg_watch_options_t *o)
{
    ekg_diag_t diag = {{0}};
    if (!e->conn)
        env_connect(e, NULL);
    e->sink = ekg_sink_publisher_new(e->cfg, e->cache, on_synced, e);
    ekg_err_t err = ekg_watcher_start(e->conn, o, e->sink, &e->w, &diag);
    if (err)
        print_error("ekg_watcher_start: %s\n", diag.msg);
    assert_int_equal(err, EKG_OK);
}

static void env_free(env_t *e)
{
    current_env = NULL;
    long long t0 = now_ms();
    ekg_watcher_stop(e->w);
    long long took = now_ms() - t0;
    if (took >= 3000)
        print_error("ekg_watcher_stop took %lld ms\n", took);
    assert_true(took < 3000); /* stop is bounded */
    fake_stop(&e->fake);
    ekg_sink_free(e->sink);
    ekg_kube_conn_free(e->conn);
    ekg_cache_free(e->cache);
    ekg_config_free(e->cfg);
    free(e);
}

#define WAIT_UNTIL(cond)                                                                                     \
    do {                                                                                                     \
        long long deadline_ = now_ms() + WAIT_MS;                                                            \
        while (!(cond) && now_ms() < deadline_)                                                              \
            sleep_ms(10);                                                                                    \
        if (!(cond))                                                                                         \
            print_error("timed out waiting for: %s\n", #cond);                                               \
        assert_true(cond);                                                                                   \
    } while (0)

static void wait_synced(env_t *e)
{
    WAIT_UNTIL(atomic_load(&e->synced) == 1);
}

/* Whether the current snapshot has a resource of that type and name. */
static bool has(env_t *e, ekg_resource_type_t type, const char *name)
{
    ekg_snapshot_t *s = ekg_cache_current(e->cache);
    bool found = s && ekg_resource_set_find(ekg_snapshot_resources(s, type), name) != NULL;
    ekg_snapshot_unref(s);
    return found;
}

/* Whether the ClusterLoadAssignment `name` holds the IPv4 address addr (raw bytes of the encoded message). */
static bool la_has_address(env_t *e, const char *name, const char *addr)
{
    ekg_snapshot_t *s = ekg_cache_current(e->cache);
    const ekg_resource_t *r =
        s ? ekg_resource_set_find(ekg_snapshot_resources(s, EKG_RESOURCE_LOAD_ASSIGNMENT), name) : NULL;
    bool found = false;
    if (r) {
        size_t len;
        const char *data = ekg_resource_data(r, &len);
        found = memmem(data, len, addr, strlen(addr)) != NULL;
    }
    ekg_snapshot_unref(s);
    return found;
}

static unsigned long long serial(env_t *e)
{
    ekg_snapshot_t *s = ekg_cache_current(e->cache);
    unsigned long long n = s ? ekg_snapshot_serial(s) : 0;
    ekg_snapshot_unref(s);
    return n;
}

static void versions(env_t *e, char out[EKG_RESOURCE__COUNT][32])
{
    ekg_snapshot_t *s = ekg_cache_current(e->cache);
    assert_non_null(s);
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++)
        snprintf(out[t], 32, "%s",
                 ekg_resource_set_version(ekg_snapshot_resources(s, (ekg_resource_type_t)t)));
    ekg_snapshot_unref(s);
}

static ekg_watch_status_t status(env_t *e, ekg_kube_resource_t r)
{
    ekg_watch_status_t st;
    ekg_watcher_status(e->w, r, &st);
    return st;
}

/* The standard small cluster: Service default/web, its slice on node n1, node n1. */
static void load_web(env_t *e)
{
    apply(&e->fake, node("n1", "za"));
    apply(&e->fake, service("default", "web", NULL));
    apply(&e->fake, slice("default", "web-1", "web", "10.0.0.1"));
}

/* --- tests ---------------------------------------------------------------------------------------------- */

static void test_initial_sync_update_delete(void **state)
{
    (void)state;
    env_t *e = env_new(0, NULL);
    load_web(e);
    ekg_watch_options_t o = test_options();
    env_watch(e, &o);
    wait_synced(e);
    assert_true(has(e, EKG_RESOURCE_CLUSTER, "default:web:http"));
    assert_true(la_has_address(e, "default:web:http", "10.0.0.1"));
    for (int r = 0; r < EKG_KUBE__COUNT; r++) {
        ekg_watch_status_t st = status(e, (ekg_kube_resource_t)r);
        assert_true(st.synced);
        assert_string_equal(st.last_error, "");
        assert_true(st.last_sync_age_s >= 0);
        assert_true(st.resource_version[0] != '\0');
    }
    /* Wait for the watches, then change a slice: it arrives within the coalescing bounds. */
    ctl_do(&e->fake, "POST", "/fake/wait-watchers?n=3&timeout=10", NULL);
    long long t0 = now_ms();
    apply(&e->fake, slice("default", "web-1", "web", "10.0.0.2"));
    WAIT_UNTIL(la_has_address(e, "default:web:http", "10.0.0.2"));
    long long took = now_ms() - t0;
    if (took > 1500)
        print_error("the update took %lld ms\n", took);
    assert_true(took <= 1500);
    assert_false(la_has_address(e, "default:web:http", "10.0.0.1"));
    assert_true(status(e, EKG_KUBE_ENDPOINT_SLICES).events[1] >= 1); /* MODIFIED */

    /* A new Service, then its deletion. */
    apply(&e->fake, service("default", "api", NULL));
    WAIT_UNTIL(has(e, EKG_RESOURCE_CLUSTER, "default:api:http"));
    ctl_do(&e->fake, "DELETE", "/fake/objects?kind=Service&namespace=default&name=api", NULL);
    WAIT_UNTIL(!has(e, EKG_RESOURCE_CLUSTER, "default:api:http"));
    assert_true(has(e, EKG_RESOURCE_CLUSTER, "default:web:http"));
    ekg_watch_status_t st = status(e, EKG_KUBE_SERVICES);
    assert_true(st.events[0] >= 1);
    assert_true(st.events[2] >= 1);
    assert_int_equal(st.relists, 0);
    assert_int_equal(atomic_load(&e->synced), 1); /* on_synced exactly once */
    env_free(e);
}

/* Waits (bounded) until the fake has received a Services list request for a second page (with continue). */
static void wait_for_services_continue(env_t *e)
{
    bool saw_continue = false;
    for (long long deadline = now_ms() + WAIT_MS; !saw_continue && now_ms() < deadline;) {
        cJSON *reqs = requests(&e->fake, "/api/v1/services");
        const cJSON *r;
        cJSON_ArrayForEach(r, reqs)
        {
            saw_continue |= query(r, "continue") != NULL;
        }
        cJSON_Delete(reqs);
        if (!saw_continue)
            sleep_ms(10);
    }
    assert_true(saw_continue);
}

static void test_pagination_and_expired_continue(void **state)
{
    (void)state;
    env_t *e = env_new(0, NULL);
    load_web(e);
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof(name), "svc%d", i);
        apply(&e->fake, service("default", name, NULL));
    }
    /* Both first pages of the Services list are slow (1 s): while the second one waits, the list's RV is
     * compacted away, so its continue token expires (410) and the list starts over. */
    ctl_do(&e->fake, "POST", "/fake/faults",
           "{\"fault\":\"slow\",\"prefix\":\"/api/v1/services\",\"watch\":false,\"count\":2,\"delay\":1.0}");
    ekg_watch_options_t o = test_options();
    o.page_limit = 2;
    env_watch(e, &o);
    wait_for_services_continue(e);
    apply(&e->fake, node("n2", "zb"));
    ctl_do(&e->fake, "POST", "/fake/compact", NULL);
    wait_synced(e);
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "default:svc%d:http", i);
        assert_true(has(e, EKG_RESOURCE_CLUSTER, name));
    }
    ekg_watch_status_t st = status(e, EKG_KUBE_SERVICES);
    assert_true(st.too_old >= 1);
    /* Pages of two: limit=2 everywhere, several continues, one 410 on a continue. */
    cJSON *reqs = requests(&e->fake, "/api/v1/services");
    int lists = 0, continues = 0, expired = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, reqs)
    {
        if (is_watch(r))
            continue;
        lists++;
        assert_string_equal(query(r, "limit"), "2");
        continues += query(r, "continue") != NULL;
        expired += req_status(r) == 410;
    }
    cJSON_Delete(reqs);
    assert_true(continues >= 3); /* 7 Services in pages of 2 */
    assert_int_equal(expired, 1);
    assert_true(lists >= 5);
    env_free(e);
}

/* A 410 (of either form) relists; nothing changed, so nothing is published and no version moves. */
static void too_old(const char *mode)
{
    env_t *e = env_new(0, NULL);
    load_web(e);
    ekg_watch_options_t o = test_options();
    env_watch(e, &o);
    wait_synced(e);
    ctl_do(&e->fake, "POST", "/fake/wait-watchers?n=3&timeout=10", NULL);
    sleep_ms(300); /* let any first coalesced publish happen */
    unsigned long long before = serial(e);
    int publishes = atomic_load(&e->publishes);
    char v1[EKG_RESOURCE__COUNT][32], v2[EKG_RESOURCE__COUNT][32];
    versions(e, v1);

    char fault[200];
    snprintf(
        fault, sizeof(fault),
        "{\"fault\":\"too_old\",\"prefix\":\"/api/v1/services\",\"watch\":true,\"count\":1,\"mode\":\"%s\"}",
        mode);
    ctl_do(&e->fake, "POST", "/fake/faults", fault);
    ctl_do(&e->fake, "POST", "/fake/close-watches", NULL); /* the re-watch meets the fault */
    WAIT_UNTIL(status(e, EKG_KUBE_SERVICES).relists >= 1 && status(e, EKG_KUBE_SERVICES).too_old >= 1);
    ctl_do(&e->fake, "POST", "/fake/wait-watchers?n=3&timeout=10", NULL);
    sleep_ms(300); /* more than coalesce_max_ms: a publish would have happened */
    assert_int_equal(serial(e), before);
    assert_int_equal(atomic_load(&e->publishes), publishes);
    versions(e, v2);
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++)
        assert_string_equal(v1[t], v2[t]);
    assert_true(has(e, EKG_RESOURCE_CLUSTER, "default:web:http"));
    /* The watch after the relist works. */
    apply(&e->fake, service("default", "after", NULL));
    WAIT_UNTIL(has(e, EKG_RESOURCE_CLUSTER, "default:after:http"));
    env_free(e);
}

static void test_too_old_http_410(void **state)
{
    (void)state;
    too_old("http");
}

static void test_too_old_error_event(void **state)
{
    (void)state;
    too_old("event");
}

/* stderr while a test captures it in a file (capture_stderr), or -1; and that file. */
static int saved_stderr = -1;
static char captured_path[64];
static ekg_log_level_t saved_level;

/* Sends stderr (the watcher's log lines) to a new temporary file until restore_stderr(). */
static void capture_stderr(void)
{
    snprintf(captured_path, sizeof(captured_path), "/tmp/ekg-watcher-log-XXXXXX");
    int fd = mkstemp(captured_path);
    assert_true(fd >= 0);
    fflush(stderr);
    saved_stderr = dup(2);
    assert_true(saved_stderr >= 0 && dup2(fd, 2) >= 0);
    close(fd);
    /* At least warnings (no watcher thread runs yet: the level is set before threads, as log.h asks). */
    saved_level = EKG_LOG_DEBUG;
    while (saved_level < EKG_LOG_OFF && !ekg_log_enabled(saved_level))
        saved_level++;
    if (saved_level > EKG_LOG_WARN)
        ekg_log_set_level(EKG_LOG_WARN);
}

/* Puts stderr back. With dump (a test that failed while capturing), what was captured is printed first. */
static void restore_stderr(bool dump)
{
    if (saved_stderr < 0)
        return;
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    saved_stderr = -1;
    ekg_log_set_level(saved_level);
    FILE *f = dump ? fopen(captured_path, "r") : NULL;
    char line[4096];
    while (f && fgets(line, sizeof(line), f))
        fputs(line, stderr);
    if (f)
        fclose(f);
    unlink(captured_path);
}

/* Lines of the file at path that contain needle. */
static int count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/*
 * A version the watcher could not take is not recorded as applied: the last valid version stays served (a
 * complete list does not remove it), and the next list reads the object again instead of skipping it as
 * known.
 */
static void test_skipped_version_is_read_again(void **state)
{
    (void)state;
    capture_stderr(); /* the watcher's log lines, counted below */
    const char *path = captured_path;
    env_t *e = env_new(0, NULL);
    load_web(e);
    ekg_watch_options_t o = test_options();
    env_watch(e, &o);
    wait_synced(e);
    ctl_do(&e->fake, "POST", "/fake/wait-watchers?n=3&timeout=10", NULL);
    apply(&e->fake, json("{'kind':'Service','metadata':{'name':'web','namespace':'default'},"
                         "'spec':{'clusterIP':'10.96.0.10','ports':[{'name':'http','port':70000}]}}"));
    const char *skipped = "kubernetes object skipped resource=services";
    WAIT_UNTIL(count_lines(path, skipped) == 1);
    assert_true(has(e, EKG_RESOURCE_CLUSTER, "default:web:http")); /* the last valid version */

    ctl_do(&e->fake, "POST", "/fake/faults",
           "{\"fault\":\"too_old\",\"prefix\":\"/api/v1/services\",\"watch\":true,\"count\":1}");
    ctl_do(&e->fake, "POST", "/fake/close-watches", NULL); /* the re-watch meets the 410: a relist */
    WAIT_UNTIL(status(e, EKG_KUBE_SERVICES).relists >= 1);
    WAIT_UNTIL(count_lines(path, skipped) == 2); /* read again, not taken as known */
    ctl_do(&e->fake, "POST", "/fake/wait-watchers?n=3&timeout=10", NULL);
    sleep_ms(300);                                                 /* past coalesce_max_ms */
    assert_true(has(e, EKG_RESOURCE_CLUSTER, "default:web:http")); /* the complete list did not remove it */

    apply(&e->fake, service("default", "web", "'v':'2'")); /* a valid version again */
    WAIT_UNTIL(count_lines(path, "kubernetes object skipped") == 2 &&
               has(e, EKG_RESOURCE_CLUSTER, "default:web:http"));
    env_free(e);
    restore_stderr(false);
}

static void test_bookmarks_and_timeout_rewatch(void **state)
{
    (void)state;
    env_t *e = env_new(0, NULL);
    load_web(e);
    ekg_watch_options_t o = test_options();
    o.watch_timeout_s = 1;
    env_watch(e, &o);
    wait_synced(e);
    ctl_do(&e->fake, "POST", "/fake/config", "{\"bookmark_interval\":0.2}");
    /* A change elsewhere moves the global RV; the Services watch learns it only from a bookmark. */
    apply(&e->fake, node("n2", "zb"));
    char *st = ctl(&e->fake, "GET", "/fake/state", NULL);
    cJSON *sj = cJSON_Parse(st);
    free(st);
    char rv[32];
    snprintf(rv, sizeof(rv), "%s", cJSON_GetObjectItemCaseSensitive(sj, "resourceVersion")->valuestring);
    cJSON_Delete(sj);
    WAIT_UNTIL(status(e, EKG_KUBE_SERVICES).events[3] >= 1 &&
               strcmp(status(e, EKG_KUBE_SERVICES).resource_version, rv) == 0);
    /* The watches end at timeoutSeconds=1 and resume from the last (bookmark) RV, without a relist. */
    bool resumed = false;
    for (long long deadline = now_ms() + WAIT_MS; !resumed && now_ms() < deadline;) {
        cJSON *reqs = requests(&e->fake, "/api/v1/services");
        const cJSON *r;
        cJSON_ArrayForEach(r, reqs)
        {
            if (is_watch(r)) {
                assert_string_equal(query(r, "timeoutSeconds"), "1");
                assert_string_equal(query(r, "allowWatchBookmarks"), "true");
                resumed |= query(r, "resourceVersion") && strcmp(query(r, "resourceVersion"), rv) == 0;
            }
        }
        cJSON_Delete(reqs);
        if (!resumed)
            sleep_ms(50);
    }
    assert_true(resumed);
    ekg_watch_status_t s = status(e, EKG_KUBE_SERVICES);
    assert_int_equal(s.relists, 0);
    assert_int_equal(s.reconnects, 0);
    assert_string_equal(s.last_error, "");
    env_free(e);
}

static void test_split_and_big_events(void **state)
{
    (void)state;
    env_t *e = env_new(0, NULL);
    load_web(e);
    /* Every slice event (and list body) in pieces of 1..7 bytes, each object padded to > 40 KiB. */
    ctl_do(&e->fake, "POST", "/fake/faults",
           "{\"fault\":\"split\",\"prefix\":\"/apis/\",\"count\":null,\"max\":4000,\"gap\":0}");
    ctl_do(&e->fake, "POST", "/fake/faults",
           "{\"fault\":\"big\",\"prefix\":\"/apis/\",\"count\":null,\"size\":40000}");
    ekg_watch_options_t o = test_options();
    env_watch(e, &o);
    wait_synced(e);
    assert_true(la_has_address(e, "default:web:http", "10.0.0.1"));
    ctl_do(&e->fake, "POST", "/fake/wait-watchers?n=3&timeout=10", NULL);
    for (int i = 2; i <= 4; i++) {
        char addr[32];
        snprintf(addr, sizeof(addr), "10.0.0.%d", i);
        apply(&e->fake, slice("default", "web-1", "web", addr));
        WAIT_UNTIL(la_has_address(e, "default:web:http", addr));
    }
    /* Small pieces too (slower: a piece per write). */
    ctl_do(&e->fake, "DELETE", "/fake/faults", NULL);
    ctl_do(&e->fake, "POST", "/fake/faults",
           "{\"fault\":\"split\",\"prefix\":\"/apis/\",\"count\":null,\"max\":7,\"gap\":0}");
    ctl_do(&e->fake, "POST", "/fake/close-watches", NULL);
    ctl_do(&e->fake, "POST", "/fake/wait-watchers?n=3&timeout=10", NULL);
    apply(&e->fake, slice("default", "web-1", "web", "10.0.0.9"));
    WAIT_UNTIL(la_has_address(e, "default:web:http", "10.0.0.9"));
    ekg_watch_status_t st = status(e, EKG_KUBE_ENDPOINT_SLICES);
    assert_int_equal(st.reconnects, 0);
    assert_string_equal(st.last_error, "");
    env_free(e);
}

static void test_stall_detected_by_idle_timeout(void **state)
{
    (void)state;
    env_t *e = env_new(0, NULL);
    load_web(e);
    /* The first Services watch sends nothing at all (no bookmarks either). */
    ctl_do(&e->fake, "POST", "/fake/faults",
           "{\"fault\":\"stall\",\"prefix\":\"/api/v1/services\",\"watch\":true,\"count\":1}");
    ctl_do(&e->fake, "POST", "/fake/config", "{\"bookmark_interval\":0.3}"); /* healthy watches talk */
    ekg_watch_options_t o = test_options();
    o.idle_timeout_s = 2;
    env_watch(e, &o);
    wait_synced(e);
    apply(&e->fake, service("default", "late", NULL)); /* sent to nobody: the watch is stalled */
    WAIT_UNTIL(has(e, EKG_RESOURCE_CLUSTER, "default:late:http"));
    ekg_watch_status_t st = status(e, EKG_KUBE_SERVICES);
    assert_true(st.reconnects >= 1);
    assert_int_equal(st.relists, 0);                           /* resumed from the last RV */
    assert_int_equal(status(e, EKG_KUBE_NODES).reconnects, 0); /* bookmarks kept the others alive */
    env_free(e);
}

static void test_reset_mid_event(void **state)
{
    (void)state;
    env_t *e = env_new(0, NULL);
    load_web(e);
    ekg_watch_options_t o = test_options();
    env_watch(e, &o);
    wait_synced(e);
    /* The first watches must have reached the fake before the fault is armed, or one of them takes it and the
     * close below ends it without an event. */
    ctl_do(&e->fake, "POST", "/fake/wait-watchers?n=3&timeout=10", NULL);
    ctl_do(&e->fake, "POST", "/fake/faults",
           "{\"fault\":\"reset\",\"prefix\":\"/apis/\",\"watch\":true,\"count\":1,\"after\":0}");
    ctl_do(&e->fake, "POST", "/fake/close-watches", NULL);
    ctl_do(&e->fake, "POST", "/fake/wait-watchers?n=3&timeout=10", NULL);
    apply(&e->fake, slice("default", "web-1", "web", "10.0.0.7")); /* half of it, then RST */
    WAIT_UNTIL(la_has_address(e, "default:web:http", "10.0.0.7"));
    WAIT_UNTIL(status(e, EKG_KUBE_ENDPOINT_SLICES).last_error[0] == '\0');
    ekg_watch_status_t st = status(e, EKG_KUBE_ENDPOINT_SLICES);
    assert_true(st.reconnects >= 1);
    assert_int_equal(st.relists, 0);
    env_free(e);
}

static void test_5xx_backoff_then_recovery(void **state)
{
    (void)state;
    env_t *e = env_new(0, NULL);
    load_web(e);
    ekg_watch_options_t o = test_options();
    o.backoff_initial_ms = 100;
    o.backoff_max_ms = 400;
    env_watch(e, &o);
    wait_synced(e);
    ctl_do(&e->fake, "POST", "/fake/wait-watchers?n=3&timeout=10", NULL); /* before the fault: see above */
    ctl_do(&e->fake, "POST", "/fake/faults",
           "{\"fault\":\"error\",\"prefix\":\"/api/v1/services\",\"watch\":true,\"count\":3,\"code\":503}");
    ctl_do(&e->fake, "DELETE", "/fake/requests", NULL);
    ctl_do(&e->fake, "POST", "/fake/close-watches", NULL);
    WAIT_UNTIL(status(e, EKG_KUBE_SERVICES).last_error[0] != '\0');
    assert_non_null(strstr(status(e, EKG_KUBE_SERVICES).last_error, "503"));
    apply(&e->fake, service("default", "next", NULL));
    WAIT_UNTIL(has(e, EKG_RESOURCE_CLUSTER, "default:next:http"));
    WAIT_UNTIL(status(e, EKG_KUBE_SERVICES).last_error[0] == '\0');
    /* Three 503s, spaced by at least the initial backoff, then a watch from the same RV. */
    cJSON *reqs = requests(&e->fake, "/api/v1/services");
    double last_fail = 0;
    int fails = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, reqs)
    {
        double t = cJSON_GetObjectItemCaseSensitive(r, "time")->valuedouble;
        if (last_fail > 0)
            assert_true(t - last_fail >= 0.09);
        if (req_status(r) == 503) {
            fails++;
            last_fail = t;
        } else {
            assert_true(is_watch(r)); /* no relist */
            last_fail = 0;
        }
    }
    cJSON_Delete(reqs);
    assert_int_equal(fails, 3);
    assert_true(status(e, EKG_KUBE_SERVICES).reconnects >= 3);
    env_free(e);
}

static void test_api_down_keeps_state(void **state)
{
    (void)state;
    char path[] = "/tmp/ekg-watcher-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char *objs[] = {node("n1", "za"), service("default", "web", NULL),
                    slice("default", "web-1", "web", "10.0.0.1"), service("default", "extra", NULL)};
    /* The restarted server holds the same three objects plus "extra". */
    FILE *f = fdopen(fd, "w");
    fprintf(f, "%s\n---\n%s\n---\n%s\n---\n%s\n", objs[0], objs[1], objs[2], objs[3]);
    fclose(f);

    env_t *e = env_new(0, NULL);
    apply(&e->fake, objs[0]);
    apply(&e->fake, objs[1]);
    apply(&e->fake, objs[2]);
    free(objs[3]);
    ekg_watch_options_t o = test_options();
    o.idle_timeout_s = 2;
    env_watch(e, &o);
    wait_synced(e);
    ctl_do(&e->fake, "POST", "/fake/wait-watchers?n=3&timeout=10", NULL);
    int port = e->fake.port;
    fake_stop(&e->fake);
    WAIT_UNTIL(status(e, EKG_KUBE_SERVICES).last_error[0] != '\0');
    sleep_ms(3000);
    assert_true(has(e, EKG_RESOURCE_CLUSTER, "default:web:http"));
    assert_true(la_has_address(e, "default:web:http", "10.0.0.1"));
    ekg_watch_status_t st = status(e, EKG_KUBE_SERVICES);
    assert_true(st.synced);
    assert_true(st.reconnects >= 1);

    /* Back on the same port, with newer RVs: the old RV is too old there, so the watcher relists. */
    const char *args[] = {"--start-rv", "100000", "--load", path, NULL};
    fake_start(&e->fake, port, args);
    WAIT_UNTIL(has(e, EKG_RESOURCE_CLUSTER, "default:extra:http"));
    assert_true(has(e, EKG_RESOURCE_CLUSTER, "default:web:http"));
    assert_true(la_has_address(e, "default:web:http", "10.0.0.1"));
    WAIT_UNTIL(status(e, EKG_KUBE_SERVICES).last_error[0] == '\0');
    unlink(path);
    env_free(e);
}

static void test_401_until_the_token_changes(void **state)
{
    (void)state;
    char dir[] = "/tmp/ekg-watcher-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char kubeconfig[300], token_file[300];
    snprintf(kubeconfig, sizeof(kubeconfig), "%s/kubeconfig", dir);
    snprintf(token_file, sizeof(token_file), "%s/token", dir);
    const char *args[] = {"--token-file", token_file, "--token", "first-token",
                          "--kubeconfig", kubeconfig, NULL};
    env_t *e = env_new(0, args);
    load_web(e);
    ekg_kube_options_t k = {.kubeconfig = e->fake.kubeconfig};
    env_connect(e, &k);
    ekg_watch_options_t o = test_options();
    o.backoff_initial_ms = 100;
    env_watch(e, &o);
    wait_synced(e);
    ctl_do(&e->fake, "POST", "/fake/wait-watchers?n=3&timeout=10", NULL);
    /* The server now wants a new token; the file gets it only 1.5 s later. */
    ctl_do(&e->fake, "POST", "/fake/rotate-token", "{\"token\":\"second-token\",\"file_delay\":1.5}");
    ctl_do(&e->fake, "DELETE", "/fake/requests", NULL);
    ctl_do(&e->fake, "POST", "/fake/close-watches", NULL);
    WAIT_UNTIL(strstr(status(e, EKG_KUBE_SERVICES).last_error, "401") != NULL);
    apply(&e->fake, service("default", "authed", NULL));
    WAIT_UNTIL(has(e, EKG_RESOURCE_CLUSTER, "default:authed:http"));
    WAIT_UNTIL(status(e, EKG_KUBE_SERVICES).last_error[0] == '\0');
    cJSON *reqs = requests(&e->fake, "/api/v1/services");
    int unauthorized = 0, ok_after = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, reqs)
    {
        unauthorized += req_status(r) == 401;
        ok_after += unauthorized && (req_status(r) == 200 || req_status(r) == 0);
    }
    cJSON_Delete(reqs);
    assert_true(unauthorized >= 1);
    assert_true(unauthorized <= 30); /* backed off, not spinning for 1.5 s */
    assert_true(ok_after >= 1);
    env_free(e);
    unlink(kubeconfig);
    unlink(token_file);
    rmdir(dir);
}

static void test_namespaces_and_selector(void **state)
{
    (void)state;
    env_t *e = env_new(0, NULL);
    apply(&e->fake, node("n1", "za"));
    const char *nss[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        apply(&e->fake, service(nss[i], "front", "'tier':'front'"));
        apply(&e->fake, service(nss[i], "back", "'tier':'back'"));
        apply(&e->fake, slice(nss[i], "front-1", "front", "10.1.0.1"));
    }
    ekg_watch_options_t o = test_options();
    const char *watched[] = {"a", "b"};
    o.namespaces = watched;
    o.nnamespaces = 2;
    o.service_selector = "tier=front";
    env_watch(e, &o);
    wait_synced(e);
    assert_true(has(e, EKG_RESOURCE_CLUSTER, "a:front:http"));
    assert_true(has(e, EKG_RESOURCE_CLUSTER, "b:front:http"));
    assert_false(has(e, EKG_RESOURCE_CLUSTER, "c:front:http"));
    assert_false(has(e, EKG_RESOURCE_CLUSTER, "a:back:http"));
    assert_true(la_has_address(e, "a:front:http", "10.1.0.1"));
    /* A label change moves a Service into the selection (the fake sends ADDED), and out of it (DELETED). */
    apply(&e->fake, service("b", "back", "'tier':'front'"));
    WAIT_UNTIL(has(e, EKG_RESOURCE_CLUSTER, "b:back:http"));
    apply(&e->fake, service("a", "front", "'tier':'none'"));
    WAIT_UNTIL(!has(e, EKG_RESOURCE_CLUSTER, "a:front:http"));
    apply(&e->fake, service("c", "other", "'tier':'front'"));
    sleep_ms(300);
    assert_false(has(e, EKG_RESOURCE_CLUSTER, "c:other:http"));
    /* Only namespaced paths, the selector on Services only. */
    cJSON *reqs = requests(&e->fake, "/api");
    const cJSON *r;
    int per_ns = 0;
    cJSON_ArrayForEach(r, reqs)
    {
        const char *p = cJSON_GetObjectItemCaseSensitive(r, "path")->valuestring;
        if (strstr(p, "/nodes")) {
            assert_string_equal(p, "/api/v1/nodes");
            continue;
        }
        per_ns++;
        assert_true(strncmp(p, "/api/v1/namespaces/a/", 21) == 0 ||
                    strncmp(p, "/api/v1/namespaces/b/", 21) == 0 ||
                    strncmp(p, "/apis/discovery.k8s.io/v1/namespaces/a/", 39) == 0 ||
                    strncmp(p, "/apis/discovery.k8s.io/v1/namespaces/b/", 39) == 0);
        if (strstr(p, "/services"))
            assert_string_equal(query(r, "labelSelector"), "tier=front");
        else
            assert_null(query(r, "labelSelector"));
    }
    cJSON_Delete(reqs);
    assert_true(per_ns >= 8); /* list + watch of 2 resources in 2 namespaces */
    env_free(e);
}

static void test_list_all(void **state)
{
    (void)state;
    env_t *e = env_new(0, NULL);
    load_web(e);
    apply(&e->fake, service("default", "b", NULL));
    apply(&e->fake, service("default", "c", NULL));
    apply(&e->fake, json("{'kind':'Service','metadata':{'name':'bad','namespace':'default'},"
                         "'spec':{'ports':[{'port':99999}]}}"));
    env_connect(e, NULL);
    ekg_watch_options_t o = test_options();
    o.page_limit = 2;
    ekg_objects_t objs = {0};
    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_kube_list_all(e->conn, &o, &objs, &diag);
    if (err)
        print_error("%s\n", diag.msg);
    assert_int_equal(err, EKG_OK);
    assert_int_equal(objs.nservices, 3);
    assert_int_equal(objs.nslices, 1);
    assert_int_equal(objs.nnodes, 1);
    assert_int_equal(objs.nskipped, 1);
    ekg_objects_free(&objs);

    /* A failure is an error with the reason, and nothing is added. */
    ctl_do(&e->fake, "POST", "/fake/faults",
           "{\"fault\":\"error\",\"prefix\":\"/api/v1/nodes\",\"code\":403}");
    err = ekg_kube_list_all(e->conn, &o, &objs, &diag);
    assert_int_not_equal(err, EKG_OK);
    assert_non_null(strstr(diag.msg, "403"));
    assert_int_equal(objs.nservices + objs.nslices + objs.nnodes, 0);
    env_free(e);
}

typedef struct list_all_run {
    ekg_kube_conn_t *conn;
    ekg_watch_options_t opts;
    ekg_objects_t objs;
    ekg_diag_t diag;
    ekg_err_t err;
} list_all_run_t;

static void *list_all_thread(void *arg)
{
    list_all_run_t *r = arg;
    r->err = ekg_kube_list_all(r->conn, &r->opts, &r->objs, &r->diag);
    return NULL;
}

/* `ekglue dump`: a list whose continue token expires starts over, and what its first attempt collected is not
 * delivered twice (nor an object deleted in between). */
static void test_list_all_starts_over_without_duplicates(void **state)
{
    (void)state;
    env_t *e = env_new(0, NULL);
    load_web(e);
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof(name), "svc%d", i);
        apply(&e->fake, service("default", name, NULL));
    }
    /* The first two Services pages are slow (1 s): while the second one waits, the list's RV is compacted
     * away, so its continue token expires (410) and the list starts over from the first page. */
    ctl_do(&e->fake, "POST", "/fake/faults",
           "{\"fault\":\"slow\",\"prefix\":\"/api/v1/services\",\"watch\":false,\"count\":2,\"delay\":1.0}");
    env_connect(e, NULL);
    list_all_run_t run = {.conn = e->conn, .opts = test_options()};
    run.opts.page_limit = 2;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, list_all_thread, &run), 0);
    wait_for_services_continue(e);
    ctl_do(&e->fake, "DELETE", "/fake/objects?kind=Service&namespace=default&name=svc0", NULL);
    ctl_do(&e->fake, "POST", "/fake/compact", NULL);
    assert_int_equal(pthread_join(t, NULL), 0);
    if (run.err)
        print_error("%s\n", run.diag.msg);
    assert_int_equal(run.err, EKG_OK);
    /* web and svc1..svc4, once each: the expired attempt's first page (which had svc0) is not in the result
     */
    assert_int_equal(run.objs.nservices, 5);
    for (size_t i = 0; i < run.objs.nservices; i++)
        for (size_t j = i + 1; j < run.objs.nservices; j++)
            assert_string_not_equal(run.objs.services[i]->meta.name, run.objs.services[j]->meta.name);
    for (size_t i = 0; i < run.objs.nservices; i++)
        assert_string_not_equal(run.objs.services[i]->meta.name, "svc0");
    cJSON *reqs = requests(&e->fake, "/api/v1/services");
    int expired = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, reqs)
    {
        expired += req_status(r) == 410;
    }
    cJSON_Delete(reqs);
    assert_int_equal(expired, 1); /* the path under test was taken */
    ekg_objects_free(&run.objs);
    env_free(e);
}

static int teardown_env(void **state)
{
    (void)state;
    if (current_env)
        env_free(current_env);
    restore_stderr(true); /* still capturing here: the test failed */
    return 0;
}

/* --- HTTP/2 -----------------------------------------------------------------------------------------------
 *
 * Over TLS with ALPN h2 (the watcher asks for HTTP/2 over TLS only: docs/internals/watcher.md, "Streams")
 * every stream of the watcher is one HTTP/2 stream of one connection. The fake's /fake/connections says which
 * connections it accepted and how many streams each carried at once; every request in its log names its
 * connection ("conn") and protocol ("http").
 */

/* Sets the running test's transport to HTTP/2; teardown_h2 puts it back. */
static int setup_h2(void **state)
{
    (void)state;
    snprintf(transport.dir, sizeof(transport.dir), "/tmp/ekg-watcher-h2-XXXXXX");
    assert_non_null(mkdtemp(transport.dir));
    transport.h2 = true;
    return 0;
}

static int teardown_h2(void **state)
{
    teardown_env(state);
    const char *files[] = {"ca.crt",     "ca.key",     "ca.srl",     "server.crt",
                           "server.key", "server.csr", "server.ext", "kubeconfig"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", transport.dir, files[i]);
        unlink(path);
    }
    rmdir(transport.dir);
    transport.h2 = false;
    return 0;
}

static const char *const H2_NAMESPACES[] = {"a", "b", "c"};
#define H2_STREAMS 7 /* Services and EndpointSlices in three namespaces, and Nodes */

static double num(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The connections that carried Kubernetes requests (control requests aside), oldest first. Caller deletes. */
static cJSON *used_connections(fake_t *f)
{
    char *body = ctl(f, "GET", "/fake/connections", NULL);
    cJSON *all = cJSON_Parse(body), *used = cJSON_CreateArray();
    free(body);
    assert_true(cJSON_IsArray(all));
    cJSON *c;
    cJSON_ArrayForEach(c, all)
    {
        if (num(c, "requests") > 0)
            cJSON_AddItemToArray(used, cJSON_Duplicate(c, true));
    }
    cJSON_Delete(all);
    return used;
}

/* Every Kubernetes request in the log went over HTTP/2 on connection conn (any, with conn < 0). */
static void assert_all_h2(fake_t *f, int conn)
{
    cJSON *reqs = requests(f, "/api");
    const cJSON *r;
    cJSON_ArrayForEach(r, reqs)
    {
        assert_string_equal(str(r, "http"), "2");
        if (conn >= 0)
            assert_int_equal((int)num(r, "conn"), conn);
    }
    cJSON_Delete(reqs);
}

/*
 * The resourceVersion a path's watch delivered last on connection conn: its last event's (bookmarks
 * included), or the one it started from. NULL: no watch of that path there.
 */
static const char *last_rv_on(const cJSON *reqs, const char *path, int conn)
{
    const char *rv = NULL;
    const cJSON *r;
    cJSON_ArrayForEach(r, reqs)
    {
        if ((int)num(r, "conn") != conn || !is_watch(r) || strcmp(str(r, "path"), path) != 0)
            continue;
        rv = str(r, "last_rv") ? str(r, "last_rv") : query(r, "resourceVersion");
    }
    return rv;
}

/*
 * After the connection `before` went away, each path's first request on another connection is a watch (no
 * relist) from the resourceVersion its watch on `before` delivered last: the watcher resumed where it was.
 * Returns how many paths were checked.
 */
static int assert_resumed(fake_t *f, int before)
{
    cJSON *reqs = requests(f, "/api");
    int paths = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, reqs)
    {
        if ((int)num(r, "conn") == before)
            continue;
        const char *path = str(r, "path");
        bool first = true;
        const cJSON *q;
        cJSON_ArrayForEach(q, reqs)
        {
            if (q == r)
                break;
            if ((int)num(q, "conn") != before && strcmp(str(q, "path"), path) == 0)
                first = false;
        }
        const char *was = last_rv_on(reqs, path, before);
        if (!first || !was) /* not the first, or a stream that was not watching on `before` */
            continue;
        if (!is_watch(r) || !query(r, "resourceVersion") || strcmp(query(r, "resourceVersion"), was) != 0)
            print_error("%s resumed with %s resourceVersion=%s, expected a watch from %s\n", path,
                        is_watch(r) ? "a watch" : "a list", query(r, "resourceVersion"), was);
        assert_true(is_watch(r));
        assert_string_equal(query(r, "resourceVersion"), was);
        paths++;
    }
    cJSON_Delete(reqs);
    return paths;
}

/*
 * Waits (bounded) until connection `old` is closed and every stream watches again on others; returns how many
 * connections (all HTTP/2) took over. libcurl 7.88 may open up to one per stream restarted in the same round:
 * its PIPEWAIT waits for a connection's handshake only while it does not know whether the host multiplexes,
 * and once it knows, a connection still in its handshake counts as full.
 */
static int wait_taken_over(fake_t *f, int old)
{
    ctl_do(f, "POST", "/fake/wait-watchers?n=7&timeout=10", NULL);
    bool closed = false;
    int fresh = 0;
    for (long long deadline = now_ms() + WAIT_MS; !closed && now_ms() < deadline;) {
        cJSON *used = used_connections(f);
        const cJSON *c;
        fresh = 0;
        cJSON_ArrayForEach(c, used)
        {
            if ((int)num(c, "id") == old) {
                closed = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(c, "closed"));
            } else {
                assert_string_equal(str(c, "proto"), "h2");
                fresh++;
            }
        }
        cJSON_Delete(used);
        if (!closed)
            sleep_ms(20);
    }
    assert_true(closed);
    assert_true(fresh >= 1 && fresh <= H2_STREAMS);
    return fresh;
}

/* Node n1, and in each of the three namespaces Service web with slice web-1 at 10.1.<i>.1; the watcher on all
 * three (7 streams), each web cluster required in every publish. */
static void h2_start(env_t *e, ekg_watch_options_t *o)
{
    apply(&e->fake, node("n1", "za"));
    static const char *const clusters[] = {"a:web:http", "b:web:http", "c:web:http"};
    for (int i = 0; i < 3; i++) {
        char addr[32];
        snprintf(addr, sizeof(addr), "10.1.%d.1", i);
        apply(&e->fake, service(H2_NAMESPACES[i], "web", NULL));
        apply(&e->fake, slice(H2_NAMESPACES[i], "web-1", "web", addr));
        e->keep[e->nkeep++] = clusters[i];
    }
    o->namespaces = H2_NAMESPACES;
    o->nnamespaces = 3;
    env_watch(e, o);
    wait_synced(e);
    ctl_do(&e->fake, "POST", "/fake/wait-watchers?n=7&timeout=10", NULL);
}

/* A change in each namespace (slice web-1 to 10.1.<i>.<host>) arrives. */
static void h2_change_all(env_t *e, int host)
{
    char addr[3][32];
    for (int i = 0; i < 3; i++) {
        snprintf(addr[i], sizeof(addr[i]), "10.1.%d.%d", i, host);
        apply(&e->fake, slice(H2_NAMESPACES[i], "web-1", "web", addr[i]));
    }
    WAIT_UNTIL(la_has_address(e, "a:web:http", addr[0]) && la_has_address(e, "b:web:http", addr[1]) &&
               la_has_address(e, "c:web:http", addr[2]));
}

/*
 * Seven streams, one connection: the seven first lists start in the same round, before any connection exists,
 * and CURLOPT_PIPEWAIT makes them wait for the first one to learn that it multiplexes rather than open one
 * connection each (what libcurl does without it, as `curl --parallel --parallel-immediate` shows against the
 * same fake). The seven watches are then open at once on that connection, and so are they after every watch
 * ended and started again.
 */
static void test_h2_streams_share_one_connection(void **state)
{
    (void)state;
    env_t *e = env_new(0, NULL);
    ekg_watch_options_t o = test_options();
    h2_start(e, &o);
    cJSON *used = used_connections(&e->fake);
    assert_int_equal(cJSON_GetArraySize(used), 1);
    const cJSON *c = cJSON_GetArrayItem(used, 0);
    int id = (int)num(c, "id");
    assert_string_equal(str(c, "proto"), "h2");
    assert_int_equal((int)num(c, "requests"), 2 * H2_STREAMS); /* a list and a watch each */
    assert_true(num(c, "max_active") >= H2_STREAMS);           /* the watches stream at once */
    cJSON_Delete(used);
    assert_all_h2(&e->fake, id);

    /* Events interleave on the shared connection: each namespace's change arrives. */
    h2_change_all(e, 2);
    /* Every watch ends (cleanly) and starts again: on the same connection, from its last resourceVersion. */
    ctl_do(&e->fake, "DELETE", "/fake/requests", NULL);
    ctl_do(&e->fake, "POST", "/fake/close-watches", NULL);
    ctl_do(&e->fake, "POST", "/fake/wait-watchers?n=7&timeout=10", NULL);
    h2_change_all(e, 3);
    used = used_connections(&e->fake);
    assert_int_equal(cJSON_GetArraySize(used), 1);
    assert_int_equal((int)num(cJSON_GetArrayItem(used, 0), "id"), id);
    assert_true(num(cJSON_GetArrayItem(used, 0), "requests") >= 3 * H2_STREAMS);
    cJSON_Delete(used);
    assert_all_h2(&e->fake, id);
    for (int r = 0; r < EKG_KUBE__COUNT; r++) {
        ekg_watch_status_t st = status(e, (ekg_kube_resource_t)r);
        assert_int_equal(st.relists, 0);
        assert_int_equal(st.reconnects, 0);
    }
    assert_int_equal(atomic_load(&e->lost), 0);
    env_free(e);
}

/* The requests of the log (a cJSON array) on path, in order, as a new array of references. */
static cJSON *on_path(const cJSON *reqs, const char *path)
{
    cJSON *out = cJSON_CreateArray();
    const cJSON *r;
    cJSON_ArrayForEach(r, reqs)
    {
        if (strcmp(str(r, "path"), path) == 0)
            cJSON_AddItemReferenceToArray(out, (cJSON *)r);
    }
    return out;
}

/*
 * Idle detection on a live connection: one watch (Services in namespace a) receives nothing at all, not even
 * a bookmark, while the six others on the same connection get bookmarks. libcurl's low-speed limit is per
 * transfer, so that one watch alone is restarted idle_timeout_s after it started (libcurl samples once a
 * second), from the resourceVersion it had; the others are not interrupted.
 */
static void test_h2_idle_stream_restarted(void **state)
{
    (void)state;
    env_t *e = env_new(0, NULL);
    ctl_do(&e->fake, "POST", "/fake/config", "{\"bookmark_interval\":0.3}");
    ekg_watch_options_t o = test_options();
    o.idle_timeout_s = 2;
    h2_start(e, &o);
    ctl_do(&e->fake, "POST", "/fake/faults",
           "{\"fault\":\"stall\",\"prefix\":\"/api/v1/namespaces/a/services\",\"watch\":true,\"count\":1}");
    ctl_do(&e->fake, "DELETE", "/fake/requests", NULL);
    ctl_do(&e->fake, "POST", "/fake/close-watches", NULL); /* the re-watch of a/services meets the stall */
    ctl_do(&e->fake, "POST", "/fake/wait-watchers?n=7&timeout=10", NULL);
    apply(&e->fake, service("a", "late", NULL)); /* only the restarted watch can bring it */
    WAIT_UNTIL(has(e, EKG_RESOURCE_CLUSTER, "a:late:http"));

    cJSON *reqs = requests(&e->fake, "/api");
    cJSON *stalled = on_path(reqs, "/api/v1/namespaces/a/services");
    assert_true(cJSON_GetArraySize(stalled) >= 2);
    const cJSON *first = cJSON_GetArrayItem(stalled, 0), *next = cJSON_GetArrayItem(stalled, 1);
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(first, "faults"), 0)->valuestring,
                        "stall");
    double idle = num(next, "time") - num(first, "time");
    if (idle < 1.9 || idle > 4.0)
        print_error("the stalled watch was restarted after %.2f s (idle_timeout_s=2)\n", idle);
    assert_true(idle >= 1.9); /* not before the idle timeout */
    assert_true(idle <= 4.0); /* the timeout, libcurl's 1 s sampling, a backoff of at most 400 ms */
    assert_true(is_watch(next));
    assert_string_equal(query(next, "resourceVersion"), query(first, "resourceVersion"));
    cJSON_Delete(stalled);
    /* The other six watches were not interrupted: one watch request each since the close. */
    const char *others[] = {"/api/v1/namespaces/b/services",
                            "/api/v1/namespaces/c/services",
                            "/apis/discovery.k8s.io/v1/namespaces/a/endpointslices",
                            "/apis/discovery.k8s.io/v1/namespaces/b/endpointslices",
                            "/apis/discovery.k8s.io/v1/namespaces/c/endpointslices",
                            "/api/v1/nodes"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        cJSON *p = on_path(reqs, others[i]);
        if (cJSON_GetArraySize(p) != 1)
            print_error("%s: %d requests\n", others[i], cJSON_GetArraySize(p));
        assert_int_equal(cJSON_GetArraySize(p), 1);
        cJSON_Delete(p);
    }
    cJSON_Delete(reqs);
    assert_int_equal(status(e, EKG_KUBE_SERVICES).reconnects, 1);
    assert_int_equal(status(e, EKG_KUBE_SERVICES).relists, 0);
    assert_int_equal(status(e, EKG_KUBE_ENDPOINT_SLICES).reconnects, 0);
    assert_int_equal(status(e, EKG_KUBE_NODES).reconnects, 0);
    /* The connection talks (bookmarks): it is kept, and the restarted watch is multiplexed onto it again. */
    cJSON *used = used_connections(&e->fake);
    assert_int_equal(cJSON_GetArraySize(used), 1);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(used, 0), "closed")));
    assert_all_h2(&e->fake, (int)num(cJSON_GetArrayItem(used, 0), "id"));
    cJSON_Delete(used);
    assert_int_equal(atomic_load(&e->lost), 0);
    env_free(e);
}

/*
 * A dead connection: the fake stops sending anything on it (a peer gone dark whose kernel still acknowledges,
 * so TCP keepalive never fails). No stream on it gets a bookmark, so they time out after idle_timeout_s; the
 * watcher then shuts the connection down (libcurl would multiplex every retry onto it again) and each stream
 * resumes on a new connection without a relist. What changed meanwhile arrives; nothing is removed.
 */
static void test_h2_dead_connection_detected(void **state)
{
    (void)state;
    env_t *e = env_new(0, NULL);
    ctl_do(&e->fake, "POST", "/fake/config", "{\"bookmark_interval\":0.3}");
    ekg_watch_options_t o = test_options();
    o.idle_timeout_s = 2;
    h2_start(e, &o);
    cJSON *used = used_connections(&e->fake);
    assert_int_equal(cJSON_GetArraySize(used), 1);
    int dead = (int)num(cJSON_GetArrayItem(used, 0), "id");
    cJSON_Delete(used);
    long long t0 = now_ms();
    ctl_do(&e->fake, "POST", "/fake/freeze", "{}");
    h2_change_all(e, 5);
    long long took = now_ms() - t0;
    if (took < 1900 || took > 6000)
        print_error("the changes arrived %lld ms after the freeze (idle_timeout_s=2)\n", took);
    assert_true(took >= 1900); /* nothing came over the dead connection: only the idle timeout helped */
    assert_true(took <= 6000); /* the timeout, libcurl's 1 s sampling, a backoff, a new connection */
    wait_taken_over(&e->fake, dead);
    for (int r = 0; r < EKG_KUBE__COUNT; r++) {
        ekg_watch_status_t st = status(e, (ekg_kube_resource_t)r);
        assert_true(st.reconnects >= 1);
        assert_int_equal(st.relists, 0);
    }
    cJSON *reqs = requests(&e->fake, "/api");
    const cJSON *r;
    cJSON_ArrayForEach(r, reqs)
    {
        if ((int)num(r, "conn") != dead)
            assert_true(is_watch(r)); /* resumed, never relisted */
    }
    cJSON_Delete(reqs);
    h2_change_all(e, 6); /* and the new connections work */
    assert_int_equal(atomic_load(&e->lost), 0);
    env_free(e);
}

/*
 * A graceful GOAWAY (NO_ERROR, every open stream processed), as a server that is going away sends it: the
 * open watches go on and deliver; when they end, their next watches go to a new connection (the old one
 * takes no new stream and closes), each from the resourceVersion it had, without an error, a relist or a
 * removal.
 */
static void test_h2_goaway_graceful(void **state)
{
    (void)state;
    env_t *e = env_new(0, NULL);
    ekg_watch_options_t o = test_options();
    h2_start(e, &o);
    ctl_do(&e->fake, "POST", "/fake/goaway", "{\"mode\":\"graceful\"}");
    h2_change_all(e, 2); /* over the open streams of the connection going away */
    cJSON *used = used_connections(&e->fake);
    assert_int_equal(cJSON_GetArraySize(used), 1);
    int old = (int)num(cJSON_GetArrayItem(used, 0), "id");
    assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(used, 0), "goaway")));
    cJSON_Delete(used);

    ctl_do(&e->fake, "POST", "/fake/close-watches", NULL); /* the watches end: the next ones go elsewhere */
    wait_taken_over(&e->fake, old);
    assert_int_equal(assert_resumed(&e->fake, old), H2_STREAMS);
    h2_change_all(e, 3);
    for (int r = 0; r < EKG_KUBE__COUNT; r++) {
        ekg_watch_status_t st = status(e, (ekg_kube_resource_t)r);
        assert_int_equal(st.reconnects, 0);
        assert_int_equal(st.relists, 0);
        assert_string_equal(st.last_error, "");
    }
    assert_int_equal(atomic_load(&e->lost), 0);
    env_free(e);
}

/*
 * A GOAWAY mid-watch after which the server closes the connection at once (a server stopping hard): every
 * stream is cut. The watcher reconnects, each stream resumes its watch from the last resourceVersion it
 * received, and what changed while it was away arrives: a change in each namespace, a new Service and a
 * deletion. Only the deleted Service leaves; no publish lacks anything else.
 */
static void test_h2_goaway_close_mid_watch(void **state)
{
    (void)state;
    env_t *e = env_new(0, NULL);
    apply(&e->fake, service("a", "gone", NULL));
    ekg_watch_options_t o = test_options();
    h2_start(e, &o);
    assert_true(has(e, EKG_RESOURCE_CLUSTER, "a:gone:http"));
    h2_change_all(e, 2); /* the watches have moved past the lists' resourceVersions */
    cJSON *used = used_connections(&e->fake);
    assert_int_equal(cJSON_GetArraySize(used), 1);
    int old = (int)num(cJSON_GetArrayItem(used, 0), "id");
    cJSON_Delete(used);

    ctl_do(&e->fake, "POST", "/fake/goaway", "{\"mode\":\"close\"}");
    ctl_do(&e->fake, "DELETE", "/fake/objects?kind=Service&namespace=a&name=gone", NULL);
    apply(&e->fake, service("b", "new", NULL));
    h2_change_all(e, 3);
    WAIT_UNTIL(has(e, EKG_RESOURCE_CLUSTER, "b:new:http") && !has(e, EKG_RESOURCE_CLUSTER, "a:gone:http"));
    wait_taken_over(&e->fake, old);
    assert_int_equal(assert_resumed(&e->fake, old), H2_STREAMS);
    unsigned long long reconnects = 0;
    for (int r = 0; r < EKG_KUBE__COUNT; r++) {
        ekg_watch_status_t st = status(e, (ekg_kube_resource_t)r);
        reconnects += st.reconnects;
        assert_int_equal(st.relists, 0);
    }
    assert_true(reconnects >= 1); /* the streams were cut, not ended */
    assert_int_equal(atomic_load(&e->lost), 0);
    env_free(e);
}

/* A test over HTTP/2, named "h2/<test>": the HTTP/2 tests, and the tests above as well (same behaviour
 * whatever the transport). */
#define H2(test)                                                                                             \
    {                                                                                                        \
        .name = "h2/" #test, .test_func = test, .setup_func = setup_h2, .teardown_func = teardown_h2         \
    }

static int setup(void **state)
{
    (void)state;
    ekg_diag_t diag = {{0}};
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *level = getenv("EKG_TEST_LOG");
    ekg_log_set_level(level ? (ekg_log_level_t)ekg_log_parse_level(level) : EKG_LOG_ERROR);
    if (ekg_proto_init(&diag) != EKG_OK) {
        fprintf(stderr, "ekg_proto_init: %s\n", diag.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    if (access("/usr/bin/python3", X_OK) != 0) {
        fprintf(stderr, "watcher_test: /usr/bin/python3 is missing: skipped\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_initial_sync_update_delete, teardown_env),
        cmocka_unit_test_teardown(test_pagination_and_expired_continue, teardown_env),
        cmocka_unit_test_teardown(test_too_old_http_410, teardown_env),
        cmocka_unit_test_teardown(test_too_old_error_event, teardown_env),
        cmocka_unit_test_teardown(test_bookmarks_and_timeout_rewatch, teardown_env),
        cmocka_unit_test_teardown(test_split_and_big_events, teardown_env),
        cmocka_unit_test_teardown(test_stall_detected_by_idle_timeout, teardown_env),
        cmocka_unit_test_teardown(test_reset_mid_event, teardown_env),
        cmocka_unit_test_teardown(test_5xx_backoff_then_recovery, teardown_env),
        cmocka_unit_test_teardown(test_api_down_keeps_state, teardown_env),
        cmocka_unit_test_teardown(test_401_until_the_token_changes, teardown_env),
        cmocka_unit_test_teardown(test_namespaces_and_selector, teardown_env),
        cmocka_unit_test_teardown(test_skipped_version_is_read_again, teardown_env),
        cmocka_unit_test_teardown(test_list_all, teardown_env),
        cmocka_unit_test_teardown(test_list_all_starts_over_without_duplicates, teardown_env),
        H2(test_h2_streams_share_one_connection),
        H2(test_h2_idle_stream_restarted),
        H2(test_h2_dead_connection_detected),
        H2(test_h2_goaway_graceful),
        H2(test_h2_goaway_close_mid_watch),
        H2(test_initial_sync_update_delete),
        H2(test_too_old_error_event),
        H2(test_split_and_big_events),
        H2(test_reset_mid_event),
        H2(test_5xx_backoff_then_recovery),
        H2(test_api_down_keeps_state),
        H2(test_401_until_the_token_changes),
        H2(test_namespaces_and_selector),
        H2(test_list_all),
    };
    if (getenv("EKG_TEST_FILTER"))
        cmocka_set_test_filter(getenv("EKG_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
