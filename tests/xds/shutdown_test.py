"""tests/xds/shutdown_test.py: how `ekglue serve` stops (src/xds/server.c ekg_xds_server_stop, src/cli/serve.c).

What a client and an orchestrator count on when a replica is stopped (docs/internals/server.md, "Stop"):
- every open stream, whatever its service and however many there are, ends with UNAVAILABLE "server shutting
  down" (so clients reconnect to another replica at once), never with a reset connection ("Socket closed");
- the process exits 0, also when SIGTERM/SIGINT arrive again while it is stopping (kubelet, an impatient
  operator, a test's tearDown), and also when a client that does not read holds the stop up until its bound;
- a quiet period after a burst of sends (when the server returns freed heap pages to the system) does not
  disturb later sends.

Each test starts its own server on 127.0.0.1 (port 0), stops it with SIGTERM and checks the exit status and the
log (LogOnFailure prints ekglue's whole stderr when a test fails). Every wait is bounded.
Run by ctest with EKGLUE, EKG_SOURCE_DIR and EKG_BUILD_DIR set; /usr/bin/python3.
"""
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xdsclient as xc  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import skips  # noqa: E402

SERVICE = """\
---
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


class ShutdownTest(xc.LogOnFailure, unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ekglue-shutdown-")
        self.demo = os.path.join(self.dir, "cluster.yaml")
        shutil.copy(os.path.join(xc.SOURCE_DIR, "deploy", "demo", "cluster.yaml"), self.demo)
        self.channels = []
        self.addCleanup(shutil.rmtree, self.dir, True)

    def tearDown(self):
        for ch in self.channels:
            ch.close()

    def channel(self, server):
        ch = server.channel()
        self.channels.append(ch)
        return ch

    def assert_unavailable(self, stream, what, server):
        code = stream.code(timeout=8)
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, "%s ended with %s (%s)%s" % (
            what, code, stream.error.details() if stream.error else "-", xc.failure_log(server)))
        self.assertEqual(stream.error.details(), "server shutting down", what + xc.failure_log(server))

    def test_every_stream_gets_unavailable(self):
        """150 streams over 3 connections, on ADS, CDS and EDS, plus health watches: each gets its status."""
        server = xc.EkglueServer([self.demo], log_level="info")
        clusters, load_assignments = xc.dump_names([self.demo])
        streams = []
        for c in range(3):
            ch = self.channel(server)
            for i in range(50):
                method = (xc.ADS, xc.CDS, xc.EDS)[i % 3]
                s = xc.XdsStream(ch, method)
                if method == xc.EDS:
                    s.send(xc.CLA_URL, names=load_assignments[:2], node_id="n-%d-%d" % (c, i))
                else:
                    s.send(xc.CLUSTER_URL, node_id="n-%d-%d" % (c, i))
                streams.append((method, s))
        for method, s in streams:
            self.assertIsNotNone(s.recv(timeout=10), "no first response on " + method + xc.failure_log(server))
        watch = xc.Watch(self.channel(server), "")
        self.assertEqual(watch.next(), xc.SERVING)
        t0 = time.monotonic()
        server.signal(signal.SIGTERM)
        for i, (method, s) in enumerate(streams):
            self.assert_unavailable(s, "stream %d (%s)" % (i, method), server)
        self.assertEqual(watch.next(), xc.NOT_SERVING)
        self.assertTrue(watch.ended.wait(5))
        self.assertEqual(watch.error.code(), grpc.StatusCode.UNAVAILABLE)
        rc = server.wait(10)
        self.assertEqual(rc, 0, server.status() + xc.failure_log(server))
        self.assertLess(time.monotonic() - t0, 5.0, "150 ready streams must not hold the stop up")
        self.assertIsNotNone(server.wait_log(r"xDS server stopped streams_at_stop=15[01]", timeout=1),
                             xc.failure_log(server))
        xc.check_clean_exit(self, server)

    def test_repeated_signals_while_stopping_exit_0(self):
        """A client that does not read keeps the stop going until its bound (5 s); SIGTERM and SIGINT sent
        again meanwhile must neither kill the process by the signal nor cut the stop short."""
        big = os.path.join(self.dir, "big.yaml")
        with open(big, "w") as f:
            for i in range(20000):  # ~2 MB of Clusters: more than flow control lets through unread
                f.write(SERVICE % {"name": "svc-%05d" % i})
        server = xc.EkglueServer([self.demo, big], log_level="info", start_timeout=60)  # 20,000 Services
        # Its own connection (a local subchannel pool) with a fixed 64 KiB window (no BDP probing): channels to
        # one address otherwise share a connection whose window the reading stream has grown past 2 MB.
        ch = grpc.insecure_channel(server.address, options=[("grpc.use_local_subchannel_pool", 1),
                                                            ("grpc.http2.bdp_probe", 0)])
        self.channels.append(ch)
        stuck = xc.XdsStream(ch, read=False)
        stuck.send(xc.CLUSTER_URL, node_id="stuck")
        ok = xc.XdsStream(self.channel(server))
        ok.send(xc.CLUSTER_URL, node_id="ok")
        self.assertIsNotNone(ok.recv(timeout=10), xc.failure_log(server))
        time.sleep(0.3)  # the stuck stream's send is in flight and blocked by flow control
        mark = server.nlines()
        server.signal(signal.SIGTERM)
        self.assert_unavailable(ok, "the reading client's stream", server)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
            time.sleep(0.2)
            self.assertTrue(server.running(), "stopped before its bound: " + server.status() +
                            xc.failure_log(server))
            server.signal(sig)
        rc = server.wait(15)
        self.assertEqual(rc, 0, server.status() + xc.failure_log(server))
        self.assertIsNotNone(server.wait_log(r"not drained within \d+ ms", timeout=1, start=mark),
                             "the stuck client should have held the stop up to its bound" +
                             xc.failure_log(server))
        stuck.cancel()
        xc.check_clean_exit(self, server)

    def test_sends_after_a_quiet_period(self):
        """After a burst of sends and a quiet second (the server then returns freed heap pages to the system,
        except in sanitizer builds), a change is still pushed to every stream, three times over."""
        extra = os.path.join(self.dir, "extra.yaml")
        with open(extra, "w") as f:
            f.write(SERVICE % {"name": "v0"})
        server = xc.EkglueServer([self.demo, extra], log_level="debug")
        ch = self.channel(server)
        streams = [xc.XdsStream(ch) for _ in range(20)]
        for i, s in enumerate(streams):
            s.send(xc.CLUSTER_URL, node_id="q%d" % i)
        for s in streams:
            resp = s.recv(timeout=10)
            self.assertIsNotNone(resp, xc.failure_log(server))
            s.ack(resp)
        for k in range(1, 4):
            time.sleep(1.3)  # longer than the server's quiet period (1 s)
            with open(extra + ".tmp", "w") as f:
                f.write(SERVICE % {"name": "v%d" % k})
            os.replace(extra + ".tmp", extra)
            for i, s in enumerate(streams):
                resp = s.recv(timeout=5)
                self.assertIsNotNone(resp, "round %d: stream %d got no push%s" % (k, i, xc.failure_log(server)))
                self.assertIn("shop:v%d:http" % k, xc.resource_names(resp))
                s.ack(resp)
        for s in streams:
            s.cancel()
        xc.check_clean_exit(self, server)


if __name__ == "__main__":
    skips.main()
