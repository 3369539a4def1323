/*
 * src/watch/event_stream.h (private to src/watch/): the newline splitter between libcurl's write callback and
 * the watch event parser.
 *
 * A Kubernetes watch body is a sequence of JSON events, one per line. libcurl hands the body over in pieces
 * of at most 16 KiB that may end anywhere: in the middle of an event, of a UTF-8 sequence, between \r and \n.
 * The splitter appends each piece and yields every complete line; an event may be far larger than one piece,
 * so the buffer grows up to a bound (max_line) beyond which the stream fails with EKG_ERANGE rather than eat
 * the process's memory.
 *
 * Lines are yielded without their "\n" (and without a "\r" before it), NUL-terminated, in place: a yielded
 * line is borrowed and valid until the next call on the splitter. Empty lines are skipped. Scanning resumes
 * where the last scan stopped, so a 64 MiB event fed in 16 KiB pieces costs linear time, not quadratic.
 *
 * Memory: the splitter owns its buffer; zero-initialize or ekg_event_stream_init(), free with
 * ekg_event_stream_free(). Thread: one owner (the watcher thread); no shared state.
 */
#ifndef EKG_WATCH_EVENT_STREAM_H
#define EKG_WATCH_EVENT_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "ekglue/error.h"

/* The default bound of one event: larger than any sane Kubernetes object (etcd's own limit is 1.5 MiB). */
#define EKG_EVENT_STREAM_MAX_LINE ((size_t)64 << 20)

typedef struct ekg_event_stream {
    char *buf;        /* owned; [start, len) is not yet yielded */
    size_t len, cap;  /* bytes held, bytes allocated */
    size_t start;     /* the next line begins here */
    size_t scan;      /* no '\n' in [start, scan) */
    size_t max_line;  /* 0: EKG_EVENT_STREAM_MAX_LINE */
    ekg_err_t failed; /* sticky: EKG_ERANGE once a line went beyond the bound */
} ekg_event_stream_t;

/* An empty splitter that fails on lines longer than max_line bytes (0: the default bound). */
void ekg_event_stream_init(ekg_event_stream_t *s, size_t max_line);
/* Frees the buffer; the splitter is empty again (with the same bound) and usable. */
void ekg_event_stream_free(ekg_event_stream_t *s);
/* Drops everything held (a new transfer starts) but keeps the buffer's memory and the bound. */
void ekg_event_stream_reset(ekg_event_stream_t *s);

/*
 * Appends len bytes. EKG_ERANGE when the line being accumulated grows beyond the bound, sticky (every later
 * call fails the same way until a reset). Allocation failure aborts (include/ekglue/mem.h).
 */
ekg_err_t ekg_event_stream_feed(ekg_event_stream_t *s, const char *data, size_t len);

/*
 * The next complete, non-empty line: EKG_OK with *line and *len set, or EKG_OK with *line NULL when no
 * complete line is held. EKG_ERANGE (sticky) for a complete line longer than the bound.
 */
ekg_err_t ekg_event_stream_next(ekg_event_stream_t *s, char **line, size_t *len);

/* Bytes of an incomplete last line (a transfer that ends with pending > 0 was cut mid-event). */
size_t ekg_event_stream_pending(const ekg_event_stream_t *s);

#endif
