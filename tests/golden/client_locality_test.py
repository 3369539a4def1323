"""tests/golden/client_locality_test.py: `ekglue dump --client-locality REGION/ZONE[/NODE]` (src/cli/dump.c).

What a client at a place gets is compared with the rules of docs/translation.md ("Zone-aware endpoints"), as
tests/golden/zonerule.py writes them independently of ekglue, applied to the plain dump (no place) of the same
manifests:
- the demo cluster (deploy/demo/cluster.yaml, what `serve` embeds): a client in each of its zones gets priorities
  for shop:frontend:* (trafficDistribution PreferClose), its own zone at priority 0; every other assignment is
  the plain one; a client in an unknown region or zone gets the plain assignments throughout; the Clusters and
  the localities never change; --format yaml and --format binary (decoded with python3-protobuf) say the same;
- a small manifest of two regions with PreferSameNode (the NODE part), complete hints that differ from the
  endpoints' own zones (topology-mode Auto), incomplete hints (no priorities), and endpoints whose Node is
  unknown (a zone and no region);
- malformed values are usage errors (exit 2) that name the flag, with nothing on stdout.

Run by ctest with EKGLUE, EKG_SOURCE_DIR and EKG_BUILD_DIR set; /usr/bin/python3.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml
from google.protobuf import json_format

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import zonerule  # noqa: E402
sys.path.insert(0, os.path.join(HERE, "..", "xds"))
import xdsclient as xc  # noqa: E402
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
import skips  # noqa: E402

DEMO = os.path.join(xc.SOURCE_DIR, "deploy", "demo", "cluster.yaml")

# Two regions; r1 has zones r1-a and r1-b. n-gone is no Node: its endpoints have the slice's zone, no region.
TOPOLOGY = """\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: n-a1, labels: {topology.kubernetes.io/region: r1, topology.kubernetes.io/zone: r1-a}}
- apiVersion: v1
  kind: Node
  metadata: {name: n-a2, labels: {topology.kubernetes.io/region: r1, topology.kubernetes.io/zone: r1-a}}
- apiVersion: v1
  kind: Node
  metadata: {name: n-b1, labels: {topology.kubernetes.io/region: r1, topology.kubernetes.io/zone: r1-b}}
- apiVersion: v1
  kind: Node
  metadata: {name: n-x1, labels: {topology.kubernetes.io/region: r2, topology.kubernetes.io/zone: r2-x}}
- apiVersion: v1
  kind: Service
  metadata: {name: near, namespace: zt}
  spec: {trafficDistribution: PreferSameNode, ports: [{name: http, port: 80, targetPort: 8080}]}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: near-1, namespace: zt, labels: {kubernetes.io/service-name: near}}
  addressType: IPv4
  ports: [{name: http, port: 8080}]
  endpoints:
  - {addresses: [10.2.0.1], nodeName: n-a1, zone: r1-a}
  - {addresses: [10.2.0.2], nodeName: n-a2, zone: r1-a}
  - {addresses: [10.2.0.3], nodeName: n-b1, zone: r1-b}
  - {addresses: [10.2.0.4], nodeName: n-x1, zone: r2-x}
  - {addresses: [10.2.0.5], nodeName: n-gone, zone: r1-a}
  - {addresses: [10.2.0.6], nodeName: n-gone, zone: r2-x}
- apiVersion: v1
  kind: Service
  metadata: {name: hinted, namespace: zt, annotations: {service.kubernetes.io/topology-mode: Auto}}
  spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: hinted-1, namespace: zt, labels: {kubernetes.io/service-name: hinted}}
  addressType: IPv4
  ports: [{name: http, port: 8080}]
  endpoints:
  - {addresses: [10.3.0.1], nodeName: n-a1, zone: r1-a, hints: {forZones: [{name: r1-b}]}}
  - {addresses: [10.3.0.2], nodeName: n-b1, zone: r1-b, hints: {forZones: [{name: r1-a}]}}
  - {addresses: [10.3.0.3], nodeName: n-x1, zone: r2-x, hints: {forZones: [{name: r2-x}]}}
- apiVersion: v1
  kind: Service
  metadata: {name: halfhinted, namespace: zt, annotations: {service.kubernetes.io/topology-mode: Auto}}
  spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: halfhinted-1, namespace: zt, labels: {kubernetes.io/service-name: halfhinted}}
  addressType: IPv4
  ports: [{name: http, port: 8080}]
  endpoints:
  - {addresses: [10.4.0.1], nodeName: n-a1, zone: r1-a, hints: {forZones: [{name: r1-a}]}}
  - {addresses: [10.4.0.2], nodeName: n-b1, zone: r1-b}
- apiVersion: v1
  kind: Service
  metadata: {name: close, namespace: zt}
  spec: {trafficDistribution: PreferClose, ports: [{name: http, port: 80, targetPort: 8080}]}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: close-1, namespace: zt, labels: {kubernetes.io/service-name: close}}
  addressType: IPv4
  ports: [{name: http, port: 8080}]
  endpoints:
  - {addresses: [10.5.0.1], nodeName: n-a1, zone: r1-a}
  - {addresses: [10.5.0.2], nodeName: n-b1, zone: r1-b}
  - {addresses: [10.5.0.3], nodeName: n-x1, zone: r2-x}
- apiVersion: v1
  kind: Service
  metadata: {name: plain, namespace: zt}
  spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: plain-1, namespace: zt, labels: {kubernetes.io/service-name: plain}}
  addressType: IPv4
  ports: [{name: http, port: 8080}]
  endpoints:
  - {addresses: [10.6.0.1], nodeName: n-a1, zone: r1-a}
  - {addresses: [10.6.0.2], nodeName: n-x1, zone: r2-x}
"""


def dump(objects, *args, fmt="json"):
    cmd = ["dump", "--format", fmt] + list(args)
    for path in objects:
        cmd += ["--objects", path]
    out = xc.run_ekglue(cmd)
    return out if fmt == "binary" else yaml.safe_load(out) if fmt == "yaml" else json.loads(out)


def split_place(text):
    region, zone, *node = text.split("/")
    return region, zone, node[0] if node else ""


def by_priority(la):
    """{priority: sorted endpoint addresses}."""
    out = {}
    for lle in la.get("endpoints", []):
        for lb in lle.get("lbEndpoints", []):
            out.setdefault(lle.get("priority", 0), []).append(lb["endpoint"]["address"]["socketAddress"]["address"])
    return {p: sorted(v) for p, v in out.items()}


def read_varint(buf, pos):
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


class ClientLocalityTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ekglue-client-locality-")
        cls.topology = os.path.join(cls.dir, "topology.yaml")
        with open(cls.topology, "w") as f:
            f.write(TOPOLOGY)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def check_place(self, objects, place, rules, plain):
        """dump --client-locality place against the rules; returns {cluster name: assignment}."""
        got = dump(objects, "--client-locality", place)
        region, zone, node = split_place(place)
        self.assertEqual(got["clusters"], plain["clusters"], "Clusters do not depend on the client")
        self.assertEqual(got["localities"], plain["localities"])
        names = [la["clusterName"] for la in got["load_assignments"]]
        self.assertEqual(names, [la["clusterName"] for la in plain["load_assignments"]])
        for la in got["load_assignments"]:
            want = rules.expected(la["clusterName"], region, zone, node)
            self.assertEqual(zonerule.canonical(la), zonerule.canonical(want),
                             "%s for a client at %s" % (la["clusterName"], place))
            # Contiguous from 0, whatever the groups were.
            self.assertEqual(zonerule.priorities(la), list(range(len(zonerule.priorities(la)))), la)
            if not rules.prefers_close(la["clusterName"])[0]:
                self.assertEqual(la, rules.plain[la["clusterName"]], "%s has no preference" % la["clusterName"])
        return {la["clusterName"]: la for la in got["load_assignments"]}

    def test_demo_zones(self):
        plain = dump([DEMO])
        objects = zonerule.load_objects(DEMO)
        rules = zonerule.Rules(objects, plain["load_assignments"])
        # What the demo is documented to have: shop/frontend prefers close; its localities are weighted by count.
        self.assertEqual(rules.services["shop:frontend"].traffic_distribution, "PreferClose")
        frontend = [n for n in rules.plain if n.startswith("shop:frontend:")]
        self.assertEqual(len(frontend), 2, sorted(rules.plain))
        preferring = [n for n in rules.plain if rules.prefers_close(n)[0]]
        self.assertEqual(sorted(preferring), sorted(frontend))
        self.assertGreater(len(rules.plain) - len(preferring), 5, "Services without a preference to compare")
        for la in plain["load_assignments"]:
            for lle in la.get("endpoints", []):
                self.assertEqual(lle.get("loadBalancingWeight"), len(lle["lbEndpoints"]), la["clusterName"])
        nodes = [o for o in objects if o.get("kind") == "Node"]
        zones = sorted({(n["metadata"]["labels"]["topology.kubernetes.io/region"],
                         n["metadata"]["labels"]["topology.kubernetes.io/zone"]) for n in nodes})
        self.assertEqual(len(zones), 3, zones)

        for region, zone in zones:
            got = self.check_place([DEMO], "%s/%s" % (region, zone), rules, plain)
            for name in frontend:
                prios = by_priority(got[name])
                self.assertGreater(len(prios), 1, "%s: no priorities for a client in %s" % (name, zone))
                in_zone = sorted(lb["endpoint"]["address"]["socketAddress"]["address"]
                                 for lle in rules.plain[name]["endpoints"] if lle["locality"].get("zone") == zone
                                 for lb in lle["lbEndpoints"])
                self.assertEqual(prios[0], in_zone, "%s: priority 0 is the client's zone %s" % (name, zone))
            # The NODE part is accepted and, for PreferClose, changes nothing.
            node = next(n["metadata"]["name"] for n in nodes
                        if n["metadata"]["labels"]["topology.kubernetes.io/zone"] == zone)
            with_node = self.check_place([DEMO], "%s/%s/%s" % (region, zone, node), rules, plain)
            self.assertEqual(with_node, got)

        # A zone without a region matches the endpoints of that zone in any region.
        got = self.check_place([DEMO], "/" + zones[0][1], rules, plain)
        self.assertGreater(len(by_priority(got[frontend[0]])), 1)

        # Places no endpoint is in: the plain assignments, exactly.
        for place in ("nowhere/zone-x", "/zone-x", "%s/zone-x" % zones[0][0], "other-region/" + zones[0][1]):
            got = dump([DEMO], "--client-locality", place)
            self.assertEqual(got, plain, place)
            for name in frontend:
                self.assertEqual(rules.expected(name, *split_place(place)), rules.plain[name], place)

    def test_demo_formats_agree(self):
        place = "us-east1/us-east1-b"
        doc = dump([DEMO], "--client-locality", place)
        self.assertEqual(dump([DEMO], "--client-locality", place, fmt="yaml"), doc)
        # binary: the clusters, then the assignments, each a length-delimited Any, decoded independently.
        data = dump([DEMO], "--client-locality", place, fmt="binary")
        resources, pos = [], 0
        while pos < len(data):
            size, pos = read_varint(data, pos)
            anything = xc.message_class("google.protobuf.Any")()
            anything.ParseFromString(data[pos:pos + size])
            pos += size
            resources.append(anything)
        self.assertEqual(len(resources), len(doc["clusters"]) + len(doc["load_assignments"]))
        las = [json_format.MessageToDict(xc.unpack(a, "envoy.config.endpoint.v3.ClusterLoadAssignment"))
               for a in resources[len(doc["clusters"]):]]
        self.assertEqual(las, doc["load_assignments"])
        self.assertGreater(len(by_priority(next(la for la in las if la["clusterName"] == "shop:frontend:http"))), 1)

    def test_two_regions_node_and_hints(self):
        objects = [self.topology]
        plain = dump(objects)
        rules = zonerule.Rules(zonerule.load_objects(self.topology), plain["load_assignments"])
        for name, applies in (("zt:near:http", True), ("zt:hinted:http", True), ("zt:halfhinted:http", False),
                              ("zt:close:http", True), ("zt:plain:http", False)):
            self.assertEqual(rules.prefers_close(name)[0], applies, name)
        places = ("r1/r1-a", "r1/r1-a/n-a2", "r1/r1-a/n-unknown", "r1/r1-b", "r1/r1-b/n-a1", "r2/r2-x/n-x1",
                  "/r1-a", "/r2-x", "r1/r1-zz", "r3/r3-q")
        got = {place: self.check_place(objects, place, rules, plain) for place in places}
        # Statements of the rules on this topology, beside the comparison with zonerule:
        # PreferSameNode: the client's Node, then its zone (with the endpoint of an unknown Node in that zone),
        # then its region, then the rest.
        self.assertEqual(by_priority(got["r1/r1-a/n-a2"]["zt:near:http"]),
                         {0: ["10.2.0.2"], 1: ["10.2.0.1", "10.2.0.5"], 2: ["10.2.0.3"],
                          3: ["10.2.0.4", "10.2.0.6"]})
        # No Node given: the zone rule alone; an unknown Node is no Node.
        self.assertEqual(by_priority(got["r1/r1-a"]["zt:near:http"]),
                         {0: ["10.2.0.1", "10.2.0.2", "10.2.0.5"], 1: ["10.2.0.3"], 2: ["10.2.0.4", "10.2.0.6"]})
        self.assertEqual(got["r1/r1-a/n-unknown"]["zt:near:http"], got["r1/r1-a"]["zt:near:http"])
        # Complete hints: the endpoints hinted for the client's zone first, wherever they run.
        self.assertEqual(by_priority(got["r1/r1-a"]["zt:hinted:http"]),
                         {0: ["10.3.0.2"], 1: ["10.3.0.1"], 2: ["10.3.0.3"]})
        # Zone, region, other regions; with no endpoint in the client's zone, its region comes first.
        self.assertEqual(by_priority(got["r1/r1-b"]["zt:close:http"]),
                         {0: ["10.5.0.2"], 1: ["10.5.0.1"], 2: ["10.5.0.3"]})
        self.assertEqual(by_priority(got["r1/r1-zz"]["zt:close:http"]), {0: ["10.5.0.1", "10.5.0.2"], 1: ["10.5.0.3"]})
        # PreferClose ignores the Node.
        self.assertEqual(got["r1/r1-b/n-a1"]["zt:close:http"], got["r1/r1-b"]["zt:close:http"])
        # Nowhere known: plain.
        for name in rules.plain:
            self.assertEqual(got["r3/r3-q"][name], rules.plain[name], name)
        # Incomplete hints: no priorities.
        self.assertEqual(got["r1/r1-a"]["zt:halfhinted:http"], rules.plain["zt:halfhinted:http"])

    def test_bad_values_are_usage_errors(self):
        for value in ("", "us-east1", "us-east1/", "/", "a/b/", "a/b/c/d", "us-east1/us east1-a", "a/\tb"):
            proc = subprocess.run([xc.EKGLUE, "dump", "--objects", DEMO, "--client-locality", value],
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            err = proc.stderr.decode("utf-8", "replace")
            self.assertEqual(proc.returncode, 2, "%r: %s" % (value, err))
            self.assertIn("--client-locality", err, value)
            self.assertIn("'%s'" % value, err, "the message names the value")
            self.assertEqual(proc.stdout, b"", value)
            self.assertNotIn("Sanitizer", err)
        proc = subprocess.run([xc.EKGLUE, "dump", "--help"], capture_output=True, timeout=30)
        self.assertIn(b"--client-locality REGION/ZONE[/NODE]", proc.stdout)


if __name__ == "__main__":
    skips.main()
