/*
 * src/common/file.c: reading a whole file (include/ekglue/file.h). Thread: any.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ekglue/file.h"
#include "ekglue/mem.h"

ekg_err_t ekg_file_read(const char *path, size_t max, int flags, char **out, size_t *len, ekg_diag_t *diag)
{
    ekg_err_t err = EKG_OK;
    size_t cap = 4096, n = 0;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        err = ekg_diag_set(diag, errno == ENOENT ? EKG_ENOENT : EKG_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    buf = ekg_xmalloc(cap);
    for (;;) {
        if (max && n > max) {
            err = ekg_diag_set(diag, EKG_ERANGE, "%s: larger than %zu bytes", path, max);
            goto out;
        }
        if (n + 1 >= cap) {
            if (flags & EKG_FILE_SECRET) { /* no copy of a secret left behind in a freed block */
                char *bigger = ekg_xmalloc(cap * 2);
                memcpy(bigger, buf, n);
                explicit_bzero(buf, cap);
                free(buf);
                buf = bigger;
            } else {
                buf = ekg_xrealloc(buf, cap * 2);
            }
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        err = ekg_diag_set(diag, EKG_EIO, "%s: read error", path);
        goto out;
    }
    if (max && n > max) {
        err = ekg_diag_set(diag, EKG_ERANGE, "%s: larger than %zu bytes", path, max);
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    buf = NULL;
    if (len)
        *len = n;
out:
    if (f)
        fclose(f);
    if (buf && (flags & EKG_FILE_SECRET))
        explicit_bzero(buf, cap);
    free(buf);
    return err;
}
