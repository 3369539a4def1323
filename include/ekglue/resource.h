/*
 * include/ekglue/resource.h: encoded xDS resources, sorted and versioned sets of them, and immutable
 * snapshots of everything ekglue serves (src/resource/). The currency of every layer above: the translator
 * builds them, the cache publishes snapshots, every xDS stream sends their bytes.
 *
 * An ekg_resource_t is one Envoy resource (a Cluster or a ClusterLoadAssignment) encoded once,
 * deterministically, with the content hash of its bytes. An ekg_resource_set_t is the state of the world of
 * one type: resources sorted by name, never two with the same name, and a version string derived from names
 * and content hashes only, so it is the same across restarts and replicas and changes if and only if the
 * content changed.
 *
 * Both are immutable once built and reference-counted (atomically): the translator, snapshots and every xDS
 * stream hold references to the same bytes; whoever drops the last reference frees them.
 *
 * A snapshot holds one resource set per type (Clusters, ClusterLoadAssignments, proxyless-gRPC Listeners,
 * RouteConfigurations). It never changes once published and is reference-counted; an xDS stream keeps a
 * reference to the snapshot it last looked at.
 * Thread: any.
 */
#ifndef EKGLUE_RESOURCE_H
#define EKGLUE_RESOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "ekglue/error.h"

/* In the order ADS sends them when several change at once (make before break). */
typedef enum {
    EKG_RESOURCE_CLUSTER = 0,
    EKG_RESOURCE_LOAD_ASSIGNMENT,
    EKG_RESOURCE_LISTENER,
    EKG_RESOURCE_ROUTE,
    EKG_RESOURCE__COUNT
} ekg_resource_type_t;

typedef struct ekg_resource ekg_resource_t;
typedef struct ekg_resource_set ekg_resource_set_t;

/* Creates a resource holding copies of name and the encoded bytes; refcount 1, owned by the caller.
 * EKG_EINVAL when type is not a resource type. */
ekg_err_t ekg_resource_new(ekg_resource_type_t type, const char *name, const char *data, size_t len,
                           ekg_resource_t **out);
ekg_resource_t *ekg_resource_ref(ekg_resource_t *r);
void ekg_resource_unref(ekg_resource_t *r); /* NULL is fine */

ekg_resource_type_t ekg_resource_type(const ekg_resource_t *r);
const char *ekg_resource_name(const ekg_resource_t *r);              /* borrowed, lives as long as r */
const char *ekg_resource_data(const ekg_resource_t *r, size_t *len); /* the encoded message, borrowed */
uint64_t ekg_resource_hash(const ekg_resource_t *r);
uint64_t ekg_resource_name_hash(const ekg_resource_t *r);
/*
 * The resource as one `resources` field of a DiscoveryResponse: tag, length and a google.protobuf.Any holding
 * the type URL and the message. Built once at creation; every response that carries the resource sends these
 * bytes. Borrowed.
 */
const char *ekg_resource_response_field(const ekg_resource_t *r, size_t *len);
size_t ekg_resource_response_len(const ekg_resource_t *r);
/* The xDS type URL of a resource type ("type.googleapis.com/envoy.config.cluster.v3.Cluster"). */
const char *ekg_resource_type_url(ekg_resource_type_t type);
/* The type of a type URL; EKG_RESOURCE__COUNT when ekglue does not serve it. */
ekg_resource_type_t ekg_resource_type_from_url(const char *url, size_t len);

/*
 * Builds a set from n resources sorted by name, strictly increasing (so unique; EKG_EINVAL otherwise).
 * Takes a new reference to each resource; the caller keeps its own. The set has refcount 1. prev (may be
 * NULL) is an earlier set of the same type whose unchanged parts are shared rather than copied.
 */
ekg_err_t ekg_resource_set_new(ekg_resource_type_t type, ekg_resource_t *const *items, size_t n,
                               const ekg_resource_set_t *prev, ekg_resource_set_t **out);
ekg_resource_set_t *ekg_resource_set_ref(ekg_resource_set_t *s);
void ekg_resource_set_unref(ekg_resource_set_t *s); /* NULL is fine */

size_t ekg_resource_set_size(const ekg_resource_set_t *s);
ekg_resource_t *ekg_resource_set_at(const ekg_resource_set_t *s, size_t i); /* borrowed */
/* Binary search by name; NULL if absent. Borrowed. */
ekg_resource_t *ekg_resource_set_find(const ekg_resource_set_t *s, const char *name);
/* The set's version: 16 hex digits of the hash over (name, content hash) in order. Borrowed. */
const char *ekg_resource_set_version(const ekg_resource_set_t *s);

/*
 * Every item's response field, concatenated in order: the `resources` of a state-of-the-world response
 * carrying the whole set. Built on first use (any thread; races are resolved), then shared by every stream.
 * Borrowed, lives as long as s.
 */
void ekg_resource_set_response_fields(ekg_resource_set_t *s, const char **data, size_t *len);

/*
 * The same for incremental xDS: every item as one DeltaDiscoveryResponse `resources` field, Resource{version
 * = the content hash in 16 hex digits, resource = the Any, name}, concatenated in order. Built on first use,
 * shared by every delta stream that gets the whole set (a new wildcard subscription). Borrowed, lives as long
 * as s.
 */
void ekg_resource_set_delta_fields(ekg_resource_set_t *s, const char **data, size_t *len);

/*
 * Calls fn for every name whose resource differs between old (may be NULL = empty) and cur: added (before
 * NULL), removed (after NULL) or changed content; in name order. Pages shared by both sets are skipped
 * without looking inside, so the diff of two consecutive versions costs about one page per change.
 */
void ekg_resource_set_diff(const ekg_resource_set_t *old, const ekg_resource_set_t *cur,
                           void (*fn)(void *ctx, const char *name, const ekg_resource_t *before,
                                      const ekg_resource_t *after),
                           void *ctx);

/* --- snapshots ------------------------------------------------------------------------------------------ */

typedef struct ekg_snapshot ekg_snapshot_t;

/* A new snapshot (refcount 1, the caller's) with new references to the sets; a NULL set means empty. */
ekg_snapshot_t *ekg_snapshot_new(ekg_resource_set_t *const sets[EKG_RESOURCE__COUNT]);
ekg_snapshot_t *ekg_snapshot_ref(ekg_snapshot_t *s);
void ekg_snapshot_unref(ekg_snapshot_t *s); /* NULL is fine */
/* The set of one type (never NULL: an empty set when there is none). Borrowed, lives as long as s. */
ekg_resource_set_t *ekg_snapshot_resources(const ekg_snapshot_t *s, ekg_resource_type_t type);
/*
 * The localities the snapshot was built with, for operators (the debug port's /localities): a JSON object
 * {node name: {region, zone, subZone}} as `ekglue dump` prints it. Optional: set it while the caller holds
 * the only reference (before publishing); EKG_EINVAL afterwards or when doc is not an object. Takes ownership
 * of doc, also on error. The cache compares it too: a snapshot whose only change is its localities (a Node
 * relabelled without moving an endpoint) is taken, and pushes nothing since its sets are unchanged.
 */
ekg_err_t ekg_snapshot_set_localities(ekg_snapshot_t *s, cJSON *doc);
/* The localities document, or NULL when none was set. Borrowed, immutable, lives as long as s. */
const cJSON *ekg_snapshot_localities(const ekg_snapshot_t *s);
/*
 * Unix time (seconds) at which the set of type `type` took its version: when the cache made current the first
 * snapshot with that version (an unchanged type keeps the time of the earlier publish). 0 before the snapshot
 * is published. Written by ekg_cache_publish() before the snapshot is visible to other threads.
 */
double ekg_snapshot_version_since(const ekg_snapshot_t *s, ekg_resource_type_t type);
/*
 * Per-place variants. Some resources differ by where the client runs (zone-aware ClusterLoadAssignments:
 * docs/translation.md, "Zone-aware endpoints"). The translator attaches a localizer to a snapshot; a stream
 * then asks for its sets at its place, and gets the same set object as every other stream at a place the
 * localizer does not tell apart from it. Each such set is built on first use (any thread), kept in the
 * snapshot and shared; its version is a content hash like any set's, so replicas agree.
 */
typedef struct ekg_place {
    const char *region, *zone; /* the client's Node.locality; "" when unset */
    const char *node;          /* the Kubernetes Node it runs on (Node.metadata NODE_NAME); "" when unset */
} ekg_place_t;

typedef struct ekg_localizer_ops {
    /* Writes into buf (size bytes, NUL-terminated) a key for the place: places with the same key get the same
     * sets. Returns false when the place gets the snapshot's base sets. The keys must be bounded by the
     * snapshot's content (what clients send cannot make more of them). */
    bool (*key)(const void *ctx, const ekg_place_t *place, char *buf, size_t size);
    /* The set of `type` for places with this key (a new reference), or NULL when it is the base set. hint:
     * the set built for the same key in the previous snapshot (may be NULL), whose unchanged pages to share.
     */
    ekg_resource_set_t *(*build)(void *ctx, ekg_resource_type_t type, const ekg_resource_set_t *base,
                                 const ekg_place_t *place, const ekg_resource_set_t *hint);
    /* Why resources named `name` of `type` have per-place variants (for operators), or NULL when they have
     * none. Borrowed, lives as long as ctx. */
    const char *(*reason)(const void *ctx, ekg_resource_type_t type, const char *name);
    void (*free)(void *ctx);
} ekg_localizer_ops_t;

/* Attaches a localizer (ops static, ctx owned by the snapshot from now on, also on error). content: a hash of
 * everything the variants depend on beyond the base sets (two snapshots with the same base sets and the same
 * content make the same variants). EKG_EINVAL once the snapshot is shared (more than one reference) or when
 * it has one already. */
ekg_err_t ekg_snapshot_set_localizer(ekg_snapshot_t *s, const ekg_localizer_ops_t *ops, void *ctx,
                                     uint64_t content);
/* The localizer's content hash; 0 without one. */
uint64_t ekg_snapshot_localizer_content(const ekg_snapshot_t *s);
/* The set of `type` a client at `place` gets (place NULL = no place: the base set). Borrowed, lives as long
 * as s; the same object for every call with a place of the same key. Thread: any. */
ekg_resource_set_t *ekg_snapshot_resources_at(ekg_snapshot_t *s, ekg_resource_type_t type,
                                              const ekg_place_t *place);
/* ops->reason of the snapshot's localizer; NULL without one. */
const char *ekg_snapshot_variant_reason(const ekg_snapshot_t *s, ekg_resource_type_t type, const char *name);
/* Number of place keys the snapshot has built sets for (for metrics and tests). */
size_t ekg_snapshot_place_count(ekg_snapshot_t *s);
/* Takes the per-place sets prev has built so far as hints for s's own (page sharing between consecutive
 * versions, so a stream's diff stays one page per change). Only the cache calls it, before it makes s
 * visible; each hint is dropped once s has built that key. */
void ekg_snapshot_inherit_places(ekg_snapshot_t *s, ekg_snapshot_t *prev);

/* A process-unique, increasing number (for logs and for "have I seen this one"), not a protocol version. */
unsigned long long ekg_snapshot_serial(const ekg_snapshot_t *s);
/* Sets the time ekg_snapshot_version_since() reports; only the cache calls it, before it makes s visible. */
void ekg_snapshot_set_version_since(ekg_snapshot_t *s, ekg_resource_type_t type, double unix_time);

#endif
