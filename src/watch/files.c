/*
 * src/watch/files.c: manifest files (--objects) and one buffer (the embedded demo cluster) as a source
 * (include/ekglue/watch.h).
 *
 * A read takes every file (or the buffer) into one ekg_objects_t and hands it to the sink as the whole truth
 * (ekg_sink_replace: what the files no longer hold disappears), then says it is synced, which publishes at
 * once. If any file does not read or parse, nothing is handed over: the previous state stays and the error is
 * logged (bad input loses nothing). Unchanged content gives the same versions, which the cache does not
 * re-announce: no pushes.
 *
 * The first read happens in ekg_source_files_start(), on the caller's thread, so a daemon whose files do not
 * load stops at once. Then the source's thread sleeps in poll() on the files' watch (ekg_file_watch_t) and an
 * eventfd (stop, re-read, a config handed to the sink); after a file event it waits DEBOUNCE_MS for the
 * writer's other events and reads once per save. The sink's deadline (a failed translation's retry) is its
 * only other timer: no polling.
 *
 * Thread: start and the ops from main; everything else on the source's thread. The re-read request (why) is
 * guarded by lock.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ekglue/clock.h"
#include "ekglue/file.h"
#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "watch/source.h"

/* After a file event, wait this long for the writer's other events before reading (one reload per save). */
#define DEBOUNCE_MS 50

typedef struct files {
    const char *const *paths; /* borrowed; n of them */
    size_t n;
    const char *name, *buf; /* n == 0: the buffer (borrowed) and its name */
    size_t len;
    ekg_sink_t *sink;     /* borrowed */
    ekg_file_watch_t *fw; /* owned */
    int efd;              /* owned eventfd: wakes the thread */
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    pthread_mutex_t lock;
    char why[64]; /* a re-read asked for by ekg_source_reload (""): its reason, for the log */
} files_t;

ekg_err_t ekg_files_read_once(const char *const *paths, size_t n, const char *name, const char *buf,
                              size_t len, ekg_sink_t *sink, ekg_diag_t *diag)
{
    ekg_objects_t objs = {0};
    ekg_err_t err = EKG_OK;
    if (n == 0 && (err = ekg_objects_add_buffer(&objs, buf, len, name, diag)) != EKG_OK)
        goto out;
    for (size_t i = 0; i < n; i++)
        if ((err = ekg_objects_add_file(&objs, paths[i], diag)) != EKG_OK)
            goto out;
    size_t nservices = objs.nservices, nslices = objs.nslices, nnodes = objs.nnodes, nskipped = objs.nskipped;
    ekg_sink_replace(sink, &objs);
    if ((err = ekg_sink_synced(sink)) != EKG_OK) {
        ekg_diag_set(diag, err, "translation failed: %s", ekg_strerror(err));
        goto out;
    }
    ekg_info("objects loaded services=%zu slices=%zu nodes=%zu skipped=%zu", nservices, nslices, nnodes,
             nskipped);
out:
    ekg_objects_free(&objs);
    return err;
}

/* Reads everything again; a failure is logged and keeps the previous state. */
static void reread_now(files_t *f, const char *why)
{
    ekg_diag_t diag = {{0}};
    ekg_info("%s: reloading objects", why);
    ekg_err_t err = ekg_files_read_once(f->paths, f->n, f->name, f->buf, f->len, f->sink, &diag);
    if (err)
        ekg_error("cannot load objects, keeping the previous state: %s",
                  diag.msg[0] ? diag.msg : ekg_strerror(err));
}

static void wake(void *ctx)
{
    files_t *f = ctx;
    uint64_t one = 1;
    ssize_t n = write(f->efd, &one, sizeof(one));
    (void)n; /* a full counter (never, in practice) still wakes the thread */
}

/* The poll() timeout until the earlier of the debounced read and the sink's deadline (-1: none). */
static int timeout_ms(files_t *f, long long read_at)
{
    long long next = ekg_sink_deadline(f->sink);
    if (read_at >= 0 && (next < 0 || read_at < next))
        next = read_at;
    if (next < 0)
        return -1;
    long long left = next - ekg_clock_ms();
    return left > 0 ? (int)(left < 60000 ? left : 60000) : 0;
}

static void *thread_main(void *arg)
{
    files_t *f = arg;
    long long read_at = -1; /* debounced file change: read at this time */
    int ifd = ekg_file_watch_fd(f->fw);
    while (!atomic_load(&f->stop)) {
        struct pollfd fds[2] = {{.fd = f->efd, .events = POLLIN}, {.fd = ifd, .events = POLLIN}};
        int n = poll(fds, ifd >= 0 ? 2 : 1, timeout_ms(f, read_at));
        if (n < 0 && errno != EINTR) {
            ekg_error("file source: poll failed: %s", strerror(errno));
            break;
        }
        if (atomic_load(&f->stop))
            break;
        if (n > 0 && (fds[0].revents & POLLIN)) {
            uint64_t v;
            ssize_t r = read(f->efd, &v, sizeof(v));
            (void)r;
        }
        ekg_sink_flush(f->sink); /* a config handed in, a retry that is due */
        char why[sizeof(f->why)];
        pthread_mutex_lock(&f->lock);
        snprintf(why, sizeof(why), "%s", f->why);
        f->why[0] = '\0';
        pthread_mutex_unlock(&f->lock);
        if (why[0]) {
            read_at = -1;
            reread_now(f, why);
        }
        if (n > 0 && ifd >= 0 && (fds[1].revents & POLLIN) && ekg_file_watch_changed(f->fw) && read_at < 0)
            read_at = ekg_clock_ms() + DEBOUNCE_MS;
        if (read_at >= 0 && ekg_clock_ms() >= read_at) {
            read_at = -1;
            reread_now(f, "files changed");
        }
    }
    ekg_sink_set_driver(f->sink, NULL, NULL); /* a config handed in from now on is switched by its caller */
    return NULL;
}

static void files_reread(void *impl, const char *why)
{
    files_t *f = impl;
    pthread_mutex_lock(&f->lock);
    snprintf(f->why, sizeof(f->why), "%s", why);
    pthread_mutex_unlock(&f->lock);
    wake(f);
}

static void files_stop(void *impl)
{
    files_t *f = impl;
    if (f->thread_started) {
        atomic_store(&f->stop, true);
        wake(f);
        pthread_join(f->thread, NULL);
    }
    ekg_file_watch_free(f->fw);
    if (f->efd >= 0)
        close(f->efd);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static const ekg_source_ops_t FILES_OPS = {.reread = files_reread, .stop = files_stop, .watcher = NULL};

ekg_err_t ekg_source_files_start(const char *const *paths, size_t n, const char *name, const char *buf,
                                 size_t len, ekg_sink_t *sink, ekg_source_t **out, ekg_diag_t *diag)
{
    ekg_err_t err = EKG_OK;
    files_t *f = ekg_xcalloc(1, sizeof(*f));
    f->paths = paths;
    f->n = n;
    f->name = name;
    f->buf = buf;
    f->len = len;
    f->sink = sink;
    pthread_mutex_init(&f->lock, NULL);
    /* Watched before the first read, so that no change slips in between. */
    f->fw = ekg_file_watch_new(paths, n);
    if ((f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        err = ekg_diag_set(diag, EKG_EIO, "file source: eventfd: %s", strerror(errno));
        goto out;
    }
    ekg_sink_set_coalescing(sink, 0, 0); /* a read is one change already (debounced above) */
    if ((err = ekg_files_read_once(paths, n, name, buf, len, sink, diag)) != EKG_OK)
        goto out;
    ekg_sink_set_driver(sink, wake, f); /* before the thread: from now on only it uses the sink */
    int rc = pthread_create(&f->thread, NULL, thread_main, f);
    if (rc != 0) {
        ekg_sink_set_driver(sink, NULL, NULL);
        err = ekg_diag_set(diag, EKG_EIO, "file source: cannot start the thread: %s", strerror(rc));
        goto out;
    }
    f->thread_started = true;
    *out = ekg_source_new(&FILES_OPS, f, sink);
out:
    if (err)
        files_stop(f);
    return err;
}
