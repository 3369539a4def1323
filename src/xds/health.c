/*
 * src/xds/health.c: decodes grpc.health.v1.HealthCheckRequest (src/xds/health.h) for the server's health
 * service (src/xds/server.c). Thread: any (the gRPC queue thread of the health call).
 */
#include "xds/health.h"

#include <stdbool.h>

static bool read_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *i < len; shift += 7) {
        uint8_t b = p[(*i)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

ekg_err_t ekg_xds_health_parse_request(const uint8_t *p, size_t len, const char **service,
                                       size_t *service_len)
{
    *service = "";
    *service_len = 0;
    for (size_t i = 0; i < len;) {
        uint64_t key, v;
        if (!read_varint(p, len, &i, &key))
            return EKG_EPARSE;
        switch (key & 7) {
        case 0:
            if (!read_varint(p, len, &i, &v))
                return EKG_EPARSE;
            break;
        case 1:
            if (len - i < 8)
                return EKG_EPARSE;
            i += 8;
            break;
        case 2:
            if (!read_varint(p, len, &i, &v) || v > len - i)
                return EKG_EPARSE;
            if (key >> 3 == 1) {
                *service = (const char *)p + i;
                *service_len = (size_t)v;
            }
            i += (size_t)v;
            break;
        case 5:
            if (len - i < 4)
                return EKG_EPARSE;
            i += 4;
            break;
        default:
            return EKG_EPARSE;
        }
    }
    return EKG_OK;
}
