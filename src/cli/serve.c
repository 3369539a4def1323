/*
 * src/cli/serve.c: `ekglue serve`: the daemon. Translates objects from files and serves them over xDS.
 *
 *   ekglue serve [--objects FILE ...] [--config FILE] [--xds-listen ADDR] [--debug-listen ADDR|off]
 *                [--log-level L] [--threads N] [--kubeconfig FILE] [--context NAME] [--master URL]
 *                [--namespace NS ...] [--service-selector S]
 *
 * Three sources, in this order: --objects files; the Kubernetes API (--kubeconfig/$KUBECONFIG, --master, or
 * in-cluster), watched by src/watch/watcher.c, which publishes to the cache itself from its own thread,
 * health turning SERVING once the first complete sync is published; and when neither is configured, the demo
 * cluster embedded at build time.
 *
 * The config file (--config) is re-read when it changes and on SIGHUP: a config that does not load is
 * rejected with its file:line message and the one in force stays; a good one is handed to the translator
 * (file mode: the next build; Kubernetes mode: ekg_watcher_set_config) and only what changed is pushed.
 *
 * File mode: every --objects file is read into one
 * ekg_objects_t, translated by a fresh translator, and published as a snapshot. When a file changes (inotify
 * on the files' directories, so editors that write a new file and rename it over the old one, and Kubernetes
 * ConfigMap volumes that swap a `..data` symlink, are seen) or on SIGHUP, everything is read again; if any
 * file does not read or parse, the old snapshot stays and the error is logged (bad input loses nothing).
 * Unchanged content gives the same versions, which the cache does not re-announce: no pushes.
 *
 * The debug HTTP port (src/debug/http.c; loopback by default) starts after the xDS server and stops before
 * it; it reads the cache, the xDS server's client listing and the watcher's status on its own thread.
 *
 * Thread: main runs everything here: one poll() loop over a signalfd (SIGTERM, SIGINT, SIGHUP, blocked in
 * every thread) and the inotify descriptor, without timeouts except a short debounce after a file event.
 * Publishing from main drives the xDS server's sends (src/xds/server.c); the gRPC threads are the server's
 * own.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "ekglue/translate.h"
#include "ekglue/debug.h"
#include "ekglue/watch.h"
#include "ekglue/clock.h"
#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/metrics.h"
#include "ekglue/model.h"
#include "ekglue/cache.h"
#include "ekglue/xds.h"

#include "cli/cli.h"

/* After a file event, wait this long for the writer's other events before reading (one reload per save). */
#define DEBOUNCE_MS 50

/* deploy/demo/cluster.yaml, embedded at build time (proto/tools/embed.cmake). */
extern const unsigned char ekg_demo_cluster[];
extern const size_t ekg_demo_cluster_size;

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: ekglue serve [--objects FILE ... | --kubeconfig FILE | --master URL] [--config FILE]\n"
        "                    [--xds-listen ADDR] [--debug-listen ADDR|off] [--log-level L] [OPTIONS]\n"
        "\n"
        "Serves Envoy Clusters and ClusterLoadAssignments over xDS (ADS, CDS, EDS, LDS, RDS; state of the\n"
        "world), CSDS and grpc.health.v1 on one gRPC port. Objects come from the Kubernetes API (list and\n"
        "watch), from manifests (--objects, as `kubectl get -o yaml|json` prints them) or from the embedded\n"
        "demo cluster. The config file and the manifests are read again when they change and on SIGHUP;\n"
        "one that does not load keeps the previous state. SIGTERM/SIGINT end the open streams with\n"
        "UNAVAILABLE and exit.\n"
        "\n"
        "  --objects FILE     manifests to read (repeatable); none: the embedded demo cluster\n"
        "  --config FILE      ekglue config (docs/config.md); default: the built-in config\n"
        "  --xds-listen ADDR  gRPC address (default 0.0.0.0:18000; port 0 picks one, logged as port=N)\n"
        "  --debug-listen ADDR  debug HTTP port: status page, /metrics, /config_dump ... (default\n"
        "                     127.0.0.1:18001, skipped with a warning when taken; port 0 picks one;\n"
        "                     \"off\" disables; docs/operations.md)\n"
        "  --tls-cert FILE    serve xDS over TLS with this PEM certificate (chain); with --tls-key\n"
        "  --tls-key FILE     ... and this PEM private key; both re-read when they change\n"
        "  --tls-client-ca FILE  require client certificates signed by a CA in this PEM file (mTLS)\n"
        "  --log-level L      debug|info|warn|error|off (default info)\n"
        "  --threads N        gRPC completion-queue threads (default 2)\n" EKG_CLI_KUBE_USAGE
        "  --coalesce-ms N    publish this long after a Kubernetes change (default 100)\n"
        "  --coalesce-max-ms N  ... but at most this long after the first unpublished one (default 1000)\n"
        "\n"
        "With no --objects: the Kubernetes API if one is configured (flags above, $KUBECONFIG, or in a\n"
        "cluster), otherwise the embedded demo cluster.\n"
        "\n"
        "Exit codes: 0 ok (stopped by a signal), 1 failure (objects unreadable at start, cannot listen),\n"
        "2 usage error, 3 config error.\n");
}

/* What the loop needs; everything is owned here and freed at the one exit of ekg_cli_serve(). */
typedef struct serve_state {
    ekg_config_t *cfg;       /* owned: the config in force (replaced by a good reload) */
    const char *config_path; /* --config, or NULL (the built-in config, never reloaded) */
    ekg_cache_t *cache;      /* owned (freed at the exit of ekg_cli_serve) */
    bool kube;               /* objects come from the watcher, not from files */
    ekg_watcher_t *watcher;  /* Kubernetes mode: borrowed, for config reloads */
    const char **paths;      /* the files watched: the --objects files, then the config file (borrowed) */
    size_t npaths;           /* of which --objects files */
    size_t nwatched;         /* npaths, plus one with a config file */
    int *wds;                /* inotify watch of each path's directory (-1 when none) */
    char **base_names;       /* each path's file name; owned */
    unsigned long reloads;
} serve_state_t;

/*
 * Reads every file, translates and publishes. On any read/parse error nothing is published (the previous
 * snapshot stays) and the error is logged. Returns the error.
 */
static ekg_err_t load_and_publish(serve_state_t *st)
{
    ekg_diag_t diag = {{0}};
    ekg_objects_t objs = {0};
    ekg_translator_t *t = NULL;
    ekg_snapshot_t *snap = NULL;
    ekg_err_t err = EKG_OK;

    if (st->npaths == 0 &&
        (err = ekg_objects_add_buffer(&objs, (const char *)ekg_demo_cluster, ekg_demo_cluster_size,
                                      "embedded demo cluster", &diag)) != EKG_OK) {
        ekg_error("cannot load the embedded demo cluster: %s", diag.msg[0] ? diag.msg : ekg_strerror(err));
        goto out;
    }
    for (size_t i = 0; i < st->npaths; i++) {
        if ((err = ekg_objects_add_file(&objs, st->paths[i], &diag)) != EKG_OK) {
            ekg_error("cannot load objects, keeping the previous state: %s",
                      diag.msg[0] ? diag.msg : ekg_strerror(err));
            goto out;
        }
    }
    size_t nservices = objs.nservices, nslices = objs.nslices, nnodes = objs.nnodes, nskipped = objs.nskipped;
    /* A fresh translator: the new files are the whole truth (removed objects disappear). */
    t = ekg_translator_new(st->cfg);
    ekg_translator_put_objects(t, &objs);
    if ((err = ekg_cache_publish_translation(st->cache, t, NULL, &snap)) != EKG_OK) {
        ekg_error("translation failed, keeping the previous state: %s", ekg_strerror(err));
        goto out;
    }
    st->reloads++;
    ekg_info("objects loaded services=%zu slices=%zu nodes=%zu skipped=%zu clusters=%zu cluster_version=%s "
             "load_assignments=%zu load_assignment_version=%s listeners=%zu",
             nservices, nslices, nnodes, nskipped,
             ekg_resource_set_size(ekg_snapshot_resources(snap, EKG_RESOURCE_CLUSTER)),
             ekg_resource_set_version(ekg_snapshot_resources(snap, EKG_RESOURCE_CLUSTER)),
             ekg_resource_set_size(ekg_snapshot_resources(snap, EKG_RESOURCE_LOAD_ASSIGNMENT)),
             ekg_resource_set_version(ekg_snapshot_resources(snap, EKG_RESOURCE_LOAD_ASSIGNMENT)),
             ekg_resource_set_size(ekg_snapshot_resources(snap, EKG_RESOURCE_LISTENER)));
out:
    ekg_snapshot_unref(snap);
    ekg_translator_free(t);
    ekg_objects_free(&objs);
    return err;
}

/* Watches the directory of every objects file. A failure only costs automatic reloads (SIGHUP still works).
 */
static void watch_files(serve_state_t *st, int ifd)
{
    for (size_t i = 0; i < st->nwatched; i++) {
        char *copy_dir = ekg_xstrdup(st->paths[i]), *copy_base = ekg_xstrdup(st->paths[i]);
        st->base_names[i] = ekg_xstrdup(basename(copy_base));
        const char *dir = dirname(copy_dir);
        st->wds[i] = inotify_add_watch(ifd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE);
        if (st->wds[i] < 0)
            ekg_warn("cannot watch %s for changes (%s); reload with SIGHUP", dir, strerror(errno));
        free(copy_dir);
        free(copy_base);
    }
}

/* Drains the inotify descriptor; true when an event concerns one of the files (or a ConfigMap data swap). */
static bool files_changed(serve_state_t *st, int ifd)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool changed = false;
    for (;;) {
        ssize_t n = read(ifd, buf, sizeof(buf));
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
            for (size_t i = 0; i < st->nwatched; i++)
                if (st->wds[i] == ev->wd && strcmp(st->base_names[i], ev->name) == 0)
                    changed = true;
        }
    }
    return changed;
}

/*
 * Re-reads the config file (if there is one) and, in file mode, the objects. A config that does not load is
 * rejected with its file:line message and the one in force stays; a good one replaces it, and the rebuild
 * pushes only what changed (versions are content hashes, so an unchanged result pushes nothing).
 */
static void reload(serve_state_t *st, const char *why)
{
    if (st->config_path) {
        ekg_diag_t diag = {{0}};
        ekg_config_t *next = NULL;
        ekg_err_t err = ekg_config_load_file(st->config_path, &next, &diag);
        if (err != EKG_OK) {
            ekg_error("%s: config rejected, keeping the one in force: %s", why,
                      diag.msg[0] ? diag.msg : ekg_strerror(err));
        } else if (ekg_config_hash(next) == ekg_config_hash(st->cfg)) {
            ekg_config_free(next); /* same effective config (comments, key order...): nothing to redo */
        } else {
            ekg_info("%s: config %s reloaded", why, st->config_path);
            if (st->kube)
                ekg_watcher_set_config(st->watcher, next); /* returns once the watcher left the old one */
            ekg_config_free(st->cfg);
            st->cfg = next;
        }
    }
    if (!st->kube) {
        ekg_info("%s: reloading objects", why);
        load_and_publish(st);
    }
}

/* The main loop: returns when SIGTERM or SIGINT arrives. */
static void run(serve_state_t *st, int sfd, int ifd)
{
    long long reload_at = -1; /* debounced file change: reload at this time */
    for (;;) {
        struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN}, {.fd = ifd, .events = POLLIN}};
        int timeout = -1;
        if (reload_at >= 0) {
            long long left = reload_at - ekg_clock_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        int n = poll(fds, ifd >= 0 ? 2 : 1, timeout);
        if (n < 0 && errno != EINTR) {
            ekg_error("poll failed: %s", strerror(errno));
            return;
        }
        if (n > 0 && (fds[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                    reload(st, "SIGHUP");
                    reload_at = -1;
                } else {
                    ekg_info("%s: stopping", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
                    return;
                }
            }
        }
        if (n > 0 && ifd >= 0 && (fds[1].revents & POLLIN) && files_changed(st, ifd) && reload_at < 0)
            reload_at = ekg_clock_ms() + DEBOUNCE_MS;
        if (reload_at >= 0 && ekg_clock_ms() >= reload_at) {
            reload_at = -1;
            reload(st, "files changed");
        }
    }
}

/*
 * Starts the debug HTTP port unless listen is "off" (then *out stays NULL). The status page says objects come
 * from kube_desc (Kubernetes mode), the files or the demo. An address given with --debug-listen (required)
 * must work: the error is printed and returned, and the caller exits. The default address only costs a
 * warning when it is taken (another ekglue on the same host, parallel tests): serving xDS matters more.
 */
static ekg_err_t start_debug(const char *listen, bool required, ekg_cache_t *cache, ekg_xds_server_t *xds,
                             ekg_watcher_t *watcher, const serve_state_t *st, const char *kube_desc,
                             ekg_debug_server_t **out)
{
    ekg_diag_t diag = {{0}};
    ekg_err_t err = EKG_OK;
    char *desc = NULL;
    size_t size = 0;
    FILE *f = NULL;
    if (strcmp(listen, "off") == 0) {
        ekg_info("debug server disabled (--debug-listen off)");
        goto out;
    }
    f = ekg_xmemstream(&desc, &size);
    if (kube_desc)
        fprintf(f, "Kubernetes API %s", kube_desc);
    else if (!st->npaths)
        fputs("the embedded demo cluster", f);
    for (size_t i = 0; !kube_desc && i < st->npaths; i++)
        fprintf(f, "%s%s", i ? ", " : "files ", st->paths[i]);
    ekg_xmemstream_close(f);
    ekg_debug_options_t opts = {.listen = listen, .optional = !required};
    if ((err = ekg_debug_server_start(&opts, cache, xds, watcher, desc, out, &diag)) != EKG_OK)
        goto out;
    ekg_info("debug server listening port=%d address=%s", ekg_debug_server_port(*out), listen);
out:
    if (err && required) {
        fprintf(stderr, "ekglue serve: %s\n", diag.msg[0] ? diag.msg : ekg_strerror(err));
    } else if (err) {
        /* info, not warn: nobody asked for this address, and another ekglue on the host is normal */
        ekg_info("debug server not started, continuing without it address=%s error=\"%s\"", listen,
                 diag.msg[0] ? diag.msg : ekg_strerror(err));
        err = EKG_OK;
    }
    free(desc);
    return err;
}

/* Long-only options (the Kubernetes ones use 1000 and up, src/cli/cli.h). */
enum { OPT_TLS_CERT = 2000, OPT_TLS_KEY, OPT_TLS_CLIENT_CA };

/* The watcher's first complete sync is published: from now on this replica answers SERVING for good. */
static void on_synced(void *ctx)
{
    ekg_info("Kubernetes: first complete sync published");
    ekg_xds_server_set_serving(ctx, true);
}

/* The command line, parsed. Strings are borrowed from argv. */
typedef struct serve_args {
    const char *config_path; /* --config, or NULL */
    ekg_xds_server_options_t xds;
    const char *debug_listen;
    bool debug_required; /* --debug-listen given: failing to listen is fatal */
    ekg_cli_kube_t kube; /* owned: ekg_cli_kube_free */
} serve_args_t;

/* Parses argv into *a and st->paths. Returns -1 to go on, or the exit code (help, usage errors). */
static int parse_args(int argc, char **argv, serve_args_t *a, serve_state_t *st)
{
    static const struct option opts[] = {EKG_CLI_KUBE_OPTIONS,
                                         {"objects", required_argument, NULL, 'o'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"xds-listen", required_argument, NULL, 'x'},
                                         {"debug-listen", required_argument, NULL, 'd'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
                                         {"tls-key", required_argument, NULL, OPT_TLS_KEY},
                                         {"tls-client-ca", required_argument, NULL, OPT_TLS_CLIENT_CA},
                                         {"threads", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "o:c:x:l:t:h", opts, NULL)) != -1;) {
        switch (c) {
        case 'o':
            st->paths[st->npaths++] = optarg;
            break;
        case 'c':
            a->config_path = optarg;
            break;
        case 'x':
            a->xds.listen = optarg;
            break;
        case 'd':
            a->debug_listen = optarg;
            a->debug_required = true;
            break;
        case 'l':
            if (!ekg_cli_set_log_level("serve", optarg))
                return EKG_EXIT_USAGE;
            break;
        case 't': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 1 || v > 64) {
                fprintf(stderr, "ekglue serve: --threads wants a number from 1 to 64, not '%s'\n", optarg);
                return EKG_EXIT_USAGE;
            }
            a->xds.threads = (int)v;
            break;
        }
        case OPT_TLS_CERT:
            a->xds.tls_cert = optarg;
            break;
        case OPT_TLS_KEY:
            a->xds.tls_key = optarg;
            break;
        case OPT_TLS_CLIENT_CA:
            a->xds.tls_client_ca = optarg;
            break;
        case 'h':
            usage(stdout);
            return EKG_EXIT_OK;
        default: {
            int k = ekg_cli_kube_option(&a->kube, "serve", c, optarg);
            if (k > 0)
                break;
            if (k == 0)
                usage(stderr);
            return EKG_EXIT_USAGE;
        }
        }
    }
    if (!a->xds.tls_cert != !a->xds.tls_key || (a->xds.tls_client_ca && !a->xds.tls_cert)) {
        fprintf(stderr, "ekglue serve: --tls-cert and --tls-key go together; --tls-client-ca needs both\n");
        return EKG_EXIT_USAGE;
    }
    if (st->npaths && a->kube.any) {
        fprintf(stderr, "ekglue serve: --objects and the Kubernetes flags exclude each other\n");
        return EKG_EXIT_USAGE;
    }
    if (optind < argc) {
        usage(stderr);
        return EKG_EXIT_USAGE;
    }
    return -1;
}

/* What runs while serving; each NULL until started, stopped in this order at the one exit of ekg_cli_serve.
 */
typedef struct running {
    ekg_debug_server_t *debug;
    ekg_watcher_t *watcher;
    ekg_xds_server_t *server;
} running_t;

/*
 * Starts the xDS server and the source of objects: the Kubernetes watcher (conn not NULL: the server starts
 * NOT_SERVING and empty; the watcher publishes and turns health on once synced), or the files or the demo
 * (read and published first, then SERVING). Then the debug port. Errors are printed.
 */
static ekg_err_t start(serve_state_t *st, serve_args_t *a, ekg_kube_conn_t *conn, running_t *r)
{
    ekg_diag_t diag = {{0}};
    ekg_err_t err = EKG_OK;
    if (!conn && (err = load_and_publish(st)) != EKG_OK) {
        fprintf(stderr, "ekglue serve: the objects could not be loaded (see above)\n");
        return err;
    }
    if ((err = ekg_xds_server_start(st->cache, &a->xds, &r->server, &diag)) != EKG_OK)
        goto out;
    if (conn)
        ekg_info("xDS server listening port=%d address=%s threads=%d source=kubernetes",
                 ekg_xds_server_port(r->server), a->xds.listen, a->xds.threads ? a->xds.threads : 2);
    else
        ekg_info("xDS server listening port=%d address=%s threads=%d objects_files=%zu",
                 ekg_xds_server_port(r->server), a->xds.listen, a->xds.threads ? a->xds.threads : 2,
                 st->npaths);
    if (conn) {
        if ((err = ekg_watcher_start(conn, &a->kube.watch, st->cfg, st->cache, on_synced, r->server,
                                     &r->watcher, &diag)) != EKG_OK)
            goto out;
        st->watcher = r->watcher;
    } else {
        ekg_xds_server_set_serving(r->server, true);
    }
    return start_debug(a->debug_listen, a->debug_required, st->cache, r->server, r->watcher, st,
                       conn ? ekg_kube_conn_describe(conn) : NULL, &r->debug);
out:
    fprintf(stderr, "ekglue serve: %s\n", diag.msg[0] ? diag.msg : ekg_strerror(err));
    return err;
}

int ekg_cli_serve(int argc, char **argv)
{
    int rc = EKG_EXIT_FAILURE;
    ekg_diag_t diag = {{0}};
    ekg_err_t err = EKG_OK;
    serve_state_t st = {0};
    serve_args_t a = {.xds = {.listen = "0.0.0.0:18000"}, .debug_listen = "127.0.0.1:18001"};
    running_t r = {0};
    ekg_kube_conn_t *conn = NULL;
    int sfd = -1, ifd = -1;
    sigset_t mask;

    st.paths = ekg_xcalloc((size_t)argc + 1, sizeof(*st.paths));
    st.wds = ekg_xcalloc((size_t)argc + 1, sizeof(*st.wds));
    st.base_names = ekg_xcalloc((size_t)argc + 1, sizeof(*st.base_names));
    ekg_cli_kube_init(&a.kube, argc);
    ekg_log_set_level(EKG_LOG_INFO);
    if ((rc = parse_args(argc, argv, &a, &st)) >= 0)
        goto out;
    rc = EKG_EXIT_FAILURE;

    /* Before any thread exists, so that every thread inherits the mask and the signals reach only sfd. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0 || (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
        fprintf(stderr, "ekglue serve: cannot set up signal handling: %s\n", strerror(errno));
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);

    err = a.config_path ? ekg_config_load_file(a.config_path, &st.cfg, &diag)
                        : ekg_config_default(&st.cfg, &diag);
    if (err) {
        fprintf(stderr, "ekglue serve: %s\n", diag.msg[0] ? diag.msg : ekg_strerror(err));
        rc = EKG_EXIT_CONFIG;
        goto out;
    }
    st.cache = ekg_cache_new();
    st.config_path = a.config_path;
    /* The files to watch: the objects, then the config file. */
    st.nwatched = st.npaths;
    if (a.config_path)
        st.paths[st.nwatched++] = a.config_path;
    if (st.npaths == 0) {
        err = ekg_kube_conn_resolve(&a.kube.conn, &conn, &diag);
        if (err == EKG_ENOENT && !a.kube.any) {
            ekg_warn("no --objects and no Kubernetes API configured: serving the embedded demo cluster "
                     "(deploy/demo/cluster.yaml)");
        } else if (err != EKG_OK) {
            fprintf(stderr, "ekglue serve: %s\n", diag.msg[0] ? diag.msg : ekg_strerror(err));
            rc = EKG_EXIT_CONFIG;
            goto out;
        } else {
            st.kube = true;
            ekg_info("Kubernetes API: %s", ekg_kube_conn_describe(conn));
        }
    }
    if (st.nwatched) {
        if ((ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0)
            ekg_warn("inotify unavailable (%s); reload with SIGHUP", strerror(errno));
        else
            watch_files(&st, ifd); /* before the first read, so that no change slips in between */
    }
    if (start(&st, &a, conn, &r) != EKG_OK)
        goto out;
    run(&st, sfd, ifd);
    rc = EKG_EXIT_OK;
out:
    /* The one stop sequence. Debug port first; the source, so that nothing publishes any more; health
     * NOT_SERVING, so that a load balancer watching it stops sending clients here; then every stream gets
     * UNAVAILABLE (ekg_xds_server_stop). */
    ekg_debug_server_stop(r.debug);
    ekg_watcher_stop(r.watcher);
    if (r.server)
        ekg_xds_server_set_serving(r.server, false);
    ekg_xds_server_stop(r.server);
    ekg_kube_conn_free(conn);
    ekg_cli_kube_free(&a.kube);
    ekg_cache_free(st.cache);
    ekg_config_free(st.cfg);
    if (ifd >= 0)
        close(ifd);
    if (sfd >= 0)
        close(sfd);
    /* SIGTERM, SIGINT and SIGHUP stay blocked, never restored: one that arrived during the shutdown (an
     * impatient second SIGTERM) is still pending, and unblocking it here would kill the process by the
     * signal on its way to exit 0. main returns right after; the pending signals die with the process. */
    for (size_t i = 0; i < st.nwatched; i++)
        free(st.base_names[i]);
    free(st.base_names);
    free(st.wds);
    free(st.paths);
    return rc;
}
