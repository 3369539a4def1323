/*
 * tests/unit/resource_test.c: encoded resources and versioned resource sets (src/resource/resource.c):
 * ordering and uniqueness checks (also across the internal 128-item page boundary), lookups, content-derived
 * versions, page sharing with the previous set, and reference counting (leaks show under ASan/LSan).
 * Thread: the test's main thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ekglue/resource.h"

#define PAGE 128 /* src/resource/resource.c's PAGE_SIZE: the tests straddle it */

/* A resource named name whose bytes are content (NULL: the name itself). Owned by the caller. */
static ekg_resource_t *res(const char *name, const char *content)
{
    ekg_resource_t *r = NULL;
    const char *data = content ? content : name;
    assert_int_equal(ekg_resource_new(EKG_RESOURCE_CLUSTER, name, data, strlen(data), &r), EKG_OK);
    assert_non_null(r);
    return r;
}

/* n resources named "r00000", "r00001", ... (sorted), content "v<i>". The caller unrefs them (unref_all). */
static ekg_resource_t **make_items(size_t n)
{
    ekg_resource_t **items = calloc(n ? n : 1, sizeof(*items));
    assert_non_null(items);
    for (size_t i = 0; i < n; i++) {
        char name[32], content[32];
        snprintf(name, sizeof(name), "r%05zu", i * 2); /* even numbers: odd ones are absent names */
        snprintf(content, sizeof(content), "v%zu", i);
        items[i] = res(name, content);
    }
    return items;
}

static void unref_all(ekg_resource_t **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ekg_resource_unref(items[i]);
    free(items);
}

static ekg_resource_set_t *set_of(ekg_resource_t *const *items, size_t n, const ekg_resource_set_t *prev)
{
    ekg_resource_set_t *s = NULL;
    assert_int_equal(ekg_resource_set_new(EKG_RESOURCE_CLUSTER, items, n, prev, &s), EKG_OK);
    assert_non_null(s);
    return s;
}

/* Expects EKG_EINVAL and *out left alone. */
static void assert_rejected(ekg_resource_t *const *items, size_t n, const ekg_resource_set_t *prev)
{
    ekg_resource_set_t *sentinel = (ekg_resource_set_t *)(uintptr_t)0x1234, *s = sentinel;
    assert_int_equal(ekg_resource_set_new(EKG_RESOURCE_CLUSTER, items, n, prev, &s), EKG_EINVAL);
    assert_ptr_equal(s, sentinel);
}

/* Every item of s is items[i], and find() finds it. */
static void assert_set_is(const ekg_resource_set_t *s, ekg_resource_t *const *items, size_t n)
{
    assert_int_equal(ekg_resource_set_size(s), n);
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(ekg_resource_set_at(s, i), items[i]);
        assert_ptr_equal(ekg_resource_set_find(s, ekg_resource_name(items[i])), items[i]);
    }
    assert_null(ekg_resource_set_at(s, n));
}

/* --- resources
 * ------------------------------------------------------------------------------------------------ */

static void test_resource_fields(void **state)
{
    (void)state;
    ekg_resource_t *r = NULL;
    static const char bytes[] = {0x0a, 0x00, 0x03, (char)0xff}; /* embedded NUL: length counts, not strlen */
    assert_int_equal(
        ekg_resource_new(EKG_RESOURCE_LOAD_ASSIGNMENT, "shop:web:http", bytes, sizeof(bytes), &r), EKG_OK);
    assert_int_equal(ekg_resource_type(r), EKG_RESOURCE_LOAD_ASSIGNMENT);
    assert_string_equal(ekg_resource_name(r), "shop:web:http");
    size_t len = 0;
    const char *data = ekg_resource_data(r, &len);
    assert_int_equal(len, sizeof(bytes));
    assert_memory_equal(data, bytes, sizeof(bytes));

    ekg_resource_t *same = NULL, *other = NULL, *empty = NULL;
    assert_int_equal(ekg_resource_new(EKG_RESOURCE_LOAD_ASSIGNMENT, "x", bytes, sizeof(bytes), &same),
                     EKG_OK);
    assert_int_equal(ekg_resource_new(EKG_RESOURCE_LOAD_ASSIGNMENT, "shop:web:http", bytes, 3, &other),
                     EKG_OK);
    assert_int_equal(ekg_resource_new(EKG_RESOURCE_CLUSTER, "empty", NULL, 0, &empty), EKG_OK);
    /* The hash is of the bytes only. */
    assert_int_equal(ekg_resource_hash(same), ekg_resource_hash(r));
    assert_int_not_equal(ekg_resource_hash(other), ekg_resource_hash(r));
    ekg_resource_data(empty, &len);
    assert_int_equal(len, 0);
    assert_string_equal(ekg_resource_name(empty), "empty");

    assert_string_equal(ekg_resource_type_url(EKG_RESOURCE_CLUSTER),
                        "type.googleapis.com/envoy.config.cluster.v3.Cluster");
    assert_string_equal(ekg_resource_type_url(EKG_RESOURCE_LOAD_ASSIGNMENT),
                        "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment");
    assert_null(ekg_resource_type_url(EKG_RESOURCE__COUNT));

    /* ref returns the same object; each reference needs its unref (LSan checks the balance). */
    assert_ptr_equal(ekg_resource_ref(r), r);
    ekg_resource_unref(r);
    ekg_resource_unref(r);
    ekg_resource_unref(same);
    ekg_resource_unref(other);
    ekg_resource_unref(empty);
    ekg_resource_unref(NULL);
}

/* --- ordering and uniqueness
 * ------------------------------------------------------------------------------------ */

static void test_set_rejects_unsorted_and_duplicates(void **state)
{
    (void)state;
    ekg_resource_t *a = res("a", NULL), *b = res("b", NULL), *a2 = res("a", "other bytes");
    ekg_resource_t *unsorted[] = {b, a};
    ekg_resource_t *dup_names[] = {a, a2, b};
    ekg_resource_t *dup_object[] = {a, a};
    assert_rejected(unsorted, 2, NULL);
    assert_rejected(dup_names, 3, NULL);
    assert_rejected(dup_object, 2, NULL);
    ekg_resource_t *ok[] = {a, b};
    ekg_resource_set_t *s = set_of(ok, 2, NULL);
    assert_set_is(s, ok, 2);
    ekg_resource_set_unref(s);
    /* The rejected calls took no references: these are the last ones. */
    ekg_resource_unref(a);
    ekg_resource_unref(b);
    ekg_resource_unref(a2);
}

/* Errors at, just before and just after the page boundary (items PAGE-1 and PAGE), and deep in a later page.
 */
static void test_set_rejects_across_page_boundary(void **state)
{
    (void)state;
    const size_t n = 3 * PAGE + 5;
    ekg_resource_t **items = make_items(n);
    ekg_resource_t **work = calloc(n, sizeof(*work));
    assert_non_null(work);
    static const size_t spots[] = {PAGE - 2, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE - 1, 2 * PAGE, 3 * PAGE + 3};
    for (size_t k = 0; k < sizeof(spots) / sizeof(spots[0]); k++) {
        size_t i = spots[k];
        /* Duplicate: item i+1 repeats item i's name. */
        memcpy(work, items, n * sizeof(*work));
        ekg_resource_t *dup = res(ekg_resource_name(items[i]), "dup");
        work[i + 1] = dup;
        print_message("duplicate at %zu/%zu\n", i, i + 1);
        assert_rejected(work, n, NULL);
        /* The same object twice. */
        work[i + 1] = items[i];
        assert_rejected(work, n, NULL);
        ekg_resource_unref(dup);
        /* Swapped: items i and i+1 out of order. */
        memcpy(work, items, n * sizeof(*work));
        work[i] = items[i + 1];
        work[i + 1] = items[i];
        print_message("swap at %zu/%zu\n", i, i + 1);
        assert_rejected(work, n, NULL);
    }

    /* With a previous set whose first pages are reused: the boundary into a changed page is still checked. */
    ekg_resource_set_t *prev = set_of(items, n, NULL);
    memcpy(work, items, n * sizeof(*work));
    ekg_resource_t *early = res("a-sorts-first", NULL); /* before every "r..." */
    work[PAGE] = early;                                 /* first item of page 1, < last item of page 0 */
    assert_rejected(work, n, prev);
    work[PAGE] = items[PAGE - 1]; /* a duplicate of page 0's last item, across the boundary */
    assert_rejected(work, n, prev);
    /* Page 0 changed (not reusable), page 1 reusable: the boundary is checked from the other side. */
    memcpy(work, items, n * sizeof(*work));
    ekg_resource_t *late = res("zz-sorts-last", NULL);
    work[PAGE - 1] = late;
    assert_rejected(work, n, prev);
    ekg_resource_unref(early);
    ekg_resource_unref(late);
    ekg_resource_set_unref(prev);
    free(work);
    unref_all(items, n);
}

/* --- lookups
 * ---------------------------------------------------------------------------------------------------- */

static void test_set_find(void **state)
{
    (void)state;
    ekg_resource_set_t *empty = set_of(NULL, 0, NULL);
    assert_int_equal(ekg_resource_set_size(empty), 0);
    assert_null(ekg_resource_set_find(empty, "r00000"));
    assert_null(ekg_resource_set_at(empty, 0));
    ekg_resource_set_unref(empty);

    static const size_t sizes[] = {1, 2, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE, 300};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k];
        print_message("n=%zu\n", n);
        ekg_resource_t **items = make_items(n);
        ekg_resource_set_t *s = set_of(items, n, NULL);
        assert_set_is(s, items, n); /* every item, first and last included */
        assert_ptr_equal(ekg_resource_set_find(s, "r00000"), items[0]);
        assert_ptr_equal(ekg_resource_set_find(s, ekg_resource_name(items[n - 1])), items[n - 1]);
        /* Absent: before the first, after the last, between any two, a prefix, an extension. */
        assert_null(ekg_resource_set_find(s, ""));
        assert_null(ekg_resource_set_find(s, "a"));
        assert_null(ekg_resource_set_find(s, "zzz"));
        assert_null(ekg_resource_set_find(s, "r"));
        assert_null(ekg_resource_set_find(s, "r000000"));
        for (size_t i = 0; i < n; i++) {
            char name[32];
            snprintf(name, sizeof(name), "r%05zu", i * 2 + 1);
            assert_null(ekg_resource_set_find(s, name));
        }
        ekg_resource_set_unref(s);
        unref_all(items, n);
    }
}

/* --- versions
 * ----------------------------------------------------------------------------------------------------- */

static bool is_hex16(const char *v)
{
    if (strlen(v) != 16)
        return false;
    for (const char *p = v; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* Same names and bytes (other objects) -> same version; any change -> another version. */
static void test_set_version_is_content_hash(void **state)
{
    (void)state;
    const size_t n = 2 * PAGE + 10;
    ekg_resource_t **a = make_items(n), **b = make_items(n); /* equal content, distinct objects */
    ekg_resource_set_t *sa = set_of(a, n, NULL), *sb = set_of(b, n, NULL);
    char v[17];
    snprintf(v, sizeof(v), "%s", ekg_resource_set_version(sa));
    assert_true(is_hex16(v));
    assert_string_equal(ekg_resource_set_version(sb), v);

    ekg_resource_t **work = calloc(n, sizeof(*work));
    assert_non_null(work);
    /* One item's bytes, anywhere. */
    static const size_t spots[] = {0, PAGE - 1, PAGE, n - 1};
    for (size_t k = 0; k < sizeof(spots) / sizeof(spots[0]); k++) {
        memcpy(work, a, n * sizeof(*work));
        ekg_resource_t *changed = res(ekg_resource_name(a[spots[k]]), "changed");
        work[spots[k]] = changed;
        ekg_resource_set_t *s = set_of(work, n, NULL);
        print_message("changed item %zu\n", spots[k]);
        assert_string_not_equal(ekg_resource_set_version(s), v);
        ekg_resource_set_unref(s);
        ekg_resource_unref(changed);
    }
    /* One item's name (same bytes). */
    memcpy(work, a, n * sizeof(*work));
    ekg_resource_t *renamed = res("r00001", "v0");
    work[0] = renamed;
    ekg_resource_set_t *s = set_of(work, n, NULL);
    assert_string_not_equal(ekg_resource_set_version(s), v);
    ekg_resource_set_unref(s);
    ekg_resource_unref(renamed);
    /* One item fewer (the last one, or one at the page boundary). */
    s = set_of(a, n - 1, NULL);
    assert_string_not_equal(ekg_resource_set_version(s), v);
    ekg_resource_set_unref(s);
    memcpy(work, a, n * sizeof(*work));
    memmove(work + PAGE, work + PAGE + 1, (n - PAGE - 1) * sizeof(*work));
    s = set_of(work, n - 1, NULL);
    assert_string_not_equal(ekg_resource_set_version(s), v);
    ekg_resource_set_unref(s);
    /* Two items exchanging their contents. */
    ekg_resource_t *x1 = res("a", "1"), *y1 = res("b", "2"), *x2 = res("a", "2"), *y2 = res("b", "1");
    ekg_resource_t *first[] = {x1, y1}, *second[] = {x2, y2};
    ekg_resource_set_t *s1 = set_of(first, 2, NULL), *s2 = set_of(second, 2, NULL);
    assert_string_not_equal(ekg_resource_set_version(s1), ekg_resource_set_version(s2));
    /* An empty set has a version too, distinct from these. */
    ekg_resource_set_t *empty = set_of(NULL, 0, NULL);
    assert_true(is_hex16(ekg_resource_set_version(empty)));
    assert_string_not_equal(ekg_resource_set_version(empty), ekg_resource_set_version(s1));
    ekg_resource_set_unref(empty);
    ekg_resource_set_unref(s1);
    ekg_resource_set_unref(s2);
    ekg_resource_unref(x1);
    ekg_resource_unref(y1);
    ekg_resource_unref(x2);
    ekg_resource_unref(y2);

    free(work);
    ekg_resource_set_unref(sa);
    ekg_resource_set_unref(sb);
    unref_all(a, n);
    unref_all(b, n);
}

/* --- sharing with the previous set
 * -------------------------------------------------------------------------------- */

/*
 * A set built from the previous one with changes is correct item by item, does not depend on the previous set
 * staying alive, and has the version of the same set built from scratch.
 */
static void test_set_shares_pages_with_prev(void **state)
{
    (void)state;
    const size_t n = 3 * PAGE + 17;
    ekg_resource_t **items = make_items(n);
    ekg_resource_set_t *prev = set_of(items, n, NULL);
    ekg_resource_t **work = calloc(n + 1, sizeof(*work));
    assert_non_null(work);

    /* 1. One item replaced in page 1. */
    memcpy(work, items, n * sizeof(*work));
    ekg_resource_t *changed = res(ekg_resource_name(items[PAGE + 5]), "changed");
    work[PAGE + 5] = changed;
    ekg_resource_set_t *shared = set_of(work, n, prev);
    ekg_resource_set_t *scratch = set_of(work, n, NULL);
    assert_set_is(shared, work, n);
    assert_string_equal(ekg_resource_set_version(shared), ekg_resource_set_version(scratch));
    assert_string_not_equal(ekg_resource_set_version(shared), ekg_resource_set_version(prev));
    ekg_resource_set_unref(scratch);

    /* 2. Chained: built on `shared`, then the older sets dropped first. */
    ekg_resource_t *changed2 = res(ekg_resource_name(items[n - 1]), "changed too");
    work[n - 1] = changed2;
    ekg_resource_set_t *next = set_of(work, n, shared);
    ekg_resource_set_unref(shared);
    ekg_resource_unref(changed); /* `next` holds the only reference left */
    ekg_resource_unref(changed2);
    assert_set_is(next, work, n);
    scratch = set_of(work, n, NULL);
    assert_string_equal(ekg_resource_set_version(next), ekg_resource_set_version(scratch));
    ekg_resource_set_unref(scratch);
    ekg_resource_set_unref(next);

    /* 3. An item inserted in page 0: every later item shifts; nothing may be reused wrongly. */
    ekg_resource_t *inserted = res("r00003", "new");
    work[0] = items[0];
    work[1] = items[1];
    work[2] = inserted;
    memcpy(work + 3, items + 2, (n - 2) * sizeof(*work));
    shared = set_of(work, n + 1, prev);
    scratch = set_of(work, n + 1, NULL);
    assert_set_is(shared, work, n + 1);
    assert_string_equal(ekg_resource_set_version(shared), ekg_resource_set_version(scratch));
    ekg_resource_set_unref(shared);
    ekg_resource_set_unref(scratch);

    /* 4. Shrunk to part of a page, and grown from a smaller prev. */
    ekg_resource_set_t *small = set_of(items, PAGE + 3, prev);
    assert_set_is(small, items, PAGE + 3);
    scratch = set_of(items, PAGE + 3, NULL);
    assert_string_equal(ekg_resource_set_version(small), ekg_resource_set_version(scratch));
    ekg_resource_set_unref(scratch);
    ekg_resource_set_t *grown = set_of(items, n, small);
    assert_set_is(grown, items, n);
    assert_string_equal(ekg_resource_set_version(grown), ekg_resource_set_version(prev));
    ekg_resource_set_unref(small);
    ekg_resource_set_unref(grown);

    /* 5. Identical items: the same version as prev. */
    ekg_resource_set_t *same = set_of(items, n, prev);
    ekg_resource_set_unref(prev); /* dropped before `same` is read */
    assert_set_is(same, items, n);
    scratch = set_of(items, n, NULL);
    assert_string_equal(ekg_resource_set_version(same), ekg_resource_set_version(scratch));
    ekg_resource_set_unref(scratch);
    ekg_resource_set_unref(same);

    ekg_resource_unref(inserted);
    free(work);
    unref_all(items, n);
}

/* --- reference counting
 * ------------------------------------------------------------------------------------------- */

/* Sets hold their own references: items outlive the caller's references; the last unref frees everything. */
static void test_refcounting(void **state)
{
    (void)state;
    const size_t n = PAGE + 2;
    ekg_resource_t **items = make_items(n);
    ekg_resource_set_t *s = set_of(items, n, NULL);
    unref_all(items, n); /* the set's references remain */
    assert_string_equal(ekg_resource_name(ekg_resource_set_at(s, n - 1)), "r00258");
    size_t len;
    const char *data = ekg_resource_data(ekg_resource_set_find(s, "r00000"), &len);
    assert_int_equal(len, 2);
    assert_memory_equal(data, "v0", 2);

    /* A resource kept by a caller beyond its set. */
    ekg_resource_t *kept = ekg_resource_ref(ekg_resource_set_at(s, 3));
    assert_ptr_equal(ekg_resource_set_ref(s), s);
    ekg_resource_set_unref(s);
    ekg_resource_set_unref(s); /* freed here */
    assert_string_equal(ekg_resource_name(kept), "r00006");
    ekg_resource_unref(kept);
    ekg_resource_set_unref(NULL);

    /* Many sets sharing pages, dropped in creation order. */
    items = make_items(3 * PAGE);
    ekg_resource_set_t *chain[8] = {0};
    chain[0] = set_of(items, 3 * PAGE, NULL);
    for (int i = 1; i < 8; i++) {
        ekg_resource_t *swap = res(ekg_resource_name(items[(size_t)i * 37]), "swapped");
        ekg_resource_unref(items[(size_t)i * 37]);
        items[(size_t)i * 37] = swap;
        chain[i] = set_of(items, 3 * PAGE, chain[i - 1]);
    }
    unref_all(items, 3 * PAGE);
    for (int i = 0; i < 7; i++)
        ekg_resource_set_unref(chain[i]);
    assert_memory_equal(ekg_resource_data(ekg_resource_set_at(chain[7], 37), &len), "swapped", 7);
    ekg_resource_set_unref(chain[7]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resource_fields),
        cmocka_unit_test(test_set_rejects_unsorted_and_duplicates),
        cmocka_unit_test(test_set_rejects_across_page_boundary),
        cmocka_unit_test(test_set_find),
        cmocka_unit_test(test_set_version_is_content_hash),
        cmocka_unit_test(test_set_shares_pages_with_prev),
        cmocka_unit_test(test_refcounting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
