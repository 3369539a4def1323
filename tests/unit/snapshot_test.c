/*
 * tests/unit/snapshot_test.c: snapshots and the cache (src/resource/snapshot.c, src/cache/cache.c).
 *
 * Snapshots fill missing sets with empty ones, keep their sets alive by reference, carry an optional
 * localities document (settable only while unshared); the cache announces a snapshot to its watcher only when
 * some type's version changed, keeps the "since" time of unchanged types, and hands out references.
 *
 * Per-place sets (zone-aware endpoints, docs/translation.md): four threads asking one snapshot for its sets
 * at several places at once all get the same object per place (built once, under the snapshot's lock), and a
 * set built with the previous snapshot's set for the same place as a hint shares its unchanged pages with
 * it. This file is in tests/tsan.sh's list. Thread: main, and the four reader threads of the threaded test.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ekglue/cache.h"
#include "ekglue/metrics.h"
#include "ekglue/proto.h"
#include "ekglue/translate.h"

#include "k8s_fixtures.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* The sanitizer allocators' count of live bytes (sanitizer/allocator_interface.h, not shipped with gcc 12).
 */
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t allocated_bytes(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
#include <malloc.h>
static size_t allocated_bytes(void)
{
    return mallinfo2().uordblks;
}
#endif

static ekg_resource_set_t *one_set(ekg_resource_type_t type, const char *name, const char *content)
{
    ekg_resource_t *r = NULL;
    ekg_resource_set_t *set = NULL;
    assert_int_equal(ekg_resource_new(type, name, content, strlen(content), &r), EKG_OK);
    assert_int_equal(ekg_resource_set_new(type, &r, 1, NULL, &set), EKG_OK);
    ekg_resource_unref(r);
    return set;
}

/* A snapshot whose cluster set holds one cluster with the given content. */
static ekg_snapshot_t *snapshot_with(const char *cluster_content)
{
    ekg_resource_set_t *sets[EKG_RESOURCE__COUNT] = {0};
    sets[EKG_RESOURCE_CLUSTER] = one_set(EKG_RESOURCE_CLUSTER, "ns:svc:http", cluster_content);
    ekg_snapshot_t *s = NULL;
    s = ekg_snapshot_new(sets);
    ekg_resource_set_unref(sets[EKG_RESOURCE_CLUSTER]); /* the snapshot keeps its own reference */
    return s;
}

static void test_missing_sets_are_empty(void **state)
{
    (void)state;
    ekg_snapshot_t *s = snapshot_with("a");
    assert_int_equal(ekg_resource_set_size(ekg_snapshot_resources(s, EKG_RESOURCE_CLUSTER)), 1);
    for (int t = EKG_RESOURCE_LOAD_ASSIGNMENT; t < EKG_RESOURCE__COUNT; t++) {
        ekg_resource_set_t *set = ekg_snapshot_resources(s, (ekg_resource_type_t)t);
        assert_non_null(set);
        assert_int_equal(ekg_resource_set_size(set), 0);
    }
    assert_string_equal(
        ekg_resource_name(ekg_resource_set_at(ekg_snapshot_resources(s, EKG_RESOURCE_CLUSTER), 0)),
        "ns:svc:http");
    ekg_snapshot_unref(s);
}

static void test_serials_increase(void **state)
{
    (void)state;
    ekg_snapshot_t *a = snapshot_with("a"), *b = snapshot_with("a");
    assert_true(ekg_snapshot_serial(b) > ekg_snapshot_serial(a));
    ekg_snapshot_unref(a);
    ekg_snapshot_unref(b);
}

static void test_localities_only_while_unshared(void **state)
{
    (void)state;
    ekg_snapshot_t *s = snapshot_with("a");
    assert_null(ekg_snapshot_localities(s));
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "node-1", cJSON_CreateObject());
    assert_int_equal(ekg_snapshot_set_localities(s, doc), EKG_OK);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(ekg_snapshot_localities(s), "node-1"));
    /* Not an object: refused (and freed). */
    assert_int_equal(ekg_snapshot_set_localities(s, cJSON_CreateArray()), EKG_EINVAL);
    /* Shared: refused (and freed), the first document stays. */
    ekg_snapshot_t *other = ekg_snapshot_ref(s);
    assert_int_equal(ekg_snapshot_set_localities(s, cJSON_CreateObject()), EKG_EINVAL);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(ekg_snapshot_localities(s), "node-1"));
    ekg_snapshot_unref(other);
    ekg_snapshot_unref(s);
}

typedef struct watch_log {
    int calls;
    unsigned long long last_serial;
} watch_log_t;

static void on_publish(void *ctx, ekg_snapshot_t *snap)
{
    watch_log_t *log = ctx;
    log->calls++;
    log->last_serial = ekg_snapshot_serial(snap);
}

static void test_cache_announces_only_changes(void **state)
{
    (void)state;
    ekg_cache_t *c = NULL;
    watch_log_t log = {0};
    c = ekg_cache_new();
    assert_null(ekg_cache_current(c));
    ekg_cache_set_watch(c, on_publish, &log);

    ekg_snapshot_t *a = snapshot_with("a");
    ekg_cache_publish(c, a);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.last_serial, ekg_snapshot_serial(a));
    double since_a = ekg_snapshot_version_since(a, EKG_RESOURCE_CLUSTER);
    assert_true(since_a > 0);

    /* The same content in a new snapshot object: not announced, the current one stays. */
    ekg_snapshot_t *same = snapshot_with("a");
    ekg_cache_publish(c, same);
    assert_int_equal(log.calls, 1);
    ekg_snapshot_t *cur = ekg_cache_current(c);
    assert_ptr_equal(cur, a);
    ekg_snapshot_unref(cur);

    /* A change: announced, current, and its since time is its own. */
    ekg_snapshot_t *b = snapshot_with("b");
    ekg_cache_publish(c, b);
    assert_int_equal(log.calls, 2);
    assert_int_equal(log.last_serial, ekg_snapshot_serial(b));
    assert_true(ekg_snapshot_version_since(b, EKG_RESOURCE_CLUSTER) >= since_a);
    /* An unchanged type (the empty listener set) keeps the time of the earlier publish. */
    assert_true(ekg_snapshot_version_since(b, EKG_RESOURCE_LISTENER) ==
                ekg_snapshot_version_since(a, EKG_RESOURCE_LISTENER));

    /* The cache holds its own reference: the caller's can go. */
    ekg_snapshot_unref(a);
    ekg_snapshot_unref(same);
    ekg_snapshot_unref(b);
    cur = ekg_cache_current(c);
    assert_non_null(cur);
    assert_int_equal(ekg_resource_set_size(ekg_snapshot_resources(cur, EKG_RESOURCE_CLUSTER)), 1);
    ekg_snapshot_unref(cur);
    ekg_cache_free(c);
}

static void test_localities_change_is_taken(void **state)
{
    (void)state;
    ekg_cache_t *c = NULL;
    watch_log_t log = {0};
    c = ekg_cache_new();
    ekg_cache_set_watch(c, on_publish, &log);
    ekg_snapshot_t *a = snapshot_with("a"), *b = snapshot_with("a"), *same = snapshot_with("a");
    cJSON *la = cJSON_Parse("{\"node-1\":{\"zone\":\"z1\"}}");
    cJSON *lb = cJSON_Parse("{\"node-1\":{\"zone\":\"z2\"}}");
    assert_int_equal(ekg_snapshot_set_localities(same, cJSON_Duplicate(lb, 1)), EKG_OK);
    assert_int_equal(ekg_snapshot_set_localities(a, la), EKG_OK);
    assert_int_equal(ekg_snapshot_set_localities(b, lb), EKG_OK);
    ekg_cache_publish(c, a);
    ekg_cache_publish(c, b); /* same resources, the node moved: taken */
    assert_int_equal(log.calls, 2);
    ekg_cache_publish(c, same); /* nothing changed at all: not announced */
    assert_int_equal(log.calls, 2);
    ekg_snapshot_t *cur = ekg_cache_current(c);
    assert_ptr_equal(cur, b);
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(ekg_snapshot_localities(cur), "node-1");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(node, "zone")->valuestring, "z2");
    ekg_snapshot_unref(cur);
    ekg_snapshot_unref(a);
    ekg_snapshot_unref(b);
    ekg_snapshot_unref(same);
    ekg_cache_free(c);
}

/* The one publish step of every source: takes a changed translation once, records its build time only then,
 * and leaves the cache alone on an unchanged one. */
static void test_publish_translation(void **state)
{
    (void)state;
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_proto_init(&diag), EKG_OK);
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    ekg_translator_put_service(t, fx_service("{'apiVersion': 'v1', 'kind': 'Service', "
                                             "'metadata': {'namespace': 'shop', 'name': 'cart'}, "
                                             "'spec': {'ports': [{'name': 'http', 'port': 80}]}}"));
    ekg_cache_t *c = NULL;
    c = ekg_cache_new();
    ekg_metrics_values_t m0, m1, m2;
    ekg_metrics_read(&m0);

    bool taken = false;
    ekg_snapshot_t *snap = NULL;
    assert_int_equal(ekg_cache_publish_translation(c, t, &taken, &snap), EKG_OK);
    assert_true(taken);
    assert_non_null(snap);
    ekg_snapshot_t *cur = ekg_cache_current(c);
    assert_ptr_equal(cur, snap);
    assert_int_equal(ekg_resource_set_size(ekg_snapshot_resources(cur, EKG_RESOURCE_CLUSTER)), 1);
    ekg_snapshot_unref(cur);
    ekg_snapshot_unref(snap);
    ekg_metrics_read(&m1);
    assert_int_equal(m1.snapshot_build.count, m0.snapshot_build.count + 1);
    assert_true(m1.last_update > 0);

    /* Nothing changed: built, not taken, not counted. */
    assert_int_equal(ekg_cache_publish_translation(c, t, &taken, NULL), EKG_OK);
    assert_false(taken);
    ekg_metrics_read(&m2);
    assert_int_equal(m2.snapshot_build.count, m1.snapshot_build.count);

    ekg_cache_free(c);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* --- per-place sets ---------------------------------------------------------------------------------- */

#define LA EKG_RESOURCE_LOAD_ASSIGNMENT

/* Service ns/NAME (port http 80 -> 8080) with trafficDistribution td, and its slice with `endpoints`
 * ('-quoted JSON list members). */
static void put_zoned_service(ekg_translator_t *t, const char *name, const char *td, const char *endpoints)
{
    ekg_translator_put_service(
        t, fx_service("{'metadata': {'namespace': 'ns', 'name': '%s'}, 'spec': {'trafficDistribution': '%s', "
                      "'ports': [{'name': 'http', 'port': 80, 'targetPort': 8080}]}}",
                      name, td));
    ekg_translator_put_slice(
        t, fx_slice(
               "{'metadata': {'namespace': 'ns', 'name': '%s-1', 'labels': {'kubernetes.io/service-name': "
               "'%s'}}, 'addressType': 'IPv4', 'endpoints': [%s], 'ports': [{'name': 'http', 'port': 8080}]}",
               name, name, endpoints));
}

#define ZEP(addr, node) "{'addresses': ['" addr "'], 'conditions': {'ready': true}, 'nodeName': '" node "'}"

static const ekg_place_t thread_places[] = {
    {"r1", "a", ""}, {"r1", "a", "a1"}, {"r1", "b", ""}, {"r1", "b", "b1"},
    {"r2", "c", ""}, {"r2", "c", "c1"}, {"", "a", ""},   {"r1", "zz", ""},
    {"", "", "a2"},  {"r9", "q", ""},   {"", "", ""},    {"r1", "a", "a2"},
};
#define NTHREAD_PLACES (sizeof(thread_places) / sizeof(thread_places[0]))
#define NTHREADS       4

typedef struct reader {
    pthread_t thread;
    ekg_snapshot_t *snap; /* borrowed: main holds a reference until the join */
    pthread_barrier_t *start;
    size_t first; /* where this reader starts in thread_places, so they collide */
    ekg_resource_set_t *got[NTHREAD_PLACES][EKG_RESOURCE__COUNT]; /* borrowed from snap */
    char versions[NTHREAD_PLACES][17];
    size_t fields_len[NTHREAD_PLACES];
    size_t place_count;
} reader_t;

/* A reader thread: asks for every type at every place, twice, reading each set (version, items, the response
 * fields) as a stream would. Records what it got; asserts nothing (cmocka is not thread-safe). */
static void *read_places(void *arg)
{
    reader_t *r = arg;
    pthread_barrier_wait(r->start);
    for (int round = 0; round < 2; round++)
        for (size_t k = 0; k < NTHREAD_PLACES; k++) {
            size_t p = (r->first + k) % NTHREAD_PLACES;
            for (int ty = 0; ty < EKG_RESOURCE__COUNT; ty++) {
                ekg_resource_set_t *set =
                    ekg_snapshot_resources_at(r->snap, (ekg_resource_type_t)ty, &thread_places[p]);
                if (round == 0)
                    r->got[p][ty] = set;
                else if (r->got[p][ty] != set)
                    r->got[p][ty] = NULL; /* a second, different answer: the main thread fails on it */
                for (size_t i = 0; i < ekg_resource_set_size(set); i++)
                    (void)ekg_resource_hash(ekg_resource_set_at(set, i));
                if (ty == LA) {
                    const char *data;
                    size_t len;
                    ekg_resource_set_response_fields(set, &data, &len);
                    r->fields_len[p] = len;
                    snprintf(r->versions[p], sizeof(r->versions[p]), "%s", ekg_resource_set_version(set));
                }
            }
            r->place_count = ekg_snapshot_place_count(r->snap);
        }
    return NULL;
}

/* Four threads at once on one snapshot, several places: one set object per place key, built once, the same
 * as a later serial call returns; a Service changed between rounds makes its variants anew, in the race. */
static void test_resources_at_from_threads(void **state)
{
    (void)state;
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_proto_init(&diag), EKG_OK);
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    ekg_translator_put_node(t, fx_node_in("a1", "r1", "a"));
    ekg_translator_put_node(t, fx_node_in("a2", "r1", "a"));
    ekg_translator_put_node(t, fx_node_in("b1", "r1", "b"));
    ekg_translator_put_node(t, fx_node_in("c1", "r2", "c"));
    put_zoned_service(t, "web", "PreferClose",
                      ZEP("10.0.0.1", "a1") ", " ZEP("10.0.0.2", "a2") ", " ZEP("10.0.0.3", "b1") ", " ZEP(
                          "10.0.0.4", "c1"));
    put_zoned_service(t, "local", "PreferSameNode",
                      ZEP("10.0.1.1", "a1") ", " ZEP("10.0.1.2", "a2") ", " ZEP("10.0.1.3", "c1"));
    for (int round = 0; round < 20; round++) {
        /* A new plan for one Service each round: its variants are built by whichever thread comes first. */
        char endpoints[512];
        snprintf(endpoints, sizeof(endpoints),
                 ZEP("10.0.2.1", "b1") ", {'addresses': ['10.0.3.%d'], "
                                       "'conditions': {'ready': true}, 'nodeName': '%s'}",
                 round, round % 2 ? "a1" : "c1");
        put_zoned_service(t, "api", "PreferClose", endpoints);
        ekg_snapshot_t *snap = NULL;
        assert_int_equal(ekg_translator_snapshot(t, &snap), EKG_OK);
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, NTHREADS);
        static reader_t readers[NTHREADS];
        for (size_t i = 0; i < NTHREADS; i++) {
            readers[i] = (reader_t){.snap = snap, .start = &start, .first = i * 3 + (size_t)round};
            assert_int_equal(pthread_create(&readers[i].thread, NULL, read_places, &readers[i]), 0);
        }
        for (size_t i = 0; i < NTHREADS; i++)
            assert_int_equal(pthread_join(readers[i].thread, NULL), 0);
        pthread_barrier_destroy(&start);
        for (size_t p = 0; p < NTHREAD_PLACES; p++)
            for (int ty = 0; ty < EKG_RESOURCE__COUNT; ty++) {
                ekg_resource_set_t *serial =
                    ekg_snapshot_resources_at(snap, (ekg_resource_type_t)ty, &thread_places[p]);
                for (size_t i = 0; i < NTHREADS; i++)
                    if (readers[i].got[p][ty] != serial)
                        fail_msg("round %d, place %s/%s/%s, type %d: reader %zu got %p, the snapshot has %p",
                                 round, thread_places[p].region, thread_places[p].zone, thread_places[p].node,
                                 ty, i, (void *)readers[i].got[p][ty], (void *)serial);
                if (ty == LA)
                    for (size_t i = 0; i < NTHREADS; i++) {
                        assert_string_equal(readers[i].versions[p], ekg_resource_set_version(serial));
                        const char *data;
                        size_t len;
                        ekg_resource_set_response_fields(serial, &data, &len);
                        assert_int_equal(readers[i].fields_len[p], len);
                    }
            }
        /* The places are told apart as the endpoints allow: (r1, a) has its own set, (r9, q) and no place the
         * base one, a2 (a PreferSameNode endpoint's Node) its own. */
        ekg_resource_set_t *base = ekg_snapshot_resources(snap, LA);
        assert_ptr_equal(readers[0].got[9][LA], base);
        assert_ptr_equal(readers[0].got[10][LA], base);
        assert_ptr_not_equal(readers[0].got[0][LA], base);
        assert_ptr_not_equal(readers[0].got[0][LA], readers[0].got[11][LA]);
        size_t count = ekg_snapshot_place_count(snap);
        for (size_t i = 0; i < NTHREADS; i++)
            assert_true(readers[i].place_count <= count);
        ekg_snapshot_unref(snap);
    }
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

typedef struct diff_count {
    int calls;
    char last[64];
} diff_count_t;

static void count_diff(void *ctx, const char *name, const ekg_resource_t *before, const ekg_resource_t *after)
{
    diff_count_t *d = ctx;
    (void)before;
    (void)after;
    d->calls++;
    snprintf(d->last, sizeof(d->last), "%s", name);
}

/*
 * The cache hands a published snapshot the per-place sets of the one before as hints: a set built with its
 * hint shares every unchanged page of it (600 assignments are 5 pages of 128; one changed Service costs one
 * page), so it takes less memory than the same set built without one, and is the same set by content.
 */
static void test_inherited_places_share_pages(void **state)
{
    (void)state;
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_proto_init(&diag), EKG_OK);
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    ekg_translator_put_node(t, fx_node_in("a1", "r1", "a"));
    ekg_translator_put_node(t, fx_node_in("b1", "r1", "b"));
    enum { NSERVICES = 600, CHANGED = 300 };
    for (int i = 0; i < NSERVICES; i++) {
        char name[32], endpoints[256];
        snprintf(name, sizeof(name), "svc-%03d", i);
        snprintf(endpoints, sizeof(endpoints),
                 "{'addresses': ['10.1.%d.%d'], 'conditions': {'ready': true}, 'nodeName': 'a1'}, "
                 "{'addresses': ['10.2.%d.%d'], 'conditions': {'ready': true}, 'nodeName': 'b1'}",
                 i / 250, i % 250, i / 250, i % 250);
        put_zoned_service(t, name, "PreferClose", endpoints);
    }
    const ekg_place_t place = {"r1", "a", ""};
    ekg_cache_t *c = ekg_cache_new();
    ekg_snapshot_t *a = NULL, *warm = NULL, *b = NULL, *d = NULL;
    assert_int_equal(ekg_translator_snapshot(t, &a), EKG_OK);
    assert_true(ekg_cache_publish(c, a));
    ekg_resource_set_t *set_a = ekg_snapshot_resources_at(a, LA, &place);
    assert_int_equal(ekg_resource_set_size(set_a), NSERVICES);
    assert_ptr_not_equal(set_a, ekg_snapshot_resources(a, LA));

    put_zoned_service(t, "svc-300", "PreferClose",
                      "{'addresses': ['10.1.1.50'], 'conditions': {'ready': true}, 'nodeName': 'a1'}, "
                      "{'addresses': ['10.1.1.51'], 'conditions': {'ready': true}, 'nodeName': 'a1'}, "
                      "{'addresses': ['10.2.1.50'], 'conditions': {'ready': true}, 'nodeName': 'b1'}");
    /* A first snapshot of the change builds the changed variant, so that what is measured below is sets. */
    assert_int_equal(ekg_translator_snapshot(t, &warm), EKG_OK);
    (void)ekg_snapshot_resources_at(warm, LA, &place);
    ekg_snapshot_unref(warm);

    /* Published: a's place sets are b's hints. */
    assert_int_equal(ekg_translator_snapshot(t, &b), EKG_OK);
    assert_true(ekg_cache_publish(c, b));
    size_t before = allocated_bytes();
    ekg_resource_set_t *set_b = ekg_snapshot_resources_at(b, LA, &place);
    size_t with_hint = allocated_bytes() - before;

    /* Not published: no hint. Its place entry is made first (by another type), so only the set is measured.
     */
    assert_int_equal(ekg_translator_snapshot(t, &d), EKG_OK);
    assert_ptr_equal(ekg_snapshot_resources_at(d, EKG_RESOURCE_CLUSTER, &place),
                     ekg_snapshot_resources(d, EKG_RESOURCE_CLUSTER));
    before = allocated_bytes();
    ekg_resource_set_t *set_d = ekg_snapshot_resources_at(d, LA, &place);
    size_t without_hint = allocated_bytes() - before;

    /* The same set by content and by items... */
    assert_string_equal(ekg_resource_set_version(set_b), ekg_resource_set_version(set_d));
    for (size_t i = 0; i < NSERVICES; i++)
        assert_ptr_equal(ekg_resource_set_at(set_b, i), ekg_resource_set_at(set_d, i));
    /* ... one change from a's ... */
    diff_count_t diff = {0};
    ekg_resource_set_diff(set_a, set_b, count_diff, &diff);
    assert_int_equal(diff.calls, 1);
    assert_string_equal(diff.last, "ns:svc-300:http");
    /* ... but the hinted one shares the four unchanged pages (three of them full) with a's. */
    if (without_hint < with_hint + 3 * 128 * sizeof(void *))
        fail_msg("a place set built with its hint took %zu bytes, without %zu: pages are not shared",
                 with_hint, without_hint);
    ekg_snapshot_unref(a);
    ekg_snapshot_unref(b);
    ekg_snapshot_unref(d);
    ekg_cache_free(c);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_sets_are_empty),
        cmocka_unit_test(test_serials_increase),
        cmocka_unit_test(test_localities_only_while_unshared),
        cmocka_unit_test(test_cache_announces_only_changes),
        cmocka_unit_test(test_localities_change_is_taken),
        cmocka_unit_test(test_publish_translation),
        cmocka_unit_test(test_resources_at_from_threads),
        cmocka_unit_test(test_inherited_places_share_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
