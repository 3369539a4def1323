/*
 * tests/fuzz/kinds_fuzz.c: libFuzzer target for the JSON conversion of each Kubernetes kind ekglue reads
 * (include/ekglue/model.h: ekg_service_from_json, ekg_endpoint_slice_from_json, ekg_node_from_json), the
 * step every watch event's object goes through (src/watch/watcher.c).
 *
 * Input: byte 0 picks the kind (% 3: Service, EndpointSlice, Node), the rest is the object's JSON, parsed by
 * cJSON as the watcher does. The JSON tree is deleted before the result is looked at, so an object that kept
 * a pointer into it is a use-after-free under ASan; then the documented invariants of model.h are checked (no
 * NULL string that is not allowed to be, labels sorted and found by ekg_meta_label, ports in range, at least
 * one address per endpoint, ...). Seeds: tests/fuzz/corpus/kinds/. Thread: libFuzzer's.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond))                                                                                         \
            abort();                                                                                         \
    } while (0)

static volatile size_t sink;

static void touch(const char *s)
{
    sink += strlen(s);
}

static void check_meta(const ekg_meta_t *m, bool namespaced)
{
    CHECK(m->name && m->namespace_ && m->resource_version);
    touch(m->name);
    touch(m->namespace_);
    touch(m->resource_version);
    if (!namespaced)
        CHECK(m->namespace_[0] == '\0');
    CHECK(m->nlabels == 0 || m->labels);
    for (size_t i = 0; i < m->nlabels; i++) {
        CHECK(m->labels[i].key && m->labels[i].value);
        touch(m->labels[i].key);
        touch(m->labels[i].value);
        if (i > 0)
            CHECK(strcmp(m->labels[i - 1].key, m->labels[i].key) <= 0);
        CHECK(ekg_meta_label(m, m->labels[i].key) != NULL);
    }
}

static void check_protocol(ekg_protocol_t p)
{
    CHECK(p == EKG_PROTOCOL_TCP || p == EKG_PROTOCOL_UDP || p == EKG_PROTOCOL_SCTP);
}

static void check_service(const ekg_service_t *s)
{
    check_meta(&s->meta, true);
    CHECK(s->type >= EKG_SERVICE_CLUSTER_IP && s->type <= EKG_SERVICE_EXTERNAL_NAME);
    CHECK((s->type == EKG_SERVICE_EXTERNAL_NAME) == (s->external_name != NULL));
    if (s->external_name)
        CHECK(s->external_name[0] != '\0');
    if (s->traffic_distribution)
        touch(s->traffic_distribution);
    CHECK(s->nports == 0 || s->ports);
    for (size_t i = 0; i < s->nports; i++) {
        const ekg_service_port_t *p = &s->ports[i];
        CHECK(p->name);
        touch(p->name);
        check_protocol(p->protocol);
        if (p->app_protocol)
            touch(p->app_protocol);
        CHECK(p->port >= 1 && p->port <= 65535);
        if (p->target_port_name) {
            CHECK(p->target_port == 0 && p->target_port_name[0] != '\0');
            touch(p->target_port_name);
        } else {
            CHECK(p->target_port >= 1 && p->target_port <= 65535);
        }
        if (!p->name[0])
            CHECK(s->nports == 1); /* unnamed only when alone */
    }
}

static void check_cond(ekg_cond_t c)
{
    CHECK(c == EKG_COND_UNSET || c == EKG_COND_FALSE || c == EKG_COND_TRUE);
}

static void check_slice(const ekg_endpoint_slice_t *s)
{
    check_meta(&s->meta, true);
    if (s->service_name)
        touch(s->service_name);
    CHECK(s->address_type >= EKG_ADDRESS_IPV4 && s->address_type <= EKG_ADDRESS_FQDN);
    CHECK(s->nendpoints == 0 || s->endpoints);
    for (size_t i = 0; i < s->nendpoints; i++) {
        const ekg_endpoint_t *e = &s->endpoints[i];
        CHECK(e->naddresses >= 1 && e->addresses);
        for (size_t j = 0; j < e->naddresses; j++) {
            CHECK(e->addresses[j]);
            touch(e->addresses[j]);
        }
        check_cond(e->ready);
        check_cond(e->serving);
        check_cond(e->terminating);
        if (e->node_name)
            touch(e->node_name);
        if (e->zone)
            touch(e->zone);
        if (e->hostname)
            touch(e->hostname);
    }
    CHECK(s->nports == 0 || s->ports);
    for (size_t i = 0; i < s->nports; i++) {
        const ekg_slice_port_t *p = &s->ports[i];
        CHECK(p->name);
        touch(p->name);
        CHECK(p->port == -1 || (p->port >= 1 && p->port <= 65535));
        check_protocol(p->protocol);
        if (p->app_protocol)
            touch(p->app_protocol);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        ekg_mem_init(); /* as main() does: cJSON allocates through the aborting wrappers */
        ekg_log_set_level(EKG_LOG_OFF);
        ready = 1;
    }
    if (size < 1)
        return 0;
    int kind = data[0] % 3;
    cJSON *root = cJSON_ParseWithLength((const char *)data + 1, size - 1);
    if (!root)
        return 0;
    ekg_diag_t diag = {{0}};
    ekg_service_t *svc = NULL;
    ekg_endpoint_slice_t *slice = NULL;
    ekg_node_t *node = NULL;
    ekg_err_t err = kind == 0   ? ekg_service_from_json(root, &svc, &diag)
                    : kind == 1 ? ekg_endpoint_slice_from_json(root, &slice, &diag)
                                : ekg_node_from_json(root, &node, &diag);
    cJSON_Delete(root); /* objects own their strings (model.h): nothing may point into the tree */
    if (err != EKG_OK) {
        CHECK(err == EKG_EOBJECT && !svc && !slice && !node);
        CHECK(diag.msg[0] != '\0' && memchr(diag.msg, '\0', sizeof(diag.msg)));
        return 0;
    }
    if (svc)
        check_service(svc);
    else if (slice)
        check_slice(slice);
    else if (node)
        check_meta(&node->meta, false);
    else
        abort();
    ekg_service_free(svc);
    ekg_endpoint_slice_free(slice);
    ekg_node_free(node);
    return 0;
}
