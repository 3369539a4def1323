/*
 * src/common/pbwrite.h: writing protobuf length-delimited fields by hand (library-private).
 *
 * For the few messages ekglue emits by the tens of thousands with a fixed shape (proxyless listeners, the
 * name of a shared cluster encoding), writing the bytes directly is an order of magnitude cheaper than
 * building upb messages and encoding them. Callers write fields in ascending field-number order, which is
 * what upb's deterministic encoder produces, so the bytes are the canonical encoding; tests check that by
 * re-encoding. Thread: any (pure functions).
 */
#ifndef EKG_COMMON_PBWRITE_H
#define EKG_COMMON_PBWRITE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline size_t ekg_pb_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >>= 7)
        n++;
    return n;
}

static inline char *ekg_pb_put_varint(char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (char)v;
    return p;
}

/* Size of a length-delimited field `field` holding len bytes. */
static inline size_t ekg_pb_field_size(uint32_t field, size_t len)
{
    return ekg_pb_varint_size((uint64_t)field << 3 | 2) + ekg_pb_varint_size(len) + len;
}

/* Writes a length-delimited field; returns the end. dst must have ekg_pb_field_size() bytes. */
static inline char *ekg_pb_put_field(char *dst, uint32_t field, const void *data, size_t len)
{
    dst = ekg_pb_put_varint(dst, (uint64_t)field << 3 | 2);
    dst = ekg_pb_put_varint(dst, len);
    if (len)
        memcpy(dst, data, len);
    return dst + len;
}

#endif
