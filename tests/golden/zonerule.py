"""tests/golden/zonerule.py: the zone-aware endpoint rules, written from docs/translation.md ("Zone-aware
endpoints") independently of ekglue's code, for the tests to compare ekglue's output against (not a test itself).

Given the Kubernetes objects (the manifests a test feeds ekglue) and the plain assignments (`ekglue dump` without
a client place: what a client without a locality gets), expected() says what a client at (region, zone, node)
gets:
  - a Service prefers close endpoints when its spec.trafficDistribution is PreferClose, PreferSameZone or
    PreferSameNode, or its service.kubernetes.io/topology-mode (or topology-aware-hints) annotation is Auto and
    every served endpoint has hints.forZones; other assignments, and a client without a zone, get the plain one;
  - each endpoint falls into the first group that fits: 1. on the client's Node (PreferSameNode only); 2. hinted
    for the client's zone (only when every served endpoint of the Service has hints); 3. in the client's zone
    (same zone, and same region or either region unknown); 4. elsewhere in its region; 5. anywhere else;
  - the groups become priorities 0, 1, ... in that order, empty ones left out; within a priority one
    LocalityLbEndpoints per locality, weighted by its number of endpoints; everything in one group is the plain
    assignment.
The served endpoints, their localities and health are read from the plain assignment (that part is the plain
translation's, tested by the golden files); hints and node names from the manifests, by address.

Used by tests/golden/client_locality_test.py and tests/debug/debug_test.py. Run with /usr/bin/python3.
"""
import json

import yaml

CLOSE_VALUES = ("PreferClose", "PreferSameZone", "PreferSameNode")
TOPOLOGY_ANNOTATIONS = ("service.kubernetes.io/topology-mode", "service.kubernetes.io/topology-aware-hints")


def load_objects(*paths):
    """Every object of the manifests: YAML documents, with the items of a List (or ServiceList...) flattened."""
    out = []
    for path in paths:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if not isinstance(doc, dict):
                    continue
                if doc.get("kind", "").endswith("List"):
                    out.extend(doc.get("items") or [])
                else:
                    out.append(doc)
    return out


class Service:
    """What the rules need of one Service: how it asks for close endpoints, and per endpoint address its hints
    (a list of zone names, or None without hints) and its Node name."""

    def __init__(self, obj):
        meta, spec = obj.get("metadata", {}), obj.get("spec", {})
        self.namespace, self.name = meta.get("namespace", "default"), meta["name"]
        self.traffic_distribution = spec.get("trafficDistribution")
        ann = meta.get("annotations") or {}
        mode = next((ann[k] for k in TOPOLOGY_ANNOTATIONS if k in ann), None)
        self.topology_auto = mode in ("Auto", "auto")
        self.hints, self.nodes = {}, {}

    def add_slice(self, obj):
        for ep in obj.get("endpoints") or []:
            for_zones = ((ep.get("hints") or {}).get("forZones")) or None
            names = [z["name"] for z in for_zones] if for_zones else None
            for addr in ep.get("addresses") or []:
                self.hints[addr] = names
                self.nodes[addr] = ep.get("nodeName") or ""


def services(objects):
    """{"namespace:name": Service} with the hints and Nodes of their EndpointSlices."""
    out = {}
    for o in objects:
        if o.get("kind") == "Service":
            s = Service(o)
            out["%s:%s" % (s.namespace, s.name)] = s
    for o in objects:
        if o.get("kind") != "EndpointSlice":
            continue
        meta = o.get("metadata", {})
        key = "%s:%s" % (meta.get("namespace", "default"), (meta.get("labels") or {}).get("kubernetes.io/service-name"))
        if key in out:
            out[key].add_slice(o)
    return out


def service_of(cluster_name):
    """"shop:frontend:http" -> "shop:frontend"."""
    return ":".join(cluster_name.split(":")[:2])


def addresses(la):
    return [lb["endpoint"]["address"]["socketAddress"]["address"]
            for lle in la.get("endpoints", []) for lb in lle.get("lbEndpoints", [])]


class Rules:
    """The rules over one set of manifests and the plain assignments made of them."""

    def __init__(self, objects, plain_las):
        self.services = services(objects)
        self.plain = {la["clusterName"]: la for la in plain_las}
        served = {}
        for name, la in self.plain.items():
            served.setdefault(service_of(name), set()).update(addresses(la))
        self.served = served

    def hints_complete(self, svc):
        served = self.served.get("%s:%s" % (svc.namespace, svc.name), set())
        return bool(served) and all(svc.hints.get(a) for a in served)

    def prefers_close(self, cluster_name):
        """(applies, node first, hints count) for a cluster."""
        svc = self.services.get(service_of(cluster_name))
        if svc is None:
            return False, False, False
        complete = self.hints_complete(svc)
        if svc.traffic_distribution in CLOSE_VALUES:
            return True, svc.traffic_distribution == "PreferSameNode", complete
        if svc.topology_auto and complete:
            return True, False, True
        return False, False, False

    def expected(self, cluster_name, region="", zone="", node=""):
        """The ClusterLoadAssignment a client at (region, zone, node) gets, as proto3 JSON (priority 0 omitted)."""
        plain = self.plain[cluster_name]
        applies, node_first, hints = self.prefers_close(cluster_name)
        if not applies or not zone:
            return plain
        svc = self.services[service_of(cluster_name)]
        groups = [[] for _ in range(5)]  # per group: [(locality, lbEndpoint)]
        for lle in plain.get("endpoints", []):
            loc = lle.get("locality", {})
            ep_region, ep_zone = loc.get("region", ""), loc.get("zone", "")
            for lb in lle.get("lbEndpoints", []):
                addr = lb["endpoint"]["address"]["socketAddress"]["address"]
                if node_first and node and svc.nodes.get(addr) == node:
                    g = 0
                elif hints and zone in (svc.hints.get(addr) or []):
                    g = 1
                elif ep_zone == zone and (not region or not ep_region or ep_region == region):
                    g = 2
                elif region and ep_region == region:
                    g = 3
                else:
                    g = 4
                groups[g].append((loc, lb))
        used = [g for g in groups if g]
        if len(used) <= 1:
            return plain
        out = {k: v for k, v in plain.items() if k != "endpoints"}
        out["endpoints"] = []
        for priority, group in enumerate(used):
            by_loc = {}
            for loc, lb in group:
                by_loc.setdefault(json.dumps(loc, sort_keys=True), (loc, []))[1].append(lb)
            for loc, lbs in by_loc.values():
                lle = {"locality": loc, "lbEndpoints": lbs, "loadBalancingWeight": len(lbs)}
                if priority:
                    lle["priority"] = priority
                out["endpoints"].append(lle)
        return out


def canonical(la):
    """A ClusterLoadAssignment in a form that ignores the order of localities and of endpoints within one (the
    rules say which endpoints go where, not in which order): its other fields, and the sorted
    (priority, locality, weight, endpoints) of each LocalityLbEndpoints."""
    rest = {k: v for k, v in la.items() if k != "endpoints"}
    groups = sorted((lle.get("priority", 0), json.dumps(lle.get("locality", {}), sort_keys=True),
                     lle.get("loadBalancingWeight"),
                     sorted(json.dumps(lb, sort_keys=True) for lb in lle.get("lbEndpoints", [])))
                    for lle in la.get("endpoints", []))
    return json.dumps(rest, sort_keys=True), groups


def priorities(la):
    """The sorted set of priorities an assignment uses."""
    return sorted({lle.get("priority", 0) for lle in la.get("endpoints", [])})
