/*
 * src/proto/validate.c: Envoy's protoc-gen-validate (PGV) rules, read from the descriptors in the pool and
 * checked the way Envoy checks every resource it receives (include/ekglue/proto.h, "Validation";
 * docs/config.md, "Validation"; docs/internals/config.md).
 *
 * Where the rules are: Envoy's protos annotate fields with `(validate.rules)` (extension 1071 of
 * FieldOptions, a validate.FieldRules message), oneofs with `(validate.required)` (1071 of OneofOptions, a
 * bool) and messages with `(validate.disabled)`/`(validate.ignored)` (1071/1072 of MessageOptions). libgrpc
 * embeds those descriptors with their options, and upb keeps the extensions it does not know as unknown
 * fields of the options messages: this file reads them from there, decodes them as validate.FieldRules (a
 * message the pool has, since every Envoy file imports validate/validate.proto) and compiles them once.
 *
 * Compiling (ekg_validate_compile, from ekg_proto_init on the main thread): one plan per message type of the
 * pool. A plan lists the fields worth a look: those with rules, and those whose values may hold something to
 * check (a message type whose plan is active, a Duration, a Timestamp, an Any), computed to a fixed point
 * because message types nest recursively. Rules become small C structs (numbers as int64/uint64/double/
 * nanoseconds, strings as views into the plans' arena, patterns as a tiny NFA). A rule kind this file does
 * not implement is counted by name and logged; it is not checked.
 *
 * Checking (ekg_proto_validate, any thread): a walk over the plan, depth first, stopping at the first
 * violation, with the path kept as a stack of steps (field, element index, map key). Any payloads whose type
 * the pool knows are decoded into a scratch arena and walked too, as Envoy does when it unpacks them. Envoy's
 * own check of every Duration (MessageUtil::validateDurationFields: not negative, at most 315576000000 s)
 * and what proto3 JSON cannot represent (Timestamps outside years 1-9999) come with the walk. Fields are read
 * through their mini-table slots, not reflection calls: translation checks tens of thousands of resources
 * per build.
 *
 * Checking bytes in place (ekg_proto_validate_wire, for translation's hand-encoded resources): the same plans
 * and rule code over the wire form, without decoding; anything a single pass cannot judge exactly as upb's
 * decoder would falls back to decoding (the section "checking the wire form" says what).
 *
 * Memory: plans and rules live in one upb_Arena, freed by ekg_validate_free(); out of memory aborts
 * (ekglue/proto.h helpers). Thread: compile and free on the main thread while no other thread uses the pool;
 * afterwards the plans are read-only and any number of threads may validate at once.
 */
#include <arpa/inet.h>
#include <sys/socket.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "upb/decode.h"
#include "upb/def.h"
#include "upb/json_encode.h"
#include "upb/map.h"
#include "upb/msg_internal.h"
#include "upb/reflection.h"
#include "upb/status.h"

#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/proto.h"

#include "proto/validate.h"

#define EXT_RULES                                                                                            \
    1071 /* FieldOptions: validate.FieldRules; OneofOptions: required; MessageOptions: disabled */
#define EXT_IGNORED  1072           /* MessageOptions: ignored */
#define MAX_DURATION 315576000000LL /* seconds: protobuf's and Envoy's bound for a Duration */
#define NANOS        1000000000LL
#define W_MAX_FIELDS 256 /* the wire walk: types with more fields to check, or more oneofs, fall back */
#define W_MAX_DEPTH  60  /* ... and deeper nesting (upb's decoder stops at 64) */
#define W_MAX_ONEOFS 64

typedef __int128 nanos_t; /* a Duration or a Timestamp in nanoseconds: seconds * 1e9 overflow 64 bits */

/* --- compiled rules ------------------------------------------------------------------------------------- */

typedef enum { REPR_I, REPR_U, REPR_F, REPR_T } repr_t; /* int64, uint64, double, nanoseconds */

/* REPR_T keeps its nanos_t as bytes: a __int128 member would ask 16-byte alignment of every struct holding
 * one, more than upb's arena gives. Read and write it with tval() and tnum(). */
typedef union num {
    int64_t i;
    uint64_t u;
    double f;
    unsigned char t[sizeof(nanos_t)];
} num_t;

static nanos_t tval(num_t v)
{
    nanos_t x;
    memcpy(&x, v.t, sizeof(x));
    return x;
}

static num_t tnum(nanos_t x)
{
    num_t v;
    memcpy(v.t, &x, sizeof(x));
    return v;
}

enum { HAS_CONST = 1, HAS_LT = 2, HAS_LTE = 4, HAS_GT = 8, HAS_GTE = 16, HAS_WITHIN = 32 };

/* Numbers, Durations and Timestamps: const/lt/lte/gt/gte/in/not_in (and lt_now/gt_now/within). */
typedef struct num_rule {
    repr_t repr;
    bool timestamp; /* REPR_T values are points in time: printed as RFC 3339 */
    unsigned has;
    num_t c, lt, lte, gt, gte, within;
    num_t *in, *not_in;
    size_t nin, nnot_in;
    bool ignore_empty, lt_now, gt_now;
} num_rule_t;

typedef enum {
    WK_NONE,
    WK_HOSTNAME,
    WK_IP,
    WK_IPV4,
    WK_IPV6,
    WK_ADDRESS,
    WK_UUID,
    WK_HEADER_NAME,
    WK_HEADER_VALUE
} well_known_t;

/* The subset of RE2 Envoy's patterns use: anchors, literals, '.', classes, escapes, quantifiers; no groups.
 * Matched by simulating the NFA over runes (every non-ASCII rune is matched as one, by `non_ascii`). */
typedef struct re_atom {
    uint8_t set[16]; /* ASCII runes 0..127 */
    bool non_ascii;  /* matches any rune >= 0x80 */
    enum { Q_ONE, Q_OPT, Q_STAR } q;
} re_atom_t;

#define RE_MAX_ATOMS 63 /* states 0..n fit a uint64_t */

typedef struct re_prog {
    re_atom_t atoms[RE_MAX_ATOMS];
    size_t n;
    bool start, end; /* anchored with ^ / $ */
    const char *text;
} re_prog_t;

/* Strings and bytes. Lengths are runes for strings and bytes for bytes where PGV says so. */
typedef struct str_rule {
    bool bytes, ignore_empty, strict;
    bool has_const, has_len, has_min_len, has_max_len, has_len_bytes, has_min_bytes, has_max_bytes;
    upb_StringView c, prefix, suffix, contains, not_contains; /* .data NULL when absent */
    uint64_t len, min_len, max_len, len_bytes, min_bytes, max_bytes;
    upb_StringView *in, *not_in;
    size_t nin, nnot_in;
    well_known_t well_known;
    const re_prog_t *pattern;
} str_rule_t;

typedef struct enum_rule {
    const upb_EnumDef *e;
    uint64_t defined[4]; /* values 0..255 the enum defines (the others are looked up) */
    bool has_const, defined_only;
    int32_t c;
    int32_t *in, *not_in;
    size_t nin, nnot_in;
} enum_rule_t;

typedef struct any_rule {
    upb_StringView *in, *not_in;
    size_t nin, nnot_in;
} any_rule_t;

typedef enum { R_NONE, R_NUM, R_BOOL, R_STR, R_ENUM, R_ANY } rule_kind_t;

/* The rules on one value: a singular field, or each item / key / value of a repeated or map field. */
typedef struct value_rule {
    rule_kind_t kind;
    bool required; /* message.required, or the required of any/duration/timestamp rules */
    bool skip;     /* message.skip: the value's own fields are not checked */
    bool bool_const;
    union {
        num_rule_t num;
        str_rule_t str;
        enum_rule_t en;
        any_rule_t any;
    } u;
} value_rule_t;

typedef struct rep_rule {
    bool has_min, has_max, unique, ignore_empty;
    uint64_t min, max;
    const value_rule_t *items; /* NULL when none */
} rep_rule_t;

typedef struct map_rule {
    bool has_min, has_max, ignore_empty;
    uint64_t min, max;
    const value_rule_t *keys, *values;
} map_rule_t;

typedef enum { WKT_NONE, WKT_DURATION, WKT_TIMESTAMP, WKT_ANY, WKT_WRAPPER } wkt_t;

typedef struct msg_plan msg_plan_t;

/* What a field's values are, precomputed at compile time so that the walk makes no reflection calls. */
typedef struct vtype {
    upb_CType ct;      /* the value's own type (a wrapper: kUpb_CType_Message) */
    upb_FieldType ft;  /* its descriptor type (the wire form: varint, zigzag, fixed...) */
    wkt_t wkt;         /* message values: a well-known type with checks of its own */
    upb_CType wrap_ct; /* wrappers: their value's types */
    upb_FieldType wrap_ft;
    bool closed_enum;                /* a proto2 enum: upb keeps an undefined value as an unknown field */
    bool utf8;                       /* strings the decoder checks for UTF-8 (proto3 `string`) */
    const upb_MiniTable_Field *wrap; /* wrappers: their `value` field; else NULL */
    const upb_MessageDef *sub;       /* message values: their type; else NULL */
} vtype_t;

typedef enum { F_SINGULAR, F_REPEATED, F_MAP } shape_t;

/* One field worth a look. For a map field, `vt` and `sub` are about the entries' value. What the walks read
 * for every field comes first (they run through these arrays for every message). */
typedef struct field_plan {
    const upb_MiniTable_Field *mf; /* the field's slot in the message */
    shape_t shape;
    bool walk;       /* values need a walk of their own (sub, or a Duration, Timestamp, Any) */
    bool skip_unset; /* nothing to check when unset (a field with presence and no `required`) */
    const upb_FieldDef *f;
    const value_rule_t *rule;          /* singular fields; NULL when none */
    const rep_rule_t *rep;             /* repeated (not map) fields; NULL when none */
    const msg_plan_t *sub;             /* the (value) message type's plan, when it is active */
    vtype_t vt;                        /* the value (element) */
    const map_rule_t *map;             /* map fields; NULL when none */
    vtype_t kt;                        /* map fields: the key */
    const upb_FieldDef *key_f, *val_f; /* map fields: the entry's fields */
} field_plan_t;

struct msg_plan {
    const upb_MessageDef *m;
    const upb_MiniTable *mt; /* m's layout, for the fields the wire walk skips */
    field_plan_t *fields;
    size_t nfields;
    const upb_OneofDef **oneofs;             /* (validate.required) */
    const upb_MiniTable_Field **oneof_slots; /* a member of each: where the oneof's case is */
    size_t noneofs;
    /* The wire walk's tables, by field number (< nslots, the message's largest number + 1): the index in
     * fields (-1: not there) and the index of the oneof it belongs to (-1: none). */
    int16_t *slot_of, *oneof_of;
    uint8_t *wt_of; /* the wire type each field number is written with (another one: an unknown field) */
    uint32_t nslots;
    uint32_t noneofs_all;          /* the message's oneofs, required or not */
    int16_t *required_oneof_index; /* for each required oneof: its index among the message's oneofs */
    uint16_t *after; /* the fields whose absence (or whose count) breaks a rule: checked at the end */
    size_t nafter;
    bool wire_ok;  /* false: the wire walk falls back to decoding for this type */
    bool disabled; /* (validate.disabled) or (validate.ignored): nothing in it is checked */
    bool direct;   /* rules of its own */
    bool active;   /* something to check in it or below */
    /* While compiling: the rules of each field (index as upb_MessageDef_Field), NULL when none. */
    const void **field_rules;
};

/* A field's rules while compiling. */
typedef struct field_rules {
    const value_rule_t *value;
    const rep_rule_t *rep;
    const map_rule_t *map;
} field_rules_t;

typedef struct unsupported {
    const char *kind; /* static or in the arena */
    size_t count;
} unsupported_t;

/* Everything compiled; NULL before ekg_validate_compile and after ekg_validate_free. Read-only in between. */
static struct compiled {
    upb_Arena *arena;
    const upb_DefPool *pool;
    msg_plan_t **plans; /* sorted by MessageDef address */
    size_t nplans;
    unsupported_t unsupported[32];
    size_t nunsupported_kinds, unsupported_total, rules;
    size_t active;
    /* The fields of the well-known types the walk reads: seconds and nanos of Duration and Timestamp (index
     * 0 and 1), type_url and value of Any. NULL when the pool lacks the type. */
    const upb_MiniTable_Field *dur[2], *ts[2], *any[2];
    /* Any payloads: "type.googleapis.com/NAME" of every active type -> its plan (open addressing, a power of
     * two of slots, NULL = empty), so that the walk finds a payload's plan without the pool's lookups. */
    struct url_slot {
        const char *url; /* in the arena; NULL: empty */
        size_t len;
        uint64_t hash;
        const msg_plan_t *plan;
    } * urls;
    size_t nurls_cap;
} * compiled;

/* --- the pattern subset --------------------------------------------------------------------------------- */

static void set_add(uint8_t set[16], unsigned c)
{
    set[c >> 3] |= (uint8_t)(1u << (c & 7));
}

static bool set_has(const uint8_t set[16], unsigned c)
{
    return set[c >> 3] & (1u << (c & 7));
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * An escape after '\' at *p (advanced past it): either one ASCII character (*lit) or a class (\d \w \s and
 * their negations, into a). False when the subset does not have it.
 */
static bool re_escape(const char **p, int *lit, re_atom_t *a)
{
    char c = **p;
    (*p)++;
    bool neg = c == 'D' || c == 'W' || c == 'S';
    switch (c) {
    case 'd':
    case 'D':
    case 'w':
    case 'W':
    case 's':
    case 'S': {
        uint8_t set[16] = {0};
        for (unsigned k = 0; k < 128; k++) {
            bool in = (c == 'd' || c == 'D')   ? (k >= '0' && k <= '9')
                      : (c == 'w' || c == 'W') ? ((k >= '0' && k <= '9') || (k >= 'a' && k <= 'z') ||
                                                  (k >= 'A' && k <= 'Z') || k == '_')
                                               : (k == ' ' || (k >= '\t' && k <= '\r'));
            if (in != neg)
                set_add(set, k);
        }
        for (int k = 0; k < 16; k++)
            a->set[k] |= set[k];
        a->non_ascii = a->non_ascii || neg;
        *lit = -1;
        return true;
    }
    case 'n':
        *lit = '\n';
        return true;
    case 'r':
        *lit = '\r';
        return true;
    case 't':
        *lit = '\t';
        return true;
    case 'f':
        *lit = '\f';
        return true;
    case 'v':
        *lit = '\v';
        return true;
    case 'x': {
        int v = 0, digits = 0;
        if (**p == '{') {
            (*p)++;
            while (hexval(**p) >= 0 && digits < 6)
                v = v * 16 + hexval(*(*p)++), digits++;
            if (**p != '}' || digits == 0)
                return false;
            (*p)++;
        } else {
            for (; digits < 2 && hexval(**p) >= 0; digits++)
                v = v * 16 + hexval(*(*p)++);
            if (digits != 2)
                return false;
        }
        if (v > 127)
            return false;
        *lit = v;
        return true;
    }
    default:
        /* Punctuation stands for itself; letters and digits are classes or assertions the subset lacks. */
        if ((unsigned char)c < 128 && c > ' ' && !(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'z') &&
            !(c >= 'A' && c <= 'Z')) {
            *lit = c;
            return true;
        }
        return false;
    }
}

/* A bracket class at *p (just past '['); advanced past ']'. */
static bool re_class(const char **p, re_atom_t *a)
{
    bool neg = **p == '^';
    if (neg)
        (*p)++;
    re_atom_t acc = {{0}, false, Q_ONE};
    bool first = true;
    while (**p && (**p != ']' || first)) {
        first = false;
        int lo;
        if (**p == '[') /* [:alpha:] and friends */
            return false;
        if (**p == '\\') {
            (*p)++;
            if (!re_escape(p, &lo, &acc))
                return false;
            if (lo < 0)
                continue;
        } else {
            if ((unsigned char)**p >= 128)
                return false;
            lo = *(*p)++;
        }
        int hi = lo;
        if (**p == '-' && (*p)[1] && (*p)[1] != ']') {
            (*p)++;
            if (**p == '\\') {
                (*p)++;
                if (!re_escape(p, &hi, &acc) || hi < 0)
                    return false;
            } else {
                if ((unsigned char)**p >= 128)
                    return false;
                hi = *(*p)++;
            }
            if (hi < lo)
                return false;
        }
        for (int k = lo; k <= hi; k++)
            set_add(acc.set, (unsigned)k);
    }
    if (**p != ']')
        return false;
    (*p)++;
    if (neg) {
        if (acc.non_ascii)
            return false; /* [^\D]: not in the subset */
        for (int k = 0; k < 16; k++)
            a->set[k] = (uint8_t)~acc.set[k];
        a->non_ascii = true;
    } else {
        *a = acc;
    }
    return true;
}

static bool re_push(re_prog_t *r, const re_atom_t *a, int q)
{
    if (r->n >= RE_MAX_ATOMS)
        return false;
    r->atoms[r->n] = *a;
    r->atoms[r->n].q = q;
    r->n++;
    return true;
}

/* Compiles text into r; false when it is outside the subset (the rule is then counted as unsupported). */
static bool re_compile(const char *text, re_prog_t *r)
{
    memset(r, 0, sizeof(*r));
    r->text = text;
    const char *p = text;
    if (*p == '^') {
        r->start = true;
        p++;
    }
    while (*p) {
        re_atom_t a = {{0}, false, Q_ONE};
        int lit = -1;
        char c = *p;
        if (c == '$' && p[1] == '\0') {
            r->end = true;
            p++;
            break;
        }
        if (strchr("()|$^*+?{}", c))
            return false;
        p++;
        if (c == '[') {
            if (!re_class(&p, &a))
                return false;
        } else if (c == '.') {
            for (unsigned k = 0; k < 128; k++)
                if (k != '\n')
                    set_add(a.set, k);
            a.non_ascii = true;
        } else if (c == '\\') {
            if (!re_escape(&p, &lit, &a))
                return false;
        } else if ((unsigned char)c >= 128) {
            return false;
        } else {
            lit = c;
        }
        if (lit >= 0)
            set_add(a.set, (unsigned)lit);
        /* Quantifier. */
        unsigned long lo = 1, hi = 1; /* hi == ULONG_MAX: unbounded */
        if (*p == '*' || *p == '+' || *p == '?') {
            lo = *p == '+' ? 1 : 0;
            hi = *p == '?' ? 1 : (unsigned long)-1;
            p++;
        } else if (*p == '{') {
            char *end;
            p++;
            lo = strtoul(p, &end, 10);
            if (end == p)
                return false;
            p = end;
            hi = lo;
            if (*p == ',') {
                p++;
                hi = (unsigned long)-1;
                if (*p != '}') {
                    hi = strtoul(p, &end, 10);
                    if (end == p || hi < lo)
                        return false;
                    p = end;
                }
            }
            if (*p != '}')
                return false;
            p++;
        }
        if (*p == '?') /* lazy: the same set of matches */
            p++;
        if (lo > RE_MAX_ATOMS || (hi != (unsigned long)-1 && hi > RE_MAX_ATOMS))
            return false;
        for (unsigned long k = 0; k < lo; k++)
            if (!re_push(r, &a, Q_ONE))
                return false;
        if (hi == (unsigned long)-1) {
            if (!re_push(r, &a, Q_STAR))
                return false;
        } else {
            for (unsigned long k = lo; k < hi; k++)
                if (!re_push(r, &a, Q_OPT))
                    return false;
        }
    }
    return *p == '\0';
}

static uint64_t re_closure(const re_prog_t *r, uint64_t s)
{
    for (size_t i = 0; i < r->n; i++)
        if ((s >> i & 1) && r->atoms[i].q != Q_ONE)
            s |= (uint64_t)1 << (i + 1);
    return s;
}

/* One rune at s[*i] (advanced past it): its value when ASCII, or -1 for any other rune. */
static int next_rune(const char *s, size_t len, size_t *i)
{
    unsigned char c = (unsigned char)s[(*i)++];
    if (c < 0x80)
        return c;
    size_t more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
    while (more-- && *i < len && ((unsigned char)s[*i] & 0xc0) == 0x80)
        (*i)++;
    return -1;
}

/* RE2's PartialMatch: anywhere in s unless anchored. */
static bool re_match(const re_prog_t *r, const char *s, size_t len)
{
    uint64_t accept = (uint64_t)1 << r->n;
    uint64_t cur = re_closure(r, 1);
    if (!r->end && (cur & accept))
        return true;
    for (size_t i = 0; i < len;) {
        int c = next_rune(s, len, &i);
        uint64_t next = 0;
        for (size_t k = 0; k < r->n; k++) {
            if (!(cur >> k & 1))
                continue;
            const re_atom_t *a = &r->atoms[k];
            if (c >= 0 ? !set_has(a->set, (unsigned)c) : !a->non_ascii)
                continue;
            next |= (uint64_t)1 << (a->q == Q_STAR ? k : k + 1);
        }
        cur = re_closure(r, next | (r->start ? 0 : 1));
        if (!r->end && (cur & accept))
            return true;
    }
    return cur & accept;
}

/* --- reading the options ----------------------------------------------------------------------------------
 */

static bool read_varint(const char **p, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        unsigned char b = (unsigned char)*(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

/*
 * Calls found(ctx, value, len, varint) for every occurrence of `field` among the unknown fields of an options
 * message (length-delimited: value/len; varint: varint).
 */
static void each_option(const upb_Message *opts, uint32_t field,
                        void (*found)(void *ctx, const char *value, size_t len, uint64_t varint), void *ctx)
{
    if (!opts)
        return;
    size_t len = 0;
    const char *p = upb_Message_GetUnknown(opts, &len);
    if (!p || !len)
        return;
    const char *end = p + len;
    while (p < end) {
        uint64_t tag, v = 0, n = 0;
        if (!read_varint(&p, end, &tag))
            return;
        switch (tag & 7) {
        case 0:
            if (!read_varint(&p, end, &v))
                return;
            if (tag >> 3 == field)
                found(ctx, NULL, 0, v);
            break;
        case 1:
            if (end - p < 8)
                return;
            p += 8;
            break;
        case 2:
            if (!read_varint(&p, end, &n) || n > (uint64_t)(end - p))
                return;
            if (tag >> 3 == field)
                found(ctx, p, (size_t)n, 0);
            p += n;
            break;
        case 5:
            if (end - p < 4)
                return;
            p += 4;
            break;
        default:
            return; /* groups: not in options upb kept */
        }
    }
}

typedef struct decode_ctx {
    upb_Arena *arena;
    const upb_MessageDef *def;
    upb_Message *msg; /* created on the first occurrence; later ones merge into it, as protobuf does */
} decode_ctx_t;

static void decode_found(void *ctx, const char *value, size_t len, uint64_t varint)
{
    decode_ctx_t *d = ctx;
    if (!value)
        return;
    if (!d->msg)
        d->msg = ekg_proto_message_new(d->def, d->arena);
    if (upb_Decode(value, len, d->msg, upb_MessageDef_MiniTable(d->def), NULL, 0, d->arena) ==
        kUpb_DecodeStatus_OutOfMemory)
        ekg_oom(0);
}

static void flag_found(void *ctx, const char *value, size_t len, uint64_t varint)
{
    if (!value && varint)
        *(bool *)ctx = true;
}

/* --- compiling
 * ---------------------------------------------------------------------------------------------- */

typedef struct compiler {
    struct compiled *c;
    const upb_MessageDef *rules_def; /* validate.FieldRules */
    const char *where;               /* the field being compiled, for debug logs */
} compiler_t;

static void unsupported(compiler_t *cc, const char *kind)
{
    struct compiled *c = cc->c;
    c->unsupported_total++;
    ekg_debug("validation: %s: rule %s is not checked by ekglue", cc->where, kind);
    for (size_t i = 0; i < c->nunsupported_kinds; i++)
        if (strcmp(c->unsupported[i].kind, kind) == 0) {
            c->unsupported[i].count++;
            return;
        }
    if (c->nunsupported_kinds < sizeof(c->unsupported) / sizeof(c->unsupported[0]))
        c->unsupported[c->nunsupported_kinds++] = (unsupported_t){ekg_proto_strdup(c->arena, kind), 1};
}

static const upb_FieldDef *rf(const upb_MessageDef *m, const char *name)
{
    return upb_MessageDef_FindFieldByName(m, name);
}

/*
 * Every field set in rules (of type m, the rules of `kind`) must be among `handled` (NULL-terminated), and no
 * unknown field may be there (a rule newer than the validate.proto libgrpc has): anything else is counted.
 */
static void check_handled(compiler_t *cc, const upb_Message *rules, const upb_MessageDef *m, const char *kind,
                          const char *const *handled)
{
    size_t iter = kUpb_Message_Begin;
    const upb_FieldDef *f;
    upb_MessageValue v;
    while (upb_Message_Next(rules, m, NULL, &f, &v, &iter)) {
        size_t i = 0;
        while (handled[i] && strcmp(handled[i], upb_FieldDef_Name(f)) != 0)
            i++;
        if (!handled[i]) {
            char name[96];
            snprintf(name, sizeof(name), "%s.%s", kind, upb_FieldDef_Name(f));
            unsupported(cc, name);
        }
    }
    size_t unknown = 0;
    upb_Message_GetUnknown(rules, &unknown);
    if (unknown) {
        char name[96];
        snprintf(name, sizeof(name), "%s.<field unknown to libgrpc's validate.proto>", kind);
        unsupported(cc, name);
    }
}

static bool has(const upb_Message *msg, const upb_MessageDef *m, const char *name)
{
    const upb_FieldDef *f = rf(m, name);
    return f && upb_Message_Has(msg, f);
}

static upb_MessageValue get(const upb_Message *msg, const upb_MessageDef *m, const char *name)
{
    return upb_Message_Get(msg, rf(m, name));
}

/* A Duration or Timestamp message in nanoseconds. */
static nanos_t time_of(const upb_Message *msg, const upb_MessageDef *m)
{
    if (!msg)
        return 0;
    int64_t s = upb_Message_Get(msg, upb_MessageDef_FindFieldByNumber(m, 1)).int64_val;
    int32_t n = upb_Message_Get(msg, upb_MessageDef_FindFieldByNumber(m, 2)).int32_val;
    return (nanos_t)s * NANOS + n;
}

/* A scalar value of a rules message as num_t in repr (the rule field's own type decides the reading). */
static num_t num_of(const upb_FieldDef *f, upb_MessageValue v)
{
    num_t n = {0};
    switch (upb_FieldDef_CType(f)) {
    case kUpb_CType_Int32:
    case kUpb_CType_Enum:
        n.i = v.int32_val;
        break;
    case kUpb_CType_Int64:
        n.i = v.int64_val;
        break;
    case kUpb_CType_UInt32:
        n.u = v.uint32_val;
        break;
    case kUpb_CType_UInt64:
        n.u = v.uint64_val;
        break;
    case kUpb_CType_Float:
        n.f = v.float_val;
        break;
    case kUpb_CType_Double:
        n.f = v.double_val;
        break;
    case kUpb_CType_Message:
        n = tnum(time_of(v.msg_val, upb_FieldDef_MessageSubDef(f)));
        break;
    default:
        break;
    }
    return n;
}

static num_t *num_list(struct compiled *c, const upb_Message *rules, const upb_MessageDef *m,
                       const char *name, size_t *n)
{
    const upb_FieldDef *f = rf(m, name);
    const upb_Array *arr = f ? upb_Message_Get(rules, f).array_val : NULL;
    *n = arr ? upb_Array_Size(arr) : 0;
    if (!*n)
        return NULL;
    num_t *out = ekg_proto_alloc(c->arena, *n * sizeof(*out));
    for (size_t i = 0; i < *n; i++)
        out[i] = num_of(f, upb_Array_Get(arr, i));
    return out;
}

static upb_StringView copy_view(struct compiled *c, upb_StringView s)
{
    char *p = ekg_proto_alloc(c->arena, s.size + 1);
    memcpy(p, s.data, s.size);
    p[s.size] = '\0';
    return upb_StringView_FromDataAndSize(p, s.size);
}

static upb_StringView *str_list(struct compiled *c, const upb_Message *rules, const upb_MessageDef *m,
                                const char *name, size_t *n)
{
    const upb_FieldDef *f = rf(m, name);
    const upb_Array *arr = f ? upb_Message_Get(rules, f).array_val : NULL;
    *n = arr ? upb_Array_Size(arr) : 0;
    if (!*n)
        return NULL;
    upb_StringView *out = ekg_proto_alloc(c->arena, *n * sizeof(*out));
    for (size_t i = 0; i < *n; i++)
        out[i] = copy_view(c, upb_Array_Get(arr, i).str_val);
    return out;
}

static void compile_num(compiler_t *cc, const upb_Message *r, const upb_MessageDef *m, const char *kind,
                        repr_t repr, bool timestamp, num_rule_t *out)
{
    static const char *const handled[] = {"const",  "lt",           "lte",      "gt",     "gte",    "in",
                                          "not_in", "ignore_empty", "required", "lt_now", "gt_now", "within",
                                          NULL};
    static const struct {
        const char *name;
        unsigned bit;
        size_t off;
    } bounds[] = {
        {"const", HAS_CONST, offsetof(num_rule_t, c)}, {"lt", HAS_LT, offsetof(num_rule_t, lt)},
        {"lte", HAS_LTE, offsetof(num_rule_t, lte)},   {"gt", HAS_GT, offsetof(num_rule_t, gt)},
        {"gte", HAS_GTE, offsetof(num_rule_t, gte)},   {"within", HAS_WITHIN, offsetof(num_rule_t, within)}};
    out->repr = repr;
    out->timestamp = timestamp;
    for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
        const upb_FieldDef *f = rf(m, bounds[i].name);
        if (f && upb_Message_Has(r, f)) {
            out->has |= bounds[i].bit;
            *(num_t *)((char *)out + bounds[i].off) = num_of(f, upb_Message_Get(r, f));
        }
    }
    out->in = num_list(cc->c, r, m, "in", &out->nin);
    out->not_in = num_list(cc->c, r, m, "not_in", &out->nnot_in);
    out->ignore_empty = has(r, m, "ignore_empty") && get(r, m, "ignore_empty").bool_val;
    out->lt_now = has(r, m, "lt_now") && get(r, m, "lt_now").bool_val;
    out->gt_now = has(r, m, "gt_now") && get(r, m, "gt_now").bool_val;
    check_handled(cc, r, m, kind, handled);
}

static void compile_str(compiler_t *cc, const upb_Message *r, const upb_MessageDef *m, const char *kind,
                        bool bytes, str_rule_t *out)
{
    static const char *const handled[] = {
        "const",        "len",     "min_len",  "max_len",      "len_bytes", "min_bytes",        "max_bytes",
        "prefix",       "suffix",  "contains", "not_contains", "in",        "not_in",           "hostname",
        "ip",           "ipv4",    "ipv6",     "address",      "uuid",      "well_known_regex", "strict",
        "ignore_empty", "pattern", NULL};
    struct compiled *c = cc->c;
    out->bytes = bytes;
    out->strict = true; /* StringRules.strict defaults to true */
    if (has(r, m, "strict"))
        out->strict = get(r, m, "strict").bool_val;
    out->ignore_empty = has(r, m, "ignore_empty") && get(r, m, "ignore_empty").bool_val;
    struct {
        const char *name;
        bool *flag;
        uint64_t *value;
    } lens[] = {{"len", &out->has_len, &out->len},
                {"min_len", &out->has_min_len, &out->min_len},
                {"max_len", &out->has_max_len, &out->max_len},
                {"len_bytes", &out->has_len_bytes, &out->len_bytes},
                {"min_bytes", &out->has_min_bytes, &out->min_bytes},
                {"max_bytes", &out->has_max_bytes, &out->max_bytes}};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        if (has(r, m, lens[i].name)) {
            *lens[i].flag = true;
            *lens[i].value = get(r, m, lens[i].name).uint64_val;
        }
    if (bytes) { /* BytesRules count bytes in len/min_len/max_len */
        out->has_len_bytes = out->has_len, out->len_bytes = out->len, out->has_len = false;
        out->has_min_bytes = out->has_min_len, out->min_bytes = out->min_len, out->has_min_len = false;
        out->has_max_bytes = out->has_max_len, out->max_bytes = out->max_len, out->has_max_len = false;
    }
    struct {
        const char *name;
        upb_StringView *view;
        bool *flag;
    } views[] = {{"const", &out->c, &out->has_const},
                 {"prefix", &out->prefix, NULL},
                 {"suffix", &out->suffix, NULL},
                 {"contains", &out->contains, NULL},
                 {"not_contains", &out->not_contains, NULL}};
    for (size_t i = 0; i < sizeof(views) / sizeof(views[0]); i++)
        if (has(r, m, views[i].name)) {
            *views[i].view = copy_view(c, get(r, m, views[i].name).str_val);
            if (views[i].flag)
                *views[i].flag = true;
        }
    out->in = str_list(c, r, m, "in", &out->nin);
    out->not_in = str_list(c, r, m, "not_in", &out->nnot_in);
    static const struct {
        const char *name;
        well_known_t wk;
    } wks[] = {{"hostname", WK_HOSTNAME}, {"ip", WK_IP},           {"ipv4", WK_IPV4},
               {"ipv6", WK_IPV6},         {"address", WK_ADDRESS}, {"uuid", WK_UUID}};
    for (size_t i = 0; i < sizeof(wks) / sizeof(wks[0]); i++)
        if (has(r, m, wks[i].name) && get(r, m, wks[i].name).bool_val)
            out->well_known = wks[i].wk;
    if (has(r, m, "well_known_regex")) {
        int32_t which = get(r, m, "well_known_regex").int32_val;
        if (which == 1)
            out->well_known = WK_HEADER_NAME;
        else if (which == 2)
            out->well_known = WK_HEADER_VALUE;
        else if (which != 0)
            unsupported(cc, "string.well_known_regex.<unknown value>");
    }
    if (has(r, m, "pattern")) {
        upb_StringView text = copy_view(c, get(r, m, "pattern").str_val);
        re_prog_t *re = ekg_proto_alloc(c->arena, sizeof(*re));
        if (re_compile(text.data, re)) {
            out->pattern = re;
        } else {
            char name[64];
            snprintf(name, sizeof(name), "%s.pattern (outside the RE2 subset ekglue matches)", kind);
            unsupported(cc, name);
        }
    }
    check_handled(cc, r, m, kind, handled);
}

static bool is_wrapper(const upb_MessageDef *m)
{
    upb_WellKnown w = upb_MessageDef_WellKnownType(m);
    return w >= kUpb_WellKnown_DoubleValue && w <= kUpb_WellKnown_BoolValue;
}

/*
 * The CType a rule applies to for a value of field f: the scalar's own, or a wrapper's value;
 * kUpb_CType_Message for other messages.
 */
static upb_CType value_ctype(const upb_FieldDef *f)
{
    if (upb_FieldDef_CType(f) == kUpb_CType_Message && is_wrapper(upb_FieldDef_MessageSubDef(f)))
        return upb_FieldDef_CType(upb_MessageDef_FindFieldByNumber(upb_FieldDef_MessageSubDef(f), 1));
    return upb_FieldDef_CType(f);
}

static const value_rule_t *compile_value(compiler_t *cc, const upb_Message *rules, const upb_FieldDef *f,
                                         bool element);

/* The repeated or map part of a FieldRules (items, keys, values are FieldRules of the element). */
static const rep_rule_t *compile_rep(compiler_t *cc, const upb_Message *r, const upb_MessageDef *m,
                                     const upb_FieldDef *f)
{
    static const char *const handled[] = {"min_items", "max_items", "unique", "items", "ignore_empty", NULL};
    rep_rule_t *out = ekg_proto_alloc(cc->c->arena, sizeof(*out));
    memset(out, 0, sizeof(*out));
    if ((out->has_min = has(r, m, "min_items")))
        out->min = get(r, m, "min_items").uint64_val;
    if ((out->has_max = has(r, m, "max_items")))
        out->max = get(r, m, "max_items").uint64_val;
    out->unique = has(r, m, "unique") && get(r, m, "unique").bool_val;
    out->ignore_empty = has(r, m, "ignore_empty") && get(r, m, "ignore_empty").bool_val;
    if (out->unique && upb_FieldDef_CType(f) == kUpb_CType_Message) {
        unsupported(cc, "repeated.unique (on messages)");
        out->unique = false;
    }
    if (has(r, m, "items"))
        out->items = compile_value(cc, get(r, m, "items").msg_val, f, true);
    check_handled(cc, r, m, "repeated", handled);
    return out;
}

static const map_rule_t *compile_map(compiler_t *cc, const upb_Message *r, const upb_MessageDef *m,
                                     const upb_FieldDef *f)
{
    /* no_sparse holds for every map upb decodes, as in Envoy's C++ validator (which does not check it). */
    static const char *const handled[] = {"min_pairs",    "max_pairs", "keys", "values",
                                          "ignore_empty", "no_sparse", NULL};
    const upb_MessageDef *entry = upb_FieldDef_MessageSubDef(f);
    map_rule_t *out = ekg_proto_alloc(cc->c->arena, sizeof(*out));
    memset(out, 0, sizeof(*out));
    if ((out->has_min = has(r, m, "min_pairs")))
        out->min = get(r, m, "min_pairs").uint64_val;
    if ((out->has_max = has(r, m, "max_pairs")))
        out->max = get(r, m, "max_pairs").uint64_val;
    out->ignore_empty = has(r, m, "ignore_empty") && get(r, m, "ignore_empty").bool_val;
    if (has(r, m, "keys"))
        out->keys =
            compile_value(cc, get(r, m, "keys").msg_val, upb_MessageDef_FindFieldByNumber(entry, 1), true);
    if (has(r, m, "values"))
        out->values =
            compile_value(cc, get(r, m, "values").msg_val, upb_MessageDef_FindFieldByNumber(entry, 2), true);
    check_handled(cc, r, m, "map", handled);
    return out;
}

/*
 * The scalar/message part of a FieldRules for one value of field f (NULL when there is none): f's own value,
 * or (element) one element of repeated f, or a map entry's key or value field.
 */
static const value_rule_t *compile_value(compiler_t *cc, const upb_Message *rules, const upb_FieldDef *f,
                                         bool element)
{
    const upb_MessageDef *m = cc->rules_def;
    struct compiled *c = cc->c;
    value_rule_t *out = ekg_proto_alloc(c->arena, sizeof(*out));
    memset(out, 0, sizeof(*out));
    bool any_rule = false;
    if (has(rules, m, "message")) {
        static const char *const handled[] = {"skip", "required", NULL};
        const upb_FieldDef *mf = rf(m, "message");
        const upb_Message *mr = upb_Message_Get(rules, mf).msg_val;
        const upb_MessageDef *mm = upb_FieldDef_MessageSubDef(mf);
        out->required = has(mr, mm, "required") && get(mr, mm, "required").bool_val;
        out->skip = has(mr, mm, "skip") && get(mr, mm, "skip").bool_val;
        check_handled(cc, mr, mm, "message", handled);
        any_rule = out->required || out->skip;
    }
    const upb_FieldDef *which = upb_Message_WhichOneof(rules, upb_MessageDef_FindOneofByName(m, "type"));
    if (!which)
        return any_rule ? out : NULL;
    if (strcmp(upb_FieldDef_Name(which), "repeated") == 0 || strcmp(upb_FieldDef_Name(which), "map") == 0) {
        if (element || !upb_FieldDef_IsRepeated(f))
            unsupported(cc, element ? "repeated/map rules on an element"
                                    : "repeated/map rules on a singular field");
        return any_rule ? out : NULL; /* the caller compiles those of a repeated or map field */
    }
    const char *kind = upb_FieldDef_Name(which);
    const upb_Message *r = upb_Message_Get(rules, which).msg_val;
    const upb_MessageDef *rm = upb_FieldDef_MessageSubDef(which);
    upb_CType ct = value_ctype(f);
    const upb_MessageDef *sub =
        upb_FieldDef_CType(f) == kUpb_CType_Message ? upb_FieldDef_MessageSubDef(f) : NULL;
    upb_WellKnown wk = sub ? upb_MessageDef_WellKnownType(sub) : kUpb_WellKnown_Unspecified;
    static const struct {
        const char *kind;
        upb_CType ct1, ct2;
        repr_t repr;
    } nums[] = {{"float", kUpb_CType_Float, kUpb_CType_Float, REPR_F},
                {"double", kUpb_CType_Double, kUpb_CType_Double, REPR_F},
                {"int32", kUpb_CType_Int32, kUpb_CType_Int32, REPR_I},
                {"sint32", kUpb_CType_Int32, kUpb_CType_Int32, REPR_I},
                {"sfixed32", kUpb_CType_Int32, kUpb_CType_Int32, REPR_I},
                {"int64", kUpb_CType_Int64, kUpb_CType_Int64, REPR_I},
                {"sint64", kUpb_CType_Int64, kUpb_CType_Int64, REPR_I},
                {"sfixed64", kUpb_CType_Int64, kUpb_CType_Int64, REPR_I},
                {"uint32", kUpb_CType_UInt32, kUpb_CType_UInt32, REPR_U},
                {"fixed32", kUpb_CType_UInt32, kUpb_CType_UInt32, REPR_U},
                {"uint64", kUpb_CType_UInt64, kUpb_CType_UInt64, REPR_U},
                {"fixed64", kUpb_CType_UInt64, kUpb_CType_UInt64, REPR_U}};
    bool matched = false;
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
        if (strcmp(kind, nums[i].kind) == 0) {
            if (ct == nums[i].ct1 || ct == nums[i].ct2) {
                out->kind = R_NUM;
                compile_num(cc, r, rm, kind, nums[i].repr, false, &out->u.num);
                matched = true;
            }
            break;
        }
    if (!matched && strcmp(kind, "bool") == 0 && ct == kUpb_CType_Bool) {
        static const char *const handled[] = {"const", NULL};
        if (has(r, rm, "const")) {
            out->kind = R_BOOL;
            out->bool_const = get(r, rm, "const").bool_val;
        }
        check_handled(cc, r, rm, kind, handled);
        matched = true;
    } else if (!matched && (strcmp(kind, "string") == 0 || strcmp(kind, "bytes") == 0) &&
               ct == (strcmp(kind, "string") == 0 ? kUpb_CType_String : kUpb_CType_Bytes)) {
        out->kind = R_STR;
        compile_str(cc, r, rm, kind, strcmp(kind, "bytes") == 0, &out->u.str);
        matched = true;
    } else if (!matched && strcmp(kind, "enum") == 0 && ct == kUpb_CType_Enum) {
        static const char *const handled[] = {"const", "defined_only", "in", "not_in", NULL};
        out->kind = R_ENUM;
        enum_rule_t *e = &out->u.en;
        e->e = upb_FieldDef_EnumSubDef(f);
        for (int k = 0; k < upb_EnumDef_ValueCount(e->e); k++) {
            int32_t number = upb_EnumValueDef_Number(upb_EnumDef_Value(e->e, k));
            if (number >= 0 && number < 256)
                e->defined[number >> 6] |= (uint64_t)1 << (number & 63);
        }
        if ((e->has_const = has(r, rm, "const")))
            e->c = get(r, rm, "const").int32_val;
        e->defined_only = has(r, rm, "defined_only") && get(r, rm, "defined_only").bool_val;
        size_t n;
        num_t *in = num_list(c, r, rm, "in", &n);
        e->in = ekg_proto_alloc(c->arena, (n + 1) * sizeof(int32_t));
        for (e->nin = 0; e->nin < n; e->nin++)
            e->in[e->nin] = (int32_t)in[e->nin].i;
        num_t *not_in = num_list(c, r, rm, "not_in", &n);
        e->not_in = ekg_proto_alloc(c->arena, (n + 1) * sizeof(int32_t));
        for (e->nnot_in = 0; e->nnot_in < n; e->nnot_in++)
            e->not_in[e->nnot_in] = (int32_t)not_in[e->nnot_in].i;
        check_handled(cc, r, rm, kind, handled);
        matched = true;
    } else if (!matched && strcmp(kind, "any") == 0 && sub && wk != kUpb_WellKnown_Any) {
        /* Envoy puts `any: {required: true}` on a few plain message fields (ExtensionConfigSource's
         * config_source): taken as the message being required, the only reading that cannot let a NACK by. */
        static const char *const handled[] = {"required", NULL};
        out->required = out->required || (has(r, rm, "required") && get(r, rm, "required").bool_val);
        check_handled(cc, r, rm, "any (on a message that is not an Any)", handled);
        matched = true;
    } else if (!matched && strcmp(kind, "any") == 0 && wk == kUpb_WellKnown_Any) {
        static const char *const handled[] = {"required", "in", "not_in", NULL};
        out->kind = R_ANY;
        out->required = out->required || (has(r, rm, "required") && get(r, rm, "required").bool_val);
        out->u.any.in = str_list(c, r, rm, "in", &out->u.any.nin);
        out->u.any.not_in = str_list(c, r, rm, "not_in", &out->u.any.nnot_in);
        check_handled(cc, r, rm, kind, handled);
        matched = true;
    } else if (!matched && ((strcmp(kind, "duration") == 0 && wk == kUpb_WellKnown_Duration) ||
                            (strcmp(kind, "timestamp") == 0 && wk == kUpb_WellKnown_Timestamp))) {
        out->kind = R_NUM;
        out->required = out->required || (has(r, rm, "required") && get(r, rm, "required").bool_val);
        compile_num(cc, r, rm, kind, REPR_T, wk == kUpb_WellKnown_Timestamp, &out->u.num);
        matched = true;
    }
    if (!matched) {
        char name[96];
        snprintf(name, sizeof(name), "%s (on a field of another type)", kind);
        unsupported(cc, name);
    }
    return out->kind != R_NONE || out->required || out->skip ? out : NULL;
}

static void compile_field(compiler_t *cc, const upb_FieldDef *f, field_rules_t *out)
{
    decode_ctx_t d = {cc->c->arena, cc->rules_def, NULL};
    each_option((const upb_Message *)upb_FieldDef_Options(f), EXT_RULES, decode_found, &d);
    if (!d.msg)
        return;
    cc->where = upb_FieldDef_FullName(f);
    cc->c->rules++;
    const upb_MessageDef *m = cc->rules_def;
    if (upb_FieldDef_IsMap(f)) {
        if (has(d.msg, m, "map"))
            out->map =
                compile_map(cc, get(d.msg, m, "map").msg_val, upb_FieldDef_MessageSubDef(rf(m, "map")), f);
        else if (upb_Message_WhichOneof(d.msg, upb_MessageDef_FindOneofByName(m, "type")))
            unsupported(cc, "a scalar rule on a map field");
        if (has(d.msg, m, "message"))
            unsupported(cc, "message (on a map field)");
    } else if (upb_FieldDef_IsRepeated(f)) {
        if (has(d.msg, m, "repeated"))
            out->rep = compile_rep(cc, get(d.msg, m, "repeated").msg_val,
                                   upb_FieldDef_MessageSubDef(rf(m, "repeated")), f);
        else if (upb_Message_WhichOneof(d.msg, upb_MessageDef_FindOneofByName(m, "type")))
            unsupported(cc, "a scalar rule on a repeated field");
        if (has(d.msg, m, "message"))
            unsupported(cc, "message (on a repeated field)");
    } else {
        out->value = compile_value(cc, d.msg, f, false);
    }
}

static int cmp_plans(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)(*(msg_plan_t *const *)a)->m, y = (uintptr_t)(*(msg_plan_t *const *)b)->m;
    return x < y ? -1 : x > y;
}

/* A type URL's hash: its length and its last 24 bytes (type URLs share their long prefixes), FNV-1a. */
static uint64_t url_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL ^ n;
    for (size_t i = n > 24 ? n - 24 : 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* The active plan of an Any's payload type by its type URL, when the URL has the usual prefix; NULL: not one
 * (the caller then asks the pool). */
static const msg_plan_t *find_url(const struct compiled *c, upb_StringView url)
{
    if (!c->nurls_cap)
        return NULL;
    uint64_t h = url_hash(url.data, url.size);
    for (size_t i = h & (c->nurls_cap - 1);; i = (i + 1) & (c->nurls_cap - 1)) {
        const struct url_slot *u = &c->urls[i];
        if (!u->url)
            return NULL;
        if (u->hash == h && u->len == url.size && (!url.size || memcmp(u->url, url.data, url.size) == 0))
            return u->plan;
    }
}

static const msg_plan_t *find_plan(const struct compiled *c, const upb_MessageDef *m)
{
    size_t lo = 0, hi = c->nplans;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->plans[mid]->m == m)
            return c->plans[mid];
        if ((uintptr_t)c->plans[mid]->m < (uintptr_t)m)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

typedef struct collect {
    const upb_FileDef **files;
    size_t nfiles, capfiles;
    msg_plan_t **plans;
    size_t nplans, capplans;
    upb_Arena *arena;
} collect_t;

static void collect_message(collect_t *k, const upb_MessageDef *m)
{
    msg_plan_t *p = ekg_proto_alloc(k->arena, sizeof(*p));
    memset(p, 0, sizeof(*p));
    p->m = m;
    p->mt = upb_MessageDef_MiniTable(m);
    EKG_ARRAY_PUSH(k->plans, k->nplans, k->capplans, p);
    for (int i = 0; i < upb_MessageDef_NestedMessageCount(m); i++)
        collect_message(k, upb_MessageDef_NestedMessage(m, i));
}

static void collect_file(collect_t *k, const upb_FileDef *f)
{
    for (size_t i = 0; i < k->nfiles; i++)
        if (k->files[i] == f)
            return;
    EKG_ARRAY_PUSH(k->files, k->nfiles, k->capfiles, f);
    for (int i = 0; i < upb_FileDef_DependencyCount(f); i++)
        collect_file(k, upb_FileDef_Dependency(f, i));
    for (int i = 0; i < upb_FileDef_TopLevelMessageCount(f); i++)
        collect_message(k, upb_FileDef_TopLevelMessage(f, i));
}

static wkt_t wkt_of(const upb_MessageDef *m)
{
    switch (upb_MessageDef_WellKnownType(m)) {
    case kUpb_WellKnown_Duration:
        return WKT_DURATION;
    case kUpb_WellKnown_Timestamp:
        return WKT_TIMESTAMP;
    case kUpb_WellKnown_Any:
        return WKT_ANY;
    default:
        return is_wrapper(m) ? WKT_WRAPPER : WKT_NONE;
    }
}

/* The message type a field's values have (a map's value type), or NULL. */
static const upb_MessageDef *value_type(const upb_FieldDef *f)
{
    if (upb_FieldDef_IsMap(f)) {
        const upb_FieldDef *v = upb_MessageDef_FindFieldByNumber(upb_FieldDef_MessageSubDef(f), 2);
        return upb_FieldDef_CType(v) == kUpb_CType_Message ? upb_FieldDef_MessageSubDef(v) : NULL;
    }
    return upb_FieldDef_CType(f) == kUpb_CType_Message ? upb_FieldDef_MessageSubDef(f) : NULL;
}

/* Whether values of type m need a walk of their own (WKT checks, Any payloads, or an active plan). */
static bool type_active(const struct compiled *c, const upb_MessageDef *m)
{
    wkt_t w = wkt_of(m);
    if (w == WKT_DURATION || w == WKT_TIMESTAMP || w == WKT_ANY)
        return true;
    const msg_plan_t *p = find_plan(c, m);
    return p && p->active;
}

typedef struct vctx vctx_t;
typedef struct xvalue xvalue_t;
static bool check_rule(vctx_t *c, const value_rule_t *r, const vtype_t *t, const xvalue_t *x);
static bool default_passes(const field_plan_t *fp);
static int wire_type_of(upb_FieldType ft);

/*
 * Whether the wire walk must look at fp at the end of its message: a list with a length rule, a map that
 * must have pairs, a required field, or a proto3 scalar whose default breaks its rules (a string with
 * min_len 1). Any other field is fine when it is not on the wire.
 */
static bool absence_matters(const field_plan_t *fp)
{
    switch (fp->shape) {
    case F_REPEATED:
        return fp->rep && (fp->rep->has_min || fp->rep->has_max);
    case F_MAP:
        return fp->map && !fp->map->ignore_empty && fp->map->has_min && fp->map->min > 0;
    case F_SINGULAR:
        if (!fp->rule || fp->mf->presence < 0)
            return false;
        return fp->mf->presence > 0 ? fp->rule->required : !default_passes(fp);
    }
    return false;
}

static vtype_t vtype_of(const upb_FieldDef *f)
{
    vtype_t t = {.ct = upb_FieldDef_CType(f), .ft = upb_FieldDef_Type(f)};
    t.utf8 = upb_FieldDef_MiniTable(f)->descriptortype == kUpb_FieldType_String;
    t.closed_enum = t.ct == kUpb_CType_Enum && upb_FileDef_Syntax(upb_FieldDef_File(f)) == kUpb_Syntax_Proto2;
    if (t.ct == kUpb_CType_Message) {
        t.sub = upb_FieldDef_MessageSubDef(f);
        t.wkt = wkt_of(t.sub);
        if (t.wkt == WKT_WRAPPER) {
            const upb_FieldDef *vf = upb_MessageDef_FindFieldByNumber(t.sub, 1);
            t.wrap = upb_FieldDef_MiniTable(vf);
            t.wrap_ct = upb_FieldDef_CType(vf);
            t.wrap_ft = upb_FieldDef_Type(vf);
            t.utf8 = t.wrap->descriptortype == kUpb_FieldType_String;
        }
    }
    return t;
}

void ekg_validate_compile(const upb_DefPool *pool, const upb_FileDef *const *files, size_t n)
{
    ekg_validate_free();
    struct compiled *c = NULL;
    upb_Arena *arena = ekg_proto_arena_new();
    c = ekg_proto_alloc(arena, sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->arena = arena;
    c->pool = pool;
    compiler_t cc = {c, upb_DefPool_FindMessageByName(pool, "validate.FieldRules"), ""};
    collect_t k = {.arena = arena};
    for (size_t i = 0; i < n; i++)
        if (files[i])
            collect_file(&k, files[i]);
    free(k.files);
    c->plans = ekg_proto_alloc(arena, (k.nplans ? k.nplans : 1) * sizeof(*c->plans));
    memcpy(c->plans, k.plans, k.nplans * sizeof(*c->plans));
    c->nplans = k.nplans;
    free(k.plans);
    qsort(c->plans, c->nplans, sizeof(*c->plans), cmp_plans);

    /* Rules of each message type. */
    for (size_t i = 0; i < c->nplans && cc.rules_def; i++) {
        msg_plan_t *p = c->plans[i];
        const upb_MessageDef *m = p->m;
        each_option((const upb_Message *)upb_MessageDef_Options(m), EXT_RULES, flag_found, &p->disabled);
        each_option((const upb_Message *)upb_MessageDef_Options(m), EXT_IGNORED, flag_found, &p->disabled);
        int nf = upb_MessageDef_FieldCount(m);
        field_rules_t *fr = ekg_proto_alloc(arena, (size_t)(nf ? nf : 1) * sizeof(*fr));
        memset(fr, 0, (size_t)(nf ? nf : 1) * sizeof(*fr));
        p->field_rules = (const void **)fr;
        for (int j = 0; j < nf; j++) {
            compile_field(&cc, upb_MessageDef_Field(m, j), &fr[j]);
            p->direct = p->direct || fr[j].value || fr[j].rep || fr[j].map;
        }
        int no = upb_MessageDef_OneofCount(m);
        p->oneofs = ekg_proto_alloc(arena, (size_t)(no ? no : 1) * sizeof(*p->oneofs));
        p->oneof_slots = ekg_proto_alloc(arena, (size_t)(no ? no : 1) * sizeof(*p->oneof_slots));
        for (int j = 0; j < no; j++) {
            const upb_OneofDef *o = upb_MessageDef_Oneof(m, j);
            bool required = false;
            each_option((const upb_Message *)upb_OneofDef_Options(o), EXT_RULES, flag_found, &required);
            if (required) {
                p->oneof_slots[p->noneofs] = upb_FieldDef_MiniTable(upb_OneofDef_Field(o, 0));
                p->oneofs[p->noneofs++] = o;
                c->rules++;
            }
        }
        p->direct = p->direct || p->noneofs;
    }

    /* Active: rules here, or a field whose values need a walk; to a fixed point (types nest recursively). */
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; i < c->nplans; i++) {
            msg_plan_t *p = c->plans[i];
            if (p->active || p->disabled)
                continue;
            bool active = p->direct;
            for (int j = 0; !active && j < upb_MessageDef_FieldCount(p->m); j++) {
                const upb_MessageDef *vt = value_type(upb_MessageDef_Field(p->m, j));
                active = vt && type_active(c, vt);
            }
            if (active) {
                p->active = changed = true;
                c->active++;
            }
        }
    }

    /* The fields worth a look. */
    for (size_t i = 0; i < c->nplans; i++) {
        msg_plan_t *p = c->plans[i];
        const field_rules_t *fr = (const field_rules_t *)p->field_rules;
        int nf = upb_MessageDef_FieldCount(p->m);
        p->fields = ekg_proto_alloc(arena, (size_t)(nf ? nf : 1) * sizeof(*p->fields));
        for (int j = 0; p->active && fr && j < nf; j++) {
            const upb_FieldDef *f = upb_MessageDef_Field(p->m, j);
            field_plan_t fp = {.f = f,
                               .mf = upb_FieldDef_MiniTable(f),
                               .shape = upb_FieldDef_IsMap(f)        ? F_MAP
                                        : upb_FieldDef_IsRepeated(f) ? F_REPEATED
                                                                     : F_SINGULAR,
                               .rule = fr[j].value,
                               .rep = fr[j].rep,
                               .map = fr[j].map};
            if (fp.shape == F_MAP) {
                fp.key_f = upb_MessageDef_FindFieldByNumber(upb_FieldDef_MessageSubDef(f), 1);
                fp.val_f = upb_MessageDef_FindFieldByNumber(upb_FieldDef_MessageSubDef(f), 2);
                fp.kt = vtype_of(fp.key_f);
                fp.vt = vtype_of(fp.val_f);
            } else {
                fp.vt = vtype_of(f);
            }
            if (fp.vt.sub) {
                const msg_plan_t *sp = find_plan(c, fp.vt.sub);
                fp.sub = sp && sp->active ? sp : NULL;
            }
            fp.walk =
                fp.sub || fp.vt.wkt == WKT_DURATION || fp.vt.wkt == WKT_TIMESTAMP || fp.vt.wkt == WKT_ANY;
            fp.skip_unset = fp.shape == F_SINGULAR && fp.mf->presence != 0 &&
                            !(fp.rule && fp.rule->required && fp.mf->presence > 0);
            if (fp.rule || fp.rep || fp.map || fp.walk)
                p->fields[p->nfields++] = fp;
        }
        p->field_rules = NULL;
        uint32_t maxnum = 0;
        for (int j = 0; j < nf; j++)
            if (upb_FieldDef_Number(upb_MessageDef_Field(p->m, j)) > maxnum)
                maxnum = upb_FieldDef_Number(upb_MessageDef_Field(p->m, j));
        p->wire_ok =
            maxnum < 4096 && p->nfields <= W_MAX_FIELDS && upb_MessageDef_OneofCount(p->m) <= W_MAX_ONEOFS;
        p->nslots = p->wire_ok ? maxnum + 1 : 0;
        p->noneofs_all = (uint32_t)upb_MessageDef_OneofCount(p->m);
        p->slot_of = ekg_proto_alloc(arena, (p->nslots + 1) * sizeof(*p->slot_of));
        p->oneof_of = ekg_proto_alloc(arena, (p->nslots + 1) * sizeof(*p->oneof_of));
        p->wt_of = ekg_proto_alloc(arena, p->nslots + 1);
        memset(p->wt_of, 0xff, p->nslots + 1);
        memset(p->slot_of, 0xff, (p->nslots + 1) * sizeof(*p->slot_of));
        memset(p->oneof_of, 0xff, (p->nslots + 1) * sizeof(*p->oneof_of));
        for (size_t j = 0; p->wire_ok && j < p->nfields; j++)
            p->slot_of[upb_FieldDef_Number(p->fields[j].f)] = (int16_t)j;
        for (int j = 0; p->wire_ok && j < nf; j++) {
            const upb_OneofDef *o = upb_FieldDef_ContainingOneof(upb_MessageDef_Field(p->m, j));
            p->wt_of[upb_FieldDef_Number(upb_MessageDef_Field(p->m, j))] =
                (uint8_t)wire_type_of(upb_FieldDef_Type(upb_MessageDef_Field(p->m, j)));
            if (o)
                p->oneof_of[upb_FieldDef_Number(upb_MessageDef_Field(p->m, j))] =
                    (int16_t)upb_OneofDef_Index(o);
        }
        p->required_oneof_index = ekg_proto_alloc(arena, (p->noneofs + 1) * sizeof(*p->required_oneof_index));
        for (size_t j = 0; j < p->noneofs; j++)
            p->required_oneof_index[j] = (int16_t)upb_OneofDef_Index(p->oneofs[j]);
        p->after = ekg_proto_alloc(arena, (p->nfields + 1) * sizeof(*p->after));
        for (size_t j = 0; j < p->nfields; j++)
            if (absence_matters(&p->fields[j]))
                p->after[p->nafter++] = (uint16_t)j;
    }
    static const char *const wkts[3] = {"google.protobuf.Duration", "google.protobuf.Timestamp",
                                        "google.protobuf.Any"};
    const upb_MiniTable_Field **slots[3] = {c->dur, c->ts, c->any};
    for (int w = 0; w < 3; w++) {
        const upb_MessageDef *m = upb_DefPool_FindMessageByName(pool, wkts[w]);
        for (int f = 0; m && f < 2; f++)
            slots[w][f] = upb_FieldDef_MiniTable(upb_MessageDef_FindFieldByNumber(m, f + 1));
    }
    size_t nactive = 0;
    for (size_t i = 0; i < c->nplans; i++)
        nactive += c->plans[i]->active;
    for (c->nurls_cap = 16; c->nurls_cap < 2 * nactive; c->nurls_cap *= 2)
        ;
    c->urls = ekg_proto_alloc(arena, c->nurls_cap * sizeof(*c->urls));
    memset(c->urls, 0, c->nurls_cap * sizeof(*c->urls));
    for (size_t i = 0; i < c->nplans; i++) {
        if (!c->plans[i]->active)
            continue;
        const char *name = upb_MessageDef_FullName(c->plans[i]->m);
        size_t len = strlen(EKG_TYPE_URL_PREFIX) + strlen(name);
        char *url = ekg_proto_alloc(arena, len + 1);
        snprintf(url, len + 1, "%s%s", EKG_TYPE_URL_PREFIX, name);
        uint64_t h = url_hash(url, len);
        size_t slot = h & (c->nurls_cap - 1);
        while (c->urls[slot].url)
            slot = (slot + 1) & (c->nurls_cap - 1);
        c->urls[slot] = (struct url_slot){url, len, h, c->plans[i]};
    }
    compiled = c;

    ekg_validate_stats_t st;
    ekg_proto_validate_stats(&st);
    if (!cc.rules_def)
        ekg_warn(
            "validation: validate.FieldRules is not in the protobuf registry: Envoy's rules are not checked");
    else if (st.unsupported)
        ekg_warn(
            "validation: %zu rules on %zu message types compiled; %zu rule parts of kinds ekglue does not "
            "check (docs/config.md, \"Validation\"): %s",
            st.rules, st.messages, st.unsupported, st.unsupported_kinds);
    else
        ekg_debug("validation: %zu rules on %zu message types compiled; every rule kind they use is checked",
                  st.rules, st.messages);
}

void ekg_validate_free(void)
{
    if (compiled)
        upb_Arena_Free(compiled->arena); /* compiled itself lives in the arena */
    compiled = NULL;
}

void ekg_proto_validate_stats(ekg_validate_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!compiled)
        return;
    out->messages = compiled->active;
    out->rules = compiled->rules;
    out->unsupported = compiled->unsupported_total;
    size_t used = 0;
    for (size_t i = 0; i < compiled->nunsupported_kinds && used < sizeof(out->unsupported_kinds); i++) {
        int k = snprintf(out->unsupported_kinds + used, sizeof(out->unsupported_kinds) - used, "%s%s (%zu)",
                         i ? ", " : "", compiled->unsupported[i].kind, compiled->unsupported[i].count);
        used += k > 0 ? (size_t)k : 0;
    }
}

/* --- checking
 * ------------------------------------------------------------------------------------------------ */

/*
 * Reading a message without reflection calls: the field's slot (upb_MiniTable_Field) says where its value and
 * its presence are (a hasbit, or the case of its oneof; upb 1.51's layout, msg_internal.h).
 */
static bool has_field(const upb_Message *msg, const upb_MiniTable_Field *f)
{
    if (f->presence > 0)
        return _upb_hasbit_field(msg, f);
    if (f->presence < 0)
        return _upb_getoneofcase_field(msg, f) == f->number;
    return true;
}

static upb_MessageValue read_field(const upb_Message *msg, const upb_MiniTable_Field *f, upb_CType ct)
{
    upb_MessageValue v;
    memset(&v, 0, sizeof(v));
    const char *p = (const char *)msg + f->offset;
    switch (ct) {
    case kUpb_CType_Bool:
        memcpy(&v.bool_val, p, sizeof(v.bool_val));
        break;
    case kUpb_CType_Float:
    case kUpb_CType_Int32:
    case kUpb_CType_UInt32:
    case kUpb_CType_Enum:
        memcpy(&v.int32_val, p, 4);
        break;
    case kUpb_CType_Int64:
    case kUpb_CType_UInt64:
    case kUpb_CType_Double:
        memcpy(&v.int64_val, p, 8);
        break;
    case kUpb_CType_String:
    case kUpb_CType_Bytes:
        memcpy(&v.str_val, p, sizeof(v.str_val));
        break;
    case kUpb_CType_Message:
        memcpy(&v.msg_val, p, sizeof(v.msg_val));
        break;
    }
    return v;
}

/* The slot of a repeated or map field: its upb_Array or upb_Map, NULL when empty. */
static const void *read_container(const upb_Message *msg, const upb_MiniTable_Field *f)
{
    const void *p;
    memcpy(&p, (const char *)msg + f->offset, sizeof(p));
    return p;
}

/* A Duration or Timestamp (fields f[0] seconds, f[1] nanos) in nanoseconds. */
static nanos_t read_time(const upb_Message *msg, const upb_MiniTable_Field *const f[2])
{
    if (!msg || !f[0])
        return 0;
    return (nanos_t)read_field(msg, f[0], kUpb_CType_Int64).int64_val * NANOS +
           read_field(msg, f[1], kUpb_CType_Int32).int32_val;
}

static upb_StringView any_field(const struct compiled *c, const upb_Message *any, int i)
{
    return c->any[i] ? read_field(any, c->any[i], kUpb_CType_String).str_val
                     : upb_StringView_FromDataAndSize("", 0);
}

/* One step of the walk: like ekg_validate_step_t, with the map key as a value (made text on a violation). */
typedef struct istep {
    const upb_FieldDef *f;
    const upb_OneofDef *o;
    long index;
    const upb_FieldDef *key_f; /* non-NULL: a map entry, key below */
    upb_MessageValue key;
} istep_t;

struct vctx {
    const struct compiled *c;
    ekg_violation_t *v; /* NULL: only whether it passes */
    istep_t steps[EKG_VALIDATE_MAX_DEPTH + 1];
    size_t depth;
    upb_Arena *scratch; /* Any payloads; created on the first one (scratch()) */
    _Alignas(16) char scratch_mem[4096];
};

/* Appends printf output to buf (size cap) at *used, cutting at the end. */
static void append(char *buf, size_t cap, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t cap, size_t *used, const char *fmt, ...)
{
    if (*used >= cap - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *used, cap - *used, fmt, ap);
    va_end(ap);
    if (n > 0)
        *used = *used + (size_t)n < cap - 1 ? *used + (size_t)n : cap - 1;
}

/* A map key as text into buf. */
static void key_text(const upb_FieldDef *kf, upb_MessageValue k, char *buf, size_t cap)
{
    switch (upb_FieldDef_CType(kf)) {
    case kUpb_CType_String:
    case kUpb_CType_Bytes:
        snprintf(buf, cap, "%.*s", (int)k.str_val.size, k.str_val.data);
        break;
    case kUpb_CType_Bool:
        snprintf(buf, cap, "%s", k.bool_val ? "true" : "false");
        break;
    case kUpb_CType_Int32:
    case kUpb_CType_Enum:
        snprintf(buf, cap, "%" PRId32, k.int32_val);
        break;
    case kUpb_CType_Int64:
        snprintf(buf, cap, "%" PRId64, k.int64_val);
        break;
    case kUpb_CType_UInt32:
        snprintf(buf, cap, "%" PRIu32, k.uint32_val);
        break;
    case kUpb_CType_UInt64:
        snprintf(buf, cap, "%" PRIu64, k.uint64_val);
        break;
    default:
        snprintf(buf, cap, "?");
    }
}

/* Records the violation at the current steps, with the rule in words; returns false (the walk stops). */
static bool fail(vctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(vctx_t *c, const char *fmt, ...)
{
    ekg_violation_t *v = c->v;
    if (!v)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->rule, sizeof(v->rule), fmt, ap);
    va_end(ap);
    size_t used = 0, kused = 0;
    v->path[0] = '\0';
    v->nsteps = c->depth;
    for (size_t i = 0; i < c->depth; i++) {
        const istep_t *s = &c->steps[i];
        ekg_validate_step_t *o = &v->steps[i];
        *o = (ekg_validate_step_t){s->f, s->o, s->index, NULL};
        append(v->path, sizeof(v->path), &used, "%s%s", i ? "." : "",
               s->f ? upb_FieldDef_Name(s->f) : upb_OneofDef_Name(s->o));
        if (s->index >= 0)
            append(v->path, sizeof(v->path), &used, "[%ld]", s->index);
        if (s->key_f) {
            char key[256];
            key_text(s->key_f, s->key, key, sizeof(key));
            bool quote = upb_FieldDef_CType(s->key_f) == kUpb_CType_String;
            append(v->path, sizeof(v->path), &used, quote ? "[\"%s\"]" : "[%s]", key);
            size_t n = strlen(key) + 1;
            if (n <= sizeof(v->keys) - kused) {
                o->key = memcpy(v->keys + kused, key, n);
                kused += n;
            }
        }
    }
    return false;
}

static bool push(vctx_t *c, const upb_FieldDef *f)
{
    if (c->depth >= EKG_VALIDATE_MAX_DEPTH)
        return fail(c, "is nested more than %d messages deep", EKG_VALIDATE_MAX_DEPTH);
    c->steps[c->depth++] = (istep_t){f, NULL, -1, NULL, {0}};
    return true;
}

/* --- formatting values --- */

static void fmt_time(nanos_t t, bool timestamp, char *buf, size_t cap)
{
    nanos_t s = t / NANOS, n = t % NANOS;
    if (timestamp) {
        if (n < 0)
            s -= 1, n += NANOS;
        time_t tt = (time_t)s;
        struct tm tm;
        if (s < -62135596800LL || s > 253402300799LL || !gmtime_r(&tt, &tm)) {
            snprintf(buf, cap, "%lld seconds since 1970", (long long)s);
            return;
        }
        size_t k = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
        if (n)
            k += (size_t)snprintf(buf + k, cap - k, ".%09lld", (long long)n);
        snprintf(buf + k, cap - k, "Z");
        return;
    }
    bool neg = t < 0;
    if (neg)
        s = -s, n = -n;
    if (n == 0)
        snprintf(buf, cap, "%s%llds", neg ? "-" : "", (long long)s);
    else if (n % 1000000 == 0)
        snprintf(buf, cap, "%s%lld.%03llds", neg ? "-" : "", (long long)s, (long long)(n / 1000000));
    else if (n % 1000 == 0)
        snprintf(buf, cap, "%s%lld.%06llds", neg ? "-" : "", (long long)s, (long long)(n / 1000));
    else
        snprintf(buf, cap, "%s%lld.%09llds", neg ? "-" : "", (long long)s, (long long)n);
}

static void fmt_num(const num_rule_t *r, num_t v, char *buf, size_t cap)
{
    switch (r->repr) {
    case REPR_I:
        snprintf(buf, cap, "%" PRId64, v.i);
        break;
    case REPR_U:
        snprintf(buf, cap, "%" PRIu64, v.u);
        break;
    case REPR_F:
        snprintf(buf, cap, "%.15g", v.f);
        break;
    case REPR_T:
        fmt_time(tval(v), r->timestamp, buf, cap);
        break;
    }
}

static void fmt_num_list(const num_rule_t *r, const num_t *xs, size_t n, char *buf, size_t cap)
{
    size_t used = 0;
    append(buf, cap, &used, "[");
    for (size_t i = 0; i < n; i++) {
        char one[64];
        fmt_num(r, xs[i], one, sizeof(one));
        append(buf, cap, &used, "%s%s", i ? ", " : "", one);
    }
    append(buf, cap, &used, "]");
}

static void fmt_str_list(const upb_StringView *xs, size_t n, char *buf, size_t cap)
{
    size_t used = 0;
    append(buf, cap, &used, "[");
    for (size_t i = 0; i < n; i++)
        append(buf, cap, &used, "%s\"%.*s\"", i ? ", " : "", (int)xs[i].size, xs[i].data);
    append(buf, cap, &used, "]");
}

/* --- numbers --- */

/* C's own comparisons per representation, so that NaN behaves as in Envoy's generated C++. */
static bool lt(repr_t r, num_t a, num_t b)
{
    return r == REPR_I ? a.i < b.i : r == REPR_U ? a.u < b.u : r == REPR_F ? a.f < b.f : tval(a) < tval(b);
}

static bool le(repr_t r, num_t a, num_t b)
{
    return r == REPR_I   ? a.i <= b.i
           : r == REPR_U ? a.u <= b.u
           : r == REPR_F ? a.f <= b.f
                         : tval(a) <= tval(b);
}

static bool eq(repr_t r, num_t a, num_t b)
{
    return r == REPR_I   ? a.i == b.i
           : r == REPR_U ? a.u == b.u
           : r == REPR_F ? a.f == b.f
                         : tval(a) == tval(b);
}

static bool is_zero(repr_t r, num_t a)
{
    return r == REPR_I ? a.i == 0 : r == REPR_U ? a.u == 0 : r == REPR_F ? a.f == 0 : tval(a) == 0;
}

static nanos_t now_nanos(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (nanos_t)ts.tv_sec * NANOS + ts.tv_nsec;
}

/* PGV's range rules, with its messages (templates/cc/ltgt.go) but for the leading "value". */
static bool check_num(vctx_t *c, const num_rule_t *r, num_t v)
{
    repr_t p = r->repr;
    char a[64], b[64];
    if (r->ignore_empty && is_zero(p, v))
        return true;
    if ((r->has & HAS_CONST) && !eq(p, v, r->c)) {
        fmt_num(r, r->c, a, sizeof(a));
        return fail(c, "must equal %s", a);
    }
    bool has_upper = r->has & (HAS_LT | HAS_LTE), has_lower = r->has & (HAS_GT | HAS_GTE);
    bool upper_incl = !(r->has & HAS_LT), lower_incl = !(r->has & HAS_GT);
    num_t upper = (r->has & HAS_LT) ? r->lt : r->lte, lower = (r->has & HAS_GT) ? r->gt : r->gte;
    /* The bounds are printed only for a message (snprintf would cost more than the whole check). */
#define BOUNDS() (fmt_num(r, upper, a, sizeof(a)), fmt_num(r, lower, b, sizeof(b)))
    if (has_upper && has_lower) {
        bool below_upper = upper_incl ? le(p, v, upper) : lt(p, v, upper);
        bool above_lower = lower_incl ? le(p, lower, v) : lt(p, lower, v);
        if (lt(p, lower, upper)) { /* inside the range */
            if (!(below_upper && above_lower))
                return BOUNDS(), fail(c, "must be inside range %s%s, %s%s", lower_incl ? "[" : "(", b, a,
                                      upper_incl ? "]" : ")");
        } else if (!below_upper && !above_lower) { /* outside of it: the bounds swap their brackets */
            return BOUNDS(), fail(c, "must be outside range %s%s, %s%s", upper_incl ? "(" : "[", a, b,
                                  lower_incl ? ")" : "]");
        }
    } else if (has_upper) {
        if (upper_incl ? !le(p, v, upper) : !lt(p, v, upper))
            return BOUNDS(), fail(c, "must be less than %s%s", upper_incl ? "or equal to " : "", a);
    } else if (has_lower) {
        if (lower_incl ? !le(p, lower, v) : !lt(p, lower, v))
            return BOUNDS(), fail(c, "must be greater than %s%s", lower_incl ? "or equal to " : "", b);
    }
#undef BOUNDS
    if (r->nin) {
        size_t i = 0;
        while (i < r->nin && !eq(p, v, r->in[i]))
            i++;
        if (i == r->nin) {
            char list[200];
            fmt_num_list(r, r->in, r->nin, list, sizeof(list));
            return fail(c, "must be in list %s", list);
        }
    }
    for (size_t i = 0; i < r->nnot_in; i++)
        if (eq(p, v, r->not_in[i])) {
            char list[200];
            fmt_num_list(r, r->not_in, r->nnot_in, list, sizeof(list));
            return fail(c, "must not be in list %s", list);
        }
    if (r->lt_now || r->gt_now || (r->has & HAS_WITHIN)) {
        nanos_t now = now_nanos();
        nanos_t t = tval(v), within = tval(r->within);
        if (r->lt_now && !(t < now))
            return fail(c, "must be less than now");
        if (r->gt_now && !(t > now))
            return fail(c, "must be greater than now");
        if ((r->has & HAS_WITHIN) && (t > now + within || t < now - within)) {
            fmt_time(within, false, a, sizeof(a));
            return fail(c, "must be within %s of now", a);
        }
    }
    return true;
}

/* --- strings --- */

static size_t runes(upb_StringView s)
{
    size_t n = 0;
    for (size_t i = 0; i < s.size; i++)
        n += ((unsigned char)s.data[i] & 0xc0) != 0x80;
    return n;
}

/* memcmp for views, which may be {NULL, 0}: memcmp's arguments must not be NULL even for 0 bytes. */
static int view_cmp(const char *a, const char *b, size_t n)
{
    return n ? memcmp(a, b, n) : 0;
}

/* The end of a view ({NULL, 0} included: no arithmetic on NULL). */
static const char *view_end(upb_StringView v)
{
    return v.size ? v.data + v.size : v.data;
}

static bool starts_with(upb_StringView s, upb_StringView p)
{
    return s.size >= p.size && view_cmp(s.data, p.data, p.size) == 0;
}

static bool contains(upb_StringView s, upb_StringView p)
{
    if (p.size == 0)
        return true;
    for (size_t i = 0; i + p.size <= s.size; i++)
        if (memcmp(s.data + i, p.data, p.size) == 0)
            return true;
    return false;
}

static bool same(upb_StringView a, upb_StringView b)
{
    return a.size == b.size && view_cmp(a.data, b.data, a.size) == 0;
}

/* PGV's hostname: at most 253 characters without a trailing dot, labels of 1-63 letters, digits and '-', not
 * starting or ending with '-'. */
static bool is_hostname(upb_StringView s)
{
    size_t n = s.size;
    if (n && s.data[n - 1] == '.')
        n--;
    if (n == 0 || n > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        char ch = i < n ? s.data[i] : '.';
        if (ch == '.') {
            if (label == 0 || label > 63 || s.data[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        bool ok =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-';
        if (!ok || (label == 0 && ch == '-'))
            return false;
        label++;
    }
    return true;
}

static bool is_ip(upb_StringView s, int family)
{
    char buf[64];
    unsigned char addr[16];
    if (s.size >= sizeof(buf) || memchr(s.data, '\0', s.size))
        return false;
    memcpy(buf, s.data, s.size);
    buf[s.size] = '\0';
    return (family != AF_INET6 && inet_pton(AF_INET, buf, addr) == 1) ||
           (family != AF_INET && inet_pton(AF_INET6, buf, addr) == 1);
}

static bool is_uuid(upb_StringView s)
{
    if (s.size != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s.data[i] != '-' : hexval(s.data[i]) < 0)
            return false;
    }
    return true;
}

#define HEADER_NAME_RE  "^:?[0-9a-zA-Z!#$%&'*+-.^_|~\\x60]+$"
#define HEADER_VALUE_RE "^[^\\u0000-\\u0008\\u000A-\\u001F\\u007F]*$"
#define HEADER_LOOSE_RE "^[^\\u0000\\u000A\\u000D]*$"

static bool header_name_char(unsigned char ch)
{
    /* [0-9a-zA-Z!#$%&'*+-.^_|~`]; "+-." is a range, so ',' is in too */
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '+' && ch <= '.') || strchr("!#$%&'*^_|~`", ch) != NULL;
}

static bool well_known_ok(vctx_t *c, const str_rule_t *r, upb_StringView s)
{
    switch (r->well_known) {
    case WK_NONE:
        return true;
    case WK_HOSTNAME:
        return is_hostname(s) || fail(c, "must be a valid hostname");
    case WK_IP:
        return (r->bytes ? s.size == 4 || s.size == 16 : is_ip(s, 0)) ||
               fail(c, "must be a valid IP address");
    case WK_IPV4:
        return (r->bytes ? s.size == 4 : is_ip(s, AF_INET)) || fail(c, "must be a valid IPv4 address");
    case WK_IPV6:
        return (r->bytes ? s.size == 16 : is_ip(s, AF_INET6)) || fail(c, "must be a valid IPv6 address");
    case WK_ADDRESS:
        return is_ip(s, 0) || is_hostname(s) || fail(c, "must be a valid hostname, or ip address");
    case WK_UUID:
        return is_uuid(s) || fail(c, "must be a valid UUID");
    case WK_HEADER_NAME:
    case WK_HEADER_VALUE:
        break;
    }
    if (!r->strict) {
        for (size_t i = 0; i < s.size; i++)
            if (s.data[i] == '\0' || s.data[i] == '\n' || s.data[i] == '\r')
                return fail(c, "does not match regex pattern \"%s\" (no NUL, CR or LF)", HEADER_LOOSE_RE);
        return true;
    }
    if (r->well_known == WK_HEADER_NAME) {
        size_t i = s.size && s.data[0] == ':' ? 1 : 0;
        bool ok = i < s.size;
        for (; ok && i < s.size; i++)
            ok = header_name_char((unsigned char)s.data[i]);
        return ok || fail(c, "does not match regex pattern \"%s\" (an HTTP header name)", HEADER_NAME_RE);
    }
    for (size_t i = 0; i < s.size; i++) {
        unsigned char ch = (unsigned char)s.data[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return fail(c, "does not match regex pattern \"%s\" (an HTTP header value)", HEADER_VALUE_RE);
    }
    return true;
}

static bool check_str(vctx_t *c, const str_rule_t *r, upb_StringView s)
{
    const char *unit = r->bytes ? "bytes" : "runes";
    if (r->ignore_empty && s.size == 0)
        return true;
    if (r->has_const && !same(s, r->c))
        return fail(c, "must equal \"%.*s\"", (int)r->c.size, r->c.data);
    size_t n = r->bytes ? s.size : runes(s);
    if (r->has_len && n != r->len)
        return fail(c, "length must be %" PRIu64 " %s", r->len, unit);
    if (r->has_min_len && n < r->min_len)
        return fail(c, "length must be at least %" PRIu64 " %s", r->min_len, unit);
    if (r->has_max_len && n > r->max_len)
        return fail(c, "length must be at most %" PRIu64 " %s", r->max_len, unit);
    if (r->has_len_bytes && s.size != r->len_bytes)
        return fail(c, "length must be %" PRIu64 " bytes", r->len_bytes);
    if (r->has_min_bytes && s.size < r->min_bytes)
        return fail(c, "length must be at least %" PRIu64 " bytes", r->min_bytes);
    if (r->has_max_bytes && s.size > r->max_bytes)
        return fail(c, "length must be at most %" PRIu64 " bytes", r->max_bytes);
    if (r->pattern && !re_match(r->pattern, s.data, s.size))
        return fail(c, "does not match regex pattern \"%s\"", r->pattern->text);
    if (r->prefix.data && !starts_with(s, r->prefix))
        return fail(c, "does not have prefix \"%.*s\"", (int)r->prefix.size, r->prefix.data);
    if (r->suffix.data &&
        !(s.size >= r->suffix.size && view_cmp(s.size ? s.data + (s.size - r->suffix.size) : s.data,
                                               r->suffix.data, r->suffix.size) == 0))
        return fail(c, "does not have suffix \"%.*s\"", (int)r->suffix.size, r->suffix.data);
    if (r->contains.data && !contains(s, r->contains))
        return fail(c, "does not contain substring \"%.*s\"", (int)r->contains.size, r->contains.data);
    if (r->not_contains.data && contains(s, r->not_contains))
        return fail(c, "contains substring \"%.*s\"", (int)r->not_contains.size, r->not_contains.data);
    if (r->nin) {
        size_t i = 0;
        while (i < r->nin && !same(s, r->in[i]))
            i++;
        if (i == r->nin) {
            char list[200];
            fmt_str_list(r->in, r->nin, list, sizeof(list));
            return fail(c, "must be in list %s", list);
        }
    }
    for (size_t i = 0; i < r->nnot_in; i++)
        if (same(s, r->not_in[i])) {
            char list[200];
            fmt_str_list(r->not_in, r->nnot_in, list, sizeof(list));
            return fail(c, "must not be in list %s", list);
        }
    return well_known_ok(c, r, s);
}

/* --- values --- */

static num_t num_value(upb_CType ct, upb_MessageValue v)
{
    num_t n = {0};
    switch (ct) {
    case kUpb_CType_Int32:
    case kUpb_CType_Enum:
        n.i = v.int32_val;
        break;
    case kUpb_CType_Int64:
        n.i = v.int64_val;
        break;
    case kUpb_CType_UInt32:
        n.u = v.uint32_val;
        break;
    case kUpb_CType_UInt64:
        n.u = v.uint64_val;
        break;
    case kUpb_CType_Float:
        n.f = v.float_val;
        break;
    case kUpb_CType_Double:
        n.f = v.double_val;
        break;
    default:
        break;
    }
    return n;
}

/*
 * A value as the rules see it: a scalar (a wrapper's inner value), a Duration or Timestamp in nanoseconds, or
 * an Any's type URL. Read from a upb message (xvalue_of) or from the wire (the wire walk below).
 */
struct xvalue {
    upb_CType ct; /* of v; kUpb_CType_Message: t or url holds the value */
    upb_MessageValue v;
    nanos_t t;    /* Durations, Timestamps */
    int64_t secs; /* ... as written */
    int32_t nanos;
    upb_StringView url;   /* Any */
    upb_StringView value; /* Any: the payload's bytes (wire walk only) */
};

#define WFAIL(...) (fail(c, __VA_ARGS__), W_FAIL)

/* The rules r on a value that is there. */
static bool check_rule(vctx_t *c, const value_rule_t *r, const vtype_t *t, const xvalue_t *x)
{
    upb_MessageValue v = x->v;
    switch (r->kind) {
    case R_NONE:
        return true;
    case R_BOOL:
        return v.bool_val == r->bool_const || fail(c, "must equal %s", r->bool_const ? "true" : "false");
    case R_STR:
        return check_str(c, &r->u.str, v.str_val);
    case R_NUM:
        return check_num(c, &r->u.num, x->ct == kUpb_CType_Message ? tnum(x->t) : num_value(x->ct, v));
    case R_ENUM: {
        const enum_rule_t *e = &r->u.en;
        int32_t n = v.int32_val;
        if (e->has_const && n != e->c)
            return fail(c, "must equal %" PRId32, e->c);
        bool defined = n >= 0 && n < 256 ? (e->defined[n >> 6] >> (n & 63)) & 1
                                         : upb_EnumDef_FindValueByNumber(e->e, n) != NULL;
        if (e->defined_only && !defined)
            return fail(c, "must be one of the defined enum values (got %" PRId32 ")", n);
        if (e->nin) {
            size_t i = 0;
            while (i < e->nin && e->in[i] != n)
                i++;
            if (i == e->nin)
                return fail(c, "must be in list of %zu values (got %" PRId32 ")", e->nin, n);
        }
        for (size_t i = 0; i < e->nnot_in; i++)
            if (e->not_in[i] == n) {
                const upb_EnumValueDef *ev = upb_EnumDef_FindValueByNumber(e->e, n);
                return fail(c, "must not be in list (got %s)",
                            ev ? upb_EnumValueDef_Name(ev) : "a listed value");
            }
        return true;
    }
    case R_ANY: {
        const any_rule_t *a = &r->u.any;
        if (a->nin) {
            size_t i = 0;
            while (i < a->nin && !same(x->url, a->in[i]))
                i++;
            if (i == a->nin) {
                char list[200];
                fmt_str_list(a->in, a->nin, list, sizeof(list));
                return fail(c, "type URL must be in list %s", list);
            }
        }
        for (size_t i = 0; i < a->nnot_in; i++)
            if (same(x->url, a->not_in[i])) {
                char list[200];
                fmt_str_list(a->not_in, a->nnot_in, list, sizeof(list));
                return fail(c, "type URL must not be in list %s", list);
            }
        return true;
    }
    }
    (void)t;
    return true;
}

/*
 * The rules of one value of type t (a singular field's own value, an element, a map key or value), from a
 * upb message. set: whether a value is there (false only for unset singular fields with presence).
 */
static bool check_value(vctx_t *c, const value_rule_t *r, const vtype_t *t, upb_MessageValue v, bool set)
{
    if (!r)
        return true;
    if (!set)
        return !r->required || fail(c, "is required");
    xvalue_t x; /* only what the rule kind reads is set: zeroing all of it costs more than the check */
    x.ct = t->ct;
    x.v = v;
    if (t->wrap) { /* rules on a wrapper apply to its value */
        x.v = read_field(v.msg_val, t->wrap, t->wrap_ct);
        x.ct = t->wrap_ct;
    } else if (t->wkt == WKT_DURATION || t->wkt == WKT_TIMESTAMP) {
        x.t = read_time(v.msg_val, t->wkt == WKT_TIMESTAMP ? c->c->ts : c->c->dur);
    } else if (t->wkt == WKT_ANY) {
        x.url = any_field(c->c, v.msg_val, 0);
    }
    return check_rule(c, r, t, &x);
}

/* The walk's scratch arena (Any payloads), made on first use: its first block on the walk's stack. */
static upb_Arena *scratch(vctx_t *c)
{
    if (!c->scratch) {
        c->scratch = upb_Arena_Init(c->scratch_mem, sizeof(c->scratch_mem), &upb_alloc_global);
        if (!c->scratch)
            ekg_oom(0);
    }
    return c->scratch;
}

/*
 * The payload of Any msg decoded into the walk's scratch arena: *pm its type and *payload the message, both
 * NULL when the pool does not know the type. False (with *pm set) when the bytes do not decode.
 */
static bool any_payload(vctx_t *c, const upb_Message *msg, const upb_MessageDef **pm,
                        const upb_Message **payload)
{
    upb_StringView url = any_field(c->c, msg, 0);
    upb_StringView value = any_field(c->c, msg, 1);
    size_t start = url.size;
    while (start && url.data[start - 1] != '/')
        start--;
    *payload = NULL;
    *pm =
        upb_DefPool_FindMessageByNameWithSize(c->c->pool, url.size ? url.data + start : "", url.size - start);
    if (!*pm)
        return true;
    /* Any bytes at all may be in a payload: decoded as a peer's (ekg_proto_decode_peer), which refuses what
     * upb 1.51 mishandles. */
    upb_Message *p = NULL;
    if (ekg_proto_decode_peer(value.size ? value.data : "", value.size, upb_MessageDef_MiniTable(*pm), 0,
                              scratch(c), &p, NULL) != EKG_OK)
        return false;
    *payload = p;
    return true;
}

static bool walk_message(vctx_t *c, const upb_Message *msg, const msg_plan_t *p);

/* The checks of a message value's own: well-known types, Any payloads, and its fields. */
static bool walk_value(vctx_t *c, const field_plan_t *fp, const value_rule_t *r, const upb_Message *msg)
{
    if (!msg || (r && r->skip))
        return true;
    switch (fp->vt.wkt) {
    case WKT_DURATION: {
        if (!c->c->dur[0])
            return true;
        int64_t s = read_field(msg, c->c->dur[0], kUpb_CType_Int64).int64_val;
        int32_t n = read_field(msg, c->c->dur[1], kUpb_CType_Int32).int32_val;
        if (s < 0 || n < 0)
            return fail(c,
                        "must not be negative (Envoy checks every Duration: \"Expected positive duration\")");
        if (s > MAX_DURATION || n > 999999999)
            return fail(
                c, "is out of range (Envoy checks every Duration: at most %llds, nanos at most 999999999)",
                (long long)MAX_DURATION);
        return true;
    }
    case WKT_TIMESTAMP: {
        if (!c->c->ts[0])
            return true;
        int64_t s = read_field(msg, c->c->ts[0], kUpb_CType_Int64).int64_val;
        int32_t n = read_field(msg, c->c->ts[1], kUpb_CType_Int32).int32_val;
        if (s < -62135596800LL || s > 253402300799LL || n < 0 || n > 999999999)
            return fail(c, "is out of range (a Timestamp is from year 1 to 9999, nanos from 0 to 999999999)");
        return true;
    }
    case WKT_ANY: {
        const upb_MessageDef *pm = NULL;
        const upb_Message *payload = NULL;
        if (!any_payload(c, msg, &pm, &payload))
            return fail(c, "is not a valid %s: its bytes do not decode", upb_MessageDef_FullName(pm));
        const msg_plan_t *pp = payload ? find_plan(c->c, pm) : NULL;
        /* An unknown type cannot be checked (docs/config.md, "Validation"). */
        return !pp || !pp->active || walk_message(c, payload, pp);
    }
    default:
        return fp->sub ? walk_message(c, msg, fp->sub) : true;
    }
}

/* Copies of a repeated scalar's elements with their places, sorted to find duplicates in n log n. */
typedef struct item {
    upb_MessageValue v;
    upb_CType ct;
    size_t index;
} item_t;

static int cmp_values(const item_t *x, const item_t *y)
{
    switch (x->ct) {
    case kUpb_CType_String:
    case kUpb_CType_Bytes: {
        size_t n = x->v.str_val.size < y->v.str_val.size ? x->v.str_val.size : y->v.str_val.size;
        int k = n ? memcmp(x->v.str_val.data, y->v.str_val.data, n) : 0;
        return k ? k : (x->v.str_val.size > y->v.str_val.size) - (x->v.str_val.size < y->v.str_val.size);
    }
    case kUpb_CType_Float:
        return (x->v.float_val > y->v.float_val) - (x->v.float_val < y->v.float_val);
    case kUpb_CType_Double:
        return (x->v.double_val > y->v.double_val) - (x->v.double_val < y->v.double_val);
    case kUpb_CType_Bool:
        return (x->v.bool_val > y->v.bool_val) - (x->v.bool_val < y->v.bool_val);
    case kUpb_CType_UInt32:
    case kUpb_CType_UInt64: {
        num_t p = num_value(x->ct, x->v), q = num_value(x->ct, y->v);
        return (p.u > q.u) - (p.u < q.u);
    }
    default: {
        num_t p = num_value(x->ct, x->v), q = num_value(x->ct, y->v);
        return (p.i > q.i) - (p.i < q.i);
    }
    }
}

static int cmp_items(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    int k = cmp_values(x, y);
    return k ? k : (x->index > y->index) - (x->index < y->index);
}

/* The first element equal to an earlier one, or -1. */
static long duplicate(const upb_Array *arr, upb_CType ct)
{
    size_t n = arr ? upb_Array_Size(arr) : 0;
    if (n < 2)
        return -1;
    item_t *items = ekg_xmalloc(n * sizeof(*items));
    for (size_t i = 0; i < n; i++)
        items[i] = (item_t){upb_Array_Get(arr, i), ct, i};
    qsort(items, n, sizeof(*items), cmp_items);
    long first = -1;
    for (size_t i = 1; i < n; i++) /* in a run of equal values, the second has the smallest index but one */
        if (cmp_values(&items[i - 1], &items[i]) == 0 &&
            (i < 2 || cmp_values(&items[i - 2], &items[i]) != 0) &&
            (first < 0 || items[i].index < (size_t)first))
            first = (long)items[i].index;
    free(items);
    return first;
}

static bool walk_field(vctx_t *c, const upb_Message *msg, const field_plan_t *fp)
{
    istep_t *step = &c->steps[c->depth - 1];
    if (fp->shape == F_MAP) {
        const upb_Map *map = read_container(msg, fp->mf);
        size_t n = map ? upb_Map_Size(map) : 0;
        const map_rule_t *r = fp->map;
        if (r && !(r->ignore_empty && n == 0)) {
            if (r->has_min && n < r->min)
                return fail(c, "must contain at least %" PRIu64 " pair(s)", r->min);
            if (r->has_max && n > r->max)
                return fail(c, "must contain no more than %" PRIu64 " pair(s)", r->max);
        }
        if (!n || (!fp->walk && !(r && (r->keys || r->values))))
            return true;
        for (size_t it = kUpb_Map_Begin; upb_MapIterator_Next(map, &it);) {
            step->key_f = fp->key_f;
            step->key = upb_MapIterator_Key(map, it);
            upb_MessageValue v = upb_MapIterator_Value(map, it);
            if (r && !check_value(c, r->keys, &fp->kt, step->key, true))
                return false;
            if (r && !check_value(c, r->values, &fp->vt, v, true))
                return false;
            if (fp->walk && !walk_value(c, fp, r ? r->values : NULL, v.msg_val))
                return false;
        }
        step->key_f = NULL;
        return true;
    }
    if (fp->shape == F_REPEATED) {
        const upb_Array *arr = read_container(msg, fp->mf);
        size_t n = arr ? upb_Array_Size(arr) : 0;
        const rep_rule_t *r = fp->rep;
        if (r && !(r->ignore_empty && n == 0)) {
            if (r->has_min && n < r->min)
                return fail(c, "must contain at least %" PRIu64 " item(s)", r->min);
            if (r->has_max && n > r->max)
                return fail(c, "must contain no more than %" PRIu64 " item(s)", r->max);
            long dup = r->unique ? duplicate(arr, fp->vt.ct) : -1;
            if (dup >= 0) {
                step->index = dup;
                return fail(c, "repeated value must contain unique items (this one is there before)");
            }
        }
        const value_rule_t *items = r ? r->items : NULL;
        for (size_t i = 0; i < n && (items || fp->walk); i++) {
            step->index = (long)i;
            upb_MessageValue v = upb_Array_Get(arr, i);
            if (!check_value(c, items, &fp->vt, v, true))
                return false;
            if (fp->walk && !walk_value(c, fp, items, v.msg_val))
                return false;
        }
        step->index = -1;
        return true;
    }
    bool set = has_field(msg, fp->mf);
    upb_MessageValue v = {0};
    if (set) {
        v = read_field(msg, fp->mf, fp->vt.ct);
        set = fp->vt.ct != kUpb_CType_Message || v.msg_val; /* a message field with presence but no message */
    }
    if (!set && fp->mf->presence < 0)
        return true; /* PGV checks a oneof's members only when set, `required` included */
    if (!check_value(c, fp->rule, &fp->vt, v, set))
        return false;
    return !set || !fp->walk || walk_value(c, fp, fp->rule, v.msg_val);
}

/* Whether fp has nothing to check in msg: unset without `required`, or an empty list without list rules. */
static bool absent(const upb_Message *msg, const field_plan_t *fp)
{
    switch (fp->shape) {
    case F_SINGULAR:
        if (!fp->skip_unset)
            return false;
        if (!has_field(msg, fp->mf))
            return true;
        return fp->vt.ct == kUpb_CType_Message && !read_field(msg, fp->mf, kUpb_CType_Message).msg_val;
    case F_REPEATED:
        return !fp->rep && !read_container(msg, fp->mf);
    case F_MAP:
        return !fp->map && !read_container(msg, fp->mf);
    }
    return false;
}

static bool walk_message(vctx_t *c, const upb_Message *msg, const msg_plan_t *p)
{
    if (p->disabled)
        return true;
    for (size_t i = 0; i < p->nfields; i++) {
        const field_plan_t *fp = &p->fields[i];
        if (absent(msg, fp))
            continue;
        if (!push(c, fp->f))
            return false;
        if (!walk_field(c, msg, fp))
            return false;
        c->depth--;
    }
    for (size_t i = 0; i < p->noneofs; i++) {
        const upb_OneofDef *o = p->oneofs[i];
        if (_upb_getoneofcase_field(msg, p->oneof_slots[i]) != 0)
            continue;
        if (c->depth >= EKG_VALIDATE_MAX_DEPTH)
            return fail(c, "is nested more than %d messages deep", EKG_VALIDATE_MAX_DEPTH);
        c->steps[c->depth++] = (istep_t){NULL, o, -1, NULL, {0}};
        char names[200];
        size_t used = 0;
        names[0] = '\0';
        for (int k = 0; k < upb_OneofDef_FieldCount(o); k++)
            append(names, sizeof(names), &used, "%s%s", k ? ", " : "",
                   upb_FieldDef_Name(upb_OneofDef_Field(o, k)));
        return fail(c, "is required (set one of %s)", names);
    }
    return true;
}

ekg_err_t ekg_proto_validate(const upb_Message *msg, const upb_MessageDef *m, ekg_violation_t *v)
{
    if (v) {
        v->nsteps = 0;
        v->path[0] = v->rule[0] = '\0';
    }
    const msg_plan_t *p = compiled ? find_plan(compiled, m) : NULL;
    if (!p || !p->active)
        return EKG_OK;
    vctx_t c;
    c.c = compiled;
    c.v = v;
    c.depth = 0;
    c.scratch = NULL;
    bool ok = walk_message(&c, msg, p);
    if (c.scratch)
        upb_Arena_Free(c.scratch);
    return ok ? EKG_OK : EKG_EINVAL;
}

ekg_err_t ekg_proto_validate_bytes(const char *buf, size_t len, const upb_MessageDef *m, ekg_violation_t *v)
{
    /* The message's first block on the stack: most resources need no malloc to be checked. */
    _Alignas(16) char mem[16384];
    upb_Arena *arena = upb_Arena_Init(mem, sizeof(mem), &upb_alloc_global);
    if (!arena)
        ekg_oom(0);
    /* Decoded as a peer's bytes (ekg_proto_decode_peer): callers pass any bytes, and upb 1.51 aborts on some.
     */
    upb_Message *msg = NULL;
    ekg_err_t err;
    if (ekg_proto_decode_peer(len ? buf : "", len, upb_MessageDef_MiniTable(m), kUpb_DecodeOption_AliasString,
                              arena, &msg, NULL) != EKG_OK) {
        err = EKG_EPROTO;
        if (v) {
            v->nsteps = 0;
            v->path[0] = '\0';
            snprintf(v->rule, sizeof(v->rule), "does not decode as %s", upb_MessageDef_FullName(m));
        }
    } else {
        err = ekg_proto_validate(msg, m, v);
    }
    upb_Arena_Free(arena);
    return err;
}

/* --- checking the wire form -----------------------------------------------------------------------------
 *
 * Translation re-checks every ClusterLoadAssignment and Listener it encoded by hand; decoding them into upb
 * messages only to walk them would cost more than the walk. ekg_proto_validate_wire() walks the encoded
 * fields in place along the same plans, with the same checks (check_rule): a field the plan has is read off
 * the wire (scalars, strings, wrappers, Durations, Timestamps, an Any's type URL), sub-messages and Any
 * payloads are walked in place, and what was not on the wire is checked at the end of its message (required
 * fields, proto3 scalars at their default, required oneofs, `min_items` of an absent list). What one pass
 * cannot check as upb would decode it falls back to decoding (ekg_proto_validate_bytes): a singular field or
 * two members of one oneof that come more than once (protobuf merges or replaces them), map fields, `unique`,
 * a wire type that is not the field's, a closed enum's undefined value, bytes that do not parse.
 */

typedef enum { W_OK, W_FAIL, W_FALLBACK } wres_t;

static uint64_t zigzag64(uint64_t n)
{
    return (n >> 1) ^ (uint64_t) - (int64_t)(n & 1);
}

/*
 * A field's tag at *p, as ekg_proto_decode_peer (src/proto/wire.c) takes one: at most 5 bytes, 32 bits, and a
 * field number other than 0. False otherwise (the decoder refuses the bytes).
 */
static bool read_tag(const char **p, const char *end, uint64_t *tag)
{
    const char *start = *p;
    return read_varint(p, end, tag) && *p - start <= 5 && *tag <= UINT32_MAX && (*tag >> 3) != 0;
}

/* Skips a field of wire type wt at *p (its tag read); false when it does not parse or is a group. */
static bool wire_skip(int wt, const char **p, const char *end)
{
    uint64_t n;
    switch (wt) {
    case 0:
        return read_varint(p, end, &n);
    case 1:
        if (end - *p < 8)
            return false;
        *p += 8;
        return true;
    case 2:
        if (!read_varint(p, end, &n) || n > (uint64_t)(end - *p))
            return false;
        *p += n;
        return true;
    case 5:
        if (end - *p < 4)
            return false;
        *p += 4;
        return true;
    default:
        return false;
    }
}

/* The wire type a scalar of descriptor type ft is written with (unpacked). */
static int wire_type_of(upb_FieldType ft)
{
    switch (ft) {
    case kUpb_FieldType_Double:
    case kUpb_FieldType_Fixed64:
    case kUpb_FieldType_SFixed64:
        return 1;
    case kUpb_FieldType_Float:
    case kUpb_FieldType_Fixed32:
    case kUpb_FieldType_SFixed32:
        return 5;
    case kUpb_FieldType_String:
    case kUpb_FieldType_Bytes:
    case kUpb_FieldType_Message:
        return 2;
    case kUpb_FieldType_Group:
        return 3;
    default:
        return 0;
    }
}

/* Reads one scalar of descriptor type ft at *p; false when it does not parse. */
static bool wire_scalar(upb_FieldType ft, const char **p, const char *end, upb_MessageValue *v)
{
    uint64_t n = 0;
    memset(v, 0, sizeof(*v));
    switch (wire_type_of(ft)) {
    case 0:
        if (!read_varint(p, end, &n))
            return false;
        break;
    case 1:
        if (end - *p < 8)
            return false;
        memcpy(&n, *p, 8);
        *p += 8;
        break;
    case 5: {
        uint32_t w;
        if (end - *p < 4)
            return false;
        memcpy(&w, *p, 4);
        *p += 4;
        n = w;
        break;
    }
    case 2:
        if (!read_varint(p, end, &n) || n > (uint64_t)(end - *p))
            return false;
        v->str_val = upb_StringView_FromDataAndSize(*p, (size_t)n);
        *p += n;
        return true;
    default:
        return false;
    }
    switch (ft) {
    case kUpb_FieldType_Double:
    case kUpb_FieldType_Int64:
    case kUpb_FieldType_UInt64:
    case kUpb_FieldType_Fixed64:
    case kUpb_FieldType_SFixed64:
        memcpy(&v->int64_val, &n, 8);
        break;
    case kUpb_FieldType_SInt64:
        v->uint64_val = zigzag64(n);
        break;
    case kUpb_FieldType_SInt32:
        v->int32_val = (int32_t)(uint32_t)zigzag64(n & 0xffffffffu);
        break;
    case kUpb_FieldType_Bool:
        v->bool_val = n != 0;
        break;
    case kUpb_FieldType_Float:
    case kUpb_FieldType_Fixed32:
    case kUpb_FieldType_SFixed32: {
        uint32_t w = (uint32_t)n;
        memcpy(&v->uint32_val, &w, 4);
        break;
    }
    default: /* int32, uint32, enum: truncated, as the decoder does */
        v->uint32_val = (uint32_t)n;
        break;
    }
    return true;
}

static bool valid_utf8(upb_StringView s)
{
    const unsigned char *p = (const unsigned char *)s.data, *end = (const unsigned char *)view_end(s);
    while (end - p >= 8) { /* ASCII, 8 bytes at a time */
        uint64_t w;
        memcpy(&w, p, 8);
        if (w & 0x8080808080808080ULL)
            break;
        p += 8;
    }
    while (p < end) {
        unsigned char c0 = *p++;
        if (c0 < 0x80)
            continue;
        int more = c0 >= 0xf0 ? 3 : c0 >= 0xe0 ? 2 : c0 >= 0xc2 ? 1 : -1;
        if (more < 0 || c0 > 0xf4 || end - p < more)
            return false;
        uint32_t cp = c0 & (0x3f >> more);
        for (int k = 0; k < more; k++, p++) {
            if ((*p & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (*p & 0x3f);
        }
        if ((more == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (more == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
    }
    return true;
}

/*
 * The fields 1 and 2 of a small message at bytes b (a Duration's, Timestamp's, Any's or wrapper's), last one
 * winning as in the decoder; false when it does not parse, a field has another wire type, or (utf8) a field 1
 * is not UTF-8 (the decoder checks every one). ft2 0: there is no field 2.
 */
static bool wire_pair(upb_StringView b, upb_FieldType ft1, upb_FieldType ft2, bool utf8, upb_MessageValue *v1,
                      upb_MessageValue *v2, bool *has1)
{
    const char *p = b.data, *end = view_end(b);
    memset(v1, 0, sizeof(*v1));
    memset(v2, 0, sizeof(*v2));
    *has1 = false;
    while (p < end) {
        uint64_t tag;
        if (!read_tag(&p, end, &tag))
            return false;
        int wt = (int)(tag & 7);
        uint64_t num = tag >> 3;
        if ((num == 1 || (num == 2 && ft2)) && wt != wire_type_of(num == 1 ? ft1 : ft2))
            return false;
        if (num == 1) {
            if (!wire_scalar(ft1, &p, end, v1) || (utf8 && !valid_utf8(v1->str_val)))
                return false;
            *has1 = true;
        } else if (num == 2 && ft2) {
            if (!wire_scalar(ft2, &p, end, v2))
                return false;
        } else if (!wire_skip(wt, &p, end)) {
            return false;
        }
    }
    return true;
}

static wres_t wire_message(vctx_t *c, upb_StringView b, const msg_plan_t *p);
static wres_t wire_scan(const upb_MiniTable *mt, upb_StringView b, bool map_entry, int depth);

/* Extracts the value the rules see from a message value's bytes (wrapper, Duration, Timestamp, Any). */
static wres_t wire_xvalue(const vtype_t *t, upb_StringView b, xvalue_t *x)
{
    upb_MessageValue v1, v2;
    bool has1;
    x->ct = kUpb_CType_Message;
    if (t->wrap) {
        if (!wire_pair(b, t->wrap_ft, 0, t->utf8, &v1, &v2, &has1))
            return W_FALLBACK;
        x->ct = t->wrap_ct;
        x->v = v1;
    } else if (t->wkt == WKT_DURATION || t->wkt == WKT_TIMESTAMP) {
        if (!wire_pair(b, kUpb_FieldType_Int64, kUpb_FieldType_Int32, false, &v1, &v2, &has1))
            return W_FALLBACK;
        x->secs = v1.int64_val;
        x->nanos = v2.int32_val;
        x->t = (nanos_t)x->secs * NANOS + x->nanos;
    } else if (t->wkt == WKT_ANY) {
        if (!wire_pair(b, kUpb_FieldType_String, kUpb_FieldType_Bytes, true, &v1, &v2, &has1))
            return W_FALLBACK;
        x->url = v1.str_val;
        x->value = v2.str_val;
    }
    return W_OK;
}

/* A message value at bytes b of field fp: its rules (r), its well-known type's checks, its own fields. */
static wres_t wire_value_message(vctx_t *c, const field_plan_t *fp, const value_rule_t *r, upb_StringView b)
{
    const vtype_t *t = &fp->vt;
    xvalue_t x; /* wire_xvalue sets what the rules read */
    x.ct = kUpb_CType_Message;
    wres_t w = wire_xvalue(t, b, &x);
    if (w != W_OK)
        return w;
    if (r && !check_rule(c, r, t, &x))
        return W_FAIL;
    if (r && r->skip)
        return W_OK;
    switch (t->wkt) {
    case WKT_DURATION:
        if (x.secs < 0 || x.nanos < 0)
            return WFAIL(
                "must not be negative (Envoy checks every Duration: \"Expected positive duration\")");
        if (x.secs > MAX_DURATION || x.nanos > 999999999)
            return WFAIL(
                "is out of range (Envoy checks every Duration: at most %llds, nanos at most 999999999)",
                (long long)MAX_DURATION);
        return W_OK;
    case WKT_TIMESTAMP:
        if (x.secs < -62135596800LL || x.secs > 253402300799LL || x.nanos < 0 || x.nanos > 999999999)
            return WFAIL("is out of range (a Timestamp is from year 1 to 9999, nanos from 0 to 999999999)");
        return W_OK;
    case WKT_ANY: {
        const msg_plan_t *pp = find_url(c->c, x.url);
        if (!pp) { /* another prefix, or a type without checks */
            size_t start = x.url.size;
            while (start && x.url.data[start - 1] != '/')
                start--;
            const upb_MessageDef *pm = upb_DefPool_FindMessageByNameWithSize(
                c->c->pool, x.url.size ? x.url.data + start : "", x.url.size - start);
            pp = pm ? find_plan(c->c, pm) : NULL;
        }
        if (!pp || !pp->active)
            return W_OK; /* an unknown type cannot be checked; an inactive one has nothing to check */
        return wire_message(c, x.value, pp);
    }
    default:
        if (fp->sub)
            return wire_message(c, b, fp->sub);
        /* No rule inside (a wrapper's value was read above): only what the decoder would refuse. */
        return t->wrap ? W_OK : wire_scan(upb_MessageDef_MiniTable(t->sub), b, false, (int)c->depth);
    }
}

/* One value of fp (singular, or one element of a list) read at *q from wire type wt. */
static wres_t wire_value(vctx_t *c, const field_plan_t *fp, const value_rule_t *r, int wt, const char **q,
                         const char *end, bool packed)
{
    const vtype_t *t = &fp->vt;
    if (t->ct == kUpb_CType_Message) {
        upb_MessageValue v;
        if (wt != 2 || !wire_scalar(kUpb_FieldType_Bytes, q, end, &v))
            return W_FALLBACK;
        return wire_value_message(c, fp, r, v.str_val);
    }
    if (!packed && wt != wire_type_of(t->ft))
        return W_FALLBACK;
    xvalue_t x;
    x.ct = t->ct;
    if (!wire_scalar(t->ft, q, end, &x.v))
        return W_FALLBACK;
    if (t->utf8 && !valid_utf8(x.v.str_val))
        return W_FALLBACK;
    if (t->closed_enum && !upb_EnumDef_FindValueByNumber(upb_FieldDef_EnumSubDef(fp->f), x.v.int32_val))
        return W_FALLBACK;
    return !r || check_rule(c, r, t, &x) ? W_OK : W_FAIL;
}

/* The default of a proto3 scalar without presence, as the rules see it when it is not on the wire. */
static bool check_default(vctx_t *c, const field_plan_t *fp)
{
    xvalue_t x;
    x.ct = fp->vt.ct;
    memset(&x.v, 0, sizeof(x.v));
    return check_rule(c, fp->rule, &fp->vt, &x);
}

/* Whether a proto3 scalar's default passes its rules (compile time: nothing is recorded). */
static bool default_passes(const field_plan_t *fp)
{
    vctx_t c = {.c = NULL, .v = NULL};
    return check_default(&c, fp);
}

/* The field of mt numbered num, or NULL: the dense ones directly, as upb does first. */
static const upb_MiniTable_Field *mt_field(const upb_MiniTable *mt, uint32_t num)
{
    if (num - 1 < mt->dense_below)
        return &mt->fields[num - 1];
    return upb_MiniTable_FindFieldByNumber(mt, num);
}

/*
 * Whether the decoder takes a field no rule looks at: f (NULL: a number mt does not have) with wire type wt
 * at *q, advanced past it. As ekg_proto_decode_peer and upb would: varints of at most 10 bytes, no groups, a
 * proto3 string in UTF-8, a sub-message (and a map's entries: their key and value only) taken the same way, a
 * packed list whose elements parse.
 */
static bool wire_accepts(const upb_MiniTable *mt, const upb_MiniTable_Field *f, int wt, const char **q,
                         const char *end, int depth)
{
    if (wt != 2)
        return wire_skip(wt, q, end);
    upb_MessageValue v;
    if (!wire_scalar(kUpb_FieldType_Bytes, q, end, &v))
        return false;
    if (!f)
        return true;
    int want = wire_type_of(f->descriptortype);
    if (f->descriptortype == kUpb_FieldType_String)
        return valid_utf8(v.str_val);
    if (f->descriptortype == kUpb_FieldType_Message)
        return wire_scan(mt->subs[f->submsg_index].submsg, v.str_val,
                         upb_FieldMode_Get(f) == kUpb_FieldMode_Map, depth + 1) == W_OK;
    if (want != 2 && upb_FieldMode_Get(f) == kUpb_FieldMode_Array) { /* packed */
        const char *r = v.str_val.data, *rend = view_end(v.str_val);
        upb_MessageValue e;
        while (r < rend)
            if (!wire_scalar((upb_FieldType)f->descriptortype, &r, rend, &e))
                return false;
    }
    return true;
}

/* What the decoder would refuse in a message the plans do not walk (mt: its layout; map_entry: a map's
 * entry, which may hold its key and value only). W_FALLBACK when anything. */
static wres_t wire_scan(const upb_MiniTable *mt, upb_StringView b, bool map_entry, int depth)
{
    if (depth >= W_MAX_DEPTH)
        return W_FALLBACK;
    const char *q = b.data, *end = view_end(b);
    while (q < end) {
        uint64_t tag;
        if (!read_tag(&q, end, &tag))
            return W_FALLBACK;
        int wt = (int)(tag & 7);
        const upb_MiniTable_Field *f = mt_field(mt, (uint32_t)(tag >> 3));
        if (map_entry && (!f || (f->number != 1 && f->number != 2) || wire_type_of(f->descriptortype) != wt))
            return W_FALLBACK;
        if (!wire_accepts(mt, f, wt, &q, end, depth))
            return W_FALLBACK;
    }
    return W_OK;
}

#define SEEN(i)     ((seen[(i) >> 6] >> ((i)&63)) & 1)
#define SET_SEEN(i) (seen[(i) >> 6] |= (uint64_t)1 << ((i)&63))

/*
 * After a violation at *q's field: the rest of the message, for what makes the decoder build another message
 * than the one checked (a singular field to check, or another member of a oneof, given again: protobuf merges
 * or replaces; a map or `unique` field; bytes that do not parse). W_FAIL stands when there is none.
 */
static wres_t wire_lookahead(const msg_plan_t *p, const char *q, const char *end, uint64_t *seen,
                             uint32_t *member)
{
    while (q < end) {
        uint64_t tag;
        if (!read_tag(&q, end, &tag))
            return W_FALLBACK;
        uint64_t num = tag >> 3;
        int idx = num < p->nslots ? p->slot_of[num] : -1;
        int oneof = num < p->nslots && p->wt_of[num] == (tag & 7) ? p->oneof_of[num] : -1;
        if (oneof >= 0 && member[oneof] && member[oneof] != num)
            return W_FALLBACK;
        if (idx >= 0) {
            const field_plan_t *fp = &p->fields[idx];
            if (fp->shape == F_MAP || (fp->rep && fp->rep->unique) || (fp->shape == F_SINGULAR && SEEN(idx)))
                return W_FALLBACK;
            if (fp->shape == F_SINGULAR)
                SET_SEEN(idx);
        }
        if (!wire_skip((int)(tag & 7), &q, end))
            return W_FALLBACK;
    }
    return W_FAIL;
}

static wres_t wire_message(vctx_t *c, upb_StringView b, const msg_plan_t *p)
{
    if (p->disabled)
        return W_OK;
    if (!p->wire_ok)
        return W_FALLBACK;
    uint64_t seen[W_MAX_FIELDS / 64] = {0}; /* per field to check: on the wire (SEEN, SET_SEEN) */
    uint32_t count[W_MAX_FIELDS];
    uint32_t member[W_MAX_ONEOFS]; /* per oneof of the message: the number of the member on the wire; 0 */
    for (uint32_t i = 0; i < p->noneofs_all; i++)
        member[i] = 0;
    const char *q = b.data, *end = view_end(b);
    while (q < end) {
        uint64_t tag;
        if (!read_tag(&q, end, &tag))
            return W_FALLBACK; /* the decoder refuses it */
        int wt = (int)(tag & 7);
        uint64_t num = tag >> 3;
        int idx = num < p->nslots ? p->slot_of[num] : -1;
        int oneof =
            num < p->nslots && p->wt_of[num] == wt ? p->oneof_of[num] : -1; /* else unknown: not set */
        if (oneof >= 0) { /* a second member replaces the first in the decoder */
            if (member[oneof] && member[oneof] != num)
                return W_FALLBACK;
            member[oneof] = (uint32_t)num;
        }
        if (idx < 0) { /* no rule looks at it; still, the decoder must be able to take it */
            if (!wire_accepts(
                    p->mt, num < p->nslots && p->wt_of[num] != 0xff ? mt_field(p->mt, (uint32_t)num) : NULL,
                    wt, &q, end, (int)c->depth))
                return W_FALLBACK;
            continue;
        }
        const field_plan_t *fp = &p->fields[idx];
        if (fp->shape == F_MAP || (fp->rep && fp->rep->unique) || c->depth + 1 >= W_MAX_DEPTH)
            return W_FALLBACK; /* (too deep: the decoder's verdict, whichever it is) */
        if (!push(c, fp->f))
            return W_FAIL;
        wres_t w = W_OK;
        if (fp->shape == F_SINGULAR) {
            if (SEEN(idx))
                return W_FALLBACK; /* merged or replaced by the decoder */
            SET_SEEN(idx);
            w = wire_value(c, fp, fp->rule, wt, &q, end, false);
        } else { /* a list: packed scalars, or one element */
            const value_rule_t *items = fp->rep ? fp->rep->items : NULL;
            if (!SEEN(idx))
                count[idx] = 0;
            SET_SEEN(idx);
            if (wt == 2 && fp->vt.ct != kUpb_CType_Message && fp->vt.ct != kUpb_CType_String &&
                fp->vt.ct != kUpb_CType_Bytes) {
                upb_MessageValue packed;
                if (!wire_scalar(kUpb_FieldType_Bytes, &q, end, &packed))
                    return W_FALLBACK;
                const char *r = packed.str_val.data, *rend = view_end(packed.str_val);
                while (w == W_OK && r < rend) {
                    c->steps[c->depth - 1].index = (long)count[idx]++;
                    w = wire_value(c, fp, items, wire_type_of(fp->vt.ft), &r, rend, true);
                }
            } else {
                c->steps[c->depth - 1].index = (long)count[idx]++;
                w = wire_value(c, fp, items, wt, &q, end, false);
            }
        }
        if (w == W_FAIL) /* unless the rest of the message changes what the decoder would make of it */
            return wire_lookahead(p, q, end, seen, member);
        if (w != W_OK)
            return w;
        c->depth--;
    }
    /* What was not on the wire, and the lists' lengths: the fields absence_matters() chose. */
    for (size_t a = 0; a < p->nafter; a++) {
        size_t j = p->after[a];
        const field_plan_t *fp = &p->fields[j];
        if (fp->shape == F_REPEATED) {
            const rep_rule_t *r = fp->rep;
            uint32_t n = SEEN(j) ? count[j] : 0;
            if (!r || (r->ignore_empty && n == 0))
                continue;
            if (!push(c, fp->f))
                return W_FAIL;
            if (r->has_min && n < r->min)
                return WFAIL("must contain at least %" PRIu64 " item(s)", r->min);
            if (r->has_max && n > r->max)
                return WFAIL("must contain no more than %" PRIu64 " item(s)", r->max);
            c->depth--;
            continue;
        }
        if (fp->shape == F_MAP) { /* one on the wire fell back already */
            const map_rule_t *r = fp->map;
            if (r && !r->ignore_empty && r->has_min && r->min > 0) {
                if (!push(c, fp->f))
                    return W_FAIL;
                return WFAIL("must contain at least %" PRIu64 " pair(s)", r->min);
            }
            continue;
        }
        if (SEEN(j) || fp->shape != F_SINGULAR || !fp->rule)
            continue;
        if (fp->mf->presence < 0)
            continue; /* an unset oneof member: not checked */
        if (!push(c, fp->f))
            return W_FAIL;
        bool ok = fp->mf->presence > 0 ? !fp->rule->required || fail(c, "is required") : check_default(c, fp);
        if (!ok)
            return W_FAIL;
        c->depth--;
    }
    for (size_t i = 0; i < p->noneofs; i++) {
        if (member[p->required_oneof_index[i]])
            continue;
        const upb_OneofDef *o = p->oneofs[i];
        if (c->depth >= EKG_VALIDATE_MAX_DEPTH)
            return WFAIL("is nested more than %d messages deep", EKG_VALIDATE_MAX_DEPTH);
        c->steps[c->depth++] = (istep_t){NULL, o, -1, NULL, {0}};
        char names[200];
        size_t used = 0;
        names[0] = '\0';
        for (int f = 0; f < upb_OneofDef_FieldCount(o); f++)
            append(names, sizeof(names), &used, "%s%s", f ? ", " : "",
                   upb_FieldDef_Name(upb_OneofDef_Field(o, f)));
        fail(c, "is required (set one of %s)", names);
        return W_FAIL;
    }
    return W_OK;
}

ekg_err_t ekg_proto_validate_wire(const char *buf, size_t len, const upb_MessageDef *m, ekg_violation_t *v)
{
    const msg_plan_t *p = compiled ? find_plan(compiled, m) : NULL;
    if (v) {
        v->nsteps = 0;
        v->path[0] = v->rule[0] = '\0';
    }
    if (!p || !p->active)
        return ekg_proto_validate_bytes(buf, len, m, v); /* nothing to check, but whether it decodes */
    vctx_t c;
    c.c = compiled;
    c.v = v;
    c.depth = 0;
    c.scratch = NULL;
    wres_t w = wire_message(&c, upb_StringView_FromDataAndSize(buf, len), p);
    if (w == W_OK)
        return EKG_OK;
    if (w == W_FAIL)
        return EKG_EINVAL;
    return ekg_proto_validate_bytes(buf, len, m, v);
}

/* --- JSON encoding failures
 * --------------------------------------------------------------------------------- */

static bool json_ok(const upb_Message *msg, const upb_MessageDef *m, char *why, size_t cap)
{
    upb_Status status;
    upb_Status_Clear(&status);
    upb_JsonEncode(msg, m, compiled ? compiled->pool : ekg_proto_pool(), 0, NULL, 0, &status);
    if (upb_Status_IsOk(&status))
        return true;
    snprintf(why, cap, "%s", upb_Status_ErrorMessage(&status));
    return false;
}

/* Whether element e (of type vt) fails on its own; then descends into it (Any: into its payload). */
static bool locate_json(vctx_t *c, const upb_Message *msg, const upb_MessageDef *m, const char *why);

static bool fails_json(vctx_t *c, const upb_Message *e, const upb_MessageDef *vt, bool *found)
{
    char why[200];
    if (!e || json_ok(e, vt, why, sizeof(why)))
        return false;
    const upb_MessageDef *pm = NULL;
    const upb_Message *payload = NULL;
    if (upb_MessageDef_WellKnownType(vt) == kUpb_WellKnown_Any && c->c && any_payload(c, e, &pm, &payload) &&
        payload && !json_ok(payload, pm, why, sizeof(why))) {
        *found = locate_json(c, payload, pm, why);
        return true;
    }
    *found = locate_json(c, e, vt, why);
    return true;
}

/* Descends into the set message fields of msg that fail on their own; false once the culprit is recorded. */
static bool locate_json(vctx_t *c, const upb_Message *msg, const upb_MessageDef *m, const char *why)
{
    size_t iter = kUpb_Message_Begin;
    const upb_FieldDef *f;
    upb_MessageValue v;
    bool found = false;
    while (upb_Message_Next(msg, m, NULL, &f, &v, &iter)) {
        const upb_MessageDef *vt = value_type(f);
        if (!vt)
            continue;
        if (!push(c, f))
            return false;
        istep_t *step = &c->steps[c->depth - 1];
        if (upb_FieldDef_IsMap(f)) {
            for (size_t it = kUpb_Map_Begin; upb_MapIterator_Next(v.map_val, &it);) {
                step->key_f = upb_MessageDef_FindFieldByNumber(upb_FieldDef_MessageSubDef(f), 1);
                step->key = upb_MapIterator_Key(v.map_val, it);
                if (fails_json(c, upb_MapIterator_Value(v.map_val, it).msg_val, vt, &found))
                    return found;
            }
            step->key_f = NULL;
        } else if (upb_FieldDef_IsRepeated(f)) {
            for (size_t i = 0; i < upb_Array_Size(v.array_val); i++) {
                step->index = (long)i;
                if (fails_json(c, upb_Array_Get(v.array_val, i).msg_val, vt, &found))
                    return found;
            }
            step->index = -1;
        } else if (fails_json(c, v.msg_val, vt, &found)) {
            return found;
        }
        c->depth--;
    }
    return fail(c, "cannot be written as proto3 JSON (%s)", why);
}

ekg_err_t ekg_proto_locate_json_error(const upb_Message *msg, const upb_MessageDef *m, ekg_violation_t *v)
{
    char why[200];
    if (v) {
        v->nsteps = 0;
        v->path[0] = v->rule[0] = '\0';
    }
    if (json_ok(msg, m, why, sizeof(why)))
        return EKG_OK;
    vctx_t c;
    c.c = compiled;
    c.v = v;
    c.depth = 0;
    c.scratch = NULL;
    locate_json(&c, msg, m, why);
    if (c.scratch)
        upb_Arena_Free(c.scratch);
    return EKG_EINVAL;
}
