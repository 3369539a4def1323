"""tests/xds/xdsclient.py: shared helpers for the xDS server tests (not a test itself).

- EkglueServer starts `$EKGLUE serve --xds-listen 127.0.0.1:0 ...`, reads the bound port from the log line
  `msg="xDS server listening port=N ..."` (bounded wait), keeps stderr for assertions, records how the process
  ended (exit code, signals the test sent, a signal nobody sent) and stops it (stop(): SIGTERM, then SIGKILL).
- failure_log(server) is that stderr for a failure message: all of it (up to 200 KB; beyond, the head, every
  sanitizer report and the tail) under a header saying how the process ended.
- check_clean_exit(test, *servers) stops servers gracefully and fails unless each exited 0 without a sanitizer
  report, with the log in the message (the tearDown check of every test that starts ekglue).
- LogOnFailure is the unittest.TestCase mixin of every such test: on any failure or error it prints the whole
  stderr of every server the test started; on success it still fails the test unless every server exited 0
  (after the SIGTERM the test or the mixin sent) without a sanitizer report. The one exception is a server that
  failed to start (StartError, which the test sees): its exit status is the test's to check.
- run_ekglue(args) runs another ekglue command (dump), with its stderr in the error when it fails.
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
import sys
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

# What a sanitizer report contains (ASan, LSan, UBSan, TSan); any of these in ekglue's stderr fails the test.
SANITIZER_MARKERS = ("Sanitizer", "runtime error:", "WARNING: ThreadSanitizer", "LeakSanitizer")
_SECTION_START = re.compile(r"Sanitizer|runtime error:|==\d+==ERROR:")
_SECTION_END = re.compile(r"^SUMMARY: |==\d+==ABORTING")

# A log up to this size is shown whole; a bigger one as its head, every sanitizer report section and its tail.
FULL_LOG_MAX = 200 * 1024
HEAD_BYTES, TAIL_BYTES, SECTIONS_MAX_BYTES = 20 * 1024, 100 * 1024, 200 * 1024
SECTION_MAX_LINES = 400

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGKILL)

# Every EkglueServer started, in order; LogOnFailure takes (and forgets) the ones its test started.
_started = []
_started_lock = threading.Lock()


def _signame(sig):
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "signal %d" % sig


def _clip(lines):
    """The text of the log lines: whole up to FULL_LOG_MAX bytes, else the first HEAD_BYTES, every sanitizer
    report section in between (from its first line to its SUMMARY/ABORTING line) and the last TAIL_BYTES."""
    text = "\n".join(lines)
    if len(text.encode("utf-8", "replace")) <= FULL_LOG_MAX:
        return text
    sizes = [len(line.encode("utf-8", "replace")) + 1 for line in lines]
    head_end, n = 0, 0
    while head_end < len(lines) and n + sizes[head_end] <= HEAD_BYTES:
        n += sizes[head_end]
        head_end += 1
    tail_start, n = len(lines), 0
    while tail_start > head_end and n + sizes[tail_start - 1] <= TAIL_BYTES:
        tail_start -= 1
        n += sizes[tail_start]
    sections, i = [], head_end
    while i < tail_start:
        if _SECTION_START.search(lines[i]):
            start = i - 1 if i > head_end and lines[i - 1].startswith("=====") else i
            end = i
            while end + 1 < len(lines) and end - i < SECTION_MAX_LINES and not _SECTION_END.search(lines[end]):
                end += 1
            sections.append((start, min(end + 1, tail_start)))
            i = end + 1
        else:
            i += 1
    out = lines[:head_end]
    pos, budget = head_end, SECTIONS_MAX_BYTES
    for start, end in sections:
        size = sum(sizes[start:end])
        if size > budget:
            out.append("[... %d more lines, with more sanitizer report sections, left out ...]" % (tail_start - pos))
            pos = tail_start
            break
        budget -= size
        out.append("[... %d lines left out ...]" % (start - pos))
        out.extend(lines[start:end])
        pos = end
    if pos < tail_start:
        out.append("[... %d lines left out ...]" % (tail_start - pos))
    out.extend(lines[tail_start:])
    return "\n".join(out)


def failure_log(server, problems=()):
    """ekglue's stderr for a failure message: a header (pid, command, how it ended, what is wrong), then the whole
    log (clipped as _clip says when it is over FULL_LOG_MAX bytes)."""
    lines = server.log_lines()
    size = sum(len(line.encode("utf-8", "replace")) + 1 for line in lines)
    out = ["", "=" * 30 + " ekglue serve pid %d: %s " % (server.proc.pid, server.status()) + "=" * 30,
           "command: " + " ".join(server.args)]
    out += ["PROBLEM: " + p for p in problems]
    out.append("--- ekglue stderr (%d lines, %d bytes)%s ---" % (
        len(lines), size, " (clipped: head, sanitizer reports, tail)" if size > FULL_LOG_MAX else ""))
    out.append(_clip(lines))
    out.append("--- end of ekglue stderr (pid %d) ---" % server.proc.pid)
    return "\n".join(out)


def _reported(server, message):
    """message, a failure message that carries server's log: LogOnFailure need not print those lines again."""
    server.reported_lines = server.nlines()
    return message


class StartError(RuntimeError):
    """`ekglue serve` did not start listening; server is the EkglueServer (its returncode, its log)."""

    def __init__(self, message, server):
        super().__init__(message)
        self.server = server


class EkglueServer:
    """`ekglue serve` on 127.0.0.1 with a free port. Use as a context manager: it is stopped gracefully (SIGTERM,
    then SIGKILL after 15 s) on exit; a LogOnFailure test then checks its exit. log_level must be debug or info:
    the port is read from an info line."""

    def __init__(self, objects=(), extra_args=(), start_timeout=15.0, log_level="debug"):
        if not EKGLUE:
            raise RuntimeError("EKGLUE is not set")
        args = [EKGLUE, "serve", "--xds-listen", "127.0.0.1:0", "--log-level", log_level]
        for path in objects:
            args += ["--objects", path]
        args += list(extra_args)
        if not any(a == "--debug-listen" or a.startswith("--debug-listen=") for a in args):
            args += ["--debug-listen", "off"]  # tests run in parallel: no fixed debug port
        self.args = args
        self.lines = []
        self._lines_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._port_q = queue.Queue()
        self.returncode = None      # the exit code once seen (negative: the signal that ended it)
        self.signals_sent = []      # every signal sent, in order (recorded before it is sent)
        self.exited_unasked = None  # when it ended: True if no SIGTERM/SIGINT/SIGKILL had been sent by then
        self.stop_timed_out = False  # a graceful stop had to end with SIGKILL
        self.checked = False        # check_clean_exit has judged its exit
        self.start_failed = False   # the constructor raised StartError: the test judges the exit status
        self.reported_lines = 0     # this many log lines are already in a failure message
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        with _started_lock:
            _started.append(self)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        try:
            self.port = self._port_q.get(timeout=start_timeout)
        except queue.Empty:
            self.start_failed = True
            self.kill()
            raise StartError(_reported(self, "ekglue serve did not log its port within %.0fs:%s" %
                                       (start_timeout, failure_log(self))), self)
        if self.port is None:
            self.start_failed = True
            self.wait(5)
            self._reader.join(timeout=5)
            raise StartError(_reported(self, "ekglue serve exited (rc=%s) before listening:%s" %
                                       (self.proc.returncode, failure_log(self))), self)
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
        # End of stderr: the process is ending. Record how, and say at once if a signal nobody sent ended it.
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return
        self._observe(rc)
        if rc < 0 and -rc not in self.signals_sent:
            sys.stderr.write("\n*** ekglue serve pid %d: %s; its log follows when the test ends ***\n" %
                             (self.proc.pid, self.status()))
            sys.stderr.flush()

    def _observe(self, rc):
        """Records the exit code the first time it is seen, and whether the test had asked for the exit."""
        with self._state_lock:
            if rc is not None and self.returncode is None:
                self.exited_unasked = not any(s in _STOP_SIGNALS for s in self.signals_sent)
                self.returncode = rc
        return rc

    def poll(self):
        """The exit code, or None while it runs."""
        return self._observe(self.proc.poll())

    def running(self):
        return self.poll() is None

    def status(self):
        """How the process ended (or that it runs), in words."""
        rc = self.poll()
        if rc is None:
            return "still running"
        sent = " [signals sent by the test: %s]" % ", ".join(_signame(s) for s in self.signals_sent) \
            if self.signals_sent else ""
        if rc < 0 and -rc not in self.signals_sent:
            when = "during the test, before it was asked to stop" if self.exited_unasked else "while stopping"
            return "ekglue exited by signal %d (%s) %s%s" % (-rc, _signame(-rc), when, sent)
        if self.stop_timed_out:
            return "did not exit within the graceful-stop timeout after SIGTERM; killed with SIGKILL" + sent
        if rc < 0:
            return "ended by %s, sent by the test%s" % (_signame(-rc), sent)
        if self.exited_unasked:
            return "exited with status %d on its own, before it was asked to stop%s" % (rc, sent)
        return "exited with status %d%s" % (rc, sent)

    def sanitizer_lines(self):
        """The log lines that carry a sanitizer marker."""
        with self._lines_lock:
            return [line for line in self.lines if any(m in line for m in SANITIZER_MARKERS)]

    def problems(self, strict=True):
        """What is wrong with how the process ended ([] if nothing). strict: exit 0 is required (every server
        that started: tests stop ekglue with SIGTERM). Not strict (a server that failed to start, StartError):
        its exit status, or the SIGKILL sent when it did not start in time, is the test's business. Always wrong:
        a signal the test did not send, a graceful stop that timed out, a sanitizer report."""
        rc = self.poll()
        out = []
        if rc is None:
            out.append("ekglue serve is still running")
        elif rc < 0 and -rc not in self.signals_sent:
            out.append(self.status())
        elif self.stop_timed_out:
            out.append(self.status())
        elif rc != 0 and (strict or not (self.exited_unasked or rc == -signal.SIGKILL)):
            out.append("ekglue serve did not exit 0 (rc=%s): %s" % (rc, self.status()))
        marked = self.sanitizer_lines()
        if marked:
            out.append("sanitizer report in the log (%d marked lines), first: %s" % (len(marked), marked[0][:300]))
        return out

    def log(self):
        with self._lines_lock:
            return "\n".join(self.lines)

    def log_lines(self):
        with self._lines_lock:
            return list(self.lines)

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
        if self.poll() is None:
            self.signals_sent.append(sig)
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """The exit code, or None if the process is still running after timeout seconds."""
        try:
            return self._observe(self.proc.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, timeout=10.0):
        """SIGTERM, then the exit code (None if it did not exit in time; it is then killed)."""
        self.signal(signal.SIGTERM)
        rc = self.wait(timeout)
        if rc is None:
            self.stop_timed_out = True
            self.kill()
        return rc

    def kill(self):
        if self.poll() is None:
            self.signals_sent.append(signal.SIGKILL)
            self.proc.kill()
            self.wait(10)
        self._reader.join(timeout=5)

    def stop(self, timeout=15.0):
        """A graceful stop (SIGTERM; SIGKILL after timeout seconds), then the whole log is read and stderr closed.
        Returns the exit code of the SIGTERM stop (None if it had to be killed), or the code it had already
        exited with. Judge it with check_clean_exit (LogOnFailure tests do so anyway at the end)."""
        rc = self.terminate(timeout)
        self.kill()
        self.close()
        return rc

    def close(self):
        """Closes stderr once the reader has taken everything (the end of a report comes last)."""
        if self.poll() is None:
            return
        self._reader.join(timeout=5)
        if self.proc.stderr and not self._reader.is_alive():
            self.proc.stderr.close()

    def channel(self):
        return grpc.insecure_channel(self.address)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def check_clean_exit(test, *servers, timeout=15.0):
    """Stops each server still running gracefully (SIGTERM, SIGKILL after timeout s) and fails test unless every
    one exited 0 with no sanitizer report in its log; the failure message carries the log(s)."""
    messages = []
    for server in servers:
        if server.running():
            server.stop(timeout)
        else:
            server.close()
        server.checked = True
        problems = server.problems(strict=True)
        if problems:
            messages.append(_reported(server, failure_log(server, problems)))
    if messages:
        test.fail("ekglue serve did not exit cleanly:" + "\n".join(messages))


def _test_failed(test):
    """Whether test (running now) has a failure or error recorded, subtests included."""
    result = getattr(getattr(test, "_outcome", None), "result", None)
    for attr in ("failures", "errors"):
        for t, _ in list(getattr(result, attr, None) or ()):
            if t is test or getattr(t, "test_case", None) is test:
                return True
    return False


class LogOnFailure:
    """unittest.TestCase mixin (list it before unittest.TestCase) for every test that starts ekglue. After the
    test and its tearDown and cleanups, for every EkglueServer the test started:
      - one still running is stopped gracefully (SIGTERM);
      - when the test failed or errored, its whole stderr (failure_log) is printed to stderr, right after the
        test's FAIL/ERROR line, with how it ended ("ekglue exited by signal 6 (SIGABRT) during the test", ...);
      - when the test passed, the test fails (with the log) unless the server exited 0 without a sanitizer
        report (problems(strict=True)): an exit of its own, with any status, fails too. Only a server that
        failed to start (StartError) is judged leniently: the test checks that exit. Servers that
        check_clean_exit judged already are not judged again."""

    def run(self, result=None):
        with _started_lock:
            mark = len(_started)
        self.addCleanup(self._ekglue_after_test, mark)  # first added: runs after every other cleanup
        return super().run(result)

    def _ekglue_after_test(self, mark):
        with _started_lock:
            servers = _started[mark:]
            del _started[mark:]
        failing = []
        for server in servers:
            if not server.checked:
                if server.running():
                    server.stop()
                else:
                    server.close()
                problems = server.problems(strict=not server.start_failed)
                if problems:
                    failing.append((server, problems))
        if _test_failed(self):
            bad = dict(failing)
            out = []
            for server in servers:
                if server.reported_lines < server.nlines() or server in bad:
                    out.append(failure_log(server, bad.get(server, ())))
            if out:
                sys.stderr.write("\n%s: ekglue's stderr (%d server(s) started by this test)%s\n%s\n" % (
                    self.id(), len(servers), "" if len(out) == len(servers) else
                    ", except what a failure message shows already", "\n".join(out)))
                sys.stderr.flush()
        elif failing:
            self.fail("ekglue serve did not end cleanly:" +
                      "\n".join(_reported(s, failure_log(s, p)) for s, p in failing))


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

    def send(self, type_url, names=(), version="", nonce="", error=None, node_id=None, locality=None,
             metadata=None):
        """One DiscoveryRequest. With node_id, it carries a Node: that id, user agent "ekglue-tests", and when
        given the locality ({"region": ..., "zone": ..., "sub_zone": ...}) and string metadata ({"NODE_NAME": ...})."""
        req = DiscoveryRequest()
        req.type_url = type_url
        req.resource_names.extend(names)
        req.version_info = version
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


def run_ekglue(args, timeout=30):
    """Runs `ekglue <args>` to completion and returns its stdout (bytes). Raises AssertionError, with the whole
    stderr, when it does not exit 0 or its stderr has a sanitizer report."""
    proc = subprocess.run([EKGLUE] + list(args), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0 or any(m in err for m in SANITIZER_MARKERS):
        rc = proc.returncode
        how = ("exited by signal %d (%s)" % (-rc, _signame(-rc)) if rc < 0 else
               "exited with status %d" % rc if rc else "exited 0 with a sanitizer report")
        raise AssertionError("`%s` %s\n--- ekglue stderr ---\n%s\n--- end of ekglue stderr ---" %
                             (" ".join([EKGLUE] + list(args)), how, _clip(err.rstrip("\n").split("\n"))))
    return proc.stdout


def dump_names(objects):
    """Cluster and load-assignment names `ekglue dump` gives for objects files (the independent reference)."""
    import json
    args = ["dump", "--format", "json"]
    for path in objects:
        args += ["--objects", path]
    doc = json.loads(run_ekglue(args))
    return ([c["name"] for c in doc["clusters"]], [c["clusterName"] for c in doc["load_assignments"]])
