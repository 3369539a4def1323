"""tests/debug/debug_test.py: the debug HTTP port end to end (src/debug/http.c, src/common/metrics.c, src/debug/metrics.c, serve.c).

Each test starts `ekglue serve --objects <tmp copy of the demo cluster> --xds-listen 127.0.0.1:0 --debug-listen
127.0.0.1:0`, reads both ports from the log and checks the endpoints over HTTP:
- /clusters, /endpoints, /localities and /config_dump equal `ekglue dump` of the same file (JSON), and their
  ?format=yaml variants parse (python3-yaml) to the same documents;
- /healthz, /readyz (also 503 in Kubernetes mode before any sync), 404, 405, 400 for an unknown format;
- /endpoints?region=R&zone=Z&node=N (any subset) equals `ekglue dump --client-locality R/Z/N`, follows the rules
  of docs/translation.md ("Zone-aware endpoints", as tests/golden/zonerule.py writes them) for the demo's
  shop/frontend (PreferClose), and is what an ADS client at that place receives; the place on another path is
  a 400;
- /clients lists a raw ADS client (tests/xds/xdsclient.py) with its node id and ACKed version, and the node name
  (Node.metadata NODE_NAME) and locality of a client that sent them, which CSDS reports back too;
- /metrics parses with the independent parser of python3-prometheus-client, and values move: xds_acks_total
  after an ACK, last_update_timestamp_seconds and snapshot_build_seconds_count after a file change.

Run by ctest with EKGLUE, EKG_SOURCE_DIR and EKG_BUILD_DIR set; /usr/bin/python3. Every wait is bounded.
"""
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debugclient as dc  # noqa: E402
from debugclient import xc  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import skips  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
import zonerule  # noqa: E402
from google.protobuf import json_format  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover - the package is in third_party/setup-deps.sh
    text_string_to_metric_families = None

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


# Two Services that ask for close endpoints with the topology annotation: one whose endpoints all have hints, one
# whose endpoints do not (docs/translation.md, "When it applies": priorities for the first only).
HINTED_SERVICES = """\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: hinted, namespace: shop, annotations: {service.kubernetes.io/topology-mode: Auto}}
  spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: hinted-1, namespace: shop, labels: {kubernetes.io/service-name: hinted}}
  addressType: IPv4
  ports: [{name: http, port: 8080}]
  endpoints:
  - {addresses: [10.1.0.90], nodeName: worker-a1, zone: us-east1-a, hints: {forZones: [{name: us-east1-a}]}}
  - {addresses: [10.1.3.90], nodeName: worker-b2, zone: us-east1-b, hints: {forZones: [{name: us-east1-b}]}}
- apiVersion: v1
  kind: Service
  metadata: {name: halfhinted, namespace: shop, annotations: {service.kubernetes.io/topology-mode: Auto}}
  spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: halfhinted-1, namespace: shop, labels: {kubernetes.io/service-name: halfhinted}}
  addressType: IPv4
  ports: [{name: http, port: 8080}]
  endpoints:
  - {addresses: [10.1.0.91], nodeName: worker-a1, zone: us-east1-a, hints: {forZones: [{name: us-east1-a}]}}
  - {addresses: [10.1.3.91], nodeName: worker-b2, zone: us-east1-b}
"""


def metrics(server):
    """{(name, frozenset(labels.items())): value} of every sample, parsed by prometheus_client."""
    status, headers, body = server.get("/metrics")
    assert status == 200, (status, body[:300])
    out, types = {}, {}
    for family in text_string_to_metric_families(body):
        types[family.name] = family.type
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out, types, headers


def sample(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


class DebugPortTest(xc.LogOnFailure, unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ekglue-debug-")
        self.demo = os.path.join(self.dir, "cluster.yaml")
        shutil.copy(os.path.join(dc.SOURCE_DIR, "deploy", "demo", "cluster.yaml"), self.demo)
        self.extra = os.path.join(self.dir, "extra.yaml")
        self.write_extra("extra")
        self.files = [self.demo, self.extra]
        self.server = dc.DebugServer(self.files)
        self.channels = []

    def tearDown(self):
        for ch in self.channels:
            ch.close()
        self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        xc.check_clean_exit(self, self.server)

    def write_extra(self, name=None, text=None):
        tmp = self.extra + ".tmp"
        with open(tmp, "w") as f:
            f.write(text if text is not None else EXTRA_SERVICE % {"name": name})
        os.rename(tmp, self.extra)

    def channel(self):
        ch = self.server.channel()
        self.channels.append(ch)
        return ch

    # --- documents ---------------------------------------------------------------------------------------------

    def test_documents_match_dump(self):
        ref = dc.dump(self.files)
        self.assertGreater(len(ref["clusters"]), 5)
        for path, want in (("/clusters", ref["clusters"]), ("/endpoints", ref["load_assignments"]),
                           ("/localities", ref["localities"])):
            status, headers, body = self.server.get(path)
            self.assertEqual(status, 200, body[:300])
            self.assertEqual(headers["content-type"], "application/json")
            self.assertEqual(json.loads(body), want, path)
            status, headers, body = self.server.get(path + "?format=yaml")
            self.assertEqual(status, 200, body[:300])
            self.assertTrue(headers["content-type"].startswith("application/yaml"), headers)
            self.assertEqual(yaml.safe_load(body), want, path + "?format=yaml")
            self.assertEqual(self.server.get(path + "?format=json")[0], 200)

        cd = self.server.get_json("/config_dump")
        self.assertEqual(cd["clusters"], ref["clusters"])
        self.assertEqual(cd["load_assignments"], ref["load_assignments"])
        self.assertEqual(cd["localities"], ref["localities"])
        self.assertIsInstance(cd["listeners"], list)
        self.assertEqual(sorted(cd["version_info"]),
                         ["Cluster", "ClusterLoadAssignment", "Listener", "RouteConfiguration"])
        # The versions are the ones the xDS server sends.
        s = xc.XdsStream(self.channel())
        s.send(xc.CLUSTER_URL, node_id="debug-versions")
        resp = s.recv(10)
        self.assertIsNotNone(resp)
        self.assertEqual(cd["version_info"]["Cluster"], resp.version_info)
        s.cancel()
        self.assertEqual(yaml.safe_load(self.server.get("/config_dump?format=yaml")[2]), cd)

    def test_status_codes(self):
        status, headers, body = self.server.get("/healthz")
        self.assertEqual((status, body), (200, "ok\n"))
        status, headers, body = self.server.get("/readyz")
        self.assertEqual(status, 200, body)
        self.assertEqual(self.server.get("/nonexistent")[0], 404)
        self.assertEqual(self.server.get("/clusters/extra")[0], 404)
        self.assertEqual(self.server.get("/clusters?format=xml")[0], 400)
        for method in ("POST", "PUT", "DELETE"):
            status, headers, body = self.server.get("/clusters", method=method)
            self.assertEqual(status, 405, method)
            self.assertEqual(headers.get("allow"), "GET, HEAD")
        status, headers, body = self.server.get("/clusters", method="HEAD")
        self.assertEqual((status, body), (200, ""))
        status, headers, body = self.server.get("/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/html"))
        self.assertIn("shop:frontend:http", body)

    def test_documents_follow_file_changes(self):
        self.assertNotIn("shop:renamed:http", [c["name"] for c in self.server.get_json("/clusters")])
        start = self.server.nlines()
        self.write_extra("renamed")
        self.assertIsNotNone(self.server.wait_log(r"objects loaded", timeout=10, start=start), self.server.log())
        names = [c["name"] for c in self.server.get_json("/clusters")]
        self.assertIn("shop:renamed:http", names)
        self.assertNotIn("shop:extra:http", names)
        self.assertEqual(self.server.get_json("/clusters"), dc.dump(self.files)["clusters"])

    # --- a client's place --------------------------------------------------------------------------------------

    def test_endpoints_at_a_place(self):
        plain = dc.dump(self.files)
        rules = zonerule.Rules(zonerule.load_objects(*self.files), plain["load_assignments"])
        frontend = "shop:frontend:http"
        self.assertTrue(rules.prefers_close(frontend)[0], "the demo's shop/frontend is PreferClose")
        # (query, the same place for dump --client-locality, or None: no zone, which the flag cannot say)
        cases = (("region=us-east1&zone=us-east1-a", "us-east1/us-east1-a"),
                 ("zone=us-east1-c&region=us-east1", "us-east1/us-east1-c"),
                 ("region=us-east1&zone=us-east1-b&node=worker-b2", "us-east1/us-east1-b/worker-b2"),
                 ("zone=us-east1-a", "/us-east1-a"),
                 ("region=nowhere&zone=zone-x", "nowhere/zone-x"),
                 ("region=us-east1", None), ("node=worker-a1", None))
        for query, place in cases:
            got = self.server.get_json("/endpoints?" + query)
            if place is not None:
                want = dc.dump(self.files, "--client-locality", place)["load_assignments"]
                self.assertEqual(got, want, query)
            region, zone, node = (dict(kv.split("=") for kv in query.split("&")).get(k, "")
                                  for k in ("region", "zone", "node"))
            for la in got:
                self.assertEqual(zonerule.canonical(la),
                                 zonerule.canonical(rules.expected(la["clusterName"], region, zone, node)),
                                 "%s at %s" % (la["clusterName"], query))
            fe = next(la for la in got if la["clusterName"] == frontend)
            known = zone.startswith("us-east1-")
            self.assertEqual(len(zonerule.priorities(fe)) > 1, known, "%s at %s" % (frontend, query))
            if not known:
                self.assertEqual(got, plain["load_assignments"], query)
        self.assertEqual(yaml.safe_load(self.server.get("/endpoints?region=us-east1&zone=us-east1-a&format=yaml")[2]),
                         self.server.get_json("/endpoints?region=us-east1&zone=us-east1-a"))
        self.assertEqual(self.server.get_json("/endpoints"), plain["load_assignments"])
        for path in ("/clusters?zone=us-east1-a", "/config_dump?region=us-east1", "/clients?node=worker-a1"):
            status, _, body = self.server.get(path)
            self.assertEqual(status, 400, path)
            self.assertIn("/endpoints", body)

    def test_status_page_says_where_priorities_apply(self):
        start = self.server.nlines()
        self.write_extra(text=HINTED_SERVICES)
        self.assertIsNotNone(self.server.wait_log(r"objects loaded", timeout=10, start=start), self.server.log())
        plain = dc.dump(self.files)
        rules = zonerule.Rules(zonerule.load_objects(*self.files), plain["load_assignments"])
        self.assertEqual([rules.prefers_close(n)[0] for n in ("shop:hinted:http", "shop:halfhinted:http")],
                         [True, False])
        page = self.server.get("/")[2]
        header, rows = dc.Rows(page).table("Name", "Zone priorities")
        cells = {r[0].strip(): r[header.index("Zone priorities")].strip() for r in rows}
        self.assertIn("shop:hinted:http", cells)
        for name, cell in cells.items():
            if name not in rules.plain or not rules.prefers_close(name)[0]:
                self.assertTrue(cell == "no" or cell.startswith("no "), (name, cell))
        self.assertRegex(cells["shop:hinted:http"], r"^yes .*topology-mode")
        self.assertRegex(cells["shop:frontend:http"], r"^yes .*trafficDistribution: PreferClose")
        # Asked for and not applied: "no" and why.
        self.assertRegex(cells["shop:halfhinted:http"], r"^no .*topology-mode.*hints")
        self.assertEqual(cells["shop:cart:http"], "no")
        got = {la["clusterName"]: la for la in self.server.get_json("/endpoints?region=us-east1&zone=us-east1-b")}
        for name in ("shop:hinted:http", "shop:halfhinted:http"):
            self.assertEqual(zonerule.canonical(got[name]),
                             zonerule.canonical(rules.expected(name, "us-east1", "us-east1-b")), name)
        self.assertEqual(zonerule.priorities(got["shop:hinted:http"]), [0, 1])
        self.assertEqual(zonerule.priorities(got["shop:halfhinted:http"]), [0])

    def test_endpoints_at_a_place_are_what_the_client_gets(self):
        names = ["shop:frontend:http", "shop:cart:http"]
        s = xc.XdsStream(self.channel())
        s.send(xc.CLA_URL, names=names, node_id="debug-zone-b",
               locality={"region": "us-east1", "zone": "us-east1-b"})
        resp = s.recv(10)
        self.assertIsNotNone(resp, self.server.log())
        sent = {la["clusterName"]: la for la in
                (json_format.MessageToDict(xc.unpack(r, "envoy.config.endpoint.v3.ClusterLoadAssignment"))
                 for r in resp.resources)}
        shown = {la["clusterName"]: la
                 for la in self.server.get_json("/endpoints?region=us-east1&zone=us-east1-b")}
        self.assertEqual(sorted(sent), sorted(names))
        for name in names:
            self.assertEqual(sent[name], shown[name], name)
        self.assertGreater(len(zonerule.priorities(sent["shop:frontend:http"])), 1)
        self.assertEqual(zonerule.priorities(sent["shop:cart:http"]), [0])
        s.cancel()

    # --- clients -----------------------------------------------------------------------------------------------

    def test_clients_lists_a_connected_client(self):
        s = xc.XdsStream(self.channel())
        s.send(xc.CLUSTER_URL, node_id="debug-client-1")
        resp = s.recv(10)
        self.assertIsNotNone(resp)
        s.ack(resp)

        def acked():
            for c in self.server.get_json("/clients"):
                t = c.get("types", {})
                if c.get("node_id") == "debug-client-1" and any(
                        v.get("acked_version") == resp.version_info for v in t.values()):
                    return c
            return None

        client = dc.wait_until(acked, timeout=5)
        self.assertIsNotNone(client, json.dumps(self.server.get_json("/clients"), indent=1))
        self.assertEqual(client.get("user_agent"), "ekglue-tests")
        yaml_doc = yaml.safe_load(self.server.get("/clients?format=yaml")[2])
        self.assertIn("debug-client-1", [c.get("node_id") for c in yaml_doc])
        self.assertIn("debug-client-1", self.server.get("/")[2])
        s.cancel()
        gone = dc.wait_until(lambda: "debug-client-1" not in
                             [c.get("node_id") for c in self.server.get_json("/clients")], timeout=5)
        self.assertTrue(gone)

    def test_clients_and_csds_show_the_node_name(self):
        placed, bare = xc.XdsStream(self.channel()), xc.XdsStream(self.channel())
        placed.send(xc.CLUSTER_URL, node_id="debug-placed", locality={"region": "us-east1", "zone": "us-east1-b"},
                    metadata={"NODE_NAME": "worker-b2"})
        bare.send(xc.CLUSTER_URL, node_id="debug-bare")
        self.assertIsNotNone(placed.recv(10))
        self.assertIsNotNone(bare.recv(10))
        clients = {c["node_id"]: c for c in self.server.get_json("/clients")}
        self.assertEqual(clients["debug-placed"]["node_name"], "worker-b2")
        self.assertEqual(clients["debug-placed"]["locality"], {"region": "us-east1", "zone": "us-east1-b",
                                                               "sub_zone": ""})
        self.assertEqual(clients["debug-bare"]["node_name"], "")
        yaml_doc = yaml.safe_load(self.server.get("/clients?format=yaml")[2])
        self.assertIn("worker-b2", [c.get("node_name") for c in yaml_doc])

        fetch = self.channel().unary_unary(
            "/envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=xc.message_class("envoy.service.status.v3.ClientStatusResponse").FromString)
        answer = fetch(xc.message_class("envoy.service.status.v3.ClientStatusRequest")(), timeout=10)
        nodes = {c.node.id: c.node for c in answer.config}
        self.assertEqual(nodes["debug-placed"].metadata.fields["NODE_NAME"].string_value, "worker-b2")
        self.assertEqual(list(nodes["debug-placed"].metadata.fields), ["NODE_NAME"])
        self.assertEqual((nodes["debug-placed"].locality.region, nodes["debug-placed"].locality.zone),
                         ("us-east1", "us-east1-b"))
        self.assertFalse(nodes["debug-bare"].HasField("metadata"), nodes["debug-bare"])
        placed.cancel()
        bare.cancel()

    # --- metrics -----------------------------------------------------------------------------------------------

    @unittest.skipIf(text_string_to_metric_families is None,
                     "python3-prometheus-client is not installed (third_party/setup-deps.sh installs it)")
    def test_metrics_parse_and_move(self):
        before, types, headers = metrics(self.server)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"), headers)
        for name, typ in (("ekglue_kubernetes_events", "counter"), ("ekglue_xds_acks", "counter"),
                          ("ekglue_xds_nacks", "counter"), ("ekglue_xds_pushes", "counter"),
                          ("ekglue_xds_streams", "gauge"), ("ekglue_last_update_timestamp_seconds", "gauge"),
                          ("ekglue_push_latency_seconds", "histogram"),
                          ("ekglue_snapshot_build_seconds", "histogram"),
                          ("ekglue_process_resident_memory_bytes", "gauge"),
                          ("ekglue_process_cpu_seconds", "counter")):
            self.assertEqual(types.get(name), typ, name)
        # File mode: no watcher, so no per-resource watch metrics.
        self.assertNotIn("ekglue_watch_relists", types)
        self.assertGreater(sample(before, "ekglue_process_resident_memory_bytes"), 1e6)
        self.assertGreater(sample(before, "ekglue_last_update_timestamp_seconds"), time.time() - 600)
        self.assertGreaterEqual(sample(before, "ekglue_snapshot_build_seconds_count"), 1)
        self.assertEqual(sample(before, "ekglue_snapshot_build_seconds_bucket", le="+Inf"),
                         sample(before, "ekglue_snapshot_build_seconds_count"))

        # An ACK on ADS: counted, with the push before it and the open stream.
        s = xc.XdsStream(self.channel())
        s.send(xc.CLUSTER_URL, node_id="debug-metrics")
        resp = s.recv(10)
        self.assertIsNotNone(resp)
        s.ack(resp)
        key = ("ekglue_xds_acks_total", frozenset({"type": "Cluster", "mode": "sotw"}.items()))
        moved = dc.wait_until(lambda: metrics(self.server)[0][key] > before[key], timeout=5)
        self.assertTrue(moved, "xds_acks_total{type=Cluster} did not move")
        after, _, _ = metrics(self.server)
        self.assertGreaterEqual(sample(after, "ekglue_xds_pushes_total", type="Cluster", mode="sotw"),
                                sample(before, "ekglue_xds_pushes_total", type="Cluster", mode="sotw") + 1)
        self.assertGreaterEqual(sample(after, "ekglue_xds_streams", api="ADS", mode="sotw"), 1)
        self.assertEqual(sample(after, "ekglue_xds_streams", api="ADS", mode="delta"), 0)
        s.cancel()

        # A file change: a new snapshot, a new timestamp, one more build observed.
        time.sleep(1.1)  # the timestamp has millisecond resolution; make the change unmistakable
        start = self.server.nlines()
        self.write_extra("metrics")
        self.assertIsNotNone(self.server.wait_log(r"objects loaded", timeout=10, start=start))
        later, _, _ = metrics(self.server)
        self.assertGreater(sample(later, "ekglue_last_update_timestamp_seconds"),
                           sample(before, "ekglue_last_update_timestamp_seconds") + 1)
        self.assertEqual(sample(later, "ekglue_snapshot_build_seconds_count"),
                         sample(before, "ekglue_snapshot_build_seconds_count") + 1)
        # An unchanged reload (SIGHUP) publishes nothing new: the timestamp stays.
        start = self.server.nlines()
        self.server.signal(__import__("signal").SIGHUP)
        self.assertIsNotNone(self.server.wait_log(r"objects loaded", timeout=10, start=start))
        again, _, _ = metrics(self.server)
        self.assertEqual(sample(again, "ekglue_last_update_timestamp_seconds"),
                         sample(later, "ekglue_last_update_timestamp_seconds"))


class KubernetesModeTest(xc.LogOnFailure, unittest.TestCase):
    """An API server that cannot be reached: alive but not ready, and the status shows why."""

    def setUp(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.dead_port = sock.getsockname()[1]
        sock.close()  # nothing listens there now
        self.server = dc.DebugServer(extra_args=["--master", "http://127.0.0.1:%d" % self.dead_port])

    def tearDown(self):
        xc.check_clean_exit(self, self.server)

    def test_not_ready_until_synced(self):
        self.assertEqual(self.server.get("/healthz")[0], 200)
        status, _, body = self.server.get("/readyz")
        self.assertEqual(status, 503, body)
        self.assertEqual(self.server.get_json("/clusters"), [])
        self.assertEqual(self.server.get_json("/localities"), {})
        # The watcher's failures show on the page and in the metrics.
        page = dc.wait_until(lambda: "not synced" in self.server.get("/")[2] and self.server.get("/")[2], 5)
        self.assertTrue(page)
        self.assertIn("Kubernetes sync", page)
        self.assertIn("127.0.0.1:%d" % self.dead_port, page)
        if text_string_to_metric_families is not None:
            samples, types, _ = metrics(self.server)
            self.assertEqual(types.get("ekglue_watch_reconnects"), "counter")
            self.assertEqual(types.get("ekglue_kubernetes_sync_age_seconds"), "gauge")
            self.assertEqual(sample(samples, "ekglue_kubernetes_sync_age_seconds", resource="services"), -1)


if __name__ == "__main__":
    skips.main()
