/*
 * tests/fuzz/session_fuzz.c: libFuzzer target for what clients send the xDS server: DiscoveryRequests, fed to
 * a session (src/xds/session.c) with a small snapshot in place, and every response it then produces; then the
 * whole input as a CSDS ClientStatusRequest about that session (src/xds/csds.c).
 *
 * The input is split at the two-byte marker 0xff 0xfe into up to 8 requests on one stream, so that sequences
 * (subscribe, ACK with some nonce, NACK, change names) are explored, not only single messages.
 * Thread: libFuzzer's.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ekglue/resource.h"

#include <stdlib.h>

#include "xds/csds.h"
#include "xds/session.h"

static ekg_snapshot_t *snapshot(void)
{
    static ekg_snapshot_t *snap;
    if (snap)
        return snap;
    /* Two resources per type; their bytes need not decode: the session only forwards them. */
    static const char *const names[] = {"a:b:http", "a:c:grpc"};
    ekg_resource_set_t *sets[EKG_RESOURCE__COUNT] = {0};
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++) {
        ekg_resource_t *items[2];
        for (int i = 0; i < 2; i++)
            ekg_resource_new((ekg_resource_type_t)t, names[i], names[i], strlen(names[i]), &items[i]);
        ekg_resource_set_new((ekg_resource_type_t)t, items, 2, NULL, &sets[t]);
        for (int i = 0; i < 2; i++)
            ekg_resource_unref(items[i]);
    }
    snap = ekg_snapshot_new(sets);
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++)
        ekg_resource_set_unref(sets[t]);
    return snap;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ekg_xds_api_t api = size ? (ekg_xds_api_t)(data[0] % 5) : EKG_XDS_ADS;
    ekg_xds_session_t *s = ekg_xds_session_new(api, "fuzz");
    ekg_xds_session_on_snapshot(s, snapshot());
    const uint8_t *p = size ? data + 1 : data, *end = data + size;
    for (int n = 0; n < 8 && p <= end; n++) {
        const uint8_t *q = p;
        while (q + 1 < end && !(q[0] == 0xff && q[1] == 0xfe))
            q++;
        if (q + 1 >= end)
            q = end;
        ekg_diag_t diag;
        if (ekg_xds_session_on_request(s, (const char *)p, (size_t)(q - p), &diag) == EKG_OK) {
            ekg_xds_response_t r;
            for (int k = 0; k < 16 && ekg_xds_session_next(s, &r); k++)
                ekg_xds_response_release(&r);
        }
        p = q + 2;
    }
    char *csds = NULL;
    size_t csds_len = 0;
    ekg_diag_t diag;
    if (ekg_xds_csds_answer((const char *)data, size, &s, 1, &csds, &csds_len, &diag) == EKG_OK)
        free(csds);
    ekg_xds_session_free(s);
    return 0;
}
