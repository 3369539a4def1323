/*
 * tests/unit/zones_test.c: zone-aware endpoints (src/translate/zones.c, the per-place sets of
 * src/resource/snapshot.c; rules in docs/translation.md, "Zone-aware endpoints", and zones.c's head comment).
 *
 * Everything goes through the translator and its snapshot as the xDS server uses them: objects in,
 * ekg_translator_snapshot(), then ekg_snapshot_resources_at() with a client place, and the
 * ClusterLoadAssignment decoded with upb. One test per rule: the three priorities (client zone, rest of its
 * region, other regions) with empty ones dropped and the rest renumbered, locality weights per priority,
 * endpoints whose Node is unknown, complete and incomplete hints.forZones, the topology-mode annotation,
 * PreferSameNode, endpoint_config.zone_priorities and overprovisioning_factor, clients without a zone (none,
 * or only a region or a Node: the plain assignment), unknown trafficDistribution values; then sharing and
 * bounds (places that cannot be told apart share one set object, made-up zones make no new sets, versions are
 * content hashes, a change to one Service leaves the others' variants the same objects), changes (failover
 * when a zone is not ready, a Node moving zone, a config switch, a removed Service) and the demo cluster's
 * shop/frontend.
 *
 * Endpoint expectations are fx_describe_load_assignment() summaries: localities in order, each
 * "region/zone/sub_zone [p=PRIORITY ]w=WEIGHT: ADDR:PORT HEALTH, ..." joined by " | " (p= only when not 0).
 * Thread: the test's main thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "envoy/config/endpoint/v3/endpoint.upb.h"
#include "google/protobuf/wrappers.upb.h"

#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/proto.h"
#include "ekglue/resource.h"
#include "ekglue/translate.h"

#include "k8s_fixtures.h"

#define LA EKG_RESOURCE_LOAD_ASSIGNMENT

/* --- fixtures --------------------------------------------------------------------------------------------
 */

static int group_setup(void **state)
{
    (void)state;
    ekg_diag_t diag = {{0}};
    if (ekg_proto_init(&diag) != EKG_OK) {
        fprintf(stderr, "ekg_proto_init: %s\n", diag.msg);
        return -1;
    }
    ekg_log_set_level(EKG_LOG_ERROR); /* the unknown trafficDistribution warning is expected */
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    ekg_proto_shutdown();
    return 0;
}

/* Each test gets a fresh arena in *state for decoded messages and descriptions. */
static int arena_setup(void **state)
{
    *state = upb_Arena_New();
    return *state ? 0 : -1;
}

static int arena_teardown(void **state)
{
    upb_Arena_Free(*state);
    return 0;
}

/* Service shop/NAME with port http 80 -> 8080; td: spec.trafficDistribution or NULL; annotations: members of
 * metadata.annotations ('-quoted JSON) or NULL. */
static ekg_service_t *service(const char *name, const char *td, const char *annotations)
{
    char spec_td[128] = "", ann[512] = "";
    if (td)
        snprintf(spec_td, sizeof(spec_td), "'trafficDistribution': '%s', ", td);
    if (annotations)
        snprintf(ann, sizeof(ann), ", 'annotations': {%s}", annotations);
    return fx_service(
        "{'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'namespace': 'shop', 'name': '%s', "
        "'resourceVersion': '1'%s}, 'spec': {%s'ports': [{'name': 'http', 'port': 80, "
        "'targetPort': 8080, 'protocol': 'TCP'}]}}",
        name, ann, spec_td);
}

/* EndpointSlice shop/NAME of Service shop/SVC, port http 8080, with the given endpoints (JSON list members).
 */
static ekg_endpoint_slice_t *slice(const char *name, const char *svc, const char *endpoints)
{
    return fx_slice(
        "{'apiVersion': 'discovery.k8s.io/v1', 'kind': 'EndpointSlice', 'metadata': {'namespace': "
        "'shop', 'name': '%s', 'labels': {'kubernetes.io/service-name': '%s'}}, 'addressType': "
        "'IPv4', 'endpoints': [%s], 'ports': [{'name': 'http', 'port': 8080, 'protocol': 'TCP'}]}",
        name, svc, endpoints);
}

/* A ready endpoint on Node `node` whose slice says zone `zone`. */
#define EP(addr, node, zone)                                                                                 \
    "{'addresses': ['" addr "'], 'conditions': {'ready': true}, 'nodeName': '" node "', 'zone': '" zone "'}"
/* The same with hints.forZones (members: FZ(...), ...). */
#define EPH(addr, node, zone, hints)                                                                         \
    "{'addresses': ['" addr "'], 'conditions': {'ready': true}, 'nodeName': '" node "', 'zone': '" zone      \
    "', 'hints': {'forZones': [" hints "]}}"
#define FZ(z) "{'name': '" z "'}"

/* Joins JSON list members with ", " (LIST(EP(...), EP(...), ...)) into one of a few rotating static buffers,
 * so that lists nest and several may be alive in one call. */
static const char *join(const char *const *parts)
{
    static char bufs[16][8192];
    static unsigned next;
    char *b = bufs[next++ % 16];
    size_t len = 0;
    b[0] = '\0';
    for (size_t i = 0; parts[i]; i++) {
        int n = snprintf(b + len, sizeof(bufs[0]) - len, "%s%s", i ? ", " : "", parts[i]);
        if (n < 0 || (size_t)n >= sizeof(bufs[0]) - len)
            fail_msg("LIST: more than %zu bytes", sizeof(bufs[0]));
        len += (size_t)n;
    }
    return b;
}
#define LIST(...) join((const char *const[]){__VA_ARGS__, NULL})

/*
 * The Nodes every test uses: region r1 has zones a (a1, a2), b (b1) and d (d1); region r2 has zone c (c1)
 * and a zone also named a (x1); region r3 has zone e (e1).
 */
static void put_nodes(ekg_translator_t *t)
{
    ekg_translator_put_node(t, fx_node_in("a1", "r1", "a"));
    ekg_translator_put_node(t, fx_node_in("a2", "r1", "a"));
    ekg_translator_put_node(t, fx_node_in("b1", "r1", "b"));
    ekg_translator_put_node(t, fx_node_in("d1", "r1", "d"));
    ekg_translator_put_node(t, fx_node_in("c1", "r2", "c"));
    ekg_translator_put_node(t, fx_node_in("x1", "r2", "a"));
    ekg_translator_put_node(t, fx_node_in("e1", "r3", "e"));
}

/* One endpoint per locality kind above, two in r1/a and r1/b. */
#define WEB_ENDPOINTS                                                                                        \
    LIST(EP("10.0.0.1", "a1", "a"), EP("10.0.0.2", "a2", "a"), EP("10.0.0.3", "b1", "b"),                    \
         EP("10.0.0.4", "b1", "b"), EP("10.0.0.5", "d1", "d"), EP("10.0.0.6", "c1", "c"),                    \
         EP("10.0.0.7", "e1", "e"), EP("10.0.0.8", "x1", "a"))

static ekg_snapshot_t *snapshot_of(ekg_translator_t *t)
{
    ekg_snapshot_t *s = NULL;
    ekg_err_t err = ekg_translator_snapshot(t, &s);
    if (err != EKG_OK)
        fail_msg("ekg_translator_snapshot: %s", ekg_strerror(err));
    return s;
}

static ekg_resource_set_t *set_at(ekg_snapshot_t *s, const char *region, const char *zone, const char *node)
{
    ekg_place_t p = {region, zone, node};
    return ekg_snapshot_resources_at(s, LA, &p);
}

/* The description of the assignment `name` a client at (region, zone, node) gets. */
static const char *at(ekg_snapshot_t *s, const char *region, const char *zone, const char *node,
                      const char *name, upb_Arena *arena)
{
    return fx_describe_load_assignment(fx_find_load_assignment(set_at(s, region, zone, node), name, arena),
                                       arena);
}

/* The description of the plain assignment `name` (the base set). */
static const char *plain(ekg_snapshot_t *s, const char *name, upb_Arena *arena)
{
    return fx_describe_load_assignment(fx_find_load_assignment(ekg_snapshot_resources(s, LA), name, arena),
                                       arena);
}

static void assert_reason(ekg_snapshot_t *s, const char *name, const char *want)
{
    const char *got = ekg_snapshot_variant_reason(s, LA, name);
    if (!want) {
        if (got)
            fail_msg("%s: expected no variant reason, got \"%s\"", name, got);
        return;
    }
    if (!got)
        fail_msg("%s: expected the variant reason \"%s\", got none", name, want);
    assert_string_equal(got, want);
}

/* A translator over cfg with the Nodes and Service shop/NAME (td, annotations) with `endpoints`. */
static ekg_translator_t *one_service(const ekg_config_t *cfg, const char *name, const char *td,
                                     const char *annotations, const char *endpoints)
{
    ekg_translator_t *t = fx_translator(cfg);
    put_nodes(t);
    ekg_translator_put_service(t, service(name, td, annotations));
    char sname[128];
    snprintf(sname, sizeof(sname), "%s-1", name);
    ekg_translator_put_slice(t, slice(sname, name, endpoints));
    return t;
}

/* --- the three priorities --------------------------------------------------------------------------------
 */

#define WEB_PLAIN                                                                                            \
    "r1/a/ w=2: 10.0.0.1:8080 HEALTHY, 10.0.0.2:8080 HEALTHY | r1/b/ w=2: 10.0.0.3:8080 HEALTHY, "           \
    "10.0.0.4:8080 HEALTHY | r1/d/ w=1: 10.0.0.5:8080 HEALTHY | r2/a/ w=1: 10.0.0.8:8080 HEALTHY | r2/c/ "   \
    "w=1: 10.0.0.6:8080 HEALTHY | r3/e/ w=1: 10.0.0.7:8080 HEALTHY"

/* Client zone at 0, the rest of its region at 1, other regions at 2; weights count endpoints per locality
 * within each priority. A zone of the same name in another region is another region. */
static void test_three_priorities(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = one_service(cfg, "web", "PreferClose", NULL, WEB_ENDPOINTS);
    ekg_snapshot_t *s = snapshot_of(t);

    assert_string_equal(plain(s, "shop:web:http", arena), WEB_PLAIN);
    assert_string_equal(at(s, "r1", "a", "", "shop:web:http", arena),
                        "r1/a/ w=2: 10.0.0.1:8080 HEALTHY, 10.0.0.2:8080 HEALTHY"
                        " | r1/b/ p=1 w=2: 10.0.0.3:8080 HEALTHY, 10.0.0.4:8080 HEALTHY"
                        " | r1/d/ p=1 w=1: 10.0.0.5:8080 HEALTHY"
                        " | r2/a/ p=2 w=1: 10.0.0.8:8080 HEALTHY"
                        " | r2/c/ p=2 w=1: 10.0.0.6:8080 HEALTHY"
                        " | r3/e/ p=2 w=1: 10.0.0.7:8080 HEALTHY");
    assert_string_equal(at(s, "r1", "b", "", "shop:web:http", arena),
                        "r1/b/ w=2: 10.0.0.3:8080 HEALTHY, 10.0.0.4:8080 HEALTHY"
                        " | r1/a/ p=1 w=2: 10.0.0.1:8080 HEALTHY, 10.0.0.2:8080 HEALTHY"
                        " | r1/d/ p=1 w=1: 10.0.0.5:8080 HEALTHY"
                        " | r2/a/ p=2 w=1: 10.0.0.8:8080 HEALTHY"
                        " | r2/c/ p=2 w=1: 10.0.0.6:8080 HEALTHY"
                        " | r3/e/ p=2 w=1: 10.0.0.7:8080 HEALTHY");
    /* r2/a is not r1/a: a zone belongs to its region. */
    assert_string_equal(at(s, "r2", "a", "", "shop:web:http", arena),
                        "r2/a/ w=1: 10.0.0.8:8080 HEALTHY"
                        " | r2/c/ p=1 w=1: 10.0.0.6:8080 HEALTHY"
                        " | r1/a/ p=2 w=2: 10.0.0.1:8080 HEALTHY, 10.0.0.2:8080 HEALTHY"
                        " | r1/b/ p=2 w=2: 10.0.0.3:8080 HEALTHY, 10.0.0.4:8080 HEALTHY"
                        " | r1/d/ p=2 w=1: 10.0.0.5:8080 HEALTHY"
                        " | r3/e/ p=2 w=1: 10.0.0.7:8080 HEALTHY");
    assert_reason(s, "shop:web:http", "trafficDistribution: PreferClose");
    ekg_snapshot_unref(s);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* Empty priorities are left out and the rest numbered from 0. */
static void test_empty_priorities_renumbered(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = one_service(cfg, "web", "PreferClose", NULL, WEB_ENDPOINTS);
    ekg_snapshot_t *s = snapshot_of(t);

    /* r3 has only zone e: no "rest of the region", so other regions are 1. */
    assert_string_equal(at(s, "r3", "e", "", "shop:web:http", arena),
                        "r3/e/ w=1: 10.0.0.7:8080 HEALTHY"
                        " | r1/a/ p=1 w=2: 10.0.0.1:8080 HEALTHY, 10.0.0.2:8080 HEALTHY"
                        " | r1/b/ p=1 w=2: 10.0.0.3:8080 HEALTHY, 10.0.0.4:8080 HEALTHY"
                        " | r1/d/ p=1 w=1: 10.0.0.5:8080 HEALTHY"
                        " | r2/a/ p=1 w=1: 10.0.0.8:8080 HEALTHY"
                        " | r2/c/ p=1 w=1: 10.0.0.6:8080 HEALTHY");
    /* No endpoint in the client's zone: its region is 0. */
    assert_string_equal(at(s, "r1", "nowhere", "", "shop:web:http", arena),
                        "r1/a/ w=2: 10.0.0.1:8080 HEALTHY, 10.0.0.2:8080 HEALTHY"
                        " | r1/b/ w=2: 10.0.0.3:8080 HEALTHY, 10.0.0.4:8080 HEALTHY"
                        " | r1/d/ w=1: 10.0.0.5:8080 HEALTHY"
                        " | r2/a/ p=1 w=1: 10.0.0.8:8080 HEALTHY"
                        " | r2/c/ p=1 w=1: 10.0.0.6:8080 HEALTHY"
                        " | r3/e/ p=1 w=1: 10.0.0.7:8080 HEALTHY");
    /* A client that only knows its zone: that zone in any region first, everything else next. */
    assert_string_equal(at(s, "", "a", "", "shop:web:http", arena),
                        "r1/a/ w=2: 10.0.0.1:8080 HEALTHY, 10.0.0.2:8080 HEALTHY"
                        " | r2/a/ w=1: 10.0.0.8:8080 HEALTHY"
                        " | r1/b/ p=1 w=2: 10.0.0.3:8080 HEALTHY, 10.0.0.4:8080 HEALTHY"
                        " | r1/d/ p=1 w=1: 10.0.0.5:8080 HEALTHY"
                        " | r2/c/ p=1 w=1: 10.0.0.6:8080 HEALTHY"
                        " | r3/e/ p=1 w=1: 10.0.0.7:8080 HEALTHY");
    /* Everything in one priority is the plain assignment: the base set itself. A region no endpoint is in
     * makes its zone another zone too. */
    ekg_resource_set_t *base = ekg_snapshot_resources(s, LA);
    assert_ptr_equal(set_at(s, "r9", "z", ""), base);
    assert_ptr_equal(set_at(s, "r9", "a", ""), base);
    ekg_snapshot_unref(s);
    ekg_translator_free(t);

    /* Every endpoint in the client's zone: one priority, so the plain assignment (the base resource). */
    t = one_service(cfg, "web", "PreferClose", NULL,
                    LIST(EP("10.0.0.1", "a1", "a"), EP("10.0.0.2", "a2", "a")));
    s = snapshot_of(t);
    assert_ptr_equal(ekg_resource_set_find(set_at(s, "r1", "a", ""), "shop:web:http"),
                     ekg_resource_set_find(ekg_snapshot_resources(s, LA), "shop:web:http"));
    /* ... and only another region's: one priority as well. */
    assert_ptr_equal(ekg_resource_set_find(set_at(s, "r2", "c", ""), "shop:web:http"),
                     ekg_resource_set_find(ekg_snapshot_resources(s, LA), "shop:web:http"));
    ekg_snapshot_unref(s);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* An endpoint whose Node is unknown has the slice's zone and no region: priority 0 when its zone is the
 * client's, otherwise another region (never "the rest of the client's region"). */
static void test_unknown_node(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = one_service(cfg, "api", "PreferClose", NULL,
                                      LIST(EP("10.0.1.1", "a1", "a"), EP("10.0.1.2", "ghost", "a"),
                                           EP("10.0.1.3", "ghost2", "b"), EP("10.0.1.4", "c1", "c"),
                                           EP("10.0.1.6", "b1", "b"), "{'addresses': ['10.0.1.5']}"));
    ekg_snapshot_t *s = snapshot_of(t);
    assert_string_equal(plain(s, "shop:api:http", arena),
                        "// w=1: 10.0.1.5:8080 HEALTHY | /a/ w=1: 10.0.1.2:8080 HEALTHY | /b/ w=1: "
                        "10.0.1.3:8080 HEALTHY | r1/a/ w=1: 10.0.1.1:8080 HEALTHY | r1/b/ w=1: 10.0.1.6:8080 "
                        "HEALTHY | r2/c/ w=1: 10.0.1.4:8080 HEALTHY");
    assert_string_equal(at(s, "r1", "a", "", "shop:api:http", arena),
                        "/a/ w=1: 10.0.1.2:8080 HEALTHY | r1/a/ w=1: 10.0.1.1:8080 HEALTHY"
                        " | r1/b/ p=1 w=1: 10.0.1.6:8080 HEALTHY"
                        " | // p=2 w=1: 10.0.1.5:8080 HEALTHY | /b/ p=2 w=1: 10.0.1.3:8080 HEALTHY"
                        " | r2/c/ p=2 w=1: 10.0.1.4:8080 HEALTHY");
    assert_string_equal(at(s, "r1", "b", "", "shop:api:http", arena),
                        "/b/ w=1: 10.0.1.3:8080 HEALTHY | r1/b/ w=1: 10.0.1.6:8080 HEALTHY"
                        " | r1/a/ p=1 w=1: 10.0.1.1:8080 HEALTHY"
                        " | // p=2 w=1: 10.0.1.5:8080 HEALTHY | /a/ p=2 w=1: 10.0.1.2:8080 HEALTHY"
                        " | r2/c/ p=2 w=1: 10.0.1.4:8080 HEALTHY");
    ekg_snapshot_unref(s);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* --- hints -----------------------------------------------------------------------------------------------
 */

#define HINTED_ENDPOINTS                                                                                     \
    LIST(EPH("10.0.0.1", "a1", "a", FZ("a")), EPH("10.0.0.2", "a2", "a", FZ("b")),                           \
         EPH("10.0.0.3", "b1", "b", FZ("a") ", " FZ("b")), EPH("10.0.0.4", "d1", "d", FZ("d") ", " FZ("q")), \
         EPH("10.0.0.5", "c1", "c", FZ("c")))

/* Every served endpoint has hints.forZones: priority 0 for zone Z is the endpoints hinted for Z (wherever
 * they are), then the zone rule for the rest. An endpoint that is not served needs no hints. */
static void test_hints_complete(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = one_service(
        cfg, "web", "PreferClose", NULL,
        LIST(HINTED_ENDPOINTS, "{'addresses': ['10.0.0.9'], 'conditions': {'ready': false, 'serving': "
                               "false}, 'nodeName': 'd1', 'zone': 'd'}"));
    ekg_snapshot_t *s = snapshot_of(t);
    assert_reason(s, "shop:web:http", "trafficDistribution: PreferClose, with hints.forZones");
    assert_string_equal(at(s, "r1", "a", "", "shop:web:http", arena),
                        "r1/a/ w=1: 10.0.0.1:8080 HEALTHY | r1/b/ w=1: 10.0.0.3:8080 HEALTHY"
                        " | r1/a/ p=1 w=1: 10.0.0.2:8080 HEALTHY"
                        " | r1/d/ p=2 w=1: 10.0.0.4:8080 HEALTHY"
                        " | r2/c/ p=3 w=1: 10.0.0.5:8080 HEALTHY");
    assert_string_equal(at(s, "r1", "b", "", "shop:web:http", arena),
                        "r1/a/ w=1: 10.0.0.2:8080 HEALTHY | r1/b/ w=1: 10.0.0.3:8080 HEALTHY"
                        " | r1/a/ p=1 w=1: 10.0.0.1:8080 HEALTHY | r1/d/ p=1 w=1: 10.0.0.4:8080 HEALTHY"
                        " | r2/c/ p=2 w=1: 10.0.0.5:8080 HEALTHY");
    /* A zone only hints name (q) is one the plan tells apart. */
    assert_string_equal(at(s, "r1", "q", "", "shop:web:http", arena),
                        "r1/d/ w=1: 10.0.0.4:8080 HEALTHY"
                        " | r1/a/ p=1 w=2: 10.0.0.1:8080 HEALTHY, 10.0.0.2:8080 HEALTHY"
                        " | r1/b/ p=1 w=1: 10.0.0.3:8080 HEALTHY"
                        " | r2/c/ p=2 w=1: 10.0.0.5:8080 HEALTHY");
    ekg_snapshot_unref(s);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* One served endpoint without hints (ready, or serving while terminating, or with malformed hints): hints are
 * ignored for the whole Service, the zone rule alone decides. */
static void test_hints_incomplete(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    static const char *const unhinted[] = {
        EP("10.0.0.6", "d1", "d"),
        "{'addresses': ['10.0.0.6'], 'conditions': {'ready': false, 'serving': true, 'terminating': true}, "
        "'nodeName': 'd1', 'zone': 'd'}",
        "{'addresses': ['10.0.0.6'], 'conditions': {'ready': true}, 'nodeName': 'd1', 'zone': 'd', 'hints': "
        "{'forZones': [{'name': 5}]}}",
        "{'addresses': ['10.0.0.6'], 'conditions': {'ready': true}, 'nodeName': 'd1', 'zone': 'd', 'hints': "
        "{'forZones': []}}",
    };
    static const char *const health[] = {"HEALTHY", "DRAINING", "HEALTHY", "HEALTHY"};
    for (size_t i = 0; i < sizeof(unhinted) / sizeof(unhinted[0]); i++) {
        char endpoints[2048], want[1024];
        snprintf(endpoints, sizeof(endpoints), "%s, %s", HINTED_ENDPOINTS, unhinted[i]);
        ekg_translator_t *t = one_service(cfg, "web", "PreferClose", NULL, endpoints);
        ekg_snapshot_t *s = snapshot_of(t);
        assert_reason(s, "shop:web:http", "trafficDistribution: PreferClose");
        snprintf(want, sizeof(want),
                 "r1/a/ w=2: 10.0.0.1:8080 HEALTHY, 10.0.0.2:8080 HEALTHY"
                 " | r1/b/ p=1 w=1: 10.0.0.3:8080 HEALTHY"
                 " | r1/d/ p=1 w=2: 10.0.0.4:8080 HEALTHY, 10.0.0.6:8080 %s"
                 " | r2/c/ p=2 w=1: 10.0.0.5:8080 HEALTHY",
                 health[i]);
        assert_string_equal(at(s, "r1", "a", "", "shop:web:http", arena), want);
        /* q is only a hint: without hints it is a zone nobody is in (the same content as any such zone). */
        assert_string_equal(ekg_resource_set_version(set_at(s, "r1", "q", "")),
                            ekg_resource_set_version(set_at(s, "r1", "nowhere", "")));
        ekg_snapshot_unref(s);
        ekg_translator_free(t);
    }
    ekg_config_free(cfg);
}

/* topology-mode Auto (or the older topology-aware-hints annotation) without trafficDistribution: applies with
 * complete hints, and not otherwise (the plain assignment, and the reason says why). */
static void test_topology_annotation(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    static const char *const annotations[] = {"'service.kubernetes.io/topology-mode': 'Auto'",
                                              "'service.kubernetes.io/topology-aware-hints': 'auto'"};
    static const char *const reasons[] = {"topology-mode: Auto, with hints.forZones",
                                          "topology-mode: auto, with hints.forZones"};
    static const char *const not_applied[] = {
        "not applied: topology-mode Auto, but not every endpoint has hints.forZones (kube-proxy ignores the "
        "hints too)",
        "not applied: topology-mode auto, but not every endpoint has hints.forZones (kube-proxy ignores the "
        "hints too)"};
    for (size_t i = 0; i < 2; i++) {
        ekg_translator_t *t = one_service(cfg, "web", NULL, annotations[i], HINTED_ENDPOINTS);
        ekg_snapshot_t *s = snapshot_of(t);
        assert_reason(s, "shop:web:http", reasons[i]);
        assert_string_equal(at(s, "r1", "a", "", "shop:web:http", arena),
                            "r1/a/ w=1: 10.0.0.1:8080 HEALTHY | r1/b/ w=1: 10.0.0.3:8080 HEALTHY"
                            " | r1/a/ p=1 w=1: 10.0.0.2:8080 HEALTHY"
                            " | r1/d/ p=2 w=1: 10.0.0.4:8080 HEALTHY"
                            " | r2/c/ p=3 w=1: 10.0.0.5:8080 HEALTHY");
        ekg_snapshot_unref(s);
        ekg_translator_free(t);

        t = one_service(cfg, "web", NULL, annotations[i], LIST(HINTED_ENDPOINTS, EP("10.0.0.6", "d1", "d")));
        s = snapshot_of(t);
        assert_reason(s, "shop:web:http", not_applied[i]);
        assert_ptr_equal(set_at(s, "r1", "a", ""), ekg_snapshot_resources(s, LA));
        assert_ptr_equal(set_at(s, "r1", "b", "b1"), ekg_snapshot_resources(s, LA));
        ekg_snapshot_unref(s);
        ekg_translator_free(t);
    }
    /* No endpoints at all: nothing to apply, and the reason says so. */
    ekg_translator_t *t = one_service(cfg, "web", NULL, annotations[0], "");
    ekg_snapshot_t *s = snapshot_of(t);
    assert_reason(s, "shop:web:http",
                  "not applied: topology-mode Auto, but no endpoints (kube-proxy ignores the hints too)");
    ekg_snapshot_unref(s);
    ekg_translator_free(t);
    /* The newer annotation wins over the older one; any other mode is no preference. */
    t = one_service(cfg, "web", NULL,
                    "'service.kubernetes.io/topology-mode': 'Disabled', "
                    "'service.kubernetes.io/topology-aware-hints': 'Auto'",
                    HINTED_ENDPOINTS);
    s = snapshot_of(t);
    assert_reason(s, "shop:web:http", NULL);
    assert_ptr_equal(set_at(s, "r1", "a", ""), ekg_snapshot_resources(s, LA));
    ekg_snapshot_unref(s);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* --- PreferSameNode --------------------------------------------------------------------------------------
 */

/* The client's own Node first, then the zone rule; a Node no endpoint is on, or none, is the zone rule. Other
 * Services ignore the client's Node. */
static void test_prefer_same_node(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = one_service(cfg, "local", "PreferSameNode", NULL,
                                      LIST(EP("10.0.2.1", "a1", "a"), EP("10.0.2.2", "a2", "a"),
                                           EP("10.0.2.3", "b1", "b"), EP("10.0.2.4", "c1", "c")));
    ekg_translator_put_service(t, service("web", "PreferClose", NULL));
    ekg_translator_put_slice(t, slice("web-1", "web", WEB_ENDPOINTS));
    ekg_snapshot_t *s = snapshot_of(t);
    assert_reason(s, "shop:local:http", "trafficDistribution: PreferSameNode");
    assert_string_equal(at(s, "r1", "a", "a2", "shop:local:http", arena),
                        "r1/a/ w=1: 10.0.2.2:8080 HEALTHY"
                        " | r1/a/ p=1 w=1: 10.0.2.1:8080 HEALTHY"
                        " | r1/b/ p=2 w=1: 10.0.2.3:8080 HEALTHY"
                        " | r2/c/ p=3 w=1: 10.0.2.4:8080 HEALTHY");
    const char *zone_rule = "r1/a/ w=2: 10.0.2.1:8080 HEALTHY, 10.0.2.2:8080 HEALTHY"
                            " | r1/b/ p=1 w=1: 10.0.2.3:8080 HEALTHY"
                            " | r2/c/ p=2 w=1: 10.0.2.4:8080 HEALTHY";
    assert_string_equal(at(s, "r1", "a", "", "shop:local:http", arena), zone_rule);
    assert_string_equal(at(s, "r1", "a", "b9", "shop:local:http", arena), zone_rule);
    assert_ptr_equal(set_at(s, "r1", "a", "b9"), set_at(s, "r1", "a", ""));
    /* The Node alone is no locality: without a zone, the plain assignment (docs/translation.md, "The
     * client's place"). */
    assert_ptr_equal(set_at(s, "", "", "c1"), ekg_snapshot_resources(s, LA));
    assert_ptr_equal(set_at(s, "r1", "", "a2"), ekg_snapshot_resources(s, LA));
    /* A PreferClose Service in the same snapshot: the Node changes nothing, the very same variant. */
    ekg_resource_set_t *with_node = set_at(s, "r1", "a", "a2"), *without = set_at(s, "r1", "a", "");
    assert_ptr_not_equal(with_node, without); /* local:http differs between them */
    assert_ptr_equal(ekg_resource_set_find(with_node, "shop:web:http"),
                     ekg_resource_set_find(without, "shop:web:http"));
    ekg_snapshot_unref(s);
    ekg_translator_free(t);

    /* With complete hints: the Node, then the endpoints hinted for the zone, then the zone rule. */
    t = one_service(cfg, "local", "PreferSameNode", NULL, HINTED_ENDPOINTS);
    s = snapshot_of(t);
    assert_reason(s, "shop:local:http", "trafficDistribution: PreferSameNode, with hints.forZones");
    assert_string_equal(at(s, "r1", "a", "a2", "shop:local:http", arena),
                        "r1/a/ w=1: 10.0.0.2:8080 HEALTHY"
                        " | r1/a/ p=1 w=1: 10.0.0.1:8080 HEALTHY | r1/b/ p=1 w=1: 10.0.0.3:8080 HEALTHY"
                        " | r1/d/ p=2 w=1: 10.0.0.4:8080 HEALTHY"
                        " | r2/c/ p=3 w=1: 10.0.0.5:8080 HEALTHY");
    ekg_snapshot_unref(s);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* --- the config ------------------------------------------------------------------------------------------
 */

/* zone_priorities: always gives every EDS cluster priorities (PreferSameNode still honoured), never gives
 * none (and says why for a Service that asked); auto is the default. */
static void test_zone_priorities_config(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *always = fx_config("apiVersion: v1alpha\nendpoint_config:\n  zone_priorities: always\n");
    ekg_translator_t *t = one_service(always, "web", NULL, NULL, WEB_ENDPOINTS);
    ekg_translator_put_service(t, service("local", "PreferSameNode", NULL));
    ekg_translator_put_slice(
        t, slice("local-1", "local", LIST(EP("10.0.2.1", "a1", "a"), EP("10.0.2.2", "a2", "a"))));
    ekg_snapshot_t *s = snapshot_of(t);
    assert_reason(s, "shop:web:http", "endpoint_config.zone_priorities: always");
    assert_reason(s, "shop:local:http",
                  "endpoint_config.zone_priorities: always, trafficDistribution: PreferSameNode");
    assert_string_equal(at(s, "r1", "a", "", "shop:web:http", arena),
                        "r1/a/ w=2: 10.0.0.1:8080 HEALTHY, 10.0.0.2:8080 HEALTHY"
                        " | r1/b/ p=1 w=2: 10.0.0.3:8080 HEALTHY, 10.0.0.4:8080 HEALTHY"
                        " | r1/d/ p=1 w=1: 10.0.0.5:8080 HEALTHY"
                        " | r2/a/ p=2 w=1: 10.0.0.8:8080 HEALTHY"
                        " | r2/c/ p=2 w=1: 10.0.0.6:8080 HEALTHY"
                        " | r3/e/ p=2 w=1: 10.0.0.7:8080 HEALTHY");
    assert_string_equal(at(s, "r1", "a", "a1", "shop:local:http", arena),
                        "r1/a/ w=1: 10.0.2.1:8080 HEALTHY | r1/a/ p=1 w=1: 10.0.2.2:8080 HEALTHY");
    ekg_snapshot_unref(s);
    ekg_translator_free(t);
    ekg_config_free(always);

    ekg_config_t *never = fx_config("apiVersion: v1alpha\nendpoint_config:\n  zone_priorities: never\n");
    t = one_service(never, "web", "PreferClose", NULL, WEB_ENDPOINTS);
    ekg_translator_put_service(t, service("topo", NULL, "'service.kubernetes.io/topology-mode': 'Auto'"));
    ekg_translator_put_slice(t, slice("topo-1", "topo", HINTED_ENDPOINTS));
    ekg_translator_put_service(t, service("other", NULL, NULL));
    ekg_translator_put_slice(t, slice("other-1", "other", WEB_ENDPOINTS));
    s = snapshot_of(t);
    assert_reason(s, "shop:web:http",
                  "not applied: endpoint_config.zone_priorities is never (the Service asks for "
                  "trafficDistribution)");
    assert_reason(s, "shop:topo:http",
                  "not applied: endpoint_config.zone_priorities is never (the Service asks for topology-mode "
                  "Auto)");
    assert_reason(s, "shop:other:http", NULL);
    assert_ptr_equal(set_at(s, "r1", "a", "a1"), ekg_snapshot_resources(s, LA));
    assert_int_equal(ekg_snapshot_place_count(s), 0);
    ekg_snapshot_unref(s);
    ekg_translator_free(t);
    ekg_config_free(never);

    /* auto, written or not, follows the Services. */
    ekg_config_t *autos[] = {fx_config(NULL),
                             fx_config("apiVersion: v1alpha\nendpoint_config:\n  zone_priorities: auto\n")};
    for (size_t i = 0; i < 2; i++) {
        t = one_service(autos[i], "web", "PreferClose", NULL, WEB_ENDPOINTS);
        ekg_translator_put_service(t, service("other", NULL, NULL));
        ekg_translator_put_slice(t, slice("other-1", "other", WEB_ENDPOINTS));
        s = snapshot_of(t);
        assert_string_equal(at(s, "r3", "e", "", "shop:other:http", arena),
                            plain(s, "shop:other:http", arena));
        assert_string_not_equal(at(s, "r3", "e", "", "shop:web:http", arena),
                                plain(s, "shop:web:http", arena));
        ekg_snapshot_unref(s);
        ekg_translator_free(t);
        ekg_config_free(autos[i]);
    }
}

/* The overprovisioning factor of a ClusterLoadAssignment's policy; -1 when there is no policy or no factor.
 */
static int64_t overprovisioning(const ekg_resource_t *r, upb_Arena *arena)
{
    const envoy_config_endpoint_v3_ClusterLoadAssignment *la = fx_decode_load_assignment(r, arena);
    const envoy_config_endpoint_v3_ClusterLoadAssignment_Policy *p =
        envoy_config_endpoint_v3_ClusterLoadAssignment_policy(la);
    if (!p)
        return -1;
    const struct google_protobuf_UInt32Value *f =
        envoy_config_endpoint_v3_ClusterLoadAssignment_Policy_overprovisioning_factor(p);
    return f ? (int64_t)google_protobuf_UInt32Value_value(f) : -1;
}

/* overprovisioning_factor is in the policy of every assignment, plain or variant, empty or not, when set;
 * absent (Envoy's default) when not. */
static void test_overprovisioning_factor(void **state)
{
    upb_Arena *arena = *state;
    static const char *const yaml[] = {
        NULL, "apiVersion: v1alpha\nendpoint_config:\n  overprovisioning_factor: 200\n",
        "apiVersion: v1alpha\nendpoint_config:\n  overprovisioning_factor: 1\n"};
    static const int64_t want[] = {-1, 200, 1};
    for (size_t i = 0; i < 3; i++) {
        ekg_config_t *cfg = fx_config(yaml[i]);
        assert_int_equal(ekg_config_overprovisioning_factor(cfg), want[i] < 0 ? 0 : want[i]);
        ekg_translator_t *t = one_service(cfg, "web", "PreferClose", NULL, WEB_ENDPOINTS);
        ekg_translator_put_service(t, service("other", NULL, NULL));
        ekg_translator_put_slice(t, slice("other-1", "other", WEB_ENDPOINTS));
        ekg_translator_put_service(t, service("empty", "PreferClose", NULL));
        ekg_snapshot_t *s = snapshot_of(t);
        ekg_resource_set_t *base = ekg_snapshot_resources(s, LA), *variant = set_at(s, "r1", "b", "");
        assert_ptr_not_equal(base, variant);
        assert_int_equal(ekg_resource_set_size(base), 3);
        for (size_t k = 0; k < 3; k++) {
            assert_int_equal(overprovisioning(ekg_resource_set_at(base, k), arena), want[i]);
            assert_int_equal(overprovisioning(ekg_resource_set_at(variant, k), arena), want[i]);
        }
        /* The variant is one indeed. */
        assert_string_not_equal(at(s, "r1", "b", "", "shop:web:http", arena),
                                plain(s, "shop:web:http", arena));
        ekg_snapshot_unref(s);
        ekg_translator_free(t);
        ekg_config_free(cfg);
    }
}

/* --- who gets the plain assignment -----------------------------------------------------------------------
 */

/* A client without a locality (no place, or an empty one) gets the base sets; a Service without a preference
 * gives every client its plain assignment, the same object (so the same bytes) as in the base set. */
static void test_plain_for_no_locality(void **state)
{
    (void)state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = one_service(cfg, "web", "PreferClose", NULL, WEB_ENDPOINTS);
    ekg_translator_put_service(t, service("other", NULL, NULL));
    ekg_translator_put_slice(t, slice("other-1", "other", WEB_ENDPOINTS));
    ekg_snapshot_t *s = snapshot_of(t);
    ekg_resource_set_t *base = ekg_snapshot_resources(s, LA);
    assert_ptr_equal(ekg_snapshot_resources_at(s, LA, NULL), base);
    assert_ptr_equal(set_at(s, "", "", ""), base);
    /* A region alone, or a Node alone, is no zone: the plain assignment too. */
    assert_ptr_equal(set_at(s, "r1", "", ""), base);
    assert_ptr_equal(set_at(s, "", "", "a1"), base);
    ekg_place_t nulls = {NULL, NULL, NULL};
    assert_ptr_equal(ekg_snapshot_resources_at(s, LA, &nulls), base);
    for (int ty = 0; ty < EKG_RESOURCE__COUNT; ty++)
        assert_ptr_equal(ekg_snapshot_resources_at(s, (ekg_resource_type_t)ty, NULL),
                         ekg_snapshot_resources(s, (ekg_resource_type_t)ty));
    /* Only ClusterLoadAssignments vary by place. */
    ekg_place_t p = {"r1", "a", "a1"};
    for (int ty = 0; ty < EKG_RESOURCE__COUNT; ty++)
        if (ty != LA)
            assert_ptr_equal(ekg_snapshot_resources_at(s, (ekg_resource_type_t)ty, &p),
                             ekg_snapshot_resources(s, (ekg_resource_type_t)ty));
    assert_int_equal(ekg_snapshot_place_count(s),
                     1); /* (r1, a): a key (a1 hosts no PreferSameNode endpoint) */
    ekg_resource_set_t *at_a = ekg_snapshot_resources_at(s, LA, &p);
    assert_ptr_not_equal(at_a, base);
    const ekg_resource_t *mine = ekg_resource_set_find(at_a, "shop:other:http");
    const ekg_resource_t *theirs = ekg_resource_set_find(base, "shop:other:http");
    assert_ptr_equal(mine, theirs);
    size_t l1, l2;
    const char *d1 = ekg_resource_data(mine, &l1), *d2 = ekg_resource_data(theirs, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(d1, d2, l1);
    ekg_snapshot_unref(s);
    ekg_translator_free(t);

    /* No Service with a preference: no localizer work at all, every place gets the base set. */
    t = one_service(cfg, "other", NULL, NULL, WEB_ENDPOINTS);
    s = snapshot_of(t);
    assert_int_equal(ekg_snapshot_localizer_content(s), 0);
    assert_ptr_equal(set_at(s, "r1", "a", "a1"), ekg_snapshot_resources(s, LA));
    assert_int_equal(ekg_snapshot_place_count(s), 0);
    ekg_snapshot_unref(s);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* Runs fn(arg) with stderr (where ekg_log writes) captured; returns what was written (malloc'ed). */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
    char path[] = "/tmp/zones_test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    dup2(fd, 2);
    ekg_log_set_level(EKG_LOG_WARN);
    fn(arg);
    ekg_log_set_level(EKG_LOG_ERROR);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *out = ekg_xcalloc(1, (size_t)len + 1);
    assert_int_equal(pread(fd, out, (size_t)len, 0), len);
    close(fd);
    return out;
}

static size_t count_of(const char *haystack, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(haystack, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Builds with PreferMars twice (the Service put again, so redone), then with PreferVenus. */
static void build_unknown_values(void *arg)
{
    ekg_translator_t *t = arg;
    ekg_snapshot_unref(snapshot_of(t));
    ekg_translator_put_service(t, service("mars", "PreferMars", NULL));
    ekg_snapshot_unref(snapshot_of(t));
    ekg_translator_put_service(t, service("mars", "PreferVenus", NULL));
    ekg_snapshot_unref(snapshot_of(t));
}

/* An unknown trafficDistribution is treated as unset (with one warning per Service and value). */
static void test_unknown_traffic_distribution(void **state)
{
    (void)state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = one_service(cfg, "mars", "PreferMars", NULL, WEB_ENDPOINTS);
    char *log = capture_stderr(build_unknown_values, t);
    assert_int_equal(
        count_of(log, "Service shop/mars: trafficDistribution PreferMars is not one ekglue knows"), 1);
    assert_int_equal(
        count_of(log, "Service shop/mars: trafficDistribution PreferVenus is not one ekglue knows"), 1);
    free(log);
    ekg_snapshot_t *s = snapshot_of(t);
    assert_reason(s, "shop:mars:http", NULL);
    assert_ptr_equal(set_at(s, "r1", "a", ""), ekg_snapshot_resources(s, LA));
    ekg_snapshot_unref(s);
    ekg_translator_free(t);

    /* With the topology annotation and complete hints, the annotation still applies. */
    t = one_service(cfg, "mars", "PreferMars", "'service.kubernetes.io/topology-mode': 'Auto'",
                    HINTED_ENDPOINTS);
    s = snapshot_of(t);
    assert_reason(s, "shop:mars:http", "topology-mode: Auto, with hints.forZones");
    assert_ptr_not_equal(set_at(s, "r1", "a", ""), ekg_snapshot_resources(s, LA));
    ekg_snapshot_unref(s);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* --- sharing and bounds ----------------------------------------------------------------------------------
 */

/* Places that differ only in what no endpoint has share one set object; asking again gives the same object;
 * a thousand made-up zones, regions or Nodes make at most one new set each kind. */
static void test_sharing_and_bounds(void **state)
{
    (void)state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = one_service(cfg, "web", "PreferClose", NULL, WEB_ENDPOINTS);
    ekg_translator_put_service(t, service("local", "PreferSameNode", NULL));
    ekg_translator_put_slice(
        t, slice("local-1", "local", LIST(EP("10.0.2.1", "a1", "a"), EP("10.0.2.3", "b1", "b"))));
    ekg_snapshot_t *s = snapshot_of(t);
    ekg_resource_set_t *base = ekg_snapshot_resources(s, LA);

    ekg_resource_set_t *ra = set_at(s, "r1", "a", "");
    assert_ptr_not_equal(ra, base);
    assert_ptr_equal(set_at(s, "r1", "a", ""), ra);
    assert_ptr_equal(set_at(s, "r1", "a", "no-such-node"), ra);
    assert_ptr_equal(set_at(s, "r1", "a", "a2"), ra); /* a2 hosts nothing of local */
    assert_ptr_not_equal(set_at(s, "r1", "a", "a1"), ra);
    ekg_resource_set_t *rx = set_at(s, "r1", "zone-x", "");
    assert_ptr_not_equal(rx, ra);
    assert_ptr_equal(set_at(s, "r1", "zone-y", ""), rx);
    assert_ptr_equal(set_at(s, "r1", "zone-y", "node-y"), rx);
    ekg_resource_set_t *ua = set_at(s, "r8", "a", "");
    assert_ptr_equal(set_at(s, "r9", "a", ""), ua);
    size_t count = ekg_snapshot_place_count(s);

    /* A thousand made-up zones in r1, regions with zone a, Nodes in r1/a: the places above again. */
    for (int i = 0; i < 1000; i++) {
        char made_up[32];
        snprintf(made_up, sizeof(made_up), "made-up-%d", i);
        assert_ptr_equal(set_at(s, "r1", made_up, ""), rx);
        assert_ptr_equal(set_at(s, made_up, "a", ""), ua);
        assert_ptr_equal(set_at(s, "r1", "a", made_up), ra);
        assert_ptr_equal(set_at(s, made_up, made_up, made_up), base);
    }
    /* What a client sends cannot be too long either. */
    char huge[5000];
    memset(huge, 'z', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    assert_ptr_equal(set_at(s, "r1", huge, huge), rx);
    assert_ptr_equal(set_at(s, huge, huge, huge), base);
    assert_int_equal(ekg_snapshot_place_count(s), count);
    /* At most one key per (region, zone, node) the endpoints tell apart, plus "other" and "unset". */
    assert_true(count <= 5 * 5 * 4);
    ekg_snapshot_unref(s);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

static const char *const version_places[][3] = {
    {"r1", "a", ""}, {"r1", "b", "b1"}, {"r2", "c", ""},   {"r3", "e", "e1"},
    {"", "a", ""},   {"r1", "x", ""},   {"r1", "a", "a1"},
};
#define NPLACES (sizeof(version_places) / sizeof(version_places[0]))

/* Per-place versions are content hashes: two translators fed the same objects in another order agree. */
static void test_versions_are_content_hashes(void **state)
{
    (void)state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t1 = fx_translator(cfg), *t2 = fx_translator(cfg);
    put_nodes(t1);
    ekg_translator_put_service(t1, service("web", "PreferClose", NULL));
    ekg_translator_put_slice(t1, slice("web-1", "web", WEB_ENDPOINTS));
    ekg_translator_put_service(t1, service("local", "PreferSameNode", NULL));
    ekg_translator_put_slice(
        t1, slice("local-1", "local", LIST(EP("10.0.2.1", "a1", "a"), EP("10.0.2.3", "b1", "b"))));
    ekg_translator_put_service(t1, service("hinted", "PreferClose", NULL));
    ekg_translator_put_slice(t1, slice("hinted-1", "hinted", HINTED_ENDPOINTS));

    /* Reversed, slices before Services, Nodes last, and a slice split in two. */
    ekg_translator_put_slice(t2, slice("hinted-1", "hinted", HINTED_ENDPOINTS));
    ekg_translator_put_slice(
        t2, slice("local-1", "local", LIST(EP("10.0.2.3", "b1", "b"), EP("10.0.2.1", "a1", "a"))));
    ekg_translator_put_slice(t2, slice("web-2", "web",
                                       LIST(EP("10.0.0.8", "x1", "a"), EP("10.0.0.7", "e1", "e"),
                                            EP("10.0.0.6", "c1", "c"), EP("10.0.0.5", "d1", "d"))));
    ekg_translator_put_slice(t2, slice("web-1", "web",
                                       LIST(EP("10.0.0.4", "b1", "b"), EP("10.0.0.3", "b1", "b"),
                                            EP("10.0.0.2", "a2", "a"), EP("10.0.0.1", "a1", "a"))));
    ekg_translator_put_service(t2, service("hinted", "PreferClose", NULL));
    ekg_translator_put_service(t2, service("local", "PreferSameNode", NULL));
    ekg_translator_put_service(t2, service("web", "PreferClose", NULL));
    ekg_translator_put_node(t2, fx_node_in("e1", "r3", "e"));
    ekg_translator_put_node(t2, fx_node_in("x1", "r2", "a"));
    ekg_translator_put_node(t2, fx_node_in("c1", "r2", "c"));
    ekg_translator_put_node(t2, fx_node_in("d1", "r1", "d"));
    ekg_translator_put_node(t2, fx_node_in("b1", "r1", "b"));
    ekg_translator_put_node(t2, fx_node_in("a2", "r1", "a"));
    ekg_translator_put_node(t2, fx_node_in("a1", "r1", "a"));

    ekg_snapshot_t *s1 = snapshot_of(t1), *s2 = snapshot_of(t2);
    assert_string_equal(ekg_resource_set_version(ekg_snapshot_resources(s1, LA)),
                        ekg_resource_set_version(ekg_snapshot_resources(s2, LA)));
    assert_int_equal(ekg_snapshot_localizer_content(s1), ekg_snapshot_localizer_content(s2));
    assert_true(ekg_snapshot_localizer_content(s1) != 0);
    /* Asked in opposite orders too. */
    const char *v1[NPLACES];
    for (size_t i = 0; i < NPLACES; i++)
        v1[i] = ekg_resource_set_version(
            set_at(s1, version_places[i][0], version_places[i][1], version_places[i][2]));
    for (size_t k = NPLACES; k-- > 0;) {
        ekg_resource_set_t *set2 =
            set_at(s2, version_places[k][0], version_places[k][1], version_places[k][2]);
        if (strcmp(v1[k], ekg_resource_set_version(set2)) != 0)
            fail_msg("place %s/%s/%s: version %s in one translator, %s in the other", version_places[k][0],
                     version_places[k][1], version_places[k][2], v1[k], ekg_resource_set_version(set2));
        /* A place with priorities has a version of its own. */
        assert_string_not_equal(v1[k], ekg_resource_set_version(ekg_snapshot_resources(s1, LA)));
    }
    ekg_snapshot_unref(s1);
    ekg_snapshot_unref(s2);
    ekg_translator_free(t1);
    ekg_translator_free(t2);
    ekg_config_free(cfg);
}

typedef struct diff_log {
    int calls;
    char names[8][64];
} diff_log_t;

static void on_diff(void *ctx, const char *name, const ekg_resource_t *before, const ekg_resource_t *after)
{
    diff_log_t *log = ctx;
    (void)before;
    (void)after;
    if (log->calls < 8)
        snprintf(log->names[log->calls], sizeof(log->names[0]), "%s", name);
    log->calls++;
}

/* A change to one Service rebuilds only its variants: the others' are the very same objects in the next
 * snapshot's per-place set, and a stream's diff names only the changed one. A change to hints alone (the
 * plain assignment unchanged) still changes the variants, and the snapshot says so (localizer content). */
static void test_one_service_change(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = one_service(cfg, "web", "PreferClose", NULL, WEB_ENDPOINTS);
    ekg_translator_put_service(t, service("api", "PreferClose", NULL));
    ekg_translator_put_slice(
        t, slice("api-1", "api", LIST(EP("10.0.1.1", "a1", "a"), EP("10.0.1.3", "b1", "b"))));
    ekg_translator_put_service(t, service("hinted", "PreferClose", NULL));
    ekg_translator_put_slice(t, slice("hinted-1", "hinted", HINTED_ENDPOINTS));
    ekg_snapshot_t *s1 = snapshot_of(t);
    ekg_resource_set_t *p1 = set_at(s1, "r1", "a", "");

    ekg_translator_put_slice(
        t, slice("api-1", "api",
                 LIST(EP("10.0.1.1", "a1", "a"), EP("10.0.1.2", "a2", "a"), EP("10.0.1.3", "b1", "b"))));
    ekg_snapshot_t *s2 = snapshot_of(t);
    ekg_resource_set_t *p2 = set_at(s2, "r1", "a", "");
    assert_ptr_not_equal(p1, p2);
    assert_ptr_equal(ekg_resource_set_find(p1, "shop:web:http"), ekg_resource_set_find(p2, "shop:web:http"));
    assert_ptr_equal(ekg_resource_set_find(p1, "shop:hinted:http"),
                     ekg_resource_set_find(p2, "shop:hinted:http"));
    assert_ptr_not_equal(ekg_resource_set_find(p1, "shop:api:http"),
                         ekg_resource_set_find(p2, "shop:api:http"));
    assert_string_equal(
        at(s2, "r1", "a", "", "shop:api:http", arena),
        "r1/a/ w=2: 10.0.1.1:8080 HEALTHY, 10.0.1.2:8080 HEALTHY | r1/b/ p=1 w=1: 10.0.1.3:8080 "
        "HEALTHY");
    diff_log_t log = {0};
    ekg_resource_set_diff(p1, p2, on_diff, &log);
    assert_int_equal(log.calls, 1);
    assert_string_equal(log.names[0], "shop:api:http");

    /* Only a hint moves: the plain assignments are unchanged, the variant is not. */
    ekg_translator_put_slice(
        t,
        slice("hinted-1", "hinted",
              LIST(EPH("10.0.0.1", "a1", "a", FZ("a")), EPH("10.0.0.2", "a2", "a", FZ("a")),
                   EPH("10.0.0.3", "b1", "b", FZ("a") ", " FZ("b")),
                   EPH("10.0.0.4", "d1", "d", FZ("d") ", " FZ("q")), EPH("10.0.0.5", "c1", "c", FZ("c")))));
    ekg_snapshot_t *s3 = snapshot_of(t);
    assert_string_equal(ekg_resource_set_version(ekg_snapshot_resources(s3, LA)),
                        ekg_resource_set_version(ekg_snapshot_resources(s2, LA)));
    assert_true(ekg_snapshot_localizer_content(s3) != ekg_snapshot_localizer_content(s2));
    ekg_resource_set_t *p3 = set_at(s3, "r1", "a", "");
    memset(&log, 0, sizeof(log));
    ekg_resource_set_diff(p2, p3, on_diff, &log);
    assert_int_equal(log.calls, 1);
    assert_string_equal(log.names[0], "shop:hinted:http");
    assert_string_equal(
        at(s3, "r1", "a", "", "shop:hinted:http", arena),
        "r1/a/ w=2: 10.0.0.1:8080 HEALTHY, 10.0.0.2:8080 HEALTHY | r1/b/ w=1: 10.0.0.3:8080 HEALTHY"
        " | r1/d/ p=1 w=1: 10.0.0.4:8080 HEALTHY"
        " | r2/c/ p=2 w=1: 10.0.0.5:8080 HEALTHY");

    /* Nothing changed: the same content, the same variant objects. */
    ekg_snapshot_t *s4 = snapshot_of(t);
    assert_int_equal(ekg_snapshot_localizer_content(s4), ekg_snapshot_localizer_content(s3));
    ekg_resource_set_t *p4 = set_at(s4, "r1", "a", "");
    assert_string_equal(ekg_resource_set_version(p4), ekg_resource_set_version(p3));
    for (size_t i = 0; i < ekg_resource_set_size(p3); i++)
        assert_ptr_equal(ekg_resource_set_at(p3, i), ekg_resource_set_at(p4, i));
    ekg_snapshot_unref(s1);
    ekg_snapshot_unref(s2);
    ekg_snapshot_unref(s3);
    ekg_snapshot_unref(s4);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* --- changes --------------------------------------------------------------------------------------------
 */

/* Failover needs nothing but correct priorities: when the client zone's endpoints stop being ready they leave
 * the assignment, its region moves up to 0; when they are back, the zone is 0 again (the same bytes). */
static void test_failover_when_zone_not_ready(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL);
    const char *ready = LIST(EP("10.0.0.1", "a1", "a"), EP("10.0.0.3", "b1", "b"), EP("10.0.0.6", "c1", "c"));
    ekg_translator_t *t = one_service(cfg, "web", "PreferClose", NULL, ready);
    ekg_snapshot_t *s1 = snapshot_of(t);
    const char *zone_a = "r1/a/ w=1: 10.0.0.1:8080 HEALTHY | r1/b/ p=1 w=1: 10.0.0.3:8080 HEALTHY"
                         " | r2/c/ p=2 w=1: 10.0.0.6:8080 HEALTHY";
    assert_string_equal(at(s1, "r1", "a", "", "shop:web:http", arena), zone_a);
    const char *v1 = ekg_resource_set_version(set_at(s1, "r1", "a", ""));

    ekg_translator_put_slice(t, slice("web-1", "web",
                                      LIST("{'addresses': ['10.0.0.1'], 'conditions': {'ready': false}, "
                                           "'nodeName': 'a1', 'zone': 'a'}",
                                           EP("10.0.0.3", "b1", "b"), EP("10.0.0.6", "c1", "c"))));
    ekg_snapshot_t *s2 = snapshot_of(t);
    assert_string_equal(at(s2, "r1", "a", "", "shop:web:http", arena),
                        "r1/b/ w=1: 10.0.0.3:8080 HEALTHY | r2/c/ p=1 w=1: 10.0.0.6:8080 HEALTHY");
    /* The other region's clients see only the endpoint gone. */
    assert_string_equal(at(s2, "r2", "c", "", "shop:web:http", arena),
                        "r2/c/ w=1: 10.0.0.6:8080 HEALTHY | r1/b/ p=1 w=1: 10.0.0.3:8080 HEALTHY");

    ekg_translator_put_slice(t, slice("web-1", "web", ready));
    ekg_snapshot_t *s3 = snapshot_of(t);
    assert_string_equal(at(s3, "r1", "a", "", "shop:web:http", arena), zone_a);
    assert_string_equal(ekg_resource_set_version(set_at(s3, "r1", "a", "")), v1);
    ekg_snapshot_unref(s1);
    ekg_snapshot_unref(s2);
    ekg_snapshot_unref(s3);
    ekg_translator_free(t);
    ekg_config_free(cfg);
}

/* A Node relabelled into another zone moves its endpoints between priorities; a config switched to never
 * drops every variant; a removed Service takes its variants and its reason along. */
static void test_node_config_and_removal(void **state)
{
    upb_Arena *arena = *state;
    ekg_config_t *cfg = fx_config(NULL), *never = fx_config("apiVersion: v1alpha\nendpoint_config:\n  "
                                                            "zone_priorities: never\n");
    ekg_translator_t *t = one_service(cfg, "web", "PreferClose", NULL,
                                      LIST(EP("10.0.0.1", "a1", "a"), EP("10.0.0.3", "b1", "b")));
    ekg_snapshot_t *s1 = snapshot_of(t);
    assert_string_equal(at(s1, "r1", "a", "", "shop:web:http", arena),
                        "r1/a/ w=1: 10.0.0.1:8080 HEALTHY | r1/b/ p=1 w=1: 10.0.0.3:8080 HEALTHY");

    ekg_translator_put_node(t, fx_node_in("b1", "r1", "a"));
    ekg_snapshot_t *s2 = snapshot_of(t);
    assert_ptr_equal(set_at(s2, "r1", "a", ""), ekg_snapshot_resources(s2, LA)); /* all in zone a: plain */
    assert_string_equal(at(s2, "r1", "b", "", "shop:web:http", arena),
                        plain(s2, "shop:web:http", arena)); /* nobody in b any more: all in the region */
    assert_string_equal(plain(s2, "shop:web:http", arena),
                        "r1/a/ w=2: 10.0.0.1:8080 HEALTHY, 10.0.0.3:8080 HEALTHY");

    ekg_translator_put_node(t, fx_node_in("b1", "r1", "b"));
    ekg_translator_set_config(t, never);
    ekg_snapshot_t *s3 = snapshot_of(t);
    assert_ptr_equal(set_at(s3, "r1", "a", ""), ekg_snapshot_resources(s3, LA));
    assert_reason(s3, "shop:web:http",
                  "not applied: endpoint_config.zone_priorities is never (the Service asks for "
                  "trafficDistribution)");
    ekg_translator_set_config(t, cfg);
    ekg_snapshot_t *s4 = snapshot_of(t);
    assert_string_equal(ekg_resource_set_version(set_at(s4, "r1", "a", "")),
                        ekg_resource_set_version(set_at(s1, "r1", "a", "")));

    ekg_translator_remove_service(t, "shop", "web");
    ekg_snapshot_t *s5 = snapshot_of(t);
    assert_int_equal(ekg_resource_set_size(ekg_snapshot_resources(s5, LA)), 0);
    assert_reason(s5, "shop:web:http", NULL);
    assert_int_equal(ekg_snapshot_localizer_content(s5), 0);
    assert_ptr_equal(set_at(s5, "r1", "a", ""), ekg_snapshot_resources(s5, LA));
    ekg_snapshot_unref(s1);
    ekg_snapshot_unref(s2);
    ekg_snapshot_unref(s3);
    ekg_snapshot_unref(s4);
    ekg_snapshot_unref(s5);
    ekg_translator_free(t);
    ekg_config_free(cfg);
    ekg_config_free(never);
}

/* --- the demo cluster ------------------------------------------------------------------------------------
 */

/* shop/frontend (PreferClose; one draining pod without hints, so hints are incomplete) gives a client in
 * us-east1-a its own zone first; Services without a preference stay plain. */
static void test_demo_frontend(void **state)
{
    upb_Arena *arena = *state;
    char path[4096];
    const char *src = getenv("EKG_SOURCE_DIR");
    snprintf(path, sizeof(path), "%s/deploy/demo/cluster.yaml", src ? src : ".");
    ekg_diag_t diag = {{0}};
    ekg_objects_t objs = {0};
    if (ekg_objects_add_file(&objs, path, &diag) != EKG_OK)
        fail_msg("%s: %s", path, diag.msg);
    ekg_config_t *cfg = fx_config(NULL);
    ekg_translator_t *t = fx_translator(cfg);
    ekg_translator_put_objects(t, &objs);
    ekg_snapshot_t *s = snapshot_of(t);

    assert_reason(s, "shop:frontend:http", "trafficDistribution: PreferClose");
    assert_string_equal(at(s, "us-east1", "us-east1-a", "", "shop:frontend:http", arena),
                        "us-east1/us-east1-a/ w=1: 10.1.0.21:8080 HEALTHY"
                        " | us-east1/us-east1-b/ p=1 w=1: 10.1.3.17:8080 HEALTHY"
                        " | us-east1/us-east1-c/ p=1 w=2: 10.1.4.33:8080 HEALTHY, 10.1.5.12:8080 DRAINING");
    assert_string_equal(at(s, "us-east1", "us-east1-c", "worker-c1", "shop:frontend:metrics", arena),
                        "us-east1/us-east1-c/ w=2: 10.1.4.33:9102 HEALTHY, 10.1.5.12:9102 DRAINING"
                        " | us-east1/us-east1-a/ p=1 w=1: 10.1.0.21:9102 HEALTHY"
                        " | us-east1/us-east1-b/ p=1 w=1: 10.1.3.17:9102 HEALTHY");
    ekg_resource_set_t *base = ekg_snapshot_resources(s, LA), *a = set_at(s, "us-east1", "us-east1-a", "");
    for (size_t i = 0; i < ekg_resource_set_size(base); i++) {
        const ekg_resource_t *r = ekg_resource_set_at(base, i);
        if (strncmp(ekg_resource_name(r), "shop:frontend:", 14) == 0)
            continue;
        assert_ptr_equal(ekg_resource_set_find(a, ekg_resource_name(r)), r);
    }
    /* A client in another region gets the plain assignment. */
    assert_string_equal(at(s, "eu-west1", "eu-west1-a", "", "shop:frontend:http", arena),
                        plain(s, "shop:frontend:http", arena));
    ekg_snapshot_unref(s);
    ekg_translator_free(t);
    ekg_objects_free(&objs);
    ekg_config_free(cfg);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, arena_setup, arena_teardown)
    const struct CMUnitTest tests[] = {
        T(test_three_priorities),
        T(test_empty_priorities_renumbered),
        T(test_unknown_node),
        T(test_hints_complete),
        T(test_hints_incomplete),
        T(test_topology_annotation),
        T(test_prefer_same_node),
        T(test_zone_priorities_config),
        T(test_overprovisioning_factor),
        T(test_plain_for_no_locality),
        T(test_unknown_traffic_distribution),
        T(test_sharing_and_bounds),
        T(test_versions_are_content_hashes),
        T(test_one_service_change),
        T(test_failover_when_zone_not_ready),
        T(test_node_config_and_removal),
        T(test_demo_frontend),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
