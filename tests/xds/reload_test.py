"""tests/xds/reload_test.py: the config file is re-read on change and on SIGHUP, in file mode and Kubernetes mode.

A good new config rebuilds and pushes what changed (here: a Cluster override); a broken one is rejected with its
file:line in the log and the config in force stays (no push); an edit that changes nothing effective (a comment)
pushes nothing.
"""
import os
import signal
import sys
import tempfile
import time
import unittest

import xdsclient as xc

sys.path.insert(0, os.path.join(xc.SOURCE_DIR, "tests", "fakeapi"))

OBJECTS = """apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.0.0.1]}]
"""

CONFIG = """apiVersion: v1alpha
cluster_config:
  overrides:
  - match: [{cluster_name: 'shop:web:http'}]
    override: {connect_timeout: %s}
"""


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def connect_timeout(resp):
    clusters = [xc.unpack(a, "envoy.config.cluster.v3.Cluster") for a in resp.resources]
    c = next(c for c in clusters if c.name == "shop:web:http")
    return c.connect_timeout.seconds + c.connect_timeout.nanos / 1e9


class ReloadTest(xc.LogOnFailure, unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ekglue-reload-")
        self.config = os.path.join(self.dir, "ekglue.yaml")
        write(self.config, CONFIG % "2s")

    def check_reloads(self, server, trigger):
        stream = xc.XdsStream(server.channel())
        stream.send(xc.CLUSTER_URL, node_id="reload-test")
        resp = stream.recv()
        self.assertIsNotNone(resp, "no CDS response:\n" + server.log()[-2000:])
        self.assertEqual(connect_timeout(resp), 2.0)
        stream.ack(resp)
        # A good change: pushed.
        write(self.config, CONFIG % "0.5s")
        trigger()
        resp2 = stream.recv(timeout=5)
        self.assertIsNotNone(resp2, "no push after the config changed:\n" + server.log()[-2000:])
        self.assertEqual(connect_timeout(resp2), 0.5)
        self.assertNotEqual(resp2.version_info, resp.version_info)
        stream.ack(resp2)
        # A broken config: rejected with file:line, the one in force stays, nothing pushed.
        mark = server.nlines()
        write(self.config, CONFIG % "2s" + "  bogus_key: 1\n")
        trigger()
        line = server.wait_log(r"config rejected, keeping the one in force: .*ekglue.yaml:\d+", timeout=5, start=mark)
        self.assertIsNotNone(line, server.log()[-2000:])
        self.assertIsNone(stream.recv(timeout=1.0), "a push after a rejected config")
        # A comment only: same effective config, nothing pushed.
        write(self.config, "# just a comment\n" + CONFIG % "0.5s")
        trigger()
        self.assertIsNone(stream.recv(timeout=1.0), "a push after an edit that changed nothing")
        # Fixed again with a real change: pushed.
        write(self.config, CONFIG % "3s")
        trigger()
        resp3 = stream.recv(timeout=5)
        self.assertIsNotNone(resp3)
        self.assertEqual(connect_timeout(resp3), 3.0)
        stream.cancel()

    def test_file_mode_on_change(self):
        objects = os.path.join(self.dir, "objects.yaml")
        write(objects, OBJECTS)
        with xc.EkglueServer(objects=[objects], extra_args=["--config", self.config]) as server:
            self.check_reloads(server, lambda: None)  # inotify on the config's directory

    def test_file_mode_on_sighup_only(self):
        # The config lives in a directory of its own; SIGHUP must also work (and double reloads push nothing).
        objects = os.path.join(self.dir, "objects.yaml")
        write(objects, OBJECTS)
        with xc.EkglueServer(objects=[objects], extra_args=["--config", self.config]) as server:
            self.check_reloads(server, lambda: (time.sleep(0.2), server.signal(signal.SIGHUP)))

    def test_kubernetes_mode(self):
        import fakeapi
        fake = fakeapi.FakeAPIServer("127.0.0.1", 0).start()
        try:
            fake.load(OBJECTS)
            with xc.EkglueServer(extra_args=["--master", fake.url, "--config", self.config]) as server:
                self.assertIsNotNone(server.wait_log(r"first complete sync", timeout=10), server.log()[-2000:])
                self.check_reloads(server, lambda: None)
        finally:
            fake.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
