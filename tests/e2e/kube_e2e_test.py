"""tests/e2e/kube_e2e_test.py: Kubernetes API -> ekglue -> gRPC's own xDS client -> real backends, end to end.

Pieces (all on 127.0.0.x, every wait bounded, every process and server stopped in tearDown):
  - an in-process FakeAPIServer (tests/fakeapi/fakeapi.py) holding Service test/echo (port "grpc"), one
    EndpointSlice echo-1 that lists the backend addresses (each endpoint on a Node), and Nodes node-1..3 with
    topology labels (node-1, node-2 in zone-a, node-3 in zone-b); plain HTTP, or TLS + bearer token for the
    token-rotation scenario;
  - `ekglue serve --master URL` (or --kubeconfig written by the fake) as a subprocess (xdsclient.EkglueServer);
  - real gRPC backends on 127.0.0.1, 127.0.0.2, ... (same port) answering /ekglue.test.Echo/Who with their name;
  - gRPC's xDS client in a subprocess (grpc_client.py) calling xds:///echo.test:grpc in a loop, one line per RPC;
  - a raw ADS stream (CDS wildcard + EDS for test:echo:grpc, every response ACKed and recorded with its arrival
    time) for the precise checks: versions, number of pushes, localities, health statuses.

Scenarios:
  1. scale up / down: a new slice address gets traffic; a removed one stops getting it within coalescing + 1 s.
  2. rolling update: three backends replaced one by one (new ready -> old serving+terminating -> old removed ->
     old stopped) without a single failed RPC; a burst of 20 slice updates within 100 ms gives at most 3 EDS
     pushes; updates every 75 ms for 1.5 s are published no later than coalesce_max_ms after the first one.
  3. a Node relabelled into another zone: the ClusterLoadAssignment shows the endpoint under the new locality.
  4. API outage (the fake stopped, a new one started on the same port with the same objects at a higher
     resourceVersion; and a 5xx variant): RPCs keep reaching every backend, health stays SERVING, no EDS push
     (certainly none with fewer endpoints), and after recovery changes flow again.
  5. 410 storms, HTTP 410 and ERROR-event forms: the watcher relists, and nothing new is pushed.
  6. token rotation over TLS with a kubeconfig tokenFile: after the 401 the token is re-read and changes flow.
  7. health: NOT_SERVING (and no CDS answer) while the fake delays the first list, SERVING afterwards.
"""
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from concurrent import futures

import grpc
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import skips  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "xds"))
sys.path.insert(0, os.path.join(HERE, "..", "fakeapi"))
import fakeapi  # noqa: E402
import xdsclient as xc  # noqa: E402

PYTHON = "/usr/bin/python3"
CLUSTER = "test:echo:grpc"
TARGET = "xds:///echo.test:grpc"
COALESCE_MS, COALESCE_MAX_MS = 100, 1000
PATHS = ("/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices", "/api/v1/nodes")
CLA_TYPE = "envoy.config.endpoint.v3.ClusterLoadAssignment"
# envoy.config.core.v3.HealthStatus
HEALTHY, DRAINING = 1, 3
NODE_ZONES = {"node-1": "zone-a", "node-2": "zone-a", "node-3": "zone-b"}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def addr(i):
    return "127.0.0.%d" % i


def name_of(address):
    """Backend name for 127.0.0.N: bN."""
    return "b%s" % address.rsplit(".", 1)[1]


def wait_until(pred, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


class Backend:
    """A gRPC server on address:port answering /ekglue.test.Echo/Who with its name (bN for 127.0.0.N)."""

    def __init__(self, address, port):
        self.address, self.name = address, name_of(address)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        name = self.name.encode()
        handler = grpc.method_handlers_generic_handler(
            "ekglue.test.Echo", {"Who": grpc.unary_unary_rpc_method_handler(lambda req, ctx: name)})
        self.server.add_generic_rpc_handlers((handler,))
        if self.server.add_insecure_port("%s:%d" % (address, port)) == 0:
            raise RuntimeError("cannot bind %s:%d" % (address, port))
        self.server.start()
        self.stopped = False

    def stop(self, grace=None):
        if not self.stopped:
            self.stopped = True
            self.server.stop(grace).wait(5)


class Client:
    """gRPC's xDS client in a subprocess; a thread collects its "<time> <backend|ERR:code>" lines."""

    def __init__(self, bootstrap, duration=90.0, interval=0.02):
        env = dict(os.environ, GRPC_XDS_BOOTSTRAP=bootstrap)
        self.proc = subprocess.Popen([PYTHON, os.path.join(HERE, "grpc_client.py"), TARGET, str(duration),
                                      str(interval)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env, text=True)
        self.lines, self.lock = [], threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) == 2:
                with self.lock:
                    self.lines.append((float(parts[0]), parts[1]))

    def between(self, t0, t1=float("inf")):
        with self.lock:
            return [(t, who) for t, who in self.lines if t0 < t <= t1]

    def reached(self, t0, t1=float("inf")):
        return {who for t, who in self.between(t0, t1) if not who.startswith("ERR")}

    def errors(self, t0=0.0, t1=float("inf")):
        return [(t, who) for t, who in self.between(t0, t1) if who.startswith("ERR")]

    def wait_reach(self, names, after, timeout):
        """Waits until every backend in names answered an RPC sent after `after`; returns what was reached."""
        names = set(names)
        wait_until(lambda: names <= self.reached(after), timeout)
        return self.reached(after)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        self.thread.join(timeout=5)
        self.proc.stdout.close()


def cla_endpoints(resp):
    """{address: (zone, health_status)} of the ClusterLoadAssignments in an EDS response."""
    out = {}
    for any_msg in resp.resources:
        cla = xc.unpack(any_msg, CLA_TYPE)
        for lle in cla.endpoints:
            for lb in lle.lb_endpoints:
                out[lb.endpoint.address.socket_address.address] = (lle.locality.zone, lb.health_status)
    return out


class AdsRecorder:
    """A raw ADS stream: wildcard CDS, then EDS for CLUSTER; every response is ACKed and recorded as
    (arrival monotonic time, response)."""

    def __init__(self, channel, node_id="raw-recorder"):
        self.stream = xc.XdsStream(channel)
        self.log, self.cond = [], threading.Condition()
        self._stop = threading.Event()
        self._eds_sent = False
        self.stream.send(xc.CLUSTER_URL, node_id=node_id)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            resp = self.stream.recv(timeout=0.2)
            if resp is None:
                if self.stream.ended.is_set():
                    return
                continue
            with self.cond:
                self.log.append((time.monotonic(), resp))
                self.cond.notify_all()
            if resp.type_url == xc.CLUSTER_URL:
                self.stream.ack(resp)
                if not self._eds_sent:
                    self._eds_sent = True
                    self.stream.send(xc.CLA_URL, names=[CLUSTER])
            elif resp.type_url == xc.CLA_URL:
                self.stream.ack(resp, names=[CLUSTER])

    def responses(self, type_url=None, since=0.0):
        with self.cond:
            return [(t, r) for t, r in self.log if t > since and (type_url is None or r.type_url == type_url)]

    def latest(self, type_url):
        rs = self.responses(type_url)
        return rs[-1][1] if rs else None

    def endpoints(self):
        r = self.latest(xc.CLA_URL)
        return cla_endpoints(r) if r is not None else {}

    def wait_endpoints(self, pred, timeout):
        """Waits until pred(latest endpoints) holds; returns the latest endpoints."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                eds = [r for _, r in self.log if r.type_url == xc.CLA_URL]
                cur = cla_endpoints(eds[-1]) if eds else None
                if cur is not None and pred(cur):
                    return cur
                left = deadline - time.monotonic()
                if left <= 0:
                    return cur
                self.cond.wait(left)

    def versions(self):
        c, e = self.latest(xc.CLUSTER_URL), self.latest(xc.CLA_URL)
        return (c.version_info if c else None, e.version_info if e else None)

    def close(self):
        self._stop.set()
        self.stream.cancel()
        self.thread.join(timeout=5)


class KubeE2E(xc.LogOnFailure, unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ekglue-kube-e2e-")
        self.port = free_port()
        self.backends, self.clients, self.fakes, self.recorders, self.channels = {}, [], [], [], []
        self.server = None
        # The slice's endpoints: address -> {"node", "ready", "serving", "terminating"}, in order.
        self.eps = {}

    def tearDown(self):
        for r in self.recorders:
            r.close()
        for c in self.clients:
            c.stop()
        for ch in self.channels:
            ch.close()
        if self.server:
            t = time.monotonic()
            self.server.stop(timeout=10)
            stop_s = time.monotonic() - t
        for b in self.backends.values():
            b.stop()
        for f in self.fakes:
            f.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.server:  # after everything is stopped, so that a failure here leaks nothing
            xc.check_clean_exit(self, self.server)  # exit 0 on SIGTERM within 10 s, no sanitizer report
            self.assertLess(stop_s, 5.0, "ekglue serve took %.1f s to stop" % stop_s)

    # --- setup helpers -----------------------------------------------------------------------------------------

    def start_fake(self, port=0, start_rv=100, tls=False, token=None, load=True):
        fake = fakeapi.FakeAPIServer("127.0.0.1", port, tls=tls, token=token, start_rv=start_rv)
        self.fakes.append(fake)
        if load:
            for n, zone in NODE_ZONES.items():
                fake.create(fakeapi.node(n, zone=zone, region="region-1"))
            fake.create(fakeapi.service("echo", "test", ports=(("grpc", self.port, self.port),)))
            fake.create(self.slice_obj())
        fake.start()
        return fake

    def add_backend(self, i, ready=True):
        """Starts the backend on 127.0.0.i and lists it in the slice model (not yet applied)."""
        a = addr(i)
        self.backends[a] = Backend(a, self.port)
        self.eps[a] = {"node": "node-%d" % ((i - 1) % 3 + 1), "ready": ready, "serving": ready,
                       "terminating": False}
        return a

    def slice_obj(self):
        eps = [{"addresses": [a], "nodeName": e["node"],
                "conditions": {"ready": e["ready"], "serving": e["serving"], "terminating": e["terminating"]}}
               for a, e in self.eps.items()]
        return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1", "addressType": "IPv4",
                "metadata": {"name": "echo-1", "namespace": "test",
                             "labels": {"kubernetes.io/service-name": "echo"}},
                "ports": [{"name": "grpc", "port": self.port, "protocol": "TCP"}], "endpoints": eps}

    def push_slice(self, fake):
        """Applies the slice model to the fake; returns the monotonic time right after."""
        fake.update(self.slice_obj())
        return time.monotonic()

    def start_ekglue(self, source_args):
        args = list(source_args) + ["--coalesce-ms", str(COALESCE_MS), "--coalesce-max-ms", str(COALESCE_MAX_MS)]
        self.server = xc.EkglueServer(extra_args=args, log_level="debug")
        return self.server

    def channel(self):
        ch = self.server.channel()
        self.channels.append(ch)
        return ch

    def start_client(self, node_id="kube-e2e-client"):
        bootstrap = os.path.join(self.dir, "bootstrap-%s.json" % node_id)
        with open(bootstrap, "w") as f:
            json.dump({"xds_servers": [{"server_uri": "127.0.0.1:%d" % self.server.port,
                                        "channel_creds": [{"type": "insecure"}],
                                        "server_features": ["xds_v3"]}],
                       "node": {"id": node_id, "locality": {"zone": "zone-a"}}}, f)
        c = Client(bootstrap)
        self.clients.append(c)
        return c

    def start_recorder(self):
        r = AdsRecorder(self.channel())
        self.recorders.append(r)
        return r

    def log_tail(self, n=4000):
        # The whole log is printed after the test's FAIL line (xc.LogOnFailure); the tail keeps the message useful.
        return "\n--- ekglue log (tail; all of it follows the test's FAIL line) ---\n" + (
            self.server.log()[-n:] if self.server else "")

    def setup_all(self, n_backends=3, source_args=None, **fake_kw):
        """Backends 127.0.0.1..n, the fake, ekglue, the raw recorder (first CDS/EDS received) and a client
        that reaches every backend."""
        for i in range(1, n_backends + 1):
            self.add_backend(i)
        fake = self.start_fake(**fake_kw)
        self.start_ekglue(source_args if source_args is not None else ["--master", fake.url])
        rec = self.start_recorder()
        want = set(self.eps)
        got = rec.wait_endpoints(lambda eps: set(eps) == want, timeout=10)
        self.assertEqual(set(got or {}), want, "raw EDS never showed all backends" + self.log_tail())
        t0 = time.monotonic()
        client = self.start_client()
        names = {name_of(a) for a in self.eps}
        reached = client.wait_reach(names, 0.0, timeout=15)
        self.assertEqual(reached, names, "client did not reach every backend" + self.log_tail())
        self.assertEqual(client.errors(), [])
        print("setup: client reached all %d backends %.2f s after start" % (len(names), time.monotonic() - t0))
        return fake, rec, client

    def assert_stops_reaching(self, client, name, changed_at, others):
        """name gets no RPC later than coalescing + 1 s after changed_at; others keep getting traffic."""
        bound = COALESCE_MS / 1000.0 + 1.0
        wait_until(lambda: client.between(changed_at + bound + 1.0), timeout=5)
        time.sleep(0.5)
        last = max([t for t, who in client.between(changed_at) if who == name], default=changed_at)
        after = client.between(changed_at + bound)
        self.assertGreater(len(after), 10, "too few RPCs after the change: %s" % after[-5:])
        self.assertNotIn(name, {w for _, w in after},
                         "%s still reached %.2f s after its removal" % (name, last - changed_at) + self.log_tail())
        self.assertEqual({w for _, w in after if not w.startswith("ERR")}, set(others))
        return last - changed_at

    # --- 1. scale up and down ----------------------------------------------------------------------------------

    def test_1_scale_up_and_down(self):
        fake, rec, client = self.setup_all()
        # Up: 127.0.0.4 joins the slice.
        self.add_backend(4)
        t = self.push_slice(fake)
        reached = client.wait_reach({"b4"}, t, timeout=COALESCE_MS / 1000.0 + 3)
        self.assertIn("b4", reached, "new backend never reached" + self.log_tail())
        first = min(tt for tt, who in client.between(t) if who == "b4")
        print("scale up: first RPC to the new backend %.3f s after the change" % (first - t))
        self.assertLess(first - t, COALESCE_MS / 1000.0 + 1.0)
        self.assertEqual(client.wait_reach({"b1", "b2", "b3", "b4"}, t, timeout=5), {"b1", "b2", "b3", "b4"})
        # Down: 127.0.0.2 leaves the slice (its server keeps running: only the config can stop the traffic).
        del self.eps[addr(2)]
        t = self.push_slice(fake)
        took = self.assert_stops_reaching(client, "b2", t, {"b1", "b3", "b4"})
        print("scale down: removed backend's last RPC %.3f s after the change" % took)
        self.assertEqual(set(rec.endpoints()), {addr(1), addr(3), addr(4)})
        self.assertEqual(client.errors(), [])

    # --- 2. rolling update, coalescing -------------------------------------------------------------------------

    def test_2_rolling_update_and_coalescing(self):
        fake, rec, client = self.setup_all()
        start = time.monotonic()
        eds_before = len(rec.responses(xc.CLA_URL))
        events = 0
        for i in range(3):
            old, new = addr(1 + i), addr(4 + i)
            # A new pod becomes ready.
            self.add_backend(4 + i)
            t = self.push_slice(fake)
            events += 1
            self.assertIn(name_of(new), client.wait_reach({name_of(new)}, t, timeout=5),
                          "new backend %s not reached" % new + self.log_tail())
            # The old pod is terminating, still serving: DRAINING, no new RPCs.
            self.eps[old].update(ready=False, serving=True, terminating=True)
            t = self.push_slice(fake)
            events += 1
            got = rec.wait_endpoints(lambda eps: eps.get(old, (None, None))[1] == DRAINING, timeout=5)
            self.assertEqual(got.get(old, (None, None))[1], DRAINING, "old endpoint not DRAINING: %s" % got)
            # Its server still runs, but a DRAINING endpoint gets no new RPCs from gRPC.
            bound = COALESCE_MS / 1000.0 + 1.0
            wait_until(lambda: client.between(t + bound + 0.3), timeout=5)
            self.assertNotIn(name_of(old), client.reached(t + bound),
                             "DRAINING %s still reached %.1f s after it started terminating" % (old, bound))
            # The old pod is gone from the slice, then its process ends.
            del self.eps[old]
            t = self.push_slice(fake)
            events += 1
            got = rec.wait_endpoints(lambda eps: old not in eps, timeout=5)
            self.assertNotIn(old, got)
            wait_until(lambda: client.between(t + COALESCE_MS / 1000.0 + 1.0), timeout=5)
            self.backends[old].stop(grace=1.0)
        time.sleep(0.5)
        final = {addr(4), addr(5), addr(6)}
        self.assertEqual(client.wait_reach({"b4", "b5", "b6"}, time.monotonic(), timeout=5), {"b4", "b5", "b6"})
        self.assertEqual(client.errors(start), [], "failed RPCs during the rolling update" + self.log_tail())
        pushes = rec.responses(xc.CLA_URL)[eds_before:]
        for _, r in pushes:
            healthy = [a for a, (_, h) in cla_endpoints(r).items() if h in (0, HEALTHY)]
            self.assertGreaterEqual(len(healthy), 2, "an EDS push left fewer than 2 usable endpoints: %s" %
                                    cla_endpoints(r))
        self.assertLessEqual(len(pushes), events)
        self.assertEqual(set(rec.endpoints()), final)
        print("rolling update: %d events, %d EDS pushes, no failed RPC" % (events, len(pushes)))

        # Burst: 20 slice updates within 100 ms (each adds one DRAINING endpoint that gRPC must not use).
        eds_before = len(rec.responses(xc.CLA_URL))
        t0 = time.monotonic()
        for k in range(20):
            self.eps[addr(10 + k)] = {"node": "node-1", "ready": False, "serving": True, "terminating": True}
            self.push_slice(fake)
        burst = time.monotonic() - t0
        self.assertLess(burst, 0.1, "the burst itself took %.3f s" % burst)
        want = final | {addr(10 + k) for k in range(20)}
        got = rec.wait_endpoints(lambda eps: set(eps) == want, timeout=COALESCE_MAX_MS / 1000.0 + 3)
        self.assertEqual(set(got), want, self.log_tail())
        time.sleep(COALESCE_MAX_MS / 1000.0 + 0.5)  # anything still coming
        pushes = rec.responses(xc.CLA_URL)[eds_before:]
        print("burst: 20 updates in %.3f s -> %d EDS pushes" % (burst, len(pushes)))
        self.assertLessEqual(len(pushes), 3, "20 updates in 100 ms gave %d EDS pushes" % len(pushes))
        self.assertGreaterEqual(len(pushes), 1)

        # A steady trickle (every 75 ms, each within coalesce_ms of the previous one) for 1.5 s: coalesce_max_ms
        # still forces a push, and the trickle does not become one push per update.
        eds_before = len(rec.responses(xc.CLA_URL))
        t0 = time.monotonic()
        sent = []
        for k in range(20):
            self.eps.pop(addr(10 + k))
            sent.append(self.push_slice(fake))
            time.sleep(0.075)
        got = rec.wait_endpoints(lambda eps: set(eps) == final, timeout=COALESCE_MAX_MS / 1000.0 + 3)
        self.assertEqual(set(got), final)
        time.sleep(COALESCE_MAX_MS / 1000.0 + 0.3)
        pushes = rec.responses(xc.CLA_URL)[eds_before:]
        first = pushes[0][0] - t0 if pushes else None
        print("trickle: 20 updates over %.2f s -> %d EDS pushes, first after %.3f s" %
              (1.5, len(pushes), first or -1))
        self.assertTrue(pushes)
        self.assertLess(first, COALESCE_MAX_MS / 1000.0 + 0.4,
                        "first push %.3f s after the first update (coalesce_max_ms=%d)" % (first, COALESCE_MAX_MS))
        # At most one push per coalesce_max_ms of trickle, one after it, and one per gap in which the sender
        # itself fell behind by more than coalesce_ms (a loaded machine): never one per update.
        span = sent[-1] - sent[0]
        late = sum(1 for x, y in zip(sent, sent[1:]) if y - x > COALESCE_MS / 1000.0)
        allowed = max(4, math.ceil(span / (COALESCE_MAX_MS / 1000.0)) + 1 + late)
        self.assertLessEqual(len(pushes), allowed, "a 75 ms trickle over %.2f s (%d gaps over %d ms) gave %d "
                             "pushes" % (span, late, COALESCE_MS, len(pushes)))
        self.assertEqual(client.errors(start), [], "failed RPCs during the bursts" + self.log_tail())

    # --- 3. node relabelled ------------------------------------------------------------------------------------

    def test_3_node_moves_zone(self):
        fake, rec, client = self.setup_all()
        eps = rec.endpoints()
        self.assertEqual({a: z for a, (z, _) in eps.items()},
                         {addr(1): "zone-a", addr(2): "zone-a", addr(3): "zone-b"})
        cds_version, eds_version = rec.versions()
        t = time.monotonic()
        fake.update(fakeapi.node("node-3", zone="zone-c", region="region-1"))
        got = rec.wait_endpoints(lambda e: e.get(addr(3), ("",))[0] == "zone-c", timeout=COALESCE_MS / 1000 + 3)
        self.assertEqual(got.get(addr(3), ("",))[0], "zone-c", "endpoint not moved to zone-c: %s" % got +
                         self.log_tail())
        took = rec.responses(xc.CLA_URL)[-1][0] - t
        print("node relabel: EDS push with the new locality %.3f s after the change" % took)
        self.assertEqual({a: z for a, (z, _) in got.items()},
                         {addr(1): "zone-a", addr(2): "zone-a", addr(3): "zone-c"})
        cla = xc.unpack(rec.latest(xc.CLA_URL).resources[0], CLA_TYPE)
        zones = sorted(lle.locality.zone for lle in cla.endpoints)
        self.assertEqual(zones, ["zone-a", "zone-c"], "a locality may appear once, zone-b must be gone")
        for lle in cla.endpoints:
            self.assertEqual(lle.locality.region, "region-1")
            self.assertGreater(lle.load_balancing_weight.value, 0)
        self.assertNotEqual(rec.versions()[1], eds_version)
        self.assertEqual(rec.versions()[0], cds_version)
        self.assertEqual(rec.responses(xc.CLUSTER_URL, since=t), [], "a Node change must not push Clusters")
        self.assertEqual(client.wait_reach({"b1", "b2", "b3"}, time.monotonic(), timeout=5), {"b1", "b2", "b3"})
        self.assertEqual(client.errors(), [])

    # --- 4. API outage -----------------------------------------------------------------------------------------

    def _outage_checks(self, rec, client, outage_s, n_eds, t_out):
        """During an outage of outage_s seconds: health SERVING, RPCs reach every backend; returns at its end."""
        ch = self.channel()
        names = {name_of(a) for a in self.eps}
        deadline = t_out + outage_s
        while time.monotonic() < deadline:
            self.assertEqual(xc.health_check(ch, "", timeout=2), xc.SERVING, "health changed during the outage")
            time.sleep(0.25)
        self.assertEqual(client.reached(deadline - 1.5, deadline), names,
                         "not every backend reached late in the outage")
        self.assertEqual(client.errors(t_out), [])
        self.assertEqual(len(rec.responses(xc.CLA_URL)), n_eds, "EDS pushed during the outage: %s" %
                         [cla_endpoints(r) for _, r in rec.responses(xc.CLA_URL, since=t_out)])

    def _after_recovery(self, fake, rec, client, t_back, versions):
        """After the API is back: a relist, no push for unchanged content, then a change flows again."""
        for p in PATHS:
            self.assertTrue(fake.wait_for_watchers(1, prefix=p, timeout=15),
                            "no watch on %s after recovery" % p + self.log_tail())
        print("recovery: every resource watched again %.2f s after the API came back" % (time.monotonic() - t_back))
        time.sleep(1.5)
        self.assertEqual(rec.versions(), versions)
        for _, r in rec.responses(xc.CLA_URL, since=t_back):
            self.assertGreaterEqual(len(cla_endpoints(r)), 3, "EDS push with fewer endpoints: %s" % cla_endpoints(r))
        self.assertEqual(rec.responses(since=t_back), [], "pushes after recovery with unchanged objects")
        del self.eps[addr(3)]
        t = self.push_slice(fake)
        got = rec.wait_endpoints(lambda e: addr(3) not in e, timeout=5)
        self.assertNotIn(addr(3), got, "a change after recovery was not pushed" + self.log_tail())
        took = self.assert_stops_reaching(client, "b3", t, {"b1", "b2"})
        print("after recovery: change reached the client; removed backend's last RPC %.3f s after" % took)

    def test_4a_api_server_restarts_after_outage(self):
        fake, rec, client = self.setup_all()
        versions, n_eds = rec.versions(), len(rec.responses(xc.CLA_URL))
        saved = {k: fake.objects(k) for k in ("Node", "Service", "EndpointSlice")}
        api_port = fake.port
        t_out = time.monotonic()
        fake.stop()
        self._outage_checks(rec, client, 4.0, n_eds, t_out)
        # The same objects behind the same port, but a fresh history at a higher resourceVersion.
        fake2 = fakeapi.FakeAPIServer("127.0.0.1", api_port, start_rv=5000)
        self.fakes.append(fake2)
        for k in ("Node", "Service", "EndpointSlice"):
            for o in saved[k]:
                fake2.create(o)
        t_back = time.monotonic()
        fake2.start()
        self._after_recovery(fake2, rec, client, t_back, versions)
        relists = fake2.requests(watch=False)
        self.assertTrue(all(any(r["path"] == p for r in relists) for p in PATHS),
                        "no relist of every resource: %s" % [(r["path"], r["status"]) for r in relists])
        self.assertEqual(client.errors(), [])

    def test_4b_api_answers_503_for_seconds(self):
        fake, rec, client = self.setup_all()
        versions, n_eds = rec.versions(), len(rec.responses(xc.CLA_URL))
        t_out = time.monotonic()
        fid = fake.arm("error", prefix="/", count=None, code=503)
        fake.close_watches()
        self._outage_checks(rec, client, 3.5, n_eds, t_out)
        failed = [r for r in fake.requests() if r["status"] == 503]
        self.assertTrue(failed, "ekglue did not retry during the outage")
        fake.disarm(fid)
        t_back = time.monotonic()
        self._after_recovery(fake, rec, client, t_back, versions)
        self.assertEqual(client.errors(), [])

    def test_4c_objects_change_during_outage(self):
        """Deleted and changed while the API was unreachable: the relist after recovery applies both."""
        for i in range(1, 4):
            self.add_backend(i)
        fake = self.start_fake()
        fake.create(fakeapi.service("other", "test", ports=(("grpc", 9000, 9000),), cluster_ip="10.96.0.11"))
        other = fakeapi.endpointslice("other-1", "test", service_name="other", addresses=("10.1.0.1",), port=9000,
                                      port_name="grpc")
        fake.create(other)
        self.start_ekglue(["--master", fake.url])
        rec = self.start_recorder()
        self.assertEqual(set(rec.wait_endpoints(lambda e: len(e) == 3, timeout=10) or {}), set(self.eps))
        wait_until(lambda: rec.latest(xc.CLUSTER_URL), timeout=5)
        self.assertEqual(sorted(xc.resource_names(rec.latest(xc.CLUSTER_URL))), [CLUSTER, "test:other:grpc"])
        client = self.start_client()
        self.assertEqual(client.wait_reach({"b1", "b2", "b3"}, 0, timeout=15), {"b1", "b2", "b3"})
        api_port, n_eds = fake.port, len(rec.responses(xc.CLA_URL))
        fake.stop()
        t_out = time.monotonic()
        self._outage_checks(rec, client, 2.0, n_eds, t_out)
        # Meanwhile: Service "other" and its slice were deleted, 127.0.0.3 left echo's slice.
        del self.eps[addr(3)]
        fake2 = fakeapi.FakeAPIServer("127.0.0.1", api_port, start_rv=9000)
        self.fakes.append(fake2)
        for n, zone in NODE_ZONES.items():
            fake2.create(fakeapi.node(n, zone=zone, region="region-1"))
        fake2.create(fakeapi.service("echo", "test", ports=(("grpc", self.port, self.port),)))
        fake2.create(self.slice_obj())
        t_back = time.monotonic()
        fake2.start()
        got = rec.wait_endpoints(lambda e: addr(3) not in e, timeout=15)
        self.assertEqual(set(got), {addr(1), addr(2)}, "relist did not apply the change" + self.log_tail())
        ok = wait_until(lambda: rec.latest(xc.CLUSTER_URL) and
                        xc.resource_names(rec.latest(xc.CLUSTER_URL)) == [CLUSTER], timeout=5)
        self.assertTrue(ok, "deleted Service's cluster still served: %s" %
                        xc.resource_names(rec.latest(xc.CLUSTER_URL)) + self.log_tail())
        took = self.assert_stops_reaching(client, "b3", rec.responses(xc.CLA_URL)[-1][0], {"b1", "b2"})
        print("outage with changes: applied %.2f s after the API came back" %
              (rec.responses(xc.CLA_URL)[-1][0] - t_back))
        self.assertEqual(client.errors(), [])

    # --- 5. 410 storms -----------------------------------------------------------------------------------------

    def _storm(self, fake, rec, trigger, label):
        versions = rec.versions()
        mark = fake.last_request_id()
        log_mark = self.server.nlines()
        t = time.monotonic()
        trigger()
        # Every resource relists (a list request after the storm), and watches again.
        for p in PATHS:
            self.assertIsNotNone(fake.wait_for_request(lambda e: not e["watch"], prefix=p, since=mark, timeout=10),
                                 "%s: no relist of %s" % (label, p) + self.log_tail())
        for p in PATHS:
            self.assertTrue(fake.wait_for_watchers(1, prefix=p, timeout=10), "%s: no watch on %s" % (label, p))
        wait_until(lambda: time.monotonic() > t + 2.0, timeout=3)
        new = rec.responses(since=t)
        self.assertEqual(new, [], "%s: relist of unchanged objects pushed %s" %
                         (label, [(r.type_url, r.version_info) for _, r in new]) + self.log_tail())
        self.assertEqual(rec.versions(), versions)
        # No hot loop: a handful of requests per resource, not hundreds.
        for p in PATHS:
            n = len(fake.requests(prefix=p, since=mark))
            self.assertLessEqual(n, 10, "%s: %d requests on %s within 2 s of the storm" % (label, n, p))
        too_old = [l for l in self.server.log().splitlines()[log_mark:] if "too old, relisting" in l]
        self.assertTrue(too_old, "%s: ekglue did not log a too-old relist" % label)
        statuses = sorted({(r["status"], r.get("end")) for r in fake.requests(since=mark, watch=True)}, key=str)
        print("%s: %d too-old relists logged, watch outcomes %s, no push" % (label, len(too_old), statuses))

    def test_5_410_storms_relist_without_pushes(self):
        fake, rec, client = self.setup_all()
        start = time.monotonic()
        # HTTP form: every watch that names an RV gets 410 (two per resource), after compaction.
        self._storm(fake, rec, lambda: (fake.arm("storm", count=6, watch=True, mode="http"),
                                                fake.close_watches()), "storm/http")
        # Event form: 200 + ERROR 410 on the open watches, then ERROR 410 again on the next watches.
        self._storm(fake, rec, lambda: (fake.arm("storm", count=3, watch=True, mode="event"),
                                                fake.compact(), fake.close_watches(too_old=True)), "storm/event")
        # Watching again for real: a change still flows.
        self.add_backend(4)
        t = self.push_slice(fake)
        self.assertIn("b4", client.wait_reach({"b4"}, t, timeout=5), "no change after the storms" + self.log_tail())
        self.assertEqual(client.errors(start), [])

    # --- 6. token rotation over TLS ----------------------------------------------------------------------------

    def test_6_token_rotation_with_tls_kubeconfig(self):
        for i in range(1, 4):
            self.add_backend(i)
        fake = self.start_fake(tls=True, token="first-token")
        kubeconfig = fake.write_kubeconfig(os.path.join(self.dir, "kubeconfig"))
        self.start_ekglue(["--kubeconfig", kubeconfig])
        rec = self.start_recorder()
        got = rec.wait_endpoints(lambda e: len(e) == 3, timeout=10)
        self.assertEqual(set(got or {}), set(self.eps), "no sync over TLS" + self.log_tail())
        client = self.start_client()
        self.assertEqual(client.wait_reach({"b1", "b2", "b3"}, 0, timeout=15), {"b1", "b2", "b3"})
        reqs = fake.requests()
        self.assertTrue(reqs and all(r["headers"].get("Authorization") == "Bearer first-token" for r in reqs))

        # Rotation, file written at once; watches are ended so that the next requests meet the new token.
        mark = fake.last_request_id()
        rotated_at = time.time()
        new_token = fake.rotate_token()
        fake.close_watches()
        for p in PATHS:
            ok = fake.wait_for_request(lambda e: e["status"] == 200 and e["headers"].get("Authorization") ==
                                       "Bearer " + new_token, prefix=p, since=mark, timeout=10)
            self.assertIsNotNone(ok, "%s: no request with the new token" % p + self.log_tail())
            # Re-read on the 401, not at the next periodic (one-minute) refresh.
            self.assertLess(ok["time"] - rotated_at, 3.0, "%s: new token used only after %.1f s" %
                            (p, ok["time"] - rotated_at))
        unauthorized = [r for r in fake.requests(since=mark) if r["status"] == 401]
        self.assertTrue(unauthorized, "no 401 seen: the test did not exercise the rotation")
        self.assertIsNotNone(self.server.wait_log(r"token re-read: it changed", timeout=2))
        del self.eps[addr(3)]
        t = self.push_slice(fake)
        took = self.assert_stops_reaching(client, "b3", t, {"b1", "b2"})
        print("token rotation: %d 401s, change after rotation reached the client (last b3 RPC +%.3f s)" %
              (len(unauthorized), took))

        # Rotation whose file is written 1 s late (the kubelet is slow): 401s until then, then sync again.
        mark = fake.last_request_id()
        late_token = fake.rotate_token(file_delay=1.0)
        fake.close_watches()
        for p in PATHS:
            ok = fake.wait_for_request(lambda e: e["status"] == 200 and e["headers"].get("Authorization") ==
                                       "Bearer " + late_token, prefix=p, since=mark, timeout=15)
            self.assertIsNotNone(ok, "%s: no request with the late token" % p + self.log_tail())
        self.add_backend(4)
        t = self.push_slice(fake)
        self.assertIn("b4", client.wait_reach({"b4"}, t, timeout=5), "no change after the late rotation" +
                      self.log_tail())
        self.assertEqual(client.errors(), [])
        self.assertNotIn("first-token", self.server.log())
        self.assertNotIn(new_token, self.server.log())

    # --- 7. health before the first sync -----------------------------------------------------------------------

    def test_7_health_not_serving_until_first_sync(self):
        for i in range(1, 4):
            self.add_backend(i)
        fake = self.start_fake()
        fake.arm("slow", prefix="/", count=1, watch=False, delay=2.5)
        t0 = time.monotonic()
        self.start_ekglue(["--master", fake.url])
        ch = self.channel()
        watch = xc.Watch(ch, "")
        first = watch.next(timeout=5)
        self.assertEqual(first, xc.NOT_SERVING, "health before the first sync")
        self.assertEqual(xc.health_check(ch, ""), xc.NOT_SERVING)
        rec = self.start_recorder()
        time.sleep(1.0)
        if time.monotonic() - t0 < 2.0:  # the delayed list cannot have been answered yet
            self.assertEqual(xc.health_check(ch, ""), xc.NOT_SERVING)
            self.assertEqual(rec.responses(), [], "xDS answered before the first sync: %s" %
                             [(r.type_url, xc.resource_names(r)) for _, r in rec.responses()])
        nxt = watch.next(timeout=8)
        synced_at = time.monotonic() - t0
        self.assertEqual(nxt, xc.SERVING, "health never turned SERVING" + self.log_tail())
        self.assertGreater(synced_at, 2.0, "SERVING before the delayed list was answered")
        self.assertEqual(xc.health_check(ch, ""), xc.SERVING)
        wait_until(lambda: rec.responses(xc.CLUSTER_URL), timeout=3)
        cds = rec.responses(xc.CLUSTER_URL)
        self.assertTrue(cds)
        self.assertIn(CLUSTER, xc.resource_names(cds[0][1]), "first CDS response lacks the cluster")
        print("health: NOT_SERVING until the first sync, SERVING %.2f s after start" % synced_at)
        client = self.start_client()
        self.assertEqual(client.wait_reach({"b1", "b2", "b3"}, 0, timeout=15), {"b1", "b2", "b3"})
        self.assertIsNone(watch.next(timeout=0.5), "health changed again after SERVING")
        watch.cancel()


if __name__ == "__main__":
    skips.main()
