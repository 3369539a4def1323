/*
 * tests/unit/metrics_test.c: the process-wide metrics (src/common/metrics.c records, src/debug/metrics.c
 * renders): counters by label, histogram bucket placement (bounds are inclusive, values beyond the last bound
 * only reach +Inf, cumulative buckets, sum and count), and the exposition format (HELP and TYPE before every
 * family, label syntax, histogram suffixes, process figures from /proc).
 *
 * The metrics are process-global and never reset, so every check compares a rendering after the recording
 * with one before it. Thread: the test's main thread.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ekglue/debug.h"
#include "ekglue/metrics.h"
#include "ekglue/watch.h"

static char *render(void)
{
    char *text = NULL;
    size_t len = 0;
    ekg_debug_metrics_render(NULL, &text, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

/* The value of the sample whose name and labels are exactly `series` ("ekglue_x{a=\"b\"}"); fails if absent.
 */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
    }
    fail_msg("no sample %s", series);
    return NAN;
}

static double delta(const char *before, const char *after, const char *series)
{
    return value_of(after, series) - value_of(before, series);
}

static void test_counters(void **state)
{
    char *before = render();
    ekg_metrics_kube_event(EKG_KUBE_ENDPOINT_SLICES, EKG_KEVENT_MODIFIED);
    ekg_metrics_kube_event(EKG_KUBE_ENDPOINT_SLICES, EKG_KEVENT_MODIFIED);
    ekg_metrics_kube_event(EKG_KUBE_NODES, EKG_KEVENT_BOOKMARK);
    ekg_metrics_kube_event(EKG_KUBE__COUNT, EKG_KEVENT_ADDED); /* out of range: ignored */
    ekg_metrics_xds_ack(0, EKG_RESOURCE_CLUSTER);
    ekg_metrics_xds_ack(1, EKG_RESOURCE_CLUSTER);
    ekg_metrics_xds_ack(1, EKG_RESOURCE_CLUSTER);
    ekg_metrics_xds_nack(0, EKG_RESOURCE_LOAD_ASSIGNMENT);
    ekg_metrics_xds_push(0, EKG_RESOURCE_LISTENER);
    ekg_metrics_xds_push(0, EKG_RESOURCE_LISTENER);
    ekg_metrics_xds_push(0, EKG_RESOURCE__COUNT);   /* ignored */
    ekg_metrics_xds_push(2, EKG_RESOURCE_LISTENER); /* no such mode: ignored */
    ekg_metrics_xds_streams(0, 0, +1);              /* SotW ADS */
    ekg_metrics_xds_streams(0, 2, +1);              /* SotW EDS */
    ekg_metrics_xds_streams(0, 2, +1);
    ekg_metrics_xds_streams(0, 2, -1);
    ekg_metrics_xds_streams(1, 0, +1); /* delta ADS */
    ekg_metrics_xds_streams(0, 7, +1); /* ignored */
    char *after = render();

    assert_int_equal(
        (int)delta(before, after,
                   "ekglue_kubernetes_events_total{resource=\"endpointslices\",type=\"MODIFIED\"}"),
        2);
    assert_int_equal(
        (int)delta(before, after, "ekglue_kubernetes_events_total{resource=\"nodes\",type=\"BOOKMARK\"}"), 1);
    assert_int_equal(
        (int)delta(before, after, "ekglue_kubernetes_events_total{resource=\"services\",type=\"ADDED\"}"), 0);
    assert_int_equal((int)delta(before, after, "ekglue_xds_acks_total{type=\"Cluster\",mode=\"sotw\"}"), 1);
    assert_int_equal((int)delta(before, after, "ekglue_xds_acks_total{type=\"Cluster\",mode=\"delta\"}"), 2);
    assert_int_equal(
        (int)delta(before, after, "ekglue_xds_acks_total{type=\"ClusterLoadAssignment\",mode=\"sotw\"}"), 0);
    assert_int_equal(
        (int)delta(before, after, "ekglue_xds_nacks_total{type=\"ClusterLoadAssignment\",mode=\"sotw\"}"), 1);
    assert_int_equal((int)delta(before, after, "ekglue_xds_pushes_total{type=\"Listener\",mode=\"sotw\"}"),
                     2);
    assert_int_equal((int)delta(before, after, "ekglue_xds_pushes_total{type=\"Listener\",mode=\"delta\"}"),
                     0);
    assert_int_equal((int)delta(before, after, "ekglue_xds_streams{api=\"ADS\",mode=\"sotw\"}"), 1);
    assert_int_equal((int)delta(before, after, "ekglue_xds_streams{api=\"EDS\",mode=\"sotw\"}"), 1);
    assert_int_equal((int)delta(before, after, "ekglue_xds_streams{api=\"RDS\",mode=\"sotw\"}"), 0);
    assert_int_equal((int)delta(before, after, "ekglue_xds_streams{api=\"ADS\",mode=\"delta\"}"), 1);
    free(before);
    free(after);
}

static void test_histogram_buckets(void **state)
{
    static const char *const les[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
                                      "0.1",    "0.25",  "0.5",    "1",     "2.5",  "5",     "10"};
    /* Cumulative increase expected at each bound, for the values recorded below. */
    static const int expect[] = {2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 5, 6};
    char *before = render();
    ekg_metrics_push_latency(0.0005); /* exactly on a bound: that bucket (le is inclusive) */
    ekg_metrics_push_latency(-1);     /* a clock step backwards: counted as 0 */
    ekg_metrics_push_latency(0.0007); /* -> le=0.001 */
    ekg_metrics_push_latency(1.0);    /* -> le=1 */
    ekg_metrics_push_latency(3.0);    /* -> le=5 */
    ekg_metrics_push_latency(10.0);   /* -> le=10 */
    ekg_metrics_push_latency(100.0);  /* beyond the last bound: +Inf only */
    char *after = render();

    char series[128];
    for (size_t i = 0; i < sizeof(les) / sizeof(les[0]); i++) {
        snprintf(series, sizeof(series), "ekglue_push_latency_seconds_bucket{le=\"%s\"}", les[i]);
        assert_int_equal((int)delta(before, after, series), expect[i]);
    }
    assert_int_equal((int)delta(before, after, "ekglue_push_latency_seconds_bucket{le=\"+Inf\"}"), 7);
    assert_int_equal((int)delta(before, after, "ekglue_push_latency_seconds_count"), 7);
    double sum = delta(before, after, "ekglue_push_latency_seconds_sum");
    assert_true(fabs(sum - (0.0005 + 0.0007 + 1 + 3 + 10 + 100)) < 1e-6);
    /* The other histogram did not move. */
    assert_int_equal((int)delta(before, after, "ekglue_snapshot_build_seconds_count"), 0);
    free(before);
    free(after);
}

static void test_snapshot_published(void **state)
{
    char *before = render();
    ekg_metrics_snapshot_published(0.002);
    char *after = render();
    assert_int_equal((int)delta(before, after, "ekglue_snapshot_build_seconds_bucket{le=\"0.0025\"}"), 1);
    assert_int_equal((int)delta(before, after, "ekglue_snapshot_build_seconds_bucket{le=\"0.001\"}"), 0);
    double ts = value_of(after, "ekglue_last_update_timestamp_seconds");
    assert_true(ts > 1.6e9); /* a Unix time, not 0 */
    free(before);
    free(after);
}

/* Every family: HELP, then TYPE, then its samples, each `name{k="v",...} value` with a parsable value. */
static void test_format(void **state)
{
    char *text = render();
    char family[128] = "", type[32] = "";
    bool saw_help = false;
    int families = 0;
    assert_true(text[strlen(text) - 1] == '\n');
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%127s", family), 1);
            assert_true(strncmp(family, "ekglue_", 7) == 0);
            saw_help = true;
            type[0] = '\0';
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[128];
            assert_true(saw_help);
            assert_int_equal(sscanf(line + 7, "%127s %31s", name, type), 2);
            assert_string_equal(name, family);
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                        strcmp(type, "histogram") == 0);
            saw_help = false;
            families++;
            continue;
        }
        assert_true(line[0] != '#');
        assert_true(type[0] != '\0'); /* a sample belongs to the family declared above it */
        size_t n = strlen(family);
        assert_true(strncmp(line, family, n) == 0);
        const char *rest = line + n;
        if (strcmp(type, "histogram") == 0) {
            if (strncmp(rest, "_bucket{le=\"", 12) == 0)
                rest = strchr(rest, '}') + 1;
            else if (strncmp(rest, "_sum", 4) == 0 || strncmp(rest, "_count", 6) == 0)
                rest += rest[1] == 's' ? 4 : 6;
            else
                fail_msg("histogram sample without a suffix: %s", line);
        } else if (*rest == '{') {
            const char *close = strchr(rest, '}');
            assert_non_null(close);
            assert_non_null(strstr(rest, "=\""));
            rest = close + 1;
        }
        assert_true(*rest == ' ');
        char *end = NULL;
        strtod(rest + 1, &end);
        assert_true(end && end != rest + 1 && *end == '\0');
    }
    assert_true(families >= 10);
    free(text);

    text = render();
    assert_non_null(strstr(text, "# TYPE ekglue_push_latency_seconds histogram\n"));
    assert_non_null(strstr(text, "# TYPE ekglue_xds_streams gauge\n"));
    assert_non_null(strstr(text, "# TYPE ekglue_kubernetes_events_total counter\n"));
    /* No watcher: its per-resource metrics are left out. */
    assert_null(strstr(text, "watch_relists_total"));
    assert_null(strstr(text, "kubernetes_sync_age_seconds"));
    /* The process's own figures are there and plausible. */
    assert_true(value_of(text, "ekglue_process_resident_memory_bytes") > 1e5);
    assert_true(value_of(text, "ekglue_process_cpu_seconds_total") >= 0);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_snapshot_published),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
