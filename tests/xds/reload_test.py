"""tests/xds/reload_test.py: the config file is re-read on change and on SIGHUP, in file mode and Kubernetes mode.

A good new config rebuilds and pushes what changed (here: a Cluster override); a broken one is rejected with its
file:line in the log and the config in force stays (no push); an edit that changes nothing effective (a comment)
pushes nothing. SIGHUP alone reloads: with --config a symlink into another directory, the inotify watch on the
link's directory (src/common/file.c, docs/internals/watcher.md) never sees an edit of the target, so nothing may
change until the signal, and the change must follow it.
"""
import os
import signal
import sys
import tempfile
import unittest

import xdsclient as xc

sys.path.insert(0, os.path.join(xc.SOURCE_DIR, "tests", "fakeapi"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import skips  # noqa: E402

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
        """--config is link/ekglue.yaml -> real/ekglue.yaml: ekglue watches link/, the edits happen in real/."""
        objects = os.path.join(self.dir, "objects.yaml")
        write(objects, OBJECTS)
        real_dir, link_dir = os.path.join(self.dir, "real"), os.path.join(self.dir, "link")
        os.mkdir(real_dir)
        os.mkdir(link_dir)
        target, link = os.path.join(real_dir, "ekglue.yaml"), os.path.join(link_dir, "ekglue.yaml")
        write(target, CONFIG % "2s")
        os.symlink(target, link)
        with xc.EkglueServer(objects=[objects], extra_args=["--config", link]) as server:
            stream = xc.XdsStream(server.channel())
            stream.send(xc.CLUSTER_URL, node_id="reload-sighup")
            resp = stream.recv()
            self.assertIsNotNone(resp, "no CDS response" + xc.failure_log(server))
            self.assertEqual(connect_timeout(resp), 2.0)
            stream.ack(resp)

            def edit_then_signal(text):
                """Edits the target; nothing may happen before SIGHUP. Returns the log mark before the signal."""
                mark = server.nlines()
                write(target, text)
                self.assertIsNone(stream.recv(timeout=1.5), "a push before SIGHUP: the watch saw the target's "
                                  "directory, so this test proves nothing" + xc.failure_log(server))
                self.assertIsNone(server.wait_log(r"files changed", timeout=0, start=mark), xc.failure_log(server))
                mark = server.nlines()
                server.signal(signal.SIGHUP)
                return mark

            for seconds in ("0.5s", "3s"):  # twice: the first signal did not leave a watch behind
                mark = edit_then_signal(CONFIG % seconds)
                resp2 = stream.recv(timeout=5)
                self.assertIsNotNone(resp2, "no push after SIGHUP" + xc.failure_log(server))
                self.assertEqual(connect_timeout(resp2), float(seconds[:-1]))
                self.assertNotEqual(resp2.version_info, resp.version_info)
                self.assertIsNotNone(server.wait_log(r"SIGHUP: config .*ekglue.yaml reloaded", timeout=1, start=mark),
                                     xc.failure_log(server))
                stream.ack(resp2)
                resp = resp2
            # A broken config: rejected on SIGHUP with file:line, the one in force stays, nothing pushed.
            mark = edit_then_signal(CONFIG % "2s" + "  bogus_key: 1\n")
            line = server.wait_log(r"SIGHUP: config rejected, keeping the one in force: .*ekglue.yaml:\d+",
                                   timeout=5, start=mark)
            self.assertIsNotNone(line, xc.failure_log(server))
            self.assertIsNone(stream.recv(timeout=1.0), "a push after a rejected config")
            # The config in force again, with a comment: read on SIGHUP, the same effective config, no push.
            mark = edit_then_signal("# just a comment\n" + CONFIG % "3s")
            self.assertIsNotNone(server.wait_log(r"SIGHUP", timeout=5, start=mark), xc.failure_log(server))
            self.assertIsNone(stream.recv(timeout=1.0), "a push after a reload that changed nothing")
            self.assertIsNone(server.wait_log(r"config rejected|config .* reloaded", timeout=0, start=mark),
                              xc.failure_log(server))
            stream.cancel()

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
    skips.main()
