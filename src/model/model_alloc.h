/*
 * src/model/model_alloc.h (private to src/model/): the bump allocator that makes each parsed Kubernetes
 * object one allocation unit.
 *
 * ekg_model_arena_new() returns the object's struct, zeroed, as the first allocation of a fresh arena; every
 * string and array of that object is then carved from the same arena with
 * ekg_model_alloc()/ekg_model_strdup(), and ekg_model_arena_free() on the object's pointer releases the lot.
 * Nothing is ever freed piecemeal. Nothing here returns NULL: out of memory (or a size that overflows)
 * aborts, as everywhere in ekglue (ekglue/mem.h). Thread: whichever thread parses the object; an arena is
 * never shared while it is being filled.
 */
#ifndef EKGLUE_MODEL_ALLOC_H
#define EKGLUE_MODEL_ALLOC_H

#include <stddef.h>

typedef struct ekg_model_arena ekg_model_arena_t;

/* A new arena whose first allocation (root_size zeroed bytes) is returned; *arena receives the arena. */
void *ekg_model_arena_new(size_t root_size, ekg_model_arena_t **arena);
/* Zeroed, max_align_t-aligned memory from the arena. */
void *ekg_model_alloc(ekg_model_arena_t *arena, size_t n);
/* Array of count elements of size bytes, zeroed. count 0 gives a valid (non-NULL) pointer. */
void *ekg_model_alloc_array(ekg_model_arena_t *arena, size_t count, size_t size);
/* Copy of s in the arena. */
char *ekg_model_strdup(ekg_model_arena_t *arena, const char *s);
/* Frees the arena that root (a pointer returned by ekg_model_arena_new) heads. NULL is a no-op. */
void ekg_model_arena_free(void *root);

#endif
