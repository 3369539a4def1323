"""tests/golden/validation_test.py: Envoy's validation rules at the command line (issue 13; docs/config.md,
"Validation"; docs/cli.md).

- check-config, every format of dump, and serve refuse the two configs of issue 13 (http2 max_concurrent_streams
  0 inside typed_extension_protocol_options, connect_timeout -1s) with exit 3 and the same
  "FILE:LINE: key path: rule" message, and write nothing on stdout;
- dump's JSON, YAML and binary output succeed or fail together, with the same stderr (valid configs too);
- a running server given such a config on reload rejects it with that message and keeps serving the config in
  force (nothing pushed); it exits 0 on SIGTERM.

Every process has a bounded wait. Run by ctest with /usr/bin/python3 (EKGLUE, EKG_SOURCE_DIR, EKG_BUILD_DIR).
"""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "xds"))
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
import skips  # noqa: E402
import xdsclient as xc  # noqa: E402

DEMO = os.path.join(xc.SOURCE_DIR, "tests", "golden", "demo.yaml")
HPO = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

# The first case, in an override: line 13 holds the value.
STREAMS = """apiVersion: v1alpha
cluster_config:
  base:
    type: EDS
    connect_timeout: 1s
  overrides:
    - match: [{port_name: grpc}]
      override:
        typed_extension_protocol_options:
          %s:
            "@type": type.googleapis.com/%s
            explicit_http_config:
              http2_protocol_options: {max_concurrent_streams: 0}
""" % (HPO, HPO)
STREAMS_ERROR = (":13: cluster_config.overrides[0].override.typed_extension_protocol_options[\"%s\"]."
                 "explicit_http_config.http2_protocol_options.max_concurrent_streams: must be inside range "
                 "[1, 2147483647]" % HPO)

# The second: a negative connect_timeout in the base.
TIMEOUT = """apiVersion: v1alpha
cluster_config:
  base:
    type: EDS
    connect_timeout: -1s
"""
TIMEOUT_ERROR = ":5: cluster_config.base.connect_timeout: must be greater than 0s"

RELOAD_OBJECTS = """apiVersion: v1
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
RELOAD_CONFIG = """apiVersion: v1alpha
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


def run(args, timeout=60):
    """(exit code, stdout bytes, stderr text) of `ekglue args`."""
    proc = subprocess.run([xc.EKGLUE] + list(args), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace")


class ValidationCliTest(xc.LogOnFailure, unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ekglue-validation-")
        self.bad = []
        for name, text, error in (("streams.yaml", STREAMS, STREAMS_ERROR), ("timeout.yaml", TIMEOUT, TIMEOUT_ERROR)):
            path = os.path.join(self.dir, name)
            write(path, text)
            self.bad.append((path, path + error))

    def no_sanitizer_report(self, err):
        for marker in xc.SANITIZER_MARKERS:
            self.assertNotIn(marker, err)

    def test_check_config_refuses_with_line_key_and_rule(self):
        for path, message in self.bad:
            rc, out, err = run(["check-config", path])
            self.no_sanitizer_report(err)
            self.assertEqual(rc, 3, err)
            self.assertEqual(out, b"")
            self.assertEqual(err, message + "\n")

    def test_dump_formats_refuse_alike(self):
        for path, message in self.bad:
            for fmt in ("json", "yaml", "binary"):
                rc, out, err = run(["dump", "--objects", DEMO, "--config", path, "--format", fmt])
                self.no_sanitizer_report(err)
                self.assertEqual(rc, 3, "%s %s: %s" % (path, fmt, err))
                self.assertEqual(out, b"", "%s %s printed something" % (path, fmt))
                self.assertEqual(err, "ekglue dump: " + message + "\n", fmt)

    def test_dump_formats_succeed_alike(self):
        for config in (None, os.path.join(xc.SOURCE_DIR, "tests", "golden", "config-dns.yaml")):
            results = {}
            for fmt in ("json", "yaml", "binary"):
                args = ["dump", "--objects", DEMO, "--format", fmt] + (["--config", config] if config else [])
                rc, out, err = run(args)
                self.no_sanitizer_report(err)
                self.assertEqual(rc, 0, "%s %s: %s" % (config, fmt, err))
                self.assertGreater(len(out), 1000, fmt)
                results[fmt] = err
            self.assertEqual(results["json"], results["binary"])
            self.assertEqual(results["yaml"], results["binary"])
            self.assertNotIn("validation rules", results["json"])  # nothing of the golden fixtures is dropped

    def test_serve_refuses_at_start(self):
        for path, message in self.bad:
            rc, out, err = run(["serve", "--objects", DEMO, "--config", path, "--xds-listen", "127.0.0.1:0",
                                "--debug-listen", "off"], timeout=30)
            self.no_sanitizer_report(err)
            self.assertEqual(rc, 3, err)
            self.assertIn("ekglue serve: " + message + "\n", err)

    def test_reload_keeps_the_config_in_force(self):
        objects, config = os.path.join(self.dir, "objects.yaml"), os.path.join(self.dir, "ekglue.yaml")
        write(objects, RELOAD_OBJECTS)
        write(config, RELOAD_CONFIG % "2s")
        with xc.EkglueServer(objects=[objects], extra_args=["--config", config]) as server:
            stream = xc.XdsStream(server.channel())
            stream.send(xc.CLUSTER_URL, node_id="validation-test")
            resp = stream.recv()
            self.assertIsNotNone(resp, "no CDS response" + xc.failure_log(server))
            stream.ack(resp)
            mark = server.nlines()
            write(config, RELOAD_CONFIG % "-1s")
            line = server.wait_log(r"config rejected, keeping the one in force: .*ekglue\.yaml:5: "
                                   r"cluster_config\.overrides\[0\]\.override\.connect_timeout: must be greater than 0s",
                                   timeout=5, start=mark)
            self.assertIsNotNone(line, xc.failure_log(server))
            self.assertIsNone(stream.recv(timeout=1.0), "a push after a rejected config" + xc.failure_log(server))
            # Still serving what it had: a new stream gets the same version.
            again = xc.XdsStream(server.channel())
            again.send(xc.CLUSTER_URL, node_id="validation-test-2")
            resp2 = again.recv()
            self.assertIsNotNone(resp2, xc.failure_log(server))
            self.assertEqual(resp2.version_info, resp.version_info)
            stream.cancel()
            again.cancel()
            xc.check_clean_exit(self, server)


if __name__ == "__main__":
    skips.main()
