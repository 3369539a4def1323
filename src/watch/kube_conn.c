/*
 * src/watch/kube_conn.c: where the Kubernetes API server is and how to talk to it (include/ekglue/watch.h).
 *
 * ekg_kube_conn_resolve() turns --master, a kubeconfig or the in-cluster environment into one
 * ekg_kube_conn_t: a base URL, the TLS material (file paths, or decoded PEM bytes for the kubeconfig's *-data
 * fields), an optional tls-server-name redirection, and the credentials. Everything is checked up front, so
 * that a bad kubeconfig fails at startup with "FILE:LINE: clusters[NAME].cluster.KEY: reason" rather than
 * later as a TLS error. ekg_kube_conn_prepare() then only copies that state into a curl easy handle for each
 * request.
 *
 * Tokens read from a file (a kubeconfig's tokenFile, the service-account token the kubelet rotates) are kept
 * in memory and read again when they are older than EKG_KUBE_TOKEN_MAX_AGE_S, or at once after a 401
 * (ekg_kube_conn_reload_token). A failed re-read keeps the previous token. Secrets (tokens, client keys) are
 * never logged or put into diagnostics, and are wiped before their memory is freed.
 *
 * Thread: ekg_kube_conn_resolve() runs on the main thread before the watcher starts. From then on the
 * connection belongs to the watcher thread, which alone calls ekg_kube_conn_prepare() and
 * ekg_kube_conn_reload_token() (both may replace the cached token). ekg_kube_conn_server() and
 * ekg_kube_conn_describe() return strings fixed at resolve time. Design note: docs/internals/kube.md.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "ekglue/watch.h"
#include "ekglue/clock.h"
#include "ekglue/file.h"
#include "ekglue/log.h"
#include "ekglue/yaml.h"
#include "ekglue/mem.h"
#include "watch/kube_conn_internal.h"

#define DEFAULT_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define MAX_TOKEN_FILE ((size_t)64 << 10)        /* a bigger token file is refused */
#define WHY_SIZE       (sizeof(ekg_diag_t) + 64) /* read_token_file's reason: a diag's message and a prefix */

typedef struct blob {
    unsigned char *data; /* decoded PEM, NUL-terminated; NULL = unset */
    size_t len;
} blob_t;

struct ekg_kube_conn {
    char *server;   /* base URL as configured, no trailing slash (ekg_kube_conn_server) */
    char *url_base; /* requests go to url_base + path: server, or it with tls-server-name as the host */
    char *describe; /* ekg_kube_conn_describe */
    bool tls;       /* https */
    bool insecure;  /* insecure-skip-tls-verify */
    char *ca_file;
    blob_t ca_data;
    char *cert_file;
    blob_t cert_data;
    char *key_file;
    blob_t key_data;                /* secret */
    struct curl_slist *connect_to;  /* tls-server-name:PORT:REALHOST:PORT, or NULL */
    char *tls_server_name;          /* for describe; NULL = none */
    char *proxy;                    /* secret (may hold credentials): proxy-url, or NULL for curl's default */
    char *token;                    /* secret: the current bearer token, or NULL */
    char *token_file;               /* where the token comes from and is re-read, or NULL (static token) */
    double token_read_at;           /* clock of the last attempt to read token_file */
    unsigned long token_generation; /* bumped every time the token changes */
};

/* --- clock, secrets, small strings --------------------------------------------------------------------- */

static ekg_kube_clock_fn clock_now = ekg_clock_s;

void ekg_kube_conn_set_clock(ekg_kube_clock_fn now)
{
    clock_now = now ? now : ekg_clock_s;
}

static void free_secret(void *p, size_t len)
{
    if (p) {
        explicit_bzero(p, len);
        free(p);
    }
}

static void free_secret_str(char *s)
{
    if (s)
        free_secret(s, strlen(s));
}

static void blob_free(blob_t *b, bool secret)
{
    if (secret)
        free_secret(b->data, b->len);
    else
        free(b->data);
    b->data = NULL;
    b->len = 0;
}

/* A bearer token must be a single printable, blank-free ASCII word: anything else could split the header. */
static bool token_valid(const char *t)
{
    if (!*t)
        return false;
    for (const unsigned char *p = (const unsigned char *)t; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            return false;
    return true;
}

/* --- base64 -------------------------------------------------------------------------------------------- */

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

ekg_err_t ekg_kube_base64_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
    /* At most 3 bytes per 4 characters, plus 2 for an unpadded tail, plus the NUL. */
    unsigned char *buf = ekg_xmalloc(len / 4 * 3 + 3);
    size_t o = 0;
    uint32_t acc = 0;
    int n = 0;   /* characters in the current quantum */
    int pad = 0; /* '=' seen */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (ch == '\r' || ch == '\n' || ch == ' ' || ch == '\t')
            continue;
        if (ch == '=') {
            if (n < 2 || n + pad >= 4)
                goto bad; /* '=' cannot start a quantum, follow a single character, or overfill one */
            pad++;
            continue;
        }
        int v = b64_value(ch);
        if (v < 0 || pad)
            goto bad; /* not in the alphabet, or data after padding */
        acc = (acc << 6) | (uint32_t)v;
        if (++n == 4) {
            buf[o++] = (unsigned char)(acc >> 16);
            buf[o++] = (unsigned char)(acc >> 8);
            buf[o++] = (unsigned char)acc;
            acc = 0;
            n = 0;
        }
    }
    if (n == 1 || (pad && n + pad != 4))
        goto bad;
    if (n == 2) {
        buf[o++] = (unsigned char)(acc >> 4);
    } else if (n == 3) {
        buf[o++] = (unsigned char)(acc >> 10);
        buf[o++] = (unsigned char)(acc >> 2);
    }
    buf[o] = 0;
    *out = buf;
    *out_len = o;
    return EKG_OK;
bad:
    free_secret(buf, len / 4 * 3 + 3);
    return EKG_EPARSE;
}

/* --- files --------------------------------------------------------------------------------------------- */

/*
 * Reads a token file: surrounding whitespace trimmed, must be a valid token. On success *out is owned by the
 * caller (free_secret_str). On failure (EKG_EIO: unreadable or too big; EKG_ECONFIG: not a token) a reason
 * that never contains file content goes to why. The file's bytes are a secret: ekg_file_read zeroes a buffer
 * it gives up, and the one it returns is zeroed here before it is freed.
 */
static ekg_err_t read_token_file(const char *path, char **out, char *why, size_t whylen)
{
    char *buf = NULL;
    size_t len = 0;
    ekg_diag_t fdiag = {{0}};
    if (ekg_file_read(path, MAX_TOKEN_FILE, EKG_FILE_SECRET, &buf, &len, &fdiag) != EKG_OK) {
        snprintf(why, whylen, "cannot read %s", fdiag.msg); /* "PATH: reason" */
        return EKG_EIO;
    }
    size_t start = 0, end = len;
    while (start < end && buf[start] && strchr(" \t\r\n", buf[start]))
        start++;
    while (end > start && buf[end - 1] && strchr(" \t\r\n", buf[end - 1]))
        end--;
    ekg_err_t err = EKG_OK;
    if (start == end) {
        snprintf(why, whylen, "%s is empty", path);
        err = EKG_ECONFIG;
        goto out;
    }
    buf[end] = 0;
    if (memchr(buf + start, 0, end - start) || !token_valid(buf + start)) {
        snprintf(why, whylen, "%s does not hold a token (blanks or control characters inside)", path);
        err = EKG_ECONFIG;
        goto out;
    }
    *out = ekg_xstrdup(buf + start);
out:
    free_secret(buf, len);
    return err;
}

/* dir + "/" + path unless path is absolute. Owned by the caller. */
static char *path_join(const char *dir, const char *path)
{
    if (path[0] == '/' || !dir)
        return ekg_xstrdup(path);
    return ekg_xasprintf("%s/%s", dir, path);
}

/* The absolute directory of file (not resolving symlinks, like client-go's filepath.Abs). */
static char *abs_dir_of(const char *file)
{
    const char *slash = strrchr(file, '/');
    char *dir = slash ? ekg_xstrndup(file, slash == file ? 1 : (size_t)(slash - file)) : ekg_xstrdup(".");
    if (dir[0] == '/')
        return dir;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)))
        return dir; /* keep it relative to the working directory: still right while nobody chdirs */
    char *abs = strcmp(dir, ".") == 0 ? ekg_xstrdup(cwd) : ekg_xasprintf("%s/%s", cwd, dir);
    free(dir);
    return abs;
}

/* --- URLs ---------------------------------------------------------------------------------------------- */

/* One part of a parsed URL into *out (curl_free): false when the URL has none. */
static bool url_part(CURLU *u, CURLUPart part, char **out)
{
    CURLUcode uc = curl_url_get(u, part, out, 0);
    if (uc == CURLUE_OUT_OF_MEMORY)
        ekg_oom(0);
    return uc == CURLUE_OK;
}

/*
 * Checks an API server URL and stores it in c->server without trailing slashes: http or https, a host, no
 * credentials, query or fragment. A path prefix (a proxy's "/k8s/clusters/c-1") is kept. what names the
 * source for messages ("--master", "FILE:LINE: clusters[x].cluster.server").
 */
static ekg_err_t set_server(ekg_kube_conn_t *c, const char *url, const char *what, ekg_diag_t *diag)
{
    ekg_err_t err = EKG_OK;
    char *scheme = NULL, *user = NULL, *query = NULL, *fragment = NULL;
    CURLU *u = curl_url();
    if (!u)
        ekg_oom(0); /* libcurl fails here only for memory */
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc == CURLUE_OUT_OF_MEMORY)
        ekg_oom(0);
    if (uc) {
        err = ekg_diag_set(diag, EKG_ECONFIG, "%s: \"%s\" is not a URL (%s); expected https://HOST[:PORT]",
                           what, url, curl_url_strerror(uc));
        goto out;
    }
    url_part(u, CURLUPART_SCHEME, &scheme);
    if (!scheme || (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)) {
        err = ekg_diag_set(diag, EKG_ECONFIG, "%s: \"%s\": the scheme must be https or http", what, url);
        goto out;
    }
    /* libcurl also takes "https:/h" and "https:///h", whose host is not what a reader sees (found by
     * tests/fuzz/kubeconfig_fuzz.c: "https:/s5://proxy:1080" connected to a host "s5"): the authority must
     * follow "SCHEME://" as written. */
    const char *rest = url + strlen(scheme);
    if (strncmp(rest, "://", 3) != 0 || rest[3] == '/') {
        err = ekg_diag_set(diag, EKG_ECONFIG, "%s: \"%s\" is not a URL; expected %s://HOST[:PORT]", what, url,
                           scheme);
        goto out;
    }
    if (url_part(u, CURLUPART_USER, &user)) {
        err = ekg_diag_set(diag, EKG_ECONFIG, "%s: credentials in the URL are not supported", what);
        goto out;
    }
    if (url_part(u, CURLUPART_QUERY, &query) || url_part(u, CURLUPART_FRAGMENT, &fragment)) {
        err = ekg_diag_set(diag, EKG_ECONFIG, "%s: \"%s\": a server URL cannot have a query or fragment",
                           what, url);
        goto out;
    }
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    free(c->server);
    c->server = ekg_xstrndup(url, n);
    c->tls = strcmp(scheme, "https") == 0;
out:
    curl_free(scheme);
    curl_free(user);
    curl_free(query);
    curl_free(fragment);
    curl_url_cleanup(u);
    return err;
}

/*
 * tls-server-name: curl has no option for "verify and send SNI for another name", so requests go to a URL
 * whose host is that name, and CURLOPT_CONNECT_TO sends the connection to the real host and port. Sets
 * url_base and connect_to. The Host header then carries the server name too (the API server does not look at
 * it).
 */
static ekg_err_t set_tls_server_name(ekg_kube_conn_t *c, const char *name, const char *what, ekg_diag_t *diag)
{
    ekg_err_t err = EKG_OK;
    char *host = NULL, *port = NULL, *url = NULL, *bracketed = NULL, *entry = NULL;
    if (!*name || strpbrk(name, "/@?#[] \t\r\n")) {
        return ekg_diag_set(diag, EKG_ECONFIG, "%s: \"%s\" is not a host name", what, name);
    }
    CURLU *u = curl_url();
    if (!u)
        ekg_oom(0); /* libcurl fails here only for memory */
    bool v6 = strchr(name, ':') != NULL;
    bracketed = v6 ? ekg_xasprintf("[%s]", name) : ekg_xstrdup(name);
    if (curl_url_set(u, CURLUPART_URL, c->server, 0) || curl_url_get(u, CURLUPART_HOST, &host, 0) ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT))
        ekg_oom(0); /* the server URL was parsed once already: only memory can fail here */
    CURLUcode uc = curl_url_set(u, CURLUPART_HOST, bracketed, 0);
    if (uc == CURLUE_OK)
        uc = curl_url_set(u, CURLUPART_PORT, port, 0);
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_URL, &url, 0);
    if (uc == CURLUE_OUT_OF_MEMORY)
        ekg_oom(0);
    if (uc) {
        err = ekg_diag_set(diag, EKG_ECONFIG, "%s: \"%s\": %s", what, name, curl_url_strerror(uc));
        goto out;
    }
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    /* CURLUPART_HOST keeps the brackets of an IPv6 literal, which is what CONNECT_TO wants. */
    entry = ekg_xasprintf("%s:%s:%s:%s", bracketed, port, host, port);
    struct curl_slist *list = curl_slist_append(NULL, entry);
    if (!list)
        ekg_oom(0);
    free(c->url_base);
    c->url_base = ekg_xstrndup(url, n);
    curl_slist_free_all(c->connect_to);
    c->connect_to = list;
    free(c->tls_server_name);
    c->tls_server_name = ekg_xstrdup(name);
out:
    free(bracketed);
    free(entry);
    curl_free(host);
    curl_free(port);
    curl_free(url);
    curl_url_cleanup(u);
    return err;
}

/* --- the kubeconfig ------------------------------------------------------------------------------------ */

typedef struct kubeconfig {
    const char *file; /* as given, for messages */
    char *dir;        /* absolute directory of file: relative paths start here */
    ekg_yaml_docs_t *docs;
    ekg_diag_t *diag;
} kubeconfig_t;

/* Formats "FILE:LINE: " + message (LINE left out when unknown) into diag and returns err. */
static ekg_err_t kc_fail(kubeconfig_t *k, ekg_err_t err, const cJSON *node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static ekg_err_t kc_fail(kubeconfig_t *k, ekg_err_t err, const cJSON *node, const char *fmt, ...)
{
    char msg[sizeof(k->diag->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int line = node && k->docs ? ekg_yaml_docs_line(k->docs, node, NULL) : 0;
    if (line > 0)
        return ekg_diag_set(k->diag, err, "%s:%d: %s", k->file, line, msg);
    return ekg_diag_set(k->diag, err, "%s: %s", k->file, msg);
}

/* "FILE:LINE: path" (or "FILE: path") into buf, for messages that other functions finish. */
static const char *kc_where(kubeconfig_t *k, const cJSON *node, char *buf, size_t size, const char *path)
{
    int line = node && k->docs ? ekg_yaml_docs_line(k->docs, node, NULL) : 0;
    if (line > 0)
        snprintf(buf, size, "%s:%d: %s", k->file, line, path);
    else
        snprintf(buf, size, "%s: %s", k->file, path);
    return buf;
}

/* A member that is absent or null gives NULL. */
static const cJSON *member(const cJSON *obj, const char *key)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, key);
    return m && !cJSON_IsNull(m) ? m : NULL;
}

/* A string member: *out NULL when absent or null, borrowed otherwise; an error if it is not a string. */
static ekg_err_t get_string(kubeconfig_t *k, const cJSON *obj, const char *key, const char *where,
                            const char **out)
{
    const cJSON *m = member(obj, key);
    *out = NULL;
    if (!m)
        return EKG_OK;
    if (!cJSON_IsString(m))
        return kc_fail(k, EKG_ECONFIG, m, "%s.%s: must be a string", where, key);
    *out = m->valuestring[0] ? m->valuestring : NULL; /* "" is unset, as in client-go */
    return EKG_OK;
}

/*
 * Finds the entry named name in the list root[list] ("clusters", "contexts", "users") and returns its inner
 * mapping (entry[inner]) in *out, or NULL when there is no such entry.
 */
static ekg_err_t find_named(kubeconfig_t *k, const cJSON *root, const char *list, const char *inner,
                            const char *name, const cJSON **out)
{
    *out = NULL;
    const cJSON *arr = member(root, list);
    if (!arr)
        return EKG_OK;
    if (!cJSON_IsArray(arr))
        return kc_fail(k, EKG_ECONFIG, arr, "%s: must be a list", list);
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, arr)
    {
        const cJSON *n = cJSON_IsObject(item) ? member(item, "name") : NULL;
        if (!n || !cJSON_IsString(n))
            return kc_fail(k, EKG_ECONFIG, item, "%s[%d]: must be a mapping with a string name", list, i);
        if (strcmp(n->valuestring, name) == 0) {
            const cJSON *in = member(item, inner);
            if (!in)
                return kc_fail(k, EKG_ECONFIG, item, "%s[%s]: has no %s", list, name, inner);
            if (!cJSON_IsObject(in))
                return kc_fail(k, EKG_ECONFIG, in, "%s[%s].%s: must be a mapping", list, name, inner);
            *out = in;
            return EKG_OK;
        }
        i++;
    }
    return EKG_OK;
}

/* Fields that would change who ekglue is or where it connects: it cannot honour them, so it refuses them. */
typedef struct refused {
    const char *key;
    const char *why;
} refused_t;

#define NO_PLUGINS "plugins are not supported; use a token or client certificate"
#define NO_BASIC_AUTH                                                                                        \
    "basic authentication is not supported (removed from the API server in Kubernetes 1.19); "               \
    "use a token or client certificate"
#define NO_IMPERSONATE "impersonation is not supported"

static const refused_t refused_user[] = {
    {"exec", "exec credential " NO_PLUGINS},
    {"auth-provider", "auth-provider " NO_PLUGINS},
    {"username", NO_BASIC_AUTH},
    {"password", NO_BASIC_AUTH},
    {"as", NO_IMPERSONATE},
    {"as-uid", NO_IMPERSONATE},
    {"as-groups", NO_IMPERSONATE},
    {"as-user-extra", NO_IMPERSONATE},
};

static ekg_err_t check_refused(kubeconfig_t *k, const cJSON *obj, const refused_t *r, size_t n,
                               const char *where)
{
    for (size_t i = 0; i < n; i++) {
        const cJSON *m = member(obj, r[i].key);
        if (m)
            return kc_fail(k, EKG_ECONFIG, m, "%s.%s: %s", where, r[i].key, r[i].why);
    }
    return EKG_OK;
}

/*
 * A file path member: stored absolute-or-relative-to-the-kubeconfig in *out (owned) after checking the file
 * can be read, so that a typo fails at startup.
 */
static ekg_err_t get_path(kubeconfig_t *k, const cJSON *obj, const char *key, const char *where, char **out)
{
    const char *v;
    ekg_err_t err = get_string(k, obj, key, where, &v);
    if (err || !v)
        return err;
    char *p = path_join(k->dir, v);
    if (access(p, R_OK) != 0) {
        int e = errno;
        err = kc_fail(k, EKG_ECONFIG, member(obj, key), "%s.%s: cannot read %s: %s", where, key, p,
                      strerror(e));
        free(p);
        return err;
    }
    *out = p;
    return EKG_OK;
}

/* A base64 PEM member ("...-data"): decoded into *out (owned). */
static ekg_err_t get_pem_data(kubeconfig_t *k, const cJSON *obj, const char *key, const char *where,
                              blob_t *out)
{
    const char *v;
    ekg_err_t err = get_string(k, obj, key, where, &v);
    if (err || !v)
        return err;
    const cJSON *node = member(obj, key);
    err = ekg_kube_base64_decode(v, strlen(v), &out->data, &out->len);
    if (err)
        return kc_fail(k, EKG_ECONFIG, node, "%s.%s: not valid base64", where, key);
    if (!strstr((const char *)out->data, "-----BEGIN ")) {
        blob_free(out, true);
        return kc_fail(k, EKG_ECONFIG, node, "%s.%s: the decoded data is not PEM (no \"-----BEGIN\" line)",
                       where, key);
    }
    return EKG_OK;
}

/*
 * proxy-url: http, https or socks5 (what client-go accepts). The URL may hold the proxy's credentials, so it
 * never appears in a message or the description.
 */
static ekg_err_t set_proxy(kubeconfig_t *k, ekg_kube_conn_t *c, const char *proxy, const cJSON *node,
                           const char *where)
{
    ekg_err_t err = EKG_OK;
    char *scheme = NULL;
    CURLU *u = curl_url();
    if (!u)
        ekg_oom(0); /* libcurl fails here only for memory */
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, proxy, CURLU_NON_SUPPORT_SCHEME); /* socks5 */
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (uc == CURLUE_OUT_OF_MEMORY)
        ekg_oom(0);
    if (uc)
        err = kc_fail(k, EKG_ECONFIG, node, "%s.proxy-url: not a URL (%s)", where, curl_url_strerror(uc));
    else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0 && strcmp(scheme, "socks5") != 0)
        err = kc_fail(k, EKG_ECONFIG, node, "%s.proxy-url: the scheme must be http, https or socks5", where);
    else
        c->proxy = ekg_xstrdup(proxy);
    curl_free(scheme);
    curl_url_cleanup(u);
    return err;
}

/* clusters[NAME].cluster: server (unless --master overrides it), CA, verification, server name, proxy. */
static ekg_err_t load_cluster(kubeconfig_t *k, const cJSON *cl, const char *name, const char *master,
                              ekg_kube_conn_t *c)
{
    char where[300];
    snprintf(where, sizeof(where), "clusters[%s].cluster", name);
    ekg_err_t err;
    const char *server = NULL, *sni = NULL, *proxy = NULL;
    if ((err = get_string(k, cl, "server", where, &server)) ||
        (err = get_string(k, cl, "tls-server-name", where, &sni)) ||
        (err = get_string(k, cl, "proxy-url", where, &proxy)))
        return err;
    if (proxy && (err = set_proxy(k, c, proxy, member(cl, "proxy-url"), where)))
        return err;
    if (master) {
        if ((err = set_server(c, master, "--master", k->diag)))
            return err;
    } else if (!server) {
        return kc_fail(k, EKG_ECONFIG, cl, "%s.server: missing", where);
    } else {
        char path[320], what[400];
        snprintf(path, sizeof(path), "%s.server", where);
        if ((err =
                 set_server(c, server, kc_where(k, member(cl, "server"), what, sizeof(what), path), k->diag)))
            return err;
    }
    if ((err = get_path(k, cl, "certificate-authority", where, &c->ca_file)) ||
        (err = get_pem_data(k, cl, "certificate-authority-data", where, &c->ca_data)))
        return err;
    if (c->ca_file && c->ca_data.data)
        return kc_fail(k, EKG_ECONFIG, member(cl, "certificate-authority-data"),
                       "%s: certificate-authority and certificate-authority-data are both set; keep one",
                       where);
    const cJSON *insecure = member(cl, "insecure-skip-tls-verify");
    if (insecure) {
        if (!cJSON_IsBool(insecure))
            return kc_fail(k, EKG_ECONFIG, insecure, "%s.insecure-skip-tls-verify: must be true or false",
                           where);
        c->insecure = cJSON_IsTrue(insecure);
        if (c->insecure && (c->ca_file || c->ca_data.data))
            return kc_fail(k, EKG_ECONFIG, insecure,
                           "%s.insecure-skip-tls-verify: cannot be combined with a certificate authority",
                           where);
    }
    if (sni && c->tls) {
        char path[320], what[400];
        snprintf(path, sizeof(path), "%s.tls-server-name", where);
        if ((err = set_tls_server_name(
                 c, sni, kc_where(k, member(cl, "tls-server-name"), what, sizeof(what), path), k->diag)))
            return err;
    } else if (sni) {
        ekg_warn("msg=\"kubeconfig: tls-server-name ignored for a plain http server\" file=%s cluster=%s",
                 k->file, name);
    }
    return EKG_OK;
}

/* users[NAME].user: token, tokenFile, client certificate and key. */
static ekg_err_t load_user(kubeconfig_t *k, const cJSON *us, const char *name, ekg_kube_conn_t *c)
{
    char where[300];
    snprintf(where, sizeof(where), "users[%s].user", name);
    ekg_err_t err = check_refused(k, us, refused_user, sizeof(refused_user) / sizeof(refused_user[0]), where);
    if (err)
        return err;
    const char *token = NULL;
    if ((err = get_string(k, us, "token", where, &token)) ||
        (err = get_path(k, us, "tokenFile", where, &c->token_file)) ||
        (err = get_path(k, us, "client-certificate", where, &c->cert_file)) ||
        (err = get_pem_data(k, us, "client-certificate-data", where, &c->cert_data)) ||
        (err = get_path(k, us, "client-key", where, &c->key_file)) ||
        (err = get_pem_data(k, us, "client-key-data", where, &c->key_data)))
        return err;
    if (c->cert_file && c->cert_data.data)
        return kc_fail(k, EKG_ECONFIG, member(us, "client-certificate-data"),
                       "%s: client-certificate and client-certificate-data are both set; keep one", where);
    if (c->key_file && c->key_data.data)
        return kc_fail(k, EKG_ECONFIG, member(us, "client-key-data"),
                       "%s: client-key and client-key-data are both set; keep one", where);
    bool has_cert = c->cert_file || c->cert_data.data, has_key = c->key_file || c->key_data.data;
    if (has_cert != has_key)
        return kc_fail(k, EKG_ECONFIG, us, "%s: %s without %s", where,
                       has_cert ? "a client certificate" : "a client key",
                       has_cert ? "a client-key" : "a client-certificate");
    if (token && !token_valid(token))
        return kc_fail(k, EKG_ECONFIG, member(us, "token"),
                       "%s.token: blanks or control characters in the token", where);
    if (c->token_file) {
        /* As in client-go, a tokenFile wins over token; the file must be readable now. */
        char why[WHY_SIZE];
        err = read_token_file(c->token_file, &c->token, why, sizeof(why));
        if (err)
            return kc_fail(k, err, member(us, "tokenFile"), "%s.tokenFile: %s", where, why);
        c->token_read_at = clock_now();
    } else if (token) {
        c->token = ekg_xstrdup(token);
    }
    return EKG_OK;
}

/*
 * Loads path: picks the context (ctx_name, or current-context), its cluster and user. With master the
 * kubeconfig only contributes TLS settings and credentials, and may lack a context entirely.
 * source (owned, out) says where things came from, for describe.
 */
static ekg_err_t load_kubeconfig(const char *path, const char *ctx_name, const char *master,
                                 ekg_kube_conn_t *c, char **source, ekg_diag_t *diag)
{
    kubeconfig_t k = {.file = path, .diag = diag};
    ekg_err_t err = ekg_yaml_parse_file(path, &k.docs, diag);
    if (err)
        return err == EKG_EPARSE ? EKG_ECONFIG : err;
    k.dir = abs_dir_of(path);
    size_t ndocs = ekg_yaml_docs_count(k.docs);
    if (ndocs > 1) {
        err = kc_fail(&k, EKG_ECONFIG, ekg_yaml_docs_get(k.docs, 1),
                      "a kubeconfig is one YAML document, not %zu", ndocs);
        goto out;
    }
    const cJSON *root = ndocs ? ekg_yaml_docs_get(k.docs, 0) : NULL;
    if (root && !cJSON_IsObject(root)) {
        err = kc_fail(&k, EKG_ECONFIG, root, "a kubeconfig must be a mapping");
        goto out;
    }
    const char *cur = NULL;
    const cJSON *cur_node = root ? member(root, "current-context") : NULL;
    if (cur_node && !cJSON_IsString(cur_node)) {
        err = kc_fail(&k, EKG_ECONFIG, cur_node, "current-context: must be a string");
        goto out;
    }
    if (cur_node && cur_node->valuestring[0])
        cur = cur_node->valuestring;
    const char *name = ctx_name ? ctx_name : cur;
    if (!name) {
        if (master) {
            *source = ekg_xasprintf("--master, kubeconfig %s without a context", path);
            err = set_server(c, master, "--master", diag);
            goto out;
        }
        err = kc_fail(&k, EKG_ECONFIG, NULL, "current-context: not set (pass --context NAME)");
        goto out;
    }
    const cJSON *ctx = NULL;
    if (root && (err = find_named(&k, root, "contexts", "context", name, &ctx)))
        goto out;
    if (!ctx) {
        err = kc_fail(&k, EKG_ECONFIG, ctx_name || !root ? NULL : member(root, "current-context"),
                      "contexts: no context named \"%s\"%s", name, ctx_name ? " (from --context)" : "");
        goto out;
    }
    char where[300];
    snprintf(where, sizeof(where), "contexts[%s].context", name);
    const char *cluster_name = NULL, *user_name = NULL;
    if ((err = get_string(&k, ctx, "cluster", where, &cluster_name)) ||
        (err = get_string(&k, ctx, "user", where, &user_name)))
        goto out;
    /* namespace: ekglue watches every namespace unless told otherwise on its own command line; ignored. */

    const cJSON *cl = NULL;
    if (cluster_name && (err = find_named(&k, root, "clusters", "cluster", cluster_name, &cl)))
        goto out;
    if (!cluster_name && !master) {
        err = kc_fail(&k, EKG_ECONFIG, ctx, "%s.cluster: missing", where);
        goto out;
    }
    if (cluster_name && !cl) {
        err = kc_fail(&k, EKG_ECONFIG, member(ctx, "cluster"),
                      "%s.cluster: no cluster named \"%s\" in clusters", where, cluster_name);
        goto out;
    }
    if (cl)
        err = load_cluster(&k, cl, cluster_name, master, c);
    else
        err = set_server(c, master, "--master", diag);
    if (err)
        goto out;

    if (user_name) {
        const cJSON *us = NULL;
        if ((err = find_named(&k, root, "users", "user", user_name, &us)))
            goto out;
        if (!us) {
            err = kc_fail(&k, EKG_ECONFIG, member(ctx, "user"), "%s.user: no user named \"%s\" in users",
                          where, user_name);
            goto out;
        }
        if ((err = load_user(&k, us, user_name, c)))
            goto out;
    }
    *source = ekg_xasprintf("%skubeconfig %s, context %s", master ? "--master, " : "", path, name);
out:
    free(k.dir);
    ekg_yaml_docs_free(k.docs);
    return err;
}

/* --- in-cluster ---------------------------------------------------------------------------------------- */

/* $KUBERNETES_SERVICE_HOST/PORT and the service account (EKG_SERVICEACCOUNT_DIR overrides it, for tests). */
static ekg_err_t load_in_cluster(const char *host, const char *port, ekg_kube_conn_t *c, char **source,
                                 ekg_diag_t *diag)
{
    ekg_err_t err = EKG_OK;
    char *url = NULL, *ca = NULL;
    const char *dir = getenv("EKG_SERVICEACCOUNT_DIR");
    if (!dir || !*dir)
        dir = DEFAULT_SA_DIR;
    char *end = NULL;
    errno = 0;
    long p = strtol(port, &end, 10);
    if (errno || end == port || *end || p < 1 || p > 65535)
        return ekg_diag_set(diag, EKG_ECONFIG, "in-cluster: KUBERNETES_SERVICE_PORT=\"%s\" is not a port",
                            port);
    bool v6 = strchr(host, ':') != NULL && host[0] != '[';
    url = ekg_xasprintf(v6 ? "https://[%s]:%ld" : "https://%s:%ld", host, p);
    if ((err = set_server(c, url, "in-cluster: KUBERNETES_SERVICE_HOST/PORT", diag)))
        goto out;
    c->token_file = ekg_xasprintf("%s/token", dir);
    ca = ekg_xasprintf("%s/ca.crt", dir);
    char why[WHY_SIZE];
    if ((err = read_token_file(c->token_file, &c->token, why, sizeof(why)))) {
        err = ekg_diag_set(diag, err, "in-cluster: service-account token: %s", why);
        goto out;
    }
    c->token_read_at = clock_now();
    if (access(ca, R_OK) == 0) {
        c->ca_file = ca;
        ca = NULL;
    } else {
        /* client-go carries on with the system's CAs too. */
        ekg_warn("msg=\"in-cluster: cannot read the service-account CA; using the system CAs\" file=%s "
                 "error=\"%s\"",
                 ca, strerror(errno));
    }
    *source = ekg_xasprintf("in-cluster, service account %s", dir);
out:
    free(url);
    free(ca);
    return err;
}

/* --- resolve ------------------------------------------------------------------------------------------- */

/* The first existing file of a ':'-separated list (owned), or NULL. */
static char *first_kubeconfig(const char *list)
{
    const char *p = list;
    size_t nentries = 0;
    char *found = NULL;
    while (*p) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen(p);
        if (n > 0) {
            nentries++;
            if (!found) {
                char *f = ekg_xstrndup(p, n);
                if (access(f, F_OK) == 0)
                    found = f;
                else
                    free(f);
            }
        }
        p += n;
        if (*p == ':')
            p++;
    }
    if (found && nentries > 1)
        ekg_info(
            "msg=\"KUBECONFIG lists several files; ekglue uses the first that exists and does not merge\" "
            "file=%s",
            found);
    if (!found && nentries)
        ekg_warn("msg=\"none of the files in KUBECONFIG exists\" KUBECONFIG=\"%s\"", list);
    return found;
}

static void build_describe(ekg_kube_conn_t *c, const char *source)
{
    char auth[128];
    bool cert = c->cert_file || c->cert_data.data;
    const char *tok = c->token_file ? "token file" : c->token ? "token" : NULL;
    if (cert && tok)
        snprintf(auth, sizeof(auth), "client certificate and %s", tok);
    else
        snprintf(auth, sizeof(auth), "%s", cert ? "client certificate" : tok ? tok : "no auth");
    char tls[300] = "";
    if (c->tls && c->insecure)
        snprintf(tls, sizeof(tls), ", TLS verification disabled");
    else if (c->tls && c->tls_server_name)
        snprintf(tls, sizeof(tls), ", tls-server-name %s", c->tls_server_name);
    else if (!c->tls && c->token)
        snprintf(tls, sizeof(tls), ", plain http");
    c->describe =
        ekg_xasprintf("%s (%s, %s%s%s)", c->server, source, auth, tls, c->proxy ? ", via proxy-url" : "");
}

ekg_err_t ekg_kube_conn_resolve(const ekg_kube_options_t *opts, ekg_kube_conn_t **out, ekg_diag_t *diag)
{
    static const ekg_kube_options_t none = {0};
    if (!opts)
        opts = &none;
    if (!out)
        return ekg_diag_set(diag, EKG_EINVAL, "ekg_kube_conn_resolve: out is NULL");
    ekg_err_t err = EKG_OK;
    char *source = NULL, *env_file = NULL;
    ekg_kube_conn_t *c = ekg_xcalloc(1, sizeof(*c));

    /* Empty strings mean unset, as they do inside a kubeconfig. */
    const char *file = opts->kubeconfig && *opts->kubeconfig ? opts->kubeconfig : NULL;
    const char *context = opts->context && *opts->context ? opts->context : NULL;
    const char *master = opts->master && *opts->master ? opts->master : NULL;
    const char *env = getenv("KUBECONFIG");
    if (!file && env && *env)
        file = env_file = first_kubeconfig(env);
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
    if (file) {
        err = load_kubeconfig(file, context, master, c, &source, diag);
    } else if (context) {
        err = ekg_diag_set(diag, EKG_ECONFIG,
                           "--context %s: no kubeconfig (pass --kubeconfig or set KUBECONFIG)", context);
    } else if (master) {
        err = set_server(c, master, "--master", diag);
        if (!err)
            source = ekg_xstrdup("--master");
    } else if (host && *host && port && *port) {
        err = load_in_cluster(host, port, c, &source, diag);
    } else {
        err = ekg_diag_set(
            diag, EKG_ENOENT,
            "no Kubernetes API server configured: pass --kubeconfig or --master, set KUBECONFIG, "
            "or run in a cluster (KUBERNETES_SERVICE_HOST/PORT)");
    }
    if (err)
        goto out;
    if (!c->url_base)
        c->url_base = ekg_xstrdup(c->server);
    build_describe(c, source);
    if (!c->tls && c->token)
        ekg_warn("msg=\"the Kubernetes API token will be sent over plain http\" server=%s", c->server);
    *out = c;
    c = NULL;
out:
    free(source);
    free(env_file);
    ekg_kube_conn_free(c);
    return err;
}

void ekg_kube_conn_free(ekg_kube_conn_t *c)
{
    if (!c)
        return;
    free(c->server);
    free(c->url_base);
    free(c->describe);
    free(c->ca_file);
    blob_free(&c->ca_data, false);
    free(c->cert_file);
    blob_free(&c->cert_data, false);
    free(c->key_file);
    blob_free(&c->key_data, true);
    curl_slist_free_all(c->connect_to);
    free(c->tls_server_name);
    free_secret_str(c->proxy);
    free_secret_str(c->token);
    free(c->token_file);
    free(c);
}

const char *ekg_kube_conn_server(const ekg_kube_conn_t *c)
{
    return c->server;
}

const char *ekg_kube_conn_describe(const ekg_kube_conn_t *c)
{
    return c->describe;
}

/* --- per request --------------------------------------------------------------------------------------- */

/* Reads the token file again; keeps the old token if that fails. Returns true if the token changed. */
static bool reread_token(ekg_kube_conn_t *c)
{
    if (!c->token_file)
        return false;
    c->token_read_at = clock_now();
    char *tok = NULL;
    char why[WHY_SIZE];
    if (read_token_file(c->token_file, &tok, why, sizeof(why))) {
        ekg_warn("msg=\"cannot re-read the Kubernetes API token; keeping the previous one\" reason=\"%s\"",
                 why);
        return false;
    }
    if (c->token && strcmp(c->token, tok) == 0) {
        free_secret_str(tok);
        return false;
    }
    free_secret_str(c->token);
    c->token = tok;
    c->token_generation++;
    ekg_info("msg=\"Kubernetes API token re-read: it changed\" file=%s", c->token_file);
    return true;
}

unsigned long ekg_kube_conn_token_generation(const ekg_kube_conn_t *c)
{
    return c ? c->token_generation : 0;
}

bool ekg_kube_conn_reload_token(ekg_kube_conn_t *c)
{
    return c ? reread_token(c) : false;
}

static ekg_err_t setopt_failed(CURLcode rc, const char *opt, ekg_diag_t *diag)
{
    if (rc == CURLE_OUT_OF_MEMORY)
        ekg_oom(0);
    return ekg_diag_set(diag, EKG_EIO, "curl: setting %s: %s", opt, curl_easy_strerror(rc));
}

#define SETOPT(h, opt, val)                                                                                  \
    do {                                                                                                     \
        CURLcode rc_ = curl_easy_setopt((h), (opt), (val));                                                  \
        if (rc_ != CURLE_OK)                                                                                 \
            return setopt_failed(rc_, #opt, diag);                                                           \
    } while (0)

static ekg_err_t set_blob(CURL *h, CURLoption opt, const char *name, const blob_t *b, ekg_diag_t *diag)
{
    struct curl_blob blob = {.data = b->data, .len = b->len, .flags = CURL_BLOB_COPY};
    CURLcode rc = curl_easy_setopt(h, opt, &blob);
    return rc == CURLE_OK ? EKG_OK : setopt_failed(rc, name, diag);
}

static ekg_err_t set_tls(ekg_kube_conn_t *c, CURL *h, ekg_diag_t *diag)
{
    ekg_err_t err;
    if (c->ca_file)
        SETOPT(h, CURLOPT_CAINFO, c->ca_file);
    else if (c->ca_data.data &&
             (err = set_blob(h, CURLOPT_CAINFO_BLOB, "CURLOPT_CAINFO_BLOB", &c->ca_data, diag)))
        return err;
    if (c->cert_file || c->cert_data.data) {
        SETOPT(h, CURLOPT_SSLCERTTYPE, "PEM");
        SETOPT(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (c->cert_file)
        SETOPT(h, CURLOPT_SSLCERT, c->cert_file);
    else if (c->cert_data.data &&
             (err = set_blob(h, CURLOPT_SSLCERT_BLOB, "CURLOPT_SSLCERT_BLOB", &c->cert_data, diag)))
        return err;
    if (c->key_file)
        SETOPT(h, CURLOPT_SSLKEY, c->key_file);
    else if (c->key_data.data &&
             (err = set_blob(h, CURLOPT_SSLKEY_BLOB, "CURLOPT_SSLKEY_BLOB", &c->key_data, diag)))
        return err;
    SETOPT(h, CURLOPT_SSL_VERIFYPEER, c->insecure ? 0L : 1L);
    SETOPT(h, CURLOPT_SSL_VERIFYHOST, c->insecure ? 0L : 2L);
    if (c->connect_to)
        SETOPT(h, CURLOPT_CONNECT_TO, c->connect_to);
    return EKG_OK;
}

ekg_err_t ekg_kube_conn_prepare(ekg_kube_conn_t *c, CURL *h, const char *path_and_query,
                                struct curl_slist **headers, ekg_diag_t *diag)
{
    if (!c || !h || !path_and_query || !headers)
        return ekg_diag_set(diag, EKG_EINVAL, "ekg_kube_conn_prepare: NULL argument");
    if (path_and_query[0] != '/')
        return ekg_diag_set(diag, EKG_EINVAL, "ekg_kube_conn_prepare: path \"%s\" does not start with '/'",
                            path_and_query);
    if (c->token_file && clock_now() - c->token_read_at >= EKG_KUBE_TOKEN_MAX_AGE_S)
        reread_token(c);

    char *url = ekg_xasprintf("%s%s", c->url_base, path_and_query);
    CURLcode rc = curl_easy_setopt(h, CURLOPT_URL, url);
    free(url);
    if (rc != CURLE_OK)
        return setopt_failed(rc, "CURLOPT_URL", diag);
    if (c->proxy)
        SETOPT(h, CURLOPT_PROXY, c->proxy);
    ekg_err_t err;
    if (c->tls && (err = set_tls(c, h, diag)))
        return err;

    struct curl_slist *l = curl_slist_append(*headers, "Accept: application/json");
    if (!l)
        ekg_oom(0); /* libcurl fails here only for memory */
    *headers = l;
    if (c->token) {
        char *auth = ekg_xasprintf("Authorization: Bearer %s", c->token);
        l = curl_slist_append(*headers, auth);
        free_secret_str(auth);
        if (!l)
            ekg_oom(0);
        *headers = l;
    }
    SETOPT(h, CURLOPT_HTTPHEADER, *headers);
    return EKG_OK;
}
