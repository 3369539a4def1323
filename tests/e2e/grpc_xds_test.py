"""tests/e2e/grpc_xds_test.py: ekglue serving gRPC's own xDS client (proxyless gRPC), end to end.

Three gRPC backends listen on 127.0.0.1, 127.0.0.2 and 127.0.0.3 (same port), described by an objects file as the
endpoints of Service test/echo (port "grpc"). `ekglue serve` serves that file; a client process with a gRPC xDS
bootstrap pointing at ekglue calls xds:///echo.test:grpc (LDS -> inline route -> CDS -> EDS). Checked:
  - the client reaches all three backends, also through the port-number target xds:///echo.test:<port>;
  - the server logs the client's ACKs;
  - when the objects file drops a backend, the client stops reaching it within 1 s;
  - a config override the client must reject (type STATIC, which gRPC does not support) yields a NACK that the
    server logs with the node id and does not answer by resending the same clusters.
Everything runs on 127.0.0.1 with bounded waits; every process started here is stopped here.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from concurrent import futures

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "xds"))
import xdsclient  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import skips  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Backend:
    """A gRPC server on addr:port answering /ekglue.test.Echo/Who with its name."""

    def __init__(self, name, addr, port):
        self.name = name
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler(
            "ekglue.test.Echo", {"Who": grpc.unary_unary_rpc_method_handler(lambda req, ctx: name.encode())})
        self.server.add_generic_rpc_handlers((handler,))
        if self.server.add_insecure_port("%s:%d" % (addr, port)) == 0:
            raise RuntimeError("cannot bind %s:%d" % (addr, port))
        self.server.start()

    def stop(self):
        self.server.stop(0)


def objects_yaml(port, addresses):
    """Service test/echo with port grpc=port, its EndpointSlice with the given addresses, and a Node."""
    eps = "".join("- addresses: [\"%s\"]\n  nodeName: node-a\n" % a for a in addresses)
    return ("apiVersion: v1\nkind: Node\nmetadata:\n  name: node-a\n  labels:\n"
            "    topology.kubernetes.io/region: local\n    topology.kubernetes.io/zone: local-a\n"
            "---\napiVersion: v1\nkind: Service\nmetadata: {name: echo, namespace: test}\n"
            "spec:\n  ports:\n  - {name: grpc, port: %d, targetPort: %d}\n"
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
            "metadata: {name: echo-1, namespace: test, labels: {kubernetes.io/service-name: echo}}\n"
            "addressType: IPv4\nports: [{name: grpc, port: %d}]\nendpoints:\n%s") % (port, port, port, eps)


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


class GrpcXdsTest(xdsclient.LogOnFailure, unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ekglue-e2e-")
        self.port = free_port()
        self.addrs = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        self.backends = [Backend("b%d" % i, a, self.port) for i, a in enumerate(self.addrs)]
        self.objects = os.path.join(self.dir, "objects.yaml")
        write_atomically(self.objects, objects_yaml(self.port, self.addrs))
        self.clients = []
        self.server = None

    def tearDown(self):
        for c in self.clients:
            if c.poll() is None:
                c.kill()
            c.wait(timeout=5)
            c.stdout.close()
        if self.server:
            self.server.stop(timeout=10)
        for b in self.backends:
            b.stop()
        if self.server:  # after everything is stopped, so that a failure here leaks nothing
            xdsclient.check_clean_exit(self, self.server)

    def start_server(self, extra=()):
        self.server = xdsclient.EkglueServer(objects=[self.objects], extra_args=extra)
        self.server.__enter__()
        return self.server

    def start_client(self, target, duration, interval=0.02, node_id="e2e-client"):
        bootstrap = os.path.join(self.dir, "bootstrap-%s.json" % node_id)
        with open(bootstrap, "w") as f:
            json.dump({"xds_servers": [{"server_uri": "127.0.0.1:%d" % self.server.port,
                                        "channel_creds": [{"type": "insecure"}],
                                        "server_features": ["xds_v3"]}],
                       "node": {"id": node_id, "locality": {"zone": "local-a"}}}, f)
        env = dict(os.environ, GRPC_XDS_BOOTSTRAP=bootstrap)
        p = subprocess.Popen([PYTHON, os.path.join(HERE, "grpc_client.py"), target, str(duration), str(interval)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        self.clients.append(p)
        return p

    @staticmethod
    def read_lines(client, until):
        """Reads "<time> <backend>" lines until the deadline or the client exits."""
        lines = []
        while time.monotonic() < until:
            line = client.stdout.readline()
            if not line:
                break
            t, who = line.split()
            lines.append((float(t), who))
        return lines

    def test_client_balances_over_all_backends_and_follows_changes(self):
        self.start_server()
        client = self.start_client("xds:///echo.test:grpc", duration=20)
        # Phase 1: every backend answers.
        seen, deadline = set(), time.monotonic() + 15
        while seen != {"b0", "b1", "b2"} and time.monotonic() < deadline:
            line = client.stdout.readline()
            if not line:
                break
            seen.add(line.split()[1])
        self.assertEqual(seen, {"b0", "b1", "b2"}, "backends reached: %s\n%s" % (seen, self.server.log()[-3000:]))
        for t in ("Listener", "Cluster", "ClusterLoadAssignment"):
            self.assertIsNotNone(self.server.wait_log(r"ACK node=e2e-client .*type=%s " % t, timeout=5),
                                 "no %s ACK logged" % t)
        # Phase 2: drop b2 from the objects file; b2 must stop getting traffic within 1 s.
        changed_at = time.monotonic()
        write_atomically(self.objects, objects_yaml(self.port, self.addrs[:2]))
        lines = self.read_lines(client, changed_at + 4)
        last_b2 = max([t for t, who in lines if who == "b2"], default=changed_at)
        after = [who for t, who in lines if t > changed_at + 1.0]
        self.assertGreater(len(after), 20, "too few RPCs after the change: %s" % lines[-5:])
        self.assertNotIn("b2", after, "b2 still reached more than 1 s after it was removed")
        self.assertLess(last_b2 - changed_at, 1.0)
        self.assertEqual(set(after), {"b0", "b1"})
        print("e2e: removed backend's last RPC %.3f s after the change" % (last_b2 - changed_at))

    def test_port_number_target(self):
        self.start_server()
        client = self.start_client("xds:///echo.test:%d" % self.port, duration=10)
        seen, deadline = set(), time.monotonic() + 15
        while seen != {"b0", "b1", "b2"} and time.monotonic() < deadline:
            line = client.stdout.readline()
            if not line:
                break
            seen.add(line.split()[1])
        self.assertEqual(seen, {"b0", "b1", "b2"})

    def test_rejected_cluster_is_nacked_and_not_resent(self):
        config = os.path.join(self.dir, "ekglue.yaml")
        with open(config, "w") as f:
            f.write("apiVersion: v1alpha\ncluster_config:\n  overrides:\n"
                    "  - match: [{cluster_name: 'test:echo:grpc'}]\n    override: {type: STATIC}\n")
        server = self.start_server(extra=["--config", config])
        self.start_client("xds:///echo.test:grpc", duration=8, interval=0.2, node_id="nack-client")
        self.assertIsNotNone(server.wait_log(r"NACK node=nack-client .*type=Cluster ", timeout=10),
                             "no NACK logged:\n" + server.log()[-3000:])
        nack_at = server.nlines()
        time.sleep(2.0)
        resent = [l for l in server.log().splitlines()[nack_at:] if "sending" in l and "type=Cluster " in l]
        self.assertEqual(resent, [], "Clusters resent after the NACK: %s" % resent)


if __name__ == "__main__":
    skips.main()
