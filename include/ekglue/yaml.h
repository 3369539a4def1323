/*
 * include/ekglue/yaml.h: YAML (and JSON) documents as cJSON trees, with source positions.
 *
 * Every input ekglue reads from a file (Kubernetes manifests, the config file) goes through here, so that
 * both YAML and JSON work and config errors can name a line. Input starting with '{' or '[' (after blanks) is
 * parsed as JSON with cJSON (fast, positions unknown); anything else with libyaml, one cJSON tree per YAML
 * document
 * (`---`). YAML scalars resolve like YAML 1.2's core schema: plain null/~/empty -> null, true/false -> bool,
 * decimal/0x/0o integers and floats (.inf/.nan) -> number, everything else and every quoted or !!str scalar
 * -> string. Aliases are expanded (with a bound on the total size, so "billion laughs" input fails cleanly);
 * duplicate mapping keys and non-scalar keys are errors. Numbers are cJSON doubles: integers beyond 2^53 lose
 * precision. Nesting deeper than 256 levels is an error; YAML 1.1 merge keys (`<<`) are ordinary keys.
 *
 * Thread: any; no shared state.
 */
#ifndef EKGLUE_YAML_H
#define EKGLUE_YAML_H

#include <stddef.h>

#include <cJSON.h>

#include "ekglue/error.h"

typedef struct ekg_yaml_docs ekg_yaml_docs_t;

/*
 * Parses buf (need not be NUL-terminated). source_name (e.g. a file path) prefixes messages in diag:
 * "config.yaml:12:3: mapping values are not allowed here". On success *out is owned by the caller
 * (ekg_yaml_docs_free). On error *out is untouched and EKG_EPARSE is returned.
 */
ekg_err_t ekg_yaml_parse(const char *buf, size_t len, const char *source_name, ekg_yaml_docs_t **out,
                         ekg_diag_t *diag);
/* Reads and parses a whole file. EKG_EIO with diag naming the file if it cannot be read. */
ekg_err_t ekg_yaml_parse_file(const char *path, ekg_yaml_docs_t **out, ekg_diag_t *diag);

/* Number of documents (empty documents are skipped, so a file of comments has 0). */
size_t ekg_yaml_docs_count(const ekg_yaml_docs_t *docs);
/* Borrowed: document i, valid until ekg_yaml_docs_free(). */
const cJSON *ekg_yaml_docs_get(const ekg_yaml_docs_t *docs, size_t i);
/*
 * Source position of node (any node inside one of the documents): 1-based line, and column into *col if col
 * is non-NULL. For a mapping member the position is its key's. 0 when unknown (JSON input, or a foreign
 * node).
 */
int ekg_yaml_docs_line(const ekg_yaml_docs_t *docs, const cJSON *node, int *col);
/* The source_name given to the parse; borrowed. */
const char *ekg_yaml_docs_source(const ekg_yaml_docs_t *docs);

void ekg_yaml_docs_free(ekg_yaml_docs_t *docs);

#endif
