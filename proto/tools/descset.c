/*
 * proto/tools/descset.c: a build-time tool that writes the FileDescriptorSet of the protos libgrpc embeds.
 *
 * It walks the `_upb_DefPool_Init` tables listed in src/proto/grpc_defs.h and their dependencies, and writes
 * each file's serialized FileDescriptorProto once, dependencies first, as field 1 of a FileDescriptorSet.
 * protoc then compiles ekglue's slim protos (proto/) against it with --descriptor_set_in, so they reference
 * exactly the messages libgrpc carries. Thread: the tool's only thread.
 *
 * Usage: ekg-descset OUTPUT.pb
 */
#include <stdio.h>
#include <string.h>

#include "upb/def.h"

#include "proto/grpc_defs.h"

#define DECLARE(sym) extern _upb_DefPool_Init sym;
EKG_GRPC_DEFS(DECLARE)
#undef DECLARE

#define MAX_FILES 512

static const _upb_DefPool_Init *seen[MAX_FILES];
static size_t nseen;

static int write_varint(FILE *out, unsigned long long v)
{
    do {
        unsigned char b = v & 0x7f;
        v >>= 7;
        if (v)
            b |= 0x80;
        if (fputc(b, out) == EOF)
            return -1;
    } while (v);
    return 0;
}

/* Writes init's dependencies, then init itself, skipping files already written. */
static int visit(FILE *out, const _upb_DefPool_Init *init)
{
    for (size_t i = 0; i < nseen; i++)
        if (seen[i] == init)
            return 0;
    if (nseen == MAX_FILES) {
        fprintf(stderr, "ekg-descset: more than %d files\n", MAX_FILES);
        return -1;
    }
    seen[nseen++] = init;
    for (_upb_DefPool_Init **dep = init->deps; dep && *dep; dep++)
        if (visit(out, *dep) != 0)
            return -1;
    if (fputc(0x0a, out) == EOF || write_varint(out, init->descriptor.size) != 0 ||
        fwrite(init->descriptor.data, 1, init->descriptor.size, out) != init->descriptor.size)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: ekg-descset OUTPUT.pb\n");
        return 2;
    }
    FILE *out = fopen(argv[1], "wb");
    if (!out) {
        perror(argv[1]);
        return 1;
    }
    int rc = 0;
#define VISIT(sym)                                                                                           \
    if (rc == 0)                                                                                             \
        rc = visit(out, &sym);
    EKG_GRPC_DEFS(VISIT)
#undef VISIT
    if (fclose(out) != 0)
        rc = -1;
    if (rc != 0) {
        fprintf(stderr, "ekg-descset: cannot write %s\n", argv[1]);
        return 1;
    }
    return 0;
}
