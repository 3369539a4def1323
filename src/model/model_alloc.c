/*
 * src/model/model_alloc.c: a bump allocator, one per parsed Kubernetes object (see model_alloc.h).
 *
 * Memory: a singly-linked list of blocks. The first block starts with the ekg_model_arena_t itself, followed
 * by the root object, so that ekg_model_arena_free(root) finds the arena at a fixed offset before the root.
 * Blocks double in size up to 64 KiB; a larger request gets a block of its own. A typical Service fits in the
 * first 1 KiB block. Blocks come from ekg_xmalloc (ekglue/mem.h), so out of memory aborts, and so does a size
 * that overflows. Thread: the parsing thread; the finished object is immutable and can move between
 * threads.
 */
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ekglue/mem.h"

#include "model/model_alloc.h"

#define ALIGN       alignof(max_align_t)
#define ROUND(n)    (((n) + ALIGN - 1) & ~(size_t)(ALIGN - 1))
#define FIRST_BLOCK ((size_t)1024)
#define MAX_BLOCK   ((size_t)64 * 1024)

typedef struct block {
    struct block *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
} block_t;

struct ekg_model_arena {
    block_t *blocks; /* newest first; the last one holds this struct */
    size_t next_size;
};

#define ARENA_SIZE ROUND(sizeof(ekg_model_arena_t))

static block_t *block_new(size_t cap)
{
    block_t *b = ekg_xmalloc(sizeof(block_t) + cap);
    b->next = NULL;
    b->used = 0;
    b->cap = cap;
    return b;
}

void *ekg_model_arena_new(size_t root_size, ekg_model_arena_t **arena)
{
    if (root_size > SIZE_MAX / 2)
        ekg_oom(root_size);
    size_t need = ARENA_SIZE + ROUND(root_size);
    block_t *b = block_new(need > FIRST_BLOCK ? need : FIRST_BLOCK);
    ekg_model_arena_t *a = (ekg_model_arena_t *)b->data;
    a->blocks = b;
    a->next_size = FIRST_BLOCK * 2;
    b->used = need;
    void *root = b->data + ARENA_SIZE;
    memset(root, 0, root_size);
    *arena = a;
    return root;
}

void *ekg_model_alloc(ekg_model_arena_t *a, size_t n)
{
    if (n > SIZE_MAX / 2)
        ekg_oom(n);
    n = ROUND(n ? n : 1);
    block_t *b = a->blocks;
    if (b->cap - b->used < n) {
        size_t cap = n > a->next_size ? n : a->next_size;
        block_t *nb = block_new(cap);
        if (a->next_size < MAX_BLOCK)
            a->next_size *= 2;
        if (n >= MAX_BLOCK && b->cap - b->used >= MAX_BLOCK / 8) {
            /* A big one-off: keep filling the current block afterwards. */
            nb->next = b->next;
            b->next = nb;
            b = nb;
        } else {
            nb->next = b;
            a->blocks = nb;
            b = nb;
        }
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

void *ekg_model_alloc_array(ekg_model_arena_t *a, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / 2 / size)
        ekg_oom(SIZE_MAX);
    return ekg_model_alloc(a, count * size);
}

char *ekg_model_strdup(ekg_model_arena_t *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = ekg_model_alloc(a, n);
    memcpy(p, s, n);
    return p;
}

void ekg_model_arena_free(void *root)
{
    if (!root)
        return;
    ekg_model_arena_t *a = (ekg_model_arena_t *)((unsigned char *)root - ARENA_SIZE);
    block_t *b = a->blocks;
    while (b) {
        block_t *next = b->next;
        free(b); /* may free the block holding *a: nothing reads it afterwards */
        b = next;
    }
}
