/*
 * src/cli/cli.c: dispatch of ekglue's subcommands. Thread: main.
 */
#include <stdio.h>
#include <string.h>

#include "ekglue/proto.h"

#include "cli.h"

int ekg_cli_main(int argc, char **argv)
{
    ekg_diag_t diag = {{0}};
    if (ekg_proto_init(&diag) != EKG_OK) {
        fprintf(stderr, "ekglue: %s\n", diag.msg);
        return EKG_EXIT_FAILURE;
    }
    const upb_MessageDef *m = ekg_proto_message("envoy.extensions.upstreams.http.v3.HttpProtocolOptions");
    printf("%s\n", m ? "ok" : "missing");
    ekg_proto_shutdown();
    return argc > 0 && argv ? 0 : 1;
}
