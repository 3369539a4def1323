/*
 * src/resource/resource.c: encoded resources and versioned resource sets (include/ekglue/resource.h), the
 * currency of every layer from translate/ up: the translator makes them, snapshots (snapshot.c, beside this
 * file) hold them, every xDS stream sends their bytes.
 *
 * A resource is one block: header, its DiscoveryResponse `resources` field (written with common/pbwrite.h,
 * the message inside), name. A set is one block, header plus page pointers; pages of resources are shared
 * between consecutive sets. All carry an atomic refcount because snapshots and xDS streams on other threads
 * share them. Allocation failure aborts (ekglue/mem.h). Thread: any.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ekglue/mem.h"
#include "ekglue/proto.h"
#include "ekglue/resource.h"

#include "common/hash.h"
#include "common/pbwrite.h"

struct ekg_resource {
    atomic_int refs;
    ekg_resource_type_t type;
    uint64_t hash;      /* of the encoded bytes */
    uint64_t name_hash; /* of the name */
    size_t len;         /* of the encoded message */
    size_t field_len;   /* of the whole DiscoveryResponse.resources field */
    const char *data;   /* the encoded message, inside `field` */
    const char *name;   /* after `field`, NUL-terminated */
    char field[]; /* tag 2, length, google.protobuf.Any{type_url = 1, value = 2 (the message)}; then name */
};

/*
 * A set is a list of immutable pages of PAGE_SIZE resources. Building a set from the previous one reuses
 * every page whose items are the very same objects at the same positions, so one changed resource costs one
 * page copy, not a copy of the whole set: updates stay cheap at 30,000 resources and unchanged bytes are
 * shared.
 */
#define PAGE_SIZE 128

typedef struct page {
    atomic_int refs;
    uint32_t n;
    uint64_t hash;                    /* over the items' name and content hashes */
    ekg_resource_t *items[PAGE_SIZE]; /* one reference each */
} page_t;

struct ekg_resource_set {
    atomic_int refs;
    _Atomic(char *) fields;       /* all items' response fields, concatenated; built on first use */
    size_t fields_len;            /* their length, known from the start (so no builder writes it) */
    _Atomic(char *) delta_fields; /* the same as DeltaDiscoveryResponse resources; built on first use */
    size_t delta_fields_len;      /* known from the start */
    ekg_resource_type_t type;
    size_t n;
    size_t npages;
    char version[17];
    page_t *pages[]; /* one reference each */
};

static const char *const type_urls[EKG_RESOURCE__COUNT] = {
    EKG_TYPE_URL_PREFIX EKG_TYPE_CLUSTER,
    EKG_TYPE_URL_PREFIX EKG_TYPE_LOAD_ASSIGNMENT,
    EKG_TYPE_URL_PREFIX EKG_TYPE_LISTENER,
    EKG_TYPE_URL_PREFIX EKG_TYPE_ROUTE,
};

ekg_resource_type_t ekg_resource_type_from_url(const char *url, size_t len)
{
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++)
        if (strlen(type_urls[t]) == len && memcmp(type_urls[t], url, len) == 0)
            return (ekg_resource_type_t)t;
    return EKG_RESOURCE__COUNT;
}

const char *ekg_resource_type_url(ekg_resource_type_t type)
{
    return type < EKG_RESOURCE__COUNT ? type_urls[type] : NULL;
}

ekg_err_t ekg_resource_new(ekg_resource_type_t type, const char *name, const char *data, size_t len,
                           ekg_resource_t **out)
{
    size_t name_len = strlen(name);
    const char *url = ekg_resource_type_url(type);
    if (!url)
        return EKG_EINVAL;
    size_t url_len = strlen(url);
    size_t any_len = ekg_pb_field_size(1, url_len) + ekg_pb_field_size(2, len);
    size_t field_len = ekg_pb_field_size(2, any_len);
    ekg_resource_t *r = ekg_xmalloc(sizeof(*r) + field_len + name_len + 1);
    atomic_init(&r->refs, 1);
    r->type = type;
    r->len = len;
    r->field_len = field_len;
    char *p = r->field;
    p = ekg_pb_put_header(p, 2, any_len);     /* DiscoveryResponse.resources = 2: an Any */
    p = ekg_pb_put_field(p, 1, url, url_len); /* Any.type_url = 1 */
    p = ekg_pb_put_header(p, 2, len);         /* Any.value = 2: the message */
    if (len)
        memcpy(p, data, len);
    r->data = p;
    p += len;
    memcpy(p, name, name_len + 1);
    r->name = p;
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

const char *ekg_resource_response_field(const ekg_resource_t *r, size_t *len)
{
    *len = r->field_len;
    return r->field;
}

size_t ekg_resource_response_len(const ekg_resource_t *r)
{
    return r->field_len;
}

uint64_t ekg_resource_name_hash(const ekg_resource_t *r)
{
    return r->name_hash;
}

uint64_t ekg_resource_hash(const ekg_resource_t *r)
{
    return r->hash;
}

/* The length of Resource{version = 1 (16 hex digits), resource = 2 (the Any, as in the response field), name
 * = 3} for r: the response field is tag 2 + length + Any, exactly Resource.resource's encoding. */
static size_t delta_resource_len(const ekg_resource_t *r)
{
    return ekg_pb_field_size(1, 16) + r->field_len + ekg_pb_field_size(3, strlen(r->name));
}

static void page_unref(page_t *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (uint32_t i = 0; i < p->n; i++)
        ekg_resource_unref(p->items[i]);
    free(p);
}

ekg_err_t ekg_resource_set_new(ekg_resource_type_t type, ekg_resource_t *const *items, size_t n,
                               const ekg_resource_set_t *prev, ekg_resource_set_t **out)
{
    size_t npages = (n + PAGE_SIZE - 1) / PAGE_SIZE;
    ekg_resource_set_t *s = ekg_xcalloc(1, sizeof(*s) + npages * sizeof(s->pages[0]));
    atomic_init(&s->refs, 1);
    s->type = type;
    s->n = n;
    s->npages = npages;
    uint64_t h = EKG_HASH_INIT;
    for (size_t pi = 0; pi < npages; pi++) {
        ekg_resource_t *const *chunk = items + pi * PAGE_SIZE;
        uint32_t count = (uint32_t)(n - pi * PAGE_SIZE < PAGE_SIZE ? n - pi * PAGE_SIZE : PAGE_SIZE);
        /* Strictly increasing names: sorted for lookups and a stable version, unique by protocol. Within a
         * reused page this holds already; only page boundaries and new pages are checked. */
        if (pi > 0 && strcmp(items[pi * PAGE_SIZE - 1]->name, chunk[0]->name) >= 0)
            goto invalid;
        page_t *page = NULL;
        if (prev && pi < prev->npages && prev->pages[pi]->n == count &&
            memcmp(prev->pages[pi]->items, chunk, count * sizeof(*chunk)) == 0) {
            page = prev->pages[pi];
            atomic_fetch_add_explicit(&page->refs, 1, memory_order_relaxed);
        } else {
            for (uint32_t i = 1; i < count; i++)
                if (strcmp(chunk[i - 1]->name, chunk[i]->name) >= 0)
                    goto invalid;
            page = ekg_xmalloc(sizeof(*page));
            atomic_init(&page->refs, 1);
            page->n = count;
            uint64_t ph = EKG_HASH_INIT;
            for (uint32_t i = 0; i < count; i++) {
                page->items[i] = ekg_resource_ref(chunk[i]);
                ph = (ph ^ chunk[i]->name_hash ^ (chunk[i]->hash * 0x9e3779b97f4a7c15ULL)) * 0x100000001b3ULL;
            }
            page->hash = ph;
        }
        s->pages[pi] = page;
        h = ekg_hash_u64(h, page->hash);
    }
    snprintf(s->version, sizeof(s->version), "%016llx",
             (unsigned long long)ekg_hash_final(ekg_hash_u64(h, n)));
    for (size_t i = 0; i < n; i++) {
        s->fields_len += items[i]->field_len;
        s->delta_fields_len += ekg_pb_field_size(2, delta_resource_len(items[i]));
    }
    *out = s;
    return EKG_OK;
invalid:
    ekg_resource_set_unref(s);
    return EKG_EINVAL;
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
    for (size_t i = 0; i < s->npages; i++)
        if (s->pages[i])
            page_unref(s->pages[i]);
    free(atomic_load(&s->fields));
    free(atomic_load(&s->delta_fields));
    free(s);
}

size_t ekg_resource_set_size(const ekg_resource_set_t *s)
{
    return s->n;
}

ekg_resource_t *ekg_resource_set_at(const ekg_resource_set_t *s, size_t i)
{
    return i < s->n ? s->pages[i / PAGE_SIZE]->items[i % PAGE_SIZE] : NULL;
}

ekg_resource_t *ekg_resource_set_find(const ekg_resource_set_t *s, const char *name)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        ekg_resource_t *r = ekg_resource_set_at(s, mid);
        int c = strcmp(r->name, name);
        if (c == 0)
            return r;
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

void ekg_resource_set_response_fields(ekg_resource_set_t *s, const char **data, size_t *len)
{
    char *f = atomic_load_explicit(&s->fields, memory_order_acquire);
    if (!f) {
        char *buf = ekg_xmalloc(s->fields_len ? s->fields_len : 1);
        char *p = buf;
        for (size_t i = 0; i < s->n; i++) {
            const ekg_resource_t *r = ekg_resource_set_at(s, i);
            memcpy(p, r->field, r->field_len);
            p += r->field_len;
        }
        /* Several threads may race to build it; the first one wins and the others free theirs. */
        char *expected = NULL;
        if (atomic_compare_exchange_strong_explicit(&s->fields, &expected, buf, memory_order_acq_rel,
                                                    memory_order_acquire)) {
            f = buf;
        } else {
            free(buf);
            f = expected;
        }
    }
    *data = f;
    *len = s->fields_len;
}

void ekg_resource_set_delta_fields(ekg_resource_set_t *s, const char **data, size_t *len)
{
    char *f = atomic_load_explicit(&s->delta_fields, memory_order_acquire);
    if (!f) {
        char *buf = ekg_xmalloc(s->delta_fields_len ? s->delta_fields_len : 1), *p = buf;
        for (size_t i = 0; i < s->n; i++) {
            const ekg_resource_t *r = ekg_resource_set_at(s, i);
            char v[17];
            snprintf(v, sizeof(v), "%016llx", (unsigned long long)r->hash);
            p = ekg_pb_put_header(p, 2, delta_resource_len(r));
            p = ekg_pb_put_field(p, 1, v, 16);
            memcpy(p, r->field, r->field_len);
            p += r->field_len;
            p = ekg_pb_put_field(p, 3, r->name, strlen(r->name));
        }
        char *expected = NULL; /* several threads may race to build it: the first one wins */
        if (atomic_compare_exchange_strong_explicit(&s->delta_fields, &expected, buf, memory_order_acq_rel,
                                                    memory_order_acquire)) {
            f = buf;
        } else {
            free(buf);
            f = expected;
        }
    }
    *data = f;
    *len = s->delta_fields_len;
}

void ekg_resource_set_diff(const ekg_resource_set_t *old, const ekg_resource_set_t *cur,
                           void (*fn)(void *ctx, const char *name, const ekg_resource_t *before,
                                      const ekg_resource_t *after),
                           void *ctx)
{
    size_t i = 0, j = 0, n = old ? old->n : 0, m = cur->n;
    while (i < n || j < m) {
        /* Aligned on a page boundary with the very same page on both sides: nothing in it changed. */
        if (i == j && i % PAGE_SIZE == 0 && i < n && j < m &&
            old->pages[i / PAGE_SIZE] == cur->pages[j / PAGE_SIZE]) {
            i += old->pages[i / PAGE_SIZE]->n;
            j = i;
            continue;
        }
        const ekg_resource_t *a = i < n ? ekg_resource_set_at(old, i) : NULL;
        const ekg_resource_t *b = j < m ? ekg_resource_set_at(cur, j) : NULL;
        int c = !a ? 1 : !b ? -1 : strcmp(a->name, b->name);
        if (c == 0) {
            if (a != b && a->hash != b->hash)
                fn(ctx, b->name, a, b);
            i++, j++;
        } else if (c < 0) {
            fn(ctx, a->name, a, NULL);
            i++;
        } else {
            fn(ctx, b->name, NULL, b);
            j++;
        }
    }
}
