/*
 * src/watch/event_stream.c: the newline splitter of watch bodies (event_stream.h).
 *
 * One buffer: bytes already yielded at the front are dropped by moving the unfinished line down when more
 * bytes arrive, so the buffer holds at most one unfinished line plus one piece from libcurl. Thread: the
 * owner's (the watcher thread).
 */
#include <stdlib.h>
#include <string.h>

#include "ekglue/mem.h"
#include "watch/event_stream.h"

static size_t bound(const ekg_event_stream_t *s)
{
    return s->max_line ? s->max_line : EKG_EVENT_STREAM_MAX_LINE;
}

void ekg_event_stream_init(ekg_event_stream_t *s, size_t max_line)
{
    *s = (ekg_event_stream_t){.max_line = max_line};
}

void ekg_event_stream_free(ekg_event_stream_t *s)
{
    size_t max_line = s->max_line;
    free(s->buf);
    ekg_event_stream_init(s, max_line);
}

void ekg_event_stream_reset(ekg_event_stream_t *s)
{
    s->len = s->start = s->scan = 0;
    s->failed = EKG_OK;
}

ekg_err_t ekg_event_stream_feed(ekg_event_stream_t *s, const char *data, size_t len)
{
    if (s->failed)
        return s->failed;
    if (len == 0)
        return EKG_OK;
    if (s->start > 0) { /* drop what was yielded */
        memmove(s->buf, s->buf + s->start, s->len - s->start);
        s->len -= s->start;
        s->scan -= s->start;
        s->start = 0;
    }
    /* Refuse before growing: an unfinished line that this piece would push beyond the bound. */
    if (!memchr(data, '\n', len) && memchr(s->buf ? s->buf + s->scan : "", '\n', s->len - s->scan) == NULL &&
        s->len + len > bound(s))
        return s->failed = EKG_ERANGE;
    /* + 1: room for the NUL that terminates a yielded line; at least 4 KiB, doubling from there. */
    size_t need = s->len + len + 1;
    void *buf = s->buf;
    ekg_array_reserve(&buf, &s->cap, need > 4096 ? need : 4096, 1);
    s->buf = buf;
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    return EKG_OK;
}

ekg_err_t ekg_event_stream_next(ekg_event_stream_t *s, char **line, size_t *len)
{
    *line = NULL;
    *len = 0;
    if (s->failed)
        return s->failed;
    for (;;) {
        char *nl = s->scan < s->len ? memchr(s->buf + s->scan, '\n', s->len - s->scan) : NULL;
        if (!nl) {
            s->scan = s->len;
            if (s->len - s->start > bound(s))
                return s->failed = EKG_ERANGE;
            return EKG_OK;
        }
        char *begin = s->buf + s->start;
        size_t n = (size_t)(nl - begin);
        s->start = s->scan = (size_t)(nl - s->buf) + 1;
        if (n > 0 && begin[n - 1] == '\r')
            n--;
        if (n > bound(s))
            return s->failed = EKG_ERANGE;
        if (n == 0)
            continue; /* an empty line (a keep-alive newline, or the \n of a \r\n) */
        begin[n] = '\0';
        *line = begin;
        *len = n;
        return EKG_OK;
    }
}

size_t ekg_event_stream_pending(const ekg_event_stream_t *s)
{
    return s->len - s->start;
}
