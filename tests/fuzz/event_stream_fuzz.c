/*
 * tests/fuzz/event_stream_fuzz.c: libFuzzer target for the watch body splitter (src/watch/event_stream.c),
 * which cuts what the Kubernetes API server streams into one JSON event per line.
 *
 * Input: byte 0 picks the line bound (0: the default 64 MiB; else 1..255 bytes, so the EKG_ERANGE paths run),
 * bytes 1-2 seed the piece sizes and when lines are drained, the rest is the body. The body is fed in pieces
 * (1..64 bytes, as libcurl's pieces may end anywhere), draining complete lines after some of them, and the
 * lines must be exactly those of a plain reference split of the whole body: cut at "\n", one "\r" before it
 * dropped, empty lines skipped. EKG_ERANGE must come only for a line longer than the bound (counting a "\r"
 * the line may still lose: the splitter refuses an unfinished line as soon as it is too long), be sticky, and
 * never lose a line that came before it. Seeds: tests/fuzz/corpus/event_stream/. Thread: libFuzzer's.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ekglue/mem.h"
#include "watch/event_stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    const char *body;
    size_t len, pos; /* the next reference line starts at body[pos] */
} reference_t;

/* The next non-empty reference line among complete ones: false when none is left. */
static bool ref_next(reference_t *r, const char **line, size_t *len)
{
    for (;;) {
        const char *nl = r->pos < r->len ? memchr(r->body + r->pos, '\n', r->len - r->pos) : NULL;
        if (!nl)
            return false;
        const char *begin = r->body + r->pos;
        size_t n = (size_t)(nl - begin);
        r->pos += n + 1;
        if (n > 0 && begin[n - 1] == '\r')
            n--;
        if (n > 0) {
            *line = begin;
            *len = n;
            return true;
        }
    }
}

/* Is there, in body[from, upto), a segment (a line, or the unfinished rest) longer than bound? */
static bool too_long_in(const char *body, size_t from, size_t upto, size_t bound)
{
    size_t run = 0;
    for (size_t i = from; i < upto; i++) {
        if (body[i] == '\n') {
            run = 0;
            continue;
        }
        if (++run > bound)
            return true;
    }
    return false;
}

static uint32_t next_rand(uint32_t *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state >> 16;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t bound = data[0] ? data[0] : EKG_EVENT_STREAM_MAX_LINE;
    uint32_t rnd = (uint32_t)data[1] << 8 | data[2];
    const char *body = (const char *)data + 3;
    size_t len = size - 3;

    ekg_event_stream_t s;
    ekg_event_stream_init(&s, data[0]);
    reference_t ref = {.body = body, .len = len};
    size_t fed = 0, seen = 0; /* bytes taken; bytes the splitter was shown (a refused piece too) */
    ekg_err_t failed = EKG_OK;
    while (fed < len && !failed) {
        size_t piece = 1 + next_rand(&rnd) % 64;
        if (piece > len - fed)
            piece = len - fed;
        /* A copy of exactly the piece: libcurl's buffer is gone after the callback. */
        char *copy = ekg_xmalloc(piece);
        memcpy(copy, body + fed, piece);
        failed = ekg_event_stream_feed(&s, copy, piece);
        free(copy);
        seen = fed + piece;
        if (!failed)
            fed += piece;
        if (failed || next_rand(&rnd) % 4 == 0 || fed == len) {
            for (;;) {
                char *line;
                size_t n;
                ekg_err_t err = ekg_event_stream_next(&s, &line, &n);
                if (err) {
                    failed = err;
                    break;
                }
                if (!line)
                    break;
                const char *want;
                size_t want_len;
                if (!ref_next(&ref, &want, &want_len) || n != want_len || memcmp(line, want, n) != 0 ||
                    line[n] != '\0' || n > bound)
                    abort(); /* a line the reference split does not have, or a bound not enforced */
            }
        }
    }
    if (failed) {
        if (failed != EKG_ERANGE)
            abort();
        /* Sticky, and only for a line that really went beyond the bound (+1: a "\r" it might still lose). */
        char *line;
        size_t n;
        if (ekg_event_stream_feed(&s, "x\n", 2) != EKG_ERANGE ||
            ekg_event_stream_next(&s, &line, &n) != EKG_ERANGE || line != NULL)
            abort();
        if (!too_long_in(body, ref.pos, seen, bound))
            abort();
    } else {
        /* Everything was drained at the end: no complete line left behind, the rest pending. */
        const char *want;
        size_t want_len;
        if (ref_next(&ref, &want, &want_len))
            abort();
        if (ekg_event_stream_pending(&s) != len - ref.pos || len - ref.pos > bound)
            abort();
        /* After a reset the splitter starts over (a one-byte line: within any bound). */
        ekg_event_stream_reset(&s);
        char *line;
        size_t n;
        if (ekg_event_stream_feed(&s, "x\n", 2) != EKG_OK || ekg_event_stream_next(&s, &line, &n) != EKG_OK ||
            !line || n != 1 || line[0] != 'x')
            abort();
    }
    ekg_event_stream_free(&s);
    return 0;
}
