/*
 * tests/unit/model_test.c: src/model/ — Service, EndpointSlice and Node parsing and validation (every rule,
 * with the message naming the object and field), and ekg_objects_t over Lists, *Lists, multi-document YAML,
 * JSON and kubectl-style output, and streamed JSON Lists (the same results as the tree path, and errors too).
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

#include "ekglue/log.h"
#include "ekglue/model.h"
#include "ekglue/yaml.h"
#include "model/parse.h"

/* Parses YAML text holding one document; the caller frees the returned docs. */
static ekg_yaml_docs_t *doc(const char *text, const cJSON **obj)
{
    ekg_yaml_docs_t *docs = NULL;
    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_yaml_parse(text, strlen(text), "test.yaml", &docs, &diag);
    if (err)
        print_error("%s\n", diag.msg);
    assert_int_equal(err, EKG_OK);
    assert_int_equal(ekg_yaml_docs_count(docs), 1);
    *obj = ekg_yaml_docs_get(docs, 0);
    return docs;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle))
        print_error("\"%s\" does not contain \"%s\"\n", haystack, needle);
    assert_non_null(strstr(haystack, needle));
}

static void add(ekg_objects_t *objs, const char *text)
{
    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_objects_add_buffer(objs, text, strlen(text), "objs.yaml", &diag);
    if (err)
        print_error("%s\n", diag.msg);
    assert_int_equal(err, EKG_OK);
}

/* --- Service ----------------------------------------------------------------------------------------- */

static void test_service_fields(void **state)
{
    (void)state;
    const cJSON *obj;
    ekg_yaml_docs_t *docs = doc("apiVersion: v1\n"
                                "kind: Service\n"
                                "metadata:\n"
                                "  name: web\n"
                                "  namespace: shop\n"
                                "  resourceVersion: \"1234\"\n"
                                "  labels:\n"
                                "    tier: front\n"
                                "    app: web\n"
                                "    app.kubernetes.io/part-of: shop\n"
                                "  annotations: {a: b}\n"
                                "spec:\n"
                                "  type: NodePort\n"
                                "  clusterIP: 10.96.0.10\n"
                                "  trafficDistribution: PreferClose\n"
                                "  unknownField: [1, 2]\n"
                                "  ports:\n"
                                "    - {name: http, port: 80, targetPort: 8080, nodePort: 30080}\n"
                                "    - {name: grpc, port: 9090, targetPort: grpc-port, protocol: TCP,"
                                " appProtocol: kubernetes.io/h2c}\n"
                                "    - {name: dns, port: 53, protocol: UDP}\n"
                                "    - {name: sig, port: 3868, protocol: SCTP}\n",
                                &obj);
    ekg_service_t *svc = NULL;
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_service_from_json(obj, &svc, &diag), EKG_OK);
    ekg_yaml_docs_free(docs); /* the object owns its strings */
    assert_string_equal(svc->meta.name, "web");
    assert_string_equal(svc->meta.namespace_, "shop");
    assert_string_equal(svc->meta.resource_version, "1234");
    assert_int_equal(svc->meta.nlabels, 3);
    assert_string_equal(svc->meta.labels[0].key, "app");
    assert_string_equal(svc->meta.labels[1].key, "app.kubernetes.io/part-of");
    assert_string_equal(svc->meta.labels[2].key, "tier");
    assert_string_equal(ekg_meta_label(&svc->meta, "tier"), "front");
    assert_null(ekg_meta_label(&svc->meta, "nope"));
    assert_int_equal(svc->type, EKG_SERVICE_NODE_PORT);
    assert_false(svc->headless);
    assert_null(svc->external_name);
    assert_string_equal(svc->traffic_distribution, "PreferClose");
    assert_int_equal(svc->nports, 4);
    assert_string_equal(svc->ports[0].name, "http");
    assert_int_equal(svc->ports[0].port, 80);
    assert_int_equal(svc->ports[0].target_port, 8080);
    assert_null(svc->ports[0].target_port_name);
    assert_int_equal(svc->ports[0].protocol, EKG_PROTOCOL_TCP);
    assert_null(svc->ports[0].app_protocol);
    assert_int_equal(svc->ports[1].target_port, 0);
    assert_string_equal(svc->ports[1].target_port_name, "grpc-port");
    assert_string_equal(svc->ports[1].app_protocol, "kubernetes.io/h2c");
    assert_int_equal(svc->ports[2].protocol, EKG_PROTOCOL_UDP);
    assert_int_equal(svc->ports[2].target_port, 53); /* absent: == port */
    assert_int_equal(svc->ports[3].protocol, EKG_PROTOCOL_SCTP);
    ekg_service_free(svc);
}

static void test_service_defaults(void **state)
{
    (void)state;
    const cJSON *obj;
    /* No kind, no apiVersion (as in watch events), one unnamed port, headless. */
    ekg_yaml_docs_t *docs = doc("metadata: {name: db, namespace: shop}\n"
                                "spec: {clusterIP: None, ports: [{port: 5432}]}\n",
                                &obj);
    ekg_service_t *svc = NULL;
    assert_int_equal(ekg_service_from_json(obj, &svc, NULL), EKG_OK);
    assert_int_equal(svc->type, EKG_SERVICE_CLUSTER_IP);
    assert_true(svc->headless);
    assert_string_equal(svc->meta.resource_version, "");
    assert_int_equal(svc->meta.nlabels, 0);
    assert_null(ekg_meta_label(&svc->meta, "app"));
    assert_null(svc->traffic_distribution);
    assert_int_equal(svc->nports, 1);
    assert_string_equal(svc->ports[0].name, "");
    assert_int_equal(svc->ports[0].target_port, 5432);
    ekg_service_free(svc);
    ekg_yaml_docs_free(docs);

    docs = doc("metadata: {name: ext, namespace: shop}\n"
               "spec: {type: ExternalName, externalName: db.example.com, ports: [{name: pg, port: 5432}]}\n",
               &obj);
    assert_int_equal(ekg_service_from_json(obj, &svc, NULL), EKG_OK);
    assert_int_equal(svc->type, EKG_SERVICE_EXTERNAL_NAME);
    assert_string_equal(svc->external_name, "db.example.com");
    assert_int_equal(svc->nports, 1);
    ekg_service_free(svc);
    ekg_yaml_docs_free(docs);

    /* Without spec, and with ports: null, there are no ports; LoadBalancer type. */
    docs = doc("metadata: {name: lb, namespace: shop}\nspec: {type: LoadBalancer, ports: null}\n", &obj);
    assert_int_equal(ekg_service_from_json(obj, &svc, NULL), EKG_OK);
    assert_int_equal(svc->type, EKG_SERVICE_LOAD_BALANCER);
    assert_int_equal(svc->nports, 0);
    ekg_service_free(svc);
    ekg_yaml_docs_free(docs);
    docs = doc("metadata: {name: bare, namespace: shop}\n", &obj);
    assert_int_equal(ekg_service_from_json(obj, &svc, NULL), EKG_OK);
    assert_int_equal(svc->nports, 0);
    ekg_service_free(svc);
    ekg_yaml_docs_free(docs);
}

typedef struct bad_case {
    const char *yaml;
    const char *message; /* the whole diag message */
} bad_case_t;

static const bad_case_t bad_services[] = {
    {"spec: {}", "Service <unnamed>: metadata: required"},
    {"metadata: [a]", "Service <unnamed>: metadata: expected a mapping"},
    {"metadata: {namespace: shop}", "Service <unnamed>: metadata.name: required"},
    {"metadata: {name: 7, namespace: shop}", "Service <unnamed>: metadata.name: expected a non-empty string"},
    {"metadata: {name: web}", "Service web: metadata.namespace: required"},
    {"metadata: {name: web, namespace: ''}", "Service web: metadata.namespace: expected a non-empty string"},
    {"metadata: {name: web, namespace: shop, labels: {app: 1}}",
     "Service shop/web: metadata.labels.app: expected a string"},
    {"metadata: {name: web, namespace: shop, labels: [a]}",
     "Service shop/web: metadata.labels: expected a mapping of strings"},
    {"metadata: {name: web, namespace: shop, resourceVersion: 5}",
     "Service shop/web: metadata.resourceVersion: expected a string"},
    {"metadata: {name: web, namespace: shop}\nspec: [1]", "Service shop/web: spec: expected a mapping"},
    {"metadata: {name: web, namespace: shop}\nspec: {type: Headless}",
     "Service shop/web: spec.type: expected ClusterIP, NodePort, LoadBalancer or ExternalName"},
    {"metadata: {name: web, namespace: shop}\nspec: {type: ExternalName}",
     "Service shop/web: spec.externalName: required when spec.type is ExternalName"},
    {"metadata: {name: web, namespace: shop}\nspec: {type: ExternalName, externalName: ''}",
     "Service shop/web: spec.externalName: required when spec.type is ExternalName"},
    {"metadata: {name: web, namespace: shop}\nspec: {ports: {port: 80}}",
     "Service shop/web: spec.ports: expected a list"},
    {"metadata: {name: web, namespace: shop}\nspec: {ports: [80]}",
     "Service shop/web: spec.ports[0]: expected a mapping"},
    {"metadata: {name: web, namespace: shop}\nspec: {ports: [{name: http}]}",
     "Service shop/web: spec.ports[0].port: required"},
    {"metadata: {name: web, namespace: shop}\nspec: {ports: [{name: a, port: 80}, {name: b, port: 0}]}",
     "Service shop/web: spec.ports[1].port: expected an integer in 1..65535"},
    {"metadata: {name: web, namespace: shop}\nspec: {ports: [{port: 65536}]}",
     "Service shop/web: spec.ports[0].port: expected an integer in 1..65535"},
    {"metadata: {name: web, namespace: shop}\nspec: {ports: [{port: '80'}]}",
     "Service shop/web: spec.ports[0].port: expected an integer in 1..65535"},
    {"metadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80.5}]}",
     "Service shop/web: spec.ports[0].port: expected an integer in 1..65535"},
    {"metadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80, protocol: HTTP}]}",
     "Service shop/web: spec.ports[0].protocol: expected TCP, UDP or SCTP"},
    {"metadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80, protocol: tcp}]}",
     "Service shop/web: spec.ports[0].protocol: expected TCP, UDP or SCTP"},
    {"metadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80, targetPort: true}]}",
     "Service shop/web: spec.ports[0].targetPort: expected a port number or a port name"},
    {"metadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80, targetPort: 0}]}",
     "Service shop/web: spec.ports[0].targetPort: expected an integer in 1..65535"},
    {"metadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80, targetPort: ''}]}",
     "Service shop/web: spec.ports[0].targetPort: expected a port number or a non-empty port name"},
    {"metadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80, name: 5}]}",
     "Service shop/web: spec.ports[0].name: expected a string"},
    {"metadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80, appProtocol: [h2]}]}",
     "Service shop/web: spec.ports[0].appProtocol: expected a string"},
    {"metadata: {name: web, namespace: shop}\nspec: {ports: [{name: a, port: 80}, {port: 81}]}",
     "Service shop/web: spec.ports[1].name: required when the Service has more than one port"},
    {"metadata: {name: web, namespace: shop}\nspec: {ports: [{name: a, port: 80}, {name: a, port: 81}]}",
     "Service shop/web: spec.ports[1].name: duplicate port name \"a\""},
    {"metadata: {name: web, namespace: shop}\nspec: {trafficDistribution: 1}",
     "Service shop/web: spec.trafficDistribution: expected a string"},
    {"metadata: {name: web, namespace: shop}\nspec: {type: ExternalName, externalName: 3}",
     "Service shop/web: spec.externalName: expected a string"},
};

static void test_service_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_services) / sizeof(bad_services[0]); i++) {
        const cJSON *obj;
        ekg_yaml_docs_t *docs = doc(bad_services[i].yaml, &obj);
        ekg_service_t *svc = (ekg_service_t *)(uintptr_t)1;
        ekg_diag_t diag = {{0}};
        assert_int_equal(ekg_service_from_json(obj, &svc, &diag), EKG_EOBJECT);
        assert_string_equal(diag.msg, bad_services[i].message);
        assert_ptr_equal(svc, (ekg_service_t *)(uintptr_t)1);
        ekg_yaml_docs_free(docs);
    }
    /* Not a mapping at all; a NULL diag is fine. */
    cJSON *arr = cJSON_CreateArray();
    ekg_service_t *svc = NULL;
    ekg_diag_t diag;
    assert_int_equal(ekg_service_from_json(arr, &svc, &diag), EKG_EOBJECT);
    assert_string_equal(diag.msg, "Service <unnamed>: expected a mapping");
    assert_int_equal(ekg_service_from_json(arr, &svc, NULL), EKG_EOBJECT);
    cJSON_Delete(arr);
    /* With a source, an unnamed object can still be found. */
    const cJSON *obj;
    ekg_yaml_docs_t *docs = doc("metadata: {namespace: shop}\n", &obj);
    assert_int_equal(ekg_model_service_parse(obj, "svc.yaml:3", &svc, &diag), EKG_EOBJECT);
    assert_string_equal(diag.msg, "Service <unnamed> in svc.yaml:3: metadata.name: required");
    ekg_yaml_docs_free(docs);
}

/* The topology annotation (service.kubernetes.io/topology-mode, else the older topology-aware-hints), kept as
 * written; values that are not strings are ignored; trafficDistribution is kept as written, known or not
 * (translation decides what an unknown value means). */
static void test_service_topology(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        const char *mode;
        const char *td;
    } cases[] = {
        {"metadata: {name: a, namespace: s, annotations: {service.kubernetes.io/topology-mode: Auto}}\n",
         "Auto", NULL},
        {"metadata: {name: a, namespace: s, annotations: {service.kubernetes.io/topology-aware-hints: "
         "auto}}\n",
         "auto", NULL},
        {"metadata: {name: a, namespace: s, annotations: {service.kubernetes.io/topology-aware-hints: Auto, "
         "service.kubernetes.io/topology-mode: Disabled}}\n",
         "Disabled", NULL},
        {"metadata: {name: a, namespace: s, annotations: {service.kubernetes.io/topology-mode: [Auto], "
         "service.kubernetes.io/topology-aware-hints: auto}}\n",
         "auto", NULL},
        {"metadata: {name: a, namespace: s, annotations: {service.kubernetes.io/topology-mode: 1}}\n", NULL,
         NULL},
        {"metadata: {name: a, namespace: s, annotations: {other: Auto}}\n", NULL, NULL},
        {"metadata: {name: a, namespace: s, annotations: [service.kubernetes.io/topology-mode]}\n", NULL,
         NULL},
        {"metadata: {name: a, namespace: s}\nspec: {trafficDistribution: PreferMars}\n", NULL, "PreferMars"},
        {"metadata: {name: a, namespace: s}\nspec: {trafficDistribution: PreferSameNode}\n", NULL,
         "PreferSameNode"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml), "%s%s", cases[i].yaml,
                 strstr(cases[i].yaml, "spec:") ? "" : "spec: {ports: [{port: 80}]}\n");
        const cJSON *obj;
        ekg_yaml_docs_t *docs = doc(yaml, &obj);
        ekg_service_t *svc = NULL;
        ekg_diag_t diag = {{0}};
        ekg_err_t err = ekg_service_from_json(obj, &svc, &diag);
        if (err)
            fail_msg("case %zu: %s", i, diag.msg);
        ekg_yaml_docs_free(docs); /* the Service keeps its own copies */
        if (cases[i].mode)
            assert_string_equal(svc->topology_mode, cases[i].mode);
        else
            assert_null(svc->topology_mode);
        if (cases[i].td)
            assert_string_equal(svc->traffic_distribution, cases[i].td);
        else
            assert_null(svc->traffic_distribution);
        ekg_service_free(svc);
    }
}

/* --- EndpointSlice ------------------------------------------------------------------------------------- */

static void test_slice_fields(void **state)
{
    (void)state;
    const cJSON *obj;
    ekg_yaml_docs_t *docs = doc("apiVersion: discovery.k8s.io/v1\n"
                                "kind: EndpointSlice\n"
                                "metadata:\n"
                                "  name: web-abc12\n"
                                "  namespace: shop\n"
                                "  labels: {kubernetes.io/service-name: web, "
                                "endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}\n"
                                "addressType: IPv4\n"
                                "endpoints:\n"
                                "  - addresses: [10.1.0.5]\n"
                                "    conditions: {ready: true, serving: true, terminating: false}\n"
                                "    nodeName: node-a\n"
                                "    zone: us-east1-a\n"
                                "    hostname: web-0\n"
                                "    targetRef: {kind: Pod, name: web-0}\n"
                                "    hints: {forZones: [{name: us-east1-a}]}\n"
                                "  - addresses: [10.1.0.6, 10.1.0.7]\n"
                                "    conditions: {ready: false, serving: true, terminating: true}\n"
                                "  - addresses: [10.1.0.8]\n"
                                "    conditions: {ready: null, serving: null, terminating: null}\n"
                                "  - addresses: [10.1.0.9]\n"
                                "    conditions: null\n"
                                "  - addresses: [10.1.0.10]\n"
                                "ports:\n"
                                "  - {name: http, port: 8080, protocol: TCP, appProtocol: http}\n"
                                "  - {name: dns, port: 53, protocol: UDP}\n"
                                "  - {name: null, port: null}\n",
                                &obj);
    ekg_endpoint_slice_t *s = NULL;
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_endpoint_slice_from_json(obj, &s, &diag), EKG_OK);
    ekg_yaml_docs_free(docs);
    assert_string_equal(s->meta.name, "web-abc12");
    assert_string_equal(s->service_name, "web");
    assert_int_equal(s->address_type, EKG_ADDRESS_IPV4);
    assert_int_equal(s->nendpoints, 5);
    const ekg_endpoint_t *e = s->endpoints;
    assert_int_equal(e[0].naddresses, 1);
    assert_string_equal(e[0].addresses[0], "10.1.0.5");
    assert_int_equal(e[0].ready, EKG_COND_TRUE);
    assert_int_equal(e[0].serving, EKG_COND_TRUE);
    assert_int_equal(e[0].terminating, EKG_COND_FALSE);
    assert_string_equal(e[0].node_name, "node-a");
    assert_string_equal(e[0].zone, "us-east1-a");
    assert_string_equal(e[0].hostname, "web-0");
    assert_int_equal(e[1].naddresses, 2);
    assert_string_equal(e[1].addresses[1], "10.1.0.7");
    assert_int_equal(e[1].ready, EKG_COND_FALSE);
    assert_int_equal(e[1].serving, EKG_COND_TRUE);
    assert_int_equal(e[1].terminating, EKG_COND_TRUE);
    assert_null(e[1].node_name);
    assert_null(e[1].zone);
    assert_null(e[1].hostname);
    for (int i = 2; i <= 4; i++) {
        assert_int_equal(e[i].ready, EKG_COND_UNSET);
        assert_int_equal(e[i].serving, EKG_COND_UNSET);
        assert_int_equal(e[i].terminating, EKG_COND_UNSET);
    }
    assert_int_equal(s->nports, 3);
    assert_string_equal(s->ports[0].name, "http");
    assert_int_equal(s->ports[0].port, 8080);
    assert_string_equal(s->ports[0].app_protocol, "http");
    assert_int_equal(s->ports[1].protocol, EKG_PROTOCOL_UDP);
    assert_null(s->ports[1].app_protocol);
    assert_string_equal(s->ports[2].name, "");
    assert_int_equal(s->ports[2].port, -1);
    assert_int_equal(s->ports[2].protocol, EKG_PROTOCOL_TCP);
    ekg_endpoint_slice_free(s);
}

/* hints.forZones: the names, in order, when every entry is {name: non-empty string}; anything else leaves the
 * endpoint without hints and the slice valid (kube-proxy ignores hints it cannot use). */
static void test_slice_zone_hints(void **state)
{
    (void)state;
    static const struct {
        const char *hints; /* the endpoint's hints member, YAML flow; NULL = absent */
        const char *want;  /* names joined by ","; NULL = no hints */
    } cases[] = {
        {"{forZones: [{name: us-east1-a}]}", "us-east1-a"},
        {"{forZones: [{name: a}, {name: b}]}", "a,b"},
        {"{forZones: [{name: a}], forNodes: [{name: n1}]}", "a"},
        {"{forZones: [{name: a, weight: 3}]}", "a"},
        {NULL, NULL},
        {"null", NULL},
        {"{}", NULL},
        {"{forZones: []}", NULL},
        {"{forZones: null}", NULL},
        {"{forZones: {name: a}}", NULL},
        {"{forZones: [a]}", NULL},
        {"{forZones: [{name: 5}]}", NULL},
        {"{forZones: [{name: ''}]}", NULL},
        {"{forZones: [{zone: a}]}", NULL},
        {"{forZones: [{name: a}, {name: null}]}", NULL},
        {"{forZones: [{name: a}, 7]}", NULL},
        {"[{name: a}]", NULL},
        {"a", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml),
                 "metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}\n"
                 "addressType: IPv4\n"
                 "endpoints:\n"
                 "  - addresses: [10.1.0.5]\n"
                 "    zone: a\n"
                 "%s%s%s",
                 cases[i].hints ? "    hints: " : "", cases[i].hints ? cases[i].hints : "",
                 cases[i].hints ? "\n" : "");
        const cJSON *obj;
        ekg_yaml_docs_t *docs = doc(yaml, &obj);
        ekg_endpoint_slice_t *s = NULL;
        ekg_diag_t diag = {{0}};
        ekg_err_t err = ekg_endpoint_slice_from_json(obj, &s, &diag);
        if (err)
            fail_msg("hints %s: the slice is invalid: %s", cases[i].hints ? cases[i].hints : "(absent)",
                     diag.msg);
        ekg_yaml_docs_free(docs); /* the slice keeps its own copies */
        assert_int_equal(s->nendpoints, 1);
        const ekg_endpoint_t *e = &s->endpoints[0];
        assert_string_equal(e->zone, "a");
        if (!cases[i].want) {
            if (e->has_zone_hints)
                fail_msg("hints %s: expected none, got %zu", cases[i].hints ? cases[i].hints : "(absent)",
                         e->nhint_zones);
            assert_int_equal(e->nhint_zones, 0);
        } else {
            assert_true(e->has_zone_hints);
            char got[128] = "";
            for (size_t k = 0; k < e->nhint_zones; k++)
                snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", k ? "," : "",
                         e->hint_zones[k]);
            assert_string_equal(got, cases[i].want);
        }
        ekg_endpoint_slice_free(s);
    }
}

static void test_slice_ipv6_fqdn_empty(void **state)
{
    (void)state;
    const cJSON *obj;
    ekg_endpoint_slice_t *s = NULL;
    ekg_yaml_docs_t *docs = doc("metadata: {name: web-v6, namespace: shop, labels: "
                                "{kubernetes.io/service-name: web}}\n"
                                "addressType: IPv6\n"
                                "endpoints: [{addresses: ['fd00:10:1::5'], conditions: {ready: true}}]\n"
                                "ports: [{name: http, port: 8080}]\n",
                                &obj);
    assert_int_equal(ekg_endpoint_slice_from_json(obj, &s, NULL), EKG_OK);
    assert_int_equal(s->address_type, EKG_ADDRESS_IPV6);
    assert_string_equal(s->endpoints[0].addresses[0], "fd00:10:1::5");
    ekg_endpoint_slice_free(s);
    ekg_yaml_docs_free(docs);

    docs = doc("metadata: {name: ext-x, namespace: shop}\n"
               "addressType: FQDN\n"
               "endpoints: [{addresses: [db.example.com]}]\n",
               &obj);
    assert_int_equal(ekg_endpoint_slice_from_json(obj, &s, NULL), EKG_OK);
    assert_int_equal(s->address_type, EKG_ADDRESS_FQDN);
    assert_null(s->service_name); /* no label: translation ignores it */
    assert_int_equal(s->nports, 0);
    ekg_endpoint_slice_free(s);
    ekg_yaml_docs_free(docs);

    /* kubectl prints an empty slice with endpoints: null. */
    docs = doc("metadata: {name: idle, namespace: shop}\naddressType: IPv4\nendpoints: null\nports: null\n",
               &obj);
    assert_int_equal(ekg_endpoint_slice_from_json(obj, &s, NULL), EKG_OK);
    assert_int_equal(s->nendpoints, 0);
    assert_int_equal(s->nports, 0);
    ekg_endpoint_slice_free(s);
    ekg_yaml_docs_free(docs);
}

#define SLICE_META "metadata: {name: web-x, namespace: shop}\n"

static const bad_case_t bad_slices[] = {
    {"metadata: {name: web-x}\naddressType: IPv4", "EndpointSlice web-x: metadata.namespace: required"},
    {"metadata: {namespace: shop}\naddressType: IPv4", "EndpointSlice <unnamed>: metadata.name: required"},
    {SLICE_META "endpoints: []", "EndpointSlice shop/web-x: addressType: required"},
    {SLICE_META "addressType: ipv4", "EndpointSlice shop/web-x: addressType: expected IPv4, IPv6 or FQDN"},
    {SLICE_META "addressType: IPv4\nendpoints: {a: 1}",
     "EndpointSlice shop/web-x: endpoints: expected a list"},
    {SLICE_META "addressType: IPv4\nendpoints: [7]",
     "EndpointSlice shop/web-x: endpoints[0]: expected a mapping"},
    {SLICE_META "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1]}, {nodeName: n}]",
     "EndpointSlice shop/web-x: endpoints[1].addresses: required"},
    {SLICE_META "addressType: IPv4\nendpoints: [{addresses: []}]",
     "EndpointSlice shop/web-x: endpoints[0].addresses: expected a non-empty list of strings"},
    {SLICE_META "addressType: IPv4\nendpoints: [{addresses: 10.0.0.1}]",
     "EndpointSlice shop/web-x: endpoints[0].addresses: expected a non-empty list of strings"},
    {SLICE_META "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1, 7]}]",
     "EndpointSlice shop/web-x: endpoints[0].addresses[1]: expected a non-empty string"},
    {SLICE_META "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], conditions: {ready: yes}}]",
     "EndpointSlice shop/web-x: endpoints[0].conditions.ready: expected true, false or null"},
    {SLICE_META "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], conditions: {serving: 1}}]",
     "EndpointSlice shop/web-x: endpoints[0].conditions.serving: expected true, false or null"},
    {SLICE_META "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], conditions: {terminating: 'false'}}]",
     "EndpointSlice shop/web-x: endpoints[0].conditions.terminating: expected true, false or null"},
    {SLICE_META "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], conditions: [ready]}]",
     "EndpointSlice shop/web-x: endpoints[0].conditions: expected a mapping"},
    {SLICE_META "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], nodeName: 5}]",
     "EndpointSlice shop/web-x: endpoints[0].nodeName: expected a string"},
    {SLICE_META "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], zone: {}}]",
     "EndpointSlice shop/web-x: endpoints[0].zone: expected a string"},
    {SLICE_META "addressType: IPv4\nports: {http: 80}", "EndpointSlice shop/web-x: ports: expected a list"},
    {SLICE_META "addressType: IPv4\nports: [{name: http, port: 0}]",
     "EndpointSlice shop/web-x: ports[0].port: expected an integer in 1..65535"},
    {SLICE_META "addressType: IPv4\nports: [{name: http, port: 80, protocol: QUIC}]",
     "EndpointSlice shop/web-x: ports[0].protocol: expected TCP, UDP or SCTP"},
    {SLICE_META "addressType: IPv4\nports: [{name: 8080}]",
     "EndpointSlice shop/web-x: ports[0].name: expected a string"},
};

static void test_slice_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_slices) / sizeof(bad_slices[0]); i++) {
        const cJSON *obj;
        ekg_yaml_docs_t *docs = doc(bad_slices[i].yaml, &obj);
        ekg_endpoint_slice_t *s = NULL;
        ekg_diag_t diag = {{0}};
        assert_int_equal(ekg_endpoint_slice_from_json(obj, &s, &diag), EKG_EOBJECT);
        assert_string_equal(diag.msg, bad_slices[i].message);
        assert_null(s);
        ekg_yaml_docs_free(docs);
    }
}

/* --- Node ---------------------------------------------------------------------------------------------- */

static void test_node(void **state)
{
    (void)state;
    const cJSON *obj;
    ekg_yaml_docs_t *docs = doc("apiVersion: v1\nkind: Node\n"
                                "metadata:\n"
                                "  name: node-a\n"
                                "  namespace: ignored\n"
                                "  labels:\n"
                                "    topology.kubernetes.io/zone: us-east1-a\n"
                                "    topology.kubernetes.io/region: us-east1\n"
                                "    kubernetes.io/hostname: node-a\n"
                                "spec: {podCIDR: 10.1.0.0/24}\n"
                                "status: {conditions: [{type: Ready, status: 'True'}]}\n",
                                &obj);
    ekg_node_t *n = NULL;
    assert_int_equal(ekg_node_from_json(obj, &n, NULL), EKG_OK);
    assert_string_equal(n->meta.name, "node-a");
    assert_string_equal(n->meta.namespace_, "");
    assert_string_equal(ekg_meta_label(&n->meta, "topology.kubernetes.io/zone"), "us-east1-a");
    assert_string_equal(ekg_meta_label(&n->meta, "topology.kubernetes.io/region"), "us-east1");
    assert_string_equal(ekg_meta_label(&n->meta, "kubernetes.io/hostname"), "node-a");
    assert_string_equal(n->meta.labels[0].key, "kubernetes.io/hostname");
    ekg_node_free(n);
    ekg_yaml_docs_free(docs);

    docs = doc("metadata: {name: bare}\n", &obj);
    assert_int_equal(ekg_node_from_json(obj, &n, NULL), EKG_OK);
    assert_int_equal(n->meta.nlabels, 0);
    ekg_node_free(n);
    ekg_yaml_docs_free(docs);

    ekg_diag_t diag;
    docs = doc("metadata: {labels: {a: b}}\n", &obj);
    assert_int_equal(ekg_node_from_json(obj, &n, &diag), EKG_EOBJECT);
    assert_string_equal(diag.msg, "Node <unnamed>: metadata.name: required");
    ekg_yaml_docs_free(docs);
    docs = doc("metadata: {name: node-b, labels: {zone: [a]}}\n", &obj);
    assert_int_equal(ekg_node_from_json(obj, &n, &diag), EKG_EOBJECT);
    assert_string_equal(diag.msg, "Node node-b: metadata.labels.zone: expected a string");
    ekg_yaml_docs_free(docs);
}

/* --- ekg_objects_t ------------------------------------------------------------------------------------- */

static void test_objects_list(void **state)
{
    (void)state;
    ekg_objects_t objs = {0};
    add(&objs, "apiVersion: v1\n"
               "kind: List\n"
               "metadata: {resourceVersion: ''}\n"
               "items:\n"
               "- apiVersion: v1\n"
               "  kind: Service\n"
               "  metadata: {name: a, namespace: shop}\n"
               "  spec: {ports: [{port: 80}]}\n"
               "- apiVersion: v1\n"
               "  kind: Service\n"
               "  metadata: {name: bad, namespace: shop}\n"
               "  spec: {ports: [{port: 0}]}\n"
               "- apiVersion: v1\n"
               "  kind: Service\n"
               "  metadata: {name: b, namespace: shop}\n"
               "- apiVersion: discovery.k8s.io/v1\n"
               "  kind: EndpointSlice\n"
               "  metadata: {name: a-1, namespace: shop, labels: {kubernetes.io/service-name: a}}\n"
               "  addressType: IPv4\n"
               "  endpoints: [{addresses: [10.1.0.1]}]\n"
               "- apiVersion: discovery.k8s.io/v1\n"
               "  kind: EndpointSlice\n"
               "  metadata: {name: a-2, namespace: shop}\n"
               "  endpoints: [{addresses: [10.1.0.2]}]\n"
               "- apiVersion: v1\n"
               "  kind: Pod\n"
               "  metadata: {name: a-xyz, namespace: shop}\n"
               "- apiVersion: v1\n"
               "  kind: ConfigMap\n"
               "  metadata: {name: cfg, namespace: shop}\n"
               "- apiVersion: v1\n"
               "  kind: Node\n"
               "  metadata: {name: n1}\n"
               "- apiVersion: v1\n"
               "  kind: Node\n"
               "  metadata: {}\n"
               "- just a string\n"
               "- apiVersion: v1\n"
               "  metadata: {name: kindless}\n");
    assert_int_equal(objs.nservices, 2);
    assert_string_equal(objs.services[0]->meta.name, "a");
    assert_string_equal(objs.services[1]->meta.name, "b");
    assert_int_equal(objs.nslices, 1);
    assert_string_equal(objs.slices[0]->meta.name, "a-1");
    assert_int_equal(objs.nnodes, 1);
    assert_string_equal(objs.nodes[0]->meta.name, "n1");
    assert_int_equal(objs.nskipped, 5); /* bad, a-2, unnamed Node, the string, the kindless item */
    assert_int_equal(objs.nignored, 2); /* Pod, ConfigMap */
    ekg_objects_free(&objs);
    assert_int_equal(objs.nservices, 0);
    assert_null(objs.services);
}

static void test_objects_typed_lists_and_docs(void **state)
{
    (void)state;
    ekg_objects_t objs = {0};
    /* A ServiceList's items have no kind; a NodeList in the next document; then single objects. */
    add(&objs, "apiVersion: v1\n"
               "kind: ServiceList\n"
               "metadata: {resourceVersion: '42'}\n"
               "items:\n"
               "- metadata: {name: s1, namespace: ns}\n"
               "- metadata: {name: s2, namespace: ns}\n"
               "  spec: {type: Bogus}\n"
               "- metadata: {name: s3, namespace: ns}\n"
               "---\n"
               "kind: NodeList\n"
               "items: [{metadata: {name: n1}}, {metadata: {name: n2}}]\n"
               "---\n"
               "kind: EndpointSliceList\n"
               "apiVersion: discovery.k8s.io/v1\n"
               "items: null\n"
               "---\n"
               "kind: PodList\n"
               "items: [{metadata: {name: p1}}, {metadata: {name: p2}}]\n"
               "---\n"
               "# an empty document\n"
               "---\n"
               "kind: EndpointSlice\n"
               "apiVersion: discovery.k8s.io/v1beta1\n"
               "metadata: {name: old, namespace: ns}\n"
               "addressType: IPv4\n"
               "endpoints: [{addresses: [10.1.0.1]}]\n"
               "---\n"
               "kind: Service\n"
               "apiVersion: serving.knative.dev/v1\n"
               "metadata: {name: knative, namespace: ns}\n"
               "spec: {template: {spec: {containers: [{image: x}]}}}\n"
               "---\n"
               "kind: EndpointSlice\n"
               "metadata: {name: s1-a, namespace: ns, labels: {kubernetes.io/service-name: s1}}\n"
               "addressType: FQDN\n"
               "endpoints: [{addresses: [example.com]}]\n");
    assert_int_equal(objs.nservices, 2);
    assert_string_equal(objs.services[0]->meta.name, "s1");
    assert_string_equal(objs.services[1]->meta.name, "s3");
    assert_int_equal(objs.nnodes, 2);
    assert_string_equal(objs.nodes[1]->meta.name, "n2");
    assert_int_equal(objs.nslices, 1);
    assert_int_equal(objs.slices[0]->address_type, EKG_ADDRESS_FQDN);
    assert_int_equal(objs.nskipped, 2); /* s2, the v1beta1 slice */
    assert_int_equal(objs.nignored, 3); /* p1, p2, the Knative Service */

    /* Adding more appends; a parse error adds nothing and says where. */
    add(&objs, "{\"kind\": \"Service\", \"apiVersion\": \"v1\", \"metadata\": {\"name\": \"j\", "
               "\"namespace\": \"ns\"}}");
    assert_int_equal(objs.nservices, 3);
    assert_string_equal(objs.services[2]->meta.name, "j");
    ekg_diag_t diag = {{0}};
    const char *broken = "kind: Service\nmetadata: {name: z, namespace: ns}\n---\nkind: [\n";
    assert_int_equal(ekg_objects_add_buffer(&objs, broken, strlen(broken), "broken.yaml", &diag), EKG_EPARSE);
    assert_contains(diag.msg, "broken.yaml:");
    assert_int_equal(objs.nservices, 3);
    assert_int_equal(objs.nskipped, 2);
    assert_int_equal(ekg_objects_add_buffer(&objs, "{\"kind\": ", 9, "broken.json", &diag), EKG_EPARSE);
    assert_contains(diag.msg, "broken.json:1:");
    assert_int_equal(objs.nservices, 3);
    ekg_objects_free(&objs);
}

static void test_objects_kubectl_json(void **state)
{
    (void)state;
    ekg_objects_t objs = {0};
    add(&objs,
        "{\n"
        "  \"apiVersion\": \"v1\",\n"
        "  \"items\": [\n"
        "    {\n"
        "      \"apiVersion\": \"discovery.k8s.io/v1\",\n"
        "      \"kind\": \"EndpointSlice\",\n"
        "      \"addressType\": \"IPv4\",\n"
        "      \"endpoints\": [{\"addresses\": [\"10.1.2.3\"], \"conditions\": {\"ready\": true}, "
        "\"nodeName\": \"n1\", \"targetRef\": {\"kind\": \"Pod\", \"name\": \"p\", \"uid\": \"u\"}}],\n"
        "      \"metadata\": {\"name\": \"web-1\", \"namespace\": \"shop\", \"uid\": \"x\",\n"
        "        \"labels\": {\"kubernetes.io/service-name\": \"web\"},\n"
        "        \"ownerReferences\": [{\"apiVersion\": \"v1\", \"kind\": \"Service\", \"name\": "
        "\"web\"}]},\n"
        "      \"ports\": [{\"name\": \"http\", \"port\": 8080, \"protocol\": \"TCP\"}]\n"
        "    }\n"
        "  ],\n"
        "  \"kind\": \"List\",\n"
        "  \"metadata\": {\"resourceVersion\": \"\"}\n"
        "}\n");
    assert_int_equal(objs.nslices, 1);
    assert_string_equal(objs.slices[0]->service_name, "web");
    assert_int_equal(objs.slices[0]->ports[0].port, 8080);
    ekg_objects_free(&objs);
}

static void test_objects_kubectl_yaml(void **state)
{
    (void)state;
    ekg_objects_t objs = {0};
    /* What `kubectl get svc kubernetes -o yaml` prints, managedFields and status included. */
    add(&objs, "apiVersion: v1\n"
               "kind: Service\n"
               "metadata:\n"
               "  creationTimestamp: \"2024-05-01T10:00:00Z\"\n"
               "  labels:\n"
               "    component: apiserver\n"
               "    provider: kubernetes\n"
               "  managedFields:\n"
               "  - apiVersion: v1\n"
               "    fieldsType: FieldsV1\n"
               "    fieldsV1:\n"
               "      f:metadata:\n"
               "        f:labels:\n"
               "          .: {}\n"
               "          f:component: {}\n"
               "    manager: kube-apiserver\n"
               "    operation: Update\n"
               "    time: \"2024-05-01T10:00:00Z\"\n"
               "  name: kubernetes\n"
               "  namespace: default\n"
               "  resourceVersion: \"192\"\n"
               "  uid: 3f1f6c36-8d0b-4b7e-9f0e-2d1c1b0a9e8f\n"
               "spec:\n"
               "  clusterIP: 10.96.0.1\n"
               "  clusterIPs:\n"
               "  - 10.96.0.1\n"
               "  internalTrafficPolicy: Cluster\n"
               "  ipFamilies:\n"
               "  - IPv4\n"
               "  ipFamilyPolicy: SingleStack\n"
               "  ports:\n"
               "  - name: https\n"
               "    port: 443\n"
               "    protocol: TCP\n"
               "    targetPort: 6443\n"
               "  sessionAffinity: None\n"
               "  type: ClusterIP\n"
               "status:\n"
               "  loadBalancer: {}\n");
    assert_int_equal(objs.nservices, 1);
    const ekg_service_t *svc = objs.services[0];
    assert_string_equal(svc->meta.namespace_, "default");
    assert_string_equal(svc->meta.resource_version, "192");
    assert_string_equal(ekg_meta_label(&svc->meta, "component"), "apiserver");
    assert_int_equal(svc->ports[0].port, 443);
    assert_int_equal(svc->ports[0].target_port, 6443);
    assert_int_equal(objs.nskipped, 0);
    ekg_objects_free(&objs);
}

static void test_objects_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/ekg-model-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/nodes.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("kind: Node\nmetadata: {name: n1}\n---\nkind: Node\nmetadata: {name: n2}\n", f);
    fclose(f);
    ekg_objects_t objs = {0};
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_objects_add_file(&objs, path, &diag), EKG_OK);
    assert_int_equal(objs.nnodes, 2);
    unlink(path);
    assert_int_equal(ekg_objects_add_file(&objs, path, &diag), EKG_EIO);
    assert_contains(diag.msg, path);
    assert_int_equal(objs.nnodes, 2);
    ekg_objects_free(&objs);
    ekg_objects_free(&objs); /* a freed set is empty, freeing again is harmless */
    rmdir(dir);
}

static void test_demo_cluster(void **state)
{
    (void)state;
    const char *root = getenv("EKG_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/deploy/demo/cluster.yaml", root ? root : ".");
    if (access(path, R_OK) != 0)
        skip();
    ekg_objects_t objs = {0};
    ekg_diag_t diag = {{0}};
    ekg_err_t err = ekg_objects_add_file(&objs, path, &diag);
    if (err)
        print_error("%s\n", diag.msg);
    assert_int_equal(err, EKG_OK);
    assert_int_equal(objs.nskipped, 0);
    assert_int_equal(objs.nignored, 3); /* the Namespaces */
    assert_int_equal(objs.nnodes, 6);
    assert_int_equal(objs.nservices, 11);
    assert_int_equal(objs.nslices, 12);
    size_t ipv6 = 0, external = 0, headless = 0;
    for (size_t i = 0; i < objs.nslices; i++)
        ipv6 += objs.slices[i]->address_type == EKG_ADDRESS_IPV6;
    for (size_t i = 0; i < objs.nservices; i++) {
        external += objs.services[i]->type == EKG_SERVICE_EXTERNAL_NAME;
        headless += objs.services[i]->headless;
    }
    assert_int_equal(ipv6, 1);
    assert_int_equal(external, 1);
    assert_int_equal(headless, 1);
    ekg_objects_free(&objs);
}

/* --- streamed JSON Lists -------------------------------------------------------------------------------- */

/* A JSON List of three Services, an EndpointSlice and a Node, one of the Services invalid (port 0). */
static const char stream_list[] =
    "{\"apiVersion\": \"v1\", \"items\": [\n"
    "  {\"kind\": \"Service\", \"metadata\": {\"name\": \"a\", \"namespace\": \"shop\", \"annotations\": "
    "{\"note\": \"}]{[\\\"items\\\": [\\\\\", \"items\": \"[\"}}, \"spec\": {\"ports\": [{\"port\": 80}]}},\n"
    "  {\"kind\": \"Service\", \"metadata\": {\"name\": \"bad\", \"namespace\": \"shop\"}, "
    "\"spec\": {\"ports\": [{\"port\": 0}]}},\n"
    "  {\"kind\": \"EndpointSlice\", \"apiVersion\": \"discovery.k8s.io/v1\", \"metadata\": {\"name\": "
    "\"a-1\", "
    "\"namespace\": \"shop\", \"labels\": {\"kubernetes.io/service-name\": \"a\", \"q\": \"\\\"}\\\\\"}}, "
    "\"addressType\": \"IPv4\", \"endpoints\": [{\"addresses\": [\"10.1.0.1\"], \"conditions\": {\"ready\": "
    "true}}], \"items\": [{\"kind\": \"Node\", \"metadata\": {\"name\": \"decoy\"}}]},\n"
    "  {\"metadata\": {\"name\": \"b\", \"namespace\": \"shop\"}},\n"
    "  {\"kind\": \"Node\", \"metadata\": {\"name\": \"n1\"}}\n"
    "], \"kind\": \"ServiceList\", \"metadata\": {\"resourceVersion\": \"7\", \"items\": []}}";

static void check_stream_list(const ekg_objects_t *objs)
{
    assert_int_equal(objs->nservices, 2);
    assert_string_equal(objs->services[0]->meta.name, "a");
    assert_string_equal(objs->services[1]->meta.name, "b"); /* kindless: a ServiceList's item */
    assert_int_equal(objs->nslices, 1);
    assert_string_equal(ekg_meta_label(&objs->slices[0]->meta, "q"), "\"}\\");
    assert_int_equal(objs->nnodes, 1); /* not the decoy inside the slice */
    assert_string_equal(objs->nodes[0]->meta.name, "n1");
    assert_int_equal(objs->nskipped, 1);
    assert_int_equal(objs->nignored, 0);
}

static void test_objects_json_stream(void **state)
{
    (void)state;
    ekg_objects_t objs = {0};
    /* kind after items (as kubectl prints it)... */
    add(&objs, stream_list);
    check_stream_list(&objs);
    ekg_objects_free(&objs);

    /* ...or before, and with a BOM and blanks around. */
    const char *items = strstr(stream_list, "\"items\"");
    const char *kind = strstr(stream_list, "], \"kind\"");
    size_t cap = sizeof(stream_list) + 64;
    char *text = malloc(cap);
    assert_non_null(text);
    snprintf(text, cap, "\xEF\xBB\xBF\n {\"kind\": \"ServiceList\", %.*s]}\r\n", (int)(kind - items), items);
    add(&objs, text);
    check_stream_list(&objs);
    ekg_objects_free(&objs);

    /* The same List one level down takes the tree path, with the same result. */
    snprintf(text, cap, "{\"kind\":\"List\",\"items\":[%s]}", stream_list);
    add(&objs, text);
    check_stream_list(&objs);
    ekg_objects_free(&objs);
    free(text);

    /* A file streams too. */
    char dir[] = "/tmp/ekg-model-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/list.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(stream_list, f);
    fclose(f);
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_objects_add_file(&objs, path, &diag), EKG_OK);
    check_stream_list(&objs);
    ekg_objects_free(&objs);
    unlink(path);
    rmdir(dir);
}

/*
 * Every proper prefix of a List is malformed, and so is every text with one byte replaced by one of a few
 * troublemakers (or some are not, then they must add what the tree path adds). Each must fail exactly as
 * ekg_yaml_parse() fails on it, message and position included, and add nothing.
 */
static void test_objects_json_stream_errors(void **state)
{
    (void)state;
    size_t len = strlen(stream_list);
    char *text = malloc(len + 64), *wrapped = malloc(len + 64);
    assert_non_null(text);
    assert_non_null(wrapped);
    ekg_objects_t objs = {0};
    add(&objs, "kind: Node\nmetadata: {name: before}\n");
    const char bytes[] = {'"', '\\', '{', '}', '[', ']', ',', ':', ' ', 'x', '\0'};
    size_t nfail = 0, nok = 0;
    for (size_t i = 0; i < len; i++) {
        for (size_t b = 0; b <= sizeof(bytes); b++) {
            size_t n = len;
            memcpy(text, stream_list, len);
            if (b == sizeof(bytes))
                n = i; /* the prefix */
            else if (text[i] == bytes[b])
                continue;
            else
                text[i] = bytes[b];
            ekg_diag_t want = {{0}}, got = {{0}};
            ekg_yaml_docs_t *docs = NULL;
            ekg_err_t perr = ekg_yaml_parse(text, n, "objs.json", &docs, &want);
            ekg_yaml_docs_free(docs);
            ekg_err_t err = ekg_objects_add_buffer(&objs, text, n, "objs.json", &got);
            if (perr) {
                nfail++;
                assert_int_equal(err, EKG_EPARSE);
                assert_string_equal(got.msg, want.msg);
                assert_contains(got.msg, "objs.json:");
                assert_int_equal(objs.nnodes, 1);
                assert_int_equal(objs.nservices + objs.nslices + objs.nskipped + objs.nignored, 0);
                continue;
            }
            /* Still valid JSON: the same objects as through the tree path (the List one level down). */
            nok++;
            assert_int_equal(err, EKG_OK);
            static const char head[] = "{\"kind\":\"List\",\"items\":[";
            memcpy(wrapped, head, sizeof(head) - 1);
            memcpy(wrapped + sizeof(head) - 1, text, n); /* text may hold a NUL inside a string */
            memcpy(wrapped + sizeof(head) - 1 + n, "]}", 2);
            ekg_objects_t tree = {0};
            assert_int_equal(ekg_objects_add_buffer(&tree, wrapped, sizeof(head) + 1 + n, "objs.json", &got),
                             EKG_OK);
            assert_int_equal(objs.nservices, tree.nservices);
            assert_int_equal(objs.nslices, tree.nslices);
            assert_int_equal(objs.nnodes - 1, tree.nnodes);
            assert_int_equal(objs.nskipped, tree.nskipped);
            assert_int_equal(objs.nignored, tree.nignored);
            ekg_objects_free(&tree);
            ekg_objects_free(&objs);
            add(&objs, "kind: Node\nmetadata: {name: before}\n");
        }
    }
    assert_true(nfail > len);
    assert_true(nok > 0);
    assert_string_equal(objs.nodes[0]->meta.name, "before");
    ekg_objects_free(&objs);
    free(text);
    free(wrapped);
}

static int quiet(void **state)
{
    (void)state;
    ekg_log_set_level(getenv("EKG_TEST_VERBOSE") ? EKG_LOG_DEBUG : EKG_LOG_ERROR);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_service_fields),
        cmocka_unit_test(test_service_defaults),
        cmocka_unit_test(test_service_invalid),
        cmocka_unit_test(test_service_topology),
        cmocka_unit_test(test_slice_fields),
        cmocka_unit_test(test_slice_zone_hints),
        cmocka_unit_test(test_slice_ipv6_fqdn_empty),
        cmocka_unit_test(test_slice_invalid),
        cmocka_unit_test(test_node),
        cmocka_unit_test(test_objects_list),
        cmocka_unit_test(test_objects_typed_lists_and_docs),
        cmocka_unit_test(test_objects_kubectl_json),
        cmocka_unit_test(test_objects_kubectl_yaml),
        cmocka_unit_test(test_objects_file),
        cmocka_unit_test(test_demo_cluster),
        cmocka_unit_test(test_objects_json_stream),
        cmocka_unit_test(test_objects_json_stream_errors),
    };
    return cmocka_run_group_tests(tests, quiet, NULL);
}
