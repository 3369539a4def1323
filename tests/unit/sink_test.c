/*
 * tests/unit/sink_test.c: the sink every source feeds (src/watch/sink.c), the file source (src/watch/files.c)
 * and the file watch beneath it (src/common/file.c).
 *
 * The publisher: nothing before the source is synced, then one publish at once; afterwards changes wait for
 * the coalescing deadline, which a stream of changes cannot push past coalesce_max_ms; a config handed in is
 * switched by the driving thread (or, with none, by the caller) before ekg_sink_set_config() returns. The
 * collector: objects by key, replaced, removed, taken. The file source: the first read before start returns,
 * a rename over a file re-read and published, a broken file keeping the state, a reload on request. Thread:
 * the test's main thread, plus a driver thread in one test and the file source's own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

#include <cmocka.h>

#include "ekglue/cache.h"
#include "ekglue/clock.h"
#include "ekglue/file.h"
#include "ekglue/log.h"
#include "ekglue/proto.h"
#include "ekglue/watch.h"

#define SERVICE_YAML                                                                                         \
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  ports:\n  - name: "     \
    "http\n"                                                                                                 \
    "    port: 80\n"

/* The services in yaml (one or more documents), as objects. */
static void objects_from(ekg_objects_t *objs, const char *yaml)
{
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_objects_add_buffer(objs, yaml, strlen(yaml), "test", &diag), EKG_OK);
}

static ekg_service_t *service(const char *ns, const char *name)
{
    char yaml[512];
    snprintf(yaml, sizeof(yaml), SERVICE_YAML, name, ns);
    ekg_objects_t objs = {0};
    objects_from(&objs, yaml);
    assert_int_equal(objs.nservices, 1);
    ekg_service_t *svc = objs.services[0];
    objs.nservices = 0;
    ekg_objects_free(&objs);
    return svc;
}

/* The number of clusters in the cache's current snapshot; -1 before the first publish. */
static long clusters(ekg_cache_t *c)
{
    ekg_snapshot_t *snap = ekg_cache_current(c);
    if (!snap)
        return -1;
    long n = (long)ekg_resource_set_size(ekg_snapshot_resources(snap, EKG_RESOURCE_CLUSTER));
    ekg_snapshot_unref(snap);
    return n;
}

static unsigned long long serial(ekg_cache_t *c)
{
    ekg_snapshot_t *snap = ekg_cache_current(c);
    unsigned long long s = snap ? ekg_snapshot_serial(snap) : 0;
    ekg_snapshot_unref(snap);
    return s;
}

static atomic_int synced_calls;

static void on_synced(void *ctx)
{
    atomic_fetch_add(&synced_calls, 1);
}

typedef struct fixture {
    ekg_config_t *cfg;
    ekg_cache_t *cache;
    ekg_sink_t *sink;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    ekg_diag_t diag = {{0}};
    if (!f || ekg_config_default(&f->cfg, &diag) != EKG_OK)
        return -1;
    f->cache = ekg_cache_new();
    f->sink = ekg_sink_publisher_new(f->cfg, f->cache, on_synced, NULL);
    atomic_store(&synced_calls, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    ekg_sink_free(f->sink);
    ekg_cache_free(f->cache);
    ekg_config_free(f->cfg);
    free(f);
    return 0;
}

/* --- the publisher
 * ------------------------------------------------------------------------------------------ */

static void test_nothing_before_synced_then_at_once(void **state)
{
    fixture_t *f = *state;
    ekg_sink_set_coalescing(f->sink, 10000, 10000);
    ekg_sink_put_service(f->sink, service("shop", "web"));
    ekg_sink_flush(f->sink);
    assert_int_equal(ekg_sink_deadline(f->sink), -1); /* not synced: no deadline at all */
    assert_int_equal(clusters(f->cache), -1);
    assert_int_equal(atomic_load(&synced_calls), 0);
    assert_int_equal(ekg_sink_synced(f->sink), EKG_OK); /* publishes now, despite the 10 s coalescing */
    assert_int_equal(clusters(f->cache), 1);
    assert_int_equal(atomic_load(&synced_calls), 1);
    ekg_sink_put_service(f->sink, service("shop", "api"));
    assert_int_equal(ekg_sink_synced(f->sink), EKG_OK); /* a second whole read: published, not told again */
    assert_int_equal(clusters(f->cache), 2);
    assert_int_equal(atomic_load(&synced_calls), 1);
}

static void test_changes_wait_for_the_deadline(void **state)
{
    fixture_t *f = *state;
    ekg_sink_set_coalescing(f->sink, 150, 1000);
    ekg_sink_synced(f->sink);
    unsigned long long s0 = serial(f->cache);
    long long before = ekg_clock_ms();
    ekg_sink_put_service(f->sink, service("shop", "web"));
    long long deadline = ekg_sink_deadline(f->sink);
    assert_true(deadline >= before + 150 && deadline <= ekg_clock_ms() + 150);
    ekg_sink_flush(f->sink);
    if (ekg_clock_ms() < deadline) /* flushing early publishes nothing */
        assert_int_equal(serial(f->cache), s0);
    while (ekg_clock_ms() < deadline)
        usleep(5000);
    ekg_sink_flush(f->sink);
    assert_int_equal(clusters(f->cache), 1);
    assert_int_equal(ekg_sink_deadline(f->sink), -1);
    ekg_sink_remove(f->sink, EKG_KUBE_SERVICES, "shop", "web");
    assert_true(ekg_sink_deadline(f->sink) >= 0);
}

static void test_a_stream_of_changes_is_bounded_by_coalesce_max(void **state)
{
    fixture_t *f = *state;
    ekg_sink_set_coalescing(f->sink, 100, 250);
    ekg_sink_synced(f->sink);
    long long first = ekg_clock_ms();
    char name[32];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        ekg_sink_put_service(f->sink, service("shop", name));
        assert_true(ekg_sink_deadline(f->sink) <= first + 250 + 5);
        usleep(40000);
    }
}

/* A driver thread, as a source's loop: flushes whenever woken, until told to stop. */
typedef struct driver {
    ekg_sink_t *sink;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int wakes;
    bool stop;
} driver_t;

static void driver_wake(void *ctx)
{
    driver_t *d = ctx;
    pthread_mutex_lock(&d->lock);
    d->wakes++;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static void *driver_main(void *arg)
{
    driver_t *d = arg;
    pthread_mutex_lock(&d->lock);
    while (!d->stop) {
        while (!d->wakes && !d->stop)
            pthread_cond_wait(&d->cond, &d->lock);
        d->wakes = 0;
        pthread_mutex_unlock(&d->lock);
        ekg_sink_flush(d->sink);
        pthread_mutex_lock(&d->lock);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

static ekg_config_t *config_suppressing_web(void)
{
    static const char yaml[] = "apiVersion: v1alpha\ncluster_config:\n  overrides:\n  - match:\n"
                               "    - service: web\n    suppress: true\n";
    ekg_config_t *cfg = NULL;
    ekg_diag_t diag = {{0}};
    if (ekg_config_parse(yaml, sizeof(yaml) - 1, "test.yaml", &cfg, &diag) != EKG_OK)
        fail_msg("config: %s", diag.msg);
    return cfg;
}

static void test_config_is_switched_by_the_driver_thread(void **state)
{
    fixture_t *f = *state;
    ekg_sink_put_service(f->sink, service("shop", "web"));
    ekg_sink_put_service(f->sink, service("shop", "api"));
    ekg_sink_synced(f->sink);
    assert_int_equal(clusters(f->cache), 2);

    driver_t d = {.sink = f->sink};
    pthread_mutex_init(&d.lock, NULL);
    pthread_cond_init(&d.cond, NULL);
    pthread_t t;
    ekg_sink_set_driver(f->sink, driver_wake, &d);
    assert_int_equal(pthread_create(&t, NULL, driver_main, &d), 0);
    ekg_config_t *next = config_suppressing_web();
    ekg_sink_set_config(f->sink, next); /* returns once the driver switched and published */
    assert_int_equal(clusters(f->cache), 1);
    pthread_mutex_lock(&d.lock);
    d.stop = true;
    pthread_cond_signal(&d.cond);
    pthread_mutex_unlock(&d.lock);
    assert_int_equal(pthread_join(t, NULL), 0);
    ekg_sink_set_driver(f->sink, NULL, NULL);

    /* No driver any more: the caller switches back itself. */
    ekg_sink_set_config(f->sink, f->cfg);
    assert_int_equal(clusters(f->cache), 2);
    ekg_config_free(next);
    pthread_mutex_destroy(&d.lock);
    pthread_cond_destroy(&d.cond);
}

static void test_replace_is_the_whole_truth(void **state)
{
    fixture_t *f = *state;
    ekg_objects_t objs = {0};
    char yaml[1024];
    int n = snprintf(yaml, sizeof(yaml), SERVICE_YAML, "a", "x");
    snprintf(yaml + n, sizeof(yaml) - (size_t)n, "---\n" SERVICE_YAML, "b", "x");
    objects_from(&objs, yaml);
    ekg_sink_put_service(f->sink, service("old", "gone"));
    ekg_sink_replace(f->sink, &objs);
    ekg_objects_free(&objs);
    ekg_sink_synced(f->sink);
    assert_int_equal(clusters(f->cache), 2); /* x:a:http, x:b:http; old:gone is gone */
}

/* --- the collector
 * ------------------------------------------------------------------------------------------ */

static void test_collector_keeps_objects_by_key(void **state)
{
    ekg_sink_t *k = ekg_sink_collector_new();
    ekg_sink_put_service(k, service("shop", "web"));
    ekg_sink_put_service(k, service("shop", "web")); /* a list that started over: replaces */
    ekg_sink_put_service(k, service("shop", "api"));
    ekg_sink_put_service(k, service("other", "web"));
    ekg_sink_remove(k, EKG_KUBE_SERVICES, "shop", "api");
    ekg_sink_remove(k, EKG_KUBE_SERVICES, "shop", "nothing");
    ekg_sink_skipped(k, EKG_KUBE_SERVICES, "shop", "bad");
    ekg_sink_skipped(k, EKG_KUBE_SERVICES, "shop", "bad"); /* read again (a list that started over): once */
    ekg_sink_skipped(k, EKG_KUBE_NODES, "", "n1");
    ekg_sink_skipped(k, EKG_KUBE_SERVICES, "shop", "fixed");
    ekg_sink_put_service(k, service("shop", "fixed")); /* a valid version came after all: not skipped */
    assert_int_equal(ekg_sink_synced(k), EKG_OK);
    assert_int_equal(ekg_sink_deadline(k), -1);
    ekg_objects_t objs = {0};
    ekg_sink_take_objects(k, &objs);
    assert_int_equal(objs.nservices, 3);
    assert_int_equal(objs.nskipped, 2);
    bool shop = false, other = false; /* shop/web, shop/fixed, other/web */
    for (size_t i = 0; i < objs.nservices; i++) {
        shop |= strcmp(objs.services[i]->meta.namespace_, "shop") == 0;
        other |= strcmp(objs.services[i]->meta.namespace_, "other") == 0;
    }
    assert_true(shop && other);
    ekg_objects_free(&objs);
    ekg_objects_t none = {0};
    ekg_sink_take_objects(k, &none); /* taken means gone */
    assert_int_equal(none.nservices, 0);
    ekg_sink_free(k);
}

/* --- the file source
 * ---------------------------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(rename(tmp, path), 0); /* as editors do: a new file renamed over the old one */
}

/* Waits up to 5 s for the cache to hold n clusters. */
static bool wait_clusters(ekg_cache_t *c, long n)
{
    for (int i = 0; i < 500; i++) {
        if (clusters(c) == n)
            return true;
        usleep(10000);
    }
    return false;
}

static void test_file_source_reads_and_follows_the_file(void **state)
{
    fixture_t *f = *state;
    char dir[] = "/tmp/ekg-sink-XXXXXX", path[4096], yaml[1024];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/objects.yaml", dir);
    snprintf(yaml, sizeof(yaml), SERVICE_YAML, "web", "shop");
    write_file(path, yaml);
    const char *paths[] = {path};
    ekg_source_t *src = NULL;
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_source_files_start(paths, 1, NULL, NULL, 0, f->sink, &src, &diag), EKG_OK);
    assert_int_equal(clusters(f->cache), 1); /* read and published before start returned */
    assert_null(ekg_source_watcher(src));

    int n = snprintf(yaml, sizeof(yaml), SERVICE_YAML, "web", "shop");
    snprintf(yaml + n, sizeof(yaml) - (size_t)n, "---\n" SERVICE_YAML, "api", "shop");
    write_file(path, yaml);
    assert_true(wait_clusters(f->cache, 2));

    unsigned long long s = serial(f->cache);
    write_file(path, "kind: [broken\n");
    usleep(300000);
    assert_int_equal(serial(f->cache), s); /* the broken file changed nothing */
    assert_int_equal(clusters(f->cache), 2);

    write_file(path, "");
    usleep(300000); /* an empty file is a valid, empty truth */
    assert_true(wait_clusters(f->cache, 0));
    snprintf(yaml, sizeof(yaml), SERVICE_YAML, "web", "shop");
    FILE *fp = fopen(path, "w"); /* in place, then a reload on request */
    assert_non_null(fp);
    fputs(yaml, fp);
    fclose(fp);
    ekg_source_reload(src, NULL, "test");
    assert_true(wait_clusters(f->cache, 1));
    ekg_source_stop(src);
    unlink(path);
    rmdir(dir);
}

static void test_file_source_start_fails_on_a_broken_file(void **state)
{
    fixture_t *f = *state;
    const char *paths[] = {"/nonexistent/ekglue/objects.yaml"};
    ekg_source_t *src = NULL;
    ekg_diag_t diag = {{0}};
    assert_int_not_equal(ekg_source_files_start(paths, 1, NULL, NULL, 0, f->sink, &src, &diag), EKG_OK);
    assert_null(src);
    assert_non_null(strstr(diag.msg, "/nonexistent/ekglue/objects.yaml"));
    assert_int_equal(clusters(f->cache), -1);
}

static void test_buffer_source(void **state)
{
    fixture_t *f = *state;
    char yaml[512];
    snprintf(yaml, sizeof(yaml), SERVICE_YAML, "demo", "default");
    ekg_source_t *src = NULL;
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_source_files_start(NULL, 0, "demo", yaml, strlen(yaml), f->sink, &src, &diag),
                     EKG_OK);
    assert_int_equal(clusters(f->cache), 1);
    ekg_source_stop(src);
}

/* --- the file watch
 * ----------------------------------------------------------------------------------------- */

static void test_file_watch_sees_only_its_files(void **state)
{
    char dir[] = "/tmp/ekg-watch-XXXXXX", path[4096], other[4096];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/config.yaml", dir);
    snprintf(other, sizeof(other), "%s/unrelated.txt", dir);
    const char *paths[] = {path};
    ekg_file_watch_t *fw = ekg_file_watch_new(paths, 1);
    assert_true(ekg_file_watch_fd(fw) >= 0);
    assert_false(ekg_file_watch_changed(fw));
    write_file(other, "x");
    assert_false(ekg_file_watch_changed(fw));
    write_file(path, "y");
    assert_true(ekg_file_watch_changed(fw));
    assert_false(ekg_file_watch_changed(fw)); /* drained */
    ekg_file_watch_free(fw);
    ekg_file_watch_t *none = ekg_file_watch_new(NULL, 0);
    assert_int_equal(ekg_file_watch_fd(none), -1);
    assert_false(ekg_file_watch_changed(none));
    ekg_file_watch_free(none);
    unlink(path);
    unlink(other);
    rmdir(dir);
}

int main(void)
{
    ekg_log_set_level(EKG_LOG_OFF);
    ekg_diag_t diag = {{0}};
    if (ekg_proto_init(&diag) != EKG_OK) {
        fprintf(stderr, "ekg_proto_init: %s\n", diag.msg);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nothing_before_synced_then_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changes_wait_for_the_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_stream_of_changes_is_bounded_by_coalesce_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_is_switched_by_the_driver_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_is_the_whole_truth, setup, teardown),
        cmocka_unit_test(test_collector_keeps_objects_by_key),
        cmocka_unit_test_setup_teardown(test_file_source_reads_and_follows_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_source_start_fails_on_a_broken_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffer_source, setup, teardown),
        cmocka_unit_test(test_file_watch_sees_only_its_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
