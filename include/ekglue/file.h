/*
 * include/ekglue/file.h: reading a whole file (src/common/file.c): certificates, keys, tokens, kubeconfigs,
 * config files, manifests.
 * Thread: any.
 */
#ifndef EKGLUE_FILE_H
#define EKGLUE_FILE_H

#include <stddef.h>

#include "ekglue/error.h"

/* EKG_FILE_SECRET: the bytes are a secret (a token, a private key): a buffer given up on error is zeroed. */
#define EKG_FILE_SECRET 1

/*
 * Reads the whole file into a new NUL-terminated buffer (*out, the caller's, free()); *len without the NUL
 * (may be NULL). max bounds the size (0: no bound). Errors, each with "<path>: <reason>" in diag:
 * EKG_ENOENT (no such file), EKG_ERANGE (larger than max), EKG_EIO (cannot open or read).
 */
ekg_err_t ekg_file_read(const char *path, size_t max, int flags, char **out, size_t *len, ekg_diag_t *diag);

#endif
