/*
 * src/cli/cli.h: ekglue's subcommands (dump, check-config, serve). Private to the library and main.c.
 * Thread: main.
 */
#ifndef EKG_CLI_H
#define EKG_CLI_H

/* Exit codes, documented in docs/cli.md. */
enum { EKG_EXIT_OK = 0, EKG_EXIT_FAILURE = 1, EKG_EXIT_USAGE = 2, EKG_EXIT_CONFIG = 3 };

int ekg_cli_main(int argc, char **argv);

#endif
