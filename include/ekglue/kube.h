/*
 * include/ekglue/kube.h: how ekglue reaches a Kubernetes API server.
 *
 * ekg_kube_conn_resolve() decides where and how to connect, in this order: --master URL (no auth unless a
 * kubeconfig also names credentials), --kubeconfig or $KUBECONFIG (current-context or --context), in-cluster
 * ($KUBERNETES_SERVICE_HOST/PORT, IPv6 too, with the service-account token and CA). Kubeconfig fields
 * honoured: clusters[].cluster{server, certificate-authority, certificate-authority-data,
 * insecure-skip-tls-verify, tls-server-name, proxy-url}, users[].user{token, tokenFile,
 * client-certificate(-data), client-key(-data)}; relative paths are relative to the kubeconfig's directory.
 * exec plugins, auth-provider, username/password and impersonation (as, as-groups, ...) are refused with an
 * error naming the field. Token files (tokenFile, the service-account token) are re-read every minute and
 * after a 401, so a rotated token is picked up.
 *
 * Thread: resolve on main; the connection is then used by the watcher thread only (token refresh mutates it).
 */
#ifndef EKGLUE_KUBE_H
#define EKGLUE_KUBE_H

#include <stdbool.h>

#include <curl/curl.h>

#include "ekglue/error.h"

typedef struct ekg_kube_conn ekg_kube_conn_t;

typedef struct ekg_kube_options {
    const char *kubeconfig; /* --kubeconfig; NULL: $KUBECONFIG (first of a ':' list), then nothing */
    const char *context;    /* --context; NULL: current-context */
    const char *master;     /* --master URL; overrides the kubeconfig's server */
} ekg_kube_options_t;

/*
 * EKG_ENOENT (and a diag saying so) when nothing is configured: no --master, no kubeconfig, not in a cluster.
 * EKG_ECONFIG with "FILE: key: reason" for a bad kubeconfig. On success *out is owned by the caller.
 */
ekg_err_t ekg_kube_conn_resolve(const ekg_kube_options_t *opts, ekg_kube_conn_t **out, ekg_diag_t *diag);
void ekg_kube_conn_free(ekg_kube_conn_t *c);

/* The API server's base URL without a trailing slash ("https://10.0.0.1:443"). Borrowed. */
const char *ekg_kube_conn_server(const ekg_kube_conn_t *c);
/* A one-line description for logs: server, how it was found, auth kind (never the secret). Borrowed. */
const char *ekg_kube_conn_describe(const ekg_kube_conn_t *c);

/*
 * Prepares a curl easy handle for a request to `path_and_query` ("/api/v1/services?limit=500"): URL, TLS (CA,
 * client certificate, verification, server name), and the headers: Accept and Authorization are appended to
 * *headers, which is then set as CURLOPT_HTTPHEADER; the caller frees it with curl_slist_free_all() after the
 * transfer. Re-reads a token file older than a minute.
 */
ekg_err_t ekg_kube_conn_prepare(ekg_kube_conn_t *c, CURL *h, const char *path_and_query,
                                struct curl_slist **headers, ekg_diag_t *diag);
/*
 * Changes with every new token. A request prepared under an older generation that got a 401 can be retried at
 * once: another request already found the new token.
 */
unsigned long ekg_kube_conn_token_generation(const ekg_kube_conn_t *c);
/* After a 401: re-read the token file now (no-op for static credentials). Returns true if the token changed.
 */
bool ekg_kube_conn_reload_token(ekg_kube_conn_t *c);

#endif
