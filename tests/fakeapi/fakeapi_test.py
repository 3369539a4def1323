#!/usr/bin/python3
"""Tests of tests/fakeapi/fakeapi.py with plain stdlib clients (http.client, raw sockets, ssl).

Each test class starts one fake on 127.0.0.1 (port 0) and stops it; every wait is bounded.
Run: /usr/bin/python3 tests/fakeapi/fakeapi_test.py (ctest target fakeapi/fakeapi_test).
"""

import base64
import gzip
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import types
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakeapi  # noqa: E402
from fakeapi import endpointslice, node, service  # noqa: E402

try:  # the HTTP/2 tests' client
    import h2.config
    import h2.connection
    import h2.errors
    import h2.events
except ImportError:
    h2 = None

HERE = os.path.dirname(os.path.abspath(__file__))
SVC = '/api/v1/services'
EPS = '/apis/discovery.k8s.io/v1/endpointslices'
NODES = '/api/v1/nodes'


def request(fake, path, headers=None, method='GET', body=None, ctx=None, timeout=10):
    """-> (status, headers dict (lower-case names), decoded JSON or raw bytes)."""
    if fake.tls:
        c = http.client.HTTPSConnection('127.0.0.1', fake.port, timeout=timeout, context=ctx)
    else:
        c = http.client.HTTPConnection('127.0.0.1', fake.port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if hdrs.get('content-type', '').startswith('application/json') and not ('watch=' in path and r.status == 200):
            data = json.loads(gzip.decompress(data) if hdrs.get('content-encoding') == 'gzip' else data)
        return r.status, hdrs, data
    finally:
        c.close()


class Watch:
    """A watch read line by line through http.client (which undoes the chunking)."""

    def __init__(self, fake, path, headers=None, ctx=None, timeout=5):
        if fake.tls:
            self.conn = http.client.HTTPSConnection('127.0.0.1', fake.port, timeout=timeout, context=ctx)
        else:
            self.conn = http.client.HTTPConnection('127.0.0.1', fake.port, timeout=timeout)
        self.conn.request('GET', path, headers=headers or {})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status

    def next(self):
        line = self.resp.readline()
        return json.loads(line) if line else None

    def events(self, n):
        return [self.next() for _ in range(n)]

    def until(self, pred, limit=100):
        for _ in range(limit):
            ev = self.next()
            if ev is None or pred(ev):
                return ev
        return None

    def close(self):
        self.conn.close()


class RawStream:
    """A raw HTTP/1.1 client that keeps chunk boundaries visible."""

    def __init__(self, port, path, timeout=5.0, headers='', ctx=None):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        if ctx:
            self.sock = ctx.wrap_socket(self.sock, server_hostname='127.0.0.1')
        self.sock.sendall(f'GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n'.encode())
        self.buf = b''
        head = self._until(b'\r\n\r\n')
        lines = head.decode().split('\r\n')
        self.status = int(lines[0].split()[1])
        self.headers = {ln.split(':', 1)[0].lower(): ln.split(':', 1)[1].strip() for ln in lines[1:] if ln}

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError('connection closed')
        self.buf += data

    def _until(self, sep):
        while sep not in self.buf:
            self._fill()
        out, self.buf = self.buf.split(sep, 1)
        return out

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def chunk(self):
        """The next chunk's payload (b'' for the terminating chunk)."""
        size = int(self._until(b'\r\n'), 16)
        data = self._exact(size)
        if self._exact(2) != b'\r\n':
            raise ValueError('bad chunk trailer')
        return data

    def body(self):
        return self._exact(int(self.headers['content-length']))

    def close(self):
        self.sock.close()


def objects_of(lst):
    return [(i['metadata'].get('namespace'), i['metadata']['name']) for i in lst['items']]


class Base(unittest.TestCase):
    kwargs = {}

    def setUp(self):
        self.fake = fakeapi.FakeAPIServer(bookmark_interval=0.5, too_large_wait=0.3, **self.kwargs).start()

    def tearDown(self):
        self.fake.stop()


class ListTest(Base):
    def test_list_shape_sorting_and_kinds(self):
        f = self.fake
        f.create(service('b', 'z'))
        f.create(service('a', 'default'))
        f.create(service('c', 'a-b'))  # '-' < '/' bytewise: "a-b/c" < "default/a" < "z/b"
        f.create(node('n1'))
        f.create(endpointslice('a-1', service_name='a'))
        code, hdrs, body = request(f, SVC)
        self.assertEqual(code, 200)
        self.assertEqual(hdrs['content-type'], 'application/json')
        self.assertEqual((body['kind'], body['apiVersion']), ('ServiceList', 'v1'))
        self.assertEqual(body['metadata']['resourceVersion'], f.rv)
        self.assertEqual(objects_of(body), [('a-b', 'c'), ('default', 'a'), ('z', 'b')])
        self.assertNotIn('kind', body['items'][0])  # list items carry no kind/apiVersion
        code, _, body = request(f, EPS)
        self.assertEqual((body['kind'], body['apiVersion']), ('EndpointSliceList', 'discovery.k8s.io/v1'))
        code, _, body = request(f, NODES)
        self.assertEqual((body['kind'], objects_of(body)), ('NodeList', [(None, 'n1')]))
        code, _, body = request(f, '/api/v1/namespaces/z/services')
        self.assertEqual(objects_of(body), [('z', 'b')])
        code, _, body = request(f, '/api/v1/namespaces/z/services/b')
        self.assertEqual((code, body['kind'], body['metadata']['name']), (200, 'Service', 'b'))
        code, _, body = request(f, '/api/v1/namespaces/z/services/nope')
        self.assertEqual((code, body['kind'], body['reason']), (404, 'Status', 'NotFound'))
        code, _, body = request(f, '/api/v1/namespaces/z/nodes')
        self.assertEqual(code, 404)
        code, _, body = request(f, SVC, method='POST', body=b'{}')
        self.assertEqual(code, 405)

    def test_resource_versions(self):
        f = self.fake
        a = f.create(service('a'))
        b = f.create(node('n'))
        self.assertEqual(int(b['metadata']['resourceVersion']), int(a['metadata']['resourceVersion']) + 1)
        self.assertEqual(f.update(service('a'))['metadata']['resourceVersion'], a['metadata']['resourceVersion'])
        c = f.update(service('a', labels={'x': '1'}))
        self.assertEqual(c['metadata']['resourceVersion'], str(int(b['metadata']['resourceVersion']) + 1))
        self.assertEqual(c['metadata']['uid'], a['metadata']['uid'])
        self.assertEqual(f.rv, c['metadata']['resourceVersion'])

    def test_label_and_field_selectors(self):
        f = self.fake
        f.create(service('a', labels={'app': 'web', 'tier': 'front'}))
        f.create(service('b', labels={'app': 'db'}))
        f.create(service('c'))
        cases = {'app=web': ['a'], 'app==web': ['a'], 'app!=web': ['b', 'c'], 'app': ['a', 'b'], '!app': ['c'],
                 'app,!tier': ['b'], 'app in (web, db)': ['a', 'b'], 'app notin (web)': ['b', 'c'],
                 'app=web,tier=front': ['a'], 'app=web,tier!=front': []}
        for sel, want in cases.items():
            code, _, body = request(f, SVC + '?labelSelector=' + urllib.request.quote(sel))
            self.assertEqual((sel, code, [n for _, n in objects_of(body)]), (sel, 200, want))
        code, _, body = request(f, SVC + '?labelSelector=' + urllib.request.quote('a b c'))
        self.assertEqual((code, body['reason']), (400, 'BadRequest'))
        code, _, body = request(f, SVC + '?fieldSelector=metadata.name%3Db')
        self.assertEqual([n for _, n in objects_of(body)], ['b'])

    def test_pagination_is_a_snapshot(self):
        f = self.fake
        for i in range(5):
            f.create(service(f's{i}'))
        code, _, p1 = request(f, SVC + '?limit=2')
        rv = p1['metadata']['resourceVersion']
        self.assertEqual((objects_of(p1), p1['metadata']['remainingItemCount']),
                         ([('default', 's0'), ('default', 's1')], 3))
        token = p1['metadata']['continue']
        raw = json.loads(base64.urlsafe_b64decode(token + '=' * (-len(token) % 4)))
        self.assertEqual(raw, {'v': 'meta.k8s.io/v1', 'rv': int(rv), 'start': 'default/s1\x00'})
        # changes between pages are not visible: s2 keeps its old state, s9 does not appear, s3 stays
        f.update(service('s2', labels={'changed': 'yes'}))
        f.create(service('s9'))
        f.delete('Service', 'default', 's3')
        code, _, p2 = request(f, SVC + '?limit=2&continue=' + token)
        self.assertEqual(p2['metadata']['resourceVersion'], rv)
        self.assertEqual(objects_of(p2), [('default', 's2'), ('default', 's3')])
        self.assertEqual(p2['items'][0]['metadata']['labels'], {})
        code, _, p3 = request(f, SVC + '?limit=2&continue=' + p2['metadata']['continue'])
        self.assertEqual((objects_of(p3), p3['metadata']['resourceVersion']), ([('default', 's4')], rv))
        self.assertNotIn('continue', p3['metadata'])
        # with a selector: no remainingItemCount
        code, _, s1 = request(f, SVC + '?limit=1&labelSelector=!changed')
        self.assertNotIn('remainingItemCount', s1['metadata'])
        self.assertIn('continue', s1['metadata'])
        # resourceVersion=0 may ignore limit, like the watch cache
        code, _, all0 = request(f, SVC + '?limit=2&resourceVersion=0')
        self.assertEqual((len(all0['items']), 'continue' in all0['metadata']), (5, False))

    def test_continue_expired_by_compaction_and_ttl(self):
        f = self.fake
        for i in range(3):
            f.create(service(f's{i}'))
        _, _, p1 = request(f, SVC + '?limit=1')
        f.create(node('n'))
        f.compact()
        code, _, body = request(f, SVC + '?limit=1&continue=' + p1['metadata']['continue'])
        self.assertEqual(code, 410)
        self.assertEqual({k: body[k] for k in ('kind', 'apiVersion', 'status', 'reason', 'code')},
                         {'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure', 'reason': 'Expired',
                          'code': 410})
        self.assertIn('continue parameter is too old', body['message'])
        f.configure(continue_ttl=0.3)
        _, _, p1 = request(f, SVC + '?limit=1')
        self.assertEqual(request(f, SVC + '?limit=1&continue=' + p1['metadata']['continue'])[0], 200)
        time.sleep(0.5)
        self.assertEqual(request(f, SVC + '?limit=1&continue=' + p1['metadata']['continue'])[0], 410)
        code, _, body = request(f, SVC + '?limit=1&resourceVersion=5&continue=' + p1['metadata']['continue'])
        self.assertEqual((code, body['reason']), (400, 'BadRequest'))
        self.assertEqual(request(f, SVC + '?limit=1&continue=garbage!')[0], 400)

    def test_exact_and_too_large_resource_versions(self):
        f = self.fake
        a = f.create(service('a'))
        f.create(service('b'))
        rv_a = a['metadata']['resourceVersion']
        code, _, body = request(f, SVC + f'?resourceVersion={rv_a}&resourceVersionMatch=Exact')
        self.assertEqual((code, objects_of(body), body['metadata']['resourceVersion']), (200, [('default', 'a')], rv_a))
        code, _, body = request(f, SVC + '?resourceVersion=99999')
        self.assertEqual((code, body['reason'], body['details']['causes'][0]['reason']),
                         (504, 'Timeout', 'ResourceVersionTooLarge'))
        f.compact()
        code, _, body = request(f, SVC + f'?resourceVersion={rv_a}&resourceVersionMatch=Exact')
        self.assertEqual((code, body['reason']), (410, 'Expired'))

    def test_gzip_for_large_lists_only(self):
        f = self.fake
        f.create(endpointslice('big-1', n_endpoints=2000))
        code, hdrs, body = request(f, EPS, headers={'Accept-Encoding': 'gzip'})
        self.assertEqual((code, hdrs.get('content-encoding')), (200, 'gzip'))
        self.assertEqual(len(body['items'][0]['endpoints']), 2000)
        code, hdrs, body = request(f, EPS)
        self.assertNotIn('content-encoding', hdrs)
        code, hdrs, body = request(f, SVC, headers={'Accept-Encoding': 'gzip'})
        self.assertNotIn('content-encoding', hdrs)

    def test_keep_alive(self):
        f = self.fake
        c = http.client.HTTPConnection('127.0.0.1', f.port, timeout=5)
        for path in (SVC, NODES, SVC + '?watch=1&timeoutSeconds=1', EPS):
            c.request('GET', path)
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
        c.close()
        peers = {e['peer'] for e in f.requests()}
        self.assertEqual(len(peers), 1, 'all four requests on one connection')


class WatchTest(Base):
    def test_watch_from_rv_sees_only_later_events(self):
        f = self.fake
        f.create(service('old'))
        rv = f.rv
        w = Watch(f, SVC + f'?watch=1&resourceVersion={rv}&timeoutSeconds=5')
        self.assertEqual(w.status, 200)
        self.assertEqual(w.resp.getheader('Content-Type'), 'application/json')
        self.assertEqual(w.resp.getheader('Transfer-Encoding'), 'chunked')
        self.assertTrue(f.wait_for_watchers(1, SVC))
        f.create(service('a'))
        f.update(service('a', labels={'v': '2'}))
        f.create(node('n'))  # other kinds are not seen
        f.delete('Service', 'default', 'a')
        evs = w.events(3)
        self.assertEqual([e['type'] for e in evs], ['ADDED', 'MODIFIED', 'DELETED'])
        self.assertEqual(evs[0]['object']['kind'], 'Service')
        self.assertEqual(evs[0]['object']['apiVersion'], 'v1')
        self.assertEqual(int(evs[0]['object']['metadata']['resourceVersion']), int(rv) + 1)
        dele = evs[2]['object']
        self.assertEqual(dele['metadata']['labels'], {'v': '2'})  # last state ...
        self.assertEqual(dele['metadata']['resourceVersion'], f.rv)  # ... with a new RV
        w.close()

    def test_watch_without_rv_gets_synthetic_added_then_live(self):
        f = self.fake
        f.create(service('b'))
        f.create(service('a'))
        for i, q in enumerate(('', '&resourceVersion=0')):
            w = Watch(f, SVC + '?watch=true&timeoutSeconds=5' + q)
            names = sorted(o['metadata']['name'] for o in f.objects('Service'))
            evs = w.events(len(names))
            self.assertEqual([(e['type'], e['object']['metadata']['name']) for e in evs],
                             [('ADDED', n) for n in names])
            self.assertTrue(f.wait_for_watchers(1, SVC))
            f.create(service(f'live{i}'))
            ev = w.next()
            self.assertEqual((ev['type'], ev['object']['metadata']['name']), ('ADDED', f'live{i}'))
            self.assertEqual(ev['object']['metadata']['resourceVersion'], f.rv)
            w.close()

    def test_send_initial_events_ends_with_annotated_bookmark(self):
        f = self.fake
        f.create(service('a'))
        w = Watch(f, SVC + '?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan'
                  '&allowWatchBookmarks=true&timeoutSeconds=5')
        a, bm = w.events(2)
        self.assertEqual((a['type'], bm['type']), ('ADDED', 'BOOKMARK'))
        self.assertEqual(bm['object']['metadata']['annotations'], {'k8s.io/initial-events-end': 'true'})
        w.close()

    def test_bookmarks(self):
        f = self.fake
        rv = f.rv
        w = Watch(f, SVC + f'?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=5')
        t0 = time.monotonic()
        bm = w.next()
        self.assertGreater(time.monotonic() - t0, 0.3)
        self.assertEqual(bm, {'type': 'BOOKMARK', 'object': {'kind': 'Service', 'apiVersion': 'v1', 'metadata': {
            'resourceVersion': rv, 'creationTimestamp': None}}})
        f.create(node('n'))  # moves the global RV: the next bookmark reports it
        bm = w.next()
        self.assertEqual((bm['type'], bm['object']['metadata']['resourceVersion']), ('BOOKMARK', f.rv))
        w.close()
        # without allowWatchBookmarks: nothing at all until the timeout
        w = Watch(f, SVC + f'?watch=1&resourceVersion={f.rv}&timeoutSeconds=1.5')
        self.assertIsNone(w.next())
        w.close()

    def test_timeout_ends_stream_cleanly(self):
        f = self.fake
        s = RawStream(f.port, SVC + f'?watch=1&resourceVersion={f.rv}&timeoutSeconds=1')
        t0 = time.monotonic()
        self.assertEqual(s.chunk(), b'')  # terminating chunk
        self.assertAlmostEqual(time.monotonic() - t0, 1.0, delta=0.5)
        s.sock.sendall(b'GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\n\r\n')  # connection still usable
        self.assertTrue(s._until(b'\r\n').startswith(b'HTTP/1.1 200'))
        s.close()
        self.assertEqual(f.requests(prefix=SVC)[-1]['end'], 'timeout')

    def test_one_event_per_chunk(self):
        f = self.fake
        f.create(service('a'))
        s = RawStream(f.port, SVC + '?watch=1&timeoutSeconds=2')
        c = s.chunk()
        self.assertTrue(c.endswith(b'\n') and c.count(b'\n') == 1)
        self.assertEqual(json.loads(c)['type'], 'ADDED')
        s.close()

    def test_too_old_http_and_event_forms(self):
        f = self.fake
        f.create(service('a'))
        old = f.rv
        f.create(service('b'))
        f.compact()
        code, _, body = request(f, SVC + f'?watch=1&resourceVersion={int(old) - 1}')
        self.assertEqual((code, body['kind'], body['reason'], body['code']), (410, 'Status', 'Expired', 410))
        self.assertIn('too old resource version', body['message'])
        f.configure(too_old='event')
        s = RawStream(f.port, SVC + f'?watch=1&resourceVersion={int(old) - 1}')
        self.assertEqual(s.status, 200)
        ev = json.loads(s.chunk())
        self.assertEqual((ev['type'], ev['object']['kind'], ev['object']['code'], ev['object']['reason']),
                         ('ERROR', 'Status', 410, 'Expired'))
        self.assertEqual(s.chunk(), b'')
        s.close()
        # the current RV and the compaction point itself are still fine
        w = Watch(f, SVC + f'?watch=1&resourceVersion={f.rv}&timeoutSeconds=1')
        self.assertEqual(w.status, 200)
        w.close()

    def test_history_is_bounded(self):
        f = self.fake
        f.set_history(5)
        first = f.create(service('s0'))['metadata']['resourceVersion']
        for i in range(1, 10):
            f.create(service(f's{i}'))
        self.assertEqual(request(f, SVC + f'?watch=1&resourceVersion={first}')[0], 410)
        w = Watch(f, SVC + f'?watch=1&resourceVersion={int(f.rv) - 5}&timeoutSeconds=2')
        self.assertEqual([e['object']['metadata']['name'] for e in w.events(5)], [f's{i}' for i in range(5, 10)])
        w.close()

    def test_namespace_and_selector_transitions(self):
        f = self.fake
        f.create(service('a', 'ns1', labels={'app': 'web'}))
        rv = f.rv
        w = Watch(f, f'/api/v1/namespaces/ns1/services?watch=1&resourceVersion={rv}'
                  '&labelSelector=app%3Dweb&timeoutSeconds=5')
        self.assertTrue(f.wait_for_watchers(1))
        f.create(service('a', 'ns2', labels={'app': 'web'}))  # other namespace: unseen
        f.create(service('x', 'ns1'))  # not selected: unseen
        before = f.update(service('a', 'ns1', labels={'app': 'web', 'v': '2'}))
        left = f.update(service('a', 'ns1', labels={'app': 'db'}))  # leaves the selector
        f.update(service('a', 'ns1', labels={'app': 'web'}))  # comes back
        evs = w.events(3)
        self.assertEqual([e['type'] for e in evs], ['MODIFIED', 'DELETED', 'ADDED'])
        gone = evs[1]['object']
        self.assertEqual(gone['metadata']['labels'], before['metadata']['labels'])  # previous state
        self.assertEqual(gone['metadata']['resourceVersion'], left['metadata']['resourceVersion'])  # new RV
        w.close()

    def test_too_large_rv_waits_then_504(self):
        f = self.fake
        code, _, body = request(f, SVC + '?watch=1&resourceVersion=999999')
        self.assertEqual((code, body['reason']), (504, 'Timeout'))

    def test_close_watches_and_fell_behind(self):
        f = self.fake
        w1 = Watch(f, SVC + f'?watch=1&resourceVersion={f.rv}')
        w2 = Watch(f, NODES + f'?watch=1&resourceVersion={f.rv}')
        self.assertTrue(f.wait_for_watchers(2))
        f.close_watches()
        self.assertIsNone(w1.next())
        self.assertIsNone(w2.next())
        w1.close()
        w2.close()
        w = Watch(f, SVC + f'?watch=1&resourceVersion={f.rv}')
        self.assertTrue(f.wait_for_watchers(1))
        f.close_watches(too_old=True)
        ev = w.next()
        self.assertEqual((ev['type'], ev['object']['code']), ('ERROR', 410))
        self.assertIsNone(w.next())
        w.close()

    def test_stop_ends_open_watches(self):
        f = self.fake
        s = RawStream(f.port, SVC + f'?watch=1&resourceVersion={f.rv}')
        self.assertTrue(f.wait_for_watchers(1))
        t0 = time.monotonic()
        f.stop()
        self.assertEqual(s.chunk(), b'')
        self.assertLess(time.monotonic() - t0, 5)
        s.close()

    def test_client_going_away_is_noticed(self):
        f = self.fake
        w = Watch(f, SVC + f'?watch=1&resourceVersion={f.rv}')
        self.assertTrue(f.wait_for_watchers(1))
        w.close()
        deadline = time.monotonic() + 5
        while f.watches() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(f.watches(), [])


class FaultTest(Base):
    def test_split_events_across_chunks(self):
        f = self.fake
        f.create(service('a'))
        f.create(service('b'))
        f.arm('split', prefix=SVC, watch=True, max=5, seed=7)
        s = RawStream(f.port, SVC + '?watch=1&timeoutSeconds=2')
        chunks = []
        while True:
            c = s.chunk()
            if not c:
                break
            chunks.append(c)
        s.close()
        data = b''.join(chunks)
        self.assertGreater(len(chunks), 20)
        self.assertTrue(all(1 <= len(c) <= 5 for c in chunks))
        self.assertEqual([json.loads(line)['object']['metadata']['name'] for line in data.splitlines()], ['a', 'b'])
        # the next watch is unaffected (count=1)
        s = RawStream(f.port, SVC + '?watch=1&timeoutSeconds=1')
        self.assertEqual(json.loads(s.chunk())['type'], 'ADDED')
        s.close()
        # split also applies to list bodies (Content-Length framing)
        f.arm('split', prefix=NODES, sizes=[3])
        code, _, body = request(f, NODES)
        self.assertEqual((code, body['kind']), (200, 'NodeList'))

    def test_big_events(self):
        f = self.fake
        rv = f.rv
        w = Watch(f, EPS + f'?watch=1&resourceVersion={rv}&timeoutSeconds=5')
        self.assertTrue(f.wait_for_watchers(1))
        f.create(endpointslice('web-1', service_name='web', n_endpoints=300))
        ev = w.next()
        self.assertGreater(len(json.dumps(ev)), 16 * 1024)
        self.assertEqual(len(ev['object']['endpoints']), 300)
        w.close()
        f.arm('big', prefix=SVC, size=40000)
        f.create(service('a'))
        s = RawStream(f.port, SVC + '?watch=1&timeoutSeconds=1')
        c = s.chunk()
        self.assertGreater(len(c), 40000)
        self.assertEqual(len(json.loads(c)['object']['metadata']['annotations']['fakeapi.ekglue.io/padding']), 40000)
        s.close()

    def test_stall(self):
        f = self.fake
        f.create(service('a'))
        f.arm('stall', prefix=SVC, after=1)
        s = RawStream(f.port, SVC + '?watch=1&allowWatchBookmarks=true&timeoutSeconds=1', timeout=2.5)
        self.assertEqual(json.loads(s.chunk())['type'], 'ADDED')
        f.create(service('b'))
        with self.assertRaises(socket.timeout):  # no event, no bookmark, no end at timeoutSeconds
            s.chunk()
        s.close()
        f.arm('stall', prefix=NODES, seconds=0.5)  # then an abrupt close
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            request(f, NODES)

    def test_reset_mid_event(self):
        f = self.fake
        f.create(service('a'))
        f.arm('reset', prefix=SVC, watch=True)
        s = RawStream(f.port, SVC + '?watch=1&timeoutSeconds=5')
        half = s.chunk()
        self.assertFalse(half.endswith(b'\n'))
        with self.assertRaises(ConnectionResetError):
            s.chunk()
        s.close()
        self.assertIsNotNone(f.wait_for_request(lambda e: e['end'] == 'aborted', prefix=SVC))
        f.arm('reset', prefix=NODES)
        f.create(node('n'))
        with self.assertRaises((ConnectionError, http.client.IncompleteRead)):
            request(f, NODES)

    def test_5xx_n_times(self):
        f = self.fake
        f.arm('5xx', prefix=SVC, count=2, retry_after=1)
        codes = []
        for _ in range(3):
            code, hdrs, body = request(f, SVC)
            codes.append(code)
            if code == 503:
                self.assertEqual((body['kind'], body['reason'], hdrs['retry-after']),
                                 ('Status', 'ServiceUnavailable', '1'))
        self.assertEqual(codes, [503, 503, 200])
        self.assertEqual(request(f, NODES)[0], 200)  # prefix did not match
        f.arm('error', prefix=SVC, count=None, code=500, watch=True)
        self.assertEqual(request(f, SVC)[0], 200)  # lists unaffected
        self.assertEqual(request(f, SVC + '?watch=1')[0], 500)
        self.assertEqual(request(f, SVC + '?watch=1')[0], 500)
        f.disarm()
        self.assertEqual(request(f, SVC + '?watch=1&timeoutSeconds=0.2')[0], 200)

    def test_slow(self):
        f = self.fake
        f.arm('slow', prefix=SVC, delay=0.7)
        t0 = time.monotonic()
        self.assertEqual(request(f, SVC)[0], 200)
        self.assertGreater(time.monotonic() - t0, 0.6)
        t0 = time.monotonic()
        request(f, SVC)
        self.assertLess(time.monotonic() - t0, 0.5)

    def test_too_old_storm(self):
        f = self.fake
        f.create(service('a'))
        f.arm('storm', prefix=SVC, count=3)
        for form in ('http', 'http', 'event'):
            f.configure(too_old=form)
            _, _, lst = request(f, SVC)  # relist gives a fresh RV ...
            rv = lst['metadata']['resourceVersion']
            code, _, body = request(f, SVC + f'?watch=1&resourceVersion={rv}')  # ... still too old
            if form == 'http':
                self.assertEqual((code, body['code']), (410, 410))
            else:
                self.assertEqual((code, json.loads(body.split(b'\n')[0])['object']['code']), (200, 410))
        self.assertEqual(f.compacted_rv, f.rv)
        rv = request(f, SVC)[2]['metadata']['resourceVersion']
        self.assertEqual(request(f, SVC + f'?watch=1&resourceVersion={rv}&timeoutSeconds=0.2')[0], 200)

    def test_fault_per_connection_on_stream_start(self):
        f = self.fake
        f.arm('split', prefix=SVC, count=None, max=700, gap=0.001)
        f.arm('big', prefix=SVC, count=None, size=17000)
        f.create(service('a'))
        w = Watch(f, SVC + '?watch=1&timeoutSeconds=3')
        ev = w.next()
        self.assertEqual(ev['object']['metadata']['name'], 'a')
        w.close()
        self.assertEqual(f.requests(prefix=SVC)[-1]['faults'], ['big', 'split'])


class AuthTLSTest(Base):
    def setUp(self):
        if not shutil.which('openssl'):
            self.skipTest('openssl CLI not installed')
        self.dir = tempfile.mkdtemp()
        self.token_file = os.path.join(self.dir, 'token')
        with open(self.token_file, 'w') as fh:
            fh.write('tok-1\n')
        self.fake = fakeapi.FakeAPIServer(tls=True, token_file=self.token_file, bookmark_interval=0.5).start()
        self.ctx = ssl.create_default_context(cafile=self.fake.ca_path)

    def tearDown(self):
        super().tearDown()
        shutil.rmtree(self.dir)

    def auth(self, tok):
        return {'Authorization': f'Bearer {tok}'}

    def test_tls_and_token(self):
        f = self.fake
        self.assertTrue(f.url.startswith('https://127.0.0.1:'))
        self.assertEqual(request(f, SVC, self.auth('tok-1'), ctx=self.ctx)[0], 200)
        code, _, body = request(f, SVC, ctx=self.ctx)
        self.assertEqual((code, body['kind'], body['reason'], body['code']), (401, 'Status', 'Unauthorized', 401))
        self.assertEqual(request(f, SVC, self.auth('wrong'), ctx=self.ctx)[0], 401)
        # verification by name works too, and a client without the CA fails
        c = http.client.HTTPSConnection('localhost', f.port, timeout=5, context=self.ctx)
        c.request('GET', '/version')
        self.assertEqual(c.getresponse().status, 401)
        c.close()
        with self.assertRaises(ssl.SSLError):
            request(f, SVC, ctx=ssl.create_default_context())
        # control endpoints need no token
        self.assertEqual(request(f, '/fake/info', ctx=self.ctx)[2]['ca'], f.ca_path)

    def test_rotation(self):
        f = self.fake
        w = Watch(f, SVC + '?watch=1&allowWatchBookmarks=true&timeoutSeconds=5', self.auth('tok-1'), ctx=self.ctx)
        new = f.rotate_token()
        with open(self.token_file) as fh:
            self.assertEqual(fh.read(), new)
        self.assertEqual(request(f, SVC, self.auth('tok-1'), ctx=self.ctx)[0], 401)
        self.assertEqual(request(f, SVC, self.auth(new), ctx=self.ctx)[0], 200)
        self.assertEqual(w.next()['type'], 'BOOKMARK')  # open watches survive rotation
        w.close()
        # the file lags behind: 401 with what the file says until it is written
        newer = f.rotate_token('tok-3', file_delay=0.5)
        self.assertEqual(request(f, SVC, self.auth(new), ctx=self.ctx)[0], 401)
        time.sleep(0.8)
        with open(self.token_file) as fh:
            self.assertEqual(fh.read(), newer)
        self.assertEqual(request(f, SVC, self.auth('tok-3'), ctx=self.ctx)[0], 200)
        # 401 until the token file changes, then its new content is accepted
        f.invalidate_token()
        self.assertEqual(request(f, SVC, self.auth('tok-3'), ctx=self.ctx)[0], 401)
        with open(self.token_file, 'w') as fh:
            fh.write('tok-4')
        self.assertEqual(request(f, SVC, self.auth('tok-3'), ctx=self.ctx)[0], 401)
        self.assertEqual(request(f, SVC, self.auth('tok-4'), ctx=self.ctx)[0], 200)
        tokens = [e['headers'].get('Authorization') for e in f.requests(prefix=SVC)]
        self.assertEqual(tokens[-1], 'Bearer tok-4')

    def test_faults_over_tls(self):
        f = self.fake
        f.create(service('a'))
        f.arm('reset', prefix=SVC)
        s = RawStream(f.port, SVC + '?watch=1', headers='Authorization: Bearer tok-1\r\n', ctx=self.ctx)
        self.assertFalse(s.chunk().endswith(b'\n'))  # half an event ...
        with self.assertRaises((ConnectionError, ssl.SSLError, EOFError)):  # ... then the connection dies
            s.chunk()
        s.close()
        f.arm('split', prefix=SVC, max=2)
        w = Watch(f, SVC + '?watch=1&timeoutSeconds=2', self.auth('tok-1'), ctx=self.ctx)
        self.assertEqual(w.next()['object']['metadata']['name'], 'a')
        w.close()

    def test_kubeconfig(self):
        path = self.fake.write_kubeconfig(os.path.join(self.dir, 'kubeconfig'))
        with open(path) as fh:
            text = fh.read()
        self.assertIn(f'server: "{self.fake.url}"', text)
        self.assertIn(f'certificate-authority: "{self.fake.ca_path}"', text)
        self.assertIn(f'tokenFile: "{self.token_file}"', text)
        if fakeapi.yaml:
            cfg = fakeapi.yaml.safe_load(text)
            self.assertEqual(cfg['clusters'][0]['cluster']['server'], self.fake.url)


class H2Client:
    """A raw HTTP/2 client (python3-h2) over TLS with ALPN h2, or h2c with prior knowledge: every frame visible."""

    def __init__(self, fake, ctx=None, timeout=5.0):
        sock = socket.create_connection(('127.0.0.1', fake.port), timeout=timeout)
        if fake.tls:
            ctx.set_alpn_protocols(['h2'])
            sock = ctx.wrap_socket(sock, server_hostname='127.0.0.1')
            assert sock.selected_alpn_protocol() == 'h2', sock.selected_alpn_protocol()
        self.sock, self.scheme = sock, 'https' if fake.tls else 'http'
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                          header_encoding='utf-8'))
        self.conn.initiate_connection()
        self.flush()
        self.streams, self.goaway, self.closed, self.buf = {}, None, False, b''

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def get(self, path, headers=()):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(':method', 'GET'), (':path', path), (':scheme', self.scheme),
                                     (':authority', '127.0.0.1')] + list(headers), end_stream=True)
        self.flush()
        self.streams[sid] = {'status': None, 'headers': {}, 'data': bytearray(), 'ended': False, 'reset': None}
        return sid

    def pump(self, until, timeout=5.0):
        """Read frames until until() is true (or the connection closes); False on timeout."""
        deadline = time.monotonic() + timeout
        while not until():
            if self.closed or time.monotonic() > deadline:
                return until()
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionError, ssl.SSLError):
                data = b''
            if not data:
                self.closed = True
                continue
            for ev in self.conn.receive_data(self._frames(data)):
                st = self.streams.get(getattr(ev, 'stream_id', None))
                if isinstance(ev, h2.events.ResponseReceived):
                    st['headers'] = dict(ev.headers)
                    st['status'] = int(st['headers'][':status'])
                elif isinstance(ev, h2.events.DataReceived):
                    st['data'] += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    st['ended'] = True
                elif isinstance(ev, h2.events.StreamReset):
                    st['reset'] = ev.error_code
            self.flush()
        return True

    def _frames(self, data):
        """The complete frames of what arrived, GOAWAY taken out: h2's client takes no DATA after a GOAWAY,
        which RFC 9113 (6.8) allows on the streams it processed."""
        self.buf += data
        out = b''
        while len(self.buf) >= 9:
            size = 9 + int.from_bytes(self.buf[:3], 'big')
            if len(self.buf) < size:
                break
            frame, self.buf = self.buf[:size], self.buf[size:]
            if frame[3] == 0x7:
                self.goaway = types.SimpleNamespace(last_stream_id=int.from_bytes(frame[9:13], 'big') & 0x7fffffff,
                                                    error_code=int.from_bytes(frame[13:17], 'big'))
            else:
                out += frame
        return out

    def events(self, sid):
        return [json.loads(ln) for ln in bytes(self.streams[sid]['data']).split(b'\n') if ln.strip()]

    def body(self, sid):
        return json.loads(bytes(self.streams[sid]['data']))

    def close(self):
        self.sock.close()


class HTTP2Test(Base):
    """HTTP/2 over TLS (ALPN h2) and h2c: the same API, streams multiplexed on one connection, faults per
    stream, GOAWAY and a connection gone dark. python3-h2 and openssl come with third_party/setup-deps.sh:
    without them these tests fail, they do not skip."""

    def setUp(self):
        if h2 is None or not shutil.which('openssl'):
            self.fail('python3-h2 or openssl is missing: run third_party/setup-deps.sh')
        self.fake = fakeapi.FakeAPIServer(tls=True, http2=True, bookmark_interval=0.3).start()
        self.ctx = ssl.create_default_context(cafile=self.fake.ca_path)

    def client(self):
        return H2Client(self.fake, ssl.create_default_context(cafile=self.fake.ca_path))

    def test_alpn_and_multiplexed_watches(self):
        f = self.fake
        f.create(service('a'))
        f.create(node('n1'))
        c = self.client()
        rv = f.rv
        sids = [c.get(p + f'?watch=1&resourceVersion={rv}&timeoutSeconds=5') for p in (SVC, EPS, NODES)]
        self.assertTrue(f.wait_for_watchers(3))
        f.create(service('b'))
        f.create(endpointslice('b-1', service_name='b'))
        f.create(node('n2'))
        want = {sids[0]: 'b', sids[1]: 'b-1', sids[2]: 'n2'}
        self.assertTrue(c.pump(lambda: all(any(e['type'] == 'ADDED' and e['object']['metadata']['name'] == n
                                               for e in c.events(s)) for s, n in want.items())))
        self.assertEqual([c.streams[s]['status'] for s in sids], [200, 200, 200])
        self.assertNotIn('transfer-encoding', c.streams[sids[0]]['headers'])  # no HTTP/1.1 framing
        conns = f.connections()
        self.assertEqual([(x['proto'], x['requests'], x['max_active']) for x in conns], [('h2', 3, 3)])
        log = f.requests(prefix='/ap')
        self.assertEqual({(e['http'], e['conn']) for e in log}, {('2', conns[0]['id'])})
        self.assertEqual(sorted(e['stream'] for e in log), sorted(sids))
        self.assertEqual(log[0]['headers'].get('Authorization'), None)
        c.close()
        # HTTP/1.1 still answers a client that does not offer h2 (http.client offers no ALPN)
        self.assertEqual(request(f, SVC, ctx=self.ctx)[0], 200)
        self.assertEqual(f.connections()[-1]['proto'], 'http/1.1')

    def test_list_flow_control_and_control_api(self):
        f = self.fake
        for i in range(40):  # a list of ~1.6 MB: many times the client's 64 KiB window
            f.create(endpointslice(f'big-{i}', n_endpoints=300))
        c = self.client()
        sid = c.get(EPS)
        self.assertTrue(c.pump(lambda: c.streams[sid]['ended'], timeout=20))
        self.assertEqual(len(c.body(sid)['items']), 40)
        sid = c.get('/fake/info')  # the control API answers over HTTP/2 too
        self.assertTrue(c.pump(lambda: c.streams[sid]['ended']))
        self.assertTrue(c.body(sid)['http2'])
        sid = c.get('/nope')
        self.assertTrue(c.pump(lambda: c.streams[sid]['ended']))
        self.assertEqual((c.streams[sid]['status'], c.body(sid)['code']), (404, 404))
        c.close()

    def test_faults_are_per_stream(self):
        f = self.fake
        f.create(service('a'))
        c = self.client()
        bm = c.get(NODES + '?watch=1&allowWatchBookmarks=true&timeoutSeconds=10')
        f.arm('reset', prefix=SVC)
        cut = c.get(SVC + '?watch=1')
        self.assertTrue(c.pump(lambda: c.streams[cut]['reset'] is not None))
        self.assertEqual(c.streams[cut]['reset'], h2.errors.ErrorCodes.INTERNAL_ERROR)
        self.assertFalse(bytes(c.streams[cut]['data']).endswith(b'\n'))  # half an event, then RST_STREAM
        n = len(c.events(bm))  # the other stream lives on: more bookmarks
        self.assertTrue(c.pump(lambda: len(c.events(bm)) > n + 1))
        f.arm('split', prefix=SVC, max=3)
        whole = c.get(SVC + '?watch=1&timeoutSeconds=1')
        self.assertTrue(c.pump(lambda: c.streams[whole]['ended']))
        self.assertEqual(c.events(whole)[0]['object']['metadata']['name'], 'a')
        f.arm('stall', prefix=SVC)
        quiet = c.get(SVC + '?watch=1')
        self.assertTrue(f.wait_for_watchers(2))
        self.assertFalse(c.pump(lambda: len(c.streams[quiet]['data']) > 0, timeout=1.0))
        c.conn.reset_stream(quiet, h2.errors.ErrorCodes.CANCEL)  # the client gives up: the stall ends
        c.flush()
        self.assertIsNotNone(f.wait_for_request(lambda e: e['stream'] == quiet and e['end'] is not None))
        self.assertEqual(len(f.connections()), 1)
        c.close()

    def test_goaway_graceful(self):
        f = self.fake
        c = self.client()
        w = c.get(SVC + f'?watch=1&resourceVersion={f.rv}&timeoutSeconds=10')
        self.assertTrue(f.wait_for_watchers(1))
        self.assertEqual(f.goaway(), [f.connections()[0]['id']])
        self.assertTrue(c.pump(lambda: c.goaway is not None))
        self.assertEqual((c.goaway.error_code, c.goaway.last_stream_id), (0, w))
        f.create(service('after'))  # the open stream goes on
        self.assertTrue(c.pump(lambda: any(e['type'] == 'ADDED' for e in c.events(w))))
        late = c.get(NODES)  # a new stream is refused
        self.assertTrue(c.pump(lambda: c.streams[late]['reset'] is not None))
        self.assertEqual(c.streams[late]['reset'], h2.errors.ErrorCodes.REFUSED_STREAM)
        self.assertEqual(f.requests(prefix=NODES), [])
        f.close_watches()  # the last stream ends: the server closes the connection
        self.assertTrue(c.pump(lambda: c.closed and c.streams[w]['ended']))
        rec = f.wait_for_connections(lambda cs: cs[0]['closed'] is not None)[0]
        self.assertEqual(rec['goaway'], {'mode': 'graceful', 'error_code': 0, 'last_stream_id': w})
        c.close()

    def test_goaway_end_watches_and_close(self):
        f = self.fake
        c = self.client()
        w = c.get(SVC + '?watch=1&timeoutSeconds=10')
        self.assertTrue(f.wait_for_watchers(1))
        f.goaway(end_watches=True)  # the open watch ends cleanly
        self.assertTrue(c.pump(lambda: c.streams[w]['ended'] and c.closed))
        self.assertEqual(f.requests(prefix=SVC)[-1]['end'], 'goaway')
        c.close()
        c = self.client()
        w = c.get(SVC + '?watch=1&timeoutSeconds=10')
        self.assertTrue(f.wait_for_watchers(1))
        f.goaway('close', error_code=2)  # INTERNAL_ERROR, and the connection is gone at once
        self.assertTrue(c.pump(lambda: c.closed))
        self.assertEqual(c.goaway.error_code, 2)
        self.assertFalse(c.streams[w]['ended'])
        c.close()
        with self.assertRaises(RuntimeError):  # nothing left to send it on
            f.goaway()

    def test_freeze(self):
        f = self.fake
        c = self.client()
        w = c.get(NODES + '?watch=1&allowWatchBookmarks=true&timeoutSeconds=10')
        self.assertTrue(c.pump(lambda: len(c.events(w)) >= 1))  # bookmarks every 0.3 s
        f.freeze()
        n = len(c.streams[w]['data'])
        self.assertTrue(c.pump(lambda: len(c.streams[w]['data']) > n, timeout=0.3) or True)  # in flight
        n = len(c.streams[w]['data'])
        self.assertFalse(c.pump(lambda: len(c.streams[w]['data']) > n, timeout=1.2))
        self.assertTrue(f.connections()[0]['frozen'])
        c.close()  # the client's close is still seen
        self.assertIsNotNone(f.wait_for_connections(lambda cs: cs[0]['closed'] is not None)[0]['closed'])

    def test_stop_sends_goaway_and_ends_watches(self):
        f = self.fake
        c = self.client()
        w = c.get(SVC + '?watch=1&timeoutSeconds=30')
        self.assertTrue(f.wait_for_watchers(1))
        f.stop()
        self.assertTrue(c.pump(lambda: c.closed))
        self.assertTrue(c.streams[w]['ended'])
        self.assertEqual(c.goaway.error_code, 0)
        c.close()

    def test_h2c_prior_knowledge(self):
        self.fake.stop()
        self.fake = fakeapi.FakeAPIServer(http2=True).start()
        f = self.fake
        f.create(service('a'))
        c = H2Client(f)
        sid = c.get(SVC)
        self.assertTrue(c.pump(lambda: c.streams[sid]['ended']))
        self.assertEqual(objects_of(c.body(sid)), [('default', 'a')])
        c.close()
        self.assertEqual(request(f, SVC)[0], 200)  # and HTTP/1.1 beside it
        self.assertEqual([x['proto'] for x in f.connections()], ['h2', 'http/1.1'])


class ControlTest(Base):
    def test_request_log(self):
        f = self.fake
        since = f.last_request_id()
        w = Watch(f, SVC + '?watch=1&resourceVersion=' + f.rv + '&allowWatchBookmarks=true&timeoutSeconds=1',
                  {'User-Agent': 'ekglue-test', 'Accept': 'application/json'})
        w.events(1)
        w.close()
        e = f.wait_for_request(prefix=SVC, watch=True, since=since)
        self.assertEqual((e['method'], e['query']['allowWatchBookmarks'], e['query']['resourceVersion']),
                         ('GET', 'true', f.rv))
        self.assertEqual((e['headers']['User-Agent'], e['status']), ('ekglue-test', 200))
        self.assertIsNone(f.wait_for_request(lambda e: e['query'].get('limit') == '7', since=since, timeout=0.2))
        request(f, SVC + '?limit=7')
        self.assertIsNotNone(f.wait_for_request(lambda e: e['query'].get('limit') == '7', since=since))
        code, _, log = request(f, f'/fake/requests?since={since}&prefix={SVC}')
        self.assertEqual([x['query'].get('limit') for x in log], [None, '7'])
        f.clear_requests()
        self.assertEqual(f.requests(), [])

    def test_http_control_api(self):
        f = self.fake
        body = json.dumps({'kind': 'List', 'items': [service('a'), node('n1')]}).encode()
        code, _, out = request(f, '/fake/objects', method='POST', body=body)
        self.assertEqual((code, len(out['items'])), (200, 2))
        code, _, out = request(f, '/fake/objects?op=create', method='POST', body=json.dumps(service('a')).encode())
        self.assertEqual((code, out['reason']), (400, 'BadRequest'))
        code, _, out = request(f, '/fake/objects?kind=Node&name=n1', method='DELETE')
        self.assertEqual((code, out['metadata']['name']), (200, 'n1'))
        self.assertEqual(request(f, NODES)[2]['items'], [])
        code, _, out = request(f, '/fake/faults', method='POST',
                               body=json.dumps({'fault': '5xx', 'prefix': SVC, 'count': 1}).encode())
        self.assertEqual(code, 200)
        self.assertEqual(request(f, SVC)[0], 503)
        self.assertEqual(request(f, SVC)[0], 200)
        request(f, '/fake/config', method='POST', body=b'{"too_old": "event", "history": 10}')
        self.assertEqual(f.too_old, 'event')
        code, _, st = request(f, '/fake/compact', method='POST')
        self.assertEqual(st['compactedResourceVersion'], st['resourceVersion'])
        w = Watch(f, SVC + f'?watch=1&resourceVersion={f.rv}')
        code, _, out = request(f, '/fake/wait-watchers?n=1', method='POST')
        self.assertEqual((code, len(out['watches'])), (200, 1))
        request(f, '/fake/close-watches', method='POST')
        self.assertIsNone(w.next())
        w.close()
        self.assertEqual(request(f, '/fake/wait-watchers?n=1&timeout=0.2', method='POST')[0], 408)
        self.assertEqual(request(f, '/fake/nope')[0], 404)

    def test_load_yaml_and_json(self):
        f = self.fake
        d = tempfile.mkdtemp()
        try:
            jpath = os.path.join(d, 'objs.json')
            with open(jpath, 'w') as fh:
                json.dump({'kind': 'ServiceList', 'items': [{'metadata': {'name': 'j'}, 'spec': {}}]}, fh)
            self.assertEqual([o['kind'] for o in f.load(jpath)], ['Service'])
            if fakeapi.yaml is None:
                return
            ypath = os.path.join(d, 'objs.yaml')
            with open(ypath, 'w') as fh:
                fh.write('kind: Node\nmetadata: {name: y1}\n---\nkind: EndpointSlice\naddressType: IPv4\n'
                         'metadata: {name: web-1, namespace: prod}\nendpoints: []\n')
            self.assertEqual(len(f.load(ypath)), 2)
            self.assertEqual(request(f, '/fake/load?path=' + ypath, method='POST')[0], 200)
            self.assertEqual(objects_of(request(f, EPS)[2]), [('prod', 'web-1')])
        finally:
            shutil.rmtree(d)


class CLITest(unittest.TestCase):
    def test_cli(self):
        d = tempfile.mkdtemp()
        tls = bool(shutil.which('openssl'))
        args = [sys.executable if os.path.exists(sys.executable) else '/usr/bin/python3',
                os.path.join(HERE, 'fakeapi.py'), '--port', '0', '--history', '50', '--token-file',
                os.path.join(d, 'tok'), '--token', 'sekret'] + (['--tls'] if tls else [])
        objs = os.path.join(d, 'objs.json')
        with open(objs, 'w') as fh:
            json.dump([node('n1')], fh)
        p = subprocess.Popen(args + ['--load', objs], stdout=subprocess.PIPE, text=True)
        try:
            first = p.stdout.readline().split()
            self.assertEqual(first[:2], ['listening', '127.0.0.1'])
            port = int(first[2])
            lines = dict(p.stdout.readline().split(' ', 1) for _ in range(3 if tls else 2))
            ctx = ssl.create_default_context(cafile=lines['ca'].strip()) if tls else None
            url = f"{'https' if tls else 'http'}://127.0.0.1:{port}{NODES}"
            req = urllib.request.Request(url, headers={'Authorization': 'Bearer sekret'})
            with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
                self.assertEqual(objects_of(json.load(r)), [(None, 'n1')])
        finally:
            p.terminate()
            self.assertEqual(p.wait(10), 0)
            p.stdout.close()
            shutil.rmtree(d)


if __name__ == '__main__':
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'helpers'))
    import skips  # noqa: E402  (skips are counted and named: tests/helpers/skips.py)
    skips.main()
