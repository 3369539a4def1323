"""tests/xds/xdsclient.py: shared helpers for the xDS server tests (not a test itself).

- EkglueServer starts `$EKGLUE serve --xds-listen 127.0.0.1:0 ...`, reads the bound port from the log line
  `msg="xDS server listening port=N ..."` (bounded wait), keeps stderr for assertions and stops the process.
- Message classes (DiscoveryRequest, DiscoveryResponse, Cluster, ClusterLoadAssignment, ...) are built from the
  descriptor sets the build writes ($EKG_BUILD_DIR/gen/grpc_descriptors.pb and extra_descriptors.pb), so the
  tests decode with an independent protobuf implementation.
- XdsStream is one raw bidirectional stream (channel.stream_stream) with send()/recv(timeout).
- Health Check/Watch messages are encoded by hand (grpc.health.v1 is two tiny messages).

Every wait is bounded. Run with /usr/bin/python3 (python3-grpcio, python3-protobuf from Debian).
"""
import os
import queue
import re
import signal
import subprocess
import threading
import time

import grpc
from google.protobuf import descriptor_database, descriptor_pb2, descriptor_pool, message_factory

EKGLUE = os.environ.get("EKGLUE", "")
SOURCE_DIR = os.environ.get("EKG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.environ.get("EKG_BUILD_DIR", "")

ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
CDS = "/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters"
EDS = "/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints"
LDS = "/envoy.service.listener.v3.ListenerDiscoveryService/StreamListeners"
RDS = "/envoy.service.route.v3.RouteDiscoveryService/StreamRoutes"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"

CLUSTER_URL = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
CLA_URL = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER_URL = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE_URL = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"

# grpc.health.v1.HealthCheckResponse.ServingStatus
UNKNOWN, SERVING, NOT_SERVING, SERVICE_UNKNOWN = 0, 1, 2, 3

_classes = {}


def message_class(full_name):
    """The generated class of a message type known to the build's descriptor sets."""
    if not _classes:
        db = descriptor_database.DescriptorDatabase()
        for name in ("grpc_descriptors.pb", "extra_descriptors.pb"):
            path = os.path.join(BUILD_DIR, "gen", name)
            fds = descriptor_pb2.FileDescriptorSet()
            with open(path, "rb") as f:
                fds.ParseFromString(f.read())
            for fd in fds.file:
                try:
                    db.Add(fd)
                except Exception:  # the same file in both sets
                    pass
        _classes["__pool__"] = descriptor_pool.DescriptorPool(db)
        _classes["__factory__"] = message_factory.MessageFactory(_classes["__pool__"])
    if full_name not in _classes:
        desc = _classes["__pool__"].FindMessageTypeByName(full_name)
        factory = _classes["__factory__"]
        get = getattr(message_factory, "GetMessageClass", None)
        _classes[full_name] = get(desc) if get else factory.GetPrototype(desc)
    return _classes[full_name]


def DiscoveryRequest():
    return message_class("envoy.service.discovery.v3.DiscoveryRequest")()


def DiscoveryResponse():
    return message_class("envoy.service.discovery.v3.DiscoveryResponse")()


def unpack(any_msg, full_name):
    """Decodes a google.protobuf.Any into the message type full_name."""
    assert any_msg.type_url == "type.googleapis.com/" + full_name, any_msg.type_url
    m = message_class(full_name)()
    m.ParseFromString(any_msg.value)
    return m


def resource_names(resp):
    """Names of the Clusters/ClusterLoadAssignments/... in a DiscoveryResponse, in order."""
    names = []
    for any_msg in resp.resources:
        full = any_msg.type_url[len("type.googleapis.com/"):]
        m = unpack(any_msg, full)
        names.append(m.cluster_name if full.endswith("ClusterLoadAssignment") else m.name)
    return names


# --- the server process ----------------------------------------------------------------------------------------

class EkglueServer:
    """`ekglue serve` on 127.0.0.1 with a free port. Use as a context manager; it is killed on exit.
    log_level must be debug or info: the port is read from an info line."""

    def __init__(self, objects=(), extra_args=(), start_timeout=15.0, log_level="debug"):
        if not EKGLUE:
            raise RuntimeError("EKGLUE is not set")
        args = [EKGLUE, "serve", "--xds-listen", "127.0.0.1:0", "--log-level", log_level]
        for path in objects:
            args += ["--objects", path]
        args += list(extra_args)
        if not any(a == "--debug-listen" or a.startswith("--debug-listen=") for a in args):
            args += ["--debug-listen", "off"]  # tests run in parallel: no fixed debug port
        self.lines = []
        self._lines_lock = threading.Lock()
        self._port_q = queue.Queue()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        try:
            self.port = self._port_q.get(timeout=start_timeout)
        except queue.Empty:
            self.kill()
            raise RuntimeError("ekglue serve did not log its port within %.0fs:\n%s" %
                               (start_timeout, self.log()))
        if self.port is None:
            self.wait(5)
            raise RuntimeError("ekglue serve exited (rc=%s) before listening:\n%s" %
                               (self.proc.returncode, self.log()))
        self.address = "127.0.0.1:%d" % self.port

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lines_lock:
                self.lines.append(line)
            m = re.search(r"xDS server listening port=(\d+)", line)
            if m:
                self._port_q.put(int(m.group(1)))
        self._port_q.put(None)

    def log(self):
        with self._lines_lock:
            return "\n".join(self.lines)

    def wait_log(self, pattern, timeout=5.0, start=0):
        """Waits until a log line (from index start on) matches pattern; returns the line or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lines_lock:
                for line in self.lines[start:]:
                    if re.search(pattern, line):
                        return line
            time.sleep(0.02)
        return None

    def nlines(self):
        with self._lines_lock:
            return len(self.lines)

    def signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """The exit code, or None if the process is still running after timeout seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, timeout=10.0):
        """SIGTERM, then the exit code (None if it did not exit in time; it is then killed)."""
        self.signal(signal.SIGTERM)
        rc = self.wait(timeout)
        if rc is None:
            self.kill()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._reader.join(timeout=5)

    def channel(self):
        return grpc.insecure_channel(self.address)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        if self.proc.stderr:
            self.proc.stderr.close()


# --- xDS streams -------------------------------------------------------------------------------------------------

_END = object()


class XdsStream:
    """One raw state-of-the-world stream. Requests go through a queue; responses are read by a thread so that
    recv() can time out."""

    def __init__(self, channel, method=ADS, raw=False, read=True):
        self._requests = queue.Queue()
        self._responses = queue.Queue()
        self.error = None  # the grpc.RpcError the stream ended with, if any
        self.ended = threading.Event()
        ser = (lambda b: b) if raw else (lambda m: m.SerializeToString())
        rpc = channel.stream_stream(method, request_serializer=ser,
                                    response_deserializer=DiscoveryResponse().__class__.FromString)
        self.call = rpc(iter(self._requests.get, _END))
        # read=False makes a stuck client: nothing reads, so flow control stops the server's sends.
        self._reader = threading.Thread(target=self._read, daemon=True)
        if read:
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

    def send(self, type_url, names=(), version="", nonce="", error=None, node_id=None):
        req = DiscoveryRequest()
        req.type_url = type_url
        req.resource_names.extend(names)
        req.version_info = version
        req.response_nonce = nonce
        if node_id is not None:
            req.node.id = node_id
            req.node.user_agent_name = "ekglue-tests"
        if error is not None:
            req.error_detail.code = 3
            req.error_detail.message = error
        self._requests.put(req)

    def ack(self, resp, names=()):
        self.send(resp.type_url, names=names, version=resp.version_info, nonce=resp.nonce)

    def recv(self, timeout=5.0):
        """The next DiscoveryResponse, or None on timeout or when the stream ended."""
        try:
            item = self._responses.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            self._responses.put(_END)  # stay ended
            return None
        return item

    def code(self, timeout=5.0):
        """The status code the stream ended with (None if it did not end in time)."""
        if not self.ended.wait(timeout):
            return None
        return self.error.code() if self.error is not None else grpc.StatusCode.OK

    def half_close(self):
        self._requests.put(_END)

    def cancel(self):
        self.call.cancel()
        self._requests.put(_END)
        if self._reader.is_alive():
            self._reader.join(timeout=5)


# --- grpc.health.v1 ------------------------------------------------------------------------------------------------

def encode_health_request(service):
    data = service.encode()
    if not data:
        return b""
    assert len(data) < 128
    return b"\x0a" + bytes([len(data)]) + data


def decode_health_response(data):
    """HealthCheckResponse.status (0 when the field is absent)."""
    status, i = 0, 0
    while i < len(data):
        key = data[i]
        i += 1
        if key == 0x08:
            v, shift = 0, 0
            while True:
                b = data[i]
                i += 1
                v |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            status = v
        else:
            raise ValueError("unexpected field in HealthCheckResponse: %r" % data)
    return status


def health_check(channel, service="", timeout=5.0):
    rpc = channel.unary_unary(HEALTH_CHECK, request_serializer=encode_health_request,
                              response_deserializer=decode_health_response)
    return rpc(service, timeout=timeout)


def health_watch(channel, service=""):
    """A server-streaming Watch call: iterate it for statuses (use the helper below for timeouts)."""
    rpc = channel.unary_stream(HEALTH_WATCH, request_serializer=encode_health_request,
                               response_deserializer=decode_health_response)
    return rpc(service)


class Watch:
    """A health Watch stream whose statuses arrive in a queue."""

    def __init__(self, channel, service=""):
        self.call = health_watch(channel, service)
        self.statuses = queue.Queue()
        self.error = None
        self.ended = threading.Event()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        try:
            for status in self.call:
                self.statuses.put(status)
        except grpc.RpcError as e:
            self.error = e
        finally:
            self.ended.set()

    def next(self, timeout=5.0):
        try:
            return self.statuses.get(timeout=timeout)
        except queue.Empty:
            return None

    def cancel(self):
        self.call.cancel()
        self._t.join(timeout=5)


def dump_names(objects):
    """Cluster and load-assignment names `ekglue dump` gives for objects files (the independent reference)."""
    import json
    args = [EKGLUE, "dump", "--format", "json"]
    for path in objects:
        args += ["--objects", path]
    out = subprocess.run(args, check=True, capture_output=True, timeout=30).stdout
    doc = json.loads(out)
    return ([c["name"] for c in doc["clusters"]], [c["clusterName"] for c in doc["load_assignments"]])
