"""tests/debug/metrics_port_test.py: who sees what on which port (src/debug/http.c, serve.c; docs/operations.md,
"Ports"; docs/internals/debug.md).

The debug listener (--debug-listen, loopback: `kubectl port-forward`) shows the whole topology: the status page,
/clusters, /endpoints, /localities, /clients, /config_dump. The metrics listener (--metrics-listen, the pod IP
in the manifests) is for probes and Prometheus and must answer /metrics, /healthz and /readyz only. Each test
starts `ekglue serve --xds-listen 127.0.0.1:0 --debug-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0`, reads
both HTTP ports from the log (`msg="debug server listening port=N"`, `msg="metrics server listening port=N"`)
and checks, over HTTP:
- the metrics listener answers /metrics (Prometheus text), /healthz and /readyz like the debug listener does,
  and 404 to every view the debug listener serves (the list is read from the debug listener's own 404 text,
  so a view added there later is covered too), with ?format=yaml and HEAD as well, and its answers never
  carry a cluster name; the debug listener keeps serving every view;
- in Kubernetes mode with an unreachable API, the metrics listener's /readyz is 503 and /healthz 200, and its
  /metrics carries the watcher's figures (the probes and the scrape see the same state as the debug port);
- an address given with --metrics-listen must work: a taken port or a malformed address is exit 1 with a
  message naming the flag, and nothing is served.
Every server is stopped with SIGTERM and must exit 0 without a sanitizer report (xdsclient.check_clean_exit).

Run by ctest with EKGLUE, EKG_SOURCE_DIR and EKG_BUILD_DIR set; /usr/bin/python3. Every wait is bounded.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debugclient as dc  # noqa: E402
from debugclient import xc  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import skips  # noqa: E402

# The views that show the topology (docs/operations.md, "Endpoints"); the test also reads the debug listener's
# own list, so this is a floor, not the whole list.
TOPOLOGY_VIEWS = ["/", "/clusters", "/endpoints", "/localities", "/clients", "/config_dump"]
METRICS_PATHS = ["/metrics", "/healthz", "/readyz"]
# A cluster of deploy/demo/cluster.yaml: what must never show on the metrics listener.
DEMO_CLUSTER = "shop:frontend:http"


class TwoPortServer(xc.EkglueServer):
    """`ekglue serve` with both HTTP listeners on 127.0.0.1 port 0; debug_port and metrics_port from the log."""

    def __init__(self, objects=(), extra_args=()):
        super().__init__(objects, ["--debug-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"] +
                         list(extra_args), log_level="info")
        ports = {}
        for name in ("debug", "metrics"):
            line = self.wait_log(r"%s server listening port=\d+" % name, timeout=10)
            if line is None:
                self.stop()
                raise xc.StartError("no %s port in the log:%s" % (name, xc.failure_log(self)), self)
            ports[name] = int(re.search(r"%s server listening port=(\d+)" % name, line).group(1))
        self.debug_port, self.metrics_port = ports["debug"], ports["metrics"]


def views_of_debug_404(port):
    """The paths the debug listener lists in its 404 answer ("not found; try /, /healthz, ...")."""
    status, _, body = dc.get(port, "/no-such-view")
    assert status == 404, (status, body)
    return re.findall(r"(/[a-z_]*)", body.split("try", 1)[1])


class MetricsPortTest(xc.LogOnFailure, unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ekglue-metrics-port-")
        self.demo = os.path.join(self.dir, "cluster.yaml")
        shutil.copy(os.path.join(dc.SOURCE_DIR, "deploy", "demo", "cluster.yaml"), self.demo)
        self.server = TwoPortServer([self.demo])

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        xc.check_clean_exit(self, self.server)

    def test_two_listeners(self):
        self.assertNotEqual(self.server.debug_port, self.server.metrics_port)
        self.assertNotEqual(self.server.metrics_port, self.server.port)

    def test_metrics_listener_serves_probes_and_metrics(self):
        m, d = self.server.metrics_port, self.server.debug_port
        self.assertEqual(dc.get(m, "/healthz")[::2], (200, "ok\n"))
        self.assertEqual(dc.get(m, "/readyz")[::2], (200, "ready\n"))
        status, headers, body = dc.get(m, "/metrics")
        self.assertEqual(status, 200, body[:300])
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"), headers)
        families = set(re.findall(r"^# TYPE (ekglue_[a-z_]+) ", body, re.M))
        for name in ("ekglue_xds_streams", "ekglue_xds_pushes_total", "ekglue_last_update_timestamp_seconds",
                     "ekglue_snapshot_build_seconds", "ekglue_process_resident_memory_bytes"):
            self.assertIn(name, families)
        # The same metrics as the debug listener's /metrics (values move between the two reads; names do not).
        status, _, dbody = dc.get(d, "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(families, set(re.findall(r"^# TYPE (ekglue_[a-z_]+) ", dbody, re.M)))
        # A published snapshot shows in the metrics listener's figures too.
        built = re.search(r"^ekglue_snapshot_build_seconds_count (\d+)", body, re.M)
        self.assertIsNotNone(built, body[:2000])
        self.assertGreaterEqual(int(built.group(1)), 1)
        self.assertNotIn(DEMO_CLUSTER, body)
        # Read-only, like the debug listener.
        for method in ("POST", "PUT", "DELETE"):
            status, headers, _ = dc.get(m, "/metrics", method=method)
            self.assertEqual(status, 405, method)
            self.assertEqual(headers.get("allow"), "GET, HEAD")
        self.assertEqual(dc.get(m, "/healthz", method="HEAD")[::2], (200, ""))

    def test_metrics_listener_refuses_every_topology_view(self):
        m, d = self.server.metrics_port, self.server.debug_port
        listed = views_of_debug_404(d)
        self.assertTrue(set(TOPOLOGY_VIEWS + METRICS_PATHS) <= set(listed),
                        "the debug listener's 404 lists %s" % listed)
        views = sorted(set(listed + TOPOLOGY_VIEWS) - set(METRICS_PATHS))
        self.assertGreaterEqual(len(views), len(TOPOLOGY_VIEWS))
        for path in views:
            # The debug listener serves the view, and its answer carries the topology ...
            status, _, body = dc.get(d, path)
            self.assertEqual(status, 200, "debug listener %s: %s" % (path, body[:300]))
            if path not in ("/clients", "/localities"):  # no client connected; the demo's localities are Nodes
                self.assertIn(DEMO_CLUSTER, body, "debug listener " + path)
            # ... the metrics listener refuses it, in any form.
            for variant, method in ((path, "GET"), (path + "?format=yaml", "GET"), (path + "?format=json", "GET"),
                                    (path, "HEAD"), (path + "/", "GET")):
                status, headers, body = dc.get(m, variant, method=method)
                self.assertEqual(status, 404, "metrics listener %s %s answered %d: %s" %
                                 (method, variant, status, body[:300]))
                self.assertNotIn(DEMO_CLUSTER, body)
                self.assertTrue(headers["content-type"].startswith("text/plain"), headers)
        status, _, body = dc.get(m, "/")
        self.assertIn("/metrics, /healthz and /readyz only", body)
        for path in ("/no-such-view", "/metrics/", "//clusters", "/healthz/../clusters"):
            self.assertEqual(dc.get(m, path)[0], 404, path)
        # Both listeners still answer after all that (nothing was held open or broken).
        self.assertEqual(dc.get(m, "/healthz")[0], 200)
        self.assertEqual(dc.get(d, "/clusters")[0], 200)


class KubernetesModeTest(xc.LogOnFailure, unittest.TestCase):
    """An API server that cannot be reached: the probes on the metrics listener say alive but not ready."""

    def setUp(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.dead_port = sock.getsockname()[1]
        sock.close()  # nothing listens there now
        self.server = TwoPortServer(extra_args=["--master", "http://127.0.0.1:%d" % self.dead_port])

    def tearDown(self):
        xc.check_clean_exit(self, self.server)

    def test_probes_before_sync(self):
        m = self.server.metrics_port
        self.assertEqual(dc.get(m, "/healthz")[0], 200)
        status, _, body = dc.get(m, "/readyz")
        self.assertEqual(status, 503, body)
        self.assertEqual(dc.get(self.server.debug_port, "/readyz")[0], 503)
        status, _, body = dc.get(m, "/metrics")
        self.assertEqual(status, 200)
        self.assertRegex(body, r'(?m)^ekglue_kubernetes_sync_age_seconds\{resource="services"\} -1$')
        # The page that says why (the API address) is the debug listener's only.
        self.assertEqual(dc.get(m, "/")[0], 404)
        self.assertIn("127.0.0.1:%d" % self.dead_port, dc.get(self.server.debug_port, "/")[2])


class MetricsListenFlagTest(unittest.TestCase):
    """An address given with --metrics-listen must work, or `ekglue serve` exits 1 before serving."""

    def serve(self, metrics_listen):
        args = [xc.EKGLUE, "serve", "--objects", os.path.join(dc.SOURCE_DIR, "deploy", "demo", "cluster.yaml"),
                "--xds-listen", "127.0.0.1:0", "--debug-listen", "off", "--metrics-listen", metrics_listen]
        try:
            r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               timeout=30)
        except subprocess.TimeoutExpired as e:
            self.fail("ekglue serve --metrics-listen %s did not exit: %s" % (metrics_listen, e.stderr))
        err = r.stderr.decode("utf-8", "replace")
        for marker in xc.SANITIZER_MARKERS:
            self.assertNotIn(marker, err)
        return r.returncode, err

    def test_taken_port(self):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen(1)
            rc, err = self.serve("127.0.0.1:%d" % sock.getsockname()[1])
        self.assertEqual(rc, 1, err)
        self.assertIn("metrics server: cannot listen on 127.0.0.1:", err)

    def test_malformed_address(self):
        rc, err = self.serve("18002")
        self.assertEqual(rc, 1, err)
        self.assertIn("--metrics-listen: want HOST:PORT", err)


if __name__ == "__main__":
    skips.main()
