/*
 * tests/unit/mem_test.c: the memory policy (src/common/mem.c) and the clocks (src/common/clock.c).
 *
 * The wrappers return usable memory and, when the allocator fails, abort with a message naming the size (run
 * in a forked child: the test checks it died by SIGABRT and what it printed); the growable array doubles and
 * keeps its elements; cJSON allocates through the wrappers after ekg_mem_init; the monotonic clocks agree and
 * move forward. Thread: main (and a child process per death test).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <cmocka.h>

#include "ekglue/clock.h"
#include "ekglue/mem.h"

/* Runs fn in a child with stderr captured; returns how it ended (waitpid status) and what it printed. */
static int run_child(void (*fn)(void), char *err, size_t size)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        signal(SIGABRT, SIG_DFL);
        fn();
        _exit(0);
    }
    close(p[1]);
    size_t n = 0;
    for (ssize_t got; n + 1 < size && (got = read(p[0], err + n, size - 1 - n)) > 0;)
        n += (size_t)got;
    err[n] = '\0';
    close(p[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void huge_malloc(void)
{
    volatile size_t size = SIZE_MAX - 64; /* no allocator can give this */
    ekg_xmalloc(size);
}

static void huge_calloc(void)
{
    volatile size_t n = SIZE_MAX / 2;
    ekg_xcalloc(n, 4);
}

static void huge_array(void)
{
    void *items = NULL;
    size_t cap = 0;
    ekg_array_reserve(&items, &cap, SIZE_MAX / 8, 64);
}

static void assert_oom_abort(void (*fn)(void))
{
    char err[512];
    int status = run_child(fn, err, sizeof(err));
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(err, "ekglue: out of memory ("));
}

static void test_oom_aborts_with_a_message(void **state)
{
    (void)state;
    assert_oom_abort(huge_malloc);
    assert_oom_abort(huge_calloc);
    assert_oom_abort(huge_array);
}

static void test_wrappers_return_memory(void **state)
{
    (void)state;
    char *a = ekg_xmalloc(0); /* never NULL, even for 0 */
    assert_non_null(a);
    free(a);
    int *z = ekg_xcalloc(100, sizeof(int));
    for (int i = 0; i < 100; i++)
        assert_int_equal(z[i], 0);
    z = ekg_xrealloc(z, 1000 * sizeof(int));
    z[999] = 7;
    assert_int_equal(z[0], 0);
    free(z);
    char *s = ekg_xstrdup("services");
    assert_string_equal(s, "services");
    free(s);
    s = ekg_xstrndup("endpointslices", 8);
    assert_string_equal(s, "endpoint");
    free(s);
    s = ekg_xasprintf("%s:%s:%d", "shop", "cart", 8080);
    assert_string_equal(s, "shop:cart:8080");
    free(s);
}

static void test_array_grows_and_keeps_elements(void **state)
{
    (void)state;
    long *v = NULL;
    size_t n = 0, cap = 0;
    for (long i = 0; i < 1000; i++) {
        EKG_ARRAY_PUSH(v, n, cap, i * 3);
        assert_true(cap >= n);
    }
    assert_int_equal(n, 1000);
    assert_int_equal(cap, 1024); /* 16 doubled */
    for (long i = 0; i < 1000; i++)
        assert_int_equal(v[i], i * 3);
    void *p = v;
    ekg_array_reserve(&p, &cap, 10, sizeof(long)); /* already enough: unchanged */
    assert_ptr_equal(p, v);
    assert_int_equal(cap, 1024);
    free(v);
}

static int hook_calls;
static void *counting_malloc(size_t size)
{
    hook_calls++;
    return malloc(size);
}

static void test_cjson_allocates_through_the_wrappers(void **state)
{
    (void)state;
    /* ekg_mem_init installs ekg_xmalloc: prove cJSON uses the hooks it was given, then that ours are in. */
    cJSON_Hooks counting = {.malloc_fn = counting_malloc, .free_fn = free};
    cJSON_InitHooks(&counting);
    cJSON *o = cJSON_Parse("{\"a\":[1,2,3]}");
    assert_non_null(o);
    cJSON_Delete(o);
    assert_true(hook_calls > 0);
    ekg_mem_init();
    int before = hook_calls;
    o = cJSON_Parse("{\"b\":true}");
    assert_non_null(o);
    cJSON_Delete(o);
    assert_int_equal(hook_calls, before); /* no longer the counting hook: ekglue's */
}

static void test_clocks(void **state)
{
    (void)state;
    long long ms0 = ekg_clock_ms();
    double s0 = ekg_clock_s();
    struct timespec pause = {0, 20 * 1000000};
    nanosleep(&pause, NULL);
    long long ms1 = ekg_clock_ms();
    double s1 = ekg_clock_s();
    assert_true(ms1 - ms0 >= 20);
    assert_true(s1 - s0 >= 0.020);
    assert_true((double)ms1 / 1000.0 - s1 < 0.01 && s1 - (double)ms1 / 1000.0 < 0.01); /* one clock */
    double wall = ekg_clock_unix_s();
    assert_true(wall > 1.7e9); /* after 2023 */
    assert_true(wall - (double)time(NULL) < 2 && (double)time(NULL) - wall < 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oom_aborts_with_a_message),
        cmocka_unit_test(test_wrappers_return_memory),
        cmocka_unit_test(test_array_grows_and_keeps_elements),
        cmocka_unit_test(test_cjson_allocates_through_the_wrappers),
        cmocka_unit_test(test_clocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
