/*
 * tests/fuzz/health_fuzz.c: libFuzzer target for the grpc.health.v1 request decoder (src/xds/health.c), which
 * reads what any client of the xDS port sends to grpc.health.v1.Health/Check and /Watch.
 *
 * Besides the sanitizers, two checks: the service name it returns lies inside the input, and wherever upb
 * (the generated grpc.health.v1.HealthCheckRequest of Debian's libgrpc) also decodes the bytes, both name the
 * same service. (upb accepts groups, which ekglue refuses, and refuses invalid UTF-8 and field number 0,
 * which ekglue accepts: a service name ekglue does not know is answered SERVICE_UNKNOWN or NOT_FOUND either
 * way.) Seeds: tests/fuzz/corpus/health/. Thread: libFuzzer's.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/proto/grpc/health/v1/health.upb.h"

#include "xds/health.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so that a read past the end is ASan's to see. */
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        abort();
    if (size)
        memcpy(p, data, size);
    const char *service = NULL;
    size_t len = 0;
    ekg_err_t err = ekg_xds_health_parse_request(p, size, &service, &len);
    if (err != EKG_OK && err != EKG_EPARSE)
        abort();
    if (err == EKG_OK) {
        if (!service ||
            (len > 0 && ((const uint8_t *)service < p || (const uint8_t *)service + len > p + size)))
            abort();
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < len; i++)
            sum += (uint8_t)service[i];
        (void)sum;

        upb_Arena *arena = upb_Arena_New();
        if (!arena)
            abort();
        grpc_health_v1_HealthCheckRequest *req =
            grpc_health_v1_HealthCheckRequest_parse((const char *)p, size, arena);
        if (req) {
            upb_StringView s = grpc_health_v1_HealthCheckRequest_service(req);
            if (s.size != len || (len && memcmp(s.data, service, len) != 0))
                abort();
        }
        upb_Arena_Free(arena);
    }
    free(p);
    return 0;
}
