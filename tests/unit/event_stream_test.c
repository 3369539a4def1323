/*
 * tests/unit/event_stream_test.c: src/watch/event_stream.c, the newline splitter of watch bodies: every split
 * point of a few events (and every pair of split points), 1 MiB events in libcurl-sized and odd-sized pieces,
 * CRLF, empty lines, an unfinished last line, and the bound on one event (with and without a newline in the
 * piece that crosses it). Thread: the test's main thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "watch/event_stream.h"

/* Lines collected from a splitter, joined by '|' for assert_string_equal. */
typedef struct collected {
    char text[4096];
    size_t nlines;
} collected_t;

static void drain(ekg_event_stream_t *s, collected_t *c)
{
    for (;;) {
        char *line;
        size_t len;
        assert_int_equal(ekg_event_stream_next(s, &line, &len), EKG_OK);
        if (!line)
            return;
        assert_int_equal(strlen(line), len);
        if (c->nlines++)
            strcat(c->text, "|");
        strcat(c->text, line);
    }
}

static void feed(ekg_event_stream_t *s, collected_t *c, const char *data, size_t len)
{
    assert_int_equal(ekg_event_stream_feed(s, data, len), EKG_OK);
    drain(s, c);
}

static const char EVENTS[] = "{\"type\":\"ADDED\",\"object\":{\"a\":1}}\n"
                             "{\"type\":\"BOOKMARK\"}\r\n"
                             "\n"
                             "\r\n"
                             "{\"type\":\"DELETED\",\"object\":{\"z\":\"\\u00e9\"}}\n";
static const char EXPECTED[] = "{\"type\":\"ADDED\",\"object\":{\"a\":1}}|"
                               "{\"type\":\"BOOKMARK\"}|"
                               "{\"type\":\"DELETED\",\"object\":{\"z\":\"\\u00e9\"}}";

static void test_whole(void **state)
{
    (void)state;
    ekg_event_stream_t s;
    collected_t c = {{0}, 0};
    ekg_event_stream_init(&s, 0);
    feed(&s, &c, EVENTS, strlen(EVENTS));
    assert_string_equal(c.text, EXPECTED);
    assert_int_equal(c.nlines, 3);
    assert_int_equal(ekg_event_stream_pending(&s), 0);
    ekg_event_stream_free(&s);
}

static void test_every_split_point(void **state)
{
    (void)state;
    size_t n = strlen(EVENTS);
    for (size_t i = 0; i <= n; i++) {
        for (size_t j = i; j <= n; j++) {
            ekg_event_stream_t s;
            collected_t c = {{0}, 0};
            ekg_event_stream_init(&s, 0);
            feed(&s, &c, EVENTS, i);
            feed(&s, &c, EVENTS + i, j - i);
            feed(&s, &c, EVENTS + j, n - j);
            if (strcmp(c.text, EXPECTED) != 0)
                print_error("split at %zu and %zu\n", i, j);
            assert_string_equal(c.text, EXPECTED);
            assert_int_equal(ekg_event_stream_pending(&s), 0);
            ekg_event_stream_free(&s);
        }
    }
}

static void test_byte_at_a_time(void **state)
{
    (void)state;
    ekg_event_stream_t s;
    collected_t c = {{0}, 0};
    ekg_event_stream_init(&s, 0);
    for (size_t i = 0; EVENTS[i]; i++)
        feed(&s, &c, EVENTS + i, 1);
    assert_string_equal(c.text, EXPECTED);
    ekg_event_stream_free(&s);
}

/* Three 1 MiB events (distinct fill bytes) fed in pieces of `piece` bytes. */
static void big_events(size_t piece)
{
    const size_t size = (size_t)1 << 20;
    size_t total = 3 * (size + 1);
    char *body = malloc(total);
    assert_non_null(body);
    for (int e = 0; e < 3; e++) {
        memset(body + (size_t)e * (size + 1), 'a' + e, size);
        body[(size_t)e * (size + 1) + size] = '\n';
    }
    ekg_event_stream_t s;
    ekg_event_stream_init(&s, 0);
    int seen = 0;
    for (size_t off = 0; off < total; off += piece) {
        size_t n = total - off < piece ? total - off : piece;
        assert_int_equal(ekg_event_stream_feed(&s, body + off, n), EKG_OK);
        for (;;) {
            char *line;
            size_t len;
            assert_int_equal(ekg_event_stream_next(&s, &line, &len), EKG_OK);
            if (!line)
                break;
            assert_int_equal(len, size);
            assert_int_equal(line[0], 'a' + seen);
            assert_int_equal(line[size - 1], 'a' + seen);
            assert_int_equal(line[size], '\0');
            seen++;
        }
    }
    assert_int_equal(seen, 3);
    assert_true(s.cap <= 4 * size); /* one event and a piece, rounded up: not all three */
    ekg_event_stream_free(&s);
    free(body);
}

static void test_1mib_events_in_curl_pieces(void **state)
{
    (void)state;
    big_events(16384);
}

static void test_1mib_events_in_odd_pieces(void **state)
{
    (void)state;
    big_events(7919);
    big_events((size_t)1 << 20); /* an event and a newline straddling two pieces */
}

static void test_crlf_split_between_cr_and_lf(void **state)
{
    (void)state;
    ekg_event_stream_t s;
    collected_t c = {{0}, 0};
    ekg_event_stream_init(&s, 0);
    feed(&s, &c, "{\"a\":1}\r", 8);
    assert_int_equal(c.nlines, 0);
    assert_int_equal(ekg_event_stream_pending(&s), 8);
    feed(&s, &c, "\n{\"b\":2}\r\n", 10);
    assert_string_equal(c.text, "{\"a\":1}|{\"b\":2}");
    ekg_event_stream_free(&s);
}

static void test_empty_lines_only(void **state)
{
    (void)state;
    ekg_event_stream_t s;
    collected_t c = {{0}, 0};
    ekg_event_stream_init(&s, 0);
    feed(&s, &c, "\n\n\r\n\n", 5);
    assert_int_equal(c.nlines, 0);
    assert_int_equal(ekg_event_stream_pending(&s), 0);
    feed(&s, &c, "", 0);
    assert_int_equal(c.nlines, 0);
    ekg_event_stream_free(&s);
}

static void test_unfinished_last_line(void **state)
{
    (void)state;
    ekg_event_stream_t s;
    collected_t c = {{0}, 0};
    ekg_event_stream_init(&s, 0);
    feed(&s, &c, "{\"a\":1}\n{\"b\":", 13);
    assert_string_equal(c.text, "{\"a\":1}");
    assert_int_equal(ekg_event_stream_pending(&s), 5);
    /* A new transfer starts over. */
    ekg_event_stream_reset(&s);
    assert_int_equal(ekg_event_stream_pending(&s), 0);
    feed(&s, &c, "{\"c\":3}\n", 8);
    assert_string_equal(c.text, "{\"a\":1}|{\"c\":3}");
    ekg_event_stream_free(&s);
}

static void test_bound_without_newline(void **state)
{
    (void)state;
    char line[101];
    memset(line, 'x', sizeof(line));
    ekg_event_stream_t s;
    collected_t c = {{0}, 0};
    ekg_event_stream_init(&s, 100);
    feed(&s, &c, line, 60);
    feed(&s, &c, line, 40); /* exactly the bound: still fine */
    assert_int_equal(ekg_event_stream_feed(&s, line, 1), EKG_ERANGE);
    /* Sticky until a reset. */
    assert_int_equal(ekg_event_stream_feed(&s, "\n", 1), EKG_ERANGE);
    char *l;
    size_t n;
    assert_int_equal(ekg_event_stream_next(&s, &l, &n), EKG_ERANGE);
    assert_null(l);
    ekg_event_stream_reset(&s);
    feed(&s, &c, line, 100);
    feed(&s, &c, "\n", 1);
    assert_int_equal(c.nlines, 1);
    assert_int_equal(strlen(c.text), 100);
    ekg_event_stream_free(&s);
}

static void test_bound_with_newline_in_the_piece(void **state)
{
    (void)state;
    char buf[256];
    memset(buf, 'y', sizeof(buf));
    buf[10] = '\n';
    ekg_event_stream_t s;
    collected_t c = {{0}, 0};
    ekg_event_stream_init(&s, 100);
    /* A short line, then a complete 150-byte line: the second one is too long. */
    buf[161] = '\n';
    assert_int_equal(ekg_event_stream_feed(&s, buf, 162), EKG_OK);
    char *l;
    size_t n;
    assert_int_equal(ekg_event_stream_next(&s, &l, &n), EKG_OK);
    assert_int_equal(n, 10);
    assert_int_equal(ekg_event_stream_next(&s, &l, &n), EKG_ERANGE);
    assert_null(l);
    ekg_event_stream_free(&s);

    /* A short line, then an unfinished one that already exceeds the bound. */
    ekg_event_stream_init(&s, 100);
    memset(buf, 'y', sizeof(buf));
    buf[10] = '\n';
    assert_int_equal(ekg_event_stream_feed(&s, buf, 200), EKG_OK);
    assert_int_equal(ekg_event_stream_next(&s, &l, &n), EKG_OK);
    assert_int_equal(n, 10);
    assert_int_equal(ekg_event_stream_next(&s, &l, &n), EKG_ERANGE);
    ekg_event_stream_free(&s);
    (void)c;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),
        cmocka_unit_test(test_every_split_point),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_1mib_events_in_curl_pieces),
        cmocka_unit_test(test_1mib_events_in_odd_pieces),
        cmocka_unit_test(test_crlf_split_between_cr_and_lf),
        cmocka_unit_test(test_empty_lines_only),
        cmocka_unit_test(test_unfinished_last_line),
        cmocka_unit_test(test_bound_without_newline),
        cmocka_unit_test(test_bound_with_newline_in_the_piece),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
