/*
 * src/main.c: the ekglue command: parses the subcommand and hands over to src/cli/. Thread: main.
 */
#include "cli/cli.h"

int main(int argc, char **argv)
{
    return ekg_cli_main(argc, argv);
}
