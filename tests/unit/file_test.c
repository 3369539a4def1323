/*
 * tests/unit/file_test.c: reading whole files (src/common/file.c).
 *
 * A file comes back whole and NUL-terminated, across the reader's buffer doublings; a missing file is
 * EKG_ENOENT, one over the bound EKG_ERANGE, a directory EKG_EIO, each with the path in the message; secrets
 * read the same. Thread: main.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ekglue/file.h"

static char dir[] = "/tmp/ekglue-file-test-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes n bytes of a repeating pattern to dir/name; returns the path (static buffer). */
static const char *write_file(const char *name, size_t n)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        fputc('a' + (int)(i % 26), f);
    assert_int_equal(fclose(f), 0);
    return path;
}

static void test_reads_whole_files(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 4095, 4096, 4097, 100000};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        for (int flags = 0; flags <= EKG_FILE_SECRET; flags++) {
            const char *path = write_file("data", sizes[k]);
            char *buf = NULL;
            size_t len = 99;
            ekg_diag_t diag = {{0}};
            assert_int_equal(ekg_file_read(path, 0, flags, &buf, &len, &diag), EKG_OK);
            assert_int_equal(len, sizes[k]);
            assert_int_equal(strlen(buf), sizes[k]);
            for (size_t i = 0; i < len; i++)
                assert_int_equal(buf[i], 'a' + (int)(i % 26));
            free(buf);
        }
    }
}

static void test_errors_name_the_path(void **state)
{
    (void)state;
    char *buf = NULL;
    ekg_diag_t diag = {{0}};
    char missing[300];
    snprintf(missing, sizeof(missing), "%s/none", dir);
    assert_int_equal(ekg_file_read(missing, 0, 0, &buf, NULL, &diag), EKG_ENOENT);
    assert_null(buf);
    assert_non_null(strstr(diag.msg, missing));

    const char *path = write_file("big", 5000);
    assert_int_equal(ekg_file_read(path, 4999, EKG_FILE_SECRET, &buf, NULL, &diag), EKG_ERANGE);
    assert_null(buf);
    assert_non_null(strstr(diag.msg, "larger than 4999 bytes"));
    size_t len = 0;
    assert_int_equal(ekg_file_read(path, 5000, 0, &buf, &len, &diag), EKG_OK); /* exactly the bound */
    assert_int_equal(len, 5000);
    free(buf);
    buf = NULL;

    assert_int_equal(ekg_file_read(dir, 0, 0, &buf, NULL, &diag), EKG_EIO); /* a directory */
    assert_null(buf);
    assert_non_null(strstr(diag.msg, dir));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_whole_files),
        cmocka_unit_test(test_errors_name_the_path),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
