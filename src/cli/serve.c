/*
 * src/cli/serve.c: `ekglue serve`: the daemon. Wiring only: the config, the cache, the sink, one source, the
 * xDS server and the debug port, started in order and stopped in one sequence.
 *
 *   ekglue serve [--objects FILE ...] [--config FILE] [--xds-listen ADDR] [--debug-listen ADDR|off]
 *                [--metrics-listen ADDR]
 *                [--log-level L] [--threads N] [--kubeconfig FILE] [--context NAME] [--master URL]
 *                [--namespace NS ...] [--service-selector S] [--xds-<limit> N ...]
 *
 * One source of three (include/ekglue/watch.h): --objects files; the Kubernetes API
 * (--kubeconfig/$KUBECONFIG,
 * --master, or in-cluster), health turning SERVING once its first complete sync is published; and when
 * neither is configured, the demo cluster embedded at build time. Each feeds the publisher sink, which
 * translates and publishes to the cache on the source's thread; the xDS server hands every snapshot to its
 * streams.
 *
 * The config file (--config) is re-read when it changes and on SIGHUP: a config that does not load is
 * rejected with its file:line message and the one in force stays; a good one is handed to the source
 * (ekg_source_reload, which switches the sink and re-reads the files) and only what changed is pushed.
 *
 * The debug HTTP port (src/debug/http.c; loopback by default) starts after the xDS server and stops before
 * it; it reads the cache, the xDS server's client listing and the watcher's status on its own thread. So does
 * the metrics listener (--metrics-listen), a second such server that answers /metrics, /healthz and /readyz
 * only, so that probes and Prometheus reach the pod IP without the topology (docs/operations.md, "Ports").
 *
 * Thread: main runs everything here: one poll() loop over a signalfd (SIGTERM, SIGINT, SIGHUP, blocked in
 * every thread) and the config file's watch, without timeouts except a short debounce after a file event. The
 * source, the gRPC server and the debug port have their own threads.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "ekglue/cache.h"
#include "ekglue/clock.h"
#include "ekglue/debug.h"
#include "ekglue/file.h"
#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/translate.h"
#include "ekglue/watch.h"
#include "ekglue/xds.h"

#include "cli/cli.h"

/* After a config file event, wait this long for the writer's other events before reading (one per save). */
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
        "  --metrics-listen ADDR  /metrics, /healthz and /readyz only, no topology: for Prometheus and\n"
        "                     HTTP probes on the pod IP (default off; port 0 picks one)\n"
        "  --tls-cert FILE    serve xDS over TLS with this PEM certificate (chain); with --tls-key\n"
        "  --tls-key FILE     ... and this PEM private key; both re-read when they change\n"
        "  --tls-client-ca FILE  require client certificates signed by a CA in this PEM file (mTLS)\n"
        "  --log-level L      debug|info|warn|error|off (default info)\n"
        "  --threads N        gRPC completion-queue threads (default 2)\n" EKG_CLI_KUBE_USAGE
        "  --coalesce-ms N    publish this long after a Kubernetes change (default 100)\n"
        "  --coalesce-max-ms N  ... but at most this long after the first unpublished one (default 1000)\n"
        "\n"
        "Limits on xDS clients (docs/operations.md, \"Limits\"): past one, the stream ends with\n"
        "RESOURCE_EXHAUSTED. Sizes take a k, m or g suffix (KiB, MiB, GiB); -1: none, where marked.\n"
        "  --xds-max-request-bytes N         one request message (default 4m)\n"
        "  --xds-memory-limit-bytes N        gRPC's buffers, all connections (default 1g; -1)\n"
        "  --xds-max-names-per-request N     resource names in one request (default 10000; -1)\n"
        "  --xds-max-names-per-stream N      names subscribed on one stream (default 20000; -1)\n"
        "  --xds-max-streams-per-connection N  calls at once on one connection (default 4096)\n"
        "  --xds-max-streams N               calls at once in total (default 10000; -1)\n"
        "  --xds-max-requests-per-second N   per stream, over 10 s (default 100; -1)\n"
        "  --xds-send-timeout-ms N           drop a client that takes no message this long (default\n"
        "                                    30000; -1)\n"
        "  --xds-max-client-status-bytes N   one CSDS answer, one /clients page (default 4m)\n"
        "\n"
        "With no --objects: the Kubernetes API if one is configured (flags above, $KUBECONFIG, or in a\n"
        "cluster), otherwise the embedded demo cluster.\n"
        "\n"
        "Exit codes: 0 ok (stopped by a signal), 1 failure (objects unreadable at start, cannot listen),\n"
        "2 usage error, 3 config error.\n");
}

/* What runs while serving; each NULL until started, stopped in the one sequence at the exit of ekg_cli_serve.
 */
typedef struct serve_state {
    ekg_config_t *cfg;       /* owned: the config in force (replaced by a good reload) */
    const char *config_path; /* --config, or NULL (the built-in config, never reloaded) */
    const char **paths;      /* the --objects files (borrowed from argv) */
    size_t npaths;
    ekg_kube_conn_t *conn; /* owned; NULL unless the Kubernetes API is the source */
    ekg_cache_t *cache;    /* owned */
    ekg_sink_t *sink;      /* owned */
    ekg_source_t *source;  /* owned */
    ekg_xds_server_t *server;
    ekg_debug_server_t *debug;
    ekg_debug_server_t *metrics; /* --metrics-listen: /metrics, /healthz, /readyz only */
} serve_state_t;

/*
 * Re-reads the config file (if there is one) and hands a changed config to the source, which also re-reads
 * the files. A config that does not load is rejected with its file:line message and the one in force stays.
 */
static void reload(serve_state_t *st, const char *why)
{
    ekg_config_t *next = NULL;
    if (st->config_path) {
        ekg_diag_t diag = {{0}};
        ekg_err_t err = ekg_config_load_file(st->config_path, &next, &diag);
        if (err != EKG_OK) {
            ekg_error("%s: config rejected, keeping the one in force: %s", why,
                      diag.msg[0] ? diag.msg : ekg_strerror(err));
        } else if (ekg_config_hash(next) == ekg_config_hash(st->cfg)) {
            ekg_config_free(next); /* same effective config (comments, key order...): nothing to redo */
            next = NULL;
        } else {
            ekg_info("%s: config %s reloaded", why, st->config_path);
        }
    }
    ekg_source_reload(st->source, next, why); /* returns once the source left the old config */
    if (next) {
        ekg_config_free(st->cfg);
        st->cfg = next;
    }
}

/* The main loop: returns when SIGTERM or SIGINT arrives. */
static void run(serve_state_t *st, int sfd, ekg_file_watch_t *fw)
{
    long long reload_at = -1; /* debounced config file change: reload at this time */
    int ifd = ekg_file_watch_fd(fw);
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
        if (n > 0 && ifd >= 0 && (fds[1].revents & POLLIN) && ekg_file_watch_changed(fw) && reload_at < 0)
            reload_at = ekg_clock_ms() + DEBOUNCE_MS;
        if (reload_at >= 0 && ekg_clock_ms() >= reload_at) {
            reload_at = -1;
            reload(st, "files changed");
        }
    }
}

/*
 * Starts the debug HTTP port (metrics_only: the metrics listener) unless listen is "off" (then *out stays
 * NULL). The status page says objects come from kube_desc (Kubernetes mode), the files or the demo. An
 * address given with --debug-listen or --metrics-listen (required) must work: the error is printed and
 * returned, and the caller exits. The default debug address only costs a line at info when it is taken
 * (another ekglue on the same host, parallel tests): serving xDS matters more.
 */
static ekg_err_t start_debug(const char *listen, bool required, bool metrics_only, const serve_state_t *st,
                             ekg_debug_server_t **out)
{
    const char *what = metrics_only ? "metrics" : "debug";
    ekg_diag_t diag = {{0}};
    ekg_err_t err = EKG_OK;
    char *desc = NULL;
    size_t size = 0;
    FILE *f = NULL;
    if (strcmp(listen, "off") == 0) {
        ekg_info("%s server disabled (--%s-listen off)", what, what);
        goto out;
    }
    const char *kube_desc = st->conn ? ekg_kube_conn_describe(st->conn) : NULL;
    f = ekg_xmemstream(&desc, &size);
    if (kube_desc)
        fprintf(f, "Kubernetes API %s", kube_desc);
    else if (!st->npaths)
        fputs("the embedded demo cluster", f);
    for (size_t i = 0; !kube_desc && i < st->npaths; i++)
        fprintf(f, "%s%s", i ? ", " : "files ", st->paths[i]);
    ekg_xmemstream_close(f);
    ekg_debug_options_t opts = {.listen = listen, .optional = !required, .metrics_only = metrics_only};
    if ((err = ekg_debug_server_start(&opts, st->cache, st->server, ekg_source_watcher(st->source), desc, out,
                                      &diag)) != EKG_OK)
        goto out;
    ekg_info("%s server listening port=%d address=%s", what, ekg_debug_server_port(*out), listen);
out:
    if (err && required) {
        fprintf(stderr, "ekglue serve: %s\n", diag.msg[0] ? diag.msg : ekg_strerror(err));
    } else if (err) {
        /* info, not warn: nobody asked for this address, and another ekglue on the host is normal */
        ekg_info("%s server not started, continuing without it address=%s error=\"%s\"", what, listen,
                 diag.msg[0] ? diag.msg : ekg_strerror(err));
        err = EKG_OK;
    }
    free(desc);
    return err;
}

/* Long-only options (the Kubernetes ones use 1000 and up, src/cli/cli.h). */
enum {
    OPT_TLS_CERT = 2000,
    OPT_TLS_KEY,
    OPT_TLS_CLIENT_CA,
    /* The limits: OPT_LIMIT + the index in limit_flags. */
    OPT_LIMIT = 2100,
};

/* The --xds-* limit flags: where each goes in ekg_xds_limits_t, whether -1 (none) is allowed, whether it is a
 * size (k, m, g suffixes). */
static const struct limit_flag {
    const char *name;
    size_t offset;
    bool is_long, none_ok, size;
} limit_flags[] = {
    {"xds-max-request-bytes", offsetof(ekg_xds_limits_t, max_request_bytes), true, false, true},
    {"xds-memory-limit-bytes", offsetof(ekg_xds_limits_t, memory_limit_bytes), true, true, true},
    {"xds-max-names-per-request", offsetof(ekg_xds_limits_t, max_names_per_request), false, true, false},
    {"xds-max-names-per-stream", offsetof(ekg_xds_limits_t, max_names_per_stream), false, true, false},
    {"xds-max-streams-per-connection", offsetof(ekg_xds_limits_t, max_streams_per_connection), false, false,
     false},
    {"xds-max-streams", offsetof(ekg_xds_limits_t, max_streams), false, true, false},
    {"xds-max-requests-per-second", offsetof(ekg_xds_limits_t, max_requests_per_second), false, true, false},
    {"xds-send-timeout-ms", offsetof(ekg_xds_limits_t, send_timeout_ms), false, true, false},
    {"xds-max-client-status-bytes", offsetof(ekg_xds_limits_t, max_client_status_bytes), false, false, true},
};
#define NLIMIT_FLAGS (sizeof(limit_flags) / sizeof(limit_flags[0]))

/* Parses one limit flag's value into limits. false (with a message) when it is not a number in range. */
static bool parse_limit(const struct limit_flag *f, const char *arg, ekg_xds_limits_t *limits)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    int shift = 0;
    if (f->size && end != arg &&
        (*end == 'k' || *end == 'K' || *end == 'm' || *end == 'M' || *end == 'g' || *end == 'G')) {
        shift = *end == 'k' || *end == 'K' ? 10 : *end == 'm' || *end == 'M' ? 20 : 30;
        end++;
    }
    long long max = f->is_long ? 1LL << 50 : INT32_MAX;
    bool ok = *arg && *end == '\0' && errno == 0 && (v > 0 || (v == -1 && f->none_ok && shift == 0)) &&
              v <= (max >> shift);
    if (!ok) {
        fprintf(stderr, "ekglue serve: --%s wants a number from 1 to %lld%s%s, not '%s'\n", f->name, max,
                f->size ? " (k, m, g: KiB, MiB, GiB)" : "", f->none_ok ? ", or -1 for no limit" : "", arg);
        return false;
    }
    v = v < 0 ? v : v << shift;
    char *field = (char *)limits + f->offset;
    if (f->is_long)
        *(long long *)(void *)field = v;
    else
        *(int *)(void *)field = (int)v;
    return true;
}

/* The command line, parsed. Strings are borrowed from argv. */
typedef struct serve_args {
    const char *config_path; /* --config, or NULL */
    ekg_xds_server_options_t xds;
    const char *debug_listen;
    bool debug_required; /* --debug-listen given: failing to listen is fatal */
    /* --metrics-listen (/metrics, /healthz, /readyz only), or NULL: none */
    const char *metrics_listen;
    ekg_cli_kube_t kube; /* owned: ekg_cli_kube_free */
} serve_args_t;

/* Parses argv into *a and st->paths. Returns -1 to go on, or the exit code (help, usage errors). */
static int parse_args(int argc, char **argv, serve_args_t *a, serve_state_t *st)
{
    static const struct option fixed[] = {EKG_CLI_KUBE_OPTIONS,
                                          {"objects", required_argument, NULL, 'o'},
                                          {"config", required_argument, NULL, 'c'},
                                          {"xds-listen", required_argument, NULL, 'x'},
                                          {"debug-listen", required_argument, NULL, 'd'},
                                          {"metrics-listen", required_argument, NULL, 'm'},
                                          {"log-level", required_argument, NULL, 'l'},
                                          {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
                                          {"tls-key", required_argument, NULL, OPT_TLS_KEY},
                                          {"tls-client-ca", required_argument, NULL, OPT_TLS_CLIENT_CA},
                                          {"threads", required_argument, NULL, 't'},
                                          {"help", no_argument, NULL, 'h'}};
    enum { NFIXED = sizeof(fixed) / sizeof(fixed[0]) };
    struct option opts[NFIXED + NLIMIT_FLAGS + 1];
    memcpy(opts, fixed, sizeof(fixed));
    for (size_t i = 0; i < NLIMIT_FLAGS; i++)
        opts[NFIXED + i] = (struct option){limit_flags[i].name, required_argument, NULL, OPT_LIMIT + (int)i};
    opts[NFIXED + NLIMIT_FLAGS] = (struct option){NULL, 0, NULL, 0};
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
        case 'm':
            a->metrics_listen = optarg;
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
            if (c >= OPT_LIMIT && c < OPT_LIMIT + (int)NLIMIT_FLAGS) {
                if (!parse_limit(&limit_flags[c - OPT_LIMIT], optarg, &a->xds.limits))
                    return EKG_EXIT_USAGE;
                break;
            }
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

/* The watcher's first complete sync is published: from now on this replica answers SERVING for good. */
static void on_synced(void *ctx)
{
    serve_state_t *st = ctx;
    ekg_info("Kubernetes: first complete sync published");
    ekg_xds_server_set_serving(st->server, true);
}

/*
 * Starts the source and the xDS server: the files or the demo are read and published first, then the server
 * starts, SERVING from its first connection on; the Kubernetes watcher starts after the server (NOT_SERVING
 * and empty), which it turns SERVING once synced. Then the debug port. Errors are printed.
 */
static ekg_err_t start(serve_state_t *st, serve_args_t *a)
{
    ekg_diag_t diag = {{0}};
    ekg_err_t err = EKG_OK;
    st->sink = ekg_sink_publisher_new(st->cfg, st->cache, st->conn ? on_synced : NULL, st);
    if (!st->conn && (err = ekg_source_files_start(st->paths, st->npaths, "embedded demo cluster",
                                                   (const char *)ekg_demo_cluster, ekg_demo_cluster_size,
                                                   st->sink, &st->source, &diag)) != EKG_OK) {
        fprintf(stderr, "ekglue serve: the objects could not be loaded: %s\n",
                diag.msg[0] ? diag.msg : ekg_strerror(err));
        return err;
    }
    a->xds.serving = !st->conn; /* the files are published: SERVING from the first connection on */
    if ((err = ekg_xds_server_start(st->cache, &a->xds, &st->server, &diag)) != EKG_OK)
        goto out;
    if (st->conn)
        ekg_info("xDS server listening port=%d address=%s threads=%d source=kubernetes",
                 ekg_xds_server_port(st->server), a->xds.listen, a->xds.threads ? a->xds.threads : 2);
    else
        ekg_info("xDS server listening port=%d address=%s threads=%d objects_files=%zu",
                 ekg_xds_server_port(st->server), a->xds.listen, a->xds.threads ? a->xds.threads : 2,
                 st->npaths);
    if (st->conn &&
        (err = ekg_source_kube_start(st->conn, &a->kube.watch, st->sink, &st->source, &diag)) != EKG_OK)
        goto out;
    if (a->metrics_listen && (err = start_debug(a->metrics_listen, true, true, st, &st->metrics)) != EKG_OK)
        return err;
    return start_debug(a->debug_listen, a->debug_required, false, st, &st->debug);
out:
    fprintf(stderr, "ekglue serve: %s\n", diag.msg[0] ? diag.msg : ekg_strerror(err));
    return err;
}

/* Picks the source: --objects files, else the Kubernetes API if configured, else the demo. Exit code or -1.
 */
static int pick_source(serve_state_t *st, serve_args_t *a)
{
    if (st->npaths)
        return -1;
    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_kube_conn_resolve(&a->kube.conn, &st->conn, &diag);
    if (err == EKG_ENOENT && !a->kube.any) {
        ekg_warn("no --objects and no Kubernetes API configured: serving the embedded demo cluster "
                 "(deploy/demo/cluster.yaml)");
        return -1;
    }
    if (err != EKG_OK) {
        fprintf(stderr, "ekglue serve: %s\n", diag.msg[0] ? diag.msg : ekg_strerror(err));
        return EKG_EXIT_CONFIG;
    }
    ekg_info("Kubernetes API: %s", ekg_kube_conn_describe(st->conn));
    return -1;
}

int ekg_cli_serve(int argc, char **argv)
{
    int rc = EKG_EXIT_FAILURE;
    ekg_diag_t diag = {{0}};
    serve_state_t st = {0};
    serve_args_t a = {.xds = {.listen = "0.0.0.0:18000"}, .debug_listen = "127.0.0.1:18001"};
    ekg_file_watch_t *fw = NULL;
    int sfd = -1;
    sigset_t mask;

    st.paths = ekg_xcalloc((size_t)argc + 1, sizeof(*st.paths));
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

    st.config_path = a.config_path;
    ekg_err_t err = a.config_path ? ekg_config_load_file(a.config_path, &st.cfg, &diag)
                                  : ekg_config_default(&st.cfg, &diag);
    if (err) {
        fprintf(stderr, "ekglue serve: %s\n", diag.msg[0] ? diag.msg : ekg_strerror(err));
        rc = EKG_EXIT_CONFIG;
        goto out;
    }
    if ((rc = pick_source(&st, &a)) >= 0)
        goto out;
    rc = EKG_EXIT_FAILURE;
    st.cache = ekg_cache_new();
    /* Watched before the source reads anything, so that no change slips in between. */
    fw = ekg_file_watch_new(&st.config_path, st.config_path ? 1 : 0);
    if (start(&st, &a) != EKG_OK)
        goto out;
    run(&st, sfd, fw);
    rc = EKG_EXIT_OK;
out:
    /* The one stop sequence. Debug port first; the source, so that nothing publishes any more; health
     * NOT_SERVING, so that a load balancer watching it stops sending clients here; then every stream gets
     * UNAVAILABLE (ekg_xds_server_stop). */
    ekg_debug_server_stop(st.debug);
    ekg_debug_server_stop(st.metrics);
    ekg_source_stop(st.source);
    if (st.server)
        ekg_xds_server_set_serving(st.server, false);
    ekg_xds_server_stop(st.server);
    ekg_sink_free(st.sink);
    ekg_kube_conn_free(st.conn);
    ekg_cli_kube_free(&a.kube);
    ekg_cache_free(st.cache);
    ekg_config_free(st.cfg);
    ekg_file_watch_free(fw);
    if (sfd >= 0)
        close(sfd);
    /* SIGTERM, SIGINT and SIGHUP stay blocked, never restored: one that arrived during the shutdown (an
     * impatient second SIGTERM) is still pending, and unblocking it here would kill the process by the
     * signal on its way to exit 0. main returns right after; the pending signals die with the process. */
    free(st.paths);
    return rc;
}
