/*
 * src/resource/snapshot.c: immutable snapshots of everything ekglue serves (include/ekglue/resource.h).
 *
 * A snapshot is a header with one reference per resource set, and optionally the localities document it was
 * built with (for operators; set before the snapshot is shared, then read-only). The translator builds them
 * (src/translate/), the cache above publishes them, every xDS stream holds the one it last looked at.
 * Allocation failure aborts (ekglue/mem.h). Thread: any; a snapshot is only written (localities, version
 * times) while one thread holds its only reference or before the cache makes it visible.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "ekglue/mem.h"
#include "ekglue/resource.h"

struct ekg_snapshot {
    atomic_int refs;
    unsigned long long serial;
    ekg_resource_set_t *sets[EKG_RESOURCE__COUNT]; /* one reference each, never NULL */
    cJSON *localities;                             /* owned; NULL when not set */
    double since[EKG_RESOURCE__COUNT];             /* unix time each set's version became current; 0 */
};

static atomic_ullong next_serial = 1;

ekg_snapshot_t *ekg_snapshot_new(ekg_resource_set_t *const sets[EKG_RESOURCE__COUNT])
{
    ekg_snapshot_t *s = ekg_xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->serial = atomic_fetch_add(&next_serial, 1);
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++) {
        if (sets && sets[t])
            s->sets[t] = ekg_resource_set_ref(sets[t]);
        else /* an empty set: no names to be out of order, so it cannot fail */
            ekg_resource_set_new((ekg_resource_type_t)t, NULL, 0, NULL, &s->sets[t]);
    }
    return s;
}

ekg_snapshot_t *ekg_snapshot_ref(ekg_snapshot_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void ekg_snapshot_unref(ekg_snapshot_t *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++)
        ekg_resource_set_unref(s->sets[t]);
    cJSON_Delete(s->localities);
    free(s);
}

ekg_resource_set_t *ekg_snapshot_resources(const ekg_snapshot_t *s, ekg_resource_type_t type)
{
    return type < EKG_RESOURCE__COUNT ? s->sets[type] : NULL;
}

ekg_err_t ekg_snapshot_set_localities(ekg_snapshot_t *s, cJSON *doc)
{
    /* One reference: nobody else can be reading the snapshot, so it is still being built. */
    if (!s || !cJSON_IsObject(doc) || atomic_load_explicit(&s->refs, memory_order_acquire) != 1) {
        cJSON_Delete(doc);
        return EKG_EINVAL;
    }
    cJSON_Delete(s->localities);
    s->localities = doc;
    return EKG_OK;
}

const cJSON *ekg_snapshot_localities(const ekg_snapshot_t *s)
{
    return s->localities;
}

double ekg_snapshot_version_since(const ekg_snapshot_t *s, ekg_resource_type_t type)
{
    return type < EKG_RESOURCE__COUNT ? s->since[type] : 0;
}

unsigned long long ekg_snapshot_serial(const ekg_snapshot_t *s)
{
    return s->serial;
}

void ekg_snapshot_set_version_since(ekg_snapshot_t *s, ekg_resource_type_t type, double unix_time)
{
    if (type < EKG_RESOURCE__COUNT)
        s->since[type] = unix_time;
}
