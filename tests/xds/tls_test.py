"""tests/xds/tls_test.py: TLS and mutual TLS on the xDS port, and certificate rotation without a restart
(src/xds/tls.c, `ekglue serve --tls-cert/--tls-key/--tls-client-ca`).

The openssl CLI makes, in a temporary directory: CA one, a server certificate from it for 127.0.0.1 and
localhost, a client CA with a client certificate, a stranger CA with a client certificate, and CA two with a
second server certificate. Each test starts `ekglue serve` with the demo cluster and talks to it with
grpc.secure_channel (a local subchannel pool per channel, so every channel makes its own connection):
  - TLS: a client trusting CA one gets CDS; a plaintext client and a client trusting another CA fail.
  - mutual TLS: with the client certificate the call works; without one, or with one from another CA, it fails.
  - rotation: the certificate and key files are replaced by CA two's; without a restart a new connection
    trusting only CA two works and one trusting only CA one fails, while the connection made before keeps
    working.
  - a missing certificate file stops `serve` at start (exit 1) with a message naming it;
  - `serve --help` lists the three flags.
Every wait is bounded.

Run by ctest with EKGLUE, EKG_SOURCE_DIR and EKG_BUILD_DIR set; /usr/bin/python3.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xdsclient as xc  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import skips  # noqa: E402


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".pem", "-days", "2", "-subj", "/CN=ekglue test " + name,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=d)


def make_cert(d, name, ca, server):
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        if server:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        else:
            f.write("extendedKeyUsage=clientAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            name + ".key", "-out", name + ".csr", "-subj", "/CN=" + ("localhost" if server else name), cwd=d)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key", "-CAcreateserial",
            "-out", name + ".pem", "-days", "2", "-extfile", ext, cwd=d)


class TlsTest(xc.LogOnFailure, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="ekglue-tls-pki-")
        for ca in ("ca1", "ca2", "client-ca", "stranger-ca"):
            make_ca(cls.pki, ca)
        make_cert(cls.pki, "server1", "ca1", server=True)
        make_cert(cls.pki, "server2", "ca2", server=True)
        make_cert(cls.pki, "client", "client-ca", server=False)
        make_cert(cls.pki, "stranger", "stranger-ca", server=False)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki, ignore_errors=True)

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ekglue-tls-")
        self.demo = os.path.join(self.dir, "cluster.yaml")
        shutil.copy(os.path.join(xc.SOURCE_DIR, "deploy", "demo", "cluster.yaml"), self.demo)
        # The files the server is given (copies: the rotation test replaces them).
        self.cert = os.path.join(self.dir, "tls.crt")
        self.key = os.path.join(self.dir, "tls.key")
        self.install("server1")
        self.server = None
        self.channels = []

    def tearDown(self):
        for ch in self.channels:
            ch.close()
        if self.server:
            self.server.stop(timeout=15)
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.server:
            xc.check_clean_exit(self, self.server)

    def pem(self, name):
        with open(os.path.join(self.pki, name), "rb") as f:
            return f.read()

    def install(self, server_name):
        """Replaces the server's key and certificate files by rename, as a Secret update or cert-manager does."""
        for src, dst in ((server_name + ".key", self.key), (server_name + ".pem", self.cert)):
            tmp = dst + ".tmp"
            shutil.copy(os.path.join(self.pki, src), tmp)
            os.replace(tmp, dst)

    def serve(self, mutual=False):
        args = ["--debug-listen", "off", "--tls-cert", self.cert, "--tls-key", self.key]
        if mutual:
            args += ["--tls-client-ca", os.path.join(self.pki, "client-ca.pem")]
        self.server = xc.EkglueServer([self.demo], extra_args=args)

    def secure_channel(self, ca, client=None):
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.pem(ca + ".pem"),
            private_key=self.pem(client + ".key") if client else None,
            certificate_chain=self.pem(client + ".pem") if client else None)
        ch = grpc.secure_channel(self.server.address, creds, options=[("grpc.use_local_subchannel_pool", 1)])
        self.channels.append(ch)
        return ch

    def plain_channel(self):
        ch = grpc.insecure_channel(self.server.address, options=[("grpc.use_local_subchannel_pool", 1)])
        self.channels.append(ch)
        return ch

    def cds(self, ch):
        """Clusters over a fresh ADS stream on ch, or the grpc.RpcError the call failed with."""
        s = xc.XdsStream(ch)
        s.send(xc.CLUSTER_URL, node_id="tls-test")
        resp = s.recv(timeout=5)
        if resp is None:
            s.code(timeout=5)
            err = s.error
            s.cancel()
            return err
        s.cancel()
        return resp

    def assertWorks(self, ch):
        r = self.cds(ch)
        self.assertNotIsInstance(r, grpc.RpcError, "%s\n%s" % (r, self.server.log()[-3000:]))
        self.assertIsNotNone(r, self.server.log()[-3000:])
        self.assertEqual(r.type_url, xc.CLUSTER_URL)
        self.assertTrue(r.resources)

    def assertFails(self, ch):
        r = self.cds(ch)
        self.assertIsInstance(r, grpc.RpcError, "the call should have failed, got %r" % (r,))
        self.assertEqual(r.code(), grpc.StatusCode.UNAVAILABLE)

    # ------------------------------------------------------------------------------------------------------------

    def test_tls(self):
        self.serve()
        self.assertWorks(self.secure_channel("ca1"))
        self.assertFails(self.secure_channel("ca2"))
        self.assertFails(self.plain_channel())
        self.assertEqual(xc.health_check(self.secure_channel("ca1")), xc.SERVING)

    def test_mutual_tls(self):
        self.serve(mutual=True)
        self.assertWorks(self.secure_channel("ca1", client="client"))
        self.assertFails(self.secure_channel("ca1"))
        self.assertFails(self.secure_channel("ca1", client="stranger"))
        self.assertFails(self.plain_channel())

    def test_rotation_without_restart(self):
        self.serve(mutual=True)
        before = self.secure_channel("ca1", client="client")
        self.assertWorks(before)
        pid = self.server.proc.pid
        time.sleep(0.01)  # a different mtime even on coarse clocks (size and inode change anyway)
        self.install("server2")
        # The next handshake sees the new files.
        self.assertWorks(self.secure_channel("ca2", client="client"))
        self.assertFails(self.secure_channel("ca1", client="client"))
        self.assertIsNotNone(self.server.wait_log(r"TLS certificate files changed", timeout=5), self.server.log())
        # The connection made before keeps its session.
        self.assertWorks(before)
        self.assertEqual(self.server.proc.pid, pid)
        self.assertIsNone(self.server.proc.poll())
        # A half-done rotation (new certificate, old key) keeps the working pair.
        shutil.copy(os.path.join(self.pki, "server1.pem"), self.cert + ".tmp")
        os.replace(self.cert + ".tmp", self.cert)
        self.assertWorks(self.secure_channel("ca2", client="client"))
        # ... until the key follows.
        self.install("server1")
        self.assertWorks(self.secure_channel("ca1", client="client"))

    def test_flags_in_help(self):
        out = subprocess.run([xc.EKGLUE, "serve", "--help"], capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        for flag in ("--tls-cert FILE", "--tls-key FILE", "--tls-client-ca FILE"):
            self.assertIn(flag.encode(), out.stdout + out.stderr)

    def test_missing_file_stops_serve(self):
        with self.assertRaises(xc.StartError) as ctx:
            xc.EkglueServer([self.demo], extra_args=["--debug-listen", "off", "--tls-cert", self.cert + ".missing",
                                                  "--tls-key", self.key])
        self.assertIn(self.cert + ".missing", str(ctx.exception))
        self.assertEqual(ctx.exception.server.returncode, 1, "exit 1: cannot listen (docs/cli.md)")


if __name__ == "__main__":
    skips.main()
