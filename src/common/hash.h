/*
 * src/common/hash.h: the content hash behind resource and snapshot versions (library-private).
 *
 * Versions must be the same across restarts and across replicas fed the same objects, so the hash is a fixed
 * function of the bytes: 64-bit FNV-1a with a final avalanche step (the splitmix64 finalizer). It is not a
 * cryptographic hash; it only has to make accidental collisions between two versions of one resource set
 * vanishingly unlikely. Thread: any (pure functions).
 */
#ifndef EKG_COMMON_HASH_H
#define EKG_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

#define EKG_HASH_INIT 0xcbf29ce484222325ULL

/* Continues the hash state h over len bytes (start with EKG_HASH_INIT). */
static inline uint64_t ekg_hash_update(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Mixes a 64-bit value into the state (for combining per-resource hashes). */
static inline uint64_t ekg_hash_u64(uint64_t h, uint64_t v)
{
    return ekg_hash_update(h, &v, sizeof(v));
}

/* Finishes the hash: spreads every input bit over the whole result. */
static inline uint64_t ekg_hash_final(uint64_t h)
{
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

static inline uint64_t ekg_hash(const void *data, size_t len)
{
    return ekg_hash_final(ekg_hash_update(EKG_HASH_INIT, data, len));
}

#endif
