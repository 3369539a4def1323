/*
 * tests/fuzz/objects_fuzz.c: libFuzzer target for the manifest path: bytes -> ekg_objects_add_buffer (YAML or
 * JSON via src/common/yaml.c, then the Service/EndpointSlice/Node parsers of src/model/) -> ekg_objects_free.
 * Also walks what was parsed so that a dangling pointer in an object shows up under ASan.
 * Seeds: tests/fuzz/corpus/objects/. Run: objects_fuzz tests/fuzz/corpus/objects -max_total_time=60
 * Thread: libFuzzer's thread.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ekglue/log.h"
#include "ekglue/mem.h"
#include "ekglue/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t touch_meta(const ekg_meta_t *m)
{
    size_t n = strlen(m->name) + strlen(m->namespace_) + strlen(m->resource_version);
    for (size_t i = 0; i < m->nlabels; i++)
        n += strlen(m->labels[i].key) + strlen(m->labels[i].value);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        ekg_mem_init(); /* as main() does: cJSON allocates through the aborting wrappers */
        ekg_log_set_level(EKG_LOG_OFF);
        quiet = 1;
    }
    ekg_objects_t objs = {0};
    ekg_diag_t diag;
    volatile size_t sink = 0;
    if (ekg_objects_add_buffer(&objs, (const char *)data, size, "fuzz", &diag) == EKG_OK) {
        for (size_t i = 0; i < objs.nservices; i++) {
            const ekg_service_t *s = objs.services[i];
            sink += touch_meta(&s->meta);
            for (size_t j = 0; j < s->nports; j++)
                sink += strlen(s->ports[j].name) + (size_t)s->ports[j].port;
        }
        for (size_t i = 0; i < objs.nslices; i++) {
            const ekg_endpoint_slice_t *s = objs.slices[i];
            sink += touch_meta(&s->meta);
            for (size_t j = 0; j < s->nendpoints; j++)
                for (size_t k = 0; k < s->endpoints[j].naddresses; k++)
                    sink += strlen(s->endpoints[j].addresses[k]);
            for (size_t j = 0; j < s->nports; j++)
                sink += strlen(s->ports[j].name);
        }
        for (size_t i = 0; i < objs.nnodes; i++)
            sink += touch_meta(&objs.nodes[i]->meta);
    }
    (void)sink;
    ekg_objects_free(&objs);
    return 0;
}
