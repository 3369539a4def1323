/*
 * src/translate/resource.c: encoded resources and versioned resource sets (include/ekglue/resource.h).
 *
 * A resource is one malloc block: header, name, bytes. A set is one block: header plus the pointer array.
 * Both carry an atomic refcount because snapshots and xDS streams on other threads share them. Thread: any.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ekglue/proto.h"
#include "ekglue/resource.h"

#include "common/hash.h"

struct ekg_resource {
    atomic_int refs;
    ekg_resource_type_t type;
    uint64_t hash;      /* of the encoded bytes */
    uint64_t name_hash; /* of the name */
    size_t len;
    const char *name; /* points into the same block */
    char data[];      /* len bytes of the encoded message, then the NUL-terminated name */
};

struct ekg_resource_set {
    atomic_int refs;
    ekg_resource_type_t type;
    size_t n;
    char version[17];
    ekg_resource_t *items[]; /* one reference each */
};

static const char *const type_urls[EKG_RESOURCE__COUNT] = {
    EKG_TYPE_URL_PREFIX EKG_TYPE_CLUSTER,
    EKG_TYPE_URL_PREFIX EKG_TYPE_LOAD_ASSIGNMENT,
};

const char *ekg_resource_type_url(ekg_resource_type_t type)
{
    return type < EKG_RESOURCE__COUNT ? type_urls[type] : NULL;
}

ekg_err_t ekg_resource_new(ekg_resource_type_t type, const char *name, const char *data, size_t len,
                           ekg_resource_t **out)
{
    size_t name_len = strlen(name);
    ekg_resource_t *r = malloc(sizeof(*r) + len + name_len + 1);
    if (!r)
        return EKG_ENOMEM;
    atomic_init(&r->refs, 1);
    r->type = type;
    r->len = len;
    if (len)
        memcpy(r->data, data, len);
    memcpy(r->data + len, name, name_len + 1);
    r->name = r->data + len;
    r->hash = ekg_hash(data, len);
    r->name_hash = ekg_hash(name, name_len);
    *out = r;
    return EKG_OK;
}

ekg_resource_t *ekg_resource_ref(ekg_resource_t *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

void ekg_resource_unref(ekg_resource_t *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        free(r);
}

ekg_resource_type_t ekg_resource_type(const ekg_resource_t *r)
{
    return r->type;
}

const char *ekg_resource_name(const ekg_resource_t *r)
{
    return r->name;
}

const char *ekg_resource_data(const ekg_resource_t *r, size_t *len)
{
    *len = r->len;
    return r->data;
}

uint64_t ekg_resource_hash(const ekg_resource_t *r)
{
    return r->hash;
}

ekg_err_t ekg_resource_set_new(ekg_resource_type_t type, ekg_resource_t *const *items, size_t n,
                               ekg_resource_set_t **out)
{
    /* Strictly increasing names: sorted for lookups and for a stable version, unique by protocol. */
    for (size_t i = 1; i < n; i++)
        if (strcmp(items[i - 1]->name, items[i]->name) >= 0)
            return EKG_EINVAL;
    ekg_resource_set_t *s = malloc(sizeof(*s) + n * sizeof(s->items[0]));
    if (!s)
        return EKG_ENOMEM;
    atomic_init(&s->refs, 1);
    s->type = type;
    s->n = n;
    uint64_t h = EKG_HASH_INIT;
    for (size_t i = 0; i < n; i++) {
        s->items[i] = ekg_resource_ref(items[i]);
        h = (h ^ items[i]->name_hash ^ (items[i]->hash * 0x9e3779b97f4a7c15ULL)) * 0x100000001b3ULL;
    }
    snprintf(s->version, sizeof(s->version), "%016llx", (unsigned long long)ekg_hash_final(h ^ n));
    *out = s;
    return EKG_OK;
}

ekg_resource_set_t *ekg_resource_set_ref(ekg_resource_set_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void ekg_resource_set_unref(ekg_resource_set_t *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < s->n; i++)
        ekg_resource_unref(s->items[i]);
    free(s);
}

size_t ekg_resource_set_size(const ekg_resource_set_t *s)
{
    return s->n;
}

ekg_resource_t *ekg_resource_set_at(const ekg_resource_set_t *s, size_t i)
{
    return i < s->n ? s->items[i] : NULL;
}

ekg_resource_t *ekg_resource_set_find(const ekg_resource_set_t *s, const char *name)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->items[mid]->name, name);
        if (c == 0)
            return s->items[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *ekg_resource_set_version(const ekg_resource_set_t *s)
{
    return s->version;
}
