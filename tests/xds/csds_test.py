"""tests/xds/csds_test.py: envoy.service.status.v3.ClientStatusDiscoveryService end to end (src/xds/csds.c and
its transport in src/xds/server.c).

Each test starts `ekglue serve` with the demo cluster (deploy/demo/cluster.yaml), connects xDS clients over raw
ADS streams (one that ACKs, one that NACKs), then asks CSDS with raw unary_unary / stream_stream calls whose
messages are built from the build's descriptor sets, as xdsclient.py does. Checked: one ClientConfig per client
with its node; per resource ACKED/SYNCED or NACKED/ERROR (with the client's message and the rejected version),
the version sent, xds_config decoding to the resource of that name; REQUESTED for names not sent; node_matchers
(exact, prefix, unsupported ones refused); StreamClientStatus answers every request in order; the CSDS
stream is ended by the server's stop like the xDS ones; the debug port's /clients (ekg_xds_server_clients).
Every wait is bounded.

Run by ctest with EKGLUE, EKG_SOURCE_DIR and EKG_BUILD_DIR set; /usr/bin/python3.
"""
import os
import queue
import shutil
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

CSDS_FETCH = "/envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus"
CSDS_STREAM = "/envoy.service.status.v3.ClientStatusDiscoveryService/StreamClientStatus"

# envoy.service.status.v3.ConfigStatus and envoy.admin.v3.ClientResourceStatus
SYNCED, NOT_SENT, STALE, ERROR = 1, 2, 3, 4
REQUESTED, DOES_NOT_EXIST, ACKED, NACKED = 1, 2, 3, 4


def ClientStatusRequest():
    return xc.message_class("envoy.service.status.v3.ClientStatusRequest")()


def response_class():
    return xc.message_class("envoy.service.status.v3.ClientStatusResponse")


def request(node_id=None, prefix=None):
    req = ClientStatusRequest()
    if node_id is not None:
        req.node_matchers.add().node_id.exact = node_id
    if prefix is not None:
        req.node_matchers.add().node_id.prefix = prefix
    return req


class CsdsTest(xc.LogOnFailure, unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ekglue-csds-")
        self.demo = os.path.join(self.dir, "cluster.yaml")
        shutil.copy(os.path.join(xc.SOURCE_DIR, "deploy", "demo", "cluster.yaml"), self.demo)
        self.clusters, self.load_assignments = xc.dump_names([self.demo])
        # No debug port: its fixed default would collide with other servers running at the same time.
        self.server = xc.EkglueServer([self.demo], extra_args=["--debug-listen", "off"])
        self.channels = []

    def tearDown(self):
        for ch in self.channels:
            ch.close()
        self.server.stop(timeout=15)
        shutil.rmtree(self.dir, ignore_errors=True)
        xc.check_clean_exit(self, self.server)

    def channel(self):
        ch = self.server.channel()
        self.channels.append(ch)
        return ch

    def fetch(self, req=None, timeout=5.0):
        rpc = self.channel().unary_unary(CSDS_FETCH, request_serializer=lambda m: m.SerializeToString(),
                                         response_deserializer=response_class().FromString)
        return rpc(req if req is not None else ClientStatusRequest(), timeout=timeout)

    def fetch_until(self, pred, req=None, timeout=5.0):
        """Fetches until pred(response) holds (the server records ACKs asynchronously); returns the last one."""
        deadline = time.monotonic() + timeout
        while True:
            resp = self.fetch(req)
            if pred(resp) or time.monotonic() > deadline:
                return resp
            time.sleep(0.05)

    @staticmethod
    def by_node(resp):
        return {c.node.id: c for c in resp.config}

    @staticmethod
    def entries(config, type_url):
        return {g.name: g for g in config.generic_xds_configs if g.type_url == type_url}

    def connect(self, node_id, zone=""):
        """An ADS stream with a wildcard CDS request answered; returns (stream, CDS response)."""
        s = xc.XdsStream(self.channel())
        req = xc.DiscoveryRequest()
        req.type_url = xc.CLUSTER_URL
        req.node.id = node_id
        req.node.cluster = "test-cluster"
        req.node.locality.zone = zone
        req.node.user_agent_name = "csds-test"
        req.node.user_agent_version = "1.0"
        s.send_raw(req)
        resp = s.recv(timeout=5)
        self.assertIsNotNone(resp, "no CDS response\n" + self.server.log())
        return s, resp

    # ------------------------------------------------------------------------------------------------------------

    def test_ack_and_nack_per_client(self):
        acker, cds_a = self.connect("acker", zone="zone-a")
        acker.ack(cds_a)
        eds_names = sorted(self.load_assignments)[:2]
        acker.send(xc.CLA_URL, names=eds_names + ["no-such-cluster"])
        eds = acker.recv(timeout=5)
        self.assertIsNotNone(eds, self.server.log())
        acker.send(xc.CLA_URL, names=eds_names + ["no-such-cluster"], version=eds.version_info, nonce=eds.nonce)

        nacker, cds_n = self.connect("nacker")
        nacker.send(xc.CLUSTER_URL, version="", nonce=cds_n.nonce, error="cluster rejected by the test")

        def settled(resp):
            nodes = self.by_node(resp)
            if set(nodes) != {"acker", "nacker"}:
                return False
            a = self.entries(nodes["acker"], xc.CLUSTER_URL)
            la = self.entries(nodes["acker"], xc.CLA_URL)
            n = self.entries(nodes["nacker"], xc.CLUSTER_URL)
            return (a and n and all(g.client_status == ACKED for g in a.values()) and
                    all(g.client_status == NACKED for g in n.values()) and
                    all(la.get(name) is not None and la[name].client_status == ACKED for name in eds_names))

        resp = self.fetch_until(settled)
        self.assertTrue(settled(resp), str(resp))
        nodes = self.by_node(resp)

        a = nodes["acker"]
        self.assertEqual(a.node.cluster, "test-cluster")
        self.assertEqual(a.node.locality.zone, "zone-a")
        self.assertEqual(a.node.user_agent_name, "csds-test")
        self.assertEqual(a.node.user_agent_version, "1.0")
        clusters = self.entries(a, xc.CLUSTER_URL)
        self.assertEqual(sorted(clusters), sorted(self.clusters))
        for name, g in clusters.items():
            self.assertEqual(g.config_status, SYNCED)
            self.assertEqual(g.version_info, cds_a.version_info)
            self.assertEqual(xc.unpack(g.xds_config, "envoy.config.cluster.v3.Cluster").name, name)
            self.assertGreater(g.last_updated.seconds, 0)
            self.assertFalse(g.HasField("error_state"))
        las = self.entries(a, xc.CLA_URL)
        for name in eds_names:
            self.assertEqual(las[name].config_status, SYNCED)
            self.assertEqual(las[name].version_info, eds.version_info)
            cla = xc.unpack(las[name].xds_config, "envoy.config.endpoint.v3.ClusterLoadAssignment")
            self.assertEqual(cla.cluster_name, name)
        # Asked for by name and never sent (it does not exist): requested, nothing sent.
        self.assertEqual(las["no-such-cluster"].client_status, REQUESTED)
        self.assertEqual(las["no-such-cluster"].config_status, NOT_SENT)
        self.assertFalse(las["no-such-cluster"].HasField("xds_config"))

        n = nodes["nacker"]
        for name, g in self.entries(n, xc.CLUSTER_URL).items():
            self.assertEqual(g.config_status, ERROR)
            self.assertEqual(g.version_info, "")  # nothing accepted yet
            self.assertEqual(g.error_state.details, "cluster rejected by the test")
            self.assertEqual(g.error_state.version_info, cds_n.version_info)
            self.assertGreater(g.error_state.last_update_attempt.seconds, 0)
        self.assertEqual(self.entries(n, xc.CLA_URL), {})

        # A later ACK clears the NACK.
        nacker.ack(cds_n)
        resp = self.fetch_until(lambda r: all(
            g.client_status == ACKED for g in self.entries(self.by_node(r)["nacker"], xc.CLUSTER_URL).values()))
        for g in self.entries(self.by_node(resp)["nacker"], xc.CLUSTER_URL).values():
            self.assertEqual(g.client_status, ACKED)
            self.assertFalse(g.HasField("error_state"))

        # A closed stream disappears from the answers.
        nacker.cancel()
        resp = self.fetch_until(lambda r: set(self.by_node(r)) == {"acker"})
        self.assertEqual(set(self.by_node(resp)), {"acker"})
        acker.cancel()

    def test_sent_but_not_answered_is_stale(self):
        s, cds = self.connect("quiet")
        resp = self.fetch(request(node_id="quiet"))
        self.assertEqual(len(resp.config), 1)
        entries = self.entries(resp.config[0], xc.CLUSTER_URL)
        self.assertEqual(sorted(entries), sorted(self.clusters))
        for g in entries.values():
            self.assertEqual(g.config_status, STALE)
            self.assertEqual(g.version_info, cds.version_info)
        s.cancel()

    def test_node_matchers(self):
        one, r1 = self.connect("node-one")
        two, r2 = self.connect("node-two")
        other, r3 = self.connect("other")
        self.fetch_until(lambda r: len(r.config) == 3)
        self.assertEqual(sorted(self.by_node(self.fetch())), ["node-one", "node-two", "other"])
        self.assertEqual(sorted(self.by_node(self.fetch(request(node_id="node-two")))), ["node-two"])
        self.assertEqual(sorted(self.by_node(self.fetch(request(prefix="node-")))), ["node-one", "node-two"])
        # Several matchers are ORed.
        req = request(node_id="other", prefix="node-o")
        self.assertEqual(sorted(self.by_node(self.fetch(req))), ["node-one", "other"])
        self.assertEqual(len(self.fetch(request(node_id="nobody")).config), 0)
        # Matchers ekglue does not implement are refused rather than ignored.
        req = ClientStatusRequest()
        req.node_matchers.add().node_id.safe_regex.regex = "node-.*"
        with self.assertRaises(grpc.RpcError) as ctx:
            self.fetch(req)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("safe_regex", ctx.exception.details())
        for s in (one, two, other):
            s.cancel()

    def test_stream_answers_each_request(self):
        one, _ = self.connect("node-one")
        two, _ = self.connect("node-two")
        self.fetch_until(lambda r: len(r.config) == 2)
        requests = queue.Queue()
        end = object()
        rpc = self.channel().stream_stream(CSDS_STREAM, request_serializer=lambda m: m.SerializeToString(),
                                           response_deserializer=response_class().FromString)
        call = rpc(iter(requests.get, end))
        answers = queue.Queue()

        def read():
            try:
                for r in call:
                    answers.put(r)
            except grpc.RpcError as e:
                answers.put(e)
            answers.put(end)

        t = threading.Thread(target=read, daemon=True)
        t.start()
        expected = [["node-one", "node-two"], ["node-one"], ["node-two"], []]
        for want in expected:
            if want == ["node-one", "node-two"]:
                requests.put(ClientStatusRequest())
            else:
                requests.put(request(node_id=want[0] if want else "nobody"))
            got = answers.get(timeout=5)
            self.assertNotIsInstance(got, grpc.RpcError, str(got))
            self.assertEqual(sorted(self.by_node(got)), want)
        # Several requests at once: one answer each, in order.
        for name in ("node-two", "node-one", "node-two"):
            requests.put(request(node_id=name))
        for name in ("node-two", "node-one", "node-two"):
            got = answers.get(timeout=5)
            self.assertEqual(sorted(self.by_node(got)), [name])
        requests.put(end)  # half-close: the server ends the stream with OK
        self.assertIs(answers.get(timeout=5), end)
        t.join(timeout=5)
        self.assertEqual(call.code(), grpc.StatusCode.OK)
        one.cancel()
        two.cancel()

    def test_stream_is_ended_by_stop(self):
        requests = queue.Queue()
        rpc = self.channel().stream_stream(CSDS_STREAM, request_serializer=lambda m: m.SerializeToString(),
                                           response_deserializer=response_class().FromString)
        call = rpc(iter(requests.get, None))
        requests.put(ClientStatusRequest())
        first = next(call)
        self.assertEqual(len(first.config), 0)
        rc = self.server.terminate(timeout=15)
        self.assertEqual(rc, 0, self.server.log()[-3000:])
        with self.assertRaises(grpc.RpcError) as ctx:
            next(call)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAVAILABLE)
        requests.put(None)

    def test_malformed_request_is_invalid_argument(self):
        rpc = self.channel().unary_unary(CSDS_FETCH, request_serializer=lambda b: b,
                                         response_deserializer=lambda b: b)
        with self.assertRaises(grpc.RpcError) as ctx:
            rpc(b"\xff\xff\xff", timeout=5)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_clients_on_the_debug_port(self):
        """ekg_xds_server_clients() as the debug port's /clients shows it."""
        import json
        import re
        import urllib.request
        server = xc.EkglueServer([self.demo], extra_args=["--debug-listen", "127.0.0.1:0"])
        try:
            line = server.wait_log(r"debug server listening port=\d+", timeout=5)
            self.assertIsNotNone(line, "no debug port in the log" + xc.failure_log(server))
            port = int(re.search(r"port=(\d+)", line).group(1))
            ch = grpc.insecure_channel(server.address)
            s = xc.XdsStream(ch)
            req = xc.DiscoveryRequest()
            req.type_url = xc.CLUSTER_URL
            req.node.id = "listed"
            req.node.cluster = "c1"
            req.node.locality.region = "r1"
            req.node.locality.zone = "z1"
            req.node.user_agent_name = "csds-test"
            req.node.user_agent_version = "2.0"
            s.send_raw(req)
            cds = s.recv(timeout=5)
            self.assertIsNotNone(cds)
            s.send(xc.CLUSTER_URL, nonce=cds.nonce, error="no thanks")
            deadline = time.monotonic() + 5
            while True:
                with urllib.request.urlopen("http://127.0.0.1:%d/clients" % port, timeout=5) as r:
                    doc = json.loads(r.read())
                if isinstance(doc, dict):  # tolerate a wrapping object
                    doc = doc.get("clients", doc)
                c = doc[0] if doc else {}
                if c.get("types", {}).get("Cluster", {}).get("nack") or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertEqual(len(doc), 1, doc)
            self.assertEqual(c["node_id"], "listed")
            self.assertEqual(c["cluster"], "c1")
            self.assertEqual(c["locality"], {"region": "r1", "zone": "z1", "sub_zone": ""})
            self.assertEqual(c["user_agent"], "csds-test 2.0")
            self.assertEqual(c["api"], "ADS")
            self.assertTrue(c["peer"].startswith("ipv4:127.0.0.1:"), c["peer"])
            cl = c["types"]["Cluster"]
            self.assertTrue(cl["subscribed"])
            self.assertTrue(cl["wildcard"])
            self.assertEqual(cl["names"], [])
            self.assertEqual(cl["sent_version"], cds.version_info)
            self.assertEqual(cl["acked_version"], "")
            self.assertEqual((cl["responses"], cl["acks"], cl["nacks"]), (1, 0, 1))
            self.assertEqual(cl["nack"]["message"], "no thanks")
            self.assertRegex(cl["nack"]["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertFalse(c["types"]["ClusterLoadAssignment"]["subscribed"])
            self.assertIsNone(c["types"]["ClusterLoadAssignment"]["nack"])
            s.cancel()
            ch.close()
        finally:
            xc.check_clean_exit(self, server)

    def test_health_knows_csds(self):
        self.assertEqual(xc.health_check(self.channel(), "envoy.service.status.v3.ClientStatusDiscoveryService"),
                         xc.SERVING)


if __name__ == "__main__":
    skips.main()
