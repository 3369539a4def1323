#!/usr/bin/python3
"""fakeapi: a fake Kubernetes API server for ekglue's watcher tests (tests only).

It serves list and watch for the three kinds ekglue reads - Services (/api/v1), EndpointSlices
(/apis/discovery.k8s.io/v1) and Nodes (/api/v1), cluster-wide and per namespace - plus a control
surface through which a test creates objects, arms faults and reads back every request the client
made. Python standard library only over HTTP/1.1 (python3-yaml is used for YAML input when it is
installed); HTTP/2 (http2=True, --http2) needs python3-h2.

Threads: one accept thread (ThreadingHTTPServer.serve_forever) and one daemon thread per client
connection; over HTTP/2 that thread is the connection's only I/O thread, and each request stream
gets a thread of its own (_H2Conn). All state lives in FakeAPIServer and is guarded by one
condition variable, _cond; watch threads sleep on it (waking for new events, bookmark ticks, their
deadline, or a once-a-second check that the client is still there) and write to their socket (or
stream) only with the lock released.

Faithful to the real API server (the "API concepts" documentation and apiserver behaviour):
  * one global monotonic resourceVersion (decimal string) across kinds; every object carries the RV
    of its last change; no-op updates do not bump it; a bounded event history (default 1,000 events,
    then older RVs are "compacted").
  * list: {"kind":"ServiceList",...,"metadata":{"resourceVersion","continue","remainingItemCount"}},
    items in etcd key order (namespace/name, bytewise) and without kind/apiVersion; limit+continue
    with snapshot semantics (the token is base64url({"v":"meta.k8s.io/v1","rv":N,"start":key\\0})
    exactly like apiserver's), 410 Expired for tokens whose RV was compacted (or older than
    continue_ttl seconds), 400 for continue + resourceVersion; resourceVersion "0" may ignore
    limit (as the watch cache does); resourceVersionMatch=Exact lists a past snapshot;
    an RV from the future waits (too_large_wait) then answers 504 "Too large resource version".
  * watch: chunked newline-delimited JSON events (one event per chunk), only events after the RV;
    no RV or "0" -> synthetic ADDED for the current state first; sendInitialEvents=true ends the
    initial state with a BOOKMARK annotated k8s.io/initial-events-end; BOOKMARKs
    every bookmark_interval when allowWatchBookmarks; clean end (0-length chunk, connection kept)
    at timeoutSeconds; DELETED carries the last state with the new RV; an object leaving a label
    selector arrives as DELETED (previous state, new RV), one entering as ADDED; "too old" as HTTP
    410 or as HTTP 200 + ERROR event carrying a Status with code 410 (too_old="http"|"event").
  * Status bodies for 400/401/404/405/410/5xx; gzip of list bodies over 128 KiB when the client
    sends Accept-Encoding: gzip (watches are never compressed); HTTP/1.1 keep-alive; TLS with a
    throw-away CA; bearer-token auth checked once per request (open watches survive rotation).
Simplified:
  * read-only resource API (writes go through the control API, not POST/PUT on resource paths);
    JSON only (no protobuf, no Table), no field selectors beyond metadata.name/metadata.namespace,
    no managedFields/generation, no admission or validation beyond kind/name.
  * label selectors: k=v, k==v, k!=v, k, !k, k in (a,b), k notin (a,b).
  * timeoutSeconds may be fractional (handy in tests); 0 or absent means watch_timeout.
  * an open watch is not ended by compact(); it only gets an ERROR 410 if events it had not yet
    read were dropped (as a watch-cache watcher that falls too far behind would).
HTTP/2 (http2=True): with TLS, ALPN offers "h2" then "http/1.1" (what the apiserver's Go server
offers; libcurl's CURL_HTTP_VERSION_2TLS takes h2); without TLS, a client that opens with the
HTTP/2 preface gets h2c (prior knowledge), any other HTTP/1.1. Every request stream is served by
the same code as an HTTP/1.1 request: a watch is DATA frames (one per event, or per piece with
"split") and END_STREAM where HTTP/1.1 has chunks; "reset" is RST_STREAM (INTERNAL_ERROR) of that
stream alone; Status bodies, faults, the request log and the control API are the same. Settings:
MAX_CONCURRENT_STREAMS 250 (Go's default), flow control honoured both ways. connections() lists
every connection (protocol, requests, streams at once); goaway() sends GOAWAY (graceful: open
streams go on, new ones get REFUSED_STREAM, the connection closes when idle; or close: the
connection closes right after it); freeze() makes a connection send nothing at all (a peer gone
dark); stop() sends GOAWAY before it closes.

Python API (see FakeAPIServer): start/stop (or `with`), create/update/apply/delete/get/objects,
load, compact, set_history, rotate_token, invalidate_token, arm/disarm, close_watches, requests/
clear_requests/wait_for_request, wait_for_watchers/watches, connections/wait_for_connections,
goaway, freeze, write_kubeconfig, configure; factories service(), endpointslice(), node().
HTTP control API (no auth, never subject to faults), JSON in and out:
  GET  /fake/info | /fake/state | /fake/requests[?since=ID&prefix=P]     DELETE /fake/requests
  POST /fake/objects[?op=apply|create|update]  body: object, List, or YAML/JSON (multi-)documents
  DELETE /fake/objects?kind=K&namespace=NS&name=N        POST /fake/load[?path=FILE] (or body)
  POST /fake/compact[?rv=N]     POST /fake/config {too_old, bookmark_interval, continue_ttl, history}
  POST /fake/rotate-token {"token"?, "file_delay"?}       POST /fake/invalidate-token
  POST /fake/faults {"fault", "prefix", "count", "watch", ...params} -> {"id"}
  DELETE /fake/faults[?id=N]    POST /fake/close-watches[?too_old=1] (returns once those watches ended)
  POST /fake/wait-watchers?n=N&prefix=P&timeout=S  (200 when reached, 408 otherwise)
  GET  /fake/connections[?proto=h2|http/1.1]    POST /fake/goaway {"mode", "error_code", "conn",
  "end_watches"} -> {"connections"}            POST /fake/freeze {"conn"} -> {"connections"}
Request log entries: id, time, method, path, query (last value per name), target, watch,
headers (names canonicalised: "Authorization", "Accept-Encoding"), peer (client port: one per
connection), conn (connection id, as in connections()), http ("1.1" or "2"), stream (HTTP/2
stream id), status, faults, events (written on a watch), last_rv (the resourceVersion of the last
event written, bookmarks included), end (complete|timeout|closed|stopped|too-old|fell-behind|
aborted|client-gone|goaway). Control requests are not logged.
CLI: `fakeapi.py --port 0 [--tls] [--http2] [--cert-dir D] [--token-file F [--token T]] [--history N]
[--bookmark-interval S]
[--too-old http|event] [--continue-ttl S] [--load FILE]... [--kubeconfig PATH]` prints
"listening HOST PORT" first, then "url URL", "ca PATH", "token-file PATH", "kubeconfig PATH" lines
(those that apply), and exits 0 on SIGTERM/SIGINT after ending every watch cleanly.
Faults (arm(fault, prefix, count, watch, **params); count=None means until disarmed; taken only by
requests that pass authentication, first matching fault of each type per request):
  split  {max=64, sizes=None, gap=0.002, seed}: each event (or list body) written in pieces at
         arbitrary byte boundaries, each piece its own chunk, framing in separate writes, TCP_NODELAY
  big    {size=20000}: pad every object sent with a long annotation (events > 16 KiB)
  stall  {after=0, seconds=None}: after `after` events, send nothing at all (no bookmarks, no end)
  reset  {after=0}: after `after` events, send half of the next one, then RST (SO_LINGER 0; over
         HTTP/2 RST_STREAM of that stream)
  error  {code=503, retry_after=None}: answer with a Status instead (also spelled "5xx")
  slow   {delay=1.0}: wait before the status line
  too_old {mode=None}: ("storm") compact everything and answer "too old" to a watch that names an RV
"""

import argparse
import base64
import collections
import copy
import email.message
import gzip
import hmac
import io
import json
import os
import random
import re
import secrets
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

try:
    import yaml
except ImportError:  # JSON input only
    yaml = None
try:  # HTTP/2 (--http2): Debian's python3-h2, which brings python3-hyperframe and python3-hpack
    import h2.config
    import h2.connection
    import h2.errors
    import h2.events
    import h2.exceptions
    import h2.settings
    import hyperframe.frame
except ImportError:
    h2 = None


class Kind:
    def __init__(self, kind, api_version, prefix, plural, namespaced):
        self.kind, self.api_version, self.prefix = kind, api_version, prefix
        self.plural, self.namespaced = plural, namespaced


KINDS = {k.kind: k for k in (
    Kind('Service', 'v1', '/api/v1', 'services', True),
    Kind('EndpointSlice', 'discovery.k8s.io/v1', '/apis/discovery.k8s.io/v1', 'endpointslices', True),
    Kind('Node', 'v1', '/api/v1', 'nodes', False))}
_BY_PATH = {(k.prefix, k.plural): k for k in KINDS.values()}
_ROUTE = re.compile(r'^(/api/v1|/apis/discovery\.k8s\.io/v1)/(?:namespaces/([^/]+)/)?([a-z]+)(?:/([^/]+))?/?$')
_TRUE, _FALSE = ('1', 't', 'T', 'true', 'TRUE', 'True'), ('0', 'f', 'F', 'false', 'FALSE', 'False')
_CONTINUE_TOO_OLD = ('The provided continue parameter is too old to display a consistent list result. '
                     'You can start a new list without the continue parameter, or use the continue value '
                     'from the response.')
FAULTS = ('split', 'big', 'stall', 'reset', 'error', 'slow', 'too_old')
_FAULT_ALIASES = {'5xx': 'error', 'storm': 'too_old'}


def status(code, reason, message, details=None):
    """A metav1.Status as the apiserver writes it for failures."""
    s = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
         'message': message, 'reason': reason, 'code': code}
    if details:
        s['details'] = details
    return s


class HTTPError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.status, self.headers = status(code, reason, message, details), headers or {}


class _Abort(Exception):
    """The connection was stalled, reset or lost: no more bytes go out on it."""


def _bool(v):
    if v is None or v == '':
        return False
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise HTTPError(400, 'BadRequest', f'invalid boolean value {v!r}')


def _dumps(obj):
    return json.dumps(obj, separators=(',', ':'), ensure_ascii=False).encode()


def key_of(obj):
    md = obj['metadata']
    return f"{md['namespace']}/{md['name']}" if 'namespace' in md else md['name']


# ---- selectors ------------------------------------------------------------------------------

_LKEY = r'[A-Za-z0-9][-A-Za-z0-9_./]*'
_LVAL = r'[-A-Za-z0-9_.]*'


def parse_label_selector(text):
    """Parse a labelSelector into a list of (op, key, values); raises HTTPError 400 when invalid."""
    reqs, parts, depth, cur = [], [], 0, ''
    for ch in text or '':
        depth += (ch == '(') - (ch == ')')
        if ch == ',' and depth == 0:
            parts.append(cur)
            cur = ''
        else:
            cur += ch
    if cur.strip() or parts:
        parts.append(cur)
    for p in (p.strip() for p in parts):
        m = re.fullmatch(rf'({_LKEY})\s+(in|notin)\s+\(\s*({_LVAL}(?:\s*,\s*{_LVAL})*)\s*\)', p)
        if m:
            reqs.append((m[2], m[1], {v.strip() for v in m[3].split(',')}))
            continue
        m = re.fullmatch(rf'({_LKEY})\s*(==|=|!=)\s*({_LVAL})', p)
        if m:
            reqs.append(('notin' if m[2] == '!=' else 'in', m[1], {m[3]}))
            continue
        m = re.fullmatch(rf'(!?)\s*({_LKEY})', p)
        if not m:
            raise HTTPError(400, 'BadRequest', f'unable to parse requirement: {p!r}')
        reqs.append(('!' if m[1] else 'exists', m[2], None))
    return reqs


def labels_match(reqs, labels):
    for op, k, vals in reqs:
        if op == 'in' and labels.get(k) not in vals:
            return False
        if op == 'notin' and k in labels and labels[k] in vals:
            return False
        if op == 'exists' and k not in labels:
            return False
        if op == '!' and k in labels:
            return False
    return True


def parse_field_selector(text):
    out = []
    for p in filter(None, (p.strip() for p in (text or '').split(','))):
        m = re.fullmatch(r'(metadata\.name|metadata\.namespace)\s*(==|=|!=)\s*(.*)', p)
        if not m:
            raise HTTPError(400, 'BadRequest', f'"{p}" is not a known field selector: only '
                            '"metadata.name", "metadata.namespace"')
        out.append((m[1].split('.')[1], m[2] != '!=', m[3]))
    return out


# ---- certificates ---------------------------------------------------------------------------

def make_certs(directory):
    """Create ca.crt/ca.key and server.crt/server.key (SAN localhost, 127.0.0.1, ::1) with openssl, unless
    the directory has ca.crt, server.crt and server.key already."""
    openssl = shutil.which('openssl')
    if not openssl:
        raise RuntimeError('fakeapi --tls needs the openssl CLI (Debian package "openssl")')
    d = lambda n: os.path.join(directory, n)  # noqa: E731
    if all(os.path.exists(d(n)) for n in ('ca.crt', 'server.crt', 'server.key')):
        return d('ca.crt'), d('server.crt'), d('server.key')  # a restarted server keeps its certificate
    with open(d('server.ext'), 'w') as f:
        f.write('subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc,'
                'IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n'
                'extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\n'
                'authorityKeyIdentifier=keyid,issuer\n')
    ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
    run = lambda *a: subprocess.run([openssl, *a], check=True, capture_output=True)  # noqa: E731
    run('req', '-x509', *ec, '-keyout', d('ca.key'), '-out', d('ca.crt'), '-days', '3',
        '-subj', '/CN=fakeapi-ca', '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
    run('req', *ec, '-keyout', d('server.key'), '-out', d('server.csr'), '-subj', '/CN=kube-apiserver')
    run('x509', '-req', '-in', d('server.csr'), '-CA', d('ca.crt'), '-CAkey', d('ca.key'),
        '-CAcreateserial', '-out', d('server.crt'), '-days', '3', '-extfile', d('server.ext'))
    return d('ca.crt'), d('server.crt'), d('server.key')


# ---- the server -----------------------------------------------------------------------------

class _Event:
    __slots__ = ('rv', 'kind', 'type', 'key', 'obj', 'prev')

    def __init__(self, rv, kind, etype, key, obj, prev):
        self.rv, self.kind, self.type, self.key, self.obj, self.prev = rv, kind, etype, key, obj, prev


class FakeAPIServer:
    """A fake kube-apiserver. Start with start() (or `with`); every public method is thread-safe."""

    def __init__(self, host='127.0.0.1', port=0, *, tls=False, token_file=None, token=None,
                 history=1000, bookmark_interval=60.0, too_old='http', continue_ttl=None,
                 start_rv=100, watch_timeout=1800.0, too_large_wait=3.0, gzip_threshold=128 * 1024,
                 ignore_limit_with_rv0=True, cert_dir=None, http2=False, verbose=False):
        if http2 and h2 is None:
            raise RuntimeError('fakeapi --http2 needs python3-h2 (Debian package "python3-h2")')
        self.host, self._port, self.tls, self.http2, self.verbose = host, port, tls, http2, verbose
        self.bookmark_interval, self.continue_ttl, self.watch_timeout = bookmark_interval, continue_ttl, watch_timeout
        self.too_large_wait, self.gzip_threshold = too_large_wait, gzip_threshold
        self.ignore_limit_with_rv0 = ignore_limit_with_rv0
        self.too_old = self._check_mode(too_old)
        self._cond = threading.Condition()
        self._objects = {k: {} for k in KINDS}
        self._rv = self._compacted = int(start_rv)
        self._history, self._history_max = collections.deque(), int(history)
        self._faults, self._fault_seq = [], 0
        self._log, self._watches, self._watch_seq = [], {}, 0
        self._close_gen, self._close_too_old = 0, False
        self._list_times = {}  # list RV -> when the first page at that RV was served
        self._stopping, self._stop_event, self._conns = False, threading.Event(), set()
        self._conn_records, self._h2conns = {}, {}  # connection id -> record; -> _H2Conn while open
        self._httpd = self._thread = self._ssl_ctx = None
        self._tmp = tempfile.mkdtemp(prefix='fakeapi-')
        self.ca_path = None
        if tls:
            self.ca_path, crt, key = make_certs(cert_dir or self._tmp)
            self._ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._ssl_ctx.load_cert_chain(crt, key)
            self._ssl_ctx.set_alpn_protocols(['h2', 'http/1.1'] if http2 else ['http/1.1'])
        if token is not None and token_file is None:
            token_file = os.path.join(self._tmp, 'token')
        self.token_file, self._token, self._await_file = token_file, None, None
        if token_file:
            if token is not None or not os.path.exists(token_file):
                self._write_token_file(token if token is not None else secrets.token_urlsafe(32))
            with open(token_file) as f:
                self._token = f.read().strip()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self):
        cls = _HTTPServer
        if ':' in self.host:
            cls = type('_HTTPServer6', (_HTTPServer,), {'address_family': socket.AF_INET6})
        self._httpd = cls((self.host, self._port), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={'poll_interval': 0.1},
                                        name='fakeapi-accept', daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """End every open watch cleanly (terminating chunk), close every connection, remove temp files."""
        if not self._httpd:
            return
        with self._cond:
            self._stopping = True
            self._stop_event.set()
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._watches, timeout=3.0)
            conns, h2conns = list(self._conns), list(self._h2conns.values())
        for c in h2conns:  # GOAWAY, then the close, once what the streams wrote is out
            c.goaway('close')
        for c in h2conns:
            c.wait_closed(2.0)
        self._httpd.shutdown()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()
        self._thread.join(5)
        self._httpd = None
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self.start() if not self._httpd else self

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._httpd.server_address[1]

    @property
    def url(self):
        host = f'[{self.host}]' if ':' in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def token(self):
        with self._cond:
            return self._token

    @property
    def rv(self):
        with self._cond:
            return str(self._rv)

    @property
    def compacted_rv(self):
        with self._cond:
            return str(self._compacted)

    def configure(self, too_old=None, bookmark_interval=None, continue_ttl=None, history=None,
                  watch_timeout=None, too_large_wait=None):
        with self._cond:
            if too_old is not None:
                self.too_old = self._check_mode(too_old)
            if bookmark_interval is not None:
                self.bookmark_interval = float(bookmark_interval)
            if continue_ttl is not None:
                self.continue_ttl = float(continue_ttl) if continue_ttl else None
            if watch_timeout is not None:
                self.watch_timeout = float(watch_timeout)
            if too_large_wait is not None:
                self.too_large_wait = float(too_large_wait)
            if history is not None:
                self._history_max = int(history)
                self._trim_locked()
            self._cond.notify_all()

    def set_history(self, n):
        self.configure(history=n)

    @staticmethod
    def _check_mode(mode):
        if mode not in ('http', 'event'):
            raise ValueError(f'too_old must be "http" or "event", not {mode!r}')
        return mode

    # -- objects ----------------------------------------------------------------------------
    def _normalize(self, obj):
        obj = copy.deepcopy(obj)
        k = KINDS.get(obj.get('kind'))
        if not k:
            raise ValueError(f"unknown kind {obj.get('kind')!r} (want one of {', '.join(KINDS)})")
        obj = dict({'kind': k.kind, 'apiVersion': k.api_version}, **obj)
        obj['apiVersion'] = k.api_version
        md = obj.setdefault('metadata', {})
        if not md.get('name'):
            raise ValueError(f'{k.kind} without metadata.name')
        if k.namespaced:
            md.setdefault('namespace', 'default')
        else:
            md.pop('namespace', None)
        return k, obj

    def _commit_locked(self, k, etype, key, obj, prev):
        self._rv += 1
        obj['metadata']['resourceVersion'] = str(self._rv)
        if etype == 'DELETED':
            del self._objects[k.kind][key]
        else:
            self._objects[k.kind][key] = obj
        self._history.append(_Event(self._rv, k.kind, etype, key, obj, prev))
        self._trim_locked()
        self._cond.notify_all()
        return copy.deepcopy(obj)

    def create(self, obj):
        """Add an object (dict with kind and metadata.name); returns the stored copy. KeyError if it exists."""
        k, obj = self._normalize(obj)
        with self._cond:
            key = key_of(obj)
            if key in self._objects[k.kind]:
                raise KeyError(f'{k.plural} "{key}" already exists')
            md = obj['metadata']
            md.setdefault('uid', str(uuid.uuid4()))
            md.setdefault('creationTimestamp', time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
            return self._commit_locked(k, 'ADDED', key, obj, None)

    def update(self, obj, force=False):
        """Replace an existing object (MODIFIED). A no-op update keeps the RV unless force."""
        k, obj = self._normalize(obj)
        with self._cond:
            key = key_of(obj)
            prev = self._objects[k.kind].get(key)
            if prev is None:
                raise KeyError(f'{k.plural} "{key}" not found')
            for f in ('uid', 'creationTimestamp'):
                if f in prev['metadata']:
                    obj['metadata'][f] = prev['metadata'][f]
            obj['metadata']['resourceVersion'] = prev['metadata']['resourceVersion']
            if obj == prev and not force:
                return copy.deepcopy(prev)
            return self._commit_locked(k, 'MODIFIED', key, obj, prev)

    def apply(self, obj):
        """Create or update."""
        k, obj = self._normalize(obj)
        with self._cond:
            exists = key_of(obj) in self._objects[k.kind]
        return self.update(obj) if exists else self.create(obj)

    def delete(self, kind, namespace=None, name=None):
        """Delete by (kind, namespace, name) or delete(obj). DELETED carries the last state, new RV."""
        if isinstance(kind, dict):
            kind, namespace, name = kind['kind'], kind['metadata'].get('namespace', 'default'), kind['metadata']['name']
        k = KINDS[kind]
        key = f'{namespace or "default"}/{name}' if k.namespaced else name
        with self._cond:
            prev = self._objects[kind].get(key)
            if prev is None:
                raise KeyError(f'{k.plural} "{key}" not found')
            return self._commit_locked(k, 'DELETED', key, copy.deepcopy(prev), prev)

    def get(self, kind, namespace=None, name=None):
        k = KINDS[kind]
        with self._cond:
            o = self._objects[kind].get(f'{namespace or "default"}/{name}' if k.namespaced else name)
            return copy.deepcopy(o)

    def objects(self, kind):
        with self._cond:
            return [copy.deepcopy(self._objects[kind][key]) for key in sorted(self._objects[kind])]

    def load(self, source, op='apply'):
        """Load objects from a file path or a YAML/JSON text (documents, List kinds). Returns them.
        Objects of kinds the fake does not serve (Namespaces in a manifest, say) are skipped."""
        text = source
        if '\n' not in source and os.path.exists(source):
            with open(source, encoding='utf-8') as f:
                text = f.read()
        return [getattr(self, op)(o) for o in _documents(text) if o.get('kind') in KINDS]

    # -- history ----------------------------------------------------------------------------
    def _trim_locked(self):
        while len(self._history) > self._history_max:
            self._compacted = self._history.popleft().rv

    def compact(self, rv=None):
        """Drop history up to rv (default: everything). Watches from older RVs and continue tokens
        whose RV is older then get 410."""
        with self._cond:
            target = self._rv if rv is None else min(int(rv), self._rv)
            while self._history and self._history[0].rv <= target:
                self._history.popleft()
            self._compacted = max(self._compacted, target)
            self._cond.notify_all()

    def _events_after_locked(self, cursor):
        out = []
        for ev in reversed(self._history):
            if ev.rv <= cursor:
                break
            out.append(ev)
        out.reverse()
        return out

    def _snapshot_locked(self, kind, rv):
        """The objects of kind as they were at rv (rv >= compacted)."""
        state = dict(self._objects[kind])
        for ev in reversed(self._history):
            if ev.rv <= rv:
                break
            if ev.kind == kind:
                if ev.prev is None:
                    state.pop(ev.key, None)
                else:
                    state[ev.key] = ev.prev
        return state

    # -- tokens -----------------------------------------------------------------------------
    def _write_token_file(self, token):
        tmp = self.token_file + '.tmp'
        with open(tmp, 'w') as f:
            f.write(token)
        os.replace(tmp, self.token_file)  # atomic, like the kubelet's projected volume

    def rotate_token(self, token=None, file_delay=None):
        """Accept only a new token from now on; write it to the token file now, or after file_delay
        seconds (meanwhile a client re-reading the file still gets 401). Returns the new token."""
        if not self.token_file:
            raise RuntimeError('no token file configured')
        new = token or secrets.token_urlsafe(32)
        with self._cond:
            self._token, self._await_file = new, None
        if file_delay:
            t = threading.Timer(file_delay, self._write_token_file, (new,))
            t.daemon = True
            t.start()
        else:
            self._write_token_file(new)
        return new

    def invalidate_token(self):
        """Answer 401 to everything until the token file's content changes; then accept the new content."""
        with open(self.token_file) as f:
            current = f.read()
        with self._cond:
            self._token, self._await_file = None, current

    def _authorized(self, header):
        if not self.token_file:
            return True
        with self._cond:
            if self._token is None and self._await_file is not None:
                try:
                    with open(self.token_file) as f:
                        content = f.read()
                except OSError:
                    content = self._await_file
                if content != self._await_file and content.strip():
                    self._token, self._await_file = content.strip(), None
            token = self._token
        if token is None or not header or not header.startswith('Bearer '):
            return False
        return hmac.compare_digest(header[7:].strip().encode(), token.encode())

    # -- faults -----------------------------------------------------------------------------
    def arm(self, fault, prefix='/', count=1, watch=None, **params):
        """Arm a fault for the next `count` requests (None: until disarmed) whose path starts with
        prefix; watch=True/False limits it to watch/non-watch requests. Returns the fault id."""
        fault = _FAULT_ALIASES.get(fault, fault)
        if fault not in FAULTS:
            raise ValueError(f'unknown fault {fault!r} (want one of {", ".join(FAULTS)})')
        with self._cond:
            self._fault_seq += 1
            self._faults.append({'id': self._fault_seq, 'fault': fault, 'prefix': prefix,
                                 'count': count, 'watch': watch, 'params': params})
            return self._fault_seq

    def disarm(self, fault_id=None):
        with self._cond:
            self._faults = [f for f in self._faults if fault_id is not None and f['id'] != fault_id]

    def faults(self):
        with self._cond:
            return copy.deepcopy(self._faults)

    def _take_faults(self, path, watch, has_rv):
        chosen = {}
        with self._cond:
            for f in list(self._faults):
                if f['fault'] in chosen or not path.startswith(f['prefix']):
                    continue
                if f['watch'] is not None and bool(f['watch']) != watch:
                    continue
                if f['fault'] == 'too_old' and not (watch and has_rv):
                    continue
                chosen[f['fault']] = f['params']
                if f['count'] is not None:
                    f['count'] -= 1
                    if f['count'] <= 0:
                        self._faults.remove(f)
        return chosen

    # -- request log and watches ------------------------------------------------------------
    def requests(self, prefix=None, watch=None, since=0):
        """Logged requests (dicts: id, time, method, path, query, target, watch, headers, peer,
        status, faults, events, end), oldest first."""
        with self._cond:
            return [copy.deepcopy(e) for e in self._log if _entry_matches(e, prefix, watch, since)]

    def last_request_id(self):
        with self._cond:
            return self._log[-1]['id'] if self._log else 0

    def clear_requests(self):
        with self._cond:
            del self._log[:]

    def wait_for_request(self, pred=None, *, prefix=None, watch=None, since=0, timeout=5.0):
        """The first logged request (id > since) matching prefix/watch and pred(entry); None on timeout."""
        found = []

        def check():
            for e in self._log:
                if _entry_matches(e, prefix, watch, since) and (pred is None or pred(e)):
                    found.append(copy.deepcopy(e))
                    return True
            return False
        with self._cond:
            self._cond.wait_for(check, timeout)
        return found[0] if found else None

    def watches(self, prefix='/'):
        with self._cond:
            return [dict(w) for w in self._watches.values() if w['path'].startswith(prefix)]

    def wait_for_watchers(self, n, prefix='/', timeout=5.0):
        """Wait until at least n watches on paths starting with prefix are streaming."""
        with self._cond:
            return self._cond.wait_for(
                lambda: sum(w['path'].startswith(prefix) for w in self._watches.values()) >= n, timeout)

    def close_watches(self, too_old=False, timeout=10.0):
        """End every open watch now: cleanly, or with an ERROR 410 event when too_old. Returns once each of
        those watches has ended (bounded by timeout), so that what a test does next (an event, a
        wait_for_watchers) meets only the watches opened after this call, never one still closing."""
        with self._cond:
            closing = set(self._watches)
            self._close_gen += 1
            self._close_too_old = too_old
            self._cond.notify_all()
            return self._cond.wait_for(lambda: not closing & set(self._watches), timeout)

    # -- connections and HTTP/2 --------------------------------------------------------------
    def _conn_opened(self, proto, peer):
        with self._cond:
            cid = len(self._conn_records) + 1
            self._conn_records[cid] = {'id': cid, 'proto': proto, 'tls': self.tls, 'peer': peer,
                                       'opened': time.time(), 'closed': None, 'requests': 0, 'streams': 0,
                                       'active': 0, 'max_active': 0, 'goaway': None, 'frozen': False}
            self._cond.notify_all()
            return cid

    def _conn_closed(self, cid):
        with self._cond:
            self._conn_records[cid]['closed'] = time.time()
            self._h2conns.pop(cid, None)
            self._cond.notify_all()

    def connections(self, proto=None):
        """Every connection accepted so far, oldest first: dicts with id, proto ('h2' or 'http/1.1'), tls,
        peer (client port), opened/closed (time; closed None while open), requests (resource requests
        logged), and for HTTP/2: streams (opened by the client, control requests included), active
        (streams being answered now), max_active (the most at once), goaway (None or {mode, error_code,
        last_stream_id}), frozen."""
        with self._cond:
            return [dict(r) for r in self._conn_records.values() if proto is None or r['proto'] == proto]

    def wait_for_connections(self, pred, timeout=5.0):
        """Wait until pred(connections()) is true; returns the last value it was called with."""
        last = []

        def check():
            last[:] = [dict(r) for r in self._conn_records.values()]
            return pred(last)
        with self._cond:
            self._cond.wait_for(check, timeout)
        return last

    def _h2_targets(self, conn_id):
        with self._cond:
            conns = [c for cid, c in self._h2conns.items()
                     if not c.dead and (conn_id is None or cid == int(conn_id))]
        if not conns:
            raise RuntimeError('no open HTTP/2 connection' + (f' with id {conn_id}' if conn_id else ''))
        return conns

    def goaway(self, mode='graceful', error_code=0, conn=None, end_watches=False):
        """Send GOAWAY on every open HTTP/2 connection (or on the one with id conn); returns their ids.
        Its last-stream-ID is the highest stream the client opened, so every open stream was processed:
          graceful: the open streams go on (end_watches=True: each open watch ends cleanly, as an apiserver
                    that shuts down ends them); new streams are refused (RST_STREAM REFUSED_STREAM); the
                    connection closes once no stream is left;
          close:    the connection closes right after the GOAWAY: every open stream is cut short."""
        if mode not in ('graceful', 'close'):
            raise ValueError(f'goaway mode must be "graceful" or "close", not {mode!r}')
        conns = self._h2_targets(conn)
        for c in conns:
            c.goaway(mode, int(error_code), bool(end_watches))
        return [c.id for c in conns]

    def freeze(self, conn=None):
        """From now on an HTTP/2 connection (every open one, or the one with id conn) sends nothing at all,
        nor answers anything: a peer gone dark, as behind a dead route. Reading goes on, so the client's
        close is seen. Returns their ids."""
        conns = self._h2_targets(conn)
        for c in conns:
            c.freeze()
        return [c.id for c in conns]

    def write_kubeconfig(self, path, context='fakeapi'):
        """Write a kubeconfig (server, certificate-authority, tokenFile) pointing at this server."""
        lines = ['apiVersion: v1', 'kind: Config', f'current-context: {context}', 'clusters:',
                 f'- name: {context}', '  cluster:', f'    server: "{self.url}"']
        if self.ca_path:
            lines.append(f'    certificate-authority: "{self.ca_path}"')
        lines += ['users:', f'- name: {context}', '  user:']
        lines.append(f'    tokenFile: "{self.token_file}"' if self.token_file else '    {}')
        lines += ['contexts:', f'- name: {context}', '  context:', f'    cluster: {context}',
                  f'    user: {context}']
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        return path

    def info(self):
        return {'url': self.url, 'port': self.port, 'ca': self.ca_path, 'token_file': self.token_file,
                'tls': self.tls, 'http2': self.http2, 'yaml': yaml is not None}

    def state(self):
        with self._cond:
            return {'resourceVersion': str(self._rv), 'compactedResourceVersion': str(self._compacted),
                    'history': len(self._history), 'historyMax': self._history_max,
                    'objects': {k: len(v) for k, v in self._objects.items()},
                    'watches': [dict(w) for w in self._watches.values()], 'faults': copy.deepcopy(self._faults),
                    'tooOld': self.too_old, 'bookmarkInterval': self.bookmark_interval}


def _canon(header):
    return '-'.join(p.capitalize() for p in header.split('-'))


def _entry_matches(e, prefix, watch, since):
    return (e['id'] > since and (prefix is None or e['path'].startswith(prefix))
            and (watch is None or e['watch'] == watch))


def _documents(text):
    """Objects from YAML or JSON text: several documents, and List kinds (items) are flattened."""
    text = text.strip()
    if yaml is not None:
        docs = list(yaml.safe_load_all(text))
    else:
        try:
            docs = [json.loads(text)]
        except ValueError:  # also JSON lines
            docs = [json.loads(line) for line in text.splitlines() if line.strip()]
    out = []
    for d in docs:
        if isinstance(d, list):
            out.extend(d)
        elif isinstance(d, dict) and d.get('kind', '').endswith('List') and 'items' in d:
            item_kind = d['kind'][:-4]
            out.extend(dict(i, kind=i.get('kind', item_kind)) for i in d['items'])
        elif d:
            out.append(d)
    return out


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self):  # HTTPServer's calls getfqdn(), which can stall on a DNS lookup
        import socketserver
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        if getattr(self, 'fake', None) and self.fake.verbose:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def version_string(self):
        return 'fakeapi'

    # -- connection plumbing ----------------------------------------------------------------
    http = '1.1'  # the request's HTTP version, as logged
    _sid = None   # the HTTP/2 stream (_H2Request)

    def setup(self):
        self.fake = self.server.fake
        self._entry = None
        if self.fake._ssl_ctx:
            self.request.settimeout(10)
            self.request = self.fake._ssl_ctx.wrap_socket(self.request, server_side=True)
            self.request.settimeout(None)
            h2 = self.request.selected_alpn_protocol() == 'h2'
        else:
            h2 = self.fake.http2 and self._h2c_preface()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()
        self._conn_id = self.fake._conn_opened('h2' if h2 else 'http/1.1', self.client_address[1])
        self._h2 = _H2Conn(self) if h2 else None
        with self.fake._cond:
            self.fake._conns.add(self.request)

    def _h2c_preface(self):
        """Whether a plain-TCP client starts with the HTTP/2 preface (h2c with prior knowledge)."""
        try:
            self.request.settimeout(10)
            head = self.request.recv(len(_H2_PREFACE), socket.MSG_PEEK | socket.MSG_WAITALL)
        except OSError:
            head = b''
        finally:
            self.request.settimeout(None)
        return head == _H2_PREFACE

    def handle(self):
        if self._h2:
            self._h2.serve()
        else:
            super().handle()

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        with self.fake._cond:
            self.fake._conns.discard(self.request)
        self.fake._conn_closed(self._conn_id)
        if self.fake._ssl_ctx or self._h2:
            self.request.close()

    def log_message(self, fmt, *args):
        if self.fake.verbose:
            sys.stderr.write('fakeapi: %s %s\n' % (self.address_string(), fmt % args))

    def send_response(self, code, message=None):
        if self._entry is not None:
            self._entry['status'] = code
        self._status_line(code, message)
        self.send_header('Audit-Id', str(uuid.uuid4()))
        self.send_header('Cache-Control', 'no-cache, private')

    # The transport: HTTP/1.1 here, HTTP/2 in _H2Request.
    def _status_line(self, code, message):
        super().send_response(code, message)

    def _w(self, data):
        self.wfile.write(data)

    def _chunk(self, data, split=False):
        """One chunk of a watch body; split: the size line, data and CRLF as three writes."""
        if split:
            self._w(b'%x\r\n' % len(data))
            self._w(data)
            self._w(b'\r\n')
        else:
            self._w(b'%x\r\n%s\r\n' % (len(data), data))

    def _end_chunks(self):
        self._w(b'0\r\n\r\n')

    def _ending(self):
        """Whether the connection is going away (an HTTP/2 GOAWAY with end_watches): open watches end."""
        return False

    def _peer_closed(self):
        try:
            if not select.select([self.connection], [], [], 0)[0]:
                return False
            return socket.socket.recv(self.connection, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b''
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _reset(self):
        """Close abruptly: RST instead of FIN."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            self.rfile.close()
            self.connection.close()
        except OSError:
            pass
        raise _Abort()

    def _stall(self, params):
        """Send nothing until the client leaves, stop(), close_watches() or params['seconds']; then RST."""
        fake, seconds = self.fake, params.get('seconds')
        deadline = time.monotonic() + seconds if seconds else None
        with fake._cond:
            gen = fake._close_gen
            while not fake._stopping and fake._close_gen == gen and not self._peer_closed():
                left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                if left <= 0:
                    break
                fake._cond.wait(left)
        self._reset()

    # -- dispatch ---------------------------------------------------------------------------
    def do_GET(self):
        self._dispatch('GET')

    def do_POST(self):
        self._dispatch('POST')

    def do_PUT(self):
        self._dispatch('PUT')

    def do_DELETE(self):
        self._dispatch('DELETE')

    def do_PATCH(self):
        self._dispatch('PATCH')

    def _dispatch(self, method):
        fake = self.fake
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        n = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(n) if n else b''
        self._entry = None
        try:
            if url.path.startswith('/fake/'):
                return self._control(method, url.path, query, body)
            try:
                watch = _bool(query.get('watch'))
            except HTTPError:
                watch = False
            rvq = query.get('resourceVersion', '')
            with fake._cond:
                entry = {'id': (fake._log[-1]['id'] + 1) if fake._log else 1, 'time': time.time(),
                         'method': method, 'path': url.path, 'query': query, 'target': self.path,
                         'watch': watch, 'headers': {_canon(h): v for h, v in self.headers.items()},
                         'peer': self.client_address[1], 'conn': self._conn_id, 'http': self.http,
                         'stream': self._sid, 'status': None, 'faults': [], 'events': 0, 'last_rv': None,
                         'end': None}
                fake._log.append(entry)
                fake._conn_records[self._conn_id]['requests'] += 1
                fake._cond.notify_all()
            self._entry = entry
            if not fake._authorized(self.headers.get('Authorization')):
                raise HTTPError(401, 'Unauthorized', 'Unauthorized')
            faults = fake._take_faults(url.path, watch, rvq not in ('', '0'))
            entry['faults'] = sorted(faults)
            if 'slow' in faults:
                fake._stop_event.wait(float(faults['slow'].get('delay', 1.0)))
            if 'error' in faults:
                p = faults['error']
                code = int(p.get('code', 503))
                ra = p.get('retry_after')
                raise HTTPError(code, {500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout',
                                       429: 'TooManyRequests'}.get(code, 'InternalError'),
                                p.get('message', 'fakeapi: injected failure'),
                                {'retryAfterSeconds': int(ra)} if ra is not None else None,
                                {'Retry-After': str(ra)} if ra is not None else None)
            self._serve(method, url.path, query, watch, faults)
        except HTTPError as e:
            self._send_json(e.status['code'], e.status, {}, e.headers)
        except _Abort:
            self.close_connection = True
            if self._entry is not None:
                self._entry['end'] = self._entry['end'] or 'aborted'
        except (OSError, ssl.SSLError):
            self.close_connection = True
            if self._entry is not None:
                self._entry['end'] = 'client-gone'
        finally:
            with fake._cond:
                fake._cond.notify_all()

    def _serve(self, method, path, q, watch, faults):
        if path in ('/healthz', '/readyz', '/livez'):
            return self._send_raw(200, b'ok', 'text/plain; charset=utf-8')
        if path == '/version':
            return self._send_json(200, {'major': '1', 'minor': '33', 'gitVersion': 'v1.33.0-fakeapi',
                                         'platform': 'linux/amd64'}, {})
        m = _ROUTE.match(path)
        k = m and _BY_PATH.get((m[1], m[3]))
        if not k or (m[2] and not k.namespaced):
            raise HTTPError(404, 'NotFound', 'the server could not find the requested resource',
                            {})
        if method != 'GET':
            raise HTTPError(405, 'MethodNotAllowed', f'fakeapi serves only GET on {path}')
        ns, name = m[2], m[4]
        labels = parse_label_selector(q.get('labelSelector'))
        fields = parse_field_selector(q.get('fieldSelector'))
        if name:
            fields.append(('name', True, name))

        def match(obj):
            md = obj['metadata']
            if ns and md.get('namespace') != ns:
                return False
            for f, eq, v in fields:
                if (md.get(f, '') == v) != eq:
                    return False
            return labels_match(labels, md.get('labels') or {})
        if watch:
            return self._serve_watch(k, match, q, faults)
        if name:
            obj = self.fake.get(k.kind, ns, name)
            if obj is None:
                raise HTTPError(404, 'NotFound', f'{k.plural} "{name}" not found',
                                {'name': name, 'group': k.api_version.rpartition('/')[0], 'kind': k.plural})
            return self._send_json(200, _pad(obj, faults), faults)
        return self._serve_list(k, match, q, faults, bool(labels) or bool(fields))

    # -- list -------------------------------------------------------------------------------
    def _wait_rv(self, rv):
        """Block until the store reaches rv (as apiserver's watch cache does), else 504."""
        fake = self.fake
        if not fake._cond.wait_for(lambda: fake._rv >= rv or fake._stopping, fake.too_large_wait) \
                or fake._rv < rv:
            raise HTTPError(504, 'Timeout', f'Too large resource version: {rv}, current: {fake._rv}',
                            {'causes': [{'reason': 'ResourceVersionTooLarge',
                                         'message': 'Too large resource version'}],
                             'retryAfterSeconds': 1})

    def _serve_list(self, k, match, q, faults, filtered):
        fake = self.fake
        rvq, cont, rvm = q.get('resourceVersion', ''), q.get('continue', ''), q.get('resourceVersionMatch', '')
        try:
            limit = int(q.get('limit') or 0)
        except ValueError:
            raise HTTPError(400, 'BadRequest', f"limit: Invalid value: {q.get('limit')!r}")
        if rvm and not rvq:
            raise HTTPError(400, 'BadRequest', 'resourceVersionMatch is forbidden unless resourceVersion is provided')
        start = ''
        with fake._cond:
            if cont:
                if rvq:
                    raise HTTPError(400, 'BadRequest',
                                    'specifying resource version is not allowed when using continue')
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont + '=' * (-len(cont) % 4)))
                    assert tok['v'] == 'meta.k8s.io/v1' and isinstance(tok['rv'], int) and tok['rv'] > 0
                    list_rv, start = tok['rv'], str(tok['start'])
                except Exception:
                    raise HTTPError(400, 'BadRequest', 'continue key is not valid: incorrect encoded start '
                                    'resourceVersion (version meta.k8s.io/v1)')
                issued = fake._list_times.get(list_rv)
                if list_rv < fake._compacted or (fake.continue_ttl and issued is not None
                                                  and time.monotonic() - issued > fake.continue_ttl):
                    raise HTTPError(410, 'Expired', _CONTINUE_TOO_OLD)
                state = fake._snapshot_locked(k.kind, list_rv)
            else:
                if rvm not in ('', 'Exact', 'NotOlderThan'):
                    raise HTTPError(400, 'BadRequest', f'resourceVersionMatch: Unsupported value: "{rvm}"')
                want = None
                if rvq not in ('', '0'):
                    try:
                        want = int(rvq)
                    except ValueError:
                        raise HTTPError(400, 'BadRequest', f'resourceVersion: Invalid value: "{rvq}"')
                    if want > fake._rv:
                        self._wait_rv(want)
                    if rvm == 'Exact' and want < fake._compacted:
                        raise HTTPError(410, 'Expired', f'too old resource version: {want} ({fake._compacted})')
                list_rv = want if rvm == 'Exact' else fake._rv
                state = (fake._snapshot_locked(k.kind, list_rv) if list_rv != fake._rv
                         else dict(fake._objects[k.kind]))
                if rvq == '0' and fake.ignore_limit_with_rv0:
                    limit = 0
            keys = sorted(key for key in state if key >= start)
            items, last = [], None
            for i, key in enumerate(keys):
                if match(state[key]):
                    if limit and len(items) == limit:
                        break
                    items.append(state[key])
                    last = i
            more = limit and last is not None and any(match(state[key]) for key in keys[last + 1:])
            md = {'resourceVersion': str(list_rv)}
            if more:
                if list_rv not in fake._list_times:
                    fake._list_times[list_rv] = time.monotonic()
                    for r in [r for r in fake._list_times if r < fake._compacted]:
                        del fake._list_times[r]
                md['continue'] = base64.urlsafe_b64encode(_dumps(
                    {'v': 'meta.k8s.io/v1', 'rv': list_rv, 'start': keys[last] + '\x00'})).decode().rstrip('=')
                if not filtered:
                    md['remainingItemCount'] = len(keys) - last - 1
        out_items = []
        for o in items:
            o = {f: v for f, v in o.items() if f not in ('kind', 'apiVersion')}
            out_items.append(_pad(o, faults))
        self._send_json(200, {'kind': k.kind + 'List', 'apiVersion': k.api_version, 'metadata': md,
                              'items': out_items}, faults)

    # -- responses --------------------------------------------------------------------------
    def _send_json(self, code, obj, faults, headers=None):
        self._send_raw(code, _dumps(obj) + b'\n', 'application/json', faults, headers)

    def _send_raw(self, code, body, ctype, faults=None, headers=None):
        faults = faults or {}
        gz = (code == 200 and len(body) > self.fake.gzip_threshold
              and 'gzip' in (self.headers.get('Accept-Encoding') or ''))
        if gz:
            body = gzip.compress(body, 1)
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        if gz:
            self.send_header('Content-Encoding', 'gzip')
            self.send_header('Vary', 'Accept-Encoding')
        for h, v in (headers or {}).items():
            self.send_header(h, v)
        self.end_headers()
        if 'stall' in faults:
            self._stall(faults['stall'])
        if 'reset' in faults:
            self._w(body[:len(body) // 2])
            self._reset()
        if 'split' in faults:
            for piece in _pieces(body, faults['split']):
                self._w(piece)
                time.sleep(float(faults['split'].get('gap', 0.002)))
        else:
            self._w(body)
        if self._entry is not None and not self._entry['end']:
            self._entry['end'] = 'complete'

    # -- watch ------------------------------------------------------------------------------
    def _serve_watch(self, k, match, q, faults):
        fake = self.fake
        try:
            timeout = float(q.get('timeoutSeconds') or 0) or fake.watch_timeout  # 0: server default
        except ValueError:
            raise HTTPError(400, 'BadRequest', f"timeoutSeconds: Invalid value: {q['timeoutSeconds']!r}")
        bookmarks, initial_events = _bool(q.get('allowWatchBookmarks')), _bool(q.get('sendInitialEvents'))
        rvq = q.get('resourceVersion', '')
        mode = faults.get('too_old', {}).get('mode') or fake.too_old
        initial, too_old = [], None
        with fake._cond:
            if rvq in ('', '0') or initial_events:
                cursor = fake._rv
                initial = [o for key, o in sorted(fake._objects[k.kind].items()) if match(o)]
            else:
                try:
                    cursor = int(rvq)
                except ValueError:
                    raise HTTPError(400, 'BadRequest', f'resourceVersion: Invalid value: "{rvq}"')
                if 'too_old' in faults:
                    fake.compact()
                if cursor > fake._rv:
                    self._wait_rv(cursor)
                if cursor < fake._compacted or 'too_old' in faults:
                    too_old = status(410, 'Expired', f'too old resource version: {cursor} ({fake._compacted})')
            if too_old is None:
                fake._watch_seq += 1
                wid = fake._watch_seq
                fake._watches[wid] = {'id': wid, 'path': self._entry['path'], 'target': self.path,
                                      'rv': str(cursor), 'since': time.time()}
                gen = fake._close_gen  # close_watches() from now on ends this watch
                fake._cond.notify_all()
        if too_old and mode == 'http':
            self._entry['end'] = 'too-old'
            raise HTTPError(410, 'Expired', too_old['message'])
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Transfer-Encoding', 'chunked')
        self.end_headers()
        stream = _Stream(self, k, faults)
        if too_old:
            stream.event('ERROR', too_old)
            return stream.end('too-old')
        try:
            self._stream_watch(k, match, stream, cursor, initial, bookmarks, initial_events, timeout, faults, gen)
        finally:
            with fake._cond:
                fake._watches.pop(wid, None)
                fake._cond.notify_all()

    def _stream_watch(self, k, match, stream, cursor, initial, bookmarks, initial_events, timeout, faults, gen):
        fake = self.fake
        if 'stall' in faults and not faults['stall'].get('after'):
            self._stall(faults['stall'])
        now = time.monotonic()
        deadline = now + timeout
        next_bm = now + fake.bookmark_interval if bookmarks else float('inf')
        for obj in initial:
            stream.event('ADDED', obj)
        if initial_events and bookmarks:
            stream.event('BOOKMARK', _bookmark(k, cursor, initial_end=True))
        while True:
            end, evs, check_at = None, [], time.monotonic() + 1.0
            with fake._cond:
                while True:
                    now = time.monotonic()
                    if fake._stopping:
                        end = 'stopped'
                    elif fake._close_gen != gen:
                        end = 'closed-too-old' if fake._close_too_old else 'closed'
                    elif self._ending():
                        end = 'goaway'
                    elif cursor < fake._compacted:
                        end = 'fell-behind'
                    elif now >= deadline:
                        end = 'timeout'
                    if end:
                        break
                    evs = fake._events_after_locked(cursor)
                    if evs or now >= next_bm:
                        break
                    if now >= check_at:
                        if self._peer_closed():
                            end = 'client-gone'
                            break
                        check_at = now + 1.0
                    fake._cond.wait(min(deadline, next_bm, check_at) - now)
                bm_rv = fake._rv
            if end == 'client-gone':
                raise _Abort()
            if end in ('fell-behind', 'closed-too-old'):
                stream.event('ERROR', status(410, 'Expired', f'too old resource version: {cursor} '
                                             f'({fake._compacted})'))
            if end:
                return stream.end(end)
            for ev in evs:
                cursor = ev.rv
                out = _project(k, ev, match)
                if out:
                    stream.event(*out)
            if not evs:
                stream.event('BOOKMARK', _bookmark(k, bm_rv))
                cursor = max(cursor, bm_rv)
                next_bm = time.monotonic() + fake.bookmark_interval

    # -- control API ------------------------------------------------------------------------
    def _control(self, method, path, q, body):
        fake = self.fake
        route = (method, path.rstrip('/'))
        try:
            data = {}
            if body and route not in (('POST', '/fake/objects'), ('POST', '/fake/load')):
                data = json.loads(body)
            if route == ('GET', '/fake/info'):
                out = fake.info()
            elif route == ('GET', '/fake/state'):
                out = fake.state()
            elif route == ('GET', '/fake/requests'):
                out = fake.requests(prefix=q.get('prefix'), since=int(q.get('since', 0)))
            elif route == ('DELETE', '/fake/requests'):
                fake.clear_requests()
                out = {}
            elif route == ('POST', '/fake/objects'):
                op = q.get('op', 'apply')
                if op not in ('apply', 'create', 'update'):
                    raise ValueError(f'op must be apply, create or update, not {op!r}')
                out = {'items': [getattr(fake, op)(o) for o in _documents(body.decode())]}
            elif route == ('DELETE', '/fake/objects'):
                out = fake.delete(q['kind'], q.get('namespace'), q['name'])
            elif route == ('POST', '/fake/load'):
                out = {'items': fake.load(q['path'] if 'path' in q else body.decode())}
            elif route == ('POST', '/fake/compact'):
                fake.compact(q.get('rv') or data.get('rv'))
                out = fake.state()
            elif route == ('POST', '/fake/config'):
                fake.configure(**data)
                out = fake.state()
            elif route == ('POST', '/fake/rotate-token'):
                out = {'token': fake.rotate_token(data.get('token'), data.get('file_delay'))}
            elif route == ('POST', '/fake/invalidate-token'):
                fake.invalidate_token()
                out = {}
            elif route == ('POST', '/fake/faults'):
                out = {'id': fake.arm(data.pop('fault'), data.pop('prefix', '/'), data.pop('count', 1),
                                      data.pop('watch', None), **data)}
            elif route == ('DELETE', '/fake/faults'):
                fake.disarm(int(q['id']) if 'id' in q else None)
                out = {}
            elif route == ('POST', '/fake/close-watches'):
                fake.close_watches(_bool(q.get('too_old')))
                out = {}
            elif route == ('GET', '/fake/connections'):
                out = fake.connections(q.get('proto'))
            elif route == ('POST', '/fake/goaway'):
                out = {'connections': fake.goaway(data.get('mode', 'graceful'), data.get('error_code', 0),
                                                  data.get('conn'), data.get('end_watches', False))}
            elif route == ('POST', '/fake/freeze'):
                out = {'connections': fake.freeze(data.get('conn'))}
            elif route == ('POST', '/fake/wait-watchers'):
                ok = fake.wait_for_watchers(int(q.get('n', 1)), q.get('prefix', '/'), float(q.get('timeout', 5)))
                return self._send_json(200 if ok else 408, {'ok': ok, 'watches': fake.watches()}, {})
            else:
                raise HTTPError(404, 'NotFound', f'no control endpoint {method} {path}')
        except (KeyError, ValueError, TypeError, RuntimeError, OSError) as e:
            raise HTTPError(400, 'BadRequest', f'{type(e).__name__}: {e}')
        self._send_json(200, out, {})


# ---- HTTP/2 ---------------------------------------------------------------------------------

_H2_PREFACE = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
_H2_MAX_STREAMS = 250  # SETTINGS_MAX_CONCURRENT_STREAMS: Go's default, which the apiserver's server keeps
_HOP_HEADERS = frozenset(('connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'))


class _H2Stream:
    __slots__ = ('sid', 'headers', 'body', 'reset', 'started', 'ended')

    def __init__(self, sid, headers):
        self.sid, self.headers, self.body = sid, headers, bytearray()
        self.reset = self.started = self.ended = False  # RST_STREAM either way; answered; END_STREAM sent


class _H2Conn:
    """One HTTP/2 connection (python3-h2, which does the framing, HPACK and flow control).

    Threads: the connection's handler thread is its only I/O thread: it alone reads and writes the socket
    (non-blocking; an SSL object must not be used by two threads at once), in a select() over the socket
    and a wake-up pipe. Each request stream is answered by a thread of its own running _H2Request (the
    HTTP/1.1 handler's code over this transport), which hands frames to the h2 state machine under
    self.cv and wakes the I/O thread to send them; a DATA frame waits (on self.cv) for flow-control
    window. Lock order: fake._cond may be held while reading a stream's flags, never while taking
    self.cv; the I/O thread takes fake._cond only with self.cv released."""

    def __init__(self, handler):
        self.fake, self.sock, self.id = handler.fake, handler.request, handler._conn_id
        self.peer = handler.client_address
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                        header_encoding='utf-8'))
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: _H2_MAX_STREAMS,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65536})
        self.cv = threading.Condition()
        self.out = bytearray()    # bytes to send, in order (h2's output and our own GOAWAY frames)
        self.streams = {}         # stream id -> _H2Stream
        self.dead = False         # the connection is closed (or closing): nothing more goes out
        self.closing = False      # close as soon as self.out is sent
        self.goaway_last = None   # the last-stream-ID of the GOAWAY sent, or None
        self.end_watches = False  # GOAWAY graceful with end_watches: open watches end
        self.frozen = False
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        with self.fake._cond:
            self.fake._h2conns[self.id] = self

    def _wake(self):
        with self.cv:  # the pipe is closed under self.cv: its number may be another socket's after that
            if self.wake_w is not None:
                try:
                    os.write(self.wake_w, b'x')
                except OSError:  # full: a wake-up is pending anyway
                    pass

    def _record(self, **changes):
        with self.fake._cond:
            rec = self.fake._conn_records[self.id]
            for k, v in changes.items():
                rec[k] = rec[k] + v if k in ('streams', 'active') else v
            rec['max_active'] = max(rec['max_active'], rec['active'])
            self.fake._cond.notify_all()

    # -- the I/O thread ----------------------------------------------------------------------
    def serve(self):
        sock, lingering = self.sock, False
        try:
            sock.setblocking(False)
            with self.cv:
                self.h2.initiate_connection()
                self.out += self.h2.data_to_send()
            while True:
                with self.cv:
                    # Closing (or a graceful GOAWAY's last stream done) once everything queued is out; dead in
                    # the same breath, so that nothing queued after this counts as sent.
                    if (self.closing or (self.goaway_last is not None and not self.streams)) and \
                            (not self.out or self.frozen):
                        self.dead = True
                        lingering = not self.frozen
                        break
                    want_write = bool(self.out) and not self.frozen
                pending = isinstance(sock, ssl.SSLSocket) and sock.pending()
                r, w = ([sock], []) if pending else \
                    select.select([sock, self.wake_r], [sock] if want_write else [], [], 1.0)[:2]
                if self.wake_r in r:
                    try:
                        os.read(self.wake_r, 4096)
                    except BlockingIOError:
                        pass
                if sock in r:
                    try:
                        data = sock.recv(65536)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                        data = None
                    if data == b'':
                        break  # the client closed: nothing to linger for
                    if data and not self.frozen:
                        self._receive(data)
                if want_write and sock in w:
                    with self.cv:
                        head = bytes(self.out[:65536])
                    try:
                        n = sock.send(head)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                        n = 0
                    with self.cv:
                        del self.out[:n]
                        self.cv.notify_all()
            if lingering:
                self._linger()
        except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
            pass
        finally:
            with self.cv:
                self.dead = True
                os.close(self.wake_r)
                os.close(self.wake_w)
                self.wake_r = self.wake_w = None
                self.cv.notify_all()
            with self.fake._cond:
                self.fake._cond.notify_all()  # watches and stalls notice at once

    def _linger(self):
        """Our side is done: FIN, then read (and drop) what the client still sends until it closes too, for
        at most a second. Closing with unread bytes would send an RST, which can make the client lose what
        it had not read yet: the GOAWAY and the last frames before it."""
        socket.socket.shutdown(self.sock, socket.SHUT_WR)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if select.select([self.sock], [], [], deadline - time.monotonic())[0] and \
                    not socket.socket.recv(self.sock, 65536):
                return

    def _receive(self, data):
        with self.cv:
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError:
                self.out += self.h2.data_to_send()  # h2 queued the GOAWAY that says why
                self.closing = True
                return
        for ev in events:
            sid = getattr(ev, 'stream_id', None)
            if isinstance(ev, h2.events.RequestReceived):
                with self.cv:
                    refused = self.goaway_last is not None and sid > self.goaway_last
                    if refused:  # a stream the GOAWAY said would not be processed
                        self.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
                    else:
                        self.streams[sid] = _H2Stream(sid, ev.headers)
                if not refused:
                    self._record(streams=1)
            elif isinstance(ev, h2.events.DataReceived):
                with self.cv:
                    st = self.streams.get(sid)
                    if st:
                        st.body += ev.data
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, h2.events.StreamEnded):
                with self.cv:
                    st = self.streams.get(sid)
                    start = st is not None and not st.started
                    if start:
                        st.started = True
                if start:
                    self._record(active=1)
                    threading.Thread(target=_H2Request(self, st).run, name=f'fakeapi-h2-{self.id}-{sid}',
                                     daemon=True).start()
            elif isinstance(ev, h2.events.StreamReset):
                with self.cv:
                    st = self.streams.get(sid)
                    if st:
                        st.reset = True
                        if not st.started:
                            del self.streams[sid]
                    self.cv.notify_all()
                with self.fake._cond:
                    self.fake._cond.notify_all()
            elif isinstance(ev, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
                with self.cv:
                    self.cv.notify_all()
        with self.cv:
            self.out += self.h2.data_to_send()

    # -- what the streams' threads call --------------------------------------------------------
    def _send(self, fn, *args, **kwargs):
        with self.cv:
            if self.dead:
                raise ConnectionResetError('HTTP/2 connection closed')
            fn(*args, **kwargs)
            self.out += self.h2.data_to_send()
        self._wake()

    def send_headers(self, st, headers):
        self._send(self.h2.send_headers, st.sid, headers)

    def send_data(self, st, data, end=False):
        """DATA frames within the peer's flow-control windows and frame size; blocks for window."""
        data = memoryview(bytes(data))
        while True:
            with self.cv:
                while not self.dead and not st.reset:
                    window = min(self.h2.local_flow_control_window(st.sid), self.h2.max_outbound_frame_size)
                    if window > 0 or not data:
                        break
                    self.cv.wait(1.0)
                if self.dead or st.reset:
                    raise ConnectionResetError('HTTP/2 stream reset' if st.reset else 'HTTP/2 connection closed')
                n = min(len(data), window)
                self.h2.send_data(st.sid, data[:n].tobytes(), end_stream=end and n == len(data))
                st.ended = end and n == len(data)
                self.out += self.h2.data_to_send()
                data = data[n:]
            self._wake()
            if not data:
                return

    def reset_stream(self, st, code):
        with self.cv:
            if self.dead or st.reset or st.ended:
                return
            st.reset = True
            self.h2.reset_stream(st.sid, code)
            self.out += self.h2.data_to_send()
        self._wake()

    def stream_done(self, st, headers_sent):
        """The request thread is done: end the stream (or reset it if nothing was answered)."""
        with self.cv:
            if not self.dead and not st.reset and not st.ended:
                if headers_sent:
                    self.h2.end_stream(st.sid)
                else:
                    self.h2.reset_stream(st.sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
                st.ended = True
                self.out += self.h2.data_to_send()
            self.streams.pop(st.sid, None)
        self._wake()
        self._record(active=-1)

    # -- control ---------------------------------------------------------------------------------
    def goaway(self, mode, error_code=0, end_watches=False):
        with self.cv:
            if self.dead:
                return
            # Sent past h2's state machine, which would refuse DATA on the open streams after its own GOAWAY.
            f = hyperframe.frame.GoAwayFrame(0)
            f.last_stream_id = self.h2.highest_inbound_stream_id
            f.error_code = error_code
            self.out += self.h2.data_to_send()
            self.out += f.serialize()
            self.goaway_last = f.last_stream_id
            self.end_watches = end_watches
            self.closing = self.closing or mode == 'close'
            self.cv.notify_all()
        self._record(goaway={'mode': mode, 'error_code': error_code, 'last_stream_id': f.last_stream_id})
        self._wake()

    def freeze(self):
        with self.cv:
            self.frozen = True
        self._record(frozen=True)
        self._wake()

    def wait_closed(self, timeout):
        with self.cv:
            self.cv.wait_for(lambda: self.dead, timeout)


class _H2Request(_Handler):
    """One HTTP/2 request stream, answered by _Handler's code through the HTTP/2 transport methods below
    (on the stream's own thread; _H2Conn sends). Not constructed like a socketserver handler."""
    http = '2'

    def __init__(self, conn, st):  # noqa: the base class's __init__ would serve a socket
        self.conn, self.st, self.fake, self._entry = conn, st, conn.fake, None
        self._conn_id, self._sid, self.client_address = conn.id, st.sid, conn.peer
        pseudo = {k: v for k, v in st.headers if k.startswith(':')}
        self.command, self.path = pseudo.get(':method', 'GET'), pseudo.get(':path', '/')
        self.request_version = 'HTTP/2'
        self.headers = email.message.Message()
        for k, v in st.headers:
            if not k.startswith(':') and k != 'content-length':
                self.headers[k] = v
        self.headers['Content-Length'] = str(len(st.body))
        self.rfile = io.BytesIO(bytes(st.body))
        self._resp, self._headers_sent = None, False

    def run(self):
        try:
            self._dispatch(self.command)
        finally:
            self.conn.stream_done(self.st, self._headers_sent)

    def _status_line(self, code, message):
        self._resp = [(':status', str(code)), ('server', self.version_string()),
                      ('date', self.date_time_string())]

    def send_header(self, keyword, value):
        if keyword.lower() not in _HOP_HEADERS:
            self._resp.append((keyword.lower(), str(value)))

    def end_headers(self):
        self.conn.send_headers(self.st, self._resp)
        self._headers_sent = True

    def _w(self, data):
        self.conn.send_data(self.st, data)

    def _chunk(self, data, split=False):
        self.conn.send_data(self.st, data)  # a DATA frame per piece: split or not, the framing is h2's

    def _end_chunks(self):
        self.conn.send_data(self.st, b'', end=True)

    def _ending(self):
        return self.conn.end_watches

    def _peer_closed(self):
        return self.st.reset or self.conn.dead

    def _reset(self):
        """RST_STREAM (INTERNAL_ERROR): this stream ends abruptly, the connection and its other streams live."""
        self.conn.reset_stream(self.st, h2.errors.ErrorCodes.INTERNAL_ERROR)
        raise _Abort()


class _Stream:
    """Writes watch events as chunks, applying split/big/stall/reset faults."""

    def __init__(self, handler, k, faults):
        self.h, self.k, self.faults = handler, k, faults
        self.rng = random.Random(faults.get('split', {}).get('seed'))

    def event(self, etype, obj):
        if etype in ('ADDED', 'MODIFIED', 'DELETED'):
            obj = _pad(obj, self.faults)
        line = _dumps({'type': etype, 'object': obj}) + b'\n'
        h, f, entry = self.h, self.faults, self.h._entry
        if 'stall' in f and entry['events'] >= int(f['stall'].get('after', 0)):
            h._stall(f['stall'])
        if 'reset' in f and entry['events'] >= int(f['reset'].get('after', 0)):
            self._chunk(line[:len(line) // 2])
            h._reset()
        if 'split' in f:
            for piece in _pieces(line, f['split'], self.rng):
                h._chunk(piece, split=True)
                time.sleep(float(f['split'].get('gap', 0.002)))
        else:
            h._chunk(line)
        entry['events'] += 1
        rv = (obj.get('metadata') or {}).get('resourceVersion') if etype != 'ERROR' else None
        if rv:
            entry['last_rv'] = rv

    def _chunk(self, data):
        self.h._chunk(data)

    def end(self, why):
        self.h._end_chunks()
        self.h._entry['end'] = why


def _pieces(data, params, rng=None):
    rng = rng or random.Random(params.get('seed'))
    sizes, mx = params.get('sizes'), max(1, int(params.get('max', 64)))
    out, i, n = [], 0, 0
    while i < len(data):
        size = int(sizes[n % len(sizes)]) if sizes else rng.randint(1, mx)
        out.append(data[i:i + max(1, size)])
        i += max(1, size)
        n += 1
    return out


def _pad(obj, faults):
    if 'big' not in faults:
        return obj
    obj = copy.deepcopy(obj)
    ann = obj.setdefault('metadata', {}).setdefault('annotations', {}) or {}
    obj['metadata']['annotations'] = ann
    ann['fakeapi.ekglue.io/padding'] = 'x' * int(faults['big'].get('size', 20000))
    return obj


def _bookmark(k, rv, initial_end=False):
    md = {'resourceVersion': str(rv), 'creationTimestamp': None}
    if initial_end:
        md['annotations'] = {'k8s.io/initial-events-end': 'true'}
    return {'kind': k.kind, 'apiVersion': k.api_version, 'metadata': md}


def _project(k, ev, match):
    """What a watch with this filter sees of ev: (type, object) or None."""
    if ev.kind != k.kind:
        return None
    if ev.type == 'ADDED':
        return ('ADDED', ev.obj) if match(ev.obj) else None
    if ev.type == 'DELETED':
        return ('DELETED', ev.obj) if match(ev.obj) else None
    new_ok, old_ok = match(ev.obj), match(ev.prev)
    if new_ok:
        return ('MODIFIED' if old_ok else 'ADDED', ev.obj)
    if old_ok:
        old = copy.deepcopy(ev.prev)
        old['metadata']['resourceVersion'] = str(ev.rv)
        return ('DELETED', old)
    return None


# ---- object factories -----------------------------------------------------------------------

def service(name, namespace='default', ports=(('http', 80, 8080),), labels=None, cluster_ip='10.96.0.10',
            **spec):
    """A Service; ports are (name, port, targetPort) triples."""
    s = {'clusterIP': cluster_ip, 'type': 'ClusterIP',
         'ports': [{'name': n, 'protocol': 'TCP', 'port': p, 'targetPort': t} for n, p, t in ports]}
    s.update(spec)
    return {'kind': 'Service', 'metadata': {'name': name, 'namespace': namespace, 'labels': labels or {}},
            'spec': s}


def endpointslice(name, namespace='default', service_name=None, addresses=('10.0.0.1',), port=8080,
                  port_name='http', n_endpoints=None, ready=True, zone=None, node_name=None,
                  address_type='IPv4'):
    """An EndpointSlice; n_endpoints=300 gives one of ~40 KiB."""
    if n_endpoints is not None:
        addresses = [f'10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}' for i in range(1, n_endpoints + 1)]
    eps = []
    for a in addresses:
        ep = {'addresses': [a], 'conditions': {'ready': ready, 'serving': ready, 'terminating': False}}
        if zone:
            ep['zone'] = zone
        if node_name:
            ep['nodeName'] = node_name
        eps.append(ep)
    return {'kind': 'EndpointSlice', 'addressType': address_type,
            'metadata': {'name': name, 'namespace': namespace,
                         'labels': {'kubernetes.io/service-name': service_name or name.rsplit('-', 1)[0],
                                    'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io'}},
            'endpoints': eps, 'ports': [{'name': port_name, 'port': port, 'protocol': 'TCP'}]}


def node(name, zone='zone-a', region='region-1', labels=None):
    lb = {'kubernetes.io/hostname': name, 'topology.kubernetes.io/zone': zone,
          'topology.kubernetes.io/region': region}
    lb.update(labels or {})
    return {'kind': 'Node', 'metadata': {'name': name, 'labels': lb}, 'spec': {}}


# ---- CLI ------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description='Fake Kubernetes API server for ekglue tests.')
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--tls', action='store_true', help='HTTPS with a CA generated at startup (openssl CLI)')
    ap.add_argument('--cert-dir', help='where ca.crt, server.crt, server.key are (reused when all three exist: '
                    'a restarted server keeps its certificate) or are written (default: a temp dir)')
    ap.add_argument('--http2', action='store_true', help='offer HTTP/2: ALPN h2 with --tls, else h2c with '
                    'prior knowledge (python3-h2)')
    ap.add_argument('--token-file', help='require "Authorization: Bearer <file content>"; created if missing')
    ap.add_argument('--token', help='write this token into the token file at startup')
    ap.add_argument('--history', type=int, default=1000, help='events kept before compaction')
    ap.add_argument('--bookmark-interval', type=float, default=60.0)
    ap.add_argument('--too-old', choices=('http', 'event'), default='http')
    ap.add_argument('--continue-ttl', type=float, default=None)
    ap.add_argument('--watch-timeout', type=float, default=1800.0, help='when timeoutSeconds is absent')
    ap.add_argument('--start-rv', type=int, default=100)
    ap.add_argument('--load', action='append', default=[], help='YAML/JSON file of objects (repeatable)')
    ap.add_argument('--kubeconfig', help='write a kubeconfig for this server here')
    ap.add_argument('--verbose', action='store_true')
    a = ap.parse_args(argv)
    fake = FakeAPIServer(a.host, a.port, tls=a.tls, token_file=a.token_file, token=a.token, history=a.history,
                         bookmark_interval=a.bookmark_interval, too_old=a.too_old, continue_ttl=a.continue_ttl,
                         watch_timeout=a.watch_timeout, start_rv=a.start_rv, cert_dir=a.cert_dir,
                         http2=a.http2, verbose=a.verbose)
    for f in a.load:
        fake.load(f)
    # Block SIGTERM/SIGINT in every thread (the server threads inherit the mask) and take them with
    # sigwait() below: a Python handler would run late when the kernel picks a non-main thread.
    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    fake.start()
    print(f'listening {a.host} {fake.port}', flush=True)
    print(f'url {fake.url}', flush=True)
    if fake.ca_path:
        print(f'ca {fake.ca_path}', flush=True)
    if fake.token_file:
        print(f'token-file {fake.token_file}', flush=True)
    if a.kubeconfig:
        print(f'kubeconfig {fake.write_kubeconfig(a.kubeconfig)}', flush=True)
    signal.sigwait(signals)
    fake.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
