/*
 * src/xds/tls.h: TLS for the xDS gRPC port (library-private).
 *
 * Server credentials built on grpc's certificate-config fetcher: grpc asks for the configuration at every new
 * connection's handshake, and the fetcher answers "unchanged" after a stat() of the files unless one of them
 * changed (inode, size or modification time), in which case it re-reads them. Rotated certificates (cert-
 * manager, a Kubernetes Secret update) thus apply to new connections without a restart; open connections keep
 * the certificate they were made with. A half-written rotation (the new certificate with the old key) is
 * rejected by grpc, which keeps the previous configuration until the files are consistent again.
 *
 * Thread: ekg_xds_tls_credentials / _free from the thread starting and stopping the server; the fetcher runs
 * on grpc's threads (serialized by the state's own lock).
 */
#ifndef EKG_XDS_TLS_H
#define EKG_XDS_TLS_H

#include <grpc/grpc_security.h>

#include "ekglue/error.h"

typedef struct ekg_xds_tls ekg_xds_tls_t;

/*
 * Credentials for cert_file and key_file (PEM; the certificate file may hold the chain). With client_ca_file
 * (may be NULL), clients must present a certificate signed by one of its CAs (mutual TLS). The files are read
 * once here, so that a missing or unreadable one is reported now, naming it (EKG_EIO, EKG_EINVAL for an
 * empty one). On success *out is a new credentials reference (the caller releases it) and *tls the fetcher's
 * state, which must outlive grpc's use of the credentials: free it after the grpc server is destroyed.
 */
ekg_err_t ekg_xds_tls_credentials(const char *cert_file, const char *key_file, const char *client_ca_file,
                                  ekg_xds_tls_t **tls, grpc_server_credentials **out, ekg_diag_t *diag);
void ekg_xds_tls_free(ekg_xds_tls_t *tls); /* NULL is fine */

#endif
