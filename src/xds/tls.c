/*
 * src/xds/tls.c: TLS credentials for the xDS port that follow certificate rotation (src/xds/tls.h).
 *
 * grpc (1.51, ssl_security_connector.cc) calls the certificate-config fetcher once when the port is added
 * (a failure then fails grpc_server_add_http2_port) and again before every server handshake. The fetcher
 * compares a signature of each file (device, inode, size, mtime) with the one it loaded last: equal means
 * GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED, so a handshake costs three stat() calls. Otherwise it reads
 * the files and returns a new grpc_ssl_server_certificate_config (grpc copies the strings and takes the
 * config); grpc builds a new handshaker factory from it, or logs and keeps the old one when the material is
 * inconsistent. A file that cannot be read (mid-rotation) gives RELOAD_FAIL and is retried at the next
 * handshake, since the remembered signature is only updated after a successful read.
 *
 * Thread: the fetcher runs on grpc's threads, possibly several at once; the state's lock serializes it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ekglue/file.h"
#include "ekglue/log.h"
#include "ekglue/mem.h"

#include "xds/tls.h"

enum { F_CERT = 0, F_KEY, F_CA, F__COUNT };
static const char *const file_roles[F__COUNT] = {"certificate", "private key", "client CA"};

typedef struct file_sig {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_sig_t;

struct ekg_xds_tls {
    pthread_mutex_t lock;
    char *files[F__COUNT];      /* owned; files[F_CA] NULL without mutual TLS */
    file_sig_t sig[F__COUNT];   /* of the files as last loaded (under lock) */
    bool loaded;                /* a configuration was handed to grpc (under lock) */
    unsigned long long reloads; /* (under lock) */
};

static bool sig_of(const char *path, file_sig_t *out)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return false;
    *out = (file_sig_t){.dev = st.st_dev, .ino = st.st_ino, .size = st.st_size, .mtime = st.st_mtim};
    return true;
}

static bool sig_eq(const file_sig_t *a, const file_sig_t *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/*
 * The whole file as a NUL-terminated string (the caller's, free()); flags as ekg_file_read's. EKG_EIO when it
 * cannot be opened or read, EKG_EINVAL when it is empty; diag says "TLS <role> <path>: <reason>".
 */
static ekg_err_t read_file(const char *path, const char *role, int flags, char **out, ekg_diag_t *diag)
{
    ekg_diag_t why = {{0}};
    char *buf = NULL;
    size_t len = 0;
    if (ekg_file_read(path, 0, flags, &buf, &len, &why) != EKG_OK) /* why: "<path>: <reason>" */
        return ekg_diag_set(diag, EKG_EIO, "TLS %s %s", role, why.msg);
    if (len == 0) {
        free(buf);
        return ekg_diag_set(diag, EKG_EINVAL, "TLS %s %s: empty file", role, path);
    }
    *out = buf;
    return EKG_OK;
}

static void wipe_free(char *s)
{
    if (s) {
        memset(s, 0, strlen(s)); /* key material */
        free(s);
    }
}

/* Reads every file; on success *config is a new grpc configuration and sig the files' signatures. */
static ekg_err_t load(ekg_xds_tls_t *t, file_sig_t sig[F__COUNT], grpc_ssl_server_certificate_config **config,
                      ekg_diag_t *diag)
{
    char *pem[F__COUNT] = {0};
    ekg_err_t err = EKG_OK;
    for (int i = 0; i < F__COUNT && err == EKG_OK; i++) {
        if (!t->files[i])
            continue;
        /* The signature before the read: a change during the read is seen at the next handshake. */
        if (!sig_of(t->files[i], &sig[i]))
            err = ekg_diag_set(diag, EKG_EIO, "TLS %s %s: %s", file_roles[i], t->files[i], strerror(errno));
        else
            err = read_file(t->files[i], file_roles[i], i == F_KEY ? EKG_FILE_SECRET : 0, &pem[i], diag);
    }
    if (err == EKG_OK) {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = pem[F_KEY], .cert_chain = pem[F_CERT]};
        /* grpc 1.51 asserts that a fetched config has root certificates even when no client certificate is
         * requested (ssl_security_connector.cc). Without mutual TLS they are never used (no
         * CertificateRequest is sent), so the server's own chain stands in. */
        const char *roots = pem[F_CA] ? pem[F_CA] : pem[F_CERT];
        *config = grpc_ssl_server_certificate_config_create(roots, &pair, 1); /* copies; never NULL */
    }
    for (int i = 0; i < F__COUNT; i++)
        wipe_free(pem[i]);
    return err;
}

static grpc_ssl_certificate_config_reload_status fetch(void *arg, grpc_ssl_server_certificate_config **config)
{
    ekg_xds_tls_t *t = arg;
    grpc_ssl_certificate_config_reload_status status = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    pthread_mutex_lock(&t->lock);
    bool changed = !t->loaded;
    for (int i = 0; i < F__COUNT && !changed; i++) {
        file_sig_t now;
        if (t->files[i] && (!sig_of(t->files[i], &now) || !sig_eq(&now, &t->sig[i])))
            changed = true;
    }
    if (changed) {
        file_sig_t sig[F__COUNT] = {0};
        ekg_diag_t diag = {{0}};
        if (load(t, sig, config, &diag) == EKG_OK) {
            memcpy(t->sig, sig, sizeof(sig));
            if (t->loaded)
                ekg_info("xDS server: TLS certificate files changed, loaded them for new connections "
                         "cert=%s reloads=%llu",
                         t->files[F_CERT], ++t->reloads);
            t->loaded = true;
            status = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
        } else {
            ekg_warn("xDS server: cannot reload TLS files, keeping the previous ones: %s", diag.msg);
            status = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return status;
}

void ekg_xds_tls_free(ekg_xds_tls_t *t)
{
    if (!t)
        return;
    for (int i = 0; i < F__COUNT; i++)
        free(t->files[i]);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

ekg_err_t ekg_xds_tls_credentials(const char *cert_file, const char *key_file, const char *client_ca_file,
                                  ekg_xds_tls_t **tls, grpc_server_credentials **out, ekg_diag_t *diag)
{
    if (!cert_file || !cert_file[0] || !key_file || !key_file[0])
        return ekg_diag_set(diag, EKG_EINVAL, "TLS needs both a certificate and a private key file");
    ekg_xds_tls_t *t = ekg_xcalloc(1, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    ekg_err_t err = EKG_OK;
    const char *paths[F__COUNT] = {cert_file, key_file,
                                   client_ca_file && client_ca_file[0] ? client_ca_file : NULL};
    for (int i = 0; i < F__COUNT; i++)
        if (paths[i])
            t->files[i] = ekg_xstrdup(paths[i]);
    /* Read once now so that a wrong path is reported at start, naming the file. */
    grpc_ssl_server_certificate_config *probe = NULL;
    file_sig_t sig[F__COUNT];
    if ((err = load(t, sig, &probe, diag)) != EKG_OK)
        goto out;
    grpc_ssl_server_certificate_config_destroy(probe);
    grpc_ssl_server_credentials_options *o = grpc_ssl_server_credentials_create_options_using_config_fetcher(
        t->files[F_CA] ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                       : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        fetch, t);
    grpc_server_credentials *creds = o ? grpc_ssl_server_credentials_create_with_options(o) : NULL;
    if (!creds) {
        err = ekg_diag_set(diag, EKG_EINVAL, "cannot create TLS credentials");
        goto out;
    }
    *tls = t;
    t = NULL;
    *out = creds;
out:
    ekg_xds_tls_free(t);
    return err;
}
