/*
 * tests/unit/snapshot_test.c: snapshots and the cache (src/resource/snapshot.c, src/cache/cache.c).
 *
 * Snapshots fill missing sets with empty ones, keep their sets alive by reference, carry an optional
 * localities document (settable only while unshared); the cache announces a snapshot to its watcher only when
 * some type's version changed, keeps the "since" time of unchanged types, and hands out references. Thread:
 * main.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "ekglue/cache.h"
#include "ekglue/metrics.h"
#include "ekglue/proto.h"
#include "ekglue/translate.h"

#include "k8s_fixtures.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_sets_are_empty),
        cmocka_unit_test(test_serials_increase),
        cmocka_unit_test(test_localities_only_while_unshared),
        cmocka_unit_test(test_cache_announces_only_changes),
        cmocka_unit_test(test_localities_change_is_taken),
        cmocka_unit_test(test_publish_translation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
