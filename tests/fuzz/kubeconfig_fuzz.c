/*
 * tests/fuzz/kubeconfig_fuzz.c: libFuzzer target for kubeconfig loading (src/watch/kube_conn.c):
 * ekg_kube_conn_resolve() on a kubeconfig file holding the input, then, when it loads,
 * ekg_kube_conn_prepare() on a curl handle (no transfer) and the token refresh, as the watcher would use the
 * connection.
 *
 * There is no buffer entry point: the kubeconfig is a file, and relative paths in it are relative to its
 * directory. So the input goes to <tmp>/config, in a private temporary directory (under $TMPDIR, else
 * /dev/shm) that also holds a CA, a client certificate and key, and a token file, which the seeds name
 * ("ca.crt", "client.crt", "client.key", "token"). Byte 0 chooses the options: bit 0 adds --master
 * https://10.0.0.1:6443, bit 1 --context other. $KUBECONFIG and the in-cluster variables are cleared first.
 *
 * Checks besides the sanitizers: a loaded connection has an http(s) server URL ("SCHEME://HOST...") without a
 * trailing slash and a description, and neither the description nor a failure's message ever holds the token
 * file's secret (unless the kubeconfig itself does); a failure leaves no connection and says why. Seeds:
 * tests/fuzz/corpus/kubeconfig/. Thread: libFuzzer's.
 */
#define _GNU_SOURCE /* memmem */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/watch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "fuzz-secret-token-7f3a"

static char dir[4096];
static char config_path[4200];
static CURL *curl;

static const char pem[] = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
static const char key_pem[] = "-----BEGIN PRIVATE KEY-----\nMIIBfake\n-----END PRIVATE KEY-----\n";

static void write_file(const char *name, const char *text, size_t len)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(text, 1, len, f) != len) || fclose(f) != 0)
        abort();
}

static void cleanup(void)
{
    static const char *const names[] = {"config", "ca.crt", "client.crt", "client.key", "token"};
    char path[4200];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    curl_easy_cleanup(curl);
}

static void setup(void)
{
    ekg_mem_init(); /* as main() does: cJSON allocates through the aborting wrappers */
    ekg_log_set_level(EKG_LOG_OFF);
    unsetenv("KUBECONFIG");
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    unsetenv("EKG_SERVICEACCOUNT_DIR");
    /* $TMPDIR when set (tests/fuzz.sh gives each run its own, removed afterwards: a crash skips cleanup). */
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    if (snprintf(dir, sizeof(dir), "%s/ekg-kubeconfig-fuzz-XXXXXX", tmp) >= (int)sizeof(dir))
        abort();
    if (!mkdtemp(dir))
        abort();
    snprintf(config_path, sizeof(config_path), "%s/config", dir);
    write_file("ca.crt", pem, strlen(pem));
    write_file("client.crt", pem, strlen(pem));
    write_file("client.key", key_pem, strlen(key_pem));
    write_file("token", SECRET "\n", strlen(SECRET) + 1);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(curl = curl_easy_init()))
        abort();
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    if (size < 1)
        return 0;
    write_file("config", (const char *)data + 1, size - 1);
    ekg_kube_options_t opts = {
        .kubeconfig = config_path,
        .master = data[0] & 1 ? "https://10.0.0.1:6443" : NULL,
        .context = data[0] & 2 ? "other" : NULL,
    };
    /* The secret may only show up in a message if the kubeconfig itself holds it (libFuzzer's dictionary). */
    bool secret_in_input = memmem(data, size, SECRET, strlen(SECRET)) != NULL;
    ekg_kube_conn_t *c = NULL;
    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_kube_conn_resolve(&opts, &c, &diag);
    if (err != EKG_OK) {
        if (c || err > 0 || !diag.msg[0] || (!secret_in_input && strstr(diag.msg, SECRET)))
            abort();
        return 0;
    }
    const char *server = ekg_kube_conn_server(c), *describe = ekg_kube_conn_describe(c);
    size_t n = strlen(server);
    size_t host = strncasecmp(server, "https://", 8) == 0  ? 8
                  : strncasecmp(server, "http://", 7) == 0 ? 7
                                                           : 0;
    if (!host || n <= host || server[host] == '/' || server[n - 1] == '/' || !describe ||
        (!secret_in_input && strstr(describe, SECRET)))
        abort();

    curl_easy_reset(curl);
    struct curl_slist *headers = NULL;
    ekg_diag_t pdiag = {{0}};
    (void)ekg_kube_conn_prepare(c, curl, "/api/v1/services?limit=500", &headers, &pdiag);
    curl_slist_free_all(headers);
    if (!secret_in_input && strstr(pdiag.msg, SECRET))
        abort();
    (void)ekg_kube_conn_token_generation(c);
    (void)ekg_kube_conn_reload_token(c);
    ekg_kube_conn_free(c);
    return 0;
}
