/*
 * src/cli/cli.h: ekglue's subcommands (dump, check-config, serve). Private to the library and main.c.
 * Thread: main.
 */
#ifndef EKG_CLI_H
#define EKG_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "ekglue/watch.h"

/* Exit codes, documented in docs/cli.md. */
enum { EKG_EXIT_OK = 0, EKG_EXIT_FAILURE = 1, EKG_EXIT_USAGE = 2, EKG_EXIT_CONFIG = 3 };

int ekg_cli_main(int argc, char **argv);

/*
 * The Kubernetes flags `serve` and `dump` share: --kubeconfig, --context, --master, --namespace (repeatable),
 * --service-selector, and (serve only, harmless for dump) --coalesce-ms, --coalesce-max-ms. Add
 * EKG_CLI_KUBE_OPTIONS to a getopt_long table and pass every unknown option code to ekg_cli_kube_option().
 */
typedef struct ekg_cli_kube {
    ekg_kube_options_t conn;
    ekg_watch_options_t watch;
    const char **namespaces; /* borrowed from argv; owned array */
    size_t nnamespaces;
    bool any; /* a Kubernetes flag was given */
} ekg_cli_kube_t;

enum {
    EKG_OPT_KUBECONFIG = 1000,
    EKG_OPT_CONTEXT,
    EKG_OPT_MASTER,
    EKG_OPT_NAMESPACE,
    EKG_OPT_SELECTOR,
    EKG_OPT_COALESCE,
    EKG_OPT_COALESCE_MAX
};

#define EKG_CLI_KUBE_OPTIONS                                                                                 \
    {"kubeconfig", required_argument, NULL, EKG_OPT_KUBECONFIG},                                             \
        {"context", required_argument, NULL, EKG_OPT_CONTEXT},                                               \
        {"master", required_argument, NULL, EKG_OPT_MASTER},                                                 \
        {"namespace", required_argument, NULL, EKG_OPT_NAMESPACE},                                           \
        {"service-selector", required_argument, NULL, EKG_OPT_SELECTOR},                                     \
        {"coalesce-ms", required_argument, NULL, EKG_OPT_COALESCE},                                          \
    {                                                                                                        \
        "coalesce-max-ms", required_argument, NULL, EKG_OPT_COALESCE_MAX                                     \
    }

#define EKG_CLI_KUBE_USAGE                                                                                   \
    "  --kubeconfig FILE  Kubernetes API from a kubeconfig (default $KUBECONFIG; else in-cluster)\n"         \
    "  --context NAME     kubeconfig context (default: current-context)\n"                                   \
    "  --master URL       Kubernetes API server URL\n"                                                       \
    "  --namespace NS     watch only this namespace's Services and EndpointSlices (repeatable)\n"            \
    "  --service-selector SEL  label selector for Services (e.g. app.kubernetes.io/part-of=shop)\n"

/* Initializes k for argc arguments (allocates the namespace array; ekg_cli_kube_free). */
void ekg_cli_kube_init(ekg_cli_kube_t *k, int argc);
void ekg_cli_kube_free(ekg_cli_kube_t *k);
/* 1: handled; 0: not a Kubernetes option; -1: bad value (said on stderr). */
int ekg_cli_kube_option(ekg_cli_kube_t *k, const char *command, int code, const char *arg);

/* Applies a --log-level argument; false (after saying why on stderr) when it is not a level. */
bool ekg_cli_set_log_level(const char *command, const char *arg);

/* Subcommands: argv[0] is the subcommand's name; each returns an exit code. */
int ekg_cli_dump(int argc, char **argv);         /* src/cli/dump.c */
int ekg_cli_check_config(int argc, char **argv); /* src/cli/check_config.c */
int ekg_cli_serve(int argc, char **argv);        /* src/cli/serve.c */

#endif
