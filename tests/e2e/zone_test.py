"""tests/e2e/zone_test.py: zone-aware endpoints with gRPC's own xDS client (proxyless gRPC), end to end (issue 11).

Four gRPC backends listen on one port: 127.0.0.1 and 127.0.0.4 on Node node-a (region r1, zone zone-a),
127.0.0.2 on node-b (r1, zone-b), 127.0.0.3 on node-c (region r2, zone zone-c). The objects file that
`ekglue serve --objects` reads describes them as the endpoints of two Services: test/echo, with
`spec.trafficDistribution: PreferClose`, and test/plain, without it (same addresses and port). The test rewrites the
file atomically (rename) to mark endpoints not ready. Client processes (grpc_client.py) carry an xDS bootstrap
whose node.locality is {region: r1, zone: zone-a}, or no locality. What is checked (issue 11's rules, which
docs/translation.md states with localities and health: ready false leaves an endpoint out):
  - a zone-a client of test/echo sends every RPC to the two zone-a backends (priority 0 = its own zone);
  - when both zone-a endpoints become not ready they leave the assignment and the client fails over to zone-b
    (priority 1: the rest of its region; zone-c is another region, priority 2) within 2 s, with no failed RPC
    beyond the in-flight one; when zone-a is ready again traffic returns to it (bounded wait, 10 s);
  - when zone-a and zone-b are both not ready, traffic goes to zone-c;
  - a client without a locality, and a zone-a client of test/plain, spread over all four backends by locality
    weight (endpoint count);
  - ekglue exits 0 at SIGTERM without a sanitizer report (xdsclient.check_clean_exit in tearDown).
Figures (failover and return times, per-backend counts) go to stdout. Every wait is bounded; every process started
here is stopped here.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "xds"))
import xdsclient  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import skips  # noqa: E402
from grpc_xds_test import Backend, free_port, write_atomically  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"

# backend name -> (address, Node); the name says the zone, so a client's output reads as zones.
BACKENDS = {
    "zone-a-1": ("127.0.0.1", "node-a"),
    "zone-a-2": ("127.0.0.4", "node-a"),
    "zone-b": ("127.0.0.2", "node-b"),
    "zone-c": ("127.0.0.3", "node-c"),
}
ZONE_A = {"zone-a-1", "zone-a-2"}
NODES = (("node-a", "r1", "zone-a"), ("node-b", "r1", "zone-b"), ("node-c", "r2", "zone-c"))
ZONE_A_LOCALITY = {"region": "r1", "zone": "zone-a"}

FAILOVER_MAX = 2.0  # s from the file's rename until every RPC goes to the next priority (issue 11)
RETURN_MAX = 10.0   # s until traffic is back in zone-a: gRPC switches once the priority-0 child is READY
STEADY = 1.5        # s of RPCs that must all go where expected once a switch is seen


def objects_yaml(port, not_ready=()):
    """Nodes node-a/b/c with their topology labels; Services test/echo (PreferClose) and test/plain (no
    trafficDistribution), port grpc=port; one EndpointSlice each over every backend, the names in not_ready with
    conditions.ready false."""
    out = []
    for name, region, zone in NODES:
        out.append("apiVersion: v1\nkind: Node\nmetadata:\n  name: %s\n  labels:\n"
                   "    topology.kubernetes.io/region: %s\n    topology.kubernetes.io/zone: %s\n"
                   % (name, region, zone))
    zone_of = {name: zone for name, _, zone in NODES}
    eps = ""
    for backend, (addr, node) in BACKENDS.items():
        eps += "- addresses: [\"%s\"]\n  nodeName: %s\n  zone: %s\n  conditions: {ready: %s}\n" % (
            addr, node, zone_of[node], "false" if backend in not_ready else "true")
    for svc, extra in (("echo", "  trafficDistribution: PreferClose\n"), ("plain", "")):
        out.append("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: test}\n"
                   "spec:\n%s  ports:\n  - {name: grpc, port: %d, targetPort: %d}\n" % (svc, extra, port, port))
        out.append("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                   "metadata: {name: %s-1, namespace: test, labels: {kubernetes.io/service-name: %s}}\n"
                   "addressType: IPv4\nports: [{name: grpc, port: %d}]\nendpoints:\n%s" % (svc, svc, port, eps))
    return "---\n".join(out)


class Client:
    """A grpc_client.py process with its own bootstrap; a thread collects its "<time> <backend|ERR:code>" lines,
    so that every wait here is bounded by the clock, not by the client printing something."""

    def __init__(self, xds_port, directory, target, node_id, locality=None, duration=40, interval=0.02):
        node = {"id": node_id}
        if locality is not None:
            node["locality"] = locality
        bootstrap = os.path.join(directory, "bootstrap-%s.json" % node_id)
        with open(bootstrap, "w") as f:
            json.dump({"xds_servers": [{"server_uri": "127.0.0.1:%d" % xds_port,
                                        "channel_creds": [{"type": "insecure"}],
                                        "server_features": ["xds_v3"]}],
                       "node": node}, f)
        self.node_id = node_id
        self.lines = []
        self.lock = threading.Lock()
        env = dict(os.environ, GRPC_XDS_BOOTSTRAP=bootstrap)
        self.proc = subprocess.Popen([PYTHON, os.path.join(HERE, "grpc_client.py"), target, str(duration),
                                      str(interval)], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            t, who = line.split()
            with self.lock:
                self.lines.append((float(t), who))

    def since(self, t0):
        """The (time, backend) lines of RPCs that ended at or after t0."""
        with self.lock:
            return [(t, who) for t, who in self.lines if t >= t0]

    def wait(self, predicate, timeout):
        """Polls predicate() until it is true or timeout seconds passed; returns its last value."""
        deadline = time.monotonic() + timeout
        while True:
            ok = predicate()
            if ok or time.monotonic() >= deadline or self.proc.poll() is not None:
                return ok
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        self.reader.join(timeout=5)
        self.proc.stdout.close()


def counts(lines):
    return dict(sorted(Counter(who for _, who in lines).items()))


def switch_time(lines, expected):
    """The time of the first RPC of the last run of lines that all went to a backend in expected (None if the
    last line did not)."""
    start = None
    for t, who in lines:
        if who in expected:
            if start is None:
                start = t
        else:
            start = None
    return start


class ZoneTest(xdsclient.LogOnFailure, unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ekglue-zone-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.port = free_port()
        self.backends = [Backend(name, addr, self.port) for name, (addr, _) in BACKENDS.items()]
        self.objects = os.path.join(self.dir, "objects.yaml")
        write_atomically(self.objects, objects_yaml(self.port))
        self.clients = []
        try:
            self.server = xdsclient.EkglueServer(objects=[self.objects])
        except xdsclient.StartError:
            for b in self.backends:  # tearDown does not run when setUp raises
                b.stop()
            raise

    def tearDown(self):
        for c in self.clients:
            c.stop()
        self.server.stop(timeout=10)
        for b in self.backends:
            b.stop()
        xdsclient.check_clean_exit(self, self.server)  # after everything is stopped: a failure leaks nothing

    def client(self, target, node_id, locality=None, **kw):
        c = Client(self.server.port, self.dir, target, node_id, locality, **kw)
        self.clients.append(c)
        return c

    @staticmethod
    def context(client, lines):
        """For a failure message: what the client saw (LogOnFailure prints ekglue's log)."""
        return "\n%s: per-backend counts %s; last RPCs %s" % (client.node_id, counts(lines), lines[-8:])

    def change(self, not_ready):
        """Rewrites the objects file with these backends not ready; returns the time of the rename."""
        write_atomically(self.objects, objects_yaml(self.port, not_ready))
        return time.monotonic()

    def await_switch(self, client, changed_at, expected, bound, what):
        """Waits (at most bound + STEADY s) until the RPCs since changed_at end with at least STEADY s of RPCs that
        all went to expected; asserts that they do and that this run began within bound s of the change. Returns
        (switch delay, the lines since the change)."""
        def settled():
            lines = client.since(changed_at)
            at = switch_time(lines, expected)
            return at is not None and lines[-1][0] - at >= STEADY
        client.wait(settled, bound + STEADY + 0.5)
        lines = client.since(changed_at)
        at = switch_time(lines, expected)
        self.assertTrue(at is not None and lines[-1][0] - at >= STEADY,
                        "%s: RPCs did not settle on %s within %.1f s of the change (%.1f s of them in a row wanted)%s"
                        % (what, sorted(expected), bound + STEADY + 0.5, STEADY, self.context(client, lines)))
        self.assertLessEqual(at - changed_at, bound, "%s: took %.3f s (bound %.1f s)%s" % (
            what, at - changed_at, bound, self.context(client, lines)))
        steady = [(t, who) for t, who in lines if t >= at]
        self.assertGreaterEqual(len(steady), 20, "%s: too few RPCs after the switch%s" % (
            what, self.context(client, lines)))
        return at - changed_at, lines

    def test_zone_a_client_stays_in_zone_and_fails_over_by_priority(self):
        client = self.client("xds:///echo.test:grpc", "zone-a-client", ZONE_A_LOCALITY)

        # 1. Every RPC goes to zone-a (priority 0), both of its backends get traffic.
        self.assertTrue(client.wait(lambda: client.since(0), 15), "no RPC within 15 s%s" % self.context(client, []))
        first = client.since(0)[0][0]
        client.wait(lambda: client.since(first)[-1][0] - first >= 3.0 and len(client.since(first)) >= 50, 6)
        lines = client.since(first)
        per = counts(lines)
        print("zone: zone-a client, all ready: %d RPCs in %.1f s: %s" % (len(lines), lines[-1][0] - first, per))
        self.assertGreaterEqual(len(lines), 50, "too few RPCs%s" % self.context(client, lines))
        self.assertEqual(set(per), ZONE_A, "a zone-a client must reach the zone-a backends only, and both%s" %
                         self.context(client, lines))

        # 2. Zone-a not ready: failover to zone-b (same region, priority 1), not zone-c (other region).
        changed_at = self.change(not_ready=ZONE_A)
        delay, lines = self.await_switch(client, changed_at, {"zone-b"}, FAILOVER_MAX, "failover to zone-b")
        errors = [who for _, who in lines if who.startswith("ERR")]
        print("zone: failover to zone-b %.3f s after the change; failed RPCs %d; since the change %s" %
              (delay, len(errors), counts(lines)))
        self.assertLessEqual(len(errors), 1, "failed RPCs during the failover: %s%s" % (
            errors, self.context(client, lines)))

        # ... and back to zone-a once it is ready again.
        changed_at = self.change(not_ready=())
        delay, lines = self.await_switch(client, changed_at, ZONE_A, RETURN_MAX, "return to zone-a")
        at = changed_at + delay
        back = counts([(t, who) for t, who in lines if t >= at])
        errors = [who for _, who in lines if who.startswith("ERR")]
        print("zone: back in zone-a %.3f s after the change; failed RPCs %d; after the return %s" %
              (delay, len(errors), back))
        self.assertEqual(set(back), ZONE_A, "both zone-a backends must get traffic again%s" %
                         self.context(client, lines))
        self.assertEqual(errors, [], "failed RPCs on the return%s" % self.context(client, lines))

        # 3. Zone-a and zone-b not ready: the only endpoint left is in the other region, zone-c.
        changed_at = self.change(not_ready=ZONE_A | {"zone-b"})
        delay, lines = self.await_switch(client, changed_at, {"zone-c"}, FAILOVER_MAX, "failover to zone-c")
        errors = [who for _, who in lines if who.startswith("ERR")]
        print("zone: failover to zone-c %.3f s after the change; failed RPCs %d; since the change %s" %
              (delay, len(errors), counts(lines)))
        self.assertLessEqual(len(errors), 1, "failed RPCs during the failover: %s%s" % (
            errors, self.context(client, lines)))

    def test_without_locality_or_preference_traffic_spreads_by_weight(self):
        # 4. No locality in the bootstrap (PreferClose Service), and a zone-a client of a Service without
        # trafficDistribution: both get every locality at priority 0, weighted by endpoint count (node-a 2 of 4).
        clients = [self.client("xds:///echo.test:grpc", "no-locality-client", None, interval=0.005),
                   self.client("xds:///plain.test:grpc", "plain-zone-a-client", ZONE_A_LOCALITY, interval=0.005)]
        for c in clients:
            c.wait(lambda: len(c.since(0)) >= 200, 20)
        for c in clients:
            lines = c.since(0)
            per = counts(lines)
            share_a = sum(n for who, n in per.items() if who in ZONE_A) / max(len(lines), 1)
            print("zone: %s: %d RPCs: %s (zone-a share %.2f, weight 2/4)" % (c.node_id, len(lines), per, share_a))
            self.assertGreaterEqual(len(lines), 200, "%s: too few RPCs%s" % (c.node_id, self.context(c, lines)))
            self.assertEqual(set(per), set(BACKENDS), "%s must reach every backend%s" % (
                c.node_id, self.context(c, lines)))
            self.assertTrue(0.3 <= share_a <= 0.7, "%s: zone-a share %.2f, expected about 0.5 (2 of 4 endpoints)%s"
                            % (c.node_id, share_a, self.context(c, lines)))


if __name__ == "__main__":
    skips.main()
