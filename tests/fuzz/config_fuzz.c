/*
 * tests/fuzz/config_fuzz.c: libFuzzer target for the config loader (src/translate/config.c via
 * ekglue/yaml.h).
 *
 * Feeds arbitrary bytes to ekg_config_parse(); a config that loads is then applied to a few cluster inputs,
 * so that the override merge (src/translate/merge.c) runs on whatever Cluster fields the fuzzer managed to
 * build. Seeds: tests/fuzz/corpus/config/. Thread: libFuzzer's one thread.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "ekglue/mem.h"
#include "ekglue/proto.h"
#include "ekglue/translate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        ekg_mem_init(); /* as main() does: cJSON allocates through the aborting wrappers */
        if (ekg_proto_init(NULL) != EKG_OK)
            abort();
        ready = 1;
    }
    ekg_config_t *cfg = NULL;
    ekg_diag_t diag;
    if (ekg_config_parse((const char *)data, size, "fuzz.yaml", &cfg, &diag) != EKG_OK)
        return 0;
    static const ekg_cluster_match_input_t inputs[] = {
        {"shop:cart:http", "shop", "cart", "http", NULL},
        {"shop:cart:grpc", "shop", "cart", "grpc", "kubernetes.io/h2c"},
        {"default:kubernetes:https", "default", "kubernetes", "https", NULL},
        {"shop:dns:53", "shop", "dns", "", NULL},
    };
    upb_Arena *arena = upb_Arena_New();
    if (!arena)
        abort();
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        envoy_config_cluster_v3_Cluster *out = NULL;
        bool suppressed = false;
        if (ekg_config_cluster(cfg, &inputs[i], arena, &out, &suppressed, &diag) != EKG_OK)
            abort(); /* a loaded config always applies */
        if (suppressed != (out == NULL))
            abort();
    }
    (void)ekg_config_hash(cfg);
    upb_Arena_Free(arena);
    ekg_config_free(cfg);
    return 0;
}
