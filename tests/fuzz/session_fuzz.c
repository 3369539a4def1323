/*
 * tests/fuzz/session_fuzz.c: libFuzzer target for what clients send the xDS server: DiscoveryRequests, or
 * DeltaDiscoveryRequests on a stream of the incremental protocol (src/xds/delta.c), fed to a session
 * (src/xds/session.c) with a small snapshot in place, and every response it then produces; then the whole
 * input as a CSDS ClientStatusRequest about that session (src/xds/csds.c).
 *
 * The first byte picks the stream: its low 7 bits modulo 5 the service (ekg_xds_api_t), its high bit the
 * protocol (set: delta). The rest is split at the two-byte marker 0xff 0xfe into up to 8 requests on one
 * stream, so that sequences (subscribe, ACK with some nonce, NACK, change names, initial versions) are
 * explored, not only single messages.
 * Thread: libFuzzer's.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/service/discovery/v3/discovery.upb.h"

#include "ekglue/resource.h"

#include "xds/csds.h"
#include "xds/session.h"

/*
 * Snapshot 0 has two resources per type; a delta stream moves to snapshot 1 after its fourth request, in
 * which one of them changed, one is gone and one is new, so that the incremental diff and removed_resources
 * are explored too. Resource bytes need not decode: the session only forwards them.
 */
static ekg_snapshot_t *snapshot(int which)
{
    static ekg_snapshot_t *snaps[2];
    if (snaps[which])
        return snaps[which];
    static const char *const names[2][2] = {{"a:b:http", "a:c:grpc"}, {"a:b:http", "a:d:http"}};
    static const char *const bytes[2][2] = {{"a:b:http", "a:c:grpc"}, {"a:b:http 2", "a:d:http"}};
    ekg_resource_set_t *sets[EKG_RESOURCE__COUNT] = {0};
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++) {
        ekg_resource_t *items[2];
        for (int i = 0; i < 2; i++)
            ekg_resource_new((ekg_resource_type_t)t, names[which][i], bytes[which][i],
                             strlen(bytes[which][i]), &items[i]);
        ekg_resource_set_new((ekg_resource_type_t)t, items, 2, NULL, &sets[t]);
        for (int i = 0; i < 2; i++)
            ekg_resource_unref(items[i]);
    }
    snaps[which] = ekg_snapshot_new(sets);
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++)
        ekg_resource_set_unref(sets[t]);
    return snaps[which];
}

static bool view_is(upb_StringView v, const char *s)
{
    return v.size == strlen(s) && (v.size == 0 || memcmp(v.data, s, v.size) == 0);
}

static bool views_equal(upb_StringView a, upb_StringView b)
{
    return a.size == b.size && (a.size == 0 || memcmp(a.data, b.data, a.size) == 0);
}

/*
 * What a response must be, whatever the requests were: its pieces add up to total_len; on a delta stream its
 * bytes are a DeltaDiscoveryResponse of its type with a nonce, every resource with a 16-digit version, and no
 * name sent twice, removed twice, or both sent and removed. A violation aborts (libFuzzer keeps the input).
 */
static void check_response(const ekg_xds_response_t *r, bool delta)
{
    size_t total = 0;
    for (size_t i = 0; i < r->npieces; i++)
        total += r->pieces[i].len;
    if (total != r->total_len)
        abort();
    if (!delta)
        return;
    char *buf = malloc(total ? total : 1);
    if (!buf)
        abort();
    for (size_t i = 0, off = 0; i < r->npieces; off += r->pieces[i].len, i++)
        if (r->pieces[i].len)
            memcpy(buf + off, r->pieces[i].data, r->pieces[i].len);
    upb_Arena *a = upb_Arena_New();
    const envoy_service_discovery_v3_DeltaDiscoveryResponse *m =
        envoy_service_discovery_v3_DeltaDiscoveryResponse_parse(buf, total, a);
    if (!m || r->type >= EKG_RESOURCE__COUNT ||
        !view_is(envoy_service_discovery_v3_DeltaDiscoveryResponse_type_url(m),
                 ekg_resource_type_url(r->type)) ||
        envoy_service_discovery_v3_DeltaDiscoveryResponse_nonce(m).size == 0)
        abort();
    size_t n = 0, nremoved = 0;
    const envoy_service_discovery_v3_Resource *const *res =
        envoy_service_discovery_v3_DeltaDiscoveryResponse_resources(m, &n);
    const upb_StringView *removed =
        envoy_service_discovery_v3_DeltaDiscoveryResponse_removed_resources(m, &nremoved);
    for (size_t i = 0; i < n; i++) {
        upb_StringView name = envoy_service_discovery_v3_Resource_name(res[i]);
        if (envoy_service_discovery_v3_Resource_version(res[i]).size != 16)
            abort();
        for (size_t k = 0; k < i; k++)
            if (views_equal(name, envoy_service_discovery_v3_Resource_name(res[k])))
                abort();
        for (size_t k = 0; k < nremoved; k++)
            if (views_equal(name, removed[k]))
                abort();
    }
    for (size_t i = 0; i < nremoved; i++)
        for (size_t k = 0; k < i; k++)
            if (views_equal(removed[i], removed[k]))
                abort();
    upb_Arena_Free(a);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ekg_xds_api_t api = size ? (ekg_xds_api_t)((data[0] & 0x7f) % 5) : EKG_XDS_ADS;
    bool delta = size && (data[0] & 0x80);
    ekg_xds_session_t *s = delta ? ekg_xds_session_new_delta(api, "fuzz") : ekg_xds_session_new(api, "fuzz");
    ekg_xds_session_on_snapshot(s, snapshot(0));
    const uint8_t *p = size ? data + 1 : data, *end = data + size;
    for (int n = 0; n < 8 && p <= end; n++) {
        const uint8_t *q = p;
        while (q + 1 < end && !(q[0] == 0xff && q[1] == 0xfe))
            q++;
        if (q + 1 >= end)
            q = end;
        ekg_diag_t diag;
        if (delta && n == 4)
            ekg_xds_session_on_snapshot(s, snapshot(1));
        if (ekg_xds_session_on_request(s, (const char *)p, (size_t)(q - p), &diag) == EKG_OK) {
            ekg_xds_response_t r;
            for (int k = 0; k < 16 && ekg_xds_session_next(s, &r); k++) {
                check_response(&r, delta);
                ekg_xds_response_release(&r);
            }
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
