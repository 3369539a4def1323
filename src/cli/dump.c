/*
 * src/cli/dump.c: `ekglue dump`: translate objects from files once and print the resulting Envoy resources.
 *
 *   ekglue dump --objects FILE [--objects FILE ...] [--config FILE] [--format json|yaml|binary]
 *   ekglue dump [--kubeconfig FILE] [--context NAME] [--master URL] [--namespace NS] ...   (one list of the
 * API)
 *   ... [--client-locality REGION/ZONE[/NODE]]
 *
 * json/yaml print {"clusters": [...], "load_assignments": [...], "localities": {...}} in canonical proto
 * JSON. binary writes each resource as a google.protobuf.Any (the form it takes inside a DiscoveryResponse),
 * length-delimited (varint size, then the bytes): a test decodes it with an independent protobuf library.
 * Every format is first rendered as JSON, so that binary and JSON/YAML succeed or fail together with the same
 * message; what translation found breaking Envoy's validation rules is not there at all (warnings say so).
 * --client-locality prints what an xDS client at that place gets: the translation's snapshot asked for its
 * sets at the place (ekg_snapshot_resources_at), exactly as a stream of that client does, so Services that
 * prefer close endpoints show their per-zone priorities (docs/translation.md, "Zone-aware endpoints").
 * Thread: main.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upb/decode.h"

#include "ekglue/translate.h"
#include "ekglue/watch.h"
#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/model.h"
#include "ekglue/proto.h"
#include "ekglue/render.h"

#include "cli/cli.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: ekglue dump --objects FILE [--objects FILE ...] [--config FILE] [--format json|yaml|binary]\n"
        "       ekglue dump [--kubeconfig FILE] [--context NAME] [--master URL] [--config FILE] [--format "
        "F]\n"
        "\n"
        "Translates Kubernetes Services, EndpointSlices and Nodes read from YAML or JSON manifests (as\n"
        "`kubectl get -o yaml|json` prints them) into Envoy Clusters and ClusterLoadAssignments and prints\n"
        "them, sorted, as {\"clusters\", \"load_assignments\", \"localities\"}.\n"
        "\n"
        "  --objects FILE   manifests to read (repeatable); without it, one list of every Service,\n"
        "                   EndpointSlice and Node from the Kubernetes API (flags below, $KUBECONFIG or\n"
        "                   in-cluster)\n"
        "  --config FILE    ekglue config (docs/config.md); default: the built-in config\n"
        "  --format F       json (default), yaml, or binary (length-delimited google.protobuf.Any)\n"
        "  --client-locality REGION/ZONE[/NODE]  print the ClusterLoadAssignments of an xDS client in\n"
        "                   that region and zone (and on that Kubernetes Node): per-zone priorities for\n"
        "                   Services that prefer close endpoints (docs/translation.md); REGION may be\n"
        "                   empty (/ZONE); Clusters are the same for every client\n"
        "  --log-level L    debug|info|warn|error|off (default warn)\n" EKG_CLI_KUBE_USAGE "\n"
        "Exit codes: 0 ok, 1 failure, 2 usage error, 3 config error.\n");
}

/*
 * Writes each resource as a length-delimited google.protobuf.Any. A resource's DiscoveryResponse field is
 * exactly that, behind one tag byte: the bytes a response carries are the bytes written here.
 */
static void write_binary(const ekg_resource_set_t *set, FILE *out)
{
    for (size_t i = 0; set && i < ekg_resource_set_size(set); i++) {
        size_t len;
        const char *field = ekg_resource_response_field(ekg_resource_set_at(set, i), &len);
        fwrite(field + 1, 1, len - 1, out);
    }
}

/*
 * Why the resources of set (of message type `type`) do not all print as proto3 JSON: the first that does not,
 * with the path and upb's reason, into msg. False when every one prints.
 */
static bool unprintable(const ekg_resource_set_t *set, const char *type, const char *what, char *msg,
                        size_t cap)
{
    const upb_MessageDef *m = ekg_proto_message(type);
    bool found = false;
    for (size_t i = 0; set && !found && i < ekg_resource_set_size(set); i++) {
        const ekg_resource_t *r = ekg_resource_set_at(set, i);
        size_t len;
        const char *data = ekg_resource_data(r, &len);
        upb_Arena *arena = ekg_proto_arena_new();
        upb_Message *msg_ = ekg_proto_message_new(m, arena);
        ekg_violation_t *v = ekg_xmalloc(sizeof(*v)); /* owned */
        char *json = NULL;                            /* owned */
        if (upb_Decode(data, len, msg_, upb_MessageDef_MiniTable(m), NULL, 0, arena) !=
            kUpb_DecodeStatus_Ok) {
            snprintf(msg, cap, "%s %s does not decode", what, ekg_resource_name(r));
            found = true;
        } else if (ekg_proto_to_json(msg_, m, &json, NULL) != EKG_OK) {
            ekg_proto_locate_json_error(msg_, m, v);
            int n = snprintf(msg, cap, "%s %s cannot be printed as proto3 JSON: %s%s%s", what,
                             ekg_resource_name(r), v->path, v->path[0] ? ": " : "",
                             v->rule[0] ? v->rule : "upb's JSON encoder refuses it");
            found = n > 0; /* cut to cap when longer */
        }
        free(json);
        free(v);
        upb_Arena_Free(arena);
    }
    return found;
}

/* The command line, parsed. Strings are borrowed from argv unless said otherwise. */
typedef struct dump_args {
    const char *config_path, *format;
    const char **paths; /* --objects (owned array) */
    size_t npaths;
    ekg_cli_kube_t kube; /* owned: ekg_cli_kube_free */
    ekg_place_t place;   /* --client-locality; its strings point into place_buf */
    char *place_buf;     /* owned; NULL without --client-locality */
} dump_args_t;

/* What is wrong with a --client-locality argument (zone, node: where its second and third parts start, after
 * their '/', NULL when absent), or NULL when nothing is. */
static const char *place_problem(const char *arg, const char *zone, const char *node)
{
    if (!*arg)
        return "it is empty";
    for (const unsigned char *c = (const unsigned char *)arg; *c; c++)
        if (*c <= ' ' || *c == 0x7f)
            return "it contains a space or a control character";
    if (!zone)
        return "no '/' (a zone without a region is written /ZONE)";
    if (node && strchr(node, '/'))
        return "more than three parts";
    if (*zone == '/' || *zone == '\0')
        return "the zone is empty";
    if (node && *node == '\0')
        return "the node is empty (leave out the last '/' for a client without one)";
    return NULL;
}

/*
 * --client-locality REGION/ZONE[/NODE] into a->place (a copy of arg in a->place_buf). The zone is required,
 * and so is the node when a second '/' is there; the region may be empty ("/zone-a": a client whose
 * Node.locality has a zone only). false, after saying why on stderr, when arg is not one.
 */
static bool parse_place(const char *arg, dump_args_t *a)
{
    char *buf = ekg_xstrdup(arg);
    char *zone = strchr(buf, '/'), *node = zone ? strchr(zone + 1, '/') : NULL;
    const char *why = place_problem(arg, zone ? zone + 1 : NULL, node ? node + 1 : NULL);
    if (why) {
        fprintf(stderr,
                "ekglue dump: --client-locality wants REGION/ZONE or REGION/ZONE/NODE (REGION may be "
                "empty), not '%s': %s\n",
                arg, why);
        free(buf);
        return false;
    }
    *zone++ = '\0';
    if (node)
        *node++ = '\0';
    free(a->place_buf);
    a->place_buf = buf;
    a->place = (ekg_place_t){.region = buf, .zone = zone, .node = node ? node : ""};
    return true;
}

/* Parses argv into *a. Returns -1 to go on, or the exit code (help, usage errors). */
static int parse_args(int argc, char **argv, dump_args_t *a)
{
    static const struct option opts[] = {EKG_CLI_KUBE_OPTIONS,
                                         {"objects", required_argument, NULL, 'o'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"client-locality", required_argument, NULL, 'L'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "o:c:f:l:h", opts, NULL)) != -1;) {
        switch (c) {
        case 'o':
            a->paths[a->npaths++] = optarg;
            break;
        case 'c':
            a->config_path = optarg;
            break;
        case 'f':
            a->format = optarg;
            break;
        case 'l':
            if (!ekg_cli_set_log_level("dump", optarg))
                return EKG_EXIT_USAGE;
            break;
        case 'L':
            if (!parse_place(optarg, a))
                return EKG_EXIT_USAGE;
            break;
        case 'h':
            usage(stdout);
            return EKG_EXIT_OK;
        default: {
            int k = ekg_cli_kube_option(&a->kube, "dump", c, optarg);
            if (k > 0)
                break;
            if (k == 0)
                usage(stderr);
            return EKG_EXIT_USAGE;
        }
        }
    }
    if (optind < argc || (a->npaths && a->kube.any) ||
        (strcmp(a->format, "json") != 0 && strcmp(a->format, "yaml") != 0 &&
         strcmp(a->format, "binary") != 0)) {
        usage(stderr);
        return EKG_EXIT_USAGE;
    }
    return -1;
}

/*
 * Reads the objects through the same sources `serve` uses, run once into a collector: the files, or one list
 * of the Kubernetes API. Exit code or -1 to go on; errors are printed.
 */
static int collect(dump_args_t *a, ekg_objects_t *objs)
{
    ekg_diag_t diag = {{0}};
    ekg_kube_conn_t *conn = NULL;
    ekg_sink_t *collector = ekg_sink_collector_new();
    int rc = -1;
    ekg_err_t err;
    if (a->npaths) {
        err = ekg_files_read_once(a->paths, a->npaths, NULL, NULL, 0, collector, &diag);
    } else if ((err = ekg_kube_conn_resolve(&a->kube.conn, &conn, &diag)) != EKG_OK) {
        rc = err == EKG_ENOENT ? EKG_EXIT_USAGE : EKG_EXIT_CONFIG;
    } else {
        err = ekg_watcher_list_once(conn, &a->kube.watch, collector, &diag);
    }
    if (err) {
        fprintf(stderr, "ekglue dump: %s\n", diag.msg[0] ? diag.msg : ekg_strerror(err));
        rc = rc >= 0 ? rc : EKG_EXIT_FAILURE;
    } else {
        ekg_sink_take_objects(collector, objs);
    }
    ekg_sink_free(collector);
    ekg_kube_conn_free(conn);
    return rc;
}

/*
 * Translates objs under cfg and prints the result in format: the sets of a client at place (NULL: the base
 * sets, what a client without a locality gets). Exit code.
 */
static int print(const ekg_config_t *cfg, ekg_objects_t *objs, const char *format, const ekg_place_t *place)
{
    int rc = EKG_EXIT_FAILURE;
    ekg_snapshot_t *snap = NULL;
    cJSON *doc = NULL;
    ekg_translator_t *t = ekg_translator_new(cfg);
    ekg_translator_put_objects(t, objs);
    ekg_err_t err = ekg_translator_snapshot(t, &snap);
    if (err) {
        fprintf(stderr, "ekglue dump: translation failed: %s\n", ekg_strerror(err));
        goto out;
    }
    /* Borrowed from snap. */
    const ekg_resource_set_t *clusters = ekg_snapshot_resources(snap, EKG_RESOURCE_CLUSTER);
    const ekg_resource_set_t *las = ekg_snapshot_resources_at(snap, EKG_RESOURCE_LOAD_ASSIGNMENT, place);
    /* Every format is rendered as JSON first, so that binary and JSON/YAML succeed or fail together and say
     * the same thing (docs/cli.md). */
    if ((err = ekg_render_dump(clusters, las, t, &doc)) != EKG_OK) {
        char why[768];
        if (!unprintable(clusters, EKG_TYPE_CLUSTER, "cluster", why, sizeof(why)) &&
            !unprintable(las, EKG_TYPE_LOAD_ASSIGNMENT, "load assignment", why, sizeof(why)))
            snprintf(why, sizeof(why), "%s", ekg_strerror(err));
        fprintf(stderr, "ekglue dump: %s\n", why);
        goto out;
    }
    if (strcmp(format, "binary") == 0) {
        write_binary(clusters, stdout);
        write_binary(las, stdout);
        rc = fflush(stdout) == 0 && !ferror(stdout) ? EKG_EXIT_OK : EKG_EXIT_FAILURE;
        goto out;
    }
    if ((err = ekg_render_write(doc, strcmp(format, "yaml") == 0 ? EKG_FORMAT_YAML : EKG_FORMAT_JSON,
                                stdout))) {
        fprintf(stderr, "ekglue dump: %s\n", ekg_strerror(err));
        goto out;
    }
    rc = fflush(stdout) == 0 ? EKG_EXIT_OK : EKG_EXIT_FAILURE;
out:
    cJSON_Delete(doc);
    ekg_snapshot_unref(snap);
    ekg_translator_free(t);
    return rc;
}

int ekg_cli_dump(int argc, char **argv)
{
    int rc;
    ekg_diag_t diag = {{0}};
    ekg_config_t *cfg = NULL;
    ekg_objects_t objs = {0};
    dump_args_t a = {.format = "json", .paths = ekg_xcalloc((size_t)argc + 1, sizeof(char *))};
    ekg_cli_kube_init(&a.kube, argc);
    ekg_log_set_level(EKG_LOG_WARN);
    if ((rc = parse_args(argc, argv, &a)) >= 0)
        goto out;
    ekg_err_t err =
        a.config_path ? ekg_config_load_file(a.config_path, &cfg, &diag) : ekg_config_default(&cfg, &diag);
    if (err) {
        fprintf(stderr, "ekglue dump: %s\n", diag.msg[0] ? diag.msg : ekg_strerror(err));
        rc = EKG_EXIT_CONFIG;
        goto out;
    }
    if ((rc = collect(&a, &objs)) >= 0)
        goto out;
    if (objs.nskipped)
        fprintf(stderr, "ekglue dump: %zu invalid object(s) skipped (see the warnings above)\n",
                objs.nskipped);
    rc = print(cfg, &objs, a.format, a.place_buf ? &a.place : NULL);
out:
    ekg_objects_free(&objs);
    ekg_config_free(cfg);
    ekg_cli_kube_free(&a.kube);
    free(a.place_buf);
    free(a.paths);
    return rc;
}
