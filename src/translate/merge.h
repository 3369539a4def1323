/*
 * src/translate/merge.h: merging a cluster override into a Cluster (library-private;
 * docs/internals/config.md).
 *
 * Protobuf merge semantics (scalars replaced, repeated fields appended, sub-messages merged, map entries
 * replaced by key, a oneof member replacing the other members), except that a well-known type (Duration,
 * Timestamp, the wrappers, Struct, Value, ListValue, Any, FieldMask) set in the source replaces the
 * destination's value whole: connect_timeout 1s merged with 0.25s gives 0.25s, not 1.25s.
 *
 * Thread: any; the source is only read, so one source may be merged into many destinations concurrently.
 */
#ifndef EKG_TRANSLATE_MERGE_H
#define EKG_TRANSLATE_MERGE_H

#include <stddef.h>

#include "upb/def.h"
#include "upb/msg.h"
#include "upb/upb.h"

#include "ekglue/error.h"

/*
 * Merges src into dst, both of type m. src_bytes/src_len must be src's binary encoding (the caller keeps it
 * next to src so that it is encoded once). Anything added to dst is copied into arena (dst's arena); nothing
 * in dst points into src or src_bytes afterwards. EKG_EPROTO on failure (dst is then partially merged and
 * should be dropped with its arena); out of memory aborts.
 */
ekg_err_t ekg_merge_message(upb_Message *dst, const upb_Message *src, const char *src_bytes, size_t src_len,
                            const upb_MessageDef *m, upb_Arena *arena);

#endif
