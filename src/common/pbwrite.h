/*
 * src/common/pbwrite.h: writing protobuf varints and length-delimited fields by hand (library-private): the
 * one varint writer of ekglue.
 *
 * For the few messages ekglue emits by the tens of thousands with a fixed shape (ClusterLoadAssignments,
 * proxyless listeners, the name of a shared cluster encoding, a resource's DiscoveryResponse field), writing
 * the bytes directly is an order of magnitude cheaper than building upb messages and encoding them. Callers
 * write fields in ascending field-number order, which is what upb's deterministic encoder produces, so the
 * bytes are the canonical encoding; tests check that by re-encoding. Nothing here allocates: the caller sizes
 * the buffer with the _size functions first. Thread: any (pure functions).
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

/* Writes the tag and length of a length-delimited field `field` whose len bytes the caller writes next. */
static inline char *ekg_pb_put_header(char *dst, uint32_t field, size_t len)
{
    dst = ekg_pb_put_varint(dst, (uint64_t)field << 3 | 2);
    return ekg_pb_put_varint(dst, len);
}

/* Writes a length-delimited field; returns the end. dst must have ekg_pb_field_size() bytes. */
static inline char *ekg_pb_put_field(char *dst, uint32_t field, const void *data, size_t len)
{
    dst = ekg_pb_put_header(dst, field, len);
    if (len)
        memcpy(dst, data, len);
    return dst + len;
}

#endif
