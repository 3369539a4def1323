/*
 * src/proto/registry.c: the process-wide upb_DefPool behind include/ekglue/proto.h.
 *
 * It loads the reflection tables libgrpc exports for the files in src/proto/grpc_defs.h (their dependencies
 * come along), then adds ekglue's own slim protos, which the build compiled against those same files and
 * embedded as a FileDescriptorSet (ekg_extra_descriptors, see CMakeLists.txt and proto/README.md).
 *
 * Memory: upb allocates with plain malloc; where it reports running out (a NULL arena or pool, an encoder's
 * out-of-memory status), this file aborts as ekglue/mem.h does for everything else, and proto.h's inline
 * helpers (ekg_proto_arena_new, _alloc, _strdup, _message_new) do the same for every upb user above. The
 * errors left are real ones: a descriptor that does not load, JSON that does not decode, a message that does
 * not encode.
 *
 * It also has the validator (src/proto/validate.c) compile Envoy's validation rules from the pool's files.
 *
 * Thread: ekg_proto_init() runs on the main thread before any other thread starts; after it the pool is only
 * read, which upb allows from any number of threads.
 */
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/descriptor.upb.h"
#include "upb/def.h"
#include "upb/encode.h"
#include "upb/json_decode.h"
#include "upb/json_encode.h"
#include "upb/status.h"

#include "ekglue/mem.h"
#include "ekglue/proto.h"

#include "proto/grpc_defs.h"
#include "proto/validate.h"

#define DECLARE(sym) extern _upb_DefPool_Init sym;
EKG_GRPC_DEFS(DECLARE)
#undef DECLARE

/* Generated at build time from proto/ (proto/tools/embed.cmake). */
extern const unsigned char ekg_extra_descriptors[];
extern const size_t ekg_extra_descriptors_size;

static upb_DefPool *pool; /* owned here; NULL until ekg_proto_init() */

ekg_err_t ekg_proto_init(ekg_diag_t *diag)
{
    if (pool)
        return EKG_OK;
    ekg_err_t err = EKG_OK;
    upb_Arena *arena = NULL;
    upb_DefPool *p = upb_DefPool_New();
    if (!p)
        ekg_oom(0);

#define LOAD(sym)                                                                                            \
    if (err == EKG_OK && !_upb_DefPool_LoadDefInit(p, &sym))                                                 \
        err = ekg_diag_set(diag, EKG_EPROTO, "cannot load %s from libgrpc", #sym);
    EKG_GRPC_DEFS(LOAD)
#undef LOAD
    if (err != EKG_OK)
        goto out;

    arena = ekg_proto_arena_new();
    const google_protobuf_FileDescriptorSet *set = google_protobuf_FileDescriptorSet_parse(
        (const char *)ekg_extra_descriptors, ekg_extra_descriptors_size, arena);
    if (!set) {
        err = ekg_diag_set(diag, EKG_EPROTO, "embedded descriptor set does not parse");
        goto out;
    }
    size_t nfiles;
    const google_protobuf_FileDescriptorProto *const *files =
        google_protobuf_FileDescriptorSet_file(set, &nfiles);
    for (size_t i = 0; i < nfiles; i++) {
        upb_Status status;
        upb_Status_Clear(&status);
        if (!upb_DefPool_AddFile(p, files[i], &status)) {
            upb_StringView name = google_protobuf_FileDescriptorProto_name(files[i]);
            err = ekg_diag_set(diag, EKG_EPROTO, "cannot add %.*s: %s", (int)name.size, name.data,
                               upb_Status_ErrorMessage(&status));
            goto out;
        }
    }
    /* Envoy's validation rules, compiled once from every file loaded (src/proto/validate.c). */
#define COUNT(sym) +1
    const size_t ngrpc = 0 EKG_GRPC_DEFS(COUNT);
#undef COUNT
    const upb_FileDef **roots = ekg_xcalloc(ngrpc + nfiles, sizeof(*roots)); /* borrowed from p */
    size_t nroots = 0;
#define ROOT(sym) roots[nroots++] = upb_DefPool_FindFileByName(p, sym.filename);
    EKG_GRPC_DEFS(ROOT)
#undef ROOT
    for (size_t i = 0; i < nfiles; i++) {
        upb_StringView name = google_protobuf_FileDescriptorProto_name(files[i]);
        roots[nroots++] = upb_DefPool_FindFileByNameWithSize(p, name.data, name.size);
    }
    ekg_validate_compile(p, roots, nroots);
    free(roots);
    pool = p;
    p = NULL;
out:
    if (arena)
        upb_Arena_Free(arena);
    if (p)
        upb_DefPool_Free(p);
    return err;
}

void ekg_proto_shutdown(void)
{
    ekg_validate_free();
    if (pool)
        upb_DefPool_Free(pool);
    pool = NULL;
}

const upb_DefPool *ekg_proto_pool(void)
{
    return pool;
}

const upb_MessageDef *ekg_proto_message(const char *full_name)
{
    return pool ? upb_DefPool_FindMessageByName(pool, full_name) : NULL;
}

ekg_err_t ekg_proto_from_json(const char *json, size_t len, const upb_MessageDef *m, upb_Message *msg,
                              upb_Arena *arena, ekg_diag_t *diag)
{
    upb_Status status;
    upb_Status_Clear(&status);
    if (!pool)
        return ekg_diag_set(diag, EKG_EINVAL, "protobuf registry not initialized");
    if (!upb_JsonDecode(json, len, msg, m, pool, 0, arena, &status))
        return ekg_diag_set(diag, EKG_EPARSE, "%s", upb_Status_ErrorMessage(&status));
    return EKG_OK;
}

ekg_err_t ekg_proto_to_json(const upb_Message *msg, const upb_MessageDef *m, char **out, size_t *len)
{
    upb_Status status;
    upb_Status_Clear(&status);
    size_t need = upb_JsonEncode(msg, m, pool, 0, NULL, 0, &status);
    if (!upb_Status_IsOk(&status))
        return EKG_EPROTO;
    char *buf = ekg_xmalloc(need + 1);
    upb_JsonEncode(msg, m, pool, 0, buf, need + 1, &status);
    if (!upb_Status_IsOk(&status)) {
        free(buf);
        return EKG_EPROTO;
    }
    *out = buf;
    if (len)
        *len = need;
    return EKG_OK;
}

ekg_err_t ekg_proto_encode(const upb_Message *msg, const upb_MessageDef *m, upb_Arena *arena, char **buf,
                           size_t *len)
{
    upb_EncodeStatus st =
        upb_Encode(msg, upb_MessageDef_MiniTable(m), kUpb_EncodeOption_Deterministic, arena, buf, len);
    if (st == kUpb_EncodeStatus_OutOfMemory)
        ekg_oom(0);
    return st == kUpb_EncodeStatus_Ok ? EKG_OK : EKG_EPROTO;
}
