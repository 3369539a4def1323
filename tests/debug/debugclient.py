"""tests/debug/debugclient.py: shared helpers for the debug-port tests (not a test itself).

- DebugServer is tests/xds/xdsclient.py's EkglueServer (`ekglue serve` on 127.0.0.1, xDS port read from the log)
  started with `--debug-listen 127.0.0.1:0`; it also reads the debug port from the log line
  `msg="debug server listening port=N ..."` (bounded wait). stop(), check_clean_exit() and the LogOnFailure
  test mixin (the server's whole stderr on any failure) are xdsclient's.
- get() is one HTTP request with a timeout, returning (status, headers, body) for any status.
- dump() is `ekglue dump --format json` of the same files (xdsclient.run_ekglue: its stderr on failure): the
  independent reference for the documents.

Every wait is bounded. Run with /usr/bin/python3.
"""
import http.client
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "xds"))
import xdsclient as xc  # noqa: E402

EKGLUE = xc.EKGLUE
SOURCE_DIR = xc.SOURCE_DIR


class DebugServer(xc.EkglueServer):
    def __init__(self, objects=(), extra_args=(), log_level="debug"):
        super().__init__(objects, ["--debug-listen", "127.0.0.1:0"] + list(extra_args), log_level=log_level)
        line = self.wait_log(r"debug server listening port=\d+", timeout=10)
        if line is None:
            self.stop()
            raise xc.StartError("no debug port in the log:" + xc.failure_log(self), self)
        self.debug_port = int(re.search(r"debug server listening port=(\d+)", line).group(1))

    def get(self, path, method="GET", timeout=10.0):
        return get(self.debug_port, path, method, timeout)

    def get_json(self, path):
        status, headers, body = self.get(path)
        if status != 200:
            raise AssertionError("GET %s: %d %s" % (path, status, body[:500]))
        return json.loads(body)


def get(port, path, method="GET", timeout=10.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read().decode("utf-8")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def dump(objects):
    args = ["dump", "--format", "json"]
    for path in objects:
        args += ["--objects", path]
    return json.loads(xc.run_ekglue(args))


def wait_until(fn, timeout=5.0, interval=0.05):
    """Calls fn until it returns something true; returns that, or the last value after timeout."""
    deadline = time.monotonic() + timeout
    value = fn()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = fn()
    return value
