/*
 * include/ekglue/mem.h: ekglue's one memory policy (src/common/mem.c): allocation failure aborts.
 *
 * On Linux with overcommit and a cgroup memory limit, malloc failing is not the event that happens: the OOM
 * killer is. Paths that try to recover from a failed malloc are paths no test takes, and they hide bugs (one
 * dropped a watch event silently). So every allocation in ekglue goes through these wrappers, which never
 * return NULL: on failure they print "ekglue: out of memory (N bytes)" to stderr and abort(). cJSON is set up
 * to allocate through them too (ekg_mem_init), so a NULL from cJSON means bad input, never memory. The same
 * policy as redis's zmalloc_oom_handler and h2o_mem_alloc; docs/internals/README.md, "Policies".
 *
 * Ownership: what these return is the caller's, freed with free().
 * Thread: any.
 */
#ifndef EKGLUE_MEM_H
#define EKGLUE_MEM_H

#include <stddef.h>
#include <stdio.h>

/* Prints the message and aborts. */
_Noreturn void ekg_oom(size_t size);

void *ekg_xmalloc(size_t size);
void *ekg_xcalloc(size_t n, size_t size);
void *ekg_xrealloc(void *p, size_t size);
char *ekg_xstrdup(const char *s);
char *ekg_xstrndup(const char *s, size_t n);
/* A new printf result. */
char *ekg_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The growable array: makes *items (an array of elem_size-byte elements with room for *cap) hold at least
 * need elements, doubling from 16, and updates *cap. EKG_ARRAY_PUSH appends one value:
 *     ekg_foo_t *v = NULL; size_t n = 0, cap = 0;
 *     EKG_ARRAY_PUSH(v, n, cap, foo);
 */
void ekg_array_reserve(void **items, size_t *cap, size_t need, size_t elem_size);
#define EKG_ARRAY_PUSH(items, n, cap, value)                                                                 \
    do {                                                                                                     \
        void *ekg_array_p_ = (items);                                                                        \
        ekg_array_reserve(&ekg_array_p_, &(cap), (n) + 1, sizeof(*(items)));                                 \
        (items) = ekg_array_p_;                                                                              \
        (items)[(n)++] = (value);                                                                            \
    } while (0)

/*
 * A FILE that writes into a growing buffer (open_memstream): *buf (the caller's, free()) holds what was
 * written once ekg_xmemstream_close returns. glibc grows that buffer itself, outside these wrappers, so both
 * abort as they do when it cannot: opening, a write or the final flush fails only for lack of memory.
 */
FILE *ekg_xmemstream(char **buf, size_t *size);
void ekg_xmemstream_close(FILE *f);

/* Routes cJSON's allocations through the wrappers. Call once at start, before any thread uses cJSON. */
void ekg_mem_init(void);

#endif
