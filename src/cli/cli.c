/*
 * src/cli/cli.c: dispatch of ekglue's subcommands (docs/cli.md). Thread: main.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/proto.h"

#include "cli/cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"serve", ekg_cli_serve, "serve xDS (CDS, EDS, LDS for proxyless gRPC) from manifests or Kubernetes"},
    {"dump", ekg_cli_dump, "translate manifests once and print the Envoy resources"},
    {"check-config", ekg_cli_check_config, "validate a config file and print the effective base Cluster"},
};

bool ekg_cli_set_log_level(const char *command, const char *arg)
{
    int level = ekg_log_parse_level(arg);
    if (level < 0) {
        fprintf(stderr, "ekglue %s: unknown log level '%s' (debug, info, warn, error or off)\n", command,
                arg);
        return false;
    }
    ekg_log_set_level((ekg_log_level_t)level);
    return true;
}

void ekg_cli_kube_init(ekg_cli_kube_t *k, int argc)
{
    *k = (ekg_cli_kube_t){0};
    k->namespaces = ekg_xcalloc((size_t)argc + 1, sizeof(*k->namespaces));
}

void ekg_cli_kube_free(ekg_cli_kube_t *k)
{
    free(k->namespaces);
    k->namespaces = NULL;
}

static bool parse_ms(const char *command, const char *flag, const char *arg, int *out)
{
    char *end;
    long v = strtol(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || v < 0 || v > 600000) {
        fprintf(stderr, "ekglue %s: %s wants milliseconds from 0 to 600000, not '%s'\n", command, flag, arg);
        return false;
    }
    *out = (int)v;
    return true;
}

int ekg_cli_kube_option(ekg_cli_kube_t *k, const char *command, int code, const char *arg)
{
    switch (code) {
    case EKG_OPT_KUBECONFIG:
        k->conn.kubeconfig = arg;
        break;
    case EKG_OPT_CONTEXT:
        k->conn.context = arg;
        break;
    case EKG_OPT_MASTER:
        k->conn.master = arg;
        break;
    case EKG_OPT_NAMESPACE:
        k->namespaces[k->nnamespaces++] = arg;
        k->watch.namespaces = k->namespaces;
        k->watch.nnamespaces = k->nnamespaces;
        break;
    case EKG_OPT_SELECTOR:
        k->watch.service_selector = arg;
        break;
    case EKG_OPT_COALESCE:
        return parse_ms(command, "--coalesce-ms", arg, &k->watch.coalesce_ms) ? 1 : -1;
    case EKG_OPT_COALESCE_MAX:
        return parse_ms(command, "--coalesce-max-ms", arg, &k->watch.coalesce_max_ms) ? 1 : -1;
    default:
        return 0;
    }
    k->any = true;
    return 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ekglue COMMAND [OPTIONS]   (ekglue COMMAND --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nExit codes: 0 ok, 1 failure, 2 usage error, 3 config error.\n");
}

int ekg_cli_main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EKG_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return EKG_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("ekglue %s\n", EKG_VERSION);
        return EKG_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        ekg_diag_t diag = {{0}};
        /* Process-wide setup, before any thread exists (curl_global_init is not thread-safe in 7.88). */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            fprintf(stderr, "ekglue: libcurl initialization failed\n");
            return EKG_EXIT_FAILURE;
        }
        if (ekg_proto_init(&diag) != EKG_OK) {
            fprintf(stderr, "ekglue: %s\n", diag.msg);
            return EKG_EXIT_FAILURE;
        }
        int rc = commands[i].run(argc - 1, argv + 1);
        ekg_proto_shutdown();
        curl_global_cleanup();
        return rc;
    }
    fprintf(stderr, "ekglue: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EKG_EXIT_USAGE;
}
