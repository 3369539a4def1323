/*
 * tests/unit/session_test.c: the state-of-the-world xDS protocol of one stream (src/xds/session.c), held to
 * the protocol rules in docs/internals/protocol.md, items 1-12 (cited as "item N" below): wildcard and named
 * subscriptions, per-resource load assignments, content-derived versions, nonces and stale requests,
 * ACK/NACK bookkeeping, make-before-break ordering on ADS, cluster warming, unserved types, malformed or
 * misplaced requests, and a stream that lags several snapshots behind.
 *
 * Each test drives a session exactly as the transport does (requests in, snapshots in, ..._next() out)
 * through tests/helpers/xds_fixtures.h, which decodes every response as a DiscoveryResponse and releases it,
 * so a run under ASan/LSan (-DEKG_SANITIZE=address) also proves that responses, sessions and snapshots leak
 * nothing. Thread: the test's main thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envoy/config/core/v3/base.upb.h"
#include "envoy/config/endpoint/v3/endpoint.upb.h"
#include "envoy/service/status/v3/csds.upb.h"

#include "ekglue/log.h"
#include "ekglue/mem.h"

#include "xds/csds.h"
#include "xds_fixtures.h"

#define CL EKG_RESOURCE_CLUSTER
#define LA EKG_RESOURCE_LOAD_ASSIGNMENT
#define LI EKG_RESOURCE_LISTENER

/*
 * Envoy's way to start ADS: a wildcard CDS request, the Clusters, their ACK, then the EDS request for the
 * clusters' load assignments (eds_names), the load assignments, their ACK. Leaves nothing due.
 */
static void ads_handshake(xf_t *x, ekg_xds_session_t *s, const char *eds_names, const xf_response_t **cds,
                          const xf_response_t **eds)
{
    xf_request(s, &(xf_request_t){.type_url = XF_CDS});
    const xf_response_t *c = xf_expect(x, s);
    assert_string_equal(c->type_url, XF_CDS);
    xf_ack(s, c, NULL);
    xf_request(s, &(xf_request_t){.type_url = XF_EDS, .names = eds_names});
    const xf_response_t *e = xf_expect(x, s);
    assert_string_equal(e->type_url, XF_EDS);
    xf_ack(s, e, eds_names);
    xf_expect_none(x, s);
    if (cds)
        *cds = c;
    if (eds)
        *eds = e;
}

/* --- wildcard CDS (items 6, 7)
 * ------------------------------------------------------------------------------
 */

static void test_cds_wildcard_first_request_gets_full_set(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    assert_string_equal(XF_CDS, ekg_resource_type_url(CL));

    /* Before any snapshot there is nothing to send. */
    xf_request(s, &(xf_request_t){.type_url = XF_CDS});
    xf_expect_none(x, s);

    xf_set(x, CL, "a b=2 c");
    xf_publish(x);
    assert_true(ekg_xds_session_has_work(s));
    const xf_response_t *r = xf_expect(x, s);
    assert_int_equal(r->type, CL);
    assert_string_equal(r->type_url, XF_CDS);
    assert_string_equal(r->names, "a,b,c");
    assert_int_equal(r->n, 3);
    assert_string_equal(r->version, xf_version(x, CL));
    assert_int_not_equal(strlen(r->nonce), 0);
    xf_assert_carries(r, xf_find(x, CL, "a"));
    xf_assert_carries(r, xf_find(x, CL, "b"));
    xf_assert_carries(r, xf_find(x, CL, "c"));

    ekg_xds_type_status_t st = xf_status(s, CL);
    assert_true(st.subscribed);
    assert_true(st.wildcard);
    assert_int_equal(st.nnames, 0);
    assert_int_equal(st.responses, 1);
    assert_string_equal(st.sent_version, r->version);
    assert_string_equal(st.acked_version, "");
}

static void test_cds_wildcard_ack_gets_no_response(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_CDS});
    const xf_response_t *r = xf_expect(x, s);
    assert_string_equal(r->names, "a,b");

    /* Item 4: an ACK is never answered with the same content. */
    xf_ack(s, r, NULL);
    xf_expect_none(x, s);
    xf_ack(s, r, NULL); /* a repeated ACK too */
    xf_expect_none(x, s);
    assert_int_equal(xf_status(s, CL).responses, 1);
}

static void test_cds_explicit_star_is_wildcard(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b c");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_CDS, .names = "*"});
    const xf_response_t *r = xf_expect(x, s);
    assert_string_equal(r->names, "a,b,c");
    assert_string_equal(r->version, xf_version(x, CL));
    assert_true(xf_status(s, CL).wildcard);
    assert_int_equal(xf_status(s, CL).nnames, 0);
    xf_ack(s, r, "*");
    xf_expect_none(x, s);

    /* A cluster added later is part of "*". */
    xf_set(x, CL, "a b c d");
    xf_publish(x);
    r = xf_expect(x, s);
    assert_string_equal(r->names, "a,b,c,d");
}

static void test_cds_named_then_empty_list_unsubscribes_all(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b c");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_CDS});
    const xf_response_t *r = xf_expect(x, s);
    assert_string_equal(r->names, "a,b,c");

    /* The client names a cluster: from now on it is no longer a legacy wildcard stream (item 6). */
    xf_ack(s, r, "a");
    r = xf_expect(x, s);
    assert_string_equal(r->names, "a");
    assert_false(xf_status(s, CL).wildcard);
    assert_int_equal(xf_status(s, CL).nnames, 1);

    /* An empty list now means "nothing": a full-state response with no clusters (omission deletes). */
    xf_ack(s, r, NULL);
    r = xf_expect(x, s);
    assert_string_equal(r->type_url, XF_CDS);
    assert_int_equal(r->n, 0);
    assert_string_equal(r->names, "");
    assert_false(xf_status(s, CL).wildcard);
    assert_int_equal(xf_status(s, CL).nnames, 0);
    xf_ack(s, r, NULL);
    xf_expect_none(x, s);

    /* Unsubscribed: changes are not sent. */
    xf_set(x, CL, "a=2 b c");
    xf_publish(x);
    xf_expect_none(x, s);
}

static void test_cds_legacy_wildcard_stays_on_empty_lists(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_CDS});
    const xf_response_t *r = xf_expect(x, s);
    assert_string_equal(r->names, "a,b");
    xf_ack(s, r, NULL);
    xf_expect_none(x, s);
    xf_ack(s, r, NULL);
    xf_expect_none(x, s);
    assert_true(xf_status(s, CL).wildcard);

    xf_set(x, CL, "a b=2 c");
    xf_publish(x);
    r = xf_expect(x, s);
    assert_string_equal(r->names, "a,b,c");
    assert_string_equal(r->version, xf_version(x, CL));
    xf_assert_carries(r, xf_find(x, CL, "b"));
}

/*
 * Item 6 (and the xDS protocol's wildcard section): the legacy meaning of an empty list holds only while the
 * client never subscribed to a name explicitly, "*" included. After ["*"], [] unsubscribes from everything.
 */
static void test_cds_explicit_star_then_empty_list_unsubscribes_all(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_CDS, .names = "*"});
    const xf_response_t *r = xf_expect(x, s);
    assert_string_equal(r->names, "a,b");

    xf_ack(s, r, NULL);
    r = xf_next(x, s);
    if (!r)
        fail_msg("after [\"*\"], an empty resource_names list must unsubscribe all (an empty CDS response); "
                 "nothing was sent and the stream %s wildcard",
                 xf_status(s, CL).wildcard ? "stayed" : "is no longer");
    assert_int_equal(r->n, 0);
    assert_false(xf_status(s, CL).wildcard);
    xf_ack(s, r, NULL);
    xf_expect_none(x, s);
}

/* --- named CDS (items 7, 8)
 * ---------------------------------------------------------------------------------
 */

static void test_cds_named_gets_only_named(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_CDS);
    xf_set(x, CL, "a b c d");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_CDS, .names = "d b"});
    const xf_response_t *r = xf_expect(x, s);
    assert_string_equal(r->names, "b,d");
    assert_string_equal(r->version, xf_version(x, CL));
    xf_assert_carries(r, xf_find(x, CL, "b"));
    xf_assert_carries(r, xf_find(x, CL, "d"));
    assert_false(xf_status(s, CL).wildcard);
    assert_int_equal(xf_status(s, CL).nnames, 2);
    xf_ack(s, r, "d b");
    xf_expect_none(x, s);

    /* A change to an unnamed cluster is none of this client's business (item 4). */
    xf_set(x, CL, "a=2 b c d");
    xf_publish(x);
    xf_expect_none(x, s);

    /* A change to a named one sends the full (named) state again (item 7). */
    xf_set(x, CL, "a=2 b c d=2");
    xf_publish(x);
    r = xf_expect(x, s);
    assert_string_equal(r->names, "b,d");
    xf_assert_carries(r, xf_find(x, CL, "d"));
}

static void test_cds_named_missing_cluster_sent_when_it_appears(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_CDS, .names = "a x"});
    const xf_response_t *r = xf_expect(x, s);
    assert_string_equal(r->names, "a");
    xf_ack(s, r, "a x");
    xf_expect_none(x, s);

    /* Item 8: the subscription to x is remembered and served once x exists. */
    xf_set(x, CL, "a x");
    xf_publish(x);
    r = xf_expect(x, s);
    assert_string_equal(r->names, "a,x");
    xf_assert_carries(r, xf_find(x, CL, "x"));
}

/* --- named EDS, per resource (items 7, 8, 9)
 * ----------------------------------------------------------------
 */

static void test_eds_named_gets_only_requested(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, LA, "a=z1 b=z1 c=z1");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_EDS, .names = "c a"});
    const xf_response_t *r = xf_expect(x, s);
    assert_int_equal(r->type, LA);
    assert_string_equal(r->type_url, XF_EDS);
    assert_string_equal(r->names, "a,c");
    assert_string_equal(r->version, xf_version(x, LA));
    xf_assert_carries(r, xf_find(x, LA, "a"));
    xf_assert_carries(r, xf_find(x, LA, "c"));
    xf_ack(s, r, "c a");
    xf_expect_none(x, s);
}

static void test_eds_duplicate_names_sent_once(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_EDS);
    xf_set(x, LA, "a b");
    xf_publish(x);
    /* Item 10 (the decoder fails the test on a repeated name). */
    xf_request(s, &(xf_request_t){.type_url = XF_EDS, .names = "a b a b"});
    const xf_response_t *r = xf_expect(x, s);
    assert_string_equal(r->names, "a,b");
    assert_int_equal(xf_status(s, LA).nnames, 2);
}

static void test_eds_resource_names_change_mid_stream(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, LA, "a=z1 b=z1 c=z1");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_EDS, .names = "a"});
    const xf_response_t *r = xf_expect(x, s);
    assert_string_equal(r->names, "a");

    /* Item 9: b is named in the ACK: b is sent (a is unchanged and not resent). */
    xf_ack(s, r, "a b");
    r = xf_expect(x, s);
    assert_string_equal(r->names, "b");
    xf_assert_carries(r, xf_find(x, LA, "b"));

    /* a is dropped: nothing to send for a removal. */
    xf_ack(s, r, "b");
    xf_expect_none(x, s);
    assert_int_equal(xf_status(s, LA).nnames, 1);

    /* a and b change: only b (still named) goes out. */
    xf_set(x, LA, "a=z2 b=z2 c=z1");
    xf_publish(x);
    r = xf_expect(x, s);
    assert_string_equal(r->names, "b");
    xf_assert_carries(r, xf_find(x, LA, "b"));

    /* Item 8: a named again is sent again although this stream had it before. */
    xf_ack(s, r, "b a");
    r = xf_expect(x, s);
    assert_string_equal(r->names, "a");
    xf_assert_carries(r, xf_find(x, LA, "a"));
    xf_ack(s, r, "b a");
    xf_expect_none(x, s);
}

static void test_eds_one_stream_per_cluster_and_resent_on_another_stream(void **state)
{
    xf_t *x = *state;
    /* Item 9: without ADS, Envoy may open one EDS stream per cluster. */
    ekg_xds_session_t *sa = xf_session(x, EKG_XDS_EDS);
    ekg_xds_session_t *sb = xf_session(x, EKG_XDS_EDS);
    xf_set(x, LA, "a=z1 b=z1");
    xf_publish(x);
    xf_request(sa, &(xf_request_t){.type_url = XF_EDS, .names = "a"});
    xf_request(sb, &(xf_request_t){.type_url = XF_EDS, .names = "b"});
    const xf_response_t *ra = xf_expect(x, sa);
    const xf_response_t *rb = xf_expect(x, sb);
    assert_string_equal(ra->names, "a");
    assert_string_equal(rb->names, "b");
    xf_ack(sa, ra, "a");
    xf_ack(sb, rb, "b");

    /* Item 8: a third stream naming a gets it, though a went out on another stream already. */
    ekg_xds_session_t *sc = xf_session(x, EKG_XDS_ADS);
    xf_publish(x);
    xf_request(sc, &(xf_request_t){.type_url = XF_EDS, .names = "a"});
    const xf_response_t *rc = xf_expect(x, sc);
    assert_string_equal(rc->names, "a");
    xf_assert_carries(rc, xf_find(x, LA, "a"));
    xf_ack(sc, rc, "a");

    /* A change of a reaches the streams that named a, and only them. */
    xf_set(x, LA, "a=z2 b=z1");
    xf_publish(x);
    ra = xf_expect(x, sa);
    assert_string_equal(ra->names, "a");
    xf_expect_none(x, sb);
    rc = xf_expect(x, sc);
    assert_string_equal(rc->names, "a");
    assert_string_equal(ra->version, rc->version);
}

static void test_eds_only_the_changed_load_assignment_is_sent(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, LA, "a=z1 b=z1 c=z1");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_EDS, .names = "a b c"});
    const xf_response_t *r = xf_expect(x, s);
    assert_string_equal(r->names, "a,b,c");
    const char *v1 = r->version;
    xf_ack(s, r, "a b c");

    /* Item 7: EDS is sent per resource. */
    xf_set(x, LA, "a=z1 b=z2 c=z1");
    xf_publish(x);
    r = xf_expect(x, s);
    assert_string_equal(r->names, "b");
    xf_assert_carries(r, xf_find(x, LA, "b"));
    assert_string_equal(r->version, xf_version(x, LA));
    assert_string_not_equal(r->version, v1);
    xf_ack(s, r, "a b c");
    xf_expect_none(x, s);
}

static void test_eds_unsubscribed_change_gets_no_response(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, LA, "a=z1 b=z1");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_EDS, .names = "a"});
    const xf_response_t *r = xf_expect(x, s);
    xf_ack(s, r, "a");

    /* Item 4: b changed, but this client does not subscribe to b. */
    xf_set(x, LA, "a=z1 b=z2 c=z1");
    xf_publish(x);
    xf_expect_none(x, s);
    assert_int_equal(xf_status(s, LA).responses, 1);
}

static void test_empty_load_assignment_is_sent_like_any_other(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_EDS);
    /* Item 12: a cluster without endpoints has a ClusterLoadAssignment with only cluster_name. */
    xf_set(x, LA, "empty full=z1");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_EDS, .names = "empty full"});
    const xf_response_t *r = xf_expect(x, s);
    assert_string_equal(r->names, "empty,full");
    xf_assert_carries(r, xf_find(x, LA, "empty"));

    const xf_any_t *a = xf_response_find(r, "empty");
    upb_Arena *arena = upb_Arena_New();
    envoy_config_endpoint_v3_ClusterLoadAssignment *la =
        envoy_config_endpoint_v3_ClusterLoadAssignment_parse(a->value, a->value_len, arena);
    assert_non_null(la);
    size_t n = 99;
    envoy_config_endpoint_v3_ClusterLoadAssignment_endpoints(la, &n);
    upb_Arena_Free(arena);
    assert_int_equal(n, 0);
}

/* --- versions (item 1)
 * --------------------------------------------------------------------------------------
 */

static void test_version_is_the_sets_content_derived_version(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s1 = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b=2");
    xf_publish(x);
    xf_request(s1, &(xf_request_t){.type_url = XF_CDS});
    const xf_response_t *r1 = xf_expect(x, s1);
    assert_string_equal(r1->version, xf_version(x, CL));
    assert_int_equal(strlen(r1->version), 16);

    /* A "restarted replica": the same content built from scratch, new objects, another stream. */
    ekg_resource_t *items[2] = {xf_resource(CL, "a", NULL), xf_resource(CL, "b", "2")};
    ekg_resource_set_t *fresh = NULL;
    assert_int_equal(ekg_resource_set_new(CL, items, 2, NULL, &fresh), EKG_OK);
    ekg_resource_unref(items[0]);
    ekg_resource_unref(items[1]);
    ekg_resource_set_t *sets[EKG_RESOURCE__COUNT] = {[CL] = fresh};
    ekg_snapshot_t *snap = NULL;
    snap = ekg_snapshot_new(sets);
    ekg_resource_set_unref(fresh);
    ekg_xds_session_t *s2 = xf_session(x, EKG_XDS_CDS);
    ekg_xds_session_on_snapshot(s2, snap);
    ekg_snapshot_unref(snap);
    xf_request(s2, &(xf_request_t){.type_url = XF_CDS});
    const xf_response_t *r2 = xf_expect(x, s2);
    assert_string_equal(r2->version, r1->version);

    /* A content change changes the version; changing it back restores the old one. */
    xf_ack(s1, r1, NULL);
    xf_set(x, CL, "a b=3");
    xf_publish(x);
    const xf_response_t *r3 = xf_expect(x, s1);
    assert_string_not_equal(r3->version, r1->version);
    assert_string_equal(r3->version, xf_version(x, CL));
    xf_ack(s1, r3, NULL);
    xf_set(x, CL, "a b=2");
    xf_publish(x);
    const xf_response_t *r4 = xf_expect(x, s1);
    assert_string_equal(r4->version, r1->version);
}

static void test_same_content_published_again_gets_no_response(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b");
    xf_set(x, LA, "a=z1 b=z1");
    xf_publish(x);
    ads_handshake(x, s, "a b", NULL, NULL);

    /* A new snapshot object holding the very same sets. */
    xf_publish(x);
    xf_expect_none(x, s);

    /* A new snapshot with equal sets built from new resource objects (no sharing with the old ones). */
    ekg_resource_t *cl[2] = {xf_resource(CL, "a", NULL), xf_resource(CL, "b", NULL)};
    ekg_resource_t *la[2] = {xf_resource(LA, "a", "z1"), xf_resource(LA, "b", "z1")};
    ekg_resource_set_t *sets[EKG_RESOURCE__COUNT] = {0};
    assert_int_equal(ekg_resource_set_new(CL, cl, 2, NULL, &sets[CL]), EKG_OK);
    assert_int_equal(ekg_resource_set_new(LA, la, 2, NULL, &sets[LA]), EKG_OK);
    for (int i = 0; i < 2; i++) {
        ekg_resource_unref(cl[i]);
        ekg_resource_unref(la[i]);
    }
    assert_string_equal(ekg_resource_set_version(sets[CL]), xf_version(x, CL));
    ekg_snapshot_t *snap = NULL;
    snap = ekg_snapshot_new(sets);
    ekg_resource_set_unref(sets[CL]);
    ekg_resource_set_unref(sets[LA]);
    ekg_xds_session_on_snapshot(s, snap);
    ekg_snapshot_unref(snap);
    xf_expect_none(x, s);
    assert_int_equal(xf_status(s, CL).responses, 1);
    assert_int_equal(xf_status(s, LA).responses, 1);
}

/* --- nonces and ACKs (item 2)
 * -------------------------------------------------------------------------------
 */

static void test_every_response_has_a_fresh_nonce(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a");
    xf_set(x, LA, "a=z1");
    xf_publish(x);
    const xf_response_t *cds, *eds;
    ads_handshake(x, s, "a", &cds, &eds);
    xf_set(x, LA, "a=z2");
    xf_publish(x);
    const xf_response_t *r3 = xf_expect(x, s);
    xf_ack(s, r3, "a");
    xf_set(x, LA, "a=z3");
    xf_publish(x);
    const xf_response_t *r4 = xf_expect(x, s);

    const char *nonces[] = {cds->nonce, eds->nonce, r3->nonce, r4->nonce};
    for (size_t i = 0; i < 4; i++) {
        assert_int_not_equal(strlen(nonces[i]), 0);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(nonces[i], nonces[j]);
    }
}

static void test_stale_nonce_is_ignored(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, LA, "a=z1 b=z1 c=z1");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_EDS, .names = "a"});
    const xf_response_t *r1 = xf_expect(x, s);
    xf_ack(s, r1, "a b");
    const xf_response_t *r2 = xf_expect(x, s);
    assert_string_equal(r2->names, "b");

    /* r1's nonce is no longer the latest: the request (and its new subscription to c) is ignored. */
    xf_request(
        s, &(xf_request_t){.type_url = XF_EDS, .names = "a b c", .version = r1->version, .nonce = r1->nonce});
    xf_expect_none(x, s);
    ekg_xds_type_status_t st = xf_status(s, LA);
    assert_int_equal(st.nnames, 2);
    assert_int_equal(st.acks, 1);
    assert_string_equal(st.acked_version, r1->version);

    /* Nor is c subscribed: its change is not sent. */
    xf_set(x, LA, "a=z1 b=z1 c=z2");
    xf_publish(x);
    xf_expect_none(x, s);

    /* A nonce this stream never sent is stale too. */
    xf_request(s, &(xf_request_t){.type_url = XF_EDS, .names = "a b c", .nonce = "no-such-nonce"});
    xf_expect_none(x, s);
    assert_int_equal(xf_status(s, LA).nnames, 2);
}

static void test_ack_with_latest_nonce_updates_acked_version(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_CDS});
    const xf_response_t *r = xf_expect(x, s);
    ekg_xds_type_status_t st = xf_status(s, CL);
    assert_string_equal(st.acked_version, "");
    assert_int_equal(st.acks, 0);

    xf_ack(s, r, NULL);
    st = xf_status(s, CL);
    assert_string_equal(st.acked_version, r->version);
    assert_string_equal(st.sent_version, r->version);
    assert_int_equal(st.acks, 1);
    assert_int_equal(st.nacks, 0);
    assert_null(st.nack_message);
}

/* --- NACK (item 3)
 * ------------------------------------------------------------------------------------------
 */

static void test_nack_is_recorded_and_not_answered_with_the_same_content(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_CDS});
    const xf_response_t *r1 = xf_expect(x, s);
    xf_ack(s, r1, NULL);

    xf_set(x, CL, "a b=bad");
    xf_publish(x);
    const xf_response_t *r2 = xf_expect(x, s);
    xf_nack(s, r2, NULL, r1->version, "cluster b: bad alt_stat_name");
    ekg_xds_type_status_t st = xf_status(s, CL);
    assert_int_equal(st.nacks, 1);
    assert_non_null(st.nack_message);
    assert_string_equal(st.nack_message, "cluster b: bad alt_stat_name");
    assert_string_equal(st.acked_version, r1->version);
    assert_string_equal(st.sent_version, r2->version);

    /* The rejected content is not resent, not even when the same content is published again. */
    xf_expect_none(x, s);
    xf_publish(x);
    xf_expect_none(x, s);

    /* New content is sent, and its ACK clears the NACK. */
    xf_set(x, CL, "a b=good");
    xf_publish(x);
    const xf_response_t *r3 = xf_expect(x, s);
    assert_string_equal(r3->version, xf_version(x, CL));
    xf_assert_carries(r3, xf_find(x, CL, "b"));
    assert_string_equal(xf_status(s, CL).nack_message, "cluster b: bad alt_stat_name");
    xf_ack(s, r3, NULL);
    st = xf_status(s, CL);
    assert_null(st.nack_message);
    assert_string_equal(st.acked_version, r3->version);
    assert_int_equal(st.nacks, 1);
    assert_int_equal(st.acks, 2);
    xf_expect_none(x, s);
}

/* --- ADS ordering (item 11)
 * ---------------------------------------------------------------------------------
 */

static void test_ads_sends_clusters_then_load_assignments_then_listeners(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b");
    xf_set(x, LA, "a=z1 b=z1");
    xf_set(x, LI, "l1");
    xf_publish(x);
    const xf_response_t *cds, *eds;
    ads_handshake(x, s, "a b", &cds, &eds);
    xf_request(s, &(xf_request_t){.type_url = XF_LDS, .names = "l1"});
    const xf_response_t *lds = xf_expect(x, s);
    assert_string_equal(lds->names, "l1");
    xf_ack(s, lds, "l1");
    xf_expect_none(x, s);

    /* Everything changes at once: make before break. */
    xf_set(x, CL, "a b c");
    xf_set(x, LA, "a=z2 b=z1 c=z1");
    xf_set(x, LI, "l1=2");
    xf_publish(x);
    const xf_response_t *r = xf_expect(x, s);
    assert_string_equal(r->type_url, XF_CDS);
    assert_string_equal(r->names, "a,b,c");
    r = xf_expect(x, s);
    assert_string_equal(r->type_url, XF_EDS);
    assert_string_equal(r->names, "a");
    r = xf_expect(x, s);
    assert_string_equal(r->type_url, XF_LDS);
    assert_string_equal(r->names, "l1");
    xf_expect_none(x, s);
}

static void test_ads_cluster_removal_goes_after_pending_load_assignments(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b");
    xf_set(x, LA, "a=z1 b=z1");
    xf_publish(x);
    ads_handshake(x, s, "a b", NULL, NULL);

    /* Cluster b goes away while a's endpoints change: the load assignment first, the removal last. */
    xf_set(x, CL, "a");
    xf_set(x, LA, "a=z2");
    xf_publish(x);
    const xf_response_t *r = xf_expect(x, s);
    assert_string_equal(r->type_url, XF_EDS);
    assert_string_equal(r->names, "a");
    r = xf_expect(x, s);
    assert_string_equal(r->type_url, XF_CDS);
    assert_string_equal(r->names, "a");
    assert_string_equal(r->version, xf_version(x, CL));
    xf_expect_none(x, s);
}

/* --- cluster warming (item 12)
 * ------------------------------------------------------------------------------
 */

static void test_cluster_warming_resends_unchanged_load_assignment(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b");
    xf_set(x, LA, "a=z1 b=z1");
    xf_publish(x);
    const xf_response_t *eds;
    ads_handshake(x, s, "a b", NULL, &eds);

    /* Cluster a changes, its endpoints do not. */
    xf_set(x, CL, "a=2 b");
    xf_publish(x);
    const xf_response_t *r = xf_expect(x, s);
    assert_string_equal(r->type_url, XF_CDS);
    xf_assert_carries(r, xf_find(x, CL, "a"));
    xf_expect_none(x, s);

    /* Envoy warms a and asks again with unchanged names and the last EDS nonce: a's assignment again. */
    xf_ack(s, r, NULL);
    xf_ack(s, eds, "a b");
    r = xf_expect(x, s);
    assert_string_equal(r->type_url, XF_EDS);
    assert_string_equal(r->names, "a");
    xf_assert_carries(r, xf_find(x, LA, "a"));
    xf_ack(s, r, "a b");
    xf_expect_none(x, s);
}

/*
 * Item 4 with item 12: when the load assignment of a changed cluster already went out after the Cluster (it
 * changed too), the client has what warming needs; the ACK of that EDS response must not bring it again.
 */
static void test_cluster_warming_does_not_resend_what_followed_the_cluster(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b");
    xf_set(x, LA, "a=z1 b=z1");
    xf_publish(x);
    ads_handshake(x, s, "a b", NULL, NULL);

    xf_set(x, CL, "a=2 b");
    xf_set(x, LA, "a=z2 b=z1");
    xf_publish(x);
    const xf_response_t *cds = xf_expect(x, s);
    assert_string_equal(cds->type_url, XF_CDS);
    const xf_response_t *eds = xf_expect(x, s);
    assert_string_equal(eds->type_url, XF_EDS);
    assert_string_equal(eds->names, "a");
    xf_ack(s, cds, NULL);
    xf_ack(s, eds, "a b");
    xf_expect_none(x, s);
}

/* --- types the session does not serve, or that do not belong
 * --------------------------------------------------
 */

static void test_unknown_type_on_ads_gets_an_empty_response(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_SECRET, .names = "tls-cert"});
    assert_true(ekg_xds_session_has_work(s));
    const xf_response_t *r1 = xf_expect(x, s);
    assert_int_equal(r1->type, EKG_RESOURCE__COUNT);
    assert_string_equal(r1->type_url, XF_SECRET);
    assert_int_equal(r1->n, 0);
    assert_int_not_equal(strlen(r1->nonce), 0);

    /* Its ACK is not answered. */
    xf_ack(s, r1, "tls-cert");
    xf_expect_none(x, s);

    /* A new request for the type (no nonce) is answered again, with a new nonce. */
    xf_request(s, &(xf_request_t){.type_url = XF_SECRET, .names = "tls-cert other"});
    const xf_response_t *r2 = xf_expect(x, s);
    assert_string_equal(r2->type_url, XF_SECRET);
    assert_int_equal(r2->n, 0);
    assert_string_not_equal(r2->nonce, r1->nonce);
    xf_ack(s, r2, "tls-cert other");
    xf_expect_none(x, s);

    /* The served types are unaffected. */
    xf_request(s, &(xf_request_t){.type_url = XF_CDS});
    const xf_response_t *r3 = xf_expect(x, s);
    assert_string_equal(r3->names, "a");
}

/*
 * Item 2 for unserved types: two requests before the client saw an answer give two answers; the ACK of the
 * first carries a stale nonce and must not be answered, or every late ACK draws another response and the
 * stream never goes quiet.
 */
static void test_unknown_type_stale_ack_is_not_answered(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_request(s, &(xf_request_t){.type_url = XF_SECRET, .names = "s1"});
    const xf_response_t *r1 = xf_expect(x, s);
    xf_request(s, &(xf_request_t){.type_url = XF_SECRET, .names = "s1 s2"});
    const xf_response_t *r2 = xf_expect(x, s);
    assert_string_not_equal(r1->nonce, r2->nonce);

    xf_ack(s, r1, "s1 s2");
    xf_expect_none(x, s);
    xf_ack(s, r2, "s1 s2");
    xf_expect_none(x, s);
}

static void test_type_not_allowed_on_single_type_api_is_einval(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_EDS);
    ekg_diag_t diag = {{0}};
    assert_int_equal(xf_try_request(s, &(xf_request_t){.type_url = XF_CDS}, &diag), EKG_EINVAL);
    assert_int_not_equal(strlen(diag.msg), 0);
    assert_false(xf_status(s, CL).subscribed);

    ekg_xds_session_t *c = xf_session(x, EKG_XDS_CDS);
    diag = (ekg_diag_t){{0}};
    assert_int_equal(xf_try_request(c, &(xf_request_t){.type_url = XF_LDS, .names = "l1"}, &diag),
                     EKG_EINVAL);
    assert_false(xf_status(c, LI).subscribed);

    /* On ADS every request must say its type. */
    ekg_xds_session_t *a = xf_session(x, EKG_XDS_ADS);
    diag = (ekg_diag_t){{0}};
    assert_int_equal(xf_try_request(a, &(xf_request_t){.names = "a"}, &diag), EKG_EINVAL);
    xf_set(x, CL, "a");
    xf_publish(x);
    xf_expect_none(x, s);
    xf_expect_none(x, c);
    xf_expect_none(x, a);
}

static void test_garbage_request_is_eparse(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    static const char garbage[] = "\x0a\xff\xff\xff\xff\x0f" /* type_url longer than the message */;
    static const char bad_varint[] = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff";
    ekg_diag_t diag = {{0}};
    assert_int_equal(ekg_xds_session_on_request(s, garbage, sizeof(garbage) - 1, &diag), EKG_EPARSE);
    assert_int_not_equal(strlen(diag.msg), 0);
    assert_int_equal(ekg_xds_session_on_request(s, bad_varint, sizeof(bad_varint) - 1, &diag), EKG_EPARSE);

    /* The session is unharmed. */
    xf_set(x, CL, "a");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_CDS});
    assert_string_equal(xf_expect(x, s)->names, "a");
}

static void test_empty_type_url_on_single_type_api_is_that_type(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_CDS);
    xf_set(x, CL, "a b");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.names = NULL});
    const xf_response_t *r = xf_expect(x, s);
    assert_string_equal(r->type_url, XF_CDS);
    assert_string_equal(r->names, "a,b");
    assert_true(xf_status(s, CL).wildcard);
    xf_request(s, &(xf_request_t){.version = r->version, .nonce = r->nonce});
    assert_int_equal(xf_status(s, CL).acks, 1);
    xf_expect_none(x, s);
}

/* --- node (item 5)
 * ------------------------------------------------------------------------------------------
 */

static void test_node_id_comes_from_the_first_request(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    assert_string_equal(ekg_xds_session_node_id(s), "");
    xf_set(x, CL, "a");
    xf_set(x, LA, "a=z1");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_CDS, .node_id = "envoy-1"});
    assert_string_equal(ekg_xds_session_node_id(s), "envoy-1");
    const xf_response_t *r = xf_expect(x, s);
    xf_request(s, &(xf_request_t){.type_url = XF_CDS, .version = r->version, .nonce = r->nonce});
    assert_string_equal(ekg_xds_session_node_id(s), "envoy-1");
    xf_request(s, &(xf_request_t){.type_url = XF_EDS, .names = "a", .node_id = "envoy-2"});
    assert_string_equal(ekg_xds_session_node_id(s), "envoy-1");
}

/* --- listeners
 * ----------------------------------------------------------------------------------------------
 */

static void test_lds_wildcard_gets_no_proxyless_listeners_named_gets_them(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *w = xf_session(x, EKG_XDS_ADS);
    ekg_xds_session_t *n = xf_session(x, EKG_XDS_LDS);
    xf_set(x, LI, "l1=a l2=b");
    xf_publish(x);

    xf_request(w, &(xf_request_t){.type_url = XF_LDS});
    const xf_response_t *rw = xf_expect(x, w);
    assert_string_equal(rw->type_url, XF_LDS);
    assert_int_equal(rw->n, 0);
    assert_string_equal(rw->version, xf_version(x, LI));
    assert_true(xf_status(w, LI).wildcard);
    xf_ack(w, rw, NULL);
    xf_expect_none(x, w);

    xf_request(n, &(xf_request_t){.type_url = XF_LDS, .names = "l2"});
    const xf_response_t *rn = xf_expect(x, n);
    assert_string_equal(rn->names, "l2");
    xf_assert_carries(rn, xf_find(x, LI, "l2"));
}

/*
 * Item 4: a wildcard LDS client subscribes to no proxyless listener, so a listener change is none of its
 * business; answering it with another empty set (under a new version) is a push of nothing.
 */
static void test_lds_wildcard_not_pushed_on_listener_change(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *w = xf_session(x, EKG_XDS_ADS);
    xf_set(x, LI, "l1=a");
    xf_publish(x);
    xf_request(w, &(xf_request_t){.type_url = XF_LDS});
    const xf_response_t *r = xf_expect(x, w);
    assert_int_equal(r->n, 0);
    xf_ack(w, r, NULL);

    xf_set(x, LI, "l1=b l2=c");
    xf_publish(x);
    xf_expect_none(x, w);
}

/* --- lagging streams and big sets
 * ---------------------------------------------------------------------------
 */

static void test_stream_behind_several_snapshots_gets_only_the_latest(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b");
    xf_set(x, LA, "a=z1 b=z1");
    xf_publish(x);
    ads_handshake(x, s, "a b", NULL, NULL);

    xf_set(x, CL, "a=2 b");
    xf_publish(x);
    xf_set(x, CL, "a=2 b=2");
    xf_set(x, LA, "a=z2 b=z1");
    xf_publish(x);
    xf_set(x, CL, "a=3 b=2");
    xf_set(x, LA, "a=z3 b=z2");
    xf_publish(x);

    const xf_response_t *r = xf_expect(x, s);
    assert_string_equal(r->type_url, XF_CDS);
    assert_string_equal(r->version, xf_version(x, CL));
    assert_string_equal(r->names, "a,b");
    xf_assert_carries(r, xf_find(x, CL, "a"));
    xf_assert_carries(r, xf_find(x, CL, "b"));
    r = xf_expect(x, s);
    assert_string_equal(r->type_url, XF_EDS);
    assert_string_equal(r->version, xf_version(x, LA));
    assert_string_equal(r->names, "a,b");
    xf_assert_carries(r, xf_find(x, LA, "a"));
    xf_assert_carries(r, xf_find(x, LA, "b"));
    xf_expect_none(x, s);
    assert_int_equal(xf_status(s, CL).responses, 2);
    assert_int_equal(xf_status(s, LA).responses, 2);
}

#define MANY 1000 /* more than the set's 128-item page */

/* "prefix0000=variant prefix0001=variant ..." with variant changed_variant for index changed (-1: none). */
static char *many_spec(const char *variant, int changed, const char *changed_variant)
{
    char *spec = ekg_xmalloc(MANY * 24);
    char *p = spec;
    for (int i = 0; i < MANY; i++)
        p += sprintf(p, "%sc%04d%s%s", i ? " " : "", i, variant ? "=" : "",
                     variant ? (i == changed ? changed_variant : variant) : "");
    return spec;
}

static void test_one_change_in_a_thousand_load_assignments_sends_one(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_EDS);
    char *spec = many_spec("z1", -1, NULL);
    char *names = many_spec(NULL, -1, NULL);
    xf_set(x, LA, spec);
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_EDS, .names = names});
    const xf_response_t *r = xf_expect(x, s);
    assert_int_equal(r->n, MANY);
    xf_ack(s, r, names);
    xf_expect_none(x, s);

    free(spec);
    spec = many_spec("z1", 500, "z2");
    xf_set(x, LA, spec);
    xf_publish(x);
    r = xf_expect(x, s);
    assert_int_equal(r->n, 1);
    assert_string_equal(r->names, "c0500");
    xf_assert_carries(r, xf_find(x, LA, "c0500"));
    assert_string_equal(r->version, xf_version(x, LA));
    xf_ack(s, r, names);
    xf_expect_none(x, s);
    free(spec);
    free(names);
}

/* --- limits (docs/internals/server.md, "Limits")
 * ----------------------------------------------------------------
 */

/* n names "p0 p1 ... p<n-1>" (malloc'ed). */
static char *names_spec(const char *prefix, int n)
{
    size_t size = (size_t)n * (strlen(prefix) + 12) + 1, len = 0;
    char *spec = ekg_xmalloc(size);
    spec[0] = '\0';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(spec + len, size - len, "%s%s%d", i ? " " : "", prefix, i);
    return spec;
}

static void test_names_per_request_is_limited(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    ekg_xds_session_set_limits(s, 3, 0);
    xf_set(x, LA, "a b c d");
    xf_publish(x);
    ekg_diag_t diag = {{0}};
    assert_int_equal(xf_try_request(s, &(xf_request_t){.type_url = XF_EDS, .names = "a b c d"}, &diag),
                     EKG_ERANGE);
    assert_non_null(strstr(diag.msg, "names 4 resources; the limit is 3 per request"));
    assert_non_null(strstr(diag.msg, "--xds-max-names-per-request"));
    assert_false(xf_status(s, LA).subscribed);
    xf_expect_none(x, s);
    /* Three are fine, and so is a fourth repeated name (the limit counts what the request carries). */
    xf_request(s, &(xf_request_t){.type_url = XF_EDS, .names = "a b c"});
    assert_string_equal(xf_expect(x, s)->names, "a,b,c");
}

/* The names of every type count together; a refused request changes nothing; duplicates count once. */
static void test_names_per_stream_counts_every_type(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    ekg_xds_session_set_limits(s, 0, 4);
    xf_set(x, CL, "a b c d");
    xf_set(x, LA, "a b c d");
    xf_publish(x);
    xf_request(s, &(xf_request_t){.type_url = XF_CDS, .names = "a b c"});
    const xf_response_t *cds = xf_expect(x, s);
    assert_string_equal(cds->names, "a,b,c");

    ekg_diag_t diag = {{0}};
    assert_int_equal(xf_try_request(s, &(xf_request_t){.type_url = XF_EDS, .names = "a b"}, &diag),
                     EKG_ERANGE);
    assert_non_null(strstr(diag.msg, "would subscribe to 5 resource names"));
    assert_non_null(strstr(diag.msg, "--xds-max-names-per-stream"));
    assert_false(xf_status(s, LA).subscribed);
    xf_expect_none(x, s);

    xf_request(s, &(xf_request_t){.type_url = XF_EDS, .names = "a a a"});
    assert_string_equal(xf_expect(x, s)->names, "a");
    assert_int_equal(xf_status(s, LA).nnames, 1);

    /* Growing the Cluster subscription past the limit is refused and leaves it as it was. */
    assert_int_equal(xf_try_request(s,
                                    &(xf_request_t){.type_url = XF_CDS,
                                                    .names = "a b c d",
                                                    .version = cds->version,
                                                    .nonce = cds->nonce},
                                    &diag),
                     EKG_ERANGE);
    assert_int_equal(xf_status(s, CL).nnames, 3);
    xf_expect_none(x, s);
}

/* Each type URL ekglue does not serve is remembered (it is answered once per request); their number is
 * bounded, or a client naming new ones in a loop grows the stream without end. */
static void test_unserved_type_urls_per_stream_are_bounded(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    char url[80];
    for (int i = 0; i < 32; i++) {
        snprintf(url, sizeof(url), "type.googleapis.com/test.Unknown%d", i);
        xf_request(s, &(xf_request_t){.type_url = url});
        assert_int_equal(xf_expect(x, s)->n, 0);
    }
    snprintf(url, sizeof(url), "type.googleapis.com/test.Unknown%d", 32);
    ekg_diag_t diag = {{0}};
    assert_int_equal(xf_try_request(s, &(xf_request_t){.type_url = url}, &diag), EKG_ERANGE);
    assert_non_null(strstr(diag.msg, "more than 32 type URLs"));
    xf_expect_none(x, s);
}

/* What a stream keeps of its client's words is bounded: node fields at 1 KiB, a NACK message at 4 KiB. */
static void test_node_fields_and_nack_messages_are_cut(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a");
    xf_publish(x);
    char *long_id = ekg_xmalloc(5001), *long_message = ekg_xmalloc(10001);
    memset(long_id, 'n', 5000);
    long_id[5000] = '\0';
    memset(long_message, 'm', 10000);
    long_message[10000] = '\0';
    xf_request(s, &(xf_request_t){.type_url = XF_CDS, .node_id = long_id});
    assert_int_equal(strlen(ekg_xds_session_node_id(s)), 1024);
    assert_memory_equal(ekg_xds_session_node_id(s), long_id, 1024);
    const xf_response_t *r = xf_expect(x, s);
    xf_nack(s, r, NULL, "", long_message);
    assert_int_equal(strlen(xf_status(s, CL).nack_message), 4096);
    free(long_id);
    free(long_message);
}

/* A CSDS answer stays within its bound: whole clients, in order, those that do not fit counted. */
static void test_csds_answer_is_bounded(void **state)
{
    xf_t *x = *state;
    xf_set(x, LA, "a b c");
    char *many = names_spec("cluster-with-a-long-name-", 200), *names = ekg_xasprintf("a b c %s", many);
    free(many);
    ekg_xds_session_t *clients[4];
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof(id), "envoy-%d", i);
        clients[i] = xf_session(x, EKG_XDS_ADS);
        /* envoy-1 asks for 203 names (about 60 KB of answer), the others for three. */
        xf_request(clients[i],
                   &(xf_request_t){.type_url = XF_EDS, .names = i == 1 ? names : "a b c", .node_id = id});
    }
    xf_publish(x);
    for (int i = 0; i < 4; i++)
        xf_expect(x, clients[i]);
    free(names);
    char *out = NULL;
    size_t len = 0;
    ekg_xds_csds_counts_t counts;
    ekg_diag_t diag = {{0}};
    /* Unbounded enough: everybody. */
    assert_int_equal(ekg_xds_csds_answer_bounded("", 0, clients, 4, 1 << 20, &out, &len, &counts, &diag),
                     EKG_OK);
    assert_int_equal(counts.selected, 4);
    assert_int_equal(counts.shown, 4);
    size_t whole = len;
    free(out);
    /* 20 KB: the big client does not fit and is left out; the ones after it still are shown. */
    assert_int_equal(ekg_xds_csds_answer_bounded("", 0, clients, 4, 20000, &out, &len, &counts, &diag),
                     EKG_OK);
    assert_int_equal(counts.selected, 4);
    assert_int_equal(counts.shown, 3);
    assert_true(len <= 20000);
    assert_true(len < whole);
    upb_Arena *arena = upb_Arena_New();
    envoy_service_status_v3_ClientStatusResponse *resp =
        envoy_service_status_v3_ClientStatusResponse_parse(out, len, arena);
    assert_non_null(resp);
    size_t n;
    const envoy_service_status_v3_ClientConfig *const *configs =
        envoy_service_status_v3_ClientStatusResponse_config(resp, &n);
    assert_int_equal(n, 3);
    const char *expect[3] = {"envoy-0", "envoy-2", "envoy-3"};
    for (size_t i = 0; i < n; i++) {
        upb_StringView id =
            envoy_config_core_v3_Node_id(envoy_service_status_v3_ClientConfig_node(configs[i]));
        assert_int_equal(id.size, strlen(expect[i]));
        assert_memory_equal(id.data, expect[i], id.size);
        size_t ng;
        envoy_service_status_v3_ClientConfig_generic_xds_configs(configs[i], &ng);
        assert_int_equal(ng, 3);
    }
    upb_Arena_Free(arena);
    free(out);
    /* Too small for anyone: an empty answer that says so. */
    assert_int_equal(ekg_xds_csds_answer_bounded("", 0, clients, 4, 10, &out, &len, &counts, &diag), EKG_OK);
    assert_int_equal(counts.selected, 4);
    assert_int_equal(counts.shown, 0);
    free(out);
}

int main(void)
{
    ekg_log_set_level(EKG_LOG_ERROR);
#define T(fn) cmocka_unit_test_setup_teardown(fn, xf_setup, xf_teardown)
    const struct CMUnitTest tests[] = {
        T(test_cds_wildcard_first_request_gets_full_set),
        T(test_cds_wildcard_ack_gets_no_response),
        T(test_cds_explicit_star_is_wildcard),
        T(test_cds_named_then_empty_list_unsubscribes_all),
        T(test_cds_legacy_wildcard_stays_on_empty_lists),
        T(test_cds_explicit_star_then_empty_list_unsubscribes_all),
        T(test_cds_named_gets_only_named),
        T(test_cds_named_missing_cluster_sent_when_it_appears),
        T(test_eds_named_gets_only_requested),
        T(test_eds_duplicate_names_sent_once),
        T(test_eds_resource_names_change_mid_stream),
        T(test_eds_one_stream_per_cluster_and_resent_on_another_stream),
        T(test_eds_only_the_changed_load_assignment_is_sent),
        T(test_eds_unsubscribed_change_gets_no_response),
        T(test_empty_load_assignment_is_sent_like_any_other),
        T(test_version_is_the_sets_content_derived_version),
        T(test_same_content_published_again_gets_no_response),
        T(test_every_response_has_a_fresh_nonce),
        T(test_stale_nonce_is_ignored),
        T(test_ack_with_latest_nonce_updates_acked_version),
        T(test_nack_is_recorded_and_not_answered_with_the_same_content),
        T(test_ads_sends_clusters_then_load_assignments_then_listeners),
        T(test_ads_cluster_removal_goes_after_pending_load_assignments),
        T(test_cluster_warming_resends_unchanged_load_assignment),
        T(test_cluster_warming_does_not_resend_what_followed_the_cluster),
        T(test_unknown_type_on_ads_gets_an_empty_response),
        T(test_unknown_type_stale_ack_is_not_answered),
        T(test_type_not_allowed_on_single_type_api_is_einval),
        T(test_garbage_request_is_eparse),
        T(test_empty_type_url_on_single_type_api_is_that_type),
        T(test_node_id_comes_from_the_first_request),
        T(test_lds_wildcard_gets_no_proxyless_listeners_named_gets_them),
        T(test_lds_wildcard_not_pushed_on_listener_change),
        T(test_stream_behind_several_snapshots_gets_only_the_latest),
        T(test_one_change_in_a_thousand_load_assignments_sends_one),
        T(test_names_per_request_is_limited),
        T(test_names_per_stream_counts_every_type),
        T(test_unserved_type_urls_per_stream_are_bounded),
        T(test_node_fields_and_nack_messages_are_cut),
        T(test_csds_answer_is_bounded),
    };
#undef T
    return cmocka_run_group_tests_name("session", tests, NULL, NULL);
}
