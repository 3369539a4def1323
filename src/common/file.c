/*
 * src/common/file.c: reading a whole file, and watching files for changes (include/ekglue/file.h).
 * Thread: any; a file watch is used by the thread that owns it.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "ekglue/log.h"

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

struct ekg_file_watch {
    int fd;            /* inotify, non-blocking; -1: none */
    size_t n;          /* watched files */
    int *wds;          /* each file's directory watch (-1 when none) */
    char **base_names; /* each file's name in its directory; owned */
};

ekg_file_watch_t *ekg_file_watch_new(const char *const *paths, size_t n)
{
    ekg_file_watch_t *fw = ekg_xcalloc(1, sizeof(*fw));
    fw->fd = -1;
    if (!n)
        return fw;
    if ((fw->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
        ekg_warn("inotify unavailable (%s); reload with SIGHUP", strerror(errno));
        return fw;
    }
    fw->n = n;
    fw->wds = ekg_xcalloc(n, sizeof(*fw->wds));
    fw->base_names = ekg_xcalloc(n, sizeof(*fw->base_names));
    for (size_t i = 0; i < n; i++) {
        char *copy_dir = ekg_xstrdup(paths[i]), *copy_base = ekg_xstrdup(paths[i]);
        fw->base_names[i] = ekg_xstrdup(basename(copy_base));
        const char *dir = dirname(copy_dir);
        fw->wds[i] = inotify_add_watch(fw->fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE);
        if (fw->wds[i] < 0)
            ekg_warn("cannot watch %s for changes (%s); reload with SIGHUP", dir, strerror(errno));
        free(copy_dir);
        free(copy_base);
    }
    return fw;
}

void ekg_file_watch_free(ekg_file_watch_t *fw)
{
    if (!fw)
        return;
    if (fw->fd >= 0)
        close(fw->fd);
    for (size_t i = 0; i < fw->n; i++)
        free(fw->base_names[i]);
    free(fw->base_names);
    free(fw->wds);
    free(fw);
}

int ekg_file_watch_fd(const ekg_file_watch_t *fw)
{
    return fw->fd;
}

bool ekg_file_watch_changed(ekg_file_watch_t *fw)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool changed = false;
    while (fw->fd >= 0) {
        ssize_t n = read(fw->fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof(*ev) + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                changed = true;
                continue;
            }
            if (!ev->len)
                continue;
            if (strcmp(ev->name, "..data") == 0) {
                changed = true;
                continue;
            }
            for (size_t i = 0; i < fw->n; i++)
                if (fw->wds[i] == ev->wd && strcmp(fw->base_names[i], ev->name) == 0)
                    changed = true;
        }
    }
    return changed;
}
