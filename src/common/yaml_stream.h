/*
 * src/common/yaml_stream.h (private to the library): the ways into src/common/yaml.c that do not build one
 * tree for the whole text, for src/model/objects.c, which reads manifests far larger than any single object.
 *
 * A `kubectl get -o json` List of a big cluster is tens of megabytes; as one cJSON tree it costs ten times
 * that in small allocations. ekg_yaml_stream_json_list() instead checks the text's structure with a scanner
 * that allocates nothing, then parses and hands over the List's items one at a time, each tree deleted before
 * the next is built. Design note: docs/internals/model.md ("Streaming JSON Lists").
 * Thread: any; no shared state.
 */
#ifndef EKGLUE_COMMON_YAML_STREAM_H
#define EKGLUE_COMMON_YAML_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "ekglue/error.h"

/*
 * Reads a whole file (less than 1 GiB) into *buf, which the caller then owns (free()); *len is its length.
 * ekg_file_read() (ekglue/file.h) with the errors and messages of ekg_yaml_parse_file(): EKG_EIO, diag naming
 * the file and the reason.
 */
ekg_err_t ekg_yaml_read_file(const char *path, char **buf, size_t *len, ekg_diag_t *diag);

/*
 * Called once per item of a streamed List, in order. item is borrowed and deleted when the call returns; it
 * has no source positions. list_kind is the List's own kind ("List", "ServiceList"), borrowed. A non-zero
 * return stops the stream and is returned by ekg_yaml_stream_json_list().
 */
typedef ekg_err_t (*ekg_yaml_item_fn)(void *arg, const cJSON *item, const char *list_kind);

/*
 * If buf is JSON (as ekg_yaml_parse() decides) whose top level is an object whose "kind" is a string ending
 * in "List" and whose "items" is an array (the first member of each name counts, as with cJSON lookups, and
 * "kind" may come before or after "items"), calls on_item for every item and sets *streamed. The whole text
 * is checked before the first call; the items themselves are checked by cJSON as they are parsed.
 *
 * Otherwise, and also when the text turns out not to be valid JSON, *streamed is false and EKG_OK is
 * returned: the caller must then drop whatever on_item received and parse buf with ekg_yaml_parse(), which
 * accepts exactly the same texts and reports errors with their positions. So this function never reports
 * EKG_EPARSE; its only error is on_item's.
 */
ekg_err_t ekg_yaml_stream_json_list(const char *buf, size_t len, ekg_yaml_item_fn on_item, void *arg,
                                    bool *streamed);

#endif
