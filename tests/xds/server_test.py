"""tests/xds/server_test.py: `ekglue serve` end to end over gRPC (src/xds/server.c, src/cli/serve.c).

Each test starts its own server on 127.0.0.1 (port 0) with the demo cluster (deploy/demo/cluster.yaml) copied to
a temporary directory plus a small file the tests edit, and kills it at the end. Every wait is bounded. The
expected resource names come from `ekglue dump`, the responses are decoded with Python's protobuf.

Run by ctest with EKGLUE, EKG_SOURCE_DIR and EKG_BUILD_DIR set; /usr/bin/python3.
"""
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xdsclient as xc  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import skips  # noqa: E402

EXTRA_SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: %(name)s
  namespace: shop
spec:
  ports:
  - name: http
    port: 80
    protocol: TCP
"""


class ServerTest(xc.LogOnFailure, unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ekglue-xds-")
        self.demo = os.path.join(self.dir, "cluster.yaml")
        shutil.copy(os.path.join(xc.SOURCE_DIR, "deploy", "demo", "cluster.yaml"), self.demo)
        self.extra = os.path.join(self.dir, "extra.yaml")
        self.write_extra("extra")
        self.clusters, self.load_assignments = xc.dump_names([self.demo, self.extra])
        self.server = xc.EkglueServer([self.demo, self.extra])
        self.channels = []

    def tearDown(self):
        for ch in self.channels:
            ch.close()
        # Every test ends with a graceful stop: exit 0, and (in sanitizer builds) no report, leaks included.
        self.server.stop(timeout=15)
        shutil.rmtree(self.dir, ignore_errors=True)
        xc.check_clean_exit(self, self.server)

    def write_extra(self, name, replace=True):
        """Writes the editable file: by rename-replace (as most editors do) or in place."""
        text = EXTRA_SERVICE % {"name": name}
        if replace:
            tmp = self.extra + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, self.extra)
        else:
            with open(self.extra, "w") as f:
                f.write(text)

    def channel(self):
        ch = self.server.channel()
        self.channels.append(ch)
        return ch

    def ads_cds(self, ch=None, node_id="test-node"):
        """An ADS stream with a wildcard CDS request answered; returns (stream, response)."""
        s = xc.XdsStream(ch or self.channel())
        s.send(xc.CLUSTER_URL, node_id=node_id)
        resp = s.recv(timeout=5)
        self.assertIsNotNone(resp, "no CDS response\n" + self.server.log())
        return s, resp

    # --- health ------------------------------------------------------------------------------------------------

    def test_health_check(self):
        ch = self.channel()
        # serve sets SERVING once the first snapshot is published, before it accepts anything.
        self.assertEqual(xc.health_check(ch, ""), xc.SERVING)
        self.assertEqual(xc.health_check(ch, "envoy.service.discovery.v3.AggregatedDiscoveryService"), xc.SERVING)
        with self.assertRaises(grpc.RpcError) as ctx:
            xc.health_check(ch, "no.such.Service")
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_health_watch_follows_shutdown(self):
        ch = self.channel()
        w = xc.Watch(ch, "")
        self.assertEqual(w.next(), xc.SERVING)
        unknown = xc.Watch(ch, "no.such.Service")
        self.assertEqual(unknown.next(), xc.SERVICE_UNKNOWN)
        self.assertIsNone(unknown.next(timeout=0.3), "unknown-service Watch must stay open without updates")
        self.assertFalse(unknown.ended.is_set())
        # On SIGTERM the server reports NOT_SERVING to watchers, then ends the streams with UNAVAILABLE.
        self.server.signal(signal.SIGTERM)
        self.assertEqual(w.next(), xc.NOT_SERVING)
        self.assertTrue(w.ended.wait(5))
        self.assertEqual(w.error.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.server.wait(10), 0)

    # --- xDS ---------------------------------------------------------------------------------------------------

    def test_ads_wildcard_cds(self):
        s, resp = self.ads_cds()
        self.assertEqual(resp.type_url, xc.CLUSTER_URL)
        self.assertEqual(sorted(xc.resource_names(resp)), sorted(self.clusters))
        self.assertIn("shop:extra:http", xc.resource_names(resp))
        self.assertTrue(resp.version_info)
        self.assertTrue(resp.nonce)
        s.cancel()

    def test_cds_service(self):
        s = xc.XdsStream(self.channel(), xc.CDS)
        s.send(xc.CLUSTER_URL, node_id="cds-only")
        resp = s.recv()
        self.assertIsNotNone(resp)
        self.assertEqual(sorted(xc.resource_names(resp)), sorted(self.clusters))
        s.cancel()

    def test_eds_named(self):
        name = "shop:cart:grpc"
        self.assertIn(name, self.load_assignments)
        for method in (xc.ADS, xc.EDS):
            s = xc.XdsStream(self.channel(), method)
            s.send(xc.CLA_URL, names=[name], node_id="eds")
            resp = s.recv()
            self.assertIsNotNone(resp, method + "\n" + self.server.log())
            self.assertEqual(resp.type_url, xc.CLA_URL)
            self.assertEqual(xc.resource_names(resp), [name])
            cla = xc.unpack(resp.resources[0], "envoy.config.endpoint.v3.ClusterLoadAssignment")
            self.assertGreater(len(cla.endpoints), 0)
            s.cancel()

    def test_ack_gets_no_response(self):
        s, resp = self.ads_cds()
        s.ack(resp)
        self.assertIsNone(s.recv(timeout=0.5), "an ACK must not be answered")
        s.cancel()

    def test_wrong_type_on_service_is_invalid_argument(self):
        s = xc.XdsStream(self.channel(), xc.EDS)
        s.send(xc.CLUSTER_URL, node_id="confused")
        self.assertEqual(s.code(), grpc.StatusCode.INVALID_ARGUMENT)
        g = xc.XdsStream(self.channel(), xc.ADS, raw=True)
        g.send_raw(b"\xff\xff\xff")
        self.assertEqual(g.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_map_entry_upb_mishandles_is_refused_and_server_keeps_serving(self):
        # resource_locators { dynamic_parameters { <field 7> } }: a map entry with a field besides its key and value,
        # which made upb 1.51 abort the whole process (found by tests/fuzz/session_fuzz.c; src/proto/wire.c).
        g = xc.XdsStream(self.channel(), xc.ADS, raw=True)
        g.send_raw(b"\x3a\x12\x12\x03\x3a\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x68\x0a\x02\x0a\x00")
        self.assertEqual(g.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertTrue(self.server.running(), "ekglue died:\n" + self.server.log())
        _, resp = self.ads_cds(node_id="after-hostile")
        self.assertEqual(sorted(xc.resource_names(resp)), sorted(self.clusters))

    def test_unknown_method_is_unimplemented(self):
        rpc = self.channel().unary_unary("/no.such.Service/Method")
        with self.assertRaises(grpc.RpcError) as ctx:
            rpc(b"", timeout=5)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

    def test_half_close_ends_with_invalid_argument(self):
        """Not OK: grpc 1.51 cannot tell a half-close from a last request cut short (docs/internals/server.md,
        "Limits"); tests/xds/hostile_test.py sends the truncated one."""
        s, _ = self.ads_cds()
        s.half_close()
        self.assertEqual(s.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("half-close", s.error.details())

    def test_file_edit_pushes_update(self):
        s, resp = self.ads_cds()
        s.ack(resp)
        # rename-replace, as editors do
        t0 = time.monotonic()
        self.write_extra("extra2")
        resp2 = s.recv(timeout=1.0)
        self.assertIsNotNone(resp2, "no push within 1 s\n" + self.server.log())
        self.assertLess(time.monotonic() - t0, 1.0)
        names = xc.resource_names(resp2)
        self.assertIn("shop:extra2:http", names)
        self.assertNotIn("shop:extra:http", names)
        self.assertNotEqual(resp2.version_info, resp.version_info)
        s.ack(resp2)
        # in place
        self.write_extra("extra3", replace=False)
        resp3 = s.recv(timeout=1.0)
        self.assertIsNotNone(resp3, "no push within 1 s\n" + self.server.log())
        self.assertIn("shop:extra3:http", xc.resource_names(resp3))
        s.ack(resp3)
        # same content again: same versions, no push
        self.write_extra("extra3")
        self.assertIsNone(s.recv(timeout=0.5))
        s.cancel()

    def test_bad_file_keeps_state(self):
        s, resp = self.ads_cds()
        s.ack(resp)
        mark = self.server.nlines()
        with open(self.extra + ".tmp", "w") as f:
            f.write("{ this is: [not yaml\n")
        os.replace(self.extra + ".tmp", self.extra)
        self.assertIsNotNone(self.server.wait_log("keeping the previous state", timeout=3, start=mark),
                             self.server.log())
        self.assertIsNone(s.recv(timeout=0.3), "a bad file must not change what is served")
        self.write_extra("fixed")
        resp2 = s.recv(timeout=1.0)
        self.assertIsNotNone(resp2)
        self.assertIn("shop:fixed:http", xc.resource_names(resp2))
        s.cancel()

    def test_sighup_reloads(self):
        s, resp = self.ads_cds()
        s.ack(resp)
        mark = self.server.nlines()
        self.server.signal(signal.SIGHUP)
        self.assertIsNotNone(self.server.wait_log("SIGHUP", timeout=3, start=mark))
        self.assertIsNone(s.recv(timeout=0.5), "an unchanged reload must not push")
        s.cancel()

    def test_sigterm_unavailable_and_exit_0(self):
        s, resp = self.ads_cds()
        s.ack(resp)
        t0 = time.monotonic()
        self.server.signal(signal.SIGTERM)
        self.assertEqual(s.code(timeout=5), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(s.error.details(), "server shutting down")
        self.assertEqual(self.server.wait(10), 0, self.server.log())
        self.assertLess(time.monotonic() - t0, 6.0)

    def test_disconnect_does_not_disturb_others(self):
        ch1, ch2 = self.channel(), self.channel()
        a, ra = self.ads_cds(ch1, "a")
        b, rb = self.ads_cds(ch2, "b")
        a.ack(ra)
        b.ack(rb)
        # a third stream goes away right after asking, before (or while) its response is sent
        c = xc.XdsStream(ch1)
        c.send(xc.CLUSTER_URL, node_id="c")
        c.cancel()
        a.cancel()
        ch1.close()
        self.write_extra("after-disconnect")
        rb2 = b.recv(timeout=2)
        self.assertIsNotNone(rb2, self.server.log())
        self.assertIn("shop:after-disconnect:http", xc.resource_names(rb2))
        b.cancel()

    def test_stuck_client_does_not_block_others(self):
        # ~2 MB of Clusters: more than HTTP/2 flow control lets through to a client that does not read.
        big = os.path.join(self.dir, "big.yaml")
        with open(big, "w") as f:
            for i in range(20000):
                f.write("---\n" + EXTRA_SERVICE % {"name": "svc-%05d" % i})
        # 20,000 Services take seconds to load in a sanitizer build on a busy machine: a longer bound to start.
        with xc.EkglueServer([self.demo, self.extra, big], log_level="info", start_timeout=60) as server:
            stuck = xc.XdsStream(server.channel(), read=False)
            stuck.send(xc.CLUSTER_URL, node_id="stuck")
            time.sleep(0.3)
            ok = xc.XdsStream(server.channel())
            ok.send(xc.CLUSTER_URL, node_id="ok")
            r = ok.recv(timeout=10)
            self.assertIsNotNone(r, server.log()[-3000:])
            self.assertGreater(len(r.resources), 20000)
            ok.ack(r)
            for name in ("stuck1", "stuck2"):
                mark = server.nlines()
                with open(self.extra + ".tmp", "w") as f:
                    f.write(EXTRA_SERVICE % {"name": name})
                os.replace(self.extra + ".tmp", self.extra)
                # Reading and translating 20,000 Services takes seconds in a sanitizer build on a busy machine:
                # wait for the publish itself, then the push to the reading client must follow promptly.
                self.assertIsNotNone(server.wait_log(r"objects loaded services=", timeout=60, start=mark),
                                     "no reload" + xc.failure_log(server))
                r = ok.recv(timeout=5)
                self.assertIsNotNone(r, "publisher blocked by a stuck client?" + xc.failure_log(server))
                self.assertIn("shop:%s:http" % name, xc.resource_names(r))
                ok.ack(r)
            stuck.cancel()  # goes away with a send in flight
            ok.cancel()
            xc.check_clean_exit(self, server)

    def test_200_concurrent_streams(self):
        n = 200
        chans = [self.channel() for _ in range(4)]
        streams = []
        for i in range(n):
            s = xc.XdsStream(chans[i % len(chans)])
            s.send(xc.CLUSTER_URL, node_id="n%d" % i)
            streams.append(s)
        deadline = time.monotonic() + 20
        got = 0
        versions = set()
        for s in streams:
            r = s.recv(timeout=max(0.1, deadline - time.monotonic()))
            if r is not None and len(r.resources) == len(self.clusters):
                got += 1
                versions.add(r.version_info)
                s.ack(r)
        self.assertEqual(got, n, self.server.log()[-3000:])
        self.assertEqual(len(versions), 1)
        # and all of them get the next update
        self.write_extra("fanout")
        got = 0
        deadline = time.monotonic() + 20
        for s in streams:
            r = s.recv(timeout=max(0.1, deadline - time.monotonic()))
            if r is not None and "shop:fanout:http" in xc.resource_names(r):
                got += 1
        self.assertEqual(got, n)
        for s in streams:
            s.cancel()


if __name__ == "__main__":
    skips.main()
