/*
 * tests/unit/yaml_test.c: src/common/yaml.c — scalar resolution, documents, aliases and their bounds,
 * duplicate keys, depth limit, positions, the JSON path and error messages; and the streaming of JSON Lists
 * (common/yaml_stream.h): which texts stream, item boundaries, and that anything invalid does not. Thread:
 * the test's main thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>

#include <cmocka.h>

#include "ekglue/yaml.h"
#include "common/yaml_stream.h"

static ekg_yaml_docs_t *parse_ok(const char *text)
{
    ekg_yaml_docs_t *docs = NULL;
    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_yaml_parse(text, strlen(text), "t.yaml", &docs, &diag);
    if (err)
        print_error("unexpected error: %s\n", diag.msg);
    assert_int_equal(err, EKG_OK);
    assert_non_null(docs);
    return docs;
}

/* Parses text expecting an error; returns the message in diag. */
static void parse_err(const char *text, ekg_err_t want, ekg_diag_t *diag)
{
    ekg_yaml_docs_t *docs = (ekg_yaml_docs_t *)(uintptr_t)1;
    memset(diag, 0, sizeof(*diag));
    ekg_err_t err = ekg_yaml_parse(text, strlen(text), "t.yaml", &docs, diag);
    assert_int_equal(err, want);
    assert_ptr_equal(docs, (ekg_yaml_docs_t *)(uintptr_t)1); /* untouched on error */
}

static const cJSON *get(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        print_error("missing key %s\n", key);
    assert_non_null(v);
    return v;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle))
        print_error("\"%s\" does not contain \"%s\"\n", haystack, needle);
    assert_non_null(strstr(haystack, needle));
}

static void test_scalars(void **state)
{
    (void)state;
    ekg_yaml_docs_t *docs = parse_ok("n1: null\n"
                                     "n2: ~\n"
                                     "n3:\n"
                                     "n4: NULL\n"
                                     "b1: true\n"
                                     "b2: False\n"
                                     "b3: TRUE\n"
                                     "y: yes\n"
                                     "i1: 42\n"
                                     "i2: -7\n"
                                     "i3: +3\n"
                                     "i4: 0x1F\n"
                                     "i5: 0o17\n"
                                     "i6: 0777\n"
                                     "f1: 1.5\n"
                                     "f2: -.5e2\n"
                                     "f3: 6.02E+23\n"
                                     "inf: .inf\n"
                                     "ninf: -.Inf\n"
                                     "nan: .NaN\n"
                                     "s1: hello world\n"
                                     "s2: '42'\n"
                                     "s3: \"true\"\n"
                                     "s4: !!str 12\n"
                                     "s5: 1_000\n"
                                     "s6: 0x\n"
                                     "s7: 1.2.3\n"
                                     "s8: |\n  line1\n  line2\n"
                                     "s9: >-\n  folded\n  text\n"
                                     "s10: \"\"\n"
                                     "s11: '~'\n");
    assert_int_equal(ekg_yaml_docs_count(docs), 1);
    const cJSON *d = ekg_yaml_docs_get(docs, 0);
    assert_true(cJSON_IsObject(d));
    assert_true(cJSON_IsNull(get(d, "n1")));
    assert_true(cJSON_IsNull(get(d, "n2")));
    assert_true(cJSON_IsNull(get(d, "n3")));
    assert_true(cJSON_IsNull(get(d, "n4")));
    assert_true(cJSON_IsTrue(get(d, "b1")));
    assert_true(cJSON_IsFalse(get(d, "b2")));
    assert_true(cJSON_IsTrue(get(d, "b3")));
    assert_string_equal(get(d, "y")->valuestring, "yes"); /* YAML 1.2: not a bool */
    assert_int_equal(get(d, "i1")->valueint, 42);
    assert_int_equal(get(d, "i2")->valueint, -7);
    assert_int_equal(get(d, "i3")->valueint, 3);
    assert_int_equal(get(d, "i4")->valueint, 31);
    assert_int_equal(get(d, "i5")->valueint, 15);
    assert_int_equal(get(d, "i6")->valueint, 777); /* YAML 1.2: decimal, not octal */
    assert_true(get(d, "f1")->valuedouble == 1.5);
    assert_true(get(d, "f2")->valuedouble == -50.0);
    assert_true(get(d, "f3")->valuedouble > 6.0e23);
    assert_true(isinf(get(d, "inf")->valuedouble) && get(d, "inf")->valuedouble > 0);
    assert_true(isinf(get(d, "ninf")->valuedouble) && get(d, "ninf")->valuedouble < 0);
    assert_true(isnan(get(d, "nan")->valuedouble));
    assert_string_equal(get(d, "s1")->valuestring, "hello world");
    assert_string_equal(get(d, "s2")->valuestring, "42");
    assert_string_equal(get(d, "s3")->valuestring, "true");
    assert_string_equal(get(d, "s4")->valuestring, "12");
    assert_string_equal(get(d, "s5")->valuestring, "1_000");
    assert_string_equal(get(d, "s6")->valuestring, "0x");
    assert_string_equal(get(d, "s7")->valuestring, "1.2.3");
    assert_string_equal(get(d, "s8")->valuestring, "line1\nline2\n");
    assert_string_equal(get(d, "s9")->valuestring, "folded text");
    assert_string_equal(get(d, "s10")->valuestring, "");
    assert_string_equal(get(d, "s11")->valuestring, "~");
    ekg_yaml_docs_free(docs);
}

static void test_sequences_and_order(void **state)
{
    (void)state;
    ekg_yaml_docs_t *docs = parse_ok("z: [1, two, {three: 3}]\na:\n  - x\n  - - nested\n");
    const cJSON *d = ekg_yaml_docs_get(docs, 0);
    assert_string_equal(d->child->string, "z"); /* mapping order is kept */
    assert_string_equal(d->child->next->string, "a");
    const cJSON *z = get(d, "z");
    assert_int_equal(cJSON_GetArraySize(z), 3);
    assert_int_equal(cJSON_GetArrayItem(z, 0)->valueint, 1);
    assert_string_equal(cJSON_GetArrayItem(z, 1)->valuestring, "two");
    assert_int_equal(get(cJSON_GetArrayItem(z, 2), "three")->valueint, 3);
    const cJSON *a = get(d, "a");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(a, 1), 0)->valuestring, "nested");
    ekg_yaml_docs_free(docs);
}

static void test_multi_document(void **state)
{
    (void)state;
    ekg_yaml_docs_t *docs =
        parse_ok("# comment\n---\na: 1\n---\n---\n# only a comment\n---\n- b\n...\n---\nc\n");
    assert_int_equal(ekg_yaml_docs_count(docs), 3); /* empty documents are skipped */
    assert_int_equal(get(ekg_yaml_docs_get(docs, 0), "a")->valueint, 1);
    assert_true(cJSON_IsArray(ekg_yaml_docs_get(docs, 1)));
    assert_string_equal(ekg_yaml_docs_get(docs, 2)->valuestring, "c");
    assert_null(ekg_yaml_docs_get(docs, 3));
    ekg_yaml_docs_free(docs);

    docs = parse_ok("# nothing but comments\n");
    assert_int_equal(ekg_yaml_docs_count(docs), 0);
    ekg_yaml_docs_free(docs);
    docs = parse_ok("");
    assert_int_equal(ekg_yaml_docs_count(docs), 0);
    ekg_yaml_docs_free(docs);
}

static void test_aliases(void **state)
{
    (void)state;
    ekg_yaml_docs_t *docs = parse_ok("defaults: &d\n"
                                     "  timeout: 5s\n"
                                     "  retries: 3\n"
                                     "name: &n svc\n"
                                     "a: *d\n"
                                     "b: [*n, *d]\n");
    const cJSON *d = ekg_yaml_docs_get(docs, 0);
    const cJSON *a = get(d, "a");
    assert_string_equal(get(a, "timeout")->valuestring, "5s");
    assert_int_equal(get(a, "retries")->valueint, 3);
    assert_ptr_not_equal(a, get(d, "defaults")); /* a copy, not shared */
    const cJSON *b = get(d, "b");
    assert_string_equal(cJSON_GetArrayItem(b, 0)->valuestring, "svc");
    assert_null(cJSON_GetArrayItem(b, 0)->string);
    assert_int_equal(get(cJSON_GetArrayItem(b, 1), "retries")->valueint, 3);
    /* The copy's members keep their original lines; the copy itself sits at its key. */
    int col = 0;
    assert_int_equal(ekg_yaml_docs_line(docs, a, &col), 5);
    assert_int_equal(col, 1);
    assert_int_equal(ekg_yaml_docs_line(docs, get(a, "retries"), &col), 3);
    assert_int_equal(col, 3);
    ekg_yaml_docs_free(docs);

    ekg_diag_t diag;
    parse_err("a: *nope\n", EKG_EPARSE, &diag);
    assert_contains(diag.msg, "t.yaml:1:4: unknown alias *nope");
    parse_err("a: &x [1, *x]\n", EKG_EPARSE, &diag);
    assert_contains(diag.msg, "refers to the collection that contains it");
    /* Anchors do not cross documents. */
    parse_err("a: &x 1\n---\nb: *x\n", EKG_EPARSE, &diag);
    assert_contains(diag.msg, "t.yaml:3:4: unknown alias *x");
}

static void test_billion_laughs(void **state)
{
    (void)state;
    const char *lol = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
                      "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                      "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                      "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                      "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                      "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                      "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
                      "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
                      "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    ekg_diag_t diag;
    parse_err(lol, EKG_EPARSE, &diag);
    assert_contains(diag.msg, "aliases expand to too much data");
    assert_contains(diag.msg, "t.yaml:");

    /* A moderate use of aliases stays fine. */
    ekg_yaml_docs_t *docs = parse_ok("a: &a [1,2,3]\nb: &b [*a,*a,*a]\nc: [*b,*b,*b]\n");
    assert_int_equal(cJSON_GetArraySize(get(ekg_yaml_docs_get(docs, 0), "c")), 3);
    ekg_yaml_docs_free(docs);
}

static void test_duplicate_and_complex_keys(void **state)
{
    (void)state;
    ekg_diag_t diag;
    parse_err("a: 1\nb:\n  c: 2\n  d: 3\n  c: 4\n", EKG_EPARSE, &diag);
    assert_string_equal(diag.msg, "t.yaml:5:3: duplicate key \"c\" (first at 3:3)");
    parse_err("x: {a: 1, a: 2}\n", EKG_EPARSE, &diag);
    assert_contains(diag.msg, "t.yaml:1:11: duplicate key \"a\"");
    parse_err("? [a, b]\n: 1\n", EKG_EPARSE, &diag);
    assert_contains(diag.msg, "t.yaml:1:3: mapping keys must be scalars");
    parse_err("? {a: 1}\n: 1\n", EKG_EPARSE, &diag);
    assert_contains(diag.msg, "mapping keys must be scalars");
    /* Scalar keys are strings, whatever they look like. */
    ekg_yaml_docs_t *docs = parse_ok("80: http\ntrue: yes\n");
    assert_string_equal(get(ekg_yaml_docs_get(docs, 0), "80")->valuestring, "http");
    assert_string_equal(get(ekg_yaml_docs_get(docs, 0), "true")->valuestring, "yes");
    ekg_yaml_docs_free(docs);
}

static char *repeat(const char *open, int n, const char *close)
{
    size_t lo = strlen(open), lc = strlen(close);
    char *s = malloc((size_t)n * (lo + lc) + 1);
    assert_non_null(s);
    char *p = s;
    for (int i = 0; i < n; i++, p += lo)
        memcpy(p, open, lo);
    for (int i = 0; i < n; i++, p += lc)
        memcpy(p, close, lc);
    *p = '\0';
    return s;
}

static void test_deep_nesting(void **state)
{
    (void)state;
    ekg_diag_t diag;
    char *deep = repeat("[", 100000, "]");
    parse_err(deep, EKG_EPARSE, &diag); /* JSON path: cJSON's own limit */
    free(deep);
    deep = repeat("- ", 300, "");
    parse_err(deep, EKG_EPARSE, &diag);
    assert_contains(diag.msg, "nesting deeper than 256 levels");
    free(deep);
    deep = repeat("a: {", 100000, "}");
    parse_err(deep, EKG_EPARSE, &diag);
    assert_contains(diag.msg, "t.yaml:1:1024: nesting deeper than 256 levels");
    free(deep);
    /* 256 levels are fine. */
    deep = repeat("x: {", 255, "}");
    ekg_yaml_docs_t *docs = parse_ok(deep);
    ekg_yaml_docs_free(docs);
    free(deep);
    /* Aliases cannot be used to nest deeper either. */
    char *a = repeat("[", 200, "]"), *b = repeat("[", 60, "]"), text[1000];
    snprintf(text, sizeof(text), "a: &a %s\nb: %.60s*a%s\n", a, b, b + 60);
    parse_err(text, EKG_EPARSE, &diag);
    assert_contains(diag.msg, "t.yaml:2:64: alias *a nests deeper than 256 levels");
    free(a);
    free(b);
}

static void test_positions(void **state)
{
    (void)state;
    ekg_yaml_docs_t *docs = parse_ok("kind: Service\n"
                                     "metadata:\n"
                                     "  name: web\n"
                                     "  labels: {app: web,  tier: front}\n"
                                     "spec:\n"
                                     "  ports:\n"
                                     "    - port: 80\n"
                                     "    -   name: x\n"
                                     "---\n"
                                     "second: 2\n");
    const cJSON *d = ekg_yaml_docs_get(docs, 0);
    int col = -1;
    assert_int_equal(ekg_yaml_docs_line(docs, d, &col), 1);
    assert_int_equal(col, 1);
    assert_int_equal(ekg_yaml_docs_line(docs, get(d, "kind"), &col), 1);
    assert_int_equal(col, 1);
    const cJSON *meta = get(d, "metadata");
    assert_int_equal(ekg_yaml_docs_line(docs, meta, &col), 2);
    assert_int_equal(ekg_yaml_docs_line(docs, get(meta, "name"), &col), 3);
    assert_int_equal(col, 3);
    const cJSON *labels = get(meta, "labels");
    assert_int_equal(ekg_yaml_docs_line(docs, get(labels, "tier"), &col), 4);
    assert_int_equal(col, 23);
    const cJSON *ports = get(get(d, "spec"), "ports");
    assert_int_equal(ekg_yaml_docs_line(docs, cJSON_GetArrayItem(ports, 0), &col), 7);
    assert_int_equal(col, 7);
    assert_int_equal(ekg_yaml_docs_line(docs, cJSON_GetArrayItem(ports, 1), &col), 8);
    assert_int_equal(col, 9);
    assert_int_equal(ekg_yaml_docs_line(docs, get(cJSON_GetArrayItem(ports, 1), "name"), NULL), 8);
    assert_int_equal(ekg_yaml_docs_line(docs, get(ekg_yaml_docs_get(docs, 1), "second"), &col), 10);
    assert_int_equal(col, 1);
    /* A node from elsewhere is unknown. */
    cJSON *foreign = cJSON_CreateNull();
    assert_int_equal(ekg_yaml_docs_line(docs, foreign, &col), 0);
    assert_int_equal(col, 0);
    cJSON_Delete(foreign);
    assert_string_equal(ekg_yaml_docs_source(docs), "t.yaml");
    ekg_yaml_docs_free(docs);
}

static void test_json(void **state)
{
    (void)state;
    ekg_yaml_docs_t *docs =
        parse_ok("\xEF\xBB\xBF  \n {\"kind\": \"List\", \"items\": [{\"a\": 1}, null], \"x\": 2.5}\n\n");
    assert_int_equal(ekg_yaml_docs_count(docs), 1);
    const cJSON *d = ekg_yaml_docs_get(docs, 0);
    assert_string_equal(get(d, "kind")->valuestring, "List");
    assert_int_equal(cJSON_GetArraySize(get(d, "items")), 2);
    int col = 7;
    assert_int_equal(ekg_yaml_docs_line(docs, get(d, "kind"), &col), 0); /* no positions for JSON */
    assert_int_equal(col, 0);
    ekg_yaml_docs_free(docs);

    docs = parse_ok("[1, 2, 3]");
    assert_int_equal(cJSON_GetArraySize(ekg_yaml_docs_get(docs, 0)), 3);
    ekg_yaml_docs_free(docs);

    ekg_diag_t diag;
    parse_err("{\n  \"a\": 1,\n  \"b\": tru\n}\n", EKG_EPARSE, &diag);
    assert_contains(diag.msg, "t.yaml:3:");
    assert_contains(diag.msg, "invalid JSON");
    parse_err("{\"a\": 1} {\"b\": 2}", EKG_EPARSE, &diag);
    assert_string_equal(diag.msg, "t.yaml:1:10: unexpected content after the JSON value");
    /* A buffer need not be NUL-terminated. */
    const char text[] = {'{', '"', 'a', '"', ':', '1', '}', 'X'};
    ekg_yaml_docs_t *d2 = NULL;
    assert_int_equal(ekg_yaml_parse(text, 7, "buf", &d2, &diag), EKG_OK);
    assert_int_equal(get(ekg_yaml_docs_get(d2, 0), "a")->valueint, 1);
    ekg_yaml_docs_free(d2);
    const char yaml[] = {'a', ':', ' ', '1', 'Z', 'Z'};
    assert_int_equal(ekg_yaml_parse(yaml, 4, "buf", &d2, &diag), EKG_OK);
    assert_int_equal(get(ekg_yaml_docs_get(d2, 0), "a")->valueint, 1);
    ekg_yaml_docs_free(d2);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    ekg_diag_t diag;
    parse_err("a: b: c\n", EKG_EPARSE, &diag);
    assert_contains(diag.msg, "t.yaml:1:5: mapping values are not allowed");
    parse_err("a:\n  - x\n  y: 1\n", EKG_EPARSE, &diag);
    assert_contains(diag.msg, "t.yaml:3:");
    parse_err("a: \"unterminated\n", EKG_EPARSE, &diag);
    assert_contains(diag.msg, "t.yaml:");
    parse_err("a: \"nul\\0byte\"\n", EKG_EPARSE, &diag);
    assert_contains(diag.msg, "NUL character");
    parse_err("a: \x01\n", EKG_EPARSE, &diag);
    assert_contains(diag.msg, "t.yaml:1:4:");
}

static void test_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/ekg-yaml-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/config.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("listen: 0.0.0.0:18000\nkeys:\n  - a\n  - b\n", f);
    fclose(f);
    ekg_yaml_docs_t *docs = NULL;
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_yaml_parse_file(path, &docs, &diag), EKG_OK);
    assert_string_equal(ekg_yaml_docs_source(docs), path);
    const cJSON *d = ekg_yaml_docs_get(docs, 0);
    assert_string_equal(get(d, "listen")->valuestring, "0.0.0.0:18000");
    assert_int_equal(ekg_yaml_docs_line(docs, get(d, "keys"), NULL), 2);
    ekg_yaml_docs_free(docs);

    /* Errors name the file. */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("listen: 1\nlisten: 2\n", f);
    fclose(f);
    assert_int_equal(ekg_yaml_parse_file(path, &docs, &diag), EKG_EPARSE);
    char want[400];
    snprintf(want, sizeof(want), "%s:2:1: duplicate key \"listen\" (first at 1:1)", path);
    assert_string_equal(diag.msg, want);

    unlink(path);
    assert_int_equal(ekg_yaml_parse_file(path, &docs, &diag), EKG_EIO);
    assert_contains(diag.msg, path);
    assert_contains(diag.msg, "No such file");
    rmdir(dir);
}

/* --- streaming JSON Lists (common/yaml_stream.h) ------------------------------------------------------- */

typedef struct seen {
    char names[16][64]; /* each item's "name", or its type */
    char kind[32];
    size_t n;
    size_t stop_after; /* 0: never */
} seen_t;

static ekg_err_t on_item(void *arg, const cJSON *item, const char *list_kind)
{
    seen_t *s = arg;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "name");
    assert_true(s->n < 16);
    snprintf(s->names[s->n], sizeof(s->names[0]), "%s",
             cJSON_IsString(name)   ? name->valuestring
             : cJSON_IsObject(item) ? "{}"
                                    : "other");
    snprintf(s->kind, sizeof(s->kind), "%s", list_kind);
    s->n++;
    return s->stop_after && s->n == s->stop_after ? EKG_ENOMEM : EKG_OK;
}

/* Streams text; returns whether it streamed, with what on_item saw in *s. */
static bool stream(const char *text, seen_t *s)
{
    bool streamed = true;
    memset(s, 0, sizeof(*s));
    assert_int_equal(ekg_yaml_stream_json_list(text, strlen(text), on_item, s, &streamed), EKG_OK);
    return streamed;
}

static void test_stream_json_list(void **state)
{
    (void)state;
    seen_t s;
    /* kind before or after items; the first member of a name counts, as in cJSON lookups. */
    assert_true(stream(
        "\xEF\xBB\xBF {\"kind\": \"List\", \"items\": [{\"name\": \"a\"}, {\"name\": \"b\"}]}\r\n", &s));
    assert_int_equal(s.n, 2);
    assert_string_equal(s.names[1], "b");
    assert_string_equal(s.kind, "List");
    assert_true(stream("{\"items\":[{\"name\":\"a\"}],\"metadata\":{\"items\":[1]},\"kind\":\"ServiceList\","
                       "\"kind\":\"Pod\",\"items\":{}}",
                       &s));
    assert_int_equal(s.n, 1);
    assert_string_equal(s.kind, "ServiceList");
    /* Keys are compared decoded. */
    assert_true(stream("{\"\\u006bind\": \"List\", \"it\\u0065ms\": [{\"name\": \"a\"}]}", &s));
    assert_int_equal(s.n, 1);
    /* An empty list, scalars and nested "items"/"kind" keys inside items. */
    assert_true(stream("{\"kind\":\"List\",\"items\":[ ]}", &s));
    assert_int_equal(s.n, 0);
    assert_true(stream("{\"kind\":\"List\",\"items\":[1, -2.5e3, \"x\", true, false, null, [], "
                       "{\"kind\":\"List\",\"items\":[{\"name\":\"inner\"}],\"name\":\"outer\"}]}",
                       &s));
    assert_int_equal(s.n, 8);
    assert_string_equal(s.names[2], "other");
    assert_string_equal(s.names[7], "outer");
    /* Strings with brackets, braces, escaped quotes and backslashes do not end an item early. */
    assert_true(stream("{\"kind\":\"List\",\"items\":[{\"x\":\"}]\\\"{[\",\"name\":\"q\\\\\"},"
                       "{\"name\":\"]}\\\\\\\"\"},{\"\\\"}\":\"\\\\\",\"name\":\"z\"}]}",
                       &s));
    assert_int_equal(s.n, 3);
    assert_string_equal(s.names[0], "q\\");
    assert_string_equal(s.names[1], "]}\\\"");
    assert_string_equal(s.names[2], "z");

    /* Not Lists: these go the tree path, and nothing is delivered. */
    const char *not_lists[] = {
        "kind: List\nitems: []\n",                      /* YAML */
        "[{\"kind\": \"List\", \"items\": []}]",        /* not an object */
        "{}",                                           /* no kind */
        "{\"kind\": \"Service\", \"items\": [{}]}",     /* not a List */
        "{\"kind\": 5, \"items\": [{}]}",               /* kind not a string */
        "{\"items\": [{}], \"kind\": \"Lis\"}",         /* too short */
        "{\"kind\": \"List\"}",                         /* no items */
        "{\"kind\": \"List\", \"items\": null}",        /* the tree path handles null */
        "{\"kind\": \"List\", \"items\": {\"a\": []}}", /* nor a list */
    };
    for (size_t i = 0; i < sizeof(not_lists) / sizeof(not_lists[0]); i++) {
        if (stream(not_lists[i], &s))
            print_error("streamed: %s\n", not_lists[i]);
        assert_false(stream(not_lists[i], &s));
    }

    /* Invalid JSON never streams, wherever the fault is (cJSON then reports it with its position). */
    const char *invalid[] = {
        "{\"kind\": \"List\", \"items\": [{}]",                    /* unclosed */
        "{\"kind\": \"List\", \"items\": [{}]} x",                 /* trailing content */
        "{\"kind\": \"List\", \"items\": [{}]}\x01",               /* only blanks may follow */
        "{\"kind\": \"List\", \"items\": [{},]}",                  /* trailing comma */
        "{\"kind\": \"List\", \"items\": [{} {}]}",                /* missing comma */
        "{\"kind\": \"List\", \"items\": [{\"a\" 1}]}",            /* inside an item */
        "{\"kind\": \"List\", \"items\": [{\"a\": tru}]}",         /* a literal */
        "{\"kind\": \"List\", \"items\": [{\"a\": 1.2.3}]}",       /* a number */
        "{\"kind\": \"List\", \"items\": [{\"a\": \"\\q\"}]}",     /* an escape */
        "{\"kind\": \"List\", \"items\": [{\"a\": \"\\ud800\"}]}", /* a lone surrogate */
        "{\"kind\": \"List\", \"items\": [{]}",                    /* mismatched */
        "{\"kind\": \"List\", \"items\": [+1]}",                   /* cJSON numbers start with - or a digit */
        "{\"kind\": \"List\", \"items\": [\xEF\xBB\xBF{}]}",       /* a BOM is only allowed first */
        "{\"kind\": \"List\", \"items\": [{}], \"x\": [}",         /* another member */
        "{\"kind\": \"List\", \"items\": [{}], \"x\": 01x}",       /* another member's scalar */
        "{\"kind\": \"List\", \"items\": [{}], \"\\x\": 1}",       /* a key's escape */
        "{\"kind\": \"List\" \"items\": [{}]}",                    /* missing comma between members */
        "{\"kind\": \"List\", \"items\": [{}],}",                  /* trailing comma between members */
        "{\"kind\": \"List\", \"items\" [{}]}",                    /* missing colon */
        "{\"kind\": \"List\", \"items\": [\"abc]}",                /* unterminated string */
        "{\"kind\": \"List\", \"items\": [\"abc\\\"]}",            /* ...by an escaped quote */
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        ekg_yaml_docs_t *docs = NULL;
        ekg_diag_t diag;
        if (stream(invalid[i], &s))
            print_error("streamed: %s\n", invalid[i]);
        assert_false(stream(invalid[i], &s));
        /* ...and is indeed invalid. */
        assert_int_equal(ekg_yaml_parse(invalid[i], strlen(invalid[i]), "t.json", &docs, &diag), EKG_EPARSE);
    }

    /* The callback's error stops the stream. */
    const char *three = "{\"kind\":\"List\",\"items\":[{},{},{}]}";
    memset(&s, 0, sizeof(s));
    s.stop_after = 2;
    bool streamed = true;
    assert_int_equal(ekg_yaml_stream_json_list(three, strlen(three), on_item, &s, &streamed), EKG_ENOMEM);
    assert_int_equal(s.n, 2);
    assert_false(streamed);
    /* NULL and empty buffers are not Lists. */
    assert_int_equal(ekg_yaml_stream_json_list(NULL, 0, on_item, &s, &streamed), EKG_OK);
    assert_false(streamed);
}

/* Depth: the pieces are parsed alone, yet what cJSON refuses in place must not stream. */
static void test_stream_depth(void **state)
{
    (void)state;
    enum { LIMIT = 1000 }; /* CJSON_NESTING_LIMIT: arrays and objects, counting the root */
    size_t cap = 4 * LIMIT + 100;
    char *text = malloc(cap);
    assert_non_null(text);
    for (int where = 0; where < 2; where++) {
        /* An item is 2 levels down, another member's value 1. */
        int room = where == 0 ? LIMIT - 2 : LIMIT - 1;
        for (int n = room; n <= room + 1; n++) {
            size_t k = 0;
            k += (size_t)snprintf(text + k, cap - k, "{\"kind\":\"List\",\"items\":[%s",
                                  where == 0 ? "" : "1],\"x\":");
            for (int i = 0; i < n; i++)
                text[k++] = '[';
            for (int i = 0; i < n; i++)
                text[k++] = ']';
            k += (size_t)snprintf(text + k, cap - k, "%s}", where == 0 ? "]" : "");
            seen_t s;
            bool streamed = false;
            ekg_yaml_docs_t *docs = NULL;
            ekg_diag_t diag;
            ekg_err_t perr = ekg_yaml_parse(text, k, "t.json", &docs, &diag);
            ekg_yaml_docs_free(docs);
            memset(&s, 0, sizeof(s));
            assert_int_equal(ekg_yaml_stream_json_list(text, k, on_item, &s, &streamed), EKG_OK);
            assert_int_equal(perr, n == room ? EKG_OK : EKG_EPARSE);
            assert_int_equal(streamed, n == room);
        }
    }
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),        cmocka_unit_test(test_sequences_and_order),
        cmocka_unit_test(test_multi_document), cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_billion_laughs), cmocka_unit_test(test_duplicate_and_complex_keys),
        cmocka_unit_test(test_deep_nesting),   cmocka_unit_test(test_positions),
        cmocka_unit_test(test_json),           cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_file),           cmocka_unit_test(test_stream_json_list),
        cmocka_unit_test(test_stream_depth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
