/*
 * src/proto/wire.c: decoding protobuf bytes that a peer sent (ekg_proto_decode_peer, include/ekglue/proto.h).
 *
 * upb's decoder is fine for bytes ekglue encoded itself, but the upb inside Debian bookworm's grpc 1.51
 * mishandles one input a hostile client can send: a map entry carrying a field other than its key and value
 * (an unknown field number, or the key or value with the wrong wire type). upb keeps such a field as an
 * "unknown field" of the entry, but it parses the entry into a stack temporary that has no unknown-field
 * header, so it reads and writes through a pointer it never set: an assertion abort in Debian's libupb (which
 * keeps assertions), stack corruption without them. Every DiscoveryRequest reaches maps through its Node
 * (metadata is a Struct, a map of Values; dynamic_parameters) and its resource_locators (dynamic_parameters),
 * so any client could stop ekglue with 20 bytes (the regression input is in tests/unit/wire_test.c).
 *
 * So before upb sees a peer's bytes, check_message() walks them with the same mini tables upb will use and
 * refuses: a map entry holding a field other than key or value with their own wire types; groups (wire types
 * 3 and 4: proto3 and xDS have none, and upb's unknown-group path is the same machinery); and bytes that are
 * not protobuf (tags of more than 5 bytes or field number 0, truncated varints or fields, lengths past the
 * end, wire types 6 and 7), which upb would refuse anyway. Everything else, including unknown fields of
 * ordinary messages (new Envoy fields ekglue does not know), goes on to upb untouched. Nesting deeper than
 * upb's own limit is refused as upb would. docs/internals/protocol.md ("Requests outside the numbered rules")
 * has the rule; tests/fuzz/session_fuzz.c keeps fuzzing the whole path.
 *
 * Thread: any; no state.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "upb/decode.h"
#include "upb/mini_table.h"
#include "upb/msg_internal.h"

#include "ekglue/proto.h"

/* upb_Decode's nesting limit when the options do not set one (UPB_DECODE_MAXDEPTH). */
#define MAX_DEPTH 64

enum { WT_VARINT = 0, WT_64BIT = 1, WT_DELIMITED = 2, WT_START_GROUP = 3, WT_END_GROUP = 4, WT_32BIT = 5 };

/* Reads a varint of at most max_bytes into *v; NULL when it is truncated or longer. */
static inline const uint8_t *read_varint(const uint8_t *p, const uint8_t *end, int max_bytes, uint64_t *v)
{
    if (p < end && !(*p & 0x80)) { /* the common case: tags and short lengths */
        *v = *p;
        return p + 1;
    }
    uint64_t out = 0;
    for (int i = 0; i < max_bytes && p < end; i++) {
        uint8_t b = *p++;
        out |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = out;
            return p;
        }
    }
    return NULL;
}

/* The wire type a field of this descriptor type is written with (packed repeated fields aside). */
static int wire_type_of(uint8_t descriptortype)
{
    switch (descriptortype) {
    case kUpb_FieldType_Double:
    case kUpb_FieldType_Fixed64:
    case kUpb_FieldType_SFixed64:
        return WT_64BIT;
    case kUpb_FieldType_Float:
    case kUpb_FieldType_Fixed32:
    case kUpb_FieldType_SFixed32:
        return WT_32BIT;
    case kUpb_FieldType_String:
    case kUpb_FieldType_Bytes:
    case kUpb_FieldType_Message:
        return WT_DELIMITED;
    case kUpb_FieldType_Group:
        return WT_START_GROUP;
    default:
        return WT_VARINT;
    }
}

/*
 * Walks one message's bytes [p, end) of mini table mt (NULL: a field ekglue's tables do not know, walked only
 * for its wire format). map_entry: the message is a map entry. Returns the reason to refuse, NULL if none.
 */
static const char *check_message(const uint8_t *p, const uint8_t *end, const upb_MiniTable *mt,
                                 bool map_entry, int depth)
{
    if (depth > MAX_DEPTH)
        return "it nests deeper than 64 messages";
    uint32_t last_number = 0; /* field numbers start at 1 */
    const upb_MiniTable_Field *f = NULL;
    while (p < end) {
        uint64_t tag;
        if (!(p = read_varint(p, end, 5, &tag)) || tag > UINT32_MAX || (tag >> 3) == 0)
            return "a field tag is malformed";
        uint32_t number = (uint32_t)(tag >> 3);
        int wt = (int)(tag & 7);
        if (number != last_number) { /* a repeated field's elements (resource_names) look it up once */
            last_number = number;
            f = mt ? upb_MiniTable_FindFieldByNumber(mt, number) : NULL;
        }
        if (map_entry && (!f || (number != 1 && number != 2) || wire_type_of(f->descriptortype) != wt))
            return "a map entry holds a field other than its key and value";
        uint64_t n;
        switch (wt) {
        case WT_VARINT:
            if (!(p = read_varint(p, end, 10, &n)))
                return "a varint is truncated";
            break;
        case WT_64BIT:
            if (end - p < 8)
                return "a fixed64 field is truncated";
            p += 8;
            break;
        case WT_32BIT:
            if (end - p < 4)
                return "a fixed32 field is truncated";
            p += 4;
            break;
        case WT_DELIMITED: {
            if (!(p = read_varint(p, end, 10, &n)) || n > (uint64_t)(end - p))
                return "a length-delimited field runs past the end";
            if (f && f->descriptortype == kUpb_FieldType_Message && wire_type_of(f->descriptortype) == wt) {
                const upb_MiniTable *sub = upb_MiniTable_GetSubMessageTable(mt, f);
                bool entry = upb_FieldMode_Get(f) == kUpb_FieldMode_Map;
                const char *why = check_message(p, p + n, sub, entry, depth + 1);
                if (why)
                    return why;
            }
            p += n;
            break;
        }
        case WT_START_GROUP:
        case WT_END_GROUP:
            return "it holds a group (wire types 3 and 4)";
        default:
            return "a field has wire type 6 or 7";
        }
    }
    return NULL;
}

ekg_err_t ekg_proto_decode_peer(const char *buf, size_t len, const upb_MiniTable *mt, int options,
                                upb_Arena *arena, upb_Message **out, ekg_diag_t *diag)
{
    const uint8_t *p = (const uint8_t *)buf;
    const char *why = check_message(p, p + len, mt, false, 0);
    if (why)
        return ekg_diag_set(diag, EKG_EPARSE, "%s", why);
    upb_Message *msg = _upb_Message_New(mt, arena);
    if (!msg)
        ekg_oom(0);
    upb_DecodeStatus st = upb_Decode(buf, len, msg, mt, NULL, options, arena);
    if (st == kUpb_DecodeStatus_OutOfMemory)
        ekg_oom(len);
    if (st != kUpb_DecodeStatus_Ok)
        return ekg_diag_set(diag, EKG_EPARSE, "upb cannot decode it (status %d)", (int)st);
    *out = msg;
    return EKG_OK;
}
