/*
 * src/common/map.h: a string-keyed hash map (library-private).
 *
 * Open addressing with linear probing and backward-shift deletion; grows at 70% load. Keys are borrowed: the
 * caller keeps each key alive (usually inside the value) until it removes the entry. Values are opaque
 * pointers the map never frees. Out of memory aborts (ekglue/mem.h). Thread: not synchronized; one owner
 * thread.
 */
#ifndef EKG_COMMON_MAP_H
#define EKG_COMMON_MAP_H

#include <stddef.h>

#include "ekglue/error.h"

typedef struct ekg_map_slot {
    const char *key; /* NULL = empty */
    size_t hash;
    void *value;
} ekg_map_slot_t;

typedef struct ekg_map {
    ekg_map_slot_t *slots; /* owned */
    size_t cap;            /* 0 or a power of two */
    size_t len;
} ekg_map_t; /* zero-initialized = empty */

void *ekg_map_get(const ekg_map_t *m, const char *key);
/* Inserts or replaces; *old (if non-NULL) receives the replaced value or NULL. */
void ekg_map_put(ekg_map_t *m, const char *key, void *value, void **old);
/* Removes key; returns its value or NULL. */
void *ekg_map_remove(ekg_map_t *m, const char *key);
void ekg_map_clear(ekg_map_t *m); /* frees the table, not the values */

/* Iteration: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].key) ... (no insertions meanwhile). */

#endif
