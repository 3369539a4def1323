"""tests/xds/delta_test.py: the incremental (delta) xDS protocol of `ekglue serve`, over real gRPC streams.

One test per rule of issue 12, item 2, as docs/internals/protocol.md numbers them ("Incremental xDS", D1-D7,
and the SotW rules they keep: 2 nonces, 5 the node, 9 subscription changes, 11 make before break, 12 warming), driven
with a raw delta client (DeltaStream below): DeltaDiscoveryRequests built and DeltaDiscoveryResponses decoded
with Python's protobuf from the build's descriptor sets, so nothing of ekglue's encoding is trusted.
tests/unit/delta_test.c holds the same rules against the session engine alone; these hold them over the wire:
the five delta methods of src/xds/server.c, the file source and reloads of `ekglue serve`, and the session.

Every response is checked as it arrives (expect()): its type, a nonce, a system_version_info, each resource's
name (the decoded message's own name), its Any type, and its version, which must be the content hash of the
resource's bytes (64-bit FNV-1a with the splitmix64 finalizer, src/common/hash.h, as 16 hex digits), no name
twice and no name both sent and removed.

Each test starts its own `ekglue serve` on 127.0.0.1:0 with its own objects file in a temporary directory,
edits that file by rename-replace and stops the server with SIGTERM, which must exit 0 without a sanitizer
report (xdsclient.LogOnFailure, check_clean_exit). Every wait is bounded. The objects (Services and
EndpointSlices in namespace "app", clusters "app:<service>:<port name>") come from protocol_test.py's helpers.

Run by ctest with EKGLUE, EKG_SOURCE_DIR and EKG_BUILD_DIR set; /usr/bin/python3.
"""
import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xdsclient as xc  # noqa: E402
from protocol_test import H2C, H2C_CONFIG, backend, cla_addresses, cluster, listener, service  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import skips  # noqa: E402

DELTA_ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
DELTA_CDS = "/envoy.service.cluster.v3.ClusterDiscoveryService/DeltaClusters"
DELTA_EDS = "/envoy.service.endpoint.v3.EndpointDiscoveryService/DeltaEndpoints"
DELTA_LDS = "/envoy.service.listener.v3.ListenerDiscoveryService/DeltaListeners"

SECRET_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
CLA_TYPE = "envoy.config.endpoint.v3.ClusterLoadAssignment"

# How long "nothing arrives" is waited for (the reload debounce is 50 ms; a push takes a few ms).
QUIET = 0.5

_M64 = (1 << 64) - 1


def content_version(data):
    """The version a delta response gives a resource whose bytes are data: ekg_hash() of src/common/hash.h
    (FNV-1a 64, then the splitmix64 finalizer), 16 lower-case hex digits."""
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & _M64
    h ^= h >> 30
    h = (h * 0xbf58476d1ce4e5b9) & _M64
    h ^= h >> 27
    h = (h * 0x94d049bb133111eb) & _M64
    h ^= h >> 31
    return "%016x" % h


def DeltaRequest():
    return xc.message_class("envoy.service.discovery.v3.DeltaDiscoveryRequest")()


def DeltaResponse():
    return xc.message_class("envoy.service.discovery.v3.DeltaDiscoveryResponse")()


_END = object()


class DeltaStream:
    """One raw incremental xDS stream (a delta method of channel). Requests go through a queue; a thread reads
    the responses so that recv() can time out."""

    def __init__(self, channel, method=DELTA_ADS, raw=False):
        self._requests = queue.Queue()
        self._responses = queue.Queue()
        self.error = None  # the grpc.RpcError the stream ended with, if any
        self.ended = threading.Event()
        ser = (lambda b: b) if raw else (lambda m: m.SerializeToString())
        rpc = channel.stream_stream(method, request_serializer=ser,
                                    response_deserializer=DeltaResponse().__class__.FromString)
        self.call = rpc(iter(self._requests.get, _END))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        try:
            for resp in self.call:
                self._responses.put(resp)
        except grpc.RpcError as e:
            self.error = e
        finally:
            self.ended.set()
            self._responses.put(_END)

    def send_raw(self, data):
        self._requests.put(data)

    def send(self, type_url, subscribe=(), unsubscribe=(), initial=None, nonce="", error=None, node_id=None,
             locality=None, metadata=None):
        """One DeltaDiscoveryRequest. initial: {name: version} (initial_resource_versions). With node_id, a
        Node: that id, user agent "ekglue-tests", the locality ({"region": .., "zone": ..}) and string
        metadata ({"NODE_NAME": ..}) when given. error: a NACK (error_detail.message)."""
        req = DeltaRequest()
        req.type_url = type_url
        req.resource_names_subscribe.extend(subscribe)
        req.resource_names_unsubscribe.extend(unsubscribe)
        for name, version in (initial or {}).items():
            req.initial_resource_versions[name] = version
        req.response_nonce = nonce
        if node_id is not None:
            req.node.id = node_id
            req.node.user_agent_name = "ekglue-tests"
            for key, value in (locality or {}).items():
                setattr(req.node.locality, key, value)
            for key, value in (metadata or {}).items():
                req.node.metadata.fields[key].string_value = value
        if error is not None:
            req.error_detail.code = 3
            req.error_detail.message = error
        self._requests.put(req)

    def ack(self, resp, **kw):
        """The ACK of resp (its type and nonce), with any subscription changes in kw."""
        self.send(resp.type_url, nonce=resp.nonce, **kw)

    def nack(self, resp, message, **kw):
        self.send(resp.type_url, nonce=resp.nonce, error=message, **kw)

    def recv(self, timeout=5.0):
        """The next DeltaDiscoveryResponse, or None on timeout or when the stream ended."""
        try:
            item = self._responses.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            self._responses.put(_END)
            return None
        return item

    def code(self, timeout=5.0):
        """The status code the stream ended with (None if it did not end in time)."""
        if not self.ended.wait(timeout):
            return None
        return self.error.code() if self.error is not None else grpc.StatusCode.OK

    def details(self):
        return self.error.details() if self.error is not None else ""

    def cancel(self):
        self.call.cancel()
        self._requests.put(_END)
        self._reader.join(timeout=5)


def names(resp):
    """The names of the resources a delta response carries, sorted."""
    return sorted(r.name for r in resp.resources)


def removed(resp):
    return sorted(resp.removed_resources)


def versions(resp):
    return {r.name: r.version for r in resp.resources}


def decoded(resp):
    """{name: decoded resource message} of a delta response."""
    full = resp.type_url[len("type.googleapis.com/"):]
    return {r.name: xc.unpack(r.resource, full) for r in resp.resources}


def priorities(cla):
    """{zone: priority} of a ClusterLoadAssignment."""
    return {loc.locality.zone: loc.priority for loc in cla.endpoints}


class DeltaTest(xc.LogOnFailure, unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ekglue-delta-")
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

    # --- helpers -----------------------------------------------------------------------------------------------

    def write(self, name, docs):
        """Writes a file of the temporary directory by rename-replace; returns its path."""
        path = os.path.join(self.dir, name)
        text = docs if isinstance(docs, str) else "---\n".join(docs)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        return path

    def start(self, docs, name="objects.yaml", config=None, extra=(), objects=None):
        """Writes the objects file and starts a server on it (objects: these files instead)."""
        paths = objects if objects is not None else [self.write(name, docs)]
        args = list(extra)
        if config is not None:
            args += ["--config", self.write(name + ".config.yaml", config)]
        server = xc.EkglueServer(paths, extra_args=args)
        self.servers.append(server)
        return server

    def update(self, server, docs, name="objects.yaml"):
        """Rewrites the objects file and waits until the server has loaded it."""
        mark = server.nlines()
        self.write(name, docs)
        line = server.wait_log(r"objects loaded|keeping the previous state", timeout=5, start=mark)
        self.assertIsNotNone(line, "no reload\n" + server.log()[-3000:])
        self.assertIn("objects loaded", line, "the reload failed")

    def channel(self, server):
        ch = server.channel()
        self.channels.append(ch)
        return ch

    def stream(self, server, method=DELTA_ADS, channel=None, raw=False):
        s = DeltaStream(channel or self.channel(server), method, raw=raw)
        self.streams.append(s)
        return s

    def sotw(self, server, method=xc.ADS):
        s = xc.XdsStream(self.channel(server), method)
        self.streams.append(s)
        return s

    def expect(self, server, s, type_url, timeout=3.0, what=""):
        """The next response, which must be of type_url and well formed (see the module's docstring)."""
        r = s.recv(timeout=timeout)
        self.assertIsNotNone(r, "no %s response %s (stream: %s %s)\n%s" % (
            type_url.rsplit(".", 1)[-1], what, s.code(0), s.details(), server.log()[-3000:]))
        self.assertEqual(r.type_url, type_url, what)
        self.assertTrue(r.nonce, "a response without a nonce")
        self.assertTrue(r.system_version_info, "a response without system_version_info")
        full = type_url[len("type.googleapis.com/"):]
        seen = set()
        for res in r.resources:
            self.assertNotIn(res.name, seen, "%s twice in one response" % res.name)
            seen.add(res.name)
            self.assertEqual(res.resource.type_url, type_url, res.name)
            m = xc.unpack(res.resource, full)
            self.assertEqual(m.cluster_name if full == CLA_TYPE else m.name, res.name)
            self.assertEqual(res.version, content_version(res.resource.value),
                             "%s: the version is not the content hash of its bytes" % res.name)
        self.assertEqual(len(r.removed_resources), len(set(r.removed_resources)), list(r.removed_resources))
        self.assertEqual(seen & set(r.removed_resources), set(), "sent and removed in one response")
        return r

    def expect_none(self, server, s, timeout=QUIET, what=""):
        r = s.recv(timeout=timeout)
        self.assertIsNone(r, "unexpected %s response %s: resources %s removed %s\n%s" % (
            r and r.type_url.rsplit(".", 1)[-1], what, r and names(r), r and removed(r), server.log()[-3000:]))

    def cds(self, server, s, node_id, subscribe=(), initial=None):
        """CDS on s (ADS): the first request, its response, its ACK; nothing else due."""
        s.send(xc.CLUSTER_URL, subscribe=subscribe, initial=initial, node_id=node_id)
        r = self.expect(server, s, xc.CLUSTER_URL)
        s.ack(r)
        return r

    # --- D1: per-resource version, system_version_info ---------------------------------------------------------

    def test_01_versions_are_content_hashes_on_every_replica_and_after_restart(self):
        docs = backend("a", ["10.0.0.1", "10.0.0.2"]) + backend("b", ["10.0.1.1"]) + backend("c", [])
        one = self.start(docs, name="one.yaml")
        two = self.start(docs, name="two.yaml")
        eds = [cluster("a"), cluster("b"), cluster("c")]

        def fetch(server, node_id):
            s = self.stream(server)
            c = self.cds(server, s, node_id)
            s.send(xc.CLA_URL, subscribe=eds)
            e = self.expect(server, s, xc.CLA_URL)
            s.ack(e)
            self.expect_none(server, s, timeout=0.2)
            s.cancel()
            return c, e

        c1, e1 = fetch(one, "replica-one")
        c2, e2 = fetch(two, "replica-two")
        self.assertEqual(names(c1), eds)
        self.assertEqual(names(e1), eds)
        for r1, r2 in ((c1, c2), (e1, e2)):
            self.assertEqual(versions(r1), versions(r2), r1.type_url)
            self.assertEqual(r1.system_version_info, r2.system_version_info, r1.type_url)
            self.assertEqual({r.name: r.resource.value for r in r1.resources},
                             {r.name: r.resource.value for r in r2.resources})
        self.assertEqual(len(set(versions(c1).values())), 3, "three different Clusters, three versions")
        # system_version_info is the set's version, as SotW's version_info for the same set.
        s = self.sotw(one)
        s.send(xc.CLUSTER_URL, node_id="sotw")
        sc = s.recv(timeout=3)
        self.assertIsNotNone(sc)
        self.assertEqual(sc.version_info, c1.system_version_info)
        self.assertEqual(sorted(a.value for a in sc.resources), sorted(r.resource.value for r in c1.resources))
        s.ack(sc)
        s.send(xc.CLA_URL, names=eds)
        se = s.recv(timeout=3)
        self.assertIsNotNone(se)
        self.assertEqual(se.version_info, e1.system_version_info)
        # A restart gives the same versions.
        self.assertEqual(one.terminate(timeout=15), 0, one.log()[-3000:])
        again = self.start(docs, name="one.yaml")
        c3, e3 = fetch(again, "replica-one")
        self.assertEqual(versions(c3), versions(c1))
        self.assertEqual(versions(e3), versions(e1))
        self.assertEqual(c3.system_version_info, c1.system_version_info)
        # One endpoint change: a new version for b's assignment only, and a new system_version_info.
        s = self.stream(again)
        self.cds(again, s, "watcher")
        s.send(xc.CLA_URL, subscribe=eds)
        s.ack(self.expect(again, s, xc.CLA_URL))
        self.update(again, backend("a", ["10.0.0.1", "10.0.0.2"]) + backend("b", ["10.0.1.2"]) + backend("c", []),
                    name="one.yaml")
        e4 = self.expect(again, s, xc.CLA_URL)
        self.assertEqual(names(e4), [cluster("b")])
        self.assertNotEqual(versions(e4)[cluster("b")], versions(e1)[cluster("b")])
        self.assertNotEqual(e4.system_version_info, e1.system_version_info)
        s.ack(e4)
        self.expect_none(again, s)
        # The same content again gives the old version back.
        self.update(again, docs, name="one.yaml")
        e5 = self.expect(again, s, xc.CLA_URL)
        self.assertEqual(versions(e5), {cluster("b"): versions(e1)[cluster("b")]})
        self.assertEqual(e5.system_version_info, e1.system_version_info)

    # --- D2: wildcard ------------------------------------------------------------------------------------------

    def test_02_wildcard_legacy_empty_first_request_and_star(self):
        docs = backend("a", ["10.0.0.1"]) + backend("b", [])
        server = self.start(docs)
        everything = [cluster("a"), cluster("b")]
        legacy = self.stream(server)  # no names in the first request
        legacy.send(xc.CLUSTER_URL, node_id="legacy")
        star = self.stream(server)
        star.send(xc.CLUSTER_URL, subscribe=["*"], node_id="star")
        standalone = self.stream(server, DELTA_CDS)
        standalone.send(xc.CLUSTER_URL, node_id="legacy-cds")
        for s in (legacy, star, standalone):
            r = self.expect(server, s, xc.CLUSTER_URL)
            self.assertEqual(names(r), everything)
            self.assertEqual(removed(r), [])
            s.ack(r)
        for s in (legacy, star, standalone):
            self.expect_none(server, s, timeout=0.2, what="to an ACK")
        # A new Service: its Cluster, alone, to every wildcard stream.
        docs += backend("new", [])
        self.update(server, docs)
        for s in (legacy, star, standalone):
            r = self.expect(server, s, xc.CLUSTER_URL)
            self.assertEqual(names(r), [cluster("new")])
            self.assertEqual(removed(r), [])
            s.ack(r)
        # A client that began as a legacy wildcard and then names a Cluster stays a wildcard subscriber: Envoy
        # records its legacy first request as a subscription to "*" and later sends only the names it adds.
        legacy.send(xc.CLUSTER_URL, subscribe=[cluster("ghost")])
        r = self.expect(server, legacy, xc.CLUSTER_URL, what="for a named Cluster that does not exist")
        self.assertEqual((names(r), removed(r)), ([], [cluster("ghost")]))
        legacy.ack(r)
        docs += backend("newer", [])
        self.update(server, docs)
        for s in (legacy, star, standalone):
            r = self.expect(server, s, xc.CLUSTER_URL, what="after a name was added to the legacy wildcard")
            self.assertEqual(names(r), [cluster("newer")])
            s.ack(r)
        # A removed Service: removed_resources, nothing sent.
        docs = backend("a", ["10.0.0.1"]) + backend("new", []) + backend("newer", [])
        self.update(server, docs)
        for s in (legacy, star, standalone):
            r = self.expect(server, s, xc.CLUSTER_URL)
            self.assertEqual((names(r), removed(r)), ([], [cluster("b")]))
            s.ack(r)
            self.expect_none(server, s, timeout=0.2)
        # A wildcard LDS stream (Envoy's own listeners) gets no proxyless-gRPC Listeners, as in SotW.
        lds = self.stream(server, DELTA_LDS)
        lds.send("", node_id="envoy-lds")
        r = lds.recv(timeout=1.0)
        self.assertTrue(r is None or (r.type_url == xc.LISTENER_URL and names(r) == []),
                        "a wildcard LDS stream got %s" % (r and names(r)))

    def test_03_star_mixed_with_names_and_unsubscribing_star(self):
        docs = lambda app_a=None, app_b=None, extra=(): (  # noqa: E731
            backend("a", ["10.0.0.1"], ports=[("http", 80, app_a)]) +
            backend("b", ["10.0.0.2"], ports=[("http", 80, app_b)]) + list(extra))
        server = self.start(docs(), config=H2C_CONFIG)
        s = self.stream(server)
        s.send(xc.CLUSTER_URL, subscribe=["*", cluster("a"), cluster("ghost")], node_id="mixed")
        r = self.expect(server, s, xc.CLUSTER_URL)
        self.assertEqual(names(r), [cluster("a"), cluster("b")])
        self.assertEqual(removed(r), [cluster("ghost")], "a named Cluster that does not exist")
        s.ack(r)
        self.expect_none(server, s, timeout=0.2)
        # Unsubscribing "*": the explicit names stay, the rest is no longer this client's.
        s.send(xc.CLUSTER_URL, unsubscribe=["*"])
        self.expect_none(server, s, timeout=0.3, what="to unsubscribing *")
        self.update(server, docs(app_b=H2C, extra=backend("c", [])))
        self.expect_none(server, s, what="for Clusters only '*' covered")
        self.update(server, docs(app_a=H2C, app_b=H2C, extra=backend("c", [])))
        r = self.expect(server, s, xc.CLUSTER_URL, what="for an explicitly named Cluster")
        self.assertEqual((names(r), removed(r)), ([cluster("a")], []))
        s.ack(r)
        # "*" again: every Cluster the client may lack (b changed meanwhile, c is new); the named a may come
        # again, at the version the client has, and ghost be said again not to exist.
        a_version = versions(r)[cluster("a")]
        s.send(xc.CLUSTER_URL, subscribe=["*"])
        r = self.expect(server, s, xc.CLUSTER_URL, what="to subscribing * again")
        self.assertIn(names(r), ([cluster("b"), cluster("c")], [cluster("a"), cluster("b"), cluster("c")]))
        self.assertIn(removed(r), ([], [cluster("ghost")]))
        self.assertEqual(versions(r).get(cluster("a"), a_version), a_version)
        s.ack(r)
        self.expect_none(server, s, timeout=0.3)
        # ghost appearing is sent (it is still named).
        self.update(server, docs(app_a=H2C, app_b=H2C, extra=backend("c", []) + backend("ghost", [])))
        r = self.expect(server, s, xc.CLUSTER_URL)
        self.assertEqual(names(r), [cluster("ghost")])

    # --- D2, rule 9: unsubscribing, subscription changes mid-stream --------------------------------------------

    def test_04_unsubscribing_names_and_subscription_changes_mid_stream(self):
        ips = {"a": "10.0.1.1", "b": "10.0.2.1", "c": "10.0.3.1"}
        docs = lambda: [d for n in sorted(ips) for d in backend(n, [ips[n]])]  # noqa: E731
        server = self.start(docs())
        for method in (DELTA_ADS, DELTA_EDS):
            s = self.stream(server, method)
            s.send(xc.CLA_URL, subscribe=[cluster("a"), cluster("b")], node_id="changer")
            r = self.expect(server, s, xc.CLA_URL)
            self.assertEqual(names(r), [cluster("a"), cluster("b")])
            # Subscribe c and unsubscribe a in the ACK: c only.
            s.ack(r, subscribe=[cluster("c")], unsubscribe=[cluster("a")])
            r = self.expect(server, s, xc.CLA_URL, what="after subscribing c")
            self.assertEqual((names(r), removed(r)), ([cluster("c")], []))
            self.assertEqual(cla_addresses(decoded(r)[cluster("c")]), [ips["c"]])
            s.ack(r)
            self.expect_none(server, s, timeout=0.2)
            ips["a"] = ips["a"][:-1] + str(int(ips["a"][-1]) + 1)
            self.update(server, docs())
            self.expect_none(server, s, what="for an unsubscribed load assignment")
            ips["b"] = ips["b"][:-1] + str(int(ips["b"][-1]) + 1)
            self.update(server, docs())
            r = self.expect(server, s, xc.CLA_URL)
            self.assertEqual(names(r), [cluster("b")])
            s.ack(r)
            # Subscribed again: sent again, although a did not change since (the client dropped it).
            s.send(xc.CLA_URL, subscribe=[cluster("a")])
            r = self.expect(server, s, xc.CLA_URL, what="after re-subscribing a")
            self.assertEqual(names(r), [cluster("a")])
            self.assertEqual(cla_addresses(decoded(r)[cluster("a")]), [ips["a"]])
            s.ack(r)
            # Subscribing what the client has already: nothing new. Unsubscribing all: nothing more.
            s.send(xc.CLA_URL, subscribe=[cluster("a")])
            self.expect_none(server, s, timeout=0.3, what="to subscribing a name twice")
            s.send(xc.CLA_URL, unsubscribe=[cluster("a"), cluster("b"), cluster("c"), cluster("never")])
            ips = {n: ip[:-1] + "9" for n, ip in ips.items()}
            self.update(server, docs())
            self.expect_none(server, s, what="after unsubscribing everything")
            s.cancel()
        # Named Listeners (proxyless gRPC) subscribe and unsubscribe the same way on ADS; a renamed port takes
        # its name Listener away: removed_resources.
        s = self.stream(server)
        s.send(xc.LISTENER_URL, subscribe=[listener("a", 80), listener("a", "http")], node_id="lds")
        r = self.expect(server, s, xc.LISTENER_URL)
        self.assertEqual(names(r), sorted([listener("a", 80), listener("a", "http")]))
        s.ack(r, unsubscribe=[listener("a", 80)], subscribe=[listener("b", "http")])
        r = self.expect(server, s, xc.LISTENER_URL)
        self.assertEqual(names(r), [listener("b", "http")])
        s.ack(r)
        self.update(server, backend("a", [ips["a"]], ports=[("web", 80, None)]) +
                    backend("b", [ips["b"]]) + backend("c", [ips["c"]]))
        r = self.expect(server, s, xc.LISTENER_URL, what="after a subscribed Listener vanished")
        self.assertEqual((names(r), removed(r)), ([], [listener("a", "http")]))

    def test_05_unsubscribing_a_name_star_still_covers_sends_it_again(self):
        """A client subscribed to "*" and to a name explicitly that unsubscribes the name still has it through
        "*", but cannot tell: the xDS protocol has the server say whether the resource still exists, by
        sending it (or listing it in removed_resources). Envoy keeps such a resource in an "ambiguous" state
        until then; go-control-plane sends it again (its delta server's unsubscribe())."""
        server = self.start(backend("a", ["10.0.0.1"]) + backend("b", []), config=H2C_CONFIG)
        s = self.stream(server)
        s.send(xc.CLUSTER_URL, subscribe=["*", cluster("a")], node_id="ambiguous")
        r = self.expect(server, s, xc.CLUSTER_URL)
        self.assertEqual(names(r), [cluster("a"), cluster("b")])
        s.ack(r)
        s.send(xc.CLUSTER_URL, unsubscribe=[cluster("a")])
        r = self.expect(server, s, xc.CLUSTER_URL, what="after unsubscribing a name '*' still covers")
        self.assertEqual((names(r), removed(r)), ([cluster("a")], []))
        s.ack(r)
        # and it stays the client's through "*": its change comes.
        self.update(server, backend("a", ["10.0.0.1"], ports=[("http", 80, H2C)]) + backend("b", []))
        r = self.expect(server, s, xc.CLUSTER_URL)
        self.assertEqual(names(r), [cluster("a")])

    # --- D4: initial_resource_versions -------------------------------------------------------------------------

    def test_06_initial_resource_versions(self):
        docs = backend("a", ["10.0.0.1"]) + backend("b", ["10.0.0.2"]) + backend("c", ["10.0.0.3"])
        old = self.start(docs, name="old.yaml", config=H2C_CONFIG)
        s = self.stream(old)
        c0 = self.cds(old, s, "reconnecting")
        eds = [cluster("a"), cluster("b"), cluster("c")]
        s.send(xc.CLA_URL, subscribe=eds)
        e0 = self.expect(old, s, xc.CLA_URL)
        s.ack(e0)
        # The client reconnects to another replica, which meanwhile has b changed (its Cluster by the h2c
        # override, its endpoints), c gone and a new Service.
        now = backend("a", ["10.0.0.1"]) + backend("b", ["10.0.0.9"], ports=[("http", 80, H2C)]) + \
            backend("new", ["10.0.0.4"])
        replica = self.start(now, name="replica.yaml", config=H2C_CONFIG)
        r = self.stream(replica)
        # Legacy wildcard CDS with what the client has: b resent (stale), c removed, new sent, a not resent.
        r.send(xc.CLUSTER_URL, initial=versions(c0), node_id="reconnecting")
        c1 = self.expect(replica, r, xc.CLUSTER_URL)
        self.assertEqual(names(c1), [cluster("b"), cluster("new")])
        self.assertEqual(removed(c1), [cluster("c")])
        r.ack(c1)
        # EDS, the first request of its type on the stream, with names and versions: b stale, c gone, a current.
        r.send(xc.CLA_URL, subscribe=eds, initial=versions(e0))
        e1 = self.expect(replica, r, xc.CLA_URL)
        self.assertEqual(names(e1), [cluster("b")])
        self.assertEqual(removed(e1), [cluster("c")])
        r.ack(e1)
        self.expect_none(replica, r, what="after the reconnect")
        # A client that has everything at the current versions gets nothing at all ("*" and names alike).
        c_all = dict(versions(c0), **versions(c1))
        del c_all[cluster("c")]
        e_all = dict(versions(e0), **versions(e1))
        del e_all[cluster("c")]
        q = self.stream(replica)
        q.send(xc.CLUSTER_URL, subscribe=["*"], initial=c_all, node_id="up-to-date")
        q.send(xc.CLA_URL, subscribe=[cluster("a"), cluster("b")], initial=e_all)
        self.expect_none(replica, q, what="to a client that is up to date")
        # ... and then exactly what changes.
        self.update(replica, backend("a", ["10.0.0.5"]) + backend("b", ["10.0.0.9"], ports=[("http", 80, H2C)]) +
                    backend("new", ["10.0.0.4"]), name="replica.yaml")
        e2 = self.expect(replica, q, xc.CLA_URL)
        self.assertEqual((names(e2), removed(e2)), ([cluster("a")], []))
        # A version the client made up, or a name it has that no longer exists, counts: it gets the resource
        # or removed_resources. initial_resource_versions of a later request are not looked at.
        w = self.stream(replica)
        w.send(xc.CLA_URL, subscribe=[cluster("b"), cluster("gone")],
               initial={cluster("b"): "not-a-version", cluster("gone"): versions(e0)[cluster("c")]},
               node_id="made-up")
        e3 = self.expect(replica, w, xc.CLA_URL)
        self.assertEqual((names(e3), removed(e3)), ([cluster("b")], [cluster("gone")]))
        w.ack(e3, subscribe=[cluster("a")], initial={cluster("a"): versions(e2)[cluster("a")]})
        e4 = self.expect(replica, w, xc.CLA_URL, what="for a name subscribed after the first request")
        self.assertEqual(names(e4), [cluster("a")])

    # --- D3, rule 4: a change sends what changed ---------------------------------------------------------------

    def test_07_a_change_sends_only_what_changed(self):
        n = 8
        ips = {i: ["10.0.%d.1" % i] for i in range(n)}
        extra = []
        docs = lambda: [d for i in range(n) for d in backend("s%d" % i, ips[i])] + extra  # noqa: E731
        server = self.start(docs())
        all_eds = [cluster("s%d" % i) for i in range(n)]
        ads = self.stream(server)
        self.cds(server, ads, "only-changes")
        ads.send(xc.CLA_URL, subscribe=all_eds)
        ads.ack(self.expect(server, ads, xc.CLA_URL))
        eds = self.stream(server, DELTA_EDS)
        eds.send(xc.CLA_URL, subscribe=all_eds, node_id="only-changes-eds")
        eds.ack(self.expect(server, eds, xc.CLA_URL))
        # One endpoint change: one ClusterLoadAssignment, on ADS and on the EDS service.
        ips[5] = ["10.0.5.1", "10.0.5.2"]
        self.update(server, docs())
        for s in (ads, eds):
            r = self.expect(server, s, xc.CLA_URL)
            self.assertEqual((names(r), removed(r)), ([cluster("s5")], []))
            self.assertEqual(cla_addresses(decoded(r)[cluster("s5")]), ips[5])
            s.ack(r)
            self.expect_none(server, s, timeout=0.2)
        # A new Service: its Clusters, nothing else, and no assignment until the client subscribes to it.
        extra = backend("fresh", ["10.0.9.1"], ports=[("http", 80, None), ("grpc", 9090, None)])
        self.update(server, docs())
        r = self.expect(server, ads, xc.CLUSTER_URL)
        self.assertEqual((names(r), removed(r)), (sorted([cluster("fresh"), cluster("fresh", "grpc")]), []))
        ads.ack(r)
        self.expect_none(server, ads, what="for an assignment not subscribed to")
        self.expect_none(server, eds, timeout=0.1)
        ads.send(xc.CLA_URL, subscribe=[cluster("fresh"), cluster("fresh", "grpc")])
        r = self.expect(server, ads, xc.CLA_URL)
        self.assertEqual(names(r), sorted([cluster("fresh"), cluster("fresh", "grpc")]))
        ads.ack(r)
        # A removed Service: its Clusters and (subscribed) assignments in removed_resources.
        extra = []
        ips[2] = []
        self.update(server, [d for i in range(n) if i != 2 for d in backend("s%d" % i, ips[i])])
        got = {}
        for _ in range(2):
            r = self.expect(server, ads, xc.CLA_URL if not got else xc.CLUSTER_URL)
            got[r.type_url] = r
            ads.ack(r)
        self.assertEqual((names(got[xc.CLA_URL]), removed(got[xc.CLA_URL])),
                         ([], sorted([cluster("fresh"), cluster("fresh", "grpc"), cluster("s2")])))
        self.assertEqual((names(got[xc.CLUSTER_URL]), removed(got[xc.CLUSTER_URL])),
                         ([], sorted([cluster("fresh"), cluster("fresh", "grpc"), cluster("s2")])))
        r = self.expect(server, eds, xc.CLA_URL)
        self.assertEqual((names(r), removed(r)), ([], [cluster("s2")]))
        for s in (ads, eds):
            self.expect_none(server, s, timeout=0.2)

    # --- D3: names that do not exist ---------------------------------------------------------------------------

    def test_08_subscribed_name_that_does_not_exist(self):
        server = self.start(backend("a", ["10.0.0.1"]))
        s = self.stream(server)
        s.send(xc.CLA_URL, subscribe=[cluster("a"), cluster("late")], node_id="early-bird")
        r = self.expect(server, s, xc.CLA_URL)
        self.assertEqual((names(r), removed(r)), ([cluster("a")], [cluster("late")]))
        s.ack(r)
        s.send(xc.LISTENER_URL, subscribe=[listener("late", 8080)])
        r = self.expect(server, s, xc.LISTENER_URL)
        self.assertEqual((names(r), removed(r)), ([], [listener("late", 8080)]))
        s.ack(r)
        self.expect_none(server, s, what="after the does-not-exist answers")
        # It appears: sent once, with its Cluster first (ADS), then its assignment and Listener.
        docs = backend("a", ["10.0.0.1"]) + backend("late", ["10.0.9.1", "10.0.9.2"], ports=[("http", 8080, None)])
        self.update(server, docs)
        got = {}
        for _ in range(2):
            r = s.recv(timeout=3)
            self.assertIsNotNone(r, "the subscribed resources did not come (got %s)\n%s" % (
                sorted(got), server.log()[-3000:]))
            got[r.type_url] = r
            s.ack(r)
        self.assertEqual((names(got[xc.CLA_URL]), removed(got[xc.CLA_URL])), ([cluster("late")], []))
        self.assertEqual(cla_addresses(decoded(got[xc.CLA_URL])[cluster("late")]), ["10.0.9.1", "10.0.9.2"])
        self.assertEqual(names(got[xc.LISTENER_URL]), [listener("late", 8080)])
        self.expect_none(server, s)
        # And gone again: removed_resources again.
        self.update(server, backend("a", ["10.0.0.1"]))
        got = {}
        for _ in range(2):
            r = s.recv(timeout=3)
            self.assertIsNotNone(r, "no removal (got %s)\n%s" % (sorted(got), server.log()[-3000:]))
            got[r.type_url] = r
            s.ack(r)
        self.assertEqual((names(got[xc.CLA_URL]), removed(got[xc.CLA_URL])), ([], [cluster("late")]))
        self.assertEqual((names(got[xc.LISTENER_URL]), removed(got[xc.LISTENER_URL])),
                         ([], [listener("late", 8080)]))

    # --- D5, D2, rules 2 and 3: ACK, NACK, stale nonces --------------------------------------------------------

    def test_09_ack_and_nack_by_nonce_nacked_versions_not_resent(self):
        docs = lambda app=None, extra=(): (  # noqa: E731
            backend("a", ["10.0.0.1"], ports=[("http", 80, app)]) + backend("b", []) + list(extra))
        server = self.start(docs(), config=H2C_CONFIG)
        s = self.stream(server)
        s.send(xc.CLUSTER_URL, node_id="nacker-9")
        r1 = self.expect(server, s, xc.CLUSTER_URL)
        mark = server.nlines()
        s.ack(r1)
        self.assertIsNotNone(server.wait_log(r"ACK node=nacker-9 .*type=Cluster version=%s" %
                                             r1.system_version_info, timeout=2, start=mark), server.log()[-2000:])
        self.update(server, docs(app=H2C))
        r2 = self.expect(server, s, xc.CLUSTER_URL)
        self.assertEqual(names(r2), [cluster("a")])
        mark = server.nlines()
        s.nack(r2, "cluster app:a:http: bogus connect_timeout 7s")
        line = server.wait_log(r"NACK", timeout=2, start=mark)
        self.assertIsNotNone(line, server.log()[-2000:])
        for part in ("nacker-9", "type=Cluster", "bogus connect_timeout 7s", r2.system_version_info):
            self.assertIn(part, line)
        self.expect_none(server, s, what="re-sending the rejected version")
        # An equal reload does not resend it; a change of another Cluster sends that one only.
        self.update(server, docs(app=H2C))
        self.expect_none(server, s, timeout=0.3, what="after a reload with the rejected content")
        self.update(server, docs(app=H2C, extra=backend("c", [])))
        r3 = self.expect(server, s, xc.CLUSTER_URL)
        self.assertEqual(names(r3), [cluster("c")], "the rejected Cluster was sent again")
        s.ack(r3)
        # The rejected Cluster changes (back): sent.
        self.update(server, docs(extra=backend("c", [])))
        r4 = self.expect(server, s, xc.CLUSTER_URL)
        self.assertEqual(names(r4), [cluster("a")])
        self.assertEqual(versions(r4), {cluster("a"): versions(r1)[cluster("a")]})
        # A NACK carrying an older nonce is no NACK; an ACK of an older nonce no ACK.
        mark = server.nlines()
        s.nack(r3, "late complaint")
        s.ack(r2)
        self.expect_none(server, s, timeout=0.3)
        self.assertIsNone(server.wait_log(r"NACK .*late complaint", timeout=0.2, start=mark), server.log()[-2000:])
        self.assertIsNone(server.wait_log(r"\bACK node=nacker-9 ", timeout=0.1, start=mark), server.log()[-2000:])
        self.assertIsNotNone(server.wait_log(r"stale nonce", timeout=0.1, start=mark), server.log()[-2000:])
        s.ack(r4)
        self.assertIsNotNone(server.wait_log(r"ACK node=nacker-9 .*type=Cluster version=%s" %
                                             r4.system_version_info, timeout=2, start=mark))

    def test_10_stale_nonce_still_applies_subscription_changes(self):
        ips = {"a": "10.0.1.1", "b": "10.0.2.1", "c": "10.0.3.1", "d": "10.0.4.1"}
        docs = lambda: [d for n in sorted(ips) for d in backend(n, [ips[n]])]  # noqa: E731
        server = self.start(docs())
        s = self.stream(server, DELTA_EDS)
        s.send(xc.CLA_URL, subscribe=[cluster("a")], node_id="stale")
        r1 = self.expect(server, s, xc.CLA_URL)
        s.ack(r1, subscribe=[cluster("b")])
        r2 = self.expect(server, s, xc.CLA_URL)
        self.assertEqual(names(r2), [cluster("b")])
        self.assertNotEqual(r1.nonce, r2.nonce)
        # r1's nonce is stale now; its subscription change still counts (a delta lost would be lost for good).
        s.ack(r1, subscribe=[cluster("c")])
        r3 = self.expect(server, s, xc.CLA_URL, what="to a subscription carrying a stale nonce")
        self.assertEqual(names(r3), [cluster("c")])
        s.ack(r1, unsubscribe=[cluster("a")])
        self.expect_none(server, s, timeout=0.3)
        ips["a"] = "10.0.1.2"
        self.update(server, docs())
        self.expect_none(server, s, what="for a load assignment unsubscribed with a stale nonce")
        # A nonce from another stream (a reconnecting client) is no ACK either, and its changes count too.
        s.send(xc.CLA_URL, subscribe=[cluster("d")], nonce="no-such-nonce-12345")
        r4 = self.expect(server, s, xc.CLA_URL)
        self.assertEqual(names(r4), [cluster("d")])
        ips["c"] = "10.0.3.2"
        self.update(server, docs())
        r5 = self.expect(server, s, xc.CLA_URL)
        self.assertEqual(names(r5), [cluster("c")])

    # --- D6, rules 11 and 12: ADS ordering, cluster warming ----------------------------------------------------

    def test_11_cluster_before_load_assignment_on_ads(self):
        docs = lambda app=None, extra=(): (  # noqa: E731
            backend("w", ["10.0.0.1"], ports=[("http", 80, app)]) + backend("x", ["10.0.0.2"]) + list(extra))
        server = self.start(docs(), config=H2C_CONFIG)
        s = self.stream(server)
        self.cds(server, s, "order")
        eds = [cluster("w"), cluster("x"), cluster("new")]
        s.send(xc.CLA_URL, subscribe=eds)
        e1 = self.expect(server, s, xc.CLA_URL)
        self.assertEqual((names(e1), removed(e1)), ([cluster("w"), cluster("x")], [cluster("new")]))
        s.ack(e1)
        self.expect_none(server, s, timeout=0.2)
        # A new Service: its Cluster, then its assignment.
        self.update(server, docs(extra=backend("new", ["10.0.0.7"])))
        c = self.expect(server, s, xc.CLUSTER_URL, what="first: the Cluster")
        self.assertEqual(names(c), [cluster("new")])
        e = self.expect(server, s, xc.CLA_URL, what="then: its assignment")
        self.assertEqual(names(e), [cluster("new")])
        s.ack(c)
        s.ack(e)
        self.expect_none(server, s, timeout=0.2)
        # w's Cluster changes (the override), its endpoints do not: the Cluster, then w's assignment again,
        # unchanged (same version), as Envoy's cluster warming waits for it.
        self.update(server, docs(app=H2C, extra=backend("new", ["10.0.0.7"])))
        c = self.expect(server, s, xc.CLUSTER_URL)
        self.assertEqual(names(c), [cluster("w")])
        self.assertEqual(decoded(c)[cluster("w")].connect_timeout.seconds, 7)
        e = self.expect(server, s, xc.CLA_URL, what="for the warming Cluster")
        self.assertEqual(names(e), [cluster("w")])
        self.assertEqual(versions(e), {cluster("w"): versions(e1)[cluster("w")]})
        s.ack(c)
        s.ack(e)
        self.expect_none(server, s, what="after the warming resend")
        # Removing new while x's endpoints change: x's assignment and new's removal first, new's Cluster
        # removal last (make before break).
        self.update(server, backend("w", ["10.0.0.1"], ports=[("http", 80, H2C)]) + backend("x", ["10.0.0.3"]))
        e = self.expect(server, s, xc.CLA_URL)
        self.assertEqual((names(e), removed(e)), ([cluster("x")], [cluster("new")]))
        c = self.expect(server, s, xc.CLUSTER_URL)
        self.assertEqual((names(c), removed(c)), ([], [cluster("new")]))

    # --- rule 5: the Node --------------------------------------------------------------------------------------

    def test_12_node_only_on_the_first_request(self):
        server = self.start(backend("a", ["10.0.0.1"]) + backend("b", ["10.0.0.2"]))
        s = self.stream(server)
        s.send(xc.CLUSTER_URL, node_id="first-node")
        c = self.expect(server, s, xc.CLUSTER_URL)
        mark = server.nlines()
        s.ack(c)  # no node
        self.assertIsNotNone(server.wait_log(r"ACK node=first-node .*type=Cluster", timeout=2, start=mark))
        s.send(xc.CLA_URL, subscribe=[cluster("a")])  # no node: works
        e = self.expect(server, s, xc.CLA_URL)
        self.assertEqual(names(e), [cluster("a")])
        # Another Node later is ignored: the stream stays first-node's.
        mark = server.nlines()
        s.ack(e, subscribe=[cluster("b")], node_id="second-node", locality={"region": "r", "zone": "z"})
        e2 = self.expect(server, s, xc.CLA_URL)
        self.assertEqual(names(e2), [cluster("b")])
        s.ack(e2)
        self.assertIsNotNone(server.wait_log(r"ACK node=first-node .*type=ClusterLoadAssignment", timeout=2,
                                             start=mark), server.log()[-2000:])
        self.assertIsNone(server.wait_log(r"second-node", timeout=0.1, start=mark), server.log()[-2000:])
        # A stream whose first request has no Node works too.
        t = self.stream(server, DELTA_CDS)
        t.send(xc.CLUSTER_URL)
        r = self.expect(server, t, xc.CLUSTER_URL)
        self.assertEqual(names(r), [cluster("a"), cluster("b")])

    # --- D1, rule 5: zone variants -----------------------------------------------------------------------------

    def test_13_zone_variants_over_delta(self):
        demo = os.path.join(xc.SOURCE_DIR, "deploy", "demo", "cluster.yaml")
        server = self.start(None, objects=[demo])
        eds = ["shop:frontend:http", "shop:frontend:metrics"]
        place_a = {"region": "us-east1", "zone": "us-east1-a"}
        got = {}
        for key, locality in (("a", place_a), ("a2", place_a), ("b", {"region": "us-east1", "zone": "us-east1-b"}),
                              ("none", None)):
            s = self.stream(server)
            s.send(xc.CLA_URL, subscribe=eds[:1], node_id="zone-" + key, locality=locality)
            r = self.expect(server, s, xc.CLA_URL)
            self.assertEqual(names(r), eds[:1])
            # The Node came with the first request only: a later subscription still gets the client's variant.
            s.ack(r, subscribe=eds[1:])
            r2 = self.expect(server, s, xc.CLA_URL)
            self.assertEqual(names(r2), eds[1:])
            s.ack(r2)
            if key == "a":
                # A later request naming another place changes nothing: re-subscribed, the same variant comes.
                s.send(xc.CLA_URL, unsubscribe=eds[:1])
                s.send(xc.CLA_URL, subscribe=eds[:1], node_id="zone-a-moved",
                       locality={"region": "us-east1", "zone": "us-east1-b"})
                r3 = self.expect(server, s, xc.CLA_URL)
                self.assertEqual(versions(r3), versions(r))
                s.ack(r3)
            got[key] = {**decoded(r), **decoded(r2)}, {**versions(r), **versions(r2)}, r.system_version_info
        for name in eds:
            a, b, none = got["a"][0][name], got["b"][0][name], got["none"][0][name]
            self.assertEqual(priorities(a), {"us-east1-a": 0, "us-east1-b": 1, "us-east1-c": 1}, name)
            self.assertEqual(priorities(b), {"us-east1-b": 0, "us-east1-a": 1, "us-east1-c": 1}, name)
            self.assertEqual(set(priorities(none).values()), {0}, name)
            # The version is the hash of the variant the client gets (expect() checked the bytes): the same
            # for two clients in one zone, different across zones and for a client without a locality.
            va, va2, vb, vnone = (got[k][1][name] for k in ("a", "a2", "b", "none"))
            self.assertEqual(va, va2, name)
            self.assertEqual(len({va, vb, vnone}), 3, name)
        self.assertEqual(got["a"][2], got["a2"][2])
        self.assertNotEqual(got["a"][2], got["none"][2])
        # What `ekglue dump --client-locality` prints for that place is what the zone-a client got.
        dumped = json.loads(xc.run_ekglue(["dump", "--objects", demo, "--format", "json",
                                           "--client-locality", "us-east1/us-east1-a"]))
        for la in dumped["load_assignments"]:
            if la["clusterName"] in eds:
                want = {loc["locality"]["zone"]: loc.get("priority", 0) for loc in la["endpoints"]}
                self.assertEqual(priorities(got["a"][0][la["clusterName"]]), want)
        # A SotW client in the same zone gets the same bytes.
        sotw = self.sotw(server)
        sotw.send(xc.CLA_URL, names=eds, node_id="zone-sotw", locality=place_a)
        sr = sotw.recv(timeout=3)
        self.assertIsNotNone(sr)
        for a in sr.resources:
            m = xc.unpack(a, CLA_TYPE)
            self.assertEqual(content_version(a.value), got["a"][1][m.cluster_name])

    # --- D7: bad requests --------------------------------------------------------------------------------------

    def test_14_bad_requests_end_the_stream_and_nothing_else(self):
        server = self.start(backend("a", ["10.0.0.1"]))
        ch = self.channel(server)
        good = self.stream(server, channel=ch)
        self.cds(server, good, "bystander")
        sotw = self.sotw(server)
        sotw.send(xc.CLUSTER_URL, node_id="sotw-bystander")
        self.assertIsNotNone(sotw.recv(timeout=3))
        cases = [
            ("unknown type", DELTA_ADS, False, lambda s: s.send(SECRET_URL, subscribe=["cert"], node_id="x"),
             SECRET_URL),
            ("malformed bytes", DELTA_ADS, True, lambda s: s.send_raw(b"\x12\x05ab"), "DeltaDiscoveryRequest"),
            ("Cluster type on DeltaEndpoints", DELTA_EDS, False, lambda s: s.send(xc.CLUSTER_URL, node_id="x"),
             xc.CLUSTER_URL),
            ("Listener type on DeltaClusters", DELTA_CDS, False,
             lambda s: s.send(xc.LISTENER_URL, subscribe=["l"]), xc.LISTENER_URL),
            ("no type on ADS", DELTA_ADS, False, lambda s: s.send("", subscribe=["x"]), "type_url"),
            ("unknown type after a good request", DELTA_ADS, False,
             lambda s: (s.send(xc.CLUSTER_URL, node_id="x"), s.send("type.googleapis.com/no.Such")),
             "type.googleapis.com/no.Such"),
        ]
        for what, method, raw, send, mention in cases:
            s = self.stream(server, method, channel=ch, raw=raw)
            send(s)
            self.assertEqual(s.code(timeout=5), grpc.StatusCode.INVALID_ARGUMENT, what)
            self.assertIn(mention, s.details(), what)
        self.assertTrue(server.running())
        # The other streams are unaffected: a change reaches both.
        self.update(server, backend("a", ["10.0.0.1"]) + backend("b", []))
        r = self.expect(server, good, xc.CLUSTER_URL)
        self.assertEqual(names(r), [cluster("b")])
        r = sotw.recv(timeout=3)
        self.assertIsNotNone(r)
        self.assertEqual(sorted(xc.resource_names(r)), [cluster("a"), cluster("b")])
        n = self.stream(server, channel=ch)
        self.assertEqual(names(self.cds(server, n, "after")), [cluster("a"), cluster("b")])

    # --- the single-type services (D7: an empty type_url is the service's type) --------------------------------

    def test_15_delta_clusters_and_endpoints_with_empty_type_url(self):
        server = self.start(backend("a", ["10.0.0.1"]) + backend("b", ["10.0.0.2"]) +
                            backend("g", [], ports=[("grpc", 50051, H2C)]))
        c = self.stream(server, DELTA_CDS)
        c.send("", node_id="cds-only")
        r = self.expect(server, c, xc.CLUSTER_URL)
        self.assertEqual(names(r), [cluster("a"), cluster("b"), cluster("g", "grpc")])
        c.send("", nonce=r.nonce)
        e = self.stream(server, DELTA_EDS)
        e.send("", subscribe=[cluster("a"), cluster("zz")], node_id="eds-only")
        r = self.expect(server, e, xc.CLA_URL)
        self.assertEqual((names(r), removed(r)), ([cluster("a")], [cluster("zz")]))
        e.send("", nonce=r.nonce, subscribe=[cluster("b")])
        r = self.expect(server, e, xc.CLA_URL)
        self.assertEqual(names(r), [cluster("b")])
        lds = self.stream(server, DELTA_LDS)
        lds.send("", subscribe=[listener("g", 50051)], node_id="grpc-client")
        r = self.expect(server, lds, xc.LISTENER_URL)
        self.assertEqual(names(r), [listener("g", 50051)])
        for s in (c, e, lds):
            self.expect_none(server, s, timeout=0.2)
        self.update(server, backend("a", ["10.0.0.1"]) + backend("b", ["10.0.0.3"]))
        r = self.expect(server, c, xc.CLUSTER_URL)
        self.assertEqual((names(r), removed(r)), ([], [cluster("g", "grpc")]))
        r = self.expect(server, e, xc.CLA_URL)
        self.assertEqual(names(r), [cluster("b")])
        r = self.expect(server, lds, xc.LISTENER_URL)
        self.assertEqual((names(r), removed(r)), ([], [listener("g", 50051)]))

    # --- D7: limits, malformed names ---------------------------------------------------------------------------

    def assert_exhausted(self, s, flag):
        self.assertEqual(s.code(timeout=5), grpc.StatusCode.RESOURCE_EXHAUSTED, s.details())
        self.assertIn(flag, s.details())

    def test_16_limits(self):
        server = self.start([service("s%d" % i) for i in range(8)],
                            extra=["--xds-max-names-per-request", "3", "--xds-max-names-per-stream", "5"])
        ch = self.channel(server)
        # Per request: subscribe, unsubscribe and initial_resource_versions together.
        for what, kw in (("4 subscribed", {"subscribe": [cluster("s%d" % i) for i in range(4)]}),
                         ("2 + 2 unsubscribed", {"subscribe": [cluster("s0"), cluster("s1")],
                                                 "unsubscribe": [cluster("s2"), cluster("s3")]}),
                         ("1 + 3 versions", {"subscribe": [cluster("s0")],
                                             "initial": {cluster("s%d" % i): "v" for i in range(1, 4)}})):
            s = self.stream(server, channel=ch)
            s.send(xc.CLA_URL, node_id="too-many", **kw)
            self.assert_exhausted(s, "--xds-max-names-per-request")
        # Per stream, every type together, each name once; "*" is no name.
        s = self.stream(server, channel=ch)
        s.send(xc.CLUSTER_URL, subscribe=["*", cluster("s0")], node_id="many")
        self.expect(server, s, xc.CLUSTER_URL)
        s.send(xc.CLA_URL, subscribe=[cluster("s0"), cluster("s1"), cluster("s1")])
        self.expect(server, s, xc.CLA_URL)
        s.send(xc.CLA_URL, subscribe=[cluster("s1"), cluster("s2")])  # s1 again: 4 names
        self.expect(server, s, xc.CLA_URL)
        s.send(xc.CLA_URL, unsubscribe=[cluster("s2")], subscribe=[cluster("s3")])
        self.expect(server, s, xc.CLA_URL)
        s.send(xc.LISTENER_URL, subscribe=[listener("s7", 80)])  # the fifth
        self.expect(server, s, xc.LISTENER_URL)
        s.send(xc.LISTENER_URL, subscribe=[listener("s6", 80)])  # the sixth
        self.assert_exhausted(s, "--xds-max-names-per-stream")
        ok = self.stream(server, channel=ch)
        self.assertEqual(len(self.cds(server, ok, "fine").resources), 8)

    def test_17_initial_version_name_not_utf8_is_a_malformed_request(self):
        """A name in initial_resource_versions that is not UTF-8 makes the request malformed (proto3 strings),
        as it does in resource_names_subscribe, which ends the stream with INVALID_ARGUMENT. upb (grpc 1.51)
        does not check map keys, so such a name must not reach a response: echoed in removed_resources, it
        makes a DeltaDiscoveryResponse that libprotobuf (Envoy's parser, and Python's here) refuses."""
        server = self.start(backend("a", ["10.0.0.1"]))

        def ld(field, data):
            assert len(data) < 128
            return bytes([field << 3 | 2, len(data)]) + data

        bad = b"app:gone\x83\x8f:http"
        for what, raw in (("subscribe", ld(2, xc.CLUSTER_URL.encode()) + ld(3, b"*") + ld(3, bad)),
                          ("initial_resource_versions", ld(2, xc.CLUSTER_URL.encode()) +
                           ld(5, ld(1, bad) + ld(2, b"0123456789abcdef")))):
            s = self.stream(server, raw=True)
            s.send_raw(raw)
            self.assertEqual(s.code(timeout=5), grpc.StatusCode.INVALID_ARGUMENT,
                             "a name that is not UTF-8 in %s: %s %s" % (what, s.code(0), s.details()))
            self.assertIn("DeltaDiscoveryRequest", s.details())


if __name__ == "__main__":
    skips.main()
