/*
 * include/ekglue/proto.h: the process-wide protobuf reflection ekglue uses for JSON (config files, `ekglue
 * dump`, debug pages) and for Any payloads.
 *
 * The pool holds the Envoy/xDS files libgrpc embeds (src/proto/grpc_defs.h) plus ekglue's own slim protos
 * from proto/ (e.g. envoy.extensions.upstreams.http.v3.HttpProtocolOptions). Messages built from the pool
 * share libgrpc's generated MiniTables, so the generated accessors (the envoy .upb.h headers) work on them
 * and vice versa.
 *
 * Thread: ekg_proto_init() must complete before other threads use the pool (main calls it first); afterwards
 * the pool is immutable and every function here may be called from any thread.
 */
#ifndef EKGLUE_PROTO_H
#define EKGLUE_PROTO_H

#include <stddef.h>
#include <string.h>

#include "upb/def.h"
#include "upb/mini_table.h"
#include "upb/msg.h"
#include "upb/reflection.h"
#include "upb/upb.h"

#include "ekglue/error.h"
#include "ekglue/mem.h"

#define EKG_TYPE_CLUSTER         "envoy.config.cluster.v3.Cluster"
#define EKG_TYPE_LOAD_ASSIGNMENT "envoy.config.endpoint.v3.ClusterLoadAssignment"
#define EKG_TYPE_LISTENER        "envoy.config.listener.v3.Listener"
#define EKG_TYPE_ROUTE           "envoy.config.route.v3.RouteConfiguration"
#define EKG_TYPE_URL_PREFIX      "type.googleapis.com/"

/* Builds the pool. Idempotent. EKG_EPROTO with a message in diag if a descriptor does not load. */
ekg_err_t ekg_proto_init(ekg_diag_t *diag);
/* Frees the pool (at exit, for leak checkers). Not thread-safe with users of the pool. */
void ekg_proto_shutdown(void);

/* Borrowed; valid until ekg_proto_shutdown(). NULL before ekg_proto_init(). */
const upb_DefPool *ekg_proto_pool(void);
/* Looks up a message by full name ("envoy.config.cluster.v3.Cluster"); NULL if unknown. */
const upb_MessageDef *ekg_proto_message(const char *full_name);

/*
 * upb allocates with plain malloc, outside ekglue/mem.h. These never return NULL: when upb runs out of memory
 * they abort like every other allocation in ekglue (ekg_oom). The arena is the caller's (upb_Arena_Free).
 */
static inline upb_Arena *ekg_proto_arena_new(void)
{
    upb_Arena *arena = upb_Arena_New();
    if (!arena)
        ekg_oom(0);
    return arena;
}

/* n bytes from arena. */
static inline void *ekg_proto_alloc(upb_Arena *arena, size_t n)
{
    void *p = upb_Arena_Malloc(arena, n);
    if (!p)
        ekg_oom(n);
    return p;
}

/* A NUL-terminated copy of s in arena. */
static inline char *ekg_proto_strdup(upb_Arena *arena, const char *s)
{
    size_t n = strlen(s) + 1;
    return (char *)memcpy(ekg_proto_alloc(arena, n), s, n);
}

/* A new, empty message of type m in arena. */
static inline upb_Message *ekg_proto_message_new(const upb_MessageDef *m, upb_Arena *arena)
{
    upb_Message *msg = upb_Message_New(m, arena);
    if (!msg)
        ekg_oom(0);
    return msg;
}

/*
 * Decodes proto3 JSON into msg (which must be of type m). Unknown fields and unknown Any types are errors;
 * diag says which. Strings in msg point into arena.
 */
ekg_err_t ekg_proto_from_json(const char *json, size_t len, const upb_MessageDef *m, upb_Message *msg,
                              upb_Arena *arena, ekg_diag_t *diag);

/*
 * Encodes msg as canonical proto3 JSON (lowerCamel names, Any expanded). *out is malloc'ed and
 * NUL-terminated; the caller frees it. EKG_EPROTO when upb cannot encode it.
 */
ekg_err_t ekg_proto_to_json(const upb_Message *msg, const upb_MessageDef *m, char **out, size_t *len);

/*
 * Deterministic binary encoding (map entries sorted), so that the same message always gives the same bytes.
 * *buf lives in arena. EKG_EPROTO when upb cannot encode it (nested too deep, a required field missing); out
 * of memory aborts.
 */
ekg_err_t ekg_proto_encode(const upb_Message *msg, const upb_MessageDef *m, upb_Arena *arena, char **buf,
                           size_t *len);

/*
 * Decodes bytes a peer sent (a DiscoveryRequest, a ClientStatusRequest) as a new message of mini table mt in
 * arena, with upb_Decode's options. Before upb sees them, refuses what upb 1.51 mishandles (a map entry with
 * a field other than its key and value, groups) and what is not protobuf: EKG_EPARSE with the reason in diag,
 * as for anything upb refuses (src/proto/wire.c). Out of memory aborts.
 */
ekg_err_t ekg_proto_decode_peer(const char *buf, size_t len, const upb_MiniTable *mt, int options,
                                upb_Arena *arena, upb_Message **out, ekg_diag_t *diag);

/*
 * --- Validation: Envoy's own rules (src/proto/validate.c; docs/config.md, "Validation") -------------------
 *
 * Envoy checks every resource it receives against the protoc-gen-validate rules annotated in its protos (the
 * `validate.rules` options, extension 1071 of FieldOptions, and `validate.required` of OneofOptions) and
 * NACKs a response holding one resource that breaks one. ekg_proto_init() compiles those rules from the
 * descriptors in the pool once; these functions check a message against them the way Envoy would: nested
 * messages, repeated and map fields, and the payload of every Any whose type the pool knows. Envoy's own
 * check of every google.protobuf.Duration (not negative, in range) comes with them. A rule kind the validator
 * does not implement is counted (ekg_proto_validate_stats) and logged at start-up, and docs/config.md lists
 * them; such a rule is not checked.
 */

#define EKG_VALIDATE_MAX_DEPTH                                                                               \
    100 /* messages nested deeper are a violation (Envoy's parser stops at 100)                              \
         */

/* One step from a message into a field. Borrowed pointers into the pool and into the violation. */
typedef struct ekg_validate_step {
    const upb_FieldDef *field; /* the field entered; NULL for a required oneof (then oneof is set) */
    const upb_OneofDef *oneof; /* a required oneof that has no field set: always the last step */
    long index;                /* repeated fields: the element; -1 otherwise */
    const char *key;           /* map fields: the entry's key as text (strings as they are); NULL otherwise */
} ekg_validate_step_t;

/* The first rule a message breaks: where and what. Filled by the functions below; the caller owns it. */
typedef struct ekg_violation {
    ekg_validate_step_t steps[EKG_VALIDATE_MAX_DEPTH + 1]; /* from the top message down to the value */
    size_t nsteps;
    char path[512]; /* the steps in words, proto field names: `load_assignment.endpoints[0].priority`,
                       `typed_extension_protocol_options["NAME"].explicit_http_config...` (an Any's payload
                       fields follow the Any field's name directly, as in JSON); cut to fit */
    char rule[256]; /* what the value must be, in the words of Envoy's validator: "must be greater than 0s" */
    char keys[1024]; /* storage for the steps' keys */
} ekg_violation_t;

/*
 * Checks msg (of type m) against Envoy's rules. EKG_OK when it passes; EKG_EINVAL when it breaks one, with
 * *v (if non-NULL) saying where and which. Messages in Any fields are decoded into a scratch arena of this
 * call. Thread: any, once ekg_proto_init() returned.
 */
ekg_err_t ekg_proto_validate(const upb_Message *msg, const upb_MessageDef *m, ekg_violation_t *v);

/* Like ekg_proto_validate() on the message that buf[0..len) encodes; EKG_EPROTO (v->rule says so) when the
 * bytes do not decode as m. */
ekg_err_t ekg_proto_validate_bytes(const char *buf, size_t len, const upb_MessageDef *m, ekg_violation_t *v);

/*
 * Like ekg_proto_validate_bytes(), for bytes ekglue encoded itself (translation's hand-encoded resources):
 * the rules are checked on the wire form in place, without decoding, which is several times faster. Whatever
 * one pass cannot judge as the decoder would (a singular field or two members of a oneof given twice, map
 * fields, `unique`, bytes that do not parse) is decoded and checked by ekg_proto_validate_bytes(). The same
 * verdicts; when a message breaks several rules, which one is reported may differ.
 */
ekg_err_t ekg_proto_validate_wire(const char *buf, size_t len, const upb_MessageDef *m, ekg_violation_t *v);

/*
 * After ekg_proto_to_json() failed on msg: finds the deepest field whose value upb's JSON encoder refuses and
 * describes it in *v (path, and rule "cannot be written as proto3 JSON (REASON)"). EKG_EINVAL when found,
 * EKG_OK when msg encodes after all.
 */
ekg_err_t ekg_proto_locate_json_error(const upb_Message *msg, const upb_MessageDef *m, ekg_violation_t *v);

/* What ekg_proto_init() compiled: message types with something to check, fields and oneofs with rules, and
 * the rules (parts of a field's rules) the validator cannot check, counted and named by kind. */
typedef struct ekg_validate_stats {
    size_t messages, rules, unsupported;
    char unsupported_kinds[256]; /* "string.well_known.email (2), ..." or "" */
} ekg_validate_stats_t;
void ekg_proto_validate_stats(ekg_validate_stats_t *out);

#endif
