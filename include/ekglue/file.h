/*
 * include/ekglue/file.h: reading a whole file (src/common/file.c): certificates, keys, tokens, kubeconfigs,
 * config files, manifests; and watching files for changes (the manifests of the file source, the config
 * file). Thread: any; a file watch belongs to one thread.
 */
#ifndef EKGLUE_FILE_H
#define EKGLUE_FILE_H

#include <stdbool.h>
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

/*
 * A watch on some files: inotify on each file's directory, so that an editor writing a new file and renaming
 * it over the old one, and a Kubernetes ConfigMap volume swapping its `..data` symlink, are seen. Never NULL;
 * when inotify or a directory cannot be watched it says so (warn) and the owner relies on SIGHUP. paths are
 * copied.
 */
typedef struct ekg_file_watch ekg_file_watch_t;
ekg_file_watch_t *ekg_file_watch_new(const char *const *paths, size_t n);
void ekg_file_watch_free(ekg_file_watch_t *fw);
/* The descriptor to poll for POLLIN; -1 when nothing is watched. */
int ekg_file_watch_fd(const ekg_file_watch_t *fw);
/* Reads every pending event; true when one concerns a watched file (or a `..data` swap, or an overflow). */
bool ekg_file_watch_changed(ekg_file_watch_t *fw);

#endif
