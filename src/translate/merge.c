/*
 * src/translate/merge.c: protobuf merge with well-known types replaced whole (see merge.h).
 *
 * upb already implements protobuf merge: decoding bytes into a message that has content merges them in. What
 * it does not do is treat well-known types as values: a Duration {seconds: 1} merged with {nanos: 250000000}
 * becomes 1.25 s, and a UInt32Value {value: 7} merged with an empty wrapper (the encoding of 0) stays 7. So
 * before the decode, one reflection walk over the source clears, in the destination, every singular
 * well-known-type field the source sets, descending only into singular sub-messages both sides have. Repeated
 * fields and maps are left to the decoder (append; replace by key), and so is a oneof (setting one member
 * drops the others).
 *
 * upb running out of memory aborts (ekglue/mem.h). Thread: any (called from the translation on the watcher
 * thread); src is never written.
 */
#include <stdbool.h>

#include "upb/decode.h"
#include "upb/reflection.h"

#include "ekglue/mem.h"

#include "translate/merge.h"

/* Deeper than any Envoy message nests in practice; the JSON and binary decoders stop at 64 anyway. */
#define MAX_DEPTH 100

static bool is_well_known(const upb_MessageDef *m)
{
    return upb_MessageDef_WellKnownType(m) != kUpb_WellKnown_Unspecified;
}

/* Clears in dst what src will replace whole. EKG_EPROTO if the messages nest too deep. */
static ekg_err_t clear_replaced(upb_Message *dst, const upb_Message *src, const upb_MessageDef *m, int depth)
{
    if (depth > MAX_DEPTH)
        return EKG_EPROTO;
    size_t iter = kUpb_Message_Begin;
    const upb_FieldDef *f;
    upb_MessageValue val;
    while (upb_Message_Next(src, m, NULL, &f, &val, &iter)) {
        if (!upb_FieldDef_IsSubMessage(f) || upb_FieldDef_IsRepeated(f)) /* maps are repeated too */
            continue;
        if (!upb_Message_Has(dst, f))
            continue; /* nothing to replace; a set oneof sibling is dropped by the decoder */
        const upb_MessageDef *sub = upb_FieldDef_MessageSubDef(f);
        if (is_well_known(sub)) {
            upb_Message_ClearField(dst, f);
            continue;
        }
        upb_Message *dst_sub = upb_Message_Mutable(dst, f, NULL).msg; /* present, so never created */
        ekg_err_t err = clear_replaced(dst_sub, val.msg_val, sub, depth + 1);
        if (err)
            return err;
    }
    return EKG_OK;
}

ekg_err_t ekg_merge_message(upb_Message *dst, const upb_Message *src, const char *src_bytes, size_t src_len,
                            const upb_MessageDef *m, upb_Arena *arena)
{
    ekg_err_t err = clear_replaced(dst, src, m, 0);
    if (err)
        return err;
    upb_DecodeStatus st = upb_Decode(src_bytes, src_len, dst, upb_MessageDef_MiniTable(m), NULL, 0, arena);
    if (st == kUpb_DecodeStatus_OutOfMemory)
        ekg_oom(0);
    return st == kUpb_DecodeStatus_Ok ? EKG_OK : EKG_EPROTO;
}
