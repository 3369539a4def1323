"""tests/xds/protocol_test.py: the state-of-the-world xDS protocol of `ekglue serve`, over real gRPC streams.

One test per protocol behaviour of docs/internals/protocol.md (items 1-12; "item N" below), driven with the
raw streams of xdsclient.py. tests/unit/session_test.c holds the same rules against the session engine alone;
these tests hold them over the wire: the transport (src/xds/server.c), the file watcher and reloads of
`ekglue serve` (src/cli/serve.c) and the session (src/xds/session.c) together.

Each test starts its own `ekglue serve` on 127.0.0.1:0 with its own objects file (and config file, if any) in a
temporary directory, edits that file (rename-replace, as editors and ConfigMap swaps do) and stops the server
with SIGTERM at the end, which must exit 0 with a sanitizer-free log (so the ASan build checks every test for
leaks). Every wait is bounded. Responses are decoded with Python's protobuf from the build's descriptor sets.

The objects are written by the helpers below (Services and EndpointSlices in namespace "app"); cluster names are
"app:<service>:<port name>", Listener names for proxyless gRPC "<service>.app:<port>" and
"<service>.app:<port name>".

Tests 16 and 17 hold behaviours found missing while these were written (see their docstrings): a first request
carrying a nonce from an earlier stream, and a Service port named like a number.

Each test needs its own server (they edit its file); starting one takes a few tens of milliseconds, and the file
runs in about 20 s. Run by ctest with EKGLUE, EKG_SOURCE_DIR and EKG_BUILD_DIR set; /usr/bin/python3.
"""
import asyncio
import os
import shutil
import sys
import tempfile
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xdsclient as xc  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import skips  # noqa: E402

NS = "app"
SECRET_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
RUNTIME_URL = "type.googleapis.com/envoy.service.runtime.v3.Runtime"
CLA_TYPE = "envoy.config.endpoint.v3.ClusterLoadAssignment"
CLUSTER_TYPE = "envoy.config.cluster.v3.Cluster"
LISTENER_TYPE = "envoy.config.listener.v3.Listener"
HCM_TYPE = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

# A config under which a Service port's appProtocol changes its Cluster (and only its Cluster): the tests change
# Clusters by toggling appProtocol between None and H2C.
H2C = "kubernetes.io/h2c"
H2C_CONFIG = ("apiVersion: v1alpha\ncluster_config:\n  overrides:\n"
              "    - match: [{app_protocol: kubernetes.io/h2c}]\n      override: {connect_timeout: 7s}\n")

# How long "nothing arrives" is waited for. The reload debounce is 50 ms and a push takes a few ms, so a
# response that is going to come comes well within this.
QUIET = 0.5


# --- objects ------------------------------------------------------------------------------------------------

def service(name, ports=(("http", 80, None),), ns=NS):
    """A ClusterIP Service; ports are (name, port, appProtocol or None)."""
    lines = ["apiVersion: v1", "kind: Service", "metadata:", "  name: %s" % name, "  namespace: %s" % ns,
             "spec:", "  clusterIP: 10.96.0.10", "  ports:"]
    for pname, port, app in ports:
        lines += ["  - name: \"%s\"" % pname, "    port: %d" % port, "    protocol: TCP",
                  "    targetPort: %d" % (port + 8000)]
        if app:
            lines.append("    appProtocol: %s" % app)
    return "\n".join(lines) + "\n"


def endpoint_slice(svc, ips, ports=(("http", 80),), ns=NS, suffix="a"):
    """An IPv4 EndpointSlice of Service svc with ready endpoints ips; ports are the Service ports' (name, port)
    (the slice carries the target ports, port + 8000)."""
    lines = ["apiVersion: discovery.k8s.io/v1", "kind: EndpointSlice", "addressType: IPv4", "metadata:",
             "  name: %s-%s" % (svc, suffix), "  namespace: %s" % ns, "  labels:",
             "    kubernetes.io/service-name: %s" % svc, "endpoints:"]
    for ip in ips:
        lines += ["- addresses: [%s]" % ip, "  conditions: {ready: true}"]
    lines.append("ports:")
    for pname, port in ports:
        lines += ["- name: \"%s\"" % pname, "  port: %d" % (port + 8000), "  protocol: TCP"]
    return "\n".join(lines) + "\n"


def backend(name, ips, ports=(("http", 80, None),)):
    """A Service and (when ips is not empty) its EndpointSlice."""
    docs = [service(name, ports)]
    if ips:
        docs.append(endpoint_slice(name, ips, [(p[0], p[1]) for p in ports]))
    return docs


def cluster(name, port="http"):
    return "%s:%s:%s" % (NS, name, port)


def listener(name, port):
    return "%s.%s:%s" % (name, NS, port)


def decode_all(resp):
    """The decoded resources of a response."""
    full = resp.type_url[len("type.googleapis.com/"):]
    return [xc.unpack(a, full) for a in resp.resources]


def cla_by_name(resp):
    return {c.cluster_name: c for c in decode_all(resp)}


def cla_addresses(cla):
    return sorted(lb.endpoint.address.socket_address.address for loc in cla.endpoints for lb in loc.lb_endpoints)


class ProtocolTest(xc.LogOnFailure, unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ekglue-proto-")
        self.servers = []
        self.channels = []
        self.streams = []

    def tearDown(self):
        for s in self.streams:
            s.cancel()
        for ch in self.channels:
            ch.close()
        for server in self.servers:
            server.stop(timeout=15)
        shutil.rmtree(self.dir, ignore_errors=True)
        xc.check_clean_exit(self, *self.servers)

    # --- helpers -------------------------------------------------------------------------------------------

    def write(self, name, docs):
        """Writes a file of the temporary directory by rename-replace; returns its path."""
        path = os.path.join(self.dir, name)
        text = docs if isinstance(docs, str) else "---\n".join(docs)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        return path

    def start(self, docs, name="objects.yaml", config=None, log_level="debug"):
        """Writes the objects file and starts a server on it (with a config file when config is given)."""
        path = self.write(name, docs)
        extra = []
        if config is not None:
            extra = ["--config", self.write(name + ".config.yaml", config)]
        server = xc.EkglueServer([path], extra_args=extra, log_level=log_level)
        self.servers.append(server)
        return server

    def update(self, server, docs, name="objects.yaml"):
        """Rewrites the objects file and waits until the server has reloaded it; returns the reload's log line."""
        mark = server.nlines()
        self.write(name, docs)
        line = server.wait_log(r"objects loaded|keeping the previous state", timeout=5, start=mark)
        self.assertIsNotNone(line, "no reload\n" + server.log()[-3000:])
        self.assertIn("objects loaded", line, "the reload failed")
        return line

    def stream(self, server, method=xc.ADS, channel=None, **kw):
        if channel is None:
            channel = server.channel()
            self.channels.append(channel)
        s = xc.XdsStream(channel, method, **kw)
        self.streams.append(s)
        return s

    def expect(self, server, s, type_url, timeout=3.0, what=""):
        r = s.recv(timeout=timeout)
        self.assertIsNotNone(r, "no %s response %s\n%s" % (type_url.rsplit(".", 1)[-1], what,
                                                             server.log()[-3000:]))
        self.assertEqual(r.type_url, type_url, what)
        self.assertTrue(r.nonce, "a response without a nonce")
        names = xc.resource_names(r)
        self.assertEqual(len(names), len(set(names)), "a name twice in one response: %s" % names)  # item 10
        return r

    def expect_none(self, server, s, timeout=QUIET, what=""):
        r = s.recv(timeout=timeout)
        self.assertIsNone(r, "unexpected %s response %s: %s\n%s" % (
            r and r.type_url.rsplit(".", 1)[-1], what, r and xc.resource_names(r), server.log()[-3000:]))

    # --- item 2: nonces belong to a stream ---------------------------------------------------------------

    def test_01_ack_with_another_streams_nonce_is_stale(self):
        server = self.start(backend("a", ["10.0.0.1"]) + backend("b", ["10.0.0.2"]))
        ch = server.channel()
        self.channels.append(ch)
        # Stream A: CDS then EDS, so its latest EDS nonce is not B's.
        a = self.stream(server, channel=ch)
        a.send(xc.CLUSTER_URL, node_id="node-a")
        ra1 = self.expect(server, a, xc.CLUSTER_URL)
        a.ack(ra1)
        a.send(xc.CLA_URL, names=[cluster("a")])
        ra2 = self.expect(server, a, xc.CLA_URL)
        a.ack(ra2, names=[cluster("a")])
        # Stream B on the same connection: EDS for a only.
        b = self.stream(server, channel=ch)
        b.send(xc.CLA_URL, names=[cluster("a")], node_id="node-b")
        rb1 = self.expect(server, b, xc.CLA_URL)
        self.assertEqual(xc.resource_names(rb1), [cluster("a")])
        # Nonces are per stream; the test needs A's latest EDS nonce to differ from B's.
        self.assertNotEqual(ra2.nonce, rb1.nonce)
        mark = server.nlines()
        # B "ACKs" A's response and adds b: stale on B, so no effect and no response.
        b.send(xc.CLA_URL, names=[cluster("a"), cluster("b")], version=ra2.version_info, nonce=ra2.nonce)
        self.expect_none(server, b, what="to a request carrying another stream's nonce")
        # ... and a NACK carrying A's nonce is no NACK on B either.
        b.send(xc.CLA_URL, names=[cluster("a")], version=ra2.version_info, nonce=ra2.nonce,
               error="not mine")
        self.expect_none(server, b, timeout=0.2)
        self.assertIsNone(server.wait_log(r"NACK node=node-b", timeout=0.1, start=mark), server.log()[-2000:])
        # A is undisturbed: its own ACK is still the latest one, nothing is due.
        self.expect_none(server, a, timeout=0.1)
        # B's own nonce still works, and b is new to B's subscription, so it comes now (it did not before).
        b.send(xc.CLA_URL, names=[cluster("a"), cluster("b")], version=rb1.version_info, nonce=rb1.nonce)
        rb2 = self.expect(server, b, xc.CLA_URL, what="to B's own ACK adding b")
        self.assertIn(cluster("b"), xc.resource_names(rb2))
        self.assertIsNotNone(server.wait_log(r"ACK node=node-b .*type=ClusterLoadAssignment", timeout=2,
                                             start=mark))

    # --- item 2: stale nonce ------------------------------------------------------------------------------

    def test_02_stale_nonce_is_ignored(self):
        docs = lambda app_b=None, app_c=None: (  # noqa: E731
            backend("a", ["10.0.0.1"]) + backend("b", ["10.0.0.2"], ports=[("http", 80, app_b)]) +
            backend("c", ["10.0.0.3"], ports=[("http", 80, app_c)]))
        server = self.start(docs(), config=H2C_CONFIG)
        s = self.stream(server)
        s.send(xc.CLUSTER_URL, names=[cluster("a")], node_id="stale")
        r1 = self.expect(server, s, xc.CLUSTER_URL)
        self.assertEqual(xc.resource_names(r1), [cluster("a")])
        # ACK + subscription change: a second response with a new nonce.
        s.send(xc.CLUSTER_URL, names=[cluster("a"), cluster("b")], version=r1.version_info, nonce=r1.nonce)
        r2 = self.expect(server, s, xc.CLUSTER_URL)
        self.assertEqual(sorted(xc.resource_names(r2)), [cluster("a"), cluster("b")])
        self.assertNotEqual(r1.nonce, r2.nonce)
        # A late request answering r1 with another resource list: not answered, subscription unchanged.
        s.send(xc.CLUSTER_URL, names=[cluster("c")], version=r1.version_info, nonce=r1.nonce)
        self.expect_none(server, s, what="to a stale nonce")
        # The ACK of r2 with the same list changes nothing (it would, had the stale request applied).
        s.ack(r2, names=[cluster("a"), cluster("b")])
        self.expect_none(server, s, timeout=0.3, what="to the ACK of the latest response")
        # A change of c is not for this client; a change of b is, with a and b only.
        self.update(server, docs(app_c=H2C))
        self.expect_none(server, s, timeout=0.3, what="for a cluster the client does not subscribe to")
        self.update(server, docs(app_b=H2C, app_c=H2C))
        r3 = self.expect(server, s, xc.CLUSTER_URL)
        self.assertEqual(sorted(xc.resource_names(r3)), [cluster("a"), cluster("b")])
        self.assertNotEqual(r3.version_info, r2.version_info)

    # --- item 3: NACK -------------------------------------------------------------------------------------

    def test_03_nack_is_not_resent_and_is_logged(self):
        server = self.start(backend("a", ["10.0.0.1"]))
        s = self.stream(server)
        s.send(xc.CLUSTER_URL, node_id="nacker-7")
        r1 = self.expect(server, s, xc.CLUSTER_URL)
        mark = server.nlines()
        s.send(xc.CLUSTER_URL, version="", nonce=r1.nonce, error="cluster app:a:http: bogus lb_policy 42")
        self.expect_none(server, s, timeout=1.0, what="re-sending rejected content")
        line = server.wait_log(r"NACK", timeout=2, start=mark)
        self.assertIsNotNone(line, server.log()[-2000:])
        self.assertIn("nacker-7", line)
        self.assertIn("type=Cluster", line)
        self.assertIn("bogus lb_policy 42", line)
        # An equal reload does not resend what was rejected either.
        self.update(server, backend("a", ["10.0.0.1"]))
        self.expect_none(server, s, timeout=0.3, what="after a reload with the rejected content")
        # New content is sent; its ACK is taken (no answer), and the next change still comes.
        self.update(server, backend("a", ["10.0.0.1"]) + backend("b", []))
        r2 = self.expect(server, s, xc.CLUSTER_URL, what="after the content changed")
        self.assertNotEqual(r2.version_info, r1.version_info)
        self.assertIn(cluster("b"), xc.resource_names(r2))
        mark = server.nlines()
        s.ack(r2)
        self.expect_none(server, s, timeout=0.3, what="to an ACK")
        self.assertIsNotNone(server.wait_log(r"ACK node=nacker-7 .*type=Cluster version=%s" % r2.version_info,
                                             timeout=2, start=mark), server.log()[-2000:])
        self.update(server, backend("a", ["10.0.0.1"]) + backend("b", []) + backend("c", []))
        r3 = self.expect(server, s, xc.CLUSTER_URL)
        self.assertIn(cluster("c"), xc.resource_names(r3))

    # --- item 6: wildcard ---------------------------------------------------------------------------------

    def test_04_wildcard_and_named_cds(self):
        docs = backend("a", ["10.0.0.1"]) + backend("b", []) + backend("c", [])
        server = self.start(docs, config=H2C_CONFIG)
        everything = sorted([cluster("a"), cluster("b"), cluster("c")])
        empty = self.stream(server, xc.CDS)  # legacy wildcard: [] in the first request
        empty.send(xc.CLUSTER_URL, node_id="wild-empty")
        star = self.stream(server)  # explicit "*"
        star.send(xc.CLUSTER_URL, names=["*"], node_id="wild-star")
        named = self.stream(server)
        named.send(xc.CLUSTER_URL, names=[cluster("b"), cluster("zzz")], node_id="named")
        r_empty = self.expect(server, empty, xc.CLUSTER_URL)
        r_star = self.expect(server, star, xc.CLUSTER_URL)
        r_named = self.expect(server, named, xc.CLUSTER_URL)
        self.assertEqual(sorted(xc.resource_names(r_empty)), everything)
        self.assertEqual(sorted(xc.resource_names(r_star)), everything)
        self.assertEqual(r_empty.version_info, r_star.version_info)
        self.assertEqual(xc.resource_names(r_named), [cluster("b")])
        # ACKs with the same lists; [] stays the legacy wildcard while nothing was named.
        empty.ack(r_empty)
        star.ack(r_star, names=["*"])
        named.ack(r_named, names=[cluster("b"), cluster("zzz")])
        for s in (empty, star, named):
            self.expect_none(server, s, timeout=0.2)
        # A change of a reaches the wildcards only; zzz appearing reaches the named one.
        docs = backend("a", ["10.0.0.1"], ports=[("http", 80, H2C)]) + backend("b", []) + backend("c", [])
        self.update(server, docs)
        r = self.expect(server, empty, xc.CLUSTER_URL)
        self.assertEqual(sorted(xc.resource_names(r)), everything)
        empty.ack(r)
        r = self.expect(server, star, xc.CLUSTER_URL)
        self.assertEqual(sorted(xc.resource_names(r)), everything)
        star.ack(r, names=["*"])
        self.expect_none(server, named, timeout=0.2, what="for a cluster not named")
        docs += backend("zzz", [])
        self.update(server, docs)
        r = self.expect(server, named, xc.CLUSTER_URL)
        self.assertEqual(sorted(xc.resource_names(r)), [cluster("b"), cluster("zzz")])
        named.ack(r, names=[cluster("b"), cluster("zzz")])
        for s in (empty, star):
            s.ack(self.expect(server, s, xc.CLUSTER_URL), names=[] if s is empty else ["*"])
        # Unsubscribing: [] after naming (the named client, and the "*" client) means nothing at all.
        for s in (named, star):
            s.send(xc.CLUSTER_URL, names=[])
        for s in (named, star):
            r = s.recv(timeout=1.0)
            if r is not None:  # an answer to the unsubscription may come, empty
                self.assertEqual(r.type_url, xc.CLUSTER_URL)
                self.assertEqual(xc.resource_names(r), [], "unsubscribed, yet sent clusters")
                s.ack(r, names=[])
        docs = backend("a", ["10.0.0.1"]) + backend("b", [], ports=[("http", 80, H2C)])
        docs += backend("zzz", [], ports=[("http", 80, H2C)])
        self.update(server, docs)
        r = self.expect(server, empty, xc.CLUSTER_URL, what="the legacy wildcard stays subscribed")
        self.assertEqual(sorted(xc.resource_names(r)), [cluster("a"), cluster("b"), cluster("zzz")])
        for s in (named, star):
            r = s.recv(timeout=0.3)
            self.assertTrue(r is None or xc.resource_names(r) == [],
                            "an unsubscribed client got %s" % (r and xc.resource_names(r)))

    # --- item 9: resource_names change mid-stream -----------------------------------------------------------

    def test_05_resource_names_change_mid_stream(self):
        docs = lambda ip_a, ip_b, port_b=80: (  # noqa: E731
            backend("a", [ip_a]) + backend("b", [ip_b], ports=[("http", port_b, None)]) + backend("c", ["10.0.3.1"]))
        server = self.start(docs("10.0.1.1", "10.0.2.1"))
        # EDS, on the EDS service (Envoy without ADS)
        e = self.stream(server, xc.EDS)
        e.send(xc.CLA_URL, names=[cluster("a")], node_id="eds-changer")
        r = self.expect(server, e, xc.CLA_URL)
        self.assertEqual(xc.resource_names(r), [cluster("a")])
        e.ack(r, names=[cluster("a"), cluster("b")])  # add b
        r = self.expect(server, e, xc.CLA_URL, what="after adding a name")
        self.assertIn(cluster("b"), xc.resource_names(r))
        self.assertEqual(cla_addresses(cla_by_name(r)[cluster("b")]), ["10.0.2.1"])
        e.ack(r, names=[cluster("b")])  # remove a
        self.expect_none(server, e, timeout=0.3)
        self.update(server, docs("10.0.1.2", "10.0.2.1"))
        self.expect_none(server, e, what="for a load assignment the client dropped")
        self.update(server, docs("10.0.1.2", "10.0.2.2"))
        r = self.expect(server, e, xc.CLA_URL)
        self.assertEqual(xc.resource_names(r), [cluster("b")])
        self.assertEqual(cla_addresses(decode_all(r)[0]), ["10.0.2.2"])
        # Named again: sent again (item 8), although a did not change since the client dropped it.
        e.ack(r, names=[cluster("a"), cluster("b")])
        r = self.expect(server, e, xc.CLA_URL, what="after re-adding a name")
        self.assertEqual(xc.resource_names(r), [cluster("a")])
        self.assertEqual(cla_addresses(decode_all(r)[0]), ["10.0.1.2"])
        e.ack(r, names=[cluster("a"), cluster("b")])
        self.expect_none(server, e, timeout=0.2)
        # LDS, on the LDS service (full state: every named listener in each response)
        lst = self.stream(server, xc.LDS)
        lst.send(xc.LISTENER_URL, names=[listener("a", 80)], node_id="lds-changer")
        r = self.expect(server, lst, xc.LISTENER_URL)
        self.assertEqual(xc.resource_names(r), [listener("a", 80)])
        lst.ack(r, names=[listener("a", 80), listener("b", "http")])
        r = self.expect(server, lst, xc.LISTENER_URL, what="after adding a name")
        self.assertEqual(sorted(xc.resource_names(r)), [listener("a", 80), listener("b", "http")])
        lst.ack(r, names=[listener("b", "http")])
        r = self.expect(server, lst, xc.LISTENER_URL, what="after removing a name")
        self.assertEqual(xc.resource_names(r), [listener("b", "http")])
        lst.ack(r, names=[listener("b", "http")])
        self.expect_none(server, lst, timeout=0.2)
        # Renaming a's port changes a's listeners only: not for this client.
        self.update(server, backend("a", ["10.0.1.2"], ports=[("web", 80, None)]) +
                    backend("b", ["10.0.2.2"]) + backend("c", ["10.0.3.1"]))
        self.expect_none(server, lst, timeout=0.3, what="for a listener the client dropped")
        # b's port renamed: its "b.app:http" listener disappears; full state says so with an empty list.
        self.update(server, backend("a", ["10.0.1.2"], ports=[("web", 80, None)]) +
                    backend("b", ["10.0.2.2"], ports=[("web", 80, None)]) + backend("c", ["10.0.3.1"]))
        r = self.expect(server, lst, xc.LISTENER_URL, what="after a subscribed listener vanished")
        self.assertEqual(xc.resource_names(r), [])

    # --- item 8: subscriptions to what does not exist yet ----------------------------------------------------

    def test_06_subscription_before_the_resource_exists(self):
        server = self.start(backend("a", ["10.0.0.1"]))
        s = self.stream(server)
        s.send(xc.CLA_URL, names=[cluster("late")], node_id="early-bird")
        s.send(xc.LISTENER_URL, names=[listener("late", 8080)])
        # LDS is full state: an (empty) answer may come now; EDS need not answer yet.
        acked = {}
        deadline = time.monotonic() + QUIET
        while time.monotonic() < deadline:
            r = s.recv(timeout=max(0.01, deadline - time.monotonic()))
            if r is None:
                break
            self.assertEqual(xc.resource_names(r), [], "a resource that does not exist was sent")
            s.ack(r, names=[cluster("late")] if r.type_url == xc.CLA_URL else [listener("late", 8080)])
            acked[r.type_url] = r
        self.update(server, backend("a", ["10.0.0.1"]) +
                    backend("late", ["10.0.9.1", "10.0.9.2"], ports=[("http", 8080, None)]))
        got = {}
        for _ in range(2):
            r = s.recv(timeout=3)
            self.assertIsNotNone(r, "the subscribed resources did not come (got %s)\n%s" % (
                sorted(got), server.log()[-3000:]))
            got[r.type_url] = r
        self.assertEqual(xc.resource_names(got[xc.CLA_URL]), [cluster("late")])
        self.assertEqual(cla_addresses(decode_all(got[xc.CLA_URL])[0]), ["10.0.9.1", "10.0.9.2"])
        self.assertEqual(xc.resource_names(got[xc.LISTENER_URL]), [listener("late", 8080)])

    # --- item 12: empty load assignment ----------------------------------------------------------------------

    def test_07_cluster_without_endpoints_gets_empty_load_assignment(self):
        server = self.start(backend("empty", []) + backend("full", ["10.0.0.1"]))
        s = self.stream(server)
        s.send(xc.CLUSTER_URL, node_id="warming")
        r = self.expect(server, s, xc.CLUSTER_URL)
        self.assertIn(cluster("empty"), xc.resource_names(r))
        s.ack(r)
        s.send(xc.CLA_URL, names=[cluster("empty"), cluster("full")])
        r = self.expect(server, s, xc.CLA_URL)
        clas = cla_by_name(r)
        self.assertEqual(sorted(clas), [cluster("empty"), cluster("full")])
        empty = clas[cluster("empty")]
        self.assertEqual([f.name for f, _ in empty.ListFields()], ["cluster_name"])
        self.assertEqual(len(empty.endpoints), 0)
        self.assertEqual(cla_addresses(clas[cluster("full")]), ["10.0.0.1"])

    # --- item 12: cluster warming ----------------------------------------------------------------------------

    def test_08_load_assignment_resent_after_its_cluster_changed(self):
        docs = lambda app: backend("w", ["10.0.0.1"], ports=[("http", 80, app)]) + backend("x", ["10.0.0.2"])  # noqa
        server = self.start(docs(None), config=H2C_CONFIG)
        s = self.stream(server)
        s.send(xc.CLUSTER_URL, node_id="warm")
        c1 = self.expect(server, s, xc.CLUSTER_URL)
        s.ack(c1)
        names = [cluster("w"), cluster("x")]
        s.send(xc.CLA_URL, names=names)
        e1 = self.expect(server, s, xc.CLA_URL)
        self.assertEqual(sorted(xc.resource_names(e1)), names)
        s.ack(e1, names=names)
        self.expect_none(server, s, timeout=0.2)
        # appProtocol h2c: the override changes w's Cluster; the endpoints stay the same.
        self.update(server, docs(H2C))
        c2 = self.expect(server, s, xc.CLUSTER_URL)
        self.assertNotEqual(c2.version_info, c1.version_info)
        w = [c for c in decode_all(c2) if c.name == cluster("w")][0]
        self.assertEqual(w.connect_timeout.seconds, 7)
        # Envoy warms the changed cluster: ACK of CDS, then the EDS request (the ACK of the last EDS response).
        s.ack(c2)
        self.expect_none(server, s, timeout=0.2, what="(the load assignments did not change)")
        s.ack(e1, names=names)
        e2 = self.expect(server, s, xc.CLA_URL, what="for the warming cluster")
        self.assertEqual(xc.resource_names(e2), [cluster("w")], "only the changed cluster's assignment")
        self.assertEqual(e2.version_info, e1.version_info, "the load assignments themselves did not change")
        self.assertEqual(cla_addresses(decode_all(e2)[0]), ["10.0.0.1"])
        s.ack(e2, names=names)
        self.expect_none(server, s, what="after the warming resend")

    # --- item 11: make before break ------------------------------------------------------------------------

    def test_09_make_before_break_on_ads(self):
        server = self.start(backend("a", ["10.0.0.1"]))
        s = self.stream(server)
        s.send(xc.CLUSTER_URL, node_id="order")
        c = self.expect(server, s, xc.CLUSTER_URL)
        s.ack(c)
        eds_names = [cluster("a"), cluster("new")]
        s.send(xc.CLA_URL, names=eds_names)
        e = self.expect(server, s, xc.CLA_URL)
        s.ack(e, names=eds_names)
        lds_names = [listener("new", 80)]
        s.send(xc.LISTENER_URL, names=lds_names)
        lr = self.expect(server, s, xc.LISTENER_URL)
        self.assertEqual(xc.resource_names(lr), [])
        s.ack(lr, names=lds_names)
        self.expect_none(server, s, timeout=0.2)
        self.update(server, backend("a", ["10.0.0.1"]) + backend("new", ["10.0.0.7"]))
        order = []
        for _ in range(3):
            r = s.recv(timeout=3)
            self.assertIsNotNone(r, "got only %s\n%s" % (order, server.log()[-3000:]))
            order.append(r.type_url)
            if r.type_url == xc.CLUSTER_URL:
                self.assertIn(cluster("new"), xc.resource_names(r))
            elif r.type_url == xc.CLA_URL:
                self.assertIn(cluster("new"), xc.resource_names(r))
            else:
                self.assertEqual(xc.resource_names(r), lds_names)
        self.assertEqual(order, [xc.CLUSTER_URL, xc.CLA_URL, xc.LISTENER_URL])
        # Break after make: removing "new" while a's endpoints change sends a's endpoints, then the Listener
        # set without new's listener, and the Cluster set without "new" last.
        self.update(server, backend("a", ["10.0.0.1", "10.0.0.2"]))
        order = []
        for _ in range(3):
            r = s.recv(timeout=3)
            self.assertIsNotNone(r, "got only %s\n%s" % (order, server.log()[-3000:]))
            order.append(r.type_url)
            if r.type_url == xc.CLA_URL:
                self.assertEqual(xc.resource_names(r), [cluster("a")])
            elif r.type_url == xc.LISTENER_URL:
                self.assertEqual(xc.resource_names(r), [])
            else:
                self.assertEqual(xc.resource_names(r), [cluster("a")])
        self.assertEqual(order, [xc.CLA_URL, xc.LISTENER_URL, xc.CLUSTER_URL])

    # --- unserved types ------------------------------------------------------------------------------------

    def test_10_unserved_type_gets_empty_response_logged_once_per_stream(self):
        server = self.start(backend("a", ["10.0.0.1"]))
        mark = server.nlines()
        s = self.stream(server)
        s.send(SECRET_URL, names=["server-cert"], node_id="secret-asker")
        r = self.expect(server, s, SECRET_URL)
        self.assertEqual(len(r.resources), 0)
        s.ack(r, names=["server-cert"])
        self.expect_none(server, s, timeout=0.3, what="to the ACK of an empty answer")
        # A new request of that type is answered again, but not logged again.
        s.send(SECRET_URL, names=["server-cert", "client-cert"])
        r2 = self.expect(server, s, SECRET_URL)
        self.assertEqual(len(r2.resources), 0)
        self.assertNotEqual(r2.nonce, r.nonce)
        # Served types on the same stream still work.
        s.send(xc.CLUSTER_URL)
        self.assertEqual(xc.resource_names(self.expect(server, s, xc.CLUSTER_URL)), [cluster("a")])
        # A second stream logs it once too.
        s2 = self.stream(server)
        s2.send(SECRET_URL, node_id="secret-asker-2")
        self.assertEqual(len(self.expect(server, s2, SECRET_URL).resources), 0)
        s2.send(SECRET_URL, names=["x"])
        self.expect(server, s2, SECRET_URL)
        s2.send(RUNTIME_URL, names=["rtds"])
        self.assertEqual(len(self.expect(server, s2, RUNTIME_URL).resources), 0)
        time.sleep(0.1)
        lines = server.log().split("\n")[mark:]
        secret = [ln for ln in lines if "does not serve" in ln and "Secret" in ln]
        self.assertEqual(len([ln for ln in secret if "node=secret-asker " in ln]), 1, "\n".join(secret))
        self.assertEqual(len([ln for ln in secret if "node=secret-asker-2 " in ln]), 1, "\n".join(secret))
        self.assertEqual(len([ln for ln in lines if "does not serve" in ln and "Runtime" in ln]), 1)

    # --- items 1, 10: versions and unique names ------------------------------------------------------------

    def fetch_all(self, server, node_id):
        """CDS wildcard, EDS for every cluster and LDS for two listeners with duplicated names in the requests;
        returns {type_url: response}."""
        s = self.stream(server)
        s.send(xc.CLUSTER_URL, names=["*", cluster("a"), cluster("a")], node_id=node_id)
        c = self.expect(server, s, xc.CLUSTER_URL)
        s.ack(c, names=["*", cluster("a"), cluster("a")])
        names = xc.resource_names(c)
        s.send(xc.CLA_URL, names=names + names[:2])
        e = self.expect(server, s, xc.CLA_URL)
        self.assertEqual(sorted(xc.resource_names(e)), sorted(names))
        s.ack(e, names=names)
        lnames = [listener("a", 80), listener("a", "http"), listener("a", 80)]
        s.send(xc.LISTENER_URL, names=lnames)
        lr = self.expect(server, s, xc.LISTENER_URL)
        self.assertEqual(sorted(xc.resource_names(lr)), [listener("a", 80), listener("a", "http")])
        s.ack(lr, names=lnames)
        return s, {c.type_url: c, e.type_url: e, lr.type_url: lr}

    def test_11_versions_are_content_derived_and_names_unique(self):
        docs = backend("a", ["10.0.0.1", "10.0.0.2"]) + backend("b", ["10.0.1.1"]) + backend("c", [])
        one = self.start(docs, name="one.yaml")
        two = self.start(docs, name="two.yaml")
        s1, r1 = self.fetch_all(one, "replica-one")
        _, r2 = self.fetch_all(two, "replica-two")
        for url in (xc.CLUSTER_URL, xc.CLA_URL, xc.LISTENER_URL):
            self.assertTrue(r1[url].version_info)
            self.assertEqual(r1[url].version_info, r2[url].version_info, url)
            self.assertEqual([a.value for a in r1[url].resources], [a.value for a in r2[url].resources], url)
        # A restart of one replica gives the same versions too.
        self.assertEqual(one.terminate(timeout=15), 0, one.log()[-3000:])
        again = self.start(docs, name="one.yaml")
        _, r3 = self.fetch_all(again, "replica-one")
        for url in r1:
            self.assertEqual(r1[url].version_info, r3[url].version_info, url)
        # After a change: a new version for what changed (clusters and endpoints here), the same for listeners.
        self.update(two, backend("a", ["10.0.0.1", "10.0.0.2"]) + backend("b", ["10.0.1.2"]) + backend("c", []) +
                    backend("d", []), name="two.yaml")
        _, r4 = self.fetch_all(two, "replica-two-later")
        self.assertNotEqual(r4[xc.CLUSTER_URL].version_info, r1[xc.CLUSTER_URL].version_info)
        self.assertNotEqual(r4[xc.CLA_URL].version_info, r1[xc.CLA_URL].version_info)
        # and the same content as before gives the old versions back
        self.update(two, docs, name="two.yaml")
        _, r5 = self.fetch_all(two, "replica-two-back")
        for url in r1:
            self.assertEqual(r1[url].version_info, r5[url].version_info, url)

    # --- item 7: per-resource EDS ----------------------------------------------------------------------------

    def test_12_only_the_changed_load_assignment_is_sent(self):
        n = 8
        ips = {i: ["10.0.%d.1" % i] for i in range(n)}
        docs = lambda: [d for i in range(n) for d in backend("s%d" % i, ips[i])]  # noqa: E731
        server = self.start(docs())
        names = [cluster("s%d" % i) for i in range(n)]
        for method in (xc.ADS, xc.EDS):
            s = self.stream(server, method)
            s.send(xc.CLA_URL, names=names, node_id="per-resource")
            r = self.expect(server, s, xc.CLA_URL)
            self.assertEqual(sorted(xc.resource_names(r)), sorted(names))
            s.ack(r, names=names)
            ips[5] = ["10.0.5.1", "10.0.5.2"] if method == xc.ADS else ["10.0.5.3"]
            self.update(server, docs())
            r2 = self.expect(server, s, xc.CLA_URL)
            self.assertEqual(xc.resource_names(r2), [cluster("s5")], method)
            self.assertEqual(cla_addresses(decode_all(r2)[0]), ips[5])
            self.assertNotEqual(r2.version_info, r.version_info)
            s.ack(r2, names=names)
            self.expect_none(server, s, timeout=0.2)
            s.cancel()

    # --- proxyless gRPC (gRFC A27) ---------------------------------------------------------------------------

    def test_13_proxyless_lds(self):
        server = self.start(backend("greeter", ["10.0.0.1"], ports=[("grpc", 50051, "kubernetes.io/h2c"),
                                                                    ("http", 8080, None)]))
        s = self.stream(server, xc.LDS)
        names = [listener("greeter", 50051), listener("greeter", "grpc"), listener("greeter", 8080)]
        s.send(xc.LISTENER_URL, names=names, node_id="grpc-client")
        r = self.expect(server, s, xc.LISTENER_URL)
        self.assertEqual(sorted(xc.resource_names(r)), sorted(names))
        want = {listener("greeter", 50051): cluster("greeter", "grpc"),
                listener("greeter", "grpc"): cluster("greeter", "grpc"),
                listener("greeter", 8080): cluster("greeter", "http")}
        for lis in decode_all(r):
            self.assertTrue(lis.HasField("api_listener"), lis.name)
            self.assertFalse(lis.HasField("address"), lis.name)
            hcm = xc.unpack(lis.api_listener.api_listener, HCM_TYPE)
            self.assertTrue(hcm.HasField("route_config"), "the route must be inline for %s" % lis.name)
            vhosts = hcm.route_config.virtual_hosts
            self.assertEqual(len(vhosts), 1)
            self.assertEqual(list(vhosts[0].domains), ["*"])
            self.assertEqual(len(vhosts[0].routes), 1)
            route = vhosts[0].routes[0]
            self.assertEqual(route.match.WhichOneof("path_specifier"), "prefix")
            self.assertEqual(route.match.prefix, "")
            self.assertEqual(route.route.cluster, want[lis.name], lis.name)
            self.assertEqual(hcm.http_filters[-1].typed_config.type_url,
                             "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router")
        s.ack(r, names=names)
        # Wildcard LDS (Envoy's own listeners): no proxyless listeners.
        for method, first in ((xc.LDS, []), (xc.ADS, []), (xc.ADS, ["*"])):
            w = self.stream(server, method)
            w.send(xc.LISTENER_URL, names=first, node_id="envoy")
            rw = w.recv(timeout=1.0)
            if rw is not None:
                self.assertEqual(rw.type_url, xc.LISTENER_URL)
                self.assertEqual(len(rw.resources), 0, xc.resource_names(rw))
                w.ack(rw, names=first)
            w.cancel()

    # --- transport --------------------------------------------------------------------------------------------

    def test_14_client_gone_mid_send(self):
        n = 3000
        docs = [service("svc-%05d-with-a-longer-name" % i) for i in range(n)]
        server = self.start(docs)
        for attempt in range(3):
            mark = server.nlines()
            gone = self.stream(server, read=False)
            gone.send(xc.CLUSTER_URL, node_id="gone-%d" % attempt)
            line = server.wait_log(r"sending node=gone-%d .*type=Cluster" % attempt, timeout=5, start=mark)
            self.assertIsNotNone(line, server.log()[-2000:])
            gone.cancel()
            self.assertIsNotNone(server.wait_log(r"xDS stream closed node=gone-%d " % attempt, timeout=5,
                                                 start=mark), server.log()[-2000:])
        ok = self.stream(server)
        ok.send(xc.CLUSTER_URL, node_id="after")
        r = self.expect(server, ok, xc.CLUSTER_URL, timeout=10)
        self.assertEqual(len(r.resources), n)
        ok.ack(r)
        self.update(server, docs[:-1])
        r = self.expect(server, ok, xc.CLUSTER_URL)
        self.assertEqual(len(r.resources), n - 1)
        ok.cancel()
        log = server.log()
        bad = [ln for ln in log.split("\n") if "level=error" in ln or "level=warn" in ln]
        self.assertEqual(bad, [])
        self.assertEqual(server.terminate(timeout=15), 0, log[-3000:])

    def test_15_two_thousand_streams(self):
        n, nchannels = int(os.environ.get("EKG_N", "2000")), 8
        server = self.start(backend("a", ["10.0.0.1"]) + backend("b", []), log_level="info")
        deserialize = xc.DiscoveryResponse().__class__.FromString

        def request(node_id=None, version="", nonce=""):
            req = xc.DiscoveryRequest()
            req.type_url = xc.CLUSTER_URL
            req.version_info = version
            req.response_nonce = nonce
            if node_id:
                req.node.id = node_id
            return req

        async def run():
            channels = [grpc.aio.insecure_channel(server.address) for _ in range(nchannels)]
            calls = []
            try:
                for i in range(n):
                    rpc = channels[i % nchannels].stream_stream(
                        xc.ADS, request_serializer=lambda m: m.SerializeToString(),
                        response_deserializer=deserialize)
                    calls.append(rpc())

                async def first(i, call):
                    await call.write(request("many-%d" % i))
                    r = await call.read()
                    await call.write(request(version=r.version_info, nonce=r.nonce))
                    return r

                t0 = time.monotonic()
                firsts = await asyncio.wait_for(asyncio.gather(*(first(i, c) for i, c in enumerate(calls))), 40)
                t_first = time.monotonic() - t0
                mark = server.nlines()
                self.write("objects.yaml", backend("a", ["10.0.0.1"]) + backend("b", []) + backend("fanout", []))
                t1 = time.monotonic()
                seconds = await asyncio.wait_for(asyncio.gather(*(c.read() for c in calls)), 30)
                t_second = time.monotonic() - t1
                return firsts, seconds, t_first, t_second, mark
            finally:
                for c in calls:
                    c.cancel()
                await asyncio.sleep(0.2)  # lets grpc.aio finish its per-call tasks
                for ch in channels:
                    await ch.close()

        # Not asyncio.run(): with grpc 1.51 its cancellation of leftover tasks can hang in a thread join.
        loop = asyncio.new_event_loop()
        try:
            firsts, seconds, t_first, t_second, _ = loop.run_until_complete(run())
        finally:
            loop.close()
        self.assertEqual(len(firsts), n)
        self.assertTrue(all(r is not grpc.aio.EOF and r.type_url == xc.CLUSTER_URL for r in firsts))
        self.assertEqual({tuple(sorted(xc.resource_names(r))) for r in firsts}, {(cluster("a"), cluster("b"))})
        self.assertEqual(len({r.version_info for r in firsts}), 1)
        self.assertTrue(all(r is not grpc.aio.EOF for r in seconds))
        self.assertEqual(sum(1 for r in seconds if cluster("fanout") in xc.resource_names(r)), n)
        self.assertEqual(len({r.version_info for r in seconds}), 1)
        self.assertNotEqual(seconds[0].version_info, firsts[0].version_info)
        sys.stderr.write(" [%d streams: first answers in %.2fs, fan-out in %.2fs] " % (n, t_first, t_second))
        log = server.log()
        self.assertEqual([ln for ln in log.split("\n") if "level=error" in ln or "level=warn" in ln], [])


    # --- behaviours first seen while writing these tests (see the docstrings), fixed in src/xds/ ------------

    def test_16_first_request_may_carry_the_previous_streams_nonce(self):
        """A reconnecting client may send, in the first request of the new stream, the nonce it last got on the
        old one: Envoy's SotW mux did so until envoyproxy/envoy#30206 (Envoy 1.28; issue #30155), grpc-js-xds
        until grpc/grpc-node#2875, and Istio strips "the first nonce" for that reason (istio/istio#47351).
        Nonces are valid only on their own stream, so such a nonce is not stale: no response of that type was
        sent on this stream yet. Ignoring it leaves the client without any answer on the new stream, e.g.
        after every restart of ekglue."""
        docs = backend("a", ["10.0.0.1"]) + backend("b", [])
        server = self.start(docs)
        s = self.stream(server)
        s.send(xc.CLUSTER_URL, node_id="old-envoy")
        c1 = self.expect(server, s, xc.CLUSTER_URL)
        s.ack(c1)
        names = [cluster("a"), cluster("b")]
        s.send(xc.CLA_URL, names=names)
        e1 = self.expect(server, s, xc.CLA_URL)
        s.ack(e1, names=names)
        self.expect_none(server, s, timeout=0.2)
        # ekglue restarts (a rolling update); the client reconnects and keeps its last nonces.
        self.assertEqual(server.terminate(timeout=15), 0, server.log()[-3000:])
        s.cancel()
        server = self.start(docs)
        s = self.stream(server)
        s.send(xc.CLUSTER_URL, version=c1.version_info, nonce=c1.nonce, node_id="old-envoy")
        c2 = self.expect(server, s, xc.CLUSTER_URL, what="to the first request of a new stream carrying the "
                         "nonce %r of the previous stream" % c1.nonce)
        self.assertEqual(sorted(xc.resource_names(c2)), names)
        self.assertEqual(c2.version_info, c1.version_info)
        s.ack(c2)
        s.send(xc.CLA_URL, names=names, version=e1.version_info, nonce=e1.nonce)
        e2 = self.expect(server, s, xc.CLA_URL, what="to the first EDS request carrying the previous nonce %r"
                         % e1.nonce)
        self.assertEqual(sorted(xc.resource_names(e2)), names)

    def test_17_one_odd_service_does_not_stop_all_updates(self):
        """A Service port may be named like a number (Service port names are DNS-1123 labels, so "8443" is
        valid in Kubernetes). Its two proxyless Listener names "<svc>.<ns>:8443" (number) and
        "<svc>.<ns>:8443" (name) are then the same, and so is the name form of a port named "8080" with the
        number form of another port 8080. Item 10 forbids sending a name twice; it must not make the whole
        translation fail, which today keeps every client on the previous state (and `ekglue serve` does not
        start with such a file)."""
        good = backend("a", ["10.0.0.1"])
        server = self.start(good)
        s = self.stream(server)
        s.send(xc.CLUSTER_URL, node_id="bystander")
        c1 = self.expect(server, s, xc.CLUSTER_URL)
        s.ack(c1)
        odd = (backend("odd", ["10.0.5.1"], ports=[("8443", 8443, None)]) +
               backend("odd2", [], ports=[("8080", 80, None), ("web", 8080, None)]))
        self.update(server, good + backend("new", ["10.0.0.2"]) + odd)
        c2 = self.expect(server, s, xc.CLUSTER_URL, what="after an update that adds an oddly named port")
        self.assertIn(cluster("new"), xc.resource_names(c2))
        lst = self.stream(server, xc.LDS)
        names = [listener("odd", 8443), listener("odd2", 8080), listener("odd2", 80)]
        lst.send(xc.LISTENER_URL, names=names, node_id="grpc")
        r = self.expect(server, lst, xc.LISTENER_URL)
        self.assertEqual(sorted(xc.resource_names(r)), sorted(names))


if __name__ == "__main__":
    skips.main()
