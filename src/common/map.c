/*
 * src/common/map.c: the string-keyed hash map of src/common/map.h. Growing aborts when out of memory
 * (ekglue/mem.h). Thread: the map's owner.
 */
#include <stdlib.h>
#include <string.h>

#include "ekglue/mem.h"

#include "common/hash.h"
#include "common/map.h"

static size_t hash_key(const char *key)
{
    return (size_t)ekg_hash(key, strlen(key));
}

static ekg_map_slot_t *find(const ekg_map_t *m, const char *key, size_t h)
{
    if (m->cap == 0)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        ekg_map_slot_t *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (s->hash == h && strcmp(s->key, key) == 0)
            return s;
    }
}

void *ekg_map_get(const ekg_map_t *m, const char *key)
{
    ekg_map_slot_t *s = find(m, key, hash_key(key));
    return s ? s->value : NULL;
}

static void place(ekg_map_slot_t *slots, size_t cap, ekg_map_slot_t item)
{
    size_t mask = cap - 1;
    size_t i = item.hash & mask;
    while (slots[i].key)
        i = (i + 1) & mask;
    slots[i] = item;
}

static void grow(ekg_map_t *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    ekg_map_slot_t *slots = ekg_xcalloc(cap, sizeof(*slots));
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            place(slots, cap, m->slots[i]);
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
}

void ekg_map_put(ekg_map_t *m, const char *key, void *value, void **old)
{
    size_t h = hash_key(key);
    ekg_map_slot_t *s = find(m, key, h);
    if (s) {
        if (old)
            *old = s->value;
        s->key = key;
        s->value = value;
        return;
    }
    if ((m->len + 1) * 10 > m->cap * 7)
        grow(m);
    place(m->slots, m->cap, (ekg_map_slot_t){.key = key, .hash = h, .value = value});
    m->len++;
    if (old)
        *old = NULL;
}

void *ekg_map_remove(ekg_map_t *m, const char *key)
{
    ekg_map_slot_t *s = find(m, key, hash_key(key));
    if (!s)
        return NULL;
    void *value = s->value;
    size_t mask = m->cap - 1;
    size_t hole = (size_t)(s - m->slots);
    /* Backward-shift: move later members of the probe run into the hole when their home allows it. */
    for (size_t i = (hole + 1) & mask; m->slots[i].key; i = (i + 1) & mask) {
        size_t home = m->slots[i].hash & mask;
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            m->slots[hole] = m->slots[i];
            hole = i;
        }
    }
    m->slots[hole] = (ekg_map_slot_t){0};
    m->len--;
    return value;
}

void ekg_map_clear(ekg_map_t *m)
{
    free(m->slots);
    *m = (ekg_map_t){0};
}
