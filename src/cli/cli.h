/*
 * src/cli/cli.h: ekglue's subcommands (dump, check-config, serve). Private to the library and main.c.
 * Thread: main.
 */
#ifndef EKG_CLI_H
#define EKG_CLI_H

#include <stdbool.h>

/* Exit codes, documented in docs/cli.md. */
enum { EKG_EXIT_OK = 0, EKG_EXIT_FAILURE = 1, EKG_EXIT_USAGE = 2, EKG_EXIT_CONFIG = 3 };

int ekg_cli_main(int argc, char **argv);

/* Applies a --log-level argument; false (after saying why on stderr) when it is not a level. */
bool ekg_cli_set_log_level(const char *command, const char *arg);

/* Subcommands: argv[0] is the subcommand's name; each returns an exit code. */
int ekg_cli_dump(int argc, char **argv);         /* src/cli/dump.c */
int ekg_cli_check_config(int argc, char **argv); /* src/cli/check_config.c */
int ekg_cli_serve(int argc, char **argv);        /* src/cli/serve.c */

#endif
