/*
 * src/cli/check_config.c: `ekglue check-config FILE`, the config validator (docs/config.md).
 *
 * Loads FILE exactly as the daemon would. On success it prints the effective base Cluster as canonical proto3
 * JSON (what every cluster starts from before overrides) on stdout and a one-line summary on stderr, so that
 * the JSON can be piped; exit 0. On a config error it prints "FILE:LINE: key: reason" on stderr; exit 3. A
 * config error includes a Cluster that breaks one of Envoy's validation rules or cannot be printed as JSON
 * (docs/config.md, "Validation").
 * Thread: main.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "ekglue/mem.h"
#include "ekglue/translate.h"
#include "ekglue/proto.h"

#include "cli/cli.h"

static void usage(FILE *to)
{
    fprintf(
        to,
        "usage: ekglue check-config FILE\n"
        "\n"
        "Validates an ekglue config file (apiVersion: v1alpha). Prints the effective base Cluster as JSON\n"
        "on stdout and a summary on stderr; exits 0 if the file is valid, 3 if it is not, 2 on bad usage.\n");
}

static const char *source_text(const ekg_locality_source_t *s, char *buf, size_t len)
{
    switch (s->kind) {
    case EKG_LOCALITY_LABEL:
        snprintf(buf, len, "label:%s", s->value);
        return buf;
    case EKG_LOCALITY_LITERAL:
        snprintf(buf, len, "literal:\"%s\"", s->value);
        return buf;
    case EKG_LOCALITY_HOSTNAME:
        return "hostname";
    case EKG_LOCALITY_NONE:
    default:
        return "none";
    }
}

/* Prints the base Cluster as pretty JSON on stdout. */
static ekg_err_t print_base(const ekg_config_t *cfg)
{
    char *json = NULL;   /* owned; from ekg_proto_to_json */
    cJSON *tree = NULL;  /* owned */
    char *pretty = NULL; /* owned; from cJSON */
    ekg_err_t err =
        ekg_proto_to_json(ekg_config_base_cluster(cfg), ekg_proto_message(EKG_TYPE_CLUSTER), &json, NULL);
    if (err != EKG_OK)
        goto out;
    tree = cJSON_Parse(json);
    if (!tree || !(pretty = cJSON_Print(tree))) {
        err = EKG_EPARSE; /* not memory (that aborts): JSON from ekg_proto_to_json that cJSON cannot take */
        goto out;
    }
    printf("%s\n", pretty);
out:
    cJSON_free(pretty);
    cJSON_Delete(tree);
    free(json);
    return err;
}

int ekg_cli_check_config(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return EKG_EXIT_OK;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "ekglue check-config: unknown option %s\n", argv[i]);
            usage(stderr);
            return EKG_EXIT_USAGE;
        }
        if (path) {
            fprintf(stderr, "ekglue check-config: expected one FILE\n");
            usage(stderr);
            return EKG_EXIT_USAGE;
        }
        path = argv[i];
    }
    if (!path) {
        usage(stderr);
        return EKG_EXIT_USAGE;
    }

    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_proto_init(&diag);
    if (err != EKG_OK) {
        fprintf(stderr, "ekglue check-config: %s\n", diag.msg[0] ? diag.msg : ekg_strerror(err));
        return EKG_EXIT_FAILURE;
    }
    ekg_config_t *cfg = NULL;
    err = ekg_config_load_file(path, &cfg, &diag);
    if (err != EKG_OK) {
        fprintf(stderr, "%s\n", diag.msg[0] ? diag.msg : ekg_strerror(err));
        return EKG_EXIT_CONFIG;
    }
    err = print_base(cfg);
    if (err != EKG_OK) {
        /* Loading checked that the clusters the config makes print as JSON; should the base alone not, it is
         * still the config's doing: said the same way (docs/config.md, "Validation"). */
        ekg_violation_t *v = ekg_xmalloc(sizeof(*v));
        if (ekg_proto_locate_json_error(ekg_config_base_cluster(cfg), ekg_proto_message(EKG_TYPE_CLUSTER),
                                        v) == EKG_EINVAL)
            fprintf(stderr, "%s: cluster_config.base%s%s: %s\n", path, v->path[0] ? "." : "", v->path,
                    v->rule);
        else
            fprintf(stderr, "%s: cluster_config.base: cannot be printed as proto3 JSON (%s)\n", path,
                    ekg_strerror(err));
        free(v);
        ekg_config_free(cfg);
        return EKG_EXIT_CONFIG;
    }
    const ekg_locality_rules_t *loc = ekg_config_locality_rules(cfg);
    char region[300], zone[300], sub_zone[300];
    size_t nrules = ekg_config_rule_count(cfg);
    fprintf(stderr,
            "%s: ok: %zu override rule%s, include_not_ready=%s, locality region=%s zone=%s sub_zone=%s, "
            "cluster_domain=%s\n",
            path, nrules, nrules == 1 ? "" : "s", ekg_config_include_not_ready(cfg) ? "true" : "false",
            source_text(&loc->region, region, sizeof(region)), source_text(&loc->zone, zone, sizeof(zone)),
            source_text(&loc->sub_zone, sub_zone, sizeof(sub_zone)), ekg_config_cluster_domain(cfg));
    ekg_config_free(cfg);
    return EKG_EXIT_OK;
}
