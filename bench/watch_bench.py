#!/usr/bin/python3
"""bench/watch_bench.py: ekglue's Kubernetes path end to end (issue 4): how long a watch event takes to reach
subscribed Envoys, and how much memory ekglue holds for a large cluster.

Two parts, each against `ekglue serve --master http://127.0.0.1:PORT` fed by an in-process FakeAPIServer
(tests/fakeapi/fakeapi.py, plain HTTP); everything on 127.0.0.1.

  latency  10 Services (1 port, 10 endpoints each; translate_bench's object shape). A change gives endpoint 0
           of svc-0's EndpointSlice a new, unique address (fake.update: one MODIFIED event). t0 is taken inside
           the fake's commit (FakeAPIServer._commit_locked, under its lock, just before the watchers are woken);
           the change is done when every one of N ADS streams (over K HTTP/2 connections) has received it.
           Latency = the last stream's arrival - t0. Changes are sequential: the next one starts after all
           streams got the previous one and coalesce_ms (at least 10 ms) of quiet. Two rounds, each with a
           fresh fake and ekglue, differing in the client process (never the fake's process, whose GIL would
           delay its event writes):
             python  raw grpc.aio streams (--client-procs processes) each asking for the ClusterLoadAssignment
                     of ns-0:svc-0:http and ACKing every response (version_info + response_nonce, repeating the
                     subscription); arrival = time.monotonic() right after grpc.aio's read returns; a response
                     counts when it holds that load assignment with the new address.
             c       bench/xds_bench.c's gRPC C-core client (`xds_bench --client`, needs the xds_bench target
                     built in BUILD_DIR): wildcard CDS, EDS naming all 10 load assignments, ACKs everything,
                     checks that each change brings exactly one load assignment with one version on every
                     stream; arrival = CLOCK_MONOTONIC right after the receive completes. It costs ~1/4 of
                     grpc.aio's CPU per message, so it measures ekglue rather than the client; when it ran it
                     decides the target (the python round is printed for context).
  memory   S Services x 3 ports, E endpoints in S EndpointSlices over 1,000 Nodes in 3 zones (translate_bench's
           shape), created in the fake before ekglue starts. Time from the exec of `ekglue serve` to
           grpc.health.v1 SERVING (the first complete sync published), then, after 2 s and until ekglue's
           CPU is quiet, VmRSS / VmHWM / RssAnon from /proc/PID/status. For context only: the same after one
           ADS client fetched every Cluster and ClusterLoadAssignment.

CLOCK_MONOTONIC (time.monotonic) is shared by the processes of one machine. Every wait is bounded.

Usage: watch_bench.py BUILD_DIR [--services 10000] [--endpoints 100000] [--clients 100] [--changes 1000]
                     [--coalesce-ms 20] [--coalesce-max-ms 100] [--channels 4] [--only latency|memory]
                     [--client python|c|both] [--client-procs 1]
Exit: 0 targets met, 3 a target missed, 1 the benchmark failed, 2 usage.
Threads: main (orchestration), the fake's HTTP threads, xdsclient's stderr reader; a grpc.aio client process
runs one asyncio loop plus a stdin reader thread.
"""
import argparse
import asyncio
import math
import os
import queue
import select
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "fakeapi"))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "xds"))

import grpc  # noqa: E402

import xdsclient as xc  # noqa: E402

ZONES = ("us-east1-a", "us-east1-b", "us-east1-c")
NODES = 1000
CHANGED_NS, CHANGED_SVC = "ns-0", "svc-0"
CHANGED_CLUSTER = "%s:%s:http" % (CHANGED_NS, CHANGED_SVC)
CLA_TYPE = "envoy.config.endpoint.v3.ClusterLoadAssignment"
CHANGE_TIMEOUT = 10.0  # one change must reach every stream within this
MB = 1024.0 * 1024.0


class BenchError(Exception):
    pass


def log(msg):
    sys.stderr.write("watch_bench: %s\n" % msg)
    sys.stderr.flush()


def pct(sorted_values, q):
    """Nearest-rank percentile (with fewer than 100 values p99 is the maximum)."""
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


# --- objects (the shape bench/translate_bench.c generates) ----------------------------------------------------

def node(n):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-%d" % n,
                         "labels": {"kubernetes.io/hostname": "node-%d" % n,
                                    "topology.kubernetes.io/region": "us-east1",
                                    "topology.kubernetes.io/zone": ZONES[n % 3]}},
            "spec": {}}


SERVICE_PORTS = ({"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                 {"name": "grpc", "port": 9090, "targetPort": "grpc", "protocol": "TCP"},
                 {"name": "metrics", "port": 9100, "targetPort": 9100, "protocol": "TCP"})
SLICE_PORTS = ({"name": "http", "port": 8080, "protocol": "TCP"},
               {"name": "grpc", "port": 9090, "protocol": "TCP"},
               {"name": "metrics", "port": 9100, "protocol": "TCP"})


def service(s, nports=3):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "svc-%d" % s, "namespace": "ns-%d" % (s % 100)},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.%d.%d" % ((s >> 8) & 255, s & 255),
                     "ports": [dict(p) for p in SERVICE_PORTS[:nports]]}}


def endpoint_slice(s, count, first_address=None, nports=3):
    """svc-S's EndpointSlice with count endpoints; endpoint 0 gets first_address when given."""
    eps = []
    for e in range(count):
        ip, nd = s * 16 + e, (s * 7 + e) % NODES
        addr = "10.%d.%d.%d" % ((ip >> 16) & 255, (ip >> 8) & 255, ip & 255)
        if e == 0 and first_address:
            addr = first_address
        eps.append({"addresses": [addr],
                    "conditions": {"ready": True, "serving": True, "terminating": False},
                    "nodeName": "node-%d" % nd, "zone": ZONES[nd % 3],
                    "targetRef": {"kind": "Pod", "name": "svc-%d-pod-%d" % (s, e), "namespace": "ns-%d" % (s % 100)}})
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": "svc-%d-abcde" % s, "namespace": "ns-%d" % (s % 100),
                         "labels": {"kubernetes.io/service-name": "svc-%d" % s,
                                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "ports": [dict(p) for p in SLICE_PORTS[:nports]],
            "endpoints": eps}


def load_cluster(fake, nservices, nendpoints, nports=3):
    per, extra = divmod(nendpoints, nservices)
    for n in range(NODES):
        fake.create(node(n))
    for s in range(nservices):
        fake.create(service(s, nports))
    for s in range(nservices):
        fake.create(endpoint_slice(s, per + (s < extra), nports=nports))
    return per + (0 < extra)  # endpoints of svc-0


def changed_address(i):
    return "10.250.%d.%d" % (i // 250, i % 250 + 1)


# --- the fake API, with timestamps ----------------------------------------------------------------------------

def timed_fake_class(fakeapi):
    """A FakeAPIServer that notes when each change is committed (t0), when the MODIFIED EndpointSlice event
    was written to a watch socket, and how long list requests took to serve."""

    class TimedFake(fakeapi.FakeAPIServer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.commit_at = {}  # resourceVersion (str) -> time.monotonic()
            self.written_at = {}  # resourceVersion (str) -> time.monotonic() after the event's write
            self.list_s, self.list_pages, self.list_last_end = 0.0, 0, 0.0

        def _commit_locked(self, k, etype, key, obj, prev):
            self.commit_at[str(self._rv + 1)] = time.monotonic()  # the RV this commit gives
            return super()._commit_locked(k, etype, key, obj, prev)

    orig_event = fakeapi._Stream.event
    orig_list = fakeapi._Handler._serve_list

    def event(stream, etype, obj):
        orig_event(stream, etype, obj)  # the socket is unbuffered: the bytes are in the kernel now
        if etype == "MODIFIED" and stream.k.kind == "EndpointSlice":
            fake = stream.h.fake
            if isinstance(fake, TimedFake):
                fake.written_at[obj["metadata"]["resourceVersion"]] = time.monotonic()

    def serve_list(handler, *a, **kw):
        t = time.monotonic()
        try:
            return orig_list(handler, *a, **kw)
        finally:
            fake, end = handler.fake, time.monotonic()
            if isinstance(fake, TimedFake):
                with fake._cond:
                    fake.list_s += end - t
                    fake.list_pages += 1
                    fake.list_last_end = max(fake.list_last_end, end)

    fakeapi._Stream.event = event
    fakeapi._Handler._serve_list = serve_list
    return TimedFake


# --- ekglue -----------------------------------------------------------------------------------------------------

def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if v.strip().endswith("kB"):
                out[k] = int(v.split()[0]) * 1024
    return out


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_ekglue(fake, coalesce_ms, coalesce_max_ms, start_timeout=30.0):
    return xc.EkglueServer(extra_args=["--master", fake.url, "--coalesce-ms", str(coalesce_ms),
                                       "--coalesce-max-ms", str(coalesce_max_ms)],
                           start_timeout=start_timeout, log_level="info")


def wait_serving(server, timeout):
    """Polls grpc.health.v1 Check every 20 ms until SERVING; returns time.monotonic() of the first SERVING."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(server.address) as ch:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise BenchError("ekglue exited (rc=%s) before SERVING:\n%s" % (server.proc.returncode,
                                                                                server.log()[-3000:]))
            try:
                if xc.health_check(ch, "", timeout=2.0) == xc.SERVING:
                    return time.monotonic()
            except grpc.RpcError:
                pass
            time.sleep(0.02)
    raise BenchError("ekglue not SERVING after %.0f s:\n%s" % (timeout, server.log()[-3000:]))


def wait_cpu_quiet(pid, min_s=2.0, timeout=20.0):
    """Sleeps min_s, then until the process used < 5 ms of CPU in 0.5 s (bounded)."""
    time.sleep(min_s)
    deadline = time.monotonic() + timeout
    last = proc_cpu_s(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = proc_cpu_s(pid)
        if now - last < 0.005:
            return True
        last = now
    return False


def check_log(server):
    bad = [ln for ln in server.log().split("\n") if "level=error" in ln or "level=warn" in ln]
    if bad:
        log("ekglue logged %d warnings/errors, first: %s" % (len(bad), bad[0]))
    return bad


# --- the client process (--client) -------------------------------------------------------------------------------

def client_main(build_dir, address, nstreams, nchannels, cluster):
    """N ADS streams asking for one ClusterLoadAssignment. Talks with the orchestrator over stdin/stdout:
    prints `ready`; on `expect I ADDR` prints `armed I`, then `got I T_FIRST T_LAST` once every stream has
    received a ClusterLoadAssignment holding ADDR; `quit` ends it. Errors: `error MESSAGE`."""
    xc.BUILD_DIR = build_dir
    Request = xc.message_class("envoy.service.discovery.v3.DiscoveryRequest")
    Response = xc.message_class("envoy.service.discovery.v3.DiscoveryResponse")
    CLA = xc.message_class(CLA_TYPE)
    cla_url = "type.googleapis.com/" + CLA_TYPE
    name_field = b"\x0a" + bytes([len(cluster.encode())]) + cluster.encode()

    def out(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def request(version="", nonce="", node_id=None):
        r = Request()
        r.type_url = cla_url
        r.resource_names.append(cluster)
        r.version_info = version
        r.response_nonce = nonce
        if node_id:
            r.node.id = node_id
            r.node.user_agent_name = "watch_bench"
        return r.SerializeToString()

    async def run():
        loop = asyncio.get_running_loop()
        opts = [("grpc.use_local_subchannel_pool", 1)]  # K channels really are K connections
        channels = [grpc.aio.insecure_channel(address, options=opts) for _ in range(nchannels)]
        calls = [channels[i % nchannels].stream_stream(xc.ADS)() for i in range(nstreams)]
        st = {"expect": None, "got": set(), "first": None, "last": None, "extra": 0}
        ready, all_ready, quit_ev = set(), asyncio.Event(), asyncio.Event()

        async def stream(i, call):
            try:
                await call.write(request(node_id="watch-bench-%d" % i))
                while True:
                    raw = await call.read()
                    t = time.monotonic()
                    if raw is grpc.aio.EOF:
                        if not quit_ev.is_set():
                            out("error stream %d ended" % i)
                        return
                    r = Response.FromString(raw)
                    await call.write(request(r.version_info, r.nonce))
                    if i not in ready:
                        if any(a.type_url == cla_url and CLA.FromString(a.value).cluster_name == cluster
                               for a in r.resources):
                            ready.add(i)
                            if len(ready) == nstreams:
                                all_ready.set()
                        continue
                    # The content check without decoding the load assignment (the client's own time is part
                    # of what is measured): our load assignment (cluster_name, field 1, comes first) holding
                    # a SocketAddress with the expected address (field 2, length-delimited).
                    exp = st["expect"]
                    if (exp is None or i in st["got"] or not any(
                            a.value.startswith(name_field) and exp[2] in a.value for a in r.resources)):
                        st["extra"] += 1
                        continue
                    st["got"].add(i)
                    st["first"] = t if st["first"] is None else min(st["first"], t)
                    st["last"] = t if st["last"] is None else max(st["last"], t)
                    if len(st["got"]) == nstreams:
                        out("got %d %.6f %.6f %d" % (exp[0], st["first"], st["last"], st["extra"]))
                        st.update(expect=None, got=set(), first=None, last=None)
            except (grpc.RpcError, asyncio.CancelledError) as e:
                if not quit_ev.is_set():
                    out("error stream %d: %s" % (i, e))

        def command(line):
            parts = line.split()
            if not parts or parts[0] == "quit":
                quit_ev.set()
            elif parts[0] == "expect":
                addr = parts[2].encode()
                st.update(expect=(int(parts[1]), parts[2], b"\x12" + bytes([len(addr)]) + addr), got=set(),
                          first=None, last=None)
                out("armed %s" % parts[1])

        def stdin_reader():
            for line in sys.stdin:
                loop.call_soon_threadsafe(command, line)
            loop.call_soon_threadsafe(command, "quit")

        threading.Thread(target=stdin_reader, daemon=True).start()
        tasks = [asyncio.ensure_future(stream(i, c)) for i, c in enumerate(calls)]
        try:
            await asyncio.wait_for(all_ready.wait(), 60)
            out("ready")
        except asyncio.TimeoutError:
            out("error initial sync: %d of %d streams got %s" % (len(ready), nstreams, cluster))
        await quit_ev.wait()
        for c in calls:
            c.cancel()
        await asyncio.sleep(0.2)  # lets grpc.aio finish its per-call tasks
        for t in tasks:
            t.cancel()
        for ch in channels:
            await ch.close()

    # Not asyncio.run(): with grpc 1.51 its cancellation of leftover tasks can hang in a thread join.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    return 0


class PyClient:
    """The orchestrator's side of one grpc.aio client process (client_main above)."""

    def __init__(self, a, address, cluster, nstreams, nchannels):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--client", a.build_dir, address,
                                      str(nstreams), str(nchannels), cluster],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.lines = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def _send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def _expect(self, prefix, timeout):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise BenchError("the client process said nothing for %.0f s (waiting for %r)" % (timeout, prefix))
        if line is None:
            raise BenchError("the client process exited (waiting for %r)" % prefix)
        if not line.startswith(prefix):
            raise BenchError("the client process: %s (waiting for %r)" % (line, prefix))
        return line.split()[1:]

    def arm(self, i, addr):
        """Before change i: the streams are to receive a load assignment holding addr."""
        self._send("expect %d %s" % (i, addr))
        self._expect("armed", 10)

    def wait(self, i):
        """(first stream's arrival, last stream's arrival, unexpected responses so far) of change i."""
        got = self._expect("got", CHANGE_TIMEOUT)
        if int(got[0]) != i:
            raise BenchError("change %d: the client reported change %s" % (i, got[0]))
        return float(got[1]), float(got[2]), int(got[3])

    def stop(self):
        if self.proc.poll() is None:
            try:
                self._send("quit")
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._reader.join(timeout=5)


class PyClients:
    """The streams spread over a.client_procs grpc.aio processes (Python's per-message cost is high enough that
    one process serialises a fan-out to 100 streams noticeably); a change is done when every process has it."""

    name = "grpc.aio (Python), content checked"

    def __init__(self, a, address, cluster, nclusters):
        p = min(a.client_procs, a.clients)
        self.procs = []
        for j in range(p):
            n = a.clients // p + (j < a.clients % p)
            self.procs.append(PyClient(a, address, cluster, n, max(1, a.channels // p + (j < a.channels % p))))
        for c in self.procs:
            c._expect("ready", 90)
        self.pids = [c.proc.pid for c in self.procs]

    def arm(self, i, addr):
        for c in self.procs:
            c.arm(i, addr)

    def wait(self, i):
        got = [c.wait(i) for c in self.procs]
        return min(g[0] for g in got), max(g[1] for g in got), sum(g[2] for g in got)

    def stop(self):
        for c in self.procs:
            c.stop()


class CClient:
    """bench/xds_bench.c's gRPC C-core client (`xds_bench --client`, 2 threads), as a measuring instrument with
    little overhead of its own: each stream asks for every Cluster (wildcard CDS) and names every
    ClusterLoadAssignment, ACKs everything, and checks that each change brings exactly one load assignment,
    with the same version on every stream. Protocol (see xds_bench.c): fd 3 gets the names (u32 length +
    newline-terminated names) then one-byte commands; fd 4 gives 32-byte records (kind, k, t, v, cpu_ms)."""

    name = "gRPC C-core (xds_bench --client)"
    R_READY, R_ACKED, R_CHANGE, R_STOPPING, R_DONE, R_ERROR = range(1, 7)
    REC = struct.Struct("@iiddd")

    def __init__(self, a, address, cluster, nclusters):
        self.nclusters = nclusters
        down_r, self.down_w = os.pipe()
        self.up_r, up_w = os.pipe()
        port = address.rsplit(":", 1)[1]
        cmd = 'exec "$0" "$@" 3<&%d 4>&%d %d<&- %d>&-' % (down_r, up_w, down_r, up_w)
        self.proc = subprocess.Popen(["/bin/bash", "-c", cmd, os.path.join(a.build_dir, "xds_bench"), "--client",
                                      str(a.clients), str(a.channels), port, str(a.changes), str(nclusters)],
                                     pass_fds=(down_r, up_w), stdin=subprocess.DEVNULL)
        os.close(down_r)
        os.close(up_w)
        names = "".join("ns-%d:svc-%d:http\n" % (s % 100, s) for s in range(nclusters)).encode()
        os.write(self.down_w, struct.pack("@I", len(names)) + names)
        self.pids = [self.proc.pid]
        self.cpu_ms = 0.0
        self._expect(self.R_READY, -1, 90)
        self._expect(self.R_ACKED, -1, CHANGE_TIMEOUT)

    def _expect(self, kind, k, timeout):
        deadline, buf = time.monotonic() + timeout, b""
        while len(buf) < self.REC.size:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.up_r], [], [], left)[0]:
                raise BenchError("the C client gave no record kind=%d k=%d within %.0f s" % (kind, k, timeout))
            chunk = os.read(self.up_r, self.REC.size - len(buf))
            if not chunk:
                raise BenchError("the C client exited (rc=%s) waiting for kind=%d k=%d" % (self.proc.poll(), kind, k))
            buf += chunk
        rk, rkk, t, v, cpu = self.REC.unpack(buf)
        self.cpu_ms = cpu
        if rk != kind or rkk != k:
            raise BenchError("the C client: record kind=%d k=%d while waiting for kind=%d k=%d (see its stderr)"
                             % (rk, rkk, kind, k))
        return t

    def arm(self, i, addr):
        pass

    def wait(self, i):
        t = self._expect(self.R_CHANGE, i, CHANGE_TIMEOUT)
        self._expect(self.R_ACKED, i, CHANGE_TIMEOUT)
        return None, t, 0

    def stop(self):
        try:
            os.write(self.down_w, b"q")
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self.down_w)
        os.close(self.up_r)


# --- part 1: watch event -> last client --------------------------------------------------------------------------

LAT_SERVICES, LAT_ENDPOINTS = 10, 100  # the latency part's cluster: 10 Services x 1 port, 10 endpoints each


def bench_latency(a, TimedFake, client_cls):
    """One round: fresh fake and ekglue, a.clients streams of client_cls, a.changes changes."""
    C, M = a.coalesce_ms, a.coalesce_max_ms
    res = {"client": client_cls.name}
    fake = TimedFake("127.0.0.1", 0).start()
    server = client = None
    try:
        per = load_cluster(fake, LAT_SERVICES, LAT_ENDPOINTS, nports=1)
        server = start_ekglue(fake, C, M)
        wait_serving(server, 60)
        client = client_cls(a, server.address, CHANGED_CLUSTER, LAT_SERVICES)
        time.sleep(0.2)
        cpu0, ccpu0 = proc_cpu_s(server.proc.pid), sum(proc_cpu_s(p) for p in client.pids)
        lat, first, written, extra = [], [], [], 0
        for i in range(a.changes):
            addr = changed_address(i)
            client.arm(i, addr)
            obj = fake.update(endpoint_slice(0, per, addr, nports=1))
            rv = obj["metadata"]["resourceVersion"]
            t_first, t_last, extra = client.wait(i)
            t0 = fake.commit_at.pop(rv)
            lat.append(t_last - t0)
            if t_first is not None:
                first.append(t_first - t0)
            tw = fake.written_at.pop(rv, None)
            if tw is not None:
                written.append(tw - t0)
            time.sleep(max(C, 10) / 1000.0)
        cpu1, ccpu1 = proc_cpu_s(server.proc.pid), sum(proc_cpu_s(p) for p in client.pids)
        if server.proc.poll() is not None:
            raise BenchError("ekglue exited during the changes:\n" + server.log()[-3000:])
        n = max(1, a.changes)
        res.update(lat=sorted(lat), first=sorted(first), written=sorted(written), extra=extra, per=per,
                   cpu_ms=(cpu1 - cpu0) * 1e3 / n, client_cpu_ms=(ccpu1 - ccpu0) * 1e3 / n,
                   warnings=len(check_log(server)))
        return res
    finally:
        if client:
            client.stop()
        if server:
            res["rc"] = server.terminate(timeout=15)
            server.kill()
        fake.stop()


# --- part 2: memory and time to first sync ------------------------------------------------------------------------

def fetch_everything(server, timeout=120.0):
    """One ADS client: wildcard CDS, then EDS naming every Cluster. Returns (clusters, load assignments, s)."""
    opts = [("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(server.address, options=opts) as ch:
        s = xc.XdsStream(ch)
        try:
            t = time.monotonic()
            s.send(xc.CLUSTER_URL, node_id="watch-bench-all")
            r = s.recv(timeout=timeout)
            if r is None:
                raise BenchError("no CDS answer")
            s.ack(r)
            names = [xc.unpack(x, "envoy.config.cluster.v3.Cluster").name for x in r.resources]
            s.send(xc.CLA_URL, names=names)
            e = s.recv(timeout=timeout)
            if e is None or e.type_url != xc.CLA_URL:
                raise BenchError("no EDS answer")
            s.ack(e, names=names)
            return len(names), len(e.resources), time.monotonic() - t
        finally:
            s.cancel()


def bench_memory(a, TimedFake):
    res = {}
    fake = TimedFake("127.0.0.1", 0).start()
    server = None
    try:
        t = time.monotonic()
        load_cluster(fake, a.services, a.endpoints)
        res["load_s"] = time.monotonic() - t
        t_start = time.monotonic()
        server = start_ekglue(fake, a.coalesce_ms, a.coalesce_max_ms)
        res["listening_s"] = time.monotonic() - t_start
        res["sync_s"] = wait_serving(server, 300) - t_start
        res["list_s"], res["list_pages"] = fake.list_s, fake.list_pages
        res["last_list_s"] = fake.list_last_end - t_start
        pid = server.proc.pid
        res["sync_cpu_s"] = proc_cpu_s(pid)
        res["quiet"] = wait_cpu_quiet(pid)
        res["held"] = proc_status(pid)
        try:
            res["fetch"] = fetch_everything(server)
            wait_cpu_quiet(pid, min_s=1.0)
            res["after_fetch"] = proc_status(pid)
        except (BenchError, grpc.RpcError) as e:
            res["fetch_error"] = str(e)
        if server.proc.poll() is not None:
            raise BenchError("ekglue exited:\n" + server.log()[-3000:])
        res["warnings"] = len(check_log(server))
        return res
    finally:
        if server:
            res["rc"] = server.terminate(timeout=30)
            server.kill()
        fake.stop()


# --- main ----------------------------------------------------------------------------------------------------------

def main(argv):
    if len(argv) > 1 and argv[1] == "--client":
        b, addr, n, k, cluster = argv[2:7]
        return client_main(b, addr, int(n), int(k), cluster)
    ap = argparse.ArgumentParser(prog="watch_bench.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("build_dir")
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--endpoints", type=int, default=100000)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--changes", type=int, default=1000)
    ap.add_argument("--coalesce-ms", type=int, default=20)
    ap.add_argument("--coalesce-max-ms", type=int, default=100)
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--only", choices=("latency", "memory"))
    ap.add_argument("--client", choices=("python", "c", "both"), default="both")
    ap.add_argument("--client-procs", type=int, default=1)
    a = ap.parse_args(argv[1:])
    if (a.services < 1 or a.endpoints < a.services or a.clients < 1 or a.changes < 1 or a.channels < 1
            or a.client_procs < 1 or a.coalesce_ms < 0 or a.coalesce_max_ms < a.coalesce_ms):
        ap.error("out of range: want services >= 1, endpoints >= services, clients/changes/channels >= 1, "
                 "0 <= coalesce-ms <= coalesce-max-ms")
    a.build_dir = os.path.abspath(a.build_dir)
    xc.EKGLUE = os.path.join(a.build_dir, "ekglue")
    xc.BUILD_DIR = a.build_dir
    for need in (xc.EKGLUE, os.path.join(a.build_dir, "gen", "grpc_descriptors.pb")):
        if not os.path.exists(need):
            log("missing %s (build the ekglue target in %s)" % (need, a.build_dir))
            return 1
    import fakeapi
    TimedFake = timed_fake_class(fakeapi)

    impls = [PyClients, CClient] if a.client == "both" else [PyClients] if a.client == "python" else [CClient]
    if CClient in impls and not os.path.exists(os.path.join(a.build_dir, "xds_bench")):
        if a.client == "c":
            log("missing %s/xds_bench (cmake --build %s --target xds_bench)" % (a.build_dir, a.build_dir))
            return 1
        log("no xds_bench in %s: the C-core client round is skipped" % a.build_dir)
        impls.remove(CClient)
    C = a.coalesce_ms
    lats, mem = [], None
    try:
        if a.only != "memory":
            for impl in impls:
                log("latency: %d streams (%s), %d changes, coalesce %d/%d ms" % (a.clients, impl.name, a.changes,
                                                                                C, a.coalesce_max_ms))
                lats.append(bench_latency(a, TimedFake, impl))
        if a.only != "latency":
            log("memory: creating %d services, %d endpoints, %d nodes in the fake" % (a.services, a.endpoints,
                                                                                     NODES))
            mem = bench_memory(a, TimedFake)
    except (BenchError, grpc.RpcError, OSError, RuntimeError) as e:
        log("FAILED: %s" % e)
        return 1

    print("watch_bench: ekglue %s, coalesce_ms=%d coalesce_max_ms=%d, %d CPUs" % (xc.EKGLUE, C, a.coalesce_max_ms,
                                                                                  os.cpu_count()))
    missed = 0
    ms = lambda v: v * 1e3  # noqa: E731
    if lats:
        print()
        print("1. watch event -> ClusterLoadAssignment at %d ADS streams over %d connections, %d changes "
              "(%d Services x 1 port, %d endpoints each; one endpoint address changes)"
              % (a.clients, a.channels, a.changes, LAT_SERVICES, lats[0]["per"]))
        print("   %-50s %8s %8s %8s %8s" % ("ms after the fake's commit", "p50", "p90", "p99", "max"))
    verdicts = []
    for lat in lats:
        print("   client: %s" % lat["client"])
        rows = [("event written to ekglue's watch socket", lat["written"], 0),
                ("first stream has it", lat["first"], 0),
                ("last stream has it", lat["lat"], 0),
                ("  last stream minus coalesce_ms (%d)" % C, lat["lat"], C / 1e3)]
        for name, v, off in rows:
            if v:
                print("     %-48s %8.2f %8.2f %8.2f %8.2f" % (name, ms(pct(v, .5) - off), ms(pct(v, .9) - off),
                                                            ms(pct(v, .99) - off), ms(v[-1] - off)))
        print("     CPU per change: ekglue %.2f ms (incl. %d ACKs), client process %.2f ms; unexpected responses "
              "%d; ekglue warnings/errors %d, exit code %s" % (lat["cpu_ms"], a.clients, lat["client_cpu_ms"],
                                                              lat["extra"], lat["warnings"], lat.get("rc")))
        p99 = ms(pct(lat["lat"], .99))
        verdicts.append((lat["client"], p99, p99 <= C + 10))
    # The C-core client decides when it ran: it costs ~2 ms of CPU per change where grpc.aio costs ~9 ms, which on
    # a small machine competes with ekglue for the CPUs and so measures the client more than the server.
    decider = verdicts[-1] if verdicts else None
    for v in verdicts:
        name, p99, ok = v
        print("   target: p99 <= coalesce_ms + 10 ms = %d ms, %s: p99 %.2f ms  %s%s" % (
            C + 10, name, p99, "met" if ok else "MISSED",
            "" if len(verdicts) == 1 else " (decides)" if v is decider else " (context)"))
    if decider:
        missed += not decider[2]
    if mem:
        print()
        print("2. ekglue holding %d services x 3 ports, %d endpoints, %d nodes in 3 zones (from the fake API)"
              % (a.services, a.endpoints, NODES))
        print("   fake API: objects created in %.1f s" % mem["load_s"])
        print("   exec -> xDS port logged            %8.2f s" % mem["listening_s"])
        print("   exec -> SERVING (first sync)        %8.2f s  (ekglue CPU by then: %.2f s)" % (
            mem["sync_s"], mem["sync_cpu_s"]))
        print("     the fake's time in its list handler %6.2f s  (sum over %d pages, Python; last page done at "
              "%.2f s)" % (mem["list_s"], mem["list_pages"], mem["last_list_s"]))
        h = mem["held"]
        print("   after SERVING + quiet%s: VmRSS %.1f MB, VmHWM %.1f MB, RssAnon %.1f MB, RssFile %.1f MB" % (
            "" if mem["quiet"] else " (CPU never quiet)", h["VmRSS"] / MB, h["VmHWM"] / MB,
            h.get("RssAnon", 0) / MB, h.get("RssFile", 0) / MB))
        if "fetch" in mem:
            f, af = mem["fetch"], mem["after_fetch"]
            print("   after one client fetched %d clusters + %d load assignments (%.2f s): VmRSS %.1f MB, "
                  "VmHWM %.1f MB (context only)" % (f[0], f[1], f[2], af["VmRSS"] / MB, af["VmHWM"] / MB))
        else:
            print("   one client fetching everything failed: %s" % mem["fetch_error"])
        print("   warnings/errors logged: %d; exit code %s" % (mem["warnings"], mem.get("rc")))
        peak = max(h["VmRSS"], h["VmHWM"]) / MB
        ok = peak < 300
        missed += not ok
        print("   target: RSS < 300 MB (VmHWM after the first sync): %.1f MB  %s" % (peak,
                                                                                   "met" if ok else "MISSED"))
        print("   time to first sync: %.2f s (no target; reported)" % mem["sync_s"])
    bad = any(r.get("rc") != 0 or r["warnings"] for r in lats) or (mem and (mem.get("rc") != 0 or mem["warnings"]))
    if bad:
        print("FAILED: ekglue logged warnings/errors or did not exit 0 on SIGTERM")
        return 1
    return 3 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
