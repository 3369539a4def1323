/*
 * src/main.c: the ekglue command: parses the subcommand and hands over to src/cli/. Thread: main.
 */
#include "ekglue/mem.h"

#include "cli/cli.h"

int main(int argc, char **argv)
{
    ekg_mem_init(); /* before any thread: cJSON allocates through the aborting wrappers */
    return ekg_cli_main(argc, argv);
}
