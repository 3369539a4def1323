/*
 * src/common/mem.c: allocation that never returns NULL (include/ekglue/mem.h): out of memory aborts.
 *
 * Thread: any. ekg_mem_init once at start (cJSON's hooks are process-wide).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "ekglue/mem.h"

_Noreturn void ekg_oom(size_t size)
{
    fprintf(stderr, "ekglue: out of memory (%zu bytes)\n", size);
    abort();
}

void *ekg_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        ekg_oom(size);
    return p;
}

void *ekg_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        ekg_oom(n > SIZE_MAX / (size ? size : 1) ? SIZE_MAX : n * size);
    return p;
}

void *ekg_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (!q)
        ekg_oom(size);
    return q;
}

char *ekg_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = ekg_xmalloc(len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *ekg_xstrdup(const char *s)
{
    return ekg_xstrndup(s, SIZE_MAX);
}

char *ekg_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0; /* an encoding error: an empty string rather than a crash */
    char *s = ekg_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    s[n] = '\0';
    return s;
}

void ekg_array_reserve(void **items, size_t *cap, size_t need, size_t elem_size)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2)
            ekg_oom(SIZE_MAX);
        c *= 2;
    }
    if (c > SIZE_MAX / elem_size)
        ekg_oom(SIZE_MAX);
    *items = ekg_xrealloc(*items, c * elem_size);
    *cap = c;
}

void ekg_mem_init(void)
{
    cJSON_Hooks hooks = {.malloc_fn = ekg_xmalloc, .free_fn = free};
    cJSON_InitHooks(&hooks);
}

FILE *ekg_xmemstream(char **buf, size_t *size)
{
    FILE *f = open_memstream(buf, size);
    if (!f)
        ekg_oom(0);
    return f;
}

void ekg_xmemstream_close(FILE *f)
{
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0 || failed)
        ekg_oom(0);
}
