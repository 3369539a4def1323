/*
 * tests/unit/delta_test.c: the incremental (delta) xDS protocol of one stream (src/xds/delta.c, through the
 * session entry points of src/xds/session.c), held to the rules D1-D7 of docs/internals/protocol.md
 * ("Incremental xDS") and the SotW rules they keep (2, 3, 4, 5, 9, 11, 12; cited as below): per-resource
 * versions that are content hashes and system_version_info the set's version; wildcard by a legacy empty
 * first request or "*", "*" mixed with names, unsubscribing "*" and names, subscription changes at any time;
 * initial_resource_versions (current ones not resent, stale ones resent, vanished ones removed); a change
 * sends what changed; names that do not exist in removed_resources, sent once they appear; ACK/NACK by nonce,
 * NACKed versions not resent, stale nonces still changing subscriptions; Clusters before load assignments on
 * ADS and a changed Cluster's assignment resent; the Node from the first request only; zone variants (a
 * localizer in the snapshot) with the variant's hash as version; bad requests and limits.
 *
 * Each test drives a session exactly as the transport does (requests in, snapshots in, ..._next() out)
 * through tests/helpers/xds_fixtures.h (the xf_delta_* functions), which decodes every response as a
 * DeltaDiscoveryResponse, checks every resource's version against the content hash of its bytes and releases
 * the response, so a run under ASan/LSan also proves that nothing leaks. tests/xds/delta_test.py holds the
 * same rules over the wire. Thread: the test's main thread.
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

#include "ekglue/log.h"
#include "ekglue/mem.h"

#include "xds_fixtures.h"

#define CL EKG_RESOURCE_CLUSTER
#define LA EKG_RESOURCE_LOAD_ASSIGNMENT
#define LI EKG_RESOURCE_LISTENER

typedef xf_delta_request_t req_t;

/* The version a delta response gives the world's current resource (type, name), in buf. */
static const char *version_in_world(const xf_t *x, ekg_resource_type_t type, const char *name, char buf[17])
{
    return xf_delta_version(xf_find(x, type, name), buf);
}

/* A wildcard CDS request (legacy: no names), the Clusters, their ACK; then nothing is due. */
static const xf_delta_response_t *cds_handshake(xf_t *x, ekg_xds_session_t *s)
{
    xf_delta_request(s, &(req_t){.type_url = XF_CDS, .node_id = "envoy"});
    const xf_delta_response_t *r = xf_delta_expect(x, s);
    assert_string_equal(r->type_url, XF_CDS);
    xf_delta_ack(s, r);
    xf_delta_expect_none(x, s);
    return r;
}

/* --- D1: versions --------------------------------------------------------------------------------------- */

static void test_versions_are_content_hashes_and_system_version_the_sets(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_ADS);
    assert_true(ekg_xds_session_is_delta(s));
    /* Before any snapshot nothing is due. */
    xf_delta_request(s, &(req_t){.type_url = XF_CDS, .node_id = "envoy"});
    assert_false(ekg_xds_session_has_work(s));
    xf_delta_expect_none(x, s);

    xf_set(x, CL, "a b=2 c");
    xf_publish(x);
    assert_true(ekg_xds_session_has_work(s));
    const xf_delta_response_t *r = xf_delta_expect(x, s);
    assert_int_equal(r->type, CL);
    assert_string_equal(r->names, "a,b,c");
    assert_string_equal(r->removed, "");
    assert_string_equal(r->system_version, xf_version(x, CL));
    assert_int_not_equal(strlen(r->nonce), 0);
    for (const char *const *n = (const char *const[]){"a", "b", "c", NULL}; *n; n++)
        xf_delta_assert_carries(r, xf_find(x, CL, *n));
    /* Equal bytes, equal version: a resource built again (another replica, a restart) has the same one. */
    ekg_resource_t *again = xf_resource(CL, "b", "2");
    char v1[17], v2[17];
    assert_string_equal(xf_delta_version(again, v1), xf_delta_find(r, "b")->version);
    ekg_resource_unref(again);
    assert_string_not_equal(xf_delta_find(r, "a")->version, xf_delta_find(r, "b")->version);

    ekg_xds_type_status_t st = xf_status(s, CL);
    assert_true(st.subscribed);
    assert_true(st.wildcard);
    assert_int_equal(st.responses, 1);
    assert_string_equal(st.sent_version, r->system_version);
    assert_string_equal(st.acked_version, "");

    /* One change: that resource with its new version; the set's version moves. */
    xf_delta_ack(s, r);
    assert_string_equal(xf_status(s, CL).acked_version, r->system_version);
    xf_set(x, CL, "a b=3 c");
    xf_publish(x);
    const xf_delta_response_t *r2 = xf_delta_expect(x, s);
    assert_string_equal(r2->names, "b");
    assert_string_equal(r2->system_version, xf_version(x, CL));
    assert_string_not_equal(r2->system_version, r->system_version);
    assert_string_equal(xf_delta_find(r2, "b")->version, version_in_world(x, CL, "b", v2));
    assert_string_not_equal(xf_delta_find(r2, "b")->version, v1);
    assert_string_not_equal(r2->nonce, r->nonce);
}

/* --- D2: wildcard --------------------------------------------------------------------------------------- */

static void test_legacy_wildcard_gets_everything_and_what_is_added_or_removed(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_CDS);
    xf_set(x, CL, "a b c");
    xf_publish(x);
    const xf_delta_response_t *r = cds_handshake(x, s);
    assert_string_equal(r->names, "a,b,c");
    assert_true(xf_status(s, CL).wildcard);
    assert_int_equal(xf_status(s, CL).nnames, 0);

    xf_set(x, CL, "a b c d");
    xf_publish(x);
    r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "d");
    assert_string_equal(r->removed, "");
    xf_delta_ack(s, r);
    xf_set(x, CL, "a c d");
    xf_publish(x);
    r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "");
    assert_string_equal(r->removed, "b");
    xf_delta_ack(s, r);
    xf_delta_expect_none(x, s);
}

/* "*" explicitly, mixed with names: everything, and the names that do not exist as removed. */
static void test_star_mixed_with_names(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b c");
    xf_publish(x);
    xf_delta_request(s, &(req_t){.type_url = XF_CDS, .subscribe = "a * ghost a", .node_id = "envoy"});
    const xf_delta_response_t *r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "a,b,c");
    assert_string_equal(r->removed, "ghost");
    assert_true(xf_status(s, CL).wildcard);
    assert_int_equal(xf_status(s, CL).nnames, 2); /* a, ghost */
    xf_delta_ack(s, r);
    xf_delta_expect_none(x, s);
    /* ghost appears: sent once (it is named, and "*" covers it too). */
    xf_set(x, CL, "a b c ghost");
    xf_publish(x);
    r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "ghost");
    xf_delta_ack(s, r);
    xf_delta_expect_none(x, s);
}

/* A client that began as a legacy wildcard and later names a Cluster stays a wildcard subscriber (Envoy
 * counts its legacy first request as "*" and sends only the names it adds). */
static void test_legacy_wildcard_stays_after_naming(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b");
    xf_publish(x);
    cds_handshake(x, s);
    xf_delta_request(s, &(req_t){.type_url = XF_CDS, .subscribe = "ghost"});
    const xf_delta_response_t *r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "");
    assert_string_equal(r->removed, "ghost");
    xf_delta_ack(s, r);
    assert_true(xf_status(s, CL).wildcard);
    xf_set(x, CL, "a b c");
    xf_publish(x);
    assert_string_equal(xf_delta_expect(x, s)->names, "c");
}

static void test_unsubscribing_star_keeps_the_named_ones(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b");
    xf_publish(x);
    xf_delta_request(s, &(req_t){.type_url = XF_CDS, .subscribe = "* a", .node_id = "envoy"});
    const xf_delta_response_t *r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "a,b");
    xf_delta_ack(s, r);
    xf_delta_request(s, &(req_t){.type_url = XF_CDS, .unsubscribe = "*"});
    xf_delta_expect_none(x, s);
    assert_false(xf_status(s, CL).wildcard);
    assert_int_equal(xf_status(s, CL).nnames, 1);

    xf_set(x, CL, "a b=2 c");
    xf_publish(x);
    xf_delta_expect_none(x, s); /* b and c were only "*"'s */
    xf_set(x, CL, "a=2 b=2 c");
    xf_publish(x);
    r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "a");
    assert_string_equal(r->removed, "");
    xf_delta_ack(s, r);

    /* "*" again: every Cluster the client may lack (b changed meanwhile, c is new), at the current version;
     * the named a may come again (the server need not tell what "*" adds from what the client has). */
    xf_delta_request(s, &(req_t){.type_url = XF_CDS, .subscribe = "*"});
    r = xf_delta_expect(x, s);
    if (strcmp(r->names, "b,c") != 0 && strcmp(r->names, "a,b,c") != 0)
        fail_msg("subscribing \"*\" again sent [%s], not b and c (and perhaps a)", r->names);
    assert_string_equal(r->removed, "");
    for (const char *const *n = (const char *const[]){"a", "b", "c", NULL}; *n; n++)
        if (xf_delta_find(r, *n))
            xf_delta_assert_carries(r, xf_find(x, CL, *n));
    xf_delta_ack(s, r);
    xf_delta_expect_none(x, s);
}

/*
 * A name unsubscribed while "*" still covers it: the client cannot tell whether it still has the resource,
 * and the xDS protocol has the server answer (send it, or removed_resources); Envoy keeps it "ambiguous"
 * until then, go-control-plane resends it (its delta server's unsubscribe()).
 */
static void test_unsubscribing_a_name_star_covers_sends_it_again(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b");
    xf_publish(x);
    xf_delta_request(s, &(req_t){.type_url = XF_CDS, .subscribe = "* a", .node_id = "envoy"});
    xf_delta_ack(s, xf_delta_expect(x, s));
    xf_delta_request(s, &(req_t){.type_url = XF_CDS, .unsubscribe = "a"});
    const xf_delta_response_t *r = xf_delta_next(x, s);
    if (!r)
        fail_msg(
            "unsubscribing a, which \"*\" still covers, sent nothing: the client cannot tell it still has a");
    assert_string_equal(r->names, "a");
    assert_string_equal(r->removed, "");
}

/* --- D2, rule 9: subscriptions -------------------------------------------------------------------------- */

static void test_subscription_changes_at_any_time(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_EDS);
    xf_set(x, LA, "a b c");
    xf_publish(x);
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .subscribe = "a b b", .node_id = "envoy"});
    const xf_delta_response_t *r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "a,b");
    assert_false(xf_status(s, LA).wildcard);
    /* Subscribe and unsubscribe in the ACK. */
    xf_delta_request(s,
                     &(req_t){.type_url = XF_EDS, .nonce = r->nonce, .subscribe = "c", .unsubscribe = "a"});
    r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "c");
    assert_string_equal(r->removed, "");
    assert_int_equal(xf_status(s, LA).nnames, 2);
    xf_delta_ack(s, r);
    xf_delta_expect_none(x, s);
    /* a is not the client's any more; b is. */
    xf_set(x, LA, "a=2 b c");
    xf_publish(x);
    xf_delta_expect_none(x, s);
    xf_set(x, LA, "a=2 b=2 c");
    xf_publish(x);
    r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "b");
    xf_delta_ack(s, r);
    /* Subscribed again: sent again although unchanged since the client dropped it. */
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .subscribe = "a"});
    r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "a");
    xf_delta_assert_carries(r, xf_find(x, LA, "a"));
    xf_delta_ack(s, r);
    /* What the client has already: nothing. Unsubscribed and subscribed again in one request: sent. */
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .subscribe = "a b"});
    xf_delta_expect_none(x, s);
    /* Unsubscribing a name never subscribed changes nothing; unsubscribing all: nothing more. */
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .unsubscribe = "a b c never"});
    xf_delta_expect_none(x, s);
    assert_int_equal(xf_status(s, LA).nnames, 0);
    xf_set(x, LA, "a=3 b=3 c=3");
    xf_publish(x);
    xf_delta_expect_none(x, s);
}

/* Subscriptions that arrive before the first snapshot, or change before the first evaluation, count. */
static void test_subscriptions_before_the_first_snapshot(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_ADS);
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .subscribe = "a b", .node_id = "envoy"});
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .subscribe = "c", .unsubscribe = "b"});
    xf_delta_expect_none(x, s);
    xf_set(x, LA, "a b c");
    xf_publish(x);
    const xf_delta_response_t *r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "a,c");
    assert_string_equal(r->removed, "");
    xf_delta_ack(s, r);
    xf_delta_expect_none(x, s);
}

/* --- D4: initial_resource_versions ---------------------------------------------------------------------- */

static void test_initial_versions_current_not_resent_stale_resent_gone_removed(void **state)
{
    xf_t *x = *state;
    xf_set(x, CL, "a b=2 new");
    xf_set(x, LA, "a b=2");
    xf_publish(x);
    char va[17], vb_old[17], vla[17];
    version_in_world(x, CL, "a", va);
    version_in_world(x, LA, "a", vla);
    ekg_resource_t *old_b = xf_resource(CL, "b", NULL);
    xf_delta_version(old_b, vb_old);
    ekg_resource_unref(old_b);
    char initial[200], initial_la[200];
    snprintf(initial, sizeof(initial), "a=%s b=%s gone=%s", va, vb_old, va);
    snprintf(initial_la, sizeof(initial_la), "a=%s b=%s gone=%s", vla, vb_old, vla);

    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_ADS);
    xf_publish(x);
    /* Legacy wildcard with initial versions: b stale, new unknown to the client, gone gone; a current. */
    xf_delta_request(s, &(req_t){.type_url = XF_CDS, .initial = initial, .node_id = "envoy"});
    const xf_delta_response_t *r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "b,new");
    assert_string_equal(r->removed, "gone");
    xf_delta_ack(s, r);
    /* EDS, the first request of its type on the stream: names and versions. */
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .subscribe = "a b gone", .initial = initial_la});
    r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "b");
    assert_string_equal(r->removed, "gone");
    xf_delta_ack(s, r);
    xf_delta_expect_none(x, s);
    /* From then on, changes as usual. */
    xf_set(x, LA, "a=3 b=2");
    xf_publish(x);
    assert_string_equal(xf_delta_expect(x, s)->names, "a");
}

static void test_initial_versions_all_current_get_no_response(void **state)
{
    xf_t *x = *state;
    xf_set(x, CL, "a b");
    xf_set(x, LA, "a b");
    xf_publish(x);
    char va[17], vb[17], la[17], lb[17], initial[100], initial_la[100];
    snprintf(initial, sizeof(initial), "a=%s b=%s", version_in_world(x, CL, "a", va),
             version_in_world(x, CL, "b", vb));
    snprintf(initial_la, sizeof(initial_la), "a=%s b=%s", version_in_world(x, LA, "a", la),
             version_in_world(x, LA, "b", lb));
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_ADS);
    xf_delta_request(s, &(req_t){.type_url = XF_CDS, .subscribe = "*", .initial = initial, .node_id = "e"});
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .subscribe = "a b", .initial = initial_la});
    xf_publish(x);
    xf_delta_expect_none(x, s);
    assert_int_equal(xf_status(s, CL).responses, 0);
    /* ... and then exactly what changes. */
    xf_set(x, CL, "a b=2");
    xf_set(x, LA, "a=2 b");
    xf_publish(x);
    assert_string_equal(xf_delta_expect(x, s)->names, "b");
    /* a changed; b's Cluster changed, so its assignment goes again (cluster warming). */
    assert_string_equal(xf_delta_expect(x, s)->names, "a,b");
    xf_delta_expect_none(x, s);
}

/* initial_resource_versions belong to the first request of a type: later ones are not looked at. */
static void test_initial_versions_of_later_requests_are_not_used(void **state)
{
    xf_t *x = *state;
    xf_set(x, LA, "a b");
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_EDS);
    xf_publish(x);
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .subscribe = "a", .node_id = "e"});
    xf_delta_ack(s, xf_delta_expect(x, s));
    char vb[17], initial[40];
    snprintf(initial, sizeof(initial), "b=%s", version_in_world(x, LA, "b", vb));
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .subscribe = "b", .initial = initial});
    assert_string_equal(xf_delta_expect(x, s)->names, "b");
}

/* --- D3, rule 4: what changed --------------------------------------------------------------------------- */

#define MANY 1000 /* several of the set's 128-item pages */

/* "c0000=variant c0001=variant ..." with changed_variant for index changed (-1: none); variant NULL: names.
 */
static char *many_spec(const char *variant, int changed, const char *changed_variant)
{
    char *spec = ekg_xmalloc(MANY * 24);
    char *p = spec;
    for (int i = 0; i < MANY; i++)
        p += sprintf(p, "%sc%04d%s%s", i ? " " : "", i, variant ? "=" : "",
                     variant ? (i == changed ? changed_variant : variant) : "");
    return spec;
}

static void test_one_change_in_a_thousand_sends_one(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *eds = xf_delta_session(x, EKG_XDS_EDS);
    ekg_xds_session_t *cds = xf_delta_session(x, EKG_XDS_CDS);
    char *spec = many_spec("z1", -1, NULL), *names = many_spec(NULL, -1, NULL);
    xf_set(x, LA, spec);
    xf_set(x, CL, names);
    xf_publish(x);
    xf_delta_request(eds, &(req_t){.type_url = XF_EDS, .subscribe = names, .node_id = "e"});
    free(names);
    const xf_delta_response_t *r = xf_delta_expect(x, eds);
    assert_int_equal(r->n, MANY);
    xf_delta_ack(eds, r);
    assert_int_equal(cds_handshake(x, cds)->n, MANY);

    free(spec);
    spec = many_spec("z1", 500, "z2");
    xf_set(x, LA, spec);
    free(spec);
    xf_publish(x);
    r = xf_delta_expect(x, eds);
    assert_int_equal(r->n, 1);
    assert_string_equal(r->names, "c0500");
    xf_delta_assert_carries(r, xf_find(x, LA, "c0500"));
    xf_delta_ack(eds, r);
    xf_delta_expect_none(x, eds);
    xf_delta_expect_none(x, cds);
    /* A new and a removed Cluster: exactly those. */
    spec = many_spec(NULL, -1, NULL);
    char *more = ekg_xasprintf("%s d0000", spec + strlen("c0000 "));
    free(spec);
    xf_set(x, CL, more);
    free(more);
    xf_publish(x);
    r = xf_delta_expect(x, cds);
    assert_string_equal(r->names, "d0000");
    assert_string_equal(r->removed, "c0000");
    xf_delta_expect_none(x, eds);
}

/* A stream that missed snapshots gets the difference to the latest; a change undone is no change. */
static void test_stream_behind_several_snapshots_gets_the_difference(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b c");
    xf_publish(x);
    cds_handshake(x, s);
    xf_set(x, CL, "a=2 b c");
    xf_publish(x);
    xf_set(x, CL, "a b=2");
    xf_publish(x);
    xf_set(x, CL, "a b=2 d");
    xf_publish(x);
    const xf_delta_response_t *r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "b,d");
    assert_string_equal(r->removed, "c");
    assert_string_equal(r->system_version, xf_version(x, CL));
    xf_delta_expect_none(x, s);
}

/* --- D3: names that do not exist ------------------------------------------------------------------------ */

static void test_missing_name_is_removed_then_sent_when_it_appears(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_ADS);
    xf_set(x, LA, "a");
    xf_set(x, LI, "");
    xf_publish(x);
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .subscribe = "a late", .node_id = "e"});
    const xf_delta_response_t *r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "a");
    assert_string_equal(r->removed, "late");
    xf_delta_ack(s, r);
    xf_delta_request(s, &(req_t){.type_url = XF_LDS, .subscribe = "l"});
    r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "");
    assert_string_equal(r->removed, "l");
    xf_delta_ack(s, r);
    xf_delta_expect_none(x, s);
    /* An unrelated change does not repeat the does-not-exist answers. */
    xf_set(x, LA, "a=2");
    xf_publish(x);
    assert_string_equal(xf_delta_expect(x, s)->removed, "");
    xf_delta_expect_none(x, s);

    xf_set(x, LA, "a=2 late");
    xf_set(x, LI, "l");
    xf_publish(x);
    r = xf_delta_expect(x, s);
    assert_string_equal(r->type_url, XF_EDS);
    assert_string_equal(r->names, "late");
    r = xf_delta_expect(x, s);
    assert_string_equal(r->type_url, XF_LDS);
    assert_string_equal(r->names, "l");
    xf_delta_expect_none(x, s);
    /* Gone again. */
    xf_set(x, LA, "a=2");
    xf_publish(x);
    r = xf_delta_expect(x, s);
    assert_string_equal(r->names, "");
    assert_string_equal(r->removed, "late");
}

/* --- D5, D2, rules 2 and 3: ACK, NACK, nonces ----------------------------------------------------------- */

static void test_ack_and_nack_bookkeeping_nacked_version_not_resent(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b");
    xf_publish(x);
    const xf_delta_response_t *r1 = cds_handshake(x, s);
    ekg_xds_type_status_t st = xf_status(s, CL);
    assert_int_equal(st.acks, 1);
    assert_string_equal(st.acked_version, r1->system_version);

    xf_set(x, CL, "a=bad b");
    xf_publish(x);
    const xf_delta_response_t *r2 = xf_delta_expect(x, s);
    assert_string_equal(r2->names, "a");
    xf_delta_nack(s, r2, "cluster a: bogus");
    st = xf_status(s, CL);
    assert_int_equal(st.nacks, 1);
    assert_string_equal(st.nack_message, "cluster a: bogus");
    assert_string_equal(st.acked_version, r1->system_version); /* the client keeps what it had */
    assert_string_equal(st.sent_version, r2->system_version);
    xf_delta_expect_none(x, s);
    /* The same content published again is not resent; a change of b sends b only. */
    xf_set(x, CL, "a=bad b");
    xf_publish(x);
    xf_delta_expect_none(x, s);
    xf_set(x, CL, "a=bad b=2");
    xf_publish(x);
    const xf_delta_response_t *r3 = xf_delta_expect(x, s);
    assert_string_equal(r3->names, "b");
    xf_delta_ack(s, r3);
    st = xf_status(s, CL);
    assert_int_equal(st.acks, 2);
    assert_null(st.nack_message);
    /* a changes: sent. */
    xf_set(x, CL, "a=good b=2");
    xf_publish(x);
    assert_string_equal(xf_delta_expect(x, s)->names, "a");
}

static void test_stale_nonce_applies_subscriptions_but_is_no_ack(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_EDS);
    xf_set(x, LA, "a b c d");
    xf_publish(x);
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .subscribe = "a", .node_id = "e"});
    const xf_delta_response_t *r1 = xf_delta_expect(x, s);
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .nonce = r1->nonce, .subscribe = "b"});
    const xf_delta_response_t *r2 = xf_delta_expect(x, s);
    assert_string_equal(r2->names, "b");
    assert_int_equal(xf_status(s, LA).acks, 1);
    /* r1's nonce is stale: its NACK is none, its subscription changes count. */
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .nonce = r1->nonce, .subscribe = "c", .error = "late"});
    ekg_xds_type_status_t st = xf_status(s, LA);
    assert_int_equal(st.nacks, 0);
    assert_null(st.nack_message);
    assert_int_equal(st.acks, 1);
    const xf_delta_response_t *r3 = xf_delta_expect(x, s);
    assert_string_equal(r3->names, "c");
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .nonce = r2->nonce, .unsubscribe = "a"});
    assert_int_equal(xf_status(s, LA).acks, 1);
    xf_delta_expect_none(x, s);
    xf_set(x, LA, "a=2 b c d");
    xf_publish(x);
    xf_delta_expect_none(x, s);
    /* A nonce this stream never sent (an earlier stream's) likewise. */
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .nonce = "no-such-nonce", .subscribe = "d"});
    assert_int_equal(xf_status(s, LA).acks, 1);
    assert_string_equal(xf_delta_expect(x, s)->names, "d");
}

static void test_every_response_has_a_fresh_nonce(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a");
    xf_set(x, LA, "a");
    xf_publish(x);
    const char *nonces[4];
    const xf_delta_response_t *r = cds_handshake(x, s);
    nonces[0] = r->nonce;
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .subscribe = "a"});
    nonces[1] = xf_delta_expect(x, s)->nonce;
    xf_set(x, CL, "a=2");
    xf_publish(x);
    nonces[2] = xf_delta_expect(x, s)->nonce;
    nonces[3] = xf_delta_expect(x, s)->nonce; /* the warming resend of a's assignment */
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < i; k++)
            assert_string_not_equal(nonces[i], nonces[k]);
}

/* --- D6, rules 11 and 12: ADS ordering, cluster warming ------------------------------------------------- */

static void test_ads_cluster_before_load_assignment_and_warming(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a b");
    xf_set(x, LA, "a b");
    xf_set(x, LI, "");
    xf_publish(x);
    cds_handshake(x, s);
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .subscribe = "a b new"});
    const xf_delta_response_t *e1 = xf_delta_expect(x, s);
    assert_string_equal(e1->names, "a,b");
    assert_string_equal(e1->removed, "new");
    xf_delta_ack(s, e1);
    xf_delta_request(s, &(req_t){.type_url = XF_LDS, .subscribe = "new-l"});
    xf_delta_ack(s, xf_delta_expect(x, s));
    xf_delta_expect_none(x, s);

    /* A new Service: Cluster, then its assignment, then its Listener. */
    xf_set(x, CL, "a b new");
    xf_set(x, LA, "a b new");
    xf_set(x, LI, "new-l");
    xf_publish(x);
    const xf_delta_response_t *r = xf_delta_expect(x, s);
    assert_string_equal(r->type_url, XF_CDS);
    assert_string_equal(r->names, "new");
    r = xf_delta_expect(x, s);
    assert_string_equal(r->type_url, XF_EDS);
    assert_string_equal(r->names, "new");
    r = xf_delta_expect(x, s);
    assert_string_equal(r->type_url, XF_LDS);
    assert_string_equal(r->names, "new-l");
    xf_delta_expect_none(x, s);

    /* a's Cluster changes, its assignment does not: the Cluster, then the same assignment again. */
    xf_set(x, CL, "a=2 b new");
    xf_publish(x);
    r = xf_delta_expect(x, s);
    assert_string_equal(r->type_url, XF_CDS);
    assert_string_equal(r->names, "a");
    r = xf_delta_expect(x, s);
    assert_string_equal(r->type_url, XF_EDS);
    assert_string_equal(r->names, "a");
    assert_string_equal(xf_delta_find(r, "a")->version, xf_delta_find(e1, "a")->version);
    xf_delta_expect_none(x, s);

    /* Break after make: new removed while b's assignment changes; the Cluster removal goes last. */
    xf_set(x, CL, "a=2 b");
    xf_set(x, LA, "a b=2");
    xf_set(x, LI, "");
    xf_publish(x);
    r = xf_delta_expect(x, s);
    assert_string_equal(r->type_url, XF_EDS);
    assert_string_equal(r->names, "b");
    assert_string_equal(r->removed, "new");
    r = xf_delta_expect(x, s);
    assert_string_equal(r->type_url, XF_LDS);
    assert_string_equal(r->removed, "new-l");
    r = xf_delta_expect(x, s);
    assert_string_equal(r->type_url, XF_CDS);
    assert_string_equal(r->names, "");
    assert_string_equal(r->removed, "new");
    xf_delta_expect_none(x, s);
}

/* The resend is ADS's (one stream orders both types); an EDS stream of its own gets what changed only. */
static void test_no_warming_resend_on_the_eds_service(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *eds = xf_delta_session(x, EKG_XDS_EDS);
    xf_set(x, CL, "a");
    xf_set(x, LA, "a");
    xf_publish(x);
    xf_delta_request(eds, &(req_t){.type_url = XF_EDS, .subscribe = "a", .node_id = "e"});
    xf_delta_ack(eds, xf_delta_expect(x, eds));
    xf_set(x, CL, "a=2");
    xf_publish(x);
    xf_delta_expect_none(x, eds);
}

/* --- rule 5: the Node ----------------------------------------------------------------------------------- */

static void test_node_comes_from_the_first_request(void **state)
{
    xf_t *x = *state;
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_ADS);
    xf_set(x, CL, "a");
    xf_set(x, LA, "a b");
    xf_publish(x);
    xf_delta_request(s, &(req_t){.type_url = XF_CDS, .node_id = "first"});
    assert_string_equal(ekg_xds_session_node_id(s), "first");
    const xf_delta_response_t *r = xf_delta_expect(x, s);
    xf_delta_request(s, &(req_t){.type_url = XF_CDS, .nonce = r->nonce}); /* no node */
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .subscribe = "a", .node_id = "second"});
    assert_string_equal(ekg_xds_session_node_id(s), "first");
    assert_string_equal(xf_delta_expect(x, s)->names, "a");
    xf_delta_request(s, &(req_t){.type_url = XF_EDS, .subscribe = "b"});
    assert_string_equal(xf_delta_expect(x, s)->names, "b");
    /* A stream whose first request carries no Node works. */
    ekg_xds_session_t *t = xf_delta_session(x, EKG_XDS_CDS);
    xf_publish(x);
    xf_delta_request(t, &(req_t){.type_url = XF_CDS});
    assert_string_equal(ekg_xds_session_node_id(t), "");
    assert_string_equal(xf_delta_expect(x, t)->names, "a");
}

/* --- D1, rule 5: zone variants -------------------------------------------------------------------------- */

/* A localizer for the test: a client with a zone gets every load assignment in a variant naming its zone. */
static bool zone_key(const void *ctx, const ekg_place_t *place, char *buf, size_t size)
{
    (void)ctx;
    if (!place->zone[0])
        return false;
    snprintf(buf, size, "%s", place->zone);
    return true;
}

static ekg_resource_set_t *zone_build(void *ctx, ekg_resource_type_t type, const ekg_resource_set_t *base,
                                      const ekg_place_t *place, const ekg_resource_set_t *hint)
{
    (void)ctx;
    if (type != LA)
        return NULL;
    size_t n = ekg_resource_set_size(base);
    ekg_resource_t **items = ekg_xcalloc(n ? n : 1, sizeof(*items));
    for (size_t i = 0; i < n; i++)
        items[i] = xf_resource(LA, ekg_resource_name(ekg_resource_set_at(base, i)), place->zone);
    ekg_resource_set_t *set = NULL;
    ekg_err_t err = ekg_resource_set_new(type, items, n, hint, &set);
    for (size_t i = 0; i < n; i++)
        ekg_resource_unref(items[i]);
    free(items);
    return err == EKG_OK ? set : NULL;
}

static const char *zone_reason(const void *ctx, ekg_resource_type_t type, const char *name)
{
    (void)ctx;
    (void)name;
    return type == LA ? "test zones" : NULL;
}

static void zone_free(void *ctx)
{
    (void)ctx;
}

static const ekg_localizer_ops_t zone_ops = {zone_key, zone_build, zone_reason, zone_free};

static void publish_zoned(xf_t *x)
{
    ekg_snapshot_t *snap = xf_snapshot(x);
    assert_int_equal(ekg_snapshot_set_localizer(snap, &zone_ops, NULL, 1), EKG_OK);
    for (size_t i = 0; i < x->nsessions; i++)
        ekg_xds_session_on_snapshot(x->sessions[i], snap);
    ekg_snapshot_unref(snap);
}

static void test_zone_variant_version_is_the_variants_hash(void **state)
{
    xf_t *x = *state;
    xf_set(x, LA, "a b");
    ekg_xds_session_t *za = xf_delta_session(x, EKG_XDS_EDS), *za2 = xf_delta_session(x, EKG_XDS_ADS),
                      *zb = xf_delta_session(x, EKG_XDS_EDS), *none = xf_delta_session(x, EKG_XDS_EDS);
    xf_delta_request(za, &(req_t){.type_url = XF_EDS, .subscribe = "a", .node_id = "a1", .zone = "za"});
    xf_delta_request(za2, &(req_t){.type_url = XF_EDS, .subscribe = "a", .node_id = "a2", .zone = "za"});
    xf_delta_request(zb, &(req_t){.type_url = XF_EDS, .subscribe = "a", .node_id = "b1", .zone = "zb"});
    xf_delta_request(none, &(req_t){.type_url = XF_EDS, .subscribe = "a", .node_id = "n1"});
    publish_zoned(x);
    const xf_delta_response_t *ra = xf_delta_expect(x, za), *ra2 = xf_delta_expect(x, za2),
                              *rb = xf_delta_expect(x, zb), *rn = xf_delta_expect(x, none);
    ekg_resource_t *va = xf_resource(LA, "a", "za"), *vb = xf_resource(LA, "a", "zb");
    xf_delta_assert_carries(ra, va);
    xf_delta_assert_carries(ra2, va);
    xf_delta_assert_carries(rb, vb);
    xf_delta_assert_carries(rn, xf_find(x, LA, "a"));
    ekg_resource_unref(va);
    ekg_resource_unref(vb);
    assert_string_equal(ra->system_version, ra2->system_version);
    assert_string_not_equal(ra->system_version, rb->system_version);
    assert_string_not_equal(ra->system_version, rn->system_version);
    assert_string_equal(rn->system_version, xf_version(x, LA));
    /* The Node came once: a later subscription on the stream (no Node) still gets the zone's variant, and a
     * later request naming another zone changes nothing. */
    xf_delta_request(za, &(req_t){.type_url = XF_EDS, .nonce = ra->nonce, .subscribe = "b"});
    const xf_delta_response_t *r = xf_delta_expect(x, za);
    ekg_resource_t *vab = xf_resource(LA, "b", "za");
    xf_delta_assert_carries(r, vab);
    ekg_resource_unref(vab);
    xf_delta_request(
        za2,
        &(req_t){.type_url = XF_EDS, .nonce = ra2->nonce, .subscribe = "b", .node_id = "x", .zone = "zb"});
    r = xf_delta_expect(x, za2);
    vab = xf_resource(LA, "b", "za");
    xf_delta_assert_carries(r, vab);
    ekg_resource_unref(vab);
    /* A new snapshot with the same content: nothing for anyone. */
    publish_zoned(x);
    for (size_t i = 0; i < x->nsessions; i++)
        xf_delta_expect_none(x, x->sessions[i]);
}

/* --- D7: bad requests, malformed names, limits ---------------------------------------------------------- */

static void test_bad_requests(void **state)
{
    xf_t *x = *state;
    xf_set(x, CL, "a");
    ekg_xds_session_t *ads = xf_delta_session(x, EKG_XDS_ADS), *eds = xf_delta_session(x, EKG_XDS_EDS),
                      *cds = xf_delta_session(x, EKG_XDS_CDS);
    xf_publish(x);
    ekg_diag_t diag = {{0}};
    assert_int_equal(xf_delta_try_request(ads, &(req_t){.type_url = XF_SECRET, .subscribe = "c"}, &diag),
                     EKG_EINVAL);
    assert_non_null(strstr(diag.msg, XF_SECRET));
    assert_int_equal(xf_delta_try_request(ads, &(req_t){.subscribe = "a"}, &diag), EKG_EINVAL);
    assert_non_null(strstr(diag.msg, "type_url"));
    static const char garbage[] = "\x12\x05"
                                  "ab"; /* type_url, 5 bytes long, of which 2 came */
    assert_int_equal(ekg_xds_session_on_request(ads, garbage, sizeof(garbage) - 1, &diag), EKG_EPARSE);
    assert_non_null(strstr(diag.msg, "DeltaDiscoveryRequest"));
    for (int t = 0; t < EKG_RESOURCE__COUNT; t++)
        assert_false(xf_status(ads, (ekg_resource_type_t)t).subscribed);
    xf_delta_expect_none(x, ads);

    assert_int_equal(xf_delta_try_request(eds, &(req_t){.type_url = XF_CDS}, &diag), EKG_EINVAL);
    assert_non_null(strstr(diag.msg, XF_CDS));
    assert_false(xf_status(eds, CL).subscribed);
    xf_delta_expect_none(x, eds);
    /* An empty type_url on a single-type service is its type. */
    xf_delta_request(cds, &(req_t){.node_id = "e"});
    const xf_delta_response_t *r = xf_delta_expect(x, cds);
    assert_string_equal(r->type_url, XF_CDS);
    assert_string_equal(r->names, "a");
}

/*
 * A name that is not UTF-8 makes a request malformed (proto3 strings): upb refuses it in
 * resource_names_subscribe, but (grpc 1.51) not as a key of initial_resource_versions, from where it would be
 * echoed in removed_resources, a response libprotobuf (Envoy's parser) refuses to parse.
 */
static void test_names_not_utf8_are_eparse(void **state)
{
    xf_t *x = *state;
    xf_set(x, CL, "a");
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_ADS), *t = xf_delta_session(x, EKG_XDS_ADS);
    xf_publish(x);
    ekg_diag_t diag = {{0}};
    assert_int_equal(
        xf_delta_try_request(s, &(req_t){.type_url = XF_CDS, .subscribe = "* gone\x83\x8f"}, &diag),
        EKG_EPARSE);
    ekg_err_t err = xf_delta_try_request(t, &(req_t){.type_url = XF_CDS, .initial = "gone\x83\x8f=1"}, &diag);
    if (err == EKG_OK)
        fail_msg("initial_resource_versions naming \"gone\\x83\\x8f\" was accepted; the next response %s",
                 ekg_xds_session_has_work(t) ? "is due and would list it in removed_resources"
                                             : "is not due");
    assert_int_equal(err, EKG_EPARSE);
}

static void test_limits(void **state)
{
    xf_t *x = *state;
    xf_set(x, CL, "a b c d");
    xf_set(x, LA, "a b c d");
    xf_publish(x);
    ekg_diag_t diag = {{0}};
    ekg_xds_session_t *s = xf_delta_session(x, EKG_XDS_ADS);
    ekg_xds_session_set_limits(s, 3, 0);
    assert_int_equal(xf_delta_try_request(s, &(req_t){.type_url = XF_EDS, .subscribe = "a b c d"}, &diag),
                     EKG_ERANGE);
    assert_non_null(strstr(diag.msg, "--xds-max-names-per-request"));
    assert_int_equal(xf_delta_try_request(
                         s, &(req_t){.type_url = XF_EDS, .subscribe = "a b", .unsubscribe = "c d"}, &diag),
                     EKG_ERANGE);
    assert_int_equal(xf_delta_try_request(
                         s, &(req_t){.type_url = XF_EDS, .subscribe = "a", .initial = "b=1 c=2 d=3"}, &diag),
                     EKG_ERANGE);
    assert_false(xf_status(s, LA).subscribed);
    xf_delta_expect_none(x, s);

    /* Per stream: every type together, each name once, "*" none. */
    ekg_xds_session_t *t = xf_delta_session(x, EKG_XDS_ADS);
    ekg_xds_session_set_limits(t, 0, 4);
    xf_publish(x);
    xf_delta_request(t, &(req_t){.type_url = XF_CDS, .subscribe = "* a", .node_id = "e"});
    xf_delta_ack(t, xf_delta_expect(x, t));
    xf_delta_request(t, &(req_t){.type_url = XF_EDS, .subscribe = "a b b"});
    xf_delta_ack(t, xf_delta_expect(x, t));
    xf_delta_request(t, &(req_t){.type_url = XF_EDS, .subscribe = "b c"});
    xf_delta_ack(t, xf_delta_expect(x, t));
    assert_int_equal(xf_delta_try_request(t, &(req_t){.type_url = XF_EDS, .subscribe = "d"}, &diag),
                     EKG_ERANGE);
    assert_non_null(strstr(diag.msg, "--xds-max-names-per-stream"));
    assert_int_equal(xf_status(t, LA).nnames, 3);
    xf_delta_expect_none(x, t);
}

int main(void)
{
    ekg_log_set_level(EKG_LOG_ERROR);
#define T(fn) cmocka_unit_test_setup_teardown(fn, xf_setup, xf_teardown)
    const struct CMUnitTest tests[] = {
        T(test_versions_are_content_hashes_and_system_version_the_sets),
        T(test_legacy_wildcard_gets_everything_and_what_is_added_or_removed),
        T(test_star_mixed_with_names),
        T(test_legacy_wildcard_stays_after_naming),
        T(test_unsubscribing_star_keeps_the_named_ones),
        T(test_unsubscribing_a_name_star_covers_sends_it_again),
        T(test_subscription_changes_at_any_time),
        T(test_subscriptions_before_the_first_snapshot),
        T(test_initial_versions_current_not_resent_stale_resent_gone_removed),
        T(test_initial_versions_all_current_get_no_response),
        T(test_initial_versions_of_later_requests_are_not_used),
        T(test_one_change_in_a_thousand_sends_one),
        T(test_stream_behind_several_snapshots_gets_the_difference),
        T(test_missing_name_is_removed_then_sent_when_it_appears),
        T(test_ack_and_nack_bookkeeping_nacked_version_not_resent),
        T(test_stale_nonce_applies_subscriptions_but_is_no_ack),
        T(test_every_response_has_a_fresh_nonce),
        T(test_ads_cluster_before_load_assignment_and_warming),
        T(test_no_warming_resend_on_the_eds_service),
        T(test_node_comes_from_the_first_request),
        T(test_zone_variant_version_is_the_variants_hash),
        T(test_bad_requests),
        T(test_names_not_utf8_are_eparse),
        T(test_limits),
    };
#undef T
    return cmocka_run_group_tests_name("delta", tests, NULL, NULL);
}
