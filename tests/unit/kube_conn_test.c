/*
 * tests/unit/kube_conn_test.c: src/watch/kube_conn.c: resolution order (--master, --kubeconfig, $KUBECONFIG,
 * in-cluster), every kubeconfig field honoured or refused, error messages with file, line and field, what
 * prepare() puts into a request (seen by a tiny HTTP listener on 127.0.0.1 that echoes the request, or that
 * captures a TLS ClientHello to see the server name), token re-reads on a fake clock, and the base64 decoder.
 *
 * Files live in a mkdtemp directory made per test; environment variables are set inside tests and cleared by
 * the per-test setup. Thread: the test's main thread; each listener runs on its own thread and only touches
 * its struct until joined.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "ekglue/watch.h"
#include "ekglue/log.h"
#include "watch/kube_conn_internal.h"

/* --- temporary files ---------------------------------------------------------------------------------------
 */

static char g_dir[256];
static char *g_made[64]; /* files and directories to remove, in creation order */
static size_t g_nmade;

/* Cleared before and after each test; the proxy variables so that curl talks to the test's listeners. */
static const char *const ENV_VARS[] = {"KUBECONFIG",
                                       "KUBERNETES_SERVICE_HOST",
                                       "KUBERNETES_SERVICE_PORT",
                                       "EKG_SERVICEACCOUNT_DIR",
                                       "http_proxy",
                                       "https_proxy",
                                       "HTTPS_PROXY",
                                       "all_proxy",
                                       "ALL_PROXY"};

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/ekg-kube-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    g_nmade = 0;
    for (size_t i = 0; i < sizeof(ENV_VARS) / sizeof(ENV_VARS[0]); i++)
        unsetenv(ENV_VARS[i]);
    ekg_kube_conn_set_clock(NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    while (g_nmade > 0) {
        g_nmade--;
        remove(g_made[g_nmade]);
        free(g_made[g_nmade]);
    }
    rmdir(g_dir);
    for (size_t i = 0; i < sizeof(ENV_VARS) / sizeof(ENV_VARS[0]); i++)
        unsetenv(ENV_VARS[i]);
    ekg_kube_conn_set_clock(NULL);
    return 0;
}

/* g_dir/name; the result lives until the next call with the same buffer. */
static const char *tpath(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", g_dir, name);
    return buf;
}

static void track(const char *path)
{
    for (size_t i = 0; i < g_nmade; i++)
        if (strcmp(g_made[i], path) == 0)
            return;
    assert_true(g_nmade < sizeof(g_made) / sizeof(g_made[0]));
    g_made[g_nmade++] = strdup(path);
}

static void make_dir(const char *name)
{
    char p[512];
    assert_int_equal(mkdir(tpath(p, sizeof(p), name), 0700), 0);
    track(p);
}

/* Writes g_dir/name (printf-formatted content). */
static void write_file(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void write_file(const char *name, const char *fmt, ...)
{
    char p[512];
    tpath(p, sizeof(p), name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    assert_int_equal(fclose(f), 0);
    track(p);
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!haystack || !strstr(haystack, needle))
        print_error("\"%s\" does not contain \"%s\"\n", haystack ? haystack : "(null)", needle);
    assert_non_null(haystack);
    assert_non_null(strstr(haystack, needle));
}

static void assert_not_contains(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle))
        print_error("\"%s\" contains \"%s\"\n", haystack, needle);
    assert_null(strstr(haystack, needle));
}

/* --- base64 for fixtures -----------------------------------------------------------------------------------
 */

static char *b64_encode(const void *data, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *in = data;
    char *out = malloc((len + 2) / 3 * 4 + 1);
    assert_non_null(out);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = 0;
    return out;
}

static const char FAKE_PEM[] = "-----BEGIN CERTIFICATE-----\nTUlJQg==\n-----END CERTIFICATE-----\n";
static const char FAKE_KEY[] = "-----BEGIN PRIVATE KEY-----\nTUlJQg==\n-----END PRIVATE KEY-----\n";

/* --- resolving -------------------------------------------------------------------------------------------
 */

static ekg_kube_conn_t *resolve_ok(const ekg_kube_options_t *opts)
{
    ekg_kube_conn_t *c = NULL;
    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_kube_conn_resolve(opts, &c, &diag);
    if (err)
        print_error("unexpected error %s: %s\n", ekg_strerror(err), diag.msg);
    assert_int_equal(err, EKG_OK);
    assert_non_null(c);
    return c;
}

/* Expects want; returns the message in diag. */
static void resolve_err(const ekg_kube_options_t *opts, ekg_err_t want, ekg_diag_t *diag)
{
    ekg_kube_conn_t *c = (ekg_kube_conn_t *)(uintptr_t)1;
    memset(diag, 0, sizeof(*diag));
    ekg_err_t err = ekg_kube_conn_resolve(opts, &c, diag);
    if (err != want)
        print_error("got %s (%s), want %s\n", ekg_strerror(err), diag->msg, ekg_strerror(want));
    assert_int_equal(err, want);
    assert_ptr_equal(c, (ekg_kube_conn_t *)(uintptr_t)1);
    assert_true(diag->msg[0] != 0);
}

/* Resolves the kubeconfig g_dir/config (with optional --context/--master), expecting an error. */
static void kubeconfig_err(const char *context, ekg_err_t want, ekg_diag_t *diag)
{
    char p[512];
    ekg_kube_options_t o = {.kubeconfig = tpath(p, sizeof(p), "config"), .context = context};
    resolve_err(&o, want, diag);
}

static ekg_kube_conn_t *kubeconfig_ok(const char *context, const char *master)
{
    char p[512];
    ekg_kube_options_t o = {
        .kubeconfig = tpath(p, sizeof(p), "config"), .context = context, .master = master};
    return resolve_ok(&o);
}

/* A kubeconfig with one context "ctx" joining cluster "c" (cluster_body) and user "u" (user_body). */
static void write_kubeconfig(const char *cluster_body, const char *user_body)
{
    write_file("config",
               "apiVersion: v1\n"
               "kind: Config\n"
               "current-context: ctx\n"
               "clusters:\n"
               "- name: c\n"
               "  cluster:\n"
               "%s"
               "contexts:\n"
               "- name: ctx\n"
               "  context:\n"
               "    cluster: c\n"
               "    user: u\n"
               "    namespace: ns\n"
               "users:\n"
               "- name: u\n"
               "  user:\n"
               "%s",
               cluster_body, user_body);
}

#define SERVER_LINE "    server: https://127.0.0.1:6443\n"

/* --- headers ---------------------------------------------------------------------------------------------
 */

/* The value of header name in list, or NULL. */
static const char *header_value(const struct curl_slist *l, const char *name)
{
    size_t n = strlen(name);
    for (; l; l = l->next)
        if (strncasecmp(l->data, name, n) == 0 && l->data[n] == ':')
            return l->data + n + 2;
    return NULL;
}

/* prepare() on a fresh handle; returns the header list (caller frees). */
static struct curl_slist *prepare_headers(ekg_kube_conn_t *c, const char *path)
{
    CURL *h = curl_easy_init();
    assert_non_null(h);
    struct curl_slist *headers = NULL;
    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_kube_conn_prepare(c, h, path, &headers, &diag);
    if (err)
        print_error("prepare: %s\n", diag.msg);
    assert_int_equal(err, EKG_OK);
    curl_easy_cleanup(h);
    return headers;
}

static void assert_bearer(ekg_kube_conn_t *c, const char *want)
{
    struct curl_slist *headers = prepare_headers(c, "/api/v1/nodes");
    const char *auth = header_value(headers, "Authorization");
    char expect[256];
    if (want) {
        snprintf(expect, sizeof(expect), "Bearer %s", want);
        assert_non_null(auth);
        assert_string_equal(auth, expect);
    } else {
        assert_null(auth);
    }
    assert_string_equal(header_value(headers, "Accept"), "application/json");
    curl_slist_free_all(headers);
}

/* --- a one-connection listener on 127.0.0.1 (or ::1) -------------------------------------------------------
 */

typedef struct listener {
    int fd;
    int port;
    pthread_t thread;
    char got[16384]; /* what the client sent: an HTTP request head, or a TLS ClientHello record */
    size_t len;
} listener_t;

static void *listener_main(void *arg)
{
    listener_t *l = arg;
    struct pollfd pfd = {.fd = l->fd, .events = POLLIN};
    if (poll(&pfd, 1, 5000) != 1)
        return NULL;
    int s = accept(l->fd, NULL, NULL);
    if (s < 0)
        return NULL;
    for (;;) {
        struct pollfd cp = {.fd = s, .events = POLLIN};
        if (poll(&cp, 1, 5000) != 1)
            break;
        ssize_t n = read(s, l->got + l->len, sizeof(l->got) - 1 - l->len);
        if (n <= 0)
            break;
        l->len += (size_t)n;
        l->got[l->len] = 0;
        if (l->len >= 5 && (unsigned char)l->got[0] == 0x16) { /* TLS: one whole handshake record is enough */
            size_t rec = 5 + (((size_t)(unsigned char)l->got[3] << 8) | (unsigned char)l->got[4]);
            if (l->len >= rec)
                break;
            continue;
        }
        if (strstr(l->got, "\r\n\r\n")) {
            char head[128];
            int hn = snprintf(head, sizeof(head),
                              "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                              "Connection: close\r\n\r\n",
                              l->len);
            if (write(s, head, (size_t)hn) != hn || write(s, l->got, l->len) != (ssize_t)l->len)
                break;
            break;
        }
        if (l->len + 1 >= sizeof(l->got))
            break;
    }
    close(s);
    return NULL;
}

/* Starts a listener; returns false (without failing) if the address family is unavailable. */
static bool listener_start(listener_t *l, bool v6)
{
    memset(l, 0, sizeof(*l));
    l->fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    if (l->fd < 0)
        return false;
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        sl = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sl = sizeof(*a);
    }
    if (bind(l->fd, (struct sockaddr *)&ss, sl) != 0 || listen(l->fd, 4) != 0 ||
        getsockname(l->fd, (struct sockaddr *)&ss, &sl) != 0) {
        close(l->fd);
        return false;
    }
    l->port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    assert_int_equal(pthread_create(&l->thread, NULL, listener_main, l), 0);
    return true;
}

static void listener_join(listener_t *l)
{
    pthread_join(l->thread, NULL);
    close(l->fd);
}

static size_t collect(char *ptr, size_t size, size_t n, void *ud)
{
    char *buf = ud;
    size_t have = strlen(buf), add = size * n;
    if (have + add >= 16384)
        add = 16383 - have;
    memcpy(buf + have, ptr, add);
    buf[have + add] = 0;
    return size * n;
}

/* prepare() + perform; the response body goes to body (16 KiB), curl's message to errbuf. */
static CURLcode perform(ekg_kube_conn_t *c, const char *path, char *body, char errbuf[CURL_ERROR_SIZE])
{
    CURL *h = curl_easy_init();
    assert_non_null(h);
    struct curl_slist *headers = NULL;
    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_kube_conn_prepare(c, h, path, &headers, &diag);
    if (err)
        print_error("prepare: %s\n", diag.msg);
    assert_int_equal(err, EKG_OK);
    body[0] = 0;
    errbuf[0] = 0;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    return rc;
}

/* --- base64 ----------------------------------------------------------------------------------------------
 */

static void b64_ok(const char *in, const char *want, size_t want_len)
{
    unsigned char *out = NULL;
    size_t len = 0;
    ekg_err_t err = ekg_kube_base64_decode(in, strlen(in), &out, &len);
    if (err)
        print_error("\"%s\" did not decode\n", in);
    assert_int_equal(err, EKG_OK);
    assert_int_equal(len, want_len);
    assert_memory_equal(out, want, want_len);
    assert_int_equal(out[len], 0);
    free(out);
}

static void b64_bad(const char *in, size_t len)
{
    unsigned char *out = (unsigned char *)(uintptr_t)1;
    size_t olen = 77;
    ekg_err_t err = ekg_kube_base64_decode(in, len, &out, &olen);
    if (err != EKG_EPARSE)
        print_error("\"%s\" decoded\n", in);
    assert_int_equal(err, EKG_EPARSE);
    assert_ptr_equal(out, (unsigned char *)(uintptr_t)1);
    assert_int_equal(olen, 77);
}

static void test_base64(void **state)
{
    (void)state;
    /* RFC 4648 section 10 vectors, padded and unpadded. */
    b64_ok("", "", 0);
    b64_ok("Zg==", "f", 1);
    b64_ok("Zm8=", "fo", 2);
    b64_ok("Zm9v", "foo", 3);
    b64_ok("Zm9vYg==", "foob", 4);
    b64_ok("Zm9vYmE=", "fooba", 5);
    b64_ok("Zm9vYmFy", "foobar", 6);
    b64_ok("Zg", "f", 1);
    b64_ok("Zm8", "fo", 2);
    b64_ok("Zm9vYmE", "fooba", 5);
    /* Line breaks and blanks anywhere (PEM-style wrapping, YAML folding). */
    b64_ok("Zm9v\nYmFy\r\n", "foobar", 6);
    b64_ok(" Zm 9v\tYg =\n= ", "foob", 4);
    b64_ok("\n\n", "", 0);
    /* Non-zero leftover bits are ignored ("Zh==" is 'f' with a stray bit). */
    b64_ok("Zh==", "f", 1);
    /* The whole alphabet, and every byte value round-tripped at each tail length. */
    b64_ok("+/+/", "\xfb\xff\xbf", 3);
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (size_t n = 253; n <= 256; n++) {
        char *enc = b64_encode(all, n);
        b64_ok(enc, (const char *)all, n);
        free(enc);
    }

    b64_bad("Z", 1);        /* one character cannot make a byte */
    b64_bad("Zm9vY", 5);    /* ... nor can it at the end of longer input */
    b64_bad("=", 1);        /* padding alone */
    b64_bad("Zm9v=", 5);    /* padding starting a quantum */
    b64_bad("Z===", 4);     /* padding after one character */
    b64_bad("Zg=", 3);      /* incomplete padding */
    b64_bad("Zg===", 5);    /* too much padding */
    b64_bad("Zm8==", 5);    /* too much padding after three characters */
    b64_bad("Zg==Zg==", 8); /* data after padding */
    b64_bad("Zg=\n=Zm9v", 9);
    b64_bad("Zm9*", 4);     /* outside the alphabet */
    b64_bad("Zm-_", 4);     /* the URL-safe alphabet is not standard base64 */
    b64_bad("Zm\0v", 4);    /* embedded NUL */
    b64_bad("Zm9v\x80", 5); /* high bytes */
}

/* --- kubeconfig: fields ----------------------------------------------------------------------------------
 */

static void test_kubeconfig_token_request(void **state)
{
    (void)state;
    listener_t l;
    assert_true(listener_start(&l, false));
    char cluster[128];
    snprintf(cluster, sizeof(cluster), "    server: http://127.0.0.1:%d/\n", l.port);
    write_kubeconfig(cluster, "    token: abc.def-ghi\n");
    ekg_kube_conn_t *c = kubeconfig_ok(NULL, NULL);
    char want[128];
    snprintf(want, sizeof(want), "http://127.0.0.1:%d", l.port);
    assert_string_equal(ekg_kube_conn_server(c), want); /* trailing slash dropped */
    assert_contains(ekg_kube_conn_describe(c), want);
    assert_contains(ekg_kube_conn_describe(c), ", context ctx, token, plain http)");
    assert_not_contains(ekg_kube_conn_describe(c), "abc.def");

    char body[16384], errbuf[CURL_ERROR_SIZE];
    CURLcode rc = perform(c, "/api/v1/services?limit=500", body, errbuf);
    if (rc != CURLE_OK)
        print_error("curl: %s\n", errbuf);
    assert_int_equal(rc, CURLE_OK);
    listener_join(&l);
    assert_contains(body, "GET /api/v1/services?limit=500 HTTP/1.1\r\n");
    assert_contains(body, "\r\nAuthorization: Bearer abc.def-ghi\r\n");
    assert_contains(body, "\r\nAccept: application/json\r\n");
    ekg_kube_conn_free(c);
}

static void test_kubeconfig_path_prefix(void **state)
{
    (void)state;
    /* A server behind a proxy path keeps its prefix; the request path is appended to it. */
    write_kubeconfig("    server: https://rancher.example:8443/k8s/clusters/c-1//\n", "    token: t\n");
    ekg_kube_conn_t *c = kubeconfig_ok(NULL, NULL);
    assert_string_equal(ekg_kube_conn_server(c), "https://rancher.example:8443/k8s/clusters/c-1");
    ekg_kube_conn_free(c);
}

static void test_kubeconfig_files_relative(void **state)
{
    (void)state;
    make_dir("sub");
    write_file("sub/ca.crt", "%s", FAKE_PEM);
    write_file("sub/client.crt", "%s", FAKE_PEM);
    write_file("sub/client.key", "%s", FAKE_KEY);
    write_file("sub/token", "  file-token-1\n\n");
    write_kubeconfig(SERVER_LINE "    certificate-authority: sub/ca.crt\n",
                     "    client-certificate: sub/client.crt\n"
                     "    client-key: sub/client.key\n"
                     "    tokenFile: sub/token\n"
                     "    token: ignored-when-a-file-is-given\n");
    /* Relative to the kubeconfig's directory, not the working directory. */
    assert_int_equal(chdir("/"), 0);
    ekg_kube_conn_t *c = kubeconfig_ok(NULL, NULL);
    assert_string_equal(ekg_kube_conn_server(c), "https://127.0.0.1:6443");
    assert_contains(ekg_kube_conn_describe(c), "client certificate and token file)");
    assert_bearer(c, "file-token-1"); /* trimmed; the file wins over token */
    ekg_kube_conn_free(c);

    /* A relative --kubeconfig path works from its own working directory. */
    assert_int_equal(chdir(g_dir), 0);
    ekg_kube_options_t o = {.kubeconfig = "config"};
    c = resolve_ok(&o);
    assert_bearer(c, "file-token-1");
    ekg_kube_conn_free(c);
    assert_int_equal(chdir("/"), 0);
}

static void test_kubeconfig_tls_files_reach_curl(void **state)
{
    (void)state;
    /* The CA file is handed to curl as a path: a PEM file that holds no real certificate makes curl fail to
     * load it, naming the resolved path. */
    listener_t l;
    assert_true(listener_start(&l, false));
    make_dir("pki");
    write_file("pki/ca.crt", "%s", FAKE_PEM);
    char cluster[256];
    snprintf(cluster, sizeof(cluster),
             "    server: https://127.0.0.1:%d\n    certificate-authority: pki/ca.crt\n", l.port);
    write_kubeconfig(cluster, "    token: t\n");
    ekg_kube_conn_t *c = kubeconfig_ok(NULL, NULL);
    char body[16384], errbuf[CURL_ERROR_SIZE], path[512];
    CURLcode rc = perform(c, "/version", body, errbuf);
    listener_join(&l);
    assert_int_equal(rc, CURLE_SSL_CACERT_BADFILE);
    assert_contains(errbuf, tpath(path, sizeof(path), "pki/ca.crt"));
    ekg_kube_conn_free(c);

    /* The same for the client certificate. */
    assert_true(listener_start(&l, false));
    write_file("pki/client.crt", "%s", FAKE_PEM);
    write_file("pki/client.key", "%s", FAKE_KEY);
    snprintf(cluster, sizeof(cluster),
             "    server: https://127.0.0.1:%d\n    insecure-skip-tls-verify: true\n", l.port);
    write_kubeconfig(cluster, "    client-certificate: pki/client.crt\n    client-key: pki/client.key\n");
    c = kubeconfig_ok(NULL, NULL);
    rc = perform(c, "/version", body, errbuf);
    listener_join(&l);
    assert_int_equal(rc, CURLE_SSL_CERTPROBLEM);
    assert_contains(errbuf, tpath(path, sizeof(path), "pki/client.crt"));
    ekg_kube_conn_free(c);
}

static void test_kubeconfig_data_fields(void **state)
{
    (void)state;
    char *pem = b64_encode(FAKE_PEM, strlen(FAKE_PEM));
    char *key = b64_encode(FAKE_KEY, strlen(FAKE_KEY));
    char cluster[1024], user[2048], body[16384], errbuf[CURL_ERROR_SIZE];

    /* The decoded CA goes to curl as a blob, which curl then fails to import (it is not a real certificate).
     */
    listener_t l;
    assert_true(listener_start(&l, false));
    snprintf(cluster, sizeof(cluster),
             "    server: https://127.0.0.1:%d\n    certificate-authority-data: %s\n", l.port, pem);
    write_kubeconfig(cluster, "    token: t\n");
    ekg_kube_conn_t *c = kubeconfig_ok(NULL, NULL);
    CURLcode rc = perform(c, "/version", body, errbuf);
    listener_join(&l);
    assert_int_equal(rc, CURLE_SSL_CACERT_BADFILE);
    assert_contains(errbuf, "blob");
    ekg_kube_conn_free(c);

    /* The same for the client certificate and key, wrapped over several lines as YAML may fold them. */
    assert_true(listener_start(&l, false));
    snprintf(cluster, sizeof(cluster),
             "    server: https://127.0.0.1:%d\n    insecure-skip-tls-verify: true\n", l.port);
    snprintf(user, sizeof(user),
             "    client-certificate-data: |\n      %.20s\n      %s\n    client-key-data: %s\n", pem,
             pem + 20, key);
    write_kubeconfig(cluster, user);
    c = kubeconfig_ok(NULL, NULL);
    assert_contains(ekg_kube_conn_describe(c),
                    ", context ctx, client certificate, TLS verification disabled)");
    assert_bearer(c, NULL);
    rc = perform(c, "/version", body, errbuf);
    listener_join(&l);
    assert_int_equal(rc, CURLE_SSL_CERTPROBLEM);
    assert_contains(errbuf, "CURLOPT_SSLCERT_BLOB");
    ekg_kube_conn_free(c);
    free(pem);
    free(key);
}

static void test_kubeconfig_data_errors(void **state)
{
    (void)state;
    ekg_diag_t diag;
    char path[512], want[2048];
    tpath(path, sizeof(path), "config");

    write_kubeconfig(SERVER_LINE "    certificate-authority-data: 'bm90*'\n", "    token: t\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    snprintf(want, sizeof(want), "%s:8: clusters[c].cluster.certificate-authority-data: not valid base64",
             path);
    assert_string_equal(diag.msg, want);

    char *notpem = b64_encode("hello", 5);
    char user[256];
    snprintf(user, sizeof(user), "    client-certificate-data: %s\n    client-key-data: %s\n", notpem,
             notpem);
    write_kubeconfig(SERVER_LINE, user);
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    snprintf(want, sizeof(want), "%s:17: users[u].user.client-certificate-data: the decoded data is not PEM",
             path);
    assert_contains(diag.msg, want);
    free(notpem);

    /* Path and data together. */
    char *pem = b64_encode(FAKE_PEM, strlen(FAKE_PEM));
    write_file("ca.crt", "%s", FAKE_PEM);
    char cluster[512];
    snprintf(cluster, sizeof(cluster),
             SERVER_LINE "    certificate-authority: ca.crt\n"
                         "    certificate-authority-data: %s\n",
             pem);
    write_kubeconfig(cluster, "    token: t\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg,
                    ":9: clusters[c].cluster: certificate-authority and certificate-authority-data are "
                    "both set");
    write_file("c.crt", "%s", FAKE_PEM);
    snprintf(user, sizeof(user), "    client-certificate: c.crt\n    client-certificate-data: %s\n", pem);
    write_kubeconfig(SERVER_LINE, user);
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, "users[u].user: client-certificate and client-certificate-data are both set");
    free(pem);

    /* A certificate needs a key and the other way round. */
    write_kubeconfig(SERVER_LINE, "    client-certificate: c.crt\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, ":16: users[u].user: a client certificate without a client-key");
    write_file("c.key", "%s", FAKE_KEY);
    write_kubeconfig(SERVER_LINE, "    client-key: c.key\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, "users[u].user: a client key without a client-certificate");

    /* Unreadable files are named with their resolved path. */
    write_kubeconfig(SERVER_LINE "    certificate-authority: missing/ca.crt\n", "    token: t\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    snprintf(want, sizeof(want),
             "%s:8: clusters[c].cluster.certificate-authority: cannot read %s/missing/ca.crt: ", path, g_dir);
    assert_contains(diag.msg, want);
    write_kubeconfig(SERVER_LINE, "    tokenFile: /nonexistent/token\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, ":17: users[u].user.tokenFile: cannot read /nonexistent/token");
}

static void test_kubeconfig_insecure_and_server_name(void **state)
{
    (void)state;
    write_kubeconfig(SERVER_LINE "    insecure-skip-tls-verify: true\n", "    token: t\n");
    ekg_kube_conn_t *c = kubeconfig_ok(NULL, NULL);
    assert_contains(ekg_kube_conn_describe(c), "TLS verification disabled");
    ekg_kube_conn_free(c);

    write_kubeconfig(SERVER_LINE "    insecure-skip-tls-verify: false\n", "    token: t\n");
    c = kubeconfig_ok(NULL, NULL);
    assert_not_contains(ekg_kube_conn_describe(c), "TLS verification");
    ekg_kube_conn_free(c);

    ekg_diag_t diag;
    write_kubeconfig(SERVER_LINE "    insecure-skip-tls-verify: 'yes'\n", "    token: t\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, ":8: clusters[c].cluster.insecure-skip-tls-verify: must be true or false");

    char *pem = b64_encode(FAKE_PEM, strlen(FAKE_PEM));
    char cluster[512];
    snprintf(cluster, sizeof(cluster),
             SERVER_LINE "    certificate-authority-data: %s\n"
                         "    insecure-skip-tls-verify: true\n",
             pem);
    write_kubeconfig(cluster, "    token: t\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, ":9: clusters[c].cluster.insecure-skip-tls-verify: cannot be combined with a "
                              "certificate authority");
    free(pem);

    write_kubeconfig(SERVER_LINE "    tls-server-name: kubernetes.default.svc\n", "    token: t\n");
    c = kubeconfig_ok(NULL, NULL);
    assert_string_equal(ekg_kube_conn_server(c), "https://127.0.0.1:6443"); /* the real server, for logs */
    assert_contains(ekg_kube_conn_describe(c), ", tls-server-name kubernetes.default.svc)");
    ekg_kube_conn_free(c);

    write_kubeconfig(SERVER_LINE "    tls-server-name: 'a/b'\n", "    token: t\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, ":8: clusters[c].cluster.tls-server-name: \"a/b\" is not a host name");
}

static bool bytes_contain(const char *buf, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, needle, n) == 0)
            return true;
    return false;
}

/* Captures the ClientHello of a connection to ipv6 ? ::1 : 127.0.0.1 with tls-server-name set. */
static void check_server_name_on_the_wire(bool v6)
{
    listener_t l;
    if (!listener_start(&l, v6)) {
        print_message("no %s loopback: skipped\n", v6 ? "IPv6" : "IPv4");
        return;
    }
    char cluster[256];
    snprintf(cluster, sizeof(cluster),
             "    server: https://%s:%d\n    tls-server-name: api.cluster.example\n"
             "    insecure-skip-tls-verify: true\n",
             v6 ? "[::1]" : "127.0.0.1", l.port);
    write_kubeconfig(cluster, "    token: t\n");
    ekg_kube_conn_t *c = kubeconfig_ok(NULL, NULL);
    char body[16384], errbuf[CURL_ERROR_SIZE];
    CURLcode rc = perform(c, "/api", body, errbuf);
    listener_join(&l);
    assert_int_not_equal(rc, CURLE_OK); /* the listener closes after the ClientHello */
    /* The connection reached the real address (CONNECT_TO) and the ClientHello's SNI carries the name. */
    assert_true(l.len > 5);
    assert_int_equal((unsigned char)l.got[0], 0x16);
    assert_true(bytes_contain(l.got, l.len, "api.cluster.example"));
    ekg_kube_conn_free(c);
}

static void test_kubeconfig_server_name_on_the_wire(void **state)
{
    (void)state;
    check_server_name_on_the_wire(false);
    check_server_name_on_the_wire(true);
}

static void test_kubeconfig_refused_fields(void **state)
{
    (void)state;
    ekg_diag_t diag;
    char path[512], want[2048];
    tpath(path, sizeof(path), "config");

    write_kubeconfig(SERVER_LINE, "    exec:\n"
                                  "      apiVersion: client.authentication.k8s.io/v1\n"
                                  "      command: aws\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    snprintf(want, sizeof(want),
             "%s:17: users[u].user.exec: exec credential plugins are not supported; use a token or client "
             "certificate",
             path);
    assert_string_equal(diag.msg, want);

    write_kubeconfig(SERVER_LINE, "    token: t\n    auth-provider:\n      name: gcp\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    snprintf(
        want, sizeof(want),
        "%s:18: users[u].user.auth-provider: auth-provider plugins are not supported; use a token or client "
        "certificate",
        path);
    assert_string_equal(diag.msg, want);

    write_kubeconfig(SERVER_LINE, "    username: admin\n    password: secret\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, ":17: users[u].user.username: basic authentication is not supported");
    assert_not_contains(diag.msg, "secret");

    write_kubeconfig(SERVER_LINE, "    token: t\n    as: someone-else\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, ":18: users[u].user.as: impersonation is not supported");

    /* A token that would split the header. */
    write_kubeconfig(SERVER_LINE, "    token: \"abc\\r\\nX-Evil: 1\"\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, ":17: users[u].user.token: blanks or control characters in the token");
    assert_not_contains(diag.msg, "abc");

    /* Null members count as absent (exec: null is not an exec plugin). */
    write_kubeconfig(SERVER_LINE, "    token: t\n    exec: null\n");
    ekg_kube_conn_t *c = kubeconfig_ok(NULL, NULL);
    ekg_kube_conn_free(c);
}

static void test_kubeconfig_proxy_url(void **state)
{
    (void)state;
    /* The listener plays an HTTP proxy: it sees the absolute URL of the real server, and the token. */
    listener_t l;
    assert_true(listener_start(&l, false));
    char cluster[256];
    snprintf(cluster, sizeof(cluster),
             "    server: http://api.example:6443\n    proxy-url: http://user:pw@127.0.0.1:%d\n", l.port);
    write_kubeconfig(cluster, "    token: via-proxy\n");
    ekg_kube_conn_t *c = kubeconfig_ok(NULL, NULL);
    assert_contains(ekg_kube_conn_describe(c), ", via proxy-url)");
    assert_not_contains(ekg_kube_conn_describe(c), "pw");
    char body[16384], errbuf[CURL_ERROR_SIZE];
    CURL *h = curl_easy_init();
    struct curl_slist *headers = NULL;
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_kube_conn_prepare(c, h, "/api/v1/nodes", &headers, &diag), EKG_OK);
    body[0] = 0;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK)
        print_error("curl: %s\n", errbuf);
    assert_int_equal(rc, CURLE_OK);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    listener_join(&l);
    assert_contains(body, "GET http://api.example:6443/api/v1/nodes HTTP/1.1\r\n");
    assert_contains(body, "\r\nProxy-Authorization: Basic ");
    assert_contains(body, "\r\nAuthorization: Bearer via-proxy\r\n");
    ekg_kube_conn_free(c);

    /* With tls-server-name, the proxy is asked to CONNECT to the real host. */
    assert_true(listener_start(&l, false));
    snprintf(cluster, sizeof(cluster),
             "    server: https://10.1.2.3:6443\n    tls-server-name: api.example\n"
             "    proxy-url: http://127.0.0.1:%d\n",
             l.port);
    write_kubeconfig(cluster, "    token: t\n");
    c = kubeconfig_ok(NULL, NULL);
    rc = perform(c, "/api", body, errbuf);
    listener_join(&l);
    assert_int_not_equal(rc, CURLE_OK); /* the "proxy" does not really tunnel */
    assert_contains(l.got, "CONNECT 10.1.2.3:6443 HTTP/1.1\r\n");
    ekg_kube_conn_free(c);

    write_kubeconfig(SERVER_LINE "    proxy-url: ftp://user:secret@proxy\n", "    token: t\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, ":8: clusters[c].cluster.proxy-url: the scheme must be http, https or socks5");
    assert_not_contains(diag.msg, "secret");
    write_kubeconfig(SERVER_LINE "    proxy-url: 'socks5://proxy:1080'\n", "    token: t\n");
    c = kubeconfig_ok(NULL, NULL);
    ekg_kube_conn_free(c);
}

static void test_kubeconfig_context_selection(void **state)
{
    (void)state;
    write_file("config", "current-context: one\n"
                         "clusters:\n"
                         "- name: c1\n"
                         "  cluster: {server: 'https://one.example:6443'}\n"
                         "- name: c2\n"
                         "  cluster: {server: 'https://[fd00::2]:443'}\n"
                         "contexts:\n"
                         "- name: one\n"
                         "  context: {cluster: c1, user: u1}\n"
                         "- name: two\n"
                         "  context: {cluster: c2, user: u2}\n"
                         "- name: anonymous\n"
                         "  context: {cluster: c2}\n"
                         "users:\n"
                         "- name: u1\n"
                         "  user: {token: token-one}\n"
                         "- name: u2\n"
                         "  user: {token: token-two}\n");
    ekg_kube_conn_t *c = kubeconfig_ok(NULL, NULL);
    assert_string_equal(ekg_kube_conn_server(c), "https://one.example:6443");
    assert_contains(ekg_kube_conn_describe(c), ", context one, token)");
    assert_bearer(c, "token-one");
    ekg_kube_conn_free(c);

    c = kubeconfig_ok("two", NULL);
    assert_string_equal(ekg_kube_conn_server(c), "https://[fd00::2]:443");
    assert_contains(ekg_kube_conn_describe(c), ", context two, token)");
    assert_bearer(c, "token-two");
    ekg_kube_conn_free(c);

    /* A context without a user: no credentials. */
    c = kubeconfig_ok("anonymous", NULL);
    assert_contains(ekg_kube_conn_describe(c), ", context anonymous, no auth)");
    assert_bearer(c, NULL);
    ekg_kube_conn_free(c);

    ekg_diag_t diag;
    kubeconfig_err("three", EKG_ECONFIG, &diag);
    assert_contains(diag.msg, "config: contexts: no context named \"three\" (from --context)");
}

static void test_kubeconfig_missing_pieces(void **state)
{
    (void)state;
    ekg_diag_t diag;
    char path[512], want[2048];
    tpath(path, sizeof(path), "config");

    write_file("config", "clusters: []\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    snprintf(want, sizeof(want), "%s: current-context: not set (pass --context NAME)", path);
    assert_string_equal(diag.msg, want);

    write_file("config", "# only a comment\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_string_equal(diag.msg, want);

    write_file("config", "current-context: gone\ncontexts: []\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    snprintf(want, sizeof(want), "%s:1: contexts: no context named \"gone\"", path);
    assert_string_equal(diag.msg, want);

    write_file("config", "current-context: x\n"
                         "contexts:\n"
                         "- name: x\n"
                         "  context: {cluster: nowhere, user: nobody}\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    snprintf(want, sizeof(want),
             "%s:4: contexts[x].context.cluster: no cluster named \"nowhere\" in clusters", path);
    assert_string_equal(diag.msg, want);

    write_file("config", "current-context: x\n"
                         "clusters:\n"
                         "- name: c\n"
                         "  cluster: {server: 'https://h'}\n"
                         "contexts:\n"
                         "- name: x\n"
                         "  context:\n"
                         "    cluster: c\n"
                         "    user: nobody\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    snprintf(want, sizeof(want), "%s:9: contexts[x].context.user: no user named \"nobody\" in users", path);
    assert_string_equal(diag.msg, want);

    write_file("config", "current-context: x\n"
                         "contexts:\n"
                         "- name: x\n"
                         "  context: {user: u}\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    snprintf(want, sizeof(want), "%s:4: contexts[x].context.cluster: missing", path);
    assert_string_equal(diag.msg, want);

    write_kubeconfig("    insecure-skip-tls-verify: true\n", "    token: t\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, "clusters[c].cluster.server: missing");

    write_file("config", "current-context: x\n"
                         "contexts:\n"
                         "- name: x\n"
                         "clusters: {}\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    snprintf(want, sizeof(want), "%s:3: contexts[x]: has no context", path);
    assert_string_equal(diag.msg, want);

    write_file("config", "current-context: x\n"
                         "contexts:\n"
                         "- name: x\n"
                         "  context: {cluster: c}\n"
                         "clusters: {}\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    snprintf(want, sizeof(want), "%s:5: clusters: must be a list", path);
    assert_string_equal(diag.msg, want);

    write_file("config", "current-context: [x]\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, ":1: current-context: must be a string");

    write_file("config", "a: 1\n---\nb: 2\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, ":3: a kubeconfig is one YAML document, not 2");

    write_file("config", "a: [\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, path);

    /* Bad server URLs. */
    write_kubeconfig("    server: ftp://h\n", "    token: t\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg,
                    ":7: clusters[c].cluster.server: \"ftp://h\": the scheme must be https or http");
    write_kubeconfig("    server: 127.0.0.1:6443\n", "    token: t\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, ":7: clusters[c].cluster.server: ");
    write_kubeconfig("    server: https:/h\n", "    token: t\n"); /* libcurl would connect to "h" */
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg,
                    ":7: clusters[c].cluster.server: \"https:/h\" is not a URL; expected https://HOST");
    write_kubeconfig("    server: https:///h/x\n", "    token: t\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, "\"https:///h/x\" is not a URL");
    write_kubeconfig("    server: https://h/?x=1\n", "    token: t\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, "a server URL cannot have a query or fragment");
    write_kubeconfig("    server: https://user:pw@h\n", "    token: t\n");
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, "credentials in the URL are not supported");
    assert_not_contains(diag.msg, "pw");

    /* An explicit --kubeconfig that does not exist. */
    ekg_kube_options_t o = {.kubeconfig = "/nonexistent/kubeconfig"};
    resolve_err(&o, EKG_EIO, &diag);
    assert_contains(diag.msg, "/nonexistent/kubeconfig");
}

static void test_kubeconfig_json(void **state)
{
    (void)state;
    /* `kubectl config view -o json` output. Positions are unknown for JSON: messages name the file only. */
    write_file("config",
               "{\"current-context\": \"j\",\n"
               " \"clusters\": [{\"name\": \"c\", \"cluster\": {\"server\": \"https://json.example\"}}],\n"
               " \"contexts\": [{\"name\": \"j\", \"context\": {\"cluster\": \"c\", \"user\": \"u\"}}],\n"
               " \"users\": [{\"name\": \"u\", \"user\": {\"token\": \"json-token\"}}]}\n");
    ekg_kube_conn_t *c = kubeconfig_ok(NULL, NULL);
    assert_string_equal(ekg_kube_conn_server(c), "https://json.example");
    assert_bearer(c, "json-token");
    ekg_kube_conn_free(c);

    write_file("config",
               "{\"current-context\": \"j\",\n"
               " \"clusters\": [{\"name\": \"c\", \"cluster\": {\"server\": \"https://json.example\"}}],\n"
               " \"contexts\": [{\"name\": \"j\", \"context\": {\"cluster\": \"c\", \"user\": \"u\"}}],\n"
               " \"users\": [{\"name\": \"u\", \"user\": {\"exec\": {\"command\": \"x\"}}}]}\n");
    ekg_diag_t diag;
    char path[512], want[2048];
    kubeconfig_err(NULL, EKG_ECONFIG, &diag);
    snprintf(want, sizeof(want), "%s: users[u].user.exec: exec credential plugins are not supported",
             tpath(path, sizeof(path), "config"));
    assert_contains(diag.msg, want);
}

/* --- $KUBECONFIG, --master, in-cluster, nothing ------------------------------------------------------------
 */

static void test_kubeconfig_env_list(void **state)
{
    (void)state;
    write_file("second", "current-context: s\n"
                         "clusters: [{name: c, cluster: {server: 'https://second'}}]\n"
                         "contexts: [{name: s, context: {cluster: c}}]\n");
    write_file("third", "current-context: t\n"
                        "clusters: [{name: c, cluster: {server: 'https://third'}}]\n"
                        "contexts: [{name: t, context: {cluster: c}}]\n");
    char env[2048], p2[512], p3[512];
    snprintf(env, sizeof(env), "%s/first::%s:%s", g_dir, tpath(p2, sizeof(p2), "second"),
             tpath(p3, sizeof(p3), "third"));
    setenv("KUBECONFIG", env, 1);
    ekg_kube_conn_t *c = resolve_ok(NULL);
    assert_string_equal(ekg_kube_conn_server(c), "https://second"); /* first that exists; no merging */
    char want[2048];
    snprintf(want, sizeof(want), "(kubeconfig %s, context s, no auth)", p2);
    assert_contains(ekg_kube_conn_describe(c), want);
    ekg_kube_conn_free(c);

    /* --kubeconfig wins over $KUBECONFIG. */
    ekg_kube_options_t o = {.kubeconfig = p3};
    c = resolve_ok(&o);
    assert_string_equal(ekg_kube_conn_server(c), "https://third");
    ekg_kube_conn_free(c);

    /* $KUBECONFIG wins over in-cluster. */
    setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    c = resolve_ok(NULL);
    assert_string_equal(ekg_kube_conn_server(c), "https://second");
    ekg_kube_conn_free(c);
    unsetenv("KUBERNETES_SERVICE_HOST");

    /* None of the listed files exists: as if unset. */
    snprintf(env, sizeof(env), "%s/nope:%s/nope2", g_dir, g_dir);
    setenv("KUBECONFIG", env, 1);
    ekg_diag_t diag;
    resolve_err(NULL, EKG_ENOENT, &diag);
    setenv("KUBECONFIG", "", 1);
    resolve_err(NULL, EKG_ENOENT, &diag);
    setenv("KUBECONFIG", ":::", 1);
    resolve_err(NULL, EKG_ENOENT, &diag);
}

static void test_master_alone(void **state)
{
    (void)state;
    listener_t l;
    assert_true(listener_start(&l, false));
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", l.port);
    /* --master wins over in-cluster, and brings no credentials. */
    setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    ekg_kube_options_t o = {.master = url};
    ekg_kube_conn_t *c = resolve_ok(&o);
    assert_string_equal(ekg_kube_conn_server(c), url);
    char want[256];
    snprintf(want, sizeof(want), "%s (--master, no auth)", url);
    assert_string_equal(ekg_kube_conn_describe(c), want);
    char body[16384], errbuf[CURL_ERROR_SIZE];
    CURLcode rc =
        perform(c, "/apis/discovery.k8s.io/v1/endpointslices?watch=1&resourceVersion=5", body, errbuf);
    if (rc != CURLE_OK)
        print_error("curl: %s\n", errbuf);
    assert_int_equal(rc, CURLE_OK);
    listener_join(&l);
    assert_contains(body,
                    "GET /apis/discovery.k8s.io/v1/endpointslices?watch=1&resourceVersion=5 HTTP/1.1\r\n");
    assert_not_contains(body, "Authorization");
    ekg_kube_conn_free(c);

    o.master = "https://api.example:6443/";
    c = resolve_ok(&o);
    assert_string_equal(ekg_kube_conn_server(c), "https://api.example:6443");
    assert_bearer(c, NULL);
    ekg_kube_conn_free(c);

    ekg_diag_t diag;
    o.master = "api.example:6443";
    resolve_err(&o, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, "--master: ");
    o.master = "file:///etc/passwd";
    resolve_err(&o, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, "the scheme must be https or http");
}

static void test_master_with_kubeconfig(void **state)
{
    (void)state;
    /* --master overrides the server; credentials and TLS come from the kubeconfig. */
    write_kubeconfig(SERVER_LINE "    insecure-skip-tls-verify: true\n", "    token: kc-token\n");
    ekg_kube_conn_t *c = kubeconfig_ok(NULL, "https://override.example:8443");
    assert_string_equal(ekg_kube_conn_server(c), "https://override.example:8443");
    assert_contains(ekg_kube_conn_describe(c), "(--master, kubeconfig ");
    assert_contains(ekg_kube_conn_describe(c), ", context ctx, token, TLS verification disabled)");
    assert_bearer(c, "kc-token");
    ekg_kube_conn_free(c);

    /* With --master, a kubeconfig without a current context is fine: the master alone. */
    write_file("config", "clusters: []\n");
    c = kubeconfig_ok(NULL, "https://override.example:8443");
    assert_contains(ekg_kube_conn_describe(c), "without a context, no auth)");
    assert_bearer(c, NULL);
    ekg_kube_conn_free(c);

    /* ... and a context may leave out the cluster. */
    write_file("config", "current-context: x\n"
                         "contexts: [{name: x, context: {user: u}}]\n"
                         "users: [{name: u, user: {token: only-user}}]\n");
    c = kubeconfig_ok(NULL, "https://override.example:8443");
    assert_bearer(c, "only-user");
    ekg_kube_conn_free(c);
}

static void write_service_account(const char *token, bool with_ca)
{
    make_dir("sa");
    write_file("sa/token", "%s", token);
    if (with_ca)
        write_file("sa/ca.crt", "%s", FAKE_PEM);
    char p[512];
    setenv("EKG_SERVICEACCOUNT_DIR", tpath(p, sizeof(p), "sa"), 1);
}

static void test_in_cluster(void **state)
{
    (void)state;
    write_service_account("sa-token\n", true);
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    ekg_kube_conn_t *c = resolve_ok(NULL);
    assert_string_equal(ekg_kube_conn_server(c), "https://10.96.0.1:443");
    char p[512], want[2048];
    snprintf(want, sizeof(want), "https://10.96.0.1:443 (in-cluster, service account %s, token file)",
             tpath(p, sizeof(p), "sa"));
    assert_string_equal(ekg_kube_conn_describe(c), want);
    assert_bearer(c, "sa-token");
    ekg_kube_conn_free(c);

    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    c = resolve_ok(NULL);
    assert_string_equal(ekg_kube_conn_server(c), "https://[fd00::1]:443");
    ekg_kube_conn_free(c);

    setenv("KUBERNETES_SERVICE_HOST", "[fd00::1]", 1); /* already bracketed */
    setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
    c = resolve_ok(NULL);
    assert_string_equal(ekg_kube_conn_server(c), "https://[fd00::1]:6443");
    ekg_kube_conn_free(c);

    ekg_diag_t diag;
    setenv("KUBERNETES_SERVICE_PORT", "https", 1);
    resolve_err(NULL, EKG_ECONFIG, &diag);
    assert_string_equal(diag.msg, "in-cluster: KUBERNETES_SERVICE_PORT=\"https\" is not a port");
    setenv("KUBERNETES_SERVICE_PORT", "70000", 1);
    resolve_err(NULL, EKG_ECONFIG, &diag);

    /* --context makes no sense without a kubeconfig. */
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    ekg_kube_options_t o = {.context = "x"};
    resolve_err(&o, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, "--context x: no kubeconfig");

    /* Only the host: not in a cluster. */
    unsetenv("KUBERNETES_SERVICE_PORT");
    resolve_err(NULL, EKG_ENOENT, &diag);
}

static void test_in_cluster_service_account_problems(void **state)
{
    (void)state;
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    char p[512];
    setenv("EKG_SERVICEACCOUNT_DIR", tpath(p, sizeof(p), "no-such-dir"), 1);
    ekg_diag_t diag;
    resolve_err(NULL, EKG_EIO, &diag);
    assert_contains(diag.msg, "in-cluster: service-account token: cannot read ");
    assert_contains(diag.msg, "no-such-dir/token");

    /* No CA: carries on with the system's CAs, like client-go. */
    write_service_account("tok", false);
    ekg_kube_conn_t *c = resolve_ok(NULL);
    assert_bearer(c, "tok");
    ekg_kube_conn_free(c);

    write_file("sa/token", " \n");
    resolve_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, "sa/token is empty");
    write_file("sa/token", "two words\n");
    resolve_err(NULL, EKG_ECONFIG, &diag);
    assert_contains(diag.msg, "does not hold a token");
    assert_not_contains(diag.msg, "words");

    /* A token file over 64 KiB is refused, and its content stays out of the message. */
    write_file("sa/token", "%065537d", 7);
    resolve_err(NULL, EKG_EIO, &diag);
    assert_contains(diag.msg, "in-cluster: service-account token: cannot read ");
    assert_contains(diag.msg, "sa/token: larger than 65536 bytes");
    assert_not_contains(diag.msg, "0007");
    write_file("sa/token", "%065536d", 7); /* exactly the bound: a (long) token */
    c = resolve_ok(NULL);
    ekg_kube_conn_free(c);
}

static void test_nothing_configured(void **state)
{
    (void)state;
    ekg_diag_t diag;
    resolve_err(NULL, EKG_ENOENT, &diag);
    assert_contains(diag.msg, "no Kubernetes API server configured");
    ekg_kube_options_t o = {0};
    resolve_err(&o, EKG_ENOENT, &diag);
    ekg_kube_conn_t *c = NULL;
    assert_int_equal(ekg_kube_conn_resolve(&o, &c, NULL), EKG_ENOENT); /* diag may be NULL */
    assert_null(c);
    /* Empty strings are unset. */
    ekg_kube_options_t empty = {.kubeconfig = "", .context = "", .master = ""};
    resolve_err(&empty, EKG_ENOENT, &diag);
    setenv("KUBERNETES_SERVICE_HOST", "", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    resolve_err(NULL, EKG_ENOENT, &diag);
}

/* --- tokens over time --------------------------------------------------------------------------------------
 */

static double g_now;
static double fake_clock(void)
{
    return g_now;
}

static void test_token_refresh(void **state)
{
    (void)state;
    ekg_kube_conn_set_clock(fake_clock);
    g_now = 1000;
    write_service_account("token-A\n", true);
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    ekg_kube_conn_t *c = resolve_ok(NULL);
    assert_bearer(c, "token-A");

    /* Rotated on disk, but the last read is fresh: not read again. */
    write_file("sa/token", "token-B\n");
    g_now = 1059;
    assert_bearer(c, "token-A");
    /* A minute old: read again on the next request. */
    g_now = 1060;
    assert_bearer(c, "token-B");
    /* ... and that read restarts the minute. */
    write_file("sa/token", "token-C\n");
    g_now = 1100;
    assert_bearer(c, "token-B");

    /* After a 401: read now. */
    assert_true(ekg_kube_conn_reload_token(c));
    assert_bearer(c, "token-C");
    assert_false(ekg_kube_conn_reload_token(c)); /* unchanged */

    /* A file that disappears or goes bad keeps the last good token. */
    char p[512];
    remove(tpath(p, sizeof(p), "sa/token"));
    g_now = 2000;
    assert_false(ekg_kube_conn_reload_token(c));
    assert_bearer(c, "token-C");
    write_file("sa/token", "\n");
    g_now = 3000;
    assert_bearer(c, "token-C");
    ekg_kube_conn_free(c);
}

static void test_static_token_not_reloaded(void **state)
{
    (void)state;
    ekg_kube_conn_set_clock(fake_clock);
    g_now = 5;
    write_kubeconfig(SERVER_LINE, "    token: static\n");
    ekg_kube_conn_t *c = kubeconfig_ok(NULL, NULL);
    assert_false(ekg_kube_conn_reload_token(c));
    g_now = 500;
    assert_bearer(c, "static");
    ekg_kube_conn_free(c);

    /* A kubeconfig tokenFile is re-read like the service account's. */
    write_file("tok", "one");
    write_kubeconfig(SERVER_LINE, "    tokenFile: tok\n");
    c = kubeconfig_ok(NULL, NULL);
    assert_contains(ekg_kube_conn_describe(c), ", token file)");
    write_file("tok", "two");
    assert_true(ekg_kube_conn_reload_token(c));
    assert_bearer(c, "two");
    ekg_kube_conn_free(c);
}

static void test_prepare_arguments(void **state)
{
    (void)state;
    ekg_kube_options_t o = {.master = "https://h"};
    ekg_kube_conn_t *c = resolve_ok(&o);
    CURL *h = curl_easy_init();
    struct curl_slist *headers = curl_slist_append(NULL, "X-Caller: kept");
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_kube_conn_prepare(c, h, "api/v1/nodes", &headers, &diag), EKG_EINVAL);
    assert_contains(diag.msg, "does not start with '/'");
    assert_int_equal(ekg_kube_conn_prepare(c, h, "/api/v1/nodes", NULL, &diag), EKG_EINVAL);
    /* Headers already in the list stay, in front. */
    assert_int_equal(ekg_kube_conn_prepare(c, h, "/api/v1/nodes", &headers, &diag), EKG_OK);
    assert_string_equal(headers->data, "X-Caller: kept");
    assert_string_equal(header_value(headers, "Accept"), "application/json");
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    assert_false(ekg_kube_conn_reload_token(c));
    assert_false(ekg_kube_conn_reload_token(NULL));
    ekg_kube_conn_free(c);
    ekg_kube_conn_free(NULL);
}

int main(void)
{
    ekg_log_set_level(EKG_LOG_OFF);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test_setup_teardown(test_kubeconfig_token_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_path_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_files_relative, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_tls_files_reach_curl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_data_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_data_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_insecure_and_server_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_server_name_on_the_wire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_refused_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_proxy_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_context_selection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_missing_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_env_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_master_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_master_with_kubeconfig, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_cluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_cluster_service_account_problems, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_configured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_refresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_static_token_not_reloaded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepare_arguments, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
