"""tests/xds/demo_test.py: `ekglue serve` with no objects and no Kubernetes API serves the embedded demo cluster.

This is what the README's run command does. The clusters and load assignments served over ADS must be exactly
what `ekglue dump` makes of deploy/demo/cluster.yaml, and a proxyless-gRPC listener of the demo must be there.
"""
import os
import sys
import unittest

import xdsclient as xc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import skips  # noqa: E402


class DemoTest(xc.LogOnFailure, unittest.TestCase):
    def test_embedded_demo_is_served(self):
        demo = os.path.join(xc.SOURCE_DIR, "deploy", "demo", "cluster.yaml")
        want_clusters, want_las = xc.dump_names([demo])
        self.assertGreater(len(want_clusters), 5)
        with xc.EkglueServer(objects=[], log_level="info") as server:
            self.assertIsNotNone(server.wait_log(r"serving the embedded demo cluster", timeout=5))
            stream = xc.XdsStream(server.channel())
            stream.send(xc.CLUSTER_URL, node_id="demo-test")
            resp = stream.recv()
            self.assertIsNotNone(resp, "no CDS response")
            self.assertEqual(sorted(xc.resource_names(resp)), sorted(want_clusters))
            stream.ack(resp)
            stream.send(xc.CLA_URL, names=want_las)
            resp = stream.recv()
            self.assertIsNotNone(resp, "no EDS response")
            self.assertEqual(sorted(xc.resource_names(resp)), sorted(want_las))
            # A proxyless-gRPC listener for the first TCP cluster "<ns>:<svc>:<port>" -> "<svc>.<ns>:<port>".
            ns, svc, port = next(c.split(":")[:3] for c in want_clusters if not c.endswith(":udp"))
            stream.send(xc.LISTENER_URL, names=["%s.%s:%s" % (svc, ns, port)])
            resp = stream.recv()
            self.assertIsNotNone(resp, "no LDS response")
            self.assertEqual(xc.resource_names(resp), ["%s.%s:%s" % (svc, ns, port)])
            stream.cancel()


if __name__ == "__main__":
    skips.main()
